//! The CSV syntax layer of an import: bytes in, one record of cells out at a time, each with
//! the line it starts on. It knows nothing of customers; [`crate::reader`] maps the cells.
//!
//! Memory is bounded whatever the file: one 64 KiB input buffer plus one record (at most
//! [`MAX_ROW_BYTES`] of cell text and [`MAX_ROW_CELLS`] cells; a longer record is read
//! through, its cells discarded, and flagged `too_long`).
//!
//! # Line numbers
//! [`crate::RowOp::line`] and [`crate::RowError::line`] are the 1-based line where the record starts,
//! counting every LF in the file (also those inside quoted cells, and blank lines, which are
//! skipped) and every CR that no LF follows between records (old Mac files). This is why
//! the parser is driven through `csv_core` rather than `csv::Reader`: the latter's record
//! position is one line early after a CRLF (the LF of the previous record is consumed with
//! the next one) and ignores skipped blank lines, and it silently accepts a file that ends
//! inside a quoted cell. Here the reader skips blank lines itself, so `csv_core` always
//! starts a record on its first byte; at the end of the input it feeds the parser one LF of
//! its own, which ends the record exactly as the end of the input would, unless the parser
//! is inside a quoted cell: that is the unterminated-quote error. (Cloning the parser to
//! probe it is not an option: `csv_core` 0.1.13's `Clone` copies only part of its DFA.)
//!
//! # Fast path
//! A line with no quote and no CR except a final CRLF, wholly in the input buffer (nearly
//! every line of a real file), is split on its separators directly, one table look-up per
//! byte; anything else goes through `csv_core`. Both give the same cells and lines, which the
//! tests check by reading every input whole (fast path) and one byte at a time (never the
//! fast path). Cells are copied into one reused buffer either way.

use std::io::{self, Read};

use csv_core::ReadRecordResult;

use crate::dialect::{
    DEFAULT_SEPARATOR, LineEnding, Separator, SeparatorScan, UTF8_BOM, scan_separator,
};
use crate::error::FileError;
use crate::shape::Shape;

/// Most bytes of cell text one record may hold: the widest valid row (1 000 fields of
/// 4 096 bytes) with room to spare.
pub const MAX_ROW_BYTES: usize = 16 * 1024 * 1024;
/// Most cells one record (the header included) may have.
pub const MAX_ROW_CELLS: usize = 100_000;
/// Size of the input buffer.
const INPUT_BUFFER_BYTES: usize = 64 * 1024;

/// The cells of the record being read, unquoted into one reused buffer.
pub(crate) struct RawRecord {
    /// Cell text, back to back; only `..len` is meaningful.
    pub(crate) bytes: Vec<u8>,
    pub(crate) len: usize,
    /// End offset in `bytes` of each cell; only `..cells` is meaningful.
    pub(crate) ends: Vec<usize>,
    pub(crate) cells: usize,
    /// Bytes between one cell's end and the next one's start: 0 when `csv_core` packed the
    /// cells, 1 when the fast path copied the line with its separators.
    pub(crate) gap: usize,
    /// The line the record starts on.
    pub(crate) line: u64,
    /// The record went past [`MAX_ROW_BYTES`] or [`MAX_ROW_CELLS`]: its cells were discarded.
    pub(crate) too_long: bool,
    /// The last byte consumed for this record (its terminator, or the last byte of the file).
    pub(crate) last_byte: u8,
}

impl RawRecord {
    fn new() -> Self {
        Self {
            bytes: vec![0; 4096],
            len: 0,
            ends: vec![0; 64],
            cells: 0,
            gap: 0,
            line: 0,
            too_long: false,
            last_byte: 0,
        }
    }

    /// Where cell `index` starts in `bytes`.
    pub(crate) fn cell_start(&self, index: usize) -> usize {
        if index == 0 {
            0
        } else {
            self.ends[index - 1] + self.gap
        }
    }
}

/// Reads records from a stream; see the module docs.
pub(crate) struct RecordReader<R> {
    input: R,
    buffer: Box<[u8]>,
    /// Unread input is `buffer[pos..filled]`.
    pos: usize,
    filled: usize,
    eof: bool,
    bytes_read: u64,
    core: csv_core::Reader,
    /// Line breaks consumed outside `core` (blank lines, the LF of a CRLF, plain lines read
    /// by the fast path, lone CRs), for line numbers.
    skipped_lfs: u64,
    /// The last byte consumed was a CR: a line break of its own unless an LF follows.
    pending_cr: bool,
    /// The record last read.
    pub(crate) record: RawRecord,
    separator: u8,
    /// The bytes that stop [`Self::read_plain_line`]'s scan: the separator, `"`, CR, LF.
    plain_stop: [bool; 256],
    /// Whether the fast path is on (it is off for the header, whose BOM and quoting are
    /// left to `csv_core`).
    plain_lines: bool,
    /// `core` has been given input. Its first call gets one byte only: `csv_core` drops a
    /// UTF-8 BOM at the start of the first slice it sees, which would make a BOM that is
    /// not at the file's start (after blank lines; that one is skipped by
    /// [`Self::detect_dialect`]) vanish or stay depending on how the reads were cut.
    core_started: bool,
}

