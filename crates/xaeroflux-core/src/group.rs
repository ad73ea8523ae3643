//! Groups: the unit of sharing.
//!
//! A group is created from a random 32-byte secret. Everything public about it is derived
//! from the secret with BLAKE3's key-derivation mode, one context string per purpose, so
//! that no derived value reveals the secret or another derived value:
//!
//! - id: `derive_key("xaeroflux 2026 group id v1", secret)`: names the group in events;
//! - discovery key: `derive_key("xaeroflux 2026 group discovery v1", secret)`: what peers
//!   announce to find each other, without revealing the id;
//! - membership MAC key: `derive_key("xaeroflux 2026 group membership mac v1", secret)`:
//!   proves knowledge of the secret in the sync handshake.

use std::fmt;

use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::event::{HexError, hex_id};

const CTX_ID: &str = "xaeroflux 2026 group id v1";
const CTX_DISCOVERY: &str = "xaeroflux 2026 group discovery v1";
const CTX_MAC: &str = "xaeroflux 2026 group membership mac v1";

/// Public id of a group.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct GroupId(pub [u8; 32]);
hex_id!(GroupId, "GroupId");

/// Key under which peers of a group find each other; reveals neither secret nor id.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct DiscoveryKey(pub [u8; 32]);
hex_id!(DiscoveryKey, "DiscoveryKey");

/// The 32-byte secret from which a group is derived. Zeroized on drop, redacted in `Debug`.
#[derive(Clone, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub struct GroupSecret([u8; 32]);

impl GroupSecret {
    /// Wraps secret bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        GroupSecret(bytes)
    }
    /// A fresh random secret from the operating system.
    pub fn generate() -> Result<Self, getrandom::Error> {
        let mut b = [0u8; 32];
        getrandom::getrandom(&mut b)?;
        Ok(GroupSecret(b))
    }
    /// The secret bytes (handle with care: never put them in a wire type or a log).
    pub fn expose(&self) -> &[u8; 32] {
        &self.0
    }
    /// Parses 64 hex digits.
    pub fn from_hex(s: &str) -> Result<Self, HexError> {
        GroupId::from_hex(s).map(|g| GroupSecret(g.0))
    }
}

impl fmt::Debug for GroupSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("GroupSecret(<redacted>)")
    }
}

/// A group: its secret and everything derived from it.
#[derive(Clone)]
pub struct Group {
    secret: GroupSecret,
    id: GroupId,
    discovery: DiscoveryKey,
}

impl Group {
    /// Derives a group from its secret.
    pub fn from_secret(secret: GroupSecret) -> Self {
        let id = GroupId(blake3::derive_key(CTX_ID, secret.expose()));
        let discovery = DiscoveryKey(blake3::derive_key(CTX_DISCOVERY, secret.expose()));
        Group {
            secret,
            id,
            discovery,
        }
    }
    /// The public id.
    pub fn id(&self) -> GroupId {
        self.id
    }
    /// The discovery key.
    pub fn discovery_key(&self) -> DiscoveryKey {
        self.discovery
    }
    /// The secret.
    pub fn secret(&self) -> &GroupSecret {
        &self.secret
    }
    /// Key for the membership MAC of the sync handshake.
    pub fn membership_mac_key(&self) -> [u8; 32] {
        blake3::derive_key(CTX_MAC, self.secret.expose())
    }
}

impl fmt::Debug for Group {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Group")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derivations_are_stable_and_distinct() {
        let g = Group::from_secret(GroupSecret::from_bytes([1; 32]));
        let again = Group::from_secret(GroupSecret::from_bytes([1; 32]));
        assert_eq!(g.id(), again.id());
        assert_ne!(g.id().0, g.discovery_key().0);
        assert_ne!(g.id().0, *g.secret().expose());
        assert_ne!(g.membership_mac_key(), g.id().0);
        let other = Group::from_secret(GroupSecret::from_bytes([2; 32]));
        assert_ne!(g.id(), other.id());
        assert_eq!(format!("{:?}", g.secret()), "GroupSecret(<redacted>)");
        assert!(!format!("{g:?}").contains("0101"));
    }

    #[test]
    fn generated_secrets_differ() {
        let a = GroupSecret::generate().unwrap();
        let b = GroupSecret::generate().unwrap();
        assert_ne!(a, b);
    }
}
