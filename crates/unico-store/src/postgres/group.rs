//! Group commit: single-customer writes queued to a few writer connections, each of which
//! commits many waiting writes in one transaction with one log append and one `COMMIT`.
//!
//! **Why.** The log's order is its commit order because every writing transaction holds
//! the `log_head` row from its append through its `COMMIT` (see `log.rs`). Committed one
//! by one, writes therefore take turns for the whole of their commit (its WAL flush) and
//! share none: about a thousand commits a second here, whatever the number of clients.
//! A group pays for the append, the head's lock and the flush once for all its writes.
//!
//! **Customer writes, set-based.** Most queued writes change customers that exist (a
//! PATCH, an upsert of a known customerId). A group locks and reads all of those at once
//! (one `LATERAL` lookup per application, in customerId order, so groups lock rows in one
//! order), applies each write in memory in the group's order, and rewrites the changed
//! rows with one statement: a handful of statements per group, whatever its size, instead
//! of several per write. A write whose customer is not found that way (a new customer, an
//! alias of a merged one, one missing) runs as any other write, below, after them.
//!
//! **One write, one savepoint.** Every other write of a group runs under a savepoint of
//! its own: a write that fails is rolled back to it and answered with its error, and the
//! others go on. A write's bookkeeping (its log changes, value-count changes and the application
//! locks it took) is rewound with it ([`Wx::rewind`]). Value counts are applied once, after
//! every write of the group and before the append, so the group still takes its locks in
//! the order `writes.rs` documents for one write: application locks, customer rows, count
//! rows, `log_head`.
//!
//! **Never waiting long while holding others' rows.** A group holds the rows of all its
//! writes, so a write that waits for a lock must not hold the group back nor form a cycle
//! with another transaction (an import or an event batch locking customers in another
//! order; another server's group). The set-based part waits for nothing: it takes the
//! application's lock only if it is free, and skips customers another transaction holds
//! (`SKIP LOCKED`), leaving their writes to the one-by-one part. There every lock is
//! awaited for at most [`LOCK_WAIT`], far below PostgreSQL's `deadlock_timeout` (1 s by
//! default), so when a cycle forms the group is the one that gives up, never an import
//! (which is not run again). A write that timed out, or that PostgreSQL aborted, is rolled back to its
//! savepoint and run again on its own, in a transaction of its own as before group commit
//! existed, where it may wait as long as it needs. Count rows and the append wait without
//! limit: whoever holds them is at the end of its transaction and waits for no customer.
//!
//! **Bounds.** A group takes at most [`GROUP_MAX`] writes: each savepoint that writes is a
//! subtransaction, and past 64 of them in one transaction PostgreSQL's snapshots of every
//! session overflow their subtransaction cache and read `pg_subtrans` instead. The queue
//! itself is bounded by the callers: each waits for its answer, and callers are blocking
//! threads of a bounded pool.

use std::any::Any;
use std::collections::{HashMap, VecDeque};
use std::sync::mpsc::{SyncSender, sync_channel};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use postgres::error::SqlState;
use unico_core::customer::apply_changes;
use unico_core::{AppId, Customer, CustomerId, FieldChange};

use super::conn::{self, Conn, Db, Fail, Res};
use super::log;
use super::rows;
use super::writes::{self, Mode, Wx};
use crate::changes::{Before, Change};
use crate::codec;
use crate::error::StoreError;
use crate::live::check_changes;
use crate::log_row::Head;

/// Writes one group commits at most (see the module docs).
pub const GROUP_MAX: usize = 60;
/// Writer connections, each committing its own groups: while one waits for its `COMMIT`,
/// the next runs its writes.
pub const WRITERS: usize = 3;
/// How long a write inside a group waits for a lock before it is run on its own instead.
pub const LOCK_WAIT: Duration = Duration::from_millis(50);

/// A write as a group runs it: it may run more than once (again on its own after a lock
/// timeout), so it must decide everything from what it reads in its transaction.
pub type Op = Box<dyn FnMut(&mut Wx<'_, '_>) -> Res<Box<dyn Any + Send>> + Send>;

