//! The vector index file: reload and catch up, corrupt and mismatched files, and the
//! equality of every one of these with a fresh build over the same store.
#![allow(clippy::unwrap_used)]

mod vector_common;

use std::sync::{Arc, Mutex};

use vector_common::*;
use xaeroflux::{IndexLoad, VECTOR_INDEX_FILE, VectorProgress};

/// Deletes the index file, rebuilds from the store and returns the results.
fn fresh_results(dir: &std::path::Path, queries: u64) -> (Vec<Vec<(u64, u32)>>, u64) {
    let store = open(dir);
    std::fs::remove_file(dir.join(VECTOR_INDEX_FILE)).unwrap();
    start(&store, &[TEXT], config());
    let s = wait_indexed(&store);
    assert_eq!(s.load, IndexLoad::Missing);
    (results(&store, queries), s.indexed)
}

#[test]
fn reload_catches_up_and_equals_a_fresh_build() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open(dir.path());
        for i in 0..250 {
            store.write_event(text(i).as_bytes(), TEXT).unwrap();
        }
        start(&store, &[TEXT], config());
        wait_indexed(&store);
        store.close().unwrap();
    }
    assert!(dir.path().join(VECTOR_INDEX_FILE).exists());
    let (reloaded, indexed) = {
        let store = open(dir.path());
        // Written while vector search is not running: caught up from the file's position.
        for i in 250..350 {
            store.write_event(text(i).as_bytes(), TEXT).unwrap();
        }
        store.flush().unwrap();
        let seen = Arc::new(Mutex::new(Vec::<VectorProgress>::new()));
        let mut c = config();
        let sink = seen.clone();
        c.on_progress = Some(Arc::new(move |p| sink.lock().unwrap().push(p)));
        start(&store, &[TEXT], c);
        let s = wait_indexed(&store);
        assert_eq!(s.load, IndexLoad::Loaded);
        assert_eq!(s.indexed, 350);
        assert_eq!(s.per_type.get(&TEXT), Some(&350));
        let seen = seen.lock().unwrap();
        assert_eq!(
            seen.first().map(|p| (p.position, p.target)),
            Some((250, 350))
        );
        assert_eq!(seen.last().map(|p| p.position), Some(350));
        let r = results(&store, 30);
        store.close().unwrap();
        (r, s.indexed)
    };
    let (fresh, fresh_indexed) = fresh_results(dir.path(), 30);
    assert_eq!(indexed, fresh_indexed);
    assert_eq!(reloaded, fresh);
    assert!(reloaded.iter().all(|r| r.len() == 5));
}

#[test]
fn corrupt_or_mismatched_files_are_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(VECTOR_INDEX_FILE);
    let before = {
        let store = open(dir.path());
        for i in 0..200 {
            store.write_event(text(i).as_bytes(), TEXT).unwrap();
        }
        start(&store, &[TEXT], config());
        wait_indexed(&store);
        let r = results(&store, 20);
        store.close().unwrap();
        r
    };
    let good = std::fs::read(&path).unwrap();
    let mut flipped = good.clone();
    let mid = flipped.len() / 2;
    flipped[mid] ^= 0x40;
    let cases: [(&str, Vec<u8>); 4] = [
        ("flipped", flipped),
        ("truncated", good[..good.len() - 7].to_vec()),
        ("garbage", b"not an index at all".to_vec()),
        ("empty", Vec::new()),
    ];
    for (name, bytes) in cases {
        std::fs::write(&path, &bytes).unwrap();
        let store = open(dir.path());
        start(&store, &[TEXT], config());
        let s = wait_indexed(&store);
        assert_eq!(s.load, IndexLoad::Corrupt, "{name}");
        assert_eq!(s.indexed, 200, "{name}");
        assert_eq!(results(&store, 20), before, "{name}");
        store.close().unwrap();
        // The rebuilt file replaced the bad one.
        assert_eq!(std::fs::read(&path).unwrap(), good, "{name}");
    }

    // Other registered types or another config: rebuilt, not mixed.
    let store = open(dir.path());
    start(&store, &[TEXT, OTHER], config());
    assert_eq!(wait_indexed(&store).load, IndexLoad::Mismatch);
    store.close().unwrap();
    let store = open(dir.path());
    let mut c = config();
    c.extractor_version = 2;
    start(&store, &[TEXT], c);
    assert_eq!(wait_indexed(&store).load, IndexLoad::Mismatch);
    store.close().unwrap();
    // A file covering more than the store (e.g. the store was restored from an older
    // copy) is a mismatch too.
    let other = tempfile::tempdir().unwrap();
    std::fs::write(other.path().join(VECTOR_INDEX_FILE), &good).unwrap();
    let store = open(other.path());
    start(&store, &[TEXT], config());
    let s = wait_indexed(&store);
    assert_eq!((s.load, s.indexed), (IndexLoad::Mismatch, 0));
}
