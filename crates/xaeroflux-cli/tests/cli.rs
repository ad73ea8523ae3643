//! The `xaeroflux` binary end to end, each command against a temporary data directory.
#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

fn run(dir: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_xaeroflux"))
        .arg("--data-dir")
        .arg(dir)
        .args(args)
        .env_remove("XAERO_DATA_DIR")
        .env_remove("XAERO_PASSPHRASE")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    if let Some(s) = stdin {
        input.write_all(s.as_bytes()).unwrap();
    }
    drop(input);
    child.wait_with_output().unwrap()
}

fn stdout(o: &Output) -> String {
    assert!(
        o.status.success(),
        "failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout.clone()).unwrap()
}

#[test]
fn identity_write_get_query_stats_verify() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let new = stdout(&run(d, &["id", "new"], None));
    let did = new
        .lines()
        .next()
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .to_string();
    assert!(did.starts_with("did:xaero:") && did.len() == 62, "{did}");
    assert!(stdout(&run(d, &["id", "show"], None)).contains(&did));
    // A second `id new` must not silently replace the key.
    assert!(!run(d, &["id", "new"], None).status.success());

    let id = stdout(&run(d, &["write", "hello cli", "--type", "4242"], None))
        .trim()
        .to_string();
    assert_eq!(id.len(), 64);
    let piped = stdout(&run(d, &["write", "-t", "4243"], Some("from stdin")))
        .trim()
        .to_string();
    let got = stdout(&run(d, &["get", &id], None));
    assert!(
        got.contains("\"hello cli\"") && got.contains("type=4242"),
        "{got}"
    );
    assert!(stdout(&run(d, &["get", &piped], None)).contains("from stdin"));

    let absent = run(d, &["get", &"0".repeat(64)], None);
    assert_eq!(absent.status.code(), Some(1));
    assert!(!run(d, &["get", "not-hex"], None).status.success());
    let reserved = run(d, &["write", "x", "--type", "7"], None);
    assert!(!reserved.status.success());
    assert!(String::from_utf8_lossy(&reserved.stderr).contains("reserved"));

    let q = stdout(&run(d, &["query", "--type", "4243"], None));
    assert_eq!(q.lines().count(), 1);
    assert!(q.starts_with(&piped));
    let tail = stdout(&run(d, &["tail", "-n", "1"], None));
    assert!(tail.starts_with(&piped), "{tail}");
    let stats = stdout(&run(d, &["stats"], None));
    assert!(stats.contains("events       2"), "{stats}");
    let v = stdout(&run(d, &["verify"], None));
    assert!(v.starts_with("ok: 2 events"), "{v}");
}

#[test]
fn encrypted_identity_needs_its_passphrase() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let new = stdout(&run(
        d,
        &["id", "new", "--passphrase"],
        Some("correct horse\n"),
    ));
    assert!(new.contains("(encrypted)"));
    assert!(stdout(&run(d, &["id", "show"], Some("correct horse\n"))).contains("did:xaero:"));
    assert!(!run(d, &["id", "show"], Some("wrong\n")).status.success());
}

#[test]
fn demo_runs_a_node_and_verify_catches_tampering() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let out = stdout(&run(d, &["demo", "--events", "3000"], None));
    assert!(out.contains("read back  3000/3000"), "{out}");
    assert!(out.contains("verified"), "{out}");
    // Damage a committed Merkle page: verify must fail with a non-zero exit code.
    let pages = d.join("merkle_index.bin");
    let mut bytes = std::fs::read(&pages).unwrap();
    assert!(bytes.len() >= 16384);
    bytes[100] ^= 1;
    std::fs::write(&pages, bytes).unwrap();
    let v = run(d, &["verify"], None);
    assert_eq!(
        v.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&v.stdout)
    );
    assert!(String::from_utf8_lossy(&v.stderr).contains("FAILED"));
}

#[test]
fn search_text_finds_near_duplicates_and_keeps_its_index() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let texts = [
        "offline first event store",
        "peer to peer synchronisation",
        "vector search over hnsw graphs",
        "merkle mountain range proofs",
    ];
    let ids: Vec<String> = texts
        .iter()
        .map(|t| stdout(&run(d, &["write", t], None)).trim().to_string())
        .collect();
    // Same words, another type that is not searched.
    stdout(&run(
        d,
        &["write", "-t", "2000", "vector search over hnsw graph"],
        None,
    ));

    let out = stdout(&run(
        d,
        &[
            "search",
            "--text",
            "Vektor serch over HNSW graph",
            "--threshold",
            "-1",
        ],
        None,
    ));
    let first: Vec<&str> = out.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(first[1], ids[2], "{out}");
    assert!(first[0].parse::<f32>().unwrap() > 0.3, "{out}");
    assert!(out.contains("vector search over hnsw graphs"));
    assert_eq!(out.lines().count(), 4, "only type 1000 is indexed: {out}");
    let stats = stdout(&run(d, &["stats"], None));
    assert!(
        stats.contains("vector index 4 vectors of dim 256, covers 5 events"),
        "{stats}"
    );

    // A later search indexes only what is new, and finds it.
    let new_id = stdout(&run(d, &["write", "hybrid logical clocks"], None))
        .trim()
        .to_string();
    let out = stdout(&run(
        d,
        &["search", "--text", "hybrid logical clock", "-k", "1"],
        None,
    ));
    assert!(out.contains(&new_id), "{out}");
    assert!(stdout(&run(d, &["stats"], None)).contains("vector index 5 vectors"));

    // Nothing above the threshold: exit code 1. Bad input: an error, not a panic.
    let none = run(
        d,
        &["search", "--text", "zzzz qqqq", "--threshold", "0.9"],
        None,
    );
    assert_eq!(none.status.code(), Some(1));
    let bad = run(d, &["search", "--text", "x", "--threshold", "2"], None);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("outside [-1, 1]"));
    let short = run(d, &["search"], Some("[1, 2, 3]"));
    assert!(String::from_utf8_lossy(&short.stderr).contains("dimension 3"));
    let mut v = vec!["0"; 256];
    v[7] = "1";
    let out = stdout(&run(
        d,
        &["search", "-k", "2"],
        Some(&format!("[{}]", v.join(","))),
    ));
    assert_eq!(out.lines().count(), 2, "{out}");
}
