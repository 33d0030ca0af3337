//! `ringleader sim balance`: latency simulation of balancing strategies.
use super::CliError;

/// Arguments of `ringleader sim balance`.
#[derive(Debug, clap::Args)]
pub struct BalanceArgs {
    /// Scenario to simulate.
    #[arg(long, default_value = "slow-backend")]
    pub scenario: String,
}

/// Run `ringleader sim balance`.
pub fn run(_args: BalanceArgs) -> Result<(), CliError> {
    Err("`ringleader sim balance` is not implemented yet".into())
}
