//! `caretaker bench train`: fit time, prediction time and holdout scores of every candidate on a
//! pipeline's data, measured the way the nightly run measures them. The figures are compared with
//! the scikit-learn reference by `bench/train.sh`, which runs both on the same file, with the same
//! split and hyperparameters, one after the other.

use crate::split::split;
use crate::{Error, Result};
use caretaker_core::config::PipelineConfig;
use caretaker_evaluate::metrics::classification_metrics;
use caretaker_train::TrainedModel;
use serde::Serialize;
use std::time::Instant;

#[derive(Debug, Serialize)]
pub struct TrainBench {
    pub dataset: String,
    pub rows: u64,
    pub train_rows: usize,
    pub holdout_rows: usize,
    pub quality_seconds: f64,
    pub candidates: Vec<CandidateBench>,
}

#[derive(Debug, Serialize)]
pub struct CandidateBench {
    pub name: String,
    pub family: String,
    pub fit_seconds: f64,
    pub predict_micros_per_row: f64,
    pub f1: f64,
    pub roc_auc: Option<f64>,
    pub threshold: f64,
    pub model_bytes: usize,
}

/// Fits every candidate of `config` (or those named in `only`) on its training window.
pub fn train(config: &PipelineConfig, only: &[String]) -> Result<TrainBench> {
    // A pipeline with `[dataset.example]` gets its data on first use, as `run` does.
    crate::example::ensure_example(config, chrono::Utc::now())?;
    let scratch = crate::run::scratch_dir()?;
    let started = Instant::now();
    let files = crate::run::dataset_files(config, chrono::Utc::now())?;
    let quality = crate::run::assess_quality_in_scratch(config, &files, chrono::Utc::now(), scratch.path())?;
    let quality_seconds = started.elapsed().as_secs_f64();
    let events = quality.events.ok_or_else(|| Error::Other {
        path: config.dataset.path.clone(),
        reason: "the data fails a blocking quality check; run `caretaker quality` for the details".into(),
    })?;
    let newest = quality.data.newest_event.map(|t| t.timestamp_micros());
    let split = split(&events, newest, quality.sample, &config.training)
        .ok_or_else(|| Error::Other { path: config.dataset.path.clone(), reason: "no clean rows".into() })?;
    drop(events);
    let mut candidates = Vec::new();
    for spec in config.candidates.iter().filter(|c| only.is_empty() || only.contains(&c.name)) {
        let started = Instant::now();
        let model = TrainedModel::fit(spec, &config.training, &split.train)
            .map_err(|e| Error::Other { path: config.source.clone(), reason: e.to_string() })?;
        let fit_seconds = started.elapsed().as_secs_f64();
        let started = Instant::now();
        let p = model
            .predict_proba(&split.holdout)
            .map_err(|e| Error::Other { path: config.source.clone(), reason: e.to_string() })?;
        let predict_micros_per_row = started.elapsed().as_secs_f64() * 1e6 / split.holdout.len().max(1) as f64;
        let m = classification_metrics(&split.holdout.labels, &p, model.threshold);
        tracing::info!(candidate = %spec.name, fit_seconds, f1 = m.f1, "fitted");
        candidates.push(CandidateBench {
            name: spec.name.clone(),
            family: spec.params.family().to_string(),
            fit_seconds,
            predict_micros_per_row,
            f1: m.f1,
            roc_auc: m.roc_auc,
            threshold: model.threshold,
            model_bytes: model.to_bytes().len(),
        });
    }
    Ok(TrainBench {
        dataset: config.dataset.path.display().to_string(),
        rows: quality.report.rows,
        train_rows: split.train.len(),
        holdout_rows: split.holdout.len(),
        quality_seconds,
        candidates,
    })
}

