//! The event-id -> local-sequence index, kept off the commit path.
//!
//! Event ids are random (BLAKE3), so inserting each into a B-tree as it commits touches a
//! random leaf page per event (measured: ~10x slower commits, ~8x more bytes written).
//! Instead, ids of recent events live in memory and are written to the `hashes` table in
//! sorted chunks. The `hash_index_mark` meta key records up to which local sequence the
//! table is complete; on open, events from the mark on are re-hashed into memory.
//!
//! Lookup protocol (correct at every moment): check memory first, then a *fresh* read
//! transaction on the table. The writer removes ids from memory only after the chunk
//! that holds them has committed, so an id missing from memory is in any transaction
//! opened after the check.
//!
//! The table holds sorted *runs* (a log-structured merge of sorted chunks): a flush
//! writes its chunk as a new run, sequentially, then merges adjacent runs like a binary
//! counter (O(log n) runs, each entry rewritten O(log n) times; a merge holds one part
//! of each run in memory). A flush does a bounded amount of merge work, about
//! `chunk * log2(table / chunk)` entries ([`merge_budget`]); a larger merge keeps its
//! position in the meta table and goes on at the next flushes, so no flush (and no
//! commit waiting behind it) rewrites the whole table. Inserting a chunk into one
//! B-tree instead touched nearly every leaf page of the table per flush and cost a
//! third of the write path.
//!
//! An entry is the id's first 8 bytes (its *prefix*) and the local sequence, 16 bytes,
//! big-endian. A run is stored in parts of at most [`PART_ENTRIES`] entries (more only
//! to keep equal prefixes in one part) under `run id u64 | first prefix u64`; the
//! `hash_runs` meta key lists the runs (`run id u64 | entries u64`, little-endian,
//! oldest first). A prefix is not unique, so a lookup confirms a hit by re-hashing the
//! event it points at.
use std::hash::Hasher;
use std::sync::{Mutex, RwLock};
use std::time::Duration;

use hashbrown::HashTable;
use std::sync::atomic::{AtomicU64, Ordering, fence};

use xaeroflux_core::{EventId, EventRef};

use std::ops::Bound;

use heed::{RoTxn, RwTxn};

use super::{Env0, Tables, meta_keys, meta_u64};
use crate::error::{Error, Result};

/// Hasher for maps keyed by [`EventId`]: ids are BLAKE3 outputs, already uniform, so
/// the first 8 bytes are the hash (SipHash over 32 bytes cost ~4% of the write path).
/// Anything else written to it (the slice length prefix) is mixed in cheaply.
#[derive(Default, Clone, Copy)]
pub(crate) struct IdHasher(u64);

impl Hasher for IdHasher {
    fn write(&mut self, bytes: &[u8]) {
        if let Some(head) = bytes.first_chunk::<8>() {
            self.0 ^= u64::from_le_bytes(*head);
        } else {
            for b in bytes {
                self.0 = self.0.rotate_left(8) ^ u64::from(*b);
            }
        }
    }
    fn write_usize(&mut self, _len: usize) {
        // Only the array length prefix of `[u8; 32]`: constant, carries no information.
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

/// Committed ids held in memory: the (id, local) pairs in commit order, and a hash
/// table of their offsets keyed by the id's prefix.
///
/// A `HashMap<EventId, u64>` spent most of its insert time on cache misses into 40-byte
/// buckets (about 20 MB at a full chunk) and on growing; here the pairs are appended
/// sequentially and the table holds 4-byte offsets (about 2.6 MB at a full chunk), and
/// both keep their allocations from chunk to chunk.
#[derive(Default)]
struct Generation {
    entries: Vec<(EventId, u64)>,
    offsets: HashTable<u32>,
}

impl Generation {
    /// Room for `n` ids (capped at 4M: a larger chunk grows as it fills). The table
    /// rounds its room up; the pairs get the same room, so a generation that passes
    /// the flush threshold by a commit's worth of ids grows neither.
    fn with_capacity(n: usize) -> Self {
        let offsets = HashTable::with_capacity(n.min(1 << 22));
        Generation {
            entries: Vec::with_capacity(offsets.capacity()),
            offsets,
        }
    }

    fn len(&self) -> usize {
        self.entries.len()
    }

    fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn extend(&mut self, new: &[(EventId, u64)]) {
        let start = self.entries.len();
        self.entries.extend_from_slice(new);
        let Generation { entries, offsets } = self;
        for (i, (id, _)) in entries.iter().enumerate().skip(start) {
            // A generation holds at most a few chunks of ids: far below 2^32.
            let offset = u32::try_from(i).unwrap_or(u32::MAX);
            offsets.insert_unique(prefix_of(id), offset, |o| {
                entries.get(*o as usize).map_or(0, |(id, _)| prefix_of(id))
            });
        }
    }

    fn get(&self, id: &EventId) -> Option<u64> {
        let entry = |o: &u32| self.entries.get(*o as usize);
        self.offsets
            .find(prefix_of(id), |o| entry(o).is_some_and(|(e, _)| e == id))
            .and_then(entry)
            .map(|(_, local)| *local)
    }

    fn clear(&mut self) {
        self.entries.clear();
        self.offsets.clear();
    }
}

/// The two in-memory generations: ids not yet handed to a flush, and the chunk being
/// flushed (kept until its transaction has committed).
#[derive(Default)]
struct Recent {
    live: Generation,
    flushing: Generation,
}

/// Most entries in one part of a run (64 KiB).
pub(crate) const PART_ENTRIES: usize = 4096;
/// Bytes of one entry: prefix and local sequence.
const ENTRY: usize = 16;

/// One sorted run of the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct RunMeta {
    id: u64,
    entries: u64,
}

fn corrupt(reason: String) -> Error {
    Error::CorruptTable {
        table: "hashes",
        reason,
    }
}

fn prefix_of(id: &EventId) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&id.0[..8]);
    u64::from_be_bytes(b)
}

