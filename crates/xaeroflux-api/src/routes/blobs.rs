//! Blobs: upload (streamed into the node's blob store), download (streamed out), list,
//! info and on-demand fetch from the peers of the groups that reference a blob.
//!
//! An upload with `group` also writes the attachment event (type 64) to that group;
//! its peers then fetch the blob by their policy. Bodies are never held whole: the
//! upload is hashed as it arrives, the download read from the store as it is sent.

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::TryStreamExt;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use xaeroflux::blob_store::{Attachment, BlobHash, BlobInfo};
use xaeroflux::{BlobError, BlobNode};

use super::{AppState, blocking, parse_group};
use crate::problem::{ApiError, Problem, error_chain};

/// Largest upload when the options say nothing (64 GiB).
pub const DEFAULT_MAX_BLOB: u64 = 64 * 1024 * 1024 * 1024;

/// A blob here: complete or partial.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct BlobJson {
    /// BLAKE3 hash, 64 hex digits.
    pub hash: String,
    /// Size, once known.
    pub size: Option<u64>,
    /// Verified bytes held here.
    pub local_bytes: u64,
    /// Whether the whole blob is here and verified.
    pub complete: bool,
}

impl From<BlobInfo> for BlobJson {
    fn from(i: BlobInfo) -> Self {
        BlobJson {
            hash: i.hash.to_string(),
            size: i.size,
            local_bytes: i.local_bytes,
            complete: i.complete,
        }
    }
}

/// The answer to an upload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct BlobAdded {
    /// BLAKE3 hash, 64 hex digits.
    pub hash: String,
    /// Size in bytes.
    pub size: u64,
    /// Id of the attachment event, when `group` was given.
    pub event: Option<String>,
}

/// The answer to an on-demand fetch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct BlobFetched {
    /// BLAKE3 hash, 64 hex digits.
    pub hash: String,
    /// Verified bytes that were here before (a resumed fetch).
    pub resumed_from: u64,
    /// Payload bytes this fetch moved.
    pub received: u64,
}

/// Where an upload goes.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct UploadQuery {
    /// Also write an attachment event (type 64) to this group.
    group: Option<String>,
    /// File name in the attachment (at most 255 bytes, no `/`, `\` or NUL).
    name: Option<String>,
}

fn blob_error(e: BlobError) -> ApiError {
    use xaeroflux::blob_store::FetchError as F;
    let detail = error_chain(&e);
    match e {
        BlobError::Write(w) => ApiError::from(w),
        BlobError::Off => ApiError::new(StatusCode::NOT_FOUND, "blobs_off", detail),
        BlobError::NotReferenced { .. } | BlobError::NoPeer { .. } => {
            ApiError::new(StatusCode::NOT_FOUND, "not_found", detail)
        }
        BlobError::Attachment(_) => ApiError::bad_request("invalid_name", detail),
        BlobError::Fetch(F::Refused { .. }) => {
            ApiError::new(StatusCode::BAD_GATEWAY, "fetch_refused", detail)
        }
        BlobError::Fetch(_) => ApiError::new(StatusCode::BAD_GATEWAY, "fetch_failed", detail),
        _ => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "blob_store", detail),
    }
}

fn node(st: &AppState) -> Result<std::sync::Arc<BlobNode>, ApiError> {
    st.store.blobs().map_err(blob_error)
}

fn parse_hash(s: &str) -> Result<BlobHash, ApiError> {
    s.parse()
        .map_err(|e| ApiError::bad_request("invalid_id", format!("blob hash {s:?}: {e}")))
}

/// Upload a blob: the raw body, streamed. With `group`, also writes the attachment
/// event that makes the group's peers fetch it.
#[utoipa::path(post, path = "/v1/blobs", tag = "blobs",
    params(UploadQuery),
    request_body(content = Vec<u8>, content_type = "application/octet-stream"),
    responses(
        (status = 201, body = BlobAdded),
        (status = 400, body = Problem), (status = 401, body = Problem),
        (status = 404, body = Problem, description = "unknown group, or blobs off"),
        (status = 413, body = Problem)))]
