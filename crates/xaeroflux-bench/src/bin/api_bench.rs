//! The local HTTP API against the library, in the same run.
//!
//! 1. Batch ingest: NDJSON batches of 1 KiB events through `POST /v1/events/batch`
//!    against the library's `write_event` + `flush` (anchor). Goal: >= 0.5x.
//! 2. Single-event writes over the API (`POST /v1/events`, each durable on return,
//!    `Durability::Batched`): p50 and p99 latency, with the library's
//!    `write_event` + `flush` latency as the anchor.
//! 3. SSE fan-out: SUBS subscribers on `GET /v1/subscribe` while EVENTS events are
//!    written; every subscriber must receive every event, in order (asserted). The
//!    subscribers run in a child process (this binary with `--subscribers`), so the
//!    server's memory is measured alone: the peak RSS growth of the serving process
//!    divided by the subscribers. Reports the delivery lag (write to receipt)
//!    p50/p99/worst.
//!
//! `cargo run --release -p xaeroflux-bench --bin api_bench [-- INGEST SUBS EVENTS [ROWS]]`
//! (defaults 20000 1000 20000 all; ROWS: any of `ingest,latency,fanout`). The issue's
//! fan-out size is `0 1000 100000 fanout`; it does not finish in reasonable time yet.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use xaeroflux::{Durability, XaeroFlux};
use xaeroflux_api::model::WriteRequest;
use xaeroflux_api::{ApiOptions, ApiServer, Client};

const RUNS: usize = 3;
const BATCH: usize = 1000;
const EVENT_TYPE: u32 = 1000;
/// Batches in flight in the second API row.
const INFLIGHT: usize = 2;
/// Every this many events a subscriber samples the delivery lag.
const LAG_SAMPLE: usize = 100;

fn open(dir: &std::path::Path) -> Arc<XaeroFlux> {
    Arc::new(
        XaeroFlux::builder(dir)
            .offline()
            .durability(Durability::Batched)
            .open()
            .expect("open store"),
    )
}

fn serve(store: Arc<XaeroFlux>) -> (ApiServer, Client, String) {
    let token = xaeroflux_api::generate_token().expect("token");
    let server = ApiServer::start(
        store,
        &"127.0.0.1:0".parse().expect("addr"),
        ApiOptions::new(&token),
    )
    .expect("serve");
    let url = server.url().expect("tcp");
    let client = Client::new(&url, &token);
    (server, client, token)
}

fn payload_1k(i: usize) -> String {
    let mut s = format!("event {i:08} ");
    while s.len() < 1024 {
        s.push_str("lorem ipsum dolor sit amet ");
    }
    s.truncate(1024);
    s
}

fn median_worst(mut v: Vec<f64>, higher_is_better: bool) -> (f64, f64) {
    v.sort_by(f64::total_cmp);
    let med = v[v.len() / 2];
    let worst = if higher_is_better {
        v[0]
    } else {
        v[v.len() - 1]
    };
    (med, worst)
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|n| n.parse().ok()))
        })
        .unwrap_or(0)
}

