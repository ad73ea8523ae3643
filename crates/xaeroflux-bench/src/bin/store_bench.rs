//! Store write throughput against its anchors: XaeroFlux `write_event` + one final
//! `flush` (hashing, both MMRs, checkpoint signing) vs raw LMDB keyed by BLAKE3 hash,
//! raw LMDB keyed by sequence with `APPEND`, and a plain file with `fdatasync`; the
//! floors (the hashing and MMR work alone, in memory); plus open time, RSS after open
//! and random `get(id)` rate of the large store.
//!
//! `cargo run --release -p xaeroflux-bench --bin store_bench -- [--events N]
//! [--hash-events N] [--dir PATH] [--repeat N] [--only-ours] [--size BYTES]
//! [--hash-chunk N]`
//!
//! `--repeat N` runs every implementation N times, interleaved, and reports medians
//! (and every run), because this machine's disk and page cache vary a lot between
//! runs; (a) runs once.
#![allow(clippy::unwrap_used)]

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use heed::types::Bytes;
use heed::{CommitOrAbort, Database, EnvOpenOptions, PutFlags};
use xaeroflux::{Durability, EventId, Options, XaeroFlux};
use xaeroflux_core::event::encode_into;
use xaeroflux_core::mmr::{MemStore, Mmr, leaf_hash};
use xaeroflux_core::{AuthorId, EventHeader, GroupId, Hlc};

/// Events per commit / per sync of the anchors.
const PER_COMMIT: u64 = 1000;

struct Args {
    events: u64,
    hash_events: u64,
    dir: PathBuf,
    open_child: Option<PathBuf>,
    /// Run only `ours` (for profiling).
    only_ours: bool,
    /// Payload sizes to run.
    sizes: Vec<usize>,
    /// Rounds of every implementation; the table shows medians.
    repeat: usize,
    /// Ids per hash index flush (`Options::hash_index_chunk`); a small chunk makes a
    /// short run show the id index of a much larger store (table / chunk ratio).
    hash_chunk: Option<usize>,
}

const USAGE: &str = "usage: store_bench [--events N] [--hash-events N] [--dir PATH] \
    [--only-ours] [--size BYTES] [--hash-chunk N] [--repeat N]";

fn parse_args() -> Args {
    let mut a = Args {
        events: 1_000_000,
        hash_events: 0,
        dir: PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target-store/bench-tmp"),
        open_child: None,
        only_ours: false,
        sizes: vec![64, 1024],
        hash_chunk: None,
        repeat: 1,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut val = || it.next().unwrap_or_else(|| panic!("{arg} needs a value"));
        match arg.as_str() {
            "--events" => a.events = val().parse().unwrap(),
            "--hash-events" => a.hash_events = val().parse().unwrap(),
            "--dir" => a.dir = PathBuf::from(val()),
            "--open-child" => a.open_child = Some(PathBuf::from(val())),
            "--only-ours" => a.only_ours = true,
            "--size" => a.sizes = vec![val().parse().unwrap()],
            "--hash-chunk" => a.hash_chunk = Some(val().parse().unwrap()),
            "--repeat" => a.repeat = val().parse::<usize>().unwrap().max(1),
            "--bench" => {}
            "--help" | "-h" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => {
                eprintln!("store_bench: unknown argument {other}\n{USAGE}");
                std::process::exit(2);
            }
        }
    }
    if a.hash_events == 0 {
        a.hash_events = a.events;
    }
    a
}

/// Payload of event `i`: distinct per event.
fn fill(buf: &mut [u8], i: u64) {
    let n = buf.len().min(8);
    buf[..n].copy_from_slice(&i.to_le_bytes()[..n]);
}

fn payload_template(size: usize) -> Vec<u8> {
    (0..size).map(|i| (i * 31 + 7) as u8).collect()
}

fn rate(n: u64, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64()
}

