//! The CIBA grant at the token endpoint (CIBA Core §10.1, §11): the poll state machine with
//! slow_down, redemption exactly once, and minting the ID token and the RFC 9068 access token.

use std::time::Duration;

use backchannel_protocol::jose::{self, Algorithm};
use backchannel_protocol::oauth::{DeliveryMode, TokenResponse};
use serde_json::{Map, Value, json};

use super::Domain;
use super::error::{AuthError, AuthResult};
use super::model::{AuthRequest, AuthRequestState, ChallengeState, Client, User};
use crate::store::PollGate;

/// CIBA Core §11: every `slow_down` adds this many seconds to the request's interval.
pub const SLOW_DOWN_INCREMENT_SECS: i64 = 5;

/// A held poll re-reads its request at least this often, in case the decision was made on
/// another node.
const HELD_POLL_RECHECK: Duration = Duration::from_millis(500);

fn unknown_grant() -> AuthError {
    AuthError::InvalidGrant("unknown, foreign or already redeemed auth_req_id".into())
}

/// `acr` when the device proved possession of its key / also verified the user.
pub const ACR_DEVICE: &str = "urn:backchannel:acr:device";
pub const ACR_DEVICE_UV: &str = "urn:backchannel:acr:device:uv";

impl Domain {
    /// Redeems an `auth_req_id` for the authenticated client: the answer to one poll.
    pub async fn redeem_auth_req_id(
        &self,
        client: &Client,
        auth_req_id: &str,
    ) -> AuthResult<TokenResponse> {
        if client.delivery_mode == DeliveryMode::Push {
            return Err(AuthError::UnauthorizedClient(
                "push-mode clients receive tokens by callback and may not poll".into(),
            ));
        }
        if auth_req_id.is_empty() || auth_req_id.len() > 256 {
            return Err(AuthError::invalid_request(
                "auth_req_id is missing or malformed",
            ));
        }
        let id = Domain::auth_request_key(auth_req_id);
        // A poll the store knows came too soon after the previous one is answered without
        // reading the request: whatever its state, this client must wait (CIBA Core §7.3).
        if let Some(interval_secs) = self
            .stores
            .requests
            .early_poll(&id, &client.id, self.now_ms(), SLOW_DOWN_INCREMENT_SECS)
            .await?
        {
            return Err(AuthError::SlowDown { interval_secs });
        }
        let request = match self.stores.requests.get_auth_request(&id).await? {
            Some(r) if r.client_id == client.id => r,
            _ => return Err(unknown_grant()),
        };
        if request.state != AuthRequestState::Pending {
            return self.answer(client, &request).await;
        }
        let now = self.now_ms();
        if now >= request.expires_at {
            return Err(AuthError::ExpiredToken);
        }
        match self
            .stores
            .requests
            .record_poll(&id, now, SLOW_DOWN_INCREMENT_SECS)
            .await?
        {
            PollGate::SlowDown { interval_secs } => Err(AuthError::SlowDown { interval_secs }),
            PollGate::Allowed => {
                let hold_ms = i64::try_from(self.config.token.long_poll_seconds)
                    .unwrap_or(0)
                    .saturating_mul(1000)
                    .min(request.expires_at - now);
                if hold_ms <= 0 {
                    return Err(AuthError::AuthorizationPending);
                }
                self.hold_poll(client, &request, hold_ms).await
            }
        }
    }

    /// The answer a poll gets for the request as it stands (CIBA Core §11).
    async fn answer(&self, client: &Client, request: &AuthRequest) -> AuthResult<TokenResponse> {
        let now = self.now_ms();
        if request.state == AuthRequestState::Redeemed {
            return Err(unknown_grant());
        }
        if now >= request.expires_at {
            return Err(AuthError::ExpiredToken);
        }
        match request.state {
            AuthRequestState::Pending => Err(AuthError::AuthorizationPending),
            AuthRequestState::Denied => Err(AuthError::AccessDenied(
                "the user denied the request".into(),
            )),
            AuthRequestState::Approved => {
                // Minted before the redemption commits, so that only writing the answer
                // remains between the commit and the client: a crash or a signing failure
                // there cannot spend an approval that no client received.
                let tokens = self.mint_tokens(client, request, None).await?;
                if !self.stores.requests.redeem(&request.id, now).await? {
                    return Err(unknown_grant());
                }
                Ok(tokens)
            }
            AuthRequestState::Redeemed => Err(unknown_grant()),
        }
    }

