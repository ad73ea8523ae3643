//! Wire frames of `xaeroflux/sync/1`.
//!
//! Every message travels in one frame (all integers little-endian):
//!
//! | offset | size | field                                             |
//! |-------:|-----:|---------------------------------------------------|
//! |      0 |    4 | `len` (u32): bytes after this field, `2..=MAX_FRAME` |
//! |      4 |    1 | frame version, [`FRAME_VERSION`]                  |
//! |      5 |    1 | message type (see [`MessageType`])                |
//! |      6 |  len-2 | body                                           |
//!
//! The body layouts are documented on each message and in `docs/FORMAT.md`
//! ("Sync protocol"). A body must be consumed exactly: trailing bytes are an error.
//! [`FrameDecoder`] accepts bytes in arbitrary chunks, checks the length prefix before
//! buffering a body (so a hostile length never allocates) and never panics.

use thiserror::Error;
use xaeroflux_core::mmr::Hash32;
use xaeroflux_core::{AuthorId, GroupId, SignedCheckpoint};
use xaeroid::{IdHash, Signature, XaeroID};

use crate::events::EventList;

/// Version byte of the frame layout.
pub const FRAME_VERSION: u8 = 1;
/// Largest value of the length prefix (version + type + body): 1 MiB.
pub const MAX_FRAME: usize = 1024 * 1024;
/// Bytes before the body: length prefix, version, type.
pub const FRAME_HEADER_LEN: usize = 6;
/// The protocol tag (also the ALPN), carried in every `Hello`.
pub const PROTOCOL_TAG: [u8; 16] = *b"xaeroflux/sync/1";
/// Longest `Error` reason accepted, in bytes.
pub const MAX_REASON_LEN: usize = 1024;
/// Most items of a list in one message (checkpoints, keys, events, proof hashes).
pub const MAX_LIST_ITEMS: usize = 65_536;
/// Most hashes of a consistency proof (two per level of a 2^62-leaf MMR is < 128).
pub const MAX_PROOF_HASHES: usize = 128;
/// Largest length prefix accepted before the handshake completed (see
/// [`FrameDecoder::handshake`]): a whole Hello is 1,746 bytes after the prefix, an
/// `Error` at most 1,030.
pub const MAX_HANDSHAKE_FRAME: usize = 4096;

/// Which end of the connection a session is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Dialled the connection.
    Initiator,
    /// Accepted the connection.
    Acceptor,
}

impl Role {
    /// Wire byte: 0 initiator, 1 acceptor.
    pub const fn to_byte(self) -> u8 {
        match self {
            Role::Initiator => 0,
            Role::Acceptor => 1,
        }
    }
    /// Parses the wire byte.
    pub const fn from_byte(b: u8) -> Option<Self> {
        match b {
            0 => Some(Role::Initiator),
            1 => Some(Role::Acceptor),
            _ => None,
        }
    }
    /// The other end.
    pub const fn peer(self) -> Self {
        match self {
            Role::Initiator => Role::Acceptor,
            Role::Acceptor => Role::Initiator,
        }
    }
}

/// Message type byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum MessageType {
    /// [`Hello`].
    Hello = 1,
    /// [`Message::Checkpoints`].
    Checkpoints = 2,
    /// [`Request`].
    Request = 3,
    /// [`Events`] answering a request.
    Events = 4,
    /// [`Events`] pushed live.
    Push = 5,
    /// Two conflicting checkpoints.
    ForkEvidence = 6,
    /// An error before closing.
    Error = 7,
    /// [`EventsByRef`] answering a request.
    EventsByRef = 8,
}

impl MessageType {
    fn from_byte(b: u8) -> Option<Self> {
        Some(match b {
            1 => Self::Hello,
            2 => Self::Checkpoints,
            3 => Self::Request,
            4 => Self::Events,
            5 => Self::Push,
            6 => Self::ForkEvidence,
            7 => Self::Error,
            8 => Self::EventsByRef,
            _ => return None,
        })
    }
}

