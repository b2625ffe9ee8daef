//! The relying-party library's caches over HTTP, against a stand-in authorization server whose
//! documents the test controls (Backchannel rotates its keys only by operator action): RFC 8414
//! discovery for an issuer with a path, the JWKS kept for its `max-age`, fetched again for an
//! unknown `kid` but not more often than `MIN_KEY_REFRESH_SECS`, and the metadata fetched again
//! once stale; and encrypted ID tokens (made by our `jose::jwe` and by Python's jwcrypto)
//! decrypted with the client's key. Time is a `ManualClock`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::extract::State;
use axum::response::IntoResponse;
use axum::routing::get;
use backchannel_client::{
    Algorithm, CibaClient, ClientAuth, ClientError, Clock as _, MIN_KEY_REFRESH_SECS, ManualClock,
    SigningKey, SystemClock,
};
use backchannel_protocol::jose::{self, Jwks};
use serde_json::json;

use backchannel_protocol::jose::jwe::{
    self, ContentEncryptionAlg, DecryptingKey, EncryptionKeyType, HeaderParams, KeyManagementAlg,
};
use backchannel_protocol::jose::pem;
use tokio::runtime::Runtime;

use crate::support::runtime;

#[derive(Clone)]
struct StandIn {
    issuer: String,
    keys: Arc<Mutex<Jwks>>,
    metadata_fetches: Arc<AtomicUsize>,
    jwks_fetches: Arc<AtomicUsize>,
}

const CACHE: (axum::http::HeaderName, &str) =
    (axum::http::header::CACHE_CONTROL, "public, max-age=300");

async fn metadata_get(State(s): State<StandIn>) -> impl IntoResponse {
    s.metadata_fetches.fetch_add(1, Ordering::SeqCst);
    (
        [CACHE],
        Json(json!({
            "issuer": s.issuer,
            "jwks_uri": format!("{}/keys", s.issuer),
            "token_endpoint": format!("{}/token", s.issuer),
            "backchannel_authentication_endpoint": format!("{}/bc", s.issuer),
        })),
    )
}

async fn jwks_get(State(s): State<StandIn>) -> impl IntoResponse {
    s.jwks_fetches.fetch_add(1, Ordering::SeqCst);
    let keys = s.keys.lock().unwrap().clone();
    ([CACHE], Json(keys))
}

fn id_token(key: &SigningKey, issuer: &str, now: i64) -> String {
    jose::sign_jwt(
        key,
        None,
        &json!({"iss": issuer, "sub": "u1", "aud": "rp", "iat": now, "exp": now + 3600}),
    )
    .unwrap()
}

/// Serves the stand-in for an issuer with a path, with `key` in its JWKS: only at the RFC 8414
/// location (the OpenID one is a 404).
fn start_stand_in(rt: &Runtime, key: &SigningKey) -> StandIn {
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let stand_in = StandIn {
        issuer: format!("http://{}/tenant", listener.local_addr().unwrap()),
        keys: Arc::new(Mutex::new(Jwks {
            keys: vec![key.public_jwk()],
        })),
        metadata_fetches: Arc::default(),
        jwks_fetches: Arc::default(),
    };
    let app = axum::Router::new()
        .route(
            "/.well-known/oauth-authorization-server/tenant",
            get(metadata_get),
        )
        .route("/tenant/keys", get(jwks_get))
        .with_state(stand_in.clone());
    rt.spawn(async move { axum::serve(listener, app).await });
    stand_in
}

