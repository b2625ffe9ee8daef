//! The browser authenticator (SPEC §3.1 `GET /authenticator`): static files embedded in the
//! binary (`crates/server/assets/authenticator/`, plain ES modules, no build step) served
//! under a strict Content-Security-Policy, and the two device-API calls only a browser needs:
//! registering its WebAuthn credential and reading the VAPID key to subscribe for Web Push.

use axum::extract::{Path, State};
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use backchannel_protocol::device::{WebAuthnRegistration, WebPushKey};

use super::AppState;
use super::error::HttpError;
use super::extract::{AuthenticatedDevice, JsonBody, TraceId};
use crate::domain::error::AuthError;

/// Scripts, styles, images and connections from this origin only; no inline script or style,
/// no framing, no form posts, no plugins (`default-src 'none'` covers the rest).
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
    style-src 'self'; img-src 'self'; connect-src 'self'; worker-src 'self'; \
    manifest-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// The page, its files and the browser-only device calls.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/authenticator", get(authenticator_page_get))
        .route("/authenticator/", get(authenticator_page_get))
        .route("/authenticator/{file}", get(authenticator_asset_get))
        .route("/device/v1/device/webauthn", post(device_webauthn_post))
        .route("/device/v1/webpush", get(device_webpush_get))
}

/// The embedded files: (name under `/authenticator/`, content type, bytes).
const ASSETS: &[(&str, &str, &str)] = &[
    (
        "index.html",
        "text/html; charset=utf-8",
        include_str!("../../assets/authenticator/index.html"),
    ),
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_str!("../../assets/authenticator/app.js"),
    ),
    (
        "device.js",
        "text/javascript; charset=utf-8",
        include_str!("../../assets/authenticator/device.js"),
    ),
    (
        "render.js",
        "text/javascript; charset=utf-8",
        include_str!("../../assets/authenticator/render.js"),
    ),
    (
        "sw.js",
        "text/javascript; charset=utf-8",
        include_str!("../../assets/authenticator/sw.js"),
    ),
    (
        "style.css",
        "text/css; charset=utf-8",
        include_str!("../../assets/authenticator/style.css"),
    ),
    (
        "icon.svg",
        "image/svg+xml",
        include_str!("../../assets/authenticator/icon.svg"),
    ),
];

fn asset(name: &str, content_type: &'static str, body: &'static str) -> Response {
    let mut response = (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
            (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::REFERRER_POLICY, "no-referrer"),
            (header::X_FRAME_OPTIONS, "DENY"),
        ],
        body,
    )
        .into_response();
    let headers = response.headers_mut();
    headers.insert(
        HeaderName::from_static("cross-origin-opener-policy"),
        HeaderValue::from_static("same-origin"),
    );
    if name == "sw.js" {
        // The worker may control the page at /authenticator as well as what is below it.
        headers.insert(
            HeaderName::from_static("service-worker-allowed"),
            HeaderValue::from_static("/authenticator"),
        );
    }
    response
}

/// `GET /authenticator` (and `/authenticator/`): the page.
pub async fn authenticator_page_get() -> Response {
    let (name, content_type, body) = ASSETS[0];
    asset(name, content_type, body)
}

/// `GET /authenticator/{file}`: the page's scripts, style, icon and service worker.
pub async fn authenticator_asset_get(
    trace: TraceId,
    Path(file): Path<String>,
) -> Result<Response, HttpError> {
    ASSETS
        .iter()
        .find(|(name, _, _)| *name == file)
        .map(|&(name, content_type, body)| asset(name, content_type, body))
        .ok_or_else(|| trace.error(AuthError::NotFound("no such file".into())))
}

/// `POST /device/v1/device/webauthn`: the WebAuthn credential that verifies this device's user.
pub async fn device_webauthn_post(
    State(state): State<AppState>,
    trace: TraceId,
    AuthenticatedDevice(device): AuthenticatedDevice,
    JsonBody(req): JsonBody<WebAuthnRegistration>,
) -> Result<Response, HttpError> {
    let answer = state
        .domain
        .register_webauthn_credential(&device, &req)
        .await
        .map_err(|e| trace.error(e))?;
    Ok((StatusCode::CREATED, Json(answer)).into_response())
}

/// `GET /device/v1/webpush`: the VAPID public key browsers subscribe with (`404 not_found`
/// when Web Push is not configured).
pub async fn device_webpush_get(
    State(state): State<AppState>,
    trace: TraceId,
) -> Result<Response, HttpError> {
    let key = state
        .webpush_key
        .clone()
        .ok_or_else(|| trace.error(AuthError::NotFound("Web Push is not configured".into())))?;
    Ok(Json(WebPushKey {
        application_server_key: key,
    })
    .into_response())
}