/// The handshake message. Body layout:
///
/// | size | field |
/// |-----:|-------|
/// | 16 | protocol tag `"xaeroflux/sync/1"` |
/// |  1 | role of the sender (0 initiator, 1 acceptor) |
/// | 32 | initiator endpoint id |
/// | 32 | acceptor endpoint id |
/// | 32 | TLS exported keying material of the connection |
/// | 32 | group id |
/// |  2 | public key length `k` (u16) |
/// |  k | sender's XaeroID public key |
/// |  2 | signature length `s` (u16) |
/// |  s | FN-DSA signature over the transcript |
/// | 32 | membership MAC over the transcript |
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hello {
    /// Must be [`PROTOCOL_TAG`].
    pub tag: [u8; 16],
    /// Role of the sender.
    pub role: Role,
    /// Endpoint id of the initiator (opaque, from the transport).
    pub initiator_endpoint: [u8; 32],
    /// Endpoint id of the acceptor (opaque, from the transport).
    pub acceptor_endpoint: [u8; 32],
    /// TLS exported keying material of the connection, as the sender saw it.
    pub keying_material: [u8; 32],
    /// The group the sender wants to sync.
    pub group: GroupId,
    /// The sender's identity: its public key, or only its id when the receiver is
    /// expected to hold the key already.
    pub key: HelloKey,
    /// Signature over the transcript (see `proto::handshake`).
    pub signature: Signature,
    /// BLAKE3 keyed with the group's membership MAC key over the transcript.
    pub mac: [u8; 32],
}

/// How a [`Hello`] names the sender's key. On the wire: `bytes16` of the encoded
/// public key (898 bytes), or of the 32-byte id alone (the short form, for a peer that
/// stored the key in an earlier session).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HelloKey {
    /// The whole public key.
    Full(XaeroID),
    /// The key's id; the receiver looks the key up.
    Id(IdHash),
}

impl HelloKey {
    /// The sender's identity hash.
    pub fn id(&self) -> IdHash {
        match self {
            HelloKey::Full(k) => k.id(),
            HelloKey::Id(h) => *h,
        }
    }
}

/// Asks for events `from_seq..to_seq` of one author log. Body: author (32),
/// `from_seq` (u64), `to_seq` (u64, exclusive).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request {
    /// The log's author.
    pub author: AuthorId,
    /// First sequence number wanted.
    pub from_seq: u64,
    /// One past the last sequence number wanted.
    pub to_seq: u64,
}

/// A contiguous batch of one author's events with what proves it. Body:
///
/// | size | field |
/// |-----:|-------|
/// | 32 | author id |
/// |  8 | `first_seq` (u64): seq of the first event |
/// |  2 | signed checkpoint length `c` (u16) |
/// |  c | signed checkpoint (length `L` >= `first_seq + n`) |
/// |  2 | proof hash count `p` (u16, <= 128) |
/// | 32·p | consistency proof: roots of the aligned subtrees covering leaves `first_seq + n .. L`, left to right |
/// |  4 | event count `n` (u32) |
/// | n × (4 + e) | each event: length `e` (u32), canonical event encoding |
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Events {
    /// The log's author.
    pub author: AuthorId,
    /// Seq of the first event.
    pub first_seq: u64,
    /// The author's signed checkpoint the batch leads up to.
    pub checkpoint: SignedCheckpoint,
    /// Subtree roots from the end of the batch to the checkpoint length.
    pub proof: Vec<Hash32>,
    /// Canonical event encodings, seqs `first_seq..first_seq + n`.
    pub events: EventList,
}

/// [`Events`] whose checkpoint is one the sender advertised earlier in this session,
/// named by its length instead of sent again (a signed checkpoint is 782 bytes). Body:
/// author (32 bytes), first seq u64, checkpoint length u64, then proof and events as in
/// [`Events`]. The receiver resolves it against the latest checkpoint of that author
/// the sender advertised; a length that does not match is a protocol error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventsByRef {
    /// The log's author.
    pub author: AuthorId,
    /// Seq of the first event.
    pub first_seq: u64,
    /// Length of the advertised checkpoint the batch leads up to.
    pub checkpoint_length: u64,
    /// Subtree roots from the end of the batch to the checkpoint length.
    pub proof: Vec<Hash32>,
    /// Canonical event encodings, seqs `first_seq..first_seq + n`.
    pub events: EventList,
}

/// Every message of the protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// Handshake.
    Hello(Box<Hello>),
    /// Latest checkpoints of author logs plus public keys the peer may lack. Body:
    /// count (u32), each checkpoint as u16 length + signed checkpoint; count (u32),
    /// each key as u16 length + XaeroID public key.
    Checkpoints {
        /// Latest signed checkpoint per author log.
        checkpoints: Vec<SignedCheckpoint>,
        /// Public keys of authors in `checkpoints`.
        keys: Vec<XaeroID>,
    },
    /// Asks for a range of one log.
    Request(Request),
    /// Answers a request.
    Events(Events),
    /// Live push of freshly committed events (same body as `Events`).
    Push(Events),
    /// Answers a request, naming an advertised checkpoint instead of repeating it.
    EventsByRef(EventsByRef),
    /// Two conflicting signed checkpoints of one log. Body: two times u16 length +
    /// signed checkpoint.
    ForkEvidence(Box<(SignedCheckpoint, SignedCheckpoint)>),
    /// Sent just before closing. Body: code (u16), reason length (u16), UTF-8 reason.
    Error {
        /// Error code (see `proto::ErrorCode`).
        code: u16,
        /// Human readable reason.
        reason: String,
    },
}

