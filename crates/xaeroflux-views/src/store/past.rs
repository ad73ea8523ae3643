//! Relations as of a past HLC, from the history table.
//!
//! The history holds every operation on a record and every link/unlink out of it,
//! under the record's key and in stamp order (HLC first). Folding one record's history
//! up to an HLC therefore gives both its state (for its delete) and its outgoing
//! relations then; relations into a record are found through `edges_in`, which keeps
//! every relation ever made, and checked in the history of their source.

use std::collections::{BTreeMap, HashMap};

use heed::{RoTxn, WithoutTls};
use xaeroflux::{GroupId, Hlc};

use super::maintain::group_key;
use super::{Result, ViewError, Views};
use crate::fold::Link;
use crate::keys::{record_key, split_edge};
use crate::op::{Op, RecordRef};
use crate::record::{EdgeState, RecordState, STAMP_LEN, Stamp};

type Txn<'a> = RoTxn<'a, WithoutTls>;
type Edges = BTreeMap<(String, RecordRef), Option<EdgeState>>;

fn corrupt(reason: impl Into<String>) -> ViewError {
    ViewError::Corrupt {
        table: "history",
        reason: reason.into(),
    }
}

impl Views {
    /// One record's state and relations out of it, from its operations with
    /// `hlc <= at`.
    fn record_as_of(
        &self,
        txn: &Txn<'_>,
        group: &GroupId,
        r: &RecordRef,
        at: Hlc,
    ) -> Result<(RecordState, Edges)> {
        let inner = &self.inner;
        if !inner.history {
            return Err(ViewError::HistoryOff);
        }
        let mut state = RecordState::default();
        let mut edges = Edges::new();
        for item in inner
            .t
            .history
            .prefix_iter(txn, &group_key(group, &record_key(r)))?
        {
            let (k, v) = item?;
            let stamp: &[u8; STAMP_LEN] = k
                .get(k.len().saturating_sub(STAMP_LEN)..)
                .and_then(|s| s.try_into().ok())
                .ok_or_else(|| corrupt("short key"))?;
            let stamp = Stamp::decode(stamp);
            if stamp.hlc > at.as_u64() {
                // Stamps sort by HLC first: the rest is later still.
                break;
            }
            let op = Op::decode(v).map_err(|e| corrupt(e.to_string()))?;
            match &op {
                Op::Link { rel, to, .. } | Op::Unlink { rel, to, .. } => {
                    let slot = edges.entry((rel.clone(), to.clone())).or_default();
                    EdgeState::apply(slot, stamp, matches!(op, Op::Link { .. }));
                }
                _ => {
                    state.apply(stamp, &op);
                }
            }
        }
        Ok((state, edges))
    }

    /// The highest delete of `r` with `hlc <= at`, remembered in `seen`.
    fn deleted_as_of(
        &self,
        txn: &Txn<'_>,
        group: &GroupId,
        r: &RecordRef,
        at: Hlc,
        seen: &mut HashMap<RecordRef, Option<Stamp>>,
    ) -> Result<Option<Stamp>> {
        if let Some(d) = seen.get(r) {
            return Ok(*d);
        }
        let d = self.record_as_of(txn, group, r, at)?.0.deleted;
        seen.insert(r.clone(), d);
        Ok(d)
    }

    /// [`Views::links_from`] as of `at`: the relations out of `record` visible in the
    /// fold of the operations with `hlc <= at`. Needs
    /// [`ViewsConfig::history`](super::ViewsConfig::history).
    pub fn links_from_as_of(
        &self,
        group: &GroupId,
        record: impl Into<RecordRef>,
        at: Hlc,
    ) -> Result<Vec<Link>> {
        let txn = self.inner.env.read_txn()?;
        let from = record.into();
        let (state, edges) = self.record_as_of(&txn, group, &from, at)?;
        let mut seen = HashMap::from([(from.clone(), state.deleted)]);
        let mut out = Vec::new();
        for ((rel, to), e) in edges {
            let Some(e) = e else { continue };
            let to_deleted = self.deleted_as_of(&txn, group, &to, at, &mut seen)?;
            if e.visible(state.deleted, to_deleted) {
                out.push(Link { rel, other: to });
            }
        }
        Ok(out)
    }

    /// [`Views::links_to`] as of `at`: the relations into `record` visible in the fold
    /// of the operations with `hlc <= at`. Needs
    /// [`ViewsConfig::history`](super::ViewsConfig::history).
    pub fn links_to_as_of(
        &self,
        group: &GroupId,
        record: impl Into<RecordRef>,
        at: Hlc,
    ) -> Result<Vec<Link>> {
        let txn = self.inner.env.read_txn()?;
        let to = record.into();
        let mut seen = HashMap::new();
        let to_deleted = self.deleted_as_of(&txn, group, &to, at, &mut seen)?;
        let mut sources: HashMap<RecordRef, (RecordState, Edges)> = HashMap::new();
        let mut out = Vec::new();
        let prefix = group_key(group, &record_key(&to));
        for item in self.inner.t.edges_in.prefix_iter(&txn, &prefix)? {
            let (k, _) = item?;
            let (_, rel, from) =
                split_edge(k.get(32..).unwrap_or_default()).ok_or_else(|| ViewError::Corrupt {
                    table: "edges_in",
                    reason: "bad key".into(),
                })?;
            if !sources.contains_key(&from) {
                let folded = self.record_as_of(&txn, group, &from, at)?;
                sources.insert(from.clone(), folded);
            }
            let Some((state, edges)) = sources.get(&from) else {
                continue;
            };
            if let Some(Some(e)) = edges.get(&(rel.clone(), to.clone()))
                && e.visible(state.deleted, to_deleted)
            {
                out.push(Link { rel, other: from });
            }
        }
        Ok(out)
    }
}
