//! SQLite store: the embedded default, one database file in WAL mode (SPEC §7). The SQL and
//! the trait implementations are shared with PostgreSQL ([`super::sql`]); this file owns
//! opening, migrating and how a writing transaction begins.

use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use super::rows::db_error;
use super::sql::{self, impl_stores};
use super::sql_delivery::impl_delivery_stores;
use super::{StoreError, StoreResult};

const INIT: &str = include_str!("../../migrations/sqlite/0001_init.sql");
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "init", INIT),
    (
        2,
        "notifications",
        include_str!("../../migrations/sqlite/0002_notifications.sql"),
    ),
    (
        3,
        "device_events",
        include_str!("../../migrations/sqlite/0003_device_events.sql"),
    ),
];

/// Connections of a file database: WAL lets readers run beside the one writer.
const FILE_POOL_SIZE: u32 = 4;
/// How long a writer waits for the write lock before failing with `SQLITE_BUSY`.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

pub struct SqliteStore {
    pool: SqlitePool,
}

impl SqliteStore {
    /// Opens `sqlite://PATH` (creating the file and its directory if missing) or
    /// `sqlite::memory:` (a private database that lives as long as this store), and migrates.
    pub async fn open(url: &str) -> StoreResult<Self> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|e| StoreError::Backend(format!("invalid SQLite URL: {e}")))?
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT);
        let in_memory = url.contains(":memory:") || url.contains("mode=memory");
        let pool = if in_memory {
            // One connection that never closes: an in-memory database dies with its last
            // connection.
            SqlitePoolOptions::new()
                .max_connections(1)
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None)
                .connect_with(options)
                .await
        } else {
            if let Some(dir) = options.get_filename().parent()
                && !dir.as_os_str().is_empty()
            {
                tokio::fs::create_dir_all(dir)
                    .await
                    .map_err(|e| StoreError::Backend(format!("creating {}: {e}", dir.display())))?;
            }
            let options = options
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal);
            connect_file(options).await
        }
        .map_err(db_error)?;
        let store = SqliteStore { pool };
        store.migrate().await?;
        Ok(store)
    }

    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// Runs the pending migrations under the write lock, so that two processes starting on
    /// one new file apply them once (sqlx takes no lock of its own on SQLite).
    async fn migrate(&self) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        sql::migrator(MIGRATIONS)
            .run(&mut *tx)
            .await
            .map_err(|e| StoreError::Backend(format!("migrating the SQLite database: {e}")))?;
        tx.commit().await.map_err(db_error)
    }

    /// A transaction that takes the write lock at once: a deferred one that reads first
    /// could fail with `SQLITE_BUSY` when it later upgrades, without waiting.
    async fn begin_write(&self) -> StoreResult<sqlx::Transaction<'static, sqlx::Sqlite>> {
        self.pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(db_error)
    }
}

/// Connects to a database file. Switching a new file to WAL takes an exclusive lock that
/// SQLite does not wait for (`busy_timeout` does not apply), so a second process creating the
/// same file at the same moment (`backchannel admin` beside `serve`) gets `SQLITE_BUSY`: it
/// waits a little and tries again, for about as long as a busy writer would wait.
async fn connect_file(options: SqliteConnectOptions) -> Result<SqlitePool, sqlx::Error> {
    let mut attempt = 0;
    loop {
        let pool = SqlitePoolOptions::new()
            .max_connections(FILE_POOL_SIZE)
            .connect_with(options.clone())
            .await;
        match pool {
            Err(e) if is_busy(&e) && attempt < BUSY_RETRIES => {
                tokio::time::sleep(Duration::from_millis((10 << attempt).min(200))).await;
                attempt += 1;
            }
            other => return other,
        }
    }
}

/// 10, 20, 40, 80, 160 ms, then 200 ms: about `BUSY_TIMEOUT` in all.
const BUSY_RETRIES: u32 = 30;

/// `SQLITE_BUSY` or one of its extended codes.
fn is_busy(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .and_then(|db| db.code())
        .and_then(|code| code.parse::<i32>().ok())
        .is_some_and(|code| code & 0xff == 5)
}

impl_stores!(SqliteStore, sqlx::Sqlite);
impl_delivery_stores!(SqliteStore, sqlx::Sqlite);
