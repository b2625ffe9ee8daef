//! The whole poll flow over HTTP with PostgreSQL as the store (an isolated schema per run):
//! the same server, the scale-out backend. Skipped only when PostgreSQL is unreachable and not
//! required ([`PgSchema::open`]).

use std::sync::Arc;
use std::time::Duration;

use backchannel_protocol::device::Decision;
use backchannel_protocol::oauth::ClientAuthMethod;
use backchannel_server::domain::Domain;
use backchannel_server::domain::clock::SystemClock;
use tokio::sync::Notify;

use backchannel_server::app::start_with_clock;

use crate::support::{HANG_GUARD, PgSchema, TestServer, temp_dir, test_config};

#[tokio::test]
async fn poll_flow_on_postgres() {
    let Some(pg) = PgSchema::open().await else {
        return;
    };
    let s = TestServer::start_on(|c| c.database.url = pg.url(), Arc::new(SystemClock)).await;
    let (_, device) = s.user_with_device("pg@example.com").await;
    let auth = s
        .secret_client(ClientAuthMethod::ClientSecretBasic, "openid")
        .await;
    let id = s
        .start_request(
            &auth,
            &[("scope", "openid"), ("login_hint", "pg@example.com")],
        )
        .await;
    s.token(&auth, &id)
        .await
        .expect_error(400, "authorization_pending");
    s.token(&auth, &id).await.expect_error(400, "slow_down");
    assert_eq!(device.decide_only(&s, Decision::Approve).await.status, 200);
    let answers = futures_util::future::join_all((0..20).map(|_| s.token(&auth, &id))).await;
    assert_eq!(answers.iter().filter(|a| a.status == 200).count(), 1);
    let TestServer { server, .. } = s;
    server.shutdown().await;
    pg.remove().await.unwrap();
}

/// Waits for a wake-up of `handle` registered before `cause` ran; fails after [`HANG_GUARD`].
async fn woken_by(handle: Arc<Notify>, what: &str, cause: impl std::future::Future) {
    let woken = handle.notified();
    tokio::pin!(woken);
    woken.as_mut().enable();
    cause.await;
    assert!(
        tokio::time::timeout(HANG_GUARD, woken).await.is_ok(),
        "{what}: no wake-up"
    );
}

/// Returns once a signal given on `a` wakes a waiter on `b`; fails with `what` after
/// [`HANG_GUARD`].
async fn b_hears_a(a: &TestServer, b: &TestServer, what: &str) {
    let deadline = tokio::time::Instant::now() + HANG_GUARD;
    loop {
        let probe = b.server.domain.notifier.device_waiter("probe");
        let woken = probe.notified();
        tokio::pin!(woken);
        woken.as_mut().enable();
        a.server.domain.notifier.device_changed("probe");
        if tokio::time::timeout(Duration::from_millis(200), woken)
            .await
            .is_ok()
        {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "{what}");
    }
}

/// Two nodes on one database, each with its own notifier and its own listener (in one test
/// process, but what one hears of the other comes only through PostgreSQL NOTIFY): node B's
/// waiters are woken by what happens on node A and the other way round. The handles asserted
/// on are woken by nothing else (re-checks are timers beside them, not signals on them), so
/// these assert the mechanism, not a latency.
#[tokio::test]
async fn two_nodes_on_one_database_wake_each_other() {
    let Some(pg) = PgSchema::open().await else {
        return;
    };
    let a = TestServer::start_on(|c| c.database.url = pg.url(), Arc::new(SystemClock)).await;
    // One issuer for the cluster (device tokens name it), each node on its own address.
    let mut config = test_config(&temp_dir("node-b"));
    config.database.url = pg.url();
    config.server.issuer = a.server.issuer.clone();
    let server = start_with_clock(config, Arc::new(SystemClock))
        .await
        .unwrap();
    let b = TestServer {
        base: format!("http://{}", server.addr),
        server,
        http: reqwest::Client::new(),
    };
    let (_, device) = a.user_with_device("nodes@example.com").await;
    let auth = a
        .secret_client(ClientAuthMethod::ClientSecretBasic, "openid")
        .await;

    // B listens once a signal from A reaches it (its listener connects in the background).
    b_hears_a(&a, &b, "B never listened").await;

    // A request started on A wakes the device's event streams on B.
    let mut id = String::new();
    woken_by(
        b.server.domain.notifier.device_waiter(&device.id),
        "the device's streams on B",
        async {
            id = a
                .start_request(
                    &auth,
                    &[("scope", "openid"), ("login_hint", "nodes@example.com")],
                )
                .await;
        },
    )
    .await;
    // A decision taken through B wakes a poll held on A.
    woken_by(
        a.server
            .domain
            .notifier
            .request_waiter(&Domain::auth_request_key(&id)),
        "the held poll on A",
        async {
            assert_eq!(device.decide_only(&b, Decision::Approve).await.status, 200);
        },
    )
    .await;
    // And the flow ends on A, once.
    let answers = futures_util::future::join_all((0..10).map(|i| {
        if i % 2 == 0 {
            a.token(&auth, &id)
        } else {
            b.token(&auth, &id)
        }
    }))
    .await;
    assert_eq!(answers.iter().filter(|r| r.status == 200).count(), 1);

    // The listeners' connections are cut: they reconnect, and B hears A again.
    let cut: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE query LIKE 'LISTEN %backchannel_wake%' AND pid <> pg_backend_pid()",
    )
    .fetch_all(pg.store.pool())
    .await
    .unwrap();
    assert!(
        cut.iter().filter(|c| **c).count() >= 2,
        "listeners cut: {cut:?}"
    );
    b_hears_a(
        &a,
        &b,
        "B did not listen again after its connection was cut",
    )
    .await;
    for TestServer { server, .. } in [a, b] {
        server.shutdown().await;
    }
    pg.remove().await.unwrap();
}

