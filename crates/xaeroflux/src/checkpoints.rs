//! Recording signed checkpoints from elsewhere, and fork evidence.
//!
//! Two valid signatures by one author over different roots for the same log length prove
//! that the author forked its log. Both are kept: the first in `checkpoints`, the
//! conflicting one in `forks`.

use xaeroflux_core::{AuthorId, CheckpointError, GroupId, SignedCheckpoint};
use xaeroid::XaeroID;

use crate::engine::XaeroFlux;
use crate::error::{Error, Result};
use crate::store::{log_key, log_prefix};

/// What [`XaeroFlux::record_checkpoint`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CheckpointOutcome {
    /// First checkpoint of that log at that length: stored.
    New,
    /// The same root was already stored for that length.
    Known,
    /// A different root was already signed for that length: the author forked its log.
    /// The new checkpoint is kept as evidence next to the existing one.
    Fork {
        /// The checkpoint stored first.
        existing: Box<SignedCheckpoint>,
    },
}

impl XaeroFlux {
    /// Verifies `cp` against `key` (which must be the author's) and records it.
    pub fn record_checkpoint(
        &self,
        cp: &SignedCheckpoint,
        key: &XaeroID,
    ) -> Result<CheckpointOutcome> {
        cp.verify(key).map_err(Error::Checkpoint)?;
        let sh = self.shared();
        let c = &cp.checkpoint;
        let k = log_key(&c.group.0, &c.author.0, c.length);
        let _gate = sh.resize_gate.read().unwrap_or_else(|p| p.into_inner());
        let mut wtxn = sh.env.write_txn()?;
        if sh.tables.authors.get(&wtxn, c.author.as_bytes())?.is_none() {
            sh.tables
                .authors
                .put(&mut wtxn, c.author.as_bytes(), key.as_bytes())?;
        }
        let existing = match sh.tables.checkpoints.get(&wtxn, &k)? {
            Some(b) => Some(SignedCheckpoint::decode(b).map_err(Error::Checkpoint)?),
            None => None,
        };
        let outcome = match existing {
            None => {
                sh.tables.checkpoints.put(&mut wtxn, &k, &cp.encode())?;
                CheckpointOutcome::New
            }
            Some(e) if e.checkpoint.root == c.root => CheckpointOutcome::Known,
            Some(existing) => {
                tracing::warn!(
                    group = %c.group.short(),
                    author = %c.author.short(),
                    length = c.length,
                    "fork detected: two signed roots for one log length"
                );
                sh.tables.forks.put(&mut wtxn, &k, &cp.encode())?;
                CheckpointOutcome::Fork {
                    existing: Box::new(existing),
                }
            }
        };
        wtxn.commit()?;
        if matches!(outcome, CheckpointOutcome::Fork { .. }) {
            sh.system.publish(crate::system::SystemEvent::ForkDetected {
                group: c.group,
                author: c.author,
                length: c.length,
            });
        }
        Ok(outcome)
    }

    /// Fork evidence recorded for an author log: pairs of conflicting checkpoints.
    pub fn forks(
        &self,
        group: &GroupId,
        author: &AuthorId,
    ) -> Result<Vec<(SignedCheckpoint, SignedCheckpoint)>> {
        let sh = self.shared();
        let snap = self.read()?;
        let txn = snap.txn();
        let mut out = Vec::new();
        for item in sh
            .tables
            .forks
            .prefix_iter(txn, &log_prefix(&group.0, &author.0))?
        {
            let (k, v) = item?;
            let second = SignedCheckpoint::decode(v).map_err(Error::Checkpoint)?;
            let first = sh
                .tables
                .checkpoints
                .get(txn, k)?
                .ok_or_else(|| Error::Checkpoint(CheckpointError::BadLength { len: 0 }))?;
            out.push((
                SignedCheckpoint::decode(first).map_err(Error::Checkpoint)?,
                second,
            ));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use xaeroflux_core::{Checkpoint, Hlc};
    use xaeroid::XaeroKeypair;

    use super::*;

    #[test]
    fn fork_evidence_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let store = XaeroFlux::builder(dir.path()).open().unwrap();
        let other = XaeroKeypair::generate_from_seed(&[3; 32]);
        let author = AuthorId(*other.id().as_bytes());
        let group = store.default_group();
        let cp = |root: u8| {
            Checkpoint {
                group,
                author,
                length: 10,
                root: [root; 32],
                hlc: Hlc::new(1, 0),
            }
            .sign(&other)
        };
        let a = cp(1);
        assert_eq!(
            store.record_checkpoint(&a, other.public()).unwrap(),
            CheckpointOutcome::New
        );
        assert_eq!(
            store.record_checkpoint(&a, other.public()).unwrap(),
            CheckpointOutcome::Known
        );
        let b = cp(2);
        assert_eq!(
            store.record_checkpoint(&b, other.public()).unwrap(),
            CheckpointOutcome::Fork {
                existing: Box::new(a.clone())
            }
        );
        assert_eq!(store.forks(&group, &author).unwrap(), vec![(a, b.clone())]);
        // A checkpoint signed by someone else, or tampered, is rejected.
        let mut forged = b;
        forged.checkpoint.root = [9; 32];
        assert!(matches!(
            store.record_checkpoint(&forged, other.public()),
            Err(Error::Checkpoint(_))
        ));
        assert!(store.record_checkpoint(&cp(4), store.identity()).is_err());
    }
}
