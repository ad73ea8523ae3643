//! What a session reads from the local store, and the MMR frontier it verifies with.
//!
//! A [`Frontier`] is the list of peaks of an author log's Merkle Mountain Range (see
//! `xaeroflux_core::mmr`): enough to append leaves and compute the root, without the
//! rest of the tree. Batches are verified on a copy of the frontier, so nothing is
//! handed to the storage writer unless the signed root is reproduced.
//!
//! A batch `first..end` proven against a checkpoint of length `L > end` carries a
//! *consistency proof*: the roots of the aligned subtrees that cover leaves `end..L`
//! (greedily, largest first; [`proof_ranges`]). Appending those subtree roots to the
//! frontier after the batch yields the root at `L`, because in an MMR an aligned
//! subtree of height `h` is appended exactly like `2^h` leaves would be.

use std::collections::{BTreeMap, HashMap};

use xaeroflux_core::mmr::{
    Hash32, MAX_LEAF_COUNT, MemStore, Mmr, leaf_hash, leaf_index_to_pos, node_hash,
};
use xaeroflux_core::{AuthorId, Event, EventId, GroupId, SignedCheckpoint};
use xaeroid::XaeroID;

use crate::events::EventList;
use crate::host::VerifiedBatch;

/// Read access to the local author logs (the engine implements it over LMDB).
pub trait LogView {
    /// Authors that have a non-empty log in `group`.
    fn authors(&self, group: &GroupId) -> Vec<AuthorId>;
    /// MMR frontier (length and peaks) of a log; empty for an unknown log.
    fn frontier(&self, group: &GroupId, author: &AuthorId) -> Frontier;
    /// A node of the log's MMR by post-order position, if held.
    fn mmr_node(&self, group: &GroupId, author: &AuthorId, pos: u64) -> Option<Hash32>;
    /// Root of the first `len` events of the log, if the log has that many.
    fn root_at(&self, group: &GroupId, author: &AuthorId, len: u64) -> Option<Hash32>;
    /// Canonical encodings of events `from..to` (fewer if the log is shorter), stopping
    /// before the total would exceed `max_bytes` (but at least one event).
    fn events(
        &self,
        group: &GroupId,
        author: &AuthorId,
        from: u64,
        to: u64,
        max_bytes: usize,
    ) -> EventList;
    /// The latest signed checkpoint of the log.
    fn latest_checkpoint(&self, group: &GroupId, author: &AuthorId) -> Option<SignedCheckpoint>;
    /// A signed checkpoint of exactly `len` events, if stored.
    fn checkpoint_at(
        &self,
        group: &GroupId,
        author: &AuthorId,
        len: u64,
    ) -> Option<SignedCheckpoint>;
    /// The author's public key, if known.
    fn author_key(&self, author: &AuthorId) -> Option<XaeroID>;
    /// Whether the log is known to be forked (then it is never extended).
    fn is_forked(&self, group: &GroupId, author: &AuthorId) -> bool;
    /// Whether `author` may write to `group` (signed member lists; default: anyone).
    fn may_write(&self, _group: &GroupId, _author: &AuthorId) -> bool {
        true
    }
    /// Whether `author`'s event at `seq` of type `event_type` may be stored (a group's
    /// membership: roles and removal cut-offs; default: anyone). A verified batch is
    /// stored up to the first event refused here, and the log stops in that session
    /// (a later session asks again).
    fn may_write_event(
        &self,
        _group: &GroupId,
        _author: &AuthorId,
        _seq: u64,
        _event_type: u32,
    ) -> bool {
        true
    }
    /// Whether a peer whose Hello verified may hold a session of `group` (a group's
    /// current members; default: anyone holding the group secret).
    fn may_connect(&self, _group: &GroupId, _peer: &AuthorId) -> bool {
        true
    }
}

/// A group's admission rules (access control, crate `xaeroflux-access`) that a host
/// answers [`LogView::may_write_event`] and [`LogView::may_connect`] with.
pub trait AccessGate: Send + Sync {
    /// See [`LogView::may_write_event`].
    fn may_write_event(
        &self,
        group: &GroupId,
        author: &AuthorId,
        seq: u64,
        event_type: u32,
    ) -> bool;
    /// See [`LogView::may_connect`].
    fn may_connect(&self, group: &GroupId, peer: &AuthorId) -> bool;
}

