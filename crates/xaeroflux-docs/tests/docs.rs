//! The document view on one store: editing and reading text, lists and maps; loading
//! from snapshots after many edits; any delivery order of the same updates; bad
//! updates skipped; subscriptions; a rebuild equals the maintained view.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use proptest::prelude::*;
use xaeroflux::{XaeroFlux, XaeroKeypair};
use xaeroflux_docs::loro::{ExportMode, LoroDoc};
use xaeroflux_docs::{DOC_UPDATE_TYPE, DocUpdate, Docs, DocsConfig, DocsLoad};

fn store(dir: &Path, seed: u8) -> Arc<XaeroFlux> {
    Arc::new(
        XaeroFlux::builder(dir)
            .identity(XaeroKeypair::generate_from_seed(&[seed; 32]))
            .offline()
            .open()
            .unwrap(),
    )
}

fn docs_in(store: &Arc<XaeroFlux>, dir: &Path, snapshot_every: u32) -> Docs {
    let mut cfg = DocsConfig::new(dir);
    cfg.snapshot_every = snapshot_every;
    Docs::open(store.clone(), cfg).unwrap()
}

fn close(docs: Docs, store: Arc<XaeroFlux>) {
    docs.close();
    Arc::try_unwrap(store).unwrap().close().unwrap();
}

#[test]
fn text_list_and_map_edits_are_written_and_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path(), 1);
    let docs = docs_in(&s, &dir.path().join("docs"), 128);
    let g = s.default_group();
    assert!(docs.read(&g, "n1").unwrap().is_none());

    let mut note = docs.edit(&g, "n1").unwrap();
    assert_eq!(
        note.commit().unwrap(),
        None,
        "nothing edited, nothing written"
    );
    note.text("body").insert(0, "hello world").unwrap();
    note.list("todo").push("a").unwrap();
    note.list("todo").push("b").unwrap();
    note.map("meta").insert("owner", "ana").unwrap();
    let id = note.commit().unwrap().expect("one event");
    note.text("body").delete(0, 6).unwrap();
    note.commit().unwrap().expect("a second event");
    docs.flush().unwrap();
    // The event is a document update of this document, carrying a loro update.
    let snap = s.read().unwrap();
    let stored = snap.get(&id).unwrap().expect("stored");
    assert_eq!(stored.event.header.event_type, DOC_UPDATE_TYPE);
    assert_eq!(DocUpdate::decode(stored.event.payload).unwrap().doc, "n1");
    drop(snap);

    assert_eq!(
        docs.text(&g, "n1", "body").unwrap().as_deref(),
        Some("world")
    );
    let read = docs.read(&g, "n1").unwrap().unwrap();
    assert_eq!(read.get_deep_value(), note.value());
    assert_eq!(read.get_list("todo").len(), 2);
    assert_eq!(docs.names(&g).unwrap(), vec!["n1".to_string()]);
    let info = docs.info(&g, "n1").unwrap().unwrap();
    assert_eq!((info.updates, info.pending), (2, 2));
    assert!(docs.text(&g, "other", "body").unwrap().is_none());
    assert!(docs.edit(&g, "").is_err(), "empty names are refused");
    drop(note);
    close(docs, s);
}

#[test]
fn two_handles_merge_and_refresh_sees_the_other() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path(), 2);
    let docs = docs_in(&s, &dir.path().join("docs"), 128);
    let g = s.default_group();
    let mut a = docs.edit(&g, "n").unwrap();
    let mut b = docs.edit(&g, "n").unwrap();
    assert_ne!(a.loro().peer_id(), b.loro().peer_id());
    a.text("t").insert(0, "AAA").unwrap();
    b.text("t").insert(0, "BBB").unwrap();
    a.commit().unwrap();
    b.commit().unwrap();
    docs.flush().unwrap();
    let merged = docs.text(&g, "n", "t").unwrap().unwrap();
    assert!(merged == "AAABBB" || merged == "BBBAAA", "{merged}");
    a.refresh().unwrap();
    assert_eq!(a.text("t").to_string(), merged);
    // A refreshed handle writes only its own new edits.
    a.text("t").insert(0, ">").unwrap();
    a.commit().unwrap();
    docs.flush().unwrap();
    assert_eq!(
        docs.text(&g, "n", "t").unwrap().unwrap(),
        format!(">{merged}")
    );
    assert_eq!(docs.info(&g, "n").unwrap().unwrap().updates, 3);
    drop((a, b));
    close(docs, s);
}

