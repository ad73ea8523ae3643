//! Page codec of the paged Merkle file (`merkle_index.bin`).
//!
//! The engine keeps the nodes of every MMR (the node-wide one and one per author log)
//! in fixed 16 KiB pages appended to one file and read through mmap. LMDB records, in
//! the same transaction as the events, which pages and how many nodes of each are
//! valid, so a torn tail past that is ignored. This module is only the pure,
//! I/O-free format of one page: [`Page`] to build and encode, [`Page::decode`] and the
//! zero-copy [`PageView`] to validate bytes from disk. Every malformed input is a
//! [`PageError`], never a panic.
//!
//! Format: one page is [`PAGE_SIZE`] = 16384 bytes, integers little-endian.
//!
//! ```text
//! offset  size    field
//! 0       4       magic "XAER" (58 41 45 52)
//! 4       2       format version u16 = 1
//! 6       1       page kind u8 = 1 (MMR nodes)
//! 7       1       flags u8 = 0 (nonzero is rejected)
//! 8       8       mmr_id u64: which MMR (assigned by the engine, e.g. 0 = node-wide)
//! 16      8       first_pos u64: MMR position of slot 0
//! 24      2       node_count u16: filled slots, 0..=510
//! 26      6       reserved, zero
//! 32      16320   510 node slots of 32 bytes; slot i holds position first_pos + i;
//!                 slots >= node_count are zero
//! 16352   32      checksum: BLAKE3-derive_key("xaeroflux/page/v1/checksum",
//!                 bytes[0..16352])
//! ```
//!
//! The checksum is the full 32-byte BLAKE3 output: with a 32-byte header, 510 slots
//! fit whether the trailer is 16 or 32 bytes, so truncating would only leave padding.
//! It covers header and every slot, so any corrupted byte (including a stale unused
//! slot) is detected. Unused slots must be zero so an encoding is canonical.

use std::sync::LazyLock;

use blake3::Hasher;
use blake3::hazmat::{ContextKey, HasherExt, hash_derive_key_context};

use crate::mmr::Hash32;

/// Size of one page in bytes.
pub const PAGE_SIZE: usize = 16384;
/// Magic bytes at offset 0 of every page.
pub const PAGE_MAGIC: [u8; 4] = *b"XAER";
/// Page format version written by this code.
pub const PAGE_FORMAT_VERSION: u16 = 1;
/// Page kind of a page of MMR nodes.
pub const PAGE_KIND_MMR_NODES: u8 = 1;
/// Header length in bytes.
pub const PAGE_HEADER_LEN: usize = 32;
/// Checksum length in bytes.
pub const PAGE_CHECKSUM_LEN: usize = 32;
/// Bytes of one node slot.
pub const NODE_SLOT_LEN: usize = 32;
/// Node slots per page: `(16384 - 32 - 32) / 32 = 510`.
pub const NODES_PER_PAGE: usize = (PAGE_SIZE - PAGE_HEADER_LEN - PAGE_CHECKSUM_LEN) / NODE_SLOT_LEN;
/// BLAKE3 `derive_key` context of the page checksum.
pub const PAGE_CHECKSUM_CONTEXT: &str = "xaeroflux/page/v1/checksum";

const CHECKSUM_OFFSET: usize = PAGE_SIZE - PAGE_CHECKSUM_LEN;
const SLOTS_END: usize = PAGE_HEADER_LEN + NODES_PER_PAGE * NODE_SLOT_LEN;

// The layout leaves no padding between the slots and the checksum.
const _: () = assert!(SLOTS_END == CHECKSUM_OFFSET);
const _: () = assert!(NODES_PER_PAGE <= u16::MAX as usize);

static CHECKSUM_KEY: LazyLock<ContextKey> =
    LazyLock::new(|| hash_derive_key_context(PAGE_CHECKSUM_CONTEXT));

fn checksum(covered: &[u8]) -> [u8; PAGE_CHECKSUM_LEN] {
    let mut hasher = Hasher::new_from_context_key(&CHECKSUM_KEY);
    hasher.update(covered);
    *hasher.finalize().as_bytes()
}

