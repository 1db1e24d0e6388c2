//! The streaming import core: bytes in, one [`Row`] per record out, with positions.
//!
//! [`ImportReader`] reads the header (detecting the [`Dialect`] and the [`Shape`]) and then
//! yields, record by record, either a [`RowOp`] (a customerId and the changes to apply) or a
//! [`RowError`]. It never writes anything: the caller decides what atomic or `skip_invalid`
//! means. Memory is bounded whatever the file: one 64 KiB input buffer plus one record
//! (at most [`MAX_ROW_BYTES`] of cell text and [`MAX_ROW_CELLS`] cells; a longer record is
//! read through, discarded and reported as a row error).
//!
//! **Architecture invariant: every cell goes through `unico_core::value::parse_text`** (and
//! every key through `CustomerId::parse`), so CSV accepts and refuses exactly what the API
//! does. An empty cell is absent: in a long row it removes the value, in a wide row it leaves
//! the field untouched.
//!
//! # Fatal or per row
//! Fatal ([`FileError`], the import stops): an empty file, a header that maps to no shape,
//! bytes that are not UTF-8 anywhere (the file is in another encoding; every accented row
//! would be wrong), a quoted cell still open at the end of the file (everything after the
//! quote was swallowed, so no row after it can be trusted), and I/O errors.
//!
//! Per row ([`RowError`], reported, skippable): a wrong number of cells, an invalid
//! customerId (empty, too long, control characters such as NUL, surrounding spaces), an
//! unknown `fieldName` (with "did you mean"), a `fieldValue` without a `fieldName`, a value
//! that does not parse as its field's type, and a record longer than [`MAX_ROW_BYTES`] or
//! with more than [`MAX_ROW_CELLS`] cells. Only the first problem of a row is reported.
//! NUL and other control characters inside string values are kept: the value rules of the
//! core allow any UTF-8 text, and CSV follows them.
//!
//! Line numbers and the CSV syntax itself (quotes, line endings, the fast path for plain
//! lines) are the business of the private `record` module underneath.
//!
//! # Hot path
//! No allocation per cell: cells are slices of one reused, once-validated buffer. The
//! customerId is parsed once per run of rows with the same id; long rows find their field by
//! trying the next few in schema order (files are usually grouped by customer, fields in a
//! stable order) before a hash map. [`ImportReader::next_row_ref`] lends the customerId and
//! the changes from reused buffers; [`ImportReader::next_row_mut`] lends them so they can be
//! moved out; [`ImportReader::next_row`] and the iterator own them.

use std::collections::HashMap;
use std::io::{self, Read};

use unico_core::value::{excerpt, parse_text};
use unico_core::{Channel, CustomerId, FieldChange, FieldId, FieldType, Schema};

use crate::dialect::{DEFAULT_SEPARATOR, Dialect};
use crate::error::{FileError, RowError};
use crate::record::{MAX_ROW_BYTES, MAX_ROW_CELLS, RecordReader};
use crate::shape::{Shape, WideColumn, consent_column, unknown_field_message};

/// How many distinct unknown field names get a "did you mean" (each costs an edit-distance
/// scan of the schema); later ones get the plain message.
const MAX_SUGGESTIONS: usize = 100;

/// One valid record: make sure `customer_id` exists, then apply `changes` in order.
#[derive(Debug, Clone, PartialEq)]
pub struct RowOp {
    /// The line where the record starts.
    pub line: u64,
    pub customer_id: CustomerId,
    /// Long: none (only ensure the customer) or one (`value: None` removes the value);
    /// wide: one per non-empty cell, in column order; ids only: none.
    pub changes: Vec<FieldChange>,
    /// Subscription statements of the row (consent columns): channel, subscribed.
    pub consents: Vec<(Channel, bool)>,
}

/// What one record of the file became.
#[derive(Debug, Clone, PartialEq)]
pub enum Row {
    Op(RowOp),
    Invalid(RowError),
}

/// A valid record, lent by [`ImportReader::next_row_ref`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RowOpRef<'a> {
    pub line: u64,
    pub customer_id: &'a CustomerId,
    pub changes: &'a [FieldChange],
    pub consents: &'a [(Channel, bool)],
}

