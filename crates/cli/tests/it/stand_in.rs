//! A stand-in for the peers the server calls out to: APNs (HTTP/2 with prior knowledge) and
//! clients' notification endpoints (HTTP/1.1), recording what they receive.

use std::time::Instant;

use axum::http::{HeaderMap, Uri};
use serde_json::Value;

use crate::support::Recorder;

pub fn settings(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// Client notification endpoints on this host, over plain HTTP.
pub fn loopback_callbacks_env() -> Vec<(String, String)> {
    settings(&[
        (
            "BACKCHANNEL_OUTBOUND_ALLOWED_PRIVATE_NETWORKS",
            "127.0.0.0/8",
        ),
        ("BACKCHANNEL_OUTBOUND_ALLOW_HTTP", "true"),
    ])
}

/// One request a [`StandIn`] received.
#[derive(Clone, Debug)]
pub struct Seen {
    pub at: Instant,
    pub path: String,
    pub authorization: Option<String>,
    pub collapse_id: Option<String>,
    pub body: Value,
}

/// What a [`StandIn`] does with the first request it gets.
#[derive(Clone, Copy, PartialEq)]
pub enum First {
    Answered,
    /// Accepted and never answered: the peer is still at it when the server dies.
    Held,
}

/// A stand-in for APNs (HTTP/2 with prior knowledge) or a client's notification endpoint
/// (HTTP/1.1): axum serves both. It records every request and answers 200, but for the first
/// when that one is [`First::Held`].
pub struct StandIn {
    pub base: String,
    pub seen: Recorder<Seen>,
}

impl StandIn {
    pub fn start(rt: &tokio::runtime::Runtime, first: First) -> StandIn {
        let seen = Recorder::default();
        let recorder = seen.clone();
        let app =
            axum::Router::new().fallback(move |uri: Uri, headers: HeaderMap, body: String| {
                let recorder = recorder.clone();
                async move {
                    let header = |name: &str| {
                        headers
                            .get(name)
                            .and_then(|v| v.to_str().ok())
                            .map(str::to_owned)
                    };
                    let request = Seen {
                        at: Instant::now(),
                        path: uri.path().to_owned(),
                        authorization: header("authorization"),
                        collapse_id: header("apns-collapse-id"),
                        body: serde_json::from_str(&body).unwrap_or(Value::String(body)),
                    };
                    let count = recorder.record(request);
                    if first == First::Held && count == 1 {
                        std::future::pending::<()>().await;
                    }
                    ""
                }
            });
        let base = rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
            format!("http://{addr}")
        });
        StandIn { base, seen }
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.all()
    }
}
