//! The id hand-off from producers to the storage writer: `write_event` callers hash
//! their event anyway, so they leave the id (and its MMR leaf hash) in a slot keyed by
//! the write ticket, and the writer takes it instead of hashing again. A seqlock per
//! slot; best effort: a missing or overwritten slot only means the writer hashes.

use std::sync::atomic::{AtomicU64, Ordering, fence};

use xaeroflux_core::EventId;

/// Slots of the id hand-off; a power of two.
pub(super) const OFFER_SLOTS: usize = 1 << 14;
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

/// The hand-off slots.
pub(super) struct Offers {
    slots: Box<[OfferSlot]>,
}

impl Default for Offers {
    fn default() -> Self {
        Offers {
            slots: (0..OFFER_SLOTS).map(|_| OfferSlot::default()).collect(),
        }
    }
}

impl Offers {
    /// Records the id a producer computed for write ticket `ticket`.
    pub(super) fn offer(&self, ticket: u64, id: &EventId, leaf: &[u8; 32]) {
        let slot = &self.slots[ticket as usize % OFFER_SLOTS];
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
    pub(super) fn offered(&self, ticket: u64) -> Option<(EventId, [u8; 32])> {
        let slot = &self.slots[ticket as usize % OFFER_SLOTS];
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offered_ids_round_trip_and_expire() {
        let idx = Offers::default();
        let id = EventId([5; 32]);
        assert_eq!(idx.offered(3), None);
        idx.offer(3, &id, &[7; 32]);
        assert_eq!(idx.offered(3), Some((id, [7; 32])));
        idx.offer(3 + OFFER_SLOTS as u64, &EventId([6; 32]), &[8; 32]);
        assert_eq!(idx.offered(3), None);
    }
}
