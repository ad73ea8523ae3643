//! The document view on disk, maintained from a store's committed stream.
//!
//! [`Docs::open`] starts one thread that follows the committed stream (a
//! [`Subscription`](xaeroflux::Subscription) by local position, filtered to
//! [`DOC_UPDATE_TYPE`]), like the record views: local edits and updates synced from
//! peers arrive the same way, only after the store committed them. The thread imports
//! each update into the document (kept in a small cache of loaded documents), stores
//! the update, and every [`DocsConfig::snapshot_every`] updates of a document replaces
//! them by a loro snapshot of the merged document. Each batch is written in one LMDB
//! write transaction of the view's own environment (`dir`, e.g. `DATA_DIR/docs`)
//! together with the stream position and the last applied event, so:
//!
//! - the view never holds an update the store does not hold, and after a crash it
//!   holds exactly the batches whose transaction committed and resumes after them;
//! - loading a document reads one snapshot and fewer than `snapshot_every` updates
//!   (plus any update still waiting for updates it depends on), never its whole
//!   history;
//! - on open, a recorded position past the store's end, or a last applied event the
//!   store does not hold there, clears the view and rebuilds it from the store.
//!
//! Tables (all keys start with the 32-byte group id, then the document name and a NUL
//! byte): `docs` -> counters; `snapshots` -> loro snapshot; `updates` (+ local
//! sequence, big-endian) -> loro update not yet folded into the snapshot; `meta` ->
//! format version, position, last applied event. Formats: `docs/FORMAT.md`.

mod document;
mod tables;
mod view;
mod watch;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use heed::{Env, WithoutTls};
use loro::LoroDoc;
use xaeroflux::{Filter, GroupId, Start, XaeroFlux};

use crate::update::{DOC_UPDATE_TYPE, UpdateError, validate_name};

pub use document::Document;
pub use watch::{CHANGE_QUEUE, DocChange, DocStream};

use tables::Tables;

/// Format version of the document view's LMDB environment.
pub const DOCS_FORMAT_VERSION: u32 = 1;

/// Options of [`Docs::open`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct DocsConfig {
    /// Directory of the view's LMDB environment (e.g. `DATA_DIR/docs`).
    pub dir: PathBuf,
    /// Updates of one document after which the view stores a fresh snapshot and drops
    /// the updates it covers. Default 128.
    pub snapshot_every: u32,
    /// LMDB map size (address space, not disk). Default 64 GiB.
    pub map_size: usize,
    /// Most events applied in one write transaction. Default 1024.
    pub batch: usize,
    /// How long the view thread gathers events into one transaction after the first.
    /// Default 10 ms.
    pub max_delay: Duration,
}

impl DocsConfig {
    /// Defaults (see the fields) for a view in `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        DocsConfig {
            dir: dir.into(),
            snapshot_every: 128,
            map_size: 64 << 30,
            batch: 1024,
            max_delay: Duration::from_millis(10),
        }
    }
}