/// A TCP relay to PostgreSQL that a test can cut (every relayed connection dropped, new ones
/// refused) and restore: the database going away under a running node.
struct Relay {
    addr: std::net::SocketAddr,
    up: Arc<std::sync::atomic::AtomicBool>,
    cut: Arc<Notify>,
}

impl Relay {
    async fn to(upstream: String) -> Relay {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let up = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let cut = Arc::new(Notify::new());
        let (relay_up, relay_cut) = (up.clone(), cut.clone());
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if !relay_up.load(std::sync::atomic::Ordering::SeqCst) {
                    continue; // dropped: refused
                }
                let upstream = upstream.clone();
                let cut = relay_cut.clone();
                tokio::spawn(async move {
                    let Ok(mut outbound) = tokio::net::TcpStream::connect(&upstream).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        () = cut.notified() => {}
                    }
                });
            }
        });
        Relay { addr, up, cut }
    }

    fn set_up(&self, up: bool) {
        self.up.store(up, std::sync::atomic::Ordering::SeqCst);
        if !up {
            self.cut.notify_waiters();
        }
    }
}

/// PostgreSQL cut off under a running node: readiness turns 503, requests get a JSON 503
/// `temporarily_unavailable` (no hang, no 500), nothing half-done; once the database is back,
/// the same node is ready and serves again without a restart.
#[tokio::test]
async fn a_node_rides_out_its_database_going_away() {
    let Some(pg) = PgSchema::open().await else {
        return;
    };
    let direct = url::Url::parse(&pg.url()).unwrap();
    let upstream = format!(
        "{}:{}",
        direct.host_str().unwrap(),
        direct.port().unwrap_or(5432)
    );
    let relay = Relay::to(upstream).await;
    let mut via_relay = direct.clone();
    via_relay.set_host(Some("127.0.0.1")).unwrap();
    via_relay.set_port(Some(relay.addr.port())).unwrap();
    let s = TestServer::start_on(
        |c| c.database.url = via_relay.to_string(),
        Arc::new(SystemClock),
    )
    .await;
    let (_, _device) = s.user_with_device("outage@example.com").await;
    let auth = s
        .secret_client(ClientAuthMethod::ClientSecretBasic, "openid")
        .await;
    let params = [("scope", "openid"), ("login_hint", "outage@example.com")];
    let ready = |s: &TestServer| {
        let r = s.http.get(s.url("/readyz")).send();
        async move { r.await.unwrap().status().as_u16() }
    };
    assert_eq!(ready(&s).await, 200);

    relay.set_up(false);
    assert_eq!(ready(&s).await, 503);
    let refused = s.bc_authorize(&auth, &params).await;
    assert_eq!(refused.status, 503, "{}", refused.body);
    assert_eq!(refused.body["error"], "temporarily_unavailable");
    assert!(refused.body.get("auth_req_id").is_none());

    relay.set_up(true);
    let deadline = tokio::time::Instant::now() + HANG_GUARD;
    while ready(&s).await != 200 {
        assert!(tokio::time::Instant::now() < deadline, "never ready again");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let id = s.start_request(&auth, &params).await;
    s.token(&auth, &id)
        .await
        .expect_error(400, "authorization_pending");
    let TestServer { server, .. } = s;
    server.shutdown().await;
    pg.remove().await.unwrap();
}
