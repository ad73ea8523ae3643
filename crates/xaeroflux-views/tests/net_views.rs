//! Real nodes on loopback (relays off): three peers edit the same records, one of them
//! offline for a while; once synced, their views hold the same state root and answer
//! every query alike, equal to the pure fold of the log.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use xaeroflux::{GroupId, NetConfig, NetworkOptions, XaeroFlux, XaeroKeypair};
use xaeroflux_views::{Op, RecordRef, Value, Views};

const DEADLINE: Duration = Duration::from_secs(90);

fn open(dir: &Path, seed: u8, online: bool) -> Arc<XaeroFlux> {
    let b = XaeroFlux::builder(dir).identity(XaeroKeypair::generate_from_seed(&[seed; 32]));
    let b = if online {
        let mut net = NetworkOptions::for_data_dir(dir);
        net.config.bind_addr = NetConfig::loopback().bind_addr;
        net.threads = 1;
        b.network(net)
    } else {
        b.offline()
    };
    Arc::new(b.open().unwrap())
}

fn close(v: Views, s: Arc<XaeroFlux>) {
    v.close();
    Arc::try_unwrap(s).unwrap().close().unwrap();
}

/// Seeded operations on 30 shared cards: puts, patches, deletes, links.
fn edit(v: &Views, g: &GroupId, seed: u64, n: usize) {
    let mut x = seed | 1;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for _ in 0..n {
        let rec = RecordRef::new("cards", format!("c{}", next() % 30));
        let op = match next() % 8 {
            0 => Op::Delete { record: rec },
            1 => Op::Link {
                from: rec,
                rel: "on".into(),
                to: RecordRef::new("boards", format!("b{}", next() % 3)),
            },
            2 | 3 => Op::Put {
                record: rec,
                fields: [(
                    "title".to_string(),
                    Value::Text(format!("{seed}-{}", next() % 100)),
                )]
                .into(),
            },
            _ => Op::Patch {
                record: rec,
                fields: [("n".to_string(), Some(Value::Int((next() % 50) as i64)))].into(),
            },
        };
        v.write_op(g, &op).unwrap();
    }
    v.flush().unwrap();
}

fn count(s: &XaeroFlux) -> u64 {
    s.read().unwrap().event_count().unwrap()
}

#[test]
fn three_nodes_with_an_offline_writer_reach_one_state_root() {
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let a = open(dirs[0].path(), 1, true);
    let b = open(dirs[1].path(), 2, true);
    let c = open(dirs[2].path(), 3, true);
    let g = a.default_group();
    for n in [&b, &c] {
        n.join(&a.ticket(&g, true).unwrap()).unwrap();
    }
    // C goes offline and edits there.
    Arc::try_unwrap(c).unwrap().close().unwrap();
    let c = open(dirs[2].path(), 3, false);
    let vc = common::views(&c, dirs[2].path());
    edit(&vc, &g, 3, 150);
    close(vc, c);

    // A and B edit the same cards at the same time, online.
    let va = common::views(&a, dirs[0].path());
    let vb = common::views(&b, dirs[1].path());
    std::thread::scope(|s| {
        s.spawn(|| edit(&va, &g, 1, 150));
        s.spawn(|| edit(&vb, &g, 2, 150));
    });
    // C comes back online and syncs.
    let c = open(dirs[2].path(), 3, true);
    let vc = common::views(&c, dirs[2].path());
    let deadline = Instant::now() + DEADLINE;
    while [&a, &b, &c].iter().any(|n| count(n) != 450) {
        assert!(
            Instant::now() < deadline,
            "no sync: {:?}",
            [count(&a), count(&b), count(&c)]
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let views = [&va, &vb, &vc];
    for v in views {
        v.flush().unwrap();
    }
    let root = va.state_root(&g).unwrap();
    assert_eq!(root, common::fold_log(&a, &g, u64::MAX).root().unwrap());
    for v in views {
        assert_eq!(v.state_root(&g).unwrap(), root);
        assert_eq!(
            v.scan(&g, "cards", "").unwrap(),
            va.scan(&g, "cards", "").unwrap()
        );
        for b in 0..3 {
            let board = RecordRef::new("boards", format!("b{b}"));
            assert_eq!(
                v.links_to(&g, &board).unwrap(),
                va.links_to(&g, &board).unwrap()
            );
        }
    }
    // Every replica's operations are there: 450 applied across the nodes' views.
    assert_eq!(common::ops_in_log(&c, &g).len(), 450);
    assert!(!va.scan(&g, "cards", "").unwrap().is_empty());
    close(va, a);
    close(vb, b);
    close(vc, c);
}
