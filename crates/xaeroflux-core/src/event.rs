//! The event model and its canonical encoding.
//!
//! An event is a small, immutable record: an application payload plus a fixed header
//! saying who wrote it (`author`), where (`group`), at which position of the author's log
//! (`seq`), when (`hlc`), and what kind of event it is (`event_type`). Its id is the
//! BLAKE3 hash of the canonical encoding below, so an event is content-addressed: any
//! change of a header field or a payload byte changes the id.
//!
//! Format (version 1, all integers little-endian, [`HEADER_LEN`] = 92 bytes + payload):
//!
//! | offset | size | field                                                   |
//! |-------:|-----:|---------------------------------------------------------|
//! |      0 |    1 | format version, `1`                                     |
//! |      1 |    1 | flags, `0` (reserved; any other value is rejected)      |
//! |      2 |    2 | reserved, `0`                                           |
//! |      4 |    4 | `event_type` (u32; `0..=255` reserved for the system)   |
//! |      8 |   32 | `group` id                                              |
//! |     40 |   32 | `author` id (BLAKE3 id of the writer's XaeroID)         |
//! |     72 |    8 | `seq` (u64, 0-based position in the author's group log) |
//! |     80 |    8 | `hlc` (u64, 48-bit ms + 16-bit counter)                 |
//! |     88 |    4 | payload length `n` (u32, 1..=[`MAX_PAYLOAD`])           |
//! |     92 |    n | payload                                                 |
//!
//! The event id is `BLAKE3(encoding)`: 32 bytes.

use std::fmt;

use thiserror::Error;

use crate::blob_ref::{Attachment, BLOB_REF_EVENT_TYPE};
use crate::group::GroupId;
use crate::hlc::Hlc;

/// Version byte of the current event encoding.
pub const EVENT_FORMAT_VERSION: u8 = 1;
/// Length of the fixed event header in bytes.
pub const HEADER_LEN: usize = 92;
/// Largest inline payload (the XL size class): 16 KiB.
pub const MAX_PAYLOAD: usize = 16 * 1024;
/// Event types `0..=MAX_RESERVED_TYPE` are reserved for system events.
pub const MAX_RESERVED_TYPE: u32 = 255;

/// Whether `event_type` is in the range reserved for system events.
pub const fn is_reserved_type(event_type: u32) -> bool {
    event_type <= MAX_RESERVED_TYPE
}

/// Who owns an event type: the registry of reserved types (`DESIGN.md`, mirrored in
/// `docs/FORMAT.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TypeClass {
    /// `0..=15`: engine and system events (written by the node itself, never synced).
    Engine,
    /// `16..=31`: membership and keys (access control).
    Membership,
    /// `32..=63`: records, relations and documents (state views).
    Records,
    /// `64..=79`: blob references.
    Blobs,
    /// `80..=255`: reserved, not assigned to any feature yet.
    Unassigned,
    /// `256..`: application-defined.
    Application,
}

/// The class of `event_type` in the registry of reserved types.
pub const fn type_class(event_type: u32) -> TypeClass {
    match event_type {
        0..=15 => TypeClass::Engine,
        16..=31 => TypeClass::Membership,
        32..=63 => TypeClass::Records,
        64..=79 => TypeClass::Blobs,
        80..=MAX_RESERVED_TYPE => TypeClass::Unassigned,
        _ => TypeClass::Application,
    }
}

/// Whether an event of `event_type` may be stored when it comes from a peer or from a
/// feature's local write (the store's `write_reserved_to`): one rule for both, derived
/// from [`type_class`] and what is built. Application types, the
/// records/relations/documents range (state views) and [`MEMBERSHIP_OP_TYPE`] (access
/// control's signed membership ops) are accepted; engine types (the node's own, never
/// synced), the rest of the membership range, blob and unassigned types (no feature
/// decodes and checks them yet) are refused. A feature that starts accepting its range
/// changes this function and its test. [`BLOB_REF_EVENT_TYPE`] (attachments) is
/// accepted too, when its payload passes [`reserved_payload_ok`].
pub const fn accepted_from_network(event_type: u32) -> bool {
    event_type == MEMBERSHIP_OP_TYPE
        || event_type == BLOB_REF_EVENT_TYPE
        || matches!(
            type_class(event_type),
            TypeClass::Application | TypeClass::Records
        )
}

/// Event type of a group's signed membership ops (crate `xaeroflux-access`).
pub const MEMBERSHIP_OP_TYPE: u32 = 16;

