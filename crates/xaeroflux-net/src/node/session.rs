//! One session per connection: the acceptor's group pick, the driver loop and the
//! error-code close.
//!
//! Stream use: the initiator opens one bidirectional stream and sends its Hello
//! first; frames flow both ways on that stream only. Closing: the session's `Error`
//! frame (if any) is flushed and acknowledged, then the connection is closed with the
//! [`ErrorCode`] as the QUIC application error code and the reason as its text.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use iroh::endpoint::{Connection, RecvStream, SendStream, VarInt};
use iroh::protocol::{AcceptError, ProtocolHandler};
use tokio::sync::{Notify, mpsc};
use tokio::task::JoinHandle;
use tracing::Instrument;
use xaeroflux_core::{Group, GroupId};
use xaeroflux_sync::frame::{self, MAX_HANDSHAKE_FRAME, Message};
use xaeroflux_sync::{
    ErrorCode, FrameDecoder, FrameError, HostError, Input, NON_MEMBER_REASON, Output, PeerEvent,
    Role, Session, SessionConfig, SyncHost, SystemEvent, TransportParams, sanitize_reason,
};

use super::{
    Inner, KEYING_CONTEXT, KEYING_LABEL, SessionCounters, forget_if_unknown, register, retire,
};

/// Bytes read from the stream at once before the group is known: one whole frame as
/// the handshake allows it, so an unproven peer never makes us hold more than two.
const READ_CHUNK: usize = MAX_HANDSHAKE_FRAME;
/// Bytes read from the stream at once in a session: one read drains every chunk QUIC
/// has ready (up to this much), so a session steps once per burst, not once per packet.
const READ_BUF: usize = 512 * 1024;
/// Committed batches queued per session before pushes are dropped.
const COMMITTED_QUEUE: usize = 256;
/// Unsent bytes queued per session before the peer counts as not reading.
const MAX_OUTBOX_BYTES: usize = 32 * 1024 * 1024;
/// Frames are coalesced into writes of about this size.
const WRITE_COALESCE: usize = 64 * 1024;
/// How long a close waits for the last frames to be acknowledged.
const CLOSE_LINGER: Duration = Duration::from_secs(1);
/// How long a shutdown waits for sessions to close.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);

/// The [`ProtocolHandler`] of [`super::ALPN`].
#[derive(Debug, Clone)]
pub(super) struct Acceptor(pub(super) Arc<Inner>);

impl ProtocolHandler for Acceptor {
    async fn accept(&self, conn: Connection) -> Result<(), AcceptError> {
        accept(self.0.clone(), conn).await;
        Ok(())
    }

