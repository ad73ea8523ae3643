//! The event bus: one broadcast [`Ring`] per payload size class, one shared [`Notifier`].
//!
//! Payloads are routed to the smallest class that fits, so a 40-byte event does not
//! occupy a 16 KiB slot. Readers ([`BusReader`]) gate all five rings and sleep on the
//! shared notifier, so one storage thread can wait for any ring at once.
//!
//! Events of different classes are not ordered relative to each other by the bus; the
//! engine stores a global write ticket in [`EventMeta::ticket`] for that.
//!
//! # Default capacities (mobile friendly)
//!
//! | class | slot payload | slots | slot size | memory    |
//! |-------|--------------|-------|-----------|-----------|
//! | XS    | 64 B         | 4096  | 128 B     | 512 KiB   |
//! | S     | 256 B        | 2048  | 320 B     | 640 KiB   |
//! | M     | 1 KiB        | 1024  | 1088 B    | 1088 KiB  |
//! | L     | 4 KiB        | 256   | 4160 B    | 1040 KiB  |
//! | XL    | 16 KiB       | 64    | 16448 B   | 1028 KiB  |
//!
//! Total: 4,411,392 bytes (4308 KiB, about 4.2 MiB), checked by a unit test.

use std::sync::Arc;
use std::time::Duration;

use crate::ring::{EventMeta, GatingReader, Notifier, Ring, RingError};

/// Payload size classes.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SizeClass {
    /// Up to 64 bytes.
    Xs,
    /// Up to 256 bytes.
    S,
    /// Up to 1 KiB.
    M,
    /// Up to 4 KiB.
    L,
    /// Up to 16 KiB.
    Xl,
}

const XS: usize = 64;
const S: usize = 256;
const M: usize = 1024;
const L: usize = 4096;
const XL: usize = 16384;

impl SizeClass {
    /// All classes, smallest first.
    pub const ALL: [SizeClass; 5] = [Self::Xs, Self::S, Self::M, Self::L, Self::Xl];

    /// Largest payload of any class.
    pub const MAX_PAYLOAD: usize = XL;

    /// Largest payload of this class.
    pub const fn max_len(self) -> usize {
        match self {
            Self::Xs => XS,
            Self::S => S,
            Self::M => M,
            Self::L => L,
            Self::Xl => XL,
        }
    }

    /// Index into [`BusConfig::capacities`].
    pub const fn index(self) -> usize {
        self as usize
    }

    /// The smallest class that holds `len` bytes, `None` above 16 KiB.
    pub const fn for_len(len: usize) -> Option<SizeClass> {
        Some(if len <= XS {
            Self::Xs
        } else if len <= S {
            Self::S
        } else if len <= M {
            Self::M
        } else if len <= L {
            Self::L
        } else if len <= XL {
            Self::Xl
        } else {
            return None;
        })
    }

    /// Bytes one slot of this class occupies.
    pub const fn slot_bytes(self) -> usize {
        match self {
            Self::Xs => Ring::<XS>::memory_for(1),
            Self::S => Ring::<S>::memory_for(1),
            Self::M => Ring::<M>::memory_for(1),
            Self::L => Ring::<L>::memory_for(1),
            Self::Xl => Ring::<XL>::memory_for(1),
        }
    }
}

/// Errors of the event bus.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BusError {
    /// The payload exceeds the largest size class.
    #[error("payload of {len} bytes exceeds the maximum of {max} bytes")]
    PayloadTooLarge {
        /// Payload length.
        len: usize,
        /// Largest accepted payload.
        max: usize,
    },
    /// The ring of this class is full (non-blocking write); nothing was written.
    #[error("{class:?} ring is full")]
    WouldBlock {
        /// The class whose ring is full.
        class: SizeClass,
    },
    /// A capacity in the configuration is not a power of two (or zero).
    #[error("invalid capacity {capacity} for {class:?} ring: must be a power of two")]
    InvalidCapacity {
        /// The class.
        class: SizeClass,
        /// The rejected capacity.
        capacity: usize,
    },
    /// The rings have no free gating reader entry.
    #[error("too many bus readers (at most {max})")]
    TooManyReaders {
        /// The limit.
        max: usize,
    },
}

impl BusError {
    fn from_ring(class: SizeClass, e: RingError) -> Self {
        match e {
            RingError::WouldBlock => Self::WouldBlock { class },
            RingError::TooLarge { len, .. } => Self::PayloadTooLarge {
                len,
                max: class.max_len(),
            },
            RingError::InvalidCapacity { capacity } => Self::InvalidCapacity { class, capacity },
            RingError::TooManyReaders { max } => Self::TooManyReaders { max },
        }
    }
}

/// Ring capacities per size class (index = [`SizeClass::index`]).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct BusConfig {
    /// Slots per ring, each a power of two. Default `[4096, 2048, 1024, 256, 64]`
    /// (about 4.2 MiB in total, see the module docs).
    pub capacities: [usize; 5],
}

impl Default for BusConfig {
    fn default() -> Self {
        Self {
            capacities: [4096, 2048, 1024, 256, 64],
        }
    }
}

