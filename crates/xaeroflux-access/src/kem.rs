//! ML-KEM-768 (FIPS 203) member keys, group epoch keys, and an epoch key sealed to one
//! member.
//!
//! Sealing (per member, per epoch; format also in `docs/FORMAT.md`):
//! 1. `(ct, ss) = ML-KEM-768.Encaps(member's encapsulation key, m)` with 32 fresh
//!    random bytes `m` (`ct` 1088 bytes, `ss` 32 bytes);
//! 2. `kek = BLAKE3-derive_key("xaeroflux/access/seal/v1", ss)`;
//! 3. `wrapped = XChaCha20-Poly1305(kek, nonce = 24 zero bytes, aad, epoch key)`
//!    (48 bytes); the nonce can be fixed because every `kek` encrypts exactly one
//!    message. `aad = group id [32] | epoch u32 | key id [8] | member id [32]`, so a
//!    sealed key cannot be moved to another group, epoch or member.
//!
//! | offset | size | field |
//! | ---: | ---: | --- |
//! | 0 | 32 | member id (the member's XaeroID id) |
//! | 32 | 1088 | ML-KEM-768 ciphertext |
//! | 1120 | 48 | wrapped epoch key (32) + Poly1305 tag (16) |
//!
//! A decapsulation key is stored as its 64-byte FIPS 203 seed (`d ‖ z`).

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use ml_kem::array::Array;
use ml_kem::ml_kem_768::{Ciphertext, DecapsulationKey, EncapsulationKey};
use ml_kem::{Decapsulate, KeyExport};
use xaeroflux_core::GroupId;
use xaeroid::IdHash;
use zeroize::{Zeroize, Zeroizing};

use crate::error::{DecodeError, EncodeError, OpenError};
use crate::read::Reader;

/// Bytes of an ML-KEM-768 encapsulation (public) key.
pub const KEM_PUBLIC_LEN: usize = 1184;
/// Bytes of an ML-KEM-768 ciphertext.
pub const KEM_CIPHERTEXT_LEN: usize = 1088;
/// Bytes of a wrapped epoch key (key + tag).
pub const WRAPPED_LEN: usize = 32 + 16;
/// Bytes of a [`SealedKey`].
pub const SEALED_KEY_LEN: usize = 32 + KEM_CIPHERTEXT_LEN + WRAPPED_LEN;

const SEAL_CONTEXT: &str = "xaeroflux/access/seal/v1";
const KEY_ID_CONTEXT: &str = "xaeroflux/access/key-id/v1";

/// Where randomness comes from: the OS, or a seeded stream in tests and simulations.
pub trait Entropy {
    /// Fills `buf` with random bytes.
    fn fill(&mut self, buf: &mut [u8]) -> Result<(), EncodeError>;
}

/// The operating system's generator (`getrandom`).
#[derive(Debug, Default, Clone, Copy)]
pub struct OsEntropy;

impl Entropy for OsEntropy {
    fn fill(&mut self, buf: &mut [u8]) -> Result<(), EncodeError> {
        getrandom::getrandom(buf).map_err(|_| EncodeError::Random)
    }
}

/// A deterministic stream (BLAKE3 XOF of a seed): for tests and simulations only.
pub struct SeededEntropy(blake3::OutputReader);

impl SeededEntropy {
    /// A stream from `seed`.
    pub fn new(seed: u64) -> Self {
        let mut h = blake3::Hasher::new_derive_key("xaeroflux/access/test-entropy/v1");
        h.update(&seed.to_le_bytes());
        SeededEntropy(h.finalize_xof())
    }
}

impl Entropy for SeededEntropy {
    fn fill(&mut self, buf: &mut [u8]) -> Result<(), EncodeError> {
        self.0.fill(buf);
        Ok(())
    }
}

impl std::fmt::Debug for SeededEntropy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SeededEntropy")
    }
}

/// A member's ML-KEM-768 encapsulation key (public), announced in a membership op.
#[derive(Clone, PartialEq, Eq)]
pub struct KemPublicKey {
    bytes: Box<[u8; KEM_PUBLIC_LEN]>,
    key: EncapsulationKey,
}

impl KemPublicKey {
    /// Parses and checks an encapsulation key (FIPS 203 modulus check).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        let arr: [u8; KEM_PUBLIC_LEN] = bytes.try_into().map_err(|_| DecodeError::Length {
            field: "ML-KEM-768 key",
            len: bytes.len(),
            min: KEM_PUBLIC_LEN,
            max: KEM_PUBLIC_LEN,
        })?;
        let key = EncapsulationKey::new(&Array::from(arr)).map_err(|_| DecodeError::KemKey)?;
        Ok(KemPublicKey {
            bytes: Box::new(arr),
            key,
        })
    }

    /// The encoded key.
    pub fn as_bytes(&self) -> &[u8; KEM_PUBLIC_LEN] {
        &self.bytes
    }
}

impl std::fmt::Debug for KemPublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let h = blake3::hash(&self.bytes[..]);
        write!(f, "KemPublicKey({:02x?})", &h.as_bytes()[..4])
    }
}

