//! The HNSW graph itself: storage layout, layer search, neighbour selection, and
//! insertion split into a read-only planning phase and a short mutation phase.
//!
//! Layout (all flat, indexed by the internal id `0..len`):
//! - `rows`: every vector zero-padded to a multiple of 16 `f32` in one 64-byte aligned
//!   buffer, so each vector starts on a cache line and kernels run no tail;
//! - `links0`: level-0 adjacency, fixed stride `1 + 2M` (`count`, then up to `2M` ids);
//! - `upper[id]`: levels `1..=level(id)`, stride `1 + M` each, empty for most nodes
//!   (a node reaches level 1 with probability `1/M`).

use std::cmp::{Ordering, Reverse};
use std::collections::{BinaryHeap, HashMap};

use crate::distance::{Kernels, LANES, prefetch};
use crate::params::{HnswParams, Metric};

/// Preallocation cap for `max_elements`, so a large hint cannot reserve unbounded memory.
const MAX_PREALLOC_BYTES: usize = 1 << 30;

/// One cache line of `f32`.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Line([f32; LANES]);

/// Rows of `stride` floats (`stride` a multiple of [`LANES`]) in 64-byte aligned storage.
pub(crate) struct Rows {
    lines: Vec<Line>,
    lines_per_row: usize,
}

impl Rows {
    fn new(stride: usize, reserve_rows: usize) -> Self {
        let lines_per_row = stride / LANES;
        Self {
            lines: Vec::with_capacity(reserve_rows * lines_per_row),
            lines_per_row,
        }
    }

    fn all(&self) -> &[f32] {
        // SAFETY: `Line` is `repr(C)` around `[f32; 16]` with size 64 = 16 * 4 and
        // alignment 64, so a `[Line]` is exactly `len * 16` contiguous initialised f32.
        unsafe {
            std::slice::from_raw_parts(self.lines.as_ptr().cast::<f32>(), self.lines.len() * LANES)
        }
    }

    #[inline]
    pub(crate) fn row(&self, id: u32) -> &[f32] {
        let stride = self.lines_per_row * LANES;
        let start = id as usize * stride;
        &self.all()[start..start + stride]
    }

    /// Appends `v` (at most one row long), zero-padded.
    fn push(&mut self, v: &[f32]) {
        for chunk in 0..self.lines_per_row {
            let mut line = Line([0.0; LANES]);
            let lo = chunk * LANES;
            if lo < v.len() {
                let hi = (lo + LANES).min(v.len());
                line.0[..hi - lo].copy_from_slice(&v[lo..hi]);
            }
            self.lines.push(line);
        }
    }

    fn capacity_bytes(&self) -> usize {
        self.lines.capacity() * std::mem::size_of::<Line>()
    }
}

/// A candidate: distance to the query and internal id, ordered by distance.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Cand {
    pub(crate) dist: f32,
    pub(crate) id: u32,
}

impl PartialEq for Cand {
    fn eq(&self, o: &Self) -> bool {
        self.cmp(o) == Ordering::Equal
    }
}
impl Eq for Cand {}
impl PartialOrd for Cand {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Cand {
    fn cmp(&self, o: &Self) -> Ordering {
        self.dist.total_cmp(&o.dist).then(self.id.cmp(&o.id))
    }
}

/// Per-search scratch, reused: generation-stamped visited set and the two heaps.
#[derive(Default)]
pub(crate) struct Scratch {
    stamps: Vec<u32>,
    generation: u32,
    candidates: BinaryHeap<Reverse<Cand>>,
    results: BinaryHeap<Cand>,
    fresh: Vec<u32>,
}

impl Scratch {
    /// Starts a new search over `n` nodes: bumping the generation clears the set in O(1).
    fn reset(&mut self, n: usize) {
        if self.stamps.len() < n {
            self.stamps.resize(n.next_power_of_two(), 0);
        }
        self.generation = self.generation.wrapping_add(1);
        if self.generation == 0 {
            self.stamps.fill(0);
            self.generation = 1;
        }
        self.candidates.clear();
        self.results.clear();
    }

    /// Marks `id` visited; true if it was not yet.
    #[inline]
    fn visit(&mut self, id: u32) -> bool {
        let s = &mut self.stamps[id as usize];
        let fresh = *s != self.generation;
        *s = self.generation;
        fresh
    }

