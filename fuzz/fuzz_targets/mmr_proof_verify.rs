//! `MerkleProof::verify` on arbitrary proofs (index, count, items, root, leaf taken
//! from the input): never panics; a real proof of a small MMR built from the input
//! verifies, and fails once any input-chosen byte of it is changed.
#![no_main]

use libfuzzer_sys::fuzz_target;
use xaeroflux_core::mmr::{MemStore, MerkleProof, Mmr};

fn u64_at(data: &[u8], at: usize) -> u64 {
    let mut b = [0u8; 8];
    for (i, byte) in data.iter().skip(at).take(8).enumerate() {
        b[i] = *byte;
    }
    u64::from_le_bytes(b)
}

fn hash_at(data: &[u8], at: usize) -> [u8; 32] {
    let mut h = [0u8; 32];
    for (i, byte) in data.iter().skip(at).take(32).enumerate() {
        h[i] = *byte;
    }
    h
}

fuzz_target!(|data: &[u8]| {
    // Arbitrary proof: header 16 bytes, root 32, leaf 32, then items.
    let proof = MerkleProof {
        leaf_index: u64_at(data, 0),
        leaf_count: u64_at(data, 8),
        items: data
            .get(80..)
            .unwrap_or_default()
            .chunks(32)
            .take(200)
            .map(|c| hash_at(c, 0))
            .collect(),
    };
    let root = hash_at(data, 16);
    let leaf = hash_at(data, 48);
    let _ = proof.calculate_root(&leaf);
    assert!(proof.verify(&root, &leaf).is_err() || proof.calculate_root(&leaf) == Ok(root));

    // Real proof over an MMR of up to 64 leaves, then one mutation.
    let Some((&n, rest)) = data.split_first() else {
        return;
    };
    let n = u64::from(n % 64) + 1;
    let Ok(mut mmr) = Mmr::new(MemStore::new(), 0) else {
        return;
    };
    for i in 0..n {
        let _ = mmr.push(&[i as u8; 32]);
    }
    let index = u64_at(rest, 0) % n;
    let (Ok(root), Ok(mut proof)) = (mmr.root(), mmr.proof(index)) else {
        return;
    };
    let leaf = [index as u8; 32];
    assert!(proof.verify(&root, &leaf).is_ok());
    let target = usize::from(rest.get(8).copied().unwrap_or(0));
    let flip = rest.get(9).copied().unwrap_or(1).max(1);
    if proof.items.is_empty() {
        let mut other = leaf;
        other[target % 32] ^= flip;
        assert!(proof.verify(&root, &other).is_err());
    } else {
        let len = proof.items.len();
        proof.items[target % len][target % 32] ^= flip;
        assert!(proof.verify(&root, &leaf).is_err());
    }
});