impl<R: Read> RecordReader<R> {
    pub(crate) fn new(input: R) -> Self {
        Self {
            input,
            buffer: vec![0; INPUT_BUFFER_BYTES].into_boxed_slice(),
            pos: 0,
            filled: 0,
            eof: false,
            bytes_read: 0,
            core: csv_core::Reader::new(),
            skipped_lfs: 0,
            pending_cr: false,
            record: RawRecord::new(),
            separator: DEFAULT_SEPARATOR.byte(),
            plain_stop: [false; 256],
            plain_lines: false,
            core_started: false,
        }
    }

    /// Skips a BOM and detects the separator from the start of the header (see
    /// [`crate::dialect`]); returns it and whether there was a BOM. Call once, first.
    pub(crate) fn detect_dialect(&mut self) -> io::Result<(Separator, bool)> {
        while self.filled < UTF8_BOM.len() && self.fill_more()? {}
        let bom = self.buffer[..self.filled].starts_with(UTF8_BOM);
        if bom {
            self.pos = UTF8_BOM.len();
        }
        let separator = loop {
            match scan_separator(&self.buffer[self.pos..self.filled]) {
                SeparatorScan::Found(separator) => break separator,
                SeparatorScan::SingleColumn => break DEFAULT_SEPARATOR,
                SeparatorScan::NeedMore => {
                    if !self.fill_more()? {
                        break DEFAULT_SEPARATOR;
                    }
                }
            }
        };
        self.separator = separator.byte();
        for b in [self.separator, b'"', b'\r', b'\n'] {
            self.plain_stop[usize::from(b)] = true;
        }
        self.core = csv_core::ReaderBuilder::new()
            .delimiter(self.separator)
            .build();
        self.core_started = false;
        Ok((separator, bom))
    }

    /// How the record just read ended; `None` if the input ended with it.
    pub(crate) fn line_ending(&mut self) -> io::Result<Option<LineEnding>> {
        Ok(match self.record.last_byte {
            b'\n' => Some(LineEnding::Lf),
            b'\r' => {
                if self.pos == self.filled {
                    self.refill()?;
                }
                match self.buffer[self.pos..self.filled].first() {
                    Some(b'\n') => Some(LineEnding::CrLf),
                    _ => Some(LineEnding::Cr),
                }
            }
            _ => None,
        })
    }

    /// Turns the fast path on, once the header is read.
    pub(crate) fn enable_plain_lines(&mut self) {
        self.plain_lines = true;
    }

    /// Bytes taken from the input so far.
    pub(crate) fn bytes_read(&self) -> u64 {
        self.bytes_read
    }

