//! Auth requests and their challenges on SQLite. A request is written once with all its rows
//! (one job, so one group commit); polls of a pending request touch only memory (the request
//! from the cache, the poll gate from the [`super::cache::PollBook`]); decisions and redemption
//! stay single conditional statements on the writer, so the first decision wins and a token is
//! issued once.

use async_trait::async_trait;
use rusqlite::Connection;

use super::SqliteStore;
use super::read::{all, execute, one};
use crate::domain::model::{
    AuthRequest, AuthRequestState, Challenge, ChallengeState, Notification, VerifiedDecision,
};
use crate::store::rows::{self, RowExt as _, opt_json};
use crate::store::{AuthRequestStore, PollGate, StoreResult, sql, sql_delivery};

/// Runs `f` in a nested savepoint and undoes what it wrote when it returns `Ok(None)`: a
/// conditional step that matched nothing leaves no trace, yet the job itself succeeds.
pub(super) fn all_or_nothing<T>(
    conn: &Connection,
    f: impl FnOnce(&Connection) -> StoreResult<Option<T>>,
) -> StoreResult<Option<T>> {
    execute(conn, "SAVEPOINT step", &[])?;
    let result = f(conn);
    if !matches!(result, Ok(Some(_))) {
        execute(conn, "ROLLBACK TO step", &[])?;
    }
    execute(conn, "RELEASE step", &[])?;
    result
}

pub(super) fn insert_notification(conn: &Connection, n: &Notification) -> StoreResult<usize> {
    execute(
        conn,
        sql_delivery::INSERT_NOTIFICATION,
        &[
            &n.id,
            &n.auth_request_id,
            &n.client_id,
            &n.kind.as_str(),
            &n.payload,
            &n.state.as_str(),
            &n.attempts,
            &n.next_attempt_at,
            &n.deadline,
            &n.last_error,
            &n.created_at,
            &n.delivered_at,
        ],
    )
}

fn insert_request(
    conn: &Connection,
    r: &AuthRequest,
    challenges: &[Challenge],
    push_devices: &[String],
) -> StoreResult<()> {
    let details = opt_json(r.authorization_details.as_ref())?;
    execute(
        conn,
        sql::INSERT_AUTH_REQUEST,
        &[
            &r.id,
            &r.client_id,
            &r.user_sub,
            &r.scope,
            &r.acr_values,
            &r.binding_message,
            &details,
            &r.delivery_mode.as_str(),
            &r.client_notification_token,
            &r.created_at,
            &r.expires_at,
            &r.interval_secs,
            &r.last_polled_at,
            &r.state.as_str(),
            &r.decided_at,
            &r.user_verified,
            &r.redeemed_at,
            &r.auth_req_id,
            &r.uv_required,
        ],
    )?;
    for c in challenges {
        execute(
            conn,
            sql::INSERT_CHALLENGE,
            &[
                &c.id,
                &c.auth_request_id,
                &c.device_id,
                &c.state.as_str(),
                &c.created_at,
                &c.decided_at,
                &c.decision_jws,
            ],
        )?;
        execute(
            conn,
            sql_delivery::INSERT_CHALLENGE_EVENT,
            &[&c.device_id, &c.id, &c.created_at],
        )?;
        if push_devices.contains(&c.device_id) {
            execute(
                conn,
                sql_delivery::INSERT_PUSH_DELIVERY,
                &[&c.id, &c.device_id, &c.created_at, &r.expires_at],
            )?;
        }
    }
    Ok(())
}

fn decide(conn: &Connection, d: &VerifiedDecision) -> StoreResult<Option<String>> {
    let (request_state, challenge_state) = if d.approved {
        ("approved", ChallengeState::Approved)
    } else {
        ("denied", ChallengeState::Denied)
    };
    all_or_nothing(conn, |conn| {
        let Some(request_id) = one(
            conn,
            sql::DECIDE_REQUEST,
            &[
                &d.challenge_id,
                &d.device_id,
                &request_state,
                &d.decided_at,
                &d.user_verified,
                &d.not_me,
            ],
            |r| r.text("id"),
        )?
        else {
            return Ok(None);
        };
        let decided = execute(
            conn,
            sql::DECIDE_CHALLENGE,
            &[
                &d.challenge_id,
                &d.device_id,
                &challenge_state.as_str(),
                &d.decided_at,
                &d.decision_jws,
            ],
        )?;
        if decided != 1 {
            // Closed meanwhile (its device was disabled): nothing changes.
            return Ok(None);
        }
        execute(
            conn,
            sql::CLOSE_OTHER_CHALLENGES,
            &[&request_id, &d.challenge_id, &d.decided_at],
        )?;
        execute(
            conn,
            sql_delivery::INSERT_CLOSED_EVENTS,
            &[&request_id, &d.challenge_id, &d.decided_at],
        )?;
        if let Some(n) = &d.notification {
            insert_notification(conn, n)?;
        }
        Ok(Some(request_id))
    })
}

