//! The relying party itself: [`CibaClient`], the backchannel authentication request (CIBA
//! Core §7, also as a signed request object, §7.1.1) and the token request of the CIBA grant
//! (§10.1, §11), once or polled until an outcome.

use std::sync::{Arc, Mutex};

use backchannel_protocol::jose::{self, Jwks};
use backchannel_protocol::metadata::ProviderMetadata;
use backchannel_protocol::oauth::{BackchannelAuthResponse, GRANT_TYPE_CIBA, TokenResponse};

use crate::auth::{self, ClientAuth};
use crate::discovery::{self, Cached};
use crate::http::{self, Answer, Observer, Outgoing};
use crate::id_token::IdTokenOptions;
use crate::poll::{Sleeper, TokioSleeper};
use crate::{ClientError, Clock, ErrorCode, OAuthError, SystemClock};

/// Lifetime of a signed authentication request object (CIBA Core §7.1.1 bounds it; Singpass
/// takes at most two minutes).
const REQUEST_OBJECT_LIFETIME_SECS: i64 = 110;

/// The parameters of a backchannel authentication request (CIBA Core §7.1). Exactly one hint
/// should be set; `scope` must contain `openid`.
///
/// ```
/// use backchannel_client::InitiateRequest;
///
/// let req = InitiateRequest {
///     binding_message: Some("Pay SGD 42 to ACME? W4SCT".into()),
///     requested_expiry: Some(120),
///     ..InitiateRequest::for_login_hint("S1234567D")
/// };
/// assert!(req.to_form().contains(&("requested_expiry", "120".to_owned())));
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct InitiateRequest {
    pub scope: String,
    pub login_hint: Option<String>,
    pub id_token_hint: Option<String>,
    pub login_hint_token: Option<String>,
    pub binding_message: Option<String>,
    pub user_code: Option<String>,
    pub requested_expiry: Option<u64>,
    pub acr_values: Option<String>,
    /// RFC 9396 authorization details: a JSON array of objects with a `type`.
    pub authorization_details: Option<serde_json::Value>,
    /// Required for ping and push clients (CIBA Core §7.1): the bearer token the server will
    /// present at the client's notification endpoint.
    pub client_notification_token: Option<String>,
}

impl Default for InitiateRequest {
    fn default() -> Self {
        InitiateRequest {
            scope: "openid".to_owned(),
            login_hint: None,
            id_token_hint: None,
            login_hint_token: None,
            binding_message: None,
            user_code: None,
            requested_expiry: None,
            acr_values: None,
            authorization_details: None,
            client_notification_token: None,
        }
    }
}

impl InitiateRequest {
    /// A request for scope `openid` naming the user by `login_hint`.
    pub fn for_login_hint(login_hint: impl Into<String>) -> Self {
        InitiateRequest {
            login_hint: Some(login_hint.into()),
            ..Default::default()
        }
    }

    /// A request for scope `openid` naming the user by an ID token the server issued.
    pub fn for_id_token_hint(id_token: impl Into<String>) -> Self {
        InitiateRequest {
            id_token_hint: Some(id_token.into()),
            ..Default::default()
        }
    }

    /// A request for scope `openid` naming the user by a `login_hint_token`.
    pub fn for_login_hint_token(token: impl Into<String>) -> Self {
        InitiateRequest {
            login_hint_token: Some(token.into()),
            ..Default::default()
        }
    }

    /// The request as form parameters (CIBA Core §7.1).
    pub fn to_form(&self) -> Vec<(&'static str, String)> {
        let mut p = vec![("scope", self.scope.clone())];
        let mut opt = |name: &'static str, v: &Option<String>| {
            if let Some(v) = v {
                p.push((name, v.clone()));
            }
        };
        opt("login_hint", &self.login_hint);
        opt("id_token_hint", &self.id_token_hint);
        opt("login_hint_token", &self.login_hint_token);
        opt("binding_message", &self.binding_message);
        opt("user_code", &self.user_code);
        opt("acr_values", &self.acr_values);
        opt("client_notification_token", &self.client_notification_token);
        if let Some(e) = self.requested_expiry {
            p.push(("requested_expiry", e.to_string()));
        }
        if let Some(d) = &self.authorization_details {
            p.push(("authorization_details", d.to_string()));
        }
        p
    }

    /// The request as claims of a signed request object (CIBA Core §7.1.1): the same
    /// parameters, with `requested_expiry` a number and `authorization_details` JSON.
    pub(crate) fn to_claims(&self) -> serde_json::Map<String, serde_json::Value> {
        let mut m = serde_json::Map::new();
        for (k, v) in self.to_form() {
            if k != "requested_expiry" && k != "authorization_details" {
                m.insert(k.to_owned(), serde_json::Value::String(v));
            }
        }
        if let Some(e) = self.requested_expiry {
            m.insert("requested_expiry".into(), e.into());
        }
        if let Some(d) = &self.authorization_details {
            m.insert("authorization_details".into(), d.clone());
        }
        m
    }
}

