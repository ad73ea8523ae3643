//! The `xaeroflux` binary end to end, each command against a temporary data directory.
#![allow(clippy::unwrap_used)]

use std::io::BufRead;
use std::process::{Command, Stdio};

mod common;

use common::{ok, run};

#[test]
fn identity_write_get_query_stats_verify() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let new = ok(&run(d, &["id", "new"], None));
    let did = new
        .lines()
        .next()
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .to_string();
    assert!(did.starts_with("did:xaero:") && did.len() == 62, "{did}");
    assert!(ok(&run(d, &["id", "show"], None)).contains(&did));
    // A second `id new` must not silently replace the key.
    assert!(!run(d, &["id", "new"], None).status.success());

    let id = ok(&run(d, &["write", "hello cli", "--type", "4242"], None))
        .trim()
        .to_string();
    assert_eq!(id.len(), 64);
    let piped = ok(&run(d, &["write", "-t", "4243"], Some("from stdin")))
        .trim()
        .to_string();
    let got = ok(&run(d, &["get", &id], None));
    assert!(
        got.contains("\"hello cli\"") && got.contains("type=4242"),
        "{got}"
    );
    assert!(ok(&run(d, &["get", &piped], None)).contains("from stdin"));

    let absent = run(d, &["get", &"0".repeat(64)], None);
    assert_eq!(absent.status.code(), Some(1));
    assert!(!run(d, &["get", "not-hex"], None).status.success());
    let reserved = run(d, &["write", "x", "--type", "7"], None);
    assert!(!reserved.status.success());
    assert!(String::from_utf8_lossy(&reserved.stderr).contains("reserved"));

    let q = ok(&run(d, &["query", "--type", "4243"], None));
    assert_eq!(q.lines().count(), 1);
    assert!(q.starts_with(&piped));
    let tail = ok(&run(d, &["tail", "-n", "1"], None));
    assert!(tail.starts_with(&piped), "{tail}");
    let stats = ok(&run(d, &["stats"], None));
    assert!(stats.contains("events       2"), "{stats}");
    let v = ok(&run(d, &["verify"], None));
    assert!(v.starts_with("ok: 2 events"), "{v}");
}

#[test]
fn encrypted_identity_needs_its_passphrase() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let new = ok(&run(
        d,
        &["id", "new", "--passphrase"],
        Some("correct horse\n"),
    ));
    assert!(new.contains("(encrypted)"));
    assert!(ok(&run(d, &["id", "show"], Some("correct horse\n"))).contains("did:xaero:"));
    assert!(!run(d, &["id", "show"], Some("wrong\n")).status.success());
}

