//! Test helpers shared by the integration-test binaries of more than one crate (the server's
//! and the CLI's). Not a crate, so it costs no build of its own: each binary's support module
//! includes this file with `#[path]`.

use std::fmt::Debug;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::watch;

/// How long a test waits for something that must happen before it fails instead of hanging.
/// Only a guard against hanging forever: no test asserts how soon anything happens.
pub const HANG_GUARD: Duration = Duration::from_secs(30);

/// A fresh, empty directory under the system temp dir, unique to this process and call.
pub fn temp_dir(tag: &str) -> PathBuf {
    static DIRS: AtomicU64 = AtomicU64::new(0);
    let n = DIRS.fetch_add(1, Ordering::SeqCst);
    let dir = std::env::temp_dir().join(format!("bc-it-{tag}-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Re-checks `check` until it gives `Ok`: for a state the code under test must reach. Fails
/// the test after [`HANG_GUARD`] with `what` and the last `Err` seen; never asserts how soon.
pub async fn eventually<T, E, F, Fut>(what: &str, mut check: F) -> T
where
    E: Debug,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let deadline = tokio::time::Instant::now() + HANG_GUARD;
    loop {
        match check().await {
            Ok(done) => return done,
            Err(last) => assert!(
                tokio::time::Instant::now() < deadline,
                "{what}: still {last:?} after {HANG_GUARD:?}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Whether Python can import `module`, after installing `package` with pip when it could not:
/// the tests that check our output with an implementation that is not ours (`http_ece`,
/// `jwcrypto`) run on a fresh machine by themselves. Tried once per module and process.
pub fn python_module(module: &str, package: &str) -> bool {
    use std::collections::HashMap;
    use std::process::{Command, Stdio};
    use std::sync::Mutex;
    static KNOWN: Mutex<Option<HashMap<String, bool>>> = Mutex::new(None);
    let mut known = KNOWN
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let known = known.get_or_insert_with(HashMap::new);
    if let Some(&ready) = known.get(module) {
        return ready;
    }
    let has = || {
        Command::new("python3")
            .args(["-c", &format!("import {module}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    let ready = has() || {
        let _ = Command::new("python3")
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                package,
            ])
            .stdout(Stdio::null())
            .status();
        has()
    };
    known.insert(module.to_owned(), ready);
    ready
}

/// What a local stand-in server (a client's notification endpoint, APNs, an organisation's
/// system) received, in arrival order, for a test to wait on.
pub struct Recorder<T> {
    seen: Arc<watch::Sender<Vec<T>>>,
}

impl<T> Clone for Recorder<T> {
    fn clone(&self) -> Self {
        Recorder {
            seen: self.seen.clone(),
        }
    }
}

impl<T> Default for Recorder<T> {
    fn default() -> Self {
        Recorder {
            seen: Arc::new(watch::Sender::new(Vec::new())),
        }
    }
}

impl<T: Clone + std::fmt::Debug> Recorder<T> {
    /// Records one request; how many there are now.
    pub fn record(&self, request: T) -> usize {
        let mut count = 0;
        self.seen.send_modify(|seen| {
            seen.push(request);
            count = seen.len();
        });
        count
    }

    /// Everything received so far.
    pub fn all(&self) -> Vec<T> {
        self.seen.borrow().clone()
    }

    /// Everything received once there are at least `n`, or `None` if `within` passes first.
    pub async fn wait_for(&self, n: usize, within: Duration) -> Option<Vec<T>> {
        let mut rx = self.seen.subscribe();
        let arrived = rx.wait_for(|seen| seen.len() >= n);
        match tokio::time::timeout(within, arrived).await {
            Ok(Ok(seen)) => Some(seen.clone()),
            _ => None,
        }
    }

    /// Everything received once there are at least `n`; fails the test after [`HANG_GUARD`].
    pub async fn wait(&self, n: usize) -> Vec<T> {
        match self.wait_for(n, HANG_GUARD).await {
            Some(seen) => seen,
            None => panic!("expected {n} requests, got {:?}", self.all()),
        }
    }
}
