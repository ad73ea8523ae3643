//! Lock-free, fixed-capacity broadcast ring buffers in the style of the LMAX Disruptor.
//!
//! A [`Ring`] holds `capacity` preallocated, cache-line aligned [`PooledEvent`] slots
//! (`capacity` a power of two). Any number of threads write; two kinds of readers consume:
//!
//! * **Gating readers** ([`GatingReader`], the storage writer) see every event, in ring
//!   order, by reference (zero-copy). Writers never overwrite a slot a gating reader has
//!   not released: [`Ring::try_write_with`] returns [`RingError::WouldBlock`], and
//!   [`Ring::write_with`] waits.
//! * **Non-gating readers** ([`Subscriber`], UI) never slow writers. They copy events out
//!   under a seqlock check and, when lapped, report how many events they missed
//!   ([`Lapped`]) and resynchronise.
//!
//! # Claim protocol
//!
//! A single `claim` cursor hands out ring sequences. The blocking [`Ring::write_with`]
//! claims with `fetch_add`, which is wait-free and never retries under writer contention;
//! it then waits, if needed, for the gate. [`Ring::try_write_with`] must not claim when it
//! cannot write (a claimed sequence must be published, or every reader stalls), so it
//! checks the gate and claims with a compare-and-swap, retrying only when another writer
//! won the race. The gate ("writers may write sequences `< gate`") is
//! `min(gating reader cursors) + capacity`, cached in an atomic so the common case is one
//! acquire load; it is recomputed (scan of the reader registry) only when a writer reaches
//! it, i.e. at most once per `capacity` events when readers keep up.
//!
//! # Publication
//!
//! Sequences are published out of order by concurrent writers using per-slot stamps (see
//! the docs of `ring/slot.rs`), exactly like the availability buffer of the
//! Disruptor's `MultiProducerSequencer`: a reader waiting for sequence `s` reads only slot
//! `s % capacity`, so a slow writer delays readers only at its own sequence and later
//! sequences become visible as soon as all earlier ones are.
//!
//! # Memory orderings
//!
//! * The claim `fetch_add`/CAS and the reader registry use `SeqCst`: a reader that
//!   registers stores its slot, then loads `claim`; a writer claims, then loads the
//!   registry. Store-load ordering (Dekker) guarantees that either the writer sees the
//!   reader, or the reader starts after the writer's sequence.
//! * Publication is a release store of the slot stamp, consumption an acquire load of it.
//! * Release of a slot by a gating reader is a release store of its cursor; a writer's
//!   gate recomputation loads cursors with acquire (`SeqCst`), so reads of the old event
//!   happen before the overwrite. The cached gate is published with release/acquire.
//! * Wake-ups use an event count ([`Notifier`]): one `AcqRel` read-modify-write of its
//!   `sleepers` counter per publication (see `ring/wait.rs`).
//!
//! # Defaults
//!
//! The ring itself has no default capacity; [`crate::bus::BusConfig`] documents the
//! mobile-friendly per-size-class defaults (about 4.2 MiB in total).

mod slot;
mod sync;
mod wait;

use std::sync::Arc;
use std::time::Duration;

pub use slot::{EventMeta, PooledEvent};
pub use wait::{Backoff, Notifier};

use slot::Slot;
use sync::{AtomicU64, AtomicUsize, CachePadded, Ordering, fence};

/// Maximum number of gating readers registered on one ring at a time.
pub const MAX_GATING_READERS: usize = 16;

/// Marks a free entry of the reader registry.
const FREE: u64 = u64::MAX;

/// Errors of ring construction and writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RingError {
    /// The slowest gating reader has not released the slot; nothing was claimed.
    #[error("ring is full: the slowest gating reader has not released the slot")]
    WouldBlock,
    /// The payload does not fit a slot.
    #[error("payload of {len} bytes exceeds the slot size of {max} bytes")]
    TooLarge {
        /// Requested payload length.
        len: usize,
        /// Slot size.
        max: usize,
    },
    /// The capacity is zero, not a power of two, or too large.
    #[error("invalid ring capacity {capacity}: must be a power of two between 1 and 2^32")]
    InvalidCapacity {
        /// The requested capacity.
        capacity: usize,
    },
    /// All gating reader entries are taken.
    #[error("too many gating readers (at most {max})")]
    TooManyReaders {
        /// The limit.
        max: usize,
    },
}

