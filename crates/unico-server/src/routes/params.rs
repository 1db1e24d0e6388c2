//! Path and query parameters, parsed into domain types with our errors.

use std::collections::HashMap;

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, RawQuery};
use percent_encoding::percent_decode_str;
use unico_core::{AppId, CustomerId, FieldName};

use crate::error::ApiError;

/// The path's captures, percent-decoded.
pub struct PathParams(HashMap<String, String>);

impl PathParams {
    pub fn from(
        path: Result<Path<HashMap<String, String>>, PathRejection>,
    ) -> Result<Self, ApiError> {
        path.map(|Path(map)| PathParams(map))
            .map_err(|e| ApiError::InvalidParameter(format!("invalid path: {}", e.body_text())))
    }

    pub(crate) fn raw(&self, name: &str) -> Result<&str, ApiError> {
        self.0
            .get(name)
            .map(String::as_str)
            .ok_or_else(|| ApiError::Internal(format!("route has no {name} capture")))
    }

    /// An event type's code from the path.
    pub fn event_code(&self) -> Result<unico_core::EventCode, ApiError> {
        unico_core::EventCode::parse(self.raw("code")?)
            .map_err(|e| ApiError::InvalidParameter(e.to_string()))
    }

    pub fn app(&self) -> Result<AppId, ApiError> {
        let raw = self.raw("app")?;
        raw.parse::<i64>().map(AppId).map_err(|_| {
            ApiError::NotFound(format!(
                "application \"{}\" not found; application ids are numbers",
                unico_core::value::excerpt(raw)
            ))
        })
    }

    pub fn customer_id(&self) -> Result<CustomerId, ApiError> {
        match self.0.get("customer_id") {
            // The literal route /customers/batch has no capture: that customer is "batch".
            None => Ok(CustomerId::parse("batch").map_err(|e| ApiError::Internal(e.to_string()))?),
            Some(raw) => CustomerId::parse(raw)
                .map_err(|e| ApiError::NotFound(format!("customer not found: {e}"))),
        }
    }

    pub fn field_name(&self) -> Result<FieldName, ApiError> {
        let raw = self.raw("name")?;
        FieldName::parse(raw).map_err(|e| ApiError::NotFound(format!("field not found: {e}")))
    }

    pub fn import_id(&self) -> Result<i64, ApiError> {
        let raw = self.raw("id")?;
        raw.parse().map_err(|_| {
            ApiError::NotFound(format!(
                "import \"{}\" not found",
                unico_core::value::excerpt(raw)
            ))
        })
    }

    pub fn segment_id(&self) -> Result<i64, ApiError> {
        let raw = self.raw("id")?;
        raw.parse().map_err(|_| {
            ApiError::NotFound(format!(
                "segment \"{}\" not found",
                unico_core::value::excerpt(raw)
            ))
        })
    }

    pub fn key_id(&self) -> Result<i64, ApiError> {
        let raw = self.raw("key_id")?;
        raw.parse().map_err(|_| {
            ApiError::NotFound(format!(
                "key \"{}\" not found",
                unico_core::value::excerpt(raw)
            ))
        })
    }
}

/// Query parameters, refusing unknown or repeated names so typos do not pass silently.
pub struct QueryParams(HashMap<String, String>);

impl QueryParams {
    /// Decodes the query string as a form (`+` is a space, `%XX` a byte) strictly: names and
    /// values must be UTF-8 once decoded. A lossy decoding would put U+FFFD where the bad
    /// bytes were and run, say, a filter nobody wrote.
    pub fn from(RawQuery(query): RawQuery, allowed: &[&str]) -> Result<Self, ApiError> {
        let mut map = HashMap::new();
        let pairs = query.as_deref().unwrap_or("").split('&');
        for pair in pairs.filter(|p| !p.is_empty()) {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let name = form_decode(name).map_err(|_| {
                ApiError::InvalidParameter(format!(
                    "a query parameter name is not UTF-8 text once percent-decoded; {UTF8_HINT}"
                ))
            })?;
            if !allowed.contains(&name.as_str()) {
                return Err(ApiError::InvalidParameter(format!(
                    "unknown query parameter \"{}\"; accepted: {}",
                    unico_core::value::excerpt(&name),
                    allowed.join(", ")
                )));
            }
            let value = form_decode(value).map_err(|e| {
                ApiError::InvalidParameter(format!(
                    "query parameter \"{name}\" is not UTF-8 text once percent-decoded (invalid byte at position {} of its value); {UTF8_HINT}",
                    e.valid_up_to() + 1
                ))
            })?;
            if map.insert(name.clone(), value).is_some() {
                return Err(ApiError::InvalidParameter(format!(
                    "query parameter \"{name}\" is given twice"
                )));
            }
        }
        Ok(QueryParams(map))
    }

    /// Parameters given directly (the console builds its own).
    pub fn from_pairs(pairs: Vec<(String, String)>) -> Self {
        QueryParams(pairs.into_iter().collect())
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }
}

/// How to send text that is not ASCII in a query string.
const UTF8_HINT: &str = "percent-encode the UTF-8 bytes of the text (é is %C3%A9)";

/// One name or value of a form-encoded query string: `+` is a space, `%XX` a byte, and the
/// bytes must be UTF-8.
fn form_decode(text: &str) -> Result<String, std::str::Utf8Error> {
    let spaced = text.replace('+', " ");
    percent_decode_str(&spaced)
        .decode_utf8()
        .map(std::borrow::Cow::into_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(text: &str) -> Result<QueryParams, ApiError> {
        QueryParams::from(RawQuery(Some(text.to_owned())), &["filter", "sort"])
    }

    #[test]
    fn form_decoding_is_strict_about_utf8() {
        assert_eq!(form_decode("a+b%20c%2B").as_deref(), Ok("a b c+"));
        assert_eq!(form_decode("%C3%A9%EF%BF%BD").as_deref(), Ok("é\u{FFFD}"));
        assert_eq!(form_decode("100%").as_deref(), Ok("100%"));
        assert_eq!(form_decode("ok%E2%82").map_err(|e| e.valid_up_to()), Err(2));
        assert!(form_decode("%FF").is_err());
    }

    #[test]
    fn query_strings_are_read_as_forms() {
        let q = query("filter=age+%3E+1&&sort").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(q.get("filter"), Some("age > 1"));
        assert_eq!(q.get("sort"), Some(""));
        let err = query("sort=x&filter=%C3%28").err().map(|e| e.to_string());
        assert_eq!(
            err.as_deref(),
            Some(
                "query parameter \"filter\" is not UTF-8 text once percent-decoded (invalid byte at position 1 of its value); percent-encode the UTF-8 bytes of the text (é is %C3%A9)"
            )
        );
        assert!(query("%FF=1").is_err());
        assert!(query("filter=a&filter=b").is_err());
        assert!(query("zzz=1").is_err());
    }
}
