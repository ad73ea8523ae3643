//! The storage writer: one OS thread that turns ring-buffer slots into LMDB group commits.
//!
//! A commit goes through four stages:
//!
//! 1. **Intake** (`intake`): a drainer thread moves ring slots into the stage while the
//!    writer commits; the writer takes them into its [`Intake`] and commits the events
//!    whose write tickets continue the committed sequence, capped by count and bytes,
//!    together with the verified remote batches of the inbox (`remote`). The engine
//!    assigns (ticket, seq, hlc) together, so ticket order is also each author log's
//!    seq order and HLC order.
//! 2. **MMR staging** (this file, `write_events`; `remote` for received events): each
//!    event's id is appended to the node-wide MMR and to its author log's MMR; its puts
//!    are deferred ([`Deferred`]: header, local sequence and bytes, borrowed from the
//!    intake or the remote batch). Then the MMRs are staged (full Merkle pages to the
//!    page file, tails to LMDB) and one checkpoint per touched local log is signed.
//! 3. **Puts** (`puts`): while a helper thread writes and fsyncs the new pages, the
//!    deferred events go into event blocks, log runs and type/time postings, table by
//!    table through one cursor each.
//! 4. **Commit and acknowledgement** (`commit_ready`): the transaction commits; only
//!    then do the ids reach the id index, the committed stream move, the durable
//!    watermark advance (`flush()` returns) and the remote batches count as applied.
//!
//! Any failure other than a full map poisons the store.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Condvar, Mutex, mpsc};

use heed::RwTxn;
use xaeroflux_core::bus::BusReader;
use xaeroflux_core::event::encode_into;
use xaeroflux_core::mmr::{Hash32, leaf_hash};
use xaeroflux_core::{AuthorId, EventId, GroupId, Hlc};

mod intake;
mod puts;
mod remote;
mod staging;

use intake::{Incoming, Intake, Stage, drain_loop};
use puts::{BlockEvent, Deferred, PutBuffers};
use staging::Mmrs;

use remote::RemoteOutcome;
pub(crate) use remote::{Inbox, RemoteBatch};

use super::{Tables, blocks, log_key, meta_keys, meta_u64};
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
    /// Recent commits' local events as `(first ticket, first local position, count)`,
    /// oldest first, at most [`RECENT_SPANS`]: a writer waiting for its ticket learns
    /// its event's position without an id lookup.
    pub spans: std::collections::VecDeque<(u64, u64, u64)>,
}

/// Commits [`Progress::spans`] remembers.
pub(crate) const RECENT_SPANS: usize = 256;

