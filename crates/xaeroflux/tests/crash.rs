//! Crash test: a child process writes and flushes events until it is killed with
//! SIGKILL at a random moment; the parent reopens the store and checks that every
//! acknowledged event survived unchanged, that `verify()` passes and that the log
//! continues.
//!
//! Environment: `XAERO_CRASH_CYCLES` (default 50), `XAERO_CRASH_SEED` (default fixed),
//! `XAERO_CRASH_ROTATE` (start a fresh store every N cycles, default 10).
#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use xaeroflux::{Durability, EventId, Options, XaeroFlux};

const CHILD_ENV: &str = "XAERO_CRASH_CHILD";
const SEED_ENV: &str = "XAERO_CRASH_SEED";
/// Small hash-index chunks so that index flushes happen (and get interrupted) often.
const HASH_CHUNK: usize = 1000;

/// xorshift64*: small, seeded, no dependencies.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }
}

/// The event the writer stores at log position `seq`: (type, payload of 1..=4096 B).
fn event_for(seq: u64) -> (u32, Vec<u8>) {
    let mut r = Rng::new(seq.wrapping_add(0xC0FF_EE00));
    let len = r.range(1, 4096) as usize;
    let mut p = Vec::with_capacity(len + 8);
    while p.len() < len {
        p.extend_from_slice(&r.next().to_le_bytes());
    }
    p.truncate(len);
    (256 + (seq % 1000) as u32, p)
}

fn options(dir: &Path) -> Options {
    let mut o = Options::new(dir);
    o.durability = Durability::Batched;
    o.hash_index_chunk = HASH_CHUNK;
    o
}

fn open(dir: &Path) -> XaeroFlux {
    XaeroFlux::builder(dir)
        .options(options(dir))
        .open()
        .unwrap()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex(s: &str) -> [u8; 32] {
    let mut out = [0u8; 32];
    assert_eq!(s.len(), 64, "bad id {s}");
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap();
    }
    out
}

/// Child mode: write, flush every few writes, print what each flush acknowledged.
fn child(dir: &Path) -> ! {
    let seed: u64 = std::env::var(SEED_ENV)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    let mut rng = Rng::new(seed);
    // Mostly small batches, sometimes large ones (several Merkle pages per commit).
    let flush_every = 1u64 << rng.range(0, 9);
    let store = open(dir);
    // One author, one group: the log position is the store's event count.
    let mut seq = store.read().unwrap().event_count().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut batch: Vec<(u64, EventId)> = Vec::new();
    let mut out = String::new();
    let stdout = std::io::stdout();
    while Instant::now() < deadline {
        let (ty, payload) = event_for(seq);
        let id = store.write_event(&payload, ty).unwrap();
        batch.push((seq, id));
        seq += 1;
        if batch.len() as u64 >= flush_every {
            store.flush().unwrap();
            out.clear();
            for (s, id) in batch.drain(..) {
                out.push_str(&format!("@ack {s} {}\n", hex(&id.0)));
            }
            let mut lock = stdout.lock();
            lock.write_all(out.as_bytes()).unwrap();
            lock.flush().unwrap();
        }
    }
    // The parent should have killed us long ago.
    std::process::exit(3)
}

