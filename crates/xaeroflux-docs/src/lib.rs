//! Collaborative documents for XaeroFlux: rich text, lists and nested maps that several
//! peers edit at once, merged by the [loro](https://loro.dev) CRDT.
//!
//! An edit is a loro update carried by an event of the reserved type
//! [`DOC_UPDATE_TYPE`] (33), so documents sync, sign and replicate like every other
//! event. The document view ([`Docs`], feature `store`, default) follows the store's
//! committed stream (local edits and synced ones alike), imports every update into the
//! merged document and keeps it on disk with periodic snapshots, crash-consistent with
//! the log like the record views of `xaeroflux-views`. Opening a long-edited document
//! loads its last snapshot and the few updates after it, never its whole history.
//! loro merges any set of updates to the same document, whatever order they arrived
//! in. Formats are in `docs/FORMAT.md` ("Documents").
//!
//! loro is a heavy dependency, so documents are their own crate: a build of the store
//! alone (or with the record views) does not compile it. Without the `store` feature
//! this crate is only the event codec ([`DocUpdate`]), without loro.
//!
//! ```
//! # #[cfg(feature = "store")]
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use xaeroflux::XaeroFlux;
//! use xaeroflux_docs::{Docs, DocsConfig};
//!
//! let dir = tempfile::tempdir()?;
//! let store = Arc::new(XaeroFlux::builder(dir.path()).offline().open()?);
//! let docs = Docs::open(store.clone(), DocsConfig::new(dir.path().join("docs")))?;
//! let g = store.default_group();
//!
//! let mut note = docs.edit(&g, "notes/standup")?;
//! note.text("body").insert(0, "Ship the board app")?;
//! note.list("todo").push("write the README")?;
//! note.map("meta").insert("owner", "ana")?;
//! note.commit()?; // one event, like write_event
//!
//! docs.flush()?; // durable and applied
//! let body = docs.text(&g, "notes/standup", "body")?.expect("written");
//! assert_eq!(body, "Ship the board app");
//! # Ok(()) }
//! # #[cfg(not(feature = "store"))]
//! # fn main() {}
//! ```
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

#[cfg(feature = "store")]
mod store;
mod update;

#[cfg(feature = "store")]
pub use loro;
#[cfg(feature = "store")]
pub use store::{
    CHANGE_QUEUE, DOCS_FORMAT_VERSION, DocChange, DocError, DocInfo, DocStream, Docs, DocsConfig,
    DocsLoad, DocsStats, Document, Result,
};
pub use update::{
    DOC_UPDATE_TYPE, DOC_UPDATE_VERSION, DocUpdate, LORO_MAGIC, MAX_DOC_NAME, MIN_UPDATE,
    UpdateError, validate_name,
};
