//! `unico events …`: event types, the NDJSON backfill with a progress bar, and a
//! customer's timeline, against a running server.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Subcommand;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Value, json};

use crate::client::{AppArg, Client, ServerArgs};
use crate::commands::encode_query;

#[derive(Subcommand)]
pub enum EventsCommand {
    /// Import an NDJSON file of events (one event per line, as `POST …/events` takes).
    Import {
        file: PathBuf,
        /// atomic (default: nothing is written if any line is invalid) or skip_invalid.
        #[arg(long, default_value = "atomic")]
        mode: String,
    },
    /// List the registered event types.
    Types,
    /// Register an event type.
    Register {
        code: String,
        #[arg(long)]
        name: Option<String>,
        /// Days its events are kept (default 1095).
        #[arg(long)]
        retention_days: Option<i64>,
    },
    /// A customer's events, newest first.
    Timeline {
        customer_id: String,
        /// Only these types, comma-separated.
        #[arg(long = "type")]
        types: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
}

#[derive(clap::Args)]
pub struct EventsArgs {
    #[command(subcommand)]
    pub command: EventsCommand,
    #[command(flatten)]
    pub server: ServerArgs,
    #[command(flatten)]
    pub app: AppArg,
    /// Print JSON instead of a table.
    #[arg(long, global = true)]
    pub json: bool,
}

pub fn events(args: EventsArgs) -> anyhow::Result<bool> {
    let client = Client::for_app(&args.server, &args.app)?;
    match args.command {
        EventsCommand::Import { file, mode } => import(&client, &file, &mode, args.json),
        EventsCommand::Types => {
            let out = client.get(&client.app_url("/event-types"))?;
            if args.json {
                println!("{}", serde_json::to_string_pretty(&out)?);
            } else {
                for t in out["event_types"].as_array().into_iter().flatten() {
                    println!(
                        "{:<24} {:<30} {:>6} days  {}",
                        t["code"].as_str().unwrap_or(""),
                        t["name"].as_str().unwrap_or(""),
                        t["retention_days"],
                        if t["enabled"] == true {
                            "enabled"
                        } else {
                            "disabled"
                        }
                    );
                }
            }
            Ok(true)
        }
        EventsCommand::Register {
            code,
            name,
            retention_days,
        } => {
            let mut body = json!({ "code": code });
            if let Some(name) = name {
                body["name"] = json!(name);
            }
            if let Some(days) = retention_days {
                body["retention_days"] = json!(days);
            }
            let out = client.send_json("POST", &client.app_url("/event-types"), Some(&body))?;
            if args.json {
                println!("{}", serde_json::to_string_pretty(&out)?);
            } else {
                println!("registered {}", out["code"].as_str().unwrap_or(""));
            }
            Ok(true)
        }
        EventsCommand::Timeline {
            customer_id,
            types,
            limit,
        } => {
            let mut url = client.app_url(&format!(
                "/customers/{}/events?limit={limit}&summary=true",
                encode_query(&customer_id)
            ));
            if let Some(types) = types {
                url.push_str(&format!("&type={}", encode_query(&types)));
            }
            let out = client.get(&url)?;
            if args.json {
                println!("{}", serde_json::to_string_pretty(&out)?);
            } else {
                print_timeline(&out);
            }
            Ok(true)
        }
    }
}

fn print_timeline(out: &Value) {
    let s = &out["summary"];
    println!(
        "{} events, first seen {}, last seen {}, channels: {}",
        s["events"],
        s["first_seen"].as_str().unwrap_or("-"),
        s["last_seen"].as_str().unwrap_or("-"),
        s["channels"]
            .as_array()
            .map(|c| c
                .iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(", "))
            .unwrap_or_default()
    );
    for e in out["events"].as_array().into_iter().flatten() {
        println!(
            "  {}  {:<16} {:<9} {}",
            e["timestamp"].as_str().unwrap_or(""),
            e["type"].as_str().unwrap_or(""),
            e["channel"].as_str().unwrap_or(""),
            e["properties"]
        );
    }
}

fn import(client: &Client, file: &PathBuf, mode: &str, json_out: bool) -> anyhow::Result<bool> {
    if !matches!(mode, "atomic" | "skip_invalid") {
        bail!("--mode must be atomic or skip_invalid, got \"{mode}\"");
    }
    let handle =
        std::fs::File::open(file).with_context(|| format!("opening {}", file.display()))?;
    let meta = handle.metadata()?;
    let (size, len) = (meta.len(), Client::upload_length(&meta));
    let upload = if json_out {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(size)
    };
    upload.set_style(
        ProgressStyle::with_template(
            "uploading {bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
        )?
        .progress_chars("█▉▊▋▌▍▎▏ "),
    );
    let mut reader = upload.wrap_read(std::io::BufReader::with_capacity(1 << 20, handle));
    let url = client.app_url(&format!("/events/imports?mode={mode}"));
    let started = client.post_stream(&url, "application/x-ndjson", &mut reader, len)?;
    upload.finish_and_clear();
    let id = started["id"]
        .as_i64()
        .context("the server answered no import id")?;
    let progress = if json_out {
        ProgressBar::hidden()
    } else {
        ProgressBar::new_spinner()
    };
    progress.set_style(ProgressStyle::with_template(
        "{spinner} importing events: {msg} [{elapsed}]",
    )?);
    progress.enable_steady_tick(Duration::from_millis(120));
    let report = loop {
        let report = client.get(&client.app_url(&format!("/events/imports/{id}")))?;
        if report["state"] != "running" {
            break report;
        }
        let secs = progress.elapsed().as_secs_f64().max(0.001);
        let read = report["lines_read"].as_u64().unwrap_or(0);
        progress.set_message(format!(
            "{read} lines read ({:.0} lines/s), {} events written, {} rejected",
            read as f64 / secs,
            report["events_processed"].as_u64().unwrap_or(0),
            report["lines_rejected"].as_u64().unwrap_or(0)
        ));
        std::thread::sleep(Duration::from_millis(200));
    };
    progress.finish_and_clear();
    if json_out {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        let n = |k: &str| report[k].as_u64().unwrap_or(0);
        let secs = report["duration_ms"].as_i64().unwrap_or(0) as f64 / 1000.0;
        println!(
            "events import {} {}",
            report["id"],
            report["state"].as_str().unwrap_or("?")
        );
        for (label, value) in [
            ("lines read", n("lines_read").to_string()),
            ("events stored", n("events_stored").to_string()),
            ("duplicates", n("duplicates").to_string()),
            ("customers created", n("customers_created").to_string()),
            ("lines rejected", n("lines_rejected").to_string()),
            (
                "duration",
                format!(
                    "{secs:.2} s ({:.0} events/s)",
                    n("lines_read") as f64 / secs.max(0.001)
                ),
            ),
        ] {
            println!("  {label:<18} {value:>16}");
        }
        if let Some(message) = report["message"].as_str() {
            println!("\n{message}");
        }
        for e in report["errors"].as_array().into_iter().flatten().take(20) {
            println!(
                "  line {:>8}  {:<12} {}",
                e["line"],
                e["column"].as_str().unwrap_or(""),
                e["message"].as_str().unwrap_or("")
            );
        }
    }
    Ok(report["state"] == "succeeded")
}
