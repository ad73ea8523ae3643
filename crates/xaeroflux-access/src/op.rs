//! Membership operations: the payload of events of type [`MEMBERSHIP_OP_TYPE`] (16).
//!
//! Format (version 1; also in `docs/FORMAT.md`), little-endian; `bytes16(x)` = u16
//! length + bytes:
//!
//! | offset | size | field |
//! | ---: | ---: | --- |
//! | 0 | 1 | version = 1 |
//! | 1 | 1 | kind (below) |
//! | 2 | 32 | group id |
//! | 34 | 32 | signer id (XaeroID id) |
//! | 66 | 1 | `p`, number of prev op ids, `0..=8` |
//! | 67 | 32·p | prev: ids of the membership ops the signer's state was made of (its heads) |
//! | .. | .. | body (by kind) |
//! | .. | 2 | signature length u16 = 667 |
//! | .. | 667 | FN-DSA-512 signature over every byte before the length, context `xaeroflux/access/op/v1` |
//!
//! | kind | op | body |
//! | ---: | --- | --- |
//! | 1 | Genesis | bytes16(owner XaeroID, 898) |
//! | 2 | Add | bytes16(member XaeroID, 898) \| role u8 (1..=3) \| at_seq u64 |
//! | 3 | SetRole | member id [32] \| role u8 (1..=3) \| at_seq u64 |
//! | 4 | Remove | member id [32] \| at_seq u64 |
//! | 5 | RevokeInvite | invite id [16] |
//! | 6 | Join | bytes16(invite, 760) \| bytes16(member XaeroID, 898) |
//! | 7 | KemKey | ML-KEM-768 encapsulation key [1184] |
//! | 8 | EpochKeys | epoch u32 \| key id [8] \| count u16 (1..=13) \| count × sealed key [1168] |
//!
//! Roles: 1 reader, 2 writer, 3 admin (4 owner exists only through Genesis). The op id
//! is `BLAKE3-derive_key("xaeroflux/access/op-id/v1", all bytes)`. Nothing may follow
//! the signature. The largest op (EpochKeys with 13 keys and 8 prev ids) is 16,190
//! bytes, within one event payload.

use xaeroflux_core::GroupId;
use xaeroid::{IdHash, Signature, XaeroID, XaeroKeypair};

use crate::error::{DecodeError, EncodeError};
use crate::invite::{INVITE_LEN, Invite};
use crate::kem::{KEM_PUBLIC_LEN, KemPublicKey, SealedKey};
use crate::read::{Reader, put_bytes16};

/// Event type of membership operations.
pub const MEMBERSHIP_OP_TYPE: u32 = xaeroflux_core::event::MEMBERSHIP_OP_TYPE;
/// Version byte of the membership op format.
pub const OP_VERSION: u8 = 1;
/// Most prev ids an op names.
pub const MAX_PREV: usize = 8;
/// Most sealed keys in one EpochKeys op (larger groups use several ops per epoch).
pub const MAX_SEALED_PER_OP: usize = 13;
/// Signature context of membership ops.
pub const OP_CONTEXT: &[u8] = b"xaeroflux/access/op/v1";
const OP_ID_CONTEXT: &str = "xaeroflux/access/op-id/v1";

/// A member's role. Ordered: each role can do what the ones below it can.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum Role {
    /// Reads (holds the epoch keys); may write only membership ops about itself
    /// (its KEM key).
    Reader = 1,
    /// Reads and writes events.
    Writer = 2,
    /// Writes, and changes membership (add, remove, roles, invites, epoch keys).
    Admin = 3,
    /// The group's creator: an admin no one can remove or demote.
    Owner = 4,
}

impl Role {
    /// Whether this role may write events.
    pub fn can_write(self) -> bool {
        self >= Role::Writer
    }

    /// Whether this role may change membership.
    pub fn is_admin(self) -> bool {
        self >= Role::Admin
    }

    /// Decodes a grantable role (1..=3).
    pub fn from_grant_byte(b: u8) -> Result<Role, DecodeError> {
        match b {
            1 => Ok(Role::Reader),
            2 => Ok(Role::Writer),
            3 => Ok(Role::Admin),
            v => Err(DecodeError::Invalid {
                field: "role",
                value: v as u64,
            }),
        }
    }

    pub(crate) fn check_grant(self) -> Result<u8, EncodeError> {
        if self == Role::Owner {
            Err(EncodeError::Role { role: self })
        } else {
            Ok(self as u8)
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Role::Reader => "reader",
            Role::Writer => "writer",
            Role::Admin => "admin",
            Role::Owner => "owner",
        })
    }
}

