//! Keyset-pagination cursors: where the previous page ended, in the page's own order.
//!
//! A cursor is opaque to clients (`c1` + hex). It records which order it belongs to, so a
//! cursor reused with another `sort` is refused instead of silently skipping customers.

use crate::error::StoreError;
use crate::store::{Sort, SortBy};

/// The position after the last customer of a page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    /// Which order this cursor belongs to (see [`Cursor::order_tag`]).
    pub(crate) order: String,
    /// The sort key of the last customer (empty for customerId order; the id for creation
    /// order; `0x00`/`0x01`-prefixed value key for fields and updated_at).
    pub(crate) key: Vec<u8>,
    /// The last customer's customerId (the tie-breaker).
    pub(crate) customer_id: String,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Packs byte strings into an opaque cursor text: `prefix`, then the hex of each part
/// preceded by its length. Every kind of cursor of the API is made this way.
pub fn pack(prefix: &str, parts: &[&[u8]]) -> String {
    let mut raw = Vec::new();
    for part in parts {
        raw.extend_from_slice(&(part.len() as u32).to_be_bytes());
        raw.extend_from_slice(part);
    }
    format!("{prefix}{}", hex(&raw))
}

/// The parts of a text made by [`pack`] with the same prefix, or `None` if it is not one.
pub fn unpack(prefix: &str, text: &str) -> Option<Vec<Vec<u8>>> {
    let raw = unhex(text.strip_prefix(prefix)?)?;
    let mut parts = Vec::new();
    let mut pos = 0usize;
    while pos < raw.len() {
        let len = u32::from_be_bytes(raw.get(pos..pos + 4)?.try_into().ok()?) as usize;
        pos += 4;
        parts.push(raw.get(pos..pos.checked_add(len)?)?.to_vec());
        pos += len;
    }
    Some(parts)
}

/// The name of a list order, as cursors record it (`customerId`, `-updated_at`, `field:7`).
pub fn order_tag(sort: &Sort) -> String {
    let by = match &sort.by {
        SortBy::CustomerId => "customerId".to_owned(),
        SortBy::CreatedAt => "created_at".to_owned(),
        SortBy::UpdatedAt => "updated_at".to_owned(),
        SortBy::Field(f) => format!("field:{}", f.id.0),
    };
    if sort.descending {
        format!("-{by}")
    } else {
        by
    }
}

impl Cursor {
    pub(crate) fn order_tag(sort: &Sort) -> String {
        order_tag(sort)
    }

    /// The opaque text form handed to clients.
    pub fn encode(&self) -> String {
        pack(
            "c1",
            &[
                self.order.as_bytes(),
                &self.key,
                self.customer_id.as_bytes(),
            ],
        )
    }

    /// Parses a client's cursor and checks it belongs to `sort`.
    pub fn decode(text: &str, sort: &Sort) -> Result<Cursor, StoreError> {
        let bad = || {
            StoreError::Invalid("the cursor is not one this server issued; pass next_cursor from a previous page unchanged".into())
        };
        let parts = unpack("c1", text).ok_or_else(bad)?;
        let [order, key, customer_id]: [Vec<u8>; 3] = parts.try_into().map_err(|_| bad())?;
        let order = String::from_utf8(order).map_err(|_| bad())?;
        let customer_id = String::from_utf8(customer_id).map_err(|_| bad())?;
        if order != Self::order_tag(sort) {
            return Err(StoreError::Invalid(format!(
                "this cursor belongs to sort \"{order}\", not \"{}\"; keep the same sort while paging",
                Self::order_tag(sort)
            )));
        }
        Ok(Cursor {
            order,
            key,
            customer_id,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_refuse_tampering() {
        let sort = Sort::default_order();
        let c = Cursor {
            order: Cursor::order_tag(&sort),
            key: vec![0, 1, 255],
            customer_id: "a/b?#é".into(),
        };
        assert_eq!(Cursor::decode(&c.encode(), &sort).unwrap(), c);
        let desc = Sort {
            by: SortBy::CustomerId,
            descending: true,
        };
        assert!(matches!(
            Cursor::decode(&c.encode(), &desc),
            Err(StoreError::Invalid(_))
        ));
        for bad in ["", "c1", "c1zz", "c10000", "garbage", "c1ffffffff00"] {
            assert!(
                matches!(Cursor::decode(bad, &sort), Err(StoreError::Invalid(_))),
                "{bad}"
            );
        }
    }
}
