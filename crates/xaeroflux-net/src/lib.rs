//! XaeroFlux network layer: the `xaeroflux/sync/1` protocol over iroh QUIC.
//!
//! A [`SyncNet`] owns an iroh endpoint that serves the ALPN [`ALPN`] and drives one
//! [`xaeroflux_sync::Session`] per (connection, group) against a
//! [`xaeroflux_sync::SyncHost`] (the engine, or an in-memory host in tests). Peers are
//! added with [`Ticket`]s or addresses and redialled with backoff while known; the
//! known peers and the endpoint's key live in [`NetConfig::state_dir`].
//! [`NetHandle`] wraps it all in a runtime of its own for synchronous callers.
//!
//! Offline first: relays and public address lookup are off unless
//! [`NetConfig::relays`] is set; writes never wait for the network (committed batches
//! are pushed when a session is up, anti-entropy repairs the rest).
//!
//! ```
//! use xaeroflux_net::Ticket;
//!
//! let t = Ticket {
//!     endpoint: [7; 32],
//!     addrs: vec!["127.0.0.1:4433".parse().unwrap()],
//!     group: [9; 32],
//!     secret: None,
//! };
//! let text = t.to_string();
//! assert!(text.starts_with("xfx1"));
//! assert_eq!(text.parse::<Ticket>().unwrap(), t);
//! ```
//!
//! Without the default `net` feature only the [`ticket`] and [`lan`] codecs are built.
//! Wire and file formats: `docs/FORMAT.md` ("Sync protocol", "Transport").

pub mod lan;
pub mod ticket;

#[cfg(feature = "net")]
mod config;
#[cfg(feature = "net")]
mod error;
#[cfg(feature = "net")]
mod handle;
#[cfg(feature = "net")]
mod node;
#[cfg(feature = "net")]
pub mod state;

#[cfg(feature = "net")]
pub use config::{NetConfig, NetLimits};
#[cfg(feature = "net")]
pub use error::NetError;
#[cfg(feature = "net")]
pub use handle::NetHandle;
#[cfg(feature = "net")]
pub use node::{
    ALPN, ExtraProtocol, KEYING_CONTEXT, KEYING_LABEL, PeerAddr, PeerInfo, SyncNet, Traffic,
};
pub use ticket::{Ticket, TicketError};
