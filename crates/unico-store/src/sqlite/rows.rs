//! Row mapping and the SQL statements shared by reads and writes.

use rusqlite::{Connection, OptionalExtension, Row, params};
use unico_core::{
    AppId, AppName, Application, Computed, Customer, CustomerId, FieldDef, FieldId, FieldName,
    FieldType, TimeZoneName,
};

use crate::codec;
use crate::error::StoreError;
use crate::live::LiveFields;
use crate::store::{ApiKeyInfo, FieldStat};

pub(crate) fn corrupt(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Internal(format!("stored {what} is invalid: {e}"))
}

pub const APP_COLUMNS: &str = "id, name, timezone, created_at";

pub fn app_from_row(row: &Row<'_>) -> rusqlite::Result<(i64, String, String, i64)> {
    Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
}

pub fn to_app(
    (id, name, tz, created_at): (i64, String, String, i64),
) -> Result<Application, StoreError> {
    Ok(Application {
        id: AppId(id),
        name: AppName::parse(&name).map_err(|e| corrupt("application name", e))?,
        timezone: TimeZoneName::parse(&tz).unwrap_or_else(|_| TimeZoneName::utc()),
        created_at,
    })
}

pub fn get_app(conn: &Connection, app: AppId) -> Result<Application, StoreError> {
    let row = conn
        .prepare_cached(&format!("SELECT {APP_COLUMNS} FROM apps WHERE id = ?1"))?
        .query_row([app.0], app_from_row)
        .optional()?;
    to_app(row.ok_or_else(|| StoreError::NotFound(format!("application {app}")))?)
}

pub const KEY_COLUMNS: &str = "id, app_id, prefix, created_at, revoked_at";

pub fn key_from_row(row: &Row<'_>) -> rusqlite::Result<ApiKeyInfo> {
    Ok(ApiKeyInfo {
        id: row.get(0)?,
        app: AppId(row.get(1)?),
        prefix: row.get(2)?,
        created_at: row.get(3)?,
        revoked_at: row.get(4)?,
    })
}

pub fn field_stats(conn: &Connection, app: AppId) -> Result<Vec<FieldStat>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, name, type, created_at, value_count, computed FROM fields WHERE app_id = ?1 ORDER BY id",
    )?;
    let rows = stmt.query_map([app.0], |r| {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
            r.get::<_, i64>(3)?,
            r.get::<_, i64>(4)?,
            r.get::<_, Option<String>>(5)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (id, name, ty, created_at, count, computed) = row?;
        out.push(FieldStat {
            field: FieldDef {
                id: FieldId(u32::try_from(id).map_err(|e| corrupt("field id", e))?),
                name: FieldName::parse(&name).map_err(|e| corrupt("field name", e))?,
                field_type: FieldType::parse(&ty).map_err(|e| corrupt("field type", e))?,
                created_at,
                computed: computed
                    .map(|text| {
                        Computed::from_storage(&text).ok_or_else(|| corrupt("computed field", text))
                    })
                    .transpose()?,
            },
            value_count: count.max(0) as u64,
        });
    }
    Ok(out)
}

/// The live fields' types, for checking a write inside its own transaction.
pub fn live_field_types(conn: &Connection, app: AppId) -> Result<LiveFields, StoreError> {
    Ok(LiveFields::new(
        field_stats(conn, app)?
            .into_iter()
            // A computed field takes no written value: to a write it does not exist.
            .filter(|s| !s.field.is_computed())
            .map(|s| (s.field.id, s.field.field_type))
            .collect(),
    ))
}

pub const CUSTOMER_COLUMNS: &str = "id, customer_id, created_at, updated_at, data";

pub fn customer_from_row(row: &Row<'_>) -> rusqlite::Result<(i64, String, i64, i64, Vec<u8>)> {
    Ok((
        row.get(0)?,
        row.get(1)?,
        row.get(2)?,
        row.get(3)?,
        row.get(4)?,
    ))
}

pub fn to_customer(
    (id, customer_id, created_at, updated_at, data): (i64, String, i64, i64, Vec<u8>),
) -> Result<Customer, StoreError> {
    Ok(Customer {
        id,
        customer_id: CustomerId::parse(&customer_id).map_err(|e| corrupt("customerId", e))?,
        created_at,
        updated_at,
        fields: codec::decode(&data)?,
    })
}

pub fn find_customer(
    conn: &Connection,
    app: AppId,
    customer_id: &CustomerId,
) -> Result<Option<Customer>, StoreError> {
    let row = conn
        .prepare_cached(&format!(
            "SELECT {CUSTOMER_COLUMNS} FROM customers WHERE app_id = ?1 AND customer_id = ?2"
        ))?
        .query_row(params![app.0, customer_id.as_str()], customer_from_row)
        .optional()?;
    match row {
        Some(row) => to_customer(row).map(Some),
        // A merged customer's id finds its survivor.
        None => match super::identities::resolve_alias(conn, app, customer_id)? {
            Some(survivor) => find_customer(conn, app, &survivor),
            None => Ok(None),
        },
    }
}

pub fn not_found(customer_id: &CustomerId) -> StoreError {
    StoreError::NotFound(format!(
        "customer \"{}\"",
        unico_core::value::excerpt(customer_id.as_str())
    ))
}
