//! Operator actions shared by `backchannel admin` and the admin REST API: registering
//! clients (secret shown once, stored hashed), users and one-time enrolment codes.

use backchannel_protocol::jose::{Algorithm, Jwks};
use backchannel_protocol::oauth::{
    ClientAuthMethod, DeliveryMode, GRANT_TYPE_CIBA, GRANT_TYPE_REFRESH_TOKEN,
};
use serde::{Deserialize, Serialize};

use super::Domain;
use super::error::{AuthError, AuthResult};
use super::hint::{is_phone, is_valid_nric, parse_login_hint};
use super::id_token_encryption;
use super::model::{Client, Enrolment, User, UserLookup};
use crate::outbound::check_shape;

/// What an operator asks for when registering a client. The admin API also takes the
/// registration metadata names of RFC 7591 and CIBA Core §4 (`client_name`,
/// `token_endpoint_auth_method`, `backchannel_token_delivery_mode`,
/// `backchannel_client_notification_endpoint`, ...).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewClient {
    #[serde(alias = "client_name")]
    pub name: String,
    #[serde(default, alias = "token_endpoint_auth_method")]
    pub auth_method: Option<ClientAuthMethod>,
    #[serde(default)]
    pub jwks: Option<Jwks>,
    #[serde(default)]
    pub jwks_uri: Option<String>,
    #[serde(default, alias = "backchannel_token_delivery_mode")]
    pub delivery_mode: Option<DeliveryMode>,
    #[serde(default, alias = "backchannel_client_notification_endpoint")]
    pub notification_endpoint: Option<String>,
    /// Space-separated; `openid` is always included.
    #[serde(default)]
    pub scope: Option<String>,
    #[serde(default, alias = "backchannel_authentication_request_signing_alg")]
    pub request_signing_alg: Option<String>,
    #[serde(default, alias = "backchannel_user_code_parameter")]
    pub user_code_required: bool,
    #[serde(default, alias = "id_token_signed_response_alg")]
    pub id_token_signing_alg: Option<String>,
    /// OIDC Registration §2: encrypt ID tokens with this key management algorithm...
    #[serde(default, alias = "id_token_encryption_alg")]
    pub id_token_encrypted_response_alg: Option<String>,
    /// ...and this content encryption (default A128CBC-HS256).
    #[serde(default, alias = "id_token_encryption_enc")]
    pub id_token_encrypted_response_enc: Option<String>,
    /// RFC 7591 `grant_types`: the CIBA grant (always) and `refresh_token` (then approvals
    /// also yield refresh tokens). Absent: the CIBA grant alone.
    #[serde(default)]
    pub grant_types: Option<Vec<String>>,
}

