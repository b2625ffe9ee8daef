//! Discovery, the backchannel authentication request (CIBA Core §7) and token polling in poll
//! mode (CIBA Core §10.1, §11).

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use backchannel_protocol::jose::{self, Jwks};
use backchannel_protocol::metadata::ProviderMetadata;
use backchannel_protocol::oauth::{
    BackchannelAuthResponse, ErrorResponse, GRANT_TYPE_CIBA, TokenResponse,
};
use serde::de::DeserializeOwned;

use crate::auth::{self, ClientAuth};
use crate::{ClientError, Clock, SystemClock};

/// CIBA Core §7.3: the polling interval when the server names none.
const DEFAULT_INTERVAL_SECS: u64 = 5;
/// CIBA Core §11: every `slow_down` adds five seconds to the interval for the rest of the
/// request's life.
const SLOW_DOWN_STEP_SECS: u64 = 5;
/// Lifetime of a signed authentication request object (CIBA Core §7.1.1).
const REQUEST_OBJECT_LIFETIME_SECS: i64 = 300;
/// Per-request timeout. Long enough for a server that holds polls (long polling).
const HTTP_TIMEOUT: Duration = Duration::from_secs(90);

/// The parameters of a backchannel authentication request (CIBA Core §7.1). Exactly one hint
/// should be set; `scope` must contain `openid`.
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
    /// Required for ping and push clients (CIBA Core §7.1).
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
    fn to_claims(&self) -> serde_json::Map<String, serde_json::Value> {
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
    /// `authorization_pending`: no decision yet.
    Pending,
    /// `slow_down`: polled too soon; wait five seconds more from now on.
    SlowDown,
    /// Any other error of the grant (`access_denied`, `expired_token`, `invalid_grant`...).
    Failed(ErrorResponse),
}

/// Fetches and checks the server's discovery document (`/.well-known/openid-configuration`).
pub async fn discover(issuer: &str) -> Result<ProviderMetadata, ClientError> {
    discover_with(&default_http(), issuer).await
}

/// [`discover`] with a caller-supplied HTTP client.
pub async fn discover_with(
    http: &reqwest::Client,
    issuer: &str,
) -> Result<ProviderMetadata, ClientError> {
    let issuer = issuer.trim_end_matches('/');
    let url = format!("{issuer}/.well-known/openid-configuration");
    let resp = http
        .get(&url)
        .send()
        .await
        .map_err(|source| http_err(&url, source))?;
    let metadata: ProviderMetadata = read_json(resp, &url).await?;
    // OpenID Connect Discovery 1.0 §4.3: the document must name the issuer it was fetched for.
    if metadata.issuer.trim_end_matches('/') != issuer {
        return Err(ClientError::IssuerMismatch {
            expected: issuer.to_owned(),
            found: metadata.issuer,
        });
    }
    Ok(metadata)
}

/// A relying party registered at one authorization server.
#[derive(Debug)]
pub struct CibaClient {
    pub(crate) http: reqwest::Client,
    pub(crate) metadata: ProviderMetadata,
    pub(crate) client_id: String,
    auth: ClientAuth,
    pub(crate) clock: Arc<dyn Clock>,
    /// The server's keys, refreshed when a token names a key not in them.
    pub(crate) jwks: Mutex<Option<Arc<Jwks>>>,
}

impl CibaClient {
    pub fn new(metadata: ProviderMetadata, client_id: impl Into<String>, auth: ClientAuth) -> Self {
        CibaClient {
            http: default_http(),
            metadata,
            client_id: client_id.into(),
            auth,
            clock: Arc::new(SystemClock),
            jwks: Mutex::new(None),
        }
    }

    /// Uses `http` for every request (proxies, custom TLS roots, timeouts).
    pub fn with_http(mut self, http: reqwest::Client) -> Self {
        self.http = http;
        self
    }

