//! The server's resource bounds, named once with their reasons, and the layer that keeps
//! requests within them. The product's input limits are in `unico_core::limits` and
//! `unico_filter::limits`; bodies are bounded per route by `extract::BodyLimits`; the
//! console's sessions by `console::session`; the store's writer queue by
//! `unico_store::sqlite::WRITER_QUEUE_BOUND`. `docs/decisions.md` ("Limits") lists them
//! all.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{MatchedPath, Request, State};

use axum::http::Method;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio::sync::Semaphore;
use unico_core::AppId;

use crate::error::ApiError;

/// Longest a request may take before it is answered 503 `unavailable`. Every wait inside a
/// request is bounded well below it (a question waits at most 10 s for the engines, and a
/// rebuild of a million customers takes about 7 s), so past it something is stuck and the
/// client is better told to retry than left waiting. Uploads and exports (see
/// [`RouteClass`]) are not cut by it.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Most requests handled at once. Handlers run their store calls on tokio's blocking pool
/// (512 threads): at most half of it goes to requests, so background work (imports,
/// engine builds, snapshots) always finds threads. A request past it waits for a place.
pub const MAX_CONCURRENT_REQUESTS: usize = 256;

/// Most uploads and exports streaming at once. They last as long as the client's
/// connection, so they get their own places rather than taking the short requests'.
pub const MAX_CONCURRENT_LONG_REQUESTS: usize = 32;

/// Longest a request waits for a place before it is answered 503 with `Retry-After`:
/// long enough to absorb a burst, short enough that a saturated server says so.
pub const CONCURRENCY_WAIT: Duration = Duration::from_secs(5);

/// Most CSV and NDJSON imports of one application at once, from the upload's first byte
/// to the import's end. The embedded store writes one import at a time (each is one
/// transaction on the single writer), so more would only wait, each holding its spooled
/// file and three threads; two let one upload while the other is written.
pub const MAX_IMPORTS_PER_APP: usize = 2;

/// Most imports at once across applications: each holds a spooled file on disk and three
/// threads (parser, preparer, its job), so this bounds both on a small machine.
pub const MAX_IMPORTS_TOTAL: usize = 8;

/// Free space an upload's spool must leave on its disk, or it is refused (507
/// `insufficient_storage`) before the disk fills: the import then writes about as much
/// again into the database, and SQLite needs room for its write-ahead log, so a disk
/// filled by a spool would fail the import half-way and stall every other write. The same
/// figure under which `/health` says `degraded`.
pub const SPOOL_MIN_FREE_BYTES: u64 = 1 << 30;

/// Bytes spooled between two looks at the disk's free space (one `statvfs` each).
pub const SPOOL_DISK_CHECK_BYTES: u64 = 64 << 20;

/// How a route is bounded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteClass {
    /// Answered at once, whatever the load: health, readiness, the API document, metrics
    /// and the console's static files.
    Free,
    /// Uploads and exports: their own places, no time-out.
    Long,
    /// Everything else: a place among [`MAX_CONCURRENT_REQUESTS`] and [`REQUEST_TIMEOUT`].
    Short,
}

/// The class of a route, by method and path template.
pub fn route_class(method: &Method, template: &str) -> RouteClass {
    match template {
        "/health" | "/ready" | "/openapi.json" | "/metrics" => RouteClass::Free,
        t if t.starts_with("/console/assets/") => RouteClass::Free,
        "/v1/apps/{app}/imports"
        | "/v1/apps/{app}/events/imports"
        | "/console/apps/{app}/imports"
            if method == Method::POST =>
        {
            RouteClass::Long
        }
        "/v1/apps/{app}/export"
        | "/console/apps/{app}/export"
        | "/v1/apps/{app}/customers/{customer_id}/export"
        | "/console/apps/{app}/customers/{customer_id}/export.json" => RouteClass::Long,
        _ => RouteClass::Short,
    }
}

/// The places of requests in flight.
pub struct RequestLimits {
    short: Arc<Semaphore>,
    long: Arc<Semaphore>,
    timeout: Duration,
    wait: Duration,
}

impl Default for RequestLimits {
    fn default() -> Self {
        Self::new(
            MAX_CONCURRENT_REQUESTS,
            MAX_CONCURRENT_LONG_REQUESTS,
            REQUEST_TIMEOUT,
            CONCURRENCY_WAIT,
        )
    }
}

impl RequestLimits {
    pub fn new(short: usize, long: usize, timeout: Duration, wait: Duration) -> Self {
        Self {
            short: Arc::new(Semaphore::new(short)),
            long: Arc::new(Semaphore::new(long)),
            timeout,
            wait,
        }
    }
}

/// The layer (a route layer: it sees the matched path template) that gives each request a
/// place and a time-out by its [`RouteClass`].
pub async fn bound_request(
    State(state): State<crate::state::AppState>,
    matched: Option<MatchedPath>,
    request: Request,
    next: Next,
) -> Response {
    let started = std::time::Instant::now();
    let method = request.method().clone();
    let template = matched.as_ref().map_or("", |m| m.as_str());
    let response = bounded(&state.request_limits, template, request, next).await;
    state.metrics.record(
        method.as_str(),
        template,
        response.status().as_u16(),
        started.elapsed(),
    );
    response
}

