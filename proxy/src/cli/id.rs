//! `ringleader id`: generate or decode Snowflake IDs.
use super::CliError;

/// Arguments of `ringleader id`.
#[derive(Debug, clap::Args)]
pub struct IdArgs {
    /// How many IDs to print.
    #[arg(long, default_value_t = 1)]
    pub count: u64,
}

/// Run `ringleader id`.
pub fn run(_args: IdArgs) -> Result<(), CliError> {
    Err("`ringleader id` is not implemented yet".into())
}