/// A member's ML-KEM-768 key pair; the secret part zeroizes on drop and is not printed.
pub struct KemKeypair {
    seed: Zeroizing<[u8; 64]>,
    dk: DecapsulationKey,
    public: KemPublicKey,
}

impl KemKeypair {
    /// A new key pair from 64 random bytes.
    pub fn generate(rng: &mut impl Entropy) -> Result<Self, EncodeError> {
        let mut seed = Zeroizing::new([0u8; 64]);
        rng.fill(&mut seed[..])?;
        Ok(Self::from_seed(&seed))
    }

    /// The key pair of a 64-byte FIPS 203 seed (`d ‖ z`).
    pub fn from_seed(seed: &[u8; 64]) -> Self {
        let dk = DecapsulationKey::from_seed(Array::from(*seed));
        let ek: [u8; KEM_PUBLIC_LEN] = dk.encapsulation_key().to_bytes().into();
        let key = dk.encapsulation_key().clone();
        KemKeypair {
            seed: Zeroizing::new(*seed),
            dk,
            public: KemPublicKey {
                bytes: Box::new(ek),
                key,
            },
        }
    }

    /// The seed, to store (secret).
    pub fn seed(&self) -> &[u8; 64] {
        &self.seed
    }

    /// The public (encapsulation) key.
    pub fn public(&self) -> &KemPublicKey {
        &self.public
    }
}

impl std::fmt::Debug for KemKeypair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KemKeypair({:?}, secret: [redacted])", self.public)
    }
}

/// A group epoch key: 32 secret bytes and the epoch number they belong to.
#[derive(Clone)]
pub struct EpochKey {
    epoch: u32,
    key: Zeroizing<[u8; 32]>,
}

impl EpochKey {
    /// A fresh random key for `epoch`.
    pub fn generate(epoch: u32, rng: &mut impl Entropy) -> Result<Self, EncodeError> {
        let mut key = Zeroizing::new([0u8; 32]);
        rng.fill(&mut key[..])?;
        Ok(EpochKey { epoch, key })
    }

    /// A key from its bytes.
    pub fn from_bytes(epoch: u32, key: [u8; 32]) -> Self {
        EpochKey {
            epoch,
            key: Zeroizing::new(key),
        }
    }

    /// The epoch number.
    pub fn epoch(&self) -> u32 {
        self.epoch
    }

    /// The secret bytes.
    pub fn secret(&self) -> &[u8; 32] {
        &self.key
    }

    /// Public 8-byte commitment to the key (`derive_key("xaeroflux/access/key-id/v1",
    /// key)[..8]`): names the key in envelopes and sealed-key ops.
    pub fn key_id(&self) -> [u8; 8] {
        let h = blake3::derive_key(KEY_ID_CONTEXT, &self.key[..]);
        let mut id = [0u8; 8];
        id.copy_from_slice(&h[..8]);
        id
    }
}

impl std::fmt::Debug for EpochKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "EpochKey(epoch {}, id {:02x?}, [redacted])",
            self.epoch,
            self.key_id()
        )
    }
}

impl PartialEq for EpochKey {
    fn eq(&self, other: &Self) -> bool {
        self.epoch == other.epoch && self.key[..] == other.key[..]
    }
}

/// An epoch key sealed to one member (see the module docs for the bytes).
#[derive(Clone, PartialEq, Eq)]
pub struct SealedKey {
    /// The member it is sealed to.
    pub member: IdHash,
    /// ML-KEM-768 ciphertext.
    pub ciphertext: Box<[u8; KEM_CIPHERTEXT_LEN]>,
    /// The wrapped epoch key and its tag.
    pub wrapped: [u8; WRAPPED_LEN],
}

impl std::fmt::Debug for SealedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SealedKey(to {})", self.member.short())
    }
}

fn seal_aad(group: &GroupId, epoch: u32, key_id: &[u8; 8], member: &IdHash) -> [u8; 76] {
    let mut aad = [0u8; 76];
    aad[..32].copy_from_slice(&group.0);
    aad[32..36].copy_from_slice(&epoch.to_le_bytes());
    aad[36..44].copy_from_slice(key_id);
    aad[44..].copy_from_slice(&member.0);
    aad
}

fn kek(ss: &[u8]) -> XChaCha20Poly1305 {
    let mut k = blake3::derive_key(SEAL_CONTEXT, ss);
    let c = XChaCha20Poly1305::new(&k.into());
    k.zeroize();
    c
}

impl SealedKey {
    /// Seals `key` to `member` holding `to`.
    pub fn seal(
        group: &GroupId,
        key: &EpochKey,
        member: IdHash,
        to: &KemPublicKey,
        rng: &mut impl Entropy,
    ) -> Result<SealedKey, EncodeError> {
        let mut m = Zeroizing::new([0u8; 32]);
        rng.fill(&mut m[..])?;
        let (ct, mut ss) = to.key.encapsulate_deterministic(&Array::from(*m));
        let aad = seal_aad(group, key.epoch, &key.key_id(), &member);
        let wrapped = kek(&ss)
            .encrypt(
                &XNonce::default(),
                Payload {
                    msg: &key.key[..],
                    aad: &aad,
                },
            )
            .map_err(|_| EncodeError::Random)?;
        ss.zeroize();
        let mut w = [0u8; WRAPPED_LEN];
        w.copy_from_slice(&wrapped);
        let ct: [u8; KEM_CIPHERTEXT_LEN] = ct.into();
        Ok(SealedKey {
            member,
            ciphertext: Box::new(ct),
            wrapped: w,
        })
    }

