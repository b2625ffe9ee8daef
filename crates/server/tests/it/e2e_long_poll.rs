//! Long polling at the token endpoint: a held poll is woken by the decision (not found on its
//! next re-check), answers with the tokens, or times out as pending and counts from its
//! answer. Nothing here measures how soon: what proves a wake-up is that it happens before
//! any timer runs on tokio's paused clock.

use std::sync::{Arc, Mutex};

use backchannel_protocol::device::Decision;
use backchannel_protocol::oauth::ClientAuthMethod;
use backchannel_server::domain::Domain;
use backchannel_server::domain::clock::{Clock, ManualClock, SystemClock};
use backchannel_server::domain::model::{
    AuthRequest, AuthRequestState, Challenge, VerifiedDecision,
};
use backchannel_server::store::{AuthRequestStore, PollGate, StoreResult};
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::support::{Auth, HANG_GUARD, TestServer, eventually};

const HINT: &str = "lena@example.com";

/// Waits until a long poll is held: it waits on its request's wake-up handle, which `wake`
/// (the test's own handle for that request) then shares.
async fn wait_held(wake: &Arc<Notify>) {
    eventually("the poll is held", || async {
        match Arc::strong_count(wake) {
            1 => Err("nobody waits on the request"),
            _ => Ok(()),
        }
    })
    .await;
}

async fn poll_client(s: &TestServer) -> Auth {
    s.secret_client(ClientAuthMethod::ClientSecretBasic, "openid")
        .await
}

#[tokio::test]
async fn a_held_poll_is_woken_by_the_approval_and_answers_with_the_tokens() {
    // Held far longer than the test takes: only a wake-up or a re-check can answer it.
    let s = TestServer::start_with(|c| c.token.long_poll_seconds = 60).await;
    let (_, device) = s.user_with_device(HINT).await;
    let auth = poll_client(&s).await;
    let id = s
        .start_request(&auth, &[("scope", "openid"), ("login_hint", HINT)])
        .await;
    let wake = s
        .server
        .domain
        .notifier
        .request_waiter(&Domain::auth_request_key(&id));
    let poll = s.token(&auth, &id);
    let approve = async {
        wait_held(&wake).await;
        let woken = wake.notified();
        tokio::pin!(woken);
        woken.as_mut().enable();
        assert_eq!(device.decide_only(&s, Decision::Approve).await.status, 200);
        // The approval wakes the request's waiters, the held poll among them.
        tokio::time::timeout(HANG_GUARD, woken)
            .await
            .expect("the approval wakes the held poll");
    };
    let (answer, ()) = tokio::join!(poll, approve);
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert!(answer.body["access_token"].is_string(), "{}", answer.body);
    assert_eq!(s.request_state(&id).await, AuthRequestState::Redeemed);
}

/// The request store as one held poll sees it, with the decision in the test's hands: once
/// [`Gated::decide`] was called, the gated request reads as decided from memory (no I/O, so
/// the paused clock cannot move while the poll re-reads it), and every read of it is noted
/// with the (paused) time it happened.
struct Gated {
    inner: Arc<dyn AuthRequestStore>,
    id: String,
    decided: Mutex<Option<AuthRequest>>,
    reads: Mutex<Vec<(Instant, AuthRequestState)>>,
}

impl Gated {
    fn decide(&self, request: AuthRequest) {
        *self.decided.lock().unwrap() = Some(request);
    }

    fn reads(&self) -> Vec<(Instant, AuthRequestState)> {
        self.reads.lock().unwrap().clone()
    }
}

#[async_trait::async_trait]
impl AuthRequestStore for Gated {
    async fn get_auth_request(&self, id: &str) -> StoreResult<Option<AuthRequest>> {
        if id != self.id {
            return self.inner.get_auth_request(id).await;
        }
        let decided = self.decided.lock().unwrap().clone();
        let found = match decided {
            Some(request) => Some(request),
            None => self.inner.get_auth_request(id).await?,
        };
        if let Some(r) = &found {
            self.reads.lock().unwrap().push((Instant::now(), r.state));
        }
        Ok(found)
    }

    async fn redeem(&self, id: &str, now: i64) -> StoreResult<bool> {
        // The decision lives in this store only: redeeming it is this store's to grant.
        if id == self.id && self.decided.lock().unwrap().is_some() {
            return Ok(true);
        }
        self.inner.redeem(id, now).await
    }

    async fn create_auth_request(
        &self,
        request: &AuthRequest,
        challenges: &[Challenge],
        push_devices: &[String],
    ) -> StoreResult<()> {
        let created = self
            .inner
            .create_auth_request(request, challenges, push_devices);
        created.await
    }

    async fn record_poll(&self, id: &str, now: i64, increment: i64) -> StoreResult<PollGate> {
        self.inner.record_poll(id, now, increment).await
    }

