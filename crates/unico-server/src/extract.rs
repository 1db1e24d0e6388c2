//! Request extractors whose rejections speak our error shape.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::header::CONTENT_TYPE;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// Largest JSON body any route accepts (a full batch of 10 000 customers fits
/// comfortably); each route accepts only what its [`BodyLimits`] say.
pub const MAX_JSON_BODY_BYTES: usize = BodyLimits::BATCH.bytes;

/// What one route's JSON body may hold: its size, and how many JSON values (every object,
/// array, string, number, boolean and null) in all and items at its top level. All are
/// checked while the body is read and before anything is built from it, so a hostile body
/// costs little more than its size. Set on a route with `.layer(Extension(limits))`;
/// a route without one gets [`BodyLimits::SMALL`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BodyLimits {
    pub bytes: usize,
    pub values: usize,
    /// Items of a top-level array.
    pub items: usize,
}

impl BodyLimits {
    /// Applications, fields, keys: a few names and settings.
    pub const SMALL: BodyLimits = BodyLimits {
        bytes: 64 * 1024,
        values: 1_000,
        items: 1_000,
    };
    /// A filter (counts, segments): the filter's own limit is 64 KiB written compactly,
    /// so four times that leaves room for whitespace and escapes; 100 000 values hold
    /// the largest `in` lists.
    pub const FILTER: BodyLimits = BodyLimits {
        bytes: 256 * 1024,
        values: 100_000,
        items: 1_000,
    };
    /// One customer: up to every field of an application (1 000) with its longest value
    /// (4 KiB) and room for escapes.
    pub const CUSTOMER: BodyLimits = BodyLimits {
        bytes: 8 * 1024 * 1024,
        values: 10_000,
        items: 1_000,
    };
    /// A batch of customers: 10 000 items of 200 values each on average.
    pub const BATCH: BodyLimits = BodyLimits {
        bytes: 32 * 1024 * 1024,
        values: 2_000_000,
        items: unico_core::limits::MAX_BATCH_ITEMS,
    };
    /// A batch of events: 10 000 events with properties of up to 8 KiB each on average
    /// would be 80 MiB; 32 MiB holds 10 000 events of ~3 KiB, far more than typical.
    pub const EVENTS: BodyLimits = BodyLimits {
        bytes: 32 * 1024 * 1024,
        values: 2_000_000,
        items: unico_core::limits::MAX_EVENTS_PER_REQUEST,
    };
}

/// A JSON object body: `Content-Type: application/json` required, size bounded, and every
/// rejection (wrong type, too large, malformed, not an object, wrong shape) answered as an
/// [`ApiError`] with the line and column of the problem.
pub struct JsonBody<T>(pub T);

/// A JSON object body, its content type and size checked, left unread: for a handler that
/// reads it in a shape of its own first (`POST …/events`, whose usual body that reading
/// checks as it goes) and otherwise calls [`JsonBytes::check`] (the rest of
/// [`JsonBody`]'s checks: repeated keys, the route's limits, an object at the top) before
/// parsing it with [`parse_json`].
pub struct JsonBytes {
    pub bytes: Bytes,
    pub limits: BodyLimits,
}

impl JsonBytes {
    /// The checks [`JsonBody`] makes of a body after reading it.
    pub fn check(&self) -> Result<(), ApiError> {
        check_body(&self.bytes, self.limits, TopLevel::Object)
    }
}

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
    let (bytes, limits) = read_body(req, state).await?;
    check_body(&bytes, limits, top)?;
    parse_json(&bytes)
}

/// A JSON body's bytes, checked for content type and size, and the route's limits.
async fn read_body<S: Send + Sync>(
    req: Request,
    state: &S,
) -> Result<(Bytes, BodyLimits), ApiError> {
    let content_type = ContentType::of(req.headers());
    if content_type.mime != "application/json" && !content_type.mime.ends_with("+json") {
        return Err(ApiError::InvalidContentType(format!(
            "expected Content-Type: application/json, got {}",
            content_type.described()
        )));
    }
    let limits = req
        .extensions()
        .get::<BodyLimits>()
        .copied()
        .unwrap_or(BodyLimits::SMALL);
    let too_large = || {
        ApiError::BodyTooLarge(format!(
            "the body is larger than the {} bytes this route accepts",
            limits.bytes
        ))
    };
    let declared = req
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limits.bytes as u64) {
        return Err(too_large());
    }
    let _ = state;
    let bytes: Bytes = axum::body::to_bytes(req.into_body(), limits.bytes)
        .await
        .map_err(|e| {
            let over = std::error::Error::source(&e)
                .is_some_and(|s| s.is::<http_body_util::LengthLimitError>());
            if over {
                too_large()
            } else {
                ApiError::InvalidJson(format!("could not read the body: {e}"))
            }
        })?;
    Ok((bytes, limits))
}

