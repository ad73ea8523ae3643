//! Broadcast ring throughput: 1 writer -> 3 readers, our `Ring` vs the `disruptor` crate vs
//! crossbeam-channel fan-out, same harness, same run.
//!
//! `cargo run --release -p xaeroflux-bench --bin ring_bench -- [--events N] [--capacity C]`
//!
//! Every reader sums the counter stamped in the first 8 bytes of each payload plus its
//! last byte; the sums are checked against the expected value so nothing is optimised
//! away. Time runs from before the first write until every reader has finished.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use xaeroflux_core::ring::Ring;

const READERS: usize = 3;

struct Args {
    events: u64,
    capacity: usize,
}

fn parse_args() -> Args {
    let mut args = Args {
        events: 10_000_000,
        capacity: 4096,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let v = it.next().and_then(|v| v.parse::<u64>().ok());
        match (a.as_str(), v) {
            ("--events", Some(v)) => args.events = v,
            ("--capacity", Some(v)) => args.capacity = v as usize,
            _ => {
                eprintln!("usage: ring_bench [--events N] [--capacity C]");
                std::process::exit(2);
            }
        }
    }
    args
}

#[inline(always)]
fn fill<const P: usize>(buf: &mut [u8], i: u64) {
    buf[..8].copy_from_slice(&i.to_le_bytes());
    buf[P - 1] = i as u8;
}

#[inline(always)]
fn digest(buf: &[u8]) -> u64 {
    let head = u64::from_le_bytes(buf[..8].try_into().unwrap());
    head.wrapping_add(u64::from(buf[buf.len() - 1]))
}

fn expected(n: u64) -> u64 {
    (0..n).fold(0u64, |acc, i| {
        acc.wrapping_add(i).wrapping_add(u64::from(i as u8))
    })
}

/// Our ring: 3 gating readers, blocking writer.
fn bench_ring<const P: usize>(n: u64, capacity: usize) -> (Duration, Vec<u64>) {
    let ring = Ring::<P>::new(capacity).unwrap();
    let readers: Vec<_> = (0..READERS)
        .map(|_| {
            let mut r = ring.add_gating_reader().unwrap();
            thread::spawn(move || {
                let mut sum = 0u64;
                let mut count = 0u64;
                while count < n {
                    let got = r.poll(1024, |_, e| sum = sum.wrapping_add(digest(e.payload())));
                    if got == 0 {
                        r.wait(Duration::from_millis(100));
                    }
                    count += got as u64;
                }
                sum
            })
        })
        .collect();
    let start = Instant::now();
    let payload = [0x5au8; P];
    for i in 0..n {
        ring.write_with(P, |buf, _| {
            buf.copy_from_slice(&payload);
            fill::<P>(buf, i);
            0
        })
        .unwrap();
    }
    let sums = readers.into_iter().map(|r| r.join().unwrap()).collect();
    (start.elapsed(), sums)
}

/// `thread::yield_now` between polls: the closest to our yielding readers the crate
/// offers (it ships busy-spin, spin-hint and sleep strategies).
#[derive(Copy, Clone)]
struct Yield;

impl disruptor::wait_strategies::WaitStrategy for Yield {
    fn wait_for(&self, _sequence: disruptor::Sequence) {
        thread::yield_now();
    }
}

struct Ev<const P: usize> {
    data: [u8; P],
}

fn bench_disruptor<const P: usize>(n: u64, capacity: usize) -> (Duration, Vec<u64>) {
    bench_disruptor_with::<P, _>(n, capacity, Yield)
}

/// Reference only: the crate's spinning strategy (what its own benchmarks use).
fn bench_disruptor_spin<const P: usize>(n: u64, capacity: usize) -> (Duration, Vec<u64>) {
    bench_disruptor_with::<P, _>(n, capacity, disruptor::BusySpinWithSpinLoopHint)
}

