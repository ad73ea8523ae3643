//! Remote ingestion: verified batches from sync sessions, applied by the storage writer
//! in the same group commit as local ring events.
//!
//! A session hands a batch to [`Inbox::push`] (bounded: it blocks while
//! [`INBOX_CAPACITY`] batches wait, which is the backpressure a fast peer feels). The
//! writer takes every waiting batch at the start of a commit and applies each one
//! idempotently and in order:
//!
//! - a batch of a forked log (fork evidence in `forks`) is dropped: never extended;
//! - a batch that starts past the end of the log is dropped (a gap);
//! - events at seqs the log already holds are compared by MMR leaf (the id): equal ones
//!   are skipped, a different one stops the batch (the stored event is kept);
//! - every new event gets the next local sequence, all indexes, a leaf in its author
//!   log's MMR and in the node MMR, exactly like a local event;
//! - the batch's checkpoint is stored once the log reaches its length and reproduces
//!   its root (so `latest_checkpoint` never names more events than the log holds); a
//!   different root already stored for that length is recorded as fork evidence.
//!
//! Only checkpoints of the local author are signed by the writer; remote logs keep the
//! checkpoints their authors signed.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use heed::RwTxn;
use xaeroflux_core::mmr::{Hash32, leaf_hash, leaf_index_to_pos};
use xaeroflux_core::ring::Notifier;
use xaeroflux_core::{AuthorId, EventHeader, EventRef, GroupId, Hlc, SignedCheckpoint};
use xaeroflux_core::{EventId, mmr::MmrStore};
use xaeroflux_sync::{EventList, VerifiedBatch};

use super::{BlockEvent, Deferred, LogKey, Stage, Writer, mmr_err};
use crate::engine::Shared;
use crate::error::{Error, Result};
use crate::store::{Tables, log_key, log_prefix};

/// Verified batches that may wait for the writer before `push` blocks.
pub(crate) const INBOX_CAPACITY: usize = 64;

/// A verified batch of one author log (see `xaeroflux_sync::VerifiedBatch`) that passed
/// [`RemoteBatch::check`], the only place the engine checks a received batch's shape.
#[derive(Debug, Clone)]
pub(crate) struct RemoteBatch {
    pub group: GroupId,
    pub author: AuthorId,
    /// Encoded public key of the author.
    pub key: Vec<u8>,
    pub first_seq: u64,
    /// The id of each event (computed by the session that verified the batch).
    pub ids: Vec<EventId>,
    /// The header of each event, decoded once by `check`.
    pub headers: Vec<EventHeader>,
    pub events: EventList,
    pub checkpoint: SignedCheckpoint,
    /// Root of the log prefix the session verified the batch on (`None` from seq 0).
    pub prefix_root: Option<Hash32>,
}

impl RemoteBatch {
    /// Checks a batch a session verified before it is queued: one log (key, checkpoint
    /// and every event of the batch's group and author), contiguous seqs from
    /// `first_seq` within the checkpoint's length, one id per event, a checkpoint signed
    /// by the author. Each event is decoded here, once. Returns the batch and its
    /// greatest timestamp (`None` if empty). The group must be known (the caller
    /// checks it against the node's groups).
    pub(crate) fn check(b: VerifiedBatch) -> Result<(RemoteBatch, Option<Hlc>)> {
        let refuse = |reason: &'static str| Error::BatchRefused { reason };
        if b.author_key.id().as_bytes() != b.author.as_bytes() {
            return Err(refuse("key of another author"));
        }
        let c = &b.checkpoint.checkpoint;
        if c.group != b.group || c.author != b.author {
            return Err(refuse("checkpoint of another log"));
        }
        let end = b
            .first_seq
            .checked_add(b.events.len() as u64)
            .ok_or(refuse("seq overflow"))?;
        if c.length < end {
            return Err(refuse("batch past its checkpoint"));
        }
        if b.ids.len() != b.events.len() {
            return Err(refuse("ids do not match the events"));
        }
        if (b.first_seq > 0) != b.prefix_root.is_some() {
            return Err(refuse("prefix root does not match the first seq"));
        }
        b.checkpoint
            .verify(&b.author_key)
            .map_err(Error::Checkpoint)?;
        let mut max: Option<Hlc> = None;
        let mut headers = Vec::with_capacity(b.events.len());
        for (i, raw) in b.events.iter().enumerate() {
            let h = EventRef::decode(raw)
                .map_err(|_| refuse("undecodable event"))?
                .header;
            if h.group != b.group || h.author != b.author || h.seq != b.first_seq + i as u64 {
                return Err(refuse("event of another log or seq"));
            }
            max = Some(max.map_or(h.hlc, |m| m.max(h.hlc)));
            headers.push(h);
        }
        let batch = RemoteBatch {
            group: b.group,
            author: b.author,
            key: b.author_key.as_bytes().to_vec(),
            first_seq: b.first_seq,
            ids: b.ids,
            headers,
            events: b.events,
            checkpoint: *b.checkpoint,
            prefix_root: b.prefix_root,
        };
        Ok((batch, max))
    }
}

