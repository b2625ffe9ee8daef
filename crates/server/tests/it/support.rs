//! A real server on a loopback port, and small independent implementations of a relying party
//! and a device written straight from the wire protocol (not from the client/authenticator
//! crates), so the tests check the protocol itself.

use std::fmt::Debug;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use backchannel_protocol::device::{
    ChallengeClaims, ChallengeEnvelope, ChallengeList, DECISION_JWT_TYP, DEVICE_AUTH_JWT_TYP,
    Decision, DecisionClaims, EnrolRequest, EnrolResponse, PushRegistration,
};
use backchannel_protocol::jose::{self, Algorithm, Jwks, SigningKey, b64};
use backchannel_protocol::oauth::{
    CLIENT_ASSERTION_TYPE_JWT_BEARER, ClientAuthMethod, GRANT_TYPE_CIBA, GRANT_TYPE_REFRESH_TOKEN,
};
use std::sync::Arc;

use backchannel_server::app::{RunningServer, start_with_clock};
use backchannel_server::config::Config;
use backchannel_server::domain::Domain;
use backchannel_server::domain::admin::{NewClient, NewUser};
use backchannel_server::domain::clock::{Clock, ManualClock, SystemClock};
use backchannel_server::domain::model::{AuthRequestState, User};
use backchannel_server::store::postgres::PgStore;
use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};

#[path = "../../../../test-support/common.rs"]
mod common;
pub use common::{HANG_GUARD, Recorder, eventually, python_module, temp_dir};

/// The PostgreSQL the tests use unless `BACKCHANNEL_TEST_POSTGRES_URL` names another.
const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// A fresh schema of its own on the test PostgreSQL, for one test.
pub struct PgSchema {
    pub store: Arc<PgStore>,
    pub schema: String,
    url: String,
}

impl PgSchema {
    /// A fresh schema, or `None` (the caller skips) when PostgreSQL is not usable and not
    /// required. `BACKCHANNEL_REQUIRE_POSTGRES=1` (CI) or an explicit
    /// `BACKCHANNEL_TEST_POSTGRES_URL` makes it required: then it fails the test instead.
    /// Once it was found unusable, later calls skip without trying again.
    pub async fn open() -> Option<PgSchema> {
        static UNUSABLE: AtomicBool = AtomicBool::new(false);
        let explicit = std::env::var("BACKCHANNEL_TEST_POSTGRES_URL").ok();
        let required = explicit.is_some()
            || std::env::var("BACKCHANNEL_REQUIRE_POSTGRES").is_ok_and(|v| v == "1");
        let url = explicit.unwrap_or_else(|| DEFAULT_POSTGRES_URL.to_owned());
        if UNUSABLE.load(Ordering::Relaxed) && !required {
            return None;
        }
        // Schemas migrate one at a time (sqlx's migration lock is per database), so a loaded
        // machine running many store tests at once may queue for a while: when PostgreSQL is
        // required, only a much longer wait means it is not usable.
        let wait = Duration::from_secs(if required { 120 } else { 15 });
        let opened = tokio::time::timeout(wait, PgStore::open_isolated(&url)).await;
        let why = match opened {
            Ok(Ok((store, schema))) => {
                return Some(PgSchema {
                    store: Arc::new(store),
                    schema,
                    url,
                });
            }
            Ok(Err(e)) => e.to_string(),
            Err(_) => "timed out".to_owned(),
        };
        assert!(!required, "PostgreSQL required but not usable: {why}");
        if !UNUSABLE.swap(true, Ordering::Relaxed) {
            eprintln!("PostgreSQL not usable ({why}): skipping the tests that need it");
        }
        None
    }

    /// A database URL whose connections work in this schema (for a server under test).
    pub fn url(&self) -> String {
        let sep = if self.url.contains('?') { '&' } else { '?' };
        format!(
            "{}{sep}options=-c%20search_path%3D{}",
            self.url, self.schema
        )
    }

    /// Drops the schema with everything in it and closes the pool.
    pub async fn remove(&self) -> Result<(), sqlx::Error> {
        let dropped = sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP SCHEMA \"{}\" CASCADE",
            self.schema
        )))
        .execute(self.store.pool())
        .await;
        self.store.close().await;
        dropped.map(|_| ())
    }
}

