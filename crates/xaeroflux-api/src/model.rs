//! The JSON documents of the API: what the routes take and return.
//!
//! Ids (events, groups, authors, endpoints, hashes) are 64 lowercase hex digits.
//! Positions are local sequences: the order in which this node stored events, the
//! resume point of the live stream (`Last-Event-ID`) and of `query` cursors.

mod state;

pub use state::{
    DocJson, DocList, DocQuery, DocSummary, DocTextJson, FieldsRequest, LinkJson, LinkRequest,
    LinksJson, RecordJson, RecordPage, RecordQuery, RecordRefJson, StateRootJson,
    StateWriteResponse, TextEdit, value_from_json, value_to_json,
};

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use xaeroflux::{CommittedEvent, Event, EventId, MerkleProof, SystemEvent};

/// Lowercase hex of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    data_encoding::HEXLOWER.encode(bytes)
}

/// A stored event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct EventJson {
    /// The event id (BLAKE3 of the canonical encoding).
    pub id: String,
    /// Local position on this node (resume the stream after it with `Last-Event-ID`).
    pub position: u64,
    /// The group.
    pub group: String,
    /// The author's id.
    pub author: String,
    /// Position in the author's log of the group.
    pub seq: u64,
    /// Event type.
    #[serde(rename = "type")]
    pub event_type: u32,
    /// Hybrid logical clock: milliseconds since the Unix epoch.
    pub time_ms: u64,
    /// Hybrid logical clock: counter within the millisecond.
    pub time_counter: u16,
    /// Payload length in bytes.
    pub size: usize,
    /// The payload as text, when it is UTF-8.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// The payload, base64 (standard alphabet, padded).
    pub base64: String,
    /// Merkle proof of the event in the node's MMR, when asked for (`?proof=true`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proof: Option<ProofJson>,
}

impl EventJson {
    /// The JSON form of `event` stored at `position`.
    pub fn new(id: &EventId, position: u64, event: &Event) -> Self {
        let h = &event.header;
        EventJson {
            id: id.to_string(),
            position,
            group: h.group.to_string(),
            author: h.author.to_string(),
            seq: h.seq,
            event_type: h.event_type,
            time_ms: h.hlc.millis(),
            time_counter: h.hlc.counter(),
            size: event.payload.len(),
            text: std::str::from_utf8(&event.payload).ok().map(str::to_owned),
            base64: data_encoding::BASE64.encode(&event.payload),
            proof: None,
        }
    }

    /// The JSON form of a committed event.
    pub fn committed(e: &CommittedEvent) -> Self {
        Self::new(&e.id, e.local_seq, &e.event)
    }

    /// As [`EventJson::new`], with the payload decrypted when the event is sealed in an
    /// encrypted group and this node holds its epoch key (else as stored).
    pub fn opened(
        store: &xaeroflux::XaeroFlux,
        id: &EventId,
        position: u64,
        event: &Event,
    ) -> Self {
        match store.plaintext(event) {
            Ok(p) if p.as_ref() != event.payload.as_slice() => {
                let plain = Event {
                    header: event.header,
                    payload: p.into_owned(),
                };
                Self::new(id, position, &plain)
            }
            _ => Self::new(id, position, event),
        }
    }

    /// The payload bytes (decoded from `base64`).
    pub fn payload(&self) -> Option<Vec<u8>> {
        data_encoding::BASE64.decode(self.base64.as_bytes()).ok()
    }
}

/// An inclusion proof of an event in the node-wide Merkle Mountain Range, as checked
/// by the node against its root.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ProofJson {
    /// The event's leaf (its position).
    pub leaf_index: u64,
    /// Leaves of the MMR the proof leads to.
    pub leaf_count: u64,
    /// Proof hashes.
    pub items: Vec<String>,
    /// The root the proof was checked against.
    pub root: String,
    /// Whether the proof verified.
    pub verified: bool,
}

impl ProofJson {
    pub(crate) fn new(p: &MerkleProof, root: [u8; 32], verified: bool) -> Self {
        ProofJson {
            leaf_index: p.leaf_index,
            leaf_count: p.leaf_count,
            items: p.items.iter().map(|h| hex(h)).collect(),
            root: hex(&root),
            verified,
        }
    }
}

