//! The signed request object of a backchannel request (CIBA Core §7.1.1): verified with the
//! client's keys, its `typ`, `iss`, `aud`, times and `jti` checked, and the parameters it
//! carries returned. Its time rules are in `jwt_rules`. A request object that fails any check
//! is `invalid_request`: CIBA Core §13 has no `invalid_request_object`.

use backchannel_protocol::jose::{self, Audience, TimeClaims};
use serde_json::Value;

use super::Domain;
use super::backchannel::Params;
use super::error::{AuthError, AuthResult};
use super::model::Client;

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

/// `typ` values a request object may carry, compared case-insensitively (RFC 7515 §4.1.9
/// media types are case-insensitive): a plain JWT, or RFC 9101 §10.8's
/// `oauth-authz-req+jwt`, each also with the `application/` prefix. Any other `typ` (an
/// access token, a logout token) names a different kind of JWT and is refused.
const REQUEST_OBJECT_TYPS: [&str; 2] = ["jwt", "oauth-authz-req+jwt"];

fn typ_accepted(typ: &str) -> bool {
    let lower = typ.to_ascii_lowercase();
    let bare = lower.strip_prefix("application/").unwrap_or(&lower);
    REQUEST_OBJECT_TYPS.contains(&bare)
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
    /// CIBA Core §7.1.1: verifies the signed request object and returns the parameters it
    /// carries. Authentication parameters may not also appear outside it.
    pub(super) async fn open_request_object(
        &self,
        client: &Client,
        request: &str,
        outer: &Params,
    ) -> AuthResult<Params> {
        let bad = |m: &str| AuthError::InvalidRequest(m.to_owned());
        if let Some(name) = outer.keys().find(|k| AUTH_PARAMS.contains(&k.as_str())) {
            return Err(AuthError::invalid_request(format!(
                "{name} must be inside the signed request object, not beside it"
            )));
        }
        let jws = jose::decode_jws(request)
            .map_err(|e| bad(&format!("request is not a valid JWS: {e}")))?;
        if let Some(typ) = jws.header.typ.as_deref()
            && !typ_accepted(typ)
        {
            return Err(bad("request typ must be JWT or oauth-authz-req+jwt"));
        }
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

#[cfg(test)]
mod tests {
    use super::typ_accepted;

    #[test]
    fn typ_is_compared_case_insensitively() {
        for typ in [
            "JWT",
            "jwt",
            "oauth-authz-req+jwt",
            "OAuth-Authz-Req+JWT",
            "application/JWT",
        ] {
            assert!(typ_accepted(typ), "{typ}");
        }
        for typ in ["at+jwt", "logout+jwt", "", "JOSE"] {
            assert!(!typ_accepted(typ), "{typ}");
        }
    }
}
