//! Catch-up, live push and fork handling of a [`Session`] (see the parent module).

use std::collections::VecDeque;

use xaeroflux_core::event::{accepted_from_network, reserved_payload_ok};
use xaeroflux_core::mmr::{Hash32, MAX_LEAF_COUNT};
use xaeroflux_core::{AuthorId, EventId, EventRef, GroupId, SignedCheckpoint};
use xaeroid::XaeroID;

use crate::host::VerifiedBatch;

use super::{
    ErrorCode, Fetch, MAX_REQUEST_SPAN, Output, Phase, Reject, Session, SystemEvent,
    VERIFIED_CACHE, reject,
};
use crate::events::EventList;
use crate::frame::{self, Events, EventsByRef, MAX_FRAME, Message, Request};
use crate::log::{Frontier, LogView, proof_ranges, subtree_pos};

/// What verifying a batch produced.
pub(super) struct Verified {
    /// The log's frontier after the batch.
    frontier: Frontier,
    /// The root of the prefix the batch was verified on.
    prefix_root: Option<Hash32>,
    /// The author's key.
    key: XaeroID,
    /// Encoded bytes of the batch's events.
    bytes: u64,
    /// The id of each event, computed while verifying (handed to the host so it does
    /// not hash the events again).
    ids: Vec<EventId>,
    /// Seq of the first event whose type no built feature accepts from the network.
    refused: Option<u64>,
    /// Seq of the first event [`LogView::may_write_event`] refuses (membership).
    cut: Option<u64>,
}

impl Session {
    /// Sends the checkpoints that changed since last advertised (all of them the first
    /// time), with the keys the peer has not been sent yet.
    pub(super) fn advertise(
        &mut self,
        logs: &(impl LogView + ?Sized),
        out: &mut Vec<Output>,
        always: bool,
    ) {
        let group = self.cfg.group.id();
        let mut checkpoints = Vec::new();
        let mut keys = Vec::new();
        for author in logs.authors(&group) {
            let Some(cp) = logs.latest_checkpoint(&group, &author) else {
                continue;
            };
            if self.sent_cps.get(&author) == Some(&cp.checkpoint.length) {
                continue;
            }
            if !self.keys_sent.contains(&author) {
                let Some(k) = logs.author_key(&author) else {
                    continue;
                };
                // The peer knows its own key, and ours from our Hello.
                let known = self.peer.as_ref().map(|p| p.id()) == Some(k.id())
                    || self.cfg.keypair.public().id() == k.id();
                if !known {
                    keys.push(k);
                }
                self.keys_sent.insert(author);
            }
            self.sent_cps.insert(author, cp.checkpoint.length);
            checkpoints.push(cp);
        }
        if always || !checkpoints.is_empty() {
            Self::send(out, &Message::Checkpoints { checkpoints, keys });
        }
    }

    pub(super) fn key_for(
        &self,
        author: &AuthorId,
        logs: &(impl LogView + ?Sized),
    ) -> Option<XaeroID> {
        self.keys
            .get(author)
            .cloned()
            .or_else(|| logs.author_key(author))
    }

    /// Verifies a checkpoint's signature (cached) for the session's group.
    pub(super) fn check_cp(&mut self, cp: &SignedCheckpoint, key: &XaeroID) -> Result<(), Reject> {
        if cp.checkpoint.group != self.cfg.group.id() {
            return Err(reject(
                ErrorCode::BadCheckpoint,
                "checkpoint of another group",
            ));
        }
        if cp.checkpoint.length > MAX_LEAF_COUNT {
            return Err(reject(
                ErrorCode::BadCheckpoint,
                "checkpoint length out of range",
            ));
        }
        let h = *blake3::hash(&cp.encode()).as_bytes();
        if self.verified.contains(&h) {
            return Ok(());
        }
        cp.verify(key).map_err(|_| {
            reject(
                ErrorCode::BadCheckpoint,
                "checkpoint signature does not verify",
            )
        })?;
        if self.verified.len() >= VERIFIED_CACHE {
            self.verified.clear();
        }
        self.verified.insert(h);
        Ok(())
    }

