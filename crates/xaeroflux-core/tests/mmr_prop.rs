//! Property tests of the MMR: cross-checked against `ckb-merkle-mountain-range`, every
//! proof verifies, every mutation fails, proof codec round trip, no panics on garbage.
#![allow(clippy::unwrap_used, missing_docs)]

use ckb_merkle_mountain_range::util::MemStore as CkbStore;
use ckb_merkle_mountain_range::{MMR as CkbMmr, Merge};
use proptest::prelude::*;
use xaeroflux_core::mmr::{
    Hash32, MAX_LEAF_COUNT, MemStore, MerkleProof, Mmr, ProofError, leaf_hash, leaf_index_to_pos,
    mmr_size_for_leaves, node_hash,
};

/// ckb's `Merge` with our node hash; its default `merge_peaks(right, left) =
/// merge(right, left)` is our bagging rule.
struct OurMerge;

impl Merge for OurMerge {
    type Item = Hash32;

    fn merge(left: &Hash32, right: &Hash32) -> ckb_merkle_mountain_range::Result<Hash32> {
        Ok(node_hash(left, right))
    }
}

fn leaf(seed: u64, i: u64) -> Hash32 {
    let mut h = blake3::Hasher::new();
    h.update(&seed.to_le_bytes());
    h.update(&i.to_le_bytes());
    *h.finalize().as_bytes()
}

fn ours(seed: u64, n: u64) -> Mmr<MemStore> {
    let mut mmr = Mmr::new(MemStore::new(), 0).unwrap();
    for i in 0..n {
        mmr.push(&leaf(seed, i)).unwrap();
    }
    mmr
}

fn ckb_store(seed: u64, n: u64) -> CkbStore<Hash32> {
    let store = CkbStore::default();
    let mut mmr = CkbMmr::<Hash32, OurMerge, _>::new(0, &store);
    for i in 0..n {
        mmr.push(leaf_hash(&leaf(seed, i))).unwrap();
    }
    mmr.commit().unwrap();
    store
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Batched appends (nodes hashed height by height in SIMD lanes) write the same
    /// nodes in the same order, and keep the same peaks, as one push per leaf, from any
    /// starting length and in batches of any size.
    #[test]
    fn batched_appends_equal_single_pushes(
        start in 0u64..600,
        batches in prop::collection::vec(0usize..300, 1..8),
        seed in any::<u64>(),
    ) {
        let total = start + batches.iter().sum::<usize>() as u64;
        let single = ours(seed, total);
        let mut batched = ours(seed, start);
        let mut next = start;
        for len in batches {
            let hashes: Vec<Hash32> =
                (next..next + len as u64).map(|i| leaf_hash(&leaf(seed, i))).collect();
            let range = batched.push_leaf_hashes(&hashes).unwrap();
            prop_assert_eq!(range, next..next + len as u64);
            next += len as u64;
            let prefix = mmr_size_for_leaves(next).unwrap() as usize;
            prop_assert_eq!(batched.size() as usize, prefix);
            prop_assert_eq!(batched.store().nodes(), &single.store().nodes()[..prefix]);
            if next > 0 {
                prop_assert_eq!(batched.root().unwrap(), single.root_at(next).unwrap());
            }
        }
        prop_assert_eq!(batched.peaks(), single.peaks());
    }

    #[test]
    fn roots_and_proofs_match_ckb(n in 1u64..2000, prefix in any::<prop::sample::Index>(), seed in any::<u64>()) {
        let mmr = ours(seed, n);
        let store = ckb_store(seed, n);
        let size = mmr_size_for_leaves(n).unwrap();
        prop_assert_eq!(mmr.size(), size);
        let ckb = CkbMmr::<Hash32, OurMerge, _>::new(size, &store);
        let root = mmr.root().unwrap();
        prop_assert_eq!(root, ckb.get_root().unwrap());

        for i in 0..n {
            let proof = mmr.proof(i).unwrap();
            let pos = leaf_index_to_pos(i).unwrap();
            let theirs = ckb.gen_proof(vec![pos]).unwrap();
            prop_assert_eq!(proof.items.as_slice(), theirs.proof_items());
            prop_assert_eq!(proof.verify(&root, &leaf(seed, i)), Ok(()));
            prop_assert!(theirs.verify(root, vec![(pos, leaf_hash(&leaf(seed, i)))]).unwrap());
        }

        // A prefix root, as needed to check an older signed checkpoint.
        let k = prefix.index(n as usize) as u64 + 1;
        let prefix_ckb = CkbMmr::<Hash32, OurMerge, _>::new(mmr_size_for_leaves(k).unwrap(), &store);
        let prefix_root = mmr.root_at(k).unwrap();
        prop_assert_eq!(prefix_root, prefix_ckb.get_root().unwrap());
        prop_assert_eq!(prefix_root, ours(seed, k).root().unwrap());
        let i = k / 2;
        let proof = mmr.proof_at(i, k).unwrap();
        let theirs = prefix_ckb.gen_proof(vec![leaf_index_to_pos(i).unwrap()]).unwrap();
        prop_assert_eq!(proof.items.as_slice(), theirs.proof_items());
        prop_assert_eq!(proof.verify(&prefix_root, &leaf(seed, i)), Ok(()));
    }
}

