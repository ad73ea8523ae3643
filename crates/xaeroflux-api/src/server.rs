//! Serving the router on its own small runtime, on TCP or a Unix socket.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use tokio::runtime::Runtime;
use tokio::sync::oneshot;
use xaeroflux::XaeroFlux;

use crate::routes::{ApiOptions, router};

/// Where the API listens by default.
pub const DEFAULT_API_BIND: &str = "127.0.0.1:7421";
/// File of the data directory naming the running daemon's API address
/// (`http://HOST:PORT` or `unix:PATH`), present while it runs.
pub const ADDR_FILE: &str = "api.addr";
/// Worker threads of the API runtime.
const WORKERS: usize = 2;
/// Threads for blocking store work (writes wait for their flush there).
const MAX_BLOCKING: usize = 64;
/// How long shutdown lets requests finish before dropping them (streams never do).
const GRACE: Duration = Duration::from_millis(500);

/// A listening address: TCP (`127.0.0.1:7421`) or a Unix socket (`unix:/path`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiBind {
    /// A TCP address.
    Tcp(SocketAddr),
    /// A Unix domain socket path.
    Unix(PathBuf),
}

impl FromStr for ApiBind {
    type Err = ServeError;

    fn from_str(s: &str) -> Result<Self, ServeError> {
        let s = s.trim();
        if let Some(p) = s.strip_prefix("unix:") {
            if p.is_empty() {
                return Err(ServeError::BadAddress { addr: s.into() });
            }
            return Ok(ApiBind::Unix(PathBuf::from(p)));
        }
        let s = s.strip_prefix("http://").unwrap_or(s);
        s.parse()
            .map(ApiBind::Tcp)
            .map_err(|_| ServeError::BadAddress { addr: s.into() })
    }
}

impl fmt::Display for ApiBind {
    /// `http://HOST:PORT` or `unix:PATH`: what [`ADDR_FILE`] holds.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ApiBind::Tcp(a) => write!(f, "http://{a}"),
            ApiBind::Unix(p) => write!(f, "unix:{}", p.display()),
        }
    }
}

/// Why the API could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// Not an address (`HOST:PORT` or `unix:PATH`).
    #[error("{addr:?} is not an api address (HOST:PORT or unix:PATH)")]
    BadAddress {
        /// The text.
        addr: String,
    },
    /// The runtime could not start.
    #[error("api runtime")]
    Runtime(#[source] std::io::Error),
    /// Binding failed (address in use, permission).
    #[error("binding the api to {addr}")]
    Bind {
        /// The address.
        addr: String,
        /// The failure.
        #[source]
        source: std::io::Error,
    },
    /// Writing the address file failed.
    #[error("writing {path}")]
    AddrFile {
        /// The file.
        path: PathBuf,
        /// The failure.
        #[source]
        source: std::io::Error,
    },
}

/// The API served on a background runtime until [`ApiServer::shutdown`] (or drop).
pub struct ApiServer {
    runtime: Option<Runtime>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
    bound: ApiBind,
    addr_file: Option<PathBuf>,
}

impl fmt::Debug for ApiServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiServer")
            .field("bound", &self.bound)
            .finish_non_exhaustive()
    }
}

impl ApiServer {
    /// Binds `bind` and serves the API over `store` (port 0 picks a free port; see
    /// [`ApiServer::bound`]).
    pub fn start(
        store: Arc<XaeroFlux>,
        bind: &ApiBind,
        opts: ApiOptions,
    ) -> Result<Self, ServeError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(WORKERS)
            .max_blocking_threads(MAX_BLOCKING)
            .thread_name("xaeroflux-api")
            .enable_all()
            .build()
            .map_err(ServeError::Runtime)?;
        let app = router(store, opts);
        let (stop, stopped) = oneshot::channel::<()>();
        let bind_err = |source| ServeError::Bind {
            addr: bind.to_string(),
            source,
        };
        let (bound, task) = match bind {
            ApiBind::Tcp(addr) => {
                let l = runtime
                    .block_on(tokio::net::TcpListener::bind(addr))
                    .map_err(bind_err)?;
                let bound = ApiBind::Tcp(l.local_addr().map_err(bind_err)?);
                let task = runtime.spawn(async move {
                    let serve = axum::serve(l, app).with_graceful_shutdown(async {
                        let _ = stopped.await;
                    });
                    if let Err(e) = serve.await {
                        tracing::warn!(error = %e, "api server stopped");
                    }
                });
                (bound, task)
            }
            ApiBind::Unix(path) => {
                let _ = std::fs::remove_file(path);
                let l = {
                    let _guard = runtime.enter();
                    tokio::net::UnixListener::bind(path).map_err(bind_err)?
                };
                #[cfg(unix)]
                {
                    use std::os::unix::fs::PermissionsExt;
                    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
                        .map_err(bind_err)?;
                }
                let task = runtime.spawn(async move {
                    let serve = axum::serve(l, app).with_graceful_shutdown(async {
                        let _ = stopped.await;
                    });
                    if let Err(e) = serve.await {
                        tracing::warn!(error = %e, "api server stopped");
                    }
                });
                (bind.clone(), task)
            }
        };
        Ok(ApiServer {
            runtime: Some(runtime),
            stop: Some(stop),
            task: Some(task),
            bound,
            addr_file: None,
        })
    }

    /// Where it listens (with the real port when bound to port 0).
    pub fn bound(&self) -> &ApiBind {
        &self.bound
    }

    /// The base URL of a TCP server, e.g. `http://127.0.0.1:7421`.
    pub fn url(&self) -> Option<String> {
        match &self.bound {
            ApiBind::Tcp(_) => Some(self.bound.to_string()),
            ApiBind::Unix(_) => None,
        }
    }

    /// Writes the address to `data_dir/api.addr` so local clients find the server; the
    /// file is removed on shutdown.
    pub fn publish(&mut self, data_dir: &Path) -> Result<(), ServeError> {
        let path = data_dir.join(ADDR_FILE);
        std::fs::write(&path, format!("{}\n", self.bound)).map_err(|source| {
            ServeError::AddrFile {
                path: path.clone(),
                source,
            }
        })?;
        self.addr_file = Some(path);
        Ok(())
    }

    /// Stops accepting, lets requests finish briefly, then drops open streams.
    pub fn shutdown(mut self) {
        self.stop_inner();
    }

    fn stop_inner(&mut self) {
        if let Some(p) = self.addr_file.take() {
            let _ = std::fs::remove_file(p);
        }
        if let ApiBind::Unix(p) = &self.bound {
            let _ = std::fs::remove_file(p);
        }
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(rt) = self.runtime.take() {
            if let Some(task) = self.task.take() {
                let _ = rt.block_on(async { tokio::time::timeout(GRACE, task).await });
            }
            rt.shutdown_timeout(GRACE);
        }
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        self.stop_inner();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binds_parse_and_print() {
        let t: ApiBind = "127.0.0.1:7421".parse().unwrap();
        assert_eq!(t.to_string(), "http://127.0.0.1:7421");
        assert_eq!("http://127.0.0.1:7421".parse::<ApiBind>().unwrap(), t);
        let u: ApiBind = "unix:/run/x.sock".parse().unwrap();
        assert_eq!(u, ApiBind::Unix("/run/x.sock".into()));
        assert_eq!(u.to_string(), "unix:/run/x.sock");
        for bad in ["", "unix:", "localhost", "1.2.3.4"] {
            assert!(bad.parse::<ApiBind>().is_err(), "{bad}");
        }
    }
}
