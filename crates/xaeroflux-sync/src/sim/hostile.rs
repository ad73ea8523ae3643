//! Hostile peers: each case asserts the victim rejects (or, for a fork, isolates) the
//! input, raises the system event, and its store is unchanged.

use std::collections::VecDeque;

use xaeroflux_core::{AuthorId, GroupSecret};

use super::*;
use crate::frame::{Events, EventsByRef, Hello, HelloKey, MAX_FRAME};
use crate::proto::handshake::{HELLO_CONTEXT, make_hello};

pub(super) const ATTACKER: usize = 0;
pub(super) const VICTIM: usize = 1;

pub(super) fn params(ekm: u8) -> (TransportParams, TransportParams) {
    let i = TransportParams {
        local_endpoint: [0xa0; 32],
        remote_endpoint: [0xb0; 32],
        keying_material: [ekm; 32],
    };
    let a = TransportParams {
        local_endpoint: i.remote_endpoint,
        remote_endpoint: i.local_endpoint,
        keying_material: i.keying_material,
    };
    (i, a)
}

pub(super) struct Duo {
    pub(super) attacker: Peer,
    pub(super) victim: Peer,
    pub(super) a: Session,
    pub(super) v: Session,
    pub(super) now: u64,
    /// Every frame fed to the victim.
    pub(super) fed: Vec<Vec<u8>>,
    /// Keying material byte of the current connection.
    pub(super) ekm: u8,
}

impl Duo {
    /// Attacker (initiator) with a 4-event log; victim (acceptor) empty.
    pub(super) fn new() -> Self {
        let mut attacker = Peer::new(ATTACKER);
        attacker.write(group().id(), 4, 1, 0);
        Duo {
            attacker,
            victim: Peer::new(VICTIM),
            a: Session::new(cfg(keypair(ATTACKER))),
            v: Session::new(cfg(keypair(VICTIM))),
            now: 10,
            fed: Vec::new(),
            ekm: 1,
        }
    }

    pub(super) fn connect_victim(&mut self) -> Vec<Output> {
        let (_, ap) = params(self.ekm);
        self.v.handle(
            Input::Connected {
                role: Role::Acceptor,
                params: ap,
            },
            self.now,
            &self.victim.store,
        )
    }

    /// Feeds bytes to the victim and applies its storage outputs.
    pub(super) fn feed(&mut self, bytes: Vec<u8>) -> Vec<Output> {
        self.fed.push(bytes.clone());
        let outs = self
            .v
            .handle(Input::Frame(bytes), self.now, &self.victim.store);
        for o in &outs {
            if let Output::StoreVerified(b) = o {
                self.victim.store.apply_verified(b).unwrap();
            }
        }
        outs
    }

    /// Runs the honest handshake; `answer` decides whether the attacker's honest
    /// session may answer requests. Returns every victim output.
    pub(super) fn handshake(&mut self, answer: bool) -> Vec<Output> {
        let (ip, _) = params(self.ekm);
        let mut to_v: VecDeque<Vec<u8>> = VecDeque::new();
        let mut to_a: VecDeque<Vec<u8>> = VecDeque::new();
        let mut all = self.connect_victim();
        let outs = self.a.handle(
            Input::Connected {
                role: Role::Initiator,
                params: ip,
            },
            self.now,
            &self.attacker.store,
        );
        sends(&outs, &mut to_v);
        while !to_v.is_empty() || !to_a.is_empty() {
            if let Some(b) = to_v.pop_front() {
                if !answer
                    && matches!(
                        frame::decode(&b),
                        Ok(Message::Events(_) | Message::EventsByRef(_))
                    )
                {
                    continue;
                }
                let outs = self.feed(b);
                sends(&outs, &mut to_a);
                all.extend(outs);
            }
            if let Some(b) = to_a.pop_front() {
                let outs = self
                    .a
                    .handle(Input::Frame(b), self.now, &self.attacker.store);
                sends(&outs, &mut to_v);
            }
        }
        all
    }

    /// A new connection with fresh sessions (stores kept); `short`: the attacker
    /// (initiator) names its key by id in its Hello.
    pub(super) fn reconnect(&mut self, short: bool) {
        self.ekm += 1;
        let mut c = cfg(keypair(ATTACKER));
        c.short_hello = short;
        self.a = Session::new(c);
        self.v = Session::new(cfg(keypair(VICTIM)));
        self.fed.clear();
    }

