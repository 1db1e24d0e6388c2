//! The hostile-file corpus: every file under `tests/corpus/` with the exact outcome of its
//! import (dialect and shape, then one line per record: where it starts, and its changes or
//! its error), read whole and one byte at a time. Then the cases too big to commit, made here.

mod common;

use common::{import, schema, schema_of};
use unico_core::FieldType;

fn check(name: &str, expected: &str) {
    let path = format!("{}/tests/corpus/{name}", env!("CARGO_MANIFEST_DIR"));
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    assert_eq!(import(&bytes, &schema()), expected, "{name}");
}

#[test]
fn bad_customer_id() {
    check(
        "bad_customer_id.csv",
        r#"comma separator, LF endings, long
2: invalid [customerId] "": a customerId must not be empty
3: invalid [customerId] " c2": a customerId starts or ends with white space; remove it (names and ids are kept exactly as written)
"#,
    );
}

#[test]
fn bad_datetime() {
    check(
        "bad_datetime.csv",
        r#"comma separator, LF endings, wide (1 columns)
2: invalid [signup_at] "2024": "2024" is not a valid date-time; accepted: an RFC 3339 date-time with Z or an offset (2024-03-05T14:22:10Z, 2024-03-05T15:22:10+01:00) or a date (1987-06-21)
3: invalid [signup_at] "2024-13-01T00:00:00Z": "2024-13-01T00:00:00Z" is not a valid date-time; accepted: an RFC 3339 date-time with Z or an offset (2024-03-05T14:22:10Z, 2024-03-05T15:22:10+01:00) or a date (1987-06-21)
4: "c3" [signup_at=Datetime(1709648530000)]
5: "c4" [signup_at=Datetime(551232000000)]
"#,
    );
}

#[test]
fn blank_lines_only() {
    check(
        "blank_lines_only.csv",
        r#"file error: the file is empty; expected a header line such as customerId,fieldName,fieldValue
"#,
    );
}

#[test]
fn bom() {
    check(
        "bom.csv",
        r#"comma separator, LF endings, BOM, long
2: "c1" [age=Number(42.0)]
"#,
    );
}

#[test]
fn crlf() {
    check(
        "crlf.csv",
        r#"comma separator, CRLF endings, long
2: "c1" [city=String("two\r\nlines")]
5: "c2" [age=Number(7.0)]
"#,
    );
}

#[test]
fn decimal_comma() {
    check(
        "decimal_comma.csv",
        r#"semicolon separator, LF endings, long
2: invalid [fieldValue] "3,5": age (number): "3,5" uses a decimal comma; numbers use '.' as the decimal separator (3.5)
3: "c2" [age=Number(3.5)]
"#,
    );
}

#[test]
fn decimal_comma_quoted() {
    check(
        "decimal_comma_quoted.csv",
        r#"comma separator, LF endings, wide (1 columns)
2: invalid [age] "3,5": "3,5" uses a decimal comma; numbers use '.' as the decimal separator (3.5)
"#,
    );
}

#[test]
fn duplicate_column() {
    check(
        "duplicate_column.csv",
        r#"file error: line 1, column 4: "age" appears twice (columns 2 and 4); each field may have only one column
"#,
    );
}

#[test]
fn duplicate_ids() {
    check(
        "duplicate_ids.csv",
        r#"comma separator, LF endings, long
2: "c1" [age=Number(1.0)]
3: "c2" [age=Number(2.0)]
4: "c1" [age=Number(3.0)]
"#,
    );
}

#[test]
fn empty() {
    check(
        "empty.csv",
        r#"file error: the file is empty; expected a header line such as customerId,fieldName,fieldValue
"#,
    );
}

#[test]
fn header_only() {
    check(
        "header_only.csv",
        r#"comma separator, LF endings, long
"#,
    );
}

#[test]
fn header_only_no_newline() {
    check(
        "header_only_no_newline.csv",
        r#"comma separator, none endings, wide (1 columns)
"#,
    );
}