/// Writes the (prefix, local) entries of `pairs` to `out`, sorted.
///
/// A counting sort on the prefix's top bits, then each bucket sorted on its own: ids are
/// BLAKE3 output, so a bucket holds a few entries, and the whole costs two passes over
/// the chunk (3.7-4.1 ms for 262,144 entries, against 6.1 ms for a comparison sort,
/// which was about 3% of a 64 B write run's CPU). Ids ground to share their top bits only make some buckets larger, still sorted
/// correctly. `pairs` is in commit order, so equal prefixes come out by local sequence.
fn sort_entries(pairs: &[(EventId, u64)], out: &mut Vec<(u64, u64)>) {
    out.clear();
    // About four entries per bucket, at most 2^16 buckets (256 KiB of counts).
    let bits = (usize::BITS - pairs.len().leading_zeros())
        .saturating_sub(2)
        .clamp(1, 16);
    let shift = 64 - bits;
    let mut starts = vec![0usize; (1 << bits) + 1];
    for (id, _) in pairs {
        starts[(prefix_of(id) >> shift) as usize + 1] += 1;
    }
    for i in 1..starts.len() {
        starts[i] += starts[i - 1];
    }
    out.resize(pairs.len(), (0, 0));
    let mut next = starts.clone();
    for (id, local) in pairs {
        let prefix = prefix_of(id);
        let slot = &mut next[(prefix >> shift) as usize];
        out[*slot] = (prefix, *local);
        *slot += 1;
    }
    for w in starts.windows(2) {
        let bucket = &mut out[w[0]..w[1]];
        if bucket.len() > 1 {
            bucket.sort_unstable();
        }
    }
}

fn part_key(run: u64, prefix: u64) -> [u8; 16] {
    let mut k = [0u8; 16];
    k[..8].copy_from_slice(&run.to_be_bytes());
    k[8..].copy_from_slice(&prefix.to_be_bytes());
    k
}

/// The lowest and highest key any part of run `id` can have.
fn run_bounds(id: u64) -> ([u8; 16], [u8; 16]) {
    (part_key(id, 0), part_key(id, u64::MAX))
}

fn entry(part: &[u8], i: usize) -> (u64, u64) {
    let e = &part[i * ENTRY..(i + 1) * ENTRY];
    let word = |b: &[u8]| {
        let mut w = [0u8; 8];
        w.copy_from_slice(b);
        u64::from_be_bytes(w)
    };
    (word(&e[..8]), word(&e[8..]))
}

/// The runs listed in the meta table, oldest first.
fn read_runs(t: &Tables, txn: &RoTxn<'_>) -> Result<Vec<RunMeta>> {
    let Some(v) = t.meta.get(txn, meta_keys::HASH_RUNS)? else {
        return Ok(Vec::new());
    };
    if v.len() % 16 != 0 {
        return Err(corrupt(format!("run list of {} bytes", v.len())));
    }
    Ok(v.chunks_exact(16)
        .map(|c| {
            let (id, n) = c.split_at(8);
            RunMeta {
                id: u64::from_le_bytes(id.try_into().unwrap_or_default()),
                entries: u64::from_le_bytes(n.try_into().unwrap_or_default()),
            }
        })
        .collect())
}

fn write_runs(t: &Tables, wtxn: &mut RwTxn<'_>, runs: &[RunMeta]) -> Result<()> {
    let mut v = Vec::with_capacity(runs.len() * 16);
    for r in runs {
        v.extend_from_slice(&r.id.to_le_bytes());
        v.extend_from_slice(&r.entries.to_le_bytes());
    }
    t.meta.put(wtxn, meta_keys::HASH_RUNS, &v)?;
    Ok(())
}

/// Writes sorted `entries` as run `id`.
fn put_run(t: &Tables, wtxn: &mut RwTxn<'_>, id: u64, entries: &[(u64, u64)]) -> Result<()> {
    let mut buf = Vec::with_capacity(PART_ENTRIES * ENTRY);
    let mut i = 0;
    while i < entries.len() {
        let mut end = (i + PART_ENTRIES).min(entries.len());
        while end < entries.len() && entries[end].0 == entries[end - 1].0 {
            end += 1;
        }
        buf.clear();
        for (prefix, local) in &entries[i..end] {
            buf.extend_from_slice(&prefix.to_be_bytes());
            buf.extend_from_slice(&local.to_be_bytes());
        }
        t.hashes.put(wtxn, &part_key(id, entries[i].0), &buf)?;
        i = end;
    }
    Ok(())
}

/// Reads a run part by part, so a merge holds one part of each input in memory.
struct RunReader {
    id: u64,
    part: Vec<(u64, u64)>,
    pos: usize,
    /// Key of the part in `part` (the next one is read after it).
    at: Option<[u8; 16]>,
    last: Option<(u64, u64)>,
    /// Keys of the parts read to their end.
    consumed: Vec<[u8; 16]>,
    /// The last part has been read.
    done: bool,
}

impl RunReader {
    fn new(id: u64) -> Self {
        RunReader {
            id,
            part: Vec::new(),
            pos: 0,
            at: None,
            last: None,
            consumed: Vec::new(),
            done: false,
        }
    }

    /// Skips the entries with a prefix below `from`.
    fn skip_below(&mut self, t: &Tables, txn: &RoTxn<'_>, from: u64) -> Result<()> {
        while self.peek(t, txn)?.is_some_and(|e| e.0 < from) {
            self.advance();
        }
        Ok(())
    }

    /// The next entry (checked to be in order), reading the next part when needed.
    fn peek(&mut self, t: &Tables, txn: &RoTxn<'_>) -> Result<Option<(u64, u64)>> {
        if self.pos == self.part.len() {
            self.load(t, txn)?;
        }
        Ok(self.part.get(self.pos).copied())
    }

    fn advance(&mut self) {
        self.pos += 1;
    }

    fn load(&mut self, t: &Tables, txn: &RoTxn<'_>) -> Result<()> {
        self.part.clear();
        self.pos = 0;
        if self.done {
            return Ok(());
        }
        self.consumed.extend(self.at);
        let (first, end) = run_bounds(self.id);
        let start = match &self.at {
            Some(k) => Bound::Excluded(&k[..]),
            None => Bound::Included(&first[..]),
        };
        let Some(item) = t
            .hashes
            .range(txn, &(start, Bound::Included(&end[..])))?
            .next()
        else {
            self.done = true;
            return Ok(());
        };
        let (k, v) = item?;
        let id = self.id;
        if v.is_empty() || v.len() % ENTRY != 0 {
            return Err(corrupt(format!("part of {} bytes in run {id}", v.len())));
        }
        for i in 0..v.len() / ENTRY {
            let e = entry(v, i);
            if self.last.is_some_and(|last| last >= e) {
                return Err(corrupt(format!("run {id} out of order")));
            }
            self.last = Some(e);
            self.part.push(e);
        }
        self.at = Some(
            k.try_into()
                .map_err(|_| corrupt(format!("key of {} bytes", k.len())))?,
        );
        Ok(())
    }
}

