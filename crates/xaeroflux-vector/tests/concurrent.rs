//! Searches running while another thread inserts.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::atomic::{AtomicBool, Ordering};

use xaeroflux_vector::{HnswIndex, HnswParams};

#[test]
fn search_while_inserting() {
    const N: usize = 2_000;
    let data = common::clustered(N, 32, 10, 0.5, 11);
    let mut params = HnswParams::new(32);
    params.max_elements = 100; // soft: must grow past it
    params.ef_construction = 64;
    let index = HnswIndex::new(params).unwrap();
    let done = AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| {
            for (i, v) in data.iter().enumerate() {
                index.insert(i as u64, v).unwrap();
            }
            done.store(true, Ordering::Release);
        });
        for r in 0..2 {
            let (index, data, done) = (&index, &data, &done);
            s.spawn(move || {
                let mut searches = 0;
                while !done.load(Ordering::Acquire) || searches < 50 {
                    let q = &data[(searches * 7 + r) % N];
                    let seen = index.len();
                    let hits = index.search(q, 10, 32).unwrap();
                    assert!(hits.len() <= 10);
                    assert!(
                        hits.len() >= seen.min(10),
                        "{} hits with {seen} indexed",
                        hits.len()
                    );
                    assert!(hits.windows(2).all(|w| w[0].similarity >= w[1].similarity));
                    assert!(hits.iter().all(|h| (h.key as usize) < N));
                    let batch = index.search_batch(&data[..4], 3, 16).unwrap();
                    assert_eq!(batch.len(), 4);
                    searches += 1;
                }
            });
        }
    });
    assert_eq!(index.len(), N);
    // Every inserted vector is reachable: it finds itself.
    let found = data
        .iter()
        .enumerate()
        .filter(|(i, v)| index.search(v, 1, 64).unwrap()[0].key == *i as u64)
        .count();
    assert!(
        found as f64 >= 0.99 * N as f64,
        "{found} of {N} find themselves"
    );
}

#[test]
fn concurrent_writers_are_serialised() {
    let data = common::clustered(1_000, 8, 4, 0.5, 12);
    let index = HnswIndex::new(HnswParams::new(8)).unwrap();
    std::thread::scope(|s| {
        for t in 0..4 {
            let (index, data) = (&index, &data);
            s.spawn(move || {
                for i in (t..data.len()).step_by(4) {
                    index.insert(i as u64, &data[i]).unwrap();
                }
            });
        }
    });
    assert_eq!(index.len(), 1_000);
    assert!((0..1_000).all(|k| index.contains(k)));
}