#[test]
fn a_long_edited_document_reopens_from_its_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path(), 3);
    let every = 16;
    let docs = docs_in(&s, &dir.path().join("docs"), every);
    let g = s.default_group();
    let mut note = docs.edit(&g, "long").unwrap();
    let mut expected = String::new();
    for i in 0..300 {
        let word = format!("w{i} ");
        note.text("body")
            .insert(expected.chars().count(), &word)
            .unwrap();
        expected.push_str(&word);
        if i % 7 == 6 {
            // Some deletes too.
            note.text("body").delete(0, 3).unwrap();
            expected = expected.chars().skip(3).collect();
        }
        note.commit().unwrap().unwrap();
    }
    docs.flush().unwrap();
    let before = docs.stats().unwrap();
    assert_eq!(before.applied, 300);
    assert_eq!(before.snapshots, 300 / u64::from(every));
    let info = docs.info(&g, "long").unwrap().unwrap();
    assert_eq!(info.updates, 300);
    assert_eq!(info.pending, 300 % u64::from(every));
    assert!(info.snapshot_bytes > 0);
    drop(note);
    close(docs, s);

    let s = store(dir.path(), 3);
    let docs = docs_in(&s, &dir.path().join("docs"), every);
    docs.flush().unwrap();
    let st = docs.stats().unwrap();
    assert_eq!(st.load, DocsLoad::Loaded);
    assert_eq!(st.applied, 0, "nothing replayed from the log on reopen");
    // The load reads the snapshot and the 12 updates after it.
    assert_eq!(docs.info(&g, "long").unwrap().unwrap().pending, 12);
    assert_eq!(docs.text(&g, "long", "body").unwrap().unwrap(), expected);
    let mut again = docs.edit(&g, "long").unwrap();
    assert_eq!(again.text("body").to_string(), expected);
    again.text("body").insert(0, "!").unwrap();
    again.commit().unwrap();
    docs.flush().unwrap();
    assert_eq!(
        docs.text(&g, "long", "body").unwrap().unwrap(),
        format!("!{expected}")
    );

    // A view built from scratch over the same log is the same document.
    let rebuilt = docs_in(&s, &dir.path().join("docs2"), 1000);
    rebuilt.flush().unwrap();
    assert_eq!(rebuilt.stats().unwrap().load, DocsLoad::Created);
    assert_eq!(
        rebuilt.read(&g, "long").unwrap().unwrap().get_deep_value(),
        docs.read(&g, "long").unwrap().unwrap().get_deep_value()
    );
    rebuilt.close();
    drop(again);
    close(docs, s);
}

#[test]
fn bad_updates_are_skipped_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path(), 4);
    let docs = docs_in(&s, &dir.path().join("docs"), 4);
    let g = s.default_group();
    let mut note = docs.edit(&g, "n").unwrap();
    note.text("t").insert(0, "kept").unwrap();
    note.commit().unwrap();
    // A real update with its body damaged (checksum no longer matches), a header
    // that is not loro, and a truncated payload.
    let src = LoroDoc::new();
    src.get_text("t").insert(0, "evil").unwrap();
    let mut damaged = src.export(ExportMode::all_updates()).unwrap();
    let last = damaged.len() - 1;
    damaged[last] ^= 0x55;
    let bad = DocUpdate {
        doc: "n",
        update: &damaged,
    }
    .encode()
    .unwrap();
    s.write_reserved_to(&g, &bad, DOC_UPDATE_TYPE).unwrap();
    s.write_reserved_to(&g, &[1, 1, 1, b'n'], DOC_UPDATE_TYPE)
        .unwrap();
    s.write_reserved_to(&g, &[9, 9, 9], DOC_UPDATE_TYPE)
        .unwrap();
    docs.flush().unwrap();
    let st = docs.stats().unwrap();
    assert_eq!((st.applied, st.skipped), (1, 3));
    assert_eq!(st.last_error, None);
    assert_eq!(docs.text(&g, "n", "t").unwrap().unwrap(), "kept");
    drop(note);
    close(docs, s);
}

#[test]
fn subscribers_hear_each_applied_update() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path(), 5);
    let docs = docs_in(&s, &dir.path().join("docs"), 128);
    let g = s.default_group();
    let mut one = docs.subscribe(&g, Some("a")).unwrap();
    let mut all = docs.subscribe(&g, None).unwrap();
    let mut a = docs.edit(&g, "a").unwrap();
    let mut b = docs.edit(&g, "b").unwrap();
    a.text("t").insert(0, "x").unwrap();
    b.text("t").insert(0, "y").unwrap();
    let ida = a.commit().unwrap().unwrap();
    let idb = b.commit().unwrap().unwrap();
    docs.flush().unwrap();
    let wait = Duration::from_secs(10);
    let c = one.next_timeout(wait).unwrap().unwrap();
    assert_eq!((c.doc.as_str(), c.event), ("a", ida));
    assert_eq!(one.try_next().unwrap(), None, "b is not followed");
    let got: Vec<_> = [all.next_timeout(wait), all.next_timeout(wait)]
        .into_iter()
        .map(|c| c.unwrap().unwrap().event)
        .collect();
    assert_eq!(got, vec![ida, idb]);
    drop((a, b));
    close(docs, s);
}

