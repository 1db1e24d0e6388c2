//! `unico import`, `unico events import` and `unico export` against a running server, and
//! an import cut by `kill -9`: nothing of it is written and it is reported failed after the
//! restart.
#![allow(clippy::unwrap_used)]

mod support;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::{ADMIN_KEY, Server, agent, call};

/// An application with fields age (number), city (string), signup_at (datetime).
struct Shop {
    base: String,
    id: i64,
    key: String,
}

impl Shop {
    /// Registers the event type `purchase`, with a number property `amount`.
    fn register_purchase(&self) {
        let (status, body) = self.call(
            "POST",
            "/event-types",
            Some(
                json!({"code": "purchase", "name": "Purchase", "retention_days": 3650,
                        "properties": {"amount": "number"}}),
            ),
        );
        assert_eq!(status, 201, "{body}");
    }

    fn create(server: &Server, name: &str) -> Shop {
        let http = agent();
        let base = server.base.clone();
        let (status, app) = call(
            &http,
            "POST",
            &format!("{base}/v1/apps"),
            ADMIN_KEY,
            Some(json!({ "name": name })),
        );
        assert_eq!(status, 201, "{app}");
        let shop = Shop {
            base,
            id: app["id"].as_i64().unwrap(),
            key: app["api_key"].as_str().unwrap().to_owned(),
        };
        for (name, ty) in [
            ("age", "number"),
            ("city", "string"),
            ("signup_at", "datetime"),
        ] {
            let (status, body) =
                shop.call("POST", "/fields", Some(json!({"name": name, "type": ty})));
            assert_eq!(status, 201, "{body}");
        }
        shop
    }

    fn url(&self, rest: &str) -> String {
        format!("{}/v1/apps/{}{rest}", self.base, self.id)
    }

    fn call(&self, method: &str, rest: &str, body: Option<Value>) -> (u16, Value) {
        call(&agent(), method, &self.url(rest), &self.key, body)
    }

    fn customer(&self, id: &str) -> Option<Value> {
        match self.call("GET", &format!("/customers/{id}"), None) {
            (200, body) => Some(body),
            (404, _) => None,
            (status, body) => panic!("GET customer {id}: {status} {body}"),
        }
    }

    fn customer_ids(&self) -> Vec<String> {
        let (status, body) = self.call("GET", "/customers?limit=1000", None);
        assert_eq!(status, 200, "{body}");
        assert!(body["next_cursor"].is_null(), "more than a page: {body}");
        body["customers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["customerId"].as_str().unwrap().to_owned())
            .collect()
    }
}

/// Runs the `unico` binary with `args`, with no UNICO_* variable from the environment.
fn unico(args: &[&str]) -> Output {
    unico_command(args).output().unwrap()
}

/// The `unico` binary with `args`, with no UNICO_* variable from the environment.
fn unico_command(args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_unico"));
    for var in ["UNICO_SERVER", "UNICO_KEY", "UNICO_DATA", "UNICO_ADMIN_KEY"] {
        cmd.env_remove(var);
    }
    cmd.args(args);
    cmd
}

/// Runs the `unico` binary with `args` (as [`unico`]), writing `input` to its standard
/// input through a pipe.
fn unico_piped(args: &[&str], input: &[u8]) -> Output {
    let mut child = unico_command(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&input).unwrap());
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    out
}

fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8(out.stderr.clone()).unwrap()
}

/// The value printed on the summary line labelled `label` (`  customers created   2`).
fn summary_value(text: &str, label: &str) -> String {
    text.lines()
        .find_map(|l| l.trim_start().strip_prefix(label))
        .unwrap_or_else(|| panic!("no {label:?} line in:\n{text}"))
        .trim()
        .to_owned()
}

fn write_file(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_owned()
}

const GOOD: &str = "customerId,fieldName,fieldValue\n\
                    ana,age,31\n\
                    ana,city,Madrid\n\
                    old,age,5\n\
                    bob,,\n";

const ONE_BAD: &str = "customerId,fieldName,fieldValue\n\
                       new1,age,5\n\
                       old,age,99\n\
                       old,city,\n\
                       bad,age,forty\n\
                       new2,city,X\n";

