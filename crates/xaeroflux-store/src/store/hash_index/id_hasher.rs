//! The hasher of maps keyed by event ids (the writer's per-log map).

use std::hash::Hasher;

/// Hasher for maps keyed by [`EventId`]: ids are BLAKE3 outputs, already uniform, so
/// the first 8 bytes are the hash (SipHash over 32 bytes was a visible part of the write
/// path; see `docs/MEASUREMENTS.md`).
/// Anything else written to it (the slice length prefix) is mixed in cheaply.
#[derive(Default, Clone, Copy)]
pub(crate) struct IdHasher(u64);

impl Hasher for IdHasher {
    fn write(&mut self, bytes: &[u8]) {
        if let Some(head) = bytes.first_chunk::<8>() {
            self.0 ^= u64::from_le_bytes(*head);
        } else {
            for b in bytes {
                self.0 = self.0.rotate_left(8) ^ u64::from(*b);
            }
        }
    }
    fn write_usize(&mut self, _len: usize) {
        // Only the array length prefix of `[u8; 32]`: constant, carries no information.
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use std::hash::{BuildHasher, BuildHasherDefault};

    use xaeroflux_core::EventId;

    use super::*;

    /// An id hashes to its first 8 bytes (it is already uniform); equal ids hash
    /// equal and ids that differ there hash apart.
    #[test]
    fn an_id_hashes_to_its_prefix() {
        let build = BuildHasherDefault::<IdHasher>::default();
        let mut id = EventId([0; 32]);
        id.0[..8].copy_from_slice(&0x0102_0304_0506_0708u64.to_le_bytes());
        let h = build.hash_one(id);
        assert_eq!(h, 0x0102_0304_0506_0708);
        assert_eq!(build.hash_one(id), h);
        let mut other = id;
        other.0[0] ^= 1;
        assert_ne!(build.hash_one(other), h);
        // Bytes past the prefix do not change the hash (the map compares ids).
        let mut tail = id;
        tail.0[31] ^= 1;
        assert_eq!(build.hash_one(tail), h);
    }
}
