//! Stage 1, intake: ring slots become the events of the next commit.
//!
//! The drainer thread ([`drain_loop`]) copies ring slots into the [`Stage`] (headers in
//! a list, payloads in one arena), up to the commit caps, so the rings keep accepting
//! writes while the writer waits for a commit's fsync. The writer thread moves the
//! stage into its [`Intake`] (a buffer swap when its intake is empty) and commits the
//! longest run of events whose write tickets continue the committed sequence
//! ([`Intake::ready`]): producers claim tickets in order but finish in any order.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::Duration;

use xaeroflux_core::bus::BusReader;
use xaeroflux_core::{EventHeader, Hlc};

use crate::engine::Shared;

/// One event staged for a commit; its payload lives in the arena next to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Incoming {
    /// Write ticket: the commit order.
    pub ticket: u64,
    pub header: EventHeader,
    /// Payload offset in the arena.
    pub start: usize,
    /// Payload length.
    pub len: usize,
}

/// Hand-off between the drainer thread and the writer thread.
#[derive(Default)]
pub(crate) struct Stage {
    state: Mutex<Staged>,
    /// Signalled when events are staged or the drainer finishes.
    pub(super) writer_cv: Condvar,
    /// Signalled when the writer took the staged events or stops.
    pub(super) drainer_cv: Condvar,
    /// The writer thread is exiting: the drainer stops and drops its reader.
    pub(super) stop: AtomicBool,
}

#[derive(Default)]
pub(super) struct Staged {
    events: Intake,
    /// The drainer saw the shutdown and found the rings empty; it has exited.
    closed: bool,
}

impl Stage {
    pub(super) fn lock(&self) -> MutexGuard<'_, Staged> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Events waiting for a commit: headers with their payloads in one arena.
#[derive(Debug, Default)]
pub(super) struct Intake {
    pending: Vec<Incoming>,
    arena: Vec<u8>,
}

impl Intake {
    /// Adds an event.
    pub(super) fn push(&mut self, ticket: u64, header: EventHeader, payload: &[u8]) {
        let start = self.arena.len();
        self.arena.extend_from_slice(payload);
        self.pending.push(Incoming {
            ticket,
            header,
            start,
            len: payload.len(),
        });
    }

    /// Number of events.
    pub(super) fn len(&self) -> usize {
        self.pending.len()
    }

    /// Whether there are none.
    pub(super) fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// Payload bytes held.
    pub(super) fn bytes(&self) -> usize {
        self.arena.len()
    }

    /// Moves every event of `other` to the end of this intake. Into an empty intake
    /// the buffers are swapped (no copy; `other` keeps this one's cleared allocations).
    pub(super) fn absorb(&mut self, other: &mut Intake) {
        if self.pending.is_empty() {
            self.arena.clear();
            std::mem::swap(self, other);
            return;
        }
        let base = self.arena.len();
        self.arena.extend_from_slice(&other.arena);
        self.pending.extend(other.pending.iter().map(|i| Incoming {
            start: i.start + base,
            ..*i
        }));
        other.pending.clear();
        other.arena.clear();
    }

    /// Sorts the events by ticket and returns how many of the first (at most `max`)
    /// continue the committed sequence from `next_ticket` without a gap.
    pub(super) fn ready(&mut self, next_ticket: u64, max: usize) -> usize {
        self.pending.sort_unstable_by_key(|i| i.ticket);
        self.pending
            .iter()
            .take(max.max(1))
            .enumerate()
            .take_while(|(i, inc)| inc.ticket == next_ticket + *i as u64)
            .count()
    }

    /// The first `n` events (in ticket order after [`Intake::ready`]).
    pub(super) fn first(&self, n: usize) -> &[Incoming] {
        &self.pending[..n.min(self.pending.len())]
    }

    /// The payload of `inc`, an event of this intake.
    pub(super) fn payload(&self, inc: &Incoming) -> &[u8] {
        self.arena
            .get(inc.start..inc.start + inc.len)
            .unwrap_or(&[])
    }

