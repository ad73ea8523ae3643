//! A format-1 store (one `events` value and one `logs`, `types` and `times` entry per
//! event) opens: it is rewritten into blocks and runs, and reads, queries, ids, roots
//! and `verify` are unchanged.
#![allow(clippy::unwrap_used)]

use std::path::Path;

use heed::RwTxn;
use raw_lmdb::{Db, with_tables};
use xaeroflux::{EventId, GroupId, XaeroFlux};
use xaeroflux_core::{BlockRef, EventRef, Hlc};

mod raw_lmdb;

/// Rewrites a closed format-2 store into the format-1 layout, as an earlier build
/// wrote it.
fn downgrade(dir: &Path) {
    let tables = ["meta", "events", "logs", "types", "times"];
    with_tables(dir, tables, |[meta, events, logs, types, times], wtxn| {
        rewrite_as_format_1(wtxn, meta, events, logs, types, times);
    });
}

/// The rewrite: blocks back to one `events` value per event, log runs to one entry per
/// event, posting runs to one `types` and one `times` entry per event, version 1.
fn rewrite_as_format_1(wtxn: &mut RwTxn<'_>, meta: Db, events: Db, logs: Db, types: Db, times: Db) {
    let mut per_event: Vec<(u64, Vec<u8>)> = Vec::new();
    for item in events.iter(wtxn).unwrap() {
        let (k, v) = item.unwrap();
        let first = u64::from_be_bytes(k.try_into().unwrap());
        let block = BlockRef::decode(v).unwrap();
        for (i, e) in block.iter().enumerate() {
            per_event.push((first + i as u64, e.unwrap().to_vec()));
        }
    }
    let mut entries: Vec<(Vec<u8>, u64)> = Vec::new();
    for item in logs.iter(wtxn).unwrap() {
        let (k, v) = item.unwrap();
        let first_seq = u64::from_be_bytes(k[64..].try_into().unwrap());
        let first_local = u64::from_be_bytes(v[..8].try_into().unwrap());
        let count = u64::from_be_bytes(v[8..].try_into().unwrap());
        for i in 0..count {
            let mut key = k[..64].to_vec();
            key.extend_from_slice(&(first_seq + i).to_be_bytes());
            entries.push((key, first_local + i));
        }
    }
    events.clear(wtxn).unwrap();
    logs.clear(wtxn).unwrap();
    types.clear(wtxn).unwrap();
    times.clear(wtxn).unwrap();
    for (local, e) in &per_event {
        let h = EventRef::decode(e).unwrap().header;
        let hlc = h.hlc.as_u64().to_be_bytes();
        let type_key = [
            &h.group.0[..],
            &h.event_type.to_be_bytes(),
            &hlc,
            &local.to_be_bytes(),
        ];
        types.put(wtxn, &type_key.concat(), &[]).unwrap();
        let time_key = [&h.group.0[..], &hlc, &h.author.0, &h.seq.to_be_bytes()];
        times
            .put(wtxn, &time_key.concat(), &local.to_be_bytes())
            .unwrap();
    }
    for (local, e) in &per_event {
        events.put(wtxn, &local.to_be_bytes(), e).unwrap();
    }
    for (k, local) in &entries {
        logs.put(wtxn, k, &local.to_be_bytes()).unwrap();
    }
    meta.put(wtxn, b"format_version", &1u32.to_le_bytes())
        .unwrap();
}

/// Ids of the type and time queries over every group and type.
fn queries(store: &XaeroFlux, groups: &[GroupId]) -> Vec<Vec<EventId>> {
    let snap = store.read().unwrap();
    let mut out = Vec::new();
    for g in groups {
        for ty in 1000..1004 {
            let it = snap.by_type(g, ty, Hlc::default()).unwrap();
            out.push(it.map(|e| e.unwrap().event.id()).collect());
        }
        let it = snap
            .by_time(g, Hlc::default(), Hlc::from_u64(u64::MAX))
            .unwrap();
        out.push(it.map(|e| e.unwrap().event.id()).collect());
    }
    out
}

