//! Access policies (issue 13): which users a client may ask for, which scopes and
//! `authorization_details` types it may ask for, whether approvals need a verified user, the
//! longest `requested_expiry`, and whether it may keep several undecided requests for one user.
//! A request outside its client's policy is `403 access_denied` (SPEC §4) before any device
//! is touched. Managing policies (admin API and CLI) is in [`admin`].
//!
//! Order of the checks in `Domain::validate_backchannel_request`, after the request's own
//! parameters were found well-formed: first the rules that do not depend on the user
//! ([`Domain::admit_request`]: no policy under `clients_without_policy = "deny"`, scopes,
//! `authorization_details` types, `requested_expiry`), so that a client refused them learns
//! nothing about which users exist; then the user is looked up (`unknown_user_id`); then the
//! user rule ([`Domain::admit_user`]), before the `user_code` check, so that a client may not
//! test user codes of users outside its policy.
//!
//! `acr_values` (CIBA Core §7.1) is a list of preferences, met at the server's discretion, the
//! class achieved being returned as the ID token's `acr`: the first value this server supports
//! decides, unknown values are skipped, and none supported leaves it to the policy (never an
//! error). [`ACR_DEVICE_UV`] first means the approval needs a verified user, as does the
//! policy's `require_user_verification`; `Domain::apply_decision` refuses an approval that did
//! not verify the user.

pub mod admin;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::Domain;
use super::error::{AuthError, AuthResult};
use super::model::{Client, User};
use super::token::{ACR_DEVICE, ACR_DEVICE_UV};
use crate::config::ClientsWithoutPolicy;

/// Which users a client may ask for.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum UserRule {
    /// Every active user (JSON `"all"`).
    #[default]
    All,
    /// Users whose claim `name` is `value`, or is an array holding it; numbers and booleans
    /// compare by their JSON text (`{"claim": {"name": "tier", "value": "gold"}}`).
    Claim { name: String, value: String },
    /// Users whose `groups` claim (an array of strings) holds this group
    /// (`{"group": "staff"}`).
    Group(String),
    /// These users, by `sub` (`{"subjects": ["..."]}`).
    Subjects(Vec<String>),
}

/// A claim value as the policy compares it: strings as they are, numbers and booleans by
/// their JSON text; objects and null never match.
fn claim_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(_) | Value::Bool(_) => Some(value.to_string()),
        _ => None,
    }
}

fn claim_holds(value: &Value, wanted: &str) -> bool {
    match value {
        Value::Array(items) => items
            .iter()
            .any(|v| claim_text(v).is_some_and(|t| t == wanted)),
        other => claim_text(other).is_some_and(|t| t == wanted),
    }
}

impl UserRule {
    pub fn matches(&self, user: &User) -> bool {
        match self {
            UserRule::All => true,
            UserRule::Claim { name, value } => {
                user.claims.get(name).is_some_and(|v| claim_holds(v, value))
            }
            UserRule::Group(group) => user
                .claims
                .get("groups")
                .and_then(Value::as_array)
                .is_some_and(|gs| gs.iter().any(|g| g.as_str() == Some(group))),
            UserRule::Subjects(subs) => subs.contains(&user.sub),
        }
    }
}

/// The rules of a policy: the body of `PUT /admin/v1/policies/{client_id}` and what
/// `access_policies.rules` stores (JSON). Absent members take the most permissive value.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyRules {
    #[serde(default)]
    pub users: UserRule,
    /// Scopes the client may ask for (`openid` always); `None`: every registered scope.
    #[serde(default)]
    pub scopes: Option<Vec<String>>,
    /// `authorization_details` types it may send; `None`: every configured type.
    #[serde(default)]
    pub authorization_details_types: Option<Vec<String>>,
    /// Approvals need a verified user, whatever `acr_values` asks.
    #[serde(default)]
    pub require_user_verification: bool,
    /// Longest `requested_expiry`, seconds; also the expiry of requests that ask for none
    /// when it is below the configured default.
    #[serde(default)]
    pub max_requested_expiry: Option<i64>,
    /// Several undecided requests of this client for one user may live side by side
    /// (otherwise a new one replaces the undecided one).
    #[serde(default)]
    pub allow_parallel: bool,
}

/// A client's access policy. Times are Unix ms.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AccessPolicy {
    pub client_id: String,
    #[serde(flatten)]
    pub rules: PolicyRules,
    pub created_at: i64,
    pub updated_at: i64,
}

