//! Encrypted ID tokens (OIDC Core §10.2, as Singpass sends them): for a client registered with
//! `id_token_encrypted_response_alg`/`_enc`, the signed ID token is nested in a JWE (`cty`
//! `JWT`) to the client's encryption key from its `jwks` or `jwks_uri`.

use backchannel_protocol::jose::jwe::{self, ContentEncryptionAlg, HeaderParams, KeyManagementAlg};
use backchannel_protocol::jose::{Jwk, Jwks};

use super::Domain;
use super::error::{AuthError, AuthResult};
use super::model::{Client, IdTokenEncryption};

/// The key management algorithms a client may register (OIDC Registration §2).
pub const ID_TOKEN_ENCRYPTION_ALGS: [KeyManagementAlg; 3] = [
    KeyManagementAlg::EcdhEsA256Kw,
    KeyManagementAlg::EcdhEsA128Kw,
    KeyManagementAlg::RsaOaep256,
];

/// OIDC Registration §2: the `enc` when only the `alg` was given.
pub const DEFAULT_ID_TOKEN_ENC: ContentEncryptionAlg = ContentEncryptionAlg::A128CbcHs256;

fn no_key(alg: KeyManagementAlg) -> AuthError {
    AuthError::InvalidClient(format!(
        "the client's keys have no encryption key for {alg} (a use \"enc\" key, or one without use, of a fitting type)"
    ))
}

/// The registration checks of `id_token_encrypted_response_alg`/`_enc`: a supported pair
/// (the `enc` defaulting to A128CBC-HS256), only with an `alg`, and, when the client's keys are
/// given inline, one of them fit to encrypt to.
pub fn check_registration(
    alg: Option<&str>,
    enc: Option<&str>,
    jwks: Option<&Jwks>,
    jwks_uri: Option<&str>,
) -> AuthResult<Option<IdTokenEncryption>> {
    let invalid = |m: String| AuthError::invalid_request(m);
    let Some(alg) = alg else {
        if enc.is_some() {
            return Err(invalid(
                "id_token_encrypted_response_enc needs id_token_encrypted_response_alg".into(),
            ));
        }
        return Ok(None);
    };
    let alg = KeyManagementAlg::parse(alg)
        .filter(|a| ID_TOKEN_ENCRYPTION_ALGS.contains(a))
        .ok_or_else(|| {
            invalid(format!(
                "id_token_encrypted_response_alg: unsupported algorithm {alg:?}"
            ))
        })?;
    let enc = match enc {
        None => DEFAULT_ID_TOKEN_ENC,
        Some(e) => ContentEncryptionAlg::parse(e).ok_or_else(|| {
            invalid(format!(
                "id_token_encrypted_response_enc: unsupported algorithm {e:?}"
            ))
        })?,
    };
    match (jwks, jwks_uri) {
        (Some(jwks), _) => {
            if jwe::select_recipient(jwks, alg).is_none() {
                return Err(invalid(format!(
                    "id_token_encrypted_response_alg {alg} needs a key in jwks to encrypt to \
                     (use \"enc\", or no use, of a type that fits {alg})"
                )));
            }
        }
        // Fetched when a token is minted: the client's server may not be up yet.
        (None, Some(_)) => {}
        (None, None) => {
            return Err(invalid(
                "encrypted ID tokens need the client's jwks or jwks_uri".into(),
            ));
        }
    }
    Ok(Some(IdTokenEncryption { alg, enc }))
}

impl Domain {
    /// The ID token as the client registered to receive it: the signed JWT itself, or that JWT
    /// encrypted to the client's key with `cty: "JWT"` and the recipient key's `kid`.
    pub(crate) async fn seal_id_token(
        &self,
        client: &Client,
        id_token: String,
    ) -> AuthResult<String> {
        let Some(e) = client.id_token_encryption else {
            return Ok(id_token);
        };
        let recipient = self.client_encryption_key(client, e.alg).await?;
        let params = HeaderParams {
            kid: recipient.kid.clone(),
            cty: Some("JWT".into()),
            ..HeaderParams::default()
        };
        jwe::encrypt(id_token.as_bytes(), &recipient, e.alg, e.enc, &params)
            .map_err(|e| AuthError::InvalidClient(format!("cannot encrypt the ID token: {e}")))
    }

