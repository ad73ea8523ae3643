//! Merkle Mountain Range (MMR): an append-only authenticated log of 32-byte leaves.
//!
//! # Construction
//!
//! An MMR (Peter Todd, "merkle-mountain-range", opentimestamps-server
//! `doc/merkle-mountain-range.md`) is a list of perfect binary Merkle trees of strictly
//! decreasing height, the *peaks*; appending a leaf adds a height-0 tree and merges
//! equal-height neighbours. It yields a root for every length and short inclusion
//! proofs, and never rewrites a node.
//!
//! Node layout is the one of Grin (`doc/mmr.md`) and Nervos
//! `ckb-merkle-mountain-range`: nodes are numbered 0-based in post-order, i.e. in
//! append order, so the nodes of a prefix of the log are a prefix of the node list.
//! See [`pos_height`], [`leaf_index_to_pos`], [`mmr_size_for_leaves`] and
//! [`peak_positions`].
//!
//! # Hashes (format version 1)
//!
//! All hashes are BLAKE3 in `derive_key` mode with a per-domain context string, so a
//! leaf hash can never be confused with an interior node, nor with any other BLAKE3 use
//! in XaeroFlux:
//!
//! - leaf: `leaf_hash(v) = BLAKE3-derive_key("xaeroflux/mmr/v1/leaf", v)` over the
//!   32-byte leaf value `v` (an event id);
//! - node: `node_hash(l, r) = BLAKE3-derive_key("xaeroflux/mmr/v1/node", l || r)` for
//!   the left child `l` and right child `r`;
//! - root (peak bagging), right to left with the node hash, the right bag first:
//!   `bag([p]) = p` and `bag([p_0, p_1, .., p_k]) = node_hash(bag([p_1, .., p_k]), p_0)`
//!   where `p_0` is the leftmost (highest) peak. For peaks `A, B, C`:
//!   `root = node_hash(node_hash(C, B), A)`. This is exactly the default
//!   `Merge::merge_peaks(right, left) = merge(right, left)` of
//!   `ckb-merkle-mountain-range`, which the tests use as an oracle for roots and proofs.
//! - The root of a single leaf is its leaf hash. An empty MMR has no root:
//!   [`Mmr::root`] returns [`MmrError::Empty`].
//!
//! The root does not hash the leaf count in separately: because leaves and nodes live
//! in different hash domains, a root commits to the whole tree shape, and the shape of
//! an MMR determines its leaf count (it has exactly that many leaf hashes). Signed
//! checkpoints carry the length explicitly anyway, and keeping the plain bagged root
//! lets an independent implementation (ckb) cross-check ours.
//!
//! # Proofs
//!
//! [`MerkleProof`] proves one leaf against the root of any length (see
//! [`Mmr::proof_at`]); [`MerkleProof::verify`] returns an `Err` for every failure and
//! never panics on malformed input. The byte encoding is documented on
//! [`MerkleProof::encode`] and in `docs/FORMAT.md`.
//!
//! # Example
//!
//! ```
//! use xaeroflux_core::mmr::{MemStore, Mmr};
//!
//! let mut mmr = Mmr::new(MemStore::new(), 0)?;
//! for i in 0u8..11 {
//!     mmr.push(&[i; 32])?;
//! }
//! assert_eq!(mmr.size(), 19);
//! let root = mmr.root()?;
//! let proof = mmr.proof(4)?;
//! proof.verify(&root, &[4; 32])?;
//! assert!(proof.verify(&root, &[5; 32]).is_err());
//!
//! // The root of a prefix stays provable from the same store.
//! let old_root = mmr.root_at(6)?;
//! mmr.proof_at(4, 6)?.verify(&old_root, &[4; 32])?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod hash;
mod pos;
mod proof;
mod store;

use std::ops::Range;

use hash::node_hashes;
pub use hash::{LEAF_CONTEXT, NODE_CONTEXT, leaf_hash, node_hash};
pub use pos::{
    MAX_LEAF_COUNT, is_valid_size, leaf_count_for_size, leaf_index_to_pos, mmr_size_for_leaves,
    peak_positions, pos_height,
};
pub use proof::{
    MAX_PROOF_ITEMS, MerkleProof, PROOF_FORMAT_VERSION, PROOF_HEADER_LEN, ProofDecodeError,
    ProofError, proof_item_count,
};
pub use store::{MemStore, MemStoreError, MmrStore};

use hash::bag_peaks;
use pos::peaks;

/// A 32-byte hash: a leaf value, a node or a root.
pub type Hash32 = [u8; 32];

