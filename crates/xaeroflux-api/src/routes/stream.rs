//! Live streams as Server-Sent Events.
//!
//! `GET /v1/subscribe` is a cursor over the committed stream: each SSE `id` is the
//! event's local position, so a client that reconnects with `Last-Event-ID: N` gets
//! exactly the events after `N`, none lost and none repeated (browsers' `EventSource`
//! sends it by itself). Replay and live delivery are one path (see
//! [`xaeroflux::Subscription`]); memory per subscriber is its read-ahead batch.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::Stream;
use serde::Deserialize;
use utoipa::IntoParams;
use xaeroflux::{Filter, Start};

use super::{AppState, parse_group};
use crate::model::{EventJson, SystemEventJson};
use crate::problem::{ApiError, Problem};

/// Comment lines keep idle streams open through proxies and detect gone clients.
const KEEP_ALIVE: Duration = Duration::from_secs(15);
/// How often the system stream looks for new system events.
const SYSTEM_POLL: Duration = Duration::from_millis(100);

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
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
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
    let stream = futures_util::stream::unfold(Some(sub), |sub| async move {
        let mut sub = sub?;
        let item = sub.next_async().await?;
        Some(match item {
            Ok(e) => {
                let ev = Event::default()
                    .id(e.local_seq.to_string())
                    .json_data(EventJson::committed(&e))
                    .unwrap_or_else(|_| Event::default().comment("unencodable event"));
                (Ok(ev), Some(sub))
            }
            // A failed read ends the stream with an `error` message; the client
            // resumes from its last id.
            Err(e) => (
                Ok(Event::default()
                    .event("error")
                    .data(crate::problem::error_chain(&e))),
                None,
            ),
        })
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(KEEP_ALIVE)))
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
    let stream = futures_util::stream::unfold(sub, |mut sub| async move {
        loop {
            if let Some(e) = sub.try_next() {
                let ev = Event::default()
                    .json_data(SystemEventJson::from(&e))
                    .unwrap_or_else(|_| Event::default().comment("unencodable event"));
                return Some((Ok(ev), sub));
            }
            tokio::time::sleep(SYSTEM_POLL).await;
        }
    });
    Sse::new(stream).keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
}
