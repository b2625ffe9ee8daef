//! Encrypted ID tokens end to end (OIDC Core §10.2): for every registered alg/enc pair the ID
//! token of a real flow is a JWE whose plaintext is the signed ID token, decrypted both by
//! Python's jwcrypto (an implementation no one here wrote) and by our own `jwe::decrypt`; in
//! poll, ping and push mode, with the key from `jwks` or from `jwks_uri`.

use std::io::Write as _;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

use axum::routing::get;
use backchannel_protocol::device::Decision;
use backchannel_protocol::jose::jwe::{
    self, ContentEncryptionAlg, DecryptingKey, EncryptionKeyType, KeyManagementAlg,
};
use backchannel_protocol::jose::{Algorithm, Jwks, SigningKey};
use backchannel_protocol::oauth::{ClientAuthMethod, DeliveryMode};
use backchannel_server::domain::admin::NewClient;
use serde_json::{Value, json};

use crate::e2e_notify::Receiver;
use crate::support::{Auth, TestDevice, TestServer};

const HINT: &str = "jwe@example.com";

/// Registers a client whose ID tokens are encrypted with `alg`/`enc` to `key`, its JWKS also
/// holding a signing key (which must never be chosen to encrypt to).
async fn encrypting_client(
    s: &TestServer,
    key: &DecryptingKey,
    alg: KeyManagementAlg,
    enc: Option<ContentEncryptionAlg>,
    mode: DeliveryMode,
    endpoint: Option<String>,
) -> Auth {
    let sig = SigningKey::generate(Algorithm::ES256).unwrap().public_jwk();
    let (id, secret) = s
        .client(NewClient {
            name: "Encrypting Bank".into(),
            auth_method: Some(ClientAuthMethod::ClientSecretBasic),
            jwks: Some(Jwks {
                keys: vec![sig, key.public_jwk()],
            }),
            scope: Some("openid email".into()),
            delivery_mode: Some(mode),
            notification_endpoint: endpoint,
            id_token_encrypted_response_alg: Some(alg.as_str().into()),
            id_token_encrypted_response_enc: enc.map(|e| e.as_str().into()),
            ..Default::default()
        })
        .await;
    Auth::Basic(id, secret.unwrap())
}

async fn poll_flow(s: &TestServer, device: &TestDevice, auth: &Auth) -> Value {
    let id = s
        .start_request(auth, &[("scope", "openid email"), ("login_hint", HINT)])
        .await;
    assert_eq!(device.decide_only(s, Decision::Approve).await.status, 200);
    let t = s.token(auth, &id).await;
    assert_eq!(t.status, 200, "{}", t.body);
    t.body
}

/// Decrypts with our own code and with jwcrypto; both must give the same signed ID token,
/// which verifies against the server's JWKS. The nested JWT's claims.
async fn open_both_ways(
    s: &TestServer,
    token: &str,
    key: &DecryptingKey,
    alg: KeyManagementAlg,
    enc: ContentEncryptionAlg,
) -> Value {
    assert!(jwe::is_compact_jwe(token), "not a JWE: {token}");
    let (header, plaintext) = jwe::decrypt(token, key).unwrap();
    assert_eq!((header.alg, header.enc), (alg, enc));
    assert_eq!(header.cty.as_deref(), Some("JWT"));
    assert_eq!(header.kid.as_deref(), key.kid());
    let ours = String::from_utf8(plaintext).unwrap();
    let theirs = jwcrypto_decrypt(key, token);
    assert_eq!(theirs["plaintext"], ours, "{alg}/{enc}");
    assert_eq!(theirs["header"]["alg"], alg.as_str());
    assert_eq!(theirs["header"]["enc"], enc.as_str());
    assert_eq!(theirs["header"]["cty"], "JWT");
    let (jws_header, claims) = s.verify_jwt(&ours).await;
    assert_eq!(jws_header.typ.as_deref(), Some("JWT"));
    claims
}

