//! Statements on rusqlite connections: binding the shared SQL's `$n` parameters, decoding rows
//! through [`RowExt`], mapping errors, and the small pool of read-only connections that reads
//! run on (WAL lets them read beside the writer, each statement on its own snapshot).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};

use rusqlite::types::ToSql;
use rusqlite::{Connection, ErrorCode, Statement};

use super::super::rows::RowExt;
use super::super::{StoreError, StoreResult};

/// Positional values for a statement's `$1`, `$2`, ... (in any order in the SQL text).
pub(super) type Params<'a> = &'a [&'a dyn ToSql];

/// Maps a SQLite error like the PostgreSQL side does: a unique violation is a `Conflict`
/// naming `table.column` (never the value), a foreign-key violation a plain fault.
pub(super) fn sqlite_error(e: rusqlite::Error) -> StoreError {
    if let rusqlite::Error::SqliteFailure(err, message) = &e
        && err.code == ErrorCode::ConstraintViolation
    {
        const PRIMARYKEY: i32 = 1555;
        const UNIQUE: i32 = 2067;
        const FOREIGNKEY: i32 = 787;
        match err.extended_code {
            PRIMARYKEY | UNIQUE => {
                let subject = message
                    .as_deref()
                    .and_then(|m| m.rsplit(": ").next())
                    .unwrap_or("a unique value");
                return StoreError::Conflict(format!("{subject} is taken"));
            }
            FOREIGNKEY => {
                return StoreError::Backend("a referenced record does not exist".to_owned());
            }
            _ => {}
        }
    }
    StoreError::Backend(e.to_string())
}

/// A row as [`super::super::rows`] decodes it.
pub(super) struct Row<'a, 'r>(pub &'a rusqlite::Row<'r>);

fn get<T: rusqlite::types::FromSql>(row: &Row<'_, '_>, col: &str) -> StoreResult<T> {
    row.0
        .get::<_, T>(col)
        .map_err(|e| StoreError::Corrupt(format!("column {col}: {e}")))
}

impl RowExt for Row<'_, '_> {
    fn text(&self, col: &str) -> StoreResult<String> {
        get(self, col)
    }
    fn opt_text(&self, col: &str) -> StoreResult<Option<String>> {
        get(self, col)
    }
    fn int(&self, col: &str) -> StoreResult<i64> {
        get(self, col)
    }
    fn opt_int(&self, col: &str) -> StoreResult<Option<i64>> {
        get(self, col)
    }
    fn flag(&self, col: &str) -> StoreResult<bool> {
        get(self, col)
    }
}

/// Binds `params[n - 1]` to each `$n` of the statement.
fn bind(stmt: &mut Statement<'_>, params: Params<'_>) -> StoreResult<()> {
    for index in 1..=stmt.parameter_count() {
        let value = stmt
            .parameter_name(index)
            .and_then(|name| name.strip_prefix('$'))
            .and_then(|n| n.parse::<usize>().ok())
            .and_then(|n| n.checked_sub(1))
            .and_then(|n| params.get(n))
            .ok_or_else(|| {
                StoreError::Backend(format!("statement parameter {index} has no value"))
            })?;
        stmt.raw_bind_parameter(index, *value)
            .map_err(sqlite_error)?;
    }
    Ok(())
}

/// Runs a statement that returns no rows; the number of rows it changed.
pub(super) fn execute(conn: &Connection, sql: &str, params: Params<'_>) -> StoreResult<usize> {
    let mut stmt = conn.prepare_cached(sql).map_err(sqlite_error)?;
    bind(&mut stmt, params)?;
    stmt.raw_execute().map_err(sqlite_error)
}

/// The first row, decoded.
pub(super) fn one<T>(
    conn: &Connection,
    sql: &str,
    params: Params<'_>,
    decode: impl Fn(&Row<'_, '_>) -> StoreResult<T>,
) -> StoreResult<Option<T>> {
    let mut stmt = conn.prepare_cached(sql).map_err(sqlite_error)?;
    bind(&mut stmt, params)?;
    let mut rows = stmt.raw_query();
    match rows.next().map_err(sqlite_error)? {
        Some(row) => decode(&Row(row)).map(Some),
        None => Ok(None),
    }
}

/// Every row, decoded.
pub(super) fn all<T>(
    conn: &Connection,
    sql: &str,
    params: Params<'_>,
    decode: impl Fn(&Row<'_, '_>) -> StoreResult<T>,
) -> StoreResult<Vec<T>> {
    let mut stmt = conn.prepare_cached(sql).map_err(sqlite_error)?;
    bind(&mut stmt, params)?;
    let mut rows = stmt.raw_query();
    let mut out = Vec::new();
    while let Some(row) = rows.next().map_err(sqlite_error)? {
        out.push(decode(&Row(row))?);
    }
    Ok(out)
}

/// Read-only connections, each used by one caller at a time. Reads are short (indexed
/// lookups), so a caller runs them on its own thread rather than hand them to another.
pub(super) struct Readers {
    conns: Vec<Mutex<Connection>>,
    next: AtomicUsize,
}

impl Readers {
    pub(super) fn new(conns: Vec<Connection>) -> Self {
        Readers {
            conns: conns.into_iter().map(Mutex::new).collect(),
            next: AtomicUsize::new(0),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        let n = self.conns.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed) % n;
        for i in 0..n {
            if let Ok(conn) = self.conns[(start + i) % n].try_lock() {
                return conn;
            }
        }
        // Every connection is busy: wait for one. A poisoned lock only means a reader
        // panicked mid-statement; the connection itself is still sound.
        self.conns[start]
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Runs `f` on a free read connection.
    pub(super) fn read<T>(&self, f: impl FnOnce(&Connection) -> StoreResult<T>) -> StoreResult<T> {
        f(&self.lock())
    }
}
