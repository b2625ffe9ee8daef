//! `backchannel client`: a relying party on the command line (SPEC §3.2): `login` (initiate,
//! then poll until the user decides), `initiate` and `poll`.

use std::fmt::{self, Write as _};
use std::path::PathBuf;
use std::process::ExitCode;

use backchannel_client::{
    CibaClient, ClientAuth, ClientError, InitiateRequest, TokenResponse, discover,
};
use backchannel_protocol::jose::{Jwk, SigningKey};
use serde_json::json;

use crate::output::{Output, pretty_json};
use crate::{BoxError, CmdResult};

#[derive(clap::Args)]
pub struct ClientArgs {
    #[command(subcommand)]
    command: ClientCommand,
}

#[derive(clap::Subcommand)]
enum ClientCommand {
    /// Initiate a backchannel request and poll until the user decides; prints the token response.
    Login(InitiateArgs),
    /// Initiate a backchannel request; prints {"auth_req_id","expires_in","interval"}.
    Initiate(InitiateArgs),
    /// Poll for the outcome of an initiated request until it has one, like `login`.
    Poll(PollArgs),
}

/// The client's identity and credentials.
#[derive(clap::Args)]
struct Connection {
    /// The issuer URL; its discovery document names the endpoints.
    #[arg(long, value_name = "URL")]
    issuer: String,
    /// The client id the server registered.
    #[arg(long, value_name = "ID")]
    client_id: String,
    #[command(flatten)]
    credential: Credential,
    /// The client authentication method (default: client_secret_basic with a secret,
    /// private_key_jwt with a key).
    #[arg(long, value_enum, value_name = "METHOD")]
    auth_method: Option<AuthMethod>,
    /// Print one JSON object on stdout and nothing else.
    #[arg(long)]
    json: bool,
}

