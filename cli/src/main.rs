//! The `ringleader` binary: parse arguments, start tracing, hand over to the library.
use clap::Parser;
use std::io::Write;

/// mimalloc instead of the system allocator: a proxy allocates and frees small
/// buffers, header maps and futures on every request, and glibc's malloc spent
/// about 12% of ringleader's user time on them (perf, wrk -c64 on loopback).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    let cli = ringleader_cli::Cli::parse();
    ringleader_cli::init_tracing(&cli);
    let json = cli.log_format == ringleader_cli::LogFormat::Json;
    match ringleader_cli::run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            if json && tracing::enabled!(tracing::Level::ERROR) {
                // A JSON log consumer gets the failure as one more JSON line.
                tracing::error!(error = %err, "ringleader failed");
            } else {
                // Not eprintln!: a closed stderr must not turn an error into a panic.
                let _ = writeln!(std::io::stderr(), "ringleader: {err}");
            }
            // 2 for a bad argument (as clap's own errors), 1 for a runtime failure.
            std::process::ExitCode::from(ringleader_cli::exit_code(&err))
        }
    }
}