#[test]
fn keys_are_fetched_again_for_an_unknown_kid_but_not_more_often_than_allowed() {
    let rt = runtime();
    let old = SigningKey::generate(Algorithm::ES256).unwrap();
    let new = SigningKey::generate(Algorithm::EdDSA).unwrap();
    let stand_in = start_stand_in(&rt, &old);
    let issuer = stand_in.issuer.clone();
    let clock = ManualClock::new(SystemClock.now_ms());
    let client = rt
        .block_on(CibaClient::discover(
            &issuer,
            "rp",
            ClientAuth::SecretBasic("s".into()),
        ))
        .unwrap()
        .with_clock(Arc::new(clock.clone()));
    assert_eq!(client.metadata().token_endpoint, format!("{issuer}/token"));
    let fetches = || {
        (
            stand_in.metadata_fetches.load(Ordering::SeqCst),
            stand_in.jwks_fetches.load(Ordering::SeqCst),
        )
    };
    assert_eq!(fetches(), (1, 0));
    let validate = |token: &str| rt.block_on(client.validate_id_token(token));

    let now = clock.now_secs();
    validate(&id_token(&old, &issuer, now)).unwrap();
    validate(&id_token(&old, &issuer, now)).unwrap();
    assert_eq!(fetches(), (1, 1), "the JWKS is cached");

    // The server starts signing with a new key.
    stand_in.keys.lock().unwrap().keys.push(new.public_jwk());
    let by_new = id_token(&new, &issuer, now);
    let e = validate(&by_new).unwrap_err();
    assert!(matches!(e, ClientError::InvalidIdToken(_)), "{e}");
    assert_eq!(fetches(), (1, 1), "too soon to fetch the keys again");
    clock.advance_secs(MIN_KEY_REFRESH_SECS);
    validate(&by_new).unwrap();
    assert_eq!(fetches(), (1, 2), "an unknown kid fetched the keys");
    validate(&by_new).unwrap();
    assert_eq!(fetches(), (1, 2));

    // Past max-age, both documents are fetched again.
    clock.advance_secs(300);
    validate(&id_token(&old, &issuer, clock.now_secs())).unwrap();
    assert_eq!(fetches(), (2, 3));
}

/// The compact JWE that Python's jwcrypto makes of `plaintext` for `recipient`, or why there is
/// none (no python3, jwcrypto not installable).
fn jwcrypto_encrypt(
    recipient: &backchannel_protocol::jose::Jwk,
    plaintext: &str,
    alg: &str,
    enc: &str,
) -> Result<String, String> {
    use std::io::Write as _;
    use std::process::{Command, Stdio};
    if !crate::support::python_module("jwcrypto", "jwcrypto") {
        return Err("python3 with jwcrypto is not available".into());
    }
    let script = "import json, sys\n\
from jwcrypto import jwe, jwk\n\
a = json.load(sys.stdin)\n\
key = jwk.JWK(**a['jwk'])\n\
t = jwe.JWE(a['plaintext'].encode(), json.dumps({'alg': a['alg'], 'enc': a['enc'], 'cty': 'JWT', 'kid': a['jwk'].get('kid')}))\n\
t.add_recipient(key)\n\
print(t.serialize(compact=True))\n";
    let mut child = Command::new("python3")
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    let input = json!({"jwk": recipient, "plaintext": plaintext, "alg": alg, "enc": enc});
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "jwcrypto: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8(out.stdout).unwrap().trim().to_owned())
}