/// A registered client and, once, its secret.
#[derive(Debug, Clone, Serialize)]
pub struct CreatedClient {
    pub client_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub nric: Option<String>,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub phone: Option<String>,
    #[serde(default)]
    pub claims: serde_json::Map<String, serde_json::Value>,
    /// The user's CIBA `user_code`, for clients that require one.
    #[serde(default)]
    pub user_code: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CreatedEnrolment {
    pub code: String,
    /// RFC 3339 is friendlier, but scripts compare numbers: Unix seconds.
    #[serde(rename = "expires_at")]
    pub expires_at_secs: i64,
    pub enrol_url: String,
}

fn parse_alg(what: &str, value: Option<&str>) -> AuthResult<Option<Algorithm>> {
    value
        .map(|s| {
            Algorithm::parse(s).ok_or_else(|| {
                AuthError::invalid_request(format!("{what}: unsupported algorithm {s}"))
            })
        })
        .transpose()
}

impl Domain {
    pub async fn create_client(&self, new: NewClient) -> AuthResult<CreatedClient> {
        let name = new.name.trim().to_owned();
        if name.is_empty() || name.chars().count() > 128 || name.chars().any(char::is_control) {
            return Err(AuthError::invalid_request(
                "name must be 1 to 128 printable characters",
            ));
        }
        let auth_method = new
            .auth_method
            .unwrap_or(ClientAuthMethod::ClientSecretBasic);
        if new.jwks.is_some() && new.jwks_uri.is_some() {
            return Err(AuthError::invalid_request(
                "give jwks or jwks_uri, not both",
            ));
        }
        if let Some(uri) = &new.jwks_uri {
            check_shape(uri, self.config.outbound.allow_http)
                .map_err(|m| AuthError::invalid_request(format!("jwks_uri {m}")))?;
        }
        let has_keys =
            new.jwks.as_ref().is_some_and(|k| !k.keys.is_empty()) || new.jwks_uri.is_some();
        if auth_method == ClientAuthMethod::PrivateKeyJwt && !has_keys {
            return Err(AuthError::invalid_request(
                "private_key_jwt clients need jwks or jwks_uri",
            ));
        }
        let request_signing_alg =
            parse_alg("request_signing_alg", new.request_signing_alg.as_deref())?;
        if request_signing_alg.is_some() && !has_keys {
            return Err(AuthError::invalid_request(
                "signed requests need the client's jwks or jwks_uri",
            ));
        }
        let id_token_signing_alg =
            parse_alg("id_token_signing_alg", new.id_token_signing_alg.as_deref())?
                .unwrap_or(Algorithm::ES256);
        let id_token_encryption = id_token_encryption::check_registration(
            new.id_token_encrypted_response_alg.as_deref(),
            new.id_token_encrypted_response_enc.as_deref(),
            new.jwks.as_ref(),
            new.jwks_uri.as_deref(),
        )?;
        let mut refresh_tokens = false;
        for grant in new.grant_types.iter().flatten() {
            match grant.as_str() {
                GRANT_TYPE_CIBA => {}
                GRANT_TYPE_REFRESH_TOKEN => refresh_tokens = true,
                other => {
                    return Err(AuthError::invalid_request(format!(
                        "grant_types: unsupported grant {other}"
                    )));
                }
            }
        }
        let delivery_mode = new.delivery_mode.unwrap_or(DeliveryMode::Poll);
        match (delivery_mode, &new.notification_endpoint) {
            (DeliveryMode::Poll, Some(_)) => {
                return Err(AuthError::invalid_request(
                    "poll clients have no notification endpoint",
                ));
            }
            (DeliveryMode::Ping | DeliveryMode::Push, None) => {
                return Err(AuthError::invalid_request(
                    "ping and push clients need a notification endpoint",
                ));
            }
            (_, Some(url)) => {
                check_shape(url, self.config.outbound.allow_http).map_err(|m| {
                    AuthError::invalid_request(format!("notification endpoint {m}"))
                })?;
            }
            _ => {}
        }
        let mut scopes = vec!["openid".to_owned()];
        for s in new
            .scope
            .as_deref()
            .unwrap_or("openid")
            .split(' ')
            .filter(|s| !s.is_empty())
        {
            if !s
                .bytes()
                .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\')
            {
                return Err(AuthError::invalid_request(format!(
                    "invalid scope token {s:?}"
                )));
            }
            if !scopes.iter().any(|x| x == s) {
                scopes.push(s.to_owned());
            }
        }
        let secret = if auth_method.uses_secret() {
            Some(Domain::random_id(52)?)
        } else {
            None
        };
        let client = Client {
            id: Domain::random_id(20)?,
            name,
            auth_method,
            secret_hash: secret.as_deref().map(Domain::hash_hex),
            jwks: new.jwks,
            jwks_uri: new.jwks_uri,
            scopes,
            delivery_mode,
            notification_endpoint: new.notification_endpoint,
            request_signing_alg,
            user_code_required: new.user_code_required,
            id_token_signing_alg,
            id_token_encryption,
            disabled: false,
            created_at: self.now_ms(),
            refresh_tokens,
        };
        self.stores.clients.insert_client(&client).await?;
        tracing::info!(client_id = %client.id, "client registered");
        Ok(CreatedClient {
            client_id: client.id,
            client_secret: secret,
        })
    }

