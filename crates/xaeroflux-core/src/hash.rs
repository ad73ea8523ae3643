//! BLAKE3 straight from its compression function, for the one-block inputs of the MMR.
//!
//! A leaf hash is `derive_key` over 32 bytes and a node hash over 64: one compression
//! each, with no tree above it. Through `blake3::Hasher` the buffering and output
//! bookkeeping cost half as much again as the compression (leaf hash 59 ns through a
//! `Hasher`, 38 ns here, on the reference machine). The compression and SIMD entry
//! points are `blake3::platform`, public but hidden from the crate's documentation,
//! which is why `blake3` is pinned to one exact version in the workspace; the tests
//! compare every path with the `Hasher`. (Event ids, 156 bytes and more, gain only 4%
//! this way and stay on the `Hasher`.)
use std::sync::LazyLock;

use blake3::BLOCK_LEN;
use blake3::hazmat::hash_derive_key_context;
use blake3::platform::{Platform, le_bytes_from_words_32, words_from_le_bytes_32};

/// Block flags of the BLAKE3 specification.
pub(crate) const CHUNK_START: u8 = 1;
pub(crate) const CHUNK_END: u8 = 2;
pub(crate) const ROOT: u8 = 8;
/// Mode flag of `derive_key`'s second phase (keyed by the context key).
pub(crate) const DERIVE_KEY_MATERIAL: u8 = 64;

/// BLAKE3's initial chaining value: the key of plain hashing.
#[cfg(test)]
pub(crate) const IV: [u32; 8] = [
    0x6A09E667, 0xBB67AE85, 0x3C6EF372, 0xA54FF53A, 0x510E527F, 0x9B05688C, 0x1F83D9AB, 0x5BE0CD19,
];

/// The best compression implementation this CPU has, detected once.
pub(crate) static PLATFORM: LazyLock<Platform> = LazyLock::new(Platform::detect);

/// The key of `derive_key(context, ..)`'s second phase, as the compression function's
/// words.
pub(crate) fn context_key_words(context: &str) -> [u32; 8] {
    words_from_le_bytes_32(&hash_derive_key_context(context))
}

/// BLAKE3 of the first `len` bytes of `block` (the rest must be zero), an input of one
/// block, in the mode given by `key` and `mode`: BLAKE3's IV and 0 for plain hashing,
/// [`context_key_words`] and [`DERIVE_KEY_MATERIAL`] for `derive_key`.
#[inline]
pub(crate) fn one_block(key: &[u32; 8], mode: u8, block: &[u8; BLOCK_LEN], len: u8) -> [u8; 32] {
    let mut cv = *key;
    PLATFORM.compress_in_place(
        &mut cv,
        block,
        len,
        0,
        mode | CHUNK_START | CHUNK_END | ROOT,
    );
    le_bytes_from_words_32(&cv)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_block_matches_blake3_at_every_length() {
        let context = "xaeroflux/test/v1";
        let key = context_key_words(context);
        for len in 0..=BLOCK_LEN {
            let mut block = [0u8; BLOCK_LEN];
            for (i, b) in block[..len].iter_mut().enumerate() {
                *b = (i * 31 + 7) as u8;
            }
            let data = &block[..len];
            let n = len as u8;
            assert_eq!(one_block(&IV, 0, &block, n), *blake3::hash(data).as_bytes());
            let derived = one_block(&key, DERIVE_KEY_MATERIAL, &block, n);
            assert_eq!(derived, blake3::derive_key(context, data), "len {len}");
        }
    }
}
