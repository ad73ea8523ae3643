//! Write, flush, read back, reopen: the basic promises of the store.
#![allow(clippy::unwrap_used)]

use xaeroflux::{Durability, Error, EventId, XaeroFlux};

#[test]
fn write_flush_get_reopen_verify() {
    let dir = tempfile::tempdir().unwrap();
    let mut ids: Vec<EventId> = Vec::new();
    let (root, author, group) = {
        let store = XaeroFlux::builder(dir.path()).open().unwrap();
        for i in 0..5000u32 {
            let payload = vec![(i % 251) as u8; 1 + (i as usize * 37) % 3000];
            ids.push(store.write_event(&payload, 1000 + i % 3).unwrap());
        }
        store.flush().unwrap();
        for (i, id) in ids.iter().enumerate().step_by(97) {
            let ev = store.get(id).unwrap().expect("present");
            assert_eq!(ev.header.seq, i as u64);
            assert_eq!(ev.id(), *id);
        }
        let root = store.get_mmr_root().unwrap().unwrap();
        let report = store.verify(|_, _| {}).unwrap();
        assert_eq!(report.events, 5000);
        assert_eq!(report.logs, 1);
        assert!(report.checkpoints >= 1);
        let proof = store.get_mmr_proof(1234).unwrap();
        store.verify_mmr_proof(&ids[1234], &proof).unwrap();
        assert!(store.verify_mmr_proof(&ids[1235], &proof).is_err());
        // Fewer ids than one hash index chunk: all still in memory.
        assert_eq!(store.stats().unwrap().hash_index_pending, 5000);
        (root, store.author(), store.default_group())
    };
    let store = XaeroFlux::builder(dir.path()).open().unwrap();
    // A clean close wrote them to the table: nothing to re-hash on open, and lookups
    // by id still answer.
    assert_eq!(store.stats().unwrap().hash_index_pending, 0);
    assert_eq!(store.get(&ids[4321]).unwrap().unwrap().id(), ids[4321]);
    assert_eq!(store.author(), author);
    assert_eq!(store.default_group(), group);
    assert_eq!(store.get_mmr_root().unwrap().unwrap(), root);
    // The log continues where it stopped.
    let id = store.write_event(b"after reopen", 1000).unwrap();
    store.flush().unwrap();
    assert_eq!(store.get(&id).unwrap().unwrap().header.seq, 5000);
    let snap = store.read().unwrap();
    let log: Vec<_> = snap
        .log(&group, &author, 4990)
        .unwrap()
        .map(|e| e.unwrap().event.header.seq)
        .collect();
    assert_eq!(log, (4990..=5000).collect::<Vec<_>>());
    let cp = snap.latest_checkpoint(&group, &author).unwrap().unwrap();
    assert_eq!(cp.checkpoint.length, 5001);
    cp.verify(store.identity()).unwrap();
    drop(snap);
    assert_eq!(store.verify(|_, _| {}).unwrap().events, 5001);
}

#[test]
fn rejects_bad_writes() {
    let dir = tempfile::tempdir().unwrap();
    let store = XaeroFlux::builder(dir.path())
        .durability(Durability::Immediate)
        .open()
        .unwrap();
    assert!(matches!(
        store.write_event(b"x", 7),
        Err(Error::ReservedEventType { event_type: 7 })
    ));
    assert!(matches!(
        store.write_event(&[0; 16 * 1024 + 1], 300),
        Err(Error::PayloadTooLarge { len: 16385, .. })
    ));
    assert!(matches!(
        store.write_event(b"", 300),
        Err(Error::EmptyPayload)
    ));
    let id = store.write_event(&[1; 16 * 1024], 300).unwrap();
    // Immediate durability: already committed.
    assert!(store.get(&id).unwrap().is_some());
}

