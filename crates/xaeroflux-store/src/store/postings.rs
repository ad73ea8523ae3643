//! The type and time indexes as posting runs, read back in order by merging runs.
//!
//! One entry per event made each index a B-tree put per event, the largest cost left
//! in a commit after events went into blocks. Instead a commit writes one entry per
//! *run*: events of one index stream (a group and type, or an author log) from that
//! commit, in local order, whose HLCs do not decrease and span at most [`MAX_SPAN`].
//!
//! - `types`: `group [32] | event_type u32 | first_hlc u64 | first_local u64` (BE)
//! - `times`: `group [32] | first_hlc u64 | author [32] | first_seq u64` (BE); the
//!   events of a time run are consecutive seqs of that author log.
//!
//! Value (little-endian): `count u32 (1..=`[`MAX_RUN`]`) | last_hlc u64 |
//! first_local u64 | count - 1 LEB128 gaps` (each gap `local[i] - local[i-1] >= 1`).
//!
//! Reading from `since` in order: runs are keyed by their first HLC and span at most
//! [`MAX_SPAN`], so every run holding an event at or after `since` starts at or after
//! `since - MAX_SPAN`. A scan from there loads runs in first-HLC order into a heap and
//! emits the smallest head once no unloaded run can start before it.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::iter::Peekable;

use heed::RoTxn;
use heed::types::Bytes;
use xaeroflux_core::posting::{MAX_RUN, MAX_SPAN, PostingRun};
use xaeroflux_core::{EventRef, Hlc};

use super::blocks::BlockCursor;
use super::{Step, Steps, Tables};
use crate::error::{Error, Result};
use crate::read::StoredEvent;

/// `group | event_type | first_hlc | first_local` key of a type run.
pub(crate) fn type_key(group: &[u8; 32], ty: u32, hlc: u64, local: u64) -> [u8; 52] {
    let mut k = [0u8; 52];
    k[..32].copy_from_slice(group);
    k[32..36].copy_from_slice(&ty.to_be_bytes());
    k[36..44].copy_from_slice(&hlc.to_be_bytes());
    k[44..].copy_from_slice(&local.to_be_bytes());
    k
}

/// `group | first_hlc | author | first_seq` key of a time run.
pub(crate) fn time_key(group: &[u8; 32], hlc: u64, author: &[u8; 32], seq: u64) -> [u8; 80] {
    let mut k = [0u8; 80];
    k[..32].copy_from_slice(group);
    k[32..40].copy_from_slice(&hlc.to_be_bytes());
    k[40..72].copy_from_slice(author);
    k[72..].copy_from_slice(&seq.to_be_bytes());
    k
}

/// Builds the runs of one batch for one index. Streams are told apart by a key the
/// caller chooses; a run closes when its stream's next event does not continue it.
#[derive(Default)]
pub(crate) struct RunBuilder<K> {
    open: Vec<(K, Vec<u8>, u64, PostingRun)>,
    /// Closed runs: (table key, run).
    pub closed: Vec<(Vec<u8>, PostingRun)>,
}

impl<K: PartialEq> RunBuilder<K> {
    /// Adds the event at `local` with `hlc` to `stream`. `key` is the table key the
    /// stream's run gets if this event starts one.
    pub(crate) fn push(&mut self, stream: K, key: impl FnOnce() -> Vec<u8>, hlc: u64, local: u64) {
        if let Some(i) = self.open.iter().position(|(s, ..)| *s == stream) {
            let (_, _, first_hlc, run) = &mut self.open[i];
            let fits = run.locals.len() < MAX_RUN
                && hlc >= run.last_hlc
                && hlc - *first_hlc <= MAX_SPAN
                && run.locals.last().is_some_and(|&l| l < local);
            if fits {
                run.last_hlc = hlc;
                run.locals.push(local);
                return;
            }
            let (_, k, _, run) = self.open.swap_remove(i);
            self.closed.push((k, run));
        }
        let run = PostingRun {
            last_hlc: hlc,
            locals: vec![local],
        };
        self.open.push((stream, key(), hlc, run));
    }

    /// Closes every open run; the closed runs sorted by key.
    pub(crate) fn finish(&mut self) -> &mut [(Vec<u8>, PostingRun)] {
        for (_, k, _, run) in self.open.drain(..) {
            self.closed.push((k, run));
        }
        self.closed.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        &mut self.closed
    }
}

/// Which index a merge reads.
#[derive(Clone, Copy)]
pub(crate) enum Index {
    /// `types`: order (hlc, local).
    Types,
    /// `times`: order (hlc, author, seq).
    Times,
}

/// Sort key of an event in a merge: (hlc, author or zero, seq or local).
type Order = (u64, [u8; 32], u64);

/// The next event of a loaded run, read once: it is returned when it leaves the heap.
struct Head<'t> {
    order: Order,
    run: usize,
    pos: usize,
    event: StoredEvent<'t>,
}

