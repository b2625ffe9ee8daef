//! Published test vectors: RFC 7520 §4.1 (RS256) and §4.3 (ES512), RFC 8037 Appendix A
//! (Ed25519) and RFC 7638 §3.1 (thumbprint). RS256 and Ed25519 are deterministic, so those
//! signatures must match byte for byte.

use backchannel_protocol::jose::{
    Algorithm, Header, JoseError, Jwk, SigningKey, VerifyingKey, b64, decode_jws, sign_jws,
    thumbprint,
};

fn jwk(json: &str) -> Jwk {
    serde_json::from_str(json).unwrap()
}

/// RFC 7520 §4: the payload, "It’s a dangerous business, Frodo, …" (with U+2019).
const RFC7520_PAYLOAD_B64: &str = "SXTigJlzIGEgZGFuZ2Vyb3VzIGJ1c2luZXNzLCBGcm9kbywgZ29pbmcgb3V0IHlvdXIgZG9vci4gWW91IHN0ZXAgb250byB0aGUgcm9hZCwgYW5kIGlmIHlvdSBkb24ndCBrZWVwIHlvdXIgZmVldCwgdGhlcmXigJlzIG5vIGtub3dpbmcgd2hlcmUgeW91IG1pZ2h0IGJlIHN3ZXB0IG9mZiB0by4";
const RFC7520_PAYLOAD: &str = "It\u{2019}s a dangerous business, Frodo, going out your door. You step onto the road, and if you don't keep your feet, there\u{2019}s no knowing where you might be swept off to.";

/// RFC 7520 §3.4: RSA private key.
const RFC7520_RSA: &str = r#"{
  "kty": "RSA",
  "kid": "bilbo.baggins@hobbiton.example",
  "use": "sig",
  "n": "n4EPtAOCc9AlkeQHPzHStgAbgs7bTZLwUBZdR8_KuKPEHLd4rHVTeT-O-XV2jRojdNhxJWTDvNd7nqQ0VEiZQHz_AJmSCpMaJMRBSFKrKb2wqVwGU_NsYOYL-QtiWN2lbzcEe6XC0dApr5ydQLrHqkHHig3RBordaZ6Aj-oBHqFEHYpPe7Tpe-OfVfHd1E6cS6M1FZcD1NNLYD5lFHpPI9bTwJlsde3uhGqC0ZCuEHg8lhzwOHrtIQbS0FVbb9k3-tVTU4fg_3L_vniUFAKwuCLqKnS2BYwdq_mzSnbLY7h_qixoR7jig3__kRhuaxwUkRz5iaiQkqgc5gHdrNP5zw",
  "e": "AQAB",
  "d": "bWUC9B-EFRIo8kpGfh0ZuyGPvMNKvYWNtB_ikiH9k20eT-O1q_I78eiZkpXxXQ0UTEs2LsNRS-8uJbvQ-A1irkwMSMkK1J3XTGgdrhCku9gRldY7sNA_AKZGh-Q661_42rINLRCe8W-nZ34ui_qOfkLnK9QWDDqpaIsA-bMwWWSDFu2MUBYwkHTMEzLYGqOe04noqeq1hExBTHBOBdkMXiuFhUq1BU6l-DqEiWxqg82sXt2h-LMnT3046AOYJoRioz75tSUQfGCshWTBnP5uDjd18kKhyv07lhfSJdrPdM5Plyl21hsFf4L_mHCuoFau7gdsPfHPxxjVOcOpBrQzwQ",
  "p": "3Slxg_DwTXJcb6095RoXygQCAZ5RnAvZlno1yhHtnUex_fp7AZ_9nRaO7HX_-SFfGQeutao2TDjDAWU4Vupk8rw9JR0AzZ0N2fvuIAmr_WCsmGpeNqQnev1T7IyEsnh8UMt-n5CafhkikzhEsrmndH6LxOrvRJlsPp6Zv8bUq0k",
  "q": "uKE2dh-cTf6ERF4k4e_jy78GfPYUIaUyoSSJuBzp3Cubk3OCqs6grT8bR_cu0Dm1MZwWmtdqDyI95HrUeq3MP15vMMON8lHTeZu2lmKvwqW7anV5UzhM1iZ7z4yMkuUwFWoBvyY898EXvRD-hdqRxHlSqAZ192zB3pVFJ0s7pFc",
  "dp": "B8PVvXkvJrj2L-GYQ7v3y9r6Kw5g9SahXBwsWUzp19TVlgI-YV85q1NIb1rxQtD-IsXXR3-TanevuRPRt5OBOdiMGQp8pbt26gljYfKU_E9xn-RULHz0-ed9E9gXLKD4VGngpz-PfQ_q29pk5xWHoJp009Qf1HvChixRX59ehik",
  "dq": "CLDmDGduhylc9o7r84rEUVn7pzQ6PF83Y-iBZx5NT-TpnOZKF1pErAMVeKzFEl41DlHHqqBLSM0W1sOFbwTxYWZDm6sI6og5iTbwQGIC3gnJKbi_7k_vJgGHwHxgPaX2PnvP-zyEkDERuf-ry4c_Z11Cq9AqC2yeL6kdKT1cYF8",
  "qi": "3PiqvXQN0zwMeE-sBvZgi289XP9XCQF3VWqPzMKnIgQp7_Tugo6-NZBKCQsMf3HaEGBjTVJs_jcK8-TRXvaKe-7ZMaQj8VfBdYkssbu0NKDDhjJ-GtiseaDVWt7dcH0cfwxgFUHpQh7FoCrjFJ6h6ZEpMF6xmujs4qMpPz8aaI4"
}"#;

