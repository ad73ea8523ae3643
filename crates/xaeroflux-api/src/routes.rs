//! The router: every route under `/v1`, the console at `/`, and their shared state.

pub(crate) mod access;
pub(crate) mod blobs;
pub(crate) mod events;
pub(crate) mod node;
pub(crate) mod state;
pub(crate) mod stream;

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::DefaultBodyLimit;
use axum::extract::rejection::BytesRejection;
use axum::http::StatusCode;
use axum::routing::{delete, get, post};
use xaeroflux::{EventId, GroupId, XaeroFlux};
use xaeroflux_docs::Docs;
use xaeroflux_views::Views;

use crate::auth::Guard;
use crate::model::VerifyJob;
use crate::problem::ApiError;

/// Settings of the API besides where it listens.
#[derive(Debug, Clone)]
pub struct ApiOptions {
    /// The bearer token every call but the health check needs.
    pub token: String,
    /// Host names served besides IP literals and `localhost` (default none).
    pub allowed_hosts: Vec<String>,
    /// Origins allowed to call cross-origin, e.g. `http://localhost:3000` (default
    /// none: no CORS).
    pub cors_origins: Vec<String>,
    /// Largest body of a single request (default 256 KiB).
    pub max_body: usize,
    /// Largest body of a batch write (default 32 MiB).
    pub max_batch_body: usize,
    /// Event types whose text payloads `search` indexes (default `[1000]`).
    pub search_types: Vec<u32>,
    /// Dimension of the n-gram vectors of `search` (default 256).
    pub search_dimension: usize,
    /// The record views the `/v1/records`, `/v1/links` and `/v1/state-root` routes
    /// serve (default none: they answer 404 `views_off`).
    pub views: Option<Arc<Views>>,
    /// The documents the `/v1/docs` routes serve (default none: 404 `views_off`).
    pub docs: Option<Arc<Docs>>,
    /// Largest blob upload, streamed (default 64 GiB).
    pub max_blob_body: u64,
}

impl ApiOptions {
    /// Defaults with this token.
    pub fn new(token: impl Into<String>) -> Self {
        ApiOptions {
            token: token.into(),
            allowed_hosts: Vec::new(),
            cors_origins: Vec::new(),
            max_body: 256 * 1024,
            max_batch_body: 32 * 1024 * 1024,
            search_types: vec![1000],
            search_dimension: 256,
            views: None,
            docs: None,
            max_blob_body: blobs::DEFAULT_MAX_BLOB,
        }
    }
}

/// What the handlers share.
#[derive(Clone)]
pub(crate) struct AppState {
    pub(crate) store: Arc<XaeroFlux>,
    pub(crate) opts: Arc<ApiOptions>,
    /// Whether this server started vector search on the store.
    pub(crate) search_started: Arc<Mutex<bool>>,
    pub(crate) verify: Arc<Mutex<Option<VerifyJob>>>,
    /// Encoded live-stream messages shared by the subscribers.
    pub(crate) frames: Arc<stream::FrameCache>,
}

