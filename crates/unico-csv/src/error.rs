//! What can go wrong in an import, with where: fatal [`FileError`]s, per-row [`RowError`]s,
//! and the [`ErrorReport`] that collects row errors for the user with a bounded memory.
//!
//! **The split.** A [`FileError`] means the file as a whole cannot be trusted (no header, a
//! header we cannot map, bytes that are not UTF-8, a quote that is never closed, a failing
//! stream): the import stops and nothing is written. A [`RowError`] concerns one record only
//! (a bad value, a bad customerId, an unknown `fieldName`, a wrong number of cells): it is
//! reported and, in `skip_invalid` mode, skipped while the other rows are written.

use std::fmt;
use std::io;

/// How many row errors a report keeps in full; the rest are only counted.
pub const MAX_REPORTED_ERRORS: usize = 1000;

/// A problem that makes the whole file unusable. Every variant says where (line, and the
/// column when there is one) and what would fix it.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// No header: zero bytes, only a BOM, or only blank lines.
    #[error("the file is empty; expected a header line such as customerId,fieldName,fieldValue")]
    Empty,
    /// The header cannot be mapped to a shape (see [`crate::shape`]).
    #[error("line {line}, column {column}: {message}")]
    Header {
        line: u64,
        /// 1-based column number in the header.
        column: usize,
        message: String,
    },
    /// Bytes that are not UTF-8. Fatal because it almost always means the whole file is in
    /// another encoding (Windows-1252, Latin-1), so every other row with an accent is broken
    /// too.
    #[error(
        "line {line}, {}: the file is not valid UTF-8 (byte {byte_in_cell} of the cell, {byte:#04x}); save or export the file as \"CSV UTF-8\"",
        describe_column(.column, .column_name)
    )]
    InvalidUtf8 {
        line: u64,
        /// 1-based column number.
        column: usize,
        /// The header's name for that column (empty in the header itself or past its end).
        column_name: String,
        /// 1-based offset of the first bad byte inside the cell (after unquoting).
        byte_in_cell: usize,
        /// The first bad byte.
        byte: u8,
    },
    /// The file ended inside a quoted cell: a `"` that opens a cell was never closed, so
    /// everything after it was swallowed into one cell.
    #[error(
        "line {line}, {}: a quoted cell is never closed; the opening \" in the record starting on this line has no closing \" before the end of the file",
        describe_column(.column, .column_name)
    )]
    UnterminatedQuote {
        /// The line where the record holding the open cell starts.
        line: u64,
        column: usize,
        column_name: String,
    },
    /// Reading the stream failed.
    #[error("reading the file failed: {0}")]
    Io(#[from] io::Error),
}

/// `column 3 (fieldValue)`, or `column 3` when the column has no name.
fn describe_column(column: &usize, name: &str) -> String {
    if name.is_empty() {
        format!("column {column}")
    } else {
        format!("column {column} ({name})")
    }
}

/// One invalid record: where it is, which cell, what the cell held, and why it was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowError {
    /// The line where the record starts (1-based, counting line breaks inside quoted cells).
    pub line: u64,
    /// The header name of the offending column; empty when the problem is the row as a whole
    /// (a wrong number of cells, a row too long).
    pub column: String,
    /// The offending cell, shortened by `unico_core::value::excerpt`.
    pub value: String,
    /// Why, in words meant for the person who wrote the file.
    pub message: String,
}

impl fmt::Display for RowError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}", self.line)?;
        if !self.column.is_empty() {
            write!(f, ", column {}", self.column)?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for RowError {}

/// Collects row errors: the first [`MAX_REPORTED_ERRORS`] in full, then only a count, so a
/// file where every one of ten million rows is wrong still makes a small report.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ErrorReport {
    errors: Vec<RowError>,
    total: u64,
}

impl ErrorReport {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records one invalid row.
    pub fn push(&mut self, error: RowError) {
        self.total += 1;
        if self.errors.len() < MAX_REPORTED_ERRORS {
            self.errors.push(error);
        }
    }

    /// The errors kept in full, in the order they were found.
    pub fn errors(&self) -> &[RowError] {
        &self.errors
    }

    /// Every invalid row seen, kept or not.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// Invalid rows counted but not kept.
    pub fn omitted(&self) -> u64 {
        self.total - self.errors.len() as u64
    }

    pub fn is_empty(&self) -> bool {
        self.total == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row_error(line: u64) -> RowError {
        RowError {
            line,
            column: "age".into(),
            value: "x".into(),
            message: "bad".into(),
        }
    }

    #[test]
    fn report_keeps_the_first_thousand_and_counts_the_rest() {
        let mut report = ErrorReport::new();
        assert!(report.is_empty());
        for line in 0..MAX_REPORTED_ERRORS as u64 {
            report.push(row_error(line));
        }
        assert_eq!(
            (report.errors().len(), report.omitted()),
            (MAX_REPORTED_ERRORS, 0)
        );
        report.push(row_error(5000));
        report.push(row_error(5001));
        assert_eq!(report.errors().len(), MAX_REPORTED_ERRORS);
        assert_eq!(report.total(), MAX_REPORTED_ERRORS as u64 + 2);
        assert_eq!(report.omitted(), 2);
        assert_eq!(report.errors().last().map(|e| e.line), Some(999));
    }

    #[test]
    fn row_errors_display_their_position() {
        assert_eq!(row_error(7).to_string(), "line 7, column age: bad");
        let whole_row = RowError {
            column: String::new(),
            ..row_error(3)
        };
        assert_eq!(whole_row.to_string(), "line 3: bad");
    }
}
