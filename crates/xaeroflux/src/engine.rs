//! The `XaeroFlux` handle: opening, the write path, flush and shutdown.

use std::fs::File;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::Duration;

use xaeroflux_core::bus::{BusError, EventBus};
use xaeroflux_core::event::{MAX_PAYLOAD, is_reserved_type};
use xaeroflux_core::ring::EventMeta;
use xaeroflux_core::{
    AuthorId, Clock, EventHeader, EventId, Group, GroupId, GroupSecret, Hlc, HlcClock, SystemClock,
};
use xaeroid::{XaeroID, XaeroKeypair, keyfile};

use crate::error::{Error, Result};
use crate::network::NetworkOptions;
use crate::options::{Durability, Options, default_data_dir};
use crate::store::hash_index::HashIndex;
use crate::store::pagefile::PageFile;
use crate::store::runs::log_len;
use crate::store::writer::{Watermark, Writer};
use crate::store::{Env0, Tables, meta_keys, meta_u64, open_env};
use crate::subscribe::Committed;
use crate::system::{SystemBus, SystemEvent};

/// Reserved event types of built features that [`XaeroFlux::write_reserved_to`]
/// accepts: the state views' records, relations and documents (see the registry in
/// `docs/FORMAT.md`).
pub const RESERVED_FEATURE_TYPES: std::ops::RangeInclusive<u32> = 32..=63;

/// State shared by the API and the storage writer thread.
pub(crate) struct Shared {
    pub env: Env0,
    pub tables: Tables,
    pub pages: Arc<PageFile>,
    pub hashes: HashIndex,
    pub progress: Watermark,
    pub poisoned: AtomicBool,
    pub shutdown: AtomicBool,
    /// Group index (as carried in ring slots) -> group id.
    pub groups: RwLock<Vec<GroupId>>,
    pub author: AuthorId,
    pub keypair: Arc<XaeroKeypair>,
    pub opts: Options,
    /// Held shared by every read transaction, exclusively while the map is resized.
    pub resize_gate: RwLock<()>,
    /// The committed watermark (the committed stream).
    pub committed: Committed,
    /// System events.
    pub system: SystemBus,
    /// Verified remote batches waiting for the storage writer.
    pub inbox: crate::store::writer::Inbox,
    /// The hybrid logical clock (also observes the timestamps of received events).
    pub clock: Arc<HlcClock<Arc<dyn Clock>>>,
}

/// Write tickets and per-group log positions, assigned together (see `write_inner`).
struct Assign {
    next_ticket: u64,
    next_seq: Vec<u64>,
}

/// Builder of a [`XaeroFlux`] store; see [`XaeroFlux::builder`].
pub struct Builder {
    opts: Options,
    identity: Option<XaeroKeypair>,
    clock: Option<Arc<dyn Clock>>,
    /// `None` = offline; default: on, see [`NetworkOptions::for_data_dir`].
    network: Option<NetworkOptions>,
}

impl std::fmt::Debug for Builder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Builder")
            .field("opts", &self.opts)
            .finish_non_exhaustive()
    }
}

impl Builder {
    /// Sets the durability (default [`Durability::Batched`]).
    pub fn durability(mut self, d: Durability) -> Self {
        self.opts.durability = d;
        self
    }
    /// Sets the path of the paged Merkle file.
    pub fn page_path(mut self, p: impl Into<std::path::PathBuf>) -> Self {
        self.opts.page_path = Some(p.into());
        self
    }
    /// Sets the ring capacities.
    pub fn capacities(mut self, c: crate::options::Capacities) -> Self {
        self.opts.capacities = c;
        self
    }
    /// Sets the group-commit limits.
    pub fn commit_policy(mut self, c: crate::options::CommitPolicy) -> Self {
        self.opts.commit = c;
        self
    }
    /// Uses this identity instead of the key file of the data directory.
    pub fn identity(mut self, kp: XaeroKeypair) -> Self {
        self.identity = Some(kp);
        self
    }
    /// Passphrase of an encrypted key file.
    pub fn key_passphrase(mut self, p: impl Into<Vec<u8>>) -> Self {
        self.opts.key_passphrase = Some(p.into());
        self
    }
    /// Uses this physical clock for HLC timestamps (tests, simulations).
    pub fn clock(mut self, c: Arc<dyn Clock>) -> Self {
        self.clock = Some(c);
        self
    }
    /// Network settings (default: on, all interfaces, relays off; see
    /// [`NetworkOptions::for_data_dir`]).
    pub fn network(mut self, n: NetworkOptions) -> Self {
        self.network = Some(n);
        self
    }
    /// No networking: the store does not listen or sync (tools, tests, single-node use).
    pub fn offline(mut self) -> Self {
        self.network = None;
        self
    }
    /// Replaces all options.
    pub fn options(mut self, opts: Options) -> Self {
        self.opts = opts;
        self
    }
    /// Opens (or creates) the store and starts its storage writer.
    pub fn open(self) -> Result<XaeroFlux> {
        XaeroFlux::open_with(self)
    }
}