#[derive(Debug, Clone)]
enum Mutation {
    FlipItemBit {
        item: prop::sample::Index,
        bit: u8,
    },
    Leaf {
        bit: u8,
    },
    Root {
        bit: u8,
    },
    LeafIndex {
        delta: u64,
    },
    LeafCount {
        delta: u64,
    },
    DropItem {
        item: prop::sample::Index,
    },
    AddItem {
        item: prop::sample::Index,
        value: [u8; 32],
    },
    SwapItems {
        a: prop::sample::Index,
        b: prop::sample::Index,
    },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<prop::sample::Index>(), any::<u8>())
            .prop_map(|(item, bit)| Mutation::FlipItemBit { item, bit }),
        any::<u8>().prop_map(|bit| Mutation::Leaf { bit }),
        any::<u8>().prop_map(|bit| Mutation::Root { bit }),
        (1u64..u64::MAX).prop_map(|delta| Mutation::LeafIndex { delta }),
        (1u64..u64::MAX).prop_map(|delta| Mutation::LeafCount { delta }),
        any::<prop::sample::Index>().prop_map(|item| Mutation::DropItem { item }),
        (any::<prop::sample::Index>(), any::<[u8; 32]>())
            .prop_map(|(item, value)| Mutation::AddItem { item, value }),
        (any::<prop::sample::Index>(), any::<prop::sample::Index>())
            .prop_map(|(a, b)| Mutation::SwapItems { a, b }),
    ]
}

fn flip(hash: &mut Hash32, bit: u8) {
    hash[usize::from(bit / 8)] ^= 1 << (bit % 8);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn any_mutation_fails(n in 1u64..300, i in any::<prop::sample::Index>(), seed in any::<u64>(), m in mutation()) {
        let mmr = ours(seed, n);
        let i = i.index(n as usize) as u64;
        let mut proof = mmr.proof(i).unwrap();
        let mut root = mmr.root().unwrap();
        let mut value = leaf(seed, i);
        proof.verify(&root, &value).unwrap();
        let len = proof.items.len();
        match m {
            Mutation::FlipItemBit { item, bit } => {
                prop_assume!(len > 0);
                flip(&mut proof.items[item.index(len)], bit);
            }
            Mutation::Leaf { bit } => flip(&mut value, bit),
            Mutation::Root { bit } => flip(&mut root, bit),
            Mutation::LeafIndex { delta } => proof.leaf_index = proof.leaf_index.wrapping_add(delta),
            Mutation::LeafCount { delta } => proof.leaf_count = proof.leaf_count.wrapping_add(delta),
            Mutation::DropItem { item } => {
                prop_assume!(len > 0);
                proof.items.remove(item.index(len));
            }
            Mutation::AddItem { item, value } => proof.items.insert(item.index(len + 1), value),
            Mutation::SwapItems { a, b } => {
                prop_assume!(len > 1);
                let (a, b) = (a.index(len), b.index(len));
                prop_assume!(proof.items[a] != proof.items[b]);
                proof.items.swap(a, b);
            }
        }
        prop_assert!(proof.verify(&root, &value).is_err());
    }

    #[test]
    fn proof_codec_round_trip(n in 1u64..500, i in any::<prop::sample::Index>(), seed in any::<u64>()) {
        let mmr = ours(seed, n);
        let proof = mmr.proof(i.index(n as usize) as u64).unwrap();
        let bytes = proof.encode();
        prop_assert_eq!(bytes.len(), 19 + 32 * proof.items.len());
        prop_assert_eq!(MerkleProof::decode(&bytes).unwrap(), proof);
    }

    #[test]
    fn decode_arbitrary_bytes_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        if let Ok(proof) = MerkleProof::decode(&bytes) {
            // Only canonical encodings are accepted.
            prop_assert_eq!(proof.encode(), bytes);
        }
    }

    #[test]
    fn decode_near_valid_headers_never_panics(
        leaf_index in any::<u64>(),
        leaf_count in prop_oneof![0u64..70, Just(u64::MAX), Just(MAX_LEAF_COUNT), any::<u64>()],
        count in 0u16..200,
        extra in 0usize..3,
    ) {
        let mut bytes = vec![1u8];
        bytes.extend_from_slice(&leaf_index.to_le_bytes());
        bytes.extend_from_slice(&leaf_count.to_le_bytes());
        bytes.extend_from_slice(&count.to_le_bytes());
        bytes.resize(19 + 32 * usize::from(count) + extra, 0x5a);
        if let Ok(proof) = MerkleProof::decode(&bytes) {
            prop_assert!(proof.verify(&[0; 32], &[0; 32]).is_err());
        }
    }

    #[test]
    fn verify_arbitrary_proofs_never_panics(
        leaf_index in prop_oneof![0u64..64, any::<u64>()],
        leaf_count in prop_oneof![0u64..64, Just(u64::MAX), Just(MAX_LEAF_COUNT), Just(MAX_LEAF_COUNT + 1), any::<u64>()],
        items in prop::collection::vec(any::<[u8; 32]>(), 0..140),
        root in any::<[u8; 32]>(),
        value in any::<[u8; 32]>(),
    ) {
        let proof = MerkleProof { leaf_index, leaf_count, items };
        let result = proof.verify(&root, &value);
        prop_assert!(result.is_err());
        if leaf_count == u64::MAX {
            let too_large = matches!(result, Err(ProofError::LeafCountTooLarge { .. }));
            prop_assert!(too_large);
        }
    }
}

#[test]
fn every_proof_of_every_leaf_verifies() {
    for n in 1..=130u64 {
        let mmr = ours(n, n);
        let root = mmr.root().unwrap();
        for i in 0..n {
            let proof = mmr.proof(i).unwrap();
            assert_eq!(proof.verify(&root, &leaf(n, i)), Ok(()), "n={n} i={i}");
            for j in (0..n).filter(|j| *j != i) {
                assert!(proof.verify(&root, &leaf(n, j)).is_err());
            }
        }
    }
}