async fn bounded(limits: &RequestLimits, template: &str, request: Request, next: Next) -> Response {
    let class = route_class(request.method(), template);
    let places = match class {
        RouteClass::Free => return next.run(request).await,
        RouteClass::Long => &limits.long,
        RouteClass::Short => &limits.short,
    };
    let place = match tokio::time::timeout(limits.wait, places.clone().acquire_owned()).await {
        Ok(Ok(place)) => place,
        _ => {
            return ApiError::Unavailable(format!(
                "the server is handling its most requests at once; retry in a moment (waited {} s)",
                limits.wait.as_secs()
            ))
            .into_response();
        }
    };
    let response = if class == RouteClass::Long {
        next.run(request).await
    } else {
        match tokio::time::timeout(limits.timeout, next.run(request)).await {
            Ok(response) => response,
            Err(_) => {
                tracing::warn!(route = template, "a request took longer than its time-out");
                ApiError::Unavailable(format!(
                    "the request took longer than {} s and was stopped; a write may still have been applied, so read before retrying one that is not idempotent",
                    limits.timeout.as_secs()
                ))
                .into_response()
            }
        }
    };
    drop(place);
    response
}

/// Imports running (or uploading) per application, bounded by [`MAX_IMPORTS_PER_APP`] and
/// [`MAX_IMPORTS_TOTAL`].
pub struct ImportSlots {
    running: Mutex<HashMap<AppId, usize>>,
    per_app: usize,
    total: usize,
    /// Imports that ended (succeeded, failed, or their upload broke) since the start.
    ended: AtomicU64,
}

impl Default for ImportSlots {
    fn default() -> Self {
        Self::new(MAX_IMPORTS_PER_APP, MAX_IMPORTS_TOTAL)
    }
}

impl ImportSlots {
    pub fn new(per_app: usize, total: usize) -> Self {
        Self {
            running: Mutex::new(HashMap::new()),
            per_app,
            total,
            ended: AtomicU64::new(0),
        }
    }

    /// A place for one import of `app`, held until the slot is dropped; 429 when the
    /// application has its most imports running, 503 when the server has.
    pub fn reserve(self: &Arc<Self>, app: AppId) -> Result<ImportSlot, ApiError> {
        let mut running = self
            .running
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let total: usize = running.values().sum();
        let mine = running.get(&app).copied().unwrap_or(0);
        if mine >= self.per_app {
            return Err(ApiError::TooManyRequests(format!(
                "this application already has {mine} imports running, its most at once; wait for one to end (GET …/imports) and retry"
            )));
        }
        if total >= self.total {
            return Err(ApiError::Unavailable(format!(
                "the server already runs {total} imports, its most at once; retry when one ends"
            )));
        }
        *running.entry(app).or_insert(0) += 1;
        Ok(ImportSlot {
            slots: self.clone(),
            app,
        })
    }

    /// Imports that ended since the start.
    pub fn ended(&self) -> u64 {
        self.ended.load(Ordering::Relaxed)
    }

    /// Imports running now.
    pub fn running(&self) -> usize {
        self.running
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .values()
            .sum()
    }
}

/// One import's place (see [`ImportSlots::reserve`]); freed when dropped.
pub struct ImportSlot {
    slots: Arc<ImportSlots>,
    app: AppId,
}

impl Drop for ImportSlot {
    fn drop(&mut self) {
        let mut running = self
            .slots
            .running
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(n) = running.get_mut(&self.app) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                running.remove(&self.app);
            }
        }
        self.slots.ended.fetch_add(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn imports_are_bounded_per_application_and_in_total() {
        let slots = Arc::new(ImportSlots::new(2, 3));
        let a1 = slots.reserve(AppId(1)).unwrap();
        let _a2 = slots.reserve(AppId(1)).unwrap();
        let third = slots.reserve(AppId(1));
        assert!(matches!(third, Err(ApiError::TooManyRequests(_))));
        let _b1 = slots.reserve(AppId(2)).unwrap();
        assert!(matches!(
            slots.reserve(AppId(3)),
            Err(ApiError::Unavailable(_))
        ));
        drop(a1);
        assert_eq!(slots.running(), 2);
        slots.reserve(AppId(3)).unwrap();
    }

    #[test]
    fn uploads_and_exports_are_long_and_probes_free() {
        assert_eq!(
            route_class(&Method::POST, "/v1/apps/{app}/imports"),
            RouteClass::Long
        );
        assert_eq!(
            route_class(&Method::GET, "/v1/apps/{app}/imports"),
            RouteClass::Short
        );
        assert_eq!(route_class(&Method::GET, "/health"), RouteClass::Free);
        assert_eq!(
            route_class(&Method::POST, "/v1/apps/{app}/count"),
            RouteClass::Short
        );
    }
}
