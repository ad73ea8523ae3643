//! Two real nodes on loopback (relays off) edit the same document text at the same
//! time; once synced, both views hold the same document.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use xaeroflux::{GroupId, NetConfig, NetworkOptions, XaeroFlux, XaeroKeypair};
use xaeroflux_docs::{Docs, DocsConfig};

const DEADLINE: Duration = Duration::from_secs(90);
const EDITS: usize = 60;

fn open(dir: &Path, seed: u8) -> Arc<XaeroFlux> {
    let mut net = NetworkOptions::for_data_dir(dir);
    net.config.bind_addr = NetConfig::loopback().bind_addr;
    net.threads = 1;
    Arc::new(
        XaeroFlux::builder(dir)
            .identity(XaeroKeypair::generate_from_seed(&[seed; 32]))
            .network(net)
            .open()
            .unwrap(),
    )
}

fn count(s: &XaeroFlux) -> u64 {
    s.read().unwrap().event_count().unwrap()
}

/// Seeded typing into the shared note: inserts at pseudo-random places, some deletes,
/// a list item now and then; one commit (one event) per edit.
fn type_into(docs: &Docs, g: &GroupId, who: &str, seed: u64) {
    let mut note = docs.edit(g, "notes/shared").unwrap();
    let mut x = seed | 1;
    for i in 0..EDITS {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let t = note.text("body");
        let len = t.len_unicode();
        if x.is_multiple_of(5) && len > 0 {
            t.delete((x as usize / 7) % len, 1).unwrap();
        } else {
            t.insert((x as usize / 7) % (len + 1), &format!("{who}{i} "))
                .unwrap();
        }
        if i % 10 == 0 {
            note.list("log").push(format!("{who}{i}")).unwrap();
        }
        note.commit().unwrap().unwrap();
        if i % 15 == 0 {
            // Now and then see the other's edits, as an editor does.
            note.refresh().unwrap();
        }
    }
}

#[test]
fn concurrent_edits_on_two_nodes_converge_to_one_text() {
    let dirs: Vec<_> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    let a = open(dirs[0].path(), 11);
    let b = open(dirs[1].path(), 12);
    let g = a.default_group();
    b.join(&a.ticket(&g, true).unwrap()).unwrap();
    let mut cfg_a = DocsConfig::new(dirs[0].path().join("docs"));
    cfg_a.snapshot_every = 16;
    let mut cfg_b = DocsConfig::new(dirs[1].path().join("docs"));
    cfg_b.snapshot_every = 16;
    let da = Docs::open(a.clone(), cfg_a).unwrap();
    let db = Docs::open(b.clone(), cfg_b).unwrap();

    std::thread::scope(|s| {
        s.spawn(|| type_into(&da, &g, "a", 1));
        s.spawn(|| type_into(&db, &g, "b", 2));
    });
    let total = 2 * EDITS as u64;
    let deadline = Instant::now() + DEADLINE;
    // Both logs hold both nodes' updates (plus nothing else of this group).
    while [&a, &b].iter().any(|n| count(n) < total) {
        assert!(
            Instant::now() < deadline,
            "no sync: {:?}",
            [count(&a), count(&b)]
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    da.flush().unwrap();
    db.flush().unwrap();
    let ta = da.text(&g, "notes/shared", "body").unwrap().unwrap();
    let tb = db.text(&g, "notes/shared", "body").unwrap().unwrap();
    assert_eq!(ta, tb);
    let va = da.read(&g, "notes/shared").unwrap().unwrap();
    let vb = db.read(&g, "notes/shared").unwrap().unwrap();
    assert_eq!(va.get_deep_value(), vb.get_deep_value());
    assert_eq!(va.get_list("log").len(), 12);
    // Both writers' text is in it, and every update was applied on both sides.
    assert!(ta.contains('a') && ta.contains('b'), "{ta}");
    for d in [&da, &db] {
        let info = d.info(&g, "notes/shared").unwrap().unwrap();
        assert_eq!(info.updates, total);
        assert!(info.snapshot_bytes > 0);
    }
    da.close();
    db.close();
    for s in [a, b] {
        Arc::try_unwrap(s).unwrap().close().unwrap();
    }
}
