//! The committed stream and subscriptions.
//!
//! Only committed events leave the storage writer. After each group commit the writer
//! moves the *committed watermark* (the next local sequence) and wakes waiters; the
//! events themselves are read from LMDB, zero-copy from its memory map, by each
//! consumer at its own pace. Replay and live delivery are therefore one code path: a
//! subscription is a cursor over the local sequence that waits when it reaches the
//! watermark. There is no seam between replay and live at which an event could be
//! skipped or delivered twice, and a slow consumer is never lapped: it simply reads
//! older events from the store (the ring buffers of the write path hold only
//! uncommitted events).
//!
//! Memory per subscription is bounded by its read-ahead batch ([`READ_AHEAD`]).

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use xaeroflux_core::ring::Notifier;
use xaeroflux_core::{Event, EventId, GroupId};

use crate::engine::{Engine, Shared};
use crate::error::Result;
use crate::read::Snapshot;

/// Events a subscription reads from the store at once.
pub const READ_AHEAD: usize = 256;

/// The committed watermark and the parties waiting on it.
pub(crate) struct Committed {
    next_local: AtomicU64,
    notifier: Notifier,
    wakers: Mutex<Vec<Waker>>,
}

impl Committed {
    pub(crate) fn new(next_local: u64) -> Self {
        Committed {
            next_local: AtomicU64::new(next_local),
            notifier: Notifier::new(),
            wakers: Mutex::new(Vec::new()),
        }
    }

    /// Everything below `next_local` is committed.
    pub(crate) fn publish(&self, next_local: u64) {
        self.next_local.store(next_local, Ordering::Release);
        self.wake();
    }

    /// Wakes every waiter (also used on shutdown).
    pub(crate) fn wake(&self) {
        self.notifier.notify();
        let wakers = std::mem::take(&mut *self.wakers.lock().unwrap_or_else(|p| p.into_inner()));
        for w in wakers {
            w.wake();
        }
    }

    pub(crate) fn get(&self) -> u64 {
        self.next_local.load(Ordering::Acquire)
    }
}

/// Where a subscription starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Start {
    /// With the next event committed after subscribing.
    #[default]
    Now,
    /// With the first event in the store (full replay, then live).
    Beginning,
    /// At this local sequence (e.g. a position saved by an earlier subscription).
    Position(u64),
}

/// Which committed events a subscription delivers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// Only these groups (all when empty).
    pub groups: Vec<GroupId>,
    /// Only these event types (all when empty).
    pub event_types: Vec<u32>,
    /// Where to start.
    pub start: Start,
}

impl Filter {
    /// Every event, from now on.
    pub fn all() -> Self {
        Filter::default()
    }
    /// Adds a group to the filter.
    pub fn group(mut self, g: GroupId) -> Self {
        self.groups.push(g);
        self
    }
    /// Adds an event type to the filter.
    pub fn event_type(mut self, t: u32) -> Self {
        self.event_types.push(t);
        self
    }
    /// Sets the start position.
    pub fn start(mut self, s: Start) -> Self {
        self.start = s;
        self
    }

    fn matches(&self, e: &Event) -> bool {
        (self.groups.is_empty() || self.groups.contains(&e.header.group))
            && (self.event_types.is_empty() || self.event_types.contains(&e.header.event_type))
    }
}

/// A committed event delivered to a subscriber.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommittedEvent {
    /// Position in local arrival order; resume with `Start::Position(local_seq + 1)`.
    pub local_seq: u64,
    /// The event id.
    pub id: EventId,
    /// The event.
    pub event: Event,
}

/// A live, filtered view of committed events: replay from the store, then live.
///
/// Use it as a blocking [`Iterator`] (ends when the store closes), poll it with
/// [`Subscription::try_next`] / [`Subscription::next_timeout`], or as an async stream
/// with [`Subscription::next_async`] (runtime-agnostic).
pub struct Subscription {
    shared: Arc<Shared>,
    filter: Filter,
    next: u64,
    buf: VecDeque<CommittedEvent>,
}

