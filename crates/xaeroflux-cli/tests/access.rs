//! `xaeroflux group control | members | key | add | role | remove | invite` on local
//! stores (no daemon, no network).
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::Output;

mod common;

fn run(dir: &Path, args: &[&str]) -> Output {
    common::run(dir, args, None)
}

fn ok(dir: &Path, args: &[&str]) -> String {
    let o = run(dir, args);
    assert!(
        o.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

#[test]
fn owner_adds_promotes_removes_and_invites() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (a, b) = (a.path(), b.path());
    // Not under access control yet.
    assert!(!run(a, &["group", "members"]).status.success());
    ok(a, &["group", "control"]);
    let members = ok(a, &["group", "members"]);
    assert_eq!(members.lines().count(), 1, "{members}");
    assert!(members.contains("owner (you)"), "{members}");

    let key = ok(b, &["group", "key"]);
    assert_eq!(key.trim().len(), 898 * 2);
    let added = ok(a, &["group", "add", key.trim(), "--role", "reader"]);
    let did = added.split_whitespace().nth(1).unwrap().to_string();
    assert!(did.starts_with("did:xaero:"), "{added}");
    let members = ok(a, &["group", "members"]);
    assert!(members.contains(&format!("{did}  reader")), "{members}");

    ok(a, &["group", "role", &did, "writer"]);
    assert!(ok(a, &["group", "members"]).contains(&format!("{did}  writer")));
    // The owner role cannot be granted.
    assert!(!run(a, &["group", "role", &did, "owner"]).status.success());

    ok(a, &["group", "remove", &did]);
    let members = ok(a, &["group", "members"]);
    assert!(!members.contains(&did), "{members}");
    assert_eq!(members.lines().count(), 1);

    let inv = ok(
        a,
        &[
            "group",
            "invite",
            "--role",
            "reader",
            "--expires",
            "1h",
            "--single-use",
        ],
    );
    assert!(inv.trim().starts_with("xfi1"), "{inv}");
    assert!(
        !run(a, &["group", "invite", "--expires", "3w"])
            .status
            .success()
    );
}

/// While a daemon holds the store, `group` commands go through its API.
#[test]
fn group_commands_go_through_the_daemon() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};

    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (a, b) = (a.path(), b.path());
    let key = ok(b, &["group", "key"]);
    let mut daemon = common::xf(a)
        .args([
            "daemon",
            "--bind",
            "127.0.0.1:0",
            "--api-bind",
            "127.0.0.1:0",
            "--no-lan",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(daemon.stdout.take().unwrap()).lines();
    loop {
        let line = lines.next().expect("daemon ended early").unwrap();
        if line.starts_with("syncing") {
            break;
        }
    }
    std::thread::spawn(move || for _ in lines {});

    ok(a, &["group", "control"]);
    let added = ok(a, &["group", "add", key.trim(), "--role", "reader"]);
    let did = added.split_whitespace().nth(1).unwrap().to_string();
    assert!(ok(a, &["group", "members"]).contains(&format!("{did}  reader")));
    let inv = ok(
        a,
        &["group", "invite", "--role", "writer", "--expires", "1h"],
    );
    assert!(inv.trim().starts_with("xfi1"), "{inv}");
    let listed = ok(a, &["group", "invites"]);
    let id = listed.split_whitespace().next().unwrap().to_string();
    assert!(listed.contains("writer  open"), "{listed}");
    ok(a, &["group", "revoke", &id]);
    assert!(ok(a, &["group", "invites"]).contains("writer  revoked"));
    assert!(ok(a, &["group", "rotate"]).contains("epoch 2"));
    ok(a, &["group", "remove", &did]);
    assert!(!ok(a, &["group", "members"]).contains(&did));
    // The daemon really held the store: the local path could not have opened it.
    assert!(a.join("api.addr").exists());

    let pid = daemon.id().to_string();
    let _ = Command::new("kill").args(["-INT", &pid]).status();
    let _ = daemon.wait();
    // After the daemon: the same state, read from the store itself.
    let members = ok(a, &["group", "members"]);
    assert_eq!(members.lines().count(), 1, "{members}");
}
