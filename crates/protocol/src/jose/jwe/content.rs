//! JWE content encryption (RFC 7518 §5): AES-GCM (§5.3) and the composite AES-CBC + HMAC-SHA2
//! (§5.2), each sealing the plaintext under a content encryption key with the protected
//! header as additional authenticated data. AES, GCM and HMAC all come from aws-lc-rs; only
//! the §5.2 composition (key split, MAC input, truncated tag) is written here.

use aws_lc_rs::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey};
use aws_lc_rs::cipher::{
    self, DecryptionContext, EncryptionContext, PaddedBlockDecryptingKey, PaddedBlockEncryptingKey,
    UnboundCipherKey,
};
use aws_lc_rs::{constant_time, hmac};

use super::ContentEncryptionAlg;
use crate::jose::JoseError;

/// The output of sealing: ciphertext and authentication tag.
pub(super) struct Sealed {
    pub(super) ciphertext: Vec<u8>,
    pub(super) tag: Vec<u8>,
}

/// Encrypts `plaintext` with `enc` under `cek` and `iv`, authenticating `aad`. The caller
/// supplies a CEK of `enc.key_len()` bytes and an IV of `enc.iv_len()` bytes.
pub(super) fn seal(
    enc: ContentEncryptionAlg,
    cek: &[u8],
    iv: &[u8],
    aad: &[u8],
    plaintext: &[u8],
) -> Result<Sealed, JoseError> {
    if cek.len() != enc.key_len() || iv.len() != enc.iv_len() {
        return Err(JoseError::Crypto);
    }
    match enc {
        ContentEncryptionAlg::A128Gcm | ContentEncryptionAlg::A256Gcm => {
            let key = gcm_key(enc, cek)?;
            let nonce = Nonce::try_assume_unique_for_key(iv).map_err(|_| JoseError::Crypto)?;
            let mut buf = plaintext.to_vec();
            let tag = key
                .seal_in_place_separate_tag(nonce, Aad::from(aad), &mut buf)
                .map_err(|_| JoseError::Crypto)?;
            Ok(Sealed {
                ciphertext: buf,
                tag: tag.as_ref().to_vec(),
            })
        }
        ContentEncryptionAlg::A128CbcHs256 | ContentEncryptionAlg::A256CbcHs512 => {
            let (mac_key, enc_key) = cek.split_at(cek.len() / 2);
            let key = PaddedBlockEncryptingKey::cbc_pkcs7(cbc_key(enc_key)?)
                .map_err(|_| JoseError::Crypto)?;
            let iv: [u8; 16] = iv.try_into().map_err(|_| JoseError::Crypto)?;
            let mut buf = plaintext.to_vec();
            key.less_safe_encrypt(&mut buf, EncryptionContext::Iv128(iv.into()))
                .map_err(|_| JoseError::Crypto)?;
            let tag = cbc_tag(enc, mac_key, aad, &iv, &buf)?;
            Ok(Sealed {
                ciphertext: buf,
                tag,
            })
        }
    }
}

/// Decrypts and authenticates. Every failure (wrong key, altered header, IV, ciphertext or
/// tag, bad padding) is the same `DecryptionFailed`, and for AES-CBC the tag is checked in
/// constant time before any decryption, so nothing tells a padding error from a MAC error
/// (RFC 7518 §5.2.2.2).
pub(super) fn open(
    enc: ContentEncryptionAlg,
    cek: &[u8],
    iv: &[u8],
    aad: &[u8],
    ciphertext: &[u8],
    tag: &[u8],
) -> Result<Vec<u8>, JoseError> {
    if cek.len() != enc.key_len() || iv.len() != enc.iv_len() || tag.len() != enc.tag_len() {
        return Err(JoseError::DecryptionFailed);
    }
    match enc {
        ContentEncryptionAlg::A128Gcm | ContentEncryptionAlg::A256Gcm => {
            let key = gcm_key(enc, cek)?;
            let nonce =
                Nonce::try_assume_unique_for_key(iv).map_err(|_| JoseError::DecryptionFailed)?;
            let mut buf = Vec::with_capacity(ciphertext.len() + tag.len());
            buf.extend_from_slice(ciphertext);
            buf.extend_from_slice(tag);
            let plaintext = key
                .open_in_place(nonce, Aad::from(aad), &mut buf)
                .map_err(|_| JoseError::DecryptionFailed)?;
            Ok(plaintext.to_vec())
        }
        ContentEncryptionAlg::A128CbcHs256 | ContentEncryptionAlg::A256CbcHs512 => {
            let (mac_key, enc_key) = cek.split_at(cek.len() / 2);
            let expected = cbc_tag(enc, mac_key, aad, iv, ciphertext)?;
            constant_time::verify_slices_are_equal(&expected, tag)
                .map_err(|_| JoseError::DecryptionFailed)?;
            if ciphertext.is_empty() || !ciphertext.len().is_multiple_of(16) {
                return Err(JoseError::DecryptionFailed);
            }
            let iv: [u8; 16] = iv.try_into().map_err(|_| JoseError::DecryptionFailed)?;
            let key = PaddedBlockDecryptingKey::cbc_pkcs7(cbc_key(enc_key)?)
                .map_err(|_| JoseError::Crypto)?;
            let mut buf = ciphertext.to_vec();
            let plaintext = key
                .decrypt(&mut buf, DecryptionContext::Iv128(iv.into()))
                .map_err(|_| JoseError::DecryptionFailed)?;
            Ok(plaintext.to_vec())
        }
    }
}

