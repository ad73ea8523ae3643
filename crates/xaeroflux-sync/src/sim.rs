//! Deterministic simulation of many peers running [`Session`]s over a simulated network,
//! plus hostile-peer tests. In the spirit of iroh-gossip's `proto::sim`.
//!
//! A connection is modelled as QUIC gives it: reliable and ordered in each direction,
//! with random latency per frame (never overtaking an earlier frame), delivered in
//! random chunks. Message loss, partitions and churn are connection drops; every
//! reconnect gets fresh TLS keying material. Duplication and reordering across paths
//! happen naturally: several sessions fetch the same ranges from different peers.

#![allow(clippy::unwrap_used)]

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex, OnceLock};

use xaeroflux_core::{
    AuthorId, Checkpoint, Event, EventHeader, Group, GroupId, GroupSecret, Hlc, SignedCheckpoint,
};
use xaeroid::XaeroKeypair;

use crate::frame::{self, Message, Role};
use crate::log::{LogView, MemLogs};
use crate::proto::{
    ErrorCode, Input, Output, Session, SessionConfig, SystemEvent, TransportParams,
};

/// SplitMix64: tiny, seedable, good enough for scheduling decisions.
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Rng(seed ^ 0x9e37_79b9_7f4a_7c15)
    }
    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    pub(crate) fn chance(&mut self, p: f64) -> bool {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }
    pub(crate) fn bytes32(&mut self) -> [u8; 32] {
        let mut b = [0u8; 32];
        for c in b.chunks_mut(8) {
            c.copy_from_slice(&self.next().to_le_bytes());
        }
        b
    }
}

/// Identities are expensive to generate: make them once from fixed seeds.
pub(crate) fn keypair(i: usize) -> Arc<XaeroKeypair> {
    static KEYS: OnceLock<Mutex<Vec<Arc<XaeroKeypair>>>> = OnceLock::new();
    let mut keys = KEYS
        .get_or_init(|| Mutex::new(Vec::new()))
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    while keys.len() <= i {
        let n = u8::try_from(keys.len() + 1).expect("at most 255 simulated identities");
        keys.push(Arc::new(XaeroKeypair::generate_from_seed(&[n; 32])));
    }
    keys[i].clone()
}

pub(crate) fn group() -> Group {
    Group::from_secret(GroupSecret::from_bytes([42; 32]))
}

/// What the store's committed feed hands sessions after `n` events were appended
/// to a log, `cp` covering them.
pub(crate) fn committed(n: usize, cp: &SignedCheckpoint) -> Input {
    Input::LocalCommitted {
        first_seq: cp.checkpoint.length - n as u64,
        count: n as u64,
        checkpoint: Box::new(cp.clone()),
    }
}

pub(crate) fn author_of(kp: &XaeroKeypair) -> AuthorId {
    AuthorId(*kp.id().as_bytes())
}

/// A writer: identity plus local store.
pub(crate) struct Peer {
    pub(crate) kp: Arc<XaeroKeypair>,
    pub(crate) store: MemLogs,
    next_seq: u64,
}

impl Peer {
    pub(crate) fn new(i: usize) -> Self {
        let kp = keypair(i);
        let mut store = MemLogs::new();
        store.add_key(kp.public().clone());
        Peer {
            kp,
            store,
            next_seq: 0,
        }
    }

    /// Commits `n` events (one group commit, one checkpoint).
    pub(crate) fn write(
        &mut self,
        group: GroupId,
        n: usize,
        now: u64,
        tag: u64,
    ) -> (Vec<Vec<u8>>, SignedCheckpoint) {
        let author = author_of(&self.kp);
        let mut encoded = Vec::new();
        let mut root = [0u8; 32];
        for i in 0..n {
            let ev = Event {
                header: EventHeader {
                    event_type: 1000,
                    group,
                    author,
                    seq: self.next_seq,
                    hlc: Hlc::new(now, i as u16),
                },
                payload: format!("event {} of {author:?} tag {tag}", self.next_seq).into_bytes(),
            };
            self.next_seq += 1;
            root = self.store.append_local(&ev);
            encoded.push(ev.encode());
        }
        let cp = Checkpoint {
            group,
            author,
            length: self.next_seq,
            root,
            hlc: Hlc::new(now, 0),
        }
        .sign(&self.kp);
        self.store.add_checkpoint(cp.clone());
        (encoded, cp)
    }
}

