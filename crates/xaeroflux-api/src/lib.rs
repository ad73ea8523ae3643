//! The local service of a XaeroFlux node: an HTTP/1.1 + JSON API with live streams
//! (Server-Sent Events) and a web console, served by the daemon on `127.0.0.1:7421`.
//!
//! Apps in any language write, read and follow events through it; the `xaeroflux` CLI
//! goes through it when a daemon holds the store. Every route but `/v1/health` needs
//! the bearer token of `DATA_DIR/api.token`; foreign `Host` and `Origin` headers are
//! refused (see [`auth`]). Errors are RFC 9457 problem documents ([`Problem`]); the
//! OpenAPI document is served at `/v1/openapi.json` ([`openapi()`]).
//!
//! ```no_run
//! use std::sync::Arc;
//! use xaeroflux_api::{ApiBind, ApiOptions, ApiServer, load_or_create_token};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = std::path::Path::new("/tmp/node");
//! let store = Arc::new(xaeroflux::XaeroFlux::builder(dir).offline().open()?);
//! let token = load_or_create_token(dir)?;
//! let server = ApiServer::start(store, &"127.0.0.1:0".parse()?, ApiOptions::new(token))?;
//! println!("api on {}", server.bound());
//! server.shutdown();
//! # Ok(()) }
//! ```
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod access;
pub mod auth;
#[cfg(feature = "client")]
mod client;
mod console;
pub mod model;
mod openapi;
pub mod ops;
mod problem;
mod routes;
mod server;

pub use auth::{TOKEN_FILE, TokenError, generate_token, load_or_create_token};
#[cfg(feature = "client")]
pub use client::{Client, ClientError, EventStream};
pub use openapi::openapi;
pub use problem::{ApiError, PROBLEM_TYPE_PREFIX, Problem};
pub use routes::blobs::{BlobAdded, BlobFetched, BlobJson, DEFAULT_MAX_BLOB};
pub use routes::{ApiOptions, router};
pub use server::{ADDR_FILE, ApiBind, ApiServer, DEFAULT_API_BIND, ServeError};
