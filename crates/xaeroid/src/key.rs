//! Public identities ([`XaeroID`]), secret keys ([`XaeroSecret`]) and key pairs
//! ([`XaeroKeypair`]) over FN-DSA-512 (Falcon-512, <https://falcon-sign.info/>),
//! implemented by the pure-Rust `fn-dsa` crate (pinned to 0.4.0, whose
//! encodings define our bytes).
//!
//! Public key format (898 bytes): `alg (1 byte, 0x01 = FN-DSA-512)` ||
//! `fn-dsa verifying key (897 bytes: header 0x09 then 512 coefficients mod q
//! in 14 bits each)`.
//!
//! Messages are signed in fn-dsa's raw mode (`HASH_ID_RAW`, no pre-hash), with
//! the empty context (`DOMAIN_NONE`) for [`XaeroKeypair::sign`] or the caller's
//! context for [`XaeroKeypair::sign_with_context`], so a plain fn-dsa 0.4.0
//! verifier accepts our signatures and vice versa.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};

use fn_dsa::{
    CryptoRng, DomainContext, FN_DSA_LOGN_512, HASH_ID_RAW, KeyPairGenerator, KeyPairGenerator512,
    RngCore, RngError, SigningKey, SigningKey512, VerifyingKey, VerifyingKey512, sign_key_size,
    vrfy_key_size,
};
use rand_core::OsRng;
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::ALG_FN_DSA_512;
use crate::did::IdHash;
use crate::error::{DecodeError, SignError, VerifyError};
use crate::signature::{RAW_SIG_LEN, Signature};

/// Length of a raw fn-dsa FN-DSA-512 verifying key.
pub(crate) const RAW_PK_LEN: usize = vrfy_key_size(FN_DSA_LOGN_512);
/// Length of a raw fn-dsa FN-DSA-512 signing key.
pub(crate) const RAW_SK_LEN: usize = sign_key_size(FN_DSA_LOGN_512);
/// Maximum length of an fn-dsa domain-separation context.
pub const MAX_CONTEXT_LEN: usize = 255;
/// Context of [`XaeroKeypair::prove_identity`] signatures.
pub const PROVE_IDENTITY_CONTEXT: &[u8] = b"xaeroid/v1/prove-identity";

/// A public identity: an FN-DSA-512 public key and its cached [`IdHash`].
///
/// Cheap to clone (reference counted). Equality and hashing use the encoded
/// key bytes.
#[derive(Clone)]
pub struct XaeroID {
    inner: Arc<PublicInner>,
}

struct PublicInner {
    encoded: [u8; XaeroID::ENCODED_LEN],
    id: IdHash,
    /// Decoded once: decoding converts the key to NTT form, which would
    /// otherwise be repeated on every verification.
    vk: VerifyingKey512,
}

impl XaeroID {
    /// Encoded length: 1 algorithm byte + 897 fn-dsa bytes = 898.
    pub const ENCODED_LEN: usize = 1 + RAW_PK_LEN;

    /// Generate a fresh key pair from the OS RNG (same as [`XaeroKeypair::generate`]).
    #[allow(clippy::new_ret_no_self)] // Name kept from the original XaeroID design.
    pub fn new() -> XaeroKeypair {
        XaeroKeypair::generate()
    }

    /// Decode an encoded public key (see the module docs).
    ///
    /// Checks the length, the algorithm byte, and that fn-dsa accepts the key.
    pub fn from_bytes(bytes: &[u8]) -> Result<XaeroID, DecodeError> {
        let encoded: [u8; Self::ENCODED_LEN] =
            bytes.try_into().map_err(|_| DecodeError::InvalidLength {
                len: bytes.len(),
                expected: Self::ENCODED_LEN,
            })?;
        if encoded[0] != ALG_FN_DSA_512 {
            return Err(DecodeError::UnsupportedAlgorithm { alg: encoded[0] });
        }
        let vk = VerifyingKey512::decode(&encoded[1..]).ok_or(DecodeError::InvalidPublicKey)?;
        Ok(Self {
            inner: Arc::new(PublicInner {
                id: IdHash::of_encoded_key(&encoded),
                encoded,
                vk,
            }),
        })
    }

    /// Build from a raw fn-dsa verifying key (897 bytes).
    pub(crate) fn from_raw(raw: &[u8]) -> Result<XaeroID, DecodeError> {
        let mut encoded = [0u8; Self::ENCODED_LEN];
        if raw.len() != RAW_PK_LEN {
            return Err(DecodeError::InvalidLength {
                len: raw.len() + 1,
                expected: Self::ENCODED_LEN,
            });
        }
        encoded[0] = ALG_FN_DSA_512;
        encoded[1..].copy_from_slice(raw);
        Self::from_bytes(&encoded)
    }

