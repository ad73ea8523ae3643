//! Invites: an admin's signed promise of a role, redeemed by a Join op.
//!
//! Format (version 1, 760 bytes; also in `docs/FORMAT.md`), little-endian:
//!
//! | offset | size | field |
//! | ---: | ---: | --- |
//! | 0 | 1 | version = 1 |
//! | 1 | 32 | group id |
//! | 33 | 16 | invite id (random) |
//! | 49 | 32 | issuer id (an admin's XaeroID id) |
//! | 81 | 1 | role (1 reader, 2 writer, 3 admin) |
//! | 82 | 8 | expires, Unix milliseconds u64 |
//! | 90 | 1 | flags: bit 0 = single use; other bits zero |
//! | 91 | 2 | signature length u16 = 667 |
//! | 93 | 667 | FN-DSA-512 signature over bytes 0..91, context `xaeroflux/access/invite/v1` |
//!
//! An invite hands out no secret: admission is by the Join op that redeems it (see
//! [`crate::Membership`] for when a Join counts).

use xaeroflux_core::GroupId;
use xaeroid::{IdHash, Signature, XaeroID, XaeroKeypair};

use crate::error::{DecodeError, EncodeError};
use crate::op::Role;
use crate::read::{Reader, put_bytes16};

/// Bytes of an encoded invite.
pub const INVITE_LEN: usize = 93 + Signature::ENCODED_LEN;
/// Signature context of invites.
pub const INVITE_CONTEXT: &[u8] = b"xaeroflux/access/invite/v1";
const SIGNED_LEN: usize = 91;

/// A signed invite.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invite {
    group: GroupId,
    id: [u8; 16],
    issuer: IdHash,
    role: Role,
    expires_ms: u64,
    single_use: bool,
    bytes: Vec<u8>,
}

impl Invite {
    /// An invite signed by `issuer`.
    pub fn sign(
        issuer: &XaeroKeypair,
        group: GroupId,
        id: [u8; 16],
        role: Role,
        expires_ms: u64,
        single_use: bool,
    ) -> Result<Invite, EncodeError> {
        let mut out = Vec::with_capacity(INVITE_LEN);
        out.push(1);
        out.extend_from_slice(&group.0);
        out.extend_from_slice(&id);
        out.extend_from_slice(&issuer.id().0);
        out.push(role.check_grant()?);
        out.extend_from_slice(&expires_ms.to_le_bytes());
        out.push(single_use as u8);
        let sig = issuer
            .sign_with_context(INVITE_CONTEXT, &out)
            .map_err(|_| EncodeError::Random)?;
        put_bytes16(&mut out, sig.as_bytes());
        Ok(Invite {
            group,
            id,
            issuer: issuer.id(),
            role,
            expires_ms,
            single_use,
            bytes: out,
        })
    }

    /// Decodes exactly [`INVITE_LEN`] bytes (the signature is checked by
    /// [`Invite::verify`]).
    pub fn decode(bytes: &[u8]) -> Result<Invite, DecodeError> {
        let mut r = Reader::new(bytes);
        let version = r.u8("invite version")?;
        if version != 1 {
            return Err(DecodeError::Version {
                what: "invite",
                version,
            });
        }
        let group = GroupId(r.array("invite group")?);
        let id = r.array("invite id")?;
        let issuer = IdHash(r.array("invite issuer")?);
        let role = Role::from_grant_byte(r.u8("invite role")?)?;
        let expires_ms = r.u64("invite expiry")?;
        let flags = r.u8("invite flags")?;
        if flags > 1 {
            return Err(DecodeError::Invalid {
                field: "invite flags",
                value: flags as u64,
            });
        }
        let sig = r.bytes16(
            "invite signature",
            Signature::ENCODED_LEN,
            Signature::ENCODED_LEN,
        )?;
        Signature::from_bytes(sig).map_err(|source| DecodeError::Key {
            field: "invite signature",
            source,
        })?;
        r.finish()?;
        Ok(Invite {
            group,
            id,
            issuer,
            role,
            expires_ms,
            single_use: flags == 1,
            bytes: bytes.to_vec(),
        })
    }

    /// Whether `key` is the issuer's and the signature verifies.
    pub fn verify(&self, key: &XaeroID) -> bool {
        if key.id() != self.issuer {
            return false;
        }
        let Ok(sig) = Signature::from_bytes(&self.bytes[SIGNED_LEN + 2..]) else {
            return false;
        };
        key.verify_with_context(INVITE_CONTEXT, &self.bytes[..SIGNED_LEN], &sig)
            .is_ok()
    }

    /// The group.
    pub fn group(&self) -> GroupId {
        self.group
    }
    /// The invite id.
    pub fn id(&self) -> [u8; 16] {
        self.id
    }
    /// The issuing admin.
    pub fn issuer(&self) -> IdHash {
        self.issuer
    }
    /// The role it grants.
    pub fn role(&self) -> Role {
        self.role
    }
    /// Expiry, Unix milliseconds.
    pub fn expires_ms(&self) -> u64 {
        self.expires_ms
    }
    /// Whether only the first Join counts.
    pub fn single_use(&self) -> bool {
        self.single_use
    }
    /// The encoding.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_keys::admin;
    use proptest::prelude::*;

    #[test]
    fn round_trip_verify_and_tamper() {
        let inv =
            Invite::sign(admin(0), GroupId([2; 32]), [1; 16], Role::Reader, 99, false).unwrap();
        assert_eq!(inv.as_bytes().len(), INVITE_LEN);
        let back = Invite::decode(inv.as_bytes()).unwrap();
        assert_eq!(back, inv);
        assert!(back.verify(admin(0).public()));
        assert!(!back.verify(admin(1).public()));
        for i in 0..SIGNED_LEN {
            let mut t = inv.as_bytes().to_vec();
            t[i] ^= 0x01;
            if let Ok(x) = Invite::decode(&t) {
                assert!(!x.verify(admin(0).public()), "byte {i}");
            }
        }
    }

    proptest! {
        #[test]
        fn any_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..800)) {
            if let Ok(i) = Invite::decode(&bytes) {
                prop_assert_eq!(i.as_bytes(), &bytes[..]);
            }
        }
    }
}