impl BusConfig {
    /// Checks every capacity is a power of two between 1 and 2^32.
    pub fn validate(&self) -> Result<(), BusError> {
        for class in SizeClass::ALL {
            let capacity = self.capacities[class.index()];
            if capacity == 0 || !capacity.is_power_of_two() || capacity as u64 > 1 << 32 {
                return Err(BusError::InvalidCapacity { class, capacity });
            }
        }
        Ok(())
    }

    /// Slot memory this configuration allocates.
    pub fn memory_bytes(&self) -> usize {
        SizeClass::ALL
            .iter()
            .map(|c| c.slot_bytes() * self.capacities[c.index()])
            .sum()
    }
}

/// One ring per size class plus a shared notifier.
#[derive(Debug, Clone)]
pub struct EventBus {
    xs: Ring<XS>,
    s: Ring<S>,
    m: Ring<M>,
    l: Ring<L>,
    xl: Ring<XL>,
    notifier: Arc<Notifier>,
}

/// Runs `$body` with `$ring` bound to the ring of `$class` (the rings have distinct types).
macro_rules! with_ring {
    ($self:expr, $class:expr, |$ring:ident| $body:expr) => {
        match $class {
            SizeClass::Xs => {
                let $ring = &$self.xs;
                $body
            }
            SizeClass::S => {
                let $ring = &$self.s;
                $body
            }
            SizeClass::M => {
                let $ring = &$self.m;
                $body
            }
            SizeClass::L => {
                let $ring = &$self.l;
                $body
            }
            SizeClass::Xl => {
                let $ring = &$self.xl;
                $body
            }
        }
    };
}

impl EventBus {
    /// Allocates the five rings.
    pub fn new(config: BusConfig) -> Result<Self, BusError> {
        config.validate()?;
        let n = Arc::new(Notifier::new());
        let c = config.capacities;
        let err = |class: SizeClass| move |e| BusError::from_ring(class, e);
        Ok(Self {
            xs: Ring::with_notifier(c[0], n.clone()).map_err(err(SizeClass::Xs))?,
            s: Ring::with_notifier(c[1], n.clone()).map_err(err(SizeClass::S))?,
            m: Ring::with_notifier(c[2], n.clone()).map_err(err(SizeClass::M))?,
            l: Ring::with_notifier(c[3], n.clone()).map_err(err(SizeClass::L))?,
            xl: Ring::with_notifier(c[4], n.clone()).map_err(err(SizeClass::Xl))?,
            notifier: n,
        })
    }

    /// Slot memory of all rings.
    pub fn memory_bytes(&self) -> usize {
        self.xs.memory_bytes()
            + self.s.memory_bytes()
            + self.m.memory_bytes()
            + self.l.memory_bytes()
            + self.xl.memory_bytes()
    }

    /// The notifier all rings signal.
    pub fn notifier(&self) -> &Arc<Notifier> {
        &self.notifier
    }

    /// Copies `data` into the smallest fitting ring, waiting if it is full; returns the
    /// ring sequence.
    pub fn write_optimal(&self, data: &[u8], event_type: u32) -> Result<u64, BusError> {
        self.write_optimal_with(data, event_type, true, EventMeta::default)
            .map(|(_, seq)| seq)
    }

    /// Copies `data` into the smallest fitting ring. `meta` runs after the slot is
    /// claimed (so sequence numbers and clocks it assigns have no gaps). If `blocking` is
    /// false a full ring returns [`BusError::WouldBlock`] and `meta` does not run.
    pub fn write_optimal_with(
        &self,
        data: &[u8],
        event_type: u32,
        blocking: bool,
        meta: impl FnOnce() -> EventMeta,
    ) -> Result<(SizeClass, u64), BusError> {
        let len = data.len();
        let class = SizeClass::for_len(len).ok_or(BusError::PayloadTooLarge {
            len,
            max: SizeClass::MAX_PAYLOAD,
        })?;
        let fill = |buf: &mut [u8], m: &mut EventMeta| {
            buf.copy_from_slice(data);
            *m = meta();
            event_type
        };
        let res = with_ring!(self, class, |ring| if blocking {
            ring.write_with(len, fill)
        } else {
            ring.try_write_with(len, fill)
        });
        res.map(|seq| (class, seq))
            .map_err(|e| BusError::from_ring(class, e))
    }

    /// A reader that gates all five rings (sees every event written after this call).
    pub fn gating_reader(&self) -> Result<BusReader, BusError> {
        let err = |class: SizeClass| move |e| BusError::from_ring(class, e);
        Ok(BusReader {
            xs: self.xs.add_gating_reader().map_err(err(SizeClass::Xs))?,
            s: self.s.add_gating_reader().map_err(err(SizeClass::S))?,
            m: self.m.add_gating_reader().map_err(err(SizeClass::M))?,
            l: self.l.add_gating_reader().map_err(err(SizeClass::L))?,
            xl: self.xl.add_gating_reader().map_err(err(SizeClass::Xl))?,
            notifier: self.notifier.clone(),
        })
    }
}

