//! System events: what happens to the node, on their own stream.
//!
//! System events (store opened, flush completed, fork detected, writer failure, peers
//! and sync progress) are rare and small. They travel on a separate bounded
//! queue, so they are never stuck behind a flood of application events: that is their
//! priority. A subscriber that falls more than [`SYSTEM_QUEUE`] events behind gets a
//! [`SystemEvent::Missed`] telling how many it lost, then continues.
//!
//! A flood of refusals must not push out what matters:
//! - security events ([`SystemEvent::ForkDetected`], [`SystemEvent::WriterFailed`]) are
//!   never dropped: a full queue drops its oldest *other* event (forks are one per
//!   log, so they stay few);
//! - a refusal ([`SystemEvent::PeerRejected`]) of the same endpoint, group and code as
//!   one among the last [`COALESCE_WINDOW`] queued events is counted instead of
//!   queued; the next refusal of that kind that is queued says how many were counted.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use xaeroflux_core::ring::Notifier;
use xaeroflux_core::{AuthorId, GroupId};
use xaeroid::IdHash;

use crate::engine::{Engine, Shared};

/// System events kept for subscribers (security events may exceed it; see the module
/// docs).
pub const SYSTEM_QUEUE: usize = 1024;

/// How many of the latest queued events a refusal is compared with for coalescing.
pub const COALESCE_WINDOW: usize = 64;

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
    /// A blob fetch started (an attachment arrived and its policy says eager, or an
    /// on-demand `fetch_blob`).
    BlobFetchStarted {
        /// The blob's BLAKE3 hash.
        hash: [u8; 32],
        /// Its size, as the attachment claims.
        size: u64,
        /// The group whose event references it, if the fetch came from one.
        group: Option<GroupId>,
        /// The endpoint it is fetched from.
        endpoint: [u8; 32],
        /// Verified bytes already here (a resumed fetch).
        resumed_from: u64,
    },
    /// Bytes of a running blob fetch arrived (at most a few per second per fetch).
    BlobFetchProgress {
        /// The blob's hash.
        hash: [u8; 32],
        /// Verified bytes here now (resumed plus received).
        have: u64,
        /// The blob's size.
        size: u64,
    },
    /// A blob fetch completed: the blob is here in full and verified.
    BlobFetchDone {
        /// The blob's hash.
        hash: [u8; 32],
        /// Its size.
        size: u64,
        /// Payload bytes this fetch moved (less than `size` when it resumed).
        received: u64,
    },
    /// A blob fetch failed (every peer tried refused, was unreachable or sent data
    /// that does not verify); the verified part stays and a later fetch resumes.
    BlobFetchFailed {
        /// The blob's hash.
        hash: [u8; 32],
        /// Why (the last peer's error).
        reason: String,
    },
    /// This subscriber fell behind and lost this many system events.
    Missed {
        /// How many.
        count: u64,
    },
}

impl SystemEvent {
    /// Whether the event is never dropped from the queue.
    fn is_security(&self) -> bool {
        matches!(
            self,
            SystemEvent::ForkDetected { .. } | SystemEvent::WriterFailed { .. }
        )
    }

    /// The kind of a refusal, for coalescing.
    fn refusal_kind(&self) -> Option<RefusalKind> {
        match self {
            SystemEvent::PeerRejected {
                endpoint,
                group,
                code,
                ..
            } => Some((*endpoint, *group, *code)),
            _ => None,
        }
    }
}

/// A refusal's endpoint, group and code.
type RefusalKind = ([u8; 32], Option<GroupId>, u16);

struct Queue {
    /// Queued events with their sequence numbers, increasing (gaps where events were
    /// dropped).
    events: VecDeque<(u64, SystemEvent)>,
    /// Sequence number of the next event.
    next_seq: u64,
    /// Refusals counted instead of queued, per kind.
    coalesced: Vec<(RefusalKind, u64)>,
}

impl Queue {
    /// Sequence number of the oldest queued event.
    fn first(&self) -> u64 {
        self.events.front().map_or(self.next_seq, |e| e.0)
    }