    /// A checkpoint the peer holds: fork check, then remember it for catch-up.
    pub(super) fn on_checkpoint(
        &mut self,
        cp: SignedCheckpoint,
        logs: &(impl LogView + ?Sized),
        out: &mut Vec<Output>,
    ) -> Result<(), Reject> {
        let group = self.cfg.group.id();
        let author = cp.checkpoint.author;
        let Some(key) = self.key_for(&author, logs) else {
            // Cannot verify without the key: ignore (honest peers send keys first).
            return Ok(());
        };
        self.check_cp(&cp, &key)?;
        if !logs.may_write(&group, &author) {
            return Ok(());
        }
        if self.forked.contains(&author)
            || self.refused_logs.contains(&author)
            || logs.is_forked(&group, &author)
        {
            return Ok(());
        }
        let len = cp.checkpoint.length;
        if let Some(root) = logs.root_at(&group, &author, len)
            && root != cp.checkpoint.root
        {
            let ours = logs
                .checkpoint_at(&group, &author, len)
                .or_else(|| logs.latest_checkpoint(&group, &author));
            if let Some(ours) = ours {
                self.fork(author, ours, cp, out);
            }
            return Ok(());
        }
        if let Some(prev) = self.peer_cps.get(&author) {
            if prev.checkpoint.length == len && prev.checkpoint.root != cp.checkpoint.root {
                let prev = prev.clone();
                self.fork(author, prev, cp, out);
                return Ok(());
            }
            if prev.checkpoint.length >= len {
                return Ok(());
            }
        }
        self.peer_cps.insert(author, cp);
        Ok(())
    }

    /// Stops fetching a log through this session (fork, refused event type).
    pub(super) fn stop_log(&mut self, author: &AuthorId) {
        self.peer_cps.remove(author);
        if let Some(f) = self.fetch.remove(author) {
            self.in_flight = self.in_flight.saturating_sub(f.in_flight.len());
        }
    }

    /// A verified batch holds an event of a type that no built feature accepts from
    /// the network ([`accepted_from_network`]), or an attachment that does not decode
    /// ([`reserved_payload_ok`]): the author really wrote it (the batch
    /// reproduces its signed root), so the log cannot be synced past it. The log stops
    /// in this session (nothing of the batch is stored) and the session goes on.
    fn refuse_log(&mut self, author: AuthorId) {
        self.refused_logs.insert(author);
        self.stop_log(&author);
    }

    pub(super) fn fork(
        &mut self,
        author: AuthorId,
        ours: SignedCheckpoint,
        theirs: SignedCheckpoint,
        out: &mut Vec<Output>,
    ) {
        self.forked.insert(author);
        self.stop_log(&author);
        Self::send(
            out,
            &Message::ForkEvidence(Box::new((ours.clone(), theirs.clone()))),
        );
        out.push(Output::Event(SystemEvent::ForkDetected {
            author,
            ours: Box::new(ours),
            theirs: Box::new(theirs),
        }));
    }

    pub(super) fn on_fork_evidence(
        &mut self,
        a: SignedCheckpoint,
        b: SignedCheckpoint,
        logs: &(impl LogView + ?Sized),
        out: &mut Vec<Output>,
    ) -> Result<(), Reject> {
        let author = a.checkpoint.author;
        if b.checkpoint.author != author {
            return Err(reject(
                ErrorCode::BadCheckpoint,
                "evidence names two authors",
            ));
        }
        let Some(key) = self.key_for(&author, logs) else {
            return Ok(());
        };
        self.check_cp(&a, &key)?;
        self.check_cp(&b, &key)?;
        if a.checkpoint.length == b.checkpoint.length
            && a.checkpoint.root != b.checkpoint.root
            && !self.forked.contains(&author)
        {
            self.forked.insert(author);
            self.stop_log(&author);
            out.push(Output::Event(SystemEvent::ForkDetected {
                author,
                ours: Box::new(a),
                theirs: Box::new(b),
            }));
        }
        Ok(())
    }

