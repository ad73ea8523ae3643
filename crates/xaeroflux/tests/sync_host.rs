//! The engine as a sync host: real stores on temporary directories, wired together
//! in-process by pumping `xaeroflux_sync::Session` pairs (no network).
#![allow(clippy::unwrap_used)]

mod common;
mod raw_lmdb;

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use common::log_roots;

use xaeroflux::{
    AuthorId, Event, Filter, Group, GroupId, Hlc, SignedCheckpoint, SyncNode, SystemEvent,
    XaeroFlux, XaeroKeypair,
};
use xaeroflux_core::{Checkpoint, EventHeader};
use xaeroflux_sync::{
    CommittedFeed, ErrorCode, Frontier, HostError, Input, LogView, MemLogs, Output, PeerEvent,
    Role, Session, SessionConfig, SyncHost, TransportParams, VerifiedBatch,
};

const TYPE: u32 = 1000;

fn author_of(kp: &XaeroKeypair) -> AuthorId {
    AuthorId(*kp.id().as_bytes())
}

/// One engine taking part in the sync.
struct Node {
    dir: PathBuf,
    seed: u8,
    store: Option<XaeroFlux>,
    host: Arc<SyncNode>,
    feed: Box<dyn CommittedFeed>,
}

impl Node {
    fn open(dir: &Path, seed: u8) -> Node {
        let store = XaeroFlux::builder(dir)
            .identity(XaeroKeypair::generate_from_seed(&[seed; 32]))
            .open()
            .unwrap();
        let host = store.sync_host();
        let feed = host.committed_feed().unwrap();
        Node {
            dir: dir.to_path_buf(),
            seed,
            store: Some(store),
            host,
            feed,
        }
    }

    fn store(&self) -> &XaeroFlux {
        self.store.as_ref().unwrap()
    }

    /// Closes the store (dropping everything that refers to it) and opens it again.
    fn reopen(mut self) -> Node {
        let (dir, seed) = (self.dir.clone(), self.seed);
        self.store.take().unwrap().close().unwrap();
        drop(self);
        Node::open(&dir, seed)
    }

    /// (author, length, root) of every log of `g`, sorted.
    fn logs(&self, g: &GroupId) -> Vec<(AuthorId, u64, [u8; 32])> {
        log_roots(self.store(), g)
    }
}

/// A connection between two nodes: one session per side and the bytes in flight.
struct Link {
    ends: [usize; 2],
    sessions: [Session; 2],
    /// Frames waiting for side 0 and side 1.
    queues: [VecDeque<Vec<u8>>; 2],
    closed: bool,
    /// The code each side closed with, if it closed.
    codes: [Option<ErrorCode>; 2],
}

struct Net {
    nodes: Vec<Node>,
    links: Vec<Link>,
    group: Group,
    now: u64,
}

fn endpoint(i: usize) -> [u8; 32] {
    [i as u8 + 1; 32]
}

impl Net {
    fn connect(&mut self, a: usize, b: usize) {
        let mk = |n: &Node| Session::new(SessionConfig::new(self.group.clone(), n.host.keypair()));
        let mut link = Link {
            ends: [a, b],
            sessions: [mk(&self.nodes[a]), mk(&self.nodes[b])],
            queues: [VecDeque::new(), VecDeque::new()],
            closed: false,
            codes: [None; 2],
        };
        let km = [self.links.len() as u8 + 7; 32];
        let params = |me: usize, peer: usize| TransportParams {
            local_endpoint: endpoint(me),
            remote_endpoint: endpoint(peer),
            keying_material: km,
        };
        for (side, role) in [(1usize, Role::Acceptor), (0, Role::Initiator)] {
            let (me, peer) = (link.ends[side], link.ends[1 - side]);
            let input = Input::Connected {
                role,
                params: params(me, peer),
            };
            self.step(&mut link, side, input);
        }
        self.links.push(link);
    }

    /// Feeds one input to one side of a link and carries out the outputs.
    fn step(&self, link: &mut Link, side: usize, input: Input) {
        let node = &self.nodes[link.ends[side]];
        let now = self.now;
        let mut outs = Vec::new();
        let session = &mut link.sessions[side];
        let read = node
            .host
            .read_logs(&mut |v: &dyn LogView| outs = session.handle(input.clone(), now, v));
        // As the transport does: a failed read view ends the session instead.
        if read.is_err() {
            outs = session.end_on_store_failure();
        }
        for o in outs {
            match o {
                Output::Send(b) => link.queues[1 - side].push_back(b),
                Output::Close { code, .. } => {
                    link.closed = true;
                    link.codes[side] = Some(code);
                }
                Output::StoreVerified(batch) => node.host.store_verified(batch).unwrap(),
                Output::Event(event) => node.host.peer_event(PeerEvent::Session {
                    endpoint: endpoint(link.ends[1 - side]),
                    group: self.group.id(),
                    event,
                }),
            }
        }
    }