/// Failures of the documents.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DocError {
    /// The store refused a write or a read (e.g. an update larger than an event).
    #[error("store")]
    Store(#[from] xaeroflux::Error),
    /// The view's LMDB environment failed.
    #[error("docs lmdb")]
    Lmdb(#[from] heed::Error),
    /// A bad document name, or an update that does not encode.
    #[error("document update")]
    Update(#[from] UpdateError),
    /// loro could not export the document's changes.
    #[error("loro export of {doc}")]
    Export {
        /// The document.
        doc: String,
        /// What loro said.
        #[source]
        source: loro::LoroEncodeError,
    },
    /// A stored snapshot or update does not load.
    #[error("docs table {table} is corrupt: {reason}")]
    Corrupt {
        /// The table.
        table: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// The view was written by a newer build.
    #[error("docs format version {found} is not supported (this build reads {supported})")]
    UnsupportedFormat {
        /// Version on disk.
        found: u32,
        /// Version of this build.
        supported: u32,
    },
    /// File system failure.
    #[error("i/o on {path}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The failure.
        #[source]
        source: std::io::Error,
    },
    /// The view thread could not be started.
    #[error("docs thread")]
    Thread(#[source] std::io::Error),
    /// The view thread stopped (closed, or failed: the reason).
    #[error("docs view stopped: {reason}")]
    Stopped {
        /// Why.
        reason: String,
    },
    /// A subscriber fell more than [`CHANGE_QUEUE`] changes behind and was dropped.
    #[error("document subscription lagged behind and was dropped")]
    Lagged,
}

/// Result alias of the documents.
pub type Result<T, E = DocError> = std::result::Result<T, E>;

/// How the view came to be at open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DocsLoad {
    /// New, built from the store.
    Created,
    /// Loaded; caught up from the recorded position.
    Loaded,
    /// The recorded state did not match the store: cleared and rebuilt.
    Rebuilt,
}

/// Counters of the view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocsStats {
    /// Every committed event below this position was looked at.
    pub position: u64,
    /// The store's committed position.
    pub committed: u64,
    /// Updates imported since open.
    pub applied: u64,
    /// Document events since open that were not imported (malformed, or refused by
    /// loro).
    pub skipped: u64,
    /// Snapshots written since open.
    pub snapshots: u64,
    /// How the view came to be at open.
    pub load: DocsLoad,
    /// The last failure of the view thread, if any (it stops on failure).
    pub last_error: Option<String>,
}

/// What the view holds for one document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DocInfo {
    /// Updates imported into the document, in total.
    pub updates: u64,
    /// Stored updates a load imports after the snapshot.
    pub pending: u64,
    /// Size of the stored snapshot in bytes (0: none yet).
    pub snapshot_bytes: u64,
}

pub(crate) struct Progress {
    pub position: u64,
    pub applied: u64,
    pub skipped: u64,
    pub snapshots: u64,
    pub error: Option<String>,
    pub stopped: bool,
}

pub(crate) struct Inner {
    pub store: Arc<XaeroFlux>,
    pub env: Env<WithoutTls>,
    pub t: Tables,
    pub snapshot_every: u32,
    pub batch: usize,
    pub max_delay: Duration,
    pub load: DocsLoad,
    pub stop: AtomicBool,
    pub progress: Mutex<Progress>,
    pub moved: Condvar,
    pub subs: Mutex<Vec<watch::Slot>>,
}

/// Collaborative documents of a store (see the module docs): edit with
/// [`Docs::edit`], read with [`Docs::read`] / [`Docs::text`], follow with
/// [`Docs::subscribe`].
pub struct Docs {
    inner: Arc<Inner>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for Docs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Docs")
            .field("load", &self.inner.load)
            .finish_non_exhaustive()
    }
}

impl Docs {
    /// Opens (or creates) the document view of `store` in `config.dir` and starts the
    /// thread that maintains it; it catches up from the position it covers.
    pub fn open(store: Arc<XaeroFlux>, config: DocsConfig) -> Result<Docs> {
        let (env, t) = tables::open_env(&config.dir, config.map_size)?;
        let (position, load) = tables::check_against_store(&env, &t, &store)?;
        let sub = store.subscribe(
            Filter::all()
                .event_type(DOC_UPDATE_TYPE)
                .start(Start::Position(position)),
        );
        let inner = Arc::new(Inner {
            store,
            env,
            t,
            snapshot_every: config.snapshot_every.max(1),
            batch: config.batch.max(1),
            max_delay: config.max_delay,
            load,
            stop: AtomicBool::new(false),
            progress: Mutex::new(Progress {
                position,
                applied: 0,
                skipped: 0,
                snapshots: 0,
                error: None,
                stopped: false,
            }),
            moved: Condvar::new(),
            subs: Mutex::new(Vec::new()),
        });
        let thread_inner = inner.clone();
        let thread = std::thread::Builder::new()
            .name("xaeroflux-docs".into())
            .spawn(move || view::run(&thread_inner, sub))
            .map_err(DocError::Thread)?;
        Ok(Docs {
            inner,
            thread: Mutex::new(Some(thread)),
        })
    }

    /// The directory a store's documents use by convention: `DATA_DIR/docs`.
    pub fn default_dir(data_dir: &Path) -> PathBuf {
        data_dir.join("docs")
    }