/// Why bytes are not a valid frame.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum FrameError {
    /// The length prefix exceeds the cap.
    #[error("frame of {len} bytes exceeds the maximum of {max}")]
    Oversized {
        /// Declared length.
        len: u64,
        /// [`MAX_FRAME`].
        max: usize,
    },
    /// The length prefix is too small for version and type.
    #[error("frame length {len} is shorter than version and type")]
    Undersized {
        /// Declared length.
        len: u32,
    },
    /// Unknown frame version.
    #[error("unsupported frame version {found} (supported: {FRAME_VERSION})")]
    UnknownVersion {
        /// Version byte found.
        found: u8,
    },
    /// Unknown message type.
    #[error("unknown message type {found}")]
    UnknownType {
        /// Type byte found.
        found: u8,
    },
    /// The body ends before a field does.
    #[error("truncated body: need {need} more bytes at offset {at}")]
    Truncated {
        /// Offset in the body.
        at: usize,
        /// Missing bytes.
        need: usize,
    },
    /// Bytes left after the body (or after a whole frame).
    #[error("{extra} trailing bytes")]
    TrailingBytes {
        /// How many.
        extra: usize,
    },
    /// A field has an invalid value.
    #[error("invalid {field}")]
    Invalid {
        /// Which field.
        field: &'static str,
    },
    /// A message type that is not allowed yet (before the handshake completed, only
    /// `Hello` and `Error`).
    #[error("message type {found} is not allowed before the handshake")]
    NotAllowed {
        /// Type byte found.
        found: u8,
    },
}

/// Encodes `msg` as one frame. Format: see the module docs.
pub fn encode(msg: &Message) -> Vec<u8> {
    let mut out = vec![0, 0, 0, 0, FRAME_VERSION, 0];
    let ty = match msg {
        Message::Hello(h) => {
            out.extend_from_slice(&h.tag);
            out.push(h.role.to_byte());
            out.extend_from_slice(&h.initiator_endpoint);
            out.extend_from_slice(&h.acceptor_endpoint);
            out.extend_from_slice(&h.keying_material);
            out.extend_from_slice(h.group.as_bytes());
            match &h.key {
                HelloKey::Full(k) => put_bytes16(&mut out, k.as_bytes()),
                HelloKey::Id(id) => put_bytes16(&mut out, id.as_bytes()),
            }
            put_bytes16(&mut out, h.signature.as_bytes());
            out.extend_from_slice(&h.mac);
            MessageType::Hello
        }
        Message::Checkpoints { checkpoints, keys } => {
            put_len32(&mut out, checkpoints.len());
            for cp in checkpoints {
                put_bytes16(&mut out, &cp.encode());
            }
            put_len32(&mut out, keys.len());
            for k in keys {
                put_bytes16(&mut out, k.as_bytes());
            }
            MessageType::Checkpoints
        }
        Message::Request(r) => {
            out.extend_from_slice(r.author.as_bytes());
            out.extend_from_slice(&r.from_seq.to_le_bytes());
            out.extend_from_slice(&r.to_seq.to_le_bytes());
            MessageType::Request
        }
        Message::Events(e) => {
            encode_events(e, &mut out);
            MessageType::Events
        }
        Message::Push(e) => {
            encode_events(e, &mut out);
            MessageType::Push
        }
        Message::EventsByRef(e) => {
            out.extend_from_slice(e.author.as_bytes());
            out.extend_from_slice(&e.first_seq.to_le_bytes());
            out.extend_from_slice(&e.checkpoint_length.to_le_bytes());
            encode_batch_tail(&e.proof, &e.events, &mut out);
            MessageType::EventsByRef
        }
        Message::ForkEvidence(pair) => {
            put_bytes16(&mut out, &pair.0.encode());
            put_bytes16(&mut out, &pair.1.encode());
            MessageType::ForkEvidence
        }
        Message::Error { code, reason } => {
            out.extend_from_slice(&code.to_le_bytes());
            let mut end = reason.len().min(MAX_REASON_LEN);
            while !reason.is_char_boundary(end) {
                end -= 1;
            }
            put_bytes16(&mut out, &reason.as_bytes()[..end]);
            MessageType::Error
        }
    };
    out[5] = ty as u8;
    // Callers keep messages under MAX_FRAME (batches are sized by the session); an
    // oversized frame is still encoded faithfully and the peer rejects it.
    let len = u32::try_from(out.len() - 4).unwrap_or(u32::MAX);
    out[..4].copy_from_slice(&len.to_le_bytes());
    out
}

