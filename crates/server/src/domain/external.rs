//! The external HTTP channel (as Keycloak's authentication channel does): for organisations
//! that already have their own app, a challenge is handed to their system — who the user is,
//! who asks, what for, until when, and where to answer — and their system posts the user's
//! decision back to an authenticated callback.
//!
//! In a user's device list the channel appears as one stand-in device (`kty` `external`, no
//! usable key, so it can never call the device API). Its challenges travel through the same
//! durable push queue as the devices' pushes; each callback is authenticated by a token bound
//! to its challenge (an HMAC the server can recompute, so nothing secret is stored), and a late
//! or repeated callback finds the challenge closed.

use aws_lc_rs::hmac;
use backchannel_protocol::device::{DecisionResponse, PushRegistration};
use backchannel_protocol::jose::{Algorithm, Jwk, SigningKey, b64};
use serde::{Deserialize, Serialize};

use super::Domain;
use super::device::Verdict;
use super::error::{AuthError, AuthResult};
use super::model::{
    AuthRequest, AuthRequestState, Challenge, ChallengeState, Client, Device, User,
};

/// What the organisation's system receives.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExternalChallenge {
    pub challenge_id: String,
    pub user: ExternalUser,
    pub client: ExternalClient,
    pub binding_message: Option<String>,
    pub scope: String,
    pub acr_values: Option<String>,
    pub authorization_details: Option<serde_json::Value>,
    /// The approval must come with `user_verified: true` (the organisation's app verified
    /// the user); an approval without it is refused `invalid_decision`.
    #[serde(default)]
    pub uv_required: bool,
    /// The request's expiry, Unix seconds.
    #[serde(rename = "expires_at")]
    pub expires_at_secs: i64,
    /// Where to POST the decision, with `Authorization: Bearer <callback_token>`.
    pub callback_url: String,
    pub callback_token: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExternalUser {
    pub sub: String,
    pub email: Option<String>,
    pub nric: Option<String>,
    pub username: Option<String>,
    pub phone: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExternalClient {
    pub client_id: String,
    pub name: String,
}

/// What the organisation's system answered. Any other value is refused as the body is read
/// (`invalid_request`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExternalVerdict {
    Approve,
    Deny,
}

/// The callback's body.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExternalDecision {
    pub decision: ExternalVerdict,
    /// Whether the organisation's app verified the user (PIN, biometrics). The channel's
    /// word, as authenticated as the callback: it decides the `acr`, and an approval of a
    /// request that requires a verified user without it is refused (the challenge stays
    /// pending for another callback).
    #[serde(default)]
    pub user_verified: bool,
}

impl Domain {
    /// The user's stand-in device for the external channel, created on first use.
    pub async fn external_device(&self, user: &User) -> AuthResult<Device> {
        let id = format!("ext{}", &Domain::hash_hex(&user.sub)[..23]);
        if let Some(d) = self.stores.devices.get_device(&id).await? {
            return Ok(d);
        }
        let device = Device {
            id: id.clone(),
            user_sub: user.sub.clone(),
            name: "external channel".into(),
            public_jwk: Jwk {
                kty: Device::EXTERNAL_KTY.into(),
                ..Default::default()
            },
            push: PushRegistration::default(),
            disabled: false,
            created_at: self.now_ms(),
        };
        match self.stores.devices.insert_device(&device).await {
            Ok(()) => Ok(device),
            // Another request made it at the same moment.
            Err(crate::store::StoreError::Conflict(_)) => self
                .stores
                .devices
                .get_device(&id)
                .await?
                .ok_or_else(|| AuthError::internal("external device vanished")),
            Err(e) => Err(e.into()),
        }
    }

    /// The HMAC key derived from an EdDSA signing key.
    fn callback_key(signer: &SigningKey) -> AuthResult<hmac::Key> {
        let d = signer
            .to_private_jwk()
            .d
            .ok_or_else(|| AuthError::internal("EdDSA key without d"))?;
        let mut material = b"backchannel external callback v1:".to_vec();
        material.extend_from_slice(d.as_bytes());
        Ok(hmac::Key::new(hmac::HMAC_SHA256, &material))
    }