    /// Both stores hold the same logs of the group.
    pub(super) fn assert_converged(&self) {
        let g = group().id();
        assert_eq!(
            self.victim.store.summary(&g),
            self.attacker.store.summary(&g)
        );
    }

    pub(super) fn author(&self) -> AuthorId {
        author_of(&self.attacker.kp)
    }

    pub(super) fn events_frame(
        &self,
        first_seq: u64,
        events: Vec<Vec<u8>>,
        cp: SignedCheckpoint,
    ) -> Vec<u8> {
        frame::encode(&Message::Events(Events {
            author: self.author(),
            first_seq,
            checkpoint: cp,
            proof: Vec::new(),
            events: events.iter().collect(),
        }))
    }

    pub(super) fn attacker_log(&self) -> (Vec<Vec<u8>>, SignedCheckpoint) {
        let g = group().id();
        let a = self.author();
        (
            self.attacker.store.log_events(&g, &a).to_vec(),
            self.attacker.store.latest_checkpoint(&g, &a).unwrap(),
        )
    }
}

pub(super) fn sends(outs: &[Output], q: &mut VecDeque<Vec<u8>>) {
    for o in outs {
        if let Output::Send(b) = o {
            q.push_back(b.clone());
        }
    }
}

/// Rejected with `code`, connection closed, nothing stored.
pub(super) fn assert_rejected(duo: &Duo, outs: &[Output], code: ErrorCode) {
    assert!(
        outs.iter().any(|o| matches!(o,
            Output::Event(SystemEvent::PeerRejected { code: c, .. }) if *c == code)),
        "expected rejection {code:?}, got {outs:?}"
    );
    assert!(
        outs.iter()
            .any(|o| matches!(o, Output::Close { code: c, .. } if *c == code))
    );
    assert!(!outs.iter().any(|o| matches!(o, Output::StoreVerified(_))));
    assert!(duo.v.is_closed());
    assert!(
        duo.victim.store.summary(&group().id()).is_empty(),
        "store changed"
    );
}

#[test]
fn honest_pair_syncs() {
    let mut duo = Duo::new();
    let outs = duo.handshake(true);
    assert!(
        outs.iter()
            .any(|o| matches!(o, Output::Event(SystemEvent::PeerAuthenticated { .. })))
    );
    duo.assert_converged();
}

/// The only log is the initiator's own: its key travels once, in its Hello, and no
/// `Checkpoints` frame repeats it (898 bytes per session saved); the answer to the
/// victim's request names the advertised checkpoint instead of repeating it (782 bytes
/// per response saved).
#[test]
fn known_material_is_not_repeated() {
    let mut duo = Duo::new();
    duo.handshake(true);
    let (mut checkpoints, mut by_ref, mut full) = (0, 0, 0);
    for b in &duo.fed {
        match frame::decode(b) {
            Ok(Message::Checkpoints {
                checkpoints: cps,
                keys,
            }) => {
                checkpoints += cps.len();
                assert!(keys.is_empty(), "key sent again: {keys:?}");
            }
            Ok(Message::EventsByRef(_)) => by_ref += 1,
            Ok(Message::Events(_)) => full += 1,
            _ => {}
        }
    }
    assert!(checkpoints > 0, "no checkpoint was advertised");
    assert!(
        by_ref > 0 && full == 0,
        "by reference {by_ref}, in full {full}"
    );
    duo.assert_converged();
}

/// The first Hello among `frames`: its frame length and the message.
fn hello_in<'a>(frames: impl IntoIterator<Item = &'a Vec<u8>>) -> (usize, Hello) {
    frames
        .into_iter()
        .find_map(|b| match frame::decode(b) {
            Ok(Message::Hello(h)) => Some((b.len(), *h)),
            _ => None,
        })
        .expect("a hello")
}

