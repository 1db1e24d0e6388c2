//! Group commit: single-customer writes queued to a few writer connections, each of which
//! commits many waiting writes in one transaction with one log append and one `COMMIT`.
//!
//! **Why.** The log's order is its commit order because every writing transaction holds
//! the `log_head` row from its append through its `COMMIT` (see `log.rs`). Committed one
//! by one, writes therefore take turns for the whole of their commit (its WAL flush) and
//! share none: about a thousand commits a second here, whatever the number of clients.
//! A group pays for the append, the head's lock and the flush once for all its writes.
//!
//! **One write, one savepoint.** Each write of a group runs under a savepoint of its own:
//! a write that fails is rolled back to it and answered with its error, and the others go
//! on. A write's bookkeeping (its log changes, value-count changes and the application
//! locks it took) is rewound with it ([`Wx::rewind`]). Value counts are applied once, after
//! every write of the group and before the append, so the group still takes its locks in
//! the order `writes.rs` documents for one write: application locks, customer rows, count
//! rows, `log_head`.
//!
//! **Never waiting long while holding others' rows.** A group holds the rows of all its
//! writes, so a write that waits for a lock must not hold the group back nor form a cycle
//! with another transaction (an import or an event batch locking customers in another
//! order; another server's group). Inside a group every lock is awaited for at most
//! [`LOCK_WAIT`], far below PostgreSQL's `deadlock_timeout` (1 s by default), so when a
//! cycle forms the group is the one that gives up, never an import (which is not run
//! again). A write that timed out, or that PostgreSQL aborted, is rolled back to its
//! savepoint and run again on its own, in a transaction of its own as before group commit
//! existed, where it may wait as long as it needs. The append itself waits without limit:
//! whoever holds `log_head` is committing and waits for nothing.
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

use super::conn::{self, Conn, Db, Fail, Res};
use super::log;
use super::writes::{self, Wx};
use crate::error::StoreError;
use crate::log_row::Head;

/// Writes one group commits at most (see the module docs).
pub const GROUP_MAX: usize = 60;
/// Writer connections, each committing its own groups: while one waits for its `COMMIT`,
/// the next runs its writes.
pub const WRITERS: usize = 2;
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

struct Job {
    op: Op,
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

    /// Queues `op` and waits until its group committed (or gave it back).
    pub fn run(&self, op: Op) -> Result<Outcome, StoreError> {
        let (reply, answer) = sync_channel(1);
        {
            let mut queue = self.shared.queue.lock().map_err(|_| poisoned())?;
            queue.jobs.push_back(Job { op, reply });
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
                        let _ = job.reply.send(Outcome::Alone(job.op));
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
    Alone,
}

/// Whether a write that failed inside a group should run again on its own: it waited
/// longer than [`LOCK_WAIT`] for a lock, or would be retried anyway (deadlock,
/// serialization failure, a decision overtaken by a concurrent write).
fn run_alone(fail: &Fail) -> bool {
    fail.retryable()
        || matches!(fail, Fail::Db(e) if e.code() == Some(&SqlState::LOCK_NOT_AVAILABLE))
}

/// Runs `jobs` in one transaction, each under its own savepoint, appends their changes
/// and commits; answers each job's outcome, and moves the head past the group's entries.
fn commit(c: &mut Conn, jobs: Vec<Job>, head: &Head) -> Vec<(SyncSender<Outcome>, Outcome)> {
    let mut ran: Vec<(Job, Ran)> = Vec::with_capacity(jobs.len());
    let mut waiting = jobs.into_iter();
    // Set once `COMMIT` is sent: a failure from then on leaves the group's fate unknown.
    let mut committing = false;
    let committed = (|| -> Res<Option<u64>> {
        let Conn { client, stmts } = c;
        let mut tx = client.transaction()?;
        let changes = {
            let mut w = Wx::new(Db::new(&mut tx, stmts));
            w.db.batch(&format!(
                "SET LOCAL lock_timeout = {}",
                LOCK_WAIT.as_millis()
            ))?;
            let mut first = true;
            for mut job in waiting.by_ref() {
                let savepoint = w.db.batch(if first {
                    "SAVEPOINT one"
                } else {
                    "RELEASE SAVEPOINT one; SAVEPOINT one"
                });
                if let Err(e) = savepoint {
                    ran.push((job, Ran::Alone));
                    return Err(e);
                }
                first = false;
                let mark = w.mark();
                let outcome = match (job.op)(&mut w) {
                    Ok(answer) => Ran::Ok(answer),
                    Err(fail) => {
                        w.rewind(mark);
                        if let Err(e) = w.db.batch("ROLLBACK TO SAVEPOINT one") {
                            // The connection is gone: nothing of the group commits.
                            ran.push((job, Ran::Alone));
                            return Err(e);
                        }
                        if run_alone(&fail) {
                            Ran::Alone
                        } else {
                            Ran::Failed(fail.into_store())
                        }
                    }
                };
                ran.push((job, outcome));
            }
            // Count rows are awaited like the writes' rows (an import holds them from its
            // last batch to its commit); a timeout there gives the whole group back.
            writes::flush_counts(std::mem::take(&mut w.deltas), &mut w.db)?;
            w.db.batch("SET LOCAL lock_timeout = 0")?;
            w.changes
        };
        let seq = log::append(&mut Db::new(&mut tx, stmts), &changes)?;
        committing = true;
        tx.commit()?;
        Ok(seq)
    })();
    match committed {
        Ok(seq) => {
            if let Some(seq) = seq {
                head.advance(seq);
            }
            ran.into_iter()
                .map(|(job, outcome)| {
                    let outcome = match outcome {
                        Ran::Ok(answer) => Outcome::Done(answer),
                        Ran::Failed(e) => Outcome::Failed(e),
                        Ran::Alone => Outcome::Alone(job.op),
                    };
                    (job.reply, outcome)
                })
                .collect()
        }
        Err(fail) => {
            // Before `COMMIT`, nothing of the group committed: every write runs again on
            // its own (one refused inside the group may have been refused for what another,
            // now rolled back, did). A failed `COMMIT` leaves the writes' fate unknown:
            // they get the failure, as one write's failed `COMMIT` would have told them.
            let err = fail.into_store();
            tracing::warn!(error = %err, "a group of writes could not commit");
            let mut out: Vec<(SyncSender<Outcome>, Outcome)> = ran
                .into_iter()
                .map(|(job, outcome)| {
                    let outcome = match outcome {
                        Ran::Ok(_) if committing => Outcome::Failed(err.clone()),
                        _ => Outcome::Alone(job.op),
                    };
                    (job.reply, outcome)
                })
                .collect();
            out.extend(waiting.map(|job| (job.reply, Outcome::Alone(job.op))));
            out
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use unico_core::{AppName, CustomerId, FieldChange, FieldName, FieldType, TimeZoneName, Value};

    use super::*;
    use crate::changes::Change;
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
        (Job { op, reply }, answer)
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
            (Job { op, reply }, answer)
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
}
