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
        reset_peak_rss();
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

/// Starts the process's peak resident set again from its current size (Linux: writing 5 to
/// `/proc/self/clear_refs`), so that the peak read when a stage ends is the stage's own. Elsewhere,
/// or where the kernel refuses, the peak keeps counting from the start of the process.
fn reset_peak_rss() {
    if let Err(e) = std::fs::write("/proc/self/clear_refs", "5")
        && cfg!(target_os = "linux")
    {
        tracing::debug!(error = %e, "the peak resident set cannot be reset; stage peaks count from the start");
    }
}

/// The process's peak resident set since the last reset, from `/proc/self/status` (Linux); `None`
/// elsewhere.
pub(crate) fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg(target_os = "linux")]
    fn each_stage_reports_its_own_peak_not_the_process_s_so_far() {
        let mut stages = Stages::new(false);
        let big = stages.start("big", "filling memory");
        let filled = vec![1u8; 256 << 20];
        assert_eq!(filled.iter().step_by(4096).map(|&b| b as usize).sum::<usize>(), (256 << 20) / 4096);
        stages.finish(big, None);
        drop(filled);
        let small = stages.start("small", "nothing much");
        stages.finish(small, None);
        let (big, small) = (stages.timings[0].peak_rss_bytes.unwrap(), stages.timings[1].peak_rss_bytes.unwrap());
        assert!(big > 256 << 20, "{big}");
        assert!(small + (200 << 20) < big, "the second stage's peak {small} counts from its own start, not {big}");
    }
}