/// What became of a queued write.
pub enum Outcome {
    /// Committed; its answer.
    Done(Box<dyn Any + Send>),
    /// Refused or failed; nothing of it was committed.
    Failed(StoreError),
    /// Not committed: it must run in a transaction of its own (it waited too long for a
    /// lock, was aborted to break a deadlock, or its group could not commit before it).
    Alone(Op),
}

/// A write of one customer, as `create_customer`, `update_customer` and the like ask it.
pub struct CustomerWrite {
    pub app: AppId,
    pub customer_id: CustomerId,
    pub changes: Vec<FieldChange>,
    pub now: i64,
    pub mode: Mode,
}

impl CustomerWrite {
    /// The write as one statement after another: how it runs when the group's set-based
    /// path cannot take it, or on its own. Answers the [`Customer`] as written.
    pub fn into_op(self) -> Op {
        let CustomerWrite {
            app,
            customer_id,
            changes,
            now,
            mode,
        } = self;
        Box::new(move |w: &mut Wx<'_, '_>| {
            let live = w.share_app(app)?;
            check_changes(&live, &changes)?;
            let (outcome, before) = writes::write(
                &mut w.db,
                app,
                &customer_id,
                &changes,
                now,
                mode,
                &mut w.deltas,
            )?;
            w.emit(Change::Customer {
                app,
                customer: outcome.customer.clone(),
                before,
            });
            Ok(Box::new(outcome.customer) as Box<dyn Any + Send>)
        })
    }
}

/// What a group is asked to run.
pub enum Work {
    Customer(CustomerWrite),
    Op(Op),
}

impl Work {
    fn into_op(self) -> Op {
        match self {
            Work::Customer(c) => c.into_op(),
            Work::Op(op) => op,
        }
    }
}

struct Job {
    work: Work,
    reply: SyncSender<Outcome>,
}

#[derive(Default)]
struct Queue {
    jobs: VecDeque<Job>,
    stop: bool,
}

struct Shared {
    queue: Mutex<Queue>,
    wake: Condvar,
}

/// The writer threads and their queue; they stop when this drops.
pub struct Group {
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
}

