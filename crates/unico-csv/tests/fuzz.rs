//! Fuzzing on stable: the import reader fed arbitrary bytes and CSV-like files built from
//! the format's own hard parts (BOMs, both separators, quotes left open or doubled, every
//! line ending, control characters, invalid UTF-8, the shapes' headers). Whatever the
//! input, the reader ends with rows and row errors or a file error, never a panic; it
//! reads the same whether the bytes arrive at once or one at a time, and the reader's
//! three ways of handing rows out agree.
//!
//! `UNICO_FUZZ_CASES=N` sets the cases per harness (default 2 000); for example
//! `UNICO_FUZZ_CASES=1000000 cargo test --release -p unico-csv --test fuzz`.
#![allow(clippy::unwrap_used)]

mod common;

use common::{OneByte, render, render_moved, schema};
use proptest::prelude::*;

fn config() -> ProptestConfig {
    let cases = std::env::var("UNICO_FUZZ_CASES")
        .ok()
        .map(|v| v.parse().expect("UNICO_FUZZ_CASES must be a number"))
        .unwrap_or(2_000);
    ProptestConfig {
        cases,
        max_shrink_iters: 10_000,
        ..ProptestConfig::default()
    }
}

const HEADERS: &[&str] = &[
    "customerId,fieldName,fieldValue",
    "customerId;fieldName;fieldValue",
    "\u{feff}customerId,fieldName,fieldValue",
    "customerId,email,age,signup_at,birthday,city",
    "customerId;age;city",
    "customerId",
    "customerId,subscription:email,subscription:sms",
    "customerId,age,age",
    "customerId,agee",
    "\"customerId\",\"city\"",
    "customerId,\"ci\"\"ty\"",
    "",
    "fieldName,customerId,fieldValue",
];

const CELLS: &[&str] = &[
    "ana",
    "bob",
    "",
    " ",
    "email",
    "age",
    "city",
    "signup_at",
    "birthday",
    "agee",
    "31",
    "-3.5",
    "1e3",
    "NaN",
    "3,5",
    "2024-02-29",
    "2023-02-29",
    "2026-11-02T10:00:00+01:00",
    "2026-11-02T10:00:00+24:00",
    "Madrid",
    "\"quoted\"",
    "\"a,b\"",
    "\"a;b\"",
    "\"multi\nline\"",
    "\"open",
    "\"\"",
    "\"x\"\"y\"",
    "x\"y",
    "\u{0}",
    "\u{1b}",
    "é",
    "👍",
    "yes",
    "unsubscribed",
    "=cmd()",
    "\u{feff}",
];

const ENDINGS: &[&str] = &["\n", "\r\n", "\r", "\n\n", ""];

/// A CSV-like file: a header, then rows of cells from the vocabulary, some bytes possibly
/// replaced by arbitrary ones.
fn csv_like() -> impl Strategy<Value = Vec<u8>> {
    (
        prop::sample::select(HEADERS),
        prop::sample::select(ENDINGS),
        prop::collection::vec(
            (
                prop::collection::vec(prop::sample::select(CELLS), 0..8),
                prop::sample::select(&[",", ";"][..]),
                prop::sample::select(ENDINGS),
            ),
            0..12,
        ),
        prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..3),
    )
        .prop_map(|(header, first_end, rows, flips)| {
            let mut text = format!("{header}{first_end}");
            for (cells, sep, end) in rows {
                text.push_str(&cells.join(sep));
                text.push_str(end);
            }
            let mut bytes = text.into_bytes();
            for (at, byte) in flips {
                if !bytes.is_empty() {
                    let i = at.index(bytes.len());
                    bytes[i] = byte;
                }
            }
            bytes
        })
}

fn check(bytes: &[u8]) {
    let schema = schema();
    let whole = render(bytes, &schema);
    assert!(!whole.is_empty());
    assert_eq!(
        render(OneByte(bytes), &schema),
        whole,
        "read one byte at a time"
    );
    assert_eq!(render_moved(bytes, &schema), whole, "rows moved out");
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn reader_never_panics_on_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        check(&bytes);
    }

    #[test]
    fn reader_never_panics_on_csv_like_files(bytes in csv_like()) {
        check(&bytes);
    }
}

/// Found by `reader_never_panics_on_csv_like_files`: a BOM at the start of the header
/// after a blank line was dropped when the whole file came in one read and kept when it
/// came byte by byte (`csv_core` drops a BOM at the start of the first bytes it is given).
/// Only a BOM at the very start of the file is skipped; anywhere else it is text.
#[test]
fn a_bom_after_a_blank_line_is_text_however_the_bytes_arrive() {
    let bytes = b"\n\xEF\xBB\xBFcustomerId\nana\n";
    let whole = render(&bytes[..], &schema());
    assert!(
        whole.starts_with("file error: line 2, column 1: the header must start with customerId; found \"\u{feff}customerId\""),
        "{whole}"
    );
    check(&bytes[..]);
    check(b"\n\xEF\xBB\xBF\n");
    // At the very start it is skipped, once.
    let at_start = render(&b"\xEF\xBB\xBFcustomerId\nana\n"[..], &schema());
    assert!(at_start.contains(", BOM, ids only"), "{at_start}");
    check(b"\xEF\xBB\xBF\xEF\xBB\xBFcustomerId\nana\n");
}
