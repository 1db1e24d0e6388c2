//! The CPU an events backfill spends per line outside the store: reading a line into an
//! event (the parser thread) and preparing the engine's tables from the events written
//! (the preparing thread), on the first lines of the workload's NDJSON file.
//!
//!     cargo bench -p unico-server --bench ndjson_lines [-- LINES]
//!
//! Reads `target/bench-data/events.ndjson` (see `bench/e_events.py` for how to make it;
//! `UNICO_EVENTS_NDJSON` names another). Prints the median of 5 rounds of each step, in
//! nanoseconds per line.

use std::io::BufRead;
use std::time::Instant;

use unico_store::{EventSink, NewEvent, StoredEvent};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const ROUNDS: usize = 5;
const BATCH: usize = unico_server::event_import::BATCH_EVENTS;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let lines: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let path = std::env::var("UNICO_EVENTS_NDJSON").unwrap_or_else(|_| {
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../target/bench-data/events.ndjson"
        )
        .into()
    });
    let Ok(file) = std::fs::File::open(&path) else {
        eprintln!("no {path}: generate it first (bench/e_events.py)");
        return;
    };
    let text: Vec<String> = std::io::BufReader::new(file)
        .lines()
        .take(lines)
        .map_while(Result::ok)
        .collect();
    let now = unico_server::state::now_ms();
    let per_line = |secs: f64| secs * 1e9 / text.len() as f64;

    let mut parse = Vec::new();
    let mut prepare = Vec::new();
    for _ in 0..ROUNDS {
        let mut names = unico_core::EventNames::default();
        // In batches, as the import's parser sends them to the writer.
        let t = Instant::now();
        let mut parsed: Vec<Vec<NewEvent>> = Vec::new();
        for chunk in text.chunks(BATCH) {
            let mut batch = Vec::with_capacity(BATCH);
            for line in chunk {
                batch.extend(unico_server::routes::events::plain_event(
                    line, now, &mut names,
                ));
            }
            parsed.push(batch);
        }
        parse.push(per_line(t.elapsed().as_secs_f64()));
        let count: usize = parsed.iter().map(Vec::len).sum();
        assert_eq!(count, text.len(), "every line is a plain event");

        // Customers numbered as a store would.
        let mut customer = 0i64;
        let mut batches = Vec::new();
        let mut id = 0i64;
        for batch in parsed {
            let stored: Vec<StoredEvent> = batch
                .iter()
                .enumerate()
                .map(|(i, e)| {
                    if i == 0 || batch[i - 1].customer_id != e.customer_id {
                        customer += 1;
                    }
                    id += 1;
                    StoredEvent {
                        index: i as u32,
                        id,
                        customer,
                    }
                })
                .collect();
            batches.push((batch, stored));
        }
        let t = Instant::now();
        let mut preparer = Box::new(unico_server::prepare::Preparer::start(1).expect("a thread"));
        for (batch, stored) in batches {
            preparer.written(batch, stored);
        }
        let prepared = preparer.finish();
        prepare.push(per_line(t.elapsed().as_secs_f64()));
        assert!(prepared.is_some());
    }
    println!(
        "{} lines: parse {:.0} ns/line, prepare {:.0} ns/line (medians of {ROUNDS})",
        text.len(),
        median(parse),
        median(prepare)
    );
}
