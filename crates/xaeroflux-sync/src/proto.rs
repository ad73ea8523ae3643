//! The per-connection session state machine of `xaeroflux/sync/1`.
//!
//! I/O-free in the style of iroh-gossip's `proto::state`: the transport feeds
//! [`Input`]s with the current time and a read-only [`LogView`] of the store, and
//! carries out the [`Output`]s (send bytes, close, hand verified events to the storage
//! writer, raise system events). Nothing here blocks, reads a clock or a socket.
//!
//! Protocol:
//! 1. **Handshake.** The initiator sends `Hello`; the acceptor answers with its own only
//!    after the initiator's verified, so a non-member learns nothing about the acceptor's
//!    groups. A Hello carries a Falcon signature and a group-membership MAC over a
//!    transcript bound to the TLS keying material (see [`handshake`]).
//! 2. **Catch-up.** Both sides send the latest signed checkpoint of every author log of
//!    the group (plus the public keys). For each log where the peer is ahead, the session
//!    requests the missing range, pipelined (bounded in flight). Each `Events` frame is
//!    verified on a copy of the log's MMR frontier: events hash to the ids that, appended
//!    at their seqs (plus a consistency proof to the checkpoint length), reproduce the
//!    root the author signed. Only then is the batch output as [`Output::StoreVerified`].
//! 3. **Live.** Committed events are pushed; a periodic checkpoint exchange (anti-entropy:
//!    changed checkpoints every round, all checkpoints and keys every
//!    `full_anti_entropy_every` rounds) repairs anything a push missed.
//! 4. **Forks.** Two signed roots for one length stop that log (never extended again
//!    through this session), raise [`SystemEvent::ForkDetected`] and are sent to the
//!    peer as `ForkEvidence`.
//!
//! Any protocol violation sends an `Error` frame, closes, and raises
//! [`SystemEvent::PeerRejected`]; nothing the peer sent before verification is output.
//!
//! Bounds (a member must not exhaust a node either): before the handshake the decoder
//! takes only Hello and Error frames of at most 4 KiB; requests are queued (at most
//! [`SessionConfig::max_queued_requests`]) and answered lazily while the unsent output
//! stays under [`SessionConfig::max_response_backlog`] (the transport reports written
//! bytes with [`Input::Drained`]); keys are kept only for checkpoints the session
//! tracks, at most [`SessionConfig::max_session_keys`]; [`Session::memory`] reports
//! what a session holds.
//!
//! Integration notes for the transport and the engine:
//! - one session per (connection, group); an acceptor serving several groups decodes
//!   the first frame with [`crate::FrameDecoder::handshake`], picks the group named by
//!   the Hello (refusing unknown ones exactly like a wrong MAC: [`ErrorCode::BadMac`]
//!   with [`NON_MEMBER_REASON`]), then feeds the same bytes;
//! - the transport reports the bytes it wrote ([`Input::Drained`]) at the latest when
//!   [`Session::has_backlog`] says answers wait for them;
//! - the storage writer applies [`Output::StoreVerified`] batches in order and
//!   idempotently (several sessions may fetch the same range) and may lag: a session
//!   keeps its own verified frontier per log until its requests drain;
//! - [`SystemEvent::ForkDetected`] carries both checkpoints: the engine stores them and
//!   answers `LogView::is_forked` from then on, which every session honours.

mod catchup;
pub mod handshake;
mod keys;
mod limits;
mod serve;

use std::collections::{BTreeMap, BTreeSet, HashSet, VecDeque};
use std::sync::Arc;

use xaeroflux_core::{AuthorId, Group, SignedCheckpoint};
use xaeroid::{IdHash, XaeroID, XaeroKeypair};

use crate::frame::{self, FrameDecoder, FrameError, HelloKey, Message, Request, Role};
use crate::host::VerifiedBatch;
use crate::log::{Frontier, LogView};
pub use handshake::TransportParams;
use handshake::{HelloFault, make_hello, verify_hello};
pub use limits::{MAX_LOGGED_REASON, NON_MEMBER_REASON, SessionMemory, sanitize_reason};

