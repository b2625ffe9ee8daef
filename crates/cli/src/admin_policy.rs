//! `backchannel admin policy`: a client's access policy (`domain::policy`), set, shown,
//! listed and deleted through the same domain functions and answers as `/admin/v1/policies`.

use std::fmt::Write as _;
use std::process::ExitCode;

use backchannel_server::domain::Domain;
use backchannel_server::domain::policy::{AccessPolicy, PolicyRules, UserRule};
use clap::{Args, Subcommand};

use crate::output::Output;
use crate::{BoxError, CmdResult};

#[derive(Subcommand)]
pub(crate) enum PolicyCommand {
    /// Create or replace a client's policy (options left out take their most permissive
    /// value).
    Set(PolicySet),
    Show(PolicyId),
    List(PolicyListArgs),
    /// Remove a client's policy: it is back to `[policies] clients_without_policy`.
    Delete(PolicyId),
}

#[derive(Args)]
pub(crate) struct PolicySet {
    client_id: String,
    /// Which users the client may ask for: all, claim:NAME=VALUE, group:G or
    /// subjects:SUB,SUB.
    #[arg(long, default_value = "all", value_name = "RULE")]
    users: String,
    /// Scopes it may ask for (space-separated; openid always). Default: every registered one.
    #[arg(long)]
    scopes: Option<String>,
    /// authorization_details types it may send (comma-separated). Default: every configured
    /// one.
    #[arg(long, value_name = "T1,T2")]
    authorization_details_types: Option<String>,
    /// Approvals need a verified user (acr urn:backchannel:acr:device:uv).
    #[arg(long)]
    require_user_verification: bool,
    /// Longest requested_expiry, seconds.
    #[arg(long, value_name = "SECS")]
    max_requested_expiry: Option<i64>,
    /// Several undecided requests for one user may live side by side.
    #[arg(long)]
    allow_parallel: bool,
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub(crate) struct PolicyId {
    client_id: String,
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub(crate) struct PolicyListArgs {
    #[arg(long)]
    json: bool,
}

/// `--users` as a rule.
fn parse_users(text: &str) -> Result<UserRule, BoxError> {
    if text == "all" {
        return Ok(UserRule::All);
    }
    let bad = || -> BoxError {
        format!("--users {text}: expected all, claim:NAME=VALUE, group:G or subjects:SUB,SUB")
            .into()
    };
    let (kind, rest) = text.split_once(':').ok_or_else(bad)?;
    match kind {
        "claim" => {
            let (name, value) = rest.split_once('=').ok_or_else(bad)?;
            Ok(UserRule::Claim {
                name: name.to_owned(),
                value: value.to_owned(),
            })
        }
        "group" => Ok(UserRule::Group(rest.to_owned())),
        "subjects" => Ok(UserRule::Subjects(
            rest.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
        )),
        _ => Err(bad()),
    }
}

fn users_text(rule: &UserRule) -> String {
    match rule {
        UserRule::All => "all".to_owned(),
        UserRule::Claim { name, value } => format!("claim {name} = {value}"),
        UserRule::Group(g) => format!("group {g}"),
        UserRule::Subjects(subs) => format!("subjects {}", subs.join(", ")),
    }
}

fn describe(w: &mut String, p: &AccessPolicy) -> std::fmt::Result {
    let r = &p.rules;
    writeln!(w, "policy of client {}", p.client_id)?;
    writeln!(w, "  users:                     {}", users_text(&r.users))?;
    let scopes = r.scopes.as_ref().map(|s| s.join(" "));
    writeln!(
        w,
        "  scopes:                    {}",
        scopes.as_deref().unwrap_or("every registered scope")
    )?;
    let types = r.authorization_details_types.as_ref().map(|t| t.join(", "));
    writeln!(
        w,
        "  authorization_details:     {}",
        types.as_deref().unwrap_or("every configured type")
    )?;
    writeln!(
        w,
        "  require user verification: {}",
        if r.require_user_verification {
            "yes"
        } else {
            "no"
        }
    )?;
    match r.max_requested_expiry {
        Some(max) => writeln!(w, "  max requested_expiry:      {max} s")?,
        None => writeln!(w, "  max requested_expiry:      [ciba] max_expires_in")?,
    }
    writeln!(
        w,
        "  parallel requests:         {}",
        if r.allow_parallel {
            "allowed"
        } else {
            "no (a new one replaces the undecided one)"
        }
    )
}

pub(crate) async fn run(domain: &Domain, cmd: PolicyCommand) -> CmdResult {
    match cmd {
        PolicyCommand::Set(a) => {
            let rules = PolicyRules {
                users: parse_users(&a.users)?,
                scopes: a.scopes.map(|s| {
                    s.split(' ')
                        .filter(|t| !t.is_empty())
                        .map(str::to_owned)
                        .collect()
                }),
                authorization_details_types: a.authorization_details_types.map(|t| {
                    t.split(',')
                        .map(str::trim)
                        .filter(|t| !t.is_empty())
                        .map(str::to_owned)
                        .collect()
                }),
                require_user_verification: a.require_user_verification,
                max_requested_expiry: a.max_requested_expiry,
                allow_parallel: a.allow_parallel,
            };
            let policy = domain.set_policy(&a.client_id, rules).await?;
            Output::from_flag(a.json).print(&policy, describe)?;
        }
        PolicyCommand::Show(a) => {
            let policy = domain.policy_view(&a.client_id).await?;
            Output::from_flag(a.json).print(&policy, describe)?;
        }
        PolicyCommand::List(a) => {
            let list = domain.list_policies().await?;
            Output::from_flag(a.json).print(&list, |w, list| {
                if list.policies.is_empty() {
                    return writeln!(w, "no access policies");
                }
                for p in &list.policies {
                    writeln!(w, "{}  users: {}", p.client_id, users_text(&p.rules.users))?;
                }
                Ok(())
            })?;
        }
        PolicyCommand::Delete(a) => {
            let deleted = domain.delete_policy(&a.client_id).await?;
            Output::from_flag(a.json).print(&deleted, |w, _| {
                writeln!(w, "access policy of client {} deleted", a.client_id)
            })?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_options_parse_to_rules() {
        assert_eq!(parse_users("all").unwrap(), UserRule::All);
        assert_eq!(
            parse_users("claim:tier=gold=x").unwrap(),
            UserRule::Claim {
                name: "tier".into(),
                value: "gold=x".into()
            }
        );
        assert_eq!(
            parse_users("group:staff").unwrap(),
            UserRule::Group("staff".into())
        );
        assert_eq!(
            parse_users("subjects:a, b,").unwrap(),
            UserRule::Subjects(vec!["a".into(), "b".into()])
        );
        for bad in ["some", "claim:tier", "role:x", ""] {
            assert!(parse_users(bad).is_err(), "{bad}");
        }
    }
}
