//! Blobs on the running node: large payloads referenced by attachment events.
//!
//! A store that goes online opens a [`Blobs`] store in `DATA_DIR/blobs` (unless
//! [`crate::NetworkOptions::blobs`] is `None`) and serves it on the node's own endpoint
//! under [`xaeroflux_blobs::ALPN`], next to the sync protocol. Then:
//!
//! - **References.** A feeder thread reads every committed attachment event (type
//!   [`BLOB_REF_EVENT_TYPE`], replayed from the start, then live) and records which
//!   groups reference which blob. The store already refused attachments that do not
//!   decode ([`xaeroflux_core::event::reserved_payload_ok`]).
//! - **Serving.** A request is answered only if the endpoint that TLS authenticated is
//!   a member of a group that references the hash: it holds a session of that group
//!   whose handshake proved the group secret, or it is a peer we remember for that
//!   group; and, in a group with an access log (`xaeroflux-access`), its identity is a
//!   current member. A refusal looks the same whether or not we hold the blob.
//! - **Fetching.** When an attachment from another author arrives, its group's
//!   [`FetchPolicy`] decides: eager up to [`FetchPolicy::eager_max_bytes`], else on
//!   demand ([`BlobNode::fetch`]). A fetch dials the group's peers with the node's
//!   endpoint (so they authorise us by our id), resumes from the verified chunks
//!   already here, and reports [`SystemEvent`]s: started, progress (at most every
//!   [`PROGRESS_EVERY`]), done, failed. Failed eager fetches are retried at each
//!   maintenance pass.
//! - **Garbage collection.** Each maintenance pass ([`BlobOptions::maintenance`])
//!   releases blobs that no attachment event references for
//!   [`BlobOptions::grace`] ([`BlobNode::gc`] takes the time as an argument).

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use iroh::{EndpointAddr, PublicKey};
use tokio::runtime::Handle;
use xaeroflux_access::AccessControl;
use xaeroflux_blobs::{
    Attachment, Authorizer, BLOB_REF_EVENT_TYPE, BlobHash, BlobInfo, BlobRef, Blobs, BlobsOptions,
    FetchDecision, FetchError, FetchPolicies, FetchPolicy, FetchStats, GcReport, OpenError,
    StoreError,
};
use xaeroflux_core::{AuthorId, GroupId};
use xaeroflux_net::{PeerAddr, SyncNet};
use xaeroflux_store::{Filter, Start, Subscription, SystemEvent, SystemPublisher};

use crate::flux::XaeroFlux;

/// Subdirectory of the data directory holding the blob store.
pub const BLOBS_DIR: &str = "blobs";
/// Shortest time between two progress events of one fetch.
pub const PROGRESS_EVERY: Duration = Duration::from_millis(250);
/// Blob fetches running at once.
const MAX_FETCHES: usize = 4;

/// Blob settings of an online store (see [`crate::NetworkOptions::blobs`]).
#[derive(Debug, Clone)]
pub struct BlobOptions {
    /// Fetch policy of every group (eager up to 16 MiB by default).
    pub policy: FetchPolicy,
    /// How long a blob nothing references stays. Default 24 h.
    pub grace: Duration,
    /// How often iroh-blobs deletes released blobs' files. Default 60 s.
    pub sweep_interval: Duration,
    /// Period of the maintenance pass (GC, retry of failed eager fetches).
    /// Default 60 s.
    pub maintenance: Duration,
}

impl Default for BlobOptions {
    fn default() -> Self {
        let store = BlobsOptions::default();
        Self {
            policy: FetchPolicy::default(),
            grace: store.grace,
            sweep_interval: store.sweep_interval,
            maintenance: Duration::from_secs(60),
        }
    }
}