fn cfg(kp: Arc<XaeroKeypair>) -> SessionConfig {
    let mut c = SessionConfig::new(group(), kp);
    c.anti_entropy_interval_ms = 500;
    c.handshake_timeout_ms = 5_000;
    c.request_timeout_ms = 10_000;
    // Small batches and frames exercise pipelining, multi-frame answers and proofs.
    c.max_request_events = 7;
    c.max_in_flight = 6;
    c.max_in_flight_per_log = 3;
    c.target_frame_bytes = 700;
    c.full_anti_entropy_every = 4;
    c
}

struct Conn {
    ends: [usize; 2],
    sessions: [Session; 2],
    /// Frames in flight towards `ends[i]`: (deliver at, bytes).
    queues: [VecDeque<(u64, Vec<u8>)>; 2],
    alive: bool,
    /// Events (author, seq) each side sent in this session.
    sent: [HashSet<(AuthorId, u64)>; 2],
}

/// The (author, seq) of every event an events frame (`Events`, `EventsByRef`,
/// `Push`) carries; empty for other frames.
pub(crate) fn events_in_frame(bytes: &[u8]) -> Vec<(AuthorId, u64)> {
    let (author, first, n) = match frame::decode(bytes) {
        Ok(Message::Events(e) | Message::Push(e)) => (e.author, e.first_seq, e.events.len()),
        Ok(Message::EventsByRef(e)) => (e.author, e.first_seq, e.events.len()),
        _ => return Vec::new(),
    };
    (first..first + n as u64).map(|s| (author, s)).collect()
}

#[derive(Default, Debug)]
struct Stats {
    connects: u64,
    drops: u64,
    frames: u64,
    bytes: u64,
    stored_events: u64,
    rejections: Vec<(ErrorCode, String)>,
    forks: u64,
    /// Events a session sent that it had sent before (catch-up and push overlapping).
    resent_events: u64,
    /// Events sent in events frames, all sessions.
    sent_events: u64,
}

struct Net {
    rng: Rng,
    peers: Vec<Peer>,
    conns: Vec<Conn>,
    /// Partition side of each peer; peers on different sides cannot connect.
    side: Vec<u8>,
    /// Probability that a frame is lost or duplicated inside a connection (not what
    /// QUIC does; the protocol must then recover through timeouts and anti-entropy).
    frame_faults: f64,
    /// Verified batches waiting for each peer's storage writer (FIFO, random delay):
    /// the store lags behind what sessions verified, as with the real writer thread.
    writer: Vec<VecDeque<(u64, Box<Output>)>>,
    stats: Stats,
    /// The configuration of every session.
    session_cfg: fn(Arc<XaeroKeypair>) -> SessionConfig,
    /// Bytes delivered to each peer (all frames).
    received: Vec<u64>,
    /// Whether stored remote events go to the node's other sessions (the committed
    /// feed), as in a real node.
    relay: bool,
    /// Per peer and author: the log length up to which the committed feed handed
    /// events to the sessions.
    fed: Vec<std::collections::HashMap<AuthorId, u64>>,
}

impl Net {
    fn new(seed: u64, n: usize) -> Self {
        Net {
            rng: Rng::new(seed),
            peers: (0..n).map(Peer::new).collect(),
            conns: Vec::new(),
            side: vec![0; n],
            frame_faults: 0.0,
            writer: (0..n).map(|_| VecDeque::new()).collect(),
            stats: Stats::default(),
            session_cfg: cfg,
            received: vec![0; n],
            relay: false,
            fed: vec![std::collections::HashMap::new(); n],
        }
    }