/// Every entry of run `id`, in order (checked).
#[cfg(test)]
fn read_run(t: &Tables, txn: &RoTxn<'_>, id: u64) -> Result<Vec<(u64, u64)>> {
    let mut r = RunReader::new(id);
    let mut out = Vec::new();
    while let Some(e) = r.peek(t, txn)? {
        out.push(e);
        r.advance();
    }
    Ok(out)
}

/// A merge of two adjacent runs in progress, kept in the meta table (`hash_merge`,
/// five little-endian u64s, absent when no merge runs).
///
/// Every input entry with a prefix below `from` is in run `out` (`written` entries so
/// far); the rest are still in the inputs. Input parts read to their end are deleted
/// as the merge goes, so an entry may be in `out` and in the one partly merged part of
/// an input at once: lookups search both inputs and `out`, and a duplicate hit is the
/// same event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Merge {
    older: u64,
    newer: u64,
    out: u64,
    written: u64,
    from: u64,
}

impl Merge {
    fn encode(&self) -> [u8; 40] {
        let mut v = [0u8; 40];
        let words = [self.older, self.newer, self.out, self.written, self.from];
        for (c, w) in v.chunks_exact_mut(8).zip(words) {
            c.copy_from_slice(&w.to_le_bytes());
        }
        v
    }

    fn decode(v: &[u8]) -> Result<Self> {
        let bad = || corrupt(format!("merge state of {} bytes", v.len()));
        let (words, rest) = v.as_chunks::<8>();
        let [older, newer, out, written, from] = words else {
            return Err(bad());
        };
        if !rest.is_empty() {
            return Err(bad());
        }
        let w = |b: &[u8; 8]| u64::from_le_bytes(*b);
        Ok(Merge {
            older: w(older),
            newer: w(newer),
            out: w(out),
            written: w(written),
            from: w(from),
        })
    }
}

fn read_merge(t: &Tables, txn: &RoTxn<'_>) -> Result<Option<Merge>> {
    t.meta
        .get(txn, meta_keys::HASH_MERGE)?
        .map(Merge::decode)
        .transpose()
}

/// Advances `m` by about `budget` input entries (more only to finish a part, which
/// never ends between equal prefixes, so every part of `out` but its last holds at
/// least [`PART_ENTRIES`]). Returns the entries merged and whether the inputs are
/// exhausted; deletes the input parts it read to their end.
fn merge_step(t: &Tables, wtxn: &mut RwTxn<'_>, m: &mut Merge, budget: u64) -> Result<(u64, bool)> {
    let (mut ra, mut rb) = (RunReader::new(m.older), RunReader::new(m.newer));
    ra.skip_below(t, wtxn, m.from)?;
    rb.skip_below(t, wtxn, m.from)?;
    let mut part: Vec<(u64, u64)> = Vec::with_capacity(PART_ENTRIES + 1);
    let mut merged = 0u64;
    let finished = loop {
        let next = match (ra.peek(t, wtxn)?, rb.peek(t, wtxn)?) {
            (None, None) => break true,
            (Some(x), Some(y)) if x <= y => x,
            (Some(x), None) => x,
            (_, Some(y)) => y,
        };
        // A part ends at a full size, but never between equal prefixes.
        if part.len() >= PART_ENTRIES && part.last().is_some_and(|l| l.0 != next.0) {
            put_run(t, wtxn, m.out, &part)?;
            m.written += part.len() as u64;
            part.clear();
            m.from = next.0;
            if merged >= budget {
                break false;
            }
        }
        if ra.peek(t, wtxn)? == Some(next) {
            ra.advance();
        } else {
            rb.advance();
        }
        part.push(next);
        merged += 1;
    };
    if finished {
        put_run(t, wtxn, m.out, &part)?;
        m.written += part.len() as u64;
    }
    for key in ra.consumed.iter().chain(&rb.consumed) {
        t.hashes.delete(wtxn, key)?;
    }
    Ok((merged, finished))
}

/// Merges runs `a` and `b` into the new run `out` in one go; returns its entries.
#[cfg(test)]
fn merge_runs(t: &Tables, wtxn: &mut RwTxn<'_>, a: u64, b: u64, out: u64) -> Result<u64> {
    let mut m = Merge {
        older: a,
        newer: b,
        out,
        written: 0,
        from: 0,
    };
    merge_step(t, wtxn, &mut m, u64::MAX)?;
    Ok(m.written)
}

/// Deletes every part of run `id`.
fn delete_run(t: &Tables, wtxn: &mut RwTxn<'_>, id: u64) -> Result<()> {
    let (first, last) = run_bounds(id);
    let range = (Bound::Included(&first[..]), Bound::Included(&last[..]));
    t.hashes.delete_range(wtxn, &range)?;
    Ok(())
}

/// Merge work for a flush of `chunk` entries into a table of `total`: enough to keep up
/// with a binary counter, which rewrites each entry once per doubling of the table
/// (about `log2(total / chunk)` times), so no flush rewrites the whole table at once.
fn merge_budget(chunk: u64, total: u64) -> u64 {
    let doublings = u64::from((total / chunk.max(1)).max(1).ilog2());
    chunk.max(PART_ENTRIES as u64) * (doublings + 2)
}

