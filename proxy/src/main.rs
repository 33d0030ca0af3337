//! The `ringleader` binary: parse arguments, start tracing, hand over to the library.
use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = ringleader_proxy::cli::Cli::parse();
    ringleader_proxy::cli::init_tracing(&cli);
    match ringleader_proxy::cli::run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("ringleader: {err}");
            std::process::ExitCode::FAILURE
        }
    }
}
