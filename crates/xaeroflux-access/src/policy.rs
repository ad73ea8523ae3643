//! The node-facing side: which groups are under access control, their membership
//! states, and the two questions sync asks (may this event be stored, may this peer
//! hold a session). Thread-safe (one `RwLock`), no I/O; the node feeds it every
//! committed membership event ([`AccessControl::observe`]).
//!
//! Admission rules for a group under access control:
//! - an event of type 16 (membership op) is stored from a member at that seq, or from
//!   an author the membership has never listed (a joiner's Join; the fold judges it);
//!   any other event only from a writer, admin or owner at its seq (rule 4 of
//!   [`crate::Membership`]), so readers' and removed members' later events are refused;
//! - a peer may hold a session if it is a current member; or if this node is not a
//!   member itself yet (it is joining, with nothing of the group to protect); or while
//!   this node holds an invite it issued that is open and unexpired by the local clock
//!   (the invitee must connect once to deliver its Join).

use std::collections::HashMap;
use std::sync::RwLock;

use xaeroflux_core::GroupId;
use xaeroid::IdHash;

use crate::error::DecodeError;
use crate::invite::Invite;
use crate::op::MEMBERSHIP_OP_TYPE;
use crate::state::{Inserted, InviteStatus, Membership, Stamp};

struct Controlled {
    membership: Membership,
    local: IdHash,
    issued: Vec<Invite>,
}

/// Access control of the groups of one node.
pub struct AccessControl {
    groups: RwLock<HashMap<GroupId, Controlled>>,
    now_ms: Box<dyn Fn() -> u64 + Send + Sync>,
}

impl std::fmt::Debug for AccessControl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.groups.read().map(|g| g.len()).unwrap_or(0);
        write!(f, "AccessControl({n} groups)")
    }
}

impl AccessControl {
    /// No group under control yet; `now_ms` is the local clock (Unix milliseconds) that
    /// judges the expiry of invites issued here.
    pub fn new(now_ms: impl Fn() -> u64 + Send + Sync + 'static) -> Self {
        AccessControl {
            groups: RwLock::new(HashMap::new()),
            now_ms: Box::new(now_ms),
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<GroupId, Controlled>> {
        // A panic while holding the lock leaves plain data; keep serving it.
        self.groups.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<GroupId, Controlled>> {
        self.groups.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Puts a group under access control, as seen by the local identity `local`.
    pub fn control(&self, membership: Membership, local: IdHash) {
        let g = membership.group();
        self.write().insert(
            g,
            Controlled {
                membership,
                local,
                issued: Vec::new(),
            },
        );
    }

    /// Whether `group` is under access control.
    pub fn is_controlled(&self, group: &GroupId) -> bool {
        self.read().contains_key(group)
    }

    /// Feeds a committed event; only membership ops of controlled groups matter.
    /// Returns whether the state changed.
    pub fn observe(
        &self,
        group: &GroupId,
        stamp: Stamp,
        event_type: u32,
        payload: &[u8],
    ) -> Result<bool, DecodeError> {
        if event_type != MEMBERSHIP_OP_TYPE {
            return Ok(false);
        }
        let mut g = self.write();
        let Some(c) = g.get_mut(group) else {
            return Ok(false);
        };
        let before = c.membership.root();
        let ins = c.membership.insert(stamp, payload)?;
        Ok(ins == Inserted::New && c.membership.root() != before)
    }

    /// Remembers an invite issued here (admits its invitee's first connection).
    pub fn issued(&self, invite: Invite) {
        if let Some(c) = self.write().get_mut(&invite.group())
            && !c.issued.iter().any(|i| i.id() == invite.id())
        {
            c.issued.push(invite);
        }
    }

    /// The controlled groups.
    pub fn groups(&self) -> Vec<GroupId> {
        self.read().keys().copied().collect()
    }

    /// The invites issued here for `group`, with their state in the membership.
    pub fn issued_invites(&self, group: &GroupId) -> Vec<(Invite, InviteStatus)> {
        self.read().get(group).map_or_else(Vec::new, |c| {
            c.issued
                .iter()
                .map(|i| (i.clone(), c.membership.invite_status(&i.id())))
                .collect()
        })
    }

    /// Runs `f` on a group's membership.
    pub fn with<R>(&self, group: &GroupId, f: impl FnOnce(&Membership) -> R) -> Option<R> {
        self.read().get(group).map(|c| f(&c.membership))
    }

    /// Whether `author`'s event at `seq` of `event_type` may be stored.
    pub fn may_write_event(
        &self,
        group: &GroupId,
        author: &IdHash,
        seq: u64,
        event_type: u32,
    ) -> bool {
        let g = self.read();
        let Some(c) = g.get(group) else {
            return true;
        };
        let m = &c.membership;
        if event_type == MEMBERSHIP_OP_TYPE {
            m.role_at(author, seq).is_some() || m.key(author).is_none()
        } else {
            m.may_write(author, seq)
        }
    }

    /// Whether `peer` may hold a session of `group`.
    pub fn may_connect(&self, group: &GroupId, peer: &IdHash) -> bool {
        let g = self.read();
        let Some(c) = g.get(group) else {
            return true;
        };
        let m = &c.membership;
        if m.role(peer).is_some() || m.role(&c.local).is_none() {
            return true;
        }
        let now = (self.now_ms)();
        c.issued.iter().any(|i| {
            i.expires_ms() >= now
                && m.invite_status(&i.id()) != InviteStatus::Revoked
                && !(i.single_use() && m.invite_status(&i.id()) == InviteStatus::Used)
        })
    }
}

impl xaeroflux_sync::AccessGate for AccessControl {
    fn may_write_event(
        &self,
        group: &GroupId,
        author: &xaeroflux_core::AuthorId,
        seq: u64,
        event_type: u32,
    ) -> bool {
        AccessControl::may_write_event(self, group, &IdHash(author.0), seq, event_type)
    }

    fn may_connect(&self, group: &GroupId, peer: &xaeroflux_core::AuthorId) -> bool {
        AccessControl::may_connect(self, group, &IdHash(peer.0))
    }
}