    /// Drops the first `n` events (committed); the arena is cleared once nothing is
    /// left (the payloads of the events that remain stay where they are).
    pub(super) fn consume(&mut self, n: usize) {
        self.pending.drain(..n.min(self.pending.len()));
        if self.pending.is_empty() {
            self.arena.clear();
        }
    }
}

/// Moves the staged events into `into`; with `wait`, first waits (briefly) for some
/// unless `more_work` says other work waits. Returns how many were taken and whether
/// the drainer has finished.
pub(super) fn take_staged(
    stage: &Stage,
    into: &mut Intake,
    wait: bool,
    more_work: impl FnOnce() -> bool,
) -> (usize, bool) {
    let mut st = stage.lock();
    if wait && st.events.is_empty() && !st.closed && !more_work() {
        st = stage
            .writer_cv
            .wait_timeout(st, Duration::from_millis(50))
            .map(|(g, _)| g)
            .unwrap_or_else(|e| e.into_inner().0);
    }
    let n = st.events.len();
    let closed = st.closed;
    if n > 0 {
        into.absorb(&mut st.events);
        drop(st);
        stage.drainer_cv.notify_one();
    }
    (n, closed)
}

/// The drainer thread: moves ring slots into the stage (up to the commit caps) so the
/// rings keep accepting writes while the writer commits.
pub(super) fn drain_loop(shared: &Shared, stage: &Stage, mut reader: BusReader) {
    let policy = shared.opts().commit;
    let author = shared.author();
    let mut groups = shared.groups();
    loop {
        if stage.stop.load(Ordering::Acquire) {
            return;
        }
        let shutting_down = shared.is_closing();
        let mut st = stage.lock();
        let room = policy.max_events.max(1).saturating_sub(st.events.len());
        if room == 0 || st.events.bytes() >= policy.max_bytes {
            // Full: wait until the writer takes the stage.
            drop(
                stage
                    .drainer_cv
                    .wait_timeout(st, Duration::from_millis(50))
                    .unwrap_or_else(|e| e.into_inner()),
            );
            continue;
        }
        let events = &mut st.events;
        let n = reader.poll(room, |_class, meta, event_type, data| {
            let gi = meta.group as usize;
            if gi >= groups.len() {
                // A group added after the snapshot: refresh it.
                groups = shared.groups();
            }
            let group = groups.get(gi).copied().unwrap_or_default();
            let header = EventHeader {
                event_type,
                group,
                author,
                seq: meta.seq,
                hlc: Hlc::from_u64(meta.hlc),
            };
            events.push(meta.ticket, header, data);
        });
        let closed = shutting_down && n == 0;
        st.closed = closed;
        drop(st);
        if n > 0 || closed {
            stage.writer_cv.notify_one();
        }
        if closed {
            return;
        }
        if n == 0 {
            reader.wait(Duration::from_millis(50));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use xaeroflux_core::{AuthorId, GroupId};

    fn header(seq: u64) -> EventHeader {
        EventHeader {
            event_type: 1000,
            group: GroupId([1; 32]),
            author: AuthorId([2; 32]),
            seq,
            hlc: Hlc::from_u64(seq + 1),
        }
    }

    fn intake(tickets: &[u64]) -> Intake {
        let mut i = Intake::default();
        for &t in tickets {
            i.push(t, header(t), format!("payload {t}").as_bytes());
        }
        i
    }

    fn payloads(i: &Intake) -> Vec<String> {
        i.first(i.len())
            .iter()
            .map(|inc| String::from_utf8(i.payload(inc).to_vec()).unwrap())
            .collect()
    }

    /// Producers finish out of ticket order: only the run that continues the committed
    /// sequence is ready, capped by the commit size.
    #[test]
    fn ready_is_the_gapless_ticket_run() {
        let mut i = intake(&[12, 10, 11, 14]);
        assert_eq!(i.ready(10, 100), 3);
        assert_eq!(
            i.first(4).iter().map(|e| e.ticket).collect::<Vec<_>>(),
            [10, 11, 12, 14]
        );
        assert_eq!(i.ready(10, 2), 2);
        assert_eq!(i.ready(9, 100), 0, "ticket 9 is missing");
        assert_eq!(Intake::default().ready(0, 100), 0);
    }

    /// Absorbing into a non-empty intake rebases the payload offsets; into an empty one
    /// the buffers are swapped. Every event keeps its own payload.
    #[test]
    fn absorb_keeps_each_payload_with_its_event() {
        let mut mine = intake(&[1, 2]);
        let mut staged = intake(&[3, 4]);
        mine.absorb(&mut staged);
        assert!(staged.is_empty() && staged.bytes() == 0);
        assert_eq!(
            payloads(&mine),
            ["payload 1", "payload 2", "payload 3", "payload 4"]
        );
        let mut empty = Intake::default();
        let mut staged = intake(&[5]);
        empty.absorb(&mut staged);
        assert!(staged.is_empty());
        assert_eq!(payloads(&empty), ["payload 5"]);
    }

    /// Consuming the committed events keeps the payloads of the others; the arena is
    /// cleared only when nothing is left.
    #[test]
    fn consume_drops_only_committed_events() {
        let mut i = intake(&[2, 0, 1, 5]);
        let n = i.ready(0, 100);
        assert_eq!(n, 3);
        let bytes = i.bytes();
        i.consume(n);
        assert_eq!(i.len(), 1);
        assert_eq!(i.bytes(), bytes);
        assert_eq!(payloads(&i), ["payload 5"]);
        i.consume(1);
        assert!(i.is_empty());
        assert_eq!(i.bytes(), 0);
    }

    /// The writer takes what the drainer staged; an empty stage does not block when
    /// other work waits.
    #[test]
    fn take_staged_moves_the_stage() {
        let stage = Stage::default();
        stage.lock().events = intake(&[0, 1]);
        let mut mine = intake(&[7]);
        assert_eq!(take_staged(&stage, &mut mine, false, || false), (2, false));
        assert!(stage.lock().events.is_empty());
        assert_eq!(payloads(&mine), ["payload 7", "payload 0", "payload 1"]);
        stage.lock().closed = true;
        assert_eq!(take_staged(&stage, &mut mine, true, || true), (0, true));
    }
}
