//! Errors of the vector index.

use std::io;

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything the index can refuse or fail at.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A vector or query has the wrong number of components.
    #[error("vector has dimension {got}, index has {expected}")]
    DimensionMismatch {
        /// Dimension of the index.
        expected: usize,
        /// Dimension of the rejected vector.
        got: usize,
    },
    /// A component is NaN or infinite.
    #[error("vector component {index} is not finite")]
    NonFinite {
        /// Position of the first offending component.
        index: usize,
    },
    /// A zero vector has no direction, so it has no cosine similarity.
    #[error("zero vector cannot be normalised for cosine similarity")]
    ZeroVector,
    /// `k` must be at least 1.
    #[error("k must be at least 1")]
    ZeroK,
    /// A similarity threshold outside `[-1, 1]` (or NaN).
    #[error("similarity threshold {threshold} is outside [-1, 1]")]
    ThresholdOutOfRange {
        /// The rejected threshold.
        threshold: f32,
    },
    /// Thresholds are cosine similarities; an L2 index has none.
    #[error("similarity thresholds need the cosine metric")]
    ThresholdNeedsCosine,
    /// The key is already in the index.
    #[error("key {key} is already indexed")]
    DuplicateKey {
        /// The rejected key.
        key: u64,
    },
    /// The index holds as many vectors as internal `u32` ids allow.
    #[error("index is full ({max} vectors)")]
    Full {
        /// Hard maximum number of vectors.
        max: usize,
    },
    /// Construction parameters out of range.
    #[error("invalid parameter {name}: {reason}")]
    InvalidParams {
        /// Parameter name.
        name: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A thread panicked while holding the index lock; the index refuses further use.
    #[error("index lock poisoned by a panicked thread")]
    Poisoned,
    /// The index file could not be decoded.
    #[error("corrupt index file")]
    Format(#[from] FormatError),
    /// Reading or writing the index file failed.
    #[error("index file i/o")]
    Io(#[from] io::Error),
}

/// Why an index file was rejected. Every check runs before the allocation it guards.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FormatError {
    /// The file does not start with the index magic.
    #[error("not a xaeroflux vector index (bad magic)")]
    BadMagic,
    /// The file was written by an unknown format version.
    #[error("unsupported format version {version}")]
    UnsupportedVersion {
        /// Version found in the header.
        version: u32,
    },
    /// The file is shorter or longer than its header says.
    #[error("file length {len} does not match the {expected} bytes its header implies")]
    LengthMismatch {
        /// Actual length.
        len: u64,
        /// Length the header implies (saturated on overflow).
        expected: u64,
    },
    /// The BLAKE3 checksum does not match the content.
    #[error("checksum mismatch")]
    Checksum,
    /// A structural invariant does not hold (checked after the checksum passed).
    #[error("invalid content: {reason}")]
    Invalid {
        /// The invariant that failed.
        reason: &'static str,
    },
}

/// Failures of the vector search service of a store (re-exported by `xaeroflux` as
/// `VectorSearchError`).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SearchError {
    /// `search_*` or `vector_search_stats` before `start_vector_search`.
    #[error("vector search is not started")]
    NotStarted,
    /// `start_vector_search` twice.
    #[error("vector search is already started")]
    AlreadyStarted,
    /// No extractor registered.
    #[error("no extractors registered")]
    NoExtractors,
    /// A configuration value out of range.
    #[error("invalid vector search config {name}: {reason}")]
    InvalidConfig {
        /// The field.
        name: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The index refused a query (wrong dimension, NaN/inf, zero vector, `k = 0`,
    /// threshold outside `[-1, 1]`) or failed.
    #[error("vector index")]
    Index(#[from] Error),
    /// The indexer thread could not be started.
    #[error("indexer thread")]
    Thread(#[source] std::io::Error),
}