    pub(crate) fn memory_bytes(&self) -> usize {
        self.stamps.capacity() * 4
            + (self.candidates.capacity() + self.results.capacity()) * std::mem::size_of::<Cand>()
    }
}

/// What an insert will change, computed under the read lock.
pub(crate) struct Plan {
    level: usize,
    /// Neighbours of the new node, per level `0..=min(level, max_level)`.
    own: Vec<Vec<u32>>,
    /// Replacement neighbour lists: (node, level, ids).
    updates: Vec<(u32, usize, Vec<u32>)>,
}

/// The graph. Not synchronised: [`crate::HnswIndex`] wraps it in a lock.
pub(crate) struct Graph {
    pub(crate) params: HnswParams,
    pub(crate) kernels: Kernels,
    /// Padded row length.
    pub(crate) stride: usize,
    pub(crate) rows: Rows,
    pub(crate) keys: Vec<u64>,
    pub(crate) ids: HashMap<u64, u32>,
    pub(crate) levels: Vec<u8>,
    pub(crate) links0: Vec<u32>,
    pub(crate) upper: Vec<Vec<u32>>,
    pub(crate) entry: Option<u32>,
    pub(crate) max_level: usize,
}

impl Graph {
    pub(crate) fn new(params: HnswParams, kernels: Kernels) -> Self {
        let reserve = params.max_elements;
        Self::with_reserve(params, kernels, reserve)
    }

