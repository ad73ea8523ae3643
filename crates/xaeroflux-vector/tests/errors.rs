//! Bad input is an error, never a panic.
#![allow(clippy::unwrap_used)]

use xaeroflux_vector::{Error, HnswIndex, HnswParams, Metric};

fn index() -> HnswIndex {
    let index = HnswIndex::new(HnswParams::new(4)).unwrap();
    index.insert(1, &[1.0, 0.0, 0.0, 0.0]).unwrap();
    index
}

#[test]
fn insert_errors() {
    let index = index();
    assert!(matches!(
        index.insert(2, &[1.0, 0.0]),
        Err(Error::DimensionMismatch {
            expected: 4,
            got: 2
        })
    ));
    assert!(matches!(
        index.insert(2, &[1.0, f32::NAN, 0.0, 0.0]),
        Err(Error::NonFinite { index: 1 })
    ));
    assert!(matches!(
        index.insert(2, &[f32::INFINITY, 0.0, 0.0, 0.0]),
        Err(Error::NonFinite { index: 0 })
    ));
    assert!(matches!(index.insert(2, &[0.0; 4]), Err(Error::ZeroVector)));
    assert!(matches!(
        index.insert(1, &[0.0, 1.0, 0.0, 0.0]),
        Err(Error::DuplicateKey { key: 1 })
    ));
    assert_eq!(index.len(), 1);
    // Huge but finite components normalise without overflow.
    index.insert(3, &[f32::MAX, f32::MAX, 0.0, 0.0]).unwrap();
    let v = index.vector(3).unwrap();
    assert!((v[0] - std::f32::consts::FRAC_1_SQRT_2).abs() < 1e-6);
}

#[test]
fn search_errors() {
    let index = index();
    let q = [1.0, 0.0, 0.0, 0.0];
    assert!(matches!(index.search(&q, 0, 10), Err(Error::ZeroK)));
    assert!(matches!(
        index.search(&q[..3], 1, 10),
        Err(Error::DimensionMismatch { .. })
    ));
    assert!(matches!(
        index.search(&[f32::NAN, 0.0, 0.0, 0.0], 1, 10),
        Err(Error::NonFinite { .. })
    ));
    assert!(matches!(
        index.search(&[0.0; 4], 1, 10),
        Err(Error::ZeroVector)
    ));
    for t in [1.5, -1.01, f32::NAN, f32::INFINITY] {
        assert!(
            matches!(
                index.search_threshold(&q, 1, 10, t),
                Err(Error::ThresholdOutOfRange { .. })
            ),
            "{t}"
        );
    }
    assert!(matches!(index.search_batch(&[q], 0, 10), Err(Error::ZeroK)));
    assert!(matches!(
        index.search_batch(&[vec![1.0]], 1, 10),
        Err(Error::DimensionMismatch { .. })
    ));
    assert!(matches!(index.search_exact(&q, 0), Err(Error::ZeroK)));
    // ef = 0 and k larger than the index are fine.
    assert_eq!(index.search(&q, 100, 0).unwrap().len(), 1);
}

#[test]
fn threshold_filters_and_needs_cosine() {
    let index = index();
    index.insert(2, &[0.0, 1.0, 0.0, 0.0]).unwrap();
    index.insert(3, &[1.0, 1.0, 0.0, 0.0]).unwrap();
    let hits = index
        .search_threshold(&[1.0, 0.0, 0.0, 0.0], 10, 10, 0.5)
        .unwrap();
    assert_eq!(hits.iter().map(|h| h.key).collect::<Vec<_>>(), vec![1, 3]);
    assert!((hits[0].similarity - 1.0).abs() < 1e-6);
    let batch = index
        .search_batch_threshold(&[[0.0, 1.0, 0.0, 0.0]], 10, 10, 0.9)
        .unwrap();
    assert_eq!(batch[0].len(), 1);

    let mut p = HnswParams::new(2);
    p.metric = Metric::L2;
    let l2 = HnswIndex::new(p).unwrap();
    l2.insert(1, &[0.0, 0.0]).unwrap(); // a zero vector is fine for L2
    assert!(matches!(
        l2.search_threshold(&[1.0, 0.0], 1, 10, 0.5),
        Err(Error::ThresholdNeedsCosine)
    ));
    assert_eq!(l2.search(&[1.0, 0.0], 1, 10).unwrap()[0].similarity, -1.0);
}

#[test]
fn empty_index_and_bad_params() {
    let index = HnswIndex::new(HnswParams::new(3)).unwrap();
    assert!(index.search(&[1.0, 0.0, 0.0], 5, 10).unwrap().is_empty());
    assert!(index.is_empty());
    for f in [
        |p: &mut HnswParams| p.dimension = 0,
        |p: &mut HnswParams| p.max_connections = 1,
        |p: &mut HnswParams| p.max_connections = 100_000,
        |p: &mut HnswParams| p.max_layer = 0,
        |p: &mut HnswParams| p.ef_construction = 0,
    ] {
        let mut p = HnswParams::new(3);
        f(&mut p);
        assert!(matches!(
            HnswIndex::new(p),
            Err(Error::InvalidParams { .. })
        ));
    }
    // A huge max_elements is only a capped reservation, not an allocation failure.
    let mut p = HnswParams::new(3);
    p.max_elements = usize::MAX;
    let big = HnswIndex::new(p).unwrap();
    assert!(big.memory_bytes() <= 2 << 30);
}
