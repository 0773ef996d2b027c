//! Stage timing and memory, and a spinner on a terminal for stages that take a while.
//!
//! A stage's peak memory is exact when the stage raised the process's peak resident set
//! (`VmHWM`), and otherwise the largest resident set a sampler thread saw during it (every
//! [`SAMPLE_EVERY`]). The process's own peak is never reset: resetting it (`clear_refs`) would
//! also lower what `/usr/bin/time`, `getrusage` and a supervisor report as the run's peak.

use caretaker_core::report::StageTiming;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How often a stage's resident set is sampled.
const SAMPLE_EVERY: Duration = Duration::from_millis(5);

/// Times the stages of a run and shows a spinner per stage when asked to.
pub(crate) struct Stages {
    show: bool,
    pub timings: Vec<StageTiming>,
}

pub(crate) struct Stage {
    name: &'static str,
    started: Instant,
    bar: Option<ProgressBar>,
    memory: Option<Sampler>,
}

/// Watches the resident set during one stage.
struct Sampler {
    peak_before: u64,
    largest: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<()>,
}

impl Sampler {
    /// `None` where `/proc/self/status` cannot be read (not Linux).
    fn start() -> Option<Sampler> {
        let (peak_before, now) = (status_kib("VmHWM:")?, status_kib("VmRSS:")?);
        let largest = Arc::new(AtomicU64::new(now));
        let stop = Arc::new(AtomicBool::new(false));
        let (l, s) = (largest.clone(), stop.clone());
        let thread = std::thread::Builder::new()
            .name("stage-memory".into())
            .spawn(move || {
                while !s.load(Ordering::Relaxed) {
                    if let Some(rss) = status_kib("VmRSS:") {
                        l.fetch_max(rss, Ordering::Relaxed);
                    }
                    std::thread::sleep(SAMPLE_EVERY);
                }
            })
            .ok()?;
        Some(Sampler { peak_before, largest, stop, thread })
    }

    /// The stage's peak, in bytes.
    fn finish(self) -> Option<u64> {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.thread.join();
        let (peak_after, now) = (status_kib("VmHWM:")?, status_kib("VmRSS:")?);
        let kib = if peak_after > self.peak_before {
            // The stage set the process's peak: that is its peak, to the page.
            peak_after
        } else {
            self.largest.load(Ordering::Relaxed).max(now)
        };
        Some(kib * 1024)
    }
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
        Stage { name, started: Instant::now(), bar, memory: Sampler::start() }
    }

    pub fn finish(&mut self, stage: Stage, rows: Option<u64>) -> f64 {
        let seconds = stage.started.elapsed().as_secs_f64();
        if let Some(bar) = stage.bar {
            bar.finish_and_clear();
        }
        let peak_rss_bytes = stage.memory.and_then(Sampler::finish);
        tracing::info!(stage = stage.name, seconds, peak_rss_bytes, "stage finished");
        self.timings.push(StageTiming { stage: stage.name.to_string(), seconds, rows, peak_rss_bytes });
        seconds
    }
}

/// A `kB` line of `/proc/self/status` (Linux), in KiB; `None` elsewhere.
fn status_kib(key: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(key))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// The process's peak resident set so far (Linux `VmHWM`); `None` elsewhere.
pub(crate) fn peak_rss_bytes() -> Option<u64> {
    status_kib("VmHWM:").map(|kib| kib * 1024)
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
        // The process's own peak is left alone: it still holds the first stage's (to within the
        // kernel's per-CPU counting, which moves readings by a few hundred KiB).
        let process = peak_rss_bytes().unwrap();
        assert!(process > big - (4 << 20), "process peak {process} below the stage's {big}");
    }
}