impl Group {
    pub fn start(config: &postgres::Config, head: &Arc<Head>) -> Result<Group, StoreError> {
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue::default()),
            wake: Condvar::new(),
        });
        let mut group = Group {
            shared: shared.clone(),
            threads: Vec::with_capacity(WRITERS),
        };
        for i in 0..WRITERS {
            let shared = shared.clone();
            let head = head.clone();
            let mut config = config.clone();
            config.application_name("unico-writer");
            let thread = std::thread::Builder::new()
                .name(format!("unico-pg-writer-{i}"))
                .spawn(move || writer(&shared, &config, &head))
                .map_err(|e| StoreError::Internal(format!("cannot start a writer: {e}")))?;
            group.threads.push(thread);
        }
        Ok(group)
    }

    /// Queues `work` and waits until its group committed (or gave it back).
    pub fn run(&self, work: Work) -> Result<Outcome, StoreError> {
        let (reply, answer) = sync_channel(1);
        {
            let mut queue = self.shared.queue.lock().map_err(|_| poisoned())?;
            queue.jobs.push_back(Job { work, reply });
        }
        self.shared.wake.notify_one();
        answer
            .recv()
            .map_err(|_| StoreError::Internal("a writer stopped without answering".into()))
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        if let Ok(mut queue) = self.shared.queue.lock() {
            queue.stop = true;
        }
        self.shared.wake.notify_all();
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

fn poisoned() -> StoreError {
    StoreError::Internal("a lock was poisoned by an earlier panic".into())
}

/// One writer thread: takes what is waiting (up to [`GROUP_MAX`]) and commits it as one
/// group, until the store drops. Its connection is opened on first need and again after
/// it was lost.
fn writer(shared: &Shared, config: &postgres::Config, head: &Head) {
    let mut conn: Option<Conn> = None;
    loop {
        let jobs = {
            let Ok(mut queue) = shared.queue.lock() else {
                return;
            };
            loop {
                if !queue.jobs.is_empty() {
                    break;
                }
                if queue.stop {
                    return;
                }
                queue = match shared.wake.wait(queue) {
                    Ok(q) => q,
                    Err(_) => return,
                };
            }
            let n = queue.jobs.len().min(GROUP_MAX);
            let jobs: Vec<Job> = queue.jobs.drain(..n).collect();
            if !queue.jobs.is_empty() {
                // More than one group waits: let another writer start on the next.
                shared.wake.notify_one();
            }
            jobs
        };
        if conn.as_ref().is_none_or(|c| c.client.is_closed()) {
            match conn::connect(config) {
                Ok(client) => {
                    conn = Some(Conn {
                        client,
                        stmts: HashMap::new(),
                    })
                }
                Err(_) => {
                    // Each write then meets the database's state on its own connection.
                    for job in jobs {
                        let _ = job.reply.send(Outcome::Alone(job.work.into_op()));
                    }
                    continue;
                }
            }
        }
        let Some(c) = conn.as_mut() else { continue };
        for (reply, outcome) in commit(c, jobs, head) {
            let _ = reply.send(outcome);
        }
    }
}

/// What one write of a group came to before the commit.
enum Ran {
    Ok(Box<dyn Any + Send>),
    Failed(StoreError),
    /// To run again on its own.
    Alone,
}

/// A job while its group runs: `ran` is `None` until some path has run it.
struct Slot {
    job: Job,
    ran: Option<Ran>,
}

/// Whether a write that failed inside a group should run again on its own: it waited
/// longer than [`LOCK_WAIT`] for a lock, or would be retried anyway (deadlock,
/// serialization failure, a decision overtaken by a concurrent write).
fn run_alone(fail: &Fail) -> bool {
    fail.retryable()
        || matches!(fail, Fail::Db(e) if e.code() == Some(&SqlState::LOCK_NOT_AVAILABLE))
}

/// What a [`Work`] taken out of its slot leaves there: it fails loudly if ever run.
fn taken(_: &mut Wx<'_, '_>) -> Res<Box<dyn Any + Send>> {
    Err(StoreError::Internal("a grouped write was run after it was taken".into()).into())
}

fn take(work: &mut Work) -> Work {
    std::mem::replace(work, Work::Op(Box::new(taken)))
}

/// Runs `jobs` in one transaction (customer writes set-based, then every other write under
/// its own savepoint), appends their changes and commits; answers each job's outcome, and
/// moves the head past the group's entries.
fn commit(c: &mut Conn, jobs: Vec<Job>, head: &Head) -> Vec<(SyncSender<Outcome>, Outcome)> {
    let mut slots: Vec<Slot> = jobs
        .into_iter()
        .map(|job| Slot { job, ran: None })
        .collect();
    // Set once `COMMIT` is sent: a failure from then on leaves the group's fate unknown.
    let mut committing = false;
    let committed = (|| -> Res<Option<u64>> {
        let Conn { client, stmts } = c;
        let mut tx = client.transaction()?;
        let changes = {
            let mut w = Wx::new(Db::new(&mut tx, stmts));
            set_based(&mut w, &mut slots)?;
            one_by_one(&mut w, &mut slots)?;
            // Count rows and `log_head` are awaited without limit: whoever holds them is at
            // the end of its transaction and waits for no customer row.
            writes::flush_counts(std::mem::take(&mut w.deltas), &mut w.db)?;
            w.changes
        };
        let seq = log::append(&mut Db::new(&mut tx, stmts), &changes)?;
        committing = true;
        head.committing(seq, || tx.commit())?;
        Ok(seq)
    })();
    let failure = match committed {
        Ok(seq) => {
            if let Some(seq) = seq {
                head.advance(seq);
            }
            None
        }
        Err(fail) => {
            let err = fail.into_store();
            tracing::warn!(error = %err, "a group of writes could not commit");
            Some(err)
        }
    };
    slots
        .into_iter()
        .map(|Slot { job, ran }| {
            let outcome = match (ran, &failure) {
                (Some(Ran::Ok(answer)), None) => Outcome::Done(answer),
                (Some(Ran::Failed(e)), None) => Outcome::Failed(e),
                // A failed `COMMIT` leaves the writes' fate unknown: they get the failure,
                // as one write's failed `COMMIT` would have told them.
                (Some(Ran::Ok(_)), Some(err)) if committing => Outcome::Failed(err.clone()),
                // Nothing of the group committed: every write runs again on its own (one
                // refused inside the group may have been refused for what another, now
                // rolled back, did).
                _ => Outcome::Alone(job.work.into_op()),
            };
            (job.reply, outcome)
        })
        .collect()
}

/// The customer writes of a group whose customers exist, per application: the application
/// locked and its fields read once, the customers locked and read in one statement (in
/// customerId order), each write applied in memory in the group's order, and the changed
/// rows rewritten by one statement. Writes it leaves (`ran` still `None`) run one by one.
fn set_based(w: &mut Wx<'_, '_>, slots: &mut [Slot]) -> Res<()> {
    let mut apps: Vec<AppId> = Vec::new();
    for slot in slots.iter() {
        if let Work::Customer(c) = &slot.job.work
            && !apps.contains(&c.app)
        {
            apps.push(c.app);
        }
    }
    for app in apps {
        // Nothing here waits for a lock: an application whose lock is not free now (a schema
        // change under way), or that is gone, and customers another transaction holds, are
        // left to the one-by-one path, which waits for them (within bounds) and answers each
        // as a write on its own would be.
        let free: bool =
            w.db.query_one(
                "SELECT pg_try_advisory_xact_lock_shared($1, $2)",
                &[&writes::APP_LOCK, &writes::lock_key(app)],
            )?
            .try_get(0)?;
        if !free {
            continue;
        }
        let live = match w.share_app_locked(app) {
            Ok(live) => live,
            Err(Fail::Store(_)) => continue,
            Err(e) => return Err(e),
        };
        let mut keys: Vec<&str> = Vec::new();
        for slot in slots.iter_mut() {
            let Work::Customer(c) = &slot.job.work else {
                continue;
            };
            if c.app != app {
                continue;
            }
            match check_changes(&live, &c.changes) {
                Ok(()) => keys.push(c.customer_id.as_str()),
                Err(e) => slot.ran = Some(Ran::Failed(e)),
            }
        }
        keys.sort_unstable();
        keys.dedup();
        let rows = w.db.query(
            "SELECT c.id, c.customer_id, c.created_at, c.updated_at, c.data
             FROM unnest($2::text[]) AS k(customer_id)
             CROSS JOIN LATERAL (SELECT id, customer_id, created_at, updated_at, data
                 FROM customers WHERE app_id = $1 AND customer_id = k.customer_id
                 FOR NO KEY UPDATE SKIP LOCKED) c",
            &[&app.0, &keys],
        )?;
        let mut found: HashMap<String, Customer> = HashMap::with_capacity(rows.len());
        for row in &rows {
            let customer = rows::customer(row)?;
            found.insert(customer.customer_id.as_str().to_owned(), customer);
        }
        let mut changed: Vec<i64> = Vec::new();
        for slot in slots.iter_mut() {
            let Work::Customer(c) = &slot.job.work else {
                continue;
            };
            if c.app != app || slot.ran.is_some() {
                continue;
            }
            let Some(customer) = found.get_mut(c.customer_id.as_str()) else {
                continue;
            };
            if c.mode == Mode::Create {
                slot.ran = Some(Ran::Failed(StoreError::Conflict(format!(
                    "customer \"{}\" exists already",
                    unico_core::value::excerpt(c.customer_id.as_str())
                ))));
                continue;
            }
            let before = customer.fields.clone();
            let applied = apply_changes(&mut customer.fields, &c.changes);
            if applied.changed {
                customer.updated_at = c.now.max(customer.updated_at);
                changed.push(customer.id);
                for (field, d) in applied.presence {
                    w.deltas.add(field, d);
                }
            }
            w.emit(Change::Customer {
                app,
                customer: customer.clone(),
                before: Before::Values(before),
            });
            slot.ran = Some(Ran::Ok(Box::new(customer.clone())));
        }
        if changed.is_empty() {
            continue;
        }
        let (mut ids, mut updated, mut data) = (Vec::new(), Vec::new(), Vec::new());
        for customer in found.values().filter(|c| changed.contains(&c.id)) {
            ids.push(customer.id);
            updated.push(customer.updated_at);
            data.push(codec::encode(&customer.fields));
        }
        w.db.execute(
            "UPDATE customers c SET updated_at = u.updated_at, data = u.data
             FROM unnest($1::bigint[], $2::bigint[], $3::bytea[]) AS u(id, updated_at, data)
             WHERE c.id = u.id",
            &[&ids, &updated, &data],
        )?;
    }
    Ok(())
}

/// Runs the writes no path has run yet, each under its own savepoint: one that fails is
/// rolled back alone, with its bookkeeping.
fn one_by_one(w: &mut Wx<'_, '_>, slots: &mut [Slot]) -> Res<()> {
    let mut first = true;
    for slot in slots.iter_mut().filter(|s| s.ran.is_none()) {
        w.db.batch(&if first {
            format!(
                "SET LOCAL lock_timeout = {}; SAVEPOINT one",
                LOCK_WAIT.as_millis()
            )
        } else {
            "RELEASE SAVEPOINT one; SAVEPOINT one".to_owned()
        })?;
        first = false;
        if let Work::Customer(_) = slot.job.work {
            slot.job.work = Work::Op(take(&mut slot.job.work).into_op());
        }
        let Work::Op(op) = &mut slot.job.work else {
            return Err(StoreError::Internal("a customer write was not made an op".into()).into());
        };
        let mark = w.mark();
        slot.ran = Some(match op(w) {
            Ok(answer) => Ran::Ok(answer),
            Err(fail) => {
                w.rewind(mark);
                // If the connection is gone this fails too, and nothing of the group commits.
                w.db.batch("ROLLBACK TO SAVEPOINT one")?;
                if run_alone(&fail) {
                    Ran::Alone
                } else {
                    Ran::Failed(fail.into_store())
                }
            }
        });
    }
    if !first {
        w.db.batch("RELEASE SAVEPOINT one; SET LOCAL lock_timeout = 0")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use unico_core::{AppName, CustomerId, FieldChange, FieldName, FieldType, TimeZoneName, Value};

    use super::*;
    use crate::changes::{Before, Change};
    use crate::postgres::testing::TestDatabase;
    use crate::postgres::writes::Mode;
    use crate::{PostgresStore, Store};

    fn id(s: &str) -> CustomerId {
        CustomerId::parse(s).unwrap()
    }

    /// A job that writes `customer` with `value` in field `field`, then fails with `fail`
    /// if one is given (after its writes, so they must be rolled back).
    fn job(
        app: AppId,
        field: unico_core::FieldId,
        customer: &str,
        value: f64,
        fail: Option<fn() -> Fail>,
    ) -> (Job, std::sync::mpsc::Receiver<Outcome>) {
        let customer = id(customer);
        let op: Op = Box::new(move |w: &mut Wx<'_, '_>| {
            w.share_app(app)?;
            let changes = [FieldChange {
                field,
                value: Some(Value::Number(value)),
            }];
            let (outcome, before) = writes::write(
                &mut w.db,
                app,
                &customer,
                &changes,
                1,
                Mode::Upsert,
                &mut w.deltas,
            )?;
            w.emit(Change::Customer {
                app,
                customer: outcome.customer.clone(),
                before,
            });
            match fail {
                Some(fail) => Err(fail()),
                None => Ok(Box::new(outcome.customer.id) as Box<dyn Any + Send>),
            }
        });
        let (reply, answer) = sync_channel(1);
        (
            Job {
                work: Work::Op(op),
                reply,
            },
            answer,
        )
    }

    use unico_core::AppId;

    /// One group with writes that succeed, are refused after writing, fail in SQL, and
    /// wait for a row another session holds: only the first kind commits, each answer is
    /// its own, and the log holds exactly the committed writes, numbered one by one.
    #[test]
    fn a_failing_write_fails_alone_and_a_waiting_one_is_given_back() {
        let db = TestDatabase::create();
        let store = PostgresStore::connect(&db.url()).unwrap();
        let app = store
            .create_app(&AppName::parse("A").unwrap(), &TimeZoneName::utc(), 1)
            .unwrap()
            .id;
        let field = store
            .create_field(app, &FieldName::parse("f").unwrap(), FieldType::Number, 1)
            .unwrap()
            .id;
        store.create_customer(app, &id("held"), &[], 1).unwrap();
        let head_before = store.log_head();

        // Another session holds the row of "held" until it commits.
        let config: postgres::Config = db.url().parse().unwrap();
        let mut other = conn::connect(&config).unwrap();
        let mut holder = other.transaction().unwrap();
        holder
            .execute(
                "SELECT 1 FROM customers WHERE customer_id = 'held' FOR UPDATE",
                &[],
            )
            .unwrap();

        let refused = || Fail::Store(StoreError::Invalid("refused after writing".into()));
        let (a, a_answer) = job(app, field, "a", 1.0, None);
        let (b, b_answer) = job(app, field, "b", 2.0, Some(refused));
        let (held, held_answer) = job(app, field, "held", 3.0, None);
        let (d, d_answer) = job(app, field, "d", 4.0, None);
        // A job whose SQL fails: the transaction must stay usable after it.
        let (c, c_answer) = {
            let op: Op = Box::new(move |w: &mut Wx<'_, '_>| {
                w.db.batch("SELECT * FROM no_such_table")?;
                Ok(Box::new(0i64) as Box<dyn Any + Send>)
            });
            let (reply, answer) = sync_channel(1);
            (
                Job {
                    work: Work::Op(op),
                    reply,
                },
                answer,
            )
        };

        let head = Head::new(head_before);
        let mut conn = Conn {
            client: conn::connect(&config).unwrap(),
            stmts: HashMap::new(),
        };
        for (reply, outcome) in commit(&mut conn, vec![a, b, c, held, d], &head) {
            reply.send(outcome).unwrap();
        }
        holder.rollback().unwrap();

        let a_id = match a_answer.recv().unwrap() {
            Outcome::Done(answer) => *answer.downcast::<i64>().unwrap(),
            _ => panic!("a committed"),
        };
        assert!(matches!(
            b_answer.recv().unwrap(),
            Outcome::Failed(StoreError::Invalid(m)) if m == "refused after writing"
        ));
        assert!(matches!(
            c_answer.recv().unwrap(),
            Outcome::Failed(StoreError::Internal(m)) if m.contains("no_such_table")
        ));
        assert!(matches!(held_answer.recv().unwrap(), Outcome::Alone(_)));
        assert!(matches!(d_answer.recv().unwrap(), Outcome::Done(_)));

        // Only a and d were written, counted and logged, in the group's order.
        assert!(store.get_customer(app, &id("a")).is_ok());
        assert!(store.get_customer(app, &id("d")).is_ok());
        assert!(matches!(
            store.get_customer(app, &id("b")),
            Err(StoreError::NotFound(_))
        ));
        assert!(
            store
                .get_customer(app, &id("held"))
                .unwrap()
                .fields
                .is_empty()
        );
        let stats = store.field_stats(app).unwrap();
        assert_eq!(stats[0].value_count, 2, "b's count went with its rollback");
        assert_eq!(head.get(), head_before + 2);
        let logged: Vec<(u64, String)> = store
            .read_log(head_before, 10)
            .unwrap()
            .into_iter()
            .map(|e| match e.change {
                Change::Customer { customer, .. } => (e.seq, customer.customer_id.to_string()),
                other => panic!("unexpected {other:?}"),
            })
            .collect();
        assert_eq!(
            logged,
            vec![
                (head_before + 1, "a".to_owned()),
                (head_before + 2, "d".to_owned())
            ]
        );
        assert!(a_id > 0);
    }

    fn customer_job(
        app: AppId,
        customer: &str,
        changes: Vec<FieldChange>,
        mode: Mode,
    ) -> (Job, std::sync::mpsc::Receiver<Outcome>) {
        let (reply, answer) = sync_channel(1);
        let work = Work::Customer(CustomerWrite {
            app,
            customer_id: id(customer),
            changes,
            now: 50,
            mode,
        });
        (Job { work, reply }, answer)
    }

    fn number(field: unico_core::FieldId, v: f64) -> Vec<FieldChange> {
        vec![FieldChange {
            field,
            value: Some(Value::Number(v)),
        }]
    }

    /// Customer writes of one group whose customers exist are applied together, each on
    /// the state the one before it left (two writes of one customer); a create of an
    /// existing customer and a value of an unknown field are refused alone; a new customer
    /// and a missing one take the one-by-one path; the log says each change with the values
    /// before it, in the order the group applied them.
    #[test]
    fn customer_writes_of_a_group_apply_in_order() {
        let db = TestDatabase::create();
        let store = PostgresStore::connect(&db.url()).unwrap();
        let app = store
            .create_app(&AppName::parse("A").unwrap(), &TimeZoneName::utc(), 1)
            .unwrap()
            .id;
        let f = store
            .create_field(app, &FieldName::parse("f").unwrap(), FieldType::Number, 1)
            .unwrap()
            .id;
        store
            .create_customer(app, &id("x"), &number(f, 1.0), 1)
            .unwrap();
        store
            .create_customer(app, &id("y"), &number(f, 2.0), 1)
            .unwrap();
        let head_before = store.log_head();

        let unknown = unico_core::FieldId(f.0 + 100);
        let (w1, a1) = customer_job(app, "x", number(f, 10.0), Mode::Update);
        let (w2, a2) = customer_job(app, "y", number(f, 20.0), Mode::Create);
        let (w3, a3) = customer_job(app, "new", number(f, 5.0), Mode::Upsert);
        let (w4, a4) = customer_job(app, "x", number(f, 11.0), Mode::Upsert);
        let (w5, a5) = customer_job(app, "y", number(unknown, 1.0), Mode::Update);
        let (w6, a6) = customer_job(app, "missing", number(f, 1.0), Mode::Update);
        let config: postgres::Config = db.url().parse().unwrap();
        let head = Head::new(head_before);
        let mut conn = Conn {
            client: conn::connect(&config).unwrap(),
            stmts: HashMap::new(),
        };
        for (reply, outcome) in commit(&mut conn, vec![w1, w2, w3, w4, w5, w6], &head) {
            reply.send(outcome).unwrap();
        }
        let customer = |a: std::sync::mpsc::Receiver<Outcome>| match a.recv().unwrap() {
            Outcome::Done(c) => *c.downcast::<Customer>().unwrap(),
            Outcome::Failed(e) => panic!("failed: {e}"),
            Outcome::Alone(_) => panic!("given back"),
        };
        let failed = |a: std::sync::mpsc::Receiver<Outcome>| match a.recv().unwrap() {
            Outcome::Failed(e) => e,
            _ => panic!("not refused"),
        };
        assert_eq!(customer(a1).fields, vec![(f, Value::Number(10.0))]);
        assert!(matches!(failed(a2), StoreError::Conflict(m) if m.contains("exists already")));
        assert_eq!(customer(a3).fields, vec![(f, Value::Number(5.0))]);
        let x = customer(a4);
        assert_eq!(x.fields, vec![(f, Value::Number(11.0))]);
        assert_eq!(x.updated_at, 50);
        assert!(
            matches!(failed(a5), StoreError::Conflict(m) if m.contains("was deleted meanwhile")),
            "a value of an unknown field is refused as on the one-by-one path"
        );
        assert!(matches!(failed(a6), StoreError::NotFound(_)));

        assert_eq!(store.get_customer(app, &id("x")).unwrap(), x);
        assert_eq!(
            store.get_customer(app, &id("y")).unwrap().fields,
            vec![(f, Value::Number(2.0))]
        );
        assert_eq!(store.field_stats(app).unwrap()[0].value_count, 3);
        let logged: Vec<(u64, String, Before)> = store
            .read_log(head_before, 10)
            .unwrap()
            .into_iter()
            .map(|e| match e.change {
                Change::Customer {
                    customer, before, ..
                } => (e.seq, customer.customer_id.to_string(), before),
                other => panic!("unexpected {other:?}"),
            })
            .collect();
        assert_eq!(
            logged,
            vec![
                (
                    head_before + 1,
                    "x".to_owned(),
                    Before::Values(vec![(f, Value::Number(1.0))])
                ),
                (
                    head_before + 2,
                    "x".to_owned(),
                    Before::Values(vec![(f, Value::Number(10.0))])
                ),
                (head_before + 3, "new".to_owned(), Before::Created),
            ]
        );
        assert_eq!(head.get(), head_before + 3);
    }
}
