//! The background purge on SQLite: each round is one job on the writer, so requests keep
//! being written between rounds however large the backlog; after a round has committed, the
//! caches forget the requests it deleted. One node owns the file, so no lock is needed.

use async_trait::async_trait;
use rusqlite::Connection;
use rusqlite::types::ToSql;

use super::SqliteStore;
use super::read::{all, execute};
use crate::store::purge::{PurgeCutoffs, PurgeOutcome, PurgeStore, Purged, in_rounds};
use crate::store::rows::RowExt as _;
use crate::store::{StoreResult, sql_purge as sql};

fn count(rows: usize) -> u64 {
    u64::try_from(rows).unwrap_or(u64::MAX)
}

/// One round of requests, child rows first; the ids of the requests deleted.
fn purge_requests(conn: &Connection, c: &PurgeCutoffs) -> StoreResult<(Purged, Vec<String>)> {
    let params: [&dyn ToSql; 3] = [&c.expired_before, &c.now, &c.limit()];
    let push_deliveries = count(execute(conn, sql::PURGE_PUSH_DELIVERIES, &params)?);
    let notifications = count(execute(conn, sql::PURGE_NOTIFICATIONS, &params)?);
    let challenges = count(execute(conn, sql::PURGE_CHALLENGES, &params)?);
    let ids = all(conn, sql::PURGE_REQUESTS, &params, |r| r.text("id"))?;
    let purged = Purged {
        requests: count(ids.len()),
        challenges,
        notifications,
        push_deliveries,
        ..Purged::default()
    };
    Ok((purged, ids))
}

impl SqliteStore {
    /// Runs `statement` (`$1` a cutoff, `$2` the batch) in rounds on the writer; `counted`
    /// says which kind of row it deletes.
    async fn purge_by(
        &self,
        statement: &'static str,
        cutoff: i64,
        limit: i64,
        counted: fn(u64) -> Purged,
    ) -> StoreResult<Purged> {
        in_rounds(limit, Purged::rows, || async move {
            let deleted = self
                .writer
                .write(move |conn| execute(conn, statement, &[&cutoff, &limit]))
                .await?;
            Ok(counted(count(deleted)))
        })
        .await
    }
}

#[async_trait]
impl PurgeStore for SqliteStore {
    async fn purge(&self, cutoffs: &PurgeCutoffs) -> StoreResult<PurgeOutcome> {
        let c = *cutoffs;
        let mut purged = in_rounds(
            c.limit(),
            |p| p.requests,
            || async move {
                let (purged, ids) = self
                    .writer
                    .write(move |conn| purge_requests(conn, &c))
                    .await?;
                for id in &ids {
                    self.request_changed(id);
                }
                Ok(purged)
            },
        )
        .await?;
        self.polls.sweep(c.expired_before);
        purged += self
            .purge_by(sql::PURGE_JTIS, c.now, c.limit(), |jtis| Purged {
                jtis,
                ..Purged::default()
            })
            .await?;
        purged += self
            .purge_by(
                sql::PURGE_DEVICE_EVENTS,
                c.expired_before,
                c.limit(),
                |device_events| Purged {
                    device_events,
                    ..Purged::default()
                },
            )
            .await?;
        purged += in_rounds(
            c.limit(),
            |p| p.refresh_families,
            || async move {
                self.writer
                    .write(move |conn| {
                        let params: [&dyn ToSql; 2] = [&c.now, &c.limit()];
                        let refresh_tokens =
                            count(execute(conn, sql::PURGE_REFRESH_TOKENS, &params)?);
                        let refresh_families =
                            count(execute(conn, sql::PURGE_REFRESH_FAMILIES, &params)?);
                        Ok(Purged {
                            refresh_families,
                            refresh_tokens,
                            ..Purged::default()
                        })
                    })
                    .await
            },
        )
        .await?;
        purged += self
            .purge_by(
                sql::PURGE_ADMISSIONS,
                c.expired_before,
                c.limit(),
                |admissions| Purged {
                    admissions,
                    ..Purged::default()
                },
            )
            .await?;
        purged += self
            .purge_by(sql::PURGE_BLOCKS, c.now, c.limit(), |blocks| Purged {
                blocks,
                ..Purged::default()
            })
            .await?;
        purged += self
            .purge_by(
                sql::PURGE_REVOKED_ACCESS_TOKENS,
                c.now,
                c.limit(),
                |revoked_access_tokens| Purged {
                    revoked_access_tokens,
                    ..Purged::default()
                },
            )
            .await?;
        Ok(PurgeOutcome::Ran(purged))
    }
}
