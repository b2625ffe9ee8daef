//! The device's live event stream (`GET /device/v1/events`, Server-Sent Events): new
//! challenges, verified before they are handed out, and challenges that closed. One
//! [`EventStream`] is one connection; it remembers the last event id so the caller can
//! reconnect with `Last-Event-ID` and miss nothing.

use std::time::Duration;

use backchannel_protocol::device::ChallengeEnvelope;
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
    Closed { challenge_id: String, state: String },
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
    state: String,
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
