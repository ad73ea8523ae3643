//! Damaged and foreign stores give clear errors, never panics: a truncated or
//! bit-flipped page file, garbage or foreign LMDB files, a newer format version, and a
//! data directory that is already open.
#![allow(clippy::unwrap_used)]

mod raw_lmdb;

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::path::Path;

use raw_lmdb::with_tables;
use xaeroflux::{Error, EventId, XaeroFlux};
use xaeroflux_core::page::PAGE_SIZE;

const PAGE_FILE: &str = "merkle_index.bin";

/// A closed store with `n` events; returns their ids.
fn make_store(dir: &Path, n: u32) -> Vec<EventId> {
    let store = XaeroFlux::builder(dir).open().unwrap();
    let ids: Vec<EventId> = (0..n)
        .map(|i| {
            store
                .write_event(&i.to_le_bytes().repeat(8), 300 + i % 7)
                .unwrap()
        })
        .collect();
    store.close().unwrap();
    ids
}

fn page_count(dir: &Path) -> u64 {
    std::fs::metadata(dir.join(PAGE_FILE)).unwrap().len() / PAGE_SIZE as u64
}

/// Puts `key = value` in the closed store's `meta` table.
fn put_meta(dir: &Path, key: &[u8], value: &[u8]) {
    with_tables(dir, ["meta"], |[meta], wtxn| {
        meta.put(wtxn, key, value).unwrap()
    });
}

#[test]
fn truncated_page_file_is_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    make_store(dir.path(), 5000);
    let pages = page_count(dir.path());
    assert!(pages >= 4, "test needs committed pages, got {pages}");
    let f = OpenOptions::new()
        .write(true)
        .open(dir.path().join(PAGE_FILE))
        .unwrap();
    // Cut the last committed page in half.
    f.set_len((pages - 1) * PAGE_SIZE as u64 + 100).unwrap();
    drop(f);
    match XaeroFlux::builder(dir.path()).open() {
        Err(Error::Corrupt { reason, .. }) => assert!(reason.contains("truncated"), "{reason}"),
        other => panic!("expected Corrupt, got {other:?}"),
    }
    // A missing page file is the same error.
    std::fs::remove_file(dir.path().join(PAGE_FILE)).unwrap();
    assert!(matches!(
        XaeroFlux::builder(dir.path()).open(),
        Err(Error::Corrupt { .. })
    ));
}

#[test]
fn flipped_page_bytes_are_detected() {
    let src = tempfile::tempdir().unwrap();
    let ids = make_store(src.path(), 5000);
    let pages = page_count(src.path());
    assert!(pages >= 4);
    // Flip one byte in the header, in a node slot and in the checksum of several pages.
    let offsets = [5usize, 40, 100, PAGE_SIZE / 2, PAGE_SIZE - 1];
    // How each damage was found: at open, or by verify().
    let (mut at_open, mut by_verify) = (0, 0);
    for page in [0, 1, pages / 2, pages - 1] {
        for off in offsets {
            let dir = tempfile::tempdir().unwrap();
            for name in ["data.mdb", PAGE_FILE, "identity.key"] {
                std::fs::copy(src.path().join(name), dir.path().join(name)).unwrap();
            }
            let f = OpenOptions::new()
                .read(true)
                .write(true)
                .open(dir.path().join(PAGE_FILE))
                .unwrap();
            let at = page * PAGE_SIZE as u64 + off as u64;
            let mut b = [0u8; 1];
            f.read_exact_at(&mut b, at).unwrap();
            f.write_all_at(&[b[0] ^ 0x20], at).unwrap();
            drop(f);
            let store = match XaeroFlux::builder(dir.path()).open() {
                Ok(s) => s,
                Err(e) => {
                    // Opening may already read the damaged page: a clear error.
                    assert!(
                        matches!(e, Error::Corrupt { .. }),
                        "page {page} +{off}: {e:?}"
                    );
                    at_open += 1;
                    continue;
                }
            };
            // Events are in LMDB and stay readable; whatever reads the page fails.
            assert!(store.get(&ids[42]).unwrap().is_some());
            let verified = store.verify(|_, _| {});
            let (group, author) = (store.default_group(), store.author());
            let n = ids.len() as u64;
            let snap = store.read().unwrap();
            let mut proofs: Vec<_> = (0..n).step_by(50).map(|i| snap.mmr_proof(i)).collect();
            proofs.extend(
                (0..n)
                    .step_by(50)
                    .map(|i| snap.log_proof(&group, &author, i, n)),
            );
            drop(snap);
            let all_ok = verified.is_ok() && proofs.iter().all(Result::is_ok);
            assert!(
                !all_ok,
                "page {page} +{off}: damage not detected by verify() or get_mmr_proof()"
            );
            // verify() compares every stored node with the recomputed trees, so it must
            // catch every damaged page on its own, not only the proofs.
            assert!(
                verified.is_err(),
                "page {page} +{off}: verify() passed a damaged page"
            );
            by_verify += 1;
            if let Err(e) = &verified {
                assert!(
                    matches!(e, Error::Corrupt { .. }),
                    "page {page} +{off}: {e:?}"
                );
            }
            for p in proofs.into_iter().filter_map(Result::err) {
                assert!(
                    matches!(p, Error::Corrupt { .. }),
                    "page {page} +{off}: {p:?}"
                );
            }
        }
    }
    println!("{pages} pages; damage found at open: {at_open}, by verify(): {by_verify}");
}