/// Error codes of the `Error` frame and of [`Output::Close`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u16)]
#[non_exhaustive]
pub enum ErrorCode {
    /// Normal close.
    Normal = 0,
    /// A frame or message that does not decode.
    Malformed = 1,
    /// A frame over the size cap.
    FrameTooLarge = 2,
    /// Wrong protocol tag or role in the Hello.
    Protocol = 3,
    /// The Hello is bound to another connection (replay).
    TranscriptMismatch = 4,
    /// The peer syncs another group.
    WrongGroup = 5,
    /// The membership MAC does not verify.
    BadMac = 6,
    /// The Hello signature does not verify.
    BadSignature = 7,
    /// A message that is not allowed in the current state.
    Unexpected = 8,
    /// A checkpoint signature does not verify or names another log.
    BadCheckpoint = 9,
    /// An event does not decode or names another group/author.
    BadEvent = 10,
    /// Events out of sequence.
    SeqGap = 11,
    /// Events do not reproduce the signed root.
    RootMismatch = 12,
    /// An author that may not write to the group.
    Unauthorized = 13,
    /// The handshake or a request took too long.
    Timeout = 14,
    /// A Hello named the sender's key by its id and the receiver does not hold that
    /// key: the sender should send the whole key on its next connection.
    UnknownKey = 15,
    /// The peer has more requests outstanding than the session queues
    /// ([`SessionConfig::max_queued_requests`]).
    TooManyRequests = 16,
    /// The node is at one of its connection or session limits (transport).
    Busy = 17,
    /// The sender's local store failed while serving the session (a read of the logs,
    /// or the write of a verified batch): the session ends; the peer may reconnect
    /// later. Sent by [`Session::end_on_store_failure`].
    StoreFailure = 18,
}

impl ErrorCode {
    /// The wire value.
    pub const fn as_u16(self) -> u16 {
        self as u16
    }
}

/// Tunables of a session, with their defaults.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// The group this session syncs.
    pub group: Group,
    /// Our identity.
    pub keypair: Arc<XaeroKeypair>,
    /// Close if the handshake has not completed after this long. Default 10 s.
    pub handshake_timeout_ms: u64,
    /// Close if the oldest outstanding request is unanswered this long. Default 30 s.
    pub request_timeout_ms: u64,
    /// Period of the checkpoint exchange. Default 1 s.
    pub anti_entropy_interval_ms: u64,
    /// Requests in flight over all logs. Default 16.
    pub max_in_flight: usize,
    /// Requests in flight per log. Default 4.
    pub max_in_flight_per_log: usize,
    /// Events per request. Default 1024.
    pub max_request_events: u64,
    /// Target size of an `Events` frame. Default 256 KiB (< [`crate::MAX_FRAME`]).
    pub target_frame_bytes: usize,
    /// Every this many anti-entropy rounds, advertise all checkpoints again, not only
    /// the changed ones, with their keys (repairs anything lost, whatever the cause).
    /// Default 30.
    pub full_anti_entropy_every: u32,
    /// As initiator, name our key by its id only in the Hello (the peer stored it in
    /// an earlier session); the acceptor answers in the same form. Saves 866 bytes
    /// each way. A peer that lacks the key refuses with [`ErrorCode::UnknownKey`] and
    /// [`Session::key_missed`] tells the caller to send it whole next time. Default
    /// false.
    pub short_hello: bool,
    /// Requests of the peer queued for an answer; one more closes the session with
    /// [`ErrorCode::TooManyRequests`]. Default 64 (an honest peer keeps at most its
    /// `max_in_flight`, 16 by default, outstanding).
    pub max_queued_requests: usize,
    /// Answers are built only while the bytes output and not yet reported written
    /// ([`Input::Drained`]) stay under this, so answers hold at most this plus one
    /// frame. Default 2 MiB.
    pub max_response_backlog: usize,
    /// Public keys learnt from the peer kept at once: only keys of authors whose
    /// checkpoint the session still needs (it will fetch or is fetching that log) and
    /// whose key the store lacks; a checkpoint whose key does not fit is ignored until
    /// the next full anti-entropy round. Default 2048 (about 1.9 MB).
    pub max_session_keys: usize,
}