/// One measurement of `caretaker bench quality`.
#[derive(Debug, Serialize)]
pub struct QualityBench {
    pub dataset: String,
    pub rows: u64,
    pub files: usize,
    pub bytes: u64,
    /// Seconds of each repeat: a bare polars streaming scan of every column (the reference), and
    /// the quality stage (integrity, schema, the streaming pass, drift, checks).
    pub scan_seconds: Vec<f64>,
    pub quality_seconds: Vec<f64>,
    pub scan_median: f64,
    pub quality_median: f64,
    /// quality_median / scan_median.
    pub ratio: f64,
    /// Processor seconds (user and system, all threads) per repeat of each side, and their
    /// ratio: steadier than wall time on a shared machine, and what both sides cost in all.
    pub scan_cpu_seconds: Option<f64>,
    pub quality_cpu_seconds: Option<f64>,
    pub cpu_ratio: Option<f64>,
    /// Of those, the seconds in the kernel, and the page faults per repeat: on a machine where
    /// fresh memory is slow (a virtual machine), what the memory a side fills costs.
    pub scan_system_seconds: Option<f64>,
    pub quality_system_seconds: Option<f64>,
    pub scan_page_faults: Option<f64>,
    pub quality_page_faults: Option<f64>,
    pub quality_score: f64,
    pub peak_rss_bytes: Option<u64>,
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    if v.is_empty() { f64::NAN } else { v[v.len() / 2] }
}

/// Times the quality stage against a bare streaming scan of the same files, alternating, in one
/// process. `only` = "scan" or "quality" runs one side alone (for its peak memory).
pub fn quality(config: &PipelineConfig, repeats: usize, only: Option<&str>) -> Result<QualityBench> {
    use polars::prelude::*;
    crate::example::ensure_example(config, chrono::Utc::now())?;
    let files = crate::run::dataset_files(config, chrono::Utc::now())?;
    let scratch = crate::run::scratch_dir()?;
    let (mut scan_seconds, mut quality_seconds) = (Vec::new(), Vec::new());
    let mut rows = 0u64;
    let mut score = f64::NAN;
    let (mut scan_usage, mut quality_usage) = (Some(Usage::default()), Some(Usage::default()));
    let add_usage = |total: &mut Option<Usage>, before: Option<Usage>| {
        *total = total.zip(before).zip(Usage::now()).map(|((t, b), a)| Usage {
            cpu_seconds: t.cpu_seconds + a.cpu_seconds - b.cpu_seconds,
            system_seconds: t.system_seconds + a.system_seconds - b.system_seconds,
            page_faults: t.page_faults + a.page_faults - b.page_faults,
        });
    };
    for _ in 0..repeats.max(1) {
        if only != Some("quality") {
            let usage = Usage::now();
            let started = Instant::now();
            let counted = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
            let sink = counted.clone();
            files
                .scan()?
                .sink_batches(
                    PlanCallback::new(move |df: DataFrame| {
                        sink.fetch_add(df.height() as u64, std::sync::atomic::Ordering::Relaxed);
                        Ok(false)
                    }),
                    true,
                    std::num::NonZeroUsize::new(128 * 1024),
                )
                .and_then(|plan| plan.collect_with_engine(Engine::Streaming))
                .map_err(|e| files.read_error(e))?;
            scan_seconds.push(started.elapsed().as_secs_f64());
            add_usage(&mut scan_usage, usage);
            rows = counted.load(std::sync::atomic::Ordering::Relaxed);
        }
        if only != Some("scan") {
            let usage = Usage::now();
            let started = Instant::now();
            let outcome = crate::run::assess_quality_in_scratch(config, &files, chrono::Utc::now(), scratch.path())?;
            quality_seconds.push(started.elapsed().as_secs_f64());
            add_usage(&mut quality_usage, usage);
            rows = outcome.report.rows;
            score = outcome.report.score;
            // Bins are frozen by the first repeat; later repeats measure the nightly case.
        }
    }
    let (scan_median, quality_median) = (self::median(&scan_seconds), self::median(&quality_seconds));
    let per_repeat =
        |total: Option<Usage>, n: usize, of: fn(&Usage) -> f64| total.filter(|_| n > 0).map(|t| of(&t) / n as f64);
    let (scans, qualities) = (scan_seconds.len(), quality_seconds.len());
    let (scan_cpu_seconds, quality_cpu_seconds) =
        (per_repeat(scan_usage, scans, |u| u.cpu_seconds), per_repeat(quality_usage, qualities, |u| u.cpu_seconds));
    Ok(QualityBench {
        dataset: config.dataset.path.display().to_string(),
        rows,
        files: files.files.len(),
        bytes: files.bytes,
        scan_seconds,
        quality_seconds,
        scan_median,
        quality_median,
        ratio: quality_median / scan_median,
        scan_cpu_seconds,
        quality_cpu_seconds,
        cpu_ratio: quality_cpu_seconds.zip(scan_cpu_seconds).map(|(q, s)| q / s),
        scan_system_seconds: per_repeat(scan_usage, scans, |u| u.system_seconds),
        quality_system_seconds: per_repeat(quality_usage, qualities, |u| u.system_seconds),
        scan_page_faults: per_repeat(scan_usage, scans, |u| u.page_faults),
        quality_page_faults: per_repeat(quality_usage, qualities, |u| u.page_faults),
        quality_score: score,
        peak_rss_bytes: crate::progress::peak_rss_bytes(),
    })
}

