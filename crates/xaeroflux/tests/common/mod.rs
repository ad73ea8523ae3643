//! Helpers shared by the engine's sync tests.
#![allow(dead_code, clippy::unwrap_used)]

use xaeroflux::{AuthorId, GroupId, XaeroFlux};

/// (author, length, root) of every log of `g`, sorted: what two synced stores agree
/// on (their node-wide MMRs follow local arrival order and differ by design).
pub fn log_roots(store: &XaeroFlux, g: &GroupId) -> Vec<(AuthorId, u64, [u8; 32])> {
    let snap = store.read().unwrap();
    let mut v: Vec<_> = snap
        .logs_of(g)
        .unwrap()
        .into_iter()
        .map(|(a, _)| {
            let (len, root) = snap.log_root(g, &a).unwrap().unwrap();
            (a, len, root)
        })
        .collect();
    v.sort();
    v
}
