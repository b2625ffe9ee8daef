//! The device event stream (`GET /device/v1/events`) over real HTTP: live `challenge` events,
//! `challenge_closed` when another device decides, heartbeats, and replay from Last-Event-ID.

use std::sync::Arc;
use std::time::{Duration, Instant};

use backchannel_protocol::device::{ChallengeEnvelope, Decision};
use backchannel_protocol::oauth::ClientAuthMethod;
use serde_json::Value;

use crate::support::{Answer, HANG_GUARD, TestDevice, TestServer};

const HINT: &str = "omar@example.com";

/// One parsed Server-Sent Event (or a comment line, as `event = ":"`).
#[derive(Debug, Clone)]
pub struct Sse {
    pub id: Option<String>,
    pub event: String,
    pub data: Value,
}

/// A device's open event stream.
pub struct Events {
    body: reqwest::Response,
    buf: String,
}

impl Events {
    pub async fn open(s: &TestServer, device: &TestDevice, last_event_id: Option<&str>) -> Events {
        let path = "/device/v1/events";
        let mut req = s
            .http
            .get(s.url(path))
            .header("authorization", device.auth("GET", path));
        if let Some(id) = last_event_id {
            req = req.header("last-event-id", id);
        }
        let r = req.send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["content-type"], "text/event-stream");
        Events {
            body: r,
            buf: String::new(),
        }
    }

    /// The next event or comment, waiting up to `within`.
    pub async fn next(&mut self, within: Duration) -> Option<Sse> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if let Some(end) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..end + 2).collect();
                let mut sse = Sse {
                    id: None,
                    event: "message".into(),
                    data: Value::Null,
                };
                for line in block.lines() {
                    if let Some(c) = line.strip_prefix(':') {
                        sse.event = ":".into();
                        sse.data = Value::String(c.trim().into());
                    } else if let Some(v) = line.strip_prefix("id:") {
                        sse.id = Some(v.trim().into());
                    } else if let Some(v) = line.strip_prefix("event:") {
                        sse.event = v.trim().into();
                    } else if let Some(v) = line.strip_prefix("data:") {
                        sse.data = serde_json::from_str(v.trim())
                            .unwrap_or(Value::String(v.trim().into()));
                    }
                }
                return Some(sse);
            }
            let chunk = tokio::time::timeout_at(deadline, self.body.chunk())
                .await
                .ok()?
                .ok()??;
            self.buf.push_str(&String::from_utf8_lossy(&chunk));
        }
    }

    /// Reads until the server ends the stream (or the connection), skipping whatever still
    /// comes; fails the test if it is still open after [`HANG_GUARD`].
    pub async fn end(&mut self, what: &str) {
        let deadline = tokio::time::Instant::now() + HANG_GUARD;
        loop {
            match tokio::time::timeout_at(deadline, self.body.chunk()).await {
                Ok(Ok(Some(_))) => {}
                Ok(Ok(None) | Err(_)) => return,
                Err(_) => panic!("{what}: the stream is still open after {HANG_GUARD:?}"),
            }
        }
    }

    /// The next real event (heartbeats skipped).
    pub async fn next_event(&mut self, within: Duration) -> Option<Sse> {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.checked_duration_since(Instant::now())?;
            let e = self.next(left).await?;
            if e.event != ":" {
                return Some(e);
            }
        }
    }
}

/// An event that must come: waited for only so long that a missing one fails the test.
const WAIT: Duration = HANG_GUARD;

fn envelope(e: &Sse) -> ChallengeEnvelope {
    ChallengeEnvelope {
        id: e.data["challenge_id"].as_str().unwrap().into(),
        challenge: e.data["challenge"].as_str().unwrap().into(),
    }
}

#[tokio::test]
async fn a_connected_device_is_woken_for_the_challenge_and_hears_when_it_closes() {
    let s = TestServer::start().await;
    let (user, phone) = s.user_with_device(HINT).await;
    let tablet = s.enrol(&user.sub).await;
    let auth = s
        .secret_client(ClientAuthMethod::ClientSecretBasic, "openid")
        .await;
    let mut phone_events = Events::open(&s, &phone, None).await;
    let mut tablet_events = Events::open(&s, &tablet, None).await;
    // The open stream waits on its device's wake-up handle...
    let phone_wake = s.server.domain.notifier.device_waiter(&phone.id);
    assert!(Arc::strong_count(&phone_wake) > 1, "no stream waits");
    let woken = phone_wake.notified();
    tokio::pin!(woken);
    woken.as_mut().enable();

    s.start_request(
        &auth,
        &[
            ("scope", "openid"),
            ("login_hint", HINT),
            ("binding_message", "Live 1"),
        ],
    )
    .await;
    // ...which the new request wakes: the stream re-reads at once, not on its next re-check.
    tokio::time::timeout(WAIT, woken)
        .await
        .expect("the new request wakes the device's stream");
    let e = phone_events
        .next_event(WAIT)
        .await
        .expect("a challenge event");
    assert_eq!(e.event, "challenge");
    assert!(e.id.is_some());
    let envelope = envelope(&e);
    let claims = phone.verify(&s, &envelope).await;
    assert_eq!(claims.binding_message.as_deref(), Some("Live 1"));
    let on_tablet = tablet_events.next_event(WAIT).await.unwrap();
    assert_eq!(on_tablet.event, "challenge");

    // The phone approves; the tablet is told its challenge closed.
    let jws = phone.decision_jws(&envelope, Decision::Approve, &envelope.challenge);
    assert_eq!(
        phone.send_decision(&s, &envelope.id, &jws).await.status,
        200
    );
    let closed = tablet_events.next_event(WAIT).await.unwrap();
    assert_eq!(closed.event, "challenge_closed");
    assert_eq!(closed.data["challenge_id"], on_tablet.data["challenge_id"]);
    assert_eq!(closed.data["state"], "closed");
}

