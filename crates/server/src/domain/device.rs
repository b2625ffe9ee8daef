//! Authenticator devices (SPEC §5): enrolment with a one-time code, device-signed API calls
//! bound to method and URL with `jti` replay protection, server-signed challenges, and the
//! device-signed decision bound to a hash of exactly what was shown. The time rules of device
//! tokens and decisions are in `jwt_rules`.

use std::collections::HashMap;

use backchannel_protocol::device::{
    CHALLENGE_JWT_TYP, ChallengeClaims, ChallengeEnvelope, DECISION_JWT_TYP, DEVICE_AUTH_JWT_TYP,
    Decision, DecisionClaims, DecisionResponse, DeviceAuthClaims, EnrolRequest, EnrolResponse,
};
use backchannel_protocol::jose::{self, Algorithm, SigningKey, TimeClaims, VerifyingKey, b64};

use super::Domain;
use super::error::{AuthError, AuthResult};
use super::model::{
    AuthRequest, AuthRequestState, Challenge, ChallengeState, Client, Device, VerifiedDecision,
};

/// Challenge JWTs are signed with EdDSA, whose signatures are deterministic: the server can
/// re-create the exact bytes a device was shown and check the decision's `shown_hash`
/// without storing every challenge it sent.
pub const CHALLENGE_ALG: Algorithm = Algorithm::EdDSA;

fn invalid_token(msg: &str) -> AuthError {
    AuthError::InvalidToken(msg.to_owned())
}

impl Domain {
    /// `POST /device/v1/enrol`: consumes the code and registers the device's public key.
    pub async fn enrol_device(&self, req: EnrolRequest) -> AuthResult<EnrolResponse> {
        if req.code.is_empty() || req.code.len() > 128 {
            return Err(AuthError::InvalidCode);
        }
        if req.public_jwk.d.is_some() || req.public_jwk.p.is_some() {
            return Err(AuthError::invalid_request(
                "public_jwk must not contain private key material",
            ));
        }
        let key = VerifyingKey::from_jwk(&req.public_jwk).map_err(|e| {
            AuthError::invalid_request(format!("public_jwk is not a usable key: {e}"))
        })?;
        if !(key.supports(Algorithm::ES256) || key.supports(Algorithm::EdDSA)) {
            return Err(AuthError::invalid_request(
                "public_jwk must be a P-256 (ES256) or Ed25519 (EdDSA) key",
            ));
        }
        let name = req.name.unwrap_or_else(|| "authenticator".into());
        if name.chars().count() > 64 || name.chars().any(char::is_control) {
            return Err(AuthError::invalid_request(
                "name must be at most 64 printable characters",
            ));
        }
        let now = self.now_ms();
        let mut public_jwk = req.public_jwk;
        public_jwk.kid = None;
        let device = Device {
            id: Domain::random_id(26)?,
            user_sub: String::new(),
            name,
            public_jwk,
            push: match &req.push {
                Some(p) => super::device_admin::check_push_registration(
                    p,
                    self.config.outbound.allow_http,
                )?,
                None => Default::default(),
            },
            disabled: false,
            created_at: now,
        };
        let enrolled = self
            .stores
            .devices
            .enrol_device(
                &Domain::hash_hex(&super::admin::normalize_code(&req.code)),
                &device,
                now,
            )
            .await?
            .ok_or(AuthError::InvalidCode)?;
        tracing::info!(device_id = %enrolled.id, "device enrolled");
        Ok(EnrolResponse {
            device_id: enrolled.id,
            issuer: self.issuer.clone(),
        })
    }