/// Length and peaks of an MMR: enough to append and to compute the root.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Frontier {
    len: u64,
    /// Peaks left (highest) to right; one per set bit of `len`.
    peaks: Vec<Hash32>,
}

impl Frontier {
    /// An empty log.
    pub fn new() -> Self {
        Self::default()
    }

    /// From a length and its peaks (as `Mmr::peaks` returns them); `None` if the peak
    /// count does not match the length.
    pub fn from_peaks(len: u64, peaks: Vec<Hash32>) -> Option<Self> {
        (peaks.len() == len.count_ones() as usize).then_some(Self { len, peaks })
    }

    /// Number of leaves.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether it has no leaves.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Appends an event id; `false` if the MMR is full (2^62 leaves).
    pub fn push(&mut self, id: &EventId) -> bool {
        self.push_node(0, leaf_hash(&id.0))
    }

    /// Appends an aligned subtree of height `h` with root `node`. Returns `false` (and
    /// changes nothing) if `len` is not a multiple of `2^h` or the MMR would exceed
    /// 2^62 leaves.
    pub fn push_node(&mut self, h: u32, node: Hash32) -> bool {
        if h >= 62 || !self.len.is_multiple_of(1u64 << h) {
            return false;
        }
        let add = 1u64 << h;
        if self.len.checked_add(add).is_none_or(|l| l > MAX_LEAF_COUNT) {
            return false;
        }
        let mut h = h;
        let mut node = node;
        // Binary addition: merge with the rightmost peak while it has the same height.
        while h < 64 && (self.len >> h) & 1 == 1 {
            let Some(left) = self.peaks.pop() else { break };
            node = node_hash(&left, &node);
            h += 1;
        }
        self.peaks.push(node);
        self.len += add;
        true
    }

    /// The root (peaks bagged right to left), `None` when empty.
    pub fn root(&self) -> Option<Hash32> {
        let (last, rest) = self.peaks.split_last()?;
        Some(rest.iter().rev().fold(*last, |acc, p| node_hash(&acc, p)))
    }
}

/// The aligned subtrees `(first_leaf, height)` covering leaves `from..to`, left to right.
pub fn proof_ranges(from: u64, to: u64) -> Vec<(u64, u32)> {
    let mut out = Vec::new();
    let mut p = from;
    while p < to {
        let mut h = if p == 0 {
            62
        } else {
            p.trailing_zeros().min(62)
        };
        while h > 0 && p.checked_add(1u64 << h).is_none_or(|e| e > to) {
            h -= 1;
        }
        out.push((p, h));
        p += 1u64 << h;
    }
    out
}

/// Post-order position of the root of the aligned subtree `(first_leaf, height)`.
pub fn subtree_pos(first_leaf: u64, height: u32) -> Option<u64> {
    let last = first_leaf.checked_add((1u64 << height) - 1)?;
    leaf_index_to_pos(last)?.checked_add(u64::from(height))
}

/// One author log held in memory.
#[derive(Debug)]
struct MemLog {
    mmr: Mmr<MemStore>,
    ids: Vec<EventId>,
    events: Vec<Vec<u8>>,
    checkpoints: BTreeMap<u64, SignedCheckpoint>,
    forked: bool,
}

impl MemLog {
    fn new() -> Self {
        Self {
            // An empty store is a valid MMR of size 0.
            mmr: Mmr::new(MemStore::new(), 0).expect("size 0 is a valid empty mmr"),
            ids: Vec::new(),
            events: Vec::new(),
            checkpoints: BTreeMap::new(),
            forked: false,
        }
    }
}

/// Why [`MemLogs::apply`] refused a batch.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ApplyError {
    /// The batch starts after the end of the log.
    #[error("batch starts at {first} but the log has {len} events")]
    Gap {
        /// First seq of the batch.
        first: u64,
        /// Log length.
        len: u64,
    },
    /// An event differs from the one stored at its seq.
    #[error("event at seq {seq} differs from the stored one")]
    Conflict {
        /// Seq.
        seq: u64,
    },
    /// The log is forked.
    #[error("log is forked")]
    Forked,
    /// An event does not decode.
    #[error("undecodable event")]
    BadEvent,
    /// After appending, the root does not match the checkpoint.
    #[error("root mismatch")]
    RootMismatch,
}

