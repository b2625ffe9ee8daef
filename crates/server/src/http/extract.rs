//! The extractors every handler starts with, each failing with an OAuth-shaped [`HttpError`]
//! and never a framework rejection: the request's trace id, form and JSON bodies, a client's
//! credentials, an authenticated device, the admin bearer.

use std::collections::BTreeMap;

use axum::body::Body;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use backchannel_protocol::device::DEVICE_AUTH_SCHEME;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::de::DeserializeOwned;
use subtle::ConstantTimeEq;

use super::AppState;
use super::error::{AuthScheme, HttpError};
use crate::domain::Domain;
use crate::domain::backchannel::{CLIENT_AUTH_PARAMS, Params};
use crate::domain::client_auth::ClientCredentials;
use crate::domain::error::AuthError;
use crate::domain::model::Device;

/// The id that names one request in the logs and in its error body (set by the trace layer).
#[derive(Debug, Clone)]
pub struct TraceId(pub String);

impl TraceId {
    fn of(parts: &Parts) -> String {
        parts
            .extensions
            .get::<TraceId>()
            .map(|t| t.0.clone())
            .unwrap_or_default()
    }

    /// An error of this request.
    pub fn error(&self, error: AuthError) -> HttpError {
        HttpError::new(error, &self.0)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for TraceId {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(TraceId(TraceId::of(parts)))
    }
}

/// A form-encoded request from a client: its credentials taken out of the header and the
/// body, the other parameters, and the endpoint's URL (the audience of a client assertion).
pub struct ClientRequest {
    pub trace: TraceId,
    pub credentials: ClientCredentials,
    /// How the client authenticated: a 401 over HTTP Basic carries a Basic challenge.
    pub scheme: AuthScheme,
    pub params: Params,
    pub endpoint: String,
}

impl ClientRequest {
    /// An error of this request, with the Basic challenge when the client used Basic.
    pub fn error(&self, error: AuthError) -> HttpError {
        self.trace.error(error).scheme(self.scheme)
    }
}

impl FromRequest<AppState> for ClientRequest {
    type Rejection = HttpError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let (parts, body) = req.into_parts();
        let trace = TraceId(TraceId::of(&parts));
        let mut params = read_form(&parts.headers, body, state.max_body, &trace.0).await?;
        let (credentials, scheme) = take_client_credentials(&parts.headers, &mut params, &trace.0)?;
        Ok(ClientRequest {
            endpoint: state.domain.url(parts.uri.path()),
            trace,
            credentials,
            scheme,
            params,
        })
    }
}

/// A JSON body of type `T`: `application/json`, within `server.max_body_bytes`.
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for JsonBody<T> {
    type Rejection = HttpError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let (parts, body) = req.into_parts();
        let trace = TraceId::of(&parts);
        read_json(&parts.headers, body, state.max_body, &trace)
            .await
            .map(JsonBody)
    }
}

/// The device that signed this request (`Authorization: Device <jwt>`, bound to the method
/// and path).
pub struct AuthenticatedDevice(pub Device);

impl FromRequestParts<AppState> for AuthenticatedDevice {
    type Rejection = HttpError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let trace = TraceId::of(parts);
        let fail = |e: AuthError| HttpError::new(e, &trace).scheme(AuthScheme::Device);
        let jwt =
            authorization_credential(&parts.headers, DEVICE_AUTH_SCHEME).ok_or_else(|| {
                fail(AuthError::InvalidToken(
                    "Authorization: Device <jwt> is required".into(),
                ))
            })?;
        state
            .domain
            .authenticate_device(jwt, parts.method.as_str(), parts.uri.path())
            .await
            .map(AuthenticatedDevice)
            .map_err(fail)
    }
}

/// The Bearer access token of a protected-resource request (RFC 6750 §2): the
/// `Authorization` header, or on a POST the `access_token` parameter of a form body (§2.2).
/// None sent is [`AuthError::MissingBearerToken`]; both at once is `invalid_request` (§2).
pub struct BearerToken {
    pub trace: TraceId,
    pub token: String,
}

impl BearerToken {
    pub fn error(&self, error: AuthError) -> HttpError {
        self.trace.error(error).scheme(AuthScheme::Bearer)
    }
}

impl FromRequest<AppState> for BearerToken {
    type Rejection = HttpError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let (parts, body) = req.into_parts();
        let trace = TraceId(TraceId::of(&parts));
        let fail = |e: AuthError| trace.error(e).scheme(AuthScheme::Bearer);
        let header = authorization_credential(&parts.headers, "Bearer").map(str::to_owned);
        let form =
            media_type(&parts.headers).as_deref() == Some("application/x-www-form-urlencoded");
        let in_body = if parts.method == axum::http::Method::POST && form {
            let mut params = read_form(&parts.headers, body, state.max_body, &trace.0)
                .await
                .map_err(|e| e.scheme(AuthScheme::Bearer))?;
            params.remove("access_token")
        } else {
            None
        };
        let token = match (header, in_body) {
            (Some(_), Some(_)) => {
                return Err(fail(AuthError::invalid_request(
                    "send the access token in one place only",
                )));
            }
            (Some(t), None) | (None, Some(t)) => t,
            (None, None) => return Err(fail(AuthError::MissingBearerToken)),
        };
        if token.is_empty() {
            return Err(fail(AuthError::InvalidToken(
                "the access token is empty".into(),
            )));
        }
        Ok(BearerToken { trace, token })
    }
}

/// A request that carried the admin bearer token (compared by hash, in constant time).
pub struct Admin;

