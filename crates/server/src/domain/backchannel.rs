//! The backchannel authentication request (CIBA Core §7): every validation rule and the
//! creation of the request with one challenge per active device, stored in one transaction
//! before the answer. The signed request object (§7.1.1) is opened in `request_object`, the
//! user found by hint in `hint`; their time rules are in `jwt_rules`.

use std::collections::BTreeMap;

use backchannel_protocol::oauth::{BackchannelAuthResponse, DeliveryMode};
use serde_json::Value;
use subtle::ConstantTimeEq;

use super::Domain;
use super::error::{AuthError, AuthResult};
use super::hint::parse_login_hint;
use super::model::{
    AuthRequest, AuthRequestState, Challenge, ChallengeState, Client, Device, User,
};
use super::policy::PolicyQuestion;

/// The parameters of a request, by name (each at most once: RFC 6749 §3.1).
pub type Params = BTreeMap<String, String>;

/// Parameters that authenticate the client rather than describe the request.
pub const CLIENT_AUTH_PARAMS: [&str; 4] = [
    "client_id",
    "client_secret",
    "client_assertion",
    "client_assertion_type",
];

/// Longest accepted `client_notification_token` (SPEC §4).
const MAX_NOTIFICATION_TOKEN: usize = 1024;

/// A backchannel request that passed validation, before it is stored.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidatedRequest {
    pub user: User,
    /// The user's active devices: one challenge each.
    pub devices: Vec<Device>,
    pub scope: String,
    pub acr_values: Option<String>,
    pub binding_message: Option<String>,
    pub authorization_details: Option<Value>,
    pub expires_in: i64,
    pub client_notification_token: Option<String>,
    /// Approval needs a verified user (the client's access policy, or `acr_values` preferring
    /// the user-verification `acr`).
    pub uv_required: bool,
    /// The client's policy lets it have several undecided requests for one user; otherwise a
    /// new request replaces the undecided one (push-bombing protection).
    pub allow_parallel: bool,
}

impl Domain {
    /// `POST /bc-authorize` after client authentication: validates, stores the request and
    /// its challenges, tells the notifier, and returns the client's answer.
    pub async fn start_backchannel_auth(
        &self,
        client: &Client,
        params: &Params,
    ) -> AuthResult<BackchannelAuthResponse> {
        let validated = self.validate_backchannel_request(client, params).await?;
        let now = self.now_ms();
        let auth_req_id = Domain::new_auth_req_id(now)?;
        let request = AuthRequest {
            id: Domain::auth_request_key(&auth_req_id),
            client_id: client.id.clone(),
            user_sub: validated.user.sub.clone(),
            scope: validated.scope,
            acr_values: validated.acr_values,
            binding_message: validated.binding_message,
            authorization_details: validated.authorization_details,
            delivery_mode: client.delivery_mode,
            client_notification_token: validated.client_notification_token,
            created_at: now,
            expires_at: now + validated.expires_in * 1000,
            interval_secs: self.config.ciba.interval,
            last_polled_at: None,
            state: AuthRequestState::Pending,
            decided_at: None,
            user_verified: false,
            redeemed_at: None,
            auth_req_id: (client.delivery_mode != DeliveryMode::Poll).then(|| auth_req_id.clone()),
            uv_required: validated.uv_required,
            replaced_at: None,
            not_me: false,
        };
        let mut challenges = Vec::new();
        let mut push_devices = Vec::new();
        for device in &validated.devices {
            if device.receives_pushes() {
                push_devices.push(device.id.clone());
            }
            challenges.push(Challenge {
                id: Domain::ordered_id(now, 26)?,
                auth_request_id: request.id.clone(),
                device_id: device.id.clone(),
                state: ChallengeState::Pending,
                created_at: now,
                decided_at: None,
                decision_jws: None,
            });
        }
        // Blocks and rate limits: a refused request is not stored and reaches no device.
        self.check_limits(client, &request).await?;
        if let Err(e) = self
            .stores
            .requests
            .create_auth_request(&request, &challenges, &push_devices)
            .await
        {
            if let Err(w) = self.stores.admissions.withdraw_admission(&request.id).await {
                tracing::warn!(error = %w, "could not withdraw the admission of an unstored request");
            }
            return Err(e.into());
        }
        self.notifier
            .challenges_created(&challenges, !push_devices.is_empty());
        // The new request is stored and answered even if ending the older ones failed; they
        // then end at their own expiry.
        if self.config.limits.replace_undecided
            && !validated.allow_parallel
            && let Err(e) = self.replace_undecided(&request).await
        {
            tracing::warn!(error = %e, "could not replace the client's undecided requests");
        }
        Ok(BackchannelAuthResponse {
            auth_req_id,
            expires_in: u64::try_from(validated.expires_in).unwrap_or(0),
            interval: Some(u64::try_from(request.interval_secs).unwrap_or(5)),
        })
    }