impl SessionConfig {
    /// Defaults for `group` and `keypair`.
    pub fn new(group: Group, keypair: Arc<XaeroKeypair>) -> Self {
        Self {
            group,
            keypair,
            handshake_timeout_ms: 10_000,
            request_timeout_ms: 30_000,
            anti_entropy_interval_ms: 1_000,
            max_in_flight: 16,
            max_in_flight_per_log: 4,
            max_request_events: 1024,
            target_frame_bytes: 256 * 1024,
            full_anti_entropy_every: 30,
            short_hello: false,
            max_queued_requests: 64,
            max_response_backlog: 2 * 1024 * 1024,
            max_session_keys: 2048,
        }
    }
}

/// Largest range a peer may request at once (bounds the work and memory one request
/// costs the responder).
pub const MAX_REQUEST_SPAN: u64 = 1024;
/// Most verified checkpoint signatures remembered per session.
const VERIFIED_CACHE: usize = 4096;
/// What the transport feeds into a session.
#[derive(Debug, Clone)]
pub enum Input {
    /// The connection is up.
    Connected {
        /// Our role.
        role: Role,
        /// Endpoint ids and keying material.
        params: TransportParams,
    },
    /// Bytes received, in any chunking.
    Frame(Vec<u8>),
    /// Time passed (drives timeouts and anti-entropy).
    Tick,
    /// The transport wrote `bytes` more of the frames the session output (see
    /// [`SessionConfig::max_response_backlog`]). A transport reports every written byte,
    /// at the latest when the session has answers waiting
    /// ([`Session::has_backlog`]); until then answers stall.
    Drained {
        /// Bytes written since the last report.
        bytes: u64,
    },
    /// Events `first_seq..first_seq + count` of one log were committed to the store,
    /// and `checkpoint` covers them (local writes, or anything to relay). The session
    /// reads the events from the store only if it pushes them.
    LocalCommitted {
        /// Seq of the first event.
        first_seq: u64,
        /// Number of events (contiguous seqs).
        count: u64,
        /// The checkpoint of the log after the commit.
        checkpoint: Box<SignedCheckpoint>,
    },
}

/// System events for the application.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SystemEvent {
    /// The peer proved its identity and group membership.
    PeerAuthenticated {
        /// The peer's identity.
        peer: IdHash,
    },
    /// The peer was refused and the connection closed.
    PeerRejected {
        /// Why (code).
        code: ErrorCode,
        /// Why (text).
        why: String,
    },
    /// Verified events received.
    SyncProgress {
        /// Events in this batch.
        events: u64,
        /// Bytes of those events.
        bytes: u64,
    },
    /// An author signed two roots for one length.
    ForkDetected {
        /// The author.
        author: AuthorId,
        /// Our checkpoint (or the first one seen).
        ours: Box<SignedCheckpoint>,
        /// The conflicting one.
        theirs: Box<SignedCheckpoint>,
    },
}

/// What the transport must do.
#[derive(Debug, Clone)]
pub enum Output {
    /// Send these bytes (one whole frame).
    Send(Vec<u8>),
    /// Close the connection.
    Close {
        /// Error code.
        code: ErrorCode,
        /// Reason.
        reason: String,
    },
    /// Hand a verified batch to the storage writer. It must apply it idempotently
    /// (skip events at seqs it already holds, comparing ids; drop a batch that starts
    /// past the log's end) because several sessions may fetch the same range.
    StoreVerified(VerifiedBatch),
    /// A system event.
    Event(SystemEvent),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Idle,
    Handshaking,
    Established,
    Closed,
}

/// Catch-up state of one log.
#[derive(Debug)]
struct Fetch {
    /// Verified (handed to storage) prefix.
    frontier: Frontier,
    /// Everything below this is requested or held.
    requested_to: u64,
    /// Outstanding requests: (end, sent at), in order.
    in_flight: VecDeque<(u64, u64)>,
}

