//! The records Backchannel keeps: clients, users, devices, enrolment codes, backchannel
//! authentication requests and their per-device challenges. All timestamps are Unix
//! milliseconds (`i64`), taken from the injected [`Clock`](super::clock::Clock).

pub use backchannel_protocol::device::ChallengeState;
use backchannel_protocol::device::PushRegistration;
use backchannel_protocol::jose::jwe::{ContentEncryptionAlg, KeyManagementAlg};
use backchannel_protocol::jose::{Algorithm, Jwk, Jwks};
use backchannel_protocol::oauth::{ClientAuthMethod, DeliveryMode};
use serde::{Deserialize, Serialize};

/// A registered relying party.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Client {
    pub id: String,
    pub name: String,
    pub auth_method: ClientAuthMethod,
    /// SHA-256 (hex) of the server-generated secret; `None` for `private_key_jwt` clients.
    pub secret_hash: Option<String>,
    pub jwks: Option<Jwks>,
    pub jwks_uri: Option<String>,
    /// Scopes the client may request; always contains `openid`.
    pub scopes: Vec<String>,
    pub delivery_mode: DeliveryMode,
    pub notification_endpoint: Option<String>,
    /// `backchannel_authentication_request_signing_alg`: when set, every request is a signed
    /// request object with this algorithm (CIBA Core §7.1.1).
    pub request_signing_alg: Option<Algorithm>,
    /// `backchannel_user_code_parameter` (CIBA Core §4).
    pub user_code_required: bool,
    pub id_token_signing_alg: Algorithm,
    /// `id_token_encrypted_response_alg`/`_enc` (OIDC Registration §2): when set, ID tokens
    /// are signed, then encrypted to the client's `enc` key (OIDC Core §10.2).
    pub id_token_encryption: Option<IdTokenEncryption>,
    pub disabled: bool,
    pub created_at: i64,
    /// Registered with the `refresh_token` grant (RFC 7591 `grant_types`): its approvals
    /// also yield a refresh token.
    #[serde(default)]
    pub refresh_tokens: bool,
}

/// How a client's ID tokens are encrypted (OIDC Core §10.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdTokenEncryption {
    pub alg: KeyManagementAlg,
    pub enc: ContentEncryptionAlg,
}

/// An end user who can be named by a `login_hint`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct User {
    /// Lower-case UUID; the ID token's `sub`.
    pub sub: String,
    /// Stored lower case: e-mail hints match case-insensitively.
    pub email: Option<String>,
    /// Upper case, check letter verified.
    pub nric: Option<String>,
    pub username: Option<String>,
    pub phone: Option<String>,
    /// Further claims (`name`, `given_name`, ...), released by scope.
    pub claims: serde_json::Map<String, serde_json::Value>,
    /// SHA-256 (hex) of the user's CIBA `user_code`, if they have one.
    pub user_code_hash: Option<String>,
    pub disabled: bool,
    pub created_at: i64,
}

/// How a `login_hint` names a user once parsed and normalised by the domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserLookup {
    Sub(String),
    Nric(String),
    Email(String),
    Username(String),
    Phone(String),
}

/// An enrolled authenticator: the user's phone app, browser or CLI, known by its public key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Device {
    pub id: String,
    pub user_sub: String,
    pub name: String,
    pub public_jwk: Jwk,
    pub push: PushRegistration,
    pub disabled: bool,
    pub created_at: i64,
}

impl Device {
    /// The `kty` that marks the external channel's stand-in device: no usable key, so it can
    /// never authenticate to the device API.
    pub const EXTERNAL_KTY: &'static str = "external";

    /// Whether this is the external channel's stand-in (see [`super::external`]).
    pub fn is_external(&self) -> bool {
        self.public_jwk.kty == Self::EXTERNAL_KTY
    }

    /// Whether a challenge for this device is pushed: it registered a channel (APNs, FCM, Web
    /// Push) the server has not found dead, or it is the external channel's stand-in. Other
    /// devices learn of challenges from their event stream or by listing them.
    pub fn receives_pushes(&self) -> bool {
        let reg = &self.push;
        let live = |channel: &str, registered: bool| {
            registered && !reg.disabled.iter().any(|d| d == channel)
        };
        self.is_external()
            || live("apns", reg.apns_token.is_some())
            || live("fcm", reg.fcm_token.is_some())
            || live("webpush", reg.webpush.is_some())
    }
}

