//! What a presented token is worth after it was issued: userinfo (OIDC Core §5.3) for a Bearer
//! access token, introspection (RFC 7662) and revocation (RFC 7009) for the client that holds
//! a token. Access tokens are the RFC 9068 JWTs this server signs; they are inactive once
//! expired, revoked (by `jti`), or when their user or client is disabled.

use backchannel_protocol::jose::{self, Audience};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::Domain;
use super::error::{AuthError, AuthResult};
use super::model::{Client, User};
use super::token::{ACCESS_TOKEN_TYP, add_scope_claims};

/// The claims of one of our access tokens that the checks read.
#[derive(Debug, Clone, Deserialize)]
pub struct AccessClaims {
    pub iss: String,
    pub sub: String,
    pub aud: Audience,
    pub client_id: String,
    pub iat: i64,
    pub exp: i64,
    pub jti: String,
    pub scope: String,
    #[serde(default)]
    pub authorization_details: Option<Value>,
}

/// An access token that is in force, with its user.
pub struct ActiveAccessToken {
    pub claims: AccessClaims,
    pub user: User,
}

/// RFC 7662 §2.1 / RFC 7009 §2.1 `token_type_hint`: which kind to look up first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenHint {
    AccessToken,
    RefreshToken,
}

impl TokenHint {
    /// An unknown hint is ignored (the server searches every kind anyway).
    pub fn parse(hint: Option<&str>) -> Option<TokenHint> {
        match hint? {
            "access_token" => Some(TokenHint::AccessToken),
            "refresh_token" => Some(TokenHint::RefreshToken),
            _ => None,
        }
    }
}

fn invalid_token(m: &str) -> AuthError {
    AuthError::InvalidToken(m.to_owned())
}

impl Domain {
    /// The access token's claims if it is one of ours and in force: signed by one of our
    /// keys with `typ` `at+jwt`, our `iss` and `aud`, unexpired, not revoked, its user and
    /// client active. `InvalidToken` otherwise.
    pub async fn active_access_token(&self, token: &str) -> AuthResult<ActiveAccessToken> {
        let claims = self.our_access_token(token)?;
        if self.now_secs() >= claims.exp {
            return Err(invalid_token("the access token has expired"));
        }
        if self.stores.tokens.access_token_revoked(&claims.jti).await? {
            return Err(invalid_token("the access token was revoked"));
        }
        match self.stores.clients.get_client(&claims.client_id).await? {
            Some(c) if !c.disabled => {}
            _ => return Err(invalid_token("the access token's client is disabled")),
        }
        let user = match self.stores.users.get_user(&claims.sub).await? {
            Some(u) if !u.disabled => u,
            _ => return Err(invalid_token("the access token's user is disabled")),
        };
        Ok(ActiveAccessToken { claims, user })
    }

    /// OIDC Core §5.3: the claims the access token's scopes release about its user, `sub`
    /// first. A token without `openid` is `insufficient_scope` (RFC 6750 §3.1).
    pub async fn userinfo(&self, access_token: &str) -> AuthResult<Map<String, Value>> {
        let active = self.active_access_token(access_token).await?;
        if !active.claims.scope.split(' ').any(|s| s == "openid") {
            return Err(AuthError::InsufficientScope(
                "userinfo needs an access token with the openid scope".into(),
            ));
        }
        let mut claims = Map::new();
        claims.insert("sub".into(), json!(active.user.sub));
        add_scope_claims(&mut claims, &active.user, &active.claims.scope);
        Ok(claims)
    }

    /// RFC 7662 §2.2: what `token` is to the authenticated `client`. `{"active": false}` for
    /// anything unknown, expired, revoked, of a disabled user or client, or another client's.
    pub async fn introspect(
        &self,
        client: &Client,
        token: &str,
        hint: Option<TokenHint>,
    ) -> AuthResult<Value> {
        if token.is_empty() {
            return Err(AuthError::invalid_request("token is required"));
        }
        let answer = if hint == Some(TokenHint::RefreshToken) {
            match self.introspect_refresh(client, token).await? {
                Some(v) => Some(v),
                None => self.introspect_access(client, token).await?,
            }
        } else {
            match self.introspect_access(client, token).await? {
                Some(v) => Some(v),
                None => self.introspect_refresh(client, token).await?,
            }
        };
        Ok(answer.unwrap_or_else(|| json!({ "active": false })))
    }

