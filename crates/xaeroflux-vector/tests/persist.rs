//! Snapshot codec: round trips, atomic save, and hostile bytes.
#![allow(clippy::unwrap_used)]

mod common;

use proptest::prelude::*;
use xaeroflux_vector::{Error, FormatError, HnswIndex, HnswParams, Metric};

fn build(n: usize, dim: usize, metric: Metric, m: usize) -> HnswIndex {
    let mut p = HnswParams::new(dim);
    p.metric = metric;
    p.max_connections = m;
    p.ef_construction = 32;
    let index = HnswIndex::new(p).unwrap();
    for (i, v) in common::clustered(n, dim, 3, 0.5, n as u64)
        .iter()
        .enumerate()
    {
        index.insert(1_000 + i as u64 * 3, v).unwrap();
    }
    index
}

#[test]
fn save_load_answers_identically() {
    let index = build(800, 24, Metric::Cosine, 8);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v.idx");
    index.save(&path, 42).unwrap();
    assert!(!dir.path().join("v.idx.tmp").exists());
    let (loaded, pos) = HnswIndex::load(&path).unwrap();
    assert_eq!(pos, 42);
    assert_eq!(loaded.len(), 800);
    for q in common::clustered(50, 24, 3, 0.5, 99) {
        assert_eq!(
            index.search(&q, 10, 32).unwrap(),
            loaded.search(&q, 10, 32).unwrap()
        );
    }
    // Inserting after a reload continues the same level sequence as without it.
    let extra = common::clustered(20, 24, 3, 0.5, 5);
    for (i, v) in extra.iter().enumerate() {
        index.insert(i as u64, v).unwrap();
        loaded.insert(i as u64, v).unwrap();
    }
    assert_eq!(index.to_bytes(7).unwrap(), loaded.to_bytes(7).unwrap());
    assert_eq!(
        std::fs::read(&path).unwrap().len(),
        std::fs::metadata(&path).unwrap().len() as usize
    );
}

#[test]
fn corrupt_truncated_and_foreign_files_are_errors() {
    let bytes = build(100, 8, Metric::Cosine, 4).to_bytes(9).unwrap();
    assert!(HnswIndex::from_bytes(&bytes).is_ok());
    let e = |b: &[u8]| HnswIndex::from_bytes(b).unwrap_err();
    assert!(matches!(
        e(b"hello world, not an index"),
        Error::Format(FormatError::BadMagic)
    ));
    assert!(matches!(e(&[]), Error::Format(FormatError::BadMagic)));
    assert!(matches!(
        e(&bytes[..bytes.len() - 1]),
        Error::Format(FormatError::LengthMismatch { .. })
    ));
    assert!(matches!(
        e(&bytes[..200]),
        Error::Format(FormatError::LengthMismatch { .. })
    ));
    let mut flipped = bytes.clone();
    flipped[500] ^= 1;
    assert!(matches!(e(&flipped), Error::Format(FormatError::Checksum)));
    let mut version = bytes.clone();
    version[8] = 9;
    assert!(matches!(
        e(&version),
        Error::Format(FormatError::UnsupportedVersion { version: 9 })
    ));
    // A header claiming 2^40 nodes in a small file is rejected before any allocation.
    let mut huge = bytes.clone();
    huge[56..64].copy_from_slice(&(1u64 << 40).to_le_bytes());
    assert!(matches!(
        e(&huge),
        Error::Format(FormatError::Invalid { .. } | FormatError::LengthMismatch { .. })
    ));
    let mut huge = bytes.clone();
    huge[56..64].copy_from_slice(&(1u64 << 30).to_le_bytes());
    assert!(matches!(
        e(&huge),
        Error::Format(FormatError::LengthMismatch { .. })
    ));
    let dir = tempfile::tempdir().unwrap();
    assert!(matches!(
        HnswIndex::load(&dir.path().join("missing")),
        Err(Error::Io(_))
    ));
}

/// Re-signs bytes after tampering, so structural checks (not the checksum) are hit.
fn reseal(mut b: Vec<u8>) -> Vec<u8> {
    let body = b.len() - 32;
    let sum = *blake3::hash(&b[..body]).as_bytes();
    b[body..].copy_from_slice(&sum);
    b
}

#[test]
fn structural_checks_behind_a_valid_checksum() {
    let index = build(60, 4, Metric::Cosine, 4);
    let bytes = index.to_bytes(0).unwrap();
    let n = 60;
    let links0 = 80 + 8 * n + n + 4 * 4 * n;
    // Link to a node id out of range.
    let mut b = bytes.clone();
    b[links0 + 4..links0 + 8].copy_from_slice(&9_999u32.to_le_bytes());
    assert!(matches!(
        HnswIndex::from_bytes(&reseal(b)),
        Err(Error::Format(FormatError::Invalid { .. }))
    ));
    // List count above capacity.
    let mut b = bytes.clone();
    b[links0..links0 + 4].copy_from_slice(&1_000u32.to_le_bytes());
    assert!(matches!(
        HnswIndex::from_bytes(&reseal(b)),
        Err(Error::Format(FormatError::Invalid { .. }))
    ));
    // Entry point out of range.
    let mut b = bytes.clone();
    b[72..76].copy_from_slice(&77u32.to_le_bytes());
    assert!(matches!(
        HnswIndex::from_bytes(&reseal(b)),
        Err(Error::Format(FormatError::Invalid { .. }))
    ));
    // NaN vector component.
    let mut b = bytes.clone();
    let v0 = 80 + 8 * n + n;
    b[v0..v0 + 4].copy_from_slice(&f32::NAN.to_le_bytes());
    assert!(matches!(
        HnswIndex::from_bytes(&reseal(b)),
        Err(Error::Format(FormatError::Invalid { .. }))
    ));
    // Duplicate key.
    let mut b = bytes.clone();
    let k1: [u8; 8] = b[88..96].try_into().unwrap();
    b[80..88].copy_from_slice(&k1);
    assert!(matches!(
        HnswIndex::from_bytes(&reseal(b)),
        Err(Error::Format(FormatError::Invalid { .. }))
    ));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn round_trip(n in 0usize..60, dim in 1usize..20, m in 2usize..6, l2 in any::<bool>(), pos in any::<u64>()) {
        let metric = if l2 { Metric::L2 } else { Metric::Cosine };
        let index = build(n, dim, metric, m);
        let bytes = index.to_bytes(pos).unwrap();
        let (back, p) = HnswIndex::from_bytes(&bytes).unwrap();
        prop_assert_eq!(p, pos);
        prop_assert_eq!(back.len(), n);
        prop_assert_eq!(back.to_bytes(pos).unwrap(), bytes);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = HnswIndex::from_bytes(&bytes);
    }

    #[test]
    fn mutated_valid_files_never_panic(idx in any::<prop::sample::Index>(), byte in any::<u8>(), reseal_it in any::<bool>(), cut in 0usize..64) {
        let bytes = build(30, 3, Metric::Cosine, 3).to_bytes(1).unwrap();
        let mut b = bytes;
        let i = idx.index(b.len());
        b[i] = byte;
        let b = if reseal_it { reseal(b) } else { b };
        let r = HnswIndex::from_bytes(&b[..b.len().saturating_sub(cut)]);
        if let Ok((index, _)) = r {
            // Accepted only if still structurally sound: search must work.
            let _ = index.search(&[1.0, 0.0, 0.0], 5, 10).unwrap();
        }
    }
}