#[tokio::test]
async fn every_alg_and_enc_pair_decrypts_with_jwcrypto_and_with_ours() {
    // A request per pair for one user: no per-user limit.
    let s = TestServer::start_with(|c| c.limits.requests_per_user = 0).await;
    let (user, device) = s.user_with_device(HINT).await;
    let ec = DecryptingKey::generate(EncryptionKeyType::P256).unwrap();
    let rsa = DecryptingKey::generate(EncryptionKeyType::Rsa2048).unwrap();
    let algs = [
        KeyManagementAlg::EcdhEsA256Kw,
        KeyManagementAlg::EcdhEsA128Kw,
        KeyManagementAlg::RsaOaep256,
    ];
    for alg in algs {
        let key = if alg.is_ecdh() { &ec } else { &rsa };
        for enc in ContentEncryptionAlg::ALL {
            let auth = encrypting_client(&s, key, alg, Some(enc), DeliveryMode::Poll, None).await;
            let body = poll_flow(&s, &device, &auth).await;
            let claims =
                open_both_ways(&s, body["id_token"].as_str().unwrap(), key, alg, enc).await;
            assert_eq!(claims["sub"], user.sub);
            assert_eq!(claims["aud"], auth.client_id());
            assert_eq!(claims["email"], HINT);
            // The access token stays a plain signed JWT.
            s.verify_jwt(body["access_token"].as_str().unwrap()).await;
        }
    }
}

#[tokio::test]
async fn ping_and_push_clients_get_encrypted_id_tokens_too() {
    let rx = Receiver::start(&[]).await;
    let s = TestServer::start().await;
    let (_, device) = s.user_with_device(HINT).await;
    let key = DecryptingKey::generate(EncryptionKeyType::P384).unwrap();
    let p = [
        ("scope", "openid email"),
        ("login_hint", HINT),
        ("client_notification_token", "cnt-1234567890"),
    ];

    // Ping: the callback, then the poll answers with the encrypted ID token.
    let (alg, enc) = (
        KeyManagementAlg::EcdhEsA128Kw,
        ContentEncryptionAlg::A256Gcm,
    );
    let ping = encrypting_client(
        &s,
        &key,
        alg,
        Some(enc),
        DeliveryMode::Ping,
        Some(format!("{}/ping", rx.base)),
    )
    .await;
    let id = s.start_request(&ping, &p).await;
    device.decide_only(&s, Decision::Approve).await;
    rx.wait_calls(1).await;
    let t = s.token(&ping, &id).await;
    assert_eq!(t.status, 200, "{}", t.body);
    open_both_ways(&s, t.body["id_token"].as_str().unwrap(), &key, alg, enc).await;

    // Push: the tokens travel in the callback; the nested ID token carries auth_req_id.
    let (alg, enc) = (
        KeyManagementAlg::EcdhEsA256Kw,
        ContentEncryptionAlg::A128CbcHs256,
    );
    let push = encrypting_client(
        &s,
        &key,
        alg,
        None,
        DeliveryMode::Push,
        Some(format!("{}/push", rx.base)),
    )
    .await;
    let id = s.start_request(&push, &p).await;
    device.decide_only(&s, Decision::Approve).await;
    let calls = rx.wait_calls(2).await;
    let body = &calls[1].body;
    assert_eq!(calls[1].path, "/push");
    let claims = open_both_ways(&s, body["id_token"].as_str().unwrap(), &key, alg, enc).await;
    assert_eq!(claims["urn:openid:params:jwt:claim:auth_req_id"], id);
}