/// Peers that met before (each stored the other's key) shake hands with short Hellos,
/// 866 bytes lighter each way, and sync as before.
#[test]
fn short_hello_between_peers_that_met() {
    let mut duo = Duo::new();
    duo.handshake(true);
    // What the engine does when a session is up: keep the authenticated peer's key.
    duo.attacker.store.add_key(keypair(VICTIM).public().clone());
    duo.attacker.write(group().id(), 2, 1, 50);
    duo.reconnect(true);
    let outs = duo.handshake(true);
    let mut sent = VecDeque::new();
    sends(&outs, &mut sent);
    let (_, theirs) = hello_in(&duo.fed);
    let (ours_len, ours) = hello_in(&sent);
    assert!(matches!(theirs.key, HelloKey::Id(_)), "{:?}", theirs.key);
    assert!(matches!(ours.key, HelloKey::Id(_)), "{:?}", ours.key);
    assert_eq!(ours_len, 1752 - 866, "short hello frame");
    assert!(duo.v.is_established() && !duo.v.key_missed());
    duo.assert_converged();
}

/// A short Hello to a node that never stored the key: refused with `UnknownKey`,
/// nothing learnt, and both sides know to send the whole key next time.
#[test]
fn short_hello_naming_an_unknown_key() {
    let mut duo = Duo::new();
    duo.reconnect(true);
    let outs = duo.handshake(true);
    assert_rejected(&duo, &outs, ErrorCode::UnknownKey);
    assert!(duo.v.key_missed() && duo.a.key_missed());
    // The next connection, with the whole key, goes through.
    duo.reconnect(false);
    duo.handshake(true);
    duo.assert_converged();
}

/// Events naming a checkpoint length the peer never advertised.
#[test]
fn events_naming_a_checkpoint_never_advertised() {
    let mut duo = Duo::new();
    duo.handshake(false);
    let (events, cp) = duo.attacker_log();
    let outs = duo.feed(frame::encode(&Message::EventsByRef(EventsByRef {
        author: duo.author(),
        first_seq: 0,
        checkpoint_length: cp.checkpoint.length + 1,
        proof: Vec::new(),
        events: events.iter().collect(),
    })));
    assert_rejected(&duo, &outs, ErrorCode::BadCheckpoint);
}

#[test]
fn bad_falcon_signature() {
    let mut duo = Duo::new();
    duo.connect_victim();
    let (ip, _) = params(1);
    let mut hello = make_hello(Role::Initiator, &ip, &group(), &keypair(ATTACKER), false);
    hello.signature = keypair(ATTACKER)
        .sign_with_context(HELLO_CONTEXT, b"something else")
        .unwrap();
    let outs = duo.feed(frame::encode(&Message::Hello(Box::new(hello))));
    assert_rejected(&duo, &outs, ErrorCode::BadSignature);
}

#[test]
fn handshake_replayed_on_another_connection() {
    let mut duo = Duo::new();
    duo.connect_victim();
    // A Hello captured on a connection with other keying material: its MAC covers
    // that connection's transcript, so it fails like any non-member's Hello.
    let (other, _) = params(2);
    let hello = make_hello(Role::Initiator, &other, &group(), &keypair(ATTACKER), false);
    let outs = duo.feed(frame::encode(&Message::Hello(Box::new(hello.clone()))));
    assert_rejected(&duo, &outs, ErrorCode::BadMac);
    // Rewriting the keying material field does not help: MAC and signature fail.
    let mut duo = Duo::new();
    duo.connect_victim();
    let mut h = hello;
    h.keying_material = [1; 32];
    let outs = duo.feed(frame::encode(&Message::Hello(Box::new(h))));
    assert_rejected(&duo, &outs, ErrorCode::BadMac);
}

/// The victim's answer to one Hello, as bytes on the wire.
fn answer_to(hello: Hello) -> (Vec<Vec<u8>>, Option<ErrorCode>) {
    let mut duo = Duo::new();
    duo.connect_victim();
    let outs = duo.feed(frame::encode(&Message::Hello(Box::new(hello))));
    let sent = outs
        .iter()
        .filter_map(|o| match o {
            Output::Send(b) => Some(b.clone()),
            _ => None,
        })
        .collect();
    let code = outs.iter().find_map(|o| match o {
        Output::Close { code, .. } => Some(*code),
        _ => None,
    });
    assert!(duo.victim.store.summary(&group().id()).is_empty());
    (sent, code)
}

