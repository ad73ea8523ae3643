//! Real-time vector search over committed events.
//!
//! [`XaeroFlux::start_vector_search`] registers a [`VectorExtractor`] per event type and
//! starts one indexer thread. The thread is a non-gating consumer of the committed
//! stream: a [`Subscription`](crate::Subscription) by local position, filtered to the
//! registered types. Local writes and events synced from peers both arrive there, are
//! turned into vectors and inserted into an HNSW index ([`xaeroflux_vector`]) keyed by
//! their local sequence number, shortly after commit and never on the write path.
//!
//! Invariants:
//! - Events are indexed in local-sequence order by a single thread, and the *indexed
//!   position* (every event below it was looked at) only moves forward, so nothing is
//!   indexed twice and nothing is skipped. A subscription reads older events from the
//!   store, so a slow indexer is never lapped.
//! - Given the same config, registered types and store, the index is a deterministic
//!   function of the events: the level generator is seeded with a fingerprint of the
//!   config and its state is saved with the index. A reloaded index that catches up is
//!   therefore the same graph as a fresh build, and searches return the same hits.
//! - The index file (`vector_index.bin`, format in `docs/FORMAT.md`) records the
//!   position it covers. It is written off the write path (every N indexed positions
//!   or T seconds, and on stop/close) atomically. On start a missing, corrupt or
//!   mismatched file (other config or types, or a position beyond the store) is
//!   rebuilt from the store; the fingerprint travels in the header's seed field.
//!
//! Extractors are user code: `None`, a wrong dimension, a non-finite or zero vector and
//! even a panic skip the event and count it in [`VectorStats::skipped`].

mod indexer;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use xaeroflux_core::{AuthorId, Event, EventHeader, EventId, GroupId};
use xaeroflux_vector::{Hit, HnswIndex, HnswParams, Metric, VectorExtractor};

use xaeroflux_store::{Error, Filter, Result, Snapshot, Start, StoredEvent};
pub use xaeroflux_vector::SearchError as VectorSearchError;

use crate::flux::XaeroFlux;

/// Default name of the index file in the data directory.
pub const VECTOR_INDEX_FILE: &str = "vector_index.bin";

/// Reports the progress of the initial catch-up (a rebuild or the events committed
/// since the file was saved). Called from the indexer thread.
pub type ProgressFn = Arc<dyn Fn(VectorProgress) + Send + Sync>;

/// Configuration of [`XaeroFlux::start_vector_search`].
#[derive(Clone)]
#[non_exhaustive]
pub struct VectorSearchConfig {
    /// Components per vector (1 ..= 65,536). Every extractor must produce this many.
    pub dimension: usize,
    /// HNSW `M`: links per node on upper layers, `2M` on layer 0. Default 16.
    pub max_connections: usize,
    /// Expected number of vectors, reserved up front. Soft: the index grows past it.
    /// Default 10,000.
    pub max_elements: usize,
    /// Highest HNSW layer (1 ..= 64). Default 16.
    pub max_layer: usize,
    /// Candidate list size while inserting. Default 200.
    pub ef_construction: usize,
    /// Candidate list size while searching (raised to `k`). Default 64.
    pub ef_search: usize,
    /// Similarity measure. Default cosine.
    pub metric: Metric,
    /// Index file; default `DATA_DIR/vector_index.bin`.
    pub index_path: Option<PathBuf>,
    /// Save after this many newly indexed positions. Default 10,000.
    pub persist_every: u64,
    /// Save at least this often while positions advance. Default 60 s.
    pub persist_interval: Duration,
    /// Mixed into the fingerprint: change it when an extractor's output changes, so
    /// the saved index is rebuilt instead of mixing old and new vectors. Default 0.
    pub extractor_version: u64,
    /// Called with the catch-up progress after start. Default none.
    pub on_progress: Option<ProgressFn>,
}

