//! The command line of `backchannel authenticator`: its subcommands and flags as clap parses
//! them, and what the flags mean once parsed (the push channels named, the challenges selected).

use std::path::{Path, PathBuf};

use backchannel_authenticator::{PushRegistration, VerifiedChallenge, WebPushSubscription};

use crate::BoxError;

#[derive(clap::Args)]
pub struct AuthenticatorArgs {
    #[command(subcommand)]
    pub(super) command: AuthenticatorCommand,
}

#[derive(clap::Subcommand)]
pub(super) enum AuthenticatorCommand {
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
pub(super) struct PushArgs {
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
    pub(super) fn registration(&self) -> Result<Option<PushRegistration>, BoxError> {
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
pub(super) struct EnrolArgs {
    /// The server to enrol with (its issuer URL or a node's URL).
    #[arg(long, value_name = "URL")]
    pub(super) server: String,
    /// The one-time enrolment code (`backchannel admin enrolment create`).
    #[arg(long, value_name = "CODE")]
    pub(super) code: String,
    /// Where to keep the device's id, server and private key (written with mode 0600).
    #[arg(long, value_name = "FILE")]
    pub(super) state: PathBuf,
    /// A name for the device, shown to the operator.
    #[arg(long, value_name = "N")]
    pub(super) name: Option<String>,
    /// The device key's algorithm.
    #[arg(long, value_name = "ALG", default_value = "ES256", value_parser = ["ES256", "EdDSA"])]
    pub(super) alg: String,
    #[command(flatten)]
    pub(super) push: PushArgs,
    /// Replace an existing state file (the device it held stays enrolled at the server).
    #[arg(long)]
    pub(super) force: bool,
    /// Print one JSON object on stdout and nothing else.
    #[arg(long)]
    pub(super) json: bool,
}

/// Options every command on an enrolled device takes.
#[derive(clap::Args)]
pub(super) struct DeviceOpts {
    /// The device's state file (from `enrol`).
    #[arg(long, value_name = "FILE")]
    pub(super) state: PathBuf,
    /// Talk to this server (a particular node) instead of the one in the state file.
    #[arg(long, value_name = "URL")]
    pub(super) server: Option<String>,
}

#[derive(clap::Args)]
pub(super) struct ListArgs {
    #[command(flatten)]
    pub(super) device: DeviceOpts,
    /// Print one JSON object on stdout and nothing else.
    #[arg(long)]
    pub(super) json: bool,
}

#[derive(clap::Args)]
pub(super) struct DecideArgs {
    #[command(flatten)]
    pub(super) device: DeviceOpts,
    #[command(flatten)]
    pub(super) select: Selection,
    /// Wait up to this many seconds for a matching challenge to arrive.
    #[arg(long, value_name = "SECONDS", default_value_t = 0)]
    pub(super) wait: u64,
    /// Report that the user was verified on the device (PIN, biometrics).
    #[arg(long)]
    pub(super) user_verified: bool,
    /// With deny: the user did not ask for this ("not me"); the server blocks the client from
    /// asking this user again for a while.
    #[arg(long)]
    pub(super) not_me: bool,
    /// Print one JSON object on stdout and nothing else.
    #[arg(long)]
    pub(super) json: bool,
}

/// Which pending challenges to decide.
#[derive(clap::Args)]
#[group(required = true, multiple = false)]
pub(super) struct Selection {
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
    pub(super) fn matches(&self, c: &VerifiedChallenge) -> bool {
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
pub(super) struct WatchArgs {
    #[command(flatten)]
    pub(super) device: DeviceOpts,
}

#[derive(clap::Args)]
pub(super) struct ShowArgs {
    #[command(flatten)]
    pub(super) device: DeviceOpts,
    /// Print one JSON object on stdout and nothing else.
    #[arg(long)]
    pub(super) json: bool,
}

#[derive(clap::Args)]
#[command(group = clap::ArgGroup::new("channels").required(true).multiple(true)
    .args(["apns_token", "fcm_token", "webpush_subscription", "clear"]))]
pub(super) struct PushUpdateArgs {
    #[command(flatten)]
    pub(super) device: DeviceOpts,
    #[command(flatten)]
    pub(super) push: PushArgs,
    /// Remove every push channel (the device is then reached only live or when it asks).
    #[arg(long, conflicts_with_all = ["apns_token", "fcm_token", "webpush_subscription"])]
    clear: bool,
    /// Print one JSON object on stdout and nothing else.
    #[arg(long)]
    pub(super) json: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::authenticator_cmd::tests::challenge;
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
}
