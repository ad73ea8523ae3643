//! Event blocks: consecutive stored events packed into one value.
//!
//! The store keeps events in blocks (one LMDB value per chunk of a group commit,
//! keyed by the local sequence of its first event) instead of one value per event: a
//! put per event cost more than everything else the writer does for a small event.
//! A block is read in place; finding event `i` is O(1) through its offset table.
//!
//! Layout (all integers little-endian, see `docs/FORMAT.md`):
//!
//! | offset | size | field |
//! | ---: | ---: | --- |
//! | 0 | 4 | `count` u32, `1..=`[`MAX_BLOCK_EVENTS`] |
//! | 4 | 4·count | `ends`: end offset of event `i` in `data` |
//! | 4 + 4·count | rest | `data`: the canonical event encodings, back to back |
//!
//! Event `i` is `data[ends[i-1]..ends[i]]` (with `ends[-1] = 0`): ends strictly
//! increase and the last one is `data.len()`. Decoding checks the header in O(1);
//! each access checks its own offsets, and [`BlockRef::validate`] checks them all.

use std::io::{self, Write};

/// Most events in one block.
pub const MAX_BLOCK_EVENTS: usize = 4096;
/// Target size of an encoded block: 32 KiB less LMDB's 16-byte page header, so a block
/// of this size fills whole overflow pages (8 of 4 KiB, or 2 of 16 KiB) and no page
/// holds only its last bytes. A writer that checks [`BlockBuilder::has_room`] before
/// each push stays within it (unless one event is larger); [`BlockBuilder::is_full`]
/// says when a block has reached it.
pub const TARGET_BLOCK_BYTES: usize = 32 * 1024 - 16;

/// Whether an event of `len` bytes may join a block of `count` events and `block_len`
/// encoded bytes: an empty block takes any event; otherwise the block must stay within
/// [`MAX_BLOCK_EVENTS`] and [`TARGET_BLOCK_BYTES`].
pub fn has_room(count: usize, block_len: usize, len: usize) -> bool {
    count == 0 || (count < MAX_BLOCK_EVENTS && block_len + 4 + len <= TARGET_BLOCK_BYTES)
}

/// Size of the block of events of these lengths.
pub fn encoded_block_len(lens: &[usize]) -> usize {
    4 + 4 * lens.len() + lens.iter().sum::<usize>()
}

/// Writes the head of a block (its count and end offsets) for events of these lengths,
/// without the events: the caller writes them next, back to back, in the same order,
/// [`encoded_block_len`] bytes in all. A writer that has the events in several places
/// (a header to encode, a payload elsewhere) writes a block in one pass this way,
/// without first copying them into a [`BlockBuilder`].
pub fn write_block_head(out: &mut impl Write, lens: &[usize]) -> io::Result<()> {
    let mut end = 0u32;
    let ends = lens.iter().map(|len| {
        end = end.saturating_add(u32::try_from(*len).unwrap_or(u32::MAX));
        end
    });
    write_head(out, ends)
}

/// Writes the event count and the end offsets.
fn write_head(out: &mut impl Write, ends: impl ExactSizeIterator<Item = u32>) -> io::Result<()> {
    let count = u32::try_from(ends.len()).map_err(io::Error::other)?;
    out.write_all(&count.to_le_bytes())?;
    // The table goes out in few writes: LMDB's reserved space takes each as a copy.
    let mut table = [0u8; 4 * 256];
    let mut filled = 0;
    for end in ends {
        table[filled..filled + 4].copy_from_slice(&end.to_le_bytes());
        filled += 4;
        if filled == table.len() {
            out.write_all(&table)?;
            filled = 0;
        }
    }
    out.write_all(&table[..filled])
}

/// Why bytes are not a valid block.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BlockError {
    /// Shorter than its header or offset table.
    #[error("block truncated: {len} bytes")]
    Truncated {
        /// Bytes given.
        len: usize,
    },
    /// The event count is zero or above [`MAX_BLOCK_EVENTS`].
    #[error("block holds {count} events (allowed: 1..={MAX_BLOCK_EVENTS})")]
    BadCount {
        /// Count found.
        count: u32,
    },
    /// An offset is out of order or out of bounds.
    #[error("block offset {index} is invalid")]
    BadOffset {
        /// Index of the event whose end offset is wrong.
        index: usize,
    },
}

/// A decoded block, borrowing its bytes.
#[derive(Debug, Clone, Copy)]
pub struct BlockRef<'a> {
    ends: &'a [u8],
    data: &'a [u8],
}

