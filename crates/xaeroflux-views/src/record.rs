//! The merge rules: per-field last-writer-wins, tombstones and relations.
//!
//! Every operation carries the [`Stamp`] of its event, `(hlc, author, seq)`: the store's
//! total order, the same on every peer. Each piece of state below keeps a maximum of
//! stamps, so applying a set of operations gives the same state in any order and any
//! number of times (the merge is commutative, associative and idempotent).
//!
//! A record keeps
//! - `written`: the highest put or patch,
//! - `deleted`: the highest delete,
//! - `reset`: the highest put or delete, which clears every field written before it,
//! - per field, the highest write (a value, or "unset") at or above `reset`.
//!
//! Rules:
//! - **Fields**: a field's value is its highest write. A put sets its fields and unsets
//!   every other field (its stamp becomes `reset`); a patch changes only its fields.
//! - **Delete versus concurrent writes**: a delete is a write like the others, ordered
//!   by its stamp. It clears every field written before it. The record exists if its
//!   highest put or patch is above its highest delete: a patch ordered after a delete
//!   brings the record back with only the fields written after the delete; a put or
//!   patch ordered before the delete stays deleted, whichever arrived first.
//! - **Relations**: a relation `from -rel-> to` has the value of its highest link or
//!   unlink. It is visible if linked and above the highest delete of both `from` and
//!   `to`: deleting a record removes its relations as of the delete, a relation made
//!   after the delete survives. A relation to a record never written is visible (the
//!   record may still arrive).

use std::collections::BTreeMap;

use crate::op::{Fields, Op};
use crate::value::{Reader, Value, ValueError};

/// A position in the store's total order: `(hlc, author, seq)` of an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Stamp {
    /// Hybrid logical clock of the event.
    pub hlc: u64,
    /// Its author.
    pub author: [u8; 32],
    /// Its position in the author's log.
    pub seq: u64,
}

/// Encoded length of a [`Stamp`].
pub const STAMP_LEN: usize = 48;

impl Stamp {
    /// Format: `hlc u64 BE | author [32] | seq u64 BE` (big-endian, so encoded stamps
    /// sort in stamp order).
    pub fn encode(&self) -> [u8; STAMP_LEN] {
        let mut out = [0u8; STAMP_LEN];
        out[..8].copy_from_slice(&self.hlc.to_be_bytes());
        out[8..40].copy_from_slice(&self.author);
        out[40..].copy_from_slice(&self.seq.to_be_bytes());
        out
    }

    /// Decodes [`Stamp::encode`]'s output.
    pub fn decode(b: &[u8; STAMP_LEN]) -> Stamp {
        let mut hlc = [0u8; 8];
        hlc.copy_from_slice(&b[..8]);
        let mut author = [0u8; 32];
        author.copy_from_slice(&b[8..40]);
        let mut seq = [0u8; 8];
        seq.copy_from_slice(&b[40..]);
        Stamp {
            hlc: u64::from_be_bytes(hlc),
            author,
            seq: u64::from_be_bytes(seq),
        }
    }

    fn read(r: &mut Reader<'_>) -> Result<Stamp, ValueError> {
        Ok(Stamp::decode(&r.array()?))
    }
}

/// One field: its highest write (`None` = unset).
#[derive(Debug, Clone, PartialEq)]
pub struct FieldState {
    /// Stamp of the write.
    pub stamp: Stamp,
    /// The value, or `None` if the write unset it.
    pub value: Option<Value>,
}

/// The merged state of one record (see the module docs).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RecordState {
    /// Highest put or delete.
    pub reset: Option<Stamp>,
    /// Highest delete.
    pub deleted: Option<Stamp>,
    /// Highest put or patch.
    pub written: Option<Stamp>,
    /// Fields written at or above `reset`.
    pub fields: BTreeMap<String, FieldState>,
}

fn raise(slot: &mut Option<Stamp>, s: Stamp) {
    if slot.is_none_or(|old| s > old) {
        *slot = Some(s);
    }
}

