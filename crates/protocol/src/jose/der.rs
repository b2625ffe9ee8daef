//! The little DER reading that aws-lc-rs leaves to us: pulling the RSA private components
//! (RFC 8017 §A.1.2 `RSAPrivateKey`) out of the PKCS#8 document (RFC 5208 §5) it produces, so a
//! generated RSA key can be written as a private JWK (RFC 7518 §6.3.2). Only parsing of
//! structure happens here; every cryptographic operation stays in aws-lc-rs.

use super::JoseError;

const TAG_INTEGER: u8 = 0x02;
const TAG_OCTET_STRING: u8 = 0x04;
const TAG_SEQUENCE: u8 = 0x30;

fn bad() -> JoseError {
    JoseError::InvalidKey("unreadable private key encoding".into())
}

/// Splits one TLV off the front of `input`: returns (tag, contents, rest).
fn split_tlv(input: &[u8]) -> Result<(u8, &[u8], &[u8]), JoseError> {
    let (&tag, rest) = input.split_first().ok_or_else(bad)?;
    let (&first, rest) = rest.split_first().ok_or_else(bad)?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return Err(bad());
        }
        let (len_bytes, rest) = rest.split_at(n);
        let len = len_bytes
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        (len, rest)
    };
    if rest.len() < len {
        return Err(bad());
    }
    let (contents, rest) = rest.split_at(len);
    Ok((tag, contents, rest))
}

fn expect(input: &[u8], want: u8) -> Result<(&[u8], &[u8]), JoseError> {
    let (tag, contents, rest) = split_tlv(input)?;
    if tag != want {
        return Err(bad());
    }
    Ok((contents, rest))
}

/// A DER INTEGER's contents as a minimal unsigned big-endian byte string.
fn unsigned(contents: &[u8]) -> Vec<u8> {
    let start = contents
        .iter()
        .position(|&b| b != 0)
        .unwrap_or(contents.len());
    contents[start..].to_vec()
}

/// The eight integers of a two-prime RSA private key, minimal big-endian.
pub(crate) struct RsaPrivateParts {
    pub n: Vec<u8>,
    pub e: Vec<u8>,
    pub d: Vec<u8>,
    pub p: Vec<u8>,
    pub q: Vec<u8>,
    pub dp: Vec<u8>,
    pub dq: Vec<u8>,
    pub qi: Vec<u8>,
}

/// Reads the RSA private components from a PKCS#8 `PrivateKeyInfo`.
pub(crate) fn rsa_parts_from_pkcs8(pkcs8: &[u8]) -> Result<RsaPrivateParts, JoseError> {
    let (info, _) = expect(pkcs8, TAG_SEQUENCE)?;
    let (_version, rest) = expect(info, TAG_INTEGER)?;
    let (_algorithm, rest) = expect(rest, TAG_SEQUENCE)?;
    let (private_key, _) = expect(rest, TAG_OCTET_STRING)?;
    let (key, _) = expect(private_key, TAG_SEQUENCE)?;
    let mut ints = Vec::with_capacity(9);
    let mut rest = key;
    while !rest.is_empty() && ints.len() < 9 {
        let (int, next) = expect(rest, TAG_INTEGER)?;
        ints.push(unsigned(int));
        rest = next;
    }
    // version 0 (two-prime) has exactly nine INTEGERs and nothing after them.
    match <[Vec<u8>; 9]>::try_from(ints) {
        Ok([version, n, e, d, p, q, dp, dq, qi]) if version.is_empty() && rest.is_empty() => {
            Ok(RsaPrivateParts {
                n,
                e,
                d,
                p,
                q,
                dp,
                dq,
                qi,
            })
        }
        _ => Err(bad()),
    }
}

/// The PKCS#1 `RSAPrivateKey` inside a PKCS#8 document, as OpenSSL's "traditional" format
/// would hold it: tests make PKCS#1 key files with it.
#[cfg(test)]
pub(crate) fn pkcs1_from_pkcs8(pkcs8: &[u8]) -> Result<Vec<u8>, JoseError> {
    let (info, _) = expect(pkcs8, TAG_SEQUENCE)?;
    let (_version, rest) = expect(info, TAG_INTEGER)?;
    let (_algorithm, rest) = expect(rest, TAG_SEQUENCE)?;
    let (private_key, _) = expect(rest, TAG_OCTET_STRING)?;
    Ok(private_key.to_vec())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn reads_long_and_short_lengths() {
        let (tag, contents, rest) = split_tlv(&[0x04, 0x02, 0xaa, 0xbb, 0xcc]).unwrap();
        assert_eq!(
            (tag, contents, rest),
            (0x04, &[0xaa, 0xbb][..], &[0xcc][..])
        );
        let mut long = vec![0x04, 0x82, 0x01, 0x00];
        long.extend(std::iter::repeat_n(7u8, 256));
        let (_, contents, rest) = split_tlv(&long).unwrap();
        assert_eq!(contents.len(), 256);
        assert!(rest.is_empty());
    }

    #[test]
    fn rejects_truncation_and_garbage() {
        for bad in [
            &[][..],
            &[0x30][..],
            &[0x30, 0x05, 0x00][..],
            &[0x30, 0x80][..],
            &[0x30, 0x85, 1, 1, 1, 1, 1][..],
        ] {
            assert!(split_tlv(bad).is_err() || rsa_parts_from_pkcs8(bad).is_err());
            assert!(rsa_parts_from_pkcs8(bad).is_err());
        }
    }

    #[test]
    fn strips_sign_padding() {
        assert_eq!(unsigned(&[0x00, 0x80, 0x01]), vec![0x80, 0x01]);
        assert_eq!(unsigned(&[0x00]), Vec::<u8>::new());
    }
}
