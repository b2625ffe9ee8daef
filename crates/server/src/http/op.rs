//! The OpenID Provider endpoints: discovery, JWKS, the backchannel authentication endpoint
//! and the token endpoint. Thin: parse, call the domain, map the result.

use axum::Extension;
use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Uri, header};
use axum::response::{IntoResponse, Response};
use backchannel_protocol::jose::Algorithm;
use backchannel_protocol::metadata::ProviderMetadata;
use backchannel_protocol::oauth::{ClientAuthMethod, GRANT_TYPE_CIBA};

use super::AppState;
use super::error::HttpError;
use super::extract::{TraceId, read_form, take_client_credentials};
use crate::domain::error::AuthError;
use crate::domain::token::{ACR_DEVICE, ACR_DEVICE_UV, PROFILE_CLAIMS};

fn no_store(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
        .headers_mut()
        .insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    response
}

pub fn provider_metadata(state: &AppState) -> ProviderMetadata {
    let d = &state.domain;
    let algs: Vec<String> = Algorithm::ALL
        .iter()
        .map(|a| a.as_str().to_owned())
        .collect();
    let mut claims: Vec<String> = [
        "sub",
        "iss",
        "aud",
        "exp",
        "iat",
        "auth_time",
        "acr",
        "amr",
        "email",
        "email_verified",
        "phone_number",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    claims.extend(PROFILE_CLAIMS.iter().map(|s| (*s).to_owned()));
    ProviderMetadata {
        issuer: d.issuer.clone(),
        jwks_uri: d.url("/jwks"),
        token_endpoint: d.url("/token"),
        backchannel_authentication_endpoint: d.url("/bc-authorize"),
        authorization_endpoint: None,
        userinfo_endpoint: None,
        backchannel_token_delivery_modes_supported: vec![
            "poll".into(),
            "ping".into(),
            "push".into(),
        ],
        backchannel_authentication_request_signing_alg_values_supported: algs.clone(),
        backchannel_user_code_parameter_supported: true,
        grant_types_supported: vec![GRANT_TYPE_CIBA.into()],
        response_types_supported: vec![],
        subject_types_supported: vec!["public".into()],
        scopes_supported: ["openid", "email", "profile", "phone"]
            .iter()
            .map(|s| (*s).to_owned())
            .collect(),
        claims_supported: claims,
        token_endpoint_auth_methods_supported: ClientAuthMethod::ALL
            .iter()
            .map(|m| m.as_str().to_owned())
            .collect(),
        token_endpoint_auth_signing_alg_values_supported: algs.clone(),
        id_token_signing_alg_values_supported: algs.clone(),
        request_object_signing_alg_values_supported: algs,
        authorization_details_types_supported: d.config.authorization_details.types.clone(),
        acr_values_supported: vec![ACR_DEVICE.into(), ACR_DEVICE_UV.into()],
        claims_parameter_supported: false,
        request_parameter_supported: true,
        other: serde_json::Map::new(),
    }
}

pub async fn discovery_get(State(state): State<AppState>) -> Response {
    let mut r = Json(provider_metadata(&state)).into_response();
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    r
}

pub async fn jwks_get(State(state): State<AppState>) -> Response {
    let mut r = Json(state.domain.keys.jwks()).into_response();
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    r
}

pub async fn bc_authorize_post(
    State(state): State<AppState>,
    Extension(TraceId(trace)): Extension<TraceId>,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, HttpError> {
    let mut params = read_form(&headers, body, state.max_body, &trace).await?;
    let (creds, scheme) = take_client_credentials(&headers, &mut params, &trace)?;
    let d = &state.domain;
    let client = d
        .authenticate_client(&creds, &d.url(uri.path()))
        .await
        .map_err(|e| HttpError::new(e, &trace).scheme(scheme))?;
    let answer = d
        .start_backchannel_auth(&client, &params)
        .await
        .map_err(|e| HttpError::new(e, &trace))?;
    metrics::counter!("backchannel_requests_started_total").increment(1);
    tracing::info!(trace_id = %trace, client_id = %client.id, "backchannel request started");
    Ok(no_store(Json(answer).into_response()))
}

pub async fn token_post(
    State(state): State<AppState>,
    Extension(TraceId(trace)): Extension<TraceId>,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, HttpError> {
    let fail = |e: AuthError| HttpError::new(e, &trace).at_token_endpoint();
    let mut params = read_form(&headers, body, state.max_body, &trace)
        .await
        .map_err(HttpError::at_token_endpoint)?;
    let (creds, scheme) = take_client_credentials(&headers, &mut params, &trace)?;
    let grant_type = params.get("grant_type").map(String::as_str).unwrap_or("");
    if grant_type.is_empty() {
        return Err(fail(AuthError::invalid_request("grant_type is required")));
    }
    let d = &state.domain;
    let client = d
        .authenticate_client(&creds, &d.url(uri.path()))
        .await
        .map_err(|e| fail(e).scheme(scheme))?;
    if grant_type != GRANT_TYPE_CIBA {
        return Err(fail(AuthError::UnsupportedGrantType(format!(
            "grant_type {grant_type} is not supported"
        ))));
    }
    let auth_req_id = params.get("auth_req_id").map(String::as_str).unwrap_or("");
    let tokens = d
        .redeem_auth_req_id(&client, auth_req_id)
        .await
        .map_err(fail)?;
    Ok(no_store(Json(tokens).into_response()))
}
