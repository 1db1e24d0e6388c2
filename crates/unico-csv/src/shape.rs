//! The three shapes of an import file, told apart by the header alone.
//!
//! - **long**: exactly `customerId,fieldName,fieldValue` (case-sensitive). This wins even if
//!   the schema happens to define fields named `fieldName` and `fieldValue`.
//! - **ids only**: exactly `customerId`.
//! - **wide**: `customerId` followed by one column per customer field, by its exact name,
//!   or per subscription channel (`subscription:email`, see [`CONSENT_PREFIX`]).
//!
//! Every header problem is fatal (a header that cannot be mapped makes every row meaningless)
//! and names the 1-based column: a first column that is not `customerId`, a column with no
//! name (also a trailing separator), a column that is not a defined field (with "did you
//! mean" from `Schema::suggest`), and a column that appears twice.

use std::collections::HashMap;

use unico_core::value::excerpt;
use unico_core::{Channel, FieldId, FieldType, Schema};

/// The name of the key column, first in every shape.
pub const CUSTOMER_ID: &str = "customerId";
/// The header of a long file.
pub const LONG_HEADER: [&str; 3] = [CUSTOMER_ID, "fieldName", "fieldValue"];

/// One field column of a wide file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WideColumn {
    pub name: String,
    pub field: FieldId,
    pub field_type: FieldType,
    /// A consent column (`subscription:<channel>`): its cells are subscription statements
    /// on this channel, not values of `field`.
    pub consent: Option<Channel>,
}

/// The prefix of a consent column's name (wide files) or `fieldName` (long files):
/// `subscription:email`. A customer field of that exact name takes precedence.
pub const CONSENT_PREFIX: &str = "subscription:";

/// The channel a consent column names, if `name` is one: `Ok(None)` when it is not a
/// consent column, `Err` with the reason when it names a channel the application does not
/// take.
pub fn consent_column(name: &str, schema: &Schema) -> Result<Option<Channel>, String> {
    let Some(rest) = name.strip_prefix(CONSENT_PREFIX) else {
        return Ok(None);
    };
    if schema.by_name(name).is_some() {
        return Ok(None);
    }
    let channels = schema.subscription_channels();
    match Channel::parse(rest) {
        Ok(c) if channels.contains(&c) => Ok(Some(c)),
        _ => {
            let names: Vec<String> = channels
                .iter()
                .map(|c| format!("{CONSENT_PREFIX}{c}"))
                .collect();
            Err(format!(
                "\"{}\" is not a subscription channel of this application; consent columns are {}",
                excerpt(rest),
                names.join(", ")
            ))
        }
    }
}

/// The shape of a file, with a wide file's columns resolved against the schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Shape {
    Long,
    IdsOnly,
    /// The field columns, in file order (the `customerId` column is not listed).
    Wide(Vec<WideColumn>),
}

/// Why a header was refused; `column` is 1-based.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("column {column}: {message}")]
pub struct HeaderError {
    pub column: usize,
    pub message: String,
}

impl Shape {
    /// Maps a header (its cells, in order) to a shape.
    pub fn detect<S: AsRef<str>>(header: &[S], schema: &Schema) -> Result<Shape, HeaderError> {
        let first = header.first().map_or("", |s| s.as_ref());
        if first != CUSTOMER_ID {
            let message = if first.trim().eq_ignore_ascii_case(CUSTOMER_ID) {
                format!(
                    "the first column must be named exactly customerId (case-sensitive, no spaces); found \"{}\"",
                    excerpt(first)
                )
            } else {
                format!(
                    "the header must start with customerId; found \"{}\". Accepted headers: customerId,fieldName,fieldValue (long), customerId alone (ids only), or customerId followed by field names (wide)",
                    excerpt(first)
                )
            };
            return Err(HeaderError { column: 1, message });
        }
        if header.len() == 1 {
            return Ok(Shape::IdsOnly);
        }
        if header.len() == 3 && header.iter().map(AsRef::as_ref).eq(LONG_HEADER) {
            return Ok(Shape::Long);
        }
        let looks_long = header.len() == 3;
        let mut seen: HashMap<&str, usize> = HashMap::with_capacity(header.len());
        seen.insert(CUSTOMER_ID, 1);
        let mut columns = Vec::with_capacity(header.len() - 1);
        for (index, name) in header.iter().enumerate().skip(1) {
            let name = name.as_ref();
            let column = index + 1;
            if name.is_empty() {
                return Err(HeaderError {
                    column,
                    message: format!(
                        "column {column} has no name; every column after customerId must be a customer field (check for a trailing separator)"
                    ),
                });
            }
            if let Some(first_seen) = seen.insert(name, column) {
                return Err(HeaderError {
                    column,
                    message: format!(
                        "\"{}\" appears twice (columns {first_seen} and {column}); each field may have only one column",
                        excerpt(name)
                    ),
                });
            }
            match consent_column(name, schema) {
                Ok(Some(channel)) => {
                    columns.push(WideColumn {
                        name: name.to_owned(),
                        field: FieldId(0),
                        field_type: FieldType::String,
                        consent: Some(channel),
                    });
                    continue;
                }
                Ok(None) => {}
                Err(message) => return Err(HeaderError { column, message }),
            }
            let Some(def) = schema.by_name(name) else {
                return Err(HeaderError {
                    column,
                    message: unknown_column_message(name, index, looks_long, schema),
                });
            };
            if let Some(computed) = &def.computed {
                return Err(HeaderError {
                    column,
                    message: crate::reader::computed_message(name, computed),
                });
            }
            columns.push(WideColumn {
                name: name.to_owned(),
                field: def.id,
                field_type: def.field_type,
                consent: None,
            });
        }
        Ok(Shape::Wide(columns))
    }

