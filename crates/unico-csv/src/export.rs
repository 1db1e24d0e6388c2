//! Export: customers to a long or wide CSV file, safe to open in a spreadsheet by default.
//!
//! - **long**: header `customerId,fieldName,fieldValue`, one row per value in schema order;
//!   a customer with no values writes `customerId,,` (so it is not lost on re-import).
//! - **wide**: header `customerId` + one column per schema field in schema order; an absent
//!   value is an empty cell.
//!
//! Values are written with `Value::to_text()`, the canonical text that `parse_text` reads
//! back to the same value. Quoting is RFC 4180, only where needed; lines end with LF.
//! A value of a field missing from the schema given (deleted meanwhile) is not written.
//!
//! **Formula neutralisation** (OWASP "CSV injection"), on unless `raw`: a *text* cell (a
//! customerId, a field name, a string value) whose first character is `=`, `+`, `-`, `@`,
//! TAB (U+0009) or CR (U+000D) is written with one `'` in front, so a spreadsheet shows it
//! as text instead of running it. Numbers, dates and datetimes are never touched (`-3.5`
//! stays a number). The `'` is not removed on import: a neutralised export is for people;
//! **`raw` writes every cell unchanged and is the one that imports back unchanged.**

use std::borrow::Borrow;
use std::io::{self, Write};

use unico_core::{Customer, Schema, Value};

use crate::dialect::Separator;
use crate::shape::{CUSTOMER_ID, LONG_HEADER};

/// Which shape to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportShape {
    Long,
    Wide,
}

/// How to write an export.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExportOptions {
    pub shape: ExportShape,
    /// Write cells unchanged (no formula neutralisation), for machine-to-machine round trips.
    pub raw: bool,
    pub separator: Separator,
}

impl Default for ExportOptions {
    fn default() -> Self {
        Self {
            shape: ExportShape::Long,
            raw: false,
            separator: Separator::Comma,
        }
    }
}

/// Counts of what an export wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExportStats {
    pub customers: u64,
    /// Data rows (not counting the header).
    pub rows: u64,
}

/// Writes customers one by one; the header is written on creation.
pub struct Exporter<W: Write> {
    cells: CellWriter<W>,
    schema: Schema,
    /// Wide columns in output order.
    columns: Vec<unico_core::FieldId>,
    shape: ExportShape,
    stats: ExportStats,
}

impl<W: Write> Exporter<W> {
    pub fn new(out: W, schema: &Schema, options: ExportOptions) -> io::Result<Self> {
        let out = csv::WriterBuilder::new()
            .delimiter(options.separator.byte())
            .terminator(csv::Terminator::Any(b'\n'))
            .quote_style(csv::QuoteStyle::Necessary)
            .from_writer(out);
        let mut cells = CellWriter {
            out,
            raw: options.raw,
            scratch: String::new(),
        };
        // Wide columns follow the schema, except when exactly two fields are named like the
        // long header's columns: written in that order, the header would read as a long
        // file, so they are swapped (wide columns may come in any order).
        let mut columns: Vec<_> = schema.fields().iter().map(|f| f.id).collect();
        let names: Vec<&str> = schema.fields().iter().map(|f| f.name.as_str()).collect();
        if names == LONG_HEADER[1..] {
            columns.reverse();
        }
        match options.shape {
            ExportShape::Long => {
                for name in LONG_HEADER {
                    cells.text(name)?;
                }
            }
            ExportShape::Wide => {
                cells.text(CUSTOMER_ID)?;
                for id in &columns {
                    if let Some(def) = schema.by_id(*id) {
                        cells.text(def.name.as_str())?;
                    }
                }
            }
        }
        cells.end_row()?;
        Ok(Self {
            cells,
            schema: schema.clone(),
            columns,
            shape: options.shape,
            stats: ExportStats::default(),
        })
    }

    /// Writes one customer: its rows (long) or its row (wide).
    pub fn write(&mut self, customer: &Customer) -> io::Result<()> {
        let id = customer.customer_id.as_str();
        let cells = &mut self.cells;
        match self.shape {
            ExportShape::Long => {
                let mut rows = 0;
                for (field, value) in &customer.fields {
                    let Some(def) = self.schema.by_id(*field) else {
                        continue;
                    };
                    cells.text(id)?;
                    cells.text(def.name.as_str())?;
                    cells.value(value)?;
                    cells.end_row()?;
                    rows += 1;
                }
                if rows == 0 {
                    cells.text(id)?;
                    cells.raw("")?;
                    cells.raw("")?;
                    cells.end_row()?;
                    rows = 1;
                }
                self.stats.rows += rows;
            }
            ExportShape::Wide => {
                cells.text(id)?;
                for column in &self.columns {
                    match customer.get(*column) {
                        Some(value) => cells.value(value)?,
                        None => cells.raw("")?,
                    }
                }
                cells.end_row()?;
                self.stats.rows += 1;
            }
        }
        self.stats.customers += 1;
        Ok(())
    }

    /// Flushes and returns the counts and the writer.
    pub fn finish(mut self) -> io::Result<(ExportStats, W)> {
        self.cells.out.flush()?;
        let out = self.cells.out.into_inner().map_err(|e| e.into_error())?;
        Ok((self.stats, out))
    }
}

/// Writes cells, neutralising text cells unless `raw`.
struct CellWriter<W: Write> {
    out: csv::Writer<W>,
    raw: bool,
    /// Reused for neutralised cells.
    scratch: String,
}

impl<W: Write> CellWriter<W> {
    fn value(&mut self, value: &Value) -> io::Result<()> {
        match value {
            Value::String(text) => self.text(text),
            other => self.raw(&other.to_text()),
        }
    }

    fn text(&mut self, text: &str) -> io::Result<()> {
        if self.raw || !needs_neutralising(text) {
            return self.raw(text);
        }
        self.scratch.clear();
        self.scratch.push('\'');
        self.scratch.push_str(text);
        self.out.write_field(&self.scratch).map_err(io::Error::from)
    }

    fn raw(&mut self, text: &str) -> io::Result<()> {
        self.out.write_field(text).map_err(io::Error::from)
    }

    fn end_row(&mut self) -> io::Result<()> {
        self.out
            .write_record(None::<&[u8]>)
            .map_err(io::Error::from)
    }
}

/// Whether a text cell would be taken as a formula by a spreadsheet (see the module docs).
pub fn needs_neutralising(text: &str) -> bool {
    matches!(
        text.as_bytes().first(),
        Some(b'=' | b'+' | b'-' | b'@' | b'\t' | b'\r')
    )
}

/// Writes a whole export: header, then every customer. Returns the counts and the writer.
pub fn export<W, I>(
    out: W,
    schema: &Schema,
    customers: I,
    options: ExportOptions,
) -> io::Result<(ExportStats, W)>
where
    W: Write,
    I: IntoIterator,
    I::Item: Borrow<Customer>,
{
    let mut exporter = Exporter::new(out, schema, options)?;
    for customer in customers {
        exporter.write(customer.borrow())?;
    }
    exporter.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formula_starts_are_neutralised() {
        for text in ["=1+1", "+34 600", "-x", "@SUM(A1)", "\tx", "\rx"] {
            assert!(needs_neutralising(text), "{text:?}");
        }
        for text in ["", "a=b", "1", " =x", "'=x", "é"] {
            assert!(!needs_neutralising(text), "{text:?}");
        }
    }
}
