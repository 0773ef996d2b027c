//! `performance_review`: the weekly performance review. It reads the pipeline's run history (the
//! newest `runs` runs), measures each stage (wall time, peak memory, rows, rows per second), flags
//! what got slower, recommends what follows from the figures (each recommendation carries the
//! figure behind it), and, when asked (`apply = true`, or `caretaker review --apply`), applies the
//! one that is safe to apply unattended: compaction of the training data.
//!
//! What it flags:
//!
//! - a **slow stage**: its time in the newest run exceeds `slow_factor` (1.5) times its median
//!   over the runs read (at least 3 runs, and at least `ignore_below_seconds`: a 20 ms stage that
//!   takes 40 ms is noise);
//! - a stage whose **time grows faster than its rows**: between the older and the newer half of
//!   the runs (at least 4), the median time grew by more than `growth_tolerance` (1.25) times the
//!   growth of the median rows, and by more than that factor outright.
//!
//! What it recommends, each with its figure:
//!
//! - **compact the training data** (safe, applied when asked): `caretaker data compact` would
//!   remove at least a quarter of the dataset's files (many small Parquet files);
//! - **fix the source of the quarantined rows**: quarantined rows grew in each of the newest 3 runs
//!   and the newest is at least 1.5 times the first of them (the most broken rule named);
//! - **drop or shrink a candidate**: it was never the best in the runs read (at least 3) and cost
//!   at least `training_share` (0.5) of the training time;
//! - **look at a slow stage** and **at a stage outgrowing its rows**, from the flags;
//! - **look at memory**: the newest run's peak memory exceeds `slow_factor` times its median.
//!
//! The dataset figures (files, bytes, rows, the quality stage's scan time) come from the caretaker
//! binary itself, `caretaker data compact PIPELINE --dry-run --json`, run as a child process (this
//! crate stays free of polars); the apply is the same command without `--dry-run`, which measures
//! again afterwards. A timeout kills the child; compaction is safe to kill at any point. The
//! outcome's metrics hold the figures before and after (`dataset_files_before`,
//! `quality_seconds_after`, `quality_speedup` = before / after, ...), so a success criterion such
//! as `quality_speedup >= 0.9` checks that performance improved or was maintained. When nothing
//! was applied the dataset is unchanged and its after figures are its before figures (the
//! details say `"after": "unchanged"`).

use crate::error::{Error, Result};
use crate::params::{positive, problem, resolve};
use crate::redact;
use caretaker_core::config::{ConfigProblem, PipelineConfig};
use caretaker_core::report::RunReport;
use caretaker_core::task::{BoxFuture, Task, TaskContext, TaskError, TaskOutcome, TaskStatus, parse_params};
use caretaker_core::units::bytes;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The nightly run's stages, whose figures are metrics (`<stage>_seconds`, ...).
pub const STAGES: &[&str] = &["quality", "realise", "retrain", "evaluate", "importance", "deploy", "patterns"];
/// Compaction is recommended when it would remove at least this share of the files.
pub const COMPACTION_MIN_REDUCTION: f64 = 0.25;
/// Runs in a row the quarantine must grow to be called growing.
pub const QUARANTINE_RUNS: usize = 3;

/// Parameters of `performance_review`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PerformanceReviewConfig {
    /// The pipeline file, relative to the catalog's root.
    pub pipeline: PathBuf,
    /// How many of the newest runs to read. Default 8.
    #[serde(default = "default_runs")]
    pub runs: usize,
    /// Apply the safe recommendation (compaction of the training data). Default false.
    #[serde(default)]
    pub apply: bool,
    /// A stage is slow when its newest time exceeds this multiple of its median. Default 1.5.
    #[serde(default = "default_slow_factor")]
    pub slow_factor: f64,
    /// A stage outgrows its rows when its time grew by more than this factor times the rows'
    /// growth. Default 1.25.
    #[serde(default = "default_growth_tolerance")]
    pub growth_tolerance: f64,
    /// Stages faster than this (seconds, newest run) are never flagged. Default 1.
    #[serde(default = "default_ignore_below")]
    pub ignore_below_seconds: f64,
    /// A candidate that never won and cost this share of the training time or more is named.
    /// Default 0.5.
    #[serde(default = "default_training_share")]
    pub training_share: f64,
    /// Measure the dataset (files, bytes, the quality stage's scan time) through
    /// `caretaker data compact --dry-run`. Default true; false reads the history only.
    #[serde(default = "default_true")]
    pub measure_dataset: bool,
}