/// A page's checksum is checked on its first read only (committed pages never change);
/// damage done to the file after that is still found by `verify()`, which checks every
/// page again.
#[test]
fn damage_after_the_first_read_is_found_by_verify() {
    let dir = tempfile::tempdir().unwrap();
    let n = 5000u64;
    make_store(dir.path(), n as u32);
    let store = XaeroFlux::builder(dir.path()).open().unwrap();
    let snap = store.read().unwrap();
    for i in (0..n).step_by(25) {
        snap.mmr_proof(i).unwrap();
    }
    drop(snap);
    assert!(store.verify(|_, _| {}).is_ok());
    // One byte of a node slot of the first page (read by the proofs above).
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(dir.path().join(PAGE_FILE))
        .unwrap();
    let mut b = [0u8; 1];
    f.read_exact_at(&mut b, 40).unwrap();
    f.write_all_at(&[b[0] ^ 0x20], 40).unwrap();
    drop(f);
    match store.verify(|_, _| {}) {
        Err(Error::Corrupt { .. }) => {}
        other => panic!("verify() missed a page damaged after its first read: {other:?}"),
    }
    drop(store);
    // A fresh open checks the page again on its first read.
    let store = XaeroFlux::builder(dir.path()).open().unwrap();
    let snap = store.read().unwrap();
    let proofs: Vec<_> = (0..n).step_by(25).map(|i| snap.mmr_proof(i)).collect();
    assert!(
        proofs
            .iter()
            .any(|p| matches!(p, Err(Error::Corrupt { .. }))),
        "a reopened store read the damaged page without an error"
    );
}

#[test]
fn garbage_lmdb_file_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let mut x: u64 = 0x1234_5678_9ABC_DEF1;
    let garbage: Vec<u8> = (0..256 * 1024)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    std::fs::write(dir.path().join("data.mdb"), &garbage).unwrap();
    match XaeroFlux::builder(dir.path()).open() {
        Err(Error::Corrupt { .. }) => {}
        other => panic!("expected Corrupt, got {other:?}"),
    }
    // An empty data.mdb of the wrong size is not a store either.
    std::fs::write(dir.path().join("data.mdb"), [0u8; 100]).unwrap();
    assert!(XaeroFlux::builder(dir.path()).open().is_err());
}

#[test]
fn wrong_magic_is_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    make_store(dir.path(), 10);
    put_meta(dir.path(), b"magic", b"some-other-store");
    match XaeroFlux::builder(dir.path()).open() {
        Err(Error::Corrupt { reason, .. }) => assert!(reason.contains("magic"), "{reason}"),
        other => panic!("expected Corrupt, got {other:?}"),
    }
}

#[test]
fn newer_format_version_is_unsupported() {
    let dir = tempfile::tempdir().unwrap();
    make_store(dir.path(), 10);
    let newer = xaeroflux::FORMAT_VERSION + 1;
    put_meta(dir.path(), b"format_version", &newer.to_le_bytes());
    match XaeroFlux::builder(dir.path()).open() {
        Err(Error::UnsupportedFormat { found, supported }) if found == newer => {
            assert_eq!(supported, xaeroflux::FORMAT_VERSION)
        }
        other => panic!("expected UnsupportedFormat, got {other:?}"),
    }
    // A malformed version is corrupt, not unsupported.
    put_meta(dir.path(), b"format_version", b"\x01");
    assert!(matches!(
        XaeroFlux::builder(dir.path()).open(),
        Err(Error::Corrupt { .. })
    ));
}

#[test]
fn second_open_is_locked() {
    let dir = tempfile::tempdir().unwrap();
    let store = XaeroFlux::builder(dir.path()).open().unwrap();
    let id = store.write_event(b"first", 300).unwrap();
    match XaeroFlux::builder(dir.path()).open() {
        Err(Error::Locked { path }) => assert_eq!(path, dir.path()),
        other => panic!("expected Locked, got {other:?}"),
    }
    // The failed open did not disturb the open store.
    store.flush().unwrap();
    assert!(store.get(&id).unwrap().is_some());
    store.close().unwrap();
    let store = XaeroFlux::builder(dir.path()).open().unwrap();
    assert!(store.get(&id).unwrap().is_some());
}
