//! Summaries of a set of members for charts: how many hold a value, the most frequent
//! strings, and the range and equal-width histogram of numbers and instants. Every
//! function reads only the members' rows, in one pass over their slots.

use unico_core::{FieldId, FieldType};

use crate::column::{Column, Data};
use crate::index::AppIndex;
use crate::members::Members;

const DAY_MS: f64 = 86_400_000.0;

/// What a summary looks at: a field of the schema or a built-in instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attribute {
    Field(FieldId),
    CreatedAt,
    UpdatedAt,
}

/// The most frequent strings among some members.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TopValues {
    /// Most frequent first; ties in byte order of the value.
    pub values: Vec<(String, u64)>,
    /// Members holding a value not listed.
    pub others: u64,
    /// Distinct values among the members.
    pub distinct: u64,
}

impl AppIndex {
    fn attribute(&self, attr: Attribute) -> Option<&Column> {
        match attr {
            Attribute::Field(id) => self.field_column(id),
            Attribute::CreatedAt => Some(self.builtin_created_at()),
            Attribute::UpdatedAt => Some(self.builtin_updated_at()),
        }
    }

    /// How many of `members` hold a value for `attr`.
    pub fn holding(&self, members: &Members, attr: Attribute) -> u64 {
        let Some(column) = self.attribute(attr) else {
            return 0;
        };
        members
            .words()
            .iter()
            .zip(column.present.words())
            .map(|(m, p)| u64::from((m & p).count_ones()))
            .sum()
    }

    /// The `k` most frequent values of a string attribute among `members` (empty for other
    /// types).
    pub fn top_values(&self, members: &Members, attr: Attribute, k: usize) -> TopValues {
        let Some(column) = self.attribute(attr) else {
            return TopValues::default();
        };
        let Data::Str { codes, dict } = &column.data else {
            return TopValues::default();
        };
        let mut counts = vec![0u32; dict.codes()];
        let mut total = 0u64;
        for slot in present_members(members, column) {
            if let Some(c) = codes.get(slot).and_then(|c| counts.get_mut(c as usize)) {
                *c += 1;
                total += 1;
            }
        }
        let mut seen: Vec<(u32, u32)> = counts
            .iter()
            .enumerate()
            .filter(|&(_, &n)| n > 0)
            .map(|(code, &n)| (code as u32, n))
            .collect();
        let distinct = seen.len() as u64;
        let by_rank = |a: &(u32, u32), b: &(u32, u32)| {
            b.1.cmp(&a.1)
                .then_with(|| dict.value(a.0).cmp(dict.value(b.0)))
        };
        if seen.len() > k && k > 0 {
            seen.select_nth_unstable_by(k - 1, by_rank);
        }
        seen.truncate(k);
        seen.sort_unstable_by(by_rank);
        let values: Vec<(String, u64)> = seen
            .iter()
            .map(|&(code, n)| {
                (
                    String::from_utf8_lossy(dict.value(code)).into_owned(),
                    u64::from(n),
                )
            })
            .collect();
        let listed: u64 = values.iter().map(|(_, n)| n).sum();
        TopValues {
            values,
            others: total - listed,
            distinct,
        }
    }

    /// The smallest and largest value of a number, date or datetime attribute among
    /// `members`, as numbers (dates and instants as epoch milliseconds). `None` when no
    /// member holds a value, or for strings.
    pub fn range(&self, members: &Members, attr: Attribute) -> Option<(f64, f64)> {
        let column = self.attribute(attr)?;
        let mut range: Option<(f64, f64)> = None;
        for_each_number(members, column, |x| {
            range = Some(match range {
                None => (x, x),
                Some((lo, hi)) => (lo.min(x), hi.max(x)),
            });
        });
        range
    }

    /// Counts the members' values of a number, date or datetime attribute into `buckets`
    /// buckets of `width` from `start` (bucket `i` holds `start + i·width ≤ x <
    /// start + (i+1)·width`; values below fall in the first, values past in the last).
    pub fn histogram(
        &self,
        members: &Members,
        attr: Attribute,
        start: f64,
        width: f64,
        buckets: usize,
    ) -> Vec<u64> {
        let mut counts = vec![0u64; buckets];
        let Some(column) = self.attribute(attr) else {
            return counts;
        };
        if buckets == 0 || width.is_nan() || width <= 0.0 {
            return counts;
        }
        let last = buckets - 1;
        for_each_number(members, column, |x| {
            let i = ((x - start) / width).floor();
            let i = if i < 0.0 { 0 } else { (i as usize).min(last) };
            counts[i] += 1;
        });
        counts
    }
}

