//! The `backchannel` binary: one command for the server, its administration, a relying-party
//! client, a reference authenticator, a narrated demo and a load benchmark.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// A faster allocator than the system's for a server that allocates per request: 17–21% more
/// requests/s than glibc's malloc on the same load (shared/bench/compare.sh, 64 connections).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod admin;
mod admin_policy;
mod authenticator_cmd;
mod bench;
mod bench_backlog;
mod bench_events;
mod bench_notify;
mod bench_purge;
mod client_cmd;
mod demo;
mod log_sink;
mod migrate;
mod output;
mod serve;

#[derive(Parser)]
#[command(name = "backchannel", version, about = "A CIBA authorization server")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the authorization server.
    Serve(serve::ServeArgs),
    /// Manage clients, users and enrolments directly in the configured store.
    Admin(admin::AdminArgs),
    /// A relying party: initiate a backchannel request and poll for tokens.
    Client(Box<client_cmd::ClientArgs>),
    /// A reference authenticator device: enrol, list, approve, deny, watch.
    Authenticator(authenticator_cmd::AuthenticatorArgs),
    /// Measure requests/s and latency of the real server over loopback.
    Bench(bench::BenchArgs),
    /// Run a whole CIBA flow in one process, narrated: server, client, user, device, tokens.
    Demo(demo::DemoArgs),
    /// Apply the store's migrations and exit.
    Migrate(migrate::MigrateArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Serve(args) => serve::run(args).await,
            Command::Admin(args) => admin::run(args).await,
            Command::Client(args) => client_cmd::run(*args).await,
            Command::Authenticator(args) => authenticator_cmd::run(args).await,
            Command::Bench(args) => bench::run(args).await,
            Command::Demo(args) => demo::run(args).await,
            Command::Migrate(args) => migrate::run(args).await,
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// An error for the operator: its message is what they see.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// What every subcommand returns.
pub type CmdResult = Result<ExitCode, BoxError>;
