//! `caretaker`: the command line. Thin on purpose: it parses arguments, loads the config, calls
//! the pipeline crates and turns outcomes into output and exit codes (0 the work ran, 1 the data
//! or a check failed the run, 2 bad usage, bad config or unreadable input).

mod cli;
mod commands;

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    quiet_on_broken_pipe();
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

/// `caretaker runs list | head` closes stdout early; that ends the program quietly, with the
/// exit code a shell gives a process killed by SIGPIPE, instead of a panic message.
fn quiet_on_broken_pipe() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("");
        if message.contains("Broken pipe") {
            std::process::exit(141);
        }
        default(info);
    }));
}
