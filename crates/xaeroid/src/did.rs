//! [`IdHash`], the 32-byte identity hash, and its DID string form.
//!
//! Format: `IdHash = BLAKE3("xaeroid/v1" || alg || raw_public_key)` where
//! `"xaeroid/v1"` is the 10 ASCII bytes `78 61 65 72 6f 69 64 2f 76 31`, `alg`
//! is one byte ([`crate::ALG_FN_DSA_512`] = `0x01`) and `raw_public_key` is the
//! 897-byte fn-dsa verifying key. In other words: BLAKE3 of `"xaeroid/v1"`
//! followed by the encoded [`crate::XaeroID`] bytes.
//!
//! DID: `did:xaero:` + the 32 bytes in lowercase RFC 4648 base32
//! (alphabet `a-z2-7`), without padding: 52 characters, 62 in total. The last
//! character carries a single bit; its four unused low bits must be zero, so
//! each id has exactly one accepted string.

use std::fmt;

use crate::error::DidError;

/// Domain-separation prefix hashed in front of every public key.
pub(crate) const ID_DOMAIN: &[u8; 10] = b"xaeroid/v1";

/// Prefix of every DID string.
pub const DID_PREFIX: &str = "did:xaero:";

/// Number of base32 characters after [`DID_PREFIX`].
pub const DID_BASE32_LEN: usize = 52;

/// Total length of a DID string (62).
pub const DID_LEN: usize = DID_PREFIX.len() + DID_BASE32_LEN;

const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";

/// The 32-byte identity hash of a [`crate::XaeroID`].
///
/// This is what logs, events and indexes store to name an author; the full
/// public key is only needed to verify signatures.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct IdHash(pub [u8; 32]);

impl IdHash {
    /// Hash an encoded public key (`alg || raw_public_key`) into its id.
    pub(crate) fn of_encoded_key(encoded: &[u8]) -> Self {
        let mut h = blake3::Hasher::new();
        h.update(ID_DOMAIN);
        h.update(encoded);
        Self(*h.finalize().as_bytes())
    }

    /// The raw 32 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// First 8 lowercase hex characters, for logs.
    pub fn short(&self) -> String {
        let mut s = String::with_capacity(8);
        for b in &self.0[..4] {
            push_hex(&mut s, *b);
        }
        s
    }

    /// `did:xaero:` + lowercase unpadded base32 (62 characters).
    pub fn to_did(&self) -> String {
        let mut s = String::with_capacity(DID_LEN);
        s.push_str(DID_PREFIX);
        // Process 5-byte groups (40 bits -> 8 chars); 32 bytes = 6 groups + 2 bytes.
        let mut acc: u64 = 0;
        let mut bits = 0u32;
        for &b in &self.0 {
            acc = (acc << 8) | u64::from(b);
            bits += 8;
            while bits >= 5 {
                bits -= 5;
                s.push(char::from(ALPHABET[((acc >> bits) & 0x1f) as usize]));
            }
        }
        if bits > 0 {
            s.push(char::from(ALPHABET[((acc << (5 - bits)) & 0x1f) as usize]));
        }
        s
    }

    /// Parse a DID produced by [`IdHash::to_did`].
    ///
    /// Strict: requires the exact prefix, exactly 52 lowercase base32
    /// characters and zero trailing bits. Uppercase, padding and whitespace
    /// are rejected.
    pub fn from_did(did: &str) -> Result<IdHash, DidError> {
        let body = did
            .strip_prefix(DID_PREFIX)
            .ok_or(DidError::MissingPrefix)?
            .as_bytes();
        if body.len() != DID_BASE32_LEN {
            return Err(DidError::InvalidLength {
                len: body.len(),
                expected: DID_BASE32_LEN,
            });
        }
        let mut out = [0u8; 32];
        let mut acc: u64 = 0;
        let mut bits = 0u32;
        let mut pos = 0usize;
        for (index, &byte) in body.iter().enumerate() {
            let v = decode_char(byte).ok_or(DidError::InvalidCharacter { index, byte })?;
            acc = (acc << 5) | u64::from(v);
            bits += 5;
            if bits >= 8 {
                bits -= 8;
                // 52 * 5 = 260 bits = 32 bytes + 4 bits, so `pos` stays below 32.
                if let Some(slot) = out.get_mut(pos) {
                    *slot = (acc >> bits) as u8;
                }
                pos += 1;
            }
        }
        // `bits` is now 4: the unused low bits of the last character.
        if acc & ((1u64 << bits) - 1) != 0 {
            return Err(DidError::NonCanonical);
        }
        Ok(IdHash(out))
    }
}

