//! Group commit for backchannel requests on PostgreSQL. Each request must be durable before it
//! is answered, and a commit waits for the WAL flush: one flush per request would bound a node
//! by the disk's flush rate times its pool size. Requests that arrive together are written by
//! one statement instead (up to [`MAX_BATCH`]), so one flush acknowledges them all. A few
//! writer tasks take turns collecting and writing, so the next batch gathers while one waits
//! for its flush. A batch that fails is written again one request at a time, so a failing
//! request fails only its own caller.

use std::sync::Arc;

use tokio::sync::{Mutex, mpsc, oneshot};

use super::affected;
use crate::domain::model::{AuthRequest, Challenge};
use crate::store::rows::opt_json;
use crate::store::{StoreError, StoreResult};

/// At most this many requests go into one statement.
const MAX_BATCH: usize = 256;
/// Writer tasks, each with at most one batch in flight.
const WRITERS: usize = 4;

/// Requests with their challenges, each device's `challenge` event and the push deliveries,
/// as one statement, atomic without a transaction block. The requests come as parallel arrays
/// (`$1`..`$18` and `$28`), the challenges too (`$19`..`$27`, with which are pushed and the
/// push deadline: the request's expiry).
const CREATE_AUTH_REQUESTS: &str = "WITH r AS (INSERT INTO auth_requests (id, client_id, \
    user_sub, scope, acr_values, binding_message, authorization_details, delivery_mode, \
    client_notification_token, created_at, expires_at, interval_secs, last_polled_at, state, \
    decided_at, user_verified, redeemed_at, auth_req_id, uv_required) \
    SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], \
    $6::text[], $7::text[], $8::text[], $9::text[], $10::int8[], $11::int8[], $12::int8[], \
    $13::int8[], $14::text[], $15::int8[], $16::bool[], $17::int8[], $18::text[], \
    $28::bool[])), \
    c AS (SELECT * FROM unnest($19::text[], $20::text[], $21::text[], $22::text[], \
    $23::int8[], $24::int8[], $25::text[], $26::bool[], $27::int8[]) \
    AS c(id, auth_request_id, device_id, state, created_at, decided_at, decision_jws, pushed, \
    deadline)), \
    ch AS (INSERT INTO challenges (id, auth_request_id, device_id, state, created_at, decided_at, \
    decision_jws) SELECT id, auth_request_id, device_id, state, created_at, decided_at, \
    decision_jws FROM c), \
    ev AS (INSERT INTO device_events (device_id, kind, challenge_id, created_at) \
    SELECT device_id, 'challenge', id, created_at FROM c) \
    INSERT INTO push_deliveries (challenge_id, device_id, state, next_attempt_at, deadline, \
    created_at) SELECT id, device_id, 'pending', created_at, deadline, created_at FROM c \
    WHERE pushed";

/// One request to store, and its caller waiting for the commit.
pub(super) struct Job {
    pub(super) request: AuthRequest,
    pub(super) challenges: Vec<Challenge>,
    /// Per challenge: whether its device is pushed to.
    pub(super) pushed: Vec<bool>,
    done: oneshot::Sender<StoreResult<()>>,
}

/// The queue the writer tasks take batches from.
pub(super) struct Batcher {
    jobs: mpsc::UnboundedSender<Job>,
}

impl Batcher {
    /// Starts the writer tasks on the current runtime.
    pub(super) fn start(pool: sqlx::PgPool) -> Batcher {
        let (jobs, queue) = mpsc::unbounded_channel();
        let queue = Arc::new(Mutex::new(queue));
        for _ in 0..WRITERS {
            tokio::spawn(write_batches(pool.clone(), queue.clone()));
        }
        Batcher { jobs }
    }

