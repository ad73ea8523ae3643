//! Hostile and unauthorised peers: corrupted data is detected and refused (and nothing of
//! it is kept), and a non-member is refused whether or not we hold the blob.

mod common;

use std::sync::Arc;

use anyhow::Result;
use common::*;
use iroh::endpoint::Connection;
use iroh::protocol::{AcceptError, ProtocolHandler};
use iroh::{Endpoint, EndpointAddr};
use xaeroflux_blobs::{BlobHash, BlobRef, Blobs, BlobsOptions, FetchError, GroupAccess};

/// A peer that relays requests to an honest provider and flips one byte of the answer
/// at `flip_at` (counted from the start of the response stream).
#[derive(Debug, Clone)]
struct Tamper {
    endpoint: Endpoint,
    upstream: EndpointAddr,
    flip_at: u64,
}

impl ProtocolHandler for Tamper {
    async fn accept(&self, conn: Connection) -> Result<(), AcceptError> {
        let up = self
            .endpoint
            .connect(self.upstream.clone(), xaeroflux_blobs::ALPN)
            .await
            .map_err(AcceptError::from_err)?;
        while let Ok((mut send, mut recv)) = conn.accept_bi().await {
            let (mut up_send, mut up_recv) = up.open_bi().await.map_err(AcceptError::from_err)?;
            let flip_at = self.flip_at;
            tokio::spawn(async move {
                let mut buf = vec![0u8; 64 * 1024];
                while let Ok(Some(n)) = recv.read(&mut buf).await {
                    if up_send.write_all(&buf[..n]).await.is_err() {
                        return;
                    }
                }
                let _ = up_send.finish();
            });
            let mut offset = 0u64;
            let mut buf = vec![0u8; 64 * 1024];
            while let Ok(Some(n)) = up_recv.read(&mut buf).await {
                let range = offset..offset + n as u64;
                if range.contains(&flip_at) {
                    buf[(flip_at - offset) as usize] ^= 0x01;
                }
                offset += n as u64;
                if send.write_all(&buf[..n]).await.is_err() {
                    break;
                }
            }
            let _ = send.finish();
        }
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupted_data_is_detected_and_refused() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let size = 8 * 1024 * 1024;
    let src = dir.path().join("source.bin");
    write_file(&src, size, b"corrupt")?;

    let client_ep = endpoint(vec![]).await?;
    let tamper_ep = endpoint(vec![xaeroflux_blobs::ALPN.to_vec()]).await?;
    let provider = Node::serving(
        &dir.path().join("p"),
        allow(vec![peer_id(&client_ep), peer_id(&tamper_ep)]),
    )
    .await?;
    let blob = provider.blobs.add_blob_path(&src).await?;
    let tamper = Tamper {
        endpoint: tamper_ep.clone(),
        upstream: provider.addr(),
        flip_at: 3 * 1024 * 1024 + 12_345,
    };
    let tamper_router = iroh::protocol::Router::builder(tamper_ep.clone())
        .accept(xaeroflux_blobs::ALPN, tamper)
        .spawn();

    let client = Blobs::open(dir.path().join("c"), BlobsOptions::default()).await?;
    let err = client
        .fetch(&client_ep, addr_of(&tamper_ep), blob, |_| {})
        .await
        .expect_err("tampered data must not verify");
    assert!(
        matches!(err, FetchError::Corrupt { hash, .. } if hash == blob.hash),
        "{err:?}"
    );
    let info = client.info(&blob.hash).await?;
    assert!(!info.complete);
    assert!(
        info.local_bytes < size,
        "the corrupted chunk was not stored"
    );

    // The honest peer completes it; the result equals the source.
    let stats = client
        .fetch(&client_ep, provider.addr(), blob, |_| {})
        .await?;
    assert_eq!(stats.payload_bytes + stats.resumed_from, size);
    let out = dir.path().join("out.bin");
    client.export(&blob.hash, &out).await?;
    assert!(same_file(&src, &out)?);

    tamper_router.shutdown().await?;
    provider.router.shutdown().await?;
    client.shutdown().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_non_member_is_refused_and_learns_nothing() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let src = dir.path().join("source.bin");
    write_file(&src, 2 * 1024 * 1024, b"members")?;

    let member_ep = endpoint(vec![]).await?;
    let outsider_ep = endpoint(vec![]).await?;
    let other_group_ep = endpoint(vec![]).await?;
    let access = Arc::new(GroupAccess::new());
    let provider = Node::serving(&dir.path().join("p"), access.clone()).await?;
    let blob = provider.blobs.add_blob_path(&src).await?;
    let (group, other_group) = ([1u8; 32], [2u8; 32]);
    access.set_members(group, [peer_id(&member_ep)]);
    access.set_members(other_group, [peer_id(&other_group_ep)]);
    access.add_reference(group, blob.hash);
    let absent = BlobRef {
        hash: BlobHash([9; 32]),
        size: 100,
    };

    // Not a member of any group: refused at the connection, for any hash.
    let outsider = Blobs::open(dir.path().join("o"), BlobsOptions::default()).await?;
    for target in [blob, absent] {
        let err = outsider
            .fetch(&outsider_ep, provider.addr(), target, |_| {})
            .await
            .expect_err("outsider must be refused");
        assert!(matches!(err, FetchError::Refused { .. }), "{err:?}");
    }
    // A member of a group that does not reference the blob: refused per request, the
    // same answer for a blob we hold and one we do not.
    let other = Blobs::open(dir.path().join("g"), BlobsOptions::default()).await?;
    for target in [blob, absent] {
        let err = other
            .fetch(&other_group_ep, provider.addr(), target, |_| {})
            .await
            .expect_err("member of another group must be refused");
        assert!(matches!(err, FetchError::Refused { .. }), "{err:?}");
        assert_eq!(other.info(&target.hash).await?.local_bytes, 0);
    }
    // The member gets it; once the reference goes, the member is refused too.
    let member = Blobs::open(dir.path().join("m"), BlobsOptions::default()).await?;
    let stats = member
        .fetch(&member_ep, provider.addr(), blob, |_| {})
        .await?;
    assert_eq!(stats.payload_bytes, blob.size);
    access.remove_reference(group, &blob.hash);
    let fresh = Blobs::open(dir.path().join("m2"), BlobsOptions::default()).await?;
    let err = fresh
        .fetch(&member_ep, provider.addr(), blob, |_| {})
        .await
        .expect_err("no group references it any longer");
    assert!(matches!(err, FetchError::Refused { .. }), "{err:?}");

    provider.router.shutdown().await?;
    for b in [outsider, other, member, fresh] {
        b.shutdown().await?;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blob_larger_than_its_reference_claims_is_cut_off() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let src = dir.path().join("source.bin");
    write_file(&src, 4 * 1024 * 1024, b"claims")?;
    let client_ep = endpoint(vec![]).await?;
    let provider = Node::serving(&dir.path().join("p"), allow(vec![peer_id(&client_ep)])).await?;
    let blob = provider.blobs.add_blob_path(&src).await?;
    let lying = BlobRef {
        hash: blob.hash,
        size: 1024 * 1024,
    };
    let client = Blobs::open(dir.path().join("c"), BlobsOptions::default()).await?;
    let err = client
        .fetch(&client_ep, provider.addr(), lying, |_| {})
        .await
        .expect_err("more than claimed");
    assert!(
        matches!(err, FetchError::LargerThanClaimed { claimed, .. } if claimed == 1024 * 1024),
        "{err:?}"
    );
    let info = client.info(&blob.hash).await?;
    assert!(!info.complete && info.local_bytes <= 2 * 1024 * 1024);
    provider.router.shutdown().await?;
    client.shutdown().await?;
    Ok(())
}