#[tokio::test]
async fn reconnecting_with_last_event_id_replays_what_was_missed() {
    // Three requests of one client stay open side by side.
    let s = TestServer::start_with(|c| {
        c.limits.replace_undecided = false;
        c.limits.pending_per_user_client = 0;
    })
    .await;
    let (_, phone) = s.user_with_device(HINT).await;
    let auth = s
        .secret_client(ClientAuthMethod::ClientSecretBasic, "openid")
        .await;
    let mut events = Events::open(&s, &phone, None).await;
    s.start_request(
        &auth,
        &[
            ("scope", "openid"),
            ("login_hint", HINT),
            ("binding_message", "first"),
        ],
    )
    .await;
    let first = events.next_event(WAIT).await.unwrap();
    let last_id = first.id.clone().unwrap();
    drop(events);

    for m in ["second", "third"] {
        s.start_request(
            &auth,
            &[
                ("scope", "openid"),
                ("login_hint", HINT),
                ("binding_message", m),
            ],
        )
        .await;
    }
    let mut resumed = Events::open(&s, &phone, Some(&last_id)).await;
    let mut seen = Vec::new();
    for _ in 0..2 {
        let e = resumed.next_event(WAIT).await.unwrap();
        assert_eq!(e.event, "challenge");
        seen.push(
            phone
                .verify(&s, &envelope(&e))
                .await
                .binding_message
                .unwrap(),
        );
    }
    assert_eq!(seen, ["second", "third"]);

    // Without Last-Event-ID a new stream starts with everything pending now, and then goes
    // live: the next request's challenge comes right after those three, and nothing else.
    let mut fresh = Events::open(&s, &phone, None).await;
    s.start_request(
        &auth,
        &[
            ("scope", "openid"),
            ("login_hint", HINT),
            ("binding_message", "live"),
        ],
    )
    .await;
    let mut seen = Vec::new();
    for _ in 0..4 {
        let e = fresh.next_event(WAIT).await.unwrap();
        assert_eq!(e.event, "challenge");
        seen.push(
            phone
                .verify(&s, &envelope(&e))
                .await
                .binding_message
                .unwrap(),
        );
    }
    assert_eq!(seen.pop().as_deref(), Some("live"));
    seen.sort_unstable();
    assert_eq!(seen, ["first", "second", "third"]);
}

#[tokio::test]
async fn heartbeats_flow_and_a_disabled_device_is_cut_off() {
    let s = TestServer::start_with(|c| c.device.sse_heartbeat_secs = 1).await;
    let (_, phone) = s.user_with_device(HINT).await;
    let mut events = Events::open(&s, &phone, None).await;
    let beat = events
        .next(Duration::from_secs(3))
        .await
        .expect("a heartbeat");
    assert_eq!(beat.event, ":");
    assert!(
        s.server
            .domain
            .stores
            .devices
            .set_device_disabled(&phone.id, true, 0)
            .await
            .unwrap()
    );
    // Heartbeats would keep it open for ever: only the server can end it.
    events.end("the stream of a disabled device must end").await;
}

#[tokio::test]
async fn a_bad_last_event_id_or_no_device_token_is_refused() {
    let s = TestServer::start().await;
    let (_, phone) = s.user_with_device(HINT).await;
    let path = "/device/v1/events";
    let r = s
        .http
        .get(s.url(path))
        .header("authorization", phone.auth("GET", path))
        .header("last-event-id", "yesterday")
        .send()
        .await
        .unwrap();
    Answer::from(r).await.expect_error(400, "invalid_request");
    let r = s.http.get(s.url(path)).send().await.unwrap();
    Answer::from(r).await.expect_error(401, "invalid_token");
}

#[tokio::test]
async fn an_open_stream_does_not_hold_up_a_graceful_shutdown() {
    let s = TestServer::start().await;
    let (_, phone) = s.user_with_device(HINT).await;
    let mut events = Events::open(&s, &phone, None).await;
    let TestServer { server, .. } = s;
    tokio::time::timeout(Duration::from_secs(10), server.shutdown())
        .await
        .expect("shutdown finished");
    events.end("the stream ends with the server").await;
}