impl RecordState {
    /// Whether the record exists (written above its last delete).
    pub fn exists(&self) -> bool {
        match (self.written, self.deleted) {
            (Some(w), Some(d)) => w > d,
            (Some(_), None) => true,
            _ => false,
        }
    }

    /// Whether the record was deleted and not written since (a tombstone).
    pub fn is_tombstone(&self) -> bool {
        self.deleted.is_some() && !self.exists()
    }

    /// The visible fields, or `None` if the record does not exist.
    pub fn visible(&self) -> Option<Fields> {
        if !self.exists() {
            return None;
        }
        Some(
            self.fields
                .iter()
                .filter_map(|(k, f)| f.value.as_ref().map(|v| (k.clone(), v.clone())))
                .collect(),
        )
    }

    /// Applies a record operation (put, patch or delete) with stamp `s`. Relations
    /// leave the record unchanged. Returns whether the state changed.
    pub fn apply(&mut self, s: Stamp, op: &Op) -> bool {
        let before = self.clone();
        match op {
            Op::Put { fields, .. } => {
                raise(&mut self.written, s);
                self.reset_at(s);
                for (k, v) in fields {
                    self.set(k, s, Some(v));
                }
            }
            Op::Patch { fields, .. } => {
                raise(&mut self.written, s);
                for (k, v) in fields {
                    self.set(k, s, v.as_ref());
                }
            }
            Op::Delete { .. } => {
                raise(&mut self.deleted, s);
                self.reset_at(s);
            }
            Op::Link { .. } | Op::Unlink { .. } => {}
        }
        *self != before
    }

    fn reset_at(&mut self, s: Stamp) {
        raise(&mut self.reset, s);
        if let Some(r) = self.reset {
            self.fields.retain(|_, f| f.stamp >= r);
        }
    }

    fn set(&mut self, name: &str, s: Stamp, v: Option<&Value>) {
        if self.reset.is_some_and(|r| s < r) {
            return;
        }
        match self.fields.get_mut(name) {
            Some(f) if f.stamp >= s => {}
            Some(f) => {
                f.stamp = s;
                f.value = v.cloned();
            }
            None => {
                self.fields.insert(
                    name.to_owned(),
                    FieldState {
                        stamp: s,
                        value: v.cloned(),
                    },
                );
            }
        }
    }

    /// The canonical encoding (stored in the view, hashed into the state root).
    ///
    /// Format: `u8 flags` (bit 0 `reset`, bit 1 `deleted`, bit 2 `written` present),
    /// the present stamps in that order, `u16 LE` field count, then per field in name
    /// order: `u8 name length, name, stamp, value` where the value is `0xFF` if unset.
    pub fn encode(&self) -> Result<Vec<u8>, ValueError> {
        let mut out = Vec::with_capacity(64 + self.fields.len() * 64);
        let flags = u8::from(self.reset.is_some())
            | u8::from(self.deleted.is_some()) << 1
            | u8::from(self.written.is_some()) << 2;
        out.push(flags);
        for s in [self.reset, self.deleted, self.written]
            .into_iter()
            .flatten()
        {
            out.extend_from_slice(&s.encode());
        }
        let n = u16::try_from(self.fields.len()).map_err(|_| ValueError::TooLarge)?;
        out.extend_from_slice(&n.to_le_bytes());
        for (k, f) in &self.fields {
            let kl = u8::try_from(k.len()).map_err(|_| ValueError::TooLarge)?;
            out.push(kl);
            out.extend_from_slice(k.as_bytes());
            out.extend_from_slice(&f.stamp.encode());
            match &f.value {
                Some(v) => v.encode_into(&mut out)?,
                None => out.push(0xFF),
            }
        }
        Ok(out)
    }

