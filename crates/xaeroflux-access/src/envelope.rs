//! Encrypted payloads: what an event of an encrypted group carries instead of its
//! plaintext.
//!
//! Format (version 1; also in `docs/FORMAT.md`), little-endian:
//!
//! | offset | size | field |
//! | ---: | ---: | --- |
//! | 0 | 1 | version = 1 |
//! | 1 | 4 | epoch u32 |
//! | 5 | 8 | key id (see [`crate::EpochKey::key_id`]) |
//! | 13 | 24 | XChaCha20 nonce (random) |
//! | 37 | n + 16 | XChaCha20-Poly1305 ciphertext and tag (`n >= 0`) |
//!
//! Associated data: `"xaeroflux/access/payload/v1"` ‖ group id [32] ‖ event type u32 ‖
//! bytes 0..37, so an envelope cannot be moved to another group or event type, nor its
//! epoch or key id changed. The header of the event (group, author, seq, HLC, type,
//! payload length) stays in clear for sync and ordering; the overhead is
//! [`ENVELOPE_OVERHEAD`] = 53 bytes.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use xaeroflux_core::GroupId;
use xaeroflux_core::event::MAX_PAYLOAD;
use zeroize::Zeroizing;

use crate::error::{DecodeError, EncodeError, OpenError};
use crate::kem::{Entropy, EpochKey};
use crate::read::Reader;

/// Version byte of the envelope format.
pub const ENVELOPE_VERSION: u8 = 1;
/// Header bytes before the ciphertext.
pub const ENVELOPE_HEADER_LEN: usize = 37;
/// Bytes an envelope adds to its plaintext (header + tag).
pub const ENVELOPE_OVERHEAD: usize = ENVELOPE_HEADER_LEN + 16;
/// Largest plaintext that still fits one event payload.
pub const MAX_PLAINTEXT: usize = MAX_PAYLOAD - ENVELOPE_OVERHEAD;

const AAD_TAG: &[u8] = b"xaeroflux/access/payload/v1";

/// A decoded envelope (borrowing its ciphertext).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Envelope<'a> {
    /// The epoch whose key sealed it.
    pub epoch: u32,
    /// That key's id.
    pub key_id: [u8; 8],
    /// The nonce.
    pub nonce: [u8; 24],
    /// Ciphertext and tag (at least 16 bytes).
    pub ciphertext: &'a [u8],
}

impl<'a> Envelope<'a> {
    /// Parses an envelope; the ciphertext is checked only for its minimum length.
    pub fn decode(bytes: &'a [u8]) -> Result<Envelope<'a>, DecodeError> {
        let mut r = Reader::new(bytes);
        let version = r.u8("envelope version")?;
        if version != ENVELOPE_VERSION {
            return Err(DecodeError::Version {
                what: "envelope",
                version,
            });
        }
        let epoch = r.u32("envelope epoch")?;
        let key_id = r.array("envelope key id")?;
        let nonce = r.array("envelope nonce")?;
        let left = r.left();
        if !(16..=MAX_PAYLOAD).contains(&left) {
            return Err(DecodeError::Length {
                field: "envelope ciphertext",
                len: left,
                min: 16,
                max: MAX_PAYLOAD,
            });
        }
        let ciphertext = r.take(left, "envelope ciphertext")?;
        Ok(Envelope {
            epoch,
            key_id,
            nonce,
            ciphertext,
        })
    }

    /// Encodes the envelope.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(ENVELOPE_HEADER_LEN + self.ciphertext.len());
        self.header_into(&mut out);
        out.extend_from_slice(self.ciphertext);
        out
    }

    fn header_into(&self, out: &mut Vec<u8>) {
        out.push(ENVELOPE_VERSION);
        out.extend_from_slice(&self.epoch.to_le_bytes());
        out.extend_from_slice(&self.key_id);
        out.extend_from_slice(&self.nonce);
    }
}

fn aad(group: &GroupId, event_type: u32, header: &[u8]) -> Vec<u8> {
    let mut a = Vec::with_capacity(AAD_TAG.len() + 36 + header.len());
    a.extend_from_slice(AAD_TAG);
    a.extend_from_slice(&group.0);
    a.extend_from_slice(&event_type.to_le_bytes());
    a.extend_from_slice(header);
    a
}

/// Encrypts `plaintext` for an event of `event_type` in `group` under `key`.
pub fn seal_payload(
    group: &GroupId,
    event_type: u32,
    key: &EpochKey,
    plaintext: &[u8],
    rng: &mut impl Entropy,
) -> Result<Vec<u8>, EncodeError> {
    if plaintext.len() > MAX_PLAINTEXT {
        return Err(EncodeError::TooLarge {
            len: plaintext.len(),
            max: MAX_PLAINTEXT,
        });
    }
    let mut nonce = [0u8; 24];
    rng.fill(&mut nonce)?;
    let env = Envelope {
        epoch: key.epoch(),
        key_id: key.key_id(),
        nonce,
        ciphertext: &[],
    };
    let mut out = Vec::with_capacity(ENVELOPE_OVERHEAD + plaintext.len());
    env.header_into(&mut out);
    let cipher = XChaCha20Poly1305::new(key.secret().into());
    let ct = cipher
        .encrypt(
            XNonce::from_slice(&nonce),
            Payload {
                msg: plaintext,
                aad: &aad(group, event_type, &out),
            },
        )
        .map_err(|_| EncodeError::TooLarge {
            len: plaintext.len(),
            max: MAX_PLAINTEXT,
        })?;
    out.extend_from_slice(&ct);
    Ok(out)
}

