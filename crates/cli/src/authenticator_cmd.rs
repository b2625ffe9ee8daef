//! `backchannel authenticator`: a reference authenticator device on the command line (SPEC §3.2,
//! §5): `enrol`, `list`, `approve`, `deny` and the interactive `watch`.

use std::collections::HashSet;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use backchannel_authenticator::{
    AuthenticatorError, Clock as _, Decision, Device, DeviceState, SystemClock, VerifiedChallenge,
    enrol,
};
use backchannel_protocol::jose::Algorithm;

use crate::CmdResult;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// How often `approve|deny --wait` and `watch` look for new challenges.
const WAIT_POLL: Duration = Duration::from_millis(250);
const WATCH_POLL: Duration = Duration::from_secs(1);

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

pub async fn run(args: AuthenticatorArgs) -> CmdResult {
    match args.command {
        AuthenticatorCommand::Enrol(a) => enrol_cmd(a).await,
        AuthenticatorCommand::List(a) => list_cmd(a).await,
        AuthenticatorCommand::Approve(a) => decide_cmd(a, Decision::Approve).await,
        AuthenticatorCommand::Deny(a) => decide_cmd(a, Decision::Deny).await,
        AuthenticatorCommand::Watch(a) => watch_cmd(a).await,
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
    let device = enrol(&a.server, &a.code, a.name.as_deref(), alg).await?;
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

async fn watch_cmd(a: WatchArgs) -> CmdResult {
    let device = open_device(&a.device)?;
    println!(
        "Watching for challenges for device {} at {} (Ctrl-C to stop).",
        device.device_id(),
        device.server()
    );
    let mut stdin = stdin_lines();
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    // Challenges already shown (answered, or rejected as invalid): never asked twice.
    let mut seen: HashSet<String> = HashSet::new();
    loop {
        let listing = tokio::select! {
            _ = &mut ctrl_c => return Ok(ExitCode::SUCCESS),
            r = device.fetch_challenges() => r,
        };
        match listing {
            // The device was removed or its key refused: watching further is pointless.
            Err(e @ AuthenticatorError::Unauthorized(_)) => return Err(e.into()),
            Err(e) => eprintln!("warning: {e}"),
            Ok(list) => {
                let current: HashSet<String> = list.iter().map(|(e, _)| e.id.clone()).collect();
                seen.retain(|id| current.contains(id));
                for (envelope, verified) in list {
                    if !seen.insert(envelope.id.clone()) {
                        continue;
                    }
                    let challenge = match verified {
                        Ok(c) => c,
                        Err(e) => {
                            eprintln!("warning: ignoring challenge {}: {e}", envelope.id);
                            continue;
                        }
                    };
                    println!();
                    show_challenge(&challenge, SystemClock.now_secs());
                    let decision = loop {
                        print!("Approve? [y/n] ");
                        std::io::stdout().flush()?;
                        let line = tokio::select! {
                            _ = &mut ctrl_c => return Ok(ExitCode::SUCCESS),
                            l = stdin.recv() => l.transpose()?,
                        };
                        let Some(line) = line else {
                            println!();
                            return Ok(ExitCode::SUCCESS);
                        };
                        match parse_answer(&line) {
                            Some(d) => break d,
                            None => println!("Please answer y or n."),
                        }
                    };
                    // The user answered here, at the device: that is the verification this
                    // reference authenticator has.
                    match device.decide(&challenge, decision, true).await {
                        Ok(r) => println!("-> {}", r.state),
                        Err(AuthenticatorError::ChallengeClosed(_)) => {
                            println!("-> too late: the challenge was decided elsewhere or expired")
                        }
                        Err(e) => eprintln!("error: {e}"),
                    }
                }
            }
        }
        tokio::select! {
            _ = &mut ctrl_c => return Ok(ExitCode::SUCCESS),
            _ = tokio::time::sleep(WATCH_POLL) => {}
        }
    }
}

/// Lines of standard input, read on a thread of their own: a read blocked in tokio's blocking
/// pool would keep the runtime, and so the process, from ending on Ctrl-C.
fn stdin_lines() -> tokio::sync::mpsc::Receiver<std::io::Result<String>> {
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    std::thread::spawn(move || {
        for line in std::io::stdin().lines() {
            if tx.blocking_send(line).is_err() {
                break;
            }
        }
    });
    rx
}

fn parse_answer(line: &str) -> Option<Decision> {
    match line.trim().to_ascii_lowercase().as_str() {
        "y" | "yes" => Some(Decision::Approve),
        "n" | "no" => Some(Decision::Deny),
        _ => None,
    }
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

    fn challenge(id: &str, message: Option<&str>) -> VerifiedChallenge {
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
        for cmd in ["list", "watch", "approve"] {
            let mut argv = vec![cmd, "--state", "d.json", "--server", "http://node-b:8080"];
            if cmd == "approve" {
                argv.push("--all");
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
    fn answers() {
        assert_eq!(parse_answer(" Y\n"), Some(Decision::Approve));
        assert_eq!(parse_answer("yes"), Some(Decision::Approve));
        assert_eq!(parse_answer("n"), Some(Decision::Deny));
        assert_eq!(parse_answer("NO"), Some(Decision::Deny));
        assert_eq!(parse_answer("maybe"), None);
        assert_eq!(parse_answer(""), None);
    }
}