    /// One round: deliver frames, relay committed batches, tick. Returns whether
    /// anything was in flight.
    fn round(&mut self) -> bool {
        let mut busy = false;
        let mut links = std::mem::take(&mut self.links);
        for link in links.iter_mut().filter(|l| !l.closed) {
            for side in 0..2 {
                while let Some(b) = link.queues[side].pop_front() {
                    busy = true;
                    self.step(link, side, Input::Frame(b));
                }
            }
        }
        for n in 0..self.nodes.len() {
            while let Some(batch) = self.nodes[n].feed.next_batch(Duration::ZERO).unwrap() {
                assert_eq!(batch.checkpoint.checkpoint.group, self.group.id());
                for link in links.iter_mut().filter(|l| !l.closed) {
                    for side in 0..2 {
                        if link.ends[side] == n {
                            self.step(link, side, batch.input());
                        }
                    }
                }
            }
        }
        self.now += 100;
        for link in links.iter_mut().filter(|l| !l.closed) {
            for side in 0..2 {
                self.step(link, side, Input::Tick);
            }
            busy |= link.sessions.iter().any(|s| s.is_fetching());
        }
        self.links = links;
        busy
    }

    /// Pumps until every node holds `total` events of the group with identical logs.
    fn converge(&mut self, total: u64, max_rounds: usize) {
        for _ in 0..max_rounds {
            if !self.round() {
                for n in &self.nodes {
                    n.store().flush().unwrap();
                }
                if self.converged(total) {
                    return;
                }
            }
        }
        for n in &self.nodes {
            n.store().flush().unwrap();
        }
        assert!(
            self.converged(total),
            "no convergence: {:?}",
            self.summary()
        );
    }

    fn converged(&self, total: u64) -> bool {
        let g = self.group.id();
        let first = self.nodes[0].logs(&g);
        first.iter().map(|l| l.1).sum::<u64>() == total
            && self.nodes.iter().all(|n| n.logs(&g) == first)
    }

    fn summary(&self) -> Vec<Vec<(u64,)>> {
        let g = self.group.id();
        self.nodes
            .iter()
            .map(|n| n.logs(&g).iter().map(|l| (l.1,)).collect())
            .collect()
    }
}

/// Opens `seeds.len()` nodes sharing one group created by the first.
fn net(dirs: &[&Path], seeds: &[u8]) -> Net {
    let nodes: Vec<Node> = dirs
        .iter()
        .zip(seeds)
        .map(|(d, s)| Node::open(d, *s))
        .collect();
    let group = nodes[0].store().create_group().unwrap();
    for n in &nodes[1..] {
        n.store().join_group(group.secret().clone()).unwrap();
    }
    Net {
        nodes,
        links: Vec::new(),
        group,
        now: 1_000,
    }
}

fn write(store: &XaeroFlux, g: GroupId, n: usize, tag: u8) -> Vec<xaeroflux::EventId> {
    let ids = (0..n)
        .map(|i| {
            let mut p = vec![tag; 24];
            p[..8].copy_from_slice(&(i as u64).to_le_bytes());
            store.write_event_to(g, &p, TYPE).unwrap()
        })
        .collect();
    store.flush().unwrap();
    ids
}

