//! `caretaker`: the command line. Thin on purpose: it parses arguments, loads the config, calls
//! the pipeline crates and turns outcomes into output and exit codes (0 the work ran, 1 the data
//! or a check failed the run, 2 bad usage, bad config or unreadable input).

mod cli;
mod commands;

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    init_logging(cli.verbose);
    match commands::dispatch(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// Logs go to stderr, so that `--json` output on stdout stays one clean document.
fn init_logging(verbose: u8) {
    use tracing_subscriber::EnvFilter;
    let default = match verbose {
        0 => "warn,caretaker=info,caretaker_pipeline=info,caretaker_patterns=info",
        1 => "info",
        _ => "debug",
    };
    let filter = EnvFilter::try_from_env("CARETAKER_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_target(false).init();
}
