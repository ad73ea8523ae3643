//! Errors of the engine.

use std::path::PathBuf;

use thiserror::Error;
use xaeroflux_core::{EventDecodeError, GroupId};

/// Result alias of the engine.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in the engine.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum Error {
    /// The payload is larger than the largest inline size class.
    #[error("payload of {len} bytes exceeds the maximum of {max} bytes")]
    PayloadTooLarge {
        /// Payload length.
        len: usize,
        /// Largest accepted payload.
        max: usize,
    },
    /// An empty payload.
    #[error("payload is empty")]
    EmptyPayload,
    /// Event types `0..=255` are reserved for system events.
    #[error("event type {event_type} is reserved for system events (0..=255)")]
    ReservedEventType {
        /// The rejected type.
        event_type: u32,
    },
    /// The payload of a reserved type does not decode as its feature's format (an
    /// attachment of type 64 that `Attachment::decode` refuses).
    #[error("payload of reserved event type {event_type} does not decode")]
    InvalidReservedPayload {
        /// The event type.
        event_type: u32,
    },
    /// The group is not known to this node.
    #[error("unknown group {group}")]
    UnknownGroup {
        /// The group id.
        group: GroupId,
    },
    /// `try_write_event` found the ring full.
    #[error("write would block: the {class:?} ring is full")]
    WouldBlock {
        /// The full ring's size class.
        class: xaeroflux_core::SizeClass,
    },
    /// An earlier storage failure stopped the writer; reopen the store.
    #[error("store is poisoned by an earlier failure ({reason}); reopen it")]
    Poisoned {
        /// What failed.
        reason: String,
    },
    /// Another process (or handle) has the data directory open.
    #[error("data directory {path} is in use by another process")]
    Locked {
        /// The data directory.
        path: PathBuf,
    },
    /// Invalid configuration.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The network layer failed (endpoint, ticket, peer).
    #[error("network: {0}")]
    Network(String),
    /// The store was closed.
    #[error("store is closed")]
    Closed,
    /// The on-disk format is newer than this build understands.
    #[error("store format version {found} is not supported (this build reads {supported})")]
    UnsupportedFormat {
        /// Version on disk.
        found: u32,
        /// Version this build writes.
        supported: u32,
    },
    /// The files are not a XaeroFlux store, or are damaged.
    #[error("corrupt store at {path}: {reason}")]
    Corrupt {
        /// Which file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A stored event does not decode.
    #[error("stored event at local sequence {local_seq} is corrupt")]
    CorruptEvent {
        /// Position in the store.
        local_seq: u64,
        /// Decoder error.
        #[source]
        source: EventDecodeError,
    },
    /// A stored block of events is damaged.
    #[error("stored event block at local sequence {first_local} is corrupt")]
    CorruptBlock {
        /// Local sequence of the block's first event.
        first_local: u64,
        /// Decoder error.
        #[source]
        source: xaeroflux_core::BlockError,
    },
    /// A table holds an entry that cannot be right (bad key or value, a gap).
    #[error("table {table} is corrupt: {reason}")]
    CorruptTable {
        /// The LMDB table.
        table: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// The disk or the LMDB map is full.
    #[error("storage is full: {0}")]
    Full(String),
    /// A verified batch from a sync session does not have the shape the engine stores
    /// (another log's key, checkpoint or event; seqs past its checkpoint; ...).
    #[error("verified batch refused: {reason}")]
    BatchRefused {
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The system's random number generator failed (generating a group secret).
    #[error("random number generator")]
    Rng(#[source] getrandom::Error),
    /// The ring buffers refused (creating them or a write).
    #[error("event bus")]
    Bus(#[source] xaeroflux_core::bus::BusError),
    /// A thread of the storage writer could not be started or stopped unexpectedly.
    #[error("storage writer thread {thread} is not running")]
    WriterThread {
        /// Which thread.
        thread: &'static str,
    },
    /// An internal invariant of the storage writer does not hold (a bug, not bad
    /// input); the store is poisoned.
    #[error("storage writer invariant: {what}")]
    Invariant {
        /// What does not hold.
        what: String,
    },
    /// An MMR operation failed.
    #[error("merkle mountain range: {0}")]
    Mmr(String),
    /// Fork evidence that does not prove a fork.
    #[error("invalid fork evidence: {0}")]
    ForkEvidence(String),
    /// A checkpoint is malformed or its signature does not verify.
    #[error("checkpoint")]
    Checkpoint(#[source] xaeroflux_core::CheckpointError),
    /// LMDB failed.
    #[error("lmdb")]
    Lmdb(#[from] heed::Error),
    /// Identity/key file failure.
    #[error("identity")]
    Identity(#[from] xaeroid::KeyFileError),
    /// Vector search failed or refused a query.
    #[error("vector search")]
    Vector(#[source] xaeroflux_vector::SearchError),
    /// File system failure.
    #[error("i/o on {path}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The failure.
        #[source]
        source: std::io::Error,
    },
}

impl From<xaeroflux_core::mmr::MmrError> for Error {
    /// Keeps the engine error behind a failed node store (e.g. a corrupt page).
    fn from(e: xaeroflux_core::mmr::MmrError) -> Self {
        match e {
            xaeroflux_core::mmr::MmrError::Store(inner) => match inner.downcast::<Error>() {
                Ok(inner) => *inner,
                Err(other) => Error::Mmr(format!("mmr store failed: {other}")),
            },
            e => Error::Mmr(e.to_string()),
        }
    }
}

impl From<xaeroflux_vector::SearchError> for Error {
    fn from(e: xaeroflux_vector::SearchError) -> Self {
        Error::Vector(e)
    }
}

impl Error {
    pub(crate) fn invariant(what: String) -> Error {
        Error::Invariant { what }
    }

    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io { path, source }
    }
}