pub fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

pub fn test_config(dir: &std::path::Path) -> Config {
    let mut config = Config::default();
    config.server.listen = "127.0.0.1:0".into();
    config.server.data_dir = dir.to_string_lossy().into_owned();
    config.database.url = format!("sqlite://{}/bc.db", dir.display());
    config.admin.token = "test-admin-token".into();
    config.outbound.allowed_private_networks = vec!["127.0.0.0/8".into()];
    config.outbound.allow_http = true;
    config
}

pub struct TestServer {
    pub server: RunningServer,
    pub base: String,
    pub http: reqwest::Client,
}

/// How a test client authenticates.
#[derive(Clone)]
pub enum Auth {
    Basic(String, String),
    Post(String, String),
    Jwt(String, SigningKey),
    None,
}

impl Auth {
    pub fn client_id(&self) -> &str {
        match self {
            Auth::Basic(id, _) | Auth::Post(id, _) | Auth::Jwt(id, _) => id,
            Auth::None => "",
        }
    }
}

#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
}

/// The OpenID conformance suite fails an error body with any member but these.
#[track_caller]
pub fn assert_error_body_members(body: &Value) {
    let members = body.as_object().expect("error body is an object");
    assert!(
        members
            .keys()
            .all(|k| ["error", "error_description", "error_uri"].contains(&k.as_str())),
        "error body has other members: {body}"
    );
}

impl Answer {
    /// The `X-Request-Id` the server named this response by.
    pub fn request_id(&self) -> Option<&str> {
        self.headers
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
    }

    pub fn error(&self) -> &str {
        self.body["error"].as_str().unwrap_or("")
    }

    #[track_caller]
    pub fn expect_error(&self, status: u16, code: &str) {
        assert_eq!(
            (self.status.as_u16(), self.error()),
            (status, code),
            "body: {}",
            self.body
        );
        assert_error_body_members(&self.body);
        assert!(
            self.request_id().is_some_and(|t| !t.is_empty()),
            "no X-Request-Id: {:?}",
            self.headers
        );
        assert_eq!(self.headers["cache-control"], "no-store");
    }
}

pub fn assertion(id: &str, key: &SigningKey, aud: &str) -> String {
    let now = now_secs();
    let claims = json!({"iss": id, "sub": id, "aud": aud, "iat": now, "exp": now + 60, "jti": jose::random_token(16).unwrap()});
    jose::sign_jwt(key, None, &claims).unwrap()
}

impl TestServer {
    pub async fn start() -> TestServer {
        TestServer::start_with(|_| {}).await
    }

    pub async fn start_with(adjust: impl FnOnce(&mut Config)) -> TestServer {
        TestServer::start_on(adjust, Arc::new(SystemClock)).await
    }

    /// A server whose clock the test moves (starting at the real time, so JWTs signed with
    /// the wall clock stay valid until the test advances it).
    pub async fn start_clocked() -> (TestServer, ManualClock) {
        let clock = ManualClock::new(SystemClock.now_ms());
        (
            TestServer::start_on(|_| {}, Arc::new(clock.clone())).await,
            clock,
        )
    }

    pub async fn start_on(adjust: impl FnOnce(&mut Config), clock: Arc<dyn Clock>) -> TestServer {
        let dir = temp_dir("srv");
        let mut config = test_config(&dir);
        adjust(&mut config);
        let server = start_with_clock(config, clock).await.unwrap();
        let base = server.issuer.clone();
        TestServer {
            server,
            base,
            http: reqwest::Client::new(),
        }
    }