/// An open XaeroFlux store: the embeddable engine.
///
/// Cheap to share across threads (`&XaeroFlux` is `Sync`; wrap it in an `Arc`).
pub struct XaeroFlux {
    shared: Arc<Shared>,
    bus: Arc<EventBus>,
    assign: Mutex<Assign>,
    clock: Arc<HlcClock<Arc<dyn Clock>>>,
    default_group: GroupId,
    writer: Mutex<Option<JoinHandle<()>>>,
    /// Vector search, once started.
    pub(crate) vector: crate::vector::VectorSlot,
    /// The network node, once started.
    pub(crate) net: crate::network::NetSlot,
    _lock: File,
}

impl std::fmt::Debug for XaeroFlux {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("XaeroFlux")
            .field("data_dir", &self.shared.opts.data_dir)
            .field("author", &self.shared.author)
            .finish_non_exhaustive()
    }
}

impl XaeroFlux {
    /// A builder for a store in `data_dir`.
    pub fn builder(data_dir: impl AsRef<Path>) -> Builder {
        Builder {
            opts: Options::new(data_dir.as_ref()),
            identity: None,
            clock: None,
            network: Some(NetworkOptions::for_data_dir(data_dir.as_ref())),
        }
    }

    /// Opens the store in the default data directory ([`default_data_dir`]).
    pub fn new() -> Result<Self> {
        Self::builder(default_data_dir()).open()
    }

    /// Kept from the original API, where it started the append-only storage actor.
    /// Storage starts when the store opens, so this only reports whether it is running.
    pub fn start_aof(&self) -> Result<()> {
        self.check_writable()
    }

    fn open_with(b: Builder) -> Result<Self> {
        let network = b.network.clone();
        let store = Self::open_store(b)?;
        if let Some(n) = network {
            store.start_network(n)?;
        }
        Ok(store)
    }