/// What a backchannel request asks for that a policy judges before the user is known.
#[derive(Debug, Clone, Copy)]
pub struct PolicyQuestion<'a> {
    pub scopes: &'a [&'a str],
    pub authorization_details: Option<&'a Value>,
    /// `requested_expiry` as the client sent it (already within the configured bounds).
    pub requested_expiry: Option<i64>,
    pub acr_values: Option<&'a str>,
}

/// What the policy made of a request it admitted.
#[derive(Debug, Clone, PartialEq)]
pub struct PolicyAdmission {
    pub policy: Option<AccessPolicy>,
    /// The request's lifetime, seconds.
    pub expires_in: i64,
    pub uv_required: bool,
    pub allow_parallel: bool,
}

/// Whether `acr_values` (CIBA Core §7.1, space-separated, most preferred first) asks for a
/// verified user: the first value this server supports decides; `None` if none is supported.
pub fn acr_prefers_user_verification(acr_values: Option<&str>) -> Option<bool> {
    acr_values?
        .split(' ')
        .find(|v| *v == ACR_DEVICE || *v == ACR_DEVICE_UV)
        .map(|v| v == ACR_DEVICE_UV)
}

/// One refusal: counted (`backchannel_policy_refusals_total` by client and rule), logged,
/// and answered `access_denied`.
fn refuse(client: &Client, rule: &'static str, description: String) -> AuthError {
    metrics::counter!(
        "backchannel_policy_refusals_total",
        "client_id" => client.id.clone(),
        "rule" => rule
    )
    .increment(1);
    tracing::info!(client_id = %client.id, rule, "request refused by the access policy");
    AuthError::AccessDenied(description)
}

impl Domain {
    /// The client's policy, if it has one (cached by the store, absence included).
    pub async fn client_policy(&self, client_id: &str) -> AuthResult<Option<AccessPolicy>> {
        Ok(self.stores.policies.get_policy(client_id).await?)
    }

    /// The rules that do not depend on the user, in this order: a client without a policy
    /// when such clients are denied, then scopes, `authorization_details` types and
    /// `requested_expiry`. A `requested_expiry` above the policy's maximum is refused, not
    /// clamped (the client asked for a lifetime it would not get); a request without one
    /// lives the configured default or the policy's maximum, whichever is shorter.
    pub async fn admit_request(
        &self,
        client: &Client,
        question: &PolicyQuestion<'_>,
    ) -> AuthResult<PolicyAdmission> {
        let default_expiry = self.config.ciba.default_expires_in;
        let acr_uv = acr_prefers_user_verification(question.acr_values).unwrap_or(false);
        let Some(policy) = self.client_policy(&client.id).await? else {
            if self.config.policies.clients_without_policy == ClientsWithoutPolicy::Deny {
                return Err(refuse(
                    client,
                    "no_policy",
                    "this client has no access policy, and clients without one may not start requests"
                        .into(),
                ));
            }
            return Ok(PolicyAdmission {
                policy: None,
                expires_in: question.requested_expiry.unwrap_or(default_expiry),
                uv_required: acr_uv,
                allow_parallel: false,
            });
        };
        let rules = &policy.rules;
        if let Some(allowed) = &rules.scopes
            && let Some(bad) = question
                .scopes
                .iter()
                .find(|s| **s != "openid" && !allowed.iter().any(|a| a == *s))
        {
            return Err(refuse(
                client,
                "scope",
                format!("the access policy of this client does not allow scope {bad}"),
            ));
        }
        if let (Some(allowed), Some(details)) = (
            &rules.authorization_details_types,
            question.authorization_details.and_then(Value::as_array),
        ) && let Some(bad) = details
            .iter()
            .filter_map(|d| d.get("type").and_then(Value::as_str))
            .find(|t| !allowed.iter().any(|a| a == t))
        {
            return Err(refuse(
                client,
                "authorization_details",
                format!(
                    "the access policy of this client does not allow authorization_details type {bad}"
                ),
            ));
        }
        let expires_in = match (question.requested_expiry, rules.max_requested_expiry) {
            (Some(asked), Some(max)) if asked > max => {
                return Err(refuse(
                    client,
                    "requested_expiry",
                    format!(
                        "requested_expiry {asked} exceeds this client's policy maximum of {max} seconds"
                    ),
                ));
            }
            (Some(asked), _) => asked,
            (None, Some(max)) => default_expiry.min(max),
            (None, None) => default_expiry,
        };
        Ok(PolicyAdmission {
            expires_in,
            uv_required: acr_uv || rules.require_user_verification,
            allow_parallel: rules.allow_parallel,
            policy: Some(policy),
        })
    }

