//! The value model of record fields: a small typed tree with one canonical encoding.
//!
//! Why not JSON or CBOR: the state root hashes field values, so every peer must hold
//! the same bytes for the same value. JSON has no byte strings and no canonical form;
//! CBOR has both only in its "deterministic" profile, which its Rust crates do not
//! enforce on decode. This model is eight kinds, one encoding per value (map keys
//! strictly ascending, fixed-width numbers), and a decoder that accepts nothing else.
//!
//! Format (little-endian, also in `docs/FORMAT.md`):
//!
//! | tag | kind  | body                                                           |
//! |-----|-------|----------------------------------------------------------------|
//! | 0   | null  | -                                                              |
//! | 1   | false | -                                                              |
//! | 2   | true  | -                                                              |
//! | 3   | int   | i64 (8 bytes)                                                  |
//! | 4   | float | f64 bits (8 bytes), any bit pattern                            |
//! | 5   | text  | u32 length, UTF-8                                              |
//! | 6   | bytes | u32 length, bytes                                              |
//! | 7   | list  | u32 count, values                                              |
//! | 8   | map   | u32 count, entries `u16 key length, UTF-8 key, value`, keys strictly ascending |
//!
//! Nesting is limited to [`MAX_DEPTH`] lists/maps.

use std::collections::BTreeMap;

/// Deepest nesting of lists and maps a value may have.
pub const MAX_DEPTH: usize = 16;

/// A field value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// No value (distinct from an unset field, which is absent).
    Null,
    /// A boolean.
    Bool(bool),
    /// A signed 64-bit integer.
    Int(i64),
    /// A 64-bit float (stored bit for bit).
    Float(f64),
    /// UTF-8 text.
    Text(String),
    /// Raw bytes.
    Bytes(Vec<u8>),
    /// An ordered list.
    List(Vec<Value>),
    /// A map with text keys, in key order.
    Map(BTreeMap<String, Value>),
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::Text(s.to_owned())
    }
}
impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::Text(s)
    }
}
impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Value::Int(v)
    }
}
impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Value::Bool(v)
    }
}
impl From<f64> for Value {
    fn from(v: f64) -> Self {
        Value::Float(v)
    }
}

impl std::fmt::Display for Value {
    /// A JSON-like rendering (bytes as `b"hex"`), for tools and logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Value::Null => f.write_str("null"),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Int(i) => write!(f, "{i}"),
            Value::Float(x) => write!(f, "{x:?}"),
            Value::Text(s) => write!(f, "{s:?}"),
            Value::Bytes(b) => {
                f.write_str("b\"")?;
                for x in b {
                    write!(f, "{x:02x}")?;
                }
                f.write_str("\"")
            }
            Value::List(l) => {
                f.write_str("[")?;
                for (i, v) in l.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{v}")?;
                }
                f.write_str("]")
            }
            Value::Map(m) => {
                f.write_str("{")?;
                for (i, (k, v)) in m.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{k:?}: {v}")?;
                }
                f.write_str("}")
            }
        }
    }
}

/// Why bytes are not a value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ValueError {
    /// The input ends inside a value.
    #[error("value truncated at byte {at}")]
    Truncated {
        /// Offset where more bytes were needed.
        at: usize,
    },
    /// An unknown kind tag.
    #[error("unknown value tag {tag} at byte {at}")]
    UnknownTag {
        /// The tag.
        tag: u8,
        /// Its offset.
        at: usize,
    },
    /// Text or a map key that is not UTF-8.
    #[error("invalid UTF-8 at byte {at}")]
    Utf8 {
        /// Offset of the string.
        at: usize,
    },
    /// Map keys not strictly ascending (unsorted or duplicate).
    #[error("map keys not strictly ascending at byte {at}")]
    MapOrder {
        /// Offset of the offending key.
        at: usize,
    },
    /// Lists and maps nested deeper than [`MAX_DEPTH`].
    #[error("value nested deeper than {max}")]
    TooDeep {
        /// The limit.
        max: usize,
    },
    /// A value encodes past its end (or a count claims more items than bytes remain).
    #[error("length {len} at byte {at} exceeds the {remaining} remaining bytes")]
    Length {
        /// The claimed length or count.
        len: u64,
        /// Its offset.
        at: usize,
        /// Bytes left.
        remaining: usize,
    },
    /// Bytes left after a complete value.
    #[error("{extra} trailing bytes after the value")]
    Trailing {
        /// How many.
        extra: usize,
    },
    /// A string, list or map too long to encode (over `u32::MAX`, or a map key over
    /// `u16::MAX` bytes).
    #[error("value too large to encode")]
    TooLarge,
}