/// The reason sent with [`ErrorCode::StoreFailure`].
pub const STORE_FAILURE_REASON: &str = "local store failure";

/// A rejection: code and reason.
type Reject = (ErrorCode, String);

fn reject(code: ErrorCode, why: impl Into<String>) -> Reject {
    (code, why.into())
}

/// One connection's protocol state.
#[derive(Debug)]
pub struct Session {
    cfg: SessionConfig,
    phase: Phase,
    role: Role,
    params: Option<TransportParams>,
    connected_at: u64,
    decoder: FrameDecoder,
    peer: Option<XaeroID>,
    /// Latest verified checkpoint the peer holds, per author.
    peer_cps: BTreeMap<AuthorId, SignedCheckpoint>,
    /// Keys learnt in this session.
    keys: BTreeMap<AuthorId, XaeroID>,
    /// BLAKE3 of checkpoint encodings whose signatures verified.
    verified: HashSet<[u8; 32]>,
    fetch: BTreeMap<AuthorId, Fetch>,
    in_flight: usize,
    /// Checkpoint length last advertised to the peer, per author.
    sent_cps: BTreeMap<AuthorId, u64>,
    /// Per author, how far the peer holds the log once the frames sent so far
    /// arrive, from the events exchanged in this session: what we sent it in order
    /// from what it held, and what it sent us (it serves only what it stores).
    /// Decides whether a commit can be pushed without crossing a catch-up or going
    /// back to where it came from (see `on_committed`).
    sent_to: BTreeMap<AuthorId, u64>,
    /// Logs whose events reach us from elsewhere before this peer relays them (it
    /// pushed us events we held): we relay those logs to this peer no more, the
    /// anti-entropy round announces them instead. Pushes of each author's own log
    /// and the first session after a reconnect stay eager. As in Plumtree
    /// (Leitão et al. 2007), the links that deliver first form the relay tree.
    lazy: BTreeSet<AuthorId>,
    keys_sent: HashSet<AuthorId>,
    /// Whether the peer's first `Checkpoints` arrived (catch-up started).
    peer_ready: bool,
    forked: HashSet<AuthorId>,
    last_anti_entropy: u64,
    anti_entropy_rounds: u32,
    /// A short Hello failed for want of a key, on either side.
    key_missed: bool,
    /// The peer's requests not answered yet (the front one possibly in part).
    requests: VecDeque<Request>,
    /// Bytes output as `Send` and not yet reported written by the transport.
    unsent: u64,
    /// Logs this session stopped fetching because the peer served an event that no
    /// built feature accepts from the network (see [`xaeroflux_core::event::type_class`]).
    refused_logs: BTreeSet<AuthorId>,
}

impl Session {
    /// A session for one connection, before [`Input::Connected`].
    pub fn new(cfg: SessionConfig) -> Self {
        Self {
            cfg,
            phase: Phase::Idle,
            role: Role::Initiator,
            params: None,
            connected_at: 0,
            decoder: FrameDecoder::handshake(),
            peer: None,
            peer_cps: BTreeMap::new(),
            keys: BTreeMap::new(),
            verified: HashSet::new(),
            fetch: BTreeMap::new(),
            in_flight: 0,
            sent_cps: BTreeMap::new(),
            sent_to: BTreeMap::new(),
            lazy: BTreeSet::new(),
            keys_sent: HashSet::new(),
            peer_ready: false,
            forked: HashSet::new(),
            last_anti_entropy: 0,
            anti_entropy_rounds: 0,
            key_missed: false,
            requests: VecDeque::new(),
            unsent: 0,
            refused_logs: BTreeSet::new(),
        }
    }

    /// The authenticated peer, once the handshake is done.
    pub fn peer(&self) -> Option<&XaeroID> {
        self.peer.as_ref()
    }

    /// Whether the handshake completed and the session is open.
    pub fn is_established(&self) -> bool {
        self.phase == Phase::Established
    }