/// Decrypts an envelope with the matching key from `keys` (looked up by epoch and key
/// id). A missing key is [`OpenError::NoKey`]; a wrong key or changed bytes
/// [`OpenError::Auth`].
pub fn open_payload<'k>(
    group: &GroupId,
    event_type: u32,
    bytes: &[u8],
    keys: impl Fn(u32, &[u8; 8]) -> Option<&'k EpochKey>,
) -> Result<Zeroizing<Vec<u8>>, OpenError> {
    let env = Envelope::decode(bytes)?;
    let key = keys(env.epoch, &env.key_id).ok_or(OpenError::NoKey {
        epoch: env.epoch,
        key_id: env.key_id,
    })?;
    let cipher = XChaCha20Poly1305::new(key.secret().into());
    cipher
        .decrypt(
            XNonce::from_slice(&env.nonce),
            Payload {
                msg: env.ciphertext,
                aad: &aad(group, event_type, &bytes[..ENVELOPE_HEADER_LEN]),
            },
        )
        .map(Zeroizing::new)
        .map_err(|_| OpenError::Auth)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kem::SeededEntropy;
    use proptest::prelude::*;

    const G: GroupId = GroupId([3; 32]);

    #[test]
    fn round_trip_and_tamper() {
        let mut rng = SeededEntropy::new(5);
        let key = EpochKey::generate(2, &mut rng).unwrap();
        let other = EpochKey::generate(2, &mut rng).unwrap();
        let sealed = seal_payload(&G, 300, &key, b"hello team", &mut rng).unwrap();
        assert_eq!(sealed.len(), 10 + ENVELOPE_OVERHEAD);
        let find = |e: u32, id: &[u8; 8]| (e == 2 && *id == key.key_id()).then_some(&key);
        assert_eq!(
            &open_payload(&G, 300, &sealed, find).unwrap()[..],
            b"hello team"
        );
        // Another event type or group: refused.
        assert_eq!(open_payload(&G, 301, &sealed, find), Err(OpenError::Auth));
        assert_eq!(
            open_payload(&GroupId([4; 32]), 300, &sealed, find),
            Err(OpenError::Auth)
        );
        // No key of that epoch (e.g. a removed member).
        assert!(matches!(
            open_payload(&G, 300, &sealed, |_, _| None),
            Err(OpenError::NoKey { epoch: 2, .. })
        ));
        // A wrong key under the right id: refused.
        assert_eq!(
            open_payload(&G, 300, &sealed, |_, _| Some(&other)),
            Err(OpenError::Auth)
        );
        // Any flipped bit: refused.
        for i in 0..sealed.len() {
            let mut t = sealed.clone();
            t[i] ^= 1;
            assert!(open_payload(&G, 300, &t, find).is_err(), "bit at {i}");
        }
        let big = vec![0u8; MAX_PLAINTEXT + 1];
        assert!(seal_payload(&G, 300, &key, &big, &mut rng).is_err());
        let max = vec![0u8; MAX_PLAINTEXT];
        assert_eq!(
            seal_payload(&G, 300, &key, &max, &mut rng).unwrap().len(),
            MAX_PAYLOAD
        );
    }

    proptest! {
        #[test]
        fn envelope_round_trip(epoch: u32, key_id: [u8; 8], nonce: [u8; 24],
                               ct in proptest::collection::vec(any::<u8>(), 16..300)) {
            let e = Envelope { epoch, key_id, nonce, ciphertext: &ct };
            let bytes = e.encode();
            prop_assert_eq!(Envelope::decode(&bytes).unwrap(), e);
            // Every strict prefix shorter than header + tag is an error.
            for cut in 0..ENVELOPE_OVERHEAD {
                prop_assert!(Envelope::decode(&bytes[..cut]).is_err());
            }
        }

        #[test]
        fn envelope_any_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            if let Ok(e) = Envelope::decode(&bytes) {
                prop_assert_eq!(e.encode(), bytes);
            }
        }

        #[test]
        fn payload_round_trip(plain in proptest::collection::vec(any::<u8>(), 0..2000), seed: u64) {
            let mut rng = SeededEntropy::new(seed);
            let key = EpochKey::generate(1, &mut rng).unwrap();
            let sealed = seal_payload(&G, 256, &key, &plain, &mut rng).unwrap();
            let out = open_payload(&G, 256, &sealed, |_, _| Some(&key)).unwrap();
            prop_assert_eq!(&out[..], &plain[..]);
        }
    }
}
