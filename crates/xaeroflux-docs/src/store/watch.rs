//! Document subscriptions: one message per update the view applied, live.
//!
//! The view thread holds the subscriber list while it applies and commits a batch and
//! publishes it; [`Docs::subscribe`](super::Docs::subscribe) takes the same lock to
//! register. A read after subscribing therefore holds every update not announced on
//! the stream. Messages wait in a bounded queue ([`CHANGE_QUEUE`]); a subscriber that
//! falls further behind is dropped and told so ([`DocError::Lagged`]).

use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TryRecvError, TrySendError};
use std::time::Duration;

use xaeroflux::{AuthorId, EventId, GroupId};

use super::{DocError, Inner, Result};

/// Updates a subscriber may have queued before it is dropped as lagging.
pub const CHANGE_QUEUE: usize = 1024;

/// An update the view applied to a document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocChange {
    /// The document's group.
    pub group: GroupId,
    /// The document's name.
    pub doc: String,
    /// The event that carried the update.
    pub event: EventId,
    /// Its author.
    pub author: AuthorId,
}

pub(crate) struct Slot {
    group: GroupId,
    doc: Option<String>,
    tx: SyncSender<DocChange>,
}

impl Slot {
    fn wants(&self, c: &DocChange) -> bool {
        self.group == c.group && self.doc.as_ref().is_none_or(|d| *d == c.doc)
    }

    /// Sends each change to the subscribers that want it; drops full or gone ones
    /// (dropping the sender tells the receiver, which reports `Lagged`).
    pub(crate) fn publish(subs: &mut Vec<Slot>, changes: &[DocChange]) {
        subs.retain(|s| {
            changes
                .iter()
                .filter(|c| s.wants(c))
                .all(|c| match s.tx.try_send(c.clone()) {
                    Ok(()) => true,
                    Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => false,
                })
        });
    }
}

pub(crate) fn subscribe(inner: &Inner, group: GroupId, doc: Option<String>) -> DocStream {
    let (tx, rx) = std::sync::mpsc::sync_channel(CHANGE_QUEUE);
    inner
        .subs
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(Slot { group, doc, tx });
    DocStream { rx }
}

/// The updates applied to the subscribed documents (see [`Docs::subscribe`](super::Docs::subscribe)).
#[derive(Debug)]
pub struct DocStream {
    rx: Receiver<DocChange>,
}

impl DocStream {
    /// The next applied update, if one is queued. Errors with [`DocError::Lagged`] once
    /// the subscriber was dropped (too far behind, or the view stopped).
    pub fn try_next(&mut self) -> Result<Option<DocChange>> {
        match self.rx.try_recv() {
            Ok(c) => Ok(Some(c)),
            Err(TryRecvError::Empty) => Ok(None),
            Err(TryRecvError::Disconnected) => Err(DocError::Lagged),
        }
    }

    /// The next applied update, waiting up to `timeout` (`None`: none came).
    pub fn next_timeout(&mut self, timeout: Duration) -> Result<Option<DocChange>> {
        match self.rx.recv_timeout(timeout) {
            Ok(c) => Ok(Some(c)),
            Err(RecvTimeoutError::Timeout) => Ok(None),
            Err(RecvTimeoutError::Disconnected) => Err(DocError::Lagged),
        }
    }
}
