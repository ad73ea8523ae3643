//! The storage writer: one OS thread that turns ring-buffer slots into LMDB group commits.
//!
//! Each iteration drains every ring (and the inbox of verified remote batches, see
//! `remote`) into one write transaction, capped by count and bytes. Events are committed in write
//! ticket order: the engine assigns (ticket, seq, hlc) together, so ticket order is
//! also each author log's seq order and HLC order. For every event the writer appends
//! the id to the node-wide MMR and to its author log's MMR. Then it signs one
//! checkpoint per touched local log and records the new full Merkle pages and MMR
//! tails; while a helper thread writes those pages and fsyncs them, it appends the
//! encodings to `events` in blocks (see `blocks`), one run per log stretch to `logs`
//! (see `runs`), and each event's type and time index entries, table by table through
//! one cursor each. Then it commits.
//! Only after the commit returns Ok does the durable watermark move and `flush()`
//! return. Any failure other than a full map poisons the store.
//!
//! Over 700 lines: the stages (intake from the stage, MMR and checkpoint staging, the
//! LMDB puts, commit and acknowledgement) still share the `Writer` struct and its
//! scratch buffers, so they are not yet modules of their own; the put helpers are in
//! `puts`, remote batches in `remote`.

use std::collections::HashMap;
use std::hash::BuildHasherDefault;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, mpsc};
use std::time::Duration;

use heed::RwTxn;
use xaeroflux_core::block::{encoded_block_len, has_room};
use xaeroflux_core::bus::BusReader;
use xaeroflux_core::event::encode_into;
use xaeroflux_core::mmr::{Hash32, Mmr, leaf_hash};
use xaeroflux_core::{AuthorId, Checkpoint, EventHeader, EventId, GroupId, Hlc};

mod puts;
mod remote;

use puts::{Appender, BlockEvent, put_block, put_postings};

use remote::RemoteOutcome;
pub(crate) use remote::{Inbox, RemoteBatch};

use super::hash_index::IdHasher;
use super::mmrs::{NODE_MMR_ID, PagedNodes};
use super::postings::{self, RunBuilder};
use super::runs::{self, LogRun};
use super::{Tables, be, blocks, from_be, log_key, log_prefix, meta_keys, meta_u64};
use crate::engine::Shared;
use crate::error::{Error, Result};

/// Durable progress, guarded by `Shared::progress`.
#[derive(Debug, Default)]
pub(crate) struct Progress {
    /// Every write ticket below this is durable.
    pub durable_ticket: u64,
    /// Events committed since open.
    pub committed_events: u64,
    /// Set when the writer failed; no further writes are accepted.
    pub poison: Option<String>,
    /// The writer thread exited.
    pub stopped: bool,
}

/// Progress plus its condition variable.
#[derive(Default)]
pub(crate) struct Watermark {
    pub state: Mutex<Progress>,
    pub cv: Condvar,
}

