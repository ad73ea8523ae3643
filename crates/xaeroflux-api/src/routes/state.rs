//! App state: records, relations and the state root (record views), and collaborative
//! documents (document view). Served when the node was given its views
//! ([`ApiOptions::views`](crate::ApiOptions::views) and
//! [`ApiOptions::docs`](crate::ApiOptions::docs)); otherwise these routes answer 404
//! `views_off`.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use xaeroflux::{Hlc, XaeroFlux};
use xaeroflux_docs::loro::ToJson;
use xaeroflux_docs::{DocError, Docs};
use xaeroflux_views::{Fields, Link, OpError, RecordRef, ViewError, Views};

use super::{AppState, blocking, body, json, parse_group};
use crate::model::{
    DocJson, DocList, DocQuery, DocSummary, DocTextJson, FieldsRequest, LinkJson, LinkRequest,
    LinksJson, RecordJson, RecordPage, RecordQuery, RecordRefJson, StateRootJson,
    StateWriteResponse, TextEdit, value_from_json, value_to_json,
};
use crate::problem::{ApiError, Problem, error_chain};

/// Most records one scan page returns.
pub const MAX_SCAN_LIMIT: usize = 1000;
/// The text container document routes use unless told otherwise.
const BODY: &str = "body";

fn views(st: &AppState) -> Result<(Arc<XaeroFlux>, Arc<Views>), ApiError> {
    let v = st.opts.views.clone().ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "views_off",
            "this node serves no record views",
        )
    })?;
    Ok((st.store.clone(), v))
}

fn docs(st: &AppState) -> Result<(Arc<XaeroFlux>, Arc<Docs>), ApiError> {
    let d = st.opts.docs.clone().ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "views_off",
            "this node serves no documents",
        )
    })?;
    Ok((st.store.clone(), d))
}

pub(crate) fn view_error(e: ViewError) -> ApiError {
    let detail = error_chain(&e);
    match e {
        ViewError::Store(s) => s.into(),
        ViewError::Op(OpError::Value(_)) => ApiError::bad_request("invalid_value", detail),
        ViewError::Op(_) => ApiError::bad_request("invalid_record", detail),
        ViewError::HistoryOff => ApiError::bad_request("history_off", detail),
        _ => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "views", detail),
    }
}

pub(crate) fn doc_error(e: DocError) -> ApiError {
    let detail = error_chain(&e);
    match e {
        DocError::Store(s) => s.into(),
        DocError::Update(_) => ApiError::bad_request("invalid_document", detail),
        _ => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "documents", detail),
    }
}

fn fields_json(f: &Fields) -> serde_json::Map<String, serde_json::Value> {
    f.iter()
        .map(|(k, v)| (k.clone(), value_to_json(v)))
        .collect()
}

fn links_json(l: Vec<Link>) -> Vec<LinkJson> {
    l.into_iter()
        .map(|l| LinkJson {
            rel: l.rel,
            other: RecordRefJson {
                collection: l.other.collection,
                key: l.other.key,
            },
        })
        .collect()
}

/// A scan page of a collection, in key order (or, with `as_of`, the whole scan as of
/// that HLC).
#[utoipa::path(get, path = "/v1/records/{collection}", tag = "state",
    params(("collection" = String, Path, description = "collection"), RecordQuery),
    responses((status = 200, body = RecordPage), (status = 400, body = Problem),
        (status = 404, body = Problem)))]
pub(crate) async fn scan(
    State(st): State<AppState>,
    Path(collection): Path<String>,
    Query(q): Query<RecordQuery>,
) -> Result<Json<RecordPage>, ApiError> {
    let (store, v) = views(&st)?;
    blocking(move || {
        let g = parse_group(&store, q.group.as_deref())?;
        let prefix = q.prefix.unwrap_or_default();
        let limit = q.limit.unwrap_or(MAX_SCAN_LIMIT).clamp(1, MAX_SCAN_LIMIT);
        let (rows, more) = match q.as_of {
            Some(h) => (
                v.scan_as_of(&g, &collection, &prefix, Hlc::from_u64(h))
                    .map_err(view_error)?,
                false,
            ),
            None => {
                let mut rows = v
                    .scan_after(&g, &collection, &prefix, q.after.as_deref(), limit + 1)
                    .map_err(view_error)?;
                let more = rows.len() > limit;
                rows.truncate(limit);
                (rows, more)
            }
        };
        let next = more.then(|| rows.last().map(|(k, _)| k.clone())).flatten();
        Ok(Json(RecordPage {
            records: rows
                .iter()
                .map(|(k, f)| RecordJson {
                    collection: collection.clone(),
                    key: k.clone(),
                    fields: fields_json(f),
                })
                .collect(),
            next,
        }))
    })
    .await
}

