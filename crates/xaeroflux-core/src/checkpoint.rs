//! Signed checkpoints of author logs.
//!
//! An author signs `{group, author, length, root, hlc}`: "my log in this group has
//! `length` events and its Merkle Mountain Range root is `root`". One Falcon signature
//! thus covers a whole batch of events. Two valid checkpoints of one log with the same
//! length and different roots are proof that the author forked its log.
//!
//! Format of a checkpoint (version 1, [`CHECKPOINT_LEN`] = 113 bytes, little-endian):
//!
//! | offset | size | field                     |
//! |-------:|-----:|---------------------------|
//! |      0 |    1 | version, `1`              |
//! |      1 |   32 | group id                  |
//! |     33 |   32 | author id                 |
//! |     65 |    8 | length (u64, leaf count)  |
//! |     73 |   32 | MMR root                  |
//! |    105 |    8 | hlc (u64)                 |
//!
//! The signature is FN-DSA-512 through `xaeroid` with the domain context
//! [`CHECKPOINT_SIGNING_CONTEXT`] over those 113 bytes. A signed checkpoint is the 113
//! bytes, then a u16 signature length, then the encoded `xaeroid::Signature`.

use thiserror::Error;
use xaeroid::{Signature, XaeroID, XaeroKeypair};

use crate::event::AuthorId;
use crate::group::GroupId;
use crate::hlc::Hlc;

/// Version byte of the checkpoint encoding.
pub const CHECKPOINT_VERSION: u8 = 1;
/// Length of an encoded checkpoint.
pub const CHECKPOINT_LEN: usize = 113;
/// FN-DSA domain context of checkpoint signatures.
pub const CHECKPOINT_SIGNING_CONTEXT: &[u8] = b"xaeroflux/checkpoint/v1";
/// Upper bound on the encoded signature accepted by the decoder.
const MAX_SIGNATURE_LEN: usize = 2048;

/// The signed statement about an author log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Checkpoint {
    /// Group of the log.
    pub group: GroupId,
    /// Author of the log.
    pub author: AuthorId,
    /// Number of events in the log.
    pub length: u64,
    /// MMR root over the first `length` event ids.
    pub root: [u8; 32],
    /// When it was signed.
    pub hlc: Hlc,
}

/// Why checkpoint bytes or a signature were rejected.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum CheckpointError {
    /// Wrong length.
    #[error("checkpoint truncated or oversized: {len} bytes")]
    BadLength {
        /// Bytes available.
        len: usize,
    },
    /// Unknown version.
    #[error("unsupported checkpoint version {found}")]
    UnsupportedVersion {
        /// Version byte found.
        found: u8,
    },
    /// The signature bytes are malformed.
    #[error("malformed checkpoint signature")]
    BadSignatureEncoding(#[source] xaeroid::DecodeError),
    /// The signature does not verify, or the key is not the author's.
    #[error("checkpoint signature does not verify for author {author}")]
    BadSignature {
        /// The claimed author.
        author: AuthorId,
    },
}

impl Checkpoint {
    /// Canonical encoding. Format: see the module docs.
    pub fn encode(&self) -> [u8; CHECKPOINT_LEN] {
        let mut b = [0u8; CHECKPOINT_LEN];
        b[0] = CHECKPOINT_VERSION;
        b[1..33].copy_from_slice(self.group.as_bytes());
        b[33..65].copy_from_slice(self.author.as_bytes());
        b[65..73].copy_from_slice(&self.length.to_le_bytes());
        b[73..105].copy_from_slice(&self.root);
        b[105..113].copy_from_slice(&self.hlc.as_u64().to_le_bytes());
        b
    }

    /// Parses the canonical encoding.
    pub fn decode(b: &[u8]) -> Result<Self, CheckpointError> {
        let b: &[u8; CHECKPOINT_LEN] = b
            .try_into()
            .map_err(|_| CheckpointError::BadLength { len: b.len() })?;
        if b[0] != CHECKPOINT_VERSION {
            return Err(CheckpointError::UnsupportedVersion { found: b[0] });
        }
        let mut group = [0u8; 32];
        group.copy_from_slice(&b[1..33]);
        let mut author = [0u8; 32];
        author.copy_from_slice(&b[33..65]);
        let mut len = [0u8; 8];
        len.copy_from_slice(&b[65..73]);
        let mut root = [0u8; 32];
        root.copy_from_slice(&b[73..105]);
        let mut hlc = [0u8; 8];
        hlc.copy_from_slice(&b[105..113]);
        Ok(Checkpoint {
            group: GroupId(group),
            author: AuthorId(author),
            length: u64::from_le_bytes(len),
            root,
            hlc: Hlc::from_u64(u64::from_le_bytes(hlc)),
        })
    }

    /// Signs with the author's keypair.
    pub fn sign(self, keypair: &XaeroKeypair) -> SignedCheckpoint {
        let signature = keypair
            .sign_with_context(CHECKPOINT_SIGNING_CONTEXT, &self.encode())
            .expect("checkpoint signing context is shorter than 255 bytes");
        SignedCheckpoint {
            checkpoint: self,
            signature,
        }
    }
}

