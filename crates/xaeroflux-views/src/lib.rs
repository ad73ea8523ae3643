//! App state for XaeroFlux: keyed records with per-field last-writer-wins, deletes,
//! relations, materialized views with a state root, and change subscriptions.
//!
//! Applications write *operations* (put, patch, delete, link, unlink) as events of the
//! reserved type [`RECORD_OP_TYPE`] (32). Every peer folds the operations of a group
//! into the same state, whatever order they arrived in, because every merge rule uses
//! the store's total order `(hlc, author, seq)`:
//!
//! - a field's value is its highest write; a put replaces the record, a patch changes
//!   only its fields;
//! - a delete is ordered like any write: writes ordered before it are gone, a patch
//!   ordered after it brings the record back with only the fields written after it;
//! - a relation takes its highest link or unlink and is hidden when either end was
//!   deleted after it was made.
//!
//! Field values are a small typed [`Value`] model with one canonical encoding (so that
//! the state root hashes the same bytes everywhere). The pure fold ([`State`]) has no
//! I/O; [`Views`] (feature `store`, default) keeps the same state in LMDB, maintained
//! from the store's committed stream, crash-consistent with the log, with queries of
//! the present and the past, a state root per group, and change subscriptions. Formats
//! are in `docs/FORMAT.md` ("State views").
//!
//! ```
//! # #[cfg(feature = "store")]
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use xaeroflux::XaeroFlux;
//! use xaeroflux_views::{Value, Views, ViewsConfig};
//!
//! let dir = tempfile::tempdir()?;
//! let store = Arc::new(XaeroFlux::builder(dir.path()).offline().open()?);
//! let views = Views::open(store.clone(), ViewsConfig::new(dir.path().join("views")))?;
//! let g = store.default_group();
//! views.put(&g, ("cards", "c1"), [("title".to_string(), Value::from("Write docs"))].into())?;
//! views.link(&g, ("cards", "c1"), "on", ("boards", "b1"))?;
//! views.set(&g, ("cards", "c1"), "done", true)?;
//! views.flush()?; // durable and applied
//! let card = views.get(&g, ("cards", "c1"))?.expect("exists");
//! assert_eq!(card["done"], Value::Bool(true));
//! assert_eq!(views.links_to(&g, ("boards", "b1"))?.len(), 1);
//! let root = views.state_root(&g)?; // equal on every peer with the same operations
//! # let _ = root;
//! # Ok(()) }
//! # #[cfg(not(feature = "store"))]
//! # fn main() {}
//! ```
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

mod fold;
mod keys;
mod op;
mod record;
mod root;
#[cfg(feature = "store")]
mod store;
mod value;

pub use fold::{Change, Link, State};
pub use op::{
    Fields, MAX_COLLECTION, MAX_KEY, MAX_NAME, OP_VERSION, Op, OpError, RECORD_OP_TYPE, RecordRef,
};
pub use record::{EDGE_STATE_LEN, EdgeState, FieldState, RecordState, STAMP_LEN, Stamp};
#[cfg(feature = "store")]
pub use store::{
    CHANGE_QUEUE, ChangeFilter, ChangeStream, Result, VIEWS_FORMAT_VERSION, ViewError, ViewLoad,
    ViewStats, Views, ViewsConfig,
};
pub use value::{MAX_DEPTH, Value, ValueError};