    /// Authenticates a device API call from its `Authorization: Device <jwt>` value, for
    /// `method` on `path` (the path under the issuer, without query).
    pub async fn authenticate_device(
        &self,
        jwt: &str,
        method: &str,
        path: &str,
    ) -> AuthResult<Device> {
        let jws = jose::decode_jws(jwt)
            .map_err(|_| invalid_token("the device token is not a valid JWS"))?;
        if jws.header.typ.as_deref() != Some(DEVICE_AUTH_JWT_TYP) {
            return Err(invalid_token(
                "the device token must have typ device-auth+jwt",
            ));
        }
        let device_id = jws
            .header
            .kid
            .as_deref()
            .ok_or_else(|| invalid_token("the device token has no kid"))?;
        let device = match self.stores.devices.get_device(device_id).await? {
            Some(d) if !d.disabled => d,
            _ => return Err(invalid_token("unknown or disabled device")),
        };
        let key = VerifyingKey::from_jwk(&device.public_jwk).map_err(AuthError::internal)?;
        jws.verify(&key)
            .map_err(|_| invalid_token("the device token signature is invalid"))?;
        let claims: DeviceAuthClaims = jws
            .claims()
            .map_err(|_| invalid_token("the device token claims are malformed"))?;
        if claims.iss != device.id {
            return Err(invalid_token("iss must be the device id"));
        }
        if !claims.htm.eq_ignore_ascii_case(method) || claims.htu != self.url(path) {
            return Err(invalid_token("htm/htu do not match this request"));
        }
        let rules = self.device_auth_rules();
        let times = TimeClaims {
            exp: Some(claims.exp),
            iat: Some(claims.iat),
            nbf: None,
        };
        jose::check_times(&times, &rules, self.now_secs())
            .map_err(|e| invalid_token(&format!("the device token {e}")))?;
        let jti = jose::check_jti(Some(&claims.jti))
            .map_err(|e| invalid_token(&format!("the device token {e}")))?;
        let scope = format!("device:{}", device.id);
        if !self.remember_jti(&scope, jti, claims.exp, &rules).await? {
            return Err(invalid_token("the device token was already used"));
        }
        Ok(device)
    }

    /// The device's pending challenges, each as a server-signed JWT.
    pub async fn list_device_challenges(
        &self,
        device: &Device,
    ) -> AuthResult<Vec<ChallengeEnvelope>> {
        let pending = self
            .stores
            .requests
            .list_pending_challenges(&device.id, self.now_ms())
            .await?;
        let mut clients: HashMap<String, Client> = HashMap::new();
        let key = self.keys.signer(CHALLENGE_ALG)?;
        let mut out = Vec::with_capacity(pending.len());
        for (challenge, request) in pending {
            if !clients.contains_key(&request.client_id)
                && let Some(c) = self.stores.clients.get_client(&request.client_id).await?
            {
                clients.insert(c.id.clone(), c);
            }
            let Some(client) = clients.get(&request.client_id) else {
                continue;
            };
            let jwt = self.challenge_jwt(&key, &challenge, &request, client)?;
            out.push(ChallengeEnvelope {
                id: challenge.id,
                challenge: jwt,
            });
        }
        Ok(out)
    }

    /// One challenge of this device, pending or not (so a device can show the outcome).
    pub async fn get_device_challenge(
        &self,
        device: &Device,
        id: &str,
    ) -> AuthResult<ChallengeEnvelope> {
        let (challenge, request, client) = self.load_challenge(device, id).await?;
        let jwt = self.challenge_jwt(
            &self.keys.signer(CHALLENGE_ALG)?,
            &challenge,
            &request,
            &client,
        )?;
        Ok(ChallengeEnvelope {
            id: challenge.id,
            challenge: jwt,
        })
    }

    async fn load_challenge(
        &self,
        device: &Device,
        id: &str,
    ) -> AuthResult<(Challenge, AuthRequest, Client)> {
        let not_found = || AuthError::NotFound("no such challenge for this device".into());
        let (challenge, request) = match self.stores.requests.get_challenge(id).await? {
            Some((c, r)) if c.device_id == device.id => (c, r),
            _ => return Err(not_found()),
        };
        let client = self
            .stores
            .clients
            .get_client(&request.client_id)
            .await?
            .ok_or_else(not_found)?;
        Ok((challenge, request, client))
    }

    pub(crate) fn challenge_jwt(
        &self,
        key: &SigningKey,
        challenge: &Challenge,
        request: &AuthRequest,
        client: &Client,
    ) -> AuthResult<String> {
        let claims = ChallengeClaims {
            iss: self.issuer.clone(),
            aud: challenge.device_id.clone(),
            jti: challenge.id.clone(),
            iat: challenge.created_at.div_euclid(1000),
            exp: request.expires_at.div_euclid(1000),
            client_id: client.id.clone(),
            client_name: client.name.clone(),
            binding_message: request.binding_message.clone(),
            scope: request.scope.clone(),
            acr_values: request.acr_values.clone(),
            authorization_details: request.authorization_details.clone(),
            uv_required: request.uv_required,
        };
        jose::sign_jwt(key, Some(CHALLENGE_JWT_TYP), &claims).map_err(AuthError::internal)
    }

