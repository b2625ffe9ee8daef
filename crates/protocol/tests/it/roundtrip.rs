//! Key round trips for every algorithm: generate → private JWK → from_jwk → sign → verify,
//! public JWK hygiene, tampering, algorithm/key mismatches and JWKS candidate selection.

use backchannel_protocol::jose::{
    Algorithm, Header, JoseError, Jwk, Jwks, SigningKey, VerifyingKey, b64, decode_jws, sign_jws,
    sign_jwt, thumbprint,
};
use serde_json::json;

fn generated() -> Vec<SigningKey> {
    Algorithm::ALL
        .into_iter()
        .map(|alg| SigningKey::generate(alg).unwrap())
        .collect()
}

#[test]
fn generate_private_jwk_from_jwk_sign_verify() {
    for key in generated() {
        let alg = key.alg();
        let private = key.to_private_jwk();
        assert!(private.has_private_members(), "{alg:?}");
        assert_eq!(private.kid.as_deref(), Some(key.kid()));
        assert_eq!(private.alg.as_deref(), Some(alg.as_str()));

        // Through JSON, as a key would travel to storage and back.
        let stored = serde_json::to_string(&private).unwrap();
        let reloaded = SigningKey::from_jwk(&serde_json::from_str(&stored).unwrap()).unwrap();
        assert_eq!(reloaded.alg(), alg);
        assert_eq!(reloaded.kid(), key.kid());
        assert_eq!(reloaded.to_private_jwk(), private);
        assert_eq!(reloaded.public_jwk(), key.public_jwk());

        let token = sign_jwt(&reloaded, Some("JWT"), &json!({"sub": "alice"})).unwrap();
        let jws = decode_jws(&token).unwrap();
        assert_eq!(jws.alg(), alg);
        jws.verify(&VerifyingKey::from_jwk(&key.public_jwk()).unwrap())
            .unwrap();
        jws.verify(&key.verifying_key()).unwrap();
        assert_eq!(
            jws.claims::<serde_json::Value>().unwrap(),
            json!({"sub": "alice"})
        );
        assert_eq!(jws.header.typ.as_deref(), Some("JWT"));
    }
}

#[test]
fn generated_kid_is_the_thumbprint_and_keys_are_fresh() {
    for alg in Algorithm::ALL {
        let a = SigningKey::generate(alg).unwrap();
        let b = SigningKey::generate(alg).unwrap();
        assert_eq!(a.kid(), thumbprint(&a.public_jwk()).unwrap());
        assert_ne!(a.kid(), b.kid(), "{alg:?}");
    }
}

#[test]
fn signature_sizes_follow_rfc7518() {
    for (alg, len) in [
        (Algorithm::ES256, 64),
        (Algorithm::ES384, 96),
        (Algorithm::ES512, 132),
        (Algorithm::PS256, 256),
        (Algorithm::RS256, 256),
        (Algorithm::EdDSA, 64),
    ] {
        let key = SigningKey::generate(alg).unwrap();
        assert_eq!(key.sign(b"m").unwrap().len(), len, "{alg:?}");
    }
}

#[test]
fn public_jwk_has_no_private_members() {
    for key in generated() {
        let public = key.public_jwk();
        assert!(!public.has_private_members());
        let value = serde_json::to_value(&public).unwrap();
        for private in ["d", "p", "q", "dp", "dq", "qi", "oth", "k"] {
            assert!(value.get(private).is_none(), "{:?} {private}", key.alg());
        }
        assert_eq!(public.use_.as_deref(), Some("sig"));
        assert_eq!(public.kid.as_deref(), Some(key.kid()));
        assert_eq!(public.alg.as_deref(), Some(key.alg().as_str()));
        // A public JWK is not a signing key.
        assert!(matches!(
            SigningKey::from_jwk(&public),
            Err(JoseError::InvalidKey(_))
        ));
    }
}

#[test]
fn tampering_fails() {
    for key in generated() {
        let token = sign_jws(&Header::default(), b"{\"amount\":100}", &key).unwrap();
        let public = key.verifying_key();
        let (header, rest) = token.split_once('.').unwrap();
        let (_, sig) = rest.split_once('.').unwrap();

        let payload = format!("{header}.{}.{sig}", b64::encode(b"{\"amount\":900}"));
        assert_eq!(
            decode_jws(&payload).unwrap().verify(&public),
            Err(JoseError::BadSignature),
            "{:?}",
            key.alg()
        );

        let mut bytes = b64::decode(sig).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0x01;
        let flipped = format!(
            "{header}.{}.{}",
            b64::encode(b"{\"amount\":100}"),
            b64::encode(&bytes)
        );
        assert_eq!(
            decode_jws(&flipped).unwrap().verify(&public),
            Err(JoseError::BadSignature)
        );

        let truncated = format!(
            "{header}.{}.{}",
            b64::encode(b"{\"amount\":100}"),
            b64::encode(&bytes[..last])
        );
        assert_eq!(
            decode_jws(&truncated).unwrap().verify(&public),
            Err(JoseError::BadSignature)
        );

        let empty = format!("{header}.{}.", b64::encode(b"{\"amount\":100}"));
        assert_eq!(
            decode_jws(&empty).unwrap().verify(&public),
            Err(JoseError::BadSignature)
        );
    }
}

