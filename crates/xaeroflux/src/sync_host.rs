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

use std::collections::{HashMap, VecDeque};
use std::ops::Bound;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use xaeroflux_core::mmr::{Hash32, Mmr, MmrStore, leaf_count_for_size};
use xaeroflux_core::{AuthorId, EventRef, Group, GroupId, GroupSecret, Hlc, SignedCheckpoint};
use xaeroflux_sync::{
    CommittedBatch, CommittedFeed, EventList, Frontier, HostError, LogView, MemLogs, PeerEvent,
    SyncHost, VerifiedBatch,
};
use xaeroid::{XaeroID, XaeroKeypair};

use crate::engine::{Shared, XaeroFlux};
use crate::error::{Error, Result};
use crate::read::Snapshot;
use crate::store::blocks::{self, BlockCursor};
use crate::store::mmrs::{MmrState, SnapshotNodes, snapshot_mmr};
use crate::store::writer::RemoteBatch;
use crate::store::{from_be, log_key, log_prefix, runs};
use crate::system::SystemEvent;

/// Events of one remote log the feed carries while no stored checkpoint covers them;
/// older ones are dropped (sessions treat a later push as an announcement and fetch).
const FEED_CARRY_EVENTS: u64 = 4096;
/// Events the feed reads from the store at once.
const FEED_READ: u64 = 4096;

/// The engine as a [`SyncHost`]: what the network layer syncs. Get one with
/// [`XaeroFlux::sync_host`]; it stays valid (answering `Closed`) after the store closes.
pub struct SyncNode {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for SyncNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SyncNode")
            .field("author", &self.shared.author)
            .finish_non_exhaustive()
    }
}

impl XaeroFlux {
    /// This store as a sync host, for the network layer (`Arc<SyncNode>` coerces to
    /// `Arc<dyn SyncHost>`).
    pub fn sync_host(&self) -> Arc<SyncNode> {
        Arc::new(SyncNode {
            shared: self.shared_arc(),
        })
    }

    /// A group this node holds, with its secret (`None` if unknown).
    pub fn group(&self, id: &GroupId) -> Result<Option<Group>> {
        Ok(groups_with_secrets(self.shared())?
            .into_iter()
            .find(|g| g.id() == *id))
    }

