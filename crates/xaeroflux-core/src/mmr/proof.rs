//! Inclusion proofs of one leaf, their verification and byte encoding.

use super::Hash32;
use super::hash::{leaf_hash, node_hash};
use super::pos::{MAX_LEAF_COUNT, peaks};

/// Largest number of items an encoded proof may carry (`64 * 2`).
///
/// A real proof has at most 63 items (left peaks + path + one right bag) because
/// leaf counts are capped at [`MAX_LEAF_COUNT`](super::MAX_LEAF_COUNT) = 2^62.
pub const MAX_PROOF_ITEMS: usize = 128;

/// Version byte of the proof encoding.
pub const PROOF_FORMAT_VERSION: u8 = 1;

/// Bytes before the items of an encoded proof.
pub const PROOF_HEADER_LEN: usize = 1 + 8 + 8 + 2;

/// Proof that a leaf is the `leaf_index`-th of an MMR of `leaf_count` leaves.
///
/// `items` are, in order (the same items as `ckb-merkle-mountain-range` generates):
/// 1. the hashes of the peaks left of the leaf's peak, left to right;
/// 2. the sibling hashes from the leaf up to its peak, bottom-up;
/// 3. if there are peaks right of the leaf's peak, their bag (one hash).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MerkleProof {
    /// 0-based index of the proven leaf.
    pub leaf_index: u64,
    /// Number of leaves of the MMR whose root the proof leads to.
    pub leaf_count: u64,
    /// Proof hashes, see the type docs.
    pub items: Vec<Hash32>,
}

/// Why a proof does not prove a leaf.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProofError {
    /// The proof is for an empty MMR.
    #[error("proof for an empty mmr")]
    EmptyMmr,
    /// The claimed leaf count exceeds the supported maximum.
    #[error("leaf count {leaf_count} exceeds the maximum {max}")]
    LeafCountTooLarge {
        /// Claimed leaf count.
        leaf_count: u64,
        /// [`MAX_LEAF_COUNT`](super::MAX_LEAF_COUNT).
        max: u64,
    },
    /// The leaf index is not below the leaf count.
    #[error("leaf index {leaf_index} out of range for {leaf_count} leaves")]
    LeafIndexOutOfRange {
        /// Claimed leaf index.
        leaf_index: u64,
        /// Claimed leaf count.
        leaf_count: u64,
    },
    /// The number of items does not match the MMR shape.
    #[error("proof has {found} items, expected {expected}")]
    WrongItemCount {
        /// Items the shape requires.
        expected: usize,
        /// Items present.
        found: usize,
    },
    /// The proof is well formed but leads to another root.
    #[error("proof does not lead to the expected root")]
    RootMismatch,
}

/// Why bytes are not an encoded [`MerkleProof`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProofDecodeError {
    /// Fewer bytes than the fixed header.
    #[error("proof is {len} bytes, shorter than the {min}-byte header")]
    TooShort {
        /// Bytes given.
        len: usize,
        /// [`PROOF_HEADER_LEN`].
        min: usize,
    },
    /// Unknown format version.
    #[error("unsupported proof format version {found} (supported: {supported})")]
    UnsupportedVersion {
        /// Version byte found.
        found: u8,
        /// [`PROOF_FORMAT_VERSION`].
        supported: u8,
    },
    /// More items than [`MAX_PROOF_ITEMS`].
    #[error("proof claims {count} items, more than the maximum {max}")]
    TooManyItems {
        /// Claimed item count.
        count: usize,
        /// [`MAX_PROOF_ITEMS`].
        max: usize,
    },
    /// The byte length does not match the item count.
    #[error("proof is {len} bytes, expected {expected}")]
    LengthMismatch {
        /// Bytes given.
        len: usize,
        /// Length implied by the item count.
        expected: usize,
    },
    /// Index, count and items are inconsistent with any MMR.
    #[error("malformed proof")]
    Malformed(#[source] ProofError),
}

/// Where a leaf sits in an MMR of a given leaf count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Shape {
    /// Peaks left of the leaf's peak.
    left_peaks: usize,
    /// Height of the leaf's peak (= length of its sibling path).
    height: u32,
    /// Whether there are peaks right of the leaf's peak.
    has_right: bool,
    /// Leaf index relative to the first leaf of its peak.
    local_index: u64,
}

