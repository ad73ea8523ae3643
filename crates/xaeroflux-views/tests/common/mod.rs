//! Helpers of the views tests.
#![allow(dead_code, clippy::unwrap_used)]

use std::path::Path;
use std::sync::Arc;

use xaeroflux::{GroupId, Hlc, XaeroFlux, XaeroKeypair};
use xaeroflux_views::{Op, RECORD_OP_TYPE, Stamp, State, Views, ViewsConfig};

/// An offline store in `dir` with a fixed identity.
pub fn store(dir: &Path, seed: u8) -> Arc<XaeroFlux> {
    Arc::new(
        XaeroFlux::builder(dir)
            .identity(XaeroKeypair::generate_from_seed(&[seed; 32]))
            .offline()
            .open()
            .unwrap(),
    )
}

/// Views of `store` in `dir/views`.
pub fn views(store: &Arc<XaeroFlux>, dir: &Path) -> Views {
    Views::open(store.clone(), ViewsConfig::new(dir.join("views"))).unwrap()
}

/// Every record operation of `group` in the store with its stamp (undecodable skipped).
pub fn ops_in_log(store: &XaeroFlux, group: &GroupId) -> Vec<(Stamp, Op)> {
    let snap = store.read().unwrap();
    snap.by_type(group, RECORD_OP_TYPE, Hlc::from_u64(0))
        .unwrap()
        .filter_map(|e| {
            let e = e.unwrap();
            let h = &e.event.header;
            let op = Op::decode(e.event.payload).ok()?;
            Some((
                Stamp {
                    hlc: h.hlc.as_u64(),
                    author: h.author.0,
                    seq: h.seq,
                },
                op,
            ))
        })
        .collect()
}

/// The pure fold of the log's operations of `group` with `hlc <= upto`: the reference
/// the views must equal.
pub fn fold_log(store: &XaeroFlux, group: &GroupId, upto: u64) -> State {
    let mut s = State::new();
    for (st, op) in ops_in_log(store, group) {
        if st.hlc <= upto {
            s.apply(st, &op);
        }
    }
    s
}

/// Writes `items/late` with a field `n` through the store directly; returns the value.
pub fn store_write_one(store: &XaeroFlux, group: &GroupId) -> xaeroflux_views::Value {
    let value = xaeroflux_views::Value::Int(4242);
    let op = Op::Put {
        record: xaeroflux_views::RecordRef::new("items", "late"),
        fields: [("n".to_string(), value.clone())].into(),
    };
    store
        .write_reserved_to(group, &op.encode().unwrap(), RECORD_OP_TYPE)
        .unwrap();
    store.flush().unwrap();
    value
}
