//! Live streams as Server-Sent Events.
//!
//! `GET /v1/subscribe` is a cursor over the committed stream: each SSE `id` is the
//! event's local position, so a client that reconnects with `Last-Event-ID: N` gets
//! exactly the events after `N`, none lost and none repeated (browsers' `EventSource`
//! sends it by itself). Replay and live delivery are one path (see
//! [`xaeroflux::Subscription`]).
//!
//! Slow subscribers: each stream reads the store at its own pace, so a subscriber that
//! reads slowly never holds back the writer or the other subscribers, and its memory is
//! bounded (its read-ahead batch, one chunk of messages and the socket buffers): when
//! its socket is full the server stops reading for it. It falls behind instead, and
//! catches up from the store; one that disconnects resumes after its last `id` with
//! `Last-Event-ID`, for as long as the store holds the events (it deletes none).
//! Each event is encoded once for all subscribers ([`FrameCache`]).

use std::convert::Infallible;
use std::time::Duration;

use std::sync::Mutex;

use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, header};
use axum::response::Response;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::Stream;
use serde::Deserialize;
use utoipa::IntoParams;
use xaeroflux::{CommittedEvent, Filter, Start};

use super::{AppState, parse_group};
use crate::model::{EventJson, SystemEventJson};
use crate::problem::{ApiError, Problem};

/// Comment lines keep idle streams open through proxies and detect gone clients.
const KEEP_ALIVE: Duration = Duration::from_secs(15);
/// A subscriber's messages are sent in chunks of about this many bytes when it is
/// behind (one write for many events).
const CHUNK: usize = 64 * 1024;
/// Encoded messages kept for other subscribers (a direct-mapped table by position;
/// full, about 15 MB with 1 KiB events). Large enough that subscribers spread over a
/// burst of writes still share encodings; smaller, a 100k-event burst to 1000
/// subscribers evicted what slower ones needed and each re-encoded it.
const FRAME_SLOTS: usize = 32 * 1024;

/// The encoded SSE messages of recent positions, shared by every subscriber: with many
/// subscribers each event is encoded to JSON once, not once per subscriber. A message
/// depends only on the event, never on the subscriber's filter.
pub(crate) struct FrameCache {
    slots: Box<[Mutex<Option<Frame>>]>,
}

/// A position and its encoded message.
type Frame = (u64, Bytes);

impl FrameCache {
    pub(crate) fn new() -> Self {
        FrameCache {
            slots: (0..FRAME_SLOTS).map(|_| Mutex::new(None)).collect(),
        }
    }

    /// `id: POSITION\ndata: EVENTJSON\n\n` of `e`.
    fn frame(&self, e: &CommittedEvent) -> Bytes {
        let slot = &self.slots[(e.local_seq % FRAME_SLOTS as u64) as usize];
        if let Some((p, b)) = &*slot.lock().unwrap_or_else(|p| p.into_inner())
            && *p == e.local_seq
        {
            return b.clone();
        }
        let mut out = format!("id: {}\ndata: ", e.local_seq).into_bytes();
        // Serializing owned strings and numbers cannot fail; JSON escapes newlines, so
        // the message is one `data` line.
        if serde_json::to_writer(&mut out, &EventJson::committed(e)).is_err() {
            out = format!(": position {} could not be encoded\n", e.local_seq).into_bytes();
        }
        out.extend_from_slice(b"\n\n");
        let b = Bytes::from(out);
        *slot.lock().unwrap_or_else(|p| p.into_inner()) = Some((e.local_seq, b.clone()));
        b
    }
}

/// Filters and start of a subscription.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct SubscribeQuery {
    /// Only this group (default: all groups).
    group: Option<String>,
    /// Only this event type.
    #[serde(rename = "type")]
    #[param(rename = "type")]
    event_type: Option<u32>,
    /// Start after this position (as `Last-Event-ID`, which wins); `-1` or absent with
    /// `replay=true` replays from the first event; absent: only new events.
    after: Option<i64>,
    /// Replay the whole store first (when neither `after` nor `Last-Event-ID` is given).
    #[serde(default)]
    replay: bool,
}

