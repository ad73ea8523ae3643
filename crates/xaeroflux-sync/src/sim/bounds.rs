//! Resource bounds against a peer that is a member: request floods, key floods and
//! oversized frames before the handshake. Each test states the bound it checks.

use super::hostile::{ATTACKER, Duo, VICTIM, sends};
use super::*;
use crate::frame::{MAX_FRAME, MAX_HANDSHAKE_FRAME, Request};

/// A victim with the default configuration holding `n` events of 512 bytes, after an
/// honest handshake with the attacker (which fetched them).
fn victim_with_log(n: usize) -> Duo {
    let mut duo = Duo::new();
    duo.v = Session::new(SessionConfig::new(group(), keypair(VICTIM)));
    duo.victim.write_sized(group().id(), n, 512);
    duo.handshake(true);
    assert!(duo.v.is_established());
    // The handshake's frames were written.
    let unsent = duo.v.memory().unsent;
    duo.v
        .handle(Input::Drained { bytes: unsent }, duo.now, &duo.victim.store);
    assert_eq!(duo.v.memory().unsent, 0);
    duo
}

fn request_flood(author: AuthorId, requests: usize) -> Vec<u8> {
    let mut b = Vec::new();
    for _ in 0..requests {
        b.extend(frame::encode(&Message::Request(Request {
            author,
            from_seq: 0,
            to_seq: 1024,
        })));
    }
    b
}

fn sent_bytes(outs: &[Output]) -> u64 {
    outs.iter()
        .map(|o| match o {
            Output::Send(b) => b.len() as u64,
            _ => 0,
        })
        .sum()
}

/// Events carried by the answers among `frames`.
fn answered_events(frames: &[Vec<u8>]) -> u64 {
    frames
        .iter()
        .map(|b| match frame::decode(b).unwrap() {
            Message::Events(e) => e.events.len() as u64,
            Message::EventsByRef(e) => e.events.len() as u64,
            _ => 0,
        })
        .sum()
}

#[test]
fn request_flood_is_answered_within_the_backlog_cap() {
    let mut duo = victim_with_log(1024);
    let cap = SessionConfig::new(group(), keypair(VICTIM)).max_response_backlog as u64;
    let bound = cap + MAX_FRAME as u64;
    let requests = 16;
    // One read delivers 16 requests for the whole 1024-event log (1 MiB of frames
    // needed per answer, 54 bytes per request).
    let outs = duo.feed(request_flood(author_of(&duo.victim.kp), requests));
    let mut peak = sent_bytes(&outs);
    assert!(
        duo.v.is_established(),
        "an honest number of requests is served"
    );
    assert!(
        peak <= bound,
        "one read built {peak} bytes of answers (cap {bound})"
    );
    assert_eq!(duo.v.memory().unsent, peak);
    // Most requests wait for the outbox to drain.
    let waiting = duo.v.memory().queued_requests;
    assert!(waiting > requests / 2 && waiting < requests, "{waiting}");
    assert!(duo.v.has_backlog());
    // The transport writes what was queued; answers resume as it drains.
    let mut wire = VecDeque::new();
    sends(&outs, &mut wire);
    let mut delivered = Vec::new();
    while let Some(b) = wire.pop_front() {
        let n = b.len() as u64;
        delivered.push(b);
        let outs = duo
            .v
            .handle(Input::Drained { bytes: n }, duo.now, &duo.victim.store);
        sends(&outs, &mut wire);
        let unsent = duo.v.memory().unsent;
        peak = peak.max(unsent);
        assert!(unsent <= bound, "{unsent} bytes unsent (cap {bound})");
    }
    assert_eq!(answered_events(&delivered), 1024 * requests as u64);
    assert_eq!(duo.v.memory().queued_requests, 0);
    let total: u64 = delivered.iter().map(|b| b.len() as u64).sum();
    println!(
        "request flood of {requests} x 1024 events: peak unsent {peak} B with the cap, \
         {total} B built in one step without it"
    );
    assert!(
        total > 2 * bound,
        "the flood must be large enough to test the cap"
    );
}

#[test]
fn more_requests_than_the_queue_holds_close_the_session() {
    let mut duo = victim_with_log(64);
    let outs = duo.feed(request_flood(author_of(&duo.victim.kp), 10_000));
    assert!(duo.v.is_closed());
    assert!(
        outs.iter().any(
            |o| matches!(o, Output::Close { code, .. } if *code == ErrorCode::TooManyRequests)
        )
    );
    // Nothing but the Error frame was built.
    assert!(sent_bytes(&outs) < 2048, "{} bytes", sent_bytes(&outs));
}

#[test]
fn keys_without_a_checkpoint_are_not_kept() {
    let mut duo = Duo::new();
    duo.handshake(true);
    let keys: Vec<_> = (2..8).map(|i| keypair(i).public().clone()).collect();
    duo.feed(frame::encode(&Message::Checkpoints {
        checkpoints: Vec::new(),
        keys,
    }));
    assert!(duo.v.is_established());
    // Only the peer's own key (from its Hello).
    assert_eq!(duo.v.memory().keys, 1);
}