/// A record (as of an HLC with `as_of`).
#[utoipa::path(get, path = "/v1/records/{collection}/{key}", tag = "state",
    params(("collection" = String, Path, description = "collection"),
        ("key" = String, Path, description = "key"), RecordQuery),
    responses((status = 200, body = RecordJson), (status = 404, body = Problem)))]
pub(crate) async fn get_record(
    State(st): State<AppState>,
    Path((collection, key)): Path<(String, String)>,
    Query(q): Query<RecordQuery>,
) -> Result<Json<RecordJson>, ApiError> {
    let (store, v) = views(&st)?;
    blocking(move || {
        let g = parse_group(&store, q.group.as_deref())?;
        let r = RecordRef::new(&collection, &key);
        let got = match q.as_of {
            Some(h) => v.get_as_of(&g, &r, Hlc::from_u64(h)),
            None => v.get(&g, &r),
        }
        .map_err(view_error)?
        .ok_or_else(|| ApiError::not_found(format!("no record {collection}/{key}")))?;
        Ok(Json(RecordJson {
            collection,
            key,
            fields: fields_json(&got),
        }))
    })
    .await
}

enum Write {
    Put,
    Patch,
}

async fn write_fields(
    st: AppState,
    collection: String,
    key: String,
    b: Result<Bytes, BytesRejection>,
    how: Write,
) -> Result<(StatusCode, Json<StateWriteResponse>), ApiError> {
    let b = body(b)?;
    let req: FieldsRequest = json(&b)?;
    let (store, v) = views(&st)?;
    blocking(move || {
        let g = parse_group(&store, req.group.as_deref())?;
        let r = RecordRef::new(collection, key);
        let id = match how {
            Write::Put => {
                let mut fields = Fields::new();
                for (k, j) in &req.fields {
                    fields.insert(k.clone(), value_from_json(j)?);
                }
                v.put(&g, &r, fields)
            }
            Write::Patch => {
                let mut fields = std::collections::BTreeMap::new();
                for (k, j) in &req.fields {
                    let value = (!j.is_null()).then(|| value_from_json(j)).transpose()?;
                    fields.insert(k.clone(), value);
                }
                v.patch(&g, &r, fields)
            }
        }
        .map_err(view_error)?;
        v.flush().map_err(view_error)?;
        Ok((
            StatusCode::CREATED,
            Json(StateWriteResponse {
                id: Some(id.to_string()),
            }),
        ))
    })
    .await
}

/// Replace a record with these fields; answers once durable and applied.
#[utoipa::path(put, path = "/v1/records/{collection}/{key}", tag = "state",
    params(("collection" = String, Path, description = "collection"),
        ("key" = String, Path, description = "key")),
    request_body = FieldsRequest,
    responses((status = 201, body = StateWriteResponse), (status = 400, body = Problem)))]
pub(crate) async fn put_record(
    State(st): State<AppState>,
    Path((collection, key)): Path<(String, String)>,
    b: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<StateWriteResponse>), ApiError> {
    write_fields(st, collection, key, b, Write::Put).await
}

/// Set fields (`null` unsets one), keeping the others; answers once applied.
#[utoipa::path(patch, path = "/v1/records/{collection}/{key}", tag = "state",
    params(("collection" = String, Path, description = "collection"),
        ("key" = String, Path, description = "key")),
    request_body = FieldsRequest,
    responses((status = 201, body = StateWriteResponse), (status = 400, body = Problem)))]
pub(crate) async fn patch_record(
    State(st): State<AppState>,
    Path((collection, key)): Path<(String, String)>,
    b: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<StateWriteResponse>), ApiError> {
    write_fields(st, collection, key, b, Write::Patch).await
}

/// Delete a record (its relations made before the delete are hidden).
#[utoipa::path(delete, path = "/v1/records/{collection}/{key}", tag = "state",
    params(("collection" = String, Path, description = "collection"),
        ("key" = String, Path, description = "key"), RecordQuery),
    responses((status = 201, body = StateWriteResponse), (status = 400, body = Problem)))]