/// Runs merges for one flush, `budget` input entries in all.
///
/// The binary counter merges the newest adjacent pair whose newer run holds at least as
/// many entries as the older. First, such pairs that fit in what is left of the budget
/// are merged whole (they need no saved state); then the merge in progress, or else
/// the next pair (too large to merge whole), advances by the rest. Small merges thus
/// keep going while a large one takes many flushes, and the runs stay about
/// `2 * log2(table / chunk)`.
fn merge_some(
    t: &Tables,
    wtxn: &mut RwTxn<'_>,
    runs: &mut Vec<RunMeta>,
    next_id: &mut u64,
    mut budget: u64,
) -> Result<()> {
    let mut current = read_merge(t, wtxn)?;
    // The newest pair the counter calls for, leaving out the runs being merged.
    let next_pair = |runs: &[RunMeta], current: Option<Merge>| {
        let busy = |id: u64| current.is_some_and(|m| m.older == id || m.newer == id);
        runs.windows(2)
            .rposition(|w| w[1].entries >= w[0].entries && !busy(w[0].id) && !busy(w[1].id))
    };
    let mut start = |runs: &[RunMeta], i: usize| -> Option<Merge> {
        let m = Merge {
            older: runs.get(i)?.id,
            newer: runs.get(i + 1)?.id,
            out: *next_id,
            written: 0,
            from: 0,
        };
        *next_id += 1;
        Some(m)
    };
    while let Some(i) = next_pair(runs, current) {
        let size = runs
            .get(i..i + 2)
            .map_or(u64::MAX, |p| p[0].entries + p[1].entries);
        if size > budget {
            break;
        }
        let Some(mut m) = start(runs, i) else { break };
        merge_step(t, wtxn, &mut m, u64::MAX)?;
        finish_merge(t, wtxn, runs, &m)?;
        budget -= size;
    }
    if current.is_none() {
        current = next_pair(runs, current).and_then(|i| start(runs, i));
    }
    if let Some(mut m) = current.take().filter(|_| budget > 0) {
        let (_, finished) = merge_step(t, wtxn, &mut m, budget)?;
        if finished {
            finish_merge(t, wtxn, runs, &m)?;
        } else {
            current = Some(m);
        }
    }
    match current {
        Some(m) => t.meta.put(wtxn, meta_keys::HASH_MERGE, &m.encode())?,
        None => {
            t.meta.delete(wtxn, meta_keys::HASH_MERGE)?;
        }
    }
    Ok(())
}

/// The runs that may hold `prefix`, newest first: every listed run, except that while a
/// merge runs, a prefix below its `from` is only in its output (or, at most, also in a
/// partly merged input part) and any other prefix only in its inputs.
fn searched_runs(runs: &[RunMeta], merge: Option<Merge>, prefix: u64) -> impl Iterator<Item = u64> {
    let merged = merge.is_some_and(|m| prefix < m.from);
    let skip = move |id: u64| merged && merge.is_some_and(|m| id == m.older || id == m.newer);
    let out = merge.filter(|_| merged).map(|m| m.out);
    runs.iter()
        .rev()
        .map(|r| r.id)
        .filter(move |id| !skip(*id))
        .chain(out)
}

/// Replaces the inputs of the finished merge `m` with its output in `runs`, and deletes
/// what is left of them.
fn finish_merge(
    t: &Tables,
    wtxn: &mut RwTxn<'_>,
    runs: &mut Vec<RunMeta>,
    m: &Merge,
) -> Result<()> {
    let at = runs
        .iter()
        .position(|r| r.id == m.older)
        .filter(|i| runs.get(i + 1).is_some_and(|r| r.id == m.newer))
        .ok_or_else(|| {
            corrupt(format!(
                "merged runs {} and {} not listed",
                m.older, m.newer
            ))
        })?;
    delete_run(t, wtxn, m.older)?;
    delete_run(t, wtxn, m.newer)?;
    runs.splice(
        at..at + 2,
        [RunMeta {
            id: m.out,
            entries: m.written,
        }],
    );
    Ok(())
}

