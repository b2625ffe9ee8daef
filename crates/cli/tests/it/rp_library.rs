//! The relying-party library (`backchannel-client`) against a real `backchannel serve` over
//! HTTP: every client-authentication method and signing algorithm (keys from JWK and PEM
//! files), signed request objects, typed errors with the request id, ping and push reception
//! through the library's notification router.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use backchannel_client::{
    Algorithm, BackchannelAuthResponse, CibaClient, ClientAuth, ClientError, ErrorCode,
    InitiateRequest, Notification, NotificationReceiver, PollOutcome, SigningKey, load_signing_key,
};
use backchannel_protocol::jose::{Jwks, pem};
use serde_json::Value;

use tokio::runtime::Runtime;

use crate::support::{
    HANG_GUARD, Killed, admin_with, authenticator_json, enrol, free_port, new_user, runtime,
    serve_with, temp_dir, unlimited,
};

/// A server, one user with one enrolled device, and the settings `admin` needs alongside it.
struct Bed {
    dir: PathBuf,
    _server: Killed,
    issuer: String,
    sub: String,
    device: PathBuf,
    env: Vec<(String, String)>,
}

impl Bed {
    fn new(tag: &str) -> Bed {
        // Most tests log one user in many times: no per-user limit.
        Bed::with(tag, unlimited())
    }

    /// A bed whose server gets these further settings.
    fn with(tag: &str, settings: Vec<(String, String)>) -> Bed {
        let dir = temp_dir(tag);
        // Ping and push callbacks go to the test's own loopback listener.
        let mut env = vec![
            (
                "BACKCHANNEL_OUTBOUND_ALLOW_HTTP".to_owned(),
                "true".to_owned(),
            ),
            (
                "BACKCHANNEL_OUTBOUND_ALLOWED_PRIVATE_NETWORKS".to_owned(),
                "127.0.0.0/8".to_owned(),
            ),
        ];
        env.extend(settings);
        let served = serve_with(&dir, free_port(), &env);
        let issuer = served.issuer.clone();
        let sub = new_user(&dir, "alice@example.com");
        let (device, _) = enrol(&dir, &issuer, &sub, "phone", &[]);
        Bed {
            dir,
            _server: Killed(served.child),
            issuer,
            sub,
            device,
            env,
        }
    }

    fn client(&self, args: &[&str]) -> Value {
        let mut all = vec![
            "client",
            "create",
            "--name",
            "Library RP",
            "--scope",
            "openid email",
        ];
        all.extend_from_slice(args);
        all.push("--json");
        admin_with(&self.dir, &self.env, &all)
    }

