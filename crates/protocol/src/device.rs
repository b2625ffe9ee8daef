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
    /// Approving needs the user verified (PIN, biometrics, WebAuthn): an approval with
    /// `user_verified: false` is refused. Absent when not required.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub uv_required: bool,
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
    /// The WebAuthn assertion that verified the user for this decision (browser authenticator,
    /// `docs/device-api.md` §9): required with `user_verified: true` from a device that
    /// registered a WebAuthn credential.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webauthn: Option<WebAuthnAssertion>,
    /// With a denial: the user says they did not ask for this request ("not me"). The server
    /// records it and blocks the client from the user for a while (SPEC issue 13).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub not_me: bool,
}

/// A WebAuthn assertion (`navigator.credentials.get`) carried in a decision; every member is
/// base64url without padding. Its challenge is [`webauthn_decision_challenge`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebAuthnAssertion {
    /// The credential's raw id.
    pub credential_id: String,
    pub authenticator_data: String,
    pub client_data_json: String,
    pub signature: String,
}

/// `POST /device/v1/device/webauthn`: the credential a browser registered
/// (`navigator.credentials.create`, `none` attestation) to verify its user; base64url members.
/// Its challenge is [`webauthn_registration_challenge`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebAuthnRegistration {
    pub credential_id: String,
    pub client_data_json: String,
    pub attestation_object: String,
}

/// The answer to a registration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebAuthnCredentialInfo {
    pub credential_id: String,
    /// `ES256`, `EdDSA` or `RS256`.
    pub alg: String,
}

/// `GET /device/v1/webpush`: the VAPID public key a browser subscribes with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebPushKey {
    /// Uncompressed P-256 point, base64url: `applicationServerKey` of `pushManager.subscribe`.
    pub application_server_key: String,
}

/// The text whose SHA-256 is the WebAuthn challenge of a registration: the device id, so the
/// credential is bound to the device that registers it (the call is device-signed, once).
pub fn webauthn_registration_challenge(device_id: &str) -> String {
    format!("backchannel:webauthn-register:v1.{device_id}")
}

/// The text whose SHA-256 is the WebAuthn challenge of a decision: the challenge id, the
/// decision and the `shown_hash`, so the user's gesture approves exactly this transaction.
pub fn webauthn_decision_challenge(
    challenge_id: &str,
    decision: Decision,
    shown_hash: &str,
) -> String {
    let decision = match decision {
        Decision::Approve => "approve",
        Decision::Deny => "deny",
    };
    format!("backchannel:webauthn-decision:v1.{challenge_id}.{decision}.{shown_hash}")
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
