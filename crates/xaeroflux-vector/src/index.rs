//! [`HnswIndex`]: the thread-safe handle over the graph.
//!
//! Concurrency: readers share an `RwLock` read guard; writers are serialised by a
//! `Mutex` and do the expensive part of an insert (the layer searches and neighbour
//! selection) under a *read* guard, so searches keep running. Because only the holder
//! of the writer mutex mutates, the graph cannot change between that planning phase
//! and the write guard taken afterwards, which only appends the node and copies the
//! planned lists. Searches therefore wait microseconds, not an insert, and nothing is
//! ever observed half-linked.

use std::path::Path;
use std::sync::{Mutex, RwLock, RwLockReadGuard};

use crate::distance::{self, LANES};
use crate::error::{Error, Result};
use crate::graph::{Cand, Graph, Scratch};
use crate::params::{HnswParams, Metric, SplitMix64};
use crate::persist;

/// One search result.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Hit {
    /// The caller's key (the engine uses the event's local sequence number).
    pub key: u64,
    /// Cosine similarity in `[-1, 1]`, or the negated squared distance for
    /// [`Metric::L2`]. Larger is closer.
    pub similarity: f32,
}

/// State owned by the single writer.
pub(crate) struct Writer {
    pub(crate) rng: SplitMix64,
    scratch: Scratch,
}

/// A hierarchical navigable small world graph (Malkov & Yashunin) over `u64` keys.
/// See the [crate docs](crate) for the algorithm and an example.
pub struct HnswIndex {
    graph: RwLock<Graph>,
    writer: Mutex<Writer>,
    pool: Mutex<Vec<Scratch>>,
}

impl std::fmt::Debug for HnswIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HnswIndex")
            .field("len", &self.len())
            .finish_non_exhaustive()
    }
}

impl HnswIndex {
    /// An empty index. Fails on parameters out of range.
    pub fn new(params: HnswParams) -> Result<Self> {
        params.validate()?;
        let rng = SplitMix64 { state: params.seed };
        Ok(Self::from_parts(
            Graph::new(params, distance::detect()),
            rng,
        ))
    }

    pub(crate) fn from_parts(graph: Graph, rng: SplitMix64) -> Self {
        Self {
            graph: RwLock::new(graph),
            writer: Mutex::new(Writer {
                rng,
                scratch: Scratch::default(),
            }),
            pool: Mutex::new(Vec::new()),
        }
    }