impl std::fmt::Debug for VectorSearchConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VectorSearchConfig")
            .field("dimension", &self.dimension)
            .field("max_connections", &self.max_connections)
            .field("max_elements", &self.max_elements)
            .field("max_layer", &self.max_layer)
            .field("ef_construction", &self.ef_construction)
            .field("ef_search", &self.ef_search)
            .field("metric", &self.metric)
            .field("index_path", &self.index_path)
            .field("persist_every", &self.persist_every)
            .field("persist_interval", &self.persist_interval)
            .field("extractor_version", &self.extractor_version)
            .finish_non_exhaustive()
    }
}

impl VectorSearchConfig {
    /// Defaults (see the fields) for vectors of `dimension` components.
    pub fn new(dimension: usize) -> Self {
        let p = HnswParams::new(dimension);
        VectorSearchConfig {
            dimension,
            max_connections: p.max_connections,
            max_elements: p.max_elements,
            max_layer: p.max_layer,
            ef_construction: p.ef_construction,
            ef_search: xaeroflux_vector::DEFAULT_EF_SEARCH,
            metric: Metric::Cosine,
            index_path: None,
            persist_every: 10_000,
            persist_interval: Duration::from_secs(60),
            extractor_version: 0,
            on_progress: None,
        }
    }

    /// The HNSW parameters, seeded with the fingerprint of the config and `types`.
    fn params(&self, types: &[u32]) -> HnswParams {
        let mut p = HnswParams::new(self.dimension);
        p.metric = self.metric;
        p.max_connections = self.max_connections;
        p.max_elements = self.max_elements;
        p.max_layer = self.max_layer;
        p.ef_construction = self.ef_construction;
        p.seed = self.fingerprint(types);
        p
    }

    /// BLAKE3 over everything that shapes the index (not `max_elements`, a capacity
    /// hint, nor `ef_search`, a search-time knob), truncated to 64 bits.
    fn fingerprint(&self, types: &[u32]) -> u64 {
        let mut h = blake3::Hasher::new();
        h.update(b"xaeroflux vector index v1");
        let metric: u64 = match self.metric {
            Metric::Cosine => 0,
            _ => 1,
        };
        for v in [
            self.dimension as u64,
            self.max_connections as u64,
            self.max_layer as u64,
            self.ef_construction as u64,
            metric,
            self.extractor_version,
            types.len() as u64,
        ] {
            h.update(&v.to_le_bytes());
        }
        for t in types {
            h.update(&t.to_le_bytes());
        }
        let mut out = [0u8; 8];
        out.copy_from_slice(&h.finalize().as_bytes()[..8]);
        u64::from_le_bytes(out)
    }

    fn validate(&self) -> std::result::Result<(), VectorSearchError> {
        let bad = |name, reason| Err(VectorSearchError::InvalidConfig { name, reason });
        if self.ef_search == 0 {
            return bad("ef_search", "must be at least 1");
        }
        if self.persist_every == 0 {
            return bad("persist_every", "must be at least 1");
        }
        // The index checks the HNSW parameters; report them as config errors.
        let mut params = self.params(&[]);
        params.max_elements = 0;
        HnswIndex::new(params).map(drop).map_err(|e| match e {
            xaeroflux_vector::Error::InvalidParams { name, reason } => {
                VectorSearchError::InvalidConfig { name, reason }
            }
            other => VectorSearchError::Index(other),
        })
    }
}

/// How the index came to be at the last start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum IndexLoad {
    /// Vector search is not running.
    #[default]
    NotStarted,
    /// The index file was loaded; the indexer continues from its position.
    Loaded,
    /// No index file: built from the store.
    Missing,
    /// The file was unreadable or corrupt: rebuilt from the store.
    Corrupt,
    /// The file belongs to another config, other event types, or a position beyond
    /// the store: rebuilt from the store.
    Mismatch,
}