    /// The user rule, once the user is known. The description says nothing about the user.
    pub fn admit_user(
        &self,
        client: &Client,
        admission: &PolicyAdmission,
        user: &User,
    ) -> AuthResult<()> {
        match &admission.policy {
            Some(policy) if !policy.rules.users.matches(user) => Err(refuse(
                client,
                "user",
                "the access policy of this client does not allow requests for this user".into(),
            )),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::admin::NewClient;
    use super::super::testing::{Fixture, HINT, fixture, fixture_with, params};
    use super::*;
    use crate::config::Config;

    fn user_with(claims: Value) -> User {
        User {
            sub: "5b1c6a0e-2f4d-4a8e-9c1b-7d3e2f1a0b9c".into(),
            email: None,
            nric: None,
            username: None,
            phone: None,
            claims: claims.as_object().cloned().unwrap_or_default(),
            user_code_hash: None,
            disabled: false,
            created_at: 0,
        }
    }

    #[test]
    fn user_rules_match_claims_groups_and_subjects() {
        let u = user_with(json!({
            "tier": "gold", "level": 3, "vip": true, "roles": ["teller", 7],
            "groups": ["staff", "sg"], "nested": {"tier": "gold"}
        }));
        let claim = |name: &str, value: &str| UserRule::Claim {
            name: name.into(),
            value: value.into(),
        };
        assert!(UserRule::All.matches(&u));
        assert!(claim("tier", "gold").matches(&u));
        assert!(!claim("tier", "silver").matches(&u));
        assert!(claim("level", "3").matches(&u));
        assert!(claim("vip", "true").matches(&u));
        assert!(!claim("vip", "false").matches(&u));
        assert!(claim("roles", "teller").matches(&u));
        assert!(claim("roles", "7").matches(&u));
        assert!(!claim("nested", "gold").matches(&u));
        assert!(!claim("missing", "gold").matches(&u));
        assert!(UserRule::Group("staff".into()).matches(&u));
        assert!(!UserRule::Group("admin".into()).matches(&u));
        assert!(!UserRule::Group("x".into()).matches(&user_with(json!({"groups": "x"}))));
        assert!(UserRule::Subjects(vec!["other".into(), u.sub.clone()]).matches(&u));
        assert!(!UserRule::Subjects(vec!["other".into()]).matches(&u));
    }

    #[test]
    fn rules_serialise_tagged_and_refuse_unknown_members() {
        let rules = PolicyRules {
            users: UserRule::Claim {
                name: "tier".into(),
                value: "gold".into(),
            },
            scopes: Some(vec!["openid".into()]),
            ..Default::default()
        };
        let text = serde_json::to_value(&rules).unwrap();
        assert_eq!(
            text["users"],
            json!({"claim": {"name": "tier", "value": "gold"}})
        );
        assert_eq!(serde_json::from_value::<PolicyRules>(text).unwrap(), rules);
        let all: PolicyRules = serde_json::from_value(json!({"users": "all"})).unwrap();
        assert_eq!(all.users, UserRule::All);
        assert!(serde_json::from_value::<PolicyRules>(json!({"user": "all"})).is_err());
        assert!(serde_json::from_value::<PolicyRules>(json!({"users": "some"})).is_err());
    }

    #[test]
    fn the_first_supported_acr_value_decides() {
        let uv = ACR_DEVICE_UV;
        let plain = ACR_DEVICE;
        assert_eq!(acr_prefers_user_verification(None), None);
        assert_eq!(acr_prefers_user_verification(Some("urn:x loa2")), None);
        assert_eq!(
            acr_prefers_user_verification(Some(&format!("loa3 {uv} {plain}"))),
            Some(true)
        );
        assert_eq!(
            acr_prefers_user_verification(Some(&format!("{plain} {uv}"))),
            Some(false)
        );
    }

    async fn put(f: &Fixture, rules: PolicyRules) {
        f.domain.set_policy(&f.client.id, rules).await.unwrap();
    }

    /// The outcome of a request for alice with these extra parameters.
    async fn outcome(f: &Fixture, extra: &[(&str, &str)]) -> Result<(i64, bool, bool), String> {
        let mut p = params(&[("scope", "openid"), ("login_hint", HINT)]);
        p.extend(params(extra));
        f.domain
            .validate_backchannel_request(&f.client, &p)
            .await
            .map(|v| (v.expires_in, v.uv_required, v.allow_parallel))
            .map_err(|e| format!("{}: {e}", e.code()))
    }

    #[tokio::test]
    async fn the_user_rule_refuses_users_outside_it() {
        let f = fixture().await;
        assert!(outcome(&f, &[]).await.is_ok(), "no policy: allowed");
        put(
            &f,
            PolicyRules {
                users: UserRule::Group("staff".into()),
                ..Default::default()
            },
        )
        .await;
        let refused = outcome(&f, &[]).await.unwrap_err();
        assert_eq!(
            refused,
            "access_denied: the access policy of this client does not allow requests for this user"
        );
        let alice = f
            .domain
            .stores
            .users
            .find_user(&super::super::model::UserLookup::Email(HINT.into()))
            .await
            .unwrap()
            .unwrap();
        put(
            &f,
            PolicyRules {
                users: UserRule::Subjects(vec![alice.sub]),
                ..Default::default()
            },
        )
        .await;
        assert!(outcome(&f, &[]).await.is_ok());
        // The user rule comes before the user code: no user-code oracle outside the policy.
        put(
            &f,
            PolicyRules {
                users: UserRule::Subjects(vec!["x".into()]),
                ..Default::default()
            },
        )
        .await;
        let got = outcome(&f, &[("user_code", "wrong")]).await.unwrap_err();
        assert!(got.starts_with("access_denied"), "{got}");
        // An unknown user is still unknown_user_id.
        let p = params(&[("scope", "openid"), ("login_hint", "bob@example.com")]);
        let err = f
            .domain
            .validate_backchannel_request(&f.client, &p)
            .await
            .unwrap_err();
        assert_eq!(err.code(), "unknown_user_id");
    }

    #[tokio::test]
    async fn the_scope_rule_refuses_registered_scopes_outside_it() {
        let f = fixture().await;
        put(
            &f,
            PolicyRules {
                scopes: Some(vec![]),
                ..Default::default()
            },
        )
        .await;
        assert!(outcome(&f, &[]).await.is_ok(), "openid is always allowed");
        assert_eq!(
            outcome(&f, &[("scope", "openid email")]).await.unwrap_err(),
            "access_denied: the access policy of this client does not allow scope email"
        );
        // Not registered for the client at all: invalid_scope as before.
        let got = outcome(&f, &[("scope", "openid phone")]).await.unwrap_err();
        assert!(got.starts_with("invalid_scope"), "{got}");
        put(
            &f,
            PolicyRules {
                scopes: Some(vec!["email".into()]),
                ..Default::default()
            },
        )
        .await;
        assert!(outcome(&f, &[("scope", "openid email")]).await.is_ok());
    }

    #[tokio::test]
    async fn the_authorization_details_rule_refuses_other_types() {
        let mut config = Config::default();
        config.authorization_details.types =
            vec!["payment_initiation".into(), "account_access".into()];
        let f = fixture_with(config, NewClient::default()).await;
        put(
            &f,
            PolicyRules {
                authorization_details_types: Some(vec!["account_access".into()]),
                ..Default::default()
            },
        )
        .await;
        let pay = r#"[{"type":"account_access"},{"type":"payment_initiation"}]"#;
        assert_eq!(
            outcome(&f, &[("authorization_details", pay)])
                .await
                .unwrap_err(),
            "access_denied: the access policy of this client does not allow authorization_details type payment_initiation"
        );
        assert!(
            outcome(
                &f,
                &[("authorization_details", r#"[{"type":"account_access"}]"#)]
            )
            .await
            .is_ok()
        );
        assert!(
            outcome(&f, &[]).await.is_ok(),
            "no details, nothing to refuse"
        );
        // A type the server does not know stays invalid_authorization_details.
        let got = outcome(&f, &[("authorization_details", r#"[{"type":"other"}]"#)])
            .await
            .unwrap_err();
        assert!(got.starts_with("invalid_authorization_details"), "{got}");
    }

    #[tokio::test]
    async fn the_expiry_rule_refuses_longer_and_shortens_the_default() {
        let f = fixture().await;
        put(
            &f,
            PolicyRules {
                max_requested_expiry: Some(120),
                ..Default::default()
            },
        )
        .await;
        assert_eq!(
            outcome(&f, &[("requested_expiry", "121")])
                .await
                .unwrap_err(),
            "access_denied: requested_expiry 121 exceeds this client's policy maximum of 120 seconds"
        );
        assert_eq!(
            outcome(&f, &[("requested_expiry", "120")]).await.unwrap().0,
            120
        );
        assert_eq!(
            outcome(&f, &[("request_expiry", "60")]).await.unwrap().0,
            60
        );
        assert_eq!(
            outcome(&f, &[]).await.unwrap().0,
            120,
            "the default (300) is cut to the max"
        );
        put(
            &f,
            PolicyRules {
                max_requested_expiry: Some(600),
                ..Default::default()
            },
        )
        .await;
        assert_eq!(
            outcome(&f, &[]).await.unwrap().0,
            300,
            "a longer max leaves the default"
        );
        // The configured bounds come first.
        let got = outcome(&f, &[("requested_expiry", "5000")])
            .await
            .unwrap_err();
        assert!(got.starts_with("invalid_request"), "{got}");
    }

    #[tokio::test]
    async fn clients_without_policy_may_be_denied() {
        let mut config = Config::default();
        config.policies.clients_without_policy = ClientsWithoutPolicy::Deny;
        let f = fixture_with(config, NewClient::default()).await;
        let got = outcome(&f, &[]).await.unwrap_err();
        assert!(
            got.starts_with("access_denied: this client has no access policy"),
            "{got}"
        );
        // Before the user is looked up: an unknown user is refused the same way.
        let p = params(&[("scope", "openid"), ("login_hint", "bob@example.com")]);
        let err = f
            .domain
            .validate_backchannel_request(&f.client, &p)
            .await
            .unwrap_err();
        assert_eq!(err.code(), "access_denied");
        put(&f, PolicyRules::default()).await;
        assert!(outcome(&f, &[]).await.is_ok());
    }

    #[tokio::test]
    async fn verification_comes_from_the_policy_or_the_first_supported_acr() {
        let f = fixture().await;
        let uv = format!("urn:other {ACR_DEVICE_UV}");
        let plain_first = format!("{ACR_DEVICE} {ACR_DEVICE_UV}");
        assert!(!outcome(&f, &[]).await.unwrap().1);
        assert!(outcome(&f, &[("acr_values", &uv)]).await.unwrap().1);
        assert!(
            !outcome(&f, &[("acr_values", &plain_first)])
                .await
                .unwrap()
                .1
        );
        assert!(
            !outcome(&f, &[("acr_values", "urn:unknown")])
                .await
                .unwrap()
                .1
        );
        put(
            &f,
            PolicyRules {
                require_user_verification: true,
                allow_parallel: true,
                ..Default::default()
            },
        )
        .await;
        assert_eq!(
            outcome(&f, &[("acr_values", &plain_first)]).await.unwrap(),
            (300, true, true)
        );
        assert_eq!(outcome(&f, &[]).await.unwrap(), (300, true, true));
    }

    #[tokio::test]
    async fn an_approval_of_a_uv_request_must_verify_the_user() {
        let f = fixture().await;
        put(
            &f,
            PolicyRules {
                require_user_verification: true,
                ..Default::default()
            },
        )
        .await;
        f.start(&[]).await;
        let c = f.challenge().await;
        let err = f
            .decide_on(&c, backchannel_protocol::device::Decision::Approve)
            .await
            .unwrap_err();
        assert_eq!(err.code(), "invalid_decision");
        assert!(
            err.to_string().contains("requires user verification"),
            "{err}"
        );
        // Still pending: the same challenge is listed, and a verified approval counts.
        assert_eq!(f.challenge().await.id, c.id);
        let claims = backchannel_protocol::device::DecisionClaims {
            iss: f.device.id.clone(),
            challenge_id: c.id.clone(),
            decision: backchannel_protocol::device::Decision::Approve,
            user_verified: true,
            shown_hash: backchannel_protocol::jose::b64::encode(
                &backchannel_protocol::jose::sha256(c.challenge.as_bytes()),
            ),
            iat: f.domain.now_secs(),
            jti: "verified-approval".into(),
            webauthn: None,
            not_me: false,
        };
        let jws = backchannel_protocol::jose::sign_jwt(
            &f.device_key,
            Some(backchannel_protocol::device::DECISION_JWT_TYP),
            &claims,
        )
        .unwrap();
        f.domain
            .decide_challenge(&f.device, &c.id, &jws)
            .await
            .unwrap();
        let (_, request) = f
            .domain
            .stores
            .requests
            .get_challenge(&c.id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            request.state,
            super::super::model::AuthRequestState::Approved
        );
        assert!(request.user_verified && request.uv_required);
        // A denial needs no verification.
        f.start(&[]).await;
        f.decide(backchannel_protocol::device::Decision::Deny)
            .await
            .unwrap();
    }
}
