//! Answering the peer's `Request`s: a bounded queue, answered lazily.
//!
//! A request is cheap to send (54 bytes) and up to 1,024 events (16 MiB) to answer, so
//! answers are never built when the request arrives. Requests wait in a queue of at
//! most [`SessionConfig::max_queued_requests`] (a peer with more outstanding is refused
//! with [`ErrorCode::TooManyRequests`]: an honest peer keeps at most its
//! `max_in_flight`, 16 by default); the session builds the next `Events` frame only
//! while the bytes it has output and the transport has not yet reported written
//! ([`Input::Drained`]) stay under [`SessionConfig::max_response_backlog`]. So the
//! answers to one session never hold more than that cap plus one frame in memory,
//! however many requests one read delivers.
//!
//! [`SessionConfig::max_queued_requests`]: super::SessionConfig::max_queued_requests
//! [`SessionConfig::max_response_backlog`]: super::SessionConfig::max_response_backlog
//! [`Input::Drained`]: super::Input::Drained

use super::catchup::read_chunk;
use super::{ErrorCode, MAX_REQUEST_SPAN, Output, Reject, Session, reject};
use crate::frame::{Events, EventsByRef, Message, Request};
use crate::log::LogView;

impl Session {
    /// Queues a request (answered by [`Session::serve`]).
    pub(super) fn on_request(&mut self, r: Request) -> Result<(), Reject> {
        if r.from_seq >= r.to_seq || r.to_seq - r.from_seq > MAX_REQUEST_SPAN {
            return Err(reject(ErrorCode::Malformed, "bad request range"));
        }
        if self.requests.len() >= self.cfg.max_queued_requests {
            return Err(reject(
                ErrorCode::TooManyRequests,
                format!(
                    "more than {} requests outstanding",
                    self.cfg.max_queued_requests
                ),
            ));
        }
        self.requests.push_back(r);
        Ok(())
    }

    /// Builds answers to queued requests, one frame at a time, while the unsent bytes
    /// stay under the backlog cap.
    pub(super) fn serve(&mut self, logs: &(impl LogView + ?Sized), out: &mut Vec<Output>) {
        let group = self.cfg.group.id();
        let mut pending: u64 = out
            .iter()
            .map(|o| match o {
                Output::Send(b) => b.len() as u64,
                _ => 0,
            })
            .sum();
        while self.unsent.saturating_add(pending) < self.cfg.max_response_backlog as u64 {
            let Some(&r) = self.requests.front() else {
                return;
            };
            // Serve only what a checkpoint we hold covers; the latest one is read for
            // every frame, so an answer spanning a local commit proves against it.
            let Some(cp) = logs.latest_checkpoint(&group, &r.author) else {
                self.requests.pop_front();
                continue;
            };
            let l = cp.checkpoint.length;
            let to = r.to_seq.min(l);
            if r.from_seq >= to {
                self.requests.pop_front();
                continue;
            }
            let (author, from) = (r.author, r.from_seq);
            let budget = self.events_budget(&cp);
            let Some((proof, events)) = read_chunk(logs, &group, &author, from, to, l, budget)
            else {
                // Not in the store after all: anti-entropy repairs the peer.
                self.requests.pop_front();
                continue;
            };
            let end = from + events.len() as u64;
            if let Some(front) = self.requests.front_mut() {
                front.from_seq = end;
            }
            // The checkpoint we last advertised is named, not repeated: the peer
            // verified it then (it is what made the peer ask).
            let msg = if self.sent_cps.get(&author) == Some(&l) {
                Message::EventsByRef(EventsByRef {
                    author,
                    first_seq: from,
                    checkpoint_length: l,
                    proof,
                    events,
                })
            } else {
                Message::Events(Events {
                    author,
                    first_seq: from,
                    checkpoint: cp,
                    proof,
                    events,
                })
            };
            self.note_sent(author, from, end);
            let before = out.len();
            Self::send(out, &msg);
            if let Some(Output::Send(b)) = out.get(before) {
                pending += b.len() as u64;
            }
        }
    }
}
