//! Signing and verifying keys: generation, import from and export to JWK, signing, and
//! verification with JWKS key selection. aws-lc-rs holds every key and does every signature;
//! this module maps JWK members onto its constructors.

use std::fmt;
use std::sync::Arc;

use aws_lc_rs::encoding::AsBigEndian;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeySize, PublicKeyComponents};
use aws_lc_rs::signature::{
    self as sig, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _, ParsedPublicKey, RsaKeyPair,
};

use super::jwk::{
    Curve, ED25519, ED25519_LEN, check_rsa_bits, curve_by_alg, curve_by_crv, fixed_member, invalid,
    rsa_key_pair, sec1_point, signing_alg_for, thumbprint, uint_member,
};
use super::{Algorithm, JoseError, Jwk, Jwks, b64, der, pem};

enum PrivateKey {
    Ec(EcdsaKeyPair),
    Rsa(RsaKeyPair),
    Ed25519(Ed25519KeyPair),
}

struct SigningInner {
    alg: Algorithm,
    kid: String,
    key: PrivateKey,
    private_jwk: Jwk,
    public_jwk: Jwk,
    verifying: VerifyingKey,
}

/// A private signing key with its algorithm and `kid`. Cheap to clone (shared inside).
#[derive(Clone)]
pub struct SigningKey {
    inner: Arc<SigningInner>,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the private members.
        f.debug_struct("SigningKey")
            .field("alg", &self.inner.alg)
            .field("kid", &self.inner.kid)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// Generates a fresh key for `alg`: P-256/P-384/P-521, RSA 2048 or Ed25519. The `kid` is
    /// the RFC 7638 thumbprint of the public key.
    pub fn generate(alg: Algorithm) -> Result<Self, JoseError> {
        let (key, jwk) = match alg {
            Algorithm::ES256 | Algorithm::ES384 | Algorithm::ES512 => {
                let curve = curve_by_alg(alg).ok_or(JoseError::Crypto)?;
                let pair = EcdsaKeyPair::generate(curve.signing).map_err(|_| JoseError::Crypto)?;
                let jwk = ec_private_jwk(curve, &pair)?;
                (PrivateKey::Ec(pair), jwk)
            }
            Algorithm::PS256 | Algorithm::RS256 => {
                let pair = RsaKeyPair::generate(KeySize::Rsa2048).map_err(|_| JoseError::Crypto)?;
                let jwk = rsa_private_jwk(&pair)?;
                (PrivateKey::Rsa(pair), jwk)
            }
            Algorithm::EdDSA => {
                let pair = Ed25519KeyPair::generate().map_err(|_| JoseError::Crypto)?;
                let jwk = ed25519_private_jwk(&pair)?;
                (PrivateKey::Ed25519(pair), jwk)
            }
        };
        Self::assemble(alg, None, key, jwk)
    }

    /// Loads a private JWK. The algorithm is the JWK's `alg`, else inferred from the key
    /// (EC by curve, Ed25519 → EdDSA, RSA → RS256); the `kid` is the JWK's, else its
    /// thumbprint. RSA keys must carry all CRT members (`p`, `q`, `dp`, `dq`, `qi`).
    pub fn from_jwk(jwk: &Jwk) -> Result<Self, JoseError> {
        if jwk.use_.as_deref().is_some_and(|u| u != "sig") {
            return Err(invalid("key is not for signing"));
        }
        let alg = signing_alg_for(jwk)?;
        let (key, normalised) = match jwk.kty.as_str() {
            "EC" => {
                let curve = curve_by_crv(jwk.crv.as_deref().unwrap_or_default())?;
                let x = fixed_member(&jwk.x, "x", curve.len)?;
                let y = fixed_member(&jwk.y, "y", curve.len)?;
                let d = fixed_member(&jwk.d, "d", curve.len)?;
                let pair = EcdsaKeyPair::from_private_key_and_public_key(
                    curve.signing,
                    &d,
                    &sec1_point(&x, &y),
                )
                .map_err(|_| invalid("EC private key does not match its public key"))?;
                let jwk = ec_private_jwk(curve, &pair)?;
                (PrivateKey::Ec(pair), jwk)
            }
            "RSA" => {
                let pair = rsa_key_pair(jwk)?;
                let jwk = rsa_private_jwk(&pair)?;
                (PrivateKey::Rsa(pair), jwk)
            }
            _ => {
                // signing_alg_for admitted only EC, RSA and OKP Ed25519.
                let x = fixed_member(&jwk.x, "x", ED25519_LEN)?;
                let d = fixed_member(&jwk.d, "d", ED25519_LEN)?;
                let pair = Ed25519KeyPair::from_seed_and_public_key(&d, &x)
                    .map_err(|_| invalid("Ed25519 private key does not match its public key"))?;
                let jwk = ed25519_private_jwk(&pair)?;
                (PrivateKey::Ed25519(pair), jwk)
            }
        };
        Self::assemble(alg, jwk.kid.clone(), key, normalised)
    }