fn ours(dir: &Path, n: u64, size: usize, hash_chunk: Option<usize>) -> Duration {
    let mut opts = Options::new(dir);
    opts.durability = Durability::Batched;
    if let Some(chunk) = hash_chunk {
        opts.hash_index_chunk = chunk;
    }
    let store = XaeroFlux::builder(dir).options(opts).open().unwrap();
    let mut p = payload_template(size);
    let t = Instant::now();
    for i in 0..n {
        fill(&mut p, i);
        store.write_event(&p, 1000).unwrap();
    }
    let produced = t.elapsed();
    store.flush().unwrap();
    let d = t.elapsed();
    let st = store.stats().unwrap();
    store.close().unwrap();
    eprintln!(
        "  ours {size} B: producer loop {:.0} ms, flush wait {:.0} ms; id index: {} runs, \
         longest flush {:.1} ms; on disk: lmdb {:.1} MB, pages {:.1} MB",
        produced.as_secs_f64() * 1e3,
        (d - produced).as_secs_f64() * 1e3,
        st.hash_index_runs,
        st.hash_index_longest_flush.as_secs_f64() * 1e3,
        st.disk_bytes.0 as f64 / 1e6,
        st.disk_bytes.1 as f64 / 1e6
    );
    d
}

fn raw_env(dir: &Path) -> (heed::Env, Database<'static, Bytes, Bytes>) {
    raw_env_named(dir, "events")
}

fn raw_env_named(dir: &Path, name: &str) -> (heed::Env, Database<'static, Bytes, Bytes>) {
    std::fs::create_dir_all(dir).unwrap();
    let mut opts = EnvOpenOptions::new();
    opts.map_size(64 << 30).max_dbs(2);
    // SAFETY: a fresh directory used by this process only, opened once.
    let env = unsafe { opts.open(dir) }.unwrap();
    let wtxn = env.write_txn().unwrap();
    let db = match env
        .create_databases_and_commit(wtxn, |opener, wtxn| {
            Ok::<_, heed::Error>(CommitOrAbort::Commit(
                opener.create_database::<Bytes, Bytes>(wtxn, Some(name))?,
            ))
        })
        .unwrap()
    {
        CommitOrAbort::Commit(db) => db,
        CommitOrAbort::Abort(()) => unreachable!(),
    };
    (env, db)
}

/// Raw LMDB, `PER_COMMIT` events per commit, keyed by BLAKE3 hash or (APPEND) by sequence.
fn raw_heed(dir: &Path, n: u64, size: usize, by_hash: bool) -> Duration {
    let (env, db) = raw_env(dir);
    let mut p = payload_template(size);
    let t = Instant::now();
    let mut i = 0;
    while i < n {
        let mut wtxn = env.write_txn().unwrap();
        for _ in 0..PER_COMMIT.min(n - i) {
            fill(&mut p, i);
            if by_hash {
                db.put(&mut wtxn, blake3::hash(&p).as_bytes(), &p).unwrap();
            } else {
                db.put_with_flags(&mut wtxn, PutFlags::APPEND, &i.to_be_bytes(), &p)
                    .unwrap();
            }
            i += 1;
        }
        wtxn.commit().unwrap();
    }
    let d = t.elapsed();
    env.prepare_for_closing().wait();
    d
}