    /// Joins a group known by its secret (same as [`XaeroFlux::add_group`]).
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
    let ids = shared
        .groups
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    let snap = Snapshot::new(shared)?;
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        let Some(v) = shared.tables.groups.get(snap.txn(), id.as_bytes())? else {
            continue;
        };
        let secret = <[u8; 32]>::try_from(v).map_err(|_| Error::Corrupt {
            path: shared.opts.data_dir.clone(),
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
    let t = &shared.tables;
    let _gate = shared.resize_gate.read().unwrap_or_else(|p| p.into_inner());
    {
        let rtxn = shared.env.read_txn()?;
        if t.authors.get(&rtxn, id.as_bytes())?.is_some() {
            return Ok(());
        }
    }
    let mut wtxn = shared.env.write_txn()?;
    if t.authors.get(&wtxn, id.as_bytes())?.is_none() {
        t.authors.put(&mut wtxn, id.as_bytes(), key.as_bytes())?;
        wtxn.commit()?;
    }
    Ok(())
}

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
    let k = log_key(&a.group.0, &a.author.0, a.length);
    let _gate = shared.resize_gate.read().unwrap_or_else(|p| p.into_inner());
    let mut wtxn = shared.env.write_txn()?;
    let t = &shared.tables;
    let key = t
        .authors
        .get(&wtxn, a.author.as_bytes())?
        .map(XaeroID::from_bytes)
        .transpose()
        .map_err(|e| Error::ForkEvidence(format!("stored author key: {e}")))?
        .ok_or_else(|| Error::ForkEvidence("unknown author key".into()))?;
    for cp in [ours, theirs] {
        cp.verify(&key).map_err(Error::Checkpoint)?;
    }
    let existing = match t.checkpoints.get(&wtxn, &k)? {
        Some(v) => Some(SignedCheckpoint::decode(v).map_err(Error::Checkpoint)?),
        None => None,
    };
    let other = match existing {
        None => {
            t.checkpoints.put(&mut wtxn, &k, &ours.encode())?;
            theirs
        }
        Some(e) if e.checkpoint.root == a.root => theirs,
        Some(_) => ours,
    };
    let new = t.forks.get(&wtxn, &k)?.is_none();
    if new {
        t.forks.put(&mut wtxn, &k, &other.encode())?;
    }
    wtxn.commit()?;
    if new {
        tracing::warn!(
            group = %a.group.short(),
            author = %a.author.short(),
            length = a.length,
            "fork evidence recorded"
        );
        shared.system.publish(SystemEvent::ForkDetected {
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
        e => HostError::Store(crate::store::writer::error_chain(&e)),
    }
}

impl SyncNode {
    fn check_batch(&self, b: &VerifiedBatch) -> Result<Option<Hlc>> {
        let bad = |why: &str| Error::Config(format!("verified batch refused: {why}"));
        let known = self
            .shared
            .groups
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .contains(&b.group);
        if !known {
            return Err(Error::UnknownGroup { group: b.group });
        }
        if b.author_key.id().as_bytes() != b.author.as_bytes() {
            return Err(bad("key of another author"));
        }
        let c = &b.checkpoint.checkpoint;
        if c.group != b.group || c.author != b.author {
            return Err(bad("checkpoint of another log"));
        }
        let end = b
            .first_seq
            .checked_add(b.events.len() as u64)
            .ok_or_else(|| bad("seq overflow"))?;
        if c.length < end {
            return Err(bad("batch past its checkpoint"));
        }
        if b.ids.len() != b.events.len() {
            return Err(bad("ids do not match the events"));
        }
        b.checkpoint
            .verify(&b.author_key)
            .map_err(Error::Checkpoint)?;
        let mut max: Option<Hlc> = None;
        for (i, raw) in b.events.iter().enumerate() {
            let ev = EventRef::decode(raw).map_err(|_| bad("undecodable event"))?;
            let h = ev.header;
            if h.group != b.group || h.author != b.author || h.seq != b.first_seq + i as u64 {
                return Err(bad("event of another log or seq"));
            }
            max = Some(max.map_or(h.hlc, |m| m.max(h.hlc)));
        }
        Ok(max)
    }
}

impl SyncHost for SyncNode {
    fn keypair(&self) -> Arc<XaeroKeypair> {
        self.shared.keypair.clone()
    }

    fn groups(&self) -> Vec<Group> {
        groups_with_secrets(&self.shared).unwrap_or_else(|e| {
            tracing::warn!(error = %e, "cannot read groups");
            Vec::new()
        })
    }

    fn read_logs(&self, f: &mut dyn FnMut(&dyn LogView)) {
        match Snapshot::new(&self.shared) {
            Ok(snap) => f(&StoreView { snap }),
            Err(e) => {
                tracing::warn!(error = %e, "cannot open a read view; sessions see no logs");
                f(&MemLogs::new());
            }
        }
    }

    fn store_verified(&self, batch: VerifiedBatch) -> Result<(), HostError> {
        if batch.events.is_empty() {
            return Ok(());
        }
        let max_hlc = self.check_batch(&batch).map_err(host_err)?;
        if let Some(hlc) = max_hlc
            && let Err(e) = self.shared.clock.update(hlc)
        {
            tracing::warn!(error = %e, "received timestamp too far ahead; clock not moved");
        }
        if batch.author == self.shared.author {
            // Our own log grows only through local writes.
            return Ok(());
        }
        let b = RemoteBatch {
            group: batch.group,
            author: batch.author,
            key: batch.author_key.as_bytes().to_vec(),
            first_seq: batch.first_seq,
            ids: batch.ids,
            events: batch.events,
            checkpoint: *batch.checkpoint,
        };
        self.shared.inbox.push(&self.shared, b).map_err(host_err)
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
        if self.shared.shutdown.load(Ordering::Acquire) {
            return Err(HostError::Closed);
        }
        Ok(Box::new(Feed {
            shared: self.shared.clone(),
            cursor: self.shared.committed.get(),
            out: VecDeque::new(),
            carry: HashMap::new(),
        }))
    }

    fn peer_event(&self, event: PeerEvent) {
        use xaeroflux_sync::SystemEvent as S;
        let sys = &self.shared.system;
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
pub(crate) struct StoreView<'a> {
    snap: Snapshot<'a>,
}

fn logged<T>(r: Result<T>) -> Option<T> {
    r.map_err(|e| tracing::warn!(error = %e, "sync read failed"))
        .ok()
}

impl<'a> StoreView<'a> {
    fn mmr(&self, g: &GroupId, a: &AuthorId) -> Result<Option<Mmr<SnapshotNodes<'_, 'a>>>> {
        let Some(id) = self.snap.log_mmr_id(g, a)? else {
            return Ok(None);
        };
        let sh = self.snap.shared();
        snapshot_mmr(&sh.tables, self.snap.txn(), &sh.pages, id).map(Some)
    }

    fn len(&self, g: &GroupId, a: &AuthorId) -> Result<u64> {
        let Some(id) = self.snap.log_mmr_id(g, a)? else {
            return Ok(0);
        };
        let sh = self.snap.shared();
        let st = MmrState::load(&sh.tables, self.snap.txn(), id, sh.pages.path())?;
        Ok(leaf_count_for_size(st.size).unwrap_or(0))
    }

    fn latest(&self, g: &GroupId, a: &AuthorId) -> Result<Option<SignedCheckpoint>> {
        let len = self.len(g, a)?;
        if len == 0 {
            return Ok(None);
        }
        let sh = self.snap.shared();
        let (lo, hi) = (log_key(&g.0, &a.0, 0), log_key(&g.0, &a.0, len));
        let range = (Bound::Included(&lo[..]), Bound::Included(&hi[..]));
        let mut it = sh.tables.checkpoints.rev_range(self.snap.txn(), &range)?;
        match it.next().transpose()? {
            Some((_, v)) => Ok(Some(
                SignedCheckpoint::decode(v).map_err(Error::Checkpoint)?,
            )),
            None => Ok(None),
        }
    }

    fn events_range(
        &self,
        g: &GroupId,
        a: &AuthorId,
        from: u64,
        to: u64,
        max_bytes: usize,
    ) -> Result<EventList> {
        if from >= to {
            return Ok(EventList::new());
        }
        // Sized for small events; a batch of larger ones grows the buffer a few times.
        let span = usize::try_from(to - from).unwrap_or(usize::MAX).min(4096);
        let mut out = EventList::with_capacity(span, max_bytes.min(span * 256));
        let sh = self.snap.shared();
        let txn = self.snap.txn();
        let mut reader = BlockCursor::new(txn);
        let mut bytes = 0usize;
        for item in runs::log_locals(&sh.tables, txn, g, a, from, to)? {
            let (_, local) = item?;
            let e = reader
                .get(&sh.tables, local)?
                .ok_or_else(|| Error::Corrupt {
                    path: sh.opts.data_dir.clone(),
                    reason: format!("log index points at missing event {local}"),
                })?;
            if !out.is_empty() && bytes + e.len() + 4 > max_bytes {
                break;
            }
            bytes += e.len() + 4;
            out.push(e);
        }
        Ok(out)
    }

    fn authors_of(&self, g: &GroupId) -> Result<Vec<AuthorId>> {
        let sh = self.snap.shared();
        let mut out = Vec::new();
        for item in sh
            .tables
            .log_mmrs
            .prefix_iter(self.snap.txn(), g.as_bytes())?
        {
            let (k, v) = item?;
            let (Some(a), Some(id)) = (k.get(32..64), from_be(v)) else {
                continue;
            };
            let st = MmrState::load(&sh.tables, self.snap.txn(), id, sh.pages.path())?;
            if st.size > 0 {
                let mut b = [0u8; 32];
                b.copy_from_slice(a);
                out.push(AuthorId(b));
            }
        }
        Ok(out)
    }
}

impl LogView for StoreView<'_> {
    fn authors(&self, group: &GroupId) -> Vec<AuthorId> {
        logged(self.authors_of(group)).unwrap_or_default()
    }

    fn frontier(&self, group: &GroupId, author: &AuthorId) -> Frontier {
        logged(self.mmr(group, author))
            .flatten()
            .and_then(|m| Frontier::from_peaks(m.leaf_count(), m.peaks().to_vec()))
            .unwrap_or_default()
    }

    fn mmr_node(&self, group: &GroupId, author: &AuthorId, pos: u64) -> Option<Hash32> {
        let m = logged(self.mmr(group, author)).flatten()?;
        if pos >= m.size() {
            return None;
        }
        logged(m.store().get(pos)).flatten()
    }

    fn root_at(&self, group: &GroupId, author: &AuthorId, len: u64) -> Option<Hash32> {
        let m = logged(self.mmr(group, author)).flatten()?;
        if len == 0 || len > m.leaf_count() {
            return None;
        }
        m.root_at(len).ok()
    }

    fn events(
        &self,
        group: &GroupId,
        author: &AuthorId,
        from: u64,
        to: u64,
        max_bytes: usize,
    ) -> EventList {
        logged(self.events_range(group, author, from, to, max_bytes)).unwrap_or_default()
    }

    fn latest_checkpoint(&self, group: &GroupId, author: &AuthorId) -> Option<SignedCheckpoint> {
        logged(self.latest(group, author)).flatten()
    }

    fn checkpoint_at(
        &self,
        group: &GroupId,
        author: &AuthorId,
        len: u64,
    ) -> Option<SignedCheckpoint> {
        let sh = self.snap.shared();
        let k = log_key(&group.0, &author.0, len);
        let v = logged(
            sh.tables
                .checkpoints
                .get(self.snap.txn(), &k)
                .map_err(Error::from),
        )??;
        SignedCheckpoint::decode(v).ok()
    }

    fn author_key(&self, author: &AuthorId) -> Option<XaeroID> {
        let sh = self.snap.shared();
        let v = logged(
            sh.tables
                .authors
                .get(self.snap.txn(), author.as_bytes())
                .map_err(Error::from),
        )??;
        XaeroID::from_bytes(v).ok()
    }

    fn is_forked(&self, group: &GroupId, author: &AuthorId) -> bool {
        let sh = self.snap.shared();
        let prefix = log_prefix(&group.0, &author.0);
        logged(
            sh.tables
                .forks
                .prefix_iter(self.snap.txn(), &prefix)
                .map_err(Error::from)
                .map(|mut it| it.next().is_some()),
        )
        .unwrap_or(false)
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
        for item in blocks::events_from(&sh.tables, snap.txn(), self.cursor)? {
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
        let view = StoreView { snap };
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
        self.cursor = self.cursor.max(self.shared.committed.get());
        if self.shared.shutdown.load(Ordering::Acquire) {
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
            let upto = self.shared.committed.get();
            if upto > self.cursor {
                self.fill(upto).map_err(host_err)?;
                continue;
            }
            if self.shared.shutdown.load(Ordering::Acquire) {
                return Err(HostError::Closed);
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(None);
            }
            let (sh, cursor) = (&self.shared, self.cursor);
            sh.inbox.commits.wait_until(
                || sh.committed.get() > cursor || sh.shutdown.load(Ordering::Acquire),
                Some(deadline - now),
            );
        }
    }
}
