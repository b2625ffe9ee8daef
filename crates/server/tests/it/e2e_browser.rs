//! The browser authenticator page in a real headless Chromium: `tests/browser/
//! authenticator.test.mjs` (playwright-core from npm, the system's Chromium) enrols, sees
//! requests arrive live, approves with a CDP virtual platform authenticator (WebAuthn), denies,
//! sees a challenge answered elsewhere and one expire, and receives a Web Push in the service
//! worker, against this real server on `http://localhost:PORT` (WebAuthn refuses IP addresses).
//!
//! The test finds Chromium (`BACKCHANNEL_CHROMIUM`, else `chromium` on the PATH, else installs
//! Debian's `chromium` with apt-get when it runs as root) and installs playwright-core with
//! `npm ci` when missing. Without them it is skipped loudly, except under CI
//! (`CI` set) or `BACKCHANNEL_REQUIRE_BROWSER=1`, where it fails.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::support::TestServer;

fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

fn chromium() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("BACKCHANNEL_CHROMIUM") {
        return Some(PathBuf::from(p));
    }
    let find = || {
        ["chromium", "chromium-browser", "google-chrome"]
            .into_iter()
            .find_map(on_path)
    };
    if let Some(p) = find() {
        return Some(p);
    }
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0"));
    if root && on_path("apt-get").is_some() {
        eprintln!("browser test: installing Debian's chromium with apt-get (once)");
        let _ = Command::new("apt-get").arg("update").arg("-qq").status();
        let _ = Command::new("apt-get")
            .args(["install", "-y", "-qq", "chromium"])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status();
    }
    find()
}

/// The test's npm package with playwright-core installed (`npm ci` from the lock file).
fn driver_dir() -> Result<PathBuf, String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    if dir
        .join("node_modules/playwright-core/package.json")
        .is_file()
    {
        return Ok(dir);
    }
    let npm = on_path("npm").ok_or("npm is not installed")?;
    let status = Command::new(npm)
        .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
        .current_dir(&dir)
        .status()
        .map_err(|e| format!("npm ci: {e}"))?;
    if !status.success() {
        return Err(format!("npm ci failed: {status}"));
    }
    Ok(dir)
}

fn tools() -> Result<(PathBuf, PathBuf, PathBuf), String> {
    let node = on_path("node").ok_or("node is not installed")?;
    let chromium = chromium().ok_or("no Chromium found or installable")?;
    Ok((node, chromium, driver_dir()?))
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_browser_authenticator_enrols_shows_verifies_and_decides_in_chromium() {
    let (node, chromium, dir) = match tools() {
        Ok(found) => found,
        Err(why) => {
            let required = std::env::var_os("CI").is_some()
                || std::env::var("BACKCHANNEL_REQUIRE_BROWSER").is_ok_and(|v| v == "1");
            assert!(!required, "the browser test is required here but: {why}");
            eprintln!("\n########\n# SKIPPED the browser authenticator test: {why}\n########\n");
            return;
        }
    };
    let port = free_port();
    let server = TestServer::start_with(|c| {
        c.server.listen = format!("127.0.0.1:{port}");
        c.server.issuer = format!("http://localhost:{port}");
        c.ciba.min_expires_in = 1;
        c.ciba.interval = 1;
    })
    .await;
    let screenshot = Path::new(env!("CARGO_TARGET_TMPDIR")).join("authenticator-pending.png");
    let out = tokio::process::Command::new(node)
        .arg(dir.join("authenticator.test.mjs"))
        .env("ISSUER", &server.base)
        .env("API", format!("http://127.0.0.1:{port}"))
        .env("ADMIN_TOKEN", &server.server.admin_token)
        .env("CHROMIUM", &chromium)
        .env("SCREENSHOT", &screenshot)
        .kill_on_drop(true)
        .output()
        .await
        .unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    eprintln!("{report}{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "the browser steps failed:\n{report}");
    assert!(report.contains("all steps passed"));
    assert!(screenshot.is_file());
    eprintln!(
        "screenshot of a pending challenge: {}",
        screenshot.display()
    );
}
