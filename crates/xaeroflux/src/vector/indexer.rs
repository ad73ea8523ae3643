//! The indexer thread and loading of the index file.

use std::collections::BTreeMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use xaeroflux_vector::{HnswIndex, HnswParams};

use super::{IndexLoad, Inner, VectorProgress, index_err};
use xaeroflux_store::Result;
use xaeroflux_store::Snapshot;
use xaeroflux_store::{CommittedEvent, Subscription};

/// How long the indexer waits for a commit before re-checking its stop flag.
const POLL: Duration = Duration::from_millis(50);
/// Catch-up progress is reported at most every this many positions.
const PROGRESS_STEP: u64 = 256;

/// Loads the index file if it is usable for `params` and a store whose committed
/// position is `committed`; otherwise an empty index and the reason.
pub(super) fn load(
    path: &Path,
    params: &HnswParams,
    committed: u64,
) -> Result<(HnswIndex, u64, IndexLoad)> {
    let reason = match HnswIndex::load(path) {
        Ok((index, position)) => match index.params() {
            Ok(p) if same_shape(&p, params) && position <= committed => {
                return Ok((index, position, IndexLoad::Loaded));
            }
            _ => IndexLoad::Mismatch,
        },
        Err(xaeroflux_vector::Error::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => {
            IndexLoad::Missing
        }
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "vector index unusable, rebuilding");
            IndexLoad::Corrupt
        }
    };
    let index = HnswIndex::new(params.clone()).map_err(index_err)?;
    Ok((index, 0, reason))
}

/// Equal in everything but the capacity hint. The seed carries the fingerprint of the
/// config and the registered types.
fn same_shape(a: &HnswParams, b: &HnswParams) -> bool {
    a.dimension == b.dimension
        && a.metric == b.metric
        && a.max_connections == b.max_connections
        && a.max_layer == b.max_layer
        && a.ef_construction == b.ef_construction
        && a.seed == b.seed
}

/// Vectors per type of a loaded index covering positions below `position`.
pub(super) fn count_per_type(
    snap: &Snapshot<'_>,
    index: &HnswIndex,
    types: &[u32],
    position: u64,
) -> Result<BTreeMap<u32, u64>> {
    let mut out = BTreeMap::new();
    for item in snap.since(0)? {
        let se = item?;
        if se.local_seq >= position {
            break;
        }
        let t = se.event.header.event_type;
        if types.contains(&t) && index.contains(se.local_seq) {
            *out.entry(t).or_insert(0) += 1;
        }
    }
    Ok(out)
}

/// The indexer thread: follows the committed stream until stopped. `target` is the
/// committed position at start, where the catch-up ends.
pub(super) fn run(inner: &Inner, mut sub: Subscription, target: u64) {
    let start = inner.position.load(Ordering::Acquire);
    let report = |position: u64| {
        if let Some(f) = &inner.cfg.on_progress {
            f(VectorProgress {
                position: position.min(target),
                target,
                load: inner.load,
            });
        }
    };
    let mut catching_up = start < target;
    if catching_up {
        report(start);
    }
    let mut reported = start;
    let mut unsaved = 0u64;
    let mut last_save = Instant::now();
    while !inner.stop.load(Ordering::Acquire) {
        let asked = Instant::now();
        match sub.next_timeout(POLL) {
            Ok(Some(e)) => index_event(inner, &e),
            Ok(None) => {
                // A closed store answers at once; do not spin until the stop flag.
                if asked.elapsed() < POLL / 10 {
                    std::thread::sleep(POLL / 5);
                }
            }
            Err(e) => {
                inner.set_error(&e);
                std::thread::sleep(POLL * 4);
                continue;
            }
        }
        let position = sub.position();
        let old = inner.position.swap(position, Ordering::AcqRel);
        unsaved += position.saturating_sub(old);
        if catching_up && (position >= target || position - reported >= PROGRESS_STEP) {
            report(position);
            reported = position;
            catching_up = position < target;
        }
        let due = unsaved >= inner.cfg.persist_every
            || (unsaved > 0 && last_save.elapsed() >= inner.cfg.persist_interval);
        if due {
            match inner.persist_if_advanced() {
                Ok(()) => {
                    unsaved = 0;
                    last_save = Instant::now();
                }
                Err(e) => {
                    inner.set_error(&e);
                    // Retry after another interval rather than after every event.
                    last_save = Instant::now();
                    unsaved = 0;
                }
            }
        }
    }
}

/// Extracts and inserts one event; anything unusable is counted as skipped.
fn index_event(inner: &Inner, e: &CommittedEvent) {
    let event_type = e.event.header.event_type;
    let Some(extractor) = inner.extractors.get(&event_type) else {
        return;
    };
    // Encrypted groups: extract from the plaintext; an event this node cannot open
    // (no key for its epoch) is skipped.
    let Ok(plain) = inner.ring.plaintext(&e.event) else {
        inner.skipped.fetch_add(1, Ordering::Relaxed);
        return;
    };
    let vector = catch_unwind(AssertUnwindSafe(|| extractor.extract_vector(&plain)));
    let Ok(Some(vector)) = vector else {
        inner.skipped.fetch_add(1, Ordering::Relaxed);
        return;
    };
    match inner.index.insert(e.local_seq, &vector) {
        Ok(()) => {
            *inner
                .per_type
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .entry(event_type)
                .or_insert(0) += 1;
        }
        // Positions only move forward, so this cannot happen; nothing to do if it did.
        Err(xaeroflux_vector::Error::DuplicateKey { .. }) => {}
        Err(
            xaeroflux_vector::Error::DimensionMismatch { .. }
            | xaeroflux_vector::Error::NonFinite { .. }
            | xaeroflux_vector::Error::ZeroVector,
        ) => {
            inner.skipped.fetch_add(1, Ordering::Relaxed);
        }
        Err(other) => {
            inner.set_error(&other);
            inner.skipped.fetch_add(1, Ordering::Relaxed);
        }
    }
}
