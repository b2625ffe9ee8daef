//! Enrolment and the device-authenticated API (SPEC §5): listing and fetching challenges
//! (verified before they are returned), sending signed decisions, and the device's own record
//! (its push registration, removing itself). The event stream is in `events`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use backchannel_protocol::device::{
    ChallengeEnvelope, ChallengeList, DEVICE_AUTH_SCHEME, Decision, DecisionRequest,
    DecisionResponse, DeviceInfo, EnrolRequest, EnrolResponse, PushRegistration,
};
use backchannel_protocol::jose::{Algorithm, Jwks, SigningKey};
use backchannel_protocol::oauth::ErrorResponse;
use serde::de::DeserializeOwned;

use crate::jwt::{Rejection, sign_decision_as, sign_device_auth, verify_challenge};
use crate::{
    AuthenticatorError, CheckedChallenge, Clock, DeviceState, SystemClock, VerifiedChallenge,
};

pub(crate) const HTTP_TIMEOUT: Duration = Duration::from_secs(30);
const ENROL_PATH: &str = "/device/v1/enrol";
const CHALLENGES_PATH: &str = "/device/v1/challenges";
const SELF_PATH: &str = "/device/v1/device";
const PUSH_PATH: &str = "/device/v1/device/push";

/// Enrols a new device: generates its key pair here (the private key never leaves the device),
/// and redeems the one-time `code` at `server`. Save [`Device::state`] afterwards.
pub async fn enrol(
    server: &str,
    code: &str,
    name: Option<&str>,
    alg: Algorithm,
) -> Result<Device, AuthenticatorError> {
    enrol_with(&default_http_client(), server, code, name, alg, None).await
}

/// [`enrol`] with a caller-supplied HTTP client (see [`default_http_client`]) and the push
/// channels the server may wake this device through.
pub async fn enrol_with(
    http: &reqwest::Client,
    server: &str,
    code: &str,
    name: Option<&str>,
    alg: Algorithm,
    push: Option<PushRegistration>,
) -> Result<Device, AuthenticatorError> {
    let key = SigningKey::generate(alg)?;
    let server = server.trim_end_matches('/').to_owned();
    let url = format!("{server}{ENROL_PATH}");
    let body = EnrolRequest {
        code: code.to_owned(),
        public_jwk: key.public_jwk(),
        name: name.map(str::to_owned),
        push,
    };
    let resp = http
        .post(&url)
        .json(&body)
        .send()
        .await
        .map_err(|s| http_err(&url, s))?;
    let enrolled: EnrolResponse = read_json(resp, &url).await.map_err(|e| match e {
        AuthenticatorError::Api { error, .. } if error.error == "invalid_code" => {
            AuthenticatorError::InvalidCode
        }
        e => e,
    })?;
    let state = DeviceState {
        server,
        issuer: enrolled.issuer.trim_end_matches('/').to_owned(),
        device_id: enrolled.device_id,
        private_jwk: key.to_private_jwk(),
    };
    Ok(Device::from_parts(state, key, http.clone()))
}

/// An enrolled device, ready to call the device API.
#[derive(Debug)]
pub struct Device {
    state: DeviceState,
    key: SigningKey,
    /// Where requests go: the state's server unless overridden for this session.
    server: String,
    http: reqwest::Client,
    clock: Arc<dyn Clock>,
    jwks: Mutex<Option<Arc<Jwks>>>,
}

impl Device {
    pub fn new(state: DeviceState) -> Result<Self, AuthenticatorError> {
        let key = SigningKey::from_jwk(&state.private_jwk)?;
        Ok(Device::from_parts(state, key, default_http_client()))
    }

    fn from_parts(state: DeviceState, key: SigningKey, http: reqwest::Client) -> Self {
        Device {
            server: state.server.trim_end_matches('/').to_owned(),
            state,
            key,
            http,
            clock: Arc::new(SystemClock),
            jwks: Mutex::new(None),
        }
    }

    /// Talks to `server` (a particular node) instead of the state's URL; the state is unchanged.
    pub fn with_server(mut self, server: &str) -> Self {
        self.server = server.trim_end_matches('/').to_owned();
        self
    }

    pub fn with_http(mut self, http: reqwest::Client) -> Self {
        self.http = http;
        self
    }

    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    pub fn state(&self) -> &DeviceState {
        &self.state
    }

    pub fn device_id(&self) -> &str {
        &self.state.device_id
    }

    /// The URL requests go to.
    pub fn server(&self) -> &str {
        &self.server
    }

    /// The `Authorization` header value for one call: `Device <jwt>`.
    pub fn authorization(&self, method: &str, path: &str) -> Result<String, AuthenticatorError> {
        let jwt = sign_device_auth(
            &self.key,
            &self.state.device_id,
            &self.state.issuer,
            method,
            path,
            self.clock.now_secs(),
        )?;
        Ok(format!("{DEVICE_AUTH_SCHEME} {jwt}"))
    }