/// A cursor over untrusted bytes: every read checks the remaining length first.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }
    pub(crate) fn pos(&self) -> usize {
        self.pos
    }
    pub(crate) fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }
    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], ValueError> {
        if n > self.remaining() {
            return Err(ValueError::Truncated { at: self.pos });
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }
    pub(crate) fn peek(&self) -> Option<u8> {
        self.buf.get(self.pos).copied()
    }
    pub(crate) fn u8(&mut self) -> Result<u8, ValueError> {
        Ok(self.take(1)?[0])
    }
    pub(crate) fn array<const N: usize>(&mut self) -> Result<[u8; N], ValueError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }
    fn u16(&mut self) -> Result<u16, ValueError> {
        Ok(u16::from_le_bytes(self.array()?))
    }
    fn u32(&mut self) -> Result<u32, ValueError> {
        Ok(u32::from_le_bytes(self.array()?))
    }
    /// A length that must fit in what is left (each counted item takes at least one byte).
    fn len_u32(&mut self) -> Result<usize, ValueError> {
        let at = self.pos;
        let len = self.u32()? as usize;
        if len > self.remaining() {
            return Err(ValueError::Length {
                len: len as u64,
                at,
                remaining: self.remaining(),
            });
        }
        Ok(len)
    }
    fn str(&mut self, len: usize) -> Result<&'a str, ValueError> {
        let at = self.pos;
        std::str::from_utf8(self.take(len)?).map_err(|_| ValueError::Utf8 { at })
    }
}

impl Value {
    /// The canonical encoding.
    pub fn encode(&self) -> Result<Vec<u8>, ValueError> {
        let mut out = Vec::new();
        self.encode_into(&mut out)?;
        Ok(out)
    }

    /// Appends the canonical encoding to `out`.
    ///
    /// Format: see the module docs.
    pub fn encode_into(&self, out: &mut Vec<u8>) -> Result<(), ValueError> {
        self.encode_depth(out, 0)
    }

    fn encode_depth(&self, out: &mut Vec<u8>, depth: usize) -> Result<(), ValueError> {
        let len32 = |n: usize| u32::try_from(n).map_err(|_| ValueError::TooLarge);
        match self {
            Value::Null => out.push(0),
            Value::Bool(false) => out.push(1),
            Value::Bool(true) => out.push(2),
            Value::Int(i) => {
                out.push(3);
                out.extend_from_slice(&i.to_le_bytes());
            }
            Value::Float(x) => {
                out.push(4);
                out.extend_from_slice(&x.to_bits().to_le_bytes());
            }
            Value::Text(s) => {
                out.push(5);
                out.extend_from_slice(&len32(s.len())?.to_le_bytes());
                out.extend_from_slice(s.as_bytes());
            }
            Value::Bytes(b) => {
                out.push(6);
                out.extend_from_slice(&len32(b.len())?.to_le_bytes());
                out.extend_from_slice(b);
            }
            Value::List(l) => {
                if depth >= MAX_DEPTH {
                    return Err(ValueError::TooDeep { max: MAX_DEPTH });
                }
                out.push(7);
                out.extend_from_slice(&len32(l.len())?.to_le_bytes());
                for v in l {
                    v.encode_depth(out, depth + 1)?;
                }
            }
            Value::Map(m) => {
                if depth >= MAX_DEPTH {
                    return Err(ValueError::TooDeep { max: MAX_DEPTH });
                }
                out.push(8);
                out.extend_from_slice(&len32(m.len())?.to_le_bytes());
                for (k, v) in m {
                    let kl = u16::try_from(k.len()).map_err(|_| ValueError::TooLarge)?;
                    out.extend_from_slice(&kl.to_le_bytes());
                    out.extend_from_slice(k.as_bytes());
                    v.encode_depth(out, depth + 1)?;
                }
            }
        }
        Ok(())
    }

    /// Decodes exactly one canonical value; anything else is an error.
    pub fn decode(bytes: &[u8]) -> Result<Value, ValueError> {
        let mut r = Reader::new(bytes);
        let v = Value::read(&mut r)?;
        if r.remaining() != 0 {
            return Err(ValueError::Trailing {
                extra: r.remaining(),
            });
        }
        Ok(v)
    }

    /// Reads one value from `r`.
    pub(crate) fn read(r: &mut Reader<'_>) -> Result<Value, ValueError> {
        Value::read_depth(r, 0)
    }