/// Reactive alias kept from the original design: an observable of committed events.
pub type Observable = Subscription;

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription")
            .field("filter", &self.filter)
            .field("next", &self.next)
            .finish_non_exhaustive()
    }
}

impl Subscription {
    /// The local sequence of the next event this subscription will look at.
    pub fn position(&self) -> u64 {
        self.buf.front().map_or(self.next, |e| e.local_seq)
    }

    /// Reads the next batch of matching committed events into the buffer.
    fn fill(&mut self) -> Result<()> {
        let upto = self.shared.committed().get();
        while self.buf.is_empty() && self.next < upto {
            let snap = Snapshot::new(&self.shared)?;
            let end = upto.min(self.next + READ_AHEAD as u64);
            for item in snap.since(self.next)? {
                let se = item?;
                if se.local_seq >= end {
                    break;
                }
                self.next = se.local_seq + 1;
                let event = se.event.to_owned();
                if self.filter.matches(&event) {
                    self.buf.push_back(CommittedEvent {
                        local_seq: se.local_seq,
                        id: se.event.id(),
                        event,
                    });
                }
            }
            // Events below `upto` are committed, so the range is never short; guard anyway.
            self.next = self.next.max(end);
        }
        Ok(())
    }

    /// The next committed event if one is available now.
    pub fn try_next(&mut self) -> Result<Option<CommittedEvent>> {
        self.fill()?;
        Ok(self.buf.pop_front())
    }

    /// Waits up to `timeout` for the next committed event.
    pub fn next_timeout(&mut self, timeout: Duration) -> Result<Option<CommittedEvent>> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(e) = self.try_next()? {
                return Ok(Some(e));
            }
            let now = Instant::now();
            if now >= deadline || self.closed() {
                return Ok(None);
            }
            let next = self.next;
            let committed = &self.shared.committed();
            let shared = &self.shared;
            committed.notifier.wait_until(
                || committed.get() > next || shared.is_closing(),
                Some(deadline - now),
            );
        }
    }

    fn closed(&self) -> bool {
        self.shared.is_closing() && self.next >= self.shared.committed().get()
    }

    /// Async form: resolves to the next committed event, or `None` once the store closed.
    pub fn next_async(&mut self) -> NextEvent<'_> {
        NextEvent { sub: self }
    }
}

impl Iterator for Subscription {
    type Item = Result<CommittedEvent>;

    /// Blocks until the next matching event is committed; `None` once the store closed.
    fn next(&mut self) -> Option<Self::Item> {
        loop {
            match self.next_timeout(Duration::from_millis(200)) {
                Ok(Some(e)) => return Some(Ok(e)),
                Ok(None) if self.closed() => return None,
                Ok(None) => {}
                Err(e) => return Some(Err(e)),
            }
        }
    }
}

/// Future returned by [`Subscription::next_async`].
#[derive(Debug)]
pub struct NextEvent<'a> {
    sub: &'a mut Subscription,
}

impl Future for NextEvent<'_> {
    type Output = Option<Result<CommittedEvent>>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let sub = &mut *self.sub;
        match sub.try_next() {
            Err(e) => return Poll::Ready(Some(Err(e))),
            Ok(Some(e)) => return Poll::Ready(Some(Ok(e))),
            Ok(None) if sub.closed() => return Poll::Ready(None),
            Ok(None) => {}
        }
        // Register, then re-check: a commit between the check and the registration
        // would otherwise be missed.
        sub.shared
            .committed()
            .wakers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(cx.waker().clone());
        if sub.shared.committed().get() > sub.next || sub.closed() {
            cx.waker().wake_by_ref();
        }
        Poll::Pending
    }
}

impl Engine {
    /// Subscribes to committed events (local, and later from peers) matching `filter`.
    pub fn subscribe(&self, filter: Filter) -> Subscription {
        let shared = self.shared_arc();
        let next = match filter.start {
            Start::Now => shared.committed().get(),
            Start::Beginning => 0,
            Start::Position(p) => p,
        };
        Subscription {
            shared,
            filter,
            next,
            buf: VecDeque::new(),
        }
    }
}