    /// The router aborts accepted connections once this returns: give the sessions
    /// (which saw the shutdown flag) time to flush, close and report.
    async fn shutdown(&self) {
        let deadline = tokio::time::Instant::now() + SHUTDOWN_GRACE;
        while !self.0.tables().sessions.is_empty() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// What the first frame of an accepted stream led to.
enum Peeked {
    Session(Group, Vec<u8>),
    Refuse(ErrorCode, String),
    /// The stream or connection ended before a whole frame.
    Gone(String),
}

/// Reads until the first frame decodes; never buffers more than one handshake frame
/// plus one read chunk (8 KiB).
async fn peek(inner: &Inner, recv: &mut RecvStream) -> Peeked {
    let mut raw = Vec::new();
    let mut dec = FrameDecoder::handshake();
    loop {
        match recv.read_chunk(READ_CHUNK).await {
            Ok(Some(chunk)) => {
                raw.extend_from_slice(&chunk);
                dec.push(&chunk);
            }
            Ok(None) => return Peeked::Gone("stream finished before a hello".into()),
            Err(e) => return Peeked::Gone(sanitize_reason(&e.to_string())),
        }
        match dec.next_message() {
            Ok(None) => {}
            Ok(Some(Message::Hello(h))) => {
                return match inner.group(&h.group) {
                    Some(g) => Peeked::Session(g, raw),
                    // Exactly what a wrong MAC gets: a non-member learns nothing.
                    None => Peeked::Refuse(ErrorCode::BadMac, NON_MEMBER_REASON.into()),
                };
            }
            Ok(Some(_)) => return Peeked::Refuse(ErrorCode::Unexpected, "expected hello".into()),
            Err(e @ FrameError::Oversized { .. }) => {
                return Peeked::Refuse(ErrorCode::FrameTooLarge, e.to_string());
            }
            Err(e @ FrameError::NotAllowed { .. }) => {
                return Peeked::Refuse(ErrorCode::Unexpected, e.to_string());
            }
            Err(e) => return Peeked::Refuse(ErrorCode::Malformed, e.to_string()),
        }
    }
}

fn close_code(code: ErrorCode) -> VarInt {
    VarInt::from_u32(u32::from(code.as_u16()))
}

fn close_reason(reason: &str) -> &[u8] {
    let b = reason.as_bytes();
    &b[..b.len().min(256)]
}

/// Counts an accepted connection as waiting for its first frame while it lives.
struct Peeking(Arc<Inner>);

impl Peeking {
    /// Admits a connection unless the node is at its connection limits.
    fn admit(inner: &Arc<Inner>) -> Result<Self, &'static str> {
        let lim = inner.cfg.limits;
        let mut t = inner.tables();
        if t.connections() >= lim.max_connections {
            return Err("too many connections");
        }
        if t.unauthenticated() >= lim.max_unauthenticated {
            return Err("too many unauthenticated connections");
        }
        t.peeking += 1;
        Ok(Self(inner.clone()))
    }
}

impl Drop for Peeking {
    fn drop(&mut self) {
        let mut t = self.0.tables();
        t.peeking = t.peeking.saturating_sub(1);
    }
}

/// Serves an accepted connection: pick the group from the first Hello, then drive.
async fn accept(inner: Arc<Inner>, conn: Connection) {
    let remote = *conn.remote_id().as_bytes();
    let peeking = match Peeking::admit(&inner) {
        Ok(p) => p,
        Err(why) => {
            refuse(&inner, &conn, None, remote, ErrorCode::Busy, why).await;
            return;
        }
    };
    let mut stop = inner.shutdown.subscribe();
    let opened = tokio::select! {
        biased;
        _ = stop.wait_for(|s| *s) => return,
        r = tokio::time::timeout(inner.cfg.handshake_timeout, async {
            let (send, mut recv) = conn.accept_bi().await.map_err(|e| e.to_string())?;
            let p = peek(&inner, &mut recv).await;
            Ok::<_, String>((send, recv, p))
        }) => r,
    };
    drop(peeking);
    let (mut send, recv, peeked) = match opened {
        Err(_) => {
            refuse(
                &inner,
                &conn,
                None,
                remote,
                ErrorCode::Timeout,
                "handshake timed out",
            )
            .await;
            return;
        }
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "connection ended before a stream");
            return;
        }
        Ok(Ok(x)) => x,
    };
    match peeked {
        Peeked::Session(group, raw) => {
            drive(inner, conn, send, recv, Role::Acceptor, group, raw).await;
        }
        Peeked::Refuse(code, why) => {
            refuse(&inner, &conn, Some(&mut send), remote, code, &why).await;
        }
        Peeked::Gone(why) => {
            report(
                &inner.host,
                PeerEvent::Refused {
                    endpoint: remote,
                    code: ErrorCode::Malformed,
                    reason: why,
                },
            )
            .await;
        }
    }
}

/// Refuses a connection before any session: error frame, close, event.
async fn refuse(
    inner: &Inner,
    conn: &Connection,
    send: Option<&mut SendStream>,
    remote: [u8; 32],
    code: ErrorCode,
    why: &str,
) {
    tracing::debug!(code = ?code, why, "refusing connection");
    if let Some(send) = send {
        let bytes = frame::encode(&Message::Error {
            code: code.as_u16(),
            reason: why.to_string(),
        });
        let _ = tokio::time::timeout(CLOSE_LINGER, async {
            if send.write_all(&bytes).await.is_ok() && send.finish().is_ok() {
                let _ = send.stopped().await;
            }
        })
        .await;
    }
    conn.close(close_code(code), close_reason(why));
    report(
        &inner.host,
        PeerEvent::Refused {
            endpoint: remote,
            code,
            reason: why.to_string(),
        },
    )
    .await;
}

/// Runs the initiator side on a fresh connection; returns whether the handshake
/// completed.
pub(super) async fn initiate(inner: Arc<Inner>, conn: Connection, group: GroupId) -> bool {
    let Some(g) = inner.group(&group) else {
        conn.close(close_code(ErrorCode::Normal), b"group left");
        return false;
    };
    let (send, recv) = match conn.open_bi().await {
        Ok(s) => s,
        Err(e) => {
            tracing::debug!(error = %e, "cannot open stream");
            return false;
        }
    };
    drive(inner, conn, send, recv, Role::Initiator, g, Vec::new()).await
}

