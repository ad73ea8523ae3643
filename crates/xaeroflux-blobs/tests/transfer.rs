//! Two real nodes on loopback: a blob transfers verified, equals its source, and the
//! transfer reports monotone progress. Size: 64 MiB by default; set
//! `XF_BLOB_TEST_BYTES=1073741824` for the 1 GiB run.

mod common;

use common::*;
use xaeroflux_blobs::{BlobHash, Blobs, BlobsOptions};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blob_transfers_verified_and_equals_source() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let size = test_bytes();
    let src = dir.path().join("source.bin");
    let expected = write_file(&src, size, b"transfer")?;

    let client_ep = endpoint(vec![]).await?;
    let provider = Node::serving(&dir.path().join("p"), allow(vec![peer_id(&client_ep)])).await?;
    let blob = provider.blobs.add_blob_path(&src).await?;
    assert_eq!(
        blob.hash,
        BlobHash(*expected.as_bytes()),
        "iroh-blobs root = BLAKE3"
    );
    assert_eq!(blob.size, size);

    let client = Blobs::open(dir.path().join("c"), BlobsOptions::default()).await?;
    let mut seen = Vec::new();
    let stats = client
        .fetch(&client_ep, provider.addr(), blob, |p| seen.push(p.received))
        .await?;
    assert_eq!(stats.resumed_from, 0);
    assert_eq!(stats.payload_bytes, size);
    assert!(stats.wire_bytes >= size, "wire bytes count the payload");
    assert!(
        seen.windows(2).all(|w| w[0] <= w[1]),
        "progress is monotone"
    );
    assert_eq!(seen.last().copied(), Some(size));

    let out = dir.path().join("out.bin");
    assert_eq!(client.export(&blob.hash, &out).await?, size);
    assert!(same_file(&src, &out)?);
    let listed = client.list().await?;
    assert_eq!(listed.len(), 1);
    assert!(listed[0].complete && listed[0].size == Some(size));

    // A second fetch finds everything here and transfers nothing.
    let again = client
        .fetch(&client_ep, provider.addr(), blob, |_| {})
        .await?;
    assert_eq!((again.payload_bytes, again.resumed_from), (0, size));

    provider.router.shutdown().await?;
    client.shutdown().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn add_from_reader_equals_add_from_path() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let src = dir.path().join("r.bin");
    let size = 3 * 1024 * 1024 + 17;
    let expected = write_file(&src, size, b"reader")?;
    let blobs = Blobs::open(dir.path().join("s"), BlobsOptions::default()).await?;
    let a = blobs
        .add_blob_reader(tokio::fs::File::open(&src).await?)
        .await?;
    let b = blobs.add_blob_path(&src).await?;
    assert_eq!(a, b);
    assert_eq!(a.hash, BlobHash(*expected.as_bytes()));
    assert_eq!(a.size, size);
    let small = blobs.add_blob_reader(&b"hello"[..]).await?;
    assert_eq!(small.hash, BlobHash(*blake3::hash(b"hello").as_bytes()));
    assert_eq!(blobs.list().await?.len(), 2);
    blobs.shutdown().await?;
    Ok(())
}
