//! The membership state machine: membership ops in, member list, roles, write windows
//! and epoch keys out. No I/O, no clock: ops arrive with their position in the store's
//! total order ([`Stamp`] = the event header's `(hlc, author, seq)`).
//!
//! # Rules (also in `docs/FORMAT.md`)
//!
//! 1. **One order.** The state is a fold of the valid ops in total order `(hlc,
//!    author, seq)`, never arrival order: every replica holding the same ops holds the
//!    same state ([`Membership::root`] proves it). Concurrent changes by two admins
//!    are therefore resolved by that order: the later op wins (last writer wins per
//!    member), and an op whose signer lost its admin role earlier in the order is void.
//! 2. **Causality.** An op names the heads it was made on (`prev`). It is held back
//!    until every named op is present, and void if a named op does not precede it in
//!    the total order (so a backdated HLC cannot move an op before what it saw).
//! 3. **Validity.** The event's author must be the op's signer and the signature must
//!    verify under the signer's key known to the state (the owner's from Genesis, a
//!    member's from its Add or Join). Genesis must be signed by the owner this replica
//!    was created for (the anchor carried by the invite); only the first counts. Add,
//!    SetRole, Remove, RevokeInvite and EpochKeys need the signer to be admin or owner
//!    *at the seq of the op in its own log*. The owner cannot be added, demoted or
//!    removed. KemKey needs the signer to be a member at that seq.
//! 4. **Write windows and the cut-off.** Each member has a timeline `seq -> role`:
//!    Add/SetRole/Remove/Join set the role from `at_seq` of the member's log on,
//!    replacing what the timeline said from there (Join: from the Join's own seq). The
//!    member's event at `seq` is judged by the timeline entry at or below `seq`.
//!    Removal with `at_seq = c` is the cut-off: the member's events with `seq >= c`
//!    are refused, earlier ones stay valid, whatever order the ops arrive in. The
//!    remover names as `c` the length of the member's log it holds.
//! 5. **Retroactive cut-off.** After the fold, an admin op whose signer the final
//!    timeline does not show as admin at the op's seq (a removal later in the order
//!    with a lower cut-off) is excluded and the fold is repeated until nothing more is
//!    excluded. Exclusions only grow, so this ends, and it depends only on the op set.
//! 6. **Invites.** A Join counts when: the invite is for this group, signed by its
//!    issuer, who is admin at that point of the fold; the Join's HLC milliseconds are
//!    `<=` the expiry; the invite was not revoked earlier in the order; for a single-use
//!    invite, no earlier Join used it; and the joiner is not a current member.
//! 7. **Epochs.** EpochKeys ops with the same key id form one epoch (sealed to at
//!    most 13 members per op). The current epoch is the one with the greatest `(epoch
//!    number, stamp of its first op)`. A key is kept only for members current at that
//!    point of the fold.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use xaeroflux_core::GroupId;
use xaeroid::{IdHash, XaeroID, XaeroKeypair};

use crate::error::{DecodeError, EncodeError, OpenError};
use crate::kem::{Entropy, EpochKey, KemKeypair, KemPublicKey, SealedKey};
use crate::op::{MAX_PREV, MAX_SEALED_PER_OP, MemberOp, OpBody, OpId, Role};

/// Position of an op's event in the store's total order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Stamp {
    /// The event's hybrid logical clock.
    pub hlc: u64,
    /// The event's author.
    pub author: IdHash,
    /// The event's seq in its author's log.
    pub seq: u64,
}

/// What became of an inserted op.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inserted {
    /// New; the state was recomputed.
    New,
    /// Already held at that stamp.
    Duplicate,
}

/// The status of an invite in the current state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InviteStatus {
    /// Neither used nor revoked.
    Open,
    /// Redeemed (a single-use invite cannot be used again).
    Used,
    /// Revoked by an admin.
    Revoked,
}

/// One epoch of the group key.
#[derive(Debug, Clone)]
pub struct EpochInfo {
    /// Epoch number.
    pub epoch: u32,
    /// Key id.
    pub key_id: [u8; 8],
    /// Stamp of its first valid op.
    pub first: Stamp,
    /// The key sealed to each member.
    pub sealed: BTreeMap<IdHash, SealedKey>,
}