#[derive(Default)]
struct InboxState {
    queue: VecDeque<RemoteBatch>,
    /// Batches ever queued.
    queued: u64,
    /// Batches ever committed (applied or dropped) by the writer.
    applied: u64,
}

/// The bounded queue between sync sessions and the storage writer.
#[derive(Default)]
pub(crate) struct Inbox {
    state: Mutex<InboxState>,
    /// Signalled when the writer takes batches or commits them.
    changed: Condvar,
    /// The writer's stage, to wake the writer when a batch arrives.
    stage: OnceLock<Arc<Stage>>,
    /// Notified after every group commit and when the writer stops (committed feeds).
    pub commits: Notifier,
}

impl Inbox {
    fn lock(&self) -> MutexGuard<'_, InboxState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn attach(&self, stage: Arc<Stage>) {
        let _ = self.stage.set(stage);
    }

    /// Whether batches wait for the writer.
    pub(super) fn has_pending(&self) -> bool {
        !self.lock().queue.is_empty()
    }

    /// Queues a batch, blocking while the queue is full.
    pub(crate) fn push(&self, shared: &Shared, batch: RemoteBatch) -> Result<()> {
        let mut st = self.lock();
        loop {
            shared.check_open()?;
            if st.queue.len() < INBOX_CAPACITY {
                break;
            }
            st = self
                .changed
                .wait_timeout(st, Duration::from_millis(50))
                .map(|(g, _)| g)
                .unwrap_or_else(|e| e.into_inner().0);
        }
        st.queue.push_back(batch);
        st.queued += 1;
        drop(st);
        if let Some(stage) = self.stage.get() {
            // Under the stage lock: the writer checks the inbox under it before waiting.
            let _st = stage.lock();
            stage.writer_cv.notify_one();
        }
        Ok(())
    }

    /// Takes every waiting batch.
    pub(super) fn take(&self, into: &mut Vec<RemoteBatch>) {
        let mut st = self.lock();
        if st.queue.is_empty() {
            return;
        }
        into.extend(st.queue.drain(..));
        drop(st);
        self.changed.notify_all();
    }

    /// The writer committed `n` taken batches.
    pub(super) fn applied(&self, n: usize) {
        self.lock().applied += n as u64;
        self.changed.notify_all();
    }

    /// Waits until every batch queued before the call is committed.
    pub(crate) fn wait_applied(&self, shared: &Shared) -> Result<()> {
        let mut st = self.lock();
        let target = st.queued;
        while st.applied < target {
            if shared.progress().lock().stopped {
                shared.check_open()?;
                return Err(Error::Closed);
            }
            st = self
                .changed
                .wait_timeout(st, Duration::from_millis(50))
                .map(|(g, _)| g)
                .unwrap_or_else(|e| e.into_inner().0);
        }
        Ok(())
    }
}

