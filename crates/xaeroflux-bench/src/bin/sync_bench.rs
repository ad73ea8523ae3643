//! Sync over the network: two engine nodes in one process on loopback (iroh QUIC,
//! relays off), against Hypercore replication over loopback TCP (`sync/`).
//!
//! (a) Initial sync: A writes N events and flushes; an empty B joins with an invite.
//!     Time from `join` to B holding all N events, events/s, and the bytes on the wire
//!     (QUIC datagrams both ways, and sync frames) against the payload bytes. The
//!     anchor of the receiver's rate is our own durable ingest of the same events in
//!     the same run: A's writes and `flush()` before B joins (goal: B receives at
//!     >= 0.5x that rate).
//! (b) Catch-up of one event into a group of M events already synced on both: frames
//!     and bytes for that event while connected (live push) and when B reopens and
//!     redials A (anti-entropy).
//!
//! `cargo run --release -p xaeroflux-bench --bin sync_bench -- [--events N]
//! [--sizes 128,1024] [--runs R] [--base M | --full] [--trials T] [--anchor] [--dir PATH]`
//! Each size's initial sync runs R times (default 3) with fresh nodes; the table shows
//! every run and, per size, the worst wire ratio (the goal holds in every run, not on
//! average).
//! `--full` sets M = 1,000,000. `--anchor` runs `node sync/hypercore_anchor.js N 128`
//! (after `npm install` in that folder).
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use xaeroflux::{NetConfig, NetworkOptions, PeerInfo, XaeroFlux, XaeroKeypair};
use xaeroflux_core::event::HEADER_LEN;

const TYPE: u32 = 1000;
/// Convergence deadline; a run that misses it is reported as a failure, not timed.
const DEADLINE: Duration = Duration::from_secs(600);

struct Args {
    events: u64,
    sizes: Vec<usize>,
    runs: usize,
    base: u64,
    trials: usize,
    anchor: bool,
    dir: PathBuf,
}