#[derive(Default, Clone)]
struct State {
    keys: HashMap<IdHash, XaeroID>,
    timelines: BTreeMap<IdHash, BTreeMap<u64, Option<Role>>>,
    kem: BTreeMap<IdHash, KemPublicKey>,
    used: BTreeSet<[u8; 16]>,
    revoked: BTreeSet<[u8; 16]>,
    epochs: BTreeMap<[u8; 8], EpochInfo>,
    heads: BTreeMap<OpId, Stamp>,
    applied: Vec<(Stamp, OpId)>,
    genesis: bool,
}

impl State {
    fn role_at(&self, m: &IdHash, seq: u64) -> Option<Role> {
        self.timelines
            .get(m)?
            .range(..=seq)
            .next_back()
            .and_then(|(_, r)| *r)
    }

    fn current(&self, m: &IdHash) -> Option<Role> {
        self.timelines
            .get(m)?
            .last_key_value()
            .and_then(|(_, r)| *r)
    }

    fn set_from(&mut self, m: IdHash, at: u64, role: Option<Role>) {
        let t = self.timelines.entry(m).or_default();
        t.split_off(&at);
        t.insert(at, role);
    }
}

/// The membership of one group, folded from its membership ops.
pub struct Membership {
    group: GroupId,
    owner: IdHash,
    ops: BTreeMap<Stamp, MemberOp>,
    by_id: HashMap<OpId, Stamp>,
    sig_ok: HashMap<OpId, bool>,
    excluded: BTreeSet<Stamp>,
    state: State,
}

impl std::fmt::Debug for Membership {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Membership")
            .field("group", &self.group)
            .field("ops", &self.ops.len())
            .field("members", &self.members())
            .finish()
    }
}

impl Membership {
    /// An empty membership of `group` whose owner must be `owner` (from the group's
    /// creation or the invite that brought us in).
    pub fn new(group: GroupId, owner: IdHash) -> Self {
        Membership {
            group,
            owner,
            ops: BTreeMap::new(),
            by_id: HashMap::new(),
            sig_ok: HashMap::new(),
            excluded: BTreeSet::new(),
            state: State::default(),
        }
    }

    /// The group.
    pub fn group(&self) -> GroupId {
        self.group
    }

    /// The owner.
    pub fn owner(&self) -> IdHash {
        self.owner
    }

    /// Adds the payload of a membership event at `stamp` and recomputes the state. Bytes
    /// that do not decode are an error (and change nothing); a decoded op that breaks a
    /// rule is kept but void.
    pub fn insert(&mut self, stamp: Stamp, payload: &[u8]) -> Result<Inserted, DecodeError> {
        let op = MemberOp::decode(payload)?;
        Ok(self.insert_op(stamp, op))
    }

    /// As [`Membership::insert`], for a decoded op.
    pub fn insert_op(&mut self, stamp: Stamp, op: MemberOp) -> Inserted {
        if self.ops.contains_key(&stamp) {
            return Inserted::Duplicate;
        }
        self.add(stamp, op);
        self.recompute();
        Inserted::New
    }

