//! Backchannel requests, their challenges and decisions on PostgreSQL.

use async_trait::async_trait;

use super::{PgStore, affected, all, insert_notification, one};
use crate::domain::model::{AuthRequest, Challenge, ChallengeState, VerifiedDecision};
use crate::store::rows::{self, RowExt as _, db_error, opt_json};
use crate::store::{AuthRequestStore, PollGate, StoreResult, sql, sql_delivery};

/// A request with its challenges, each device's `challenge` event and the push deliveries,
/// as one statement: one round trip, atomic without a transaction block. The challenges come
/// as parallel arrays (`$19`..`$25`, the last saying which are pushed).
const CREATE_AUTH_REQUEST: &str = "WITH c AS (SELECT * FROM unnest($19::text[], $20::text[], \
    $21::text[], $22::text[], $23::int8[], $24::int8[], $25::text[], $26::bool[]) \
    AS c(id, auth_request_id, device_id, state, created_at, decided_at, decision_jws, pushed)), \
    r AS (INSERT INTO auth_requests (id, client_id, user_sub, scope, acr_values, binding_message, \
    authorization_details, delivery_mode, client_notification_token, created_at, expires_at, \
    interval_secs, last_polled_at, state, decided_at, user_verified, redeemed_at, auth_req_id) \
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)), \
    ch AS (INSERT INTO challenges (id, auth_request_id, device_id, state, created_at, decided_at, \
    decision_jws) SELECT id, auth_request_id, device_id, state, created_at, decided_at, \
    decision_jws FROM c), \
    ev AS (INSERT INTO device_events (device_id, kind, challenge_id, created_at) \
    SELECT device_id, 'challenge', id, created_at FROM c) \
    INSERT INTO push_deliveries (challenge_id, device_id, state, next_attempt_at, deadline, \
    created_at) SELECT id, device_id, 'pending', created_at, $11, created_at FROM c WHERE pushed";

/// The poll gate (CIBA Core §7.3, §11) as one statement, so concurrent polls on several nodes
/// cannot both pass: the row is locked and read as it was (`o`); the poll is allowed if it is
/// the first or comes at least `interval_secs` after the previous one; `last_polled_at` moves
/// to now either way, and a poll that came too soon raises the interval for the rest of the
/// request's life.
const RECORD_POLL: &str = "UPDATE auth_requests a SET last_polled_at = $2, \
    interval_secs = CASE WHEN o.last_polled_at IS NULL \
    OR o.last_polled_at + o.interval_secs * 1000 <= $2 THEN o.interval_secs \
    ELSE o.interval_secs + $3 END \
    FROM (SELECT id, last_polled_at, interval_secs FROM auth_requests \
    WHERE id = $1 AND state = 'pending' FOR UPDATE) o \
    WHERE a.id = o.id \
    RETURNING a.interval_secs, \
    (o.last_polled_at IS NULL OR o.last_polled_at + o.interval_secs * 1000 <= $2) AS allowed";

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
        let insert = sqlx::query(CREATE_AUTH_REQUEST)
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
            .bind(&r.auth_req_id)
            .bind(challenges.iter().map(|c| c.id.as_str()).collect::<Vec<_>>())
            .bind(
                challenges
                    .iter()
                    .map(|c| c.auth_request_id.as_str())
                    .collect::<Vec<_>>(),
            )
            .bind(
                challenges
                    .iter()
                    .map(|c| c.device_id.as_str())
                    .collect::<Vec<_>>(),
            )
            .bind(
                challenges
                    .iter()
                    .map(|c| c.state.as_str())
                    .collect::<Vec<_>>(),
            )
            .bind(challenges.iter().map(|c| c.created_at).collect::<Vec<_>>())
            .bind(challenges.iter().map(|c| c.decided_at).collect::<Vec<_>>())
            .bind(
                challenges
                    .iter()
                    .map(|c| c.decision_jws.as_deref())
                    .collect::<Vec<_>>(),
            )
            .bind(pushed);
        affected(&self.pool, insert).await.map(drop)
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
        let q = sqlx::query(RECORD_POLL)
            .bind(id)
            .bind(now)
            .bind(slow_down_increment_secs);
        let gate = one(&self.polls, q, |r| {
            Ok(if r.flag("allowed")? {
                PollGate::Allowed
            } else {
                PollGate::SlowDown {
                    interval_secs: r.int("interval_secs")?,
                }
            })
        });
        // No row: the request is gone or no longer pending; the domain, which checked its
        // state first, answers from the state.
        Ok(gate.await?.unwrap_or(PollGate::Allowed))
    }

    async fn touch_poll(&self, id: &str, now: i64) -> StoreResult<()> {
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