#[test]
fn crash_loop() {
    if let Some(dir) = std::env::var_os(CHILD_ENV) {
        child(Path::new(&dir));
    }
    let cycles: u64 = std::env::var("XAERO_CRASH_CYCLES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(50);
    let rotate: u64 = std::env::var("XAERO_CRASH_ROTATE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10)
        .max(1);
    let seed: u64 = std::env::var(SEED_ENV)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5EED_F00D);
    println!("crash_loop: {cycles} cycles, seed {seed}, fresh store every {rotate} cycles");
    let exe = std::env::current_exe().unwrap();
    let mut rng = Rng::new(seed);
    let started = Instant::now();
    let mut dir = tempfile::tempdir().unwrap();
    // Events the store must hold at the start of a cycle, and its root at that length.
    let mut known: u64 = 0;
    let mut known_root: Option<[u8; 32]> = None;
    let (mut total_acked, mut max_store) = (0u64, 0u64);
    for cycle in 0..cycles {
        if cycle > 0 && cycle % rotate == 0 {
            dir = tempfile::tempdir().unwrap();
            known = 0;
            known_root = None;
        }
        let child_seed = rng.next();
        let mut child = Command::new(&exe)
            .args(["--exact", "crash_loop", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, dir.path())
            .env(SEED_ENV, child_seed.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut so = child.stdout.take().unwrap();
        let mut se = child.stderr.take().unwrap();
        let out_t = std::thread::spawn(move || {
            let mut v = Vec::new();
            let _ = so.read_to_end(&mut v);
            v
        });
        let err_t = std::thread::spawn(move || {
            let mut v = Vec::new();
            let _ = se.read_to_end(&mut v);
            v
        });
        let kill_after = Duration::from_millis(rng.range(20, 300));
        std::thread::sleep(kill_after);
        let early = child.try_wait().unwrap();
        child.kill().unwrap(); // SIGKILL on unix
        let status = child.wait().unwrap();
        let out = out_t.join().unwrap();
        let err = err_t.join().unwrap();
        let err = String::from_utf8_lossy(&err);
        assert!(
            early.is_none(),
            "cycle {cycle}: child exited on its own ({status:?}) (seed {child_seed}):\n{err}"
        );

        // Only complete lines: the last one may be torn by the kill.
        let out = String::from_utf8_lossy(&out);
        let complete = match out.rfind('\n') {
            Some(i) => &out[..=i],
            None => "",
        };
        let mut acked: Vec<(u64, EventId)> = Vec::new();
        for line in complete.lines() {
            // libtest may print "test crash_loop ... " in front of the first line.
            if let Some(rest) = line.find("@ack ").map(|i| &line[i + 5..]) {
                let (s, id) = rest.split_once(' ').unwrap();
                acked.push((s.parse().unwrap(), EventId(unhex(id))));
            }
        }

        let store = XaeroFlux::builder(dir.path())
            .options(options(dir.path()))
            .open()
            .unwrap_or_else(|e| {
                panic!(
                    "cycle {cycle}: reopen failed: {e:?} (child seed {child_seed}, stderr:\n{err})"
                )
            });
        let snap = store.read().unwrap();
        let count = snap.event_count().unwrap();
        assert!(
            count >= known,
            "cycle {cycle}: store lost events: {count} < {known}"
        );
        if let Some(root) = known_root {
            assert_eq!(
                snap.mmr_root_at(known).unwrap(),
                root,
                "cycle {cycle}: history changed"
            );
        }
        for (s, id) in &acked {
            let ev = snap.get(id).unwrap().unwrap_or_else(|| {
                panic!("cycle {cycle}: acknowledged event seq {s} lost (count {count})")
            });
            assert_eq!(ev.local_seq, *s);
            assert_eq!(ev.event.header.seq, *s);
            let (ty, payload) = event_for(*s);
            assert_eq!(ev.event.header.event_type, ty);
            assert_eq!(
                ev.event.payload,
                &payload[..],
                "cycle {cycle}: payload of seq {s} changed"
            );
        }
        if let Some((s, _)) = acked.last() {
            assert!(
                count > *s,
                "cycle {cycle}: count {count} but seq {s} acknowledged"
            );
        }
        // Committed but unacknowledged events must be intact too.
        for ev in snap.since(known).unwrap() {
            let ev = ev.unwrap();
            assert_eq!(ev.event.header.seq, ev.local_seq);
            assert_eq!(ev.event.header.author, store.author());
            let (ty, payload) = event_for(ev.local_seq);
            assert_eq!(ev.event.header.event_type, ty);
            assert_eq!(
                ev.event.payload,
                &payload[..],
                "cycle {cycle}: event {} changed",
                ev.local_seq
            );
        }
        drop(snap);
        let report = store.verify(|_, _| {}).unwrap_or_else(|e| {
            panic!("cycle {cycle}: verify failed: {e:?} (child seed {child_seed})")
        });
        assert_eq!(report.events, count);
        assert_eq!(report.mmr_root, store.get_mmr_root().unwrap());
        if count > 0 {
            assert_eq!(report.logs, 1);
            assert!(report.checkpoints >= 1);
        }
        // The log continues where the committed part ended.
        let (ty, payload) = event_for(count);
        let id = store.write_event(&payload, ty).unwrap();
        store.flush().unwrap();
        let ev = store.get(&id).unwrap().unwrap();
        assert_eq!(ev.header.seq, count);
        known = count + 1;
        known_root = store.get_mmr_root().unwrap();
        store.close().unwrap();

        total_acked += acked.len() as u64;
        max_store = max_store.max(known);
        if std::env::var_os("XAERO_CRASH_VERBOSE").is_some() {
            println!(
                "cycle {cycle}: killed after {kill_after:?}, {} acked, store has {count}",
                acked.len()
            );
        }
    }
    println!(
        "crash_loop: {cycles} cycles in {:.1?}: {total_acked} acknowledged events checked, largest store {max_store} events",
        started.elapsed()
    );
}
