//! Base64url without padding (RFC 7515 §2), strict on decode: no padding, no whitespace, no
//! standard-alphabet characters and no non-zero trailing bits, so every value has exactly one
//! accepted encoding.

use base64::Engine as _;
use base64::alphabet::URL_SAFE;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};

use super::JoseError;

const ENGINE: GeneralPurpose = GeneralPurpose::new(
    &URL_SAFE,
    GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(DecodePaddingMode::RequireNone)
        .with_decode_allow_trailing_bits(false),
);

/// Encodes bytes as base64url without padding.
pub fn encode(bytes: &[u8]) -> String {
    ENGINE.encode(bytes)
}

/// Decodes base64url without padding; rejects padding, whitespace and the standard alphabet.
pub fn decode(s: &str) -> Result<Vec<u8>, JoseError> {
    ENGINE
        .decode(s)
        .map_err(|_| JoseError::Malformed("invalid base64url".into()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_every_length() {
        let data: Vec<u8> = (0..=255u8).collect();
        for n in 0..data.len() {
            let s = encode(&data[..n]);
            assert!(!s.contains('='));
            assert_eq!(decode(&s).unwrap(), &data[..n]);
        }
    }

    #[test]
    fn uses_url_alphabet() {
        assert_eq!(encode(&[0xfb, 0xff]), "-_8");
        assert_eq!(decode("-_8").unwrap(), vec![0xfb, 0xff]);
    }

    #[test]
    fn rejects_non_canonical_input() {
        for bad in [
            "+/8", "AQ==", "AQ=", "A", "AQ B", " AQ", "AQ\n", "AR", "Zm9v!",
        ] {
            assert!(
                matches!(decode(bad), Err(JoseError::Malformed(_))),
                "{bad:?} accepted"
            );
        }
    }
}
