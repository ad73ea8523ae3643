//! MMR hashing: a leaf hash (`derive_key` over 32 bytes) and a node hash (over 64)
//! through `xaeroflux-core`, which calls BLAKE3's compression function directly, against
//! the same hashes through `blake3::Hasher` in the same run (the anchor: what the code
//! did before).
#![allow(missing_docs)]

use std::hint::black_box;

use blake3::hazmat::{HasherExt, hash_derive_key_context};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use xaeroflux_core::mmr::{LEAF_CONTEXT, NODE_CONTEXT, leaf_hash, node_hash};

fn through_hasher(key: &[u8; 32], parts: &[&[u8; 32]]) -> blake3::Hash {
    let mut hasher = blake3::Hasher::new_from_context_key(key);
    for p in parts {
        hasher.update(black_box(*p));
    }
    hasher.finalize()
}

fn mmr_hashes(c: &mut Criterion) {
    let (left, right) = ([7u8; 32], [9u8; 32]);

    let key = hash_derive_key_context(LEAF_CONTEXT);
    assert_eq!(*through_hasher(&key, &[&left]).as_bytes(), leaf_hash(&left));
    let mut g = c.benchmark_group("hashing/leaf_hash");
    g.throughput(Throughput::Elements(1));
    g.bench_function("xaeroflux", |b| {
        b.iter(|| black_box(leaf_hash(black_box(&left))))
    });
    g.bench_function("blake3-hasher", |b| {
        b.iter(|| black_box(through_hasher(&key, &[&left])))
    });
    g.finish();

    let key = hash_derive_key_context(NODE_CONTEXT);
    let node = through_hasher(&key, &[&left, &right]);
    assert_eq!(*node.as_bytes(), node_hash(&left, &right));
    let mut g = c.benchmark_group("hashing/node_hash");
    g.throughput(Throughput::Elements(1));
    g.bench_function("xaeroflux", |b| {
        b.iter(|| black_box(node_hash(black_box(&left), black_box(&right))))
    });
    g.bench_function("blake3-hasher", |b| {
        b.iter(|| black_box(through_hasher(&key, &[&left, &right])))
    });
    g.finish();
}

criterion_group!(benches, mmr_hashes);
criterion_main!(benches);
