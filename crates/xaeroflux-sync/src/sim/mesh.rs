//! Large groups: 20, 50 and 100 peers in a random partial mesh with churn, default
//! session configuration, relaying through the committed feed as a node does.
//!
//! Measured (counts, not timings): bytes each peer receives per event it lacked,
//! against the event's payload, and the simulated time from the last write until
//! every peer holds every event, next to the mesh's diameter. The protocol must
//! converge; the figures are printed for the performance notes.

use std::collections::{BTreeSet, HashMap};

use super::*;

/// Payload of every event.
const PAYLOAD: usize = 1024;
/// Events per commit.
const PER_COMMIT: usize = 16;
/// Simulated milliseconds per step.
const STEP: u64 = 5;
/// Links keep dropping this long after the last write.
const CHURN_TAIL: u64 = 0;

/// The default configuration, as a node runs it.
fn node_cfg(kp: Arc<XaeroKeypair>) -> SessionConfig {
    SessionConfig::new(group(), kp)
}

/// What one mesh run measured.
#[derive(Debug)]
pub(super) struct MeshRun {
    pub(super) peers: usize,
    pub(super) links: usize,
    pub(super) diameter: usize,
    pub(super) events: u64,
    /// Bytes received by all peers / payload bytes of the events they lacked.
    pub(super) ratio: f64,
    /// The same for the peer that received the most.
    pub(super) worst_peer: f64,
    /// Events frames sent / events that had to move.
    pub(super) copies: f64,
    /// From the last write until converged (simulated ms).
    pub(super) converge_ms: u64,
    pub(super) drops: u64,
}

/// A connected random mesh: a ring (connected, diameter up to n/2) plus `extra`
/// random links per peer, which shrink the diameter to about log n.
fn mesh(rng: &mut Rng, n: usize, extra: usize) -> BTreeSet<(usize, usize)> {
    let mut links = BTreeSet::new();
    let key = |a: usize, b: usize| (a.min(b), a.max(b));
    for a in 0..n {
        links.insert(key(a, (a + 1) % n));
        for _ in 0..extra {
            let b = rng.below(n as u64) as usize;
            if b != a {
                links.insert(key(a, b));
            }
        }
    }
    links
}

/// The longest shortest path (breadth first from every peer).
fn diameter(n: usize, links: &BTreeSet<(usize, usize)>) -> usize {
    let mut adj = vec![Vec::new(); n];
    for &(a, b) in links {
        adj[a].push(b);
        adj[b].push(a);
    }
    let mut worst = 0;
    for s in 0..n {
        let mut dist = vec![usize::MAX; n];
        dist[s] = 0;
        let mut q = VecDeque::from([s]);
        while let Some(u) = q.pop_front() {
            for &v in &adj[u] {
                if dist[v] == usize::MAX {
                    dist[v] = dist[u] + 1;
                    q.push_back(v);
                }
            }
        }
        worst = worst.max(dist.into_iter().max().unwrap_or(0));
    }
    worst
}

