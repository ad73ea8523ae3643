//! Loopback nodes and generated files for the blob tests.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::path::Path;
use std::sync::Arc;

use anyhow::Result;
use iroh::endpoint::presets;
use iroh::protocol::{ProtocolHandler, Router};
use iroh::{Endpoint, EndpointAddr, RelayMode, SecretKey};
use xaeroflux_blobs::{Authorizer, Blobs, BlobsOptions};

/// Default size of the transfer tests: 64 MiB. `XF_BLOB_TEST_BYTES=1073741824` runs 1 GiB.
pub const DEFAULT_TEST_BYTES: u64 = 64 * 1024 * 1024;

/// Size of the transfer tests (env `XF_BLOB_TEST_BYTES`, default 64 MiB).
pub fn test_bytes() -> u64 {
    std::env::var("XF_BLOB_TEST_BYTES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(DEFAULT_TEST_BYTES)
}

/// An endpoint bound to 127.0.0.1 only: relays off, no address lookup.
pub async fn endpoint(alpns: Vec<Vec<u8>>) -> Result<Endpoint> {
    Ok(Endpoint::builder(presets::Minimal)
        .relay_mode(RelayMode::Disabled)
        .clear_address_lookup()
        .clear_ip_transports()
        .bind_addr("127.0.0.1:0")?
        .secret_key(SecretKey::generate())
        .alpns(alpns)
        .bind()
        .await?)
}

/// The direct address of an endpoint.
pub fn addr_of(ep: &Endpoint) -> EndpointAddr {
    EndpointAddr::new(ep.id()).with_ip_addr(ep.bound_sockets()[0])
}

/// The 32 bytes of an endpoint's id.
pub fn peer_id(ep: &Endpoint) -> [u8; 32] {
    *ep.id().as_bytes()
}

/// A node: a store in a temp dir and an endpoint serving it under the blobs ALPN.
pub struct Node {
    pub blobs: Arc<Blobs>,
    pub endpoint: Endpoint,
    pub router: Router,
}

impl Node {
    pub async fn serving(dir: &Path, auth: Arc<dyn Authorizer>) -> Result<Self> {
        let blobs = Arc::new(Blobs::open(dir, BlobsOptions::default()).await?);
        let endpoint = endpoint(vec![xaeroflux_blobs::ALPN.to_vec()]).await?;
        let router = Router::builder(endpoint.clone())
            .accept(xaeroflux_blobs::ALPN, blobs.protocol(auth))
            .spawn();
        Ok(Self {
            blobs,
            endpoint,
            router,
        })
    }

    pub async fn serving_with(dir: &Path, handler: impl ProtocolHandler) -> Result<Router> {
        let _ = dir;
        let endpoint = endpoint(vec![xaeroflux_blobs::ALPN.to_vec()]).await?;
        Ok(Router::builder(endpoint)
            .accept(xaeroflux_blobs::ALPN, handler)
            .spawn())
    }

    pub fn addr(&self) -> EndpointAddr {
        addr_of(&self.endpoint)
    }
}

/// Writes `size` pseudo-random bytes (BLAKE3 XOF of `seed`) to `path`, 1 MiB at a time;
/// returns the BLAKE3 hash of the content.
pub fn write_file(path: &Path, size: u64, seed: &[u8]) -> Result<blake3::Hash> {
    let mut xof = blake3::Hasher::new().update(seed).finalize_xof();
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    let mut hasher = blake3::Hasher::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut left = size;
    while left > 0 {
        let n = left.min(buf.len() as u64) as usize;
        xof.fill(&mut buf[..n]);
        hasher.update(&buf[..n]);
        out.write_all(&buf[..n])?;
        left -= n as u64;
    }
    out.flush()?;
    Ok(hasher.finalize())
}

/// Whether two files have the same bytes (streamed).
pub fn same_file(a: &Path, b: &Path) -> Result<bool> {
    let (mut fa, mut fb) = (std::fs::File::open(a)?, std::fs::File::open(b)?);
    if fa.metadata()?.len() != fb.metadata()?.len() {
        return Ok(false);
    }
    let (mut ba, mut bb) = (vec![0u8; 1 << 20], vec![0u8; 1 << 20]);
    loop {
        let n = fa.read(&mut ba)?;
        if n == 0 {
            return Ok(true);
        }
        fb.read_exact(&mut bb[..n])?;
        if ba[..n] != bb[..n] {
            return Ok(false);
        }
    }
}

/// An authoriser that admits exactly the given peers to every blob.
pub fn allow(peers: Vec<[u8; 32]>) -> Arc<dyn Authorizer> {
    Arc::new(move |peer: &[u8; 32], _: &xaeroflux_blobs::BlobHash| peers.contains(peer))
}
