//! The bound on a request's target (path and query), answered in our error shape.
//!
//! hyper refuses a target longer than 65 534 bytes itself, before the router, with a 414
//! whose body is empty and cannot be shaped. This layer answers first, below that bound, so
//! a client that sends a long filter in a query string is told why in the usual error body;
//! only targets past hyper's own bound still get hyper's bare 414.

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;

/// Longest request target accepted, in bytes: a round bound under hyper's 65 534.
pub const MAX_URI_BYTES: usize = 60 * 1024;

/// Answers 414 `uri_too_long` when the request target is longer than [`MAX_URI_BYTES`].
pub async fn refuse_long_uri(request: Request, next: Next) -> Response {
    let uri = request.uri();
    // What hyper measures: the target as sent, origin form (`/path?query`) or absolute form.
    let target_bytes = uri.path_and_query().map_or(0, |p| p.as_str().len())
        + uri.authority().map_or(0, |a| a.as_str().len())
        + uri.scheme_str().map_or(0, |s| s.len() + "://".len());
    if target_bytes > MAX_URI_BYTES {
        return ApiError::UriTooLong(format!(
            "the request target is {target_bytes} bytes long; at most {MAX_URI_BYTES} are accepted (send a long filter in the body of POST …/count, or save it as a segment)"
        ))
        .into_response();
    }
    next.run(request).await
}
