//! The view thread: imports committed document updates in batches, one write
//! transaction each, with the stream position in the same transaction, and folds a
//! document's updates into a snapshot every `snapshot_every` updates.

use std::collections::HashMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use heed::RwTxn;
use loro::{ExportMode, LoroDoc};
use xaeroflux::{CommittedEvent, Subscription};

use super::tables::{self, DocMeta, meta_keys};
use super::watch::{DocChange, Slot};
use super::{DocError, Inner, Result};
use crate::update::DocUpdate;

/// How long the thread waits for a commit before re-checking its stop flag.
const POLL: Duration = Duration::from_millis(50);
/// Without updates to apply, the position is still saved after this many events.
const SAVE_POSITION_EVERY: u64 = 65_536;
/// Loaded documents the thread keeps between batches (so a busy document is not
/// loaded from its snapshot for every batch).
const DOC_CACHE: usize = 32;

/// A loaded document and its counters, as of the last applied update.
struct Loaded {
    doc: LoroDoc,
    meta: DocMeta,
    /// Updates imported since the last snapshot. Not `meta.pending`: updates still
    /// waiting for dependencies stay stored after a snapshot, and must not make every
    /// following update take one.
    since_snapshot: u64,
}

type Cache = HashMap<Vec<u8>, Loaded>;

/// Follows the committed stream until stopped or failed.
pub(super) fn run(inner: &Inner, mut sub: Subscription) {
    let mut saved = inner
        .progress
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .position;
    // However the thread ends (even by a panic outside the caught loro calls),
    // waiters learn that it stopped.
    let _stopped = MarkStopped(inner);
    let mut cache = Cache::new();
    let mut batch: Vec<CommittedEvent> = Vec::with_capacity(inner.batch.min(1024));
    while !inner.stop.load(Ordering::Acquire) {
        let asked = Instant::now();
        match sub.next_timeout(POLL) {
            Ok(Some(e)) => batch.push(e),
            Ok(None) if asked.elapsed() < POLL / 10 => {
                // A closed store answers at once; do not spin until the stop flag.
                std::thread::sleep(POLL / 5);
            }
            Ok(None) => {}
            Err(e) => return fail(inner, &DocError::Store(e)),
        }
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
                Err(e) => return fail(inner, &DocError::Store(e)),
            }
        }
        let position = sub.position();
        if !batch.is_empty() || position >= saved + SAVE_POSITION_EVERY {
            match apply_batch(inner, &mut cache, &batch, position) {
                Ok(c) => {
                    let mut p = inner.progress.lock().unwrap_or_else(|e| e.into_inner());
                    p.applied += c.applied;
                    p.skipped += c.skipped;
                    p.snapshots += c.snapshots;
                }
                Err(e) => return fail(inner, &e),
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

struct MarkStopped<'a>(&'a Inner);

impl Drop for MarkStopped<'_> {
    fn drop(&mut self) {
        let mut p = self.0.progress.lock().unwrap_or_else(|e| e.into_inner());
        if std::thread::panicking() && p.error.is_none() {
            p.error = Some("the document view thread panicked".into());
        }
        p.stopped = true;
        self.0.moved.notify_all();
    }
}

fn fail(inner: &Inner, e: &DocError) {
    tracing::error!(error = %e, "document view stopped");
    let mut p = inner.progress.lock().unwrap_or_else(|e| e.into_inner());
    let mut reason = e.to_string();
    let mut cur = std::error::Error::source(e);
    while let Some(s) = cur {
        reason.push_str(": ");
        reason.push_str(&s.to_string());
        cur = s.source();
    }
    p.error = Some(reason);
    p.stopped = true;
    inner.moved.notify_all();
}

#[derive(Default)]
struct Counts {
    applied: u64,
    skipped: u64,
    snapshots: u64,
}

/// Applies `batch` and records `position` in one transaction, then tells the
/// subscribers. On failure the cache may hold updates of the aborted transaction, but
/// the thread stops, and a new one starts with an empty cache.
fn apply_batch(
    inner: &Inner,
    cache: &mut Cache,
    batch: &[CommittedEvent],
    position: u64,
) -> Result<Counts> {
    let mut subs = inner.subs.lock().unwrap_or_else(|e| e.into_inner());
    let mut wtxn = inner.env.write_txn()?;
    let t = &inner.t;
    let mut counts = Counts::default();
    let mut changes = Vec::new();
    for e in batch {
        let Ok(u) = DocUpdate::decode(&e.event.payload) else {
            tracing::debug!(
                local_seq = e.local_seq,
                "skipping a malformed document update"
            );
            counts.skipped += 1;
            continue;
        };
        let key = tables::doc_key(&e.event.header.group, u.doc);
        // loro parses bytes a peer wrote. It returns errors for what it detects; a
        // panic on input it does not is caught here, before anything of this update
        // was written, and the document is reloaded from the transaction next time.
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            apply_one(inner, &mut wtxn, cache, &key, u.update, e.local_seq)
        }));
        match outcome {
            Ok(Ok(Outcome::Applied { snapshot })) => {
                counts.applied += 1;
                counts.snapshots += u64::from(snapshot);
                changes.push(DocChange {
                    group: e.event.header.group,
                    doc: u.doc.to_owned(),
                    event: e.id,
                    author: e.event.header.author,
                });
            }
            Ok(Ok(Outcome::Refused)) => counts.skipped += 1,
            Ok(Err(err)) => return Err(err),
            Err(_) => {
                tracing::warn!(
                    local_seq = e.local_seq,
                    "loro panicked on a document update; skipped"
                );
                // loro's locks in that document are poisoned now, and dropping it
                // may panic again: drop it under the same guard.
                let _ = catch_unwind(AssertUnwindSafe(|| drop(cache.remove(&key))));
                counts.skipped += 1;
            }
        }
    }
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
    Ok(counts)
}

