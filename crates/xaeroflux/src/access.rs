//! Group access control on an open store (rules and formats: crate `xaeroflux-access`).
//!
//! A group under access control keeps its membership as signed ops (events of type 16)
//! in the store. Every store follows the membership of its controlled groups: on open
//! it replays their membership events, then a thread feeds it each committed one; the
//! sync sessions ask it which events to store and which peers to admit
//! ([`xaeroflux_sync::AccessGate`]). An op this node writes is applied before the call
//! returns, so the next op sees it.
//!
//! Files in the data directory: `access/kem.key` (this node's ML-KEM-768 seed, 64
//! bytes, mode 0600) and `access/<group hex>.owner` (the 32-byte owner id each
//! controlled group is anchored to). Epoch keys are not stored: they are opened again
//! from the sealed keys in the membership log.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use xaeroflux_access::{
    AccessControl, EncodeError, Invite, KemKeypair, MEMBERSHIP_OP_TYPE, Membership, OpBody,
    OpenError, OsEntropy, Role, Stamp,
};
use xaeroflux_core::{Event, EventId, GroupId};
use xaeroflux_store::{Engine, Filter, Start, Subscription};
use xaeroflux_sync::SyncHost;
use xaeroid::{IdHash, XaeroID, XaeroKeypair};
use zeroize::Zeroizing;

mod invites;

use crate::XaeroFlux;
use crate::sealing::KeyRing;