/// Why a blob operation of the node failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BlobError {
    /// The store has no blob node (offline, or opened with `blobs: None`).
    #[error("blobs are off for this store (it is offline or opened without blobs)")]
    Off,
    /// The blob store could not be opened.
    #[error(transparent)]
    Open(#[from] OpenError),
    /// The local blob store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Fetching from a peer failed.
    #[error(transparent)]
    Fetch(#[from] FetchError),
    /// No event of ours references the hash, so we do not know whom to ask.
    #[error("no attachment event references blob {hash}")]
    NotReferenced {
        /// The hash.
        hash: BlobHash,
    },
    /// No peer of a referencing group is known.
    #[error("no peer of a group that references blob {hash} is known")]
    NoPeer {
        /// The hash.
        hash: BlobHash,
    },
    /// The attachment event could not be written.
    #[error("writing the attachment event")]
    Write(#[source] xaeroflux_store::Error),
    /// The attachment is not encodable (a bad file name).
    #[error(transparent)]
    Attachment(#[from] xaeroflux_blobs::DecodeError),
    /// The node's runtime is gone (it is shutting down).
    #[error("the blob node is shutting down")]
    Closed,
}

/// Which groups reference which blob (from attachment events), with the first claim
/// of its size.
#[derive(Debug, Default)]
struct Refs(RwLock<HashMap<BlobHash, (BlobRef, BTreeSet<GroupId>)>>);

impl Refs {
    fn add(&self, group: GroupId, blob: BlobRef) {
        let mut m = self.0.write().unwrap_or_else(|p| p.into_inner());
        m.entry(blob.hash)
            .or_insert_with(|| (blob, BTreeSet::new()))
            .1
            .insert(group);
    }
    fn get(&self, hash: &BlobHash) -> Option<(BlobRef, BTreeSet<GroupId>)> {
        let m = self.0.read().unwrap_or_else(|p| p.into_inner());
        m.get(hash).cloned()
    }
    fn hashes(&self) -> HashSet<BlobHash> {
        let m = self.0.read().unwrap_or_else(|p| p.into_inner());
        m.keys().copied().collect()
    }
}

/// The serving rule of the module docs.
struct NodeAuth {
    refs: Arc<Refs>,
    net: OnceLock<SyncNet>,
    control: Arc<AccessControl>,
}

impl NodeAuth {
    /// Whether an endpoint that proved (or was given) `group` passes the group's
    /// access log, if it has one.
    fn passes_log(&self, group: &GroupId, identity: Option<xaeroid::IdHash>) -> bool {
        self.control
            .with(group, |m| identity.is_some_and(|id| m.role(&id).is_some()))
            .unwrap_or(true)
    }
}

impl Authorizer for NodeAuth {
    fn may_connect(&self, peer: &[u8; 32]) -> bool {
        self.net
            .get()
            .is_some_and(|n| !n.member_groups(peer).0.is_empty())
    }

    fn may_fetch(&self, peer: &[u8; 32], hash: &BlobHash) -> bool {
        let (Some(net), Some((_, groups))) = (self.net.get(), self.refs.get(hash)) else {
            return false;
        };
        let (member_of, identity) = net.member_groups(peer);
        groups
            .iter()
            .any(|g| member_of.contains(g) && self.passes_log(g, identity))
    }
}

/// The blob side of a running node; reach it with [`XaeroFlux::blobs`]. Its async
/// methods run on the node's runtime, whatever runtime awaits them.
pub struct BlobNode {
    blobs: Arc<Blobs>,
    auth: Arc<NodeAuth>,
    policies: FetchPolicies,
    opts: BlobOptions,
    rt: Handle,
    system: SystemPublisher,
    me: AuthorId,
    /// Eager fetches that failed, retried at each maintenance pass.
    pending: Mutex<HashMap<BlobHash, GroupId>>,
    inflight: Mutex<HashSet<BlobHash>>,
    limit: tokio::sync::Semaphore,
    stop: AtomicBool,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl std::fmt::Debug for BlobNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlobNode")
            .field("dir", &self.blobs.dir())
            .finish_non_exhaustive()
    }
}

fn peer_addr(p: &PeerAddr) -> Option<EndpointAddr> {
    let key = PublicKey::from_bytes(&p.endpoint).ok()?;
    Some(
        p.addrs
            .iter()
            .fold(EndpointAddr::new(key), |a, s| a.with_ip_addr(*s)),
    )
}

impl BlobNode {
    /// Opens `data_dir/blobs` on `rt` and builds the serving handler; the node is
    /// attached with [`BlobNode::attach`] once the network runs.
    pub(crate) fn open(
        store: &XaeroFlux,
        rt: &tokio::runtime::Runtime,
        opts: BlobOptions,
    ) -> Result<(Arc<BlobNode>, iroh_blobs::BlobsProtocol), BlobError> {
        let dir: PathBuf = store.data_dir().join(BLOBS_DIR);
        let blobs = rt.block_on(Blobs::open(
            &dir,
            BlobsOptions {
                sweep_interval: opts.sweep_interval,
                grace: opts.grace,
            },
        ))?;
        let auth = Arc::new(NodeAuth {
            refs: Arc::new(Refs::default()),
            net: OnceLock::new(),
            control: store.access.control.clone(),
        });
        let handler = {
            let _g = rt.enter();
            blobs.protocol(auth.clone())
        };
        let node = Arc::new(BlobNode {
            blobs: Arc::new(blobs),
            auth,
            policies: FetchPolicies::new(opts.policy),
            opts,
            rt: rt.handle().clone(),
            system: store.system_publisher(),
            me: store.author(),
            pending: Mutex::new(HashMap::new()),
            inflight: Mutex::new(HashSet::new()),
            limit: tokio::sync::Semaphore::new(MAX_FETCHES),
            stop: AtomicBool::new(false),
            threads: Mutex::new(Vec::new()),
        });
        Ok((node, handler))
    }

    /// Starts serving and fetching over `net`, and the feeder and maintenance threads.
    pub(crate) fn attach(self: &Arc<Self>, net: SyncNet, sub: Subscription) {
        let _ = self.auth.net.set(net);
        let mut threads = self.threads.lock().unwrap_or_else(|p| p.into_inner());
        let me = self.clone();
        match std::thread::Builder::new()
            .name("xaeroflux-blobs".into())
            .spawn(move || me.feed(sub))
        {
            Ok(h) => threads.push(h),
            Err(e) => tracing::warn!(error = %e, "cannot start the attachment feed"),
        }
        let me = self.clone();
        match std::thread::Builder::new()
            .name("xaeroflux-blobs-gc".into())
            .spawn(move || me.maintain())
        {
            Ok(h) => threads.push(h),
            Err(e) => tracing::warn!(error = %e, "cannot start blob maintenance"),
        }
    }

    /// A subscription to every attachment event, from the start.
    pub(crate) fn subscription(store: &XaeroFlux) -> Subscription {
        store.subscribe(
            Filter::all()
                .event_type(BLOB_REF_EVENT_TYPE)
                .start(Start::Beginning),
        )
    }

    fn feed(self: Arc<Self>, mut sub: Subscription) {
        while !self.stop.load(Ordering::Acquire) {
            match sub.next_timeout(Duration::from_millis(100)) {
                Ok(Some(e)) => {
                    let Ok(a) = Attachment::decode(&e.event.payload) else {
                        continue;
                    };
                    let group = e.event.header.group;
                    self.auth.refs.add(group, a.blob);
                    let remote = e.event.header.author != self.me;
                    if remote && self.policies.decide(&group.0, &a.blob) == FetchDecision::Eager {
                        self.spawn_eager(group, a.blob);
                    }
                }
                Ok(None) => {}
                Err(err) => {
                    tracing::warn!(error = %err, "attachment feed stopped");
                    return;
                }
            }
        }
    }

    fn maintain(self: Arc<Self>) {
        let mut next = Instant::now() + self.opts.maintenance;
        while !self.stop.load(Ordering::Acquire) {
            std::thread::sleep(Duration::from_millis(100));
            if Instant::now() < next {
                continue;
            }
            next = Instant::now() + self.opts.maintenance;
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default();
            let me = self.clone();
            if let Err(e) = self.rt.block_on(async move { me.gc(now).await }) {
                tracing::warn!(error = %e, "blob gc pass failed");
            }
            let retry: Vec<(BlobHash, GroupId)> = self
                .pending
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .drain()
                .collect();
            for (hash, group) in retry {
                if let Some((blob, _)) = self.auth.refs.get(&hash) {
                    self.spawn_eager(group, blob);
                }
            }
        }
    }

    fn spawn_eager(self: &Arc<Self>, group: GroupId, blob: BlobRef) {
        let me = self.clone();
        self.rt.spawn(async move {
            if me.fetch_in(Some(group), blob).await.is_err() {
                me.pending
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(blob.hash, group);
            }
        });
    }

    /// Peers to ask for a blob of `groups`: connected ones first.
    fn candidates(&self, groups: &BTreeSet<GroupId>) -> Vec<PeerAddr> {
        let Some(net) = self.auth.net.get() else {
            return Vec::new();
        };
        let mut peers: Vec<_> = net
            .peers()
            .into_iter()
            .filter(|p| p.groups.iter().any(|g| groups.contains(g)))
            .collect();
        peers.sort_by_key(|p| !p.connected);
        peers
            .into_iter()
            .map(|p| PeerAddr {
                endpoint: p.endpoint,
                addrs: p.addrs,
            })
            .collect()
    }

    /// Fetches `blob` for `group` (or every group that references it) from the
    /// group's peers, one after the other until one serves it. One fetch per blob at
    /// a time: a second caller waits for the first, then finds the blob here.
    async fn fetch_in(
        &self,
        group: Option<GroupId>,
        blob: BlobRef,
    ) -> Result<FetchStats, BlobError> {
        let hash = blob.hash;
        while !self
            .inflight
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(hash)
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let r = self.fetch_guarded(group, blob).await;
        self.inflight
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&hash);
        r
    }

    async fn fetch_guarded(
        &self,
        group: Option<GroupId>,
        blob: BlobRef,
    ) -> Result<FetchStats, BlobError> {
        let hash = blob.hash;
        let net = self.auth.net.get().ok_or(BlobError::Closed)?;
        if self.blobs.info(&hash).await?.complete {
            // Returns before dialling: checks the size and keeps the blob's tag.
            let own = net.endpoint().addr();
            return Ok(self.blobs.fetch(net.endpoint(), own, blob, |_| {}).await?);
        }
        let groups: BTreeSet<GroupId> = match group {
            Some(g) => [g].into(),
            None => self.auth.refs.get(&hash).map(|r| r.1).unwrap_or_default(),
        };
        let _permit = self.limit.acquire().await.map_err(|_| BlobError::Closed)?;
        let mut last = BlobError::NoPeer { hash };
        for p in self.candidates(&groups) {
            match self.fetch_from_addr(&p, group, blob).await {
                Ok(s) => return Ok(s),
                Err(e) => last = e,
            }
        }
        self.system.publish(SystemEvent::BlobFetchFailed {
            hash: hash.0,
            reason: last.to_string(),
        });
        Err(last)
    }

    /// One fetch from one peer, with its system events.
    async fn fetch_from_addr(
        &self,
        peer: &PeerAddr,
        group: Option<GroupId>,
        blob: BlobRef,
    ) -> Result<FetchStats, BlobError> {
        let net = self.auth.net.get().ok_or(BlobError::Closed)?;
        let endpoint = peer.endpoint;
        let addr = peer_addr(peer).ok_or(BlobError::NoPeer { hash: blob.hash })?;
        let before = self.blobs.info(&blob.hash).await?.local_bytes;
        self.system.publish(SystemEvent::BlobFetchStarted {
            hash: blob.hash.0,
            size: blob.size,
            group,
            endpoint,
            resumed_from: before,
        });
        let mut last = Instant::now();
        let system = self.system.clone();
        let fetched = self
            .blobs
            .fetch(net.endpoint(), addr, blob, |p| {
                if last.elapsed() >= PROGRESS_EVERY {
                    last = Instant::now();
                    system.publish(SystemEvent::BlobFetchProgress {
                        hash: blob.hash.0,
                        have: p.resumed_from + p.received,
                        size: blob.size,
                    });
                }
            })
            .await;
        let stats = match fetched {
            Ok(s) => s,
            Err(e) => {
                tracing::debug!(error = %e, blob = %blob.hash.fmt_short(), "blob fetch from a peer failed");
                return Err(e.into());
            }
        };
        self.system.publish(SystemEvent::BlobFetchDone {
            hash: blob.hash.0,
            size: blob.size,
            received: stats.payload_bytes,
        });
        Ok(stats)
    }

    async fn on_rt<T: Send + 'static>(
        &self,
        f: impl std::future::Future<Output = Result<T, BlobError>> + Send + 'static,
    ) -> Result<T, BlobError> {
        self.rt.spawn(f).await.map_err(|_| BlobError::Closed)?
    }

    /// Adds the file at `path` (streamed, never whole in memory).
    pub async fn add_path(&self, path: impl AsRef<Path>) -> Result<BlobRef, BlobError> {
        let (blobs, path) = (self.blobs.clone(), path.as_ref().to_path_buf());
        self.on_rt(async move { Ok(blobs.add_blob_path(path).await?) })
            .await
    }

    /// Adds what `reader` yields (streamed in 1 MiB pieces); a read error fails it.
    pub async fn add_reader<R>(&self, reader: R) -> Result<BlobRef, BlobError>
    where
        R: tokio::io::AsyncRead + Unpin + Send + 'static,
    {
        let blobs = self.blobs.clone();
        self.on_rt(async move { Ok(blobs.add_blob_reader(reader).await?) })
            .await
    }

    /// What is here of a blob.
    pub async fn info(&self, hash: &BlobHash) -> Result<BlobInfo, BlobError> {
        let (blobs, hash) = (self.blobs.clone(), *hash);
        self.on_rt(async move { Ok(blobs.info(&hash).await?) })
            .await
    }

    /// Every blob here, complete or partial.
    pub async fn list(&self) -> Result<Vec<BlobInfo>, BlobError> {
        let blobs = self.blobs.clone();
        self.on_rt(async move { Ok(blobs.list().await?) }).await
    }

    /// Writes a complete blob to `path`; returns its size.
    pub async fn export(&self, hash: &BlobHash, path: impl AsRef<Path>) -> Result<u64, BlobError> {
        let (blobs, hash, path) = (self.blobs.clone(), *hash, path.as_ref().to_path_buf());
        self.on_rt(async move { Ok(blobs.export(&hash, path).await?) })
            .await
    }

    /// The underlying store (reads of a blob's bytes, e.g. to stream a download).
    pub fn store(&self) -> &Arc<Blobs> {
        &self.blobs
    }

    /// Fetches a blob that an attachment event here references, on demand, from the
    /// peers of the referencing groups (a no-op when it is complete here).
    pub async fn fetch(self: &Arc<Self>, hash: &BlobHash) -> Result<FetchStats, BlobError> {
        let (blob, _) = self
            .auth
            .refs
            .get(hash)
            .ok_or(BlobError::NotReferenced { hash: *hash })?;
        let me = self.clone();
        self.on_rt(async move { me.fetch_in(None, blob).await })
            .await
    }

    /// Fetches `blob` from one peer.
    pub async fn fetch_from(
        self: &Arc<Self>,
        peer: PeerAddr,
        blob: BlobRef,
    ) -> Result<FetchStats, BlobError> {
        let me = self.clone();
        self.on_rt(async move { me.fetch_from_addr(&peer, None, blob).await })
            .await
    }

    /// Groups whose attachment events reference `hash`.
    pub fn referencing_groups(&self, hash: &BlobHash) -> Vec<GroupId> {
        self.auth
            .refs
            .get(hash)
            .map(|r| r.1.into_iter().collect())
            .unwrap_or_default()
    }

    /// One GC pass at `now` (time since the Unix epoch, passed in): blobs that no
    /// attachment event references for [`BlobOptions::grace`] are released.
    pub async fn gc(&self, now: Duration) -> Result<GcReport, BlobError> {
        let (blobs, refs) = (self.blobs.clone(), self.auth.refs.hashes());
        self.on_rt(async move { Ok(blobs.gc(now, &refs).await?) })
            .await
    }

    /// Stops the threads (the node's runtime ends the fetches).
    pub(crate) fn stop(&self) {
        self.stop.store(true, Ordering::Release);
        let threads = std::mem::take(&mut *self.threads.lock().unwrap_or_else(|p| p.into_inner()));
        for h in threads {
            let _ = h.join();
        }
    }
}

