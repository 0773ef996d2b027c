//! Stage timing, and a spinner on a terminal for stages that take a while.

use caretaker_core::report::StageTiming;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::time::{Duration, Instant};

/// Times the stages of a run and shows a spinner per stage when asked to.
pub(crate) struct Stages {
    show: bool,
    pub timings: Vec<StageTiming>,
}

pub(crate) struct Stage {
    name: &'static str,
    started: Instant,
    bar: Option<ProgressBar>,
}

impl Stages {
    pub fn new(show: bool) -> Stages {
        Stages { show, timings: Vec::new() }
    }

    pub fn start(&self, name: &'static str, message: &str) -> Stage {
        tracing::debug!(stage = name, "{message}");
        let bar = self.show.then(|| {
            // Shown only after a second: quick stages stay silent.
            let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
            bar.set_style(ProgressStyle::with_template("{spinner} {msg} ({elapsed})").expect("a valid template"));
            bar.set_message(format!("{name}: {message}"));
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        });
        Stage { name, started: Instant::now(), bar }
    }

    pub fn finish(&mut self, stage: Stage, rows: Option<u64>) -> f64 {
        let seconds = stage.started.elapsed().as_secs_f64();
        if let Some(bar) = stage.bar {
            bar.finish_and_clear();
        }
        tracing::info!(stage = stage.name, seconds, "stage finished");
        self.timings.push(StageTiming {
            stage: stage.name.to_string(),
            seconds,
            rows,
            peak_rss_bytes: peak_rss_bytes(),
        });
        seconds
    }
}

/// The process's peak resident set so far, from `/proc/self/status` (Linux); `None` elsewhere.
pub(crate) fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}