    /// Every rule of CIBA Core §7.1 and SPEC §4, in an order that reports the most basic
    /// problem first.
    pub async fn validate_backchannel_request(
        &self,
        client: &Client,
        params: &Params,
    ) -> AuthResult<ValidatedRequest> {
        let owned;
        let params = if let Some(request) = params.get("request") {
            owned = self.open_request_object(client, request, params).await?;
            &owned
        } else if client.request_signing_alg.is_some() {
            return Err(AuthError::invalid_request(
                "this client must send a signed request object (request)",
            ));
        } else {
            params
        };
        let get = |name: &str| {
            params
                .get(name)
                .map(String::as_str)
                .filter(|v| !v.is_empty())
        };

        let scope = get("scope").ok_or_else(|| AuthError::invalid_request("scope is required"))?;
        let scopes: Vec<&str> = scope.split(' ').filter(|s| !s.is_empty()).collect();
        if !scopes.contains(&"openid") {
            return Err(AuthError::InvalidScope("scope must contain openid".into()));
        }
        if let Some(bad) = scopes
            .iter()
            .find(|s| !client.scopes.iter().any(|c| c == *s))
        {
            return Err(AuthError::InvalidScope(format!(
                "the client may not request scope {bad}"
            )));
        }

        let hints = ["login_hint", "id_token_hint", "login_hint_token"];
        let present: Vec<&str> = hints.into_iter().filter(|h| get(h).is_some()).collect();
        if present.len() != 1 {
            return Err(AuthError::invalid_request(
                "exactly one of login_hint, id_token_hint and login_hint_token is required",
            ));
        }
        let lookup = match present[0] {
            "login_hint" => parse_login_hint(get("login_hint").unwrap_or_default())?,
            "id_token_hint" => {
                self.lookup_from_id_token_hint(client, get("id_token_hint").unwrap_or_default())?
            }
            _ => {
                self.lookup_from_login_hint_token(
                    client,
                    get("login_hint_token").unwrap_or_default(),
                )
                .await?
            }
        };

        let client_notification_token = match client.delivery_mode {
            DeliveryMode::Poll => None,
            DeliveryMode::Ping | DeliveryMode::Push => {
                let token = get("client_notification_token").ok_or_else(|| {
                    AuthError::invalid_request(
                        "client_notification_token is required for ping and push clients",
                    )
                })?;
                if token.len() > MAX_NOTIFICATION_TOKEN || !is_b64token(token) {
                    return Err(AuthError::invalid_request(
                        "client_notification_token must be at most 1024 characters of RFC 6750 b64token",
                    ));
                }
                Some(token.to_owned())
            }
        };

        let binding_message = get("binding_message").map(str::to_owned);
        if let Some(msg) = &binding_message {
            self.check_binding_message(msg)?;
        }
        let requested_expiry =
            self.requested_expiry(get("requested_expiry"), get("request_expiry"))?;
        let acr_values = get("acr_values").map(str::to_owned);
        let authorization_details = match get("authorization_details") {
            Some(raw) => Some(self.check_authorization_details(raw)?),
            None => None,
        };

        // The client's access policy: its rules that do not depend on the user before the
        // user is looked up, the user rule before the user code (`domain::policy`).
        let admission = self
            .admit_request(
                client,
                &PolicyQuestion {
                    scopes: &scopes,
                    authorization_details: authorization_details.as_ref(),
                    requested_expiry,
                    acr_values: acr_values.as_deref(),
                },
            )
            .await?;
        let (user, devices) = self.find_active_user(&lookup, client).await?;
        self.admit_user(client, &admission, &user)?;
        if client.user_code_required {
            let code = get("user_code").ok_or_else(|| {
                AuthError::MissingUserCode("this client requires a user_code".into())
            })?;
            let presented = Domain::hash_hex(code);
            let ok = user
                .user_code_hash
                .as_deref()
                .is_some_and(|h| bool::from(h.as_bytes().ct_eq(presented.as_bytes())));
            if !ok {
                return Err(AuthError::InvalidUserCode(
                    "the user_code is not correct".into(),
                ));
            }
        }
        Ok(ValidatedRequest {
            user,
            devices,
            scope: scopes.join(" "),
            acr_values,
            binding_message,
            authorization_details,
            expires_in: admission.expires_in,
            client_notification_token,
            uv_required: admission.uv_required,
            allow_parallel: admission.allow_parallel,
        })
    }