/// A valid record, lent by [`ImportReader::next_row_mut`]: the caller may move the changes
/// out (`Vec::append`), which leaves the reader's buffer empty but keeps its capacity.
#[derive(Debug, PartialEq)]
pub struct RowOpMut<'a> {
    pub line: u64,
    pub customer_id: &'a CustomerId,
    /// Whether the previous valid record had the same customerId (the reader compares the
    /// ids anyway; invalid records in between do not count), so a caller grouping rows by
    /// customer need not compare them again.
    pub same_customer: bool,
    pub changes: &'a mut Vec<FieldChange>,
    pub consents: &'a [(Channel, bool)],
}

/// What one record became, lent by [`ImportReader::next_row_mut`].
#[derive(Debug, PartialEq)]
pub enum RowMut<'a> {
    Op(RowOpMut<'a>),
    Invalid(RowError),
}

/// What one record became, lent by [`ImportReader::next_row_ref`].
#[derive(Debug, Clone, PartialEq)]
pub enum RowRef<'a> {
    Op(RowOpRef<'a>),
    Invalid(RowError),
}

/// Finds long rows' fields by name.
struct FieldLookup {
    /// The schema's fields, in schema order.
    fields: Vec<(Box<str>, FieldId, FieldType)>,
    by_name: HashMap<Box<str>, usize>,
    /// Where to start guessing: just after the last field found.
    next: usize,
    /// Messages for unknown names already seen (bounded by [`MAX_SUGGESTIONS`]).
    unknown: HashMap<Box<str>, String>,
}

impl FieldLookup {
    /// How many fields after the last one found are tried before hashing.
    const GUESSES: usize = 4;

    fn new(schema: &Schema) -> Self {
        let fields: Vec<(Box<str>, FieldId, FieldType)> = schema
            .fields()
            .iter()
            // A computed field takes no imported value: its name is refused as unknown is,
            // with its own message.
            .filter(|f| !f.is_computed())
            .map(|f| (Box::from(f.name.as_str()), f.id, f.field_type))
            .collect();
        let by_name = fields
            .iter()
            .enumerate()
            .map(|(i, f)| (f.0.clone(), i))
            .collect();
        Self {
            fields,
            by_name,
            next: 0,
            unknown: HashMap::new(),
        }
    }

    #[inline]
    fn get(&mut self, name: &str) -> Option<(FieldId, FieldType)> {
        let n = self.fields.len();
        for k in 0..Self::GUESSES.min(n) {
            let i = (self.next + k) % n;
            let (candidate, id, ty) = &self.fields[i];
            if &**candidate == name {
                self.next = i + 1;
                return Some((*id, *ty));
            }
        }
        let &i = self.by_name.get(name)?;
        self.next = i + 1;
        let (_, id, ty) = &self.fields[i];
        Some((*id, *ty))
    }

    fn unknown_message(&mut self, name: &str, schema: &Schema) -> String {
        if let Some(message) = self.unknown.get(name) {
            return message.clone();
        }
        if let Some(computed) = schema.by_name(name).and_then(|f| f.computed.as_ref()) {
            return computed_message(name, computed);
        }
        if self.unknown.len() >= MAX_SUGGESTIONS {
            return format!(
                "\"{}\" is not a customer field; define the field first",
                excerpt(name)
            );
        }
        let message = unknown_field_message(name, schema, "define the field first");
        self.unknown.insert(Box::from(name), message.clone());
        message
    }
}

/// Reads an import file record by record; see the module docs. Iterating yields
/// `Ok(Row)` per record and ends after the last record, or after the first `Err(FileError)`.
pub struct ImportReader<R> {
    records: RecordReader<R>,
    schema: Schema,
    dialect: Dialect,
    shape: Shape,
    lookup: FieldLookup,
    rows_read: u64,
    /// The customerId of the last valid row (lent by [`RowRef`], reused by the next row).
    current_id: Option<CustomerId>,
    /// The last valid row had `current_id` as its customerId.
    last_valid_is_current: bool,
    /// The valid row just read had the same customerId as the valid row before it.
    same_customer: bool,
    /// The changes of the last valid row (lent by [`RowRef`], cleared for the next row).
    changes: Vec<FieldChange>,
    /// Its subscription statements (consent columns).
    consents: Vec<(Channel, bool)>,
    done: bool,
}