    fn push(&mut self, mut e: SystemEvent) {
        if let Some(kind) = e.refusal_kind() {
            let recent = self.events.iter().rev().take(COALESCE_WINDOW);
            if recent
                .filter_map(|(_, q)| q.refusal_kind())
                .any(|k| k == kind)
            {
                match self.coalesced.iter().position(|(k, _)| *k == kind) {
                    Some(i) => self.coalesced[i].1 += 1,
                    // Bounded: one entry per kind seen in the window.
                    None if self.coalesced.len() < COALESCE_WINDOW => {
                        self.coalesced.push((kind, 1));
                    }
                    None => {}
                }
                return;
            }
            if let Some(i) = self.coalesced.iter().position(|(k, _)| *k == kind) {
                let (_, n) = self.coalesced.swap_remove(i);
                if let SystemEvent::PeerRejected { why, .. } = &mut e {
                    why.push_str(&format!(" ({n} more like it not reported)"));
                }
            }
        }
        self.events.push_back((self.next_seq, e));
        self.next_seq += 1;
        if self.events.len() > SYSTEM_QUEUE {
            // The oldest event that is not a security event; none: the queue grows.
            if let Some(i) = self.events.iter().position(|(_, e)| !e.is_security()) {
                self.events.remove(i);
            }
        }
    }

    /// For a subscriber at `next`: the event to hand out and the subscriber's next
    /// position, or `Missed` if events from `next` on were dropped.
    fn read(&self, next: u64) -> Option<(SystemEvent, u64)> {
        let i = self.events.partition_point(|(seq, _)| *seq < next);
        let (seq, e) = self.events.get(i)?;
        if *seq > next {
            return Some((SystemEvent::Missed { count: seq - next }, *seq));
        }
        Some((e.clone(), seq + 1))
    }
}

/// The bounded broadcast queue of system events.
pub(crate) struct SystemBus {
    queue: Mutex<Queue>,
    notifier: Notifier,
    /// Async subscribers waiting for the next event (taken and woken on each publish).
    wakers: Mutex<Vec<Waker>>,
}

impl SystemBus {
    pub(crate) fn new() -> Self {
        SystemBus {
            queue: Mutex::new(Queue {
                events: VecDeque::new(),
                next_seq: 0,
                coalesced: Vec::new(),
            }),
            notifier: Notifier::new(),
            wakers: Mutex::new(Vec::new()),
        }
    }

    pub(crate) fn publish(&self, e: SystemEvent) {
        tracing::debug!(event = ?e, "system event");
        self.queue.lock().unwrap_or_else(|p| p.into_inner()).push(e);
        self.wake();
    }

    fn end(&self) -> u64 {
        self.queue
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .next_seq
    }

    /// Wakes every blocking and async waiter (also used on shutdown).
    pub(crate) fn wake(&self) {
        self.notifier.notify();
        let wakers = std::mem::take(&mut *self.wakers.lock().unwrap_or_else(|p| p.into_inner()));
        for w in wakers {
            w.wake();
        }
    }

    /// Registers `w` for the next publish; a waker already registered is not added
    /// twice, so a subscriber polled many times between events holds one slot.
    fn register(&self, w: &Waker) {
        let mut ws = self.wakers.lock().unwrap_or_else(|p| p.into_inner());
        if !ws.iter().any(|x| x.will_wake(w)) {
            ws.push(w.clone());
        }
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
        let (e, next) = q.read(self.next)?;
        self.next = next;
        Some(e)
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

impl SystemSubscription {
    /// Async form: resolves to the next system event, or `None` once the store closed.
    /// Runtime-agnostic: no thread blocks while it waits (the publisher wakes it).
    pub fn next_async(&mut self) -> NextSystemEvent<'_> {
        NextSystemEvent { sub: self }
    }
}

/// Future returned by [`SystemSubscription::next_async`].
#[derive(Debug)]
pub struct NextSystemEvent<'a> {
    sub: &'a mut SystemSubscription,
}

impl Future for NextSystemEvent<'_> {
    type Output = Option<SystemEvent>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let sub = &mut *self.sub;
        if let Some(e) = sub.try_next() {
            return Poll::Ready(Some(e));
        }
        if sub.shared.is_closing() {
            return Poll::Ready(sub.try_next());
        }
        // Register, then re-check: an event published between the check and the
        // registration would otherwise be missed.
        let sys = sub.shared.system();
        sys.register(cx.waker());
        if sys.end() > sub.next || sub.shared.is_closing() {
            cx.waker().wake_by_ref();
        }
        Poll::Pending
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