/// A checkpoint with its author's signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedCheckpoint {
    /// The statement.
    pub checkpoint: Checkpoint,
    /// The author's signature over its encoding.
    pub signature: Signature,
}

impl SignedCheckpoint {
    /// Checks that `key` is the author's key and that it signed this checkpoint.
    pub fn verify(&self, key: &XaeroID) -> Result<(), CheckpointError> {
        let author = self.checkpoint.author;
        if key.id().as_bytes() != author.as_bytes() {
            return Err(CheckpointError::BadSignature { author });
        }
        key.verify_with_context(
            CHECKPOINT_SIGNING_CONTEXT,
            &self.checkpoint.encode(),
            &self.signature,
        )
        .map_err(|_| CheckpointError::BadSignature { author })
    }

    /// Encoding: checkpoint, u16 LE signature length, signature.
    pub fn encode(&self) -> Vec<u8> {
        let sig = self.signature.as_bytes();
        let mut out = Vec::with_capacity(CHECKPOINT_LEN + 2 + sig.len());
        out.extend_from_slice(&self.checkpoint.encode());
        // Signature::ENCODED_LEN is far below u16::MAX.
        out.extend_from_slice(&(sig.len() as u16).to_le_bytes());
        out.extend_from_slice(sig);
        out
    }

    /// Parses [`SignedCheckpoint::encode`]'s output (does not verify the signature).
    pub fn decode(b: &[u8]) -> Result<Self, CheckpointError> {
        let bad = || CheckpointError::BadLength { len: b.len() };
        if b.len() < CHECKPOINT_LEN + 2 {
            return Err(bad());
        }
        let checkpoint = Checkpoint::decode(&b[..CHECKPOINT_LEN])?;
        let sig_len = usize::from(u16::from_le_bytes([
            b[CHECKPOINT_LEN],
            b[CHECKPOINT_LEN + 1],
        ]));
        let sig = &b[CHECKPOINT_LEN + 2..];
        if sig_len > MAX_SIGNATURE_LEN || sig.len() != sig_len {
            return Err(bad());
        }
        let signature =
            Signature::from_bytes(sig).map_err(CheckpointError::BadSignatureEncoding)?;
        Ok(SignedCheckpoint {
            checkpoint,
            signature,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::sync::OnceLock;

    fn keypair() -> &'static XaeroKeypair {
        static KP: OnceLock<XaeroKeypair> = OnceLock::new();
        KP.get_or_init(|| XaeroKeypair::generate_from_seed(&[7; 32]))
    }

    fn checkpoint(length: u64, root: [u8; 32]) -> Checkpoint {
        Checkpoint {
            group: GroupId([1; 32]),
            author: AuthorId(*keypair().id().as_bytes()),
            length,
            root,
            hlc: Hlc::new(1_700_000_000_000, 3),
        }
    }

    #[test]
    fn sign_verify_and_reject_tampering() {
        let cp = checkpoint(42, [9; 32]).sign(keypair());
        cp.verify(keypair().public()).unwrap();
        let back = SignedCheckpoint::decode(&cp.encode()).unwrap();
        assert_eq!(back, cp);
        let mut t = cp.clone();
        t.checkpoint.length = 43;
        assert!(matches!(
            t.verify(keypair().public()),
            Err(CheckpointError::BadSignature { .. })
        ));
        let other = XaeroKeypair::generate_from_seed(&[8; 32]);
        assert!(cp.verify(other.public()).is_err());
        let mut bytes = cp.encode();
        bytes.pop();
        assert!(matches!(
            SignedCheckpoint::decode(&bytes),
            Err(CheckpointError::BadLength { .. })
        ));
        let mut bytes = cp.encode();
        bytes[0] = 2;
        assert!(matches!(
            SignedCheckpoint::decode(&bytes),
            Err(CheckpointError::UnsupportedVersion { found: 2 })
        ));
    }

    proptest! {
        #[test]
        fn checkpoint_round_trip(length in any::<u64>(), root in any::<[u8; 32]>()) {
            let cp = checkpoint(length, root);
            let bytes = cp.encode();
            prop_assert_eq!(Checkpoint::decode(&bytes).unwrap(), cp);
        }

        #[test]
        fn decoders_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..1000)) {
            if let Ok(cp) = SignedCheckpoint::decode(&bytes) {
                prop_assert_eq!(cp.encode(), bytes.clone());
            }
            if let Ok(cp) = Checkpoint::decode(&bytes) {
                prop_assert_eq!(&cp.encode()[..], &bytes[..]);
            }
        }

        #[test]
        fn any_flipped_byte_fails_verification(idx in 0usize..CHECKPOINT_LEN, bit in 0u8..8) {
            let cp = checkpoint(5, [3; 32]).sign(keypair());
            let mut bytes = cp.encode();
            bytes[idx] ^= 1 << bit;
            if let Ok(t) = SignedCheckpoint::decode(&bytes) {
                prop_assert!(t.verify(keypair().public()).is_err());
            }
        }
    }
}
