//! Queries on the views: records, scans, relations, the past, the state root.

use heed::{RoTxn, WithoutTls};
use xaeroflux::{GroupId, Hlc};

use super::maintain::{group_key, read_record};
use super::{Inner, Result, ViewError, Views};
use crate::fold::Link;
use crate::keys::{record_key, scan_prefix, split_edge, take_ref};
use crate::op::{Fields, Op, RecordRef};
use crate::record::{EdgeState, RecordState, STAMP_LEN, Stamp};
use crate::root::{EDGE_LEAF, RECORD_LEAF, RootBuilder, leaf};

type Txn<'a> = RoTxn<'a, WithoutTls>;

fn corrupt(table: &'static str, reason: impl Into<String>) -> ViewError {
    ViewError::Corrupt {
        table,
        reason: reason.into(),
    }
}

impl Inner {
    fn deleted(&self, txn: &Txn<'_>, group: &GroupId, r: &RecordRef) -> Result<Option<Stamp>> {
        Ok(read_record(self, txn, &group_key(group, &record_key(r)))?.and_then(|s| s.deleted))
    }

    fn edge_visible(
        &self,
        txn: &Txn<'_>,
        group: &GroupId,
        from: &RecordRef,
        to: &RecordRef,
        e: &EdgeState,
    ) -> Result<bool> {
        Ok(e.linked
            && e.visible(
                self.deleted(txn, group, from)?,
                self.deleted(txn, group, to)?,
            ))
    }
}