/// Encoded size of a batch with these parts, to keep frames under [`MAX_FRAME`].
pub(crate) fn events_overhead(checkpoint_len: usize, proof_len: usize) -> usize {
    FRAME_HEADER_LEN + 32 + 8 + 2 + checkpoint_len + 2 + 32 * proof_len + 4
}

fn encode_events(e: &Events, out: &mut Vec<u8>) {
    out.extend_from_slice(e.author.as_bytes());
    out.extend_from_slice(&e.first_seq.to_le_bytes());
    put_bytes16(out, &e.checkpoint.encode());
    encode_batch_tail(&e.proof, &e.events, out);
}

/// Proof (u16 count + hashes) and events (u32 count, each u32 length + bytes).
fn encode_batch_tail(proof: &[Hash32], events: &EventList, out: &mut Vec<u8>) {
    out.extend_from_slice(&u16::try_from(proof.len()).unwrap_or(u16::MAX).to_le_bytes());
    for h in proof {
        out.extend_from_slice(h);
    }
    put_len32(out, events.len());
    for ev in events.iter() {
        put_len32(out, ev.len());
        out.extend_from_slice(ev);
    }
}

fn put_len32(out: &mut Vec<u8>, n: usize) {
    out.extend_from_slice(&u32::try_from(n).unwrap_or(u32::MAX).to_le_bytes());
}

fn put_bytes16(out: &mut Vec<u8>, b: &[u8]) {
    out.extend_from_slice(&u16::try_from(b.len()).unwrap_or(u16::MAX).to_le_bytes());
    out.extend_from_slice(b);
}

/// Decodes exactly one whole frame; bytes after it are an error.
pub fn decode(bytes: &[u8]) -> Result<Message, FrameError> {
    let mut d = FrameDecoder::new();
    d.push(bytes);
    match d.next_message()? {
        Some(m) if d.buffered() == 0 => Ok(m),
        Some(_) => Err(FrameError::TrailingBytes {
            extra: d.buffered(),
        }),
        None => Err(FrameError::Truncated {
            at: bytes.len(),
            need: d.needed(),
        }),
    }
}

/// Incremental decoder: feed bytes as they arrive, take messages as they complete.
///
/// After an error the decoder is poisoned (the stream cannot be resynchronised) and
/// returns the same error again.
#[derive(Debug)]
pub struct FrameDecoder {
    /// Largest length prefix accepted.
    max_frame: usize,
    /// Whether only `Hello` and `Error` frames are accepted.
    handshake: bool,
    buf: Vec<u8>,
    /// Bytes of `buf` before this offset are decoded already. Frames are consumed by
    /// moving the offset; the buffer is compacted only when a push would otherwise
    /// grow it, so each received byte is moved at most once more.
    start: usize,
    poisoned: Option<FrameError>,
}

impl Default for FrameDecoder {
    fn default() -> Self {
        Self {
            max_frame: MAX_FRAME,
            handshake: false,
            buf: Vec::new(),
            start: 0,
            poisoned: None,
        }
    }
}

impl FrameDecoder {
    /// An empty decoder accepting every message type up to [`MAX_FRAME`].
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty decoder for a peer that has not proven anything yet: it accepts only
    /// `Hello` and `Error` frames of at most [`MAX_HANDSHAKE_FRAME`] bytes, refusing
    /// anything else from its 6-byte header, so an unauthenticated peer never makes
    /// it buffer or decode more than that. [`FrameDecoder::open`] lifts the limits.
    pub fn handshake() -> Self {
        Self {
            max_frame: MAX_HANDSHAKE_FRAME,
            handshake: true,
            ..Self::default()
        }
    }

    /// Accepts every message type up to [`MAX_FRAME`] from now on (the peer proved
    /// its membership).
    pub fn open(&mut self) {
        self.max_frame = MAX_FRAME;
        self.handshake = false;
    }

