//! Nodes on loopback syncing through real iroh endpoints.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::*;
use xaeroflux_net::{PeerAddr, Ticket};
use xaeroflux_sync::PeerEvent;

#[test]
fn two_nodes_sync_both_ways() {
    init_tracing();
    const N: usize = 10_000;
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (a, b) = (TestHost::new(1), TestHost::new(2));
    a.write_many(N, 1000, 64);
    b.write_many(N, 1000, 64);
    let na = start(&a, da.path());
    let nb = start(&b, db.path());
    let t0 = Instant::now();
    let ticket: Ticket = na
        .ticket(&group().id(), false)
        .unwrap()
        .to_string()
        .parse()
        .unwrap();
    nb.connect(&ticket).unwrap();
    wait_until(60, "convergence", || {
        a.total() == 2 * N as u64 && b.total() == 2 * N as u64
    });
    eprintln!("2 x {N} events synced both ways in {:?}", t0.elapsed());
    assert_eq!(a.summary(), b.summary());
    assert_eq!(a.store_errors.load(std::sync::atomic::Ordering::Relaxed), 0);
    // Peer table, identities and counters on both sides.
    wait_until(10, "connected peers", || {
        na.peers().iter().any(|p| p.connected) && nb.peers().iter().any(|p| p.connected)
    });
    let pb = nb.peers();
    assert_eq!(pb.len(), 1);
    assert_eq!(pb[0].endpoint, na.endpoint_id());
    assert_eq!(pb[0].identity, Some(a.kp.id()));
    assert!(pb[0].known);
    assert_eq!(pb[0].events_received, N as u64);
    assert_eq!(pb[0].groups, vec![group().id()]);
    let pa = na.peers();
    assert_eq!(pa[0].identity, Some(b.kp.id()));
    assert!(!pa[0].known, "a did not dial b");
    assert!(b.events_matching(|e| matches!(e, PeerEvent::Connected { .. })) >= 1);
    na.shutdown();
    wait_until(10, "disconnect event", || {
        b.events_matching(|e| matches!(e, PeerEvent::Disconnected { .. })) >= 1
    });
    nb.shutdown();
}

#[test]
fn live_push_arrives() {
    init_tracing();
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (a, b) = (TestHost::new(1), TestHost::new(2));
    a.write(5, 32);
    let na = start(&a, da.path());
    let nb = start(&b, db.path());
    nb.add_peer(na.addr(), &[]).unwrap();
    wait_until(10, "initial sync", || b.total() == 5);
    wait_until(10, "session up", || nb.peers().iter().any(|p| p.connected));
    let t = Instant::now();
    a.write(1, 32);
    wait_until(10, "pushed event", || b.total() == 6);
    eprintln!("live push latency {:?}", t.elapsed());
    b.write(1, 32);
    wait_until(10, "pushed event back", || a.total() == 7);
    assert_eq!(a.summary(), b.summary());
}

#[test]
fn offline_node_converges_after_start() {
    init_tracing();
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let hosts: Vec<_> = (1..=3).map(TestHost::new).collect();
    let na = start(&hosts[0], dirs[0].path());
    let nb = start(&hosts[1], dirs[1].path());
    nb.add_peer(na.addr(), &[]).unwrap();
    // C is offline while A and B write.
    hosts[0].write_many(2000, 250, 48);
    hosts[1].write_many(2000, 250, 48);
    wait_until(30, "a and b converge", || {
        hosts[0].total() == 4000 && hosts[1].total() == 4000
    });
    let nc = start(&hosts[2], dirs[2].path());
    // C knows only A; B's events reach it through A.
    nc.add_peer(na.addr(), &[]).unwrap();
    wait_until(30, "c catches up", || hosts[2].total() == 4000);
    // Live writes on B now reach C through A (relay push or anti-entropy).
    hosts[1].write(10, 48);
    hosts[2].write(10, 48);
    wait_until(30, "all converge", || {
        hosts.iter().all(|h| h.total() == 4020)
    });
    assert_eq!(hosts[0].summary(), hosts[1].summary());
    assert_eq!(hosts[0].summary(), hosts[2].summary());
    drop((na, nb, nc));
}

#[test]
fn restarted_node_resumes_without_loss_or_duplicates() {
    init_tracing();
    const N: usize = 10_000;
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (a, b) = (TestHost::new(1), TestHost::new(2));
    a.write_many(N, 500, 64);
    // B's disk is slow, so the sync is still running when B stops.
    *b.store_delay.lock().unwrap() = Duration::from_millis(40);
    let na = start(&a, da.path());
    let nb = start(&b, db.path());
    let b_id = nb.endpoint_id();
    nb.add_peer(
        PeerAddr {
            endpoint: na.endpoint_id(),
            addrs: na.addr().addrs,
        },
        &[],
    )
    .unwrap();
    wait_until(30, "partial sync", || b.total() > 0);
    nb.shutdown();
    let partial = b.total();
    assert!(partial > 0 && partial < N as u64, "partial {partial}");
    *b.store_delay.lock().unwrap() = Duration::ZERO;
    // Same state dir: same endpoint id, and A is redialled from the known peers file.
    let nb = start(&b, db.path());
    assert_eq!(nb.endpoint_id(), b_id);
    assert!(
        nb.peers()
            .iter()
            .any(|p| p.endpoint == na.endpoint_id() && p.known)
    );
    wait_until(30, "resumed sync", || b.total() == N as u64);
    assert_eq!(a.summary(), b.summary());
    assert_eq!(b.log_len(&a.author()), N as u64);
    assert_eq!(b.store_errors.load(std::sync::atomic::Ordering::Relaxed), 0);
    drop(nb);
    drop(na);
}