#[test]
fn keys_kept_are_bounded_and_needed() {
    let mut duo = Duo::new();
    let mut c = cfg(keypair(VICTIM));
    c.max_session_keys = 3;
    duo.v = Session::new(c);
    duo.handshake(true);
    let mut cps = Vec::new();
    let mut keys = Vec::new();
    for i in 2..8 {
        let mut p = Peer::new(i);
        let (_, cp) = p.write(group().id(), 2, 1, 0);
        cps.push(cp);
        keys.push(p.kp.public().clone());
    }
    let outs = duo.feed(frame::encode(&Message::Checkpoints {
        checkpoints: cps,
        keys,
    }));
    assert!(duo.v.is_established());
    let m = duo.v.memory();
    assert!(m.keys <= 3, "{m:?}");
    // The peer's key plus two others; their logs are the ones requested.
    let requested: std::collections::BTreeSet<AuthorId> = outs
        .iter()
        .filter_map(|o| match o {
            Output::Send(b) => match frame::decode(b).unwrap() {
                Message::Request(r) => Some(r.author),
                _ => None,
            },
            _ => None,
        })
        .collect();
    assert_eq!(requested.len(), 2, "{requested:?}");
}

#[test]
fn frames_before_the_handshake_are_refused_from_their_header() {
    for (ty, len, code) in [
        (2u8, MAX_FRAME, ErrorCode::FrameTooLarge),
        (2, 1000, ErrorCode::Unexpected),
        (3, 50, ErrorCode::Unexpected),
    ] {
        let mut duo = Duo::new();
        duo.connect_victim();
        // A Checkpoints (or Request) header announcing a body it has not sent.
        let mut b = (len as u32).to_le_bytes().to_vec();
        b.extend([frame::FRAME_VERSION, ty]);
        let outs = duo.feed(b);
        assert!(duo.v.is_closed(), "type {ty}");
        assert!(
            outs.iter()
                .any(|o| matches!(o, Output::Close { code: c, .. } if *c == code))
        );
        assert!(duo.v.memory().decoder <= 64);
    }
    // A Hello larger than any real one.
    let mut duo = Duo::new();
    duo.connect_victim();
    let mut b = (MAX_HANDSHAKE_FRAME as u32 + 1).to_le_bytes().to_vec();
    b.extend([frame::FRAME_VERSION, 1]);
    let outs = duo.feed(b);
    assert!(
        outs.iter()
            .any(|o| matches!(o, Output::Close { code, .. } if *code == ErrorCode::FrameTooLarge))
    );
    let _ = ATTACKER;
}

#[test]
fn a_peer_error_reason_reaches_the_log_sanitised() {
    let mut duo = Duo::new();
    duo.handshake(true);
    let reason = format!("bye\nFAKE LOG LINE\u{1b}[31m{}", "z".repeat(1000));
    let outs = duo.feed(frame::encode(&Message::Error { code: 1, reason }));
    let why = outs
        .iter()
        .find_map(|o| match o {
            Output::Close { reason, .. } => Some(reason.clone()),
            _ => None,
        })
        .unwrap();
    assert!(!why.chars().any(char::is_control), "{why:?}");
    assert!(why.len() < 300, "{} bytes", why.len());
}

#[test]
fn reserved_event_types_from_the_network_stop_that_log_only() {
    let mut duo = Duo::new();
    let g = group().id();
    // The attacker's log goes on with events of an engine type (5), then a state-view
    // type (40, accepted), in separate commits.
    duo.attacker.write_typed(g, 2, 16, 40);
    duo.attacker.write_typed(g, 2, 16, 5);
    // The attacker also relays an honest author's log.
    let mut honest = Peer::new(2);
    let (events, cp) = honest.write(g, 3, 1, 0);
    let list: crate::EventList = events.iter().collect();
    duo.attacker
        .store
        .apply(g, author_of(&honest.kp), 0, &list, &cp)
        .unwrap();
    duo.attacker.store.add_key(honest.kp.public().clone());
    let outs = duo.handshake(true);
    assert!(duo.v.is_established(), "the session goes on");
    for o in &outs {
        if let Output::StoreVerified(b) = o {
            for raw in b.events.iter() {
                let t = xaeroflux_core::EventRef::decode(raw)
                    .unwrap()
                    .header
                    .event_type;
                assert!(
                    xaeroflux_core::event::accepted_from_network(t),
                    "type {t} stored"
                );
            }
        }
    }
    let summary = duo.victim.store.summary(&g);
    // The honest log synced whole; the attacker's log stopped before the type-5 events
    // (its batches holding them were refused whole).
    assert!(summary.contains(&(author_of(&honest.kp), 3, honest.store.summary(&g)[0].2)));
    let attacker_len = summary
        .iter()
        .find(|s| s.0 == author_of(&duo.attacker.kp))
        .map_or(0, |s| s.1);
    assert!(attacker_len <= 6, "{attacker_len}");
}

#[test]
fn attachments_that_do_not_decode_stop_that_log() {
    let mut duo = Duo::new();
    let g = group().id();
    // Type 64 is accepted from the network only as a decodable attachment: the
    // attacker's 16-byte payloads are not one.
    duo.attacker.write_typed(g, 2, 16, 1000);
    duo.attacker.write_typed(g, 2, 16, 64);
    let outs = duo.handshake(true);
    assert!(duo.v.is_established(), "the session goes on");
    for o in &outs {
        if let Output::StoreVerified(b) = o {
            for raw in b.events.iter() {
                let e = xaeroflux_core::EventRef::decode(raw).unwrap();
                assert_ne!(e.header.event_type, 64, "a bad attachment was stored");
            }
        }
    }
    let len_at = |store: &MemLogs| {
        store
            .summary(&g)
            .iter()
            .find(|s| s.0 == author_of(&duo.attacker.kp))
            .map_or(0, |s| s.1)
    };
    // The victim holds at most the attacker's log before the two bad attachments.
    let (theirs, ours) = (len_at(&duo.attacker.store), len_at(&duo.victim.store));
    assert!(ours + 2 <= theirs, "victim holds {ours} of {theirs}");
}