/// Exactly one credential.
#[derive(clap::Args)]
#[group(required = true, multiple = false)]
struct Credential {
    /// Authenticate with a client secret (client_secret_basic unless --auth-method says otherwise).
    #[arg(long, value_name = "S")]
    client_secret: Option<String>,
    /// Authenticate with private_key_jwt, signing with this private JWK (a JSON file).
    #[arg(long, value_name = "JWKFILE")]
    private_key: Option<PathBuf>,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
#[value(rename_all = "snake_case")]
enum AuthMethod {
    ClientSecretBasic,
    ClientSecretPost,
    PrivateKeyJwt,
}

#[derive(clap::Args)]
struct InitiateArgs {
    #[command(flatten)]
    conn: Connection,
    /// Who to authenticate: e-mail, NRIC/FIN, username, phone or sub.
    #[arg(long, value_name = "H", required_unless_present = "id_token_hint")]
    login_hint: Option<String>,
    /// Name the user by an ID token the server issued earlier instead of a login hint.
    #[arg(long, value_name = "JWT", conflicts_with = "login_hint")]
    id_token_hint: Option<String>,
    /// A short message shown on the user's device and in the client's own screen.
    #[arg(long, value_name = "M")]
    binding_message: Option<String>,
    /// Space-separated scopes; must contain openid.
    #[arg(long, value_name = "S", default_value = "openid")]
    scope: String,
    /// The user's secret code, for clients registered to require one.
    #[arg(long, value_name = "CODE")]
    user_code: Option<String>,
    /// Requested lifetime of the request, in seconds.
    #[arg(long, value_name = "SECONDS")]
    requested_expiry: Option<u64>,
    /// Requested authentication context class references, space-separated.
    #[arg(long, value_name = "ACR")]
    acr_values: Option<String>,
    /// RFC 9396 authorization details, a JSON array (e.g. '[{"type":"payment_initiation",...}]').
    #[arg(long, value_name = "JSON")]
    authorization_details: Option<String>,
    /// Send the request as a signed request object (CIBA Core §7.1.1), signed with --private-key.
    #[arg(long, requires = "private_key")]
    signed_request: bool,
}

#[derive(clap::Args)]
struct PollArgs {
    #[command(flatten)]
    conn: Connection,
    /// The auth_req_id that `initiate` printed.
    #[arg(long, value_name = "ID")]
    auth_req_id: String,
    /// Seconds between polls (the `interval` the server gave).
    #[arg(long, value_name = "SECONDS", default_value_t = 5)]
    interval: u64,
    /// Give up after this many seconds (the server's `expires_in`).
    #[arg(long, value_name = "SECONDS", default_value_t = 600)]
    expires_in: u64,
}

pub async fn run(args: ClientArgs) -> CmdResult {
    match args.command {
        ClientCommand::Login(a) => login(a).await,
        ClientCommand::Initiate(a) => initiate(a).await,
        ClientCommand::Poll(a) => poll(a).await,
    }
}

async fn login(a: InitiateArgs) -> CmdResult {
    let out = Output::from_flag(a.conn.json);
    let client = connect(&a.conn).await?;
    let started = match send_initiate(&client, &a).await {
        Ok(s) => s,
        Err(e) => return fail(e, out),
    };
    finish(
        &client,
        &started.auth_req_id,
        started.interval.unwrap_or(5),
        started.expires_in,
        out,
    )
    .await
}

async fn initiate(a: InitiateArgs) -> CmdResult {
    let out = Output::from_flag(a.conn.json);
    let client = connect(&a.conn).await?;
    match send_initiate(&client, &a).await {
        Ok(started) => {
            out.print(&started, pretty_json)?;
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => fail(e, out),
    }
}

async fn send_initiate(
    client: &CibaClient,
    a: &InitiateArgs,
) -> Result<backchannel_client::BackchannelAuthResponse, ClientError> {
    let req = initiate_request(a).map_err(|e| ClientError::Config(e.to_string()))?;
    if a.signed_request {
        client.initiate_signed(&req).await
    } else {
        client.initiate(&req).await
    }
}

async fn poll(a: PollArgs) -> CmdResult {
    let client = connect(&a.conn).await?;
    finish(
        &client,
        &a.auth_req_id,
        a.interval,
        a.expires_in,
        Output::from_flag(a.conn.json),
    )
    .await
}

/// Polls until an outcome, validates the ID token and prints the token response.
async fn finish(
    client: &CibaClient,
    auth_req_id: &str,
    interval: u64,
    expires_in: u64,
    out: Output,
) -> CmdResult {
    out.if_human(|| {
        eprintln!(
            "Waiting for the user to decide (auth_req_id {auth_req_id}, polling every {interval} s, \
             up to {expires_in} s)..."
        );
    });
    let tokens = match client
        .poll_until_done(auth_req_id, interval, expires_in)
        .await
    {
        Ok(t) => t,
        Err(e) => return fail(e, out),
    };
    // A token response whose ID token does not validate is not a login.
    let claims = match &tokens.id_token {
        Some(id_token) => Some(client.validate_id_token(id_token).await?),
        None => None,
    };
    out.print(&tokens, |w, tokens| {
        summary(w, tokens, claims.as_ref())?;
        pretty_json(w, tokens)
    })?;
    Ok(ExitCode::SUCCESS)
}

/// What a person reads above the token response: who logged in, how, and what was granted.
fn summary(
    w: &mut String,
    tokens: &TokenResponse,
    claims: Option<&backchannel_client::IdTokenClaims>,
) -> fmt::Result {
    writeln!(w, "Authenticated.")?;
    if let Some(c) = claims {
        writeln!(w, "  subject:       {}", c.sub)?;
        if let Some(acr) = &c.acr {
            writeln!(w, "  acr:           {acr}")?;
        }
        if let Some(amr) = &c.amr {
            writeln!(w, "  amr:           {}", amr.join(" "))?;
        }
        writeln!(w, "  ID token:      valid (issuer {})", c.iss)?;
    }
    if let Some(scope) = &tokens.scope {
        writeln!(w, "  scope:         {scope}")?;
    }
    writeln!(
        w,
        "  access token:  {} (expires in {} s)",
        tokens.token_type, tokens.expires_in
    )?;
    if let Some(d) = &tokens.authorization_details {
        writeln!(w, "  authorization_details: {d}")?;
    }
    writeln!(w)
}

async fn connect(conn: &Connection) -> Result<CibaClient, BoxError> {
    let auth = client_auth(conn)?;
    let metadata = discover(&conn.issuer).await?;
    Ok(CibaClient::new(metadata, conn.client_id.clone(), auth))
}

fn client_auth(conn: &Connection) -> Result<ClientAuth, BoxError> {
    match (
        &conn.credential.client_secret,
        &conn.credential.private_key,
        conn.auth_method,
    ) {
        (Some(s), None, None | Some(AuthMethod::ClientSecretBasic)) => {
            Ok(ClientAuth::SecretBasic(s.clone()))
        }
        (Some(s), None, Some(AuthMethod::ClientSecretPost)) => {
            Ok(ClientAuth::SecretPost(s.clone()))
        }
        (None, Some(path), None | Some(AuthMethod::PrivateKeyJwt)) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            let jwk: Jwk = serde_json::from_str(&text)
                .map_err(|e| format!("{} is not a JWK: {e}", path.display()))?;
            let key = SigningKey::from_jwk(&jwk)
                .map_err(|e| format!("{} is not a usable private key: {e}", path.display()))?;
            Ok(ClientAuth::PrivateKeyJwt(key))
        }
        (Some(_), _, Some(AuthMethod::PrivateKeyJwt)) => {
            Err("--auth-method private_key_jwt needs --private-key, not --client-secret".into())
        }
        (_, Some(_), Some(_)) => {
            Err("--private-key authenticates with private_key_jwt only".into())
        }
        _ => Err("give --client-secret or --private-key".into()),
    }
}

fn initiate_request(a: &InitiateArgs) -> Result<InitiateRequest, BoxError> {
    let authorization_details = match &a.authorization_details {
        Some(s) => Some(
            serde_json::from_str::<serde_json::Value>(s)
                .map_err(|e| format!("--authorization-details is not JSON: {e}"))?,
        ),
        None => None,
    };
    Ok(InitiateRequest {
        scope: a.scope.clone(),
        login_hint: a.login_hint.clone(),
        id_token_hint: a.id_token_hint.clone(),
        binding_message: a.binding_message.clone(),
        user_code: a.user_code.clone(),
        requested_expiry: a.requested_expiry,
        acr_values: a.acr_values.clone(),
        authorization_details,
        ..InitiateRequest::default()
    })
}

/// Reports a failed request on stderr and exits non-zero. A script that asked for `--json` gets
/// the OAuth error object when the server sent one, or the `expired_token` one the server
/// would have sent; a failure without one is a message either way.
fn fail(e: ClientError, out: Output) -> CmdResult {
    let message = format!("error: {e}\n");
    match &e {
        ClientError::OAuth { error, .. } => out.eprint(error, |w, _| w.write_str(&message))?,
        ClientError::Expired => {
            let error = json!({"error": "expired_token", "error_description": e.to_string()});
            out.eprint(&error, |w, _| w.write_str(&message))?;
        }
        _ => eprint!("{message}"),
    }
    Ok(ExitCode::FAILURE)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: ClientArgs,
    }

