//! App state for XaeroFlux: keyed records with per-field last-writer-wins, deletes,
//! relations, materialized views with a state root, and change subscriptions.
//!
//! Applications write *operations* (put, patch, delete, link, unlink) as events of the
//! reserved type [`RECORD_OP_TYPE`]; every peer folds the operations of a group into
//! the same state, whatever order they arrived in, because every merge rule uses the
//! store's total order `(hlc, author, seq)` (see [`record`](RecordState) for the rules).
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

mod fold;
mod keys;
mod op;
mod record;
mod root;
mod value;

pub use fold::{Change, Link, State};
pub use op::{
    Fields, MAX_COLLECTION, MAX_KEY, MAX_NAME, OP_VERSION, Op, OpError, RECORD_OP_TYPE, RecordRef,
};
pub use record::{EDGE_STATE_LEN, EdgeState, FieldState, RecordState, STAMP_LEN, Stamp};
pub use value::{MAX_DEPTH, Value, ValueError};
