//! Online backup and restore of the embedded store's database file.
//!
//! A backup is `VACUUM INTO` a new file from a read transaction: a consistent copy of the
//! database as of one commit, taken while the server keeps writing (an import in flight,
//! uncommitted, is not in it). A restore checks the file (an Unico database this build can
//! open, passing SQLite's integrity check) and refuses to overwrite a data directory that
//! already holds a database.

use std::path::Path;

use rusqlite::{Connection, OpenFlags};

use super::DB_FILE;
use crate::error::StoreError;

fn failed(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Internal(format!("{what}: {e}"))
}

/// Copies the database of `data_dir` into `out` (which must not exist); answers its size
/// in bytes.
pub fn backup(data_dir: &Path, out: &Path) -> Result<u64, StoreError> {
    let db = data_dir.join(DB_FILE);
    if !db.exists() {
        return Err(StoreError::NotFound(format!(
            "no database in {} (expected {DB_FILE})",
            data_dir.display()
        )));
    }
    if out.exists() {
        return Err(StoreError::Conflict(format!(
            "{} exists already; a backup never overwrites a file",
            out.display()
        )));
    }
    let conn = Connection::open_with_flags(
        &db,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(std::time::Duration::from_secs(30))?;
    let target = out
        .to_str()
        .ok_or_else(|| StoreError::Invalid("the backup's path is not UTF-8".into()))?;
    conn.execute("VACUUM INTO ?1", [target])?;
    Ok(std::fs::metadata(out)
        .map_err(|e| failed("reading the backup", e))?
        .len())
}

/// Restores the backup `from` as the database of `data_dir` (created if missing); refuses
/// when `data_dir` already holds a database, and when `from` is not a sound Unico database.
pub fn restore(from: &Path, data_dir: &Path) -> Result<(), StoreError> {
    let db = data_dir.join(DB_FILE);
    if db.exists() {
        return Err(StoreError::Conflict(format!(
            "{} already holds a database; restore into an empty data directory (stop the server and move the old one aside first)",
            data_dir.display()
        )));
    }
    {
        let conn = Connection::open_with_flags(
            from,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| StoreError::Invalid(format!("{} is not a database: {e}", from.display())))?;
        let check: String = conn
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .map_err(|e| {
                StoreError::Invalid(format!("{} is not a database: {e}", from.display()))
            })?;
        if check != "ok" {
            return Err(StoreError::Invalid(format!(
                "{} fails the integrity check: {check}",
                from.display()
            )));
        }
        let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        let known = super::migrations::known();
        if version == 0 || version as usize > known {
            return Err(StoreError::Invalid(format!(
                "{} is not a Unico database this build can open (schema version {version}, this build knows 1 to {known})",
                from.display()
            )));
        }
    }
    std::fs::create_dir_all(data_dir).map_err(|e| failed("creating the data directory", e))?;
    let partial = data_dir.join(format!("{DB_FILE}.restoring"));
    std::fs::copy(from, &partial).map_err(|e| failed("copying the backup", e))?;
    std::fs::File::open(&partial)
        .and_then(|f| f.sync_all())
        .map_err(|e| failed("syncing the copy", e))?;
    std::fs::rename(&partial, &db).map_err(|e| failed("putting the copy in place", e))?;
    Ok(())
}
