//! The chaos member: a peer with valid credentials (its Hello verifies, its own log is
//! signed) that, once connected, sends random well-formed frames of every type and
//! size. Two honest peers sync through the same period; over many seeds they must
//! converge, and every honest session's buffered bytes (decoder, unsent output, key
//! map, request queue, peer checkpoints) must stay under [`BOUND`] after every input.
//! A session the chaos member gets closed is replaced by a fresh connection.

use super::*;
use crate::frame::{Events, EventsByRef, Hello, Request};
use crate::proto::SessionMemory;

const HONEST: [usize; 2] = [0, 1];
const CHAOS: usize = 2;
/// Keys the chaos member draws from (and whose checkpoints it can sign).
const POOL: std::ops::Range<usize> = 3..8;

/// What an honest session may hold, at most: a whole frame in the decoder plus one
/// read, the response backlog plus one frame plus what is not answer traffic, 2048
/// keys, 64 requests, and the checkpoints of every pool author.
fn bound(cfg: &SessionConfig) -> SessionMemory {
    SessionMemory {
        decoder: 2 * frame::MAX_FRAME,
        unsent: (cfg.max_response_backlog + 2 * frame::MAX_FRAME) as u64,
        keys: cfg.max_session_keys,
        queued_requests: cfg.max_queued_requests,
        peer_checkpoints: 16,
    }
}

fn within(m: &SessionMemory, b: &SessionMemory) -> bool {
    m.decoder <= b.decoder
        && m.unsent <= b.unsent
        && m.keys <= b.keys
        && m.queued_requests <= b.queued_requests
        && m.peer_checkpoints <= b.peer_checkpoints
}

/// One connection: `sessions[0]` is an honest peer, `sessions[1]` the other end.
struct Link {
    ends: [usize; 2],
    sessions: [Session; 2],
    /// Frames towards each end.
    queues: [VecDeque<Vec<u8>>; 2],
    closed: bool,
}

struct World {
    rng: Rng,
    peers: Vec<Peer>,
    links: Vec<Link>,
    now: u64,
    ekm: u8,
    /// Signed checkpoints and encoded events the chaos member can replay.
    material: Vec<(SignedCheckpoint, Vec<Vec<u8>>)>,
    peak: SessionMemory,
    chaos_frames: u64,
    chaos_closes: u64,
}

fn chaos_cfg(kp: Arc<XaeroKeypair>) -> SessionConfig {
    let mut c = cfg(kp);
    c.target_frame_bytes = 64 * 1024;
    c
}

impl World {
    fn new(seed: u64) -> Self {
        let mut peers: Vec<Peer> = (0..8).map(Peer::new).collect();
        let g = group().id();
        let mut material = Vec::new();
        for i in POOL.chain([CHAOS]) {
            let (ev, cp) = peers[i].write(g, 3, 1, seed);
            material.push((cp, ev));
        }
        World {
            rng: Rng::new(seed),
            peers,
            links: Vec::new(),
            now: 10,
            ekm: 0,
            material,
            peak: SessionMemory::default(),
            chaos_frames: 0,
            chaos_closes: 0,
        }
    }

    fn connect(&mut self, a: usize, b: usize) {
        self.ekm = self.ekm.wrapping_add(1);
        let ep = |i: usize| [i as u8 + 1; 32];
        let mut link = Link {
            ends: [a, b],
            sessions: [
                Session::new(chaos_cfg(self.peers[a].kp.clone())),
                Session::new(chaos_cfg(self.peers[b].kp.clone())),
            ],
            queues: [VecDeque::new(), VecDeque::new()],
            closed: false,
        };
        for (side, role) in [(0, Role::Acceptor), (1, Role::Initiator)] {
            let params = TransportParams {
                local_endpoint: ep(link.ends[side]),
                remote_endpoint: ep(link.ends[1 - side]),
                keying_material: [self.ekm; 32],
            };
            let input = Input::Connected { role, params };
            self.step(&mut link, side, input);
        }
        self.links.push(link);
    }

    /// Feeds one input to one end and carries out its outputs.
    fn step(&mut self, link: &mut Link, side: usize, input: Input) {
        let me = link.ends[side];
        let outs = link.sessions[side].handle(input, self.now, &self.peers[me].store);
        for o in outs {
            match o {
                Output::Send(b) => link.queues[1 - side].push_back(b),
                Output::Close { .. } => link.closed = true,
                Output::StoreVerified(b) => {
                    self.peers[me].store.apply_verified(&b).unwrap();
                }
                Output::Event(_) => {}
            }
        }
        if side == 0 {
            let m = link.sessions[0].memory();
            let b = bound(&chaos_cfg(keypair(0)));
            assert!(within(&m, &b), "honest session over its bound: {m:?}");
            self.peak.decoder = self.peak.decoder.max(m.decoder);
            self.peak.unsent = self.peak.unsent.max(m.unsent);
            self.peak.keys = self.peak.keys.max(m.keys);
            self.peak.queued_requests = self.peak.queued_requests.max(m.queued_requests);
            self.peak.peer_checkpoints = self.peak.peer_checkpoints.max(m.peer_checkpoints);
        }
    }

