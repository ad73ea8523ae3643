//! [`Blobs`]: the persistent blob store of one node, over iroh-blobs' file store.
//!
//! Layout: iroh-blobs owns the directory (`blobs.db`, a redb file, plus `data/` with one
//! data file and one bao outboard per blob larger than 16 KiB; smaller ones are inlined in
//! the database). Partial blobs keep a bitfield of verified chunks, which is what makes
//! fetches resume: [`Blobs::fetch`] asks only for the chunk ranges not yet verified here,
//! including after a restart.
//!
//! Every blob this store holds for XaeroFlux carries a named tag `xf/blob/<hex>`, set
//! before its first byte arrives, so iroh-blobs' own collector never deletes a blob (or
//! a partial one) we still want. [`Blobs::gc`] removes the tags of blobs that nothing
//! references after the grace period; iroh-blobs' collector then deletes their files on
//! its next sweep ([`BlobsOptions::sweep_interval`]).

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use iroh::{Endpoint, EndpointAddr};
use iroh_blobs::api::Store;
use iroh_blobs::api::blobs::{AddPathOptions, ImportMode};
use iroh_blobs::api::proto::BlobStatus;
use iroh_blobs::api::remote::GetProgressItem;
use iroh_blobs::store::GcConfig;
use iroh_blobs::store::fs::FsStore;
use iroh_blobs::store::fs::options::Options;
use iroh_blobs::{BlobFormat, BlobsProtocol, Hash, HashAndFormat};
use n0_future::StreamExt;
use tokio::io::AsyncRead;
use tracing::debug;

use crate::access::Authorizer;
use crate::blob_ref::{BlobHash, BlobRef};
use crate::error::{FetchError, OpenError, StoreError};
use crate::gc::GcState;

/// Prefix of the tags that keep our blobs alive.
const TAG_PREFIX: &str = "xf/blob/";
/// Bytes per read when importing from a reader.
const READ_CHUNK: usize = 1024 * 1024;
/// A fetch commits the store's metadata at its first bytes and then every this many.
const SYNC_EVERY: u64 = 16 * 1024 * 1024;

/// Options of [`Blobs::open`].
#[derive(Debug, Clone)]
pub struct BlobsOptions {
    /// How often iroh-blobs' collector sweeps blobs without a tag. Default 60 s.
    pub sweep_interval: Duration,
    /// How long a blob stays after it is first seen unreferenced. Default 24 h.
    pub grace: Duration,
}

impl Default for BlobsOptions {
    fn default() -> Self {
        Self {
            sweep_interval: Duration::from_secs(60),
            grace: Duration::from_secs(24 * 60 * 60),
        }
    }
}

/// What the store holds of one blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlobInfo {
    /// The blob.
    pub hash: BlobHash,
    /// Verified bytes held here.
    pub local_bytes: u64,
    /// Size, if known (always for complete blobs).
    pub size: Option<u64>,
    /// Whether every byte is here and verified.
    pub complete: bool,
}

/// Progress of one fetch, reported to the caller's callback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FetchProgress {
    /// The blob.
    pub blob: BlobRef,
    /// Verified bytes that were already here when the fetch started.
    pub resumed_from: u64,
    /// Payload bytes received and verified in this fetch so far.
    pub received: u64,
}

/// Result of a fetch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FetchStats {
    /// Verified bytes already here when the fetch started (resume point).
    pub resumed_from: u64,
    /// Payload bytes received in this fetch.
    pub payload_bytes: u64,
    /// Payload plus bao hash bytes received.
    pub verified_bytes: u64,
    /// UDP bytes received on the connection (the wire, including QUIC overhead).
    pub wire_bytes: u64,
    /// Wall time of the transfer.
    pub elapsed: Duration,
}

/// Result of a garbage-collection pass.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GcReport {
    /// Blobs whose tags were removed now (their files go on the next sweep).
    pub released: Vec<BlobHash>,
    /// Unreferenced blobs still within their grace period.
    pub pending: usize,
}

/// The blob store of one node.
#[derive(Debug)]
pub struct Blobs {
    store: FsStore,
    dir: PathBuf,
    options: BlobsOptions,
    gc: Mutex<GcState>,
}

