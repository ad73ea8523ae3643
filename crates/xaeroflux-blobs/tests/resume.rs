//! An interrupted transfer resumes where it stopped, also after the store is closed and
//! reopened: the second fetch asks only for the missing chunks, and the bytes received on
//! the wire show it did not start over.

mod common;

use std::sync::Arc;

use common::*;
use xaeroflux_blobs::{Blobs, BlobsOptions};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interrupted_transfer_resumes_after_restart() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let size = test_bytes();
    let src = dir.path().join("source.bin");
    write_file(&src, size, b"resume")?;

    let client_ep = endpoint(vec![]).await?;
    let provider = Node::serving(&dir.path().join("p"), allow(vec![peer_id(&client_ep)])).await?;
    let blob = provider.blobs.add_blob_path(&src).await?;

    // First attempt: stop it once half the payload has arrived (the fetch future is
    // dropped mid-transfer, which closes the stream like a killed process would).
    let client_dir = dir.path().join("c");
    let client = Blobs::open(&client_dir, BlobsOptions::default()).await?;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<u64>();
    let mut stop_tx = Some(stop_tx);
    let half = size / 2;
    let interrupted = tokio::select! {
        biased;
        at = stop_rx => at?,
        done = client.fetch(&client_ep, provider.addr(), blob, |p| {
            if p.received >= half
                && let Some(tx) = stop_tx.take()
            {
                let _ = tx.send(p.received);
            }
        }) => anyhow::bail!("fetch finished before it was interrupted: {done:?}"),
    };
    assert!(interrupted >= half && interrupted < size);

    // Restart: close the store and open it again from disk.
    client.shutdown().await?;
    let client = Blobs::open(&client_dir, BlobsOptions::default()).await?;
    let partial = client.info(&blob.hash).await?;
    assert!(!partial.complete);
    assert!(
        partial.local_bytes >= size / 4 && partial.local_bytes < size,
        "verified chunks survived the restart: {} of {size}",
        partial.local_bytes
    );
    assert_eq!(client.list().await?.len(), 1, "a partial blob is listed");

    // Second attempt from a fresh connection: only the missing part travels.
    let stats = client
        .fetch(&client_ep, provider.addr(), blob, |_| {})
        .await?;
    assert_eq!(stats.resumed_from, partial.local_bytes);
    assert_eq!(
        stats.payload_bytes + stats.resumed_from,
        size,
        "payload received = exactly the missing bytes"
    );
    // Wire bytes (UDP payload received, with QUIC and bao overhead) are well below the
    // whole blob: the transfer did not start over.
    assert!(
        stats.wire_bytes < size - partial.local_bytes / 2,
        "wire {} for {} missing of {size}",
        stats.wire_bytes,
        size - partial.local_bytes
    );

    let out = dir.path().join("out.bin");
    client.export(&blob.hash, &out).await?;
    assert!(same_file(&src, &out)?);
    provider.router.shutdown().await?;
    client.shutdown().await?;
    drop(Arc::clone(&provider.blobs));
    Ok(())
}
