//! The engine side of peer-to-peer sync: [`SyncNode`] implements
//! [`xaeroflux_sync::SyncHost`] over the store.
//!
//! - [`SyncHost::read_logs`] runs the session on a [`LogView`] over one LMDB read
//!   transaction. Every call reads stored MMR state (peaks, nodes) and index entries;
//!   nothing is rebuilt, so it is cheap enough per incoming frame.
//! - [`SyncHost::store_verified`] re-checks the batch's shape and checkpoint signature,
//!   merges the event timestamps into the engine's HLC (receive rule) and queues the
//!   batch for the storage writer, which applies it in its next group commit together
//!   with local writes (see `store::writer::remote`). The queue is bounded: a full
//!   queue blocks the caller.
//! - [`SyncHost::committed_feed`] is a cursor over the committed stream (the local
//!   sequence), so it never skips: a feed that falls behind reads older events from the
//!   store. Events are grouped per author log and paired with the log's latest
//!   checkpoint that covers them; remote events whose covering checkpoint is not stored
//!   yet (a batch proven against a longer checkpoint) are carried until it is.
//!
//! The feed carries every group; a transport hands each batch only to the sessions of
//! the batch's group (`checkpoint.checkpoint.group`).

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use xaeroflux_core::mmr::{Hash32, Mmr, MmrStore};
use xaeroflux_core::{AuthorId, EventRef, Group, GroupId, GroupSecret, SignedCheckpoint};
use xaeroflux_sync::{
    AccessGate, CommittedBatch, CommittedFeed, EventList, Frontier, HostError, LogView, PeerEvent,
    SyncHost, VerifiedBatch,
};
use xaeroid::{XaeroID, XaeroKeypair};

use crate::engine::{Engine, Shared};
use crate::error::{Error, Result};
use crate::read::Snapshot;
use crate::store::blocks;
use crate::store::mmrs::SnapshotNodes;
use crate::store::writer::RemoteBatch;
use crate::store::writer::error_chain;
use crate::system::SystemEvent;

/// Events of one remote log the feed carries while no stored checkpoint covers them;
/// older ones are dropped (sessions treat a later push as an announcement and fetch).
const FEED_CARRY_EVENTS: u64 = 4096;
/// Events the feed reads from the store at once.
const FEED_READ: u64 = 4096;

/// The engine as a [`SyncHost`]: what the network layer syncs. Get one with
/// [`Engine::sync_host`]; it stays valid (answering `Closed`) after the store closes.
pub struct SyncNode {
    shared: Arc<Shared>,
    /// Access control consulted by every session (`None`: anyone with the secret).
    gate: Option<Arc<dyn AccessGate>>,
}

impl std::fmt::Debug for SyncNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SyncNode")
            .field("author", &self.shared.author())
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// This store as a sync host, for the network layer (`Arc<SyncNode>` coerces to
    /// `Arc<dyn SyncHost>`).
    pub fn sync_host(&self) -> Arc<SyncNode> {
        Arc::new(SyncNode {
            shared: self.shared_arc(),
            gate: None,
        })
    }

    /// As [`Engine::sync_host`], with sessions that ask `gate` which events to store
    /// and which peers to admit (group access control).
    pub fn sync_host_with_gate(&self, gate: Arc<dyn AccessGate>) -> Arc<SyncNode> {
        Arc::new(SyncNode {
            shared: self.shared_arc(),
            gate: Some(gate),
        })
    }

    /// A group this node holds, with its secret (`None` if unknown).
    pub fn group(&self, id: &GroupId) -> Result<Option<Group>> {
        Ok(groups_with_secrets(self.shared())?
            .into_iter()
            .find(|g| g.id() == *id))
    }

    /// Joins a group known by its secret (same as [`Engine::add_group`]).
    pub fn join_group(&self, secret: GroupSecret) -> Result<Group> {
        self.add_group(secret)
    }

    /// Records fork evidence: two checkpoints signed by one author for one log length
    /// with different roots. Returns whether the evidence is new (then a
    /// [`SystemEvent::ForkDetected`] is raised). From then on the log is never extended
    /// by sync.
    pub fn record_fork(&self, ours: &SignedCheckpoint, theirs: &SignedCheckpoint) -> Result<bool> {
        record_fork(self.shared(), ours, theirs)
    }
}