    /// A random well-formed frame of any type and size, made of real material (signed
    /// checkpoints, keys, encoded events) mixed with random values.
    fn chaos_frame(&mut self) -> Vec<u8> {
        let r = &mut self.rng;
        let pick = |r: &mut Rng, n: usize| r.below(n as u64) as usize;
        let (cp, events) = self.material[pick(r, self.material.len())].clone();
        let author = if r.chance(0.7) {
            cp.checkpoint.author
        } else {
            AuthorId(r.bytes32())
        };
        let mut list = crate::EventList::new();
        let n = match r.below(4) {
            0 => 0,
            1 => 1 + pick(r, 3),
            2 => 1 + pick(r, 40),
            _ => 1 + pick(r, 1500),
        };
        let size = [16usize, 300, 4000, 60_000][pick(r, 4)];
        for i in 0..n {
            if r.chance(0.5) {
                list.push(&events[i % events.len()]);
            } else {
                let len = 1 + pick(r, size);
                let junk: Vec<u8> = (0..len).map(|_| r.next() as u8).collect();
                list.push(&junk);
            }
            if list.byte_len() > 900_000 {
                break;
            }
        }
        let proof: Vec<[u8; 32]> = (0..pick(r, 12)).map(|_| r.bytes32()).collect();
        let first_seq = if r.chance(0.5) { 0 } else { r.below(8) };
        let msg = match r.below(9) {
            0 => {
                let ip = TransportParams {
                    local_endpoint: r.bytes32(),
                    remote_endpoint: r.bytes32(),
                    keying_material: r.bytes32(),
                };
                let kp = keypair(POOL.start + pick(r, POOL.len()));
                let h: Hello =
                    crate::proto::handshake::make_hello(Role::Initiator, &ip, &group(), &kp, false);
                Message::Hello(Box::new(h))
            }
            1 | 2 => {
                let k = pick(r, 40);
                let checkpoints = (0..pick(r, 12))
                    .map(|i| self.material[i % self.material.len()].0.clone())
                    .collect();
                let keys = (0..k)
                    .map(|i| keypair(POOL.start + (i % POOL.len())).public().clone())
                    .collect();
                Message::Checkpoints { checkpoints, keys }
            }
            3 => {
                // Floods of requests are a frame each: send a burst below.
                let from = r.below(6);
                let span = if r.chance(0.9) { 1024 } else { 5000 };
                Message::Request(Request {
                    author,
                    from_seq: from,
                    to_seq: from + 1 + r.below(span),
                })
            }
            4 => Message::Events(Events {
                author,
                first_seq,
                checkpoint: cp,
                proof,
                events: list,
            }),
            5 => Message::Push(Events {
                author,
                first_seq,
                checkpoint: cp,
                proof,
                events: list,
            }),
            6 => Message::EventsByRef(EventsByRef {
                author,
                first_seq,
                checkpoint_length: r.below(5),
                proof,
                events: list,
            }),
            7 => {
                let other = self.material[pick(r, self.material.len())].0.clone();
                Message::ForkEvidence(Box::new((cp, other)))
            }
            _ => Message::Error {
                code: r.below(20) as u16,
                reason: "chaos\n\u{1b}[2J".repeat(pick(r, 80)),
            },
        };
        let f = frame::encode(&msg);
        if matches!(msg, Message::Request(_)) && self.rng.chance(0.5) {
            // A burst: up to 100 requests in one read.
            let times = 1 + self.rng.below(100) as usize;
            return f.repeat(times);
        }
        f
    }