    /// `POST /device/v1/challenges/{id}/decision`: verifies the device's signed decision
    /// against exactly what it was shown and records it if it is the first.
    pub async fn decide_challenge(
        &self,
        device: &Device,
        id: &str,
        decision_jws: &str,
    ) -> AuthResult<DecisionResponse> {
        let (challenge, request, client) = self.load_challenge(device, id).await?;
        let now = self.now_ms();
        if challenge.state != ChallengeState::Pending
            || request.state != AuthRequestState::Pending
            || now >= request.expires_at
        {
            return Err(AuthError::ChallengeClosed);
        }
        let bad = |m: &str| AuthError::InvalidDecision(m.to_owned());
        if decision_jws.len() > 16 * 1024 {
            return Err(bad("the decision is too large"));
        }
        let jws =
            jose::decode_jws(decision_jws).map_err(|_| bad("the decision is not a valid JWS"))?;
        if jws.header.typ.as_deref() != Some(DECISION_JWT_TYP) {
            return Err(bad("the decision must have typ decision+jwt"));
        }
        let key = VerifyingKey::from_jwk(&device.public_jwk).map_err(AuthError::internal)?;
        jws.verify(&key)
            .map_err(|_| bad("the decision signature is invalid"))?;
        let claims: DecisionClaims = jws
            .claims()
            .map_err(|_| bad("the decision claims are malformed"))?;
        if claims.iss != device.id || claims.challenge_id != challenge.id {
            return Err(bad("the decision names another device or challenge"));
        }
        let times = TimeClaims {
            iat: Some(claims.iat),
            ..TimeClaims::default()
        };
        jose::check_times(&times, &self.decision_rules(), now.div_euclid(1000))
            .map_err(|e| bad(&format!("the decision {e}")))?;
        // Dynamic linking: the hash must match the challenge as this server signed it, with
        // the key that signed it, which a rotation since may have replaced.
        let mut matched = false;
        for key in self.keys.signers_of(CHALLENGE_ALG) {
            let shown = self.challenge_jwt(&key, &challenge, &request, &client)?;
            if claims.shown_hash == b64::encode(&jose::sha256(shown.as_bytes())) {
                matched = true;
                break;
            }
        }
        if !matched {
            return Err(bad("shown_hash does not match the challenge"));
        }
        let approved = claims.decision == Decision::Approve;
        if approved && claims.not_me {
            return Err(bad("not_me goes only with a denial"));
        }
        let user_verified = self.decision_user_verified(device, &claims).await?;
        let verdict = Verdict {
            approved,
            user_verified,
            not_me: claims.not_me,
        };
        self.apply_decision(
            &challenge,
            &request,
            &device.id,
            verdict,
            decision_jws.to_owned(),
            now,
        )
        .await
    }

    /// Records a verified decision if it is the first (with the ping/push notification in
    /// the same transaction), wakes whoever waits on the request, and answers the decider. A
    /// "not me" denial also blocks the client from the user (`[limits] not_me_block_secs`).
    pub(crate) async fn apply_decision(
        &self,
        challenge: &Challenge,
        request: &AuthRequest,
        device_id: &str,
        verdict: Verdict,
        evidence: String,
        now: i64,
    ) -> AuthResult<DecisionResponse> {
        let Verdict {
            approved,
            user_verified,
            not_me,
        } = verdict;
        // A request that needs a verified user (its client's policy, or acr_values preferring
        // ACR_DEVICE_UV) is approved only by a decision that verified the user; it stays
        // pending, so the device may approve again with verification. A denial always counts.
        if approved && request.uv_required && !user_verified {
            return Err(AuthError::InvalidDecision(
                "this request requires user verification: approve it again after verifying the user"
                    .into(),
            ));
        }
        let notification = self.decision_notification(request, approved, now)?;
        let recorded = self
            .stores
            .requests
            .record_decision(&VerifiedDecision {
                challenge_id: challenge.id.clone(),
                device_id: device_id.to_owned(),
                approved,
                user_verified,
                not_me,
                decision_jws: evidence,
                decided_at: now,
                notification,
            })
            .await?;
        if !recorded {
            return Err(AuthError::ChallengeClosed);
        }
        let others: Vec<String> = self
            .stores
            .requests
            .request_challenges(&request.id)
            .await?
            .into_iter()
            .filter(|c| c.id != challenge.id)
            .map(|c| c.device_id)
            .collect();
        self.notifier.request_decided(&request.id, &others);
        if not_me {
            self.block_after_not_me(request, now).await;
        }
        let state = if approved { "approved" } else { "denied" };
        metrics::counter!("backchannel_decisions_total", "decision" => state).increment(1);
        tracing::info!(challenge_id = %challenge.id, device_id, state, "decision recorded");
        Ok(DecisionResponse {
            challenge_id: challenge.id.clone(),
            state: state.into(),
        })
    }
}

