//! Synchronisation shim: `loom` primitives under `cfg(loom)`, `std` otherwise.
//!
//! Only the types the ring actually uses are mapped, so a model run exercises exactly the
//! production code paths. Slot *contents* always live in a `std` [`UnsafeCell`]
//! (`core::cell::UnsafeCell`) because non-gating readers copy them racily (seqlock); under
//! loom an [`AccessTracker`] records the accesses that must be ordered (writer fill vs
//! gating read) so loom's causality checker still sees them.

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicU64, AtomicUsize, fence};
#[cfg(loom)]
pub(crate) use loom::sync::{Condvar, Mutex};
#[cfg(loom)]
pub(crate) use loom::thread::yield_now;

#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{AtomicU64, AtomicUsize, fence};
#[cfg(not(loom))]
pub(crate) use std::sync::{Condvar, Mutex};
#[cfg(not(loom))]
pub(crate) use std::thread::yield_now;

pub(crate) use std::sync::atomic::Ordering;

/// A hint inside a bounded spin; a scheduling point under loom.
#[inline]
pub(crate) fn spin_hint() {
    #[cfg(loom)]
    loom::thread::yield_now();
    #[cfg(not(loom))]
    std::hint::spin_loop();
}

/// Records slot accesses for loom's causality checker; a zero-sized no-op otherwise.
#[cfg(loom)]
pub(crate) struct AccessTracker(loom::cell::UnsafeCell<()>);

#[cfg(loom)]
impl AccessTracker {
    pub(crate) fn new() -> Self {
        Self(loom::cell::UnsafeCell::new(()))
    }
    /// A gating reader is about to read the slot.
    pub(crate) fn read(&self) {
        self.0.with(|_| ());
    }
    /// A writer is about to fill the slot.
    pub(crate) fn write(&self) {
        self.0.with_mut(|_| ());
    }
}

/// Records slot accesses for loom's causality checker; a zero-sized no-op otherwise.
#[cfg(not(loom))]
pub(crate) struct AccessTracker;

#[cfg(not(loom))]
impl AccessTracker {
    #[inline(always)]
    pub(crate) fn new() -> Self {
        Self
    }
    #[inline(always)]
    pub(crate) fn read(&self) {}
    #[inline(always)]
    pub(crate) fn write(&self) {}
}

/// Pads and aligns a value to its own cache-line pair (128 bytes covers the adjacent-line
/// prefetcher on x86 and the 128-byte lines of Apple cores), so per-reader cursors and the
/// claim cursor never false-share.
#[repr(align(128))]
pub(crate) struct CachePadded<T>(pub(crate) T);

impl<T> std::ops::Deref for CachePadded<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}
