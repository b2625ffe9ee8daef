//! `backchannel admin`: registers clients, users and enrolment codes, and lists and disables
//! users' devices, lists and rotates the signing keys, directly in the configured store, with
//! or without a server running.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use backchannel_protocol::jose::Jwks;
use backchannel_protocol::oauth::{
    ClientAuthMethod, DeliveryMode, GRANT_TYPE_CIBA, GRANT_TYPE_REFRESH_TOKEN,
};
use backchannel_server::config::Config;
use backchannel_server::domain::Domain;
use backchannel_server::domain::admin::{NewClient, NewUser};
use backchannel_server::domain::clock::SystemClock;
use backchannel_server::domain::directory::UserCreated;
use clap::{Args, Subcommand};
use serde::Serialize;
use serde_json::json;

use crate::output::{Output, print_json, utc};
use crate::{BoxError, CmdResult};

#[derive(Args)]
pub struct AdminArgs {
    /// TOML configuration file naming the store (or BACKCHANNEL_* variables alone).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: AdminCommand,
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Relying parties.
    #[command(subcommand)]
    Client(ClientCommand),
    /// End users.
    #[command(subcommand)]
    User(UserCommand),
    /// One-time codes that enrol an authenticator for a user.
    #[command(subcommand)]
    Enrolment(EnrolmentCommand),
    /// Users' authenticator devices.
    #[command(subcommand)]
    Device(DeviceCommand),
    /// The server's signing keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Clients' access policies: which users, scopes and details they may ask for.
    #[command(subcommand)]
    Policy(crate::admin_policy::PolicyCommand),
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Every stored key: active (signs), retiring (still in the JWKS while tokens it signed
    /// may be valid) or retired.
    List(JsonFlag),
    /// Add a new signing key for an algorithm; it signs from now on, running servers pick it
    /// up within seconds, and the key it replaces stays in the JWKS until its tokens expired.
    Rotate(KeysRotate),
}

#[derive(Args)]
struct KeysRotate {
    #[arg(long, default_value = "ES256", value_parser = ["ES256", "ES384", "ES512", "PS256", "RS256", "EdDSA"])]
    alg: String,
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand)]
enum DeviceCommand {
    /// A user's devices, disabled ones included, with their push channels.
    List(DeviceList),
    /// Disable a device: its pending challenges close and its key is refused from then on.
    Disable(DeviceDisable),
}

#[derive(Args)]
struct DeviceList {
    /// The user's sub.
    #[arg(long, value_name = "SUB")]
    user: String,
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct DeviceDisable {
    /// The device id.
    #[arg(long, value_name = "ID")]
    device: String,
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand)]
enum ClientCommand {
    /// Register a client; its secret (if any) is shown once.
    Create(Box<ClientCreate>),
    List(JsonFlag),
    Get(IdArg),
    Disable(IdArg),
}