/// (b) plus what the engine adds on top of it for lookups by id: a BLAKE3 id per event and
/// an id -> seq table filled in sorted chunks of the engine's default chunk size (the
/// engine's design, without its 8-byte key prefixes).
fn raw_seq_with_hash_index(dir: &Path, n: u64, size: usize) -> Duration {
    let hash_chunk = xaeroflux::Options::new(dir).hash_index_chunk;
    let (env, db) = raw_env(dir);
    let wtxn = env.write_txn().unwrap();
    let hashes: Database<'static, Bytes, Bytes> = match env
        .create_databases_and_commit(wtxn, |opener, wtxn| {
            Ok::<_, heed::Error>(CommitOrAbort::Commit(
                opener.create_database::<Bytes, Bytes>(wtxn, Some("hashes"))?,
            ))
        })
        .unwrap()
    {
        CommitOrAbort::Commit(db) => db,
        CommitOrAbort::Abort(()) => unreachable!(),
    };
    let mut p = payload_template(size);
    let mut pending: Vec<([u8; 32], u64)> = Vec::with_capacity(hash_chunk);
    let flush_index = |pending: &mut Vec<([u8; 32], u64)>| {
        pending.sort_unstable();
        let mut wtxn = env.write_txn().unwrap();
        for (id, seq) in pending.drain(..) {
            hashes.put(&mut wtxn, &id, &seq.to_be_bytes()).unwrap();
        }
        wtxn.commit().unwrap();
    };
    let t = Instant::now();
    let mut i = 0;
    while i < n {
        let mut wtxn = env.write_txn().unwrap();
        for _ in 0..PER_COMMIT.min(n - i) {
            fill(&mut p, i);
            pending.push((*blake3::hash(&p).as_bytes(), i));
            db.put_with_flags(&mut wtxn, PutFlags::APPEND, &i.to_be_bytes(), &p)
                .unwrap();
            i += 1;
        }
        wtxn.commit().unwrap();
        if pending.len() >= hash_chunk {
            flush_index(&mut pending);
        }
    }
    if !pending.is_empty() {
        flush_index(&mut pending);
    }
    let d = t.elapsed();
    env.prepare_for_closing().wait();
    d
}

/// A plain append-only file, `fdatasync` every `PER_COMMIT` events.
fn plain_file(dir: &Path, n: u64, size: usize) -> Duration {
    std::fs::create_dir_all(dir).unwrap();
    let file = File::create(dir.join("events.log")).unwrap();
    let mut w = BufWriter::with_capacity(1 << 20, file);
    let mut p = payload_template(size);
    let t = Instant::now();
    for i in 0..n {
        fill(&mut p, i);
        w.write_all(&(size as u32).to_le_bytes()).unwrap();
        w.write_all(&p).unwrap();
        if (i + 1) % PER_COMMIT == 0 {
            w.flush().unwrap();
            w.get_ref().sync_data().unwrap();
        }
    }
    w.flush().unwrap();
    w.get_ref().sync_data().unwrap();
    t.elapsed()
}

/// The per-event work no storage design can skip, in memory on one thread: (f1) the
/// canonical encoding and its BLAKE3 id (the producer's side), and (f2) the id's leaf
/// hash and pushing it into the node MMR and its author log's MMR, as the writer does:
/// a commit's leaves in one batched push per MMR. Upper bounds for any
/// implementation that hashes, and keeps both MMRs, on this machine.
fn floors(n: u64, size: usize) -> (Duration, Duration) {
    let header = EventHeader {
        event_type: 1000,
        group: GroupId([7; 32]),
        author: AuthorId([9; 32]),
        seq: 0,
        hlc: Hlc::from_u64(0),
    };
    let mut p = payload_template(size);
    let mut enc = Vec::with_capacity(size + 128);
    let mut ids = Vec::with_capacity(n as usize);
    let t = Instant::now();
    for i in 0..n {
        fill(&mut p, i);
        enc.clear();
        encode_into(&EventHeader { seq: i, ..header }, &p, &mut enc);
        ids.push(*blake3::hash(&enc).as_bytes());
    }
    let hashing = t.elapsed();
    let mut node = Mmr::new(MemStore::with_capacity(2 * n as usize), 0).unwrap();
    let mut log = Mmr::new(MemStore::with_capacity(2 * n as usize), 0).unwrap();
    let t = Instant::now();
    let mut leaves = Vec::with_capacity(8192);
    for batch in ids.chunks(8192) {
        leaves.clear();
        leaves.extend(batch.iter().map(leaf_hash));
        node.push_leaf_hashes(&leaves).unwrap();
        log.push_leaf_hashes(&leaves).unwrap();
    }
    let mmrs = t.elapsed();
    assert_eq!(node.root().unwrap(), log.root().unwrap());
    (hashing, mmrs)
}