    /// Issues requests for every log where the peer is ahead, within the bounds.
    pub(super) fn schedule(
        &mut self,
        now: u64,
        logs: &(impl LogView + ?Sized),
        out: &mut Vec<Output>,
    ) {
        if !self.peer_ready {
            return;
        }
        let group = self.cfg.group.id();
        for (author, cp) in &self.peer_cps {
            if self.in_flight >= self.cfg.max_in_flight {
                return;
            }
            let target = cp.checkpoint.length;
            let fetch = self.fetch.entry(*author).or_insert_with(|| {
                let frontier = logs.frontier(&group, author);
                Fetch {
                    requested_to: frontier.len(),
                    frontier,
                    in_flight: VecDeque::new(),
                }
            });
            if fetch.in_flight.is_empty() {
                // Another session (or a local write) may have advanced the store.
                let stored = logs.frontier(&group, author);
                if stored.len() > fetch.frontier.len() {
                    fetch.requested_to = stored.len();
                    fetch.frontier = stored;
                }
                fetch.requested_to = fetch.frontier.len();
            }
            while fetch.requested_to < target
                && self.in_flight < self.cfg.max_in_flight
                && fetch.in_flight.len() < self.cfg.max_in_flight_per_log
            {
                let from = fetch.requested_to;
                let span = self.cfg.max_request_events.clamp(1, MAX_REQUEST_SPAN);
                let to = target.min(from.saturating_add(span));
                out.push(Output::Send(frame::encode(&Message::Request(Request {
                    author: *author,
                    from_seq: from,
                    to_seq: to,
                }))));
                fetch.in_flight.push_back((to, now));
                fetch.requested_to = to;
                self.in_flight += 1;
            }
        }
    }

    /// Verifies a batch against `frontier`.
    pub(super) fn verify_batch(
        &mut self,
        e: &Events,
        frontier: &Frontier,
        logs: &(impl LogView + ?Sized),
    ) -> Result<Verified, Reject> {
        let group = self.cfg.group.id();
        let cp = &e.checkpoint.checkpoint;
        if cp.author != e.author {
            return Err(reject(
                ErrorCode::BadCheckpoint,
                "checkpoint of another author",
            ));
        }
        let key = self
            .key_for(&e.author, logs)
            .ok_or_else(|| reject(ErrorCode::BadCheckpoint, "unknown author key"))?;
        if !logs.may_write(&group, &e.author) {
            return Err(reject(ErrorCode::Unauthorized, "author may not write"));
        }
        if e.first_seq != frontier.len() {
            return Err(reject(
                ErrorCode::SeqGap,
                format!(
                    "batch starts at {}, expected {}",
                    e.first_seq,
                    frontier.len()
                ),
            ));
        }
        let end = e.first_seq.saturating_add(e.events.len() as u64);
        if e.events.is_empty() || cp.length < end {
            return Err(reject(ErrorCode::SeqGap, "batch past its checkpoint"));
        }
        self.check_cp(&e.checkpoint, &key)?;
        let prefix_root = frontier.root();
        let mut f = frontier.clone();
        let mut bytes = 0u64;
        let mut ids = Vec::with_capacity(e.events.len());
        let mut refused = None;
        let mut cut = None;
        for (i, raw) in e.events.iter().enumerate() {
            let ev = EventRef::decode(raw)
                .map_err(|err| reject(ErrorCode::BadEvent, err.to_string()))?;
            let h = &ev.header;
            if h.group != group || h.author != e.author {
                return Err(reject(ErrorCode::BadEvent, "event of another log"));
            }
            if h.seq != e.first_seq + i as u64 {
                return Err(reject(ErrorCode::SeqGap, "event seqs not contiguous"));
            }
            if refused.is_none()
                && !(accepted_from_network(h.event_type)
                    && reserved_payload_ok(h.event_type, ev.payload))
            {
                refused = Some(h.seq);
            }
            if cut.is_none() && !logs.may_write_event(&group, &e.author, h.seq, h.event_type) {
                cut = Some(h.seq);
            }
            let id = ev.id();
            if !f.push(&id) {
                return Err(reject(ErrorCode::SeqGap, "log full"));
            }
            ids.push(id);
            bytes += raw.len() as u64;
        }
        let mut g = f.clone();
        let ranges = proof_ranges(end, cp.length);
        if ranges.len() != e.proof.len() {
            return Err(reject(ErrorCode::RootMismatch, "proof of the wrong length"));
        }
        for ((_, h), node) in ranges.iter().zip(&e.proof) {
            if !g.push_node(*h, *node) {
                return Err(reject(ErrorCode::RootMismatch, "misaligned proof"));
            }
        }
        if g.root() != Some(cp.root) {
            return Err(reject(
                ErrorCode::RootMismatch,
                "events do not reproduce the signed root",
            ));
        }
        Ok(Verified {
            frontier: f,
            prefix_root,
            key,
            bytes,
            ids,
            refused,
            cut,
        })
    }

