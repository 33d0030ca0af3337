//! `ringleader serve`, `check` and `demo`: the proxy's own subcommands.
use super::CliError;
use std::path::PathBuf;

/// Arguments of `ringleader serve`.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Config file (TOML).
    #[arg(short, long, default_value = "ringleader.toml")]
    pub config: PathBuf,
}

/// Arguments of `ringleader check`.
#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// Config file (TOML).
    #[arg(short, long, default_value = "ringleader.toml")]
    pub config: PathBuf,
}

/// Arguments of `ringleader demo`.
#[derive(Debug, clap::Args)]
pub struct DemoArgs {}

/// Run `ringleader serve`.
pub fn serve(_args: ServeArgs) -> Result<(), CliError> {
    Err("`ringleader serve` is not implemented yet".into())
}

/// Run `ringleader check`.
pub fn check(_args: CheckArgs) -> Result<(), CliError> {
    Err("`ringleader check` is not implemented yet".into())
}

/// Run `ringleader demo`.
pub fn demo(_args: DemoArgs) -> Result<(), CliError> {
    Err("`ringleader demo` is not implemented yet".into())
}