/// Why bytes are not a valid page.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PageError {
    /// The input is not exactly [`PAGE_SIZE`] bytes.
    #[error("page is {len} bytes, expected {expected}")]
    WrongSize {
        /// Bytes given.
        len: usize,
        /// [`PAGE_SIZE`].
        expected: usize,
    },
    /// The page does not start with `XAER`.
    #[error("bad page magic {found:02x?}")]
    BadMagic {
        /// The first four bytes.
        found: [u8; 4],
    },
    /// A format version this code cannot read.
    #[error("unsupported page format version {found} (supported: {supported})")]
    UnsupportedVersion {
        /// Version found.
        found: u16,
        /// [`PAGE_FORMAT_VERSION`].
        supported: u16,
    },
    /// The checksum does not match header and slots.
    #[error("page checksum mismatch")]
    ChecksumMismatch,
    /// A page kind this code does not know.
    #[error("unknown page kind {found}")]
    UnknownKind {
        /// Kind byte found.
        found: u8,
    },
    /// Flags this code does not know.
    #[error("unsupported page flags {found:#04x}")]
    UnsupportedFlags {
        /// Flags byte found.
        found: u8,
    },
    /// More filled slots than a page has.
    #[error("page claims {count} nodes, at most {max} fit")]
    BadNodeCount {
        /// Node count found.
        count: u16,
        /// [`NODES_PER_PAGE`].
        max: usize,
    },
    /// The last node's position does not fit in a `u64`.
    #[error("page positions overflow: first position {first_pos} with {count} nodes")]
    PositionOverflow {
        /// `first_pos` found.
        first_pos: u64,
        /// Node count found.
        count: u16,
    },
    /// A reserved header byte is not zero.
    #[error("reserved header byte at offset {offset} is not zero")]
    NonZeroReserved {
        /// Byte offset in the page.
        offset: usize,
    },
    /// An unused node slot is not zero.
    #[error("unused node slot {slot} is not zero")]
    NonZeroUnusedSlot {
        /// Slot index.
        slot: usize,
    },
}

/// A page already holds [`NODES_PER_PAGE`] nodes (or its positions would overflow).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("page is full ({capacity} nodes)")]
pub struct PageFull {
    /// Nodes the page holds.
    pub capacity: usize,
}

/// An owned page of MMR nodes, being filled or decoded from bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    mmr_id: u64,
    first_pos: u64,
    nodes: Vec<Hash32>,
}

impl Page {
    /// An empty page of MMR `mmr_id` whose slot 0 is position `first_pos`.
    pub fn new(mmr_id: u64, first_pos: u64) -> Self {
        Self {
            mmr_id,
            first_pos,
            nodes: Vec::with_capacity(NODES_PER_PAGE),
        }
    }

    /// Which MMR the page belongs to.
    pub fn mmr_id(&self) -> u64 {
        self.mmr_id
    }

    /// MMR position of slot 0.
    pub fn first_pos(&self) -> u64 {
        self.first_pos
    }

    /// One past the position of the last filled slot.
    pub fn end_pos(&self) -> u64 {
        self.first_pos.saturating_add(self.nodes.len() as u64)
    }

    /// Filled slots.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether no slot is filled.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Whether every slot is filled.
    pub fn is_full(&self) -> bool {
        self.nodes.len() >= NODES_PER_PAGE
    }

    /// The filled slots.
    pub fn nodes(&self) -> &[Hash32] {
        &self.nodes
    }

    /// Node in slot `i`, if filled.
    pub fn get(&self, i: usize) -> Option<&Hash32> {
        self.nodes.get(i)
    }

    /// Fills the next slot (position [`end_pos`](Self::end_pos)).
    pub fn push(&mut self, node: &Hash32) -> Result<(), PageFull> {
        let fits_positions = self
            .first_pos
            .checked_add(self.nodes.len() as u64 + 1)
            .is_some();
        if self.is_full() || !fits_positions {
            return Err(PageFull {
                capacity: NODES_PER_PAGE,
            });
        }
        self.nodes.push(*node);
        Ok(())
    }