#[test]
fn three_nodes_converge_with_relay_and_live_push() {
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let paths: Vec<&Path> = dirs.iter().map(|d| d.path()).collect();
    let mut net = net(&paths, &[1, 2, 3]);
    let g = net.group.id();
    let mut sub_b = net.nodes[1].store().subscribe(Filter::all().group(g));
    let mut sys_b = net.nodes[1].store().system_events();
    let a_ids = write(net.nodes[0].store(), g, 1000, 0xa);
    write(net.nodes[1].store(), g, 500, 0xb);
    write(net.nodes[2].store(), g, 200, 0xc);
    // A - B - C: A and C only meet through B, which relays what it stores.
    net.connect(0, 1);
    net.connect(1, 2);
    net.converge(1700, 2000);
    for n in &net.nodes {
        let r = n.store().verify(|_, _| {}).unwrap();
        assert_eq!(r.events, 1700);
        assert_eq!(r.logs, 3);
        // Every stored checkpoint verified and matched its log (local and received).
        assert!(r.checkpoints >= 3);
        assert_eq!(
            n.store().get(&a_ids[999]).unwrap().unwrap().id(),
            a_ids[999]
        );
    }
    // Remote events appear in B's subscription exactly once, in log order per author.
    let mut from_a = Vec::new();
    let mut seen = 0;
    while let Some(e) = sub_b.next_timeout(Duration::from_millis(50)).unwrap() {
        seen += 1;
        if e.event.header.author == net.nodes[0].store().author() {
            from_a.push(e.id);
        }
    }
    assert_eq!(seen, 1700);
    assert_eq!(from_a, a_ids);
    // Queries see remote events like local ones.
    let snap = net.nodes[2].store().read().unwrap();
    let by_type: Vec<_> = snap
        .by_type(&g, TYPE, Hlc::default())
        .unwrap()
        .map(|e| e.unwrap().event.header.hlc)
        .collect();
    assert_eq!(by_type.len(), 1700);
    assert!(by_type.is_sorted(), "by_type out of HLC order");
    // Remote logs interleave their index keys with the local ones: the time index
    // still lists every event once, in (hlc, author, seq) order.
    let by_time: Vec<_> = snap
        .by_time(&g, Hlc::default(), Hlc::from_u64(u64::MAX))
        .unwrap()
        .map(|e| {
            let h = e.unwrap().event.header;
            (h.hlc, h.author, h.seq)
        })
        .collect();
    assert_eq!(by_time.len(), 1700);
    assert!(
        by_time.windows(2).all(|w| w[0] < w[1]),
        "by_time out of order"
    );
    drop(snap);
    // Sync progress reached B's system events.
    let mut progress = 0;
    while let Some(e) = sys_b.next_timeout(Duration::from_millis(10)) {
        if let SystemEvent::SyncProgress { events, .. } = e {
            progress += events;
        }
    }
    assert!(progress >= 1200, "progress {progress}");
    // Live: new writes on C are pushed through B to A.
    let late = write(net.nodes[2].store(), g, 30, 0xd);
    net.converge(1730, 500);
    assert!(net.nodes[0].store().get(&late[29]).unwrap().is_some());
    // The engine's clock moved past every received timestamp.
    let max_remote = net.nodes[0]
        .store()
        .get(&late[29])
        .unwrap()
        .unwrap()
        .header
        .hlc;
    let next = net.nodes[0]
        .store()
        .write_event_to(g, b"after", TYPE)
        .unwrap();
    net.nodes[0].store().flush().unwrap();
    let after = net.nodes[0].store().get(&next).unwrap().unwrap().header.hlc;
    assert!(after > max_remote);
}

#[test]
fn restart_mid_sync_converges_without_duplicates() {
    let dirs: Vec<_> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    let paths: Vec<&Path> = dirs.iter().map(|d| d.path()).collect();
    let mut net = net(&paths, &[4, 5]);
    let g = net.group.id();
    write(net.nodes[0].store(), g, 5000, 0xa);
    write(net.nodes[1].store(), g, 100, 0xb);
    net.connect(0, 1);
    // A few rounds: B holds part of A's log.
    let a = net.nodes[0].store().author();
    let mut held = 0;
    for _ in 0..50 {
        net.round();
        net.nodes[1].store().flush().unwrap();
        held = net.nodes[1]
            .logs(&g)
            .iter()
            .find(|l| l.0 == a)
            .map_or(0, |l| l.1);
        if held > 0 {
            break;
        }
    }
    assert!(held > 0 && held < 5000, "held {held}");
    // B restarts: the connection drops, B reopens and reconnects.
    net.links.clear();
    let b = net.nodes.remove(1);
    net.nodes.insert(1, b.reopen());
    net.connect(0, 1);
    net.converge(5100, 2000);
    for n in &net.nodes {
        let r = n.store().verify(|_, _| {}).unwrap();
        assert_eq!(r.events, 5100);
        assert_eq!(n.store().read().unwrap().event_count().unwrap(), 5100);
    }
}

/// Events of a log written by a bare key (not an engine), and the root after each.
fn bare_log(
    kp: &XaeroKeypair,
    g: GroupId,
    n: u64,
    tag: u8,
) -> (Vec<Vec<u8>>, Vec<SignedCheckpoint>) {
    let author = author_of(kp);
    let mut mem = MemLogs::new();
    let mut events = Vec::new();
    let mut cps = Vec::new();
    for seq in 0..n {
        let ev = Event {
            header: EventHeader {
                event_type: TYPE,
                group: g,
                author,
                seq,
                hlc: Hlc::new(1_000 + seq, 0),
            },
            payload: vec![tag; 16],
        };
        let root = mem.append_local(&ev);
        events.push(ev.encode());
        cps.push(
            Checkpoint {
                group: g,
                author,
                length: seq + 1,
                root,
                hlc: Hlc::new(1_000 + seq, 0),
            }
            .sign(kp),
        );
    }
    (events, cps)
}

fn batch(
    kp: &XaeroKeypair,
    g: GroupId,
    events: &[Vec<u8>],
    first: u64,
    cp: &SignedCheckpoint,
) -> VerifiedBatch {
    VerifiedBatch {
        group: g,
        author: author_of(kp),
        author_key: kp.public().clone(),
        first_seq: first,
        ids: events
            .iter()
            .map(|e| xaeroflux::EventRef::decode(e).unwrap().id())
            .collect(),
        events: events.iter().collect(),
        checkpoint: Box::new(cp.clone()),
        prefix_root: None,
    }
}

