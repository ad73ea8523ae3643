//! Reads: snapshots, zero-copy lookups and range queries, MMR roots and proofs.

use std::sync::RwLockReadGuard;

use heed::{RoTxn, WithoutTls};
use xaeroflux_core::mmr::{MerkleProof, Mmr, leaf_hash};
use xaeroflux_core::{AuthorId, Event, EventId, EventRef, GroupId, Hlc, SignedCheckpoint};

use crate::engine::{Engine, Shared};
use crate::error::{Error, Result};
use crate::store::blocks::BlockCursor;
use crate::store::mmrs::{NODE_MMR_ID, SnapshotNodes, snapshot_mmr};
use crate::store::postings::{Index, Merge};
use crate::store::{blocks, runs};

/// A consistent read-only view of the store (one LMDB read transaction).
///
/// Payloads are borrowed straight from LMDB's memory map. Keep snapshots short-lived:
/// while one is open the writer cannot grow the map.
pub struct Snapshot<'a> {
    shared: &'a Shared,
    // Field order matters: the transaction ends before the gate is released.
    txn: RoTxn<'a, WithoutTls>,
    _gate: RwLockReadGuard<'a, ()>,
}

/// An event read from the store, with its position in local arrival order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoredEvent<'a> {
    /// Position in this node's arrival order (= leaf index in the node MMR).
    pub local_seq: u64,
    /// The event, borrowing its payload from the snapshot.
    pub event: EventRef<'a>,
}

/// Decodes a stored event.
fn stored(local_seq: u64, bytes: &[u8]) -> Result<StoredEvent<'_>> {
    Ok(StoredEvent {
        local_seq,
        event: EventRef::decode(bytes)
            .map_err(|source| Error::CorruptEvent { local_seq, source })?,
    })
}

impl<'a> Snapshot<'a> {
    pub(crate) fn new(shared: &'a Shared) -> Result<Self> {
        let gate = shared.store().gate();
        let txn = shared.store().env.read_txn()?;
        Ok(Snapshot {
            shared,
            txn,
            _gate: gate,
        })
    }

