//! Bytes on the wire with the default configuration (counts, not timings).

use std::collections::VecDeque;

use super::*;

struct Pair {
    peers: [Peer; 2],
    sessions: [Session; 2],
    queues: [VecDeque<Vec<u8>>; 2],
    /// Bytes sent by each side.
    sent: [u64; 2],
    /// Frames delivered in each "flight" (a round trip is two flights).
    flights: u32,
}

impl Pair {
    fn new(writer_events: usize, payload: usize) -> Self {
        let mut a = Peer::new(2);
        if writer_events > 0 {
            a.write_sized(group().id(), writer_events, payload);
        }
        Pair {
            peers: [a, Peer::new(3)],
            sessions: [
                Session::new(SessionConfig::new(group(), keypair(2))),
                Session::new(SessionConfig::new(group(), keypair(3))),
            ],
            queues: [VecDeque::new(), VecDeque::new()],
            sent: [0; 2],
            flights: 0,
        }
    }

    fn handle(&mut self, side: usize, input: Input) {
        let outs = self.sessions[side].handle(input, 0, &self.peers[side].store);
        for o in outs {
            match o {
                Output::Send(b) => {
                    self.sent[side] += b.len() as u64;
                    self.queues[1 - side].push_back(b);
                }
                Output::StoreVerified(b) => {
                    self.peers[side].store.apply_verified(&b).unwrap();
                }
                Output::Close { reason, .. } => panic!("closed: {reason}"),
                Output::Event(_) => {}
            }
        }
    }

    /// Delivers everything, flight by flight.
    fn run(&mut self) {
        while self.queues.iter().any(|q| !q.is_empty()) {
            self.flights += 1;
            let mut batch: Vec<(usize, Vec<u8>)> = Vec::new();
            for side in 0..2 {
                batch.extend(self.queues[side].drain(..).map(|b| (side, b)));
            }
            for (side, b) in batch {
                let n = b.len() as u64;
                self.handle(side, Input::Frame(b));
                self.handle(1 - side, Input::Drained { bytes: n });
            }
        }
    }

    fn connect(&mut self) {
        let (i, a) = (
            TransportParams {
                local_endpoint: [1; 32],
                remote_endpoint: [2; 32],
                keying_material: [7; 32],
            },
            TransportParams {
                local_endpoint: [2; 32],
                remote_endpoint: [1; 32],
                keying_material: [7; 32],
            },
        );
        self.handle(
            1,
            Input::Connected {
                role: Role::Acceptor,
                params: a,
            },
        );
        self.handle(
            0,
            Input::Connected {
                role: Role::Initiator,
                params: i,
            },
        );
        self.run();
    }
}

impl Peer {
    /// One commit of `n` events with `payload`-byte payloads.
    pub(crate) fn write_sized(
        &mut self,
        group: GroupId,
        n: usize,
        payload: usize,
    ) -> (Vec<Vec<u8>>, SignedCheckpoint) {
        self.write_typed(group, n, payload, 1000)
    }

    /// One commit of `n` events of type `event_type` with `payload`-byte payloads
    /// (at least 8 bytes).
    pub(crate) fn write_typed(
        &mut self,
        group: GroupId,
        n: usize,
        payload: usize,
        event_type: u32,
    ) -> (Vec<Vec<u8>>, SignedCheckpoint) {
        let author = author_of(&self.kp);
        let mut encoded = Vec::new();
        let mut root = [0u8; 32];
        for i in 0..n {
            let mut p = vec![0u8; payload];
            p[..8].copy_from_slice(&(self.next_seq).to_le_bytes());
            let ev = Event {
                header: EventHeader {
                    event_type,
                    group,
                    author,
                    seq: self.next_seq,
                    hlc: Hlc::new(5, i as u16),
                },
                payload: p,
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
            hlc: Hlc::new(5, 0),
        }
        .sign(&self.kp);
        self.store.add_checkpoint(cp.clone());
        (encoded, cp)
    }
}

#[test]
fn initial_sync_overhead_is_small() {
    const N: usize = 10_000;
    let mut p = Pair::new(N, 128);
    p.connect();
    let g = group().id();
    assert_eq!(p.peers[1].store.summary(&g), p.peers[0].store.summary(&g));
    let payload_and_headers = (N * (92 + 128)) as u64;
    let total = p.sent[0] + p.sent[1];
    let ratio = total as f64 / payload_and_headers as f64;
    eprintln!(
        "initial sync of {N} x 128 B: {total} bytes on the wire, {ratio:.3}x payload+headers, {} flights",
        p.flights
    );
    assert!(ratio <= 1.15, "{ratio}");
}

#[test]
fn one_new_event_costs_little() {
    let mut p = Pair::new(1000, 128);
    p.connect();
    let g = group().id();
    // Live: pushed as it commits.
    let before = p.sent;
    let flights = p.flights;
    let (events, cp) = p.peers[0].write_sized(g, 1, 128);
    p.handle(0, committed(events.len(), &cp));
    p.run();
    let push_bytes = p.sent[0] - before[0] + p.sent[1] - before[1];
    assert_eq!(p.peers[1].store.summary(&g), p.peers[0].store.summary(&g));
    eprintln!(
        "1 new event pushed: {push_bytes} bytes, {} flights",
        p.flights - flights
    );
    assert!(push_bytes <= 4096);
    // Push missed: repaired by the next anti-entropy round.
    let before = p.sent;
    let flights = p.flights;
    p.peers[0].write_sized(g, 1, 128);
    let outs = p.sessions[0].handle(Input::Tick, 1_000_000, &p.peers[0].store);
    for o in outs {
        if let Output::Send(b) = o {
            p.sent[0] += b.len() as u64;
            p.queues[1].push_back(b);
        }
    }
    p.run();
    let ae_bytes = p.sent[0] - before[0] + p.sent[1] - before[1];
    assert_eq!(p.peers[1].store.summary(&g), p.peers[0].store.summary(&g));
    eprintln!(
        "1 new event by anti-entropy: {ae_bytes} bytes, {} flights",
        p.flights - flights
    );
    assert!(ae_bytes <= 4096);
}

#[test]
fn a_large_commit_is_pushed_in_frames_that_fit() {
    let mut p = Pair::new(10, 1024);
    p.connect();
    let g = group().id();
    // One commit far larger than a frame's event budget.
    let n = 3 * SessionConfig::new(group(), keypair(2)).target_frame_bytes / 1024;
    let (events, cp) = p.peers[0].write_sized(g, n, 1024);
    let outs = p.sessions[0].handle(committed(events.len(), &cp), 0, &p.peers[0].store);
    let pushes: Vec<frame::Events> = outs
        .iter()
        .filter_map(|o| match o {
            Output::Send(b) => match frame::decode(b) {
                Ok(Message::Push(e)) => Some(e),
                _ => None,
            },
            _ => None,
        })
        .collect();
    assert!(pushes.len() >= 3, "{} push frames", pushes.len());
    // Contiguous, covering exactly the commit.
    let mut next = 10;
    for e in &pushes {
        assert_eq!(e.first_seq, next);
        next += e.events.len() as u64;
    }
    assert_eq!(next, 10 + n as u64);
    for o in outs {
        if let Output::Send(b) = o {
            p.queues[1].push_back(b);
        }
    }
    p.run();
    assert_eq!(p.peers[1].store.summary(&g), p.peers[0].store.summary(&g));
}
