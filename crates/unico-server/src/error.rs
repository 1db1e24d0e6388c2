//! The error table: every error a client can see, with its HTTP status and stable code.
//!
//! Handlers return [`ApiError`]; the JSON body `{"error": {"code", "message", "details"}}`
//! is produced here and nowhere else. Internal failures are logged once and answered with
//! an opaque message.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use unico_store::StoreError;
use utoipa::ToSchema;

/// One problem in a request that has several (a PATCH with two bad fields, a CSV row...).
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// The field, parameter or JSON path the problem is about.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    pub message: String,
}

/// Every error a client can receive.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    InvalidJson(String),
    #[error("{0}")]
    InvalidContentType(String),
    #[error("{0}")]
    InvalidParameter(String),
    #[error("{message}")]
    InvalidInput {
        message: String,
        details: Vec<ErrorDetail>,
    },
    #[error("{0}")]
    LimitExceeded(String),
    #[error("{0}")]
    BodyTooLarge(String),
    #[error("{0}")]
    UriTooLong(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("no route {0}")]
    RouteNotFound(String),
    #[error("{0}")]
    MethodNotAllowed(String),
    #[error("{0}")]
    Conflict(String),
    /// Too many of the caller's own operations at once (429 with `Retry-After`).
    #[error("{0}")]
    TooManyRequests(String),
    #[error("{0}")]
    Immutable(String),
    /// A filter that does not parse or type-check; `code` is the filter language's own
    /// stable code (`filter_syntax`, `filter_unknown_field`, …).
    #[error("{message}")]
    InvalidFilter { code: &'static str, message: String },
    /// The disk cannot take what the request would write (an upload's spool would leave
    /// less than the reserve free): 507, until an operator frees space.
    #[error("{0}")]
    InsufficientStorage(String),
    /// The storage cannot answer now; the client should retry (503 with `Retry-After`).
    #[error("{0}")]
    Unavailable(String),
    /// A 503 `unavailable` that lists what is failing (`/health`).
    #[error("{message}")]
    Failing {
        message: String,
        details: Vec<ErrorDetail>,
    },
    #[error("internal error")]
    Internal(String),
}

impl ApiError {
    /// The row of the table: status and stable code.
    pub fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::InvalidJson(_) => (StatusCode::BAD_REQUEST, "invalid_json"),
            ApiError::InvalidContentType(_) => (StatusCode::BAD_REQUEST, "invalid_content_type"),
            ApiError::InvalidParameter(_) => (StatusCode::BAD_REQUEST, "invalid_parameter"),
            ApiError::InvalidInput { .. } => (StatusCode::BAD_REQUEST, "invalid_input"),
            ApiError::LimitExceeded(_) => (StatusCode::BAD_REQUEST, "limit_exceeded"),
            ApiError::BodyTooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "body_too_large"),
            ApiError::UriTooLong(_) => (StatusCode::URI_TOO_LONG, "uri_too_long"),
            ApiError::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "unauthorized"),
            ApiError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::RouteNotFound(_) => (StatusCode::NOT_FOUND, "route_not_found"),
            ApiError::MethodNotAllowed(_) => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
            ApiError::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            ApiError::TooManyRequests(_) => (StatusCode::TOO_MANY_REQUESTS, "too_many_requests"),
            ApiError::Immutable(_) => (StatusCode::CONFLICT, "immutable"),
            ApiError::InvalidFilter { code, .. } => (StatusCode::BAD_REQUEST, code),
            ApiError::Unavailable(_) | ApiError::Failing { .. } => {
                (StatusCode::SERVICE_UNAVAILABLE, "unavailable")
            }
            ApiError::InsufficientStorage(_) => {
                (StatusCode::INSUFFICIENT_STORAGE, "insufficient_storage")
            }
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }

    /// A 400 with one detail.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        let message = message.into();
        ApiError::InvalidInput {
            details: vec![ErrorDetail {
                field: Some(field.into()),
                message: message.clone(),
            }],
            message,
        }
    }

    /// A 400 listing several problems; the message summarises the first.
    pub fn invalid_many(details: Vec<ErrorDetail>) -> Self {
        let message = match details.as_slice() {
            [one] => one.message.clone(),
            [first, ..] => format!(
                "{} (and {} more problems)",
                first.message,
                details.len() - 1
            ),
            [] => "invalid input".to_owned(),
        };
        ApiError::InvalidInput { message, details }
    }
}

#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorObject,
}

#[derive(Serialize, ToSchema)]
pub struct ErrorObject {
    /// Stable snake_case code, for programs.
    pub code: String,
    /// What went wrong and how to fix it, for people.
    pub message: String,
    pub details: Vec<ErrorDetail>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        if let ApiError::Internal(cause) = &self {
            tracing::error!(%cause, "request failed");
        }
        if let ApiError::Unavailable(cause) = &self {
            tracing::warn!(%cause, "request answered 503");
        }
        if let ApiError::InsufficientStorage(cause) = &self {
            tracing::error!(%cause, "an upload was refused: the disk is nearly full");
        }
        let details = match &self {
            ApiError::InvalidInput { details, .. } | ApiError::Failing { details, .. } => {
                details.clone()
            }
            _ => Vec::new(),
        };
        let body = ErrorBody {
            error: ErrorObject {
                code: code.to_owned(),
                message: self.to_string(),
                details,
            },
        };
        let mut response = (status, axum::Json(body)).into_response();
        if status == StatusCode::SERVICE_UNAVAILABLE {
            response.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from_static("1"),
            );
        }
        if status == StatusCode::TOO_MANY_REQUESTS {
            // An import takes seconds to minutes: retrying sooner would only be refused.
            response.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from_static("10"),
            );
        }
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(what) => ApiError::NotFound(format!("{what} not found")),
            StoreError::Conflict(m) => ApiError::Conflict(m),
            StoreError::Limit(m) => ApiError::LimitExceeded(m),
            StoreError::Invalid(m) => ApiError::InvalidParameter(m),
            StoreError::Internal(m) => ApiError::Internal(m),
            StoreError::Unavailable(m) => ApiError::Unavailable(m),
            e @ StoreError::LogPruned(_) => ApiError::Internal(e.to_string()),
        }
    }
}