    /// Decodes [`RecordState::encode`]'s output; anything else is an error.
    pub fn decode(bytes: &[u8]) -> Result<RecordState, ValueError> {
        let mut r = Reader::new(bytes);
        let at = r.pos();
        let flags = r.u8()?;
        if flags > 7 {
            return Err(ValueError::UnknownTag { tag: flags, at });
        }
        let mut st = RecordState::default();
        if flags & 1 != 0 {
            st.reset = Some(Stamp::read(&mut r)?);
        }
        if flags & 2 != 0 {
            st.deleted = Some(Stamp::read(&mut r)?);
        }
        if flags & 4 != 0 {
            st.written = Some(Stamp::read(&mut r)?);
        }
        let n = u16::from_le_bytes(r.array()?);
        for _ in 0..n {
            let kat = r.pos();
            let kl = r.u8()? as usize;
            let k = std::str::from_utf8(r.take(kl)?).map_err(|_| ValueError::Utf8 { at: kat })?;
            if st
                .fields
                .last_key_value()
                .is_some_and(|(p, _)| p.as_str() >= k)
            {
                return Err(ValueError::MapOrder { at: kat });
            }
            let stamp = Stamp::read(&mut r)?;
            let value = if r.peek() == Some(0xFF) {
                r.u8()?;
                None
            } else {
                Some(Value::read(&mut r)?)
            };
            st.fields.insert(k.to_owned(), FieldState { stamp, value });
        }
        if r.remaining() != 0 {
            return Err(ValueError::Trailing {
                extra: r.remaining(),
            });
        }
        Ok(st)
    }
}

/// The state of one relation `from -rel-> to`: its highest link or unlink.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EdgeState {
    /// Stamp of the highest link or unlink.
    pub stamp: Stamp,
    /// Whether that was a link.
    pub linked: bool,
}

/// Encoded length of an [`EdgeState`].
pub const EDGE_STATE_LEN: usize = STAMP_LEN + 1;

impl EdgeState {
    /// Merges a link (`linked`) or unlink with stamp `s`; returns whether it changed.
    pub fn apply(slot: &mut Option<EdgeState>, s: Stamp, linked: bool) -> bool {
        if slot.is_some_and(|e| e.stamp >= s) {
            return false;
        }
        *slot = Some(EdgeState { stamp: s, linked });
        true
    }

    /// Whether the relation is visible given the highest deletes of its two ends.
    pub fn visible(&self, from_deleted: Option<Stamp>, to_deleted: Option<Stamp>) -> bool {
        self.linked
            && from_deleted.is_none_or(|d| self.stamp > d)
            && to_deleted.is_none_or(|d| self.stamp > d)
    }

    /// Format: `stamp [48] | linked u8 (0 or 1)`.
    pub fn encode(&self) -> [u8; EDGE_STATE_LEN] {
        let mut out = [0u8; EDGE_STATE_LEN];
        out[..STAMP_LEN].copy_from_slice(&self.stamp.encode());
        out[STAMP_LEN] = u8::from(self.linked);
        out
    }