#[test]
fn wrong_group_mac_learns_nothing() {
    let (ip, _) = params(1);
    let stranger = Group::from_secret(GroupSecret::from_bytes([9; 32]));
    let hello = |g: &Group| make_hello(Role::Initiator, &ip, g, &keypair(ATTACKER), false);
    // What the transport answers for a group the node does not sync (it never starts
    // a session): one Error frame with code 6 and this reason, then a close with 6.
    let unknown_group = vec![frame::encode(&Message::Error {
        code: ErrorCode::BadMac.as_u16(),
        reason: crate::proto::NON_MEMBER_REASON.into(),
    })];
    // Every way a non-member can get a Hello for our group wrong gets exactly that.
    let mut cases: Vec<(&str, Hello)> = Vec::new();
    let mut h = hello(&stranger);
    h.group = group().id();
    cases.push(("mac under a guessed key", h));
    cases.push(("another group altogether", hello(&stranger)));
    let mut h = hello(&stranger);
    h.group = group().id();
    h.tag = *b"xaeroflux/sync/9";
    cases.push(("wrong tag", h));
    let mut h = hello(&stranger);
    h.group = group().id();
    h.role = Role::Acceptor;
    cases.push(("wrong role", h));
    let mut h = hello(&stranger);
    h.group = group().id();
    h.keying_material = [77; 32];
    cases.push(("other keying material", h));
    let mut h = hello(&stranger);
    h.group = group().id();
    h.acceptor_endpoint = [5; 32];
    cases.push(("other endpoint id", h));
    let (ip2, _) = params(2);
    cases.push((
        "member's hello replayed from another connection",
        make_hello(Role::Initiator, &ip2, &group(), &keypair(ATTACKER), false),
    ));
    for (what, h) in cases {
        let (sent, code) = answer_to(h);
        assert_eq!(sent, unknown_group, "{what}: answer differs");
        assert_eq!(code, Some(ErrorCode::BadMac), "{what}");
    }
    // A member with a wrong tag has proven membership: it may learn the real fault.
    let mut h = hello(&group());
    h.tag = *b"xaeroflux/sync/9";
    let (_, code) = answer_to(h);
    assert_eq!(code, Some(ErrorCode::Protocol));
}

#[test]
fn event_whose_hash_does_not_match() {
    let mut duo = Duo::new();
    duo.handshake(false);
    let (mut events, cp) = duo.attacker_log();
    let last = events[2].len() - 1;
    events[2][last] ^= 1; // still decodes; its hash is not the id the root commits to
    let outs = duo.feed(duo.events_frame(0, events, cp));
    assert_rejected(&duo, &outs, ErrorCode::RootMismatch);
}

#[test]
fn events_that_do_not_reproduce_the_signed_root() {
    let mut duo = Duo::new();
    duo.handshake(false);
    let (_, cp) = duo.attacker_log();
    // Valid events of the same author, but another history than the one signed.
    let mut other = Peer::new(ATTACKER);
    let (events, _) = other.write(group().id(), 4, 2, 99);
    let outs = duo.feed(duo.events_frame(0, events, cp));
    assert_rejected(&duo, &outs, ErrorCode::RootMismatch);
}

#[test]
fn wrong_seq_or_gap() {
    let mut duo = Duo::new();
    duo.handshake(false);
    let (events, cp) = duo.attacker_log();
    let outs = duo.feed(duo.events_frame(1, events[1..].to_vec(), cp.clone()));
    assert_rejected(&duo, &outs, ErrorCode::SeqGap);

    let mut duo = Duo::new();
    duo.handshake(false);
    let swapped = vec![events[1].clone(), events[0].clone()];
    let outs = duo.feed(duo.events_frame(0, swapped, cp));
    assert_rejected(&duo, &outs, ErrorCode::SeqGap);
}

#[test]
fn event_of_another_group_or_bad_checkpoint() {
    let mut duo = Duo::new();
    duo.handshake(false);
    let (_, cp) = duo.attacker_log();
    let mut other = Peer::new(ATTACKER);
    let (events, _) = other.write(GroupId([5; 32]), 4, 2, 0);
    let outs = duo.feed(duo.events_frame(0, events, cp.clone()));
    assert_rejected(&duo, &outs, ErrorCode::BadEvent);

    let mut duo = Duo::new();
    duo.handshake(false);
    let (events, mut cp) = duo.attacker_log();
    cp.checkpoint.hlc = Hlc::from_u64(cp.checkpoint.hlc.as_u64() + 1);
    let outs = duo.feed(duo.events_frame(0, events, cp));
    assert_rejected(&duo, &outs, ErrorCode::BadCheckpoint);
}

