//! `backchannel migrate`: applies the store's migrations and exits, for operators who migrate
//! before rolling out nodes. (`serve` migrates too; on PostgreSQL under an advisory lock, so
//! nodes starting together apply each migration once.)

use std::path::PathBuf;
use std::process::ExitCode;

use backchannel_server::config::Config;
use backchannel_server::store::Stores;
use clap::Args;

use crate::CmdResult;

#[derive(Args)]
pub struct MigrateArgs {
    /// TOML configuration file naming the store (or BACKCHANNEL_* variables alone).
    #[arg(long)]
    config: Option<PathBuf>,
}

pub async fn run(args: MigrateArgs) -> CmdResult {
    let config = Config::from_env(args.config.as_deref())?;
    let url = config.database_url();
    Stores::open(&url).await?;
    let backend = url.split(':').next().unwrap_or("");
    println!("migrated: the {backend} store is at the current schema");
    Ok(ExitCode::SUCCESS)
}