/// Every group of the node with its secret.
fn groups_with_secrets(shared: &Shared) -> Result<Vec<Group>> {
    let ids = shared.groups();
    let snap = Snapshot::new(shared)?;
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        let Some(v) = shared
            .store()
            .tables
            .groups
            .get(snap.txn(), id.as_bytes())?
        else {
            continue;
        };
        let secret = <[u8; 32]>::try_from(v).map_err(|_| Error::Corrupt {
            path: shared.opts().data_dir.clone(),
            reason: format!("malformed secret of group {}", id.short()),
        })?;
        let g = Group::from_secret(GroupSecret::from_bytes(secret));
        if g.id() == id {
            out.push(g);
        }
    }
    Ok(out)
}

/// Stores `key` as an author key if it is not stored yet (a read first: the usual
/// case writes nothing).
fn remember_key(shared: &Shared, key: &XaeroID) -> Result<()> {
    let id = key.id();
    let t = &shared.store().tables;
    let _gate = shared.store().gate();
    {
        let rtxn = shared.store().env.read_txn()?;
        if t.authors.get(&rtxn, id.as_bytes())?.is_some() {
            return Ok(());
        }
    }
    let mut wtxn = shared.store().env.write_txn()?;
    if t.authors.get(&wtxn, id.as_bytes())?.is_none() {
        t.authors.put(&mut wtxn, id.as_bytes(), key.as_bytes())?;
        wtxn.commit()?;
    }
    Ok(())
}

/// Records fork evidence handed in by a session or the application: both checkpoints go
/// through the fork rule (`Store::record_checkpoint`), so whichever is stored first for
/// that length stays and the other becomes the evidence. Returns whether the evidence
/// is new (then `ForkDetected` is raised).
fn record_fork(
    shared: &Shared,
    ours: &SignedCheckpoint,
    theirs: &SignedCheckpoint,
) -> Result<bool> {
    let (a, b) = (&ours.checkpoint, &theirs.checkpoint);
    if a.group != b.group || a.author != b.author || a.length != b.length || a.root == b.root {
        return Err(Error::ForkEvidence(
            "not two roots of one log length".into(),
        ));
    }
    let store = &shared.store();
    let _gate = store.gate();
    let mut wtxn = store.env.write_txn()?;
    let key = store
        .author_key(&wtxn, &a.author)?
        .ok_or_else(|| Error::ForkEvidence("unknown author key".into()))?;
    for cp in [ours, theirs] {
        cp.verify(&key).map_err(Error::Checkpoint)?;
    }
    let mut new = false;
    for cp in [ours, theirs] {
        new |= store.record_checkpoint(&mut wtxn, cp)?.new_fork();
    }
    wtxn.commit()?;
    if new {
        shared.system().publish(SystemEvent::ForkDetected {
            group: a.group,
            author: a.author,
            length: a.length,
        });
    }
    Ok(new)
}

fn host_err(e: Error) -> HostError {
    match e {
        Error::Closed => HostError::Closed,
        e => HostError::store(e),
    }
}

impl SyncHost for SyncNode {
    fn keypair(&self) -> Arc<XaeroKeypair> {
        self.shared.keypair().clone()
    }

    fn groups(&self) -> Vec<Group> {
        groups_with_secrets(&self.shared).unwrap_or_else(|e| {
            tracing::warn!(error = %e, "cannot read groups");
            Vec::new()
        })
    }

    fn read_logs(&self, f: &mut dyn FnMut(&dyn LogView)) -> Result<(), HostError> {
        let failed = match Snapshot::new(&self.shared) {
            Ok(snap) => {
                let mut view = StoreView::new(snap);
                view.gate = self.gate.as_deref();
                f(&view);
                view.failed.into_inner()
            }
            // No view at all: the session is not run; the caller ends it.
            Err(e) => Some(e),
        };
        let Some(e) = failed else { return Ok(()) };
        if let Error::Closed = e {
            return Err(HostError::Closed);
        }
        let reason = error_chain(&e);
        tracing::warn!(error = %reason, "store read failed during sync");
        self.shared
            .system()
            .publish(SystemEvent::SyncReadFailed { reason });
        Err(HostError::store(e))
    }