    /// SPEC §4: configurable length (default 1–64 characters), printable characters only.
    pub fn check_binding_message(&self, msg: &str) -> AuthResult<()> {
        let len = msg.chars().count();
        let (min, max) = (
            self.config.ciba.binding_message_min,
            self.config.ciba.binding_message_max,
        );
        if len < min || len > max {
            return Err(AuthError::InvalidBindingMessage(format!(
                "binding_message must be {min} to {max} characters"
            )));
        }
        if msg.chars().any(char::is_control) {
            return Err(AuthError::InvalidBindingMessage(
                "binding_message must contain printable characters only".into(),
            ));
        }
        Ok(())
    }

    /// `requested_expiry` (or Okta's `request_expiry`): a positive integer of seconds within the
    /// configured bounds; `None` when absent (the policy then picks the default).
    fn requested_expiry(
        &self,
        requested: Option<&str>,
        alias: Option<&str>,
    ) -> AuthResult<Option<i64>> {
        let raw = match (requested, alias) {
            (Some(a), Some(b)) if a != b => {
                return Err(AuthError::invalid_request(
                    "requested_expiry and request_expiry differ",
                ));
            }
            (Some(a), _) | (None, Some(a)) => a,
            (None, None) => return Ok(None),
        };
        let c = &self.config.ciba;
        let value: i64 = raw.parse().ok().filter(|v| *v > 0).ok_or_else(|| {
            AuthError::invalid_request("requested_expiry must be a positive integer")
        })?;
        if value < c.min_expires_in || value > c.max_expires_in {
            return Err(AuthError::invalid_request(format!(
                "requested_expiry must be between {} and {} seconds",
                c.min_expires_in, c.max_expires_in
            )));
        }
        Ok(Some(value))
    }

    /// RFC 9396 §2: a JSON array of objects, each with a configured string `type`.
    fn check_authorization_details(&self, raw: &str) -> AuthResult<Value> {
        let bad = |m: &str| AuthError::InvalidAuthorizationDetails(m.to_owned());
        if raw.len() > 8192 {
            return Err(bad("authorization_details is too large"));
        }
        let value: Value = serde_json::from_str(raw)
            .map_err(|_| bad("authorization_details must be a JSON array"))?;
        let entries = value
            .as_array()
            .ok_or_else(|| bad("authorization_details must be a JSON array"))?;
        if entries.is_empty() {
            return Err(bad("authorization_details must not be empty"));
        }
        for entry in entries {
            let ty = entry
                .as_object()
                .and_then(|o| o.get("type"))
                .and_then(Value::as_str)
                .ok_or_else(|| bad("each authorization_details entry needs a string type"))?;
            if !self
                .config
                .authorization_details
                .types
                .iter()
                .any(|t| t == ty)
            {
                return Err(bad(&format!(
                    "authorization_details type {ty} is not supported"
                )));
            }
        }
        Ok(value)
    }
}

/// RFC 6750 §2.1 `b64token`.
fn is_b64token(s: &str) -> bool {
    let body = s.trim_end_matches('=');
    !body.is_empty()
        && body.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/')
        })
}

#[cfg(test)]
mod tests {
    use super::super::admin::NewClient;
    use super::super::testing::{HINT, fixture, fixture_with, params};
    use crate::config::Config;

