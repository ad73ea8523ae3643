//! State views over an encrypted group: operations are sealed in the log, the views
//! fold their plaintext, and an operation sealed under an epoch key this node does not
//! hold (e.g. written after its removal) is skipped.
#![allow(clippy::unwrap_used)]

mod common;

use xaeroflux::Hlc;
use xaeroflux::access_control::{ENVELOPE_OVERHEAD, EpochKey, SeededEntropy, seal_payload};
use xaeroflux_views::{Fields, Op, RECORD_OP_TYPE, Value};

#[test]
fn views_fold_the_plaintext_of_sealed_operations() {
    let dir = tempfile::tempdir().unwrap();
    let store = common::store(dir.path(), 1);
    let g = store.default_group();
    store.access_create(&g).unwrap();
    let v = common::views(&store, dir.path());
    let title: Fields = [("title".to_string(), Value::from("Secret plan"))].into();
    v.put(&g, ("cards", "c1"), title.clone()).unwrap();
    v.set(&g, ("cards", "c1"), "done", true).unwrap();
    v.flush().unwrap();

    // In the log: envelopes, not operations.
    let snap = store.read().unwrap();
    let raw: Vec<_> = snap
        .by_type(&g, RECORD_OP_TYPE, Hlc::from_u64(0))
        .unwrap()
        .map(|e| e.unwrap().event.to_owned())
        .collect();
    drop(snap);
    assert_eq!(raw.len(), 2);
    for e in &raw {
        assert!(Op::decode(&e.payload).is_err());
        let plain = store.plaintext(e).unwrap();
        assert_eq!(e.payload.len(), plain.len() + ENVELOPE_OVERHEAD);
        assert!(Op::decode(&plain).is_ok());
    }
    // In the views: the plaintext.
    let card = v.get(&g, ("cards", "c1")).unwrap().unwrap();
    assert_eq!(card["title"], Value::from("Secret plan"));
    assert_eq!(card["done"], Value::Bool(true));
    assert_eq!(v.stats().unwrap().skipped, 0);

    // An operation sealed under a key this node never received: stored (a writer sent
    // it), not folded.
    let foreign = EpochKey::generate(9, &mut SeededEntropy::new(1)).unwrap();
    let op = Op::Put {
        record: ("cards", "c2").into(),
        fields: title,
    };
    let sealed = seal_payload(
        &g,
        RECORD_OP_TYPE,
        &foreign,
        &op.encode().unwrap(),
        &mut SeededEntropy::new(2),
    )
    .unwrap();
    store
        .engine()
        .write_reserved_to(&g, &sealed, RECORD_OP_TYPE)
        .unwrap();
    v.flush().unwrap();
    assert!(v.get(&g, ("cards", "c2")).unwrap().is_none());
    assert_eq!(v.stats().unwrap().skipped, 1);
}