    /// Opens the key of `epoch` / `key_id` with the member's key pair; the result's key id
    /// is checked against `key_id`.
    pub fn open(
        &self,
        group: &GroupId,
        epoch: u32,
        key_id: &[u8; 8],
        kp: &KemKeypair,
    ) -> Result<EpochKey, OpenError> {
        let ct: Ciphertext = Array::from(*self.ciphertext);
        let mut ss = kp.dk.decapsulate(&ct);
        let aad = seal_aad(group, epoch, key_id, &self.member);
        let plain = kek(&ss).decrypt(
            &XNonce::default(),
            Payload {
                msg: &self.wrapped,
                aad: &aad,
            },
        );
        ss.zeroize();
        let mut plain = Zeroizing::new(plain.map_err(|_| OpenError::Auth)?);
        let arr: [u8; 32] = plain[..].try_into().map_err(|_| OpenError::Auth)?;
        plain.zeroize();
        let key = EpochKey::from_bytes(epoch, arr);
        if &key.key_id() != key_id {
            return Err(OpenError::Auth);
        }
        Ok(key)
    }

    /// Format: `member id [32] | ciphertext [1088] | wrapped [48]`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.member.0);
        out.extend_from_slice(&self.ciphertext[..]);
        out.extend_from_slice(&self.wrapped);
    }

    /// The [`SEALED_KEY_LEN`] bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(SEALED_KEY_LEN);
        self.encode_into(&mut out);
        out
    }

    /// Decodes exactly [`SEALED_KEY_LEN`] bytes.
    pub fn decode(bytes: &[u8]) -> Result<SealedKey, DecodeError> {
        let mut r = Reader::new(bytes);
        let s = Self::read(&mut r)?;
        r.finish()?;
        Ok(s)
    }

    pub(crate) fn read(r: &mut Reader<'_>) -> Result<SealedKey, DecodeError> {
        Ok(SealedKey {
            member: IdHash(r.array("sealed key member")?),
            ciphertext: Box::new(r.array("sealed key ciphertext")?),
            wrapped: r.array("sealed key wrap")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn group() -> GroupId {
        GroupId([7; 32])
    }

    #[test]
    fn seal_open_round_trip_and_wrong_member_fails() {
        let mut rng = SeededEntropy::new(1);
        let alice = KemKeypair::generate(&mut rng).unwrap();
        let bob = KemKeypair::generate(&mut rng).unwrap();
        let key = EpochKey::generate(3, &mut rng).unwrap();
        let a = IdHash([1; 32]);
        let s = SealedKey::seal(&group(), &key, a, alice.public(), &mut rng).unwrap();
        let opened = s.open(&group(), 3, &key.key_id(), &alice).unwrap();
        assert_eq!(opened, key);
        // Bob's decapsulation yields another shared secret (implicit rejection).
        assert_eq!(
            s.open(&group(), 3, &key.key_id(), &bob),
            Err(OpenError::Auth)
        );
        // Moved to another epoch or group: refused.
        assert_eq!(
            s.open(&group(), 4, &key.key_id(), &alice),
            Err(OpenError::Auth)
        );
        assert_eq!(
            s.open(&GroupId([8; 32]), 3, &key.key_id(), &alice),
            Err(OpenError::Auth)
        );
        // Relabelled to another member: refused.
        let mut moved = s.clone();
        moved.member = IdHash([2; 32]);
        assert_eq!(
            moved.open(&group(), 3, &key.key_id(), &alice),
            Err(OpenError::Auth)
        );
    }

    #[test]
    fn secrets_are_redacted() {
        let kp = KemKeypair::from_seed(&[9; 64]);
        let key = EpochKey::from_bytes(1, [0xAB; 32]);
        assert!(format!("{kp:?}").contains("redacted"));
        assert!(!format!("{key:?}").contains("ab, ab"));
    }

    #[test]
    fn public_key_round_trip_and_bad_key() {
        let kp = KemKeypair::from_seed(&[5; 64]);
        let pk = KemPublicKey::from_bytes(kp.public().as_bytes()).unwrap();
        assert_eq!(&pk, kp.public());
        // Coefficients >= q (all bits set) fail the FIPS 203 modulus check.
        assert_eq!(
            KemPublicKey::from_bytes(&[0xFF; KEM_PUBLIC_LEN]),
            Err(DecodeError::KemKey)
        );
        assert!(KemPublicKey::from_bytes(&[0; 10]).is_err());
    }

    proptest! {
        #[test]
        fn sealed_key_decode_any_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..1300)) {
            match SealedKey::decode(&bytes) {
                Ok(s) => prop_assert_eq!(s.encode(), bytes),
                Err(_) => prop_assert_ne!(bytes.len(), SEALED_KEY_LEN),
            }
        }
    }
}
