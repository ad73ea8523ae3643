//! The in-memory generations of the id index: ids committed since the last flush,
//! and the chunk being flushed (kept until its transaction has committed).

use hashbrown::HashTable;
use xaeroflux_core::EventId;

use super::prefix_of;

/// Committed ids held in memory: the (id, local) pairs in commit order, and a hash
/// table of their offsets keyed by the id's prefix.
///
/// A `HashMap<EventId, u64>` spent most of its insert time on cache misses into 40-byte
/// buckets (about 20 MB at a full chunk) and on growing; here the pairs are appended
/// sequentially and the table holds 4-byte offsets (about 2.6 MB at a full chunk), and
/// both keep their allocations from chunk to chunk.
#[derive(Default)]
pub(super) struct Generation {
    pub(super) entries: Vec<(EventId, u64)>,
    offsets: HashTable<u32>,
}

impl Generation {
    /// Room for `n` ids (capped at 4M: a larger chunk grows as it fills). The table
    /// rounds its room up; the pairs get the same room, so a generation that passes
    /// the flush threshold by a commit's worth of ids grows neither.
    pub(super) fn with_capacity(n: usize) -> Self {
        let offsets = HashTable::with_capacity(n.min(1 << 22));
        Generation {
            entries: Vec::with_capacity(offsets.capacity()),
            offsets,
        }
    }

    pub(super) fn len(&self) -> usize {
        self.entries.len()
    }

    pub(super) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub(super) fn extend(&mut self, new: &[(EventId, u64)]) {
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

    pub(super) fn get(&self, id: &EventId) -> Option<u64> {
        let entry = |o: &u32| self.entries.get(*o as usize);
        self.offsets
            .find(prefix_of(id), |o| entry(o).is_some_and(|(e, _)| e == id))
            .and_then(entry)
            .map(|(_, local)| *local)
    }

    pub(super) fn clear(&mut self) {
        self.entries.clear();
        self.offsets.clear();
    }
}

/// The two in-memory generations: ids not yet handed to a flush, and the chunk being
/// flushed (kept until its transaction has committed).
#[derive(Default)]
pub(super) struct Recent {
    pub(super) live: Generation,
    pub(super) flushing: Generation,
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