#[test]
fn wrong_alg_for_key_is_key_mismatch() {
    let keys = generated();
    for key in &keys {
        let public = key.verifying_key();
        let sig = key.sign(b"m").unwrap();
        for alg in Algorithm::ALL {
            let rsa_pair = matches!(key.alg(), Algorithm::PS256 | Algorithm::RS256)
                && matches!(alg, Algorithm::PS256 | Algorithm::RS256);
            if alg == key.alg() || rsa_pair {
                continue;
            }
            assert!(!public.supports(alg));
            assert_eq!(
                public.verify(alg, b"m", &sig),
                Err(JoseError::KeyMismatch),
                "{:?} key, {alg:?}",
                key.alg()
            );
        }
    }
}

#[test]
fn declared_jwk_alg_restricts_the_key() {
    let key = SigningKey::generate(Algorithm::RS256).unwrap();
    let declared = key.verifying_key();
    assert_eq!(declared.jwk_alg(), Some("RS256"));
    assert!(declared.supports(Algorithm::RS256));
    assert!(!declared.supports(Algorithm::PS256));

    let mut undeclared = key.public_jwk();
    undeclared.alg = None;
    let undeclared = VerifyingKey::from_jwk(&undeclared).unwrap();
    assert!(undeclared.supports(Algorithm::RS256));
    assert!(undeclared.supports(Algorithm::PS256));

    let mut foreign = key.public_jwk();
    foreign.alg = Some("RSA-OAEP".into());
    let foreign = VerifyingKey::from_jwk(&foreign).unwrap();
    assert!(Algorithm::ALL.into_iter().all(|a| !foreign.supports(a)));
}

#[test]
fn signing_key_alg_must_fit_the_key() {
    let ec = SigningKey::generate(Algorithm::ES256).unwrap();
    let mut jwk = ec.to_private_jwk();
    jwk.alg = Some("ES384".into());
    assert_eq!(
        SigningKey::from_jwk(&jwk).unwrap_err(),
        JoseError::KeyMismatch
    );
    jwk.alg = Some("RS256".into());
    assert_eq!(
        SigningKey::from_jwk(&jwk).unwrap_err(),
        JoseError::KeyMismatch
    );
    jwk.alg = Some("none".into());
    assert!(matches!(
        SigningKey::from_jwk(&jwk),
        Err(JoseError::UnsupportedAlgorithm(_))
    ));
    jwk.alg = None;
    jwk.kid = None;
    let inferred = SigningKey::from_jwk(&jwk).unwrap();
    assert_eq!(inferred.alg(), Algorithm::ES256);
    assert_eq!(inferred.kid(), ec.kid(), "kid falls back to the thumbprint");

    let mut rsa = SigningKey::generate(Algorithm::PS256)
        .unwrap()
        .to_private_jwk();
    rsa.alg = None;
    assert_eq!(SigningKey::from_jwk(&rsa).unwrap().alg(), Algorithm::RS256);
    let mut ed = SigningKey::generate(Algorithm::EdDSA)
        .unwrap()
        .to_private_jwk();
    ed.alg = None;
    assert_eq!(SigningKey::from_jwk(&ed).unwrap().alg(), Algorithm::EdDSA);
    ed.use_ = Some("enc".into());
    assert!(SigningKey::from_jwk(&ed).is_err());
}

#[test]
fn inconsistent_private_keys_are_refused() {
    for alg in Algorithm::ALL {
        let a = SigningKey::generate(alg).unwrap().to_private_jwk();
        let b = SigningKey::generate(alg).unwrap().to_private_jwk();
        let mixed = Jwk {
            d: b.d.clone(),
            ..a.clone()
        };
        assert!(
            matches!(SigningKey::from_jwk(&mixed), Err(JoseError::InvalidKey(_))),
            "{alg:?}"
        );
    }
    // RSA without its CRT members.
    let mut rsa = SigningKey::generate(Algorithm::RS256)
        .unwrap()
        .to_private_jwk();
    rsa.qi = None;
    assert!(matches!(
        SigningKey::from_jwk(&rsa),
        Err(JoseError::InvalidKey(_))
    ));
}

