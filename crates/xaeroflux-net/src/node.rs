//! [`SyncNet`]: an iroh endpoint serving `xaeroflux/sync/1` for a [`SyncHost`].
//!
//! Layout of the tasks:
//! - the iroh [`Router`] accepts connections on [`ALPN`] and hands each to
//!   [`session::accept`], which peeks the first frame (a Hello) to pick the group;
//! - one task per known (peer, group) dials, runs the initiator session, and redials
//!   with exponential backoff and jitter while the peer is known;
//! - each session runs in its own task ([`session::drive`]); the blocking work (read
//!   views, Falcon checks, handing batches to the storage writer) runs in
//!   `spawn_blocking`, one input at a time, so outputs keep their order;
//! - one OS thread reads the host's committed feed and fans the batches out to the
//!   established sessions of their group ([`feed`]).

mod feed;
#[cfg(feature = "mdns")]
pub mod lan;
mod session;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use iroh::endpoint::{Connection, presets};
use iroh::protocol::{DynProtocolHandler, Router};
use iroh::{Endpoint, EndpointAddr, PublicKey, RelayMode, SecretKey};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use xaeroflux_core::{Group, GroupId, GroupSecret};
use xaeroflux_sync::{CommittedBatch, SyncHost};
use xaeroid::IdHash;

use crate::config::NetConfig;
use crate::error::NetError;
use crate::state::{self, KnownPeer};
use crate::ticket::Ticket;

/// The ALPN of the sync protocol (also its protocol tag).
pub const ALPN: &[u8] = b"xaeroflux/sync/1";
/// Label of the TLS keying material bound into the handshake transcript.
pub const KEYING_LABEL: &[u8] = b"xaeroflux/sync/1";
/// Context of the TLS keying material (empty).
pub const KEYING_CONTEXT: &[u8] = b"";

/// Where a peer can be reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerAddr {
    /// Its endpoint id (iroh public key).
    pub endpoint: [u8; 32],
    /// Its direct socket addresses.
    pub addrs: Vec<SocketAddr>,
}

/// What we know about a peer (see [`SyncNet::peers`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerInfo {
    /// Its endpoint id.
    pub endpoint: [u8; 32],
    /// Its identity, once a session authenticated it.
    pub identity: Option<IdHash>,
    /// Its direct addresses, if we dial it.
    pub addrs: Vec<SocketAddr>,
    /// Groups we dial it for or have a session with.
    pub groups: Vec<GroupId>,
    /// Whether we dial it (remembered across restarts).
    pub known: bool,
    /// Whether at least one session with it is established.
    pub connected: bool,
    /// Verified events received from it since start.
    pub events_received: u64,
    /// Bytes of those events.
    pub bytes_received: u64,
    /// Traffic of every session with it since start, ended sessions included.
    pub traffic: Traffic,
}

/// What the sync sessions with a peer put on the wire.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Traffic {
    /// Sync frames sent.
    pub frames_sent: u64,
    /// Sync frames received.
    pub frames_received: u64,
    /// Bytes of the frames sent (frame headers included).
    pub bytes_sent: u64,
    /// Bytes of the frames received.
    pub bytes_received: u64,
    /// Bytes of the UDP datagrams the QUIC connections sent: frames plus QUIC
    /// packet headers, encryption tags, acknowledgements and the TLS handshake (but
    /// not IP and UDP headers).
    pub udp_bytes_sent: u64,
    /// Bytes of the UDP datagrams the QUIC connections received.
    pub udp_bytes_received: u64,
}

impl Traffic {
    fn add(&mut self, o: &Traffic) {
        self.frames_sent += o.frames_sent;
        self.frames_received += o.frames_received;
        self.bytes_sent += o.bytes_sent;
        self.bytes_received += o.bytes_received;
        self.udp_bytes_sent += o.udp_bytes_sent;
        self.udp_bytes_received += o.udp_bytes_received;
    }
}

/// Frame counters of one running session, updated by its driver without the tables
/// lock.
#[derive(Debug, Default)]
pub(crate) struct SessionCounters {
    pub(crate) frames_sent: AtomicU64,
    pub(crate) frames_received: AtomicU64,
    pub(crate) bytes_sent: AtomicU64,
    pub(crate) bytes_received: AtomicU64,
}