/// The API's router over `store`: mount it in your own server, or use
/// [`crate::ApiServer`].
pub fn router(store: Arc<XaeroFlux>, opts: ApiOptions) -> Router {
    let guard = Guard::new(&opts.token, &opts.allowed_hosts, &opts.cors_origins);
    let max_body = opts.max_body;
    let max_batch = opts.max_batch_body;
    let state = AppState {
        store,
        opts: Arc::new(opts),
        search_started: Arc::new(Mutex::new(false)),
        verify: Arc::new(Mutex::new(None)),
        frames: Arc::new(stream::FrameCache::new()),
    };
    Router::new()
        .route("/v1/health", get(node::health))
        .route("/v1/openapi.json", get(crate::openapi::serve))
        .route("/v1/identity", get(node::identity))
        .route("/v1/events", post(events::write).get(events::query))
        .route(
            "/v1/events/batch",
            post(events::batch).layer(DefaultBodyLimit::max(max_batch)),
        )
        .route("/v1/events/{id}", get(events::get))
        .route("/v1/subscribe", get(stream::subscribe))
        .route("/v1/system/events", get(stream::system))
        .route("/v1/search", post(node::search))
        .route("/v1/stats", get(node::stats))
        .route(
            "/v1/verify",
            post(node::verify_start).get(node::verify_status),
        )
        .route("/v1/groups", get(node::groups).post(node::create_group))
        .route("/v1/groups/join", post(node::join))
        .route("/v1/groups/{id}/ticket", get(node::ticket))
        .route("/v1/peers", get(node::peers).post(node::connect))
        .route("/v1/peers/{endpoint}", delete(node::forget))
        .route("/v1/access/key", get(access::key))
        .route("/v1/access/members", get(access::members).post(access::add))
        .route("/v1/access/members/remove", post(access::remove))
        .route("/v1/access/members/role", post(access::role))
        .route(
            "/v1/access/invites",
            get(access::invites).post(access::invite),
        )
        .route("/v1/access/invites/revoke", post(access::revoke))
        .route("/v1/access/control", post(access::control))
        .route("/v1/access/redeem", post(access::redeem))
        .route("/v1/access/rotate", post(access::rotate))
        .route("/v1/access/share", post(access::share))
        .route("/v1/records/{collection}", get(state::scan))
        .route(
            "/v1/records/{collection}/{key}",
            get(state::get_record)
                .put(state::put_record)
                .patch(state::patch_record)
                .delete(state::delete_record),
        )
        .route("/v1/records/{collection}/{key}/links", get(state::links))
        .route("/v1/links", post(state::link))
        .route("/v1/state-root", get(state::state_root))
        .route("/v1/docs", get(state::list_docs))
        .route("/v1/docs/{name}", get(state::get_doc))
        .route(
            "/v1/docs/{name}/text",
            get(state::get_text).post(state::edit_text),
        )
        .route(
            "/v1/blobs",
            get(blobs::list)
                .post(blobs::upload)
                .layer(DefaultBodyLimit::disable()),
        )
        .route("/v1/blobs/{hash}", get(blobs::download))
        .route("/v1/blobs/{hash}/info", get(blobs::info))
        .route("/v1/blobs/{hash}/fetch", post(blobs::fetch))
        .route("/", get(crate::console::index))
        .route("/console/{file}", get(crate::console::asset))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(max_body))
        .layer(axum::middleware::from_fn_with_state(
            guard,
            crate::auth::guard,
        ))
        .with_state(state)
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such route")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this route does not take this method",
    )
}

/// Runs blocking store work off the async workers.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            format!("request worker failed: {e}"),
        )
    })?
}

/// The body, or a problem saying why not (too large, broken connection).
pub(crate) fn body(b: Result<Bytes, BytesRejection>) -> Result<Bytes, ApiError> {
    b.map_err(|e| {
        let status = e.status();
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(status, "body_too_large", e.body_text())
        } else {
            ApiError::new(status, "bad_body", e.body_text())
        }
    })
}

/// Parses JSON, or says where it is broken.
pub(crate) fn json<T: serde::de::DeserializeOwned>(b: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(b).map_err(|e| ApiError::bad_request("invalid_json", e.to_string()))
}

pub(crate) fn parse_group(store: &XaeroFlux, s: Option<&str>) -> Result<GroupId, ApiError> {
    let Some(s) = s else {
        return Ok(store.default_group());
    };
    let g = GroupId::from_hex(s)
        .map_err(|e| ApiError::bad_request("invalid_id", format!("group {s:?}: {e}")))?;
    if store.group(&g)?.is_none() {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_group",
            format!("this node is not a member of group {g}"),
        ));
    }
    Ok(g)
}

pub(crate) fn parse_event_id(s: &str) -> Result<EventId, ApiError> {
    EventId::from_hex(s)
        .map_err(|e| ApiError::bad_request("invalid_id", format!("event id {s:?}: {e}")))
}
