//! Real engine nodes syncing over iroh QUIC on loopback (relays off), many in one
//! process, each store in its own temporary directory.
//!
//! Every node starts with a default group of its own; the others join the shared
//! group with an invite (a ticket carrying the group secret). Convergence is
//! compared per author log (length and MMR root) plus the event count: the node-wide
//! MMR is in each node's local arrival order and differs between nodes by design.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::log_roots;

use xaeroflux::{
    AuthorId, GroupId, NetConfig, NetworkOptions, SystemEvent, XaeroFlux, XaeroKeypair,
};

const TYPE: u32 = 1000;
/// Generous: convergence is polled, never timed.
const DEADLINE: Duration = Duration::from_secs(60);

/// A networked store in `dir` with a fixed identity. The network state (endpoint key,
/// remembered peers) lives in `dir/net` as for any store; only the bind address is
/// loopback.
fn open(dir: &Path, seed: u8) -> XaeroFlux {
    let mut net = NetworkOptions::for_data_dir(dir);
    net.config.bind_addr = NetConfig::loopback().bind_addr;
    net.threads = 1;
    XaeroFlux::builder(dir)
        .identity(XaeroKeypair::generate_from_seed(&[seed; 32]))
        .network(net)
        .open()
        .unwrap()
}

/// `b` joins group `g` of `a` with an invite.
fn join(a: &XaeroFlux, b: &XaeroFlux, g: &GroupId) {
    let invite = a.ticket(g, true).unwrap();
    assert_eq!(b.join(&invite).unwrap().id(), *g);
}

fn write(store: &XaeroFlux, g: GroupId, n: usize, tag: u8) {
    for i in 0..n {
        let mut p = [tag; 24];
        p[..8].copy_from_slice(&(i as u64).to_le_bytes());
        store.write_event_to(g, &p, TYPE).unwrap();
    }
}

/// (author, length, root) of every log of `g`, sorted; and the event count.
fn state(store: &XaeroFlux, g: &GroupId) -> (Vec<(AuthorId, u64, [u8; 32])>, u64) {
    (log_roots(store, g), count(store))
}

fn count(store: &XaeroFlux) -> u64 {
    store.read().unwrap().event_count().unwrap()
}

