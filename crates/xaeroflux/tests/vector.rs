//! Vector search inside the engine: real-time indexing, search, filters, errors.
#![allow(clippy::unwrap_used)]

mod vector_common;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use vector_common::*;
use xaeroflux::{
    Error, IndexLoad, NgramTextExtractor, VectorExtractor, VectorFilter, VectorIndexError,
    VectorSearchConfig, VectorSearchError,
};

fn embed(s: &str) -> Vec<f32> {
    NgramTextExtractor::new(DIM, 3).unwrap().embed(s).unwrap()
}

#[test]
fn indexes_registered_types_and_finds_near_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let mut ids = Vec::new();
    for i in 0..150 {
        ids.push(store.write_event(text(i).as_bytes(), TEXT).unwrap());
        store
            .write_event(format!("other {}", text(i)).as_bytes(), OTHER)
            .unwrap();
    }
    // Not UTF-8: the n-gram extractor has no vector for it.
    store.write_event(&[0xff, 0xfe, 0xfd], TEXT).unwrap();
    store.flush().unwrap();
    start(&store, &[TEXT], config());
    let s = wait_indexed(&store);
    assert_eq!(s.indexed, 150);
    assert_eq!(s.per_type.get(&TEXT), Some(&150));
    assert_eq!(s.per_type.get(&OTHER), None);
    assert_eq!(s.skipped, 1);
    assert_eq!(s.load, IndexLoad::Missing);
    assert_eq!(s.position, 301);
    assert!(s.memory_bytes > 0);

    // A near-duplicate (case, a typo, a dropped character) finds the original first.
    let original = text(42);
    let mut typo = original.to_uppercase();
    typo.replace_range(3..4, "x");
    typo.pop();
    let hits = store.search_vector_events(&embed(&typo), 3, 0.0).unwrap();
    assert_eq!(hits[0].id, ids[42], "{hits:?}");
    assert_eq!(hits[0].event.payload, original.as_bytes());
    assert!(hits[0].similarity > 0.6, "{}", hits[0].similarity);
    assert!(hits.windows(2).all(|w| w[0].similarity >= w[1].similarity));
    // Only registered types come back.
    let all = store
        .search_vector_events(&embed("other sync"), 50, -1.0)
        .unwrap();
    assert_eq!(all.len(), 50);
    assert!(all.iter().all(|h| h.event.header.event_type == TEXT));
    // A threshold cuts the tail.
    let strict = store
        .search_vector_events(&embed(&original), 50, 0.99)
        .unwrap();
    assert!(!strict.is_empty() && strict.iter().all(|h| h.similarity >= 0.99));
    assert_eq!(strict[0].id, ids[42]);
}

#[test]
fn live_writes_become_searchable() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    start(&store, &[TEXT], config());
    let id = store
        .write_event(b"real time indexing of committed events", TEXT)
        .unwrap();
    let q = embed("real-time indexing of committed event");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let hits = store.search_vector_events(&q, 1, 0.5).unwrap();
        if hits.first().map(|h| h.id) == Some(id) {
            break;
        }
        assert!(Instant::now() < deadline, "never indexed");
        std::thread::sleep(Duration::from_millis(5));
    }
    // Events arriving later are picked up as well, in order, with nothing skipped.
    for i in 0..100 {
        store.write_event(text(i).as_bytes(), TEXT).unwrap();
    }
    let s = wait_indexed(&store);
    assert_eq!(s.indexed, 101);
    assert_eq!(s.skipped, 0);
}

fn vector_err(e: Error) -> VectorSearchError {
    match e {
        Error::Vector(v) => v,
        other => panic!("not a vector error: {other:?}"),
    }
}

/// Returns fixed vectors depending on the payload: wrong dimension, NaN, zero, or panics.
struct Unruly;

impl VectorExtractor for Unruly {
    fn extract_vector(&self, data: &[u8]) -> Option<Vec<f32>> {
        match data {
            b"short" => Some(vec![1.0; DIM - 1]),
            b"nan" => Some(vec![f32::NAN; DIM]),
            b"zero" => Some(vec![0.0; DIM]),
            b"none" => None,
            b"panic" => panic!("extractor bug"),
            other => NgramTextExtractor::new(DIM, 3)
                .unwrap()
                .extract_vector(other),
        }
    }
}

