//! The event-id -> local-sequence index, kept off the commit path.
//!
//! Event ids are random (BLAKE3), so inserting each into a B-tree as it commits touches a
//! random leaf page per event (far slower commits and more bytes written; see
//! `docs/MEASUREMENTS.md`).
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
//! B-tree instead touched nearly every leaf page of the table per flush.
//!
//! An entry is the id's first 8 bytes (its *prefix*) and the local sequence, 16 bytes,
//! big-endian. A run is stored in parts of at most [`PART_ENTRIES`] entries (more only
//! to keep equal prefixes in one part) under `run id u64 | first prefix u64`; the
//! `hash_runs` meta key lists the runs (`run id u64 | entries u64`, little-endian,
//! oldest first). A prefix is not unique, so a lookup confirms a hit by re-hashing the
//! event it points at.
//!
//! The mechanisms, one module each: `id_hasher` (the hasher of id-keyed maps),
//! `memory` (the in-memory generations), `lsm` (the sorted runs and their merges) and
//! `offer` (the seqlock hand-off of ids from producers to the writer). This file is
//! the index that composes them.

mod id_hasher;
mod lsm;
mod memory;
mod offer;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, RwLock};
use std::time::Duration;

use xaeroflux_core::{EventId, EventRef};

pub(crate) use id_hasher::IdHasher;
use lsm::{
    RunMeta, merge_budget, merge_some, put_run, read_merge, read_runs, run_lookup, searched_runs,
    sort_entries, stored_id, write_runs,
};
use memory::{Generation, Recent};
use offer::Offers;

use super::{Env0, Tables, meta_keys, meta_u64};
use crate::error::{Error, Result};

/// The first 8 bytes of an id, big-endian: the key of the id in memory and on disk.
fn prefix_of(id: &EventId) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&id.0[..8]);
    u64::from_be_bytes(b)
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
    offered: Offers,
}

impl Default for HashIndex {
    fn default() -> Self {
        HashIndex {
            recent: RwLock::default(),
            longest_flush_us: AtomicU64::new(0),
            sorted: Mutex::default(),
            offered: Offers::default(),
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
        self.offered.offer(ticket, id, leaf);
    }

    /// The id and leaf hash offered for `ticket`, if still there and not being
    /// overwritten.
    pub(crate) fn offered(&self, ticket: u64) -> Option<(EventId, [u8; 32])> {
        self.offered.offered(ticket)
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
    use super::lsm::{read_run, read_runs, run_lookup};
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
}