/// Follow committed events (SSE). Each message: `id` = position, `data` = an EventJson.
#[utoipa::path(get, path = "/v1/subscribe", tag = "streams", params(SubscribeQuery,
        ("Last-Event-ID" = Option<u64>, Header, description = "resume after this position")),
    responses((status = 200, content_type = "text/event-stream", body = EventJson),
        (status = 400, body = Problem), (status = 401, body = Problem),
        (status = 404, body = Problem)))]
pub(crate) async fn subscribe(
    State(st): State<AppState>,
    Query(q): Query<SubscribeQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let last = match headers.get("last-event-id") {
        Some(v) => Some(
            v.to_str()
                .ok()
                .and_then(|s| s.trim().parse::<u64>().ok())
                .ok_or_else(|| {
                    ApiError::bad_request("invalid_request", "Last-Event-ID must be a position")
                })?,
        ),
        None => None,
    };
    let start = match (last, q.after) {
        (Some(p), _) => Start::Position(p.saturating_add(1)),
        (None, Some(a)) if a < 0 => Start::Beginning,
        (None, Some(a)) => Start::Position((a as u64).saturating_add(1)),
        (None, None) if q.replay => Start::Beginning,
        (None, None) => Start::Now,
    };
    let mut filter = Filter::all().start(start);
    if let Some(g) = &q.group {
        filter = filter.group(parse_group(&st.store, Some(g))?);
    }
    if let Some(t) = q.event_type {
        filter = filter.event_type(t);
    }
    let sub = st.store.subscribe(filter);
    let frames = st.frames.clone();
    let stream = futures_util::stream::unfold(Some(sub), move |sub| {
        let frames = frames.clone();
        async move {
            let mut sub = sub?;
            tokio::select! {
                // A keep-alive only when no event came for a while.
                item = sub.next_async() => match item? {
                    Ok(e) => {
                        // This event and whatever else is ready, in one chunk.
                        let mut chunk = frames.frame(&e).to_vec();
                        while chunk.len() < CHUNK {
                            match sub.try_next() {
                                Ok(Some(e)) => chunk.extend_from_slice(&frames.frame(&e)),
                                Ok(None) => break,
                                // Reported by the next call, after what was read.
                                Err(_) => break,
                            }
                        }
                        Some((Ok::<_, Infallible>(Bytes::from(chunk)), Some(sub)))
                    }
                    // A failed read ends the stream with an `error` message; the client
                    // resumes from its last id.
                    Err(e) => Some((
                        Ok(Bytes::from(format!(
                            "event: error\ndata: {}\n\n",
                            crate::problem::error_chain(&e).replace('\n', " ")
                        ))),
                        None,
                    )),
                },
                () = tokio::time::sleep(KEEP_ALIVE) => {
                    Some((Ok(Bytes::from_static(b":\n\n")), Some(sub)))
                }
            }
        }
    });
    Response::builder()
        .header(header::CONTENT_TYPE, "text/event-stream")
        .header(header::CACHE_CONTROL, "no-cache")
        .body(Body::from_stream(stream))
        .map_err(|e| {
            ApiError::new(
                axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                e.to_string(),
            )
        })
}

/// Follow system events (SSE): peers connecting and leaving, sync progress, forks,
/// flushes. Each message's `data` is a SystemEventJson.
#[utoipa::path(get, path = "/v1/system/events", tag = "streams",
    responses((status = 200, content_type = "text/event-stream", body = SystemEventJson),
        (status = 401, body = Problem)))]
pub(crate) async fn system(
    State(st): State<AppState>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let sub = st.store.system_events();
    // Woken by the store when an event is published: no polling, no thread.
    let stream = futures_util::stream::unfold(sub, |mut sub| async move {
        let e = sub.next_async().await?;
        let ev = Event::default()
            .json_data(SystemEventJson::from(&e))
            .unwrap_or_else(|_| Event::default().comment("unencodable event"));
        Some((Ok(ev), sub))
    });
    Sse::new(stream).keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
}