/// One event to write. Give the payload as `text` or `base64` (exactly one).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WriteRequest {
    /// The payload as UTF-8 text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// The payload, base64 (standard alphabet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base64: Option<String>,
    /// Event type (256 and above; default 1000).
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub event_type: Option<u32>,
    /// Group id (default: the node's default group).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
}

/// A written event: durable when this is returned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct WriteResponse {
    /// The event id.
    pub id: String,
    /// Its local position.
    pub position: u64,
}

/// A written batch: every event durable, ids in the order of the lines.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct BatchResponse {
    /// Event ids, one per line.
    pub ids: Vec<String>,
}

/// A page of query results.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct QueryResponse {
    /// Matching events in local order.
    pub events: Vec<EventJson>,
    /// The position after the last one examined: pass it as `cursor` for the next page
    /// (also later, to get what arrived since).
    pub next_cursor: u64,
    /// Whether the store held more events past `next_cursor` when this page was read.
    pub more: bool,
}

/// One author log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct LogJson {
    /// Group.
    pub group: String,
    /// Author.
    pub author: String,
    /// Events in the log.
    pub length: u64,
    /// MMR root of the log.
    pub root: String,
}

/// Counts and roots of the store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct StatsJson {
    /// Events stored.
    pub events: u64,
    /// Events per size class (<=64 B, <=256 B, <=1 KiB, <=4 KiB, <=16 KiB).
    pub per_class: Vec<u64>,
    /// Root of the node-wide MMR (`null` while empty).
    pub mmr_root: Option<String>,
    /// Every author log.
    pub logs: Vec<LogJson>,
    /// Bytes of the LMDB files.
    pub lmdb_bytes: u64,
    /// Bytes of the Merkle page file.
    pub merkle_bytes: u64,
}

/// Who this node is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct IdentityJson {
    /// The XaeroID as a DID.
    pub did: String,
    /// Short form of the id.
    pub short: String,
    /// Author id (hash of the public key) used in events.
    pub author: String,
    /// The default group.
    pub default_group: String,
    /// Whether peer-to-peer sync runs.
    pub online: bool,
    /// The network endpoint id, when online.
    pub endpoint: Option<String>,
    /// Direct addresses of the endpoint.
    pub addrs: Vec<String>,
}

/// A group of this node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct GroupJson {
    /// Group id.
    pub id: String,
    /// Whether it is the default group.
    pub default: bool,
    /// Author logs in it.
    pub logs: u64,
    /// Events in it.
    pub events: u64,
}

/// A ticket (or invite) to this node for a group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TicketJson {
    /// The ticket (`xfx1...`).
    pub ticket: String,
    /// Whether it carries the group secret.
    pub invite: bool,
}

/// Join the group of an invite.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JoinRequest {
    /// The invite.
    pub invite: String,
}

/// Connect to the peer of a ticket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConnectRequest {
    /// The ticket.
    pub ticket: String,
}

/// A peer this node dials or has a session with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PeerJson {
    /// Endpoint id.
    pub endpoint: String,
    /// Its identity (DID), once a session authenticated it.
    pub identity: Option<String>,
    /// Direct addresses.
    pub addrs: Vec<String>,
    /// Groups synced with it.
    pub groups: Vec<String>,
    /// Whether it is remembered and redialled.
    pub known: bool,
    /// Whether a session is established.
    pub connected: bool,
    /// Verified events received from it since start.
    pub events_received: u64,
    /// Sync bytes sent to it since start.
    pub bytes_sent: u64,
    /// Sync bytes received from it since start.
    pub bytes_received: u64,
}

/// A similarity search. Give `text` (embedded with the node's n-gram extractor) or a
/// `vector` of the index's dimension.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SearchRequest {
    /// Query text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// Query vector.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vector: Option<Vec<f32>>,
    /// Number of results (default 10, at most 1000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub k: Option<usize>,
    /// Minimum cosine similarity in [-1, 1] (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<f32>,
}

/// One search result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SearchHit {
    /// Cosine similarity to the query.
    pub similarity: f32,
    /// The event.
    pub event: EventJson,
}

