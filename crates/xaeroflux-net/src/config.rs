//! Configuration of the network layer.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Options of a [`crate::SyncNet`] / [`crate::NetHandle`], with documented defaults.
#[derive(Debug, Clone)]
pub struct NetConfig {
    /// UDP address to bind. Default `0.0.0.0:0` (all interfaces, any port); tests use
    /// `127.0.0.1:0`.
    pub bind_addr: SocketAddr,
    /// Use iroh's public relays and address lookup (DNS, pkarr) so peers behind NATs
    /// find each other. Default `false`: direct addresses only, nothing leaves the
    /// local network unless a peer's address says so.
    pub relays: bool,
    /// Directory of the persistent state: the endpoint's secret key (so the endpoint id
    /// is stable across restarts) and the known peers. `None` = ephemeral (a new
    /// endpoint id per start, peers forgotten). Default `None`.
    pub state_dir: Option<PathBuf>,
    /// Period of [`xaeroflux_sync::Input::Tick`]. Default 250 ms.
    pub tick_interval: Duration,
    /// Close a connection whose handshake has not completed after this long (also
    /// bounds how long an accepted connection may stay silent). Default 10 s.
    pub handshake_timeout: Duration,
    /// Period of the checkpoint exchange (anti-entropy). Default 1 s.
    pub anti_entropy_interval: Duration,
    /// First delay before redialling a known peer. Default 200 ms.
    pub redial_min: Duration,
    /// Longest delay between redials. Default 30 s.
    pub redial_max: Duration,
    /// Find peers of our groups on the local network with mDNS (service
    /// `_xaeroflux._udp.local`, see [`crate::lan`]) and advertise ours. Needs the
    /// `mdns` feature; [`crate::SyncNet::spawn`] fails if it is set without it.
    /// Default `false` (the `xaeroflux` daemon turns it on).
    pub lan_discovery: bool,
    /// Limits that keep a node healthy under many or hostile peers.
    pub limits: NetLimits,
}

/// Connection and memory limits of a node (part of [`NetConfig`]). A connection or
/// session over a limit is closed at once with [`xaeroflux_sync::ErrorCode::Busy`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NetLimits {
    /// Connections accepted and dialled at once, whatever their state. Default 512.
    pub max_connections: usize,
    /// Accepted connections whose peer has not proven membership yet (each holds at
    /// most 8 KiB of frame buffers until then). Default 64.
    pub max_unauthenticated: usize,
    /// Sessions with one remote endpoint at once (all groups, both directions).
    /// Default 8.
    pub max_sessions_per_endpoint: usize,
    /// Sessions of one group at once. Default 256.
    pub max_sessions_per_group: usize,
    /// Bytes queued for sending over all sessions; the session whose frame crosses it
    /// is closed (as one whose peer does not read). Default 256 MiB.
    pub max_outbox_bytes: usize,
}

impl Default for NetLimits {
    fn default() -> Self {
        Self {
            max_connections: 512,
            max_unauthenticated: 64,
            max_sessions_per_endpoint: 8,
            max_sessions_per_group: 256,
            max_outbox_bytes: 256 * 1024 * 1024,
        }
    }
}

impl Default for NetConfig {
    fn default() -> Self {
        Self {
            bind_addr: SocketAddr::from(([0, 0, 0, 0], 0)),
            relays: false,
            state_dir: None,
            tick_interval: Duration::from_millis(250),
            handshake_timeout: Duration::from_secs(10),
            anti_entropy_interval: Duration::from_secs(1),
            redial_min: Duration::from_millis(200),
            redial_max: Duration::from_secs(30),
            lan_discovery: false,
            limits: NetLimits::default(),
        }
    }
}

impl NetConfig {
    /// Defaults bound to loopback (`127.0.0.1:0`), for tests and local tools.
    pub fn loopback() -> Self {
        Self {
            bind_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            ..Self::default()
        }
    }
}
