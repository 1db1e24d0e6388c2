//! What every console request and answer goes through.
//!
//! **Cross-site requests.** A state-changing request (any method but GET, HEAD, OPTIONS)
//! must come from the console's own pages, whatever its cookie (SameSite is one defence,
//! not the only one):
//! 1. `Sec-Fetch-Site`, when the browser sends it, decides: `same-origin` (or `none`, a
//!    request the user made) passes, anything else is refused.
//! 2. Else `Origin`, when sent, must name this host (`Host`, the URI's authority for
//!    HTTP/2, or the `X-Forwarded-Host` of a proxy that rewrote `Host`); `null` is refused.
//! 3. Else (neither header: an old browser, or not a browser) a request that acts with a
//!    live session must carry that session's form token (the hidden `csrf` field of the
//!    console's forms, or the `X-Unico-Csrf` header of its scripts). Signing in acts with no
//!    session and needs none; a request with no live session is let through to be sent to
//!    the sign-in page.
//!
//! Browsers send `Origin` with every POST, and `Sec-Fetch-Site` on HTTPS and localhost, so
//! a modern browser is judged by (1) or (2) and never needs the token; a page from another
//! site cannot forge either header, nor read the token.
//!
//! **Security headers.** Every console answer carries [`CONTENT_SECURITY_POLICY`] (scripts,
//! styles and requests from the console itself only, nothing inline, no framing), and
//! `X-Frame-Options: DENY`, `X-Content-Type-Options: nosniff`, `Referrer-Policy:
//! same-origin` for browsers that predate parts of it.

use axum::body::Body;
use axum::extract::{FromRequest, Request, State};
use axum::http::header::{
    CONTENT_SECURITY_POLICY as CSP, CONTENT_TYPE, HOST, ORIGIN, REFERRER_POLICY,
    X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use axum::http::{HeaderMap, HeaderValue, Method, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::session::{self, CsrfToken};
use crate::error::ApiError;
use crate::extract::{ContentType, MAX_JSON_BODY_BYTES};
use crate::state::AppState;

/// The console's content security policy: nothing by default; scripts, styles, images and
/// requests from the console's own origin only, never inline (every script and style is a
/// file under `console/static`); forms post to the console only; no page may frame it; no
/// `<base>` may redirect its relative links.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; \
     frame-ancestors 'none'; base-uri 'none'";

/// The path that starts sessions (it acts with none, so it needs no form token).
const SIGN_IN_PATH: &str = "/console/sign-in";

/// Where a request says it comes from.
#[derive(Debug, PartialEq, Eq)]
enum Site {
    /// The console's own origin (or the user, typing an address).
    Same,
    /// Another site; the reason, for the message.
    Other(String),
    /// The request does not say.
    Unknown,
}

fn site(headers: &HeaderMap, uri: &Uri) -> Site {
    if let Some(fetch_site) = headers.get("sec-fetch-site") {
        return match fetch_site.to_str() {
            Ok("same-origin" | "none") => Site::Same,
            Ok(other) => Site::Other(format!("Sec-Fetch-Site: {other}")),
            Err(_) => Site::Other("an unreadable Sec-Fetch-Site".into()),
        };
    }
    let Some(origin) = headers.get(ORIGIN) else {
        return Site::Unknown;
    };
    let origin = origin.to_str().unwrap_or_default();
    // An origin is `scheme://host[:port]`, nothing more; `null` has no host.
    let authority = origin
        .split_once("://")
        .map(|(_, a)| a)
        .filter(|a| !a.is_empty() && !a.contains(['/', '@', '?', '#', '\\']));
    let header = |name| headers.get(name).and_then(|v| v.to_str().ok());
    let forwarded_host = header("x-forwarded-host").and_then(|v| v.split(',').next());
    let ours = [
        header(HOST.as_str()),
        uri.authority().map(|a| a.as_str()),
        forwarded_host,
    ];
    match authority {
        Some(a)
            if ours
                .iter()
                .flatten()
                .any(|h| h.trim().eq_ignore_ascii_case(a)) =>
        {
            Site::Same
        }
        _ => Site::Other(format!("Origin: {origin}")),
    }
}

/// The 403 for a request that is not the console's own.
fn refused(message: String) -> Response {
    tracing::warn!(%message, "console request refused");
    ApiError::Forbidden(message).into_response()
}

/// Refuses state-changing requests that do not come from the console's own pages (see the
/// module's documentation).
pub async fn cross_site(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    ) {
        return next.run(request).await;
    }
    match site(request.headers(), request.uri()) {
        Site::Same => next.run(request).await,
        Site::Other(why) => refused(format!(
            "this request was sent from another site ({why}); the console acts only on \
             requests from its own pages"
        )),
        Site::Unknown => {
            let live = match session::token(request.headers()) {
                Some(t) if request.uri().path() != SIGN_IN_PATH => state.sessions.get(&t).await,
                _ => Ok(None),
            };
            let live = match live {
                Ok(Some(live)) => live,
                Ok(None) => return next.run(request).await,
                Err(e) => return e.into_response(),
            };
            match sent_token(request).await {
                Ok((request, Some(sent))) if live.csrf.matches(&sent) => next.run(request).await,
                Ok(_) => refused(
                    "this request says neither which site sent it (no Origin or \
                     Sec-Fetch-Site header) nor carries the session's form token; reload \
                     the console page and try again"
                        .into(),
                ),
                Err(e) => e.into_response(),
            }
        }
    }
}

/// The form token the request carries (the header, else a form body's field), and the
/// request to pass on (its body read and put back, when it was read).
async fn sent_token(request: Request) -> Result<(Request, Option<String>), ApiError> {
    if let Some(sent) = request.headers().get(CsrfToken::HEADER) {
        let sent = sent.to_str().ok().map(str::to_owned);
        return Ok((request, sent));
    }
    if ContentType::of(request.headers()).mime != "application/x-www-form-urlencoded" {
        return Ok((request, None));
    }
    let (parts, body) = request.into_parts();
    let bytes = axum::body::to_bytes(body, MAX_JSON_BODY_BYTES)
        .await
        .map_err(|_| {
            ApiError::BodyTooLarge(format!(
                "the form is larger than the {MAX_JSON_BODY_BYTES} bytes accepted"
            ))
        })?;
    // Parsed as axum parses the handler's form (a POST's body: a GET's form is its query).
    let mut form = Request::new(Body::from(bytes.clone()));
    *form.method_mut() = Method::POST;
    form.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/x-www-form-urlencoded"),
    );
    let sent = axum::Form::<Vec<(String, String)>>::from_request(form, &())
        .await
        .ok()
        .and_then(|axum::Form(pairs)| {
            pairs
                .into_iter()
                .find(|(k, _)| k == CsrfToken::FIELD)
                .map(|(_, v)| v)
        });
    Ok((Request::from_parts(parts, Body::from(bytes)), sent))
}

