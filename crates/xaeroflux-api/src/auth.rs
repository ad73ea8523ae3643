//! Who may call the API: a bearer token, and only pages of this node.
//!
//! - Every route but `GET /v1/health` and the console's static files needs
//!   `Authorization: Bearer <token>`; the token is 32 random bytes in hex, kept in
//!   `DATA_DIR/api.token` (mode 0600), so only local users who can read the data
//!   directory can call the API.
//! - DNS rebinding (a web page whose name resolves to 127.0.0.1) is refused by the
//!   `Host` check: only IP literals, `localhost` and configured names are served, as
//!   Syncthing does. A browser request from another site is refused by the `Origin`
//!   check: the origin must be the node itself (the console) or configured for CORS.
//!   There are no CORS headers unless origins are configured.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::problem::ApiError;

/// File of the data directory holding the API token.
pub const TOKEN_FILE: &str = "api.token";

/// Errors of the token file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// No randomness from the operating system.
    #[error("no randomness for the api token")]
    Random(#[source] getrandom::Error),
    /// Reading or writing the file failed.
    #[error("i/o on {path}")]
    Io {
        /// The token file.
        path: PathBuf,
        /// The failure.
        #[source]
        source: std::io::Error,
    },
}

/// A new random token: 32 bytes from the operating system, as 64 hex digits.
pub fn generate_token() -> Result<String, TokenError> {
    let mut b = [0u8; 32];
    getrandom::getrandom(&mut b).map_err(TokenError::Random)?;
    Ok(data_encoding::HEXLOWER.encode(&b))
}

/// The token in `data_dir/api.token`, created (mode 0600) if absent or empty.
pub fn load_or_create_token(data_dir: &Path) -> Result<String, TokenError> {
    let path = data_dir.join(TOKEN_FILE);
    let io = |source| TokenError::Io {
        path: path.clone(),
        source,
    };
    match std::fs::read_to_string(&path) {
        Ok(t) if t.trim().len() >= 32 => return Ok(t.trim().to_string()),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io(e)),
    }
    let token = generate_token()?;
    std::fs::create_dir_all(data_dir).map_err(io)?;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(&path).map_err(io)?;
    f.write_all(token.as_bytes()).map_err(io)?;
    f.sync_all().map_err(io)?;
    Ok(token)
}

/// Access rules of one server.
#[derive(Debug, Clone)]
pub(crate) struct Guard {
    token: Arc<str>,
    /// Host names served besides IP literals and `localhost` (lowercase, no port).
    hosts: Arc<[String]>,
    /// Origins allowed cross-origin (exact `scheme://host[:port]`).
    cors: Arc<[String]>,
}

impl Guard {
    pub(crate) fn new(token: &str, hosts: &[String], cors: &[String]) -> Self {
        Guard {
            token: token.into(),
            hosts: hosts.iter().map(|h| h.to_ascii_lowercase()).collect(),
            cors: cors
                .iter()
                .map(|o| o.trim_end_matches('/').to_string())
                .collect(),
        }
    }

    fn host_allowed(&self, host: &str) -> bool {
        let name = host_name(host).to_ascii_lowercase();
        name == "localhost"
            || name.parse::<std::net::IpAddr>().is_ok()
            || self.hosts.contains(&name)
    }

    fn token_ok(&self, headers: &HeaderMap) -> bool {
        let Some(v) = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
        else {
            return false;
        };
        let Some(t) = v
            .strip_prefix("Bearer ")
            .or_else(|| v.strip_prefix("bearer "))
        else {
            return false;
        };
        constant_time_eq(t.trim().as_bytes(), self.token.as_bytes())
    }
}

/// The host part of a `Host` value: `[::1]:80` -> `::1`, `a:80` -> `a`.
fn host_name(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match host.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host,
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Routes served without a token: liveness and the console's static files (they hold
/// no data; the console asks for the token).
fn is_public(path: &str) -> bool {
    path == "/v1/health" || path == "/" || path.starts_with("/console/")
}

/// The middleware: Host, Origin, then the token.
pub(crate) async fn guard(State(g): State<Guard>, req: Request, next: Next) -> Response {
    let headers = req.headers();
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !g.host_allowed(host) {
        return ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden_host",
            format!(
                "host {host:?} is not served (DNS rebinding protection); use 127.0.0.1 or localhost"
            ),
        )
        .into_response();
    }
    let mut cors_origin = None;
    if let Some(origin) = headers.get(header::ORIGIN) {
        let o = origin.to_str().unwrap_or("null").trim_end_matches('/');
        let same = o
            .split_once("://")
            .is_some_and(|(_, rest)| rest.eq_ignore_ascii_case(host));
        if g.cors.iter().any(|c| c == o) {
            cors_origin = Some(origin.clone());
        } else if !same {
            return ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden_origin",
                format!("requests from origin {o:?} are not allowed"),
            )
            .into_response();
        }
    }
    if req.method() == Method::OPTIONS
        && let Some(o) = &cors_origin
    {
        return preflight(o);
    }
    if !is_public(req.uri().path()) && !g.token_ok(req.headers()) {
        let mut r = ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "missing or wrong `Authorization: Bearer <token>` (the token is in DATA_DIR/api.token)",
        )
        .into_response();
        if let Some(o) = cors_origin {
            r.headers_mut()
                .insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, o);
        }
        return r;
    }
    let mut r = next.run(req).await;
    if let Some(o) = cors_origin {
        r.headers_mut()
            .insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, o);
        r.headers_mut()
            .insert(header::VARY, HeaderValue::from_static("Origin"));
    }
    r
}

fn preflight(origin: &HeaderValue) -> Response {
    let mut r = Response::new(Body::empty());
    *r.status_mut() = StatusCode::NO_CONTENT;
    let h = r.headers_mut();
    h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
    h.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("GET, POST, DELETE"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("authorization, content-type, last-event-id"),
    );
    h.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static("600"),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts() {
        let g = Guard::new("t", &["node.lan".into()], &[]);
        for ok in [
            "127.0.0.1:7421",
            "localhost:7421",
            "LOCALHOST",
            "[::1]:7421",
            "10.0.0.2",
            "node.lan:80",
        ] {
            assert!(g.host_allowed(ok), "{ok}");
        }
        for bad in [
            "evil.example:7421",
            "",
            "127.0.0.1.evil.example",
            "localhost.evil",
        ] {
            assert!(!g.host_allowed(bad), "{bad}");
        }
    }

    #[test]
    fn token_file_is_created_once_with_mode_0600() {
        let dir = tempfile::tempdir().unwrap();
        let a = load_or_create_token(dir.path()).unwrap();
        assert_eq!(a.len(), 64);
        assert_eq!(load_or_create_token(dir.path()).unwrap(), a);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(TOKEN_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert_ne!(generate_token().unwrap(), a);
    }
}
