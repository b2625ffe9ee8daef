//! The backchannel authentication request (CIBA Core §7): every validation rule, the signed
//! request object (§7.1.1), the user lookup by hint, and the creation of the request with one
//! challenge per active device, stored in one transaction before the answer. The time rules
//! of request objects and `login_hint_token`s are in `jwt_rules`.

use std::collections::BTreeMap;

use backchannel_protocol::jose::{self, Algorithm, Audience, ClaimsError, TimeClaims};
use backchannel_protocol::oauth::{BackchannelAuthResponse, DeliveryMode};
use serde_json::Value;
use subtle::ConstantTimeEq;

use super::Domain;
use super::error::{AuthError, AuthResult};
use super::external::is_external;
use super::hint::parse_login_hint;
use super::model::{
    AuthRequest, AuthRequestState, Challenge, ChallengeState, Client, Device, User, UserLookup,
};

/// The parameters of a request, by name (each at most once: RFC 6749 §3.1).
pub type Params = BTreeMap<String, String>;

/// Parameters that authenticate the client rather than describe the request.
pub const CLIENT_AUTH_PARAMS: [&str; 4] = [
    "client_id",
    "client_secret",
    "client_assertion",
    "client_assertion_type",
];

/// Parameters of an authentication request that a signed request object must carry inside.
const AUTH_PARAMS: [&str; 11] = [
    "scope",
    "login_hint",
    "id_token_hint",
    "login_hint_token",
    "binding_message",
    "user_code",
    "requested_expiry",
    "request_expiry",
    "acr_values",
    "authorization_details",
    "client_notification_token",
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
}

