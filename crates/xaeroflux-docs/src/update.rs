//! Document updates: the payload of events of type [`DOC_UPDATE_TYPE`].
//!
//! Format (version 1; also in `docs/FORMAT.md`, "Documents"). The document name is
//! UTF-8, non-empty, without NUL bytes (the view ends keys with NUL) and at most
//! [`MAX_DOC_NAME`] bytes. The update is a loro export (updates mode, or a snapshot),
//! which carries its own header: the magic `loro`, a 16-byte checksum and a 2-byte
//! mode, so it is at least [`MIN_UPDATE`] bytes long. The rest of the update is parsed
//! by loro when the view imports it.
//!
//! ```text
//! offset  size  field
//! 0       1     version = 1
//! 1       1     kind = 1 (loro update)
//! 2       1     name length n (1..=128)
//! 3       n     document name, UTF-8, no NUL
//! 3+n     ..    loro update bytes (the rest of the payload; starts with "loro")
//! ```

/// Event type of document updates (reserved range 32..=63 of the state views).
pub const DOC_UPDATE_TYPE: u32 = 33;
/// Version byte of the document update format.
pub const DOC_UPDATE_VERSION: u8 = 1;
/// Longest document name in bytes.
pub const MAX_DOC_NAME: usize = 128;
/// Shortest loro export: magic (4), checksum (16), mode (2).
pub const MIN_UPDATE: usize = 22;
/// First bytes of every loro export.
pub const LORO_MAGIC: [u8; 4] = *b"loro";
/// The kind byte of a loro update.
const KIND_LORO_UPDATE: u8 = 1;

/// Why a document update does not decode (or a name is not valid).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UpdateError {
    /// The payload ends before the field.
    #[error("document update truncated at {field}")]
    Truncated {
        /// The field that is cut off.
        field: &'static str,
    },
    /// An unknown version byte.
    #[error("document update version {found} is not supported")]
    Version {
        /// The version byte found.
        found: u8,
    },
    /// An unknown kind byte.
    #[error("unknown document update kind {found}")]
    Kind {
        /// The kind byte found.
        found: u8,
    },
    /// The document name is empty, too long, not UTF-8 or holds a NUL byte.
    #[error("bad document name ({len} bytes): {reason}")]
    Name {
        /// Its length in bytes.
        len: usize,
        /// What is wrong.
        reason: &'static str,
    },
    /// The update does not start like a loro export.
    #[error("the update is not a loro export ({len} bytes)")]
    NotLoro {
        /// Its length in bytes.
        len: usize,
    },
}

/// A decoded document update, borrowing the payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DocUpdate<'a> {
    /// The document's name within its group.
    pub doc: &'a str,
    /// The loro update bytes.
    pub update: &'a [u8],
}

/// Checks a document name as the codec does: non-empty, at most [`MAX_DOC_NAME`]
/// bytes, no NUL byte.
pub fn validate_name(name: &str) -> Result<(), UpdateError> {
    let len = name.len();
    let reason = if name.is_empty() {
        "empty"
    } else if len > MAX_DOC_NAME {
        "longer than 128 bytes"
    } else if name.as_bytes().contains(&0) {
        "holds a NUL byte"
    } else {
        return Ok(());
    };
    Err(UpdateError::Name { len, reason })
}

impl<'a> DocUpdate<'a> {
    /// Format: see the module docs (version, kind, name, loro bytes).
    pub fn encode(&self) -> Result<Vec<u8>, UpdateError> {
        validate_name(self.doc)?;
        check_loro(self.update)?;
        let mut out = Vec::with_capacity(3 + self.doc.len() + self.update.len());
        out.push(DOC_UPDATE_VERSION);
        out.push(KIND_LORO_UPDATE);
        // validate_name bounds the length by MAX_DOC_NAME (128).
        out.push(self.doc.len() as u8);
        out.extend_from_slice(self.doc.as_bytes());
        out.extend_from_slice(self.update);
        Ok(out)
    }

