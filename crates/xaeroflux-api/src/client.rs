//! A blocking client of the API over TCP or a Unix socket (what the CLI uses when a
//! daemon holds the store).

mod state;
mod unix;

mod blobs;

use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::auth::TOKEN_FILE;
use crate::model::{
    BatchResponse, ConnectRequest, EventJson, GroupJson, IdentityJson, JoinRequest, PeerJson,
    QueryParams, QueryResponse, SearchHit, SearchRequest, StatsJson, TicketJson, VerifyJob,
    WriteRequest, WriteResponse,
};
use crate::problem::Problem;
use crate::server::{ADDR_FILE, ApiBind};

/// Largest response body read into memory (a query page of 1000 16 KiB events is ~22 MB
/// in base64 and text).
const MAX_RESPONSE: u64 = 64 * 1024 * 1024;

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The server answered with a problem document.
    #[error("{} ({}): {}", .0.title, .0.code, .0.detail)]
    Problem(Problem),
    /// Transport failure (connection refused, reset).
    #[error("http")]
    Http(#[from] ureq::Error),
    /// The answer was not what the API documents.
    #[error("unexpected response (status {status}): {detail}")]
    Decode {
        /// HTTP status.
        status: u16,
        /// What was wrong.
        detail: String,
    },
    /// Reading the discovery files failed.
    #[error("reading {path}")]
    Discovery {
        /// The file.
        path: std::path::PathBuf,
        /// The failure.
        #[source]
        source: std::io::Error,
    },
}

impl ClientError {
    /// The problem code when the server refused the call.
    pub fn code(&self) -> Option<&str> {
        match self {
            ClientError::Problem(p) => Some(&p.code),
            _ => None,
        }
    }
}

/// A client of one node's API.
#[derive(Debug, Clone)]
pub struct Client {
    agent: ureq::Agent,
    /// What requests are sent to: `http://HOST:PORT`, or `http://localhost` on a socket.
    base: String,
    /// Where the API is, as [`ApiBind`] prints it (`unix:PATH` for a socket).
    addr: String,
    token: String,
}

fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

impl Client {
    /// A client of the API at `base` (`http://127.0.0.1:7421`) with `token`.
    pub fn new(base: &str, token: &str) -> Self {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        let base = base.trim_end_matches('/').to_string();
        Client {
            agent,
            addr: base.clone(),
            base,
            token: token.trim().to_string(),
        }
    }

    /// A client of the API served on the Unix socket `path` (a daemon started with
    /// `--api-bind unix:PATH`) with `token`.
    pub fn unix(path: &Path, token: &str) -> Self {
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build();
        let agent = ureq::Agent::with_parts(
            config,
            unix::UnixConnector {
                path: path.to_path_buf(),
            },
            unix::NoResolver,
        );
        Client {
            agent,
            base: unix::UNIX_BASE.to_string(),
            addr: ApiBind::Unix(path.to_path_buf()).to_string(),
            token: token.trim().to_string(),
        }
    }

    /// The client of `bind` (TCP or a Unix socket) with `token`.
    pub fn at(bind: &ApiBind, token: &str) -> Self {
        match bind {
            ApiBind::Tcp(_) => Client::new(&bind.to_string(), token),
            ApiBind::Unix(p) => Client::unix(p, token),
        }
    }

