//! A local store that fails while it serves a session: [`crate::SyncHost::read_logs`]
//! returns an error, the transport drops what the session computed from that view and
//! ends the session with [`ErrorCode::StoreFailure`]; nothing is stored, nothing
//! panics, and the peer learns only the code.

use std::cell::Cell;
use std::collections::VecDeque;

use super::hostile::{Duo, sends};
use super::*;
use crate::HostError;
use crate::events::EventList;
use crate::log::Frontier;
use xaeroflux_core::mmr::Hash32;
use xaeroid::XaeroID;

/// A view of `logs` that, while `failing`, answers what a host's view answers after a
/// failed read (nothing known, every log forked) and remembers that it failed.
struct FlakyView<'a> {
    logs: &'a MemLogs,
    failing: bool,
    failed: Cell<bool>,
}

impl FlakyView<'_> {
    fn fail(&self) -> bool {
        if self.failing {
            self.failed.set(true);
        }
        self.failing
    }
}

impl LogView for FlakyView<'_> {
    fn authors(&self, g: &GroupId) -> Vec<AuthorId> {
        if self.fail() {
            return Vec::new();
        }
        self.logs.authors(g)
    }
    fn frontier(&self, g: &GroupId, a: &AuthorId) -> Frontier {
        if self.fail() {
            return Frontier::new();
        }
        self.logs.frontier(g, a)
    }
    fn mmr_node(&self, g: &GroupId, a: &AuthorId, pos: u64) -> Option<Hash32> {
        if self.fail() {
            return None;
        }
        self.logs.mmr_node(g, a, pos)
    }
    fn root_at(&self, g: &GroupId, a: &AuthorId, len: u64) -> Option<Hash32> {
        if self.fail() {
            return None;
        }
        self.logs.root_at(g, a, len)
    }
    fn events(&self, g: &GroupId, a: &AuthorId, from: u64, to: u64, max: usize) -> EventList {
        if self.fail() {
            return EventList::new();
        }
        self.logs.events(g, a, from, to, max)
    }
    fn latest_checkpoint(&self, g: &GroupId, a: &AuthorId) -> Option<SignedCheckpoint> {
        if self.fail() {
            return None;
        }
        self.logs.latest_checkpoint(g, a)
    }
    fn checkpoint_at(&self, g: &GroupId, a: &AuthorId, len: u64) -> Option<SignedCheckpoint> {
        if self.fail() {
            return None;
        }
        self.logs.checkpoint_at(g, a, len)
    }
    fn author_key(&self, a: &AuthorId) -> Option<XaeroID> {
        if self.fail() {
            return None;
        }
        self.logs.author_key(a)
    }
    fn is_forked(&self, g: &GroupId, a: &AuthorId) -> bool {
        self.fail() || self.logs.is_forked(g, a)
    }
}

/// `SyncHost::read_logs` of a host whose reads fail while `failing`.
fn read_logs(
    logs: &MemLogs,
    failing: bool,
    f: &mut dyn FnMut(&dyn LogView),
) -> Result<(), HostError> {
    let view = FlakyView {
        logs,
        failing,
        failed: Cell::new(false),
    };
    f(&view);
    if view.failed.get() {
        return Err(HostError::store(std::io::Error::other(
            "injected read failure",
        )));
    }
    Ok(())
}

/// What a transport does with one input: the session's outputs, or, when the read
/// view failed, the end of the session instead.
fn step(session: &mut Session, logs: &MemLogs, failing: bool, input: Input) -> Vec<Output> {
    let mut outs = Vec::new();
    let mut input = Some(input);
    let read = read_logs(logs, failing, &mut |v| {
        if let Some(i) = input.take() {
            outs = session.handle(i, 20, v);
        }
    });
    match read {
        Ok(()) => outs,
        Err(_) => session.end_on_store_failure(),
    }
}

/// After an honest catch-up of 4 events, the peer pushes 3 more; the victim's store
/// fails (or not) while the push is handled. Returns the victim's outputs and the
/// peer's answer to them.
fn push_with(failing: bool) -> (Duo, Vec<Output>, Vec<Output>) {
    let mut duo = Duo::new();
    duo.handshake(true);
    assert!(duo.v.is_established());
    assert_eq!(duo.victim.store.total_events(&group().id()), 4);
    let (events, cp) = duo.attacker.write(group().id(), 3, 20, 1);
    let pushed = duo
        .a
        .handle(committed(events.len(), &cp), 20, &duo.attacker.store);
    let mut to_v = VecDeque::new();
    sends(&pushed, &mut to_v);
    assert!(!to_v.is_empty(), "the peer pushes its new events");
    let mut outs = Vec::new();
    for b in to_v {
        outs.extend(step(
            &mut duo.v,
            &duo.victim.store,
            failing,
            Input::Frame(b),
        ));
    }
    for o in &outs {
        if let Output::StoreVerified(b) = o {
            duo.victim.store.apply_verified(b).unwrap();
        }
    }
    let mut to_a = VecDeque::new();
    sends(&outs, &mut to_a);
    let mut answer = Vec::new();
    for b in to_a {
        answer.extend(duo.a.handle(Input::Frame(b), 20, &duo.attacker.store));
    }
    (duo, outs, answer)
}

#[test]
fn a_store_failure_ends_the_session_with_its_code_and_extends_nothing() {
    // Without the failure the push is stored: the failing run below differs only by it.
    let (duo, outs, _) = push_with(false);
    assert!(outs.iter().any(|o| matches!(o, Output::StoreVerified(_))));
    assert_eq!(duo.victim.store.total_events(&group().id()), 7);
    assert!(duo.v.is_established());

    let (mut duo, outs, answer) = push_with(true);
    // Nothing computed from the failed view is carried out: no batch to store.
    assert!(!outs.iter().any(|o| matches!(o, Output::StoreVerified(_))));
    assert_eq!(duo.victim.store.total_events(&group().id()), 4);
    // One Error frame with the code and the fixed reason, then the close.
    let frames: Vec<Message> = outs
        .iter()
        .filter_map(|o| match o {
            Output::Send(b) => Some(frame::decode(b).unwrap()),
            _ => None,
        })
        .collect();
    assert_eq!(
        frames,
        vec![Message::Error {
            code: ErrorCode::StoreFailure.as_u16(),
            reason: crate::STORE_FAILURE_REASON.into(),
        }]
    );
    assert!(outs.iter().any(|o| matches!(
        o,
        Output::Close {
            code: ErrorCode::StoreFailure,
            ..
        }
    )));
    assert!(duo.v.is_closed());
    // The peer closes on the code, without treating it as a rejection of its data.
    assert!(duo.a.is_closed());
    assert!(answer.iter().any(|o| matches!(
        o,
        Output::Close { reason, .. } if reason.contains("code 18")
    )));
    // The ended session outputs nothing more, even when the store works again.
    let (events, cp) = duo.attacker.write(group().id(), 1, 30, 2);
    assert!(
        duo.v
            .handle(committed(events.len(), &cp), 30, &duo.victim.store)
            .is_empty()
    );
    assert!(duo.v.end_on_store_failure().is_empty());
}
