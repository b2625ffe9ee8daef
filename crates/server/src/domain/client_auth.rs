//! Client authentication at the token and backchannel endpoints (RFC 6749 §2.3, RFC 7523,
//! OIDC Core §9): `client_secret_basic`, `client_secret_post` and `private_key_jwt`, with
//! `jti` replay protection and the CIBA §7.1 audience rule. The assertion's time rules are
//! [`Domain::client_assertion_rules`].

use backchannel_protocol::jose::{self, Audience, TimeClaims, UnverifiedJws, VerifyingKey};
use backchannel_protocol::oauth::{CLIENT_ASSERTION_TYPE_JWT_BEARER, ClientAuthMethod};
use serde::Deserialize;
use subtle::ConstantTimeEq;

use super::Domain;
use super::error::{AuthError, AuthResult};
use super::model::Client;

/// What a request presented to authenticate its client, as the HTTP layer extracted it.
#[derive(Debug, Clone, Default)]
pub struct ClientCredentials {
    /// From `Authorization: Basic` (already form-url-decoded).
    pub basic: Option<(String, String)>,
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
    pub client_assertion_type: Option<String>,
    pub client_assertion: Option<String>,
}

/// Claims of a client assertion (RFC 7523 §3).
#[derive(Debug, Deserialize)]
struct AssertionClaims {
    iss: Option<String>,
    sub: Option<String>,
    aud: Option<Audience>,
    exp: Option<i64>,
    iat: Option<i64>,
    nbf: Option<i64>,
    jti: Option<String>,
}

fn invalid_client(msg: &str) -> AuthError {
    AuthError::InvalidClient(msg.to_owned())
}

impl Domain {
    /// Authenticates the client of a request made to `endpoint_url`. Exactly one method may be
    /// used (RFC 6749 §2.3), and it must be the one the client registered.
    pub async fn authenticate_client(
        &self,
        creds: &ClientCredentials,
        endpoint_url: &str,
    ) -> AuthResult<Client> {
        let methods = usize::from(creds.basic.is_some())
            + usize::from(creds.client_secret.is_some())
            + usize::from(
                creds.client_assertion.is_some() || creds.client_assertion_type.is_some(),
            );
        if methods > 1 {
            return Err(AuthError::invalid_request(
                "more than one client authentication method was used",
            ));
        }
        if methods == 0 {
            return Err(invalid_client("client authentication is required"));
        }
        if let Some((id, secret)) = &creds.basic {
            if creds
                .client_id
                .as_deref()
                .is_some_and(|form_id| form_id != id)
            {
                return Err(AuthError::invalid_request(
                    "client_id differs from the Basic credentials",
                ));
            }
            return self
                .authenticate_secret(id, secret, ClientAuthMethod::ClientSecretBasic)
                .await;
        }
        if let Some(secret) = &creds.client_secret {
            let id = creds.client_id.as_deref().ok_or_else(|| {
                AuthError::invalid_request("client_id is required with client_secret")
            })?;
            return self
                .authenticate_secret(id, secret, ClientAuthMethod::ClientSecretPost)
                .await;
        }
        self.authenticate_assertion(creds, endpoint_url).await
    }

    async fn load_client(&self, id: &str) -> AuthResult<Client> {
        match self.stores.clients.get_client(id).await? {
            Some(c) if !c.disabled => Ok(c),
            _ => Err(invalid_client("unknown or disabled client")),
        }
    }

    async fn authenticate_secret(
        &self,
        id: &str,
        secret: &str,
        method: ClientAuthMethod,
    ) -> AuthResult<Client> {
        let client = self.load_client(id).await?;
        if client.auth_method != method {
            return Err(invalid_client(
                "the client is not registered for this authentication method",
            ));
        }
        let presented = Domain::hash_hex(secret);
        let matches = client
            .secret_hash
            .as_deref()
            .is_some_and(|stored| bool::from(stored.as_bytes().ct_eq(presented.as_bytes())));
        if !matches {
            return Err(invalid_client("client authentication failed"));
        }
        Ok(client)
    }