    /// Loads a private key from DER, as key files ship it (RFC 7468 PEM with the armour taken
    /// off): PKCS#8 (`PRIVATE KEY`, v1 or v2) for every algorithm, SEC1 (`EC PRIVATE KEY`,
    /// RFC 5915) too for EC keys, PKCS#1 (`RSA PRIVATE KEY`, RFC 8017) too for RSA keys. `alg` says what the key signs with and must fit it (ES256 a
    /// P-256 key, RS256/PS256 RSA of 2048 to 8192 bits, EdDSA Ed25519); the `kid` is `kid`, else
    /// the thumbprint. Apple's `.p8` keys, VAPID keys and Google service-account keys load here.
    pub fn from_der(alg: Algorithm, der: &[u8], kid: Option<&str>) -> Result<Self, JoseError> {
        let (key, jwk) = match alg {
            Algorithm::ES256 | Algorithm::ES384 | Algorithm::ES512 => {
                let curve = curve_by_alg(alg).ok_or(JoseError::Crypto)?;
                let pair =
                    EcdsaKeyPair::from_private_key_der(curve.signing, der).map_err(|_| {
                        invalid(&format!("not a {} private key (PKCS#8 or SEC1)", curve.crv))
                    })?;
                let jwk = ec_private_jwk(curve, &pair)?;
                (PrivateKey::Ec(pair), jwk)
            }
            Algorithm::PS256 | Algorithm::RS256 => {
                let pair = RsaKeyPair::from_pkcs8(der)
                    .or_else(|_| RsaKeyPair::from_der(der))
                    .map_err(|_| invalid("not an RSA private key (PKCS#8 or PKCS#1)"))?;
                let jwk = rsa_private_jwk(&pair)?;
                check_rsa_bits(&uint_member(&jwk.n, "n")?)?;
                (PrivateKey::Rsa(pair), jwk)
            }
            Algorithm::EdDSA => {
                let pair = Ed25519KeyPair::from_pkcs8(der)
                    .map_err(|_| invalid("not an Ed25519 private key in PKCS#8"))?;
                let jwk = ed25519_private_jwk(&pair)?;
                (PrivateKey::Ed25519(pair), jwk)
            }
        };
        Self::assemble(alg, kid.map(str::to_owned), key, jwk)
    }

    /// Loads a private key from a PEM file (RFC 7468): PKCS#8 (`PRIVATE KEY`), SEC1
    /// (`EC PRIVATE KEY`) or PKCS#1 (`RSA PRIVATE KEY`). With `alg`, the key must fit it (as
    /// [`SigningKey::from_der`]); without, it is inferred from the key: EC by curve
    /// (ES256/ES384/ES512), RSA as RS256 (name PS256 to sign with PSS), Ed25519 as EdDSA. The
    /// `kid` is `kid`, else the RFC 7638 thumbprint, which is what a JWKS made from the same key
    /// by most tools carries.
    ///
    /// ```
    /// use backchannel_protocol::jose::{Algorithm, SigningKey, pem};
    /// # let generated = SigningKey::generate(Algorithm::ES256).unwrap();
    /// # let pem_text = pem::encode(pem::LABEL_PKCS8, &generated.to_pkcs8_der().unwrap());
    /// let key = SigningKey::from_pem(&pem_text, None, Some("rp-2025")).unwrap();
    /// assert_eq!(key.alg(), Algorithm::ES256);
    /// assert_eq!(key.kid(), "rp-2025");
    /// ```
    pub fn from_pem(
        text: &str,
        alg: Option<Algorithm>,
        kid: Option<&str>,
    ) -> Result<Self, JoseError> {
        let block =
            pem::decode_first(text, &[pem::LABEL_PKCS8, pem::LABEL_SEC1, pem::LABEL_PKCS1])?;
        if let Some(alg) = alg {
            return Self::from_der(alg, &block.der, kid);
        }
        let candidates: &[Algorithm] = match block.label.as_str() {
            pem::LABEL_PKCS1 => &[Algorithm::RS256],
            pem::LABEL_SEC1 => &[Algorithm::ES256, Algorithm::ES384, Algorithm::ES512],
            _ => &[
                Algorithm::ES256,
                Algorithm::ES384,
                Algorithm::ES512,
                Algorithm::RS256,
                Algorithm::EdDSA,
            ],
        };
        candidates
            .iter()
            .find_map(|&alg| Self::from_der(alg, &block.der, kid).ok())
            .ok_or_else(|| {
                invalid(&format!(
                    "the {} block is not an EC (P-256/384/521), RSA (2048-8192 bits) or Ed25519 key",
                    block.label
                ))
            })
    }