impl Watermark {
    pub(crate) fn lock(&self) -> std::sync::MutexGuard<'_, Progress> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// One event staged for the next commit; its payload lives in the writer's arena.
#[derive(Clone, Copy)]
struct Incoming {
    ticket: u64,
    header: EventHeader,
    start: usize,
    len: usize,
}

type LogKey = (GroupId, AuthorId);

/// Hand-off between the drainer thread and the writer thread.
#[derive(Default)]
struct Stage {
    state: Mutex<Staged>,
    /// Signalled when events are staged or the drainer finishes.
    writer_cv: Condvar,
    /// Signalled when the writer took the staged events or stops.
    drainer_cv: Condvar,
    /// The writer thread is exiting: the drainer stops and drops its reader.
    stop: AtomicBool,
}

#[derive(Default)]
struct Staged {
    pending: Vec<Incoming>,
    arena: Vec<u8>,
    /// The drainer saw the shutdown and found the rings empty; it has exited.
    closed: bool,
}

impl Stage {
    fn lock(&self) -> std::sync::MutexGuard<'_, Staged> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The drainer thread: moves ring slots into the stage (up to the commit caps) so the
/// rings keep accepting writes while the writer commits.
fn drain_loop(shared: &Shared, stage: &Stage, mut reader: BusReader) {
    let policy = shared.opts.commit;
    let author = shared.author;
    let mut groups = shared
        .groups
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    loop {
        if stage.stop.load(Ordering::Acquire) {
            return;
        }
        let shutting_down = shared.shutdown.load(Ordering::Acquire);
        let mut st = stage.lock();
        let room = policy.max_events.max(1).saturating_sub(st.pending.len());
        if room == 0 || st.arena.len() >= policy.max_bytes {
            // Full: wait until the writer takes the stage.
            drop(
                stage
                    .drainer_cv
                    .wait_timeout(st, Duration::from_millis(50))
                    .unwrap_or_else(|e| e.into_inner()),
            );
            continue;
        }
        let Staged { pending, arena, .. } = &mut *st;
        let n = reader.poll(room, |_class, meta, event_type, data| {
            let gi = meta.group as usize;
            if gi >= groups.len() {
                // A group added after the snapshot: refresh it.
                groups = shared
                    .groups
                    .read()
                    .unwrap_or_else(|p| p.into_inner())
                    .clone();
            }
            let group = groups.get(gi).copied().unwrap_or_default();
            let start = arena.len();
            arena.extend_from_slice(data);
            pending.push(Incoming {
                ticket: meta.ticket,
                header: EventHeader {
                    event_type,
                    group,
                    author,
                    seq: meta.seq,
                    hlc: Hlc::from_u64(meta.hlc),
                },
                start,
                len: data.len(),
            });
        });
        let closed = shutting_down && n == 0;
        st.closed = closed;
        drop(st);
        if n > 0 || closed {
            stage.writer_cv.notify_one();
        }
        if closed {
            return;
        }
        if n == 0 {
            reader.wait(Duration::from_millis(50));
        }
    }
}

/// The writer thread's state.
pub(crate) struct Writer {
    shared: Arc<Shared>,
    /// Moved to the drainer thread when `run` starts.
    reader: Option<BusReader>,
    /// Events the drainer thread took from the rings, waiting for this thread.
    stage: Arc<Stage>,
    node: Mmr<PagedNodes>,
    /// Author logs by (group, author); both are BLAKE3 outputs, so the cheap id hasher.
    logs: HashMap<LogKey, (u64, Mmr<PagedNodes>), BuildHasherDefault<IdHasher>>,
    next_mmr_id: u64,
    next_local: u64,
    next_ticket: u64,
    page_count: u64,
    max_hlc: u64,
    pending: Vec<Incoming>,
    arena: Vec<u8>,
    /// Writes and syncs each commit's new pages on its own thread (started by `run`).
    flusher: Option<PageFlusher>,
    /// Verified remote batches taken from the inbox for the next commit.
    remote: Vec<RemoteBatch>,
    /// Buffers of the batch being written, kept from commit to commit.
    buf: Scratch,
}

/// The buffers one commit fills and the next one reuses: only their allocations outlive
/// a commit, never their contents.
#[derive(Default)]
struct Scratch {
    /// An event's encoding, to hash it when no producer offered its id.
    enc: Vec<u8>,
    /// An encoded posting run.
    postings: Vec<u8>,
    /// The commit's new full Merkle pages.
    pages: Vec<u8>,
    /// (id, local seq) of the batch.
    ids: Vec<(EventId, u64)>,
    /// Leaf hashes of the batch's local events, for the node MMR.
    leaves: Vec<Hash32>,
    /// Per log the batch appends to: its next seq and the leaf hashes it appends.
    log_leaves: Vec<(u64, Vec<Hash32>)>,
    /// Log runs of the batch.
    runs: Vec<(LogKey, LogRun)>,
    /// Events of the batch whose puts are deferred (see [`Deferred`]).
    deferred: Vec<Deferred>,
}

/// The page file's flusher: one long-lived thread that writes and syncs a commit's new
/// pages while the writer does the commit's signing and puts. (A thread per commit
/// spent measurable writer time in thread creation and teardown.)
struct PageFlusher {
    jobs: mpsc::SyncSender<(u64, Vec<u8>)>,
    done: mpsc::Receiver<(Result<()>, Vec<u8>)>,
    thread: std::thread::JoinHandle<()>,
}

impl PageFlusher {
    fn start(shared: Arc<Shared>) -> std::io::Result<Self> {
        let (jobs, rx) = mpsc::sync_channel::<(u64, Vec<u8>)>(1);
        let (tx, done) = mpsc::sync_channel(1);
        let thread = std::thread::Builder::new()
            .name("xaeroflux-pages".into())
            .spawn(move || {
                for (first, pages) in rx {
                    let res = shared.store.pages.write_pages(first, &pages, true);
                    if tx.send((res, pages)).is_err() {
                        return;
                    }
                }
            })?;
        Ok(PageFlusher { jobs, done, thread })
    }

    /// Hands `pages` (starting at page `first`) to the thread; gives them back if the
    /// thread is gone.
    fn begin(&self, first: u64, pages: Vec<u8>) -> std::result::Result<(), Vec<u8>> {
        self.jobs.send((first, pages)).map_err(|e| e.0.1)
    }