    /// Uses `clock` for assertion timestamps and ID-token time checks.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    pub fn metadata(&self) -> &ProviderMetadata {
        &self.metadata
    }

    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// Sends a backchannel authentication request (CIBA Core §7.1) and returns the server's
    /// acknowledgement (§7.3).
    pub async fn initiate(
        &self,
        req: &InitiateRequest,
    ) -> Result<BackchannelAuthResponse, ClientError> {
        self.post_initiate(req.to_form()).await
    }

    /// Sends the request as a signed request object (CIBA Core §7.1.1), signed with the
    /// client's `private_key_jwt` key.
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
        claims.insert("aud".into(), self.metadata.issuer.clone().into());
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
        let url = self.metadata.backchannel_authentication_endpoint.clone();
        let resp = self.post_form(&url, params).await?;
        let ack: BackchannelAuthResponse = read_json(resp, &url).await?;
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
        let url = self.metadata.token_endpoint.clone();
        let params = vec![
            ("grant_type", GRANT_TYPE_CIBA.to_owned()),
            ("auth_req_id", auth_req_id.to_owned()),
        ];
        let resp = self.post_form(&url, params).await?;
        match read_json::<TokenResponse>(resp, &url).await {
            Ok(tokens) if tokens.token_type.eq_ignore_ascii_case("bearer") => {
                Ok(PollOutcome::Tokens(tokens))
            }
            Ok(tokens) => Err(ClientError::InvalidResponse {
                url,
                reason: format!("unexpected token_type {:?}", tokens.token_type),
            }),
            // RFC 6749 §5.2: grant errors are 400s; anything else (401 invalid_client, 5xx)
            // is a failure of the call, not an outcome of the request.
            Err(ClientError::OAuth { status: 400, error }) => Ok(match error.error.as_str() {
                "authorization_pending" => PollOutcome::Pending,
                "slow_down" => PollOutcome::SlowDown,
                _ => PollOutcome::Failed(error),
            }),
            Err(e) => Err(e),
        }
    }

    /// Polls until the request has an outcome: every `interval` seconds (five more after each
    /// `slow_down`), stopping when `expires_in` seconds have passed. Returns the tokens;
    /// a denial or expiry reported by the server is [`ClientError::OAuth`], and a request still
    /// pending past its lifetime is [`ClientError::Expired`].
    pub async fn poll_until_done(
        &self,
        auth_req_id: &str,
        interval: u64,
        expires_in: u64,
    ) -> Result<TokenResponse, ClientError> {
        drive_polls(|| self.poll_once(auth_req_id), interval, expires_in).await
    }

    pub(crate) async fn post_form(
        &self,
        url: &str,
        mut params: Vec<(&'static str, String)>,
    ) -> Result<reqwest::Response, ClientError> {
        let creds = auth::credentials(
            &self.auth,
            &self.client_id,
            &self.metadata.issuer,
            self.clock.now_secs(),
        )?;
        params.extend(creds.params);
        let mut req = self.http.post(url).form(&params);
        if let Some(h) = creds.authorization {
            req = req.header(reqwest::header::AUTHORIZATION, h);
        }
        req.send().await.map_err(|source| http_err(url, source))
    }
}

/// The polling loop, apart from HTTP so it can be tested with paused time.
pub(crate) async fn drive_polls<F, Fut>(
    mut poll: F,
    interval: u64,
    expires_in: u64,
) -> Result<TokenResponse, ClientError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<PollOutcome, ClientError>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(expires_in);
    let mut interval = if interval == 0 {
        DEFAULT_INTERVAL_SECS
    } else {
        interval
    };
    let mut last_chance = false;
    loop {
        let polled_at = tokio::time::Instant::now();
        match poll().await? {
            PollOutcome::Tokens(t) => return Ok(t),
            PollOutcome::Failed(error) => return Err(ClientError::OAuth { status: 400, error }),
            PollOutcome::Pending => {}
            PollOutcome::SlowDown => interval += SLOW_DOWN_STEP_SECS,
        }
        if last_chance {
            return Err(ClientError::Expired);
        }
        // The interval runs from the poll, and is honoured even at the end: the poll after the
        // deadline gets the server's own verdict (tokens or expired_token).
        let next = polled_at + Duration::from_secs(interval);
        if next >= deadline {
            last_chance = true;
        }
        tokio::time::sleep_until(next).await;
    }
}

pub(crate) fn default_http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(HTTP_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap_or_else(|_| reqwest::Client::new())
}

pub(crate) fn http_err(url: &str, source: reqwest::Error) -> ClientError {
    let source = source.without_url();
    ClientError::Http {
        url: url.to_owned(),
        detail: crate::error::error_chain(&source),
        source,
    }
}