    /// The private key as PKCS#8 DER (v1), for writing a PEM key file. Handle as a secret.
    pub fn to_pkcs8_der(&self) -> Result<Vec<u8>, JoseError> {
        use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der};
        match &self.inner.key {
            PrivateKey::Ec(pair) => pair
                .to_pkcs8v1()
                .map(|d| d.as_ref().to_vec())
                .map_err(|_| JoseError::Crypto),
            PrivateKey::Rsa(pair) => {
                let der: Pkcs8V1Der<'static> = pair.as_der().map_err(|_| JoseError::Crypto)?;
                Ok(der.as_ref().to_vec())
            }
            PrivateKey::Ed25519(pair) => pair
                .to_pkcs8v1()
                .map(|d| d.as_ref().to_vec())
                .map_err(|_| JoseError::Crypto),
        }
    }

    fn assemble(
        alg: Algorithm,
        kid: Option<String>,
        key: PrivateKey,
        mut private_jwk: Jwk,
    ) -> Result<Self, JoseError> {
        let kid = match kid {
            Some(kid) => kid,
            None => thumbprint(&private_jwk)?,
        };
        private_jwk.kid = Some(kid.clone());
        private_jwk.alg = Some(alg.as_str().to_owned());
        private_jwk.use_ = Some("sig".to_owned());
        let public_jwk = Jwk {
            d: None,
            p: None,
            q: None,
            dp: None,
            dq: None,
            qi: None,
            ..private_jwk.clone()
        };
        let verifying = VerifyingKey::from_jwk(&public_jwk)?;
        Ok(Self {
            inner: Arc::new(SigningInner {
                alg,
                kid,
                key,
                private_jwk,
                public_jwk,
                verifying,
            }),
        })
    }

    pub fn alg(&self) -> Algorithm {
        self.inner.alg
    }

    pub fn kid(&self) -> &str {
        &self.inner.kid
    }

    /// The private JWK (with `kid`, `alg`, `use`), which [`SigningKey::from_jwk`] reads back
    /// into the same key. Handle as a secret.
    pub fn to_private_jwk(&self) -> Jwk {
        self.inner.private_jwk.clone()
    }

    /// The public JWK to publish: `kid`, `alg`, `use: "sig"`, no private members.
    pub fn public_jwk(&self) -> Jwk {
        self.inner.public_jwk.clone()
    }

    /// The matching public key.
    pub fn verifying_key(&self) -> VerifyingKey {
        self.inner.verifying.clone()
    }

    /// The JWS signature over `msg` (RFC 7515 §5.1). ECDSA signatures are the fixed-size
    /// `R || S` of RFC 7518 §3.4, not DER.
    pub fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, JoseError> {
        let rng = SystemRandom::new();
        match &self.inner.key {
            PrivateKey::Ec(pair) => pair
                .sign(&rng, msg)
                .map(|s| s.as_ref().to_vec())
                .map_err(|_| JoseError::Crypto),
            PrivateKey::Rsa(pair) => {
                let padding: &'static dyn sig::RsaEncoding = match self.inner.alg {
                    Algorithm::PS256 => &sig::RSA_PSS_SHA256,
                    _ => &sig::RSA_PKCS1_SHA256,
                };
                let mut out = vec![0u8; pair.public_modulus_len()];
                pair.sign(padding, &rng, msg, &mut out)
                    .map_err(|_| JoseError::Crypto)?;
                Ok(out)
            }
            PrivateKey::Ed25519(pair) => pair
                .try_sign(msg)
                .map(|s| s.as_ref().to_vec())
                .map_err(|_| JoseError::Crypto),
        }
    }
}

