//! Automatic payload encryption in groups under access control.
//!
//! A controlled group is *encrypted* once it has an epoch key (`access_create` makes
//! the first one). In an encrypted group every payload of a *sealed type* (application
//! types above 255, and the state views' types `32..=63`) is stored as an envelope
//! (`xaeroflux_access::Envelope`, AES-256-GCM under the current epoch key):
//! [`XaeroFlux::write_event`], [`XaeroFlux::write_event_to`] and
//! [`XaeroFlux::try_write_event`] seal before they write, and
//! [`XaeroFlux::write_private_to`] does the same for the views' reserved types.
//! Membership ops (type 16) and other system types stay in clear.
//!
//! Members read plaintext with [`XaeroFlux::plaintext`] / [`XaeroFlux::get_plain`];
//! the vector indexer and the state views decrypt the same way before they extract or
//! fold. A node without the event's epoch key (a removed member, for everything written
//! after its removal) gets [`xaeroflux_access::OpenError::NoKey`]. Events stamped
//! (HLC) before the group's first epoch were written in clear and read as they are.
//!
//! Sealing keeps one [`PayloadSealer`] per group (the AES key schedule is done once per
//! epoch, nonces are counters under a random per-sealer salt) and seals into a
//! per-thread buffer, so an encrypted write allocates nothing and copies the plaintext
//! once.

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use xaeroflux_access::{
    AccessControl, EpochKey, KemKeypair, MEMBERSHIP_OP_TYPE, OpenError, OsEntropy, PayloadSealer,
    open_payload,
};
use xaeroflux_core::event::MAX_RESERVED_TYPE;
use xaeroflux_core::{Event, EventId, GroupId};
use xaeroid::IdHash;

use crate::XaeroFlux;
use crate::access::{AccessError, AccessResult, into_store};

/// Whether payloads of `event_type` are sealed in an encrypted group: application
/// types and the state views' types `32..=63`.
pub fn is_sealed_type(event_type: u32) -> bool {
    event_type > MAX_RESERVED_TYPE || (32..=63).contains(&event_type)
}

/// This node's KEM key, the epoch keys it opened and its payload sealers; shared with
/// the vector indexer's thread.
pub(crate) struct KeyRing {
    pub(crate) control: Arc<AccessControl>,
    pub(crate) kem: KemKeypair,
    me: IdHash,
    keys: Mutex<HashMap<[u8; 8], EpochKey>>,
    sealers: RwLock<HashMap<GroupId, Arc<PayloadSealer>>>,
}

thread_local! {
    static SEAL_BUF: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

impl KeyRing {
    pub(crate) fn new(control: Arc<AccessControl>, kem: KemKeypair, me: IdHash) -> Self {
        KeyRing {
            control,
            kem,
            me,
            keys: Mutex::new(HashMap::new()),
            sealers: RwLock::new(HashMap::new()),
        }
    }

    /// Keeps a key this node made (a rotation's new key).
    pub(crate) fn remember(&self, key: EpochKey) {
        self.keys
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key.key_id(), key);
    }

    /// The key of `epoch` / `key_id` in `group`, opened from its sealed copy if needed.
    pub(crate) fn epoch_key(
        &self,
        group: &GroupId,
        epoch: u32,
        key_id: &[u8; 8],
    ) -> Option<EpochKey> {
        let mut keys = self.keys.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(k) = keys.get(key_id).filter(|k| k.epoch() == epoch) {
            return Some(k.clone());
        }
        let opened = self
            .control
            .with(group, |m| m.open_keys(&self.me, &self.kem))
            .unwrap_or_default();
        for k in opened {
            keys.insert(k.key_id(), k);
        }
        keys.get(key_id).filter(|k| k.epoch() == epoch).cloned()
    }

    /// The current epoch of `group` if it is controlled and encrypted.
    pub(crate) fn current(&self, group: &GroupId) -> Option<(u32, [u8; 8])> {
        self.control
            .with(group, |m| m.current_epoch().map(|e| (e.epoch, e.key_id)))
            .flatten()
    }

    /// The sealer of `group`'s current epoch; `None` if the group is not encrypted.
    pub(crate) fn sealer(&self, group: &GroupId) -> AccessResult<Option<Arc<PayloadSealer>>> {
        let Some((epoch, key_id)) = self.current(group) else {
            return Ok(None);
        };
        let fresh =
            |s: &Arc<PayloadSealer>| s.key_id() == key_id && s.epoch() == epoch && !s.exhausted();
        if let Some(s) = self
            .sealers
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(group)
            .filter(|s| fresh(s))
        {
            return Ok(Some(s.clone()));
        }
        let key = self
            .epoch_key(group, epoch, &key_id)
            .ok_or(OpenError::NoKey { epoch, key_id })?;
        let mut sealers = self.sealers.write().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = sealers.get(group).filter(|s| fresh(s)) {
            return Ok(Some(s.clone()));
        }
        let s = Arc::new(PayloadSealer::new(*group, &key, &mut OsEntropy)?);
        sealers.insert(*group, s.clone());
        Ok(Some(s))
    }

    /// The plaintext of `event`'s payload: decrypted in an encrypted group for a sealed
    /// type, the bytes themselves otherwise, and also for an event stamped before the
    /// group's first epoch (written in clear before the group was encrypted).
    pub(crate) fn plaintext<'p>(&self, event: &'p Event) -> AccessResult<Cow<'p, [u8]>> {
        let (group, event_type) = (&event.header.group, event.header.event_type);
        let payload = &event.payload[..];
        if event_type == MEMBERSHIP_OP_TYPE || !is_sealed_type(event_type) {
            return Ok(Cow::Borrowed(payload));
        }
        let first = self
            .control
            .with(group, |m| m.epochs().map(|e| e.first.hlc).min())
            .flatten();
        match first {
            None => return Ok(Cow::Borrowed(payload)),
            Some(hlc) if event.header.hlc.as_u64() < hlc => return Ok(Cow::Borrowed(payload)),
            Some(_) => {}
        }
        let env = xaeroflux_access::Envelope::decode(payload).map_err(OpenError::Decode)?;
        let key = self.epoch_key(group, env.epoch, &env.key_id);
        let plain = open_payload(group, event_type, payload, |_, _| key.as_ref())?;
        Ok(Cow::Owned(plain.to_vec()))
    }
}

