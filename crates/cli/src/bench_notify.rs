//! `backchannel bench --scenario notify`: decision-to-notification latency for ping and push
//! clients and decision-to-answer latency of a held (long) poll. Each flow is real: a
//! backchannel request over HTTP, the reference authenticator deciding over the device API,
//! and a local receiver (or the held poll) timing the arrival. Latency runs from the moment
//! the device sends its decision.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use backchannel_authenticator::{Decision, Device};
use backchannel_protocol::jose::Algorithm;
use backchannel_protocol::oauth::{DeliveryMode, GRANT_TYPE_CIBA};
use backchannel_server::app::RunningServer;
use backchannel_server::domain::admin::{NewClient, NewUser};
use serde_json::Value;
use tokio::sync::{Semaphore, oneshot};

use crate::BoxError;
use crate::bench::Latencies;

type Arrivals = Arc<Mutex<HashMap<String, oneshot::Sender<Instant>>>>;

async fn arrive(State(arrivals): State<Arrivals>, body: String) -> &'static str {
    let at = Instant::now();
    let id = serde_json::from_str::<Value>(&body)
        .ok()
        .and_then(|v| v["auth_req_id"].as_str().map(str::to_owned));
    if let Some(tx) = id.and_then(|id| arrivals.lock().ok()?.remove(&id)) {
        let _ = tx.send(at);
    }
    ""
}

/// A local notification receiver; returns its URL.
async fn receiver(arrivals: Arrivals) -> Result<String, BoxError> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/cb", listener.local_addr()?);
    let app = axum::Router::new()
        .route("/cb", axum::routing::post(arrive))
        .with_state(arrivals);
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(url)
}

struct Flow {
    http: reqwest::Client,
    issuer: String,
    device: Arc<Device>,
    email: String,
}

impl Flow {
    async fn start(&self, id: &str, secret: &str, tag: &str, notified: bool) -> Option<String> {
        let mut form = vec![
            ("scope", "openid".to_owned()),
            ("login_hint", self.email.clone()),
            ("binding_message", tag.to_owned()),
        ];
        if notified {
            form.push(("client_notification_token", "bench-token".into()));
        }
        let r = self
            .http
            .post(format!("{}/bc-authorize", self.issuer))
            .basic_auth(id, Some(secret))
            .form(&form)
            .send()
            .await
            .ok()?;
        let body: Value = r.json().await.ok()?;
        body["auth_req_id"].as_str().map(str::to_owned)
    }

    /// Finds the challenge with this binding message and approves it; returns when the
    /// decision was sent.
    async fn approve(&self, tag: &str) -> Option<Instant> {
        let list = self.device.list_challenges().await.ok()?;
        let challenge = list
            .into_iter()
            .find(|c| c.claims.binding_message.as_deref() == Some(tag))?;
        let sent = Instant::now();
        self.device
            .decide(&challenge, Decision::Approve, true)
            .await
            .ok()?;
        Some(sent)
    }
}

/// A new user with `email` and one device enrolled over the device API.
pub async fn user_with_device(
    server: &RunningServer,
    email: &str,
) -> Result<Arc<Device>, BoxError> {
    let domain = &server.domain;
    let user = domain
        .create_user(NewUser {
            email: Some(email.to_owned()),
            ..Default::default()
        })
        .await?;
    let code = domain.create_enrolment(&user.sub).await?.code;
    let device =
        backchannel_authenticator::enrol(&server.issuer, &code, Some("bench"), Algorithm::ES256)
            .await?;
    Ok(Arc::new(device))
}

pub async fn run(
    server: &RunningServer,
    flows: usize,
    concurrency: usize,
) -> Result<Vec<Latencies>, BoxError> {
    let domain = &server.domain;
    let arrivals: Arrivals = Arc::default();
    let endpoint = receiver(arrivals.clone()).await?;
    let email = "bench-notify@example.com".to_owned();
    let device = user_with_device(server, &email).await?;
    let flow = Arc::new(Flow {
        http: reqwest::Client::new(),
        issuer: server.issuer.clone(),
        device,
        email,
    });

    let mut results = Vec::new();
    for (name, mode) in [
        ("ping: decision to notification", Some(DeliveryMode::Ping)),
        ("push: decision to notification", Some(DeliveryMode::Push)),
        ("long poll: decision to answer", None),
    ] {
        let created = domain
            .create_client(NewClient {
                name: format!("bench {name}"),
                delivery_mode: mode,
                notification_endpoint: mode.map(|_| endpoint.clone()),
                ..Default::default()
            })
            .await?;
        let (id, secret) = (created.client_id, created.client_secret.ok_or("no secret")?);
        let sem = Arc::new(Semaphore::new(concurrency));
        let mut tasks = Vec::new();
        for i in 0..flows {
            let permit = sem.clone().acquire_owned().await?;
            let (flow, arrivals, id, secret) =
                (flow.clone(), arrivals.clone(), id.clone(), secret.clone());
            tasks.push(tokio::spawn(async move {
                let _permit = permit;
                let tag = format!("bench {i} {}", mode.map_or("poll", |m| m.as_str()));
                let auth_req_id = flow.start(&id, &secret, &tag, mode.is_some()).await?;
                if mode.is_some() {
                    let (tx, rx) = oneshot::channel();
                    arrivals.lock().ok()?.insert(auth_req_id, tx);
                    let sent = flow.approve(&tag).await?;
                    let arrived = tokio::time::timeout(Duration::from_secs(10), rx)
                        .await
                        .ok()?
                        .ok()?;
                    Some(arrived.saturating_duration_since(sent))
                } else {
                    let poller = {
                        let flow = flow.clone();
                        tokio::spawn(async move {
                            let form = [
                                ("grant_type", GRANT_TYPE_CIBA),
                                ("auth_req_id", auth_req_id.as_str()),
                            ];
                            let r = flow
                                .http
                                .post(format!("{}/token", flow.issuer))
                                .basic_auth(&id, Some(&secret))
                                .form(&form)
                                .send()
                                .await
                                .ok()?;
                            let answered = Instant::now();
                            (r.status() == 200).then_some(answered)
                        })
                    };
                    // Let the poll arrive and be held before deciding.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    let sent = flow.approve(&tag).await?;
                    let answered = poller.await.ok()??;
                    Some(answered.saturating_duration_since(sent))
                }
            }));
        }
        let mut millis = Vec::new();
        let mut failures = 0;
        for t in tasks {
            match t.await {
                Ok(Some(d)) => millis.push(d.as_secs_f64() * 1000.0),
                _ => failures += 1,
            }
        }
        millis.sort_by(f64::total_cmp);
        results.push(Latencies {
            name,
            millis,
            failures,
        });
    }
    Ok(results)
}