    /// The client of the daemon serving `data_dir`, from its `api.addr` and
    /// `api.token`; `None` when no daemon published an address.
    pub fn discover(data_dir: &Path) -> Result<Option<Client>, ClientError> {
        let addr_path = data_dir.join(ADDR_FILE);
        let addr = match std::fs::read_to_string(&addr_path) {
            Ok(a) => a,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(ClientError::Discovery {
                    path: addr_path,
                    source,
                });
            }
        };
        let bind: ApiBind = addr.parse().map_err(|_| ClientError::Decode {
            status: 0,
            detail: format!("{} holds {addr:?}", addr_path.display()),
        })?;
        let token_path = data_dir.join(TOKEN_FILE);
        let token =
            std::fs::read_to_string(&token_path).map_err(|source| ClientError::Discovery {
                path: token_path,
                source,
            })?;
        Ok(Some(Client::at(&bind, &token)))
    }

    /// The base URL requests go to (`http://localhost` on a Unix socket).
    pub fn base(&self) -> &str {
        &self.base
    }

    /// Where the API is: `http://HOST:PORT` or `unix:PATH`.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    fn auth(&self) -> String {
        format!("Bearer {}", self.token)
    }

    fn finish<T: DeserializeOwned>(
        resp: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<T, ClientError> {
        let mut resp = resp?;
        let status = resp.status().as_u16();
        let body = resp
            .body_mut()
            .with_config()
            .limit(MAX_RESPONSE)
            .read_to_vec()?;
        if status >= 400 {
            return Err(match serde_json::from_slice::<Problem>(&body) {
                Ok(p) => ClientError::Problem(p),
                Err(_) => ClientError::Decode {
                    status,
                    detail: String::from_utf8_lossy(&body).into_owned(),
                },
            });
        }
        let body = if body.is_empty() {
            b"null".to_vec()
        } else {
            body
        };
        serde_json::from_slice(&body).map_err(|e| ClientError::Decode {
            status,
            detail: e.to_string(),
        })
    }

    pub(crate) fn get_json<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        Self::finish(
            self.agent
                .get(format!("{}{path}", self.base))
                .header("Authorization", self.auth())
                .call(),
        )
    }

    pub(crate) fn post_json<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, ClientError> {
        let bytes = serde_json::to_vec(body).map_err(|e| ClientError::Decode {
            status: 0,
            detail: e.to_string(),
        })?;
        Self::finish(
            self.agent
                .post(format!("{}{path}", self.base))
                .header("Authorization", self.auth())
                .header("Content-Type", "application/json")
                .send(&bytes[..]),
        )
    }

    /// `GET /v1/health`.
    pub fn health(&self) -> Result<(), ClientError> {
        let _: serde_json::Value = self.get_json("/v1/health")?;
        Ok(())
    }

    /// `GET /v1/identity`.
    pub fn identity(&self) -> Result<IdentityJson, ClientError> {
        self.get_json("/v1/identity")
    }

    /// `POST /v1/events`: one event, durable on return.
    pub fn write(&self, req: &WriteRequest) -> Result<WriteResponse, ClientError> {
        self.post_json("/v1/events", req)
    }

    /// `POST /v1/events/batch`: NDJSON lines of [`WriteRequest`]s.
    pub fn write_batch(&self, ndjson: &[u8]) -> Result<BatchResponse, ClientError> {
        Self::finish(
            self.agent
                .post(format!("{}/v1/events/batch", self.base))
                .header("Authorization", self.auth())
                .header("Content-Type", "application/x-ndjson")
                .send(ndjson),
        )
    }

    /// `GET /v1/events/{id}`: `None` if absent.
    pub fn get(&self, id: &str, proof: bool) -> Result<Option<EventJson>, ClientError> {
        match self.get_json(&format!("/v1/events/{}?proof={proof}", enc(id))) {
            Ok(e) => Ok(Some(e)),
            Err(e) if e.code() == Some("not_found") => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `GET /v1/events`: one page.
    pub fn query(&self, q: &QueryParams) -> Result<QueryResponse, ClientError> {
        let mut parts = Vec::new();
        if let Some(g) = &q.group {
            parts.push(format!("group={}", enc(g)));
        }
        if let Some(t) = q.event_type {
            parts.push(format!("type={t}"));
        }
        if let Some(a) = &q.author {
            parts.push(format!("author={}", enc(a)));
        }
        if let Some(s) = q.since {
            parts.push(format!("since={s}"));
        }
        if let Some(l) = q.limit {
            parts.push(format!("limit={l}"));
        }
        if let Some(c) = q.cursor {
            parts.push(format!("cursor={c}"));
        }
        self.get_json(&format!("/v1/events?{}", parts.join("&")))
    }

    /// `GET /v1/subscribe`: events after position `after` (`-1`: from the first;
    /// `None`: only new ones), as a blocking iterator.
    pub fn subscribe(
        &self,
        group: Option<&str>,
        event_type: Option<u32>,
        after: Option<i64>,
    ) -> Result<EventStream, ClientError> {
        let mut parts = Vec::new();
        if let Some(g) = group {
            parts.push(format!("group={}", enc(g)));
        }
        if let Some(t) = event_type {
            parts.push(format!("type={t}"));
        }
        if let Some(a) = after {
            parts.push(format!("after={a}"));
        }
        let mut resp = self
            .agent
            .get(format!("{}/v1/subscribe?{}", self.base, parts.join("&")))
            .header("Authorization", self.auth())
            .header("Accept", "text/event-stream")
            .call()?;
        let status = resp.status().as_u16();
        if status >= 400 {
            let body = resp.body_mut().read_to_vec()?;
            return Err(match serde_json::from_slice::<Problem>(&body) {
                Ok(p) => ClientError::Problem(p),
                Err(_) => ClientError::Decode {
                    status,
                    detail: String::from_utf8_lossy(&body).into_owned(),
                },
            });
        }
        Ok(EventStream {
            reader: BufReader::new(Box::new(resp.into_body().into_reader())),
        })
    }

    /// `GET /v1/stats`.
    pub fn stats(&self) -> Result<StatsJson, ClientError> {
        self.get_json("/v1/stats")
    }

    /// `POST /v1/verify`.
    pub fn verify_start(&self) -> Result<VerifyJob, ClientError> {
        self.post_json("/v1/verify", &serde_json::Value::Null)
    }

    /// `GET /v1/verify`.
    pub fn verify_status(&self) -> Result<VerifyJob, ClientError> {
        self.get_json("/v1/verify")
    }

    /// `POST /v1/search`.
    pub fn search(&self, req: &SearchRequest) -> Result<Vec<SearchHit>, ClientError> {
        self.post_json("/v1/search", req)
    }

    /// `GET /v1/groups`.
    pub fn groups(&self) -> Result<Vec<GroupJson>, ClientError> {
        self.get_json("/v1/groups")
    }

    /// `POST /v1/groups`.
    pub fn create_group(&self) -> Result<GroupJson, ClientError> {
        self.post_json("/v1/groups", &serde_json::Value::Null)
    }

    /// `GET /v1/groups/{id}/ticket`.
    pub fn ticket(&self, group: &str, invite: bool) -> Result<TicketJson, ClientError> {
        self.get_json(&format!("/v1/groups/{}/ticket?invite={invite}", enc(group)))
    }

    /// `POST /v1/groups/join`.
    pub fn join(&self, invite: &str) -> Result<GroupJson, ClientError> {
        self.post_json(
            "/v1/groups/join",
            &JoinRequest {
                invite: invite.into(),
            },
        )
    }

    /// `GET /v1/peers`.
    pub fn peers(&self) -> Result<Vec<PeerJson>, ClientError> {
        self.get_json("/v1/peers")
    }

    /// `POST /v1/peers`.
    pub fn connect(&self, ticket: &str) -> Result<(), ClientError> {
        let _: serde_json::Value = self.post_json(
            "/v1/peers",
            &ConnectRequest {
                ticket: ticket.into(),
            },
        )?;
        Ok(())
    }
}

/// Server-Sent Events of `GET /v1/subscribe`, parsed.
pub struct EventStream {
    reader: BufReader<Box<dyn Read + Send>>,
}

impl std::fmt::Debug for EventStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventStream").finish_non_exhaustive()
    }
}

impl Iterator for EventStream {
    type Item = Result<EventJson, ClientError>;

    /// The next event; `None` when the server closed the stream.
    fn next(&mut self) -> Option<Self::Item> {
        let mut data = String::new();
        let mut kind = String::new();
        let mut line = String::new();
        loop {
            line.clear();
            match self.reader.read_line(&mut line) {
                Ok(0) => return None,
                Ok(_) => {}
                Err(e) => return Some(Err(ClientError::Http(ureq::Error::Io(e)))),
            }
            let l = line.trim_end_matches(['\r', '\n']);
            if l.is_empty() {
                if data.is_empty() {
                    continue;
                }
                if kind == "error" {
                    return Some(Err(ClientError::Decode {
                        status: 200,
                        detail: data,
                    }));
                }
                return Some(
                    serde_json::from_str(&data).map_err(|e| ClientError::Decode {
                        status: 200,
                        detail: e.to_string(),
                    }),
                );
            }
            if let Some(d) = l.strip_prefix("data:") {
                if !data.is_empty() {
                    data.push('\n');
                }
                data.push_str(d.strip_prefix(' ').unwrap_or(d));
            } else if let Some(k) = l.strip_prefix("event:") {
                kind = k.trim().to_string();
            }
        }
    }
}