fn default_runs() -> usize {
    8
}
fn default_slow_factor() -> f64 {
    1.5
}
fn default_growth_tolerance() -> f64 {
    1.25
}
fn default_ignore_below() -> f64 {
    1.0
}
fn default_training_share() -> f64 {
    0.5
}
fn default_true() -> bool {
    true
}

/// A validated `performance_review` task.
#[derive(Debug, Clone)]
pub struct PerformanceReview {
    config: PerformanceReviewConfig,
    pipeline: PathBuf,
}

/// One stage over the runs read.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StageReview {
    pub stage: String,
    /// Runs that have this stage.
    pub runs: usize,
    pub latest_seconds: f64,
    pub median_seconds: f64,
    /// Newest over median.
    pub latest_over_median: f64,
    pub latest_rows: Option<u64>,
    pub rows_per_second: Option<f64>,
    /// The process's peak resident memory when the stage ended, newest run (Linux).
    pub peak_rss_bytes: Option<u64>,
    pub slow: bool,
    /// Median time and median rows, newer half of the runs over older half.
    pub time_growth: Option<f64>,
    pub rows_growth: Option<f64>,
    pub outgrows_rows: bool,
}

/// A candidate's cost and wins over the runs read.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CandidateCost {
    pub name: String,
    pub family: String,
    pub runs: usize,
    /// Runs where it was the best (the candidate the gate weighed).
    pub wins: usize,
    pub train_seconds: f64,
    /// Share of all candidates' training time.
    pub share: f64,
}

/// Something to do, with the figure that calls for it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Recommendation {
    /// `compact_training_data`, `fix_quarantine_source`, `drop_costly_candidate`,
    /// `investigate_slow_stage`, `investigate_scaling`, `investigate_memory`.
    pub kind: &'static str,
    /// What was measured.
    pub figure: String,
    /// What to do about it.
    pub action: String,
    /// Applied by this review when asked (only compaction is).
    pub safe_to_apply: bool,
}

/// What the review read from the history, and what follows from it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Review {
    /// Run ids read, oldest first.
    pub runs: Vec<String>,
    pub stages: Vec<StageReview>,
    pub run_seconds: Option<f64>,
    /// Highest peak memory of each run, oldest first (absent where not recorded).
    pub peak_rss_bytes: Vec<Option<u64>>,
    /// Quarantined rows of each run that reached the quality stage, oldest first.
    pub quarantined_rows: Vec<u64>,
    pub candidates: Vec<CandidateCost>,
    pub recommendations: Vec<Recommendation>,
}