impl XaeroFlux {
    pub(crate) fn ring(&self) -> &Arc<KeyRing> {
        &self.access.ring
    }

    /// Seals `data` if `group` is encrypted and `event_type` a sealed type, then hands
    /// the bytes to `write`.
    fn sealed_write<T>(
        &self,
        group: &GroupId,
        data: &[u8],
        event_type: u32,
        write: impl FnOnce(&[u8]) -> xaeroflux_store::Result<T>,
    ) -> AccessResult<T> {
        if !is_sealed_type(event_type) {
            return Ok(write(data)?);
        }
        let Some(sealer) = self.ring().sealer(group)? else {
            return Ok(write(data)?);
        };
        SEAL_BUF.with(|b| {
            let mut buf = b.try_borrow_mut().map_err(|_| AccessError::Refused {
                what: "re-entrant seal",
            })?;
            sealer.seal_into(event_type, data, &mut buf)?;
            Ok(write(&buf)?)
        })
    }

    /// Writes an event to the default group, sealed with the current epoch key if the
    /// group is encrypted (see the module docs); otherwise as
    /// [`xaeroflux_store::Engine::write_event`].
    pub fn write_event(&self, data: &[u8], event_type: u32) -> xaeroflux_store::Result<EventId> {
        let g = self.default_group();
        self.sealed_write(&g, data, event_type, |d| {
            self.engine().write_event(d, event_type)
        })
        .map_err(into_store)
    }

    /// Like [`XaeroFlux::write_event`], but returns `WouldBlock` instead of waiting
    /// when the ring is full.
    pub fn try_write_event(
        &self,
        data: &[u8],
        event_type: u32,
    ) -> xaeroflux_store::Result<EventId> {
        let g = self.default_group();
        self.sealed_write(&g, data, event_type, |d| {
            self.engine().try_write_event(d, event_type)
        })
        .map_err(into_store)
    }

    /// Writes an event to `group`, sealed if the group is encrypted.
    pub fn write_event_to(
        &self,
        group: GroupId,
        data: &[u8],
        event_type: u32,
    ) -> xaeroflux_store::Result<EventId> {
        self.sealed_write(&group, data, event_type, |d| {
            self.engine().write_event_to(group, d, event_type)
        })
        .map_err(into_store)
    }

    /// Like [`XaeroFlux::write_event_to`], but durable on return, with the event's
    /// local position (as [`xaeroflux_store::Engine::write_event_durable`]); sealed if
    /// the group is encrypted.
    pub fn write_event_durable(
        &self,
        group: GroupId,
        data: &[u8],
        event_type: u32,
    ) -> xaeroflux_store::Result<(EventId, u64)> {
        self.sealed_write(&group, data, event_type, |d| {
            self.engine().write_event_durable(group, d, event_type)
        })
        .map_err(into_store)
    }

    /// Writes an event of a feature's reserved type (as
    /// [`xaeroflux_store::Engine::write_reserved_to`]), sealed if the group is
    /// encrypted and the type is sealed (the state views' types).
    pub fn write_private_to(
        &self,
        group: &GroupId,
        data: &[u8],
        event_type: u32,
    ) -> xaeroflux_store::Result<EventId> {
        self.sealed_write(group, data, event_type, |d| {
            self.engine().write_reserved_to(group, d, event_type)
        })
        .map_err(into_store)
    }

    /// The plaintext payload of `event`: decrypted with the epoch key it names when
    /// its group is encrypted and its type sealed, its own bytes otherwise. Fails with
    /// [`OpenError::NoKey`] when this node does not hold that epoch's key.
    pub fn plaintext<'e>(&self, event: &'e Event) -> AccessResult<Cow<'e, [u8]>> {
        self.ring().plaintext(event)
    }

    /// The event with id `id`, its payload decrypted (see [`XaeroFlux::plaintext`]).
    pub fn get_plain(&self, id: &EventId) -> AccessResult<Option<Event>> {
        let Some(mut e) = xaeroflux_store::Engine::get(self, id)? else {
            return Ok(None);
        };
        let plain = self.plaintext(&e)?.into_owned();
        e.payload = plain;
        Ok(Some(e))
    }
}