/// Errors of [`Mmr`] operations.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MmrError {
    /// The MMR (or the requested prefix) has no leaves, hence no root.
    #[error("mmr is empty")]
    Empty,
    /// No MMR has this many nodes.
    #[error("{size} is not a valid mmr size")]
    InvalidSize {
        /// Node count given.
        size: u64,
    },
    /// The store lacks a node that the MMR size says exists.
    #[error("node at position {pos} missing from the store")]
    MissingNode {
        /// Position of the missing node.
        pos: u64,
    },
    /// A leaf index at or past the leaf count.
    #[error("leaf index {leaf_index} out of range for {leaf_count} leaves")]
    LeafIndexOutOfRange {
        /// Requested leaf index.
        leaf_index: u64,
        /// Leaf count it was checked against.
        leaf_count: u64,
    },
    /// A prefix length longer than the MMR.
    #[error("prefix of {requested} leaves requested from an mmr of {leaf_count}")]
    LeafCountOutOfRange {
        /// Requested prefix length.
        requested: u64,
        /// Current leaf count.
        leaf_count: u64,
    },
    /// Appending would exceed [`MAX_LEAF_COUNT`].
    #[error("mmr is full ({max} leaves)")]
    Full {
        /// [`MAX_LEAF_COUNT`].
        max: u64,
    },
    /// The node store failed.
    #[error("mmr store failed")]
    Store(#[source] Box<dyn std::error::Error + Send + Sync>),
}

fn store_err<E: std::error::Error + Send + Sync + 'static>(e: E) -> MmrError {
    MmrError::Store(Box::new(e))
}

/// An MMR whose nodes live in an [`MmrStore`].
///
/// It keeps the peak hashes in memory, so appending reads nothing from the store and
/// writes each new node once; `root` reads nothing either.
#[derive(Debug)]
pub struct Mmr<S> {
    store: S,
    size: u64,
    leaf_count: u64,
    /// Peak hashes, left (highest) to right. Invariant: one per set bit of
    /// `leaf_count`, equal to the store's nodes at `peak_positions(size)`.
    peaks: Vec<Hash32>,
    /// Nodes produced by the current append, reused to avoid an allocation per push.
    scratch: Vec<Hash32>,
    /// Batched appends: the new nodes of each height, and one height's pairs.
    levels: Vec<Vec<Hash32>>,
    pairs: Vec<Hash32>,
}

impl<S: MmrStore> Mmr<S> {
    /// Opens the MMR of `size` nodes held by `store` (0 for a new MMR).
    ///
    /// Reads the peaks from the store; errors if `size` is not a valid MMR size or a
    /// peak is missing.
    pub fn new(store: S, size: u64) -> Result<Self, MmrError> {
        let leaf_count = leaf_count_for_size(size).ok_or(MmrError::InvalidSize { size })?;
        let peaks = peaks(leaf_count)
            .map(|peak| {
                store
                    .get(peak.pos)
                    .map_err(store_err)?
                    .ok_or(MmrError::MissingNode { pos: peak.pos })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            store,
            size,
            leaf_count,
            peaks,
            scratch: Vec::with_capacity(64),
            levels: Vec::new(),
            pairs: Vec::new(),
        })
    }

    /// Number of nodes.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Number of leaves.
    pub fn leaf_count(&self) -> u64 {
        self.leaf_count
    }

    /// Whether the MMR has no leaves.
    pub fn is_empty(&self) -> bool {
        self.leaf_count == 0
    }

    /// Peak hashes, left (highest) to right.
    pub fn peaks(&self) -> &[Hash32] {
        &self.peaks
    }

    /// The node store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// The node store, mutably (e.g. to persist what the last appends wrote). Writing
    /// nodes through it behind the MMR's back breaks the MMR.
    pub fn store_mut(&mut self) -> &mut S {
        &mut self.store
    }

    /// Gives the node store back.
    pub fn into_store(self) -> S {
        self.store
    }

    /// Appends a leaf value (hashed with [`leaf_hash`]) and returns its leaf index.
    ///
    /// Writes the leaf and the parents it completes with one [`MmrStore::append`]; on
    /// a store error the MMR is unchanged.
    pub fn push(&mut self, leaf: &Hash32) -> Result<u64, MmrError> {
        self.push_leaf_hash(leaf_hash(leaf))
    }