    /// Reads the next record's cells into `self.record`; `Ok(false)` at the end of the input.
    /// `names` names the columns in errors (`None` while reading the header).
    pub(crate) fn read(&mut self, names: Option<&Shape>) -> Result<bool, FileError> {
        // Skip blank lines and the LF of a CRLF ourselves, so that `core` starts every record
        // on its first byte and the line count here is the record's first line.
        // A CR counts as a line break when no LF follows it (old Mac files).
        loop {
            if self.pos == self.filled && !self.refill()? {
                return Ok(false);
            }
            let b = self.buffer[self.pos];
            if self.pending_cr && b != b'\n' {
                self.skipped_lfs += 1;
            }
            self.pending_cr = b == b'\r';
            match b {
                b'\n' => self.skipped_lfs += 1,
                b'\r' => {}
                _ => break,
            }
            self.pos += 1;
        }
        let record = &mut self.record;
        record.line = self.core.line() + self.skipped_lfs;
        record.len = 0;
        record.cells = 0;
        record.gap = 0;
        record.too_long = false;
        if self.plain_lines && self.read_plain_line() {
            return Ok(true);
        }
        loop {
            if self.pos == self.filled {
                self.refill()?;
            }
            let record = &mut self.record;
            // At the end of the input, finish the record with a line break of our own: it
            // ends the record exactly as the end of the input would, unless the parser is
            // inside a quoted cell, where it becomes cell text instead.
            let at_end = self.pos == self.filled;
            let mut input = if at_end {
                b"\n"
            } else {
                &self.buffer[self.pos..self.filled]
            };
            if !self.core_started {
                input = &input[..1];
                self.core_started = true;
            }
            let (result, n_in, n_out, n_ends) = self.core.read_record(
                input,
                &mut record.bytes[record.len..],
                &mut record.ends[record.cells..],
            );
            if at_end && result == ReadRecordResult::InputEmpty {
                let column = record.cells + 1;
                return Err(FileError::UnterminatedQuote {
                    line: record.line,
                    column,
                    column_name: column_name(names, column - 1),
                });
            }
            if n_in > 0 && !at_end {
                record.last_byte = input[n_in - 1];
                self.pos += n_in;
            }
            record.len += n_out;
            record.cells += n_ends;
            match result {
                ReadRecordResult::InputEmpty => {}
                ReadRecordResult::OutputFull => {
                    // One byte of room past the limit: the parser wants room even before
                    // a byte that writes nothing, so a record of exactly the limit fits.
                    if record.bytes.len() <= MAX_ROW_BYTES {
                        let grown = (record.bytes.len() * 2).min(MAX_ROW_BYTES + 1);
                        record.bytes.resize(grown, 0);
                    } else {
                        // Read the rest of the record through, keeping nothing.
                        record.too_long = true;
                        record.len = 0;
                    }
                }
                ReadRecordResult::OutputEndsFull => {
                    if record.ends.len() <= MAX_ROW_CELLS {
                        let grown = (record.ends.len() * 2).min(MAX_ROW_CELLS + 1);
                        record.ends.resize(grown, 0);
                    } else {
                        record.too_long = true;
                        record.cells = 0;
                    }
                }
                ReadRecordResult::Record => {
                    if record.len > MAX_ROW_BYTES || record.cells > MAX_ROW_CELLS {
                        record.too_long = true;
                    }
                    self.pending_cr = !at_end && record.last_byte == b'\r';
                    return Ok(true);
                }
                ReadRecordResult::End => return Ok(false),
            }
        }
    }

    /// The fast path for the common record: a whole line already in the buffer, with no
    /// quote and no CR except a final CRLF. Its cells are exactly the bytes between
    /// separators, which is what `csv_core` would give, found with one table look-up per byte
    /// instead of its state machine. Returns `false`, consuming nothing, for any other line
    /// (and for a line not wholly in the buffer yet), which `csv_core` then reads.
    fn read_plain_line(&mut self) -> bool {
        let input = &self.buffer[self.pos..self.filled];
        let separator = self.separator;
        let stops = &self.plain_stop;
        let record = &mut self.record;
        let mut cells = 0;
        let mut stop = None;
        let mut push_end = |end: usize| {
            if cells == record.ends.len() {
                record.ends.resize(record.ends.len() * 2, 0);
            }
            record.ends[cells] = end;
            cells += 1;
        };
        // Eight bytes at a time: a mask of the bytes equal to any stop byte, then its set
        // bits in order. (Measured on the benchmark file: 15-20 % faster than one table
        // look-up per byte, whose branch per byte mispredicts; lines are 30-odd bytes, too
        // short for `memchr`'s set-up to pay.)
        let words = [separator, b'"', b'\r', b'\n'].map(|b| u64::from_ne_bytes([b; 8]));
        let mut i = 0;
        'words: for chunk in input.chunks_exact(8) {
            let mut bytes = [0u8; 8];
            bytes.copy_from_slice(chunk);
            let word = u64::from_le_bytes(bytes);
            let mut hits = words.iter().fold(0, |m, w| m | zero_bytes(word ^ w));
            while hits != 0 {
                let at = i + (hits.trailing_zeros() / 8) as usize;
                if input[at] != separator {
                    stop = Some(at);
                    break 'words;
                }
                push_end(at);
                hits &= hits - 1;
            }
            i += 8;
        }
        // The last few bytes of the buffer, one table look-up each.
        if stop.is_none() {
            for (at, &b) in input.iter().enumerate().skip(i) {
                if stops[usize::from(b)] {
                    if b != separator {
                        stop = Some(at);
                        break;
                    }
                    push_end(at);
                }
            }
        }
        let Some(stop) = stop else {
            return false;
        };
        let consumed = match (input[stop], input.get(stop + 1)) {
            (b'\n', _) => stop + 1,
            (b'\r', Some(b'\n')) => stop + 2,
            _ => return false,
        };
        push_end(stop);
        record.cells = cells;
        let line = &input[..stop];
        if record.bytes.len() < line.len() {
            record.bytes.resize(line.len().next_power_of_two(), 0);
        }
        record.bytes[..line.len()].copy_from_slice(line);
        record.len = line.len();
        record.gap = 1;
        record.last_byte = input[consumed - 1];
        self.pos += consumed;
        self.skipped_lfs += 1;
        true
    }

    /// Replaces the consumed buffer with fresh input; `Ok(false)` at the end of the input.
    fn refill(&mut self) -> io::Result<bool> {
        if self.eof {
            return Ok(false);
        }
        let n = read_some(&mut self.input, &mut self.buffer)?;
        self.bytes_read += n as u64;
        self.pos = 0;
        self.filled = n;
        self.eof = n == 0;
        Ok(n > 0)
    }

    /// Appends input after the unread bytes (moved to the front), to see more of the header;
    /// `Ok(false)` when the input ended or the buffer is full.
    fn fill_more(&mut self) -> io::Result<bool> {
        if self.eof {
            return Ok(false);
        }
        self.buffer.copy_within(self.pos..self.filled, 0);
        self.filled -= self.pos;
        self.pos = 0;
        if self.filled == self.buffer.len() {
            return Ok(false);
        }
        let n = read_some(&mut self.input, &mut self.buffer[self.filled..])?;
        self.bytes_read += n as u64;
        self.filled += n;
        if n == 0 {
            self.eof = true;
        }
        Ok(n > 0)
    }
}