/// A one-time enrolment code for one user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enrolment {
    /// SHA-256 (hex) of the code; the code itself is shown once.
    pub code_hash: String,
    pub user_sub: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub used_at: Option<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthRequestState {
    Pending,
    Approved,
    Denied,
    /// Tokens were issued; the `auth_req_id` is spent.
    Redeemed,
}

impl AuthRequestState {
    pub fn as_str(self) -> &'static str {
        match self {
            AuthRequestState::Pending => "pending",
            AuthRequestState::Approved => "approved",
            AuthRequestState::Denied => "denied",
            AuthRequestState::Redeemed => "redeemed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "pending" => Some(AuthRequestState::Pending),
            "approved" => Some(AuthRequestState::Approved),
            "denied" => Some(AuthRequestState::Denied),
            "redeemed" => Some(AuthRequestState::Redeemed),
            _ => None,
        }
    }
}

/// A backchannel authentication request (CIBA Core §7). `id` is the SHA-256 (hex) of the
/// `auth_req_id` handed to the client, so the store never holds a usable handle.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuthRequest {
    pub id: String,
    pub client_id: String,
    pub user_sub: String,
    pub scope: String,
    pub acr_values: Option<String>,
    pub binding_message: Option<String>,
    pub authorization_details: Option<serde_json::Value>,
    pub delivery_mode: DeliveryMode,
    pub client_notification_token: Option<String>,
    pub created_at: i64,
    pub expires_at: i64,
    /// Current minimum polling interval in seconds; grows by 5 with each `slow_down`.
    pub interval_secs: i64,
    pub last_polled_at: Option<i64>,
    pub state: AuthRequestState,
    pub decided_at: Option<i64>,
    /// Whether the approving device verified the user (PIN, biometrics): `amr` and `acr`.
    pub user_verified: bool,
    pub redeemed_at: Option<i64>,
    /// The `auth_req_id` itself, kept only for ping and push clients, which must be sent it
    /// (CIBA Core §10.2, §10.3); poll requests store only its hash (`id`).
    pub auth_req_id: Option<String>,
    /// Approval needs a verified user (the client's policy or its `acr_values`): the challenge
    /// says so, and an approval without user verification is refused.
    #[serde(default)]
    pub uv_required: bool,
    /// When a newer request of the same client for the same user replaced this one; it ended
    /// then (`expires_at` was set to the same time).
    #[serde(default)]
    pub replaced_at: Option<i64>,
    /// Denied by a user who said they did not ask for it.
    #[serde(default)]
    pub not_me: bool,
}

/// One device's copy of a backchannel request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Challenge {
    pub id: String,
    pub auth_request_id: String,
    pub device_id: String,
    pub state: ChallengeState,
    pub created_at: i64,
    pub decided_at: Option<i64>,
    /// The device-signed decision JWS, kept as audit evidence.
    pub decision_jws: Option<String>,
}

/// A decision a device made on a challenge, already verified by the domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedDecision {
    pub challenge_id: String,
    pub device_id: String,
    pub approved: bool,
    pub user_verified: bool,
    /// A denial the user marked "I did not ask for this".
    pub not_me: bool,
    pub decision_jws: String,
    pub decided_at: i64,
    /// The ping/push notification to queue in the same transaction, if the client wants one.
    pub notification: Option<Notification>,
}

/// What a client notification carries (CIBA Core §10.2, §10.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NotificationKind {
    /// Ping mode: `{"auth_req_id"}`; the client then polls.
    Ping,
    /// Push mode, approved: the token response, minted at the first attempt and kept so
    /// every retry sends the same tokens.
    PushTokens,
    /// Push mode: `{"error", "auth_req_id"}` (denied, expired, failed).
    PushError,
}

