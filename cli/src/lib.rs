//! Command-line surface of the `ringleader` binary; one module per subcommand family.
//!
//! `main` parses a [`Cli`], installs tracing with [`init_tracing`] and hands over to
//! [`run`]; the proxy itself, the ID generator and the simulators live in the library
//! crates, so this crate holds only arguments, output formats and the plot.
//!
//! ```
//! use clap::Parser;
//! use ringleader_cli::{Cli, Command};
//!
//! let cli = Cli::try_parse_from(["ringleader", "check", "-c", "proxy.toml"]).unwrap();
//! assert!(matches!(cli.command, Command::Check(ref a) if a.config.ends_with("proxy.toml")));
//! assert!(Cli::try_parse_from(["ringleader", "sim", "reshard", "--format", "xml"]).is_err());
//! ```
#![forbid(unsafe_code)]

use clap::{Parser, Subcommand};

pub mod id;
pub mod serve;
pub mod sim;

/// Error type of a subcommand: anything displayable, reported by `main` on stderr.
pub type CliError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// `ringleader`: HTTP reverse proxy, Snowflake IDs, sharding and balancing simulators.
#[derive(Debug, Parser)]
#[command(name = "ringleader", version, about, long_about = None)]
pub struct Cli {
    /// Log filter (tracing `EnvFilter` syntax); `RUST_LOG` overrides it.
    #[arg(long, global = true, default_value = "info")]
    pub log: String,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the proxy (SIGHUP reloads, SIGTERM drains).
    Serve(serve::ServeArgs),
    /// Validate a config file and print what it means.
    Check(serve::CheckArgs),
    /// Three in-process demo backends + proxy + admin on loopback.
    Demo(serve::DemoArgs),
    /// Generate or decode Snowflake IDs.
    Id(id::IdArgs),
    /// Simulators: key migration on reshard, latency of balancing strategies.
    #[command(subcommand)]
    Sim(sim::SimCommand),
}

/// Install the tracing subscriber (stderr, `--log` or `RUST_LOG` filter).
pub fn init_tracing(cli: &Cli) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&cli.log));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// Run a parsed command line.
pub fn run(cli: Cli) -> Result<(), CliError> {
    match cli.command {
        Command::Serve(args) => serve::serve(args),
        Command::Check(args) => serve::check(args),
        Command::Demo(args) => serve::demo(args),
        Command::Id(args) => id::run(args),
        Command::Sim(command) => sim::run(command),
    }
}