    async fn touch_poll(&self, id: &str, now: i64) -> StoreResult<()> {
        self.inner.touch_poll(id, now).await
    }

    async fn list_pending_challenges(
        &self,
        device_id: &str,
        now: i64,
    ) -> StoreResult<Vec<(Challenge, AuthRequest)>> {
        self.inner.list_pending_challenges(device_id, now).await
    }

    async fn get_challenge(&self, id: &str) -> StoreResult<Option<(Challenge, AuthRequest)>> {
        self.inner.get_challenge(id).await
    }

    async fn record_decision(&self, decision: &VerifiedDecision) -> StoreResult<bool> {
        self.inner.record_decision(decision).await
    }

    async fn request_challenges(&self, auth_request_id: &str) -> StoreResult<Vec<Challenge>> {
        self.inner.request_challenges(auth_request_id).await
    }

    async fn replace_undecided(
        &self,
        user_sub: &str,
        client_id: &str,
        now: i64,
    ) -> StoreResult<Vec<(String, Vec<String>)>> {
        self.inner.replace_undecided(user_sub, client_id, now).await
    }

    async fn user_requests(&self, user_sub: &str, limit: i64) -> StoreResult<Vec<AuthRequest>> {
        self.inner.user_requests(user_sub, limit).await
    }
}

#[tokio::test]
async fn a_decision_wakes_a_held_poll_before_any_re_check() {
    let s = TestServer::start_with(|c| c.token.long_poll_seconds = 60).await;
    s.user_with_device(HINT).await;
    let auth = poll_client(&s).await;
    let id = s
        .start_request(&auth, &[("scope", "openid"), ("login_hint", HINT)])
        .await;
    let key = Domain::auth_request_key(&id);
    let stores = &s.server.domain.stores;
    let client = stores.clients.get_client(auth.client_id()).await;
    let client = client.unwrap().unwrap();
    let pending = stores
        .requests
        .get_auth_request(&key)
        .await
        .unwrap()
        .unwrap();
    let gate = Arc::new(Gated {
        inner: stores.requests.clone(),
        id: key.clone(),
        decided: Mutex::new(None),
        reads: Mutex::new(Vec::new()),
    });
    // The server's domain (its notifier and waiters too), but with the gated request store.
    let mut domain = s.server.domain.clone();
    domain.stores.requests = gate.clone();
    let wake = domain.notifier.request_waiter(&key);

    // From here tokio's clock moves only when every task waits on a timer: a held poll that
    // missed its wake-up would re-read only once its re-check timer let the clock move on.
    tokio::time::pause();
    let poll = domain.redeem_auth_req_id(&client, &id);
    let decide = async {
        wait_held(&wake).await;
        gate.decide(AuthRequest {
            state: AuthRequestState::Approved,
            decided_at: Some(SystemClock.now_ms()),
            ..pending.clone()
        });
        let decided_at = Instant::now();
        // As the domain announces a decision it recorded.
        domain.notifier.request_decided(&key, &[]);
        decided_at
    };
    let (answer, decided_at) = tokio::join!(poll, decide);
    let tokens = answer.expect("the held poll answers with the tokens");
    assert!(tokens.id_token.is_some());
    let reads = gate.reads();
    let approved = reads
        .iter()
        .find(|(_, state)| *state == AuthRequestState::Approved)
        .expect("the poll re-read the request");
    assert_eq!(
        approved.0, decided_at,
        "re-read on the wake-up, before any timer ran: {reads:?}"
    );
}

#[tokio::test]
async fn the_long_poll_loop_never_earns_slow_down_but_unheld_polls_still_do() {
    // A held poll of 1 s, an interval of 5 s: the loop (poll, held, pending, poll again at
    // once) spaces itself, whatever the two are.
    let clock = ManualClock::new(SystemClock.now_ms());
    let s = TestServer::start_on(
        |c| {
            c.token.long_poll_seconds = 1;
            c.ciba.interval = 5;
        },
        Arc::new(clock.clone()),
    )
    .await;
    s.user_with_device(HINT).await;
    let auth = poll_client(&s).await;
    let id = s
        .start_request(&auth, &[("scope", "openid"), ("login_hint", HINT)])
        .await;
    for _ in 0..3 {
        s.token(&auth, &id)
            .await
            .expect_error(400, "authorization_pending");
    }
    // A poll that is not held (it came while another was held) is still too soon.
    let wake = s
        .server
        .domain
        .notifier
        .request_waiter(&Domain::auth_request_key(&id));
    let held = s.token(&auth, &id);
    let second = async {
        wait_held(&wake).await;
        s.token(&auth, &id).await
    };
    let (held, second) = tokio::join!(held, second);
    held.expect_error(400, "authorization_pending");
    second.expect_error(400, "slow_down");
}
