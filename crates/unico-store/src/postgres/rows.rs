//! Row mapping and the statements shared by reads and writes.

use postgres::{GenericClient, Row};
use unico_core::{
    AppId, AppName, Application, Computed, Customer, CustomerId, FieldDef, FieldId, FieldName,
    FieldType, Schema, TimeZoneName,
};

use super::conn::{Db, Res};
use crate::codec;
use crate::error::StoreError;
use crate::live::LiveFields;
use crate::store::{
    ApiKeyInfo, FieldStat, ImportKind, ImportMode, ImportRecord, ImportState, SegmentRecord,
};

pub fn corrupt(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Internal(format!("stored {what} is invalid: {e}"))
}

/// A stored count, never negative.
fn count(row: &Row, i: usize) -> Res<u64> {
    Ok(row.try_get::<_, i64>(i)?.max(0) as u64)
}

pub const APP_COLUMNS: &str = "id, name, timezone, created_at";

pub fn app(row: &Row) -> Res<Application> {
    let name: String = row.try_get(1)?;
    let tz: String = row.try_get(2)?;
    Ok(Application {
        id: AppId(row.try_get(0)?),
        name: AppName::parse(&name).map_err(|e| corrupt("application name", e))?,
        timezone: TimeZoneName::parse(&tz).unwrap_or_else(|_| TimeZoneName::utc()),
        created_at: row.try_get(3)?,
    })
}

pub fn get_app<C: GenericClient>(db: &mut Db<'_, C>, id: AppId) -> Res<Application> {
    match db.query_opt(
        &format!("SELECT {APP_COLUMNS} FROM apps WHERE id = $1"),
        &[&id.0],
    )? {
        Some(row) => app(&row),
        None => Err(StoreError::NotFound(format!("application {id}")).into()),
    }
}

pub const KEY_COLUMNS: &str = "id, app_id, prefix, created_at, revoked_at";

pub fn key(row: &Row) -> Res<ApiKeyInfo> {
    Ok(ApiKeyInfo {
        id: row.try_get(0)?,
        app: AppId(row.try_get(1)?),
        prefix: row.try_get(2)?,
        created_at: row.try_get(3)?,
        revoked_at: row.try_get(4)?,
    })
}

pub fn field_stats<C: GenericClient>(db: &mut Db<'_, C>, app: AppId) -> Res<Vec<FieldStat>> {
    let rows = db.query(
        "SELECT id, name, type, created_at, value_count, computed FROM fields WHERE app_id = $1 ORDER BY id",
        &[&app.0],
    )?;
    rows.iter().map(|row| field_stat(row, 0)).collect()
}

/// A field and its value count from the columns `id, name, type, created_at, value_count,
/// computed` of `fields`, the first at `at`.
fn field_stat(row: &Row, at: usize) -> Res<FieldStat> {
    let id: i64 = row.try_get(at)?;
    let name: String = row.try_get(at + 1)?;
    let ty: String = row.try_get(at + 2)?;
    let computed: Option<String> = row.try_get(at + 5)?;
    Ok(FieldStat {
        field: FieldDef {
            id: FieldId(u32::try_from(id).map_err(|e| corrupt("field id", e))?),
            name: FieldName::parse(&name).map_err(|e| corrupt("field name", e))?,
            field_type: FieldType::parse(&ty).map_err(|e| corrupt("field type", e))?,
            created_at: row.try_get(at + 3)?,
            computed: computed
                .map(|text| {
                    Computed::from_storage(&text).ok_or_else(|| corrupt("computed field", text))
                })
                .transpose()?,
        },
        value_count: count(row, at + 4)?,
    })
}