    /// A verified batch whose event at `cut` the group's membership refuses (a
    /// non-writer, or past a removal's cut-off): the events before it are stored (the
    /// signed root covers them) and the log stops in this session, as for a refused
    /// type (answers to requests still in flight are ignored). A later session asks
    /// again, when the membership may have changed (e.g. the op that makes the author
    /// a writer arrived after its events).
    fn store_before_cut(&mut self, e: Events, v: Verified, cut: u64, out: &mut Vec<Output>) {
        let keep = cut.saturating_sub(e.first_seq) as usize;
        if keep > 0 {
            let mut events = EventList::with_capacity(keep, e.events.byte_len());
            for raw in e.events.iter().take(keep) {
                events.push(raw);
            }
            let group = self.cfg.group.id();
            out.push(Output::StoreVerified(VerifiedBatch {
                group,
                author: e.author,
                author_key: v.key,
                first_seq: e.first_seq,
                prefix_root: v.prefix_root,
                ids: v.ids[..keep].to_vec(),
                events,
                checkpoint: Box::new(e.checkpoint),
            }));
        }
        self.refuse_log(e.author);
    }

    pub(super) fn emit_verified(e: Events, v: Verified, group: GroupId, out: &mut Vec<Output>) {
        out.push(Output::Event(SystemEvent::SyncProgress {
            events: e.events.len() as u64,
            bytes: v.bytes,
        }));
        out.push(Output::StoreVerified(VerifiedBatch {
            group,
            author: e.author,
            author_key: v.key,
            first_seq: e.first_seq,
            ids: v.ids,
            events: e.events,
            checkpoint: Box::new(e.checkpoint),
            prefix_root: v.prefix_root,
        }));
    }

    pub(super) fn on_events(
        &mut self,
        e: Events,
        now: u64,
        logs: &(impl LogView + ?Sized),
        out: &mut Vec<Output>,
    ) -> Result<(), Reject> {
        if self.forked.contains(&e.author) || self.refused_logs.contains(&e.author) {
            return Ok(());
        }
        let Some(fetch) = self.fetch.get(&e.author) else {
            return Err(reject(ErrorCode::Unexpected, "events nobody asked for"));
        };
        let Some(&(req_end, _)) = fetch.in_flight.front() else {
            return Err(reject(ErrorCode::Unexpected, "events nobody asked for"));
        };
        let frontier = fetch.frontier.clone();
        if e.first_seq.saturating_add(e.events.len() as u64) > req_end {
            return Err(reject(ErrorCode::SeqGap, "more events than requested"));
        }
        let mut v = self.verify_batch(&e, &frontier, logs)?;
        if v.refused.is_some() {
            self.refuse_log(e.author);
            self.schedule(now, logs, out);
            return Ok(());
        }
        if let Some(cut) = v.cut {
            self.store_before_cut(e, v, cut, out);
            self.schedule(now, logs, out);
            return Ok(());
        }
        let group = self.cfg.group.id();
        // The peer serves only what it stores: it holds the log up to here.
        self.note_sent(e.author, 0, v.frontier.len());
        if let Some(fetch) = self.fetch.get_mut(&e.author) {
            fetch.frontier = std::mem::take(&mut v.frontier);
            if fetch.frontier.len() == req_end {
                fetch.in_flight.pop_front();
                self.in_flight -= 1;
            }
        }
        Self::emit_verified(e, v, group, out);
        self.schedule(now, logs, out);
        Ok(())
    }

    /// Events naming the peer's advertised checkpoint: resolved, then as [`Events`].
    pub(super) fn on_events_by_ref(
        &mut self,
        e: EventsByRef,
        now: u64,
        logs: &(impl LogView + ?Sized),
        out: &mut Vec<Output>,
    ) -> Result<(), Reject> {
        if self.forked.contains(&e.author) || self.refused_logs.contains(&e.author) {
            return Ok(());
        }
        let checkpoint = self
            .peer_cps
            .get(&e.author)
            .filter(|c| c.checkpoint.length == e.checkpoint_length)
            .cloned()
            .ok_or_else(|| {
                reject(
                    ErrorCode::BadCheckpoint,
                    "events name a checkpoint that was not advertised",
                )
            })?;
        let EventsByRef {
            author,
            first_seq,
            proof,
            events,
            ..
        } = e;
        self.on_events(
            Events {
                author,
                first_seq,
                checkpoint,
                proof,
                events,
            },
            now,
            logs,
            out,
        )
    }