fn gcm_key(enc: ContentEncryptionAlg, cek: &[u8]) -> Result<LessSafeKey, JoseError> {
    let algorithm = match enc {
        ContentEncryptionAlg::A128Gcm => &aead::AES_128_GCM,
        _ => &aead::AES_256_GCM,
    };
    let key = UnboundKey::new(algorithm, cek).map_err(|_| JoseError::Crypto)?;
    Ok(LessSafeKey::new(key))
}

fn cbc_key(enc_key: &[u8]) -> Result<UnboundCipherKey, JoseError> {
    let algorithm = match enc_key.len() {
        16 => &cipher::AES_128,
        32 => &cipher::AES_256,
        _ => return Err(JoseError::Crypto),
    };
    UnboundCipherKey::new(algorithm, enc_key).map_err(|_| JoseError::Crypto)
}

/// RFC 7518 §5.2.2.1 steps 4–6: HMAC over `A || IV || E || AL` (AL the bit length of A as a
/// 64-bit big-endian integer), truncated to the first half of the MAC output.
fn cbc_tag(
    enc: ContentEncryptionAlg,
    mac_key: &[u8],
    aad: &[u8],
    iv: &[u8],
    ciphertext: &[u8],
) -> Result<Vec<u8>, JoseError> {
    let algorithm = match enc {
        ContentEncryptionAlg::A128CbcHs256 => hmac::HMAC_SHA256,
        _ => hmac::HMAC_SHA512,
    };
    let aad_bits = u64::try_from(aad.len())
        .ok()
        .and_then(|n| n.checked_mul(8))
        .ok_or(JoseError::Crypto)?;
    let mut ctx = hmac::Context::with_key(&hmac::Key::new(algorithm, mac_key));
    ctx.update(aad);
    ctx.update(iv);
    ctx.update(ciphertext);
    ctx.update(&aad_bits.to_be_bytes());
    let full = ctx.sign();
    Ok(full.as_ref()[..enc.tag_len()].to_vec())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.split_whitespace().collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    const P: &[u8] = b"A cipher system must not be required to be secret, and it must be able to fall into the hands of the enemy without inconvenience";
    const A: &[u8] = b"The second principle of Auguste Kerckhoffs";
    const IV: &str = "1a f3 8c 2d c2 b9 6f fd d8 66 94 09 23 41 bc 04";

    /// RFC 7518 Appendix B.1 (AES_128_CBC_HMAC_SHA_256) and B.3 (AES_256_CBC_HMAC_SHA_512).
    #[test]
    fn rfc7518_appendix_b_test_cases() {
        let cases = [
            (
                ContentEncryptionAlg::A128CbcHs256,
                32,
                "c8 0e df a3 2d df 39 d5 ef 00 c0 b4 68 83 42 79 a2 e4 6a 1b 80 49 f7 92 f7 6b fe 54 b9 03 a9 c9
                 a9 4a c9 b4 7a d2 65 5c 5f 10 f9 ae f7 14 27 e2 fc 6f 9b 3f 39 9a 22 14 89 f1 63 62 c7 03 23 36
                 09 d4 5a c6 98 64 e3 32 1c f8 29 35 ac 40 96 c8 6e 13 33 14 c5 40 19 e8 ca 79 80 df a4 b9 cf 1b
                 38 4c 48 6f 3a 54 c5 10 78 15 8e e5 d7 9d e5 9f bd 34 d8 48 b3 d6 95 50 a6 76 46 34 44 27 ad e5
                 4b 88 51 ff b5 98 f7 f8 00 74 b9 47 3c 82 e2 db",
                "65 2c 3f a3 6b 0a 7c 5b 32 19 fa b3 a3 0b c1 c4",
            ),
            (
                ContentEncryptionAlg::A256CbcHs512,
                64,
                "4a ff aa ad b7 8c 31 c5 da 4b 1b 59 0d 10 ff bd 3d d8 d5 d3 02 42 35 26 91 2d a0 37 ec bc c7 bd
                 82 2c 30 1d d6 7c 37 3b cc b5 84 ad 3e 92 79 c2 e6 d1 2a 13 74 b7 7f 07 75 53 df 82 94 10 44 6b
                 36 eb d9 70 66 29 6a e6 42 7e a7 5c 2e 08 46 a1 1a 09 cc f5 37 0d c8 0b fe cb ad 28 c7 3f 09 b3
                 a3 b7 5e 66 2a 25 94 41 0a e4 96 b2 e2 e6 60 9e 31 e6 e0 2c c8 37 f0 53 d2 1f 37 ff 4f 51 95 0b
                 be 26 38 d0 9d d7 a4 93 09 30 80 6d 07 03 b1 f6",
                "4d d3 b4 c0 88 a7 f4 5c 21 68 39 64 5b 20 12 bf 2e 62 69 a8 c5 6a 81 6d bc 1b 26 77 61 95 5b c5",
            ),
        ];
        for (enc, key_len, e, t) in cases {
            let k: Vec<u8> = (0..key_len).map(|i| i as u8).collect();
            let iv = hex(IV);
            let sealed = seal(enc, &k, &iv, A, P).unwrap();
            assert_eq!(sealed.ciphertext, hex(e), "{enc:?}");
            assert_eq!(sealed.tag, hex(t), "{enc:?}");
            assert_eq!(open(enc, &k, &iv, A, &hex(e), &hex(t)).unwrap(), P);
        }
    }

    #[test]
    fn any_change_fails_alike() {
        for enc in ContentEncryptionAlg::ALL {
            let k = vec![7u8; enc.key_len()];
            let iv = vec![9u8; enc.iv_len()];
            let sealed = seal(enc, &k, &iv, b"aad", b"hello world").unwrap();
            assert_eq!(
                open(enc, &k, &iv, b"aad", &sealed.ciphertext, &sealed.tag).unwrap(),
                b"hello world"
            );
            let mut other_key = k.clone();
            other_key[0] ^= 1;
            let mut other_iv = iv.clone();
            other_iv[0] ^= 1;
            let mut other_ct = sealed.ciphertext.clone();
            other_ct[0] ^= 1;
            let mut other_tag = sealed.tag.clone();
            other_tag[0] ^= 1;
            let attempts = [
                open(
                    enc,
                    &other_key,
                    &iv,
                    b"aad",
                    &sealed.ciphertext,
                    &sealed.tag,
                ),
                open(enc, &k, &other_iv, b"aad", &sealed.ciphertext, &sealed.tag),
                open(enc, &k, &iv, b"aaD", &sealed.ciphertext, &sealed.tag),
                open(enc, &k, &iv, b"aad", &other_ct, &sealed.tag),
                open(enc, &k, &iv, b"aad", &sealed.ciphertext, &other_tag),
                open(enc, &k, &iv, b"aad", &sealed.ciphertext, &sealed.tag[1..]),
                open(enc, &k, &iv, b"aad", &[], &sealed.tag),
                open(enc, &k[1..], &iv, b"aad", &sealed.ciphertext, &sealed.tag),
            ];
            for (i, attempt) in attempts.into_iter().enumerate() {
                assert_eq!(attempt, Err(JoseError::DecryptionFailed), "{enc:?} #{i}");
            }
        }
    }

    #[test]
    fn empty_plaintext_round_trips() {
        for enc in ContentEncryptionAlg::ALL {
            let k = vec![1u8; enc.key_len()];
            let iv = vec![2u8; enc.iv_len()];
            let sealed = seal(enc, &k, &iv, b"", b"").unwrap();
            assert_eq!(
                open(enc, &k, &iv, b"", &sealed.ciphertext, &sealed.tag).unwrap(),
                b""
            );
        }
    }
}