/// Polls until every node holds `total` events and all agree on the logs of `g`.
fn converge(nodes: &[&XaeroFlux], g: &GroupId, total: u64, what: &str) {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let states: Vec<_> = nodes.iter().map(|n| state(n, g)).collect();
        if states.iter().all(|s| s.1 == total && *s == states[0]) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: no convergence to {total} events: {:?}",
            states
                .iter()
                .map(|(l, c)| (c, l.iter().map(|x| x.1).collect::<Vec<_>>()))
                .collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn verify_clean(store: &XaeroFlux, events: u64) {
    let r = store.verify(|_, _| {}).unwrap();
    assert_eq!(r.events, events);
}

#[test]
fn two_nodes_converge_on_one_group() {
    const N: usize = 10_000;
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = open(da.path(), 1);
    let b = open(db.path(), 2);
    // A fresh store knows only its own default group.
    let g = a.default_group();
    assert_ne!(b.default_group(), g);
    assert!(!b.groups().contains(&g));
    join(&a, &b, &g);
    assert!(b.groups().contains(&g));
    // Both write while the sessions are up (live push and anti-entropy interleave).
    std::thread::scope(|s| {
        s.spawn(|| write(&a, g, N, 0xA));
        s.spawn(|| write(&b, g, N, 0xB));
    });
    a.flush().unwrap();
    b.flush().unwrap();
    converge(&[&a, &b], &g, 2 * N as u64, "two writers");
    let (logs, _) = state(&a, &g);
    assert_eq!(logs.len(), 2);
    assert!(logs.iter().all(|l| l.1 == N as u64));
    // Both see each other as connected peers with verified traffic.
    let pb = b.peers().unwrap();
    assert_eq!(pb.len(), 1);
    assert_eq!(pb[0].endpoint, a.node_addr().unwrap().endpoint);
    assert_eq!(pb[0].identity, Some(a.identity().id()));
    assert!(pb[0].known && pb[0].groups.contains(&g));
    assert!(pb[0].events_received > 0);
    verify_clean(&a, 2 * N as u64);
    verify_clean(&b, 2 * N as u64);
    a.close().unwrap();
    b.close().unwrap();
}

#[test]
fn reopened_node_redials_remembered_peer_and_catches_up() {
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let a = open(dirs[0].path(), 1);
    let b = open(dirs[1].path(), 2);
    let c = open(dirs[2].path(), 3);
    let g = a.default_group();
    join(&a, &b, &g);
    join(&a, &c, &g);
    write(&c, g, 100, 0xC);
    c.flush().unwrap();
    converge(&[&a, &b, &c], &g, 100, "before c goes offline");
    let c_endpoint = c.node_addr().unwrap().endpoint;
    c.close().unwrap();

    // C is offline while A and B write.
    write(&a, g, 2000, 0xA);
    write(&b, g, 2000, 0xB);
    converge(&[&a, &b], &g, 4100, "a and b while c is offline");

    // Reopened in the same directory: same endpoint id, A remembered; no connect call.
    let c = open(dirs[2].path(), 3);
    assert_eq!(c.node_addr().unwrap().endpoint, c_endpoint);
    let a_endpoint = a.node_addr().unwrap().endpoint;
    assert!(
        c.peers()
            .unwrap()
            .iter()
            .any(|p| p.endpoint == a_endpoint && p.known && p.groups.contains(&g))
    );
    converge(&[&a, &b, &c], &g, 4100, "c after reopening");
    // And it takes part live again.
    write(&c, g, 10, 0xC);
    write(&b, g, 10, 0xB);
    converge(&[&a, &b, &c], &g, 4120, "live after reopening");
    verify_clean(&c, 4120);
    for n in [a, b, c] {
        n.close().unwrap();
    }
}

#[test]
fn receiver_restarted_mid_catch_up_resumes_exactly() {
    // B is stopped at its first verified batch. On a quiet machine a small catch-up can
    // be complete by then, which interrupts nothing: then the run is repeated with a
    // longer log, so the test always restarts B mid-catch-up (or fails).
    for n in [40_000usize, 160_000, 400_000] {
        if let Some((da, db, a, g)) = stop_receiver_mid_catch_up(n) {
            resume_catch_up(da, db, a, g, n);
            return;
        }
    }
    panic!("B could not be stopped mid-catch-up at any log length");
}

/// Writes `n` events on A, lets B join and closes B at its first verified batch; `None`
/// when B already held all `n` by then.
fn stop_receiver_mid_catch_up(
    n: usize,
) -> Option<(tempfile::TempDir, tempfile::TempDir, XaeroFlux, GroupId)> {
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = open(da.path(), 1);
    let g = a.default_group();
    write(&a, g, n, 0xA);
    a.flush().unwrap();

    let b = open(db.path(), 2);
    let mut sys = b.system_events();
    join(&a, &b, &g);
    // Stop B as soon as the first verified batch arrived: the catch-up is under way.
    let deadline = Instant::now() + DEADLINE;
    loop {
        match sys.next_timeout(Duration::from_millis(100)) {
            Some(SystemEvent::SyncProgress { .. }) => break,
            _ => assert!(Instant::now() < deadline, "no sync progress"),
        }
    }
    drop(sys);
    b.close().unwrap();

    // What B holds at the restart, read offline (the network would resume at once).
    let offline = XaeroFlux::builder(db.path())
        .identity(XaeroKeypair::generate_from_seed(&[2; 32]))
        .offline()
        .open()
        .unwrap();
    let partial = count(&offline);
    eprintln!("restarted after {partial} of {n} events");
    assert!(partial > 0, "B stored nothing of its first verified batch");
    verify_clean(&offline, partial);
    offline.close().unwrap();
    if partial == n as u64 {
        a.close().unwrap();
        return None;
    }
    Some((da, db, a, g))
}

/// Reopens B (stopped mid-catch-up) and checks the catch-up resumes exactly.
fn resume_catch_up(
    _da: tempfile::TempDir,
    db: tempfile::TempDir,
    a: XaeroFlux,
    g: GroupId,
    n: usize,
) {
    let b = open(db.path(), 2);
    // The remembered peer is redialled; the catch-up resumes where it stopped.
    converge(&[&a, &b], &g, n as u64, "resumed catch-up");
    let (logs, events) = state(&b, &g);
    assert_eq!(events, n as u64, "duplicates or losses");
    assert_eq!(logs.len(), 1);
    assert_eq!((logs[0].0, logs[0].1), (a.author(), n as u64));
    verify_clean(&b, n as u64);
    a.close().unwrap();
    b.close().unwrap();
}
