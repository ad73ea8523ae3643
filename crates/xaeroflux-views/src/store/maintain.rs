//! The view thread: applies committed operations in batches, one write transaction
//! each, with the stream position in the same transaction.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use heed::RwTxn;
use xaeroflux::{CommittedEvent, GroupId, Subscription};

use super::changes::Slot;
use super::{Inner, Result, ViewError, meta_keys};
use crate::fold::Change;
use crate::keys::{edge_key, record_key};
use crate::op::Op;
use crate::record::{EdgeState, RecordState, Stamp};

/// How long the thread waits for a commit before re-checking its stop flag.
const POLL: Duration = Duration::from_millis(50);
/// Without operations to apply, the position is still saved after this many events,
/// so a reopen does not re-read a long run of other events.
const SAVE_POSITION_EVERY: u64 = 65_536;

/// Follows the committed stream until stopped or failed.
pub(super) fn run(inner: &Inner, mut sub: Subscription) {
    let mut saved = inner
        .progress
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .position;
    let mut batch: Vec<CommittedEvent> = Vec::with_capacity(inner.batch.min(4096));
    while !inner.stop.load(Ordering::Acquire) {
        let asked = Instant::now();
        let first = match sub.next_timeout(POLL) {
            Ok(e) => e,
            Err(e) => {
                fail(inner, &ViewError::Store(e));
                return;
            }
        };
        match first {
            Some(e) => batch.push(e),
            None if asked.elapsed() < POLL / 10 => {
                // A closed store answers at once; do not spin until the stop flag.
                std::thread::sleep(POLL / 5);
            }
            None => {}
        }
        // Gather more for up to `max_delay`: one transaction (and its fsync) per
        // window rather than per event when the views keep up with the writer.
        let opened = Instant::now();
        while !batch.is_empty() && batch.len() < inner.batch {
            let left = inner.max_delay.saturating_sub(opened.elapsed());
            let next = if left.is_zero() {
                sub.try_next()
            } else {
                sub.next_timeout(left)
            };
            match next {
                Ok(Some(e)) => batch.push(e),
                Ok(None) => break,
                Err(e) => {
                    fail(inner, &ViewError::Store(e));
                    return;
                }
            }
        }
        let position = sub.position();
        if !batch.is_empty() || position >= saved + SAVE_POSITION_EVERY {
            match apply_batch(inner, &batch, position) {
                Ok((applied, skipped)) => {
                    let mut p = inner.progress.lock().unwrap_or_else(|e| e.into_inner());
                    p.applied += applied;
                    p.skipped += skipped;
                }
                Err(e) => {
                    fail(inner, &e);
                    return;
                }
            }
            saved = position;
            batch.clear();
        }
        let mut p = inner.progress.lock().unwrap_or_else(|e| e.into_inner());
        if p.position != position {
            p.position = position;
            inner.moved.notify_all();
        }
    }
    let mut p = inner.progress.lock().unwrap_or_else(|e| e.into_inner());
    p.stopped = true;
    inner.moved.notify_all();
}

fn fail(inner: &Inner, e: &ViewError) {
    tracing::error!(error = %e, "view thread stopped");
    let mut p = inner.progress.lock().unwrap_or_else(|e| e.into_inner());
    p.error = Some(format!("{e}: {}", source_chain(e)));
    p.stopped = true;
    inner.moved.notify_all();
}

fn source_chain(e: &dyn std::error::Error) -> String {
    let mut out = String::new();
    let mut cur = e.source();
    while let Some(s) = cur {
        out.push_str(&s.to_string());
        out.push_str("; ");
        cur = s.source();
    }
    out
}

