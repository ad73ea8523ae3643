//! `xaeroflux blob ...`: large payloads in DATA_DIR/blobs (crate `xaeroflux-blobs`).
//!
//! Until the node serves blobs on its own endpoint, `blob serve` runs a provider for
//! the listed peers and `blob get --from` fetches from one; both use the key in
//! DATA_DIR/blobs/endpoint.key, whose id `blob id` prints.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use indicatif::{ProgressBar, ProgressStyle};
use iroh::endpoint::presets;
use iroh::protocol::Router;
use iroh::{Endpoint, EndpointAddr, EndpointId, RelayMode, SecretKey};
use xaeroflux_blobs::{Attachment, BlobHash, BlobRef, Blobs, BlobsOptions};

use crate::config::Ctx;

/// Blob subcommands.
#[derive(Debug, Subcommand)]
pub enum BlobCommand {
    /// Add a file (streamed, verified by BLAKE3); prints `HASH SIZE`.
    Add {
        /// The file.
        file: PathBuf,
        /// Also write an attachment event (payload layout in docs/FORMAT.md, "Blob
        /// references") to this group (64 hex digits).
        #[arg(long)]
        group: Option<String>,
        /// Event type of the attachment event (an application type, 256 and above,
        /// until the store accepts the reserved type 64).
        #[arg(long = "type", default_value_t = 1064)]
        event_type: u32,
    },
    /// Export a blob to a file (fetching it first with --from), with a progress bar.
    Get {
        /// Blob hash, 64 hex digits.
        hash: String,
        /// Output file (default: the hash in the current directory).
        #[arg(short = 'o', long)]
        output: Option<PathBuf>,
        /// Fetch from this peer first: `ENDPOINT_ID@IP:PORT` (as `blob serve` prints).
        #[arg(long, requires = "size")]
        from: Option<String>,
        /// Size the reference claims (with --from; the transfer stops beyond it).
        #[arg(long)]
        size: Option<u64>,
    },
    /// List the blobs held here (complete and partial).
    Ls,
    /// Print the endpoint id that `blob get --from` fetches with (for `serve --allow`).
    Id,
    /// Serve this store's blobs to the given peers until interrupted.
    Serve {
        /// UDP address to bind (e.g. 127.0.0.1:4433).
        #[arg(long)]
        bind: SocketAddr,
        /// Endpoint id allowed to fetch (repeatable).
        #[arg(long = "allow")]
        allow: Vec<String>,
    },
}

/// Runs a blob subcommand.
pub fn run(ctx: &Ctx, command: BlobCommand) -> Result<ExitCode> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the runtime")?;
    rt.block_on(run_async(ctx, command))
}

async fn open(dir: &Path) -> Result<Blobs> {
    let path = dir.join("blobs");
    Blobs::open(&path, BlobsOptions::default())
        .await
        .with_context(|| format!("opening the blob store in {}", path.display()))
}

/// The blob endpoint's key: DATA_DIR/blobs/endpoint.key (32 bytes, created 0600).
fn secret_key(dir: &Path) -> Result<SecretKey> {
    let path = dir.join("blobs").join("endpoint.key");
    if let Ok(bytes) = std::fs::read(&path) {
        let arr: [u8; 32] = bytes
            .as_slice()
            .try_into()
            .with_context(|| format!("{} is not a 32-byte key", path.display()))?;
        return Ok(SecretKey::from_bytes(&arr));
    }
    let key = SecretKey::generate();
    std::fs::create_dir_all(dir.join("blobs"))?;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    std::io::Write::write_all(&mut opts.open(&path)?, &key.to_bytes())
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(key)
}

async fn endpoint(dir: &Path, bind: SocketAddr, alpns: Vec<Vec<u8>>) -> Result<Endpoint> {
    Ok(Endpoint::builder(presets::Minimal)
        .relay_mode(RelayMode::Disabled)
        .clear_address_lookup()
        .clear_ip_transports()
        .bind_addr(bind)?
        .secret_key(secret_key(dir)?)
        .alpns(alpns)
        .bind()
        .await?)
}

fn bar(len: u64, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template(&format!(
            "{what} {{bar:40}} {{bytes}}/{{total_bytes}} ({{bytes_per_sec}}, {{eta}})"
        ))
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar
}

