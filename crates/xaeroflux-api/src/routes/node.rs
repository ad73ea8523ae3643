//! The node: identity, stats, verification, search, groups and peers.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::Deserialize;
use utoipa::IntoParams;
use xaeroflux::{
    NgramTextExtractor, VectorExtractor, VectorSearchConfig, VectorSearchError, XaeroFlux,
};

use super::{AppState, blocking, body, json, parse_group};
use crate::model::{
    ConnectRequest, EventJson, GroupJson, Health, IdentityJson, JoinRequest, PeerJson, SearchHit,
    SearchRequest, StatsJson, TicketJson, VerifyJob,
};
use crate::problem::{ApiError, Problem};

/// Character n-grams of the text search.
const NGRAM: usize = 3;
/// Most results of one search.
const MAX_K: usize = 1000;
/// How long a search waits for the index to catch up with the store.
const INDEX_WAIT: Duration = Duration::from_secs(30);

/// Liveness; needs no token.
#[utoipa::path(get, path = "/v1/health", tag = "node", security(()),
    responses((status = 200, body = Health)))]
pub(crate) async fn health() -> Json<Health> {
    Json(Health {
        status: "ok".into(),
    })
}

/// This node's identity and network endpoint.
#[utoipa::path(get, path = "/v1/identity", tag = "node",
    responses((status = 200, body = IdentityJson), (status = 401, body = Problem)))]
pub(crate) async fn identity(State(st): State<AppState>) -> Result<Json<IdentityJson>, ApiError> {
    Ok(Json(crate::ops::identity(&st.store)))
}

/// Counts, roots and disk use.
#[utoipa::path(get, path = "/v1/stats", tag = "node",
    responses((status = 200, body = StatsJson), (status = 401, body = Problem)))]
pub(crate) async fn stats(State(st): State<AppState>) -> Result<Json<StatsJson>, ApiError> {
    let store = st.store.clone();
    blocking(move || crate::ops::stats(&store).map(Json)).await
}

/// Starts verifying the whole store (re-hash every event, recompute every root, check
/// every checkpoint signature) unless a run is under way; poll `GET /v1/verify`.
#[utoipa::path(post, path = "/v1/verify", tag = "node",
    responses((status = 202, body = VerifyJob), (status = 401, body = Problem)))]
pub(crate) async fn verify_start(
    State(st): State<AppState>,
) -> Result<(StatusCode, Json<VerifyJob>), ApiError> {
    let mut slot = st.verify.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(j) = slot.as_ref().filter(|j| j.state == "running") {
        return Ok((StatusCode::ACCEPTED, Json(j.clone())));
    }
    let job = VerifyJob {
        job: slot.as_ref().map_or(1, |j| j.job + 1),
        state: "running".into(),
        done: 0,
        total: 0,
        logs: None,
        checkpoints: None,
        error: None,
    };
    *slot = Some(job.clone());
    drop(slot);
    let store = st.store.clone();
    let jobs = st.verify.clone();
    let update = move |f: &dyn Fn(&mut VerifyJob)| {
        if let Some(j) = jobs.lock().unwrap_or_else(|p| p.into_inner()).as_mut() {
            f(j);
        }
    };
    std::thread::Builder::new()
        .name("xaeroflux-api-verify".into())
        .spawn(move || {
            let r = store.verify(|done, total| {
                update(&|j| {
                    j.done = done;
                    j.total = total;
                });
            });
            update(&|j| match &r {
                Ok(rep) => {
                    j.state = "ok".into();
                    j.done = rep.events;
                    j.total = rep.events;
                    j.logs = Some(rep.logs);
                    j.checkpoints = Some(rep.checkpoints);
                }
                Err(e) => {
                    j.state = "failed".into();
                    j.error = Some(crate::problem::error_chain(e));
                }
            });
        })
        .map_err(|e| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                format!("verify thread: {e}"),
            )
        })?;
    Ok((StatusCode::ACCEPTED, Json(job)))
}