/// Counts the frames of a byte stream from their length prefixes (see
/// [`xaeroflux_sync::frame`]), without buffering or decoding them.
#[derive(Debug, Default)]
struct FrameCounter {
    len: [u8; 4],
    have: usize,
    /// Body bytes of the current frame still to skip.
    skip: usize,
}

impl FrameCounter {
    /// Consumes `bytes`; returns the frames whose length prefix completed in them.
    fn feed(&mut self, mut bytes: &[u8]) -> u64 {
        let mut frames = 0;
        while !bytes.is_empty() {
            if self.skip > 0 {
                let n = self.skip.min(bytes.len());
                self.skip -= n;
                bytes = &bytes[n..];
                continue;
            }
            let n = (4 - self.have).min(bytes.len());
            self.len[self.have..self.have + n].copy_from_slice(&bytes[..n]);
            self.have += n;
            bytes = &bytes[n..];
            if self.have == 4 {
                self.skip = u32::from_le_bytes(self.len) as usize;
                self.have = 0;
                frames += 1;
            }
        }
        frames
    }
}

/// Frames waiting for the writer task, bounded in bytes.
struct Outbox {
    tx: mpsc::UnboundedSender<Vec<u8>>,
    queued: Arc<AtomicUsize>,
    inner: Arc<Inner>,
}

/// A session queue above this much checks the node-wide outbox limit too.
const CHECK_TOTAL_ABOVE: usize = 256 * 1024;

impl Outbox {
    /// Queues a frame; `false` once the peer has let too much pile up, or the node's
    /// sessions together hold more than [`crate::NetLimits::max_outbox_bytes`].
    fn push(&self, frame: Vec<u8>) -> bool {
        let q = self.queued.fetch_add(frame.len(), Ordering::Relaxed) + frame.len();
        let _ = self.tx.send(frame);
        if q <= CHECK_TOTAL_ABOVE {
            return true;
        }
        q <= MAX_OUTBOX_BYTES
            && self.inner.tables().outbox_bytes() <= self.inner.cfg.limits.max_outbox_bytes
    }
}

/// Writes queued frames in order, coalesced; finishes the stream and waits for the
/// peer's acknowledgement once the queue is dropped.
async fn writer(
    mut send: SendStream,
    mut rx: mpsc::UnboundedReceiver<Vec<u8>>,
    queued: Arc<AtomicUsize>,
    drained: Arc<Drained>,
) {
    // Frames are handed over as they are (no copy into a coalescing buffer); several
    // queued ones go down in one call.
    let mut chunks: Vec<Bytes> = Vec::new();
    while let Some(first) = rx.recv().await {
        let mut len = first.len();
        chunks.clear();
        chunks.push(Bytes::from(first));
        while len < WRITE_COALESCE {
            match rx.try_recv() {
                Ok(f) => {
                    len += f.len();
                    chunks.push(Bytes::from(f));
                }
                Err(_) => break,
            }
        }
        if send.write_all_chunks(&mut chunks).await.is_err() {
            return;
        }
        queued.fetch_sub(len, Ordering::Relaxed);
        drained.bytes.fetch_add(len as u64, Ordering::Relaxed);
        drained.wake.notify_one();
    }
    if send.finish().is_ok() {
        let _ = send.stopped().await;
    }
}

/// Bytes the writer task wrote since the session was last told
/// ([`Input::Drained`]), and a wake-up for a session whose answers wait for them.
#[derive(Debug, Default)]
struct Drained {
    bytes: AtomicU64,
    wake: Notify,
}

/// What one step of the state machine asks of the async side.
#[derive(Default)]
struct Step {
    sends: Vec<Vec<u8>>,
    close: Option<(ErrorCode, String)>,
    established: bool,
    /// Answers wait for the outbox to drain.
    backlog: bool,
}

/// Per-session context for the blocking step.
#[derive(Clone)]
struct Ctx {
    inner: Arc<Inner>,
    remote: [u8; 32],
    group: GroupId,
}

/// `e` and its causes, for one log line.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        src = inner.source();
    }
    s
}

