//! The access-control hooks ([`LogView::may_write_event`], [`LogView::may_connect`])
//! under the simulated wire, with a gate standing in for a group's membership: a
//! batch is stored up to the first refused event (the removal cut-off), a non-member's
//! Hello is refused, and a member removed during a session loses it.

use std::collections::VecDeque;

use xaeroflux_core::AuthorId;

use super::hostile::{ATTACKER, Duo, params, sends};
use super::*;
use crate::events::EventList;
use crate::log::Frontier;

/// A peer's store plus a membership gate.
struct Gated<'a> {
    logs: &'a MemLogs,
    /// `(author, c)`: the author's events from seq `c` on are refused.
    cut: Option<(AuthorId, u64)>,
    /// A peer that is not (or no longer) a member.
    banned: Option<AuthorId>,
}

impl LogView for Gated<'_> {
    fn authors(&self, group: &GroupId) -> Vec<AuthorId> {
        self.logs.authors(group)
    }
    fn frontier(&self, group: &GroupId, author: &AuthorId) -> Frontier {
        self.logs.frontier(group, author)
    }
    fn mmr_node(&self, group: &GroupId, author: &AuthorId, pos: u64) -> Option<[u8; 32]> {
        self.logs.mmr_node(group, author, pos)
    }
    fn root_at(&self, group: &GroupId, author: &AuthorId, len: u64) -> Option<[u8; 32]> {
        self.logs.root_at(group, author, len)
    }
    fn events(
        &self,
        group: &GroupId,
        author: &AuthorId,
        from: u64,
        to: u64,
        max_bytes: usize,
    ) -> EventList {
        self.logs.events(group, author, from, to, max_bytes)
    }
    fn latest_checkpoint(&self, group: &GroupId, author: &AuthorId) -> Option<SignedCheckpoint> {
        self.logs.latest_checkpoint(group, author)
    }
    fn checkpoint_at(
        &self,
        group: &GroupId,
        author: &AuthorId,
        len: u64,
    ) -> Option<SignedCheckpoint> {
        self.logs.checkpoint_at(group, author, len)
    }
    fn author_key(&self, author: &AuthorId) -> Option<xaeroid::XaeroID> {
        self.logs.author_key(author)
    }
    fn is_forked(&self, group: &GroupId, author: &AuthorId) -> bool {
        self.logs.is_forked(group, author)
    }
    fn may_write_event(&self, _: &GroupId, author: &AuthorId, seq: u64, _: u32) -> bool {
        self.cut.is_none_or(|(a, c)| a != *author || seq < c)
    }
    fn may_connect(&self, _: &GroupId, peer: &AuthorId) -> bool {
        self.banned != Some(*peer)
    }
}

/// Runs a connection between the duo's sessions, the victim behind the gate, until
/// no frame is left; returns the victim's outputs.
fn run(d: &mut Duo, cut: Option<(AuthorId, u64)>, banned: Option<AuthorId>) -> Vec<Output> {
    let (ip, ap) = params(d.ekm);
    let mut to_v: VecDeque<Vec<u8>> = VecDeque::new();
    let mut to_a: VecDeque<Vec<u8>> = VecDeque::new();
    let mut all = Vec::new();
    let step = |d: &mut Duo, input: Input, all: &mut Vec<Output>, to_a: &mut VecDeque<_>| {
        let outs = {
            let view = Gated {
                logs: &d.victim.store,
                cut,
                banned,
            };
            d.v.handle(input, d.now, &view)
        };
        for o in &outs {
            if let Output::StoreVerified(b) = o {
                d.victim.store.apply_verified(b).unwrap();
            }
        }
        sends(&outs, to_a);
        all.extend(outs);
    };
    step(
        d,
        Input::Connected {
            role: Role::Acceptor,
            params: ap,
        },
        &mut all,
        &mut to_a,
    );
    let outs = d.a.handle(
        Input::Connected {
            role: Role::Initiator,
            params: ip,
        },
        d.now,
        &d.attacker.store,
    );
    sends(&outs, &mut to_v);
    while !to_v.is_empty() || !to_a.is_empty() {
        if let Some(b) = to_v.pop_front() {
            step(d, Input::Frame(b), &mut all, &mut to_a);
        }
        if let Some(b) = to_a.pop_front() {
            let outs = d.a.handle(Input::Frame(b), d.now, &d.attacker.store);
            sends(&outs, &mut to_v);
        }
    }
    all
}

fn closed_with(outs: &[Output], code: ErrorCode) -> bool {
    outs.iter()
        .any(|o| matches!(o, Output::Close { code: c, .. } if *c == code))
}

#[test]
fn a_batch_is_stored_up_to_the_cut_off_and_never_past_it() {
    let mut d = Duo::new();
    d.attacker.write(group().id(), 16, 2, 1);
    let author = author_of(&keypair(ATTACKER));
    let g = group().id();
    let outs = run(&mut d, Some((author, 13)), None);
    assert!(!closed_with(&outs, ErrorCode::Unauthorized));
    assert!(
        d.v.is_established(),
        "a refused event is not a protocol error"
    );
    assert_eq!(d.victim.store.log_events(&g, &author).len(), 13);
    // A later connection (and its full rounds) still stops at the cut-off.
    d.reconnect(false);
    d.now += 10_000;
    run(&mut d, Some((author, 13)), None);
    assert_eq!(d.victim.store.log_events(&g, &author).len(), 13);
    // Without the cut-off (e.g. the author was re-added) the rest arrives.
    d.reconnect(false);
    run(&mut d, None, None);
    d.assert_converged();
}

#[test]
fn a_non_member_hello_is_refused_and_nothing_is_stored() {
    let mut d = Duo::new();
    let author = author_of(&keypair(ATTACKER));
    let outs = run(&mut d, None, Some(author));
    assert!(closed_with(&outs, ErrorCode::Unauthorized));
    assert!(d.v.is_closed());
    assert_eq!(d.victim.store.total_events(&group().id()), 0);
}

#[test]
fn a_member_removed_during_a_session_loses_it() {
    let mut d = Duo::new();
    let author = author_of(&keypair(ATTACKER));
    run(&mut d, None, None);
    assert!(d.v.is_established());
    d.assert_converged();
    // Removed: the next input (here a tick) closes the session.
    d.now += 100;
    let outs = {
        let view = Gated {
            logs: &d.victim.store,
            cut: None,
            banned: Some(author),
        };
        d.v.handle(Input::Tick, d.now, &view)
    };
    assert!(closed_with(&outs, ErrorCode::Unauthorized));
    assert!(d.v.is_closed());
}
