//! `BlobRef`: how an event names a blob, and the attachment payload that carries one.
//!
//! A blob is named by the BLAKE3 root of its content as iroh-blobs computes it (the bao
//! tree over 1 KiB chunks, which for a whole blob equals plain `blake3::hash`) and its
//! size. The size is a claim of the event's author: the fetcher refuses to receive more
//! than it, and the hash proves every byte (see `xaeroflux_blobs::Blobs::fetch`).
//!
//! The codec lives here, below the store and the sync protocol, because both check the
//! payload of every event of type [`BLOB_REF_EVENT_TYPE`] with [`Attachment::decode`]
//! before storing it ([`crate::event::reserved_payload_ok`]).
//!
//! Format of a [`BlobRef`] (40 bytes, fixed; embeddable in any payload):
//!
//! | offset | size | field                         |
//! |-------:|-----:|-------------------------------|
//! |      0 |   32 | BLAKE3 root hash of the blob  |
//! |     32 |    8 | size in bytes (u64, LE)       |
//!
//! Format of an [`Attachment`], the payload of an event of type
//! [`BLOB_REF_EVENT_TYPE`] (47 to 302 bytes, all integers little-endian):
//!
//! | offset | size     | field                                                   |
//! |-------:|---------:|---------------------------------------------------------|
//! |      0 |        4 | magic `XFBR`                                            |
//! |      4 |        1 | version, [`ATTACHMENT_VERSION`] (1)                     |
//! |      5 |        1 | flags: must be 0 (bit 0 is reserved for "encrypted")    |
//! |      6 |       40 | [`BlobRef`]                                             |
//! |     46 |        1 | `name_len` (0..=255)                                    |
//! |     47 | name_len | file name, UTF-8, no `/`, `\\` or NUL; may be empty     |
//!
//! The payload must be consumed exactly: trailing bytes are an error. Decoding never
//! allocates more than `name_len` (at most 255) bytes.

use std::fmt;
use std::str::FromStr;

use thiserror::Error;

/// Event type of an attachment event (first of the blob-reference range 64..=79).
pub const BLOB_REF_EVENT_TYPE: u32 = 64;
/// Encoded length of a [`BlobRef`].
pub const BLOB_REF_LEN: usize = 40;
/// Magic bytes at the start of an [`Attachment`] payload.
pub const ATTACHMENT_MAGIC: [u8; 4] = *b"XFBR";
/// Version byte of the [`Attachment`] layout.
pub const ATTACHMENT_VERSION: u8 = 1;
/// Bytes of an attachment before its name.
pub const ATTACHMENT_HEADER_LEN: usize = 47;
/// Longest attachment name, in bytes.
pub const MAX_NAME_LEN: usize = 255;

/// The 32-byte BLAKE3 root hash that names a blob.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BlobHash(pub [u8; 32]);

impl BlobHash {
    /// The raw bytes.
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
    /// The first 10 hex digits, for logs.
    pub fn fmt_short(&self) -> String {
        let mut s = self.to_string();
        s.truncate(10);
        s
    }
}

impl fmt::Display for BlobHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&data_encoding::HEXLOWER.encode(&self.0))
    }
}

impl fmt::Debug for BlobHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BlobHash({})", self.fmt_short())
    }
}

impl FromStr for BlobHash {
    type Err = DecodeError;
    /// Parses 64 hex digits (either case).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.len() != 64 {
            return Err(DecodeError::BadHashText { len: s.len() });
        }
        let mut out = [0u8; 32];
        data_encoding::HEXLOWER_PERMISSIVE
            .decode_mut(s.as_bytes(), &mut out)
            .map_err(|_| DecodeError::BadHashText { len: s.len() })?;
        Ok(Self(out))
    }
}

/// A reference to a blob: its hash and size.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct BlobRef {
    /// BLAKE3 root hash of the content.
    pub hash: BlobHash,
    /// Size of the content in bytes.
    pub size: u64,
}

impl BlobRef {
    /// Encodes the 40-byte form.
    ///
    /// Format: hash (32) | size (u64 LE, 8).
    pub fn to_bytes(&self) -> [u8; BLOB_REF_LEN] {
        let mut out = [0u8; BLOB_REF_LEN];
        out[..32].copy_from_slice(&self.hash.0);
        out[32..].copy_from_slice(&self.size.to_le_bytes());
        out
    }

