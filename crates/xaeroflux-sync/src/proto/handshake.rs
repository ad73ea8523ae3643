//! The handshake transcript, its signature and its membership MAC.
//!
//! Transcript (177 bytes) for the side with role `r`:
//! `"xaeroflux/sync/1"` (16) ‖ `r` (1) ‖ TLS exported keying material (32) ‖
//! initiator endpoint id (32) ‖ acceptor endpoint id (32) ‖ group id (32) ‖
//! signer's XaeroID id (32).
//!
//! - signature: FN-DSA over the transcript with the context [`HELLO_CONTEXT`];
//! - MAC: `BLAKE3-keyed(Group::membership_mac_key(), transcript)`.
//!
//! The keying material is unique per TLS session, so a Hello replayed on another
//! connection (by a relay or a man in the middle) fails both checks. Including the role
//! stops a Hello from being reflected back to its sender as the other side's.

use xaeroflux_core::{Group, GroupId};
use xaeroid::{IdHash, XaeroID, XaeroKeypair};

use crate::frame::{Hello, HelloKey, PROTOCOL_TAG, Role};

/// FN-DSA domain context of Hello signatures.
pub const HELLO_CONTEXT: &[u8] = b"xaeroflux/sync/1/hello";
/// Length of the transcript.
pub const TRANSCRIPT_LEN: usize = 16 + 1 + 32 * 5;

/// What the transport knows about a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TransportParams {
    /// Our endpoint id (iroh node id), opaque.
    pub local_endpoint: [u8; 32],
    /// The peer's endpoint id, as authenticated by TLS.
    pub remote_endpoint: [u8; 32],
    /// TLS exported keying material (label `"xaeroflux/sync/1"`, 32 bytes).
    pub keying_material: [u8; 32],
}

impl TransportParams {
    /// `(initiator, acceptor)` endpoint ids for a session of role `role`.
    pub fn endpoints(&self, role: Role) -> ([u8; 32], [u8; 32]) {
        match role {
            Role::Initiator => (self.local_endpoint, self.remote_endpoint),
            Role::Acceptor => (self.remote_endpoint, self.local_endpoint),
        }
    }
}

/// Builds the transcript signed by the side with role `signer_role`.
pub fn transcript(
    signer_role: Role,
    keying_material: &[u8; 32],
    initiator: &[u8; 32],
    acceptor: &[u8; 32],
    group: &GroupId,
    signer: &IdHash,
) -> [u8; TRANSCRIPT_LEN] {
    let mut t = [0u8; TRANSCRIPT_LEN];
    t[..16].copy_from_slice(&PROTOCOL_TAG);
    t[16] = signer_role.to_byte();
    t[17..49].copy_from_slice(keying_material);
    t[49..81].copy_from_slice(initiator);
    t[81..113].copy_from_slice(acceptor);
    t[113..145].copy_from_slice(group.as_bytes());
    t[145..177].copy_from_slice(signer.as_bytes());
    t
}

/// Our Hello for a connection; with `short`, it names our key by its id only (for a
/// peer that holds the key from an earlier session).
pub fn make_hello(
    role: Role,
    params: &TransportParams,
    group: &Group,
    keypair: &XaeroKeypair,
    short: bool,
) -> Hello {
    let (initiator, acceptor) = params.endpoints(role);
    let t = transcript(
        role,
        &params.keying_material,
        &initiator,
        &acceptor,
        &group.id(),
        &keypair.public().id(),
    );
    let signature = keypair
        .sign_with_context(HELLO_CONTEXT, &t)
        .expect("hello context is shorter than 255 bytes");
    Hello {
        tag: PROTOCOL_TAG,
        role,
        initiator_endpoint: initiator,
        acceptor_endpoint: acceptor,
        keying_material: params.keying_material,
        group: group.id(),
        key: if short {
            HelloKey::Id(keypair.public().id())
        } else {
            HelloKey::Full(keypair.public().clone())
        },
        signature,
        mac: *blake3::keyed_hash(&group.membership_mac_key(), &t).as_bytes(),
    }
}

/// Why a Hello was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HelloFault {
    /// Wrong protocol tag.
    Tag,
    /// The sender claims our role.
    Role,
    /// Keying material or endpoint ids differ from this connection's (replay).
    Transcript,
    /// Another group.
    Group,
    /// The membership MAC does not verify.
    Mac,
    /// The Hello names a key by its id and `resolve` does not know it.
    UnknownKey,
    /// The signature does not verify.
    Signature,
}

/// Checks a peer's Hello against our view of the connection. The membership MAC
/// first, over the transcript rebuilt from our own view (our keying material, endpoint
/// ids and group, the role the peer must have): whatever else is wrong with the Hello of
/// a non-member (tag, role, keying material, endpoint ids, group), it fails as
/// [`HelloFault::Mac`], so the answer does not depend on whether we sync the group it
/// names. Only a peer that proved membership gets the finer faults. The Falcon
/// verification comes last. `resolve` looks up a key the Hello names by its id only.
/// Returns the peer's verified key.
pub fn verify_hello(
    hello: &Hello,
    our_role: Role,
    params: &TransportParams,
    group: &Group,
    resolve: impl FnOnce(&IdHash) -> Option<XaeroID>,
) -> Result<XaeroID, HelloFault> {
    let (initiator, acceptor) = params.endpoints(our_role);
    // Rebuilt from our own view of the connection, never from the peer's claims.
    let id = hello.key.id();
    let t = transcript(
        our_role.peer(),
        &params.keying_material,
        &initiator,
        &acceptor,
        &group.id(),
        &id,
    );
    // blake3::Hash compares in constant time.
    if blake3::keyed_hash(&group.membership_mac_key(), &t) != blake3::Hash::from_bytes(hello.mac) {
        return Err(HelloFault::Mac);
    }
    if hello.tag != PROTOCOL_TAG {
        return Err(HelloFault::Tag);
    }
    if hello.role != our_role.peer() {
        return Err(HelloFault::Role);
    }
    if hello.keying_material != params.keying_material
        || hello.initiator_endpoint != initiator
        || hello.acceptor_endpoint != acceptor
    {
        return Err(HelloFault::Transcript);
    }
    if hello.group != group.id() {
        return Err(HelloFault::Group);
    }
    let key = match &hello.key {
        HelloKey::Full(k) => k.clone(),
        HelloKey::Id(h) => resolve(h)
            .filter(|k| k.id() == *h)
            .ok_or(HelloFault::UnknownKey)?,
    };
    key.verify_with_context(HELLO_CONTEXT, &t, &hello.signature)
        .map_err(|_| HelloFault::Signature)?;
    Ok(key)
}
