//! Change subscriptions: follow a record, a key prefix or a collection, replay then
//! live, with the old and new value of every change.
//!
//! The view thread holds the subscriber list while it applies and commits a batch and
//! publishes its changes; [`Views::subscribe`] takes the same lock to read the replay
//! and register. A subscriber therefore sees the state at one commit and then every
//! change after it, none twice. Live changes wait in a bounded queue
//! ([`CHANGE_QUEUE`]); a subscriber that falls further behind is dropped and told so
//! ([`ViewError::Lagged`]) instead of slowing the views.

use std::collections::VecDeque;
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TryRecvError, TrySendError};
use std::time::Duration;

use xaeroflux::GroupId;

use super::maintain::group_key;
use super::{Result, ViewError, Views};
use crate::fold::Change;
use crate::keys::{record_key, scan_prefix, take_ref};
use crate::op::RecordRef;
use crate::record::RecordState;

/// Live changes a subscriber may have queued before it is dropped as lagging.
pub const CHANGE_QUEUE: usize = 1024;

/// Which records a [`ChangeStream`] follows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeFilter {
    group: GroupId,
    collection: String,
    /// Exact key, or key prefix.
    key: String,
    exact: bool,
}

impl ChangeFilter {
    /// One record.
    pub fn record(group: GroupId, record: impl Into<RecordRef>) -> Self {
        let r = record.into();
        ChangeFilter {
            group,
            collection: r.collection,
            key: r.key,
            exact: true,
        }
    }

    /// Records of `collection` whose key starts with `prefix`.
    pub fn prefix(group: GroupId, collection: &str, prefix: &str) -> Self {
        ChangeFilter {
            group,
            collection: collection.to_owned(),
            key: prefix.to_owned(),
            exact: false,
        }
    }

    /// Every record of `collection`.
    pub fn collection(group: GroupId, collection: &str) -> Self {
        Self::prefix(group, collection, "")
    }

    fn wants(&self, group: &GroupId, r: &RecordRef) -> bool {
        self.group == *group
            && self.collection == r.collection
            && if self.exact {
                self.key == r.key
            } else {
                r.key.starts_with(&self.key)
            }
    }

    fn table_prefix(&self) -> Vec<u8> {
        if self.exact {
            group_key(
                &self.group,
                &record_key(&RecordRef::new(&self.collection, &self.key)),
            )
        } else {
            group_key(&self.group, &scan_prefix(&self.collection, &self.key))
        }
    }
}

/// A registered subscriber (held by the views).
pub(crate) struct Slot {
    filter: ChangeFilter,
    tx: SyncSender<Change>,
}

impl Slot {
    pub(crate) fn wants(&self, group: &GroupId, r: &RecordRef) -> bool {
        self.filter.wants(group, r)
    }

    /// Sends each change to the subscribers that want it; drops full or gone ones.
    pub(crate) fn publish(subs: &mut Vec<Slot>, changes: &[(GroupId, Change)]) {
        subs.retain(|s| {
            for (g, c) in changes {
                if s.wants(g, &c.record) {
                    match s.tx.try_send(c.clone()) {
                        Ok(()) => {}
                        // Dropping the sender tells the receiver; it reports `Lagged`.
                        Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                            return false;
                        }
                    }
                }
            }
            true
        });
    }
}

/// Changes of the followed records: first the current state of each existing record
/// (`old: None`, `stamp: None`), then every change as it is applied.
#[derive(Debug)]
pub struct ChangeStream {
    replay: VecDeque<Change>,
    rx: Receiver<Change>,
}

impl ChangeStream {
    /// The next change if one is ready.
    pub fn try_next(&mut self) -> Result<Option<Change>> {
        if let Some(c) = self.replay.pop_front() {
            return Ok(Some(c));
        }
        match self.rx.try_recv() {
            Ok(c) => Ok(Some(c)),
            Err(TryRecvError::Empty) => Ok(None),
            Err(TryRecvError::Disconnected) => Err(ViewError::Lagged),
        }
    }

    /// Waits up to `timeout` for the next change. [`ViewError::Lagged`] if the
    /// subscriber was dropped for falling behind, or the views closed.
    pub fn next_timeout(&mut self, timeout: Duration) -> Result<Option<Change>> {
        if let Some(c) = self.replay.pop_front() {
            return Ok(Some(c));
        }
        match self.rx.recv_timeout(timeout) {
            Ok(c) => Ok(Some(c)),
            Err(RecvTimeoutError::Timeout) => Ok(None),
            Err(RecvTimeoutError::Disconnected) => Err(ViewError::Lagged),
        }
    }
}

impl Views {
    /// Follows the records `filter` selects: replay of their current state, then live
    /// changes (local writes and synced operations alike).
    pub fn subscribe(&self, filter: ChangeFilter) -> Result<ChangeStream> {
        let mut subs = self.inner.subs.lock().unwrap_or_else(|e| e.into_inner());
        let mut replay = VecDeque::new();
        {
            let txn = self.inner.env.read_txn()?;
            let prefix = filter.table_prefix();
            for item in self.inner.t.records.prefix_iter(&txn, &prefix)? {
                let (k, v) = item?;
                let Some((record, _)) = take_ref(&k[32..]) else {
                    return Err(ViewError::Corrupt {
                        table: "records",
                        reason: "bad key".into(),
                    });
                };
                let st = RecordState::decode(v).map_err(|e| ViewError::Corrupt {
                    table: "records",
                    reason: e.to_string(),
                })?;
                if let Some(new) = st.visible() {
                    replay.push_back(Change {
                        record,
                        old: None,
                        new: Some(new),
                        stamp: None,
                    });
                }
            }
        }
        let (tx, rx) = std::sync::mpsc::sync_channel(CHANGE_QUEUE);
        subs.push(Slot { filter, tx });
        Ok(ChangeStream { replay, rx })
    }
}