/// The blob node of a store, once its network runs.
#[derive(Debug, Default)]
pub(crate) struct BlobSlot(Mutex<Option<Arc<BlobNode>>>);

impl BlobSlot {
    pub(crate) fn set(&self, n: Arc<BlobNode>) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(n);
    }
    pub(crate) fn get(&self) -> Option<Arc<BlobNode>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
    pub(crate) fn stop(&self) {
        let n = self.0.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(n) = n {
            n.stop();
        }
    }
}

impl XaeroFlux {
    /// The blob node of this store (online stores opened with blobs on).
    pub fn blobs(&self) -> Result<Arc<BlobNode>, BlobError> {
        self.blob_slot.get().ok_or(BlobError::Off)
    }

    /// Adds the file at `path` as a blob and writes an attachment event (type
    /// [`BLOB_REF_EVENT_TYPE`]) referencing it to `group`; the group's peers fetch it
    /// by their policy. Blocks; call it outside an async runtime.
    pub fn attach_blob(
        &self,
        group: &GroupId,
        path: impl AsRef<Path>,
        name: &str,
    ) -> Result<(BlobRef, xaeroflux_core::EventId), BlobError> {
        let node = self.blobs()?;
        let blob = node.rt.clone().block_on(node.add_path(path))?;
        let id = self.write_attachment(group, blob, name)?;
        Ok((blob, id))
    }

    /// Writes an attachment event (type [`BLOB_REF_EVENT_TYPE`]) referencing `blob`
    /// (already in the blob store) to `group`, and serves the blob to the group's
    /// members from now on. Does not block on the network.
    pub fn write_attachment(
        &self,
        group: &GroupId,
        blob: BlobRef,
        name: &str,
    ) -> Result<xaeroflux_core::EventId, BlobError> {
        let node = self.blobs()?;
        let payload = Attachment::new(blob, name)?.encode()?;
        // Served from now on: a peer may ask as soon as the event reaches it, before
        // our feeder has read it back.
        node.auth.refs.add(*group, blob);
        self.write_reserved_to(group, &payload, BLOB_REF_EVENT_TYPE)
            .map_err(BlobError::Write)
    }
}