    /// Whether the session closed.
    pub fn is_closed(&self) -> bool {
        self.phase == Phase::Closed
    }

    /// Whether the handshake failed because a Hello named a key by its id that the
    /// receiver does not hold (ours at the peer, or the peer's here): the next
    /// connection to this peer should not use [`SessionConfig::short_hello`].
    pub fn key_missed(&self) -> bool {
        self.key_missed
    }

    /// Whether requests are outstanding.
    pub fn is_fetching(&self) -> bool {
        self.in_flight > 0
    }

    #[cfg(test)]
    pub(crate) fn debug_state(&self) -> String {
        format!(
            "phase {:?} ready {} in_flight {} peer_cps {:?} fetch {:?} sent {:?}",
            self.phase,
            self.peer_ready,
            self.in_flight,
            self.peer_cps
                .iter()
                .map(|(a, c)| (*a, c.checkpoint.length))
                .collect::<Vec<_>>(),
            self.fetch
                .iter()
                .map(|(a, f)| (*a, f.frontier.len(), f.requested_to, f.in_flight.clone()))
                .collect::<Vec<_>>(),
            self.sent_cps,
        )
    }

    /// Skips the handshake (fuzzing and tests of post-handshake handling only).
    #[doc(hidden)]
    pub fn assume_established(&mut self, role: Role, params: TransportParams, peer: XaeroID) {
        self.role = role;
        self.params = Some(params);
        self.peer = Some(peer);
        self.phase = Phase::Established;
        self.decoder.open();
    }

    /// Processes one input at time `now` (milliseconds, any monotonic origin).
    pub fn handle(
        &mut self,
        input: Input,
        now: u64,
        logs: &(impl LogView + ?Sized),
    ) -> Vec<Output> {
        let mut out = Vec::new();
        if self.phase == Phase::Closed {
            return out;
        }
        // A peer removed from the group's membership since the handshake: close.
        if self.phase == Phase::Established
            && let Some(p) = &self.peer
            && !logs.may_connect(&self.cfg.group.id(), &AuthorId(*p.id().as_bytes()))
        {
            let why = "no longer a member of the group".to_string();
            self.close_with(ErrorCode::Unauthorized, why, &mut out);
            return out;
        }
        let res = match input {
            Input::Connected { role, params } => self.on_connected(role, params, now, &mut out),
            Input::Frame(bytes) => self.on_bytes(&bytes, now, logs, &mut out),
            Input::Tick => self.on_tick(now, logs, &mut out),
            Input::Drained { bytes } => {
                self.unsent = self.unsent.saturating_sub(bytes);
                Ok(())
            }
            Input::LocalCommitted {
                first_seq,
                count,
                checkpoint,
            } => {
                self.on_committed(first_seq, count, *checkpoint, logs, &mut out);
                Ok(())
            }
        };
        match res {
            Err((code, why)) => self.close_with(code, why, &mut out),
            Ok(()) if self.phase == Phase::Established => self.serve(logs, &mut out),
            Ok(()) => {}
        }
        for o in &out {
            if let Output::Send(b) = o {
                self.unsent = self.unsent.saturating_add(b.len() as u64);
            }
        }
        out
    }

    /// Ends the session because the local store failed: [`SyncHost::read_logs`]
    /// returned an error (what the session computed from that view must be dropped, not
    /// carried out) or the storage writer refused a verified batch. Sends an `Error`
    /// frame with [`ErrorCode::StoreFailure`] and a fixed reason (the local failure is
    /// not the peer's business), then closes. No system event: the host reports its
    /// own failure. Nothing after this is output.
    ///
    /// [`SyncHost::read_logs`]: crate::SyncHost::read_logs
    pub fn end_on_store_failure(&mut self) -> Vec<Output> {
        if self.phase == Phase::Closed {
            return Vec::new();
        }
        self.phase = Phase::Closed;
        let code = ErrorCode::StoreFailure;
        let reason = STORE_FAILURE_REASON.to_string();
        vec![
            Output::Send(frame::encode(&Message::Error {
                code: code.as_u16(),
                reason: reason.clone(),
            })),
            Output::Close { code, reason },
        ]
    }

