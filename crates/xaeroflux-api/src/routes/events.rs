//! Writing and reading events.

use std::borrow::Cow;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use serde::Deserialize;
use utoipa::IntoParams;
use xaeroflux::{AuthorId, GroupId, XaeroFlux};

use super::{AppState, blocking, body, json, parse_event_id, parse_group};
use crate::model::QueryParams as EventQuery;
use crate::model::{
    BatchResponse, EventJson, ProofJson, QueryResponse, WriteRequest, WriteResponse,
};
use crate::problem::{ApiError, Problem};

/// Event type when a write names none.
pub const DEFAULT_EVENT_TYPE: u32 = 1000;
/// Most events one query page returns.
pub const MAX_QUERY_LIMIT: usize = 1000;
/// Most events one query page examines (so a selective filter cannot stall a request).
const QUERY_SCAN: u64 = 100_000;

/// Type and group of a raw-body write.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct WriteQuery {
    /// Event type (default 1000), for raw bodies.
    #[serde(rename = "type")]
    #[param(rename = "type")]
    event_type: Option<u32>,
    /// Group id (default: the default group), for raw bodies.
    group: Option<String>,
}

/// One line of a batch: the fields of a [`WriteRequest`], borrowed from the body where
/// the JSON string has no escapes (so a text payload is not copied before the write).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BatchLine<'a> {
    #[serde(borrow, default)]
    text: Option<CowStr<'a>>,
    #[serde(borrow, default)]
    base64: Option<CowStr<'a>>,
    #[serde(rename = "type", default)]
    event_type: Option<u32>,
    #[serde(borrow, default)]
    group: Option<CowStr<'a>>,
}

/// A JSON string borrowed from the input when it has no escapes. (serde's own
/// `Cow<str>` always copies when it sits inside an `Option`.)
struct CowStr<'a>(Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for CowStr<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> serde::de::Visitor<'de> for V<'a> {
            type Value = CowStr<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(CowStr(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(CowStr(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
                Ok(CowStr(Cow::Owned(v)))
            }
        }
        d.deserialize_str(V(std::marker::PhantomData))
    }
}

/// An event to write, checked.
pub(crate) struct Input {
    pub(crate) group: GroupId,
    pub(crate) payload: Vec<u8>,
    pub(crate) event_type: u32,
}

pub(crate) fn input(store: &XaeroFlux, r: WriteRequest) -> Result<Input, ApiError> {
    let payload = match (r.text, r.base64) {
        (Some(t), None) => t.into_bytes(),
        (None, Some(b)) => data_encoding::BASE64
            .decode(b.as_bytes())
            .map_err(|e| ApiError::bad_request("invalid_base64", format!("base64: {e}")))?,
        _ => {
            return Err(ApiError::bad_request(
                "invalid_request",
                "give the payload as exactly one of `text` or `base64`",
            ));
        }
    };
    Ok(Input {
        group: parse_group(store, r.group.as_deref())?,
        payload,
        event_type: r.event_type.unwrap_or(DEFAULT_EVENT_TYPE),
    })
}

/// Write one event; answers once it is durable.
///
/// A JSON body (`Content-Type: application/json`) is a `WriteRequest`; any other body is
/// the raw payload, with `type` and `group` in the query.
#[utoipa::path(post, path = "/v1/events", tag = "events",
    params(WriteQuery),
    request_body(content = WriteRequest, description = "JSON, or the raw payload with another content type"),
    responses(
        (status = 201, body = WriteResponse),
        (status = 400, body = Problem), (status = 401, body = Problem),
        (status = 404, body = Problem, description = "unknown group"),
        (status = 413, body = Problem)))]
