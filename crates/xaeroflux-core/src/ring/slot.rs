//! Slot layout and the seqlock stamp protocol.
//!
//! Every slot carries a `stamp` (a per-slot sequence, as in a seqlock and as in the
//! Disruptor's per-slot availability buffer of its `MultiProducerSequencer`):
//!
//! | stamp        | meaning                                            |
//! |--------------|----------------------------------------------------|
//! | `0`          | never written                                      |
//! | `2 * s + 1`  | ring sequence `s` is being written (odd = unstable) |
//! | `2 * s + 2`  | ring sequence `s` is published (even = stable)      |
//!
//! Stamps of a slot only grow, so a reader expecting sequence `s` can tell "not yet"
//! (`stamp < 2s + 2`), "ready" (`== 2s + 2`) and "lapped" (`> 2s + 2`) from one load.
//!
//! Writer (seqlock write side, as in the `seqlock` crate):
//! `stamp.store(2s+1, Relaxed); fence(Release); write fields; stamp.store(2s+2, Release)`.
//!
//! Gating reader: `stamp.load(Acquire) == 2s+2`, then reads the slot by reference. The
//! writer of `s + capacity` cannot start before the reader released `s`, so the reference
//! is never aliased by a write.
//!
//! Non-gating reader (seqlock read side): `s1 = stamp.load(Acquire)`, copy the fields
//! with volatile loads, `fence(Acquire)`, `s2 = stamp.load(Relaxed)`; the copy is used
//! only if `s1 == s2 == 2s+2`. If any copied byte came from a newer write, the acquire
//! fence synchronises with the writer's release fence, so `s2` sees at least the odd
//! stamp and the copy is discarded. The copy itself races with that write: Rust has no
//! "atomic memcpy" yet (see P1478 for C++), and like the `seqlock` crate (and the Linux
//! kernel) we rely on volatile word loads, whose possibly-mixed result is thrown away
//! without being interpreted. Under loom the copy goes through per-word atomics instead
//! (the exact model of a byte-wise atomic memcpy) so loom can check the fences.

use core::cell::UnsafeCell;
use core::ptr;

use super::sync::{AccessTracker, AtomicU64, Ordering, fence};

/// Engine-defined metadata stored next to every payload.
///
/// The engine stores the group index, the author-log sequence, the hybrid logical clock
/// and a global write ticket (which orders events across size classes).
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct EventMeta {
    /// Group index.
    pub group: u32,
    /// Engine flags.
    pub flags: u32,
    /// Sequence number in the author's log.
    pub seq: u64,
    /// Hybrid logical clock timestamp.
    pub hlc: u64,
    /// Global write ticket (orders events across rings).
    pub ticket: u64,
}

/// One preallocated, cache-line aligned ring slot.
///
/// Gating readers see it by reference (zero-copy); `data[..len]` is the payload.
#[repr(C, align(64))]
pub struct PooledEvent<const SIZE: usize> {
    /// Payload storage; only `data[..len]` is meaningful.
    pub data: [u8; SIZE],
    /// Payload length in bytes (`<= SIZE`).
    pub len: u32,
    /// Application event type.
    pub event_type: u32,
    /// Engine metadata.
    pub meta: EventMeta,
    /// Seqlock stamp (see the module docs). Accessed only atomically.
    pub(crate) stamp: AtomicU64,
    /// Non-zero if the writer's fill closure panicked: readers skip the slot.
    pub(crate) abandoned: u32,
}

impl<const SIZE: usize> PooledEvent<SIZE> {
    /// The payload, `data[..len]`.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        let len = (self.len as usize).min(SIZE);
        &self.data[..len]
    }
}

impl<const SIZE: usize> std::fmt::Debug for PooledEvent<SIZE> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PooledEvent")
            .field("len", &self.len)
            .field("event_type", &self.event_type)
            .field("meta", &self.meta)
            .finish_non_exhaustive()
    }
}

/// Number of `u64` words a loom shadow needs: one header word (len | type << 32) + data.
#[cfg(loom)]
const fn shadow_words(size: usize) -> usize {
    1 + size.div_ceil(8)
}

pub(crate) struct Slot<const SIZE: usize> {
    event: UnsafeCell<PooledEvent<SIZE>>,
    tracker: AccessTracker,
    /// Under loom, the racy copy of non-gating readers reads these atomics instead.
    #[cfg(loom)]
    shadow: Box<[AtomicU64]>,
}

