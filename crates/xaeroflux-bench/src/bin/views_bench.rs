//! View maintenance cost: ingest of small puts with the state views on, against the
//! plain log (same payload sizes) and raw LMDB puts (the floor), in the same run; then
//! `get` latency and scan throughput of the views against raw LMDB.
//!
//! Usage: `views_bench [--puts N] [--keys K] [--repeat R] [--no-history] [--dir PATH]`
//! (defaults 200,000 puts over 20,000 keys, 3 rounds). Every round runs each side once,
//! interleaved; the table shows the median and the worst round.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use heed::types::Bytes;
use heed::{CommitOrAbort, Database, EnvOpenOptions};
use xaeroflux::{XaeroFlux, XaeroKeypair};
use xaeroflux_views::{Op, RecordRef, Value, Views, ViewsConfig};

struct Args {
    puts: u64,
    keys: u64,
    repeat: usize,
    history: bool,
    dir: Option<String>,
}

const USAGE: &str =
    "usage: views_bench [--puts N] [--keys K] [--repeat R] [--no-history] [--dir PATH]";

fn args() -> Args {
    let mut a = Args {
        puts: 200_000,
        keys: 20_000,
        repeat: 3,
        history: true,
        dir: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut val = || it.next().unwrap_or_else(|| usage_exit());
        match flag.as_str() {
            "--puts" => a.puts = val().parse().unwrap_or_else(|_| usage_exit()),
            "--keys" => a.keys = val().parse().unwrap_or_else(|_| usage_exit()),
            "--repeat" => {
                a.repeat = val()
                    .parse::<usize>()
                    .unwrap_or_else(|_| usage_exit())
                    .max(1)
            }
            "--no-history" => a.history = false,
            "--dir" => a.dir = Some(val()),
            "--help" | "-h" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            _ => usage_exit(),
        }
    }
    a
}

fn usage_exit() -> ! {
    eprintln!("{USAGE}");
    std::process::exit(2)
}

/// Put number `i`: key `k{i % keys}`, a title and a counter (about 40 bytes encoded).
fn put(i: u64, keys: u64) -> Op {
    Op::Put {
        record: RecordRef::new("cards", format!("k{:06}", i % keys)),
        fields: [
            ("n".to_string(), Value::Int(i as i64)),
            (
                "title".to_string(),
                Value::Text(format!("card {}", i % 997)),
            ),
        ]
        .into(),
    }
}

fn open_store(dir: &Path) -> Arc<XaeroFlux> {
    Arc::new(
        XaeroFlux::builder(dir)
            .identity(XaeroKeypair::generate_from_seed(&[7; 32]))
            .offline()
            .open()
            .unwrap(),
    )
}

/// Writes the puts as plain events (type 1000, same payloads); returns seconds.
fn plain_log(dir: &Path, a: &Args) -> f64 {
    let store = open_store(dir);
    let t = Instant::now();
    for i in 0..a.puts {
        store
            .write_event(&put(i, a.keys).encode().unwrap(), 1000)
            .unwrap();
    }
    store.flush().unwrap();
    t.elapsed().as_secs_f64()
}

/// Writes the puts through the views and waits until they are applied; returns
/// seconds and the open views for the read side.
fn with_views(dir: &Path, a: &Args) -> (f64, Views) {
    let store = open_store(dir);
    let mut cfg = ViewsConfig::new(dir.join("views"));
    cfg.history = a.history;
    let v = Views::open(store.clone(), cfg).unwrap();
    let g = store.default_group();
    let t = Instant::now();
    for i in 0..a.puts {
        v.write_op(&g, &put(i, a.keys)).unwrap();
    }
    v.flush().unwrap();
    (t.elapsed().as_secs_f64(), v)
}