    fn connected(&self, a: usize, b: usize) -> bool {
        self.conns
            .iter()
            .any(|c| c.alive && (c.ends == [a, b] || c.ends == [b, a]))
    }

    fn connect(&mut self, a: usize, b: usize, now: u64) {
        let ekm = self.rng.bytes32();
        let ep = |i: usize| [i as u8 + 100; 32];
        let mut conn = Conn {
            ends: [a, b],
            sessions: [
                Session::new((self.session_cfg)(self.peers[a].kp.clone())),
                Session::new((self.session_cfg)(self.peers[b].kp.clone())),
            ],
            queues: [VecDeque::new(), VecDeque::new()],
            alive: true,
            sent: [HashSet::new(), HashSet::new()],
        };
        self.stats.connects += 1;
        let mut pending = Vec::new();
        for (side, role) in [(0, Role::Initiator), (1, Role::Acceptor)] {
            let me = conn.ends[side];
            let other = conn.ends[1 - side];
            let params = TransportParams {
                local_endpoint: ep(me),
                remote_endpoint: ep(other),
                keying_material: ekm,
            };
            let outs = conn.sessions[side].handle(
                Input::Connected { role, params },
                now,
                &self.peers[me].store,
            );
            pending.push((side, outs));
        }
        self.conns.push(conn);
        let ci = self.conns.len() - 1;
        for (side, outs) in pending {
            self.apply(ci, side, outs, now);
        }
    }

    fn drop_conn(&mut self, ci: usize) {
        if self.conns[ci].alive {
            self.conns[ci].alive = false;
            self.stats.drops += 1;
        }
    }

    /// Carries out what session `side` of connection `ci` asked for.
    fn apply(&mut self, ci: usize, side: usize, outs: Vec<Output>, now: u64) {
        let me = self.conns[ci].ends[side];
        for o in outs {
            match o {
                Output::Send(bytes) => {
                    self.stats.frames += 1;
                    self.stats.bytes += bytes.len() as u64;
                    for e in events_in_frame(&bytes) {
                        self.stats.sent_events += 1;
                        if !self.conns[ci].sent[side].insert(e) {
                            self.stats.resent_events += 1;
                            if std::env::var_os("XAERO_SIM_DEBUG").is_some() {
                                let kind = match frame::decode(&bytes) {
                                    Ok(Message::Push(_)) => "push",
                                    Ok(Message::Events(_)) => "events",
                                    _ => "by-ref",
                                };
                                eprintln!(
                                    "resent {kind} {:?} seq {} at {now} conn {:?} side {side}: {}",
                                    e.0,
                                    e.1,
                                    self.conns[ci].ends,
                                    self.conns[ci].sessions[side].debug_state()
                                );
                            }
                        }
                    }
                    let latency = 1 + self.rng.below(40);
                    let q = &mut self.conns[ci].queues[1 - side];
                    let at = q.back().map_or(0, |x| x.0).max(now + latency);
                    q.push_back((at, bytes));
                }
                Output::Close { .. } => self.drop_conn(ci),
                o @ Output::StoreVerified(_) => {
                    let delay = self.rng.below(60);
                    let q = &mut self.writer[me];
                    let at = q.back().map_or(0, |x| x.0).max(now + delay);
                    q.push_back((at, Box::new(o)));
                }
                Output::Event(SystemEvent::PeerRejected { code, why }) => {
                    self.stats.rejections.push((code, why));
                }
                Output::Event(SystemEvent::ForkDetected { .. }) => self.stats.forks += 1,
                Output::Event(_) => {}
            }
        }
    }