    /// Encodes the page into `out` (see the module docs for the format).
    pub fn encode_into(&self, out: &mut [u8; PAGE_SIZE]) {
        out.fill(0);
        out[0..4].copy_from_slice(&PAGE_MAGIC);
        out[4..6].copy_from_slice(&PAGE_FORMAT_VERSION.to_le_bytes());
        out[6] = PAGE_KIND_MMR_NODES;
        out[7] = 0;
        out[8..16].copy_from_slice(&self.mmr_id.to_le_bytes());
        out[16..24].copy_from_slice(&self.first_pos.to_le_bytes());
        // `push` caps the node count at NODES_PER_PAGE (510), which fits in a u16.
        let count = u16::try_from(self.nodes.len()).unwrap_or(u16::MAX);
        out[24..26].copy_from_slice(&count.to_le_bytes());
        for (slot, node) in out[PAGE_HEADER_LEN..SLOTS_END]
            .chunks_exact_mut(NODE_SLOT_LEN)
            .zip(&self.nodes)
        {
            slot.copy_from_slice(node);
        }
        let sum = checksum(&out[..CHECKSUM_OFFSET]);
        out[CHECKSUM_OFFSET..].copy_from_slice(&sum);
    }

    /// Encodes the page (see the module docs for the format).
    pub fn encode(&self) -> [u8; PAGE_SIZE] {
        let mut out = [0u8; PAGE_SIZE];
        self.encode_into(&mut out);
        out
    }

    /// Decodes and validates a page.
    pub fn decode(bytes: &[u8]) -> Result<Self, PageError> {
        PageView::new(bytes).map(|view| view.to_page())
    }
}

/// A validated page borrowed from bytes (e.g. an mmap), without copying the nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageView<'a> {
    bytes: &'a [u8; PAGE_SIZE],
    mmr_id: u64,
    first_pos: u64,
    node_count: u16,
}

impl<'a> PageView<'a> {
    /// Validates `bytes` as one page: size, magic, version, checksum, then kind,
    /// flags, node count, reserved bytes and unused slots.
    pub fn new(bytes: &'a [u8]) -> Result<Self, PageError> {
        Self::parse(bytes, true)
    }

    /// Like [`PageView::new`] but without the checksum: for bytes that `new` accepted
    /// before and that cannot have changed since (an immutable page of the page file,
    /// read again). Every other field is still checked, so bad bytes give an error,
    /// never a panic; a changed node hash, though, goes unnoticed.
    pub fn new_prechecked(bytes: &'a [u8]) -> Result<Self, PageError> {
        Self::parse(bytes, false)
    }