fn tag_name(hash: &BlobHash) -> String {
    format!("{TAG_PREFIX}{hash}")
}

fn to_iroh(hash: &BlobHash) -> Hash {
    Hash::from_bytes(hash.0)
}

fn from_iroh(hash: &Hash) -> BlobHash {
    BlobHash(*hash.as_bytes())
}

impl Blobs {
    /// Opens (or creates) the store in `dir`.
    pub async fn open(dir: impl AsRef<Path>, options: BlobsOptions) -> Result<Self, OpenError> {
        let dir = dir.as_ref().to_path_buf();
        std::fs::create_dir_all(&dir).map_err(|source| OpenError::CreateDir {
            path: dir.clone(),
            source,
        })?;
        let mut opts = Options::new(&dir);
        opts.gc = Some(GcConfig {
            interval: options.sweep_interval,
            add_protected: None,
        });
        let store = FsStore::load_with_opts(dir.join("blobs.db"), opts)
            .await
            .map_err(|source| OpenError::Load {
                path: dir.clone(),
                source,
            })?;
        Ok(Self {
            store,
            dir,
            options,
            gc: Mutex::new(GcState::new()),
        })
    }

    /// The directory of the store.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The underlying iroh-blobs store (for tools and benchmarks).
    pub fn iroh_store(&self) -> &Store {
        &self.store
    }

    /// Adds a file, streaming it (never the whole file in memory), and keeps it.
    pub async fn add_blob_path(&self, path: impl AsRef<Path>) -> Result<BlobRef, StoreError> {
        let path = std::path::absolute(path.as_ref()).map_err(iroh_blobs::api::Error::Io)?;
        let tt = self
            .store
            .blobs()
            .add_path_with_opts(AddPathOptions {
                path,
                format: BlobFormat::Raw,
                mode: ImportMode::Copy,
            })
            .temp_tag()
            .await?;
        self.keep_complete(tt.hash()).await
    }

    /// Adds everything `reader` yields, streaming it in 1 MiB pieces, and keeps it.
    /// A read error fails the import.
    pub async fn add_blob_reader<R>(&self, reader: R) -> Result<BlobRef, StoreError>
    where
        R: AsyncRead + Send + Unpin + 'static,
    {
        let reader = SyncReader(std::sync::Mutex::new(reader));
        let stream = tokio_util::io::ReaderStream::with_capacity(reader, READ_CHUNK);
        let tt = self
            .store
            .blobs()
            .add_stream(stream)
            .await
            .temp_tag()
            .await?;
        self.keep_complete(tt.hash()).await
    }

    /// Tags a just-imported blob (still protected by its temp tag) and returns its ref.
    async fn keep_complete(&self, hash: Hash) -> Result<BlobRef, StoreError> {
        let blob = from_iroh(&hash);
        self.keep(&blob).await?;
        match self.store.blobs().status(hash).await? {
            BlobStatus::Complete { size } => Ok(BlobRef { hash: blob, size }),
            _ => Err(StoreError::NotComplete { hash: blob }),
        }
    }

    /// Protects `hash` (complete, partial or not yet present) from iroh-blobs' collector.
    async fn keep(&self, hash: &BlobHash) -> Result<(), StoreError> {
        self.store
            .tags()
            .set(tag_name(hash), HashAndFormat::raw(to_iroh(hash)))
            .await?;
        Ok(())
    }

    /// Writes a complete blob to `target`; returns its size.
    pub async fn export(
        &self,
        hash: &BlobHash,
        target: impl AsRef<Path>,
    ) -> Result<u64, StoreError> {
        let size = match self.store.blobs().status(to_iroh(hash)).await? {
            BlobStatus::Complete { size } => size,
            _ => return Err(StoreError::NotComplete { hash: *hash }),
        };
        let target = std::path::absolute(target.as_ref()).map_err(iroh_blobs::api::Error::Io)?;
        self.store
            .blobs()
            .export(to_iroh(hash), target)
            .finish()
            .await?;
        Ok(size)
    }