impl SessionCounters {
    /// The counters with the connection's UDP totals.
    fn traffic(&self, conn: &Connection) -> Traffic {
        let st = conn.stats();
        Traffic {
            frames_sent: self.frames_sent.load(Ordering::Relaxed),
            frames_received: self.frames_received.load(Ordering::Relaxed),
            bytes_sent: self.bytes_sent.load(Ordering::Relaxed),
            bytes_received: self.bytes_received.load(Ordering::Relaxed),
            udp_bytes_sent: st.udp_tx.bytes,
            udp_bytes_received: st.udp_rx.bytes,
        }
    }
}

/// Per-peer bookkeeping.
#[derive(Debug, Default)]
struct PeerEntry {
    known: Option<KnownPeer>,
    identity: Option<IdHash>,
    events_received: u64,
    bytes_received: u64,
    /// Traffic of the sessions that ended.
    traffic: Traffic,
}

/// A running session, for the committed fan-out and duplicate detection.
#[derive(Debug)]
struct SessionSlot {
    peer: [u8; 32],
    group: GroupId,
    initiator: bool,
    established: bool,
    tx: mpsc::Sender<CommittedBatch>,
    conn: Connection,
    counters: Arc<SessionCounters>,
    /// Bytes queued for its writer.
    queued: Arc<AtomicUsize>,
}

#[derive(Debug, Default)]
struct Tables {
    peers: BTreeMap<[u8; 32], PeerEntry>,
    sessions: HashMap<u64, SessionSlot>,
    /// (peer, group) pairs with a running dial task.
    dialing: HashSet<([u8; 32], GroupId)>,
    /// Accepted connections still waiting for their first frame.
    peeking: usize,
}

impl Tables {
    /// Connections counted against [`crate::config::NetLimits::max_connections`].
    fn connections(&self) -> usize {
        self.peeking + self.sessions.len()
    }

    /// Accepted connections whose peer has not proven membership.
    fn unauthenticated(&self) -> usize {
        self.peeking
            + self
                .sessions
                .values()
                .filter(|s| !s.initiator && !s.established)
                .count()
    }

    /// Bytes queued for sending over all sessions.
    fn outbox_bytes(&self) -> usize {
        self.sessions
            .values()
            .map(|s| s.queued.load(Ordering::Relaxed))
            .sum()
    }
}

/// State shared by every task of a node.
pub(crate) struct Inner {
    host: Arc<dyn SyncHost>,
    endpoint: Endpoint,
    cfg: NetConfig,
    origin: Instant,
    shutdown: watch::Sender<bool>,
    tables: Mutex<Tables>,
    next_session: AtomicU64,
    dials: Mutex<JoinSet<()>>,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inner")
            .field("endpoint", &self.endpoint.id().fmt_short().to_string())
            .finish_non_exhaustive()
    }
}

impl Inner {
    fn tables(&self) -> MutexGuard<'_, Tables> {
        // A panic while holding the lock cannot leave the tables inconsistent in a way
        // that matters more than stopping the node would: keep going.
        self.tables.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn is_shutdown(&self) -> bool {
        *self.shutdown.borrow()
    }

    fn local_id(&self) -> [u8; 32] {
        *self.endpoint.id().as_bytes()
    }

    fn group(&self, id: &GroupId) -> Option<Group> {
        self.host.groups().into_iter().find(|g| g.id() == *id)
    }

    fn persist_peers(&self) {
        let Some(dir) = &self.cfg.state_dir else {
            return;
        };
        let known: BTreeMap<[u8; 32], KnownPeer> = self
            .tables()
            .peers
            .iter()
            .filter_map(|(id, p)| p.known.clone().map(|k| (*id, k)))
            .collect();
        if let Err(e) = state::save_peers(dir, &known) {
            tracing::warn!(error = %e, "cannot save known peers");
        }
    }
}