/// What `caretaker data compact --json` says, as far as the review reads it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DatasetReport {
    pub dataset: String,
    pub target_bytes: u64,
    pub plan: DatasetPlan,
    pub before: DatasetFigures,
    pub after: Option<DatasetFigures>,
    #[serde(default)]
    pub interrupted: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DatasetPlan {
    pub files: usize,
    pub bytes: u64,
    pub directories: usize,
    pub small_files: usize,
    pub files_after: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DatasetFigures {
    pub files: usize,
    pub bytes: u64,
    pub rows: u64,
    pub content_hash: String,
    pub quality_seconds: f64,
}

impl PerformanceReviewConfig {
    /// The defaults, for `pipeline`.
    pub fn for_pipeline(pipeline: PathBuf) -> PerformanceReviewConfig {
        PerformanceReviewConfig {
            pipeline,
            runs: default_runs(),
            apply: false,
            slow_factor: default_slow_factor(),
            growth_tolerance: default_growth_tolerance(),
            ignore_below_seconds: default_ignore_below(),
            training_share: default_training_share(),
            measure_dataset: true,
        }
    }
}

impl PerformanceReview {
    pub fn build(params: &toml::Table, root: &Path) -> Result<PerformanceReview, ConfigProblem> {
        PerformanceReview::from_config(parse_params(params)?, root)
    }

    /// Validates `config`; relative paths start at `root`.
    pub fn from_config(config: PerformanceReviewConfig, root: &Path) -> Result<PerformanceReview, ConfigProblem> {
        if config.runs < 2 {
            return Err(problem("runs", format!("must be at least 2 runs to compare, got {}", config.runs)));
        }
        if !(config.slow_factor > 1.0 && config.slow_factor.is_finite()) {
            return Err(problem("slow_factor", format!("must be above 1, got {}", config.slow_factor)));
        }
        if !(config.growth_tolerance >= 1.0 && config.growth_tolerance.is_finite()) {
            return Err(problem("growth_tolerance", format!("must be 1 or more, got {}", config.growth_tolerance)));
        }
        if !(config.ignore_below_seconds >= 0.0 && config.ignore_below_seconds.is_finite()) {
            return Err(problem(
                "ignore_below_seconds",
                format!("must be 0 or more, got {}", config.ignore_below_seconds),
            ));
        }
        positive("training_share", config.training_share)?;
        if config.training_share > 1.0 {
            return Err(problem(
                "training_share",
                format!("must be a share between 0 and 1, got {}", config.training_share),
            ));
        }
        let pipeline = resolve(root, &config.pipeline);
        // A broken pipeline fails the catalog, not the Sunday night.
        PipelineConfig::load(&pipeline).map_err(|e| problem("pipeline", e.to_string()))?;
        Ok(PerformanceReview { config, pipeline })
    }

    /// Reads the runs (oldest first) and, when measured, the dataset; returns what they say.
    pub fn review(&self, runs: &[RunReport], dataset: Option<&DatasetReport>) -> Review {
        let c = &self.config;
        let stages = stage_reviews(runs, c);
        let mut recommendations = Vec::new();
        if let Some(d) = dataset {
            let plan = &d.plan;
            let removed = plan.files.saturating_sub(plan.files_after);
            if plan.files > 0 && removed as f64 >= COMPACTION_MIN_REDUCTION * plan.files as f64 && removed > 0 {
                recommendations.push(Recommendation {
                    kind: "compact_training_data",
                    figure: format!(
                        "{} Parquet files ({} small) of {} on average in {} directories; compaction into files of {} leaves {} (-{:.0}%); the quality stage scans them in {:.2} s",
                        plan.files,
                        plan.small_files,
                        bytes(plan.bytes / plan.files.max(1) as u64),
                        plan.directories,
                        bytes(d.target_bytes),
                        plan.files_after,
                        100.0 * removed as f64 / plan.files as f64,
                        d.before.quality_seconds
                    ),
                    action: "compact the training data: `caretaker data compact PIPELINE` (or run this review with apply)".into(),
                    safe_to_apply: true,
                });
            }
        }
        for s in stages.iter().filter(|s| s.slow) {
            recommendations.push(Recommendation {
                kind: "investigate_slow_stage",
                figure: format!(
                    "{} took {:.2} s in the newest run, {:.1}x its median of {:.2} s over {} runs",
                    s.stage, s.latest_seconds, s.latest_over_median, s.median_seconds, s.runs
                ),
                action: format!(
                    "look at what changed for the {} stage in the newest run (data volume, files, host)",
                    s.stage
                ),
                safe_to_apply: false,
            });
        }
        for s in stages.iter().filter(|s| s.outgrows_rows) {
            recommendations.push(Recommendation {
                kind: "investigate_scaling",
                figure: format!(
                    "{} time grew x{:.2} while its rows grew x{:.2} (median of the newer half of the runs over the older half)",
                    s.stage,
                    s.time_growth.unwrap_or(f64::NAN),
                    s.rows_growth.unwrap_or(f64::NAN)
                ),
                action: format!("the {} stage costs more per row than it did: profile it before the data grows further", s.stage),
                safe_to_apply: false,
            });
        }
        let peaks: Vec<Option<u64>> =
            runs.iter().map(|r| r.stages.iter().filter_map(|s| s.peak_rss_bytes).max()).collect();
        let known: Vec<f64> = peaks.iter().flatten().map(|&p| p as f64).collect();
        if let (true, Some(Some(latest))) = (known.len() >= 3, peaks.last()) {
            let median = median(&known);
            if *latest as f64 > c.slow_factor * median {
                let rose_in = runs
                    .last()
                    .and_then(|r| {
                        let mut prev = 0;
                        r.stages
                            .iter()
                            .filter_map(|s| s.peak_rss_bytes.map(|p| (s.stage.as_str(), p)))
                            .max_by_key(|(_, p)| {
                                let rise = p.saturating_sub(prev);
                                prev = *p;
                                rise
                            })
                            .map(|(stage, _)| stage.to_string())
                    })
                    .unwrap_or_else(|| "?".into());
                recommendations.push(Recommendation {
                    kind: "investigate_memory",
                    figure: format!(
                        "peak memory {} in the newest run, {:.1}x its median of {} (it rose most in the {rose_in} stage)",
                        bytes(*latest),
                        *latest as f64 / median,
                        bytes(median as u64)
                    ),
                    action: "check the data volume and the candidates' sizes before the host runs out of memory".into(),
                    safe_to_apply: false,
                });
            }
        }
        let quarantined: Vec<(u64, u64, &RunReport)> =
            runs.iter().filter_map(|r| r.quality.as_ref().map(|q| (q.quarantined_rows, q.rows, r))).collect();
        if quarantined.len() >= QUARANTINE_RUNS {
            let last = &quarantined[quarantined.len() - QUARANTINE_RUNS..];
            let rising = last.windows(2).all(|w| w[1].0 > w[0].0);
            let (first, newest) = (last[0].0, last[QUARANTINE_RUNS - 1].0);
            if rising && newest as f64 >= 1.5 * first as f64 {
                let counts: Vec<String> = last.iter().map(|(q, _, _)| q.to_string()).collect();
                let shares: Vec<String> = last
                    .iter()
                    .map(|(q, rows, _)| format!("{:.2}%", 100.0 * *q as f64 / (*rows).max(1) as f64))
                    .collect();
                let report = last[QUARANTINE_RUNS - 1].2;
                let top = report.quality.as_ref().and_then(|q| q.rule_counts.iter().max_by_key(|r| r.rows));
                recommendations.push(Recommendation {
                    kind: "fix_quarantine_source",
                    figure: format!(
                        "quarantined rows {} over the newest {QUARANTINE_RUNS} runs ({} of their rows){}",
                        counts.join(" -> "),
                        shares.join(" -> "),
                        top.map(|t| format!("; most broken rule {} ({} rows)", t.rule, t.rows)).unwrap_or_default()
                    ),
                    action: format!(
                        "fix the source of the bad rows: they are listed in {}",
                        report
                            .quality
                            .as_ref()
                            .and_then(|q| q.quarantine_path.clone())
                            .unwrap_or_else(|| format!("the quarantine of run {}", report.run_id))
                    ),
                    safe_to_apply: false,
                });
            }
        }
        let candidates = candidate_costs(runs);
        let trained_runs = runs.iter().filter(|r| r.candidates.iter().any(|c| c.metrics.is_some())).count();
        if trained_runs >= 3 {
            for cost in candidates.iter().filter(|k| k.wins == 0 && k.share >= c.training_share) {
                let total: f64 = candidates.iter().map(|k| k.train_seconds).sum();
                recommendations.push(Recommendation {
                    kind: "drop_costly_candidate",
                    figure: format!(
                        "{} ({}) was never the best in {} runs and took {:.0}% of the training time ({:.1} s of {:.1} s)",
                        cost.name,
                        cost.family,
                        cost.runs,
                        100.0 * cost.share,
                        cost.train_seconds,
                        total
                    ),
                    action: format!(
                        "drop {} from [[candidates]] or make it cheaper (fewer trees, a smaller depth or grid)",
                        cost.name
                    ),
                    safe_to_apply: false,
                });
            }
        }
        Review {
            runs: runs.iter().map(|r| r.run_id.to_string()).collect(),
            run_seconds: runs.last().map(|r| r.stages.iter().map(|s| s.seconds).sum()),
            stages,
            peak_rss_bytes: peaks,
            quarantined_rows: quarantined.iter().map(|(q, _, _)| *q).collect(),
            candidates,
            recommendations,
        }
    }

    async fn run_review(&self, ctx: &TaskContext) -> Result<TaskOutcome> {
        let pipeline = self.pipeline.clone();
        let window = self.config.runs;
        let runs = crate::blocking("reading the run history", move || read_runs(&pipeline, window)).await??;
        let measured = if self.config.measure_dataset { Some(self.caretaker_data_compact(true).await) } else { None };
        let (dataset, dataset_error) = match measured {
            Some(Ok(d)) => (Some(d), None),
            Some(Err(e)) => (None, Some(e.to_string())),
            None => (None, None),
        };
        let review = self.review(&runs, dataset.as_ref());
        let wants_apply = review.recommendations.iter().any(|r| r.safe_to_apply);
        let mut applied: Option<DatasetReport> = None;
        let mut apply_note = None;
        if wants_apply && self.config.apply && !ctx.dry_run {
            applied = Some(self.caretaker_data_compact(false).await?);
        } else if wants_apply {
            apply_note = Some(if ctx.dry_run { "dry run: nothing applied" } else { "apply is off: nothing applied" });
        }
        Ok(outcome(&review, dataset.as_ref(), applied.as_ref(), dataset_error, apply_note))
    }

    /// Runs `caretaker data compact PIPELINE --json` (with `--dry-run` when `dry_run`): the
    /// binary that runs this task, as a child that a timeout kills.
    async fn caretaker_data_compact(&self, dry_run: bool) -> Result<DatasetReport> {
        let exe = std::env::current_exe().map_err(|e| Error::step("cannot find the caretaker binary itself", e))?;
        let mut command = tokio::process::Command::new(&exe);
        command.args(["data", "compact"]).arg(&self.pipeline).arg("--json");
        if dry_run {
            command.arg("--dry-run");
        }
        let shown = format!(
            "caretaker data compact {}{} --json",
            self.pipeline.display(),
            if dry_run { " --dry-run" } else { "" }
        );
        let output = command
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true)
            .output()
            .await
            .map_err(|e| Error::step(format!("{shown}: cannot run {}", exe.display()), e))?;
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr);
            let tail: String =
                stderr.lines().rev().take(5).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join("; ");
            return Err(Error::step(format!("{shown} failed ({})", output.status), tail));
        }
        serde_json::from_slice(&output.stdout)
            .map_err(|e| Error::step(format!("{shown} printed no compaction report"), e))
    }
}