    /// Bytes the decoder holds allocated (its buffer's capacity).
    pub fn allocated(&self) -> usize {
        self.buf.capacity()
    }

    /// Appends received bytes. Buffers at most one frame beyond what is already
    /// buffered: callers drain with [`FrameDecoder::next_message`] after every push.
    pub fn push(&mut self, bytes: &[u8]) {
        if self.poisoned.is_some() {
            return;
        }
        if self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
        } else if self.start > 0 && self.buf.len() + bytes.len() > self.buf.capacity() {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// The bytes buffered and not yet decoded.
    fn pending(&self) -> &[u8] {
        self.buf.get(self.start..).unwrap_or_default()
    }

    /// Bytes buffered and not yet decoded.
    pub fn buffered(&self) -> usize {
        self.pending().len()
    }

    /// Bytes still missing to complete the frame being received (at least 1 when a
    /// frame is incomplete, 0 when a whole frame is buffered).
    pub fn needed(&self) -> usize {
        let buf = self.pending();
        match buf.first_chunk::<4>() {
            None => 4 - buf.len(),
            Some(l) => {
                let total = 4 + u32::from_le_bytes(*l) as usize;
                total.saturating_sub(buf.len())
            }
        }
    }

    /// The next complete message, `None` if more bytes are needed.
    pub fn next_message(&mut self) -> Result<Option<Message>, FrameError> {
        if let Some(e) = &self.poisoned {
            return Err(e.clone());
        }
        let res = self.next_inner();
        if let Err(e) = &res {
            self.poisoned = Some(e.clone());
            self.buf = Vec::new();
            self.start = 0;
        }
        res
    }

    fn next_inner(&mut self) -> Result<Option<Message>, FrameError> {
        let buf = self.pending();
        let Some(l) = buf.first_chunk::<4>() else {
            return Ok(None);
        };
        let len = u32::from_le_bytes(*l);
        if len as usize > self.max_frame {
            return Err(FrameError::Oversized {
                len: u64::from(len),
                max: self.max_frame,
            });
        }
        if len < 2 {
            return Err(FrameError::Undersized { len });
        }
        // Version and type are checked as soon as they arrive, before the body.
        if let Some(&v) = buf.get(4)
            && v != FRAME_VERSION
        {
            return Err(FrameError::UnknownVersion { found: v });
        }
        if let Some(&t) = buf.get(5) {
            match MessageType::from_byte(t) {
                None => return Err(FrameError::UnknownType { found: t }),
                Some(MessageType::Hello | MessageType::Error) => {}
                Some(_) if self.handshake => return Err(FrameError::NotAllowed { found: t }),
                Some(_) => {}
            }
        }
        let total = 4 + len as usize;
        if buf.len() < total {
            return Ok(None);
        }
        let ty = MessageType::from_byte(buf[5]).ok_or(FrameError::UnknownType { found: buf[5] })?;
        let msg = decode_body(ty, &buf[FRAME_HEADER_LEN..total])?;
        self.start += total;
        Ok(Some(msg))
    }
}

struct Reader<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], FrameError> {
        let rest = &self.b[self.pos..];
        if rest.len() < n {
            return Err(FrameError::Truncated {
                at: self.pos,
                need: n - rest.len(),
            });
        }
        self.pos += n;
        Ok(&rest[..n])
    }
    fn arr<const N: usize>(&mut self) -> Result<[u8; N], FrameError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }
    fn u8(&mut self) -> Result<u8, FrameError> {
        Ok(self.arr::<1>()?[0])
    }
    fn u16(&mut self) -> Result<u16, FrameError> {
        Ok(u16::from_le_bytes(self.arr()?))
    }
    fn u32(&mut self) -> Result<u32, FrameError> {
        Ok(u32::from_le_bytes(self.arr()?))
    }
    fn u64(&mut self) -> Result<u64, FrameError> {
        Ok(u64::from_le_bytes(self.arr()?))
    }
    fn bytes16(&mut self) -> Result<&'a [u8], FrameError> {
        let n = self.u16()?;
        self.take(usize::from(n))
    }
    /// A list count, bounded by [`MAX_LIST_ITEMS`] and by the bytes left (each item
    /// takes at least `min_item` bytes), so a hostile count never over-allocates.
    fn count(&mut self, min_item: usize) -> Result<usize, FrameError> {
        let n = self.u32()? as usize;
        let left = self.b.len() - self.pos;
        if n > MAX_LIST_ITEMS || n.saturating_mul(min_item) > left {
            return Err(FrameError::Invalid {
                field: "list count",
            });
        }
        Ok(n)
    }
    /// Room to reserve for `n` items of type `T`: never more than the bytes left in
    /// the body, whatever `n` claims (a count is checked against a minimum encoded item
    /// size, which can be far smaller than the decoded item).
    fn room<T>(&self, n: usize) -> usize {
        let left = self.b.len() - self.pos;
        n.min(left / std::mem::size_of::<T>().max(1))
    }
    fn finish(&self) -> Result<(), FrameError> {
        match self.b.len() - self.pos {
            0 => Ok(()),
            extra => Err(FrameError::TrailingBytes { extra }),
        }
    }
}