impl<'a> BlockRef<'a> {
    /// Checks the header and the table's size; offsets are checked per access.
    pub fn decode(bytes: &'a [u8]) -> Result<Self, BlockError> {
        let truncated = BlockError::Truncated { len: bytes.len() };
        let (head, rest) = bytes.split_first_chunk::<4>().ok_or(truncated.clone())?;
        let count = u32::from_le_bytes(*head);
        if count == 0 || count as usize > MAX_BLOCK_EVENTS {
            return Err(BlockError::BadCount { count });
        }
        let table = count as usize * 4;
        if rest.len() < table {
            return Err(truncated);
        }
        let (ends, data) = rest.split_at(table);
        Ok(BlockRef { ends, data })
    }

    /// Number of events.
    pub fn len(&self) -> usize {
        self.ends.len() / 4
    }

    /// Always false: a block holds at least one event.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    fn end(&self, i: usize) -> usize {
        let b = &self.ends[i * 4..i * 4 + 4];
        u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize
    }

    /// The encoding of event `i`; `Ok(None)` past the end.
    pub fn get(&self, i: usize) -> Result<Option<&'a [u8]>, BlockError> {
        if i >= self.len() {
            return Ok(None);
        }
        let start = if i == 0 { 0 } else { self.end(i - 1) };
        let end = self.end(i);
        let last = i + 1 == self.len();
        if start >= end || end > self.data.len() || (last && end != self.data.len()) {
            return Err(BlockError::BadOffset { index: i });
        }
        Ok(Some(&self.data[start..end]))
    }

    /// Checks every offset.
    pub fn validate(&self) -> Result<(), BlockError> {
        (0..self.len()).try_for_each(|i| self.get(i).map(|_| ()))
    }

    /// The events in order; an invalid offset ends the iteration with its error.
    pub fn iter(&self) -> impl Iterator<Item = Result<&'a [u8], BlockError>> + use<'a> {
        let b = *self;
        (0..b.len()).map(move |i| b.get(i).map(|e| e.unwrap_or_default()))
    }
}

/// Builds one block, reusing its buffers from block to block.
#[derive(Debug, Default)]
pub struct BlockBuilder {
    ends: Vec<u32>,
    data: Vec<u8>,
}

impl BlockBuilder {
    /// An empty builder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends one encoded event written by `encode` into the data buffer. An event
    /// must not be empty, and a block holds at most [`MAX_BLOCK_EVENTS`] events and
    /// 4 GiB of data: check [`BlockBuilder::is_full`] before each push.
    pub fn push_with(&mut self, encode: impl FnOnce(&mut Vec<u8>)) {
        let before = self.data.len();
        encode(&mut self.data);
        debug_assert!(self.data.len() > before, "empty event");
        debug_assert!(self.ends.len() < MAX_BLOCK_EVENTS);
        self.ends
            .push(u32::try_from(self.data.len()).unwrap_or(u32::MAX));
    }

    /// Appends one encoded event.
    pub fn push(&mut self, event: &[u8]) {
        self.push_with(|d| d.extend_from_slice(event));
    }

    /// Whether the block should be closed before the next push.
    pub fn is_full(&self) -> bool {
        self.ends.len() >= MAX_BLOCK_EVENTS || self.encoded_len() >= TARGET_BLOCK_BYTES
    }

    /// Whether an event of `len` bytes may join the block (see [`has_room`]).
    pub fn has_room(&self, len: usize) -> bool {
        has_room(self.len(), self.encoded_len(), len)
    }

    /// Events pushed.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// Whether no event was pushed.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Size of the encoded block.
    pub fn encoded_len(&self) -> usize {
        4 + 4 * self.ends.len() + self.data.len()
    }

    /// Writes the block (exactly [`BlockBuilder::encoded_len`] bytes).
    pub fn write_to(&self, out: &mut impl Write) -> io::Result<()> {
        write_head(out, self.ends.iter().copied())?;
        out.write_all(&self.data)
    }