    fn parse(bytes: &'a [u8], checksum_too: bool) -> Result<Self, PageError> {
        let bytes: &'a [u8; PAGE_SIZE] = bytes.try_into().map_err(|_| PageError::WrongSize {
            len: bytes.len(),
            expected: PAGE_SIZE,
        })?;
        let magic = [bytes[0], bytes[1], bytes[2], bytes[3]];
        if magic != PAGE_MAGIC {
            return Err(PageError::BadMagic { found: magic });
        }
        let version = u16::from_le_bytes([bytes[4], bytes[5]]);
        if version != PAGE_FORMAT_VERSION {
            return Err(PageError::UnsupportedVersion {
                found: version,
                supported: PAGE_FORMAT_VERSION,
            });
        }
        // Checked before any other field is trusted.
        if checksum_too && checksum(&bytes[..CHECKSUM_OFFSET])[..] != bytes[CHECKSUM_OFFSET..] {
            return Err(PageError::ChecksumMismatch);
        }
        if bytes[6] != PAGE_KIND_MMR_NODES {
            return Err(PageError::UnknownKind { found: bytes[6] });
        }
        if bytes[7] != 0 {
            return Err(PageError::UnsupportedFlags { found: bytes[7] });
        }
        let mmr_id = read_u64(bytes, 8);
        let first_pos = read_u64(bytes, 16);
        let node_count = u16::from_le_bytes([bytes[24], bytes[25]]);
        if usize::from(node_count) > NODES_PER_PAGE {
            return Err(PageError::BadNodeCount {
                count: node_count,
                max: NODES_PER_PAGE,
            });
        }
        if first_pos.checked_add(u64::from(node_count)).is_none() {
            return Err(PageError::PositionOverflow {
                first_pos,
                count: node_count,
            });
        }
        if let Some(offset) = (26..PAGE_HEADER_LEN).find(|&i| bytes[i] != 0) {
            return Err(PageError::NonZeroReserved { offset });
        }
        let used_end = PAGE_HEADER_LEN + usize::from(node_count) * NODE_SLOT_LEN;
        if let Some(offset) = bytes[used_end..SLOTS_END].iter().position(|&b| b != 0) {
            return Err(PageError::NonZeroUnusedSlot {
                slot: usize::from(node_count) + offset / NODE_SLOT_LEN,
            });
        }
        Ok(Self {
            bytes,
            mmr_id,
            first_pos,
            node_count,
        })
    }

    /// Which MMR the page belongs to.
    pub fn mmr_id(&self) -> u64 {
        self.mmr_id
    }

    /// MMR position of slot 0.
    pub fn first_pos(&self) -> u64 {
        self.first_pos
    }

    /// Filled slots.
    pub fn len(&self) -> usize {
        usize::from(self.node_count)
    }

    /// Whether no slot is filled.
    pub fn is_empty(&self) -> bool {
        self.node_count == 0
    }

    /// The filled slots, borrowed from the page bytes.
    pub fn nodes(&self) -> &'a [Hash32] {
        let used_end = PAGE_HEADER_LEN + self.len() * NODE_SLOT_LEN;
        let (nodes, _) = self.bytes[PAGE_HEADER_LEN..used_end].as_chunks::<NODE_SLOT_LEN>();
        nodes
    }

    /// Node in slot `i`, if filled.
    pub fn node(&self, i: usize) -> Option<&'a Hash32> {
        self.nodes().get(i)
    }

    /// Node at MMR position `pos`, if this page holds it.
    pub fn node_at_pos(&self, pos: u64) -> Option<&'a Hash32> {
        let slot = usize::try_from(pos.checked_sub(self.first_pos)?).ok()?;
        self.node(slot)
    }

    /// Copies the page into an owned [`Page`].
    pub fn to_page(&self) -> Page {
        let mut nodes = Vec::with_capacity(NODES_PER_PAGE);
        nodes.extend_from_slice(self.nodes());
        Page {
            mmr_id: self.mmr_id,
            first_pos: self.first_pos,
            nodes,
        }
    }
}

