//! Materialized views on disk, maintained from a store's committed stream.
//!
//! [`Views::open`] starts one thread that follows the committed stream (a
//! [`Subscription`](xaeroflux::Subscription) by local position, filtered to
//! [`RECORD_OP_TYPE`]) exactly like the vector indexer: local writes and events synced
//! from peers arrive the same way, only after the store committed them. Each batch of
//! operations is applied with the rules of [`RecordState`] / [`EdgeState`] in one LMDB
//! write transaction of the views' own environment (`dir`, e.g. `DATA_DIR/views`),
//! which also records the stream position and the id of the last applied event. So:
//!
//! - the views never show an event the store does not hold (they only read committed
//!   events), and after a crash they hold exactly the batches whose transaction
//!   committed, and resume from the recorded position;
//! - on open, a recorded position past the store's end, or a last applied event the
//!   store does not hold at that position (the store was replaced or lost its tail),
//!   clears the views and rebuilds them from the store.
//!
//! Tables (keys in `keys` order, all prefixed by the 32-byte group id):
//! `records` record key -> [`RecordState`]; `edges` relation key -> [`EdgeState`];
//! `edges_in` reverse relation key -> empty; `history` record key | stamp -> operation
//! (every operation on the record, and every link/unlink from it, for queries as of a
//! past HLC); `meta` -> format version, position, last applied event.

mod changes;
mod maintain;
mod past;
mod query;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use heed::types::Bytes;
use heed::{CommitOrAbort, Database, Env, EnvOpenOptions, WithoutTls};
use xaeroflux::{EventId, Filter, GroupId, Start, XaeroFlux};

use crate::op::{Fields, Op, OpError, RECORD_OP_TYPE, RecordRef};
use crate::value::{Value, ValueError};

pub use changes::{CHANGE_QUEUE, ChangeFilter, ChangeStream};

/// Format version of the views' LMDB environment.
pub const VIEWS_FORMAT_VERSION: u32 = 1;

type Db = Database<'static, Bytes, Bytes>;

/// The views' tables.
#[derive(Clone, Copy)]
pub(crate) struct Tables {
    pub meta: Db,
    pub records: Db,
    pub edges: Db,
    pub edges_in: Db,
    pub history: Db,
}

const TABLE_NAMES: [&str; 5] = ["meta", "records", "edges", "edges_in", "history"];

pub(crate) mod meta_keys {
    pub const VERSION: &[u8] = b"version";
    /// `u64 BE`: every committed event below it was looked at.
    pub const POSITION: &[u8] = b"position";
    /// `local_seq u64 BE | event id [32]` of the last applied operation.
    pub const LAST: &[u8] = b"last";
}

/// Options of [`Views::open`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ViewsConfig {
    /// Directory of the views' LMDB environment (e.g. `DATA_DIR/views`).
    pub dir: PathBuf,
    /// Keep every operation per record for [`Views::get_as_of`] and
    /// [`Views::scan_as_of`]. Default on; off saves about half the view's writes.
    pub history: bool,
    /// LMDB map size (address space, not disk). Default 64 GiB.
    pub map_size: usize,
    /// Most events applied in one write transaction. Default 4096.
    pub batch: usize,
    /// How long the view thread gathers events into one transaction after the first
    /// (the most a read may lag behind a commit, besides the apply itself). Default
    /// 10 ms.
    pub max_delay: Duration,
}

impl ViewsConfig {
    /// Defaults (see the fields) for views in `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        ViewsConfig {
            dir: dir.into(),
            history: true,
            map_size: 64 << 30,
            batch: 4096,
            max_delay: Duration::from_millis(10),
        }
    }
}