/// A protocol served next to [`ALPN`] on the node's endpoint (see
/// [`SyncNet::spawn_with`]).
#[derive(Debug)]
pub struct ExtraProtocol {
    /// Its ALPN.
    pub alpn: Vec<u8>,
    /// The handler of its connections.
    pub handler: Box<dyn DynProtocolHandler>,
}

impl ExtraProtocol {
    /// `handler` under `alpn`.
    pub fn new(alpn: impl Into<Vec<u8>>, handler: impl Into<Box<dyn DynProtocolHandler>>) -> Self {
        Self {
            alpn: alpn.into(),
            handler: handler.into(),
        }
    }
}

/// The async network node. Cheap to clone; all clones drive the same endpoint.
#[derive(Debug, Clone)]
pub struct SyncNet {
    inner: Arc<Inner>,
    router: Router,
    feed: Arc<Mutex<Option<std::thread::JoinHandle<()>>>>,
}

impl SyncNet {
    /// Binds the endpoint, starts serving [`ALPN`] and the committed feed, and dials
    /// the peers remembered in the state directory. Must run inside a tokio runtime.
    pub async fn spawn(host: Arc<dyn SyncHost>, cfg: NetConfig) -> Result<Self, NetError> {
        Self::spawn_with(host, cfg, Vec::new()).await
    }

    /// Like [`SyncNet::spawn`], and also serves `protocols` (ALPN and handler) on the
    /// same endpoint and router, e.g. blob transfer. The endpoint advertises their ALPNs
    /// next to [`ALPN`]; an ALPN equal to ours or listed twice is refused.
    pub async fn spawn_with(
        host: Arc<dyn SyncHost>,
        cfg: NetConfig,
        protocols: Vec<ExtraProtocol>,
    ) -> Result<Self, NetError> {
        let mut alpns = vec![ALPN.to_vec()];
        for p in &protocols {
            if alpns.contains(&p.alpn) {
                return Err(NetError::DuplicateAlpn {
                    alpn: String::from_utf8_lossy(&p.alpn).into_owned(),
                });
            }
            alpns.push(p.alpn.clone());
        }
        #[cfg(not(feature = "mdns"))]
        if cfg.lan_discovery {
            return Err(NetError::Lan("built without the `mdns` feature".into()));
        }
        let secret = match &cfg.state_dir {
            Some(dir) => SecretKey::from_bytes(&state::load_or_create_key(dir, || {
                SecretKey::generate().to_bytes()
            })?),
            None => SecretKey::generate(),
        };
        let builder = if cfg.relays {
            Endpoint::builder(presets::N0)
        } else {
            Endpoint::builder(presets::Minimal)
                .relay_mode(RelayMode::Disabled)
                .clear_address_lookup()
        };
        let endpoint = builder
            .clear_ip_transports()
            .bind_addr(cfg.bind_addr)
            .map_err(NetError::BindAddr)?
            .secret_key(secret)
            .alpns(alpns)
            .bind()
            .await
            .map_err(NetError::Bind)?;
        let feed_source = host.committed_feed()?;
        let (shutdown, _) = watch::channel(false);
        let known = cfg
            .state_dir
            .as_deref()
            .map(state::load_peers)
            .unwrap_or_default();
        let inner = Arc::new(Inner {
            host,
            endpoint: endpoint.clone(),
            cfg,
            origin: Instant::now(),
            shutdown,
            tables: Mutex::new(Tables::default()),
            next_session: AtomicU64::new(1),
            dials: Mutex::new(JoinSet::new()),
        });
        let mut router = Router::builder(endpoint).accept(ALPN, session::Acceptor(inner.clone()));
        for p in protocols {
            router = router.accept(p.alpn, p.handler);
        }
        let router = router.spawn();
        let feed = feed::spawn(inner.clone(), feed_source).map_err(NetError::Runtime)?;
        let net = SyncNet {
            inner,
            router,
            feed: Arc::new(Mutex::new(Some(feed))),
        };
        #[cfg(feature = "mdns")]
        if net.inner.cfg.lan_discovery
            && let Err(e) = lan::start(&net)
        {
            net.shutdown().await;
            return Err(e);
        }
        for (id, p) in known {
            let groups: Vec<GroupId> = p.groups.iter().map(|g| GroupId(*g)).collect();
            // Seed the entry first so the dial task sees the remembered flags.
            net.inner.tables().peers.entry(id).or_default().known = Some(p.clone());
            if let Err(e) = net.add_peer(
                PeerAddr {
                    endpoint: id,
                    addrs: p.addrs,
                },
                &groups,
            ) {
                tracing::warn!(error = %e, "ignoring remembered peer");
            }
        }
        Ok(net)
    }

