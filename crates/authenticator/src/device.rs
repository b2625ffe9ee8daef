//! Enrolment and the device-authenticated API (SPEC §5): device-request JWTs bound to method
//! and URL, verification of server-signed challenges, and decisions bound to what was shown.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use backchannel_protocol::device::{
    CHALLENGE_JWT_TYP, ChallengeClaims, ChallengeEnvelope, ChallengeList, DECISION_JWT_TYP,
    DEVICE_AUTH_JWT_TYP, DEVICE_AUTH_SCHEME, Decision, DecisionClaims, DecisionRequest,
    DecisionResponse, DeviceAuthClaims, EnrolRequest, EnrolResponse, PushRegistration,
};
use backchannel_protocol::jose::{self, Algorithm, Header, Jwks, SigningKey};
use backchannel_protocol::oauth::ErrorResponse;
use serde::de::DeserializeOwned;

use crate::{AuthenticatorError, Clock, DeviceState, SystemClock};

/// Lifetime of a device-request JWT: one call, so one minute is plenty, and well under the
/// server's bound (`DEVICE_AUTH_MAX_LIFETIME_SECS`).
const DEVICE_AUTH_LIFETIME_SECS: i64 = 60;
const HTTP_TIMEOUT: Duration = Duration::from_secs(30);
const ENROL_PATH: &str = "/device/v1/enrol";
const CHALLENGES_PATH: &str = "/device/v1/challenges";

/// A challenge whose signature, issuer, audience, expiry and id were checked: safe to show.
#[derive(Debug, Clone, PartialEq)]
pub struct VerifiedChallenge {
    pub id: String,
    /// The challenge JWT exactly as received: the decision's `shown_hash` is over these bytes.
    pub raw: String,
    pub claims: ChallengeClaims,
}

/// Enrols a new device: generates its key pair here (the private key never leaves the device),
/// and redeems the one-time `code` at `server`. Save [`Device::state`] afterwards.
pub async fn enrol(
    server: &str,
    code: &str,
    name: Option<&str>,
    alg: Algorithm,
) -> Result<Device, AuthenticatorError> {
    enrol_with(&default_http(), server, code, name, alg, None).await
}

