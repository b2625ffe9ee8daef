//! SQLite store: the embedded default, one database file in WAL mode (SPEC §7), on rusqlite
//! with the bundled SQLite. One thread owns the write connection and group-commits every write
//! ([`writer`]); reads run on a few read-only connections ([`read`]) or come from memory
//! ([`cache`]); the background purge runs in rounds on the writer ([`purge`]). The statements
//! are the ones PostgreSQL runs ([`super::sql`], [`super::sql_delivery`],
//! [`super::sql_purge`]); the contract suite keeps both backends honest.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use super::{StoreError, StoreResult};
use cache::{Caches, PollBook};
use read::{Readers, sqlite_error};
use writer::Writer;

mod accounts;
mod cache;
mod delivery;
mod limits;
mod policies;
mod purge;
mod read;
mod requests;
mod tokens;
mod webauthn;
mod writer;

/// The migrations, in order; `PRAGMA user_version` records how many ran.
const MIGRATIONS: &[&str] = &[
    include_str!("../../migrations/sqlite/0001_init.sql"),
    include_str!("../../migrations/sqlite/0002_notifications.sql"),
    include_str!("../../migrations/sqlite/0003_device_events.sql"),
    include_str!("../../migrations/sqlite/0004_leases.sql"),
    include_str!("../../migrations/sqlite/0005_purge.sql"),
    include_str!("../../migrations/sqlite/0006_tokens.sql"),
    include_str!("../../migrations/sqlite/0007_keys_encryption.sql"),
    include_str!("../../migrations/sqlite/0008_webauthn.sql"),
    include_str!("../../migrations/sqlite/0009_access.sql"),
];

/// Read-only connections beside the writer.
const READERS: usize = 4;
/// How long a writer waits for another process's write lock before failing with
/// `SQLITE_BUSY`.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

pub struct SqliteStore {
    writer: Writer,
    /// Dropped with the store: stops the checkpointer.
    _checkpoints: std::sync::mpsc::Sender<()>,
    readers: Readers,
    cache: Arc<Caches>,
    polls: PollBook,
    /// `sqlite::memory:` lives in a file of its own that goes with the store.
    _scratch: Option<Scratch>,
}

/// A private database file, removed (with its WAL files) when dropped.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        for suffix in ["", "-wal", "-shm"] {
            let mut path = self.0.clone().into_os_string();
            path.push(suffix);
            let _ = std::fs::remove_file(path);
        }
    }
}

/// The file a `sqlite:` URL names, or `None` for a private in-memory database.
fn parse_url(url: &str) -> StoreResult<Option<PathBuf>> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .ok_or_else(|| StoreError::Backend("invalid SQLite URL: expected sqlite://PATH".into()))?;
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    if path == ":memory:" || path.is_empty() || query.split('&').any(|p| p == "mode=memory") {
        return Ok(None);
    }
    Ok(Some(PathBuf::from(path)))
}

fn scratch_path() -> PathBuf {
    static SEQ: AtomicUsize = AtomicUsize::new(0);
    let nonce = backchannel_protocol::jose::random_token(8).unwrap_or_default();
    std::env::temp_dir().join(format!(
        "backchannel-memory-{}-{}-{nonce}.db",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    ))
}

impl SqliteStore {
    /// Opens `sqlite://PATH` (creating the file and its directory if missing) or
    /// `sqlite::memory:` (a private database that lives as long as this store), and migrates.
    pub async fn open(url: &str) -> StoreResult<Self> {
        let (path, scratch) = match parse_url(url)? {
            Some(path) => (path, None),
            None => {
                let path = scratch_path();
                (path.clone(), Some(Scratch(path)))
            }
        };
        // Opening and migrating may wait on another process's lock: off the async threads.
        let opened = tokio::task::spawn_blocking(move || open_connections(&path))
            .await
            .map_err(|e| StoreError::Backend(format!("opening SQLite: {e}")))??;
        let (write, reads, checkpoint) = opened;
        let cache = Arc::new(Caches::new());
        let on_change = {
            let cache = cache.clone();
            move || cache.clear_all()
        };
        let (writer, _thread) = Writer::spawn(write, on_change)?;
        let checkpoints = spawn_checkpointer(checkpoint)?;
        Ok(SqliteStore {
            writer,
            _checkpoints: checkpoints,
            readers: Readers::new(reads),
            cache,
            polls: PollBook::new(),
            _scratch: scratch,
        })
    }

    /// Waits until every write sent so far has committed.
    pub async fn close(&self) {
        let _ = self.writer.write(|_| Ok(())).await;
    }
}

/// How often the checkpointer copies the WAL back into the database file.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(100);