/// Catch-up progress, see [`VectorSearchConfig::on_progress`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VectorProgress {
    /// Positions below this have been looked at.
    pub position: u64,
    /// The committed position when vector search started (catch-up ends here).
    pub target: u64,
    /// Where the index started from.
    pub load: IndexLoad,
}

/// What [`XaeroFlux::vector_search_stats`] reports.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VectorStats {
    /// Vectors in the index.
    pub indexed: u64,
    /// Indexed position: every committed event below it was looked at.
    pub position: u64,
    /// Committed position of the store.
    pub committed: u64,
    /// Committed events not yet looked at (`committed - position`).
    pub pending: u64,
    /// Events of registered types left out since start: no vector, wrong dimension,
    /// non-finite or zero vector, or a panicking extractor.
    pub skipped: u64,
    /// Vectors in the index per event type.
    pub per_type: BTreeMap<u32, u64>,
    /// Heap bytes held by the index.
    pub memory_bytes: u64,
    /// Position covered by the last saved index file (`None` if none saved or loaded).
    pub last_persisted_position: Option<u64>,
    /// How the index came to be at start.
    pub load: IndexLoad,
    /// The last failure of the indexer thread (it retries), if any.
    pub last_error: Option<String>,
}

/// Restricts [`XaeroFlux::search_vector_filtered`] results. Empty lists match all.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VectorFilter {
    /// Only these event types.
    pub event_types: Vec<u32>,
    /// Only these groups.
    pub groups: Vec<GroupId>,
    /// Only these authors.
    pub authors: Vec<AuthorId>,
}

impl VectorFilter {
    fn matches(&self, h: &EventHeader) -> bool {
        (self.event_types.is_empty() || self.event_types.contains(&h.event_type))
            && (self.groups.is_empty() || self.groups.contains(&h.group))
            && (self.authors.is_empty() || self.authors.contains(&h.author))
    }

    fn is_empty(&self) -> bool {
        self.event_types.is_empty() && self.groups.is_empty() && self.authors.is_empty()
    }
}

/// One search result as [`XaeroFlux::search_vector`] returns it: where the event sits
/// and how close it is, nothing read from the store yet.
///
/// Resolve it when needed: [`VectorMatch::event`] borrows the event from a snapshot
/// (zero-copy; hash it with [`EventRef::id`](xaeroflux_core::EventRef::id) only if the
/// id is wanted), and [`XaeroFlux::vector_events`] copies a list of matches out with
/// their ids.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VectorMatch {
    /// Position of the event in local arrival order (the index key).
    pub local_seq: u64,
    /// Cosine similarity in `[-1, 1]` (negated squared distance for L2). Larger is
    /// closer.
    pub similarity: f32,
}

impl VectorMatch {
    /// The matched event, borrowed from `snap` (`None` only if `snap` is older than
    /// the search that found it).
    pub fn event<'s>(&self, snap: &'s Snapshot<'_>) -> Result<Option<StoredEvent<'s>>> {
        snap.get_local(self.local_seq)
    }
}

impl From<Hit> for VectorMatch {
    fn from(h: Hit) -> Self {
        VectorMatch {
            local_seq: h.key,
            similarity: h.similarity,
        }
    }
}

/// One search result with its event copied out, as [`XaeroFlux::search_vector_events`]
/// and [`XaeroFlux::vector_events`] return it.
#[derive(Debug, Clone, PartialEq)]
pub struct VectorHit {
    /// The event id.
    pub id: EventId,
    /// Position of the event in local arrival order (the index key).
    pub local_seq: u64,
    /// Cosine similarity in `[-1, 1]` (negated squared distance for L2). Larger is
    /// closer.
    pub similarity: f32,
    /// The event.
    pub event: Event,
}

fn index_err(e: xaeroflux_vector::Error) -> Error {
    Error::Vector(VectorSearchError::Index(e))
}

