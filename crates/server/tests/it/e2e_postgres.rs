//! The whole poll flow over HTTP with PostgreSQL as the store (an isolated schema per run):
//! the same server, the scale-out backend. Skipped only when PostgreSQL is unreachable and not
//! required (`BACKCHANNEL_REQUIRE_POSTGRES=1` in CI).

use std::sync::Arc;

use backchannel_protocol::device::Decision;
use backchannel_protocol::oauth::ClientAuthMethod;
use backchannel_server::domain::clock::SystemClock;
use backchannel_server::store::postgres::PgStore;

use crate::support::TestServer;

const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

#[tokio::test]
async fn poll_flow_on_postgres() {
    let explicit = std::env::var("BACKCHANNEL_TEST_POSTGRES_URL").ok();
    let required =
        explicit.is_some() || std::env::var("BACKCHANNEL_REQUIRE_POSTGRES").is_ok_and(|v| v == "1");
    let url = explicit.unwrap_or_else(|| DEFAULT_URL.to_owned());
    let (store, schema) = match PgStore::open_isolated(&url).await {
        Ok(opened) => opened,
        Err(e) if !required => {
            eprintln!("PostgreSQL unreachable ({e}); skipping");
            return;
        }
        Err(e) => panic!("PostgreSQL is required: {e}"),
    };
    let sep = if url.contains('?') { '&' } else { '?' };
    let server_url = format!("{url}{sep}options=-c%20search_path%3D{schema}");
    let s = TestServer::start_on(|c| c.database.url = server_url, Arc::new(SystemClock)).await;
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
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP SCHEMA \"{schema}\" CASCADE"
    )))
    .execute(store.pool())
    .await
    .unwrap();
}
