//! The [`Engine`] handle: opening, the write path, flush and shutdown.

use std::fs::File;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::Duration;

use xaeroflux_core::bus::{BusError, EventBus};
use xaeroflux_core::event::{
    MAX_PAYLOAD, accepted_from_network, is_reserved_type, reserved_payload_ok,
};
use xaeroflux_core::ring::EventMeta;
use xaeroflux_core::{
    AuthorId, Clock, EventHeader, EventId, Group, GroupId, GroupSecret, Hlc, HlcClock, SystemClock,
};
use xaeroid::{XaeroID, XaeroKeypair, keyfile};

use crate::error::{Error, Result};
use crate::options::{Durability, Options, default_data_dir};
use crate::store::hash_index::HashIndex;
use crate::store::pagefile::PageFile;
use crate::store::runs::log_len;
use crate::store::writer::{Progress, Watermark, Writer};
use crate::store::{Store, meta_keys, meta_u64, open_env};
use crate::subscribe::Committed;
use crate::system::{SystemBus, SystemEvent};

/// State shared by the API and the storage writer thread. Its parts are reached
/// through methods: the open/closing/poisoned state through what it means for a caller
/// ([`Shared::check_open`], [`Shared::is_closing`]), the groups as a snapshot or a
/// lookup, the rest as shared references.
pub(crate) struct Shared {
    /// The LMDB environment, tables, page file and id index, with the typed reads.
    store: Store,
    progress: Watermark,
    poisoned: AtomicBool,
    shutdown: AtomicBool,
    /// Group index (as carried in ring slots) -> group id.
    groups: RwLock<Vec<GroupId>>,
    author: AuthorId,
    keypair: Arc<XaeroKeypair>,
    opts: Options,
    /// The committed watermark (the committed stream).
    committed: Committed,
    /// System events.
    system: SystemBus,
    /// Verified remote batches waiting for the storage writer.
    inbox: crate::store::writer::Inbox,
    /// The hybrid logical clock (also observes the timestamps of received events).
    clock: Arc<HlcClock<Arc<dyn Clock>>>,
}

impl Shared {
    /// The store: environment, tables, page file, id index and typed reads.
    pub(crate) fn store(&self) -> &Store {
        &self.store
    }

    /// The local author (this node's identity).
    pub(crate) fn author(&self) -> AuthorId {
        self.author
    }

    /// The local identity's keys (signs checkpoints and handshakes).
    pub(crate) fn keypair(&self) -> &Arc<XaeroKeypair> {
        &self.keypair
    }

    /// The options the engine was opened with.
    pub(crate) fn opts(&self) -> &Options {
        &self.opts
    }

    /// The committed watermark (the committed stream).
    pub(crate) fn committed(&self) -> &Committed {
        &self.committed
    }

    /// The system event bus.
    pub(crate) fn system(&self) -> &SystemBus {
        &self.system
    }

    /// The queue of verified remote batches for the writer.
    pub(crate) fn inbox(&self) -> &crate::store::writer::Inbox {
        &self.inbox
    }

    /// The writer's durable progress.
    pub(crate) fn progress(&self) -> &Watermark {
        &self.progress
    }

    /// The hybrid logical clock.
    pub(crate) fn clock(&self) -> &HlcClock<Arc<dyn Clock>> {
        &self.clock
    }

    /// The groups, in ring-slot index order.
    pub(crate) fn groups(&self) -> Vec<GroupId> {
        self.groups
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Whether this node holds `group`.
    pub(crate) fn holds_group(&self, group: &GroupId) -> bool {
        self.groups
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .contains(group)
    }

    /// The ring-slot index of `group`.
    pub(crate) fn group_index(&self, group: &GroupId) -> Option<usize> {
        self.groups
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .position(|g| g == group)
    }

    /// Whether the engine is closing (or closed): no new writes, waiters wake up.
    pub(crate) fn is_closing(&self) -> bool {
        self.shutdown.load(Ordering::Acquire)
    }

    /// Starts closing (idempotent).
    pub(crate) fn begin_close(&self) {
        self.shutdown.store(true, Ordering::Release);
    }

    /// Refuses further writes after a writer failure (the reason is in `progress`).
    pub(crate) fn mark_poisoned(&self) {
        self.poisoned.store(true, Ordering::Release);
    }

    /// `Ok` while writes are accepted: [`Error::Poisoned`] after a writer failure,
    /// [`Error::Closed`] once closing.
    pub(crate) fn check_open(&self) -> Result<()> {
        if self.poisoned.load(Ordering::Acquire) {
            let p = self.progress.lock();
            return Err(Error::Poisoned {
                reason: p.poison.clone().unwrap_or_default(),
            });
        }
        if self.is_closing() {
            return Err(Error::Closed);
        }
        Ok(())
    }
}

/// Write tickets and per-group log positions, assigned together (see `write_inner`).
struct Assign {
    next_ticket: u64,
    next_seq: Vec<u64>,
}

/// Builder of an [`Engine`]; see [`Engine::builder`].
pub struct EngineBuilder {
    opts: Options,
    identity: Option<XaeroKeypair>,
    clock: Option<Arc<dyn Clock>>,
}

impl std::fmt::Debug for EngineBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EngineBuilder")
            .field("opts", &self.opts)
            .finish_non_exhaustive()
    }
}