/// Counters shared by the indexer thread and the API.
pub(crate) struct Inner {
    index: HnswIndex,
    extractors: HashMap<u32, Arc<dyn VectorExtractor>>,
    cfg: VectorSearchConfig,
    path: PathBuf,
    load: IndexLoad,
    stop: AtomicBool,
    position: AtomicU64,
    skipped: AtomicU64,
    /// `u64::MAX` while nothing was persisted.
    persisted: AtomicU64,
    per_type: Mutex<BTreeMap<u32, u64>>,
    last_error: Mutex<Option<String>>,
    /// Opens payloads of encrypted groups before extraction.
    ring: Arc<crate::sealing::KeyRing>,
}

struct Running {
    inner: Arc<Inner>,
    thread: Option<JoinHandle<()>>,
}

/// The engine's vector search state (a field of [`XaeroFlux`]).
#[derive(Default)]
pub(crate) struct VectorSlot {
    running: Mutex<Option<Running>>,
}

impl VectorSlot {
    fn inner(&self) -> Result<Arc<Inner>> {
        self.running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .map(|r| r.inner.clone())
            .ok_or(Error::Vector(VectorSearchError::NotStarted))
    }

    /// Stops the indexer and saves the index if it advanced. Idempotent.
    pub(crate) fn stop(&self) -> Result<()> {
        let running = self
            .running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        let Some(mut r) = running else {
            return Ok(());
        };
        r.inner.stop.store(true, Ordering::Release);
        if let Some(t) = r.thread.take() {
            let _ = t.join();
        }
        r.inner.persist_if_advanced()
    }
}

impl Inner {
    fn set_error(&self, e: &dyn std::fmt::Display) {
        tracing::warn!(error = %e, "vector indexer");
        *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(e.to_string());
    }

    /// Saves the index at the current position unless the file already covers it.
    fn persist_if_advanced(&self) -> Result<()> {
        let position = self.position.load(Ordering::Acquire);
        if self.persisted.load(Ordering::Acquire) == position {
            return Ok(());
        }
        self.index.save(&self.path, position).map_err(index_err)?;
        self.persisted.store(position, Ordering::Release);
        Ok(())
    }
}

impl XaeroFlux {
    /// Starts real-time vector search: every committed event (local or synced) whose
    /// type has an extractor in `extractors` is indexed shortly after commit by a
    /// background thread. The index is loaded from its file and caught up from the
    /// position it covers; without a usable file it is rebuilt from the store (see
    /// [`VectorSearchConfig::on_progress`] and [`XaeroFlux::vector_search_stats`]).
    ///
    /// Fails if vector search already runs, no extractor is given, or the config is
    /// out of range.
    pub fn start_vector_search(
        &self,
        extractors: HashMap<u32, Arc<dyn VectorExtractor>>,
        config: VectorSearchConfig,
    ) -> Result<()> {
        let mut running = self
            .vector
            .running
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if running.is_some() {
            return Err(VectorSearchError::AlreadyStarted.into());
        }
        if extractors.is_empty() {
            return Err(VectorSearchError::NoExtractors.into());
        }
        config.validate()?;
        let mut types: Vec<u32> = extractors.keys().copied().collect();
        types.sort_unstable();
        let params = config.params(&types);
        let path = config
            .index_path
            .clone()
            .unwrap_or_else(|| self.data_dir().join(VECTOR_INDEX_FILE));
        let committed = self.committed_count();
        let (index, position, load) = indexer::load(&path, &params, committed)?;
        let per_type = if position > 0 {
            indexer::count_per_type(&self.read()?, &index, &types, position)?
        } else {
            BTreeMap::new()
        };
        let inner = Arc::new(Inner {
            index,
            extractors,
            path,
            load,
            stop: AtomicBool::new(false),
            position: AtomicU64::new(position),
            skipped: AtomicU64::new(0),
            persisted: AtomicU64::new(if load == IndexLoad::Loaded {
                position
            } else {
                u64::MAX
            }),
            per_type: Mutex::new(per_type),
            last_error: Mutex::new(None),
            ring: self.ring().clone(),
            cfg: config,
        });
        let mut filter = Filter::all().start(Start::Position(position));
        filter.event_types = types;
        let sub = self.subscribe(filter);
        let thread_inner = inner.clone();
        let thread = std::thread::Builder::new()
            .name("xaeroflux-vector".into())
            .spawn(move || indexer::run(&thread_inner, sub, committed))
            .map_err(VectorSearchError::Thread)?;
        *running = Some(Running {
            inner,
            thread: Some(thread),
        });
        Ok(())
    }

