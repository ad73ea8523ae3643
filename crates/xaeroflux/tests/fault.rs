//! Fault injection: a failed fsync or write during a group commit acknowledges
//! nothing and poisons the writer; reopening shows every acknowledged event.
//!
//! * `fsync_failure_*`: the child runs under `fiu-run -x` (Debian/Ubuntu package
//!   `fiu-utils`: `apt-get install -y fiu-utils`) and, after acknowledging a known
//!   number of events, tells libfiu (via `fiu-ctrl` on its own pid) to fail every
//!   `fsync`/`fdatasync`. The number is chosen so that the failing commit either has to
//!   write a new Merkle page (the page file's sync fails) or not (LMDB's commit sync
//!   fails). These tests print a message and pass if `fiu-run` is not installed.
//! * `file_size_limit_poisons`: the child runs under `ulimit -f` (SIGXFSZ ignored), so
//!   a write past the limit fails with EFBIG wherever it happens.
#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use xaeroflux::{Durability, Error, EventId, XaeroFlux};
use xaeroflux_core::page::NODES_PER_PAGE;

const CHILD_ENV: &str = "XAERO_FAULT_CHILD";

fn payload(seq: u64) -> Vec<u8> {
    let len = 1 + (seq as usize * 131) % 1500;
    (0..len).map(|i| (seq as usize * 7 + i) as u8).collect()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex(s: &str) -> EventId {
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap();
    }
    EventId(out)
}

/// Nodes of an MMR with `n` leaves.
fn mmr_size(n: u64) -> u64 {
    2 * n - u64::from(n.count_ones())
}

fn emit(line: &str) {
    let mut o = std::io::stdout().lock();
    // A marker: libtest prints "test name ... " in front of the first line.
    writeln!(o, "@{line}").unwrap();
    o.flush().unwrap();
}

fn fiu_run() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join("fiu-run"))
        .find(|p| p.is_file())
}

/// Writes `n` events one flush at a time and prints `ack seq id` for each.
fn write_acked(store: &XaeroFlux, from: u64, n: u64) {
    for seq in from..from + n {
        let id = store.write_event(&payload(seq), 300).unwrap();
        store.flush().unwrap();
        emit(&format!("ack {seq} {}", hex(&id.0)));
    }
}

fn assert_poisoned(r: Result<impl std::fmt::Debug, Error>, what: &str) -> String {
    match r {
        Err(Error::Poisoned { reason }) => reason,
        other => panic!("{what}: expected Poisoned, got {other:?}"),
    }
}

fn fiu_ctrl(cmd: &str) {
    let st = Command::new("fiu-ctrl")
        .args(["-c", cmd, &std::process::id().to_string()])
        .status()
        .unwrap();
    assert!(st.success(), "fiu-ctrl -c {cmd:?} failed: {st}");
}

/// Child of the fsync tests: ack `acked` events, then fail syncs and write one more.
fn fsync_child(dir: &Path, acked: u64) {
    let store = XaeroFlux::builder(dir)
        .durability(Durability::Batched)
        .open()
        .unwrap();
    write_acked(&store, 0, acked);
    fiu_ctrl("enable name=posix/io/sync/*");
    let id = store.write_event(&payload(acked), 300).unwrap();
    emit(&format!("unacked {}", hex(&id.0)));
    let reason = assert_poisoned(store.flush(), "flush after failed fsync");
    assert_poisoned(store.write_event(b"more", 300), "write after poison");
    assert_poisoned(store.flush(), "second flush after poison");
    // Reads keep working on what was committed.
    assert!(store.get(&id).unwrap().is_none());
    fiu_ctrl("disable name=posix/io/sync/*");
    emit(&format!("poisoned {reason}"));
    drop(store);
}

/// Child of the size-limit test: write and flush until something fails.
fn fsize_child(dir: &Path) {
    let store = XaeroFlux::builder(dir)
        .durability(Durability::Batched)
        .open()
        .unwrap();
    let mut seq = 0u64;
    let mut batch: Vec<(u64, EventId)> = Vec::new();
    let err = loop {
        let id = match store.write_event(&payload(seq).repeat(2), 300) {
            Ok(id) => id,
            Err(e) => break e,
        };
        batch.push((seq, id));
        seq += 1;
        if batch.len() == 50 {
            if let Err(e) = store.flush() {
                break e;
            }
            for (s, id) in batch.drain(..) {
                emit(&format!("ack {s} {}", hex(&id.0)));
            }
        }
        assert!(seq < 1_000_000, "the file size limit never hit");
    };
    let reason = assert_poisoned(Err::<(), _>(err), "first failure");
    emit(&format!("written {seq}"));
    assert_poisoned(store.write_event(b"more", 300), "write after poison");
    assert_poisoned(store.flush(), "flush after poison");
    emit(&format!("poisoned {reason}"));
    drop(store);
}

fn run_child(mut cmd: Command, test: &str, dir: &Path, extra: &[(&str, String)]) -> Output {
    cmd.args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, dir);
    for (k, v) in extra {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "child failed: {}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status
    );
    out
}

struct ChildReport {
    acked: Vec<(u64, EventId)>,
    unacked: Option<EventId>,
    written: Option<u64>,
    reason: String,
}