pub(crate) async fn write(
    State(st): State<AppState>,
    Query(q): Query<WriteQuery>,
    headers: HeaderMap,
    b: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<WriteResponse>), ApiError> {
    let b = body(b)?;
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|c| c.starts_with("application/json"));
    let req = if is_json {
        json::<WriteRequest>(&b)?
    } else {
        WriteRequest {
            base64: Some(data_encoding::BASE64.encode(&b)),
            event_type: q.event_type,
            group: q.group,
            text: None,
        }
    };
    let store = st.store.clone();
    let r = blocking(move || crate::ops::write(&store, req)).await?;
    Ok((StatusCode::CREATED, Json(r)))
}

/// Write many events: one JSON `WriteRequest` per line (NDJSON). Every line is checked
/// before any is written; the answer comes once all are durable, ids in line order.
#[utoipa::path(post, path = "/v1/events/batch", tag = "events",
    request_body(content = String, content_type = "application/x-ndjson",
        description = "one WriteRequest per line"),
    responses(
        (status = 201, body = BatchResponse),
        (status = 400, body = Problem), (status = 401, body = Problem),
        (status = 404, body = Problem), (status = 413, body = Problem)))]
pub(crate) async fn batch(
    State(st): State<AppState>,
    b: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<BatchResponse>), ApiError> {
    let b = body(b)?;
    let store = st.store.clone();
    let r = blocking(move || crate::ops::write_batch(&store, &b)).await?;
    Ok((StatusCode::CREATED, Json(r)))
}

/// A checked batch line; the payload borrows from the body when it can.
struct LineInput<'a> {
    group: GroupId,
    payload: Cow<'a, [u8]>,
    event_type: u32,
}

/// Checks one batch line; `last` caches the group of the previous line (most batches
/// name one group, or none).
fn line_input<'a>(
    store: &XaeroFlux,
    line: &'a [u8],
    last: &mut Option<(Cow<'a, str>, GroupId)>,
) -> Result<LineInput<'a>, ApiError> {
    let r: BatchLine<'a> = serde_json::from_slice(line)
        .map_err(|e| ApiError::bad_request("invalid_json", e.to_string()))?;
    let payload = match (r.text.map(|t| t.0), r.base64.map(|b| b.0)) {
        (Some(Cow::Borrowed(t)), None) => Cow::Borrowed(t.as_bytes()),
        (Some(Cow::Owned(t)), None) => Cow::Owned(t.into_bytes()),
        (None, Some(b)) => Cow::Owned(
            data_encoding::BASE64
                .decode(b.as_bytes())
                .map_err(|e| ApiError::bad_request("invalid_base64", format!("base64: {e}")))?,
        ),
        _ => {
            return Err(ApiError::bad_request(
                "invalid_request",
                "give the payload as exactly one of `text` or `base64`",
            ));
        }
    };
    let group = match r.group.map(|g| g.0) {
        None => store.default_group(),
        Some(g) => match last {
            Some((s, id)) if *s == g => *id,
            _ => {
                let id = parse_group(store, Some(&g))?;
                *last = Some((g, id));
                id
            }
        },
    };
    // What the store would refuse, refused before any line is written.
    let event_type = r.event_type.unwrap_or(DEFAULT_EVENT_TYPE);
    let refused = if payload.is_empty() {
        Some(xaeroflux::Error::EmptyPayload)
    } else if payload.len() > xaeroflux_core::event::MAX_PAYLOAD {
        Some(xaeroflux::Error::PayloadTooLarge {
            len: payload.len(),
            max: xaeroflux_core::event::MAX_PAYLOAD,
        })
    } else if xaeroflux_core::event::is_reserved_type(event_type) {
        Some(xaeroflux::Error::ReservedEventType { event_type })
    } else {
        None
    };
    if let Some(e) = refused {
        return Err(e.into());
    }
    Ok(LineInput {
        group,
        payload,
        event_type,
    })
}

pub(crate) fn batch_lines(store: &XaeroFlux, b: &[u8]) -> Result<BatchResponse, ApiError> {
    let mut inputs = Vec::new();
    let mut last = None;
    for (n, line) in b.split(|&c| c == b'\n').enumerate() {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let i = line_input(store, line, &mut last).map_err(|mut e| {
            e.detail = format!("line {}: {}", n + 1, e.detail);
            e
        })?;
        inputs.push(i);
    }
    let mut ids = Vec::with_capacity(inputs.len());
    for i in &inputs {
        ids.push(
            store
                .write_event_to(i.group, &i.payload, i.event_type)?
                .to_string(),
        );
    }
    store.flush()?;
    Ok(BatchResponse { ids })
}

