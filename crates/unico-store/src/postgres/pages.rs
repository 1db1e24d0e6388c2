//! Pages of customers in any list order, by keyset: each page starts after the previous
//! page's last customer, in the same order as the embedded backend (customerIds in byte
//! order, missing field values last either way), with the same cursors.

use postgres::GenericClient;
use postgres::types::ToSql;
use unico_core::{AppId, Customer};

use super::conn::{Db, Res};
use super::rows;
use crate::cursor::Cursor;
use crate::error::StoreError;
use crate::store::{ListQuery, Page, SortBy};

/// How a row's position in the page order is read back, to make the next cursor.
enum KeyColumn {
    /// customerId order: the customerId alone is the position.
    None,
    /// An integer column (id, updated_at), kept big-endian.
    Integer(usize),
    /// A bytea column (a field's sort key).
    Bytes(usize),
}

fn bad_cursor() -> StoreError {
    StoreError::Invalid("the cursor does not fit this order".into())
}

/// One page in the requested order, fetching one row more than asked to know whether
/// another page follows.
pub fn list_page<C: GenericClient>(db: &mut Db<'_, C>, app: AppId, query: &ListQuery) -> Res<Page> {
    let desc = query.sort.descending;
    let (cmp, dir) = if desc { ("<", "DESC") } else { (">", "ASC") };
    let after = query.after.as_ref();
    let cols = rows::CUSTOMER_COLUMNS;
    let int_key = |cur: &Cursor| -> Result<i64, StoreError> {
        Ok(i64::from_be_bytes(
            cur.key.as_slice().try_into().map_err(|_| bad_cursor())?,
        ))
    };
    let limit = (query.limit + 1) as i64;
    // $1 is the application, $2 the row count; the sort adds its own parameters after.
    let mut args: Vec<Box<dyn ToSql + Sync>> = vec![Box::new(app.0), Box::new(limit)];
    let (sql, key) = match &query.sort.by {
        SortBy::CustomerId => {
            let mut filter = String::new();
            if let Some(cur) = after {
                filter = format!(" AND customer_id {cmp} $3");
                args.push(Box::new(cur.customer_id.clone()));
            }
            (
                format!(
                    "SELECT {cols} FROM customers WHERE app_id = $1{filter} ORDER BY customer_id {dir} LIMIT $2"
                ),
                KeyColumn::None,
            )
        }
        SortBy::CreatedAt => {
            let mut filter = String::new();
            if let Some(cur) = after {
                filter = format!(" AND id {cmp} $3");
                args.push(Box::new(int_key(cur)?));
            }
            (
                format!(
                    "SELECT {cols} FROM customers WHERE app_id = $1{filter} ORDER BY id {dir} LIMIT $2"
                ),
                KeyColumn::Integer(0),
            )
        }
        SortBy::UpdatedAt => {
            let mut filter = String::new();
            if let Some(cur) = after {
                filter = format!(" AND (updated_at, customer_id) {cmp} ($3, $4)");
                args.push(Box::new(int_key(cur)?));
                args.push(Box::new(cur.customer_id.clone()));
            }
            (
                format!(
                    "SELECT {cols} FROM customers WHERE app_id = $1{filter} ORDER BY updated_at {dir}, customer_id {dir} LIMIT $2"
                ),
                KeyColumn::Integer(3),
            )
        }
        SortBy::Field(field) => {
            args.push(Box::new(i64::from(field.id.0)));
            args.push(Box::new(desc));
            let mut filter = String::new();
            if let Some(cur) = after {
                filter = format!(" WHERE (k, customer_id) {cmp} ($5, $6)");
                args.push(Box::new(cur.key.clone()));
                args.push(Box::new(cur.customer_id.clone()));
            }
            (
                format!(
                    "SELECT * FROM (SELECT {cols}, unico_sort_key(data, $3, $4) AS k FROM customers WHERE app_id = $1) s{filter} ORDER BY k {dir}, customer_id {dir} LIMIT $2"
                ),
                KeyColumn::Bytes(5),
            )
        }
    };
    let params: Vec<&(dyn ToSql + Sync)> = args.iter().map(|a| a.as_ref()).collect();
    let found = db.query(&sql, &params)?;
    let mut out: Vec<(Customer, Vec<u8>)> = Vec::with_capacity(found.len());
    for row in &found {
        let key = match key {
            KeyColumn::None => Vec::new(),
            KeyColumn::Integer(i) => row.try_get::<_, i64>(i)?.to_be_bytes().to_vec(),
            KeyColumn::Bytes(i) => row.try_get(i)?,
        };
        out.push((rows::customer(row)?, key));
    }
    let next = if out.len() > query.limit {
        out.truncate(query.limit);
        out.last().map(|(customer, key)| Cursor {
            order: Cursor::order_tag(&query.sort),
            key: key.clone(),
            customer_id: customer.customer_id.as_str().to_owned(),
        })
    } else {
        None
    };
    Ok(Page {
        customers: out.into_iter().map(|(c, _)| c).collect(),
        next,
    })
}
