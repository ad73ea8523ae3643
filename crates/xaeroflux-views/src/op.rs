//! Record operations: the payload of events of type [`RECORD_OP_TYPE`].
//!
//! Format (version 1; also in `docs/FORMAT.md`). Lengths are single bytes; names and
//! keys are UTF-8 without NUL bytes (the views use NUL as the terminator of an
//! order-preserving key encoding), non-empty, and at most the `MAX_*` constants long.
//!
//! ```text
//! offset size  field
//! 0      1     version = 1
//! 1      1     kind: 1 put, 2 patch, 3 delete, 4 link, 5 unlink
//! 2      ..    record (put/patch/delete) or `from` (link/unlink):
//!                u8 collection length, collection, u8 key length, key
//! put:    u16 LE field count, then fields in strictly ascending name order:
//!           u8 name length, name, value (see `value`)
//! patch:  as put, but at least one field, and a field's value may be the single
//!           byte 0xFF: unset the field
//! delete: nothing more
//! link / unlink: u8 relation length, relation, then `to` like the record above
//! ```
//!
//! Nothing may follow the operation.

use std::collections::BTreeMap;

use crate::value::{Reader, Value, ValueError};

/// Event type of record operations (put, patch, delete, link, unlink).
pub const RECORD_OP_TYPE: u32 = 32;
/// Version byte of the record operation format.
pub const OP_VERSION: u8 = 1;
/// Longest collection name in bytes.
pub const MAX_COLLECTION: usize = 64;
/// Longest record key in bytes.
pub const MAX_KEY: usize = 128;
/// Longest relation or field name in bytes.
pub const MAX_NAME: usize = 64;
/// The field-value byte that unsets a field in a patch.
const UNSET: u8 = 0xFF;

/// A record: a key in a collection (within a group).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RecordRef {
    /// Collection name, e.g. `"cards"`.
    pub collection: String,
    /// Key within the collection.
    pub key: String,
}

impl RecordRef {
    /// A record reference (checked when an operation is encoded).
    pub fn new(collection: impl Into<String>, key: impl Into<String>) -> Self {
        RecordRef {
            collection: collection.into(),
            key: key.into(),
        }
    }

    /// Checks the names as the codec does: non-empty, at most [`MAX_COLLECTION`] /
    /// [`MAX_KEY`] bytes, no NUL byte.
    pub fn validate(&self) -> Result<(), OpError> {
        check_name(&self.collection, MAX_COLLECTION, "collection")?;
        check_name(&self.key, MAX_KEY, "key")
    }
}

impl std::fmt::Display for RecordRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.collection, self.key)
    }
}

/// A record's fields.
pub type Fields = BTreeMap<String, Value>;

/// One operation on records or relations.
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    /// Replaces the record: these fields, every other field unset.
    Put {
        /// The record.
        record: RecordRef,
        /// Its new fields.
        fields: Fields,
    },
    /// Sets (`Some`) or unsets (`None`) these fields, leaving the others.
    Patch {
        /// The record.
        record: RecordRef,
        /// Changed fields.
        fields: BTreeMap<String, Option<Value>>,
    },
    /// Deletes the record (a tombstone; see `record` for the rules).
    Delete {
        /// The record.
        record: RecordRef,
    },
    /// Adds the relation `from -rel-> to`.
    Link {
        /// Source record.
        from: RecordRef,
        /// Relation name, e.g. `"on_board"`.
        rel: String,
        /// Target record.
        to: RecordRef,
    },
    /// Removes the relation `from -rel-> to`.
    Unlink {
        /// Source record.
        from: RecordRef,
        /// Relation name.
        rel: String,
        /// Target record.
        to: RecordRef,
    },
}