/// Why an access-control call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AccessError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] xaeroflux_store::Error),
    /// The group is not under access control on this node.
    #[error("group {group} is not under access control")]
    NotControlled {
        /// The group.
        group: GroupId,
    },
    /// The group is not one of this store's groups.
    #[error("unknown group {group}")]
    UnknownGroup {
        /// The group.
        group: GroupId,
    },
    /// The membership did not accept this node's op (e.g. not an admin).
    #[error("the membership refused the op: {what}")]
    Refused {
        /// What was refused.
        what: &'static str,
    },
    /// An op or payload could not be made.
    #[error(transparent)]
    Encode(#[from] EncodeError),
    /// A payload did not open.
    #[error(transparent)]
    Open(#[from] OpenError),
    /// Reading or writing a file under `access/`.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// Result of access-control calls.
pub type AccessResult<T> = std::result::Result<T, AccessError>;

/// The store's access control: state, this node's KEM key, opened epoch keys, feeder.
pub(crate) struct AccessSlot {
    pub(crate) control: Arc<AccessControl>,
    pub(crate) ring: Arc<KeyRing>,
    stop: Arc<AtomicBool>,
    feeder: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for AccessSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessSlot")
            .field("control", &self.control)
            .finish_non_exhaustive()
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> AccessError + '_ {
    move |source| AccessError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Writes `bytes` to `path` with mode 0600, via a temp file, fsync and rename.
fn write_private(path: &Path, bytes: &[u8]) -> AccessResult<()> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
    let mut f = o.open(&tmp).map_err(io(&tmp))?;
    f.write_all(bytes).map_err(io(&tmp))?;
    f.sync_all().map_err(io(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io(path))
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn stamp(e: &Event) -> Stamp {
    Stamp {
        hlc: e.header.hlc.as_u64(),
        author: IdHash(e.header.author.0),
        seq: e.header.seq,
    }
}

impl AccessSlot {
    /// Loads the KEM key and the controlled groups, replays their membership events.
    pub(crate) fn open(engine: &Engine) -> AccessResult<(AccessSlot, Subscription)> {
        let dir = engine.data_dir().join("access");
        std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        let kem_path = dir.join("kem.key");
        let kem = match std::fs::read(&kem_path) {
            Ok(b) => {
                let seed: Zeroizing<[u8; 64]> =
                    Zeroizing::new(b.as_slice().try_into().map_err(|_| AccessError::Io {
                        path: kem_path.clone(),
                        source: std::io::Error::other("not a 64-byte ML-KEM seed"),
                    })?);
                KemKeypair::from_seed(&seed)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let kp = KemKeypair::generate(&mut OsEntropy)?;
                write_private(&kem_path, kp.seed())?;
                kp
            }
            Err(e) => return Err(io(&kem_path)(e)),
        };
        let control = Arc::new(AccessControl::new(now_ms));
        let me = IdHash(engine.author().0);
        for entry in std::fs::read_dir(&dir).map_err(io(&dir))? {
            let path = entry.map_err(io(&dir))?.path();
            if path.extension().and_then(|e| e.to_str()) != Some("owner") {
                continue;
            }
            let name = path.file_stem().and_then(|s| s.to_str()).unwrap_or("");
            let (Ok(group), Ok(owner)) = (
                GroupId::from_hex(name),
                std::fs::read(&path).map_err(io(&path))?.try_into(),
            ) else {
                continue;
            };
            control.control(Membership::new(group, IdHash(owner)), me);
            invites::load(&dir, &group, &control)?;
        }
        // Replay what is committed, so sessions never see a half-built state.
        let mut sub = engine.subscribe(
            Filter::all()
                .event_type(MEMBERSHIP_OP_TYPE)
                .start(Start::Beginning),
        );
        while let Some(e) = sub.try_next()? {
            let _ = control.observe(
                &e.event.header.group,
                stamp(&e.event),
                MEMBERSHIP_OP_TYPE,
                &e.event.payload,
            );
        }
        let slot = AccessSlot {
            ring: Arc::new(KeyRing::new(control.clone(), kem, me)),
            control,
            stop: Arc::new(AtomicBool::new(false)),
            feeder: Mutex::new(None),
        };
        Ok((slot, sub))
    }

    /// Follows committed membership events from where the replay stopped.
    pub(crate) fn start_feeder(&self, mut sub: Subscription) {
        let control = self.control.clone();
        let stop = self.stop.clone();
        let h = std::thread::Builder::new()
            .name("xaeroflux-access".into())
            .spawn(move || {
                while !stop.load(Ordering::Acquire) {
                    match sub.next_timeout(Duration::from_millis(100)) {
                        Ok(Some(e)) => {
                            let r = control.observe(
                                &e.event.header.group,
                                stamp(&e.event),
                                MEMBERSHIP_OP_TYPE,
                                &e.event.payload,
                            );
                            if let Err(err) = r {
                                tracing::debug!(error = %err, "membership event does not decode");
                            }
                        }
                        Ok(None) => {}
                        Err(err) => {
                            tracing::warn!(error = %err, "membership feed stopped");
                            return;
                        }
                    }
                }
            });
        match h {
            Ok(h) => *self.feeder.lock().unwrap_or_else(|p| p.into_inner()) = Some(h),
            Err(e) => tracing::warn!(error = %e, "cannot start the membership feed"),
        }
    }

    /// Stops the feeder thread and waits for it.
    pub(crate) fn stop(&self) {
        self.stop.store(true, Ordering::Release);
        let h = self.feeder.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(h) = h {
            let _ = h.join();
        }
    }
}

impl XaeroFlux {
    fn slot(&self) -> &AccessSlot {
        &self.access
    }

    /// The node's access control (what sync consults).
    pub fn access_control(&self) -> &Arc<AccessControl> {
        &self.slot().control
    }

    /// This node's ML-KEM-768 key pair.
    pub fn kem_keypair(&self) -> &KemKeypair {
        &self.slot().ring.kem
    }

    fn keypair(&self) -> Arc<XaeroKeypair> {
        self.sync_host().keypair()
    }

    fn me(&self) -> IdHash {
        IdHash(self.author().0)
    }

    fn anchor(&self, group: &GroupId, owner: IdHash) -> AccessResult<()> {
        if !self.groups().contains(group) {
            return Err(AccessError::UnknownGroup { group: *group });
        }
        let path = self
            .data_dir()
            .join("access")
            .join(format!("{group}.owner"));
        write_private(&path, &owner.0)?;
        if !self.slot().control.is_controlled(group) {
            self.slot()
                .control
                .control(Membership::new(*group, owner), self.me());
            // Pick up membership events already stored for the group.
            let mut sub = self.subscribe(
                Filter::all()
                    .group(*group)
                    .event_type(MEMBERSHIP_OP_TYPE)
                    .start(Start::Beginning),
            );
            while let Some(e) = sub.try_next()? {
                let _ = self.slot().control.observe(
                    group,
                    stamp(&e.event),
                    MEMBERSHIP_OP_TYPE,
                    &e.event.payload,
                );
            }
        }
        Ok(())
    }

    /// Writes a membership op signed by this node and applies it before returning.
    fn write_op(&self, group: &GroupId, body: OpBody) -> AccessResult<EventId> {
        let kp = self.keypair();
        let op = self
            .slot()
            .control
            .with(group, |m| m.make_op(&kp, body))
            .ok_or(AccessError::NotControlled { group: *group })??;
        let id = self.write_reserved_to(group, op.as_bytes(), MEMBERSHIP_OP_TYPE)?;
        self.flush()?;
        if let Some(e) = Engine::get(self, &id)? {
            let _ = self
                .slot()
                .control
                .observe(group, stamp(&e), MEMBERSHIP_OP_TYPE, &e.payload);
        }
        Ok(id)
    }

    fn applied(&self, group: &GroupId, id: &EventId) -> AccessResult<bool> {
        let Some(e) = Engine::get(self, id)? else {
            return Ok(false);
        };
        let s = stamp(&e);
        Ok(self
            .slot()
            .control
            .with(group, |m| m.applied().any(|a| *a == s))
            .unwrap_or(false))
    }

    /// Puts `group` (one of this store's groups) under access control with this node
    /// as its owner: writes the genesis op, this node's KEM key and a first epoch key.
    pub fn access_create(&self, group: &GroupId) -> AccessResult<()> {
        self.anchor(group, self.me())?;
        let owner = self.keypair().public().clone();
        self.write_op(group, OpBody::Genesis { owner })?;
        self.announce_kem(group)?;
        self.access_rotate(group)
    }

    /// Follows the membership of `group` whose owner is `owner` (from an invite).
    pub fn access_follow(&self, group: &GroupId, owner: IdHash) -> AccessResult<()> {
        self.anchor(group, owner)
    }

    fn announce_kem(&self, group: &GroupId) -> AccessResult<()> {
        let key = self.slot().ring.kem.public().clone();
        self.write_op(group, OpBody::KemKey { key })?;
        Ok(())
    }

    /// Signs an invite to `group` granting `role`, valid until `expires_ms` (Unix ms).
    pub fn access_invite(
        &self,
        group: &GroupId,
        role: Role,
        expires_ms: u64,
        single_use: bool,
    ) -> AccessResult<Invite> {
        let mut id = [0u8; 16];
        xaeroflux_access::Entropy::fill(&mut OsEntropy, &mut id)?;
        if !self.slot().control.is_controlled(group) {
            return Err(AccessError::NotControlled { group: *group });
        }
        let inv = Invite::sign(&self.keypair(), *group, id, role, expires_ms, single_use)?;
        self.persist_invite(&inv)?;
        Ok(inv)
    }

    /// Redeems an invite: follows the group (anchored to `owner`), writes the Join op
    /// and this node's KEM key.
    pub fn access_join(&self, invite: &Invite, owner: IdHash) -> AccessResult<()> {
        let group = invite.group();
        self.anchor(&group, owner)?;
        let member = self.keypair().public().clone();
        self.write_op(
            &group,
            OpBody::Join {
                invite: invite.clone(),
                member,
            },
        )?;
        self.announce_kem(&group)
    }

    fn log_len(&self, group: &GroupId, member: &IdHash) -> AccessResult<u64> {
        Ok(self
            .read()?
            .logs_of(group)?
            .into_iter()
            .find(|(a, _)| a.0 == member.0)
            .map_or(0, |(_, n)| n))
    }

    /// Adds `member` with `role` (from its next event on).
    pub fn access_add(&self, group: &GroupId, member: &XaeroID, role: Role) -> AccessResult<()> {
        let at_seq = self.log_len(group, &member.id())?;
        let id = self.write_op(
            group,
            OpBody::Add {
                member: member.clone(),
                role,
                at_seq,
            },
        )?;
        self.require(group, &id, "add")
    }

    /// Changes `member`'s role from its next event on.
    pub fn access_set_role(
        &self,
        group: &GroupId,
        member: &IdHash,
        role: Role,
    ) -> AccessResult<()> {
        let at_seq = self.log_len(group, member)?;
        let id = self.write_op(
            group,
            OpBody::SetRole {
                member: *member,
                role,
                at_seq,
            },
        )?;
        self.require(group, &id, "set role")
    }

    /// Removes `member`: its events past the ones this node holds are refused by every
    /// peer (the cut-off), and a new epoch key is sealed to the remaining members.
    pub fn access_remove(&self, group: &GroupId, member: &IdHash) -> AccessResult<()> {
        let at_seq = self.log_len(group, member)?;
        let id = self.write_op(
            group,
            OpBody::Remove {
                member: *member,
                at_seq,
            },
        )?;
        self.require(group, &id, "remove")?;
        self.access_rotate(group)
    }

    fn require(&self, group: &GroupId, id: &EventId, what: &'static str) -> AccessResult<()> {
        if self.applied(group, id)? {
            Ok(())
        } else {
            Err(AccessError::Refused { what })
        }
    }

    /// Seals a new epoch key to every current member with a KEM key.
    pub fn access_rotate(&self, group: &GroupId) -> AccessResult<()> {
        let kp = self.keypair();
        let (key, ops) = self
            .slot()
            .control
            .with(group, |m| m.rotate(&kp, &mut OsEntropy))
            .ok_or(AccessError::NotControlled { group: *group })??;
        let mut last = None;
        for op in ops {
            last = Some(self.write_reserved_to(group, op.as_bytes(), MEMBERSHIP_OP_TYPE)?);
        }
        self.flush()?;
        self.replay(group)?;
        if let Some(id) = last {
            self.require(group, &id, "rotate")?;
        }
        self.slot().ring.remember(key);
        Ok(())
    }

    /// Feeds every stored membership event of `group` (what is known is skipped).
    fn replay(&self, group: &GroupId) -> AccessResult<()> {
        let mut sub = self.subscribe(
            Filter::all()
                .group(*group)
                .event_type(MEMBERSHIP_OP_TYPE)
                .start(Start::Beginning),
        );
        while let Some(e) = sub.try_next()? {
            let _ = self.slot().control.observe(
                group,
                stamp(&e.event),
                MEMBERSHIP_OP_TYPE,
                &e.event.payload,
            );
        }
        Ok(())
    }

    /// Current members of `group` and their roles.
    pub fn access_members(&self, group: &GroupId) -> AccessResult<Vec<(IdHash, Role)>> {
        self.slot()
            .control
            .with(group, |m| m.members())
            .ok_or(AccessError::NotControlled { group: *group })
    }

    /// Encrypts `data` with the group's current epoch key and writes it (as
    /// [`XaeroFlux::write_event_to`] does by itself in an encrypted group); fails if
    /// the group is not encrypted.
    pub fn write_sealed(
        &self,
        group: &GroupId,
        data: &[u8],
        event_type: u32,
    ) -> AccessResult<EventId> {
        if !crate::sealing::is_sealed_type(event_type) || self.ring().current(group).is_none() {
            return Err(AccessError::Refused {
                what: "not an encrypted group and sealed type",
            });
        }
        self.write_event_to(*group, data, event_type)
            .map_err(AccessError::Store)
    }

    /// Decrypts the payload of an event of an encrypted group (see
    /// [`XaeroFlux::plaintext`]).
    pub fn open_sealed(&self, event: &Event) -> AccessResult<Vec<u8>> {
        Ok(self.plaintext(event)?.into_owned())
    }
}

/// An access-control failure while opening the store, as a store error.
pub(crate) fn into_store(e: AccessError) -> xaeroflux_store::Error {
    match e {
        AccessError::Store(e) => e,
        AccessError::Io { path, source } => xaeroflux_store::Error::Io { path, source },
        other => xaeroflux_store::Error::Io {
            path: PathBuf::from("access"),
            source: std::io::Error::other(other.to_string()),
        },
    }
}