    /// Runs each peer's storage writer: applies the batches that are due, in order.
    fn write_back(&mut self, now: u64) {
        for p in 0..self.peers.len() {
            while self.writer[p].front().is_some_and(|w| w.0 <= now) {
                let Some((_, o)) = self.writer[p].pop_front() else {
                    break;
                };
                let Output::StoreVerified(b) = *o else {
                    continue;
                };
                match self.peers[p].store.apply_verified(&b) {
                    Ok(n) => self.stats.stored_events += n,
                    Err(e) => panic!("verified batch refused by the store: {e}"),
                }
                if self.relay {
                    self.relay(p, &b, now);
                }
            }
        }
    }

    /// The committed feed of a node: once a log's stored events reach a stored
    /// checkpoint, the events not handed out yet go to every session of the node
    /// (which relays them where the peer lacks them).
    fn relay(&mut self, p: usize, b: &crate::host::VerifiedBatch, now: u64) {
        let g = group().id();
        let len = self.peers[p].store.frontier(&g, &b.author).len();
        let Some(cp) = self.peers[p].store.latest_checkpoint(&g, &b.author) else {
            return;
        };
        let from = *self.fed[p].entry(b.author).or_insert(b.first_seq);
        if cp.checkpoint.length != len || len <= from {
            return;
        }
        self.fed[p].insert(b.author, len);
        let input = Input::LocalCommitted {
            first_seq: from,
            count: len - from,
            checkpoint: Box::new(cp),
        };
        for ci in 0..self.conns.len() {
            for side in 0..2 {
                if self.conns[ci].alive && self.conns[ci].ends[side] == p {
                    let outs = self.conns[ci].sessions[side].handle(
                        input.clone(),
                        now,
                        &self.peers[p].store,
                    );
                    self.apply(ci, side, outs, now);
                }
            }
        }
    }

    fn deliver(&mut self, now: u64) {
        for ci in 0..self.conns.len() {
            for side in 0..2 {
                while self.conns[ci].alive
                    && self.conns[ci].queues[side]
                        .front()
                        .is_some_and(|f| f.0 <= now)
                {
                    let Some((_, bytes)) = self.conns[ci].queues[side].pop_front() else {
                        break;
                    };
                    self.received[self.conns[ci].ends[side]] += bytes.len() as u64;
                    // The sender's transport wrote the frame: its outbox drained.
                    let sender = self.conns[ci].ends[1 - side];
                    let outs = self.conns[ci].sessions[1 - side].handle(
                        Input::Drained {
                            bytes: bytes.len() as u64,
                        },
                        now,
                        &self.peers[sender].store,
                    );
                    self.apply(ci, 1 - side, outs, now);
                    if self.frame_faults > 0.0 && self.rng.chance(self.frame_faults) {
                        if self.rng.chance(0.5) {
                            continue; // lost
                        }
                        // duplicated
                        self.conns[ci].queues[side].push_front((now, bytes.clone()));
                    }
                    // Arbitrary chunking of the byte stream.
                    let mut rest = &bytes[..];
                    while !rest.is_empty() && self.conns[ci].alive {
                        let n = (1 + self.rng.below(rest.len() as u64 * 2)).min(rest.len() as u64);
                        let (chunk, tail) = rest.split_at(n as usize);
                        rest = tail;
                        let me = self.conns[ci].ends[side];
                        let outs = self.conns[ci].sessions[side].handle(
                            Input::Frame(chunk.to_vec()),
                            now,
                            &self.peers[me].store,
                        );
                        self.apply(ci, side, outs, now);
                    }
                }
            }
        }
    }

    fn tick(&mut self, now: u64) {
        for ci in 0..self.conns.len() {
            for side in 0..2 {
                if !self.conns[ci].alive {
                    continue;
                }
                let me = self.conns[ci].ends[side];
                let outs =
                    self.conns[ci].sessions[side].handle(Input::Tick, now, &self.peers[me].store);
                self.apply(ci, side, outs, now);
            }
        }
        self.conns.retain(|c| c.alive);
    }

    fn write(&mut self, p: usize, now: u64) {
        let n = 1 + self.rng.below(6) as usize;
        let tag = self.rng.next();
        let (events, cp) = self.peers[p].write(group().id(), n, now, tag);
        self.committed(p, &events, &cp, now);
    }

