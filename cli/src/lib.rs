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
//! assert!(matches!(cli.command, Command::Check(ref a)
//!     if a.config.as_deref().is_some_and(|c| c.ends_with("proxy.toml"))));
//! assert!(Cli::try_parse_from(["ringleader", "sim", "reshard", "--format", "xml"]).is_err());
//! ```
#![forbid(unsafe_code)]

use clap::{Parser, Subcommand};

pub mod cluster;
pub mod demo_cluster;
pub mod id;
pub mod logfmt;
pub mod out;
pub mod serve;
pub mod sim;

/// Error type of a subcommand: anything displayable, reported by `main` on stderr.
pub type CliError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// A bad value on the command line that clap's parser let through (out of the range a
/// simulator accepts, an unknown name): a usage error, so the binary exits with status 2,
/// as for clap's own errors, and the message names the flag.
#[derive(Debug)]
pub struct UsageError {
    /// The flag, e.g. `--nodes`.
    pub flag: &'static str,
    /// What is wrong with its value.
    pub message: String,
}

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "invalid {}: {}", self.flag, self.message)
    }
}

impl std::error::Error for UsageError {}

/// A [`UsageError`] for `flag`, as a [`CliError`].
pub fn usage(flag: &'static str, message: impl std::fmt::Display) -> CliError {
    Box::new(UsageError {
        flag,
        message: message.to_string(),
    })
}

/// The exit status for a failed command: 2 for a bad argument ([`UsageError`]), 1 for
/// anything else (a runtime failure).
///
/// ```
/// let bad = ringleader_cli::usage("--nodes", "at least 1 node is needed");
/// assert_eq!(bad.to_string(), "invalid --nodes: at least 1 node is needed");
/// assert_eq!(ringleader_cli::exit_code(&bad), 2);
/// assert_eq!(ringleader_cli::exit_code(&"connection refused".into()), 1);
/// ```
pub fn exit_code(err: &CliError) -> u8 {
    if err.downcast_ref::<UsageError>().is_some() {
        2
    } else {
        1
    }
}

/// `ringleader`: HTTP reverse proxy, Snowflake IDs, sharding and balancing simulators.
#[derive(Debug, Parser)]
#[command(name = "ringleader", version, about, long_about = None, after_long_help = EXIT_HELP)]
pub struct Cli {
    /// Log filter (tracing `EnvFilter` syntax); `RUST_LOG` overrides it. The access log
    /// (`ringleader::access`) stays at INFO unless the filter names that target.
    #[arg(long, global = true, default_value = "info")]
    pub log: String,
    /// Log format on stderr: `text` (coloured only when stderr is a terminal and `NO_COLOR`
    /// is unset) or `json` (one JSON object per line: timestamp, level, target, fields).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the proxy (SIGHUP reloads, SIGTERM drains, a second SIGTERM stops at once).
    Serve(serve::ServeArgs),
    /// Validate a config file and print what it means.
    Check(serve::CheckArgs),
    /// Three in-process demo backends + proxy + admin on loopback.
    Demo(serve::DemoArgs),
    /// Generate or decode Snowflake IDs.
    Id(id::IdArgs),
    /// A fleet on etcd: register a backend, list members and worker-id leases.
    #[command(subcommand)]
    Cluster(cluster::ClusterCommand),
    /// Simulators: key migration on reshard, latency of balancing strategies.
    #[command(subcommand)]
    Sim(sim::SimCommand),
}

/// `ringleader --help`'s closing paragraph: exit statuses.
const EXIT_HELP: &str = "\
Exit status: 0 on success, 1 on an error (reported on stderr), 2 on bad arguments (an
unknown flag, or a value out of range: the message names the flag).
A closed standard output (`ringleader id --count 1000000 | head -3`) ends a command quietly
with status 0, as if it had finished: the reader chose to stop, nothing failed.";

/// Format of the log lines on stderr (`--log-format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines; ANSI colours only on a terminal.
    Text,
    /// One JSON object per line (tracing-subscriber's JSON formatter).
    Json,
}

/// Whether text logs on stderr get ANSI colours: only on a terminal, and never when
/// `NO_COLOR` is set to a non-empty value (<https://no-color.org>).
pub fn colour_logs(stderr_is_terminal: bool, no_color: Option<&std::ffi::OsStr>) -> bool {
    stderr_is_terminal && no_color.is_none_or(|v| v.is_empty())
}

/// The target of the proxy's access log events (`ringleader_proxy`'s `access_log::TARGET`).
const ACCESS_TARGET: &str = "ringleader::access";