impl Progress {
    /// The local position the event of `ticket` was committed at, if that commit is
    /// among the recent ones.
    pub(crate) fn position_of(&self, ticket: u64) -> Option<u64> {
        self.spans
            .iter()
            .rev()
            .find(|(t0, _, n)| (*t0..t0 + n).contains(&ticket))
            .map(|(t0, l0, _)| l0 + (ticket - t0))
    }
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

type LogKey = (GroupId, AuthorId);

/// The writer thread's state.
pub(crate) struct Writer {
    shared: Arc<Shared>,
    /// Moved to the drainer thread when `run` starts.
    reader: Option<BusReader>,
    /// Events the drainer thread took from the rings, waiting for this thread.
    stage: Arc<Stage>,
    /// The node MMR and the author logs' MMRs.
    mmrs: Mmrs,
    next_local: u64,
    next_ticket: u64,
    page_count: u64,
    max_hlc: u64,
    /// Local events taken from the stage, waiting for their commit.
    intake: Intake,
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
    /// Buffers of the puts (also the MMR staging's scratch).
    puts: PutBuffers,
    /// The commit's new full Merkle pages.
    pages: Vec<u8>,
    /// (id, local seq) of the batch.
    ids: Vec<(EventId, u64)>,
    /// Leaf hashes of the batch's local events, for the node MMR.
    leaves: Vec<Hash32>,
    /// Per log the batch appends to: its next seq and the leaf hashes it appends.
    log_leaves: Vec<(u64, Vec<Hash32>)>,
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
                    let res = shared.store().pages.write_pages(first, &pages, true);
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

fn mmr_err(e: xaeroflux_core::mmr::MmrError) -> Error {
    Error::from(e)
}

impl Writer {
    /// Loads the writer state from the committed store.
    pub(crate) fn open(shared: Arc<Shared>, reader: BusReader, next_ticket: u64) -> Result<Self> {
        let (mmrs, next_local, page_count, max_hlc) = {
            let rtxn = shared.store().env.read_txn()?;
            let t = &shared.store().tables;
            let mmrs = Mmrs::load(t, &rtxn, shared.store().pages.clone())?;
            let next_local = blocks::event_count(t, &rtxn)?;
            if mmrs.node_leaves() != next_local {
                return Err(Error::Corrupt {
                    path: shared.opts().data_dir.clone(),
                    reason: format!(
                        "node mmr has {} leaves but the store holds {next_local} events",
                        mmrs.node_leaves()
                    ),
                });
            }
            (
                mmrs,
                next_local,
                meta_u64(t, &rtxn, meta_keys::PAGE_COUNT)?,
                meta_u64(t, &rtxn, meta_keys::MAX_HLC)?,
            )
        };
        let stage = Arc::new(Stage::default());
        shared.inbox().attach(stage.clone());
        Ok(Writer {
            shared,
            reader: Some(reader),
            stage,
            mmrs,
            next_local,
            next_ticket,
            page_count,
            max_hlc,
            intake: Intake::default(),
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
        let mut p = self.shared.progress().lock();
        if let Err(e) = result {
            tracing::error!(error = %e, "storage writer failed; store poisoned");
            p.poison = Some(error_chain(&e));
            self.shared.mark_poisoned();
        }
        p.stopped = true;
        drop(p);
        self.shared.progress().cv.notify_all();
        self.shared.inbox().commits.notify();
    }

    fn run_inner(&mut self) -> Result<()> {
        loop {
            let (taken, closed) = self.take_staged(false);
            self.shared.inbox().take(&mut self.remote);
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

    /// Moves the staged events into the intake; with `wait`, first waits (briefly)
    /// for some. Returns how many were taken and whether the drainer has finished.
    fn take_staged(&mut self, wait: bool) -> (usize, bool) {
        let inbox = &self.shared.inbox();
        intake::take_staged(&self.stage, &mut self.intake, wait, || inbox.has_pending())
    }

    /// Number of local events whose tickets continue the committed sequence.
    fn ready(&mut self) -> usize {
        let max = self.shared.opts().commit.max_events;
        self.intake.ready(self.next_ticket, max)
    }

    fn commit_ready(&mut self) -> Result<()> {
        let n = self.ready();
        let bytes: usize = self
            .intake
            .first(n)
            .iter()
            .map(|i| i.len + 256)
            .sum::<usize>()
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
                    let size = self.shared.store().env.info().map_size;
                    self.grow_map(size.saturating_mul(2))?;
                }
                Err(e) => return Err(e),
            }
        };
        // Committed: advance the watermark, then publish the ids to the hash index.
        self.intake.consume(n);
        // The first `n` ids are the local events, in ticket order, at consecutive
        // positions.
        let span = ids
            .first()
            .filter(|_| n > 0)
            .map(|(_, l0)| (self.next_ticket, *l0, n as u64));
        self.next_ticket += n as u64;
        let batches = self.remote.len();
        self.remote.clear();
        let remote_events = remote_out.events;
        self.shared.store().hashes.insert_committed(&ids);
        self.buf.ids = ids; // keep the allocation for the next batch
        // Post-commit hook: the committed stream (subscriptions, later sync and the
        // vector indexer) sees the batch only now that it is durable. It moves before
        // the durable watermark, so a subscriber polled after `flush()` returns sees
        // everything that flush covered.
        self.shared.committed().publish(self.next_local);
        {
            let mut p = self.shared.progress().lock();
            p.durable_ticket = self.next_ticket;
            p.committed_events += n as u64 + remote_events;
            if let Some(span) = span {
                if p.spans.len() == RECENT_SPANS {
                    p.spans.pop_front();
                }
                p.spans.push_back(span);
            }
        }
        self.shared.progress().cv.notify_all();
        if batches > 0 {
            self.shared.inbox().applied(batches);
        }
        self.shared.inbox().commits.notify();
        for (group, author, length) in remote_out.forks {
            self.shared
                .system()
                .publish(crate::system::SystemEvent::ForkDetected {
                    group,
                    author,
                    length,
                });
        }
        if self.shared.store().hashes.pending() >= self.shared.opts().hash_index_chunk {
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
                    .store()
                    .hashes
                    .flush_room(&shared.store().env, &shared.store().tables)?,
            )?;
            match shared.store().hashes.flush(
                &shared.store().env,
                &shared.store().tables,
                self.next_local,
            ) {
                Ok(()) => return Ok(()),
                Err(Error::Lmdb(heed::Error::Mdb(heed::MdbError::MapFull))) if attempts < 8 => {
                    attempts += 1;
                    let size = shared.store().env.info().map_size;
                    self.grow_map(size.saturating_mul(2))?;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Writes the first `n` local events and the taken remote batches in one
    /// transaction (their ids are left in `buf.ids`); returns what the remote batches
    /// added.
    fn write_batch(&mut self, n: usize) -> Result<RemoteOutcome> {
        // Out of `self` while the commit's deferred events borrow their bytes.
        let intake = std::mem::take(&mut self.intake);
        let remote = std::mem::take(&mut self.remote);
        let res = self.write_batch_inner(&intake, n, &remote);
        self.intake = intake;
        self.remote = remote;
        res
    }

    fn write_batch_inner(
        &mut self,
        intake: &Intake,
        n: usize,
        remote: &[RemoteBatch],
    ) -> Result<RemoteOutcome> {
        let shared = self.shared.clone();
        let t: &Tables = &shared.store().tables;
        let mut wtxn = shared.store().env.write_txn()?;
        let batch = intake.first(n);
        let mut deferred = Vec::with_capacity(batch.len());
        let mut local = self.next_local;
        let mut ids = std::mem::take(&mut self.buf.ids);
        ids.clear();
        let res = self
            .write_events(
                &mut wtxn,
                intake,
                batch,
                &mut local,
                &mut ids,
                &mut deferred,
            )
            .and_then(|mut touched| {
                let out = self.write_remote(
                    t,
                    &mut wtxn,
                    remote,
                    &mut local,
                    &mut ids,
                    &mut touched,
                    &mut deferred,
                )?;
                Ok((touched, out))
            });
        self.buf.ids = ids;
        let (touched, out) = res?;
        self.finish_batch(&shared, wtxn, &deferred, touched, local)?;
        Ok(out)
    }

    /// Pushes the events' ids to the MMRs; their puts are deferred (see [`Deferred`]).
    fn write_events<'a>(
        &mut self,
        wtxn: &mut RwTxn<'_>,
        intake: &'a Intake,
        batch: &'a [Incoming],
        local_out: &mut u64,
        ids: &mut Vec<(EventId, u64)>,
        deferred: &mut Vec<Deferred<'a>>,
    ) -> Result<Vec<(LogKey, Hlc)>> {
        let shared = self.shared.clone();
        let t = &shared.store().tables;
        let mut local = *local_out;
        let mut touched: Vec<(LogKey, Hlc)> = Vec::new();
        // The MMR pushes are batched (nodes hashed height by height, see
        // `Mmr::push_leaf_hashes`): the leaf hashes for the node MMR, and per touched log
        // (same index as `touched`) its next seq and its leaf hashes.
        let mut leaves = std::mem::take(&mut self.buf.leaves);
        let mut log_leaves = std::mem::take(&mut self.buf.log_leaves);
        leaves.clear();
        for inc in batch {
            let h = &inc.header;
            let payload = intake.payload(inc);
            let mut hash = || {
                self.buf.enc.clear();
                encode_into(h, payload, &mut self.buf.enc);
                EventId(*blake3::hash(&self.buf.enc).as_bytes())
            };
            // The producer's id and leaf hash for this ticket save encoding and hashing
            // the event again.
            let (id, hashed) = match self.shared.store().hashes.offered(inc.ticket) {
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
            deferred.push(Deferred {
                header: inc.header,
                local,
                body: BlockEvent::Encode(&inc.header, payload),
            });
            leaves.push(hashed);
            let key = (h.group, h.author);
            let j = match touched.iter().position(|(k, _)| *k == key) {
                Some(j) => j,
                None => {
                    let next_seq = self.mmrs.log(t, wtxn, key)?.leaf_count();
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
        let pushed = self
            .mmrs
            .node()
            .push_leaf_hashes(&leaves)
            .map_err(mmr_err)?;
        debug_assert_eq!(pushed, *local_out..local);
        for ((key, _), (_, list)) in touched.iter().zip(&log_leaves) {
            self.mmrs
                .log(t, wtxn, *key)?
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
        deferred: &[Deferred<'_>],
        touched: Vec<(LogKey, Hlc)>,
        local: u64,
    ) -> Result<()> {
        let t: &Tables = &shared.store().tables;
        // Stage the node MMR and every touched log MMR: pages to the file, state to LMDB.
        self.buf.pages.clear();
        let first_page = self.page_count;
        let staged = self.mmrs.stage(
            t,
            &mut wtxn,
            touched.iter().map(|(k, _)| k),
            first_page,
            &mut self.buf.pages,
            &mut self.buf.puts.postings,
        )?;
        let next_page = staged.next_page;
        // New pages are synced before the commit that references them, whatever the
        // durability: a committed reference to a page lost in a power cut would damage
        // the MMR. The flush runs on a helper thread while this one does the batch's
        // event and index puts; the commit waits for both.
        let pages = std::mem::take(&mut self.buf.pages);
        // Signing and the puts overlap the page flush. Without a flusher thread (or
        // with nothing to flush) the pages are flushed here, first.
        let unhanded = match &self.flusher {
            Some(f) if !pages.is_empty() => f.begin(first_page, pages).err(),
            _ => Some(pages),
        };
        let inline = match &unhanded {
            Some(pages) => shared.store().pages.write_pages(first_page, pages, true),
            None => Ok(()),
        };
        let puts = inline
            .and_then(|()| self.sign_checkpoints(shared, &mut wtxn, &touched))
            .and_then(|()| puts::put_events(t, &mut wtxn, deferred, &mut self.buf.puts));
        // Whatever the puts did, a handed-over flush is waited for: its result belongs
        // to this commit.
        let (flushed, pages) = match (unhanded, &self.flusher) {
            (Some(pages), _) => (Ok(()), pages),
            (None, Some(f)) => f.finish(),
            (None, None) => (Ok(()), Vec::new()),
        };
        let res = puts.and(flushed);
        self.buf.pages = pages;
        res?;
        t.meta
            .put(&mut wtxn, meta_keys::PAGE_COUNT, &next_page.to_le_bytes())?;
        t.meta.put(
            &mut wtxn,
            meta_keys::NEXT_MMR_ID,
            &self.mmrs.next_mmr_id().to_le_bytes(),
        )?;
        // The clock restarts from this: local timestamps, and remote ones only as far
        // as the clock accepted them (`SyncHost::store_verified` merges a received
        // timestamp through `HlcClock::update`, which refuses one past the drift
        // bound). A far-future remote event is stored but never moves the clock, before
        // or after a restart.
        self.max_hlc = self.max_hlc.max(shared.clock().last().as_u64());
        t.meta
            .put(&mut wtxn, meta_keys::MAX_HLC, &self.max_hlc.to_le_bytes())?;
        wtxn.commit()?;
        // The commit is durable (or, with Durability::None, handed to the OS).
        self.mmrs.committed(staged);
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
            if *author != shared.author() {
                continue;
            }
            let cp = self
                .mmrs
                .checkpoint(&(*group, *author), *hlc)?
                .sign(shared.keypair());
            shared.store().tables.checkpoints.put(
                wtxn,
                &log_key(&group.0, &author.0, cp.checkpoint.length),
                &cp.encode(),
            )?;
        }
        Ok(())
    }

    /// Forgets uncommitted MMR changes after an aborted transaction.
    fn reload_mmrs(&mut self) -> Result<()> {
        let rtxn = self.shared.store().env.read_txn()?;
        let t = &self.shared.store().tables;
        self.mmrs = Mmrs::load(t, &rtxn, self.shared.store().pages.clone())?;
        self.max_hlc = meta_u64(t, &rtxn, meta_keys::MAX_HLC)?;
        Ok(())
    }

    /// Grows the LMDB map if fewer than `needed` bytes are free.
    fn ensure_map_room(&self, needed: usize) -> Result<()> {
        let info = self.shared.store().env.info();
        let psize = self.shared.store().env.unnamed_database_stat().page_size as usize;
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
        let _gate = self.shared.store().gate_exclusive();
        tracing::debug!(size, "growing lmdb map");
        // SAFETY: no transaction of this process is active (gate held exclusively, and
        // the writer has none open between batches).
        unsafe { self.shared.store().env.resize(size) }.map_err(|e| match e {
            heed::Error::Io(io) if io.raw_os_error() == Some(28) => Error::Full(io.to_string()),
            e => Error::Lmdb(e),
        })
    }
}

/// The error and its sources, joined by `: ` (for logs and system events).
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

#[cfg(test)]
mod tests {
    //! Commit and acknowledgement (`commit_ready`). Its effects are the engine's own (the
    //! durable watermark, the committed stream, the id index), so the stage is driven
    //! through a real engine here; intake, staging and puts have their unit tests in
    //! their files.
    #![allow(clippy::unwrap_used)]

    use std::time::Duration;

    use crate::{Engine, Filter, Options, Start};

    /// Commits that must grow the LMDB map (1 MiB at first, 24 MiB of events) and flush
    /// the id index to its table (every 1,000 ids) acknowledge each event exactly once:
    /// `flush()` returns with all of them counted, the committed stream delivers each
    /// once in write order, every id resolves through the id index, and all of it holds
    /// again after a reopen.
    #[test]
    fn commits_that_grow_the_map_acknowledge_each_event_once() {
        let dir = tempfile::tempdir().unwrap();
        let open = || {
            let mut o = Options::new(dir.path());
            o.initial_map_size = 1 << 20;
            o.hash_index_chunk = 1_000;
            Engine::builder(dir.path()).options(o).open().unwrap()
        };
        let engine = open();
        let mut sub = engine.subscribe(Filter::all().start(Start::Beginning));
        let n = 6_000u32;
        let ids: Vec<_> = (0..n)
            .map(|i| {
                let mut payload = vec![(i % 251) as u8; 4096];
                payload[..4].copy_from_slice(&i.to_le_bytes());
                engine.write_event(&payload, 1000).unwrap()
            })
            .collect();
        engine.flush().unwrap();
        assert_eq!(engine.read().unwrap().event_count().unwrap(), u64::from(n));
        let map = std::fs::metadata(dir.path().join("data.mdb"))
            .unwrap()
            .len();
        assert!(
            map > 20 << 20,
            "the data file outgrew the 1 MiB initial map: {map} bytes"
        );

        for (i, id) in ids.iter().enumerate() {
            let got = sub.next_timeout(Duration::from_secs(10)).unwrap().unwrap();
            assert_eq!(got.local_seq, i as u64);
            assert_eq!(&got.id, id);
        }
        assert!(
            sub.try_next().unwrap().is_none(),
            "an event was delivered twice"
        );
        drop(sub);

        let check = |engine: &Engine| {
            for (i, id) in ids.iter().enumerate() {
                let e = engine.get(id).unwrap().unwrap();
                assert_eq!(e.payload[..4], (i as u32).to_le_bytes());
            }
        };
        check(&engine);
        drop(engine);
        let engine = open();
        assert_eq!(engine.read().unwrap().event_count().unwrap(), u64::from(n));
        check(&engine);
    }
}
