//! XaeroID: post-quantum identities for XaeroFlux.
//!
//! An identity is an FN-DSA-512 (Falcon-512, <https://falcon-sign.info/>) key
//! pair, implemented by the pure-Rust `fn-dsa` crate pinned to 0.4.0. Every
//! public key and signature carries a leading algorithm/version byte
//! ([`ALG_FN_DSA_512`]) so the scheme can be replaced later.
//!
//! | item | bytes |
//! |------|-------|
//! | [`XaeroID`] (public key) | 898 = 1 + 897 |
//! | [`Signature`] | 667 = 1 + 666 |
//! | [`IdHash`] | 32 = BLAKE3(`"xaeroid/v1"` ‖ alg ‖ raw public key) |
//! | DID string | 62 = `did:xaero:` + 52 base32 characters |
//! | key file | 942 plaintext, 1010 encrypted (see [`keyfile`]) |
//!
//! [`XaeroKeypair::prove_identity`] is a signature-based proof of possession
//! under a dedicated context, not a zero-knowledge proof.
//!
//! ```
//! use xaeroid::{IdHash, XaeroID, XaeroKeypair};
//!
//! let kp = XaeroKeypair::generate();
//! let sig = kp.sign(b"hello");
//! kp.public().verify(b"hello", &sig)?;
//! assert!(kp.public().verify(b"hellO", &sig).is_err());
//!
//! // Public keys and signatures travel as bytes.
//! let pk = XaeroID::from_bytes(kp.public().as_bytes())?;
//! let sig = xaeroid::Signature::from_bytes(sig.as_bytes())?;
//! pk.verify(b"hello", &sig)?;
//!
//! // The id is shown as a DID.
//! let did = pk.to_did();
//! assert!(did.starts_with("did:xaero:"));
//! assert_eq!(IdHash::from_did(&did)?, kp.id());
//! # Ok::<(), xaeroid::Error>(())
//! ```

mod did;
mod error;
mod key;
pub mod keyfile;
mod signature;

/// Algorithm/version byte of FN-DSA-512 (fn-dsa 0.4.0 encodings).
pub const ALG_FN_DSA_512: u8 = 0x01;

pub use did::{DID_BASE32_LEN, DID_LEN, DID_PREFIX, IdHash};
pub use error::{DecodeError, DidError, Error, KeyFileError, SignError, VerifyError};
pub use key::{MAX_CONTEXT_LEN, PROVE_IDENTITY_CONTEXT, XaeroID, XaeroKeypair, XaeroSecret};
pub use signature::Signature;