pub(crate) async fn delete_record(
    State(st): State<AppState>,
    Path((collection, key)): Path<(String, String)>,
    Query(q): Query<RecordQuery>,
) -> Result<(StatusCode, Json<StateWriteResponse>), ApiError> {
    let (store, v) = views(&st)?;
    blocking(move || {
        let g = parse_group(&store, q.group.as_deref())?;
        let id = v
            .delete(&g, RecordRef::new(collection, key))
            .map_err(view_error)?;
        v.flush().map_err(view_error)?;
        Ok((
            StatusCode::CREATED,
            Json(StateWriteResponse {
                id: Some(id.to_string()),
            }),
        ))
    })
    .await
}

/// The relations out of and into a record (as of an HLC with `as_of`).
#[utoipa::path(get, path = "/v1/records/{collection}/{key}/links", tag = "state",
    params(("collection" = String, Path, description = "collection"),
        ("key" = String, Path, description = "key"), RecordQuery),
    responses((status = 200, body = LinksJson), (status = 404, body = Problem)))]
pub(crate) async fn links(
    State(st): State<AppState>,
    Path((collection, key)): Path<(String, String)>,
    Query(q): Query<RecordQuery>,
) -> Result<Json<LinksJson>, ApiError> {
    let (store, v) = views(&st)?;
    blocking(move || {
        let g = parse_group(&store, q.group.as_deref())?;
        let r = RecordRef::new(collection, key);
        let (from, to) = match q.as_of.map(Hlc::from_u64) {
            Some(at) => (v.links_from_as_of(&g, &r, at), v.links_to_as_of(&g, &r, at)),
            None => (v.links_from(&g, &r), v.links_to(&g, &r)),
        };
        Ok(Json(LinksJson {
            from: links_json(from.map_err(view_error)?),
            to: links_json(to.map_err(view_error)?),
        }))
    })
    .await
}

/// Add (or with `remove`, remove) a relation; answers once applied.
#[utoipa::path(post, path = "/v1/links", tag = "state", request_body = LinkRequest,
    responses((status = 201, body = StateWriteResponse), (status = 400, body = Problem)))]
pub(crate) async fn link(
    State(st): State<AppState>,
    b: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<StateWriteResponse>), ApiError> {
    let b = body(b)?;
    let req: LinkRequest = json(&b)?;
    let (store, v) = views(&st)?;
    blocking(move || {
        let g = parse_group(&store, req.group.as_deref())?;
        let from = RecordRef::new(req.from.collection, req.from.key);
        let to = RecordRef::new(req.to.collection, req.to.key);
        let id = if req.remove {
            v.unlink(&g, &from, &req.rel, &to)
        } else {
            v.link(&g, &from, &req.rel, &to)
        }
        .map_err(view_error)?;
        v.flush().map_err(view_error)?;
        Ok((
            StatusCode::CREATED,
            Json(StateWriteResponse {
                id: Some(id.to_string()),
            }),
        ))
    })
    .await
}

/// The state root of a group's records and relations (equal on every peer holding the
/// same operations).
#[utoipa::path(get, path = "/v1/state-root", tag = "state", params(RecordQuery),
    responses((status = 200, body = StateRootJson), (status = 404, body = Problem)))]
pub(crate) async fn state_root(
    State(st): State<AppState>,
    Query(q): Query<RecordQuery>,
) -> Result<Json<StateRootJson>, ApiError> {
    let (store, v) = views(&st)?;
    blocking(move || {
        let g = parse_group(&store, q.group.as_deref())?;
        let root = v.state_root(&g).map_err(view_error)?;
        Ok(Json(StateRootJson {
            group: g.to_string(),
            root: crate::model::hex(&root),
        }))
    })
    .await
}

fn summary(d: &Docs, g: &xaeroflux::GroupId, name: &str) -> Result<DocSummary, ApiError> {
    let i = d
        .info(g, name)
        .map_err(doc_error)?
        .ok_or_else(|| ApiError::not_found(format!("no document {name:?}")))?;
    Ok(DocSummary {
        name: name.to_owned(),
        updates: i.updates,
        pending: i.pending,
        snapshot_bytes: i.snapshot_bytes,
    })
}