impl std::str::FromStr for Role {
    type Err = DecodeError;
    fn from_str(s: &str) -> Result<Role, DecodeError> {
        match s {
            "reader" => Ok(Role::Reader),
            "writer" => Ok(Role::Writer),
            "admin" => Ok(Role::Admin),
            _ => Err(DecodeError::Invalid {
                field: "role name",
                value: 0,
            }),
        }
    }
}

/// Id of a membership op.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct OpId(pub [u8; 32]);

impl std::fmt::Debug for OpId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "OpId({:02x?})", &self.0[..4])
    }
}

/// What a membership op does.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
// XaeroID keys are inline 898-byte arrays; ops are few, decoded once and kept, so the
// size of the largest variant does not matter.
#[allow(clippy::large_enum_variant)]
pub enum OpBody {
    /// Creates the group's membership: the signer is its owner.
    Genesis {
        /// The owner's public key (its id must be the signer).
        owner: XaeroID,
    },
    /// Adds a member with a role, from `at_seq` of the member's log on.
    Add {
        /// The member's public key.
        member: XaeroID,
        /// Its role.
        role: Role,
        /// First seq of the member's log the role applies to.
        at_seq: u64,
    },
    /// Changes a member's role from `at_seq` of its log on.
    SetRole {
        /// The member.
        member: IdHash,
        /// Its new role.
        role: Role,
        /// First seq of the member's log the role applies to.
        at_seq: u64,
    },
    /// Removes a member: its events from `at_seq` on are refused (the cut-off).
    Remove {
        /// The member.
        member: IdHash,
        /// The cut-off: the member's events with `seq < at_seq` stay valid.
        at_seq: u64,
    },
    /// Revokes an unused invite.
    RevokeInvite {
        /// The invite's id.
        invite: [u8; 16],
    },
    /// An invitee redeems an invite (signed by the invitee).
    Join {
        /// The invite, signed by an admin.
        invite: Invite,
        /// The invitee's public key (its id must be the signer).
        member: XaeroID,
    },
    /// A member announces its ML-KEM-768 key (signed by that member).
    KemKey {
        /// The encapsulation key.
        key: KemPublicKey,
    },
    /// An admin seals an epoch key to members (one of possibly several ops per epoch).
    EpochKeys {
        /// The epoch.
        epoch: u32,
        /// The epoch key's id.
        key_id: [u8; 8],
        /// Sealed keys, one per member, 1..=13.
        sealed: Vec<SealedKey>,
    },
}

impl OpBody {
    fn kind(&self) -> u8 {
        match self {
            OpBody::Genesis { .. } => 1,
            OpBody::Add { .. } => 2,
            OpBody::SetRole { .. } => 3,
            OpBody::Remove { .. } => 4,
            OpBody::RevokeInvite { .. } => 5,
            OpBody::Join { .. } => 6,
            OpBody::KemKey { .. } => 7,
            OpBody::EpochKeys { .. } => 8,
        }
    }

    fn encode_into(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        match self {
            OpBody::Genesis { owner } => put_bytes16(out, owner.as_bytes()),
            OpBody::Add {
                member,
                role,
                at_seq,
            } => {
                put_bytes16(out, member.as_bytes());
                out.push(role.check_grant()?);
                out.extend_from_slice(&at_seq.to_le_bytes());
            }
            OpBody::SetRole {
                member,
                role,
                at_seq,
            } => {
                out.extend_from_slice(&member.0);
                out.push(role.check_grant()?);
                out.extend_from_slice(&at_seq.to_le_bytes());
            }
            OpBody::Remove { member, at_seq } => {
                out.extend_from_slice(&member.0);
                out.extend_from_slice(&at_seq.to_le_bytes());
            }
            OpBody::RevokeInvite { invite } => out.extend_from_slice(invite),
            OpBody::Join { invite, member } => {
                put_bytes16(out, invite.as_bytes());
                put_bytes16(out, member.as_bytes());
            }
            OpBody::KemKey { key } => out.extend_from_slice(key.as_bytes()),
            OpBody::EpochKeys {
                epoch,
                key_id,
                sealed,
            } => {
                if sealed.is_empty() || sealed.len() > MAX_SEALED_PER_OP {
                    return Err(EncodeError::TooMany {
                        field: "sealed keys",
                        len: sealed.len(),
                        max: MAX_SEALED_PER_OP,
                    });
                }
                out.extend_from_slice(&epoch.to_le_bytes());
                out.extend_from_slice(key_id);
                out.extend_from_slice(&(sealed.len() as u16).to_le_bytes());
                for s in sealed {
                    s.encode_into(out);
                }
            }
        }
        Ok(())
    }

