//! Who may fetch a blob from us.
//!
//! Rule: a peer may fetch blob `h` only if it is a member of at least one group whose
//! events reference `h`. The serving side asks an [`Authorizer`] on every request, with
//! the requesting endpoint's id as authenticated by the QUIC/TLS handshake. A refusal is
//! the same answer (stream reset with iroh-blobs' permission code) whether or not we hold
//! the blob, so a non-member learns nothing, not even whether the hash exists here.
//!
//! [`GroupAccess`] is the book a node keeps for this rule: members per group (fed from
//! the group's known peers) and the groups that reference each hash (fed from attachment
//! events). The same book yields the set of referenced hashes for garbage collection.

use std::collections::{HashMap, HashSet};
use std::sync::RwLock;

use crate::blob_ref::BlobHash;

/// A 32-byte group id (the public id the event store uses).
pub type GroupId = [u8; 32];
/// A 32-byte iroh endpoint id (the peer's public key).
pub type PeerId = [u8; 32];

/// Decides whether a peer may fetch a blob from us. Consulted on every request.
pub trait Authorizer: Send + Sync + 'static {
    /// Whether `peer` may open a blob connection at all. Default: yes (the per-request
    /// check still applies).
    fn may_connect(&self, peer: &PeerId) -> bool {
        let _ = peer;
        true
    }
    /// Whether `peer` may fetch `hash`.
    fn may_fetch(&self, peer: &PeerId, hash: &BlobHash) -> bool;
}

impl<F> Authorizer for F
where
    F: Fn(&PeerId, &BlobHash) -> bool + Send + Sync + 'static,
{
    fn may_fetch(&self, peer: &PeerId, hash: &BlobHash) -> bool {
        self(peer, hash)
    }
}

#[derive(Debug, Default)]
struct Book {
    members: HashMap<GroupId, HashSet<PeerId>>,
    refs: HashMap<BlobHash, HashSet<GroupId>>,
}

/// Group membership and blob references, answering [`Authorizer`] by the rule above.
#[derive(Debug, Default)]
pub struct GroupAccess {
    book: RwLock<Book>,
}

impl GroupAccess {
    /// An empty book: nobody may fetch anything.
    pub fn new() -> Self {
        Self::default()
    }

    /// Replaces the members of `group`.
    pub fn set_members(&self, group: GroupId, peers: impl IntoIterator<Item = PeerId>) {
        let mut book = self.write();
        book.members.insert(group, peers.into_iter().collect());
    }

    /// Adds one member to `group`.
    pub fn add_member(&self, group: GroupId, peer: PeerId) {
        self.write().members.entry(group).or_default().insert(peer);
    }

    /// Removes one member from `group`.
    pub fn remove_member(&self, group: GroupId, peer: &PeerId) {
        if let Some(m) = self.write().members.get_mut(&group) {
            m.remove(peer);
        }
    }

    /// Records that an event of `group` references `hash`.
    pub fn add_reference(&self, group: GroupId, hash: BlobHash) {
        self.write().refs.entry(hash).or_default().insert(group);
    }

    /// Records that `group` no longer references `hash`.
    pub fn remove_reference(&self, group: GroupId, hash: &BlobHash) {
        let mut book = self.write();
        if let Some(groups) = book.refs.get_mut(hash) {
            groups.remove(&group);
            if groups.is_empty() {
                book.refs.remove(hash);
            }
        }
    }

    /// Every hash some group references (the live set for garbage collection).
    pub fn referenced(&self) -> HashSet<BlobHash> {
        self.read().refs.keys().copied().collect()
    }

    /// Whether `peer` is a member of any group.
    pub fn is_member_anywhere(&self, peer: &PeerId) -> bool {
        self.read().members.values().any(|m| m.contains(peer))
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Book> {
        // A panic while holding the lock cannot leave the maps half-updated (each write is
        // one insert or remove), so a poisoned lock still holds a consistent book.
        self.book.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Book> {
        self.book.write().unwrap_or_else(|e| e.into_inner())
    }
}

impl Authorizer for GroupAccess {
    fn may_connect(&self, peer: &PeerId) -> bool {
        self.is_member_anywhere(peer)
    }

    fn may_fetch(&self, peer: &PeerId, hash: &BlobHash) -> bool {
        let book = self.read();
        book.refs.get(hash).is_some_and(|groups| {
            groups
                .iter()
                .any(|g| book.members.get(g).is_some_and(|m| m.contains(peer)))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_members_of_a_referencing_group_may_fetch() {
        let access = GroupAccess::new();
        let (g1, g2) = ([1u8; 32], [2u8; 32]);
        let (alice, bob, eve) = ([10u8; 32], [11u8; 32], [12u8; 32]);
        let h = BlobHash([5; 32]);
        let other = BlobHash([6; 32]);
        access.set_members(g1, [alice]);
        access.set_members(g2, [bob]);
        access.add_reference(g1, h);
        assert!(access.may_fetch(&alice, &h));
        assert!(
            !access.may_fetch(&bob, &h),
            "bob's group does not reference h"
        );
        assert!(!access.may_fetch(&eve, &h));
        assert!(!access.may_fetch(&alice, &other), "unreferenced hash");
        assert!(access.may_connect(&bob));
        assert!(!access.may_connect(&eve));
        access.add_reference(g2, h);
        assert!(access.may_fetch(&bob, &h));
        access.remove_member(g2, &bob);
        assert!(!access.may_fetch(&bob, &h));
        access.remove_reference(g1, &h);
        assert!(!access.may_fetch(&alice, &h));
        assert_eq!(access.referenced(), HashSet::from([h]));
        access.remove_reference(g2, &h);
        assert!(access.referenced().is_empty());
    }
}