/// Runs `input` through the session on a blocking thread with a fresh read view and
/// carries out the host-side outputs in order.
fn step_blocking(ctx: &Ctx, session: &mut Session, input: Input, drained: u64, now: u64) -> Step {
    let host = &ctx.inner.host;
    let mut outs = Vec::new();
    let mut input = Some(input);
    let read = host.read_logs(&mut |view| {
        if let Some(i) = input.take() {
            // What the writer wrote since the last step first: the input is then
            // answered against the real outbox level.
            if drained > 0 {
                outs = session.handle(Input::Drained { bytes: drained }, now, view);
            }
            outs.extend(session.handle(i, now, view));
        }
    });
    let mut step = Step::default();
    // A failed read: what the session computed from that view is dropped. The host
    // logged the failure and raised its system event.
    match read {
        Ok(()) => {}
        Err(HostError::Closed) => {
            step.close = Some((ErrorCode::Normal, "node closed".into()));
            return step;
        }
        Err(_) => outs = session.end_on_store_failure(),
    }
    for o in outs {
        match o {
            Output::Send(b) => step.sends.push(b),
            Output::Close { code, reason } => step.close = Some((code, reason)),
            Output::StoreVerified(batch) => {
                match host.store_verified(batch) {
                    Ok(()) => {}
                    // The session believes the batch stored: it cannot go on.
                    Err(HostError::Closed) => {
                        step.close = Some((ErrorCode::Normal, "node closed".into()));
                        break;
                    }
                    Err(e) => {
                        tracing::warn!(error = %error_chain(&e), "cannot store a verified batch");
                        for o in session.end_on_store_failure() {
                            match o {
                                Output::Send(b) => step.sends.push(b),
                                Output::Close { code, reason } => step.close = Some((code, reason)),
                                _ => {}
                            }
                        }
                        break;
                    }
                }
            }
            Output::Event(ev) => {
                match &ev {
                    SystemEvent::PeerAuthenticated { peer } => {
                        let mut t = ctx.inner.tables();
                        if let Some(p) = t.peers.get_mut(&ctx.remote) {
                            p.identity = Some(*peer);
                        }
                    }
                    SystemEvent::SyncProgress { events, bytes } => {
                        let mut t = ctx.inner.tables();
                        if let Some(p) = t.peers.get_mut(&ctx.remote) {
                            p.events_received += events;
                            p.bytes_received += bytes;
                        }
                    }
                    SystemEvent::ForkDetected { ours, theirs, .. } => {
                        if let Err(e) = host.record_fork(ours, theirs) {
                            tracing::warn!(error = %e, "cannot record fork evidence");
                        }
                    }
                    SystemEvent::PeerRejected { .. } => {}
                }
                host.peer_event(PeerEvent::Session {
                    endpoint: ctx.remote,
                    group: ctx.group,
                    event: ev,
                });
            }
        }
    }
    step.established = session.is_established();
    step.backlog = session.has_backlog();
    step
}

/// Moves the session to a blocking thread for one input and back.
async fn step(
    ctx: &Ctx,
    session: Session,
    input: Input,
    drained: u64,
    now: u64,
) -> Option<(Session, Step)> {
    let c = ctx.clone();
    tokio::task::spawn_blocking(move || {
        let mut s = session;
        let st = step_blocking(&c, &mut s, input, drained, now);
        (s, st)
    })
    .await
    .ok()
}

/// Drives one session until it closes; returns whether the handshake completed.
async fn drive(
    inner: Arc<Inner>,
    conn: Connection,
    send: SendStream,
    recv: RecvStream,
    role: Role,
    group: Group,
    first_bytes: Vec<u8>,
) -> bool {
    let span = tracing::debug_span!("session", peer = %conn.remote_id().fmt_short(), ?role);
    drive_inner(inner, conn, send, recv, role, group, first_bytes)
        .instrument(span)
        .await
}

