//! Backchannel requests, their challenges and decisions on PostgreSQL.

use async_trait::async_trait;

use super::{PgStore, affected, all, insert_notification, one};
use crate::domain::model::{AuthRequest, Challenge, ChallengeState, VerifiedDecision};
use crate::store::rows::{self, RowExt as _, db_error, opt_json};
use crate::store::{AuthRequestStore, PollGate, StoreResult, sql, sql_delivery};

#[async_trait]
impl AuthRequestStore for PgStore {
    async fn create_auth_request(
        &self,
        r: &AuthRequest,
        challenges: &[Challenge],
        push_devices: &[String],
    ) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        let insert = sqlx::query(sql::INSERT_AUTH_REQUEST)
            .bind(&r.id)
            .bind(&r.client_id)
            .bind(&r.user_sub)
            .bind(&r.scope)
            .bind(&r.acr_values)
            .bind(&r.binding_message)
            .bind(opt_json(r.authorization_details.as_ref())?)
            .bind(r.delivery_mode.as_str())
            .bind(&r.client_notification_token)
            .bind(r.created_at)
            .bind(r.expires_at)
            .bind(r.interval_secs)
            .bind(r.last_polled_at)
            .bind(r.state.as_str())
            .bind(r.decided_at)
            .bind(r.user_verified)
            .bind(r.redeemed_at)
            .bind(&r.auth_req_id);
        affected(&mut *tx, insert).await?;
        for c in challenges {
            let insert = sqlx::query(sql::INSERT_CHALLENGE)
                .bind(&c.id)
                .bind(&c.auth_request_id)
                .bind(&c.device_id)
                .bind(c.state.as_str())
                .bind(c.created_at)
                .bind(c.decided_at)
                .bind(&c.decision_jws);
            affected(&mut *tx, insert).await?;
            let event = sqlx::query(sql_delivery::INSERT_CHALLENGE_EVENT)
                .bind(&c.device_id)
                .bind(&c.id)
                .bind(c.created_at);
            affected(&mut *tx, event).await?;
            if !push_devices.contains(&c.device_id) {
                continue;
            }
            let push = sqlx::query(sql_delivery::INSERT_PUSH_DELIVERY)
                .bind(&c.id)
                .bind(&c.device_id)
                .bind(c.created_at)
                .bind(r.expires_at);
            affected(&mut *tx, push).await?;
        }
        tx.commit().await.map_err(db_error)
    }

    async fn get_auth_request(&self, id: &str) -> StoreResult<Option<AuthRequest>> {
        let q = sqlx::query(sql::GET_AUTH_REQUEST).bind(id);
        one(&self.pool, q, rows::auth_request).await
    }

    async fn record_poll(
        &self,
        id: &str,
        now: i64,
        slow_down_increment_secs: i64,
    ) -> StoreResult<PollGate> {
        let allowed = sqlx::query(sql::POLL_ALLOWED).bind(id).bind(now);
        if affected(&self.pool, allowed).await? == 1 {
            return Ok(PollGate::Allowed);
        }
        let slow = sqlx::query(sql::POLL_SLOW_DOWN)
            .bind(id)
            .bind(now)
            .bind(slow_down_increment_secs);
        // No row: the request is gone or no longer pending; the domain, which
        // checked its state first, answers from the state.
        Ok(
            match one(&self.pool, slow, |r| r.int("interval_secs")).await? {
                None => PollGate::Allowed,
                Some(interval_secs) => PollGate::SlowDown { interval_secs },
            },
        )
    }

    async fn touch_poll(&self, id: &str, now: i64) -> StoreResult<()> {
        affected(&self.pool, sqlx::query(sql::TOUCH_POLL).bind(id).bind(now)).await?;
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
            .bind(d.user_verified);
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
}