/// In-memory [`LogView`] plus the writes a storage writer would do; used by the
/// simulation, the tests and the fuzz targets.
#[derive(Debug, Default)]
pub struct MemLogs {
    logs: HashMap<(GroupId, AuthorId), MemLog>,
    keys: HashMap<AuthorId, XaeroID>,
}

impl MemLogs {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Remembers an author's public key.
    pub fn add_key(&mut self, key: XaeroID) {
        self.keys.insert(AuthorId(*key.id().as_bytes()), key);
    }

    /// [`MemLogs::apply`] for a session's verified batch, keeping its author's key.
    pub fn apply_verified(&mut self, b: &VerifiedBatch) -> Result<u64, ApplyError> {
        self.add_key(b.author_key.clone());
        self.apply(b.group, b.author, b.first_seq, &b.events, &b.checkpoint)
    }

    /// Appends events `first_seq..` (already verified by a session) and the checkpoint
    /// they were proven against, idempotently: events the log already holds are
    /// compared and skipped. The checkpoint is stored once the log reaches its length.
    pub fn apply(
        &mut self,
        group: GroupId,
        author: AuthorId,
        first_seq: u64,
        events: &EventList,
        checkpoint: &SignedCheckpoint,
    ) -> Result<u64, ApplyError> {
        let log = self.logs.entry((group, author)).or_insert_with(MemLog::new);
        if log.forked {
            return Err(ApplyError::Forked);
        }
        let len = log.ids.len() as u64;
        if first_seq > len {
            return Err(ApplyError::Gap {
                first: first_seq,
                len,
            });
        }
        let mut added = 0;
        let mut decoded = Vec::with_capacity(events.len());
        for e in events.iter() {
            let ev = xaeroflux_core::EventRef::decode(e).map_err(|_| ApplyError::BadEvent)?;
            decoded.push(ev.id());
        }
        for (i, (bytes, id)) in events.iter().zip(decoded).enumerate() {
            let seq = first_seq + i as u64;
            if seq < len {
                if log.ids[seq as usize] != id {
                    return Err(ApplyError::Conflict { seq });
                }
                continue;
            }
            log.mmr.push(&id.0).map_err(|_| ApplyError::RootMismatch)?;
            log.ids.push(id);
            log.events.push(bytes.to_vec());
            added += 1;
        }
        let cp = &checkpoint.checkpoint;
        let new_len = log.ids.len() as u64;
        if cp.length <= new_len {
            if log.mmr.root_at(cp.length).ok() != Some(cp.root) {
                return Err(ApplyError::RootMismatch);
            }
            log.checkpoints.insert(cp.length, checkpoint.clone());
        }
        Ok(added)
    }

    /// Appends a locally written event and signs nothing: the caller signs the
    /// checkpoint for the new length and passes it to [`MemLogs::add_checkpoint`].
    pub fn append_local(&mut self, event: &Event) -> Hash32 {
        let h = &event.header;
        let log = self
            .logs
            .entry((h.group, h.author))
            .or_insert_with(MemLog::new);
        let id = event.id();
        // A memory store never fails and a local log never reaches 2^62 events.
        let _ = log.mmr.push(&id.0);
        log.ids.push(id);
        log.events.push(event.encode());
        log.mmr.root().unwrap_or_default()
    }

    /// Stores a signed checkpoint (local, or part of fork evidence).
    pub fn add_checkpoint(&mut self, cp: SignedCheckpoint) {
        let c = &cp.checkpoint;
        let log = self
            .logs
            .entry((c.group, c.author))
            .or_insert_with(MemLog::new);
        log.checkpoints.entry(c.length).or_insert(cp);
    }

    /// Marks a log forked: it is never extended again.
    pub fn mark_forked(&mut self, group: GroupId, author: AuthorId) {
        self.logs
            .entry((group, author))
            .or_insert_with(MemLog::new)
            .forked = true;
    }

    /// Length and root of every non-empty log of `group`, sorted by author.
    pub fn summary(&self, group: &GroupId) -> Vec<(AuthorId, u64, Option<Hash32>)> {
        let mut v: Vec<_> = self
            .logs
            .iter()
            .filter(|((g, _), l)| g == group && !l.ids.is_empty())
            .map(|((_, a), l)| (*a, l.ids.len() as u64, l.mmr.root().ok()))
            .collect();
        v.sort_by_key(|x| x.0);
        v
    }

