//! Request admission on SQLite: one job on the one writer reads the counts and records the
//! admission, so no other write comes between (one node; other processes wait on the file).

use async_trait::async_trait;
use rusqlite::Connection;

use super::SqliteStore;
use super::read::{execute, one};
use crate::store::StoreResult;
use crate::store::limits::{
    self as sql, Admission, AdmissionRequest, AdmissionStore, first_refusal,
};
use crate::store::rows::RowExt as _;

fn block_key(user: &str, client: &str) -> String {
    format!("{user}\u{0}{client}")
}

fn count(conn: &Connection, sql: &str, key: &str, since: i64) -> StoreResult<i64> {
    Ok(one(conn, sql, &[&key, &since], |r| r.int("n"))?.unwrap_or(0))
}

fn admit(conn: &Connection, req: &AdmissionRequest) -> StoreResult<Admission> {
    let (user, client, now) = (&req.user_sub, &req.client_id, req.now);
    if let Some(until) = one(conn, sql::BLOCKED_UNTIL, &[user, client, &now], |r| {
        r.int("blocked_until")
    })? {
        return Ok(Admission::Blocked { until });
    }
    let l = &req.limits;
    let pending = match l.pending_per_user_client {
        Some(_) => one(
            conn,
            sql::PENDING_FOR_USER_CLIENT,
            &[user, client, &now],
            |r| Ok((r.int("n")?, r.opt_int("first_end")?)),
        )?
        .unwrap_or((0, None)),
        None => (0, None),
    };
    let user_window = l
        .per_user
        .map(|w| count(conn, sql::COUNT_USER_ADMISSIONS, user, now - w.window_ms))
        .transpose()?;
    let client_window = l
        .per_client
        .map(|w| {
            count(
                conn,
                sql::COUNT_CLIENT_ADMISSIONS,
                client,
                now - w.window_ms,
            )
        })
        .transpose()?;
    match first_refusal(req, pending, user_window, client_window) {
        None => {
            execute(
                conn,
                sql::INSERT_ADMISSION,
                &[&req.request_id, user, client, &now, &req.expires_at],
            )?;
            Ok(Admission::Admitted)
        }
        Some(refusal) => {
            let nth = match refusal.nth_admission(req) {
                Some(n) => one(conn, n.sql, &[&n.key, &n.since, &n.offset], |r| {
                    r.int("admitted_at")
                })?,
                None => None,
            };
            Ok(refusal.admission(nth, now))
        }
    }
}

#[async_trait]
impl AdmissionStore for SqliteStore {
    async fn admit(&self, request: &AdmissionRequest) -> StoreResult<Admission> {
        if request.limits.is_none() {
            // Only a block can refuse: from memory (absence included), as the file has it.
            let r = request;
            let key = block_key(&r.user_sub, &r.client_id);
            let until = self.cache.blocks.get_or_load(&key, || {
                self.readers
                    .read(|conn| {
                        one(conn, sql::BLOCK_OF, &[&r.user_sub, &r.client_id], |row| {
                            row.int("blocked_until")
                        })
                    })
                    .map(Some)
            })?;
            return Ok(match until.flatten() {
                Some(until) if until > r.now => Admission::Blocked { until },
                _ => Admission::Admitted,
            });
        }
        let req = request.clone();
        self.writer.write(move |conn| admit(conn, &req)).await
    }

    async fn withdraw_admission(&self, request_id: &str) -> StoreResult<()> {
        let id = request_id.to_owned();
        self.writer
            .write(move |conn| execute(conn, sql::DELETE_ADMISSION, &[&id]))
            .await
            .map(drop)
    }

    async fn block_client_for_user(
        &self,
        user_sub: &str,
        client_id: &str,
        until: i64,
        now: i64,
    ) -> StoreResult<()> {
        let (user, client) = (user_sub.to_owned(), client_id.to_owned());
        self.writer
            .write(move |conn| execute(conn, sql::BLOCK_CLIENT, &[&user, &client, &until, &now]))
            .await?;
        self.cache
            .blocks
            .invalidate(&block_key(user_sub, client_id));
        Ok(())
    }
}
