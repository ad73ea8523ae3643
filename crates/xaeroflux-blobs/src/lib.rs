//! Large payloads for XaeroFlux: BLAKE3-verified blobs over iroh-blobs.
//!
//! An event carries at most 16 KiB. Larger content (images, PDFs, recordings) is added
//! to a [`Blobs`] store, which returns a [`BlobRef`] (hash and size); an event of type
//! [`BLOB_REF_EVENT_TYPE`] carries it as an [`Attachment`] (byte layout in
//! `docs/FORMAT.md`, "Blob references"). Peers of the group fetch the blob from a peer
//! that holds it with [`Blobs::fetch`]: iroh-blobs streams it with bao verification
//! (every 16 KiB group is checked against the hash before it is stored), asks only for
//! the ranges not yet here (so an interrupted transfer resumes, also after a restart),
//! and the serving side asks an [`Authorizer`] on every request (so only members of a
//! group that references the blob get it). [`FetchPolicies`] decides per group which
//! blobs to fetch eagerly; [`Blobs::gc`] releases blobs nothing references after a grace
//! period.
//!
//! ```no_run
//! # async fn demo(endpoint: iroh::Endpoint, peer: iroh::EndpointAddr) -> anyhow::Result<()> {
//! use std::sync::Arc;
//! use xaeroflux_blobs::{Attachment, Blobs, BlobsOptions, GroupAccess};
//!
//! let blobs = Blobs::open("/tmp/xf/blobs", BlobsOptions::default()).await?;
//! let blob = blobs.add_blob_path("report.pdf").await?;
//! let payload = Attachment::new(blob, "report.pdf")?.encode()?; // event type 64
//!
//! // Serve: register on the node's router under iroh_blobs::ALPN.
//! let access = Arc::new(GroupAccess::new());
//! let _handler = blobs.protocol(access.clone());
//!
//! // On a peer that received the event:
//! let got = Attachment::decode(&payload)?;
//! blobs.fetch(&endpoint, peer, got.blob, |p| println!("{} bytes", p.received)).await?;
//! blobs.export(&got.blob.hash, "report.pdf").await?;
//! # Ok(()) }
//! ```

pub mod access;
/// The `BlobRef` and `Attachment` codec (it lives in `xaeroflux-core`, which the store
/// and the sync protocol use to check attachment events).
pub mod blob_ref {
    pub use xaeroflux_core::blob_ref::*;
}
#[cfg(feature = "store")]
mod error;
pub mod gc;
pub mod policy;
#[cfg(feature = "store")]
mod serve;
#[cfg(feature = "store")]
mod store;

pub use access::{Authorizer, GroupAccess, GroupId, PeerId};
pub use blob_ref::{Attachment, BLOB_REF_EVENT_TYPE, BLOB_REF_LEN, BlobHash, BlobRef, DecodeError};
#[cfg(feature = "store")]
pub use error::{FetchError, OpenError, StoreError};
pub use gc::GcState;
#[cfg(feature = "store")]
pub use iroh_blobs::ALPN;
pub use policy::{FetchDecision, FetchPolicies, FetchPolicy};
#[cfg(feature = "store")]
pub use store::{BlobInfo, Blobs, BlobsOptions, FetchProgress, FetchStats, GcReport};