/// The batch of events `first..end` of `all`, verified on the prefix `..first`.
fn batch_on(
    kp: &XaeroKeypair,
    g: GroupId,
    all: &[Vec<u8>],
    first: usize,
    end: usize,
    cp: &SignedCheckpoint,
) -> VerifiedBatch {
    let mut prefix = Frontier::new();
    for e in &all[..first] {
        prefix.push(&xaeroflux::EventRef::decode(e).unwrap().id());
    }
    VerifiedBatch {
        prefix_root: prefix.root(),
        ..batch(kp, g, &all[first..end], first as u64, cp)
    }
}

fn log_len(store: &XaeroFlux, g: &GroupId, a: &AuthorId) -> u64 {
    store
        .read()
        .unwrap()
        .log_root(g, a)
        .unwrap()
        .map_or(0, |l| l.0)
}

#[test]
fn batches_are_idempotent_gaps_dropped_and_views_match_memlogs() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::open(dir.path(), 6);
    let store = node.store();
    let group = store.create_group().unwrap();
    let g = group.id();
    let x = XaeroKeypair::generate_from_seed(&[9; 32]);
    let xa = author_of(&x);
    let (events, cps) = bare_log(&x, g, 300, 1);
    let host = &node.host;
    let mut mem = MemLogs::new();
    mem.add_key(x.public().clone());

    // A gap: nothing stored.
    host.store_verified(batch_on(&x, g, &events, 10, 100, &cps[99]))
        .unwrap();
    store.flush().unwrap();
    assert_eq!(log_len(store, &g, &xa), 0);

    // A batch proven against a longer checkpoint: stored, but the checkpoint is not
    // advertised until the log reaches it.
    host.store_verified(batch(&x, g, &events[..50], 0, &cps[199]))
        .unwrap();
    mem.apply(g, xa, 0, &events[..50].iter().collect(), &cps[199])
        .unwrap();
    store.flush().unwrap();
    assert_eq!(log_len(store, &g, &xa), 50);
    host.read_logs(&mut |v| assert_eq!(v.latest_checkpoint(&g, &xa), None))
        .unwrap();

    // The same range twice, and an overlapping one: stored once.
    for _ in 0..2 {
        host.store_verified(batch(&x, g, &events[..200], 0, &cps[199]))
            .unwrap();
    }
    host.store_verified(batch_on(&x, g, &events, 150, 300, &cps[299]))
        .unwrap();
    mem.apply(g, xa, 0, &events[..200].iter().collect(), &cps[199])
        .unwrap();
    mem.apply(g, xa, 150, &events[150..300].iter().collect(), &cps[299])
        .unwrap();
    store.flush().unwrap();
    assert_eq!(log_len(store, &g, &xa), 300);
    assert_eq!(store.read().unwrap().event_count().unwrap(), 300);
    let r = store.verify(|_, _| {}).unwrap();
    assert_eq!((r.events, r.checkpoints), (300, 2));

    // Local writes next to the remote log, in the same store.
    write(store, g, 700, 2);
    let me = store.author();
    let snap = store.read().unwrap();
    let mine: Vec<Event> = snap
        .log(&g, &me, 0)
        .unwrap()
        .map(|e| e.unwrap().event.to_owned())
        .collect();
    let my_cp = snap.latest_checkpoint(&g, &me).unwrap().unwrap();
    drop(snap);
    for e in &mine {
        mem.append_local(e);
    }
    let mut my_cps = Vec::new();
    host.read_logs(&mut |v| {
        my_cps.extend((1..=700).filter_map(|len| v.checkpoint_at(&g, &me, len)));
    })
    .unwrap();
    assert_eq!(my_cps.last(), Some(&my_cp));
    for c in my_cps {
        mem.add_checkpoint(c);
    }
    mem.add_key(store.identity().clone());

    // The engine's view answers like MemLogs on the same events.
    host.read_logs(&mut |v| {
        assert_eq!(v.authors(&g), mem.authors(&g));
        for a in [xa, me] {
            let f = v.frontier(&g, &a);
            assert_eq!(f, mem.frontier(&g, &a));
            assert_eq!(v.latest_checkpoint(&g, &a), mem.latest_checkpoint(&g, &a));
            assert_eq!(
                v.author_key(&a).map(|k| k.id()),
                mem.author_key(&a).map(|k| k.id())
            );
            assert!(!v.is_forked(&g, &a));
            for len in [0, 1, 2, 3, 50, 199, 200, f.len(), f.len() + 1] {
                assert_eq!(
                    v.root_at(&g, &a, len),
                    mem.root_at(&g, &a, len),
                    "len {len}"
                );
                assert_eq!(
                    v.checkpoint_at(&g, &a, len),
                    mem.checkpoint_at(&g, &a, len),
                    "len {len}"
                );
            }
            for pos in 0..2 * f.len() + 2 {
                assert_eq!(
                    v.mmr_node(&g, &a, pos),
                    mem.mmr_node(&g, &a, pos),
                    "pos {pos}"
                );
            }
            for (from, to, max) in [
                (0, 10, 1 << 20),
                (5, 700, 1000),
                (290, 400, 1),
                (800, 900, 1 << 20),
            ] {
                assert_eq!(
                    v.events(&g, &a, from, to, max),
                    mem.events(&g, &a, from, to, max)
                );
            }
        }
        let unknown = AuthorId([7; 32]);
        assert_eq!(v.frontier(&g, &unknown), mem.frontier(&g, &unknown));
        assert!(v.latest_checkpoint(&g, &unknown).is_none());
    })
    .unwrap();
}