impl EngineBuilder {
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
    /// Replaces all options.
    pub fn options(mut self, opts: Options) -> Self {
        self.opts = opts;
        self
    }
    /// The options set so far.
    pub fn opts(&self) -> &Options {
        &self.opts
    }
    /// Opens (or creates) the store and starts its storage writer.
    pub fn open(self) -> Result<Engine> {
        Engine::open_store(self)
    }
}

/// An open store: the storage engine without networking or vector search (the
/// `xaeroflux` crate's `XaeroFlux` adds those on top of it).
///
/// Cheap to share across threads (`&Engine` is `Sync`; wrap it in an `Arc`).
pub struct Engine {
    shared: Arc<Shared>,
    bus: Arc<EventBus>,
    assign: Mutex<Assign>,
    clock: Arc<HlcClock<Arc<dyn Clock>>>,
    default_group: GroupId,
    writer: Mutex<Option<JoinHandle<()>>>,
    _lock: File,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("data_dir", &self.shared.opts().data_dir)
            .field("author", &self.shared.author())
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// A builder for a store in `data_dir`.
    pub fn builder(data_dir: impl AsRef<Path>) -> EngineBuilder {
        EngineBuilder {
            opts: Options::new(data_dir.as_ref()),
            identity: None,
            clock: None,
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

    fn open_store(b: EngineBuilder) -> Result<Self> {
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
                    let secret = GroupSecret::generate().map_err(Error::Rng)?;
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
        let bus = Arc::new(EventBus::new(opts.capacities).map_err(Error::Bus)?);
        let reader = bus.gating_reader().map_err(Error::Bus)?;
        let clock: Arc<dyn Clock> = b.clock.unwrap_or_else(|| Arc::new(SystemClock));
        let clock = Arc::new(HlcClock::new(clock, Hlc::from_u64(max_hlc)));
        let shared = Arc::new(Shared {
            store: Store::new(env, tables, pages, hashes, dir.clone()),
            progress: Watermark::default(),
            poisoned: AtomicBool::new(false),
            shutdown: AtomicBool::new(false),
            groups: RwLock::new(groups),
            author,
            keypair: Arc::new(keypair),
            opts,
            committed: Committed::new(next_local),
            system: SystemBus::new(),
            inbox: crate::store::writer::Inbox::default(),
            clock: clock.clone(),
        });
        shared
            .system()
            .publish(SystemEvent::StoreOpened { events: next_local });
        let writer = Writer::open(shared.clone(), reader, 0)?;
        let handle = std::thread::Builder::new()
            .name("xaeroflux-writer".into())
            .spawn(move || writer.run())
            .map_err(Error::io(&dir))?;
        Ok(Engine {
            shared,
            bus,
            assign: Mutex::new(Assign {
                next_ticket: 0,
                next_seq,
            }),
            clock,
            default_group,
            writer: Mutex::new(Some(handle)),
            _lock: lock,
        })
    }

    pub(crate) fn shared(&self) -> &Shared {
        &self.shared
    }

    pub(crate) fn shared_arc(&self) -> Arc<Shared> {
        self.shared.clone()
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        &self.shared.opts().data_dir
    }

    /// Events committed so far: the local sequence the next committed event gets.
    pub fn committed_count(&self) -> u64 {
        self.shared.committed().get()
    }

    /// This node's author id (the BLAKE3 id of its XaeroID).
    pub fn author(&self) -> AuthorId {
        self.shared.author
    }

    /// This node's public identity.
    pub fn identity(&self) -> &XaeroID {
        self.shared.keypair().public()
    }

    /// The instance's default group, used by [`Engine::write_event`].
    pub fn default_group(&self) -> GroupId {
        self.default_group
    }

    /// Groups this node holds.
    pub fn groups(&self) -> Vec<GroupId> {
        self.shared.groups()
    }

    /// Creates a new group with a fresh secret and returns it.
    pub fn create_group(&self) -> Result<Group> {
        let secret = GroupSecret::generate().map_err(Error::Rng)?;
        self.add_group(secret)
    }

    /// Adds a group known by its secret (idempotent).
    pub fn add_group(&self, secret: GroupSecret) -> Result<Group> {
        let g = Group::from_secret(secret);
        let _gate = self.shared.store().gate();
        let mut groups = self
            .shared
            .groups
            .write()
            .unwrap_or_else(|p| p.into_inner());
        if groups.contains(&g.id()) {
            return Ok(g);
        }
        let t = &self.shared.store().tables;
        let mut wtxn = self.shared.store().env.write_txn()?;
        t.groups
            .put(&mut wtxn, g.id().as_bytes(), g.secret().expose())?;
        let len = log_len(t, &wtxn, &g.id(), &self.shared.author())?;
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

    /// Like [`Engine::write_event`], but returns [`Error::WouldBlock`] instead of
    /// waiting when the ring is full.
    pub fn try_write_event(&self, data: &[u8], event_type: u32) -> Result<EventId> {
        self.write_inner(self.default_group, data, event_type, false)
    }

    /// Writes an event to `group`.
    pub fn write_event_to(&self, group: GroupId, data: &[u8], event_type: u32) -> Result<EventId> {
        self.write_inner(group, data, event_type, true)
    }

    /// Writes an event to `group` and waits until it is durable (whatever the
    /// [`Durability`]); returns its id and its local position (the order this node
    /// stored it in: what subscriptions resume from and queries page by). Waits only
    /// for this event's commit, not for writes made after it.
    pub fn write_event_durable(
        &self,
        group: GroupId,
        data: &[u8],
        event_type: u32,
    ) -> Result<(EventId, u64)> {
        if is_reserved_type(event_type) {
            return Err(Error::ReservedEventType { event_type });
        }
        let (id, ticket) = self.write_ticketed(group, data, event_type, true)?;
        if let Some(pos) = self.wait_durable(ticket + 1)?.position_of(ticket) {
            return Ok((id, pos));
        }
        // Committed longer ago than the recent commits remembered: find it by id.
        let pos = crate::read::Snapshot::new(&self.shared)?
            .get(&id)?
            .map(|se| se.local_seq)
            .ok_or_else(|| Error::Invariant {
                what: format!("event {id} is durable but not found by its id"),
            })?;
        Ok((id, pos))
    }

    /// Writes an event of a reserved type that belongs to a built feature: the types a
    /// peer may send us too ([`accepted_from_network`]: the state views' `32..=63`,
    /// membership ops and attachments, whose payload must pass [`reserved_payload_ok`]),
    /// so local and remote writes follow one rule. Any other type `0..=255` is
    /// refused with [`Error::ReservedEventType`], as by [`Engine::write_event`]; types
    /// above 255 are application types and accepted. Feature crates (e.g.
    /// `xaeroflux-views`) call this; applications use their API.
    pub fn write_reserved_to(
        &self,
        group: &GroupId,
        data: &[u8],
        event_type: u32,
    ) -> Result<EventId> {
        if !accepted_from_network(event_type) {
            return Err(Error::ReservedEventType { event_type });
        }
        if !reserved_payload_ok(event_type, data) {
            return Err(Error::InvalidReservedPayload { event_type });
        }
        self.write_checked(*group, data, event_type, true)
    }

    fn check_writable(&self) -> Result<()> {
        self.shared.check_open()
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
        let (id, ticket) = self.write_ticketed(group, data, event_type, blocking)?;
        if self.shared.opts().durability == Durability::Immediate {
            drop(self.wait_durable(ticket + 1)?);
        }
        Ok(id)
    }

    /// Puts the event on its ring; returns its id and its write ticket.
    fn write_ticketed(
        &self,
        group: GroupId,
        data: &[u8],
        event_type: u32,
        blocking: bool,
    ) -> Result<(EventId, u64)> {
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
            .group_index(&group)
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
            Err(e) => return Err(Error::Bus(e)),
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
        self.shared
            .store()
            .hashes
            .offer(assigned.ticket, &id, &leaf);
        Ok((id, assigned.ticket))
    }

    /// Waits until every event written before this call is durable.
    pub fn flush(&self) -> Result<()> {
        let target = self
            .assign
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .next_ticket;
        drop(self.wait_durable(target)?);
        // Verified remote batches queued before this call are committed too.
        self.shared.inbox().wait_applied(&self.shared)?;
        if self.shared.opts().durability == Durability::None {
            self.shared.store().env.force_sync()?;
            self.shared.store().pages.sync()?;
        }
        self.shared.system().publish(SystemEvent::FlushCompleted {
            committed: self.shared.committed().get(),
        });
        Ok(())
    }

    /// Waits until every ticket below `ticket` is durable; returns the progress, still
    /// locked.
    fn wait_durable(&self, ticket: u64) -> Result<std::sync::MutexGuard<'_, Progress>> {
        let wm = &self.shared.progress();
        let mut p = wm.lock();
        loop {
            if p.durable_ticket >= ticket {
                return Ok(p);
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
        self.flush_and_stop()
    }

    /// What [`Engine::close`] does, for an owner that cannot give the engine away (the
    /// facade stops its network first): flushes, then stops the storage writer. Later
    /// writes fail with [`Error::Closed`].
    pub fn flush_and_stop(&self) -> Result<()> {
        let flushed = self.flush();
        self.stop_writer();
        flushed
    }

    /// Stops the storage writer (it drains the rings first) and waits for it. Later
    /// writes fail with [`Error::Closed`]; idempotent. Also done on drop.
    pub fn stop_writer(&self) {
        self.shared.begin_close();
        self.bus.notifier().notify();
        if let Some(h) = self.writer.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = h.join();
        }
        // Let blocked subscribers see the end of the stream.
        self.shared.committed().wake();
        self.shared.system().wake();
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        // The writer drains everything already in the rings before it exits.
        self.stop_writer();
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
