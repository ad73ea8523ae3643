//! The fork rule, written once: how a verified signed checkpoint is recorded.
//!
//! Two valid signatures by one author over different roots for the same log length
//! prove that the author forked its log. The first checkpoint stored for a length stays
//! in `checkpoints`; the first conflicting one is kept in `forks` as the evidence. Later
//! conflicting checkpoints change nothing (the evidence already proves the fork), so
//! `ForkDetected` is raised once per log length. A forked log is never extended by sync.
//!
//! Callers: `Engine::record_checkpoint` (checkpoints from elsewhere), the sync host's
//! `record_fork` (evidence found by a session) and the writer's remote path (the
//! checkpoint of a received batch). Each verifies the signature first.

use heed::RwTxn;
use xaeroflux_core::SignedCheckpoint;

use super::reads::decode_checkpoint;
use super::{Store, log_key};
use crate::error::Result;

/// What recording a checkpoint found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Recorded {
    /// First checkpoint of that log at that length: stored.
    New,
    /// The same root is stored for that length.
    Known,
    /// A different root is stored for that length: the author forked its log.
    Fork {
        /// The checkpoint stored first.
        existing: Box<SignedCheckpoint>,
        /// Whether this is the first evidence for that length (then it was stored in
        /// `forks` and the fork is to be reported).
        first_evidence: bool,
    },
}

impl Recorded {
    /// Whether a fork was found that nobody was told about yet.
    pub(crate) fn new_fork(&self) -> bool {
        matches!(
            self,
            Recorded::Fork {
                first_evidence: true,
                ..
            }
        )
    }
}

impl Store {
    /// Records `cp`, whose signature the caller verified against its author's key,
    /// inside `wtxn` (see the module docs for the rule).
    pub(crate) fn record_checkpoint(
        &self,
        wtxn: &mut RwTxn<'_>,
        cp: &SignedCheckpoint,
    ) -> Result<Recorded> {
        let c = &cp.checkpoint;
        let k = log_key(&c.group.0, &c.author.0, c.length);
        let existing = match self.tables.checkpoints.get(wtxn, &k)? {
            Some(v) => decode_checkpoint("checkpoints", v)?,
            None => {
                self.tables.checkpoints.put(wtxn, &k, &cp.encode())?;
                return Ok(Recorded::New);
            }
        };
        if existing.checkpoint.root == c.root {
            return Ok(Recorded::Known);
        }
        let first_evidence = self.tables.forks.get(wtxn, &k)?.is_none();
        if first_evidence {
            self.tables.forks.put(wtxn, &k, &cp.encode())?;
            tracing::warn!(
                group = %c.group.short(),
                author = %c.author.short(),
                length = c.length,
                "fork detected: two signed roots for one log length"
            );
        }
        Ok(Recorded::Fork {
            existing: Box::new(existing),
            first_evidence,
        })
    }
}

#[cfg(test)]
mod tests {
    use xaeroflux_core::{AuthorId, Checkpoint, Hlc};
    use xaeroid::XaeroKeypair;

    use super::*;
    use crate::Engine;
    use crate::store::decode_checkpoint;

    /// The rule's four outcomes, and that the first evidence is never overwritten.
    #[test]
    fn first_checkpoint_stays_and_first_evidence_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::builder(dir.path()).open().unwrap();
        let store = &engine.shared().store();
        let kp = XaeroKeypair::generate_from_seed(&[5; 32]);
        let author = AuthorId(*kp.id().as_bytes());
        let group = engine.default_group();
        let cp = |root: u8| {
            Checkpoint {
                group,
                author,
                length: 4,
                root: [root; 32],
                hlc: Hlc::new(1, 0),
            }
            .sign(&kp)
        };
        let (a, b, c) = (cp(1), cp(2), cp(3));
        let _gate = store.gate();
        let mut wtxn = store.env.write_txn().unwrap();
        assert_eq!(
            store.record_checkpoint(&mut wtxn, &a).unwrap(),
            Recorded::New
        );
        assert_eq!(
            store.record_checkpoint(&mut wtxn, &a).unwrap(),
            Recorded::Known
        );
        let fork = store.record_checkpoint(&mut wtxn, &b).unwrap();
        assert!(fork.new_fork());
        assert_eq!(
            fork,
            Recorded::Fork {
                existing: Box::new(a.clone()),
                first_evidence: true
            }
        );
        // A third root for the same length: still a fork, nothing new to report, and
        // the evidence stored first is kept.
        let again = store.record_checkpoint(&mut wtxn, &c).unwrap();
        assert!(!again.new_fork());
        assert!(matches!(again, Recorded::Fork { .. }));
        let k = log_key(&group.0, &author.0, 4);
        let stored = store.tables.checkpoints.get(&wtxn, &k).unwrap().unwrap();
        assert_eq!(decode_checkpoint("checkpoints", stored).unwrap(), a);
        let evidence = store.tables.forks.get(&wtxn, &k).unwrap().unwrap();
        assert_eq!(decode_checkpoint("forks", evidence).unwrap(), b);
        assert!(store.is_forked(&wtxn, &group, &author).unwrap());
    }

    /// A damaged stored checkpoint is an error, not "no checkpoint".
    #[test]
    fn corrupt_stored_checkpoint_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::builder(dir.path()).open().unwrap();
        let store = &engine.shared().store();
        let kp = XaeroKeypair::generate_from_seed(&[6; 32]);
        let author = AuthorId(*kp.id().as_bytes());
        let group = engine.default_group();
        let cp = Checkpoint {
            group,
            author,
            length: 2,
            root: [7; 32],
            hlc: Hlc::new(1, 0),
        }
        .sign(&kp);
        let _gate = store.gate();
        let mut wtxn = store.env.write_txn().unwrap();
        let k = log_key(&group.0, &author.0, 2);
        store
            .tables
            .checkpoints
            .put(&mut wtxn, &k, b"junk")
            .unwrap();
        assert!(matches!(
            store.record_checkpoint(&mut wtxn, &cp),
            Err(crate::Error::CorruptTable {
                table: "checkpoints",
                ..
            })
        ));
        assert!(
            store
                .latest_checkpoint(&wtxn, &group, &author, u64::MAX)
                .is_err()
        );
        assert!(store.checkpoint_at(&wtxn, &group, &author, 2).is_err());
    }
}