    /// Long polling: holds a pending poll until the request is decided (woken by the
    /// notifier, or found on a periodic re-check) or `hold_ms` runs out, never past expiry.
    /// A held poll spaced the client's polls by itself: polling again at once after it was
    /// answered `authorization_pending` is allowed, whatever the hold and the interval.
    async fn hold_poll(
        &self,
        client: &Client,
        request: &AuthRequest,
        hold_ms: i64,
    ) -> AuthResult<TokenResponse> {
        let handle = self.notifier.request_waiter(&request.id);
        let deadline = tokio::time::Instant::now()
            + Duration::from_millis(u64::try_from(hold_ms).unwrap_or(0));
        loop {
            let notified = handle.notified();
            tokio::pin!(notified);
            // Registered before the re-read, so a decision in between still wakes us.
            notified.as_mut().enable();
            let current = self
                .stores
                .requests
                .get_auth_request(&request.id)
                .await?
                .ok_or_else(unknown_grant)?;
            if current.state != AuthRequestState::Pending {
                return self.answer(client, &current).await;
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                break;
            }
            let recheck = deadline.min(now + HELD_POLL_RECHECK);
            tokio::select! {
                () = &mut notified => {}
                () = tokio::time::sleep_until(recheck) => {}
            }
        }
        self.stores
            .requests
            .touch_poll(&request.id, self.now_ms())
            .await?;
        self.answer(
            client,
            &self
                .stores
                .requests
                .get_auth_request(&request.id)
                .await?
                .ok_or_else(unknown_grant)?,
        )
        .await
    }

    /// The token response for an approved request. Push mode passes the `auth_req_id`, which
    /// the ID token then carries (CIBA Core §10.3.1). Nothing is minted for a user, client or
    /// approving device disabled since the approval: `access_denied`.
    pub async fn mint_tokens(
        &self,
        client: &Client,
        request: &AuthRequest,
        push_auth_req_id: Option<&str>,
    ) -> AuthResult<TokenResponse> {
        let (user, device_id) = self.approval_still_stands(client, request).await?;
        let grant = Grant {
            scope: request.scope.clone(),
            authorization_details: request.authorization_details.clone(),
            auth_time: request
                .decided_at
                .unwrap_or(request.created_at)
                .div_euclid(1000),
            user_verified: request.user_verified,
        };
        let access = self.mint_access_token(client, &user.sub, &grant)?;
        let refresh_token = if client.refresh_tokens {
            Some(
                self.start_refresh_family(client, request, device_id, &grant, &access)
                    .await?,
            )
        } else {
            None
        };
        let id_token = self
            .mint_id_token(
                client,
                &user,
                &grant,
                &access.token,
                refresh_token
                    .as_deref()
                    .filter(|_| push_auth_req_id.is_some()),
                push_auth_req_id,
            )
            .await?;
        metrics::counter!("backchannel_tokens_issued_total").increment(1);
        Ok(TokenResponse {
            access_token: access.token,
            token_type: "Bearer".into(),
            expires_in: u64::try_from(self.config.token.access_token_lifetime_secs).unwrap_or(0),
            id_token: Some(id_token),
            refresh_token,
            scope: Some(grant.scope),
            authorization_details: grant.authorization_details,
        })
    }

    /// "Disabled means disabled": the user, the client and the device that approved must all
    /// still be active when tokens are minted. The user, and the approving device's id.
    async fn approval_still_stands(
        &self,
        client: &Client,
        request: &AuthRequest,
    ) -> AuthResult<(User, Option<String>)> {
        let denied = |m: &str| AuthError::AccessDenied(m.to_owned());
        if client.disabled {
            return Err(denied("the client was disabled"));
        }
        let user = match self.stores.users.get_user(&request.user_sub).await? {
            Some(u) if !u.disabled => u,
            _ => return Err(denied("the user was disabled")),
        };
        let approver = self
            .stores
            .requests
            .request_challenges(&request.id)
            .await?
            .into_iter()
            .find(|c| c.state == ChallengeState::Approved)
            .map(|c| c.device_id);
        if let Some(device_id) = &approver {
            match self.stores.devices.get_device(device_id).await? {
                Some(d) if !d.disabled => {}
                _ => return Err(denied("the approving device was disabled or removed")),
            }
        }
        Ok((user, approver))
    }

    /// An RFC 9068 access token for `sub` under `grant`.
    pub(super) fn mint_access_token(
        &self,
        client: &Client,
        sub: &str,
        grant: &Grant,
    ) -> AuthResult<MintedAccessToken> {
        let now = self.now_secs();
        let exp = now + self.config.token.access_token_lifetime_secs;
        let jti = Domain::random_id(26)?;
        let mut claims = json!({
            "iss": self.issuer,
            "sub": sub,
            "aud": self.issuer,
            "client_id": client.id,
            "iat": now,
            "exp": exp,
            "jti": jti,
            "scope": grant.scope,
            "auth_time": grant.auth_time,
            "acr": grant.acr(),
        });
        if let (Some(details), Some(obj)) = (&grant.authorization_details, claims.as_object_mut()) {
            obj.insert("authorization_details".into(), details.clone());
        }
        let key = self.keys.signer(Algorithm::ES256)?;
        let token =
            jose::sign_jwt(&key, Some(ACCESS_TOKEN_TYP), &claims).map_err(AuthError::internal)?;
        Ok(MintedAccessToken {
            token,
            jti,
            expires_at: exp.saturating_mul(1000),
        })
    }

