//! The one error type of the HTTP edge, rendered as `application/problem+json`.
//!
//! Every 4xx and 5xx carries a sentence a person can act on. A 500 logs its cause and tells
//! the client only that something failed, with the request id to quote.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use rounds_proto::Problem;

pub const PROBLEM_JSON: &str = "application/problem+json";
const PROBLEM_BASE: &str = "https://rounds.health/problems/";

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    /// The last segment of the problem type URI, e.g. `expired-link`.
    pub slug: &'static str,
    pub detail: String,
    pub retry_after: Option<u64>,
    /// Logged for 5xx, never sent.
    pub cause: Option<anyhow::Error>,
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn new(status: StatusCode, slug: &'static str, detail: impl Into<String>) -> Self {
        Self {
            status,
            slug,
            detail: detail.into(),
            retry_after: None,
            cause: None,
        }
    }

    pub fn bad_request(slug: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, slug, detail)
    }

    pub fn unauthorized(slug: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, slug, detail)
    }

    pub fn forbidden(slug: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, slug, detail)
    }

    pub fn not_found(slug: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, slug, detail)
    }

    pub fn conflict(slug: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, slug, detail)
    }

    pub fn gone(slug: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::GONE, slug, detail)
    }

    pub fn unprocessable(slug: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, slug, detail)
    }

    pub fn too_many(retry_after: u64) -> Self {
        Self {
            retry_after: Some(retry_after.max(1)),
            ..Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate-limited",
                format!(
                    "Too many attempts from your network. Wait {} seconds and try again.",
                    retry_after.max(1)
                ),
            )
        }
    }

    pub fn unavailable(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", detail)
    }

    pub fn internal(cause: impl Into<anyhow::Error>) -> Self {
        Self {
            cause: Some(cause.into()),
            ..Self::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "Something went wrong on the server. Try again; if it keeps happening, contact \
                 your clinic's IT team and quote the request id.",
            )
        }
    }

    pub fn problem(&self) -> Problem {
        Problem {
            kind: format!("{PROBLEM_BASE}{}", self.slug),
            title: self.status.canonical_reason().unwrap_or("Error").to_owned(),
            status: self.status.as_u16(),
            detail: self.detail.clone(),
            request_id: None,
            retry_after: self.retry_after,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            match &self.cause {
                Some(cause) => tracing::error!(error = format!("{cause:#}"), "request failed"),
                None => tracing::error!(detail = %self.detail, "request failed"),
            }
        }
        problem_response(&self.problem())
    }
}

pub fn problem_response(problem: &Problem) -> Response {
    let status = StatusCode::from_u16(problem.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = serde_json::to_vec(problem).unwrap_or_default();
    let mut response = (status, body).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
    if let Some(secs) = problem.retry_after
        && let Ok(v) = HeaderValue::from_str(&secs.to_string())
    {
        response.headers_mut().insert(header::RETRY_AFTER, v);
    }
    if status == StatusCode::UNAUTHORIZED {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    response
}

impl ApiError {
    /// The disk under the database is full: nothing was written, and saying so tells the
    /// operator what to fix.
    pub fn storage_full(cause: impl Into<anyhow::Error>) -> Self {
        Self {
            cause: Some(cause.into()),
            retry_after: Some(60),
            ..Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "storage-full",
                "The server's storage is full, so nothing was changed. Try again in a few \
                 minutes; if it keeps happening, tell your clinic's IT team that the Rounds \
                 server's disk is full.",
            )
        }
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(e: crate::store::StoreError) -> Self {
        if e.is_disk_full() {
            return ApiError::storage_full(e);
        }
        ApiError::internal(e)
    }
}

impl From<crate::audit::AuditError> for ApiError {
    fn from(e: crate::audit::AuditError) -> Self {
        if matches!(e, crate::audit::AuditError::DiskFull) {
            return ApiError::storage_full(e);
        }
        ApiError::internal(e)
    }
}