fn ec_private_jwk(curve: &Curve, pair: &EcdsaKeyPair) -> Result<Jwk, JoseError> {
    let point = pair.public_key().as_ref();
    // Uncompressed SEC1: 0x04 || x || y.
    if point.len() != 1 + 2 * curve.len {
        return Err(JoseError::Crypto);
    }
    let d = pair
        .private_key()
        .as_be_bytes()
        .map_err(|_| JoseError::Crypto)?;
    Ok(Jwk {
        kty: "EC".to_owned(),
        crv: Some(curve.crv.to_owned()),
        x: Some(b64::encode(&point[1..=curve.len])),
        y: Some(b64::encode(&point[1 + curve.len..])),
        d: Some(b64::encode(d.as_ref())),
        ..Jwk::default()
    })
}

pub(super) fn rsa_private_jwk(pair: &RsaKeyPair) -> Result<Jwk, JoseError> {
    use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der};
    let pkcs8: Pkcs8V1Der<'static> = pair.as_der().map_err(|_| JoseError::Crypto)?;
    let parts = der::rsa_parts_from_pkcs8(pkcs8.as_ref())?;
    Ok(Jwk {
        kty: "RSA".to_owned(),
        n: Some(b64::encode(&parts.n)),
        e: Some(b64::encode(&parts.e)),
        d: Some(b64::encode(&parts.d)),
        p: Some(b64::encode(&parts.p)),
        q: Some(b64::encode(&parts.q)),
        dp: Some(b64::encode(&parts.dp)),
        dq: Some(b64::encode(&parts.dq)),
        qi: Some(b64::encode(&parts.qi)),
        ..Jwk::default()
    })
}

fn ed25519_private_jwk(pair: &Ed25519KeyPair) -> Result<Jwk, JoseError> {
    let seed = pair
        .seed()
        .and_then(|s| s.as_be_bytes())
        .map_err(|_| JoseError::Crypto)?;
    Ok(Jwk {
        kty: "OKP".to_owned(),
        crv: Some(ED25519.to_owned()),
        x: Some(b64::encode(pair.public_key().as_ref())),
        d: Some(b64::encode(seed.as_ref())),
        ..Jwk::default()
    })
}

#[derive(Clone)]
enum PublicKey {
    Ec(&'static Curve, ParsedPublicKey),
    Rsa {
        pkcs1: ParsedPublicKey,
        pss: ParsedPublicKey,
    },
    Ed25519(ParsedPublicKey),
}

/// A public key read from a JWK, for verifying JWS signatures.
#[derive(Clone)]
pub struct VerifyingKey {
    kid: Option<String>,
    jwk_alg: Option<String>,
    key: Arc<PublicKey>,
}

impl fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kty = match &*self.key {
            PublicKey::Ec(curve, _) => curve.crv,
            PublicKey::Rsa { .. } => "RSA",
            PublicKey::Ed25519(_) => ED25519,
        };
        f.debug_struct("VerifyingKey")
            .field("kty", &kty)
            .field("kid", &self.kid)
            .field("alg", &self.jwk_alg)
            .finish()
    }
}

