//! CSV imports: the three shapes, dialects, atomic and skip_invalid modes, row and file
//! errors with their positions, the error cap, the HTTP contract and the history.
//!
//! Every failure case re-reads the application through the API to prove that nothing was
//! written.

use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::support::*;

/// email (string), age (number), signup_at (datetime), birthday (date), city (string).
async fn app_with_fields(api: &Api) -> App {
    app_named(api, "Shop").await
}

/// An application named `name` with the fields of [`app_with_fields`].
async fn app_named(api: &Api, name: &str) -> App {
    let a = api.create_app(name).await;
    for (name, ty) in [
        ("email", "string"),
        ("age", "number"),
        ("signup_at", "datetime"),
        ("birthday", "date"),
        ("city", "string"),
    ] {
        api.create_field(&a, name, ty).await;
    }
    a
}

/// A long file: the header and then `rows` joined with LF.
fn long(rows: &[&str]) -> String {
    let mut out = String::from("customerId,fieldName,fieldValue\n");
    for row in rows {
        out.push_str(row);
        out.push('\n');
    }
    out
}

/// Asserts the state and the counters of a final report: rows_read, rows_written, created,
/// updated, values_written, rows_rejected.
#[track_caller]
fn assert_counts(report: &Value, state: &str, counts: [u64; 6]) {
    let [
        rows_read,
        rows_written,
        created,
        updated,
        values_written,
        rows_rejected,
    ] = counts;
    let got = (
        report["state"].as_str().unwrap(),
        report["rows_read"].as_u64().unwrap(),
        report["rows_written"].as_u64().unwrap(),
        report["created"].as_u64().unwrap(),
        report["updated"].as_u64().unwrap(),
        report["values_written"].as_u64().unwrap(),
        report["rows_rejected"].as_u64().unwrap(),
    );
    assert_eq!(
        got,
        (
            state,
            rows_read,
            rows_written,
            created,
            updated,
            values_written,
            rows_rejected
        ),
        "(state, rows_read, rows_written, created, updated, values_written, rows_rejected) of {report}"
    );
}

