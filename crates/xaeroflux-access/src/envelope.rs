//! Encrypted payloads: what an event of an encrypted group carries instead of its
//! plaintext.
//!
//! Format (version 2, written by this crate; also in `docs/FORMAT.md`), little-endian:
//!
//! | offset | size | field |
//! | ---: | ---: | --- |
//! | 0 | 1 | version = 2 |
//! | 1 | 4 | epoch u32 |
//! | 5 | 8 | key id (see [`crate::EpochKey::key_id`]) |
//! | 13 | 16 | salt (random, one per [`PayloadSealer`]) |
//! | 29 | 8 | counter u64 (per sealer, from 0, never repeated) |
//! | 37 | n + 16 | AES-256-GCM ciphertext and tag (`n >= 0`) |
//!
//! The message key is `BLAKE3-derive_key("xaeroflux/access/payload-key/v2", epoch key ‖
//! salt)` and the 96-bit GCM nonce is `counter (8 bytes LE) ‖ 0u32`. A sealer draws its
//! 128-bit salt once from the OS generator, so every sealer (each writer, each restart,
//! each epoch) has its own key, and within it the counter makes every nonce unique; a
//! sealer refuses to seal past [`SEALER_LIMIT`] messages (then a new sealer, with a new
//! salt, takes over). Nothing random is drawn per event, and the AES key schedule is
//! done once per sealer.
//!
//! Associated data: `"xaeroflux/access/payload/v2"` ‖ group id [32] ‖ event type u32 ‖
//! bytes 0..37, so an envelope cannot be moved to another group or event type, nor its
//! epoch, key id, salt or counter changed. The header of the event (group, author, seq,
//! HLC, type, payload length) stays in clear for sync and ordering; the overhead is
//! [`ENVELOPE_OVERHEAD`] = 53 bytes.
//!
//! Version 1 (XChaCha20-Poly1305 with a random 24-byte nonce at offset 13, key = the
//! epoch key, AAD tag `"xaeroflux/access/payload/v1"`) is still opened; it is no longer
//! written (it drew OS randomness per event and ran at a third of v2's speed).

use std::sync::atomic::{AtomicU64, Ordering};

use aes_gcm::Aes256Gcm;
use aes_gcm::aead::{AeadInPlace, KeyInit};
use chacha20poly1305::aead::{Aead, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use xaeroflux_core::GroupId;
use xaeroflux_core::event::MAX_PAYLOAD;
use zeroize::Zeroizing;

use crate::error::{DecodeError, EncodeError, OpenError};
use crate::kem::{Entropy, EpochKey};
use crate::read::Reader;

/// Version byte of the envelope format written by [`PayloadSealer`].
pub const ENVELOPE_VERSION: u8 = 2;
/// Header bytes before the ciphertext.
pub const ENVELOPE_HEADER_LEN: usize = 37;
/// Bytes an envelope adds to its plaintext (header + tag).
pub const ENVELOPE_OVERHEAD: usize = ENVELOPE_HEADER_LEN + 16;
/// Largest plaintext that still fits one event payload.
pub const MAX_PLAINTEXT: usize = MAX_PAYLOAD - ENVELOPE_OVERHEAD;
/// Messages one sealer seals at most (2^32, the usual bound for one GCM key).
pub const SEALER_LIMIT: u64 = 1 << 32;

const AAD_TAG_V1: &[u8] = b"xaeroflux/access/payload/v1";
const AAD_TAG_V2: &[u8] = b"xaeroflux/access/payload/v2";
const KEY_CONTEXT_V2: &str = "xaeroflux/access/payload-key/v2";
const AAD_MAX: usize = 27 + 36 + ENVELOPE_HEADER_LEN;

/// A decoded envelope (borrowing its ciphertext).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Envelope<'a> {
    /// Format version (1 or 2).
    pub version: u8,
    /// The epoch whose key sealed it.
    pub epoch: u32,
    /// That key's id.
    pub key_id: [u8; 8],
    /// Version 2: salt ‖ counter; version 1: the XChaCha20 nonce.
    pub nonce: [u8; 24],
    /// Ciphertext and tag (at least 16 bytes).
    pub ciphertext: &'a [u8],
}

