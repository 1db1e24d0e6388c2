//! Keyset pages of members: in customerId byte order (a walk of the ordered map that
//! stops after `limit` hits), or by a field's value with missing values last.
//!
//! Field order: values ascending (or descending), then the customers without a value;
//! ties, and the customers without a value, in customerId byte order (reversed when
//! descending), then by `id`. A page starts strictly after a [`SortPosition`] (value,
//! customerId), so a customerId is enough to resume even among equal values.

use std::cmp::Ordering;
use std::ops::Bound;

use unico_core::{FieldId, Value};
use unico_filter::{EvalContext, Filter, resolve};

use crate::column::{Column, Data};
use crate::index::AppIndex;
use crate::members::Members;

/// What a listing is sorted by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortKey {
    CustomerId,
    CreatedAt,
    UpdatedAt,
    Field(FieldId),
}

/// A place in a sorted listing: the sort value of the last customer shown (`None` if it
/// had none) and its customerId. Build one with [`AppIndex::sort_position`].
#[derive(Debug, Clone, PartialEq)]
pub struct SortPosition {
    pub value: Option<Value>,
    pub customer_id: String,
}

/// A sort value borrowed from a column (or a cursor).
#[derive(Debug, Clone, Copy)]
enum Key<'a> {
    Missing,
    Str(&'a [u8]),
    Num(f64),
    Ms(i64),
    Day(i32),
}

fn compare_values(a: Key<'_>, b: Key<'_>) -> Ordering {
    match (a, b) {
        (Key::Str(x), Key::Str(y)) => x.cmp(y),
        (Key::Num(x), Key::Num(y)) => (x + 0.0).total_cmp(&(y + 0.0)),
        (Key::Ms(x), Key::Ms(y)) => x.cmp(&y),
        (Key::Day(x), Key::Day(y)) => x.cmp(&y),
        _ => Ordering::Equal,
    }
}

/// The listing order of two entries `(value, customerId, id)`.
fn compare(a: (Key<'_>, &[u8], i64), b: (Key<'_>, &[u8], i64), descending: bool) -> Ordering {
    let missing = |k: Key<'_>| matches!(k, Key::Missing);
    match (missing(a.0), missing(b.0)) {
        (false, true) => Ordering::Less,
        (true, false) => Ordering::Greater,
        _ => {
            let order = compare_values(a.0, b.0).then_with(|| a.1.cmp(b.1).then(a.2.cmp(&b.2)));
            if descending { order.reverse() } else { order }
        }
    }
}

/// Feeds `visit` entries until it says stop (`true`), the entries end (`true`), or
/// `budget` entries went by (`false`).
fn walk_some<'a>(
    entries: &mut impl Iterator<Item = (&'a (Box<str>, i64), &'a u32)>,
    budget: usize,
    visit: &mut impl FnMut((&'a (Box<str>, i64), &'a u32)) -> bool,
) -> bool {
    for _ in 0..budget {
        match entries.next() {
            None => return true,
            Some(entry) => {
                if visit(entry) {
                    return true;
                }
            }
        }
    }
    entries.next().is_none()
}

fn key_of(column: Option<&Column>, slot: usize) -> Key<'_> {
    let Some(column) = column else {
        return Key::Missing;
    };
    if !column.present.get(slot) {
        return Key::Missing;
    }
    match &column.data {
        Data::Str { codes, dict } => codes
            .get(slot)
            .map_or(Key::Missing, |c| Key::Str(dict.value(c))),
        Data::Num(v) => v.get(slot).map_or(Key::Missing, Key::Num),
        Data::Datetime { ms, .. } => ms.get(slot).map_or(Key::Missing, |&t| Key::Ms(t)),
        Data::Date { days, .. } => days.get(slot).map_or(Key::Missing, |&d| Key::Day(d)),
    }
}

fn value_of(column: Option<&Column>, slot: usize) -> Option<Value> {
    match key_of(column, slot) {
        Key::Missing => None,
        Key::Str(b) => Some(Value::String(String::from_utf8_lossy(b).into_owned())),
        Key::Num(n) => Some(Value::Number(n)),
        Key::Ms(t) => Some(Value::Datetime(t)),
        Key::Day(d) => Some(Value::Date(d)),
    }
}

/// A cursor's value as a key of the column's type (another type reads as missing).
fn cursor_key<'a>(column: Option<&Column>, value: Option<&'a Value>) -> Key<'a> {
    let Some(column) = column else {
        return Key::Missing;
    };
    match (&column.data, value) {
        (Data::Str { .. }, Some(Value::String(s))) => Key::Str(s.as_bytes()),
        (Data::Num(_), Some(Value::Number(n))) => Key::Num(*n),
        (Data::Datetime { .. }, Some(Value::Datetime(t))) => Key::Ms(*t),
        (Data::Date { .. }, Some(Value::Date(d))) => Key::Day(*d),
        _ => Key::Missing,
    }
}

impl AppIndex {
    /// A keyset page of `members`' ids in customerId byte order (or its reverse),
    /// starting strictly after the customerId `after`, at most `limit` long.
    pub fn page_by_customer_id(
        &self,
        members: &Members,
        after: Option<&str>,
        descending: bool,
        limit: usize,
    ) -> Vec<i64> {
        let m = members.len() as usize;
        // A walk of the order meets a member every `live / m` entries; when that walk
        // would be longer than sorting the members themselves, sort them.
        let walk = (self.len() as u128) * (limit.min(m) as u128 + 1) / (m as u128 + 1);
        if (m as u128) * 24 < walk {
            return self.page_of_slots(members.slots(), after, descending, limit);
        }
        self.walk_order(after, descending, limit, usize::MAX, |slot| {
            members.contains(slot)
        })
        .unwrap_or_default()
    }