/// A non-gating reader was overtaken by writers and skipped events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("subscriber lapped: missed {missed} events")]
pub struct Lapped {
    /// Number of events skipped; the subscriber resumed after them.
    pub missed: u64,
}

struct Shared<const SIZE: usize> {
    /// Next ring sequence to hand out.
    claim: CachePadded<AtomicU64>,
    /// Cached gate: sequences `< gate` may be written.
    gate: CachePadded<AtomicU64>,
    /// Gating reader cursors (next sequence each will read), `FREE` when unused.
    readers: Box<[CachePadded<AtomicU64>]>,
    /// One past the highest registry index ever used (bounds the scan).
    readers_hi: CachePadded<AtomicUsize>,
    slots: Box<[Slot<SIZE>]>,
    mask: u64,
    /// Readers park here (may be shared between rings).
    data: Arc<Notifier>,
    /// Writers waiting for space park here.
    space: Notifier,
}

impl<const SIZE: usize> Shared<SIZE> {
    #[inline(always)]
    fn slot(&self, seq: u64) -> &Slot<SIZE> {
        // The mask keeps the index in bounds; `get_unchecked` would save one compare.
        &self.slots[(seq & self.mask) as usize]
    }

    fn capacity(&self) -> u64 {
        self.mask + 1
    }

    /// Recomputes the gate. `base` must be a sequence this writer claimed, or a value of
    /// `claim` it loaded (`SeqCst`) before calling: see the module docs.
    fn refresh_gate(&self, base: u64) -> u64 {
        let hi = self.readers_hi.load(Ordering::SeqCst);
        let mut min = base;
        for r in &self.readers[..hi] {
            let pos = r.load(Ordering::SeqCst);
            if pos != FREE {
                min = min.min(pos);
            }
        }
        let gate = min + self.capacity();
        self.gate.fetch_max(gate, Ordering::AcqRel);
        gate
    }

    /// The previous occupant of `seq`'s slot (`seq - capacity`) is published, so a new
    /// writer does not race a slow one (only possible without gating readers).
    #[inline(always)]
    fn slot_free(&self, seq: u64) -> bool {
        let cap = self.capacity();
        // First lap: the slot was never written (and no load is needed).
        seq < cap || self.slot(seq).stamp().load(Ordering::Acquire) >= 2 * (seq - cap) + 2
    }

    #[inline(always)]
    fn gate_allows(&self, seq: u64) -> bool {
        seq < self.gate.load(Ordering::Acquire) || seq < self.refresh_gate(seq)
    }

    /// Publishes `seq` (already claimed and writable) and wakes sleepers.
    #[inline(always)]
    fn fill_and_publish<F>(&self, seq: u64, len: usize, fill: F)
    where
        F: FnOnce(&mut [u8], &mut EventMeta) -> u32,
    {
        // SAFETY: `seq` was claimed by this writer only, `writable(seq)` held (all gating
        // readers released `seq - capacity` and its writer published it, both observed
        // with acquire), and `len <= SIZE` was checked by the caller.
        unsafe { self.slot(seq).write(seq, len, fill) };
        // Wakes parked readers, and writers waiting for this slot's next lap
        // (`slot_free`), which also wait on `data`.
        self.data.notify();
    }

    #[inline(always)]
    fn is_published(&self, seq: u64) -> bool {
        self.slot(seq).stamp().load(Ordering::Acquire) == 2 * seq + 2
    }
}

/// A multi-producer broadcast ring of `PooledEvent<SIZE>` slots. Cheap to clone (a
/// handle); all clones write to the same ring.
pub struct Ring<const SIZE: usize> {
    shared: Arc<Shared<SIZE>>,
}

impl<const SIZE: usize> Clone for Ring<SIZE> {
    fn clone(&self) -> Self {
        Self {
            shared: self.shared.clone(),
        }
    }
}

impl<const SIZE: usize> std::fmt::Debug for Ring<SIZE> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ring")
            .field("slot_size", &SIZE)
            .field("capacity", &self.capacity())
            .field("claimed", &self.claimed())
            .finish()
    }
}