    /// Adds many membership events and recomputes once (a replay on open). Payloads
    /// that do not decode are skipped; returns how many were.
    pub fn insert_all<'p>(&mut self, events: impl IntoIterator<Item = (Stamp, &'p [u8])>) -> usize {
        let mut bad = 0;
        for (stamp, payload) in events {
            match MemberOp::decode(payload) {
                Ok(op) => self.add(stamp, op),
                Err(_) => bad += 1,
            }
        }
        self.recompute();
        bad
    }

    fn add(&mut self, stamp: Stamp, op: MemberOp) {
        if self.ops.contains_key(&stamp) {
            return;
        }
        // The same bytes may sit at two stamps (a replay in another log): the id names
        // the earliest, whatever the arrival order.
        self.by_id
            .entry(op.id())
            .and_modify(|s| *s = (*s).min(stamp))
            .or_insert(stamp);
        self.ops.insert(stamp, op);
    }

    fn recompute(&mut self) {
        loop {
            let state = self.fold();
            let mut more = false;
            for (stamp, _) in &state.applied {
                let Some(op) = self.ops.get(stamp) else {
                    continue;
                };
                let need = match op.body() {
                    OpBody::Genesis { .. } | OpBody::Join { .. } => None,
                    OpBody::KemKey { .. } => Some(Role::Reader),
                    _ => Some(Role::Admin),
                };
                if let Some(need) = need
                    && state
                        .role_at(&op.signer(), stamp.seq)
                        .is_none_or(|r| r < need)
                {
                    self.excluded.insert(*stamp);
                    more = true;
                }
            }
            if !more {
                self.state = state;
                return;
            }
        }
    }

    fn fold(&mut self) -> State {
        let mut st = State::default();
        let ctx = Ctx {
            group: self.group,
            owner: self.owner,
        };
        for (stamp, op) in &self.ops {
            if self.excluded.contains(stamp) {
                continue;
            }
            // Rule 2: every prev present and earlier in the order.
            let causal = op
                .prev()
                .iter()
                .all(|p| self.by_id.get(p).is_some_and(|s| s < stamp));
            if !causal || op.group() != self.group || op.signer() != stamp.author {
                continue;
            }
            if ctx.valid(&mut self.sig_ok, &st, stamp, op) {
                apply(&mut st, stamp, op);
            }
        }
        st
    }

    /// The ops at the head of the state (what a new op names as `prev`), at most
    /// [`MAX_PREV`]: the latest in total order.
    pub fn heads(&self) -> Vec<OpId> {
        let mut h: Vec<(Stamp, OpId)> = self.state.heads.iter().map(|(i, s)| (*s, *i)).collect();
        h.sort();
        h.iter().rev().take(MAX_PREV).map(|(_, i)| *i).collect()
    }

    /// Current members and roles, by id.
    pub fn members(&self) -> Vec<(IdHash, Role)> {
        self.state
            .timelines
            .keys()
            .filter_map(|m| self.state.current(m).map(|r| (*m, r)))
            .collect()
    }

    /// A member's current role (`None`: not a member).
    pub fn role(&self, member: &IdHash) -> Option<Role> {
        self.state.current(member)
    }

    /// The role that governs `member`'s event at `seq`.
    pub fn role_at(&self, member: &IdHash, seq: u64) -> Option<Role> {
        self.state.role_at(member, seq)
    }

    /// Whether `author`'s (non-membership) event at `seq` may be stored: the author is
    /// writer, admin or owner at that seq (rule 4).
    pub fn may_write(&self, author: &IdHash, seq: u64) -> bool {
        self.role_at(author, seq).is_some_and(Role::can_write)
    }

    /// A member's public key, if known.
    pub fn key(&self, member: &IdHash) -> Option<&XaeroID> {
        self.state.keys.get(member)
    }

    /// A member's announced ML-KEM-768 key.
    pub fn kem_key(&self, member: &IdHash) -> Option<&KemPublicKey> {
        self.state.kem.get(member)
    }

    /// An invite's status.
    pub fn invite_status(&self, id: &[u8; 16]) -> InviteStatus {
        if self.state.used.contains(id) {
            InviteStatus::Used
        } else if self.state.revoked.contains(id) {
            InviteStatus::Revoked
        } else {
            InviteStatus::Open
        }
    }

    /// Every epoch, by key id.
    pub fn epochs(&self) -> impl Iterator<Item = &EpochInfo> {
        self.state.epochs.values()
    }

    /// The current epoch (rule 7).
    pub fn current_epoch(&self) -> Option<&EpochInfo> {
        self.state
            .epochs
            .values()
            .max_by_key(|e| (e.epoch, e.first))
    }

    /// Opens every epoch key sealed to `member` with its KEM key pair.
    pub fn open_keys(&self, member: &IdHash, kp: &KemKeypair) -> Vec<EpochKey> {
        self.state
            .epochs
            .values()
            .filter_map(|e| {
                let s = e.sealed.get(member)?;
                s.open(&self.group, e.epoch, &e.key_id, kp).ok()
            })
            .collect()
    }

    /// Opens the current epoch's key for `member`.
    pub fn current_key(&self, member: &IdHash, kp: &KemKeypair) -> Result<EpochKey, OpenError> {
        let e = self.current_epoch().ok_or(OpenError::NoKey {
            epoch: 0,
            key_id: [0; 8],
        })?;
        let s = e.sealed.get(member).ok_or(OpenError::NoKey {
            epoch: e.epoch,
            key_id: e.key_id,
        })?;
        s.open(&self.group, e.epoch, &e.key_id, kp)
    }

    /// Number of ops held (valid or not).
    pub fn op_count(&self) -> usize {
        self.ops.len()
    }

    /// Stamps of the valid ops, in total order.
    pub fn applied(&self) -> impl Iterator<Item = &Stamp> {
        self.state.applied.iter().map(|(s, _)| s)
    }

    /// BLAKE3 over a canonical encoding of the state (member timelines, KEM keys, invite
    /// statuses, epochs): equal on replicas that agree.
    pub fn root(&self) -> [u8; 32] {
        let st = &self.state;
        let mut h = blake3::Hasher::new_derive_key("xaeroflux/access/state-root/v1");
        h.update(&self.group.0);
        for (m, t) in &st.timelines {
            h.update(&m.0);
            h.update(&(t.len() as u64).to_le_bytes());
            for (at, r) in t {
                h.update(&at.to_le_bytes());
                h.update(&[r.map_or(0, |r| r as u8)]);
            }
        }
        for (m, k) in &st.kem {
            h.update(&m.0);
            h.update(k.as_bytes());
        }
        for i in &st.used {
            h.update(b"u");
            h.update(i);
        }
        for i in &st.revoked {
            h.update(b"r");
            h.update(i);
        }
        for e in st.epochs.values() {
            h.update(&e.key_id);
            h.update(&e.epoch.to_le_bytes());
            for m in e.sealed.keys() {
                h.update(&m.0);
            }
        }
        *h.finalize().as_bytes()
    }

    /// Signs an op by `kp` on the current heads.
    pub fn make_op(&self, kp: &XaeroKeypair, body: OpBody) -> Result<MemberOp, EncodeError> {
        MemberOp::sign(kp, self.group, &self.heads(), body)
    }

    /// Current members with a KEM key but no sealed copy of the current epoch's key
    /// (members added since, or a rotation a crash cut short).
    pub fn missing_keys(&self) -> Vec<IdHash> {
        let Some(e) = self.current_epoch() else {
            return Vec::new();
        };
        self.members()
            .into_iter()
            .map(|(m, _)| m)
            .filter(|m| self.state.kem.contains_key(m) && !e.sealed.contains_key(m))
            .collect()
    }

    /// Seals the current epoch's `key` to [`Membership::missing_keys`], as EpochKeys
    /// ops of that same epoch signed by `admin` (none if nobody misses it). This
    /// completes a rotation cut short and hands the key to members added after it.
    /// `key` must be the current epoch's key.
    pub fn share(
        &self,
        admin: &XaeroKeypair,
        key: &EpochKey,
        rng: &mut impl Entropy,
    ) -> Result<Vec<MemberOp>, EncodeError> {
        let Some(e) = self.current_epoch() else {
            return Ok(Vec::new());
        };
        if e.key_id != key.key_id() || e.epoch != key.epoch() {
            return Err(EncodeError::NotCurrent { epoch: key.epoch() });
        }
        let mut sealed = Vec::new();
        for m in self.missing_keys() {
            if let Some(k) = self.state.kem.get(&m) {
                sealed.push(SealedKey::seal(&self.group, key, m, k, rng)?);
            }
        }
        self.epoch_ops(admin, key, sealed)
    }

    fn epoch_ops(
        &self,
        admin: &XaeroKeypair,
        key: &EpochKey,
        sealed: Vec<SealedKey>,
    ) -> Result<Vec<MemberOp>, EncodeError> {
        let heads = self.heads();
        let mut ops = Vec::with_capacity(sealed.len().div_ceil(MAX_SEALED_PER_OP));
        for chunk in sealed.chunks(MAX_SEALED_PER_OP) {
            let body = OpBody::EpochKeys {
                epoch: key.epoch(),
                key_id: key.key_id(),
                sealed: chunk.to_vec(),
            };
            ops.push(MemberOp::sign(admin, self.group, &heads, body)?);
        }
        Ok(ops)
    }

    /// A new epoch (current + 1) sealed to every current member with a KEM key, as
    /// EpochKeys ops of at most 13 keys, signed by `admin`; with the new key. The
    /// admin's own sealed key is in the first op, so a rotation cut short after any op
    /// leaves the admin able to open the key and complete it ([`Membership::share`]).
    pub fn rotate(
        &self,
        admin: &XaeroKeypair,
        rng: &mut impl Entropy,
    ) -> Result<(EpochKey, Vec<MemberOp>), EncodeError> {
        let epoch = self
            .current_epoch()
            .map_or(1, |e| e.epoch.saturating_add(1));
        let key = EpochKey::generate(epoch, rng)?;
        let me = admin.id();
        let mut members: Vec<IdHash> = self.members().into_iter().map(|(m, _)| m).collect();
        members.sort_by_key(|m| *m != me);
        let mut sealed = Vec::new();
        for m in members {
            if let Some(k) = self.state.kem.get(&m) {
                sealed.push(SealedKey::seal(&self.group, &key, m, k, rng)?);
            }
        }
        let ops = self.epoch_ops(admin, &key, sealed)?;
        Ok((key, ops))
    }
}

