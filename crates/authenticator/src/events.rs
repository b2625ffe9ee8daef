//! The device's live event stream (`GET /device/v1/events`, Server-Sent Events): new
//! challenges, verified before they are handed out, and challenges that closed. One
//! [`EventStream`] is one connection; it remembers the last event id so the caller can
//! reconnect with `Last-Event-ID` and miss nothing.

use std::time::Duration;

use backchannel_protocol::device::{ChallengeEnvelope, ChallengeState};
use serde::Deserialize;
use tokio::time::Instant;

use crate::device::{error_for, http_err};
use crate::sse::{SseEvent, SseParser};
use crate::{AuthenticatorError, Device, VerifiedChallenge};

pub(crate) const EVENTS_PATH: &str = "/device/v1/events";

/// How long a stream may stay silent before it counts as lost. The server sends a heartbeat
/// comment every 15 seconds by default (`[device] sse_heartbeat_secs`).
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// The longest one connection may last. A request needs some bound (the HTTP client's own
/// timeout would otherwise cut the stream after 30 seconds); a day is far beyond any session,
/// and a reconnect with `Last-Event-ID` loses nothing.
const STREAM_LIFETIME: Duration = Duration::from_secs(24 * 3600);

/// What the event stream tells a device.
#[derive(Debug)]
pub enum DeviceEvent {
    /// A new challenge for this device, verified exactly as [`Device::list_challenges`]
    /// verifies: safe to show.
    Challenge(VerifiedChallenge),
    /// A challenge closed: decided on this or another device (`approved`, `denied`), or
    /// withdrawn (`closed`: another device decided first, it expired, the device was disabled).
    /// Stop asking the user about it.
    Closed {
        challenge_id: String,
        state: ChallengeState,
    },
    /// A challenge event that failed verification or could not be read. It must not be shown;
    /// it is reported so an authenticator can log it.
    Rejected {
        challenge_id: Option<String>,
        error: AuthenticatorError,
    },
}

#[derive(Deserialize)]
struct ChallengeData {
    challenge_id: String,
    challenge: String,
}

#[derive(Deserialize)]
struct ClosedData {
    challenge_id: String,
    state: ChallengeState,
}

/// One open connection to the device's event stream. Read it with [`EventStream::next`].
#[derive(Debug)]
pub struct EventStream<'a> {
    device: &'a Device,
    url: String,
    response: reqwest::Response,
    parser: SseParser,
    last_event_id: Option<i64>,
    idle_timeout: Duration,
    last_activity: Instant,
    ended: bool,
}

impl Device {
    /// Opens the live event stream. With `last_event_id` (from [`EventStream::last_event_id`]
    /// of an earlier connection) the server first replays what happened since; without it, the
    /// stream starts with every challenge pending now.
    pub async fn events(
        &self,
        last_event_id: Option<i64>,
    ) -> Result<EventStream<'_>, AuthenticatorError> {
        let (request, url) = self.request(reqwest::Method::GET, EVENTS_PATH)?;
        let mut request = request
            .header(reqwest::header::ACCEPT, "text/event-stream")
            .timeout(STREAM_LIFETIME);
        if let Some(id) = last_event_id {
            request = request.header("last-event-id", id.to_string());
        }
        // The stream has no overall timeout; its answer (the headers) does.
        let response = tokio::time::timeout(crate::device::HTTP_TIMEOUT, request.send())
            .await
            .map_err(|_| AuthenticatorError::Stalled {
                url: url.clone(),
                idle_secs: crate::device::HTTP_TIMEOUT.as_secs(),
            })?
            .map_err(|e| http_err(&url, e))?;
        let status = response.status();
        if !status.is_success() {
            let body = response.bytes().await.map_err(|e| http_err(&url, e))?;
            return Err(error_for(status.as_u16(), &body, &url));
        }
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        if !content_type
            .split(';')
            .next()
            .is_some_and(|t| t.trim().eq_ignore_ascii_case("text/event-stream"))
        {
            return Err(AuthenticatorError::InvalidResponse {
                url,
                reason: format!("content type {content_type:?} is not text/event-stream"),
            });
        }
        Ok(EventStream {
            device: self,
            url,
            response,
            parser: SseParser::new(),
            last_event_id,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            last_activity: Instant::now(),
            ended: false,
        })
    }
}