    /// Decodes exactly [`BLOB_REF_LEN`] bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        let arr: &[u8; BLOB_REF_LEN] = bytes.try_into().map_err(|_| DecodeError::Length {
            len: bytes.len(),
            expected: BLOB_REF_LEN,
        })?;
        let mut hash = [0u8; 32];
        hash.copy_from_slice(&arr[..32]);
        let mut size = [0u8; 8];
        size.copy_from_slice(&arr[32..]);
        Ok(Self {
            hash: BlobHash(hash),
            size: u64::from_le_bytes(size),
        })
    }
}

/// An event payload attaching one blob, with an optional file name.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Attachment {
    /// The blob.
    pub blob: BlobRef,
    /// File name shown to users (no path separators); may be empty.
    pub name: String,
}

impl Attachment {
    /// An attachment, checking the name.
    pub fn new(blob: BlobRef, name: impl Into<String>) -> Result<Self, DecodeError> {
        let name = name.into();
        check_name(name.as_bytes())?;
        Ok(Self { blob, name })
    }

    /// Encodes the payload of a [`BLOB_REF_EVENT_TYPE`] event.
    ///
    /// Format: `XFBR` | version 1 | flags 0 | BlobRef (40) | name_len (u8) | name.
    pub fn encode(&self) -> Result<Vec<u8>, DecodeError> {
        check_name(self.name.as_bytes())?;
        let mut out = Vec::with_capacity(ATTACHMENT_HEADER_LEN + self.name.len());
        out.extend_from_slice(&ATTACHMENT_MAGIC);
        out.push(ATTACHMENT_VERSION);
        out.push(0);
        out.extend_from_slice(&self.blob.to_bytes());
        // check_name bounds the length to MAX_NAME_LEN = 255.
        out.push(self.name.len() as u8);
        out.extend_from_slice(self.name.as_bytes());
        Ok(out)
    }

    /// Decodes an attachment payload; any other input is an error.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        if bytes.len() < ATTACHMENT_HEADER_LEN {
            return Err(DecodeError::Truncated {
                len: bytes.len(),
                need: ATTACHMENT_HEADER_LEN,
            });
        }
        if bytes[..4] != ATTACHMENT_MAGIC {
            return Err(DecodeError::BadMagic);
        }
        if bytes[4] != ATTACHMENT_VERSION {
            return Err(DecodeError::UnknownVersion { version: bytes[4] });
        }
        if bytes[5] != 0 {
            return Err(DecodeError::UnknownFlags { flags: bytes[5] });
        }
        let blob = BlobRef::from_bytes(&bytes[6..46])?;
        let name_len = usize::from(bytes[46]);
        let need = ATTACHMENT_HEADER_LEN + name_len;
        if bytes.len() != need {
            return Err(DecodeError::Length {
                len: bytes.len(),
                expected: need,
            });
        }
        let name_bytes = &bytes[ATTACHMENT_HEADER_LEN..];
        check_name(name_bytes)?;
        let name = std::str::from_utf8(name_bytes)
            .map_err(|_| DecodeError::BadName)?
            .to_owned();
        Ok(Self { blob, name })
    }
}

fn check_name(name: &[u8]) -> Result<(), DecodeError> {
    if name.len() > MAX_NAME_LEN {
        return Err(DecodeError::NameTooLong {
            len: name.len(),
            max: MAX_NAME_LEN,
        });
    }
    if name.iter().any(|&b| b == b'/' || b == b'\\' || b == 0) || std::str::from_utf8(name).is_err()
    {
        return Err(DecodeError::BadName);
    }
    Ok(())
}

