//! `ringleader sim reshard`: key-migration simulation.
use super::CliError;

/// Arguments of `ringleader sim reshard`.
#[derive(Debug, clap::Args)]
pub struct ReshardArgs {
    /// Nodes before the change.
    #[arg(long, default_value_t = 10)]
    pub nodes: usize,
}

/// Run `ringleader sim reshard`.
pub fn run(_args: ReshardArgs) -> Result<(), CliError> {
    Err("`ringleader sim reshard` is not implemented yet".into())
}