    fn store_verified(&self, batch: VerifiedBatch) -> Result<(), HostError> {
        if batch.events.is_empty() {
            return Ok(());
        }
        let known = self.shared.holds_group(&batch.group);
        if !known {
            return Err(host_err(Error::UnknownGroup { group: batch.group }));
        }
        let (b, max_hlc) = RemoteBatch::check(batch).map_err(host_err)?;
        if let Some(hlc) = max_hlc
            && let Err(e) = self.shared.clock().update(hlc)
        {
            tracing::warn!(error = %e, "received timestamp too far ahead; clock not moved");
        }
        if b.author == self.shared.author() {
            // Our own log grows only through local writes.
            return Ok(());
        }
        self.shared.inbox().push(&self.shared, b).map_err(host_err)
    }

    fn record_fork(
        &self,
        ours: &SignedCheckpoint,
        theirs: &SignedCheckpoint,
    ) -> Result<(), HostError> {
        record_fork(&self.shared, ours, theirs)
            .map(|_| ())
            .map_err(host_err)
    }

    fn committed_feed(&self) -> Result<Box<dyn CommittedFeed>, HostError> {
        if self.shared.is_closing() {
            return Err(HostError::Closed);
        }
        Ok(Box::new(Feed {
            shared: self.shared.clone(),
            cursor: self.shared.committed().get(),
            out: VecDeque::new(),
            carry: HashMap::new(),
        }))
    }

    fn peer_event(&self, event: PeerEvent) {
        use xaeroflux_sync::SystemEvent as S;
        let sys = &self.shared.system();
        match event {
            PeerEvent::Connected {
                peer,
                key,
                endpoint,
                group,
            } => {
                // Kept so that later Hellos between us may name keys by id only.
                if let Err(e) = remember_key(&self.shared, &key) {
                    tracing::warn!(error = %e, "cannot keep the peer's key");
                }
                sys.publish(SystemEvent::PeerConnected {
                    peer,
                    endpoint,
                    group,
                })
            }
            PeerEvent::Disconnected {
                peer,
                endpoint,
                group,
                reason,
            } => sys.publish(SystemEvent::PeerDisconnected {
                peer,
                endpoint,
                group: Some(group),
                reason,
            }),
            PeerEvent::Refused {
                endpoint,
                code,
                reason,
            } => sys.publish(SystemEvent::PeerRejected {
                endpoint,
                group: None,
                code: code.as_u16(),
                why: reason,
            }),
            PeerEvent::Session {
                endpoint,
                group,
                event,
            } => match event {
                // Reported by the transport as `Connected` once the session is up.
                S::PeerAuthenticated { .. } => {}
                S::PeerRejected { code, why } => sys.publish(SystemEvent::PeerRejected {
                    endpoint,
                    group: Some(group),
                    code: code.as_u16(),
                    why,
                }),
                S::SyncProgress { events, bytes } => sys.publish(SystemEvent::SyncProgress {
                    endpoint,
                    group,
                    events,
                    bytes,
                }),
                // Idempotent: raises `ForkDetected` only if the evidence is new.
                S::ForkDetected { ours, theirs, .. } => {
                    if let Err(e) = record_fork(&self.shared, &ours, &theirs) {
                        tracing::warn!(error = %e, "fork evidence not recorded");
                    }
                }
            },
            _ => {}
        }
    }
}

/// A [`LogView`] over one read transaction.
///
/// `LogView` answers without `Result`: the first store failure is kept, each method
/// then answers what is safe for the session (nothing known; a log whose fork state
/// cannot be read counts as forked, so it is never extended), and when the view ends
/// [`SyncHost::read_logs`] (below) logs the failure once, raises
/// [`SystemEvent::SyncReadFailed`] and returns it, so that the transport drops what the
/// session computed and ends the session with `ErrorCode::StoreFailure`.
pub(crate) struct StoreView<'a> {
    snap: Snapshot<'a>,
    /// The first store failure of this view.
    failed: RefCell<Option<Error>>,
    /// The node's access control, if any.
    gate: Option<&'a dyn AccessGate>,
}