impl<R: Read> ImportReader<R> {
    /// Reads the header: detects the dialect and the shape. Fails on an empty file, a header
    /// that is not UTF-8, has an unclosed quote, or maps to no shape.
    pub fn new(input: R, schema: &Schema) -> Result<Self, FileError> {
        let mut reader = Self {
            records: RecordReader::new(input),
            schema: schema.clone(),
            dialect: Dialect {
                separator: DEFAULT_SEPARATOR,
                line_ending: None,
                bom: false,
            },
            shape: Shape::IdsOnly,
            lookup: FieldLookup::new(schema),
            rows_read: 0,
            current_id: None,
            last_valid_is_current: false,
            same_customer: false,
            changes: Vec::new(),
            consents: Vec::new(),
            done: false,
        };
        reader.read_header()?;
        Ok(reader)
    }

    /// The detected dialect.
    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// The detected shape.
    pub fn shape(&self) -> &Shape {
        &self.shape
    }

    /// Data records read so far (valid or not), for progress.
    pub fn rows_read(&self) -> u64 {
        self.rows_read
    }

    /// Bytes taken from the input so far, for progress.
    pub fn bytes_read(&self) -> u64 {
        self.records.bytes_read()
    }

    /// Reads the next record: `Ok(None)` at the end of the file.
    pub fn next_row(&mut self) -> Result<Option<Row>, FileError> {
        Ok(match self.advance()? {
            Mapped::End => None,
            Mapped::Invalid(error) => Some(Row::Invalid(error)),
            Mapped::Valid => Some(Row::Op(RowOp {
                line: self.records.record.line,
                customer_id: self.valid_id()?.clone(),
                // Moved out, not cloned: the next row starts a new vector.
                changes: std::mem::take(&mut self.changes),
                consents: std::mem::take(&mut self.consents),
            })),
        })
    }

