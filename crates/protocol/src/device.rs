//! The authenticator device API's messages (`/device/v1/...`): enrolment, the device-signed
//! request JWT, server-signed challenges and device-signed decisions. `docs/device-api.md`
//! describes the protocol around them.

use serde::{Deserialize, Serialize};

use crate::jose::Jwk;

/// `Authorization: Device <jwt>`: the scheme of device-authenticated calls.
pub const DEVICE_AUTH_SCHEME: &str = "Device";
/// `typ` of the short-lived JWT a device signs for each API call.
pub const DEVICE_AUTH_JWT_TYP: &str = "device-auth+jwt";
/// `typ` of the challenge JWT the server signs for one device.
pub const CHALLENGE_JWT_TYP: &str = "challenge+jwt";
/// `typ` of the decision JWS a device signs over a challenge.
pub const DECISION_JWT_TYP: &str = "decision+jwt";
/// Longest lifetime (`exp` − `iat`, seconds) the server accepts for a device request JWT.
pub const DEVICE_AUTH_MAX_LIFETIME_SECS: i64 = 120;

/// Push channels a device can be woken through. All optional: a device with none is reached
/// when it asks (and, later, over its live event stream).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct PushRegistration {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub apns_token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fcm_token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webpush: Option<WebPushSubscription>,
    /// Channels the server found dead (`apns`, `fcm`, `webpush`: the push service said the
    /// token or subscription is gone) and no longer uses. Set by the server; a device clears it
    /// by registering again (`PUT /device/v1/device/push`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub disabled: Vec<String>,
}

/// `GET /device/v1/device`, `PUT /device/v1/device/push` and the admin API: a device as its
/// owner and operators see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceInfo {
    pub device_id: String,
    pub name: String,
    pub push: PushRegistration,
    pub disabled: bool,
    /// Unix seconds.
    pub created_at: i64,
}

/// A browser `PushSubscription` as JSON (W3C Push API).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebPushSubscription {
    pub endpoint: String,
    pub keys: WebPushKeys,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebPushKeys {
    pub p256dh: String,
    pub auth: String,
}

/// `POST /device/v1/enrol`: a one-time code and the device's own public key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrolRequest {
    pub code: String,
    pub public_jwk: Jwk,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub push: Option<PushRegistration>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrolResponse {
    pub device_id: String,
    pub issuer: String,
}

/// Claims of the JWT a device signs for one API call (`typ` = [`DEVICE_AUTH_JWT_TYP`], `kid` =
/// the device id). Bound to the method and the public URL like DPoP's `htm`/`htu`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceAuthClaims {
    pub iss: String,
    pub htm: String,
    pub htu: String,
    pub iat: i64,
    pub exp: i64,
    pub jti: String,
}

/// Claims of a challenge JWT (`typ` = [`CHALLENGE_JWT_TYP`]), signed with the server's key.
/// Everything the user is shown comes from here.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChallengeClaims {
    pub iss: String,
    /// The device id the challenge was made for.
    pub aud: String,
    /// The challenge id.
    pub jti: String,
    pub iat: i64,
    pub exp: i64,
    pub client_id: String,
    pub client_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub binding_message: Option<String>,
    pub scope: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acr_values: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization_details: Option<serde_json::Value>,
}

/// One pending challenge as the device API returns it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChallengeEnvelope {
    pub id: String,
    /// The server-signed challenge JWT.
    pub challenge: String,
}

/// `GET /device/v1/challenges`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ChallengeList {
    pub challenges: Vec<ChallengeEnvelope>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Decision {
    Approve,
    Deny,
}

/// Where one device's challenge stands; `challenge_closed` events carry it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChallengeState {
    Pending,
    Approved,
    Denied,
    /// Another device decided, the request expired, or the device was disabled.
    Closed,
}

impl ChallengeState {
    pub fn as_str(self) -> &'static str {
        match self {
            ChallengeState::Pending => "pending",
            ChallengeState::Approved => "approved",
            ChallengeState::Denied => "denied",
            ChallengeState::Closed => "closed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "pending" => Some(ChallengeState::Pending),
            "approved" => Some(ChallengeState::Approved),
            "denied" => Some(ChallengeState::Denied),
            "closed" => Some(ChallengeState::Closed),
            _ => None,
        }
    }
}

/// Claims of the decision JWS (`typ` = [`DECISION_JWT_TYP`], `kid` = device id).
/// `shown_hash` is base64url(SHA-256(the challenge JWT exactly as received)): the approval is
/// bound to what was displayed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DecisionClaims {
    pub iss: String,
    pub challenge_id: String,
    pub decision: Decision,
    pub user_verified: bool,
    pub shown_hash: String,
    pub iat: i64,
    pub jti: String,
}

/// `POST /device/v1/challenges/{id}/decision`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DecisionRequest {
    pub decision: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DecisionResponse {
    pub challenge_id: String,
    /// `approved` or `denied`.
    pub state: String,
}
