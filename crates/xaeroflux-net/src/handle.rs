//! [`NetHandle`]: a blocking facade over [`SyncNet`] for the synchronous engine.

use std::sync::Arc;

use tokio::runtime::Runtime;
use xaeroflux_core::GroupId;
use xaeroflux_sync::SyncHost;

use crate::config::NetConfig;
use crate::error::NetError;
use crate::node::{ExtraProtocol, PeerAddr, PeerInfo, SyncNet};
use crate::ticket::Ticket;

/// A running network node with its own tokio runtime. Every method blocks the
/// calling thread briefly (none waits for the network); call them from ordinary
/// threads, not from inside an async runtime. Dropping the handle shuts it down.
#[derive(Debug)]
pub struct NetHandle {
    net: SyncNet,
    runtime: Option<Runtime>,
}

impl NetHandle {
    /// Starts a node for `host` on a multi-thread runtime of `threads` workers
    /// (at least 1).
    pub fn start(
        host: Arc<dyn SyncHost>,
        cfg: NetConfig,
        threads: usize,
    ) -> Result<NetHandle, NetError> {
        Self::start_in(Self::new_runtime(threads)?, host, cfg, Vec::new())
    }

    /// The runtime a node runs on: multi-thread, `threads` workers (at least 1). Build
    /// it first when extra protocols need a runtime to be created, then hand it to
    /// [`NetHandle::start_in`].
    pub fn new_runtime(threads: usize) -> Result<Runtime, NetError> {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads.max(1))
            .thread_name("xaeroflux-net")
            .enable_all()
            .build()
            .map_err(NetError::Runtime)
    }

    /// Starts a node for `host` on `runtime`, also serving `protocols` (see
    /// [`SyncNet::spawn_with`]).
    pub fn start_in(
        runtime: Runtime,
        host: Arc<dyn SyncHost>,
        cfg: NetConfig,
        protocols: Vec<ExtraProtocol>,
    ) -> Result<NetHandle, NetError> {
        let net = runtime.block_on(SyncNet::spawn_with(host, cfg, protocols))?;
        Ok(NetHandle {
            net,
            runtime: Some(runtime),
        })
    }

    /// The node's runtime, for async work next to it (e.g. blob fetches); `None` once
    /// shut down.
    pub fn runtime_handle(&self) -> Option<tokio::runtime::Handle> {
        self.runtime.as_ref().map(|r| r.handle().clone())
    }

    /// The async node (for callers that have a runtime of their own).
    pub fn net(&self) -> &SyncNet {
        &self.net
    }

    /// Our endpoint id.
    pub fn endpoint_id(&self) -> [u8; 32] {
        self.net.endpoint_id()
    }

    /// Our endpoint id and direct addresses.
    pub fn addr(&self) -> PeerAddr {
        self.net.addr()
    }

    /// A ticket for `group` (see [`SyncNet::ticket`]).
    pub fn ticket(&self, group: &GroupId, include_secret: bool) -> Result<Ticket, NetError> {
        self.net.ticket(group, include_secret)
    }

    /// Dials a ticket's peer (see [`SyncNet::connect`]).
    pub fn connect(&self, ticket: &Ticket) -> Result<(), NetError> {
        self.in_runtime(|n| n.connect(ticket))
    }

    /// Remembers and dials a peer (see [`SyncNet::add_peer`]).
    pub fn add_peer(&self, peer: PeerAddr, groups: &[GroupId]) -> Result<(), NetError> {
        self.in_runtime(|n| n.add_peer(peer, groups))
    }

    /// Forgets a peer (see [`SyncNet::remove_peer`]).
    pub fn remove_peer(&self, endpoint: &[u8; 32]) {
        self.net.remove_peer(endpoint)
    }

    /// Every peer we dial or have a session with.
    pub fn peers(&self) -> Vec<PeerInfo> {
        self.net.peers()
    }

    /// Closes every connection and waits for the node's tasks to end.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn in_runtime<T>(
        &self,
        f: impl FnOnce(&SyncNet) -> Result<T, NetError>,
    ) -> Result<T, NetError> {
        let rt = self.runtime.as_ref().ok_or(NetError::Closed)?;
        // Spawning tasks needs the runtime context; nothing here awaits.
        let _g = rt.enter();
        f(&self.net)
    }

    /// Stops the node. On a thread that runs another runtime's tasks (the last owner
    /// of a store dropped on an API worker, say) `block_on` would panic, so there it
    /// only signals the node's tasks and lets its runtime end in the background.
    fn stop(&mut self) {
        let Some(rt) = self.runtime.take() else {
            return;
        };
        if tokio::runtime::Handle::try_current().is_ok() {
            self.net.signal_shutdown();
            rt.shutdown_background();
            return;
        }
        rt.block_on(self.net.shutdown());
        rt.shutdown_timeout(std::time::Duration::from_secs(2));
    }
}

impl Drop for NetHandle {
    fn drop(&mut self) {
        self.stop();
    }
}