    /// A `private_key_jwt` client registered with `key`'s public JWK.
    fn key_client(&self, key: &SigningKey, extra: &[&str]) -> String {
        let jwks = self.dir.join(format!("{}.jwks.json", key.kid()));
        let set = Jwks {
            keys: vec![key.public_jwk()],
        };
        std::fs::write(&jwks, serde_json::to_string(&set).unwrap()).unwrap();
        let mut args = vec![
            "--auth-method",
            "private_key_jwt",
            "--jwks-file",
            jwks.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        self.client(&args)["client_id"].as_str().unwrap().to_owned()
    }

    /// The device approves (or denies) the pending challenge showing `message`.
    fn decide(&self, verb: &str, message: &str) {
        let out = authenticator_json(&[
            verb,
            "--state",
            self.device.to_str().unwrap(),
            "--binding-message",
            message,
            "--wait",
            "20",
            "--json",
        ]);
        assert_eq!(out["decided"].as_array().unwrap().len(), 1, "{out}");
    }
}

fn request(message: &str) -> InitiateRequest {
    InitiateRequest {
        scope: "openid email".into(),
        binding_message: Some(message.into()),
        ..InitiateRequest::for_login_hint("alice@example.com")
    }
}

/// A whole login with the library: initiate, the device approves, poll, validate. One
/// runtime per test: a client's pooled connections belong to the runtime that made them.
fn login(rt: &Runtime, bed: &Bed, client: &CibaClient, message: &str, signed: bool) {
    let started = rt
        .block_on(async {
            if signed {
                client.initiate_signed(&request(message)).await
            } else {
                client.initiate(&request(message)).await
            }
        })
        .unwrap_or_else(|e| panic!("{message}: {e}"));
    assert!(started.expires_in > 0);
    bed.decide("approve", message);
    rt.block_on(async {
        let tokens = tokio::time::timeout(HANG_GUARD, client.poll_until_done(&started))
            .await
            .unwrap()
            .unwrap_or_else(|e| panic!("{message}: {e}"));
        let claims = client
            .validate_token_response(&tokens)
            .await
            .unwrap()
            .expect("an ID token");
        assert_eq!(claims.sub, bed.sub, "{message}");
        assert_eq!(claims.iss, bed.issuer);
        assert_eq!(claims.claim("email").unwrap(), "alice@example.com");
    });
}

fn discover(rt: &Runtime, bed: &Bed, client_id: &str, auth: ClientAuth) -> CibaClient {
    rt.block_on(CibaClient::discover(&bed.issuer, client_id, auth))
        .unwrap()
}

/// The key as a key file in `format` (a JWK, or PEM in PKCS#8, SEC1 or PKCS#1).
fn key_file(dir: &Path, key: &SigningKey, format: &str) -> String {
    let text = match format {
        "jwk" => serde_json::to_string(&key.to_private_jwk()).unwrap(),
        "pkcs8" => pem::encode(pem::LABEL_PKCS8, &key.to_pkcs8_der().unwrap()),
        "sec1" => pem::encode(pem::LABEL_SEC1, &sec1_of(key)),
        "pkcs1" => pem::encode(pem::LABEL_PKCS1, &pkcs1_of(&key.to_pkcs8_der().unwrap())),
        other => panic!("{other}"),
    };
    let path = dir.join(format!("{}.{format}", key.kid()));
    std::fs::write(&path, &text).unwrap();
    std::fs::read_to_string(path).unwrap()
}

/// SEC1 `ECPrivateKey` of an EC key, made by aws-lc-rs from the same private scalar.
fn sec1_of(key: &SigningKey) -> Vec<u8> {
    use aws_lc_rs::encoding::AsDer;
    use aws_lc_rs::signature::{
        ECDSA_P256_SHA256_FIXED_SIGNING, ECDSA_P384_SHA384_FIXED_SIGNING,
        ECDSA_P521_SHA512_FIXED_SIGNING, EcdsaKeyPair,
    };
    let alg = match key.alg() {
        Algorithm::ES256 => &ECDSA_P256_SHA256_FIXED_SIGNING,
        Algorithm::ES384 => &ECDSA_P384_SHA384_FIXED_SIGNING,
        _ => &ECDSA_P521_SHA512_FIXED_SIGNING,
    };
    let pair = EcdsaKeyPair::from_pkcs8(alg, &key.to_pkcs8_der().unwrap()).unwrap();
    pair.private_key().as_der().unwrap().as_ref().to_vec()
}

/// The PKCS#1 `RSAPrivateKey` inside a PKCS#8 document (its OCTET STRING's contents).
fn pkcs1_of(pkcs8: &[u8]) -> Vec<u8> {
    fn tlv(input: &[u8]) -> (u8, &[u8], &[u8]) {
        let tag = input[0];
        let (len, at) = match input[1] {
            n if n < 0x80 => (usize::from(n), 2),
            n => {
                let k = usize::from(n & 0x7f);
                let len = input[2..2 + k]
                    .iter()
                    .fold(0usize, |a, &b| (a << 8) | usize::from(b));
                (len, 2 + k)
            }
        };
        (tag, &input[at..at + len], &input[at + len..])
    }
    let (_, info, _) = tlv(pkcs8);
    let (_, _version, rest) = tlv(info);
    let (_, _algorithm, rest) = tlv(rest);
    let (tag, private_key, _) = tlv(rest);
    assert_eq!(tag, 0x04);
    private_key.to_vec()
}

#[test]
fn every_client_auth_method_and_algorithm_logs_in() {
    let bed = Bed::new("rp-auth");
    let rt = runtime();
    let secret = bed.client(&[]);
    let (id, s) = (
        secret["client_id"].as_str().unwrap(),
        secret["client_secret"].as_str().unwrap(),
    );
    let basic = discover(&rt, &bed, id, ClientAuth::SecretBasic(s.into()));
    login(&rt, &bed, &basic, "basic", false);
    let post = bed.client(&["--auth-method", "client_secret_post"]);
    let post_client = discover(
        &rt,
        &bed,
        post["client_id"].as_str().unwrap(),
        ClientAuth::SecretPost(post["client_secret"].as_str().unwrap().into()),
    );
    login(&rt, &bed, &post_client, "post", false);

    // Every algorithm, its key read back from a key file in each format it comes in.
    let cases: &[(Algorithm, &[&str])] = &[
        (Algorithm::ES256, &["jwk", "pkcs8", "sec1"]),
        (Algorithm::ES384, &["pkcs8", "sec1"]),
        (Algorithm::ES512, &["jwk", "sec1"]),
        (Algorithm::PS256, &["pkcs8", "pkcs1"]),
        (Algorithm::RS256, &["jwk", "pkcs1"]),
        (Algorithm::EdDSA, &["jwk", "pkcs8"]),
    ];
    for (alg, formats) in cases {
        let key = SigningKey::generate(*alg).unwrap();
        let client_id = bed.key_client(&key, &[]);
        for format in *formats {
            let text = key_file(&bed.dir, &key, format);
            // The kid the server registered, as a Singpass client names its key; the algorithm
            // where the file cannot say (RSA PEM defaults to RS256).
            let loaded = load_signing_key(&text, Some(*alg), Some(key.kid())).unwrap();
            assert_eq!(loaded.public_jwk(), key.public_jwk(), "{alg:?} {format}");
            let client = discover(&rt, &bed, &client_id, ClientAuth::PrivateKeyJwt(loaded));
            login(
                &rt,
                &bed,
                &client,
                &format!("{} {format}", alg.as_str()),
                false,
            );
        }
    }
}

#[test]
fn signed_requests_are_required_when_registered_and_accepted() {
    let bed = Bed::new("rp-signed");
    let rt = runtime();
    let key = SigningKey::generate(Algorithm::ES256).unwrap();
    let client_id = bed.key_client(&key, &["--request-signing-alg", "ES256"]);
    let client = discover(&rt, &bed, &client_id, ClientAuth::PrivateKeyJwt(key));
    let plain = rt
        .block_on(client.initiate(&request("unsigned")))
        .unwrap_err();
    assert_eq!(plain.code(), Some(&ErrorCode::InvalidRequest), "{plain}");
    login(&rt, &bed, &client, "signed", true);

    // A secret client cannot sign.
    let secret = bed.client(&[]);
    let secret_client = discover(
        &rt,
        &bed,
        secret["client_id"].as_str().unwrap(),
        ClientAuth::SecretBasic(secret["client_secret"].as_str().unwrap().into()),
    );
    let e = rt
        .block_on(secret_client.initiate_signed(&request("x")))
        .unwrap_err();
    assert!(matches!(e, ClientError::Config(_)), "{e}");
}

#[test]
fn server_errors_are_typed_and_carry_the_request_id() {
    let bed = Bed::new("rp-errors");
    let rt = runtime();
    let created = bed.client(&[]);
    let id = created["client_id"].as_str().unwrap();
    let client = discover(
        &rt,
        &bed,
        id,
        ClientAuth::SecretBasic(created["client_secret"].as_str().unwrap().into()),
    );
    let oauth = |e: ClientError| e.oauth().cloned().unwrap_or_else(|| panic!("{e}"));

    let unknown = oauth(
        rt.block_on(client.initiate(&InitiateRequest::for_login_hint("nobody@example.com")))
            .unwrap_err(),
    );
    assert_eq!(unknown.code, ErrorCode::UnknownUserId);
    assert_eq!(unknown.status, 400);
    assert!(unknown.description.is_some());
    assert!(unknown.request_id.is_some(), "{unknown:?}");

    let long = oauth(
        rt.block_on(client.initiate(&request(&"m".repeat(65))))
            .unwrap_err(),
    );
    assert_eq!(long.code, ErrorCode::InvalidBindingMessage);

    let scope = oauth(
        rt.block_on(client.initiate(&InitiateRequest {
            scope: "email".into(),
            ..InitiateRequest::for_login_hint("alice@example.com")
        }))
        .unwrap_err(),
    );
    assert!(
        matches!(
            scope.code,
            ErrorCode::InvalidRequest | ErrorCode::InvalidScope
        ),
        "{scope}"
    );

    let wrong = discover(
        &rt,
        &bed,
        id,
        ClientAuth::SecretBasic("not-the-secret".into()),
    );
    let denied_client = oauth(
        rt.block_on(wrong.initiate(&request("wrong secret")))
            .unwrap_err(),
    );
    assert_eq!(denied_client.code, ErrorCode::InvalidClient);
    assert_eq!(denied_client.status, 401);

    let grant = rt.block_on(client.poll_once("no-such-request")).unwrap();
    let PollOutcome::Failed(e) = grant else {
        panic!("{grant:?}")
    };
    assert_eq!(e.code, ErrorCode::InvalidGrant);
    assert!(e.request_id.is_some());

    // The user says no: polling ends with access_denied.
    let started = rt.block_on(client.initiate(&request("deny me"))).unwrap();
    bed.decide("deny", "deny me");
    let e = rt.block_on(client.poll_until_done(&started)).unwrap_err();
    assert_eq!(e.code(), Some(&ErrorCode::AccessDenied), "{e}");

    // Polling again at once is slow_down, and the library says so.
    let started = rt.block_on(client.initiate(&request("twice"))).unwrap();
    assert_eq!(
        rt.block_on(client.poll_once(&started.auth_req_id)).unwrap(),
        PollOutcome::Pending { retry_after: None }
    );
    assert!(matches!(
        rt.block_on(client.poll_once(&started.auth_req_id)).unwrap(),
        PollOutcome::SlowDown { .. }
    ));

    // Discovery refuses a document naming another issuer.
    let other_name = bed.issuer.replace("127.0.0.1", "localhost");
    let e = rt
        .block_on(CibaClient::discover(
            &other_name,
            id,
            ClientAuth::SecretBasic("x".into()),
        ))
        .unwrap_err();
    assert!(matches!(e, ClientError::IssuerMismatch { .. }), "{e}");
}

/// A loopback listener for the notification endpoint, bound before the client is registered
/// with its URL (the receiver then validates with that client).
fn bind_receiver(rt: &Runtime) -> (tokio::net::TcpListener, String) {
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let url = format!("http://{}/ciba/notify", listener.local_addr().unwrap());
    (listener, url)
}

fn next_notification(
    rt: &Runtime,
    rx: &mut tokio::sync::mpsc::Receiver<Notification>,
) -> Notification {
    rt.block_on(async { tokio::time::timeout(HANG_GUARD, rx.recv()).await })
        .expect("a notification")
        .expect("the channel is open")
}

fn initiate_with_token(
    rt: &Runtime,
    client: &CibaClient,
    receiver: &NotificationReceiver,
    message: &str,
) -> BackchannelAuthResponse {
    let req = InitiateRequest {
        client_notification_token: Some(receiver.issue_token().unwrap()),
        ..request(message)
    };
    rt.block_on(client.initiate(&req)).unwrap()
}

#[test]
fn ping_notifications_reach_the_receiver_and_tokens_follow() {
    let bed = Bed::new("rp-ping");
    let rt = runtime();
    let key = SigningKey::generate(Algorithm::EdDSA).unwrap();
    let (listener, url) = bind_receiver(&rt);
    let client_id = bed.key_client(
        &key,
        &["--delivery-mode", "ping", "--notification-endpoint", &url],
    );
    let client = Arc::new(discover(
        &rt,
        &bed,
        &client_id,
        ClientAuth::PrivateKeyJwt(key),
    ));
    let (receiver, mut rx) = NotificationReceiver::new(client.clone());
    let app = receiver.router("/ciba/notify");
    rt.spawn(async move { axum::serve(listener, app).await });

    // A notification with no token, or one never issued, is refused.
    let http = reqwest::Client::new();
    for auth in [None, Some("Bearer made-up")] {
        let mut req = http
            .post(&url)
            .json(&serde_json::json!({"auth_req_id": "x"}));
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        let status = rt.block_on(req.send()).unwrap().status();
        assert_eq!(status, 401);
    }

    let started = initiate_with_token(&rt, &client, &receiver, "ping me");
    bed.decide("approve", "ping me");
    let n = next_notification(&rt, &mut rx);
    assert_eq!(
        n,
        Notification::Ping {
            auth_req_id: started.auth_req_id.clone()
        }
    );
    let PollOutcome::Tokens(tokens) = rt.block_on(client.poll_once(&started.auth_req_id)).unwrap()
    else {
        panic!("no tokens after the ping")
    };
    let claims = rt
        .block_on(client.validate_token_response(&tokens))
        .unwrap()
        .unwrap();
    assert_eq!(claims.sub, bed.sub);
}

#[test]
fn pushed_tokens_are_validated_and_a_pushed_denial_is_an_error() {
    let bed = Bed::new("rp-push");
    let rt = runtime();
    let key = SigningKey::generate(Algorithm::ES256).unwrap();
    let (listener, url) = bind_receiver(&rt);
    let client_id = bed.key_client(
        &key,
        &["--delivery-mode", "push", "--notification-endpoint", &url],
    );
    let client = Arc::new(discover(
        &rt,
        &bed,
        &client_id,
        ClientAuth::PrivateKeyJwt(key),
    ));
    let (receiver, mut rx) = NotificationReceiver::new(client.clone());
    let app = receiver.router("/ciba/notify");
    rt.spawn(async move { axum::serve(listener, app).await });

    let started = initiate_with_token(&rt, &client, &receiver, "push me");
    bed.decide("approve", "push me");
    let Notification::Tokens {
        auth_req_id,
        tokens,
        claims,
    } = next_notification(&rt, &mut rx)
    else {
        panic!("not tokens")
    };
    assert_eq!(auth_req_id, started.auth_req_id);
    assert_eq!(claims.sub, bed.sub);
    assert_eq!(
        claims.claim(backchannel_client::CLAIM_AUTH_REQ_ID).unwrap(),
        started.auth_req_id.as_str()
    );

    // The same ID token with another access token fails at_hash: refused, and reported.
    let token = receiver.issue_token().unwrap();
    let mut forged = serde_json::to_value(&tokens).unwrap();
    forged["access_token"] = "swapped".into();
    forged["auth_req_id"] = started.auth_req_id.clone().into();
    let status = rt
        .block_on(
            reqwest::Client::new()
                .post(&url)
                .bearer_auth(&token)
                .json(&forged)
                .send(),
        )
        .unwrap()
        .status();
    assert_eq!(status, 400);
    let Notification::Rejected { reason, .. } = next_notification(&rt, &mut rx) else {
        panic!("not rejected")
    };
    assert!(reason.contains("at_hash"), "{reason}");

    // A denial is pushed as an error.
    let started = initiate_with_token(&rt, &client, &receiver, "push no");
    bed.decide("deny", "push no");
    let Notification::Error { auth_req_id, error } = next_notification(&rt, &mut rx) else {
        panic!("not an error")
    };
    assert_eq!(auth_req_id, started.auth_req_id);
    assert_eq!(error.code, ErrorCode::AccessDenied);
}

/// The server encrypts ID tokens to a client registered for it (signed, then a JWE to the
/// client's `enc` key); the library decrypts them with the client's key and validates the
/// signed token inside, for an ECDH-ES and an RSA-OAEP key.
#[test]
fn the_servers_encrypted_id_tokens_are_decrypted_and_validated() {
    use backchannel_protocol::jose::jwe::EncryptionKeyType;
    let bed = Bed::new("rp-encrypted");
    let rt = runtime();
    for (kind, alg, enc) in [
        (EncryptionKeyType::P256, "ECDH-ES+A256KW", "A256GCM"),
        (EncryptionKeyType::Rsa2048, "RSA-OAEP-256", "A256CBC-HS512"),
    ] {
        let signing = SigningKey::generate(Algorithm::ES256).unwrap();
        let decrypting = backchannel_client::DecryptingKey::generate(kind).unwrap();
        let jwks = bed.dir.join(format!("{alg}.jwks.json"));
        let set = Jwks {
            keys: vec![signing.public_jwk(), decrypting.public_jwk()],
        };
        std::fs::write(&jwks, serde_json::to_string(&set).unwrap()).unwrap();
        let client_id = bed.client(&[
            "--auth-method",
            "private_key_jwt",
            "--jwks-file",
            jwks.to_str().unwrap(),
            "--id-token-encryption-alg",
            alg,
            "--id-token-encryption-enc",
            enc,
        ])["client_id"]
            .as_str()
            .unwrap()
            .to_owned();
        let client = discover(&rt, &bed, &client_id, ClientAuth::PrivateKeyJwt(signing))
            .with_id_token_decryption_key(decrypting);
        let message = format!("Sealed {alg}");
        let started = rt.block_on(client.initiate(&request(&message))).unwrap();
        bed.decide("approve", &message);
        rt.block_on(async {
            let tokens = tokio::time::timeout(HANG_GUARD, client.poll_until_done(&started))
                .await
                .unwrap()
                .unwrap();
            let id_token = tokens.id_token.as_deref().expect("an ID token");
            assert_eq!(id_token.split('.').count(), 5, "{alg}: a compact JWE");
            let claims = client
                .validate_token_response(&tokens)
                .await
                .unwrap()
                .expect("an ID token");
            assert_eq!(claims.sub, bed.sub, "{alg}");
            assert_eq!(claims.claim("email").unwrap(), "alice@example.com");
        });
    }
}

/// A rate-limited `/bc-authorize` reaches the library as `slow_down` with the HTTP status and
/// the server's `Retry-After`.
#[test]
fn a_rate_limited_initiate_carries_retry_after() {
    let limit = vec![(
        "BACKCHANNEL_LIMITS_REQUESTS_PER_USER".to_owned(),
        "1".to_owned(),
    )];
    let bed = Bed::with("rp-limited", limit);
    let rt = runtime();
    let secret = bed.client(&[]);
    let (id, s) = (
        secret["client_id"].as_str().unwrap(),
        secret["client_secret"].as_str().unwrap(),
    );
    let client = discover(&rt, &bed, id, ClientAuth::SecretBasic(s.into()));
    rt.block_on(client.initiate(&request("first"))).unwrap();
    match rt.block_on(client.initiate(&request("second"))) {
        Err(ClientError::OAuth(e)) => {
            assert_eq!((&e.code, e.status), (&ErrorCode::SlowDown, 429), "{e}");
            let secs = e.retry_after.unwrap();
            assert!((599..=600).contains(&secs), "{secs}");
        }
        other => panic!("expected slow_down, got {other:?}"),
    }
}
