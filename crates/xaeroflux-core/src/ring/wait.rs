//! Wait strategy: bounded spin, then `yield_now`, then park on an event count.
//!
//! On two cores (and on phones) a busy-spinning consumer steals the CPU from the very
//! producer it waits for, so waiting escalates quickly:
//!
//! 1. [`Backoff::spins`] iterations of `spin_loop` (covers a producer that is mid-write on
//!    the other core),
//! 2. [`Backoff::yields`] calls to `thread::yield_now` (lets a producer on *this* core run),
//! 3. park on a [`Notifier`]: a `Mutex` + `Condvar` guarded by a `sleepers` counter.
//!
//! The [`Notifier`] is an *event count* in the style of folly's `EventCount` and Dmitry
//! Vyukov's eventcount: the notifying side pays one read-modify-write of `sleepers`
//! (`fetch_add(0, AcqRel)`, on a line that stays in the notifier's cache while nobody
//! sleeps); only when somebody sleeps does it take the lock and `notify_all` (one wake-up
//! for a whole batch of events, since sleepers leave the counter as soon as they run).
//!
//! No lost wake-up (check-after-register): a waiter increments `sleepers` (an RMW,
//! acquire) and only then re-checks its condition (under the lock); a notifier publishes
//! and then performs its RMW (release) on `sleepers`. The two RMWs are totally ordered in
//! the modification order of `sleepers` and each reads the latest value: if the
//! notifier's comes first, the waiter's increment reads from it, so the publication
//! happens-before the waiter's check; otherwise the notifier reads a non-zero count and
//! takes the lock, which it cannot do between the waiter's check and its
//! `Condvar::wait`. (Cheaper than the classic `SeqCst` fence + load on x86, where LLVM
//! lowers the idempotent RMW to a locked op on the stack plus a load, and modelled
//! exactly by loom.)

use std::time::{Duration, Instant};

use super::sync::{AtomicUsize, CachePadded};
use super::sync::{Condvar, Mutex, Ordering, fence, spin_hint, yield_now};

/// How long a waiter spins and yields before it parks.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Backoff {
    /// Iterations of `std::hint::spin_loop` before yielding. Default 32 (about a
    /// microsecond): long enough for a producer that is mid-write on another core.
    pub spins: u32,
    /// Calls to `std::thread::yield_now` before parking. Default 16.
    pub yields: u32,
}

impl Default for Backoff {
    fn default() -> Self {
        #[cfg(loom)]
        return Self {
            spins: 1,
            yields: 1,
        };
        #[cfg(not(loom))]
        Self {
            spins: 32,
            yields: 16,
        }
    }
}

/// A wake-up primitive several rings can share, so that one consumer can sleep on many
/// rings at once (the event bus shares one between its five rings).
///
/// Producers call [`Notifier::notify`] after publishing; consumers call
/// [`Notifier::wait_until`] with a readiness check.
pub struct Notifier {
    sleepers: CachePadded<AtomicUsize>,
    lock: Mutex<()>,
    cond: Condvar,
    backoff: Backoff,
}

impl std::fmt::Debug for Notifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Notifier")
            .field("sleepers", &self.sleepers.load(Ordering::Relaxed))
            .field("backoff", &self.backoff)
            .finish()
    }
}

impl Default for Notifier {
    fn default() -> Self {
        Self::new()
    }
}

impl Notifier {
    /// A notifier with the default [`Backoff`].
    pub fn new() -> Self {
        Self::with_backoff(Backoff::default())
    }

    /// A notifier whose waiters spin and yield as `backoff` says before parking.
    pub fn with_backoff(backoff: Backoff) -> Self {
        Self {
            sleepers: CachePadded(AtomicUsize::new(0)),
            lock: Mutex::new(()),
            cond: Condvar::new(),
            backoff,
        }
    }

    /// Wakes every parked waiter. Call after publishing. Fast path: one uncontended
    /// read-modify-write (see the module docs for why it cannot miss a waiter).
    #[inline]
    pub fn notify(&self) {
        // An RMW reads the latest value of `sleepers`. If it precedes a waiter's
        // increment, that increment reads from it and (release/acquire) the waiter's
        // later check sees everything this thread published before `notify`.
        if self.sleepers.fetch_add(0, Ordering::AcqRel) != 0 {
            self.wake_all();
        }
    }

    #[cold]
    fn wake_all(&self) {
        // Taking the lock orders this wake-up after any waiter's check-then-wait.
        let guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        self.cond.notify_all();
        drop(guard);
    }

    /// Waits until `ready()` returns true (returns true) or `timeout` elapses (returns the
    /// last `ready()` result). `None` waits forever. `ready` must only read state that is
    /// published before a [`Notifier::notify`] of this notifier.
    ///
    /// Under `cfg(loom)` the timeout is ignored (loom has no clock): a lost wake-up then
    /// shows up as a deadlock that loom reports.
    pub fn wait_until(&self, mut ready: impl FnMut() -> bool, timeout: Option<Duration>) -> bool {
        for _ in 0..self.backoff.spins {
            if ready() {
                return true;
            }
            spin_hint();
        }
        for _ in 0..self.backoff.yields {
            if ready() {
                return true;
            }
            yield_now();
        }
        #[cfg(loom)]
        let deadline: Option<Instant> = {
            let _ = timeout;
            None
        };
        #[cfg(not(loom))]
        let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
        // (A timeout so large that it overflows `Instant` means "forever".)
        // Register, then check (see the module docs).
        self.sleepers.fetch_add(1, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        let result = self.park(&mut ready, deadline);
        self.sleepers.fetch_sub(1, Ordering::Release);
        result
    }

    fn park(&self, ready: &mut impl FnMut() -> bool, deadline: Option<Instant>) -> bool {
        let mut guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if ready() {
                return true;
            }
            match deadline {
                None => guard = self.cond.wait(guard).unwrap_or_else(|e| e.into_inner()),
                Some(deadline) => {
                    let now = Instant::now();
                    if now >= deadline {
                        return false;
                    }
                    guard = match self.cond.wait_timeout(guard, deadline - now) {
                        Ok((g, _)) => g,
                        Err(e) => e.into_inner().0,
                    };
                }
            }
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::AtomicBool;

    #[test]
    fn times_out_when_nothing_happens() {
        let n = Notifier::new();
        let start = Instant::now();
        assert!(!n.wait_until(|| false, Some(Duration::from_millis(20))));
        assert!(start.elapsed() >= Duration::from_millis(20));
    }

    #[test]
    fn parked_waiter_is_woken() {
        let n = Arc::new(Notifier::new());
        let flag = Arc::new(AtomicBool::new(false));
        let (n2, f2) = (n.clone(), flag.clone());
        let t = std::thread::spawn(move || {
            n2.wait_until(|| f2.load(Ordering::Acquire), Some(Duration::from_secs(10)))
        });
        std::thread::sleep(Duration::from_millis(50));
        flag.store(true, Ordering::Release);
        n.notify();
        let woke = t.join().unwrap_or(false);
        assert!(woke);
    }
}