    fn read(kind: u8, r: &mut Reader<'_>) -> Result<OpBody, DecodeError> {
        let pk = |r: &mut Reader<'_>, field| {
            let b = r.bytes16(field, XaeroID::ENCODED_LEN, XaeroID::ENCODED_LEN)?;
            XaeroID::from_bytes(b).map_err(|source| DecodeError::Key { field, source })
        };
        Ok(match kind {
            1 => OpBody::Genesis {
                owner: pk(r, "owner key")?,
            },
            2 => OpBody::Add {
                member: pk(r, "member key")?,
                role: Role::from_grant_byte(r.u8("role")?)?,
                at_seq: r.u64("at_seq")?,
            },
            3 => OpBody::SetRole {
                member: IdHash(r.array("member id")?),
                role: Role::from_grant_byte(r.u8("role")?)?,
                at_seq: r.u64("at_seq")?,
            },
            4 => OpBody::Remove {
                member: IdHash(r.array("member id")?),
                at_seq: r.u64("at_seq")?,
            },
            5 => OpBody::RevokeInvite {
                invite: r.array("invite id")?,
            },
            6 => OpBody::Join {
                invite: Invite::decode(r.bytes16("invite", INVITE_LEN, INVITE_LEN)?)?,
                member: pk(r, "member key")?,
            },
            7 => OpBody::KemKey {
                key: KemPublicKey::from_bytes(r.take(KEM_PUBLIC_LEN, "kem key")?)?,
            },
            8 => {
                let epoch = r.u32("epoch")?;
                let key_id = r.array("key id")?;
                let n = r.u16("sealed count")? as usize;
                if n == 0 || n > MAX_SEALED_PER_OP {
                    return Err(DecodeError::Length {
                        field: "sealed count",
                        len: n,
                        min: 1,
                        max: MAX_SEALED_PER_OP,
                    });
                }
                let mut sealed = Vec::with_capacity(n);
                for _ in 0..n {
                    sealed.push(SealedKey::read(r)?);
                }
                OpBody::EpochKeys {
                    epoch,
                    key_id,
                    sealed,
                }
            }
            v => {
                return Err(DecodeError::Invalid {
                    field: "op kind",
                    value: v as u64,
                });
            }
        })
    }
}

/// A signed membership op, with its encoding.
#[derive(Debug, Clone, PartialEq)]
pub struct MemberOp {
    group: GroupId,
    signer: IdHash,
    prev: Vec<OpId>,
    body: OpBody,
    signed_len: usize,
    bytes: Vec<u8>,
}

impl MemberOp {
    /// Encodes and signs an op made by `kp` on the state whose heads are `prev`.
    pub fn sign(
        kp: &XaeroKeypair,
        group: GroupId,
        prev: &[OpId],
        body: OpBody,
    ) -> Result<MemberOp, EncodeError> {
        if prev.len() > MAX_PREV {
            return Err(EncodeError::TooMany {
                field: "prev",
                len: prev.len(),
                max: MAX_PREV,
            });
        }
        let mut out = Vec::with_capacity(1024);
        out.push(OP_VERSION);
        out.push(body.kind());
        out.extend_from_slice(&group.0);
        out.extend_from_slice(&kp.id().0);
        out.push(prev.len() as u8);
        for p in prev {
            out.extend_from_slice(&p.0);
        }
        body.encode_into(&mut out)?;
        let signed_len = out.len();
        let sig = kp
            .sign_with_context(OP_CONTEXT, &out)
            .map_err(|_| EncodeError::Random)?;
        put_bytes16(&mut out, sig.as_bytes());
        Ok(MemberOp {
            group,
            signer: kp.id(),
            prev: prev.to_vec(),
            body,
            signed_len,
            bytes: out,
        })
    }

    /// Decodes an op (the signature is checked by [`MemberOp::verify`], against the
    /// signer's key from the membership state).
    pub fn decode(bytes: &[u8]) -> Result<MemberOp, DecodeError> {
        let mut r = Reader::new(bytes);
        let version = r.u8("op version")?;
        if version != OP_VERSION {
            return Err(DecodeError::Version {
                what: "membership op",
                version,
            });
        }
        let kind = r.u8("op kind")?;
        let group = GroupId(r.array("group")?);
        let signer = IdHash(r.array("signer")?);
        let p = r.u8("prev count")? as usize;
        if p > MAX_PREV {
            return Err(DecodeError::Length {
                field: "prev count",
                len: p,
                min: 0,
                max: MAX_PREV,
            });
        }
        let mut prev = Vec::with_capacity(p);
        for _ in 0..p {
            prev.push(OpId(r.array("prev")?));
        }
        let body = OpBody::read(kind, &mut r)?;
        let signed_len = r.pos();
        let sig = r.bytes16("signature", Signature::ENCODED_LEN, Signature::ENCODED_LEN)?;
        Signature::from_bytes(sig).map_err(|source| DecodeError::Key {
            field: "signature",
            source,
        })?;
        r.finish()?;
        Ok(MemberOp {
            group,
            signer,
            prev,
            body,
            signed_len,
            bytes: bytes.to_vec(),
        })
    }