    /// What the store holds of `hash`.
    pub async fn info(&self, hash: &BlobHash) -> Result<BlobInfo, StoreError> {
        let local = self
            .store
            .remote()
            .local(HashAndFormat::raw(to_iroh(hash)))
            .await
            .map_err(|e| iroh_blobs::api::Error::Io(std::io::Error::other(e)))?;
        let (size, complete) = match self.store.blobs().status(to_iroh(hash)).await? {
            BlobStatus::Complete { size } => (Some(size), true),
            BlobStatus::Partial { size } => (size, false),
            BlobStatus::NotFound => (None, false),
        };
        Ok(BlobInfo {
            hash: *hash,
            local_bytes: local.local_bytes(),
            size,
            complete,
        })
    }

    /// Every blob kept by this store (complete or partial), sorted by hash.
    pub async fn list(&self) -> Result<Vec<BlobInfo>, StoreError> {
        let mut out = Vec::new();
        for hash in self.kept().await? {
            out.push(self.info(&hash).await?);
        }
        Ok(out)
    }

    /// Hashes of the blobs this store keeps (by tag), sorted.
    async fn kept(&self) -> Result<Vec<BlobHash>, StoreError> {
        let mut tags = self.store.tags().list_prefix(TAG_PREFIX).await?;
        let mut out = Vec::new();
        while let Some(tag) = tags.next().await {
            out.push(from_iroh(&tag?.hash));
        }
        out.sort();
        out.dedup();
        Ok(out)
    }

    /// The protocol handler that serves our blobs to peers, asking `auth` on every
    /// connection and request. Register it on the node's router under
    /// [`iroh_blobs::ALPN`]. Must be called inside a tokio runtime.
    pub fn protocol(&self, auth: Arc<dyn Authorizer>) -> BlobsProtocol {
        BlobsProtocol::new(&self.store, Some(crate::serve::authorizing_events(auth)))
    }

    /// Fetches `blob` from the peer at `from` over `endpoint`, resuming from whatever
    /// verified chunks are already here, calling `progress` as bytes arrive.
    ///
    /// Every chunk is verified against the hash before it is stored (bao); data that
    /// fails is refused with [`FetchError::Corrupt`]. The transfer is aborted with
    /// [`FetchError::LargerThanClaimed`] as soon as the peer sends more than
    /// `blob.size` bytes.
    pub async fn fetch(
        &self,
        endpoint: &Endpoint,
        from: impl Into<EndpointAddr>,
        blob: BlobRef,
        mut progress: impl FnMut(&FetchProgress),
    ) -> Result<FetchStats, FetchError> {
        let hash = blob.hash;
        self.keep(&hash).await?;
        let before = self.info(&hash).await?;
        if before.complete {
            return check_size(blob, before.size.unwrap_or(0)).map(|()| FetchStats {
                resumed_from: before.local_bytes,
                payload_bytes: 0,
                verified_bytes: 0,
                wire_bytes: 0,
                elapsed: Duration::ZERO,
            });
        }
        let conn = endpoint
            .connect(from, iroh_blobs::ALPN)
            .await
            .map_err(|source| FetchError::Connect { source })?;
        let start = Instant::now();
        let mut stream = self
            .store
            .remote()
            .fetch(conn.clone(), HashAndFormat::raw(to_iroh(&hash)))
            .stream();
        let mut report = FetchProgress {
            blob,
            resumed_from: before.local_bytes,
            received: 0,
        };
        // Commit the store's metadata once the partial entry exists and then every
        // SYNC_EVERY bytes: iroh-blobs batches it for up to 500 ms, and a process killed
        // before that commit loses the whole partial blob (its data files are only
        // found through the entry; the bitfield is rebuilt from them on open).
        let mut next_sync = 1;
        let result = loop {
            match stream.next().await {
                Some(GetProgressItem::Progress(received)) => {
                    if received >= next_sync {
                        next_sync = received.saturating_add(SYNC_EVERY);
                        self.store.sync_db().await.map_err(StoreError::from)?;
                    }
                    if received.saturating_add(before.local_bytes) > blob.size {
                        break Err(FetchError::LargerThanClaimed {
                            hash,
                            claimed: blob.size,
                        });
                    }
                    report.received = received;
                    progress(&report);
                }
                Some(GetProgressItem::Done(stats)) => break Ok(stats),
                Some(GetProgressItem::Error(e)) => {
                    // A refused connection surfaces as a failed stream open whose cause
                    // iroh-blobs only keeps as text; the connection's close reason keeps
                    // the provider's code.
                    break Err(if closed_for_permission(&conn) {
                        FetchError::Refused { hash }
                    } else {
                        classify(hash, e)
                    });
                }
                None => {
                    break Err(FetchError::Transfer {
                        hash,
                        source: n0_error::e!(
                            iroh_blobs::get::GetError::LocalFailure,
                            n0_error::anyerr!("fetch ended without a result")
                        ),
                    });
                }
            }
        };
        // Dropping the stream stops the transfer if it is still running.
        drop(stream);
        let wire_bytes = conn.stats().udp_rx.bytes;
        conn.close(0u32.into(), b"done");
        let stats = result?;
        let after = self.info(&hash).await?;
        if !after.complete {
            return Err(FetchError::Store {
                source: StoreError::NotComplete { hash },
            });
        }
        check_size(blob, after.size.unwrap_or(0))?;
        debug!(blob = %hash.fmt_short(), bytes = stats.payload_bytes_read, "blob fetched");
        Ok(FetchStats {
            resumed_from: before.local_bytes,
            payload_bytes: stats.payload_bytes_read,
            verified_bytes: stats.total_bytes_read(),
            wire_bytes,
            elapsed: start.elapsed(),
        })
    }