fn bench_disruptor_with<const P: usize, W>(n: u64, capacity: usize, wait: W) -> (Duration, Vec<u64>)
where
    W: disruptor::wait_strategies::WaitStrategy + 'static,
{
    use disruptor::Producer;
    let sums: Arc<[AtomicU64; READERS]> = Arc::new(Default::default());
    let handler = |k: usize| {
        let sums = sums.clone();
        let mut sum = 0u64;
        move |e: &Ev<P>, _seq: disruptor::Sequence, end_of_batch: bool| {
            sum = sum.wrapping_add(digest(&e.data));
            if end_of_batch {
                sums[k].store(sum, Ordering::Relaxed);
            }
        }
    };
    let mut producer = disruptor::build_single_producer(capacity, || Ev { data: [0u8; P] }, wait)
        .handle_events_with(handler(0))
        .handle_events_with(handler(1))
        .handle_events_with(handler(2))
        .build();
    let start = Instant::now();
    let payload = [0x5au8; P];
    for i in 0..n {
        producer.publish(|e| {
            e.data.copy_from_slice(&payload);
            fill::<P>(&mut e.data, i);
        });
    }
    // Dropping the producer waits until every handler processed every event.
    drop(producer);
    let elapsed = start.elapsed();
    (
        elapsed,
        sums.iter().map(|s| s.load(Ordering::Relaxed)).collect(),
    )
}

fn bench_crossbeam<const P: usize>(n: u64, capacity: usize) -> (Duration, Vec<u64>) {
    let (txs, readers): (Vec<_>, Vec<_>) = (0..READERS)
        .map(|_| {
            let (tx, rx) = crossbeam_channel::bounded::<[u8; P]>(capacity);
            let h = thread::spawn(move || {
                let mut sum = 0u64;
                for msg in rx {
                    sum = sum.wrapping_add(digest(&msg));
                }
                sum
            });
            (tx, h)
        })
        .unzip();
    let start = Instant::now();
    let payload = [0x5au8; P];
    for i in 0..n {
        let mut msg = payload;
        fill::<P>(&mut msg, i);
        for tx in &txs {
            tx.send(msg).unwrap();
        }
    }
    drop(txs);
    let sums = readers.into_iter().map(|r| r.join().unwrap()).collect();
    (start.elapsed(), sums)
}

/// One benchmark: `(events, capacity) -> (elapsed, per-reader checksums)`.
type BenchFn = fn(u64, usize) -> (Duration, Vec<u64>);

struct Row {
    name: &'static str,
    payload: usize,
    mevs: f64,
}

fn run<const P: usize>(args: &Args, rows: &mut Vec<Row>) {
    let want = expected(args.events);
    let benches: [(&'static str, BenchFn); 4] = [
        ("xaeroflux Ring", bench_ring::<P>),
        ("disruptor 4", bench_disruptor::<P>),
        ("disruptor 4 (spin)", bench_disruptor_spin::<P>),
        ("crossbeam fan-out", bench_crossbeam::<P>),
    ];
    for (name, f) in benches {
        let (elapsed, sums) = f(args.events, args.capacity);
        assert!(sums.iter().all(|&s| s == want), "{name}: checksum mismatch");
        rows.push(Row {
            name,
            payload: P,
            mevs: args.events as f64 / elapsed.as_secs_f64() / 1e6,
        });
    }
}

fn main() {
    let args = parse_args();
    println!(
        "1 writer -> {READERS} readers, {} events, capacity {}",
        args.events, args.capacity
    );
    println!(
        "disruptor 4: yielding consumers (same policy as ours); \
         disruptor 4 (spin): BusySpinWithSpinLoopHint, reference only"
    );
    let mut rows = Vec::new();
    run::<64>(&args, &mut rows);
    run::<1024>(&args, &mut rows);
    println!(
        "{:<20} {:>8} {:>12} {:>14} {:>14}",
        "impl", "payload", "events/s (M)", "vs disruptor", "vs crossbeam"
    );
    for row in &rows {
        let of = |name: &str| {
            rows.iter()
                .find(|r| r.name == name && r.payload == row.payload)
                .map_or(f64::NAN, |r| r.mevs)
        };
        println!(
            "{:<20} {:>7}B {:>12.2} {:>13.2}x {:>13.2}x",
            row.name,
            row.payload,
            row.mevs,
            row.mevs / of("disruptor 4"),
            row.mevs / of("crossbeam fan-out"),
        );
    }
}