// SAFETY: the slot's contents are only mutated by the single writer that owns the slot's
// current sequence (claim cursor + stamp protocol, see `Ring`), only read by reference by
// gating readers after that writer published (acquire on the stamp) and before any later
// writer may start (gating), and otherwise only copied racily with volatile loads whose
// result is discarded unless the stamp proves it stable. `PooledEvent` holds only plain
// data and an atomic, so sending it between threads is fine.
unsafe impl<const SIZE: usize> Sync for Slot<SIZE> {}

/// A non-gating reader's copy of a slot.
pub(crate) struct Copied {
    pub(crate) len: usize,
    pub(crate) event_type: u32,
    pub(crate) meta: EventMeta,
    pub(crate) abandoned: bool,
}

impl<const SIZE: usize> Slot<SIZE> {
    pub(crate) fn new() -> Self {
        Self {
            event: UnsafeCell::new(PooledEvent {
                data: [0; SIZE],
                len: 0,
                event_type: 0,
                meta: EventMeta::default(),
                stamp: AtomicU64::new(0),
                abandoned: 0,
            }),
            tracker: AccessTracker::new(),
            #[cfg(loom)]
            shadow: (0..shadow_words(SIZE)).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    /// The slot's stamp.
    #[inline(always)]
    pub(crate) fn stamp(&self) -> &AtomicU64 {
        // SAFETY: the pointer is valid for the slot's lifetime; the stamp is only accessed
        // atomically and nobody ever holds a `&mut PooledEvent` (writers project to the
        // plain fields through raw pointers), so a shared reference to it never aliases a
        // unique one.
        unsafe { &*ptr::addr_of!((*self.event.get()).stamp) }
    }

    /// Reads the published event by reference.
    ///
    /// # Safety
    /// The caller must be a gating reader that observed (with acquire) the stamp
    /// `2s + 2` for the sequence `s` it reads, and must not have released `s` yet: then no
    /// writer can touch the slot while the reference lives.
    #[inline(always)]
    pub(crate) unsafe fn get(&self) -> &PooledEvent<SIZE> {
        self.tracker.read();
        // SAFETY: guaranteed by the caller (see above).
        unsafe { &*self.event.get() }
    }

    /// Writes sequence `seq` into the slot and publishes it (release). `fill` gets the
    /// payload buffer (`len` bytes) and a defaulted meta, and returns the event type.
    /// If `fill` panics the slot is published as abandoned so readers do not stall.
    ///
    /// # Safety
    /// The caller must own `seq` (claimed it), and all readers of `seq - capacity` must
    /// have released it and its writer must have published it (acquire on both), so no
    /// one else accesses the plain fields. `len <= SIZE`.
    #[inline(always)]
    pub(crate) unsafe fn write<F>(&self, seq: u64, len: usize, fill: F)
    where
        F: FnOnce(&mut [u8], &mut EventMeta) -> u32,
    {
        let stamp = self.stamp();
        stamp.store(2 * seq + 1, Ordering::Relaxed);
        fence(Ordering::Release);
        self.tracker.write();

        struct Abandon<'a, const N: usize>(&'a Slot<N>, u64);
        impl<const N: usize> Drop for Abandon<'_, N> {
            fn drop(&mut self) {
                let p = self.0.event.get();
                // SAFETY: same ownership as the enclosing `write`; only plain fields are
                // written through the raw pointer.
                unsafe {
                    ptr::addr_of_mut!((*p).len).write(0);
                    ptr::addr_of_mut!((*p).abandoned).write(1);
                }
                #[cfg(loom)]
                self.0.mirror();
                self.0.stamp().store(2 * self.1 + 2, Ordering::Release);
            }
        }

        let p = self.event.get();
        let guard = Abandon(self, seq);
        // SAFETY: we own the slot (see the function contract). We never create a
        // `&mut PooledEvent`, only references to the disjoint plain fields, so the shared
        // reference to `stamp` held by others stays valid. `len <= SIZE`.
        let event_type = unsafe {
            ptr::addr_of_mut!((*p).meta).write(EventMeta::default());
            let data = &mut *ptr::addr_of_mut!((*p).data);
            let meta = &mut *ptr::addr_of_mut!((*p).meta);
            fill(&mut data[..len], meta)
        };
        core::mem::forget(guard);
        // SAFETY: as above.
        unsafe {
            ptr::addr_of_mut!((*p).len).write(len as u32);
            ptr::addr_of_mut!((*p).event_type).write(event_type);
            ptr::addr_of_mut!((*p).abandoned).write(0);
        }
        #[cfg(loom)]
        self.mirror();
        stamp.store(2 * seq + 2, Ordering::Release);
    }