    /// The pending challenges that pass verification. Ones that fail (forged, expired while
    /// in flight) are left out: use [`Device::fetch_challenges`] to see them.
    pub async fn list_challenges(&self) -> Result<Vec<VerifiedChallenge>, AuthenticatorError> {
        Ok(self
            .fetch_challenges()
            .await?
            .into_iter()
            .filter_map(|(_, v)| v.ok())
            .collect())
    }

    /// Every pending challenge the server lists, each with its verification result.
    pub async fn fetch_challenges(&self) -> Result<Vec<CheckedChallenge>, AuthenticatorError> {
        let list: ChallengeList = self.get(CHALLENGES_PATH).await?;
        let mut out = Vec::with_capacity(list.challenges.len());
        for envelope in list.challenges {
            let verified = self.verify(&envelope).await;
            out.push((envelope, verified));
        }
        Ok(out)
    }

    /// One challenge by id, verified.
    pub async fn get_challenge(&self, id: &str) -> Result<VerifiedChallenge, AuthenticatorError> {
        if !is_safe_id(id) {
            return Err(AuthenticatorError::NotFound(id.to_owned()));
        }
        let envelope: ChallengeEnvelope = self
            .get(&format!("{CHALLENGES_PATH}/{id}"))
            .await
            .map_err(|e| match e {
                AuthenticatorError::Api { status: 404, .. } => {
                    AuthenticatorError::NotFound(id.to_owned())
                }
                e => e,
            })?;
        if envelope.id != id {
            return Err(AuthenticatorError::InvalidChallenge(format!(
                "asked for {id}, got {}",
                envelope.id
            )));
        }
        self.verify(&envelope).await
    }

    /// Sends the user's decision on a verified challenge, signed by the device key and bound to
    /// the challenge exactly as shown (SPEC §5). The first decision on a request wins; a later
    /// one is [`AuthenticatorError::ChallengeClosed`]. A challenge whose `claims.uv_required`
    /// is set is approved only with `user_verified` (the user was verified on the device);
    /// the server refuses any other approval (`invalid_decision`) and the challenge stays
    /// pending.
    pub async fn decide(
        &self,
        challenge: &VerifiedChallenge,
        decision: Decision,
        user_verified: bool,
    ) -> Result<DecisionResponse, AuthenticatorError> {
        self.send_decision(challenge, decision, user_verified, false)
            .await
    }

    /// Denies a challenge the user says they did not ask for: the server records it and keeps
    /// the client from asking this user again for a while.
    pub async fn deny_not_me(
        &self,
        challenge: &VerifiedChallenge,
        user_verified: bool,
    ) -> Result<DecisionResponse, AuthenticatorError> {
        self.send_decision(challenge, Decision::Deny, user_verified, true)
            .await
    }

    async fn send_decision(
        &self,
        challenge: &VerifiedChallenge,
        decision: Decision,
        user_verified: bool,
        not_me: bool,
    ) -> Result<DecisionResponse, AuthenticatorError> {
        if !is_safe_id(&challenge.id) {
            return Err(AuthenticatorError::NotFound(challenge.id.clone()));
        }
        let jws = sign_decision_as(
            &self.key,
            &self.state.device_id,
            challenge,
            decision,
            user_verified,
            not_me,
            self.clock.now_secs(),
        )?;
        let path = format!("{CHALLENGES_PATH}/{}/decision", challenge.id);
        let (request, url) = self.request(reqwest::Method::POST, &path)?;
        let resp = request
            .json(&DecisionRequest { decision: jws })
            .send()
            .await
            .map_err(|s| http_err(&url, s))?;
        read_json(resp, &url).await.map_err(|e| match e {
            AuthenticatorError::Api { status: 409, .. } => {
                AuthenticatorError::ChallengeClosed(challenge.id.clone())
            }
            AuthenticatorError::Api { status: 404, .. } => {
                AuthenticatorError::NotFound(challenge.id.clone())
            }
            e => e,
        })
    }

    /// Verifies a challenge against the server's JWKS, refreshing the keys once if none of them
    /// verifies it (the server may have rotated its key).
    pub(crate) async fn verify(
        &self,
        envelope: &ChallengeEnvelope,
    ) -> Result<VerifiedChallenge, AuthenticatorError> {
        let now = self.clock.now_secs();
        let (issuer, device_id) = (&self.state.issuer, &self.state.device_id);
        let jwks = self.jwks(false).await?;
        let result = match verify_challenge(envelope, &jwks, issuer, device_id, now) {
            Err(Rejection {
                key_problem: true, ..
            }) => {
                let jwks = self.jwks(true).await?;
                verify_challenge(envelope, &jwks, issuer, device_id, now)
            }
            other => other,
        };
        result.map_err(|r| AuthenticatorError::InvalidChallenge(r.reason))
    }