/// One answer of the token endpoint to a CIBA grant poll.
#[derive(Debug, Clone, PartialEq)]
pub enum PollOutcome {
    /// The user approved: the token response (CIBA Core §11).
    Tokens(TokenResponse),
    /// `authorization_pending`: no decision yet. `retry_after` is the server's `Retry-After`,
    /// also given for a 429 or 503 answer that asks the client to come back later.
    Pending { retry_after: Option<u64> },
    /// `slow_down`: polled too soon; wait five seconds more from now on.
    SlowDown { retry_after: Option<u64> },
    /// Any other error of the grant (`access_denied`, `expired_token`, `invalid_grant`...).
    Failed(OAuthError),
}

/// A relying party registered at one authorization server.
///
/// Made by [`CibaClient::discover`] (or [`CibaClient::new`] from metadata in hand); the
/// `with_*` methods replace its HTTP client, clock, sleeper and observer. Cheap to share behind
/// an `Arc`: every method takes `&self`.
pub struct CibaClient {
    pub(crate) http: reqwest::Client,
    /// The issuer asked for: the metadata must keep naming it.
    pub(crate) issuer: String,
    pub(crate) client_id: String,
    auth: ClientAuth,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) sleeper: Arc<dyn Sleeper>,
    pub(crate) observer: Option<Observer>,
    pub(crate) provider: Mutex<Cached<ProviderMetadata>>,
    pub(crate) keys: Mutex<Option<Cached<Jwks>>>,
    pub(crate) id_token: IdTokenOptions,
}

impl std::fmt::Debug for CibaClient {
    // Never the credentials.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CibaClient")
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .field("auth", &self.auth)
            .finish_non_exhaustive()
    }
}

impl CibaClient {
    /// A client for a server whose metadata is already in hand (for example read from a
    /// configuration file). The metadata is fetched again from its issuer after an hour.
    pub fn new(metadata: ProviderMetadata, client_id: impl Into<String>, auth: ClientAuth) -> Self {
        Self::assemble(metadata, None, client_id.into(), auth, http::default_http())
    }

    /// Discovers the server at `issuer` (see [`discover`](crate::discover)) and makes a client
    /// of it. The metadata is cached for its `Cache-Control: max-age`.
    pub async fn discover(
        issuer: &str,
        client_id: impl Into<String>,
        auth: ClientAuth,
    ) -> Result<Self, ClientError> {
        Self::discover_with(http::default_http(), issuer, client_id, auth).await
    }

    /// [`CibaClient::discover`] with a caller-supplied HTTP client (proxies, TLS roots).
    pub async fn discover_with(
        http: reqwest::Client,
        issuer: &str,
        client_id: impl Into<String>,
        auth: ClientAuth,
    ) -> Result<Self, ClientError> {
        let (metadata, max_age) =
            discovery::fetch_metadata(&http, None, &SystemClock, issuer).await?;
        Ok(Self::assemble(
            metadata,
            max_age,
            client_id.into(),
            auth,
            http,
        ))
    }

    fn assemble(
        metadata: ProviderMetadata,
        max_age: Option<u64>,
        client_id: String,
        auth: ClientAuth,
        http: reqwest::Client,
    ) -> Self {
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        CibaClient {
            http,
            issuer: metadata.issuer.trim_end_matches('/').to_owned(),
            client_id,
            auth,
            provider: Mutex::new(Cached::new(metadata, clock.now_ms(), max_age)),
            clock,
            sleeper: Arc::new(TokioSleeper),
            observer: None,
            keys: Mutex::new(None),
            id_token: IdTokenOptions::default(),
        }
    }

    /// Uses `http` for every request (proxies, custom TLS roots, timeouts).
    pub fn with_http(mut self, http: reqwest::Client) -> Self {
        self.http = http;
        self
    }