/// Whether the payload of an accepted reserved type decodes as its feature's format.
/// Only attachments ([`BLOB_REF_EVENT_TYPE`]) are checked here, with
/// [`Attachment::decode`]; every other type passes (membership ops are checked by
/// access control, records by the state views). The store's local reserved writes and
/// the sync protocol's batch check both call it, so an attachment that does not
/// decode is stored by neither.
pub fn reserved_payload_ok(event_type: u32, payload: &[u8]) -> bool {
    event_type != BLOB_REF_EVENT_TYPE || Attachment::decode(payload).is_ok()
}

/// A 32-byte content address: the BLAKE3 hash of an event's canonical encoding.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct EventId(pub [u8; 32]);

/// A 32-byte author id: the BLAKE3 id of the author's XaeroID (see `xaeroid::IdHash`).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct AuthorId(pub [u8; 32]);

macro_rules! hex_id {
    ($t:ty, $name:literal) => {
        impl $t {
            /// The raw 32 bytes.
            pub const fn as_bytes(&self) -> &[u8; 32] {
                &self.0
            }
            /// First 8 hex digits, for logs.
            pub fn short(&self) -> String {
                $crate::event::hex(&self.0[..4])
            }
            /// Parses 64 hex digits.
            pub fn from_hex(s: &str) -> Result<Self, HexError> {
                $crate::event::parse_hex32(s).map(Self)
            }
        }
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&$crate::event::hex(&self.0))
            }
        }
        impl fmt::Debug for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!($name, "({})"), self.short())
            }
        }
    };
}
pub(crate) use hex_id;

hex_id!(EventId, "EventId");
hex_id!(AuthorId, "AuthorId");

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 0xf)] as char);
    }
    s
}

/// A hex string that is not 64 hex digits.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("expected 64 hex digits, got {len} characters")]
pub struct HexError {
    /// Length of the rejected input.
    pub len: usize,
}

pub(crate) fn parse_hex32(s: &str) -> Result<[u8; 32], HexError> {
    let err = HexError { len: s.len() };
    let bytes = s.as_bytes();
    if bytes.len() != 64 {
        return Err(err);
    }
    let nibble = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    };
    let mut out = [0u8; 32];
    for (i, pair) in bytes.chunks_exact(2).enumerate() {
        let (Some(hi), Some(lo)) = (nibble(pair[0]), nibble(pair[1])) else {
            return Err(err);
        };
        out[i] = hi << 4 | lo;
    }
    Ok(out)
}

/// The fixed header of an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventHeader {
    /// Application-defined type; `0..=255` are system events.
    pub event_type: u32,
    /// The group the event belongs to.
    pub group: GroupId,
    /// The author's id.
    pub author: AuthorId,
    /// Position in the author's log for this group (0-based).
    pub seq: u64,
    /// Hybrid logical clock timestamp.
    pub hlc: Hlc,
}

impl EventHeader {
    /// Writes the canonical header for a payload of `payload_len` bytes into `out`.
    ///
    /// Format: see the module docs (92 bytes).
    pub fn encode(&self, payload_len: u32, out: &mut [u8; HEADER_LEN]) {
        out[0] = EVENT_FORMAT_VERSION;
        out[1] = 0;
        out[2..4].copy_from_slice(&[0, 0]);
        out[4..8].copy_from_slice(&self.event_type.to_le_bytes());
        out[8..40].copy_from_slice(self.group.as_bytes());
        out[40..72].copy_from_slice(self.author.as_bytes());
        out[72..80].copy_from_slice(&self.seq.to_le_bytes());
        out[80..88].copy_from_slice(&self.hlc.as_u64().to_le_bytes());
        out[88..92].copy_from_slice(&payload_len.to_le_bytes());
    }

    /// The id of the event with this header and `payload`, without building the encoding.
    pub fn event_id(&self, payload: &[u8]) -> EventId {
        let mut head = [0u8; HEADER_LEN];
        // Payload length is bounded by MAX_PAYLOAD at every entry point; a longer slice
        // would still hash deterministically, with its length saturated.
        self.encode(u32::try_from(payload.len()).unwrap_or(u32::MAX), &mut head);
        let mut h = blake3::Hasher::new();
        h.update(&head);
        h.update(payload);
        EventId(*h.finalize().as_bytes())
    }
}

/// Why bytes are not a valid event encoding.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum EventDecodeError {
    /// Fewer bytes than a header.
    #[error("event truncated: {len} bytes, header needs {HEADER_LEN}")]
    TruncatedHeader {
        /// Bytes available.
        len: usize,
    },
    /// Unknown format version.
    #[error("unsupported event format version {found} (supported: {EVENT_FORMAT_VERSION})")]
    UnsupportedVersion {
        /// Version byte found.
        found: u8,
    },
    /// Reserved bytes are not zero.
    #[error("reserved header bytes are not zero")]
    ReservedBits,
    /// Payload length out of range.
    #[error("payload length {len} outside 1..={MAX_PAYLOAD}")]
    BadPayloadLength {
        /// Declared length.
        len: u64,
    },
    /// Declared payload length does not match the bytes present.
    #[error("payload length mismatch: header says {declared}, {actual} bytes present")]
    LengthMismatch {
        /// Length in the header.
        declared: usize,
        /// Bytes after the header.
        actual: usize,
    },
}