/// RFC 7520 §4.1.3: the complete compact JWS.
const RFC7520_RS256_JWS: &str = concat!(
    "eyJhbGciOiJSUzI1NiIsImtpZCI6ImJpbGJvLmJhZ2dpbnNAaG9iYml0b24uZXhhbXBsZSJ9",
    ".",
    "SXTigJlzIGEgZGFuZ2Vyb3VzIGJ1c2luZXNzLCBGcm9kbywgZ29pbmcgb3V0IHlvdXIgZG9vci4gWW91IHN0ZXAgb250byB0aGUgcm9hZCwgYW5kIGlmIHlvdSBkb24ndCBrZWVwIHlvdXIgZmVldCwgdGhlcmXigJlzIG5vIGtub3dpbmcgd2hlcmUgeW91IG1pZ2h0IGJlIHN3ZXB0IG9mZiB0by4",
    ".",
    "MRjdkly7_-oTPTS3AXP41iQIGKa80A0ZmTuV5MEaHoxnW2e5CZ5NlKtainoFmKZopdHM1O2U4mwzJdQx996ivp83xuglII7PNDi84wnB-BDkoBwA78185hX-Es4JIwmDLJK3lfWRa-XtL0RnltuYv746iYTh_qHRD68BNt1uSNCrUCTJDt5aAE6x8wW1Kt9eRo4QPocSadnHXFxnt8Is9UzpERV0ePPQdLuW3IS_de3xyIrDaLGdjluPxUAhb6L2aXic1U12podGU0KLUQSE_oI-ZnmKJ3F4uOZDnd6QZWJushZ41Axf_fcIe8u9ipH84ogoree7vjbU5y18kDquDg",
);

/// RFC 7520 §3.2: EC P-521 private key.
const RFC7520_EC: &str = r#"{
  "kty": "EC",
  "kid": "bilbo.baggins@hobbiton.example",
  "use": "sig",
  "crv": "P-521",
  "x": "AHKZLLOsCOzz5cY97ewNUajB957y-C-U88c3v13nmGZx6sYl_oJXu9A5RkTKqjqvjyekWF-7ytDyRXYgCF5cj0Kt",
  "y": "AdymlHvOiLxXkEhayXQnNCvDX4h9htZaCJN34kfmC6pV5OhQHiraVySsUdaQkAgDPrwQrJmbnX9cwlGfP-HqHZR1",
  "d": "AAhRON2r9cqXX1hg-RoI6R1tX5p2rUAYdmpHZoC1XNM56KtscrX6zbKipQrCW9CGZH3T4ubpnoTKLDYJ_fF3_rJt"
}"#;