/// [`enrol`] with a caller-supplied HTTP client and a push registration.
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
    let resp = http.post(&url).json(&body).send().await.map_err(|s| http_err(&url, s))?;
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
        Ok(Device::from_parts(state, key, default_http()))
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
        Ok(self.fetch_challenges().await?.into_iter().filter_map(|(_, v)| v.ok()).collect())
    }

    /// Every pending challenge the server lists, each with its verification result.
    #[allow(clippy::type_complexity)]
    pub async fn fetch_challenges(
        &self,
    ) -> Result<Vec<(ChallengeEnvelope, Result<VerifiedChallenge, AuthenticatorError>)>, AuthenticatorError>
    {
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
        let envelope: ChallengeEnvelope =
            self.get(&format!("{CHALLENGES_PATH}/{id}")).await.map_err(|e| match e {
                AuthenticatorError::Api { status: 404, .. } => AuthenticatorError::NotFound(id.to_owned()),
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
    /// one is [`AuthenticatorError::ChallengeClosed`].
    pub async fn decide(
        &self,
        challenge: &VerifiedChallenge,
        decision: Decision,
        user_verified: bool,
    ) -> Result<DecisionResponse, AuthenticatorError> {
        if !is_safe_id(&challenge.id) {
            return Err(AuthenticatorError::NotFound(challenge.id.clone()));
        }
        let jws = sign_decision(
            &self.key,
            &self.state.device_id,
            challenge,
            decision,
            user_verified,
            self.clock.now_secs(),
        )?;
        let path = format!("{CHALLENGES_PATH}/{}/decision", challenge.id);
        let url = format!("{}{path}", self.server);
        let resp = self
            .http
            .post(&url)
            .header(reqwest::header::AUTHORIZATION, self.authorization("POST", &path)?)
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

    /// Verifies a challenge against the server's JWKS, refreshing the keys once if they do not
    /// verify it (the server may have rotated its key).
    async fn verify(&self, envelope: &ChallengeEnvelope) -> Result<VerifiedChallenge, AuthenticatorError> {
        let now = self.clock.now_secs();
        let jwks = self.jwks(false).await?;
        match verify_challenge(envelope, &jwks, &self.state.issuer, &self.state.device_id, now) {
            Err(AuthenticatorError::InvalidChallenge(reason)) if reason.starts_with(SIG_PREFIX) => {
                let jwks = self.jwks(true).await?;
                verify_challenge(envelope, &jwks, &self.state.issuer, &self.state.device_id, now)
            }
            other => other,
        }
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
        let resp = self.http.get(&url).send().await.map_err(|s| http_err(&url, s))?;
        let jwks: Arc<Jwks> = Arc::new(read_json(resp, &url).await?);
        *self.jwks.lock().unwrap_or_else(|p| p.into_inner()) = Some(jwks.clone());
        Ok(jwks)
    }

    async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, AuthenticatorError> {
        let url = format!("{}{path}", self.server);
        let resp = self
            .http
            .get(&url)
            .header(reqwest::header::AUTHORIZATION, self.authorization("GET", path)?)
            .send()
            .await
            .map_err(|s| http_err(&url, s))?;
        read_json(resp, &url).await
    }
}

/// The claims of a device-request JWT for `method` on `path` (a path under the issuer, no
/// query string), valid for 60 seconds from `now`.
pub fn device_auth_claims(
    device_id: &str,
    issuer: &str,
    method: &str,
    path: &str,
    now: i64,
    jti: String,
) -> DeviceAuthClaims {
    DeviceAuthClaims {
        iss: device_id.to_owned(),
        htm: method.to_ascii_uppercase(),
        // The public URL, whichever node serves the call (SPEC §5).
        htu: format!("{}{path}", issuer.trim_end_matches('/')),
        iat: now,
        exp: now + DEVICE_AUTH_LIFETIME_SECS,
        jti,
    }
}

/// Signs a device-request JWT (`typ` device-auth+jwt, `kid` = the device id).
pub fn sign_device_auth(
    key: &SigningKey,
    device_id: &str,
    issuer: &str,
    method: &str,
    path: &str,
    now: i64,
) -> Result<String, AuthenticatorError> {
    let claims = device_auth_claims(device_id, issuer, method, path, now, jose::random_token(16)?);
    sign_with_device_key(key, device_id, DEVICE_AUTH_JWT_TYP, &claims)
}

/// Signs the decision JWS over a challenge: `shown_hash` is base64url(SHA-256) of the challenge
/// JWT exactly as received.
pub fn sign_decision(
    key: &SigningKey,
    device_id: &str,
    challenge: &VerifiedChallenge,
    decision: Decision,
    user_verified: bool,
    now: i64,
) -> Result<String, AuthenticatorError> {
    let claims = DecisionClaims {
        iss: device_id.to_owned(),
        challenge_id: challenge.id.clone(),
        decision,
        user_verified,
        shown_hash: jose::b64::encode(&jose::sha256(challenge.raw.as_bytes())),
        iat: now,
        jti: jose::random_token(16)?,
    };
    sign_with_device_key(key, device_id, DECISION_JWT_TYP, &claims)
}

fn sign_with_device_key<T: serde::Serialize>(
    key: &SigningKey,
    device_id: &str,
    typ: &str,
    claims: &T,
) -> Result<String, AuthenticatorError> {
    let header = Header {
        alg: key.alg().as_str().to_owned(),
        kid: Some(device_id.to_owned()),
        typ: Some(typ.to_owned()),
        ..Default::default()
    };
    let payload = serde_json::to_vec(claims)
        .map_err(|e| jose::JoseError::Malformed(format!("claims: {e}")))?;
    Ok(jose::sign_jws(&header, &payload, key)?)
}

const SIG_PREFIX: &str = "signature";

/// Checks a challenge before anything of it is shown: `typ`, the server's signature, `iss` (the
/// issuer), `aud` (this device), `exp`, and that its `jti` is the id it was listed under.
pub(crate) fn verify_challenge(
    envelope: &ChallengeEnvelope,
    jwks: &Jwks,
    issuer: &str,
    device_id: &str,
    now: i64,
) -> Result<VerifiedChallenge, AuthenticatorError> {
    let bad = |m: String| AuthenticatorError::InvalidChallenge(m);
    let jws = jose::decode_jws(&envelope.challenge).map_err(|e| bad(e.to_string()))?;
    if jws.header.typ.as_deref() != Some(CHALLENGE_JWT_TYP) {
        return Err(bad(format!("typ {:?} is not {CHALLENGE_JWT_TYP}", jws.header.typ)));
    }
    let keys = jwks.candidates(jws.header.kid.as_deref(), jws.alg());
    if keys.is_empty() {
        return Err(bad(format!("{SIG_PREFIX}: no server key matches kid and alg")));
    }
    jws.verify_any(&keys).map_err(|_| bad(format!("{SIG_PREFIX}: does not verify")))?;
    let claims: ChallengeClaims = jws.claims().map_err(|e| bad(e.to_string()))?;
    if claims.iss.trim_end_matches('/') != issuer.trim_end_matches('/') {
        return Err(bad(format!("iss {:?} is not the issuer {issuer:?}", claims.iss)));
    }
    if claims.aud != device_id {
        return Err(bad(format!("aud {:?} is not this device", claims.aud)));
    }
    if claims.exp <= now {
        return Err(bad(format!("expired at {} (now {now})", claims.exp)));
    }
    if claims.jti != envelope.id {
        return Err(bad(format!("jti {:?} is not the listed id {:?}", claims.jti, envelope.id)));
    }
    Ok(VerifiedChallenge { id: envelope.id.clone(), raw: envelope.challenge.clone(), claims })
}

/// Challenge ids go into URL paths: accept only the unreserved characters (RFC 3986 §2.3), so
/// the path the server sees is exactly the one `htu` names.
fn is_safe_id(id: &str) -> bool {
    !id.is_empty()
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~'))
}

fn default_http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(HTTP_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap_or_else(|_| reqwest::Client::new())
}

fn http_err(url: &str, source: reqwest::Error) -> AuthenticatorError {
    let source = source.without_url();
    AuthenticatorError::Http { url: url.to_owned(), detail: crate::error::error_chain(&source), source }
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
    match serde_json::from_slice::<ErrorResponse>(&body) {
        Ok(error) if status.as_u16() == 401 => Err(AuthenticatorError::Unauthorized(error)),
        Ok(error) => Err(AuthenticatorError::Api { status: status.as_u16(), error }),
        Err(_) => Err(AuthenticatorError::InvalidResponse {
            url: url.to_owned(),
            reason: format!("HTTP {} without an error body", status.as_u16()),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use backchannel_protocol::jose::{VerifyingKey, decode_jws, sign_jwt};

    const ISSUER: &str = "https://id.example";

    fn server_key() -> (SigningKey, Jwks) {
        let k = SigningKey::generate(Algorithm::ES256).unwrap();
        let jwks = Jwks { keys: vec![k.public_jwk()] };
        (k, jwks)
    }

    fn challenge_claims(now: i64) -> ChallengeClaims {
        ChallengeClaims {
            iss: ISSUER.into(),
            aud: "dev-1".into(),
            jti: "ch-1".into(),
            iat: now,
            exp: now + 120,
            client_id: "c1".into(),
            client_name: "Bank".into(),
            binding_message: Some("W4SCT".into()),
            scope: "openid".into(),
            acr_values: None,
            authorization_details: None,
        }
    }

    fn envelope(key: &SigningKey, claims: &ChallengeClaims) -> ChallengeEnvelope {
        ChallengeEnvelope {
            id: claims.jti.clone(),
            challenge: sign_jwt(key, Some(CHALLENGE_JWT_TYP), claims).unwrap(),
        }
    }

    #[test]
    fn device_auth_jwt_is_bound_to_method_url_and_device() {
        let key = SigningKey::generate(Algorithm::ES256).unwrap();
        let jwt = sign_device_auth(&key, "dev-1", "https://id.example/", "get", "/device/v1/challenges", 1000)
            .unwrap();
        let jws = decode_jws(&jwt).unwrap();
        assert_eq!(jws.header.typ.as_deref(), Some(DEVICE_AUTH_JWT_TYP));
        assert_eq!(jws.header.kid.as_deref(), Some("dev-1"));
        assert_eq!(jws.header.alg, "ES256");
        jws.verify(&VerifyingKey::from_jwk(&key.public_jwk()).unwrap()).unwrap();
        let c: DeviceAuthClaims = jws.claims().unwrap();
        assert_eq!(c.iss, "dev-1");
        assert_eq!(c.htm, "GET");
        assert_eq!(c.htu, "https://id.example/device/v1/challenges");
        assert_eq!((c.iat, c.exp), (1000, 1060));
        let again: DeviceAuthClaims = decode_jws(
            &sign_device_auth(&key, "dev-1", ISSUER, "GET", "/x", 1000).unwrap(),
        )
        .unwrap()
        .claims()
        .unwrap();
        assert_ne!(again.jti, c.jti, "a fresh jti per call");
    }

    #[test]
    fn eddsa_device_keys_sign_too() {
        let key = SigningKey::generate(Algorithm::EdDSA).unwrap();
        let jwt = sign_device_auth(&key, "dev-1", ISSUER, "POST", "/p", 1).unwrap();
        let jws = decode_jws(&jwt).unwrap();
        assert_eq!(jws.header.alg, "EdDSA");
        jws.verify(&VerifyingKey::from_jwk(&key.public_jwk()).unwrap()).unwrap();
    }

    #[test]
    fn decision_is_signed_and_bound_to_the_challenge_as_shown() {
        let (server, jwks) = server_key();
        let env = envelope(&server, &challenge_claims(1000));
        let ch = verify_challenge(&env, &jwks, ISSUER, "dev-1", 1000).unwrap();
        let device = SigningKey::generate(Algorithm::ES256).unwrap();
        let jws = sign_decision(&device, "dev-1", &ch, Decision::Approve, true, 1001).unwrap();
        let d = decode_jws(&jws).unwrap();
        assert_eq!(d.header.typ.as_deref(), Some(DECISION_JWT_TYP));
        assert_eq!(d.header.kid.as_deref(), Some("dev-1"));
        d.verify(&VerifyingKey::from_jwk(&device.public_jwk()).unwrap()).unwrap();
        let c: DecisionClaims = d.claims().unwrap();
        assert_eq!(c.iss, "dev-1");
        assert_eq!(c.challenge_id, "ch-1");
        assert_eq!(c.decision, Decision::Approve);
        assert!(c.user_verified);
        assert_eq!(c.iat, 1001);
        assert_eq!(c.shown_hash, jose::b64::encode(&jose::sha256(env.challenge.as_bytes())));
        assert_eq!(c.shown_hash.len(), 43);
    }

    #[test]
    fn a_genuine_challenge_verifies() {
        let (server, jwks) = server_key();
        let ch = verify_challenge(&envelope(&server, &challenge_claims(1000)), &jwks, ISSUER, "dev-1", 1000)
            .unwrap();
        assert_eq!(ch.claims.client_name, "Bank");
        assert_eq!(ch.id, "ch-1");
    }

    #[test]
    fn forged_or_misdirected_challenges_are_rejected() {
        let (server, jwks) = server_key();
        let (forger, _) = server_key();
        let reject = |env: ChallengeEnvelope, now: i64| {
            assert!(matches!(
                verify_challenge(&env, &jwks, ISSUER, "dev-1", now),
                Err(AuthenticatorError::InvalidChallenge(_))
            ));
        };
        // Signed by another key.
        reject(envelope(&forger, &challenge_claims(1000)), 1000);
        // Another issuer, another device, expired.
        reject(envelope(&server, &ChallengeClaims { iss: "https://evil".into(), ..challenge_claims(1000) }), 1000);
        reject(envelope(&server, &ChallengeClaims { aud: "dev-2".into(), ..challenge_claims(1000) }), 1000);
        reject(envelope(&server, &challenge_claims(1000)), 1120);
        // Listed under another id.
        let mut env = envelope(&server, &challenge_claims(1000));
        env.id = "ch-2".into();
        reject(env, 1000);
        // A server-signed JWT of another type (an ID token, say) is not a challenge.
        let env = ChallengeEnvelope {
            id: "ch-1".into(),
            challenge: sign_jwt(&server, Some("JWT"), &challenge_claims(1000)).unwrap(),
        };
        reject(env, 1000);
    }

    #[test]
    fn path_ids_are_restricted() {
        assert!(is_safe_id("abc-DEF_123.~"));
        assert!(!is_safe_id(""));
        assert!(!is_safe_id("../admin"));
        assert!(!is_safe_id("a?b"));
        assert!(!is_safe_id("a%2F"));
    }
}