/// Applies `batch` and records `position` in one transaction, then publishes the
/// changes. The subscriber list is locked throughout, so a new subscriber's replay
/// sees either none or all of the batch, and then exactly the changes after it.
fn apply_batch(inner: &Inner, batch: &[CommittedEvent], position: u64) -> Result<(u64, u64)> {
    let mut subs = inner.subs.lock().unwrap_or_else(|e| e.into_inner());
    let mut wtxn = inner.env.write_txn()?;
    let mut changes: Vec<(GroupId, Change)> = Vec::new();
    let (mut applied, mut skipped) = (0, 0);
    for e in batch {
        let h = &e.event.header;
        // Encrypted groups: fold the plaintext (a node without the epoch key skips the
        // operation, as a malformed one).
        let payload = match inner.store.plaintext(&e.event) {
            Ok(p) => p,
            Err(err) => {
                tracing::debug!(local_seq = e.local_seq, error = %err, "skipping a record operation that does not open");
                skipped += 1;
                continue;
            }
        };
        let op = match Op::decode(&payload) {
            Ok(op) => op,
            Err(err) => {
                tracing::debug!(local_seq = e.local_seq, error = %err, "skipping a malformed record operation");
                skipped += 1;
                continue;
            }
        };
        let stamp = Stamp {
            hlc: h.hlc.as_u64(),
            author: h.author.0,
            seq: h.seq,
        };
        let watched = subs.iter().any(|s| s.wants(&h.group, op.record()));
        if let Some(c) = apply_op(inner, &mut wtxn, &h.group, stamp, &op, &payload, watched)? {
            changes.push((h.group, c));
        }
        applied += 1;
    }
    let t = &inner.t;
    t.meta
        .put(&mut wtxn, meta_keys::POSITION, &position.to_be_bytes())?;
    if let Some(last) = batch.last() {
        let mut v = [0u8; 40];
        v[..8].copy_from_slice(&last.local_seq.to_be_bytes());
        v[8..].copy_from_slice(&last.id.0);
        t.meta.put(&mut wtxn, meta_keys::LAST, &v)?;
    }
    wtxn.commit()?;
    if !changes.is_empty() {
        Slot::publish(&mut subs, &changes);
    }
    Ok((applied, skipped))
}

pub(crate) fn group_key(group: &GroupId, key: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(32 + key.len() + super::super::record::STAMP_LEN);
    k.extend_from_slice(group.as_bytes());
    k.extend_from_slice(key);
    k
}

pub(crate) fn read_record(
    inner: &Inner,
    txn: &heed::RoTxn<'_, heed::WithoutTls>,
    key: &[u8],
) -> Result<Option<RecordState>> {
    match inner.t.records.get(txn, key)? {
        Some(b) => RecordState::decode(b)
            .map(Some)
            .map_err(|e| ViewError::Corrupt {
                table: "records",
                reason: e.to_string(),
            }),
        None => Ok(None),
    }
}

/// Applies one operation; returns the visible change if `watched`.
fn apply_op(
    inner: &Inner,
    wtxn: &mut RwTxn<'_>,
    group: &GroupId,
    stamp: Stamp,
    op: &Op,
    payload: &[u8],
    watched: bool,
) -> Result<Option<Change>> {
    let t = &inner.t;
    if inner.history {
        let mut hk = group_key(group, &record_key(op.record()));
        hk.extend_from_slice(&stamp.encode());
        t.history.put(wtxn, &hk, payload)?;
    }
    match op {
        Op::Link { from, rel, to } | Op::Unlink { from, rel, to } => {
            let k = group_key(group, &edge_key(from, rel, to));
            let mut cur = match t.edges.get(wtxn, &k)? {
                Some(b) => Some(EdgeState::decode(b).map_err(|e| ViewError::Corrupt {
                    table: "edges",
                    reason: e.to_string(),
                })?),
                None => None,
            };
            let fresh = cur.is_none();
            if EdgeState::apply(&mut cur, stamp, matches!(op, Op::Link { .. }))
                && let Some(e) = cur
            {
                t.edges.put(wtxn, &k, &e.encode())?;
                if fresh {
                    t.edges_in
                        .put(wtxn, &group_key(group, &edge_key(to, rel, from)), &[])?;
                }
            }
            Ok(None)
        }
        _ => {
            let record = op.record();
            let k = group_key(group, &record_key(record));
            let mut st = read_record(inner, wtxn, &k)?.unwrap_or_default();
            let old = watched.then(|| st.visible()).flatten();
            if !st.apply(stamp, op) {
                return Ok(None);
            }
            t.records.put(wtxn, &k, &st.encode()?)?;
            if !watched {
                return Ok(None);
            }
            let new = st.visible();
            Ok((old != new).then(|| Change {
                record: record.clone(),
                old,
                new,
                stamp: Some(stamp),
            }))
        }
    }
}