    /// Tells `p`'s sessions about a commit of `events` covered by `cp`.
    fn committed(&mut self, p: usize, events: &[Vec<u8>], cp: &SignedCheckpoint, now: u64) {
        for ci in 0..self.conns.len() {
            for side in 0..2 {
                if self.conns[ci].alive && self.conns[ci].ends[side] == p {
                    let outs = self.conns[ci].sessions[side].handle(
                        committed(events.len(), cp),
                        now,
                        &self.peers[p].store,
                    );
                    self.apply(ci, side, outs, now);
                }
            }
        }
    }

    fn converged(&self) -> bool {
        let g = group().id();
        let first = self.peers[0].store.summary(&g);
        self.peers.iter().all(|p| p.store.summary(&g) == first)
    }

    fn quiet(&self) -> bool {
        self.writer.iter().all(|w| w.is_empty())
            && self.conns.iter().all(|c| {
                c.queues.iter().all(|q| q.is_empty()) && !c.sessions.iter().any(|s| s.is_fetching())
            })
    }
}

/// One simulated run: chaos, then heal. Returns the stats.
fn run(seed: u64, peers: usize, frame_faults: f64) -> Stats {
    const STEP: u64 = 5;
    const CHAOS_MS: u64 = 12_000;
    const HEAL_LIMIT_MS: u64 = 120_000;
    let mut net = Net::new(seed, peers);
    net.frame_faults = frame_faults;
    let mut now = 1_000_000;
    let end_chaos = now + CHAOS_MS;
    // Chaos: writes, churn, partitions, loss (as drops).
    while now < end_chaos {
        for p in 0..peers {
            if net.rng.chance(0.003) {
                net.write(p, now);
            }
        }
        if net.rng.chance(0.001) {
            // New partition (or heal, one time in three).
            let heal = net.rng.below(3) == 0;
            for p in 0..peers {
                net.side[p] = if heal { 0 } else { net.rng.below(2) as u8 };
            }
            for ci in 0..net.conns.len() {
                let [a, b] = net.conns[ci].ends;
                if net.side[a] != net.side[b] {
                    net.drop_conn(ci);
                }
            }
        }
        if !net.conns.is_empty() && net.rng.chance(0.002) {
            let ci = net.rng.below(net.conns.len() as u64) as usize;
            net.drop_conn(ci);
        }
        for a in 0..peers {
            for b in a + 1..peers {
                if net.side[a] == net.side[b] && !net.connected(a, b) && net.rng.chance(0.005) {
                    let (x, y) = if net.rng.chance(0.5) { (a, b) } else { (b, a) };
                    net.connect(x, y, now);
                }
            }
        }
        net.deliver(now);
        net.write_back(now);
        if now % 100 == 0 {
            net.tick(now);
        }
        now += STEP;
    }
    // Heal: nothing drops, nobody writes. Half of the runs heal into a full mesh; the
    // other half into a random chain, so events must be relayed by anti-entropy.
    net.side.iter_mut().for_each(|s| *s = 0);
    net.frame_faults = 0.0;
    let mut order: Vec<usize> = (0..peers).collect();
    for i in (1..peers).rev() {
        order.swap(i, net.rng.below(i as u64 + 1) as usize);
    }
    let chain = net.rng.chance(0.5);
    let allowed = |a: usize, b: usize| {
        !chain
            || order
                .windows(2)
                .any(|w| (w[0], w[1]) == (a, b) || (w[0], w[1]) == (b, a))
    };
    for ci in 0..net.conns.len() {
        let [a, b] = net.conns[ci].ends;
        if !allowed(a, b) {
            net.drop_conn(ci);
        }
    }
    let heal_start = now;
    loop {
        for a in 0..peers {
            for b in a + 1..peers {
                if allowed(a, b) && !net.connected(a, b) {
                    net.connect(a, b, now);
                }
            }
        }
        net.deliver(now);
        net.write_back(now);
        if now % 100 == 0 {
            net.tick(now);
        }
        now += STEP;
        if net.converged() && net.quiet() {
            break;
        }
        if now - heal_start >= HEAL_LIMIT_MS {
            for c in &net.conns {
                for side in 0..2 {
                    eprintln!(
                        "conn {:?} side {side} alive {}: {}",
                        c.ends,
                        c.alive,
                        c.sessions[side].debug_state()
                    );
                }
            }
            for p in &net.peers {
                eprintln!(
                    "{:?}",
                    p.store
                        .summary(&group().id())
                        .iter()
                        .map(|x| (x.0, x.1))
                        .collect::<Vec<_>>()
                );
            }
        }
        assert!(
            now - heal_start < HEAL_LIMIT_MS,
            "seed {seed}: no convergence after healing: {:?}",
            net.peers
                .iter()
                .map(|p| p.store.total_events(&group().id()))
                .collect::<Vec<_>>()
        );
    }
    // Same events, byte for byte, and the same per-author roots everywhere.
    let g = group().id();
    let summary = net.peers[0].store.summary(&g);
    for p in &net.peers {
        assert_eq!(p.store.summary(&g), summary, "seed {seed}");
        for (author, _, _) in &summary {
            assert_eq!(
                p.store.log_events(&g, author),
                net.peers[0].store.log_events(&g, author),
                "seed {seed}"
            );
        }
    }
    assert!(
        frame_faults > 0.0 || net.stats.rejections.is_empty(),
        "seed {seed}: honest peers rejected: {:?}",
        net.stats.rejections
    );
    assert_eq!(net.stats.forks, 0, "seed {seed}");
    // Within one session no event crosses twice (lost or duplicated frames break the
    // stream, and the session that follows starts afresh).
    assert!(
        frame_faults > 0.0 || net.stats.resent_events == 0,
        "seed {seed}: {} of {} events sent twice in one session",
        net.stats.resent_events,
        net.stats.sent_events
    );
    net.stats
}