    /// The server's published keys.
    pub async fn jwks(&self) -> Jwks {
        self.http
            .get(self.url("/jwks"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// Verifies a JWT this server signed against its JWKS; its header and claims.
    pub async fn verify_jwt(&self, token: &str) -> (jose::Header, Value) {
        let jwks = self.jwks().await;
        let jws = jose::decode_jws(token).unwrap();
        jws.verify_any(&jwks.candidates(jws.header.kid.as_deref(), jws.alg()))
            .unwrap();
        (jws.header.clone(), jws.claims().unwrap())
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub async fn client(&self, new: NewClient) -> (String, Option<String>) {
        let created = self.server.domain.create_client(new).await.unwrap();
        (created.client_id, created.client_secret)
    }

    pub async fn secret_client(&self, method: ClientAuthMethod, scope: &str) -> Auth {
        let (id, secret) = self
            .client(NewClient {
                name: "Test Bank".into(),
                auth_method: Some(method),
                scope: Some(scope.into()),
                ..Default::default()
            })
            .await;
        match method {
            ClientAuthMethod::ClientSecretPost => Auth::Post(id, secret.unwrap()),
            _ => Auth::Basic(id, secret.unwrap()),
        }
    }

    pub async fn key_client(&self, alg: Algorithm) -> Auth {
        let key = SigningKey::generate(alg).unwrap();
        let (id, _) = self
            .client(NewClient {
                name: "Key Bank".into(),
                auth_method: Some(ClientAuthMethod::PrivateKeyJwt),
                jwks: Some(Jwks {
                    keys: vec![key.public_jwk()],
                }),
                scope: Some("openid email profile".into()),
                ..Default::default()
            })
            .await;
        Auth::Jwt(id, key)
    }

    pub async fn user(&self, new: NewUser) -> User {
        self.server.domain.create_user(new).await.unwrap()
    }

    /// A user with an e-mail and one enrolled device.
    pub async fn user_with_device(&self, email: &str) -> (User, TestDevice) {
        let user = self
            .user(NewUser {
                email: Some(email.into()),
                ..Default::default()
            })
            .await;
        let device = self.enrol(&user.sub).await;
        (user, device)
    }

    pub async fn enrol(&self, sub: &str) -> TestDevice {
        self.enrol_with_push(sub, None).await
    }

    pub async fn enrol_with_push(&self, sub: &str, push: Option<PushRegistration>) -> TestDevice {
        let code = self.server.domain.create_enrolment(sub).await.unwrap().code;
        TestDevice::enrol_with(self, &code, push).await.unwrap()
    }

    pub async fn post_form(&self, path: &str, auth: &Auth, params: &[(&str, &str)]) -> Answer {
        let mut form: Vec<(String, String)> = params
            .iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect();
        let mut req = self.http.post(self.url(path));
        match auth {
            Auth::Basic(id, secret) => req = req.basic_auth(id, Some(secret)),
            Auth::Post(id, secret) => {
                form.push(("client_id".into(), id.clone()));
                form.push(("client_secret".into(), secret.clone()));
            }
            Auth::Jwt(id, key) => {
                form.push(("client_id".into(), id.clone()));
                form.push((
                    "client_assertion_type".into(),
                    CLIENT_ASSERTION_TYPE_JWT_BEARER.into(),
                ));
                form.push(("client_assertion".into(), assertion(id, key, &self.base)));
            }
            Auth::None => {}
        }
        let body = serde_urlencoded::to_string(&form).unwrap();
        let r = req
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .unwrap();
        Answer::from(r).await
    }

    pub async fn bc_authorize(&self, auth: &Auth, params: &[(&str, &str)]) -> Answer {
        self.post_form("/bc-authorize", auth, params).await
    }

    pub async fn token(&self, auth: &Auth, auth_req_id: &str) -> Answer {
        self.post_form(
            "/token",
            auth,
            &[
                ("grant_type", GRANT_TYPE_CIBA),
                ("auth_req_id", auth_req_id),
            ],
        )
        .await
    }

    /// The stored state of the request behind `auth_req_id`.
    pub async fn request_state(&self, auth_req_id: &str) -> AuthRequestState {
        let id = Domain::auth_request_key(auth_req_id);
        let stored = self.server.domain.stores.requests.get_auth_request(&id);
        stored.await.unwrap().unwrap().state
    }

    /// Starts a request and returns its auth_req_id.
    pub async fn start_request(&self, auth: &Auth, params: &[(&str, &str)]) -> String {
        let a = self.bc_authorize(auth, params).await;
        assert_eq!(a.status, 200, "{}", a.body);
        a.body["auth_req_id"].as_str().unwrap().to_owned()
    }
}

impl Answer {
    pub async fn from(r: reqwest::Response) -> Answer {
        let status = r.status();
        let headers = r.headers().clone();
        let text = r.text().await.unwrap();
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Answer {
            status,
            headers,
            body,
        }
    }
}

/// An authenticator written from `docs/device-api.md`.
pub struct TestDevice {
    pub id: String,
    pub key: SigningKey,
    pub issuer: String,
}

impl TestDevice {
    pub async fn enrol(server: &TestServer, code: &str) -> Result<TestDevice, Answer> {
        TestDevice::enrol_with(server, code, None).await
    }

    pub async fn enrol_with(
        server: &TestServer,
        code: &str,
        push: Option<PushRegistration>,
    ) -> Result<TestDevice, Answer> {
        let key = SigningKey::generate(Algorithm::ES256).unwrap();
        let req = EnrolRequest {
            code: code.into(),
            public_jwk: key.public_jwk(),
            name: Some("test phone".into()),
            push,
        };
        let r = server
            .http
            .post(server.url("/device/v1/enrol"))
            .json(&req)
            .send()
            .await
            .unwrap();
        let a = Answer::from(r).await;
        if a.status != 201 {
            return Err(a);
        }
        let answer: EnrolResponse = serde_json::from_value(a.body).unwrap();
        Ok(TestDevice {
            id: answer.device_id,
            key,
            issuer: answer.issuer,
        })
    }

    pub fn auth(&self, method: &str, path: &str) -> String {
        let now = now_secs();
        let claims = json!({"iss": self.id, "htm": method, "htu": format!("{}{}", self.issuer, path), "iat": now, "exp": now + 60, "jti": jose::random_token(16).unwrap()});
        let mut header = jose::Header {
            typ: Some(DEVICE_AUTH_JWT_TYP.into()),
            kid: Some(self.id.clone()),
            ..Default::default()
        };
        header.alg = self.key.alg().as_str().into();
        format!(
            "Device {}",
            jose::sign_jws(&header, claims.to_string().as_bytes(), &self.key).unwrap()
        )
    }

    pub async fn challenges(&self, server: &TestServer) -> Vec<ChallengeEnvelope> {
        let path = "/device/v1/challenges";
        let r = server
            .http
            .get(server.url(path))
            .header("authorization", self.auth("GET", path))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        r.json::<ChallengeList>().await.unwrap().challenges
    }

    /// Verifies a challenge with the server's JWKS, as a real device must.
    pub async fn verify(
        &self,
        server: &TestServer,
        envelope: &ChallengeEnvelope,
    ) -> ChallengeClaims {
        let (_, claims) = server.verify_jwt(&envelope.challenge).await;
        let claims: ChallengeClaims = serde_json::from_value(claims).unwrap();
        assert_eq!(claims.aud, self.id);
        assert_eq!(claims.jti, envelope.id);
        claims
    }

    pub fn decision_jws(
        &self,
        envelope: &ChallengeEnvelope,
        decision: Decision,
        shown: &str,
    ) -> String {
        let claims = DecisionClaims {
            iss: self.id.clone(),
            challenge_id: envelope.id.clone(),
            decision,
            user_verified: true,
            shown_hash: b64::encode(&jose::sha256(shown.as_bytes())),
            iat: now_secs(),
            jti: jose::random_token(16).unwrap(),
            webauthn: None,
            not_me: false,
        };
        jose::sign_jwt(&self.key, Some(DECISION_JWT_TYP), &claims).unwrap()
    }

    pub async fn send_decision(
        &self,
        server: &TestServer,
        challenge_id: &str,
        jws: &str,
    ) -> Answer {
        let path = format!("/device/v1/challenges/{challenge_id}/decision");
        let r = server
            .http
            .post(server.url(&path))
            .header("authorization", self.auth("POST", &path))
            .json(&json!({ "decision": jws }))
            .send()
            .await
            .unwrap();
        Answer::from(r).await
    }

    /// Approves or denies the only pending challenge.
    pub async fn decide_only(&self, server: &TestServer, decision: Decision) -> Answer {
        let list = self.challenges(server).await;
        assert_eq!(list.len(), 1, "expected exactly one pending challenge");
        let jws = self.decision_jws(&list[0], decision, &list[0].challenge);
        self.send_decision(server, &list[0].id, &jws).await
    }
}

/// A flow's outcome: the token response and the user it was for.
pub struct Tokens {
    pub body: Value,
    pub sub: String,
}

impl Tokens {
    pub fn access_token(&self) -> &str {
        self.body["access_token"].as_str().unwrap()
    }

    pub fn refresh_token(&self) -> &str {
        self.body["refresh_token"].as_str().unwrap()
    }
}

impl TestServer {
    /// A client authenticating with `method` (a fresh key for `private_key_jwt`), allowed
    /// `scope`, registered with the refresh_token grant when `refresh` is set.
    pub async fn client_with(&self, method: ClientAuthMethod, scope: &str, refresh: bool) -> Auth {
        let key = SigningKey::generate(Algorithm::ES256).unwrap();
        let jwt = method == ClientAuthMethod::PrivateKeyJwt;
        let (id, secret) = self
            .client(NewClient {
                name: "Token Bank".into(),
                auth_method: Some(method),
                jwks: jwt.then(|| Jwks {
                    keys: vec![key.public_jwk()],
                }),
                scope: Some(scope.into()),
                grant_types: refresh.then(|| {
                    vec![
                        GRANT_TYPE_CIBA.to_owned(),
                        GRANT_TYPE_REFRESH_TOKEN.to_owned(),
                    ]
                }),
                ..Default::default()
            })
            .await;
        match method {
            ClientAuthMethod::ClientSecretBasic => Auth::Basic(id, secret.unwrap()),
            ClientAuthMethod::ClientSecretPost => Auth::Post(id, secret.unwrap()),
            ClientAuthMethod::PrivateKeyJwt => Auth::Jwt(id, key),
        }
    }

    /// A request for `hint` with `scope`, approved on `device`: its auth_req_id.
    pub async fn approved_request(
        &self,
        auth: &Auth,
        device: &TestDevice,
        hint: &str,
        scope: &str,
    ) -> String {
        let id = self
            .start_request(auth, &[("scope", scope), ("login_hint", hint)])
            .await;
        let a = device.decide_only(self, Decision::Approve).await;
        assert_eq!(a.status, 200, "{}", a.body);
        id
    }

    /// A whole flow for `hint` with `scope`, approved on `device`, redeemed at once.
    pub async fn tokens(
        &self,
        auth: &Auth,
        device: &TestDevice,
        hint: &str,
        scope: &str,
    ) -> Tokens {
        let id = self.approved_request(auth, device, hint, scope).await;
        let t = self.token(auth, &id).await;
        assert_eq!(t.status, 200, "{}", t.body);
        let id_token = t.body["id_token"].as_str().unwrap();
        let sub = self.verify_jwt(id_token).await.1["sub"]
            .as_str()
            .unwrap()
            .to_owned();
        Tokens { body: t.body, sub }
    }

    /// `grant_type=refresh_token`.
    pub async fn refresh(&self, auth: &Auth, refresh_token: &str) -> Answer {
        self.post_form(
            "/token",
            auth,
            &[
                ("grant_type", GRANT_TYPE_REFRESH_TOKEN),
                ("refresh_token", refresh_token),
            ],
        )
        .await
    }

    /// `GET /userinfo` with the token (if any) in the Authorization header.
    pub async fn userinfo(&self, access_token: Option<&str>) -> Answer {
        let mut req = self.http.get(self.url("/userinfo"));
        if let Some(t) = access_token {
            req = req.bearer_auth(t);
        }
        Answer::from(req.send().await.unwrap()).await
    }

    /// `POST /introspect` of `token` by `auth`.
    pub async fn introspect(&self, auth: &Auth, token: &str) -> Value {
        let a = self
            .post_form("/introspect", auth, &[("token", token)])
            .await;
        assert_eq!(a.status, 200, "{}", a.body);
        assert_eq!(a.headers["cache-control"], "no-store");
        a.body
    }

    /// `POST /revoke` of `token` by `auth`.
    pub async fn revoke(&self, auth: &Auth, token: &str) -> Answer {
        self.post_form("/revoke", auth, &[("token", token)]).await
    }
}