#[test]
fn cli_import_prints_a_summary_and_exits_0_on_success() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let shop = Shop::create(&server, "Shop");
    let (status, _) = shop.call(
        "POST",
        "/customers",
        Some(json!({"customerId": "old", "fields": {"city": "Vigo"}})),
    );
    assert_eq!(status, 201);
    let files = tempfile::tempdir().unwrap();
    let file = write_file(files.path(), "good.csv", GOOD);
    let id = shop.id.to_string();
    let out = unico(&[
        "import", &file, "--app", &id, "--server", &shop.base, "--key", &shop.key,
    ]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}\n{}", stderr(&out));
    assert!(text.contains("succeeded"), "{text}");
    assert_eq!(summary_value(&text, "rows read"), "4");
    assert_eq!(summary_value(&text, "rows written"), "4");
    assert_eq!(summary_value(&text, "customers created"), "2");
    assert_eq!(summary_value(&text, "customers updated"), "1");
    assert_eq!(summary_value(&text, "values written"), "3");
    assert_eq!(summary_value(&text, "rows rejected"), "0");
    assert_eq!(shop.customer_ids(), ["ana", "bob", "old"]);
    assert_eq!(
        shop.customer("ana").unwrap()["fields"],
        json!({"age": 31, "city": "Madrid"})
    );
    assert_eq!(
        shop.customer("old").unwrap()["fields"],
        json!({"age": 5, "city": "Vigo"})
    );
}

#[test]
fn cli_import_of_a_bad_file_exits_non_zero_with_the_row_errors_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let shop = Shop::create(&server, "Shop");
    let (status, _) = shop.call(
        "POST",
        "/customers",
        Some(json!({"customerId": "old", "fields": {"age": 1, "city": "Vigo"}})),
    );
    assert_eq!(status, 201);
    let before = shop.customer("old").unwrap();
    let files = tempfile::tempdir().unwrap();
    let file = write_file(files.path(), "bad.csv", ONE_BAD);
    let id = shop.id.to_string();
    let common = [
        "import", &file, "--app", &id, "--server", &shop.base, "--key", &shop.key,
    ];

    let out = unico(&common);
    let text = stdout(&out);
    assert!(
        !out.status.success() && out.status.code().is_some(),
        "{:?}\n{text}",
        out.status
    );
    assert!(text.contains("failed"), "{text}");
    assert!(text.contains("nothing was written"), "{text}");
    assert_eq!(summary_value(&text, "rows rejected"), "1");
    assert_eq!(summary_value(&text, "customers created"), "0");
    let row = text
        .lines()
        .find(|l| l.contains("forty"))
        .unwrap_or_else(|| panic!("no row error printed:\n{text}"));
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(&cells[..3], ["5", "fieldValue", "forty"], "{row}");
    assert!(row.contains("expected a number"), "{row}");

    // --json: the report itself, parseable, with the same verdict.
    let mut args = common.to_vec();
    args.push("--json");
    let out = unico(&args);
    assert!(!out.status.success(), "{:?}", out.status);
    let report: Value = serde_json::from_str(&stdout(&out))
        .unwrap_or_else(|e| panic!("--json printed no JSON ({e}):\n{}", stdout(&out)));
    assert_eq!(report["state"], "failed");
    assert_eq!(report["mode"], "atomic");
    assert_eq!(report["rows_read"], 5);
    assert_eq!(report["rows_rejected"], 1);
    assert_eq!(report["rows_written"], 0);
    assert_eq!(report["errors"][0]["line"], 5, "{report}");
    assert_eq!(report["errors"][0]["column"], "fieldValue");
    assert_eq!(report["errors"][0]["value"], "forty");
    assert_eq!(report["errors"].as_array().unwrap().len(), 1);

    assert_eq!(shop.customer_ids(), ["old"]);
    assert_eq!(shop.customer("old").unwrap(), before);

    // skip_invalid through the CLI writes the valid rows; --json on success exits 0.
    args.extend(["--mode", "skip_invalid"]);
    let out = unico(&args);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    let report: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(report["state"], "succeeded");
    assert_eq!(report["mode"], "skip_invalid");
    assert_eq!(report["created"], 2);
    assert_eq!(report["updated"], 1);
    assert_eq!(report["rows_rejected"], 1);
    assert_eq!(shop.customer_ids(), ["new1", "new2", "old"]);
}