async fn drive_inner(
    inner: Arc<Inner>,
    conn: Connection,
    mut send: SendStream,
    mut recv: RecvStream,
    role: Role,
    group: Group,
    first_bytes: Vec<u8>,
) -> bool {
    let remote = *conn.remote_id().as_bytes();
    let gid = group.id();
    let mut km = [0u8; 32];
    if conn
        .export_keying_material(&mut km, KEYING_LABEL, KEYING_CONTEXT)
        .is_err()
    {
        conn.close(close_code(ErrorCode::Protocol), b"no keying material");
        return false;
    }
    let params = TransportParams {
        local_endpoint: inner.local_id(),
        remote_endpoint: remote,
        keying_material: km,
    };
    let mut cfg = SessionConfig::new(group, inner.host.keypair());
    // The peer stored our key in an earlier session: name it by id in our Hello.
    cfg.short_hello = role == Role::Initiator
        && inner
            .tables()
            .peers
            .get(&remote)
            .and_then(|p| p.known.as_ref())
            .is_some_and(|k| k.short_hello);
    cfg.handshake_timeout_ms =
        u64::try_from(inner.cfg.handshake_timeout.as_millis()).unwrap_or(u64::MAX);
    cfg.anti_entropy_interval_ms =
        u64::try_from(inner.cfg.anti_entropy_interval.as_millis()).unwrap_or(u64::MAX);
    let (ctx_tx, mut committed) = mpsc::channel(COMMITTED_QUEUE);
    let counters = Arc::new(SessionCounters::default());
    let mut frames_in = FrameCounter::default();
    let count_in = |frames_in: &mut FrameCounter, bytes: &[u8]| {
        counters
            .frames_received
            .fetch_add(frames_in.feed(bytes), Ordering::Relaxed);
        counters
            .bytes_received
            .fetch_add(bytes.len() as u64, Ordering::Relaxed);
    };
    count_in(&mut frames_in, &first_bytes);
    let queued = Arc::new(AtomicUsize::new(0));
    let id = match register(
        &inner,
        &conn,
        gid,
        role == Role::Initiator,
        ctx_tx,
        counters.clone(),
        queued.clone(),
    ) {
        Ok(id) => id,
        Err(why) => {
            if role == Role::Acceptor {
                refuse(&inner, &conn, Some(&mut send), remote, ErrorCode::Busy, why).await;
            } else {
                conn.close(close_code(ErrorCode::Busy), why.as_bytes());
            }
            forget_if_unknown(&inner, &remote);
            return false;
        }
    };
    let ctx = Ctx {
        inner: inner.clone(),
        remote,
        group: gid,
    };
    let (otx, orx) = mpsc::unbounded_channel();
    let outbox = Outbox {
        tx: otx,
        queued: queued.clone(),
        inner: inner.clone(),
    };
    let drained = Arc::new(Drained::default());
    let writer: JoinHandle<()> = tokio::spawn(writer(send, orx, queued, drained.clone()));
    let mut backlog = false;
    let mut stop = inner.shutdown.subscribe();
    let mut tick = tokio::time::interval(inner.cfg.tick_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);

    let mut session = Some(Session::new(cfg));
    // Small until the peer proved membership.
    let mut rbuf = vec![0u8; READ_CHUNK];
    let mut established = false;
    let mut pending: Vec<Input> = vec![Input::Connected { role, params }];
    if !first_bytes.is_empty() {
        pending.push(Input::Frame(first_bytes));
    }
    let end: (ErrorCode, String) = 'run: loop {
        for input in pending.drain(..) {
            let Some(s) = session.take() else {
                break 'run (ErrorCode::Normal, "session lost".into());
            };
            let wrote = drained.bytes.swap(0, Ordering::Relaxed);
            let Some((s, st)) = step(&ctx, s, input, wrote, inner.now_ms()).await else {
                break 'run (ErrorCode::Normal, "session step panicked".into());
            };
            session = Some(s);
            backlog = st.backlog;
            for b in st.sends {
                counters.frames_sent.fetch_add(1, Ordering::Relaxed);
                counters
                    .bytes_sent
                    .fetch_add(b.len() as u64, Ordering::Relaxed);
                if !outbox.push(b) {
                    break 'run (ErrorCode::Timeout, "peer does not read".into());
                }
            }
            if st.established && !established {
                established = true;
                rbuf.resize(READ_BUF, 0);
                let peer = session.as_ref().and_then(|s| s.peer()).cloned();
                if let Some(slot) = inner.tables().sessions.get_mut(&id) {
                    slot.established = true;
                }
                // Both hosts now keep each other's key (see PeerEvent::Connected).
                set_short_hello(&inner, &remote, true);
                if let Some(key) = peer {
                    report(
                        &inner.host,
                        PeerEvent::Connected {
                            peer: key.id(),
                            key,
                            endpoint: remote,
                            group: gid,
                        },
                    )
                    .await;
                }
            }
            if let Some(c) = st.close {
                break 'run c;
            }
        }
        if established && is_duplicate(&inner, id, remote, gid, role) {
            break 'run (ErrorCode::Normal, "duplicate session".into());
        }
        // Priorities: shutdown first, then the peer's bytes (so requests are answered
        // before more pushes queue up), then pushes, then time.
        tokio::select! {
            biased;
            _ = stop.wait_for(|s| *s) => break 'run (ErrorCode::Normal, "shutting down".into()),
            r = recv.read(&mut rbuf) => match r {
                Ok(Some(n)) => {
                    let bytes = rbuf.get(..n).unwrap_or_default();
                    count_in(&mut frames_in, bytes);
                    pending.push(Input::Frame(bytes.to_vec()));
                }
                Ok(None) => break 'run (ErrorCode::Normal, "stream finished".into()),
                // The error may carry the peer's close reason.
                Err(e) => break 'run (
                    ErrorCode::Normal,
                    format!("connection lost: {}", sanitize_reason(&e.to_string())),
                ),
            },
            // Answers wait for the writer: resume them as it drains.
            _ = drained.wake.notified(), if backlog => pending.push(Input::Drained { bytes: 0 }),
            Some(b) = committed.recv() => pending.push(b.input()),
            _ = tick.tick() => pending.push(Input::Tick),
        }
    };
    inner.tables().sessions.remove(&id);
    // Flush what the session queued (its Error frame included), then close.
    drop(outbox);
    let _ = tokio::time::timeout(CLOSE_LINGER, writer).await;
    let (code, reason) = end;
    conn.close(close_code(code), close_reason(&reason));
    retire(&inner, remote, &counters.traffic(&conn));
    forget_if_unknown(&inner, &remote);
    if session.as_ref().is_some_and(Session::key_missed) {
        // One side lacks the other's key: whole keys in the next Hello.
        set_short_hello(&inner, &remote, false);
    }
    let peer = session.as_ref().and_then(|s| s.peer()).map(|p| p.id());
    tracing::debug!(?code, %reason, "session ended");
    report(
        &inner.host,
        PeerEvent::Disconnected {
            peer,
            endpoint: remote,
            group: gid,
            reason,
        },
    )
    .await;
    established
}

