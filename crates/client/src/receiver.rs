//! The client notification endpoint of ping and push clients (CIBA Core §10.2, §10.3), as an
//! axum [`Router`] a relying party mounts in its own server: it checks the bearer
//! `client_notification_token` (constant time, single use), validates pushed tokens (ID-token
//! signature and claims, `at_hash`, `urn:openid:params:jwt:claim:auth_req_id`, `rt_hash`) and
//! hands each [`Notification`] to the application over a channel.
//!
//! Enabled by the `receiver` feature, so that clients that only poll do not build axum.

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use backchannel_protocol::jose;
use backchannel_protocol::oauth::TokenResponse;
use subtle::ConstantTimeEq;
use tokio::sync::mpsc;

use crate::error::{ErrorBody, OAuthError};
use crate::{CibaClient, ClientError, IdTokenClaims};

/// Notifications waiting for the application before the endpoint makes the server wait.
const CHANNEL_DEPTH: usize = 64;
/// 32 random bytes: 43 characters (CIBA Core §7.1 allows 1024) carrying 256 bits of entropy.
const ISSUED_TOKEN_BYTES: usize = 32;
/// A notification body is a few kilobytes at most (a token response).
const MAX_BODY_BYTES: usize = 64 * 1024;

/// What arrived at the notification endpoint, checked.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Notification {
    /// Ping mode (CIBA Core §10.2): the request has an outcome; fetch it from the token
    /// endpoint ([`CibaClient::poll_once`]).
    Ping { auth_req_id: String },
    /// Push mode (CIBA Core §10.3.1): the tokens, already validated.
    Tokens {
        auth_req_id: String,
        tokens: TokenResponse,
        claims: Box<IdTokenClaims>,
    },
    /// Push mode (CIBA Core §10.3.1): the request failed (`access_denied`, `expired_token`,
    /// `transaction_failed`).
    Error {
        auth_req_id: String,
        error: OAuthError,
    },
    /// Push mode: tokens arrived for this request but failed validation; the server was
    /// answered 400 and nothing from them may be used.
    Rejected { auth_req_id: String, reason: String },
}

/// The notification endpoint's state: the client that validates pushed tokens, the
/// notification tokens it accepts, and the channel to the application.
#[derive(Debug)]
pub struct NotificationReceiver {
    client: Arc<CibaClient>,
    /// SHA-256 of each token still expected.
    expected: Mutex<Vec<[u8; 32]>>,
    tx: mpsc::Sender<Notification>,
}

impl NotificationReceiver {
    /// A receiver and the channel on which it hands over notifications.
    pub fn new(client: Arc<CibaClient>) -> (Arc<Self>, mpsc::Receiver<Notification>) {
        let (tx, rx) = mpsc::channel(CHANNEL_DEPTH);
        let receiver = NotificationReceiver {
            client,
            expected: Mutex::new(Vec::new()),
            tx,
        };
        (Arc::new(receiver), rx)
    }

    /// A fresh random `client_notification_token`, accepted once from now on: put it in the
    /// [`InitiateRequest`](crate::InitiateRequest) of one request.
    pub fn issue_token(&self) -> Result<String, ClientError> {
        let token = jose::random_token(ISSUED_TOKEN_BYTES)?;
        self.expect_token(&token);
        Ok(token)
    }

    /// Accepts `token` once (a token the application made itself).
    pub fn expect_token(&self, token: &str) {
        self.locked().push(jose::sha256(token.as_bytes()));
    }

    /// Stops accepting `token` (its request was abandoned).
    pub fn forget_token(&self, token: &str) {
        let hash = jose::sha256(token.as_bytes());
        self.locked()
            .retain(|h| !bool::from(h[..].ct_eq(&hash[..])));
    }

    fn locked(&self) -> std::sync::MutexGuard<'_, Vec<[u8; 32]>> {
        self.expected.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether `presented` is an expected token; if so, it is used up. Every expected token is
    /// compared, in constant time, so neither the position nor the content of a match leaks.
    fn take_token(&self, presented: &str) -> bool {
        let hash = jose::sha256(presented.as_bytes());
        let mut expected = self.locked();
        let mut found = None;
        for (i, h) in expected.iter().enumerate() {
            if bool::from(h[..].ct_eq(&hash[..])) {
                found = Some(i);
            }
        }
        match found {
            Some(i) => {
                expected.swap_remove(i);
                true
            }
            None => false,
        }
    }