impl VerifyingKey {
    /// Reads the public members of a JWK (private members, if any, are ignored), checking the
    /// key type, curve and lengths. RSA moduli must be 2048 to 8192 bits.
    pub fn from_jwk(jwk: &Jwk) -> Result<Self, JoseError> {
        let key = match jwk.kty.as_str() {
            "EC" => {
                let curve = curve_by_crv(jwk.crv.as_deref().unwrap_or_default())?;
                let x = fixed_member(&jwk.x, "x", curve.len)?;
                let y = fixed_member(&jwk.y, "y", curve.len)?;
                let parsed = ParsedPublicKey::new(curve.verification, sec1_point(&x, &y))
                    .map_err(|_| invalid("EC point is not on the curve"))?;
                PublicKey::Ec(curve, parsed)
            }
            "RSA" => {
                let components = PublicKeyComponents {
                    n: uint_member(&jwk.n, "n")?,
                    e: uint_member(&jwk.e, "e")?,
                };
                check_rsa_bits(&components.n)?;
                let rejected = |_| invalid("invalid RSA public key");
                PublicKey::Rsa {
                    pkcs1: components
                        .to_parsed_public_key(&sig::RSA_PKCS1_2048_8192_SHA256)
                        .map_err(rejected)?,
                    pss: components
                        .to_parsed_public_key(&sig::RSA_PSS_2048_8192_SHA256)
                        .map_err(rejected)?,
                }
            }
            "OKP" => {
                if jwk.crv.as_deref() != Some(ED25519) {
                    return Err(invalid("unsupported OKP curve"));
                }
                let x = fixed_member(&jwk.x, "x", ED25519_LEN)?;
                let parsed = ParsedPublicKey::new(&sig::ED25519, x)
                    .map_err(|_| invalid("invalid Ed25519 public key"))?;
                PublicKey::Ed25519(parsed)
            }
            _ => return Err(invalid("unsupported key type")),
        };
        Ok(Self {
            kid: jwk.kid.clone(),
            jwk_alg: jwk.alg.clone(),
            key: Arc::new(key),
        })
    }

    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    /// The `alg` the JWK declared, if any.
    pub fn jwk_alg(&self) -> Option<&str> {
        self.jwk_alg.as_deref()
    }

    /// Whether this key can verify `alg`: by key type and curve, and, when the JWK declared an
    /// `alg` (RFC 7517 §4.4), only that one.
    pub fn supports(&self, alg: Algorithm) -> bool {
        let by_type = match &*self.key {
            PublicKey::Ec(curve, _) => curve.alg == alg,
            PublicKey::Rsa { .. } => matches!(alg, Algorithm::PS256 | Algorithm::RS256),
            PublicKey::Ed25519(_) => alg == Algorithm::EdDSA,
        };
        by_type && self.jwk_alg.as_deref().is_none_or(|a| a == alg.as_str())
    }

    /// Verifies a JWS signature made with `alg`. `KeyMismatch` if this key cannot be used
    /// with `alg`, `BadSignature` if the signature does not verify.
    pub fn verify(&self, alg: Algorithm, msg: &[u8], sig: &[u8]) -> Result<(), JoseError> {
        if !self.supports(alg) {
            return Err(JoseError::KeyMismatch);
        }
        let parsed = match (&*self.key, alg) {
            (PublicKey::Ec(_, key), _) | (PublicKey::Ed25519(key), _) => key,
            (PublicKey::Rsa { pss, .. }, Algorithm::PS256) => pss,
            (PublicKey::Rsa { pkcs1, .. }, _) => pkcs1,
        };
        parsed
            .verify_sig(msg, sig)
            .map_err(|_| JoseError::BadSignature)
    }
}