    /// The encoded block as a new vector.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(self.encoded_len());
        self.write_to(&mut v).unwrap_or_default();
        v
    }

    /// Forgets the events, keeping the buffers.
    pub fn clear(&mut self) {
        self.ends.clear();
        self.data.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn build(events: &[Vec<u8>]) -> Vec<u8> {
        let mut b = BlockBuilder::new();
        for e in events {
            b.push(e);
        }
        let v = b.to_vec();
        assert_eq!(v.len(), b.encoded_len());
        v
    }

    proptest! {
        /// A block written in one pass (head, then the events) is byte for byte the
        /// builder's block.
        #[test]
        fn streamed_blocks_equal_built_ones(events in prop::collection::vec(prop::collection::vec(any::<u8>(), 1..300), 1..600)) {
            let lens: Vec<usize> = events.iter().map(Vec::len).collect();
            let mut streamed = Vec::new();
            write_block_head(&mut streamed, &lens).unwrap();
            for e in &events {
                streamed.extend_from_slice(e);
            }
            prop_assert_eq!(streamed.len(), encoded_block_len(&lens));
            prop_assert_eq!(streamed, build(&events));
        }

        #[test]
        fn round_trip(events in prop::collection::vec(prop::collection::vec(any::<u8>(), 1..300), 1..300)) {
            let bytes = build(&events);
            let block = BlockRef::decode(&bytes).unwrap();
            prop_assert_eq!(block.len(), events.len());
            block.validate().unwrap();
            for (i, e) in events.iter().enumerate() {
                prop_assert_eq!(block.get(i).unwrap(), Some(&e[..]));
            }
            prop_assert_eq!(block.get(events.len()).unwrap(), None);
            let all: Vec<&[u8]> = block.iter().collect::<Result<_, _>>().unwrap();
            prop_assert_eq!(all.len(), events.len());
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..200), i in 0usize..64) {
            if let Ok(b) = BlockRef::decode(&bytes) {
                let _ = b.get(i);
                let _ = b.validate();
                let _ = b.iter().count();
            }
        }
    }

    #[test]
    fn damaged_blocks_are_errors() {
        let good = build(&[vec![1, 2, 3], vec![4, 5]]);
        assert!(BlockRef::decode(&good).unwrap().validate().is_ok());
        assert_eq!(
            BlockRef::decode(&good[..3]).unwrap_err(),
            BlockError::Truncated { len: 3 }
        );
        assert_eq!(
            BlockRef::decode(&good[..10]).unwrap_err(),
            BlockError::Truncated { len: 10 }
        );
        let mut zero = good.clone();
        zero[..4].copy_from_slice(&0u32.to_le_bytes());
        assert_eq!(
            BlockRef::decode(&zero).unwrap_err(),
            BlockError::BadCount { count: 0 }
        );
        // A trailing byte past the last end.
        let mut long = good.clone();
        long.push(9);
        let b = BlockRef::decode(&long).unwrap();
        assert_eq!(b.get(1).unwrap_err(), BlockError::BadOffset { index: 1 });
        assert!(b.validate().is_err());
        // Ends out of order.
        let mut swapped = good.clone();
        swapped[4..8].copy_from_slice(&6u32.to_le_bytes());
        let b = BlockRef::decode(&swapped).unwrap();
        assert_eq!(b.get(0).unwrap_err(), BlockError::BadOffset { index: 0 });
        assert_eq!(b.get(1).unwrap_err(), BlockError::BadOffset { index: 1 });
    }

    #[test]
    fn builder_closes_at_its_limits() {
        let mut b = BlockBuilder::new();
        // count + one end offset + the event: one byte short of the target.
        b.push(&vec![7; TARGET_BLOCK_BYTES - 9]);
        assert_eq!(b.encoded_len(), TARGET_BLOCK_BYTES - 1);
        assert!(!b.is_full());
        b.push(&[1]);
        assert!(b.is_full());
        // Pushing only what has room fills the target to within one event, in whole
        // 4 KiB LMDB pages after their 16-byte header.
        b.clear();
        let event = [3u8; 156]; // a 64-byte payload with its 92-byte header
        while b.has_room(event.len()) {
            b.push(&event);
        }
        assert!(b.encoded_len() <= TARGET_BLOCK_BYTES);
        assert!(b.encoded_len() + 4 + event.len() > TARGET_BLOCK_BYTES);
        assert_eq!((16 + b.encoded_len()).div_ceil(4096), 8);
        // An empty block takes any event; a second large one does not fit.
        b.clear();
        assert!(b.has_room(TARGET_BLOCK_BYTES * 2));
        b.push(&vec![1; 16 * 1024]);
        assert!(b.has_room(16 * 1024 - 100));
        assert!(!b.has_room(16 * 1024));
        b.clear();
        for _ in 0..MAX_BLOCK_EVENTS {
            assert!(!b.is_full());
            b.push(&[1]);
        }
        assert!(b.is_full());
    }
}