#[test]
fn forks_are_recorded_and_forked_logs_never_extended() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::open(dir.path(), 7);
    let store = node.store();
    let g = store.create_group().unwrap().id();
    let x = XaeroKeypair::generate_from_seed(&[10; 32]);
    let xa = author_of(&x);
    let (v1, cps1) = bare_log(&x, g, 20, 1);
    let (v2, cps2) = bare_log(&x, g, 20, 2);
    assert_ne!(cps1[9].checkpoint.root, cps2[9].checkpoint.root);
    let mut sys = store.system_events();
    let host = &node.host;

    host.store_verified(batch(&x, g, &v1[..10], 0, &cps1[9]))
        .unwrap();
    store.flush().unwrap();
    assert_eq!(log_len(store, &g, &xa), 10);
    host.read_logs(&mut |v| assert!(!v.is_forked(&g, &xa)))
        .unwrap();

    // The other history, signed by the same author for the same length.
    host.store_verified(batch(&x, g, &v2[..10], 0, &cps2[9]))
        .unwrap();
    store.flush().unwrap();
    host.read_logs(&mut |v| assert!(v.is_forked(&g, &xa)))
        .unwrap();
    let mut forks = 0;
    while let Some(e) = sys.next_timeout(Duration::from_millis(20)) {
        if e == (SystemEvent::ForkDetected {
            group: g,
            author: xa,
            length: 10,
        }) {
            forks += 1;
        }
    }
    assert_eq!(forks, 1);
    assert_eq!(
        store.forks(&g, &xa).unwrap(),
        vec![(cps1[9].clone(), cps2[9].clone())]
    );
    // The stored history is kept and never extended.
    host.store_verified(batch_on(&x, g, &v1, 10, 20, &cps1[19]))
        .unwrap();
    store.flush().unwrap();
    assert_eq!(log_len(store, &g, &xa), 10);
    assert_eq!(store.read().unwrap().event_count().unwrap(), 10);

    // Evidence handed in by a session (record_fork) on another node: same outcome, and
    // recording it again raises nothing new.
    let dir2 = tempfile::tempdir().unwrap();
    let other = Node::open(dir2.path(), 8);
    let s2 = other.store();
    s2.join_group(store.group(&g).unwrap().unwrap().secret().clone())
        .unwrap();
    other
        .host
        .store_verified(batch(&x, g, &v1[..10], 0, &cps1[9]))
        .unwrap();
    s2.flush().unwrap();
    let mut sys2 = s2.system_events();
    other.host.record_fork(&cps1[9], &cps2[9]).unwrap();
    other.host.peer_event(PeerEvent::Session {
        endpoint: [1; 32],
        group: g,
        event: xaeroflux_sync::SystemEvent::ForkDetected {
            author: xa,
            ours: Box::new(cps1[9].clone()),
            theirs: Box::new(cps2[9].clone()),
        },
    });
    other
        .host
        .read_logs(&mut |v| assert!(v.is_forked(&g, &xa)))
        .unwrap();
    let mut events = Vec::new();
    while let Some(e) = sys2.next_timeout(Duration::from_millis(20)) {
        events.push(e);
    }
    let n = events
        .iter()
        .filter(|e| matches!(e, SystemEvent::ForkDetected { .. }))
        .count();
    assert_eq!(n, 1, "{events:?}");
    // Evidence that proves nothing is refused.
    assert!(other.host.record_fork(&cps1[9], &cps1[9]).is_err());
    assert!(other.host.record_fork(&cps1[9], &cps2[10]).is_err());
    other
        .host
        .store_verified(batch_on(&x, g, &v1, 10, 20, &cps1[19]))
        .unwrap();
    s2.flush().unwrap();
    assert_eq!(log_len(s2, &g, &xa), 10);
}