    /// Our endpoint id.
    pub fn endpoint_id(&self) -> [u8; 32] {
        self.inner.local_id()
    }

    /// The iroh endpoint: dial other protocols with the node's own identity (a peer
    /// authorises by the endpoint id TLS authenticated).
    pub fn endpoint(&self) -> &Endpoint {
        &self.inner.endpoint
    }

    /// The groups `endpoint` has shown it belongs to: those of a session whose
    /// handshake completed (it proved the group secret) and those we remember it for
    /// (a peer the user added). With its identity, once a handshake told it.
    pub fn member_groups(&self, endpoint: &[u8; 32]) -> (Vec<GroupId>, Option<IdHash>) {
        let t = self.inner.tables();
        let Some(p) = t.peers.get(endpoint) else {
            return (Vec::new(), None);
        };
        let mut groups: BTreeSet<GroupId> = p
            .known
            .iter()
            .flat_map(|k| k.groups.iter().map(|g| GroupId(*g)))
            .collect();
        for s in t.sessions.values() {
            if s.peer == *endpoint && s.established {
                groups.insert(s.group);
            }
        }
        (groups.into_iter().collect(), p.identity)
    }

    /// Our endpoint id and the direct addresses we are bound to.
    pub fn addr(&self) -> PeerAddr {
        let mut addrs: Vec<SocketAddr> = self.inner.endpoint.addr().ip_addrs().copied().collect();
        for s in self.inner.endpoint.bound_sockets() {
            if !s.ip().is_unspecified() && !addrs.contains(&s) {
                addrs.push(s);
            }
        }
        PeerAddr {
            endpoint: self.endpoint_id(),
            addrs,
        }
    }

    /// A ticket for `group`; with `include_secret` it is an invite that grants
    /// membership (hand it only to people who may join).
    pub fn ticket(&self, group: &GroupId, include_secret: bool) -> Result<Ticket, NetError> {
        let g = self.inner.group(group).ok_or(NetError::UnknownGroup)?;
        let a = self.addr();
        Ok(Ticket {
            endpoint: a.endpoint,
            addrs: a.addrs,
            group: group.0,
            secret: include_secret.then(|| *g.secret().expose()),
        })
    }

    /// Dials the ticket's peer for its group (and keeps redialling while it is known).
    /// The group must be one the host syncs: a ticket's secret is checked against its
    /// group id, but joining a group is the host's business.
    pub fn connect(&self, ticket: &Ticket) -> Result<(), NetError> {
        if let Some(s) = ticket.secret
            && Group::from_secret(GroupSecret::from_bytes(s)).id().0 != ticket.group
        {
            return Err(NetError::TicketMismatch);
        }
        self.add_peer(
            PeerAddr {
                endpoint: ticket.endpoint,
                addrs: ticket.addrs.clone(),
            },
            &[GroupId(ticket.group)],
        )
    }