impl Shape {
    fn new(leaf_index: u64, leaf_count: u64) -> Result<Self, ProofError> {
        if leaf_count == 0 {
            return Err(ProofError::EmptyMmr);
        }
        if leaf_count > MAX_LEAF_COUNT {
            return Err(ProofError::LeafCountTooLarge {
                leaf_count,
                max: MAX_LEAF_COUNT,
            });
        }
        let out_of_range = ProofError::LeafIndexOutOfRange {
            leaf_index,
            leaf_count,
        };
        if leaf_index >= leaf_count {
            return Err(out_of_range);
        }
        for (left_peaks, peak) in peaks(leaf_count).enumerate() {
            if leaf_index < peak.end_leaf() {
                return Ok(Self {
                    left_peaks,
                    height: peak.height,
                    has_right: peak.end_leaf() < leaf_count,
                    local_index: leaf_index - peak.first_leaf,
                });
            }
        }
        // Unreachable: the peaks cover 0..leaf_count and leaf_index < leaf_count.
        Err(out_of_range)
    }

    fn item_count(&self) -> usize {
        self.left_peaks + self.height as usize + usize::from(self.has_right)
    }
}

/// Number of items a proof of `leaf_index` in an MMR of `leaf_count` leaves has.
pub fn proof_item_count(leaf_index: u64, leaf_count: u64) -> Result<usize, ProofError> {
    Shape::new(leaf_index, leaf_count).map(|s| s.item_count())
}

impl MerkleProof {
    /// Root of the MMR this proof leads to when `leaf` is the proven leaf value
    /// (hashed with the leaf domain, see the module docs).
    ///
    /// Errors if the proof is malformed; never panics.
    pub fn calculate_root(&self, leaf: &Hash32) -> Result<Hash32, ProofError> {
        let shape = Shape::new(self.leaf_index, self.leaf_count)?;
        let expected = shape.item_count();
        if self.items.len() != expected {
            return Err(ProofError::WrongItemCount {
                expected,
                found: self.items.len(),
            });
        }
        let (left, rest) = self.items.split_at(shape.left_peaks);
        let (path, right) = rest.split_at(shape.height as usize);

        let mut acc = leaf_hash(leaf);
        for (height, sibling) in path.iter().enumerate() {
            acc = if (shape.local_index >> height) & 1 == 0 {
                node_hash(&acc, sibling)
            } else {
                node_hash(sibling, &acc)
            };
        }
        // Bagging right to left: the bag of the right peaks is the left input.
        if let Some(right_bag) = right.first() {
            acc = node_hash(right_bag, &acc);
        }
        for left_peak in left.iter().rev() {
            acc = node_hash(&acc, left_peak);
        }
        Ok(acc)
    }

    /// Checks that `leaf` is the `leaf_index`-th leaf of the MMR with root `root` and
    /// `leaf_count` leaves.
    ///
    /// `Ok(())` only if the proof holds; a wrong root, leaf or proof is an `Err`.
    pub fn verify(&self, root: &Hash32, leaf: &Hash32) -> Result<(), ProofError> {
        let computed = self.calculate_root(leaf)?;
        // Roots are public values: no need for a constant-time comparison.
        if computed == *root {
            Ok(())
        } else {
            Err(ProofError::RootMismatch)
        }
    }

    /// Canonical byte encoding.
    ///
    /// Format: (all integers little-endian)
    /// ```text
    /// offset  size    field
    /// 0       1       version = 1
    /// 1       8       leaf_index  u64
    /// 9       8       leaf_count  u64
    /// 17      2       item count k  u16, k <= 128
    /// 19      32 * k  items, in proof order
    /// ```
    /// Total `19 + 32k` bytes, no trailing bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(PROOF_HEADER_LEN + 32 * self.items.len());
        out.push(PROOF_FORMAT_VERSION);
        out.extend_from_slice(&self.leaf_index.to_le_bytes());
        out.extend_from_slice(&self.leaf_count.to_le_bytes());
        // A proof built by this crate has at most 63 items; a larger hand-built one
        // saturates here and is then rejected by `decode`.
        let count = u16::try_from(self.items.len()).unwrap_or(u16::MAX);
        out.extend_from_slice(&count.to_le_bytes());
        for item in &self.items {
            out.extend_from_slice(item);
        }
        out
    }

    /// Decodes [`encode`](Self::encode)d bytes.
    ///
    /// Accepts only canonical encodings whose item count matches the MMR shape given
    /// by `leaf_index` and `leaf_count`; never panics.
    pub fn decode(bytes: &[u8]) -> Result<Self, ProofDecodeError> {
        let too_short = ProofDecodeError::TooShort {
            len: bytes.len(),
            min: PROOF_HEADER_LEN,
        };
        let (header, body) = bytes
            .split_first_chunk::<PROOF_HEADER_LEN>()
            .ok_or(too_short)?;
        let [version, index @ .., c0, c1] = *header;
        let (index, count) = (index, [c0, c1]);
        if version != PROOF_FORMAT_VERSION {
            return Err(ProofDecodeError::UnsupportedVersion {
                found: version,
                supported: PROOF_FORMAT_VERSION,
            });
        }
        let (leaf_index, leaf_count) = split_u64_pair(&index);
        let count = usize::from(u16::from_le_bytes(count));
        if count > MAX_PROOF_ITEMS {
            return Err(ProofDecodeError::TooManyItems {
                count,
                max: MAX_PROOF_ITEMS,
            });
        }
        let expected = PROOF_HEADER_LEN + 32 * count;
        if bytes.len() != expected {
            return Err(ProofDecodeError::LengthMismatch {
                len: bytes.len(),
                expected,
            });
        }
        let shape_items =
            proof_item_count(leaf_index, leaf_count).map_err(ProofDecodeError::Malformed)?;
        if shape_items != count {
            return Err(ProofDecodeError::Malformed(ProofError::WrongItemCount {
                expected: shape_items,
                found: count,
            }));
        }
        let (chunks, _) = body.as_chunks::<32>();
        Ok(Self {
            leaf_index,
            leaf_count,
            items: chunks.to_vec(),
        })
    }
}

