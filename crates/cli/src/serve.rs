//! `backchannel serve`: runs the authorization server until SIGTERM or SIGINT.

use std::path::PathBuf;
use std::process::ExitCode;

use backchannel_server::config::Config;

use crate::CmdResult;
use crate::log_sink::LogSink;

#[derive(clap::Args)]
pub struct ServeArgs {
    /// TOML configuration file; every key can also be set as BACKCHANNEL_<SECTION>_<KEY>.
    #[arg(long)]
    config: Option<PathBuf>,
}

/// Logs to stderr through a [`LogSink`]; returns it so that the end of `serve` can flush it.
pub fn init_logging() -> LogSink {
    use tracing_subscriber::EnvFilter;
    let filter =
        EnvFilter::try_from_env("BACKCHANNEL_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let sink = LogSink::start();
    let make = sink.clone();
    // Colours only for a person at a terminal, not in a log file.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(move || make.writer());
    if std::env::var("BACKCHANNEL_LOG_FORMAT").as_deref() == Ok("json") {
        builder.json().init();
    } else {
        builder.compact().init();
    }
    sink
}

pub async fn run(args: ServeArgs) -> CmdResult {
    let log = init_logging();
    // Handlers first: a signal that arrives while we start must stop us gracefully, not kill us.
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut int = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?;
    let config = Config::from_env(args.config.as_deref())?;
    let server = backchannel_server::app::start(config.clone()).await?;
    let issuer = server.issuer.clone();
    println!("Backchannel is running.");
    println!("  issuer:    {issuer}");
    println!("  discovery: {issuer}/.well-known/openid-configuration");
    println!("  database:  {}", config.database_url());
    match &server.generated_admin_token {
        Some(token) => println!(
            "  admin API: bearer token {token}\n             (saved in {}/admin-token)",
            config.server.data_dir
        ),
        None if config.admin.token.is_empty() => {
            println!(
                "  admin API: bearer token in {}/admin-token",
                config.server.data_dir
            )
        }
        None => println!("  admin API: bearer token from the configuration"),
    }
    println!();
    println!("Next, in another terminal (same directory):");
    println!("  backchannel admin client create --name \"My app\" --json");
    println!("  backchannel admin user create --email alice@example.com --json");
    println!("  backchannel admin enrolment create --user <sub> --json");
    println!(
        "  backchannel authenticator enrol --server {issuer} --code <code> --state alice.json"
    );
    println!(
        "  backchannel client login --issuer {issuer} --client-id <id> --client-secret <secret> --login-hint alice@example.com"
    );
    server
        .run_until(async move {
            tokio::select! {
                _ = term.recv() => {},
                _ = int.recv() => {},
            }
        })
        .await;
    log.flush_now();
    Ok(ExitCode::SUCCESS)
}
