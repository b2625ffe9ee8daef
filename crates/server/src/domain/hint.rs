//! `login_hint` forms (SPEC §4): NRIC/FIN with its check letter, UUID `sub`, e-mail, username
//! and phone number, parsed into a normalised [`UserLookup`].

use super::error::AuthError;
use super::model::UserLookup;

const WEIGHTS: [u32; 7] = [2, 7, 6, 5, 4, 3, 2];

/// The check letter an NRIC/FIN must end with, or `None` if the first seven characters are not
/// a known prefix followed by seven digits. Singapore's published algorithm (SPEC §4).
pub fn nric_check_letter(prefix: char, digits: &str) -> Option<char> {
    if digits.len() != 7 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let sum: u32 = digits
        .bytes()
        .zip(WEIGHTS)
        .map(|(d, w)| u32::from(d - b'0') * w)
        .sum();
    let (offset, table): (u32, &[u8; 11]) = match prefix {
        'S' => (0, b"JZIHGFEDCBA"),
        'T' => (4, b"JZIHGFEDCBA"),
        'F' => (0, b"XWUTRQPNMLK"),
        'G' => (4, b"XWUTRQPNMLK"),
        'M' => (3, b"XWUTRQPNJLK"),
        _ => return None,
    };
    let r = ((sum + offset) % 11) as usize;
    table.get(r).map(|&b| char::from(b))
}

/// True for an upper-case NRIC/FIN with a valid check letter.
pub fn is_valid_nric(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() != 9 || !s.is_ascii() {
        return false;
    }
    let prefix = char::from(b[0]);
    let letter = char::from(b[8]);
    nric_check_letter(prefix, &s[1..8]) == Some(letter)
}

/// Looks like an NRIC/FIN (any case, nine characters, letter-7 digits-letter).
fn nric_shaped(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 9
        && b[0].is_ascii_alphabetic()
        && b[8].is_ascii_alphabetic()
        && b[1..8].iter().all(u8::is_ascii_digit)
}

/// Lower-case hyphenated UUID (8-4-4-4-12 hex).
pub fn is_lower_uuid(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, &c)| match i {
            8 | 13 | 18 | 23 => c == b'-',
            _ => c.is_ascii_digit() || (b'a'..=b'f').contains(&c),
        })
}

fn uuid_shaped(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, &c)| match i {
            8 | 13 | 18 | 23 => c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}

fn is_email(s: &str) -> bool {
    let Some((local, domain)) = s.rsplit_once('@') else {
        return false;
    };
    !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !s.chars().any(|c| c.is_whitespace() || c.is_control())
        && s.len() <= 254
}

/// E.164-style: an optional `+`, then 6–15 digits.
pub fn is_phone(s: &str) -> bool {
    let digits = s.strip_prefix('+').unwrap_or(s);
    (6..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit())
}

/// Usernames: 1–64 of letters, digits, `.`, `_`, `-`, starting with a letter or digit.
pub fn is_username(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// Parses a `login_hint` into a lookup. A malformed hint (an NRIC with a wrong check letter or
/// in lower case, an upper-case UUID, nothing recognisable) is `invalid_request`.
pub fn parse_login_hint(hint: &str) -> Result<UserLookup, AuthError> {
    if hint.is_empty() || hint.len() > 256 {
        return Err(AuthError::invalid_request(
            "login_hint is empty or too long",
        ));
    }
    if nric_shaped(hint) {
        return if is_valid_nric(hint) {
            Ok(UserLookup::Nric(hint.to_owned()))
        } else {
            Err(AuthError::invalid_request(
                "login_hint is not a valid NRIC/FIN (upper case, valid check letter)",
            ))
        };
    }
    if uuid_shaped(hint) {
        return if is_lower_uuid(hint) {
            Ok(UserLookup::Sub(hint.to_owned()))
        } else {
            Err(AuthError::invalid_request(
                "login_hint UUID must be lower case",
            ))
        };
    }
    if hint.contains('@') {
        return if is_email(hint) {
            Ok(UserLookup::Email(hint.to_lowercase()))
        } else {
            Err(AuthError::invalid_request(
                "login_hint is not a valid e-mail address",
            ))
        };
    }
    if is_phone(hint) {
        return Ok(UserLookup::Phone(hint.to_owned()));
    }
    if is_username(hint) {
        return Ok(UserLookup::Username(hint.to_owned()));
    }
    Err(AuthError::invalid_request(
        "login_hint has no recognised form",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nric_vectors_from_the_spec_are_valid() {
        for s in [
            "S1234567D",
            "T1234567J",
            "F1234567N",
            "G1234567X",
            "M1234567K",
            "S8076606H",
            "S1728872E",
            "G4549883U",
            "M3960741N",
        ] {
            assert!(is_valid_nric(s), "{s} should be valid");
            assert_eq!(parse_login_hint(s), Ok(UserLookup::Nric(s.to_owned())));
        }
    }

    #[test]
    fn nric_with_wrong_letter_or_case_is_malformed() {
        for s in [
            "S1234567A",
            "T1234567D",
            "F1234567X",
            "M1234567N",
            "s1234567d",
            "A1234567D",
        ] {
            assert!(!is_valid_nric(s), "{s} should be invalid");
            assert_eq!(
                parse_login_hint(s).map_err(|e| e.code()),
                Err("invalid_request")
            );
        }
    }

    #[test]
    fn every_wrong_check_letter_is_rejected() {
        let valid = "S8076606H";
        for c in 'A'..='Z' {
            let candidate = format!("{}{}", &valid[..8], c);
            assert_eq!(is_valid_nric(&candidate), c == 'H', "{candidate}");
        }
    }

    #[test]
    fn uuid_must_be_lower_case() {
        let sub = "178478de-fed7-4c03-a75e-e68c44d0d5f0";
        assert_eq!(parse_login_hint(sub), Ok(UserLookup::Sub(sub.to_owned())));
        assert!(parse_login_hint(&sub.to_uppercase()).is_err());
    }

    #[test]
    fn email_is_case_insensitive() {
        assert_eq!(
            parse_login_hint("Alice.Tan@Example.COM"),
            Ok(UserLookup::Email("alice.tan@example.com".into()))
        );
        assert!(parse_login_hint("alice@").is_err());
        assert!(parse_login_hint("a b@example.com").is_err());
    }

    #[test]
    fn phone_and_username() {
        assert_eq!(
            parse_login_hint("+6591234567"),
            Ok(UserLookup::Phone("+6591234567".into()))
        );
        assert_eq!(
            parse_login_hint("alice_t"),
            Ok(UserLookup::Username("alice_t".into()))
        );
        assert!(parse_login_hint("").is_err());
        assert!(parse_login_hint("has space").is_err());
        assert!(parse_login_hint(&"x".repeat(300)).is_err());
    }
}