#[test]
fn header_unterminated_quote() {
    check(
        "header_unterminated_quote.csv",
        r#"file error: line 1, column 2: a quoted cell is never closed; the opening " in the record starting on this line has no closing " before the end of the file
"#,
    );
}

#[test]
fn ids_only() {
    check(
        "ids_only.csv",
        r#"comma separator, LF endings, ids only
2: "c1" []
3: "c,2" []
5: "c3" []
"#,
    );
}

#[test]
fn invalid_utf8() {
    check(
        "invalid_utf8.csv",
        r#"comma separator, LF endings, long
file error: line 2, column 3 (fieldValue): the file is not valid UTF-8 (byte 2 of the cell, 0xe1); save or export the file as "CSV UTF-8"
"#,
    );
}

#[test]
fn invalid_utf8_multiline() {
    check(
        "invalid_utf8_multiline.csv",
        r#"comma separator, LF endings, wide (1 columns)
file error: line 3, column 2 (city): the file is not valid UTF-8 (byte 13 of the cell, 0xe1); save or export the file as "CSV UTF-8"
"#,
    );
}

#[test]
fn long_remove_and_ensure() {
    check(
        "long_remove_and_ensure.csv",
        r#"comma separator, LF endings, long
2: "c1" [age removed]
3: "c2" []
"#,
    );
}

#[test]
fn missing_offset() {
    check(
        "missing_offset.csv",
        r#"comma separator, LF endings, long
2: invalid [fieldValue] "2024-03-05T14:22:10": signup_at (datetime): "2024-03-05T14:22:10" has no time zone; add Z or an offset such as +01:00 (2024-03-05T14:22:10Z)
"#,
    );
}

#[test]
fn nul_bytes() {
    check(
        "nul_bytes.csv",
        r#"comma separator, LF endings, long
2: invalid [customerId] "c\01": a customerId contains a control character (U+0000) at character 2; control characters are not allowed
3: "c2" [city=String("Ma\0drid")]
"#,
    );
}

#[test]
fn quoted() {
    check(
        "quoted.csv",
        r#"comma separator, LF endings, long
2: "c,1" [city=String("a \"quoted\" word")]
3: "c2" [city=String("line one\nline two\nline three")]
6: "c3" [age=Number(42.0)]
7: invalid [customerId] "c\n4": a customerId contains a control character (U+000A) at character 2; control characters are not allowed
9: invalid [fieldValue] "oops": age (number): expected a number such as 42, -3.5 or 1e3, got "oops"
"#,
    );
}

#[test]
fn semicolon() {
    check(
        "semicolon.csv",
        r#"semicolon separator, LF endings, wide (2 columns)
2: "c1" [city=String("Washington; D.C."), age=Number(42.0)]
3: "c2" [city=String("Paris, France")]
"#,
    );
}

#[test]
fn trailing_separator_header() {
    check(
        "trailing_separator_header.csv",
        r#"file error: line 1, column 3: column 3 has no name; every column after customerId must be a customer field (check for a trailing separator)
"#,
    );
}

#[test]
fn unknown_column() {
    check(
        "unknown_column.csv",
        r#"file error: line 1, column 2: "agee" is not a customer field; did you mean "age"?
"#,
    );
}

#[test]
fn unknown_field_long() {
    check(
        "unknown_field_long.csv",
        r#"comma separator, LF endings, long
2: invalid [fieldName] "Age": "Age" is not a customer field; did you mean "age"?
3: invalid [fieldName] "zzzzzz": "zzzzzz" is not a customer field; define the field first
4: invalid [fieldName] "": fieldName is empty but fieldValue is not; name the field, or leave both empty to only create the customer
"#,
    );
}

#[test]
fn unterminated_quote() {
    check(
        "unterminated_quote.csv",
        r#"comma separator, LF endings, long
2: "c1" [age=Number(42.0)]
file error: line 3, column 3 (fieldValue): a quoted cell is never closed; the opening " in the record starting on this line has no closing " before the end of the file
"#,
    );
}