    fn close_with(&mut self, code: ErrorCode, why: String, out: &mut Vec<Output>) {
        out.push(Output::Send(frame::encode(&Message::Error {
            code: code.as_u16(),
            reason: why.clone(),
        })));
        out.push(Output::Close {
            code,
            reason: why.clone(),
        });
        out.push(Output::Event(SystemEvent::PeerRejected { code, why }));
        self.phase = Phase::Closed;
    }

    pub(super) fn send(out: &mut Vec<Output>, msg: &Message) {
        out.push(Output::Send(frame::encode(msg)));
    }

    fn on_connected(
        &mut self,
        role: Role,
        params: TransportParams,
        now: u64,
        out: &mut Vec<Output>,
    ) -> Result<(), Reject> {
        if self.phase != Phase::Idle {
            return Ok(());
        }
        self.role = role;
        self.params = Some(params);
        self.connected_at = now;
        self.phase = Phase::Handshaking;
        if role == Role::Initiator {
            let short = role == Role::Initiator && self.cfg.short_hello;
            let hello = make_hello(role, &params, &self.cfg.group, &self.cfg.keypair, short);
            Self::send(out, &Message::Hello(Box::new(hello)));
        }
        Ok(())
    }

    fn on_bytes(
        &mut self,
        bytes: &[u8],
        now: u64,
        logs: &(impl LogView + ?Sized),
        out: &mut Vec<Output>,
    ) -> Result<(), Reject> {
        if self.phase == Phase::Idle {
            return Err(reject(ErrorCode::Unexpected, "bytes before connect"));
        }
        self.decoder.push(bytes);
        loop {
            let msg = match self.decoder.next_message() {
                Ok(Some(m)) => m,
                Ok(None) => return Ok(()),
                Err(e @ FrameError::Oversized { .. }) => {
                    return Err(reject(ErrorCode::FrameTooLarge, e.to_string()));
                }
                Err(e @ FrameError::NotAllowed { .. }) => {
                    return Err(reject(ErrorCode::Unexpected, e.to_string()));
                }
                Err(e) => return Err(reject(ErrorCode::Malformed, e.to_string())),
            };
            self.on_message(msg, now, logs, out)?;
            if self.phase == Phase::Closed {
                return Ok(());
            }
        }
    }

    fn on_message(
        &mut self,
        msg: Message,
        now: u64,
        logs: &(impl LogView + ?Sized),
        out: &mut Vec<Output>,
    ) -> Result<(), Reject> {
        if let Message::Error { code, reason } = &msg {
            if *code == ErrorCode::UnknownKey.as_u16() {
                self.key_missed = true;
            }
            self.phase = Phase::Closed;
            out.push(Output::Close {
                code: ErrorCode::Normal,
                reason: format!("peer closed with code {code}: {}", sanitize_reason(reason)),
            });
            return Ok(());
        }
        if self.phase == Phase::Handshaking {
            let Message::Hello(hello) = msg else {
                return Err(reject(ErrorCode::Unexpected, "expected hello"));
            };
            return self.on_hello(&hello, now, logs, out);
        }
        match msg {
            Message::Hello(_) => Err(reject(ErrorCode::Unexpected, "second hello")),
            Message::Checkpoints { checkpoints, keys } => {
                self.learn_keys(&checkpoints, keys, logs);
                for cp in checkpoints {
                    self.on_checkpoint(cp, logs, out)?;
                }
                self.prune_keys(logs);
                self.peer_ready = true;
                self.schedule(now, logs, out);
                Ok(())
            }
            Message::Request(r) => self.on_request(r),
            Message::Events(e) => self.on_events(e, now, logs, out),
            Message::EventsByRef(e) => self.on_events_by_ref(e, now, logs, out),
            Message::Push(e) => self.on_push(e, now, logs, out),
            Message::ForkEvidence(pair) => self.on_fork_evidence(pair.0, pair.1, logs, out),
            Message::Error { .. } => Ok(()),
        }
    }