    /// The identity hash.
    pub fn id(&self) -> IdHash {
        self.inner.id
    }

    /// The encoded form (898 bytes).
    pub fn as_bytes(&self) -> &[u8] {
        &self.inner.encoded
    }

    /// The encoded form as an owned vector.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.inner.encoded.to_vec()
    }

    /// The algorithm byte ([`ALG_FN_DSA_512`]).
    pub fn algorithm(&self) -> u8 {
        self.inner.encoded[0]
    }

    /// The raw fn-dsa verifying key (897 bytes), without the algorithm byte.
    pub fn raw_public_key(&self) -> &[u8] {
        &self.inner.encoded[1..]
    }

    /// `did:xaero:...` of the id.
    pub fn to_did(&self) -> String {
        self.inner.id.to_did()
    }

    /// Short id for logs (8 hex characters).
    pub fn short(&self) -> String {
        self.inner.id.short()
    }

    /// Verify a signature made by [`XaeroKeypair::sign`] (empty context).
    pub fn verify(&self, msg: &[u8], sig: &Signature) -> Result<(), VerifyError> {
        self.verify_with_context(&[], msg, sig)
    }

    /// Verify a signature made by [`XaeroKeypair::sign_with_context`].
    pub fn verify_with_context(
        &self,
        ctx: &[u8],
        msg: &[u8],
        sig: &Signature,
    ) -> Result<(), VerifyError> {
        if ctx.len() > MAX_CONTEXT_LEN {
            return Err(VerifyError::ContextTooLong {
                len: ctx.len(),
                max: MAX_CONTEXT_LEN,
            });
        }
        if sig.algorithm() != self.algorithm() {
            return Err(VerifyError::AlgorithmMismatch {
                key: self.algorithm(),
                signature: sig.algorithm(),
            });
        }
        if self
            .inner
            .vk
            .verify(sig.raw(), &DomainContext(ctx), &HASH_ID_RAW, msg)
        {
            Ok(())
        } else {
            Err(VerifyError::InvalidSignature)
        }
    }

    /// Check a proof made by [`XaeroKeypair::prove_identity`] for `challenge`.
    pub fn verify_identity(&self, challenge: &[u8], proof: &Signature) -> Result<(), VerifyError> {
        self.verify_with_context(PROVE_IDENTITY_CONTEXT, challenge, proof)
    }
}

impl PartialEq for XaeroID {
    fn eq(&self, other: &Self) -> bool {
        self.inner.encoded == other.inner.encoded
    }
}

impl Eq for XaeroID {}

impl Hash for XaeroID {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.inner.encoded.hash(state);
    }
}

impl fmt::Debug for XaeroID {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "XaeroID({})", self.short())
    }
}

impl AsRef<[u8]> for XaeroID {
    fn as_ref(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl TryFrom<&[u8]> for XaeroID {
    type Error = DecodeError;

    fn try_from(bytes: &[u8]) -> Result<Self, Self::Error> {
        Self::from_bytes(bytes)
    }
}

/// An FN-DSA-512 signing key. Zeroized on drop, redacted in `Debug`, not
/// `Clone`, and deliberately without serde support: it only leaves memory
/// through [`crate::keyfile`].
///
/// The key is defined by a 32-byte seed: fn-dsa's key generation is
/// deterministic given its RNG output, and we feed it the BLAKE3 XOF of the
/// seed (see [`XaeroKeypair::generate_from_seed`]). Only the seed is stored;
/// re-deriving the key on load means a corrupted file can never yield a
/// malformed signing key (fn-dsa can spend seconds failing to sign with one).
pub struct XaeroSecret {
    seed: Box<[u8; SEED_LEN]>,
    /// Decoded key with its precomputed FFT basis, reused across signatures.
    /// `SigningKey512` zeroizes itself on drop.
    signer: Mutex<Box<SigningKey512>>,
    /// fn-dsa signing key encoding (1345 bytes), for concurrent signers.
    encoded: Box<[u8; RAW_SK_LEN]>,
}

/// Length of the secret seed.
pub(crate) const SEED_LEN: usize = 32;

impl XaeroSecret {
    /// The 32-byte seed (what key files store).
    pub(crate) fn seed(&self) -> &[u8; SEED_LEN] {
        &self.seed
    }

    /// Sign `msg` in raw mode under the context `ctx` (at most 255 bytes).
    fn sign_raw(&self, ctx: &[u8], msg: &[u8]) -> Result<Signature, SignError> {
        if ctx.len() > MAX_CONTEXT_LEN {
            return Err(SignError::ContextTooLong {
                len: ctx.len(),
                max: MAX_CONTEXT_LEN,
            });
        }
        let ctx = DomainContext(ctx);
        let mut sig = [0u8; RAW_SIG_LEN];
        // fn-dsa needs `&mut` for its scratch buffers. The uncontended path reuses
        // the cached key; a concurrent signer decodes a private copy instead of
        // waiting, so signing never serializes threads.
        let ok = match self.signer.try_lock() {
            Ok(mut key) => sign_retrying(&mut key, &ctx, msg, &mut sig),
            Err(_) => match SigningKey512::decode(&self.encoded[..]) {
                Some(mut key) => sign_retrying(&mut key, &ctx, msg, &mut sig),
                None => false,
            },
        };
        // Keys only come from fn-dsa's own keygen, and fn-dsa fails to sign with
        // a valid key only after 27 rejected samples in a row (probability
        // < 2^-256 per attempt).
        assert!(ok, "fn-dsa signing failed with a freshly generated key");
        Ok(Signature::from_raw(&sig))
    }
}

fn sign_retrying(
    key: &mut SigningKey512,
    ctx: &DomainContext<'_>,
    msg: &[u8],
    sig: &mut [u8; RAW_SIG_LEN],
) -> bool {
    (0..2).any(|_| {
        key.sign(&mut OsRng, ctx, &HASH_ID_RAW, msg, &mut sig[..])
            .is_some()
    })
}

impl Drop for XaeroSecret {
    fn drop(&mut self) {
        self.seed.zeroize();
        self.encoded.zeroize();
    }
}

impl ZeroizeOnDrop for XaeroSecret {}

impl fmt::Debug for XaeroSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("XaeroSecret(<redacted>)")
    }
}

