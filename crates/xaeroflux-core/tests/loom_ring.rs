//! Loom models of the ring's publication, gating, seqlock and wake-up protocols.
//!
//! Run with:
//! `LOOM_MAX_PREEMPTIONS=2 RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=/work/main/target-loom cargo test -p xaeroflux-core --release --test loom_ring`
//!
//! Every wait in the ring is bounded under loom (1 spin, 1 yield, then a real park that
//! loom checks for deadlocks: a lost wake-up is reported as a deadlock).
#![cfg(loom)]
#![allow(clippy::unwrap_used)]

use loom::thread;
use xaeroflux_core::ring::{EventMeta, Ring, RingError};

fn model(f: impl Fn() + Sync + Send + 'static) {
    let mut b = loom::model::Builder::new();
    if b.preemption_bound.is_none() {
        b.preemption_bound = Some(2);
    }
    b.check(f);
}

/// Writer publishes; a gating reader that sees the sequence sees the whole event
/// (loom's causality checker flags the read if publication does not happen-before it).
#[test]
fn publish_then_consume_is_visible() {
    model(|| {
        let ring = Ring::<8>::new(2).unwrap();
        let mut reader = ring.add_gating_reader().unwrap();
        let w = ring.clone();
        let t = thread::spawn(move || {
            w.try_write(
                &[1, 2, 3],
                7,
                EventMeta {
                    seq: 9,
                    ..EventMeta::default()
                },
            )
            .unwrap();
        });
        let mut seen = 0;
        for _ in 0..2 {
            reader.poll(4, |seq, e| {
                assert_eq!(seq, 0);
                assert_eq!(e.payload(), &[1, 2, 3]);
                assert_eq!((e.event_type, e.meta.seq), (7, 9));
                seen += 1;
            });
        }
        t.join().unwrap();
        assert!(seen <= 1);
    });
}

/// Capacity 2, three writes: the third must not overwrite slot 0 until the gating
/// reader released it (either `WouldBlock`, or the reader already consumed event 0).
#[test]
fn writer_never_overwrites_unreleased_slot() {
    model(|| {
        let ring = Ring::<8>::new(2).unwrap();
        let mut reader = ring.add_gating_reader().unwrap();
        let w = ring.clone();
        let t = thread::spawn(move || {
            let mut results = Vec::new();
            for i in 0..3u8 {
                results.push(w.try_write(&[i], u32::from(i), EventMeta::default()));
            }
            results
        });
        let mut got = Vec::new();
        reader.poll(1, |seq, e| got.push((seq, e.payload()[0])));
        let results = t.join().unwrap();
        reader.poll(4, |seq, e| got.push((seq, e.payload()[0])));
        // Every consumed event is the one written for its sequence (never overwritten).
        for (seq, byte) in &got {
            assert_eq!(*seq, u64::from(*byte));
        }
        let ok = results.iter().filter(|r| r.is_ok()).count();
        assert!(ok >= 2);
        if ok == 2 {
            assert_eq!(results[2], Err(RingError::WouldBlock));
        }
        assert_eq!(got.len(), ok);
    });
}

/// Two writers race on the claim cursor: both events are delivered, once each.
#[test]
fn two_writers_claim_distinct_slots() {
    model(|| {
        let ring = Ring::<8>::new(2).unwrap();
        let mut reader = ring.add_gating_reader().unwrap();
        let w1 = ring.clone();
        let t = thread::spawn(move || {
            w1.write(&[1], 1, EventMeta::default()).unwrap();
        });
        ring.write(&[2], 2, EventMeta::default()).unwrap();
        t.join().unwrap();
        let mut got = Vec::new();
        reader.poll(4, |_, e| got.push(e.event_type));
        got.sort_unstable();
        assert_eq!(got, vec![1, 2]);
    });
}

/// A non-gating reader racing a writer that laps it never returns torn data: every
/// delivered event has payload bytes, type and sequence that belong together.
#[test]
fn lapped_subscriber_never_sees_torn_data() {
    model(|| {
        let ring = Ring::<8>::new(1).unwrap();
        let mut sub = ring.subscribe();
        let w = ring.clone();
        let t = thread::spawn(move || {
            for i in 1..=2u8 {
                w.write(&[i; 8], u32::from(i), EventMeta::default())
                    .unwrap();
            }
        });
        let mut missed = 0;
        let mut seen = 0;
        for _ in 0..2 {
            match sub.try_next(|seq, _, ty, data| {
                assert_eq!(u64::from(ty), seq + 1);
                assert_eq!(data, &[ty as u8; 8]);
                seen += 1;
            }) {
                Ok(_) => {}
                Err(l) => missed += l.missed,
            }
        }
        t.join().unwrap();
        assert!(seen + missed <= 2);
        assert_eq!(sub.position(), seen + missed);
    });
}

/// A gating reader that parks is woken by the writer (no lost wake-up: loom reports a
/// deadlock otherwise, since timeouts never fire under loom).
#[test]
fn parked_reader_is_woken() {
    model(|| {
        let ring = Ring::<8>::new(2).unwrap();
        let reader = ring.add_gating_reader().unwrap();
        let w = ring.clone();
        let t = thread::spawn(move || {
            w.write(&[5], 5, EventMeta::default()).unwrap();
        });
        assert!(reader.wait(std::time::Duration::from_secs(1)));
        t.join().unwrap();
    });
}

/// A writer blocked on a full ring parks and is woken when the reader releases.
#[test]
fn parked_writer_is_woken() {
    model(|| {
        let ring = Ring::<8>::new(1).unwrap();
        let mut reader = ring.add_gating_reader().unwrap();
        ring.write(&[0], 0, EventMeta::default()).unwrap();
        let w = ring.clone();
        let t = thread::spawn(move || {
            w.write(&[1], 1, EventMeta::default()).unwrap();
        });
        assert_eq!(reader.poll(1, |_, e| assert_eq!(e.event_type, 0)), 1);
        t.join().unwrap();
        assert_eq!(reader.poll(1, |_, e| assert_eq!(e.event_type, 1)), 1);
    });
}
