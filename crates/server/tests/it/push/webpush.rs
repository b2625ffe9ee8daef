//! Web Push: a local push-service endpoint records what arrives; the test verifies the VAPID
//! token (RFC 8292) with the `k` key and decrypts the body (RFC 8291) with the subscription's
//! private key using the reference `http_ece` implementation (Python), not ours.

use std::collections::HashMap;
use std::io::Write as _;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use backchannel_protocol::device::{WebPushKeys, WebPushSubscription};
use backchannel_protocol::jose::{b64, random_bytes};
use backchannel_server::config::{OutboundConfig, WebPushConfig};
use backchannel_server::domain::clock::{Clock, ManualClock};
use backchannel_server::notify::push::{PushOutcome, PushSender, PushTarget, WebPushSender};
use serde_json::{Value, json};

use super::{
    P256, bare_validation, clock, decoding_key_from_point, jwt_parts, message, outbound_config,
    serve, write,
};
use crate::support::temp_dir;

const SUBJECT: &str = "mailto:push-ops@example.com";

#[derive(Clone)]
struct Seen {
    id: String,
    headers: HeaderMap,
    body: Vec<u8>,
}

#[derive(Default)]
struct PushService {
    seen: Mutex<Vec<Seen>>,
    /// Status (and Retry-After) to answer per subscription id; 201 otherwise.
    script: Mutex<HashMap<String, (u16, Option<u64>)>>,
}

async fn push_post(
    State(service): State<Arc<PushService>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    service.seen.lock().unwrap().push(Seen {
        id: id.clone(),
        headers,
        body: body.to_vec(),
    });
    match service.script.lock().unwrap().get(&id).copied() {
        Some((status, retry_after)) => {
            let mut response = StatusCode::from_u16(status).unwrap().into_response();
            if let Some(secs) = retry_after {
                response
                    .headers_mut()
                    .insert("retry-after", secs.to_string().parse().unwrap());
            }
            response
        }
        // RFC 8030 §5: 201 Created with the message's URL.
        None => (StatusCode::CREATED, [("location", "/message/1")]).into_response(),
    }
}

/// A browser's side of a subscription: its key pair and auth secret.
struct Browser {
    key: P256,
    auth: Vec<u8>,
}

impl Browser {
    fn new() -> Browser {
        Browser {
            key: P256::generate(),
            auth: random_bytes(16).unwrap(),
        }
    }

    fn subscription(&self, endpoint: &str) -> PushTarget {
        PushTarget::WebPush(WebPushSubscription {
            endpoint: endpoint.into(),
            keys: WebPushKeys {
                p256dh: b64::encode(&self.key.point),
                auth: b64::encode(&self.auth),
            },
        })
    }

    /// Decrypts with `http_ece`, installed with pip on first use if the machine lacks it.
    fn decrypt(&self, body: &[u8]) -> Vec<u8> {
        assert!(
            crate::support::python_module("http_ece", "http_ece"),
            "could not install http_ece with pip"
        );
        let script = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/it/push/webpush_decrypt.py"
        );
        let mut child = Command::new("python3")
            .arg(script)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("python3 is needed to decrypt with http_ece");
        let input = json!({
            "body": b64::encode(body),
            "private_key": b64::encode(&self.key.d),
            "auth": b64::encode(&self.auth),
        });
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.to_string().as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "http_ece could not decrypt (is `pip install http_ece` done?): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }
}

struct Harness {
    service: Arc<PushService>,
    port: u16,
    vapid: P256,
    clock: ManualClock,
}

impl Harness {
    async fn start() -> Harness {
        let service = Arc::new(PushService::default());
        let router = Router::new()
            .route("/push/{id}", post(push_post))
            .with_state(service.clone());
        let port = serve(router).await.port();
        Harness {
            service,
            port,
            vapid: P256::generate(),
            clock: clock(),
        }
    }

    /// A sender whose VAPID key file is PEM as `sec1` says (SEC1 or PKCS#8).
    fn sender(&self, outbound: &OutboundConfig, sec1: bool) -> WebPushSender {
        let dir = temp_dir("webpush");
        let pem = if sec1 {
            &self.vapid.sec1_pem
        } else {
            &self.vapid.pkcs8_pem
        };
        let cfg = WebPushConfig {
            vapid_private_key_file: write(&dir, "vapid.pem", pem),
            subject: SUBJECT.into(),
        };
        let outbound = backchannel_server::outbound::Outbound::new(outbound).unwrap();
        WebPushSender::new(&cfg, &outbound, Arc::new(self.clock.clone())).unwrap()
    }