    /// Waits for the pages handed over by `begin` to be durable; returns their buffer.
    fn finish(&self) -> (Result<()>, Vec<u8>) {
        self.done.recv().unwrap_or_else(|_| {
            let e = Error::WriterThread {
                thread: "page flusher",
            };
            (Err(e), Vec::new())
        })
    }

    fn stop(self) {
        drop(self.jobs);
        let _ = self.thread.join();
    }
}

/// An event whose table and index puts wait until the batch's Merkle pages are being
/// flushed: the puts then overlap the page file's fsync (see `finish_batch`).
#[derive(Clone, Copy)]
pub(super) enum Deferred {
    /// Local event `i` of the batch, at local sequence `local`.
    Local { i: usize, local: u64 },
    /// Event `event` of taken remote batch `batch`, at local sequence `local`.
    Remote {
        batch: usize,
        event: usize,
        header: EventHeader,
        local: u64,
    },
}

impl Deferred {
    fn local(&self) -> u64 {
        match *self {
            Deferred::Local { local, .. } | Deferred::Remote { local, .. } => local,
        }
    }
}

fn local_event(batch: &[Incoming], i: usize) -> Result<&Incoming> {
    batch.get(i).ok_or_else(|| Error::Invariant {
        what: "deferred event out of the batch".into(),
    })
}

/// The header and local sequence of a deferred event.
fn deferred_header(batch: &[Incoming], d: &Deferred) -> Result<(EventHeader, u64)> {
    Ok(match *d {
        Deferred::Local { i, local } => (local_event(batch, i)?.header, local),
        Deferred::Remote { header, local, .. } => (header, local),
    })
}

fn mmr_err(e: xaeroflux_core::mmr::MmrError) -> Error {
    Error::from(e)
}

impl Writer {
    /// Loads the writer state from the committed store.
    pub(crate) fn open(shared: Arc<Shared>, reader: BusReader, next_ticket: u64) -> Result<Self> {
        let (node, next_local, next_mmr_id, page_count, max_hlc) = {
            let rtxn = shared.store.env.read_txn()?;
            let t = &shared.store.tables;
            let (nodes, size) =
                PagedNodes::load(t, &rtxn, shared.store.pages.clone(), NODE_MMR_ID)?;
            let node = Mmr::new(nodes, size).map_err(mmr_err)?;
            let next_local = blocks::event_count(t, &rtxn)?;
            if node.leaf_count() != next_local {
                return Err(Error::Corrupt {
                    path: shared.opts.data_dir.clone(),
                    reason: format!(
                        "node mmr has {} leaves but the store holds {next_local} events",
                        node.leaf_count()
                    ),
                });
            }
            (
                node,
                next_local,
                meta_u64(t, &rtxn, meta_keys::NEXT_MMR_ID)?.max(1),
                meta_u64(t, &rtxn, meta_keys::PAGE_COUNT)?,
                meta_u64(t, &rtxn, meta_keys::MAX_HLC)?,
            )
        };
        let stage = Arc::new(Stage::default());
        shared.inbox.attach(stage.clone());
        Ok(Writer {
            shared,
            reader: Some(reader),
            stage,
            node,
            logs: HashMap::default(),
            next_mmr_id,
            next_local,
            next_ticket,
            page_count,
            max_hlc,
            pending: Vec::new(),
            arena: Vec::new(),
            flusher: None,
            remote: Vec::new(),
            buf: Scratch::default(),
        })
    }

    /// The thread body: runs until shutdown, then drains what is left.
    ///
    /// A second thread (the drainer) moves events from the rings into the stage while
    /// this one is busy, mostly waiting for the commit's fsync. Without it the rings
    /// fill during every fsync and producers stall, and each commit holds at most one
    /// ring's worth of events (4,096 at 64 B, 1,024 at 1 KiB); with it, everything that
    /// arrived during a commit goes into the next one (group commit sized by the disk).
    pub(crate) fn run(mut self) {
        let drainer = self.reader.take().and_then(|reader| {
            let (shared, stage) = (self.shared.clone(), self.stage.clone());
            std::thread::Builder::new()
                .name("xaeroflux-drain".into())
                .spawn(move || drain_loop(&shared, &stage, reader))
                .map_err(|e| tracing::error!(error = %e, "cannot start the drainer thread"))
                .ok()
        });
        // Without a flusher thread (the OS refused one) pages are flushed inline.
        self.flusher = PageFlusher::start(self.shared.clone())
            .map_err(|e| tracing::warn!(error = %e, "no page flusher thread; flushing inline"))
            .ok();
        let result = match drainer {
            Some(_) => self.run_inner(),
            None => Err(Error::WriterThread { thread: "drainer" }),
        };
        if let Some(f) = self.flusher.take() {
            f.stop();
        }
        // Stop the drainer first: dropping its reader unregisters it, so producers
        // blocked on a full ring wake up and see the poison or the shutdown.
        self.stage.stop.store(true, Ordering::Release);
        self.stage.drainer_cv.notify_all();
        if let Some(h) = drainer {
            let _ = h.join();
        }
        let mut p = self.shared.progress.lock();
        if let Err(e) = result {
            tracing::error!(error = %e, "storage writer failed; store poisoned");
            p.poison = Some(error_chain(&e));
            self.shared.poisoned.store(true, Ordering::Release);
        }
        p.stopped = true;
        drop(p);
        self.shared.progress.cv.notify_all();
        self.shared.inbox.commits.notify();
    }

