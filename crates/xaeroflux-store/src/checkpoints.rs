//! Recording signed checkpoints from elsewhere, and reading fork evidence.
//!
//! The fork rule itself (what is kept when two roots are signed for one log length) is
//! `store::fork_rule`; this is its public entry point.

use xaeroflux_core::{AuthorId, GroupId, SignedCheckpoint};
use xaeroid::XaeroID;

use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::store::{Recorded, decode_checkpoint, log_prefix};
use crate::system::SystemEvent;

/// What [`Engine::record_checkpoint`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CheckpointOutcome {
    /// First checkpoint of that log at that length: stored.
    New,
    /// The same root was already stored for that length.
    Known,
    /// A different root was already signed for that length: the author forked its log.
    /// The first conflicting checkpoint is kept as evidence next to the existing one.
    Fork {
        /// The checkpoint stored first.
        existing: Box<SignedCheckpoint>,
    },
}

impl Engine {
    /// Verifies `cp` against `key` (which must be the author's) and records it. A fork
    /// raises [`SystemEvent::ForkDetected`] once per log length (the first evidence is
    /// kept; later conflicting roots for that length add nothing).
    pub fn record_checkpoint(
        &self,
        cp: &SignedCheckpoint,
        key: &XaeroID,
    ) -> Result<CheckpointOutcome> {
        cp.verify(key).map_err(Error::Checkpoint)?;
        let sh = self.shared();
        let store = &sh.store();
        let c = &cp.checkpoint;
        let _gate = store.gate();
        let mut wtxn = store.env.write_txn()?;
        if store
            .tables
            .authors
            .get(&wtxn, c.author.as_bytes())?
            .is_none()
        {
            store
                .tables
                .authors
                .put(&mut wtxn, c.author.as_bytes(), key.as_bytes())?;
        }
        let recorded = store.record_checkpoint(&mut wtxn, cp)?;
        wtxn.commit()?;
        if recorded.new_fork() {
            sh.system().publish(SystemEvent::ForkDetected {
                group: c.group,
                author: c.author,
                length: c.length,
            });
        }
        Ok(match recorded {
            Recorded::New => CheckpointOutcome::New,
            Recorded::Known => CheckpointOutcome::Known,
            Recorded::Fork { existing, .. } => CheckpointOutcome::Fork { existing },
        })
    }

    /// Fork evidence recorded for an author log: pairs of conflicting checkpoints.
    pub fn forks(
        &self,
        group: &GroupId,
        author: &AuthorId,
    ) -> Result<Vec<(SignedCheckpoint, SignedCheckpoint)>> {
        let store = &self.shared().store();
        let snap = self.read()?;
        let txn = snap.txn();
        let mut out = Vec::new();
        for item in store
            .tables
            .forks
            .prefix_iter(txn, &log_prefix(&group.0, &author.0))?
        {
            let (k, v) = item?;
            let second = decode_checkpoint("forks", v)?;
            let first =
                store
                    .tables
                    .checkpoints
                    .get(txn, k)?
                    .ok_or_else(|| Error::CorruptTable {
                        table: "forks",
                        reason: "fork evidence without the checkpoint it conflicts with".into(),
                    })?;
            out.push((decode_checkpoint("checkpoints", first)?, second));
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
        let store = Engine::builder(dir.path()).open().unwrap();
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
