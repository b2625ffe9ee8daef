//! PostgreSQL store: the scale-out backend that many nodes share (SPEC §7), on sqlx. The SQL
//! text is shared with SQLite ([`super::sql`], [`super::sql_delivery`]); this file owns
//! connecting, migrating (under sqlx's advisory lock, so nodes starting together migrate
//! once), isolated schemas for tests and the query helpers; the trait implementations are in
//! `postgres/`, one module per group of traits as in `sqlite/` (the purge, one node at a time
//! under an advisory lock, in `postgres/purge.rs`).

mod accounts;
mod delivery;
mod purge;
mod replay_keys;
mod requests;
mod webauthn;

pub use purge::PurgeLock;

use std::str::FromStr;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{AssertSqlSafe, Connection, Database, Executor, PgConnection, Postgres};

use super::rows::db_error;
use super::{StoreError, StoreResult};
use crate::domain::model::Notification;

const INIT: &str = include_str!("../../migrations/postgres/0001_init.sql");
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "init", INIT),
    (
        2,
        "notifications",
        include_str!("../../migrations/postgres/0002_notifications.sql"),
    ),
    (
        3,
        "device_events",
        include_str!("../../migrations/postgres/0003_device_events.sql"),
    ),
    (
        4,
        "leases",
        include_str!("../../migrations/postgres/0004_leases.sql"),
    ),
    (
        5,
        "purge",
        include_str!("../../migrations/postgres/0005_purge.sql"),
    ),
    (
        8,
        "webauthn",
        include_str!("../../migrations/postgres/0008_webauthn.sql"),
    ),
];

const POOL_SIZE: u32 = 10;
/// How long a statement waits for a pooled connection: past it, the database counts as
/// unreachable and the request gets a 503 instead of hanging.
const ACQUIRE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3);

pub struct PgStore {
    pool: PgPool,
}

impl PgStore {
    /// Connects to `postgres://...` and migrates the connection's default schema.
    pub async fn open(url: &str) -> StoreResult<Self> {
        Self::connect(url, None).await
    }

    /// Creates a new schema with a unique name, points every pooled connection's
    /// `search_path` at it and migrates it: a private database for one test. Returns the
    /// schema's name (the caller may `DROP SCHEMA ... CASCADE` it when done).
    pub async fn open_isolated(url: &str) -> StoreResult<(Self, String)> {
        let mut conn = PgConnection::connect_with(&connect_options(url)?)
            .await
            .map_err(db_error)?;
        let schema: String = sqlx::query_scalar(
            "SELECT 'backchannel_test_' || replace(gen_random_uuid()::text, '-', '')",
        )
        .fetch_one(&mut conn)
        .await
        .map_err(db_error)?;
        // The name is ours (letters, digits, underscores), so quoting it is enough.
        conn.execute(AssertSqlSafe(format!("CREATE SCHEMA \"{schema}\"")))
            .await
            .map_err(db_error)?;
        conn.close().await.map_err(db_error)?;
        let store = Self::connect(url, Some(schema.clone())).await?;
        Ok((store, schema))
    }

    async fn connect(url: &str, schema: Option<String>) -> StoreResult<Self> {
        let mut pool = PgPoolOptions::new()
            .max_connections(POOL_SIZE)
            .acquire_timeout(ACQUIRE_TIMEOUT);
        if let Some(schema) = schema {
            let set = format!("SET search_path TO \"{schema}\"");
            pool = pool.after_connect(move |conn, _meta| {
                let set = set.clone();
                Box::pin(async move {
                    conn.execute(AssertSqlSafe(set)).await?;
                    Ok(())
                })
            });
        }
        let pool = pool
            .connect_with(connect_options(url)?)
            .await
            .map_err(db_error)?;
        if let Err(e) = migrator(MIGRATIONS).run(&pool).await {
            // The failed migrator's connection may still hold the advisory lock: closing the
            // pool ends that session, so other nodes are not left waiting on it.
            pool.close().await;
            return Err(StoreError::Backend(format!(
                "migrating the PostgreSQL database: {e}"
            )));
        }
        Ok(PgStore { pool })
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Read committed: every once-only transition is a conditional UPDATE that re-checks its
    /// condition after waiting for a concurrent writer's row lock.
    async fn begin_write(&self) -> StoreResult<sqlx::Transaction<'static, sqlx::Postgres>> {
        self.pool.begin().await.map_err(db_error)
    }
}

fn connect_options(url: &str) -> StoreResult<PgConnectOptions> {
    // The parse error could quote the URL, password included: name the problem only.
    PgConnectOptions::from_str(url)
        .map_err(|_| StoreError::Backend("invalid PostgreSQL URL".to_owned()))
}

// Query helpers for the trait implementations.

pub(super) type DbRow = <Postgres as Database>::Row;
pub(super) type Query<'q> = sqlx::query::Query<'q, Postgres, <Postgres as Database>::Arguments>;
pub(super) type Decode<T> = fn(&DbRow) -> StoreResult<T>;

/// How many rows the statement changed.
pub(super) async fn affected<'c>(
    ex: impl Executor<'c, Database = Postgres>,
    q: Query<'_>,
) -> StoreResult<u64> {
    Ok(q.execute(ex).await.map_err(db_error)?.rows_affected())
}

pub(super) async fn one<'c, T>(
    ex: impl Executor<'c, Database = Postgres>,
    q: Query<'_>,
    decode: Decode<T>,
) -> StoreResult<Option<T>> {
    let row = q.fetch_optional(ex).await.map_err(db_error)?;
    row.as_ref().map(decode).transpose()
}

pub(super) async fn all<'c, T>(
    ex: impl Executor<'c, Database = Postgres>,
    q: Query<'_>,
    decode: Decode<T>,
) -> StoreResult<Vec<T>> {
    let rows = q.fetch_all(ex).await.map_err(db_error)?;
    rows.iter().map(decode).collect()
}

pub(super) fn insert_notification(n: &Notification) -> Query<'_> {
    sqlx::query(crate::store::sql_delivery::INSERT_NOTIFICATION)
        .bind(&n.id)
        .bind(&n.auth_request_id)
        .bind(&n.client_id)
        .bind(n.kind.as_str())
        .bind(&n.payload)
        .bind(n.state.as_str())
        .bind(n.attempts)
        .bind(n.next_attempt_at)
        .bind(n.deadline)
        .bind(&n.last_error)
        .bind(n.created_at)
        .bind(n.delivered_at)
}

/// The migrations, embedded in the binary, as sqlx runs them: in order, each
/// once, recorded in `_sqlx_migrations` (with a checksum that refuses an edited migration).
fn migrator(scripts: &[(i64, &'static str, &'static str)]) -> sqlx::migrate::Migrator {
    use sqlx::SqlSafeStr;
    use sqlx::migrate::{Migration, MigrationType, Migrator};
    Migrator::with_migrations(
        scripts
            .iter()
            .map(|&(version, description, sql)| {
                Migration::new(
                    version,
                    description.into(),
                    MigrationType::Simple,
                    sql.into_sql_str(),
                    false,
                )
            })
            .collect(),
    )
}
