//! `backchannel client`: a relying party on the command line (SPEC §3.2): `login` (initiate,
//! then poll until the user decides), `initiate` and `poll`, with an exit code per outcome.

use std::fmt::{self, Write as _};
use std::io::{IsTerminal as _, Write as _};
use std::path::PathBuf;
use std::process::ExitCode;

use backchannel_client::{
    Algorithm, BackchannelAuthResponse, CibaClient, ClientAuth, ClientError, ErrorCode,
    InitiateRequest, PollOptions, PollProgress, TokenResponse, load_decryption_key,
    load_signing_key,
};
use serde_json::json;

use crate::output::{Output, pretty_json};
use crate::{BoxError, CmdResult};

/// Exit status when the user denied the request (`access_denied`).
pub const EXIT_DENIED: u8 = 3;
/// Exit status when the request expired undecided (`expired_token`, or its lifetime ran out).
pub const EXIT_EXPIRED: u8 = 4;

const EXIT_CODES: &str = "Exit status: 0 approved (tokens printed), 1 any other error, \
                          2 bad command line, 3 denied by the user (access_denied), \
                          4 expired undecided (expired_token).";

#[derive(clap::Args)]
#[command(after_help = EXIT_CODES)]
pub struct ClientArgs {
    #[command(subcommand)]
    command: ClientCommand,
}

#[derive(clap::Subcommand)]
enum ClientCommand {
    /// Initiate a backchannel request and poll until the user decides; prints the token response.
    #[command(after_help = EXIT_CODES)]
    Login(InitiateArgs),
    /// Initiate a backchannel request; prints {"auth_req_id","expires_in","interval"}.
    Initiate(InitiateArgs),
    /// Poll for the outcome of an initiated request until it has one, like `login`.
    #[command(after_help = EXIT_CODES)]
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
    #[command(flatten)]
    key: KeyOptions,
    /// The client's key for encrypted ID tokens: a private JWK or PEM file (EC for ECDH-ES,
    /// RSA for RSA-OAEP-256).
    #[arg(long, value_name = "KEYFILE")]
    decryption_key: Option<PathBuf>,
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
    /// Authenticate with private_key_jwt, signing with this private key: a JWK (JSON) or a PEM
    /// file (PKCS#8 "PRIVATE KEY", SEC1 "EC PRIVATE KEY", PKCS#1 "RSA PRIVATE KEY").
    #[arg(long, value_name = "KEYFILE")]
    private_key: Option<PathBuf>,
}

/// How the private key signs, where its file does not say.
#[derive(clap::Args)]
struct KeyOptions {
    /// The key's algorithm (ES256, ES384, ES512, PS256, RS256, EdDSA); a PEM RSA key signs
    /// RS256 unless told PS256.
    #[arg(long, value_name = "ALG", value_parser = parse_alg)]
    key_alg: Option<Algorithm>,
    /// The kid the server registered for the key (default: the JWK's kid, or the key's RFC 7638
    /// thumbprint for a PEM file).
    #[arg(long, value_name = "KID")]
    kid: Option<String>,
}

fn parse_alg(s: &str) -> Result<Algorithm, String> {
    Algorithm::parse(s).ok_or_else(|| format!("unsupported algorithm {s}"))
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
    #[command(flatten)]
    hint: Hint,
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
    /// The bearer token the server presents at a ping or push client's notification endpoint.
    #[arg(long, value_name = "TOKEN")]
    client_notification_token: Option<String>,
    /// Send the request as a signed request object (CIBA Core §7.1.1), signed with --private-key.
    #[arg(long, requires = "private_key")]
    signed_request: bool,
}