/// The errors of a report as (line, column, value, message).
fn errors(report: &Value) -> Vec<(u64, String, String, String)> {
    report["errors"]
        .as_array()
        .unwrap_or_else(|| panic!("no errors array in {report}"))
        .iter()
        .map(|e| {
            assert_eq!(e.as_object().unwrap().len(), 4, "{e}");
            (
                e["line"].as_u64().unwrap(),
                e["column"].as_str().unwrap().to_owned(),
                e["value"].as_str().unwrap().to_owned(),
                e["message"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// Asserts one row error: exact line, column and value, and a message holding `needles`.
#[track_caller]
fn assert_row_error(
    error: &(u64, String, String, String),
    line: u64,
    column: &str,
    value: &str,
    needles: &[&str],
) {
    assert_eq!(
        (error.0, error.1.as_str(), error.2.as_str()),
        (line, column, value),
        "{error:?}"
    );
    for needle in needles {
        assert!(
            error.3.contains(needle),
            "message {:?} of line {line} does not mention {needle:?}",
            error.3
        );
    }
}

#[track_caller]
fn assert_message(report: &Value, needles: &[&str]) {
    let message = report["message"]
        .as_str()
        .unwrap_or_else(|| panic!("no message in {report}"));
    for needle in needles {
        assert!(
            message.contains(needle),
            "message {message:?} does not mention {needle:?}"
        );
    }
}

/// Every customer of `app` as (customerId, fields), in customerId order.
async fn snapshot(api: &Api, app: &App) -> Vec<(String, Value)> {
    api.all_customers(app)
        .await
        .iter()
        .map(|c| {
            (
                c["customerId"].as_str().unwrap().to_owned(),
                c["fields"].clone(),
            )
        })
        .collect()
}

/// The value counts of every field of `app`, in schema order.
async fn value_counts(api: &Api, app: &App) -> Vec<(String, u64)> {
    api.fields(app)
        .await
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["name"].as_str().unwrap().to_owned(),
                f["value_count"].as_u64().unwrap(),
            )
        })
        .collect()
}

/// The application as stored: customers with their fields, and the fields' value counts.
async fn state_of(api: &Api, app: &App) -> (Vec<(String, Value)>, Vec<(String, u64)>) {
    (snapshot(api, app).await, value_counts(api, app).await)
}

// ---------------------------------------------------------------------------------------
// Shapes and values
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn a_long_file_writes_typed_values_and_reports_created_and_updated() {
    let api = Api::new();
    let a = app_with_fields(&api).await;
    api.create_customer(
        &a,
        "old",
        json!({"age": 1, "city": "Vigo", "email": "o@x.io"}),
    )
    .await;
    let csv = long(&[
        "ana,age,31",
        "ana,signup_at,2024-03-05T15:22:10+01:00",
        "ana,birthday,1994-11-28",
        "ana,city,Madrid",
        "ana,email,ana@example.com",
        "old,age,-3.5",
        "old,city,",
        "bob,,",
        "eve,age,1e3",
        "eve,signup_at,1987-06-21",
    ]);
    let report = api.import_csv(&a, "", csv).await;
    assert_counts(&report, "succeeded", [10, 10, 3, 1, 9, 0]);
    assert_eq!(report["mode"], "atomic");
    assert_eq!(report["errors"], json!([]));
    assert_eq!(report["errors_omitted"], 0);
    assert!(report.get("message").is_none(), "{report}");
    assert!(report["finished_at"].is_string(), "{report}");
    assert!(report["created_at"].is_string(), "{report}");
    assert!(report["duration_ms"].as_i64().unwrap() >= 0, "{report}");

    let ana = api.get_customer(&a, "ana").await.unwrap();
    assert_eq!(
        ana["fields"],
        json!({
            "age": 31,
            "signup_at": "2024-03-05T14:22:10.000Z",
            "birthday": "1994-11-28",
            "city": "Madrid",
            "email": "ana@example.com",
        })
    );
    assert_eq!(serde_json::to_string(&ana["fields"]["age"]).unwrap(), "31");
    // The empty fieldValue removed city; the other values of "old" are untouched.
    assert_eq!(
        api.get_customer(&a, "old").await.unwrap()["fields"],
        json!({"age": -3.5, "email": "o@x.io"})
    );
    // An empty fieldName and fieldValue only made sure "bob" exists.
    assert_eq!(
        api.get_customer(&a, "bob").await.unwrap()["fields"],
        json!({})
    );
    // A date alone in a datetime field is midnight UTC; 1e3 is a number.
    assert_eq!(
        api.get_customer(&a, "eve").await.unwrap()["fields"],
        json!({"age": 1000, "signup_at": "1987-06-21T00:00:00.000Z"})
    );
    assert_eq!(api.customer_ids(&a).await, ["ana", "bob", "eve", "old"]);
    assert_eq!(
        value_counts(&api, &a).await,
        [
            ("email".to_owned(), 2),
            ("age".to_owned(), 3),
            ("signup_at".to_owned(), 2),
            ("birthday".to_owned(), 1),
            ("city".to_owned(), 1),
        ]
    );
}

#[tokio::test]
async fn an_empty_field_value_removes_and_an_empty_name_and_value_only_ensures() {
    let api = Api::new();
    let a = app_with_fields(&api).await;
    api.create_customer(&a, "c1", json!({"age": 5, "city": "Vigo"}))
        .await;
    let report = api
        .import_csv(&a, "", long(&["c1,age,", "c1,,", "c9,,"]))
        .await;
    assert_counts(&report, "succeeded", [3, 3, 1, 1, 1, 0]);
    assert_eq!(
        api.get_customer(&a, "c1").await.unwrap()["fields"],
        json!({"city": "Vigo"})
    );
    assert_eq!(
        api.get_customer(&a, "c9").await.unwrap()["fields"],
        json!({})
    );
    assert_eq!(api.value_count(&a, "age").await, 0);
    assert_eq!(api.value_count(&a, "city").await, 1);
}

#[tokio::test]
async fn a_wide_file_sets_its_cells_and_an_empty_cell_leaves_the_field_untouched() {
    let api = Api::new();
    let a = app_with_fields(&api).await;
    api.create_customer(
        &a,
        "old",
        json!({"age": 1, "city": "Vigo", "email": "o@x.io"}),
    )
    .await;
    // Columns in an order other than the schema's.
    let csv = "customerId,city,age,email,birthday\n\
               old,,40,,\n\
               new,Lugo,,n@x.io,2000-02-29\n\
               none,,,,\n";
    let report = api.import_csv(&a, "", csv).await;
    assert_counts(&report, "succeeded", [3, 3, 2, 1, 4, 0]);
    assert_eq!(
        api.get_customer(&a, "old").await.unwrap()["fields"],
        json!({"age": 40, "city": "Vigo", "email": "o@x.io"})
    );
    assert_eq!(
        api.get_customer(&a, "new").await.unwrap()["fields"],
        json!({"city": "Lugo", "email": "n@x.io", "birthday": "2000-02-29"})
    );
    assert_eq!(
        api.get_customer(&a, "none").await.unwrap()["fields"],
        json!({})
    );
}

#[tokio::test]
async fn an_ids_only_file_creates_customers_and_leaves_existing_ones_untouched() {
    let api = Api::new();
    let a = app_with_fields(&api).await;
    let old = api.create_customer(&a, "old", json!({"age": 7})).await;
    let report = api
        .import_csv(&a, "", "customerId\nc1\nold\n\"c,2\"\n")
        .await;
    assert_counts(&report, "succeeded", [3, 3, 2, 1, 0, 0]);
    assert_eq!(api.customer_ids(&a).await, ["c,2", "c1", "old"]);
    let after = api.get_customer(&a, "old").await.unwrap();
    assert_eq!(after["fields"], json!({"age": 7}));
    assert_eq!(after["id"], old["id"]);
    assert_eq!(after["created_at"], old["created_at"]);
    assert_eq!(
        api.get_customer(&a, "c,2").await.unwrap()["fields"],
        json!({})
    );
}

#[tokio::test]
async fn a_customer_repeated_in_one_file_takes_its_last_row() {
    let api = Api::new();
    let a = app_with_fields(&api).await;
    let report = api
        .import_csv(
            &a,
            "",
            long(&[
                "c1,age,1",
                "c1,city,A",
                "c2,age,2",
                "c1,age,3",
                "c2,city,X",
                "c1,city,B",
                "c1,city,C",
            ]),
        )
        .await;
    assert_eq!(report["state"], "succeeded", "{report}");
    assert_eq!(
        api.get_customer(&a, "c1").await.unwrap()["fields"],
        json!({"age": 3, "city": "C"})
    );
    assert_eq!(
        api.get_customer(&a, "c2").await.unwrap()["fields"],
        json!({"age": 2, "city": "X"})
    );
    // Two customers were created; none existed before, so none was "updated".
    assert_counts(&report, "succeeded", [7, 7, 2, 0, 7, 0]);

    // The same in a wide file, with an existing customer.
    let report = api
        .import_csv(
            &a,
            "",
            "customerId,age,city\nc1,10,\nc3,1,Z\nc1,,Q\nc1,11,\n",
        )
        .await;
    assert_eq!(
        api.get_customer(&a, "c1").await.unwrap()["fields"],
        json!({"age": 11, "city": "Q"})
    );
    assert_eq!(
        api.get_customer(&a, "c3").await.unwrap()["fields"],
        json!({"age": 1, "city": "Z"})
    );
    assert_counts(&report, "succeeded", [4, 4, 1, 1, 5, 0]);
}

// ---------------------------------------------------------------------------------------
// Dialects
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn semicolons_a_bom_crlf_and_quoted_separators_are_read() {
    let api = Api::new();
    let a = app_with_fields(&api).await;
    let csv = "\u{FEFF}customerId;city;age\r\n\
               c1;\"Washington; D.C.\";42\r\n\
               \"c,2\";Paris, France;\r\n\
               c3;;-0.5\r\n";
    let report = api.import_csv(&a, "", csv).await;
    assert_counts(&report, "succeeded", [3, 3, 3, 0, 4, 0]);
    assert_eq!(
        api.get_customer(&a, "c1").await.unwrap()["fields"],
        json!({"city": "Washington; D.C.", "age": 42})
    );
    assert_eq!(
        api.get_customer(&a, "c,2").await.unwrap()["fields"],
        json!({"city": "Paris, France"})
    );
    assert_eq!(
        api.get_customer(&a, "c3").await.unwrap()["fields"],
        json!({"age": -0.5})
    );
    // The BOM is not part of the first column's name, nor of any customerId.
    assert_eq!(api.customer_ids(&a).await, ["c,2", "c1", "c3"]);
}

#[tokio::test]
async fn quoted_cells_keep_quotes_and_line_breaks_and_later_lines_are_counted() {
    let api = Api::new();
    let a = app_with_fields(&api).await;
    let csv = long(&[
        "\"c,1\",city,\"a \"\"quoted\"\" word\"",
        "c2,city,\"line one\nline two\nline three\"",
        "c3,age,42",
        "c4,age,oops",
        "c5,email,\"x;y,z\"",
    ]);
    let report = api.import_csv(&a, "?mode=skip_invalid", csv).await;
    assert_counts(&report, "succeeded", [5, 4, 4, 0, 4, 1]);
    assert_eq!(report["mode"], "skip_invalid");
    let errs = errors(&report);
    assert_eq!(errs.len(), 1, "{report}");
    // Header 1, "c,1" 2, c2 3-5, c3 6: c4 is on line 7.
    assert_row_error(
        &errs[0],
        7,
        "fieldValue",
        "oops",
        &["age (number)", "expected a number", "\"oops\""],
    );
    assert_eq!(
        api.get_customer(&a, "c,1").await.unwrap()["fields"],
        json!({"city": "a \"quoted\" word"})
    );
    assert_eq!(
        api.get_customer(&a, "c2").await.unwrap()["fields"],
        json!({"city": "line one\nline two\nline three"})
    );
    assert_eq!(
        api.get_customer(&a, "c5").await.unwrap()["fields"],
        json!({"email": "x;y,z"})
    );
    assert!(api.get_customer(&a, "c4").await.is_none());
}

#[tokio::test]
async fn crlf_inside_a_quoted_cell_is_kept_and_counted_as_a_line() {
    let api = Api::new();
    let a = app_with_fields(&api).await;
    let csv = "customerId,fieldName,fieldValue\r\n\
               c1,city,\"two\r\nlines\"\r\n\
               c2,age,x\r\n\
               c3,age,3\r\n";
    let report = api.import_csv(&a, "?mode=skip_invalid", csv).await;
    assert_counts(&report, "succeeded", [3, 2, 2, 0, 2, 1]);
    let errs = errors(&report);
    assert_eq!(errs.len(), 1, "{report}");
    assert_row_error(&errs[0], 4, "fieldValue", "x", &["expected a number"]);
    assert_eq!(
        api.get_customer(&a, "c1").await.unwrap()["fields"],
        json!({"city": "two\r\nlines"})
    );
    assert_eq!(
        api.get_customer(&a, "c3").await.unwrap()["fields"],
        json!({"age": 3})
    );
}

#[tokio::test]
async fn a_header_only_file_succeeds_and_writes_nothing() {
    let api = Api::new();
    let a = app_with_fields(&api).await;
    api.create_customer(&a, "old", json!({"age": 1})).await;
    let before = state_of(&api, &a).await;
    for csv in [
        "customerId,fieldName,fieldValue\n",
        "customerId,age",
        "customerId\r\n",
    ] {
        let report = api.import_csv(&a, "", csv).await;
        assert_counts(&report, "succeeded", [0, 0, 0, 0, 0, 0]);
        assert_eq!(report["errors"], json!([]), "{csv:?}");
    }
    assert_eq!(state_of(&api, &a).await, before);
}

// ---------------------------------------------------------------------------------------
// Atomic and skip_invalid
// ---------------------------------------------------------------------------------------

fn one_bad_row() -> String {
    long(&[
        "new1,age,5",
        "old,age,99",
        "old,city,",
        "bad,age,forty",
        "new2,city,X",
    ])
}

#[tokio::test]
async fn an_atomic_import_with_one_bad_row_writes_nothing() {
    let api = Api::new();
    let a = app_with_fields(&api).await;
    let old = api
        .create_customer(&a, "old", json!({"age": 1, "city": "Vigo"}))
        .await;
    let before = state_of(&api, &a).await;
    for query in ["", "?mode=atomic"] {
        let report = api.import_csv(&a, query, one_bad_row()).await;
        assert_counts(&report, "failed", [5, 0, 0, 0, 0, 1]);
        assert_eq!(report["mode"], "atomic");
        assert_message(
            &report,
            &["1 invalid row", "nothing was written", "skip_invalid"],
        );
        let errs = errors(&report);
        assert_eq!(errs.len(), 1, "{report}");
        assert_row_error(
            &errs[0],
            5,
            "fieldValue",
            "forty",
            &["age (number)", "expected a number", "\"forty\""],
        );
        assert_eq!(report["errors_omitted"], 0);
        assert!(report["finished_at"].is_string(), "{report}");

        // Nothing: no new customer, the existing one untouched (even its updated_at).
        assert_eq!(state_of(&api, &a).await, before);
        assert!(api.get_customer(&a, "new1").await.is_none());
        assert!(api.get_customer(&a, "new2").await.is_none());
        assert_eq!(api.get_customer(&a, "old").await.unwrap(), old);
    }
}

#[tokio::test]
async fn skip_invalid_writes_the_valid_rows_and_reports_the_invalid_ones() {
    let api = Api::new();
    let a = app_with_fields(&api).await;
    api.create_customer(&a, "old", json!({"age": 1, "city": "Vigo"}))
        .await;
    let report = api
        .import_csv(&a, "?mode=skip_invalid", one_bad_row())
        .await;
    assert_counts(&report, "succeeded", [5, 4, 2, 1, 4, 1]);
    assert_eq!(report["mode"], "skip_invalid");
    let errs = errors(&report);
    assert_eq!(errs.len(), 1, "{report}");
    assert_row_error(&errs[0], 5, "fieldValue", "forty", &["expected a number"]);
    assert_eq!(api.customer_ids(&a).await, ["new1", "new2", "old"]);
    assert_eq!(
        api.get_customer(&a, "old").await.unwrap()["fields"],
        json!({"age": 99})
    );
    assert_eq!(
        api.get_customer(&a, "new2").await.unwrap()["fields"],
        json!({"city": "X"})
    );
    assert!(api.get_customer(&a, "bad").await.is_none());
}

/// A file with one row per kind of row error, and one valid row ("ok") at line 15.
fn every_row_error() -> String {
    let past = "é".repeat(2048) + "x"; // 4097 bytes
    let at = "é".repeat(2048); // 4096 bytes
    long(&[
        "c1,Age,5",                          // 2
        "c1,zzzzzz,5",                       // 3
        "c1,age,forty",                      // 4
        "c1,age,\"3,5\"",                    // 5
        "c1,signup_at,2024",                 // 6
        "c1,signup_at,2024-03-05T14:22:10",  // 7
        &format!("c1,city,{past}"),          // 8
        "\"c\u{0}x\",age,1",                 // 9
        "c1,age",                            // 10
        "c2,age,42,extra",                   // 11
        "c1,birthday,21/06/1987",            // 12
        "c1,,5",                             // 13
        "c1,age,NaN",                        // 14
        &format!("ok,city,{at}"),            // 15
        " c3,age,1",                         // 16
        "c1,signup_at,2024-02-30T00:00:00Z", // 17
    ])
}

#[track_caller]
fn assert_every_row_error(report: &Value) {
    let errs = errors(report);
    assert_eq!(errs.len(), 15, "{report}");
    assert_eq!(report["errors_omitted"], 0);
    assert_row_error(
        &errs[0],
        2,
        "fieldName",
        "Age",
        &["\"Age\" is not a customer field; did you mean \"age\"?"],
    );
    assert_row_error(
        &errs[1],
        3,
        "fieldName",
        "zzzzzz",
        &[
            "\"zzzzzz\" is not a customer field",
            "define the field first",
        ],
    );
    assert_row_error(
        &errs[2],
        4,
        "fieldValue",
        "forty",
        &["age (number)", "expected a number"],
    );
    assert_row_error(
        &errs[3],
        5,
        "fieldValue",
        "3,5",
        &["age (number)", "decimal comma", "'.'", "3.5"],
    );
    assert_row_error(
        &errs[4],
        6,
        "fieldValue",
        "2024",
        &[
            "signup_at (datetime)",
            "not a valid date-time",
            "accepted",
            "Z or an offset",
        ],
    );
    assert_row_error(
        &errs[5],
        7,
        "fieldValue",
        "2024-03-05T14:22:10",
        &["signup_at (datetime)", "no time zone", "add Z or an offset"],
    );
    let past_excerpt = format!("{}…", "é".repeat(64));
    assert_row_error(
        &errs[6],
        8,
        "fieldValue",
        &past_excerpt,
        &["city (string)", "4097 bytes", "at most 4096 bytes"],
    );
    assert_row_error(
        &errs[7],
        9,
        "customerId",
        "c\u{0}x",
        &["control character", "U+0000"],
    );
    assert_row_error(
        &errs[8],
        10,
        "",
        "c1,age",
        &["this row has 2 cells but the header has 3 columns"],
    );
    assert_row_error(
        &errs[9],
        11,
        "",
        "c2,age,42,extra",
        &["this row has 4 cells but the header has 3 columns"],
    );
    assert_row_error(
        &errs[10],
        12,
        "fieldValue",
        "21/06/1987",
        &["birthday (date)", "not a valid calendar date", "YYYY-MM-DD"],
    );
    assert_row_error(
        &errs[11],
        13,
        "fieldName",
        "",
        &["fieldName is empty but fieldValue is not"],
    );
    assert_row_error(
        &errs[12],
        14,
        "fieldValue",
        "NaN",
        &["age (number)", "finite"],
    );
    assert_row_error(&errs[13], 16, "customerId", " c3", &["white space"]);
    assert_row_error(
        &errs[14],
        17,
        "fieldValue",
        "2024-02-30T00:00:00Z",
        &["signup_at (datetime)", "not a valid date-time"],
    );
}

#[tokio::test]
async fn every_kind_of_row_error_is_reported_with_its_position_in_skip_invalid() {
    let api = Api::new();
    let a = app_with_fields(&api).await;
    let report = api
        .import_csv(&a, "?mode=skip_invalid", every_row_error())
        .await;
    assert_counts(&report, "succeeded", [16, 1, 1, 0, 1, 15]);
    assert_every_row_error(&report);
    assert_eq!(api.customer_ids(&a).await, ["ok"]);
    let ok = api.get_customer(&a, "ok").await.unwrap();
    assert_eq!(ok["fields"]["city"].as_str().unwrap().len(), 4096);
    assert_eq!(ok["fields"]["city"], json!("é".repeat(2048)));
}

#[tokio::test]
async fn every_kind_of_row_error_is_reported_and_nothing_written_when_atomic() {
    let api = Api::new();
    let a = app_with_fields(&api).await;
    api.create_customer(&a, "c1", json!({"age": 1})).await;
    let before = state_of(&api, &a).await;
    let report = api.import_csv(&a, "", every_row_error()).await;
    assert_counts(&report, "failed", [16, 0, 0, 0, 0, 15]);
    assert_message(&report, &["15 invalid rows", "nothing was written"]);
    assert_every_row_error(&report);
    assert_eq!(state_of(&api, &a).await, before);
    assert!(api.get_customer(&a, "ok").await.is_none());
}

#[tokio::test]
async fn wide_row_errors_name_the_field_column() {
    let api = Api::new();
    let a = app_with_fields(&api).await;
    let csv = "customerId,age,signup_at,city\n\
               w1,x,,A\n\
               w2,1,2024-03-05T14:22:10,B\n\
               w3,\"1,5\",,C\n\
               w4,2,,\n\
               w5,3\n";
    let report = api.import_csv(&a, "?mode=skip_invalid", csv).await;
    assert_counts(&report, "succeeded", [5, 1, 1, 0, 1, 4]);
    let errs = errors(&report);
    assert_eq!(errs.len(), 4, "{report}");
    assert_row_error(&errs[0], 2, "age", "x", &["expected a number"]);
    assert_row_error(
        &errs[1],
        3,
        "signup_at",
        "2024-03-05T14:22:10",
        &["no time zone"],
    );
    assert_row_error(&errs[2], 4, "age", "1,5", &["decimal comma"]);
    assert_row_error(
        &errs[3],
        6,
        "",
        "w5,3",
        &["this row has 2 cells but the header has 4 columns"],
    );
    // A row is all or nothing: w1's valid city was not written either.
    assert_eq!(api.customer_ids(&a).await, ["w4"]);
    assert_eq!(
        api.get_customer(&a, "w4").await.unwrap()["fields"],
        json!({"age": 2})
    );
}

#[tokio::test]
async fn past_a_thousand_bad_rows_the_report_keeps_a_thousand_and_counts_the_rest() {
    let api = Api::new();
    let a = app_with_fields(&api).await;
    let mut rows: Vec<String> = (0..1500).map(|i| format!("c{i},age,bad{i}")).collect();
    rows.push("good,age,1".to_owned());
    let refs: Vec<&str> = rows.iter().map(String::as_str).collect();
    let csv = long(&refs);

    let report = api.import_csv(&a, "", csv.clone()).await;
    assert_counts(&report, "failed", [1501, 0, 0, 0, 0, 1500]);
    assert_message(&report, &["1500 invalid rows", "nothing was written"]);
    let errs = errors(&report);
    assert_eq!(errs.len(), 1000);
    assert_eq!(report["errors_omitted"], 500);
    for (i, e) in errs.iter().enumerate() {
        assert_row_error(e, i as u64 + 2, "fieldValue", &format!("bad{i}"), &["age"]);
    }
    assert_eq!(api.customer_ids(&a).await, Vec::<String>::new());

    let report = api.import_csv(&a, "?mode=skip_invalid", csv).await;
    assert_counts(&report, "succeeded", [1501, 1, 1, 0, 1, 1500]);
    assert_eq!(errors(&report).len(), 1000);
    assert_eq!(report["errors_omitted"], 500);
    assert_eq!(api.customer_ids(&a).await, ["good"]);
}

// ---------------------------------------------------------------------------------------
// Broken files
// ---------------------------------------------------------------------------------------

/// Imports `csv` in both modes and checks that it failed as a whole with a message holding
/// `needles` and "nothing was written", no row errors, and that nothing changed.
async fn assert_file_fails(csv: &[u8], needles: &[&str]) {
    let api = Api::new();
    let a = app_with_fields(&api).await;
    api.create_customer(&a, "old", json!({"age": 1, "city": "Vigo"}))
        .await;
    let before = state_of(&api, &a).await;
    for query in ["", "?mode=skip_invalid"] {
        let report = api.import_csv(&a, query, csv.to_vec()).await;
        assert_eq!(report["state"], "failed", "{query}: {report}");
        assert_message(&report, needles);
        assert_message(&report, &["nothing was written"]);
        assert_eq!(report["rows_written"], 0, "{report}");
        assert_eq!(report["created"], 0, "{report}");
        assert_eq!(report["updated"], 0, "{report}");
        assert_eq!(report["values_written"], 0, "{report}");
        assert_eq!(report["errors"], json!([]), "{report}");
        assert_eq!(state_of(&api, &a).await, before, "{query}: {report}");
    }
}

#[tokio::test]
async fn an_unterminated_quote_fails_the_file_with_its_position() {
    assert_file_fails(
        long(&[
            "c1,age,42",
            "old,age,2",
            "c2,city,\"never closed",
            "c3,age,1",
        ])
        .as_bytes(),
        &[
            "line 4, column 3 (fieldValue)",
            "a quoted cell is never closed",
        ],
    )
    .await;
}

#[tokio::test]
async fn invalid_utf8_fails_the_file_with_its_position() {
    let mut csv = long(&["c1,age,42", "old,age,2"]).into_bytes();
    csv.extend_from_slice(b"c2,city,\"a\nM\xe1laga\"\nc3,age,1\n");
    assert_file_fails(
        &csv,
        &[
            "line 5, column 3 (fieldValue)",
            "not valid UTF-8",
            "byte 4 of the cell, 0xe1",
            "CSV UTF-8",
        ],
    )
    .await;
}

#[tokio::test]
async fn an_empty_body_fails() {
    assert_file_fails(b"", &["the file is empty", "expected a header line"]).await;
    assert_file_fails(b"\xEF\xBB\xBF\n\n", &["the file is empty"]).await;
}

#[tokio::test]
async fn a_wrong_header_fails_with_its_column() {
    assert_file_fails(
        b"id,fieldName,fieldValue\nold,age,5\n",
        &[
            "line 1, column 1",
            "the header must start with customerId",
            "\"id\"",
        ],
    )
    .await;
    assert_file_fails(
        b"customerid,age\nold,5\n",
        &["line 1, column 1", "exactly customerId"],
    )
    .await;
    assert_file_fails(
        b"customerId,fieldname,fieldValue\nold,age,5\n",
        &["line 1, column 2", "customerId,fieldName,fieldValue"],
    )
    .await;
    assert_file_fails(
        b"customerId,age,\nold,5,\n",
        &["line 1, column 3", "has no name", "trailing separator"],
    )
    .await;
    assert_file_fails(
        b"customerId,age,city,age\nold,5,x,6\n",
        &[
            "line 1, column 4",
            "\"age\" appears twice (columns 2 and 4)",
        ],
    )
    .await;
}

#[tokio::test]
async fn an_unknown_wide_column_fails_with_did_you_mean() {
    assert_file_fails(
        b"customerId,city,agee\nold,Lugo,5\n",
        &[
            "line 1, column 3",
            "\"agee\" is not a customer field; did you mean \"age\"?",
        ],
    )
    .await;
}

// ---------------------------------------------------------------------------------------
// The HTTP contract
// ---------------------------------------------------------------------------------------

async fn imports_of(api: &Api, app: &App) -> Vec<Value> {
    let (status, body) = api
        .send("GET", &app.path("/imports"), Some(&app.key), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["imports"].as_array().unwrap().clone()
}

#[tokio::test]
async fn refused_uploads_are_400_and_record_nothing() {
    let api = Api::new();
    let a = app_with_fields(&api).await;
    let csv = long(&["c1,age,1"]);
    let path = a.path("/imports");
    let (status, body) = api
        .send_raw(
            "POST",
            &path,
            Some(&a.key),
            Some("application/json"),
            csv.clone(),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_error(
        &body,
        "invalid_content_type",
        &["text/csv", "application/json"],
    );
    let (status, body) = api
        .send_raw("POST", &path, Some(&a.key), None, csv.clone())
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_error(&body, "invalid_content_type", &["text/csv"]);

    let (status, body) = api.post_csv(&a, "?mode=all_or_nothing", csv.clone()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_error(
        &body,
        "invalid_parameter",
        &["mode", "atomic", "skip_invalid", "all_or_nothing"],
    );
    let (status, body) = api.post_csv(&a, "?mode=ATOMIC", csv.clone()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_error(&body, "invalid_parameter", &["mode"]);

    let (status, body) = api.post_csv(&a, "?mdoe=atomic", csv.clone()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_error(&body, "invalid_parameter", &["mdoe"]);

    assert_eq!(imports_of(&api, &a).await, Vec::<Value>::new());
    assert_eq!(api.customer_ids(&a).await, Vec::<String>::new());

    // The charset parameter is fine.
    let (status, body) = api
        .send_raw(
            "POST",
            &path,
            Some(&a.key),
            Some("text/csv; charset=utf-8"),
            csv,
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let report = api.wait_import(&a, body["id"].as_i64().unwrap()).await;
    assert_eq!(report["state"], "succeeded", "{report}");
    assert_eq!(api.customer_ids(&a).await, ["c1"]);
}

#[tokio::test]
async fn another_applications_key_is_403_and_unknown_imports_are_404() {
    let api = Api::new();
    let a = app_with_fields(&api).await;
    let b = app_named(&api, "Other").await;
    let report = api.import_csv(&a, "", long(&["c1,age,1"])).await;
    let id = report["id"].as_i64().unwrap();

    // b's key on a's routes.
    let intruder = App {
        id: a.id,
        key: b.key.clone(),
    };
    let (status, body) = api.post_csv(&intruder, "", long(&["c2,age,1"])).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_error(&body, "forbidden", &[]);
    for path in [format!("/imports/{id}"), "/imports".to_owned()] {
        let (status, body) = api.send("GET", &a.path(&path), Some(&b.key), None).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path}: {body}");
        assert_error(&body, "forbidden", &[]);
    }
    // No key at all.
    let (status, body) = api
        .send_raw(
            "POST",
            &a.path("/imports"),
            None,
            Some("text/csv"),
            long(&["c3,age,1"]),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    // a's import seen through b's own path is unknown there.
    let (status, body) = api
        .send(
            "GET",
            &b.path(&format!("/imports/{id}")),
            Some(&b.key),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_error(&body, "not_found", &[]);
    for missing in ["999999", "0", "-1"] {
        let (status, body) = api
            .send(
                "GET",
                &a.path(&format!("/imports/{missing}")),
                Some(&a.key),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{missing}: {body}");
        assert_error(&body, "not_found", &[]);
    }
    let (status, body) = api
        .send("GET", &a.path("/imports/abc"), Some(&a.key), None)
        .await;
    assert!(
        status == StatusCode::BAD_REQUEST || status == StatusCode::NOT_FOUND,
        "{status}: {body}"
    );

    assert_eq!(api.customer_ids(&a).await, ["c1"]);
    assert_eq!(api.customer_ids(&b).await, Vec::<String>::new());
    assert_eq!(imports_of(&api, &a).await.len(), 1);
    assert_eq!(imports_of(&api, &b).await, Vec::<Value>::new());
    // The admin key reaches every application's imports.
    let (status, body) = api
        .admin("GET", &a.path(&format!("/imports/{id}")), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["state"], "succeeded");
}

#[tokio::test]
async fn the_import_history_lists_newest_first() {
    let api = Api::new();
    let a = app_with_fields(&api).await;
    let first = api.import_csv(&a, "", long(&["c1,age,1"])).await;
    let second = api.import_csv(&a, "", long(&["c2,age,x"])).await;
    let third = api
        .import_csv(&a, "?mode=skip_invalid", long(&["c3,age,3", "c4,age,y"]))
        .await;
    let list = imports_of(&api, &a).await;
    let ids: Vec<i64> = list.iter().map(|i| i["id"].as_i64().unwrap()).collect();
    assert_eq!(
        ids,
        [
            third["id"].as_i64().unwrap(),
            second["id"].as_i64().unwrap(),
            first["id"].as_i64().unwrap()
        ]
    );
    let states: Vec<&str> = list.iter().map(|i| i["state"].as_str().unwrap()).collect();
    assert_eq!(states, ["succeeded", "failed", "succeeded"]);
    let modes: Vec<&str> = list.iter().map(|i| i["mode"].as_str().unwrap()).collect();
    assert_eq!(modes, ["skip_invalid", "atomic", "atomic"]);
    assert_counts(&list[0], "succeeded", [2, 1, 1, 0, 1, 1]);
    assert_counts(&list[1], "failed", [1, 0, 0, 0, 0, 1]);
    assert_counts(&list[2], "succeeded", [1, 1, 1, 0, 1, 0]);
    // A finished import's report is stable: GET again answers the same.
    let (status, again) = api
        .send(
            "GET",
            &a.path(&format!("/imports/{}", second["id"])),
            Some(&a.key),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(again, second);
    assert_eq!(api.customer_ids(&a).await, ["c1", "c3"]);
}

#[tokio::test]
async fn a_multipart_upload_is_imported_like_a_csv_body() {
    // SPEC §4: "body text/csv (or multipart file)".
    let api = Api::new();
    let a = app_with_fields(&api).await;
    let csv = long(&["m1,age,7", "m1,city,\"a,b\""]);
    let boundary = "----unicoTestBoundary7MA4YWxkTrZu0gW";
    let body = format!(
        "--{boundary}\r\n\
         Content-Disposition: form-data; name=\"file\"; filename=\"customers.csv\"\r\n\
         Content-Type: text/csv\r\n\
         \r\n\
         {csv}\r\n\
         --{boundary}--\r\n"
    );
    let (status, started) = api
        .send_raw(
            "POST",
            &a.path("/imports"),
            Some(&a.key),
            Some(&format!("multipart/form-data; boundary={boundary}")),
            body,
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{started}");
    let report = api.wait_import(&a, started["id"].as_i64().unwrap()).await;
    assert_counts(&report, "succeeded", [2, 2, 1, 0, 2, 0]);
    assert_eq!(
        api.get_customer(&a, "m1").await.unwrap()["fields"],
        json!({"age": 7, "city": "a,b"})
    );
}

/// Consent in CSV: `subscription:<channel>` columns (wide) and fieldNames (long) set the
/// customers' subscriptions with the import, source `csv`; a bad cell is a positioned row
/// error and an atomic import then writes nothing; a channel the application does not take
/// fails the header; the engine counts the statements at once.
#[tokio::test]
async fn consent_columns_set_subscriptions_with_the_import() {
    let api = Api::new();
    let app = api.create_app("Shop").await;
    api.create_field(&app, "city", "string").await;
    let count = |filter: &'static str| {
        let (api, app) = (&api, &app);
        async move {
            let (status, body) = api
                .send(
                    "POST",
                    &app.path("/count"),
                    Some(&app.key),
                    Some(json!({ "filter": filter })),
                )
                .await;
            assert_eq!(status, StatusCode::OK, "{body}");
            body["count"].as_u64().unwrap()
        }
    };
    // A bad consent cell: the row is refused with its place, and nothing is written.
    let report = api
        .import_csv(
            &app,
            "",
            "customerId,city,subscription:email\nana,Madrid,subscribed\nbob,Lyon,maybe\n",
        )
        .await;
    assert_eq!(report["state"], "failed", "{report}");
    let e = errors(&report);
    assert_row_error(
        &e[0],
        3,
        "subscription:email",
        "maybe",
        &["subscribed or unsubscribed"],
    );
    assert_eq!(api.customer_ids(&app).await, Vec::<String>::new());

    let report = api
        .import_csv(
            &app,
            "",
            "customerId,city,subscription:email,subscription:sms\nana,Madrid,subscribed,no\nbob,Lyon,Unsubscribed,\ncid,Oslo,,yes\n",
        )
        .await;
    assert_eq!(report["state"], "succeeded", "{report}");
    assert_eq!(count("subscribed email").await, 1);
    assert_eq!(count("subscribed sms").await, 1);
    let (_, subs) = api
        .send(
            "GET",
            &app.path("/customers/bob/subscriptions"),
            Some(&app.key),
            None,
        )
        .await;
    assert_eq!(subs["subscriptions"][0]["channel"], "email");
    assert_eq!(subs["subscriptions"][0]["subscribed"], false);
    assert_eq!(subs["subscriptions"][0]["source"], "csv");
    // The long form: one statement per row.
    let report = api
        .import_csv(
            &app,
            "",
            "customerId,fieldName,fieldValue\nbob,subscription:email,opted_in\nana,subscription:email,\n",
        )
        .await;
    assert_eq!(
        report["state"], "failed",
        "an empty long consent cell says nothing: {report}"
    );
    assert_row_error(
        &errors(&report)[0],
        3,
        "fieldValue",
        "",
        &["subscribed or unsubscribed"],
    );
    let report = api
        .import_csv(
            &app,
            "",
            "customerId,fieldName,fieldValue\nbob,subscription:email,opted_in\n",
        )
        .await;
    assert_eq!(report["state"], "succeeded", "{report}");
    assert_eq!(count("subscribed email").await, 2);
    // A channel the application does not take: the header fails, naming the columns taken.
    let (status, body) = api
        .post_csv(&app, "", "customerId,subscription:fax\nana,yes\n")
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let report = api.wait_import(&app, body["id"].as_i64().unwrap()).await;
    assert_eq!(report["state"], "failed", "{report}");
    let text = report.to_string();
    assert!(
        text.contains("column 2") && text.contains("subscription:whatsapp"),
        "{report}"
    );
}
