//! The store's share of an import: 1M customers written through `run_import` into a fresh
//! store (no CSV parsing), durable. `cargo bench -p unico-store --bench bulk_import`.
//!
//! The customers look like W1's (`gen_customers.py`): ~90 % of the customerIds are `c` + 9
//! increasing digits, ~10 % are email addresses, interleaved; 7 string values (an email,
//! names and a few short codes), 3 numbers and 2 datetimes each. As in a real import, the
//! batches are built on another thread (standing in for the server's parser) and handed
//! over through a bounded channel.
//!
//! Prints the wall time, the process's CPU time and the producer thread's CPU time (Linux):
//! on a shared machine the CPU time of the store's side (process − producer: its writer and
//! the import's preparing thread) is the steadier number. `CUSTOMERS=200000` for a shorter run; `REPEAT=1` imports the same customers a
//! second time into the same application (every row an update).
//!
//! `POSTGRES=postgres://postgres@127.0.0.1:5432/postgres` (an administrative URL) runs it on
//! the PostgreSQL backend instead, in a database made for the run and dropped after; the
//! process CPU time then leaves out the database server's.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use unico_core::{
    AppId, AppName, CustomerId, FieldChange, FieldDef, FieldName, FieldType, TimeZoneName, Value,
};
use unico_store::{ImportBatch, PostgresStore, SqliteStore, Store, UpsertItem};

const BATCH: usize = 8192;

/// CPU time of this process (all threads), from `/proc/self/stat`.
fn process_cpu() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let after = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(Duration::from_millis(ticks * 10))
}

/// CPU time of the calling thread, from `/proc/thread-self/schedstat`.
fn thread_cpu() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    Some(Duration::from_nanos(
        stat.split_whitespace().next()?.parse().ok()?,
    ))
}

/// A small deterministic generator (xorshift64*), so the bench needs no crate.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

const FIRST: [&str; 8] = [
    "antonio", "maria", "jose", "lucia", "enzo", "carmen", "david", "laura",
];
const DOMAINS: [&str; 4] = ["gmail.com", "hotmail.com", "yahoo.es", "outlook.com"];
const CITIES: [&str; 6] = [
    "Madrid",
    "Barcelona",
    "Málaga",
    "A Coruña",
    "Sevilla",
    "Lima",
];
const TIERS: [&str; 4] = ["bronze", "silver", "gold", "platinum"];

fn customer(rng: &mut Rng, num: u64, fields: &[FieldDef]) -> UpsertItem {
    let first = FIRST[rng.below(8) as usize];
    let email = format!(
        "{first}.x{}{num}@{}",
        rng.below(8000),
        DOMAINS[rng.below(4) as usize]
    );
    let customer_id = if rng.below(10) == 0 {
        email.clone()
    } else {
        format!("c{num:09}")
    };
    let strings = [
        email,
        first.to_owned(),
        format!("Last{}", rng.below(8000)),
        CITIES[rng.below(6) as usize].to_owned(),
        "ES".to_owned(),
        ["F", "M", "X"][rng.below(3) as usize].to_owned(),
        TIERS[rng.below(4) as usize].to_owned(),
    ];
    let mut strings = strings.into_iter();
    let changes = fields
        .iter()
        .map(|f| FieldChange {
            field: f.id,
            value: Some(match f.field_type {
                FieldType::String => Value::String(strings.next().unwrap_or_default()),
                FieldType::Number => Value::Number(rng.below(5_000_000) as f64 / 100.0),
                _ => Value::Datetime(1_500_000_000_000 + rng.below(300_000_000_000) as i64),
            }),
        })
        .collect();
    UpsertItem {
        customer_id: CustomerId::parse(&customer_id).unwrap(),
        changes,
        subscriptions: Vec::new(),
    }
}