pub(crate) async fn upload(
    State(st): State<AppState>,
    Query(q): Query<UploadQuery>,
    body: Body,
) -> Result<(StatusCode, Json<BlobAdded>), ApiError> {
    let n = node(&st)?;
    // Check the event's group and name before taking the body.
    let group = match &q.group {
        Some(g) => Some(parse_group(&st.store, Some(g))?),
        None => None,
    };
    let name = q.name.unwrap_or_default();
    if group.is_some() {
        let probe = xaeroflux::blob_store::BlobRef {
            hash: BlobHash([0; 32]),
            size: 0,
        };
        Attachment::new(probe, name.clone()).map_err(|e| blob_error(e.into()))?;
    }
    let max = st.opts.max_blob_body;
    let over = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = over.clone();
    let mut seen = 0u64;
    let stream = body
        .into_data_stream()
        .map_err(std::io::Error::other)
        .and_then(move |chunk: axum::body::Bytes| {
            seen += chunk.len() as u64;
            let too_large = seen > max;
            if too_large {
                flag.store(true, std::sync::atomic::Ordering::Relaxed);
            }
            std::future::ready(if too_large {
                Err(std::io::Error::other("blob upload over its limit"))
            } else {
                Ok(chunk)
            })
        });
    let reader = tokio_util::io::StreamReader::new(stream);
    let blob = match n.add_reader(reader).await {
        Ok(b) => b,
        Err(_) if over.load(std::sync::atomic::Ordering::Relaxed) => {
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                format!("a blob upload is limited to {max} bytes"),
            ));
        }
        Err(e) => return Err(blob_error(e)),
    };
    let event = match group {
        Some(g) => {
            let store = st.store.clone();
            let id = blocking(move || {
                let id = store
                    .write_attachment(&g, blob, &name)
                    .map_err(blob_error)?;
                store.flush()?;
                Ok(id)
            })
            .await?;
            Some(id.to_string())
        }
        None => None,
    };
    Ok((
        StatusCode::CREATED,
        Json(BlobAdded {
            hash: blob.hash.to_string(),
            size: blob.size,
            event,
        }),
    ))
}

/// Every blob held here, complete or partial.
#[utoipa::path(get, path = "/v1/blobs", tag = "blobs",
    responses((status = 200, body = Vec<BlobJson>), (status = 401, body = Problem),
        (status = 404, body = Problem, description = "blobs off")))]
pub(crate) async fn list(State(st): State<AppState>) -> Result<Json<Vec<BlobJson>>, ApiError> {
    let list = node(&st)?.list().await.map_err(blob_error)?;
    Ok(Json(list.into_iter().map(BlobJson::from).collect()))
}

/// What is here of one blob (404 when none of it is).
#[utoipa::path(get, path = "/v1/blobs/{hash}/info", tag = "blobs",
    params(("hash" = String, Path, description = "BLAKE3 hash, 64 hex digits")),
    responses((status = 200, body = BlobJson), (status = 400, body = Problem),
        (status = 401, body = Problem), (status = 404, body = Problem)))]
pub(crate) async fn info(
    State(st): State<AppState>,
    Path(hash): Path<String>,
) -> Result<Json<BlobJson>, ApiError> {
    let hash = parse_hash(&hash)?;
    let i = node(&st)?.info(&hash).await.map_err(blob_error)?;
    if i.local_bytes == 0 && !i.complete {
        return Err(ApiError::not_found(format!("no blob {hash} here")));
    }
    Ok(Json(i.into()))
}

/// Download a complete blob, streamed (404 unless it is here in full).
#[utoipa::path(get, path = "/v1/blobs/{hash}", tag = "blobs",
    params(("hash" = String, Path, description = "BLAKE3 hash, 64 hex digits")),
    responses((status = 200, content_type = "application/octet-stream", body = Vec<u8>),
        (status = 400, body = Problem), (status = 401, body = Problem),
        (status = 404, body = Problem)))]
pub(crate) async fn download(
    State(st): State<AppState>,
    Path(hash): Path<String>,
) -> Result<Response, ApiError> {
    let hash = parse_hash(&hash)?;
    let n = node(&st)?;
    let i = n.info(&hash).await.map_err(blob_error)?;
    let (true, Some(size)) = (i.complete, i.size) else {
        return Err(ApiError::not_found(format!(
            "blob {hash} is not here in full"
        )));
    };
    let reader = n
        .store()
        .iroh_store()
        .blobs()
        .reader(iroh_blobs::Hash::from_bytes(hash.0));
    let body = Body::from_stream(tokio_util::io::ReaderStream::new(reader));
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_string()),
            (header::CONTENT_LENGTH, size.to_string()),
        ],
        body,
    )
        .into_response())
}

/// Fetch a blob that an attachment event here references from the peers of its
/// groups, resuming what is here; answers when it is complete. Progress goes out as
/// system events (`/v1/system/events`).
#[utoipa::path(post, path = "/v1/blobs/{hash}/fetch", tag = "blobs",
    params(("hash" = String, Path, description = "BLAKE3 hash, 64 hex digits")),
    responses((status = 200, body = BlobFetched), (status = 400, body = Problem),
        (status = 401, body = Problem), (status = 404, body = Problem),
        (status = 502, body = Problem, description = "no peer served it")))]
pub(crate) async fn fetch(
    State(st): State<AppState>,
    Path(hash): Path<String>,
) -> Result<Json<BlobFetched>, ApiError> {
    let hash = parse_hash(&hash)?;
    let s = node(&st)?.fetch(&hash).await.map_err(blob_error)?;
    Ok(Json(BlobFetched {
        hash: hash.to_string(),
        resumed_from: s.resumed_from,
        received: s.payload_bytes,
    }))
}
