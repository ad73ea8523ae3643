//! A fetching process killed with SIGKILL halfway resumes: the test re-runs its own
//! binary as a child that fetches a large generated blob into a store and prints its
//! progress; once half has arrived the parent kills it (`kill -9`, no shutdown, no
//! flush), reopens the child's store and fetches again. The second fetch must move
//! fewer bytes on the wire than what was missing plus a small slack (it did not start
//! over), and the result must verify and equal the source.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use common::*;
use xaeroflux_blobs::{BlobHash, BlobRef, Blobs, BlobsOptions};

/// Environment of the child: where its store is and what to fetch from whom.
const CHILD_ENV: &str = "XF_BLOB_KILL_CHILD";

/// The child: fetch the blob named in the environment, printing `P <bytes>` lines.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn child_fetch() -> anyhow::Result<()> {
    let Ok(spec) = std::env::var(CHILD_ENV) else {
        // Run directly (not as the child): nothing to do.
        return Ok(());
    };
    let parts: Vec<&str> = spec.split(' ').collect();
    let [dir, id, addr, hash, size] = parts[..] else {
        anyhow::bail!("bad child spec {spec:?}");
    };
    let blob = BlobRef {
        hash: hash.parse::<BlobHash>()?,
        size: size.parse()?,
    };
    let from = iroh::EndpointAddr::new(id.parse()?).with_ip_addr(addr.parse()?);
    let ep = endpoint(vec![]).await?;
    let store = Blobs::open(dir, BlobsOptions::default()).await?;
    let mut last = 0;
    store
        .fetch(&ep, from, blob, |p| {
            // Print every MiB so the parent sees where we are.
            if p.received >= last + (1 << 20) {
                last = p.received;
                println!("P {}", p.received);
            }
        })
        .await?;
    println!("DONE");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetch_killed_with_sigkill_resumes() -> anyhow::Result<()> {
    if std::env::var(CHILD_ENV).is_ok() {
        return Ok(());
    }
    let dir = tempfile::tempdir()?;
    let size = test_bytes();
    let src = dir.path().join("source.bin");
    write_file(&src, size, b"kill -9")?;
    let client_dir = dir.path().join("c");
    // The child's endpoint has a fresh key: admit every peer (access is not the point).
    let provider = Node::serving(
        &dir.path().join("p"),
        std::sync::Arc::new(|_: &[u8; 32], _: &BlobHash| true),
    )
    .await?;
    let blob = provider.blobs.add_blob_path(&src).await?;
    let spec = format!(
        "{} {} {} {} {}",
        client_dir.display(),
        provider.endpoint.id(),
        provider.endpoint.bound_sockets()[0],
        blob.hash,
        blob.size
    );
    let mut child = Command::new(std::env::current_exe()?)
        .args(["--exact", "child_fetch", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, spec)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| anyhow::anyhow!("no stdout"))?;
    // Read progress on a thread; kill once half has arrived.
    let killed_at = tokio::task::spawn_blocking(move || -> anyhow::Result<u64> {
        for line in BufReader::new(stdout).lines() {
            let line = line?;
            if let Some(n) = line.strip_prefix("P ") {
                let n: u64 = n.trim().parse()?;
                if n >= size / 2 {
                    child.kill()?; // SIGKILL on Unix
                    child.wait()?;
                    return Ok(n);
                }
            }
            if line.contains("DONE") {
                anyhow::bail!("the child finished before it was killed");
            }
        }
        anyhow::bail!("the child ended without reaching half")
    })
    .await??;
    assert!(killed_at >= size / 2 && killed_at < size);

    // Reopen what the killed process left and fetch again.
    let client = Blobs::open(&client_dir, BlobsOptions::default()).await?;
    let partial = client.info(&blob.hash).await?;
    assert!(!partial.complete);
    let ep = endpoint(vec![]).await?;
    let stats = client.fetch(&ep, provider.addr(), blob, |_| {}).await?;
    assert_eq!(stats.resumed_from, partial.local_bytes);
    assert_eq!(stats.payload_bytes + stats.resumed_from, size);
    let missing = size - partial.local_bytes;
    // Slack: QUIC, bao proof overhead (~1/256 for 16 KiB groups) and handshakes.
    let slack = missing / 20 + (1 << 20);
    eprintln!(
        "killed at {killed_at} of {size}; {} verified bytes survived; {} on the wire for {missing} missing",
        partial.local_bytes, stats.wire_bytes
    );
    // The child had verified at least half before the kill; most of that must survive
    // (iroh-blobs may lose its last bitfield updates, never the file data).
    assert!(
        partial.local_bytes >= size / 4,
        "only {} bytes of the killed fetch survived (killed at {killed_at})",
        partial.local_bytes
    );
    assert!(
        stats.wire_bytes < missing + slack,
        "wire {} for {missing} missing of {size}: the transfer started over",
        stats.wire_bytes
    );
    let out = dir.path().join("out.bin");
    client.export(&blob.hash, &out).await?;
    assert!(same_file(&src, &out)?);
    client.shutdown().await?;
    provider.router.shutdown().await?;
    Ok(())
}
