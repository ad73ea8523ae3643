//! XaeroFlux storage engine: the LMDB store, its writer thread, reads, verify,
//! subscriptions and the sync host, with no networking (no iroh, no tokio).
//!
//! Applications usually depend on the `xaeroflux` crate, which composes this engine
//! with networking and vector search; a store-only program can depend on this crate
//! alone. See `docs/ARCHITECTURE.md` for the crates and the path of a write.
//!
//! Events are handed to lock-free size-classed ring buffers; one storage writer thread
//! persists them in LMDB with group commit, content-addressed by BLAKE3, indexed by
//! author log, type and time, and covered by Merkle Mountain Ranges (one per author
//! log, signed with the author's post-quantum XaeroID once per commit, and one over the
//! whole store).
//!
//! ```
//! use xaeroflux_store::Engine;
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = tempfile::tempdir()?;
//! let store = Engine::builder(dir.path()).open()?;
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
mod options;
mod read;
mod store;
mod subscribe;
mod sync_host;
mod system;
mod verify;

pub use checkpoints::CheckpointOutcome;
pub use engine::{Engine, EngineBuilder};
pub use error::{Error, Result};
pub use options::{Capacities, CommitPolicy, Durability, Options, default_data_dir};
pub use read::{Snapshot, StoredEvent, event_leaf_hash};
pub use store::FORMAT_VERSION;
pub use subscribe::{
    CommittedEvent, Filter, NextEvent, Observable, READ_AHEAD, Start, Subscription,
};
pub use sync_host::SyncNode;
pub use system::{NextSystemEvent, SYSTEM_QUEUE, SystemEvent, SystemPublisher, SystemSubscription};
pub use verify::{Stats, VerifyReport};
