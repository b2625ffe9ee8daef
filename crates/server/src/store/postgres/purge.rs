//! The background purge on PostgreSQL, one node at a time: a pass holds a session-level
//! advisory lock (keyed by the database's schema, so isolated test schemas do not contend) and
//! a node that finds it taken skips its pass. Each round is its own short transaction on the
//! lock's session.

use async_trait::async_trait;
use sqlx::pool::PoolConnection;
use sqlx::{Connection as _, Postgres};

use super::{PgStore, affected, all, one};
use crate::store::purge::{PurgeCutoffs, PurgeOutcome, PurgeStore, Purged};
use crate::store::rows::{RowExt as _, db_error};
use crate::store::{StoreResult, sql_purge as sql};

/// The first key of the purge's advisory lock (the second is the schema's hash). The
/// two-key space does not overlap the one-key space of sqlx's migration lock.
const PURGE_LOCK_CLASS: i32 = 0x4243_5052;
const TRY_LOCK: &str = "SELECT pg_try_advisory_lock($1, hashtext(current_schema())) AS locked";
const UNLOCK: &str = "SELECT pg_advisory_unlock($1, hashtext(current_schema())) AS unlocked";

/// The purge lock, held by one pooled session. [`PurgeLock::release`] gives it back; a lock
/// dropped unreleased (an error mid-pass) closes its connection, and the session's end
/// releases the lock, so no pooled connection ever keeps it.
pub struct PurgeLock {
    conn: PoolConnection<Postgres>,
    released: bool,
}

impl PurgeLock {
    /// Releases the lock and returns the connection to the pool.
    pub async fn release(mut self) -> StoreResult<()> {
        let q = sqlx::query(UNLOCK).bind(PURGE_LOCK_CLASS);
        let unlocked = one(&mut *self.conn, q, |r| r.flag("unlocked")).await?;
        self.released = unlocked == Some(true);
        Ok(())
    }
}

impl Drop for PurgeLock {
    fn drop(&mut self) {
        if !self.released {
            self.conn.close_on_drop();
        }
    }
}

impl PgStore {
    /// Takes the purge lock of this database and schema, or `None` if another session (a
    /// node's pass) holds it.
    pub async fn try_purge_lock(&self) -> StoreResult<Option<PurgeLock>> {
        let mut conn = self.pool.acquire().await.map_err(db_error)?;
        let q = sqlx::query(TRY_LOCK).bind(PURGE_LOCK_CLASS);
        let locked = one(&mut *conn, q, |r| r.flag("locked")).await?;
        Ok((locked == Some(true)).then_some(PurgeLock {
            conn,
            released: false,
        }))
    }
}

/// One round of requests, child rows first, in one transaction that sees one snapshot
/// (repeatable read), so every statement picks the same requests.
async fn purge_requests(lock: &mut PurgeLock, c: &PurgeCutoffs) -> StoreResult<Purged> {
    let mut tx = lock.conn.begin().await.map_err(db_error)?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
    let bound = |statement: &'static str| {
        sqlx::query(statement)
            .bind(c.expired_before)
            .bind(c.now)
            .bind(c.limit())
    };
    let push_deliveries = affected(&mut *tx, bound(sql::PURGE_PUSH_DELIVERIES)).await?;
    let notifications = affected(&mut *tx, bound(sql::PURGE_NOTIFICATIONS)).await?;
    let challenges = affected(&mut *tx, bound(sql::PURGE_CHALLENGES)).await?;
    let ids = all(&mut *tx, bound(sql::PURGE_REQUESTS), |r| r.text("id")).await?;
    tx.commit().await.map_err(db_error)?;
    Ok(Purged {
        requests: u64::try_from(ids.len()).unwrap_or(u64::MAX),
        challenges,
        notifications,
        push_deliveries,
        ..Purged::default()
    })
}

/// One round of refresh families whose absolute lifetime is over, their tokens first, in one
/// repeatable-read transaction (both statements pick the same families).
async fn purge_families(lock: &mut PurgeLock, c: &PurgeCutoffs) -> StoreResult<Purged> {
    let mut tx = lock.conn.begin().await.map_err(db_error)?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
    let bound = |statement: &'static str| sqlx::query(statement).bind(c.now).bind(c.limit());
    let refresh_tokens = affected(&mut *tx, bound(sql::PURGE_REFRESH_TOKENS)).await?;
    let refresh_families = affected(&mut *tx, bound(sql::PURGE_REFRESH_FAMILIES)).await?;
    tx.commit().await.map_err(db_error)?;
    Ok(Purged {
        refresh_families,
        refresh_tokens,
        ..Purged::default()
    })
}

/// Runs `statement` (`$1` a cutoff, `$2` the batch) in rounds, each a statement of its own;
/// `counted` says which kind of row it deletes.
async fn purge_by(
    lock: &mut PurgeLock,
    statement: &'static str,
    cutoff: i64,
    limit: i64,
    counted: fn(u64) -> Purged,
) -> StoreResult<Purged> {
    let full = u64::try_from(limit).unwrap_or(u64::MAX);
    let mut purged = Purged::default();
    loop {
        let q = sqlx::query(statement).bind(cutoff).bind(limit);
        let deleted = affected(&mut *lock.conn, q).await?;
        purged += counted(deleted);
        purged.rounds += 1;
        if deleted < full {
            return Ok(purged);
        }
    }
}

#[async_trait]
impl PurgeStore for PgStore {
    async fn purge(&self, cutoffs: &PurgeCutoffs) -> StoreResult<PurgeOutcome> {
        let Some(mut lock) = self.try_purge_lock().await? else {
            return Ok(PurgeOutcome::Skipped);
        };
        let c = *cutoffs;
        let mut purged = Purged::default();
        loop {
            let round = purge_requests(&mut lock, &c).await?;
            purged += round;
            purged.rounds += 1;
            if round.requests < u64::try_from(c.limit()).unwrap_or(u64::MAX) {
                break;
            }
        }
        purged += purge_by(&mut lock, sql::PURGE_JTIS, c.now, c.limit(), |jtis| {
            Purged {
                jtis,
                ..Purged::default()
            }
        })
        .await?;
        purged += purge_by(
            &mut lock,
            sql::PURGE_DEVICE_EVENTS,
            c.expired_before,
            c.limit(),
            |device_events| Purged {
                device_events,
                ..Purged::default()
            },
        )
        .await?;
        loop {
            let round = purge_families(&mut lock, &c).await?;
            purged += round;
            purged.rounds += 1;
            if round.refresh_families < u64::try_from(c.limit()).unwrap_or(u64::MAX) {
                break;
            }
        }
        purged += purge_by(
            &mut lock,
            sql::PURGE_ADMISSIONS,
            c.expired_before,
            c.limit(),
            |admissions| Purged {
                admissions,
                ..Purged::default()
            },
        )
        .await?;
        purged += purge_by(&mut lock, sql::PURGE_BLOCKS, c.now, c.limit(), |blocks| {
            Purged {
                blocks,
                ..Purged::default()
            }
        })
        .await?;
        purged += purge_by(
            &mut lock,
            sql::PURGE_REVOKED_ACCESS_TOKENS,
            c.now,
            c.limit(),
            |revoked_access_tokens| Purged {
                revoked_access_tokens,
                ..Purged::default()
            },
        )
        .await?;
        lock.release().await?;
        Ok(PurgeOutcome::Ran(purged))
    }
}