    /// Stops the indexer thread and saves the index (also done on close and drop).
    /// Searching afterwards fails with [`VectorSearchError::NotStarted`]; vector search
    /// may be started again.
    pub fn stop_vector_search(&self) -> Result<()> {
        self.vector.stop()
    }

    /// The `k` indexed events most similar to `query` with similarity `>= threshold`
    /// (in `[-1, 1]`; for an L2 index pass `-1.0`, meaning no threshold), most similar
    /// first.
    ///
    /// Only the index is consulted: a match carries the event's position, and nothing
    /// is read, copied or hashed per hit until asked ([`VectorMatch::event`] borrows
    /// the event from a snapshot; [`vector_events`](Self::vector_events) or
    /// [`search_vector_events`](Self::search_vector_events) copy events and ids out).
    pub fn search_vector(
        &self,
        query: &[f32],
        k: usize,
        threshold: f32,
    ) -> Result<Vec<VectorMatch>> {
        let inner = self.vector.inner()?;
        let hits = search_one(&inner, query, k, threshold)?;
        Ok(hits.into_iter().map(VectorMatch::from).collect())
    }

    /// [`search_vector`](Self::search_vector) with every match's event and id copied
    /// out (read from one snapshot).
    pub fn search_vector_events(
        &self,
        query: &[f32],
        k: usize,
        threshold: f32,
    ) -> Result<Vec<VectorHit>> {
        let matches = self.search_vector(query, k, threshold)?;
        self.vector_events(&matches)
    }

    /// Copies the events of `matches` out of one snapshot, with their ids, in the
    /// order given.
    pub fn vector_events(&self, matches: &[VectorMatch]) -> Result<Vec<VectorHit>> {
        let snap = self.read()?;
        let mut out = Vec::with_capacity(matches.len());
        for m in matches {
            // Keys are positions of committed events, which are never removed.
            if let Some(se) = m.event(&snap)? {
                out.push(VectorHit {
                    id: se.event.id(),
                    local_seq: m.local_seq,
                    similarity: m.similarity,
                    event: se.event.to_owned(),
                });
            }
        }
        Ok(out)
    }

    /// [`search_vector`](Self::search_vector) among events matching `filter`. The graph
    /// search widens until `k` matches are found or the whole index was considered.
    /// Headers are checked in place in one snapshot; no payload is copied.
    pub fn search_vector_filtered(
        &self,
        query: &[f32],
        k: usize,
        threshold: f32,
        filter: &VectorFilter,
    ) -> Result<Vec<VectorMatch>> {
        let inner = self.vector.inner()?;
        if filter.is_empty() {
            return self.search_vector(query, k, threshold);
        }
        let snap = self.read()?;
        let len = inner.index.len().max(1);
        let mut want = k.saturating_mul(4);
        loop {
            let want_now = want.min(len).max(k);
            let hits = search_one(&inner, query, want_now, threshold)?;
            let exhausted = want_now >= len || hits.len() < want_now;
            let out = filtered(&snap, hits, filter, k)?;
            if out.len() >= k || exhausted {
                return Ok(out);
            }
            want = want.saturating_mul(2);
        }
    }