    async fn authenticate_assertion(
        &self,
        creds: &ClientCredentials,
        endpoint_url: &str,
    ) -> AuthResult<Client> {
        if creds.client_assertion_type.as_deref() != Some(CLIENT_ASSERTION_TYPE_JWT_BEARER) {
            return Err(AuthError::invalid_request(
                "client_assertion_type must be urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            ));
        }
        let token = creds
            .client_assertion
            .as_deref()
            .ok_or_else(|| AuthError::invalid_request("client_assertion is missing"))?;
        let jws = jose::decode_jws(token)
            .map_err(|e| invalid_client(&format!("client_assertion is not a valid JWS: {e}")))?;
        let claims: AssertionClaims = jws
            .claims()
            .map_err(|_| invalid_client("client_assertion claims are malformed"))?;
        let id = claims
            .iss
            .as_deref()
            .ok_or_else(|| invalid_client("client_assertion has no iss"))?;
        if claims.sub.as_deref() != Some(id) {
            return Err(invalid_client("client_assertion sub must equal iss"));
        }
        if creds
            .client_id
            .as_deref()
            .is_some_and(|form_id| form_id != id)
        {
            return Err(invalid_client(
                "client_id differs from the client_assertion issuer",
            ));
        }
        let client = self.load_client(id).await?;
        if client.auth_method != ClientAuthMethod::PrivateKeyJwt {
            return Err(invalid_client(
                "the client is not registered for private_key_jwt",
            ));
        }
        let accepted = vec![
            self.issuer.clone(),
            self.url("/token"),
            self.url("/bc-authorize"),
            endpoint_url.to_owned(),
        ];
        if !claims
            .aud
            .as_ref()
            .is_some_and(|aud| aud.contains_any(&accepted))
        {
            return Err(invalid_client(
                "client_assertion aud must be the issuer or the endpoint URL",
            ));
        }
        let rules = self.client_assertion_rules();
        let times = TimeClaims {
            exp: claims.exp,
            iat: claims.iat,
            nbf: claims.nbf,
        };
        jose::check_times(&times, &rules, self.now_secs())
            .map_err(|e| invalid_client(&format!("client_assertion {e}")))?;
        let jti = jose::check_jti(claims.jti.as_deref())
            .map_err(|e| invalid_client(&format!("client_assertion {e}")))?;
        self.verify_client_signature(&client, &jws)
            .await
            .map_err(|_| invalid_client("client_assertion signature is invalid"))?;
        let exp = times
            .exp
            .ok_or_else(|| invalid_client("client_assertion has no exp"))?;
        let scope = format!("assertion:{}", client.id);
        if !self.remember_jti(&scope, jti, exp, &rules).await? {
            return Err(invalid_client("client_assertion jti was already used"));
        }
        Ok(client)
    }

    /// Verifies a JWS the client signed (assertion, request object, login_hint_token) with its
    /// registered keys: inline `jwks`, or `jwks_uri` fetched once more when no key matches the
    /// `kid` (the client rotated).
    pub async fn verify_client_signature(
        &self,
        client: &Client,
        jws: &UnverifiedJws,
    ) -> AuthResult<()> {
        let alg = jws.alg();
        let kid = jws.header.kid.as_deref();
        if let Some(jwks) = &client.jwks {
            return verify_with(&jwks.candidates(kid, alg), jws);
        }
        let Some(uri) = client.jwks_uri.as_deref() else {
            return Err(invalid_client("the client has no registered keys"));
        };
        let jwks = self.jwks_fetcher.fetch(uri, false).await.map_err(|e| {
            AuthError::InvalidClient(format!("cannot fetch the client's jwks_uri: {e}"))
        })?;
        let mut candidates = jwks.candidates(kid, alg);
        if candidates.is_empty() {
            let fresh = self.jwks_fetcher.fetch(uri, true).await.map_err(|e| {
                AuthError::InvalidClient(format!("cannot fetch the client's jwks_uri: {e}"))
            })?;
            candidates = fresh.candidates(kid, alg);
        }
        verify_with(&candidates, jws)
    }
}

fn verify_with(keys: &[VerifyingKey], jws: &UnverifiedJws) -> AuthResult<()> {
    if keys.is_empty() {
        return Err(invalid_client(
            "no registered key matches the JWS kid and alg",
        ));
    }
    jws.verify_any(keys)
        .map_err(|_| invalid_client("signature verification failed"))
}