/// The median of the runs (the upper one of an even count); 0 for none.
fn median(mut runs: Vec<f64>) -> f64 {
    runs.sort_by(f64::total_cmp);
    runs.get(runs.len() / 2).copied().unwrap_or(0.0)
}

fn vm_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

/// In a fresh process: open time, RSS after open, random `get(id)` rate.
fn open_child(dir: &Path) {
    let rss_before = vm_rss_kib();
    let t = Instant::now();
    let store = XaeroFlux::builder(dir)
        .durability(Durability::Batched)
        .open()
        .unwrap();
    let open = t.elapsed();
    let rss = vm_rss_kib();
    let count = store.read().unwrap().event_count().unwrap();
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let ids: Vec<EventId> = {
        let snap = store.read().unwrap();
        (0..100_000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                snap.get_local(x % count).unwrap().unwrap().event.id()
            })
            .collect()
    };
    let t = Instant::now();
    let mut bytes = 0usize;
    for id in &ids {
        bytes += store.get(id).unwrap().unwrap().payload.len();
    }
    let gets = t.elapsed();
    assert!(bytes > 0);
    // One checkpoint is signed per group commit: events per commit of the write run.
    let t = Instant::now();
    let report = store.verify(|_, _| {}).unwrap();
    let verify = t.elapsed();
    println!(
        "{} {} {} {} {} {}",
        open.as_micros(),
        rss,
        rss_before,
        rate(ids.len() as u64, gets),
        report.checkpoints,
        verify.as_millis()
    );
}

/// Removes a finished run's directory and waits until the system has written back
/// every dirty page: otherwise the next run shares the disk with the last one's
/// writeback (measured: our 1 KiB run after the 64 B anchors at half its rate).
fn settle(dir: &Path) {
    std::fs::remove_dir_all(dir).unwrap();
    let _ = Command::new("sync").status();
}

