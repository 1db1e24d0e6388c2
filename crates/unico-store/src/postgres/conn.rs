//! Connections: a small pool of our own, a prepared-statement cache per connection, and
//! how PostgreSQL's errors become [`StoreError`]s (they never leave this module's users).
//!
//! The pool is a `Mutex<Vec<Conn>>` with a bound on open connections
//! ([`MAX_CONNECTIONS`]): every store call runs on a blocking thread and holds one
//! connection for its duration, so the bound also bounds the database sessions one server
//! opens, whatever the number of blocking threads.

use std::collections::HashMap;
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use postgres::error::SqlState;
use postgres::types::ToSql;
use postgres::{Client, GenericClient, NoTls, Row, Statement};

use crate::codec::CodecError;
use crate::error::StoreError;

/// Connections one store opens at most (besides its listener's).
pub const MAX_CONNECTIONS: usize = 16;
/// How long a call waits for a free connection before it fails.
const CONNECTION_WAIT: Duration = Duration::from_secs(30);

/// What went wrong inside the backend: a store error to pass on as it is, or a database
/// error to classify (retry, or report as internal).
#[derive(Debug)]
pub enum Fail {
    Store(StoreError),
    Db(postgres::Error),
    /// A concurrent write changed what this one decided on (an identity it was about to
    /// take was taken meanwhile): running the whole transaction again decides anew.
    Again(&'static str),
}

pub type Res<T> = Result<T, Fail>;

impl From<postgres::Error> for Fail {
    fn from(e: postgres::Error) -> Self {
        Fail::Db(e)
    }
}

impl From<StoreError> for Fail {
    fn from(e: StoreError) -> Self {
        Fail::Store(e)
    }
}

impl From<CodecError> for Fail {
    fn from(e: CodecError) -> Self {
        Fail::Store(e.into())
    }
}

impl Fail {
    /// A failure that running the whole transaction again may not meet: a deadlock the
    /// server broke by aborting us, or a serialization failure.
    pub fn retryable(&self) -> bool {
        match self {
            Fail::Db(e) => matches!(
                e.code(),
                Some(&SqlState::T_R_DEADLOCK_DETECTED) | Some(&SqlState::T_R_SERIALIZATION_FAILURE)
            ),
            Fail::Again(_) => true,
            Fail::Store(_) => false,
        }
    }

    pub fn into_store(self) -> StoreError {
        match self {
            Fail::Store(e) => e,
            Fail::Again(what) => {
                StoreError::Conflict(format!("{what} kept changing under this write; retry"))
            }
            // Every foreign key but one points at `apps`, and the one that does not
            // (`import_errors`) is written only after its import was found and locked: a
            // key, segment or import whose application was deleted meanwhile.
            Fail::Db(e) if e.code() == Some(&SqlState::FOREIGN_KEY_VIOLATION) => {
                StoreError::NotFound("application".into())
            }
            Fail::Db(e) if unavailable(&e) => StoreError::Unavailable(format!(
                "the database cannot answer now ({})",
                internal(&e)
            )),
            Fail::Db(e) => internal(&e),
        }
    }
}

/// Whether an error says the database cannot answer now rather than that the request is
/// wrong: a closed connection, or SQLSTATE class 08 (connection), 53 (insufficient
/// resources: disk full, too many connections) or 57P (the server shutting down).
fn unavailable(e: &postgres::Error) -> bool {
    if e.is_closed() {
        return true;
    }
    e.code().is_some_and(|c| {
        let code = c.code();
        code.starts_with("08") || code.starts_with("53") || code.starts_with("57P")
    })
}

/// A database error as an internal store error: the server's message when there is one
/// (never shown to API clients; logged).
pub fn internal(e: &postgres::Error) -> StoreError {
    match e.as_db_error() {
        Some(db) => {
            StoreError::Internal(format!("PostgreSQL {}: {}", db.code().code(), db.message()))
        }
        None => StoreError::Internal(format!("PostgreSQL: {e}")),
    }
}

/// One open connection and the statements prepared on it.
pub struct Conn {
    pub client: Client,
    pub stmts: HashMap<String, Statement>,
}

/// The pool of connections to one database.
pub struct Pool {
    config: postgres::Config,
    state: Mutex<PoolState>,
    freed: Condvar,
}

struct PoolState {
    idle: Vec<Conn>,
    /// Connections open, idle or leased.
    open: usize,
}

fn poisoned() -> StoreError {
    StoreError::Internal("a lock was poisoned by an earlier panic".into())
}

/// Opens one connection.
pub fn connect(config: &postgres::Config) -> Result<Client, StoreError> {
    config.connect(NoTls).map_err(|e| {
        StoreError::Unavailable(format!("cannot connect to the database: {}", internal(&e)))
    })
}

impl Pool {
    /// A pool that starts with `first` (already open) as its only connection.
    pub fn new(config: postgres::Config, first: Client) -> Pool {
        Pool {
            config,
            state: Mutex::new(PoolState {
                idle: vec![Conn {
                    client: first,
                    stmts: HashMap::new(),
                }],
                open: 1,
            }),
            freed: Condvar::new(),
        }
    }

