//! What operators list, look up and switch off (clients, users, devices): one domain function
//! and one typed answer each, shared by the admin API and `backchannel admin`.

use backchannel_protocol::device::DeviceInfo;
use backchannel_protocol::jose::jwe::{ContentEncryptionAlg, KeyManagementAlg};
use backchannel_protocol::jose::{Algorithm, Jwks};
use backchannel_protocol::oauth::{
    ClientAuthMethod, DeliveryMode, GRANT_TYPE_CIBA, GRANT_TYPE_REFRESH_TOKEN,
};
use serde::Serialize;

use super::Domain;
use super::error::{AuthError, AuthResult};
use super::model::{AuthRequest, AuthRequestState, Client, User};

/// A client as the admin API shows it (never the secret hash).
#[derive(Debug, Clone, Serialize)]
pub struct ClientView {
    pub client_id: String,
    pub client_name: String,
    pub token_endpoint_auth_method: ClientAuthMethod,
    pub jwks: Option<Jwks>,
    pub jwks_uri: Option<String>,
    pub scope: String,
    pub backchannel_token_delivery_mode: DeliveryMode,
    pub backchannel_client_notification_endpoint: Option<String>,
    pub backchannel_authentication_request_signing_alg: Option<Algorithm>,
    pub backchannel_user_code_parameter: bool,
    pub id_token_signed_response_alg: Algorithm,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id_token_encrypted_response_alg: Option<KeyManagementAlg>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id_token_encrypted_response_enc: Option<ContentEncryptionAlg>,
    /// RFC 7591 `grant_types`.
    pub grant_types: Vec<String>,
    pub disabled: bool,
    pub created_at: i64,
}

impl From<&Client> for ClientView {
    fn from(c: &Client) -> Self {
        ClientView {
            client_id: c.id.clone(),
            client_name: c.name.clone(),
            token_endpoint_auth_method: c.auth_method,
            jwks: c.jwks.clone(),
            jwks_uri: c.jwks_uri.clone(),
            scope: c.scopes.join(" "),
            backchannel_token_delivery_mode: c.delivery_mode,
            backchannel_client_notification_endpoint: c.notification_endpoint.clone(),
            backchannel_authentication_request_signing_alg: c.request_signing_alg,
            backchannel_user_code_parameter: c.user_code_required,
            id_token_signed_response_alg: c.id_token_signing_alg,
            id_token_encrypted_response_alg: c.id_token_encryption.map(|e| e.alg),
            id_token_encrypted_response_enc: c.id_token_encryption.map(|e| e.enc),
            grant_types: std::iter::once(GRANT_TYPE_CIBA)
                .chain(c.refresh_tokens.then_some(GRANT_TYPE_REFRESH_TOKEN))
                .map(str::to_owned)
                .collect(),
            disabled: c.disabled,
            created_at: c.created_at,
        }
    }
}

/// How many of a user's requests `user requests` lists by default, and at most.
pub const USER_REQUESTS_DEFAULT: i64 = 20;
pub const USER_REQUESTS_MAX: i64 = 500;

/// A user's recent requests.
#[derive(Debug, Clone, Serialize)]
pub struct UserRequests {
    pub sub: String,
    pub requests: Vec<RequestView>,
}

/// One request as operators see it: who asked, what for, and how it ended. The id is the
/// stored key (a hash of the `auth_req_id`), never a usable handle.
#[derive(Debug, Clone, Serialize)]
pub struct RequestView {
    pub id: String,
    pub client_id: String,
    pub scope: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub binding_message: Option<String>,
    pub created_at: i64,
    pub expires_at: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decided_at: Option<i64>,
    /// `pending`, `approved`, `redeemed` (tokens issued), `denied`, `denied_not_me` (the user
    /// said they did not ask for it), `replaced` (by the client's newer request) or `expired`.
    pub outcome: &'static str,
    pub user_verified: bool,
    pub uv_required: bool,
}

impl RequestView {
    fn of(r: &AuthRequest, now: i64) -> Self {
        let outcome = match r.state {
            AuthRequestState::Denied if r.not_me => "denied_not_me",
            AuthRequestState::Denied => "denied",
            AuthRequestState::Redeemed => "redeemed",
            AuthRequestState::Approved => "approved",
            AuthRequestState::Pending if r.replaced_at.is_some() => "replaced",
            AuthRequestState::Pending if r.expires_at <= now => "expired",
            AuthRequestState::Pending => "pending",
        };
        RequestView {
            id: r.id.clone(),
            client_id: r.client_id.clone(),
            scope: r.scope.clone(),
            binding_message: r.binding_message.clone(),
            created_at: r.created_at,
            expires_at: r.expires_at,
            decided_at: r.decided_at,
            outcome,
            user_verified: r.user_verified,
            uv_required: r.uv_required,
        }
    }
}

/// A user as the admin API shows it (never the user-code hash).
#[derive(Debug, Clone, Serialize)]
pub struct UserView {
    pub sub: String,
    pub email: Option<String>,
    pub nric: Option<String>,
    pub username: Option<String>,
    pub phone: Option<String>,
    pub claims: serde_json::Map<String, serde_json::Value>,
    pub has_user_code: bool,
    pub disabled: bool,
    pub created_at: i64,
}

