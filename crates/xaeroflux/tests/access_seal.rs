//! Automatic payload encryption in a group under access control: `write_event` seals,
//! the read API and the vector indexer see plaintext, events sealed under an epoch key
//! this node does not hold stay closed, and uncontrolled groups are untouched.
#![allow(clippy::unwrap_used)]

mod vector_common;

use vector_common::*;
use xaeroflux::AccessError;
use xaeroflux::access_control::{
    ENVELOPE_OVERHEAD, EpochKey, OpenError, SeededEntropy, seal_payload,
};

#[test]
fn write_event_seals_and_members_search_plaintext() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let g = store.default_group();
    // Before the group is controlled: stored as written.
    let plain_id = store.write_event(b"before control", TEXT).unwrap();
    store.access_create(&g).unwrap();
    let mut ids = Vec::new();
    for i in 0..60 {
        ids.push(store.write_event(text(i).as_bytes(), TEXT).unwrap());
    }
    // A payload sealed under a key this node never held (as for a member removed
    // before that epoch): stored, but nobody here can open it.
    let foreign = EpochKey::generate(7, &mut SeededEntropy::new(3)).unwrap();
    let closed = seal_payload(
        &g,
        TEXT,
        &foreign,
        b"not for us",
        &mut SeededEntropy::new(4),
    )
    .unwrap();
    let closed_id = store.engine().write_event(&closed, TEXT).unwrap();
    store.flush().unwrap();

    // Stored sealed; read back as plaintext.
    let raw = store.engine().get(&ids[5]).unwrap().unwrap();
    assert_eq!(raw.payload.len(), text(5).len() + ENVELOPE_OVERHEAD);
    assert!(
        !raw.payload
            .windows(5)
            .any(|w| w == &text(5).as_bytes()[..5])
    );
    assert_eq!(&store.plaintext(&raw).unwrap()[..], text(5).as_bytes());
    assert_eq!(
        store.get_plain(&ids[5]).unwrap().unwrap().payload,
        text(5).into_bytes()
    );
    let e = store.engine().get(&closed_id).unwrap().unwrap();
    assert!(matches!(
        store.plaintext(&e),
        Err(AccessError::Open(OpenError::NoKey { epoch: 7, .. }))
    ));
    // Written (in clear) before the group's first epoch: read as it is.
    assert_eq!(
        store.get_plain(&plain_id).unwrap().unwrap().payload,
        b"before control"
    );

    // The indexer extracts from the plaintext; the closed event is skipped.
    start(&store, &[TEXT], config());
    let s = wait_indexed(&store);
    assert_eq!(s.indexed, 61);
    assert_eq!(s.skipped, 1);
    let q = NgramTextExtractor::new(DIM, 3)
        .unwrap()
        .embed(&text(42))
        .unwrap();
    let hits = store.search_vector_events(&q, 1, 0.0).unwrap();
    assert_eq!(hits[0].id, ids[42]);
    assert_eq!(
        &store.plaintext(&hits[0].event).unwrap()[..],
        text(42).as_bytes()
    );
    store.close().unwrap();
}

#[test]
fn uncontrolled_groups_are_not_sealed() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let id = store.write_event(b"plain", TEXT).unwrap();
    store.flush().unwrap();
    let e = store.engine().get(&id).unwrap().unwrap();
    assert_eq!(e.payload, b"plain");
    assert_eq!(&store.plaintext(&e).unwrap()[..], b"plain");
    // Sealing needs an encrypted group.
    assert!(matches!(
        store.write_sealed(&store.default_group(), b"x", TEXT),
        Err(AccessError::Refused { .. })
    ));
    store.close().unwrap();
}

use xaeroflux::NgramTextExtractor;
