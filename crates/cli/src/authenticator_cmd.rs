//! `backchannel authenticator`: a reference authenticator device on the command line (SPEC §3.2,
//! §5): `enrol` (with its push channels), `list`, `approve`, `deny`, the interactive `watch`
//! over the live event stream, and the device's own record: `show`, `push-update`, `remove`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use backchannel_authenticator::{
    AuthenticatorError, Clock as _, Decision, Device, DeviceInfo, DeviceState, PushRegistration,
    SystemClock, VerifiedChallenge, WebPushSubscription, default_http_client, enrol_with,
};
use backchannel_protocol::jose::Algorithm;

use crate::CmdResult;

mod watch;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// How often `approve|deny --wait` looks for new challenges.
const WAIT_POLL: Duration = Duration::from_millis(250);

#[derive(clap::Args)]
pub struct AuthenticatorArgs {
    #[command(subcommand)]
    command: AuthenticatorCommand,
}

#[derive(clap::Subcommand)]
enum AuthenticatorCommand {
    /// Enrol this device with a one-time code; its key is generated here and kept in the state file.
    Enrol(EnrolArgs),
    /// List the pending challenges for this device (verified against the server's keys).
    List(ListArgs),
    /// Approve pending challenges.
    Approve(DecideArgs),
    /// Deny pending challenges.
    Deny(DecideArgs),
    /// Show each challenge as it arrives and ask whether to approve it (Ctrl-C to stop).
    Watch(WatchArgs),
    /// Show this device as the server knows it: name, push channels, status.
    Show(ShowArgs),
    /// Replace this device's push channels with exactly the ones given.
    PushUpdate(PushUpdateArgs),
    /// Remove this device: the server disables it and refuses its key from then on.
    Remove(ShowArgs),
}

/// The push channels the server may wake the device through (SPEC §5).
#[derive(clap::Args)]
struct PushArgs {
    /// APNs device token, in hex.
    #[arg(long, value_name = "HEX")]
    apns_token: Option<String>,
    /// Firebase Cloud Messaging registration token.
    #[arg(long, value_name = "TOKEN")]
    fcm_token: Option<String>,
    /// The browser's PushSubscription as JSON (`endpoint`, `keys.p256dh`, `keys.auth`), as
    /// `JSON.stringify(subscription)` gives it.
    #[arg(long, value_name = "FILE")]
    webpush_subscription: Option<PathBuf>,
}

impl PushArgs {
    /// The registration the flags describe; `None` when they name no channel.
    fn registration(&self) -> Result<Option<PushRegistration>, BoxError> {
        let webpush = self
            .webpush_subscription
            .as_deref()
            .map(read_subscription)
            .transpose()?;
        if self.apns_token.is_none() && self.fcm_token.is_none() && webpush.is_none() {
            return Ok(None);
        }
        Ok(Some(PushRegistration {
            apns_token: self.apns_token.clone(),
            fcm_token: self.fcm_token.clone(),
            webpush,
            disabled: Vec::new(),
        }))
    }
}

fn read_subscription(path: &Path) -> Result<WebPushSubscription, BoxError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| {
        format!(
            "{} is not a PushSubscription (JSON with endpoint, keys.p256dh, keys.auth): {e}",
            path.display()
        )
        .into()
    })
}

#[derive(clap::Args)]
struct EnrolArgs {
    /// The server to enrol with (its issuer URL or a node's URL).
    #[arg(long, value_name = "URL")]
    server: String,
    /// The one-time enrolment code (`backchannel admin enrolment create`).
    #[arg(long, value_name = "CODE")]
    code: String,
    /// Where to keep the device's id, server and private key (written with mode 0600).
    #[arg(long, value_name = "FILE")]
    state: PathBuf,
    /// A name for the device, shown to the operator.
    #[arg(long, value_name = "N")]
    name: Option<String>,
    /// The device key's algorithm.
    #[arg(long, value_name = "ALG", default_value = "ES256", value_parser = ["ES256", "EdDSA"])]
    alg: String,
    #[command(flatten)]
    push: PushArgs,
    /// Replace an existing state file (the device it held stays enrolled at the server).
    #[arg(long)]
    force: bool,
    /// Print one JSON object on stdout and nothing else.
    #[arg(long)]
    json: bool,
}