    /// Uses `clock` for assertion timestamps, ID-token time checks, cache lifetimes and the
    /// polling deadline.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        let now = clock.now_ms();
        {
            let mut p = self.provider.lock().unwrap_or_else(|p| p.into_inner());
            let lifetime = p.stale_at_ms - p.fetched_at_ms;
            p.fetched_at_ms = now;
            p.stale_at_ms = now.saturating_add(lifetime);
        }
        self.clock = clock;
        self
    }

    /// Uses `sleeper` to wait between polls (tests pair a [`ManualClock`](crate::ManualClock)
    /// with a sleeper that advances it).
    pub fn with_sleeper(mut self, sleeper: Arc<dyn Sleeper>) -> Self {
        self.sleeper = sleeper;
        self
    }

    /// Shows every HTTP exchange to `observer`, secrets masked (logging, narration).
    pub fn with_observer(mut self, observer: Observer) -> Self {
        self.observer = Some(observer);
        self
    }

    /// The server's metadata as last fetched.
    pub fn metadata(&self) -> Arc<ProviderMetadata> {
        self.provider
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .value
            .clone()
    }

    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// Sends a backchannel authentication request (CIBA Core §7.1) and returns the server's
    /// acknowledgement (§7.3). Errors are [`ClientError::OAuth`] with the §13 codes
    /// ([`ErrorCode::UnknownUserId`], [`ErrorCode::InvalidBindingMessage`]...).
    pub async fn initiate(
        &self,
        req: &InitiateRequest,
    ) -> Result<BackchannelAuthResponse, ClientError> {
        self.post_initiate(req.to_form()).await
    }

    /// Sends the request as a signed request object (CIBA Core §7.1.1), signed with the
    /// client's `private_key_jwt` key: `iss` the client, `aud` the issuer, `iat`, `nbf`, `exp`
    /// and a fresh `jti`.
    pub async fn initiate_signed(
        &self,
        req: &InitiateRequest,
    ) -> Result<BackchannelAuthResponse, ClientError> {
        let ClientAuth::PrivateKeyJwt(key) = &self.auth else {
            return Err(ClientError::Config(
                "a signed request object needs a private key (private_key_jwt)".into(),
            ));
        };
        let now = self.clock.now_secs();
        let mut claims = req.to_claims();
        claims.insert("iss".into(), self.client_id.clone().into());
        claims.insert("aud".into(), self.issuer.clone().into());
        claims.insert("iat".into(), now.into());
        claims.insert("nbf".into(), now.into());
        claims.insert("exp".into(), (now + REQUEST_OBJECT_LIFETIME_SECS).into());
        claims.insert("jti".into(), jose::random_token(16)?.into());
        let request = jose::sign_jwt(key, Some("oauth-authz-req+jwt"), &claims)?;
        self.post_initiate(vec![("request", request)]).await
    }

    async fn post_initiate(
        &self,
        params: Vec<(&'static str, String)>,
    ) -> Result<BackchannelAuthResponse, ClientError> {
        let url = self
            .provider()
            .await
            .backchannel_authentication_endpoint
            .clone();
        let answer = self.post_form(&url, params).await?;
        let ack: BackchannelAuthResponse = answer.json()?;
        if ack.auth_req_id.is_empty() {
            return Err(ClientError::InvalidResponse {
                url,
                reason: "empty auth_req_id".into(),
            });
        }
        Ok(ack)
    }

    /// Polls the token endpoint once with the CIBA grant (CIBA Core §10.1).
    pub async fn poll_once(&self, auth_req_id: &str) -> Result<PollOutcome, ClientError> {
        let url = self.provider().await.token_endpoint.clone();
        let params = vec![
            ("grant_type", GRANT_TYPE_CIBA.to_owned()),
            ("auth_req_id", auth_req_id.to_owned()),
        ];
        let answer = self.post_form(&url, params).await?;
        poll_outcome(&answer)
    }

    pub(crate) async fn post_form(
        &self,
        url: &str,
        mut params: Vec<(&'static str, String)>,
    ) -> Result<Answer, ClientError> {
        let creds = auth::credentials(
            &self.auth,
            &self.client_id,
            &self.issuer,
            self.clock.now_secs(),
        )?;
        params.extend(creds.params);
        http::send(
            &self.http,
            self.observer.as_ref(),
            self.clock.as_ref(),
            Outgoing {
                method: reqwest::Method::POST,
                url,
                authorization: creds.authorization,
                form: params,
            },
        )
        .await
    }
}

/// What a token endpoint answer means for a poll.
pub(crate) fn poll_outcome(answer: &Answer) -> Result<PollOutcome, ClientError> {
    if (200..300).contains(&answer.status) {
        let tokens: TokenResponse = answer.json()?;
        // RFC 6749 §5.1: case-insensitive.
        if !tokens.token_type.eq_ignore_ascii_case("bearer") {
            return Err(ClientError::InvalidResponse {
                url: answer.url.clone(),
                reason: format!("unexpected token_type {:?}", tokens.token_type),
            });
        }
        return Ok(PollOutcome::Tokens(tokens));
    }
    let retry_after = answer.retry_after;
    match answer.error() {
        ClientError::OAuth(e) if answer.status == 400 => Ok(match e.code {
            ErrorCode::AuthorizationPending => PollOutcome::Pending { retry_after },
            ErrorCode::SlowDown => PollOutcome::SlowDown { retry_after },
            _ => PollOutcome::Failed(e),
        }),
        // RFC 9110 §15.5.29, §15.6.4: come back later, when the server says when.
        _ if retry_after.is_some() && matches!(answer.status, 429 | 503) => {
            Ok(PollOutcome::Pending { retry_after })
        }
        // 401 invalid_client, 5xx...: a failure of the call, not an outcome of the request.
        e => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: u16, body: &str, retry_after: Option<u64>) -> Answer {
        Answer {
            url: "http://i/token".into(),
            status,
            body: body.as_bytes().to_vec(),
            request_id: Some("r1".into()),
            retry_after,
            max_age: None,
        }
    }

    #[test]
    fn token_answers_map_to_outcomes() {
        let ok = r#"{"access_token":"a","token_type":"bearer","expires_in":60}"#;
        assert!(matches!(
            poll_outcome(&answer(200, ok, None)),
            Ok(PollOutcome::Tokens(_))
        ));
        let dpop = r#"{"access_token":"a","token_type":"DPoP","expires_in":60}"#;
        assert!(poll_outcome(&answer(200, dpop, None)).is_err());
        assert_eq!(
            poll_outcome(&answer(
                400,
                r#"{"error":"authorization_pending"}"#,
                Some(9)
            ))
            .unwrap(),
            PollOutcome::Pending {
                retry_after: Some(9)
            }
        );
        assert_eq!(
            poll_outcome(&answer(400, r#"{"error":"slow_down"}"#, None)).unwrap(),
            PollOutcome::SlowDown { retry_after: None }
        );
        let PollOutcome::Failed(e) = poll_outcome(&answer(
            400,
            r#"{"error":"access_denied","error_description":"the user said no"}"#,
            None,
        ))
        .unwrap() else {
            panic!("not failed")
        };
        assert_eq!(e.code, ErrorCode::AccessDenied);
        assert_eq!(e.request_id.as_deref(), Some("r1"));
        assert_eq!(
            poll_outcome(&answer(503, "busy", Some(30))).unwrap(),
            PollOutcome::Pending {
                retry_after: Some(30)
            }
        );
        assert!(matches!(
            poll_outcome(&answer(503, "busy", None)),
            Err(ClientError::InvalidResponse { .. })
        ));
        let e = poll_outcome(&answer(401, r#"{"error":"invalid_client"}"#, None)).unwrap_err();
        assert_eq!(e.code(), Some(&ErrorCode::InvalidClient));
    }

    #[test]
    fn form_carries_every_set_parameter() {
        let req = InitiateRequest {
            binding_message: Some("W4SCT".into()),
            requested_expiry: Some(120),
            acr_values: Some("urn:acr:2fa".into()),
            user_code: Some("1234".into()),
            client_notification_token: Some("cnt".into()),
            authorization_details: Some(serde_json::json!([{"type": "payment_initiation"}])),
            ..InitiateRequest::for_login_hint("alice@example.com")
        };
        let form = req.to_form();
        for (k, v) in [
            ("scope", "openid"),
            ("login_hint", "alice@example.com"),
            ("binding_message", "W4SCT"),
            ("requested_expiry", "120"),
            ("acr_values", "urn:acr:2fa"),
            ("user_code", "1234"),
            ("client_notification_token", "cnt"),
            (
                "authorization_details",
                r#"[{"type":"payment_initiation"}]"#,
            ),
        ] {
            assert!(form.contains(&(k, v.to_owned())), "{k}");
        }
        assert!(!form.iter().any(|(k, _)| *k == "id_token_hint"));
        let claims = req.to_claims();
        assert_eq!(claims["requested_expiry"], 120);
        assert_eq!(
            claims["authorization_details"][0]["type"],
            "payment_initiation"
        );
        let by_token = InitiateRequest::for_login_hint_token("lht").to_form();
        assert!(by_token.contains(&("login_hint_token", "lht".to_owned())));
        let by_id_token = InitiateRequest::for_id_token_hint("eyJ").to_form();
        assert!(by_id_token.contains(&("id_token_hint", "eyJ".to_owned())));
    }
}