    /// Reads the next record without allocating a [`RowOp`]: the customerId and the changes
    /// are lent from buffers the reader reuses. The fastest way to consume an import.
    pub fn next_row_ref(&mut self) -> Result<Option<RowRef<'_>>, FileError> {
        Ok(match self.advance()? {
            Mapped::End => None,
            Mapped::Invalid(error) => Some(RowRef::Invalid(error)),
            Mapped::Valid => Some(RowRef::Op(RowOpRef {
                line: self.records.record.line,
                customer_id: self.valid_id()?,
                changes: &self.changes,
                consents: &self.consents,
            })),
        })
    }

    /// Like [`Self::next_row_ref`], but lends the changes mutably so the caller can take
    /// the values without cloning them.
    pub fn next_row_mut(&mut self) -> Result<Option<RowMut<'_>>, FileError> {
        Ok(match self.advance()? {
            Mapped::End => None,
            Mapped::Invalid(error) => Some(RowMut::Invalid(error)),
            Mapped::Valid => {
                let line = self.records.record.line;
                // A valid row always sets it; refuse rather than panic if that ever changed.
                let customer_id = self.current_id.as_ref().ok_or_else(no_valid_id)?;
                Some(RowMut::Op(RowOpMut {
                    line,
                    customer_id,
                    same_customer: self.same_customer,
                    changes: &mut self.changes,
                    consents: &self.consents,
                }))
            }
        })
    }

    /// [`Self::read_row`], fused: nothing more after the end or a file error.
    fn advance(&mut self) -> Result<Mapped, FileError> {
        if self.done {
            return Ok(Mapped::End);
        }
        let result = self.read_row();
        match result {
            Ok(Mapped::End) | Err(_) => self.done = true,
            Ok(Mapped::Valid) => {
                self.same_customer = self.last_valid_is_current;
                self.last_valid_is_current = true;
            }
            Ok(Mapped::Invalid(_)) => {}
        }
        result
    }

    /// The customerId of the valid row just read.
    fn valid_id(&self) -> Result<&CustomerId, FileError> {
        self.current_id.as_ref().ok_or_else(no_valid_id)
    }

    fn read_header(&mut self) -> Result<(), FileError> {
        let (separator, bom) = self.records.detect_dialect()?;
        self.dialect.separator = separator;
        self.dialect.bom = bom;
        if !self.records.read(None)? {
            return Err(FileError::Empty);
        }
        let line = self.records.record.line;
        if self.records.record.too_long {
            return Err(FileError::Header {
                line,
                column: 1,
                message: format!(
                    "the header is longer than {MAX_ROW_BYTES} bytes or has more than {MAX_ROW_CELLS} columns"
                ),
            });
        }
        self.dialect.line_ending = self.records.line_ending()?;
        let record = &self.records.record;
        let text = record.text(None)?;
        let cells: Vec<&str> = (0..record.cells)
            .map(|i| &text[record.cell_start(i)..record.ends[i]])
            .collect();
        self.shape = Shape::detect(&cells, &self.schema).map_err(|e| FileError::Header {
            line,
            column: e.column,
            message: e.message,
        })?;
        self.records.enable_plain_lines();
        Ok(())
    }

    /// Reads and maps the next record.
    fn read_row(&mut self) -> Result<Mapped, FileError> {
        if !self.records.read(Some(&self.shape))? {
            return Ok(Mapped::End);
        }
        self.rows_read += 1;
        let record = &self.records.record;
        let line = record.line;
        if record.too_long {
            return Ok(Mapped::Invalid(RowError {
                line,
                column: String::new(),
                value: String::new(),
                message: format!(
                    "the row is longer than {MAX_ROW_BYTES} bytes or has more than {MAX_ROW_CELLS} cells; it was skipped"
                ),
            }));
        }
        let text = record.text(Some(&self.shape))?;
        let cell = |i: usize| &text[record.cell_start(i)..record.ends[i]];
        let width = self.shape.width();
        if record.cells != width {
            let separator = char::from(self.dialect.separator.byte()).to_string();
            let row: Vec<&str> = (0..record.cells).map(cell).collect();
            return Ok(Mapped::Invalid(RowError {
                line,
                column: String::new(),
                value: excerpt(&row.join(&separator)),
                message: format!(
                    "this row has {} cell{} but the header has {width} column{}",
                    record.cells,
                    if record.cells == 1 { "" } else { "s" },
                    if width == 1 { "" } else { "s" },
                ),
            }));
        }
        // Long files repeat a customerId on consecutive rows: parse it once.
        let id_text = cell(0);
        if self
            .current_id
            .as_ref()
            .is_none_or(|id| id.as_str() != id_text)
        {
            match CustomerId::parse(id_text) {
                Ok(id) => {
                    self.current_id = Some(id);
                    self.last_valid_is_current = false;
                }
                Err(e) => {
                    return Ok(Mapped::Invalid(RowError {
                        line,
                        column: crate::shape::CUSTOMER_ID.to_owned(),
                        value: excerpt(id_text),
                        message: e.to_string(),
                    }));
                }
            }
        }
        self.changes.clear();
        self.consents.clear();
        let mapped = match &self.shape {
            Shape::IdsOnly => Ok(()),
            Shape::Long => long_change(
                cell(1),
                cell(2),
                &mut self.lookup,
                &self.schema,
                &mut self.changes,
                &mut self.consents,
            ),
            Shape::Wide(columns) => wide_changes(
                columns,
                |i| cell(i + 1),
                &mut self.changes,
                &mut self.consents,
            ),
        };
        Ok(match mapped {
            Ok(()) => Mapped::Valid,
            Err(e) => Mapped::Invalid(RowError {
                line,
                column: e.column,
                value: e.value,
                message: e.message,
            }),
        })
    }
}

/// A valid row always sets the customerId; refuse rather than panic if that ever changed.
fn no_valid_id() -> FileError {
    FileError::Io(io::Error::other(
        "internal error: a valid row without a customerId",
    ))
}

/// What reading one record gave.
enum Mapped {
    End,
    /// A valid row: its customerId is in `current_id`, its changes in `changes`.
    Valid,
    Invalid(RowError),
}

/// A row problem found while mapping cells, before the line is attached.
struct CellError {
    column: String,
    value: String,
    message: String,
}