    /// The store the view follows.
    pub fn store(&self) -> &Arc<XaeroFlux> {
        &self.inner.store
    }

    /// Opens document `name` of `group` for editing, loaded with what the view holds
    /// now (a new, empty document if it was never written). Edit it through loro's
    /// containers ([`Document::text`], [`Document::list`], [`Document::map`]) and write
    /// the edits with [`Document::commit`].
    pub fn edit(&self, group: &GroupId, name: &str) -> Result<Document> {
        validate_name(name)?;
        let doc = self.read(group, name)?.unwrap_or_default();
        Ok(Document::new(
            self.inner.clone(),
            *group,
            name.to_owned(),
            doc,
        ))
    }

    /// The merged document `name` of `group` as the view holds it (`None` if no update
    /// of it was applied). A detached copy: edits to it are not written anywhere.
    pub fn read(&self, group: &GroupId, name: &str) -> Result<Option<LoroDoc>> {
        validate_name(name)?;
        let rtxn = self.inner.env.read_txn()?;
        tables::load_doc(&self.inner.t, &rtxn, &tables::doc_key(group, name))
    }

    /// The text of container `text` in document `name` (`None` if the document was
    /// never written; an unused container reads as "").
    pub fn text(&self, group: &GroupId, name: &str, text: &str) -> Result<Option<String>> {
        Ok(self
            .read(group, name)?
            .map(|d| d.get_text(text).to_string()))
    }

    /// The names of the documents of `group`, in byte order.
    pub fn names(&self, group: &GroupId) -> Result<Vec<String>> {
        let rtxn = self.inner.env.read_txn()?;
        tables::names(&self.inner.t, &rtxn, group)
    }

    /// What the view holds for document `name` (`None` if never written).
    pub fn info(&self, group: &GroupId, name: &str) -> Result<Option<DocInfo>> {
        validate_name(name)?;
        let rtxn = self.inner.env.read_txn()?;
        tables::info(&self.inner.t, &rtxn, &tables::doc_key(group, name))
    }

    /// Follows the updates applied to document `name` of `group` from now on (`None`:
    /// every document of the group). Read the document after subscribing: every
    /// update not in that read arrives on the stream.
    pub fn subscribe(&self, group: &GroupId, name: Option<&str>) -> Result<DocStream> {
        if let Some(n) = name {
            validate_name(n)?;
        }
        Ok(watch::subscribe(
            &self.inner,
            *group,
            name.map(str::to_owned),
        ))
    }

    /// Flushes the store, then waits until the view applied everything committed.
    pub fn flush(&self) -> Result<()> {
        self.inner.store.flush()?;
        let target = self.inner.store.read()?.event_count()?;
        self.wait_for(target)
    }

    /// Waits until the view looked at every committed event below `position`.
    pub fn wait_for(&self, position: u64) -> Result<()> {
        let mut p = self
            .inner
            .progress
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        loop {
            if p.position >= position {
                return Ok(());
            }
            if p.stopped {
                return Err(DocError::Stopped {
                    reason: p.error.clone().unwrap_or_else(|| "closed".into()),
                });
            }
            p = self
                .inner
                .moved
                .wait_timeout(p, Duration::from_millis(100))
                .map(|(g, _)| g)
                .unwrap_or_else(|e| e.into_inner().0);
        }
    }

    /// Counters of the view.
    pub fn stats(&self) -> Result<DocsStats> {
        let committed = self.inner.store.read()?.event_count()?;
        let p = self
            .inner
            .progress
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        Ok(DocsStats {
            position: p.position,
            committed,
            applied: p.applied,
            skipped: p.skipped,
            snapshots: p.snapshots,
            load: self.inner.load,
            last_error: p.error.clone(),
        })
    }

    /// Stops the view thread (also done on drop). What it applied is on disk.
    pub fn close(self) {
        self.stop();
    }

    fn stop(&self) {
        self.inner.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = t.join();
        }
    }
}

impl Drop for Docs {
    fn drop(&mut self) {
        self.stop();
    }
}