impl From<&User> for UserView {
    fn from(u: &User) -> Self {
        UserView {
            sub: u.sub.clone(),
            email: u.email.clone(),
            nric: u.nric.clone(),
            username: u.username.clone(),
            phone: u.phone.clone(),
            claims: u.claims.clone(),
            has_user_code: u.user_code_hash.is_some(),
            disabled: u.disabled,
            created_at: u.created_at,
        }
    }
}

/// `GET /admin/v1/clients`, `admin client list`.
#[derive(Debug, Clone, Serialize)]
pub struct ClientList {
    pub clients: Vec<ClientView>,
}

/// `GET /admin/v1/users`, `admin user list`.
#[derive(Debug, Clone, Serialize)]
pub struct UserList {
    pub users: Vec<UserView>,
}

/// A user just created: its `sub`, which every later command names it by.
#[derive(Debug, Clone, Serialize)]
pub struct UserCreated {
    pub sub: String,
}

/// `GET /admin/v1/users/{sub}/devices`, `admin device list`.
#[derive(Debug, Clone, Serialize)]
pub struct DeviceList {
    pub devices: Vec<DeviceInfo>,
}

/// A client switched off.
#[derive(Debug, Clone, Serialize)]
pub struct ClientDisabled {
    pub client_id: String,
    pub disabled: bool,
}

/// A user switched off.
#[derive(Debug, Clone, Serialize)]
pub struct UserDisabled {
    pub sub: String,
    pub disabled: bool,
}

/// A device switched off.
#[derive(Debug, Clone, Serialize)]
pub struct DeviceDisabled {
    pub device_id: String,
    pub disabled: bool,
}

fn no_such(what: &str) -> AuthError {
    AuthError::NotFound(format!("no such {what}"))
}

impl Domain {
    pub async fn list_clients(&self) -> AuthResult<ClientList> {
        let clients = self.stores.clients.list_clients().await?;
        Ok(ClientList {
            clients: clients.iter().map(ClientView::from).collect(),
        })
    }

    pub async fn client_view(&self, client_id: &str) -> AuthResult<ClientView> {
        let client = self.stores.clients.get_client(client_id).await?;
        client
            .as_ref()
            .map(ClientView::from)
            .ok_or_else(|| no_such("client"))
    }

    /// Disables a client: it can no longer authenticate (its pending requests can no longer
    /// be redeemed).
    pub async fn disable_client(&self, client_id: &str) -> AuthResult<ClientDisabled> {
        if !self
            .stores
            .clients
            .set_client_disabled(client_id, true)
            .await?
        {
            return Err(no_such("client"));
        }
        tracing::info!(client_id, "client disabled");
        Ok(ClientDisabled {
            client_id: client_id.to_owned(),
            disabled: true,
        })
    }

    pub async fn list_users(&self) -> AuthResult<UserList> {
        let users = self.stores.users.list_users().await?;
        Ok(UserList {
            users: users.iter().map(UserView::from).collect(),
        })
    }

    pub async fn user_view(&self, sub: &str) -> AuthResult<UserView> {
        let user = self.stores.users.get_user(sub).await?;
        user.as_ref()
            .map(UserView::from)
            .ok_or_else(|| no_such("user"))
    }

    /// Disables a user: no new request may name them, approvals not yet redeemed yield no
    /// tokens, their access tokens are inactive, and their refresh tokens are revoked.
    pub async fn disable_user(&self, sub: &str) -> AuthResult<UserDisabled> {
        if !self.stores.users.set_user_disabled(sub, true).await? {
            return Err(no_such("user"));
        }
        let revoked = self
            .stores
            .tokens
            .revoke_user_refresh_families(sub, self.now_ms())
            .await?;
        tracing::info!(sub, revoked_refresh_families = revoked, "user disabled");
        Ok(UserDisabled {
            sub: sub.to_owned(),
            disabled: true,
        })
    }

    /// Every device of a user, disabled ones included.
    pub async fn user_devices(&self, sub: &str) -> AuthResult<DeviceList> {
        Ok(DeviceList {
            devices: self.list_user_devices(sub).await?,
        })
    }

    /// `admin user requests SUB` and `GET /admin/v1/users/{sub}/requests`: the user's most
    /// recent requests (at most `limit`, newest first) with their outcome.
    pub async fn user_requests(&self, sub: &str, limit: Option<i64>) -> AuthResult<UserRequests> {
        let limit = limit.unwrap_or(USER_REQUESTS_DEFAULT);
        if !(1..=USER_REQUESTS_MAX).contains(&limit) {
            return Err(AuthError::invalid_request(format!(
                "limit must be between 1 and {USER_REQUESTS_MAX}"
            )));
        }
        if self.stores.users.get_user(sub).await?.is_none() {
            return Err(no_such("user"));
        }
        let now = self.now_ms();
        let requests = self.stores.requests.user_requests(sub, limit).await?;
        Ok(UserRequests {
            sub: sub.to_owned(),
            requests: requests.iter().map(|r| RequestView::of(r, now)).collect(),
        })
    }

    /// [`Domain::disable_device`] for an operator.
    pub async fn disable_device_by_operator(&self, device_id: &str) -> AuthResult<DeviceDisabled> {
        self.disable_device(device_id).await?;
        Ok(DeviceDisabled {
            device_id: device_id.to_owned(),
            disabled: true,
        })
    }
}
