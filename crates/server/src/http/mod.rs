//! The HTTP surface: one axum router over [`AppState`] with the OP endpoints, the device API,
//! the admin API and health/metrics, plus the trace-id middleware (which names every response
//! in an `X-Request-Id` header) and JSON fallbacks.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use metrics_exporter_prometheus::PrometheusHandle;

pub mod admin;
pub mod authenticator;
pub mod device;
pub mod error;
pub mod external;
pub mod extract;
pub mod op;
pub mod tokens;

use crate::domain::Domain;
use crate::domain::error::AuthError;
use error::HttpError;
use extract::TraceId;

/// Everything a handler can reach. Nothing global or mutable lives outside it. Cloned for
/// every request, so it is one shared pointer.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl AppState {
    pub fn new(shared: Shared) -> Self {
        AppState(Arc::new(shared))
    }
}

impl std::ops::Deref for AppState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// What [`AppState`] shares.
pub struct Shared {
    pub domain: Domain,
    /// SHA-256 (hex) of the admin bearer token; `None` disables the admin API.
    pub admin_token_hash: Option<String>,
    pub metrics: Option<PrometheusHandle>,
    pub max_body: usize,
    /// Turns true when the server stops: long-lived responses (event streams) end then, so a
    /// graceful shutdown does not wait on them forever.
    pub shutdown: tokio::sync::watch::Receiver<bool>,
    /// The VAPID public key (base64url) when Web Push is configured: browsers subscribe with it.
    pub webpush_key: Option<String>,
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/.well-known/openid-configuration", get(op::discovery_get))
        .route(
            "/.well-known/oauth-authorization-server",
            get(op::discovery_get),
        )
        .route("/jwks", get(op::jwks_get))
        .route("/bc-authorize", post(op::bc_authorize_post))
        .route("/bc-auth", post(op::bc_authorize_post))
        .route("/oauth2/v1/bc/authorize", post(op::bc_authorize_post))
        .route("/token", post(op::token_post))
        .route("/oauth2/v1/token", post(op::token_post))
        .route(
            "/userinfo",
            get(tokens::userinfo_get).post(tokens::userinfo_get),
        )
        .route("/introspect", post(tokens::introspect_post))
        .route("/revoke", post(tokens::revoke_post))
        .route("/device/v1/enrol", post(device::device_enrol_post))
        .route("/device/v1/challenges", get(device::device_challenges_get))
        .route("/device/v1/events", get(device::device_events_get))
        .route(
            "/device/v1/device",
            get(device::device_self_get).delete(device::device_self_delete),
        )
        .route("/device/v1/device/push", put(device::device_push_put))
        .route(
            "/device/v1/challenges/{id}",
            get(device::device_challenge_get),
        )
        .route(
            "/device/v1/challenges/{id}/decision",
            post(device::device_challenge_decision_post),
        )
        .route(
            "/external/v1/challenges/{id}/decision",
            post(external::external_challenge_decision_post),
        )
        .route(
            "/admin/v1/clients",
            post(admin::admin_clients_post).get(admin::admin_clients_get),
        )
        .route("/admin/v1/clients/{id}", get(admin::admin_client_get))
        .route(
            "/admin/v1/clients/{id}/disable",
            post(admin::admin_client_disable_post),
        )
        .route(
            "/admin/v1/users",
            post(admin::admin_users_post).get(admin::admin_users_get),
        )
        .route("/admin/v1/users/{sub}", get(admin::admin_user_get))
        .route(
            "/admin/v1/users/{sub}/disable",
            post(admin::admin_user_disable_post),
        )
        .route("/admin/v1/enrolments", post(admin::admin_enrolments_post))
        .route(
            "/admin/v1/users/{sub}/devices",
            get(admin::admin_user_devices_get),
        )
        .route(
            "/admin/v1/users/{sub}/requests",
            get(admin::admin_user_requests_get),
        )
        .route(
            "/admin/v1/devices/{id}/disable",
            post(admin::admin_device_disable_post),
        )
        .route("/admin/v1/policies", get(admin::admin_policies_get))
        .route(
            "/admin/v1/policies/{client_id}",
            put(admin::admin_policy_put)
                .get(admin::admin_policy_get)
                .delete(admin::admin_policy_delete),
        )
        .route("/admin/v1/keys", get(admin::admin_keys_get))
        .route("/admin/v1/keys/rotate", post(admin::admin_keys_rotate_post))
        .route("/healthz", get(healthz_get))
        .route("/readyz", get(readyz_get))
        .route("/metrics", get(metrics_get))
        .merge(authenticator::routes())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn(trace_layer))
        .with_state(state)
}

static NEXT_TRACE: AtomicU64 = AtomicU64::new(0);

/// The response header that names the request's log line (errors and successes alike).
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// Gives every request a trace id (random per process, then a counter), logs one line per
/// request with it, hands it to handlers for their log lines, and returns it to the client in
/// the `X-Request-Id` header of every response.
async fn trace_layer(mut req: Request, next: Next) -> Response {
    let n = NEXT_TRACE.fetch_add(1, Ordering::Relaxed);
    let trace = format!("{}-{n:x}", process_tag());
    req.extensions_mut().insert(TraceId(trace.clone()));
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let route = route_label(&req);
    let started = std::time::Instant::now();
    let mut response = next.run(req).await;
    if let Ok(value) = axum::http::HeaderValue::from_str(&trace) {
        response.headers_mut().insert(REQUEST_ID_HEADER, value);
    }
    let status = response.status().as_u16();
    metrics::histogram!("backchannel_http_request_seconds", "path" => route)
        .record(started.elapsed().as_secs_f64());
    tracing::info!(trace_id = %trace, %method, %path, status, elapsed_us = started.elapsed().as_micros() as u64, "http");
    response
}

fn process_tag() -> &'static str {
    static TAG: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    TAG.get_or_init(|| Domain::random_id(8).unwrap_or_else(|_| "trace".into()))
}

/// The label of a request's route: the route's pattern (`/device/v1/challenges/{id}`), never
/// the path itself, so ids and unknown paths cannot grow the metric's label set.
fn route_label(req: &Request) -> String {
    req.extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned())
}

fn trace_of(req: &Request) -> String {
    req.extensions()
        .get::<TraceId>()
        .map(|t| t.0.clone())
        .unwrap_or_default()
}

async fn not_found(req: Request) -> Response {
    HttpError::new(
        AuthError::NotFound(format!("no endpoint at {}", req.uri().path())),
        &trace_of(&req),
    )
    .into_response()
}

async fn method_not_allowed(req: Request) -> Response {
    let mut r = HttpError::new(
        AuthError::invalid_request(format!("method {} is not allowed here", req.method())),
        &trace_of(&req),
    )
    .into_response();
    *r.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
    r
}

async fn healthz_get() -> &'static str {
    "ok"
}

async fn readyz_get(State(state): State<AppState>) -> Response {
    match state.domain.stores.health.ping().await {
        Ok(()) => "ready".into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "readiness check failed");
            (StatusCode::SERVICE_UNAVAILABLE, "store unreachable").into_response()
        }
    }
}

async fn metrics_get(State(state): State<AppState>) -> Response {
    match &state.metrics {
        Some(handle) => handle.render().into_response(),
        None => (StatusCode::NOT_FOUND, "metrics are not enabled").into_response(),
    }
}