    fn open_store(b: Builder) -> Result<Self> {
        let opts = b.opts;
        let dir = opts.data_dir.clone();
        std::fs::create_dir_all(&dir).map_err(Error::io(&dir))?;
        let lock_path = dir.join("LOCK");
        let lock = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(Error::io(&lock_path))?;
        lock.try_lock()
            .map_err(|_| Error::Locked { path: dir.clone() })?;

        let keypair = match b.identity {
            Some(kp) => kp,
            None => load_or_create_identity(&opts)?,
        };
        let author = AuthorId(*keypair.id().as_bytes());
        let (env, tables) = open_env(&dir, opts.initial_map_size, opts.durability)?;
        let (page_count, groups, default_group, max_hlc, next_seq, next_local) = {
            let mut wtxn = env.write_txn()?;
            let t = &tables;
            if t.authors.get(&wtxn, author.as_bytes())?.is_none() {
                t.authors
                    .put(&mut wtxn, author.as_bytes(), keypair.public().as_bytes())?;
            }
            let default_group = match t.meta.get(&wtxn, meta_keys::DEFAULT_GROUP)? {
                Some(g) => GroupId(g.try_into().map_err(|_| Error::Corrupt {
                    path: dir.clone(),
                    reason: "malformed default group".into(),
                })?),
                None => {
                    let secret = GroupSecret::generate().map_err(|e| Error::Mmr(e.to_string()))?;
                    let g = Group::from_secret(secret);
                    t.groups
                        .put(&mut wtxn, g.id().as_bytes(), g.secret().expose())?;
                    t.meta
                        .put(&mut wtxn, meta_keys::DEFAULT_GROUP, g.id().as_bytes())?;
                    g.id()
                }
            };
            let mut groups = vec![default_group];
            for item in t.groups.iter(&wtxn)? {
                let (k, _) = item?;
                let g = GroupId(k.try_into().map_err(|_| Error::Corrupt {
                    path: dir.clone(),
                    reason: "malformed group key".into(),
                })?);
                if g != default_group {
                    groups.push(g);
                }
            }
            let mut next_seq = Vec::with_capacity(groups.len());
            for g in &groups {
                next_seq.push(log_len(t, &wtxn, g, &author)?);
            }
            let next_local = crate::store::blocks::event_count(t, &wtxn)?;
            let page_count = meta_u64(t, &wtxn, meta_keys::PAGE_COUNT)?;
            let max_hlc = meta_u64(t, &wtxn, meta_keys::MAX_HLC)?;
            wtxn.commit()?;
            (
                page_count,
                groups,
                default_group,
                max_hlc,
                next_seq,
                next_local,
            )
        };
        let pages = Arc::new(PageFile::open(&opts.page_path(), page_count)?);
        let hashes = HashIndex::open(&env, &tables, opts.hash_index_chunk)?;
        let bus =
            Arc::new(EventBus::new(opts.capacities).map_err(|e| Error::Config(e.to_string()))?);
        let reader = bus
            .gating_reader()
            .map_err(|e| Error::Config(e.to_string()))?;
        let clock: Arc<dyn Clock> = b.clock.unwrap_or_else(|| Arc::new(SystemClock));
        let clock = Arc::new(HlcClock::new(clock, Hlc::from_u64(max_hlc)));
        let shared = Arc::new(Shared {
            env,
            tables,
            pages,
            hashes,
            progress: Watermark::default(),
            poisoned: AtomicBool::new(false),
            shutdown: AtomicBool::new(false),
            groups: RwLock::new(groups),
            author,
            keypair: Arc::new(keypair),
            opts,
            resize_gate: RwLock::new(()),
            committed: Committed::new(next_local),
            system: SystemBus::new(),
            inbox: crate::store::writer::Inbox::default(),
            clock: clock.clone(),
        });
        shared
            .system
            .publish(SystemEvent::StoreOpened { events: next_local });
        let writer = Writer::open(shared.clone(), reader, 0)?;
        let handle = std::thread::Builder::new()
            .name("xaeroflux-writer".into())
            .spawn(move || writer.run())
            .map_err(Error::io(&dir))?;
        Ok(XaeroFlux {
            shared,
            bus,
            assign: Mutex::new(Assign {
                next_ticket: 0,
                next_seq,
            }),
            clock,
            default_group,
            writer: Mutex::new(Some(handle)),
            vector: Default::default(),
            net: Default::default(),
            _lock: lock,
        })
    }

    pub(crate) fn shared(&self) -> &Shared {
        &self.shared
    }

    pub(crate) fn shared_arc(&self) -> Arc<Shared> {
        self.shared.clone()
    }

    /// This node's author id (the BLAKE3 id of its XaeroID).
    pub fn author(&self) -> AuthorId {
        self.shared.author
    }

    /// This node's public identity.
    pub fn identity(&self) -> &XaeroID {
        self.shared.keypair.public()
    }

    /// The instance's default group, used by [`XaeroFlux::write_event`].
    pub fn default_group(&self) -> GroupId {
        self.default_group
    }