#[test]
fn unsolicited_events() {
    let mut duo = Duo::new();
    duo.handshake(true);
    let before = duo.victim.store.summary(&group().id());
    let (events, cp) = duo.attacker_log();
    let outs = duo.feed(duo.events_frame(0, events, cp));
    assert!(outs.iter().any(|o| matches!(
        o,
        Output::Event(SystemEvent::PeerRejected {
            code: ErrorCode::Unexpected,
            ..
        })
    )));
    assert_eq!(duo.victim.store.summary(&group().id()), before);
}

#[test]
fn oversized_frame() {
    let mut duo = Duo::new();
    duo.connect_victim();
    let outs = duo.feed(((MAX_FRAME + 1) as u32).to_le_bytes().to_vec());
    assert_rejected(&duo, &outs, ErrorCode::FrameTooLarge);
    // Also after the handshake, announced by the length prefix alone.
    let mut duo = Duo::new();
    duo.handshake(false);
    let outs = duo.feed(vec![0xff, 0xff, 0xff, 0xff, 1, 4]);
    assert_rejected(&duo, &outs, ErrorCode::FrameTooLarge);
}

#[test]
fn garbage_bytes() {
    let mut rng = Rng::new(5);
    for _ in 0..50 {
        let mut duo = Duo::new();
        duo.handshake(false);
        // A plausible length, then noise: bad version/type/body.
        let mut g = vec![40, 0, 0, 0];
        for _ in 0..40 {
            g.push(rng.next() as u8);
        }
        let outs = duo.feed(g);
        assert!(
            outs.iter().any(|o| matches!(
                o,
                Output::Event(SystemEvent::PeerRejected {
                    code: ErrorCode::Malformed | ErrorCode::Unexpected,
                    ..
                })
            )),
            "{outs:?}"
        );
        assert!(duo.v.is_closed());
        assert!(duo.victim.store.summary(&group().id()).is_empty());
    }
}

#[test]
fn slow_loris_timeouts() {
    // Never completes the handshake.
    let mut duo = Duo::new();
    duo.connect_victim();
    duo.feed(vec![10, 0]);
    let outs = duo
        .v
        .handle(Input::Tick, duo.now + 4_000, &duo.victim.store);
    assert!(outs.is_empty());
    let outs = duo
        .v
        .handle(Input::Tick, duo.now + 6_000, &duo.victim.store);
    assert_rejected(&duo, &outs, ErrorCode::Timeout);
    // Announces a log, never answers the request.
    let mut duo = Duo::new();
    duo.handshake(false);
    assert!(duo.v.is_fetching());
    let outs = duo
        .v
        .handle(Input::Tick, duo.now + 11_000, &duo.victim.store);
    assert_rejected(&duo, &outs, ErrorCode::Timeout);
}

#[test]
fn fork_is_detected_shared_and_not_extended() {
    let mut duo = Duo::new();
    duo.handshake(true);
    let g = group().id();
    let before = duo.victim.store.summary(&g);
    assert_eq!(before[0].1, 4);
    // The author signs a second history of the same length.
    let mut evil = Peer::new(ATTACKER);
    let (branch, cp_b) = evil.write(g, 4, 3, 77);
    let outs = duo.feed(frame::encode(&Message::Checkpoints {
        checkpoints: vec![cp_b.clone()],
        keys: vec![keypair(ATTACKER).public().clone()],
    }));
    assert!(
        outs.iter()
            .any(|o| matches!(o, Output::Event(SystemEvent::ForkDetected { .. })))
    );
    let evidence = outs.iter().find_map(|o| match o {
        Output::Send(b) => match frame::decode(b) {
            Ok(Message::ForkEvidence(p)) => Some(p),
            _ => None,
        },
        _ => None,
    });
    let evidence = evidence.expect("fork evidence sent to the peer");
    assert_eq!(evidence.1, cp_b);
    assert!(!duo.v.is_closed());
    // The forked log is never extended, whichever branch continues.
    let (more, cp_more) = evil.write(g, 2, 4, 78);
    let outs = duo.feed(frame::encode(&Message::Push(Events {
        author: duo.author(),
        first_seq: 4,
        checkpoint: cp_more,
        proof: Vec::new(),
        events: more.iter().collect(),
    })));
    assert!(!outs.iter().any(|o| matches!(o, Output::StoreVerified(_))));
    let (more, cp_more) = duo.attacker.write(g, 2, 4, 79);
    let outs = duo.feed(frame::encode(&Message::Push(Events {
        author: duo.author(),
        first_seq: 4,
        checkpoint: cp_more,
        proof: Vec::new(),
        events: more.iter().collect(),
    })));
    assert!(!outs.iter().any(|o| matches!(o, Output::StoreVerified(_))));
    assert_eq!(duo.victim.store.summary(&g), before);
    let _ = branch;

    // A third peer that receives the evidence raises the event too.
    let mut third = Duo::new();
    third.handshake(true);
    let outs = third.feed(frame::encode(&Message::ForkEvidence(evidence)));
    assert!(
        outs.iter()
            .any(|o| matches!(o, Output::Event(SystemEvent::ForkDetected { .. })))
    );
}