/// Hands a peer event to the host on a blocking thread: the host may touch its store
/// (a new peer's key is written to it), which must not stall the runtime.
async fn report(host: &Arc<dyn SyncHost>, event: PeerEvent) {
    let host = host.clone();
    if let Err(e) = tokio::task::spawn_blocking(move || host.peer_event(event)).await {
        tracing::warn!(error = %e, "peer event handler failed");
    }
}

/// Records whether our Hellos to a known `peer` may name our key by id
/// ([`crate::state::KnownPeer::short_hello`]); persists the known peers if it changed.
fn set_short_hello(inner: &Inner, peer: &[u8; 32], on: bool) {
    let changed = inner
        .tables()
        .peers
        .get_mut(peer)
        .and_then(|p| p.known.as_mut())
        .is_some_and(|k| std::mem::replace(&mut k.short_hello, on) != on);
    if changed {
        inner.persist_peers();
    }
}

/// Both ends dialled each other for one group: keep the connection initiated by the
/// smaller endpoint id (both ends apply the same rule, so exactly one survives).
fn is_duplicate(inner: &Inner, id: u64, remote: [u8; 32], group: GroupId, role: Role) -> bool {
    if role != Role::Initiator || inner.local_id() < remote {
        return false;
    }
    inner.tables().sessions.iter().any(|(k, s)| {
        *k != id && s.peer == remote && s.group == group && !s.initiator && s.established
    })
}

#[cfg(test)]
mod tests {
    use super::FrameCounter;
    use xaeroflux_sync::frame::{self, Message};

    #[test]
    fn frame_counter_counts_frames_in_any_chunking() {
        let msgs = [
            Message::Error {
                code: 1,
                reason: String::new(),
            },
            Message::Error {
                code: 2,
                reason: "x".repeat(300),
            },
            Message::Error {
                code: 3,
                reason: "y".into(),
            },
        ];
        let bytes: Vec<u8> = msgs.iter().flat_map(frame::encode).collect();
        for chunk in [1, 2, 3, 5, 7, 64, bytes.len()] {
            let mut c = FrameCounter::default();
            let n: u64 = bytes.chunks(chunk).map(|b| c.feed(b)).sum();
            assert_eq!(n, 3, "chunks of {chunk}");
            assert_eq!((c.have, c.skip), (0, 0));
        }
    }
}