    async fn introspect_access(&self, client: &Client, token: &str) -> AuthResult<Option<Value>> {
        let active = match self.active_access_token(token).await {
            Ok(a) => a,
            Err(AuthError::InvalidToken(_)) => return Ok(None),
            Err(e) => return Err(e),
        };
        let c = active.claims;
        if c.client_id != client.id {
            return Ok(None);
        }
        let mut v = json!({
            "active": true,
            "token_type": "Bearer",
            "scope": c.scope,
            "client_id": c.client_id,
            "sub": c.sub,
            "iss": c.iss,
            "aud": c.aud,
            "exp": c.exp,
            "iat": c.iat,
            "jti": c.jti,
        });
        if let (Some(details), Some(obj)) = (c.authorization_details, v.as_object_mut()) {
            obj.insert("authorization_details".into(), details);
        }
        Ok(Some(v))
    }

    async fn introspect_refresh(&self, client: &Client, token: &str) -> AuthResult<Option<Value>> {
        let now = self.now_ms();
        let hash = Domain::hash_hex(token);
        let Some((t, f)) = self.stores.tokens.get_refresh_token(&hash).await? else {
            return Ok(None);
        };
        if f.client_id != client.id
            || f.revoked_at.is_some()
            || t.rotated_at.is_some()
            || now >= t.expires_at
            || now >= f.expires_at
            || !self.family_subject_active(&f).await?
        {
            return Ok(None);
        }
        let mut v = json!({
            "active": true,
            "token_type": "refresh_token",
            "scope": f.scope,
            "client_id": f.client_id,
            "sub": f.user_sub,
            "iss": self.issuer,
            "exp": t.expires_at.div_euclid(1000),
            "iat": t.created_at.div_euclid(1000),
        });
        if let (Some(details), Some(obj)) = (f.authorization_details, v.as_object_mut()) {
            obj.insert("authorization_details".into(), details);
        }
        Ok(Some(v))
    }

    /// RFC 7009 §2: revokes the client's `token`. A refresh token ends its family and the
    /// access tokens minted from it; an access token is refused until its expiry. An unknown
    /// token, or another client's, changes nothing and is answered the same (§2.2: the client
    /// cannot tell, and learns nothing about other clients' tokens).
    pub async fn revoke(
        &self,
        client: &Client,
        token: &str,
        hint: Option<TokenHint>,
    ) -> AuthResult<()> {
        if token.is_empty() {
            return Err(AuthError::invalid_request("token is required"));
        }
        let now = self.now_ms();
        let try_refresh = || async {
            let hash = Domain::hash_hex(token);
            match self.stores.tokens.get_refresh_token(&hash).await? {
                Some((_, f)) if f.client_id == client.id => {
                    self.stores.tokens.revoke_refresh_family(&f.id, now).await?;
                    tracing::info!(client_id = %client.id, "refresh token revoked");
                    Ok::<bool, AuthError>(true)
                }
                _ => Ok(false),
            }
        };
        if hint == Some(TokenHint::RefreshToken) && try_refresh().await? {
            return Ok(());
        }
        if let Ok(claims) = self.our_access_token(token)
            && claims.client_id == client.id
        {
            if claims.exp.saturating_mul(1000) > now {
                self.stores
                    .tokens
                    .revoke_access_token(&claims.jti, claims.exp.saturating_mul(1000))
                    .await?;
                tracing::info!(client_id = %client.id, "access token revoked");
            }
            return Ok(());
        }
        if hint != Some(TokenHint::RefreshToken) {
            try_refresh().await?;
        }
        Ok(())
    }

    /// The claims of an access token this server signed (`typ` `at+jwt`, one of our keys,
    /// our `iss` and `aud`), whether or not it is still in force.
    fn our_access_token(&self, token: &str) -> AuthResult<AccessClaims> {
        let jws = jose::decode_jws(token).map_err(|_| invalid_token("malformed access token"))?;
        if !jws
            .header
            .typ
            .as_deref()
            .is_some_and(|t| t.eq_ignore_ascii_case(ACCESS_TOKEN_TYP))
        {
            return Err(invalid_token("not an access token"));
        }
        jws.verify_any(&self.keys.verifiers())
            .map_err(|_| invalid_token("the access token was not issued here"))?;
        let claims: AccessClaims = jws
            .claims()
            .map_err(|_| invalid_token("malformed access token"))?;
        if claims.iss != self.issuer || !claims.aud.contains(&self.issuer) {
            return Err(invalid_token("the access token was not issued here"));
        }
        Ok(claims)
    }
}