    pub(super) fn on_push(
        &mut self,
        e: Events,
        now: u64,
        logs: &(impl LogView + ?Sized),
        out: &mut Vec<Output>,
    ) -> Result<(), Reject> {
        if self.forked.contains(&e.author) || self.refused_logs.contains(&e.author) {
            return Ok(());
        }
        let group = self.cfg.group.id();
        let busy = self
            .fetch
            .get(&e.author)
            .is_some_and(|f| !f.in_flight.is_empty());
        let frontier = match self.fetch.get(&e.author) {
            Some(f) if f.frontier.len() >= logs.frontier(&group, &e.author).len() => {
                f.frontier.clone()
            }
            _ => logs.frontier(&group, &e.author),
        };
        let mut e = e;
        let end = e.first_seq.saturating_add(e.events.len() as u64);
        if !busy && e.first_seq < frontier.len() && end > frontier.len() {
            // Overlaps what we hold and goes past it: the peer pushed it while events
            // of the same commits reached us by another path. Its tail is kept (the
            // push's proof runs from its end, so the tail verifies on our frontier);
            // dropping it would make us request the tail, which would then cross this
            // session twice. The overlap still marks the log lazy on this session.
            self.lazy.insert(e.author);
            let skip = (frontier.len() - e.first_seq) as usize;
            let mut tail = EventList::with_capacity(e.events.len() - skip, e.events.byte_len());
            for raw in e.events.iter().skip(skip) {
                tail.push(raw);
            }
            e.first_seq = frontier.len();
            e.events = tail;
        }
        if !busy && e.first_seq == frontier.len() {
            let mut v = self.verify_batch(&e, &frontier, logs)?;
            if v.refused.is_some() {
                self.refuse_log(e.author);
                return Ok(());
            }
            if let Some(cut) = v.cut {
                self.store_before_cut(e, v, cut, out);
                return Ok(());
            }
            let fetch = self.fetch.entry(e.author).or_insert_with(|| Fetch {
                frontier: Frontier::new(),
                requested_to: 0,
                in_flight: VecDeque::new(),
            });
            fetch.requested_to = v.frontier.len();
            fetch.frontier = std::mem::take(&mut v.frontier);
            let end = fetch.frontier.len();
            self.note_sent(e.author, 0, end);
            Self::emit_verified(e, v, group, out);
            return Ok(());
        }
        if e.first_seq < frontier.len() {
            // We held (part of) it already: this peer relays the log to us after
            // another path did. It holds the log at least that far.
            self.lazy.insert(e.author);
            let end = e.first_seq.saturating_add(e.events.len() as u64);
            if end <= frontier.len() {
                self.note_sent(e.author, 0, end);
            }
        }
        // Out of step with our log: treat it as an announcement and fetch the gap.
        self.on_checkpoint(e.checkpoint, logs, out)?;
        self.schedule(now, logs, out);
        Ok(())
    }

