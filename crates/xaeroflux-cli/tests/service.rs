//! The CLI through a running daemon beyond the event commands: a daemon serving its API
//! on a Unix socket, and the `kv` and `doc` commands (record views, documents), which
//! must print the same through the daemon as on a store the CLI opens itself.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::Stdio;

mod common;

use common::daemon::Daemon;
use common::{ok, run, xf};

#[test]
fn cli_through_a_unix_socket() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(&run(d, &["write", "before the daemon"], None));
    let sock = d.join("api.sock");
    let daemon = Daemon::start_on(d, &format!("unix:{}", sock.display()), &[]);
    let addr = std::fs::read_to_string(d.join("api.addr")).unwrap();
    assert_eq!(addr.trim(), format!("unix:{}", sock.display()));
    assert!(
        daemon.out.iter().any(|l| l.contains("unix:")),
        "{:?}",
        daemon.out
    );

    // write / get / query / stats go through the socket (the daemon holds the store).
    let id = ok(&run(d, &["write", "over the socket"], None))
        .trim()
        .to_string();
    assert_eq!(id.len(), 64);
    let got: serde_json::Value =
        serde_json::from_str(&ok(&run(d, &["--json", "get", &id], None))).unwrap();
    assert_eq!(got["text"], "over the socket");
    assert_eq!(got["proof"]["verified"], true);
    let st = ok(&run(d, &["stats"], None));
    assert!(
        st.contains(&format!(
            "through      the daemon's api at unix:{}",
            sock.display()
        )),
        "{st}"
    );
    assert!(st.contains("events       2"), "{st}");

    // tail -f follows over the socket: history first, then a new write.
    let mut tail = xf(d)
        .args(["--json", "tail", "-n", "2", "-f"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(tail.stdout.take().unwrap()).lines();
    let mut next =
        || -> serde_json::Value { serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap() };
    assert_eq!(next()["text"], "before the daemon");
    assert_eq!(next()["text"], "over the socket");
    ok(&run(d, &["write", "followed over the socket"], None));
    assert_eq!(next()["text"], "followed over the socket");
    let _ = tail.kill();
    let _ = tail.wait();

    // The library client speaks the socket too, found from the published files.
    let c = daemon.client();
    assert_eq!(c.addr(), format!("unix:{}", sock.display()));
    assert_eq!(c.stats().unwrap().events, 3);

    daemon.stop();
    assert!(!sock.exists(), "the socket is removed on shutdown");
    assert!(!d.join("api.addr").exists());
}

/// Runs the same `kv` and `doc` commands; returns what the reading commands printed
/// (ids differ between stores and are checked for shape only).
fn state_session(d: &Path) -> Vec<String> {
    let id = |args: &[&str]| {
        let out = ok(&run(d, args, None));
        assert_eq!(out.trim().len(), 64, "{args:?}: {out}");
    };
    let mut shown = Vec::new();
    let mut show = |args: &[&str]| {
        let o = run(d, args, None);
        shown.push(format!(
            "{args:?} -> {:?} {}",
            o.status.code(),
            String::from_utf8_lossy(&o.stdout)
        ));
    };
    id(&[
        "kv",
        "put",
        "cards",
        "c1",
        "title=first",
        "n=3",
        "done=false",
    ]);
    id(&["kv", "put", "cards", "c2", "title=\"12\""]);
    id(&["kv", "put", "boards", "b1", "name=main"]);
    id(&["kv", "set", "cards", "c1", "n=4", "done="]);
    id(&["kv", "link", "cards/c1", "on", "boards/b1"]);
    id(&["kv", "del", "cards", "c2"]);
    show(&["kv", "get", "cards", "c1"]);
    show(&["--json", "kv", "get", "cards", "c1"]);
    show(&["kv", "get", "cards", "c2"]);
    show(&["kv", "ls", "cards"]);
    show(&["--json", "kv", "ls", "boards"]);
    assert_eq!(ok(&run(d, &["kv", "root"], None)).trim().len(), 64);

    id(&["doc", "new", "notes/n1", "hello"]);
    assert!(
        !run(d, &["doc", "new", "notes/n1", "again"], None)
            .status
            .success()
    );
    id(&["doc", "append", "notes/n1", " world"]);
    id(&[
        "doc", "edit", "notes/n1", "--at", "0", "--delete", "5", "--insert", "HELLO",
    ]);
    id(&["doc", "append", "notes/n1", "x", "--container", "title"]);
    show(&["doc", "show", "notes/n1"]);
    show(&["doc", "show", "notes/n1", "--container", "title"]);
    show(&["doc", "show", "notes/none"]);
    show(&["doc", "ls"]);
    show(&["--json", "doc", "ls"]);
    let whole: serde_json::Value =
        serde_json::from_str(&ok(&run(d, &["doc", "show", "notes/n1", "--json"], None))).unwrap();
    assert_eq!(whole["body"], "HELLO world");
    assert_eq!(whole["title"], "x");
    assert!(
        !run(d, &["doc", "edit", "notes/none", "--at", "0"], None)
            .status
            .success()
    );
    shown
}

#[test]
fn kv_and_doc_through_the_daemon() {
    let local = tempfile::tempdir().unwrap();
    ok(&run(local.path(), &["id", "new"], None));
    let expected = state_session(local.path());

    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(&run(d, &["id", "new"], None));
    let daemon = Daemon::start(d, &[]);
    let through = state_session(d);
    assert_eq!(through, expected);
    // Spot checks of the content, not only of the equality.
    assert!(through[0].contains("n=4 title=\"first\""), "{}", through[0]);
    assert!(through[2].contains("Some(1)"), "{}", through[2]);
    assert!(through.iter().any(|s| s.contains("HELLO world")));

    // The daemon's API sees what the commands wrote, and the state roots agree with
    // the local store's (same operations, different authors: compare record content).
    let c = daemon.client();
    let r = c.record("cards", "c1", None, None).unwrap().unwrap();
    assert_eq!(r.fields["n"], 4);
    let links = c.links("cards", "c1", None).unwrap();
    assert_eq!(links.from.len(), 1);
    assert_eq!(links.from[0].other.key, "b1");
    assert_eq!(
        c.doc_text("notes/n1", None, None).unwrap().as_deref(),
        Some("HELLO world")
    );
    let root = ok(&run(d, &["kv", "root"], None));
    assert_eq!(root.trim(), c.state_root(None).unwrap().root);
    daemon.stop();

    // After the daemon stops, the CLI opens the store itself and reads the same.
    let after = run(d, &["kv", "get", "cards", "c1"], None);
    assert_eq!(ok(&after), "n=4 title=\"first\"\n");
    assert_eq!(ok(&run(d, &["kv", "root"], None)), root);
}

#[test]
fn id_prints_json() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let made: serde_json::Value =
        serde_json::from_str(&ok(&run(d, &["--json", "id", "new"], None))).unwrap();
    let shown: serde_json::Value =
        serde_json::from_str(&ok(&run(d, &["--json", "id", "show"], None))).unwrap();
    assert_eq!(made, shown);
    assert!(
        shown["did"].as_str().unwrap().starts_with("did:"),
        "{shown}"
    );
    assert_eq!(shown["encrypted"], false);
    assert!(ok(&run(d, &["id", "show"], None)).starts_with("did        did:"));
}

/// `blob add | ls | get` through a running daemon: the file goes into the daemon's blob
/// store over the API, is listed there, and comes back byte for byte.
#[test]
fn blob_commands_through_the_daemon() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let daemon = Daemon::start(d, &[]);
    let src = d.join("attachment.bin");
    let bytes: Vec<u8> = (0..300_000u32).map(|i| (i * 7 + i / 251) as u8).collect();
    std::fs::write(&src, &bytes).unwrap();

    let added = ok(&run(d, &["blob", "add", src.to_str().unwrap()], None));
    let mut fields = added.split_whitespace();
    let hash = fields.next().unwrap().to_string();
    assert_eq!(hash, blake3::hash(&bytes).to_hex().to_string(), "{added}");
    assert_eq!(fields.next(), Some("300000"), "{added}");

    let listed = ok(&run(d, &["blob", "ls"], None));
    assert!(listed.contains(&hash), "{listed}");

    let out = d.join("back.bin");
    ok(&run(
        d,
        &["blob", "get", &hash, "-o", out.to_str().unwrap()],
        None,
    ));
    assert_eq!(std::fs::read(&out).unwrap(), bytes);
    daemon.stop();
}