impl<const SIZE: usize> Ring<SIZE> {
    /// Largest payload a slot holds.
    pub const MAX_PAYLOAD: usize = SIZE;

    /// A ring of `capacity` slots (a power of two) with its own [`Notifier`].
    pub fn new(capacity: usize) -> Result<Self, RingError> {
        Self::with_notifier(capacity, Arc::new(Notifier::new()))
    }

    /// A ring of `capacity` slots (a power of two) that signals `notifier` on every
    /// publication, so one consumer can wait on several rings.
    pub fn with_notifier(capacity: usize, notifier: Arc<Notifier>) -> Result<Self, RingError> {
        const { assert!(SIZE <= u32::MAX as usize, "slot size must fit in u32") };
        if capacity == 0 || !capacity.is_power_of_two() || capacity as u64 > 1 << 32 {
            return Err(RingError::InvalidCapacity { capacity });
        }
        let slots = (0..capacity).map(|_| Slot::new()).collect();
        let readers = (0..MAX_GATING_READERS)
            .map(|_| CachePadded(AtomicU64::new(FREE)))
            .collect();
        Ok(Self {
            shared: Arc::new(Shared {
                claim: CachePadded(AtomicU64::new(0)),
                gate: CachePadded(AtomicU64::new(capacity as u64)),
                readers,
                readers_hi: CachePadded(AtomicUsize::new(0)),
                slots,
                mask: capacity as u64 - 1,
                data: notifier,
                space: Notifier::new(),
            }),
        })
    }

    /// Number of slots.
    pub fn capacity(&self) -> usize {
        self.shared.slots.len()
    }

    /// Bytes of slot memory (`capacity * size_of::<PooledEvent<SIZE>>()`).
    pub fn memory_bytes(&self) -> usize {
        Self::memory_for(self.capacity())
    }

    /// Bytes of slot memory a ring of `capacity` slots would use.
    pub const fn memory_for(capacity: usize) -> usize {
        capacity * core::mem::size_of::<PooledEvent<SIZE>>()
    }

    /// The next sequence to be claimed (= number of sequences claimed so far).
    pub fn claimed(&self) -> u64 {
        self.shared.claim.load(Ordering::Acquire)
    }

    /// The notifier this ring signals after every publication.
    pub fn notifier(&self) -> &Arc<Notifier> {
        &self.shared.data
    }

    /// Whether ring sequence `seq` is currently published (and not yet overwritten).
    pub fn is_published(&self, seq: u64) -> bool {
        self.shared.is_published(seq)
    }

    /// Waits until `seq` is published (or overwritten by a later lap), at most `timeout`.
    pub fn wait_for(&self, seq: u64, timeout: Duration) -> bool {
        let shared = &*self.shared;
        let ready = || shared.slot(seq).stamp().load(Ordering::Acquire) >= 2 * seq + 2;
        shared.data.wait_until(ready, Some(timeout))
    }

    /// Claims a slot if the slowest gating reader released it, runs `fill` on the
    /// `len`-byte payload buffer and a defaulted [`EventMeta`] (`fill` returns the event
    /// type), publishes, and returns the ring sequence.
    ///
    /// `fill` runs only after the claim succeeded, so side effects in it (assigning a
    /// log sequence or clock) happen exactly once per published event. On
    /// [`RingError::WouldBlock`] nothing was claimed and `fill` did not run.
    pub fn try_write_with<F>(&self, len: usize, fill: F) -> Result<u64, RingError>
    where
        F: FnOnce(&mut [u8], &mut EventMeta) -> u32,
    {
        if len > SIZE {
            return Err(RingError::TooLarge { len, max: SIZE });
        }
        let shared = &*self.shared;
        let mut cur = shared.claim.load(Ordering::SeqCst);
        let seq = loop {
            if !shared.gate_allows(cur) {
                return Err(RingError::WouldBlock);
            }
            match shared.claim.compare_exchange_weak(
                cur,
                cur + 1,
                Ordering::SeqCst,
                Ordering::SeqCst,
            ) {
                Ok(_) => break cur,
                Err(actual) => cur = actual,
            }
        };
        // The gate allowed `seq`; only a slow writer of `seq - capacity` (no gating
        // readers) can still hold the slot, briefly.
        if !shared.slot_free(seq) {
            shared.data.wait_until(|| shared.slot_free(seq), None);
        }
        shared.fill_and_publish(seq, len, fill);
        Ok(seq)
    }