    /// The first `limit` members of `filter` in customerId order (or its reverse) after
    /// the customerId `after`: the same page as [`AppIndex::members`] then
    /// [`AppIndex::page_by_customer_id`], found by walking the order and testing rows one
    /// at a time until the page is full, which for a page of a not too selective filter
    /// reads a few hundred rows instead of every row. A walk that finds too few members
    /// (a selective filter) falls back to evaluating the whole filter.
    pub fn page_matching_by_customer_id(
        &self,
        filter: &Filter,
        ctx: &EvalContext,
        after: Option<&str>,
        descending: bool,
        limit: usize,
    ) -> Vec<i64> {
        let resolved = resolve(filter, ctx);
        let plan = self.compile(&resolved);
        let budget = self.page_walk_rows();
        if limit < budget
            && let Some(ids) =
                self.walk_order(after, descending, limit, budget, |slot| plan.test_row(slot))
        {
            return ids;
        }
        let members = self.members_of(&plan);
        self.page_by_customer_id(&members, after, descending, limit)
    }

    /// Walks the customerId order from the cursor, keeping the ids of slots that pass
    /// `keep`, until `limit` are kept (or the order ends); `None` if `budget` entries were
    /// read first.
    fn walk_order(
        &self,
        after: Option<&str>,
        descending: bool,
        limit: usize,
        budget: usize,
        keep: impl Fn(usize) -> bool,
    ) -> Option<Vec<i64>> {
        let mut ids = Vec::new();
        if limit == 0 {
            return Some(ids);
        }
        let mut visit = |(key, &slot): (&(Box<str>, i64), &u32)| {
            let slot = slot as usize;
            if self.id_of(slot) == Some(key.1) && keep(slot) {
                ids.push(key.1);
            }
            ids.len() >= limit
        };
        let finished = if descending {
            let upper = after.map_or(Bound::Unbounded, |a| Bound::Excluded((a.into(), i64::MIN)));
            let mut range = self.order().range((Bound::Unbounded, upper)).rev();
            walk_some(&mut range, budget, &mut visit)
        } else {
            let lower = after.map_or(Bound::Unbounded, |a| Bound::Excluded((a.into(), i64::MAX)));
            let mut range = self.order().range((lower, Bound::Unbounded));
            walk_some(&mut range, budget, &mut visit)
        };
        finished.then_some(ids)
    }

    /// The page of these slots in customerId order after the cursor, by sorting them.
    fn page_of_slots(
        &self,
        slots: impl Iterator<Item = usize>,
        after: Option<&str>,
        descending: bool,
        limit: usize,
    ) -> Vec<i64> {
        let mut keys: Vec<(&[u8], i64)> = slots
            .filter_map(|slot| Some((self.customer_id_of(slot), self.id_of(slot)?)))
            .filter(|(cid, _)| match after {
                None => true,
                Some(a) if descending => *cid < a.as_bytes(),
                Some(a) => *cid > a.as_bytes(),
            })
            .collect();
        if descending {
            keys.sort_unstable_by(|a, b| b.cmp(a));
        } else {
            keys.sort_unstable();
        }
        keys.into_iter().take(limit).map(|(_, id)| id).collect()
    }

    fn sort_column(&self, key: SortKey) -> Option<&Column> {
        match key {
            SortKey::CustomerId => Some(self.customer_id_column()),
            SortKey::CreatedAt => Some(self.created_at_column()),
            SortKey::UpdatedAt => Some(self.updated_at_column()),
            SortKey::Field(id) => self.field_column(id),
        }
    }

    /// A page of `members`' ids sorted by `key` (see the module docs for the order),
    /// starting strictly after `after`, at most `limit` long. Costs one pass over the
    /// members plus a partial sort of what follows the cursor.
    pub fn page_by_field(
        &self,
        members: &Members,
        key: SortKey,
        after: Option<&SortPosition>,
        descending: bool,
        limit: usize,
    ) -> Vec<i64> {
        if key == SortKey::CustomerId {
            return self.page_by_customer_id(
                members,
                after.map(|p| p.customer_id.as_str()),
                descending,
                limit,
            );
        }
        if limit == 0 {
            return Vec::new();
        }
        let column = self.sort_column(key);
        let entry = |slot: usize| {
            (
                key_of(column, slot),
                self.customer_id_of(slot),
                self.id_of(slot).unwrap_or(i64::MIN),
            )
        };
        let cursor = after.map(|p| {
            (
                cursor_key(column, p.value.as_ref()),
                p.customer_id.as_bytes(),
            )
        });
        let mut slots: Vec<usize> = members
            .slots()
            .filter(|&slot| self.id_of(slot).is_some())
            .filter(|&slot| match cursor {
                None => true,
                Some((value, cid)) => {
                    let (k, c, _) = entry(slot);
                    // Compare without the id: the cursor carries none.
                    compare((k, c, 0), (value, cid, 0), descending) == Ordering::Greater
                }
            })
            .collect();
        let by = |a: &usize, b: &usize| compare(entry(*a), entry(*b), descending);
        if slots.len() > limit {
            slots.select_nth_unstable_by(limit, by);
            slots.truncate(limit);
        }
        slots.sort_unstable_by(by);
        slots.into_iter().filter_map(|s| self.id_of(s)).collect()
    }

    /// The position of customer `id` in a listing sorted by `key`, to resume after it.
    pub fn sort_position(&self, id: i64, key: SortKey) -> Option<SortPosition> {
        let slot = self.slot_of(id)?;
        Some(SortPosition {
            value: value_of(self.sort_column(key), slot),
            customer_id: String::from_utf8_lossy(self.customer_id_of(slot)).into_owned(),
        })
    }
}