/// RFC 7520 §4.3.3: the compact ES512 JWS.
const RFC7520_ES512_JWS: &str = concat!(
    "eyJhbGciOiJFUzUxMiIsImtpZCI6ImJpbGJvLmJhZ2dpbnNAaG9iYml0b24uZXhhbXBsZSJ9",
    ".",
    "SXTigJlzIGEgZGFuZ2Vyb3VzIGJ1c2luZXNzLCBGcm9kbywgZ29pbmcgb3V0IHlvdXIgZG9vci4gWW91IHN0ZXAgb250byB0aGUgcm9hZCwgYW5kIGlmIHlvdSBkb24ndCBrZWVwIHlvdXIgZmVldCwgdGhlcmXigJlzIG5vIGtub3dpbmcgd2hlcmUgeW91IG1pZ2h0IGJlIHN3ZXB0IG9mZiB0by4",
    ".",
    "AE_R_YZCChjn4791jSQCrdPZCNYqHXCTZH0-JZGYNlaAjP2kqaluUIIUnC9qvbu9Plon7KRTzoNEuT4Va2cmL1eJAQy3mtPBu_u_sDDyYjnAMDxXPn7XrT0lw-kvAD890jl8e2puQens_IEKBpHABlsbEPX6sFY8OcGDqoRuBomu9xQ2",
);

/// RFC 8037 Appendix A.1: Ed25519 private key.
const RFC8037_KEY: &str = r#"{"kty":"OKP","crv":"Ed25519",
  "d":"nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A",
  "x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}"#;
/// RFC 8037 Appendix A.4: the JWS signing input and the signature.
const RFC8037_SIGNING_INPUT: &str = "eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc";
const RFC8037_SIGNATURE: &str =
    "hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg";

#[test]
fn rfc7520_payload_encoding() {
    assert_eq!(b64::encode(RFC7520_PAYLOAD.as_bytes()), RFC7520_PAYLOAD_B64);
}

#[test]
fn rfc7520_4_1_rs256_signs_exactly() {
    let key = SigningKey::from_jwk(&jwk(RFC7520_RSA)).unwrap();
    assert_eq!(key.alg(), Algorithm::RS256);
    assert_eq!(key.kid(), "bilbo.baggins@hobbiton.example");
    let token = sign_jws(&Header::default(), RFC7520_PAYLOAD.as_bytes(), &key).unwrap();
    assert_eq!(token, RFC7520_RS256_JWS);
}

#[test]
fn rfc7520_4_1_rs256_verifies() {
    let public = VerifyingKey::from_jwk(&jwk(RFC7520_RSA)).unwrap();
    let jws = decode_jws(RFC7520_RS256_JWS).unwrap();
    assert_eq!(jws.alg(), Algorithm::RS256);
    assert_eq!(
        jws.header.kid.as_deref(),
        Some("bilbo.baggins@hobbiton.example")
    );
    assert_eq!(jws.payload, RFC7520_PAYLOAD.as_bytes());
    jws.verify(&public).unwrap();
    // Same key, other padding: the RS256 signature is no PS256 signature.
    let (input, sig) = RFC7520_RS256_JWS.rsplit_once('.').unwrap();
    let sig = b64::decode(sig).unwrap();
    assert_eq!(
        public.verify(Algorithm::PS256, input.as_bytes(), &sig),
        Err(JoseError::BadSignature)
    );
    public
        .verify(Algorithm::RS256, input.as_bytes(), &sig)
        .unwrap();
}

#[test]
fn rfc7520_4_1_private_jwk_round_trips_exactly() {
    let original = jwk(RFC7520_RSA);
    let key = SigningKey::from_jwk(&original).unwrap();
    let out = key.to_private_jwk();
    for (name, a, b) in [
        ("n", &original.n, &out.n),
        ("e", &original.e, &out.e),
        ("d", &original.d, &out.d),
        ("p", &original.p, &out.p),
        ("q", &original.q, &out.q),
        ("dp", &original.dp, &out.dp),
        ("dq", &original.dq, &out.dq),
        ("qi", &original.qi, &out.qi),
    ] {
        assert_eq!(a, b, "{name}");
    }
}