#[test]
fn mutual_dial_converges() {
    init_tracing();
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (a, b) = (TestHost::new(1), TestHost::new(2));
    a.write(100, 32);
    b.write(100, 32);
    let na = start(&a, da.path());
    let nb = start(&b, db.path());
    // Both ends dial: one connection survives the tie-break, sync still completes.
    na.add_peer(nb.addr(), &[]).unwrap();
    nb.add_peer(na.addr(), &[]).unwrap();
    wait_until(15, "convergence", || a.total() == 200 && b.total() == 200);
    b.write(1, 32);
    wait_until(15, "live push", || a.total() == 201);
    assert_eq!(a.summary(), b.summary());
    assert!(na.peers()[0].known && nb.peers()[0].known);
}

#[test]
fn traffic_counters_agree_on_both_ends() {
    init_tracing();
    const N: usize = 2_000;
    const PAYLOAD: usize = 64;
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (a, b) = (TestHost::new(1), TestHost::new(2));
    a.write_many(N, 500, PAYLOAD);
    let na = start(&a, da.path());
    let nb = start(&b, db.path());
    nb.add_peer(na.addr(), &[]).unwrap();
    wait_until(30, "catch-up", || b.total() == N as u64);
    // Frames and their bytes as counted by the sender and by the receiver meet once
    // nothing is in flight (anti-entropy rounds pause in between).
    wait_until(10, "counters agree", || {
        let (ta, tb) = (na.peers()[0].traffic, nb.peers()[0].traffic);
        ta.frames_sent == tb.frames_received
            && ta.bytes_sent == tb.bytes_received
            && tb.frames_sent == ta.frames_received
            && tb.bytes_sent == ta.bytes_received
    });
    let tb = nb.peers()[0].traffic;
    // Hello, checkpoints, requests.
    assert!(tb.frames_sent >= 3, "{tb:?}");
    assert!(tb.bytes_received as usize >= N * PAYLOAD, "{tb:?}");
    assert!(tb.udp_bytes_received >= tb.bytes_received, "{tb:?}");
    assert!(tb.udp_bytes_sent >= tb.bytes_sent, "{tb:?}");
    // Totals survive the end of the session.
    na.shutdown();
    wait_until(10, "session ended", || !nb.peers()[0].connected);
    let after = nb.peers()[0].traffic;
    assert!(after.bytes_received >= tb.bytes_received, "{after:?}");
    assert!(
        after.udp_bytes_received >= tb.udp_bytes_received,
        "{after:?}"
    );
    nb.shutdown();
}

/// After one session each side keeps the other's key, so the redial after a restart
/// names keys by id: both Hellos are 866 bytes lighter, and the sync works as before.
/// A peer that lost the key refuses once (`UnknownKey`) and the redial after that
/// sends the whole key.
#[test]
fn short_hello_after_a_first_session_and_fallback() {
    use xaeroflux_net::state::load_peers;
    use xaeroflux_sync::{ErrorCode, SystemEvent};
    init_tracing();
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (a, b) = (TestHost::new(1), TestHost::new(2));
    a.write(5, 32);
    let na = start(&a, da.path());
    let nb = start(&b, db.path());
    let ea = na.endpoint_id();
    nb.add_peer(na.addr(), &[]).unwrap();
    wait_until(10, "first sync", || b.total() == 5);
    wait_until(10, "short hellos remembered", || {
        load_peers(db.path())
            .get(&ea)
            .is_some_and(|p| p.short_hello)
    });
    let first = nb.peers()[0].traffic;
    nb.shutdown();

    // Restart B: its first dial uses a short Hello, and A answers in kind.
    a.write(1, 32);
    let nb = start(&b, db.path());
    wait_until(10, "catch-up after restart", || b.total() == 6);
    wait_until(10, "session up", || nb.peers().iter().any(|p| p.connected));
    let second = nb.peers()[0].traffic;
    let rejected = |h: &TestHost| {
        h.events_matching(|e| {
            matches!(
                e,
                PeerEvent::Session {
                    event: SystemEvent::PeerRejected {
                        code: ErrorCode::UnknownKey,
                        ..
                    },
                    ..
                }
            )
        })
    };
    assert_eq!(rejected(&a) + rejected(&b), 0);
    // Received: A's Hello is 886 bytes instead of 1752 (the rest: A's checkpoints and
    // one event, about the same as the first time's five).
    assert!(
        second.bytes_received + 700 < first.bytes_received,
        "first {first:?}\nsecond {second:?}"
    );
    nb.shutdown();

    // A's endpoint comes back with a store that never saw B's key (a wiped store,
    // here also a new identity with a log of its own): B's short Hello is refused
    // once, then B sends its whole key and the sync goes on.
    let a2 = TestHost::new(3);
    a2.write(7, 32);
    na.shutdown();
    let na = start(&a2, da.path());
    let nb = start(&b, db.path());
    // A's endpoint came back on another port.
    nb.add_peer(na.addr(), &[]).unwrap();
    wait_until(20, "sync after the fallback", || b.total() == 6 + 7);
    assert!(rejected(&a2) >= 1, "no UnknownKey refusal seen");
    wait_until(10, "short hellos again", || {
        load_peers(db.path())
            .get(&ea)
            .is_some_and(|p| p.short_hello)
    });
    nb.shutdown();
    na.shutdown();
}

/// The last owner of a node may let go of it on a thread of another runtime (an API
/// worker): `shutdown` there must end the node, not panic on a nested `block_on`.
#[test]
fn shutdown_inside_another_runtime_does_not_panic() {
    let dir = tempfile::tempdir().unwrap();
    let host = TestHost::new(1);
    let node = start(&host, dir.path());
    let other = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    other.block_on(async move { node.shutdown() });
}