impl NotificationKind {
    pub fn as_str(self) -> &'static str {
        match self {
            NotificationKind::Ping => "ping",
            NotificationKind::PushTokens => "push_tokens",
            NotificationKind::PushError => "push_error",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "ping" => Some(NotificationKind::Ping),
            "push_tokens" => Some(NotificationKind::PushTokens),
            "push_error" => Some(NotificationKind::PushError),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NotificationState {
    Pending,
    Delivered,
    /// Given up: a final answer (4xx, redirect, refused address) or the deadline passed.
    Failed,
}

impl NotificationState {
    pub fn as_str(self) -> &'static str {
        match self {
            NotificationState::Pending => "pending",
            NotificationState::Delivered => "delivered",
            NotificationState::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "pending" => Some(NotificationState::Pending),
            "delivered" => Some(NotificationState::Delivered),
            "failed" => Some(NotificationState::Failed),
            _ => None,
        }
    }
}

/// A queued client notification (the durable outbox). At most one per request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notification {
    pub id: String,
    pub auth_request_id: String,
    pub client_id: String,
    pub kind: NotificationKind,
    /// The JSON body to POST, once known; a retry sends exactly these bytes.
    pub payload: Option<String>,
    pub state: NotificationState,
    pub attempts: i64,
    /// Not sent before this time (backoff, or another node's lease).
    pub next_attempt_at: i64,
    /// Never sent after this time.
    pub deadline: i64,
    pub last_error: Option<String>,
    pub created_at: i64,
    pub delivered_at: Option<i64>,
}

/// A server signing key as stored: the private JWK as JSON text, or, when `sealed`, that
/// text sealed with the `[keys] encryption_key_file` key (`domain::key_sealing`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredKey {
    pub kid: String,
    pub alg: Algorithm,
    pub private_jwk: String,
    pub sealed: bool,
    pub created_at: i64,
}

/// What a device's event stream tells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeviceEventKind {
    /// A new challenge for this device.
    Challenge,
    /// The challenge was decided (here or on another device), expired or withdrawn.
    ChallengeClosed,
}

impl DeviceEventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            DeviceEventKind::Challenge => "challenge",
            DeviceEventKind::ChallengeClosed => "challenge_closed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "challenge" => Some(DeviceEventKind::Challenge),
            "challenge_closed" => Some(DeviceEventKind::ChallengeClosed),
            _ => None,
        }
    }
}

/// One entry of a device's event log; `seq` is the SSE event id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceEvent {
    pub seq: i64,
    pub device_id: String,
    pub kind: DeviceEventKind,
    pub challenge_id: String,
    pub created_at: i64,
}

/// Where a challenge's push delivery stands (`push_deliveries.state`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PushDeliveryState {
    /// Due now or after a backoff (or leased by a worker).
    Pending,
    /// Every live channel was reached, or there was nothing left to push (decided, expired,
    /// device disabled).
    Done,
    /// Given up: a final refusal, the challenge is gone, or no time left before expiry.
    Failed,
}

impl PushDeliveryState {
    pub fn as_str(self) -> &'static str {
        match self {
            PushDeliveryState::Pending => "pending",
            PushDeliveryState::Done => "done",
            PushDeliveryState::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "pending" => Some(PushDeliveryState::Pending),
            "done" => Some(PushDeliveryState::Done),
            "failed" => Some(PushDeliveryState::Failed),
            _ => None,
        }
    }
}

/// A challenge's pushes to its device's registered channels (the durable fan-out queue).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushDelivery {
    pub challenge_id: String,
    pub device_id: String,
    pub state: PushDeliveryState,
    /// Channels already delivered (`apns`, `fcm`, `webpush`).
    pub delivered: Vec<String>,
    pub attempts: i64,
    pub next_attempt_at: i64,
    pub deadline: i64,
    pub last_error: Option<String>,
    pub created_at: i64,
}

/// A refresh-token family (RFC 9700 §4.14.2): the grant one approval made, continued by each
/// rotation, ended by a reuse, a revocation or its absolute lifetime (`expires_at`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RefreshFamily {
    pub id: String,
    pub client_id: String,
    pub user_sub: String,
    /// The device that approved, whose disabling ends the grant.
    pub device_id: Option<String>,
    pub scope: String,
    pub authorization_details: Option<serde_json::Value>,
    /// When the user approved (the tokens' `auth_time`).
    pub authenticated_at: i64,
    pub user_verified: bool,
    pub created_at: i64,
    pub expires_at: i64,
    pub revoked_at: Option<i64>,
}

/// One refresh token of a family, known by the SHA-256 of its value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefreshToken {
    pub hash: String,
    pub family_id: String,
    pub created_at: i64,
    /// Idle expiry: unused until then, it lapses (never after the family's `expires_at`).
    pub expires_at: i64,
    /// Set by its one use; a second presentation is a reuse.
    pub rotated_at: Option<i64>,
    /// The access token minted with it, revoked with the family.
    pub access_jti: String,
    pub access_expires_at: i64,
}