    /// Like [`Ring::try_write_with`] but waits (spin, yield, park) for the slowest gating
    /// reader instead of returning `WouldBlock`.
    pub fn write_with<F>(&self, len: usize, fill: F) -> Result<u64, RingError>
    where
        F: FnOnce(&mut [u8], &mut EventMeta) -> u32,
    {
        if len > SIZE {
            return Err(RingError::TooLarge { len, max: SIZE });
        }
        let shared = &*self.shared;
        let seq = shared.claim.fetch_add(1, Ordering::SeqCst);
        if !shared.gate_allows(seq) {
            // Gating readers signal `space` when they release slots.
            shared.space.wait_until(|| shared.gate_allows(seq), None);
        }
        if !shared.slot_free(seq) {
            // The previous writer of this slot signals `data` when it publishes.
            shared.data.wait_until(|| shared.slot_free(seq), None);
        }
        shared.fill_and_publish(seq, len, fill);
        Ok(seq)
    }

    /// Copies `data` into a slot with `event_type` and `meta`; `WouldBlock` if full.
    pub fn try_write(
        &self,
        data: &[u8],
        event_type: u32,
        meta: EventMeta,
    ) -> Result<u64, RingError> {
        self.try_write_with(data.len(), |buf, m| {
            buf.copy_from_slice(data);
            *m = meta;
            event_type
        })
    }

    /// Copies `data` into a slot with `event_type` and `meta`; waits if full.
    pub fn write(&self, data: &[u8], event_type: u32, meta: EventMeta) -> Result<u64, RingError> {
        self.write_with(data.len(), |buf, m| {
            buf.copy_from_slice(data);
            *m = meta;
            event_type
        })
    }

    /// Registers a gating reader. It reads every event claimed after registration;
    /// writers wait for it until it is dropped.
    pub fn add_gating_reader(&self) -> Result<GatingReader<SIZE>, RingError> {
        let shared = &*self.shared;
        for (index, entry) in shared.readers.iter().enumerate() {
            // Provisional cursor; writers that see it cannot lap it.
            let provisional = shared.claim.load(Ordering::SeqCst);
            if entry
                .compare_exchange(FREE, provisional, Ordering::SeqCst, Ordering::SeqCst)
                .is_ok()
            {
                shared.readers_hi.fetch_max(index + 1, Ordering::SeqCst);
                // Dekker with writers (module docs): any writer that did not see this
                // entry claimed a sequence below `start`.
                let start = shared.claim.load(Ordering::SeqCst);
                entry.store(start, Ordering::SeqCst);
                return Ok(GatingReader {
                    ring: self.shared.clone(),
                    index,
                    next: start,
                });
            }
        }
        Err(RingError::TooManyReaders {
            max: MAX_GATING_READERS,
        })
    }

    /// A non-gating reader starting at the current claim cursor.
    pub fn subscribe(&self) -> Subscriber<SIZE> {
        Subscriber {
            next: self.claimed(),
            ring: self.shared.clone(),
            buf: Box::new([0; SIZE]),
        }
    }
}

/// A reader that sees every event and holds writers back until it releases slots.
/// Dropping it unregisters it.
pub struct GatingReader<const SIZE: usize> {
    ring: Arc<Shared<SIZE>>,
    index: usize,
    next: u64,
}

impl<const SIZE: usize> std::fmt::Debug for GatingReader<SIZE> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GatingReader")
            .field("index", &self.index)
            .field("next", &self.next)
            .finish()
    }
}

impl<const SIZE: usize> GatingReader<SIZE> {
    /// The next ring sequence this reader will see.
    pub fn position(&self) -> u64 {
        self.next
    }

    /// Whether the next event is published.
    pub fn has_data(&self) -> bool {
        self.ring.is_published(self.next)
    }

