//! Path and query parameters, parsed into domain types with our errors.

use std::collections::HashMap;

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query};
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

    fn raw(&self, name: &str) -> Result<&str, ApiError> {
        self.0
            .get(name)
            .map(String::as_str)
            .ok_or_else(|| ApiError::Internal(format!("route has no {name} capture")))
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
    pub fn from(
        query: Result<Query<Vec<(String, String)>>, QueryRejection>,
        allowed: &[&str],
    ) -> Result<Self, ApiError> {
        let Query(pairs) = query.map_err(|e| {
            ApiError::InvalidParameter(format!("invalid query string: {}", e.body_text()))
        })?;
        let mut map = HashMap::new();
        for (k, v) in pairs {
            if !allowed.contains(&k.as_str()) {
                return Err(ApiError::InvalidParameter(format!(
                    "unknown query parameter \"{}\"; accepted: {}",
                    unico_core::value::excerpt(&k),
                    allowed.join(", ")
                )));
            }
            if map.insert(k.clone(), v).is_some() {
                return Err(ApiError::InvalidParameter(format!(
                    "query parameter \"{k}\" is given twice"
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