/// The member slots that hold a value in `column`, ascending.
fn present_members<'a>(
    members: &'a Members,
    column: &'a Column,
) -> impl Iterator<Item = usize> + 'a {
    members
        .words()
        .iter()
        .zip(column.present.words())
        .enumerate()
        .flat_map(|(wi, (m, p))| {
            let mut rest = m & p;
            std::iter::from_fn(move || {
                if rest == 0 {
                    return None;
                }
                let bit = rest.trailing_zeros() as usize;
                rest &= rest - 1;
                Some(wi * 64 + bit)
            })
        })
}

/// Calls `f` with every member's value of a number, date (as epoch ms) or datetime
/// column.
fn for_each_number(members: &Members, column: &Column, mut f: impl FnMut(f64)) {
    match (&column.data, column.ty) {
        (Data::Num(values), FieldType::Number) => {
            for slot in present_members(members, column) {
                if let Some(x) = values.get(slot) {
                    f(x);
                }
            }
        }
        (Data::Datetime { ms, .. }, _) => {
            for slot in present_members(members, column) {
                if let Some(&x) = ms.get(slot) {
                    f(x as f64);
                }
            }
        }
        (Data::Date { days, .. }, _) => {
            for slot in present_members(members, column) {
                if let Some(&d) = days.get(slot) {
                    f(f64::from(d) * DAY_MS);
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use unico_core::{Customer, CustomerId, FieldDef, FieldName, Schema, Value};

    fn schema() -> Schema {
        let def = |id: u32, name: &str, ty| FieldDef {
            id: FieldId(id),
            name: FieldName::parse(name).unwrap(),
            field_type: ty,
            created_at: 0,
        };
        Schema::new(vec![
            def(1, "country", FieldType::String),
            def(2, "age", FieldType::Number),
            def(3, "birthdate", FieldType::Date),
        ])
    }

    fn customer(id: i64, country: Option<&str>, age: Option<f64>) -> Customer {
        let mut values = Vec::new();
        if let Some(c) = country {
            values.push((FieldId(1), Value::String(c.to_owned())));
        }
        if let Some(a) = age {
            values.push((FieldId(2), Value::Number(a)));
        }
        values.push((FieldId(3), Value::Date(id as i32)));
        Customer {
            id,
            customer_id: CustomerId::parse(&format!("c{id}")).unwrap(),
            created_at: id * 1000,
            updated_at: id * 1000,
            fields: values,
        }
    }

    fn index() -> AppIndex {
        let mut index = AppIndex::new(&schema());
        let rows = [
            (Some("ES"), Some(20.0)),
            (Some("FR"), Some(31.0)),
            (Some("ES"), None),
            (None, Some(45.0)),
            (Some("DE"), Some(39.5)),
            (Some("ES"), Some(60.0)),
            (Some("FR"), None),
        ];
        for (i, (c, a)) in rows.into_iter().enumerate() {
            index.upsert(&customer(i as i64 + 1, c, a));
        }
        index
    }

    #[test]
    fn top_values_rank_by_count_then_value_and_count_the_rest() {
        let index = index();
        let top = index.top_values(&index.all(), Attribute::Field(FieldId(1)), 2);
        assert_eq!(top.values, vec![("ES".to_owned(), 3), ("FR".to_owned(), 2)],);
        assert_eq!((top.others, top.distinct), (1, 3));
        assert_eq!(index.holding(&index.all(), Attribute::Field(FieldId(1))), 6);
        assert_eq!(
            index.top_values(&index.all(), Attribute::Field(FieldId(2)), 3),
            TopValues::default(),
            "numbers have no top values"
        );
    }

    #[test]
    fn range_and_histogram_follow_the_members() {
        let mut index = index();
        let age = Attribute::Field(FieldId(2));
        assert_eq!(index.range(&index.all(), age), Some((20.0, 60.0)));
        assert_eq!(
            index.histogram(&index.all(), age, 20.0, 10.0, 4),
            vec![1, 2, 1, 1],
            "60 lands in the last bucket"
        );
        let created = index.range(&index.all(), Attribute::CreatedAt);
        assert_eq!(created, Some((1000.0, 7000.0)));
        let dates = index.range(&index.all(), Attribute::Field(FieldId(3)));
        assert_eq!(dates, Some((DAY_MS, 7.0 * DAY_MS)));
        index.remove(6);
        assert_eq!(index.range(&index.all(), age), Some((20.0, 45.0)));
        assert_eq!(
            index.range(&index.all(), Attribute::Field(FieldId(1))),
            None,
            "strings have no range"
        );
    }
}
