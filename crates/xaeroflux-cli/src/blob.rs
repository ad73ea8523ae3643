//! `xaeroflux blob ...`: large payloads in DATA_DIR/blobs (crate `xaeroflux-blobs`).
//!
//! When a daemon holds the store, `add`, `get` and `ls` go through its API: `add
//! --group` writes the attachment event that makes the group's peers fetch the blob,
//! `get` has the daemon fetch it from its group's peers (with a progress bar), then
//! downloads it. Without a daemon they work on DATA_DIR/blobs directly; `blob serve`
//! then runs a provider for the listed peers and `blob get --from` fetches from one,
//! both with the key in DATA_DIR/blobs/endpoint.key, whose id `blob id` prints.

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
        /// Event type of the attachment event: the reserved attachment type 64 (peers
        /// fetch the blob by their policy), or an application type (256 and above).
        #[arg(long = "type", default_value_t = xaeroflux_blobs::BLOB_REF_EVENT_TYPE)]
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

/// Runs a blob subcommand: through the daemon's API when a daemon holds the store,
/// else on DATA_DIR/blobs directly.
pub fn run(ctx: &Ctx, command: BlobCommand) -> Result<ExitCode> {
    if !matches!(command, BlobCommand::Id | BlobCommand::Serve { .. })
        && let Some(client) = daemon(ctx)?
    {
        return remote(&client, command);
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the runtime")?;
    rt.block_on(run_async(ctx, command))
}

/// The daemon's API client if a daemon holds the store.
fn daemon(ctx: &Ctx) -> Result<Option<xaeroflux_api::Client>> {
    match crate::backend::Node::open(ctx)? {
        crate::backend::Node::Local(_) => Ok(None),
        crate::backend::Node::Remote(c) => Ok(Some(c)),
    }
}

fn file_name(file: &Path) -> String {
    let name = file
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    name.chars().take(64).collect()
}

/// The blob commands through the daemon's API.
fn remote(client: &xaeroflux_api::Client, command: BlobCommand) -> Result<ExitCode> {
    match command {
        BlobCommand::Add {
            file,
            group,
            event_type,
        } => {
            if group.is_some() && event_type != xaeroflux_blobs::BLOB_REF_EVENT_TYPE {
                bail!("through the daemon, attachments are written with type 64 only");
            }
            let added = client
                .blob_add(&file, group.as_deref(), &file_name(&file))
                .with_context(|| format!("adding {} through the daemon", file.display()))?;
            println!("{} {}", added.hash, added.size);
            if let Some(e) = added.event {
                println!("{e}");
            }
        }
        BlobCommand::Get {
            hash, output, from, ..
        } => {
            if from.is_some() {
                bail!("a daemon holds this store: `blob get HASH` fetches from its group peers");
            }
            let info = client.blob_info(&hash)?;
            if !info.as_ref().is_some_and(|i| i.complete) {
                fetch_with_bar(client, &hash, info.and_then(|i| i.size))?;
            }
            let out = output.unwrap_or_else(|| PathBuf::from(&hash));
            let mut f = std::fs::File::create(&out)
                .with_context(|| format!("creating {}", out.display()))?;
            let progress = bar(0, "saving  ");
            let n = client.blob_download(&hash, &mut f, |done, size| {
                progress.set_length(size);
                progress.set_position(done);
            });
            progress.finish_and_clear();
            let n = n.context("downloading from the daemon")?;
            f.sync_all()?;
            println!("{} {n}", out.display());
        }
        BlobCommand::Ls => {
            for b in client.blob_list()? {
                let size = b.size.map_or_else(|| "?".to_owned(), |s| s.to_string());
                let state = if b.complete { "complete" } else { "partial" };
                println!("{} {size} {} {state}", b.hash, b.local_bytes);
            }
        }
        BlobCommand::Id | BlobCommand::Serve { .. } => {
            bail!("a daemon holds this store; stop it first")
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Asks the daemon to fetch a blob, showing its verified bytes as a progress bar.
fn fetch_with_bar(client: &xaeroflux_api::Client, hash: &str, size: Option<u64>) -> Result<()> {
    let progress = bar(size.unwrap_or(0), "fetching");
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let poll = {
        let (client, hash, done, progress) = (
            client.clone(),
            hash.to_owned(),
            done.clone(),
            progress.clone(),
        );
        std::thread::spawn(move || {
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                if let Ok(Some(i)) = client.blob_info(&hash) {
                    if let Some(s) = i.size {
                        progress.set_length(s);
                    }
                    progress.set_position(i.local_bytes);
                }
                std::thread::sleep(std::time::Duration::from_millis(200));
            }
        })
    };
    let r = client.blob_fetch(hash);
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let _ = poll.join();
    progress.finish_and_clear();
    let f = r.context("the daemon could not fetch the blob")?;
    eprintln!(
        "fetched {} bytes ({} already here)",
        f.received, f.resumed_from
    );
    Ok(())
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
                let payload = Attachment::new(blob, file_name(&file))?.encode()?;
                let store = ctx.open()?;
                let id = if event_type == xaeroflux_blobs::BLOB_REF_EVENT_TYPE {
                    store.write_reserved_to(&group, &payload, event_type)?
                } else {
                    store.write_event_to(group, &payload, event_type)?
                };
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

/// The daemon's blob fetches as progress bars, one per blob, from system events.
#[derive(Default)]
pub struct FetchBars {
    bars: std::collections::HashMap<[u8; 32], ProgressBar>,
}

impl FetchBars {
    /// Updates the bars with a system event (other events are ignored).
    pub fn on_event(&mut self, e: &xaeroflux::SystemEvent) {
        use xaeroflux::SystemEvent as E;
        let short = |h: &[u8; 32]| BlobHash(*h).fmt_short();
        match e {
            E::BlobFetchStarted {
                hash,
                size,
                resumed_from,
                ..
            } => {
                let b = bar(*size, &format!("blob {}", short(hash)));
                b.set_position(*resumed_from);
                if let Some(old) = self.bars.insert(*hash, b) {
                    old.finish_and_clear();
                }
            }
            E::BlobFetchProgress { hash, have, .. } => {
                if let Some(b) = self.bars.get(hash) {
                    b.set_position(*have);
                }
            }
            E::BlobFetchDone {
                hash,
                size,
                received,
            } => {
                if let Some(b) = self.bars.remove(hash) {
                    b.finish_and_clear();
                }
                println!(
                    "blob       {} fetched and verified: {size} bytes ({received} moved now)",
                    short(hash)
                );
            }
            E::BlobFetchFailed { hash, reason } => {
                if let Some(b) = self.bars.remove(hash) {
                    b.abandon();
                }
                println!("blob       {} fetch failed: {reason}", short(hash));
            }
            _ => {}
        }
    }
}