    fn run_inner(&mut self) -> Result<()> {
        loop {
            let (taken, closed) = self.take_staged(false);
            self.shared.inbox.take(&mut self.remote);
            if self.ready() == 0 && self.remote.is_empty() {
                if closed && taken == 0 {
                    // A clean close leaves nothing to re-hash on the next open (up to
                    // a whole chunk otherwise). Failing here loses nothing: the index
                    // is rebuilt from its mark on open.
                    if let Err(e) = self.flush_hash_index() {
                        tracing::warn!(error = %e, "hash index not flushed at close");
                    }
                    return Ok(());
                }
                if taken == 0 {
                    self.take_staged(true);
                }
                continue;
            }
            self.commit_ready()?;
        }
    }

    /// Moves the staged events into `pending`; with `wait`, first waits (briefly) for
    /// some. Returns how many were taken and whether the drainer has finished.
    fn take_staged(&mut self, wait: bool) -> (usize, bool) {
        let stage = &self.stage;
        let mut st = stage.lock();
        if wait && st.pending.is_empty() && !st.closed && !self.shared.inbox.has_pending() {
            st = stage
                .writer_cv
                .wait_timeout(st, Duration::from_millis(50))
                .map(|(g, _)| g)
                .unwrap_or_else(|e| e.into_inner().0);
        }
        let n = st.pending.len();
        let closed = st.closed;
        if n > 0 {
            if self.pending.is_empty() {
                // Swap buffers: no copy, and the stage reuses our cleared allocations.
                self.arena.clear();
                std::mem::swap(&mut self.pending, &mut st.pending);
                std::mem::swap(&mut self.arena, &mut st.arena);
            } else {
                let base = self.arena.len();
                self.arena.extend_from_slice(&st.arena);
                self.pending.extend(st.pending.iter().map(|i| Incoming {
                    start: i.start + base,
                    ..*i
                }));
                st.pending.clear();
                st.arena.clear();
            }
            drop(st);
            stage.drainer_cv.notify_one();
        }
        (n, closed)
    }

    /// Number of pending events whose tickets continue the committed sequence.
    fn ready(&mut self) -> usize {
        self.pending.sort_unstable_by_key(|i| i.ticket);
        self.pending
            .iter()
            .take(self.shared.opts.commit.max_events.max(1))
            .enumerate()
            .take_while(|(i, inc)| inc.ticket == self.next_ticket + *i as u64)
            .count()
    }

    fn commit_ready(&mut self) -> Result<()> {
        let n = self.ready();
        let bytes: usize = self.pending[..n].iter().map(|i| i.len + 256).sum::<usize>()
            + self
                .remote
                .iter()
                .map(|b| b.events.byte_len() + 256 * b.events.len())
                .sum::<usize>();
        let mut attempts = 0;
        let (ids, remote_out) = loop {
            self.ensure_map_room(bytes * 4 + (4 << 20))?;
            match self.write_batch(n) {
                Ok(out) => break (std::mem::take(&mut self.buf.ids), out),
                Err(Error::Lmdb(heed::Error::Mdb(heed::MdbError::MapFull))) if attempts < 8 => {
                    attempts += 1;
                    self.reload_mmrs()?;
                    let size = self.shared.store.env.info().map_size;
                    self.grow_map(size.saturating_mul(2))?;
                }
                Err(e) => return Err(e),
            }
        };
        // Committed: advance the watermark, then publish the ids to the hash index.
        self.pending.drain(..n);
        if self.pending.is_empty() {
            self.arena.clear();
        }
        self.next_ticket += n as u64;
        let batches = self.remote.len();
        self.remote.clear();
        let remote_events = remote_out.events;
        self.shared.store.hashes.insert_committed(&ids);
        self.buf.ids = ids; // keep the allocation for the next batch
        // Post-commit hook: the committed stream (subscriptions, later sync and the
        // vector indexer) sees the batch only now that it is durable. It moves before
        // the durable watermark, so a subscriber polled after `flush()` returns sees
        // everything that flush covered.
        self.shared.committed.publish(self.next_local);
        {
            let mut p = self.shared.progress.lock();
            p.durable_ticket = self.next_ticket;
            p.committed_events += n as u64 + remote_events;
        }
        self.shared.progress.cv.notify_all();
        if batches > 0 {
            self.shared.inbox.applied(batches);
        }
        self.shared.inbox.commits.notify();
        for (group, author, length) in remote_out.forks {
            self.shared
                .system
                .publish(crate::system::SystemEvent::ForkDetected {
                    group,
                    author,
                    length,
                });
        }
        if self.shared.store.hashes.pending() >= self.shared.opts.hash_index_chunk {
            self.flush_hash_index()?;
        }
        Ok(())
    }

