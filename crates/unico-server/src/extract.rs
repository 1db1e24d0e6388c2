//! Request extractors whose rejections speak our error shape.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::header::CONTENT_TYPE;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// Largest JSON body accepted (a full batch of 10 000 customers fits comfortably).
pub const MAX_JSON_BODY_BYTES: usize = 32 * 1024 * 1024;

/// A JSON object body: `Content-Type: application/json` required, size bounded, and every
/// rejection (wrong type, too large, malformed, not an object, wrong shape) answered as an
/// [`ApiError`] with the line and column of the problem.
pub struct JsonBody<T>(pub T);

/// A JSON array body (batch endpoints), with the same checks as [`JsonBody`].
pub struct JsonArrayBody<T>(pub T);

/// A form body (the console's forms): `Content-Type: application/x-www-form-urlencoded`
/// required, size bounded like JSON, and every rejection (wrong type, too large, a field
/// missing or of the wrong shape) answered as an [`ApiError`], a 400 rather than axum's
/// plain-text 415 or 422.
pub struct FormBody<T>(pub T);

/// A request's `Content-Type`: as sent, and its lowercase media type without parameters.
pub struct ContentType {
    pub raw: String,
    pub mime: String,
}

impl ContentType {
    pub fn of(headers: &axum::http::HeaderMap) -> Self {
        let raw = headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let mime = raw
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        ContentType { raw, mime }
    }

    /// How error messages quote it.
    pub fn described(&self) -> String {
        if self.raw.is_empty() {
            "none".to_owned()
        } else {
            format!("\"{}\"", self.raw)
        }
    }
}

/// What a body's top level must be.
#[derive(Clone, Copy, PartialEq)]
enum TopLevel {
    Object,
    Array,
}

async fn read_json<T: DeserializeOwned, S: Send + Sync>(
    req: Request,
    state: &S,
    top: TopLevel,
) -> Result<T, ApiError> {
    let content_type = ContentType::of(req.headers());
    if content_type.mime != "application/json" && !content_type.mime.ends_with("+json") {
        return Err(ApiError::InvalidContentType(format!(
            "expected Content-Type: application/json, got {}",
            content_type.described()
        )));
    }
    let bytes = Bytes::from_request(req, state).await.map_err(|e| {
        if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::BodyTooLarge(format!(
                "the body is larger than the {MAX_JSON_BODY_BYTES} bytes accepted"
            ))
        } else {
            ApiError::InvalidJson(format!("could not read the body: {e}"))
        }
    })?;
    // serde would read a struct from an array of its fields; the API speaks objects.
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace()).copied();
    let (wanted, expected) = match top {
        TopLevel::Object => (b'{', "expected an object {…} as the body"),
        TopLevel::Array => (b'[', "expected an array […] as the body"),
    };
    if let Some(first) = first
        && first != wanted
        && serde_json::from_slice::<serde::de::IgnoredAny>(&bytes).is_ok()
    {
        let got = match first {
            b'{' => "an object",
            b'[' => "an array",
            b'"' => "a string",
            b'n' => "null",
            b't' | b'f' => "a boolean",
            _ => "a number",
        };
        return Err(ApiError::invalid("body", format!("{expected}, got {got}")));
    }
    parse_json(&bytes)
}

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        read_json(req, state, TopLevel::Object).await.map(JsonBody)
    }
}

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonArrayBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        read_json(req, state, TopLevel::Array)
            .await
            .map(JsonArrayBody)
    }
}

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for FormBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let content_type = ContentType::of(req.headers());
        if content_type.mime != "application/x-www-form-urlencoded" {
            return Err(ApiError::InvalidContentType(format!(
                "expected a form (Content-Type: application/x-www-form-urlencoded), got {}",
                content_type.described()
            )));
        }
        match axum::Form::<T>::from_request(req, state).await {
            Ok(axum::Form(form)) => Ok(FormBody(form)),
            Err(e) if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE => {
                Err(ApiError::BodyTooLarge(format!(
                    "the form is larger than the {MAX_JSON_BODY_BYTES} bytes accepted"
                )))
            }
            Err(e) => Err(ApiError::InvalidInput {
                message: format!("the form could not be read: {}", e.body_text()),
                details: Vec::new(),
            }),
        }
    }
}

/// Parses JSON bytes, describing failures with their line and column.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(bytes).map_err(|e| {
        let what = match e.classify() {
            serde_json::error::Category::Data => "the JSON body does not have the expected shape",
            serde_json::error::Category::Eof => "the JSON body ends too early",
            _ => "the body is not valid JSON",
        };
        // serde_json's messages end with " at line L column C"; keep the cause only.
        let text = e.to_string();
        let cause = text.split(" at line ").next().unwrap_or(&text).to_owned();
        ApiError::InvalidJson(format!(
            "{what}: {cause} (line {}, column {})",
            e.line(),
            e.column()
        ))
    })
}