fn split_u64_pair(bytes: &[u8; 16]) -> (u64, u64) {
    let mut a = [0u8; 8];
    let mut b = [0u8; 8];
    a.copy_from_slice(&bytes[..8]);
    b.copy_from_slice(&bytes[8..]);
    (u64::from_le_bytes(a), u64::from_le_bytes(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_leaf_proof_is_empty() {
        let leaf = [9u8; 32];
        let p = MerkleProof {
            leaf_index: 0,
            leaf_count: 1,
            items: vec![],
        };
        p.verify(&leaf_hash(&leaf), &leaf).unwrap();
        assert_eq!(p.verify(&leaf, &leaf), Err(ProofError::RootMismatch));
    }

    #[test]
    fn malformed_shapes_are_errors() {
        let leaf = [0u8; 32];
        let cases = [
            (0, 0),
            (5, 5),
            (u64::MAX, u64::MAX),
            (0, u64::MAX),
            (0, MAX_LEAF_COUNT + 1),
        ];
        for (leaf_index, leaf_count) in cases {
            let p = MerkleProof {
                leaf_index,
                leaf_count,
                items: vec![[0; 32]; 3],
            };
            assert!(p.verify(&[0; 32], &leaf).is_err());
            assert!(MerkleProof::decode(&p.encode()).is_err());
        }
        let p = MerkleProof {
            leaf_index: 0,
            leaf_count: 2,
            items: vec![],
        };
        assert_eq!(
            p.calculate_root(&leaf),
            Err(ProofError::WrongItemCount {
                expected: 1,
                found: 0
            })
        );
    }

    #[test]
    fn shape_of_eleven_leaves() {
        // Peaks of heights 3, 1, 0.
        assert_eq!(proof_item_count(0, 11), Ok(3 + 1));
        assert_eq!(proof_item_count(8, 11), Ok(1 + 1 + 1));
        assert_eq!(proof_item_count(10, 11), Ok(2));
        assert_eq!(proof_item_count(0, MAX_LEAF_COUNT), Ok(62));
        assert_eq!(proof_item_count(0, MAX_LEAF_COUNT - 1), Ok(61 + 1));
    }

    #[test]
    fn encoding_layout() {
        let p = MerkleProof {
            leaf_index: 1,
            leaf_count: 2,
            items: vec![[0xab; 32]],
        };
        let bytes = p.encode();
        assert_eq!(bytes.len(), PROOF_HEADER_LEN + 32);
        assert_eq!(bytes[0], 1);
        assert_eq!(&bytes[1..9], &1u64.to_le_bytes());
        assert_eq!(&bytes[9..17], &2u64.to_le_bytes());
        assert_eq!(&bytes[17..19], &1u16.to_le_bytes());
        assert_eq!(MerkleProof::decode(&bytes), Ok(p));
        assert!(matches!(
            MerkleProof::decode(&bytes[..bytes.len() - 1]),
            Err(ProofDecodeError::LengthMismatch { .. })
        ));
        assert!(matches!(
            MerkleProof::decode(&bytes[..5]),
            Err(ProofDecodeError::TooShort { .. })
        ));
    }
}
