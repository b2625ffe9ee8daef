//! The push senders against local servers that check each protocol the way the real service
//! does: an h2c APNs that verifies the provider token with the team's public key, an FCM
//! whose token endpoint verifies the service account's RS256 assertion, and a Web Push
//! endpoint whose payload is decrypted by the reference `http_ece` implementation. JWTs are
//! verified with jsonwebtoken, not with our jose module.

mod apns;
mod fcm;
mod retries;
mod webpush;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};

use aws_lc_rs::encoding::AsBigEndian;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _};
use backchannel_protocol::jose::{b64, random_bytes};
use backchannel_server::config::OutboundConfig;
use backchannel_server::domain::clock::ManualClock;
use backchannel_server::notify::push::PushMessage;
use backchannel_server::outbound::Outbound;
use base64::Engine as _;

pub const ISSUER: &str = "https://id.example.com";

/// Outbound settings that let the senders reach the loopback test servers (h2c included).
pub fn outbound_config() -> OutboundConfig {
    OutboundConfig {
        allowed_private_networks: vec!["127.0.0.0/8".into()],
        allow_http: true,
        ..OutboundConfig::default()
    }
}

/// The guarded client on [`outbound_config`].
pub fn outbound() -> Outbound {
    Outbound::new(&outbound_config()).unwrap()
}

/// Serves `router` on a loopback port (HTTP/1.1 and h2c with prior knowledge).
pub async fn serve(router: axum::Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    addr
}

/// A clock at the real time that only tests move.
pub fn clock() -> ManualClock {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    ManualClock::new(i64::try_from(now).unwrap())
}

/// A challenge id as the server makes them: 26 lowercase base32 characters.
pub fn challenge_id() -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz234567";
    random_bytes(26)
        .unwrap()
        .iter()
        .map(|b| char::from(ALPHABET[usize::from(b % 32)]))
        .collect()
}

pub fn message(now_secs: i64, ttl: i64) -> PushMessage {
    PushMessage {
        challenge_id: challenge_id(),
        issuer: ISSUER.into(),
        expires_at_secs: now_secs + ttl,
    }
}

pub fn pem(label: &str, der: &[u8]) -> String {
    let text = base64::engine::general_purpose::STANDARD.encode(der);
    let lines: Vec<&str> = text
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    format!(
        "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
        lines.join("\n")
    )
}

pub fn write(dir: &Path, name: &str, contents: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, contents).unwrap();
    path.to_string_lossy().into_owned()
}

/// A P-256 key made at test time, in the encodings the tests need.
pub struct P256 {
    pub pkcs8_pem: String,
    pub sec1_pem: String,
    /// Uncompressed point `04 || x || y`.
    pub point: Vec<u8>,
    /// The private scalar.
    pub d: Vec<u8>,
}

impl P256 {
    pub fn generate() -> Self {
        use aws_lc_rs::encoding::AsDer;
        let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap();
        let d = pair.private_key().as_be_bytes().unwrap();
        P256 {
            pkcs8_pem: pem("PRIVATE KEY", pair.to_pkcs8v1().unwrap().as_ref()),
            sec1_pem: pem(
                "EC PRIVATE KEY",
                pair.private_key().as_der().unwrap().as_ref(),
            ),
            point: pair.public_key().as_ref().to_vec(),
            d: d.as_ref().to_vec(),
        }
    }

    /// The public key for jsonwebtoken.
    pub fn decoding_key(&self) -> jsonwebtoken::DecodingKey {
        decoding_key_from_point(&self.point)
    }
}

pub fn decoding_key_from_point(point: &[u8]) -> jsonwebtoken::DecodingKey {
    assert_eq!(point.len(), 65);
    assert_eq!(point[0], 4);
    jsonwebtoken::DecodingKey::from_ec_components(
        &b64::encode(&point[1..33]),
        &b64::encode(&point[33..]),
    )
    .unwrap()
}

/// The JSON header and claims of a compact JWS, read without verification (for assertions
/// after jsonwebtoken verified it).
pub fn jwt_parts(jwt: &str) -> (serde_json::Value, serde_json::Value) {
    let mut parts = jwt.split('.');
    let mut part = || -> serde_json::Value {
        serde_json::from_slice(&b64::decode(parts.next().unwrap()).unwrap()).unwrap()
    };
    (part(), part())
}

/// jsonwebtoken validation without the registered-claim checks; tests check claims exactly.
pub fn bare_validation(alg: jsonwebtoken::Algorithm) -> jsonwebtoken::Validation {
    let mut v = jsonwebtoken::Validation::new(alg);
    v.validate_exp = false;
    v.validate_aud = false;
    v.required_spec_claims.clear();
    v
}

/// Log lines written on this thread while the guard lives (tokio tests run on one thread).
#[derive(Clone, Default)]
pub struct Logs(Arc<Mutex<Vec<u8>>>);

impl Logs {
    pub fn capture() -> (Logs, tracing::subscriber::DefaultGuard) {
        let logs = Logs::default();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(logs.clone())
            .with_ansi(false)
            .with_max_level(tracing::Level::DEBUG)
            .finish();
        (logs.clone(), tracing::subscriber::set_default(subscriber))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl std::io::Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Logs {
    type Writer = Logs;

    fn make_writer(&'a self) -> Logs {
        self.clone()
    }
}

/// A Prometheus recorder for this thread, so counters can be read back.
pub fn metrics() -> (
    metrics_exporter_prometheus::PrometheusHandle,
    metrics::LocalRecorderGuard<'static>,
) {
    let recorder = Box::leak(Box::new(
        metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder(),
    ));
    let handle = recorder.handle();
    (handle, metrics::set_default_local_recorder(recorder))
}

/// The value of `backchannel_push_attempts_total{channel, outcome}` in a rendering.
pub fn attempts(rendered: &str, channel: &str, outcome: &str) -> u64 {
    rendered
        .lines()
        .filter(|l| l.starts_with("backchannel_push_attempts_total{"))
        .filter(|l| {
            l.contains(&format!("channel=\"{channel}\""))
                && l.contains(&format!("outcome=\"{outcome}\""))
        })
        .map(|l| l.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
        .sum()
}
