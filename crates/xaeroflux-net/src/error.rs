//! Errors of the network layer.

use xaeroflux_sync::HostError;

use crate::state::StateError;

/// Why a network operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NetError {
    /// The bind address is not usable.
    #[error("invalid bind address")]
    BindAddr(#[source] iroh::endpoint::InvalidSocketAddr),
    /// The endpoint could not bind its sockets.
    #[error("cannot bind the endpoint")]
    Bind(#[source] iroh::endpoint::BindError),
    /// The state directory could not be used.
    #[error(transparent)]
    State(#[from] StateError),
    /// Bytes that are not an endpoint id (an ed25519 public key).
    #[error("invalid endpoint id")]
    EndpointId,
    /// The group is not one the host syncs.
    #[error("unknown group")]
    UnknownGroup,
    /// A ticket whose secret does not derive its group id.
    #[error("ticket secret does not match its group id")]
    TicketMismatch,
    /// The host refused a call.
    #[error(transparent)]
    Host(#[from] HostError),
    /// The async runtime could not be started.
    #[error("cannot start the runtime")]
    Runtime(#[source] std::io::Error),
    /// LAN discovery could not start (or was asked for without the `mdns` feature).
    #[error("LAN discovery: {0}")]
    Lan(String),
    /// An extra protocol's ALPN is ours or listed twice.
    #[error("ALPN {alpn:?} is served twice")]
    DuplicateAlpn {
        /// The ALPN, as text.
        alpn: String,
    },
    /// The network layer is shut down.
    #[error("the network layer is shut down")]
    Closed,
}
