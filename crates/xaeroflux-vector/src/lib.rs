//! Approximate nearest-neighbour search for XaeroFlux: an HNSW index over `u64` keys.
//!
//! # Algorithm
//!
//! Hierarchical Navigable Small World graphs: Yu. A. Malkov and D. A. Yashunin,
//! "Efficient and robust approximate nearest neighbor search using Hierarchical
//! Navigable Small World graphs", arXiv:1603.09320 (2016), IEEE TPAMI 42(4), 2018.
//! Every vector becomes a node on layer 0 and, with probability `M^-l`, on layers
//! `1..=l`. A search descends greedily through the sparse upper layers and then runs a
//! best-first search with a candidate list of size `ef` on layer 0 (the paper's
//! Algorithms 2 and 5). Inserts search the same way with `ef_construction` and link
//! the new node to neighbours picked by the diversity heuristic (Algorithm 4); lists
//! that overflow are re-pruned with the same heuristic. The details follow hnswlib,
//! the authors' reference implementation.
//!
//! # Engineering
//!
//! - Cosine similarity is an inner product of vectors normalised once at insert.
//! - Distance kernels use AVX-512 or AVX2 + FMA when the CPU has them (runtime
//!   detection), else a scalar loop ([`simd_level`]).
//! - Vectors live in one 64-byte aligned buffer, level-0 links in one flat `u32` array
//!   of stride `1 + 2M`; the visited set is a generation-stamped `Vec<u32>` reused
//!   across searches.
//! - Searches run concurrently with one writer; see [`HnswIndex`] and `index.rs`.
//! - [`HnswIndex::save`] writes a versioned, BLAKE3-checksummed snapshot atomically;
//!   [`HnswIndex::load`] rejects corrupt files with an error, never a panic.
//!
//! # Example
//!
//! ```
//! use xaeroflux_vector::{HnswIndex, HnswParams, NgramTextExtractor, DEFAULT_EF_SEARCH};
//!
//! # fn main() -> Result<(), xaeroflux_vector::Error> {
//! let embed = NgramTextExtractor::new(256, 3)?;
//! let index = HnswIndex::new(HnswParams::new(embed.dimension()))?;
//! let texts = ["offline-first event store", "vector search", "peer to peer sync"];
//! for (key, text) in texts.iter().enumerate() {
//!     if let Some(v) = embed.embed(text) {
//!         index.insert(key as u64, &v)?;
//!     }
//! }
//! let query = embed.embed("vectors searching").expect("non-empty text");
//! let hits = index.search(&query, 1, DEFAULT_EF_SEARCH)?;
//! assert_eq!(hits[0].key, 1);
//! # Ok(())
//! # }
//! ```

mod distance;
mod error;
mod extractor;
mod graph;
mod index;
mod params;
mod persist;

pub use distance::simd_level;
pub use error::{Error, FormatError, Result, SearchError};
pub use extractor::{NgramTextExtractor, VectorExtractor};
pub use index::{Hit, HnswIndex};
pub use params::{
    DEFAULT_EF_SEARCH, HnswParams, MAX_CONNECTIONS, MAX_DIMENSION, MAX_LAYER, Metric,
};