fn read_u64(bytes: &[u8; PAGE_SIZE], offset: usize) -> u64 {
    let mut le = [0u8; 8];
    le.copy_from_slice(&bytes[offset..offset + 8]);
    u64::from_le_bytes(le)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(n: usize) -> Page {
        let mut page = Page::new(7, 1020);
        for i in 0..n {
            page.push(&[i as u8; 32]).unwrap();
        }
        page
    }

    /// Re-seals a page after an edit so that field checks past the checksum run.
    fn reseal(bytes: &mut [u8; PAGE_SIZE]) {
        let sum = checksum(&bytes[..CHECKSUM_OFFSET]);
        bytes[CHECKSUM_OFFSET..].copy_from_slice(&sum);
    }

    #[test]
    fn layout_constants() {
        assert_eq!(NODES_PER_PAGE, 510);
        assert_eq!(SLOTS_END + PAGE_CHECKSUM_LEN, PAGE_SIZE);
    }

    #[test]
    fn header_bytes() {
        let bytes = sample(3).encode();
        assert_eq!(&bytes[0..4], b"XAER");
        assert_eq!(&bytes[4..6], &[1, 0]);
        assert_eq!(bytes[6], 1);
        assert_eq!(&bytes[8..16], &7u64.to_le_bytes());
        assert_eq!(&bytes[16..24], &1020u64.to_le_bytes());
        assert_eq!(&bytes[24..26], &3u16.to_le_bytes());
        assert_eq!(&bytes[32..64], &[0u8; 32]);
        assert_eq!(&bytes[96..128], &[2u8; 32]);
        assert!(bytes[128..CHECKSUM_OFFSET].iter().all(|b| *b == 0));
    }

    #[test]
    fn round_trip_and_full() {
        for n in [0, 1, 200, NODES_PER_PAGE] {
            let page = sample(n);
            let bytes = page.encode();
            assert_eq!(Page::decode(&bytes).unwrap(), page);
            let view = PageView::new(&bytes).unwrap();
            assert_eq!(view.len(), n);
            assert_eq!(view.nodes(), page.nodes());
            assert_eq!(view.node(n), None);
            if n > 0 {
                assert_eq!(view.node_at_pos(1020 + n as u64 - 1), page.get(n - 1));
            }
            assert_eq!(view.node_at_pos(1019), None);
        }
        let mut full = sample(NODES_PER_PAGE);
        assert!(full.is_full());
        assert_eq!(
            full.push(&[0; 32]),
            Err(PageFull {
                capacity: NODES_PER_PAGE
            })
        );
        let mut edge = Page::new(0, u64::MAX);
        assert!(edge.push(&[0; 32]).is_err());
    }

    #[test]
    fn prechecked_skips_only_the_checksum() {
        let good = sample(3).encode();
        let mut flipped = good;
        flipped[40] ^= 1;
        assert_eq!(
            PageView::new(&flipped).err(),
            Some(PageError::ChecksumMismatch)
        );
        let view = PageView::new_prechecked(&flipped).unwrap();
        assert_eq!(view.node(0).unwrap()[8], 1);
        let mut bad_count = good;
        bad_count[24..26].copy_from_slice(&600u16.to_le_bytes());
        assert!(matches!(
            PageView::new_prechecked(&bad_count),
            Err(PageError::BadNodeCount { .. })
        ));
        let mut bad_magic = good;
        bad_magic[0] = b'Y';
        assert!(matches!(
            PageView::new_prechecked(&bad_magic),
            Err(PageError::BadMagic { .. })
        ));
        assert!(PageView::new_prechecked(&good[..100]).is_err());
    }

    #[test]
    fn typed_errors() {
        let good = sample(2).encode();
        assert_eq!(
            Page::decode(&good[..100]),
            Err(PageError::WrongSize {
                len: 100,
                expected: PAGE_SIZE
            })
        );
        let mut b = good;
        b[0] = b'Y';
        assert!(matches!(Page::decode(&b), Err(PageError::BadMagic { .. })));
        let mut b = good;
        b[4] = 2;
        assert_eq!(
            Page::decode(&b),
            Err(PageError::UnsupportedVersion {
                found: 2,
                supported: 1
            })
        );
        let mut b = good;
        b[40] ^= 1;
        assert_eq!(Page::decode(&b), Err(PageError::ChecksumMismatch));

        let cases: [(usize, u8, PageError); 5] = [
            (6, 9, PageError::UnknownKind { found: 9 }),
            (7, 1, PageError::UnsupportedFlags { found: 1 }),
            (
                25,
                2,
                PageError::BadNodeCount {
                    count: 514,
                    max: 510,
                },
            ),
            (30, 1, PageError::NonZeroReserved { offset: 30 }),
            (32 + 5 * 32 + 3, 1, PageError::NonZeroUnusedSlot { slot: 5 }),
        ];
        for (offset, value, expected) in cases {
            let mut b = good;
            b[offset] = value;
            reseal(&mut b);
            assert_eq!(Page::decode(&b), Err(expected));
        }
        let mut b = good;
        b[16..24].copy_from_slice(&u64::MAX.to_le_bytes());
        reseal(&mut b);
        assert!(matches!(
            Page::decode(&b),
            Err(PageError::PositionOverflow { .. })
        ));
    }
}
