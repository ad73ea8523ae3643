//! The sorted runs of the `hashes` table: the log-structured merge that keeps the
//! id index on disk (run parts, the run list and the persisted merge state in the meta
//! table, budgeted merges; see the module docs of `hash_index` for the layout).
//!
//! Over 700 lines: about 500 of code and 300 of tests that drive merges through their
//! intermediate states (parts, saved merge state, budgets); they belong together.

use std::ops::Bound;

use heed::{RoTxn, RwTxn};
use xaeroflux_core::{EventId, EventRef};

use super::prefix_of;
use crate::error::{Error, Result};
use crate::store::{Tables, meta_keys};

/// Most entries in one part of a run (64 KiB).
pub(crate) const PART_ENTRIES: usize = 4096;
/// Bytes of one entry: prefix and local sequence.
pub(super) const ENTRY: usize = 16;

/// One sorted run of the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct RunMeta {
    pub(super) id: u64,
    pub(super) entries: u64,
}

pub(super) fn corrupt(reason: String) -> Error {
    Error::CorruptTable {
        table: "hashes",
        reason,
    }
}

/// Writes the (prefix, local) entries of `pairs` to `out`, sorted.
///
/// A counting sort on the prefix's top bits, then each bucket sorted on its own: ids are
/// BLAKE3 output, so a bucket holds a few entries, and the whole costs two passes over
/// the chunk, cheaper than a comparison sort (figures in `docs/MEASUREMENTS.md`). Ids
/// ground to share their top bits only make some buckets larger, still sorted
/// correctly. `pairs` is in commit order, so equal prefixes come out by local sequence.
pub(super) fn sort_entries(pairs: &[(EventId, u64)], out: &mut Vec<(u64, u64)>) {
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

pub(super) fn part_key(run: u64, prefix: u64) -> [u8; 16] {
    let mut k = [0u8; 16];
    k[..8].copy_from_slice(&run.to_be_bytes());
    k[8..].copy_from_slice(&prefix.to_be_bytes());
    k
}

/// The lowest and highest key any part of run `id` can have.
pub(super) fn run_bounds(id: u64) -> ([u8; 16], [u8; 16]) {
    (part_key(id, 0), part_key(id, u64::MAX))
}

pub(super) fn entry(part: &[u8], i: usize) -> (u64, u64) {
    let e = &part[i * ENTRY..(i + 1) * ENTRY];
    let word = |b: &[u8]| {
        let mut w = [0u8; 8];
        w.copy_from_slice(b);
        u64::from_be_bytes(w)
    };
    (word(&e[..8]), word(&e[8..]))
}

/// The runs listed in the meta table, oldest first.
pub(super) fn read_runs(t: &Tables, txn: &RoTxn<'_>) -> Result<Vec<RunMeta>> {
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

pub(super) fn write_runs(t: &Tables, wtxn: &mut RwTxn<'_>, runs: &[RunMeta]) -> Result<()> {
    let mut v = Vec::with_capacity(runs.len() * 16);
    for r in runs {
        v.extend_from_slice(&r.id.to_le_bytes());
        v.extend_from_slice(&r.entries.to_le_bytes());
    }
    t.meta.put(wtxn, meta_keys::HASH_RUNS, &v)?;
    Ok(())
}

/// Writes sorted `entries` as run `id`.
pub(super) fn put_run(
    t: &Tables,
    wtxn: &mut RwTxn<'_>,
    id: u64,
    entries: &[(u64, u64)],
) -> Result<()> {
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
pub(super) struct RunReader {
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
pub(super) fn read_run(t: &Tables, txn: &RoTxn<'_>, id: u64) -> Result<Vec<(u64, u64)>> {
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
pub(super) struct Merge {
    pub(super) older: u64,
    pub(super) newer: u64,
    pub(super) out: u64,
    pub(super) written: u64,
    pub(super) from: u64,
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

pub(super) fn read_merge(t: &Tables, txn: &RoTxn<'_>) -> Result<Option<Merge>> {
    t.meta
        .get(txn, meta_keys::HASH_MERGE)?
        .map(Merge::decode)
        .transpose()
}

/// Advances `m` by about `budget` input entries (more only to finish a part, which
/// never ends between equal prefixes, so every part of `out` but its last holds at
/// least [`PART_ENTRIES`]). Returns the entries merged and whether the inputs are
/// exhausted; deletes the input parts it read to their end.
pub(super) fn merge_step(
    t: &Tables,
    wtxn: &mut RwTxn<'_>,
    m: &mut Merge,
    budget: u64,
) -> Result<(u64, bool)> {
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
pub(super) fn merge_runs(
    t: &Tables,
    wtxn: &mut RwTxn<'_>,
    a: u64,
    b: u64,
    out: u64,
) -> Result<u64> {
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
pub(super) fn delete_run(t: &Tables, wtxn: &mut RwTxn<'_>, id: u64) -> Result<()> {
    let (first, last) = run_bounds(id);
    let range = (Bound::Included(&first[..]), Bound::Included(&last[..]));
    t.hashes.delete_range(wtxn, &range)?;
    Ok(())
}

/// Merge work for a flush of `chunk` entries into a table of `total`: enough to keep up
/// with a binary counter, which rewrites each entry once per doubling of the table
/// (about `log2(total / chunk)` times), so no flush rewrites the whole table at once.
pub(super) fn merge_budget(chunk: u64, total: u64) -> u64 {
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
pub(super) fn merge_some(
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
pub(super) fn searched_runs(
    runs: &[RunMeta],
    merge: Option<Merge>,
    prefix: u64,
) -> impl Iterator<Item = u64> {
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
pub(super) fn finish_merge(
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
pub(super) fn run_lookup(t: &Tables, txn: &RoTxn<'_>, id: u64, prefix: u64) -> Result<Vec<u64>> {
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
pub(super) fn stored_id(t: &Tables, txn: &RoTxn<'_>, local_seq: u64) -> Result<Option<EventId>> {
    match crate::store::blocks::event_at(t, txn, local_seq)? {
        Some(v) => Ok(Some(
            EventRef::decode(v)
                .map_err(|source| Error::CorruptEvent { local_seq, source })?
                .id(),
        )),
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::options::Durability;
    use crate::store::open_env;

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
}