#[test]
fn bad_input_is_a_typed_error_or_a_skip() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let q = embed("hello");
    let not_started = |e: Error| matches!(vector_err(e), VectorSearchError::NotStarted);
    assert!(not_started(store.search_vector(&q, 1, 0.0).unwrap_err()));
    assert!(not_started(store.vector_search_stats().unwrap_err()));
    assert!(not_started(
        store
            .search_vectors(std::slice::from_ref(&q), 1, 0.0)
            .unwrap_err()
    ));

    let ex = || -> HashMap<u32, Arc<dyn VectorExtractor>> {
        HashMap::from([(TEXT, Arc::new(Unruly) as Arc<dyn VectorExtractor>)])
    };
    let bad = |c: VectorSearchConfig, name: &str| {
        let e = vector_err(store.start_vector_search(ex(), c).unwrap_err());
        assert!(
            matches!(e, VectorSearchError::InvalidConfig { name: n, .. } if n == name),
            "{e:?}"
        );
    };
    bad(VectorSearchConfig::new(0), "dimension");
    let mut c = config();
    c.max_connections = 1;
    bad(c, "max_connections");
    let mut c = config();
    c.ef_search = 0;
    bad(c, "ef_search");
    assert!(matches!(
        vector_err(
            store
                .start_vector_search(HashMap::new(), config())
                .unwrap_err()
        ),
        VectorSearchError::NoExtractors
    ));

    store.start_vector_search(ex(), config()).unwrap();
    assert!(matches!(
        vector_err(store.start_vector_search(ex(), config()).unwrap_err()),
        VectorSearchError::AlreadyStarted
    ));
    for p in ["short", "nan", "zero", "none", "panic", "a fine text"] {
        store.write_event(p.as_bytes(), TEXT).unwrap();
    }
    let s = wait_indexed(&store);
    assert_eq!((s.indexed, s.skipped), (1, 5), "{s:?}");

    let index_err = |e: Error| match vector_err(e) {
        VectorSearchError::Index(i) => i,
        other => panic!("{other:?}"),
    };
    assert!(matches!(
        index_err(store.search_vector(&q[1..], 1, 0.0).unwrap_err()),
        VectorIndexError::DimensionMismatch { expected: DIM, got } if got == DIM - 1
    ));
    let mut nan = q.clone();
    nan[3] = f32::NAN;
    assert!(matches!(
        index_err(store.search_vector(&nan, 1, 0.0).unwrap_err()),
        VectorIndexError::NonFinite { index: 3 }
    ));
    nan[3] = f32::INFINITY;
    assert!(matches!(
        index_err(store.search_vectors(&[nan], 1, 0.0).unwrap_err()),
        VectorIndexError::NonFinite { index: 3 }
    ));
    assert!(matches!(
        index_err(store.search_vector(&q, 0, 0.0).unwrap_err()),
        VectorIndexError::ZeroK
    ));
    for t in [1.5, -1.01, f32::NAN] {
        assert!(matches!(
            index_err(store.search_vector(&q, 1, t).unwrap_err()),
            VectorIndexError::ThresholdOutOfRange { .. }
        ));
    }
    // Stopping persists and makes searching an error again; a restart works.
    store.stop_vector_search().unwrap();
    assert!(not_started(store.search_vector(&q, 1, 0.0).unwrap_err()));
    assert!(dir.path().join(xaeroflux::VECTOR_INDEX_FILE).exists());
    store.start_vector_search(ex(), config()).unwrap();
    let s = wait_indexed(&store);
    assert_eq!((s.indexed, s.load), (1, IndexLoad::Loaded));
    assert_eq!(s.last_persisted_position, Some(6));
}

#[test]
fn filters_and_batches() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let g = store.create_group().unwrap();
    // Group `g` is a 5% minority: a filtered search must still find k of them.
    let mut in_g = Vec::new();
    for i in 0..200 {
        if i % 20 == 0 {
            in_g.push(
                store
                    .write_event_to(g.id(), text(i).as_bytes(), OTHER)
                    .unwrap(),
            );
        } else {
            store.write_event(text(i).as_bytes(), TEXT).unwrap();
        }
    }
    start(&store, &[TEXT, OTHER], config());
    let s = wait_indexed(&store);
    assert_eq!(s.per_type.get(&OTHER), Some(&10));
    assert_eq!(s.per_type.get(&TEXT), Some(&190));

    let q = embed(&text(5));
    let f = VectorFilter {
        groups: vec![g.id()],
        ..Default::default()
    };
    let hits = store
        .vector_events(&store.search_vector_filtered(&q, 8, -1.0, &f).unwrap())
        .unwrap();
    assert_eq!(hits.len(), 8);
    assert!(hits.iter().all(|h| in_g.contains(&h.id)));
    let f = VectorFilter {
        event_types: vec![OTHER],
        authors: vec![store.author()],
        ..Default::default()
    };
    assert_eq!(
        store
            .search_vector_filtered(&q, 50, -1.0, &f)
            .unwrap()
            .len(),
        10
    );
    let f = VectorFilter {
        authors: vec![xaeroflux::AuthorId([7; 32])],
        ..Default::default()
    };
    assert!(
        store
            .search_vector_filtered(&q, 5, -1.0, &f)
            .unwrap()
            .is_empty()
    );

    // A batch answers exactly like one search per query, in query order.
    let queries: Vec<Vec<f32>> = (0..40).map(|i| embed(&text(i * 3))).collect();
    let batch = store.search_vectors(&queries, 4, 0.1).unwrap();
    assert_eq!(batch.len(), queries.len());
    for (q, b) in queries.iter().zip(&batch) {
        assert_eq!(&store.search_vector(q, 4, 0.1).unwrap(), b);
    }
}

#[test]
fn matches_resolve_to_the_same_events_as_copied_hits() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let mut ids = Vec::new();
    for i in 0..120 {
        ids.push(store.write_event(text(i).as_bytes(), TEXT).unwrap());
        store.write_event(b"not indexed", OTHER).unwrap();
    }
    store.flush().unwrap();
    start(&store, &[TEXT], config());
    wait_indexed(&store);
    for i in [3, 57, 118] {
        let q = embed(&text(i));
        let matches = store.search_vector(&q, 6, -1.0).unwrap();
        let hits = store.search_vector_events(&q, 6, -1.0).unwrap();
        assert_eq!(matches.len(), 6);
        assert_eq!(hits.len(), 6);
        // The exact text is its own nearest neighbour.
        assert_eq!(hits[0].id, ids[i as usize]);
        let snap = store.read().unwrap();
        for (m, h) in matches.iter().zip(&hits) {
            assert_eq!((m.local_seq, m.similarity), (h.local_seq, h.similarity));
            // Borrowed in place: the same event, the same id once hashed.
            let se = m.event(&snap).unwrap().expect("committed");
            assert_eq!(se.local_seq, h.local_seq);
            assert_eq!(se.event.to_owned(), h.event);
            assert_eq!(se.event.id(), h.id);
            assert_eq!(se.event.header.event_type, TEXT);
        }
        drop(snap);
        assert_eq!(store.vector_events(&matches).unwrap(), hits);
    }
}
