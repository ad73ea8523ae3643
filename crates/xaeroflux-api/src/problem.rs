//! Errors as RFC 9457 problem documents (`application/problem+json`).
//!
//! Every error response carries a stable machine-readable `code` (also the last part of
//! `type`); clients branch on it, never on `title` or `detail`.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Prefix of the `type` URI of every problem.
pub const PROBLEM_TYPE_PREFIX: &str = "urn:xaeroflux:problem:";

/// An RFC 9457 problem document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Problem {
    /// `urn:xaeroflux:problem:<code>`.
    #[serde(rename = "type")]
    pub problem_type: String,
    /// Short summary of the code.
    pub title: String,
    /// HTTP status.
    pub status: u16,
    /// What went wrong in this request.
    pub detail: String,
    /// The stable code.
    pub code: String,
}

/// Why a request failed: an HTTP status, a stable code and a human detail.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {detail}")]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable code, e.g. `unknown_group`.
    pub code: &'static str,
    /// What went wrong.
    pub detail: String,
}

impl ApiError {
    /// An error with this status, code and detail.
    pub fn new(status: StatusCode, code: &'static str, detail: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            detail: detail.into(),
        }
    }

    /// 400 with `code`.
    pub fn bad_request(code: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, detail)
    }

    /// 404 `not_found`.
    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", detail)
    }

    /// The problem document of this error.
    pub fn problem(&self) -> Problem {
        Problem {
            problem_type: format!("{PROBLEM_TYPE_PREFIX}{}", self.code),
            title: self
                .status
                .canonical_reason()
                .unwrap_or("Error")
                .to_string(),
            status: self.status.as_u16(),
            detail: self.detail.clone(),
            code: self.code.to_string(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::to_vec(&self.problem()).unwrap_or_default();
        let mut r = (self.status, body).into_response();
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if self.status == StatusCode::UNAUTHORIZED {
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"xaeroflux\""),
            );
        }
        r
    }
}

impl From<xaeroflux::Error> for ApiError {
    fn from(e: xaeroflux::Error) -> Self {
        use xaeroflux::Error as E;
        let detail = error_chain(&e);
        match &e {
            E::PayloadTooLarge { .. } => {
                Self::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", detail)
            }
            E::EmptyPayload => Self::bad_request("empty_payload", detail),
            E::ReservedEventType { .. } => Self::bad_request("reserved_type", detail),
            E::InvalidReservedPayload { .. } => Self::bad_request("invalid_payload", detail),
            E::UnknownGroup { .. } => Self::new(StatusCode::NOT_FOUND, "unknown_group", detail),
            E::WouldBlock { .. } => {
                Self::new(StatusCode::SERVICE_UNAVAILABLE, "would_block", detail)
            }
            E::Config(_) => Self::bad_request("invalid_request", detail),
            E::Network(_) => Self::bad_request("network", detail),
            E::Vector(v) => vector_error(v, detail),
            E::Closed => Self::new(StatusCode::SERVICE_UNAVAILABLE, "closed", detail),
            E::Poisoned { .. } => Self::new(StatusCode::SERVICE_UNAVAILABLE, "poisoned", detail),
            E::Full(_) => Self::new(StatusCode::INSUFFICIENT_STORAGE, "storage_full", detail),
            _ => Self::new(StatusCode::INTERNAL_SERVER_ERROR, "store", detail),
        }
    }
}

fn vector_error(v: &xaeroflux::VectorSearchError, detail: String) -> ApiError {
    use xaeroflux::{VectorIndexError as I, VectorSearchError as V};
    match v {
        V::Index(I::DimensionMismatch { .. }) => ApiError::bad_request("vector_dimension", detail),
        V::Index(_) | V::InvalidConfig { .. } => ApiError::bad_request("invalid_query", detail),
        V::NotStarted => ApiError::new(StatusCode::CONFLICT, "search_not_started", detail),
        _ => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "search", detail),
    }
}

/// The error and its sources, joined with `: `.
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(x) = src {
        s.push_str(": ");
        s.push_str(&x.to_string());
        src = x.source();
    }
    s
}