    /// One round: deliver everything queued (the chaos end drops what it gets and
    /// replaces it with chaos once established), tick, maybe write.
    fn round(&mut self) -> bool {
        let mut busy = false;
        let mut links = std::mem::take(&mut self.links);
        for link in links.iter_mut() {
            let chaos = link.ends[1] == CHAOS;
            for _ in 0..4 {
                if link.closed {
                    break;
                }
                // To the honest end.
                while let Some(b) = link.queues[0].pop_front() {
                    busy = true;
                    let n = b.len() as u64;
                    self.step(link, 0, Input::Frame(b));
                    self.step(link, 1, Input::Drained { bytes: n });
                }
                // To the other end; a chaos member reads only sometimes.
                let reads = !chaos || self.rng.chance(0.7);
                while reads && !link.closed {
                    let Some(b) = link.queues[1].pop_front() else {
                        break;
                    };
                    busy = true;
                    let n = b.len() as u64;
                    self.step(link, 1, Input::Frame(b));
                    self.step(link, 0, Input::Drained { bytes: n });
                }
                if chaos && link.sessions[1].is_established() && !link.closed {
                    for _ in 0..1 + self.rng.below(3) {
                        let f = self.chaos_frame();
                        self.chaos_frames += 1;
                        self.step(link, 0, Input::Frame(f));
                        if link.closed {
                            self.chaos_closes += 1;
                            break;
                        }
                    }
                }
            }
            if !link.closed {
                self.step(link, 0, Input::Tick);
                self.step(link, 1, Input::Tick);
            }
        }
        self.now += 300;
        links.retain(|l| !l.closed);
        self.links = links;
        // The chaos member reconnects whenever it got thrown out.
        for h in HONEST {
            let up = self.links.iter().any(|l| l.ends == [h, CHAOS]);
            if !up {
                self.connect(h, CHAOS);
            }
        }
        busy
    }

    fn write(&mut self, p: usize) {
        let n = 1 + self.rng.below(5) as usize;
        let (events, cp) = self.peers[p].write(group().id(), n, self.now, self.rng.next());
        let mut links = std::mem::take(&mut self.links);
        for link in links.iter_mut().filter(|l| !l.closed) {
            for side in 0..2 {
                if link.ends[side] == p {
                    self.step(link, side, committed(events.len(), &cp));
                }
            }
        }
        self.links = links;
    }

    /// What the honest peers hold of each other's logs.
    fn honest_view(&self, p: usize) -> Vec<(AuthorId, u64, Option<[u8; 32]>)> {
        let authors: Vec<AuthorId> = HONEST
            .iter()
            .map(|h| author_of(&self.peers[*h].kp))
            .collect();
        self.peers[p]
            .store
            .summary(&group().id())
            .into_iter()
            .filter(|s| authors.contains(&s.0))
            .collect()
    }
}

fn run(seed: u64) -> World {
    let mut w = World::new(seed);
    w.connect(HONEST[0], HONEST[1]);
    for h in HONEST {
        w.connect(h, CHAOS);
    }
    for _ in 0..40 {
        if w.rng.chance(0.5) {
            let p = HONEST[w.rng.below(2) as usize];
            w.write(p);
        }
        w.round();
        // The honest link may have been closed by nothing the chaos member did; it
        // is re-established like any dropped connection.
        if !w.links.iter().any(|l| l.ends == [HONEST[0], HONEST[1]]) {
            w.connect(HONEST[0], HONEST[1]);
        }
    }
    // Quiet period: the chaos member keeps going; honest writes stop.
    for _ in 0..60 {
        w.round();
        if w.honest_view(HONEST[0]) == w.honest_view(HONEST[1]) {
            break;
        }
    }
    w
}

#[test]
fn chaos_member_cannot_stop_honest_peers_or_grow_their_sessions() {
    let seeds = 24;
    let mut worst = SessionMemory::default();
    let mut frames = 0;
    let mut closes = 0;
    for seed in 0..seeds {
        let w = run(seed);
        let a = w.honest_view(HONEST[0]);
        let b = w.honest_view(HONEST[1]);
        assert_eq!(a, b, "seed {seed}: honest peers did not converge");
        let written: Vec<u64> = HONEST
            .iter()
            .map(|h| {
                w.peers[*h]
                    .store
                    .summary(&group().id())
                    .iter()
                    .find(|s| s.0 == author_of(&w.peers[*h].kp))
                    .map_or(0, |s| s.1)
            })
            .collect();
        for (i, h) in HONEST.iter().enumerate() {
            let held = a
                .iter()
                .find(|s| s.0 == author_of(&w.peers[*h].kp))
                .map_or(0, |s| s.1);
            assert_eq!(
                held, written[i],
                "seed {seed}: log of honest peer {h} incomplete"
            );
        }
        worst.decoder = worst.decoder.max(w.peak.decoder);
        worst.unsent = worst.unsent.max(w.peak.unsent);
        worst.keys = worst.keys.max(w.peak.keys);
        worst.queued_requests = worst.queued_requests.max(w.peak.queued_requests);
        worst.peer_checkpoints = worst.peer_checkpoints.max(w.peak.peer_checkpoints);
        frames += w.chaos_frames;
        closes += w.chaos_closes;
    }
    println!(
        "chaos: {seeds} seeds, {frames} chaos frames, {closes} sessions closed by them; \
         worst honest session: {worst:?} (bound {:?})",
        bound(&chaos_cfg(keypair(0)))
    );
    assert!(frames > 1000, "too little chaos: {frames} frames");
}