    /// Remembers a peer (persisted) and dials it for `groups` (all of the host's groups
    /// when empty), redialling with backoff while it is known.
    pub fn add_peer(&self, peer: PeerAddr, groups: &[GroupId]) -> Result<(), NetError> {
        if self.inner.is_shutdown() {
            return Err(NetError::Closed);
        }
        PublicKey::from_bytes(&peer.endpoint).map_err(|_| NetError::EndpointId)?;
        if peer.endpoint == self.inner.local_id() {
            return Err(NetError::EndpointId);
        }
        let ours: Vec<GroupId> = self.inner.host.groups().iter().map(Group::id).collect();
        let groups: Vec<GroupId> = if groups.is_empty() {
            ours
        } else {
            if let Some(_unknown) = groups.iter().find(|g| !ours.contains(g)) {
                return Err(NetError::UnknownGroup);
            }
            groups.to_vec()
        };
        let mut start = Vec::new();
        {
            let mut t = self.inner.tables();
            let e = t.peers.entry(peer.endpoint).or_default();
            let k = e.known.get_or_insert_with(KnownPeer::default);
            if !peer.addrs.is_empty() {
                k.addrs = peer.addrs.clone();
            }
            k.groups.extend(groups.iter().map(|g| g.0));
            for g in &groups {
                if t.dialing.insert((peer.endpoint, *g)) {
                    start.push(*g);
                }
            }
        }
        self.inner.persist_peers();
        let mut dials = self.inner.dials.lock().unwrap_or_else(|p| p.into_inner());
        for g in start {
            dials.spawn(dial_loop(self.inner.clone(), peer.endpoint, g));
        }
        Ok(())
    }

    /// Forgets a peer: stops redialling it (running sessions end on their own) and
    /// removes it from the persisted list.
    pub fn remove_peer(&self, endpoint: &[u8; 32]) {
        if let Some(e) = self.inner.tables().peers.get_mut(endpoint) {
            e.known = None;
        }
        self.inner.persist_peers();
    }

    /// Every peer we dial or have a session with.
    pub fn peers(&self) -> Vec<PeerInfo> {
        let t = self.inner.tables();
        t.peers
            .iter()
            .map(|(id, p)| {
                let mut groups: BTreeSet<GroupId> = p
                    .known
                    .iter()
                    .flat_map(|k| k.groups.iter().map(|g| GroupId(*g)))
                    .collect();
                let mut connected = false;
                let mut traffic = p.traffic;
                for s in t.sessions.values().filter(|s| s.peer == *id) {
                    groups.insert(s.group);
                    connected |= s.established;
                    traffic.add(&s.counters.traffic(&s.conn));
                }
                PeerInfo {
                    endpoint: *id,
                    identity: p.identity,
                    addrs: p
                        .known
                        .as_ref()
                        .map(|k| k.addrs.clone())
                        .unwrap_or_default(),
                    groups: groups.into_iter().collect(),
                    known: p.known.is_some(),
                    connected,
                    events_received: p.events_received,
                    bytes_received: p.bytes_received,
                    traffic,
                }
            })
            .collect()
    }

    /// Closes every session and the endpoint, and waits for the tasks and the feed
    /// thread to end.
    pub async fn shutdown(&self) {
        self.inner.shutdown.send_replace(true);
        if let Err(e) = self.router.shutdown().await {
            tracing::warn!(error = %e, "router shutdown");
        }
        let mut dials =
            std::mem::take(&mut *self.inner.dials.lock().unwrap_or_else(|p| p.into_inner()));
        // Dial tasks see the flag at their next await point; bound the wait anyway.
        let _ = tokio::time::timeout(Duration::from_secs(5), async {
            while dials.join_next().await.is_some() {}
        })
        .await;
        dials.abort_all();
        let feed = self.feed.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(h) = feed {
            let _ = tokio::task::spawn_blocking(move || h.join()).await;
        }
    }

    /// Tells every task to stop without waiting for them.
    pub fn signal_shutdown(&self) {
        self.inner.shutdown.send_replace(true);
    }

    /// Whether [`SyncNet::shutdown`] was called.
    pub fn is_shutdown(&self) -> bool {
        self.inner.is_shutdown()
    }
}

/// A small SplitMix64 for backoff jitter (no need for a cryptographic source).
struct Jitter(u64);

impl Jitter {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// `d` scaled by a random factor in [0.5, 1.0].
    fn apply(&mut self, d: Duration) -> Duration {
        let f = 0.5 + (self.next() >> 11) as f64 / (1u64 << 54) as f64;
        d.mul_f64(f)
    }
}