    fn read(&self) -> Result<RwLockReadGuard<'_, Graph>> {
        self.graph.read().map_err(|_| Error::Poisoned)
    }

    /// The parameters the index was built with.
    pub fn params(&self) -> Result<HnswParams> {
        Ok(self.read()?.params.clone())
    }

    /// Number of indexed vectors.
    pub fn len(&self) -> usize {
        self.read().map(|g| g.len()).unwrap_or(0)
    }

    /// True if nothing is indexed.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// True if `key` is indexed.
    pub fn contains(&self, key: u64) -> bool {
        self.read()
            .map(|g| g.ids.contains_key(&key))
            .unwrap_or(false)
    }

    /// Heap bytes held by vectors, graph, key map and search scratch (capacities, not
    /// lengths).
    pub fn memory_bytes(&self) -> usize {
        let graph = self.read().map(|g| g.memory_bytes()).unwrap_or(0);
        let pool: usize = self
            .pool
            .lock()
            .map(|p| p.iter().map(Scratch::memory_bytes).sum())
            .unwrap_or(0);
        let writer = self
            .writer
            .lock()
            .map(|w| w.scratch.memory_bytes())
            .unwrap_or(0);
        graph + pool + writer
    }

    /// Checks `v` and returns it normalised (cosine) and zero-padded to `stride`.
    fn prepare(params: &HnswParams, stride: usize, v: &[f32]) -> Result<Vec<f32>> {
        if v.len() != params.dimension {
            return Err(Error::DimensionMismatch {
                expected: params.dimension,
                got: v.len(),
            });
        }
        if let Some(index) = v.iter().position(|x| !x.is_finite()) {
            return Err(Error::NonFinite { index });
        }
        let mut out = Vec::with_capacity(stride);
        out.extend_from_slice(v);
        out.resize(stride, 0.0);
        if params.metric == Metric::Cosine {
            // f64 so that huge finite components cannot overflow the norm.
            let norm = v
                .iter()
                .map(|&x| f64::from(x) * f64::from(x))
                .sum::<f64>()
                .sqrt();
            if norm == 0.0 || !norm.is_finite() {
                return Err(Error::ZeroVector);
            }
            for x in &mut out {
                *x = (f64::from(*x) / norm) as f32;
            }
        } else if !v.iter().map(|&x| x * x).sum::<f32>().is_finite() {
            // Squared norms that overflow would make every distance infinite.
            return Err(Error::NonFinite { index: 0 });
        }
        Ok(out)
    }

    /// Indexes `vector` under `key`. Fails on a wrong dimension, NaN/inf, a zero vector
    /// (cosine) or a key already present; the index is unchanged on error.
    pub fn insert(&self, key: u64, vector: &[f32]) -> Result<()> {
        let mut w = self.writer.lock().map_err(|_| Error::Poisoned)?;
        let w = &mut *w;
        let (q, plan) = {
            let g = self.read()?;
            let q = Self::prepare(&g.params, g.stride, vector)?;
            if g.ids.contains_key(&key) {
                return Err(Error::DuplicateKey { key });
            }
            if g.len() >= u32::MAX as usize - 1 {
                return Err(Error::Full {
                    max: u32::MAX as usize - 1,
                });
            }
            let level = w.rng.draw_level(g.m(), g.params.max_layer);
            let plan = g.plan(&q, level, &mut w.scratch);
            (q, plan)
        };
        let mut g = self.graph.write().map_err(|_| Error::Poisoned)?;
        g.apply(key, &q, plan);
        Ok(())
    }

    fn with_scratch<T>(&self, f: impl FnOnce(&mut Scratch) -> T) -> Result<T> {
        let mut s = self
            .pool
            .lock()
            .map_err(|_| Error::Poisoned)?
            .pop()
            .unwrap_or_default();
        let out = f(&mut s);
        self.pool.lock().map_err(|_| Error::Poisoned)?.push(s);
        Ok(out)
    }

    fn hits(g: &Graph, found: Vec<Cand>) -> Vec<Hit> {
        found
            .into_iter()
            .map(|c| Hit {
                key: g.keys[c.id as usize],
                similarity: match g.params.metric {
                    Metric::Cosine => (1.0 - c.dist).clamp(-1.0, 1.0),
                    Metric::L2 => -c.dist,
                },
            })
            .collect()
    }

    /// The `k` approximate nearest neighbours of `query`, most similar first, exploring
    /// `ef` candidates (raised to `k`; larger is slower and more accurate,
    /// [`DEFAULT_EF_SEARCH`](crate::DEFAULT_EF_SEARCH) is a good start).
    pub fn search(&self, query: &[f32], k: usize, ef: usize) -> Result<Vec<Hit>> {
        if k == 0 {
            return Err(Error::ZeroK);
        }
        let g = self.read()?;
        let q = Self::prepare(&g.params, g.stride, query)?;
        let found = self.with_scratch(|s| g.knn(&q, k, ef, s))?;
        Ok(Self::hits(&g, found))
    }

    /// [`search`](Self::search), keeping only hits with cosine similarity
    /// `>= threshold` (in `[-1, 1]`; cosine indexes only).
    pub fn search_threshold(
        &self,
        query: &[f32],
        k: usize,
        ef: usize,
        threshold: f32,
    ) -> Result<Vec<Hit>> {
        self.check_threshold(threshold)?;
        let mut hits = self.search(query, k, ef)?;
        hits.retain(|h| h.similarity >= threshold);
        Ok(hits)
    }

    fn check_threshold(&self, threshold: f32) -> Result<()> {
        if !(-1.0..=1.0).contains(&threshold) {
            return Err(Error::ThresholdOutOfRange { threshold });
        }
        if self.read()?.params.metric != Metric::Cosine {
            return Err(Error::ThresholdNeedsCosine);
        }
        Ok(())
    }

    /// Exact `k` nearest by scanning every vector: the recall oracle, and faster than
    /// the graph for small collections.
    pub fn search_exact(&self, query: &[f32], k: usize) -> Result<Vec<Hit>> {
        if k == 0 {
            return Err(Error::ZeroK);
        }
        let g = self.read()?;
        let q = Self::prepare(&g.params, g.stride, query)?;
        Ok(Self::hits(&g, g.exact(&q, k)))
    }

    /// [`search`](Self::search) for many queries, split over the available cores with
    /// `std::thread::scope`. Results are in query order; the first error wins.
    pub fn search_batch<Q>(&self, queries: &[Q], k: usize, ef: usize) -> Result<Vec<Vec<Hit>>>
    where
        Q: AsRef<[f32]> + Sync,
    {
        if k == 0 {
            return Err(Error::ZeroK);
        }
        let threads = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .min(queries.len().max(1));
        if threads <= 1 {
            return queries
                .iter()
                .map(|q| self.search(q.as_ref(), k, ef))
                .collect();
        }
        let chunk = queries.len().div_ceil(threads);
        std::thread::scope(|scope| {
            let handles: Vec<_> = queries
                .chunks(chunk)
                .map(|part| {
                    scope.spawn(move || {
                        part.iter()
                            .map(|q| self.search(q.as_ref(), k, ef))
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            let mut out = Vec::with_capacity(queries.len());
            for h in handles {
                let part = h.join().map_err(|_| Error::Poisoned)?;
                for r in part {
                    out.push(r?);
                }
            }
            Ok(out)
        })
    }

    /// [`search_threshold`](Self::search_threshold) for many queries, in parallel.
    pub fn search_batch_threshold<Q>(
        &self,
        queries: &[Q],
        k: usize,
        ef: usize,
        threshold: f32,
    ) -> Result<Vec<Vec<Hit>>>
    where
        Q: AsRef<[f32]> + Sync,
    {
        self.check_threshold(threshold)?;
        let mut all = self.search_batch(queries, k, ef)?;
        for hits in &mut all {
            hits.retain(|h| h.similarity >= threshold);
        }
        Ok(all)
    }

    /// Writes a snapshot that covers the store up to `position` (the caller's
    /// bookkeeping, returned by [`load`](Self::load)) to `path`: temp file in the same
    /// directory, fsync, rename, fsync of the directory. Inserts wait; searches run.
    pub fn save(&self, path: &Path, position: u64) -> Result<()> {
        let w = self.writer.lock().map_err(|_| Error::Poisoned)?;
        let g = self.read()?;
        persist::save(&g, w.rng.state, position, path)
    }

    /// Reads a snapshot written by [`save`](Self::save); returns it with its covered
    /// store position. Corrupt, truncated or foreign files are [`Error::Format`].
    pub fn load(path: &Path) -> Result<(Self, u64)> {
        let bytes = std::fs::read(path)?;
        Self::from_bytes(&bytes)
    }

    /// The snapshot bytes ([`save`](Self::save) writes exactly these).
    pub fn to_bytes(&self, position: u64) -> Result<Vec<u8>> {
        let w = self.writer.lock().map_err(|_| Error::Poisoned)?;
        let g = self.read()?;
        let mut out = Vec::new();
        persist::encode(&g, w.rng.state, position, &mut out)?;
        Ok(out)
    }

    /// Decodes snapshot bytes; never panics and never allocates more than `bytes`
    /// justifies.
    pub fn from_bytes(bytes: &[u8]) -> Result<(Self, u64)> {
        let (graph, rng, position) = persist::decode(bytes, distance::detect())?;
        Ok((Self::from_parts(graph, SplitMix64 { state: rng }), position))
    }

    /// The stored (normalised, for cosine) vector of `key`.
    pub fn vector(&self, key: u64) -> Option<Vec<f32>> {
        let g = self.read().ok()?;
        let id = *g.ids.get(&key)?;
        Some(g.unpadded(id).to_vec())
    }
}

const _: () = assert!(LANES.is_power_of_two());