    async fn code_of(extra: &[(&str, &str)]) -> &'static str {
        let f = fixture().await;
        let mut p = params(extra);
        if !p.contains_key("request") {
            p.insert("login_hint".into(), HINT.into());
        }
        match f.domain.validate_backchannel_request(&f.client, &p).await {
            Ok(_) => "ok",
            Err(e) => e.code(),
        }
    }

    #[tokio::test]
    async fn every_validation_rule() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[("scope", "openid")], "ok"),
            (&[], "invalid_request"),
            (&[("scope", "email")], "invalid_scope"),
            (&[("scope", "openid phone")], "invalid_scope"),
            (&[("scope", "openid"), ("binding_message", "")], "ok"),
            (
                &[
                    ("scope", "openid"),
                    ("binding_message", "Transfer 100 to Bob"),
                ],
                "ok",
            ),
            (
                &[("scope", "openid"), ("binding_message", &"m".repeat(65))],
                "invalid_binding_message",
            ),
            (
                &[("scope", "openid"), ("binding_message", "tab\there")],
                "invalid_binding_message",
            ),
            (&[("scope", "openid"), ("requested_expiry", "10")], "ok"),
            (
                &[("scope", "openid"), ("requested_expiry", "9")],
                "invalid_request",
            ),
            (&[("scope", "openid"), ("requested_expiry", "1800")], "ok"),
            (
                &[("scope", "openid"), ("requested_expiry", "1801")],
                "invalid_request",
            ),
            (
                &[
                    ("scope", "openid"),
                    ("requested_expiry", "60"),
                    ("request_expiry", "61"),
                ],
                "invalid_request",
            ),
            (
                &[
                    ("scope", "openid"),
                    (
                        "authorization_details",
                        r#"[{"type":"payment_initiation"}]"#,
                    ),
                ],
                "ok",
            ),
            (
                &[
                    ("scope", "openid"),
                    ("authorization_details", r#"[{"type":"other"}]"#),
                ],
                "invalid_authorization_details",
            ),
            (
                &[
                    ("scope", "openid"),
                    ("authorization_details", r#"[{"notype":1}]"#),
                ],
                "invalid_authorization_details",
            ),
            (&[("request", "x.y.z")], "invalid_request"),
            (
                &[("scope", "openid"), ("request", "x.y.z")],
                "invalid_request",
            ),
            (
                &[("scope", "openid"), ("id_token_hint", "x.y.z")],
                "invalid_request",
            ),
        ];
        for (extra, expected) in cases {
            assert_eq!(code_of(extra).await, *expected, "{extra:?}");
        }
    }

    #[tokio::test]
    async fn unknown_and_malformed_hints() {
        let f = fixture().await;
        for (hint, expected) in [
            ("nobody@example.com", "unknown_user_id"),
            ("S1234567D", "unknown_user_id"),
            ("S1234567E", "invalid_request"),
            ("!!", "invalid_request"),
        ] {
            let p = params(&[("scope", "openid"), ("login_hint", hint)]);
            let got = f
                .domain
                .validate_backchannel_request(&f.client, &p)
                .await
                .map(|_| ())
                .map_err(|e| e.code());
            assert_eq!(got, Err(expected), "{hint}");
        }
        // Once the only device is disabled the user is unknown.
        assert!(
            f.domain
                .stores
                .devices
                .set_device_disabled(&f.device.id, true, 0)
                .await
                .unwrap()
        );
        let p = params(&[("scope", "openid"), ("login_hint", HINT)]);
        let got = f
            .domain
            .validate_backchannel_request(&f.client, &p)
            .await
            .map(|_| ())
            .map_err(|e| e.code());
        assert_eq!(got, Err("unknown_user_id"));
    }

    #[tokio::test]
    async fn configured_bounds_apply() {
        let mut config = Config::default();
        config.ciba.binding_message_min = 4;
        config.ciba.max_expires_in = 120;
        config.ciba.default_expires_in = 60;
        config.ciba.interval = 2;
        let f = fixture_with(config, NewClient::default()).await;
        let check = |extra: &[(&str, &str)]| {
            let mut p = params(&[("scope", "openid"), ("login_hint", HINT)]);
            p.extend(params(extra));
            let f = &f;
            async move {
                f.domain
                    .validate_backchannel_request(&f.client, &p)
                    .await
                    .map(|_| ())
                    .map_err(|e| e.code())
            }
        };
        assert_eq!(
            check(&[("binding_message", "abc")]).await,
            Err("invalid_binding_message")
        );
        assert_eq!(
            check(&[("requested_expiry", "121")]).await,
            Err("invalid_request")
        );
        let answer = f
            .domain
            .start_backchannel_auth(
                &f.client,
                &params(&[("scope", "openid"), ("login_hint", HINT)]),
            )
            .await
            .unwrap();
        assert_eq!((answer.expires_in, answer.interval), (60, Some(2)));
    }

    #[tokio::test]
    async fn user_code_rules() {
        let f = fixture_with(
            Config::default(),
            NewClient {
                user_code_required: true,
                ..Default::default()
            },
        )
        .await;
        let run = |code: Option<&str>| {
            let mut p = params(&[("scope", "openid"), ("login_hint", HINT)]);
            if let Some(c) = code {
                p.insert("user_code".into(), c.into());
            }
            let f = &f;
            async move {
                f.domain
                    .validate_backchannel_request(&f.client, &p)
                    .await
                    .map(|_| ())
                    .map_err(|e| e.code())
            }
        };
        assert_eq!(run(None).await, Err("missing_user_code"));
        assert_eq!(run(Some("1357")).await, Err("invalid_user_code"));
        assert_eq!(run(Some("2468")).await, Ok(()));
    }
}
