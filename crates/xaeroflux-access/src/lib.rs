//! Group access control for XaeroFlux: signed membership, roles, invites, and
//! post-quantum end-to-end encryption of payloads. No I/O: the node feeds membership
//! events (type [`MEMBERSHIP_OP_TYPE`]) in, with their position in the store's total
//! order, and asks [`Membership::may_write`] before storing an event from a peer.
//!
//! - [`MemberOp`]: the signed membership operations (genesis, add, set role, remove,
//!   revoke invite, join, KEM key, epoch keys); [`Invite`]: an admin's signed invite.
//! - [`Membership`]: the deterministic fold (rules in its module docs and
//!   `docs/FORMAT.md`).
//! - [`KemKeypair`] (ML-KEM-768, FIPS 203, RustCrypto `ml-kem` pinned to 0.3.4),
//!   [`EpochKey`], [`SealedKey`]: epoch keys sealed to each member.
//! - [`PayloadSealer`] / [`open_payload`]: AES-256-GCM payload envelopes ([`Envelope`]).
//!
//! ```
//! use xaeroflux_access::{
//!     Membership, OpBody, Role, SeededEntropy, Stamp, KemKeypair, open_payload, seal_payload,
//! };
//! use xaeroflux_core::GroupId;
//! use xaeroid::XaeroKeypair;
//!
//! let group = GroupId([1; 32]);
//! let (owner, bob) = (XaeroKeypair::generate(), XaeroKeypair::generate());
//! let mut rng = SeededEntropy::new(7);
//! let bob_kem = KemKeypair::generate(&mut rng)?;
//! let mut m = Membership::new(group, owner.id());
//! let at = |kp: &XaeroKeypair, hlc, seq| Stamp { hlc, author: kp.id(), seq };
//!
//! // The owner creates the membership and adds Bob as a reader.
//! let op = m.make_op(&owner, OpBody::Genesis { owner: owner.public().clone() })?;
//! m.insert_op(at(&owner, 1, 0), op);
//! let op = m.make_op(&owner, OpBody::Add { member: bob.public().clone(), role: Role::Reader, at_seq: 0 })?;
//! m.insert_op(at(&owner, 2, 1), op);
//! // Bob announces his ML-KEM-768 key; the owner seals an epoch key to the members.
//! let op = m.make_op(&bob, OpBody::KemKey { key: bob_kem.public().clone() })?;
//! m.insert_op(at(&bob, 3, 0), op);
//! let (key, ops) = m.rotate(&owner, &mut rng)?;
//! for op in ops { m.insert_op(at(&owner, 4, 2), op); }
//!
//! assert_eq!(m.role(&bob.id()), Some(Role::Reader));
//! assert!(!m.may_write(&bob.id(), 1)); // a reader's events are refused
//! let sealed = seal_payload(&group, 300, &key, b"hello", &mut rng)?;
//! let bobs = m.current_key(&bob.id(), &bob_kem)?;
//! assert_eq!(&open_payload(&group, 300, &sealed, |_, _| Some(&bobs))?[..], b"hello");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod envelope;
mod error;
mod invite;
mod kem;
mod op;
mod policy;
mod read;
mod state;
#[cfg(test)]
mod test_keys;

pub use envelope::{
    ENVELOPE_HEADER_LEN, ENVELOPE_OVERHEAD, ENVELOPE_VERSION, Envelope, MAX_PLAINTEXT,
    PayloadSealer, SEALER_LIMIT, open_payload, seal_payload,
};
pub use error::{DecodeError, EncodeError, OpenError};
pub use invite::{INVITE_CONTEXT, INVITE_LEN, Invite};
pub use kem::{
    Entropy, EpochKey, KEM_CIPHERTEXT_LEN, KEM_PUBLIC_LEN, KemKeypair, KemPublicKey, OsEntropy,
    SEALED_KEY_LEN, SealedKey, SeededEntropy, WRAPPED_LEN,
};
pub use op::{
    MAX_PREV, MAX_SEALED_PER_OP, MEMBERSHIP_OP_TYPE, MemberOp, OP_CONTEXT, OP_VERSION, OpBody,
    OpId, Role,
};
pub use policy::AccessControl;
pub use state::{EpochInfo, Inserted, InviteStatus, Membership, Stamp};
