//! Post-order node positions, heights and peaks (Grin / ckb layout).
//!
//! Positions are 0-based in append (post-order) order. With 11 leaves the MMR has 19
//! nodes and three peaks (14, 17, 18):
//!
//! ```text
//!            14
//!         /       \
//!       6          13
//!     /   \       /   \
//!    2     5     9     12     17
//!   / \   / \   / \   /  \   /  \
//!  0   1 3   4 7   8 10  11 15  16 18
//! ```
//!
//! Peaks are listed left to right, i.e. highest first; a peak of height `h` covers
//! `2^h` leaves and `2^(h+1) - 1` nodes. The set bits of the leaf count are exactly the
//! heights of the peaks.

/// Largest leaf count an MMR may reach (2^62).
///
/// Far beyond any real log, and it keeps every position computation (`2 * n`,
/// `pos + 2^(h+1)`) free of overflow. Proofs claiming more leaves are rejected.
pub const MAX_LEAF_COUNT: u64 = 1 << 62;

/// Number of nodes of an MMR with `leaf_count` leaves: `2n - popcount(n)`.
///
/// `None` if `leaf_count > MAX_LEAF_COUNT`.
pub fn mmr_size_for_leaves(leaf_count: u64) -> Option<u64> {
    (leaf_count <= MAX_LEAF_COUNT).then(|| 2 * leaf_count - u64::from(leaf_count.count_ones()))
}

/// Position of the leaf with index `leaf_index` (0-based).
///
/// A leaf is appended right after the nodes of the MMR of `leaf_index` leaves, so its
/// position is `mmr_size_for_leaves(leaf_index)`. `None` if the index is not below
/// `MAX_LEAF_COUNT`.
pub fn leaf_index_to_pos(leaf_index: u64) -> Option<u64> {
    if leaf_index >= MAX_LEAF_COUNT {
        return None;
    }
    mmr_size_for_leaves(leaf_index)
}

/// Height of the node at `pos` (0 for leaves). Defined for every `u64`.
pub fn pos_height(pos: u64) -> u32 {
    // Walk down the perfect trees a node at `pos` would belong to: subtracting the
    // size of every perfect tree the position lies past leaves its offset in the
    // smallest tree, which is `2^(h+1) - 2` for the root (the last node) of that tree.
    let mut pos = pos;
    if pos == 0 {
        return 0;
    }
    let mut tree_size = u64::MAX >> pos.leading_zeros();
    while tree_size > 0 {
        if pos >= tree_size {
            pos -= tree_size;
        }
        tree_size >>= 1;
    }
    // `pos` is now the height: the loop only leaves a remainder on the root path.
    u32::try_from(pos).unwrap_or(u32::MAX)
}

/// Leaf count of an MMR with `size` nodes; `None` if no MMR has that many nodes or it
/// would exceed `MAX_LEAF_COUNT` leaves.
pub fn leaf_count_for_size(size: u64) -> Option<u64> {
    let mut rest = size;
    let mut leaves: u64 = 0;
    let bits = 64 - size.leading_zeros();
    // Greedy decomposition into perfect trees of strictly decreasing height: sizes
    // 2^(h+1) - 1 are such that a valid size has exactly one decomposition.
    for height in (0..bits).rev() {
        let tree_size = u64::MAX >> (63 - height);
        if rest >= tree_size {
            rest -= tree_size;
            leaves |= 1 << height;
        }
    }
    (rest == 0 && leaves <= MAX_LEAF_COUNT).then_some(leaves)
}

/// Whether some MMR (of at most `MAX_LEAF_COUNT` leaves) has exactly `size` nodes.
pub fn is_valid_size(size: u64) -> bool {
    leaf_count_for_size(size).is_some()
}

/// Positions of the peaks (left to right) of an MMR with `size` nodes; `None` if the
/// size is not valid.
pub fn peak_positions(size: u64) -> Option<Vec<u64>> {
    let leaf_count = leaf_count_for_size(size)?;
    Some(peaks(leaf_count).map(|p| p.pos).collect())
}

/// One peak of an MMR with a given leaf count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Peak {
    /// Height (0 for a single leaf).
    pub(crate) height: u32,
    /// Index of its leftmost leaf.
    pub(crate) first_leaf: u64,
    /// Its own position.
    pub(crate) pos: u64,
}

impl Peak {
    /// One past its rightmost leaf index.
    pub(crate) fn end_leaf(&self) -> u64 {
        self.first_leaf + (1 << self.height)
    }
}

/// Peaks, left to right, of an MMR of `leaf_count` leaves. Callers guarantee
/// `leaf_count <= MAX_LEAF_COUNT` so the position arithmetic cannot overflow.
pub(crate) fn peaks(leaf_count: u64) -> impl Iterator<Item = Peak> {
    let mut first_leaf = 0u64;
    let mut first_pos = 0u64;
    (0..64u32).rev().filter_map(move |height| {
        if leaf_count & (1 << height) == 0 {
            return None;
        }
        let nodes = (2u64 << height) - 1;
        let peak = Peak {
            height,
            first_leaf,
            pos: first_pos + nodes - 1,
        };
        first_leaf += 1 << height;
        first_pos += nodes;
        Some(peak)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eleven_leaves_example() {
        assert_eq!(mmr_size_for_leaves(11), Some(19));
        assert_eq!(peak_positions(19), Some(vec![14, 17, 18]));
        assert_eq!(leaf_count_for_size(19), Some(11));
        let leaves = [0, 1, 3, 4, 7, 8, 10, 11, 15, 16, 18];
        for (i, pos) in leaves.iter().enumerate() {
            assert_eq!(leaf_index_to_pos(i as u64), Some(*pos));
            assert_eq!(pos_height(*pos), 0);
        }
        for (pos, h) in [(2, 1), (5, 1), (6, 2), (9, 1), (13, 2), (14, 3), (17, 1)] {
            assert_eq!(pos_height(pos), h);
        }
    }

    #[test]
    fn sizes_are_valid_exactly_at_leaf_boundaries() {
        let mut next = 0u64;
        for n in 0..3000u64 {
            let size = mmr_size_for_leaves(n).unwrap();
            for invalid in next..size {
                assert!(!is_valid_size(invalid), "{invalid}");
            }
            assert_eq!(leaf_count_for_size(size), Some(n));
            next = size + 1;
        }
    }

    #[test]
    fn extremes_do_not_panic() {
        assert_eq!(mmr_size_for_leaves(MAX_LEAF_COUNT), Some((1 << 63) - 1));
        assert_eq!(mmr_size_for_leaves(MAX_LEAF_COUNT + 1), None);
        assert_eq!(mmr_size_for_leaves(u64::MAX), None);
        assert_eq!(leaf_index_to_pos(MAX_LEAF_COUNT), None);
        assert!(leaf_index_to_pos(MAX_LEAF_COUNT - 1).is_some());
        assert_eq!(leaf_count_for_size(u64::MAX), None);
        assert_eq!(peak_positions(u64::MAX), None);
        let _ = pos_height(u64::MAX);
        assert_eq!(peaks(MAX_LEAF_COUNT).count(), 1);
        assert_eq!(peaks(MAX_LEAF_COUNT - 1).count(), 62);
    }
}
