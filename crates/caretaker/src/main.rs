//! `caretaker`: the command line. Thin on purpose: it parses arguments, loads the config, calls
//! the pipeline crates and turns outcomes into output and exit codes (0 the work ran, 1 the data
//! or a check failed the run, 2 bad usage, bad config or unreadable input).

mod cli;
mod commands;

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    return_freed_memory();
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

/// Has glibc hand freed heap back to the system at once. By default it keeps what a thread frees
/// in that thread's arena (up to 128 KiB above each arena's top, and all the chunks below it), so
/// the memory the training stage's threads freed stayed resident through the pattern stage: the
/// 1M-row nightly benchmark (`bench/nightly.sh`) peaked at 756 MiB, and at 572 MiB with this, in
/// the same time. (mimalloc as the global allocator peaked at 844 MiB; `malloc_trim` between
/// stages at 750 MiB, as the pattern stage's own threads hold on to theirs.)
fn return_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[allow(unsafe_code)]
    // SAFETY: mallopt takes two integers and changes only glibc's policy for trimming free
    // memory; it runs first thing in main, before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_TRIM_THRESHOLD, 0);
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