impl PartialEq for Head<'_> {
    fn eq(&self, o: &Self) -> bool {
        self.order == o.order
    }
}
impl Eq for Head<'_> {}
impl PartialOrd for Head<'_> {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Head<'_> {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        self.order.cmp(&o.order)
    }
}

/// Events of runs in `[start, end)` of an index, with `since <= hlc < until`, in order.
pub(crate) struct Merge<'t> {
    tables: &'t Tables,
    index: Index,
    runs: Peekable<heed::RoRange<'t, Bytes, Bytes>>,
    /// Runs loaded into the merge; a finished run's slot is listed in `free`.
    loaded: Vec<PostingRun>,
    free: Vec<usize>,
    heap: BinaryHeap<Reverse<Head<'t>>>,
    cursor: BlockCursor<'t>,
    since: u64,
    until: u64,
    /// The key prefix every run shares (the group, and for `types` the type); its
    /// length is the offset of `first_hlc` in the keys.
    prefix: Vec<u8>,
}

fn corrupt(index: Index, reason: String) -> Error {
    Error::CorruptTable {
        table: match index {
            Index::Types => "types",
            Index::Times => "times",
        },
        reason,
    }
}

impl<'t> Merge<'t> {
    /// Merges the runs of `index` whose keys start with `prefix` (the group, plus the
    /// type for `types`), for events with `since <= hlc < until`, as an iterator.
    pub(crate) fn new(
        tables: &'t Tables,
        txn: &'t RoTxn<'t>,
        index: Index,
        prefix: &[u8],
        since: Hlc,
        until: Hlc,
    ) -> Result<Steps<Self>> {
        let (since, until) = (since.as_u64(), until.as_u64());
        let db = match index {
            Index::Types => &tables.types,
            Index::Times => &tables.times,
        };
        let mut lo = prefix.to_vec();
        lo.extend_from_slice(&since.saturating_sub(MAX_SPAN).to_be_bytes());
        let mut hi = prefix.to_vec();
        hi.extend_from_slice(&until.to_be_bytes());
        let range = (
            std::ops::Bound::Included(&lo[..]),
            std::ops::Bound::Excluded(&hi[..]),
        );
        Ok(Steps::new(Merge {
            tables,
            index,
            runs: db.range(txn, &range)?.peekable(),
            loaded: Vec::new(),
            free: Vec::new(),
            heap: BinaryHeap::new(),
            cursor: BlockCursor::new(txn),
            since,
            until,
            prefix: prefix.to_vec(),
        }))
    }

    /// First HLC of the next unloaded run.
    fn peek_first_hlc(&mut self) -> Result<Option<u64>> {
        match self.runs.peek() {
            None => Ok(None),
            Some(Err(_)) => match self.runs.next() {
                Some(Err(e)) => Err(e.into()),
                _ => Ok(None),
            },
            Some(Ok((k, _))) => k
                .get(self.prefix.len()..self.prefix.len() + 8)
                .and_then(|b| <[u8; 8]>::try_from(b).ok())
                .map(|b| Some(u64::from_be_bytes(b)))
                .ok_or_else(|| corrupt(self.index, format!("key of {} bytes", k.len()))),
        }
    }

    /// The event at position `pos` of loaded run `run`, and its order.
    fn read(&mut self, run: usize, pos: usize) -> Result<Option<(StoredEvent<'t>, Order)>> {
        let Some(&local) = self.loaded[run].locals.get(pos) else {
            return Ok(None);
        };
        let bytes = self
            .cursor
            .get(self.tables, local)?
            .ok_or_else(|| corrupt(self.index, format!("run points at missing event {local}")))?;
        let event = EventRef::decode(bytes).map_err(|source| Error::CorruptEvent {
            local_seq: local,
            source,
        })?;
        let h = event.header;
        // The event must belong to the stream the query asked for.
        let stream_ok = match self.index {
            Index::Types => {
                self.prefix[..32] == h.group.0 && self.prefix[32..] == h.event_type.to_be_bytes()
            }
            Index::Times => self.prefix[..] == h.group.0,
        };
        if !stream_ok {
            return Err(corrupt(
                self.index,
                format!("run points at event {local} of another stream"),
            ));
        }
        let order = match self.index {
            Index::Types => (h.hlc.as_u64(), [0; 32], local),
            Index::Times => (h.hlc.as_u64(), h.author.0, h.seq),
        };
        if order.0 > self.loaded[run].last_hlc {
            return Err(corrupt(
                self.index,
                format!("event {local} is past its run's end"),
            ));
        }
        Ok(Some((
            StoredEvent {
                local_seq: local,
                event,
            },
            order,
        )))
    }

    /// Pushes the first event of run `run` at or after `pos` with `hlc >= since`, or
    /// frees the run's slot if there is none.
    fn push_from(&mut self, run: usize, mut pos: usize) -> Result<()> {
        while let Some((event, order)) = self.read(run, pos)? {
            if order.0 >= self.since {
                self.heap.push(Reverse(Head {
                    order,
                    run,
                    pos,
                    event,
                }));
                return Ok(());
            }
            pos += 1;
        }
        self.release(run);
        Ok(())
    }

