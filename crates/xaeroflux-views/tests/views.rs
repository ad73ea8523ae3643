//! Views maintained from a real store: queries equal the pure fold of the log, the
//! past equals the log replayed up to an HLC, reopen and rebuild give the same root.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use proptest::prelude::*;
use xaeroflux::{Error, Hlc};
use xaeroflux_views::{
    ChangeFilter, Fields, Link, Op, RECORD_OP_TYPE, RecordRef, Value, ViewError, ViewLoad,
};

fn fields(kv: &[(&str, Value)]) -> Fields {
    kv.iter().map(|(k, v)| (k.to_string(), v.clone())).collect()
}

#[test]
fn board_app_queries() {
    let dir = tempfile::tempdir().unwrap();
    let store = common::store(dir.path(), 1);
    let v = common::views(&store, dir.path());
    let g = store.default_group();
    v.put(&g, ("boards", "b1"), fields(&[("name", "Launch".into())]))
        .unwrap();
    for (k, title) in [("c1", "Write docs"), ("c2", "Fix bug"), ("c3", "Ship")] {
        v.put(
            &g,
            ("cards", k),
            fields(&[("title", title.into()), ("done", false.into())]),
        )
        .unwrap();
        v.link(&g, ("cards", k), "on", ("boards", "b1")).unwrap();
    }
    v.set(&g, ("cards", "c2"), "done", true).unwrap();
    v.delete(&g, ("cards", "c3")).unwrap();
    v.flush().unwrap();

    let c2 = v.get(&g, ("cards", "c2")).unwrap().unwrap();
    assert_eq!(c2["done"], Value::Bool(true));
    assert_eq!(c2["title"], Value::from("Fix bug"));
    assert_eq!(v.get(&g, ("cards", "c3")).unwrap(), None);
    assert!(
        v.record_state(&g, ("cards", "c3"))
            .unwrap()
            .unwrap()
            .is_tombstone()
    );
    let keys: Vec<String> = v
        .scan(&g, "cards", "")
        .unwrap()
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(keys, ["c1", "c2"]);
    assert_eq!(v.scan(&g, "cards", "c2").unwrap().len(), 1);
    assert_eq!(
        v.scan_after(&g, "cards", "", Some("c1"), 10).unwrap()[0].0,
        "c2"
    );
    let on_board: Vec<String> = v
        .links_to(&g, ("boards", "b1"))
        .unwrap()
        .into_iter()
        .map(|l| l.other.key)
        .collect();
    assert_eq!(
        on_board,
        ["c1", "c2"],
        "the deleted card's relation is hidden"
    );
    assert_eq!(
        v.links_from(&g, ("cards", "c1")).unwrap(),
        vec![Link {
            rel: "on".into(),
            other: RecordRef::new("boards", "b1")
        }]
    );

    // The same as the pure fold of the log, root included.
    let reference = common::fold_log(&store, &g, u64::MAX);
    assert_eq!(v.state_root(&g).unwrap(), reference.root().unwrap());
    assert_eq!(
        v.scan(&g, "cards", "").unwrap(),
        reference.scan("cards", "")
    );
    assert_eq!(
        v.links_to(&g, ("boards", "b1")).unwrap(),
        reference.links_to(&RecordRef::new("boards", "b1"))
    );
    let stats = v.stats().unwrap();
    assert_eq!(
        (stats.applied, stats.skipped, stats.load),
        (9, 0, ViewLoad::Created)
    );
}

#[test]
fn reserved_types_outside_the_views_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = common::store(dir.path(), 2);
    let g = store.default_group();
    // 16 (membership ops) belongs to access control and is accepted; 64 (blob
    // attachments) too, if its payload decodes as an attachment.
    for t in [0, 17, 31, 65, 255] {
        assert!(matches!(
            store.write_reserved_to(&g, b"x", t),
            Err(Error::ReservedEventType { event_type }) if event_type == t
        ));
    }
    assert!(matches!(
        store.write_reserved_to(&g, b"x", 64),
        Err(Error::InvalidReservedPayload { event_type: 64 })
    ));
    assert!(matches!(
        store.write_event(b"x", RECORD_OP_TYPE),
        Err(Error::ReservedEventType { .. })
    ));
    store.write_reserved_to(&g, b"x", 63).unwrap();
    store.write_reserved_to(&g, b"x", 1000).unwrap();
}

