//! Blobs on running nodes (loopback, relays off): an attachment written on A is fetched
//! eagerly by B over the nodes' own endpoints and equals its source; an endpoint of no
//! referencing group is refused; GC releases only unreferenced blobs, after the grace.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::time::{Duration, Instant};

use xaeroflux::blob_store::{BlobHash, FetchError};
use xaeroflux::{BlobError, BlobOptions, NetConfig, NetworkOptions, SystemEvent, XaeroFlux};

fn open(dir: &Path, blobs: BlobOptions) -> XaeroFlux {
    let mut net = NetworkOptions::for_data_dir(dir);
    net.config.bind_addr = NetConfig::loopback().bind_addr;
    net.threads = 1;
    net.blobs = Some(blobs);
    XaeroFlux::builder(dir).network(net).open().unwrap()
}

/// Deterministic, incompressible-looking bytes.
fn write_source(path: &Path, len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let data: Vec<u8> = (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    std::fs::write(path, &data).unwrap();
    data
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn attachment_is_fetched_eagerly_by_a_member_and_refused_to_others() {
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let quick = BlobOptions {
        maintenance: Duration::from_secs(2),
        ..BlobOptions::default()
    };
    let a = open(dirs[0].path(), quick.clone());
    let b = open(dirs[1].path(), quick);
    // C is online but in a group of its own.
    let c = open(dirs[2].path(), BlobOptions::default());
    let g = a.default_group();
    let mut events = b.system_events();
    b.join(&a.ticket(&g, true).unwrap()).unwrap();

    let src = dirs[0].path().join("photo.bin");
    let data = write_source(&src, 3 * 1024 * 1024 + 123, 7);
    let (blob, _id) = a.attach_blob(&g, &src, "photo.bin").unwrap();
    assert_eq!(blob.hash.0, *blake3::hash(&data).as_bytes());
    assert_eq!(blob.size, data.len() as u64);

    // B syncs the attachment event, and its policy (eager up to 16 MiB) fetches it.
    let deadline = Instant::now() + Duration::from_secs(120);
    let (mut started, mut done) = (false, None);
    while done.is_none() {
        assert!(
            Instant::now() < deadline,
            "no fetch on b (started: {started})"
        );
        match events.next_timeout(Duration::from_millis(200)) {
            Some(SystemEvent::BlobFetchStarted { hash, size, .. }) if hash == blob.hash.0 => {
                assert_eq!(size, blob.size);
                started = true;
            }
            Some(SystemEvent::BlobFetchDone { hash, received, .. }) if hash == blob.hash.0 => {
                done = Some(received)
            }
            Some(SystemEvent::BlobFetchFailed { hash, reason }) if hash == blob.hash.0 => {
                // A fetch may race the session's handshake; the retry pass or a
                // later attachment fetches it. Fail only if it never completes.
                eprintln!("fetch failed once: {reason}");
            }
            _ => {}
        }
    }
    assert!(started, "a done fetch was announced as started");
    assert_eq!(done, Some(blob.size));
    let rt = rt();
    let bn = b.blobs().unwrap();
    let info = rt.block_on(bn.info(&blob.hash)).unwrap();
    assert!(info.complete);
    let out = dirs[1].path().join("out.bin");
    rt.block_on(bn.export(&blob.hash, &out)).unwrap();
    assert!(std::fs::read(&out).unwrap() == data, "b's copy differs");
    assert_eq!(bn.referencing_groups(&blob.hash), vec![g]);

    // C is no member of a group that references the blob: refused, nothing stored.
    let cn = c.blobs().unwrap();
    let refused = rt.block_on(cn.fetch_from(a.node_addr().unwrap(), blob));
    assert!(
        matches!(refused, Err(BlobError::Fetch(FetchError::Refused { .. }))),
        "{refused:?}"
    );
    assert!(!rt.block_on(cn.info(&blob.hash)).unwrap().complete);
    assert_eq!(rt.block_on(cn.info(&blob.hash)).unwrap().local_bytes, 0);

    // B is a member, but of no group that references a blob A only added: refused too.
    let loose = dirs[0].path().join("loose.bin");
    write_source(&loose, 200_000, 9);
    let an = a.blobs().unwrap();
    let loose_ref = rt.block_on(an.add_path(&loose)).unwrap();
    let refused = rt.block_on(bn.fetch_from(a.node_addr().unwrap(), loose_ref));
    assert!(
        matches!(refused, Err(BlobError::Fetch(FetchError::Refused { .. }))),
        "{refused:?}"
    );
    // An unknown hash is refused alike.
    let mut absent = loose_ref;
    absent.hash = BlobHash([0xab; 32]);
    let refused = rt.block_on(bn.fetch_from(a.node_addr().unwrap(), absent));
    assert!(
        matches!(refused, Err(BlobError::Fetch(FetchError::Refused { .. }))),
        "{refused:?}"
    );
    drop((an, bn, cn));
    a.close().unwrap();
    b.close().unwrap();
    c.close().unwrap();
}

#[test]
fn gc_releases_unreferenced_blobs_after_the_grace_only() {
    let dir = tempfile::tempdir().unwrap();
    let grace = Duration::from_secs(3600);
    let a = open(
        dir.path(),
        BlobOptions {
            grace,
            // The background pass (real time) never runs during the test.
            maintenance: Duration::from_secs(7 * 24 * 3600),
            ..BlobOptions::default()
        },
    );
    let g = a.default_group();
    let rt = rt();
    let n = a.blobs().unwrap();
    let (loose, kept) = (dir.path().join("loose"), dir.path().join("kept"));
    write_source(&loose, 100_000, 1);
    let kept_data = write_source(&kept, 100_000, 2);
    let loose = rt.block_on(n.add_path(&loose)).unwrap();
    let (kept, _) = a.attach_blob(&g, &kept, "kept").unwrap();
    // The feeder records the attachment once it commits (bounded wait, no timing).
    let deadline = Instant::now() + Duration::from_secs(60);
    while n.referencing_groups(&kept.hash).is_empty() {
        assert!(Instant::now() < deadline, "attachment never observed");
        std::thread::sleep(Duration::from_millis(10));
    }

    let t0 = Duration::from_secs(1_000_000);
    let r = rt.block_on(n.gc(t0)).unwrap();
    assert!(r.released.is_empty());
    assert_eq!(r.pending, 1, "only the loose blob waits for its grace");
    let r = rt
        .block_on(n.gc(t0 + grace - Duration::from_secs(1)))
        .unwrap();
    assert!(r.released.is_empty());
    let r = rt.block_on(n.gc(t0 + grace)).unwrap();
    assert_eq!(r.released, vec![loose.hash]);
    // The referenced blob is never released, however much time passes.
    for k in 2..6 {
        let r = rt.block_on(n.gc(t0 + grace * k)).unwrap();
        assert!(!r.released.contains(&kept.hash));
    }
    let out = dir.path().join("out");
    rt.block_on(n.export(&kept.hash, &out)).unwrap();
    assert_eq!(std::fs::read(&out).unwrap(), kept_data);
    drop(n);
    a.close().unwrap();
}