    pub async fn create_user(&self, new: NewUser) -> AuthResult<User> {
        let email = new.email.map(|e| e.trim().to_lowercase());
        if let Some(e) = &email
            && !matches!(parse_login_hint(e), Ok(UserLookup::Email(_)))
        {
            return Err(AuthError::invalid_request(
                "email is not a valid e-mail address",
            ));
        }
        if let Some(n) = &new.nric
            && !is_valid_nric(n)
        {
            return Err(AuthError::invalid_request(
                "nric must be an upper-case NRIC/FIN with a valid check letter",
            ));
        }
        if let Some(p) = &new.phone
            && !is_phone(p)
        {
            return Err(AuthError::invalid_request(
                "phone must be + and 6 to 15 digits",
            ));
        }
        if let Some(u) = &new.username
            && !matches!(parse_login_hint(u), Ok(UserLookup::Username(_)))
        {
            return Err(AuthError::invalid_request(
                "username must be 1 to 64 letters, digits, '.', '_' or '-', and not look like another hint form",
            ));
        }
        if let Some(code) = &new.user_code
            && (code.is_empty() || code.len() > 64)
        {
            return Err(AuthError::invalid_request(
                "user_code must be 1 to 64 characters",
            ));
        }
        let user = User {
            sub: new_uuid()?,
            email,
            nric: new.nric,
            username: new.username,
            phone: new.phone,
            claims: new.claims,
            user_code_hash: new.user_code.as_deref().map(Domain::hash_hex),
            disabled: false,
            created_at: self.now_ms(),
        };
        self.stores.users.insert_user(&user).await?;
        tracing::info!(sub = %user.sub, "user created");
        Ok(user)
    }

    pub async fn create_enrolment(&self, sub: &str) -> AuthResult<CreatedEnrolment> {
        match self.stores.users.get_user(sub).await? {
            Some(u) if !u.disabled => {}
            _ => return Err(AuthError::NotFound("no active user with this sub".into())),
        }
        let code = Domain::random_code(5)?;
        let now = self.now_ms();
        let expires_at = now + self.config.enrolment.code_ttl_secs * 1000;
        self.stores
            .devices
            .insert_enrolment(&Enrolment {
                code_hash: Domain::hash_hex(&normalize_code(&code)),
                user_sub: sub.to_owned(),
                created_at: now,
                expires_at,
                used_at: None,
            })
            .await?;
        Ok(CreatedEnrolment {
            code,
            expires_at_secs: expires_at.div_euclid(1000),
            enrol_url: self.url("/device/v1/enrol"),
        })
    }
}

/// An enrolment code as a person might type it, made canonical: Crockford base32 ignores
/// case, `-` and spaces, and reads O as 0 and I or L as 1.
pub fn normalize_code(code: &str) -> String {
    code.chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .map(|c| match c.to_ascii_uppercase() {
            'O' => '0',
            'I' | 'L' => '1',
            other => other,
        })
        .collect()
}

/// A random (version 4) UUID in lower case.
fn new_uuid() -> AuthResult<String> {
    let mut b = backchannel_protocol::jose::random_bytes(16).map_err(AuthError::internal)?;
    if b.len() != 16 {
        return Err(AuthError::internal("short random read"));
    }
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    Ok(format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_codes_normalise_to_the_issued_one() {
        assert_eq!(normalize_code("ab0l-1OiZ 9"), "AB01101Z9");
        assert_eq!(normalize_code("K7QX-2M9P"), "K7QX2M9P");
    }

    #[test]
    fn generated_ids_and_codes_are_command_line_safe() {
        for _ in 0..200 {
            let id = Domain::random_id(20).unwrap();
            assert_eq!(id.len(), 20);
            assert!(
                id.bytes()
                    .all(|b| b.is_ascii_lowercase() || (b'2'..=b'7').contains(&b))
            );
            let code = Domain::random_code(5).unwrap();
            assert_eq!(code.len(), 24);
            assert!(!code.starts_with('-'));
            assert_eq!(normalize_code(&code).len(), 20);
        }
    }

    #[test]
    fn uuids_are_version_4_lower_case() {
        let u = new_uuid().unwrap();
        assert!(crate::domain::hint::is_lower_uuid(&u));
        assert_eq!(&u[14..15], "4");
    }
}