/// Bytes that are not a valid [`BlobRef`], [`Attachment`] or hash text.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DecodeError {
    /// Shorter than the fixed header.
    #[error("truncated: {len} bytes, need at least {need}")]
    Truncated {
        /// Bytes given.
        len: usize,
        /// Bytes needed.
        need: usize,
    },
    /// Not exactly the length the layout requires.
    #[error("wrong length: {len} bytes, expected {expected}")]
    Length {
        /// Bytes given.
        len: usize,
        /// Bytes expected.
        expected: usize,
    },
    /// The payload does not start with `XFBR`.
    #[error("not an attachment payload (bad magic)")]
    BadMagic,
    /// A version this build does not know.
    #[error("unknown attachment version {version}")]
    UnknownVersion {
        /// The version byte.
        version: u8,
    },
    /// Flag bits this build does not know (e.g. an encrypted attachment).
    #[error("unknown attachment flags {flags:#04x}")]
    UnknownFlags {
        /// The flags byte.
        flags: u8,
    },
    /// The name is longer than [`MAX_NAME_LEN`].
    #[error("name of {len} bytes exceeds {max}")]
    NameTooLong {
        /// Name length.
        len: usize,
        /// Limit.
        max: usize,
    },
    /// The name is not UTF-8 or contains `/`, `\` or NUL.
    #[error("name is not UTF-8 or contains a path separator or NUL")]
    BadName,
    /// Hash text is not 64 hex digits.
    #[error("hash text of {len} characters is not 64 hex digits")]
    BadHashText {
        /// Length of the text.
        len: usize,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn arb_ref() -> impl Strategy<Value = BlobRef> {
        (any::<[u8; 32]>(), any::<u64>()).prop_map(|(h, size)| BlobRef {
            hash: BlobHash(h),
            size,
        })
    }

    proptest! {
        #[test]
        fn blob_ref_round_trips(r in arb_ref()) {
            let bytes = r.to_bytes();
            prop_assert_eq!(BlobRef::from_bytes(&bytes)?, r);
        }

        #[test]
        fn attachment_round_trips(r in arb_ref(), name in "[a-zA-Z0-9 ._-]{0,200}") {
            let a = Attachment::new(r, name)?;
            let bytes = a.encode()?;
            prop_assert_eq!(bytes.len(), ATTACHMENT_HEADER_LEN + a.name.len());
            prop_assert_eq!(Attachment::decode(&bytes)?, a);
        }

        #[test]
        fn any_bytes_decode_to_error_or_reencode(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            if let Ok(a) = Attachment::decode(&bytes) {
                prop_assert_eq!(&a.encode()?, &bytes);
            }
            if let Ok(r) = BlobRef::from_bytes(&bytes) {
                prop_assert_eq!(&r.to_bytes()[..], &bytes[..]);
            }
        }

        #[test]
        fn truncations_and_extensions_are_errors(r in arb_ref(), name in "[a-z]{0,20}", cut in 0usize..67, extra in any::<u8>()) {
            let bytes = Attachment::new(r, name)?.encode()?;
            let cut = cut.min(bytes.len() - 1);
            prop_assert!(Attachment::decode(&bytes[..cut]).is_err());
            let mut longer = bytes.clone();
            longer.push(extra);
            prop_assert!(Attachment::decode(&longer).is_err());
        }

        #[test]
        fn hash_text_round_trips(h in any::<[u8; 32]>()) {
            let hash = BlobHash(h);
            prop_assert_eq!(hash.to_string().parse::<BlobHash>()?, hash);
            prop_assert_eq!(hash.to_string().to_uppercase().parse::<BlobHash>()?, hash);
        }
    }

    #[test]
    fn rejects_names_and_flags() {
        let r = BlobRef {
            hash: BlobHash([7; 32]),
            size: 9,
        };
        assert_eq!(Attachment::new(r, "a/b"), Err(DecodeError::BadName));
        assert_eq!(Attachment::new(r, "a\0b"), Err(DecodeError::BadName));
        assert!(matches!(
            Attachment::new(r, "x".repeat(256)),
            Err(DecodeError::NameTooLong { len: 256, .. })
        ));
        let mut bytes = Attachment::new(r, "ok.pdf")
            .and_then(|a| a.encode())
            .expect("valid");
        bytes[5] = 1;
        assert_eq!(
            Attachment::decode(&bytes),
            Err(DecodeError::UnknownFlags { flags: 1 })
        );
        bytes[5] = 0;
        bytes[4] = 2;
        assert_eq!(
            Attachment::decode(&bytes),
            Err(DecodeError::UnknownVersion { version: 2 })
        );
        bytes[4] = 1;
        bytes[0] = b'Y';
        assert_eq!(Attachment::decode(&bytes), Err(DecodeError::BadMagic));
        assert!("zz".parse::<BlobHash>().is_err());
        assert!("g".repeat(64).parse::<BlobHash>().is_err());
    }
}