/// A public identity with its signing key.
pub struct XaeroKeypair {
    /// The public identity.
    pub public: XaeroID,
    /// The signing key.
    pub secret: XaeroSecret,
}

impl XaeroKeypair {
    /// Generate a fresh key pair from a random seed drawn from the OS RNG
    /// (≈ 3 ms in release builds).
    pub fn generate() -> Self {
        let mut seed = [0u8; SEED_LEN];
        OsRng.fill_bytes(&mut seed);
        let kp = Self::generate_from_seed(&seed);
        seed.zeroize();
        kp
    }

    /// Deterministic key pair: the same seed always gives the same keys.
    ///
    /// Format: fn-dsa 0.4.0 `KeyPairGenerator512::keygen` reading its
    /// randomness from the BLAKE3 XOF of
    /// `derive_key("xaeroid/v1 generate_from_seed", seed)`. The seed is the
    /// whole secret: use it directly only for tests and fixtures.
    pub fn generate_from_seed(seed: &[u8; 32]) -> Self {
        let mut rng = SeedRng(
            blake3::Hasher::new_derive_key("xaeroid/v1 generate_from_seed")
                .update(seed)
                .finalize_xof(),
        );
        let mut kg = KeyPairGenerator512::default();
        let mut encoded = Box::new([0u8; RAW_SK_LEN]);
        let mut vk = [0u8; RAW_PK_LEN];
        kg.keygen(FN_DSA_LOGN_512, &mut rng, &mut encoded[..], &mut vk);
        let signer = SigningKey512::decode(&encoded[..]);
        let public = XaeroID::from_raw(&vk);
        match (signer, public) {
            (Some(signer), Ok(public)) => Self {
                public,
                secret: XaeroSecret {
                    seed: Box::new(*seed),
                    signer: Mutex::new(Box::new(signer)),
                    encoded,
                },
            },
            _ => unreachable!("fn-dsa rejected a key pair it just generated"),
        }
    }

    /// The public identity.
    pub fn public(&self) -> &XaeroID {
        &self.public
    }

    /// The identity hash.
    pub fn id(&self) -> IdHash {
        self.public.id()
    }

    /// Sign `msg` (fn-dsa `DOMAIN_NONE`, `HASH_ID_RAW`): a plain fn-dsa
    /// verifier with the raw public key accepts it.
    pub fn sign(&self, msg: &[u8]) -> Signature {
        match self.secret.sign_raw(&[], msg) {
            Ok(sig) => sig,
            Err(SignError::ContextTooLong { .. }) => unreachable!("empty context"),
        }
    }

    /// Sign `msg` under the domain-separation context `ctx` (fn-dsa
    /// `DomainContext(ctx)`), at most [`MAX_CONTEXT_LEN`] bytes.
    pub fn sign_with_context(&self, ctx: &[u8], msg: &[u8]) -> Result<Signature, SignError> {
        self.secret.sign_raw(ctx, msg)
    }

