//! The relying-party library's caches over HTTP, against a stand-in authorization server whose
//! documents the test controls (Backchannel rotates its keys only by operator action): RFC 8414
//! discovery for an issuer with a path, the JWKS kept for its `max-age`, fetched again for an
//! unknown `kid` but not more often than `MIN_KEY_REFRESH_SECS`, and the metadata fetched again
//! once stale. Time is a `ManualClock`.

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

#[test]
fn keys_are_fetched_again_for_an_unknown_kid_but_not_more_often_than_allowed() {
    let rt = runtime();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let issuer = format!("http://{}/tenant", listener.local_addr().unwrap());
    let old = SigningKey::generate(Algorithm::ES256).unwrap();
    let new = SigningKey::generate(Algorithm::EdDSA).unwrap();
    let stand_in = StandIn {
        issuer: issuer.clone(),
        keys: Arc::new(Mutex::new(Jwks {
            keys: vec![old.public_jwk()],
        })),
        metadata_fetches: Arc::default(),
        jwks_fetches: Arc::default(),
    };
    // Only the RFC 8414 location: the OpenID one is a 404.
    let app = axum::Router::new()
        .route(
            "/.well-known/oauth-authorization-server/tenant",
            get(metadata_get),
        )
        .route("/tenant/keys", get(jwks_get))
        .with_state(stand_in.clone());
    rt.spawn(async move { axum::serve(listener, app).await });

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