    /// Groups this node holds.
    pub fn groups(&self) -> Vec<GroupId> {
        self.shared
            .groups
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Creates a new group with a fresh secret and returns it.
    pub fn create_group(&self) -> Result<Group> {
        let secret = GroupSecret::generate().map_err(|e| Error::Mmr(e.to_string()))?;
        self.add_group(secret)
    }

    /// Adds a group known by its secret (idempotent).
    pub fn add_group(&self, secret: GroupSecret) -> Result<Group> {
        let g = Group::from_secret(secret);
        let _gate = self
            .shared
            .resize_gate
            .read()
            .unwrap_or_else(|p| p.into_inner());
        let mut groups = self
            .shared
            .groups
            .write()
            .unwrap_or_else(|p| p.into_inner());
        if groups.contains(&g.id()) {
            return Ok(g);
        }
        let t = &self.shared.tables;
        let mut wtxn = self.shared.env.write_txn()?;
        t.groups
            .put(&mut wtxn, g.id().as_bytes(), g.secret().expose())?;
        let len = log_len(t, &wtxn, &g.id(), &self.shared.author)?;
        wtxn.commit()?;
        // Under the groups write lock: the writer maps indices with a snapshot of this list.
        self.assign
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .next_seq
            .push(len);
        groups.push(g.id());
        Ok(g)
    }

    /// Writes an event to the default group; returns its id without waiting for disk
    /// (see [`Durability`]). Blocks only while the size class's ring is full.
    pub fn write_event(&self, data: &[u8], event_type: u32) -> Result<EventId> {
        self.write_inner(self.default_group, data, event_type, true)
    }

    /// Like [`XaeroFlux::write_event`], but returns [`Error::WouldBlock`] instead of
    /// waiting when the ring is full.
    pub fn try_write_event(&self, data: &[u8], event_type: u32) -> Result<EventId> {
        self.write_inner(self.default_group, data, event_type, false)
    }

    /// Writes an event to `group`.
    pub fn write_event_to(&self, group: GroupId, data: &[u8], event_type: u32) -> Result<EventId> {
        self.write_inner(group, data, event_type, true)
    }

    /// Writes an event of a reserved type that belongs to a built feature: only the
    /// state-view operations, [`RESERVED_FEATURE_TYPES`] (`32..=63`), for now. Any other
    /// type `0..=255` is refused with [`Error::ReservedEventType`], as by
    /// [`XaeroFlux::write_event`]; types above 255 are application types and accepted.
    /// Feature crates (e.g. `xaeroflux-views`) call this; applications use their API.
    pub fn write_reserved_to(
        &self,
        group: &GroupId,
        data: &[u8],
        event_type: u32,
    ) -> Result<EventId> {
        if is_reserved_type(event_type) && !RESERVED_FEATURE_TYPES.contains(&event_type) {
            return Err(Error::ReservedEventType { event_type });
        }
        self.write_checked(*group, data, event_type, true)
    }

    fn check_writable(&self) -> Result<()> {
        if self.shared.poisoned.load(Ordering::Acquire) {
            let p = self.shared.progress.lock();
            return Err(Error::Poisoned {
                reason: p.poison.clone().unwrap_or_default(),
            });
        }
        if self.shared.shutdown.load(Ordering::Acquire) {
            return Err(Error::Closed);
        }
        Ok(())
    }

    fn write_inner(
        &self,
        group: GroupId,
        data: &[u8],
        event_type: u32,
        blocking: bool,
    ) -> Result<EventId> {
        if is_reserved_type(event_type) {
            return Err(Error::ReservedEventType { event_type });
        }
        self.write_checked(group, data, event_type, blocking)
    }

    /// The write path after the event type was checked.
    fn write_checked(
        &self,
        group: GroupId,
        data: &[u8],
        event_type: u32,
        blocking: bool,
    ) -> Result<EventId> {
        self.check_writable()?;
        if data.is_empty() {
            return Err(Error::EmptyPayload);
        }
        if data.len() > MAX_PAYLOAD {
            return Err(Error::PayloadTooLarge {
                len: data.len(),
                max: MAX_PAYLOAD,
            });
        }
        let gidx = self
            .shared
            .groups
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .position(|g| *g == group)
            .ok_or(Error::UnknownGroup { group })?;
        let mut assigned = EventMeta::default();
        // The slot is claimed first; (ticket, seq, hlc) are assigned together only once
        // the claim succeeded, so a full ring never burns a seq, and ticket order equals
        // seq order and HLC order (the storage writer commits in ticket order). The
        // section is a few nanoseconds; the ring claim itself stays lock-free.
        let res = self.bus.write_optimal_with(data, event_type, blocking, || {
            let mut a = self.assign.lock().unwrap_or_else(|p| p.into_inner());
            let meta = EventMeta {
                group: gidx as u32,
                flags: 0,
                seq: a.next_seq[gidx],
                hlc: self.clock.now().as_u64(),
                ticket: a.next_ticket,
            };
            a.next_seq[gidx] += 1;
            a.next_ticket += 1;
            assigned = meta;
            meta
        });
        match res {
            Ok(_) => {}
            Err(BusError::PayloadTooLarge { len, max }) => {
                return Err(Error::PayloadTooLarge { len, max });
            }
            Err(BusError::WouldBlock { class }) => return Err(Error::WouldBlock { class }),
            Err(e) => return Err(Error::Config(e.to_string())),
        }
        let id = EventHeader {
            event_type,
            group,
            author: self.shared.author,
            seq: assigned.seq,
            hlc: Hlc::from_u64(assigned.hlc),
        }
        .event_id(data);
        // The leaf hash too: the storage writer then does no hashing for this event.
        let leaf = xaeroflux_core::mmr::leaf_hash(&id.0);
        self.shared.hashes.offer(assigned.ticket, &id, &leaf);
        if self.shared.opts.durability == Durability::Immediate {
            self.wait_durable(assigned.ticket + 1)?;
        }
        Ok(id)
    }

    /// Waits until every event written before this call is durable.
    pub fn flush(&self) -> Result<()> {
        let target = self
            .assign
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .next_ticket;
        self.wait_durable(target)?;
        // Verified remote batches queued before this call are committed too.
        self.shared.inbox.wait_applied(&self.shared)?;
        if self.shared.opts.durability == Durability::None {
            self.shared.env.force_sync()?;
            self.shared.pages.sync()?;
        }
        self.shared.system.publish(SystemEvent::FlushCompleted {
            committed: self.shared.committed.get(),
        });
        Ok(())
    }

    fn wait_durable(&self, ticket: u64) -> Result<()> {
        let wm = &self.shared.progress;
        let mut p = wm.lock();
        loop {
            if p.durable_ticket >= ticket {
                return Ok(());
            }
            if let Some(reason) = &p.poison {
                return Err(Error::Poisoned {
                    reason: reason.clone(),
                });
            }
            if p.stopped {
                return Err(Error::Closed);
            }
            p = wm
                .cv
                .wait_timeout(p, Duration::from_millis(100))
                .map(|(g, _)| g)
                .unwrap_or_else(|e| e.into_inner().0);
        }
    }

    /// Flushes, stops the storage writer and waits for it.
    pub fn close(self) -> Result<()> {
        // No more remote batches once the writer is asked to stop.
        self.net.stop();
        let flushed = self.flush();
        self.stop_writer();
        flushed
    }

    fn stop_writer(&self) {
        self.shared.shutdown.store(true, Ordering::Release);
        self.bus.notifier().notify();
        if let Some(h) = self.writer.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = h.join();
        }
        // Let blocked subscribers see the end of the stream.
        self.shared.committed.wake();
        self.shared.system.wake();
    }
}

impl Drop for XaeroFlux {
    fn drop(&mut self) {
        self.net.stop();
        // The writer drains everything already in the rings before it exits.
        self.stop_writer();
        // Then the vector indexer stops and saves what it covers.
        if let Err(e) = self.vector.stop() {
            tracing::warn!(error = %e, "saving the vector index failed");
        }
    }
}

fn load_or_create_identity(opts: &Options) -> Result<XaeroKeypair> {
    let path = opts.key_path();
    let pass = opts.key_passphrase.as_deref();
    if path.exists() {
        return Ok(keyfile::load(&path, pass)?);
    }
    let kp = XaeroKeypair::generate();
    keyfile::save(&path, &kp, pass)?;
    Ok(kp)
}