/// Dials `peer` for `group` until the peer is forgotten or the node shuts down.
async fn dial_loop(inner: Arc<Inner>, peer: [u8; 32], group: GroupId) {
    let seed = inner.origin.elapsed().as_nanos() as u64
        ^ u64::from_le_bytes([
            peer[0], peer[1], peer[2], peer[3], peer[4], peer[5], peer[6], peer[7],
        ]);
    let mut jitter = Jitter(seed);
    let mut delay = inner.cfg.redial_min;
    let mut stop = inner.shutdown.subscribe();
    loop {
        let (addrs, serving) = {
            let t = inner.tables();
            let Some(k) = t.peers.get(&peer).and_then(|p| p.known.as_ref()) else {
                break;
            };
            let serving = t
                .sessions
                .values()
                .any(|s| s.peer == peer && s.group == group);
            (k.addrs.clone(), serving)
        };
        if inner.is_shutdown() {
            break;
        }
        let mut wait = jitter.apply(delay);
        if serving {
            // The peer dialled us for this group: nothing to do while that lasts.
            wait = inner.cfg.redial_min.max(Duration::from_millis(500));
        } else if let Ok(key) = PublicKey::from_bytes(&peer) {
            let mut addr = EndpointAddr::new(key);
            for a in &addrs {
                addr = addr.with_ip_addr(*a);
            }
            let dialled = tokio::select! {
                biased;
                _ = stop.wait_for(|s| *s) => break,
                r = tokio::time::timeout(
                    inner.cfg.handshake_timeout,
                    inner.endpoint.connect(addr, ALPN),
                ) => r,
            };
            match dialled {
                Ok(Ok(conn)) => {
                    let established = session::initiate(inner.clone(), conn, group).await;
                    if established {
                        delay = inner.cfg.redial_min;
                        wait = jitter.apply(delay);
                    }
                }
                Ok(Err(e)) => tracing::debug!(peer = %key.fmt_short(), error = %e, "dial failed"),
                Err(_) => tracing::debug!(peer = %key.fmt_short(), "dial timed out"),
            }
            delay = (delay * 2).min(inner.cfg.redial_max);
        } else {
            break;
        }
        tokio::select! {
            biased;
            _ = stop.wait_for(|s| *s) => break,
            _ = tokio::time::sleep(wait) => {}
        }
    }
    inner.tables().dialing.remove(&(peer, group));
}

/// Allocates a session id and registers its slot, unless the remote endpoint or the
/// group is at its session limit (the reason is returned then).
fn register(
    inner: &Inner,
    conn: &Connection,
    group: GroupId,
    initiator: bool,
    tx: mpsc::Sender<CommittedBatch>,
    counters: Arc<SessionCounters>,
    queued: Arc<AtomicUsize>,
) -> Result<u64, &'static str> {
    let peer = *conn.remote_id().as_bytes();
    let lim = inner.cfg.limits;
    let mut t = inner.tables();
    if t.sessions.values().filter(|s| s.peer == peer).count() >= lim.max_sessions_per_endpoint {
        return Err("too many sessions with this endpoint");
    }
    if t.sessions.values().filter(|s| s.group == group).count() >= lim.max_sessions_per_group {
        return Err("too many sessions of this group");
    }
    let id = inner.next_session.fetch_add(1, Ordering::Relaxed);
    t.peers.entry(peer).or_default();
    t.sessions.insert(
        id,
        SessionSlot {
            peer,
            group,
            initiator,
            established: false,
            tx,
            conn: conn.clone(),
            counters,
            queued,
        },
    );
    Ok(id)
}

/// Forgets an endpoint we do not dial that never proved an identity and has no
/// session left: hostile or failed connections leave no entry behind.
fn forget_if_unknown(inner: &Inner, peer: &[u8; 32]) {
    let mut t = inner.tables();
    let unknown = t
        .peers
        .get(peer)
        .is_some_and(|p| p.known.is_none() && p.identity.is_none());
    if unknown && !t.sessions.values().any(|s| s.peer == *peer) {
        t.peers.remove(peer);
    }
}

/// Adds the traffic of an ended session to its peer's totals.
fn retire(inner: &Inner, peer: [u8; 32], traffic: &Traffic) {
    inner
        .tables()
        .peers
        .entry(peer)
        .or_default()
        .traffic
        .add(traffic);
}