/// Options of `get`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct GetQuery {
    /// Include the event's Merkle proof, checked against the node's root.
    #[serde(default)]
    proof: bool,
}

/// One event by id.
#[utoipa::path(get, path = "/v1/events/{id}", tag = "events",
    params(("id" = String, Path, description = "event id, 64 hex digits"), GetQuery),
    responses((status = 200, body = EventJson), (status = 400, body = Problem),
        (status = 401, body = Problem), (status = 404, body = Problem)))]
pub(crate) async fn get(
    State(st): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<GetQuery>,
) -> Result<Json<EventJson>, ApiError> {
    let id = parse_event_id(&id)?;
    let store = st.store.clone();
    blocking(move || {
        crate::ops::get(&store, &id, q.proof)?
            .map(Json)
            .ok_or_else(|| ApiError::not_found(format!("no event {id}")))
    })
    .await
}

pub(crate) fn get_event(
    store: &XaeroFlux,
    id: &xaeroflux::EventId,
    proof: bool,
) -> Result<Option<EventJson>, ApiError> {
    {
        let snap = store.read()?;
        let Some(se) = snap.get(id)? else {
            return Ok(None);
        };
        let mut ev = EventJson::opened(store, id, se.local_seq, &se.event.to_owned());
        if proof {
            let proof = snap.mmr_proof(se.local_seq)?;
            let root = snap.mmr_root_at(proof.leaf_count)?;
            let verified = proof.verify(&root, &id.0).is_ok();
            ev.proof = Some(ProofJson::new(&proof, root, verified));
        }
        Ok(Some(ev))
    }
}

/// Events in local order, filtered, a page at a time.
#[utoipa::path(get, path = "/v1/events", tag = "events", params(EventQuery),
    responses((status = 200, body = QueryResponse), (status = 400, body = Problem),
        (status = 401, body = Problem), (status = 404, body = Problem)))]
pub(crate) async fn query(
    State(st): State<AppState>,
    Query(q): Query<EventQuery>,
) -> Result<Json<QueryResponse>, ApiError> {
    let store = st.store.clone();
    blocking(move || run_query(&store, &q).map(Json)).await
}

pub(crate) fn run_query(store: &XaeroFlux, q: &EventQuery) -> Result<QueryResponse, ApiError> {
    let group = match &q.group {
        Some(g) => Some(parse_group(store, Some(g))?),
        None => None,
    };
    let author = q
        .author
        .as_deref()
        .map(|a| {
            AuthorId::from_hex(a)
                .map_err(|e| ApiError::bad_request("invalid_id", format!("author {a:?}: {e}")))
        })
        .transpose()?;
    let limit = q.limit.unwrap_or(100).clamp(1, MAX_QUERY_LIMIT);
    let start = q.cursor.unwrap_or(0);
    let snap = store.read()?;
    let count = snap.event_count()?;
    let mut events = Vec::new();
    let mut next = start;
    for item in snap.since(start)? {
        let se = item?;
        if next - start >= QUERY_SCAN || events.len() >= limit {
            break;
        }
        next = se.local_seq + 1;
        let h = se.event.header;
        if group.is_some_and(|g| g != h.group)
            || q.event_type.is_some_and(|t| t != h.event_type)
            || author.is_some_and(|a| a != h.author)
            || q.since.is_some_and(|s| h.hlc.millis() < s)
        {
            continue;
        }
        events.push(EventJson::opened(
            store,
            &se.event.id(),
            se.local_seq,
            &se.event.to_owned(),
        ));
    }
    Ok(QueryResponse {
        events,
        next_cursor: next,
        more: next < count,
    })
}