fn ingest(n: usize) {
    let payloads: Vec<String> = (0..n).map(payload_1k).collect();
    let mut lib = Vec::new();
    let mut api = Vec::new();
    let mut api2 = Vec::new();
    for _ in 0..RUNS {
        let dir = tempfile::tempdir().expect("tmp");
        let store = open(dir.path());
        let t = Instant::now();
        for p in &payloads {
            store.write_event(p.as_bytes(), EVENT_TYPE).expect("write");
        }
        store.flush().expect("flush");
        lib.push(n as f64 / t.elapsed().as_secs_f64());
        drop(store);

        let dir = tempfile::tempdir().expect("tmp");
        let (server, client, _) = serve(open(dir.path()));
        let bodies: Vec<Vec<u8>> = payloads
            .chunks(BATCH)
            .map(|c| {
                let mut b = Vec::with_capacity(c.len() * 1100);
                for p in c {
                    serde_json::to_writer(
                        &mut b,
                        &WriteRequest {
                            text: Some(p.clone()),
                            ..WriteRequest::default()
                        },
                    )
                    .expect("json");
                    b.push(b'\n');
                }
                b
            })
            .collect();
        let t = Instant::now();
        let mut ids = 0;
        for b in &bodies {
            ids += client.write_batch(b).expect("batch").ids.len();
        }
        api.push(n as f64 / t.elapsed().as_secs_f64());
        assert_eq!(ids, n);
        server.shutdown();

        // The same batches from two connections, so the next batch is parsed while the
        // previous one commits (what a bulk importer does).
        let dir = tempfile::tempdir().expect("tmp");
        let (server, client, _) = serve(open(dir.path()));
        let t = Instant::now();
        let ids: usize = std::thread::scope(|sc| {
            let hs: Vec<_> = (0..INFLIGHT)
                .map(|k| {
                    let (client, bodies) = (client.clone(), &bodies);
                    sc.spawn(move || {
                        bodies
                            .iter()
                            .skip(k)
                            .step_by(INFLIGHT)
                            .map(|b| client.write_batch(b).expect("batch").ids.len())
                            .sum::<usize>()
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().expect("sender")).sum()
        });
        api2.push(n as f64 / t.elapsed().as_secs_f64());
        assert_eq!(ids, n);
        server.shutdown();
    }
    let (lm, lw) = median_worst(lib.clone(), true);
    let (am, aw) = median_worst(api.clone(), true);
    let (bm, bw) = median_worst(api2.clone(), true);
    println!("## 1. batch ingest, {n} events of 1 KiB, batches of {BATCH}, {RUNS} runs");
    println!("| path | median events/s | worst events/s |");
    println!("|---|---:|---:|");
    println!("| library write_event + flush (anchor) | {lm:.0} | {lw:.0} |");
    println!("| API POST /v1/events/batch (NDJSON), one batch at a time | {am:.0} | {aw:.0} |");
    println!("| API, {INFLIGHT} batches in flight (two connections) | {bm:.0} | {bw:.0} |");
    println!(
        "| ratio API / library, one at a time (goal >= 0.5) | {:.2} | {:.2} |",
        am / lm,
        aw / lw
    );
    println!(
        "| ratio API / library, {INFLIGHT} in flight (goal >= 0.5) | {:.2} | {:.2} |",
        bm / lm,
        bw / lw
    );
    println!();
}

fn latency(n: usize) {
    let dir = tempfile::tempdir().expect("tmp");
    let store = open(dir.path());
    let mut lib = Vec::with_capacity(n);
    for i in 0..n {
        let t = Instant::now();
        store
            .write_event(format!("lib {i}").as_bytes(), EVENT_TYPE)
            .expect("write");
        store.flush().expect("flush");
        lib.push(t.elapsed().as_secs_f64() * 1e6);
    }
    let (server, client, _) = serve(store);
    let mut api = Vec::with_capacity(n);
    for i in 0..n {
        let req = WriteRequest {
            text: Some(format!("api {i}")),
            ..WriteRequest::default()
        };
        let t = Instant::now();
        client.write(&req).expect("write");
        api.push(t.elapsed().as_secs_f64() * 1e6);
    }
    server.shutdown();
    lib.sort_by(f64::total_cmp);
    api.sort_by(f64::total_cmp);
    println!("## 2. single durable write, {n} sequential writes, Durability::Batched");
    println!("| path | p50 µs | p99 µs | worst µs |");
    println!("|---|---:|---:|---:|");
    println!(
        "| library write_event + flush (anchor) | {:.0} | {:.0} | {:.0} |",
        pct(&lib, 0.5),
        pct(&lib, 0.99),
        lib[lib.len() - 1]
    );
    println!(
        "| API POST /v1/events | {:.0} | {:.0} | {:.0} |",
        pct(&api, 0.5),
        pct(&api, 0.99),
        api[api.len() - 1]
    );
    println!(
        "| ratio API / library p50 | {:.2} | | |",
        pct(&api, 0.5) / pct(&lib, 0.5)
    );
    println!();
}

/// One SSE subscriber on a raw socket: counts events, checks ids are consecutive,
/// samples the lag of every `LAG_SAMPLE`th event (µs) against the write time in the
/// payload (`t=NANOS`, Unix time in nanoseconds). Calls `ready` once the
/// response headers arrived (the subscription exists).
fn subscriber(
    addr: &str,
    token: &str,
    events: usize,
    ready: impl FnOnce(),
) -> (usize, bool, Vec<f64>) {
    let mut s = TcpStream::connect(addr).expect("connect");
    write!(
        s,
        "GET /v1/subscribe HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nAccept: text/event-stream\r\n\r\n"
    )
    .expect("request");
    let mut r = BufReader::with_capacity(64 * 1024, s);
    let mut line = Vec::with_capacity(1024);
    // Headers, up to the blank line.
    loop {
        line.clear();
        if r.read_until(b'\n', &mut line).expect("read") == 0 {
            return (0, false, Vec::new());
        }
        if line == b"\r\n" {
            break;
        }
    }
    ready();
    let mut got = 0;
    let mut in_order = true;
    let mut last: Option<u64> = None;
    let mut lags = Vec::new();
    while got < events {
        line.clear();
        if r.read_until(b'\n', &mut line).expect("read") == 0 {
            break;
        }
        // Chunked transfer: size lines and blank lines between messages are skipped.
        if let Some(id) = line.strip_prefix(b"id: ") {
            let id: u64 = std::str::from_utf8(id)
                .ok()
                .and_then(|s| s.trim().parse().ok())
                .unwrap_or(u64::MAX);
            if last.is_some_and(|l| id != l + 1) {
                in_order = false;
            }
            last = Some(id);
            got += 1;
        } else if got % LAG_SAMPLE == 0
            && let Some(i) = line.windows(10).position(|w| w == b"\"text\":\"t=")
        {
            let rest = &line[i + 10..];
            if let Some(end) = rest.iter().position(|&c| c == b' ')
                && let Some(ns) = std::str::from_utf8(&rest[..end])
                    .ok()
                    .and_then(|s| s.parse::<u128>().ok())
            {
                let now = unix_ns();
                lags.push(now.saturating_sub(ns) as f64 / 1e3);
            }
        }
    }
    (got, in_order, lags)
}

fn unix_ns() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

/// The child process: `--subscribers ADDR TOKEN SUBS EVENTS`. Prints `ready` once all
/// are subscribed, then one line `done COMPLETE ORDERED DELIVERIES` and the lag
/// samples (`lag MICROS` lines).
fn subscribers_main(mut args: impl Iterator<Item = String>) {
    let addr = args.next().expect("addr");
    let token = args.next().expect("token");
    let subs: usize = args.next().and_then(|a| a.parse().ok()).expect("subs");
    let events: usize = args.next().and_then(|a| a.parse().ok()).expect("events");
    let ready = Arc::new(std::sync::Barrier::new(subs + 1));
    let handles: Vec<_> = (0..subs)
        .map(|_| {
            let (addr, token, ready) = (addr.clone(), token.clone(), ready.clone());
            std::thread::Builder::new()
                .stack_size(128 * 1024)
                .spawn(move || {
                    subscriber(&addr, &token, events, || {
                        ready.wait();
                    })
                })
                .expect("thread")
        })
        .collect();
    ready.wait();
    println!("ready");
    let mut out = std::io::stdout().lock();
    let (mut complete, mut ordered, mut all) = (0, true, 0);
    let mut lags = Vec::new();
    for h in handles {
        let (got, ord, l) = h.join().expect("subscriber");
        all += got;
        ordered &= ord;
        complete += usize::from(got == events);
        lags.extend(l);
    }
    writeln!(out, "done {complete} {ordered} {all}").expect("stdout");
    for l in lags {
        writeln!(out, "lag {l:.0}").expect("stdout");
    }
}

fn fanout(subs: usize, events: usize) {
    let dir = tempfile::tempdir().expect("tmp");
    let store = open(dir.path());
    let (server, client, token) = serve(store.clone());
    let addr = client.base().trim_start_matches("http://").to_string();
    let rss0 = rss_kib();
    let mut child = std::process::Command::new(std::env::current_exe().expect("exe"))
        .args([
            "--subscribers",
            &addr,
            &token,
            &subs.to_string(),
            &events.to_string(),
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn subscribers");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    assert_eq!(lines.next().and_then(Result::ok).as_deref(), Some("ready"));
    let rss1 = rss_kib();
    // Peak server RSS while events are written and delivered.
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = {
        let done = done.clone();
        std::thread::spawn(move || {
            let mut peak = 0;
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                peak = peak.max(rss_kib());
                std::thread::sleep(Duration::from_millis(50));
            }
            peak
        })
    };
    let t = Instant::now();
    for i in 0..events {
        let p = format!("t={} pad {i}", unix_ns());
        store.write_event(p.as_bytes(), EVENT_TYPE).expect("write");
        if i % 1000 == 999 {
            store.flush().expect("flush");
        }
    }
    store.flush().expect("flush");
    let write_s = t.elapsed().as_secs_f64();
    let summary = lines.next().and_then(Result::ok).expect("summary");
    let total_s = t.elapsed().as_secs_f64();
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let peak = sampler.join().expect("sampler");
    let mut lags: Vec<f64> = lines
        .map_while(Result::ok)
        .filter_map(|l| l.strip_prefix("lag ").and_then(|v| v.parse().ok()))
        .collect();
    let _ = child.wait();
    server.shutdown();
    let f: Vec<&str> = summary.split_whitespace().collect();
    let (complete, ordered, all): (usize, bool, usize) = (
        f[1].parse().expect("complete"),
        f[2] == "true",
        f[3].parse().expect("deliveries"),
    );
    lags.sort_by(f64::total_cmp);
    println!("## 3. SSE fan-out: {subs} subscribers, {events} events written");
    println!("| measure | value |");
    println!("|---|---:|");
    println!(
        "| subscribers that got every event, in order | {complete} / {subs} (ordered: {ordered}) |"
    );
    println!("| deliveries | {all} of {} |", subs * events);
    println!("| write time / all delivered | {write_s:.2} s / {total_s:.2} s |");
    println!("| deliveries per second | {:.0} |", all as f64 / total_s);
    println!(
        "| delivery lag p50 / p99 / worst ({} samples) | {:.1} ms / {:.1} ms / {:.1} ms |",
        lags.len(),
        pct(&lags, 0.5) / 1e3,
        pct(&lags, 0.99) / 1e3,
        lags.last().copied().unwrap_or(f64::NAN) / 1e3
    );
    println!(
        "| server memory per subscriber: connected (RSS delta) / peak during delivery | {:.1} KiB / {:.1} KiB |",
        rss1.saturating_sub(rss0) as f64 / subs as f64,
        peak.saturating_sub(rss0) as f64 / subs as f64
    );
    println!();
    assert_eq!(all, subs * events, "every subscriber gets every event");
    assert_eq!(complete, subs);
    assert!(ordered, "in order, nothing repeated");
}

fn main() {
    let mut raw = std::env::args().skip(1).peekable();
    if raw.peek().map(String::as_str) == Some("--subscribers") {
        raw.next();
        subscribers_main(raw);
        return;
    }
    let args: Vec<String> = raw.collect();
    let num = |i: usize, d: usize| args.get(i).and_then(|a| a.parse().ok()).unwrap_or(d);
    let ingest_n = num(0, 20_000);
    let subs = num(1, 1000);
    let events = num(2, 20_000);
    let rows = args.get(3).map_or("ingest,latency,fanout", String::as_str);
    if rows.contains("ingest") {
        ingest(ingest_n);
    }
    if rows.contains("latency") {
        latency(2000);
    }
    if rows.contains("fanout") {
        fanout(subs, events);
    }
}
