//! Stress: 3 writers, 2 gating readers, 2 non-gating readers on a 64-slot ring.
//!
//! Each payload carries `(writer id, counter)` at its head and its tail and a filler
//! derived from the counter in between. Gating readers must see every event exactly once,
//! per writer in order, untorn. Non-gating readers must never see torn data, and their
//! missed + seen counts must add up to the total.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::Duration;

use xaeroflux_core::ring::{EventMeta, Ring};

const WRITERS: u32 = 3;
const STAMP: usize = 12;
const SLOT: usize = 64;

fn per_writer() -> u64 {
    std::env::var("RING_STRESS_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000)
}

fn stamp(wid: u32, ctr: u64) -> [u8; STAMP] {
    let mut s = [0u8; STAMP];
    s[..4].copy_from_slice(&wid.to_le_bytes());
    s[4..].copy_from_slice(&ctr.to_le_bytes());
    s
}

/// Checks one payload; returns (writer id, counter).
fn check(data: &[u8], event_type: u32, meta: &EventMeta) -> (u32, u64) {
    assert!(data.len() >= 2 * STAMP, "short payload {}", data.len());
    let head = &data[..STAMP];
    let tail = &data[data.len() - STAMP..];
    assert_eq!(head, tail, "torn payload");
    let wid = u32::from_le_bytes(head[..4].try_into().unwrap());
    let ctr = u64::from_le_bytes(head[4..].try_into().unwrap());
    assert_eq!(event_type, wid, "type does not match payload");
    assert_eq!(meta.seq, ctr, "meta does not match payload");
    assert_eq!(data.len(), len_for(ctr), "length does not match counter");
    let filler = ctr as u8;
    assert!(
        data[STAMP..data.len() - STAMP].iter().all(|&b| b == filler),
        "torn filler"
    );
    (wid, ctr)
}

fn len_for(ctr: u64) -> usize {
    2 * STAMP + (ctr as usize % (SLOT - 2 * STAMP + 1))
}

#[test]
fn three_writers_two_gating_two_subscribers() {
    let n = per_writer();
    let total = n * u64::from(WRITERS);
    let ring = Ring::<SLOT>::new(64).unwrap();
    let done = Arc::new(AtomicBool::new(false));

    let gating: Vec<_> = (0..2)
        .map(|_| {
            let mut reader = ring.add_gating_reader().unwrap();
            thread::spawn(move || {
                let mut next = vec![0u64; WRITERS as usize];
                let mut count = 0u64;
                while count < total {
                    let got = reader.poll(256, |_, e| {
                        let (wid, ctr) = check(e.payload(), e.event_type, &e.meta);
                        assert_eq!(ctr, next[wid as usize], "writer {wid} out of order");
                        next[wid as usize] += 1;
                    });
                    count += got as u64;
                    if got == 0 {
                        reader.wait(Duration::from_millis(100));
                    }
                }
                assert!(next.iter().all(|&c| c == n));
                count
            })
        })
        .collect();

    let subscribers: Vec<_> = (0..2)
        .map(|_| {
            let mut sub = ring.subscribe();
            let done = done.clone();
            thread::spawn(move || {
                let (mut seen, mut missed) = (0u64, 0u64);
                let mut last = vec![None::<u64>; WRITERS as usize];
                loop {
                    match sub.try_next(|_, meta, ty, data| {
                        let (wid, ctr) = check(data, ty, meta);
                        if let Some(prev) = last[wid as usize] {
                            assert!(ctr > prev, "subscriber went backwards");
                        }
                        last[wid as usize] = Some(ctr);
                    }) {
                        Ok(true) => seen += 1,
                        Ok(false) => {
                            if done.load(Ordering::Acquire) && sub.position() >= total {
                                break;
                            }
                            sub.wait(Duration::from_millis(10));
                        }
                        Err(lapped) => missed += lapped.missed,
                    }
                }
                assert_eq!(seen + missed, total);
                (seen, missed)
            })
        })
        .collect();

    let writers: Vec<_> = (0..WRITERS)
        .map(|wid| {
            let ring = ring.clone();
            thread::spawn(move || {
                for ctr in 0..n {
                    let len = len_for(ctr);
                    let write = |buf: &mut [u8], meta: &mut EventMeta| {
                        let s = stamp(wid, ctr);
                        buf[..STAMP].copy_from_slice(&s);
                        buf[STAMP..len - STAMP].fill(ctr as u8);
                        buf[len - STAMP..].copy_from_slice(&s);
                        meta.seq = ctr;
                        wid
                    };
                    // Mix blocking and non-blocking writers.
                    if wid == 0 {
                        while ring.try_write_with(len, write).is_err() {
                            thread::yield_now();
                        }
                    } else {
                        ring.write_with(len, write).unwrap();
                    }
                }
            })
        })
        .collect();

    for w in writers {
        w.join().unwrap();
    }
    done.store(true, Ordering::Release);
    // Wake subscribers parked with a timeout.
    ring.notifier().notify();
    for g in gating {
        assert_eq!(g.join().unwrap(), total);
    }
    for s in subscribers {
        let (seen, missed) = s.join().unwrap();
        eprintln!("subscriber: seen {seen}, missed {missed} of {total}");
    }
}