impl<'a> Envelope<'a> {
    /// Parses an envelope; the ciphertext is checked only for its minimum length.
    pub fn decode(bytes: &'a [u8]) -> Result<Envelope<'a>, DecodeError> {
        let mut r = Reader::new(bytes);
        let version = r.u8("envelope version")?;
        if version != 1 && version != 2 {
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
            version,
            epoch,
            key_id,
            nonce,
            ciphertext,
        })
    }

    /// Encodes the envelope.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(ENVELOPE_HEADER_LEN + self.ciphertext.len());
        out.extend_from_slice(&header(self.version, self.epoch, &self.key_id, &self.nonce));
        out.extend_from_slice(self.ciphertext);
        out
    }
}

fn header(version: u8, epoch: u32, key_id: &[u8; 8], nonce: &[u8; 24]) -> [u8; 37] {
    let mut h = [0u8; ENVELOPE_HEADER_LEN];
    h[0] = version;
    h[1..5].copy_from_slice(&epoch.to_le_bytes());
    h[5..13].copy_from_slice(key_id);
    h[13..37].copy_from_slice(nonce);
    h
}

/// The AAD on the stack: tag ‖ group ‖ type ‖ header; returns the buffer and its length.
fn aad(tag: &[u8], group: &GroupId, event_type: u32, header: &[u8]) -> ([u8; AAD_MAX], usize) {
    let mut a = [0u8; AAD_MAX];
    let mut n = 0;
    for part in [tag, &group.0[..], &event_type.to_le_bytes()[..], header] {
        a[n..n + part.len()].copy_from_slice(part);
        n += part.len();
    }
    (a, n)
}

fn message_cipher(key: &EpochKey, salt: &[u8]) -> Aes256Gcm {
    let mut h = blake3::Hasher::new_derive_key(KEY_CONTEXT_V2);
    h.update(key.secret());
    h.update(salt);
    let k = Zeroizing::new(*h.finalize().as_bytes());
    Aes256Gcm::new((&*k).into())
}

fn gcm_nonce(counter: u64) -> [u8; 12] {
    let mut n = [0u8; 12];
    n[..8].copy_from_slice(&counter.to_le_bytes());
    n
}

/// Seals payloads of one group under one epoch key (envelope version 2): the AES key
/// schedule is done once, nonces come from a counter, nothing is drawn per event.
/// Shared by reference between threads (the counter is atomic).
pub struct PayloadSealer {
    group: GroupId,
    epoch: u32,
    key_id: [u8; 8],
    salt: [u8; 16],
    counter: AtomicU64,
    cipher: Aes256Gcm,
}