#[test]
fn peer_events_become_system_events_and_bad_batches_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::open(dir.path(), 11);
    let store = node.store();
    let g = store.create_group().unwrap().id();
    let mut sys = store.system_events();
    let peer = XaeroKeypair::generate_from_seed(&[12; 32]);
    let author = author_of(&peer);
    let stored = |node: &Node| {
        let mut k = None;
        node.host
            .read_logs(&mut |v| k = v.author_key(&author))
            .unwrap();
        k
    };
    assert_eq!(stored(&node), None);
    node.host.peer_event(PeerEvent::Connected {
        peer: peer.id(),
        key: peer.public().clone(),
        endpoint: [3; 32],
        group: g,
    });
    // The authenticated peer's key is kept (later Hellos may name it by id).
    assert_eq!(stored(&node).as_ref(), Some(peer.public()));
    node.host.peer_event(PeerEvent::Session {
        endpoint: [3; 32],
        group: g,
        event: xaeroflux_sync::SystemEvent::SyncProgress {
            events: 5,
            bytes: 500,
        },
    });
    node.host.peer_event(PeerEvent::Disconnected {
        peer: Some(peer.id()),
        endpoint: [3; 32],
        group: g,
        reason: "bye".into(),
    });
    let got: Vec<_> = std::iter::from_fn(|| sys.next_timeout(Duration::from_millis(20)))
        .filter(|e| !matches!(e, SystemEvent::StoreOpened { .. }))
        .collect();
    assert_eq!(
        got,
        vec![
            SystemEvent::PeerConnected {
                peer: peer.id(),
                endpoint: [3; 32],
                group: g
            },
            SystemEvent::SyncProgress {
                endpoint: [3; 32],
                group: g,
                events: 5,
                bytes: 500
            },
            SystemEvent::PeerDisconnected {
                peer: Some(peer.id()),
                endpoint: [3; 32],
                group: Some(g),
                reason: "bye".into()
            },
        ]
    );
    // The host hands out the node's identity and groups with their secrets.
    assert_eq!(node.host.keypair().id(), store.identity().id());
    let groups: Vec<GroupId> = node.host.groups().iter().map(|g| g.id()).collect();
    assert!(groups.contains(&g) && groups.contains(&store.default_group()));
    // Batches that do not hold together are refused before reaching the writer.
    let (events, cps) = bare_log(&peer, g, 5, 1);
    let mut wrong_key = batch(&peer, g, &events, 0, &cps[4]);
    wrong_key.author_key = store.identity().clone();
    assert!(node.host.store_verified(wrong_key).is_err());
    let mut missing_id = batch(&peer, g, &events, 0, &cps[4]);
    missing_id.ids.pop();
    assert!(node.host.store_verified(missing_id).is_err());
    assert!(
        node.host
            .store_verified(batch(&peer, g, &events, 0, &cps[3]))
            .is_err()
    );
    let unknown = GroupId([5; 32]);
    assert!(
        node.host
            .store_verified(batch(&peer, unknown, &events, 0, &cps[4]))
            .is_err()
    );
    let mut forged = cps[4].clone();
    forged.checkpoint.root = [0; 32];
    assert!(
        node.host
            .store_verified(batch(&peer, g, &events, 0, &forged))
            .is_err()
    );
    node.host
        .store_verified(batch(&peer, g, &events, 0, &cps[4]))
        .unwrap();
    store.flush().unwrap();
    assert_eq!(log_len(store, &g, &author_of(&peer)), 5);
    // Closed: the host answers Closed.
    let host = node.host.clone();
    drop(node);
    assert_eq!(
        host.store_verified(batch(&peer, g, &events, 0, &cps[4])),
        Err(xaeroflux_sync::HostError::Closed)
    );
    assert!(host.committed_feed().is_err());
}

#[test]
fn skipped_feed_resumes_after_the_skipped_events() {
    let dir = tempfile::tempdir().unwrap();
    let mut node = Node::open(dir.path(), 31);
    let store = node.store();
    let g = store.create_group().unwrap().id();
    let me = author_of(&XaeroKeypair::generate_from_seed(&[31; 32]));
    write(store, g, 5, 1);
    node.feed.skip().unwrap();
    assert!(node.feed.next_batch(Duration::ZERO).unwrap().is_none());
    write(node.store(), g, 3, 2);
    let batch = node
        .feed
        .next_batch(Duration::from_secs(5))
        .unwrap()
        .unwrap();
    assert_eq!((batch.first_seq, batch.count), (5, 3));
    assert_eq!(batch.checkpoint.checkpoint.author, me);
    assert_eq!(batch.checkpoint.checkpoint.length, 8);
    assert!(node.feed.next_batch(Duration::ZERO).unwrap().is_none());
    // Closed: skipping answers Closed too.
    let mut feed = std::mem::replace(&mut node.feed, node.host.committed_feed().unwrap());
    drop(node);
    assert_eq!(feed.skip(), Err(xaeroflux_sync::HostError::Closed));
}