/// A JWKS host for `jwks_uri` clients: serves what the test puts there.
async fn jwks_host(keys: Arc<Mutex<Jwks>>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new().route(
        "/jwks.json",
        get(move || {
            let keys = keys.clone();
            async move { axum::Json(keys.lock().unwrap().clone()) }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}/jwks.json")
}

#[tokio::test]
async fn the_key_comes_from_jwks_uri_through_the_guarded_fetcher() {
    let s = TestServer::start().await;
    let (_, device) = s.user_with_device(HINT).await;
    let key = DecryptingKey::generate(EncryptionKeyType::Rsa2048).unwrap();
    let sig = SigningKey::generate(Algorithm::ES256).unwrap().public_jwk();
    let register = |uri: String| NewClient {
        name: "Remote Keys Bank".into(),
        jwks_uri: Some(uri),
        scope: Some("openid email".into()),
        id_token_encrypted_response_alg: Some("RSA-OAEP-256".into()),
        ..Default::default()
    };
    let hosted = Arc::new(Mutex::new(Jwks {
        keys: vec![sig.clone(), key.public_jwk()],
    }));
    let (id, secret) = s.client(register(jwks_host(hosted).await)).await;
    let auth = Auth::Basic(id, secret.unwrap());
    let body = poll_flow(&s, &device, &auth).await;
    open_both_ways(
        &s,
        body["id_token"].as_str().unwrap(),
        &key,
        KeyManagementAlg::RsaOaep256,
        ContentEncryptionAlg::A128CbcHs256,
    )
    .await;

    // A set with nothing to encrypt to (only a signing key): the poll is refused as the
    // client's misconfiguration, and the approval is not spent by it.
    let only_sig = Arc::new(Mutex::new(Jwks { keys: vec![sig] }));
    let (id, secret) = s.client(register(jwks_host(only_sig).await)).await;
    let auth = Auth::Basic(id, secret.unwrap());
    let req = s
        .start_request(&auth, &[("scope", "openid email"), ("login_hint", HINT)])
        .await;
    device.decide_only(&s, Decision::Approve).await;
    for _ in 0..2 {
        s.token(&auth, &req)
            .await
            .expect_error(401, "invalid_client");
    }
    assert_eq!(
        s.request_state(&req).await,
        backchannel_server::domain::model::AuthRequestState::Approved
    );
}

#[tokio::test]
async fn registration_checks_and_discovery() {
    let s = TestServer::start().await;
    let ec = DecryptingKey::generate(EncryptionKeyType::P256).unwrap();
    let admin = |body: Value| {
        let s = &s;
        async move {
            let r = s
                .http
                .post(s.url("/admin/v1/clients"))
                .bearer_auth("test-admin-token")
                .json(&body)
                .send()
                .await
                .unwrap();
            crate::support::Answer::from(r).await
        }
    };
    // Only the alg: the enc defaults to A128CBC-HS256 (OIDC Registration §2).
    let a = admin(json!({
        "client_name": "Singpass-style RP",
        "jwks": {"keys": [ec.public_jwk()]},
        "id_token_encrypted_response_alg": "ECDH-ES+A256KW",
    }))
    .await;
    assert_eq!(a.status, 201, "{}", a.body);
    let id = a.body["client_id"].as_str().unwrap();
    let view = s
        .http
        .get(s.url(&format!("/admin/v1/clients/{id}")))
        .bearer_auth("test-admin-token")
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(view["id_token_encrypted_response_alg"], "ECDH-ES+A256KW");
    assert_eq!(view["id_token_encrypted_response_enc"], "A128CBC-HS256");

    let sig_only = SigningKey::generate(Algorithm::ES256).unwrap().public_jwk();
    for bad in [
        // No key to encrypt to: a signing key does not count.
        json!({"client_name": "x", "jwks": {"keys": [sig_only]},
               "id_token_encrypted_response_alg": "ECDH-ES+A128KW"}),
        // An EC key for RSA-OAEP-256.
        json!({"client_name": "x", "jwks": {"keys": [ec.public_jwk()]},
               "id_token_encrypted_response_alg": "RSA-OAEP-256"}),
        // No keys at all.
        json!({"client_name": "x", "id_token_encrypted_response_alg": "RSA-OAEP-256"}),
        // Unsupported values, and an enc without an alg.
        json!({"client_name": "x", "jwks": {"keys": [ec.public_jwk()]},
               "id_token_encrypted_response_alg": "RSA1_5"}),
        json!({"client_name": "x", "jwks": {"keys": [ec.public_jwk()]},
               "id_token_encrypted_response_alg": "ECDH-ES+A256KW",
               "id_token_encrypted_response_enc": "A192GCM"}),
        json!({"client_name": "x", "jwks": {"keys": [ec.public_jwk()]},
               "id_token_encrypted_response_enc": "A256GCM"}),
    ] {
        admin(bad.clone())
            .await
            .expect_error(400, "invalid_request");
    }

    let m: Value = s
        .http
        .get(s.url("/.well-known/openid-configuration"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        m["id_token_encryption_alg_values_supported"],
        json!(["ECDH-ES+A256KW", "ECDH-ES+A128KW", "RSA-OAEP-256"])
    );
    assert_eq!(
        m["id_token_encryption_enc_values_supported"],
        json!(["A128GCM", "A256GCM", "A128CBC-HS256", "A256CBC-HS512"])
    );
}

/// Decrypts with jwcrypto, installed with pip on first use if the machine lacks it.
fn jwcrypto_decrypt(key: &DecryptingKey, token: &str) -> Value {
    assert!(
        crate::support::python_module("jwcrypto.jwe", "jwcrypto"),
        "could not install jwcrypto with pip"
    );
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/it/jwe/jwe_decrypt.py");
    let mut child = Command::new("python3")
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 is needed to decrypt with jwcrypto");
    let input = json!({ "jwk": key.to_private_jwk(), "token": token });
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "jwcrypto could not decrypt: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}