impl FromRequestParts<AppState> for Admin {
    type Rejection = HttpError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let presented = authorization_credential(&parts.headers, "Bearer").map(Domain::hash_hex);
        let ok = match (&state.admin_token_hash, presented) {
            (Some(expected), Some(p)) => bool::from(expected.as_bytes().ct_eq(p.as_bytes())),
            _ => false,
        };
        if ok {
            Ok(Admin)
        } else {
            Err(HttpError::new(
                AuthError::InvalidToken("a valid admin bearer token is required".into()),
                &TraceId::of(parts),
            )
            .scheme(AuthScheme::Bearer))
        }
    }
}

async fn read_bytes(body: Body, limit: usize, trace: &str) -> Result<axum::body::Bytes, HttpError> {
    axum::body::to_bytes(body, limit).await.map_err(|_| {
        HttpError::new(
            AuthError::invalid_request(format!(
                "the request body is unreadable or larger than {limit} bytes"
            )),
            trace,
        )
    })
}

fn media_type(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
    Some(
        value
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase(),
    )
}

/// An `application/x-www-form-urlencoded` body as a map; a repeated parameter is
/// `invalid_request` (RFC 6749 §3.1).
async fn read_form(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
    trace: &str,
) -> Result<Params, HttpError> {
    if media_type(headers).as_deref() != Some("application/x-www-form-urlencoded") {
        return Err(HttpError::new(
            AuthError::invalid_request("the body must be application/x-www-form-urlencoded"),
            trace,
        ));
    }
    let bytes = read_bytes(body, limit, trace).await?;
    parse_form(&bytes).map_err(|e| HttpError::new(e, trace))
}

pub fn parse_form(bytes: &[u8]) -> Result<Params, AuthError> {
    if std::str::from_utf8(bytes).is_err() {
        return Err(AuthError::invalid_request("the form body is not UTF-8"));
    }
    let mut params = BTreeMap::new();
    for (k, v) in url::form_urlencoded::parse(bytes) {
        if params.insert(k.to_string(), v.into_owned()).is_some() {
            return Err(AuthError::invalid_request(format!(
                "parameter {k} is repeated"
            )));
        }
    }
    Ok(params)
}

/// A JSON body; anything else is `invalid_request`.
async fn read_json<T: DeserializeOwned>(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
    trace: &str,
) -> Result<T, HttpError> {
    if media_type(headers).as_deref() != Some("application/json") {
        return Err(HttpError::new(
            AuthError::invalid_request("the body must be application/json"),
            trace,
        ));
    }
    let bytes = read_bytes(body, limit, trace).await?;
    serde_json::from_slice(&bytes).map_err(|e| {
        HttpError::new(
            AuthError::invalid_request(format!("invalid JSON body: {e}")),
            trace,
        )
    })
}

/// Separates client authentication from the other parameters. The second value tells whether
/// HTTP Basic was used (then a 401 carries a Basic challenge).
fn take_client_credentials(
    headers: &HeaderMap,
    params: &mut Params,
    trace: &str,
) -> Result<(ClientCredentials, AuthScheme), HttpError> {
    let mut creds = ClientCredentials::default();
    let mut scheme = AuthScheme::None;
    if let Some(value) = headers.get(header::AUTHORIZATION) {
        let value = value.to_str().unwrap_or("");
        if let Some(encoded) = value
            .strip_prefix("Basic ")
            .or_else(|| value.strip_prefix("basic "))
        {
            scheme = AuthScheme::Basic;
            let pair = decode_basic(encoded.trim()).ok_or_else(|| {
                HttpError::new(
                    AuthError::InvalidClient("malformed HTTP Basic credentials".into()),
                    trace,
                )
                .scheme(AuthScheme::Basic)
            })?;
            creds.basic = Some(pair);
        }
    }
    let mut take = |name: &str| params.remove(name);
    creds.client_id = take(CLIENT_AUTH_PARAMS[0]);
    creds.client_secret = take(CLIENT_AUTH_PARAMS[1]);
    creds.client_assertion = take(CLIENT_AUTH_PARAMS[2]);
    creds.client_assertion_type = take(CLIENT_AUTH_PARAMS[3]);
    Ok((creds, scheme))
}

/// RFC 6749 §2.3.1: base64 of `urlencode(id):urlencode(secret)`.
fn decode_basic(encoded: &str) -> Option<(String, String)> {
    let raw = STANDARD.decode(encoded).ok()?;
    let text = String::from_utf8(raw).ok()?;
    let (id, secret) = text.split_once(':')?;
    let decode = |s: &str| -> String {
        url::form_urlencoded::parse(format!("v={s}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default()
    };
    let id = decode(id);
    if id.is_empty() {
        return None;
    }
    Some((id, decode(secret)))
}

/// The bearer-like credential after `scheme ` in `Authorization`, if present.
pub fn authorization_credential<'a>(headers: &'a HeaderMap, scheme: &str) -> Option<&'a str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (s, rest) = value.split_once(' ')?;
    s.eq_ignore_ascii_case(scheme).then_some(rest.trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_credentials_are_form_url_decoded() {
        let encoded = STANDARD.encode("my%20client:s%3Acret+x");
        assert_eq!(
            decode_basic(&encoded),
            Some(("my client".into(), "s:cret x".into()))
        );
        assert_eq!(decode_basic("!!!"), None);
        assert_eq!(decode_basic(&STANDARD.encode("nocolon")), None);
    }

    #[test]
    fn repeated_parameters_are_rejected() {
        assert!(parse_form(b"a=1&b=2").is_ok());
        assert_eq!(
            parse_form(b"a=1&a=2").map_err(|e| e.code()),
            Err("invalid_request")
        );
        assert!(parse_form(&[0xff, 0xfe]).is_err());
    }
}