fn parse_args() -> Args {
    let mut a = Args {
        events: 100_000,
        sizes: vec![128, 1024],
        runs: 3,
        base: 200_000,
        trials: 5,
        anchor: false,
        dir: std::env::temp_dir(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut val = || it.next().unwrap_or_else(|| panic!("{arg} needs a value"));
        match arg.as_str() {
            "--events" => a.events = val().parse().unwrap(),
            "--sizes" => a.sizes = val().split(',').map(|s| s.parse().unwrap()).collect(),
            "--runs" => a.runs = val().parse().unwrap(),
            "--base" => a.base = val().parse().unwrap(),
            "--full" => a.base = 1_000_000,
            "--trials" => a.trials = val().parse().unwrap(),
            "--anchor" => a.anchor = true,
            "--dir" => a.dir = PathBuf::from(val()),
            "--bench" => {}
            other => panic!(
                "unknown argument {other}; use --events N, --sizes A,B, --runs R, --base M, \
                 --full, --trials T, --anchor, --dir PATH"
            ),
        }
    }
    a
}

fn open(dir: &Path, seed: u8) -> XaeroFlux {
    let mut net = NetworkOptions::for_data_dir(dir);
    net.config.bind_addr = NetConfig::loopback().bind_addr;
    XaeroFlux::builder(dir)
        .identity(XaeroKeypair::generate_from_seed(&[seed; 32]))
        .network(net)
        .open()
        .unwrap()
}

fn count(s: &XaeroFlux) -> u64 {
    s.read().unwrap().event_count().unwrap()
}

/// Polls (1 ms) until `s` holds `n` events.
fn wait_count(s: &XaeroFlux, n: u64) {
    let deadline = Instant::now() + DEADLINE;
    while count(s) < n {
        assert!(
            Instant::now() < deadline,
            "no convergence: {} of {n}",
            count(s)
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Writes `n` events of `size` bytes to the default group, then flushes.
fn fill(s: &XaeroFlux, n: u64, size: usize) {
    let mut p = vec![0x5a; size];
    let g = s.default_group();
    for i in 0..n {
        p[..8].copy_from_slice(&i.to_le_bytes());
        s.write_event_to(g, &p, TYPE).unwrap();
    }
    s.flush().unwrap();
}

/// Traffic with the peer `endpoint` as `s` counts it.
fn peer(s: &XaeroFlux, endpoint: [u8; 32]) -> PeerInfo {
    s.peers()
        .unwrap()
        .into_iter()
        .find(|p| p.endpoint == endpoint)
        .expect("peer listed")
}

struct Initial {
    size: usize,
    n: u64,
    secs: f64,
    /// A's local durable ingest of the same events: writes and `flush()`.
    ingest_secs: f64,
    /// UDP datagram bytes, both directions, as B counts them.
    udp: u64,
    /// Sync frame bytes, both directions.
    frames_bytes: u64,
    frames: u64,
}

/// A writes `n` events; B joins and catches up. Returns the measurement and the two
/// open nodes (for the catch-up part).
fn initial(dir: &Path, n: u64, size: usize) -> (Initial, XaeroFlux, XaeroFlux) {
    let a = open(&dir.join("a"), 1);
    let t = Instant::now();
    fill(&a, n, size);
    let ingest_secs = t.elapsed().as_secs_f64();
    let b = open(&dir.join("b"), 2);
    let invite = a.ticket(&a.default_group(), true).unwrap();
    let t = Instant::now();
    b.join(&invite).unwrap();
    wait_count(&b, n);
    let secs = t.elapsed().as_secs_f64();
    let tr = peer(&b, a.node_addr().unwrap().endpoint).traffic;
    let m = Initial {
        size,
        n,
        secs,
        ingest_secs,
        udp: tr.udp_bytes_sent + tr.udp_bytes_received,
        frames_bytes: tr.bytes_sent + tr.bytes_received,
        frames: tr.frames_sent + tr.frames_received,
    };
    (m, a, b)
}

/// Frames each way and bytes of one catch-up.
#[derive(Debug, Clone, Copy, Default)]
struct OneEvent {
    a_to_b: u64,
    b_to_a: u64,
    frame_bytes: u64,
    udp: u64,
    ms: f64,
}

fn delta(before: &PeerInfo, after: &PeerInfo) -> (u64, u64, u64) {
    let (x, y) = (before.traffic, after.traffic);
    (
        y.frames_sent - x.frames_sent,
        (y.bytes_sent + y.bytes_received) - (x.bytes_sent + x.bytes_received),
        (y.udp_bytes_sent + y.udp_bytes_received) - (x.udp_bytes_sent + x.udp_bytes_received),
    )
}

/// Waits until no frame moved between A and B for 300 ms (the tail of a catch-up has
/// drained; anti-entropy rounds are 1 s apart).
fn settle(a: &XaeroFlux, b: &XaeroFlux) {
    let eb = b.node_addr().unwrap().endpoint;
    let mut last = peer(a, eb).traffic;
    let mut quiet = Instant::now();
    while quiet.elapsed() < Duration::from_millis(300) {
        std::thread::sleep(Duration::from_millis(10));
        let now = peer(a, eb).traffic;
        if now != last {
            last = now;
            quiet = Instant::now();
        }
    }
}

/// One event written on A while B is connected: counted on both ends.
fn live_push(a: &XaeroFlux, b: &XaeroFlux) -> OneEvent {
    settle(a, b);
    let (ea, eb) = (
        a.node_addr().unwrap().endpoint,
        b.node_addr().unwrap().endpoint,
    );
    let n = count(b);
    let (pa, pb) = (peer(a, eb), peer(b, ea));
    let t = Instant::now();
    a.write_event(&[7; 128], TYPE).unwrap();
    wait_count(b, n + 1);
    let ms = t.elapsed().as_secs_f64() * 1e3;
    let (fa, _, _) = delta(&pa, &peer(a, eb));
    let (fb, bytes, udp) = delta(&pb, &peer(b, ea));
    OneEvent {
        a_to_b: fa,
        b_to_a: fb,
        frame_bytes: bytes,
        udp,
        ms,
    }
}

/// B goes offline, A writes one event, B reopens (redialling A from its remembered
/// peers) and fetches it. Counted by the fresh node B: the whole new connection.
fn reconnect(a: &XaeroFlux, b: XaeroFlux, dir: &Path) -> (OneEvent, XaeroFlux) {
    let ea = a.node_addr().unwrap().endpoint;
    let n = count(&b);
    b.close().unwrap();
    a.write_event(&[8; 128], TYPE).unwrap();
    a.flush().unwrap();
    let t = Instant::now();
    let b = open(&dir.join("b"), 2);
    wait_count(&b, n + 1);
    let ms = t.elapsed().as_secs_f64() * 1e3;
    let tr = peer(&b, ea).traffic;
    let one = OneEvent {
        a_to_b: tr.frames_received,
        b_to_a: tr.frames_sent,
        frame_bytes: tr.bytes_sent + tr.bytes_received,
        udp: tr.udp_bytes_sent + tr.udp_bytes_received,
        ms,
    };
    (one, b)
}

/// Hypercore replication rate (blocks/s) and wire bytes received, from the anchor's
/// output.
fn hypercore(n: u64, size: usize) -> Option<(f64, f64)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("sync");
    if !dir.join("node_modules").exists() {
        eprintln!("anchor skipped: run `npm install` in {}", dir.display());
        return None;
    }
    let out = Command::new("node")
        .arg("hypercore_anchor.js")
        .arg(n.to_string())
        .arg(size.to_string())
        .current_dir(&dir)
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    eprint!("{text}");
    let line = text.lines().find(|l| l.starts_with("replicate"))?;
    let rate = line
        .split("=> ")
        .nth(1)?
        .split(' ')
        .next()?
        .parse::<f64>()
        .ok()?;
    let mb = line
        .split("received by B ")
        .nth(1)?
        .split(' ')
        .next()?
        .parse::<f64>()
        .ok()?;
    Some((rate, mb * 1e6))
}

/// The 1, 5 and 15 minute load averages, as the kernel reports them.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

fn main() {
    let args = parse_args();
    let load_start = load_average();
    std::fs::create_dir_all(&args.dir).unwrap();
    let root = tempfile::Builder::new()
        .prefix("sync-bench-")
        .tempdir_in(&args.dir)
        .unwrap();
    let mut rows = Vec::new();
    // Index in `rows` of the first run of each size (the anchor pairs with it).
    let mut first_run = Vec::new();
    for &size in &args.sizes {
        first_run.push(rows.len());
        for run in 0..args.runs.max(1) {
            let dir = root.path().join(format!("initial-{size}-{run}"));
            eprintln!("initial sync {}: {} x {size} B ...", run + 1, args.events);
            let (m, a, b) = initial(&dir, args.events, size);
            eprintln!(
                "  {:.0} events/s received, local ingest {:.0} events/s",
                m.n as f64 / m.secs,
                m.n as f64 / m.ingest_secs
            );
            a.close().unwrap();
            b.close().unwrap();
            std::fs::remove_dir_all(&dir).unwrap();
            rows.push(m);
        }
    }

    eprintln!("catch-up base: {} x 128 B ...", args.base);
    let dir = root.path().join("catchup");
    let (base, a, mut b) = initial(&dir, args.base, 128);
    eprintln!("  base synced at {:.0} events/s", base.n as f64 / base.secs);
    let mut live = Vec::new();
    let mut recon = Vec::new();
    for _ in 0..args.trials {
        live.push(live_push(&a, &b));
    }
    for _ in 0..args.trials {
        let (r, nb) = reconnect(&a, b, &dir);
        recon.push(r);
        b = nb;
    }
    let verified = b.verify(|_, _| {}).unwrap();
    assert_eq!(verified.events, count(&a), "b differs from a");
    a.close().unwrap();
    b.close().unwrap();

    // The anchor replicates the same count and sizes, after ours (not concurrently).
    // (index of the size in `--sizes`, hence of our row it pairs with, size, rate, wire)
    let anchors: Vec<(usize, usize, f64, f64)> = if args.anchor {
        args.sizes
            .iter()
            .enumerate()
            .filter_map(|(i, &size)| {
                hypercore(args.events, size).map(|(r, w)| (first_run[i], size, r, w))
            })
            .collect()
    } else {
        Vec::new()
    };

    println!();
    println!(
        "Initial sync A -> empty B, loopback, one process ({} cores)",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!(
        "| payload | events | join -> all (s) | events/s | local ingest events/s | received / ingest | UDP bytes | UDP / payload | UDP / (payload + {HEADER_LEN} B header) | frame bytes / payload | frames |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    for m in rows.iter().chain(std::iter::once(&base)) {
        let payload = m.n * m.size as u64;
        let with_headers = m.n * (m.size + HEADER_LEN) as u64;
        println!(
            "| {} B | {} | {:.2} | {:.0} | {:.0} | {:.2}x | {} | {:.3} | {:.3} | {:.3} | {} |",
            m.size,
            m.n,
            m.secs,
            m.n as f64 / m.secs,
            m.n as f64 / m.ingest_secs,
            m.ingest_secs / m.secs,
            m.udp,
            m.udp as f64 / payload as f64,
            m.udp as f64 / with_headers as f64,
            m.frames_bytes as f64 / payload as f64,
            m.frames,
        );
    }
    println!();
    println!("Worst run per size (goal: UDP / (payload + header) <= 1.10 in every run):");
    println!(
        "| payload | runs | UDP / (payload + header) worst | median | frame bytes / (payload + header) worst |"
    );
    println!("|---|---|---|---|---|");
    for &size in &args.sizes {
        let runs: Vec<&Initial> = rows.iter().filter(|m| m.size == size).collect();
        let per =
            |m: &Initial, bytes: u64| bytes as f64 / (m.n * (m.size + HEADER_LEN) as u64) as f64;
        let mut udp: Vec<f64> = runs.iter().map(|m| per(m, m.udp)).collect();
        udp.sort_by(f64::total_cmp);
        let frames = runs
            .iter()
            .map(|m| per(m, m.frames_bytes))
            .fold(0.0, f64::max);
        println!(
            "| {size} B | {} | {:.3} | {:.3} | {frames:.3} |",
            runs.len(),
            udp.last().copied().unwrap_or(f64::NAN),
            udp[udp.len() / 2],
        );
    }
    println!();
    println!(
        "Receiver rate against the local durable ingest of the same events, same run (goal >= 0.5x):"
    );
    println!("| payload | runs | received / ingest median | worst | best |");
    println!("|---|---|---|---|---|");
    for &size in &args.sizes {
        let mut r: Vec<f64> = rows
            .iter()
            .filter(|m| m.size == size)
            .map(|m| m.ingest_secs / m.secs)
            .collect();
        r.sort_by(f64::total_cmp);
        println!(
            "| {size} B | {} | {:.2}x | {:.2}x | {:.2}x |",
            r.len(),
            r[r.len() / 2],
            r.first().copied().unwrap_or(f64::NAN),
            r.last().copied().unwrap_or(f64::NAN),
        );
    }
    println!(
        "load average: {load_start} at the start, {} now",
        load_average()
    );
    println!();
    println!(
        "Catch-up of 1 event (128 B) into a group of {} events, {} trials",
        args.base, args.trials
    );
    println!("| path | trial | frames A->B | frames B->A | frame bytes | UDP bytes | ms |");
    println!("|---|---|---|---|---|---|---|");
    for (name, v) in [("live push", &live), ("reconnect", &recon)] {
        for (i, o) in v.iter().enumerate() {
            println!(
                "| {name} | {} | {} | {} | {} | {} | {:.1} |",
                i + 1,
                o.a_to_b,
                o.b_to_a,
                o.frame_bytes,
                o.udp,
                o.ms
            );
        }
    }
    if !anchors.is_empty() {
        println!();
        println!(
            "| anchor | events | blocks/s | wire bytes received | wire / payload | ours events/s | ours / hypercore |"
        );
        println!("|---|---|---|---|---|---|---|");
        // Each anchor run is paired with our run of the same position in `--sizes`.
        for &(i, size, rate, wire) in &anchors {
            let r = rows[i].n as f64 / rows[i].secs;
            println!(
                "| hypercore 11 (TCP) | {} x {size} B | {rate:.0} | {wire:.0} | {:.3} | {r:.0} | {:.2}x |",
                args.events,
                wire / (args.events as f64 * size as f64),
                r / rate
            );
        }
        let mut sizes: Vec<usize> = anchors.iter().map(|a| a.1).collect();
        sizes.sort_unstable();
        sizes.dedup();
        for size in sizes {
            let runs: Vec<_> = anchors.iter().filter(|a| a.1 == size).collect();
            let ours: f64 = runs
                .iter()
                .map(|a| rows[a.0].n as f64 / rows[a.0].secs)
                .sum();
            let theirs: f64 = runs.iter().map(|a| a.2).sum();
            println!(
                "{size} B over {} runs: ours {:.0} events/s, hypercore {:.0} blocks/s: {:.2}x",
                runs.len(),
                ours / runs.len() as f64,
                theirs / runs.len() as f64,
                ours / theirs
            );
        }
    }
}