impl<'a> StoreView<'a> {
    fn new(snap: Snapshot<'a>) -> Self {
        StoreView {
            snap,
            failed: RefCell::new(None),
            gate: None,
        }
    }

    /// The value of `r`, or `fallback` after keeping the failure.
    fn or<T>(&self, r: Result<T>, fallback: T) -> T {
        match r {
            Ok(v) => v,
            Err(e) => {
                let mut failed = self.failed.borrow_mut();
                if failed.is_none() {
                    *failed = Some(e);
                }
                fallback
            }
        }
    }

    fn mmr(&self, g: &GroupId, a: &AuthorId) -> Result<Option<Mmr<SnapshotNodes<'_, 'a>>>> {
        let Some(id) = self.snap.log_mmr_id(g, a)? else {
            return Ok(None);
        };
        self.snap.mmr(id).map(Some)
    }

    /// The latest checkpoint the log's events prove (length <= the log's length).
    fn latest(&self, g: &GroupId, a: &AuthorId) -> Result<Option<SignedCheckpoint>> {
        let store = &self.snap.shared().store();
        let len = store.log_len(self.snap.txn(), g, a)?;
        if len == 0 {
            return Ok(None);
        }
        store.latest_checkpoint(self.snap.txn(), g, a, len)
    }
}

impl LogView for StoreView<'_> {
    fn authors(&self, group: &GroupId) -> Vec<AuthorId> {
        let logs = self.snap.shared().store().logs(self.snap.txn(), group);
        self.or(
            logs.map(|l| l.into_iter().map(|(a, _)| a).collect()),
            Vec::new(),
        )
    }

    fn frontier(&self, group: &GroupId, author: &AuthorId) -> Frontier {
        self.or(self.mmr(group, author), None)
            .and_then(|m| Frontier::from_peaks(m.leaf_count(), m.peaks().to_vec()))
            .unwrap_or_default()
    }

    fn mmr_node(&self, group: &GroupId, author: &AuthorId, pos: u64) -> Option<Hash32> {
        let m = self.or(self.mmr(group, author), None)?;
        if pos >= m.size() {
            return None;
        }
        self.or(m.store().get(pos), None)
    }

    fn root_at(&self, group: &GroupId, author: &AuthorId, len: u64) -> Option<Hash32> {
        let m = self.or(self.mmr(group, author), None)?;
        if len == 0 || len > m.leaf_count() {
            return None;
        }
        self.or(m.root_at(len).map(Some).map_err(Error::from), None)
    }

    fn events(
        &self,
        group: &GroupId,
        author: &AuthorId,
        from: u64,
        to: u64,
        max_bytes: usize,
    ) -> EventList {
        let r = self.snap.shared().store().events_range(
            self.snap.txn(),
            group,
            author,
            (from, to),
            max_bytes,
        );
        self.or(r, EventList::new())
    }

    fn latest_checkpoint(&self, group: &GroupId, author: &AuthorId) -> Option<SignedCheckpoint> {
        self.or(self.latest(group, author), None)
    }

    fn checkpoint_at(
        &self,
        group: &GroupId,
        author: &AuthorId,
        len: u64,
    ) -> Option<SignedCheckpoint> {
        let r = (self.snap.shared().store()).checkpoint_at(self.snap.txn(), group, author, len);
        self.or(r, None)
    }

    fn author_key(&self, author: &AuthorId) -> Option<XaeroID> {
        let r = self
            .snap
            .shared()
            .store()
            .author_key(self.snap.txn(), author);
        self.or(r, None)
    }

    fn is_forked(&self, group: &GroupId, author: &AuthorId) -> bool {
        let r = self
            .snap
            .shared()
            .store()
            .is_forked(self.snap.txn(), group, author);
        self.or(r, true)
    }

    fn may_write_event(
        &self,
        group: &GroupId,
        author: &AuthorId,
        seq: u64,
        event_type: u32,
    ) -> bool {
        self.gate
            .is_none_or(|g| g.may_write_event(group, author, seq, event_type))
    }

    fn may_connect(&self, group: &GroupId, peer: &AuthorId) -> bool {
        self.gate.is_none_or(|g| g.may_connect(group, peer))
    }
}

/// A run of contiguous events of one log waiting to be handed out.
struct Run {
    first_seq: u64,
    count: u64,
}