/// Publishes system events of a feature built on the store (blob fetches) to every
/// system subscriber, like the store's own; see [`Engine::system_publisher`].
#[derive(Clone)]
pub struct SystemPublisher {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for SystemPublisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SystemPublisher").finish_non_exhaustive()
    }
}

impl SystemPublisher {
    /// Queues `e` for every system subscriber.
    pub fn publish(&self, e: SystemEvent) {
        self.shared.system().publish(e);
    }
}

impl Engine {
    /// A handle that publishes system events (cheap to clone, usable from any thread).
    pub fn system_publisher(&self) -> SystemPublisher {
        SystemPublisher {
            shared: self.shared_arc(),
        }
    }

    /// Subscribes to system events, starting with the oldest still queued (so a
    /// subscriber created right after `open()` sees `StoreOpened`).
    pub fn system_events(&self) -> SystemSubscription {
        let shared = self.shared_arc();
        let first = shared
            .system()
            .queue
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .first();
        SystemSubscription {
            shared,
            next: first,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(endpoint: u8, code: u16) -> SystemEvent {
        SystemEvent::PeerRejected {
            endpoint: [endpoint; 32],
            group: None,
            code,
            why: "bad".into(),
        }
    }

    fn fork(length: u64) -> SystemEvent {
        SystemEvent::ForkDetected {
            group: GroupId([1; 32]),
            author: AuthorId([2; 32]),
            length,
        }
    }

    /// Everything a subscriber starting at the oldest event reads.
    fn drain(q: &Queue) -> Vec<SystemEvent> {
        let mut out = Vec::new();
        let mut next = q.first();
        while let Some((e, n)) = q.read(next) {
            out.push(e);
            next = n;
        }
        out
    }

    fn new_queue() -> Queue {
        Queue {
            events: VecDeque::new(),
            next_seq: 0,
            coalesced: Vec::new(),
        }
    }

    /// A fork followed by a flood of distinct refusals (more than the queue holds) is
    /// still read, and the subscriber learns how many events it missed.
    #[test]
    fn a_flood_never_pushes_out_a_fork() {
        let mut q = new_queue();
        q.push(SystemEvent::StoreOpened { events: 0 });
        q.push(fork(7));
        for i in 0..3 * SYSTEM_QUEUE as u64 {
            // Distinct kinds (endpoint, code), so nothing coalesces.
            q.push(refused((i % 251) as u8, (i / 251) as u16));
        }
        assert_eq!(q.events.len(), SYSTEM_QUEUE);
        let got = drain(&q);
        assert_eq!(got[0], fork(7));
        let missed: u64 = got
            .iter()
            .map(|e| match e {
                SystemEvent::Missed { count } => *count,
                _ => 0,
            })
            .sum();
        let read = got.iter().filter(|e| e.refusal_kind().is_some()).count() as u64;
        // Every refusal is either read or counted as missed (StoreOpened, before the
        // fork, was dropped: the oldest queued event is now the fork).
        assert_eq!(missed + read, 3 * SYSTEM_QUEUE as u64);
        assert!(matches!(got[1], SystemEvent::Missed { count } if count > 0));
    }

    /// Repeated refusals of one kind are counted, not queued; the next one queued
    /// after the window says how many were counted. Other kinds are not affected.
    #[test]
    fn repeated_refusals_are_coalesced() {
        let mut q = new_queue();
        for _ in 0..1000 {
            q.push(refused(1, 6));
        }
        q.push(refused(2, 6));
        q.push(refused(1, 4));
        assert_eq!(drain(&q), vec![refused(1, 6), refused(2, 6), refused(1, 4)]);
        for i in 0..COALESCE_WINDOW as u64 {
            q.push(SystemEvent::FlushCompleted { committed: i });
        }
        q.push(refused(1, 6));
        let last = q.events.back().map(|e| e.1.clone());
        let Some(SystemEvent::PeerRejected { why, .. }) = last else {
            panic!("{last:?}");
        };
        assert_eq!(why, "bad (999 more like it not reported)");
    }
}
