//! PostgreSQL store: the scale-out backend that many nodes share (SPEC §7), on sqlx. The SQL
//! text is shared with SQLite ([`super::sql`], [`super::sql_delivery`]); this file owns
//! connecting, migrating (under sqlx's advisory lock, so nodes starting together migrate
//! once), isolated schemas for tests and the query helpers; the trait implementations are in
//! `postgres/`, one module per group of traits as in `sqlite/` (the purge, one node at a time
//! under an advisory lock, in `postgres/purge.rs`).

mod accounts;
mod batch;
mod delivery;
mod limits;
mod policies;
mod poll_gate;
mod purge;
mod replay_keys;
mod requests;
mod tokens;
mod webauthn;

pub use purge::PurgeLock;

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{AssertSqlSafe, Connection, Database, Executor, PgConnection, Postgres};

use super::cache::Cache;
use super::rows::db_error;
use super::{StoreError, StoreResult};
use crate::domain::model::{Client, Device, Notification, User};
use crate::domain::policy::AccessPolicy;

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
        6,
        "tokens",
        include_str!("../../migrations/postgres/0006_tokens.sql"),
    ),
    (
        7,
        "keys_encryption",
        include_str!("../../migrations/postgres/0007_keys_encryption.sql"),
    ),
    (
        8,
        "webauthn",
        include_str!("../../migrations/postgres/0008_webauthn.sql"),
    ),
    (
        9,
        "access",
        include_str!("../../migrations/postgres/0009_access.sql"),
    ),
];

/// Connections for the statements whose commit must be durable before the answer.
const POOL_SIZE: u32 = 16;
/// Connections for the poll gate's writes, committed without waiting for the WAL flush
/// (`synchronous_commit = off`): a database crash may forget the last fraction of a second of
/// `last_polled_at` updates, which lets one early poll through, as the embedded store's
/// in-memory poll book does after a restart. Nothing a client was promised lives there.
const POLL_POOL_SIZE: u32 = 4;
/// How long a statement waits for a pooled connection: past it, the database counts as
/// unreachable and the request gets a 503 instead of hanging.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);
/// How long a cached client, user or device list is served before it is read again. Other
/// nodes (and `backchannel admin`) change these rows without telling this one, so a client
/// or user disabled elsewhere is refused here within this time (SPEC §7: within 2 s).
const CACHE_MAX_AGE: Duration = Duration::from_secs(1);

pub struct PgStore {
    pool: PgPool,
    polls: PgPool,
    cache: PgCaches,
    /// Backchannel requests, written in batches (group commit).
    creates: batch::Batcher,
    /// The poll gate, with this node's memory in front of the database.
    poll_gates: std::sync::Arc<poll_gate::PollGates>,
}

/// The rows every backchannel request reads, kept for [`CACHE_MAX_AGE`]: this node's own
/// writes invalidate them at once, other nodes' writes are seen when the entry ages out.
/// Devices by id are not cached: device authentication reads the row every time, so a
/// device disabled on any node is refused everywhere at once.
struct PgCaches {
    clients: Cache<Client>,
    /// A client's access policy, or `None` when it has none (absence is cached too).
    policies: Cache<Option<AccessPolicy>>,
    users: Cache<User>,
    /// A login-hint lookup ([`super::cache::hint_key`]) to its user.
    hints: Cache<User>,
    /// A user's devices, as `list_devices` returns them.
    user_devices: Cache<Vec<Device>>,
    /// A "not me" block's end by user and client, `None` when there is none (read by
    /// backchannel requests when no limit is configured).
    blocks: Cache<Option<i64>>,
}

impl PgCaches {
    fn new() -> Self {
        PgCaches {
            clients: Cache::with_max_age(4096, CACHE_MAX_AGE),
            policies: Cache::with_max_age(4096, CACHE_MAX_AGE),
            users: Cache::with_max_age(65_536, CACHE_MAX_AGE),
            hints: Cache::with_max_age(65_536, CACHE_MAX_AGE),
            user_devices: Cache::with_max_age(65_536, CACHE_MAX_AGE),
            blocks: Cache::with_max_age(65_536, CACHE_MAX_AGE),
        }
    }
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
        let pool = pool_options(POOL_SIZE, schema.clone(), false)
            .connect_with(connect_options(url)?)
            .await
            .map_err(db_error)?;
        // Connected lazily: the first poll opens the first of these.
        let polls =
            pool_options(POLL_POOL_SIZE, schema, true).connect_lazy_with(connect_options(url)?);
        if let Err(e) = migrator(MIGRATIONS).run(&pool).await {
            // The failed migrator's connection may still hold the advisory lock: closing the
            // pool ends that session, so other nodes are not left waiting on it.
            pool.close().await;
            return Err(StoreError::Backend(format!(
                "migrating the PostgreSQL database: {e}"
            )));
        }
        Ok(PgStore {
            creates: batch::Batcher::start(pool.clone()),
            poll_gates: poll_gate::PollGates::start(polls.clone()),
            pool,
            polls,
            cache: PgCaches::new(),
        })
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Closes both pools: every connection of this store ends.
    pub async fn close(&self) {
        self.pool.close().await;
        self.polls.close().await;
    }

    /// Read committed: every once-only transition is a conditional UPDATE that re-checks its
    /// condition after waiting for a concurrent writer's row lock.
    async fn begin_write(&self) -> StoreResult<sqlx::Transaction<'static, sqlx::Postgres>> {
        self.pool.begin().await.map_err(db_error)
    }
}

/// A pool whose connections use `schema` (tests) and, for `relaxed`, commit without
/// waiting for the WAL flush.
fn pool_options(size: u32, schema: Option<String>, relaxed: bool) -> PgPoolOptions {
    let mut settings = Vec::new();
    if let Some(schema) = schema {
        // The name is ours (letters, digits, underscores), so quoting it is enough.
        settings.push(format!("SET search_path TO \"{schema}\""));
    }
    if relaxed {
        settings.push("SET synchronous_commit TO off".to_owned());
    }
    let pool = PgPoolOptions::new()
        .max_connections(size)
        .acquire_timeout(ACQUIRE_TIMEOUT);
    if settings.is_empty() {
        return pool;
    }
    let settings = settings.join("; ");
    pool.after_connect(move |conn, _meta| {
        let settings = settings.clone();
        Box::pin(async move {
            conn.execute(AssertSqlSafe(settings)).await?;
            Ok(())
        })
    })
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