#[test]
fn malformed_operations_are_skipped_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let store = common::store(dir.path(), 3);
    let v = common::views(&store, dir.path());
    let g = store.default_group();
    store
        .write_reserved_to(&g, &[1, 9, 0], RECORD_OP_TYPE)
        .unwrap();
    store.write_reserved_to(&g, &[7], RECORD_OP_TYPE).unwrap();
    v.set(&g, ("c", "k"), "f", 1i64).unwrap();
    v.flush().unwrap();
    let st = v.stats().unwrap();
    assert_eq!((st.applied, st.skipped), (1, 2));
    assert_eq!(v.get(&g, ("c", "k")).unwrap().unwrap()["f"], Value::Int(1));
}

#[test]
fn reopen_resumes_and_a_second_view_rebuilds_the_same_root() {
    let dir = tempfile::tempdir().unwrap();
    let store = common::store(dir.path(), 4);
    let g = store.default_group();
    let root = {
        let v = common::views(&store, dir.path());
        for i in 0..50 {
            v.set(&g, ("items", format!("k{}", i % 7).as_str()), "n", i as i64)
                .unwrap();
        }
        v.flush().unwrap();
        v.state_root(&g).unwrap()
    };
    // Written while the views were closed: caught up on reopen.
    let later = common::store_write_one(&store, &g);
    let v = common::views(&store, dir.path());
    v.flush().unwrap();
    assert_eq!(v.stats().unwrap().load, ViewLoad::Loaded);
    assert_ne!(v.state_root(&g).unwrap(), root);
    assert_eq!(v.get(&g, ("items", "late")).unwrap().unwrap()["n"], later);
    let other = xaeroflux_views::Views::open(
        store.clone(),
        xaeroflux_views::ViewsConfig::new(dir.path().join("views2")),
    )
    .unwrap();
    other.flush().unwrap();
    assert_eq!(other.state_root(&g).unwrap(), v.state_root(&g).unwrap());
    assert_eq!(
        other.state_root(&g).unwrap(),
        common::fold_log(&store, &g, u64::MAX).root().unwrap()
    );
}

#[test]
fn views_of_another_store_are_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let views_dir = dir.path().join("shared-views");
    {
        let a = common::store(&dir.path().join("a"), 5);
        let v =
            xaeroflux_views::Views::open(a.clone(), xaeroflux_views::ViewsConfig::new(&views_dir))
                .unwrap();
        for i in 0..5 {
            v.set(&a.default_group(), ("x", "k"), "n", i as i64)
                .unwrap();
        }
        v.flush().unwrap();
    }
    let b = common::store(&dir.path().join("b"), 6);
    let gb = b.default_group();
    for i in 0..8 {
        b.write_reserved_to(
            &gb,
            &Op::Delete {
                record: RecordRef::new("y", format!("{i}")),
            }
            .encode()
            .unwrap(),
            RECORD_OP_TYPE,
        )
        .unwrap();
    }
    b.flush().unwrap();
    let v = xaeroflux_views::Views::open(b.clone(), xaeroflux_views::ViewsConfig::new(&views_dir))
        .unwrap();
    v.flush().unwrap();
    assert_eq!(v.stats().unwrap().load, ViewLoad::Rebuilt);
    assert_eq!(
        v.state_root(&gb).unwrap(),
        common::fold_log(&b, &gb, u64::MAX).root().unwrap()
    );
}

#[test]
fn change_subscriptions_replay_then_follow() {
    let dir = tempfile::tempdir().unwrap();
    let store = common::store(dir.path(), 7);
    let v = common::views(&store, dir.path());
    let g = store.default_group();
    v.set(&g, ("cards", "a1"), "t", "one").unwrap();
    v.set(&g, ("cards", "b1"), "t", "other").unwrap();
    v.flush().unwrap();
    let mut prefix = v.subscribe(ChangeFilter::prefix(g, "cards", "a")).unwrap();
    let mut one = v
        .subscribe(ChangeFilter::record(g, ("cards", "b1")))
        .unwrap();
    let first = prefix
        .next_timeout(Duration::from_secs(5))
        .unwrap()
        .unwrap();
    assert_eq!(
        (first.record.key.as_str(), first.old.clone(), first.stamp),
        ("a1", None, None)
    );
    v.set(&g, ("cards", "a1"), "t", "two").unwrap();
    v.set(&g, ("cards", "zz"), "t", "ignored").unwrap();
    v.delete(&g, ("cards", "a1")).unwrap();
    v.set(&g, ("cards", "a2"), "t", "new").unwrap();
    v.flush().unwrap();
    let mut got = Vec::new();
    while let Some(c) = prefix.next_timeout(Duration::from_millis(200)).unwrap() {
        got.push((
            c.record.key,
            c.old.map(|f| f["t"].clone()),
            c.new.map(|f| f["t"].clone()),
        ));
    }
    assert_eq!(
        got,
        vec![
            ("a1".into(), Some("one".into()), Some("two".into())),
            ("a1".into(), Some("two".into()), None),
            ("a2".into(), None, Some("new".into())),
        ]
    );
    let b1 = one.try_next().unwrap().unwrap();
    assert_eq!(b1.new.unwrap()["t"], Value::from("other"));
    assert!(one.try_next().unwrap().is_none());
}

