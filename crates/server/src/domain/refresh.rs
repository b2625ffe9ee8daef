//! Refresh tokens (RFC 6749 §6) as RFC 9700 §4.14.2 asks for public-facing grants: opaque
//! (160 random bits), stored as their SHA-256, bound to the client, rotated on every use, and
//! a reuse of a rotated token ends its whole family. A family starts with an approval and
//! lives at most `[token] refresh_token_absolute_secs`; each token lapses after
//! `refresh_token_idle_secs` unused.

use backchannel_protocol::oauth::TokenResponse;

use super::Domain;
use super::error::{AuthError, AuthResult};
use super::model::{AuthRequest, Client, RefreshFamily, RefreshToken};
use super::token::{Grant, MintedAccessToken};

/// Characters of a refresh token: 32 × 5 = 160 random bits.
pub const REFRESH_TOKEN_CHARS: usize = 32;

fn invalid_grant(m: &str) -> AuthError {
    AuthError::InvalidGrant(m.to_owned())
}

impl Domain {
    /// A new family for an approval, with its first token (minted with `access`).
    pub(super) async fn start_refresh_family(
        &self,
        client: &Client,
        request: &AuthRequest,
        device_id: Option<String>,
        grant: &Grant,
        access: &MintedAccessToken,
    ) -> AuthResult<String> {
        let now = self.now_ms();
        let family = RefreshFamily {
            id: Domain::random_id(26)?,
            client_id: client.id.clone(),
            user_sub: request.user_sub.clone(),
            device_id,
            scope: grant.scope.clone(),
            authorization_details: grant.authorization_details.clone(),
            authenticated_at: grant.auth_time.saturating_mul(1000),
            user_verified: grant.user_verified,
            created_at: now,
            expires_at: now + self.config.token.refresh_token_absolute_secs * 1000,
            revoked_at: None,
        };
        let (value, first) = self.new_refresh_token(&family, access, now)?;
        self.stores
            .tokens
            .insert_refresh_family(&family, &first)
            .await?;
        Ok(value)
    }

    fn new_refresh_token(
        &self,
        family: &RefreshFamily,
        access: &MintedAccessToken,
        now: i64,
    ) -> AuthResult<(String, RefreshToken)> {
        let value = Domain::random_id(REFRESH_TOKEN_CHARS)?;
        let idle_end = now + self.config.token.refresh_token_idle_secs * 1000;
        Ok((
            value.clone(),
            RefreshToken {
                hash: Domain::hash_hex(&value),
                family_id: family.id.clone(),
                created_at: now,
                expires_at: idle_end.min(family.expires_at),
                rotated_at: None,
                access_jti: access.jti.clone(),
                access_expires_at: access.expires_at,
            },
        ))
    }

    /// `grant_type=refresh_token` (RFC 6749 §6): a new access token and the next refresh
    /// token of the family; `scope`, if given, may only narrow the original grant.
    pub async fn refresh_tokens(
        &self,
        client: &Client,
        refresh_token: &str,
        scope: Option<&str>,
    ) -> AuthResult<TokenResponse> {
        if !client.refresh_tokens {
            return Err(AuthError::UnauthorizedClient(
                "the client is not registered for the refresh_token grant".into(),
            ));
        }
        if refresh_token.is_empty() || refresh_token.len() > 256 {
            return Err(AuthError::invalid_request(
                "refresh_token is missing or malformed",
            ));
        }
        let now = self.now_ms();
        let hash = Domain::hash_hex(refresh_token);
        let (token, family) = match self.stores.tokens.get_refresh_token(&hash).await? {
            Some((t, f)) if f.client_id == client.id => (t, f),
            _ => return Err(invalid_grant("unknown or foreign refresh_token")),
        };
        if family.revoked_at.is_some() {
            return Err(invalid_grant("the refresh_token was revoked"));
        }
        if token.rotated_at.is_some() {
            self.end_family_on_reuse(&family, now).await?;
            return Err(invalid_grant("the refresh_token was already used"));
        }
        if now >= token.expires_at || now >= family.expires_at {
            return Err(invalid_grant("the refresh_token has expired"));
        }
        if !self.family_subject_active(&family).await? {
            self.stores
                .tokens
                .revoke_refresh_family(&family.id, now)
                .await?;
            return Err(invalid_grant(
                "the user or the approving device was disabled",
            ));
        }
        let granted: Vec<&str> = family.scope.split(' ').collect();
        let scope = match scope {
            None => family.scope.clone(),
            Some(asked) => {
                let asked: Vec<&str> = asked.split(' ').filter(|s| !s.is_empty()).collect();
                if asked.is_empty() || asked.iter().any(|s| !granted.contains(s)) {
                    return Err(AuthError::InvalidScope(
                        "a refresh may only narrow the scope that was granted".into(),
                    ));
                }
                asked.join(" ")
            }
        };
        let grant = Grant {
            scope,
            authorization_details: family.authorization_details.clone(),
            auth_time: family.authenticated_at.div_euclid(1000),
            user_verified: family.user_verified,
        };
        let access = self.mint_access_token(client, &family.user_sub, &grant)?;
        let (value, next) = self.new_refresh_token(&family, &access, now)?;
        if !self
            .stores
            .tokens
            .rotate_refresh_token(&hash, &next, now)
            .await?
        {
            // Another use of the same token won the rotation a moment ago: two parties hold it.
            self.end_family_on_reuse(&family, now).await?;
            return Err(invalid_grant("the refresh_token was already used"));
        }
        metrics::counter!("backchannel_tokens_refreshed_total").increment(1);
        Ok(TokenResponse {
            access_token: access.token,
            token_type: "Bearer".into(),
            expires_in: u64::try_from(self.config.token.access_token_lifetime_secs).unwrap_or(0),
            id_token: None,
            refresh_token: Some(value),
            scope: Some(grant.scope),
            authorization_details: grant.authorization_details,
        })
    }

    /// RFC 9700 §4.14.2: a rotated token presented again means it leaked; the family (and
    /// the access tokens minted from it) ends for everyone.
    async fn end_family_on_reuse(&self, family: &RefreshFamily, now: i64) -> AuthResult<()> {
        if self
            .stores
            .tokens
            .revoke_refresh_family(&family.id, now)
            .await?
        {
            tracing::warn!(client_id = %family.client_id, "refresh token reused; its family is revoked");
        }
        Ok(())
    }

    /// Whether the family's user is active and the device that approved is still enrolled.
    pub(super) async fn family_subject_active(&self, family: &RefreshFamily) -> AuthResult<bool> {
        match self.stores.users.get_user(&family.user_sub).await? {
            Some(u) if !u.disabled => {}
            _ => return Ok(false),
        }
        if let Some(device_id) = &family.device_id {
            return Ok(self
                .stores
                .devices
                .get_device(device_id)
                .await?
                .is_some_and(|d| !d.disabled));
        }
        Ok(true)
    }
}