/// Local sequences of run `id` under `prefix`.
fn run_lookup(t: &Tables, txn: &RoTxn<'_>, id: u64, prefix: u64) -> Result<Vec<u64>> {
    let Some((k, part)) = t
        .hashes
        .get_lower_than_or_equal_to(txn, &part_key(id, prefix))?
    else {
        return Ok(Vec::new());
    };
    if k.get(..8) != Some(&id.to_be_bytes()[..]) {
        return Ok(Vec::new());
    }
    if part.is_empty() || part.len() % ENTRY != 0 {
        return Err(corrupt(format!("part of {} bytes in run {id}", part.len())));
    }
    let n = part.len() / ENTRY;
    // First entry with a prefix >= `prefix`.
    let (mut lo, mut hi) = (0, n);
    while lo < hi {
        let mid = (lo + hi) / 2;
        if entry(part, mid).0 < prefix {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    Ok((lo..n)
        .map(|i| entry(part, i))
        .take_while(|e| e.0 == prefix)
        .map(|e| e.1)
        .collect())
}

/// The id of the event stored at `local_seq`, if any.
fn stored_id(t: &Tables, txn: &RoTxn<'_>, local_seq: u64) -> Result<Option<EventId>> {
    match super::blocks::event_at(t, txn, local_seq)? {
        Some(v) => Ok(Some(
            EventRef::decode(v)
                .map_err(|source| Error::CorruptEvent { local_seq, source })?
                .id(),
        )),
        None => Ok(None),
    }
}

/// Slots of the id hand-off (see [`HashIndex::offer`]); a power of two.
const OFFER_SLOTS: usize = 1 << 14;
/// Tag of a slot being written.
const OFFER_BUSY: u64 = u64::MAX;

/// One id handed from a producer to the storage writer, guarded like a seqlock:
/// `tag` is `ticket + 1` when `words` hold that ticket's id, `OFFER_BUSY` while a
/// producer (which claims the slot by compare-exchange) writes it.
#[derive(Default)]
struct OfferSlot {
    tag: AtomicU64,
    /// The id, then its MMR leaf hash.
    words: [AtomicU64; 8],
}

/// In-memory part of the hash index.
pub(crate) struct HashIndex {
    recent: RwLock<Recent>,
    /// The longest flush since open, in microseconds (reported by `stats`).
    longest_flush_us: AtomicU64,
    /// The sorted (prefix, local) entries of a flush, reused from flush to flush.
    sorted: Mutex<Vec<(u64, u64)>>,
    /// Ids computed by `write_event` callers, by write ticket, so the writer need not
    /// hash each event a second time. Best effort: a missing or overwritten entry
    /// only means the writer hashes the event itself.
    offered: Box<[OfferSlot]>,
}

impl Default for HashIndex {
    fn default() -> Self {
        HashIndex {
            recent: RwLock::default(),
            longest_flush_us: AtomicU64::new(0),
            sorted: Mutex::default(),
            offered: (0..OFFER_SLOTS).map(|_| OfferSlot::default()).collect(),
        }
    }
}

impl HashIndex {
    /// Rebuilds the in-memory part from the events at and after the mark, with room
    /// for `chunk` ids per generation (the flush threshold).
    pub(crate) fn open(env: &Env0, t: &Tables, chunk: usize) -> Result<Self> {
        let rtxn = env.read_txn()?;
        let mark = meta_u64(t, &rtxn, meta_keys::HASH_MARK)?;
        let mut live = Generation::with_capacity(chunk);
        let mut batch = Vec::with_capacity(4096);
        for item in super::blocks::events_from(t, &rtxn, mark)? {
            let (local_seq, v) = item?;
            let ev =
                EventRef::decode(v).map_err(|source| Error::CorruptEvent { local_seq, source })?;
            batch.push((ev.id(), local_seq));
            if batch.len() == batch.capacity() {
                live.extend(&batch);
                batch.clear();
            }
        }
        live.extend(&batch);
        Ok(HashIndex {
            recent: RwLock::new(Recent {
                live,
                flushing: Generation::with_capacity(chunk),
            }),
            ..HashIndex::default()
        })
    }

    /// Records the id a producer computed for write ticket `ticket`.
    pub(crate) fn offer(&self, ticket: u64, id: &EventId, leaf: &[u8; 32]) {
        let slot = &self.offered[ticket as usize % OFFER_SLOTS];
        let cur = slot.tag.load(Ordering::Relaxed);
        if cur == OFFER_BUSY
            || slot
                .tag
                .compare_exchange(cur, OFFER_BUSY, Ordering::Acquire, Ordering::Relaxed)
                .is_err()
        {
            return; // another producer is writing this slot: the writer will hash.
        }
        fence(Ordering::Release);
        let bytes = id.0.chunks_exact(8).chain(leaf.chunks_exact(8));
        for (w, c) in slot.words.iter().zip(bytes) {
            let mut b = [0u8; 8];
            b.copy_from_slice(c);
            w.store(u64::from_le_bytes(b), Ordering::Relaxed);
        }
        slot.tag.store(ticket.wrapping_add(1), Ordering::Release);
    }

    /// The id and leaf hash offered for `ticket`, if still there and not being
    /// overwritten.
    pub(crate) fn offered(&self, ticket: u64) -> Option<(EventId, [u8; 32])> {
        let slot = &self.offered[ticket as usize % OFFER_SLOTS];
        let want = ticket.wrapping_add(1);
        if slot.tag.load(Ordering::Acquire) != want {
            return None;
        }
        let mut bytes = [0u8; 64];
        for (w, c) in slot.words.iter().zip(bytes.chunks_exact_mut(8)) {
            c.copy_from_slice(&w.load(Ordering::Relaxed).to_le_bytes());
        }
        fence(Ordering::Acquire);
        if slot.tag.load(Ordering::Relaxed) != want {
            return None;
        }
        let (id, leaf) = bytes.split_at(32);
        Some((EventId(id.try_into().ok()?), leaf.try_into().ok()?))
    }

    /// Local sequence of `id`, if stored.
    pub(crate) fn lookup(&self, env: &Env0, t: &Tables, id: &EventId) -> Result<Option<u64>> {
        {
            let r = self.recent.read().unwrap_or_else(|p| p.into_inner());
            if let Some(s) = r.live.get(id).or_else(|| r.flushing.get(id)) {
                return Ok(Some(s));
            }
        }
        let rtxn = env.read_txn()?;
        let prefix = prefix_of(id);
        let merge = read_merge(t, &rtxn)?;
        let runs = read_runs(t, &rtxn)?;
        for run in searched_runs(&runs, merge, prefix) {
            for local in run_lookup(t, &rtxn, run, prefix)? {
                if stored_id(t, &rtxn, local)? == Some(*id) {
                    return Ok(Some(local));
                }
            }
        }
        Ok(None)
    }

    /// Adds committed entries.
    pub(crate) fn insert_committed(&self, entries: &[(EventId, u64)]) {
        let mut m = self.recent.write().unwrap_or_else(|p| p.into_inner());
        m.live.extend(entries);
    }

    /// Number of ids held only in memory.
    pub(crate) fn pending(&self) -> usize {
        let r = self.recent.read().unwrap_or_else(|p| p.into_inner());
        r.live.len() + r.flushing.len()
    }

    /// Writes every in-memory id (all are committed: the writer inserts only after its
    /// commit) to the table in one sorted transaction, moves the mark to `upto` (the
    /// writer's next local sequence), then drops them from memory. Until that commit
    /// they stay visible to `lookup` in the `flushing` generation. On error nothing is
    /// lost: the chunk is merged back and a later call retries.
    pub(crate) fn flush(&self, env: &Env0, t: &Tables, upto: u64) -> Result<()> {
        let started = std::time::Instant::now();
        let mut entries = self.sorted.lock().unwrap_or_else(|p| p.into_inner());
        {
            let mut r = self.recent.write().unwrap_or_else(|p| p.into_inner());
            let Recent { live, flushing } = &mut *r;
            if flushing.is_empty() {
                std::mem::swap(live, flushing);
            } else {
                // A previous attempt failed: retry with everything.
                flushing.extend(&live.entries);
                live.clear();
            }
            debug_assert!(flushing.entries.iter().all(|(_, s)| *s < upto));
        }
        {
            // Lookups only read the generations: they may go on while this sorts.
            let r = self.recent.read().unwrap_or_else(|p| p.into_inner());
            sort_entries(&r.flushing.entries, &mut entries);
        }
        if entries.is_empty() {
            return Ok(());
        }
        let entries = &*entries;
        let write = || -> Result<()> {
            let mut wtxn = env.write_txn()?;
            let mut runs = read_runs(t, &wtxn)?;
            let merge = read_merge(t, &wtxn)?;
            let mut next_id = runs
                .iter()
                .map(|r| r.id + 1)
                .chain(merge.map(|m| m.out + 1))
                .max()
                .unwrap_or(0);
            put_run(t, &mut wtxn, next_id, entries)?;
            runs.push(RunMeta {
                id: next_id,
                entries: entries.len() as u64,
            });
            next_id += 1;
            let total = runs.iter().map(|r| r.entries).sum();
            let budget = merge_budget(entries.len() as u64, total);
            merge_some(t, &mut wtxn, &mut runs, &mut next_id, budget)?;
            write_runs(t, &mut wtxn, &runs)?;
            t.meta
                .put(&mut wtxn, meta_keys::HASH_MARK, &upto.to_le_bytes())?;
            wtxn.commit()?;
            Ok(())
        };
        let res = write();
        let mut r = self.recent.write().unwrap_or_else(|p| p.into_inner());
        match res {
            Ok(()) => {
                // Keep the allocations: the next flush swaps them in as the live
                // generation, which then fills without growing.
                r.flushing.clear();
                let us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
                self.longest_flush_us.fetch_max(us, Ordering::Relaxed);
                Ok(())
            }
            Err(e) => {
                let Recent { live, flushing } = &mut *r;
                live.extend(&flushing.entries);
                flushing.clear();
                Err(e)
            }
        }
    }

    /// The longest flush since open, and the table's runs (a merge in progress counts
    /// its output as one more).
    pub(crate) fn table_stats(&self, env: &Env0, t: &Tables) -> Result<(Duration, usize)> {
        let rtxn = env.read_txn()?;
        let runs = read_runs(t, &rtxn)?.len() + usize::from(read_merge(t, &rtxn)?.is_some());
        let us = self.longest_flush_us.load(Ordering::Relaxed);
        Ok((Duration::from_micros(us), runs))
    }

    /// Bytes the next flush may need in the map: every page of the table may be copied.
    pub(crate) fn flush_room(&self, env: &Env0, t: &Tables) -> Result<usize> {
        let rtxn = env.read_txn()?;
        let st = t.hashes.stat(&rtxn)?;
        let pages = st.branch_pages + st.leaf_pages + st.overflow_pages;
        Ok((pages * st.page_size as usize) * 2 + self.pending() * 128 + (4 << 20))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::options::Durability;
    use crate::store::be;
    use crate::store::open_env;
    use xaeroflux_core::event::encode_into;
    use xaeroflux_core::{AuthorId, EventHeader, GroupId, Hlc};

    /// A store whose `events` table holds `n` events in one block; returns their ids.
    fn store_with(n: u64) -> (tempfile::TempDir, Env0, Tables, Vec<EventId>) {
        let dir = tempfile::tempdir().unwrap();
        let (env, t) = open_env(dir.path(), 16 << 20, Durability::Batched).unwrap();
        let mut enc = Vec::new();
        let mut ids = Vec::new();
        let mut block = xaeroflux_core::BlockBuilder::new();
        for seq in 0..n {
            let header = EventHeader {
                event_type: 1000,
                group: GroupId([7; 32]),
                author: AuthorId([9; 32]),
                seq,
                hlc: Hlc::from_u64(seq + 1),
            };
            enc.clear();
            encode_into(&header, b"payload", &mut enc);
            ids.push(EventId(*blake3::hash(&enc).as_bytes()));
            block.push(&enc);
        }
        let mut wtxn = env.write_txn().unwrap();
        t.events.put(&mut wtxn, &be(0), &block.to_vec()).unwrap();
        wtxn.commit().unwrap();
        (dir, env, t, ids)
    }

    /// The in-memory generation finds every id it was given, across several extends,
    /// including ids that share a prefix, and nothing else; clearing keeps its room.
    #[test]
    fn generation_finds_exactly_its_ids() {
        let id = |i: u64| EventId(*blake3::hash(&i.to_le_bytes()).as_bytes());
        let mut g = Generation::with_capacity(1000);
        let room = g.offsets.capacity();
        let mut twin = id(7);
        twin.0[31] ^= 0xff; // same 8-byte prefix as id(7)
        let first: Vec<(EventId, u64)> = (0..700).map(|i| (id(i), 10 + i)).collect();
        g.extend(&first);
        g.extend(&[(twin, 5_000)]);
        let second: Vec<(EventId, u64)> = (700..1500).map(|i| (id(i), 10 + i)).collect();
        g.extend(&second);
        assert_eq!(g.len(), 1501);
        for i in 0..1500 {
            assert_eq!(g.get(&id(i)), Some(10 + i), "id {i}");
        }
        assert_eq!(g.get(&twin), Some(5_000));
        assert_eq!(g.get(&id(1500)), None);
        let mut near = id(3);
        near.0[20] ^= 1;
        assert_eq!(g.get(&near), None);
        g.clear();
        assert!(g.is_empty());
        assert_eq!(g.get(&id(3)), None);
        assert!(g.offsets.capacity() >= room);
    }

    /// Two sorted runs to merge: `lens[0]` even and `lens[1]` odd prefixes (locals from
    /// 0 and from 50,000), plus `extra[i]` entries of each under the prefix `shared`
    /// (locals from 100,000 and from 200,000).
    fn paired_runs(lens: [u64; 2], shared: u64, extra: [u64; 2]) -> [Vec<(u64, u64)>; 2] {
        let run = |i: u64| {
            let mut r: Vec<(u64, u64)> = (0..lens[i as usize])
                .map(|j| (2 * j + i, 50_000 * i + j))
                .collect();
            r.extend((0..extra[i as usize]).map(|j| (shared, 100_000 * (i + 1) + j)));
            r.sort_unstable();
            r
        };
        [run(0), run(1)]
    }

    /// Every part of run `run`, in key order.
    fn parts_of(t: &Tables, txn: &RoTxn<'_>, run: u64) -> Vec<Vec<u8>> {
        let (first, last) = run_bounds(run);
        let range = (Bound::Included(&first[..]), Bound::Included(&last[..]));
        t.hashes
            .range(txn, &range)
            .unwrap()
            .map(|e| e.unwrap().1.to_vec())
            .collect()
    }

    /// Entries are found by prefix and trusted only if the event re-hashes to the id:
    /// an entry under the same prefix that points elsewhere is skipped.
    #[test]
    fn prefix_hits_are_confirmed_by_rehashing() {
        let (_dir, env, t, ids) = store_with(2);
        let a = ids[0];
        // Shares `a`'s prefix but points at event 1 (a real collision needs ~2^32 ids).
        let mut fake = a;
        fake.0[31] ^= 1;
        let mut absent = a;
        absent.0[20] ^= 1;
        let idx = HashIndex::default();
        idx.insert_committed(&[(fake, 1), (a, 0)]);
        idx.flush(&env, &t, 2).unwrap();
        assert_eq!(idx.pending(), 0);
        let rtxn = env.read_txn().unwrap();
        assert_eq!(run_lookup(&t, &rtxn, 0, prefix_of(&a)).unwrap(), vec![0, 1]);
        drop(rtxn);
        assert_eq!(idx.lookup(&env, &t, &a).unwrap(), Some(0));
        assert_eq!(idx.lookup(&env, &t, &fake).unwrap(), None);
        assert_eq!(idx.lookup(&env, &t, &absent).unwrap(), None);
        assert_eq!(idx.lookup(&env, &t, &ids[1]).unwrap(), None);
    }

    /// Flushed chunks become runs that merge like a binary counter, and every id
    /// stays found through the merges.
    #[test]
    fn runs_merge_like_a_binary_counter() {
        let (_dir, env, t, ids) = store_with(40);
        let idx = HashIndex::default();
        let mut next = 0usize;
        let mut sizes = Vec::new();
        for chunk in [8, 8, 8, 4, 4, 8] {
            let entries: Vec<(EventId, u64)> =
                (next..next + chunk).map(|i| (ids[i], i as u64)).collect();
            idx.insert_committed(&entries);
            next += chunk;
            idx.flush(&env, &t, next as u64).unwrap();
            let rtxn = env.read_txn().unwrap();
            let runs = read_runs(&t, &rtxn).unwrap();
            sizes.push(runs.iter().map(|r| r.entries).collect::<Vec<_>>());
            let total: usize = runs
                .iter()
                .map(|r| read_run(&t, &rtxn, r.id).unwrap().len())
                .sum();
            assert_eq!(total, next);
            drop(rtxn);
            for (i, id) in ids.iter().enumerate() {
                let want = (i < next).then_some(i as u64);
                assert_eq!(
                    idx.lookup(&env, &t, id).unwrap(),
                    want,
                    "id {i} after {next}"
                );
            }
        }
        let expect: Vec<Vec<u64>> = vec![
            vec![8],
            vec![16],
            vec![16, 8],
            vec![16, 8, 4],
            vec![32],
            vec![32, 8],
        ];
        assert_eq!(sizes, expect);
    }

    /// Runs of many parts merge into one sorted run whose parts never split a prefix,
    /// and lookups of a repeated prefix return every entry.
    #[test]
    fn multi_part_runs_merge_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let (env, t) = open_env(dir.path(), 64 << 20, Durability::Batched).unwrap();
        // Run 0: even prefixes, 20 more entries under one shared prefix. Run 1: odd
        // prefixes, and 5 more under the shared prefix.
        // 8190 is entry 4095 of run 0 and about entry 8190 of the merged run: both
        // part boundaries (4096, 8192) fall inside its entries.
        let shared = 8190;
        let [a, b] = paired_runs([10_000, 7_000], shared, [20, 5]);
        let mut wtxn = env.write_txn().unwrap();
        put_run(&t, &mut wtxn, 0, &a).unwrap();
        put_run(&t, &mut wtxn, 1, &b).unwrap();
        let input = parts_of(&t, &wtxn, 0);
        let n = merge_runs(&t, &mut wtxn, 0, 1, 2).unwrap();
        wtxn.commit().unwrap();
        let mut want = [a, b].concat();
        want.sort_unstable();
        assert_eq!(n, want.len() as u64);
        let rtxn = env.read_txn().unwrap();
        assert_eq!(read_run(&t, &rtxn, 2).unwrap(), want);
        // The inputs' parts are deleted as they are merged.
        assert!(parts_of(&t, &rtxn, 0).is_empty() && parts_of(&t, &rtxn, 1).is_empty());
        // Parts: at least PART_ENTRIES each but the last, never splitting a prefix, in
        // the merged run and in run 0 (written by `put_run`).
        for (run, parts, count) in [(0, input, 3), (2, parts_of(&t, &rtxn, 2), 5)] {
            assert_eq!(parts.len(), count, "parts of run {run}");
            for w in parts.windows(2) {
                assert!(w[0].len() / ENTRY >= PART_ENTRIES);
                let last = entry(&w[0], w[0].len() / ENTRY - 1).0;
                assert_ne!(last, entry(&w[1], 0).0, "run {run} splits a prefix");
            }
        }
        let mut hits = run_lookup(&t, &rtxn, 2, shared).unwrap();
        hits.sort_unstable();
        let mut expect: Vec<u64> = want.iter().filter(|e| e.0 == shared).map(|e| e.1).collect();
        expect.sort_unstable();
        assert_eq!(hits.len(), 26);
        assert_eq!(hits, expect);
    }

    /// A merge larger than one flush's budget runs over several flushes: in every state
    /// in between, each entry is found (in `out` or in an input), every part of `out`
    /// but the last is full and none splits a prefix, the merged input parts are gone,
    /// and the state survives in the meta table until the merge ends.
    #[test]
    fn merges_advance_a_budget_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let (env, t) = open_env(dir.path(), 64 << 20, Durability::Batched).unwrap();
        // Two runs of about 20,000 entries (the newer one larger, so the counter merges
        // them); 300 entries share one prefix across both.
        let shared = 20_000;
        let [a, b] = paired_runs([20_000, 20_000], shared, [100, 200]);
        let mut want = [a.clone(), b.clone()].concat();
        want.sort_unstable();
        let mut runs = vec![
            RunMeta {
                id: 0,
                entries: a.len() as u64,
            },
            RunMeta {
                id: 1,
                entries: b.len() as u64,
            },
        ];
        let mut wtxn = env.write_txn().unwrap();
        put_run(&t, &mut wtxn, 0, &a).unwrap();
        put_run(&t, &mut wtxn, 1, &b).unwrap();
        wtxn.commit().unwrap();
        let mut next_id = 2;
        let mut steps = 0;
        loop {
            let mut wtxn = env.write_txn().unwrap();
            merge_some(&t, &mut wtxn, &mut runs, &mut next_id, 5_000).unwrap();
            wtxn.commit().unwrap();
            steps += 1;
            let rtxn = env.read_txn().unwrap();
            let merge = read_merge(&t, &rtxn).unwrap();
            for (prefix, local) in want
                .iter()
                .step_by(97)
                .chain(want.iter().filter(|e| e.0 == shared))
            {
                let found = searched_runs(&runs, merge, *prefix)
                    .any(|run| run_lookup(&t, &rtxn, run, *prefix).unwrap().contains(local));
                assert!(found, "entry ({prefix}, {local}) lost after step {steps}");
            }
            let Some(m) = merge else { break };
            assert_eq!((m.older, m.newer, m.out), (0, 1, 2));
            // Around `from`, where lookups switch from the output to the inputs.
            let at = want.partition_point(|e| e.0 < m.from);
            for (prefix, local) in &want[at.saturating_sub(3)..(at + 3).min(want.len())] {
                let found = searched_runs(&runs, merge, *prefix)
                    .any(|run| run_lookup(&t, &rtxn, run, *prefix).unwrap().contains(local));
                assert!(found, "entry ({prefix}, {local}) next to {} lost", m.from);
            }
            let out = read_run(&t, &rtxn, 2).unwrap();
            assert_eq!(out.len() as u64, m.written);
            assert!(out.iter().all(|e| e.0 < m.from));
            assert_eq!(out, want[..out.len()], "merged prefix of the union");
            // Input parts left: at most one with entries below `from`.
            for run in [0, 1] {
                let left = read_run(&t, &rtxn, run).unwrap();
                let below = left.iter().filter(|e| e.0 < m.from).count();
                assert!(
                    below < 2 * PART_ENTRIES,
                    "run {run} kept {below} merged entries"
                );
            }
        }
        assert!(steps >= 4, "the merge took {steps} steps");
        assert_eq!(
            runs,
            vec![RunMeta {
                id: 2,
                entries: want.len() as u64
            }]
        );
        let rtxn = env.read_txn().unwrap();
        assert_eq!(read_run(&t, &rtxn, 2).unwrap(), want);
        assert!(read_run(&t, &rtxn, 0).unwrap().is_empty());
        assert!(read_run(&t, &rtxn, 1).unwrap().is_empty());
        // Nothing else is left in the table.
        let out_parts = parts_of(&t, &rtxn, 2).len() as u64;
        assert_eq!(t.hashes.len(&rtxn).unwrap(), out_parts);
    }

    /// Flush after flush with the flush's budget: the runs stay few (small merges go on
    /// while a large one takes several flushes), a large merge does span flushes, and
    /// every entry stays findable.
    #[test]
    fn runs_stay_few_while_large_merges_span_flushes() {
        let dir = tempfile::tempdir().unwrap();
        let (env, t) = open_env(dir.path(), 256 << 20, Durability::Batched).unwrap();
        let chunk = 1500u64;
        let mut runs: Vec<RunMeta> = Vec::new();
        let mut next_id = 0;
        let mut all: Vec<(u64, u64)> = Vec::new();
        let mut spanning = 0;
        for flush in 0..120u64 {
            let mut entries: Vec<(u64, u64)> = (0..chunk)
                .map(|i| {
                    let local = flush * chunk + i;
                    (
                        u64::from_le_bytes(
                            blake3::hash(&local.to_le_bytes()).as_bytes()[..8]
                                .try_into()
                                .unwrap(),
                        ),
                        local,
                    )
                })
                .collect();
            entries.sort_unstable();
            all.extend(&entries);
            let mut wtxn = env.write_txn().unwrap();
            put_run(&t, &mut wtxn, next_id, &entries).unwrap();
            runs.push(RunMeta {
                id: next_id,
                entries: chunk,
            });
            next_id += 1;
            let total: u64 = runs.iter().map(|r| r.entries).sum();
            merge_some(
                &t,
                &mut wtxn,
                &mut runs,
                &mut next_id,
                merge_budget(chunk, total),
            )
            .unwrap();
            let merging = read_merge(&t, &wtxn).unwrap();
            wtxn.commit().unwrap();
            spanning += usize::from(merging.is_some());
            let doublings = (total / chunk).ilog2() as usize;
            let count = runs.len() + usize::from(merging.is_some());
            assert!(
                count <= 2 * (doublings + 1) + 1,
                "{count} runs after flush {flush}"
            );
        }
        assert!(spanning > 0, "no merge spanned flushes");
        let rtxn = env.read_txn().unwrap();
        let merge = read_merge(&t, &rtxn).unwrap();
        for (prefix, local) in all.iter().step_by(13) {
            let found = searched_runs(&runs, merge, *prefix)
                .any(|run| run_lookup(&t, &rtxn, run, *prefix).unwrap().contains(local));
            assert!(found, "entry of local {local} lost");
        }
    }

    proptest::proptest! {
        /// The merge state read back from the meta table is what was written, and any
        /// other value is a corrupt-table error, never a panic.
        #[test]
        fn merge_state_round_trips(words in proptest::array::uniform5(proptest::prelude::any::<u64>()),
                                   junk in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..100)) {
            let [older, newer, out, written, from] = words;
            let m = Merge { older, newer, out, written, from };
            proptest::prop_assert_eq!(Merge::decode(&m.encode()).unwrap(), m);
            match Merge::decode(&junk) {
                Ok(d) => proptest::prop_assert_eq!(&d.encode()[..], &junk[..]),
                Err(e) => {
                    let corrupt = matches!(e, Error::CorruptTable { table: "hashes", .. });
                    proptest::prop_assert!(corrupt, "unexpected error {:?}", e);
                }
            }
        }
    }

    proptest::proptest! {
        /// The flush's bucket sort orders entries as a comparison sort does, for any
        /// chunk size and also when ids share their top bits (one large bucket).
        #[test]
        fn sort_entries_matches_a_comparison_sort(
            ids in proptest::collection::vec(proptest::prelude::any::<[u8; 32]>(), 0..600),
            shared_top in proptest::prelude::any::<bool>(),
        ) {
            let pairs: Vec<(EventId, u64)> = ids
                .into_iter()
                .enumerate()
                .map(|(i, mut id)| {
                    if shared_top {
                        // Same top 5 bytes; low bits of the prefix decide.
                        id[..5].fill(0xAB);
                        id[5] &= 1;
                    }
                    (EventId(id), 10 + i as u64)
                })
                .collect();
            let mut want: Vec<(u64, u64)> = pairs.iter().map(|(id, l)| (prefix_of(id), *l)).collect();
            want.sort_unstable();
            let mut got = vec![(1, 1); 3];
            sort_entries(&pairs, &mut got);
            proptest::prop_assert_eq!(got, want);
        }
    }

    #[test]
    fn offered_ids_round_trip_and_expire() {
        let idx = HashIndex::default();
        let id = EventId([5; 32]);
        assert_eq!(idx.offered(3), None);
        idx.offer(3, &id, &[7; 32]);
        assert_eq!(idx.offered(3), Some((id, [7; 32])));
        idx.offer(3 + OFFER_SLOTS as u64, &EventId([6; 32]), &[8; 32]);
        assert_eq!(idx.offered(3), None);
    }
}