#[test]
fn wide_empty_cells() {
    check(
        "wide_empty_cells.csv",
        r#"comma separator, LF endings, wide (3 columns)
2: "c1" [email=String("a@x.io")]
3: "c2" [age=Number(30.0), birthday=Date(6380)]
4: "c3" []
"#,
    );
}

#[test]
fn wrong_cell_count() {
    check(
        "wrong_cell_count.csv",
        r#"comma separator, LF endings, long
2: invalid [] "c1,age": this row has 2 cells but the header has 3 columns
3: invalid [] "c2,age,42,extra": this row has 4 cells but the header has 3 columns
4: invalid [] "c3": this row has 1 cell but the header has 3 columns
5: "c4" [age=Number(44.0)]
"#,
    );
}

#[test]
fn wrong_header() {
    check(
        "wrong_header.csv",
        r#"file error: line 1, column 1: the header must start with customerId; found "id". Accepted headers: customerId,fieldName,fieldValue (long), customerId alone (ids only), or customerId followed by field names (wide)
"#,
    );
}

#[test]
fn wrong_type() {
    check(
        "wrong_type.csv",
        r#"comma separator, LF endings, long
2: invalid [fieldValue] "forty": age (number): expected a number such as 42, -3.5 or 1e3, got "forty"
3: invalid [fieldValue] "21/06/1987": birthday (date): "21/06/1987" is not a valid calendar date; accepted: YYYY-MM-DD (1987-06-21)
4: invalid [fieldValue] "NaN": age (number): NaN and infinite numbers are not accepted; expected a finite number such as 42 or -3.5
"#,
    );
}

#[test]
fn every_corpus_file_has_a_test() {
    let source = include_str!("corpus.rs");
    let dir = format!("{}/tests/corpus", env!("CARGO_MANIFEST_DIR"));
    for entry in std::fs::read_dir(&dir).expect("corpus dir") {
        let name = entry
            .expect("entry")
            .file_name()
            .into_string()
            .expect("utf-8 name");
        assert!(
            source.contains(&format!("\"{name}\"")),
            "{name} has no test"
        );
    }
}

#[test]
fn a_one_megabyte_cell_is_a_row_error_and_reading_goes_on() {
    let big = "x".repeat(1 << 20);
    let file =
        format!("customerId,fieldName,fieldValue\nc1,city,{big}\nc2,city,\"{big}\"\nc3,age,1\n");
    assert_eq!(
        import(file.as_bytes(), &schema()),
        "comma separator, LF endings, long
2: invalid [fieldValue] \"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx…\": city (string): the string is 1048576 bytes long; a string value holds at most 4096 bytes
3: invalid [fieldValue] \"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx…\": city (string): the string is 1048576 bytes long; a string value holds at most 4096 bytes
4: \"c3\" [age=Number(1.0)]
"
    );
}

#[test]
fn a_one_megabyte_customer_id_is_a_row_error() {
    let big = "c".repeat(1 << 20);
    let file = format!("customerId\n{big}\nc2\n");
    let out = import(file.as_bytes(), &schema());
    assert!(
        out.ends_with(
            "…\": a customerId is 1048576 characters long; at most 256 are allowed\n3: \"c2\" []\n"
        ),
        "{out}"
    );
}

#[test]
fn a_string_at_the_limit_is_accepted_and_one_past_it_refused() {
    let at = "é".repeat(2048);
    let past = format!("{at}x");
    let file = format!("customerId,city\nc1,{at}\nc2,{past}\n");
    let out = common::render(file.as_bytes(), &schema());
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines[1].starts_with("2: \"c1\" [city=String("),
        "{}",
        lines[1]
    );
    assert!(
        lines[2]
            .ends_with(": the string is 4097 bytes long; a string value holds at most 4096 bytes"),
        "{}",
        lines[2]
    );
}