    async fn jwks(&self, refresh: bool) -> Result<Arc<Jwks>, AuthenticatorError> {
        if !refresh {
            let cached = self.jwks.lock().unwrap_or_else(|p| p.into_inner()).clone();
            if let Some(j) = cached {
                return Ok(j);
            }
        }
        // From the node we talk to: the public jwks_uri may not be reachable from here.
        let url = format!("{}/jwks", self.server);
        let resp = self
            .http
            .get(&url)
            .send()
            .await
            .map_err(|s| http_err(&url, s))?;
        let jwks: Arc<Jwks> = Arc::new(read_json(resp, &url).await?);
        *self.jwks.lock().unwrap_or_else(|p| p.into_inner()) = Some(jwks.clone());
        Ok(jwks)
    }

    /// This device as the server sees it: name, push registration (with the channels the
    /// server found dead), whether it is disabled.
    pub async fn info(&self) -> Result<DeviceInfo, AuthenticatorError> {
        self.get(SELF_PATH).await
    }

    /// Replaces the device's push registration with `push` (channels left out are removed;
    /// the server's list of dead channels starts afresh). Returns the device as updated.
    pub async fn update_push(
        &self,
        push: &PushRegistration,
    ) -> Result<DeviceInfo, AuthenticatorError> {
        let (request, url) = self.request(reqwest::Method::PUT, PUSH_PATH)?;
        let resp = request
            .json(push)
            .send()
            .await
            .map_err(|s| http_err(&url, s))?;
        read_json(resp, &url).await
    }

    /// Removes this device: the server disables it and closes its pending challenges. Every
    /// later call with this device's key is refused ([`AuthenticatorError::Unauthorized`]).
    pub async fn remove(&self) -> Result<(), AuthenticatorError> {
        let (request, url) = self.request(reqwest::Method::DELETE, SELF_PATH)?;
        let resp = request.send().await.map_err(|s| http_err(&url, s))?;
        let status = resp.status();
        let body = resp.bytes().await.map_err(|s| http_err(&url, s))?;
        if status.is_success() {
            return Ok(());
        }
        Err(error_for(status.as_u16(), &body, &url))
    }

    async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, AuthenticatorError> {
        let (request, url) = self.request(reqwest::Method::GET, path)?;
        let resp = request.send().await.map_err(|s| http_err(&url, s))?;
        read_json(resp, &url).await
    }

    /// A device-authenticated request for `path` on the server, and its URL.
    pub(crate) fn request(
        &self,
        method: reqwest::Method,
        path: &str,
    ) -> Result<(reqwest::RequestBuilder, String), AuthenticatorError> {
        let url = format!("{}{path}", self.server);
        let authorization = self.authorization(method.as_str(), path)?;
        let request = self
            .http
            .request(method, &url)
            .header(reqwest::header::AUTHORIZATION, authorization);
        Ok((request, url))
    }
}

/// Challenge ids go into URL paths: accept only the unreserved characters (RFC 3986 §2.3), so
/// the path the server sees is exactly the one `htu` names.
fn is_safe_id(id: &str) -> bool {
    !id.is_empty()
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~'))
}

/// The HTTP client the library uses unless given another: a 30-second timeout per call, no
/// redirects (a device-signed request is bound to one URL).
pub fn default_http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(HTTP_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap_or_else(|_| reqwest::Client::new())
}

pub(crate) fn http_err(url: &str, source: reqwest::Error) -> AuthenticatorError {
    let source = source.without_url();
    AuthenticatorError::Http {
        url: url.to_owned(),
        detail: crate::error::error_chain(&source),
        source,
    }
}

async fn read_json<T: DeserializeOwned>(
    resp: reqwest::Response,
    url: &str,
) -> Result<T, AuthenticatorError> {
    let status = resp.status();
    let body = resp.bytes().await.map_err(|s| http_err(url, s))?;
    if status.is_success() {
        return serde_json::from_slice(&body).map_err(|e| AuthenticatorError::InvalidResponse {
            url: url.to_owned(),
            reason: format!("HTTP {}: {e}", status.as_u16()),
        });
    }
    Err(error_for(status.as_u16(), &body, url))
}

/// The error an unsuccessful answer carries.
pub(crate) fn error_for(status: u16, body: &[u8], url: &str) -> AuthenticatorError {
    match serde_json::from_slice::<ErrorResponse>(body) {
        Ok(error) if status == 401 => AuthenticatorError::Unauthorized(error),
        Ok(error) => AuthenticatorError::Api { status, error },
        Err(_) => AuthenticatorError::InvalidResponse {
            url: url.to_owned(),
            reason: format!("HTTP {status} without an error body"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_ids_are_restricted() {
        assert!(is_safe_id("abc-DEF_123.~"));
        assert!(!is_safe_id(""));
        assert!(!is_safe_id("../admin"));
        assert!(!is_safe_id("a?b"));
        assert!(!is_safe_id("a%2F"));
    }
}