    /// [`Mmr::push`] of a leaf whose [`leaf_hash`] the caller already has (the same
    /// value appended to several MMRs is hashed once).
    pub fn push_leaf_hash(&mut self, leaf: Hash32) -> Result<u64, MmrError> {
        let index = self.leaf_count;
        if index >= MAX_LEAF_COUNT {
            return Err(MmrError::Full {
                max: MAX_LEAF_COUNT,
            });
        }
        // The leaf merges with one peak per trailing one bit of the leaf count: those
        // are the rightmost peaks, of heights 0, 1, ...
        let merges = index.trailing_ones() as usize;
        self.scratch.clear();
        let mut node = leaf;
        self.scratch.push(node);
        for left in self.peaks.iter().rev().take(merges) {
            node = node_hash(left, &node);
            self.scratch.push(node);
        }
        self.store
            .append(self.size, &self.scratch)
            .map_err(store_err)?;
        self.peaks.truncate(self.peaks.len().saturating_sub(merges));
        self.peaks.push(node);
        self.size += self.scratch.len() as u64;
        self.leaf_count += 1;
        Ok(index)
    }

    /// Appends many leaf values with a single [`MmrStore::append`]; returns their leaf
    /// indices. On a store error the MMR is unchanged.
    pub fn push_many(&mut self, leaves: &[Hash32]) -> Result<Range<u64>, MmrError> {
        let hashed: Vec<Hash32> = leaves.iter().map(leaf_hash).collect();
        self.push_leaf_hashes(&hashed)
    }

    /// [`Mmr::push_many`] of leaves whose [`leaf_hash`]es the caller already has.
    ///
    /// The result equals one [`Mmr::push_leaf_hash`] per leaf, but interior nodes are
    /// hashed height by height: every node of one height is independent of the others,
    /// so they are hashed together in SIMD lanes (see `node_hashes`), then all nodes
    /// are written in post-order with one [`MmrStore::append`]. On a store error the
    /// MMR is unchanged.
    pub fn push_leaf_hashes(&mut self, leaves: &[Hash32]) -> Result<Range<u64>, MmrError> {
        let first = self.leaf_count;
        let end = u64::try_from(leaves.len())
            .ok()
            .and_then(|n| first.checked_add(n))
            .filter(|end| *end <= MAX_LEAF_COUNT)
            .ok_or(MmrError::Full {
                max: MAX_LEAF_COUNT,
            })?;
        // Height by height: the nodes still to pair at height `h` are the old peak of
        // that height (if `first` has bit `h`; it lies left of every new node) and the
        // new nodes of that height, left to right. Consecutive pairs make the new
        // nodes of height `h + 1`; an odd one out is the new peak of height `h`.
        // `levels[h]` holds the new nodes of height `h` (`levels[0]` stays empty: the
        // leaves are `leaves`).
        let mut low_peaks: Vec<Hash32> = Vec::new(); // new peaks, lowest first
        let mut height = 0usize;
        loop {
            if self.levels.len() <= height + 1 {
                self.levels.resize_with(height + 2, Vec::new);
            }
            let (below, above) = self.levels.split_at_mut(height + 1);
            let new = if height == 0 {
                leaves
            } else {
                &below[height][..]
            };
            if new.is_empty() {
                break;
            }
            self.pairs.clear();
            if (first >> height) & 1 == 1 {
                // Peaks run left (highest) to right; this one has as many peaks right
                // of it as `first` has set bits below `height`.
                let right = (first & ((1u64 << height) - 1)).count_ones() as usize;
                let peak = self
                    .peaks
                    .len()
                    .checked_sub(right + 1)
                    .ok_or(MmrError::InvalidSize { size: self.size })?;
                self.pairs.push(self.peaks[peak]);
            }
            self.pairs.extend_from_slice(new);
            if self.pairs.len() % 2 == 1 {
                low_peaks.extend(self.pairs.last());
            }
            let parents = &mut above[0];
            parents.clear();
            parents.resize(self.pairs.len() / 2, [0; 32]);
            let (blocks, _) = self.pairs.as_flattened().as_chunks::<64>();
            node_hashes(blocks, parents);
            height += 1;
        }
        // Post-order, as single pushes would write them: each leaf, then the parents
        // it completes, which at each height come in left-to-right order.
        self.scratch.clear();
        let mut next = vec![0usize; height + 1];
        for (index, leaf) in (first..end).zip(leaves) {
            self.scratch.push(*leaf);
            let merges = index.trailing_ones() as usize;
            for (level, taken) in self.levels.iter().zip(&mut next).take(merges + 1).skip(1) {
                let node = level.get(*taken);
                self.scratch
                    .push(*node.ok_or(MmrError::InvalidSize { size: self.size })?);
                *taken += 1;
            }
        }
        debug_assert_eq!(
            Some(self.size + self.scratch.len() as u64),
            mmr_size_for_leaves(end)
        );
        self.store
            .append(self.size, &self.scratch)
            .map_err(store_err)?;
        // Old peaks of the heights no new node reached stay; the rest are replaced.
        let kept = (first.checked_shr(height as u32).unwrap_or(0)).count_ones() as usize;
        self.peaks.truncate(kept);
        self.peaks.extend(low_peaks.iter().rev());
        self.size += self.scratch.len() as u64;
        self.leaf_count = end;
        debug_assert_eq!(self.peaks.len(), end.count_ones() as usize);
        Ok(first..end)
    }