/// A decoded event borrowing its payload from the encoded bytes (zero copy).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventRef<'a> {
    /// The header.
    pub header: EventHeader,
    /// The payload bytes.
    pub payload: &'a [u8],
}

impl<'a> EventRef<'a> {
    /// Parses a canonical encoding. Never panics; rejects any non-canonical input.
    pub fn decode(bytes: &'a [u8]) -> Result<Self, EventDecodeError> {
        let (head, payload) = bytes
            .split_first_chunk::<HEADER_LEN>()
            .ok_or(EventDecodeError::TruncatedHeader { len: bytes.len() })?;
        if head[0] != EVENT_FORMAT_VERSION {
            return Err(EventDecodeError::UnsupportedVersion { found: head[0] });
        }
        if head[1..4] != [0, 0, 0] {
            return Err(EventDecodeError::ReservedBits);
        }
        let len = u32::from_le_bytes(arr(&head[88..92])) as usize;
        if len == 0 || len > MAX_PAYLOAD {
            return Err(EventDecodeError::BadPayloadLength { len: len as u64 });
        }
        if payload.len() != len {
            return Err(EventDecodeError::LengthMismatch {
                declared: len,
                actual: payload.len(),
            });
        }
        let header = EventHeader {
            event_type: u32::from_le_bytes(arr(&head[4..8])),
            group: GroupId(arr(&head[8..40])),
            author: AuthorId(arr(&head[40..72])),
            seq: u64::from_le_bytes(arr(&head[72..80])),
            hlc: Hlc::from_u64(u64::from_le_bytes(arr(&head[80..88]))),
        };
        Ok(EventRef { header, payload })
    }

    /// The event id (BLAKE3 of the encoding).
    pub fn id(&self) -> EventId {
        self.header.event_id(self.payload)
    }

    /// Copies into an owned [`Event`].
    pub fn to_owned(&self) -> Event {
        Event {
            header: self.header,
            payload: self.payload.to_vec(),
        }
    }
}

/// Copies a slice whose length the caller has already fixed into an array.
fn arr<const N: usize>(s: &[u8]) -> [u8; N] {
    let mut a = [0u8; N];
    a.copy_from_slice(s);
    a
}

/// An owned event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// The header.
    pub header: EventHeader,
    /// The payload bytes.
    pub payload: Vec<u8>,
}

impl Event {
    /// The canonical encoding (header followed by payload).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER_LEN + self.payload.len());
        encode_into(&self.header, &self.payload, &mut out);
        out
    }

    /// The event id (BLAKE3 of the encoding).
    pub fn id(&self) -> EventId {
        self.header.event_id(&self.payload)
    }

    /// Borrows as an [`EventRef`].
    pub fn as_ref(&self) -> EventRef<'_> {
        EventRef {
            header: self.header,
            payload: &self.payload,
        }
    }
}

/// Appends the canonical encoding of `header` + `payload` to `out`.
///
/// The caller guarantees `payload.len() <= MAX_PAYLOAD`.
pub fn encode_into(header: &EventHeader, payload: &[u8], out: &mut Vec<u8>) {
    let mut head = [0u8; HEADER_LEN];
    header.encode(u32::try_from(payload.len()).unwrap_or(u32::MAX), &mut head);
    out.extend_from_slice(&head);
    out.extend_from_slice(payload);
}

#[cfg(test)]
mod tests {

    #[test]
    fn attachments_are_checked_by_their_decoder() {
        use crate::blob_ref::{Attachment, BlobHash, BlobRef};
        let blob = BlobRef {
            hash: BlobHash([3; 32]),
            size: 5,
        };
        let good = Attachment::new(blob, "a.txt").unwrap().encode().unwrap();
        assert!(super::reserved_payload_ok(64, &good));
        assert!(!super::reserved_payload_ok(64, b"not an attachment"));
        assert!(!super::reserved_payload_ok(64, &good[..good.len() - 1]));
        // Other types are not this function's business.
        assert!(super::reserved_payload_ok(32, b"anything"));
        assert!(super::reserved_payload_ok(1000, b"anything"));
    }

