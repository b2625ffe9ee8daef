//! Backchannel requests, their challenges and decisions on PostgreSQL.

use async_trait::async_trait;

use super::{PgStore, affected, all, insert_notification, one};
use crate::domain::model::{AuthRequest, Challenge, ChallengeState, VerifiedDecision};
use crate::store::rows::{self, RowExt as _, db_error};
use crate::store::{AuthRequestStore, PollGate, StoreResult, sql, sql_delivery};

#[async_trait]
impl AuthRequestStore for PgStore {
    async fn create_auth_request(
        &self,
        r: &AuthRequest,
        challenges: &[Challenge],
        push_devices: &[String],
    ) -> StoreResult<()> {
        let pushed: Vec<bool> = challenges
            .iter()
            .map(|c| push_devices.contains(&c.device_id))
            .collect();
        self.creates
            .create(r.clone(), challenges.to_vec(), pushed)
            .await
    }

    async fn get_auth_request(&self, id: &str) -> StoreResult<Option<AuthRequest>> {
        let q = sqlx::query(sql::GET_AUTH_REQUEST).bind(id);
        let request = one(&self.pool, q, rows::auth_request).await?;
        Ok(request.map(|r| self.poll_gates.overlay(r)))
    }

    async fn record_poll(
        &self,
        id: &str,
        now: i64,
        slow_down_increment_secs: i64,
    ) -> StoreResult<PollGate> {
        self.poll_gates
            .record(id, now, slow_down_increment_secs)
            .await
    }

    async fn early_poll(
        &self,
        id: &str,
        client_id: &str,
        now: i64,
        slow_down_increment_secs: i64,
    ) -> StoreResult<Option<i64>> {
        Ok(self
            .poll_gates
            .early(id, client_id, now, slow_down_increment_secs))
    }

    async fn touch_poll(&self, id: &str, now: i64) -> StoreResult<()> {
        self.poll_gates.touch(id, now);
        affected(&self.polls, sqlx::query(sql::TOUCH_POLL).bind(id).bind(now)).await?;
        Ok(())
    }

    async fn redeem(&self, id: &str, now: i64) -> StoreResult<bool> {
        let q = sqlx::query(sql::REDEEM).bind(id).bind(now);
        Ok(affected(&self.pool, q).await? == 1)
    }

    async fn list_pending_challenges(
        &self,
        device_id: &str,
        now: i64,
    ) -> StoreResult<Vec<(Challenge, AuthRequest)>> {
        let q = sqlx::query(sql::LIST_PENDING_CHALLENGES)
            .bind(device_id)
            .bind(now);
        all(&self.pool, q, rows::challenge_with_request).await
    }

    async fn get_challenge(&self, id: &str) -> StoreResult<Option<(Challenge, AuthRequest)>> {
        let q = sqlx::query(sql::GET_CHALLENGE).bind(id);
        one(&self.pool, q, rows::challenge_with_request).await
    }

    async fn record_decision(&self, d: &VerifiedDecision) -> StoreResult<bool> {
        let (request_state, challenge_state) = if d.approved {
            ("approved", ChallengeState::Approved)
        } else {
            ("denied", ChallengeState::Denied)
        };
        let mut tx = self.begin_write().await?;
        let decide_request = sqlx::query(sql::DECIDE_REQUEST)
            .bind(&d.challenge_id)
            .bind(&d.device_id)
            .bind(request_state)
            .bind(d.decided_at)
            .bind(d.user_verified)
            .bind(d.not_me);
        let Some(request_id) = one(&mut *tx, decide_request, |r| r.text("id")).await? else {
            tx.rollback().await.map_err(db_error)?;
            return Ok(false);
        };
        let decide_challenge = sqlx::query(sql::DECIDE_CHALLENGE)
            .bind(&d.challenge_id)
            .bind(&d.device_id)
            .bind(challenge_state.as_str())
            .bind(d.decided_at)
            .bind(&d.decision_jws);
        if affected(&mut *tx, decide_challenge).await? != 1 {
            // Closed meanwhile (its device was disabled): nothing changes.
            tx.rollback().await.map_err(db_error)?;
            return Ok(false);
        }
        let close_others = sqlx::query(sql::CLOSE_OTHER_CHALLENGES)
            .bind(&request_id)
            .bind(&d.challenge_id)
            .bind(d.decided_at);
        affected(&mut *tx, close_others).await?;
        let closed_events = sqlx::query(sql_delivery::INSERT_CLOSED_EVENTS)
            .bind(&request_id)
            .bind(&d.challenge_id)
            .bind(d.decided_at);
        affected(&mut *tx, closed_events).await?;
        if let Some(n) = &d.notification {
            affected(&mut *tx, insert_notification(n)).await?;
        }
        tx.commit().await.map_err(db_error)?;
        self.poll_gates.forget(&request_id);
        Ok(true)
    }

    async fn request_challenges(&self, auth_request_id: &str) -> StoreResult<Vec<Challenge>> {
        all(
            &self.pool,
            sqlx::query(sql_delivery::REQUEST_CHALLENGES).bind(auth_request_id),
            rows::challenge,
        )
        .await
    }

    async fn replace_undecided(
        &self,
        user_sub: &str,
        client_id: &str,
        now: i64,
    ) -> StoreResult<Vec<(String, Vec<String>)>> {
        // On the pool that commits without waiting for the flush: nothing the client was told
        // depends on it (the new request is already durable), and the next durable commit
        // flushes it too. A crash in between leaves the old request to expire by itself.
        let mut tx = self.polls.begin().await.map_err(db_error)?;
        let q = sqlx::query(sql::REPLACE_UNDECIDED)
            .bind(user_sub)
            .bind(client_id)
            .bind(now);
        let ids = all(&mut *tx, q, |r| r.text("id")).await?;
        let mut replaced = Vec::with_capacity(ids.len());
        for id in ids {
            let close = sqlx::query(sql::CLOSE_REQUEST_CHALLENGES)
                .bind(&id)
                .bind(now);
            affected(&mut *tx, close).await?;
            let events = sqlx::query(sql::INSERT_REQUEST_CLOSED_EVENTS)
                .bind(&id)
                .bind(now);
            affected(&mut *tx, events).await?;
            let q = sqlx::query(sql_delivery::REQUEST_CHALLENGES).bind(&id);
            let devices = all(&mut *tx, q, |r| r.text("device_id")).await?;
            replaced.push((id, devices));
        }
        tx.commit().await.map_err(db_error)?;
        for (id, _) in &replaced {
            self.poll_gates.forget(id);
        }
        Ok(replaced)
    }

    async fn user_requests(&self, user_sub: &str, limit: i64) -> StoreResult<Vec<AuthRequest>> {
        let q = sqlx::query(sql::USER_REQUESTS).bind(user_sub).bind(limit);
        all(&self.pool, q, rows::auth_request).await
    }
}