impl RawRecord {
    /// The record's cells as one validated string (slice it with [`Self::cell_start`] and
    /// `ends`); a fatal error names the cell holding the first byte that is not UTF-8.
    /// `shape` names the columns (`None` for the header).
    pub(crate) fn text(&self, shape: Option<&Shape>) -> Result<&str, FileError> {
        let record = self;
        let bytes = &record.bytes[..record.len];
        if let Ok(text) = std::str::from_utf8(bytes) {
            // Each cell must be valid on its own, not only the cells back to back.
            if record.ends[..record.cells]
                .iter()
                .all(|&end| text.is_char_boundary(end))
            {
                return Ok(text);
            }
        }
        for i in 0..record.cells {
            let start = record.cell_start(i);
            if let Err(e) = std::str::from_utf8(&bytes[start..record.ends[i]]) {
                let at = start + e.valid_up_to();
                let lfs_before = bytes[..at].iter().filter(|&&b| b == b'\n').count() as u64;
                return Err(FileError::InvalidUtf8 {
                    line: record.line + lfs_before,
                    column: i + 1,
                    column_name: column_name(shape, i),
                    byte_in_cell: e.valid_up_to() + 1,
                    byte: bytes[at],
                });
            }
        }
        // Not reachable: the cells back to back are invalid only if a cell is. Refuse rather
        // than panic all the same.
        Err(FileError::InvalidUtf8 {
            line: record.line,
            column: 1,
            column_name: column_name(shape, 0),
            byte_in_cell: 1,
            byte: bytes.first().copied().unwrap_or(0),
        })
    }
}

/// The high bit of each byte of the result is set exactly when that byte of `x` is zero (no
/// false positives, unlike the shorter `(x - 0x01..) & !x & 0x80..`).
#[inline(always)]
fn zero_bytes(x: u64) -> u64 {
    const LOW7: u64 = 0x7F7F_7F7F_7F7F_7F7F;
    !(((x & LOW7) + LOW7) | x | LOW7)
}

/// A column's header name for an error message; empty for the header's own cells.
fn column_name(shape: Option<&Shape>, index: usize) -> String {
    shape.map_or_else(String::new, |s| s.column_name(index).to_owned())
}

fn read_some<R: Read>(input: &mut R, buffer: &mut [u8]) -> io::Result<usize> {
    loop {
        match input.read(buffer) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            result => return result,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_bytes_marks_exactly_the_zero_bytes() {
        for bytes in [
            [0u8, 1, 0x80, 0xFF, 0, 0, 7, 0x7F],
            [1, 0, 1, 0, 1, 0, 1, 0],
            [0; 8],
            [0xFF; 8],
            [0x80, 0, 0x01, 0x00, 0x7F, 0x81, 0x00, 0x01],
        ] {
            let mask = zero_bytes(u64::from_le_bytes(bytes));
            for (i, b) in bytes.iter().enumerate() {
                assert_eq!(
                    (mask >> (8 * i + 7)) & 1 == 1,
                    *b == 0,
                    "{bytes:?} byte {i}"
                );
            }
            assert_eq!(mask & !0x8080_8080_8080_8080, 0);
        }
    }
}