/// Gating readers on all five rings of an [`EventBus`].
#[derive(Debug)]
pub struct BusReader {
    xs: GatingReader<XS>,
    s: GatingReader<S>,
    m: GatingReader<M>,
    l: GatingReader<L>,
    xl: GatingReader<XL>,
    notifier: Arc<Notifier>,
}

impl BusReader {
    /// Calls `f(class, meta, event_type, payload)` for up to `max` events (zero-copy),
    /// smallest class first, releasing them afterwards. Returns the number consumed.
    pub fn poll(
        &mut self,
        max: usize,
        mut f: impl FnMut(SizeClass, &EventMeta, u32, &[u8]),
    ) -> usize {
        let mut n = 0;
        n += self.xs.poll(max - n, |_, e| {
            f(SizeClass::Xs, &e.meta, e.event_type, e.payload())
        });
        n += self.s.poll(max - n, |_, e| {
            f(SizeClass::S, &e.meta, e.event_type, e.payload())
        });
        n += self.m.poll(max - n, |_, e| {
            f(SizeClass::M, &e.meta, e.event_type, e.payload())
        });
        n += self.l.poll(max - n, |_, e| {
            f(SizeClass::L, &e.meta, e.event_type, e.payload())
        });
        n += self.xl.poll(max - n, |_, e| {
            f(SizeClass::Xl, &e.meta, e.event_type, e.payload())
        });
        n
    }

    /// Whether any ring has an event for this reader.
    pub fn has_data(&self) -> bool {
        self.xs.has_data()
            || self.s.has_data()
            || self.m.has_data()
            || self.l.has_data()
            || self.xl.has_data()
    }

    /// Sleeps on the shared notifier until any ring has data (true) or `timeout` elapses.
    pub fn wait(&self, timeout: Duration) -> bool {
        self.notifier.wait_until(|| self.has_data(), Some(timeout))
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn for_len_routes_by_size() {
        assert_eq!(SizeClass::for_len(0), Some(SizeClass::Xs));
        assert_eq!(SizeClass::for_len(64), Some(SizeClass::Xs));
        assert_eq!(SizeClass::for_len(65), Some(SizeClass::S));
        assert_eq!(SizeClass::for_len(1024), Some(SizeClass::M));
        assert_eq!(SizeClass::for_len(4097), Some(SizeClass::Xl));
        assert_eq!(SizeClass::for_len(16384), Some(SizeClass::Xl));
        assert_eq!(SizeClass::for_len(16385), None);
    }

    #[test]
    fn default_memory_matches_docs() {
        let cfg = BusConfig::default();
        assert_eq!(cfg.memory_bytes(), 4_411_392);
        let bus = EventBus::new(cfg).unwrap();
        assert_eq!(bus.memory_bytes(), 4_411_392);
    }

    #[test]
    fn config_validation() {
        let mut cfg = BusConfig::default();
        cfg.capacities[3] = 100;
        assert_eq!(
            EventBus::new(cfg).unwrap_err(),
            BusError::InvalidCapacity {
                class: SizeClass::L,
                capacity: 100
            }
        );
    }

    #[test]
    fn oversize_payload_is_an_error() {
        let bus = EventBus::new(BusConfig::default()).unwrap();
        let big = vec![0u8; 16385];
        assert_eq!(
            bus.write_optimal(&big, 1),
            Err(BusError::PayloadTooLarge {
                len: 16385,
                max: 16384
            })
        );
    }

    #[test]
    fn routes_and_reads_back() {
        let bus = EventBus::new(BusConfig {
            capacities: [4, 4, 4, 4, 4],
        })
        .unwrap();
        let mut r = bus.gating_reader().unwrap();
        for len in [1usize, 100, 1000, 4000, 16000] {
            let (class, _) = bus
                .write_optimal_with(&vec![7; len], len as u32, false, || EventMeta {
                    ticket: len as u64,
                    ..EventMeta::default()
                })
                .unwrap();
            assert_eq!(Some(class), SizeClass::for_len(len));
        }
        assert!(r.wait(Duration::from_millis(10)));
        let mut seen = Vec::new();
        assert_eq!(
            r.poll(100, |c, m, t, d| seen.push((c, m.ticket, t, d.len()))),
            5
        );
        assert_eq!(seen.len(), 5);
        assert!(
            seen.iter()
                .all(|&(_, ticket, t, len)| ticket == len as u64 && t as usize == len)
        );
        assert!(!r.wait(Duration::from_millis(5)));
    }

    #[test]
    fn non_blocking_write_reports_full_class() {
        let bus = EventBus::new(BusConfig {
            capacities: [1, 1, 1, 1, 1],
        })
        .unwrap();
        let _r = bus.gating_reader().unwrap();
        bus.write_optimal(b"a", 0).unwrap();
        let mut ran = false;
        let e = bus.write_optimal_with(b"b", 0, false, || {
            ran = true;
            EventMeta::default()
        });
        assert_eq!(
            e,
            Err(BusError::WouldBlock {
                class: SizeClass::Xs
            })
        );
        assert!(!ran);
    }
}