    /// Calls `f(sequence, event)` for up to `max` published events in ring order
    /// (zero-copy), then releases them to writers. Returns the number consumed
    /// (including abandoned slots, which `f` does not see).
    pub fn poll(&mut self, max: usize, mut f: impl FnMut(u64, &PooledEvent<SIZE>)) -> usize {
        let ring = &*self.ring;
        let start = self.next;
        let mut seq = start;
        while seq - start < max as u64 && ring.is_published(seq) {
            // SAFETY: we observed stamp `2seq+2` with acquire and have not released `seq`
            // (our registry cursor is still `<= seq`), so no writer touches the slot.
            let event = unsafe { ring.slot(seq).get() };
            if event.abandoned == 0 {
                f(seq, event);
            }
            seq += 1;
        }
        let n = seq - start;
        if n > 0 {
            self.next = seq;
            ring.readers[self.index].store(seq, Ordering::Release);
            ring.space.notify();
        }
        n as usize
    }

    /// Waits until the next event is published, at most `timeout`.
    pub fn wait(&self, timeout: Duration) -> bool {
        let ring = &*self.ring;
        let next = self.next;
        ring.data
            .wait_until(|| ring.is_published(next), Some(timeout))
    }
}

impl<const SIZE: usize> Drop for GatingReader<SIZE> {
    fn drop(&mut self) {
        self.ring.readers[self.index].store(FREE, Ordering::SeqCst);
        self.ring.space.notify();
    }
}

/// A non-gating reader: copies events out, never slows writers, reports laps.
pub struct Subscriber<const SIZE: usize> {
    ring: Arc<Shared<SIZE>>,
    next: u64,
    buf: Box<[u8; SIZE]>,
}

impl<const SIZE: usize> std::fmt::Debug for Subscriber<SIZE> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscriber")
            .field("next", &self.next)
            .finish()
    }
}

impl<const SIZE: usize> Subscriber<SIZE> {
    /// The next ring sequence this subscriber will read.
    pub fn position(&self) -> u64 {
        self.next
    }

    /// Copies the next event out and calls `out(sequence, meta, event_type, payload)`.
    ///
    /// `Ok(true)`: one event delivered; `Ok(false)`: nothing new yet; `Err(Lapped)`:
    /// writers overwrote events this subscriber had not read; it skipped `missed` events
    /// and the next call resumes at the oldest event likely still in the ring. Torn data is
    /// never delivered (seqlock check, see `ring/slot.rs`).
    pub fn try_next(
        &mut self,
        out: impl FnOnce(u64, &EventMeta, u32, &[u8]),
    ) -> Result<bool, Lapped> {
        let ring = &*self.ring;
        loop {
            let seq = self.next;
            let slot = ring.slot(seq);
            let expected = 2 * seq + 2;
            let s1 = slot.stamp().load(Ordering::Acquire);
            if s1 < expected {
                return Ok(false);
            }
            if s1 == expected {
                let copied = slot.racy_copy(&mut self.buf);
                fence(Ordering::Acquire);
                let s2 = slot.stamp().load(Ordering::Relaxed);
                if s2 == s1 {
                    self.next = seq + 1;
                    if copied.abandoned {
                        continue;
                    }
                    out(
                        seq,
                        &copied.meta,
                        copied.event_type,
                        &self.buf[..copied.len],
                    );
                    return Ok(true);
                }
            }
            // Overwritten by a later lap (before or during the copy): skip ahead to the
            // oldest sequence that may still be in the ring.
            let oldest = ring
                .claim
                .load(Ordering::Acquire)
                .saturating_sub(ring.capacity());
            let resume = oldest.max(seq + 1);
            self.next = resume;
            return Err(Lapped {
                missed: resume - seq,
            });
        }
    }

