//! Recall@10 of the graph against the exact scan at the default ef.
#![allow(clippy::unwrap_used)]

mod common;

use xaeroflux_vector::{DEFAULT_EF_SEARCH, HnswIndex, HnswParams, Metric};

/// Debug builds of this crate are unoptimised: use a smaller set there.
#[cfg(debug_assertions)]
const N: usize = 3_000;
#[cfg(not(debug_assertions))]
const N: usize = 10_000;
const DIM: usize = 64;
const QUERIES: usize = 200;

fn recall_at_10(metric: Metric) -> f64 {
    let data = common::clustered(N, DIM, 20, 3.0, 7);
    let queries = common::clustered(QUERIES, DIM, 20, 3.0, 8);
    let mut params = HnswParams::new(DIM);
    params.metric = metric;
    params.max_elements = N;
    let index = HnswIndex::new(params).unwrap();
    for (i, v) in data.iter().enumerate() {
        index.insert(i as u64, v).unwrap();
    }
    assert_eq!(index.len(), N);
    let mut hits = 0;
    for q in &queries {
        let exact = index.search_exact(q, 10).unwrap();
        let approx = index.search(q, 10, DEFAULT_EF_SEARCH).unwrap();
        assert_eq!(approx.len(), 10);
        assert!(
            approx
                .windows(2)
                .all(|w| w[0].similarity >= w[1].similarity)
        );
        hits += approx
            .iter()
            .filter(|a| exact.iter().any(|e| e.key == a.key))
            .count();
    }
    let r = hits as f64 / (QUERIES * 10) as f64;
    println!("{metric:?}: recall@10 {r:.4} at ef {DEFAULT_EF_SEARCH}, n {N}");
    r
}

#[test]
fn cosine_recall_at_default_ef() {
    let r = recall_at_10(Metric::Cosine);
    assert!(r >= 0.95, "recall@10 {r}");
}

#[test]
fn l2_recall_at_default_ef() {
    let r = recall_at_10(Metric::L2);
    assert!(r >= 0.95, "recall@10 {r}");
}

#[test]
fn same_seed_same_graph() {
    let data = common::clustered(500, 16, 5, 0.5, 3);
    let build = || {
        let index = HnswIndex::new(HnswParams::new(16)).unwrap();
        for (i, v) in data.iter().enumerate() {
            index.insert(i as u64, v).unwrap();
        }
        index.to_bytes(0).unwrap()
    };
    assert_eq!(build(), build());
}