/// Exactly one way of naming the user (CIBA Core §7.1).
#[derive(clap::Args)]
#[group(required = true, multiple = false)]
struct Hint {
    /// Who to authenticate: e-mail, NRIC/FIN, username, phone or sub.
    #[arg(long, value_name = "H")]
    login_hint: Option<String>,
    /// Name the user by an ID token the server issued earlier.
    #[arg(long, value_name = "JWT")]
    id_token_hint: Option<String>,
    /// Name the user by a login_hint_token.
    #[arg(long, value_name = "TOKEN")]
    login_hint_token: Option<String>,
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
    finish(&client, &started, out).await
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
) -> Result<BackchannelAuthResponse, ClientError> {
    let req = initiate_request(a).map_err(|e| ClientError::Config(e.to_string()))?;
    if a.signed_request {
        client.initiate_signed(&req).await
    } else {
        client.initiate(&req).await
    }
}

async fn poll(a: PollArgs) -> CmdResult {
    let client = connect(&a.conn).await?;
    let started = BackchannelAuthResponse {
        auth_req_id: a.auth_req_id.clone(),
        expires_in: a.expires_in,
        interval: Some(a.interval),
    };
    finish(&client, &started, Output::from_flag(a.conn.json)).await
}

/// Polls until an outcome, validates the ID token and prints the token response.
async fn finish(client: &CibaClient, started: &BackchannelAuthResponse, out: Output) -> CmdResult {
    let mut progress = Progress::new(out);
    progress.start(started);
    let options = PollOptions::default().on_progress(|p| progress.update(p));
    let result = client.poll_until_done_with(started, options).await;
    progress.done();
    let tokens = match result {
        Ok(t) => t,
        Err(e) => return fail(e, out),
    };
    // A token response whose ID token does not validate is not a login.
    let claims = match client.validate_token_response(&tokens).await {
        Ok(c) => c,
        Err(e) => return fail(e, out),
    };
    out.print(&tokens, |w, tokens| {
        summary(w, tokens, claims.as_ref())?;
        pretty_json(w, tokens)
    })?;
    Ok(ExitCode::SUCCESS)
}

/// "waiting for approval on the user's device… 12 s" on stderr, for a person only: rewritten in
/// place at a terminal, a line per poll otherwise.
struct Progress {
    out: Output,
    terminal: bool,
    drawn: bool,
}

impl Progress {
    fn new(out: Output) -> Self {
        Progress {
            out,
            terminal: std::io::stderr().is_terminal(),
            drawn: false,
        }
    }

    fn start(&self, started: &BackchannelAuthResponse) {
        self.out.if_human(|| {
            eprintln!(
                "Request {} sent; it expires in {} s.",
                started.auth_req_id, started.expires_in
            )
        });
    }

    fn update(&mut self, p: &PollProgress) {
        let terminal = self.terminal;
        let mut drawn = self.drawn;
        self.out.if_human(|| {
            let slow = if p.slowed_down {
                format!(" (server asked to slow down: every {} s)", p.interval_secs)
            } else {
                String::new()
            };
            let line = format!(
                "waiting for approval on the user's device… {} s{slow}",
                p.elapsed_secs
            );
            let mut err = std::io::stderr().lock();
            if terminal {
                let _ = write!(err, "\r\x1b[2K{line}");
                drawn = true;
            } else {
                let _ = writeln!(err, "{line}");
            }
            let _ = err.flush();
        });
        self.drawn = drawn;
    }

    fn done(&self) {
        if self.drawn {
            eprintln!();
        }
    }
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
    let decryption =
        match &conn.decryption_key {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
                Some(load_decryption_key(&text, None).map_err(|e| {
                    format!("{} is not a usable decryption key: {e}", path.display())
                })?)
            }
            None => None,
        };
    let client = CibaClient::discover(&conn.issuer, conn.client_id.clone(), auth).await?;
    Ok(match decryption {
        Some(key) => client.with_id_token_decryption_key(key),
        None => client,
    })
}