fn read_runs(pipeline: &Path, window: usize) -> Result<Vec<RunReport>> {
    let config = PipelineConfig::load(pipeline).map_err(|e| Error::step("reading the pipeline", e))?;
    let history_of = || format!("reading the run history of {}", config.name);
    let Some(history) =
        caretaker_history::History::existing(&config.output).map_err(|e| Error::step(history_of(), e))?
    else {
        return Ok(Vec::new());
    };
    history.recent_reports(&config.name, None, window).map_err(|e| Error::step(history_of(), e))
}

fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

fn stage_reviews(runs: &[RunReport], c: &PerformanceReviewConfig) -> Vec<StageReview> {
    let mut names: Vec<String> = Vec::new();
    for r in runs.iter().rev() {
        for s in &r.stages {
            if !names.contains(&s.stage) {
                names.push(s.stage.clone());
            }
        }
    }
    names.sort_by_key(|n| STAGES.iter().position(|s| s == n).unwrap_or(STAGES.len()));
    names
        .into_iter()
        .map(|name| {
            let timings: Vec<_> = runs.iter().filter_map(|r| r.stages.iter().find(|s| s.stage == name)).collect();
            let seconds: Vec<f64> = timings.iter().map(|t| t.seconds).collect();
            let latest = timings.last().expect("the stage appears in some run");
            let med = median(&seconds);
            let over = if med > 0.0 { latest.seconds / med } else { f64::NAN };
            let slow = seconds.len() >= 3 && latest.seconds >= c.ignore_below_seconds && over > c.slow_factor;
            let with_rows: Vec<(f64, f64)> =
                timings.iter().filter_map(|t| t.rows.map(|r| (t.seconds, r as f64))).collect();
            let (time_growth, rows_growth) = if with_rows.len() >= 4 {
                let half = with_rows.len() / 2;
                let (older, newer) = (&with_rows[..half], &with_rows[with_rows.len() - half..]);
                let m =
                    |part: &[(f64, f64)], f: fn(&(f64, f64)) -> f64| median(&part.iter().map(f).collect::<Vec<_>>());
                let growth = |f: fn(&(f64, f64)) -> f64| {
                    let old = m(older, f);
                    (old > 0.0).then(|| m(newer, f) / old)
                };
                (growth(|p| p.0), growth(|p| p.1))
            } else {
                (None, None)
            };
            let outgrows_rows = match (time_growth, rows_growth) {
                (Some(t), Some(r)) => {
                    t > c.growth_tolerance * r && t > c.growth_tolerance && latest.seconds >= c.ignore_below_seconds
                }
                _ => false,
            };
            StageReview {
                stage: name,
                runs: seconds.len(),
                latest_seconds: latest.seconds,
                median_seconds: med,
                latest_over_median: over,
                latest_rows: latest.rows,
                rows_per_second: latest.rows.filter(|_| latest.seconds > 0.0).map(|r| r as f64 / latest.seconds),
                peak_rss_bytes: latest.peak_rss_bytes,
                slow,
                time_growth,
                rows_growth,
                outgrows_rows,
            }
        })
        .collect()
}