/// What validity needs besides the state (kept apart from the op map it reads).
struct Ctx {
    group: GroupId,
    owner: IdHash,
}

impl Ctx {
    fn valid(
        &self,
        sig_ok: &mut HashMap<OpId, bool>,
        st: &State,
        stamp: &Stamp,
        op: &MemberOp,
    ) -> bool {
        let signer = op.signer();
        let key = match op.body() {
            OpBody::Genesis { owner } => {
                if st.genesis || signer != self.owner {
                    return false;
                }
                owner.clone()
            }
            OpBody::Join { member, .. } => member.clone(),
            _ => match st.keys.get(&signer) {
                Some(k) => k.clone(),
                None => return false,
            },
        };
        if !*sig_ok.entry(op.id()).or_insert_with(|| op.verify(&key)) {
            return false;
        }
        let admin = st.role_at(&signer, stamp.seq).is_some_and(Role::is_admin);
        match op.body() {
            OpBody::Genesis { .. } => true,
            OpBody::Add { member, .. } => admin && member.id() != self.owner,
            OpBody::SetRole { member, .. } | OpBody::Remove { member, .. } => {
                admin && *member != self.owner && st.timelines.contains_key(member)
            }
            OpBody::RevokeInvite { .. } => admin,
            OpBody::KemKey { .. } => st.role_at(&signer, stamp.seq).is_some(),
            OpBody::EpochKeys { epoch, key_id, .. } => {
                admin && st.epochs.get(key_id).is_none_or(|e| e.epoch == *epoch)
            }
            OpBody::Join { invite, .. } => {
                let issuer_ok = st.current(&invite.issuer()).is_some_and(Role::is_admin)
                    && st
                        .keys
                        .get(&invite.issuer())
                        .is_some_and(|k| invite.verify(k));
                issuer_ok
                    && invite.group() == self.group
                    && (stamp.hlc >> 16) <= invite.expires_ms()
                    && !st.revoked.contains(&invite.id())
                    && !(invite.single_use() && st.used.contains(&invite.id()))
                    && st.current(&signer).is_none()
                    && signer != self.owner
            }
        }
    }
}

