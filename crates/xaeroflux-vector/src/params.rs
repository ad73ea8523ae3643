//! Construction parameters and the seeded level generator.

use crate::error::{Error, Result};

/// Search breadth used when a caller has no better value: recall@10 ≥ 0.95 on the
/// crate's clustered test set and ~0.99 on MNIST at M = 16.
pub const DEFAULT_EF_SEARCH: usize = 64;

/// Largest supported dimension.
pub const MAX_DIMENSION: usize = 65_536;

/// Largest supported `max_connections` (level-0 lists hold `2 * M` ids).
pub const MAX_CONNECTIONS: usize = 256;

/// Largest supported `max_layer` (levels are stored as one byte).
pub const MAX_LAYER: usize = 64;

/// Similarity measure of an index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Metric {
    /// Cosine similarity: vectors are normalised once at insert, then compared by
    /// inner product. Similarities are in `[-1, 1]`.
    #[default]
    Cosine,
    /// Squared Euclidean distance; a hit's similarity is the negated squared distance.
    L2,
}

impl Metric {
    pub(crate) fn code(self) -> u8 {
        match self {
            Metric::Cosine => 0,
            Metric::L2 => 1,
        }
    }

    pub(crate) fn from_code(code: u8) -> Option<Self> {
        match code {
            0 => Some(Metric::Cosine),
            1 => Some(Metric::L2),
            _ => None,
        }
    }
}

/// Parameters of an [`HnswIndex`](crate::HnswIndex). Start from [`HnswParams::new`]
/// and adjust fields.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct HnswParams {
    /// Number of components per vector (1 ..= 65,536).
    pub dimension: usize,
    /// Similarity measure. Default: cosine.
    pub metric: Metric,
    /// `M` of the paper: links per node on upper layers; layer 0 keeps `2 * M`.
    /// Default 16 (2 ..= 256).
    pub max_connections: usize,
    /// Expected number of vectors: storage for this many is reserved up front (capped at
    /// 1 GiB). A soft capacity: the index grows past it.
    pub max_elements: usize,
    /// Highest layer a node may be drawn for (1 ..= 64). Default 16, far above the
    /// `ln(n) / ln(M)` layers a random draw reaches.
    pub max_layer: usize,
    /// Candidate list size while inserting. Default 200; raised to `M` if lower.
    pub ef_construction: usize,
    /// Seed of the level generator: the same seed and insert order build the same graph.
    pub seed: u64,
}

impl HnswParams {
    /// Defaults for `dimension`: cosine, M = 16, 10,000 expected vectors, max layer 16,
    /// ef_construction = 200, a fixed seed.
    pub fn new(dimension: usize) -> Self {
        Self {
            dimension,
            metric: Metric::Cosine,
            max_connections: 16,
            max_elements: 10_000,
            max_layer: 16,
            ef_construction: 200,
            seed: 0x5eed_0fa1_10ca_fe00,
        }
    }

    pub(crate) fn validate(&self) -> Result<()> {
        let bad = |name, reason| Err(Error::InvalidParams { name, reason });
        if self.dimension == 0 || self.dimension > MAX_DIMENSION {
            return bad("dimension", "must be in 1..=65536");
        }
        if self.max_connections < 2 || self.max_connections > MAX_CONNECTIONS {
            return bad("max_connections", "must be in 2..=256");
        }
        if self.max_layer == 0 || self.max_layer > MAX_LAYER {
            return bad("max_layer", "must be in 1..=64");
        }
        if self.ef_construction == 0 || self.ef_construction > u32::MAX as usize {
            return bad("ef_construction", "must be in 1..=u32::MAX");
        }
        Ok(())
    }
}

/// SplitMix64 (Steele, Lea & Flood 2014): tiny, seedable, and its whole state is one
/// `u64`, which the index file stores so a reloaded index keeps drawing the same levels.
#[derive(Debug, Clone)]
pub(crate) struct SplitMix64 {
    pub(crate) state: u64,
}

impl SplitMix64 {
    pub(crate) fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `(0, 1]`, so its logarithm is finite.
    pub(crate) fn next_unit(&mut self) -> f64 {
        ((self.next_u64() >> 11) + 1) as f64 / (1u64 << 53) as f64
    }

    /// The paper's level draw: `floor(-ln(U) * mL)` with `mL = 1 / ln(M)`, capped.
    pub(crate) fn draw_level(&mut self, m: usize, max_layer: usize) -> usize {
        let ml = 1.0 / (m as f64).ln();
        let level = (-self.next_unit().ln() * ml).floor();
        (level as usize).min(max_layer)
    }
}
