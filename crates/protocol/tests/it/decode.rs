//! Hostile input to `decode_jws`: every malformed token is an error, none is a panic.

use backchannel_protocol::jose::{
    Algorithm, JoseError, MAX_JWS_LEN, SigningKey, b64, decode_jws, sign_jwt,
};
use proptest::prelude::*;
use serde_json::json;

fn part(json: &str) -> String {
    b64::encode(json.as_bytes())
}

fn with_header(header: &str) -> String {
    format!("{}.{}.{}", part(header), part("{}"), b64::encode(&[7; 64]))
}

fn malformed(token: &str) {
    assert!(
        matches!(decode_jws(token), Err(JoseError::Malformed(_))),
        "{token:?} gave {:?}",
        decode_jws(token).map(|j| j.header)
    );
}

#[test]
fn alg_none_and_hmac_are_unsupported() {
    for alg in [
        "none", "None", "HS256", "HS512", "RS512", "ES256K", "Ed25519", "es256", "",
    ] {
        assert_eq!(
            decode_jws(&with_header(&format!(r#"{{"alg":"{alg}"}}"#))).unwrap_err(),
            JoseError::UnsupportedAlgorithm(alg.into()),
        );
    }
    // An unsecured JWS (RFC 7519 §6) with an empty signature part.
    let unsecured = format!(
        "{}.{}.",
        part(r#"{"alg":"none"}"#),
        part(r#"{"sub":"admin"}"#)
    );
    assert!(matches!(
        decode_jws(&unsecured),
        Err(JoseError::UnsupportedAlgorithm(_))
    ));
}

#[test]
fn wrong_part_counts_are_malformed() {
    let good = sign_jwt(
        &SigningKey::generate(Algorithm::ES256).unwrap(),
        None,
        &json!({}),
    )
    .unwrap();
    assert!(decode_jws(&good).is_ok());
    let (a, rest) = good.split_once('.').unwrap();
    let (b, c) = rest.split_once('.').unwrap();
    for bad in [
        String::new(),
        ".".into(),
        "..".into(),
        "...".into(),
        a.into(),
        format!("{a}.{b}"),
        format!("{a}.{b}.{c}."),
        format!("{a}.{b}.{c}.{c}"),
        format!("{a}.{b}.{c}.{c}.{c}"), // JWE-shaped
        format!("{a}..{b}.{c}"),
    ] {
        malformed(&bad);
    }
}

#[test]
fn bad_base64_is_malformed() {
    let good = with_header(r#"{"alg":"ES256"}"#);
    let (a, rest) = good.split_once('.').unwrap();
    let (b, c) = rest.split_once('.').unwrap();
    for bad in [
        format!("{a}=.{b}.{c}"),
        format!("{a}.{b}=.{c}"),
        format!("{a}.{b}.{c}=="),
        format!("{}.{b}.{c}", a.replace('J', "+")),
        format!("{a}.{b}.{}", "a/b"),
        format!(" {a}.{b}.{c}"),
        format!("{a}.{b}.{c}\n"),
        format!("{a}.{b}.A"),
    ] {
        malformed(&bad);
    }
}

#[test]
fn non_object_headers_are_malformed() {
    for header in [
        r#"["ES256"]"#,
        r#""ES256""#,
        "null",
        "1",
        "",
        "{",
        r#"{"alg":"ES256"} x"#,
        r#"{"alg":256}"#,
        r#"{"alg":null}"#,
        r#"{"typ":"JWT"}"#,
        r#"{"alg":"ES256","kid":7}"#,
        "\u{feff}{\"alg\":\"ES256\"}",
    ] {
        malformed(&with_header(header));
    }
    // Not UTF-8 at all.
    malformed(&format!(
        "{}.{}.{}",
        b64::encode(&[0xff, 0xfe, b'{']),
        part("{}"),
        part("s")
    ));
}

#[test]
fn crit_is_malformed() {
    malformed(&with_header(r#"{"alg":"ES256","crit":["exp"],"exp":1}"#));
    malformed(&with_header(
        r#"{"alg":"ES256","b64":false,"crit":["b64"]}"#,
    ));
}

#[test]
fn oversized_tokens_are_malformed() {
    let key = SigningKey::generate(Algorithm::EdDSA).unwrap();
    let filler = "x".repeat(MAX_JWS_LEN);
    let big = sign_jwt(&key, None, &json!({ "filler": filler })).unwrap();
    malformed(&big);
    let fits = sign_jwt(
        &key,
        None,
        &json!({ "filler": "x".repeat(MAX_JWS_LEN / 2) }),
    )
    .unwrap();
    decode_jws(&fits)
        .unwrap()
        .verify(&key.verifying_key())
        .unwrap();
}

#[test]
fn claims_that_do_not_fit_are_malformed() {
    #[derive(serde::Deserialize, Debug)]
    #[allow(dead_code)]
    struct Claims {
        exp: u64,
    }
    let key = SigningKey::generate(Algorithm::ES256).unwrap();
    let jws = decode_jws(&sign_jwt(&key, None, &json!({"exp": "soon"})).unwrap()).unwrap();
    assert!(matches!(
        jws.claims::<Claims>(),
        Err(JoseError::Malformed(_))
    ));
    let jws = decode_jws(&format!(
        "{}.{}.",
        part(r#"{"alg":"ES256"}"#),
        part("not json")
    ))
    .unwrap();
    assert!(matches!(
        jws.claims::<serde_json::Value>(),
        Err(JoseError::Malformed(_))
    ));
}

fn jwsish() -> impl Strategy<Value = String> {
    let segment = prop_oneof![
        "[A-Za-z0-9_-]{0,40}",
        "[ -~]{0,40}",
        Just(part(r#"{"alg":"ES256"}"#)),
        Just(part(r#"{"alg":"none"}"#)),
        any::<Vec<u8>>().prop_map(|b| b64::encode(&b)),
        "\\PC{0,20}",
    ];
    prop::collection::vec(segment, 0..6).prop_map(|parts| parts.join("."))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn decode_never_panics_on_strings(s in "\\PC{0,200}") {
        let _ = decode_jws(&s);
    }

    #[test]
    fn decode_never_panics_on_jws_shaped_input(s in jwsish()) {
        if let Ok(jws) = decode_jws(&s) {
            // Whatever parses has a supported alg and no crit, and never verifies by chance.
            prop_assert!(jws.header.crit.is_none());
            let key = SigningKey::generate(jws.alg()).unwrap().verifying_key();
            prop_assert!(jws.verify(&key).is_err());
        }
    }

    #[test]
    fn decode_never_panics_on_mutated_tokens(
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4)
    ) {
        let key = SigningKey::generate(Algorithm::ES256).unwrap();
        let token = sign_jwt(&key, None, &json!({"sub": "a"})).unwrap();
        let mut bytes = token.into_bytes();
        for (at, to) in flips {
            let i = at.index(bytes.len());
            bytes[i] = to;
        }
        let mutated = String::from_utf8_lossy(&bytes).into_owned();
        if let Ok(jws) = decode_jws(&mutated) {
            let _ = jws.verify(&key.verifying_key());
        }
    }
}