fn apply(st: &mut State, stamp: &Stamp, op: &MemberOp) {
    match op.body() {
        OpBody::Genesis { owner } => {
            st.genesis = true;
            st.keys.insert(owner.id(), owner.clone());
            st.set_from(owner.id(), 0, Some(Role::Owner));
        }
        OpBody::Add {
            member,
            role,
            at_seq,
        } => {
            st.keys.insert(member.id(), member.clone());
            st.set_from(member.id(), *at_seq, Some(*role));
        }
        OpBody::SetRole {
            member,
            role,
            at_seq,
        } => st.set_from(*member, *at_seq, Some(*role)),
        OpBody::Remove { member, at_seq } => st.set_from(*member, *at_seq, None),
        OpBody::RevokeInvite { invite } => {
            st.revoked.insert(*invite);
        }
        OpBody::Join { invite, member } => {
            st.keys.insert(member.id(), member.clone());
            st.set_from(member.id(), stamp.seq, Some(invite.role()));
            st.used.insert(invite.id());
        }
        OpBody::KemKey { key } => {
            st.kem.insert(op.signer(), key.clone());
        }
        OpBody::EpochKeys {
            epoch,
            key_id,
            sealed,
        } => {
            let current: Vec<bool> = sealed
                .iter()
                .map(|s| st.current(&s.member).is_some())
                .collect();
            let e = st.epochs.entry(*key_id).or_insert_with(|| EpochInfo {
                epoch: *epoch,
                key_id: *key_id,
                first: *stamp,
                sealed: BTreeMap::new(),
            });
            for (s, cur) in sealed.iter().zip(current) {
                if cur {
                    e.sealed.entry(s.member).or_insert_with(|| s.clone());
                }
            }
        }
    }
    for p in op.prev() {
        st.heads.remove(p);
    }
    let id = op.id();
    st.heads.insert(id, *stamp);
    st.applied.push((*stamp, id));
}
