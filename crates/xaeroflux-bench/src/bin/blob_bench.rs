//! Blob transfer and hashing, against their anchors, in one run.
//!
//! (a) Transfer of one generated blob between the same two loopback endpoints (iroh
//!     QUIC, relays off), each trial into an empty client store:
//!     - `Blobs::fetch` (xaeroflux-blobs: authorised provider, progress, size cap);
//!     - plain iroh-blobs (`Store::remote().fetch`, provider without event hooks);
//!     - raw QUIC: one bidirectional stream carrying the file bytes, read and dropped
//!       (no hashing, no store), the ceiling of the transport.
//! (b) `add_blob_path` (import + BLAKE3/bao outboard) against `blake3::Hasher::update`
//!     over the same file (one thread, 1 MiB reads), and `b3sum` when installed.
//!
//! `cargo run --release -p xaeroflux-bench --bin blob_bench -- [--mib N] [--trials T]
//! [--dir PATH]` (defaults: 256 MiB, 3 trials, the system temp dir).
#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use iroh::endpoint::{Connection, presets};
use iroh::protocol::{AcceptError, ProtocolHandler, Router};
use iroh::{Endpoint, EndpointAddr, RelayMode, SecretKey};
use iroh_blobs::{BlobsProtocol, HashAndFormat};
use xaeroflux_blobs::{BlobHash, Blobs, BlobsOptions};

const PLAIN_ALPN: &[u8] = b"xaeroflux/bench/plain-blobs";
const RAW_ALPN: &[u8] = b"xaeroflux/bench/raw";

struct Args {
    mib: u64,
    trials: usize,
    dir: PathBuf,
}

