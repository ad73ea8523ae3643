//! The typed reads of [`Store`]: every query that `Snapshot`, the sync host, the writer
//! and verify share, written once. Each returns `Result`: a damaged table is an error,
//! never "no such log".

use std::ops::Bound;

use heed::RoTxn;
use xaeroflux_core::mmr::leaf_count_for_size;
use xaeroflux_core::{AuthorId, GroupId, SignedCheckpoint};
use xaeroflux_sync::EventList;
use xaeroid::XaeroID;

use super::blocks::BlockCursor;
use super::mmrs::MmrState;
use super::{Store, from_be, log_key, log_prefix, runs};
use crate::error::{Error, Result};

/// Decodes a stored checkpoint (a value of `checkpoints` or `forks`).
pub(crate) fn decode_checkpoint(table: &'static str, v: &[u8]) -> Result<SignedCheckpoint> {
    SignedCheckpoint::decode(v).map_err(|e| Error::CorruptTable {
        table,
        reason: format!("checkpoint does not decode: {e}"),
    })
}

impl Store {
    /// Length of an author log (0 if it has no events), from its last run in `logs`.
    pub(crate) fn log_len(&self, txn: &RoTxn<'_>, g: &GroupId, a: &AuthorId) -> Result<u64> {
        runs::log_len(&self.tables, txn, g, a)
    }

    /// The id of an author log's MMR, if the log exists.
    pub(crate) fn log_mmr_id(
        &self,
        txn: &RoTxn<'_>,
        g: &GroupId,
        a: &AuthorId,
    ) -> Result<Option<u64>> {
        match self.tables.log_mmrs.get(txn, &log_prefix(&g.0, &a.0))? {
            None => Ok(None),
            Some(v) => from_be(v).map(Some).ok_or_else(|| Error::CorruptTable {
                table: "log_mmrs",
                reason: format!("mmr id of {} bytes", v.len()),
            }),
        }
    }

    /// The signed checkpoint of an author log with the greatest length `<= max_len`
    /// (`u64::MAX`: the latest stored; the log's length: the latest the log proves).
    pub(crate) fn latest_checkpoint(
        &self,
        txn: &RoTxn<'_>,
        g: &GroupId,
        a: &AuthorId,
        max_len: u64,
    ) -> Result<Option<SignedCheckpoint>> {
        let (lo, hi) = (log_key(&g.0, &a.0, 0), log_key(&g.0, &a.0, max_len));
        let range = (Bound::Included(&lo[..]), Bound::Included(&hi[..]));
        let mut it = self.tables.checkpoints.rev_range(txn, &range)?;
        match it.next().transpose()? {
            Some((_, v)) => decode_checkpoint("checkpoints", v).map(Some),
            None => Ok(None),
        }
    }

    /// The signed checkpoint of an author log for exactly `len` events, if stored.
    pub(crate) fn checkpoint_at(
        &self,
        txn: &RoTxn<'_>,
        g: &GroupId,
        a: &AuthorId,
        len: u64,
    ) -> Result<Option<SignedCheckpoint>> {
        match self
            .tables
            .checkpoints
            .get(txn, &log_key(&g.0, &a.0, len))?
        {
            Some(v) => decode_checkpoint("checkpoints", v).map(Some),
            None => Ok(None),
        }
    }

    /// The stored public key of `author`, if known.
    pub(crate) fn author_key(&self, txn: &RoTxn<'_>, author: &AuthorId) -> Result<Option<XaeroID>> {
        match self.tables.authors.get(txn, author.as_bytes())? {
            Some(v) => XaeroID::from_bytes(v)
                .map(Some)
                .map_err(|e| Error::CorruptTable {
                    table: "authors",
                    reason: format!("key of {} does not decode: {e}", author.short()),
                }),
            None => Ok(None),
        }
    }

    /// Whether fork evidence is recorded for an author log.
    pub(crate) fn is_forked(&self, txn: &RoTxn<'_>, g: &GroupId, a: &AuthorId) -> Result<bool> {
        let prefix = log_prefix(&g.0, &a.0);
        Ok(self
            .tables
            .forks
            .prefix_iter(txn, &prefix)?
            .next()
            .is_some())
    }

    /// Every non-empty author log of `group`: (author, length), in author order.
    pub(crate) fn logs(&self, txn: &RoTxn<'_>, group: &GroupId) -> Result<Vec<(AuthorId, u64)>> {
        let mut out = Vec::new();
        for item in self.tables.log_mmrs.prefix_iter(txn, group.as_bytes())? {
            let (k, v) = item?;
            let (Some(a), Some(id)) = (k.get(32..64), from_be(v)) else {
                return Err(Error::CorruptTable {
                    table: "log_mmrs",
                    reason: format!("entry of {} + {} bytes", k.len(), v.len()),
                });
            };
            let st = MmrState::load(&self.tables, txn, id, self.pages.path())?;
            let len = leaf_count_for_size(st.size).unwrap_or(0);
            if len > 0 {
                let mut b = [0u8; 32];
                b.copy_from_slice(a);
                out.push((AuthorId(b), len));
            }
        }
        Ok(out)
    }

    /// Canonical encodings of events `from..to` of an author log (fewer if it is
    /// shorter), stopping before the total (each event counted with a 4-byte length)
    /// would exceed `max_bytes`, but at least one event.
    pub(crate) fn events_range(
        &self,
        txn: &RoTxn<'_>,
        g: &GroupId,
        a: &AuthorId,
        (from, to): (u64, u64),
        max_bytes: usize,
    ) -> Result<EventList> {
        if from >= to {
            return Ok(EventList::new());
        }
        // Sized for small events; a batch of larger ones grows the buffer a few times.
        let span = usize::try_from(to - from).unwrap_or(usize::MAX).min(4096);
        let mut out = EventList::with_capacity(span, max_bytes.min(span * 256));
        let mut reader = BlockCursor::new(txn);
        let mut bytes = 0usize;
        for item in runs::log_locals(&self.tables, txn, g, a, from, to)? {
            let (_, local) = item?;
            let e = reader.get(&self.tables, local)?.ok_or_else(|| {
                self.corrupt(format!("log index points at missing event {local}"))
            })?;
            if !out.is_empty() && bytes + e.len() + 4 > max_bytes {
                break;
            }
            bytes += e.len() + 4;
            out.push(e);
        }
        Ok(out)
    }
}