    /// Prove possession of the secret key by signing `challenge` under the
    /// context [`PROVE_IDENTITY_CONTEXT`] (`"xaeroid/v1/prove-identity"`).
    ///
    /// This is a signature-based proof of possession, **not** a
    /// zero-knowledge proof: the proof is a regular signature that anyone can
    /// verify against the public key and that links the challenge to this
    /// identity. The verifier must pick a fresh, unpredictable challenge to
    /// prevent replay. The distinct context means a proof can never be
    /// replayed as a [`XaeroKeypair::sign`] signature over the same bytes,
    /// nor the reverse.
    pub fn prove_identity(&self, challenge: &[u8]) -> Signature {
        match self.secret.sign_raw(PROVE_IDENTITY_CONTEXT, challenge) {
            Ok(sig) => sig,
            Err(SignError::ContextTooLong { .. }) => unreachable!("constant context fits"),
        }
    }
}

impl fmt::Debug for XaeroKeypair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("XaeroKeypair")
            .field("public", &self.public)
            .field("secret", &self.secret)
            .finish()
    }
}

/// Deterministic RNG: the BLAKE3 XOF of a seed. Only used for keygen from seed.
struct SeedRng(blake3::OutputReader);

impl RngCore for SeedRng {
    fn next_u32(&mut self) -> u32 {
        let mut b = [0u8; 4];
        self.0.fill(&mut b);
        u32::from_le_bytes(b)
    }

    fn next_u64(&mut self) -> u64 {
        let mut b = [0u8; 8];
        self.0.fill(&mut b);
        u64::from_le_bytes(b)
    }

    fn fill_bytes(&mut self, dest: &mut [u8]) {
        self.0.fill(dest);
    }

    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), RngError> {
        self.0.fill(dest);
        Ok(())
    }
}

impl CryptoRng for SeedRng {}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(RAW_PK_LEN, 897);
        assert_eq!(RAW_SK_LEN, 1345);
        assert_eq!(XaeroID::ENCODED_LEN, 898);
    }

    #[test]
    fn seeded_is_deterministic() {
        let a = XaeroKeypair::generate_from_seed(&[1; 32]);
        let b = XaeroKeypair::generate_from_seed(&[1; 32]);
        let c = XaeroKeypair::generate_from_seed(&[2; 32]);
        assert_eq!(a.public, b.public);
        assert_eq!(a.secret.seed(), b.secret.seed());
        assert_ne!(a.public, c.public);
        assert_eq!(a.public.raw_public_key()[0], 0x09);
    }

    #[test]
    fn id_is_domain_separated_hash() {
        let kp = XaeroKeypair::generate_from_seed(&[3; 32]);
        let mut h = blake3::Hasher::new();
        h.update(b"xaeroid/v1");
        h.update(&[ALG_FN_DSA_512]);
        h.update(kp.public.raw_public_key());
        assert_eq!(kp.id().0, *h.finalize().as_bytes());
    }

    #[test]
    fn debug_is_redacted_and_short() {
        let kp = XaeroKeypair::generate_from_seed(&[4; 32]);
        assert_eq!(format!("{:?}", kp.secret), "XaeroSecret(<redacted>)");
        let dbg = format!("{:?}", kp.public);
        assert_eq!(dbg, format!("XaeroID({})", kp.id().short()));
        assert!(format!("{kp:?}").contains("<redacted>"));
    }

    #[test]
    fn contexts_are_separated() {
        let kp = XaeroKeypair::generate_from_seed(&[5; 32]);
        let pk = kp.public();
        let sig = kp.sign(b"m");
        pk.verify(b"m", &sig).unwrap();
        assert_eq!(
            pk.verify_with_context(b"c", b"m", &sig),
            Err(VerifyError::InvalidSignature)
        );
        let csig = kp.sign_with_context(b"c", b"m").unwrap();
        pk.verify_with_context(b"c", b"m", &csig).unwrap();
        assert!(pk.verify(b"m", &csig).is_err());
        let proof = kp.prove_identity(b"challenge");
        pk.verify_identity(b"challenge", &proof).unwrap();
        assert!(pk.verify(b"challenge", &proof).is_err());
        assert!(pk.verify_identity(b"challenge", &sig).is_err());
        assert!(pk.verify_identity(b"other", &proof).is_err());
        let long = [0u8; 256];
        assert_eq!(
            kp.sign_with_context(&long, b"m").unwrap_err(),
            SignError::ContextTooLong { len: 256, max: 255 }
        );
        assert_eq!(
            pk.verify_with_context(&long, b"m", &sig),
            Err(VerifyError::ContextTooLong { len: 256, max: 255 })
        );
        kp.sign_with_context(&long[..255], b"m").unwrap();
    }

    #[test]
    fn concurrent_signing() {
        let kp = XaeroKeypair::generate_from_seed(&[6; 32]);
        std::thread::scope(|s| {
            for t in 0..4u8 {
                let kp = &kp;
                s.spawn(move || {
                    for i in 0..20u8 {
                        let m = [t, i];
                        let sig = kp.sign(&m);
                        kp.public.verify(&m, &sig).unwrap();
                    }
                });
            }
        });
    }
}