    /// Under loom, copies the fields a non-gating reader reads into the atomic shadow.
    #[cfg(loom)]
    fn mirror(&self) {
        // SAFETY: called by the owning writer only (see `write`).
        let ev = unsafe { &*self.event.get() };
        let header = u64::from(ev.len) | (u64::from(ev.event_type) << 32);
        self.shadow[0].store(header, Ordering::Relaxed);
        for (i, chunk) in ev.data.chunks(8).enumerate() {
            let mut w = [0u8; 8];
            w[..chunk.len()].copy_from_slice(chunk);
            self.shadow[1 + i].store(u64::from_le_bytes(w), Ordering::Relaxed);
        }
    }

    /// Racy seqlock copy (see the module docs) into `buf`. The result must be discarded
    /// unless the stamp is re-checked (after an acquire fence) and unchanged.
    #[cfg(not(loom))]
    #[inline]
    pub(crate) fn racy_copy(&self, buf: &mut [u8; SIZE]) -> Copied {
        let p = self.event.get();
        // SAFETY: all pointers are in bounds and aligned (fields of a live slot; `data` is
        // at offset 0 of a 64-aligned struct, so its words are 8-aligned). Volatile loads
        // of plain integers cannot produce invalid values; concurrently written bytes may
        // be mixed, which the caller detects via the stamp and discards (module docs).
        unsafe {
            let len = (ptr::addr_of!((*p).len).read_volatile() as usize).min(SIZE);
            let event_type = ptr::addr_of!((*p).event_type).read_volatile();
            let meta = ptr::addr_of!((*p).meta).read_volatile();
            let abandoned = ptr::addr_of!((*p).abandoned).read_volatile() != 0;
            let src = ptr::addr_of!((*p).data).cast::<u8>();
            let words = len / 8;
            for i in 0..words {
                let w = src.cast::<u64>().add(i).read_volatile();
                buf[i * 8..i * 8 + 8].copy_from_slice(&w.to_ne_bytes());
            }
            for (i, b) in buf.iter_mut().enumerate().take(len).skip(words * 8) {
                *b = src.add(i).read_volatile();
            }
            Copied {
                len,
                event_type,
                meta,
                abandoned,
            }
        }
    }

    /// Loom version of the racy copy: reads the atomic shadow word by word.
    #[cfg(loom)]
    pub(crate) fn racy_copy(&self, buf: &mut [u8; SIZE]) -> Copied {
        let header = self.shadow[0].load(Ordering::Relaxed);
        let len = ((header & 0xffff_ffff) as usize).min(SIZE);
        for (i, chunk) in buf.chunks_mut(8).enumerate() {
            let w = self.shadow[1 + i].load(Ordering::Relaxed).to_le_bytes();
            let n = chunk.len();
            chunk.copy_from_slice(&w[..n]);
        }
        // `meta` and `abandoned` are not modelled; loom does not track plain memory.
        // SAFETY: volatile loads of plain integers (see the non-loom version).
        let (meta, abandoned) = unsafe {
            let p = self.event.get();
            (
                ptr::addr_of!((*p).meta).read_volatile(),
                ptr::addr_of!((*p).abandoned).read_volatile() != 0,
            )
        };
        Copied {
            len,
            event_type: (header >> 32) as u32,
            meta,
            abandoned,
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn layout_is_cache_line_aligned() {
        assert_eq!(core::mem::align_of::<PooledEvent<64>>(), 64);
        assert_eq!(core::mem::size_of::<PooledEvent<64>>(), 128);
        assert_eq!(core::mem::size_of::<PooledEvent<1024>>() % 64, 0);
        assert_eq!(core::mem::size_of::<Slot<64>>(), 128);
    }

    #[test]
    fn write_then_copy_round_trips() {
        let slot = Slot::<16>::new();
        // SAFETY: single-threaded test; we own the slot.
        unsafe {
            slot.write(0, 11, |buf, meta| {
                buf.copy_from_slice(b"hello world");
                meta.seq = 7;
                42
            })
        };
        assert_eq!(slot.stamp().load(Ordering::Relaxed), 2);
        let mut buf = [0u8; 16];
        let c = slot.racy_copy(&mut buf);
        assert_eq!(
            (c.len, c.event_type, c.meta.seq, c.abandoned),
            (11, 42, 7, false)
        );
        assert_eq!(&buf[..11], b"hello world");
    }

    #[test]
    fn panicking_fill_publishes_abandoned_slot() {
        let slot = Slot::<16>::new();
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            // SAFETY: single-threaded test; we own the slot.
            unsafe { slot.write(3, 4, |_, _| panic!("boom")) }
        }));
        assert!(r.is_err());
        assert_eq!(slot.stamp().load(Ordering::Relaxed), 8);
        let mut buf = [0u8; 16];
        assert!(slot.racy_copy(&mut buf).abandoned);
    }
}
