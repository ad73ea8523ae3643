//! Helpers shared by the vector search tests.
#![allow(clippy::unwrap_used, dead_code)]

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use xaeroflux::{NgramTextExtractor, VectorExtractor, VectorSearchConfig, VectorStats, XaeroFlux};

pub const TEXT: u32 = 1000;
pub const OTHER: u32 = 2000;
pub const DIM: usize = 96;

const WORDS: [&str; 24] = [
    "offline", "first", "event", "store", "peer", "sync", "vector", "search", "merkle", "mountain",
    "range", "group", "commit", "ledger", "gossip", "relay", "cursor", "snapshot", "index",
    "graph", "layer", "author", "clock", "ticket",
];

/// Deterministic text number `i`: five words picked by a small hash.
pub fn text(i: u64) -> String {
    let mut x = i.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xDEAD_BEEF;
    let mut out = Vec::new();
    for _ in 0..5 {
        x ^= x >> 29;
        x = x.wrapping_mul(0xBF58_476D_1CE4_E5B9);
        out.push(WORDS[(x >> 40) as usize % WORDS.len()]);
    }
    format!("{} #{i}", out.join(" "))
}

pub fn open(dir: &Path) -> XaeroFlux {
    XaeroFlux::builder(dir).open().unwrap()
}

pub fn extractor() -> Arc<dyn VectorExtractor> {
    Arc::new(NgramTextExtractor::new(DIM, 3).unwrap())
}

/// Small graph parameters: the index crate is unoptimized in debug tests.
pub fn config() -> VectorSearchConfig {
    let mut c = VectorSearchConfig::new(DIM);
    c.max_connections = 8;
    c.ef_construction = 48;
    c.ef_search = 48;
    c
}

pub fn start(store: &XaeroFlux, types: &[u32], config: VectorSearchConfig) {
    let ex: HashMap<u32, Arc<dyn VectorExtractor>> =
        types.iter().map(|&t| (t, extractor())).collect();
    store.start_vector_search(ex, config).unwrap();
}

/// Flushes, then polls until every committed event was looked at.
pub fn wait_indexed(store: &XaeroFlux) -> VectorStats {
    store.flush().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let s = store.vector_search_stats().unwrap();
        if s.pending == 0 {
            return s;
        }
        assert!(Instant::now() < deadline, "indexer stuck: {s:?}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Hits of a fixed query set as (position, similarity bits) for exact comparison.
pub fn results(store: &XaeroFlux, queries: u64) -> Vec<Vec<(u64, u32)>> {
    let e = NgramTextExtractor::new(DIM, 3).unwrap();
    (0..queries)
        .map(|i| {
            let q = e.embed(&text(i * 7 + 3)).unwrap();
            store
                .search_vector(&q, 5, -1.0)
                .unwrap()
                .into_iter()
                .map(|h| (h.local_seq, h.similarity.to_bits()))
                .collect()
        })
        .collect()
}
