//! The segment engines against the store they follow: random sequences of single writes,
//! deletes, imports (small ones announced customer by customer, large ones as a bulk
//! change that makes the engine rebuild), imports that run while other threads write and
//! delete, restarts (from a snapshot caught up from the change log, or from a scan) and
//! the log pruned under the engines. After every step, every count and
//! member list the engine gives equals the reference evaluator run over the store's own
//! scan of its customers.
//!
//! `PROPTEST_CASES=500 cargo test -p unico-server --release --test engine_differential`
//! runs a longer campaign.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use jiff::tz::TimeZone;
use proptest::prelude::*;
use unico_core::{
    AppId, AppName, CustomerId, FieldChange, FieldDef, FieldName, FieldType, TimeZoneName, Value,
};
use unico_filter::{EvalContext, Filter, FilterInput, matches};
use unico_server::engines::Engines;
use unico_store::postgres::testing::TestDatabase;
use unico_store::{ImportBatch, PostgresStore, SqliteStore, Store, UpsertItem};

const NOW: i64 = 1_800_000_000_000;
/// Imports of more customers than this reach the engine as one bulk change.
const INCREMENTAL: u64 = 3;
const CUSTOMERS: u8 = 24;

const FILTERS: [&str; 10] = [
    "v exists",
    "not v exists",
    "v = \"a1\"",
    "v starts_with \"a\"",
    "v in (\"a0\", \"b2\") or n = 3",
    "n > 0",
    "n <= -2 and v exists",
    "customerId starts_with \"c1\"",
    "customerId = \"c7\"",
    "not (customerId ends_with \"3\" or n < 1)",
];

/// One customer's write: which customer, and its new `v` and `n` (`None` removes).
#[derive(Debug, Clone)]
struct Row {
    k: u8,
    v: Option<u8>,
    n: Option<i8>,
}

#[derive(Debug, Clone)]
enum Op {
    Write(Row),
    Delete(u8),
    Import {
        rows: Vec<Row>,
        keep: bool,
    },
    /// An import while each of the other threads writes and deletes.
    Concurrent {
        import: Vec<Row>,
        threads: Vec<Vec<Option<Row>>>,
    },
    Restart {
        snapshot: bool,
    },
    /// The log pruned to its newest entry (older snapshots become unusable).
    PruneLog,
}

fn row() -> impl Strategy<Value = Row> {
    (
        0..CUSTOMERS,
        prop::option::weighted(0.8, 0u8..6),
        prop::option::weighted(0.7, -4i8..6),
    )
        .prop_map(|(k, v, n)| Row { k, v, n })
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => row().prop_map(Op::Write),
        2 => (0..CUSTOMERS).prop_map(Op::Delete),
        3 => (prop::collection::vec(row(), 1..12), prop::bool::weighted(0.85))
            .prop_map(|(rows, keep)| Op::Import { rows, keep }),
        3 => (
            prop::collection::vec(row(), 4..16),
            prop::collection::vec(
                prop::collection::vec(prop::option::weighted(0.8, row()), 1..12),
                1..4,
            ),
        )
            .prop_map(|(import, threads)| Op::Concurrent { import, threads }),
        2 => any::<bool>().prop_map(|snapshot| Op::Restart { snapshot }),
        1 => Just(Op::PruneLog),
    ]
}

struct World {
    backend: Backend,
    store: Arc<dyn Store>,
    engines: Arc<Engines>,
    app: AppId,
    v: FieldDef,
    n: FieldDef,
}

/// Where the store lives: the embedded file in the case's directory, or a PostgreSQL
/// database made for the case.
#[derive(Clone)]
enum Backend {
    Sqlite,
    Postgres(String),
}

fn open(dir: &Path, backend: &Backend) -> (Arc<dyn Store>, Arc<Engines>) {
    let store: Arc<dyn Store> = match backend {
        Backend::Sqlite => Arc::new(
            SqliteStore::open(&dir.join("db"))
                .unwrap()
                .with_incremental_import_limit(INCREMENTAL),
        ),
        Backend::Postgres(url) => Arc::new(
            PostgresStore::connect(url)
                .unwrap()
                .with_incremental_import_limit(INCREMENTAL),
        ),
    };
    let engines = Engines::attach(&store);
    engines.enable_snapshots(dir.join("engines")).unwrap();
    (store, engines)
}

fn cid(k: u8) -> CustomerId {
    CustomerId::parse(&format!("c{k}")).unwrap()
}

impl World {
    fn new(dir: &Path, backend: Backend) -> World {
        let (store, engines) = open(dir, &backend);
        let app = store
            .create_app(&AppName::parse("a").unwrap(), &TimeZoneName::utc(), NOW)
            .unwrap()
            .id;
        let field = |name: &str, ty| {
            store
                .create_field(app, &FieldName::parse(name).unwrap(), ty, NOW)
                .unwrap()
        };
        let v = field("v", FieldType::String);
        let n = field("n", FieldType::Number);
        // The engine exists before any data, as after `unico serve` starts.
        engines.index(app).unwrap();
        World {
            backend,
            store,
            engines,
            app,
            v,
            n,
        }
    }