/// Failures of the views.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ViewError {
    /// The store refused a write or a read.
    #[error("store")]
    Store(#[from] xaeroflux::Error),
    /// The views' LMDB environment failed.
    #[error("views lmdb")]
    Lmdb(#[from] heed::Error),
    /// An operation could not be encoded (bad name, too large).
    #[error("operation")]
    Op(#[from] OpError),
    /// A stored entry does not decode.
    #[error("views table {table} is corrupt: {reason}")]
    Corrupt {
        /// The table.
        table: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// The views were written by a newer build.
    #[error("views format version {found} is not supported (this build reads {supported})")]
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
    #[error("view thread")]
    Thread(#[source] std::io::Error),
    /// The view thread stopped (closed, or failed: the reason).
    #[error("views stopped: {reason}")]
    Stopped {
        /// Why.
        reason: String,
    },
    /// A query of the past on views opened without [`ViewsConfig::history`].
    #[error("the views keep no history (ViewsConfig::history is off)")]
    HistoryOff,
    /// A change subscriber fell more than [`CHANGE_QUEUE`] changes behind and was
    /// dropped; subscribe again (the replay brings it up to date).
    #[error("change subscription lagged behind and was dropped")]
    Lagged,
}

impl From<ValueError> for ViewError {
    fn from(e: ValueError) -> Self {
        ViewError::Op(OpError::Value(e))
    }
}

/// Result alias of the views.
pub type Result<T, E = ViewError> = std::result::Result<T, E>;

/// How the views came to be at open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ViewLoad {
    /// New, built from the store.
    Created,
    /// Loaded; caught up from the recorded position.
    Loaded,
    /// The recorded state did not match the store (position past its end, or another
    /// event at the last applied position): cleared and rebuilt.
    Rebuilt,
}

/// Counters of the views.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ViewStats {
    /// Every committed event below this position was looked at.
    pub position: u64,
    /// The store's committed position.
    pub committed: u64,
    /// Operations applied since open.
    pub applied: u64,
    /// Events of the record type since open that did not decode (skipped).
    pub skipped: u64,
    /// How the views came to be at open.
    pub load: ViewLoad,
    /// The last failure of the view thread, if any (it stops on failure).
    pub last_error: Option<String>,
}

/// Progress shared by the view thread and the API.
pub(crate) struct Progress {
    pub position: u64,
    pub applied: u64,
    pub skipped: u64,
    pub error: Option<String>,
    pub stopped: bool,
}

pub(crate) struct Inner {
    pub store: Arc<XaeroFlux>,
    pub env: Env<WithoutTls>,
    pub t: Tables,
    pub history: bool,
    pub batch: usize,
    pub max_delay: Duration,
    pub load: ViewLoad,
    pub stop: AtomicBool,
    pub progress: Mutex<Progress>,
    pub moved: Condvar,
    pub subs: Mutex<Vec<changes::Slot>>,
}

/// Materialized views of a store's records and relations (see the module docs).
///
/// Writes (`put`, `patch`, `delete`, `link`, `unlink`) are events of the store and
/// return like [`xaeroflux::Engine::write_event`]; reads see them once the view thread applied
/// them ([`Views::flush`] waits for that).
pub struct Views {
    inner: Arc<Inner>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for Views {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Views")
            .field("load", &self.inner.load)
            .finish_non_exhaustive()
    }
}

impl From<(&str, &str)> for RecordRef {
    fn from((c, k): (&str, &str)) -> Self {
        RecordRef::new(c, k)
    }
}
impl From<&RecordRef> for RecordRef {
    fn from(r: &RecordRef) -> Self {
        r.clone()
    }
}

fn open_env(cfg: &ViewsConfig) -> Result<(Env<WithoutTls>, Tables)> {
    let dir = &cfg.dir;
    std::fs::create_dir_all(dir).map_err(|source| ViewError::Io {
        path: dir.clone(),
        source,
    })?;
    let mut opts = EnvOpenOptions::new().read_txn_without_tls();
    opts.map_size(cfg.map_size)
        .max_dbs(TABLE_NAMES.len() as u32)
        .max_readers(256);
    // The views are derived from the log: a system crash may lose their last
    // transactions (they are applied again from the recorded position), but with
    // NO_META_SYNC never corrupt the file. Each commit then costs one fsync, not two.
    // SAFETY: the flag only weakens durability, as described.
    unsafe {
        opts.flags(heed::EnvFlags::NO_META_SYNC);
    }
    // SAFETY: the views own their directory; heed refuses to open one path twice in a
    // process, and `Views::open` is the only opener.
    let env = unsafe { opts.open(dir) }?;
    let wtxn = env.write_txn()?;
    let (meta, records, edges, edges_in, history) =
        match env.create_databases_and_commit(wtxn, |opener, wtxn| {
            let mut open = |name| opener.create_database::<Bytes, Bytes>(wtxn, Some(name));
            let dbs = (
                open(TABLE_NAMES[0])?,
                open(TABLE_NAMES[1])?,
                open(TABLE_NAMES[2])?,
                open(TABLE_NAMES[3])?,
                open(TABLE_NAMES[4])?,
            );
            Ok::<_, heed::Error>(CommitOrAbort::<_, ()>::Commit(dbs))
        })? {
            CommitOrAbort::Commit(d) => d,
            CommitOrAbort::Abort(()) => {
                return Err(ViewError::Stopped {
                    reason: "table creation aborted".into(),
                });
            }
        };
    Ok((
        env,
        Tables {
            meta,
            records,
            edges,
            edges_in,
            history,
        },
    ))
}

fn be_u64(table: &'static str, b: &[u8]) -> Result<u64> {
    let a: [u8; 8] =
        b.get(..8)
            .and_then(|s| s.try_into().ok())
            .ok_or_else(|| ViewError::Corrupt {
                table,
                reason: "short integer".into(),
            })?;
    Ok(u64::from_be_bytes(a))
}

/// Checks the version and the recorded position against the store; clears the views
/// if they do not match it. Returns the position to resume from.
fn check_against_store(
    env: &Env<WithoutTls>,
    t: &Tables,
    store: &XaeroFlux,
) -> Result<(u64, ViewLoad)> {
    let mut wtxn = env.write_txn()?;
    let version = t.meta.get(&wtxn, meta_keys::VERSION)?.map(<[u8]>::to_vec);
    let created = match version {
        None => {
            t.meta.put(
                &mut wtxn,
                meta_keys::VERSION,
                &VIEWS_FORMAT_VERSION.to_be_bytes(),
            )?;
            true
        }
        Some(v) => {
            let found =
                u32::from_be_bytes(v.as_slice().try_into().map_err(|_| ViewError::Corrupt {
                    table: "meta",
                    reason: "bad version".into(),
                })?);
            if found != VIEWS_FORMAT_VERSION {
                return Err(ViewError::UnsupportedFormat {
                    found,
                    supported: VIEWS_FORMAT_VERSION,
                });
            }
            false
        }
    };
    let position = match t.meta.get(&wtxn, meta_keys::POSITION)? {
        Some(b) => be_u64("meta", b)?,
        None => 0,
    };
    let last = t.meta.get(&wtxn, meta_keys::LAST)?.map(<[u8]>::to_vec);
    let snap = store.read()?;
    let mut matches = position <= snap.event_count()?;
    if let (true, Some(last)) = (matches, last) {
        let seq = be_u64("meta", &last)?;
        let id = last.get(8..40).ok_or_else(|| ViewError::Corrupt {
            table: "meta",
            reason: "short last event".into(),
        })?;
        matches = seq < position
            && snap
                .get_local(seq)?
                .is_some_and(|e| e.event.id().0.as_slice() == id);
    }
    drop(snap);
    let load = if created {
        ViewLoad::Created
    } else if matches {
        ViewLoad::Loaded
    } else {
        ViewLoad::Rebuilt
    };
    if load == ViewLoad::Rebuilt {
        tracing::warn!(position, "views do not match the store; rebuilding");
        for db in [t.records, t.edges, t.edges_in, t.history] {
            db.clear(&mut wtxn)?;
        }
        t.meta.delete(&mut wtxn, meta_keys::POSITION)?;
        t.meta.delete(&mut wtxn, meta_keys::LAST)?;
    }
    wtxn.commit()?;
    Ok((if matches { position } else { 0 }, load))
}

impl Views {
    /// Opens (or creates) the views of `store` in `config.dir` and starts the thread
    /// that maintains them; they catch up from the position they cover.
    pub fn open(store: Arc<XaeroFlux>, config: ViewsConfig) -> Result<Views> {
        let (env, t) = open_env(&config)?;
        let (position, load) = check_against_store(&env, &t, &store)?;
        let sub = store.subscribe(
            Filter::all()
                .event_type(RECORD_OP_TYPE)
                .start(Start::Position(position)),
        );
        let inner = Arc::new(Inner {
            store,
            env,
            t,
            history: config.history,
            batch: config.batch.max(1),
            max_delay: config.max_delay,
            load,
            stop: AtomicBool::new(false),
            progress: Mutex::new(Progress {
                position,
                applied: 0,
                skipped: 0,
                error: None,
                stopped: false,
            }),
            moved: Condvar::new(),
            subs: Mutex::new(Vec::new()),
        });
        let thread_inner = inner.clone();
        let thread = std::thread::Builder::new()
            .name("xaeroflux-views".into())
            .spawn(move || maintain::run(&thread_inner, sub))
            .map_err(ViewError::Thread)?;
        Ok(Views {
            inner,
            thread: Mutex::new(Some(thread)),
        })
    }

    /// The store the views follow.
    pub fn store(&self) -> &Arc<XaeroFlux> {
        &self.inner.store
    }

    /// Writes an operation to `group` (an event of type [`RECORD_OP_TYPE`]), sealed
    /// with the group's epoch key if the group is encrypted.
    pub fn write_op(&self, group: &GroupId, op: &Op) -> Result<EventId> {
        let payload = op.encode()?;
        Ok(self
            .inner
            .store
            .write_private_to(group, &payload, RECORD_OP_TYPE)?)
    }

    /// Replaces a record with `fields` (every other field is unset).
    pub fn put(
        &self,
        group: &GroupId,
        record: impl Into<RecordRef>,
        fields: Fields,
    ) -> Result<EventId> {
        self.write_op(
            group,
            &Op::Put {
                record: record.into(),
                fields,
            },
        )
    }

    /// Sets one field of a record, leaving the others.
    pub fn set(
        &self,
        group: &GroupId,
        record: impl Into<RecordRef>,
        field: &str,
        value: impl Into<Value>,
    ) -> Result<EventId> {
        self.patch(
            group,
            record,
            [(field.to_owned(), Some(value.into()))].into(),
        )
    }

    /// Sets (`Some`) or unsets (`None`) fields of a record, leaving the others.
    pub fn patch(
        &self,
        group: &GroupId,
        record: impl Into<RecordRef>,
        fields: std::collections::BTreeMap<String, Option<Value>>,
    ) -> Result<EventId> {
        self.write_op(
            group,
            &Op::Patch {
                record: record.into(),
                fields,
            },
        )
    }

    /// Deletes a record (and hides its relations made before the delete).
    pub fn delete(&self, group: &GroupId, record: impl Into<RecordRef>) -> Result<EventId> {
        self.write_op(
            group,
            &Op::Delete {
                record: record.into(),
            },
        )
    }

    /// Adds the relation `from -rel-> to`.
    pub fn link(
        &self,
        group: &GroupId,
        from: impl Into<RecordRef>,
        rel: &str,
        to: impl Into<RecordRef>,
    ) -> Result<EventId> {
        self.write_op(
            group,
            &Op::Link {
                from: from.into(),
                rel: rel.to_owned(),
                to: to.into(),
            },
        )
    }

    /// Removes the relation `from -rel-> to`.
    pub fn unlink(
        &self,
        group: &GroupId,
        from: impl Into<RecordRef>,
        rel: &str,
        to: impl Into<RecordRef>,
    ) -> Result<EventId> {
        self.write_op(
            group,
            &Op::Unlink {
                from: from.into(),
                rel: rel.to_owned(),
                to: to.into(),
            },
        )
    }

    /// Flushes the store, then waits until the views applied everything committed.
    pub fn flush(&self) -> Result<()> {
        self.inner.store.flush()?;
        let target = self.inner.store.read()?.event_count()?;
        self.wait_for(target)
    }

    /// Waits until the views looked at every committed event below `position`.
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
                return Err(ViewError::Stopped {
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

    /// Counters of the views.
    pub fn stats(&self) -> Result<ViewStats> {
        let committed = self.inner.store.read()?.event_count()?;
        let p = self
            .inner
            .progress
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        Ok(ViewStats {
            position: p.position,
            committed,
            applied: p.applied,
            skipped: p.skipped,
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

    /// The directory a store's views use by convention: `DATA_DIR/views`.
    pub fn default_dir(data_dir: &Path) -> PathBuf {
        data_dir.join("views")
    }
}

impl Drop for Views {
    fn drop(&mut self) {
        self.stop();
    }
}