/// The application's schema, `NotFound` if it does not exist: its existence, fields and
/// declared channels in one statement, its event types in a second (every `PATCH` reads
/// the schema first, so these round trips are on the write path).
pub fn app_schema<C: GenericClient>(db: &mut Db<'_, C>, app: AppId) -> Res<Schema> {
    let rows = db.query(
        "SELECT (SELECT value FROM meta WHERE key = $2),
                f.id, f.name, f.type, f.created_at, f.value_count, f.computed
         FROM apps a LEFT JOIN fields f ON f.app_id = a.id
         WHERE a.id = $1 ORDER BY f.id",
        &[&app.0, &crate::subscriptions::declared_channels_key(app)],
    )?;
    let Some(first) = rows.first() else {
        return Err(StoreError::NotFound(format!("application {app}")).into());
    };
    let declared: Option<String> = first.try_get(0)?;
    let mut fields = Vec::with_capacity(rows.len());
    for row in &rows {
        if row.try_get::<_, Option<i64>>(1)?.is_some() {
            fields.push(field_stat(row, 1)?.field);
        }
    }
    Ok(Schema::new(fields)
        .with_event_types(super::events::registry(db, app)?)
        .with_declared_channels(
            declared
                .as_deref()
                .map(crate::subscriptions::parse_declared)
                .unwrap_or_default(),
        ))
}

/// The live fields' types, for checking a write inside its own transaction.
pub fn live_fields<C: GenericClient>(db: &mut Db<'_, C>, app: AppId) -> Res<LiveFields> {
    Ok(LiveFields::new(
        field_stats(db, app)?
            .into_iter()
            // A computed field takes no written value: to a write it does not exist.
            .filter(|s| !s.field.is_computed())
            .map(|s| (s.field.id, s.field.field_type))
            .collect(),
    ))
}

pub const CUSTOMER_COLUMNS: &str = "id, customer_id, created_at, updated_at, data";

pub fn customer(row: &Row) -> Res<Customer> {
    let customer_id: &str = row.try_get(1)?;
    let data: &[u8] = row.try_get(4)?;
    Ok(Customer {
        id: row.try_get(0)?,
        customer_id: CustomerId::parse(customer_id).map_err(|e| corrupt("customerId", e))?,
        created_at: row.try_get(2)?,
        updated_at: row.try_get(3)?,
        fields: codec::decode(data)?,
    })
}

/// The customer with this customerId, or the survivor it is an alias of (a merged
/// customer's customerId); with `lock`, its row stays locked until the transaction ends
/// (`FOR NO KEY UPDATE`), so concurrent writers of one customer take turns (event writes,
/// which only keep it from being deleted, are not held back).
///
/// A customer merged away while the lock was awaited is gone when the wait ends: the alias
/// lookup, a statement of its own, then sees the merge's alias and finds the survivor.
pub fn find_customer<C: GenericClient>(
    db: &mut Db<'_, C>,
    app: AppId,
    customer_id: &CustomerId,
    lock: bool,
) -> Res<Option<Customer>> {
    let (direct, alias) = if lock {
        (
            "SELECT id, customer_id, created_at, updated_at, data FROM customers
             WHERE app_id = $1 AND customer_id = $2 FOR NO KEY UPDATE",
            "SELECT c.id, c.customer_id, c.created_at, c.updated_at, c.data
             FROM customer_aliases a JOIN customers c ON c.id = a.customer
             WHERE a.app_id = $1 AND a.alias = $2 FOR NO KEY UPDATE OF c",
        )
    } else {
        (
            "SELECT id, customer_id, created_at, updated_at, data FROM customers
             WHERE app_id = $1 AND customer_id = $2",
            "SELECT c.id, c.customer_id, c.created_at, c.updated_at, c.data
             FROM customer_aliases a JOIN customers c ON c.id = a.customer
             WHERE a.app_id = $1 AND a.alias = $2",
        )
    };
    let params: [&(dyn postgres::types::ToSql + Sync); 2] = [&app.0, &customer_id.as_str()];
    let row = match db.query_opt(direct, &params)? {
        Some(row) => Some(row),
        None => db.query_opt(alias, &params)?,
    };
    row.map(|row| customer(&row)).transpose()
}