/// Why bytes are not a record operation, or an operation cannot be encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OpError {
    /// The input ends inside the operation.
    #[error("operation truncated")]
    Truncated,
    /// A version this build does not read.
    #[error("unsupported operation version {version}")]
    Version {
        /// The version byte.
        version: u8,
    },
    /// An unknown operation kind.
    #[error("unknown operation kind {kind}")]
    Kind {
        /// The kind byte.
        kind: u8,
    },
    /// A name or key that is empty, too long, not UTF-8 or holds a NUL byte.
    #[error("invalid {what}: {reason}")]
    Name {
        /// Which name (collection, key, relation, field).
        what: &'static str,
        /// What is wrong.
        reason: &'static str,
    },
    /// Field names not strictly ascending, an unset in a put, or a patch without
    /// fields.
    #[error("invalid fields: {reason}")]
    Fields {
        /// What is wrong.
        reason: &'static str,
    },
    /// A field value does not decode or encode.
    #[error("field value")]
    Value(#[from] ValueError),
    /// Bytes left after the operation.
    #[error("{extra} trailing bytes after the operation")]
    Trailing {
        /// How many.
        extra: usize,
    },
}

fn check_name(s: &str, max: usize, what: &'static str) -> Result<(), OpError> {
    let bad = |reason| Err(OpError::Name { what, reason });
    if s.is_empty() {
        return bad("empty");
    }
    if s.len() > max {
        return bad("too long");
    }
    if s.as_bytes().contains(&0) {
        return bad("contains a NUL byte");
    }
    Ok(())
}

fn put_name(out: &mut Vec<u8>, s: &str, max: usize, what: &'static str) -> Result<(), OpError> {
    check_name(s, max, what)?;
    // `max` is at most 128, so the length fits a byte.
    out.push(s.len() as u8);
    out.extend_from_slice(s.as_bytes());
    Ok(())
}

fn put_ref(out: &mut Vec<u8>, r: &RecordRef) -> Result<(), OpError> {
    put_name(out, &r.collection, MAX_COLLECTION, "collection")?;
    put_name(out, &r.key, MAX_KEY, "key")
}

fn read_name(r: &mut Reader<'_>, max: usize, what: &'static str) -> Result<String, OpError> {
    let len = r.u8().map_err(|_| OpError::Truncated)? as usize;
    let bytes = r.take(len).map_err(|_| OpError::Truncated)?;
    let s = std::str::from_utf8(bytes).map_err(|_| OpError::Name {
        what,
        reason: "not UTF-8",
    })?;
    check_name(s, max, what)?;
    Ok(s.to_owned())
}

fn read_ref(r: &mut Reader<'_>) -> Result<RecordRef, OpError> {
    Ok(RecordRef {
        collection: read_name(r, MAX_COLLECTION, "collection")?,
        key: read_name(r, MAX_KEY, "key")?,
    })
}

impl Op {
    /// The record the operation changes (the source of a relation).
    pub fn record(&self) -> &RecordRef {
        match self {
            Op::Put { record, .. } | Op::Patch { record, .. } | Op::Delete { record } => record,
            Op::Link { from, .. } | Op::Unlink { from, .. } => from,
        }
    }

    /// The canonical encoding (the event payload).
    ///
    /// Format: see the module docs.
    pub fn encode(&self) -> Result<Vec<u8>, OpError> {
        let mut out = vec![OP_VERSION];
        match self {
            Op::Put { record, fields } => {
                out.push(1);
                put_ref(&mut out, record)?;
                put_fields(&mut out, fields.iter().map(|(k, v)| (k, Some(v))), false)?;
            }
            Op::Patch { record, fields } => {
                out.push(2);
                put_ref(&mut out, record)?;
                if fields.is_empty() {
                    return Err(OpError::Fields {
                        reason: "a patch changes at least one field",
                    });
                }
                put_fields(&mut out, fields.iter().map(|(k, v)| (k, v.as_ref())), true)?;
            }
            Op::Delete { record } => {
                out.push(3);
                put_ref(&mut out, record)?;
            }
            Op::Link { from, rel, to } | Op::Unlink { from, rel, to } => {
                out.push(if matches!(self, Op::Link { .. }) {
                    4
                } else {
                    5
                });
                put_ref(&mut out, from)?;
                put_name(&mut out, rel, MAX_NAME, "relation")?;
                put_ref(&mut out, to)?;
            }
        }
        Ok(out)
    }