/// Options every command on an enrolled device takes.
#[derive(clap::Args)]
struct DeviceOpts {
    /// The device's state file (from `enrol`).
    #[arg(long, value_name = "FILE")]
    state: PathBuf,
    /// Talk to this server (a particular node) instead of the one in the state file.
    #[arg(long, value_name = "URL")]
    server: Option<String>,
}

#[derive(clap::Args)]
struct ListArgs {
    #[command(flatten)]
    device: DeviceOpts,
    /// Print one JSON object on stdout and nothing else.
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
struct DecideArgs {
    #[command(flatten)]
    device: DeviceOpts,
    #[command(flatten)]
    select: Selection,
    /// Wait up to this many seconds for a matching challenge to arrive.
    #[arg(long, value_name = "SECONDS", default_value_t = 0)]
    wait: u64,
    /// Report that the user was verified on the device (PIN, biometrics).
    #[arg(long)]
    user_verified: bool,
    /// Print one JSON object on stdout and nothing else.
    #[arg(long)]
    json: bool,
}

/// Which pending challenges to decide.
#[derive(clap::Args)]
#[group(required = true, multiple = false)]
struct Selection {
    /// The challenge with this id.
    #[arg(long, value_name = "ID")]
    challenge: Option<String>,
    /// Every challenge whose binding message is exactly this.
    #[arg(long, value_name = "M")]
    binding_message: Option<String>,
    /// Every pending challenge.
    #[arg(long)]
    all: bool,
}

impl Selection {
    fn matches(&self, c: &VerifiedChallenge) -> bool {
        if let Some(id) = &self.challenge {
            return &c.id == id;
        }
        if let Some(m) = &self.binding_message {
            return c.claims.binding_message.as_deref() == Some(m.as_str());
        }
        self.all
    }
}

#[derive(clap::Args)]
struct WatchArgs {
    #[command(flatten)]
    device: DeviceOpts,
}

#[derive(clap::Args)]
struct ShowArgs {
    #[command(flatten)]
    device: DeviceOpts,
    /// Print one JSON object on stdout and nothing else.
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
#[command(group = clap::ArgGroup::new("channels").required(true).multiple(true)
    .args(["apns_token", "fcm_token", "webpush_subscription", "clear"]))]
struct PushUpdateArgs {
    #[command(flatten)]
    device: DeviceOpts,
    #[command(flatten)]
    push: PushArgs,
    /// Remove every push channel (the device is then reached only live or when it asks).
    #[arg(long, conflicts_with_all = ["apns_token", "fcm_token", "webpush_subscription"])]
    clear: bool,
    /// Print one JSON object on stdout and nothing else.
    #[arg(long)]
    json: bool,
}

pub async fn run(args: AuthenticatorArgs) -> CmdResult {
    match args.command {
        AuthenticatorCommand::Enrol(a) => enrol_cmd(a).await,
        AuthenticatorCommand::List(a) => list_cmd(a).await,
        AuthenticatorCommand::Approve(a) => decide_cmd(a, Decision::Approve).await,
        AuthenticatorCommand::Deny(a) => decide_cmd(a, Decision::Deny).await,
        AuthenticatorCommand::Watch(a) => watch::watch_cmd(a).await,
        AuthenticatorCommand::Show(a) => show_cmd(a).await,
        AuthenticatorCommand::PushUpdate(a) => push_update_cmd(a).await,
        AuthenticatorCommand::Remove(a) => remove_cmd(a).await,
    }
}

