//! Invites issued by this node, kept across restarts, and epoch keys handed to members
//! that miss them (new members, a rotation a crash cut short).
//!
//! Issued invites are stored in `access/<group hex>.invites`: the invites' encodings
//! (`xaeroflux_access::INVITE_LEN` bytes each) back to back, rewritten whole (temp file,
//! fsync, rename) when one is added. Whether an invite was used or revoked is not kept
//! there: both are ops in the membership log (Join, RevokeInvite), so the state read
//! back is the log's.

use std::path::{Path, PathBuf};

use xaeroflux_access::{
    AccessControl, INVITE_LEN, Invite, InviteStatus, MEMBERSHIP_OP_TYPE, OpBody, OpenError,
    OsEntropy, Role,
};
use xaeroflux_core::GroupId;

use super::{AccessError, AccessResult, io, write_private};
use crate::XaeroFlux;

fn invites_path(dir: &Path, group: &GroupId) -> PathBuf {
    dir.join(format!("{group}.invites"))
}

/// Reads the invites issued for `group` (a damaged entry is skipped, with a warning).
pub(super) fn load(dir: &Path, group: &GroupId, control: &AccessControl) -> AccessResult<()> {
    let path = invites_path(dir, group);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io(&path)(e)),
    };
    if bytes.len() % INVITE_LEN != 0 {
        tracing::warn!(path = %path.display(), len = bytes.len(), "invites file has a partial entry");
    }
    for chunk in bytes.chunks_exact(INVITE_LEN) {
        match Invite::decode(chunk) {
            Ok(inv) if inv.group() == *group => control.issued(inv),
            Ok(_) => tracing::warn!(path = %path.display(), "invite of another group skipped"),
            Err(e) => tracing::warn!(path = %path.display(), error = %e, "damaged invite skipped"),
        }
    }
    Ok(())
}

impl XaeroFlux {
    /// Keeps `invite` in this node's invites file of its group.
    pub(super) fn persist_invite(&self, invite: &Invite) -> AccessResult<()> {
        let dir = self.data_dir().join("access");
        let group = invite.group();
        self.access_control().issued(invite.clone());
        let mut bytes = Vec::new();
        for (inv, _) in self.access_control().issued_invites(&group) {
            bytes.extend_from_slice(inv.as_bytes());
        }
        write_private(&invites_path(&dir, &group), &bytes)
    }

    /// The invites this node issued for `group`, with their state (open, used,
    /// revoked; expiry is [`Invite::expires_ms`]).
    pub fn access_invites(&self, group: &GroupId) -> AccessResult<Vec<(Invite, InviteStatus)>> {
        if !self.access_control().is_controlled(group) {
            return Err(AccessError::NotControlled { group: *group });
        }
        Ok(self.access_control().issued_invites(group))
    }

    /// Revokes the invite `id` of `group` (a RevokeInvite op): a later Join with it is
    /// void on every peer.
    pub fn access_revoke_invite(&self, group: &GroupId, id: [u8; 16]) -> AccessResult<()> {
        let op = self.write_op(group, OpBody::RevokeInvite { invite: id })?;
        self.require(group, &op, "revoke invite")
    }

    /// Seals the current epoch key of `group` to the current members that have a KEM
    /// key but no copy of it (members added since the last rotation, or a rotation a
    /// crash cut short), with EpochKeys ops of the same epoch. Returns how many members
    /// received it. Needs this node to be owner or admin and to hold the key.
    pub fn access_share_keys(&self, group: &GroupId) -> AccessResult<usize> {
        let control = self.access_control();
        let (missing, current, role) = control
            .with(group, |m| {
                (
                    m.missing_keys().len(),
                    m.current_epoch().map(|e| (e.epoch, e.key_id)),
                    m.role(&self.me()),
                )
            })
            .ok_or(AccessError::NotControlled { group: *group })?;
        let (Some((epoch, key_id)), true) = (current, missing > 0) else {
            return Ok(0);
        };
        if !matches!(role, Some(Role::Owner | Role::Admin)) {
            return Err(AccessError::Refused {
                what: "share keys (not an admin)",
            });
        }
        let key = self
            .ring()
            .epoch_key(group, epoch, &key_id)
            .ok_or(OpenError::NoKey { epoch, key_id })?;
        let kp = self.keypair();
        let ops = control
            .with(group, |m| m.share(&kp, &key, &mut OsEntropy))
            .ok_or(AccessError::NotControlled { group: *group })??;
        for op in ops {
            self.write_reserved_to(group, op.as_bytes(), MEMBERSHIP_OP_TYPE)?;
        }
        self.flush()?;
        self.replay(group)?;
        Ok(missing)
    }

    /// On open: completes, for every controlled group this node administers, an epoch
    /// some current members miss (see [`XaeroFlux::access_share_keys`]). Failures are
    /// logged: the store still opens.
    pub(crate) fn access_repair(&self) {
        for g in self.access_control().groups() {
            match self.access_share_keys(&g) {
                Ok(0) | Err(AccessError::Refused { .. }) => {}
                Ok(n) => {
                    tracing::info!(group = %g, members = n, "epoch key handed to members that missed it")
                }
                Err(e) => {
                    tracing::warn!(group = %g, error = %e, "cannot complete the current epoch")
                }
            }
        }
    }
}