    fn item(&self, row: &Row) -> UpsertItem {
        UpsertItem {
            customer_id: cid(row.k),
            changes: vec![
                FieldChange {
                    field: self.v.id,
                    value: row
                        .v
                        .map(|v| Value::String(format!("{}{v}", ["a", "b"][v as usize % 2]))),
                },
                FieldChange {
                    field: self.n.id,
                    value: row.n.map(|n| Value::Number(f64::from(n))),
                },
            ],
        }
    }

    fn write(&self, row: &Row) {
        let outcomes = self
            .store
            .upsert_batch(self.app, vec![self.item(row)], NOW)
            .unwrap();
        assert!(outcomes.iter().all(Result::is_ok), "{outcomes:?}");
    }

    fn delete(&self, k: u8) {
        // A customer that does not exist is simply not there to delete.
        let _ = self.store.delete_customer(self.app, &cid(k));
    }

    fn import(&self, rows: &[Row], keep: bool) {
        let items: Vec<UpsertItem> = rows.iter().map(|r| self.item(r)).collect();
        let batches = items
            .chunks(5)
            .map(|c| ImportBatch::Items(c.to_vec()))
            .chain([ImportBatch::End { keep }])
            .collect::<Vec<_>>();
        let counts = self
            .store
            .run_import(
                self.app,
                Box::new(batches.into_iter()),
                NOW,
                Arc::new(AtomicU64::new(0)),
                None,
            )
            .unwrap();
        assert_eq!(counts.kept, keep);
    }

    fn apply(&mut self, op: &Op, dir: &Path) {
        match op {
            Op::Write(row) => self.write(row),
            Op::Delete(k) => self.delete(*k),
            Op::Import { rows, keep } => self.import(rows, *keep),
            Op::Concurrent { import, threads } => {
                let world = &*self;
                std::thread::scope(|s| {
                    for ops in threads {
                        s.spawn(move || {
                            for op in ops {
                                match op {
                                    Some(row) => world.write(row),
                                    None => world.delete(row_k(ops)),
                                }
                            }
                        });
                    }
                    world.import(import, true);
                });
            }
            Op::PruneLog => {
                self.store.prune_log(i64::MAX).unwrap();
            }
            Op::Restart { snapshot } => {
                // Wait for any rebuild, so that nothing holds the store while it closes.
                self.engines.index(self.app).unwrap();
                if *snapshot {
                    self.engines.save_snapshots();
                }
                let (store, engines) = open(dir, &self.backend);
                // The old store closes (its writer finishes) before the new one is used.
                self.store = store;
                self.engines = engines;
                self.engines.index(self.app).unwrap();
            }
        }
    }

    /// Every filter's count and members, engine against the reference over the store.
    fn check(&self, after: &Op) -> Result<(), TestCaseError> {
        let schema = self.store.schema(self.app).unwrap();
        let mut stored = Vec::new();
        self.store
            .scan_customers(self.app, &mut |c| {
                stored.push(c);
                true
            })
            .unwrap();
        let ctx = EvalContext::new(NOW, TimeZone::UTC);
        for text in FILTERS {
            let filter = Filter::parse(FilterInput::Text(text), &schema).unwrap();
            let mut want: Vec<i64> = stored
                .iter()
                .filter(|c| matches(&filter, c, &ctx))
                .map(|c| c.id)
                .collect();
            want.sort_unstable();
            let (count, mut got) = self
                .engines
                .query(self.app, NOW, |index, ctx| {
                    let members = index.members(&filter, ctx);
                    (
                        index.count(&filter, ctx),
                        index.page_by_customer_id(&members, None, false, usize::MAX),
                    )
                })
                .unwrap();
            got.sort_unstable();
            prop_assert_eq!(
                count,
                want.len() as u64,
                "count of {} after {:?}",
                text,
                after
            );
            prop_assert_eq!(&got, &want, "members of {} after {:?}", text, after);
        }
        Ok(())
    }
}

/// The customer a thread's delete step removes: the one its first write touched (a
/// thread's steps are its own customers' story).
fn row_k(ops: &[Option<Row>]) -> u8 {
    ops.iter().flatten().next().map_or(0, |r| r.k)
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(48)
}

fn run(ops: &[Op], backend: Backend) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let mut world = World::new(dir.path(), backend);
    for op in ops {
        world.apply(op, dir.path());
        world.check(op)?;
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn the_engine_equals_the_store_after_every_step(ops in prop::collection::vec(op(), 1..14)) {
        run(&ops, Backend::Sqlite)?;
    }
}

proptest! {
    // Each case makes a database of its own: fewer cases than on the embedded store.
    #![proptest_config(ProptestConfig { cases: cases() / 3 + 1, ..ProptestConfig::default() })]

    /// The same on PostgreSQL (the server `.ci/run` starts): the engines follow its log.
    #[test]
    fn on_postgres_the_engine_equals_the_store_after_every_step(ops in prop::collection::vec(op(), 1..14)) {
        let db = TestDatabase::create();
        run(&ops, Backend::Postgres(db.url()))?;
    }
}