/// `writers` peers commit `commits` times each while links drop and come back.
pub(super) fn run_mesh(seed: u64, n: usize, writers: usize, commits: usize) -> MeshRun {
    let mut net = Net::new(seed, n);
    net.session_cfg = node_cfg;
    net.relay = true;
    let links = mesh(&mut net.rng, n, 2);
    let diameter = diameter(n, &links);
    let mut now = 1_000_000;
    for &(a, b) in &links {
        net.connect(a, b, now);
    }
    // Let every handshake and the first checkpoint exchange finish.
    for _ in 0..200 {
        net.deliver(now);
        now += STEP;
    }
    let before = net.received.clone();
    let mut due: Vec<(u64, usize)> = Vec::new();
    for w in 0..writers {
        let p = (w * n) / writers;
        for c in 0..commits {
            due.push((now + 200 * c as u64 + net.rng.below(150), p));
        }
    }
    due.sort_unstable();
    let last_write = due.last().map_or(now, |d| d.0);
    let mut down: Vec<(u64, usize, usize)> = Vec::new();
    let mut written = vec![0u64; n];
    let mut events = 0u64;
    let mut next = 0;
    let deadline = last_write + 600_000;
    loop {
        while next < due.len() && due[next].0 <= now {
            let p = due[next].1;
            let (ev, cp) = net.peers[p].write_sized(group().id(), PER_COMMIT, PAYLOAD);
            net.committed(p, &ev, &cp, now);
            written[p] += ev.len() as u64;
            events += ev.len() as u64;
            next += 1;
        }
        // Churn while writes go on: a link drops now and then and comes back after
        // 0.5-2 s (a fresh session that catches up).
        if now < last_write + CHURN_TAIL && net.rng.chance(0.02) {
            let alive: Vec<usize> = (0..net.conns.len())
                .filter(|&ci| net.conns[ci].alive)
                .collect();
            if !alive.is_empty() {
                let ci = alive[net.rng.below(alive.len() as u64) as usize];
                let [a, b] = net.conns[ci].ends;
                net.drop_conn(ci);
                down.push((now + 500 + net.rng.below(1500), a, b));
            }
        }
        let mut i = 0;
        while i < down.len() {
            if down[i].0 <= now {
                let (_, a, b) = down.swap_remove(i);
                net.connect(a, b, now);
            } else {
                i += 1;
            }
        }
        net.deliver(now);
        net.write_back(now);
        if now % 100 == 0 {
            net.tick(now);
        }
        now += STEP;
        if next == due.len() && down.is_empty() && net.converged() && net.quiet() {
            break;
        }
        assert!(now < deadline, "seed {seed}, {n} peers: no convergence");
    }
    let g = group().id();
    let summary = net.peers[0].store.summary(&g);
    for p in &net.peers {
        assert_eq!(p.store.summary(&g), summary, "seed {seed}");
    }
    assert!(
        net.stats.rejections.is_empty(),
        "seed {seed}: {:?}",
        net.stats.rejections
    );
    assert_eq!(
        net.stats.resent_events, 0,
        "seed {seed}: events sent twice in one session"
    );
    let lacked = |p: usize| (events - written[p]) * PAYLOAD as u64;
    let got = |p: usize| net.received[p] - before[p];
    let total_got: u64 = (0..n).map(got).sum();
    let total_lacked: u64 = (0..n).map(lacked).sum();
    let worst_peer = (0..n)
        .map(|p| got(p) as f64 / lacked(p).max(1) as f64)
        .fold(0.0, f64::max);
    let moved: u64 = (0..n).map(|p| events - written[p]).sum();
    MeshRun {
        peers: n,
        links: links.len(),
        diameter,
        events,
        ratio: total_got as f64 / total_lacked as f64,
        worst_peer,
        copies: net.stats.sent_events as f64 / moved as f64,
        converge_ms: now.saturating_sub(last_write),
        drops: net.stats.drops,
    }
}

/// Which sizes run: `XAERO_MESH=20,50,100` (default 20 and 50; 100 peers take a
/// while in a debug build); `XAERO_MESH_COMMITS` sets the commits per writer (10).
fn sizes() -> Vec<usize> {
    std::env::var("XAERO_MESH")
        .ok()
        .map(|v| v.split(',').filter_map(|x| x.parse().ok()).collect())
        .unwrap_or_else(|| vec![20, 50])
}

#[test]
fn large_meshes_converge_with_churn() {
    let mut rows: HashMap<usize, MeshRun> = HashMap::new();
    for n in sizes() {
        let commits = std::env::var("XAERO_MESH_COMMITS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(10);
        let r = run_mesh(n as u64, n, 8.min(n), commits);
        eprintln!("{r:?}");
        assert!(r.drops > 0, "churn happened");
        rows.insert(n, r);
    }
    eprintln!(
        "| peers | links | diameter | events | bytes received / payload lacked | worst peer | events sent / events moved | converge after last write (sim ms) |"
    );
    let mut ns: Vec<_> = rows.keys().copied().collect();
    ns.sort_unstable();
    for n in ns {
        let r = &rows[&n];
        eprintln!(
            "| {} | {} | {} | {} | {:.2} | {:.2} | {:.2} | {} |",
            r.peers, r.links, r.diameter, r.events, r.ratio, r.worst_peer, r.copies, r.converge_ms
        );
    }
}