    /// The endpoint as a router serving `POST path`, to merge into the relying party's app.
    ///
    /// ```no_run
    /// # async fn f(client: std::sync::Arc<backchannel_client::CibaClient>) {
    /// use backchannel_client::{InitiateRequest, Notification, NotificationReceiver};
    ///
    /// let (receiver, mut notifications) = NotificationReceiver::new(client.clone());
    /// let app = axum::Router::new().merge(receiver.router("/ciba/notify"));
    /// let listener = tokio::net::TcpListener::bind("0.0.0.0:8443").await.unwrap();
    /// tokio::spawn(async move { axum::serve(listener, app).await });
    ///
    /// let req = InitiateRequest {
    ///     client_notification_token: Some(receiver.issue_token().unwrap()),
    ///     ..InitiateRequest::for_login_hint("alice@example.com")
    /// };
    /// let started = client.initiate(&req).await.unwrap();
    /// while let Some(n) = notifications.recv().await {
    ///     if let Notification::Tokens { auth_req_id, claims, .. } = n {
    ///         if auth_req_id == started.auth_req_id {
    ///             println!("{} approved", claims.sub);
    ///         }
    ///     }
    /// }
    /// # }
    /// ```
    pub fn router(self: &Arc<Self>, path: &str) -> Router {
        Router::new()
            .route(path, post(notification_post))
            .with_state(self.clone())
    }

    async fn handle(&self, body: &[u8]) -> Result<Notification, (StatusCode, &'static str)> {
        let bad = (StatusCode::BAD_REQUEST, "invalid_request");
        let value: serde_json::Value = serde_json::from_slice(body).map_err(|_| bad)?;
        let auth_req_id = value
            .get("auth_req_id")
            .and_then(|v| v.as_str())
            .filter(|s| !s.is_empty())
            .ok_or(bad)?
            .to_owned();
        if value.get("access_token").is_some() {
            let tokens: TokenResponse = serde_json::from_value(value).map_err(|_| bad)?;
            return Ok(
                match self
                    .client
                    .validate_pushed_tokens(&auth_req_id, &tokens)
                    .await
                {
                    Ok(claims) => Notification::Tokens {
                        auth_req_id,
                        tokens,
                        claims: Box::new(claims),
                    },
                    Err(e) => Notification::Rejected {
                        auth_req_id,
                        reason: e.to_string(),
                    },
                },
            );
        }
        if value.get("error").is_some() {
            let body: ErrorBody = serde_json::from_value(value).map_err(|_| bad)?;
            return Ok(Notification::Error {
                auth_req_id,
                error: OAuthError::from_body(body, 0, None),
            });
        }
        Ok(Notification::Ping { auth_req_id })
    }
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

fn error(status: StatusCode, code: &'static str) -> Response {
    let mut response = (
        status,
        [(header::CACHE_CONTROL, "no-store")],
        axum::Json(serde_json::json!({ "error": code })),
    )
        .into_response();
    if status == StatusCode::UNAUTHORIZED {
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Bearer"),
        );
    }
    response
}

/// `POST` at the notification endpoint (CIBA Core §10.2, §10.3): 204 once the notification is
/// handed over; 401 for a missing or unknown token; 400 for a body that is not a notification
/// or pushed tokens that do not validate.
async fn notification_post(
    State(receiver): State<Arc<NotificationReceiver>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(token) = bearer(&headers) else {
        return error(StatusCode::UNAUTHORIZED, "invalid_token");
    };
    if body.len() > MAX_BODY_BYTES {
        return error(StatusCode::PAYLOAD_TOO_LARGE, "invalid_request");
    }
    if !receiver.take_token(token) {
        return error(StatusCode::UNAUTHORIZED, "invalid_token");
    }
    let notification = match receiver.handle(&body).await {
        Ok(n) => n,
        Err((status, code)) => {
            // The token stays usable: the server may send a corrected notification.
            receiver.expect_token(token);
            return error(status, code);
        }
    };
    let rejected = matches!(notification, Notification::Rejected { .. });
    // A closed channel means the application stopped listening; the server is still answered.
    let _ = receiver.tx.send(notification).await;
    if rejected {
        return error(StatusCode::BAD_REQUEST, "invalid_request");
    }
    StatusCode::NO_CONTENT.into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_scheme_is_case_insensitive_and_required() {
        let mut h = HeaderMap::new();
        assert_eq!(bearer(&h), None);
        h.insert(header::AUTHORIZATION, "bearer abc".parse().unwrap());
        assert_eq!(bearer(&h), Some("abc"));
        h.insert(header::AUTHORIZATION, "Basic abc".parse().unwrap());
        assert_eq!(bearer(&h), None);
        h.insert(header::AUTHORIZATION, "Bearer ".parse().unwrap());
        assert_eq!(bearer(&h), None);
    }
}