async fn enrol_cmd(a: EnrolArgs) -> CmdResult {
    if a.state.exists() && !a.force {
        return Err(format!(
            "{} already exists; pass --force to replace it (the device it holds stays enrolled)",
            a.state.display()
        )
        .into());
    }
    let alg = Algorithm::parse(&a.alg).ok_or("unsupported --alg")?;
    let push = a.push.registration()?;
    let device = enrol_with(
        &default_http_client(),
        &a.server,
        &a.code,
        a.name.as_deref(),
        alg,
        push,
    )
    .await?;
    device.state().save(&a.state).map_err(|e| {
        format!(
            "enrolled as {}, but could not save the key: {e}",
            device.device_id()
        )
    })?;
    if a.json {
        println!("{}", serde_json::json!({ "device_id": device.device_id() }));
    } else {
        println!(
            "Enrolled device {} with {} ({} key); state saved to {}",
            device.device_id(),
            device.state().issuer,
            a.alg,
            a.state.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn open_device(opts: &DeviceOpts) -> Result<Device, BoxError> {
    let state = DeviceState::load(&opts.state)?;
    let device = Device::new(state)?;
    Ok(match &opts.server {
        Some(server) => device.with_server(server),
        None => device,
    })
}

async fn list_cmd(a: ListArgs) -> CmdResult {
    let device = open_device(&a.device)?;
    let fetched = device.fetch_challenges().await?;
    let mut verified = Vec::new();
    for (envelope, result) in fetched {
        match result {
            Ok(c) => verified.push(c),
            Err(e) if !a.json => eprintln!("warning: ignoring challenge {}: {e}", envelope.id),
            Err(_) => {}
        }
    }
    if a.json {
        let list: Vec<_> = verified.iter().map(challenge_json).collect();
        println!("{}", serde_json::json!({ "challenges": list }));
    } else if verified.is_empty() {
        println!("No pending challenges.");
    } else {
        let now = SystemClock.now_secs();
        for c in &verified {
            show_challenge(c, now);
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn challenge_json(c: &VerifiedChallenge) -> serde_json::Value {
    serde_json::json!({
        "id": c.id,
        "client_name": c.claims.client_name,
        "binding_message": c.claims.binding_message,
        "scope": c.claims.scope,
        "authorization_details": c.claims.authorization_details,
        "expires_at": c.claims.exp,
    })
}

fn show_challenge(c: &VerifiedChallenge, now: i64) {
    println!("Challenge {}", c.id);
    println!(
        "  from:     {} ({})",
        c.claims.client_name, c.claims.client_id
    );
    match &c.claims.binding_message {
        Some(m) => println!("  message:  {m}"),
        None => println!("  message:  (none)"),
    }
    println!("  scope:    {}", c.claims.scope);
    if let Some(acr) = &c.claims.acr_values {
        println!("  acr:      {acr}");
    }
    if let Some(d) = &c.claims.authorization_details {
        let pretty = serde_json::to_string_pretty(d).unwrap_or_else(|_| d.to_string());
        println!("  details:");
        for line in pretty.lines() {
            println!("    {line}");
        }
    }
    println!("  expires:  in {} s", (c.claims.exp - now).max(0));
}

async fn decide_cmd(a: DecideArgs, decision: Decision) -> CmdResult {
    let device = open_device(&a.device)?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(a.wait);
    // SPEC §3.2: wait until at least one matching challenge is pending, then decide them all.
    let matching = loop {
        let found: Vec<VerifiedChallenge> = device
            .list_challenges()
            .await?
            .into_iter()
            .filter(|c| a.select.matches(c))
            .collect();
        if !found.is_empty() || tokio::time::Instant::now() >= deadline {
            break found;
        }
        tokio::time::sleep(WAIT_POLL.min(deadline - tokio::time::Instant::now())).await;
    };
    let mut decided = Vec::new();
    for c in &matching {
        match device.decide(c, decision, a.user_verified).await {
            Ok(r) => {
                if !a.json {
                    println!(
                        "{} challenge {} from {}{}",
                        r.state,
                        c.id,
                        c.claims.client_name,
                        c.claims
                            .binding_message
                            .as_deref()
                            .map(|m| format!(" ({m})"))
                            .unwrap_or_default()
                    );
                }
                decided.push(c.id.clone());
            }
            // Decided elsewhere or expired in the meantime: not ours to report.
            Err(e @ (AuthenticatorError::ChallengeClosed(_) | AuthenticatorError::NotFound(_))) => {
                eprintln!("warning: {e}");
            }
            Err(e) => return Err(e.into()),
        }
    }
    if a.json {
        println!("{}", serde_json::json!({ "decided": decided }));
    }
    if decided.is_empty() {
        eprintln!("error: no matching pending challenge");
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

async fn show_cmd(a: ShowArgs) -> CmdResult {
    let device = open_device(&a.device)?;
    let info = device.info().await?;
    if a.json {
        println!("{}", serde_json::to_string(&info)?);
    } else {
        show_info(&info, device.server());
    }
    Ok(ExitCode::SUCCESS)
}

async fn push_update_cmd(a: PushUpdateArgs) -> CmdResult {
    let device = open_device(&a.device)?;
    // `--clear` or flags naming at least one channel: clap's group makes sure of one.
    let push = a.push.registration()?.unwrap_or_default();
    let info = device.update_push(&push).await?;
    if a.json {
        println!("{}", serde_json::to_string(&info)?);
    } else {
        println!("Push channels of device {} updated.", info.device_id);
        show_info(&info, device.server());
    }
    Ok(ExitCode::SUCCESS)
}

async fn remove_cmd(a: ShowArgs) -> CmdResult {
    let device = open_device(&a.device)?;
    device.remove().await?;
    if a.json {
        println!(
            "{}",
            serde_json::json!({ "device_id": device.device_id(), "removed": true })
        );
    } else {
        println!(
            "Device {} removed: the server no longer accepts its key, and {} can be deleted.",
            device.device_id(),
            a.device.state.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn show_info(info: &DeviceInfo, server: &str) {
    println!("Device {}", info.device_id);
    println!("  name:     {}", info.name);
    println!("  server:   {server}");
    println!("  enrolled: {} (Unix seconds)", info.created_at);
    println!(
        "  status:   {}",
        if info.disabled { "disabled" } else { "active" }
    );
    let channels = push_channels(&info.push);
    if channels.is_empty() {
        println!("  push:     none (reached live or when it asks)");
    }
    for (i, line) in channels.iter().enumerate() {
        println!("  {:<9} {line}", if i == 0 { "push:" } else { "" });
    }
}

/// One line per registered channel; a dead one (the push service said it is gone) says so.
fn push_channels(push: &PushRegistration) -> Vec<String> {
    let dead = |name: &str| {
        if push.disabled.iter().any(|d| d == name) {
            "  (dead: register it again)"
        } else {
            ""
        }
    };
    let short = |t: &str| {
        if t.chars().count() > 24 {
            format!("{}…", t.chars().take(24).collect::<String>())
        } else {
            t.to_owned()
        }
    };
    let mut lines = Vec::new();
    if let Some(t) = &push.apns_token {
        lines.push(format!("APNs     {}{}", short(t), dead("apns")));
    }
    if let Some(t) = &push.fcm_token {
        lines.push(format!("FCM      {}{}", short(t), dead("fcm")));
    }
    if let Some(w) = &push.webpush {
        lines.push(format!("Web Push {}{}", w.endpoint, dead("webpush")));
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;
    use backchannel_authenticator::ChallengeClaims;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: AuthenticatorArgs,
    }

    fn parse(argv: &[&str]) -> Result<AuthenticatorCommand, clap::Error> {
        Cli::try_parse_from(std::iter::once("authenticator").chain(argv.iter().copied()))
            .map(|c| c.args.command)
    }

    pub(super) fn challenge(id: &str, message: Option<&str>) -> VerifiedChallenge {
        VerifiedChallenge {
            id: id.into(),
            raw: String::new(),
            claims: ChallengeClaims {
                iss: "i".into(),
                aud: "d".into(),
                jti: id.into(),
                iat: 0,
                exp: 100,
                client_id: "c".into(),
                client_name: "Bank".into(),
                binding_message: message.map(str::to_owned),
                scope: "openid".into(),
                acr_values: None,
                authorization_details: None,
            },
        }
    }

    #[test]
    fn approve_needs_exactly_one_selection() {
        assert!(parse(&["approve", "--state", "d.json"]).is_err());
        assert!(parse(&["approve", "--state", "d.json", "--all", "--challenge", "x"]).is_err());
        let AuthenticatorCommand::Deny(a) = parse(&[
            "deny",
            "--state",
            "d.json",
            "--binding-message",
            "W4SCT",
            "--wait",
            "30",
            "--json",
        ])
        .unwrap() else {
            panic!("not deny")
        };
        assert_eq!(a.wait, 30);
        assert!(a.json && !a.user_verified);
        assert!(a.select.matches(&challenge("a", Some("W4SCT"))));
        assert!(!a.select.matches(&challenge("b", Some("other"))));
        assert!(!a.select.matches(&challenge("c", None)));
    }

    #[test]
    fn selections_match_as_documented() {
        let AuthenticatorCommand::Approve(a) = parse(&[
            "approve",
            "--state",
            "d.json",
            "--challenge",
            "a",
            "--user-verified",
        ])
        .unwrap() else {
            panic!()
        };
        assert!(a.user_verified);
        assert!(a.select.matches(&challenge("a", None)));
        assert!(!a.select.matches(&challenge("b", None)));
        let AuthenticatorCommand::Approve(a) =
            parse(&["approve", "--state", "d.json", "--all"]).unwrap()
        else {
            panic!()
        };
        assert!(a.select.matches(&challenge("z", Some("anything"))));
    }

    #[test]
    fn every_device_command_takes_server() {
        for cmd in ["list", "watch", "approve", "show", "remove", "push-update"] {
            let mut argv = vec![cmd, "--state", "d.json", "--server", "http://node-b:8080"];
            match cmd {
                "approve" => argv.push("--all"),
                "push-update" => argv.push("--clear"),
                _ => {}
            }
            assert!(parse(&argv).is_ok(), "{cmd}");
        }
        assert!(
            parse(&[
                "enrol", "--server", "http://x", "--code", "C", "--state", "d.json", "--json"
            ])
            .is_ok()
        );
        assert!(parse(&["enrol", "--code", "C", "--state", "d.json"]).is_err());
    }

    #[test]
    fn list_json_has_the_documented_fields() {
        let v = challenge_json(&challenge("a", Some("W4SCT")));
        let mut keys: Vec<_> = v.as_object().unwrap().keys().cloned().collect();
        keys.sort();
        assert_eq!(
            keys,
            [
                "authorization_details",
                "binding_message",
                "client_name",
                "expires_at",
                "id",
                "scope"
            ]
        );
        assert_eq!(v["expires_at"], 100);
    }

    #[test]
    fn push_update_needs_channels_or_clear_but_not_both() {
        assert!(parse(&["push-update", "--state", "d.json"]).is_err());
        assert!(
            parse(&[
                "push-update",
                "--state",
                "d.json",
                "--clear",
                "--fcm-token",
                "t"
            ])
            .is_err()
        );
        let AuthenticatorCommand::PushUpdate(a) = parse(&[
            "push-update",
            "--state",
            "d.json",
            "--apns-token",
            "ab12",
            "--fcm-token",
            "f:1",
            "--json",
        ])
        .unwrap() else {
            panic!()
        };
        let push = a.push.registration().unwrap().unwrap();
        assert_eq!(push.apns_token.as_deref(), Some("ab12"));
        assert_eq!(push.fcm_token.as_deref(), Some("f:1"));
        assert!(push.webpush.is_none() && a.json && !a.clear);
        let AuthenticatorCommand::PushUpdate(a) =
            parse(&["push-update", "--state", "d.json", "--clear"]).unwrap()
        else {
            panic!()
        };
        assert_eq!(a.push.registration().unwrap(), None);
    }

    #[test]
    fn a_browser_subscription_file_is_read_and_a_bad_one_named() {
        let dir = std::env::temp_dir().join(format!("bc-sub-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let good = dir.join("sub.json");
        // As JSON.stringify(PushSubscription) gives it, expirationTime included.
        std::fs::write(
            &good,
            r#"{"endpoint":"https://push.example/s/1","expirationTime":null,"keys":{"p256dh":"BP","auth":"AU"}}"#,
        )
        .unwrap();
        let AuthenticatorCommand::Enrol(a) = parse(&[
            "enrol",
            "--server",
            "http://x",
            "--code",
            "C",
            "--state",
            "d.json",
            "--webpush-subscription",
            good.to_str().unwrap(),
        ])
        .unwrap() else {
            panic!()
        };
        let push = a.push.registration().unwrap().unwrap();
        let sub = push.webpush.unwrap();
        assert_eq!(sub.endpoint, "https://push.example/s/1");
        assert_eq!(
            (sub.keys.p256dh.as_str(), sub.keys.auth.as_str()),
            ("BP", "AU")
        );
        let bad = dir.join("bad.json");
        std::fs::write(&bad, r#"{"endpoint":"https://push.example/s/1"}"#).unwrap();
        let err = read_subscription(&bad).unwrap_err().to_string();
        assert!(err.contains("bad.json") && err.contains("keys"), "{err}");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn push_channels_are_listed_with_dead_ones_marked() {
        let push = PushRegistration {
            apns_token: Some("ab".repeat(32)),
            fcm_token: Some("short".into()),
            webpush: None,
            disabled: vec!["fcm".into()],
        };
        let lines = push_channels(&push);
        assert_eq!(lines.len(), 2);
        assert!(
            lines[0].starts_with("APNs") && lines[0].ends_with('…'),
            "{}",
            lines[0]
        );
        assert!(
            lines[1].contains("short") && lines[1].contains("dead"),
            "{}",
            lines[1]
        );
        assert!(push_channels(&PushRegistration::default()).is_empty());
    }
}