/// Updates of 3 replicas that edit the same text, list and map, exchanging some of
/// their updates as they go (so later updates depend on earlier ones of others).
fn replica_updates(script: &[(u8, u8, u16)]) -> Vec<Vec<u8>> {
    let replicas: Vec<LoroDoc> = (0..3)
        .map(|i| {
            let d = LoroDoc::new();
            d.set_peer_id(100 + i).unwrap();
            d
        })
        .collect();
    let mut updates = Vec::new();
    let mut sent = [0i32; 3];
    for &(who, what, n) in script {
        let d = &replicas[usize::from(who % 3)];
        let t = d.get_text("t");
        let len = t.len_unicode();
        match what % 5 {
            0 | 1 => t.insert(usize::from(n) % (len + 1), "ab").unwrap(),
            2 if len > 0 => t.delete(usize::from(n) % len, 1).unwrap(),
            3 => d.get_list("l").insert(0, i64::from(n)).unwrap(),
            _ => d
                .get_map("m")
                .insert(&format!("k{}", n % 4), i64::from(n))
                .unwrap(),
        }
        d.commit();
        let p = d.peer_id();
        let end = d.oplog_vv().get(&p).copied().unwrap_or(0);
        let i = usize::from(who % 3);
        if end > sent[i] {
            let u = d
                .export(ExportMode::updates_in_range(vec![
                    xaeroflux_docs::loro::IdSpan::new(p, sent[i], end),
                ]))
                .unwrap();
            sent[i] = end;
            // The next replica hears of it now: its later edits depend on this one.
            replicas[(i + 1) % 3].import(&u).unwrap();
            updates.push(u);
        }
    }
    updates
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// The same updates delivered in any order (dependencies missing for a while,
    /// snapshots taken meanwhile) give the same document as importing them in order.
    #[test]
    fn any_delivery_order_gives_the_same_document(
        script in proptest::collection::vec((0u8..3, any::<u8>(), any::<u16>()), 4..40),
        order in any::<u64>(),
    ) {
        let updates = replica_updates(&script);
        let reference = LoroDoc::new();
        reference.import_batch(&updates).unwrap();

        let mut shuffled: Vec<&Vec<u8>> = updates.iter().collect();
        let mut x = order | 1;
        for i in (1..shuffled.len()).rev() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            shuffled.swap(i, (x % (i as u64 + 1)) as usize);
        }
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path(), 6);
        let docs = docs_in(&s, &dir.path().join("docs"), 3);
        let g = s.default_group();
        for u in shuffled {
            let payload = DocUpdate { doc: "d", update: u }.encode().unwrap();
            s.write_reserved_to(&g, &payload, DOC_UPDATE_TYPE).unwrap();
        }
        docs.flush().unwrap();
        let st = docs.stats().unwrap();
        prop_assert_eq!(st.applied, updates.len() as u64);
        prop_assert_eq!(st.skipped, 0);
        let read = docs.read(&g, "d").unwrap().unwrap();
        prop_assert_eq!(read.get_deep_value(), reference.get_deep_value());
        prop_assert_eq!(read.oplog_vv(), reference.oplog_vv());
        close(docs, s);
    }
}

/// What a hostile peer can send: a real update with bytes of its body changed and
/// loro's checksum recomputed, so it passes the header check and reaches loro's
/// decoder.
fn resign(mut update: Vec<u8>, damage: &[(prop::sample::Index, u8)]) -> Vec<u8> {
    const BODY: usize = 22; // magic 4, checksum 16, mode 2
    if update.len() > BODY {
        for (at, b) in damage {
            let i = BODY + at.index(update.len() - BODY);
            update[i] = *b;
        }
    }
    let sum = xxhash_rust::xxh32::xxh32(&update[20..], u32::from_le_bytes(*b"LORO"));
    update[16..20].copy_from_slice(&sum.to_le_bytes());
    update
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    /// Damaged, re-signed updates are imported or skipped, never stop the view, and a
    /// later genuine update still applies.
    #[test]
    fn hostile_updates_with_valid_checksums_do_not_stop_the_view(
        script in proptest::collection::vec((0u8..3, any::<u8>(), any::<u16>()), 2..16),
        damage in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
    ) {
        let updates = replica_updates(&script);
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path(), 7);
        let docs = docs_in(&s, &dir.path().join("docs"), 2);
        let g = s.default_group();
        let mut written = 0u64;
        for (i, u) in updates.iter().enumerate() {
            let u = if i % 2 == 1 { resign(u.clone(), &damage) } else { u.clone() };
            let payload = DocUpdate { doc: "d", update: &u }.encode().unwrap();
            s.write_reserved_to(&g, &payload, DOC_UPDATE_TYPE).unwrap();
            written += 1;
        }
        let tail = LoroDoc::new();
        tail.get_text("z").insert(0, "tail").unwrap();
        let u = tail.export(ExportMode::all_updates()).unwrap();
        let payload = DocUpdate { doc: "d", update: &u }.encode().unwrap();
        s.write_reserved_to(&g, &payload, DOC_UPDATE_TYPE).unwrap();
        written += 1;
        docs.flush().unwrap();
        let st = docs.stats().unwrap();
        prop_assert_eq!(st.last_error, None);
        prop_assert_eq!(st.applied + st.skipped, written);
        let read = docs.read(&g, "d").unwrap().unwrap();
        prop_assert_eq!(read.get_text("z").to_string(), "tail");
        close(docs, s);
    }
}
