//! Garbage-collection bookkeeping: which blobs to drop, with a grace period.
//!
//! A blob becomes a candidate when a collection pass sees it unreferenced (the caller
//! supplies the referenced set, e.g. [`crate::GroupAccess::referenced`]); it is dropped
//! by the first pass at least `grace` after that. A pass that sees it referenced again
//! forgets the candidate, so a referenced blob is never dropped. Time is passed in.
//! The candidate times live in memory: after a restart the grace period starts again,
//! which can only delay a deletion, never hasten it.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use crate::blob_ref::BlobHash;

/// Candidates for deletion and when each was first seen unreferenced.
#[derive(Debug, Default)]
pub struct GcState {
    since: HashMap<BlobHash, Duration>,
}

impl GcState {
    /// No candidates.
    pub fn new() -> Self {
        Self::default()
    }

    /// One pass at time `now` (any monotonic clock, e.g. since the Unix epoch) over the
    /// blobs `held`: returns those to delete now, and forgets them.
    pub fn pass(
        &mut self,
        now: Duration,
        grace: Duration,
        held: impl IntoIterator<Item = BlobHash>,
        referenced: &HashSet<BlobHash>,
    ) -> Vec<BlobHash> {
        let mut next = HashMap::new();
        let mut delete = Vec::new();
        for hash in held {
            if referenced.contains(&hash) {
                continue;
            }
            let since = self.since.get(&hash).copied().unwrap_or(now);
            if now.saturating_sub(since) >= grace {
                delete.push(hash);
            } else {
                next.insert(hash, since);
            }
        }
        self.since = next;
        delete.sort();
        delete
    }

    /// Number of blobs waiting out their grace period.
    pub fn pending(&self) -> usize {
        self.since.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unreferenced_goes_after_grace_referenced_never() {
        let (a, b) = (BlobHash([1; 32]), BlobHash([2; 32]));
        let grace = Duration::from_secs(60);
        let mut gc = GcState::new();
        let refs = HashSet::from([b]);
        let t = Duration::from_secs(1000);
        assert!(gc.pass(t, grace, [a, b], &refs).is_empty());
        assert_eq!(gc.pending(), 1);
        assert!(
            gc.pass(t + Duration::from_secs(59), grace, [a, b], &refs)
                .is_empty()
        );
        assert_eq!(gc.pass(t + grace, grace, [a, b], &refs), vec![a]);
        assert_eq!(gc.pending(), 0);
        assert!(gc.pass(t + grace * 100, grace, [b], &refs).is_empty());
    }

    #[test]
    fn referenced_again_restarts_the_grace_period() {
        let a = BlobHash([1; 32]);
        let grace = Duration::from_secs(10);
        let mut gc = GcState::new();
        let none = HashSet::new();
        gc.pass(Duration::ZERO, grace, [a], &none);
        gc.pass(Duration::from_secs(5), grace, [a], &HashSet::from([a]));
        assert!(
            gc.pass(Duration::from_secs(12), grace, [a], &none)
                .is_empty()
        );
        assert_eq!(gc.pass(Duration::from_secs(22), grace, [a], &none), vec![a]);
    }
}
