//! Request admission on PostgreSQL: one transaction takes a transaction-level advisory lock
//! per user (and per client when the client window is limited; always client before user, so
//! two admissions never wait on each other in a cycle), counts, and records the admission. Two
//! nodes admitting for one user therefore take turns, and the limits hold across them.
//!
//! It runs on the poll-gate pool, which commits without waiting for the WAL flush: the request
//! written after it waits for a flush that covers the admission too, so an acknowledged request
//! is never left without its admission; a crash can only forget admissions whose requests were
//! never acknowledged.

use async_trait::async_trait;

use super::{PgStore, affected, one};
use crate::store::StoreResult;
use crate::store::limits::{
    self as sql, Admission, AdmissionRequest, AdmissionStore, first_refusal,
};
use crate::store::rows::{RowExt as _, db_error};

/// One lock per user or client, named within the schema (tests share a database).
const LOCK: &str = "SELECT pg_advisory_xact_lock(\
    hashtextextended('backchannel-admission:' || current_schema() || ':' || $1, 0))";

#[async_trait]
impl AdmissionStore for PgStore {
    async fn admit(&self, req: &AdmissionRequest) -> StoreResult<Admission> {
        let (user, client, now) = (&req.user_sub, &req.client_id, req.now);
        let l = &req.limits;
        if l.is_none() {
            // Only a block can refuse: kept like the client for `CACHE_MAX_AGE` (absence
            // too), so a block written on another node holds here within a second.
            let key = format!("{user}\u{0}{client}");
            let load = async {
                let q = sqlx::query(sql::BLOCK_OF).bind(user).bind(client);
                one(&self.pool, q, |r| r.int("blocked_until"))
                    .await
                    .map(Some)
            };
            let until = self.cache.blocks.get_or_load_async(&key, load).await?;
            return Ok(match until.flatten() {
                Some(until) if until > now => Admission::Blocked { until },
                _ => Admission::Admitted,
            });
        }
        let mut tx = self.polls.begin().await.map_err(db_error)?;
        if l.per_client.is_some() {
            let key = format!("client:{client}");
            affected(&mut *tx, sqlx::query(LOCK).bind(key)).await?;
        }
        if l.pending_per_user_client.is_some() || l.per_user.is_some() {
            let key = format!("user:{user}");
            affected(&mut *tx, sqlx::query(LOCK).bind(key)).await?;
        }
        let blocked = sqlx::query(sql::BLOCKED_UNTIL)
            .bind(user)
            .bind(client)
            .bind(now);
        if let Some(until) = one(&mut *tx, blocked, |r| r.int("blocked_until")).await? {
            tx.rollback().await.map_err(db_error)?;
            return Ok(Admission::Blocked { until });
        }
        let pending = match l.pending_per_user_client {
            Some(_) => {
                let q = sqlx::query(sql::PENDING_FOR_USER_CLIENT)
                    .bind(user)
                    .bind(client)
                    .bind(now);
                one(&mut *tx, q, |r| Ok((r.int("n")?, r.opt_int("first_end")?)))
                    .await?
                    .unwrap_or((0, None))
            }
            None => (0, None),
        };
        let mut user_window = None;
        if let Some(w) = l.per_user {
            let q = sqlx::query(sql::COUNT_USER_ADMISSIONS)
                .bind(user)
                .bind(now - w.window_ms);
            user_window = one(&mut *tx, q, |r| r.int("n")).await?;
        }
        let mut client_window = None;
        if let Some(w) = l.per_client {
            let q = sqlx::query(sql::COUNT_CLIENT_ADMISSIONS)
                .bind(client)
                .bind(now - w.window_ms);
            client_window = one(&mut *tx, q, |r| r.int("n")).await?;
        }
        let answer = match first_refusal(req, pending, user_window, client_window) {
            None => {
                let q = sqlx::query(sql::INSERT_ADMISSION)
                    .bind(&req.request_id)
                    .bind(user)
                    .bind(client)
                    .bind(now)
                    .bind(req.expires_at);
                affected(&mut *tx, q).await?;
                Admission::Admitted
            }
            Some(refusal) => {
                let nth = match refusal.nth_admission(req) {
                    Some(n) => {
                        let q = sqlx::query(n.sql).bind(n.key).bind(n.since).bind(n.offset);
                        one(&mut *tx, q, |r| r.int("admitted_at")).await?
                    }
                    None => None,
                };
                refusal.admission(nth, now)
            }
        };
        tx.commit().await.map_err(db_error)?;
        Ok(answer)
    }

    async fn withdraw_admission(&self, request_id: &str) -> StoreResult<()> {
        let q = sqlx::query(sql::DELETE_ADMISSION).bind(request_id);
        affected(&self.polls, q).await.map(drop)
    }

    async fn block_client_for_user(
        &self,
        user_sub: &str,
        client_id: &str,
        until: i64,
        now: i64,
    ) -> StoreResult<()> {
        let q = sqlx::query(sql::BLOCK_CLIENT)
            .bind(user_sub)
            .bind(client_id)
            .bind(until)
            .bind(now);
        affected(&self.pool, q).await?;
        self.cache
            .blocks
            .invalidate(&format!("{user_sub}\u{0}{client_id}"));
        Ok(())
    }
}
