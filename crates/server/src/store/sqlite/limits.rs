//! Request admission on SQLite: one job on the one writer reads the counts and records the
//! admission, so no other write comes between (one node; other processes wait on the file).

use async_trait::async_trait;
use rusqlite::Connection;

use super::SqliteStore;
use super::read::{execute, one};
use crate::store::StoreResult;
use crate::store::limits::{
    self as sql, Admission, AdmissionRequest, AdmissionStore, Refusal, first_refusal,
};
use crate::store::rows::RowExt as _;

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
            let nth = match refusal {
                Refusal::Window {
                    kind,
                    window,
                    offset,
                } => {
                    let (text, key) = match kind {
                        sql::LimitKind::PerClient => (sql::NTH_CLIENT_ADMISSION, client),
                        _ => (sql::NTH_USER_ADMISSION, user),
                    };
                    let since = now - window.window_ms;
                    one(conn, text, &[key, &since, &offset], |r| {
                        r.int("admitted_at")
                    })?
                }
                Refusal::Pending { .. } => None,
            };
            Ok(refusal.admission(nth, now))
        }
    }
}

#[async_trait]
impl AdmissionStore for SqliteStore {
    async fn admit(&self, request: &AdmissionRequest) -> StoreResult<Admission> {
        if request.limits.is_none() {
            let r = request;
            let until = self.readers.read(|conn| {
                one(
                    conn,
                    sql::BLOCKED_UNTIL,
                    &[&r.user_sub, &r.client_id, &r.now],
                    |row| row.int("blocked_until"),
                )
            })?;
            return Ok(until.map_or(Admission::Admitted, |until| Admission::Blocked { until }));
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
            .await
            .map(drop)
    }
}