    /// The ID token (OIDC Core §2, CIBA Core §10.3.1): every ID token this server issues is
    /// made here, in one step, so a last step (encryption to the client) has one place to go.
    /// `at_hash` always; `rt_hash` and `auth_req_id` in push mode.
    pub(super) async fn mint_id_token(
        &self,
        client: &Client,
        user: &User,
        grant: &Grant,
        access_token: &str,
        push_refresh_token: Option<&str>,
        push_auth_req_id: Option<&str>,
    ) -> AuthResult<String> {
        let now = self.now_secs();
        let mut claims = Map::new();
        claims.insert("iss".into(), json!(self.issuer));
        claims.insert("sub".into(), json!(user.sub));
        claims.insert("aud".into(), json!(client.id));
        claims.insert("iat".into(), json!(now));
        claims.insert(
            "exp".into(),
            json!(now + self.config.token.id_token_lifetime_secs),
        );
        claims.insert("auth_time".into(), json!(grant.auth_time));
        claims.insert("acr".into(), json!(grant.acr()));
        claims.insert("amr".into(), json!(grant.amr()));
        let key = self.keys.signer(client.id_token_signing_alg)?;
        claims.insert(
            "at_hash".into(),
            json!(jose::hash_half(key.alg(), access_token.as_bytes())),
        );
        if let Some(rt) = push_refresh_token {
            claims.insert(
                "urn:openid:params:jwt:claim:rt_hash".into(),
                json!(jose::hash_half(key.alg(), rt.as_bytes())),
            );
        }
        if let Some(id) = push_auth_req_id {
            claims.insert("urn:openid:params:jwt:claim:auth_req_id".into(), json!(id));
        }
        add_scope_claims(&mut claims, user, &grant.scope);
        let signed = jose::sign_jwt(&key, Some("JWT"), &Value::Object(claims))
            .map_err(AuthError::internal)?;
        // Last: a client registered for encrypted ID tokens gets the signed one as a JWE.
        self.seal_id_token(client, signed).await
    }
}

/// The `typ` of the RFC 9068 access tokens.
pub const ACCESS_TOKEN_TYP: &str = "at+jwt";

/// What an approval granted, as the tokens minted from it (at redemption or at a refresh)
/// state it.
#[derive(Debug, Clone, PartialEq)]
pub struct Grant {
    pub scope: String,
    pub authorization_details: Option<Value>,
    /// Unix seconds.
    pub auth_time: i64,
    pub user_verified: bool,
}

impl Grant {
    /// `acr` when the device proved possession of its key / also verified the user.
    pub fn acr(&self) -> &'static str {
        if self.user_verified {
            ACR_DEVICE_UV
        } else {
            ACR_DEVICE
        }
    }

    pub fn amr(&self) -> Vec<&'static str> {
        if self.user_verified {
            vec!["pop", "user", "mfa"]
        } else {
            vec!["pop"]
        }
    }
}

/// An access token just signed, with what revoking it needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MintedAccessToken {
    pub token: String,
    pub jti: String,
    /// Unix ms.
    pub expires_at: i64,
}

/// OIDC Core §5.4: claims released by the `email`, `phone` and `profile` scopes.
pub fn add_scope_claims(claims: &mut Map<String, Value>, user: &User, scope: &str) {
    for s in scope.split(' ') {
        match s {
            "email" => {
                if let Some(email) = &user.email {
                    claims.insert("email".into(), json!(email));
                    let verified = user
                        .claims
                        .get("email_verified")
                        .cloned()
                        .unwrap_or(json!(true));
                    claims.insert("email_verified".into(), verified);
                }
            }
            "phone" => {
                if let Some(phone) = &user.phone {
                    claims.insert("phone_number".into(), json!(phone));
                }
            }
            "profile" => {
                for name in PROFILE_CLAIMS {
                    if let Some(v) = user.claims.get(name) {
                        claims.insert(name.into(), v.clone());
                    }
                }
                if let Some(username) = &user.username {
                    claims
                        .entry("preferred_username")
                        .or_insert(json!(username));
                }
            }
            _ => {}
        }
    }
}

/// OIDC Core §5.4 `profile` claims.
pub const PROFILE_CLAIMS: [&str; 14] = [
    "name",
    "family_name",
    "given_name",
    "middle_name",
    "nickname",
    "preferred_username",
    "profile",
    "picture",
    "website",
    "gender",
    "birthdate",
    "zoneinfo",
    "locale",
    "updated_at",
];