#[test]
fn a_store_read_failure_ends_the_session_with_its_code() {
    let dirs: Vec<_> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    let paths: Vec<&Path> = dirs.iter().map(|d| d.path()).collect();
    let mut net = net(&paths, &[1, 2]);
    let g = net.group.id();
    write(net.nodes[0].store(), g, 10, 0xa);
    write(net.nodes[1].store(), g, 5, 0xb);
    let a0 = net.nodes[0].store().author();
    // Damage node 0's stored checkpoints (closed store, plain LMDB): every read of
    // one fails to decode, the events stay intact.
    let mut n0 = net.nodes.remove(0);
    n0.store.take().unwrap().close().unwrap();
    drop(n0);
    let damaged = raw_lmdb::with_tables(paths[0], ["checkpoints"], |[cps], txn| {
        let keys: Vec<Vec<u8>> = cps
            .iter(txn)
            .unwrap()
            .map(|r| r.unwrap().0.to_vec())
            .collect();
        for k in &keys {
            cps.put(txn, k, &[0xff; 3]).unwrap();
        }
        keys.len()
    });
    assert!(damaged >= 1);
    net.nodes.insert(0, Node::open(paths[0], 1));
    let mut sys = net.nodes[0].store().system_events();

    // The host returns the store's own error, typed, and raises one system event.
    let read = net.nodes[0].host.read_logs(&mut |v| {
        assert_eq!(
            v.latest_checkpoint(&g, &a0),
            None,
            "a failed read answers nothing"
        );
    });
    let Err(HostError::Store(source)) = read else {
        panic!("expected a store failure, got {read:?}");
    };
    assert!(
        source.downcast_ref::<xaeroflux::Error>().is_some(),
        "{source}"
    );
    let failed = |sys: &mut xaeroflux::SystemSubscription| {
        let mut n = 0;
        while let Some(e) = sys.next_timeout(Duration::from_millis(10)) {
            n += usize::from(matches!(e, SystemEvent::SyncReadFailed { .. }));
        }
        n
    };
    assert_eq!(failed(&mut sys), 1);

    // A session: node 0 fails when it advertises its logs after the handshake.
    net.connect(0, 1);
    for _ in 0..20 {
        net.round();
    }
    let link = &net.links[0];
    assert!(link.closed);
    assert!(link.sessions.iter().all(Session::is_closed));
    assert_eq!(link.codes[0], Some(ErrorCode::StoreFailure));
    // The peer closed on receiving the code (its own close is a normal one).
    assert_eq!(link.codes[1], Some(ErrorCode::Normal));
    assert_eq!(failed(&mut sys), 1, "one failed view, one event");
    // Nothing was extended on either side.
    for n in &net.nodes {
        n.store().flush().unwrap();
    }
    let lens = |n: &Node| n.logs(&g).iter().map(|l| l.1).collect::<Vec<_>>();
    assert_eq!(lens(&net.nodes[0]), vec![10]);
    assert_eq!(lens(&net.nodes[1]), vec![5]);
}

/// Issue 17, item 7: a member's event with a far-future timestamp is stored (it is
/// signed and valid) but moves the local clock neither before nor after a restart.
#[test]
fn a_far_future_remote_timestamp_never_moves_the_clock() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::open(dir.path(), 6);
    let g = node.store().create_group().unwrap().id();
    let x = XaeroKeypair::generate_from_seed(&[9; 32]);
    let xa = author_of(&x);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let far = now + 30 * 24 * 3_600_000;
    let ev = Event {
        header: EventHeader {
            event_type: TYPE,
            group: g,
            author: xa,
            seq: 0,
            hlc: Hlc::new(far, 0),
        },
        payload: vec![7; 16],
    };
    let mut mem = MemLogs::new();
    let root = mem.append_local(&ev);
    let cp = Checkpoint {
        group: g,
        author: xa,
        length: 1,
        root,
        hlc: Hlc::new(far, 0),
    }
    .sign(&x);
    node.host
        .store_verified(batch(&x, g, &[ev.encode()], 0, &cp))
        .unwrap();
    node.store().flush().unwrap();
    assert_eq!(log_len(node.store(), &g, &xa), 1, "the event is kept");
    // Bound: the clock's drift limit (one hour), plus slack for the test's own run.
    let bound = |n: &Node, tag: &[u8]| {
        let id = n.store().write_event_to(g, tag, TYPE).unwrap();
        n.store().flush().unwrap();
        let hlc = n.store().get(&id).unwrap().unwrap().header.hlc;
        assert!(
            hlc.millis() < now + 2 * 3_600_000,
            "local event stamped {} ms ahead",
            hlc.millis() - now
        );
    };
    bound(&node, b"before restart");
    let node = node.reopen();
    bound(&node, b"after restart");
    assert_eq!(log_len(node.store(), &g, &xa), 1);
}

