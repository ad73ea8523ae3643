//! What a transport needs from the node it syncs: the seam between the network layer
//! (`xaeroflux-net`, iroh) and the engine (`xaeroflux`, LMDB).
//!
//! The engine implements [`SyncHost`] over its store; tests implement it over
//! [`crate::MemLogs`]. Everything here is synchronous: the transport calls the blocking
//! methods from a blocking context (a dedicated thread or `spawn_blocking`).

use std::sync::Arc;
use std::time::Duration;

use xaeroflux_core::mmr::Hash32;
use xaeroflux_core::{AuthorId, EventId, Group, GroupId, SignedCheckpoint};
use xaeroid::{IdHash, XaeroID, XaeroKeypair};

use crate::events::EventList;
use crate::log::LogView;
use crate::proto::{ErrorCode, SystemEvent};

/// A batch of one author log that a session verified against a signed checkpoint
/// (what [`crate::Output::StoreVerified`] carries).
#[derive(Debug, Clone)]
pub struct VerifiedBatch {
    /// The group.
    pub group: GroupId,
    /// The log's author.
    pub author: AuthorId,
    /// The author's public key (to store if new).
    pub author_key: XaeroID,
    /// Seq of the first event.
    pub first_seq: u64,
    /// The id (BLAKE3) of each event of `events`, in order. The session computes them
    /// while verifying the batch; a host may use them instead of hashing again, so
    /// whoever builds a batch must keep `ids[i]` the id of `events[i]`.
    pub ids: Vec<EventId>,
    /// Canonical encodings, verified, contiguous seqs from `first_seq`.
    pub events: EventList,
    /// The signed checkpoint the batch was proven against (length >= batch end).
    pub checkpoint: Box<SignedCheckpoint>,
    /// Root of the log's first `first_seq` events, the prefix the batch was verified
    /// on (`None` when `first_seq` is 0). A store extends a log with the batch only if
    /// its own prefix has this root: a batch verified on another branch (two sessions
    /// fetching from peers that hold different histories) must not extend this one.
    pub prefix_root: Option<Hash32>,
}

/// Events of one author log that were committed together, with the checkpoint that
/// covers them: what [`crate::Input::LocalCommitted`] carries to every session of the
/// log's group (local writes, and verified remote events to relay). The events
/// themselves stay in the store: a session reads them only if its peer lacks them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommittedBatch {
    /// Seq of the first event.
    pub first_seq: u64,
    /// Number of events (contiguous seqs).
    pub count: u64,
    /// The log's checkpoint after the commit (its group and author name the log).
    pub checkpoint: Box<SignedCheckpoint>,
}

impl CommittedBatch {
    /// The session input announcing this batch.
    pub fn input(&self) -> crate::Input {
        crate::Input::LocalCommitted {
            first_seq: self.first_seq,
            count: self.count,
            checkpoint: self.checkpoint.clone(),
        }
    }
}

/// Why a host call failed.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum HostError {
    /// The node is closing or closed.
    #[error("the node is closed")]
    Closed,
    /// The local store failed: a read during [`SyncHost::read_logs`], or the write
    /// path refused a batch (writer poisoned, disk full, ...). The source is the
    /// store's own error, kept with its type (a host downcasts it to read it).
    #[error("local store failure")]
    Store(#[source] Arc<dyn std::error::Error + Send + Sync + 'static>),
}

impl HostError {
    /// A [`HostError::Store`] with `source` as its cause.
    pub fn store(source: impl std::error::Error + Send + Sync + 'static) -> Self {
        HostError::Store(Arc::new(source))
    }
}