    /// One garbage-collection pass at time `now`: blobs kept here that are not in
    /// `referenced` for at least the grace period are released (see the module docs).
    pub async fn gc(
        &self,
        now: Duration,
        referenced: &HashSet<BlobHash>,
    ) -> Result<GcReport, StoreError> {
        let kept = self.kept().await?;
        let (released, pending) = {
            let mut gc = self.gc.lock().unwrap_or_else(|e| e.into_inner());
            let released = gc.pass(now, self.options.grace, kept, referenced);
            (released, gc.pending())
        };
        for hash in &released {
            self.store.tags().delete(tag_name(hash)).await?;
        }
        Ok(GcReport { released, pending })
    }

    /// Flushes and stops the store. Partial blobs keep their verified chunks.
    pub async fn shutdown(self) -> Result<(), StoreError> {
        self.store.shutdown().await?;
        Ok(())
    }
}

/// Makes a `Send` reader `Sync` (iroh-blobs' import wants both, an HTTP body is only
/// `Send`): the reader is only ever used through `&mut`, so the mutex is never locked.
struct SyncReader<R>(std::sync::Mutex<R>);

impl<R: AsyncRead + Unpin> AsyncRead for SyncReader<R> {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let inner = self
            .get_mut()
            .0
            .get_mut()
            .unwrap_or_else(|p| p.into_inner());
        std::pin::Pin::new(inner).poll_read(cx, buf)
    }
}

fn check_size(blob: BlobRef, actual: u64) -> Result<(), FetchError> {
    if actual == blob.size {
        Ok(())
    } else {
        Err(FetchError::SizeMismatch {
            hash: blob.hash,
            claimed: blob.size,
            actual,
        })
    }
}

fn classify(hash: BlobHash, e: iroh_blobs::get::GetError) -> FetchError {
    use iroh_blobs::get::GetError;
    if e.iroh_error_code() == Some(iroh_blobs::protocol::ERR_PERMISSION) {
        return FetchError::Refused { hash };
    }
    match e {
        GetError::Decode { .. } => FetchError::Corrupt { hash, source: e },
        _ => FetchError::Transfer { hash, source: e },
    }
}

/// Whether the provider closed the connection with iroh-blobs' permission code (it does
/// so when it refuses the connection itself).
fn closed_for_permission(conn: &iroh::endpoint::Connection) -> bool {
    matches!(
        conn.close_reason(),
        Some(iroh::endpoint::ConnectionError::ApplicationClosed(ac))
            if ac.error_code == iroh_blobs::protocol::ERR_PERMISSION
    )
}