/// Imports `customers` generated customers on a producer thread; answers the wall time,
/// the process CPU time and the producer's CPU time.
fn import(
    store: &dyn Store,
    app: AppId,
    fields: &[FieldDef],
    customers: usize,
) -> (Duration, Option<Duration>, Option<Duration>) {
    let (tx, rx) = std::sync::mpsc::sync_channel::<ImportBatch>(4);
    let fields = fields.to_vec();
    let cpu_before = process_cpu();
    let started = Instant::now();
    let producer = std::thread::spawn(move || {
        let cpu = thread_cpu();
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let mut num = 100_000u64;
        let mut made = 0;
        while made < customers {
            let n = BATCH.min(customers - made);
            let batch = (0..n)
                .map(|_| {
                    num += 1 + rng.below(3);
                    customer(&mut rng, num, &fields)
                })
                .collect();
            made += n;
            if tx.send(ImportBatch::Items(batch)).is_err() {
                break;
            }
        }
        let _ = tx.send(ImportBatch::End { keep: true });
        cpu.zip(thread_cpu()).map(|(a, b)| b.saturating_sub(a))
    });
    let counts = store
        .run_import(
            app,
            Box::new(rx.into_iter()),
            1,
            Arc::new(AtomicU64::new(0)),
            None,
        )
        .unwrap();
    let took = started.elapsed();
    let producer_cpu = producer.join().unwrap();
    assert!(counts.kept);
    assert_eq!((counts.created + counts.updated) as usize, customers);
    let cpu = cpu_before
        .zip(process_cpu())
        .map(|(a, b)| b.saturating_sub(a));
    (took, cpu, producer_cpu)
}

fn main() {
    if std::env::args().any(|a| a == "--list" || a == "--test") {
        return;
    }
    let customers: usize = std::env::var("CUSTOMERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let repeat = std::env::var("REPEAT").is_ok_and(|v| v == "1");
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let postgres = std::env::var("POSTGRES")
        .ok()
        .map(|admin| BenchDb::create(&admin));
    let store: Box<dyn Store> = match &postgres {
        Some(db) => Box::new(PostgresStore::connect(&db.url).unwrap()),
        None => Box::new(SqliteStore::open(dir.path()).unwrap()),
    };
    let app = store
        .create_app(&AppName::parse("bench").unwrap(), &TimeZoneName::utc(), 0)
        .unwrap()
        .id;
    let mut fields = Vec::new();
    for (i, ty) in [FieldType::String; 7]
        .into_iter()
        .chain([FieldType::Number; 3])
        .chain([FieldType::Datetime; 2])
        .enumerate()
    {
        fields.push(
            store
                .create_field(app, &FieldName::parse(&format!("f{i}")).unwrap(), ty, 0)
                .unwrap(),
        );
    }
    let rounds: &[&str] = if repeat {
        &["fresh", "again"]
    } else {
        &["fresh"]
    };
    for round in rounds {
        let (took, cpu, producer) = import(store.as_ref(), app, &fields, customers);
        let secs = took.as_secs_f64();
        let cpu_text = match (cpu, producer) {
            (Some(cpu), Some(producer)) => format!(
                "; cpu {:.2} s, of which the store {:.2} s",
                cpu.as_secs_f64(),
                cpu.saturating_sub(producer).as_secs_f64()
            ),
            _ => String::new(),
        };
        println!(
            "bulk import on {} ({round}): {customers} customers × 12 values in {secs:.2} s ({:.0} customers/s), durable{cpu_text}",
            store.backend(),
            customers as f64 / secs
        );
    }
    drop(store);
    drop(postgres);
}

/// A database made for one run on a PostgreSQL server, dropped at the end.
struct BenchDb {
    admin: String,
    name: String,
    url: String,
}

impl BenchDb {
    fn create(admin: &str) -> BenchDb {
        let name = format!("unico_bench_{}", std::process::id());
        let mut client = postgres::Client::connect(admin, postgres::NoTls).unwrap();
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .unwrap();
        let config: postgres::Config = admin.parse().unwrap();
        let mut url = format!("dbname={name}");
        if let Some(user) = config.get_user() {
            url.push_str(&format!(" user={user}"));
        }
        for host in config.get_hosts() {
            if let postgres::config::Host::Tcp(h) = host {
                url.push_str(&format!(" host={h}"));
            }
        }
        if let Some(port) = config.get_ports().first() {
            url.push_str(&format!(" port={port}"));
        }
        BenchDb {
            admin: admin.to_owned(),
            name,
            url,
        }
    }
}

impl Drop for BenchDb {
    fn drop(&mut self) {
        if let Ok(mut client) = postgres::Client::connect(&self.admin, postgres::NoTls) {
            let _ = client.batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ));
        }
    }
}