/// Two `Closed` are equal; two `Store` errors are equal when they share one source
/// (clones of one error), as the source types need not be comparable.
impl PartialEq for HostError {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (HostError::Closed, HostError::Closed) => true,
            (HostError::Store(a), HostError::Store(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }
}

impl Eq for HostError {}

/// Connection-level and session-level events the transport reports to the host.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PeerEvent {
    /// A session finished its handshake.
    Connected {
        /// The peer's identity.
        peer: IdHash,
        /// The peer's public key, verified by the handshake. A host that keeps it (as
        /// an author key) lets later Hellos name it by id only
        /// ([`crate::SessionConfig::short_hello`]).
        key: XaeroID,
        /// The peer's endpoint (iroh node id).
        endpoint: [u8; 32],
        /// The group of the session.
        group: GroupId,
    },
    /// A session ended (closed by either side, timed out or the connection dropped).
    Disconnected {
        /// The peer's identity, if the handshake completed.
        peer: Option<IdHash>,
        /// The peer's endpoint.
        endpoint: [u8; 32],
        /// The group of the session.
        group: GroupId,
        /// Why, for logs and the application.
        reason: String,
    },
    /// A connection refused before any session started, so no group to name: the
    /// first frame did not decode, was not a Hello or named a group we do not sync,
    /// or nothing arrived before the handshake timeout.
    Refused {
        /// The peer's endpoint (authenticated by TLS, but not a proven member).
        endpoint: [u8; 32],
        /// Why (code, also sent to the peer).
        code: ErrorCode,
        /// Why (text).
        reason: String,
    },
    /// A system event raised by the session state machine (rejection, progress, fork).
    Session {
        /// The peer's endpoint.
        endpoint: [u8; 32],
        /// The group of the session.
        group: GroupId,
        /// The event.
        event: SystemEvent,
    },
}

/// A blocking feed of committed batches (see [`SyncHost::committed_feed`]).
pub trait CommittedFeed: Send {
    /// Waits up to `timeout` for the next batch: `Ok(None)` on timeout,
    /// `Err(HostError::Closed)` once the node is closed. Never skips a batch; a feed
    /// that falls behind catches up from the store.
    fn next_batch(&mut self, timeout: Duration) -> Result<Option<CommittedBatch>, HostError>;

    /// Drops everything committed so far without reading it, for a feed nobody listens
    /// to (no established session): a session established later gets what it missed
    /// from anti-entropy, as it does when its queue overflows. The next batch starts
    /// after the skipped events. The default reads and drops the batches.
    fn skip(&mut self) -> Result<(), HostError> {
        while self.next_batch(Duration::ZERO)?.is_some() {}
        Ok(())
    }
}

/// The node a transport syncs.
pub trait SyncHost: Send + Sync + 'static {
    /// The local identity (signs the handshake).
    fn keypair(&self) -> Arc<XaeroKeypair>;
    /// The groups this node syncs, with their secrets (never sent to peers).
    fn groups(&self) -> Vec<Group>;
    /// Runs `f` on a consistent read view of the author logs (one read transaction).
    ///
    /// `Err(HostError::Store)` if a read of the view failed (or the view could not be
    /// opened): the view then answered what is safe (nothing known, a log whose fork
    /// state could not be read counts as forked), so whatever `f` computed from it must
    /// be dropped. A session ends with [`crate::Session::end_on_store_failure`]. The
    /// host logs the failure and raises its own system event; the caller does not log
    /// it again.
    fn read_logs(&self, f: &mut dyn FnMut(&dyn LogView)) -> Result<(), HostError>;
    /// Hands a verified batch to the storage writer, which applies it in its next group
    /// commit, idempotently and in order. Blocks while the writer's queue is full
    /// (backpressure); returns once queued, not once durable.
    fn store_verified(&self, batch: VerifiedBatch) -> Result<(), HostError>;
    /// Stores fork evidence (two signed checkpoints of one log and length, different
    /// roots); from then on [`LogView::is_forked`] answers `true` for that log.
    fn record_fork(
        &self,
        ours: &SignedCheckpoint,
        theirs: &SignedCheckpoint,
    ) -> Result<(), HostError>;
    /// Batches committed from now on, local and remote, grouped per author log.
    fn committed_feed(&self) -> Result<Box<dyn CommittedFeed>, HostError>;
    /// Reports a peer or session event (the engine turns it into a system event).
    fn peer_event(&self, event: PeerEvent);
}