fn decode_char(c: u8) -> Option<u8> {
    match c {
        b'a'..=b'z' => Some(c - b'a'),
        b'2'..=b'7' => Some(c - b'2' + 26),
        _ => None,
    }
}

fn push_hex(s: &mut String, b: u8) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    s.push(char::from(HEX[usize::from(b >> 4)]));
    s.push(char::from(HEX[usize::from(b & 0x0f)]));
}

impl fmt::Display for IdHash {
    /// Full lowercase hex (64 characters).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = String::with_capacity(64);
        for b in &self.0 {
            push_hex(&mut s, *b);
        }
        f.write_str(&s)
    }
}

impl fmt::Debug for IdHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IdHash({})", self.short())
    }
}

impl std::str::FromStr for IdHash {
    type Err = DidError;

    /// Parses the DID form.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::from_did(s)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_vectors() {
        let zero = IdHash([0; 32]);
        assert_eq!(zero.to_did(), format!("did:xaero:{}", "a".repeat(52)));
        assert_eq!(zero.short(), "00000000");
        let ff = IdHash([0xff; 32]);
        // 256 one-bits: 51 full '7's then one bit -> 'q' (0b10000).
        assert_eq!(ff.to_did(), format!("did:xaero:{}q", "7".repeat(51)));
        assert_eq!(ff.to_string(), "f".repeat(64));
        assert_eq!(IdHash::from_did(&ff.to_did()).unwrap(), ff);
    }

    #[test]
    fn rejects_bad_input() {
        let good = IdHash([7; 32]).to_did();
        assert_eq!(
            IdHash::from_did("did:key:abc"),
            Err(DidError::MissingPrefix)
        );
        assert_eq!(
            IdHash::from_did(&good[..good.len() - 1]),
            Err(DidError::InvalidLength {
                len: 51,
                expected: 52
            })
        );
        assert_eq!(
            IdHash::from_did(&format!("{good}=")),
            Err(DidError::InvalidLength {
                len: 53,
                expected: 52
            })
        );
        let upper = format!("did:xaero:{}", good[10..].to_uppercase());
        assert!(matches!(
            IdHash::from_did(&upper),
            Err(DidError::InvalidCharacter { index: 0, .. })
        ));
        // Last char of all-zero id with a trailing bit set: 'b' = 0b00001.
        let nc = format!("did:xaero:{}b", "a".repeat(51));
        assert_eq!(IdHash::from_did(&nc), Err(DidError::NonCanonical));
        let digit1 = format!("did:xaero:{}1", "a".repeat(51));
        assert!(matches!(
            IdHash::from_did(&digit1),
            Err(DidError::InvalidCharacter {
                index: 51,
                byte: b'1'
            })
        ));
    }

    proptest! {
        #[test]
        fn did_round_trip(bytes in any::<[u8; 32]>()) {
            let id = IdHash(bytes);
            let did = id.to_did();
            prop_assert_eq!(did.len(), DID_LEN);
            let expected = data_encoding::BASE32_NOPAD.encode(&bytes).to_lowercase();
            prop_assert_eq!(&did[10..], expected.as_str());
            prop_assert_eq!(IdHash::from_did(&did).unwrap(), id);
            prop_assert_eq!(id.to_string().len(), 64);
            prop_assert!(id.to_string().starts_with(&id.short()));
        }

        #[test]
        fn from_did_never_panics(s in ".{0,80}") {
            let _ = IdHash::from_did(&s);
        }

        #[test]
        fn from_did_near_miss(bytes in any::<[u8; 32]>(), idx in 0usize..52, c in any::<u8>()) {
            let did = IdHash(bytes).to_did();
            let mut b = did.into_bytes();
            b[10 + idx] = c;
            if let Ok(s) = String::from_utf8(b) {
                // Either rejected, or accepted only if it re-encodes to itself.
                if let Ok(id) = IdHash::from_did(&s) {
                    prop_assert_eq!(id.to_did(), s);
                }
            }
        }
    }
}