fn parse_args() -> Args {
    let mut a = Args {
        mib: 256,
        trials: 3,
        dir: std::env::temp_dir(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut val = || it.next().unwrap_or_else(|| usage(2));
        match arg.as_str() {
            "--mib" => a.mib = val().parse().unwrap_or_else(|_| usage(2)),
            "--trials" => a.trials = val().parse().unwrap_or_else(|_| usage(2)),
            "--dir" => a.dir = PathBuf::from(val()),
            "--bench" => {}
            "--help" | "-h" => usage(0),
            _ => usage(2),
        }
    }
    a
}

fn usage(code: i32) -> ! {
    eprintln!("usage: blob_bench [--mib N] [--trials T] [--dir PATH]");
    std::process::exit(code)
}

/// Serves the file's bytes on every bidirectional stream.
#[derive(Debug, Clone)]
struct RawServe(Arc<PathBuf>);

impl ProtocolHandler for RawServe {
    async fn accept(&self, conn: Connection) -> Result<(), AcceptError> {
        while let Ok((mut send, mut recv)) = conn.accept_bi().await {
            let _ = recv.read_to_end(64).await;
            let mut f = std::fs::File::open(&*self.0)?;
            let mut buf = vec![0u8; 1 << 20];
            loop {
                let n = f.read(&mut buf)?;
                if n == 0 {
                    break;
                }
                send.write_all(&buf[..n])
                    .await
                    .map_err(AcceptError::from_err)?;
            }
            send.finish()?;
            let _ = send.stopped().await;
        }
        Ok(())
    }
}

async fn endpoint(alpns: Vec<Vec<u8>>) -> anyhow::Result<Endpoint> {
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

fn write_file(path: &Path, size: u64) -> anyhow::Result<()> {
    let mut xof = blake3::Hasher::new().update(b"blob_bench").finalize_xof();
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    let mut buf = vec![0u8; 1 << 20];
    let mut left = size;
    while left > 0 {
        let n = left.min(buf.len() as u64) as usize;
        xof.fill(&mut buf[..n]);
        out.write_all(&buf[..n])?;
        left -= n as u64;
    }
    out.flush()?;
    Ok(())
}

fn stats(mut rates: Vec<f64>) -> (f64, f64) {
    rates.sort_by(|a, b| a.total_cmp(b));
    (rates[rates.len() / 2], rates[0])
}

fn mibs(bytes: u64, d: Duration) -> f64 {
    bytes as f64 / (1024.0 * 1024.0) / d.as_secs_f64()
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> anyhow::Result<()> {
    let args = parse_args();
    let size = args.mib * 1024 * 1024;
    let root = tempfile::tempdir_in(&args.dir)?;
    let src = root.path().join("source.bin");
    write_file(&src, size)?;

    // Provider: one endpoint serving our protocol, plain iroh-blobs and raw QUIC.
    let provider_blobs = Blobs::open(root.path().join("provider"), BlobsOptions::default()).await?;
    let blob = provider_blobs.add_blob_path(&src).await?;
    let client_ep = endpoint(vec![]).await?;
    let client_id = *client_ep.id().as_bytes();
    let auth = Arc::new(move |peer: &[u8; 32], _: &BlobHash| *peer == client_id);
    let provider_ep = endpoint(vec![
        xaeroflux_blobs::ALPN.to_vec(),
        PLAIN_ALPN.to_vec(),
        RAW_ALPN.to_vec(),
    ])
    .await?;
    let router = Router::builder(provider_ep.clone())
        .accept(xaeroflux_blobs::ALPN, provider_blobs.protocol(auth))
        .accept(
            PLAIN_ALPN,
            BlobsProtocol::new(provider_blobs.iroh_store(), None),
        )
        .accept(RAW_ALPN, RawServe(Arc::new(src.clone())))
        .spawn();
    let addr = EndpointAddr::new(provider_ep.id()).with_ip_addr(provider_ep.bound_sockets()[0]);

    let (mut ours, mut plain, mut raw) = (vec![], vec![], vec![]);
    for trial in 0..args.trials {
        // Ours.
        let dir = root.path().join(format!("ours-{trial}"));
        let client = Blobs::open(&dir, BlobsOptions::default()).await?;
        let t = Instant::now();
        let s = client.fetch(&client_ep, addr.clone(), blob, |_| {}).await?;
        ours.push(mibs(s.payload_bytes, t.elapsed()));
        client.shutdown().await?;
        std::fs::remove_dir_all(&dir)?;

        // Plain iroh-blobs into a plain file store.
        let dir = root.path().join(format!("plain-{trial}"));
        let store = iroh_blobs::store::fs::FsStore::load(&dir).await?;
        let t = Instant::now();
        let conn = client_ep.connect(addr.clone(), PLAIN_ALPN).await?;
        let s = store
            .remote()
            .fetch(
                conn.clone(),
                HashAndFormat::raw(iroh_blobs::Hash::from_bytes(blob.hash.0)),
            )
            .await?;
        plain.push(mibs(s.payload_bytes_read, t.elapsed()));
        conn.close(0u32.into(), b"");
        store.shutdown().await?;
        std::fs::remove_dir_all(&dir)?;

        // Raw QUIC stream copy.
        let t = Instant::now();
        let conn = client_ep.connect(addr.clone(), RAW_ALPN).await?;
        let (mut send, mut recv) = conn.open_bi().await?;
        send.write_all(b"go").await?;
        send.finish()?;
        let mut buf = vec![0u8; 1 << 20];
        let mut got = 0u64;
        while let Some(n) = recv.read(&mut buf).await? {
            got += n as u64;
        }
        anyhow::ensure!(got == size, "raw copy got {got} of {size}");
        raw.push(mibs(got, t.elapsed()));
        conn.close(0u32.into(), b"");
    }

    // Hashing: import into a fresh store vs blake3 over the same file.
    let (mut add, mut b3) = (vec![], vec![]);
    for trial in 0..args.trials {
        let dir = root.path().join(format!("add-{trial}"));
        let store = Blobs::open(&dir, BlobsOptions::default()).await?;
        let t = Instant::now();
        let r = store.add_blob_path(&src).await?;
        add.push(mibs(r.size, t.elapsed()));
        anyhow::ensure!(r == blob);
        store.shutdown().await?;
        std::fs::remove_dir_all(&dir)?;

        let t = Instant::now();
        let mut f = std::fs::File::open(&src)?;
        let mut h = blake3::Hasher::new();
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = f.read(&mut buf)?;
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
        }
        anyhow::ensure!(h.finalize().as_bytes() == &blob.hash.0);
        b3.push(mibs(size, t.elapsed()));
    }
    let b3sum = (0..args.trials)
        .map(|_| {
            let t = Instant::now();
            let ok = Command::new("b3sum")
                .arg(&src)
                .output()
                .ok()?
                .status
                .success();
            ok.then(|| mibs(size, t.elapsed()))
        })
        .collect::<Option<Vec<f64>>>();

    router.shutdown().await?;
    let (o, p, r) = (stats(ours), stats(plain), stats(raw));
    println!(
        "blob transfer, {} MiB, {} trials, loopback (MiB/s payload; median / worst)",
        args.mib, args.trials
    );
    println!("| case | median | worst | vs plain iroh-blobs | vs raw QUIC |");
    println!("|---|---:|---:|---:|---:|");
    println!(
        "| xaeroflux-blobs fetch | {:.0} | {:.0} | {:.2}x | {:.2}x |",
        o.0,
        o.1,
        o.0 / p.0,
        o.0 / r.0
    );
    println!(
        "| plain iroh-blobs fetch | {:.0} | {:.0} | 1.00x | {:.2}x |",
        p.0,
        p.1,
        p.0 / r.0
    );
    println!(
        "| raw QUIC stream copy | {:.0} | {:.0} | | 1.00x |",
        r.0, r.1
    );
    let (a, b) = (stats(add), stats(b3));
    println!();
    println!("hashing, {} MiB file (MiB/s; median / worst)", args.mib);
    println!("| case | median | worst | vs blake3 (1 thread) |");
    println!("|---|---:|---:|---:|");
    println!(
        "| add_blob_path (copy + bao outboard) | {:.0} | {:.0} | {:.2}x |",
        a.0,
        a.1,
        a.0 / b.0
    );
    println!(
        "| blake3::Hasher::update, 1 MiB reads | {:.0} | {:.0} | 1.00x |",
        b.0, b.1
    );
    match b3sum {
        Some(v) if !v.is_empty() => {
            let s = stats(v);
            println!("| b3sum | {:.0} | {:.0} | {:.2}x |", s.0, s.1, s.0 / b.0);
        }
        _ => println!("| b3sum | not installed | | |"),
    }
    Ok(())
}