    /// All event encodings of a log.
    pub fn log_events(&self, group: &GroupId, author: &AuthorId) -> &[Vec<u8>] {
        self.logs
            .get(&(*group, *author))
            .map(|l| &l.events[..])
            .unwrap_or(&[])
    }

    /// Total events held in `group`.
    pub fn total_events(&self, group: &GroupId) -> u64 {
        self.summary(group).iter().map(|s| s.1).sum()
    }
}

impl LogView for MemLogs {
    fn authors(&self, group: &GroupId) -> Vec<AuthorId> {
        self.summary(group).into_iter().map(|s| s.0).collect()
    }

    fn frontier(&self, group: &GroupId, author: &AuthorId) -> Frontier {
        self.logs
            .get(&(*group, *author))
            .and_then(|l| Frontier::from_peaks(l.mmr.leaf_count(), l.mmr.peaks().to_vec()))
            .unwrap_or_default()
    }

    fn mmr_node(&self, group: &GroupId, author: &AuthorId, pos: u64) -> Option<Hash32> {
        let l = self.logs.get(&(*group, *author))?;
        l.mmr
            .store()
            .nodes()
            .get(usize::try_from(pos).ok()?)
            .copied()
    }

    fn root_at(&self, group: &GroupId, author: &AuthorId, len: u64) -> Option<Hash32> {
        self.logs.get(&(*group, *author))?.mmr.root_at(len).ok()
    }

    fn events(
        &self,
        group: &GroupId,
        author: &AuthorId,
        from: u64,
        to: u64,
        max_bytes: usize,
    ) -> EventList {
        let Some(l) = self.logs.get(&(*group, *author)) else {
            return EventList::new();
        };
        let mut out = EventList::new();
        let mut bytes = 0;
        let to = to.min(l.events.len() as u64);
        for seq in from..to {
            let e = &l.events[seq as usize];
            if !out.is_empty() && bytes + e.len() + 4 > max_bytes {
                break;
            }
            bytes += e.len() + 4;
            out.push(e);
        }
        out
    }

    fn latest_checkpoint(&self, group: &GroupId, author: &AuthorId) -> Option<SignedCheckpoint> {
        let l = self.logs.get(&(*group, *author))?;
        l.checkpoints
            .range(..=l.ids.len() as u64)
            .next_back()
            .map(|(_, c)| c.clone())
    }

    fn checkpoint_at(
        &self,
        group: &GroupId,
        author: &AuthorId,
        len: u64,
    ) -> Option<SignedCheckpoint> {
        self.logs
            .get(&(*group, *author))?
            .checkpoints
            .get(&len)
            .cloned()
    }

    fn author_key(&self, author: &AuthorId) -> Option<XaeroID> {
        self.keys.get(author).cloned()
    }

    fn is_forked(&self, group: &GroupId, author: &AuthorId) -> bool {
        self.logs.get(&(*group, *author)).is_some_and(|l| l.forked)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn frontier_matches_mmr_and_proofs_extend(n in 1u64..300, cut in 0u64..300) {
            let mut mmr = Mmr::new(MemStore::new(), 0).unwrap();
            let mut f = Frontier::new();
            let cut = cut % (n + 1);
            let mut at_cut = None;
            for i in 0..n {
                if i == cut { at_cut = Some(f.clone()); }
                let id = EventId(*blake3::hash(&i.to_le_bytes()).as_bytes());
                mmr.push(&id.0).unwrap();
                f.push(&id);
                prop_assert_eq!(f.root().unwrap(), mmr.root().unwrap());
                prop_assert_eq!(f.clone(), Frontier::from_peaks(mmr.leaf_count(), mmr.peaks().to_vec()).unwrap());
            }
            // Extending the frontier at `cut` with the proof subtrees reproduces the root.
            let mut g = at_cut.unwrap_or_else(|| f.clone());
            for (first, h) in proof_ranges(cut, n) {
                let node = mmr.store().nodes()[subtree_pos(first, h).unwrap() as usize];
                prop_assert!(g.push_node(h, node));
            }
            prop_assert_eq!(g.root(), mmr.root().ok());
            prop_assert!(proof_ranges(cut, n).len() <= 2 * 64);
        }
    }
}