    /// Whether `key` is the signer's and its signature verifies.
    pub fn verify(&self, key: &XaeroID) -> bool {
        if key.id() != self.signer {
            return false;
        }
        let Ok(sig) = Signature::from_bytes(&self.bytes[self.signed_len + 2..]) else {
            return false;
        };
        key.verify_with_context(OP_CONTEXT, &self.bytes[..self.signed_len], &sig)
            .is_ok()
    }

    /// The op's id.
    pub fn id(&self) -> OpId {
        OpId(blake3::derive_key(OP_ID_CONTEXT, &self.bytes))
    }

    /// The group.
    pub fn group(&self) -> GroupId {
        self.group
    }

    /// The signer's id.
    pub fn signer(&self) -> IdHash {
        self.signer
    }

    /// The heads of the state it was made on.
    pub fn prev(&self) -> &[OpId] {
        &self.prev
    }

    /// What it does.
    pub fn body(&self) -> &OpBody {
        &self.body
    }

    /// The encoding (an event payload).
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_keys::{admin, member};
    use proptest::prelude::*;

    const G: GroupId = GroupId([1; 32]);

    fn ops() -> Vec<OpBody> {
        let (kp, kem) = (member(1), crate::KemKeypair::from_seed(&[4; 64]));
        let invite = Invite::sign(admin(0), G, [9; 16], Role::Writer, 1000, true).unwrap();
        let mut rng = crate::SeededEntropy::new(1);
        let key = crate::EpochKey::generate(1, &mut rng).unwrap();
        let sealed = SealedKey::seal(&G, &key, kp.id(), kem.public(), &mut rng).unwrap();
        vec![
            OpBody::Genesis {
                owner: admin(0).public().clone(),
            },
            OpBody::Add {
                member: kp.public().clone(),
                role: Role::Reader,
                at_seq: 7,
            },
            OpBody::SetRole {
                member: kp.id(),
                role: Role::Admin,
                at_seq: u64::MAX,
            },
            OpBody::Remove {
                member: kp.id(),
                at_seq: 3,
            },
            OpBody::RevokeInvite { invite: [5; 16] },
            OpBody::Join {
                invite,
                member: kp.public().clone(),
            },
            OpBody::KemKey {
                key: kem.public().clone(),
            },
            OpBody::EpochKeys {
                epoch: 1,
                key_id: key.key_id(),
                sealed: vec![sealed; MAX_SEALED_PER_OP],
            },
        ]
    }

    #[test]
    fn every_kind_round_trips_and_verifies() {
        let prev: Vec<OpId> = (0..MAX_PREV as u8).map(|i| OpId([i; 32])).collect();
        for body in ops() {
            let op = MemberOp::sign(admin(0), G, &prev, body).unwrap();
            assert!(op.as_bytes().len() <= xaeroflux_core::event::MAX_PAYLOAD);
            let back = MemberOp::decode(op.as_bytes()).unwrap();
            assert_eq!(back, op);
            assert!(back.verify(admin(0).public()));
            assert!(!back.verify(member(1).public()));
            // Each strict prefix is an error; any flipped byte either fails to decode or
            // fails to verify.
            for cut in 0..op.as_bytes().len() {
                assert!(MemberOp::decode(&op.as_bytes()[..cut]).is_err());
            }
            let mut t = op.as_bytes().to_vec();
            t.push(0);
            assert!(MemberOp::decode(&t).is_err());
        }
    }

    #[test]
    fn owner_role_cannot_be_granted() {
        let body = OpBody::SetRole {
            member: IdHash([1; 32]),
            role: Role::Owner,
            at_seq: 0,
        };
        assert!(matches!(
            MemberOp::sign(admin(0), G, &[], body),
            Err(EncodeError::Role { .. })
        ));
    }

    proptest! {
        #[test]
        fn tampered_ops_do_not_verify(which in 0usize..8, pos: prop::sample::Index, bit in 0u8..8) {
            let body = ops().swap_remove(which);
            let op = MemberOp::sign(admin(0), G, &[OpId([3; 32])], body).unwrap();
            let mut t = op.as_bytes().to_vec();
            let i = pos.index(t.len());
            t[i] ^= 1 << bit;
            if let Ok(back) = MemberOp::decode(&t) {
                prop_assert!(!back.verify(admin(0).public()));
            }
        }

        #[test]
        fn any_bytes_decode_without_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2000)) {
            if let Ok(op) = MemberOp::decode(&bytes) {
                prop_assert_eq!(op.as_bytes(), &bytes[..]);
            }
        }
    }
}