    /// Stores the request once its batch has committed.
    pub(super) async fn create(
        &self,
        request: AuthRequest,
        challenges: Vec<Challenge>,
        pushed: Vec<bool>,
    ) -> StoreResult<()> {
        let (done, answer) = oneshot::channel();
        let job = Job {
            request,
            challenges,
            pushed,
            done,
        };
        let stopped = || StoreError::Unavailable("the request writer has stopped".to_owned());
        self.jobs.send(job).map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

async fn write_batches(pool: sqlx::PgPool, queue: Arc<Mutex<mpsc::UnboundedReceiver<Job>>>) {
    loop {
        let batch = {
            let mut queue = queue.lock().await;
            let Some(first) = queue.recv().await else {
                return;
            };
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH {
                match queue.try_recv() {
                    Ok(job) => batch.push(job),
                    Err(_) => break,
                }
            }
            batch
        };
        match insert(&pool, &batch).await {
            Ok(()) => {
                for job in batch {
                    let _ = job.done.send(Ok(()));
                }
            }
            // Nothing was written; the database is away, so one at a time would fail too.
            Err(StoreError::Unavailable(why)) => {
                for job in batch {
                    let _ = job.done.send(Err(StoreError::Unavailable(why.clone())));
                }
            }
            Err(failed) if batch.len() == 1 => {
                if let Some(job) = batch.into_iter().next() {
                    let _ = job.done.send(Err(failed));
                }
            }
            Err(_) => {
                for job in batch {
                    let alone = insert(&pool, std::slice::from_ref(&job)).await;
                    let _ = job.done.send(alone);
                }
            }
        }
    }
}

/// One statement for every job of the batch.
async fn insert(pool: &sqlx::PgPool, batch: &[Job]) -> StoreResult<()> {
    let requests = || batch.iter().map(|j| &j.request);
    let challenges = || batch.iter().flat_map(|j| j.challenges.iter());
    let text = |f: fn(&AuthRequest) -> &str| requests().map(f).collect::<Vec<_>>();
    let opt_text = |f: fn(&AuthRequest) -> Option<&str>| requests().map(f).collect::<Vec<_>>();
    let int = |f: fn(&AuthRequest) -> i64| requests().map(f).collect::<Vec<_>>();
    let opt_int = |f: fn(&AuthRequest) -> Option<i64>| requests().map(f).collect::<Vec<_>>();
    let details = requests()
        .map(|r| opt_json(r.authorization_details.as_ref()))
        .collect::<StoreResult<Vec<_>>>()?;
    let q = sqlx::query(CREATE_AUTH_REQUESTS)
        .bind(text(|r| &r.id))
        .bind(text(|r| &r.client_id))
        .bind(text(|r| &r.user_sub))
        .bind(text(|r| &r.scope))
        .bind(opt_text(|r| r.acr_values.as_deref()))
        .bind(opt_text(|r| r.binding_message.as_deref()))
        .bind(details)
        .bind(text(|r| r.delivery_mode.as_str()))
        .bind(opt_text(|r| r.client_notification_token.as_deref()))
        .bind(int(|r| r.created_at))
        .bind(int(|r| r.expires_at))
        .bind(int(|r| r.interval_secs))
        .bind(opt_int(|r| r.last_polled_at))
        .bind(text(|r| r.state.as_str()))
        .bind(opt_int(|r| r.decided_at))
        .bind(requests().map(|r| r.user_verified).collect::<Vec<_>>())
        .bind(opt_int(|r| r.redeemed_at))
        .bind(opt_text(|r| r.auth_req_id.as_deref()))
        .bind(challenges().map(|c| c.id.as_str()).collect::<Vec<_>>())
        .bind(
            challenges()
                .map(|c| c.auth_request_id.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(
            challenges()
                .map(|c| c.device_id.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(challenges().map(|c| c.state.as_str()).collect::<Vec<_>>())
        .bind(challenges().map(|c| c.created_at).collect::<Vec<_>>())
        .bind(challenges().map(|c| c.decided_at).collect::<Vec<_>>())
        .bind(
            challenges()
                .map(|c| c.decision_jws.as_deref())
                .collect::<Vec<_>>(),
        )
        .bind(
            batch
                .iter()
                .flat_map(|j| j.pushed.iter().copied())
                .collect::<Vec<_>>(),
        )
        .bind(
            batch
                .iter()
                .flat_map(|j| j.challenges.iter().map(|_| j.request.expires_at))
                .collect::<Vec<_>>(),
        )
        .bind(requests().map(|r| r.uv_required).collect::<Vec<_>>());
    affected(pool, q).await.map(drop)
}