    /// [`search_vector`](Self::search_vector) for many queries at once, split over the
    /// available cores. Results are in query order; like `search_vector`, nothing is
    /// read from the store.
    pub fn search_vectors<Q>(
        &self,
        queries: &[Q],
        k: usize,
        threshold: f32,
    ) -> Result<Vec<Vec<VectorMatch>>>
    where
        Q: AsRef<[f32]> + Sync,
    {
        let inner = self.vector.inner()?;
        let ef = inner.cfg.ef_search.max(k);
        let all = if no_threshold(&inner, threshold) {
            inner.index.search_batch(queries, k, ef)
        } else {
            inner
                .index
                .search_batch_threshold(queries, k, ef, threshold)
        }
        .map_err(index_err)?;
        Ok(all
            .into_iter()
            .map(|hits| hits.into_iter().map(VectorMatch::from).collect())
            .collect())
    }

    /// Counters of the running vector search.
    pub fn vector_search_stats(&self) -> Result<VectorStats> {
        let inner = self.vector.inner()?;
        let position = inner.position.load(Ordering::Acquire);
        let committed = self.committed_count();
        let persisted = inner.persisted.load(Ordering::Acquire);
        Ok(VectorStats {
            indexed: inner.index.len() as u64,
            position,
            committed,
            pending: committed.saturating_sub(position),
            skipped: inner.skipped.load(Ordering::Relaxed),
            per_type: inner
                .per_type
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
            memory_bytes: inner.index.memory_bytes() as u64,
            last_persisted_position: (persisted != u64::MAX).then_some(persisted),
            load: inner.load,
            last_error: inner
                .last_error
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
        })
    }
}

/// What [`vector_index_info`] reads from an index file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VectorIndexInfo {
    /// Vectors in the file.
    pub vectors: u64,
    /// Store position the file covers (events below it were looked at).
    pub position: u64,
    /// Vector dimension.
    pub dimension: usize,
    /// File size in bytes.
    pub file_bytes: u64,
}

/// Reads and fully checks the index file at `path` (e.g. `DATA_DIR/`
/// [`VECTOR_INDEX_FILE`]) without starting vector search; `None` if it does not exist.
pub fn vector_index_info(path: &std::path::Path) -> Result<Option<VectorIndexInfo>> {
    let file_bytes = match std::fs::metadata(path) {
        Ok(m) => m.len(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(Error::Io {
                path: path.to_path_buf(),
                source,
            });
        }
    };
    let (index, position) = HnswIndex::load(path).map_err(index_err)?;
    Ok(Some(VectorIndexInfo {
        vectors: index.len() as u64,
        position,
        dimension: index.params().map_err(index_err)?.dimension,
        file_bytes,
    }))
}

/// An L2 index has no similarity threshold; `-1.0` (which admits every cosine) is
/// accepted there as "none".
fn no_threshold(inner: &Inner, threshold: f32) -> bool {
    inner.cfg.metric != Metric::Cosine && threshold == -1.0
}

fn search_one(inner: &Inner, query: &[f32], k: usize, threshold: f32) -> Result<Vec<Hit>> {
    let ef = inner.cfg.ef_search.max(k);
    if no_threshold(inner, threshold) {
        inner.index.search(query, k, ef)
    } else {
        inner.index.search_threshold(query, k, ef, threshold)
    }
    .map_err(index_err)
}

/// The first `k` hits whose events match `filter`, headers read in place.
fn filtered(
    snap: &Snapshot<'_>,
    hits: Vec<Hit>,
    filter: &VectorFilter,
    k: usize,
) -> Result<Vec<VectorMatch>> {
    let mut out = Vec::with_capacity(k.min(hits.len()));
    for h in hits {
        if out.len() >= k {
            break;
        }
        // Keys are positions of committed events, which are never removed.
        let Some(se) = snap.get_local(h.key)? else {
            continue;
        };
        if filter.matches(&se.event.header) {
            out.push(VectorMatch::from(h));
        }
    }
    Ok(out)
}
