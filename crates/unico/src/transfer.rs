//! `unico import` and `unico export`: CSV in and out through a running server, with
//! progress bars on long work and `--json` for scripts.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::Value;

use crate::client::{AppArg, Client, ServerArgs};

#[derive(clap::Args)]
pub struct ImportArgs {
    /// The CSV file: long (customerId,fieldName,fieldValue), wide, or ids only.
    pub file: PathBuf,
    #[command(flatten)]
    pub server: ServerArgs,
    #[command(flatten)]
    pub app: AppArg,
    /// atomic (default: nothing is written if any row is invalid) or skip_invalid.
    #[arg(long, default_value = "atomic")]
    pub mode: String,
    /// Print the final report as JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::Args)]
pub struct ExportArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    #[command(flatten)]
    pub app: AppArg,
    /// Export only the members of this filter (text form).
    #[arg(long)]
    pub filter: Option<String>,
    /// Export only the members of this saved segment (its id).
    #[arg(long)]
    pub segment: Option<i64>,
    /// long (customerId,fieldName,fieldValue) or wide (one column per field).
    #[arg(long, default_value = "long")]
    pub format: String,
    /// Write text cells unchanged (no spreadsheet formula neutralisation).
    #[arg(long)]
    pub raw: bool,
    /// Output file (default: standard output).
    #[arg(long, short)]
    pub out: Option<PathBuf>,
}

/// Counts bytes as the upload reads them, for the progress bar.
struct Counting<R> {
    inner: R,
    bar: ProgressBar,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.bar.inc(n as u64);
        Ok(n)
    }
}

fn bar(quiet: bool) -> ProgressBar {
    if quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(0)
    }
}

pub fn import(args: ImportArgs) -> anyhow::Result<bool> {
    if !matches!(args.mode.as_str(), "atomic" | "skip_invalid") {
        bail!(
            "--mode must be atomic or skip_invalid, got \"{}\"",
            args.mode
        );
    }
    let client = Client::for_app(&args.server, &args.app)?;
    let file = std::fs::File::open(&args.file)
        .with_context(|| format!("opening {}", args.file.display()))?;
    let meta = file.metadata()?;
    let (size, len) = (meta.len(), Client::upload_length(&meta));
    let upload = bar(args.json);
    upload.set_length(size);
    upload.set_style(
        ProgressStyle::with_template(
            "uploading {bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
        )?
        .progress_chars("█▉▊▋▌▍▎▏ "),
    );
    let mut reader = Counting {
        inner: std::io::BufReader::with_capacity(1 << 20, file),
        bar: upload.clone(),
    };
    let url = client.app_url(&format!("/imports?mode={}", args.mode));
    let started = client.post_stream(&url, "text/csv", &mut reader, len)?;
    upload.finish_and_clear();
    let id = started["id"]
        .as_i64()
        .context("the server answered no import id")?;
    let progress = bar(args.json);
    progress.set_style(ProgressStyle::with_template(
        "{spinner} importing: {msg} [{elapsed}]",
    )?);
    progress.enable_steady_tick(Duration::from_millis(120));
    let report = loop {
        let report = client.get(&client.app_url(&format!("/imports/{id}")))?;
        if report["state"] != "running" {
            break report;
        }
        let secs = progress.elapsed().as_secs_f64().max(0.001);
        let read = report["rows_read"].as_u64().unwrap_or(0);
        progress.set_message(format!(
            "{read} rows read ({:.0} rows/s), {} customers written, {} rejected",
            read as f64 / secs,
            report["customers_processed"].as_u64().unwrap_or(0),
            report["rows_rejected"].as_u64().unwrap_or(0)
        ));
        std::thread::sleep(Duration::from_millis(200));
    };
    progress.finish_and_clear();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_report(&report);
    }
    Ok(report["state"] == "succeeded")
}

fn print_report(r: &Value) {
    let n = |k: &str| r[k].as_u64().unwrap_or(0);
    let secs = r["duration_ms"].as_i64().unwrap_or(0) as f64 / 1000.0;
    let rate = if secs > 0.0 {
        n("rows_read") as f64 / secs
    } else {
        0.0
    };
    println!("import {} {}", r["id"], r["state"].as_str().unwrap_or("?"));
    for (label, value) in [
        ("rows read", n("rows_read").to_string()),
        ("rows written", n("rows_written").to_string()),
        ("customers created", n("created").to_string()),
        ("customers updated", n("updated").to_string()),
        ("values written", n("values_written").to_string()),
        ("rows rejected", n("rows_rejected").to_string()),
        ("duration", format!("{secs:.2} s ({rate:.0} rows/s)")),
    ] {
        println!("  {label:<18} {value:>16}");
    }
    if let Some(message) = r["message"].as_str() {
        println!("\n{message}");
    }
    let errors = r["errors"].as_array().cloned().unwrap_or_default();
    if !errors.is_empty() {
        println!(
            "\n  {:>8}  {:<14}  {:<24}  reason",
            "line", "column", "value"
        );
        for e in errors.iter().take(20) {
            let value: String = e["value"].as_str().unwrap_or("").chars().take(24).collect();
            println!(
                "  {:>8}  {:<14}  {:<24}  {}",
                e["line"],
                e["column"].as_str().unwrap_or(""),
                value,
                e["message"].as_str().unwrap_or("")
            );
        }
        let more = n("rows_rejected").saturating_sub(20);
        if more > 0 {
            println!(
                "  … and {more} more (the first 1 000 are in `GET …/imports/{}`, or use --json)",
                r["id"]
            );
        }
    }
}

pub fn export(args: ExportArgs) -> anyhow::Result<()> {
    if !matches!(args.format.as_str(), "long" | "wide") {
        bail!("--format must be long or wide");
    }
    let client = Client::for_app(&args.server, &args.app)?;
    let mut url = client.app_url(&format!("/export?format={}&raw={}", args.format, args.raw));
    if let Some(filter) = &args.filter {
        url.push_str(&format!(
            "&filter={}",
            crate::commands::encode_query(filter)
        ));
    }
    if let Some(segment) = args.segment {
        url.push_str(&format!("&segment={segment}"));
    }
    let mut body = client.get_reader(&url)?;
    let mut out: Box<dyn Write> = match &args.out {
        Some(path) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?,
        )),
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    };
    let copied = match std::io::copy(&mut body, &mut out).and_then(|n| out.flush().map(|()| n)) {
        Ok(n) => n,
        // The reader of our output (`| head`) has had enough: not an error.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(()),
        Err(e) => return Err(e).context("the export stopped before its end"),
    };
    if let Some(path) = &args.out {
        eprintln!("wrote {copied} bytes to {}", path.display());
    }
    Ok(())
}
