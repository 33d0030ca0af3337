//! The `ringleader` binary: parse arguments, start tracing, hand over to the library.
use clap::Parser;

/// mimalloc instead of the system allocator: a proxy allocates and frees small
/// buffers, header maps and futures on every request, and glibc's malloc spent
/// about 12% of ringleader's user time on them (perf, wrk -c64 on loopback).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    let cli = ringleader_cli::Cli::parse();
    ringleader_cli::init_tracing(&cli);
    match ringleader_cli::run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("ringleader: {err}");
            std::process::ExitCode::FAILURE
        }
    }
}
