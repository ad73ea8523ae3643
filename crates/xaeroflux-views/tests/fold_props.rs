//! Order independence of the pure fold: random operations from 3-5 replicas,
//! delivered in random orders, with partitions and duplicates, end in the same state
//! root and the same query results.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use proptest::prelude::*;
use xaeroflux_views::{Fields, Link, Op, RecordRef, Stamp, State, Value};

const COLLECTIONS: [&str; 2] = ["cards", "boards"];
const KEYS: [&str; 3] = ["a", "b", "c"];
const FIELDS: [&str; 3] = ["title", "done", "n"];

fn rec() -> impl Strategy<Value = RecordRef> {
    (0..2usize, 0..3usize).prop_map(|(c, k)| RecordRef::new(COLLECTIONS[c], KEYS[k]))
}

fn value() -> impl Strategy<Value = Value> {
    prop_oneof![
        (0i64..4).prop_map(Value::Int),
        "[xy]{0,2}".prop_map(Value::Text),
        Just(Value::Null),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    let fields = proptest::collection::btree_map(
        (0..3usize).prop_map(|i| FIELDS[i].to_string()),
        value(),
        0..3,
    );
    let patch = proptest::collection::btree_map(
        (0..3usize).prop_map(|i| FIELDS[i].to_string()),
        proptest::option::of(value()),
        1..3,
    );
    prop_oneof![
        3 => (rec(), fields).prop_map(|(record, fields)| Op::Put { record, fields }),
        3 => (rec(), patch).prop_map(|(record, fields)| Op::Patch { record, fields }),
        2 => rec().prop_map(|record| Op::Delete { record }),
        2 => (rec(), rec()).prop_map(|(from, to)| Op::Link { from, rel: "on".into(), to }),
        1 => (rec(), rec()).prop_map(|(from, to)| Op::Unlink { from, rel: "on".into(), to }),
    ]
}

/// Operations of 3-5 replicas, each with its own author, increasing seq, and HLCs that
/// increase per replica from a random start (so concurrent replicas interleave and tie).
fn replicas() -> impl Strategy<Value = Vec<(Stamp, Op)>> {
    (3..=5usize)
        .prop_flat_map(|n| {
            proptest::collection::vec(
                (0u64..5, proptest::collection::vec((0u64..3, op()), 1..12)),
                n,
            )
        })
        .prop_map(|reps| {
            let mut all = Vec::new();
            for (r, (start, ops)) in reps.into_iter().enumerate() {
                let mut hlc = start;
                for (seq, (step, op)) in ops.into_iter().enumerate() {
                    hlc += step;
                    let stamp = Stamp {
                        hlc,
                        author: [r as u8 + 1; 32],
                        seq: seq as u64,
                    };
                    all.push((stamp, op));
                }
            }
            all
        })
}

/// Everything a query can show.
#[derive(Debug, PartialEq)]
struct Observed {
    root: [u8; 32],
    get: Vec<Option<Fields>>,
    scans: Vec<Vec<(String, Fields)>>,
    out: Vec<Vec<Link>>,
    into: Vec<Vec<Link>>,
}

fn observe(s: &State) -> Observed {
    let all: Vec<RecordRef> = COLLECTIONS
        .iter()
        .flat_map(|c| KEYS.iter().map(move |k| RecordRef::new(*c, *k)))
        .collect();
    Observed {
        root: s.root().unwrap(),
        get: all.iter().map(|r| s.get(r)).collect(),
        scans: COLLECTIONS
            .iter()
            .flat_map(|c| [s.scan(c, ""), s.scan(c, "b")])
            .collect(),
        out: all.iter().map(|r| s.links_from(r)).collect(),
        into: all.iter().map(|r| s.links_to(r)).collect(),
    }
}

fn fold<'a>(ops: impl IntoIterator<Item = &'a (Stamp, Op)>) -> State {
    let mut s = State::new();
    for (st, op) in ops {
        s.apply(*st, op);
    }
    s
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn any_delivery_order_gives_the_same_state(
        ops in replicas(),
        perm in any::<u64>(),
        split in any::<u64>(),
        dups in proptest::collection::vec(any::<prop::sample::Index>(), 0..6),
    ) {
        let reference = observe(&fold(&ops));

        // A random permutation (seeded Fisher-Yates).
        let mut shuffled = ops.clone();
        let mut x = perm | 1;
        for i in (1..shuffled.len()).rev() {
            x ^= x << 13; x ^= x >> 7; x ^= x << 17;
            shuffled.swap(i, (x % (i as u64 + 1)) as usize);
        }
        prop_assert_eq!(&observe(&fold(&shuffled)), &reference);

        // A partition: two sides each fold a subset (by author), then exchange the rest
        // in reverse order, with some operations delivered twice.
        let side = |st: &Stamp| (split >> (st.author[0] % 64)) & 1 == 0;
        let mut a = fold(ops.iter().filter(|(st, _)| side(st)));
        let mut b = fold(ops.iter().filter(|(st, _)| !side(st)));
        for (st, op) in ops.iter().rev() {
            if side(st) { b.apply(*st, op); } else { a.apply(*st, op); }
        }
        for d in &dups {
            let (st, op) = &ops[d.index(ops.len())];
            a.apply(*st, op);
        }
        prop_assert_eq!(&observe(&a), &reference);
        prop_assert_eq!(&observe(&b), &reference);
    }

    /// A record's fields are exactly what replaying in total order with plain
    /// overwrite semantics gives (an independent model of the rules).
    #[test]
    fn fields_match_a_sequential_model(ops in replicas()) {
        let mut sorted = ops.clone();
        sorted.sort_by_key(|(s, _)| *s);
        let mut model: BTreeMap<RecordRef, Option<Fields>> = BTreeMap::new();
        for (_, op) in &sorted {
            match op {
                Op::Put { record, fields } => { model.insert(record.clone(), Some(fields.clone())); }
                Op::Patch { record, fields } => {
                    let e = model.entry(record.clone()).or_insert(None);
                    let f = e.get_or_insert_with(Fields::new);
                    for (k, v) in fields {
                        match v { Some(v) => { f.insert(k.clone(), v.clone()); } None => { f.remove(k); } }
                    }
                }
                Op::Delete { record } => { model.insert(record.clone(), None); }
                _ => {}
            }
        }
        let s = fold(&ops);
        for (r, want) in model {
            prop_assert_eq!(s.get(&r), want, "{}", r);
        }
    }
}