/// A JSON body's checks past its type and size: repeated keys, the route's limits, and
/// the top level.
fn check_body(bytes: &[u8], limits: BodyLimits, top: TopLevel) -> Result<(), ApiError> {
    check_json(bytes, limits)?;
    // serde would read a struct from an array of its fields; the API speaks objects.
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace()).copied();
    let (wanted, expected) = match top {
        TopLevel::Object => (b'{', "expected an object {…} as the body"),
        TopLevel::Array => (b'[', "expected an array […] as the body"),
    };
    if let Some(first) = first
        && first != wanted
        && serde_json::from_slice::<serde::de::IgnoredAny>(bytes).is_ok()
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
    Ok(())
}

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        read_json(req, state, TopLevel::Object).await.map(JsonBody)
    }
}

impl<S: Send + Sync> FromRequest<S> for JsonBytes {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let (bytes, limits) = read_body(req, state).await?;
        Ok(JsonBytes { bytes, limits })
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
    serde_json::from_slice(bytes).map_err(|e| json_error(&e))
}

/// A serde_json error as our error, with its line and column.
fn json_error(e: &serde_json::Error) -> ApiError {
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
}

/// Reads `bytes` once without building anything, refusing an object that repeats a key
/// (JSON leaves it undefined; we never let the last one win silently), and a body past
/// `limits`' values or top-level items. Syntax errors are left to the parse that follows
/// (same messages as before).
pub fn check_json(bytes: &[u8], limits: BodyLimits) -> Result<(), ApiError> {
    use serde::de::DeserializeSeed;
    let ctx = CheckCtx {
        limits,
        values: std::cell::Cell::new(0),
        limit_hit: std::cell::RefCell::new(None),
        duplicate: std::cell::Cell::new(false),
    };
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let result = Check {
        ctx: &ctx,
        top: true,
    }
    .deserialize(&mut de);
    match result {
        Ok(()) => Ok(()),
        Err(e) => {
            if let Some(message) = ctx.limit_hit.take() {
                return Err(ApiError::LimitExceeded(format!(
                    "{message} (line {}, column {})",
                    e.line(),
                    e.column()
                )));
            }
            if ctx.duplicate.get() {
                return Err(json_error(&e));
            }
            // Syntax and other errors: the typed parse reports them as it always has.
            Ok(())
        }
    }
}

struct CheckCtx {
    limits: BodyLimits,
    values: std::cell::Cell<usize>,
    limit_hit: std::cell::RefCell<Option<String>>,
    duplicate: std::cell::Cell<bool>,
}

impl CheckCtx {
    fn count<E: serde::de::Error>(&self) -> Result<(), E> {
        let n = self.values.get() + 1;
        self.values.set(n);
        if n > self.limits.values {
            let message = format!(
                "the body holds more than the {} JSON values this route accepts",
                self.limits.values
            );
            *self.limit_hit.borrow_mut() = Some(message.clone());
            return Err(E::custom(message));
        }
        Ok(())
    }
}

/// Visits one JSON value for [`check_json`].
#[derive(Clone, Copy)]
struct Check<'c> {
    ctx: &'c CheckCtx,
    top: bool,
}

impl<'de> serde::de::DeserializeSeed<'de> for Check<'_> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Check<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<(), E> {
        self.ctx.count()
    }
    fn visit_i64<E: serde::de::Error>(self, _: i64) -> Result<(), E> {
        self.ctx.count()
    }
    fn visit_u64<E: serde::de::Error>(self, _: u64) -> Result<(), E> {
        self.ctx.count()
    }
    fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<(), E> {
        self.ctx.count()
    }
    fn visit_str<E: serde::de::Error>(self, _: &str) -> Result<(), E> {
        self.ctx.count()
    }
    fn visit_unit<E: serde::de::Error>(self) -> Result<(), E> {
        self.ctx.count()
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        self.ctx.count()?;
        let inner = Check {
            ctx: self.ctx,
            top: false,
        };
        let mut items = 0usize;
        while seq.next_element_seed(inner)?.is_some() {
            items += 1;
            if self.top && items >= self.ctx.limits.items {
                // One more item would be past the limit: look without reading it whole.
                if seq.next_element_seed(Skip)?.is_some() {
                    let message = format!(
                        "the body holds more than the {} items this route accepts (item {} is one too many)",
                        self.ctx.limits.items,
                        items + 1
                    );
                    *self.ctx.limit_hit.borrow_mut() = Some(message.clone());
                    return Err(serde::de::Error::custom(message));
                }
                return Ok(());
            }
        }
        Ok(())
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        self.ctx.count()?;
        let inner = Check {
            ctx: self.ctx,
            top: false,
        };
        let mut keys: std::collections::HashSet<String> = std::collections::HashSet::new();
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            if keys.contains(key.as_ref()) {
                self.ctx.duplicate.set(true);
                return Err(serde::de::Error::custom(format_args!(
                    "the key \"{}\" appears twice in one object",
                    key.escape_debug()
                )));
            }
            keys.insert(key.into_owned());
            map.next_value_seed(inner)?;
        }
        Ok(())
    }
}

/// Reads past one value without counting it (the item that is one too many).
#[derive(Clone, Copy)]
struct Skip;

impl<'de> serde::de::DeserializeSeed<'de> for Skip {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        <serde::de::IgnoredAny as serde::Deserialize>::deserialize(d).map(|_| ())
    }
}