enum Outcome {
    Applied { snapshot: bool },
    Refused,
}

/// Imports one update into its document and stores it (or a new snapshot). Every loro
/// call comes before the first write, so a panic in loro leaves the transaction as it
/// was.
fn apply_one(
    inner: &Inner,
    wtxn: &mut RwTxn<'_>,
    cache: &mut Cache,
    key: &[u8],
    update: &[u8],
    local_seq: u64,
) -> Result<Outcome> {
    let t = &inner.t;
    // The header and checksum first: cheap, and refuses most damage before loro
    // parses the body.
    if let Err(err) = LoroDoc::decode_import_blob_meta(update, true) {
        tracing::debug!(local_seq, error = %err, "skipping a document update loro does not read");
        return Ok(Outcome::Refused);
    }
    if !cache.contains_key(key) {
        if cache.len() >= DOC_CACHE {
            cache.clear();
        }
        let doc = tables::load_doc(t, wtxn, key)?.unwrap_or_default();
        let meta = tables::read_meta(t, wtxn, key)?.unwrap_or_default();
        cache.insert(
            key.to_vec(),
            Loaded {
                doc,
                meta,
                since_snapshot: meta.pending,
            },
        );
    }
    let Some(loaded) = cache.get_mut(key) else {
        return Ok(Outcome::Refused);
    };
    if let Err(err) = loaded.doc.import(update) {
        tracing::debug!(local_seq, error = %err, "skipping a document update loro refused");
        return Ok(Outcome::Refused);
    }
    let row = tables::update_key(key, local_seq);
    let snapshot = loaded.since_snapshot + 1 >= u64::from(inner.snapshot_every);
    if snapshot {
        take_snapshot(t, wtxn, key, loaded, &row, update)?;
    } else {
        t.updates.put(wtxn, &row, update)?;
        loaded.meta.pending += 1;
        loaded.since_snapshot += 1;
    }
    loaded.meta.updates += 1;
    t.docs.put(wtxn, key, &loaded.meta.encode())?;
    Ok(Outcome::Applied { snapshot })
}

/// Stores a snapshot of the merged document (which holds the new update `update`,
/// stored as `row` only if the snapshot does not cover it) and drops the stored
/// updates it covers. An update whose dependencies have not arrived is not in the
/// document's history (loro keeps it aside), so it is not covered and stays, to be
/// imported again on load.
fn take_snapshot(
    t: &super::tables::Tables,
    wtxn: &mut RwTxn<'_>,
    key: &[u8],
    loaded: &mut Loaded,
    row: &[u8],
    update: &[u8],
) -> Result<()> {
    let bytes = loaded
        .doc
        .export(ExportMode::Snapshot)
        .map_err(|source| DocError::Export {
            doc: String::from_utf8_lossy(
                key.get(32..key.len().saturating_sub(1)).unwrap_or_default(),
            )
            .into_owned(),
            source,
        })?;
    let have = loaded.doc.oplog_vv();
    let covers = |u: &[u8]| -> Result<bool> {
        let end = LoroDoc::decode_import_blob_meta(u, false)
            .map_err(|e| tables::corrupt("updates", e.to_string()))?
            .partial_end_vv;
        Ok(have.includes_vv(&end))
    };
    let mut covered = Vec::new();
    let mut kept = 0u64;
    for r in t.updates.prefix_iter(wtxn, key)? {
        let (k, u) = r?;
        if covers(u)? {
            covered.push(k.to_vec());
        } else {
            kept += 1;
        }
    }
    let keep_new = !covers(update)?;
    // Writes only from here on.
    for k in covered {
        t.updates.delete(wtxn, &k)?;
    }
    if keep_new {
        t.updates.put(wtxn, row, update)?;
        kept += 1;
    }
    t.snapshots.put(wtxn, key, &bytes)?;
    loaded.meta.pending = kept;
    loaded.meta.snapshot_bytes = bytes.len() as u64;
    loaded.since_snapshot = 0;
    Ok(())
}
