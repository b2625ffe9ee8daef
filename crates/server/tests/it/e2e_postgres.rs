//! The whole poll flow over HTTP with PostgreSQL as the store (an isolated schema per run):
//! the same server, the scale-out backend. Skipped only when PostgreSQL is unreachable and not
//! required ([`PgSchema::open`]).

use std::sync::Arc;

use backchannel_protocol::device::Decision;
use backchannel_protocol::oauth::ClientAuthMethod;
use backchannel_server::domain::clock::SystemClock;

use crate::support::{PgSchema, TestServer};

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
