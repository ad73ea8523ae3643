//! XaeroFlux: an embeddable, offline-first event store.
//!
//! This crate is what applications depend on: [`XaeroFlux`] composes the storage
//! engine (`xaeroflux-store`, re-exported here), peer-to-peer sync over iroh QUIC
//! (`xaeroflux-net`) and vector search (`xaeroflux-vector`). A program that needs only
//! the store can depend on `xaeroflux-store` alone (no iroh, no tokio).
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

mod access;
mod blobs;
mod flux;
mod network;
mod sealing;
mod vector;

pub use access::{AccessError, AccessResult};
pub use blobs::{BLOBS_DIR, BlobError, BlobNode, BlobOptions, PROGRESS_EVERY};
pub use flux::{Builder, XaeroFlux};
pub use network::{
    DEFAULT_NET_THREADS, KnownPeer, NET_DIR, NetConfig, NetworkOptions, PeerAddr, PeerInfo, Ticket,
    Traffic, known_peers,
};
pub use sealing::is_sealed_type;
pub use vector::{
    IndexLoad, ProgressFn, VECTOR_INDEX_FILE, VectorFilter, VectorHit, VectorIndexInfo,
    VectorMatch, VectorProgress, VectorSearchConfig, VectorSearchError, VectorStats,
    vector_index_info,
};
pub use xaeroflux_access as access_control;
pub use xaeroflux_blobs as blob_store;
pub use xaeroflux_core::mmr::MerkleProof;
pub use xaeroflux_core::{
    AuthorId, Event, EventId, EventRef, Group, GroupId, GroupSecret, Hlc, SignedCheckpoint,
};
pub use xaeroflux_store::{
    Capacities, CheckpointOutcome, CommitPolicy, CommittedEvent, Durability, Engine, EngineBuilder,
    Error, FORMAT_VERSION, Filter, NextEvent, NextSystemEvent, Observable, Options, READ_AHEAD,
    Result, SYSTEM_QUEUE, Snapshot, Start, Stats, StoredEvent, Subscription, SyncNode, SystemEvent,
    SystemPublisher, SystemSubscription, VerifyReport, default_data_dir, event_leaf_hash,
};
pub use xaeroflux_vector::{
    Error as VectorIndexError, Metric, NgramTextExtractor, VectorExtractor,
};
pub use xaeroid::{IdHash, XaeroID, XaeroKeypair};