#[test]
fn rfc7520_4_3_es512_verifies() {
    let public = VerifyingKey::from_jwk(&jwk(RFC7520_EC)).unwrap();
    assert!(public.supports(Algorithm::ES512));
    let jws = decode_jws(RFC7520_ES512_JWS).unwrap();
    assert_eq!(jws.alg(), Algorithm::ES512);
    assert_eq!(jws.payload, RFC7520_PAYLOAD.as_bytes());
    jws.verify(&public).unwrap();

    // One flipped bit in the signature must fail.
    let (input, sig) = RFC7520_ES512_JWS.rsplit_once('.').unwrap();
    let mut sig = b64::decode(sig).unwrap();
    assert_eq!(sig.len(), 132, "fixed-size R || S for P-521");
    sig[10] ^= 1;
    let tampered = format!("{input}.{}", b64::encode(&sig));
    assert_eq!(
        decode_jws(&tampered).unwrap().verify(&public),
        Err(JoseError::BadSignature)
    );
}

#[test]
fn rfc7520_3_2_es512_key_signs_and_verifies() {
    let key = SigningKey::from_jwk(&jwk(RFC7520_EC)).unwrap();
    assert_eq!(key.alg(), Algorithm::ES512);
    let token = sign_jws(&Header::default(), RFC7520_PAYLOAD.as_bytes(), &key).unwrap();
    let (signing_input, _) = token.rsplit_once('.').unwrap();
    let (expected_input, _) = RFC7520_ES512_JWS.rsplit_once('.').unwrap();
    assert_eq!(signing_input, expected_input);
    let public = VerifyingKey::from_jwk(&jwk(RFC7520_EC)).unwrap();
    decode_jws(&token).unwrap().verify(&public).unwrap();
}

#[test]
fn rfc8037_a4_ed25519_signs_exactly() {
    let key = SigningKey::from_jwk(&jwk(RFC8037_KEY)).unwrap();
    assert_eq!(key.alg(), Algorithm::EdDSA);
    let sig = key.sign(RFC8037_SIGNING_INPUT.as_bytes()).unwrap();
    assert_eq!(b64::encode(&sig), RFC8037_SIGNATURE);

    // The A.4 header is {"alg":"EdDSA"} (no kid, which sign_jws would add) over the A.4 payload.
    let jws = decode_jws(&format!("{RFC8037_SIGNING_INPUT}.{RFC8037_SIGNATURE}")).unwrap();
    assert_eq!(jws.header.alg, "EdDSA");
    assert_eq!(jws.payload, b"Example of Ed25519 signing");
}

#[test]
fn rfc8037_a5_ed25519_verifies() {
    let mut public = jwk(RFC8037_KEY);
    public.d = None;
    let key = VerifyingKey::from_jwk(&public).unwrap();
    let jws = decode_jws(&format!("{RFC8037_SIGNING_INPUT}.{RFC8037_SIGNATURE}")).unwrap();
    jws.verify(&key).unwrap();
    let tampered = format!(
        "{}.{}.{RFC8037_SIGNATURE}",
        "eyJhbGciOiJFZERTQSJ9",
        b64::encode(b"Example of Ed25519 signinG")
    );
    assert_eq!(
        decode_jws(&tampered).unwrap().verify(&key),
        Err(JoseError::BadSignature)
    );
}

#[test]
fn rfc8037_a3_thumbprint() {
    let key = SigningKey::from_jwk(&jwk(RFC8037_KEY)).unwrap();
    assert_eq!(key.kid(), "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k");
    assert_eq!(
        thumbprint(&jwk(RFC8037_KEY)).unwrap(),
        "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
    );
}

#[test]
fn rfc7638_3_1_thumbprint() {
    let key = jwk(r#"{
      "kty": "RSA",
      "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
      "e": "AQAB",
      "alg": "RS256",
      "kid": "2011-04-29"
     }"#);
    assert_eq!(
        thumbprint(&key).unwrap(),
        "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
    );
    // The JWK's kid is used as is; the thumbprint is only the fallback.
    assert_eq!(
        VerifyingKey::from_jwk(&key).unwrap().kid(),
        Some("2011-04-29")
    );
}