    fn parse(argv: &[&str]) -> Result<ClientArgs, clap::Error> {
        Cli::try_parse_from(std::iter::once("client").chain(argv.iter().copied())).map(|c| c.args)
    }

    const BASE: [&str; 5] = [
        "--issuer",
        "http://127.0.0.1:8080",
        "--client-id",
        "c1",
        "--json",
    ];

    #[test]
    fn login_takes_the_spec_words() {
        let mut argv = vec!["login"];
        argv.extend(BASE);
        argv.extend(["--client-secret", "s", "--login-hint", "alice@example.com"]);
        argv.extend(["--binding-message", "W4SCT", "--scope", "openid email"]);
        let ClientCommand::Login(a) = parse(&argv).unwrap().command else {
            panic!("not login")
        };
        assert_eq!(a.scope, "openid email");
        assert!(a.conn.json);
        assert!(matches!(
            client_auth(&a.conn).unwrap(),
            ClientAuth::SecretBasic(_)
        ));
        let req = initiate_request(&a).unwrap();
        assert_eq!(req.login_hint.as_deref(), Some("alice@example.com"));
        assert_eq!(req.binding_message.as_deref(), Some("W4SCT"));
    }

    #[test]
    fn scope_defaults_to_openid_and_post_is_selectable() {
        let mut argv = vec!["initiate"];
        argv.extend(BASE);
        argv.extend([
            "--client-secret",
            "s",
            "--auth-method",
            "client_secret_post",
        ]);
        argv.extend(["--login-hint", "h"]);
        let ClientCommand::Initiate(a) = parse(&argv).unwrap().command else {
            panic!()
        };
        assert_eq!(a.scope, "openid");
        assert!(matches!(
            client_auth(&a.conn).unwrap(),
            ClientAuth::SecretPost(_)
        ));
    }

    #[test]
    fn exactly_one_credential() {
        let mut none = vec!["login"];
        none.extend(BASE);
        none.extend(["--login-hint", "h"]);
        assert!(parse(&none).is_err());
        let mut both = none.clone();
        both.extend(["--client-secret", "s", "--private-key", "k.json"]);
        assert!(parse(&both).is_err());
    }

    #[test]
    fn a_secret_cannot_be_used_for_private_key_jwt() {
        let mut argv = vec!["login"];
        argv.extend(BASE);
        argv.extend(["--client-secret", "s", "--auth-method", "private_key_jwt"]);
        argv.extend(["--login-hint", "h"]);
        let ClientCommand::Login(a) = parse(&argv).unwrap().command else {
            panic!()
        };
        assert!(client_auth(&a.conn).is_err());
    }

    #[test]
    fn poll_needs_the_auth_req_id() {
        let mut argv = vec!["poll"];
        argv.extend(BASE);
        argv.extend(["--client-secret", "s"]);
        assert!(parse(&argv).is_err());
        argv.extend(["--auth-req-id", "abc"]);
        let ClientCommand::Poll(a) = parse(&argv).unwrap().command else {
            panic!()
        };
        assert_eq!(a.auth_req_id, "abc");
    }

    #[test]
    fn authorization_details_must_be_json() {
        let mut argv = vec!["initiate"];
        argv.extend(BASE);
        argv.extend(["--client-secret", "s", "--login-hint", "h"]);
        argv.extend([
            "--authorization-details",
            "[{\"type\":\"payment_initiation\"}]",
        ]);
        let ClientCommand::Initiate(a) = parse(&argv).unwrap().command else {
            panic!()
        };
        let req = initiate_request(&a).unwrap();
        assert_eq!(
            req.authorization_details.unwrap()[0]["type"],
            "payment_initiation"
        );
        let mut bad = argv.clone();
        *bad.last_mut().unwrap() = "not json";
        let ClientCommand::Initiate(a) = parse(&bad).unwrap().command else {
            panic!()
        };
        assert!(initiate_request(&a).is_err());
    }
}