/// Reads a JSON body: `T` on success, the OAuth error body otherwise.
pub(crate) async fn read_json<T: DeserializeOwned>(
    resp: reqwest::Response,
    url: &str,
) -> Result<T, ClientError> {
    let status = resp.status();
    let body = resp.bytes().await.map_err(|source| http_err(url, source))?;
    if status.is_success() {
        return serde_json::from_slice(&body).map_err(|e| ClientError::InvalidResponse {
            url: url.to_owned(),
            reason: format!("HTTP {}: {e}", status.as_u16()),
        });
    }
    match serde_json::from_slice::<ErrorResponse>(&body) {
        Ok(error) => Err(ClientError::OAuth {
            status: status.as_u16(),
            error,
        }),
        Err(_) => Err(ClientError::InvalidResponse {
            url: url.to_owned(),
            reason: format!("HTTP {} without an OAuth error body", status.as_u16()),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex as StdMutex;
    use tokio::time::Instant;

    fn tokens() -> TokenResponse {
        TokenResponse {
            access_token: "at".into(),
            token_type: "Bearer".into(),
            expires_in: 300,
            id_token: None,
            refresh_token: None,
            scope: Some("openid".into()),
            authorization_details: None,
        }
    }

    fn err(code: &str) -> ErrorResponse {
        ErrorResponse {
            error: code.into(),
            error_description: None,
            trace_id: None,
        }
    }

    /// Runs the loop over scripted outcomes; returns the result and the poll times (seconds
    /// since start).
    async fn run_script(
        script: Vec<PollOutcome>,
        interval: u64,
        expires_in: u64,
    ) -> (Result<TokenResponse, ClientError>, Vec<u64>) {
        let start = Instant::now();
        let times = StdMutex::new(Vec::new());
        let script = StdMutex::new(script.into_iter());
        let result = drive_polls(
            || {
                times
                    .lock()
                    .unwrap()
                    .push((Instant::now() - start).as_secs());
                let next = script
                    .lock()
                    .unwrap()
                    .next()
                    .unwrap_or(PollOutcome::Pending);
                async move { Ok(next) }
            },
            interval,
            expires_in,
        )
        .await;
        (result, times.into_inner().unwrap())
    }

    #[tokio::test(start_paused = true)]
    async fn polls_at_the_interval_until_tokens() {
        let (r, times) = run_script(
            vec![
                PollOutcome::Pending,
                PollOutcome::Pending,
                PollOutcome::Tokens(tokens()),
            ],
            5,
            300,
        )
        .await;
        assert_eq!(r.unwrap().access_token, "at");
        assert_eq!(times, vec![0, 5, 10]);
    }

    #[tokio::test(start_paused = true)]
    async fn slow_down_adds_five_seconds_for_good() {
        let (r, times) = run_script(
            vec![
                PollOutcome::SlowDown,
                PollOutcome::Pending,
                PollOutcome::SlowDown,
                PollOutcome::Pending,
                PollOutcome::Tokens(tokens()),
            ],
            2,
            300,
        )
        .await;
        assert!(r.is_ok());
        assert_eq!(times, vec![0, 7, 14, 26, 38]);
    }

    #[tokio::test(start_paused = true)]
    async fn denial_ends_polling_with_the_oauth_error() {
        let (r, times) = run_script(
            vec![
                PollOutcome::Pending,
                PollOutcome::Failed(err("access_denied")),
            ],
            5,
            300,
        )
        .await;
        match r {
            Err(ClientError::OAuth { status: 400, error }) => {
                assert_eq!(error.error, "access_denied")
            }
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(times, vec![0, 5]);
    }

    #[tokio::test(start_paused = true)]
    async fn stops_after_expiry_with_one_last_poll() {
        let (r, times) = run_script(vec![], 5, 12).await;
        assert!(matches!(r, Err(ClientError::Expired)));
        // 0, 5, 10 within the lifetime; 15 is the last chance after it.
        assert_eq!(times, vec![0, 5, 10, 15]);
    }

    #[tokio::test(start_paused = true)]
    async fn the_last_poll_takes_the_servers_verdict() {
        let mut script = vec![PollOutcome::Pending; 3];
        script.push(PollOutcome::Failed(err("expired_token")));
        let (r, _) = run_script(script, 5, 12).await;
        assert_eq!(r.unwrap_err().oauth_error().unwrap().error, "expired_token");
    }

    #[test]
    fn form_carries_every_set_parameter() {
        let req = InitiateRequest {
            binding_message: Some("W4SCT".into()),
            requested_expiry: Some(120),
            authorization_details: Some(serde_json::json!([{"type": "payment_initiation"}])),
            ..InitiateRequest::for_login_hint("alice@example.com")
        };
        let form = req.to_form();
        assert!(form.contains(&("scope", "openid".into())));
        assert!(form.contains(&("login_hint", "alice@example.com".into())));
        assert!(form.contains(&("binding_message", "W4SCT".into())));
        assert!(form.contains(&("requested_expiry", "120".into())));
        assert!(form.contains(&(
            "authorization_details",
            r#"[{"type":"payment_initiation"}]"#.into()
        )));
        assert!(
            !form
                .iter()
                .any(|(k, _)| *k == "id_token_hint" || *k == "user_code")
        );
        let claims = req.to_claims();
        assert_eq!(claims["requested_expiry"], 120);
        assert_eq!(
            claims["authorization_details"][0]["type"],
            "payment_initiation"
        );
    }
}