#[test]
fn verifying_key_validates_members() {
    let ec = SigningKey::generate(Algorithm::ES256).unwrap().public_jwk();
    let ed = SigningKey::generate(Algorithm::EdDSA).unwrap().public_jwk();
    let rsa = SigningKey::generate(Algorithm::RS256).unwrap().public_jwk();
    let bad = [
        Jwk {
            kty: "oct".into(),
            ..ec.clone()
        },
        Jwk {
            crv: Some("P-256K".into()),
            ..ec.clone()
        },
        Jwk {
            crv: Some("P-384".into()),
            ..ec.clone()
        },
        Jwk {
            x: None,
            ..ec.clone()
        },
        Jwk {
            x: Some(b64::encode(&[1; 31])),
            ..ec.clone()
        },
        Jwk {
            y: Some(b64::encode(&[1; 32])),
            ..ec.clone()
        }, // not on the curve
        Jwk {
            x: Some("AQAB=".into()),
            ..ec.clone()
        },
        Jwk {
            crv: Some("Ed448".into()),
            ..ed.clone()
        },
        Jwk {
            crv: Some("X25519".into()),
            ..ed.clone()
        },
        Jwk {
            x: Some(b64::encode(&[1; 33])),
            ..ed.clone()
        },
        Jwk {
            n: None,
            ..rsa.clone()
        },
        Jwk {
            e: Some(String::new()),
            ..rsa.clone()
        },
        // 1024-bit modulus: below RFC 7518 §3.3's minimum.
        Jwk {
            n: Some(b64::encode(&[0xc5; 128])),
            ..rsa.clone()
        },
        Jwk {
            n: Some(b64::encode(&[0xc5; 255])),
            ..rsa.clone()
        },
    ];
    for jwk in bad {
        assert!(
            matches!(VerifyingKey::from_jwk(&jwk), Err(JoseError::InvalidKey(_))),
            "accepted {jwk:?}"
        );
    }
    // A leading zero octet on n (RFC 7518 §6.3.1.1 notes some producers add one) is tolerated.
    let mut padded = rsa.clone();
    let mut n = b64::decode(padded.n.as_deref().unwrap()).unwrap();
    n.insert(0, 0);
    padded.n = Some(b64::encode(&n));
    assert!(VerifyingKey::from_jwk(&padded).is_ok());
    // Private members are ignored by VerifyingKey.
    let private = SigningKey::generate(Algorithm::ES256).unwrap();
    let from_private = VerifyingKey::from_jwk(&private.to_private_jwk()).unwrap();
    let token = sign_jwt(&private, None, &json!({})).unwrap();
    decode_jws(&token).unwrap().verify(&from_private).unwrap();
}

#[test]
fn jwks_candidates_filter_by_kid_alg_and_use() {
    let es = SigningKey::generate(Algorithm::ES256).unwrap();
    let es2 = SigningKey::generate(Algorithm::ES256).unwrap();
    let rsa = SigningKey::generate(Algorithm::RS256).unwrap();
    let mut enc = SigningKey::generate(Algorithm::ES256).unwrap().public_jwk();
    enc.use_ = Some("enc".into());
    let mut no_use = es2.public_jwk();
    no_use.use_ = None;
    let garbage = Jwk {
        kty: "EC".into(),
        kid: Some(es.kid().into()),
        crv: Some("P-256".into()),
        x: Some("!!".into()),
        ..Jwk::default()
    };
    let jwks = Jwks {
        keys: vec![
            garbage,
            es.public_jwk(),
            no_use,
            rsa.public_jwk(),
            enc.clone(),
        ],
    };

    let kids = |keys: Vec<VerifyingKey>| -> Vec<String> {
        keys.iter().map(|k| k.kid().unwrap().to_owned()).collect()
    };
    assert_eq!(
        kids(jwks.candidates(None, Algorithm::ES256)),
        vec![es.kid().to_owned(), es2.kid().to_owned()]
    );
    assert_eq!(
        kids(jwks.candidates(Some(es.kid()), Algorithm::ES256)),
        vec![es.kid().to_owned()]
    );
    assert!(jwks.candidates(Some(es.kid()), Algorithm::RS256).is_empty());
    assert!(
        jwks.candidates(Some(rsa.kid()), Algorithm::PS256)
            .is_empty()
    );
    assert_eq!(
        kids(jwks.candidates(Some(rsa.kid()), Algorithm::RS256)),
        vec![rsa.kid().to_owned()]
    );
    assert!(
        jwks.candidates(enc.kid.as_deref(), Algorithm::ES256)
            .is_empty()
    );
    assert!(
        jwks.candidates(Some("unknown"), Algorithm::ES256)
            .is_empty()
    );

    // The usual flow: decode, select by kid and alg, verify against the candidates.
    let token = sign_jwt(&es2, None, &json!({"ok": true})).unwrap();
    let jws = decode_jws(&token).unwrap();
    let candidates = jwks.candidates(jws.header.kid.as_deref(), jws.alg());
    assert_eq!(candidates.len(), 1);
    jws.verify_any(&candidates).unwrap();
    jws.verify_any(&jwks.candidates(None, jws.alg())).unwrap();
    assert_eq!(
        jws.verify_any(&jwks.candidates(Some(es.kid()), jws.alg())),
        Err(JoseError::BadSignature)
    );
}