    fn on_hello(
        &mut self,
        hello: &frame::Hello,
        now: u64,
        logs: &(impl LogView + ?Sized),
        out: &mut Vec<Output>,
    ) -> Result<(), Reject> {
        let Some(params) = self.params else {
            return Err(reject(ErrorCode::Unexpected, "hello before connect"));
        };
        let peer = verify_hello(hello, self.role, &params, &self.cfg.group, |id| {
            logs.author_key(&AuthorId(*id.as_bytes()))
        })
        .map_err(|f| match f {
            HelloFault::Tag | HelloFault::Role => reject(ErrorCode::Protocol, "bad tag or role"),
            HelloFault::Transcript => reject(
                ErrorCode::TranscriptMismatch,
                "hello is bound to another connection",
            ),
            HelloFault::Group => reject(ErrorCode::WrongGroup, "unknown group"),
            HelloFault::Mac => reject(ErrorCode::BadMac, NON_MEMBER_REASON),
            HelloFault::UnknownKey => reject(
                ErrorCode::UnknownKey,
                "hello names a key this node does not hold",
            ),
            HelloFault::Signature => {
                reject(ErrorCode::BadSignature, "hello signature does not verify")
            }
        });
        let peer = match peer {
            Ok(p) => p,
            Err(r) => {
                self.key_missed |= r.0 == ErrorCode::UnknownKey;
                return Err(r);
            }
        };
        if !logs.may_connect(&self.cfg.group.id(), &AuthorId(*peer.id().as_bytes())) {
            return Err(reject(ErrorCode::Unauthorized, "not a member of the group"));
        }
        if self.role == Role::Acceptor {
            // Answer in the initiator's form: a short Hello says it holds our key.
            let short = matches!(hello.key, HelloKey::Id(_));
            let ours = make_hello(
                self.role,
                &params,
                &self.cfg.group,
                &self.cfg.keypair,
                short,
            );
            Self::send(out, &Message::Hello(Box::new(ours)));
        }
        out.push(Output::Event(SystemEvent::PeerAuthenticated {
            peer: peer.id(),
        }));
        // The Hello carried (or named) the peer's key: its own checkpoints need no
        // other copy.
        self.keys
            .insert(AuthorId(*peer.id().as_bytes()), peer.clone());
        self.peer = Some(peer);
        self.phase = Phase::Established;
        self.decoder.open();
        self.last_anti_entropy = now;
        self.advertise(logs, out, true);
        Ok(())
    }

    fn on_tick(
        &mut self,
        now: u64,
        logs: &(impl LogView + ?Sized),
        out: &mut Vec<Output>,
    ) -> Result<(), Reject> {
        match self.phase {
            Phase::Handshaking => {
                if now.saturating_sub(self.connected_at) > self.cfg.handshake_timeout_ms {
                    return Err(reject(ErrorCode::Timeout, "handshake timed out"));
                }
                Ok(())
            }
            Phase::Established => {
                let oldest = self
                    .fetch
                    .values()
                    .filter_map(|f| f.in_flight.front().map(|r| r.1))
                    .min();
                if let Some(t) = oldest
                    && now.saturating_sub(t) > self.cfg.request_timeout_ms
                {
                    return Err(reject(ErrorCode::Timeout, "request timed out"));
                }
                if now.saturating_sub(self.last_anti_entropy) >= self.cfg.anti_entropy_interval_ms {
                    self.last_anti_entropy = now;
                    self.anti_entropy_rounds = self.anti_entropy_rounds.wrapping_add(1);
                    if self
                        .anti_entropy_rounds
                        .is_multiple_of(self.cfg.full_anti_entropy_every.max(1))
                    {
                        // Keys too: a peer that missed one ignores that author's checkpoints.
                        self.sent_cps.clear();
                        self.keys_sent.clear();
                    }
                    self.advertise(logs, out, false);
                    self.schedule(now, logs, out);
                }
                Ok(())
            }
            Phase::Idle | Phase::Closed => Ok(()),
        }
    }
}