impl Jwks {
    /// The keys that may have signed a JWS with this `kid` (when given) and `alg`: keys whose
    /// `use` is other than `sig` and keys that do not parse are skipped.
    pub fn candidates(&self, kid: Option<&str>, alg: Algorithm) -> Vec<VerifyingKey> {
        self.keys
            .iter()
            .filter(|jwk| jwk.use_.as_deref().is_none_or(|u| u == "sig"))
            .filter(|jwk| kid.is_none_or(|kid| jwk.kid.as_deref() == Some(kid)))
            .filter_map(|jwk| VerifyingKey::from_jwk(jwk).ok())
            .filter(|key| key.supports(alg))
            .collect()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn pem_keys_load_in_every_format_and_infer_their_algorithm() {
        use aws_lc_rs::encoding::AsDer;
        for alg in Algorithm::ALL {
            let key = SigningKey::generate(alg).unwrap();
            let pkcs8 = key.to_pkcs8_der().unwrap();
            let text = pem::encode(pem::LABEL_PKCS8, &pkcs8);
            let inferred = SigningKey::from_pem(&text, None, None).unwrap();
            // RSA infers RS256; PSS must be asked for.
            let want = if alg == Algorithm::PS256 {
                Algorithm::RS256
            } else {
                alg
            };
            assert_eq!(inferred.alg(), want, "{alg:?}");
            assert_eq!(inferred.public_jwk().x, key.public_jwk().x);
            assert_eq!(inferred.public_jwk().n, key.public_jwk().n);
            let named = SigningKey::from_pem(&text, Some(alg), Some("k")).unwrap();
            assert_eq!((named.alg(), named.kid()), (alg, "k"));
            let sig = named.sign(b"m").unwrap();
            key.verifying_key().verify(alg, b"m", &sig).unwrap();
        }
        // SEC1 for EC keys, whatever the curve.
        let ec = EcdsaKeyPair::generate(&sig::ECDSA_P384_SHA384_FIXED_SIGNING).unwrap();
        let sec1 = ec.private_key().as_der().unwrap();
        let text = pem::encode(pem::LABEL_SEC1, sec1.as_ref());
        assert_eq!(
            SigningKey::from_pem(&text, None, None).unwrap().alg(),
            Algorithm::ES384
        );
        assert!(SigningKey::from_pem(&text, Some(Algorithm::ES256), None).is_err());
        // PKCS#1 for RSA keys.
        let rsa = SigningKey::generate(Algorithm::PS256).unwrap();
        let pkcs1 = der::pkcs1_from_pkcs8(&rsa.to_pkcs8_der().unwrap()).unwrap();
        let text = pem::encode(pem::LABEL_PKCS1, &pkcs1);
        let loaded = SigningKey::from_pem(&text, Some(Algorithm::PS256), None).unwrap();
        assert_eq!(loaded.public_jwk().n, rsa.public_jwk().n);
        assert_eq!(
            SigningKey::from_pem(&text, None, None).unwrap().alg(),
            Algorithm::RS256
        );
        // A public key is not a private key.
        let text = pem::encode("PUBLIC KEY", &[0x30, 0x00]);
        assert!(SigningKey::from_pem(&text, None, None).is_err());
        let text = pem::encode(pem::LABEL_PKCS8, &[0x30, 0x00]);
        assert!(SigningKey::from_pem(&text, None, None).is_err());
    }

    #[test]
    fn der_keys_load_as_the_same_key() {
        use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der};
        use aws_lc_rs::signature::KeyPair as _;
        let ec = EcdsaKeyPair::generate(&sig::ECDSA_P256_SHA256_FIXED_SIGNING).unwrap();
        let pkcs8 = ec.to_pkcs8v1().unwrap();
        let sec1 = ec.private_key().as_der().unwrap();
        for der in [pkcs8.as_ref(), sec1.as_ref()] {
            let key = SigningKey::from_der(Algorithm::ES256, der, Some("K1")).unwrap();
            assert_eq!((key.alg(), key.kid()), (Algorithm::ES256, "K1"));
            let x = key.public_jwk().x.unwrap();
            assert_eq!(b64::decode(&x).unwrap(), &ec.public_key().as_ref()[1..33]);
        }
        // A P-256 key is not an ES384 key, nor an RSA or Ed25519 one.
        for alg in [Algorithm::ES384, Algorithm::RS256, Algorithm::EdDSA] {
            assert!(
                SigningKey::from_der(alg, pkcs8.as_ref(), None).is_err(),
                "{alg:?}"
            );
        }

        let rsa = RsaKeyPair::generate(KeySize::Rsa2048).unwrap();
        let der: Pkcs8V1Der<'static> = rsa.as_der().unwrap();
        let key = SigningKey::from_der(Algorithm::RS256, der.as_ref(), None).unwrap();
        assert_eq!(key.kid(), thumbprint(&key.public_jwk()).unwrap());
        let sig = key.sign(b"msg").unwrap();
        key.verifying_key()
            .verify(Algorithm::RS256, b"msg", &sig)
            .unwrap();

        let ed = Ed25519KeyPair::generate().unwrap();
        let der = ed.to_pkcs8v1().unwrap();
        let key = SigningKey::from_der(Algorithm::EdDSA, der.as_ref(), None).unwrap();
        assert_eq!(
            b64::decode(&key.public_jwk().x.unwrap()).unwrap(),
            ed.public_key().as_ref()
        );
        assert!(SigningKey::from_der(Algorithm::EdDSA, b"junk", None).is_err());
    }

    #[test]
    fn debug_hides_private_material() {
        for alg in Algorithm::ALL {
            let key = SigningKey::generate(alg).unwrap();
            let jwk = key.to_private_jwk();
            let debug = format!("{key:?}");
            assert!(debug.contains(key.kid()));
            assert!(!debug.contains(jwk.d.as_deref().unwrap()), "{alg:?}");
        }
    }
}