fn claim_to_param(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Array(_) | Value::Object(_) => Some(value.to_string()),
        _ => None,
    }
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
        self.stores
            .requests
            .create_auth_request(&request, &challenges, &push_devices)
            .await?;
        self.notifier
            .challenges_created(&challenges, !push_devices.is_empty());
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
        let expires_in = self.requested_expiry(get("requested_expiry"), get("request_expiry"))?;
        let acr_values = get("acr_values").map(str::to_owned);
        let authorization_details = match get("authorization_details") {
            Some(raw) => Some(self.check_authorization_details(raw)?),
            None => None,
        };

        let (user, devices) = self.find_active_user(&lookup, client).await?;
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
            expires_in,
            client_notification_token,
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
    /// configured bounds; absent means the default.
    fn requested_expiry(&self, requested: Option<&str>, alias: Option<&str>) -> AuthResult<i64> {
        let raw = match (requested, alias) {
            (Some(a), Some(b)) if a != b => {
                return Err(AuthError::invalid_request(
                    "requested_expiry and request_expiry differ",
                ));
            }
            (Some(a), _) | (None, Some(a)) => a,
            (None, None) => return Ok(self.config.ciba.default_expires_in),
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
        Ok(value)
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

    /// The user the hint names and their active devices; `unknown_user_id` if either is
    /// missing.
    async fn find_active_user(
        &self,
        lookup: &UserLookup,
        client: &Client,
    ) -> AuthResult<(User, Vec<Device>)> {
        let unknown = || {
            AuthError::UnknownUserId(
                "no active user with an enrolled authenticator matches the hint".into(),
            )
        };
        let user = match self.stores.users.find_user(lookup).await? {
            Some(u) if !u.disabled => u,
            _ => return Err(unknown()),
        };
        let mut devices = self.stores.devices.list_devices(&user.sub).await?;
        // The external channel's stand-in counts only for the clients the channel serves.
        devices.retain(|d| !d.disabled && !is_external(d));
        if self.config.external.serves(&client.id) {
            let external = self.external_device(&user).await?;
            if !external.disabled {
                devices.push(external);
            }
        }
        if devices.is_empty() {
            return Err(unknown());
        }
        Ok((user, devices))
    }

    /// OIDC Core §3.1.2.1 / CIBA §7.1: an ID token this server issued (possibly expired)
    /// naming the user; it must have been issued to this client.
    fn lookup_from_id_token_hint(&self, client: &Client, token: &str) -> AuthResult<UserLookup> {
        let bad = |m: &str| AuthError::invalid_request(format!("id_token_hint {m}"));
        let jws = jose::decode_jws(token).map_err(|_| bad("is not a valid JWS"))?;
        jws.verify_any(&self.keys.verifiers())
            .map_err(|_| bad("was not issued by this server"))?;
        #[derive(serde::Deserialize)]
        struct HintClaims {
            iss: String,
            sub: String,
            aud: Audience,
        }
        let claims: HintClaims = jws.claims().map_err(|_| bad("lacks iss, sub or aud"))?;
        if claims.iss != self.issuer {
            return Err(bad("was issued by another issuer"));
        }
        if !claims.aud.contains(&client.id) {
            return Err(bad("was issued to another client"));
        }
        Ok(UserLookup::Sub(claims.sub))
    }

    /// CIBA §7.1 `login_hint_token`: a JWT the client signs naming the user by a subject
    /// identifier (`sub_id`, RFC 9493 formats `email`, `phone_number`, `iss_sub`, `opaque`).
    async fn lookup_from_login_hint_token(
        &self,
        client: &Client,
        token: &str,
    ) -> AuthResult<UserLookup> {
        let bad = |m: &str| AuthError::invalid_request(format!("login_hint_token {m}"));
        let jws = jose::decode_jws(token).map_err(|_| bad("is not a valid JWS"))?;
        self.verify_client_signature(client, &jws)
            .await
            .map_err(|_| bad("is not signed by a key of this client"))?;
        let claims: serde_json::Map<String, Value> =
            jws.claims().map_err(|_| bad("is not a JSON object"))?;
        // Only exp counts (see login_hint_token_rules).
        let times = TimeClaims {
            exp: claims.get("exp").and_then(Value::as_i64),
            ..TimeClaims::default()
        };
        match jose::check_times(&times, &self.login_hint_token_rules(), self.now_secs()) {
            Ok(()) => {}
            Err(e @ ClaimsError::Expired { .. }) => {
                return Err(AuthError::ExpiredLoginHintToken(format!(
                    "the login_hint_token {e}"
                )));
            }
            Err(e) => return Err(bad(&e.to_string())),
        }
        let sub_id = claims
            .get("sub_id")
            .and_then(Value::as_object)
            .ok_or_else(|| bad("has no sub_id"))?;
        let field = |name: &str| sub_id.get(name).and_then(Value::as_str).map(str::to_owned);
        let lookup = match sub_id.get("format").and_then(Value::as_str) {
            Some("email") => field("email").map(|e| UserLookup::Email(e.to_lowercase())),
            Some("phone_number") => field("phone_number").map(UserLookup::Phone),
            Some("iss_sub") if field("iss").as_deref() == Some(self.issuer.as_str()) => {
                field("sub").map(UserLookup::Sub)
            }
            Some("opaque") => match field("id") {
                Some(id) => Some(parse_login_hint(&id)?),
                None => None,
            },
            _ => None,
        };
        lookup.ok_or_else(|| bad("has an unsupported or incomplete sub_id"))
    }

    /// CIBA Core §7.1.1: verifies the signed request object and returns the parameters it
    /// carries. Authentication parameters may not also appear outside it.
    async fn open_request_object(
        &self,
        client: &Client,
        request: &str,
        outer: &Params,
    ) -> AuthResult<Params> {
        let bad = |m: &str| AuthError::InvalidRequestObject(m.to_owned());
        if let Some(name) = outer.keys().find(|k| AUTH_PARAMS.contains(&k.as_str())) {
            return Err(AuthError::invalid_request(format!(
                "{name} must be inside the signed request object, not beside it"
            )));
        }
        let jws = jose::decode_jws(request)
            .map_err(|e| bad(&format!("request is not a valid JWS: {e}")))?;
        if let Some(required) = client.request_signing_alg
            && jws.alg() != required
        {
            return Err(bad(&format!(
                "request must be signed with {}",
                required.as_str()
            )));
        }
        self.verify_client_signature(client, &jws)
            .await
            .map_err(|_| bad("request signature is invalid"))?;
        let claims: serde_json::Map<String, Value> = jws
            .claims()
            .map_err(|_| bad("request payload is not a JSON object"))?;
        if claims.get("iss").and_then(Value::as_str) != Some(client.id.as_str()) {
            return Err(bad("request iss must be the client_id"));
        }
        let aud: Option<Audience> = claims
            .get("aud")
            .cloned()
            .and_then(|a| serde_json::from_value(a).ok());
        if !aud.is_some_and(|a| a.contains(&self.issuer)) {
            return Err(bad("request aud must be the issuer"));
        }
        // A claim that is not an integer counts as absent.
        let num = |name: &str| claims.get(name).and_then(Value::as_i64);
        let times = TimeClaims {
            exp: num("exp"),
            iat: num("iat"),
            nbf: num("nbf"),
        };
        let rules = self.request_object_rules();
        jose::check_times(&times, &rules, self.now_secs())
            .map_err(|e| bad(&format!("request {e}")))?;
        let exp = times.exp.ok_or_else(|| bad("request has no exp"))?;
        let jti = jose::check_jti(claims.get("jti").and_then(Value::as_str))
            .map_err(|e| bad(&format!("request {e}")))?;
        if claims
            .get("client_id")
            .and_then(Value::as_str)
            .is_some_and(|id| id != client.id)
        {
            return Err(bad(
                "request client_id differs from the authenticated client",
            ));
        }
        let scope = format!("request:{}", client.id);
        if !self.remember_jti(&scope, jti, exp, &rules).await? {
            return Err(bad("request jti was already used"));
        }
        let mut params = Params::new();
        for name in AUTH_PARAMS {
            if let Some(value) = claims.get(name).and_then(claim_to_param) {
                params.insert(name.to_owned(), value);
            }
        }
        Ok(params)
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

/// The algorithms a client may sign request objects and assertions with.
pub fn supported_client_algs() -> Vec<&'static str> {
    Algorithm::ALL.iter().map(|a| a.as_str()).collect()
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
            (&[("request", "x.y.z")], "invalid_request_object"),
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
