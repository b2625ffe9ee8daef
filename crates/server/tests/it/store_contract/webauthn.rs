//! Contract of the WebAuthn credential store: one credential per device, round trip, and a
//! signature counter that only moves up, once per value.

use backchannel_server::domain::webauthn::WebAuthnCredential;

use super::*;

fn credential(device_id: &str, key: &str, count: i64) -> WebAuthnCredential {
    WebAuthnCredential {
        device_id: device_id.to_owned(),
        credential_id: format!("cred-{key}"),
        public_jwk: ec_jwk(key),
        alg: Algorithm::ES256,
        sign_count: count,
        created_at: T0,
    }
}

pub(super) async fn webauthn_credentials_are_one_per_device_and_counters_only_rise(s: Stores) {
    world(&s, 2).await;
    let w = &s.webauthn;
    assert_eq!(w.get_webauthn_credential("device-1").await.unwrap(), None);
    let first = credential("device-1", "key-a", 0);
    assert!(w.insert_webauthn_credential(&first).await.unwrap());
    assert!(
        !w.insert_webauthn_credential(&credential("device-1", "key-b", 0))
            .await
            .unwrap()
    );
    assert_eq!(
        w.get_webauthn_credential("device-1").await.unwrap(),
        Some(first.clone())
    );
    let other = credential("device-2", "key-c", 7);
    assert!(w.insert_webauthn_credential(&other).await.unwrap());

    assert!(w.advance_webauthn_sign_count("device-1", 3).await.unwrap());
    assert!(
        !w.advance_webauthn_sign_count("device-1", 3).await.unwrap(),
        "same value twice"
    );
    assert!(
        !w.advance_webauthn_sign_count("device-1", 2).await.unwrap(),
        "backwards"
    );
    assert!(!w.advance_webauthn_sign_count("nobody", 9).await.unwrap());
    let stored = w
        .get_webauthn_credential("device-1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.sign_count, 3);
    assert_eq!(
        w.get_webauthn_credential("device-2").await.unwrap(),
        Some(other)
    );

    // Of many racing assertions carrying one counter value, one moves it.
    let races = (0..8).map(|_| {
        let w = s.webauthn.clone();
        tokio::spawn(async move { w.advance_webauthn_sign_count("device-1", 4).await.unwrap() })
    });
    let mut won = 0;
    for r in races {
        won += usize::from(r.await.unwrap());
    }
    assert_eq!(won, 1);
}
