//! How a backchannel request names its user (CIBA Core §7.1): `login_hint` forms (SPEC §4:
//! NRIC/FIN with its check letter, UUID `sub`, e-mail, username, phone number) parsed into a
//! normalised [`UserLookup`], `id_token_hint`, `login_hint_token`, and the active user and
//! devices a lookup finds.

use backchannel_protocol::jose::{self, Audience, ClaimsError, TimeClaims};
use serde_json::Value;

use super::Domain;
use super::error::{AuthError, AuthResult};
use super::model::{Client, Device, User, UserLookup};

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

impl Domain {
    /// The user the hint names and their active devices; `unknown_user_id` if either is
    /// missing.
    pub(super) async fn find_active_user(
        &self,
        lookup: &UserLookup,
        client: &Client,
    ) -> AuthResult<(User, Vec<Device>)> {
        let unknown = || {
            AuthError::UnknownUserId(
                "no active user with an enrolled authenticator matches the hint".into(),
            )
        };
        let user = match self.stores.users.find_user(lookup).await? {
            Some(u) if !u.disabled => u,
            _ => return Err(unknown()),
        };
        let mut devices = self.stores.devices.list_devices(&user.sub).await?;
        // The external channel's stand-in counts only for the clients the channel serves.
        devices.retain(|d| !d.disabled && !d.is_external());
        if self.config.external.serves(&client.id) {
            let external = self.external_device(&user).await?;
            if !external.disabled {
                devices.push(external);
            }
        }
        if devices.is_empty() {
            return Err(unknown());
        }
        Ok((user, devices))
    }

    /// OIDC Core §3.1.2.1 / CIBA §7.1: an ID token this server issued (possibly expired)
    /// naming the user; it must have been issued to this client.
    pub(super) fn lookup_from_id_token_hint(
        &self,
        client: &Client,
        token: &str,
    ) -> AuthResult<UserLookup> {
        let bad = |m: &str| AuthError::invalid_request(format!("id_token_hint {m}"));
        let jws = jose::decode_jws(token).map_err(|_| bad("is not a valid JWS"))?;
        jws.verify_any(&self.keys.verifiers())
            .map_err(|_| bad("was not issued by this server"))?;
        #[derive(serde::Deserialize)]
        struct HintClaims {
            iss: String,
            sub: String,
            aud: Audience,
        }
        let claims: HintClaims = jws.claims().map_err(|_| bad("lacks iss, sub or aud"))?;
        if claims.iss != self.issuer {
            return Err(bad("was issued by another issuer"));
        }
        if !claims.aud.contains(&client.id) {
            return Err(bad("was issued to another client"));
        }
        Ok(UserLookup::Sub(claims.sub))
    }

    /// CIBA §7.1 `login_hint_token`: a JWT the client signs naming the user by a subject
    /// identifier (`sub_id`, RFC 9493 formats `email`, `phone_number`, `iss_sub`, `opaque`).
    pub(super) async fn lookup_from_login_hint_token(
        &self,
        client: &Client,
        token: &str,
    ) -> AuthResult<UserLookup> {
        let bad = |m: &str| AuthError::invalid_request(format!("login_hint_token {m}"));
        let jws = jose::decode_jws(token).map_err(|_| bad("is not a valid JWS"))?;
        self.verify_client_signature(client, &jws)
            .await
            .map_err(|_| bad("is not signed by a key of this client"))?;
        let claims: serde_json::Map<String, Value> =
            jws.claims().map_err(|_| bad("is not a JSON object"))?;
        // Only exp counts (see login_hint_token_rules).
        let times = TimeClaims {
            exp: claims.get("exp").and_then(Value::as_i64),
            ..TimeClaims::default()
        };
        match jose::check_times(&times, &self.login_hint_token_rules(), self.now_secs()) {
            Ok(()) => {}
            Err(e @ ClaimsError::Expired { .. }) => {
                return Err(AuthError::ExpiredLoginHintToken(format!(
                    "the login_hint_token {e}"
                )));
            }
            Err(e) => return Err(bad(&e.to_string())),
        }
        let sub_id = claims
            .get("sub_id")
            .and_then(Value::as_object)
            .ok_or_else(|| bad("has no sub_id"))?;
        let field = |name: &str| sub_id.get(name).and_then(Value::as_str).map(str::to_owned);
        let lookup = match sub_id.get("format").and_then(Value::as_str) {
            Some("email") => field("email").map(|e| UserLookup::Email(e.to_lowercase())),
            Some("phone_number") => field("phone_number").map(UserLookup::Phone),
            Some("iss_sub") if field("iss").as_deref() == Some(self.issuer.as_str()) => {
                field("sub").map(UserLookup::Sub)
            }
            Some("opaque") => match field("id") {
                Some(id) => Some(parse_login_hint(&id)?),
                None => None,
            },
            _ => None,
        };
        lookup.ok_or_else(|| bad("has an unsupported or incomplete sub_id"))
    }
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
