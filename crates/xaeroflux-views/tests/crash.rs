//! Crash test: a child process writes record operations (and waits for its views to
//! apply them) until it is killed with SIGKILL at a random moment, often in the middle
//! of a view transaction. The parent reopens store and views and checks that the views
//! resumed (never ahead of the store), caught up, and equal both a rebuild from the
//! log in a fresh directory and the pure fold of the log.
//!
//! Environment: `XAERO_VIEWS_CRASH_CYCLES` (default 8), `XAERO_VIEWS_CRASH_SEED`.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use xaeroflux_views::{Op, RecordRef, Value, ViewLoad, Views, ViewsConfig};

const CHILD_ENV: &str = "XAERO_VIEWS_CRASH_CHILD";
const SEED_ENV: &str = "XAERO_VIEWS_CRASH_SEED";

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
}

fn random_op(r: &mut Rng) -> Op {
    let rec = |r: &mut Rng| RecordRef::new("cards", format!("k{:03}", r.next() % 200));
    match r.next() % 10 {
        0 => Op::Delete { record: rec(r) },
        1 => Op::Link {
            from: rec(r),
            rel: "next".into(),
            to: rec(r),
        },
        2..=5 => Op::Put {
            record: rec(r),
            fields: [
                (
                    "title".to_string(),
                    Value::Text(format!("t{}", r.next() % 1000)),
                ),
                ("n".to_string(), Value::Int((r.next() % 100) as i64)),
            ]
            .into(),
        },
        _ => Op::Patch {
            record: rec(r),
            fields: [("n".to_string(), Some(Value::Int((r.next() % 100) as i64)))].into(),
        },
    }
}

fn child(dir: &Path) -> ! {
    let seed: u64 = std::env::var(SEED_ENV).unwrap().parse().unwrap();
    let mut rng = Rng::new(seed);
    let store = common::store(dir, 42);
    let v = common::views(&store, dir);
    let g = store.default_group();
    loop {
        for _ in 0..(1 + rng.next() % 400) {
            v.write_op(&g, &random_op(&mut rng)).unwrap();
        }
        v.flush().unwrap();
        println!("@applied {}", v.stats().unwrap().position);
    }
}

#[test]
fn views_crash_loop() {
    if let Some(dir) = std::env::var_os(CHILD_ENV) {
        child(Path::new(&dir));
    }
    let cycles: u64 = std::env::var("XAERO_VIEWS_CRASH_CYCLES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(8);
    let mut rng = Rng::new(
        std::env::var(SEED_ENV)
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0x5EED),
    );
    let exe = std::env::current_exe().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut last_applied = 0u64;
    for cycle in 0..cycles {
        let mut child = Command::new(&exe)
            .args([
                "--exact",
                "views_crash_loop",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, dir.path())
            .env(SEED_ENV, rng.next().to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut so = child.stdout.take().unwrap();
        let out_t = std::thread::spawn(move || {
            let mut v = Vec::new();
            let _ = so.read_to_end(&mut v);
            v
        });
        std::thread::sleep(Duration::from_millis(300 + rng.next() % 900));
        assert!(
            child.try_wait().unwrap().is_none(),
            "cycle {cycle}: child exited early"
        );
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let out = String::from_utf8_lossy(&out_t.join().unwrap()).to_string();
        let complete = out.rfind('\n').map_or("", |i| &out[..=i]);
        // The highest position the views reported applied before the kill.
        for line in complete.lines() {
            if let Some(p) = line.find("@applied ").map(|i| &line[i + 9..]) {
                last_applied = last_applied.max(p.trim().parse().unwrap());
            }
        }

        let store = common::store(dir.path(), 42);
        let g = store.default_group();
        let committed = store.read().unwrap().event_count().unwrap();
        let v = common::views(&store, dir.path());
        let st = v.stats().unwrap();
        assert!(
            st.position <= committed && st.position >= last_applied,
            "cycle {cycle}: views at {} (store {committed}, applied before the kill {last_applied})",
            st.position
        );
        assert!(
            matches!(st.load, ViewLoad::Loaded | ViewLoad::Created),
            "cycle {cycle}: {:?}",
            st.load
        );
        v.flush().unwrap();
        let rebuilt = Views::open(
            store.clone(),
            ViewsConfig::new(dir.path().join(format!("rebuild{cycle}"))),
        )
        .unwrap();
        rebuilt.flush().unwrap();
        let root = v.state_root(&g).unwrap();
        assert_eq!(
            root,
            rebuilt.state_root(&g).unwrap(),
            "cycle {cycle}: reopened views differ from a rebuild"
        );
        assert_eq!(
            root,
            common::fold_log(&store, &g, u64::MAX).root().unwrap(),
            "cycle {cycle}"
        );
        assert_eq!(
            v.scan(&g, "cards", "").unwrap(),
            rebuilt.scan(&g, "cards", "").unwrap()
        );
        drop(rebuilt);
        std::fs::remove_dir_all(dir.path().join(format!("rebuild{cycle}"))).unwrap();
        drop(v);
        drop(store);
    }
    assert!(last_applied > 0, "the child never applied anything");
}