    /// Decodes one operation; any other input is an error.
    pub fn decode(bytes: &[u8]) -> Result<Op, OpError> {
        let mut r = Reader::new(bytes);
        let version = r.u8().map_err(|_| OpError::Truncated)?;
        if version != OP_VERSION {
            return Err(OpError::Version { version });
        }
        let kind = r.u8().map_err(|_| OpError::Truncated)?;
        let op = match kind {
            1 => {
                let record = read_ref(&mut r)?;
                let mut fields = Fields::new();
                for (k, v) in read_fields(&mut r)? {
                    let v = v.ok_or(OpError::Fields {
                        reason: "unset in a put",
                    })?;
                    fields.insert(k, v);
                }
                Op::Put { record, fields }
            }
            2 => {
                let record = read_ref(&mut r)?;
                let fields: BTreeMap<_, _> = read_fields(&mut r)?.into_iter().collect();
                if fields.is_empty() {
                    return Err(OpError::Fields {
                        reason: "a patch changes at least one field",
                    });
                }
                Op::Patch { record, fields }
            }
            3 => Op::Delete {
                record: read_ref(&mut r)?,
            },
            4 | 5 => {
                let from = read_ref(&mut r)?;
                let rel = read_name(&mut r, MAX_NAME, "relation")?;
                let to = read_ref(&mut r)?;
                if kind == 4 {
                    Op::Link { from, rel, to }
                } else {
                    Op::Unlink { from, rel, to }
                }
            }
            kind => return Err(OpError::Kind { kind }),
        };
        if r.remaining() != 0 {
            return Err(OpError::Trailing {
                extra: r.remaining(),
            });
        }
        Ok(op)
    }
}

fn put_fields<'a>(
    out: &mut Vec<u8>,
    fields: impl ExactSizeIterator<Item = (&'a String, Option<&'a Value>)>,
    allow_unset: bool,
) -> Result<(), OpError> {
    let n = u16::try_from(fields.len()).map_err(|_| OpError::Fields {
        reason: "more than 65,535 fields",
    })?;
    out.extend_from_slice(&n.to_le_bytes());
    // BTreeMap iteration is strictly ascending, which the format requires.
    for (name, v) in fields {
        put_name(out, name, MAX_NAME, "field")?;
        match v {
            Some(v) => v.encode_into(out)?,
            None if allow_unset => out.push(UNSET),
            None => {
                return Err(OpError::Fields {
                    reason: "unset in a put",
                });
            }
        }
    }
    Ok(())
}