#[test]
fn a_row_past_the_row_limit_is_skipped_with_bounded_memory() {
    let huge = "y".repeat(unico_csv::MAX_ROW_BYTES + 1);
    let file = format!("customerId,city\nc1,\"{huge}\"\nc2,Madrid\n");
    assert_eq!(
        common::render(file.as_bytes(), &schema()),
        "comma separator, LF endings, wide (1 columns)
2: invalid [] \"\": the row is longer than 16777216 bytes or has more than 100000 cells; it was skipped
3: \"c2\" [city=String(\"Madrid\")]
"
    );
    // "c1" and the cell make exactly the limit.
    let at_limit = "y".repeat(unico_csv::MAX_ROW_BYTES - 2);
    let file = format!("customerId,city\nc1,\"{at_limit}\"");
    let out = common::render(file.as_bytes(), &schema());
    assert!(
        out.contains("the string is 16777214 bytes long"),
        "{}",
        &out[..200.min(out.len())]
    );
}

#[test]
fn ten_thousand_columns_of_defined_fields() {
    let names: Vec<String> = (0..10_000).map(|i| format!("f{i}")).collect();
    let fields: Vec<(&str, FieldType)> = names
        .iter()
        .map(|n| (n.as_str(), FieldType::Number))
        .collect();
    let schema = schema_of(&fields);
    let header = format!("customerId,{}\n", names.join(","));
    let full_row: Vec<String> = (0..10_000).map(|i| i.to_string()).collect();
    let sparse_row = ",".repeat(9_999) + "7";
    let file = format!("{header}c1,{}\nc2,{sparse_row}\nc3,1\n", full_row.join(","));
    let out = common::render(file.as_bytes(), &schema);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[0],
        "comma separator, LF endings, wide (10000 columns)"
    );
    assert!(lines[1].starts_with("2: \"c1\" [f0=Number(0.0), f1=Number(1.0)"));
    assert!(lines[1].ends_with("f9999=Number(9999.0)]"));
    assert_eq!(lines[2], "3: \"c2\" [f9999=Number(7.0)]");
    assert_eq!(
        lines[3],
        "4: invalid [] \"c3,1\": this row has 2 cells but the header has 10001 columns"
    );
}

#[test]
fn ten_thousand_unknown_columns_fail_on_the_first() {
    let names: Vec<String> = (0..10_000).map(|i| format!("col{i}")).collect();
    let file = format!("customerId,{}\nc1{}\n", names.join(","), ",".repeat(10_000));
    assert_eq!(
        import(file.as_bytes(), &schema()),
        "file error: line 1, column 2: \"col0\" is not a customer field; define the field first, or remove the column\n"
    );
}

#[test]
fn a_header_past_the_cell_limit_is_refused() {
    let file = format!("customerId{}\n", ",x".repeat(unico_csv::MAX_ROW_CELLS));
    assert_eq!(
        common::render(file.as_bytes(), &schema()),
        "file error: line 1, column 1: the header is longer than 16777216 bytes or has more than 100000 columns\n"
    );
}

#[test]
fn empty_inputs() {
    let empty = "file error: the file is empty; expected a header line such as customerId,fieldName,fieldValue\n";
    for bytes in [&b""[..], b"\xEF\xBB\xBF", b"\n", b"\r\n\r\n"] {
        assert_eq!(import(bytes, &schema()), empty, "{bytes:?}");
    }
}

#[test]
fn line_numbers_count_breaks_inside_quotes_blank_lines_and_every_ending() {
    // Each record's first cell names the line it starts on.
    let lf = "customerId\n\"2\"\n\"3\n\n\"\n\n7\n\"8\r\n\"\n10";
    let crlf = lf.replace('\n', "\r\n");
    for file in [lf.to_owned(), crlf] {
        let out = import(file.as_bytes(), &schema());
        let rows: Vec<&str> = out.lines().skip(1).collect();
        assert_eq!(rows.len(), 5, "{out}");
        for row in rows {
            let (line, rest) = row.split_once(": ").expect("line: row");
            let id_starts = format!("invalid [customerId] \"{line}");
            assert!(
                rest.starts_with(&format!("\"{line}\"")) || rest.starts_with(&id_starts),
                "{row}"
            );
        }
    }
}