#[test]
fn cli_export_writes_the_csv_to_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let shop = Shop::create(&server, "Shop");
    for (id, fields) in [
        ("a", json!({"age": -2, "city": "=1+1"})),
        ("b", json!({})),
        ("c", json!({"signup_at": "2024-03-05T15:22:10+01:00"})),
    ] {
        let (status, body) = shop.call(
            "POST",
            "/customers",
            Some(json!({"customerId": id, "fields": fields})),
        );
        assert_eq!(status, 201, "{body}");
    }
    // No --key: the admin key is read from the data directory given with --data.
    let keys = tempfile::tempdir().unwrap();
    std::fs::write(keys.path().join("admin.key"), format!("{ADMIN_KEY}\n")).unwrap();
    let data = keys.path().to_str().unwrap();
    let out_dir = tempfile::tempdir().unwrap();
    let id = shop.id.to_string();

    let long = out_dir.path().join("long.csv");
    let out = unico(&[
        "export",
        "--app",
        "Shop",
        "--server",
        &shop.base,
        "--data",
        data,
        "--out",
        long.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        std::fs::read_to_string(&long).unwrap(),
        "customerId,fieldName,fieldValue\n\
         a,age,-2\n\
         a,city,'=1+1\n\
         b,,\n\
         c,signup_at,2024-03-05T14:22:10.000Z\n"
    );
    assert!(stdout(&out).is_empty(), "{}", stdout(&out));
    assert!(stderr(&out).contains("long.csv"), "{}", stderr(&out));

    let wide = out_dir.path().join("wide.csv");
    let out = unico(&[
        "export",
        "--app",
        &id,
        "--server",
        &shop.base,
        "--key",
        &shop.key,
        "--format",
        "wide",
        "--raw",
        "--out",
        wide.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        std::fs::read_to_string(&wide).unwrap(),
        "customerId,age,city,signup_at\n\
         a,-2,=1+1,\n\
         b,,,\n\
         c,,,2024-03-05T14:22:10.000Z\n"
    );

    // Without --out the CSV goes to standard output.
    let out = unico(&[
        "export", "--app", &id, "--server", &shop.base, "--key", &shop.key, "--raw",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).starts_with("customerId,fieldName,fieldValue\na,age,-2\na,city,=1+1\n"));

    // A bad format is refused before anything is written.
    let bad = out_dir.path().join("bad.csv");
    let out = unico(&[
        "export",
        "--app",
        &id,
        "--server",
        &shop.base,
        "--key",
        &shop.key,
        "--format",
        "xlsx",
        "--out",
        bad.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("long or wide"), "{}", stderr(&out));
    assert!(!bad.exists());
}

#[test]
fn cli_import_with_a_bad_mode_prints_the_reason_and_records_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let shop = Shop::create(&server, "Shop");
    let files = tempfile::tempdir().unwrap();
    // Big enough that the upload is still being sent when the refusal comes back.
    let file = files.path().join("big.csv");
    big_long_file(&file, 30_000);
    let file = file.to_str().unwrap();
    let id = shop.id.to_string();
    for mode in ["sometimes", "ATOMIC"] {
        let out = unico(&[
            "import", file, "--app", &id, "--server", &shop.base, "--key", &shop.key, "--mode",
            mode,
        ]);
        assert!(!out.status.success(), "{mode}");
        let err = stderr(&out);
        assert!(
            err.contains("mode must be atomic or skip_invalid"),
            "{mode}: the reason is not shown: {err}"
        );
    }
    let (_, list) = shop.call("GET", "/imports", None);
    assert_eq!(list["imports"], json!([]));
    assert_eq!(shop.customer_ids(), Vec::<String>::new());
}

/// Writes a long file of `customers` customers with three values each.
fn big_long_file(path: &Path, customers: usize) {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    writeln!(out, "customerId,fieldName,fieldValue").unwrap();
    for i in 0..customers {
        writeln!(out, "cust-{i:07},age,{}", i % 97).unwrap();
        writeln!(out, "cust-{i:07},city,City number {i}").unwrap();
        writeln!(out, "cust-{i:07},signup_at,2024-03-05T14:22:10Z").unwrap();
    }
    out.flush().unwrap();
}

#[test]
fn an_import_cut_by_sigkill_writes_nothing_and_is_reported_interrupted() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let shop = Shop::create(&server, "Shop");
    let files = tempfile::tempdir().unwrap();
    let file = files.path().join("big.csv");
    big_long_file(&file, 300_000);

    let http = agent();
    let body = std::fs::read(&file).unwrap();
    let request = ureq::http::Request::builder()
        .method("POST")
        .uri(shop.url("/imports"))
        .header("Authorization", format!("Bearer {}", shop.key))
        .header("Content-Type", "text/csv")
        .body(body)
        .unwrap();
    let response = http.run(request).unwrap();
    assert_eq!(response.status().as_u16(), 202);
    let started: Value =
        serde_json::from_str(&response.into_body().read_to_string().unwrap()).unwrap();
    let id = started["id"].as_i64().unwrap();

    // Wait (polling the server, bounded) until the import is writing customers.
    let deadline = Instant::now() + Duration::from_secs(60);
    let progress = loop {
        let (status, report) = shop.call("GET", &format!("/imports/{id}"), None);
        assert_eq!(status, 200, "{report}");
        assert_eq!(
            report["state"], "running",
            "the import ended before it could be killed: {report}"
        );
        if report["customers_processed"].as_u64().unwrap_or(0) > 0 {
            break report;
        }
        assert!(Instant::now() < deadline, "no progress in 60 s: {report}");
        std::thread::sleep(Duration::from_millis(5));
    };
    assert!(progress["rows_read"].as_u64().unwrap() > 0, "{progress}");

    server.kill_9();
    let server = Server::start(dir.path(), &[]);
    let shop = Shop {
        base: server.base.clone(),
        ..shop
    };

    let (status, page) = shop.call("GET", "/customers?limit=1", None);
    assert_eq!(status, 200, "{page}");
    assert_eq!(
        page["customers"],
        json!([]),
        "a killed import left customers"
    );
    assert!(shop.customer("cust-0000000").is_none());
    let (_, fields) = shop.call("GET", "/fields", None);
    for field in fields["fields"].as_array().unwrap() {
        assert_eq!(field["value_count"], 0, "{field}");
    }

    let (status, report) = shop.call("GET", &format!("/imports/{id}"), None);
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["state"], "failed", "{report}");
    let message = report["message"].as_str().unwrap_or("");
    assert!(message.contains("interrupted"), "{report}");
    assert!(message.contains("nothing"), "{report}");
    assert_eq!(report["rows_written"], 0, "{report}");
    assert_eq!(report["created"], 0, "{report}");
    assert_eq!(report["updated"], 0, "{report}");
    assert!(report["finished_at"].is_string(), "{report}");
    let (_, list) = shop.call("GET", "/imports", None);
    assert_eq!(list["imports"][0]["id"], id);
    assert_eq!(list["imports"][0]["state"], "failed");

    // The server still imports after the restart.
    let small = std::fs::read_to_string(&file)
        .unwrap()
        .lines()
        .take(4)
        .collect::<Vec<_>>()
        .join("\n");
    let request = ureq::http::Request::builder()
        .method("POST")
        .uri(shop.url("/imports"))
        .header("Authorization", format!("Bearer {}", shop.key))
        .header("Content-Type", "text/csv")
        .body(small)
        .unwrap();
    let response = agent().run(request).unwrap();
    assert_eq!(response.status().as_u16(), 202);
    let started: Value =
        serde_json::from_str(&response.into_body().read_to_string().unwrap()).unwrap();
    let second = started["id"].as_i64().unwrap();
    assert!(second > id);
    let deadline = Instant::now() + Duration::from_secs(30);
    let report = loop {
        let (_, report) = shop.call("GET", &format!("/imports/{second}"), None);
        if report["state"] != "running" {
            break report;
        }
        assert!(Instant::now() < deadline, "{report}");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(report["state"], "succeeded", "{report}");
    assert_eq!(report["created"], 1, "{report}");
    assert_eq!(
        shop.customer("cust-0000000").unwrap()["fields"]["city"],
        "City number 0"
    );
}

