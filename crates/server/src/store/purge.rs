//! The background purge's storage side: what a pass deletes ([`PurgeStore`]), in bounded
//! batches, and what it reports. The statements are in [`super::sql_purge`].

use std::future::Future;

use async_trait::async_trait;

use super::StoreResult;

/// Rows a purge statement deletes at most per round: a round is one short transaction, so a
/// large backlog never holds locks (or the SQLite writer) for long.
pub const PURGE_BATCH_ROWS: i64 = 1_000;

/// What one pass may delete, as of `now` (Unix ms).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PurgeCutoffs {
    /// Nothing pending at `now` with a deadline at or after it is deleted; used `jti`s,
    /// refresh families and revoked access tokens are deleted once `now` reached their expiry.
    pub now: i64,
    /// Requests that expired before this (`now` minus the grace period), whatever their state,
    /// go with their challenges, notification and push deliveries; device events written
    /// before it go too.
    pub expired_before: i64,
    /// Rows per statement per round ([`PURGE_BATCH_ROWS`] outside tests; at least 1).
    pub batch_rows: i64,
}

impl PurgeCutoffs {
    /// The cutoffs at `now` for a grace period of `retention_ms`, in batches of
    /// [`PURGE_BATCH_ROWS`].
    pub fn at(now: i64, retention_ms: i64) -> Self {
        PurgeCutoffs {
            now,
            expired_before: now.saturating_sub(retention_ms.max(0)),
            batch_rows: PURGE_BATCH_ROWS,
        }
    }

    /// The `LIMIT` of each statement.
    pub(crate) fn limit(&self) -> i64 {
        self.batch_rows.max(1)
    }
}

/// What a pass deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Purged {
    pub requests: u64,
    pub challenges: u64,
    pub notifications: u64,
    pub push_deliveries: u64,
    pub device_events: u64,
    pub jtis: u64,
    pub refresh_families: u64,
    pub refresh_tokens: u64,
    pub revoked_access_tokens: u64,
    pub admissions: u64,
    pub blocks: u64,
    /// Transactions the pass ran (each deleting at most a batch per statement).
    pub rounds: u64,
}

impl Purged {
    /// Rows deleted in all.
    pub fn rows(&self) -> u64 {
        self.requests
            + self.challenges
            + self.notifications
            + self.push_deliveries
            + self.device_events
            + self.jtis
            + self.refresh_families
            + self.refresh_tokens
            + self.revoked_access_tokens
            + self.admissions
            + self.blocks
    }
}

/// The outcome of a pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PurgeOutcome {
    Ran(Purged),
    /// Another node is running a pass on this database (PostgreSQL): this one did nothing.
    Skipped,
}

/// Deletes what the server no longer needs, in bounded rounds, one node at a time.
#[async_trait]
pub trait PurgeStore: Send + Sync {
    /// Runs one pass to completion: each kind of row is deleted in rounds of at most
    /// `cutoffs.batch_rows` (of requests, `jti`s, device events), each round its own
    /// transaction, until a round deletes fewer. Deleted: requests that expired before
    /// `expired_before` unless a notification or push delivery of theirs is pending with a
    /// deadline at or after `now`, together with their challenges, notification and push
    /// deliveries; `jti`s that expired by `now`; device events written before
    /// `expired_before`; refresh families whose absolute lifetime ended by `now`, with their
    /// tokens; revoked access tokens that expired by `now`; request admissions made and expired
    /// before `expired_before`; "not me" blocks that ended by `now`. On PostgreSQL the pass holds an advisory lock (per database and
    /// schema) and is `Skipped` when another session holds it; SQLite has one node.
    async fn purge(&self, cutoffs: &PurgeCutoffs) -> StoreResult<PurgeOutcome>;
}

impl std::ops::AddAssign for Purged {
    fn add_assign(&mut self, other: Purged) {
        self.requests += other.requests;
        self.challenges += other.challenges;
        self.notifications += other.notifications;
        self.push_deliveries += other.push_deliveries;
        self.device_events += other.device_events;
        self.jtis += other.jtis;
        self.refresh_families += other.refresh_families;
        self.refresh_tokens += other.refresh_tokens;
        self.revoked_access_tokens += other.revoked_access_tokens;
        self.admissions += other.admissions;
        self.blocks += other.blocks;
        self.rounds += other.rounds;
    }
}

/// Runs `round` (one transaction) until the count `driving` takes from what it deleted is
/// below `batch_rows`; what all the rounds deleted.
pub(crate) async fn in_rounds<F, Fut>(
    batch_rows: i64,
    driving: fn(&Purged) -> u64,
    mut round: F,
) -> StoreResult<Purged>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = StoreResult<Purged>>,
{
    let full = u64::try_from(batch_rows.max(1)).unwrap_or(u64::MAX);
    let mut total = Purged::default();
    loop {
        let deleted = round().await?;
        total += deleted;
        total.rounds += 1;
        if driving(&deleted) < full {
            return Ok(total);
        }
    }
}