/// Two groups written alternately (the logs interleave in local order, so each commit
/// stores many short log runs), then single-event commits (each extends the log's last
/// run while no other log writes in between): every log read, from any seq, returns exactly that log, in order, after a
/// reopen too.
#[test]
fn interleaved_logs_read_back_from_any_seq() {
    let dir = tempfile::tempdir().unwrap();
    let check = |store: &XaeroFlux, groups: &[xaeroflux::GroupId], expect: &[Vec<EventId>]| {
        let snap = store.read().unwrap();
        for (g, ids) in groups.iter().zip(expect) {
            for from in [
                0,
                1,
                7,
                ids.len() as u64 / 2,
                ids.len() as u64 - 1,
                ids.len() as u64,
            ] {
                let got: Vec<(u64, EventId)> = snap
                    .log(g, &store.author(), from)
                    .unwrap()
                    .map(|e| {
                        let e = e.unwrap();
                        (e.event.header.seq, e.event.id())
                    })
                    .collect();
                let want: Vec<(u64, EventId)> =
                    (from..).zip(ids[from as usize..].iter().copied()).collect();
                assert_eq!(got, want, "log of {g} from {from}");
            }
        }
    };
    let (groups, expect) = {
        let store = XaeroFlux::builder(dir.path()).open().unwrap();
        let groups = [store.default_group(), store.create_group().unwrap().id()];
        let mut expect = vec![Vec::new(), Vec::new()];
        for i in 0..3000u32 {
            // Runs of 1 to 3 events per group, alternating.
            let g = ((i / (1 + i % 3)) % 2) as usize;
            expect[g].push(
                store
                    .write_event_to(groups[g], &i.to_le_bytes(), 1000)
                    .unwrap(),
            );
        }
        store.flush().unwrap();
        for i in 0..20u32 {
            // Ten one-event commits to one log, then ten alternating.
            let g = if i < 10 { 0 } else { (i % 2) as usize };
            expect[g].push(
                store
                    .write_event_to(groups[g], b"one commit each", 1001)
                    .unwrap(),
            );
            store.flush().unwrap();
        }
        check(&store, &groups, &expect);
        (groups, expect)
    };
    let store = XaeroFlux::builder(dir.path()).open().unwrap();
    check(&store, &groups, &expect);
    let id = store
        .write_event_to(groups[1], b"after reopen", 1000)
        .unwrap();
    store.flush().unwrap();
    assert_eq!(
        store.get(&id).unwrap().unwrap().header.seq,
        expect[1].len() as u64
    );
    assert_eq!(store.verify(|_, _| {}).unwrap().events, 3000 + 20 + 1);
}

/// Type and time queries merge runs (one per stream per commit, at most a second of
/// HLC each): with mixed types and groups, clock jumps within and across commits, and
/// every kind of start and end bound, they return what filtering and sorting every
/// stored event returns.
#[test]
fn type_and_time_queries_match_a_full_scan() {
    use std::sync::Arc;
    use xaeroflux::{GroupId, Hlc};
    use xaeroflux_core::ManualClock;

    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(1_700_000_000_000));
    let store = XaeroFlux::builder(dir.path())
        .clock(clock.clone())
        .open()
        .unwrap();
    let groups = [store.default_group(), store.create_group().unwrap().id()];
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let mut rand = move |n: u64| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % n
    };
    for i in 0..4000u32 {
        let g = groups[(rand(5) == 0) as usize];
        let ty = 1000 + rand(4) as u32;
        store.write_event_to(g, &i.to_le_bytes(), ty).unwrap();
        if rand(10) == 0 {
            clock.advance(rand(700));
        }
        if rand(500) == 0 {
            store.flush().unwrap();
        }
    }
    store.flush().unwrap();
    let snap = store.read().unwrap();
    // (group, type, hlc, author, seq, local) of every event.
    let all: Vec<(GroupId, u32, Hlc, [u8; 32], u64, u64)> = snap
        .since(0)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let h = e.event.header;
            (h.group, h.event_type, h.hlc, h.author.0, h.seq, e.local_seq)
        })
        .collect();
    assert_eq!(all.len(), 4000);
    let hlcs: Vec<Hlc> = all.iter().map(|e| e.2).collect();
    let mut bounds = vec![Hlc::default(), Hlc::from_u64(u64::MAX)];
    for i in [0, 1, 999, 2000, 3998, 3999] {
        bounds.push(hlcs[i]);
        bounds.push(Hlc::from_u64(hlcs[i].as_u64() + 1));
        bounds.push(Hlc::from_u64(hlcs[i].as_u64() - (1000 << 16)));
    }
    for g in &groups {
        for ty in 1000..1004 {
            for &since in &bounds {
                let got: Vec<u64> = snap
                    .by_type(g, ty, since)
                    .unwrap()
                    .map(|e| e.unwrap().local_seq)
                    .collect();
                let mut want: Vec<_> = all
                    .iter()
                    .filter(|e| e.0 == *g && e.1 == ty && e.2 >= since)
                    .map(|e| (e.2, e.5))
                    .collect();
                want.sort();
                let want: Vec<u64> = want.into_iter().map(|e| e.1).collect();
                assert_eq!(got, want, "by_type {ty} since {since:?}");
            }
        }
        for &since in &bounds {
            for &until in &bounds {
                let got: Vec<u64> = snap
                    .by_time(g, since, until)
                    .unwrap()
                    .map(|e| e.unwrap().local_seq)
                    .collect();
                let mut want: Vec<_> = all
                    .iter()
                    .filter(|e| e.0 == *g && e.2 >= since && e.2 < until)
                    .map(|e| (e.2, e.3, e.4, e.5))
                    .collect();
                want.sort();
                let want: Vec<u64> = want.into_iter().map(|e| e.3).collect();
                assert_eq!(got, want, "by_time {since:?}..{until:?}");
            }
        }
    }
}