/// Adds the security headers to a console answer.
pub async fn security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    for (name, value) in [
        (CSP, CONTENT_SECURITY_POLICY),
        (X_FRAME_OPTIONS, "DENY"),
        (X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (REFERRER_POLICY, "same-origin"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn site_of(uri: &str, pairs: &[(&str, &str)]) -> Site {
        let mut headers = HeaderMap::new();
        for (n, v) in pairs {
            headers.insert(
                axum::http::HeaderName::from_bytes(n.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        site(&headers, &uri.parse().unwrap())
    }

    #[test]
    fn fetch_metadata_decides_first() {
        assert_eq!(
            site_of("/", &[("sec-fetch-site", "same-origin")]),
            Site::Same
        );
        assert_eq!(site_of("/", &[("sec-fetch-site", "none")]), Site::Same);
        for other in ["cross-site", "same-site", "SAME-ORIGIN", ""] {
            assert!(matches!(
                site_of(
                    "/",
                    &[
                        ("sec-fetch-site", other),
                        ("origin", "http://a"),
                        ("host", "a")
                    ]
                ),
                Site::Other(_)
            ));
        }
    }

    #[test]
    fn else_the_origin_must_name_this_host() {
        let same = |origin: &str, more: &[(&str, &str)]| {
            let mut pairs = vec![("origin", origin)];
            pairs.extend_from_slice(more);
            site_of("/console", &pairs) == Site::Same
        };
        assert!(same("http://a.test", &[("host", "a.test")]));
        assert!(same("https://A.test:8443", &[("host", "a.test:8443")]));
        assert!(same(
            "https://cdp.example",
            &[("host", "127.0.0.1"), ("x-forwarded-host", "cdp.example")]
        ));
        assert!(
            site_of("http://a.test/console", &[("origin", "http://a.test")]) == Site::Same,
            "HTTP/2"
        );
        assert!(!same("http://a.test", &[]), "no host to compare with");
        assert!(!same("http://a.test:81", &[("host", "a.test")]));
        assert!(!same("http://b.test", &[("host", "a.test")]));
        assert!(!same("null", &[("host", "null")]));
        assert!(!same("http://a.test/", &[("host", "a.test/")]));
        assert!(!same("http://x@a.test", &[("host", "x@a.test")]));
        assert!(!same("a.test", &[("host", "a.test")]));
        assert!(!same("http://", &[("host", "")]));
        assert_eq!(site_of("/", &[("host", "a.test")]), Site::Unknown);
    }
}