    #[test]
    fn type_registry_matches_the_design() {
        use super::{TypeClass as C, accepted_from_network as net, type_class as class};
        let bounds = [
            (0, C::Engine),
            (15, C::Engine),
            (16, C::Membership),
            (31, C::Membership),
            (32, C::Records),
            (63, C::Records),
            (64, C::Blobs),
            (79, C::Blobs),
            (80, C::Unassigned),
            (255, C::Unassigned),
            (256, C::Application),
            (u32::MAX, C::Application),
        ];
        for (t, c) in bounds {
            assert_eq!(class(t), c, "type {t}");
            assert_eq!(super::is_reserved_type(t), c != C::Application, "type {t}");
        }
        let accepted: Vec<u32> = (0..=300).filter(|t| net(*t)).collect();
        let expected = [16].into_iter().chain(32..=64).chain(256..=300);
        assert_eq!(accepted, expected.collect::<Vec<_>>());
    }
    use super::*;
    use proptest::prelude::*;

    fn header(seq: u64) -> EventHeader {
        EventHeader {
            event_type: 1000,
            group: GroupId([7; 32]),
            author: AuthorId([9; 32]),
            seq,
            hlc: Hlc::from_u64(42 << 16 | 3),
        }
    }

    #[test]
    fn layout_is_as_documented() {
        let e = Event {
            header: header(5),
            payload: b"hi".to_vec(),
        };
        let b = e.encode();
        assert_eq!(b.len(), HEADER_LEN + 2);
        assert_eq!(b[0], 1);
        assert_eq!(&b[4..8], &1000u32.to_le_bytes());
        assert_eq!(&b[8..40], &[7; 32]);
        assert_eq!(&b[40..72], &[9; 32]);
        assert_eq!(&b[72..80], &5u64.to_le_bytes());
        assert_eq!(&b[88..92], &2u32.to_le_bytes());
        assert_eq!(&b[92..], b"hi");
        assert_eq!(e.id().0, *blake3::hash(&b).as_bytes());
    }

    #[test]
    fn rejects_bad_input() {
        let good = Event {
            header: header(0),
            payload: vec![1; 10],
        }
        .encode();
        assert!(matches!(
            EventRef::decode(&good[..50]),
            Err(EventDecodeError::TruncatedHeader { len: 50 })
        ));
        let mut v = good.clone();
        v[0] = 2;
        assert!(matches!(
            EventRef::decode(&v),
            Err(EventDecodeError::UnsupportedVersion { found: 2 })
        ));
        let mut v = good.clone();
        v[2] = 1;
        assert_eq!(EventRef::decode(&v), Err(EventDecodeError::ReservedBits));
        let v = &good[..good.len() - 1];
        assert!(matches!(
            EventRef::decode(v),
            Err(EventDecodeError::LengthMismatch { .. })
        ));
        let mut v = good.clone();
        v[88..92].copy_from_slice(&0u32.to_le_bytes());
        assert!(matches!(
            EventRef::decode(&v),
            Err(EventDecodeError::BadPayloadLength { len: 0 })
        ));
    }

    #[test]
    fn hex_round_trip_and_errors() {
        let id = EventId([0xab; 32]);
        assert_eq!(EventId::from_hex(&id.to_string()), Ok(id));
        assert_eq!(id.short(), "abababab");
        assert!(EventId::from_hex("zz").is_err());
        assert!(EventId::from_hex(&"g".repeat(64)).is_err());
    }

    proptest! {
        #[test]
        fn round_trip(t in any::<u32>(), g in any::<[u8; 32]>(), a in any::<[u8; 32]>(),
                      seq in any::<u64>(), hlc in any::<u64>(),
                      payload in proptest::collection::vec(any::<u8>(), 1..2048)) {
            let e = Event { header: EventHeader { event_type: t, group: GroupId(g),
                author: AuthorId(a), seq, hlc: Hlc::from_u64(hlc) }, payload };
            let bytes = e.encode();
            prop_assert_eq!(bytes.len(), HEADER_LEN + e.payload.len());
            let back = EventRef::decode(&bytes).unwrap();
            prop_assert_eq!(back.to_owned(), e.clone());
            prop_assert_eq!(back.id(), e.id());
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            if let Ok(e) = EventRef::decode(&bytes) {
                // Whatever decodes must re-encode to exactly the same bytes (canonical).
                prop_assert_eq!(e.to_owned().encode(), bytes);
            }
        }

        #[test]
        fn any_flipped_byte_changes_id_or_fails(idx in 0usize..(HEADER_LEN + 16), bit in 0u8..8) {
            let e = Event { header: header(3), payload: vec![5; 16] };
            let mut bytes = e.encode();
            bytes[idx] ^= 1 << bit;
            if let Ok(d) = EventRef::decode(&bytes) {
                prop_assert_ne!(d.id(), e.id());
            }
        }
    }
}