    /// How many cells every data row must have.
    pub fn width(&self) -> usize {
        match self {
            Shape::Long => LONG_HEADER.len(),
            Shape::IdsOnly => 1,
            Shape::Wide(columns) => columns.len() + 1,
        }
    }

    /// The header name of the 0-based column `index` (empty past the header's end).
    pub fn column_name(&self, index: usize) -> &str {
        match (self, index) {
            (_, 0) => CUSTOMER_ID,
            (Shape::Long, 1 | 2) => LONG_HEADER[index],
            (Shape::Wide(columns), _) => columns.get(index - 1).map_or("", |c| c.name.as_str()),
            _ => "",
        }
    }
}

fn unknown_column_message(name: &str, index: usize, looks_long: bool, schema: &Schema) -> String {
    let long_name = LONG_HEADER[index.min(2)];
    if looks_long && name.trim().eq_ignore_ascii_case(long_name) {
        return format!(
            "\"{}\" is not a customer field; a long file's header is exactly customerId,fieldName,fieldValue (case-sensitive, no spaces)",
            excerpt(name)
        );
    }
    unknown_field_message(name, schema, "define the field first, or remove the column")
}

/// Names longer than this (in bytes) get no "did you mean": 1.5× the longest field name.
const MAX_SUGGESTIBLE_NAME_BYTES: usize = unico_core::limits::MAX_FIELD_NAME_CHARS * 3 / 2;

/// The message for a name that is not a defined field, with a suggestion when one is close.
/// `otherwise` says what to do when no name is close.
pub(crate) fn unknown_field_message(name: &str, schema: &Schema, otherwise: &str) -> String {
    // `Schema::suggest` is quadratic in the name's length; an ASCII name this long is past its
    // edit distance of any valid field name anyway, and a 1 MB cell must cost nothing.
    let suggestion = if name.len() <= MAX_SUGGESTIBLE_NAME_BYTES {
        schema.suggest(name)
    } else {
        None
    };
    match suggestion {
        Some(suggestion) => format!(
            "\"{}\" is not a customer field; did you mean \"{suggestion}\"?",
            excerpt(name)
        ),
        None => format!("\"{}\" is not a customer field; {otherwise}", excerpt(name)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use unico_core::{FieldDef, FieldName};

    fn schema() -> Schema {
        Schema::new(
            [("age", FieldType::Number), ("country", FieldType::String)]
                .into_iter()
                .enumerate()
                .map(|(i, (name, field_type))| FieldDef {
                    id: FieldId(i as u32 + 1),
                    name: FieldName::parse(name).expect("valid name"),
                    field_type,
                    created_at: 0,
                    computed: None,
                })
                .collect(),
        )
    }

    fn detect(header: &[&str]) -> Result<Shape, String> {
        Shape::detect(header, &schema()).map_err(|e| e.to_string())
    }

    #[test]
    fn the_three_shapes() {
        assert_eq!(
            detect(&["customerId", "fieldName", "fieldValue"]),
            Ok(Shape::Long)
        );
        assert_eq!(detect(&["customerId"]), Ok(Shape::IdsOnly));
        let wide = detect(&["customerId", "country", "age"]).expect("wide");
        assert_eq!(wide.width(), 3);
        assert_eq!(wide.column_name(1), "country");
        assert_eq!(wide.column_name(2), "age");
        assert_eq!(wide.column_name(3), "");
        assert_eq!(Shape::Long.column_name(2), "fieldValue");
        assert_eq!(Shape::IdsOnly.column_name(1), "");
    }

    #[test]
    fn header_errors_name_the_column() {
        assert_eq!(
            detect(&["customerid", "age"]),
            Err("column 1: the first column must be named exactly customerId (case-sensitive, no spaces); found \"customerid\"".into())
        );
        assert_eq!(
            detect(&["id", "age"]),
            Err("column 1: the header must start with customerId; found \"id\". Accepted headers: customerId,fieldName,fieldValue (long), customerId alone (ids only), or customerId followed by field names (wide)".into())
        );
        assert_eq!(
            detect(&["customerId", "agee"]),
            Err("column 2: \"agee\" is not a customer field; did you mean \"age\"?".into())
        );
        assert_eq!(
            detect(&["customerId", "age", "zzzzzz"]),
            Err("column 3: \"zzzzzz\" is not a customer field; define the field first, or remove the column".into())
        );
        assert_eq!(
            detect(&["customerId", "age", "age"]),
            Err("column 3: \"age\" appears twice (columns 2 and 3); each field may have only one column".into())
        );
        assert_eq!(
            detect(&["customerId", "age", "customerId"]),
            Err("column 3: \"customerId\" appears twice (columns 1 and 3); each field may have only one column".into())
        );
        assert_eq!(
            detect(&["customerId", "age", ""]),
            Err("column 3: column 3 has no name; every column after customerId must be a customer field (check for a trailing separator)".into())
        );
        assert_eq!(
            detect(&["customerId", "fieldname", "fieldValue"]),
            Err("column 2: \"fieldname\" is not a customer field; a long file's header is exactly customerId,fieldName,fieldValue (case-sensitive, no spaces)".into())
        );
    }
}