/// The state of a verification job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct VerifyJob {
    /// Job number (increases with each start).
    pub job: u64,
    /// `running`, `ok` or `failed`.
    pub state: String,
    /// Events re-hashed so far.
    pub done: u64,
    /// Events to re-hash.
    pub total: u64,
    /// Log roots recomputed (when `ok`).
    pub logs: Option<u64>,
    /// Checkpoint signatures verified (when `ok`).
    pub checkpoints: Option<u64>,
    /// What failed (when `failed`).
    pub error: Option<String>,
}

/// Liveness.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Health {
    /// Always `ok`.
    pub status: String,
}

/// A system event (the `system` stream).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SystemEventJson {
    /// The store opened.
    StoreOpened {
        /// Events stored.
        events: u64,
    },
    /// Everything below `committed` is durable.
    FlushCompleted {
        /// The committed watermark.
        committed: u64,
    },
    /// An author signed two roots for one log length.
    ForkDetected {
        /// Group.
        group: String,
        /// Author.
        author: String,
        /// Length with two roots.
        length: u64,
    },
    /// The storage writer failed.
    WriterFailed {
        /// What failed.
        reason: String,
    },
    /// A sync session started.
    PeerConnected {
        /// Peer identity (DID).
        peer: String,
        /// Endpoint id.
        endpoint: String,
        /// Group.
        group: String,
    },
    /// A sync session ended.
    PeerDisconnected {
        /// Endpoint id.
        endpoint: String,
        /// Why.
        reason: String,
    },
    /// A peer was refused.
    PeerRejected {
        /// Endpoint id.
        endpoint: String,
        /// Wire error code.
        code: u16,
        /// Why.
        why: String,
    },
    /// Verified events arrived from a peer.
    SyncProgress {
        /// Endpoint id.
        endpoint: String,
        /// Group.
        group: String,
        /// Events in the batch.
        events: u64,
        /// Their bytes.
        bytes: u64,
    },
    /// The subscriber lost this many system events.
    Missed {
        /// How many.
        count: u64,
    },
    /// A kind this version does not name.
    Other {
        /// Debug form.
        detail: String,
    },
}

impl From<&SystemEvent> for SystemEventJson {
    fn from(e: &SystemEvent) -> Self {
        match e {
            SystemEvent::StoreOpened { events } => Self::StoreOpened { events: *events },
            SystemEvent::FlushCompleted { committed } => Self::FlushCompleted {
                committed: *committed,
            },
            SystemEvent::ForkDetected {
                group,
                author,
                length,
            } => Self::ForkDetected {
                group: group.to_string(),
                author: author.to_string(),
                length: *length,
            },
            SystemEvent::WriterFailed { reason } => Self::WriterFailed {
                reason: reason.clone(),
            },
            SystemEvent::PeerConnected {
                peer,
                endpoint,
                group,
            } => Self::PeerConnected {
                peer: peer.to_did(),
                endpoint: hex(endpoint),
                group: group.to_string(),
            },
            SystemEvent::PeerDisconnected {
                endpoint, reason, ..
            } => Self::PeerDisconnected {
                endpoint: hex(endpoint),
                reason: reason.clone(),
            },
            SystemEvent::PeerRejected {
                endpoint,
                code,
                why,
                ..
            } => Self::PeerRejected {
                endpoint: hex(endpoint),
                code: *code,
                why: why.clone(),
            },
            SystemEvent::SyncProgress {
                endpoint,
                group,
                events,
                bytes,
            } => Self::SyncProgress {
                endpoint: hex(endpoint),
                group: group.to_string(),
                events: *events,
                bytes: *bytes,
            },
            SystemEvent::Missed { count } => Self::Missed { count: *count },
            other => Self::Other {
                detail: format!("{other:?}"),
            },
        }
    }
}

/// Filters and page of `GET /v1/events`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct QueryParams {
    /// Only this group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Only this event type.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    #[param(rename = "type")]
    pub event_type: Option<u32>,
    /// Only this author.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    /// Only events at or after this time (ms since the Unix epoch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<u64>,
    /// At most this many events (default 100, at most 1000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<usize>,
    /// Start at this position (`next_cursor` of the previous page; default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<u64>,
}