async fn run_async(ctx: &Ctx, command: BlobCommand) -> Result<ExitCode> {
    match command {
        BlobCommand::Add {
            file,
            group,
            event_type,
        } => {
            let blobs = open(&ctx.dir).await?;
            let blob = blobs
                .add_blob_path(&file)
                .await
                .with_context(|| format!("adding {}", file.display()))?;
            println!("{} {}", blob.hash, blob.size);
            blobs.shutdown().await?;
            if let Some(g) = group {
                let group = xaeroflux::GroupId::from_hex(&g).context("group id")?;
                let name = file
                    .file_name()
                    .and_then(|n| n.to_str())
                    .unwrap_or_default();
                let name: String = name.chars().take(64).collect();
                let payload = Attachment::new(blob, name)?.encode()?;
                let store = ctx.open()?;
                let id = store.write_event_to(group, &payload, event_type)?;
                store.flush()?;
                println!("{id}");
            }
            Ok(ExitCode::SUCCESS)
        }
        BlobCommand::Get {
            hash,
            output,
            from,
            size,
        } => {
            let hash: BlobHash = hash.parse().context("blob hash")?;
            let blobs = open(&ctx.dir).await?;
            if let (Some(from), Some(size)) = (from, size) {
                let (id, addr) = from
                    .split_once('@')
                    .context("--from must be ENDPOINT_ID@IP:PORT")?;
                let id: EndpointId = id.parse().context("endpoint id")?;
                let addr: SocketAddr = addr.parse().context("peer address")?;
                let ep = endpoint(&ctx.dir, "0.0.0.0:0".parse()?, vec![]).await?;
                let progress = bar(size, "fetching");
                let blob = BlobRef { hash, size };
                let stats = blobs
                    .fetch(&ep, EndpointAddr::new(id).with_ip_addr(addr), blob, |p| {
                        progress.set_position(p.resumed_from + p.received)
                    })
                    .await;
                progress.finish_and_clear();
                ep.close().await;
                let stats = stats.context("fetching")?;
                eprintln!(
                    "fetched {} bytes ({} already here), {} on the wire",
                    stats.payload_bytes, stats.resumed_from, stats.wire_bytes
                );
            }
            let out = output.unwrap_or_else(|| PathBuf::from(hash.to_string()));
            let n = blobs
                .export(&hash, &out)
                .await
                .with_context(|| format!("exporting to {}", out.display()))?;
            println!("{} {n}", out.display());
            blobs.shutdown().await?;
            Ok(ExitCode::SUCCESS)
        }
        BlobCommand::Ls => {
            let blobs = open(&ctx.dir).await?;
            for b in blobs.list().await? {
                let size = b.size.map_or_else(|| "?".to_owned(), |s| s.to_string());
                let state = if b.complete { "complete" } else { "partial" };
                println!("{} {size} {} {state}", b.hash, b.local_bytes);
            }
            blobs.shutdown().await?;
            Ok(ExitCode::SUCCESS)
        }
        BlobCommand::Id => {
            println!("{}", secret_key(&ctx.dir)?.public());
            Ok(ExitCode::SUCCESS)
        }
        BlobCommand::Serve { bind, allow } => {
            if allow.is_empty() {
                bail!("name at least one peer with --allow");
            }
            let allowed: HashSet<[u8; 32]> = allow
                .iter()
                .map(|s| s.parse::<EndpointId>().map(|id| *id.as_bytes()))
                .collect::<Result<_, _>>()
                .context("--allow endpoint id")?;
            let blobs = open(&ctx.dir).await?;
            let ep = endpoint(&ctx.dir, bind, vec![xaeroflux_blobs::ALPN.to_vec()]).await?;
            let auth = Arc::new(move |peer: &[u8; 32], _: &BlobHash| allowed.contains(peer));
            let router = Router::builder(ep.clone())
                .accept(xaeroflux_blobs::ALPN, blobs.protocol(auth))
                .spawn();
            println!("{}@{}", ep.id(), ep.bound_sockets()[0]);
            tokio::signal::ctrl_c().await?;
            router.shutdown().await?;
            blobs.shutdown().await?;
            Ok(ExitCode::SUCCESS)
        }
    }
}