/// Checkpoints run on a thread of their own, so that the writer never waits for the copy and
/// its `fsync`s (WAL with `synchronous = NORMAL` syncs only at checkpoints). `PASSIVE` never
/// blocks the writer or a reader.
fn spawn_checkpointer(conn: Connection) -> StoreResult<std::sync::mpsc::Sender<()>> {
    let (stop, stopped) = std::sync::mpsc::channel::<()>();
    std::thread::Builder::new()
        .name("sqlite-checkpoint".into())
        .spawn(move || {
            while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
                stopped.recv_timeout(CHECKPOINT_EVERY)
            {
                let _ = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
            }
            // A last full copy as the store closes, if nothing else is writing.
            let _ = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
        })
        .map_err(|e| StoreError::Backend(format!("starting the SQLite checkpointer: {e}")))?;
    Ok(stop)
}

type Opened = (Connection, Vec<Connection>, Connection);

/// The write connection (migrated), the read connections and the checkpointer's connection of
/// the file at `path`.
fn open_connections(path: &Path) -> StoreResult<Opened> {
    if let Some(dir) = path.parent()
        && !dir.as_os_str().is_empty()
    {
        std::fs::create_dir_all(dir)
            .map_err(|e| StoreError::Backend(format!("creating {}: {e}", dir.display())))?;
    }
    let write = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(sqlite_error)?;
    write.busy_timeout(BUSY_TIMEOUT).map_err(sqlite_error)?;
    switch_to_wal(&write)?;
    write
        .execute_batch(
            "PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON; \
             PRAGMA temp_store = MEMORY; PRAGMA cache_size = -16000; \
             PRAGMA wal_autocheckpoint = 0;",
        )
        .map_err(sqlite_error)?;
    write.set_prepared_statement_cache_capacity(64);
    migrate(&write)?;
    let open_other = || {
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(sqlite_error)?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(sqlite_error)?;
        Ok::<_, StoreError>(conn)
    };
    let mut reads = Vec::with_capacity(READERS);
    for _ in 0..READERS {
        let read = open_other()?;
        read.execute_batch("PRAGMA query_only = ON; PRAGMA cache_size = -4000;")
            .map_err(sqlite_error)?;
        read.set_prepared_statement_cache_capacity(64);
        reads.push(read);
    }
    let checkpoint = open_other()?;
    Ok((write, reads, checkpoint))
}

/// Switching a new file to WAL takes an exclusive lock that SQLite does not wait for
/// (`busy_timeout` does not apply), so a second process creating the same file at the same
/// moment (`backchannel admin` beside `serve`) gets `SQLITE_BUSY`: it waits a little and tries
/// again, for about as long as a busy writer would wait.
fn switch_to_wal(conn: &Connection) -> StoreResult<()> {
    let mut attempt = 0;
    loop {
        match conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get::<_, String>(0)) {
            Ok(_) => return Ok(()),
            Err(e) if is_busy(&e) && attempt < BUSY_RETRIES => {
                std::thread::sleep(Duration::from_millis((10 << attempt).min(200)));
                attempt += 1;
            }
            Err(e) => return Err(sqlite_error(e)),
        }
    }
}

/// 10, 20, 40, 80, 160 ms, then 200 ms: about `BUSY_TIMEOUT` in all.
const BUSY_RETRIES: u32 = 30;

fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _)
        if matches!(f.code, rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked))
}

/// Runs the pending migrations under the write lock, so that two processes starting on one
/// new file apply them once. A file made by an earlier release (migrations recorded by sqlx in
/// `_sqlx_migrations`) continues from the last one recorded there.
fn migrate(conn: &Connection) -> StoreResult<()> {
    let run = || -> rusqlite::Result<()> {
        conn.execute_batch("BEGIN IMMEDIATE")?;
        let mut done: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        if done == 0 {
            let legacy: bool = conn.query_row(
                "SELECT EXISTS (SELECT 1 FROM sqlite_master \
                 WHERE type = 'table' AND name = '_sqlx_migrations')",
                [],
                |r| r.get(0),
            )?;
            if legacy {
                done = conn.query_row(
                    "SELECT COALESCE(MAX(version), 0) FROM _sqlx_migrations WHERE success",
                    [],
                    |r| r.get(0),
                )?;
            }
        }
        let total = i64::try_from(MIGRATIONS.len()).unwrap_or(i64::MAX);
        for (i, script) in MIGRATIONS.iter().enumerate() {
            let version = i64::try_from(i).unwrap_or(i64::MAX) + 1;
            if version > done {
                conn.execute_batch(script)?;
            }
        }
        if done < total {
            conn.execute_batch(&format!("PRAGMA user_version = {total}"))?;
        } else if done > total {
            conn.execute_batch("ROLLBACK")?;
            return Err(rusqlite::Error::InvalidQuery);
        }
        conn.execute_batch("COMMIT")
    };
    run().map_err(|e| {
        let _ = conn.execute_batch("ROLLBACK");
        match e {
            rusqlite::Error::InvalidQuery => StoreError::Backend(
                "the database was written by a newer Backchannel; upgrade this binary".into(),
            ),
            other => StoreError::Backend(format!("migrating the SQLite database: {other}")),
        }
    })
}
