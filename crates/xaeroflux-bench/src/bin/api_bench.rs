//! The local HTTP API against the library, in the same run.
//!
//! 1. Batch ingest: NDJSON batches of 1 KiB events through `POST /v1/events/batch`
//!    against the library's `write_event` + `flush` (anchor). Goal: >= 0.5x.
//! 2. Single-event writes over the API (`POST /v1/events`, each durable on return,
//!    `Durability::Batched`): p50 and p99 latency, with the library's
//!    `write_event` + `flush` latency as the anchor.
//! 3. SSE fan-out: SUBS subscribers on `GET /v1/subscribe` while EVENTS events are
//!    written; every subscriber must receive every event in order. Reports the
//!    delivery lag (write to receipt) p50/p99 and the process memory per subscriber
//!    (client threads included, so an upper bound of the server's).
//!
//! `cargo run --release -p xaeroflux-bench --bin api_bench [-- INGEST SUBS EVENTS]`
//! (defaults 20000 1000 2000).

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
    }
    let (lm, lw) = median_worst(lib.clone(), true);
    let (am, aw) = median_worst(api.clone(), true);
    println!("## 1. batch ingest, {n} events of 1 KiB, batches of {BATCH}, {RUNS} runs");
    println!("| path | median events/s | worst events/s |");
    println!("|---|---:|---:|");
    println!("| library write_event + flush (anchor) | {lm:.0} | {lw:.0} |");
    println!("| API POST /v1/events/batch (NDJSON) | {am:.0} | {aw:.0} |");
    println!(
        "| ratio API / library (goal >= 0.5) | {:.2} | {:.2} |",
        am / lm,
        aw / lw
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
/// samples the lag of every 10th event (µs) against the time written in the payload.
fn subscriber(
    addr: String,
    token: String,
    events: usize,
    epoch: Instant,
) -> (usize, bool, Vec<f64>) {
    let mut s = TcpStream::connect(&addr).expect("connect");
    write!(
        s,
        "GET /v1/subscribe HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nAccept: text/event-stream\r\n\r\n"
    )
    .expect("request");
    let mut r = BufReader::with_capacity(16 * 1024, s);
    let mut line = String::new();
    let mut got = 0;
    let mut in_order = true;
    let mut last: Option<u64> = None;
    let mut lags = Vec::new();
    while got < events {
        line.clear();
        if r.read_line(&mut line).expect("read") == 0 {
            break;
        }
        if let Some(id) = line.strip_prefix("id: ") {
            let id: u64 = id.trim().parse().unwrap_or(u64::MAX);
            if last.is_some_and(|l| id != l + 1) {
                in_order = false;
            }
            last = Some(id);
            got += 1;
        } else if got % 10 == 0
            && let Some(i) = line.find("\"text\":\"t=")
        {
            let rest = &line[i + 10..];
            if let Some(end) = rest.find(' ')
                && let Ok(ns) = rest[..end].parse::<u128>()
            {
                let now = epoch.elapsed().as_nanos();
                lags.push(now.saturating_sub(ns) as f64 / 1e3);
            }
        }
    }
    (got, in_order, lags)
}

fn fanout(subs: usize, events: usize) {
    let dir = tempfile::tempdir().expect("tmp");
    let store = open(dir.path());
    let (server, client, token) = serve(store.clone());
    let addr = client.base().trim_start_matches("http://").to_string();
    let rss0 = rss_kib();
    let epoch = Instant::now();
    let handles: Vec<_> = (0..subs)
        .map(|_| {
            let (addr, token) = (addr.clone(), token.clone());
            std::thread::Builder::new()
                .stack_size(128 * 1024)
                .spawn(move || subscriber(addr, token, events, epoch))
                .expect("thread")
        })
        .collect();
    // Wait until every subscription is registered: a probe event reaches... each
    // stream starts at "now", so give the connections time to be accepted.
    std::thread::sleep(Duration::from_secs(2));
    let rss1 = rss_kib();
    let t = Instant::now();
    for i in 0..events {
        let p = format!("t={} pad {i}", epoch.elapsed().as_nanos());
        store.write_event(p.as_bytes(), EVENT_TYPE).expect("write");
        if i % 100 == 99 {
            store.flush().expect("flush");
        }
    }
    store.flush().expect("flush");
    let write_s = t.elapsed().as_secs_f64();
    let mut all = 0;
    let mut ordered = true;
    let mut lags = Vec::new();
    let mut complete = 0;
    for h in handles {
        let (got, ord, l) = h.join().expect("subscriber");
        all += got;
        ordered &= ord;
        if got == events {
            complete += 1;
        }
        lags.extend(l);
    }
    let total_s = t.elapsed().as_secs_f64();
    server.shutdown();
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
        "| delivery lag p50 / p99 / worst | {:.1} ms / {:.1} ms / {:.1} ms |",
        pct(&lags, 0.5) / 1e3,
        pct(&lags, 0.99) / 1e3,
        lags.last().copied().unwrap_or(f64::NAN) / 1e3
    );
    println!(
        "| memory per subscriber (process RSS delta, client threads included) | {:.0} KiB |",
        (rss1.saturating_sub(rss0)) as f64 / subs as f64
    );
    println!();
}

fn main() {
    let mut args = std::env::args().skip(1).map(|a| a.parse::<usize>());
    let ingest_n = args.next().and_then(Result::ok).unwrap_or(20_000);
    let subs = args.next().and_then(Result::ok).unwrap_or(1000);
    let events = args.next().and_then(Result::ok).unwrap_or(2000);
    ingest(ingest_n);
    latency(2000);
    fanout(subs, events);
}
