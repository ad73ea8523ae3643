//! Peer-to-peer sync: the store's groups are synced with their peers over iroh QUIC
//! (`xaeroflux-net`), starting when the store opens.
//!
//! An open store with an identity and a group is a syncing node: it listens on
//! [`NetConfig::bind_addr`], redials the peers it knew, and pushes every committed
//! event to the connected peers of its group. Peers are added with tickets
//! ([`XaeroFlux::ticket`], [`XaeroFlux::connect`], [`XaeroFlux::join`]). Writes never
//! wait for the network.

use std::sync::Mutex;

pub use xaeroflux_net::state::KnownPeer;
pub use xaeroflux_net::{NetConfig, NetHandle, PeerAddr, PeerInfo, Ticket, Traffic};

use crate::blobs::{BlobNode, BlobOptions};
use crate::flux::XaeroFlux;
use crate::{Group, GroupId, GroupSecret};
use xaeroflux_net::ExtraProtocol;
use xaeroflux_store::{Error, Result};

/// Subdirectory of the data directory holding the network state (endpoint key, peers).
pub const NET_DIR: &str = "net";

/// Network worker threads when neither the builder nor `XAERO_THREADS` says.
pub const DEFAULT_NET_THREADS: usize = 2;

/// How a store takes part in the network (see [`crate::Builder::network`]).
#[derive(Debug, Clone)]
pub struct NetworkOptions {
    /// The endpoint's configuration.
    pub config: NetConfig,
    /// Worker threads of the network runtime (at least 1).
    pub threads: usize,
    /// Blob store, serving and fetching on this node (`crate::blobs`); `None` = no
    /// blobs. Default on.
    pub blobs: Option<BlobOptions>,
}

impl NetworkOptions {
    /// Defaults for a store in `data_dir`: all interfaces, relays off, the endpoint key
    /// and known peers in `data_dir/net`, threads from `XAERO_THREADS` (else 2).
    pub fn for_data_dir(data_dir: &std::path::Path) -> Self {
        let config = NetConfig {
            state_dir: Some(data_dir.join(NET_DIR)),
            ..NetConfig::default()
        };
        let threads = std::env::var("XAERO_THREADS")
            .ok()
            .and_then(|t| t.parse::<usize>().ok())
            .filter(|t| *t > 0)
            .unwrap_or(DEFAULT_NET_THREADS);
        Self {
            config,
            threads,
            blobs: Some(BlobOptions::default()),
        }
    }
}

/// The peers a store in `data_dir` remembers (redials on start), read without opening
/// the store: endpoint id, addresses and groups. A missing or corrupt file yields none.
pub fn known_peers(data_dir: &std::path::Path) -> Vec<([u8; 32], KnownPeer)> {
    xaeroflux_net::state::load_peers(&data_dir.join(NET_DIR))
        .into_iter()
        .collect()
}

/// The running network node of a store, if any.
#[derive(Debug, Default)]
pub(crate) struct NetSlot(Mutex<Option<NetHandle>>);

impl NetSlot {
    pub(crate) fn set(&self, h: NetHandle) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(h);
    }

    fn with<T>(&self, f: impl FnOnce(&NetHandle) -> Result<T>) -> Result<T> {
        let g = self.0.lock().unwrap_or_else(|p| p.into_inner());
        match g.as_ref() {
            Some(h) => f(h),
            None => Err(Error::Config(
                "networking is off for this store (Builder::offline)".into(),
            )),
        }
    }

    /// Closes every connection and stops the network threads.
    pub(crate) fn stop(&self) {
        let h = self.0.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(h) = h {
            h.shutdown();
        }
    }
}

fn net_err(e: impl std::fmt::Display) -> Error {
    Error::Network(e.to_string())
}

impl XaeroFlux {
    /// Starts the network node (done by `open` unless the store was opened offline).
    pub(crate) fn start_network(&self, opts: NetworkOptions) -> Result<()> {
        let host: std::sync::Arc<dyn xaeroflux_sync::SyncHost> =
            self.sync_host_with_gate(self.access.control.clone());
        let rt = NetHandle::new_runtime(opts.threads).map_err(net_err)?;
        let (blobs, protocols) = match opts.blobs {
            Some(b) => {
                let (node, handler) = BlobNode::open(self, &rt, b).map_err(net_err)?;
                let p = ExtraProtocol::new(xaeroflux_blobs::ALPN, handler);
                (Some(node), vec![p])
            }
            None => (None, Vec::new()),
        };
        let h = NetHandle::start_in(rt, host, opts.config, protocols).map_err(net_err)?;
        if let Some(node) = blobs {
            node.attach(h.net().clone(), BlobNode::subscription(self));
            self.blob_slot.set(node);
        }
        self.net.set(h);
        Ok(())
    }

    /// This node's endpoint id (iroh public key) and direct addresses.
    pub fn node_addr(&self) -> Result<PeerAddr> {
        self.net.with(|h| Ok(h.addr()))
    }

    /// A ticket other nodes use to connect to this one for `group`. With
    /// `include_secret` it is an *invite*: whoever holds it can read and write the group,
    /// so share it only with members.
    pub fn ticket(&self, group: &GroupId, include_secret: bool) -> Result<String> {
        if self.group(group)?.is_none() {
            return Err(Error::Config(format!("unknown group {group}")));
        }
        self.net
            .with(|h| h.ticket(group, include_secret).map_err(net_err))
            .map(|t| t.to_string())
    }

    /// Connects to the peer of a ticket (and keeps redialling it while known). The
    /// ticket's group must be one of this store's groups; use [`XaeroFlux::join`] for an
    /// invite.
    pub fn connect(&self, ticket: &str) -> Result<()> {
        let t: Ticket = ticket.trim().parse().map_err(net_err)?;
        let group = GroupId(t.group);
        if self.group(&group)?.is_none() {
            return Err(Error::Config(format!(
                "this store is not a member of group {group}; join it with an invite"
            )));
        }
        self.net.with(|h| h.connect(&t).map_err(net_err))
    }

    /// Joins the group of an invite (a ticket that carries the group secret) and
    /// connects to its peer. Returns the group.
    pub fn join(&self, invite: &str) -> Result<Group> {
        let t: Ticket = invite.trim().parse().map_err(net_err)?;
        let secret = t.secret.ok_or_else(|| {
            Error::Config("this ticket carries no group secret: ask for an invite".into())
        })?;
        let secret = GroupSecret::from_bytes(secret);
        if Group::from_secret(secret.clone()).id().0 != t.group {
            return Err(Error::Config(
                "the invite's secret does not match its group id".into(),
            ));
        }
        let group = self.join_group(secret)?;
        self.net.with(|h| h.connect(&t).map_err(net_err))?;
        Ok(group)
    }

    /// Every peer this node dials or has a session with.
    pub fn peers(&self) -> Result<Vec<PeerInfo>> {
        self.net.with(|h| Ok(h.peers()))
    }

    /// Forgets a peer: stops redialling it and removes it from the remembered peers.
    pub fn forget_peer(&self, endpoint: &[u8; 32]) -> Result<()> {
        self.net.with(|h| {
            h.remove_peer(endpoint);
            Ok(())
        })
    }

    /// Whether the network node is running.
    pub fn is_online(&self) -> bool {
        self.net.with(|_| Ok(())).is_ok()
    }
}