/// Raw LMDB: the final value per key, 4096 puts per transaction; returns seconds and
/// the environment for the read side.
fn raw_lmdb(dir: &Path, a: &Args) -> (f64, heed::Env, Database<'static, Bytes, Bytes>) {
    std::fs::create_dir_all(dir).unwrap();
    let mut opts = EnvOpenOptions::new();
    opts.map_size(64 << 30).max_dbs(1);
    // SAFETY: a fresh directory used by this process only, opened once.
    let env = unsafe { opts.open(dir) }.unwrap();
    let wtxn = env.write_txn().unwrap();
    let db = match env
        .create_databases_and_commit(wtxn, |opener, wtxn| {
            Ok::<_, heed::Error>(CommitOrAbort::Commit(
                opener.create_database::<Bytes, Bytes>(wtxn, Some("kv"))?,
            ))
        })
        .unwrap()
    {
        CommitOrAbort::Commit(db) => db,
        CommitOrAbort::Abort(()) => unreachable!(),
    };
    let t = Instant::now();
    let mut i = 0;
    while i < a.puts {
        let mut w = env.write_txn().unwrap();
        for j in i..(i + 4096).min(a.puts) {
            let op = put(j, a.keys);
            let key = format!("cards\0k{:06}", j % a.keys);
            db.put(&mut w, key.as_bytes(), &op.encode().unwrap())
                .unwrap();
        }
        w.commit().unwrap();
        i += 4096;
    }
    (t.elapsed().as_secs_f64(), env, db)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn worst_time(v: &[f64]) -> f64 {
    v.iter().copied().fold(0.0, f64::max)
}

fn main() {
    let a = args();
    let base = match &a.dir {
        Some(d) => tempfile::tempdir_in(d).unwrap(),
        None => tempfile::tempdir().unwrap(),
    };
    let (mut t_plain, mut t_views, mut t_raw) = (Vec::new(), Vec::new(), Vec::new());
    let (mut get_views, mut get_raw, mut scan_views, mut scan_raw) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for round in 0..a.repeat {
        let d = base.path().join(format!("r{round}"));
        t_plain.push(plain_log(&d.join("plain"), &a));
        let (tv, v) = with_views(&d.join("views"), &a);
        t_views.push(tv);
        let (tr, env, db) = raw_lmdb(&d.join("raw"), &a);
        t_raw.push(tr);

        // Reads: every key once in a scattered order, then one full scan.
        let g = v.store().default_group();
        let order: Vec<u64> = (0..a.keys).map(|i| (i * 7919) % a.keys).collect();
        let t = Instant::now();
        for &k in &order {
            let f = v.get(&g, ("cards", format!("k{k:06}").as_str())).unwrap();
            assert!(f.is_some());
        }
        get_views.push(t.elapsed().as_secs_f64() / a.keys as f64);
        let r = env.read_txn().unwrap();
        let t = Instant::now();
        for &k in &order {
            let key = format!("cards\0k{k:06}");
            let val = db.get(&r, key.as_bytes()).unwrap().unwrap();
            assert!(Op::decode(val).is_ok());
        }
        get_raw.push(t.elapsed().as_secs_f64() / a.keys as f64);
        let t = Instant::now();
        let n = v.scan(&g, "cards", "").unwrap().len() as u64;
        assert_eq!(n, a.keys.min(a.puts));
        scan_views.push(n as f64 / t.elapsed().as_secs_f64());
        let t = Instant::now();
        let mut m = 0u64;
        for item in db.prefix_iter(&r, b"cards\0").unwrap() {
            let (_, val) = item.unwrap();
            assert!(Op::decode(val).is_ok());
            m += 1;
        }
        scan_raw.push(m as f64 / t.elapsed().as_secs_f64());
        drop(r);
        drop(v);
        std::fs::remove_dir_all(&d).unwrap();
    }

    let rate = |t: &[f64]| {
        (
            a.puts as f64 / median(t.to_vec()),
            a.puts as f64 / worst_time(t),
        )
    };
    let (pm, pw) = rate(&t_plain);
    let (vm, vw) = rate(&t_views);
    let (rm, rw) = rate(&t_raw);
    println!(
        "views_bench: {} puts over {} keys, history {}, {} rounds (median / worst)",
        a.puts,
        a.keys,
        if a.history { "on" } else { "off" },
        a.repeat
    );
    println!("| ingest | puts/s median | puts/s worst | vs plain log |");
    println!("| --- | ---: | ---: | ---: |");
    println!("| plain log (anchor) | {pm:.0} | {pw:.0} | 1.00x |");
    println!(
        "| log + views (applied) | {vm:.0} | {vw:.0} | {:.2}x |",
        vm / pm
    );
    println!(
        "| raw LMDB puts (floor) | {rm:.0} | {rw:.0} | {:.2}x |",
        rm / pm
    );
    let us = |v: &[f64]| (median(v.to_vec()) * 1e6, worst_time(v) * 1e6);
    let (gv, gvw) = us(&get_views);
    let (gr, grw) = us(&get_raw);
    println!("| read | median | worst | vs raw LMDB |");
    println!("| --- | ---: | ---: | ---: |");
    println!("| views get (µs) | {gv:.2} | {gvw:.2} | {:.2}x |", gv / gr);
    println!("| raw LMDB get + decode (µs, anchor) | {gr:.2} | {grw:.2} | 1.00x |");
    let best = |v: &[f64]| v.iter().copied().fold(f64::INFINITY, f64::min);
    let (sv, svw) = (median(scan_views.clone()), best(&scan_views));
    let (sr, srw) = (median(scan_raw.clone()), best(&scan_raw));
    println!(
        "| views scan (records/s) | {sv:.0} | {svw:.0} | {:.2}x |",
        sv / sr
    );
    println!("| raw LMDB scan + decode (records/s, anchor) | {sr:.0} | {srw:.0} | 1.00x |");
}