#[test]
fn live_push_after_catch_up() {
    let mut duo = Duo::new();
    duo.handshake(true);
    let g = group().id();
    let (events, cp) = duo.attacker.write(g, 3, 5, 1);
    let outs = duo
        .a
        .handle(committed(events.len(), &cp), duo.now, &duo.attacker.store);
    let mut q = VecDeque::new();
    sends(&outs, &mut q);
    assert_eq!(q.len(), 1);
    assert!(matches!(frame::decode(&q[0]), Ok(Message::Push(_))));
    let outs = duo.feed(q.pop_front().unwrap());
    assert!(outs.iter().any(|o| matches!(o, Output::StoreVerified(_))));
    duo.assert_converged();
}

/// A push that overlaps what the receiver got by another path and goes past it: the
/// tail is verified and stored from the push itself, nothing is requested (a request
/// would make those events cross the session twice).
#[test]
fn an_overlapping_push_stores_its_tail_without_a_request() {
    let mut duo = Duo::new();
    duo.handshake(true);
    let g = group().id();
    let author = duo.author();
    let (first, cp_first) = duo.attacker.write(g, 2, 5, 1);
    let (second, cp_second) = duo.attacker.write(g, 3, 6, 2);
    let held = duo.victim.store.summary(&g)[0].1;
    // The first commit reaches the victim by another path.
    duo.victim
        .store
        .apply_verified(&crate::host::VerifiedBatch {
            group: g,
            author,
            author_key: keypair(ATTACKER).public().clone(),
            first_seq: held,
            ids: first
                .iter()
                .map(|e| xaeroflux_core::EventRef::decode(e).unwrap().id())
                .collect(),
            events: first.iter().collect(),
            checkpoint: Box::new(cp_first),
            prefix_root: duo.victim.store.frontier(&g, &author).root(),
        })
        .unwrap();
    // The peer pushes both commits at once (it relays them as it received them).
    let both: Vec<&Vec<u8>> = first.iter().chain(&second).collect();
    let outs = duo.feed(frame::encode(&Message::Push(Events {
        author,
        first_seq: held,
        checkpoint: cp_second,
        proof: Vec::new(),
        events: both.into_iter().collect(),
    })));
    let stored: Vec<_> = outs
        .iter()
        .filter_map(|o| match o {
            Output::StoreVerified(b) => Some((b.first_seq, b.events.len())),
            _ => None,
        })
        .collect();
    assert_eq!(stored, [(held + 2, 3)]);
    let requests = outs.iter().any(|o| match o {
        Output::Send(b) => matches!(frame::decode(b), Ok(Message::Request(_))),
        _ => false,
    });
    assert!(!requests, "the tail was requested again");
    duo.assert_converged();
}

#[test]
fn absurd_checkpoint_length() {
    let mut duo = Duo::new();
    duo.handshake(false);
    let (_, cp) = duo.attacker_log();
    let mut c = cp.checkpoint;
    c.length = u64::MAX;
    let huge = c.sign(&keypair(ATTACKER));
    let outs = duo.feed(frame::encode(&Message::Checkpoints {
        checkpoints: vec![huge],
        keys: Vec::new(),
    }));
    assert_rejected(&duo, &outs, ErrorCode::BadCheckpoint);
}
