//! `backchannel authenticator`: a reference authenticator device on the command line (SPEC §3.2,
//! §5): `enrol` (with its push channels), `list`, `approve`, `deny`, the interactive `watch`
//! over the live event stream, and the device's own record: `show`, `push-update`, `remove`.
//! This file runs each command; its flags are in `args`, its text in `render`.

use std::process::ExitCode;
use std::time::Duration;

use backchannel_authenticator::{
    AuthenticatorError, Clock as _, Decision, Device, DeviceState, SystemClock, VerifiedChallenge,
    default_http_client, enrol_with,
};
use backchannel_protocol::jose::Algorithm;
use serde_json::json;

use crate::output::Output;
use crate::{BoxError, CmdResult};

mod args;
mod render;
mod watch;

pub use args::AuthenticatorArgs;
use args::{
    AuthenticatorCommand, DecideArgs, DeviceOpts, EnrolArgs, ListArgs, PushUpdateArgs, ShowArgs,
};

/// How often `approve|deny --wait` looks for new challenges.
const WAIT_POLL: Duration = Duration::from_millis(250);

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
    Output::from_flag(a.json).print(&json!({ "device_id": device.device_id() }), |w, _| {
        render::enrolled(w, &device, &a.alg, &a.state)
    })?;
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
    let out = Output::from_flag(a.json);
    let device = open_device(&a.device)?;
    let fetched = device.fetch_challenges().await?;
    let mut verified = Vec::new();
    for (envelope, result) in fetched {
        match result {
            Ok(c) => verified.push(c),
            Err(e) => out.if_human(|| {
                eprintln!("warning: ignoring challenge {}: {e}", envelope.id);
            }),
        }
    }
    let list: Vec<_> = verified.iter().map(render::challenge_json).collect();
    out.print(&json!({ "challenges": list }), |w, _| {
        render::challenges(w, &verified, SystemClock.now_secs())
    })?;
    Ok(ExitCode::SUCCESS)
}

async fn decide_cmd(a: DecideArgs, decision: Decision) -> CmdResult {
    if a.not_me && decision == Decision::Approve {
        return Err("--not-me goes with deny only".into());
    }
    let out = Output::from_flag(a.json);
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
        // The server would refuse it (invalid_decision): say what to do instead.
        if decision == Decision::Approve && c.claims.uv_required && !a.user_verified {
            eprintln!(
                "error: challenge {} requires user verification; verify the user, then approve \
                 with --user-verified",
                c.id
            );
            continue;
        }
        let sent = match a.not_me {
            true => device.deny_not_me(c, a.user_verified).await,
            false => device.decide(c, decision, a.user_verified).await,
        };
        match sent {
            Ok(r) => {
                out.if_human(|| println!("{}", render::decided(&r.state, c)));
                decided.push(c.id.clone());
            }
            // Decided elsewhere or expired in the meantime: not ours to report.
            Err(e @ (AuthenticatorError::ChallengeClosed(_) | AuthenticatorError::NotFound(_))) => {
                eprintln!("warning: {e}");
            }
            Err(e) => return Err(e.into()),
        }
    }
    // A person has read a line per decision already.
    out.print(&json!({ "decided": decided }), |_, _| Ok(()))?;
    if decided.is_empty() {
        eprintln!("error: no matching pending challenge");
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

async fn show_cmd(a: ShowArgs) -> CmdResult {
    let device = open_device(&a.device)?;
    let info = device.info().await?;
    Output::from_flag(a.json).print(&info, |w, info| render::device(w, info, device.server()))?;
    Ok(ExitCode::SUCCESS)
}

async fn push_update_cmd(a: PushUpdateArgs) -> CmdResult {
    let device = open_device(&a.device)?;
    // `--clear` or flags naming at least one channel: clap's group makes sure of one.
    let push = a.push.registration()?.unwrap_or_default();
    let info = device.update_push(&push).await?;
    Output::from_flag(a.json).print(&info, |w, info| {
        render::push_updated(w, info, device.server())
    })?;
    Ok(ExitCode::SUCCESS)
}

async fn remove_cmd(a: ShowArgs) -> CmdResult {
    let device = open_device(&a.device)?;
    device.remove().await?;
    let removed = json!({ "device_id": device.device_id(), "removed": true });
    Output::from_flag(a.json).print(&removed, |w, _| {
        render::removed(w, device.device_id(), &a.device.state)
    })?;
    Ok(ExitCode::SUCCESS)
}

/// What the tests of `args`, `render` and `watch` share.
#[cfg(test)]
mod tests {
    use backchannel_authenticator::{ChallengeClaims, VerifiedChallenge};

    /// A verified challenge from client "Bank", expiring at 100.
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
                uv_required: false,
            },
        }
    }
}