    /// The token that authenticates the callback for one challenge, from the signing EdDSA
    /// key.
    pub fn callback_token(&self, challenge_id: &str) -> AuthResult<String> {
        let key = Domain::callback_key(&self.keys.signer(Algorithm::EdDSA)?)?;
        Ok(b64::encode(
            hmac::sign(&key, challenge_id.as_bytes()).as_ref(),
        ))
    }

    /// Whether `mac` is the callback token of `challenge_id` under any published EdDSA key:
    /// a token handed out before a rotation stays good while its challenge can be decided.
    fn callback_token_valid(&self, challenge_id: &str, mac: &[u8]) -> AuthResult<bool> {
        for signer in self.keys.signers_of(Algorithm::EdDSA) {
            let key = Domain::callback_key(&signer)?;
            if hmac::verify(&key, challenge_id.as_bytes(), mac).is_ok() {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// The message for the organisation's system.
    pub async fn external_challenge(
        &self,
        challenge: &Challenge,
        request: &AuthRequest,
    ) -> AuthResult<ExternalChallenge> {
        let missing = || AuthError::internal("the request's client or user is gone");
        let client: Client = self
            .stores
            .clients
            .get_client(&request.client_id)
            .await?
            .ok_or_else(missing)?;
        let user = self
            .stores
            .users
            .get_user(&request.user_sub)
            .await?
            .ok_or_else(missing)?;
        Ok(ExternalChallenge {
            challenge_id: challenge.id.clone(),
            user: ExternalUser {
                sub: user.sub,
                email: user.email,
                nric: user.nric,
                username: user.username,
                phone: user.phone,
            },
            client: ExternalClient {
                client_id: client.id,
                name: client.name,
            },
            binding_message: request.binding_message.clone(),
            scope: request.scope.clone(),
            acr_values: request.acr_values.clone(),
            authorization_details: request.authorization_details.clone(),
            uv_required: request.uv_required,
            expires_at_secs: request.expires_at.div_euclid(1000),
            callback_url: self.url(&format!(
                "/external/v1/challenges/{}/decision",
                challenge.id
            )),
            callback_token: self.callback_token(&challenge.id)?,
        })
    }

    /// `POST /external/v1/challenges/{id}/decision`: the organisation's answer.
    pub async fn decide_external(
        &self,
        challenge_id: &str,
        token: Option<&str>,
        decision: &ExternalDecision,
    ) -> AuthResult<DecisionResponse> {
        let forged =
            || AuthError::InvalidToken("the callback token does not match this challenge".into());
        let token = token.ok_or_else(forged)?;
        let mac = b64::decode(token).map_err(|_| forged())?;
        if !self.callback_token_valid(challenge_id, &mac)? {
            return Err(forged());
        }
        let approved = decision.decision == ExternalVerdict::Approve;
        let not_found = || AuthError::NotFound("no such external challenge".into());
        let (challenge, request) = self
            .stores
            .requests
            .get_challenge(challenge_id)
            .await?
            .ok_or_else(not_found)?;
        let device = self
            .stores
            .devices
            .get_device(&challenge.device_id)
            .await?
            .ok_or_else(not_found)?;
        if !device.is_external() {
            return Err(not_found());
        }
        let now = self.now_ms();
        if challenge.state != ChallengeState::Pending
            || request.state != AuthRequestState::Pending
            || now >= request.expires_at
        {
            return Err(AuthError::ChallengeClosed);
        }
        let evidence = serde_json::json!({
            "channel": "external",
            "challenge_id": challenge.id,
            "decision": decision.decision,
            "user_verified": decision.user_verified,
            "received_at": now.div_euclid(1000),
        })
        .to_string();
        self.apply_decision(
            &challenge,
            &request,
            &device.id,
            Verdict {
                approved,
                user_verified: decision.user_verified,
                not_me: false,
            },
            evidence,
            now,
        )
        .await
    }
}