    /// The current root (see the module docs for the bagging rule).
    pub fn root(&self) -> Result<Hash32, MmrError> {
        bag_peaks(&self.peaks).ok_or(MmrError::Empty)
    }

    /// The root the MMR had when it held its first `leaf_count` leaves, read from the
    /// store (nodes of a prefix never change). Used to check a signed checkpoint of an
    /// older length.
    pub fn root_at(&self, leaf_count: u64) -> Result<Hash32, MmrError> {
        let peaks = self.prefix_peaks(leaf_count)?;
        bag_peaks(&peaks).ok_or(MmrError::Empty)
    }

    /// Proof of leaf `leaf_index` against the current root.
    pub fn proof(&self, leaf_index: u64) -> Result<MerkleProof, MmrError> {
        self.proof_at(leaf_index, self.leaf_count)
    }

    /// Proof of leaf `leaf_index` against [`root_at(leaf_count)`](Self::root_at).
    pub fn proof_at(&self, leaf_index: u64, leaf_count: u64) -> Result<MerkleProof, MmrError> {
        self.check_prefix(leaf_count)?;
        if leaf_index >= leaf_count {
            return Err(MmrError::LeafIndexOutOfRange {
                leaf_index,
                leaf_count,
            });
        }
        let current = leaf_count == self.leaf_count;
        let mut items = Vec::with_capacity(64);
        let mut right = Vec::new();
        for (i, peak) in peaks(leaf_count).enumerate() {
            if leaf_index >= peak.end_leaf() {
                items.push(self.peak_hash(current, i, peak.pos)?);
            } else if leaf_index < peak.first_leaf {
                right.push(self.peak_hash(current, i, peak.pos)?);
            } else {
                // Sibling path inside the peak's perfect tree. The leaf index is below
                // MAX_LEAF_COUNT, so its position exists and nothing overflows.
                let local = leaf_index - peak.first_leaf;
                let mut pos =
                    leaf_index_to_pos(leaf_index).ok_or(MmrError::LeafIndexOutOfRange {
                        leaf_index,
                        leaf_count,
                    })?;
                for height in 0..peak.height {
                    // Nodes in a perfect tree of height `height`.
                    let subtree = (2u64 << height) - 1;
                    let (sibling, parent) = if (local >> height) & 1 == 0 {
                        (pos + subtree, pos + subtree + 1)
                    } else {
                        (pos - subtree, pos + 1)
                    };
                    items.push(self.node(sibling)?);
                    pos = parent;
                }
            }
        }
        if let Some(bag) = bag_peaks(&right) {
            items.push(bag);
        }
        Ok(MerkleProof {
            leaf_index,
            leaf_count,
            items,
        })
    }

    fn check_prefix(&self, leaf_count: u64) -> Result<(), MmrError> {
        if leaf_count == 0 {
            return Err(MmrError::Empty);
        }
        if leaf_count > self.leaf_count {
            return Err(MmrError::LeafCountOutOfRange {
                requested: leaf_count,
                leaf_count: self.leaf_count,
            });
        }
        Ok(())
    }

    fn prefix_peaks(&self, leaf_count: u64) -> Result<Vec<Hash32>, MmrError> {
        self.check_prefix(leaf_count)?;
        if leaf_count == self.leaf_count {
            return Ok(self.peaks.clone());
        }
        peaks(leaf_count).map(|peak| self.node(peak.pos)).collect()
    }

    fn peak_hash(&self, current: bool, index: usize, pos: u64) -> Result<Hash32, MmrError> {
        match self.peaks.get(index) {
            Some(hash) if current => Ok(*hash),
            _ => self.node(pos),
        }
    }