#[derive(Args)]
struct JsonFlag {
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct IdArg {
    id: String,
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct ClientCreate {
    #[arg(long)]
    name: String,
    #[arg(long, value_parser = ["client_secret_basic", "client_secret_post", "private_key_jwt"], default_value = "client_secret_basic")]
    auth_method: String,
    /// The client's public keys (a JWKS or a single JWK, JSON).
    #[arg(long, conflicts_with = "jwks_uri")]
    jwks_file: Option<PathBuf>,
    #[arg(long)]
    jwks_uri: Option<String>,
    #[arg(long, value_parser = ["poll", "ping", "push"], default_value = "poll")]
    delivery_mode: String,
    #[arg(long)]
    notification_endpoint: Option<String>,
    /// Scopes the client may request (space-separated); openid is always included.
    #[arg(long, default_value = "openid")]
    scope: String,
    /// Require signed request objects with this algorithm.
    #[arg(long)]
    request_signing_alg: Option<String>,
    /// Require a user_code in every backchannel request.
    #[arg(long)]
    user_code_required: bool,
    /// ID token signing algorithm (default ES256).
    #[arg(long)]
    id_token_signing_alg: Option<String>,
    /// Encrypt ID tokens to the client's `enc` key with this algorithm (OIDC Core §10.2).
    #[arg(long, value_parser = ["ECDH-ES+A256KW", "ECDH-ES+A128KW", "RSA-OAEP-256"])]
    id_token_encryption_alg: Option<String>,
    /// Content encryption of encrypted ID tokens (default A128CBC-HS256).
    #[arg(long, requires = "id_token_encryption_alg", value_parser = ["A128CBC-HS256", "A256CBC-HS512", "A128GCM", "A256GCM"])]
    id_token_encryption_enc: Option<String>,
    /// Register the refresh_token grant: approvals also yield rotating refresh tokens.
    #[arg(long)]
    refresh_tokens: bool,
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand)]
enum UserCommand {
    Create(UserCreate),
    List(JsonFlag),
    Get(IdArg),
    Disable(IdArg),
    /// The user's recent requests with their outcome, newest first.
    Requests(UserRequestsArgs),
}

#[derive(Args)]
struct UserRequestsArgs {
    /// The user's sub.
    sub: String,
    /// How many to list (default 20, at most 500).
    #[arg(long)]
    limit: Option<i64>,
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct UserCreate {
    #[arg(long)]
    email: Option<String>,
    #[arg(long)]
    nric: Option<String>,
    #[arg(long)]
    username: Option<String>,
    #[arg(long)]
    phone: Option<String>,
    /// A further claim, `name=value` (repeatable); released by the profile scope.
    #[arg(long = "claim", value_name = "K=V")]
    claims: Vec<String>,
    /// The user's CIBA user_code, for clients that require one.
    #[arg(long)]
    user_code: Option<String>,
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand)]
enum EnrolmentCommand {
    Create(EnrolmentCreate),
}

#[derive(Args)]
struct EnrolmentCreate {
    /// The user's sub.
    #[arg(long)]
    user: String,
    #[arg(long)]
    json: bool,
}

/// `value` as a JSON value, whose keys print sorted: every object `admin` prints has its keys
/// in that order, the `json!` ones as much as the records.
fn sorted<T: Serialize>(value: &T) -> Result<serde_json::Value, BoxError> {
    Ok(serde_json::to_value(value)?)
}

fn read_jwks(path: &PathBuf) -> Result<Jwks, BoxError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let value: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| format!("{} is not JSON: {e}", path.display()))?;
    let jwks: Jwks = if value.get("keys").is_some() {
        serde_json::from_value(value)?
    } else {
        Jwks {
            keys: vec![serde_json::from_value(value)?],
        }
    };
    if jwks.keys.iter().any(|k| k.d.is_some()) {
        return Err(format!(
            "{} contains a private key; register the public key only",
            path.display()
        )
        .into());
    }
    Ok(jwks)
}