impl Views {
    fn txn(&self) -> Result<Txn<'_>> {
        Ok(self.inner.env.read_txn()?)
    }

    /// The record's fields, or `None` if it does not exist (never written, or deleted).
    pub fn get(&self, group: &GroupId, record: impl Into<RecordRef>) -> Result<Option<Fields>> {
        Ok(self.record_state(group, record)?.and_then(|s| s.visible()))
    }

    /// The merged state of a record (with its stamps and delete), if any operation
    /// touched it.
    pub fn record_state(
        &self,
        group: &GroupId,
        record: impl Into<RecordRef>,
    ) -> Result<Option<RecordState>> {
        let txn = self.txn()?;
        read_record(
            &self.inner,
            &txn,
            &group_key(group, &record_key(&record.into())),
        )
    }

    /// Existing records of `collection` whose key starts with `prefix` (`""`: all), in
    /// key order.
    pub fn scan(
        &self,
        group: &GroupId,
        collection: &str,
        prefix: &str,
    ) -> Result<Vec<(String, Fields)>> {
        self.scan_after(group, collection, prefix, None, usize::MAX)
    }

    /// A page of [`Views::scan`]: at most `limit` records with keys after `after`.
    pub fn scan_after(
        &self,
        group: &GroupId,
        collection: &str,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, Fields)>> {
        let txn = self.txn()?;
        let p = group_key(group, &scan_prefix(collection, prefix));
        let mut out = Vec::new();
        for item in self.inner.t.records.prefix_iter(&txn, &p)? {
            if out.len() >= limit {
                break;
            }
            let (k, v) = item?;
            let (r, _) = take_ref(&k[32..]).ok_or_else(|| corrupt("records", "bad key"))?;
            if after.is_some_and(|a| r.key.as_str() <= a) {
                continue;
            }
            let st = RecordState::decode(v).map_err(|e| corrupt("records", e.to_string()))?;
            if let Some(f) = st.visible() {
                out.push((r.key, f));
            }
        }
        Ok(out)
    }

    /// Visible relations out of `record`, in (relation, target) order.
    pub fn links_from(&self, group: &GroupId, record: impl Into<RecordRef>) -> Result<Vec<Link>> {
        let txn = self.txn()?;
        let from = record.into();
        let p = group_key(group, &record_key(&from));
        let mut out = Vec::new();
        for item in self.inner.t.edges.prefix_iter(&txn, &p)? {
            let (k, v) = item?;
            let (_, rel, to) = split_edge(&k[32..]).ok_or_else(|| corrupt("edges", "bad key"))?;
            let e = EdgeState::decode(v).map_err(|e| corrupt("edges", e.to_string()))?;
            if self.inner.edge_visible(&txn, group, &from, &to, &e)? {
                out.push(Link { rel, other: to });
            }
        }
        Ok(out)
    }

    /// Visible relations into `record`, in (relation, source) order.
    pub fn links_to(&self, group: &GroupId, record: impl Into<RecordRef>) -> Result<Vec<Link>> {
        let txn = self.txn()?;
        let to = record.into();
        let p = group_key(group, &record_key(&to));
        let mut out = Vec::new();
        for item in self.inner.t.edges_in.prefix_iter(&txn, &p)? {
            let (k, _) = item?;
            let (_, rel, from) =
                split_edge(&k[32..]).ok_or_else(|| corrupt("edges_in", "bad key"))?;
            let fk = group_key(group, &crate::keys::edge_key(&from, &rel, &to));
            let v = self
                .inner
                .t
                .edges
                .get(&txn, &fk)?
                .ok_or_else(|| corrupt("edges_in", "no forward relation"))?;
            let e = EdgeState::decode(v).map_err(|e| corrupt("edges", e.to_string()))?;
            if self.inner.edge_visible(&txn, group, &from, &to, &e)? {
                out.push(Link { rel, other: from });
            }
        }
        Ok(out)
    }

    fn history_fold(
        &self,
        txn: &Txn<'_>,
        prefix: &[u8],
        at: Hlc,
        mut each: impl FnMut(RecordRef, RecordState) -> Result<bool>,
    ) -> Result<()> {
        if !self.inner.history {
            return Err(ViewError::HistoryOff);
        }
        let mut cur: Option<(Vec<u8>, RecordRef, RecordState)> = None;
        for item in self.inner.t.history.prefix_iter(txn, prefix)? {
            let (k, v) = item?;
            let body = k
                .get(32..k.len().saturating_sub(STAMP_LEN))
                .ok_or_else(|| corrupt("history", "short key"))?;
            let stamp_bytes: &[u8; STAMP_LEN] = k[k.len() - STAMP_LEN..]
                .try_into()
                .map_err(|_| corrupt("history", "short key"))?;
            let stamp = Stamp::decode(stamp_bytes);
            if cur.as_ref().is_none_or(|(ck, _, _)| ck.as_slice() != body) {
                if let Some((_, r, st)) = cur.take()
                    && !each(r, st)?
                {
                    return Ok(());
                }
                let (r, rest) = take_ref(body).ok_or_else(|| corrupt("history", "bad key"))?;
                if !rest.is_empty() {
                    return Err(corrupt("history", "bad key"));
                }
                cur = Some((body.to_vec(), r, RecordState::default()));
            }
            // Stamps sort by HLC first, so the rest of this record is later still.
            if stamp.hlc > at.as_u64() {
                continue;
            }
            let op = Op::decode(v).map_err(|e| corrupt("history", e.to_string()))?;
            if let Some((_, _, st)) = cur.as_mut() {
                st.apply(stamp, &op);
            }
        }
        if let Some((_, r, st)) = cur {
            each(r, st)?;
        }
        Ok(())
    }

    /// The record's fields as of `at`: the fold of its operations with `hlc <= at`.
    /// Needs [`ViewsConfig::history`](super::ViewsConfig::history).
    pub fn get_as_of(
        &self,
        group: &GroupId,
        record: impl Into<RecordRef>,
        at: Hlc,
    ) -> Result<Option<Fields>> {
        let txn = self.txn()?;
        let mut out = None;
        self.history_fold(
            &txn,
            &group_key(group, &record_key(&record.into())),
            at,
            |_, st| {
                out = st.visible();
                Ok(false)
            },
        )?;
        Ok(out)
    }

    /// [`Views::scan`] as of `at`.
    pub fn scan_as_of(
        &self,
        group: &GroupId,
        collection: &str,
        prefix: &str,
        at: Hlc,
    ) -> Result<Vec<(String, Fields)>> {
        let txn = self.txn()?;
        let mut out = Vec::new();
        self.history_fold(
            &txn,
            &group_key(group, &scan_prefix(collection, prefix)),
            at,
            |r, st| {
                if let Some(f) = st.visible() {
                    out.push((r.key, f));
                }
                Ok(true)
            },
        )?;
        Ok(out)
    }

    /// The state root of `group`'s view (see `docs/FORMAT.md`): equal on every peer
    /// holding the same operations. One ordered scan of the group's view.
    pub fn state_root(&self, group: &GroupId) -> Result<[u8; 32]> {
        let txn = self.txn()?;
        let mut b = RootBuilder::default();
        for item in self.inner.t.records.prefix_iter(&txn, group.as_bytes())? {
            let (k, v) = item?;
            b.push(leaf(RECORD_LEAF, &k[32..], v));
        }
        for item in self.inner.t.edges.prefix_iter(&txn, group.as_bytes())? {
            let (k, v) = item?;
            b.push(leaf(EDGE_LEAF, &k[32..], v));
        }
        Ok(b.finish())
    }
}