    /// A connection for the caller's exclusive use until the lease drops.
    pub fn get(&self) -> Result<Lease<'_>, StoreError> {
        let deadline = Instant::now() + CONNECTION_WAIT;
        let mut state = self.state.lock().map_err(|_| poisoned())?;
        loop {
            if let Some(conn) = state.idle.pop() {
                return Ok(Lease {
                    pool: self,
                    conn: Some(conn),
                });
            }
            if state.open < MAX_CONNECTIONS {
                state.open += 1;
                drop(state);
                let opened = connect(&self.config);
                return match opened {
                    Ok(client) => Ok(Lease {
                        pool: self,
                        conn: Some(Conn {
                            client,
                            stmts: HashMap::new(),
                        }),
                    }),
                    Err(e) => {
                        self.closed();
                        Err(e)
                    }
                };
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(StoreError::Unavailable(format!(
                    "no database connection came free within {} s ({MAX_CONNECTIONS} in use)",
                    CONNECTION_WAIT.as_secs()
                )));
            }
            state = self
                .freed
                .wait_timeout(state, left)
                .map_err(|_| poisoned())?
                .0;
        }
    }

    fn closed(&self) {
        if let Ok(mut state) = self.state.lock() {
            state.open -= 1;
        }
        self.freed.notify_one();
    }
}

/// A leased connection; it goes back to the pool on drop, unless it was closed.
pub struct Lease<'p> {
    pool: &'p Pool,
    conn: Option<Conn>,
}

impl Lease<'_> {
    pub fn conn(&mut self) -> &mut Conn {
        self.conn
            .as_mut()
            .expect("a lease holds its connection until it drops")
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        let Some(conn) = self.conn.take() else {
            return;
        };
        if conn.client.is_closed() {
            self.pool.closed();
            return;
        }
        match self.pool.state.lock() {
            Ok(mut state) => state.idle.push(conn),
            Err(_) => return,
        }
        self.pool.freed.notify_one();
    }
}

/// Statements run through a client or a transaction, each prepared once per connection.
pub struct Db<'a, C> {
    pub c: &'a mut C,
    stmts: &'a mut HashMap<String, Statement>,
}

pub type Params<'x> = [&'x (dyn ToSql + Sync)];

impl<'a, C: GenericClient> Db<'a, C> {
    pub fn new(c: &'a mut C, stmts: &'a mut HashMap<String, Statement>) -> Self {
        Db { c, stmts }
    }

    /// The statement for `sql`, prepared on first use.
    pub fn prepare(&mut self, sql: &str) -> Res<Statement> {
        if let Some(stmt) = self.stmts.get(sql) {
            return Ok(stmt.clone());
        }
        let stmt = self.c.prepare(sql)?;
        self.stmts.insert(sql.to_owned(), stmt.clone());
        Ok(stmt)
    }

    pub fn query(&mut self, sql: &str, params: &Params<'_>) -> Res<Vec<Row>> {
        let stmt = self.prepare(sql)?;
        Ok(self.c.query(&stmt, params)?)
    }

    pub fn query_opt(&mut self, sql: &str, params: &Params<'_>) -> Res<Option<Row>> {
        let stmt = self.prepare(sql)?;
        Ok(self.c.query_opt(&stmt, params)?)
    }

    pub fn query_one(&mut self, sql: &str, params: &Params<'_>) -> Res<Row> {
        let stmt = self.prepare(sql)?;
        Ok(self.c.query_one(&stmt, params)?)
    }

    pub fn execute(&mut self, sql: &str, params: &Params<'_>) -> Res<u64> {
        let stmt = self.prepare(sql)?;
        Ok(self.c.execute(&stmt, params)?)
    }

    /// Statements without parameters, sent as they are (savepoints, locks, DDL).
    pub fn batch(&mut self, sql: &str) -> Res<()> {
        Ok(self.c.batch_execute(sql)?)
    }
}
