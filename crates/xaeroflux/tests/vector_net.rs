//! Vector search over synced events: text written on one node becomes searchable on
//! another node of the group (two engine nodes on loopback, relays off).
#![allow(clippy::unwrap_used)]

mod vector_common;

use std::path::Path;
use std::time::{Duration, Instant};

use vector_common::*;
use xaeroflux::{NetConfig, NetworkOptions, NgramTextExtractor, XaeroFlux};

fn open_networked(dir: &Path) -> XaeroFlux {
    let mut net = NetworkOptions::for_data_dir(dir);
    net.config.bind_addr = NetConfig::loopback().bind_addr;
    net.threads = 1;
    XaeroFlux::builder(dir).network(net).open().unwrap()
}

#[test]
fn text_written_on_one_node_is_searchable_on_the_other() {
    const N: u64 = 200;
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = open_networked(da.path());
    let b = open_networked(db.path());
    let g = a.default_group();
    // B indexes text events from the start: synced events are indexed as they commit.
    start(&b, &[TEXT], config());
    b.join(&a.ticket(&g, true).unwrap()).unwrap();
    let mut ids = Vec::new();
    for i in 0..N {
        ids.push(a.write_event_to(g, text(i).as_bytes(), TEXT).unwrap());
        a.write_event_to(g, format!("other {}", text(i)).as_bytes(), OTHER)
            .unwrap();
    }
    a.flush().unwrap();

    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let s = b.vector_search_stats().unwrap();
        if s.indexed == N && s.pending == 0 {
            assert_eq!(s.per_type.get(&TEXT), Some(&N));
            assert_eq!(s.per_type.get(&OTHER), None);
            break;
        }
        assert!(Instant::now() < deadline, "not indexed on b: {s:?}");
        std::thread::sleep(Duration::from_millis(20));
    }

    // A near-duplicate of a text written on A finds it on B, with A as its author.
    let e = NgramTextExtractor::new(DIM, 3).unwrap();
    for i in [7, 42, 199] {
        let mut typo = text(i).to_uppercase();
        typo.pop();
        let hits = b
            .search_vector_events(&e.embed(&typo).unwrap(), 3, 0.0)
            .unwrap();
        assert_eq!(hits[0].id, ids[i as usize], "{hits:?}");
        assert_eq!(hits[0].event.payload, text(i).as_bytes());
        assert_eq!(hits[0].event.header.author, a.author());
        assert_eq!(hits[0].event.header.group, g);
    }
    // Events written later on A are found too (live push path).
    let late = a
        .write_event_to(g, b"late arrival about merkle mountain ranges", TEXT)
        .unwrap();
    let q = e
        .embed("late arrival about merkle mountain ranges")
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let hits = b.search_vector_events(&q, 1, 0.0).unwrap();
        if hits.first().map(|h| h.id) == Some(late) {
            break;
        }
        assert!(Instant::now() < deadline, "late event not found: {hits:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
    a.close().unwrap();
    b.close().unwrap();
}
