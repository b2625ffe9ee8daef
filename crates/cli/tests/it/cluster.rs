//! A fixture for tests of many nodes on PostgreSQL: a fresh database per test, dropped when the
//! test ends, and `backchannel serve` processes on it started at the same moment. Skips (with a
//! note) when PostgreSQL is not usable, unless `BACKCHANNEL_REQUIRE_POSTGRES=1` or an explicit
//! `BACKCHANNEL_TEST_POSTGRES_URL` makes it required; then it fails the test instead.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use backchannel_server::store::Stores;
use serde_json::Value;
use sqlx::{AssertSqlSafe, Connection, Executor, PgConnection};

use crate::support::{HANG_GUARD, Killed, admin_with, free_port, runtime, serve_with, temp_dir};

/// The PostgreSQL the tests use unless `BACKCHANNEL_TEST_POSTGRES_URL` names another.
const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// A database of its own on the test PostgreSQL, dropped (connections and all) on drop.
pub struct PgDatabase {
    /// The database the fixture connects to for creating and dropping (the configured one).
    server_url: String,
    name: String,
    /// The URL of the fresh database, for `BACKCHANNEL_DATABASE_URL`.
    pub url: String,
}

impl PgDatabase {
    /// A fresh database, or `None` (the caller skips) when PostgreSQL is not usable and not
    /// required.
    pub fn create() -> Option<PgDatabase> {
        static N: AtomicU64 = AtomicU64::new(0);
        let explicit = std::env::var("BACKCHANNEL_TEST_POSTGRES_URL").ok();
        let required = explicit.is_some()
            || std::env::var("BACKCHANNEL_REQUIRE_POSTGRES").is_ok_and(|v| v == "1");
        let server_url = explicit.unwrap_or_else(|| DEFAULT_POSTGRES_URL.to_owned());
        let name = format!(
            "backchannel_cluster_{}_{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        );
        // The name is ours (letters, digits, underscores), so quoting it is enough.
        let created = runtime().block_on(async {
            let connect = PgConnection::connect(&server_url);
            let mut conn = tokio::time::timeout(Duration::from_secs(15), connect)
                .await
                .map_err(|_| "timed out".to_owned())?
                .map_err(|e| e.to_string())?;
            conn.execute(AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
                .await
                .map_err(|e| e.to_string())?;
            conn.close().await.map_err(|e| e.to_string())
        });
        if let Err(why) = created {
            assert!(!required, "PostgreSQL required but not usable: {why}");
            eprintln!("PostgreSQL not usable ({why}): skipping this test");
            return None;
        }
        let url = with_database(&server_url, &name);
        Some(PgDatabase {
            server_url,
            name,
            url,
        })
    }

    /// The store the nodes share, opened from the test (its migrations have run or wait for
    /// the running ones).
    pub async fn stores(&self) -> Stores {
        Stores::open(&self.url).await.unwrap()
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        let dropped = runtime().block_on(async {
            let mut conn = PgConnection::connect(&self.server_url).await?;
            conn.execute(AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
                self.name
            )))
            .await?;
            conn.close().await
        });
        if let Err(e) = dropped {
            eprintln!("could not drop test database {}: {e}", self.name);
        }
    }
}

/// `url` naming database `name` instead of its own (the query string kept).
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, format!("?{query}")),
        None => (url, String::new()),
    };
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let authority_end = base[scheme_end..]
        .find('/')
        .map_or(base.len(), |i| scheme_end + i);
    format!("{}/{name}{query}", &base[..authority_end])
}

/// One `backchannel serve` node of a cluster.
pub struct Node {
    pub issuer: String,
    _process: Killed,
}

/// `backchannel serve` nodes on one fresh PostgreSQL database, each with its own data directory
/// and port. The nodes are stopped before the database is dropped (field order).
pub struct Cluster {
    pub nodes: Vec<Node>,
    pub db: PgDatabase,
    dir: PathBuf,
    /// The settings every node got, which `admin` gets too.
    settings: Vec<(String, String)>,
}

impl Cluster {
    /// `n` nodes on a fresh database, all started at the same moment (their processes are
    /// spawned together, past a barrier), each answering before this returns; `None` when
    /// PostgreSQL is not usable and not required.
    pub fn start(tag: &str, n: usize) -> Option<Cluster> {
        Self::start_with(tag, n, &[])
    }

    /// [`Cluster::start`] with further `BACKCHANNEL_*` settings for every node.
    pub fn start_with(tag: &str, n: usize, settings: &[(String, String)]) -> Option<Cluster> {
        let db = PgDatabase::create()?;
        let dir = temp_dir(tag);
        std::fs::create_dir_all(dir.join("admin")).unwrap();
        let barrier = Arc::new(Barrier::new(n));
        let starts: Vec<_> = (0..n)
            .map(|i| {
                let node_dir = dir.join(format!("node-{i}"));
                std::fs::create_dir_all(&node_dir).unwrap();
                let mut extra = vec![("BACKCHANNEL_DATABASE_URL".to_owned(), db.url.clone())];
                extra.extend(settings.iter().cloned());
                let barrier = barrier.clone();
                std::thread::spawn(move || {
                    barrier.wait();
                    serve_with(&node_dir, free_port(), &extra)
                })
            })
            .collect();
        let nodes = starts
            .into_iter()
            .map(|start| {
                let served = start.join().unwrap();
                Node {
                    issuer: served.issuer,
                    _process: Killed(served.child),
                }
            })
            .collect();
        let cluster = Cluster {
            nodes,
            db,
            dir,
            settings: settings.to_vec(),
        };
        for node in &cluster.nodes {
            runtime().block_on(node.ready());
        }
        Some(cluster)
    }

    /// Runs `backchannel admin ARGS` against the shared database; its JSON output.
    pub fn admin(&self, args: &[&str]) -> Value {
        let mut extra = vec![("BACKCHANNEL_DATABASE_URL".to_owned(), self.db.url.clone())];
        extra.extend(self.settings.iter().cloned());
        admin_with(&self.dir.join("admin"), &extra, args)
    }
}

impl Node {
    /// Waits until the node answers `/readyz`.
    async fn ready(&self) {
        let http = http();
        let deadline = Instant::now() + HANG_GUARD;
        loop {
            let answer = http.get(format!("{}/readyz", self.issuer)).send().await;
            if answer.is_ok_and(|r| r.status().is_success()) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "node {} never became ready",
                self.issuer
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The node's `/jwks`, as `kid` → the whole public key.
    pub async fn jwks(&self) -> BTreeMap<String, Value> {
        let jwks: Value = http()
            .get(format!("{}/jwks", self.issuer))
            .send()
            .await
            .unwrap()
            .error_for_status()
            .unwrap()
            .json()
            .await
            .unwrap();
        jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| (k["kid"].as_str().unwrap().to_owned(), k.clone()))
            .collect()
    }
}

fn http() -> reqwest::Client {
    // A hung node fails the test instead of hanging it.
    reqwest::Client::builder()
        .timeout(HANG_GUARD)
        .build()
        .unwrap()
}

#[test]
fn database_urls_name_the_fresh_database() {
    assert_eq!(
        with_database("postgres://postgres@127.0.0.1:5432/test", "fresh"),
        "postgres://postgres@127.0.0.1:5432/fresh"
    );
    assert_eq!(
        with_database("postgres://u:p@db/test?sslmode=disable", "fresh"),
        "postgres://u:p@db/fresh?sslmode=disable"
    );
    assert_eq!(
        with_database("postgres://db", "fresh"),
        "postgres://db/fresh"
    );
}