impl std::fmt::Debug for PayloadSealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PayloadSealer")
            .field("group", &self.group)
            .field("epoch", &self.epoch)
            .field("sealed", &self.counter.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl PayloadSealer {
    /// A sealer for `group` under `key`, with a fresh salt from `rng`.
    pub fn new(
        group: GroupId,
        key: &EpochKey,
        rng: &mut impl Entropy,
    ) -> Result<Self, EncodeError> {
        let mut salt = [0u8; 16];
        rng.fill(&mut salt)?;
        Ok(PayloadSealer {
            group,
            epoch: key.epoch(),
            key_id: key.key_id(),
            salt,
            counter: AtomicU64::new(0),
            cipher: message_cipher(key, &salt),
        })
    }

    /// The epoch it seals under.
    pub fn epoch(&self) -> u32 {
        self.epoch
    }

    /// The id of the key it seals with.
    pub fn key_id(&self) -> [u8; 8] {
        self.key_id
    }

    /// True once it has sealed [`SEALER_LIMIT`] messages (make a new one).
    pub fn exhausted(&self) -> bool {
        self.counter.load(Ordering::Relaxed) >= SEALER_LIMIT
    }

    /// Writes the envelope of `plaintext` into `out` (cleared first; its capacity is
    /// reused): the plaintext is copied once and encrypted in place.
    pub fn seal_into(
        &self,
        event_type: u32,
        plaintext: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), EncodeError> {
        if plaintext.len() > MAX_PLAINTEXT {
            return Err(EncodeError::TooLarge {
                len: plaintext.len(),
                max: MAX_PLAINTEXT,
            });
        }
        let counter = self.counter.fetch_add(1, Ordering::Relaxed);
        if counter >= SEALER_LIMIT {
            return Err(EncodeError::Exhausted {
                limit: SEALER_LIMIT,
            });
        }
        let mut nonce = [0u8; 24];
        nonce[..16].copy_from_slice(&self.salt);
        nonce[16..].copy_from_slice(&counter.to_le_bytes());
        let head = header(ENVELOPE_VERSION, self.epoch, &self.key_id, &nonce);
        let (a, n) = aad(AAD_TAG_V2, &self.group, event_type, &head);
        out.clear();
        out.reserve(ENVELOPE_OVERHEAD + plaintext.len());
        out.extend_from_slice(&head);
        out.extend_from_slice(plaintext);
        let tag = self
            .cipher
            .encrypt_in_place_detached(
                (&gcm_nonce(counter)).into(),
                &a[..n],
                &mut out[ENVELOPE_HEADER_LEN..],
            )
            .map_err(|_| EncodeError::TooLarge {
                len: plaintext.len(),
                max: MAX_PLAINTEXT,
            })?;
        out.extend_from_slice(&tag);
        Ok(())
    }

    /// The envelope of `plaintext` in a new buffer.
    pub fn seal(&self, event_type: u32, plaintext: &[u8]) -> Result<Vec<u8>, EncodeError> {
        let mut out = Vec::new();
        self.seal_into(event_type, plaintext, &mut out)?;
        Ok(out)
    }
}

/// Encrypts `plaintext` for an event of `event_type` in `group` under `key` with a
/// one-off [`PayloadSealer`] (a fresh salt per call; for many payloads keep a sealer).
pub fn seal_payload(
    group: &GroupId,
    event_type: u32,
    key: &EpochKey,
    plaintext: &[u8],
    rng: &mut impl Entropy,
) -> Result<Vec<u8>, EncodeError> {
    PayloadSealer::new(*group, key, rng)?.seal(event_type, plaintext)
}

/// Decrypts an envelope (version 1 or 2) with the matching key from `keys` (looked up
/// by epoch and key id). A missing key is [`OpenError::NoKey`]; a wrong key or changed
/// bytes [`OpenError::Auth`].
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
    let head = &bytes[..ENVELOPE_HEADER_LEN];
    if env.version == 1 {
        let (a, n) = aad(AAD_TAG_V1, group, event_type, head);
        let cipher = XChaCha20Poly1305::new(key.secret().into());
        return cipher
            .decrypt(
                XNonce::from_slice(&env.nonce),
                Payload {
                    msg: env.ciphertext,
                    aad: &a[..n],
                },
            )
            .map(Zeroizing::new)
            .map_err(|_| OpenError::Auth);
    }
    let (a, n) = aad(AAD_TAG_V2, group, event_type, head);
    let counter = u64::from_le_bytes(env.nonce[16..].try_into().map_err(|_| OpenError::Auth)?);
    let cipher = message_cipher(key, &env.nonce[..16]);
    let split = env.ciphertext.len() - 16;
    let mut out = Zeroizing::new(env.ciphertext[..split].to_vec());
    cipher
        .decrypt_in_place_detached(
            (&gcm_nonce(counter)).into(),
            &a[..n],
            &mut out[..],
            env.ciphertext[split..].into(),
        )
        .map_err(|_| OpenError::Auth)?;
    Ok(out)
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

    #[test]
    fn sealer_counts_nonces_and_opens_in_any_order() {
        let mut rng = SeededEntropy::new(8);
        let key = EpochKey::generate(4, &mut rng).unwrap();
        let a = PayloadSealer::new(G, &key, &mut rng).unwrap();
        let b = PayloadSealer::new(G, &key, &mut rng).unwrap();
        let mut buf = Vec::new();
        let mut seen = std::collections::HashSet::new();
        let mut sealed = Vec::new();
        for i in 0u32..20 {
            let s = if i % 2 == 0 { &a } else { &b };
            s.seal_into(300, &i.to_le_bytes(), &mut buf).unwrap();
            let env = Envelope::decode(&buf).unwrap();
            assert_eq!(env.version, 2);
            // Salt and counter: never the same pair twice.
            assert!(seen.insert(env.nonce), "nonce reused at {i}");
            sealed.push(buf.clone());
        }
        // Two sealers of one key draw different salts.
        assert_ne!(sealed[0][13..29], sealed[1][13..29]);
        for (i, s) in sealed.iter().enumerate().rev() {
            let out = open_payload(&G, 300, s, |_, _| Some(&key)).unwrap();
            assert_eq!(&out[..], &(i as u32).to_le_bytes());
        }
        // Moving the counter or the salt breaks the tag.
        let mut t = sealed[3].clone();
        t[29] ^= 1;
        assert_eq!(
            open_payload(&G, 300, &t, |_, _| Some(&key)),
            Err(OpenError::Auth)
        );
    }

    #[test]
    fn sealer_stops_at_its_limit() {
        let mut rng = SeededEntropy::new(9);
        let key = EpochKey::generate(1, &mut rng).unwrap();
        let s = PayloadSealer::new(G, &key, &mut rng).unwrap();
        s.counter.store(SEALER_LIMIT - 1, Ordering::Relaxed);
        assert!(!s.exhausted());
        let last = s.seal(300, b"x").unwrap();
        assert_eq!(
            &open_payload(&G, 300, &last, |_, _| Some(&key)).unwrap()[..],
            b"x"
        );
        assert!(s.exhausted());
        assert_eq!(
            s.seal(300, b"y"),
            Err(EncodeError::Exhausted {
                limit: SEALER_LIMIT
            })
        );
    }

    #[test]
    fn version_1_envelopes_still_open() {
        let key = EpochKey::from_bytes(3, [6; 32]);
        let nonce = [2u8; 24];
        let head = header(1, 3, &key.key_id(), &nonce);
        let (a, n) = aad(AAD_TAG_V1, &G, 300, &head);
        let ct = XChaCha20Poly1305::new(key.secret().into())
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: b"old",
                    aad: &a[..n],
                },
            )
            .unwrap();
        let mut bytes = head.to_vec();
        bytes.extend_from_slice(&ct);
        assert_eq!(
            &open_payload(&G, 300, &bytes, |_, _| Some(&key)).unwrap()[..],
            b"old"
        );
        bytes[0] = 2; // the same bytes read as v2: refused
        assert_eq!(
            open_payload(&G, 300, &bytes, |_, _| Some(&key)),
            Err(OpenError::Auth)
        );
        bytes[0] = 3;
        assert!(matches!(
            open_payload(&G, 300, &bytes, |_, _| Some(&key)),
            Err(OpenError::Decode(_))
        ));
    }

    proptest! {
        #[test]
        fn envelope_round_trip(v2: bool, epoch: u32, key_id: [u8; 8], nonce: [u8; 24],
                               ct in proptest::collection::vec(any::<u8>(), 16..300)) {
            let version = if v2 { 2 } else { 1 };
            let e = Envelope { version, epoch, key_id, nonce, ciphertext: &ct };
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