fn read_fields(r: &mut Reader<'_>) -> Result<Vec<(String, Option<Value>)>, OpError> {
    let n = u16::from_le_bytes(r.array().map_err(|_| OpError::Truncated)?) as usize;
    // Each field takes at least 3 bytes, so the count is bounded by the input.
    let mut out = Vec::with_capacity(n.min(r.remaining() / 3));
    for _ in 0..n {
        let name = read_name(r, MAX_NAME, "field")?;
        if out
            .last()
            .is_some_and(|(p, _): &(String, _)| p.as_str() >= name.as_str())
        {
            return Err(OpError::Fields {
                reason: "field names not strictly ascending",
            });
        }
        let v = if r.peek() == Some(UNSET) {
            r.u8().map_err(|_| OpError::Truncated)?;
            None
        } else {
            Some(Value::read(r)?)
        };
        out.push((name, v));
    }
    Ok(out)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::value::tests::arb_value;
    use proptest::prelude::*;

    fn arb_name(max: usize) -> impl Strategy<Value = String> {
        proptest::string::string_regex(&format!("[a-z0-9_./-]{{1,{max}}}")).expect("valid regex")
    }

    pub(crate) fn arb_ref() -> impl Strategy<Value = RecordRef> {
        (arb_name(8), arb_name(12)).prop_map(|(c, k)| RecordRef::new(c, k))
    }

    pub(crate) fn arb_op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (
                arb_ref(),
                proptest::collection::btree_map(arb_name(6), arb_value(), 0..4)
            )
                .prop_map(|(record, fields)| Op::Put { record, fields }),
            (
                arb_ref(),
                proptest::collection::btree_map(
                    arb_name(6),
                    proptest::option::of(arb_value()),
                    1..4
                )
            )
                .prop_map(|(record, fields)| Op::Patch { record, fields }),
            arb_ref().prop_map(|record| Op::Delete { record }),
            (arb_ref(), arb_name(6), arb_ref()).prop_map(|(from, rel, to)| Op::Link {
                from,
                rel,
                to
            }),
            (arb_ref(), arb_name(6), arb_ref()).prop_map(|(from, rel, to)| Op::Unlink {
                from,
                rel,
                to
            }),
        ]
    }

    proptest! {
        #[test]
        fn round_trip(op in arb_op()) {
            let bytes = op.encode().unwrap();
            prop_assert_eq!(Op::decode(&bytes).unwrap(), op);
        }

        #[test]
        fn any_bytes_decode_or_error(bytes in proptest::collection::vec(any::<u8>(), 0..96)) {
            if let Ok(op) = Op::decode(&bytes) {
                // One encoding per operation.
                prop_assert_eq!(op.encode().unwrap(), bytes);
            }
        }

        #[test]
        fn mutated_ops_decode_or_error(op in arb_op(), at in any::<prop::sample::Index>(), b in any::<u8>()) {
            let mut bytes = op.encode().unwrap();
            let i = at.index(bytes.len());
            bytes[i] = b;
            if let Ok(op) = Op::decode(&bytes) {
                prop_assert_eq!(op.encode().unwrap(), bytes);
            }
        }

        #[test]
        fn truncations_are_errors(op in arb_op(), cut in any::<prop::sample::Index>()) {
            let bytes = op.encode().unwrap();
            let n = cut.index(bytes.len());
            prop_assert!(Op::decode(&bytes[..n]).is_err());
        }
    }

    #[test]
    fn bad_names_are_refused() {
        let put = |c: &str, k: &str| {
            Op::Delete {
                record: RecordRef::new(c, k),
            }
            .encode()
        };
        assert!(put("", "k").is_err());
        assert!(put("c", "").is_err());
        assert!(put("c", "a\0b").is_err());
        assert!(put(&"c".repeat(MAX_COLLECTION + 1), "k").is_err());
        assert!(put("c", &"k".repeat(MAX_KEY)).is_ok());
        assert!(put("c", &"k".repeat(MAX_KEY + 1)).is_err());
        // Wrong version and kind.
        let mut ok = put("c", "k").unwrap();
        ok[0] = 2;
        assert_eq!(Op::decode(&ok), Err(OpError::Version { version: 2 }));
        ok[0] = 1;
        ok[1] = 9;
        assert_eq!(Op::decode(&ok), Err(OpError::Kind { kind: 9 }));
    }

    #[test]
    fn put_cannot_unset_and_patch_needs_fields() {
        let rec = RecordRef::new("c", "k");
        let patch = Op::Patch {
            record: rec.clone(),
            fields: [("a".to_string(), None)].into(),
        };
        let mut bytes = patch.encode().unwrap();
        assert!(Op::decode(&bytes).is_ok());
        bytes[1] = 1; // the same body as a put
        assert!(matches!(Op::decode(&bytes), Err(OpError::Fields { .. })));
        let empty = Op::Patch {
            record: rec,
            fields: BTreeMap::new(),
        };
        assert!(matches!(empty.encode(), Err(OpError::Fields { .. })));
    }
}
