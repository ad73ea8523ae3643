//! Invites issued by a node survive a restart, with their used / revoked state read
//! back from the membership log; a damaged invites file does not stop the store.
#![allow(clippy::unwrap_used)]

use std::path::Path;

use xaeroflux::access_control::{InviteStatus, Role};
use xaeroflux::{IdHash, XaeroFlux, XaeroKeypair};

fn open(dir: &Path) -> XaeroFlux {
    XaeroFlux::builder(dir)
        .identity(XaeroKeypair::generate_from_seed(&[1; 32]))
        .offline()
        .open()
        .unwrap()
}

fn far_future() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
        + 3_600_000
}

fn status(store: &XaeroFlux, id: [u8; 16]) -> InviteStatus {
    let g = store.default_group();
    let all = store.access_invites(&g).unwrap();
    all.iter().find(|(i, _)| i.id() == id).unwrap().1
}

#[test]
fn issued_invites_and_their_state_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let stranger = IdHash([9; 32]);
    let (w, r) = {
        let store = open(dir.path());
        let g = store.default_group();
        store.access_create(&g).unwrap();
        // Admission of a stranger's first connection needs an open invite issued here.
        assert!(!store.access_control().may_connect(&g, &stranger));
        let w = store
            .access_invite(&g, Role::Writer, far_future(), true)
            .unwrap();
        let r = store
            .access_invite(&g, Role::Reader, far_future(), false)
            .unwrap();
        store.access_revoke_invite(&g, r.id()).unwrap();
        assert!(store.access_control().may_connect(&g, &stranger));
        store.close().unwrap();
        (w.id(), r.id())
    };
    let store = open(dir.path());
    let g = store.default_group();
    assert_eq!(store.access_invites(&g).unwrap().len(), 2);
    assert_eq!(status(&store, w), InviteStatus::Open);
    assert_eq!(status(&store, r), InviteStatus::Revoked);
    // The open invite still admits its invitee's first connection after the restart.
    assert!(store.access_control().may_connect(&g, &stranger));
    store.access_revoke_invite(&g, w).unwrap();
    assert!(!store.access_control().may_connect(&g, &stranger));
    store.close().unwrap();

    // A partial entry appended to the file (a torn write): skipped, the rest loads.
    let path = dir.path().join("access").join(format!("{g}.invites"));
    let mut bytes = std::fs::read(&path).unwrap();
    bytes.extend_from_slice(&[0xAB; 100]);
    std::fs::write(&path, &bytes).unwrap();
    let store = open(dir.path());
    assert_eq!(store.access_invites(&g).unwrap().len(), 2);
    assert_eq!(status(&store, w), InviteStatus::Revoked);
    assert!(!store.access_control().may_connect(&g, &stranger));
    store.close().unwrap();

    // A whole entry of garbage: skipped too.
    let mut bytes = std::fs::read(&path).unwrap();
    bytes.truncate(2 * xaeroflux::access_control::INVITE_LEN);
    bytes.extend(std::iter::repeat_n(
        0x5Au8,
        xaeroflux::access_control::INVITE_LEN,
    ));
    std::fs::write(&path, &bytes).unwrap();
    let store = open(dir.path());
    assert_eq!(store.access_invites(&g).unwrap().len(), 2);
    store.close().unwrap();
}
