//! Hybrid logical clocks.
//!
//! Kulkarni, Demirbas et al., "Logical Physical Clocks and Consistent Snapshots in
//! Globally Distributed Databases" (2014). A timestamp packs 48 bits of wall-clock
//! milliseconds and a 16-bit logical counter into a u64, so timestamps compare as integers,
//! stay close to physical time, and never go backwards: `now()` is strictly greater than
//! every timestamp this clock issued or observed (`update`).
//!
//! The physical clock is injected ([`Clock`]) so tests and simulations are deterministic.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use thiserror::Error;

/// Bits of the logical counter.
const COUNTER_BITS: u32 = 16;
const COUNTER_MASK: u64 = (1 << COUNTER_BITS) - 1;
/// Largest representable physical time (48 bits of milliseconds, year 10889).
const MAX_MILLIS: u64 = (1 << 48) - 1;

/// A hybrid logical clock timestamp: 48-bit milliseconds, 16-bit counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Hlc(u64);

impl Hlc {
    /// Builds from physical milliseconds and a counter.
    pub const fn new(millis: u64, counter: u16) -> Self {
        Hlc((millis & MAX_MILLIS) << COUNTER_BITS | counter as u64)
    }
    /// From the packed representation.
    pub const fn from_u64(v: u64) -> Self {
        Hlc(v)
    }
    /// The packed representation (orders like the timestamp).
    pub const fn as_u64(self) -> u64 {
        self.0
    }
    /// Physical part, milliseconds since the Unix epoch.
    pub const fn millis(self) -> u64 {
        self.0 >> COUNTER_BITS
    }
    /// Logical counter.
    pub const fn counter(self) -> u16 {
        (self.0 & COUNTER_MASK) as u16
    }
}

/// A source of physical time in milliseconds since the Unix epoch.
pub trait Clock: Send + Sync {
    /// Current physical time.
    fn now_millis(&self) -> u64;
}

/// The system wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_millis(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(MAX_MILLIS))
    }
}

/// A clock the test moves by hand.
#[derive(Debug, Default)]
pub struct ManualClock(AtomicU64);

impl ManualClock {
    /// A clock showing `millis`.
    pub fn new(millis: u64) -> Self {
        ManualClock(AtomicU64::new(millis))
    }
    /// Sets the time (may go backwards, to test that the HLC does not).
    pub fn set(&self, millis: u64) {
        self.0.store(millis, Ordering::SeqCst);
    }
    /// Moves the time forward.
    pub fn advance(&self, millis: u64) {
        self.0.fetch_add(millis, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_millis(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

impl<C: Clock + ?Sized> Clock for std::sync::Arc<C> {
    fn now_millis(&self) -> u64 {
        (**self).now_millis()
    }
}

/// A remote timestamp too far ahead of our physical clock.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error(
    "remote clock {remote_millis} ms is {ahead_millis} ms ahead (max drift {max_drift_millis} ms)"
)]
pub struct ClockDriftError {
    /// The remote timestamp's physical part.
    pub remote_millis: u64,
    /// How far ahead of us it is.
    pub ahead_millis: u64,
    /// The configured bound.
    pub max_drift_millis: u64,
}

/// A thread-safe hybrid logical clock (lock-free: one CAS per tick).
#[derive(Debug)]
pub struct HlcClock<C> {
    clock: C,
    last: AtomicU64,
    max_drift_millis: u64,
}

impl<C: Clock> HlcClock<C> {
    /// Default bound on how far a remote timestamp may run ahead: 1 hour.
    pub const DEFAULT_MAX_DRIFT_MILLIS: u64 = 3_600_000;

    /// A clock over `clock`, starting after `last` (e.g. the highest stored timestamp).
    pub fn new(clock: C, last: Hlc) -> Self {
        HlcClock {
            clock,
            last: AtomicU64::new(last.as_u64()),
            max_drift_millis: Self::DEFAULT_MAX_DRIFT_MILLIS,
        }
    }

    /// Sets the largest accepted lead of a remote timestamp over our physical clock.
    pub fn with_max_drift(mut self, millis: u64) -> Self {
        self.max_drift_millis = millis;
        self
    }

    /// The last timestamp issued or observed.
    pub fn last(&self) -> Hlc {
        Hlc(self.last.load(Ordering::Acquire))
    }

    /// A new timestamp, strictly greater than every earlier one of this clock.
    pub fn now(&self) -> Hlc {
        let phys = Hlc::new(self.clock.now_millis().min(MAX_MILLIS), 0).as_u64();
        let mut last = self.last.load(Ordering::Acquire);
        loop {
            // Physical time ahead: take it with counter 0. Otherwise tick the counter; on
            // counter overflow this carries into the millisecond field, which keeps the
            // order total and only drifts ahead by 1 ms per 65,536 events.
            let next = phys.max(last.saturating_add(1));
            match self
                .last
                .compare_exchange_weak(last, next, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return Hlc(next),
                Err(cur) => last = cur,
            }
        }
    }

    /// Merges a timestamp received from elsewhere, so later `now()` values exceed it.
    pub fn update(&self, remote: Hlc) -> Result<(), ClockDriftError> {
        let phys = self.clock.now_millis();
        if remote.millis() > phys.saturating_add(self.max_drift_millis) {
            return Err(ClockDriftError {
                remote_millis: remote.millis(),
                ahead_millis: remote.millis() - phys,
                max_drift_millis: self.max_drift_millis,
            });
        }
        self.last.fetch_max(remote.as_u64(), Ordering::AcqRel);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn monotonic_even_when_wall_clock_goes_back() {
        let clock = Arc::new(ManualClock::new(1_000));
        let hlc = HlcClock::new(clock.clone(), Hlc::default());
        let a = hlc.now();
        assert_eq!((a.millis(), a.counter()), (1_000, 0));
        let b = hlc.now();
        assert_eq!((b.millis(), b.counter()), (1_000, 1));
        clock.set(500);
        let c = hlc.now();
        assert!(c > b);
        assert_eq!(c.millis(), 1_000);
        clock.set(2_000);
        assert_eq!(hlc.now(), Hlc::new(2_000, 0));
    }

    #[test]
    fn update_moves_past_remote_and_bounds_drift() {
        let clock = Arc::new(ManualClock::new(10_000));
        let hlc = HlcClock::new(clock, Hlc::default()).with_max_drift(1_000);
        hlc.update(Hlc::new(10_500, 7)).unwrap();
        assert_eq!(hlc.now(), Hlc::new(10_500, 8));
        let err = hlc.update(Hlc::new(20_000, 0)).unwrap_err();
        assert_eq!(err.ahead_millis, 10_000);
        assert!(hlc.now() < Hlc::new(20_000, 0));
    }

    #[test]
    fn counter_overflow_carries() {
        let clock = ManualClock::new(5);
        let hlc = HlcClock::new(clock, Hlc::new(5, u16::MAX));
        let t = hlc.now();
        assert_eq!((t.millis(), t.counter()), (6, 0));
    }

    #[test]
    fn concurrent_now_is_unique() {
        let hlc = Arc::new(HlcClock::new(ManualClock::new(1), Hlc::default()));
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let h = hlc.clone();
                std::thread::spawn(move || (0..10_000).map(|_| h.now()).collect::<Vec<_>>())
            })
            .collect();
        let mut all: Vec<Hlc> = handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect();
        let n = all.len();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), n);
    }
}