/// Issue 17, item 4: a flood of refusals (from distinct endpoints, so none coalesce)
/// larger than the system queue does not push out a `ForkDetected` raised before it.
#[test]
fn a_refusal_flood_does_not_push_out_a_fork() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::open(dir.path(), 6);
    let g = node.store().create_group().unwrap().id();
    let mut sys = node.store().system_events();
    let x = XaeroKeypair::generate_from_seed(&[9; 32]);
    let (v1, a) = bare_log(&x, g, 2, 1);
    let (v2, b) = bare_log(&x, g, 2, 2);
    // Two histories of one author for one length: a fork.
    node.host
        .store_verified(batch(&x, g, &v1, 0, &a[1]))
        .unwrap();
    node.store().flush().unwrap();
    node.host
        .store_verified(batch(&x, g, &v2, 0, &b[1]))
        .unwrap();
    node.store().flush().unwrap();
    for i in 0..3 * xaeroflux::SYSTEM_QUEUE as u32 {
        let mut endpoint = [0u8; 32];
        endpoint[..4].copy_from_slice(&i.to_le_bytes());
        node.host.peer_event(PeerEvent::Refused {
            endpoint,
            code: ErrorCode::BadMac,
            reason: "not a member".into(),
        });
    }
    let (mut forks, mut refusals) = (0, 0);
    while let Some(e) = sys.next_timeout(Duration::from_millis(10)) {
        forks += usize::from(matches!(e, SystemEvent::ForkDetected { .. }));
        refusals += usize::from(matches!(e, SystemEvent::PeerRejected { .. }));
    }
    assert_eq!(forks, 1);
    assert!(refusals >= 1000, "{refusals}");
}

/// Issue 17, item 9: a batch that starts at the stored length but was verified on
/// another branch's prefix (another session, a peer holding the author's other
/// history) is not appended: the log keeps a root its author signed.
#[test]
fn a_batch_verified_on_another_prefix_is_not_appended() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::open(dir.path(), 6);
    let store = node.store();
    let g = store.create_group().unwrap().id();
    let x = XaeroKeypair::generate_from_seed(&[9; 32]);
    let xa = author_of(&x);
    let (va, ca) = bare_log(&x, g, 10, 1);
    let (vb, cb) = bare_log(&x, g, 10, 2);
    node.host
        .store_verified(batch(&x, g, &va[..5], 0, &ca[4]))
        .unwrap();
    store.flush().unwrap();
    assert_eq!(log_len(store, &g, &xa), 5);
    // B's events 5..10, verified on B's own first five events.
    node.host
        .store_verified(batch_on(&x, g, &vb, 5, 10, &cb[9]))
        .unwrap();
    store.flush().unwrap();
    let root = store.read().unwrap().log_root(&g, &xa).unwrap();
    assert_eq!(root, Some((5, ca[4].checkpoint.root)));
    // The same branch's continuation still extends the log.
    node.host
        .store_verified(batch_on(&x, g, &va, 5, 10, &ca[9]))
        .unwrap();
    store.flush().unwrap();
    let root = store.read().unwrap().log_root(&g, &xa).unwrap();
    assert_eq!(root, Some((10, ca[9].checkpoint.root)));
}

/// Batches of two remote logs, overlapping ones and local writes queued together (the
/// writer applies what waits in one commit, each MMR taking a commit's leaves at
/// once): every log ends at its signed root, the node MMR covers every event once,
/// and the store verifies, also after a reopen.
#[test]
fn batches_of_several_logs_in_one_commit_reach_their_signed_roots() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::open(dir.path(), 6);
    let store = node.store();
    let g = store.create_group().unwrap().id();
    let (x, y) = (
        XaeroKeypair::generate_from_seed(&[9; 32]),
        XaeroKeypair::generate_from_seed(&[10; 32]),
    );
    let (xa, ya) = (author_of(&x), author_of(&y));
    let (xs, xcps) = bare_log(&x, g, 250, 1);
    let (ys, ycps) = bare_log(&y, g, 300, 2);
    let host = &node.host;
    host.store_verified(batch(&x, g, &xs[..100], 0, &xcps[99]))
        .unwrap();
    host.store_verified(batch(&y, g, &ys[..60], 0, &ycps[59]))
        .unwrap();
    write(store, g, 50, 3);
    // Overlaps the first x batch by 50 events: those are compared, not stored again.
    host.store_verified(batch_on(&x, g, &xs, 50, 200, &xcps[199]))
        .unwrap();
    host.store_verified(batch_on(&y, g, &ys, 60, 300, &ycps[299]))
        .unwrap();
    host.store_verified(batch_on(&x, g, &xs, 200, 250, &xcps[249]))
        .unwrap();
    store.flush().unwrap();
    let check = |store: &XaeroFlux| {
        let snap = store.read().unwrap();
        assert_eq!(
            snap.log_root(&g, &xa).unwrap(),
            Some((250, xcps[249].checkpoint.root))
        );
        assert_eq!(
            snap.log_root(&g, &ya).unwrap(),
            Some((300, ycps[299].checkpoint.root))
        );
        assert_eq!(snap.event_count().unwrap(), 250 + 300 + 50);
        drop(snap);
        let r = store.verify(|_, _| {}).unwrap();
        assert_eq!(r.events, 600);
    };
    check(store);
    let node = node.reopen();
    check(node.store());
}