#[test]
fn demo_nodes_converge_and_verify_catches_tampering() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let out = ok(&run(d, &["demo", "--events", "1000", "--peers", "2"], None));
    // One row per node: name, identity, events, logs, digest over every log root.
    let rows: Vec<Vec<&str>> = out
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .filter(|w| w.len() == 5 && ["A", "B", "C"].contains(&w[0]))
        .collect();
    assert_eq!(rows.len(), 3, "{out}");
    for r in &rows {
        assert_eq!(r[2], "3000", "{out}");
        assert_eq!(r[3], "3", "{out}");
        assert_eq!(r[4], rows[0][4], "{out}");
    }
    assert!(out.contains("signature verified on node C"), "{out}");
    assert_eq!(out.matches(": ok").count(), 2, "{out}");
    // A's store keeps the group: a second run adds to it and still converges.
    let again = ok(&run(d, &["demo", "--events", "10", "--peers", "1"], None));
    assert!(again.contains("(earlier run)"), "{again}");
    assert!(ok(&run(d, &["stats"], None)).contains("events       3020"));

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
fn daemon_invite_join_and_peers() {
    let one = tempfile::tempdir().unwrap();
    let two = tempfile::tempdir().unwrap();
    for i in 0..5 {
        ok(&run(one.path(), &["write", &format!("note {i}")], None));
    }
    let mut daemon = Command::new(env!("CARGO_BIN_EXE_xaeroflux"))
        .arg("--data-dir")
        .arg(one.path())
        .args([
            "daemon",
            "--bind",
            "127.0.0.1:0",
            "--invite",
            "--api-bind",
            "127.0.0.1:0",
        ])
        .env("XAERO_CONFIG", one.path().join("absent.toml"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(daemon.stdout.take().unwrap()).lines();
    let invite = loop {
        let line = lines.next().expect("daemon ended early").unwrap();
        if let Some(i) = line.trim().strip_prefix("invite") {
            break i.trim().to_string();
        }
    };
    assert!(invite.starts_with("xfx1"), "{invite}");

    let join = ok(&run(
        two.path(),
        &[
            "group",
            "join",
            &invite,
            "--wait",
            "60",
            "--bind",
            "127.0.0.1:0",
        ],
        None,
    ));
    assert!(join.contains("connected"), "{join}");
    assert!(join.contains("events     5 in the group"), "{join}");
    // The inviting peer is remembered for the next daemon start.
    let peers = ok(&run(two.path(), &["peers"], None));
    assert_eq!(peers.lines().count(), 1, "{peers}");
    assert!(peers.contains("127.0.0.1:"), "{peers}");
    let groups = ok(&run(two.path(), &["group", "list"], None));
    assert!(groups.contains("1 logs, 5 events"), "{groups}");
    let joined = groups
        .lines()
        .find(|l| l.contains("5 events"))
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap();
    let notes = ok(&run(two.path(), &["query", "--group", joined], None));
    for i in 0..5 {
        assert!(notes.contains(&format!("\"note {i}\"")), "{notes}");
    }

    // Ctrl-C stops the daemon cleanly.
    let pid = daemon.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-INT", &pid])
            .status()
            .unwrap()
            .success()
    );
    let rest: Vec<String> = lines.map(Result::unwrap).collect();
    assert!(daemon.wait().unwrap().success());
    assert!(rest.iter().any(|l| l.contains("stopping")), "{rest:?}");
}

#[test]
fn config_file_and_group_create() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("config.toml");
    let data = dir.path().join("data");
    std::fs::write(
        &conf,
        format!("data_dir = {:?}\ndurability = \"immediate\"\n", data),
    )
    .unwrap();
    let xf = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_xaeroflux"))
            .arg("--config")
            .arg(&conf)
            .args(args)
            .env_remove("XAERO_DATA_DIR")
            .output()
            .unwrap()
    };
    let created = ok(&xf(&["group", "create"]));
    assert_eq!(created.trim().len(), 64, "{created}");
    let list = ok(&xf(&["group", "list"]));
    assert_eq!(list.lines().count(), 2, "{list}");
    assert!(list.contains(created.trim()), "{list}");
    assert!(
        data.join("identity.key").exists(),
        "the file's data_dir is used"
    );

    std::fs::write(&conf, "durability = \"sometimes\"\n").unwrap();
    let bad = xf(&["stats"]);
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(
        err.contains("unknown durability") && err.contains("config.toml"),
        "{err}"
    );
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
        .map(|t| ok(&run(d, &["write", t], None)).trim().to_string())
        .collect();
    // Same words, another type that is not searched.
    ok(&run(
        d,
        &["write", "-t", "2000", "vector search over hnsw graph"],
        None,
    ));

    let out = ok(&run(
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
    let stats = ok(&run(d, &["stats"], None));
    assert!(
        stats.contains("vector index 4 vectors of dim 256, covers 5 events"),
        "{stats}"
    );

    // A later search indexes only what is new, and finds it.
    let new_id = ok(&run(d, &["write", "hybrid logical clocks"], None))
        .trim()
        .to_string();
    let out = ok(&run(
        d,
        &["search", "--text", "hybrid logical clock", "-k", "1"],
        None,
    ));
    assert!(out.contains(&new_id), "{out}");
    assert!(ok(&run(d, &["stats"], None)).contains("vector index 5 vectors"));

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
    let out = ok(&run(
        d,
        &["search", "-k", "2"],
        Some(&format!("[{}]", v.join(","))),
    ));
    assert_eq!(out.lines().count(), 2, "{out}");
}

#[test]
fn doc_new_append_edit_show_ls() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(&run(d, &["id", "new"], None));
    let id = ok(&run(d, &["doc", "new", "notes/n1", "hello"], None));
    assert_eq!(id.trim().len(), 64, "{id}");
    // A second `doc new` must not write into the existing document.
    assert!(
        !run(d, &["doc", "new", "notes/n1", "again"], None)
            .status
            .success()
    );
    ok(&run(d, &["doc", "append", "notes/n1", " world"], None));
    ok(&run(
        d,
        &[
            "doc", "edit", "notes/n1", "--at", "0", "--delete", "5", "--insert", "HELLO",
        ],
        None,
    ));
    assert_eq!(
        ok(&run(d, &["doc", "show", "notes/n1"], None)),
        "HELLO world\n"
    );
    ok(&run(
        d,
        &["doc", "append", "notes/n1", "x", "--container", "title"],
        None,
    ));
    let json: serde_json::Value =
        serde_json::from_str(&ok(&run(d, &["doc", "show", "notes/n1", "--json"], None))).unwrap();
    assert_eq!(json["body"], "HELLO world");
    assert_eq!(json["title"], "x");
    assert_eq!(ok(&run(d, &["doc", "ls"], None)), "notes/n1\t4 updates\n");
    let missing = run(d, &["doc", "show", "notes/none"], None);
    assert_eq!(missing.status.code(), Some(1));
    assert!(
        !run(d, &["doc", "edit", "notes/none", "--at", "0"], None)
            .status
            .success()
    );
}