/// Whether the filter `spec` (`EnvFilter` syntax) has a directive for the access log's
/// target (or a target within it) of its own.
fn names_access_target(spec: &str) -> bool {
    spec.split(',').any(|d| {
        // `target[span{field=value}]=level`: the target ends at `[` or `=`.
        let target = d.trim().split(['[', '=']).next().unwrap_or("");
        target.starts_with(ACCESS_TARGET)
    })
}

/// The log filter of `spec`, with the access log at INFO unless `spec` names its
/// target: the access log is on or off by the config (`access_log`), whatever level the
/// other logs are at, as nginx's `access_log` is independent of its `error_log` level.
pub fn log_filter(spec: &str) -> tracing_subscriber::EnvFilter {
    let filter = tracing_subscriber::EnvFilter::new(spec);
    if names_access_target(spec) {
        return filter;
    }
    match format!("{ACCESS_TARGET}=info").parse() {
        Ok(d) => filter.add_directive(d),
        Err(_) => filter,
    }
}

/// Install the tracing subscriber (stderr, `--log` or `RUST_LOG` filter, `--log-format`).
pub fn init_tracing(cli: &Cli) {
    use std::io::IsTerminal;
    // RUST_LOG, when set and valid, overrides `--log`.
    let spec = std::env::var("RUST_LOG")
        .ok()
        .filter(|s| tracing_subscriber::EnvFilter::try_new(s).is_ok())
        .unwrap_or_else(|| cli.log.clone());
    let filter = log_filter(&spec);
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // The JSON access log lines go out bare in both formats (see `logfmt`).
    let fmt = tracing_subscriber::fmt::format;
    let _ = match cli.log_format {
        LogFormat::Text => builder
            .with_ansi(colour_logs(
                std::io::stderr().is_terminal(),
                std::env::var_os("NO_COLOR").as_deref(),
            ))
            .event_format(logfmt::RawAccessLines(fmt()))
            .try_init(),
        LogFormat::Json => builder
            .json()
            .with_ansi(false)
            .event_format(logfmt::RawAccessLines(fmt().json()))
            .try_init(),
    };
}

/// Run a parsed command line.
///
/// A closed standard output ([`out::StdoutClosed`]) is success here, so the binary exits
/// with status 0 rather than the 141 (128 + SIGPIPE) a C program killed by SIGPIPE shows:
/// under `set -o pipefail`, `ringleader id --count 1000000 | head` would otherwise fail a
/// script that got exactly what it asked for.
pub fn run(cli: Cli) -> Result<(), CliError> {
    let result = match cli.command {
        Command::Serve(args) => serve::serve(args),
        Command::Check(args) => serve::check(args),
        Command::Demo(args) => serve::demo(args),
        Command::Id(args) => id::run(args),
        Command::Cluster(command) => cluster::run(command),
        Command::Sim(command) => sim::run(command),
    };
    match result {
        Err(e) if out::is_stdout_closed(&*e) => Ok(()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsStr;

    #[test]
    fn colours_only_on_a_terminal_without_no_color() {
        assert!(colour_logs(true, None));
        assert!(colour_logs(true, Some(OsStr::new(""))));
        assert!(!colour_logs(true, Some(OsStr::new("1"))));
        assert!(!colour_logs(false, None));
    }

    #[test]
    fn the_access_log_stays_at_info_unless_the_filter_names_it() {
        use tracing_subscriber::layer::SubscriberExt;
        let enabled = |spec: &str, target_access: bool| {
            let sub = tracing_subscriber::registry().with(log_filter(spec));
            tracing::subscriber::with_default(sub, || {
                if target_access {
                    tracing::event_enabled!(target: "ringleader::access", tracing::Level::INFO)
                } else {
                    tracing::event_enabled!(target: "ringleader_proxy::server", tracing::Level::INFO)
                }
            })
        };
        for spec in ["warn", "error", "off", "ringleader_proxy=warn", "info"] {
            assert!(enabled(spec, true), "{spec}");
        }
        assert!(!enabled("warn", false));
        for spec in [
            "warn,ringleader::access=off",
            "info,ringleader::access=warn",
        ] {
            assert!(!enabled(spec, true), "{spec}");
        }
        assert!(names_access_target(" ringleader::access[req]=debug"));
        assert!(!names_access_target("ringleader=debug"));
    }

    #[test]
    fn log_format_is_a_global_flag() {
        let cli =
            Cli::try_parse_from(["ringleader", "id", "--decode", "1", "--log-format", "json"])
                .unwrap();
        assert_eq!(cli.log_format, LogFormat::Json);
        let cli = Cli::try_parse_from(["ringleader", "id", "--decode", "1"]).unwrap();
        assert_eq!(cli.log_format, LogFormat::Text);
        assert!(Cli::try_parse_from(["ringleader", "--log-format", "xml", "id"]).is_err());
    }
}