/// Every log of the store's author, read from seq 0: (group, [(seq, id)]).
fn logs_of(store: &XaeroFlux, groups: &[GroupId]) -> Vec<Vec<(u64, EventId)>> {
    let snap = store.read().unwrap();
    groups
        .iter()
        .map(|g| {
            snap.log(g, &store.author(), 0)
                .unwrap()
                .map(|e| {
                    let e = e.unwrap();
                    (e.event.header.seq, e.event.id())
                })
                .collect()
        })
        .collect()
}

#[test]
fn format_1_store_is_upgraded_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let (groups, ids, logs, found, root) = {
        let store = XaeroFlux::builder(dir.path()).open().unwrap();
        let groups = vec![store.default_group(), store.create_group().unwrap().id()];
        let mut ids = Vec::new();
        // Interleaved logs (many runs), sizes from 1 byte to 16 KiB (blocks of a few
        // events to thousands), several commits.
        for i in 0..6000u32 {
            let g = groups[((i / 3) % 2) as usize];
            let len = if i % 1000 == 999 {
                16 * 1024
            } else {
                1 + (i as usize * 13) % 200
            };
            ids.push(
                store
                    .write_event_to(g, &vec![i as u8; len], 1000 + i % 4)
                    .unwrap(),
            );
            if i % 2500 == 0 {
                store.flush().unwrap();
            }
        }
        store.flush().unwrap();
        let logs = logs_of(&store, &groups);
        let found = queries(&store, &groups);
        assert_eq!(found.iter().map(Vec::len).sum::<usize>(), 2 * 6000);
        let root = store.get_mmr_root().unwrap().unwrap();
        store.close().unwrap();
        (groups, ids, logs, found, root)
    };
    downgrade(dir.path());
    for _ in 0..2 {
        // The first open upgrades; the second finds version 2.
        let store = XaeroFlux::builder(dir.path()).open().unwrap();
        assert_eq!(store.read().unwrap().event_count().unwrap(), 6000);
        assert_eq!(logs_of(&store, &groups), logs);
        assert_eq!(queries(&store, &groups), found);
        assert_eq!(store.get_mmr_root().unwrap().unwrap(), root);
        for (i, id) in ids.iter().enumerate().step_by(7) {
            let e = store.get(id).unwrap().unwrap();
            assert_eq!(e.id(), *id, "event {i}");
        }
        let report = store.verify(|_, _| {}).unwrap();
        assert_eq!(report.events, 6000);
        assert_eq!(report.logs, 2);
        store.close().unwrap();
    }
    // And it takes writes that continue its logs.
    let store = XaeroFlux::builder(dir.path()).open().unwrap();
    let id = store
        .write_event_to(groups[1], b"after the upgrade", 1000)
        .unwrap();
    store.flush().unwrap();
    assert_eq!(
        store.get(&id).unwrap().unwrap().header.seq,
        logs[1].len() as u64
    );
}

/// Sets or reads a closed store's format version with plain LMDB.
fn format_version(dir: &Path, set: Option<u32>) -> u32 {
    with_tables(dir, ["meta"], |[meta], wtxn| {
        if let Some(v) = set {
            meta.put(wtxn, b"format_version", &v.to_le_bytes()).unwrap();
        }
        let v = meta.get(wtxn, b"format_version").unwrap().unwrap();
        u32::from_le_bytes(v.try_into().unwrap())
    })
}

/// A format-2 store (no id-index merge in progress, by construction) opens as format 3
/// with every id still found through its sorted runs.
#[test]
fn format_2_store_is_upgraded_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let open = || {
        let mut o = xaeroflux::Options::new(dir.path());
        o.hash_index_chunk = 500;
        XaeroFlux::builder(dir.path())
            .options(o)
            .offline()
            .open()
            .unwrap()
    };
    let ids: Vec<EventId> = {
        let store = open();
        let ids = (0..3000u32)
            .map(|i| store.write_event(&i.to_le_bytes(), 1000).unwrap())
            .collect();
        store.close().unwrap();
        ids
    };
    assert_eq!(format_version(dir.path(), None), xaeroflux::FORMAT_VERSION);
    format_version(dir.path(), Some(2));
    let store = open();
    for (i, id) in ids.iter().enumerate() {
        assert_eq!(store.get(id).unwrap().unwrap().header.seq, i as u64);
    }
    assert_eq!(store.verify(|_, _| {}).unwrap().events, 3000);
    store.close().unwrap();
    assert_eq!(format_version(dir.path(), None), 3);
}
