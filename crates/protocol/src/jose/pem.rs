//! PEM armour (RFC 7468): the `-----BEGIN label-----` lines and base64 around the DER that key
//! files hold. Only the textual encoding is handled here; the DER goes to aws-lc-rs
//! ([`SigningKey::from_pem`](super::SigningKey::from_pem)).

use base64::Engine as _;

use super::JoseError;

/// PKCS#8 `PrivateKeyInfo` (RFC 5208 §5, RFC 7468 §10).
pub const LABEL_PKCS8: &str = "PRIVATE KEY";
/// SEC1 `ECPrivateKey` (RFC 5915 §3), as OpenSSL writes EC keys by default.
pub const LABEL_SEC1: &str = "EC PRIVATE KEY";
/// PKCS#1 `RSAPrivateKey` (RFC 8017 §A.1.2), OpenSSL's "traditional" RSA format.
pub const LABEL_PKCS1: &str = "RSA PRIVATE KEY";

/// One decoded PEM block.
#[derive(Clone, PartialEq, Eq)]
pub struct PemBlock {
    pub label: String,
    pub der: Vec<u8>,
}

impl std::fmt::Debug for PemBlock {
    // The DER may be a private key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PemBlock")
            .field("label", &self.label)
            .field("der_len", &self.der.len())
            .finish()
    }
}

fn bad(why: &str) -> JoseError {
    JoseError::InvalidKey(format!("not a PEM file: {why}"))
}

/// The blocks of a PEM text, in order. Text outside blocks (OpenSSL's "Bag Attributes",
/// comments) is ignored, as RFC 7468 §2 allows; inside a block, the base64 may be wrapped at any
/// width and carry RFC 1421 headers (`Proc-Type: ...`), which mark an encrypted key and are
/// refused.
pub fn decode_all(text: &str) -> Result<Vec<PemBlock>, JoseError> {
    let mut blocks = Vec::new();
    let mut lines = text.lines().map(str::trim);
    while let Some(line) = lines.next() {
        let Some(label) = line
            .strip_prefix("-----BEGIN ")
            .and_then(|l| l.strip_suffix("-----"))
        else {
            continue;
        };
        let end = format!("-----END {label}-----");
        let mut body = String::new();
        let mut closed = false;
        for line in lines.by_ref() {
            if line == end {
                closed = true;
                break;
            }
            if line.contains(':') {
                return Err(JoseError::InvalidKey(
                    "encrypted PEM keys are not supported; decrypt it first \
                     (openssl pkey -in KEY -out PLAIN)"
                        .into(),
                ));
            }
            body.push_str(line);
        }
        if !closed {
            return Err(bad(&format!("no END line for {label}")));
        }
        let der = base64::engine::general_purpose::STANDARD
            .decode(body.as_bytes())
            .map_err(|_| bad("invalid base64"))?;
        blocks.push(PemBlock {
            label: label.to_owned(),
            der,
        });
    }
    if blocks.is_empty() {
        return Err(bad("no BEGIN line"));
    }
    Ok(blocks)
}

/// The first block whose label is one of `labels`.
pub fn decode_first(text: &str, labels: &[&str]) -> Result<PemBlock, JoseError> {
    let blocks = decode_all(text)?;
    let found: Vec<&str> = blocks.iter().map(|b| b.label.as_str()).collect();
    blocks
        .iter()
        .find(|b| labels.contains(&b.label.as_str()))
        .cloned()
        .ok_or_else(|| {
            JoseError::InvalidKey(format!(
                "the PEM file holds {}, not {}",
                found.join(", "),
                labels.join(" or ")
            ))
        })
}

/// `der` armoured as PEM under `label`, wrapped at 64 columns (RFC 7468 §2).
pub fn encode(label: &str, der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_skips_text_around_blocks() {
        let der: Vec<u8> = (0..=255u8).collect();
        let pem = encode(LABEL_PKCS8, &der);
        assert!(pem.lines().all(|l| l.len() <= 64));
        let text = format!("Bag Attributes\n    localKeyID: 01\n{pem}\n-- trailing\n");
        let block = decode_first(&text, &[LABEL_PKCS8]).unwrap();
        assert_eq!(block.der, der);
        assert_eq!(block.label, LABEL_PKCS8);
    }

    #[test]
    fn finds_the_key_among_other_blocks() {
        let text = format!(
            "{}{}",
            encode("EC PARAMETERS", &[6, 8, 42]),
            encode(LABEL_SEC1, &[1, 2, 3])
        );
        let block = decode_first(&text, &[LABEL_PKCS8, LABEL_SEC1]).unwrap();
        assert_eq!(block.der, vec![1, 2, 3]);
        let err = decode_first(&text, &[LABEL_PKCS1]).unwrap_err().to_string();
        assert!(err.contains("EC PARAMETERS, EC PRIVATE KEY"), "{err}");
    }

    #[test]
    fn refuses_broken_and_encrypted_files() {
        assert!(decode_all("").is_err());
        assert!(decode_all("-----BEGIN PRIVATE KEY-----\nAAAA\n").is_err());
        assert!(
            decode_all("-----BEGIN PRIVATE KEY-----\n!!!!\n-----END PRIVATE KEY-----").is_err()
        );
        let encrypted = "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\n\
                         DEK-Info: AES-128-CBC,00\n\nAAAA\n-----END RSA PRIVATE KEY-----\n";
        let err = decode_all(encrypted).unwrap_err().to_string();
        assert!(err.contains("encrypted"), "{err}");
    }
}
