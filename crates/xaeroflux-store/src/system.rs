//! System events: what happens to the node, on their own stream.
//!
//! System events (store opened, flush completed, fork detected, writer failure, peers
//! and sync progress) are rare and small. They travel on a separate bounded
//! queue, so they are never stuck behind a flood of application events: that is their
//! priority. A subscriber that falls more than [`SYSTEM_QUEUE`] events behind gets a
//! [`SystemEvent::Missed`] telling how many it lost, then continues.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use xaeroflux_core::ring::Notifier;
use xaeroflux_core::{AuthorId, GroupId};
use xaeroid::IdHash;

use crate::engine::{Engine, Shared};

/// System events kept for subscribers.
pub const SYSTEM_QUEUE: usize = 1024;

/// Something that happened to the node.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SystemEvent {
    /// The store opened.
    StoreOpened {
        /// Events stored.
        events: u64,
    },
    /// A `flush()` returned: every event below `committed` (local sequence) is durable.
    FlushCompleted {
        /// The committed watermark.
        committed: u64,
    },
    /// Two different signed roots for one log length: the author forked its log.
    ForkDetected {
        /// Group of the log.
        group: GroupId,
        /// The author.
        author: AuthorId,
        /// The length with two roots.
        length: u64,
    },
    /// The storage writer failed; the store refuses writes until reopened.
    WriterFailed {
        /// What failed.
        reason: String,
    },
    /// A sync session with a peer completed its handshake.
    PeerConnected {
        /// The peer's identity.
        peer: IdHash,
        /// The peer's endpoint (network node id).
        endpoint: [u8; 32],
        /// The group the session syncs.
        group: GroupId,
    },
    /// A sync session ended.
    PeerDisconnected {
        /// The peer's identity, if the handshake completed.
        peer: Option<IdHash>,
        /// The peer's endpoint.
        endpoint: [u8; 32],
        /// The group of the session, if one started.
        group: Option<GroupId>,
        /// Why.
        reason: String,
    },
    /// A peer was refused (failed handshake or protocol violation) and disconnected.
    PeerRejected {
        /// The peer's endpoint.
        endpoint: [u8; 32],
        /// The group of the session, if one started.
        group: Option<GroupId>,
        /// Error code (as sent on the wire).
        code: u16,
        /// Why.
        why: String,
    },
    /// Verified events were received from a peer.
    SyncProgress {
        /// The peer's endpoint.
        endpoint: [u8; 32],
        /// The group.
        group: GroupId,
        /// Events in the batch.
        events: u64,
        /// Bytes of those events.
        bytes: u64,
    },
    /// A store read failed while answering a sync session (the session saw an
    /// incomplete view of the logs; the failure is also logged once).
    SyncReadFailed {
        /// The failure, with its causes.
        reason: String,
    },
    /// This subscriber fell behind and lost this many system events.
    Missed {
        /// How many.
        count: u64,
    },
}

struct Queue {
    events: VecDeque<SystemEvent>,
    /// Sequence number of `events[0]`.
    first: u64,
}

/// The bounded broadcast queue of system events.
pub(crate) struct SystemBus {
    queue: Mutex<Queue>,
    notifier: Notifier,
}

impl SystemBus {
    pub(crate) fn new() -> Self {
        SystemBus {
            queue: Mutex::new(Queue {
                events: VecDeque::new(),
                first: 0,
            }),
            notifier: Notifier::new(),
        }
    }

    pub(crate) fn publish(&self, e: SystemEvent) {
        tracing::debug!(event = ?e, "system event");
        let mut q = self.queue.lock().unwrap_or_else(|p| p.into_inner());
        q.events.push_back(e);
        if q.events.len() > SYSTEM_QUEUE {
            q.events.pop_front();
            q.first += 1;
        }
        drop(q);
        self.notifier.notify();
    }

    fn end(&self) -> u64 {
        let q = self.queue.lock().unwrap_or_else(|p| p.into_inner());
        q.first + q.events.len() as u64
    }

    pub(crate) fn wake(&self) {
        self.notifier.notify();
    }
}

/// A subscription to system events; see [`Engine::system_events`].
pub struct SystemSubscription {
    shared: Arc<Shared>,
    next: u64,
}

impl std::fmt::Debug for SystemSubscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SystemSubscription")
            .field("next", &self.next)
            .finish_non_exhaustive()
    }
}

impl SystemSubscription {
    /// The next system event, if one is waiting.
    pub fn try_next(&mut self) -> Option<SystemEvent> {
        let q = self
            .shared
            .system()
            .queue
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if self.next < q.first {
            let count = q.first - self.next;
            self.next = q.first;
            return Some(SystemEvent::Missed { count });
        }
        let e = q.events.get((self.next - q.first) as usize).cloned();
        if e.is_some() {
            self.next += 1;
        }
        e
    }

    /// Waits up to `timeout` for the next system event.
    pub fn next_timeout(&mut self, timeout: Duration) -> Option<SystemEvent> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(e) = self.try_next() {
                return Some(e);
            }
            let now = Instant::now();
            if now >= deadline || self.shared.is_closing() {
                return None;
            }
            let (sys, next, shared) = (self.shared.system(), self.next, &self.shared);
            sys.notifier.wait_until(
                || sys.end() > next || shared.is_closing(),
                Some(deadline - now),
            );
        }
    }
}

impl Iterator for SystemSubscription {
    type Item = SystemEvent;

    /// Blocks until the next system event; `None` once the store closed.
    fn next(&mut self) -> Option<SystemEvent> {
        loop {
            if let Some(e) = self.next_timeout(Duration::from_millis(200)) {
                return Some(e);
            }
            if self.shared.is_closing() {
                return self.try_next();
            }
        }
    }
}

impl Engine {
    /// Subscribes to system events, starting with the oldest still queued (so a
    /// subscriber created right after `open()` sees `StoreOpened`).
    pub fn system_events(&self) -> SystemSubscription {
        let shared = self.shared_arc();
        let first = shared
            .system()
            .queue
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .first;
        SystemSubscription {
            shared,
            next: first,
        }
    }
}