#[cfg(test)]
mod tests {
    use backchannel_protocol::device::Decision;

    use super::super::testing::fixture;
    use crate::domain::error::AuthError;

    #[tokio::test]
    async fn first_poll_is_pending_then_too_soon_is_slow_down_growing_by_five() {
        let f = fixture().await;
        let id = f.start(&[]).await;
        let poll = || f.domain.redeem_auth_req_id(&f.client, &id);
        assert_eq!(poll().await, Err(AuthError::AuthorizationPending));
        assert_eq!(poll().await, Err(AuthError::SlowDown { interval_secs: 10 }));
        f.clock.advance_secs(9);
        assert_eq!(poll().await, Err(AuthError::SlowDown { interval_secs: 15 }));
        f.clock.advance_secs(15);
        assert_eq!(poll().await, Err(AuthError::AuthorizationPending));
        f.clock.advance_ms(14_999);
        assert_eq!(poll().await, Err(AuthError::SlowDown { interval_secs: 20 }));
        f.clock.advance_secs(20);
        assert_eq!(poll().await, Err(AuthError::AuthorizationPending));
    }

    #[tokio::test]
    async fn polling_exactly_at_the_interval_is_allowed() {
        let f = fixture().await;
        let id = f.start(&[]).await;
        assert_eq!(
            f.domain.redeem_auth_req_id(&f.client, &id).await,
            Err(AuthError::AuthorizationPending)
        );
        f.clock.advance_secs(5);
        assert_eq!(
            f.domain.redeem_auth_req_id(&f.client, &id).await,
            Err(AuthError::AuthorizationPending)
        );
    }

    #[tokio::test]
    async fn expiry_ends_a_pending_and_an_approved_request() {
        let f = fixture().await;
        let id = f.start(&[("requested_expiry", "60")]).await;
        let shown = f.challenge().await;
        f.clock.advance_ms(59_999);
        assert_eq!(
            f.domain.redeem_auth_req_id(&f.client, &id).await,
            Err(AuthError::AuthorizationPending)
        );
        f.clock.advance_ms(1);
        assert_eq!(
            f.domain.redeem_auth_req_id(&f.client, &id).await,
            Err(AuthError::ExpiredToken)
        );
        // The device no longer lists it, and a decision after expiry is refused.
        assert!(
            f.domain
                .list_device_challenges(&f.device)
                .await
                .unwrap()
                .is_empty()
        );
        assert_eq!(
            f.decide_on(&shown, Decision::Approve)
                .await
                .map_err(|e| e.code()),
            Err("challenge_closed")
        );
    }

    #[tokio::test]
    async fn approved_is_redeemed_once_then_invalid_grant() {
        let f = fixture().await;
        let id = f.start(&[]).await;
        f.decide(Decision::Approve).await.unwrap();
        // No slow_down once decided: the answer is ready.
        let tokens = f.domain.redeem_auth_req_id(&f.client, &id).await.unwrap();
        assert!(tokens.id_token.is_some());
        let again = f.domain.redeem_auth_req_id(&f.client, &id).await;
        assert_eq!(again.map_err(|e| e.code()), Err("invalid_grant"));
        // Even after expiry a spent id stays invalid_grant.
        f.clock.advance_secs(3600);
        let later = f.domain.redeem_auth_req_id(&f.client, &id).await;
        assert_eq!(later.map_err(|e| e.code()), Err("invalid_grant"));
    }

    #[tokio::test]
    async fn denied_stays_access_denied_until_expiry() {
        let f = fixture().await;
        let id = f.start(&[]).await;
        f.decide(Decision::Deny).await.unwrap();
        for _ in 0..2 {
            let r = f.domain.redeem_auth_req_id(&f.client, &id).await;
            assert_eq!(r.map_err(|e| e.code()), Err("access_denied"));
        }
        f.clock.advance_secs(301);
        assert_eq!(
            f.domain.redeem_auth_req_id(&f.client, &id).await,
            Err(AuthError::ExpiredToken)
        );
    }

    #[tokio::test]
    async fn unverified_user_gets_the_possession_acr() {
        let f = fixture().await;
        let id = f.start(&[("scope", "openid email")]).await;
        f.decide(Decision::Approve).await.unwrap();
        let tokens = f.domain.redeem_auth_req_id(&f.client, &id).await.unwrap();
        let jws =
            backchannel_protocol::jose::decode_jws(tokens.id_token.as_deref().unwrap()).unwrap();
        let claims: serde_json::Value = jws.claims().unwrap();
        assert_eq!(claims["acr"], super::ACR_DEVICE);
        assert_eq!(claims["amr"], serde_json::json!(["pop"]));
        assert_eq!(claims["email"], super::super::testing::HINT);
        assert_eq!(claims["auth_time"], super::super::testing::START_MS / 1000);
    }
}