fn checkpoint(b: &[u8]) -> Result<SignedCheckpoint, FrameError> {
    SignedCheckpoint::decode(b).map_err(|_| FrameError::Invalid {
        field: "signed checkpoint",
    })
}

/// Proof and events of a batch (see [`encode_batch_tail`]).
type BatchTail = (Vec<Hash32>, EventList);

fn batch_tail(r: &mut Reader<'_>) -> Result<BatchTail, FrameError> {
    let p = usize::from(r.u16()?);
    if p > MAX_PROOF_HASHES {
        return Err(FrameError::Invalid {
            field: "proof length",
        });
    }
    let mut proof = Vec::with_capacity(p);
    for _ in 0..p {
        proof.push(r.arr()?);
    }
    let n = r.count(4)?;
    // One buffer for the batch; the rest of the body bounds its size.
    let mut events = EventList::with_capacity(r.room::<usize>(n), r.b.len().saturating_sub(r.pos));
    for _ in 0..n {
        let len = r.u32()? as usize;
        events.push(r.take(len)?);
    }
    Ok((proof, events))
}

fn decode_body(ty: MessageType, body: &[u8]) -> Result<Message, FrameError> {
    let mut r = Reader { b: body, pos: 0 };
    let msg = match ty {
        MessageType::Hello => {
            let tag = r.arr::<16>()?;
            let role = Role::from_byte(r.u8()?).ok_or(FrameError::Invalid { field: "role" })?;
            let initiator_endpoint = r.arr()?;
            let acceptor_endpoint = r.arr()?;
            let keying_material = r.arr()?;
            let group = GroupId(r.arr()?);
            let kb = r.bytes16()?;
            let key = match <[u8; 32]>::try_from(kb) {
                Ok(id) => HelloKey::Id(IdHash(id)),
                Err(_) => {
                    HelloKey::Full(XaeroID::from_bytes(kb).map_err(|_| FrameError::Invalid {
                        field: "public key",
                    })?)
                }
            };
            let signature = Signature::from_bytes(r.bytes16()?)
                .map_err(|_| FrameError::Invalid { field: "signature" })?;
            let mac = r.arr()?;
            Message::Hello(Box::new(Hello {
                tag,
                role,
                initiator_endpoint,
                acceptor_endpoint,
                keying_material,
                group,
                key,
                signature,
                mac,
            }))
        }
        MessageType::Checkpoints => {
            let n = r.count(2)?;
            let mut checkpoints = Vec::with_capacity(r.room::<SignedCheckpoint>(n));
            for _ in 0..n {
                checkpoints.push(checkpoint(r.bytes16()?)?);
            }
            let n = r.count(2)?;
            let mut keys = Vec::with_capacity(r.room::<XaeroID>(n));
            for _ in 0..n {
                keys.push(
                    XaeroID::from_bytes(r.bytes16()?).map_err(|_| FrameError::Invalid {
                        field: "public key",
                    })?,
                );
            }
            Message::Checkpoints { checkpoints, keys }
        }
        MessageType::Request => Message::Request(Request {
            author: AuthorId(r.arr()?),
            from_seq: r.u64()?,
            to_seq: r.u64()?,
        }),
        MessageType::Events | MessageType::Push => {
            let author = AuthorId(r.arr()?);
            let first_seq = r.u64()?;
            let checkpoint = checkpoint(r.bytes16()?)?;
            let (proof, events) = batch_tail(&mut r)?;
            let e = Events {
                author,
                first_seq,
                checkpoint,
                proof,
                events,
            };
            if ty == MessageType::Events {
                Message::Events(e)
            } else {
                Message::Push(e)
            }
        }
        MessageType::EventsByRef => {
            let author = AuthorId(r.arr()?);
            let first_seq = r.u64()?;
            let checkpoint_length = r.u64()?;
            let (proof, events) = batch_tail(&mut r)?;
            Message::EventsByRef(EventsByRef {
                author,
                first_seq,
                checkpoint_length,
                proof,
                events,
            })
        }
        MessageType::ForkEvidence => {
            let a = checkpoint(r.bytes16()?)?;
            let b = checkpoint(r.bytes16()?)?;
            Message::ForkEvidence(Box::new((a, b)))
        }
        MessageType::Error => {
            let code = r.u16()?;
            let reason = r.bytes16()?;
            if reason.len() > MAX_REASON_LEN {
                return Err(FrameError::Invalid {
                    field: "reason length",
                });
            }
            let reason = std::str::from_utf8(reason)
                .map_err(|_| FrameError::Invalid { field: "reason" })?
                .to_owned();
            Message::Error { code, reason }
        }
    };
    r.finish()?;
    Ok(msg)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use proptest::prelude::*;
    use std::sync::OnceLock;
    use xaeroflux_core::{Checkpoint, Hlc};
    use xaeroid::XaeroKeypair;

    fn kp() -> &'static XaeroKeypair {
        static KP: OnceLock<XaeroKeypair> = OnceLock::new();
        KP.get_or_init(|| XaeroKeypair::generate_from_seed(&[3; 32]))
    }

    fn cps() -> &'static [SignedCheckpoint] {
        static CPS: OnceLock<Vec<SignedCheckpoint>> = OnceLock::new();
        CPS.get_or_init(|| {
            (0..4u8)
                .map(|i| {
                    Checkpoint {
                        group: GroupId([i; 32]),
                        author: AuthorId(*kp().id().as_bytes()),
                        length: u64::from(i) * 7,
                        root: [i + 1; 32],
                        hlc: Hlc::new(1000, u16::from(i)),
                    }
                    .sign(kp())
                })
                .collect()
        })
    }

    fn arb_message() -> impl Strategy<Value = Message> {
        let cp = (0usize..4).prop_map(|i| cps()[i].clone());
        let events = (
            any::<[u8; 32]>(),
            any::<u64>(),
            cp.clone(),
            prop::collection::vec(any::<[u8; 32]>(), 0..8),
            prop::collection::vec(prop::collection::vec(any::<u8>(), 0..300), 0..8),
        )
            .prop_map(|(a, first_seq, checkpoint, proof, events)| Events {
                author: AuthorId(a),
                first_seq,
                checkpoint,
                proof,
                events: events.iter().collect(),
            });
        prop_oneof![
            (
                any::<[u8; 32]>(),
                any::<[u8; 32]>(),
                any::<[u8; 32]>(),
                any::<bool>(),
                any::<[u8; 32]>()
            )
                .prop_map(|(i, a, k, r, mac)| Message::Hello(Box::new(Hello {
                    tag: PROTOCOL_TAG,
                    role: if r { Role::Initiator } else { Role::Acceptor },
                    initiator_endpoint: i,
                    acceptor_endpoint: a,
                    keying_material: k,
                    group: GroupId(i),
                    key: if r {
                        HelloKey::Full(kp().public().clone())
                    } else {
                        HelloKey::Id(kp().id())
                    },
                    signature: cps()[0].signature.clone(),
                    mac,
                }))),
            (prop::collection::vec(cp.clone(), 0..4), 0usize..3).prop_map(|(checkpoints, k)| {
                Message::Checkpoints {
                    checkpoints,
                    keys: vec![kp().public().clone(); k],
                }
            }),
            (any::<[u8; 32]>(), any::<u64>(), any::<u64>()).prop_map(|(a, f, t)| {
                Message::Request(Request {
                    author: AuthorId(a),
                    from_seq: f,
                    to_seq: t,
                })
            }),
            events.clone().prop_map(Message::Events),
            (events.clone(), any::<u64>()).prop_map(|(e, len)| {
                Message::EventsByRef(EventsByRef {
                    author: e.author,
                    first_seq: e.first_seq,
                    checkpoint_length: len,
                    proof: e.proof,
                    events: e.events,
                })
            }),
            events.prop_map(Message::Push),
            (cp.clone(), cp).prop_map(|(a, b)| Message::ForkEvidence(Box::new((a, b)))),
            (any::<u16>(), ".{0,40}").prop_map(|(code, reason)| Message::Error { code, reason }),
        ]
    }

    #[test]
    fn header_layout() {
        let f = encode(&Message::Request(Request {
            author: AuthorId([9; 32]),
            from_seq: 1,
            to_seq: 2,
        }));
        assert_eq!(f.len(), 6 + 48);
        assert_eq!(&f[..4], &50u32.to_le_bytes());
        assert_eq!(f[4], FRAME_VERSION);
        assert_eq!(f[5], MessageType::Request as u8);
    }

    #[test]
    fn typed_errors() {
        let good = encode(&Message::Error {
            code: 3,
            reason: "x".into(),
        });
        let mut d = FrameDecoder::new();
        d.push(&((MAX_FRAME as u32) + 1).to_le_bytes());
        assert!(matches!(
            d.next_message(),
            Err(FrameError::Oversized { .. })
        ));
        let mut v = good.clone();
        v[4] = 9;
        assert_eq!(decode(&v), Err(FrameError::UnknownVersion { found: 9 }));
        let mut v = good.clone();
        v[5] = 99;
        assert_eq!(decode(&v), Err(FrameError::UnknownType { found: 99 }));
        assert!(matches!(
            decode(&good[..good.len() - 1]),
            Err(FrameError::Truncated { .. })
        ));
        let mut v = good.clone();
        v.push(0);
        assert_eq!(decode(&v), Err(FrameError::TrailingBytes { extra: 1 }));
        // A body with bytes after its last field.
        let mut v = good.clone();
        v.push(0);
        let len = (v.len() - 4) as u32;
        v[..4].copy_from_slice(&len.to_le_bytes());
        assert_eq!(decode(&v), Err(FrameError::TrailingBytes { extra: 1 }));
        assert_eq!(
            decode(&[1, 0, 0, 0, 1]),
            Err(FrameError::Undersized { len: 1 })
        );
    }

    proptest! {
        #[test]
        fn round_trip_in_arbitrary_chunks(msgs in prop::collection::vec(arb_message(), 1..4),
                                          cuts in prop::collection::vec(1usize..64, 1..40)) {
            let mut stream = Vec::new();
            for m in &msgs {
                let f = encode(m);
                prop_assert_eq!(f.len(), 4 + u32::from_le_bytes(f[..4].try_into().unwrap()) as usize);
                prop_assert_eq!(&decode(&f).unwrap(), m);
                stream.extend_from_slice(&f);
            }
            let mut d = FrameDecoder::new();
            let mut out = Vec::new();
            let mut rest = &stream[..];
            let mut i = 0;
            while !rest.is_empty() {
                let n = cuts[i % cuts.len()].min(rest.len());
                d.push(&rest[..n]);
                rest = &rest[n..];
                i += 1;
                while let Some(m) = d.next_message().unwrap() {
                    out.push(m);
                }
            }
            prop_assert_eq!(out, msgs);
            prop_assert_eq!(d.buffered(), 0);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..2000)) {
            let mut d = FrameDecoder::new();
            d.push(&bytes);
            while let Ok(Some(m)) = d.next_message() {
                // Whatever decodes re-encodes to a frame that decodes the same.
                prop_assert_eq!(decode(&encode(&m)).unwrap(), m);
            }
        }

        #[test]
        fn handshake_decoder_takes_only_hello_and_error(m in arb_message(), cut in 6usize..64) {
            let f = encode(&m);
            let mut d = FrameDecoder::handshake();
            // The refusal comes from the 6-byte header, before the body arrives.
            d.push(&f[..cut.min(f.len())]);
            let first = d.next_message();
            match &m {
                Message::Hello(_) | Message::Error { .. } => {
                    let got = match first.unwrap() {
                        Some(got) => got,
                        None => {
                            d.push(&f[cut.min(f.len())..]);
                            d.next_message().unwrap().unwrap()
                        }
                    };
                    prop_assert_eq!(got, m.clone());
                    // Once opened, the decoder takes everything.
                    d.open();
                    d.push(&encode(&Message::Request(Request { author: AuthorId([1; 32]), from_seq: 0, to_seq: 1 })));
                    prop_assert!(d.next_message().unwrap().is_some());
                }
                _ if f.len() - 4 > MAX_HANDSHAKE_FRAME => {
                    prop_assert!(matches!(first, Err(FrameError::Oversized { .. })), "{:?}", first);
                }
                _ => {
                    prop_assert!(matches!(first, Err(FrameError::NotAllowed { .. })), "{:?}", first);
                }
            }
        }

        #[test]
        fn mutated_frames_never_panic(m in arb_message(), idx in any::<usize>(), byte in any::<u8>()) {
            let mut f = encode(&m);
            let i = idx % f.len();
            f[i] = byte;
            let _ = decode(&f);
        }
    }
}
