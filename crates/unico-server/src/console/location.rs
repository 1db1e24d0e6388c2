//! Where the console sends the browser next. Every `Location` the console answers is built
//! here, from a [`ConsolePath`]: a same-site path of the console, checked byte by byte, so
//! text that came from a form can neither break the header (a 500) nor lead off the console.

use axum::response::{IntoResponse, Redirect, Response};

/// The root of every console path.
const CONSOLE_ROOT: &str = "/console";

/// A path of this console, safe to send as a `Location`:
/// - it is `/console` or starts with `/console/`, so it is relative to this site (never
///   `//host`, a scheme such as `https:` or `javascript:`, or another part of the server);
/// - it holds visible ASCII only: no control character (CR and LF would end the header, and
///   browsers drop tabs and line breaks from URLs), no space, nothing the header cannot hold
///   (the console percent-encodes what it puts in a path or query);
/// - no backslash, which browsers read as `/`;
/// - no `.` or `..` segment, plain or percent-encoded, which browsers resolve (so
///   `/console/../v1` would leave the console).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsolePath(String);

impl ConsolePath {
    /// The path, if `raw` is a safe console path.
    pub fn parse(raw: &str) -> Option<Self> {
        let visible = |b: u8| (0x21..=0x7e).contains(&b) && b != b'\\';
        if !raw.bytes().all(visible) {
            return None;
        }
        let path = raw.split(['?', '#']).next().unwrap_or_default();
        if path != CONSOLE_ROOT && !path.starts_with("/console/") {
            return None;
        }
        let dot_segment = |segment: &str| {
            let plain = segment.to_ascii_lowercase().replace("%2e", ".");
            plain == "." || plain == ".."
        };
        if path.split('/').any(dot_segment) {
            return None;
        }
        Some(Self(raw.to_owned()))
    }

    /// The path, if `raw` is a safe console path at `page` or below it (`page` itself, then
    /// optionally `/…`, a query or a fragment).
    pub fn within(raw: &str, page: &ConsolePath) -> Option<Self> {
        let path = Self::parse(raw)?;
        let rest = path.0.strip_prefix(page.as_str())?;
        match rest.bytes().next() {
            None | Some(b'/' | b'?' | b'#') => Some(path),
            Some(_) => None,
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A 303 See Other to `path`.
pub fn see_other(path: &ConsolePath) -> Response {
    Redirect::to(path.as_str()).into_response()
}

/// A 303 See Other to a path the server built (numbers and percent-encoded text). A path
/// that fails the check is a bug in the console, logged and answered as a failure page,
/// never sent as a header.
pub fn redirect(built: &str) -> Response {
    match ConsolePath::parse(built) {
        Some(path) => see_other(&path),
        None => super::pages::failure(crate::error::ApiError::Internal(format!(
            "the console built an unsafe redirect: {built:?}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::ConsolePath;

    #[test]
    fn console_paths_with_queries_and_fragments_are_kept() {
        for ok in [
            "/console",
            "/console/apps",
            "/console/apps/1/customers?filter=age%20%3E%201&q=#list",
            "/console/apps/1/customers/ana%2F1?saved=1",
            "/console/apps/1/customers?filter=a..b",
            "/console/apps/1/customers/...",
        ] {
            assert_eq!(ConsolePath::parse(ok).map(|p| p.0), Some(ok.to_owned()));
        }
    }

    #[test]
    fn anything_else_is_refused() {
        for bad in [
            "",
            "/",
            "/v1/apps",
            "/consoles",
            "//evil.example",
            "//evil.example/console",
            "https://evil.example/console",
            "javascript:alert(1)",
            "console/apps",
            "/console\\..\\v1",
            "/\\evil.example",
            "/console/apps\nx",
            "/console/apps\r\nSet-Cookie: a=b",
            "/console/apps?q=\t",
            "/console/apps?q=\u{7f}",
            "/console/apps?q=\u{0}",
            "/console/apps?q=a b",
            "/console/apps?q=caf\u{e9}",
            "/console/..",
            "/console/./apps",
            "/console/%2e%2e/v1",
            "/console/%2E./v1",
            "/console/.%2e/v1",
            "/console/%2e/apps",
        ] {
            assert_eq!(ConsolePath::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn within_a_page_means_the_page_or_below_it() {
        let page = ConsolePath::parse("/console/apps/1/customers").unwrap();
        for ok in [
            "/console/apps/1/customers",
            "/console/apps/1/customers?q=a",
            "/console/apps/1/customers#top",
            "/console/apps/1/customers/ana",
        ] {
            assert!(ConsolePath::within(ok, &page).is_some(), "{ok}");
        }
        for bad in [
            "/console/apps/1/customersX",
            "/console/apps/1/customers.evil",
            "/console/apps/12/customers",
            "/console/apps/1",
            "/console/apps/1/customers/../../2/customers",
        ] {
            assert!(ConsolePath::within(bad, &page).is_none(), "{bad}");
        }
    }
}