    fn seen(&self) -> Vec<Seen> {
        self.service.seen.lock().unwrap().clone()
    }
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> &'a str {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

#[tokio::test]
async fn webpush_encrypts_for_the_subscription_and_identifies_with_vapid() {
    let h = Harness::start().await;
    for (host, sec1) in [("127.0.0.1", true), ("localhost", false)] {
        let sender = h.sender(&outbound_config(), sec1);
        let browser = Browser::new();
        let endpoint = format!("http://{host}:{}/push/sub-{host}", h.port);
        let msg = message(h.clock.now_secs(), 300);
        let outcome = sender.send(&browser.subscription(&endpoint), &msg).await;
        assert_eq!(outcome, PushOutcome::Delivered, "{host}");

        let seen = h.seen().pop().unwrap();
        assert_eq!(seen.id, format!("sub-{host}"));
        let headers = &seen.headers;
        assert_eq!(header(headers, "ttl"), "300");
        assert_eq!(header(headers, "urgency"), "high");
        assert_eq!(header(headers, "topic"), msg.challenge_id);
        assert_eq!(header(headers, "content-encoding"), "aes128gcm");
        assert_eq!(header(headers, "content-type"), "application/octet-stream");

        // Authorization: vapid t=<JWT>, k=<the VAPID public key> (RFC 8292 §3).
        let auth = header(headers, "authorization");
        let params: HashMap<&str, &str> = auth
            .strip_prefix("vapid ")
            .unwrap()
            .split(',')
            .map(|p| p.trim().split_once('=').unwrap())
            .collect();
        let k = b64::decode(params["k"]).unwrap();
        assert_eq!(k, h.vapid.point);
        assert_eq!(sender.application_server_key(), params["k"]);
        let t = params["t"];
        jsonwebtoken::decode::<Value>(
            t,
            &decoding_key_from_point(&k),
            &bare_validation(jsonwebtoken::Algorithm::ES256),
        )
        .unwrap();
        let (jwt_header, claims) = jwt_parts(t);
        assert_eq!(jwt_header["typ"], "JWT");
        assert_eq!(claims["aud"], format!("http://{host}:{}", h.port));
        assert_eq!(claims["sub"], SUBJECT);
        let exp = claims["exp"].as_i64().unwrap();
        let now = h.clock.now_secs();
        assert!(exp > now && exp <= now + 24 * 3600, "{exp}");

        // The body decrypts, with a key only the browser has, to exactly the two fields.
        let plaintext: Value = serde_json::from_slice(&browser.decrypt(&seen.body)).unwrap();
        assert_eq!(
            plaintext,
            json!({ "challenge_id": msg.challenge_id, "issuer": msg.issuer })
        );
        // Nothing of it travels in clear.
        assert!(
            !seen
                .body
                .windows(msg.challenge_id.len())
                .any(|w| w == msg.challenge_id.as_bytes())
        );
    }
}

#[tokio::test]
async fn webpush_gone_subscriptions_are_unregistered() {
    let h = Harness::start().await;
    let sender = h.sender(&outbound_config(), false);
    let browser = Browser::new();
    let msg = message(h.clock.now_secs(), 60);
    let endpoint = |id: &str| format!("http://127.0.0.1:{}/push/{id}", h.port);
    let answers = [
        ("expired", 410, None, PushOutcome::Unregistered),
        ("unknown", 404, None, PushOutcome::Unregistered),
        (
            "busy",
            429,
            Some(9),
            PushOutcome::Retry {
                after: Some(Duration::from_secs(9)),
            },
        ),
        ("down", 502, None, PushOutcome::Retry { after: None }),
    ];
    for (id, status, retry_after, expected) in answers {
        h.service
            .script
            .lock()
            .unwrap()
            .insert(id.into(), (status, retry_after));
        let outcome = sender
            .send(&browser.subscription(&endpoint(id)), &msg)
            .await;
        assert_eq!(outcome, expected, "{id}");
    }
    h.service
        .script
        .lock()
        .unwrap()
        .insert("vapid".into(), (403, None));
    let outcome = sender
        .send(&browser.subscription(&endpoint("vapid")), &msg)
        .await;
    assert!(matches!(outcome, PushOutcome::Failed(_)), "{outcome:?}");

    // Keys that cannot be encrypted to make the subscription dead, without a request.
    let before = h.seen().len();
    let PushTarget::WebPush(mut broken) = browser.subscription(&endpoint("x")) else {
        unreachable!()
    };
    broken.keys.p256dh = b64::encode(&[4u8; 65]);
    let outcome = sender.send(&PushTarget::WebPush(broken), &msg).await;
    assert_eq!(outcome, PushOutcome::Unregistered);
    assert_eq!(h.seen().len(), before);
}

#[tokio::test]
async fn webpush_endpoints_pass_the_ssrf_guard() {
    let h = Harness::start().await;
    let browser = Browser::new();
    let msg = message(h.clock.now_secs(), 60);

    // Without allowed networks, loopback is out of reach by literal address and by name.
    let strict = h.sender(&OutboundConfig::default(), false);
    for endpoint in [
        format!("http://127.0.0.1:{}/push/a", h.port),
        format!("https://127.0.0.1:{}/push/a", h.port),
        format!("http://localhost:{}/push/a", h.port),
        format!("https://localhost:{}/push/a", h.port),
        format!("https://[::ffff:127.0.0.1]:{}/push/a", h.port),
    ] {
        let outcome = strict.send(&browser.subscription(&endpoint), &msg).await;
        assert!(
            matches!(outcome, PushOutcome::Failed(_)),
            "{endpoint}: {outcome:?}"
        );
    }

    // Plain http only towards the allowed networks, never to the internet.
    let open = h.sender(&outbound_config(), false);
    for endpoint in [
        "http://10.0.0.1/push/a",
        "http://93.184.216.34/push/a",
        "ftp://127.0.0.1/push/a",
        "http://user:pw@127.0.0.1/push/a",
        "not a url",
    ] {
        let outcome = open.send(&browser.subscription(endpoint), &msg).await;
        assert!(
            matches!(outcome, PushOutcome::Failed(_)),
            "{endpoint}: {outcome:?}"
        );
    }
    assert!(h.seen().is_empty());
}