    fn node(&self, pos: u64) -> Result<Hash32, MmrError> {
        self.store
            .get(pos)
            .map_err(store_err)?
            .ok_or(MmrError::MissingNode { pos })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaf(i: u64) -> Hash32 {
        *blake3::hash(&i.to_le_bytes()).as_bytes()
    }

    fn build(n: u64) -> Mmr<MemStore> {
        let mut mmr = Mmr::new(MemStore::new(), 0).unwrap();
        for i in 0..n {
            assert_eq!(mmr.push(&leaf(i)).unwrap(), i);
        }
        mmr
    }

    #[test]
    fn empty_mmr_has_no_root() {
        let mmr = build(0);
        assert!(matches!(mmr.root(), Err(MmrError::Empty)));
        assert!(matches!(mmr.proof(0), Err(MmrError::Empty)));
        assert!(mmr.peaks().is_empty());
    }

    #[test]
    fn small_roots_by_hand() {
        let (a, b, c) = (
            leaf_hash(&leaf(0)),
            leaf_hash(&leaf(1)),
            leaf_hash(&leaf(2)),
        );
        assert_eq!(build(1).root().unwrap(), a);
        assert_eq!(build(2).root().unwrap(), node_hash(&a, &b));
        assert_eq!(build(3).root().unwrap(), node_hash(&c, &node_hash(&a, &b)));
        let mmr = build(3);
        assert_eq!(mmr.store().nodes(), &[a, b, node_hash(&a, &b), c]);
    }

    #[test]
    fn size_and_peaks_track_positions() {
        let mut mmr = build(0);
        for n in 1..300u64 {
            mmr.push(&leaf(n - 1)).unwrap();
            assert_eq!(Some(mmr.size()), mmr_size_for_leaves(n));
            assert_eq!(mmr.store().len(), mmr.size());
            let positions = peak_positions(mmr.size()).unwrap();
            let from_store: Vec<Hash32> = positions
                .iter()
                .map(|p| mmr.store().nodes()[*p as usize])
                .collect();
            assert_eq!(mmr.peaks(), from_store.as_slice());
        }
    }

    #[test]
    fn push_many_equals_push() {
        let leaves: Vec<Hash32> = (0..777).map(leaf).collect();
        let single = build(777);
        let mut batched = build(0);
        let mut start = 0;
        for chunk in leaves.chunks(50) {
            let range = batched.push_many(chunk).unwrap();
            assert_eq!(range, start..start + chunk.len() as u64);
            start = range.end;
        }
        assert_eq!(batched.store(), single.store());
        assert_eq!(batched.root().unwrap(), single.root().unwrap());
        assert_eq!(batched.push_many(&[]).unwrap(), 777..777);
    }

    #[test]
    fn reopen_from_store() {
        let mmr = build(123);
        let (root, size) = (mmr.root().unwrap(), mmr.size());
        let mut reopened = Mmr::new(mmr.into_store(), size).unwrap();
        assert_eq!(reopened.root().unwrap(), root);
        reopened.push(&leaf(123)).unwrap();
        assert_eq!(reopened.root().unwrap(), build(124).root().unwrap());
        assert!(matches!(
            Mmr::new(MemStore::new(), 2),
            Err(MmrError::InvalidSize { size: 2 })
        ));
        assert!(matches!(
            Mmr::new(MemStore::new(), 3),
            Err(MmrError::MissingNode { pos: 2 })
        ));
    }

    #[test]
    fn root_at_matches_shorter_mmr() {
        let mmr = build(100);
        for n in 1..=100 {
            let root = build(n).root().unwrap();
            assert_eq!(mmr.root_at(n).unwrap(), root);
            for i in 0..n {
                mmr.proof_at(i, n).unwrap().verify(&root, &leaf(i)).unwrap();
            }
        }
        assert!(matches!(mmr.root_at(0), Err(MmrError::Empty)));
        assert!(matches!(
            mmr.root_at(101),
            Err(MmrError::LeafCountOutOfRange { .. })
        ));
        assert!(matches!(
            mmr.proof(100),
            Err(MmrError::LeafIndexOutOfRange { .. })
        ));
    }

    #[test]
    fn store_failure_leaves_mmr_unchanged() {
        let mut store = MemStore::new();
        let mut mmr = Mmr::new(&mut store, 0).unwrap();
        mmr.push(&leaf(0)).unwrap();
        drop(mmr);
        // A store one node ahead of the MMR rejects the append.
        store.append(1, &[[0; 32]]).unwrap();
        let mut mmr = Mmr::new(&mut store, 1).unwrap();
        let root = mmr.root().unwrap();
        assert!(matches!(mmr.push(&leaf(1)), Err(MmrError::Store(_))));
        assert!(matches!(mmr.push_many(&[leaf(1)]), Err(MmrError::Store(_))));
        assert_eq!((mmr.size(), mmr.leaf_count()), (1, 1));
        assert_eq!(mmr.root().unwrap(), root);
    }
}