/// `XAERO_SIM_ONLY=<seed>` runs one seed (failures print every session's state).
fn skip(seed: u64) -> bool {
    std::env::var("XAERO_SIM_ONLY").is_ok_and(|v| v != seed.to_string())
}

#[test]
fn simulation_converges_over_many_seeds() {
    let seeds: u64 = std::env::var("XAERO_SIM_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(200);
    let mut total = Stats::default();
    for seed in 0..seeds {
        if skip(seed) {
            continue;
        }
        let s = run(seed, 5 + (seed % 2) as usize, 0.0);
        total.connects += s.connects;
        total.drops += s.drops;
        total.frames += s.frames;
        total.bytes += s.bytes;
        total.stored_events += s.stored_events;
    }
    assert!(skip(0) || (total.drops > 0 && total.stored_events > 0));
    eprintln!("{seeds} seeds: {total:?}");
}

#[test]
fn simulation_is_deterministic() {
    let a = run(7, 5, 0.0);
    let b = run(7, 5, 0.0);
    assert_eq!(
        (a.connects, a.drops, a.frames, a.bytes, a.stored_events),
        (b.connects, b.drops, b.frames, b.bytes, b.stored_events)
    );
}

#[test]
fn simulation_recovers_from_in_connection_loss_and_duplication() {
    let seeds: u64 = std::env::var("XAERO_SIM_FAULT_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(50);
    let mut rejections = 0;
    for seed in 0..seeds {
        if skip(10_000 + seed) {
            continue;
        }
        let s = run(10_000 + seed, 5, 0.01);
        rejections += s.rejections.len();
    }
    // Faults inside a connection break the stream: sessions must notice and close.
    assert!(skip(10_000) || rejections > 0);
    eprintln!("{seeds} fault seeds: {rejections} sessions closed on stream faults");
}

mod access;
mod bounds;
mod chaos;
mod hostile;
mod mesh;
mod store_failure;
mod wire;