#[test]
fn encrypted_id_tokens_are_decrypted_with_the_clients_key() {
    let rt = runtime();
    let signer = SigningKey::generate(Algorithm::ES256).unwrap();
    let stand_in = start_stand_in(&rt, &signer);
    let issuer = stand_in.issuer.clone();
    let ec = DecryptingKey::generate(EncryptionKeyType::P256).unwrap();
    let rsa = DecryptingKey::generate(EncryptionKeyType::Rsa2048).unwrap();
    let clock = ManualClock::new(SystemClock.now_ms());
    let discovered = || {
        rt.block_on(CibaClient::discover(
            &issuer,
            "rp",
            ClientAuth::SecretBasic("s".into()),
        ))
        .unwrap()
        .with_clock(Arc::new(clock.clone()))
    };
    let client = discovered()
        .with_id_token_decryption_key(ec.clone())
        .with_id_token_decryption_key(rsa.clone());
    let signed = id_token(&signer, &issuer, clock.now_secs());
    let nested = HeaderParams {
        cty: Some("JWT".into()),
        ..HeaderParams::default()
    };
    let validate = |c: &CibaClient, token: &str| rt.block_on(c.validate_id_token(token));

    // Ours, for the pairs Singpass and others send.
    for (alg, enc, to) in [
        (
            KeyManagementAlg::EcdhEsA256Kw,
            ContentEncryptionAlg::A256Gcm,
            &ec,
        ),
        (
            KeyManagementAlg::EcdhEsA256Kw,
            ContentEncryptionAlg::A256CbcHs512,
            &ec,
        ),
        (
            KeyManagementAlg::EcdhEsA128Kw,
            ContentEncryptionAlg::A128CbcHs256,
            &ec,
        ),
        (
            KeyManagementAlg::RsaOaep256,
            ContentEncryptionAlg::A256Gcm,
            &rsa,
        ),
    ] {
        let token = jwe::encrypt(signed.as_bytes(), &to.public_jwk(), alg, enc, &nested).unwrap();
        let claims = validate(&client, &token).unwrap_or_else(|e| panic!("{alg:?} {enc:?}: {e}"));
        assert_eq!(claims.sub, "u1");
    }

    // An independent implementation's tokens.
    for (alg, enc, to) in [
        ("ECDH-ES+A256KW", "A256GCM", &ec),
        ("ECDH-ES+A256KW", "A256CBC-HS512", &ec),
        ("RSA-OAEP-256", "A256GCM", &rsa),
    ] {
        match jwcrypto_encrypt(&to.public_jwk(), &signed, alg, enc) {
            Ok(token) => {
                let claims =
                    validate(&client, &token).unwrap_or_else(|e| panic!("{alg} {enc}: {e}"));
                assert_eq!(claims.sub, "u1");
            }
            Err(why) => {
                eprintln!("skipping the jwcrypto tokens: {why}");
                break;
            }
        }
    }

    // Encrypted to a key the client does not hold, or for a client with no key: refused.
    let stranger = DecryptingKey::generate(EncryptionKeyType::P256).unwrap();
    let token = jwe::encrypt(
        signed.as_bytes(),
        &stranger.public_jwk(),
        KeyManagementAlg::EcdhEsA256Kw,
        ContentEncryptionAlg::A256Gcm,
        &nested,
    )
    .unwrap();
    assert!(matches!(
        validate(&client, &token),
        Err(ClientError::InvalidIdToken(_))
    ));
    let plain_client = discovered();
    let e = validate(
        &plain_client,
        &jwe::encrypt(
            signed.as_bytes(),
            &ec.public_jwk(),
            KeyManagementAlg::EcdhEsA256Kw,
            ContentEncryptionAlg::A256Gcm,
            &nested,
        )
        .unwrap(),
    )
    .unwrap_err();
    assert!(e.to_string().contains("no decryption key"), "{e}");

    // A decryption key from a PEM file (the same EC key, PKCS#8).
    let mut as_signing = ec.to_private_jwk();
    as_signing.use_ = None;
    let pem_text = pem::encode(
        pem::LABEL_PKCS8,
        &SigningKey::from_jwk(&as_signing)
            .unwrap()
            .to_pkcs8_der()
            .unwrap(),
    );
    let from_pem = backchannel_client::load_decryption_key(&pem_text, Some("enc-pem")).unwrap();
    assert_eq!(from_pem.public_jwk().x, ec.public_jwk().x);
    let pem_client = discovered().with_id_token_decryption_key(from_pem);
    let token = jwe::encrypt(
        signed.as_bytes(),
        &ec.public_jwk(),
        KeyManagementAlg::EcdhEsA256Kw,
        ContentEncryptionAlg::A256CbcHs512,
        &nested,
    )
    .unwrap();
    // The JWE names the generated key's kid; the PEM key has another, so no key is named...
    assert!(validate(&pem_client, &token).is_err());
    // ...and one naming the PEM key's kid decrypts.
    let token = jwe::encrypt(
        signed.as_bytes(),
        &ec.public_jwk(),
        KeyManagementAlg::EcdhEsA256Kw,
        ContentEncryptionAlg::A256CbcHs512,
        &HeaderParams {
            kid: Some("enc-pem".into()),
            ..nested.clone()
        },
    )
    .unwrap();
    assert_eq!(validate(&pem_client, &token).unwrap().sub, "u1");
}
