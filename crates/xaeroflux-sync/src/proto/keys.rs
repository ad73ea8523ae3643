//! The public keys a session keeps from its peer: only what a checkpoint it still
//! needs requires, and at most [`SessionConfig::max_session_keys`] of them.
//!
//! A `Checkpoints` frame may carry up to a frame's worth of keys (about 1,100). Keys of
//! authors without a checkpoint in the same frame, keys the store already holds, and
//! keys beyond the cap are dropped on arrival; after the checkpoints are processed,
//! keys whose author the session no longer tracks are dropped too. A checkpoint whose
//! key was dropped for the cap is ignored; the peer advertises it again with its key
//! in its next full anti-entropy round.
//!
//! [`SessionConfig::max_session_keys`]: super::SessionConfig::max_session_keys

use std::collections::BTreeSet;

use xaeroflux_core::{AuthorId, SignedCheckpoint};
use xaeroid::XaeroID;

use super::Session;
use crate::log::LogView;

impl Session {
    /// Keeps the keys of `keys` that a checkpoint of `checkpoints` needs.
    pub(super) fn learn_keys(
        &mut self,
        checkpoints: &[SignedCheckpoint],
        keys: Vec<XaeroID>,
        logs: &(impl LogView + ?Sized),
    ) {
        let wanted: BTreeSet<AuthorId> = checkpoints
            .iter()
            .map(|c| c.checkpoint.author)
            .filter(|a| !self.forked.contains(a) && !self.refused_logs.contains(a))
            .collect();
        for k in keys {
            let a = AuthorId(*k.id().as_bytes());
            if !wanted.contains(&a) || self.keys.contains_key(&a) {
                continue;
            }
            if self.keys.len() >= self.cfg.max_session_keys {
                break;
            }
            if logs.author_key(&a).is_some() {
                continue;
            }
            self.keys.insert(a, k);
        }
    }

    /// Drops keys no tracked checkpoint needs: the author's log is not (or no longer)
    /// tracked, or the store holds the key now. The peer's own key stays.
    pub(super) fn prune_keys(&mut self, logs: &(impl LogView + ?Sized)) {
        let peer = self.peer.as_ref().map(|p| AuthorId(*p.id().as_bytes()));
        let tracked = &self.peer_cps;
        self.keys.retain(|a, _| {
            Some(*a) == peer || (tracked.contains_key(a) && logs.author_key(a).is_none())
        });
    }
}
