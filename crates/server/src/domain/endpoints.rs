//! The client-facing endpoints as protocol operations, from a client's raw credentials and
//! parameters to the answer: the backchannel authentication endpoint (CIBA Core §7) and the
//! token endpoint (RFC 6749 §3.2, §5) with its `grant_type` dispatch, and the introspection
//! (RFC 7662) and revocation (RFC 7009) endpoints, which authenticate clients as the token
//! endpoint does. Handlers only extract and render.

use backchannel_protocol::oauth::{
    BackchannelAuthResponse, GRANT_TYPE_CIBA, GRANT_TYPE_REFRESH_TOKEN, TokenResponse,
};
use serde_json::Value;

use super::Domain;
use super::backchannel::Params;
use super::client_auth::ClientCredentials;
use super::error::{AuthError, AuthResult};
use super::introspection::TokenHint;
use super::model::Client;

/// A request the backchannel authentication endpoint accepted.
pub struct Started {
    pub client: Client,
    pub response: BackchannelAuthResponse,
}

impl Domain {
    /// `POST /bc-authorize`: authenticates the client at `endpoint`, then validates and
    /// stores the request.
    pub async fn backchannel_request(
        &self,
        credentials: &ClientCredentials,
        endpoint: &str,
        params: &Params,
    ) -> AuthResult<Started> {
        let client = self.authenticate_client(credentials, endpoint).await?;
        let response = self.start_backchannel_auth(&client, params).await?;
        Ok(Started { client, response })
    }

    /// `POST /token`: `grant_type` is required (checked before the client, as RFC 6749 §5.2
    /// lists it among malformed requests), the client is authenticated, then the grant runs.
    pub async fn token_request(
        &self,
        credentials: &ClientCredentials,
        endpoint: &str,
        params: &Params,
    ) -> AuthResult<TokenResponse> {
        let param = |name: &str| params.get(name).map(String::as_str).unwrap_or("");
        let grant_type = param("grant_type");
        if grant_type.is_empty() {
            return Err(AuthError::invalid_request("grant_type is required"));
        }
        let client = self.authenticate_client(credentials, endpoint).await?;
        match grant_type {
            GRANT_TYPE_CIBA => self.redeem_auth_req_id(&client, param("auth_req_id")).await,
            GRANT_TYPE_REFRESH_TOKEN => {
                self.refresh_tokens(
                    &client,
                    param("refresh_token"),
                    params.get("scope").map(String::as_str),
                )
                .await
            }
            other => Err(AuthError::UnsupportedGrantType(format!(
                "grant_type {other} is not supported"
            ))),
        }
    }
}

impl Domain {
    /// `POST /introspect` (RFC 7662 §2): the client is authenticated, then `token` is looked
    /// up (`token_type_hint` first, if given).
    pub async fn introspection_request(
        &self,
        credentials: &ClientCredentials,
        endpoint: &str,
        params: &Params,
    ) -> AuthResult<Value> {
        let client = self.authenticate_client(credentials, endpoint).await?;
        let token = params.get("token").map(String::as_str).unwrap_or("");
        let hint = TokenHint::parse(params.get("token_type_hint").map(String::as_str));
        self.introspect(&client, token, hint).await
    }

    /// `POST /revoke` (RFC 7009 §2): the client is authenticated, then `token` is revoked.
    pub async fn revocation_request(
        &self,
        credentials: &ClientCredentials,
        endpoint: &str,
        params: &Params,
    ) -> AuthResult<()> {
        let client = self.authenticate_client(credentials, endpoint).await?;
        let token = params.get("token").map(String::as_str).unwrap_or("");
        let hint = TokenHint::parse(params.get("token_type_hint").map(String::as_str));
        self.revoke(&client, token, hint).await
    }
}