    /// Waits until the next event is published or overwritten, at most `timeout`.
    pub fn wait(&self, timeout: Duration) -> bool {
        let ring = &*self.ring;
        let next = self.next;
        ring.data.wait_until(
            || ring.slot(next).stamp().load(Ordering::Acquire) >= 2 * next + 2,
            Some(timeout),
        )
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn rejects_bad_capacity() {
        assert_eq!(
            Ring::<64>::new(3).unwrap_err(),
            RingError::InvalidCapacity { capacity: 3 }
        );
        assert!(Ring::<64>::new(0).is_err());
        assert!(Ring::<64>::new(8).is_ok());
    }

    #[test]
    fn too_large_is_an_error() {
        let ring = Ring::<8>::new(4).unwrap();
        assert_eq!(
            ring.try_write(&[0; 9], 1, EventMeta::default()),
            Err(RingError::TooLarge { len: 9, max: 8 })
        );
    }

    #[test]
    fn gating_reader_blocks_writer_and_fill_not_run() {
        let ring = Ring::<8>::new(2).unwrap();
        let mut r = ring.add_gating_reader().unwrap();
        ring.try_write(b"a", 1, EventMeta::default()).unwrap();
        ring.try_write(b"b", 2, EventMeta::default()).unwrap();
        let mut ran = false;
        let err = ring.try_write_with(1, |_, _| {
            ran = true;
            0
        });
        assert_eq!(err, Err(RingError::WouldBlock));
        assert!(!ran);
        assert_eq!(ring.claimed(), 2);
        let mut seen = Vec::new();
        assert_eq!(
            r.poll(10, |s, e| seen.push((
                s,
                e.event_type,
                e.payload().to_vec()
            ))),
            2
        );
        assert_eq!(seen, vec![(0, 1, b"a".to_vec()), (1, 2, b"b".to_vec())]);
        assert_eq!(ring.try_write(b"c", 3, EventMeta::default()), Ok(2));
        drop(r);
        // Unregistered: writers no longer wait.
        for _ in 0..10 {
            ring.try_write(b"d", 4, EventMeta::default()).unwrap();
        }
    }

    #[test]
    fn meta_is_assigned_inside_fill() {
        let ring = Ring::<16>::new(4).unwrap();
        let mut r = ring.add_gating_reader().unwrap();
        ring.write_with(3, |buf, meta| {
            buf.copy_from_slice(b"xyz");
            meta.seq = 9;
            meta.hlc = 10;
            5
        })
        .unwrap();
        r.poll(1, |_, e| {
            assert_eq!(e.payload(), b"xyz");
            assert_eq!((e.meta.seq, e.meta.hlc, e.event_type), (9, 10, 5));
        });
    }

    #[test]
    fn subscriber_reports_laps() {
        let ring = Ring::<8>::new(4).unwrap();
        let mut sub = ring.subscribe();
        for i in 0..10u8 {
            ring.try_write(&[i], u32::from(i), EventMeta::default())
                .unwrap();
        }
        let err = sub.try_next(|_, _, _, _| {}).unwrap_err();
        assert_eq!(err, Lapped { missed: 6 });
        let mut got = Vec::new();
        while sub.try_next(|s, _, t, d| got.push((s, t, d[0]))).unwrap() {}
        assert_eq!(got, vec![(6, 6, 6), (7, 7, 7), (8, 8, 8), (9, 9, 9)]);
    }

    #[test]
    fn blocking_writer_resumes_when_reader_releases() {
        let ring = Ring::<8>::new(2).unwrap();
        let mut r = ring.add_gating_reader().unwrap();
        let w = ring.clone();
        let t = std::thread::spawn(move || {
            for i in 0..100u32 {
                w.write(&i.to_le_bytes(), i, EventMeta::default()).unwrap();
            }
        });
        let mut next = 0u32;
        while next < 100 {
            r.wait(Duration::from_secs(5));
            r.poll(8, |_, e| {
                assert_eq!(e.event_type, next);
                next += 1;
            });
        }
        t.join().unwrap();
    }

    #[test]
    fn too_many_readers() {
        let ring = Ring::<8>::new(2).unwrap();
        let readers: Vec<_> = (0..MAX_GATING_READERS)
            .map(|_| ring.add_gating_reader().unwrap())
            .collect();
        assert_eq!(
            ring.add_gating_reader().unwrap_err(),
            RingError::TooManyReaders {
                max: MAX_GATING_READERS
            }
        );
        drop(readers);
        assert!(ring.add_gating_reader().is_ok());
    }

    #[test]
    fn wait_for_times_out_then_succeeds() {
        let ring = Ring::<8>::new(2).unwrap();
        assert!(!ring.wait_for(0, Duration::from_millis(5)));
        ring.write(b"x", 0, EventMeta::default()).unwrap();
        assert!(ring.wait_for(0, Duration::from_millis(5)));
    }
}