    /// Writes the in-memory part of the hash index to its table, growing the map first
    /// (the transaction may copy every page of the table) and again on `MapFull`.
    fn flush_hash_index(&mut self) -> Result<()> {
        let shared = self.shared.clone();
        let mut attempts = 0;
        loop {
            self.ensure_map_room(
                shared
                    .store
                    .hashes
                    .flush_room(&shared.store.env, &shared.store.tables)?,
            )?;
            match shared.store.hashes.flush(
                &shared.store.env,
                &shared.store.tables,
                self.next_local,
            ) {
                Ok(()) => return Ok(()),
                Err(Error::Lmdb(heed::Error::Mdb(heed::MdbError::MapFull))) if attempts < 8 => {
                    attempts += 1;
                    let size = shared.store.env.info().map_size;
                    self.grow_map(size.saturating_mul(2))?;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Writes the first `n` pending events and the taken remote batches in one
    /// transaction (their ids are left in `buf.ids`); returns what the remote batches
    /// added.
    fn write_batch(&mut self, n: usize) -> Result<RemoteOutcome> {
        let pending = std::mem::take(&mut self.pending);
        let res = self.write_batch_inner(&pending[..n]);
        self.pending = pending;
        res
    }

    fn write_batch_inner(&mut self, batch: &[Incoming]) -> Result<RemoteOutcome> {
        let shared = self.shared.clone();
        let t: &Tables = &shared.store.tables;
        let mut wtxn = shared.store.env.write_txn()?;
        self.buf.deferred.clear();
        let mut local = self.next_local;
        let mut ids = std::mem::take(&mut self.buf.ids);
        ids.clear();
        let res = self
            .write_events(&mut wtxn, batch, &mut local, &mut ids)
            .and_then(|mut touched| {
                let out = self.write_remote(t, &mut wtxn, &mut local, &mut ids, &mut touched)?;
                Ok((touched, out))
            });
        self.buf.ids = ids;
        let (touched, out) = res?;
        self.finish_batch(&shared, wtxn, batch, touched, local)?;
        Ok(out)
    }

    /// Pushes the events' ids to the MMRs; their puts are deferred (see [`Deferred`]).
    fn write_events(
        &mut self,
        wtxn: &mut RwTxn<'_>,
        batch: &[Incoming],
        local_out: &mut u64,
        ids: &mut Vec<(EventId, u64)>,
    ) -> Result<Vec<(LogKey, Hlc)>> {
        let mut local = *local_out;
        let mut touched: Vec<(LogKey, Hlc)> = Vec::new();
        // The MMR pushes are batched (nodes hashed height by height, see
        // `Mmr::push_leaf_hashes`): the leaf hashes for the node MMR, and per touched log
        // (same index as `touched`) its next seq and its leaf hashes.
        let mut leaves = std::mem::take(&mut self.buf.leaves);
        let mut log_leaves = std::mem::take(&mut self.buf.log_leaves);
        leaves.clear();
        for (i, inc) in batch.iter().enumerate() {
            let h = &inc.header;
            let payload = &self.arena[inc.start..inc.start + inc.len];
            let mut hash = || {
                self.buf.enc.clear();
                encode_into(h, payload, &mut self.buf.enc);
                EventId(*blake3::hash(&self.buf.enc).as_bytes())
            };
            // The producer's id and leaf hash for this ticket save encoding and hashing
            // the event again.
            let (id, hashed) = match self.shared.store.hashes.offered(inc.ticket) {
                Some((id, leaf)) => {
                    debug_assert_eq!(id, hash());
                    debug_assert_eq!(leaf, leaf_hash(&id.0));
                    (id, leaf)
                }
                None => {
                    let id = hash();
                    (id, leaf_hash(&id.0))
                }
            };
            self.buf.deferred.push(Deferred::Local { i, local });
            leaves.push(hashed);
            let key = (h.group, h.author);
            let j = match touched.iter().position(|(k, _)| *k == key) {
                Some(j) => j,
                None => {
                    let next_seq = self.log_mmr(wtxn, key)?.leaf_count();
                    touched.push((key, h.hlc));
                    if log_leaves.len() < touched.len() {
                        log_leaves.push((0, Vec::new()));
                    }
                    let (seq, list) = &mut log_leaves[touched.len() - 1];
                    *seq = next_seq;
                    list.clear();
                    touched.len() - 1
                }
            };
            let (next_seq, list) = &mut log_leaves[j];
            if *next_seq != h.seq {
                return Err(Error::invariant(format!(
                    "log {}/{} expected seq {next_seq}, got {}",
                    h.group.short(),
                    h.author.short(),
                    h.seq
                )));
            }
            *next_seq += 1;
            list.push(hashed);
            touched[j].1 = touched[j].1.max(h.hlc);
            self.max_hlc = self.max_hlc.max(h.hlc.as_u64());
            ids.push((id, local));
            local += 1;
        }
        let pushed = self.node.push_leaf_hashes(&leaves).map_err(mmr_err)?;
        debug_assert_eq!(pushed, *local_out..local);
        for ((key, _), (_, list)) in touched.iter().zip(&log_leaves) {
            self.log_mmr(wtxn, *key)?
                .push_leaf_hashes(list)
                .map_err(mmr_err)?;
        }
        self.buf.leaves = leaves;
        self.buf.log_leaves = log_leaves;
        *local_out = local;
        Ok(touched)
    }

    /// Signs checkpoints, stages the MMRs and commits.
    fn finish_batch(
        &mut self,
        shared: &Arc<Shared>,
        mut wtxn: RwTxn<'_>,
        batch: &[Incoming],
        touched: Vec<(LogKey, Hlc)>,
        local: u64,
    ) -> Result<()> {
        let t: &Tables = &shared.store.tables;
        // Stage the node MMR and every touched log MMR: pages to the file, state to LMDB.
        self.buf.pages.clear();
        let first_page = self.page_count;
        let mut next_page = first_page;
        let mut staged: Vec<(Option<LogKey>, u64)> = Vec::with_capacity(touched.len() + 1);
        staged.push((None, next_page));
        self.node.store_mut().stage(
            t,
            &mut wtxn,
            &mut self.buf.pages,
            &mut next_page,
            &mut self.buf.postings,
        )?;
        for (key, _) in &touched {
            staged.push((Some(*key), next_page));
            let (_, mmr) = self.logs.get_mut(key).ok_or_else(|| Error::Invariant {
                what: "log vanished".into(),
            })?;
            mmr.store_mut().stage(
                t,
                &mut wtxn,
                &mut self.buf.pages,
                &mut next_page,
                &mut self.buf.postings,
            )?;
        }
        // New pages are synced before the commit that references them, whatever the
        // durability: a committed reference to a page lost in a power cut would damage
        // the MMR. The flush runs on a helper thread while this one does the batch's
        // event and index puts; the commit waits for both.
        let pages = std::mem::take(&mut self.buf.pages);
        let deferred = std::mem::take(&mut self.buf.deferred);
        // Signing and the puts overlap the page flush. Without a flusher thread (or
        // with nothing to flush) the pages are flushed here, first.
        let unhanded = match &self.flusher {
            Some(f) if !pages.is_empty() => f.begin(first_page, pages).err(),
            _ => Some(pages),
        };
        let inline = match &unhanded {
            Some(pages) => shared.store.pages.write_pages(first_page, pages, true),
            None => Ok(()),
        };
        let puts = inline
            .and_then(|()| self.sign_checkpoints(shared, &mut wtxn, &touched))
            .and_then(|()| self.put_deferred(t, &mut wtxn, batch, &deferred));
        // Whatever the puts did, a handed-over flush is waited for: its result belongs
        // to this commit.
        let (flushed, pages) = match (unhanded, &self.flusher) {
            (Some(pages), _) => (Ok(()), pages),
            (None, Some(f)) => f.finish(),
            (None, None) => (Ok(()), Vec::new()),
        };
        let res = puts.and(flushed);
        self.buf.pages = pages;
        self.buf.deferred = deferred;
        res?;
        t.meta
            .put(&mut wtxn, meta_keys::PAGE_COUNT, &next_page.to_le_bytes())?;
        t.meta.put(
            &mut wtxn,
            meta_keys::NEXT_MMR_ID,
            &self.next_mmr_id.to_le_bytes(),
        )?;
        t.meta
            .put(&mut wtxn, meta_keys::MAX_HLC, &self.max_hlc.to_le_bytes())?;
        wtxn.commit()?;
        // The commit is durable (or, with Durability::None, handed to the OS).
        for (key, first) in staged {
            match key {
                None => self.node.store_mut().committed(first),
                Some(k) => {
                    if let Some((_, mmr)) = self.logs.get_mut(&k) {
                        mmr.store_mut().committed(first);
                    }
                }
            }
        }
        self.page_count = next_page;
        self.next_local = local;
        Ok(())
    }

    /// Signs and stores one checkpoint per local log the batch appended to: one
    /// signature covers the whole batch.
    fn sign_checkpoints(
        &self,
        shared: &Shared,
        wtxn: &mut RwTxn<'_>,
        touched: &[(LogKey, Hlc)],
    ) -> Result<()> {
        for ((group, author), hlc) in touched {
            if *author != shared.author {
                continue;
            }
            let (_, mmr) = self
                .logs
                .get(&(*group, *author))
                .ok_or_else(|| Error::Invariant {
                    what: "log vanished".into(),
                })?;
            let cp = Checkpoint {
                group: *group,
                author: *author,
                length: mmr.leaf_count(),
                root: mmr.root().map_err(mmr_err)?,
                hlc: *hlc,
            }
            .sign(&shared.keypair);
            shared.store.tables.checkpoints.put(
                wtxn,
                &log_key(&group.0, &author.0, cp.checkpoint.length),
                &cp.encode(),
            )?;
        }
        Ok(())
    }

    /// Does the deferred puts of the batch: table by table, each through one cursor.
    fn put_deferred(
        &mut self,
        t: &Tables,
        wtxn: &mut RwTxn<'_>,
        batch: &[Incoming],
        deferred: &[Deferred],
    ) -> Result<()> {
        self.put_blocks(t, wtxn, batch, deferred)?;
        self.put_runs(t, wtxn, batch, deferred)?;
        let mut types: RunBuilder<(GroupId, u32)> = RunBuilder::default();
        let mut times: RunBuilder<LogKey> = RunBuilder::default();
        for d in deferred {
            let (h, local) = deferred_header(batch, d)?;
            let hlc = h.hlc.as_u64();
            let (g, a) = (&h.group.0, &h.author.0);
            let type_key = || postings::type_key(g, h.event_type, hlc, local).to_vec();
            types.push((h.group, h.event_type), type_key, hlc, local);
            let time_key = || postings::time_key(g, hlc, a, h.seq).to_vec();
            times.push((h.group, h.author), time_key, hlc, local);
        }
        put_postings(&t.types, wtxn, types.finish(), &mut self.buf.postings)?;
        put_postings(&t.times, wtxn, times.finish(), &mut self.buf.postings)
    }

    /// Appends the batch's encodings to `events` in blocks (see [`super::blocks`]):
    /// each block is written once, straight into LMDB's reserved space, with local
    /// events encoded there and remote ones copied there.
    fn put_blocks(
        &self,
        t: &Tables,
        wtxn: &mut RwTxn<'_>,
        batch: &[Incoming],
        deferred: &[Deferred],
    ) -> Result<()> {
        let mut cursor = t.events.iter_mut(wtxn)?;
        let mut events: Vec<BlockEvent<'_>> = Vec::new();
        let mut lens: Vec<usize> = Vec::new();
        let mut block_len = encoded_block_len(&[]);
        let mut first = None;
        for d in deferred {
            let event = match *d {
                Deferred::Local { i, .. } => {
                    let inc = local_event(batch, i)?;
                    BlockEvent::Encode(&inc.header, &self.arena[inc.start..inc.start + inc.len])
                }
                Deferred::Remote { batch, event, .. } => self
                    .remote
                    .get(batch)
                    .and_then(|b| b.events.get(event))
                    .map(BlockEvent::Copy)
                    .ok_or_else(|| Error::Invariant {
                        what: "deferred event out of the batch".into(),
                    })?,
            };
            let len = event.len();
            if !has_room(lens.len(), block_len, len)
                && let Some(start) = first.take()
            {
                put_block(&mut cursor, start, &events, &lens)?;
                events.clear();
                lens.clear();
                block_len = encoded_block_len(&[]);
            }
            let local = d.local();
            let start = *first.get_or_insert(local);
            if local != start + lens.len() as u64 {
                return Err(Error::Invariant {
                    what: "deferred events out of order".into(),
                });
            }
            events.push(event);
            lens.push(len);
            block_len += 4 + len;
        }
        if let Some(start) = first {
            put_block(&mut cursor, start, &events, &lens)?;
        }
        Ok(())
    }

    /// Records the batch's log runs (see [`super::runs`]): one entry per stretch of a
    /// log at consecutive local sequences, extending the log's last stored run when
    /// the batch continues it.
    fn put_runs(
        &mut self,
        t: &Tables,
        wtxn: &mut RwTxn<'_>,
        batch: &[Incoming],
        deferred: &[Deferred],
    ) -> Result<()> {
        let runs = &mut self.buf.runs;
        runs.clear();
        // Index in `runs` of each log's latest run: few logs per batch, so a list.
        let mut latest: Vec<(LogKey, usize)> = Vec::new();
        for d in deferred {
            let (h, local) = deferred_header(batch, d)?;
            let key = (h.group, h.author);
            let mut run = LogRun {
                first_seq: h.seq,
                first_local: local,
                count: 1,
            };
            match latest.iter_mut().find(|(k, _)| *k == key) {
                Some((_, i)) if runs[*i].1.continued_by(h.seq, local) => {
                    runs[*i].1.count += 1;
                    continue;
                }
                Some((_, i)) => *i = runs.len(),
                None => {
                    latest.push((key, runs.len()));
                    // The log's first run in this batch may continue its stored one:
                    // then it is rewritten under its key with the larger count.
                    if let Some(last) = runs::last_run(t, wtxn, &key.0, &key.1)?
                        && last.continued_by(h.seq, local)
                    {
                        run = LogRun {
                            count: last.count + 1,
                            ..last
                        };
                    }
                }
            }
            runs.push((key, run));
        }
        runs.sort_unstable_by_key(|((g, a), r)| (*g, *a, r.first_seq));
        let mut logs = Appender::new(&t.logs, wtxn)?;
        for ((g, a), run) in runs.iter() {
            logs.put(&log_key(&g.0, &a.0, run.first_seq), &run.value())?;
        }
        Ok(())
    }

    /// The MMR of an author log, loading or creating it.
    fn log_mmr(&mut self, wtxn: &mut RwTxn<'_>, key: LogKey) -> Result<&mut Mmr<PagedNodes>> {
        if !self.logs.contains_key(&key) {
            let t = &self.shared.store.tables;
            let prefix = log_prefix(&key.0.0, &key.1.0);
            let id = match t.log_mmrs.get(wtxn, &prefix)?.and_then(from_be) {
                Some(id) => id,
                None => {
                    let id = self.next_mmr_id;
                    self.next_mmr_id += 1;
                    t.log_mmrs.put(wtxn, &prefix, &be(id))?;
                    id
                }
            };
            let (nodes, size) = PagedNodes::load(t, wtxn, self.shared.store.pages.clone(), id)?;
            let mmr = Mmr::new(nodes, size).map_err(mmr_err)?;
            self.logs.insert(key, (id, mmr));
        }
        self.logs
            .get_mut(&key)
            .map(|(_, m)| m)
            .ok_or_else(|| Error::Invariant {
                what: "log mmr missing".into(),
            })
    }

    /// Forgets uncommitted MMR changes after an aborted transaction.
    fn reload_mmrs(&mut self) -> Result<()> {
        let rtxn = self.shared.store.env.read_txn()?;
        let t = &self.shared.store.tables;
        let (nodes, size) =
            PagedNodes::load(t, &rtxn, self.shared.store.pages.clone(), NODE_MMR_ID)?;
        self.node = Mmr::new(nodes, size).map_err(mmr_err)?;
        self.logs.clear();
        self.next_mmr_id = meta_u64(t, &rtxn, meta_keys::NEXT_MMR_ID)?.max(1);
        self.max_hlc = meta_u64(t, &rtxn, meta_keys::MAX_HLC)?;
        Ok(())
    }

    /// Grows the LMDB map if fewer than `needed` bytes are free.
    fn ensure_map_room(&self, needed: usize) -> Result<()> {
        let info = self.shared.store.env.info();
        let psize = self.shared.store.env.unnamed_database_stat().page_size as usize;
        let used = (info.last_page_number + 1) * psize;
        if used.saturating_add(needed) > info.map_size {
            let target = info.map_size.saturating_mul(2).max(used + needed * 2);
            self.grow_map(target)?;
        }
        Ok(())
    }

    fn grow_map(&self, size: usize) -> Result<()> {
        let page = super::page_size();
        let size = size.div_ceil(page) * page;
        // Readers hold the gate shared for the life of their transaction; taking it
        // exclusively guarantees no transaction of this process is active.
        let _gate = self.shared.store.gate_exclusive();
        tracing::debug!(size, "growing lmdb map");
        // SAFETY: no transaction of this process is active (gate held exclusively, and
        // the writer has none open between batches).
        unsafe { self.shared.store.env.resize(size) }.map_err(|e| match e {
            heed::Error::Io(io) if io.raw_os_error() == Some(28) => Error::Full(io.to_string()),
            e => Error::Lmdb(e),
        })
    }
}

/// Whether an error means the disk is full.
pub(crate) fn error_chain(e: &Error) -> String {
    let mut s = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(inner) = src {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        src = inner.source();
    }
    s
}