/// The latest verification run.
#[utoipa::path(get, path = "/v1/verify", tag = "node",
    responses((status = 200, body = VerifyJob), (status = 401, body = Problem),
        (status = 404, body = Problem, description = "no run yet")))]
pub(crate) async fn verify_status(State(st): State<AppState>) -> Result<Json<VerifyJob>, ApiError> {
    st.verify
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone()
        .map(Json)
        .ok_or_else(|| ApiError::not_found("no verification has run; POST /v1/verify starts one"))
}

fn ensure_search(st: &AppState) -> Result<NgramTextExtractor, ApiError> {
    let dim = st.opts.search_dimension;
    let embed = NgramTextExtractor::new(dim, NGRAM)
        .map_err(|e| ApiError::bad_request("invalid_query", e.to_string()))?;
    let mut started = st.search_started.lock().unwrap_or_else(|p| p.into_inner());
    if !*started {
        let ex: Arc<dyn VectorExtractor> = Arc::new(embed.clone());
        let extractors: HashMap<u32, Arc<dyn VectorExtractor>> = st
            .opts
            .search_types
            .iter()
            .map(|&t| (t, ex.clone()))
            .collect();
        match st
            .store
            .start_vector_search(extractors, VectorSearchConfig::new(dim))
        {
            Ok(()) | Err(xaeroflux::Error::Vector(VectorSearchError::AlreadyStarted)) => {}
            Err(e) => return Err(e.into()),
        }
        *started = true;
    }
    Ok(embed)
}

/// Similarity search over text payloads (lexical n-gram vectors), by text or vector.
#[utoipa::path(post, path = "/v1/search", tag = "node", request_body = SearchRequest,
    responses((status = 200, body = Vec<SearchHit>), (status = 400, body = Problem),
        (status = 401, body = Problem)))]
pub(crate) async fn search(
    State(st): State<AppState>,
    b: Result<Bytes, BytesRejection>,
) -> Result<Json<Vec<SearchHit>>, ApiError> {
    let req: SearchRequest = json(&body(b)?)?;
    blocking(move || {
        let embed = ensure_search(&st)?;
        let query = match (&req.text, req.vector) {
            (Some(t), None) => embed.embed(t).ok_or_else(|| {
                ApiError::bad_request(
                    "invalid_query",
                    "the query text has no characters to compare",
                )
            })?,
            (None, Some(v)) => v,
            _ => {
                return Err(ApiError::bad_request(
                    "invalid_request",
                    "give exactly one of `text` or `vector`",
                ));
            }
        };
        let k = req.k.unwrap_or(10).min(MAX_K);
        let deadline = Instant::now() + INDEX_WAIT;
        while st.store.vector_search_stats()?.pending > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        let hits = st
            .store
            .search_vector_events(&query, k, req.threshold.unwrap_or(0.0))?;
        Ok(Json(
            hits.iter()
                .map(|h| SearchHit {
                    similarity: h.similarity,
                    event: EventJson::new(&h.id, h.local_seq, &h.event),
                })
                .collect(),
        ))
    })
    .await
}

/// The groups of this node.
#[utoipa::path(get, path = "/v1/groups", tag = "groups",
    responses((status = 200, body = Vec<GroupJson>), (status = 401, body = Problem)))]
pub(crate) async fn groups(State(st): State<AppState>) -> Result<Json<Vec<GroupJson>>, ApiError> {
    let store = st.store.clone();
    blocking(move || crate::ops::groups(&store).map(Json)).await
}

/// Creates a group.
#[utoipa::path(post, path = "/v1/groups", tag = "groups",
    responses((status = 201, body = GroupJson), (status = 401, body = Problem)))]
pub(crate) async fn create_group(
    State(st): State<AppState>,
) -> Result<(StatusCode, Json<GroupJson>), ApiError> {
    let store = st.store.clone();
    blocking(move || {
        let g = store.create_group()?;
        Ok((
            StatusCode::CREATED,
            Json(crate::ops::group(&store, &g.id())?),
        ))
    })
    .await
}