    pub(super) fn on_committed(
        &mut self,
        first_seq: u64,
        count: u64,
        cp: SignedCheckpoint,
        logs: &(impl LogView + ?Sized),
        out: &mut Vec<Output>,
    ) {
        if self.phase != Phase::Established || !self.peer_ready || count == 0 {
            return;
        }
        let author = cp.checkpoint.author;
        if !self.keys_sent.contains(&author) {
            // The peer needs the key first: announce instead of pushing.
            self.advertise(logs, out, false);
            return;
        }
        let end = first_seq.saturating_add(count).min(cp.checkpoint.length);
        // Never echo a log back to a peer that holds it: its author (an author's log
        // grows only through its own writes) or a peer whose verified checkpoint
        // already covers the batch (typically: we just received it from that peer).
        // Without this, every event received is pushed straight back, doubling the
        // traffic and the verification work of a catch-up. Checked before anything is
        // read, so a batch nobody needs costs no store read.
        let is_author = self
            .peer
            .as_ref()
            .is_some_and(|p| p.id().as_bytes() == author.as_bytes());
        let covered = self.peer_holds(&author) >= end;
        if is_author || covered {
            return;
        }
        // A relayed log this peer gets from elsewhere first: the anti-entropy round
        // announces it (our own log is always pushed).
        let own = self.cfg.keypair.public().id().as_bytes() == author.as_bytes();
        if !own && self.lazy.contains(&author) {
            return;
        }
        // Push only what the peer will take: it keeps a push that starts at its
        // frontier while it fetches nothing of that log, and drops any other (then
        // requests the range, so those events would cross this session twice). The
        // peer is exactly at `first_seq` once our frames arrive if it holds, or was
        // sent, the log up to there; it has not asked for any of the batch if nothing
        // past `first_seq` was advertised to it and none of its requests for the log
        // waits here. Otherwise announce the checkpoint and let it ask.
        let advertised = self.sent_cps.get(&author).copied().unwrap_or(0);
        let fetching = self.requests.iter().any(|r| r.author == author);
        if self.peer_holds(&author) != first_seq || advertised > first_seq || fetching {
            self.advertise(logs, out, false);
            return;
        }
        let group = self.cfg.group.id();
        let len = cp.checkpoint.length;
        let budget = self.events_budget(&cp);
        let sent = send_chunks(
            logs,
            &group,
            &author,
            first_seq,
            end,
            len,
            budget,
            |from, proof, events| {
                Self::send(
                    out,
                    &Message::Push(Events {
                        author,
                        first_seq: from,
                        checkpoint: cp.clone(),
                        proof,
                        events,
                    }),
                );
            },
        );
        if !sent {
            return;
        }
        self.sent_cps.insert(author, len);
        self.note_sent(author, first_seq, end);
    }

    /// The length of `author`'s log the peer holds once the frames sent so far
    /// arrive: the longer of its own checkpoint and what this session sent it.
    pub(super) fn peer_holds(&self, author: &AuthorId) -> u64 {
        let theirs = self.peer_cps.get(author).map_or(0, |c| c.checkpoint.length);
        theirs.max(self.sent_to.get(author).copied().unwrap_or(0))
    }

    /// Events `from..to` of `author` went to the peer or came from it.
    pub(super) fn note_sent(&mut self, author: AuthorId, from: u64, to: u64) {
        if from <= self.peer_holds(&author) && to > self.peer_holds(&author) {
            self.sent_to.insert(author, to);
        }
    }
}

impl Session {
    /// Bytes of events that fit in one events frame carrying `cp` and a full proof.
    pub(super) fn events_budget(&self, cp: &SignedCheckpoint) -> usize {
        self.cfg
            .target_frame_bytes
            .min(MAX_FRAME - frame::events_overhead(cp.encode().len(), frame::MAX_PROOF_HASHES))
    }
}

/// Reads events `from..to` of a log in chunks of at most `budget` bytes and calls
/// `send(first_seq, proof, events)` for each, the proof reaching from the chunk's end
/// to the checkpoint length `cp_len`. Returns `false` if it stopped early (events or
/// proof nodes not in the store); anti-entropy repairs the peer then.
#[allow(clippy::too_many_arguments)]
fn send_chunks(
    logs: &(impl LogView + ?Sized),
    group: &GroupId,
    author: &AuthorId,
    mut from: u64,
    to: u64,
    cp_len: u64,
    budget: usize,
    mut send: impl FnMut(u64, Vec<Hash32>, EventList),
) -> bool {
    while from < to {
        let Some((proof, events)) = read_chunk(logs, group, author, from, to, cp_len, budget)
        else {
            return false;
        };
        let end = from + events.len() as u64;
        send(from, proof, events);
        from = end;
    }
    true
}

/// Events `from..` (at most `budget` bytes, not past `to`) of a log and the proof from
/// their end to the checkpoint length `cp_len`; `None` if the store lacks them.
pub(super) fn read_chunk(
    logs: &(impl LogView + ?Sized),
    group: &GroupId,
    author: &AuthorId,
    from: u64,
    to: u64,
    cp_len: u64,
    budget: usize,
) -> Option<(Vec<Hash32>, EventList)> {
    let events = logs.events(group, author, from, to, budget);
    if events.is_empty() {
        return None;
    }
    let end = from + events.len() as u64;
    let mut proof = Vec::new();
    for (first, h) in proof_ranges(end, cp_len) {
        proof.push(subtree_pos(first, h).and_then(|p| logs.mmr_node(group, author, p))?);
    }
    Some((proof, events))
}
