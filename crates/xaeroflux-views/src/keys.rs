//! Order-preserving keys of records and relations.
//!
//! Names and keys hold no NUL byte (the operation codec refuses them), so a name
//! followed by a NUL terminator sorts exactly as the name does: `"a\0" < "ab\0"`.
//! A record is `collection \0 key \0`; a relation is `from rel \0 to` (and its reverse
//! `to rel \0 from` for relations into a record). Byte order of these keys is the
//! order of `(collection, key)`, so a collection or a key prefix is a key prefix.

use crate::op::RecordRef;

/// Appends `collection \0 key \0`.
pub(crate) fn put_ref(out: &mut Vec<u8>, r: &RecordRef) {
    out.extend_from_slice(r.collection.as_bytes());
    out.push(0);
    out.extend_from_slice(r.key.as_bytes());
    out.push(0);
}

/// The key of a record.
pub(crate) fn record_key(r: &RecordRef) -> Vec<u8> {
    let mut out = Vec::with_capacity(r.collection.len() + r.key.len() + 2);
    put_ref(&mut out, r);
    out
}

/// The key prefix of the records of `collection` whose key starts with `prefix`.
pub(crate) fn scan_prefix(collection: &str, prefix: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(collection.len() + prefix.len() + 1);
    out.extend_from_slice(collection.as_bytes());
    out.push(0);
    out.extend_from_slice(prefix.as_bytes());
    out
}

/// The key of a relation, `a rel \0 b` (`a` is `from` for the forward key, `to` for
/// the reverse one).
pub(crate) fn edge_key(a: &RecordRef, rel: &str, b: &RecordRef) -> Vec<u8> {
    let mut out = Vec::with_capacity(a.key.len() + b.key.len() + rel.len() + 64);
    put_ref(&mut out, a);
    out.extend_from_slice(rel.as_bytes());
    out.push(0);
    put_ref(&mut out, b);
    out
}

fn take_name(b: &[u8]) -> Option<(&str, &[u8])> {
    let end = b.iter().position(|&x| x == 0)?;
    let s = std::str::from_utf8(&b[..end]).ok()?;
    Some((s, &b[end + 1..]))
}

/// Splits a record off the front of `b`; `None` if malformed.
pub(crate) fn take_ref(b: &[u8]) -> Option<(RecordRef, &[u8])> {
    let (c, rest) = take_name(b)?;
    let (k, rest) = take_name(rest)?;
    Some((RecordRef::new(c, k), rest))
}

/// Decodes an [`edge_key`] into `(a, rel, b)`; `None` if malformed.
pub(crate) fn split_edge(b: &[u8]) -> Option<(RecordRef, String, RecordRef)> {
    let (a, rest) = take_ref(b)?;
    let (rel, rest) = take_name(rest)?;
    let (bref, rest) = take_ref(rest)?;
    rest.is_empty().then(|| (a, rel.to_owned(), bref))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn record_keys_sort_like_refs(a in crate::op::tests::arb_ref(), b in crate::op::tests::arb_ref()) {
            prop_assert_eq!(record_key(&a).cmp(&record_key(&b)), a.cmp(&b));
            let key = record_key(&a);
            let (back, rest) = take_ref(&key).unwrap();
            prop_assert_eq!(back, a.clone());
            prop_assert!(rest.is_empty());
            let k = edge_key(&a, "rel", &b);
            prop_assert_eq!(split_edge(&k).unwrap(), (a, "rel".to_string(), b));
        }
    }
}