/// Uploads `body` as an import and answers its id.
fn start_import(shop: &Shop, body: Vec<u8>) -> i64 {
    let request = ureq::http::Request::builder()
        .method("POST")
        .uri(shop.url("/imports"))
        .header("Authorization", format!("Bearer {}", shop.key))
        .header("Content-Type", "text/csv")
        .body(body)
        .unwrap();
    let response = agent().run(request).unwrap();
    assert_eq!(response.status().as_u16(), 202);
    let started: Value =
        serde_json::from_str(&response.into_body().read_to_string().unwrap()).unwrap();
    started["id"].as_i64().unwrap()
}

/// `kill -9` as an import finishes (every customer written, the commit imminent or just
/// done), in several rounds: after the restart the import's record and its rows always
/// agree — succeeded with every row, or failed with none — because they commit together.
#[test]
fn an_import_killed_as_it_finishes_is_recorded_as_what_it_left() {
    let dir = tempfile::tempdir().unwrap();
    let files = tempfile::tempdir().unwrap();
    let file = files.path().join("big.csv");
    let customers = 40_000u64;
    big_long_file(&file, customers as usize);
    let body = std::fs::read(&file).unwrap();
    let mut server = Server::start(dir.path(), &[]);
    let mut shop = Shop::create(&server, "Shop");
    let mut outcomes = Vec::new();
    for round in 0..4u64 {
        // Each round imports into a fresh application, so "every row" is exact.
        let id = start_import(&shop, body.clone());
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let (status, report) = shop.call("GET", &format!("/imports/{id}"), None);
            assert_eq!(status, 200, "{report}");
            let processed = report["customers_processed"].as_u64().unwrap_or(0);
            // Round 0 kills as soon as the last customers are written; the others a few
            // milliseconds apart around the end (or after it).
            if processed >= customers || report["state"] != "running" {
                std::thread::sleep(Duration::from_millis(round * 3));
                break;
            }
            assert!(Instant::now() < deadline, "no end in 60 s: {report}");
            std::thread::sleep(Duration::from_millis(1));
        }
        server.kill_9();
        server = Server::start(dir.path(), &[]);
        shop = Shop {
            base: server.base.clone(),
            ..shop
        };
        let (status, report) = shop.call("GET", &format!("/imports/{id}"), None);
        assert_eq!(status, 200, "{report}");
        let first = shop.customer("cust-0000000").is_some();
        let last = shop
            .customer(&format!("cust-{:07}", customers - 1))
            .is_some();
        let (_, fields) = shop.call("GET", "/fields", None);
        let city = fields["fields"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["name"] == "city")
            .unwrap()["value_count"]
            .as_u64()
            .unwrap();
        match report["state"].as_str() {
            Some("succeeded") => {
                assert!(first && last, "succeeded but rows are missing: {report}");
                assert_eq!(city, customers, "{report}");
                assert_eq!(report["created"].as_u64(), Some(customers), "{report}");
            }
            Some("failed") => {
                assert!(!first && !last, "failed but rows were written: {report}");
                assert_eq!(city, 0, "{report}");
                let message = report["message"].as_str().unwrap_or("");
                assert!(message.contains("interrupted"), "{report}");
            }
            other => panic!("import {id} is {other:?} after the restart: {report}"),
        }
        outcomes.push(report["state"].as_str().unwrap().to_owned());
        // Start the next round empty: drop the application's customers with it.
        let (status, body) = call(
            &agent(),
            "DELETE",
            &format!("{}/v1/apps/{}", shop.base, shop.id),
            ADMIN_KEY,
            None,
        );
        assert_eq!(status, 204, "{body}");
        shop = Shop::create(&server, &format!("Shop{round}"));
    }
    eprintln!("outcomes of the killed imports: {outcomes:?}");
}

