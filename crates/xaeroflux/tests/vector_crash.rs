//! Crash test for the vector index file: a child process writes events while vector
//! search indexes and saves them (every few positions), and is killed with SIGKILL at
//! a random moment. The parent reopens the store, starts vector search (which must
//! load the file the child left, never a torn one), waits until nothing is pending
//! and compares the results with a fresh build over the same store.
//!
//! Environment: `XAERO_VCRASH_CYCLES` (default 3), `XAERO_VCRASH_SEED`.
#![allow(clippy::unwrap_used)]

mod vector_common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use vector_common::*;
use xaeroflux::{IndexLoad, VECTOR_INDEX_FILE};

const CHILD_ENV: &str = "XAERO_VCRASH_CHILD";

/// Child mode: index while writing, until killed.
fn child(dir: &Path) -> ! {
    let store = open(dir);
    let mut c = config();
    c.persist_every = 25;
    start(&store, &[TEXT], c);
    let mut n = store.read().unwrap().event_count().unwrap();
    println!("@started {n}");
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        for _ in 0..8 {
            store.write_event(text(n).as_bytes(), TEXT).unwrap();
            n += 1;
        }
        // Some events of an unregistered type, which the indexer steps over.
        store.write_event(b"not indexed", OTHER).unwrap();
        std::thread::sleep(Duration::from_millis(10));
    }
    // The parent should have killed us long ago.
    std::process::exit(3)
}

/// xorshift64*.
fn next(x: &mut u64) -> u64 {
    *x ^= *x >> 12;
    *x ^= *x << 25;
    *x ^= *x >> 27;
    x.wrapping_mul(0x2545_F491_4F6C_DD1D)
}

#[test]
fn kill_during_indexing() {
    if let Some(dir) = std::env::var_os(CHILD_ENV) {
        child(Path::new(&dir));
    }
    let cycles: u64 = std::env::var("XAERO_VCRASH_CYCLES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    let mut rng: u64 = std::env::var("XAERO_VCRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5EED_CAFE)
        | 1;
    let exe = std::env::current_exe().unwrap();
    let dir = tempfile::tempdir().unwrap();
    for cycle in 0..cycles {
        let mut child = Command::new(&exe)
            .args(["--exact", "kill_during_indexing", "--nocapture"])
            .env(CHILD_ENV, dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let (tx, rx) = mpsc::channel();
        let out = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        // Wait until vector search runs in the child, then kill it at a random moment.
        // (libtest prints its own lines first.)
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let wait = deadline.saturating_duration_since(Instant::now());
            let line = rx.recv_timeout(wait);
            assert!(line.is_ok(), "cycle {cycle}: child did not start");
            if line.unwrap().contains("@started") {
                break;
            }
        }
        let kill_after = Duration::from_millis(100 + next(&mut rng) % 600);
        std::thread::sleep(kill_after);
        assert!(
            child.try_wait().unwrap().is_none(),
            "child exited by itself"
        );
        child.kill().unwrap(); // SIGKILL on unix
        child.wait().unwrap();

        let (reloaded, indexed) = {
            let store = open(dir.path());
            start(&store, &[TEXT], config());
            let s = wait_indexed(&store);
            // Saves are atomic: whatever the kill interrupted, the file is whole.
            assert_ne!(s.load, IndexLoad::Corrupt, "cycle {cycle}");
            if cycle > 0 {
                // The previous cycle's parent saved a file covering the store then.
                assert_eq!(s.load, IndexLoad::Loaded, "cycle {cycle}");
            }
            let count = store.read().unwrap().event_count().unwrap();
            assert_eq!(s.position, count);
            println!(
                "cycle {cycle}: killed after {kill_after:?}, {count} events, {:?}, {} indexed",
                s.load, s.indexed
            );
            let r = results(&store, 15);
            store.close().unwrap();
            (r, s.indexed)
        };
        let store = open(dir.path());
        std::fs::remove_file(dir.path().join(VECTOR_INDEX_FILE)).unwrap();
        start(&store, &[TEXT], config());
        let s = wait_indexed(&store);
        assert_eq!(s.indexed, indexed, "cycle {cycle}");
        assert_eq!(results(&store, 15), reloaded, "cycle {cycle}");
        store.close().unwrap();
    }
}
