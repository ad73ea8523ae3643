//! XaeroFlux: an embeddable, offline-first event store.
//!
//! Applications write small events; XaeroFlux hands them to lock-free size-classed ring
//! buffers, and one storage writer thread persists them in LMDB with group commit,
//! content-addressed by BLAKE3, indexed by author log, type and time, and covered by
//! Merkle Mountain Ranges (one per author log, signed with the author's post-quantum
//! XaeroID once per commit, and one over the whole store).
//!
//! ```
//! use xaeroflux::XaeroFlux;
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = tempfile::tempdir()?;
//! let store = XaeroFlux::builder(dir.path()).open()?;
//! let id = store.write_event(b"hello", 1000)?;
//! store.flush()?; // durable from here on
//! let event = store.get(&id)?.expect("stored");
//! assert_eq!(event.payload, b"hello");
//! let proof = store.get_mmr_proof(0)?;
//! store.verify_mmr_proof(&id, &proof)?;
//! # Ok(()) }
//! ```
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

mod checkpoints;
mod engine;
mod error;
mod network;
mod options;
mod read;
mod store;
mod subscribe;
mod sync_host;
mod system;
mod vector;
mod verify;

pub use checkpoints::CheckpointOutcome;
pub use engine::{Builder, RESERVED_FEATURE_TYPES, XaeroFlux};
pub use error::{Error, Result};
pub use network::{
    DEFAULT_NET_THREADS, KnownPeer, NET_DIR, NetConfig, NetworkOptions, PeerAddr, PeerInfo, Ticket,
    Traffic, known_peers,
};
pub use options::{Capacities, CommitPolicy, Durability, Options, default_data_dir};
pub use read::{Snapshot, StoredEvent, event_leaf_hash};
pub use store::FORMAT_VERSION;
pub use subscribe::{
    CommittedEvent, Filter, NextEvent, Observable, READ_AHEAD, Start, Subscription,
};
pub use sync_host::SyncNode;
pub use system::{SYSTEM_QUEUE, SystemEvent, SystemSubscription};
pub use vector::{
    IndexLoad, ProgressFn, VECTOR_INDEX_FILE, VectorFilter, VectorHit, VectorIndexInfo,
    VectorProgress, VectorSearchConfig, VectorSearchError, VectorStats, vector_index_info,
};
pub use verify::{Stats, VerifyReport};
pub use xaeroflux_core::mmr::MerkleProof;
pub use xaeroflux_core::{
    AuthorId, Event, EventId, EventRef, Group, GroupId, GroupSecret, Hlc, SignedCheckpoint,
};
pub use xaeroflux_vector::{
    Error as VectorIndexError, Metric, NgramTextExtractor, VectorExtractor,
};
pub use xaeroid::{IdHash, XaeroID, XaeroKeypair};