pub async fn run(args: AdminArgs) -> CmdResult {
    let config = Config::from_env(args.config.as_deref())?;
    let domain =
        backchannel_server::app::open_domain(&config, Arc::new(SystemClock), config.issuer())
            .await?;
    match args.command {
        AdminCommand::Client(cmd) => client(&domain, cmd).await,
        AdminCommand::User(cmd) => user(&domain, cmd).await,
        AdminCommand::Device(cmd) => device(&domain, cmd).await,
        AdminCommand::Keys(cmd) => keys(&domain, cmd).await,
        AdminCommand::Policy(cmd) => crate::admin_policy::run(&domain, cmd).await,
        AdminCommand::Enrolment(EnrolmentCommand::Create(e)) => {
            let created = domain.create_enrolment(&e.user).await?;
            Output::from_flag(e.json).print(&sorted(&created)?, |w, _| {
                writeln!(w, "enrolment code: {}", created.code)?;
                writeln!(w, "expires at:     {} (Unix seconds)", created.expires_at_secs)?;
                writeln!(
                    w,
                    "enrol with:     backchannel authenticator enrol --server {} --code {} --state device.json",
                    domain.issuer, created.code
                )
            })?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn client(domain: &Domain, cmd: ClientCommand) -> CmdResult {
    match cmd {
        ClientCommand::Create(c) => {
            let new = NewClient {
                name: c.name,
                auth_method: ClientAuthMethod::parse(&c.auth_method),
                jwks: c.jwks_file.as_ref().map(read_jwks).transpose()?,
                jwks_uri: c.jwks_uri,
                delivery_mode: DeliveryMode::parse(&c.delivery_mode),
                notification_endpoint: c.notification_endpoint,
                scope: Some(c.scope),
                request_signing_alg: c.request_signing_alg,
                user_code_required: c.user_code_required,
                id_token_signing_alg: c.id_token_signing_alg,
                id_token_encrypted_response_alg: c.id_token_encryption_alg,
                id_token_encrypted_response_enc: c.id_token_encryption_enc,
                grant_types: c.refresh_tokens.then(|| {
                    vec![
                        GRANT_TYPE_CIBA.to_owned(),
                        GRANT_TYPE_REFRESH_TOKEN.to_owned(),
                    ]
                }),
            };
            let created = domain.create_client(new).await?;
            Output::from_flag(c.json).print(&sorted(&created)?, |w, _| {
                writeln!(w, "client_id:     {}", created.client_id)?;
                if let Some(secret) = &created.client_secret {
                    writeln!(w, "client_secret: {secret}")?;
                    writeln!(w, "(the secret is shown only now; it is stored hashed)")?;
                }
                Ok(())
            })?;
        }
        ClientCommand::List(f) => {
            let list = domain.list_clients().await?;
            Output::from_flag(f.json).print(&sorted(&list)?, |w, _| {
                for v in &list.clients {
                    writeln!(
                        w,
                        "{}  {}  {}  {}{}",
                        v.client_id,
                        v.token_endpoint_auth_method.as_str(),
                        v.backchannel_token_delivery_mode.as_str(),
                        v.client_name,
                        if v.disabled { "  (disabled)" } else { "" }
                    )?;
                }
                Ok(())
            })?;
        }
        ClientCommand::Get(a) => {
            print_json(&sorted(&domain.client_view(&a.id).await?)?)?;
        }
        ClientCommand::Disable(a) => {
            let disabled = domain.disable_client(&a.id).await?;
            Output::from_flag(a.json).print(&sorted(&disabled)?, |w, _| {
                writeln!(w, "client {} disabled", a.id)
            })?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn user(domain: &Domain, cmd: UserCommand) -> CmdResult {
    match cmd {
        UserCommand::Create(u) => {
            let mut claims = serde_json::Map::new();
            for kv in &u.claims {
                let (k, v) = kv
                    .split_once('=')
                    .ok_or_else(|| format!("--claim {kv}: expected name=value"))?;
                claims.insert(k.to_owned(), json!(v));
            }
            let new = NewUser {
                email: u.email,
                nric: u.nric,
                username: u.username,
                phone: u.phone,
                claims,
                user_code: u.user_code,
            };
            let user = domain.create_user(new).await?;
            let created = UserCreated { sub: user.sub };
            Output::from_flag(u.json).print(&created, |w, c| writeln!(w, "sub: {}", c.sub))?;
        }
        UserCommand::List(f) => {
            let list = domain.list_users().await?;
            Output::from_flag(f.json).print(&sorted(&list)?, |w, _| {
                for v in &list.users {
                    let hint = [&v.email, &v.nric, &v.username, &v.phone]
                        .into_iter()
                        .find_map(Option::as_deref)
                        .unwrap_or_default();
                    writeln!(
                        w,
                        "{}  {}{}",
                        v.sub,
                        hint,
                        if v.disabled { "  (disabled)" } else { "" }
                    )?;
                }
                Ok(())
            })?;
        }
        UserCommand::Get(a) => {
            print_json(&sorted(&domain.user_view(&a.id).await?)?)?;
        }
        UserCommand::Requests(a) => {
            let list = domain.user_requests(&a.sub, a.limit).await?;
            Output::from_flag(a.json).print(&sorted(&list)?, |w, _| {
                if list.requests.is_empty() {
                    return writeln!(w, "user {} has no requests", a.sub);
                }
                for r in &list.requests {
                    writeln!(
                        w,
                        "{}  {:<13}  client {}  {}{}",
                        utc(r.created_at),
                        r.outcome,
                        r.client_id,
                        r.scope,
                        r.binding_message
                            .as_deref()
                            .map(|m| format!("  \"{m}\""))
                            .unwrap_or_default()
                    )?;
                }
                Ok(())
            })?;
        }
        UserCommand::Disable(a) => {
            let disabled = domain.disable_user(&a.id).await?;
            Output::from_flag(a.json).print(&sorted(&disabled)?, |w, _| {
                writeln!(w, "user {} disabled", a.id)
            })?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The same answers as `GET /admin/v1/users/{sub}/devices` and
/// `POST /admin/v1/devices/{id}/disable`.
async fn device(domain: &Domain, cmd: DeviceCommand) -> CmdResult {
    match cmd {
        DeviceCommand::List(a) => {
            let list = domain.user_devices(&a.user).await?;
            Output::from_flag(a.json).print(&sorted(&list)?, |w, _| {
                if list.devices.is_empty() {
                    return writeln!(w, "user {} has no devices", a.user);
                }
                for d in &list.devices {
                    let mut channels = Vec::new();
                    for (name, set) in [
                        ("apns", d.push.apns_token.is_some()),
                        ("fcm", d.push.fcm_token.is_some()),
                        ("webpush", d.push.webpush.is_some()),
                    ] {
                        if set {
                            let dead = d.push.disabled.iter().any(|c| c == name);
                            channels.push(format!("{name}{}", if dead { "(dead)" } else { "" }));
                        }
                    }
                    writeln!(
                        w,
                        "{}  {}  push: {}{}",
                        d.device_id,
                        d.name,
                        if channels.is_empty() {
                            "none".to_owned()
                        } else {
                            channels.join(",")
                        },
                        if d.disabled { "  (disabled)" } else { "" }
                    )?;
                }
                Ok(())
            })?;
        }
        DeviceCommand::Disable(a) => {
            let disabled = domain.disable_device_by_operator(&a.device).await?;
            Output::from_flag(a.json).print(&sorted(&disabled)?, |w, _| {
                writeln!(w, "device {} disabled", a.device)
            })?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The same answers as `GET /admin/v1/keys` and `POST /admin/v1/keys/rotate`.
async fn keys(domain: &Domain, cmd: KeysCommand) -> CmdResult {
    match cmd {
        KeysCommand::List(f) => {
            let list = domain.list_signing_keys().await?;
            Output::from_flag(f.json).print(&sorted(&list)?, |w, _| {
                for k in &list.keys {
                    let state = serde_json::to_value(k.state)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_owned))
                        .unwrap_or_default();
                    writeln!(
                        w,
                        "{}  {:<6}  {:<8}  created {} (Unix seconds)",
                        k.kid, k.alg, state, k.created_at_secs
                    )?;
                }
                Ok(())
            })?;
        }
        KeysCommand::Rotate(r) => {
            let rotated = domain.rotate_signing_key(Some(&r.alg)).await?;
            Output::from_flag(r.json).print(&sorted(&rotated)?, |w, _| {
                writeln!(w, "new {} signing key: {}", r.alg, rotated.kid)?;
                writeln!(w, "(running servers sign with it within a few seconds)")
            })?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