    /// Decodes [`EdgeState::encode`]'s output.
    pub fn decode(b: &[u8]) -> Result<EdgeState, ValueError> {
        let b: &[u8; EDGE_STATE_LEN] = b.try_into().map_err(|_| ValueError::Length {
            len: b.len() as u64,
            at: 0,
            remaining: EDGE_STATE_LEN,
        })?;
        let mut s = [0u8; STAMP_LEN];
        s.copy_from_slice(&b[..STAMP_LEN]);
        let linked = match b[STAMP_LEN] {
            0 => false,
            1 => true,
            tag => {
                return Err(ValueError::UnknownTag { tag, at: STAMP_LEN });
            }
        };
        Ok(EdgeState {
            stamp: Stamp::decode(&s),
            linked,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::op::RecordRef;
    use proptest::prelude::*;

    fn st(hlc: u64) -> Stamp {
        Stamp {
            hlc,
            author: [1; 32],
            seq: hlc,
        }
    }

    fn put(fields: &[(&str, i64)]) -> Op {
        Op::Put {
            record: RecordRef::new("c", "k"),
            fields: fields
                .iter()
                .map(|(k, v)| (k.to_string(), Value::Int(*v)))
                .collect(),
        }
    }

    fn patch(fields: &[(&str, Option<i64>)]) -> Op {
        Op::Patch {
            record: RecordRef::new("c", "k"),
            fields: fields
                .iter()
                .map(|(k, v)| (k.to_string(), v.map(Value::Int)))
                .collect(),
        }
    }

    fn del() -> Op {
        Op::Delete {
            record: RecordRef::new("c", "k"),
        }
    }

    fn fields(s: &RecordState) -> Option<Vec<(String, i64)>> {
        s.visible().map(|f| {
            f.into_iter()
                .map(|(k, v)| match v {
                    Value::Int(i) => (k, i),
                    other => panic!("{other:?}"),
                })
                .collect()
        })
    }

    #[test]
    fn put_replaces_patch_merges() {
        let mut s = RecordState::default();
        s.apply(st(1), &put(&[("a", 1), ("b", 2)]));
        s.apply(st(2), &patch(&[("b", Some(3)), ("c", Some(4))]));
        assert_eq!(
            fields(&s),
            Some(vec![("a".into(), 1), ("b".into(), 3), ("c".into(), 4)])
        );
        s.apply(st(3), &put(&[("z", 9)]));
        assert_eq!(fields(&s), Some(vec![("z".into(), 9)]));
        s.apply(st(4), &patch(&[("z", None)]));
        assert_eq!(fields(&s), Some(vec![]));
    }

    #[test]
    fn delete_versus_concurrent_writes() {
        // Patch ordered after the delete: the record is back with only that field.
        let mut a = RecordState::default();
        a.apply(st(1), &put(&[("a", 1), ("b", 2)]));
        a.apply(st(5), &patch(&[("b", Some(7))]));
        a.apply(st(3), &del());
        assert_eq!(fields(&a), Some(vec![("b".into(), 7)]));
        // Put ordered before the delete, arriving after it: stays deleted.
        let mut b = RecordState::default();
        b.apply(st(3), &del());
        b.apply(st(2), &put(&[("a", 1)]));
        assert_eq!(fields(&b), None);
        assert!(b.is_tombstone());
        // A field written before a later put is gone even if it arrives last.
        let mut c = RecordState::default();
        c.apply(st(4), &put(&[("x", 1)]));
        c.apply(st(2), &patch(&[("y", Some(2))]));
        assert_eq!(fields(&c), Some(vec![("x".into(), 1)]));
    }

    #[test]
    fn edges_hide_before_deletes_of_either_end() {
        let mut e = None;
        assert!(EdgeState::apply(&mut e, st(2), true));
        assert!(!EdgeState::apply(&mut e, st(1), false));
        let e = e.unwrap();
        assert!(e.visible(None, None));
        assert!(!e.visible(Some(st(3)), None));
        assert!(!e.visible(None, Some(st(3))));
        assert!(e.visible(Some(st(1)), Some(st(1))));
        assert_eq!(EdgeState::decode(&e.encode()).unwrap(), e);
        assert!(EdgeState::decode(&[0; 10]).is_err());
    }

    proptest! {
        #[test]
        fn state_codec_round_trips(ops in proptest::collection::vec((0u64..20, crate::op::tests::arb_op()), 0..12)) {
            let mut s = RecordState::default();
            for (h, op) in &ops {
                s.apply(st(*h), op);
            }
            let bytes = s.encode().unwrap();
            prop_assert_eq!(RecordState::decode(&bytes).unwrap(), s);
        }

        #[test]
        fn state_decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..128)) {
            if let Ok(s) = RecordState::decode(&bytes) {
                prop_assert_eq!(s.encode().unwrap(), bytes);
            }
        }
    }
}