#[test]
fn cli_defines_a_computed_field_that_lists_and_filters_like_any_field() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let shop = Shop::create(&server, "Shop");
    shop.register_purchase();
    let cli = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend(["--app", "Shop", "--server", &shop.base, "--key", &shop.key]);
        unico(&all)
    };
    let out = cli(&[
        "fields",
        "computed",
        "spent",
        "--event",
        "purchase",
        "--agg",
        "sum",
        "--property",
        "amount",
        "--within-last",
        "365d",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("created computed field \"spent\" (number)"),
        "{}",
        stdout(&out)
    );
    // A definition the application cannot hold: the reason, and a non-zero exit.
    let out = cli(&[
        "fields", "computed", "x", "--event", "refund", "--agg", "count",
    ]);
    assert_ne!(out.status.code(), Some(0));
    assert!(
        stderr(&out).contains("event type \"refund\" is not registered"),
        "{}",
        stderr(&out)
    );
    let out = cli(&["fields", "list"]);
    assert!(
        stdout(&out).contains("computed: sum amount of purchase within_last 365d"),
        "{}",
        stdout(&out)
    );
    let (status, body) = shop.call(
        "POST",
        "/events",
        Some(json!({"events": [
            {"customerId": "ana", "type": "purchase", "channel": "web", "properties": {"amount": 120}},
            {"customerId": "bob", "type": "purchase", "channel": "web", "properties": {"amount": 20}}
        ]})),
    );
    assert_eq!(status, 200, "{body}");
    let out = cli(&["customers", "list", "--filter", "spent > 100"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let listed = stdout(&out);
    assert!(
        listed.contains("ana") && !listed.contains("bob"),
        "{listed}"
    );
}

#[test]
fn cli_events_import_stores_each_event_once_and_reports_bad_lines() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let shop = Shop::create(&server, "Shop");
    shop.register_purchase();
    let files = tempfile::tempdir().unwrap();
    let line = |key: &str, customer: &str, amount: &str| {
        format!(
            "{{\"event_id\":\"{key}\",\"customerId\":\"{customer}\",\"type\":\"purchase\",\"channel\":\"web\",\"timestamp\":\"2026-11-01T10:00:00Z\",\"properties\":{{\"amount\":{amount}}}}}\n"
        )
    };
    let good = [
        line("e1", "ana", "10"),
        line("e2", "ana", "20"),
        "\n".to_owned(),
        line("e1", "ana", "10"),
        line("e3", "bob", "5.5"),
    ]
    .concat();
    let file = write_file(files.path(), "good.ndjson", &good);
    let id = shop.id.to_string();
    let args = [
        "events", "import", &file, "--app", &id, "--server", &shop.base, "--key", &shop.key,
    ];
    let out = unico(&args);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}\n{}", stderr(&out));
    assert!(text.contains("succeeded"), "{text}");
    assert_eq!(summary_value(&text, "lines read"), "4");
    assert_eq!(summary_value(&text, "events stored"), "3");
    assert_eq!(summary_value(&text, "duplicates"), "1");
    assert_eq!(summary_value(&text, "customers created"), "2");
    let (status, page) = shop.call("GET", "/customers/ana/events", None);
    assert_eq!(status, 200, "{page}");
    let amounts: Vec<f64> = page["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["properties"]["amount"].as_f64().unwrap())
        .collect();
    assert_eq!(amounts.len(), 2, "{page}");
    assert!(amounts.contains(&10.0) && amounts.contains(&20.0), "{page}");
    // Importing the file again stores nothing new: every key is held.
    let out = unico(&args);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert_eq!(summary_value(&stdout(&out), "duplicates"), "4");
    // From a pipe (whose length is not known before it is read): every line arrives.
    let more = [line("p1", "dee", "1"), line("p2", "dee", "2")].concat();
    let mut piped = args.to_vec();
    piped[2] = "/dev/stdin";
    let out = unico_piped(&piped, more.as_bytes());
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}\n{}", stderr(&out));
    assert_eq!(summary_value(&text, "lines read"), "2", "{text}");
    assert_eq!(summary_value(&text, "events stored"), "2", "{text}");

    // A bad line (its time is no time) fails the whole (atomic) import with its line
    // number and reason.
    let bad = [
        line("e4", "cy", "1"),
        line("e5", "cy", "2").replace("2026-11-01T10:00:00Z", "yesterday"),
    ]
    .concat();
    let file = write_file(files.path(), "bad.ndjson", &bad);
    let mut args = args.to_vec();
    args[2] = &file;
    args.push("--json");
    let out = unico(&args);
    assert!(!out.status.success(), "{}", stdout(&out));
    let report: Value = serde_json::from_str(&stdout(&out))
        .unwrap_or_else(|e| panic!("--json printed no JSON ({e}):\n{}", stdout(&out)));
    assert_eq!(report["state"], "failed", "{report}");
    assert_eq!(report["lines_rejected"], 1);
    assert_eq!(report["errors"][0]["line"], 2, "{report}");
    assert_eq!(report["errors"][0]["column"], "timestamp", "{report}");
    assert!(shop.customer("cy").is_none(), "nothing was written");
}
