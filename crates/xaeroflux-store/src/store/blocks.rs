//! Reads of the `events` table: blocks of consecutive events keyed by the local
//! sequence of their first event (layout in `xaeroflux_core::block`).
//!
//! Blocks of one table follow each other without gaps: a block starting at `f` with
//! `n` events is followed by the block starting at `f + n`. The last block's end is the
//! number of stored events.

use std::ops::Bound;

use heed::RoTxn;
use heed::types::Bytes;
use xaeroflux_core::BlockRef;

use super::{Step, Steps, Tables, be, from_be};
use crate::error::{Error, Result};

fn corrupt(reason: String) -> Error {
    Error::CorruptTable {
        table: "events",
        reason,
    }
}

fn decode<'t>(k: &[u8], v: &'t [u8]) -> Result<(u64, BlockRef<'t>)> {
    let first = from_be(k).ok_or_else(|| corrupt("key is not a u64".into()))?;
    let block = BlockRef::decode(v).map_err(|source| Error::CorruptBlock {
        first_local: first,
        source,
    })?;
    Ok((first, block))
}

/// The block that holds `local` if it is stored (else the last block, or none).
fn block_at<'t>(t: &Tables, txn: &'t RoTxn<'_>, local: u64) -> Result<Option<(u64, BlockRef<'t>)>> {
    match t.events.get_lower_than_or_equal_to(txn, &be(local))? {
        Some((k, v)) => decode(k, v).map(Some),
        None => Ok(None),
    }
}

fn event_in<'t>(first: u64, block: &BlockRef<'t>, local: u64) -> Result<Option<&'t [u8]>> {
    let Ok(i) = usize::try_from(local - first) else {
        return Ok(None);
    };
    block.get(i).map_err(|source| Error::CorruptBlock {
        first_local: first,
        source,
    })
}

/// The encoded event stored at `local`.
pub(crate) fn event_at<'t>(t: &Tables, txn: &'t RoTxn<'_>, local: u64) -> Result<Option<&'t [u8]>> {
    match block_at(t, txn, local)? {
        Some((first, block)) => event_in(first, &block, local),
        None => Ok(None),
    }
}

/// Random reads that keep the last block: reading events at nearby local sequences
/// (a log's run, a range of an index) searches the table once per block.
pub(crate) struct BlockCursor<'t> {
    txn: &'t RoTxn<'t>,
    block: Option<(u64, BlockRef<'t>)>,
}

impl<'t> BlockCursor<'t> {
    pub(crate) fn new(txn: &'t RoTxn<'t>) -> Self {
        BlockCursor { txn, block: None }
    }

    /// The encoded event stored at `local`.
    pub(crate) fn get(&mut self, t: &Tables, local: u64) -> Result<Option<&'t [u8]>> {
        if let Some((first, block)) = &self.block
            && *first <= local
            && local - *first < block.len() as u64
        {
            return event_in(*first, block, local);
        }
        self.block = block_at(t, self.txn, local)?;
        match &self.block {
            Some((first, block)) => event_in(*first, block, local),
            None => Ok(None),
        }
    }
}

/// Number of stored events (the next local sequence).
pub(crate) fn event_count(t: &Tables, txn: &RoTxn<'_>) -> Result<u64> {
    match t.events.last(txn)? {
        Some((k, v)) => {
            let (first, block) = decode(k, v)?;
            first
                .checked_add(block.len() as u64)
                .ok_or_else(|| corrupt("last block ends past u64".into()))
        }
        None => Ok(0),
    }
}

/// Stored events from `from` on, in local order, as (local sequence, encoding).
pub(crate) fn events_from<'t>(
    t: &Tables,
    txn: &'t RoTxn<'_>,
    from: u64,
) -> Result<Steps<EventsFrom<'t>>> {
    let start = match block_at(t, txn, from)? {
        Some((first, _)) => first,
        None => from,
    };
    let range = (Bound::Included(&be(start)[..]), Bound::Unbounded);
    Ok(Steps::new(EventsFrom {
        blocks: t.events.range(txn, &range)?,
        block: None,
        next: from,
    }))
}

/// Iterator of [`events_from`].
pub(crate) struct EventsFrom<'t> {
    blocks: heed::RoRange<'t, Bytes, Bytes>,
    /// The current block and its first local sequence.
    block: Option<(u64, BlockRef<'t>)>,
    /// Local sequence of the next event to return.
    next: u64,
}

impl<'t> Step for EventsFrom<'t> {
    type Item = (u64, &'t [u8]);

    fn step(&mut self) -> Result<Option<(u64, &'t [u8])>> {
        loop {
            if let Some((first, block)) = &self.block
                && let Some(e) = event_in(*first, block, self.next)?
            {
                let local = self.next;
                self.next += 1;
                return Ok(Some((local, e)));
            }
            let Some(item) = self.blocks.next() else {
                return Ok(None);
            };
            let (k, v) = item?;
            let (first, block) = decode(k, v)?;
            match &self.block {
                // The first block may start before `from`.
                None if first <= self.next => {}
                None => return Err(corrupt(format!("no block holds event {}", self.next))),
                Some(_) if first == self.next => {}
                Some(_) => {
                    return Err(corrupt(format!(
                        "block at {first} follows a block ending at {}",
                        self.next
                    )));
                }
            }
            self.block = Some((first, block));
        }
    }
}
