//! The dialect of an import file (separator, line ending, BOM), detected from its header.
//!
//! Rules:
//! - A UTF-8 BOM (`EF BB BF`) at the very start is skipped and remembered.
//! - **Separator**: the first `,` or `;` outside double quotes on the header line. Every shape's
//!   header starts with `customerId`, which holds neither, so that first one is the byte right
//!   after the first cell: a header such as `customerId;Last name, first` is semicolon
//!   separated. A header line with neither (`customerId` alone) is read as comma separated
//!   (it has one column either way). Numbers never use a decimal comma, so the separator
//!   never changes how a value is read.
//! - **Line ending**: LF, CRLF and a lone CR are all accepted on every line, even mixed;
//!   the dialect records the header's for information. Blank lines are skipped (but counted
//!   in line numbers).

use std::fmt;

/// The byte between cells.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Separator {
    Comma,
    Semicolon,
}

impl Separator {
    pub fn byte(self) -> u8 {
        match self {
            Separator::Comma => b',',
            Separator::Semicolon => b';',
        }
    }
}

impl fmt::Display for Separator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Separator::Comma => "comma",
            Separator::Semicolon => "semicolon",
        })
    }
}

/// How the header line ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LineEnding {
    Lf,
    CrLf,
    Cr,
}

/// What was detected about a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dialect {
    pub separator: Separator,
    /// `None` when the file is a header with no line break after it.
    pub line_ending: Option<LineEnding>,
    /// Whether a UTF-8 BOM was skipped.
    pub bom: bool,
}

/// The UTF-8 byte order mark.
pub const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

/// What [`scan_separator`] learned from the bytes it was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeparatorScan {
    /// A separator outside quotes, before the end of the header line.
    Found(Separator),
    /// The header line ended (outside quotes) without a separator: a single column.
    SingleColumn,
    /// The bytes ended before either: give more of the header, or take the default.
    NeedMore,
}

/// Looks for the separator in the first bytes of a file (BOM already skipped).
pub fn scan_separator(header_start: &[u8]) -> SeparatorScan {
    let mut in_quotes = false;
    for &b in header_start {
        match b {
            b'"' => in_quotes = !in_quotes,
            b',' if !in_quotes => return SeparatorScan::Found(Separator::Comma),
            b';' if !in_quotes => return SeparatorScan::Found(Separator::Semicolon),
            b'\n' | b'\r' if !in_quotes => return SeparatorScan::SingleColumn,
            _ => {}
        }
    }
    SeparatorScan::NeedMore
}

/// The separator when the scan found none: a single column reads the same with either.
pub const DEFAULT_SEPARATOR: Separator = Separator::Comma;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn separator_is_the_first_outside_quotes() {
        use SeparatorScan::*;
        assert_eq!(
            scan_separator(b"customerId,fieldName,fieldValue\n"),
            Found(Separator::Comma)
        );
        assert_eq!(
            scan_separator(b"customerId;age;city\r\n"),
            Found(Separator::Semicolon)
        );
        assert_eq!(
            scan_separator(b"customerId;\"a,b\""),
            Found(Separator::Semicolon)
        );
        assert_eq!(
            scan_separator(b"\"customer;Id\",x"),
            Found(Separator::Comma)
        );
        assert_eq!(scan_separator(b"customerId\nc1,x\n"), SingleColumn);
        assert_eq!(scan_separator(b"customerId\r\n"), SingleColumn);
        assert_eq!(scan_separator(b"customerId"), NeedMore);
        assert_eq!(scan_separator(b"\"customerId\n;"), NeedMore);
        assert_eq!(scan_separator(b""), NeedMore);
    }
}