    /// Reserves room for `reserve` nodes, capped at [`MAX_PREALLOC_BYTES`].
    pub(crate) fn with_reserve(params: HnswParams, kernels: Kernels, reserve: usize) -> Self {
        let stride = params.dimension.div_ceil(LANES) * LANES;
        let per_row = stride * 4 + (1 + 2 * params.max_connections) * 4 + 8;
        let reserve = reserve.min(MAX_PREALLOC_BYTES / per_row);
        Self {
            rows: Rows::new(stride, reserve),
            keys: Vec::with_capacity(reserve),
            ids: HashMap::with_capacity(reserve),
            levels: Vec::with_capacity(reserve),
            links0: Vec::with_capacity(reserve * (1 + 2 * params.max_connections)),
            upper: Vec::with_capacity(reserve),
            entry: None,
            max_level: 0,
            stride,
            kernels,
            params,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.keys.len()
    }

    pub(crate) fn m(&self) -> usize {
        self.params.max_connections
    }

    pub(crate) fn stride0(&self) -> usize {
        1 + 2 * self.m()
    }

    pub(crate) fn stride_upper(&self) -> usize {
        1 + self.m()
    }

    pub(crate) fn ef_construction(&self) -> usize {
        self.params.ef_construction.max(self.m())
    }

    /// Capacity of a list at `level`.
    fn max_links(&self, level: usize) -> usize {
        if level == 0 { 2 * self.m() } else { self.m() }
    }

    #[inline]
    pub(crate) fn distance(&self, a: &[f32], b: &[f32]) -> f32 {
        match self.params.metric {
            Metric::Cosine => 1.0 - (self.kernels.dot)(a, b),
            Metric::L2 => (self.kernels.l2)(a, b),
        }
    }

    /// The neighbour list of `id` at `level` (which must be `<= level(id)`).
    #[inline]
    pub(crate) fn neighbours(&self, id: u32, level: usize) -> &[u32] {
        let list = if level == 0 {
            let s = self.stride0();
            &self.links0[id as usize * s..(id as usize + 1) * s]
        } else {
            let s = self.stride_upper();
            &self.upper[id as usize][(level - 1) * s..level * s]
        };
        &list[1..1 + list[0] as usize]
    }

    #[inline]
    fn prefetch_links(&self, id: u32, level: usize) {
        if level == 0 {
            let at = id as usize * self.stride0();
            if let Some(row) = self.links0.get(at..at + self.stride0()) {
                prefetch(row.as_ptr().cast());
                prefetch(row[row.len() - 1..].as_ptr().cast());
            }
        }
    }

    fn set_neighbours(&mut self, id: u32, level: usize, ids: &[u32]) {
        let list = if level == 0 {
            let s = self.stride0();
            &mut self.links0[id as usize * s..(id as usize + 1) * s]
        } else {
            let s = self.stride_upper();
            &mut self.upper[id as usize][(level - 1) * s..level * s]
        };
        list[0] = ids.len() as u32;
        list[1..1 + ids.len()].copy_from_slice(ids);
        list[1 + ids.len()..].fill(0);
    }

    /// Greedy descent through the upper layers (search with `ef = 1`) down to
    /// `stop_level + 1`; returns the closest node found.
    fn descend(&self, q: &[f32], stop_level: usize) -> Option<Cand> {
        let ep = self.entry?;
        let mut cur = Cand {
            dist: self.distance(q, self.rows.row(ep)),
            id: ep,
        };
        let mut level = self.max_level;
        while level > stop_level {
            let mut changed = true;
            while changed {
                changed = false;
                for &n in self.neighbours(cur.id, level) {
                    let d = self.distance(q, self.rows.row(n));
                    if d < cur.dist {
                        cur = Cand { dist: d, id: n };
                        changed = true;
                    }
                }
            }
            level -= 1;
        }
        Some(cur)
    }

    /// Algorithm 2 of the paper (SEARCH-LAYER): best-first search from `ep` keeping the
    /// `ef` closest in `s.results`. Unvisited neighbours of a candidate are collected
    /// first and all prefetched before any distance is computed, so the memory loads of
    /// one adjacency list overlap.
    fn search_layer(&self, q: &[f32], ep: Cand, ef: usize, level: usize, s: &mut Scratch) {
        s.reset(self.len());
        s.visit(ep.id);
        s.candidates.push(Reverse(ep));
        s.results.push(ep);
        let mut bound = ep.dist;
        let mut fresh = std::mem::take(&mut s.fresh);
        while let Some(Reverse(c)) = s.candidates.pop() {
            if c.dist > bound && s.results.len() >= ef {
                break;
            }
            fresh.clear();
            for &n in self.neighbours(c.id, level) {
                if s.visit(n) {
                    prefetch(self.rows.row(n).as_ptr());
                    fresh.push(n);
                }
            }
            for &n in &fresh {
                let d = self.distance(q, self.rows.row(n));
                if s.results.len() < ef || d < bound {
                    let cand = Cand { dist: d, id: n };
                    // Its adjacency list is read when it is popped; start that load now.
                    self.prefetch_links(n, level);
                    s.candidates.push(Reverse(cand));
                    s.results.push(cand);
                    if s.results.len() > ef {
                        s.results.pop();
                    }
                    if let Some(top) = s.results.peek() {
                        bound = top.dist;
                    }
                }
            }
        }
        s.fresh = fresh;
    }

    /// k nearest of `q` (already normalised and padded to `stride`), nearest first.
    pub(crate) fn knn(&self, q: &[f32], k: usize, ef: usize, s: &mut Scratch) -> Vec<Cand> {
        let Some(ep) = self.descend(q, 0) else {
            return Vec::new();
        };
        self.search_layer(q, ep, ef.max(k), 0, s);
        let mut out: Vec<Cand> = s.results.drain().collect();
        out.sort_unstable();
        out.truncate(k);
        out
    }

    /// Exact scan, nearest first.
    pub(crate) fn exact(&self, q: &[f32], k: usize) -> Vec<Cand> {
        let mut heap: BinaryHeap<Cand> = BinaryHeap::with_capacity(k + 1);
        for id in 0..self.len() as u32 {
            let d = self.distance(q, self.rows.row(id));
            if heap.len() < k {
                heap.push(Cand { dist: d, id });
            } else if heap.peek().is_some_and(|t| d < t.dist) {
                heap.pop();
                heap.push(Cand { dist: d, id });
            }
        }
        heap.into_sorted_vec()
    }

    /// Vector of `id`, where `id == len` stands for the node being inserted (`q`).
    #[inline]
    fn vec_of<'a>(&'a self, id: u32, q: &'a [f32]) -> &'a [f32] {
        if id as usize == self.len() {
            q
        } else {
            self.rows.row(id)
        }
    }

    /// Algorithm 4 of the paper (SELECT-NEIGHBORS-HEURISTIC) without candidate
    /// extension or pruned-connection refill, as in hnswlib: walk `cands` nearest first
    /// and keep one only if it is closer to the base than to every one already kept.
    /// This keeps links pointing in diverse directions, which is what lets the graph
    /// route between clusters. Lists of at most `m` are kept whole.
    fn select(&self, cands: &mut [Cand], m: usize, q: &[f32]) -> Vec<u32> {
        cands.sort_unstable();
        if cands.len() <= m {
            return cands.iter().map(|c| c.id).collect();
        }
        let mut kept: Vec<Cand> = Vec::with_capacity(m);
        for &c in cands.iter() {
            if kept.len() >= m {
                break;
            }
            let v = self.vec_of(c.id, q);
            if kept
                .iter()
                .all(|r| self.distance(v, self.vec_of(r.id, q)) >= c.dist)
            {
                kept.push(c);
            }
        }
        kept.iter().map(|c| c.id).collect()
    }

    /// Algorithm 1 of the paper (INSERT), read-only half: finds the new node's
    /// neighbours on each level and the pruned lists of those neighbours. `q` is the
    /// normalised, padded vector; the new node gets id `len`.
    pub(crate) fn plan(&self, q: &[f32], level: usize, s: &mut Scratch) -> Plan {
        let new_id = self.len() as u32;
        let mut plan = Plan {
            level,
            own: Vec::new(),
            updates: Vec::new(),
        };
        let Some(mut ep) = self.descend(q, level) else {
            return plan;
        };
        let top = level.min(self.max_level);
        let mut own = vec![Vec::new(); top + 1];
        for lc in (0..=top).rev() {
            self.search_layer(q, ep, self.ef_construction(), lc, s);
            let mut found: Vec<Cand> = s.results.drain().collect();
            if let Some(best) = found.iter().min() {
                ep = *best;
            }
            let chosen = self.select(&mut found, self.m(), q);
            // Back-links: add the new node to each chosen neighbour, re-selecting with
            // the heuristic when the list is full.
            let cap = self.max_links(lc);
            for &n in &chosen {
                let vn = self.rows.row(n);
                let existing = self.neighbours(n, lc);
                let mut list: Vec<u32> = existing.to_vec();
                if list.len() < cap {
                    list.push(new_id);
                } else {
                    let mut cands: Vec<Cand> = existing
                        .iter()
                        .map(|&e| Cand {
                            dist: self.distance(vn, self.rows.row(e)),
                            id: e,
                        })
                        .collect();
                    cands.push(Cand {
                        dist: self.distance(vn, q),
                        id: new_id,
                    });
                    list = self.select(&mut cands, cap, q);
                }
                plan.updates.push((n, lc, list));
            }
            own[lc] = chosen;
        }
        plan.own = own;
        plan
    }

    /// Mutation half of INSERT: appends the node and writes the planned lists. Only
    /// copies; the write lock is held for microseconds.
    pub(crate) fn apply(&mut self, key: u64, q: &[f32], plan: Plan) {
        let id = self.len() as u32;
        self.rows.push(q);
        self.keys.push(key);
        self.ids.insert(key, id);
        self.levels.push(plan.level as u8);
        self.links0.resize(self.links0.len() + self.stride0(), 0);
        self.upper.push(vec![0; plan.level * self.stride_upper()]);
        for (lc, list) in plan.own.iter().enumerate() {
            self.set_neighbours(id, lc, list);
        }
        for (n, lc, list) in &plan.updates {
            self.set_neighbours(*n, *lc, list);
        }
        if self.entry.is_none() || plan.level > self.max_level {
            self.entry = Some(id);
            self.max_level = plan.level;
        }
    }

    pub(crate) fn memory_bytes(&self) -> usize {
        self.rows.capacity_bytes()
            + self.keys.capacity() * 8
            + self.levels.capacity()
            + self.links0.capacity() * 4
            + self.upper.capacity() * std::mem::size_of::<Vec<u32>>()
            + self.upper.iter().map(|u| u.capacity() * 4).sum::<usize>()
            // hashbrown: key + value + one control byte per bucket, 7/8 load.
            + self.ids.capacity() * 8 / 7 * (8 + 4 + 1)
    }

    /// Appends a node verbatim (decoder). Lists must be validated by the caller.
    pub(crate) fn push_raw(&mut self, key: u64, v: &[f32], level: usize) {
        let id = self.len() as u32;
        self.rows.push(v);
        self.keys.push(key);
        self.ids.insert(key, id);
        self.levels.push(level as u8);
        self.upper.push(Vec::new());
    }

    pub(crate) fn unpadded(&self, id: u32) -> &[f32] {
        &self.rows.row(id)[..self.params.dimension]
    }
}
