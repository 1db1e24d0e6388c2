//! `unico serve`'s settings through the real binary: flag over environment over the
//! configuration file over the default, as `--print-config` shows them.
#![allow(clippy::unwrap_used)]

use std::process::Command;

/// Runs `unico serve --print-config ARGS` with exactly `env` as its UNICO_* variables.
fn resolved(args: &[&str], env: &[(&str, &str)]) -> (bool, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_unico"));
    for var in [
        "UNICO_CONFIG",
        "UNICO_DATA",
        "UNICO_DATABASE",
        "UNICO_ADDR",
        "UNICO_LOG_FORMAT",
    ] {
        cmd.env_remove(var);
    }
    cmd.envs(env.iter().copied());
    let out = cmd
        .args(["serve", "--print-config"])
        .args(args)
        .output()
        .unwrap();
    let text = if out.status.success() {
        String::from_utf8(out.stdout).unwrap()
    } else {
        String::from_utf8(out.stderr).unwrap()
    };
    (out.status.success(), text)
}

fn line<'a>(text: &'a str, key: &str) -> &'a str {
    text.lines()
        .find(|l| l.starts_with(&format!("{key} = ")))
        .unwrap_or_else(|| panic!("no {key} in:\n{text}"))
}

#[test]
fn a_flag_beats_the_environment_which_beats_the_file_which_beats_the_default() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("unico.toml");
    std::fs::write(
        &file,
        "addr = \"127.0.0.1:7001\"\nlog_format = \"json\"\ndemo_customers = 42\n",
    )
    .unwrap();
    let file = file.to_str().unwrap();

    let (ok, defaults) = resolved(&[], &[]);
    assert!(ok, "{defaults}");
    assert_eq!(line(&defaults, "addr"), "addr = \"127.0.0.1:8080\"");
    assert_eq!(line(&defaults, "log_format"), "log_format = \"text\"");

    let (ok, from_file) = resolved(&["--config", file], &[]);
    assert!(ok, "{from_file}");
    assert_eq!(line(&from_file, "addr"), "addr = \"127.0.0.1:7001\"");
    assert_eq!(line(&from_file, "log_format"), "log_format = \"json\"");
    assert_eq!(line(&from_file, "demo_customers"), "demo_customers = 42");

    // The file named by the environment, one setting overridden by the environment.
    let (ok, from_env) = resolved(
        &[],
        &[("UNICO_CONFIG", file), ("UNICO_ADDR", "127.0.0.1:7002")],
    );
    assert!(ok, "{from_env}");
    assert_eq!(line(&from_env, "addr"), "addr = \"127.0.0.1:7002\"");
    assert_eq!(line(&from_env, "log_format"), "log_format = \"json\"");

    let (ok, from_flag) = resolved(
        &["--config", file, "--addr", "127.0.0.1:7003"],
        &[
            ("UNICO_ADDR", "127.0.0.1:7002"),
            ("UNICO_LOG_FORMAT", "text"),
        ],
    );
    assert!(ok, "{from_flag}");
    assert_eq!(line(&from_flag, "addr"), "addr = \"127.0.0.1:7003\"");
    assert_eq!(line(&from_flag, "log_format"), "log_format = \"text\"");
}

#[test]
fn a_file_with_a_typo_stops_the_start_with_the_key_named() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("unico.toml");
    std::fs::write(&file, "adress = \"0.0.0.0:80\"\n").unwrap();
    let (ok, text) = resolved(&["--config", file.to_str().unwrap()], &[]);
    assert!(!ok);
    assert!(text.contains("adress"), "{text}");
}

#[test]
fn the_server_runs_on_what_the_file_says() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("unico.toml");
    std::fs::write(&file, "data = \"from-file\"\naddr = \"127.0.0.1:0\"\n").unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_unico"))
        .args(["serve", "--config"])
        .arg(&file)
        .env_remove("UNICO_DATA")
        .env_remove("UNICO_ADDR")
        .env("UNICO_ADMIN_KEY", "test-admin-key-0123456789")
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::BufRead;
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let listening = lines
        .find_map(|l| l.ok().filter(|l| l.starts_with("Listening on")))
        .unwrap();
    let _ = child.kill();
    let _ = child.wait();
    assert!(listening.starts_with("Listening on http://127.0.0.1:"));
    assert!(
        dir.path().join("from-file").join("unico.db").exists(),
        "the data directory named in the file, relative to it"
    );
}

/// With `log_format = "json"`, each request is one JSON line on stderr carrying the
/// request's id, which the response echoes in `x-request-id`.
#[test]
fn json_logs_have_one_line_per_request_with_its_id() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_unico"))
        .args([
            "serve",
            "--log-format",
            "json",
            "--addr",
            "127.0.0.1:0",
            "--data",
        ])
        .arg(dir.path())
        .env("UNICO_ADMIN_KEY", "test-admin-key-0123456789")
        .env("RUST_LOG", "info")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::BufRead;
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let base = out
        .find_map(|l| l.ok()?.strip_prefix("Listening on ").map(str::to_owned))
        .unwrap();
    let http = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .new_agent();
    let response = http
        .get(format!("{base}/v1/apps?limit=1"))
        .header("x-request-id", "trace-42")
        .call()
        .unwrap();
    assert_eq!(response.status().as_u16(), 401);
    assert_eq!(response.headers()["x-request-id"], "trace-42");
    let _ = child.kill();
    let _ = child.wait();
    let err = std::io::BufReader::new(child.stderr.take().unwrap());
    let lines: Vec<serde_json::Value> = err
        .lines()
        .map(|l| serde_json::from_str(&l.unwrap()).expect("every log line is JSON"))
        .collect();
    let answered: Vec<&serde_json::Value> = lines
        .iter()
        .filter(|l| l["fields"]["message"] == "answered" && l["span"]["name"] == "request")
        .collect();
    assert_eq!(answered.len(), 1, "{lines:?}");
    let line = answered[0];
    assert_eq!(line["fields"]["method"], "GET", "{line}");
    assert_eq!(
        line["fields"]["path"], "/v1/apps",
        "the query is left out: {line}"
    );
    assert_eq!(line["fields"]["status"], 401, "{line}");
    assert_eq!(line["span"]["id"], "trace-42", "{line}");
}
