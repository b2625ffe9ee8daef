//! `backchannel demo` (SPEC §3.2): a whole CIBA flow in one process, narrated. It starts a
//! server on a free loopback port over a temporary SQLite database, registers a
//! `private_key_jwt` client, a user and an authenticator device, then runs the flow (the
//! backchannel request, the device's challenge and approval, the polls, the tokens), printing
//! each HTTP exchange abbreviated, and removes everything it made.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use backchannel_authenticator::{Decision, Device};
use backchannel_client::{
    Algorithm, BackchannelAuthResponse, CibaClient, ClientAuth, Exchange, InitiateRequest,
    PollOutcome, SigningKey,
};
use backchannel_protocol::jose::Jwks;
use backchannel_server::config::Config;
use backchannel_server::domain::admin::{NewClient, NewUser};
use serde_json::Value;

use crate::{BoxError, CmdResult};

/// The demo's user, named by NRIC as Singpass names users.
const NRIC: &str = "S1234567D";
const BINDING_MESSAGE: &str = "Transfer SGD 120 to ACME? W4SCT";
/// Values longer than this are cut in the narration.
const SHOWN_CHARS: usize = 64;
/// Members of a JSON answer shown before "…".
const SHOWN_MEMBERS: usize = 8;

#[derive(clap::Args)]
pub struct DemoArgs {}

/// A temporary directory removed on drop, whatever happened.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Result<Self, BoxError> {
        let name = format!(
            "backchannel-demo-{}-{}",
            std::process::id(),
            backchannel_protocol::jose::random_token(6)?
        );
        let path = std::env::temp_dir().join(name);
        std::fs::create_dir_all(&path)?;
        Ok(TempDir(path))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Prints the story: numbered steps, and each exchange under the current step.
#[derive(Default)]
struct Narrator {
    step: AtomicUsize,
}

impl Narrator {
    fn step(&self, title: &str) {
        let n = self.step.fetch_add(1, Ordering::SeqCst) + 1;
        println!("\n{n}. {title}");
    }

    fn note(&self, text: &str) {
        println!("   {text}");
    }

    fn exchange(&self, e: &Exchange) {
        let mut s = String::new();
        let _ = writeln!(s, "   → {} {}", e.method, e.url);
        if let Some(a) = &e.authorization {
            let _ = writeln!(s, "     Authorization: {a}");
        }
        for (k, v) in &e.form {
            let _ = writeln!(s, "     {k}={}", cut(v));
        }
        let _ = writeln!(s, "   ← {}", e.status);
        s.push_str(&abbreviate(&e.response));
        print!("{s}");
    }

    /// A device API call, told from what the device library returned.
    fn device_exchange(&self, method: &str, url: &str, status: u16, said: &[(&str, String)]) {
        // A short-lived JWT signed by the device key, bound to the method and URL.
        let mut s = format!(
            "   → {method} {url}\n     Authorization: {} … (device-signed JWT)\n",
            backchannel_protocol::device::DEVICE_AUTH_SCHEME
        );
        let _ = writeln!(s, "   ← {status}");
        for (k, v) in said {
            let _ = writeln!(s, "     {k}: {}", cut(v));
        }
        print!("{s}");
    }
}

/// A value cut to [`SHOWN_CHARS`], saying how long it was.
fn cut(v: &str) -> String {
    let n = v.chars().count();
    if n <= SHOWN_CHARS {
        return v.to_owned();
    }
    let head: String = v.chars().take(SHOWN_CHARS - 8).collect();
    format!("{head}… ({n} chars)")
}

