//! [`Signature`]: an algorithm byte followed by a raw FN-DSA-512 signature.
//!
//! Format (667 bytes): `alg (1 byte, 0x01 = FN-DSA-512)` ||
//! `fn-dsa signature (666 bytes)`. The fn-dsa part is the fn-dsa 0.4.0 encoding:
//! header byte `0x39` (`0x30 + logn`, logn = 9), 40-byte nonce, then the
//! compressed `s2` padded with zeros to the fixed length.

use std::fmt;

use crate::ALG_FN_DSA_512;
use crate::error::DecodeError;

/// Size of a raw fn-dsa FN-DSA-512 signature.
pub(crate) const RAW_SIG_LEN: usize = fn_dsa::signature_size(fn_dsa::FN_DSA_LOGN_512);

/// Header byte of a raw FN-DSA-512 signature (`0x30 + logn`).
const RAW_SIG_HEADER: u8 = 0x30 + fn_dsa::FN_DSA_LOGN_512 as u8;

/// A signature by a [`crate::XaeroKeypair`].
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Signature {
    bytes: [u8; Signature::ENCODED_LEN],
}

impl Signature {
    /// Encoded length: 1 algorithm byte + 666 fn-dsa bytes = 667.
    pub const ENCODED_LEN: usize = 1 + RAW_SIG_LEN;

    /// Wrap the output of fn-dsa's `sign`.
    pub(crate) fn from_raw(raw: &[u8; RAW_SIG_LEN]) -> Self {
        let mut bytes = [0u8; Self::ENCODED_LEN];
        bytes[0] = ALG_FN_DSA_512;
        bytes[1..].copy_from_slice(raw);
        Self { bytes }
    }

    /// The encoded form (see the module docs), [`Signature::ENCODED_LEN`] bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The algorithm byte.
    pub fn algorithm(&self) -> u8 {
        self.bytes[0]
    }

    /// The raw fn-dsa signature (666 bytes), without the algorithm byte.
    pub fn raw(&self) -> &[u8] {
        &self.bytes[1..]
    }

    /// Decode a signature.
    ///
    /// Checks the length, the algorithm byte and the fn-dsa header byte. The
    /// body is only checked by verification.
    pub fn from_bytes(bytes: &[u8]) -> Result<Signature, DecodeError> {
        let arr: [u8; Self::ENCODED_LEN] =
            bytes.try_into().map_err(|_| DecodeError::InvalidLength {
                len: bytes.len(),
                expected: Self::ENCODED_LEN,
            })?;
        if arr[0] != ALG_FN_DSA_512 {
            return Err(DecodeError::UnsupportedAlgorithm { alg: arr[0] });
        }
        if arr[1] != RAW_SIG_HEADER {
            return Err(DecodeError::InvalidSignature { header: arr[1] });
        }
        Ok(Self { bytes: arr })
    }
}

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signature(")?;
        for b in &self.bytes[..8] {
            write!(f, "{b:02x}")?;
        }
        write!(f, "..)")
    }
}

impl AsRef<[u8]> for Signature {
    fn as_ref(&self) -> &[u8] {
        &self.bytes
    }
}

impl TryFrom<&[u8]> for Signature {
    type Error = DecodeError;

    fn try_from(bytes: &[u8]) -> Result<Self, Self::Error> {
        Self::from_bytes(bytes)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn sizes() {
        assert_eq!(RAW_SIG_LEN, 666);
        assert_eq!(Signature::ENCODED_LEN, 667);
        assert_eq!(RAW_SIG_HEADER, 0x39);
    }

    #[test]
    fn rejects() {
        let mut b = vec![0u8; 667];
        assert_eq!(
            Signature::from_bytes(&b),
            Err(DecodeError::UnsupportedAlgorithm { alg: 0 })
        );
        b[0] = 1;
        assert_eq!(
            Signature::from_bytes(&b),
            Err(DecodeError::InvalidSignature { header: 0 })
        );
        b[1] = 0x39;
        assert!(Signature::from_bytes(&b).is_ok());
        assert_eq!(
            Signature::from_bytes(&b[..666]),
            Err(DecodeError::InvalidLength {
                len: 666,
                expected: 667
            })
        );
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(b in proptest::collection::vec(any::<u8>(), 0..800)) {
            if let Ok(s) = Signature::from_bytes(&b) {
                prop_assert_eq!(s.as_bytes(), &b[..]);
            }
        }
    }
}