fn st(hlc: u64, author: u8) -> Stamp {
    Stamp {
        hlc,
        author: [author; 32],
        seq: 0,
    }
}

#[test]
fn relations_to_deleted_records_disappear_and_later_links_survive() {
    let card = RecordRef::new("cards", "c1");
    let board = RecordRef::new("boards", "b1");
    let link = |h| {
        (
            st(h, 1),
            Op::Link {
                from: card.clone(),
                rel: "on".into(),
                to: board.clone(),
            },
        )
    };
    let mut s = State::new();
    let (a, b) = link(2);
    s.apply(a, &b);
    s.apply(
        st(1, 2),
        &Op::Put {
            record: card.clone(),
            fields: Fields::new(),
        },
    );
    assert_eq!(
        s.links_to(&board),
        vec![Link {
            rel: "on".into(),
            other: card.clone()
        }]
    );
    // Deleting the card (after the link) hides the relation from both ends.
    s.apply(
        st(3, 2),
        &Op::Delete {
            record: card.clone(),
        },
    );
    assert!(s.links_to(&board).is_empty());
    assert!(s.links_from(&card).is_empty());
    // A link ordered after the delete is visible again; one to a never-written record too.
    let (a, b) = link(4);
    s.apply(a, &b);
    assert_eq!(s.links_from(&card).len(), 1);
    let ghost = RecordRef::new("boards", "never");
    s.apply(
        st(5, 1),
        &Op::Link {
            from: card.clone(),
            rel: "on".into(),
            to: ghost.clone(),
        },
    );
    assert_eq!(s.links_from(&card).len(), 2);
    // Deleting the target hides it too.
    s.apply(
        st(6, 3),
        &Op::Delete {
            record: board.clone(),
        },
    );
    assert_eq!(
        s.links_from(&card),
        vec![Link {
            rel: "on".into(),
            other: ghost
        }]
    );
}

#[test]
fn concurrent_delete_and_put_have_one_winner_in_either_order() {
    let r = RecordRef::new("cards", "x");
    let put = (
        st(10, 1),
        Op::Put {
            record: r.clone(),
            fields: [("t".to_string(), Value::from("hi"))].into(),
        },
    );
    let del = (st(10, 2), Op::Delete { record: r.clone() });
    // Same HLC: the author breaks the tie; the delete (author 2) is ordered last.
    for order in [[&put, &del], [&del, &put]] {
        let s = fold(order);
        assert_eq!(s.get(&r), None);
        assert!(s.record_state(&r).unwrap().is_tombstone());
    }
    let put_later = (st(10, 3), put.1.clone());
    for order in [[&put_later, &del], [&del, &put_later]] {
        assert_eq!(fold(order).get(&r).unwrap()["t"], Value::from("hi"));
    }
}