fn replace_undecided(
    conn: &Connection,
    user: &str,
    client: &str,
    now: i64,
) -> StoreResult<Vec<(String, Vec<String>)>> {
    let ids = all(conn, sql::REPLACE_UNDECIDED, &[&user, &client, &now], |r| {
        r.text("id")
    })?;
    let mut replaced = Vec::with_capacity(ids.len());
    for id in ids {
        execute(conn, sql::CLOSE_REQUEST_CHALLENGES, &[&id, &now])?;
        execute(conn, sql::INSERT_REQUEST_CLOSED_EVENTS, &[&id, &now])?;
        let devices = all(conn, sql_delivery::REQUEST_CHALLENGES, &[&id], |r| {
            r.text("device_id")
        })?;
        replaced.push((id, devices));
    }
    Ok(replaced)
}

impl SqliteStore {
    /// A request changed state in the file: forget its cached copy and its poll state.
    pub(super) fn request_changed(&self, id: &str) {
        self.cache.requests.invalidate(id);
        self.polls.forget(id);
    }

    /// The request as the file has it, from memory when cached.
    fn cached_request(&self, id: &str) -> StoreResult<Option<AuthRequest>> {
        self.cache.requests.get_or_load(id, || {
            self.readers.read(|conn| {
                one(conn, sql::GET_AUTH_REQUEST, &[&id], |r| {
                    rows::auth_request(r)
                })
            })
        })
    }
}

#[async_trait]
impl AuthRequestStore for SqliteStore {
    async fn create_auth_request(
        &self,
        request: &AuthRequest,
        challenges: &[Challenge],
        push_devices: &[String],
    ) -> StoreResult<()> {
        let (r, c, p) = (request.clone(), challenges.to_vec(), push_devices.to_vec());
        self.writer
            .write(move |conn| insert_request(conn, &r, &c, &p))
            .await
    }

    async fn get_auth_request(&self, id: &str) -> StoreResult<Option<AuthRequest>> {
        Ok(self.cached_request(id)?.map(|r| self.polls.overlay(r)))
    }

    async fn record_poll(
        &self,
        id: &str,
        now: i64,
        slow_down_increment_secs: i64,
    ) -> StoreResult<PollGate> {
        // Not pending (or gone): the domain, which checked the state first, answers from it.
        Ok(match self.cached_request(id)? {
            Some(r) if r.state == AuthRequestState::Pending => {
                self.polls.record(&r, now, slow_down_increment_secs)
            }
            _ => PollGate::Allowed,
        })
    }

    async fn touch_poll(&self, id: &str, now: i64) -> StoreResult<()> {
        if let Some(r) = self.cached_request(id)?
            && r.state == AuthRequestState::Pending
        {
            self.polls.touch(&r, now);
        }
        Ok(())
    }

    async fn redeem(&self, id: &str, now: i64) -> StoreResult<bool> {
        let owned = id.to_owned();
        let redeemed = self
            .writer
            .write(move |conn| execute(conn, sql::REDEEM, &[&owned, &now]))
            .await?;
        self.request_changed(id);
        Ok(redeemed == 1)
    }

    async fn list_pending_challenges(
        &self,
        device_id: &str,
        now: i64,
    ) -> StoreResult<Vec<(Challenge, AuthRequest)>> {
        self.readers.read(|conn| {
            all(
                conn,
                sql::LIST_PENDING_CHALLENGES,
                &[&device_id, &now],
                |r| rows::challenge_with_request(r),
            )
        })
    }

    async fn get_challenge(&self, id: &str) -> StoreResult<Option<(Challenge, AuthRequest)>> {
        self.readers.read(|conn| {
            one(conn, sql::GET_CHALLENGE, &[&id], |r| {
                rows::challenge_with_request(r)
            })
        })
    }

    async fn record_decision(&self, d: &VerifiedDecision) -> StoreResult<bool> {
        let decision = d.clone();
        let decided = self
            .writer
            .write(move |conn| decide(conn, &decision))
            .await?;
        Ok(match decided {
            Some(request_id) => {
                self.request_changed(&request_id);
                true
            }
            None => false,
        })
    }

    async fn request_challenges(&self, auth_request_id: &str) -> StoreResult<Vec<Challenge>> {
        self.readers.read(|conn| {
            all(
                conn,
                sql_delivery::REQUEST_CHALLENGES,
                &[&auth_request_id],
                |r| rows::challenge(r),
            )
        })
    }

    async fn replace_undecided(
        &self,
        user_sub: &str,
        client_id: &str,
        now: i64,
    ) -> StoreResult<Vec<(String, Vec<String>)>> {
        let (user, client) = (user_sub.to_owned(), client_id.to_owned());
        let replaced = self
            .writer
            .write(move |conn| replace_undecided(conn, &user, &client, now))
            .await?;
        for (id, _) in &replaced {
            self.request_changed(id);
        }
        Ok(replaced)
    }

    async fn user_requests(&self, user_sub: &str, limit: i64) -> StoreResult<Vec<AuthRequest>> {
        self.readers.read(|conn| {
            all(conn, sql::USER_REQUESTS, &[&user_sub, &limit], |r| {
                rows::auth_request(r)
            })
        })
    }
}