    /// The client's key to encrypt to with `alg`: from its `jwks`, or from its `jwks_uri`
    /// through the guarded, caching fetcher (refreshed once when no key fits).
    async fn client_encryption_key(
        &self,
        client: &Client,
        alg: KeyManagementAlg,
    ) -> AuthResult<Jwk> {
        if let Some(jwks) = &client.jwks {
            return jwe::select_recipient(jwks, alg)
                .cloned()
                .ok_or_else(|| no_key(alg));
        }
        let uri = client.jwks_uri.as_deref().ok_or_else(|| no_key(alg))?;
        let fetch_failed = |e: crate::outbound::OutboundError| {
            AuthError::InvalidClient(format!("cannot fetch the client's jwks_uri: {e}"))
        };
        let jwks = self
            .jwks_fetcher
            .fetch(uri, false)
            .await
            .map_err(fetch_failed)?;
        if let Some(key) = jwe::select_recipient(&jwks, alg) {
            return Ok(key.clone());
        }
        let fresh = self
            .jwks_fetcher
            .fetch(uri, true)
            .await
            .map_err(fetch_failed)?;
        jwe::select_recipient(&fresh, alg)
            .cloned()
            .ok_or_else(|| no_key(alg))
    }
}

#[cfg(test)]
mod tests {
    use backchannel_protocol::jose::jwe::{DecryptingKey, EncryptionKeyType};

    use super::*;

    fn jwks(keys: Vec<Jwk>) -> Jwks {
        Jwks { keys }
    }

    #[test]
    fn registration_defaults_enc_and_needs_a_fitting_key() {
        let ec = DecryptingKey::generate(EncryptionKeyType::P256).unwrap();
        let keys = jwks(vec![ec.public_jwk()]);
        let got = check_registration(Some("ECDH-ES+A256KW"), None, Some(&keys), None).unwrap();
        assert_eq!(
            got,
            Some(IdTokenEncryption {
                alg: KeyManagementAlg::EcdhEsA256Kw,
                enc: ContentEncryptionAlg::A128CbcHs256
            })
        );
        let got =
            check_registration(Some("ECDH-ES+A128KW"), Some("A256GCM"), Some(&keys), None).unwrap();
        assert_eq!(got.map(|e| e.enc), Some(ContentEncryptionAlg::A256Gcm));
        assert_eq!(check_registration(None, None, Some(&keys), None), Ok(None));
        let refused = [
            check_registration(Some("RSA-OAEP-256"), None, Some(&keys), None),
            check_registration(Some("ECDH-ES"), None, Some(&keys), None),
            check_registration(Some("RSA1_5"), None, Some(&keys), None),
            check_registration(Some("ECDH-ES+A256KW"), Some("A192GCM"), Some(&keys), None),
            check_registration(None, Some("A256GCM"), Some(&keys), None),
            check_registration(Some("ECDH-ES+A256KW"), None, None, None),
            check_registration(
                Some("ECDH-ES+A256KW"),
                None,
                Some(&jwks(vec![Jwk {
                    use_: Some("sig".into()),
                    ..ec.public_jwk()
                }])),
                None,
            ),
        ];
        for (i, r) in refused.into_iter().enumerate() {
            assert_eq!(r.map_err(|e| e.code()), Err("invalid_request"), "#{i}");
        }
        // A jwks_uri is fetched when a token is minted.
        assert!(
            check_registration(
                Some("RSA-OAEP-256"),
                None,
                None,
                Some("https://rp.example/jwks")
            )
            .unwrap()
            .is_some()
        );
    }
}