impl EventStream<'_> {
    /// Counts the stream as lost after this long without a byte (heartbeats included).
    pub fn with_idle_timeout(mut self, idle: Duration) -> Self {
        self.idle_timeout = idle;
        self
    }

    /// The id of the last event received (or the one this stream resumed from): pass it to
    /// [`Device::events`] when reconnecting.
    pub fn last_event_id(&self) -> Option<i64> {
        self.last_event_id
    }

    /// How long the server asked clients to wait before reconnecting (`retry:`), if it did.
    pub fn retry(&self) -> Option<Duration> {
        self.parser.retry_ms().map(Duration::from_millis)
    }

    /// The next event. `Ok(None)` when the server ended the stream (reconnect to go on); an
    /// error when the connection failed or stayed silent past the idle timeout.
    ///
    /// Cancel-safe: an event is consumed only when it is returned, so `next` can be raced in
    /// `tokio::select!` against other work.
    pub async fn next(&mut self) -> Result<Option<DeviceEvent>, AuthenticatorError> {
        loop {
            if let Some(raw) = self.parser.peek().cloned() {
                let event = self.interpret(&raw).await;
                self.parser.pop();
                if let Some(id) = raw.id.as_deref().and_then(|s| s.trim().parse().ok()) {
                    self.last_event_id = Some(id);
                }
                match event {
                    Some(e) => return Ok(Some(e)),
                    None => continue,
                }
            }
            if self.ended {
                return Ok(None);
            }
            let deadline = self.last_activity + self.idle_timeout;
            let chunk = tokio::time::timeout_at(deadline, self.response.chunk())
                .await
                .map_err(|_| AuthenticatorError::Stalled {
                    url: self.url.clone(),
                    idle_secs: self.idle_timeout.as_secs(),
                })?
                .map_err(|e| http_err(&self.url, e))?;
            self.last_activity = Instant::now();
            match chunk {
                // An event left incomplete at the end is discarded (WHATWG SSE §9.2.6).
                None => self.ended = true,
                Some(bytes) => {
                    self.parser
                        .feed(&bytes)
                        .map_err(|_| AuthenticatorError::InvalidResponse {
                            url: self.url.clone(),
                            reason: format!(
                                "an event longer than {} bytes",
                                crate::sse::MAX_EVENT_BYTES
                            ),
                        })?
                }
            }
        }
    }

    /// The typed event for one SSE event; `None` for events this library does not know (a
    /// newer server may send more kinds).
    async fn interpret(&self, raw: &SseEvent) -> Option<DeviceEvent> {
        let malformed = |reason: String| AuthenticatorError::InvalidResponse {
            url: self.url.clone(),
            reason,
        };
        match raw.event.as_str() {
            "challenge" => Some(match serde_json::from_str::<ChallengeData>(&raw.data) {
                Ok(d) => {
                    let envelope = ChallengeEnvelope {
                        id: d.challenge_id,
                        challenge: d.challenge,
                    };
                    match self.device.verify(&envelope).await {
                        Ok(c) => DeviceEvent::Challenge(c),
                        Err(error) => DeviceEvent::Rejected {
                            challenge_id: Some(envelope.id),
                            error,
                        },
                    }
                }
                Err(e) => DeviceEvent::Rejected {
                    challenge_id: None,
                    error: malformed(format!("challenge event: {e}")),
                },
            }),
            "challenge_closed" => Some(match serde_json::from_str::<ClosedData>(&raw.data) {
                Ok(d) => DeviceEvent::Closed {
                    challenge_id: d.challenge_id,
                    state: d.state,
                },
                Err(e) => DeviceEvent::Rejected {
                    challenge_id: None,
                    error: malformed(format!("challenge_closed event: {e}")),
                },
            }),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use backchannel_protocol::device::{CHALLENGE_JWT_TYP, ChallengeClaims};
    use backchannel_protocol::jose::{Algorithm, Jwks, SigningKey, sign_jwt};
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    use tokio::net::TcpListener;

    use super::*;
    use crate::{DeviceState, ManualClock};

    const ISSUER: &str = "https://id.example";

    /// What the test server does with one `GET /device/v1/events`.
    enum Script {
        /// Answer 200 with these pieces of body, each written on its own; then close, or hold
        /// the connection open and silent.
        Stream(Vec<Vec<u8>>, bool),
        Status(u16, &'static str, &'static str),
    }

    struct Server {
        url: String,
        /// The `Last-Event-ID` of each events request (`None` when absent).
        resumed_from: Arc<Mutex<Vec<Option<String>>>>,
    }

    /// A minimal HTTP/1.1 server: `/jwks` answers `jwks`, each events request plays the next
    /// script. Bodies end when the connection closes, as a stream's does.
    async fn server(jwks: Jwks, scripts: Vec<Script>) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let resumed_from = Arc::new(Mutex::new(Vec::new()));
        let seen = resumed_from.clone();
        let scripts = Arc::new(Mutex::new(std::collections::VecDeque::from(scripts)));
        let jwks = serde_json::to_string(&jwks).unwrap();
        tokio::spawn(async move {
            loop {
                let (mut sock, _) = listener.accept().await.unwrap();
                let (seen, scripts, jwks) = (seen.clone(), scripts.clone(), jwks.clone());
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut byte = [0u8; 1];
                    while !head.ends_with(b"\r\n\r\n") {
                        if sock.read(&mut byte).await.unwrap() == 0 {
                            return;
                        }
                        head.push(byte[0]);
                    }
                    let head = String::from_utf8(head).unwrap().to_ascii_lowercase();
                    if head.starts_with("get /jwks ") {
                        let answer = format!(
                            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{jwks}",
                            jwks.len()
                        );
                        sock.write_all(answer.as_bytes()).await.unwrap();
                        return;
                    }
                    assert!(head.starts_with("get /device/v1/events "), "{head}");
                    assert!(head.contains("\r\nauthorization: device "), "{head}");
                    seen.lock().unwrap().push(
                        head.lines()
                            .find_map(|l| l.strip_prefix("last-event-id: "))
                            .map(str::to_owned),
                    );
                    let script = scripts.lock().unwrap().pop_front().unwrap();
                    match script {
                        Script::Status(status, content_type, body) => {
                            let answer = format!(
                                "HTTP/1.1 {status} X\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                                body.len()
                            );
                            sock.write_all(answer.as_bytes()).await.unwrap();
                        }
                        Script::Stream(pieces, hold) => {
                            sock.write_all(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\nconnection: close\r\n\r\n").await.unwrap();
                            for p in pieces {
                                sock.write_all(&p).await.unwrap();
                                sock.flush().await.unwrap();
                                tokio::time::sleep(Duration::from_millis(5)).await;
                            }
                            if hold {
                                tokio::time::sleep(Duration::from_secs(30)).await;
                            }
                        }
                    }
                });
            }
        });
        Server { url, resumed_from }
    }

    fn claims(id: &str, message: &str) -> ChallengeClaims {
        ChallengeClaims {
            iss: ISSUER.into(),
            aud: "dev-1".into(),
            jti: id.into(),
            iat: 1000,
            exp: 1300,
            client_id: "c1".into(),
            client_name: "Bank".into(),
            binding_message: Some(message.into()),
            scope: "openid".into(),
            acr_values: None,
            authorization_details: None,
            uv_required: false,
        }
    }

    fn challenge_event(id: u32, key: &SigningKey, c: &ChallengeClaims) -> String {
        let jwt = sign_jwt(key, Some(CHALLENGE_JWT_TYP), c).unwrap();
        format!(
            "id: {id}\nevent: challenge\ndata: {}\n\n",
            serde_json::json!({"challenge_id": c.jti, "challenge": jwt})
        )
    }

    fn device(url: &str) -> Device {
        let state = DeviceState {
            server: url.into(),
            issuer: ISSUER.into(),
            device_id: "dev-1".into(),
            private_jwk: SigningKey::generate(Algorithm::ES256)
                .unwrap()
                .to_private_jwk(),
        };
        Device::new(state)
            .unwrap()
            .with_clock(Arc::new(ManualClock::at_secs(1100)))
    }

    /// Cuts `text` into pieces at awkward places: inside field names, between CR and LF.
    fn pieces(text: &str) -> Vec<Vec<u8>> {
        text.as_bytes().chunks(37).map(<[u8]>::to_vec).collect()
    }

    #[tokio::test]
    async fn events_arrive_typed_and_verified_and_the_last_id_is_kept() {
        let server_key = SigningKey::generate(Algorithm::EdDSA).unwrap();
        let forger = SigningKey::generate(Algorithm::EdDSA).unwrap();
        let jwks = Jwks {
            keys: vec![server_key.public_jwk()],
        };
        let text = format!(
            ":heartbeat\n\n{}{}: ok\r\nid: 9\r\nevent: challenge_closed\r\ndata: {{\"challenge_id\":\"ch1\",\"state\":\"approved\"}}\r\n\r\nid: 10\nevent: something_new\ndata: {{}}\n\nid: 11\nevent: challenge\ndata: not json\n\n",
            challenge_event(7, &server_key, &claims("ch1", "Pay 12")),
            challenge_event(8, &forger, &claims("ch2", "forged")),
        );
        let s = server(
            jwks,
            vec![
                Script::Stream(pieces(&text), false),
                Script::Stream(vec![b"event: x\n".to_vec()], false),
            ],
        )
        .await;
        let device = device(&s.url);
        let mut events = device.events(Some(5)).await.unwrap();
        assert_eq!(events.last_event_id(), Some(5));
        let Some(DeviceEvent::Challenge(c)) = events.next().await.unwrap() else {
            panic!("a verified challenge first")
        };
        assert_eq!(c.id, "ch1");
        assert_eq!(c.claims.binding_message.as_deref(), Some("Pay 12"));
        assert_eq!(events.last_event_id(), Some(7));
        let Some(DeviceEvent::Rejected {
            challenge_id,
            error: AuthenticatorError::InvalidChallenge(_),
        }) = events.next().await.unwrap()
        else {
            panic!("the forged challenge is rejected")
        };
        assert_eq!(challenge_id.as_deref(), Some("ch2"));
        let Some(DeviceEvent::Closed {
            challenge_id,
            state,
        }) = events.next().await.unwrap()
        else {
            panic!("then the close")
        };
        assert_eq!(
            (challenge_id.as_str(), state),
            ("ch1", ChallengeState::Approved)
        );
        // The unknown event is skipped, its id counted; malformed data is reported.
        let Some(DeviceEvent::Rejected {
            challenge_id: None,
            error: AuthenticatorError::InvalidResponse { .. },
        }) = events.next().await.unwrap()
        else {
            panic!("malformed data is reported")
        };
        assert_eq!(events.last_event_id(), Some(11));
        assert!(events.next().await.unwrap().is_none(), "the server closed");
        let last = events.last_event_id();
        drop(events);

        // A reconnect resumes from the last id; an event cut off by the close is dropped.
        let mut again = device.events(last).await.unwrap();
        assert!(again.next().await.unwrap().is_none());
        assert_eq!(
            *s.resumed_from.lock().unwrap(),
            [Some("5".to_owned()), Some("11".to_owned())]
        );
    }

    #[tokio::test]
    async fn a_silent_stream_counts_as_lost() {
        let s = server(
            Jwks { keys: vec![] },
            vec![Script::Stream(vec![b":hb\n\n".to_vec()], true)],
        )
        .await;
        let device = device(&s.url);
        let mut events = device
            .events(None)
            .await
            .unwrap()
            .with_idle_timeout(Duration::from_millis(300));
        let started = std::time::Instant::now();
        let err = events.next().await.unwrap_err();
        assert!(matches!(err, AuthenticatorError::Stalled { .. }), "{err}");
        assert!(started.elapsed() >= Duration::from_millis(250));
        assert_eq!(*s.resumed_from.lock().unwrap(), [None]);
    }

    #[tokio::test]
    async fn refusals_and_non_streams_are_errors() {
        let s = server(
            Jwks { keys: vec![] },
            vec![
                Script::Status(
                    401,
                    "application/json",
                    r#"{"error":"invalid_token","error_description":"device disabled"}"#,
                ),
                Script::Status(200, "application/json", "{}"),
            ],
        )
        .await;
        let device = device(&s.url);
        let err = device.events(None).await.unwrap_err();
        assert!(matches!(err, AuthenticatorError::Unauthorized(_)), "{err}");
        assert!(err.to_string().contains("invalid_token"), "{err}");
        let err = device.events(None).await.unwrap_err();
        assert!(
            matches!(err, AuthenticatorError::InvalidResponse { .. }),
            "{err}"
        );
    }
}
