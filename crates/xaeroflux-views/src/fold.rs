//! The pure fold: operations in, state and changes out, no I/O.
//!
//! [`State`] is one group's view in memory. The LMDB views apply the same
//! [`RecordState`] and [`EdgeState`] rules to their tables, and compute the same root;
//! this type is what the order-independence property tests drive, and a reference for
//! the views on disk.

use std::collections::BTreeMap;

use crate::keys::{edge_key, record_key, scan_prefix, split_edge};
use crate::op::{Fields, Op, RecordRef};
use crate::record::{EdgeState, RecordState, Stamp};
use crate::root::{EDGE_LEAF, RECORD_LEAF, RootBuilder, leaf};
use crate::value::ValueError;

/// How a record's visible value changed.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    /// The record.
    pub record: RecordRef,
    /// Its fields before (`None`: did not exist).
    pub old: Option<Fields>,
    /// Its fields after (`None`: deleted or never existed).
    pub new: Option<Fields>,
    /// Stamp of the operation that caused the change (`None` for replayed state).
    pub stamp: Option<Stamp>,
}

/// A relation as seen from one of its ends.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Link {
    /// The relation name.
    pub rel: String,
    /// The record at the other end.
    pub other: RecordRef,
}

/// One group's view in memory (see the module docs).
#[derive(Debug, Clone, Default)]
pub struct State {
    records: BTreeMap<Vec<u8>, RecordState>,
    /// Forward relation key -> state.
    edges: BTreeMap<Vec<u8>, EdgeState>,
}

impl State {
    /// An empty view.
    pub fn new() -> Self {
        State::default()
    }

    /// Applies `op` with stamp `s`; returns the change of the record's visible value,
    /// if any. Relations change no record value.
    pub fn apply(&mut self, s: Stamp, op: &Op) -> Option<Change> {
        match op {
            Op::Link { from, rel, to } | Op::Unlink { from, rel, to } => {
                let key = edge_key(from, rel, to);
                let mut cur = self.edges.get(&key).copied();
                if EdgeState::apply(&mut cur, s, matches!(op, Op::Link { .. }))
                    && let Some(e) = cur
                {
                    self.edges.insert(key, e);
                }
                None
            }
            _ => {
                let record = op.record();
                let st = self.records.entry(record_key(record)).or_default();
                let old = st.visible();
                st.apply(s, op);
                let new = st.visible();
                (old != new).then(|| Change {
                    record: record.clone(),
                    old,
                    new,
                    stamp: Some(s),
                })
            }
        }
    }

    /// The record's visible fields (`None` if it does not exist).
    pub fn get(&self, r: &RecordRef) -> Option<Fields> {
        self.records.get(&record_key(r))?.visible()
    }

    /// The merged state of a record (including deletes), if any operation touched it.
    pub fn record_state(&self, r: &RecordRef) -> Option<&RecordState> {
        self.records.get(&record_key(r))
    }

    /// Existing records of `collection` whose key starts with `prefix`, in key order.
    pub fn scan(&self, collection: &str, prefix: &str) -> Vec<(String, Fields)> {
        let p = scan_prefix(collection, prefix);
        self.records
            .range(p.clone()..)
            .take_while(|(k, _)| k.starts_with(&p))
            .filter_map(|(k, st)| {
                let (r, _) = crate::keys::take_ref(k)?;
                Some((r.key, st.visible()?))
            })
            .collect()
    }

    fn deleted(&self, r: &RecordRef) -> Option<Stamp> {
        self.records.get(&record_key(r)).and_then(|s| s.deleted)
    }

    /// Visible relations out of `r`, in (relation, target) order.
    pub fn links_from(&self, r: &RecordRef) -> Vec<Link> {
        let p = record_key(r);
        self.edges
            .range(p.clone()..)
            .take_while(|(k, _)| k.starts_with(&p))
            .filter_map(|(k, e)| {
                let (from, rel, to) = split_edge(k)?;
                e.visible(self.deleted(&from), self.deleted(&to))
                    .then_some(Link { rel, other: to })
            })
            .collect()
    }

    /// Visible relations into `r`, in (relation, source) order.
    pub fn links_to(&self, r: &RecordRef) -> Vec<Link> {
        let mut out: Vec<Link> = self
            .edges
            .iter()
            .filter_map(|(k, e)| {
                let (from, rel, to) = split_edge(k)?;
                (to == *r && e.visible(self.deleted(&from), self.deleted(&to)))
                    .then_some(Link { rel, other: from })
            })
            .collect();
        out.sort();
        out
    }

    /// The state root (see `root`).
    pub fn root(&self) -> Result<[u8; 32], ValueError> {
        let mut b = RootBuilder::default();
        for (k, st) in &self.records {
            b.push(leaf(RECORD_LEAF, k, &st.encode()?));
        }
        for (k, e) in &self.edges {
            b.push(leaf(EDGE_LEAF, k, &e.encode()));
        }
        Ok(b.finish())
    }
}