/// What this process has used so far, all its threads, from `/proc/self/stat`.
#[derive(Debug, Default, Clone, Copy)]
struct Usage {
    /// Processor seconds, user and system.
    cpu_seconds: f64,
    /// Of those, in the kernel.
    system_seconds: f64,
    /// Minor and major page faults.
    page_faults: f64,
}

impl Usage {
    /// `None` where there is no such file. Times are in clock ticks of 1/100 s, Linux's fixed
    /// `USER_HZ`.
    fn now() -> Option<Usage> {
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        // The fields after the command name, which is in parentheses and may hold spaces: state
        // is the first, minflt the 8th, majflt the 10th, utime the 12th, stime the 13th.
        let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
        let field = |i: usize| fields.get(i)?.parse::<u64>().ok();
        let (user, system) = (field(11)?, field(12)?);
        Some(Usage {
            cpu_seconds: (user + system) as f64 / 100.0,
            system_seconds: system as f64 / 100.0,
            page_faults: (field(7)? + field(9)?) as f64,
        })
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn processor_time_grows_with_work() {
        let Some(before) = super::Usage::now().map(|u| u.cpu_seconds) else { return };
        // Busy until the process has used 0.05 s more (other tests' threads count too), within
        // a generous wall-time limit.
        let started = std::time::Instant::now();
        let mut x = 0u64;
        let mut now = before;
        while now - before < 0.05 && started.elapsed().as_secs() < 20 {
            for _ in 0..1_000_000 {
                x = x.wrapping_mul(6364136223846793005).wrapping_add(std::hint::black_box(1));
            }
            now = super::Usage::now().expect("read before").cpu_seconds;
        }
        std::hint::black_box(x);
        assert!(now - before >= 0.05, "{before} s -> {now} s after {:?}", started.elapsed());
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
        assert!(now - before <= started.elapsed().as_secs_f64() * cores + 0.05, "more than all cores could do");
    }

    #[test]
    fn page_faults_grow_when_fresh_memory_is_filled() {
        let Some(before) = super::Usage::now() else { return };
        // 64 MiB written: 16,384 pages of 4 KiB, or 32 huge pages where the system uses them for
        // every allocation.
        let filled = std::hint::black_box(vec![7u8; 64 << 20]);
        let after = super::Usage::now().expect("read before");
        assert_eq!(filled.iter().step_by(4096).map(|&b| b as usize).sum::<usize>(), 7 * (16 << 10));
        assert!(after.page_faults - before.page_faults >= 32.0, "{before:?} -> {after:?}");
    }
}