/// What a device (or the external channel) decided, once verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Verdict {
    pub approved: bool,
    pub user_verified: bool,
    /// A denial marked "I did not ask for this".
    pub not_me: bool,
}

#[cfg(test)]
mod tests {
    use backchannel_protocol::device::{DEVICE_AUTH_JWT_TYP, Decision, DeviceAuthClaims};
    use backchannel_protocol::jose::{self, Kid};

    use super::super::testing::{Fixture, fixture};

    const PATH: &str = "/device/v1/challenges";

    fn device_token(f: &Fixture, iat: i64, exp: i64) -> String {
        let claims = DeviceAuthClaims {
            iss: f.device.id.clone(),
            htm: "GET".into(),
            htu: f.domain.url(PATH),
            iat,
            exp,
            jti: jose::random_token(16).unwrap(),
        };
        jose::sign_jwt_with(
            &f.device_key,
            Some(DEVICE_AUTH_JWT_TYP),
            Kid::Named(&f.device.id),
            &claims,
        )
        .unwrap()
    }

    async fn auth(f: &Fixture, token: &str) -> Result<(), &'static str> {
        f.domain
            .authenticate_device(token, "GET", PATH)
            .await
            .map(|_| ())
            .map_err(|e| e.code())
    }

    #[tokio::test]
    async fn device_tokens_are_accepted_within_the_skew_after_exp_and_only_once() {
        let f = fixture().await;
        let skew = f.domain.config.ciba.clock_skew_secs;
        let now = f.domain.now_secs();
        // A device clock 10 s behind: its token's exp passed 10 s ago by ours.
        let late = device_token(&f, now - 70, now - 10);
        assert_eq!(auth(&f, &late).await, Ok(()));
        assert_eq!(auth(&f, &late).await, Err("invalid_token"), "replay");
        // At exp + skew the token is refused as expired (its jti is remembered until then).
        let token = device_token(&f, now - 60, now);
        f.clock.advance_secs(skew);
        assert_eq!(auth(&f, &token).await, Err("invalid_token"));
        let now = f.domain.now_secs();
        for (iat, exp) in [
            (now + skew + 1, now + skew + 61), // issued in the future
            (now, now + 121),                  // lives longer than 120 s
            (now, now - skew),                 // expired beyond the skew
        ] {
            let token = device_token(&f, iat, exp);
            assert_eq!(auth(&f, &token).await, Err("invalid_token"), "{iat} {exp}");
        }
    }

    #[tokio::test]
    async fn decisions_allow_five_minutes_of_clock_difference_either_way() {
        let f = fixture().await;
        f.start(&[]).await;
        let c = f.challenge().await;
        let now = f.domain.now_secs();
        let code = |r: Result<(), super::AuthError>| r.map_err(|e| e.code());
        for iat in [now - 301, now + 301] {
            assert_eq!(
                code(f.decide_at(&c, Decision::Approve, iat).await),
                Err("invalid_decision"),
                "{iat}"
            );
        }
        assert_eq!(
            code(f.decide_at(&c, Decision::Deny, now + 300).await),
            Ok(())
        );
        f.start(&[]).await;
        let c = f.challenge().await;
        assert_eq!(
            code(f.decide_at(&c, Decision::Deny, now - 300).await),
            Ok(())
        );
    }
}
