//! What ping and push clients are sent (CIBA Core §10.2, §10.3): the notification queued with a
//! decision, the `expired_token` push for a request that expired undecided, and the push token
//! response minted once.

use backchannel_protocol::oauth::DeliveryMode;
use serde_json::json;

use super::Domain;
use super::error::{AuthError, AuthResult};
use super::model::{AuthRequest, Client, Notification, NotificationKind, NotificationState};

/// An `expired_token` push may still be delivered this long after the request expired.
pub const EXPIRY_NOTICE_GRACE_MS: i64 = 10 * 60 * 1000;

impl Domain {
    fn notification(
        &self,
        request: &AuthRequest,
        kind: NotificationKind,
        payload: Option<String>,
        deadline: i64,
        now: i64,
    ) -> AuthResult<Notification> {
        Ok(Notification {
            id: Domain::random_id(26)?,
            auth_request_id: request.id.clone(),
            client_id: request.client_id.clone(),
            kind,
            payload,
            state: NotificationState::Pending,
            attempts: 0,
            next_attempt_at: now,
            deadline,
            last_error: None,
            created_at: now,
            delivered_at: None,
        })
    }

    fn raw_auth_req_id(request: &AuthRequest) -> AuthResult<&str> {
        request
            .auth_req_id
            .as_deref()
            .ok_or_else(|| AuthError::internal("a ping/push request lost its auth_req_id"))
    }

    /// The notification a decision queues in its own transaction, if the client wants one.
    pub fn decision_notification(
        &self,
        request: &AuthRequest,
        approved: bool,
        now: i64,
    ) -> AuthResult<Option<Notification>> {
        let (kind, payload) = match (request.delivery_mode, approved) {
            (DeliveryMode::Poll, _) => return Ok(None),
            (DeliveryMode::Ping, _) => (
                NotificationKind::Ping,
                Some(json!({ "auth_req_id": Domain::raw_auth_req_id(request)? }).to_string()),
            ),
            // Tokens are minted when the worker first sends, and kept for its retries.
            (DeliveryMode::Push, true) => (NotificationKind::PushTokens, None),
            (DeliveryMode::Push, false) => (
                NotificationKind::PushError,
                Some(push_error(
                    "access_denied",
                    Domain::raw_auth_req_id(request)?,
                )),
            ),
        };
        self.notification(request, kind, payload, request.expires_at, now)
            .map(Some)
    }

    /// CIBA Core §10.3.1: a push request that expired undecided is told `expired_token`.
    pub fn expiry_notification(&self, request: &AuthRequest, now: i64) -> AuthResult<Notification> {
        let payload = push_error("expired_token", Domain::raw_auth_req_id(request)?);
        self.notification(
            request,
            NotificationKind::PushError,
            Some(payload),
            request.expires_at + EXPIRY_NOTICE_GRACE_MS,
            now,
        )
    }

    /// CIBA Core §10.3.1: the token response plus `auth_req_id`, the ID token carrying
    /// `urn:openid:params:jwt:claim:auth_req_id`, `at_hash` and, with a refresh token,
    /// `urn:openid:params:jwt:claim:rt_hash`. If tokens cannot be minted the client is told
    /// `transaction_failed` (`access_denied` if the grant no longer stands).
    pub async fn push_payload(&self, client: &Client, request: &AuthRequest) -> AuthResult<String> {
        let auth_req_id = Domain::raw_auth_req_id(request)?;
        match self.mint_tokens(client, request, Some(auth_req_id)).await {
            Ok(tokens) => {
                let mut body = serde_json::to_value(&tokens).map_err(AuthError::internal)?;
                if let Some(obj) = body.as_object_mut() {
                    obj.insert("auth_req_id".into(), json!(auth_req_id));
                }
                Ok(body.to_string())
            }
            // The user, client or approving device was disabled after the approval: the
            // client is told as a denial, and no tokens are sent (CIBA Core §10.3.1).
            Err(AuthError::AccessDenied(why)) => {
                tracing::info!(%why, "push tokens withheld");
                Ok(push_error("access_denied", auth_req_id))
            }
            Err(e) => {
                tracing::warn!(error = %e, "minting push tokens failed");
                Ok(push_error("transaction_failed", auth_req_id))
            }
        }
    }
}

fn push_error(error: &str, auth_req_id: &str) -> String {
    json!({ "error": error, "auth_req_id": auth_req_id }).to_string()
}
