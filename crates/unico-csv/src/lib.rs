//! Unico's CSV shapes: dialect detection, streaming import with positioned errors, export.
//!
//! Pure logic over `std::io::Read` / `Write`: no network, no SQL, no async. The store and
//! the server drive it (on a blocking thread) and decide what to write.
//!
//! - [`dialect`]: BOM, separator (comma or semicolon) and line ending, from the header.
//! - [`shape`]: long, ids-only or wide, from the header, checked against the schema.
//! - `record` (private): the CSV syntax, bytes to records of cells with their start line.
//! - [`reader`]: [`ImportReader`], one [`Row`] (a [`RowOp`] or a [`RowError`]) per record.
//! - [`error`]: fatal [`FileError`]s, per-row [`RowError`]s and the bounded [`ErrorReport`].
//! - [`mod@export`]: long and wide writers with spreadsheet formula neutralisation.
//!
//! **API boundary:** values are parsed only by `unico_core::value::parse_text` and written
//! only by `Value::to_text`, so a raw export imports back to the same values.

pub mod dialect;
pub mod error;
pub mod export;
pub mod reader;
mod record;
pub mod shape;

pub use dialect::{Dialect, LineEnding, Separator};
pub use error::{ErrorReport, FileError, MAX_REPORTED_ERRORS, RowError};
pub use export::{ExportOptions, ExportShape, ExportStats, Exporter, export};
pub use reader::{ImportReader, Row, RowMut, RowOp, RowOpMut, RowOpRef, RowRef};
pub use record::{MAX_ROW_BYTES, MAX_ROW_CELLS};
pub use shape::Shape;
