//! The discovery document (OpenID Connect Discovery 1.0 §3, RFC 8414 §2, CIBA Core §4): what
//! this server supports, said in one place.

use backchannel_protocol::jose::Algorithm;
use backchannel_protocol::jose::jwe::ContentEncryptionAlg;
use backchannel_protocol::metadata::ProviderMetadata;
use backchannel_protocol::oauth::{ClientAuthMethod, GRANT_TYPE_CIBA, GRANT_TYPE_REFRESH_TOKEN};
use serde_json::json;

use super::Domain;
use super::id_token_encryption::ID_TOKEN_ENCRYPTION_ALGS;
use super::token::{ACR_DEVICE, ACR_DEVICE_UV, PROFILE_CLAIMS};

/// Claims an ID token may carry besides the profile claims.
const STANDARD_CLAIMS: &[&str] = &[
    "sub",
    "iss",
    "aud",
    "exp",
    "iat",
    "auth_time",
    "acr",
    "amr",
    "email",
    "email_verified",
    "phone_number",
];
const SCOPES: &[&str] = &["openid", "email", "profile", "phone"];
const DELIVERY_MODES: &[&str] = &["poll", "ping", "push"];

fn owned(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

impl Domain {
    /// `/.well-known/openid-configuration`.
    pub fn provider_metadata(&self) -> ProviderMetadata {
        let algs: Vec<String> = Algorithm::ALL
            .iter()
            .map(|a| a.as_str().to_owned())
            .collect();
        let mut claims = owned(STANDARD_CLAIMS);
        claims.extend(owned(&PROFILE_CLAIMS));
        let auth_methods: Vec<String> = ClientAuthMethod::ALL
            .iter()
            .map(|m| m.as_str().to_owned())
            .collect();
        // RFC 7662 §4 / RFC 7009 §2.1 (RFC 8414 §2 names): both authenticate clients as the
        // token endpoint does.
        let mut other = serde_json::Map::new();
        other.insert(
            "introspection_endpoint".into(),
            json!(self.url("/introspect")),
        );
        other.insert("revocation_endpoint".into(), json!(self.url("/revoke")));
        for name in [
            "introspection_endpoint_auth_methods_supported",
            "revocation_endpoint_auth_methods_supported",
        ] {
            other.insert(name.into(), json!(auth_methods));
        }
        for name in [
            "introspection_endpoint_auth_signing_alg_values_supported",
            "revocation_endpoint_auth_signing_alg_values_supported",
        ] {
            other.insert(name.into(), json!(algs));
        }
        ProviderMetadata {
            issuer: self.issuer.clone(),
            jwks_uri: self.url("/jwks"),
            token_endpoint: self.url("/token"),
            backchannel_authentication_endpoint: self.url("/bc-authorize"),
            authorization_endpoint: None,
            userinfo_endpoint: Some(self.url("/userinfo")),
            backchannel_token_delivery_modes_supported: owned(DELIVERY_MODES),
            backchannel_authentication_request_signing_alg_values_supported: algs.clone(),
            backchannel_user_code_parameter_supported: true,
            grant_types_supported: vec![GRANT_TYPE_CIBA.into(), GRANT_TYPE_REFRESH_TOKEN.into()],
            response_types_supported: vec![],
            subject_types_supported: vec!["public".into()],
            scopes_supported: owned(SCOPES),
            claims_supported: claims,
            token_endpoint_auth_methods_supported: auth_methods,
            token_endpoint_auth_signing_alg_values_supported: algs.clone(),
            id_token_signing_alg_values_supported: algs.clone(),
            id_token_encryption_alg_values_supported: ID_TOKEN_ENCRYPTION_ALGS
                .iter()
                .map(|a| a.as_str().to_owned())
                .collect(),
            id_token_encryption_enc_values_supported: ContentEncryptionAlg::ALL
                .iter()
                .map(|e| e.as_str().to_owned())
                .collect(),
            request_object_signing_alg_values_supported: algs,
            authorization_details_types_supported: self.config.authorization_details.types.clone(),
            acr_values_supported: vec![ACR_DEVICE.into(), ACR_DEVICE_UV.into()],
            claims_parameter_supported: false,
            request_parameter_supported: true,
            other,
        }
    }
}
