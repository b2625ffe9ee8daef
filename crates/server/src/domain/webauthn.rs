//! WebAuthn user verification for the browser authenticator (SPEC §5, issue 12): the
//! credential a browser registers right after enrolment, and the assertion that turns a
//! device's `user_verified: true` into a verified fact. The relying party is the issuer (RP ID
//! = its host name, origin = its origin). The ceremony checks themselves are in [`ceremony`].
//!
//! Policy: a device with a registered credential claims `user_verified: true` only with an
//! assertion whose challenge binds the challenge id, the decision and the `shown_hash`; a
//! device without one (the CLI) keeps its own word, as before.

pub mod ceremony;

use backchannel_protocol::device::{
    DecisionClaims, WebAuthnAssertion, WebAuthnCredentialInfo, WebAuthnRegistration,
    webauthn_decision_challenge, webauthn_registration_challenge,
};
use backchannel_protocol::jose::{self, Algorithm, Jwk, b64};
use ceremony::{AssertionParts, CeremonyError, CredentialRef, RelyingParty};

use super::Domain;
use super::error::{AuthError, AuthResult};
use super::model::Device;

/// A credential is registered within this long of the device's enrolment (ms): a device key
/// stolen later cannot give itself a user-verification credential.
pub const REGISTRATION_WINDOW_MS: i64 = 10 * 60 * 1000;

/// A device's WebAuthn credential as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebAuthnCredential {
    pub device_id: String,
    /// base64url of the raw credential id.
    pub credential_id: String,
    pub public_jwk: Jwk,
    pub alg: Algorithm,
    pub sign_count: i64,
    pub created_at: i64,
}

fn decode(member: &str, value: &str) -> AuthResult<Vec<u8>> {
    b64::decode(value)
        .map_err(|_| AuthError::invalid_request(format!("{member} must be base64url")))
}

impl Domain {
    fn relying_party(&self) -> AuthResult<RelyingParty> {
        RelyingParty::of_issuer(&self.issuer)
            .ok_or_else(|| AuthError::invalid_request("the issuer has no host name for WebAuthn"))
    }

    /// `POST /device/v1/device/webauthn`: verifies a registration (WebAuthn §7.1, `none`
    /// attestation, user verified) whose challenge is bound to this device, and stores the
    /// credential if the device has none yet.
    pub async fn register_webauthn_credential(
        &self,
        device: &Device,
        req: &WebAuthnRegistration,
    ) -> AuthResult<WebAuthnCredentialInfo> {
        let now = self.now_ms();
        if now - device.created_at > REGISTRATION_WINDOW_MS {
            return Err(AuthError::invalid_request(
                "a WebAuthn credential is registered within 10 minutes of enrolment",
            ));
        }
        let rp = self.relying_party()?;
        let challenge = jose::sha256(webauthn_registration_challenge(&device.id).as_bytes());
        let registered = ceremony::verify_registration(
            &rp,
            &challenge,
            &decode("credential_id", &req.credential_id)?,
            &decode("client_data_json", &req.client_data_json)?,
            &decode("attestation_object", &req.attestation_object)?,
        )
        .map_err(|e| AuthError::invalid_request(format!("WebAuthn registration refused: {e}")))?;
        let credential = WebAuthnCredential {
            device_id: device.id.clone(),
            credential_id: registered.credential_id,
            public_jwk: registered.public_jwk,
            alg: registered.alg,
            sign_count: i64::from(registered.sign_count),
            created_at: now,
        };
        if !self
            .stores
            .webauthn
            .insert_webauthn_credential(&credential)
            .await?
        {
            return Err(AuthError::Conflict(
                "this device already has a WebAuthn credential".into(),
            ));
        }
        tracing::info!(device_id = %device.id, alg = credential.alg.as_str(), "WebAuthn credential registered");
        Ok(WebAuthnCredentialInfo {
            credential_id: credential.credential_id,
            alg: credential.alg.as_str().into(),
        })
    }

    /// Whether a verified decision records a verified user (see the module's policy). The
    /// decision's signature and `shown_hash` were checked before.
    pub(crate) async fn decision_user_verified(
        &self,
        device: &Device,
        claims: &DecisionClaims,
    ) -> AuthResult<bool> {
        let bad = |m: &str| AuthError::InvalidDecision(m.to_owned());
        let credential = self
            .stores
            .webauthn
            .get_webauthn_credential(&device.id)
            .await?;
        match (&claims.webauthn, credential) {
            (None, None) => Ok(claims.user_verified),
            (None, Some(_)) if !claims.user_verified => Ok(false),
            (None, Some(_)) => Err(bad(
                "this device verifies its user with WebAuthn: user_verified needs an assertion",
            )),
            (Some(_), None) => Err(bad("this device has no WebAuthn credential")),
            (Some(_), Some(_)) if !claims.user_verified => Err(bad(
                "a decision with a WebAuthn assertion has user_verified true",
            )),
            (Some(assertion), Some(credential)) => {
                self.check_assertion(claims, assertion, &credential).await?;
                Ok(true)
            }
        }
    }

    async fn check_assertion(
        &self,
        claims: &DecisionClaims,
        assertion: &WebAuthnAssertion,
        credential: &WebAuthnCredential,
    ) -> AuthResult<()> {
        let bad = |e: CeremonyError| AuthError::InvalidDecision(format!("WebAuthn: {e}"));
        let part = |name: &str, v: &str| {
            b64::decode(v).map_err(|_| {
                AuthError::InvalidDecision(format!("webauthn.{name} must be base64url"))
            })
        };
        let challenge = jose::sha256(
            webauthn_decision_challenge(&claims.challenge_id, claims.decision, &claims.shown_hash)
                .as_bytes(),
        );
        let count = ceremony::verify_assertion(
            &self.relying_party()?,
            &challenge,
            CredentialRef {
                credential_id: &credential.credential_id,
                public_jwk: &credential.public_jwk,
                alg: credential.alg,
                sign_count: u32::try_from(credential.sign_count).unwrap_or(u32::MAX),
            },
            AssertionParts {
                credential_id: &part("credential_id", &assertion.credential_id)?,
                authenticator_data: &part("authenticator_data", &assertion.authenticator_data)?,
                client_data_json: &part("client_data_json", &assertion.client_data_json)?,
                signature: &part("signature", &assertion.signature)?,
            },
        )
        .map_err(bad)?;
        // A counting authenticator: the stored counter moves up in one conditional step, so
        // of two decisions carrying the same counter value only one passes.
        if count > 0
            && !self
                .stores
                .webauthn
                .advance_webauthn_sign_count(&credential.device_id, i64::from(count))
                .await?
        {
            return Err(bad(CeremonyError::CounterNotIncreased));
        }
        Ok(())
    }
}