fn parse(out: &Output) -> ChildReport {
    let s = String::from_utf8_lossy(&out.stdout);
    let mut r = ChildReport {
        acked: Vec::new(),
        unacked: None,
        written: None,
        reason: String::new(),
    };
    for line in s.lines() {
        let Some(line) = line.find('@').map(|i| &line[i + 1..]) else {
            continue;
        };
        if let Some(rest) = line.strip_prefix("ack ") {
            let (seq, id) = rest.split_once(' ').unwrap();
            r.acked.push((seq.parse().unwrap(), unhex(id)));
        } else if let Some(id) = line.strip_prefix("unacked ") {
            r.unacked = Some(unhex(id));
        } else if let Some(n) = line.strip_prefix("written ") {
            r.written = Some(n.parse().unwrap());
        } else if let Some(reason) = line.strip_prefix("poisoned ") {
            r.reason = reason.to_string();
        }
    }
    assert!(
        !r.reason.is_empty(),
        "child did not report the poison:\n{s}"
    );
    r
}

/// Reopens without faults: every acknowledged event is there, verify passes and the log
/// continues. Returns the number of stored events.
fn check_reopen(dir: &Path, r: &ChildReport) -> u64 {
    let store = XaeroFlux::builder(dir).open().unwrap();
    let count = store.read().unwrap().event_count().unwrap();
    for (seq, id) in &r.acked {
        let ev = store
            .get(id)
            .unwrap()
            .unwrap_or_else(|| panic!("acknowledged event {seq} lost"));
        assert_eq!(ev.header.seq, *seq);
        let p = payload(*seq);
        assert!(
            ev.payload == p || ev.payload == p.repeat(2),
            "payload of {seq} changed"
        );
    }
    let report = store.verify(|_, _| {}).unwrap();
    assert_eq!(report.events, count);
    let id = store.write_event(b"after the fault", 300).unwrap();
    store.flush().unwrap();
    assert_eq!(store.get(&id).unwrap().unwrap().header.seq, count);
    store.close().unwrap();
    count
}

/// Runs the fsync scenario with `acked` events before the fault.
fn fsync_scenario(test: &str, acked: u64, site: &str) {
    if let Some(dir) = std::env::var_os(CHILD_ENV) {
        fsync_child(Path::new(&dir), acked);
        return;
    }
    let Some(fiu) = fiu_run() else {
        println!(
            "SKIPPED {test}: `fiu-run` not found; install it with `apt-get install -y fiu-utils`"
        );
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(fiu);
    cmd.arg("-x").arg(std::env::current_exe().unwrap());
    let r = parse(&run_child(cmd, test, dir.path(), &[]));
    assert_eq!(r.acked.len() as u64, acked);
    assert!(
        r.reason.contains(site),
        "expected the {site} sync to fail first, got: {}",
        r.reason
    );
    // Exactly the acknowledged events: the failed commit left nothing behind.
    assert_eq!(check_reopen(dir.path(), &r), acked);
    let store = XaeroFlux::builder(dir.path()).open().unwrap();
    assert!(store.get(&r.unacked.unwrap()).unwrap().is_none());
    println!(
        "{test}: {acked} acknowledged events kept; poison reason: {}",
        r.reason
    );
}

/// A leaf count after which appending one more leaf completes a Merkle page.
fn leaves_before_page_boundary() -> u64 {
    let npp = NODES_PER_PAGE as u64;
    (100..)
        .find(|&n| mmr_size(n) / npp < mmr_size(n + 1) / npp)
        .unwrap()
}

#[test]
fn fsync_failure_in_lmdb_commit_poisons() {
    // The commit of the next event adds no full page: LMDB's sync is the first to fail.
    let n = 150;
    let npp = NODES_PER_PAGE as u64;
    assert_eq!(mmr_size(n) / npp, mmr_size(n + 1) / npp);
    fsync_scenario("fsync_failure_in_lmdb_commit_poisons", n, "lmdb");
}

#[test]
fn fsync_failure_in_page_file_poisons() {
    // The commit of the next event completes a Merkle page: the page file's sync fails.
    fsync_scenario(
        "fsync_failure_in_page_file_poisons",
        leaves_before_page_boundary(),
        "merkle_index.bin",
    );
}

#[test]
fn file_size_limit_poisons() {
    const TEST: &str = "file_size_limit_poisons";
    if let Some(dir) = std::env::var_os(CHILD_ENV) {
        fsize_child(Path::new(&dir));
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new("sh");
    // `ulimit -f` counts 512-byte blocks in dash and 1 KiB in bash: a 4-8 MiB limit.
    cmd.arg("-c")
        .arg("trap '' XFSZ; ulimit -f 8192 || exit 97; exec \"$0\" \"$@\"")
        .arg(std::env::current_exe().unwrap());
    let r = parse(&run_child(cmd, TEST, dir.path(), &[]));
    let written = r.written.unwrap();
    assert!(
        !r.acked.is_empty(),
        "nothing was acknowledged before the limit"
    );
    let count = check_reopen(dir.path(), &r);
    assert!(
        count >= r.acked.len() as u64 && count <= written,
        "{count} stored, {written} written"
    );
    println!(
        "{TEST}: {} acknowledged, {written} written, {count} stored after reopen; poison reason: {}",
        r.acked.len(),
        r.reason
    );
}
