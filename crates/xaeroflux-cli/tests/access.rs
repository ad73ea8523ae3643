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