    fn release(&mut self, run: usize) {
        self.loaded[run].locals = Vec::new();
        self.free.push(run);
    }

    fn load(&mut self, run: PostingRun) -> usize {
        match self.free.pop() {
            Some(i) => {
                self.loaded[i] = run;
                i
            }
            None => {
                self.loaded.push(run);
                self.loaded.len() - 1
            }
        }
    }
}

impl<'t> Step for Merge<'t> {
    type Item = StoredEvent<'t>;

    fn step(&mut self) -> Result<Option<StoredEvent<'t>>> {
        // Load every run that may start at or before the smallest head.
        while let Some(first) = self.peek_first_hlc()? {
            if self.heap.peek().is_some_and(|Reverse(h)| first > h.order.0) {
                break;
            }
            let Some(item) = self.runs.next() else { break };
            let (_, v) = item?;
            let run = PostingRun::decode(v)
                .ok_or_else(|| corrupt(self.index, format!("bad run of {} bytes", v.len())))?;
            let slot = self.load(run);
            self.push_from(slot, 0)?;
        }
        let Some(Reverse(head)) = self.heap.pop() else {
            return Ok(None);
        };
        if head.order.0 >= self.until {
            return Ok(None);
        }
        match self.read(head.run, head.pos + 1)? {
            Some((_, order)) if order < head.order => {
                return Err(corrupt(self.index, "run out of order".into()));
            }
            Some((event, order)) => self.heap.push(Reverse(Head {
                order,
                run: head.run,
                pos: head.pos + 1,
                event,
            })),
            None => self.release(head.run),
        }
        Ok(Some(head.event))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A run that lists an event of another type is a corrupt table, not a result.
    #[test]
    fn runs_pointing_into_another_stream_are_errors() {
        use crate::options::Durability;
        use crate::store::{be, open_env};
        use xaeroflux_core::event::encode_into;
        use xaeroflux_core::{AuthorId, BlockBuilder, EventHeader, GroupId};

        let dir = tempfile::tempdir().unwrap();
        let (env, t) = open_env(dir.path(), 16 << 20, Durability::Batched).unwrap();
        let group = GroupId([7; 32]);
        let mut block = BlockBuilder::new();
        for (seq, ty) in [(0u64, 1000u32), (1, 1001)] {
            let h = EventHeader {
                event_type: ty,
                group,
                author: AuthorId([9; 32]),
                seq,
                hlc: Hlc::from_u64(10 + seq),
            };
            block.push_with(|buf| encode_into(&h, b"payload", buf));
        }
        let run = PostingRun {
            last_hlc: 11,
            locals: vec![0, 1],
        };
        let mut value = Vec::new();
        run.encode(&mut value);
        let mut wtxn = env.write_txn().unwrap();
        t.events.put(&mut wtxn, &be(0), &block.to_vec()).unwrap();
        t.types
            .put(&mut wtxn, &type_key(&group.0, 1000, 10, 0), &value)
            .unwrap();
        wtxn.commit().unwrap();
        let rtxn = env.read_txn().unwrap();
        let mut prefix = group.0.to_vec();
        prefix.extend_from_slice(&1000u32.to_be_bytes());
        let until = Hlc::from_u64(u64::MAX);
        let got: Vec<_> = Merge::new(&t, &rtxn, Index::Types, &prefix, Hlc::default(), until)
            .unwrap()
            .collect();
        // The merge stops at the error; it never yields the other type's event.
        assert!(
            got.iter()
                .all(|r| r.as_ref().map_or(true, |e| e.local_seq == 0))
        );
        assert!(matches!(
            got.last(),
            Some(Err(Error::CorruptTable { table: "types", .. }))
        ));
    }

    #[test]
    fn builder_splits_runs_at_their_limits() {
        let mut b: RunBuilder<u8> = RunBuilder::default();
        let key = |l: u64| move || l.to_be_bytes().to_vec();
        // Stream 0: a decreasing HLC and a span past MAX_SPAN each start a run.
        b.push(0, key(0), 100, 0);
        b.push(0, key(1), 200, 1);
        b.push(1, key(2), 150, 2);
        b.push(0, key(3), 150, 3);
        b.push(0, key(4), 150 + MAX_SPAN + 1, 4);
        let runs: Vec<(u64, Vec<u64>)> = b
            .finish()
            .iter()
            .map(|(k, r)| {
                (
                    u64::from_be_bytes(k[..].try_into().unwrap()),
                    r.locals.clone(),
                )
            })
            .collect();
        assert_eq!(
            runs,
            vec![(0, vec![0, 1]), (2, vec![2]), (3, vec![3]), (4, vec![4])]
        );
    }
}
