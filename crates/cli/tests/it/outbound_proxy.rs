//! A proxy in the environment (`HTTPS_PROXY` and friends) is never used by outbound calls: a
//! proxy would resolve names itself, past the SSRF guard. With every proxy variable pointing
//! at a local listener, a ping callback to an allowed address goes straight to it, one to a
//! private address outside the allowed networks is refused, and the proxy sees no connection.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::support::{
    HANG_GUARD, Killed, Recorder, Reply, Rp, admin_with, authenticator_json, enrol, free_port,
    new_user, runtime, serve_with, temp_dir,
};

const PING_TOKEN: &str = "ping-token-proxy-5c2a";

/// Counts the TCP connections made to it (and answers none).
struct Listener {
    addr: SocketAddr,
    connections: Arc<AtomicUsize>,
}

impl Listener {
    fn start(rt: &tokio::runtime::Runtime, ip: &str) -> Listener {
        let connections = Arc::new(AtomicUsize::new(0));
        let counted = connections.clone();
        let addr = rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind((ip, 0)).await.unwrap();
            let addr = listener.local_addr().unwrap();
            tokio::spawn(async move {
                while let Ok((stream, _)) = listener.accept().await {
                    counted.fetch_add(1, Ordering::SeqCst);
                    drop(stream);
                }
            });
            addr
        });
        Listener { addr, connections }
    }

    fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

/// A notification endpoint that records the paths it is POSTed to and answers 204.
struct Endpoint {
    base: String,
    paths: Recorder<String>,
}

impl Endpoint {
    fn start(rt: &tokio::runtime::Runtime, ip: &str) -> Endpoint {
        let paths = Recorder::default();
        let seen = paths.clone();
        let app = axum::Router::new().fallback(move |uri: axum::http::Uri| {
            let seen = seen.clone();
            async move {
                seen.record(uri.path().to_owned());
                axum::http::StatusCode::NO_CONTENT
            }
        });
        let base = rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind((ip, 0)).await.unwrap();
            let addr = listener.local_addr().unwrap();
            tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
            format!("http://{addr}")
        });
        Endpoint { base, paths }
    }
}

/// Polls `until` every 50 ms; fails the test with `what` after [`HANG_GUARD`].
fn wait(what: &str, until: impl Fn() -> bool) {
    let deadline = Instant::now() + HANG_GUARD;
    while !until() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The value of the `backchannel_client_notifications_total` series for ping `outcome`.
fn pings(rt: &tokio::runtime::Runtime, issuer: &str, outcome: &str) -> u64 {
    let text = rt.block_on(async {
        reqwest::get(format!("{issuer}/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    });
    text.lines()
        .filter(|l| {
            l.starts_with("backchannel_client_notifications_total{")
                && l.contains("kind=\"ping\"")
                && l.contains(&format!("outcome=\"{outcome}\""))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

/// A ping client towards `endpoint`, with one request started and approved.
fn approved_ping(
    rt: &tokio::runtime::Runtime,
    (dir, issuer, env): (&std::path::Path, &str, &[(String, String)]),
    state: &str,
    endpoint: &str,
) {
    let client = admin_with(
        dir,
        env,
        &[
            "client",
            "create",
            "--name",
            "Proxy Bank",
            "--delivery-mode",
            "ping",
            "--notification-endpoint",
            endpoint,
            "--json",
        ],
    );
    let rp = Rp::new(issuer, &client);
    let started = rt.block_on(rp.bc_authorize(
        "proxy@example.com",
        &[("client_notification_token", PING_TOKEN)],
    ));
    assert!(matches!(started, Reply::Answered(200, _)), "{started:?}");
    let approved = authenticator_json(&[
        "approve", "--state", state, "--all", "--wait", "10", "--json",
    ]);
    assert_eq!(
        approved["decided"].as_array().unwrap().len(),
        1,
        "{approved}"
    );
}

#[test]
fn outbound_calls_ignore_proxy_variables_and_private_targets_stay_refused() {
    let rt = runtime();
    let dir = temp_dir("outbound-proxy");
    let proxy = Listener::start(&rt, "127.0.0.1");
    let allowed = Endpoint::start(&rt, "127.0.0.1");
    // Loopback too, but outside the allowed networks.
    let forbidden = Endpoint::start(&rt, "127.0.0.2");
    let proxy_url = format!("http://{}", proxy.addr);
    let mut env: Vec<(String, String)> = [
        (
            "BACKCHANNEL_OUTBOUND_ALLOWED_PRIVATE_NETWORKS",
            "127.0.0.1/32",
        ),
        ("BACKCHANNEL_OUTBOUND_ALLOW_HTTP", "true"),
        // Nothing is exempted from the proxy.
        ("NO_PROXY", ""),
        ("no_proxy", ""),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect();
    for var in [
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "http_proxy",
        "https_proxy",
        "all_proxy",
    ] {
        env.push((var.to_owned(), proxy_url.clone()));
    }
    let served = serve_with(&dir, free_port(), &env);
    let issuer = served.issuer.clone();
    let _server = Killed(served.child);
    let sub = new_user(&dir, "proxy@example.com");
    let (state, _) = enrol(&dir, &issuer, &sub, "phone", &[]);
    let state = state.to_str().unwrap();

    approved_ping(
        &rt,
        (&dir, &issuer, &env),
        state,
        &format!("{}/ciba/ping", allowed.base),
    );
    assert_eq!(rt.block_on(allowed.paths.wait(1)), ["/ciba/ping"]);

    approved_ping(
        &rt,
        (&dir, &issuer, &env),
        state,
        &format!("{}/ciba/ping", forbidden.base),
    );
    wait("the refused ping to end as failed", || {
        pings(&rt, &issuer, "failed") == 1
    });
    assert!(
        forbidden.paths.all().is_empty(),
        "{:?}",
        forbidden.paths.all()
    );
    assert_eq!(allowed.paths.all().len(), 1);
    assert_eq!(pings(&rt, &issuer, "delivered"), 1);
    assert_eq!(proxy.connections(), 0, "an outbound call went to the proxy");
}
