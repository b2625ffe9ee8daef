//! A domain over an in-memory SQLite store and a hand-moved clock, for the domain's unit tests.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use backchannel_protocol::device::{ChallengeEnvelope, DECISION_JWT_TYP, Decision, DecisionClaims};
use backchannel_protocol::jose::{self, Algorithm, Jwks, SigningKey, b64};
use backchannel_protocol::oauth::ClientAuthMethod;

use super::admin::{NewClient, NewUser};
use super::clock::ManualClock;
use super::keys::{KeyPolicy, Keyring};
use super::model::{Client, Device, StoredKey};
use super::wake::LocalNotifier;
use super::{Domain, JwksFetcher};
use crate::config::Config;
use crate::outbound::OutboundError;
use crate::store::Stores;

pub const START_MS: i64 = 1_800_000_000_000;
pub const HINT: &str = "alice@example.com";

struct NoJwksUri;

#[async_trait::async_trait]
impl JwksFetcher for NoJwksUri {
    async fn fetch(&self, _uri: &str, _refresh: bool) -> Result<Jwks, OutboundError> {
        Err(OutboundError::Network("no network in unit tests".into()))
    }
}

/// Server keys generated once per test binary (RSA generation is slow).
async fn shared_keys() -> Vec<StoredKey> {
    static KEYS: tokio::sync::OnceCell<Vec<StoredKey>> = tokio::sync::OnceCell::const_new();
    KEYS.get_or_init(|| async {
        let stores = Stores::open("sqlite::memory:").await.unwrap();
        let clock = Arc::new(ManualClock::new(START_MS));
        Keyring::load_or_generate(stores.keys.as_ref(), clock, KeyPolicy::default())
            .await
            .unwrap();
        stores.keys.list_signing_keys().await.unwrap()
    })
    .await
    .clone()
}

pub struct Fixture {
    pub domain: Domain,
    pub clock: ManualClock,
    pub client: Client,
    pub device: Device,
    pub device_key: SigningKey,
}

pub async fn domain_with(config: Config) -> (Domain, ManualClock) {
    let clock = ManualClock::new(START_MS);
    let notifier = LocalNotifier::default();
    let stores = Stores::open("sqlite::memory:").await.unwrap();
    for key in shared_keys().await {
        stores.keys.insert_signing_key(&key).await.unwrap();
    }
    let policy = KeyPolicy {
        retention_ms: KeyPolicy::retention_ms_for(&config),
        sealer: None,
    };
    let keys = Keyring::load_or_generate(stores.keys.as_ref(), Arc::new(clock.clone()), policy)
        .await
        .unwrap();
    let domain = Domain {
        stores,
        clock: Arc::new(clock.clone()),
        keys,
        config: Arc::new(config),
        issuer: "https://id.example.com".into(),
        jwks_fetcher: Arc::new(NoJwksUri),
        notifier: Arc::new(notifier),
    };
    (domain, clock)
}

/// A domain with one poll client (secret Basic, scopes openid and email) and one user with one
/// enrolled device.
pub async fn fixture() -> Fixture {
    fixture_with(Config::default(), NewClient::default()).await
}

pub async fn fixture_with(config: Config, client: NewClient) -> Fixture {
    let (domain, clock) = domain_with(config).await;
    let created = domain
        .create_client(NewClient {
            name: "Bank".into(),
            auth_method: client
                .auth_method
                .or(Some(ClientAuthMethod::ClientSecretBasic)),
            scope: client.scope.clone().or(Some("openid email".into())),
            ..client
        })
        .await
        .unwrap();
    let client = domain
        .stores
        .clients
        .get_client(&created.client_id)
        .await
        .unwrap()
        .unwrap();
    let user = domain
        .create_user(NewUser {
            email: Some(HINT.into()),
            user_code: Some("2468".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    let code = domain.create_enrolment(&user.sub).await.unwrap().code;
    let device_key = SigningKey::generate(Algorithm::ES256).unwrap();
    let enrolled = domain
        .enrol_device(backchannel_protocol::device::EnrolRequest {
            code,
            public_jwk: device_key.public_jwk(),
            name: None,
            push: None,
        })
        .await
        .unwrap();
    let device = domain
        .stores
        .devices
        .get_device(&enrolled.device_id)
        .await
        .unwrap()
        .unwrap();
    Fixture {
        domain,
        clock,
        client,
        device,
        device_key,
    }
}

pub fn params(pairs: &[(&str, &str)]) -> super::backchannel::Params {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

impl Fixture {
    /// Starts a request for alice and returns its auth_req_id.
    pub async fn start(&self, extra: &[(&str, &str)]) -> String {
        let mut p = params(&[("scope", "openid"), ("login_hint", HINT)]);
        p.extend(params(extra));
        self.domain
            .start_backchannel_auth(&self.client, &p)
            .await
            .unwrap()
            .auth_req_id
    }

    /// The device's only pending challenge.
    pub async fn challenge(&self) -> ChallengeEnvelope {
        let mut list = self
            .domain
            .list_device_challenges(&self.device)
            .await
            .unwrap();
        assert_eq!(list.len(), 1, "one pending challenge");
        list.remove(0)
    }

    /// The device decides its only pending challenge.
    pub async fn decide(&self, decision: Decision) -> Result<(), super::error::AuthError> {
        let c = self.challenge().await;
        self.decide_on(&c, decision).await
    }

    /// The device decides a challenge it was shown earlier.
    pub async fn decide_on(
        &self,
        c: &ChallengeEnvelope,
        decision: Decision,
    ) -> Result<(), super::error::AuthError> {
        self.decide_at(c, decision, self.domain.now_secs()).await
    }

    /// The device decides a challenge with a decision stamped `iat` by the device's clock.
    pub async fn decide_at(
        &self,
        c: &ChallengeEnvelope,
        decision: Decision,
        iat: i64,
    ) -> Result<(), super::error::AuthError> {
        self.decide_marked(c, decision, iat, false).await
    }

    /// The device decides a challenge, marking it "not me" or not.
    pub async fn decide_marked(
        &self,
        c: &ChallengeEnvelope,
        decision: Decision,
        iat: i64,
        not_me: bool,
    ) -> Result<(), super::error::AuthError> {
        let claims = DecisionClaims {
            iss: self.device.id.clone(),
            challenge_id: c.id.clone(),
            decision,
            user_verified: false,
            shown_hash: b64::encode(&jose::sha256(c.challenge.as_bytes())),
            iat,
            jti: jose::random_token(8).unwrap(),
            webauthn: None,
            not_me,
        };
        let jws = jose::sign_jwt(&self.device_key, Some(DECISION_JWT_TYP), &claims).unwrap();
        self.domain
            .decide_challenge(&self.device, &c.id, &jws)
            .await
            .map(|_| ())
    }
}