/// The documents of a group.
#[utoipa::path(get, path = "/v1/docs", tag = "documents", params(DocQuery),
    responses((status = 200, body = DocList), (status = 404, body = Problem)))]
pub(crate) async fn list_docs(
    State(st): State<AppState>,
    Query(q): Query<DocQuery>,
) -> Result<Json<DocList>, ApiError> {
    let (store, d) = docs(&st)?;
    blocking(move || {
        let g = parse_group(&store, q.group.as_deref())?;
        let docs = d
            .names(&g)
            .map_err(doc_error)?
            .iter()
            .map(|n| summary(&d, &g, n))
            .collect::<Result<_, _>>()?;
        Ok(Json(DocList { docs }))
    })
    .await
}

/// A whole document: every container, deeply. Names with `/` are percent-encoded.
#[utoipa::path(get, path = "/v1/docs/{name}", tag = "documents",
    params(("name" = String, Path, description = "document name"), DocQuery),
    responses((status = 200, body = DocJson), (status = 404, body = Problem)))]
pub(crate) async fn get_doc(
    State(st): State<AppState>,
    Path(name): Path<String>,
    Query(q): Query<DocQuery>,
) -> Result<Json<DocJson>, ApiError> {
    let (store, d) = docs(&st)?;
    blocking(move || {
        let g = parse_group(&store, q.group.as_deref())?;
        let doc = d
            .read(&g, &name)
            .map_err(doc_error)?
            .ok_or_else(|| ApiError::not_found(format!("no document {name:?}")))?;
        Ok(Json(DocJson {
            info: summary(&d, &g, &name)?,
            value: doc.get_deep_value().to_json_value(),
        }))
    })
    .await
}

/// The text of one container of a document.
#[utoipa::path(get, path = "/v1/docs/{name}/text", tag = "documents",
    params(("name" = String, Path, description = "document name"), DocQuery),
    responses((status = 200, body = DocTextJson), (status = 404, body = Problem)))]
pub(crate) async fn get_text(
    State(st): State<AppState>,
    Path(name): Path<String>,
    Query(q): Query<DocQuery>,
) -> Result<Json<DocTextJson>, ApiError> {
    let (store, d) = docs(&st)?;
    blocking(move || {
        let g = parse_group(&store, q.group.as_deref())?;
        let container = q.container.as_deref().unwrap_or(BODY);
        let text = d
            .text(&g, &name, container)
            .map_err(doc_error)?
            .ok_or_else(|| ApiError::not_found(format!("no document {name:?}")))?;
        Ok(Json(DocTextJson { text }))
    })
    .await
}

/// Edit a container's text (creating the document if needed): delete, then insert, at
/// a position; answers once durable and applied.
#[utoipa::path(post, path = "/v1/docs/{name}/text", tag = "documents",
    params(("name" = String, Path, description = "document name")),
    request_body = TextEdit,
    responses((status = 201, body = StateWriteResponse), (status = 400, body = Problem)))]
pub(crate) async fn edit_text(
    State(st): State<AppState>,
    Path(name): Path<String>,
    b: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<StateWriteResponse>), ApiError> {
    let b = body(b)?;
    let req: TextEdit = json(&b)?;
    let (store, d) = docs(&st)?;
    blocking(move || {
        let g = parse_group(&store, req.group.as_deref())?;
        let mut doc = d.edit(&g, &name).map_err(doc_error)?;
        let t = doc.text(req.container.as_deref().unwrap_or(BODY));
        let len = t.len_unicode();
        let at = req.at.unwrap_or(len);
        if at > len {
            return Err(ApiError::bad_request(
                "invalid_edit",
                format!("position {at} is past the end of the text ({len} characters)"),
            ));
        }
        let bad = |e: xaeroflux_docs::loro::LoroError| {
            ApiError::bad_request("invalid_edit", e.to_string())
        };
        let delete = req.delete.min(len - at);
        if delete > 0 {
            t.delete(at, delete).map_err(bad)?;
        }
        if !req.insert.is_empty() {
            t.insert(at, &req.insert).map_err(bad)?;
        }
        let id = doc.commit().map_err(doc_error)?;
        d.flush().map_err(doc_error)?;
        Ok((
            StatusCode::CREATED,
            Json(StateWriteResponse {
                id: id.map(|i| i.to_string()),
            }),
        ))
    })
    .await
}