#[test]
fn a_subscriber_that_falls_behind_is_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let store = common::store(dir.path(), 8);
    let v = common::views(&store, dir.path());
    let g = store.default_group();
    let mut s = v.subscribe(ChangeFilter::collection(g, "c")).unwrap();
    for i in 0..(xaeroflux_views::CHANGE_QUEUE as i64 + 10) {
        v.set(&g, ("c", "k"), "n", i).unwrap();
    }
    v.flush().unwrap();
    let mut n = 0;
    let err = loop {
        match s.try_next() {
            Ok(Some(_)) => n += 1,
            Ok(None) => panic!("ended without lag after {n}"),
            Err(e) => break e,
        }
    };
    assert!(matches!(err, ViewError::Lagged));
    assert_eq!(n, xaeroflux_views::CHANGE_QUEUE);
}

fn small_op() -> impl Strategy<Value = Op> {
    let rec = (0..2usize, 0..4usize)
        .prop_map(|(c, k)| RecordRef::new(["a", "b"][c], ["k1", "k2", "x1", "x2"][k]));
    let val = (0i64..5).prop_map(Value::Int);
    prop_oneof![
        (
            rec.clone(),
            proptest::collection::btree_map("[fg]", val.clone(), 0..2)
        )
            .prop_map(|(record, fields)| Op::Put { record, fields }),
        (
            rec.clone(),
            proptest::collection::btree_map("[fg]", proptest::option::of(val), 1..2)
        )
            .prop_map(|(record, fields)| Op::Patch { record, fields }),
        rec.clone().prop_map(|record| Op::Delete { record }),
        (rec.clone(), rec.clone()).prop_map(|(from, to)| Op::Link {
            from,
            rel: "r".into(),
            to
        }),
        (rec.clone(), rec).prop_map(|(from, to)| Op::Unlink {
            from,
            rel: "r".into(),
            to
        }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]

    /// Views on disk equal the pure fold of the log, now and as of every HLC in it
    /// (records, scans, and relations out of and into records).
    #[test]
    fn views_equal_the_fold_of_the_log_at_every_hlc(ops in proptest::collection::vec(small_op(), 1..40)) {
        let dir = tempfile::tempdir().unwrap();
        let store = common::store(dir.path(), 9);
        let v = common::views(&store, dir.path());
        let g = store.default_group();
        for op in &ops {
            v.write_op(&g, op).unwrap();
        }
        v.flush().unwrap();
        let now = common::fold_log(&store, &g, u64::MAX);
        prop_assert_eq!(v.state_root(&g).unwrap(), now.root().unwrap());
        let mut hlcs: Vec<u64> = common::ops_in_log(&store, &g).iter().map(|(s, _)| s.hlc).collect();
        hlcs.dedup();
        hlcs.push(0);
        for h in hlcs {
            let past = common::fold_log(&store, &g, h);
            for c in ["a", "b"] {
                prop_assert_eq!(v.scan_as_of(&g, c, "", Hlc::from_u64(h)).unwrap(), past.scan(c, ""));
                prop_assert_eq!(v.scan_as_of(&g, c, "k", Hlc::from_u64(h)).unwrap(), past.scan(c, "k"));
                for k in ["k1", "x2"] {
                    let r = RecordRef::new(c, k);
                    prop_assert_eq!(v.get_as_of(&g, &r, Hlc::from_u64(h)).unwrap(), past.get(&r));
                }
                for k in ["k1", "k2", "x1", "x2"] {
                    let r = RecordRef::new(c, k);
                    prop_assert_eq!(v.links_from_as_of(&g, &r, Hlc::from_u64(h)).unwrap(), past.links_from(&r));
                    prop_assert_eq!(v.links_to_as_of(&g, &r, Hlc::from_u64(h)).unwrap(), past.links_to(&r));
                }
            }
        }
        for c in ["a", "b"] {
            for k in ["k1", "k2", "x1", "x2"] {
                let r = RecordRef::new(c, k);
                prop_assert_eq!(v.get(&g, &r).unwrap(), now.get(&r));
                prop_assert_eq!(v.links_from(&g, &r).unwrap(), now.links_from(&r));
                prop_assert_eq!(v.links_to(&g, &r).unwrap(), now.links_to(&r));
            }
        }
    }
}
