//! Errors of the blob store, one enum per operation family.

use std::path::PathBuf;

use thiserror::Error;

use crate::blob_ref::BlobHash;

/// Opening the store failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum OpenError {
    /// The directory could not be created.
    #[error("cannot create blob directory {path}")]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// iroh-blobs could not load its store.
    #[error("cannot load blob store in {path}")]
    Load {
        /// The directory.
        path: PathBuf,
        /// Cause.
        source: n0_error::AnyError,
    },
}

/// A local store operation (add, export, list, tag, delete) failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The store refused or failed a request.
    #[error("blob store request failed")]
    Request {
        /// Cause.
        #[from]
        source: iroh_blobs::api::RequestError,
    },
    /// The store's actor is gone (shut down or crashed).
    #[error("blob store is not running")]
    Rpc {
        /// Cause.
        #[from]
        source: irpc::Error,
    },
    /// A store-level error.
    #[error("blob store error")]
    Api {
        /// Cause.
        #[from]
        source: iroh_blobs::api::Error,
    },
    /// The blob is not (completely) here.
    #[error("blob {hash} is not complete in the local store")]
    NotComplete {
        /// The blob.
        hash: BlobHash,
    },
}

/// Fetching a blob from a peer failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum FetchError {
    /// Could not connect to the peer.
    #[error("cannot connect to the peer")]
    Connect {
        /// Cause.
        source: iroh::endpoint::ConnectError,
    },
    /// The peer refused the request (we are not a member of a group that references it,
    /// or it does not serve us).
    #[error("peer refused to serve blob {hash}")]
    Refused {
        /// The blob.
        hash: BlobHash,
    },
    /// The peer sent data that does not hash to the requested root: refused, nothing of it
    /// is kept beyond the chunks that verified.
    #[error("peer sent data for blob {hash} that fails verification")]
    Corrupt {
        /// The blob.
        hash: BlobHash,
        /// Cause.
        source: iroh_blobs::get::GetError,
    },
    /// The peer offered more bytes than the reference claims.
    #[error("blob {hash} is larger than its reference claims ({claimed} bytes)")]
    LargerThanClaimed {
        /// The blob.
        hash: BlobHash,
        /// The size the reference claims.
        claimed: u64,
    },
    /// The blob arrived but its size differs from the reference.
    #[error("blob {hash} has {actual} bytes, its reference claims {claimed}")]
    SizeMismatch {
        /// The blob.
        hash: BlobHash,
        /// The size the reference claims.
        claimed: u64,
        /// The verified size.
        actual: u64,
    },
    /// The transfer ended early (connection lost, peer without the blob, ...).
    #[error("transfer of blob {hash} failed")]
    Transfer {
        /// The blob.
        hash: BlobHash,
        /// Cause.
        source: iroh_blobs::get::GetError,
    },
    /// The local store failed.
    #[error("local store failed during fetch")]
    Store {
        /// Cause.
        #[from]
        source: StoreError,
    },
}