/// Joins the group of an invite and connects to the inviting peer.
#[utoipa::path(post, path = "/v1/groups/join", tag = "groups", request_body = JoinRequest,
    responses((status = 200, body = GroupJson), (status = 400, body = Problem),
        (status = 401, body = Problem), (status = 409, body = Problem, description = "offline")))]
pub(crate) async fn join(
    State(st): State<AppState>,
    b: Result<Bytes, BytesRejection>,
) -> Result<Json<GroupJson>, ApiError> {
    let req: JoinRequest = json(&body(b)?)?;
    online(&st.store)?;
    let store = st.store.clone();
    blocking(move || {
        let g = store.join(&req.invite)?;
        Ok(Json(crate::ops::group(&store, &g.id())?))
    })
    .await
}

/// Options of `ticket`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct TicketQuery {
    /// Include the group secret (an invite: share only with members).
    #[serde(default)]
    invite: bool,
}

/// A ticket (or invite) to this node for a group.
#[utoipa::path(get, path = "/v1/groups/{id}/ticket", tag = "groups",
    params(("id" = String, Path, description = "group id"), TicketQuery),
    responses((status = 200, body = TicketJson), (status = 401, body = Problem),
        (status = 404, body = Problem), (status = 409, body = Problem)))]
pub(crate) async fn ticket(
    State(st): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<TicketQuery>,
) -> Result<Json<TicketJson>, ApiError> {
    let g = parse_group(&st.store, Some(&id))?;
    online(&st.store)?;
    Ok(Json(TicketJson {
        ticket: st.store.ticket(&g, q.invite)?,
        invite: q.invite,
    }))
}

fn online(store: &XaeroFlux) -> Result<(), ApiError> {
    if store.is_online() {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::CONFLICT,
            "offline",
            "this node runs without networking",
        ))
    }
}

/// Peers this node dials or has sessions with (none when offline).
#[utoipa::path(get, path = "/v1/peers", tag = "peers",
    responses((status = 200, body = Vec<PeerJson>), (status = 401, body = Problem)))]
pub(crate) async fn peers(State(st): State<AppState>) -> Result<Json<Vec<PeerJson>>, ApiError> {
    crate::ops::peers(&st.store).map(Json)
}

/// Connects to the peer of a ticket (and keeps redialling it).
#[utoipa::path(post, path = "/v1/peers", tag = "peers", request_body = ConnectRequest,
    responses((status = 202), (status = 400, body = Problem), (status = 401, body = Problem),
        (status = 409, body = Problem)))]
pub(crate) async fn connect(
    State(st): State<AppState>,
    b: Result<Bytes, BytesRejection>,
) -> Result<StatusCode, ApiError> {
    let req: ConnectRequest = json(&body(b)?)?;
    online(&st.store)?;
    st.store.connect(&req.ticket)?;
    Ok(StatusCode::ACCEPTED)
}

/// Forgets a peer: no more redialling.
#[utoipa::path(delete, path = "/v1/peers/{endpoint}", tag = "peers",
    params(("endpoint" = String, Path, description = "endpoint id, 64 hex digits")),
    responses((status = 204), (status = 400, body = Problem), (status = 401, body = Problem),
        (status = 409, body = Problem)))]
pub(crate) async fn forget(
    State(st): State<AppState>,
    Path(endpoint): Path<String>,
) -> Result<StatusCode, ApiError> {
    let bytes = data_encoding::HEXLOWER_PERMISSIVE
        .decode(endpoint.as_bytes())
        .ok()
        .and_then(|b| <[u8; 32]>::try_from(b).ok())
        .ok_or_else(|| {
            ApiError::bad_request(
                "invalid_id",
                format!("endpoint {endpoint:?} is not 64 hex digits"),
            )
        })?;
    online(&st.store)?;
    st.store.forget_peer(&bytes)?;
    Ok(StatusCode::NO_CONTENT)
}