/// Maps a long row's `fieldName` and `fieldValue` to its change (none when both are empty).
fn long_change(
    name: &str,
    value: &str,
    lookup: &mut FieldLookup,
    schema: &Schema,
    changes: &mut Vec<FieldChange>,
    consents: &mut Vec<(Channel, bool)>,
) -> Result<(), CellError> {
    if name.is_empty() {
        if value.is_empty() {
            return Ok(());
        }
        return Err(CellError {
            column: "fieldName".to_owned(),
            value: String::new(),
            message: "fieldName is empty but fieldValue is not; name the field, or leave both empty to only create the customer".to_owned(),
        });
    }
    let Some((field, field_type)) = lookup.get(name) else {
        let consent = consent_column(name, schema).map_err(|message| CellError {
            column: "fieldName".to_owned(),
            value: excerpt(name),
            message,
        })?;
        if let Some(channel) = consent {
            return match parse_consent(value) {
                Ok(Some(subscribed)) => {
                    consents.push((channel, subscribed));
                    Ok(())
                }
                Ok(None) => Err(CellError {
                    column: "fieldValue".to_owned(),
                    value: String::new(),
                    message: format!("{name}: {CONSENT_VALUES}"),
                }),
                Err(message) => Err(CellError {
                    column: "fieldValue".to_owned(),
                    value: excerpt(value),
                    message: format!("{name}: {message}"),
                }),
            };
        }
        return Err(CellError {
            column: "fieldName".to_owned(),
            value: excerpt(name),
            message: lookup.unknown_message(name, schema),
        });
    };
    match parse_text(field_type, value) {
        Ok(value) => {
            changes.push(FieldChange { field, value });
            Ok(())
        }
        Err(e) => Err(CellError {
            column: "fieldValue".to_owned(),
            value: excerpt(value),
            message: format!("{name} ({field_type}): {e}"),
        }),
    }
}

/// Maps a wide row's field cells (`cell(i)` is the cell of `columns[i]`) to one change per
/// non-empty cell; stops at the first invalid one.
fn wide_changes<'a>(
    columns: &[WideColumn],
    cell: impl Fn(usize) -> &'a str,
    changes: &mut Vec<FieldChange>,
    consents: &mut Vec<(Channel, bool)>,
) -> Result<(), CellError> {
    for (i, column) in columns.iter().enumerate() {
        let text = cell(i);
        if let Some(channel) = &column.consent {
            match parse_consent(text) {
                Ok(Some(subscribed)) => consents.push((channel.clone(), subscribed)),
                Ok(None) => {}
                Err(message) => {
                    return Err(CellError {
                        column: column.name.clone(),
                        value: excerpt(text),
                        message,
                    });
                }
            }
            continue;
        }
        match parse_text(column.field_type, text) {
            Ok(Some(value)) => changes.push(FieldChange {
                field: column.field,
                value: Some(value),
            }),
            Ok(None) => {}
            Err(e) => {
                return Err(CellError {
                    column: column.name.clone(),
                    value: excerpt(text),
                    message: e.to_string(),
                });
            }
        }
    }
    Ok(())
}

/// What a consent cell may say.
const CONSENT_VALUES: &str = "a consent cell says subscribed or unsubscribed (also yes/no, true/false, 1/0, opted_in/opted_out; empty leaves the consent as it is in a wide file)";

/// Reads a consent cell: `Some(true)` subscribed, `Some(false)` unsubscribed, `None` empty.
fn parse_consent(text: &str) -> Result<Option<bool>, String> {
    let t = text.trim();
    if t.is_empty() {
        return Ok(None);
    }
    let yes = ["subscribed", "yes", "true", "1", "opted_in"];
    let no = ["unsubscribed", "no", "false", "0", "opted_out"];
    if yes.iter().any(|y| t.eq_ignore_ascii_case(y)) {
        Ok(Some(true))
    } else if no.iter().any(|n| t.eq_ignore_ascii_case(n)) {
        Ok(Some(false))
    } else {
        Err(CONSENT_VALUES.to_owned())
    }
}

impl<R: Read> Iterator for ImportReader<R> {
    type Item = Result<Row, FileError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_row().transpose()
    }
}

impl<R: Read> std::iter::FusedIterator for ImportReader<R> {}

/// Why a computed field's name cannot take imported values.
pub(crate) fn computed_message(name: &str, computed: &unico_core::Computed) -> String {
    format!(
        "\"{}\" is a computed field ({computed}): its values come from the customers' events and cannot be imported (an export taken with computed=false imports back)",
        excerpt(name)
    )
}