fn candidate_costs(runs: &[RunReport]) -> Vec<CandidateCost> {
    let mut costs: BTreeMap<String, CandidateCost> = BTreeMap::new();
    for r in runs {
        for c in &r.candidates {
            let cost = costs.entry(c.name.clone()).or_insert_with(|| CandidateCost {
                name: c.name.clone(),
                family: c.family.clone(),
                runs: 0,
                wins: 0,
                train_seconds: 0.0,
                share: 0.0,
            });
            cost.runs += 1;
            cost.train_seconds += c.train_seconds;
            if r.gate.candidate.as_deref() == Some(c.name.as_str()) {
                cost.wins += 1;
            }
        }
    }
    let total: f64 = costs.values().map(|c| c.train_seconds).sum();
    let mut out: Vec<CandidateCost> = costs.into_values().collect();
    for c in &mut out {
        c.share = if total > 0.0 { c.train_seconds / total } else { 0.0 };
    }
    out.sort_by(|a, b| b.train_seconds.total_cmp(&a.train_seconds));
    out
}

fn metric_names() -> Vec<String> {
    let mut names: Vec<String> = [
        "runs",
        "stages_slow",
        "stages_outgrowing_rows",
        "recommendations",
        "applied",
        "run_seconds",
        "peak_rss_bytes",
        "quarantined_rows",
        "dataset_files_before",
        "dataset_bytes_before",
        "quality_seconds_before",
        "dataset_files_after",
        "dataset_bytes_after",
        "quality_seconds_after",
        "quality_speedup",
    ]
    .map(String::from)
    .to_vec();
    for stage in STAGES {
        for suffix in ["seconds", "rows_per_second", "peak_rss_bytes"] {
            names.push(format!("{stage}_{suffix}"));
        }
    }
    names
}

