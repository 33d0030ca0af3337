//! `ringleader sim ...`: the simulators, key migration on reshard and latency of balancing strategies.
use clap::Subcommand;

use crate::CliError;

pub mod balance;
pub mod detect;
mod plot;
pub mod reshard;

/// `ringleader sim ...`
#[derive(Debug, Subcommand)]
pub enum SimCommand {
    /// Key-migration simulation when nodes join or leave.
    Reshard(reshard::ReshardArgs),
    /// Latency simulation of balancing strategies.
    Balance(balance::BalanceArgs),
    /// Failure-detection simulation: rise/fall against phi accrual.
    Detect(detect::DetectArgs),
}

/// Run a parsed `ringleader sim` subcommand.
pub fn run(command: SimCommand) -> Result<(), CliError> {
    match command {
        SimCommand::Reshard(args) => reshard::run(args),
        SimCommand::Balance(args) => balance::run(args),
        SimCommand::Detect(args) => detect::run(args),
    }
}