    pub(crate) fn txn(&self) -> &RoTxn<'a, WithoutTls> {
        &self.txn
    }

    pub(crate) fn shared(&self) -> &'a Shared {
        self.shared
    }

    /// The event at `local_seq`.
    pub fn get_local(&self, local_seq: u64) -> Result<Option<StoredEvent<'_>>> {
        match blocks::event_at(&self.shared.store().tables, &self.txn, local_seq)? {
            Some(bytes) => Ok(Some(stored(local_seq, bytes)?)),
            None => Ok(None),
        }
    }

    /// The event with id `id`.
    pub fn get(&self, id: &EventId) -> Result<Option<StoredEvent<'_>>> {
        let Some(local) = self.shared.store().hashes.lookup(
            &self.shared.store().env,
            &self.shared.store().tables,
            id,
        )?
        else {
            return Ok(None);
        };
        self.get_local(local)
    }

    /// The event an index entry points at, read through `cursor`.
    fn indexed<'s>(&'s self, cursor: &mut BlockCursor<'s>, local: u64) -> Result<StoredEvent<'s>> {
        match cursor.get(&self.shared.store().tables, local)? {
            Some(bytes) => stored(local, bytes),
            None => Err(self.corrupt(&format!("index points at missing event {local}"))),
        }
    }

    fn corrupt(&self, reason: &str) -> Error {
        self.shared.store().corrupt(reason.to_string())
    }

    /// Events of one author log from `from_seq` on, in seq order.
    pub fn log(
        &self,
        group: &GroupId,
        author: &AuthorId,
        from_seq: u64,
    ) -> Result<impl Iterator<Item = Result<StoredEvent<'_>>> + '_> {
        let it = runs::log_locals(
            &self.shared.store().tables,
            &self.txn,
            group,
            author,
            from_seq,
            u64::MAX,
        )?;
        let mut cursor = BlockCursor::new(&self.txn);
        Ok(it.map(move |item| self.indexed(&mut cursor, item?.1)))
    }

    /// Events of `event_type` in `group` with `hlc >= since`, in HLC order (ties in
    /// local order).
    pub fn by_type(
        &self,
        group: &GroupId,
        event_type: u32,
        since: Hlc,
    ) -> Result<impl Iterator<Item = Result<StoredEvent<'_>>> + '_> {
        let mut prefix = [0u8; 36];
        prefix[..32].copy_from_slice(group.as_bytes());
        prefix[32..].copy_from_slice(&event_type.to_be_bytes());
        let until = Hlc::from_u64(u64::MAX);
        Merge::new(
            &self.shared.store().tables,
            &self.txn,
            Index::Types,
            &prefix,
            since,
            until,
        )
    }

    /// Events of `group` with `since <= hlc < until`, in total order (hlc, author, seq).
    pub fn by_time(
        &self,
        group: &GroupId,
        since: Hlc,
        until: Hlc,
    ) -> Result<impl Iterator<Item = Result<StoredEvent<'_>>> + '_> {
        Merge::new(
            &self.shared.store().tables,
            &self.txn,
            Index::Times,
            group.as_bytes(),
            since,
            until,
        )
    }

    /// Every event from `local_seq` on, in local arrival order.
    pub fn since(
        &self,
        local_seq: u64,
    ) -> Result<impl Iterator<Item = Result<StoredEvent<'_>>> + '_> {
        let it = blocks::events_from(&self.shared.store().tables, &self.txn, local_seq)?;
        Ok(it.map(|item| {
            let (local_seq, bytes) = item?;
            stored(local_seq, bytes)
        }))
    }

    /// Number of events stored.
    pub fn event_count(&self) -> Result<u64> {
        blocks::event_count(&self.shared.store().tables, &self.txn)
    }

    /// Root of the node-wide MMR (`None` while the store is empty).
    pub fn mmr_root(&self) -> Result<Option<[u8; 32]>> {
        self.root_of(NODE_MMR_ID)
    }

    /// The MMR `mmr_id` as this snapshot sees it.
    pub(crate) fn mmr(&self, mmr_id: u64) -> Result<Mmr<SnapshotNodes<'_, 'a>>> {
        let store = self.shared.store();
        snapshot_mmr(&store.tables, &self.txn, &store.pages, mmr_id)
    }

    fn root_of(&self, mmr_id: u64) -> Result<Option<[u8; 32]>> {
        let mmr = self.mmr(mmr_id)?;
        if mmr.is_empty() {
            return Ok(None);
        }
        mmr.root().map(Some).map_err(Error::from)
    }

    /// Inclusion proof of node-MMR leaf `leaf_index` against the current root.
    pub fn mmr_proof(&self, leaf_index: u64) -> Result<MerkleProof> {
        let mmr = self.mmr(NODE_MMR_ID)?;
        mmr.proof(leaf_index).map_err(Error::from)
    }

    /// Root of the node MMR when it had `leaf_count` leaves.
    pub fn mmr_root_at(&self, leaf_count: u64) -> Result<[u8; 32]> {
        let mmr = self.mmr(NODE_MMR_ID)?;
        mmr.root_at(leaf_count).map_err(Error::from)
    }

    pub(crate) fn log_mmr_id(&self, group: &GroupId, author: &AuthorId) -> Result<Option<u64>> {
        self.shared.store().log_mmr_id(&self.txn, group, author)
    }

    /// Root and length of an author log's MMR.
    pub fn log_root(&self, group: &GroupId, author: &AuthorId) -> Result<Option<(u64, [u8; 32])>> {
        let Some(id) = self.log_mmr_id(group, author)? else {
            return Ok(None);
        };
        let mmr = self.mmr(id)?;
        if mmr.is_empty() {
            return Ok(None);
        }
        Ok(Some((mmr.leaf_count(), mmr.root().map_err(Error::from)?)))
    }

    /// Proof that event `seq` of an author log is in the log of length `leaf_count`.
    pub fn log_proof(
        &self,
        group: &GroupId,
        author: &AuthorId,
        seq: u64,
        leaf_count: u64,
    ) -> Result<MerkleProof> {
        let id = self
            .log_mmr_id(group, author)?
            .ok_or_else(|| Error::Mmr("no such log".into()))?;
        let mmr = self.mmr(id)?;
        mmr.proof_at(seq, leaf_count).map_err(Error::from)
    }

    /// The latest signed checkpoint of an author log.
    pub fn latest_checkpoint(
        &self,
        group: &GroupId,
        author: &AuthorId,
    ) -> Result<Option<SignedCheckpoint>> {
        (self.shared.store()).latest_checkpoint(&self.txn, group, author, u64::MAX)
    }

    /// Every author log of `group`: (author, length).
    pub fn logs_of(&self, group: &GroupId) -> Result<Vec<(AuthorId, u64)>> {
        self.shared.store().logs(&self.txn, group)
    }
}

impl Engine {
    /// A consistent snapshot for zero-copy reads.
    pub fn read(&self) -> Result<Snapshot<'_>> {
        Snapshot::new(self.shared())
    }

    /// The event with id `id`, copied out.
    pub fn get(&self, id: &EventId) -> Result<Option<Event>> {
        Ok(self.read()?.get(id)?.map(|s| s.event.to_owned()))
    }

    /// Looks up several events by id (`None` where absent), from one snapshot.
    pub fn get_events_for_leaf_hashes(&self, ids: &[EventId]) -> Result<Vec<Option<Event>>> {
        let snap = self.read()?;
        ids.iter()
            .map(|id| Ok(snap.get(id)?.map(|s| s.event.to_owned())))
            .collect()
    }

    /// Root of the node-wide MMR over every stored event (`None` while empty).
    pub fn get_mmr_root(&self) -> Result<Option<[u8; 32]>> {
        self.read()?.mmr_root()
    }

    /// Inclusion proof of the event at node-MMR leaf `leaf_index` (its local sequence).
    pub fn get_mmr_proof(&self, leaf_index: u64) -> Result<MerkleProof> {
        self.read()?.mmr_proof(leaf_index)
    }

    /// Verifies that `leaf` (an event id) is in the node MMR as the proof claims, against
    /// this store's root at the proof's length. `Ok(())` only if it is.
    pub fn verify_mmr_proof(&self, leaf: &EventId, proof: &MerkleProof) -> Result<()> {
        let root = self.read()?.mmr_root_at(proof.leaf_count)?;
        proof
            .verify(&root, &leaf.0)
            .map_err(|e| Error::Mmr(e.to_string()))
    }
}

/// The MMR leaf hash of an event id (what the MMR stores for it).
pub fn event_leaf_hash(id: &EventId) -> [u8; 32] {
    leaf_hash(&id.0)
}