/// The outcome: the review's figures as metrics, before and after an apply.
fn outcome(
    review: &Review,
    dataset: Option<&DatasetReport>,
    applied: Option<&DatasetReport>,
    dataset_error: Option<String>,
    apply_note: Option<&str>,
) -> TaskOutcome {
    let mut metrics = BTreeMap::new();
    let mut put = |name: &str, value: f64| {
        if value.is_finite() {
            metrics.insert(name.to_string(), value);
        }
    };
    put("runs", review.runs.len() as f64);
    put("stages_slow", review.stages.iter().filter(|s| s.slow).count() as f64);
    put("stages_outgrowing_rows", review.stages.iter().filter(|s| s.outgrows_rows).count() as f64);
    put("recommendations", review.recommendations.len() as f64);
    put("applied", if applied.is_some() { 1.0 } else { 0.0 });
    if let Some(s) = review.run_seconds {
        put("run_seconds", s);
    }
    if let Some(Some(p)) = review.peak_rss_bytes.last() {
        put("peak_rss_bytes", *p as f64);
    }
    if let Some(q) = review.quarantined_rows.last() {
        put("quarantined_rows", *q as f64);
    }
    for s in review.stages.iter().filter(|s| STAGES.contains(&s.stage.as_str())) {
        put(&format!("{}_seconds", s.stage), s.latest_seconds);
        if let Some(r) = s.rows_per_second {
            put(&format!("{}_rows_per_second", s.stage), r);
        }
        if let Some(p) = s.peak_rss_bytes {
            put(&format!("{}_peak_rss_bytes", s.stage), p as f64);
        }
    }
    // Before: the apply's own measurement when there was one (the same process measured both).
    let (before, after) = match (applied, dataset) {
        (Some(a), _) => (Some(&a.before), a.after.as_ref().or(Some(&a.before))),
        (None, Some(d)) => (Some(&d.before), Some(&d.before)),
        (None, None) => (None, None),
    };
    if let (Some(b), Some(a)) = (before, after) {
        put("dataset_files_before", b.files as f64);
        put("dataset_bytes_before", b.bytes as f64);
        put("quality_seconds_before", b.quality_seconds);
        put("dataset_files_after", a.files as f64);
        put("dataset_bytes_after", a.bytes as f64);
        put("quality_seconds_after", a.quality_seconds);
        if a.quality_seconds > 0.0 {
            put("quality_speedup", b.quality_seconds / a.quality_seconds);
        }
    }

    let slow: Vec<String> = review
        .stages
        .iter()
        .filter(|s| s.slow)
        .map(|s| format!("{} {:.1}x its median", s.stage, s.latest_over_median))
        .collect();
    let mut summary = if review.runs.is_empty() {
        "no runs in the history yet: nothing to review".to_string()
    } else {
        format!(
            "reviewed {} run{}: {} slow stage{}{}, {} outgrowing its rows; {} recommendation{}",
            review.runs.len(),
            if review.runs.len() == 1 { "" } else { "s" },
            slow.len(),
            if slow.len() == 1 { "" } else { "s" },
            if slow.is_empty() { String::new() } else { format!(" ({})", slow.join(", ")) },
            review.stages.iter().filter(|s| s.outgrows_rows).count(),
            review.recommendations.len(),
            if review.recommendations.len() == 1 { "" } else { "s" },
        )
    };
    if let (Some(a), Some(b)) = (applied.and_then(|a| a.after.as_ref()), applied.map(|a| &a.before)) {
        summary.push_str(&format!(
            "; applied compaction: {} -> {} files, {} -> {}, quality scan {:.2} s -> {:.2} s",
            b.files,
            a.files,
            bytes(b.bytes),
            bytes(a.bytes),
            b.quality_seconds,
            a.quality_seconds
        ));
    } else if let Some(note) = apply_note {
        summary.push_str(&format!("; {note}"));
    }
    if let Some(e) = &dataset_error {
        summary.push_str(&format!("; the dataset was not measured: {e}"));
    }
    let details = serde_json::json!({
        "review": review,
        "dataset": dataset,
        "applied": applied,
        "after": if applied.is_some() { "measured after the compaction" } else { "unchanged" },
        "dataset_error": dataset_error,
    });
    TaskOutcome { status: TaskStatus::Succeeded, summary, metrics, details }
}

impl Task for PerformanceReview {
    fn kind(&self) -> &'static str {
        "performance_review"
    }

    fn metric_names(&self) -> Vec<String> {
        metric_names()
    }

    fn run<'a>(&'a self, ctx: &'a TaskContext) -> BoxFuture<'a, Result<TaskOutcome, TaskError>> {
        Box::pin(async move {
            let outcome =
                self.run_review(ctx).await.unwrap_or_else(|e| TaskOutcome::failed(redact::redact(&e.to_string())));
            Ok(redact::scrub_outcome(outcome, &[]))
        })
    }
}

#[cfg(test)]
mod tests;