#[test]
fn cr_only() {
    check(
        "cr_only.csv",
        r#"comma separator, CR endings, long
2: "c1" [age=Number(1.0)]
4: "c2" [city=String("a\nb")]
6: "c3" [age=Number(3.0)]
"#,
    );
}

/// Generates a long file on the fly, never holding more than one line: row `i` is for
/// customer `c{i / 10}`, and every tenth row holds a bad number.
struct Generated {
    rows: u64,
    next: u64,
    line: Vec<u8>,
    at: usize,
}

impl std::io::Read for Generated {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.at == self.line.len() {
            self.line.clear();
            self.at = 0;
            if self.next == 0 {
                self.line
                    .extend_from_slice(b"customerId,fieldName,fieldValue\n");
            } else if self.next <= self.rows {
                let i = self.next;
                let value = if i.is_multiple_of(10) {
                    "x".to_owned()
                } else {
                    i.to_string()
                };
                self.line
                    .extend_from_slice(format!("c{},age,{value}\n", i / 10).as_bytes());
            } else {
                return Ok(0);
            }
            self.next += 1;
        }
        let n = buf.len().min(self.line.len() - self.at);
        buf[..n].copy_from_slice(&self.line[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

#[test]
fn a_streamed_file_fills_a_bounded_error_report() {
    let input = Generated {
        rows: 30_000,
        next: 0,
        line: Vec::new(),
        at: 0,
    };
    let mut reader = unico_csv::ImportReader::new(input, &schema()).expect("header");
    let mut report = unico_csv::ErrorReport::new();
    let mut valid = 0u64;
    while let Some(row) = reader.next_row_ref().expect("no file error") {
        match row {
            unico_csv::RowRef::Op(op) => {
                assert_eq!(op.customer_id.as_str(), format!("c{}", (op.line - 1) / 10));
                valid += 1;
            }
            unico_csv::RowRef::Invalid(e) => report.push(e),
        }
    }
    assert_eq!((valid, report.total()), (27_000, 3_000));
    assert_eq!(report.errors().len(), unico_csv::MAX_REPORTED_ERRORS);
    assert_eq!(report.omitted(), 2_000);
    assert_eq!(report.errors()[0].line, 11);
    assert_eq!(
        report.errors()[0].to_string(),
        "line 11, column fieldValue: age (number): expected a number such as 42, -3.5 or 1e3, got \"x\""
    );
    assert_eq!(reader.rows_read(), 30_000);
}

#[test]
fn rows_say_whether_the_previous_valid_row_had_their_customer_id() {
    let csv = "customerId,fieldName,fieldValue\nx,age,1\nx,city,a\nx,age,bad\nx,city,b\ny,age,2\n\" y\",age,3\ny,age,4\nx,age,5\n";
    let mut reader = unico_csv::ImportReader::new(csv.as_bytes(), &schema()).expect("header");
    let mut seen = Vec::new();
    while let Some(row) = reader.next_row_mut().expect("no file error") {
        match row {
            unico_csv::RowMut::Op(op) => {
                seen.push((op.customer_id.as_str().to_owned(), op.same_customer))
            }
            unico_csv::RowMut::Invalid(e) => seen.push((format!("invalid line {}", e.line), false)),
        }
    }
    let expected = [
        ("x", false),
        ("x", true),
        ("invalid line 4", false),
        ("x", true),
        ("y", false),
        ("invalid line 7", false),
        ("y", true),
        ("x", false),
    ];
    assert_eq!(
        seen,
        expected.map(|(id, same)| (id.to_owned(), same)).to_vec()
    );
}