/// What applying the remote batches of one commit produced.
#[derive(Default)]
pub(super) struct RemoteOutcome {
    /// Events added.
    pub events: u64,
    /// Fork evidence recorded: (group, author, length).
    pub forks: Vec<(GroupId, AuthorId, u64)>,
}

impl Writer {
    /// Applies the taken remote batches inside `wtxn`, after the local events.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn write_remote<'a>(
        &mut self,
        t: &Tables,
        wtxn: &mut RwTxn<'_>,
        batches: &'a [RemoteBatch],
        local: &mut u64,
        ids: &mut Vec<(EventId, u64)>,
        touched: &mut Vec<(LogKey, Hlc)>,
        deferred: &mut Vec<Deferred<'a>>,
    ) -> Result<RemoteOutcome> {
        let mut out = RemoteOutcome::default();
        // The node MMR takes the leaves of every batch at once (nodes hashed height by
        // height, see `Mmr::push_leaf_hashes`): nothing reads it before the stage.
        let first_local = *local;
        let mut node_leaves = std::mem::take(&mut self.buf.leaves);
        node_leaves.clear();
        let res = batches.iter().try_for_each(|b| {
            self.apply_one(
                t,
                wtxn,
                b,
                local,
                ids,
                touched,
                deferred,
                &mut node_leaves,
                &mut out,
            )
        });
        let pushed = res.and_then(|()| {
            self.mmrs
                .node()
                .push_leaf_hashes(&node_leaves)
                .map_err(mmr_err)
        });
        self.buf.leaves = node_leaves;
        let pushed = pushed?;
        if pushed != (first_local..*local) {
            return Err(Error::invariant(format!(
                "node mmr expected leaves {first_local}..{}, got {pushed:?}",
                *local
            )));
        }
        Ok(out)
    }

    #[allow(clippy::too_many_arguments)]
    fn apply_one<'a>(
        &mut self,
        t: &Tables,
        wtxn: &mut RwTxn<'_>,
        b: &'a RemoteBatch,
        local: &mut u64,
        ids: &mut Vec<(EventId, u64)>,
        touched: &mut Vec<(LogKey, Hlc)>,
        deferred: &mut Vec<Deferred<'a>>,
        node_leaves: &mut Vec<Hash32>,
        out: &mut RemoteOutcome,
    ) -> Result<()> {
        let key = (b.group, b.author);
        let prefix = log_prefix(&b.group.0, &b.author.0);
        if b.author == self.shared.author() {
            // Our own log only grows through the local write path.
            return Ok(());
        }
        if t.forks.prefix_iter(wtxn, &prefix)?.next().is_some() {
            tracing::debug!(author = %b.author.short(), "batch of a forked log dropped");
            return Ok(());
        }
        let len = match self.mmrs.existing_log(t, wtxn, key)? {
            Some(mmr) => mmr.leaf_count(),
            None => 0,
        };
        if b.first_seq > len {
            tracing::debug!(
                author = %b.author.short(),
                first = b.first_seq,
                len,
                "batch past the end of the log dropped"
            );
            return Ok(());
        }
        // The batch extends this log only if it was verified on this log's prefix: a
        // batch verified on another branch (another session, another peer) would
        // leave a log whose root matches no signed checkpoint.
        if let Some(prefix) = b.prefix_root {
            let mmr = self.mmrs.log(t, wtxn, key)?;
            if mmr.root_at(b.first_seq).map_err(mmr_err)? != prefix {
                tracing::warn!(
                    author = %b.author.short(),
                    first = b.first_seq,
                    "batch verified on another prefix of the log dropped"
                );
                return Ok(());
            }
        }
        if t.authors.get(wtxn, b.author.as_bytes())?.is_none() {
            t.authors.put(wtxn, b.author.as_bytes(), &b.key)?;
        }
        let mut conflict = false;
        let mut max_hlc: Option<Hlc> = None;
        let mmr = self.mmrs.log(t, wtxn, key)?;
        let len = mmr.leaf_count();
        // `RemoteBatch::check` decoded every event and checked its log and seq, so the
        // events are contiguous from `first_seq` (which is at most `len`, see above):
        // those below `len` are already stored, the rest are new, in order.
        let stored = usize::try_from(len - b.first_seq)
            .unwrap_or(usize::MAX)
            .min(b.ids.len());
        for (&id, h) in b.ids.iter().zip(&b.headers).take(stored) {
            let pos =
                leaf_index_to_pos(h.seq).ok_or_else(|| Error::Invariant { what: "seq".into() })?;
            if mmr.store().get(pos)? != Some(leaf_hash(&id.0)) {
                tracing::warn!(
                    author = %b.author.short(),
                    seq = h.seq,
                    "received event differs from the stored one; stored kept"
                );
                conflict = true;
                break;
            }
        }
        if !conflict && stored < b.ids.len() {
            // One leaf hash per new event, for both MMRs; each MMR takes its leaves at
            // once.
            let from = node_leaves.len();
            for (i, (&id, &h)) in b.ids.iter().zip(&b.headers).enumerate().skip(stored) {
                let raw = b.events.get(i).ok_or_else(|| Error::Invariant {
                    what: "remote event missing".into(),
                })?;
                deferred.push(Deferred {
                    header: h,
                    local: *local,
                    body: BlockEvent::Copy(raw),
                });
                node_leaves.push(leaf_hash(&id.0));
                // Not folded into the persisted `max_hlc`: a remote timestamp reaches
                // the local clock only through `HlcClock::update` (drift-bounded), see
                // below.
                max_hlc = Some(max_hlc.map_or(h.hlc, |m| m.max(h.hlc)));
                ids.push((id, *local));
                *local += 1;
                out.events += 1;
            }
            let added = mmr
                .push_leaf_hashes(&node_leaves[from..])
                .map_err(mmr_err)?;
            let want = b.first_seq + stored as u64..b.first_seq + b.ids.len() as u64;
            if added != want {
                return Err(Error::invariant(format!(
                    "remote log expected seqs {want:?}, got {added:?}"
                )));
            }
        }
        if let Some(hlc) = max_hlc {
            match touched.iter_mut().find(|(k, _)| *k == key) {
                Some((_, m)) => *m = (*m).max(hlc),
                None => touched.push((key, hlc)),
            }
        }
        self.record_remote_checkpoint(t, wtxn, key, &b.checkpoint, conflict, out)
    }

    /// Records the batch's checkpoint through the fork rule if the log now reaches its
    /// length. A checkpoint new for that length is stored only if the log reproduces
    /// its root (so `latest_checkpoint` never names events the log does not hold).
    fn record_remote_checkpoint(
        &mut self,
        t: &Tables,
        wtxn: &mut RwTxn<'_>,
        key: LogKey,
        cp: &SignedCheckpoint,
        conflict: bool,
        out: &mut RemoteOutcome,
    ) -> Result<()> {
        let c = &cp.checkpoint;
        let Ok(mmr) = self.mmrs.loaded(&key) else {
            return Ok(());
        };
        let len = mmr.leaf_count();
        if c.length == 0 || c.length > len || c.group != key.0 || c.author != key.1 {
            return Ok(());
        }
        let store = &self.shared.store();
        if t.checkpoints
            .get(wtxn, &log_key(&c.group.0, &c.author.0, c.length))?
            .is_none()
        {
            let mmr = self.mmrs.loaded(&key)?;
            if mmr.root_at(c.length).map_err(mmr_err)? != c.root {
                if !conflict {
                    tracing::warn!(
                        author = %c.author.short(),
                        length = c.length,
                        "checkpoint does not match the stored events; ignored"
                    );
                }
                return Ok(());
            }
        }
        if store.record_checkpoint(wtxn, cp)?.new_fork() {
            out.forks.push((c.group, c.author, c.length));
        }
        Ok(())
    }
}