/// A JSON answer as one indented line per member, values cut, at most [`SHOWN_MEMBERS`].
fn abbreviate(body: &str) -> String {
    let Ok(Value::Object(members)) = serde_json::from_str::<Value>(body) else {
        return if body.is_empty() {
            String::new()
        } else {
            format!("     {}\n", cut(body))
        };
    };
    let mut s = String::new();
    for (k, v) in members.iter().take(SHOWN_MEMBERS) {
        let shown = match v {
            Value::String(t) => format!("\"{}\"", cut(t)),
            Value::Array(a) if a.len() > 3 => format!("[… {} items]", a.len()),
            other => cut(&other.to_string()),
        };
        let _ = writeln!(s, "     {k}: {shown}");
    }
    if members.len() > SHOWN_MEMBERS {
        let _ = writeln!(s, "     … ({} more)", members.len() - SHOWN_MEMBERS);
    }
    s
}

pub async fn run(_args: DemoArgs) -> CmdResult {
    let dir = TempDir::new()?;
    let mut config = Config::default();
    config.server.listen = "127.0.0.1:0".into();
    config.server.issuer = String::new();
    config.server.data_dir = dir.0.display().to_string();
    config.database.url = format!("sqlite://{}/demo.db", dir.0.display());
    // A short interval keeps the demo short; the protocol is the same.
    config.ciba.interval = 1;
    let server = backchannel_server::app::start(config).await?;
    let result = flow(&server).await;
    server.shutdown().await;
    drop(dir);
    match result {
        Ok(()) => {
            println!("\nDone: the server stopped and its temporary database was removed.");
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => Err(format!("the demo failed: {e}").into()),
    }
}

async fn flow(server: &backchannel_server::app::RunningServer) -> Result<(), BoxError> {
    let narrator = Arc::new(Narrator::default());
    let issuer = server.issuer.clone();
    let domain = &server.domain;
    println!("Backchannel demo: one CIBA flow, from the relying party's request to its tokens.");
    println!("Server: {issuer} (temporary SQLite database, stopped at the end)");

    narrator.step("The operator registers a relying party, a user and the user's device");
    let key = SigningKey::generate(Algorithm::ES256)?;
    let client = domain
        .create_client(NewClient {
            name: "Demo Bank".into(),
            auth_method: Some(backchannel_protocol::oauth::ClientAuthMethod::PrivateKeyJwt),
            jwks: Some(Jwks {
                keys: vec![key.public_jwk()],
            }),
            scope: Some("openid email".into()),
            ..NewClient::default()
        })
        .await?;
    narrator.note(&format!(
        "client \"Demo Bank\": {} (private_key_jwt, ES256 key {})",
        client.client_id,
        key.kid()
    ));
    let user = domain
        .create_user(NewUser {
            nric: Some(NRIC.into()),
            email: Some("alice@example.com".into()),
            ..NewUser::default()
        })
        .await?;
    narrator.note(&format!(
        "user {NRIC} (alice@example.com): sub {}",
        user.sub
    ));
    let enrolment = domain.create_enrolment(&user.sub).await?;
    let device: Device = backchannel_authenticator::enrol(
        &issuer,
        &enrolment.code,
        Some("Alice's phone"),
        Algorithm::ES256,
    )
    .await?;
    narrator.note(&format!(
        "device \"Alice's phone\" enrolled with one-time code {}: {}",
        enrolment.code,
        device.device_id()
    ));

    narrator.step("The relying party discovers the server");
    let observer = narrator.clone();
    let rp = CibaClient::discover(
        &issuer,
        client.client_id.clone(),
        ClientAuth::PrivateKeyJwt(key),
    )
    .await?
    .with_observer(Arc::new(move |e: &Exchange| observer.exchange(e)));
    let m = rp.metadata();
    narrator.note(&format!(
        "GET {issuer}/.well-known/openid-configuration → 200"
    ));
    narrator.note(&format!(
        "backchannel_authentication_endpoint: {}",
        m.backchannel_authentication_endpoint
    ));
    narrator.note(&format!("token_endpoint: {}", m.token_endpoint));
    narrator.note(&format!(
        "delivery modes: {}",
        m.backchannel_token_delivery_modes_supported.join(", ")
    ));

    narrator.step(
        "Backchannel authentication request (CIBA Core §7.1), authenticated by a client assertion",
    );
    let started: BackchannelAuthResponse = rp
        .initiate(&InitiateRequest {
            scope: "openid email".into(),
            binding_message: Some(BINDING_MESSAGE.into()),
            ..InitiateRequest::for_login_hint(NRIC)
        })
        .await?;

    narrator.step("The relying party polls before the user has decided (CIBA Core §11)");
    match rp.poll_once(&started.auth_req_id).await? {
        PollOutcome::Pending { .. } => narrator.note("authorization_pending: poll again later"),
        other => return Err(format!("unexpected first poll: {other:?}").into()),
    }

    narrator.step("On the device: the challenge, checked against the server's keys");
    let challenges = device.list_challenges().await?;
    let challenge = challenges
        .into_iter()
        .next()
        .ok_or("the device received no challenge")?;
    narrator.device_exchange(
        "GET",
        &format!("{issuer}/device/v1/challenges"),
        200,
        &[
            ("challenge", challenge.id.clone()),
            ("signed by", "the server (verified with its JWKS)".into()),
            ("client_name", challenge.claims.client_name.clone()),
            (
                "binding_message",
                challenge.claims.binding_message.clone().unwrap_or_default(),
            ),
            ("scope", challenge.claims.scope.clone()),
        ],
    );
    narrator.note(&format!(
        "Alice reads \"{}\" on her phone and taps Approve.",
        challenge.claims.binding_message.as_deref().unwrap_or("")
    ));
    let decided = device.decide(&challenge, Decision::Approve, true).await?;
    narrator.device_exchange(
        "POST",
        &format!("{issuer}/device/v1/challenges/{}/decision", challenge.id),
        200,
        &[
            (
                "decision",
                "a JWS signed by the device key, over what was shown".into(),
            ),
            ("state", decided.state.clone()),
        ],
    );

    narrator.step("The relying party polls again after the interval and gets the tokens");
    tokio::time::sleep(Duration::from_secs(started.interval.unwrap_or(1))).await;
    let tokens = rp.poll_until_done(&started).await?;

    narrator.step("The relying party validates the ID token (signature, iss, aud, exp, at_hash)");
    let claims = rp
        .validate_token_response(&tokens)
        .await?
        .ok_or("the token response has no ID token")?;
    narrator.note(&format!("sub: {} (the user registered above)", claims.sub));
    if let Some(email) = claims.claim("email") {
        narrator.note(&format!("email: {}", email.as_str().unwrap_or_default()));
    }
    if let Some(amr) = &claims.amr {
        narrator.note(&format!("amr: {}", amr.join(" ")));
    }
    if claims.sub != user.sub {
        return Err("the ID token names another user".into());
    }
    narrator.note("Authenticated.");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_values_are_cut_and_say_their_length() {
        assert_eq!(cut("short"), "short");
        let long = "x".repeat(300);
        let shown = cut(&long);
        assert!(shown.ends_with("… (300 chars)"), "{shown}");
        assert!(shown.chars().count() < 80);
    }

    #[test]
    fn json_answers_are_abbreviated_member_by_member() {
        let body = serde_json::json!({
            "access_token": "a".repeat(500),
            "token_type": "Bearer",
            "expires_in": 300,
            "scopes": ["a", "b", "c", "d"],
        })
        .to_string();
        let text = abbreviate(&body);
        assert!(text.contains("token_type: \"Bearer\""), "{text}");
        assert!(text.contains("expires_in: 300"), "{text}");
        assert!(text.contains("(500 chars)"), "{text}");
        assert!(text.contains("[… 4 items]"), "{text}");
        let many: serde_json::Map<String, Value> =
            (0..12).map(|i| (format!("k{i}"), Value::from(i))).collect();
        let text = abbreviate(&Value::Object(many).to_string());
        assert!(text.contains("… (4 more)"), "{text}");
        assert_eq!(abbreviate(""), "");
    }
}
