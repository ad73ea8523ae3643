//! Domain-separated BLAKE3 hashes for MMR leaves and interior nodes.

use std::sync::LazyLock;

use blake3::Hasher;
use blake3::hazmat::{ContextKey, HasherExt, hash_derive_key_context};

use super::Hash32;

/// BLAKE3 `derive_key` context of leaf hashes.
pub const LEAF_CONTEXT: &str = "xaeroflux/mmr/v1/leaf";
/// BLAKE3 `derive_key` context of interior-node and peak-bagging hashes.
pub const NODE_CONTEXT: &str = "xaeroflux/mmr/v1/node";

// `Hasher::new_derive_key` re-hashes the context string on every call, which would
// double the cost of the append hot path; the context keys are hashed once instead.
static LEAF_KEY: LazyLock<ContextKey> = LazyLock::new(|| hash_derive_key_context(LEAF_CONTEXT));
static NODE_KEY: LazyLock<ContextKey> = LazyLock::new(|| hash_derive_key_context(NODE_CONTEXT));

/// Hash of a leaf value: `BLAKE3-derive_key("xaeroflux/mmr/v1/leaf", value)`.
///
/// The value is the 32-byte leaf (an event id). Equal to
/// `blake3::Hasher::new_derive_key(LEAF_CONTEXT).update(value).finalize()`.
#[inline]
pub fn leaf_hash(value: &Hash32) -> Hash32 {
    let mut hasher = Hasher::new_from_context_key(&LEAF_KEY);
    hasher.update(value);
    *hasher.finalize().as_bytes()
}

/// Hash of an interior node or a bagging step:
/// `BLAKE3-derive_key("xaeroflux/mmr/v1/node", left || right)`.
#[inline]
pub fn node_hash(left: &Hash32, right: &Hash32) -> Hash32 {
    let mut block = [0u8; 64];
    block[..32].copy_from_slice(left);
    block[32..].copy_from_slice(right);
    let mut hasher = Hasher::new_from_context_key(&NODE_KEY);
    hasher.update(&block);
    *hasher.finalize().as_bytes()
}

/// Bags peak hashes (left to right) into a root, folding from the right:
/// `bag([p]) = p`, `bag([p_0, .., p_k]) = node_hash(bag([p_1, .., p_k]), p_0)`.
///
/// Returns `None` for no peaks.
pub(crate) fn bag_peaks(peaks: &[Hash32]) -> Option<Hash32> {
    let (last, rest) = peaks.split_last()?;
    Some(
        rest.iter()
            .rev()
            .fold(*last, |right, left| node_hash(&right, left)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_plain_derive_key() {
        let v = [7u8; 32];
        let mut h = Hasher::new_derive_key(LEAF_CONTEXT);
        h.update(&v);
        assert_eq!(leaf_hash(&v), *h.finalize().as_bytes());

        let (l, r) = ([1u8; 32], [2u8; 32]);
        let mut h = Hasher::new_derive_key(NODE_CONTEXT);
        h.update(&l);
        h.update(&r);
        assert_eq!(node_hash(&l, &r), *h.finalize().as_bytes());
    }

    #[test]
    fn domains_differ() {
        let v = [0u8; 32];
        assert_ne!(leaf_hash(&v), *blake3::hash(&v).as_bytes());
        assert_ne!(node_hash(&v, &v), leaf_hash(&v));
    }

    #[test]
    fn bagging_folds_from_the_right() {
        let p: Vec<Hash32> = (0u8..3).map(|i| [i; 32]).collect();
        assert_eq!(bag_peaks(&[]), None);
        assert_eq!(bag_peaks(&p[..1]), Some(p[0]));
        let expected = node_hash(&node_hash(&p[2], &p[1]), &p[0]);
        assert_eq!(bag_peaks(&p), Some(expected));
    }
}