    fn read_depth(r: &mut Reader<'_>, depth: usize) -> Result<Value, ValueError> {
        let at = r.pos();
        let tag = r.u8()?;
        Ok(match tag {
            0 => Value::Null,
            1 => Value::Bool(false),
            2 => Value::Bool(true),
            3 => Value::Int(i64::from_le_bytes(r.array()?)),
            4 => Value::Float(f64::from_bits(u64::from_le_bytes(r.array()?))),
            5 => {
                let n = r.len_u32()?;
                Value::Text(r.str(n)?.to_owned())
            }
            6 => {
                let n = r.len_u32()?;
                Value::Bytes(r.take(n)?.to_vec())
            }
            7 | 8 if depth >= MAX_DEPTH => return Err(ValueError::TooDeep { max: MAX_DEPTH }),
            7 => {
                // Every item takes at least one byte, so the count is bounded by the input.
                let n = r.len_u32()?;
                let mut l = Vec::with_capacity(n);
                for _ in 0..n {
                    l.push(Value::read_depth(r, depth + 1)?);
                }
                Value::List(l)
            }
            8 => {
                let n = r.len_u32()?;
                let mut m = BTreeMap::new();
                let mut prev: Option<&str> = None;
                for _ in 0..n {
                    let kat = r.pos();
                    let kl = r.u16()? as usize;
                    let k = r.str(kl)?;
                    if prev.is_some_and(|p| p >= k) {
                        return Err(ValueError::MapOrder { at: kat });
                    }
                    prev = Some(k);
                    let v = Value::read_depth(r, depth + 1)?;
                    m.insert(k.to_owned(), v);
                }
                Value::Map(m)
            }
            tag => return Err(ValueError::UnknownTag { tag, at }),
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Any value (floats without NaN so that `==` is meaningful).
    pub(crate) fn arb_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::Int),
            (-1e9f64..1e9).prop_map(Value::Float),
            ".{0,12}".prop_map(Value::Text),
            proptest::collection::vec(any::<u8>(), 0..12).prop_map(Value::Bytes),
        ];
        leaf.prop_recursive(4, 32, 6, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::List),
                proptest::collection::btree_map(".{0,6}", inner, 0..6).prop_map(Value::Map),
            ]
        })
    }

    proptest! {
        #[test]
        fn round_trip(v in arb_value()) {
            let bytes = v.encode().unwrap();
            prop_assert_eq!(Value::decode(&bytes).unwrap(), v);
        }

        #[test]
        fn any_bytes_decode_or_error(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            // Never panics; whatever decodes re-encodes to the same bytes (one encoding).
            if let Ok(v) = Value::decode(&bytes) {
                prop_assert_eq!(v.encode().unwrap(), bytes);
            }
        }

        #[test]
        fn truncations_are_errors(v in arb_value(), cut in any::<prop::sample::Index>()) {
            let bytes = v.encode().unwrap();
            let n = cut.index(bytes.len());
            prop_assert!(Value::decode(&bytes[..n]).is_err());
        }
    }

    #[test]
    fn hostile_lengths_are_errors_without_allocation() {
        // A list claiming 4 billion items in 5 bytes.
        let bytes = [7, 0xff, 0xff, 0xff, 0xff];
        assert!(matches!(
            Value::decode(&bytes),
            Err(ValueError::Length { .. })
        ));
        let text = [5, 0xff, 0xff, 0xff, 0x7f, b'a'];
        assert!(matches!(
            Value::decode(&text),
            Err(ValueError::Length { .. })
        ));
    }

    #[test]
    fn unsorted_or_duplicate_map_keys_are_errors() {
        let mut dup = vec![8, 2, 0, 0, 0];
        for _ in 0..2 {
            dup.extend_from_slice(&[1, 0, b'a', 0]);
        }
        assert!(matches!(
            Value::decode(&dup),
            Err(ValueError::MapOrder { .. })
        ));
    }

    #[test]
    fn depth_is_limited() {
        let mut deep = Value::Null;
        for _ in 0..=MAX_DEPTH {
            deep = Value::List(vec![deep]);
        }
        assert_eq!(deep.encode(), Err(ValueError::TooDeep { max: MAX_DEPTH }));
        let bytes: Vec<u8> = std::iter::repeat_n([7u8, 1, 0, 0, 0], MAX_DEPTH + 1)
            .flatten()
            .chain([0])
            .collect();
        assert_eq!(
            Value::decode(&bytes),
            Err(ValueError::TooDeep { max: MAX_DEPTH })
        );
    }
}