/// The committed feed: a cursor over the local sequence.
struct Feed {
    shared: Arc<Shared>,
    cursor: u64,
    out: VecDeque<CommittedBatch>,
    /// Runs read but not handed out yet (no covering checkpoint stored).
    carry: HashMap<(GroupId, AuthorId), Run>,
}

impl Feed {
    /// Adds `count` events of log `key` from `first_seq` on to its carried run.
    fn carry_stretch(
        carry: &mut HashMap<(GroupId, AuthorId), Run>,
        (key, first_seq, count): ((GroupId, AuthorId), u64, u64),
        order: &mut Vec<(GroupId, AuthorId)>,
    ) {
        let run = carry.entry(key).or_insert(Run {
            first_seq,
            count: 0,
        });
        if run.first_seq + run.count != first_seq {
            // Not contiguous (should not happen): start over at this stretch.
            run.first_seq = first_seq;
            run.count = 0;
        }
        run.count += count;
        if !order.contains(&key) {
            order.push(key);
        }
    }

    /// Reads committed events `cursor..upto` (at most `FEED_READ`) into batches.
    fn fill(&mut self, upto: u64) -> Result<()> {
        let snap = Snapshot::new(&self.shared)?;
        let end = upto.min(self.cursor.saturating_add(FEED_READ));
        let mut order: Vec<(GroupId, AuthorId)> = Vec::new();
        let sh = &self.shared;
        // Consecutive events of one log (the common case) are counted here and added to
        // `carry` once per stretch, not looked up there per event.
        let mut stretch: Option<((GroupId, AuthorId), u64, u64)> = None;
        for item in blocks::events_from(&sh.store().tables, snap.txn(), self.cursor)? {
            let (local, v) = item?;
            if local >= end {
                break;
            }
            self.cursor = local + 1;
            let h = EventRef::decode(v)
                .map_err(|source| Error::CorruptEvent {
                    local_seq: local,
                    source,
                })?
                .header;
            let key = (h.group, h.author);
            match &mut stretch {
                Some((k, first, count)) if *k == key && *first + *count == h.seq => *count += 1,
                _ => {
                    if let Some(done) = stretch.replace((key, h.seq, 1)) {
                        Self::carry_stretch(&mut self.carry, done, &mut order);
                    }
                }
            }
        }
        if let Some(done) = stretch {
            Self::carry_stretch(&mut self.carry, done, &mut order);
        }
        self.cursor = self.cursor.max(end);
        let view = StoreView::new(snap);
        for key in order {
            let Some(run) = self.carry.get_mut(&key) else {
                continue;
            };
            let run_end = run.first_seq + run.count;
            let cp = view
                .latest(&key.0, &key.1)?
                .filter(|cp| cp.checkpoint.length >= run_end);
            let Some(cp) = cp else {
                if run.count > FEED_CARRY_EVENTS {
                    let drop = run.count - FEED_CARRY_EVENTS;
                    run.first_seq += drop;
                    run.count -= drop;
                }
                continue;
            };
            if let Some(run) = self.carry.remove(&key) {
                self.out.push_back(CommittedBatch {
                    first_seq: run.first_seq,
                    count: run.count,
                    checkpoint: Box::new(cp),
                });
            }
        }
        Ok(())
    }
}

impl CommittedFeed for Feed {
    fn skip(&mut self) -> Result<(), HostError> {
        self.out.clear();
        self.carry.clear();
        self.cursor = self.cursor.max(self.shared.committed().get());
        if self.shared.is_closing() {
            return Err(HostError::Closed);
        }
        Ok(())
    }

    fn next_batch(&mut self, timeout: Duration) -> Result<Option<CommittedBatch>, HostError> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(b) = self.out.pop_front() {
                return Ok(Some(b));
            }
            let upto = self.shared.committed().get();
            if upto > self.cursor {
                self.fill(upto).map_err(host_err)?;
                continue;
            }
            if self.shared.is_closing() {
                return Err(HostError::Closed);
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(None);
            }
            let (sh, cursor) = (&self.shared, self.cursor);
            sh.inbox().commits.wait_until(
                || sh.committed().get() > cursor || sh.is_closing(),
                Some(deadline - now),
            );
        }
    }
}