    /// Decodes an event payload; anything but one well-formed update is an error.
    pub fn decode(payload: &'a [u8]) -> Result<DocUpdate<'a>, UpdateError> {
        let [version, kind, n, rest @ ..] = payload else {
            return Err(UpdateError::Truncated { field: "header" });
        };
        if *version != DOC_UPDATE_VERSION {
            return Err(UpdateError::Version { found: *version });
        }
        if *kind != KIND_LORO_UPDATE {
            return Err(UpdateError::Kind { found: *kind });
        }
        let n = usize::from(*n);
        let (name, update) = rest
            .split_at_checked(n)
            .ok_or(UpdateError::Truncated { field: "name" })?;
        let doc = std::str::from_utf8(name).map_err(|_| UpdateError::Name {
            len: n,
            reason: "not UTF-8",
        })?;
        validate_name(doc)?;
        check_loro(update)?;
        Ok(DocUpdate { doc, update })
    }
}

fn check_loro(update: &[u8]) -> Result<(), UpdateError> {
    if update.len() < MIN_UPDATE || update[..4] != LORO_MAGIC {
        return Err(UpdateError::NotLoro { len: update.len() });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn arb_name() -> impl Strategy<Value = String> {
        "[a-z0-9/_. -]{1,40}|[\\PC&&[^\\x00]]{1,20}"
            .prop_filter("fits", |s| !s.is_empty() && s.len() <= MAX_DOC_NAME)
    }

    fn arb_update() -> impl Strategy<Value = Vec<u8>> {
        proptest::collection::vec(any::<u8>(), MIN_UPDATE - 4..200).prop_map(|rest| {
            let mut u = LORO_MAGIC.to_vec();
            u.extend(rest);
            u
        })
    }

    #[test]
    fn names_are_checked() {
        assert!(validate_name("notes/n1").is_ok());
        assert!(validate_name(&"x".repeat(MAX_DOC_NAME)).is_ok());
        for bad in ["", "a\0b"] {
            assert!(matches!(validate_name(bad), Err(UpdateError::Name { .. })));
        }
        assert!(validate_name(&"x".repeat(MAX_DOC_NAME + 1)).is_err());
    }

    #[test]
    fn short_or_foreign_updates_are_refused() {
        let doc = "n";
        for update in [
            &b"loro"[..],
            &[0u8; 30][..],
            &b"lorX0123456789012345678"[..],
        ] {
            assert!(matches!(
                DocUpdate { doc, update }.encode(),
                Err(UpdateError::NotLoro { .. })
            ));
        }
    }

    proptest! {
        #[test]
        fn round_trip(doc in arb_name(), update in arb_update()) {
            let u = DocUpdate { doc: &doc, update: &update };
            let bytes = u.encode().unwrap();
            prop_assert_eq!(DocUpdate::decode(&bytes).unwrap(), u);
        }

        #[test]
        fn any_bytes_decode_or_error(bytes in proptest::collection::vec(any::<u8>(), 0..96)) {
            if let Ok(u) = DocUpdate::decode(&bytes) {
                prop_assert_eq!(u.encode().unwrap(), bytes);
            }
        }

        #[test]
        fn mutated_updates_decode_or_error(
            doc in arb_name(),
            update in arb_update(),
            at in any::<prop::sample::Index>(),
            b in any::<u8>(),
        ) {
            let mut bytes = DocUpdate { doc: &doc, update: &update }.encode().unwrap();
            let i = at.index(bytes.len());
            bytes[i] = b;
            if let Ok(u) = DocUpdate::decode(&bytes) {
                prop_assert_eq!(u.encode().unwrap(), bytes);
            }
        }

        #[test]
        fn truncated_headers_are_errors(doc in arb_name(), update in arb_update(), cut in any::<prop::sample::Index>()) {
            let bytes = DocUpdate { doc: &doc, update: &update }.encode().unwrap();
            // Any cut inside the header, the name or the loro header is an error.
            let n = cut.index(3 + doc.len() + MIN_UPDATE);
            prop_assert!(DocUpdate::decode(&bytes[..n]).is_err());
        }
    }
}