fn client_auth(conn: &Connection) -> Result<ClientAuth, BoxError> {
    if conn.credential.private_key.is_none()
        && (conn.key.key_alg.is_some() || conn.key.kid.is_some())
    {
        return Err("--key-alg and --kid describe --private-key".into());
    }
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
            let key = load_signing_key(&text, conn.key.key_alg, conn.key.kid.as_deref())
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
        login_hint: a.hint.login_hint.clone(),
        id_token_hint: a.hint.id_token_hint.clone(),
        login_hint_token: a.hint.login_hint_token.clone(),
        binding_message: a.binding_message.clone(),
        user_code: a.user_code.clone(),
        requested_expiry: a.requested_expiry,
        acr_values: a.acr_values.clone(),
        authorization_details,
        client_notification_token: a.client_notification_token.clone(),
    })
}

/// The exit status for a failure: denial and expiry have their own (see [`EXIT_CODES`]).
fn exit_code(e: &ClientError) -> ExitCode {
    match e.code() {
        Some(ErrorCode::AccessDenied) => ExitCode::from(EXIT_DENIED),
        Some(ErrorCode::ExpiredToken) => ExitCode::from(EXIT_EXPIRED),
        _ if matches!(e, ClientError::Expired) => ExitCode::from(EXIT_EXPIRED),
        _ => ExitCode::FAILURE,
    }
}

/// Reports a failed request on stderr and exits with its status. A script that asked for
/// `--json` gets the OAuth error object (with the server's `request_id`) when the server sent
/// one, or the `expired_token` one the server would have sent; a failure without one is a
/// message either way.
fn fail(e: ClientError, out: Output) -> CmdResult {
    let message = format!("error: {e}\n");
    match &e {
        ClientError::OAuth(error) => out.eprint(&error.to_json(), |w, _| w.write_str(&message))?,
        ClientError::Expired => {
            let error = json!({"error": "expired_token", "error_description": e.to_string()});
            out.eprint(&error, |w, _| w.write_str(&message))?;
        }
        _ => eprint!("{message}"),
    }
    Ok(exit_code(&e))
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
        assert_eq!(req.id_token_hint, None);
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

    #[test]
    fn exactly_one_hint_and_key_options_need_a_key() {
        let mut two = vec!["initiate"];
        two.extend(BASE);
        two.extend(["--client-secret", "s", "--login-hint", "h"]);
        two.extend(["--login-hint-token", "t"]);
        assert!(parse(&two).is_err());
        let mut by_token = vec!["initiate"];
        by_token.extend(BASE);
        by_token.extend(["--client-secret", "s", "--login-hint-token", "t"]);
        let ClientCommand::Initiate(a) = parse(&by_token).unwrap().command else {
            panic!()
        };
        assert_eq!(
            initiate_request(&a).unwrap().login_hint_token.as_deref(),
            Some("t")
        );
        let mut kid = vec!["login"];
        kid.extend(BASE);
        kid.extend(["--client-secret", "s", "--login-hint", "h", "--kid", "k"]);
        let ClientCommand::Login(a) = parse(&kid).unwrap().command else {
            panic!()
        };
        assert!(client_auth(&a.conn).is_err(), "--kid needs --private-key");
        let mut alg = vec!["login"];
        alg.extend(BASE);
        alg.extend(["--private-key", "k.pem", "--login-hint", "h"]);
        alg.extend(["--key-alg", "HS256"]);
        assert!(parse(&alg).is_err(), "no symmetric algorithms");
    }

    #[test]
    fn each_outcome_has_its_exit_status() {
        use backchannel_client::OAuthError;
        let oauth = |code| ClientError::OAuth(OAuthError::new(code, 400));
        assert_eq!(
            exit_code(&oauth(ErrorCode::AccessDenied)),
            ExitCode::from(EXIT_DENIED)
        );
        assert_eq!(
            exit_code(&oauth(ErrorCode::ExpiredToken)),
            ExitCode::from(EXIT_EXPIRED)
        );
        assert_eq!(
            exit_code(&ClientError::Expired),
            ExitCode::from(EXIT_EXPIRED)
        );
        assert_eq!(
            exit_code(&oauth(ErrorCode::UnknownUserId)),
            ExitCode::FAILURE
        );
        assert_ne!(EXIT_DENIED, EXIT_EXPIRED);
    }
}