fn main() {
    let args = parse_args();
    if let Some(dir) = &args.open_child {
        open_child(dir);
        return;
    }
    let n = args.events;
    std::fs::create_dir_all(&args.dir).unwrap();
    let root = tempfile::Builder::new()
        .prefix("store-bench-")
        .tempdir_in(&args.dir)
        .unwrap();
    println!(
        "store_bench: {n} events per run ({} for raw-hash), {PER_COMMIT} per commit for the anchors, dir {}",
        args.hash_events,
        root.path().display()
    );
    let mut rows: Vec<(String, usize, f64, f64, f64)> = Vec::new();
    let mut open_report = None;
    let mut spread: Vec<String> = Vec::new();
    for &size in &args.sizes {
        // Each round runs every implementation once, in the same order; the table
        // shows each one's median over the rounds, so one slow run of the disk or page
        // cache (this machine varies by up to 2x between runs) moves no ratio alone.
        let mut runs: [Vec<f64>; 7] = Default::default();
        for round in 0..args.repeat {
            let d = root.path().join(format!("ours-{size}"));
            let t_ours = rate(n, ours(&d, n, size, args.hash_chunk));
            if size == 64 && !args.only_ours && round == 0 {
                let out = Command::new(std::env::current_exe().unwrap())
                    .arg("--open-child")
                    .arg(&d)
                    .output()
                    .unwrap();
                assert!(
                    out.status.success(),
                    "{}",
                    String::from_utf8_lossy(&out.stderr)
                );
                open_report = Some(String::from_utf8_lossy(&out.stdout).trim().to_string());
            }
            settle(&d);
            eprintln!("  ours {size} B: {t_ours:.0}/s");
            runs[0].push(t_ours);
            if args.only_ours {
                continue;
            }
            // (a) is 20-30x slower than the rest: once is enough.
            if round == 0 {
                let d = root.path().join(format!("hash-{size}"));
                let t_hash = rate(args.hash_events, raw_heed(&d, args.hash_events, size, true));
                settle(&d);
                eprintln!("  raw-hash {size} B: {t_hash:.0}/s");
                runs[1].push(t_hash);
            }
            let d = root.path().join(format!("seq-{size}"));
            let t_seq = rate(n, raw_heed(&d, n, size, false));
            settle(&d);
            eprintln!("  raw-seq {size} B: {t_seq:.0}/s");
            runs[2].push(t_seq);
            let d = root.path().join(format!("seqidx-{size}"));
            let t_seqidx = rate(n, raw_seq_with_hash_index(&d, n, size));
            settle(&d);
            eprintln!("  raw-seq+index {size} B: {t_seqidx:.0}/s");
            runs[3].push(t_seqidx);
            let d = root.path().join(format!("file-{size}"));
            let t_file = rate(n, plain_file(&d, n, size));
            settle(&d);
            eprintln!("  file {size} B: {t_file:.0}/s");
            runs[4].push(t_file);
            let (hashing, mmrs) = floors(n, size);
            let (t_hashing, t_mmrs) = (rate(n, hashing), rate(n, mmrs));
            eprintln!("  floors {size} B: encode+id {t_hashing:.0}/s, both MMRs {t_mmrs:.0}/s");
            runs[5].push(t_hashing);
            runs[6].push(t_mmrs);
        }
        if args.only_ours {
            continue;
        }
        if args.repeat > 1 {
            for (name, i) in [("ours", 0), ("(b)", 2), ("(c)", 4)] {
                let list: Vec<String> = runs[i].iter().map(|r| format!("{r:.0}")).collect();
                spread.push(format!("{size} B {name}: {}", list.join(" / ")));
            }
        }
        let [t_ours, t_hash, t_seq, t_seqidx, t_file, t_hashing, t_mmrs] = runs.map(median);
        for (name, r) in [
            ("xaeroflux write_event+flush", t_ours),
            ("(a) heed, BLAKE3 key", t_hash),
            ("(b) heed, u64 key APPEND", t_seq),
            (
                "(b') (b) + BLAKE3 id, id index in sorted 256k chunks",
                t_seqidx,
            ),
            ("(c) file + fdatasync", t_file),
            ("(f1) floor: encode + BLAKE3 id, in memory", t_hashing),
            ("(f2) floor: push into both MMRs, in memory", t_mmrs),
        ] {
            rows.push((name.to_string(), size, r, r / t_seq, r / t_file));
        }
    }
    println!();
    println!("| impl | payload | events/s | ratio to (b) | ratio to (c) |");
    println!("|---|---:|---:|---:|---:|");
    for (name, size, r, rb, rc) in &rows {
        println!("| {name} | {size} B | {r:.0} | {rb:.2} | {rc:.2} |");
    }
    if !spread.is_empty() {
        println!();
        println!("Medians of {} rounds; every round, events/s:", args.repeat);
        for line in &spread {
            println!("  {line}");
        }
    }
    if let Some(rep) = open_report {
        let f: Vec<&str> = rep.split_whitespace().collect();
        if let [open_us, rss, rss_before, gets, commits, verify_ms] = f[..] {
            let open_ms = open_us.parse::<f64>().unwrap_or(0.0) / 1000.0;
            println!();
            println!(
                "{n}-event store (64 B): open {open_ms:.1} ms (page cache warm), VmRSS after open {rss} KiB \
                 (before open {rss_before} KiB), random get(id): {:.0}/s (100k ids)",
                gets.parse::<f64>().unwrap_or(0.0)
            );
            let commits: f64 = commits.parse().unwrap_or(0.0);
            println!(
                "write run: {commits} group commits ({:.0} events/commit); verify() of the store: {verify_ms} ms",
                n as f64 / commits.max(1.0)
            );
        }
    }
}
