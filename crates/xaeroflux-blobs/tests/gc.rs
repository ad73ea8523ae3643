//! Garbage collection: an unreferenced blob goes after the grace period (its files are
//! deleted by the store's sweep), a referenced one never does.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::*;
use xaeroflux_blobs::{Blobs, BlobsOptions};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreferenced_blob_goes_after_grace_referenced_stays() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let grace = Duration::from_secs(3600);
    let blobs = Blobs::open(
        dir.path().join("s"),
        BlobsOptions {
            sweep_interval: Duration::from_millis(50),
            grace,
        },
    )
    .await?;
    let (fa, fb) = (dir.path().join("a"), dir.path().join("b"));
    write_file(&fa, 1024 * 1024, b"a")?;
    write_file(&fb, 1024 * 1024, b"b")?;
    let a = blobs.add_blob_path(&fa).await?;
    let b = blobs.add_blob_path(&fb).await?;
    let referenced = HashSet::from([b.hash]);

    let t0 = Duration::from_secs(1_000_000);
    let r = blobs.gc(t0, &referenced).await?;
    assert!(r.released.is_empty());
    assert_eq!(r.pending, 1);
    let r = blobs
        .gc(t0 + grace - Duration::from_secs(1), &referenced)
        .await?;
    assert!(r.released.is_empty(), "still within the grace period");
    // Several sweeps run meanwhile; `a` is still kept by its tag.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(blobs.info(&a.hash).await?.complete);

    let r = blobs.gc(t0 + grace, &referenced).await?;
    assert_eq!(r.released, vec![a.hash]);
    assert_eq!(
        blobs
            .list()
            .await?
            .iter()
            .map(|i| i.hash)
            .collect::<Vec<_>>(),
        vec![b.hash]
    );
    // The sweep deletes `a`'s data; wait for it (bounded).
    let mut gone = false;
    for _ in 0..400 {
        if blobs.info(&a.hash).await?.local_bytes == 0 {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(gone, "released blob deleted by the sweep");

    // The referenced blob survives any number of passes and sweeps.
    for k in 1..5u32 {
        let r = blobs.gc(t0 + grace * (10 * k), &referenced).await?;
        assert!(r.released.is_empty());
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let out = dir.path().join("out");
    assert_eq!(blobs.export(&b.hash, &out).await?, b.size);
    assert!(same_file(&fb, &out)?);
    blobs.shutdown().await?;
    Ok(())
}
