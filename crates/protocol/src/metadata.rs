//! Authorization server metadata (RFC 8414, OpenID Connect Discovery 1.0, CIBA Core §4).

use serde::{Deserialize, Serialize};

/// The discovery document served at `/.well-known/openid-configuration` and
/// `/.well-known/oauth-authorization-server`. Unknown fields are kept so a client can read
/// metadata from other servers too.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProviderMetadata {
    pub issuer: String,
    pub jwks_uri: String,
    pub token_endpoint: String,
    pub backchannel_authentication_endpoint: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization_endpoint: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub userinfo_endpoint: Option<String>,
    #[serde(default)]
    pub backchannel_token_delivery_modes_supported: Vec<String>,
    #[serde(default)]
    pub backchannel_authentication_request_signing_alg_values_supported: Vec<String>,
    #[serde(default)]
    pub backchannel_user_code_parameter_supported: bool,
    #[serde(default)]
    pub grant_types_supported: Vec<String>,
    #[serde(default)]
    pub response_types_supported: Vec<String>,
    #[serde(default)]
    pub subject_types_supported: Vec<String>,
    #[serde(default)]
    pub scopes_supported: Vec<String>,
    #[serde(default)]
    pub claims_supported: Vec<String>,
    #[serde(default)]
    pub token_endpoint_auth_methods_supported: Vec<String>,
    #[serde(default)]
    pub token_endpoint_auth_signing_alg_values_supported: Vec<String>,
    #[serde(default)]
    pub id_token_signing_alg_values_supported: Vec<String>,
    /// OIDC Discovery §3: JWE `alg` and `enc` values for encrypted ID tokens.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub id_token_encryption_alg_values_supported: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub id_token_encryption_enc_values_supported: Vec<String>,
    #[serde(default)]
    pub request_object_signing_alg_values_supported: Vec<String>,
    #[serde(default)]
    pub authorization_details_types_supported: Vec<String>,
    #[serde(default)]
    pub acr_values_supported: Vec<String>,
    #[serde(default)]
    pub claims_parameter_supported: bool,
    #[serde(default)]
    pub request_parameter_supported: bool,
    #[serde(flatten)]
    pub other: serde_json::Map<String, serde_json::Value>,
}
