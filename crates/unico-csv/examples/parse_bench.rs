//! Times the import reader over a long (or wide) benchmark file: rows per second.
//!
//! ```text
//! python3 ../shared/bench/gen_customers.py --customers 200000 --format long --out target/bench-data/200k.csv
//! cargo run --release -p unico-csv --example parse_bench -- target/bench-data/200k.csv [runs]
//! ```
//! The schema comes from `fields.json` beside the file. The file is read into memory first,
//! so the time is the parser's alone. On Linux the thread's CPU time is shown beside the wall
//! time: on a shared machine it is the steadier of the two.

use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use unico_core::{FieldDef, FieldId, FieldName, FieldType, Schema};
use unico_csv::{ImportReader, Row, RowRef};

fn schema_from(path: &Path) -> Result<Schema, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let json: serde_json::Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
    let list = json.as_array().ok_or("fields.json is not a list")?;
    let mut fields = Vec::new();
    for (i, item) in list.iter().enumerate() {
        let name = item["name"].as_str().ok_or("a field has no name")?;
        let ty = item["type"].as_str().ok_or("a field has no type")?;
        fields.push(FieldDef {
            id: FieldId(i as u32 + 1),
            name: FieldName::parse(name).map_err(|e| e.to_string())?,
            field_type: FieldType::parse(ty).map_err(|e| e.to_string())?,
            created_at: 0,
            computed: None,
        });
    }
    Ok(Schema::new(fields))
}

/// CPU time this thread has run, from `/proc/thread-self/schedstat` (Linux), if readable.
fn cpu_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns: u64 = stat.split_whitespace().next()?.parse().ok()?;
    Some(Duration::from_nanos(ns))
}

#[derive(Default)]
struct Counts {
    ops: u64,
    invalid: u64,
    changes: u64,
}

/// Through the iterator of owned rows.
fn count_owned(data: &[u8], schema: &Schema) -> Result<Counts, unico_csv::FileError> {
    let mut counts = Counts::default();
    for row in ImportReader::new(data, schema)? {
        match row? {
            Row::Op(op) => {
                counts.ops += 1;
                counts.changes += op.changes.len() as u64;
            }
            Row::Invalid(_) => counts.invalid += 1,
        }
    }
    Ok(counts)
}

/// Through the lending reader.
fn count_borrowed(data: &[u8], schema: &Schema) -> Result<Counts, unico_csv::FileError> {
    let mut counts = Counts::default();
    let mut reader = ImportReader::new(data, schema)?;
    while let Some(row) = reader.next_row_ref()? {
        match row {
            RowRef::Op(op) => {
                counts.ops += 1;
                counts.changes += op.changes.len() as u64;
            }
            RowRef::Invalid(_) => counts.invalid += 1,
        }
    }
    Ok(counts)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let Some(csv_path) = args.get(1).map(Path::new) else {
        eprintln!("usage: parse_bench FILE.csv [runs]");
        return ExitCode::FAILURE;
    };
    let runs: usize = args.get(2).and_then(|r| r.parse().ok()).unwrap_or(5);
    let fields_path = csv_path.with_file_name("fields.json");
    let schema = match schema_from(&fields_path) {
        Ok(schema) => schema,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let data = match std::fs::read(csv_path) {
        Ok(data) => data,
        Err(e) => {
            eprintln!("{}: {e}", csv_path.display());
            return ExitCode::FAILURE;
        }
    };
    let mut best = [f64::MAX; 2];
    let mut best_cpu = [f64::MAX; 2];
    for run in 1..=runs {
        for (i, api) in ["owned", "borrowed"].into_iter().enumerate() {
            let cpu_start = cpu_time();
            let start = Instant::now();
            let counted = if api == "owned" {
                count_owned(&data, &schema)
            } else {
                count_borrowed(&data, &schema)
            };
            let secs = start.elapsed().as_secs_f64();
            let cpu = cpu_start
                .zip(cpu_time())
                .map(|(a, b)| b.saturating_sub(a).as_secs_f64());
            let counts = match counted {
                Ok(counts) => counts,
                Err(e) => {
                    eprintln!("{e}");
                    return ExitCode::FAILURE;
                }
            };
            best[i] = best[i].min(secs);
            let rows = counts.ops + counts.invalid;
            let cpu_text = match cpu {
                Some(cpu) => {
                    best_cpu[i] = best_cpu[i].min(cpu);
                    format!(", cpu {cpu:.3} s = {:.2} M rows/s", rows as f64 / cpu / 1e6)
                }
                None => String::new(),
            };
            println!(
                "run {run} {api:>8}: {rows} rows ({} invalid, {} changes) in {secs:.3} s = {:.2} M rows/s, {:.0} MB/s{cpu_text}",
                counts.invalid,
                counts.changes,
                rows as f64 / secs / 1e6,
                data.len() as f64 / secs / 1e6
            );
        }
    }
    println!(
        "best wall: owned {:.3} s, borrowed {:.3} s; best cpu: owned {:.3} s, borrowed {:.3} s",
        best[0], best[1], best_cpu[0], best_cpu[1]
    );
    ExitCode::SUCCESS
}