/// The row id of the customer with this customerId, or of the survivor it is an alias of.
pub fn customer_row<C: GenericClient>(
    db: &mut Db<'_, C>,
    app: AppId,
    customer_id: &CustomerId,
) -> Res<Option<i64>> {
    let params: [&(dyn postgres::types::ToSql + Sync); 2] = [&app.0, &customer_id.as_str()];
    let row = match db.query_opt(
        "SELECT id FROM customers WHERE app_id = $1 AND customer_id = $2",
        &params,
    )? {
        Some(row) => Some(row),
        None => db.query_opt(
            "SELECT customer FROM customer_aliases WHERE app_id = $1 AND alias = $2",
            &params,
        )?,
    };
    Ok(row.map(|r| r.try_get(0)).transpose()?)
}

/// An application's schema: its fields and event types.
pub fn schema<C: GenericClient>(db: &mut Db<'_, C>, app: AppId) -> Res<Schema> {
    Ok(
        Schema::new(field_stats(db, app)?.into_iter().map(|s| s.field).collect())
            .with_event_types(super::events::registry(db, app)?)
            .with_declared_channels(super::subscriptions::declared(db, app)?),
    )
}

pub fn not_found(customer_id: &CustomerId) -> StoreError {
    StoreError::NotFound(format!(
        "customer \"{}\"",
        unico_core::value::excerpt(customer_id.as_str())
    ))
}

pub const SEGMENT_COLUMNS: &str = "id, app_id, name, filter, created_at, updated_at";

pub fn segment(row: &Row) -> Res<SegmentRecord> {
    Ok(SegmentRecord {
        id: row.try_get(0)?,
        app: AppId(row.try_get(1)?),
        name: row.try_get(2)?,
        filter: row.try_get(3)?,
        created_at: row.try_get(4)?,
        updated_at: row.try_get(5)?,
    })
}

pub fn get_segment<C: GenericClient>(
    db: &mut Db<'_, C>,
    app: AppId,
    id: i64,
) -> Res<SegmentRecord> {
    match db.query_opt(
        &format!("SELECT {SEGMENT_COLUMNS} FROM segments WHERE app_id = $1 AND id = $2"),
        &[&app.0, &id],
    )? {
        Some(row) => segment(&row),
        None => Err(StoreError::NotFound(format!("segment {id}")).into()),
    }
}

pub const IMPORT_COLUMNS: &str = "id, app_id, mode, state, created_at, finished_at, rows_read, rows_written, created, updated, values_written, rows_rejected, message, kind";

pub fn import(row: &Row) -> Res<ImportRecord> {
    let mode: &str = row.try_get(2)?;
    let state: &str = row.try_get(3)?;
    Ok(ImportRecord {
        id: row.try_get(0)?,
        app: AppId(row.try_get(1)?),
        mode: ImportMode::parse(mode).unwrap_or(ImportMode::Atomic),
        state: ImportState::parse(state),
        created_at: row.try_get(4)?,
        finished_at: row.try_get(5)?,
        rows_read: count(row, 6)?,
        rows_written: count(row, 7)?,
        created: count(row, 8)?,
        updated: count(row, 9)?,
        values_written: count(row, 10)?,
        rows_rejected: count(row, 11)?,
        message: row.try_get(12)?,
        kind: ImportKind::parse(row.try_get(13)?),
    })
}

pub fn get_import<C: GenericClient>(db: &mut Db<'_, C>, app: AppId, id: i64) -> Res<ImportRecord> {
    match db.query_opt(
        &format!("SELECT {IMPORT_COLUMNS} FROM imports WHERE app_id = $1 AND id = $2"),
        &[&app.0, &id],
    )? {
        Some(row) => import(&row),
        None => Err(StoreError::NotFound(format!("import {id}")).into()),
    }
}
