//! `caretaker history`: what the executions of the last N days say.
//!
//! Success rate counts executions that ran (succeeded, or failed, timed out or cancelled);
//! skipped ones did not run and are counted apart. A task is *slow* when an execution took more
//! than 1.5 times its estimate. Recommendations follow the runbook: review failed tasks, optimise
//! slow ones, review the procedures of tasks below 90% success.

use crate::history::{Execution, ExecutionStatus};
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// An execution slower than this many times its estimate is slow.
pub const SLOW_FACTOR: f64 = 1.5;
/// Tasks below this success rate get a "review the procedure" recommendation.
pub const SUCCESS_TARGET: f64 = 0.9;

#[derive(Debug, Clone, Serialize)]
pub struct HistoryReport {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub days: u32,
    pub history: String,
    pub executions: usize,
    pub by_status: BTreeMap<String, usize>,
    /// Over executions that ran; `None` when none did.
    pub success_rate: Option<f64>,
    pub tasks: Vec<TaskStats>,
    pub failed_tasks: Vec<FailedTask>,
    pub slow_tasks: Vec<SlowTask>,
    /// Executions still marked running: in progress, or their scheduler died mid-run.
    pub unfinished: Vec<String>,
    pub recommendations: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TaskStats {
    pub task_id: String,
    pub task_name: String,
    pub executions: usize,
    pub succeeded: usize,
    pub failed: usize,
    pub skipped: usize,
    pub success_rate: Option<f64>,
    pub mean_seconds: Option<f64>,
    pub estimated_seconds: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct FailedTask {
    pub task_id: String,
    pub failures: usize,
    pub last_execution_id: String,
    pub last_failed_at: DateTime<Utc>,
    pub last_status: String,
    pub last_summary: String,
    /// The last failure's rollback: `succeeded`, `failed`, `timed_out`, or `none`.
    pub last_rollback: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct SlowTask {
    pub task_id: String,
    pub slow_executions: usize,
    pub timed_executions: usize,
    pub estimated_seconds: f64,
    pub mean_seconds: f64,
    pub max_seconds: f64,
    /// Mean duration over the estimate.
    pub mean_ratio: f64,
}

/// Builds the report of `executions` (those started in `[from, to)`).
pub fn build(
    executions: &[Execution],
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    days: u32,
    history: String,
) -> HistoryReport {
    let mut by_status: BTreeMap<String, usize> = BTreeMap::new();
    let mut per_task: BTreeMap<&str, Vec<&Execution>> = BTreeMap::new();
    for e in executions {
        *by_status.entry(e.status.name().into()).or_default() += 1;
        per_task.entry(&e.task_id).or_default().push(e);
    }
    let ran = |list: &[&Execution]| {
        list.iter().filter(|e| e.status == ExecutionStatus::Succeeded || e.status.is_failure()).count()
    };
    let all: Vec<&Execution> = executions.iter().collect();
    let succeeded_all = all.iter().filter(|e| e.status == ExecutionStatus::Succeeded).count();
    let success_rate = (ran(&all) > 0).then(|| succeeded_all as f64 / ran(&all) as f64);

    let mut tasks = Vec::new();
    let mut failed_tasks = Vec::new();
    let mut slow_tasks = Vec::new();
    for (task_id, list) in &per_task {
        let succeeded = list.iter().filter(|e| e.status == ExecutionStatus::Succeeded).count();
        let failed: Vec<&&Execution> = list.iter().filter(|e| e.status.is_failure()).collect();
        let skipped = list.iter().filter(|e| e.status == ExecutionStatus::Skipped).count();
        let timed: Vec<f64> = list
            .iter()
            .filter(|e| e.status == ExecutionStatus::Succeeded || e.status.is_failure())
            .filter_map(|e| e.duration_seconds)
            .collect();
        let mean = (!timed.is_empty()).then(|| timed.iter().sum::<f64>() / timed.len() as f64);
        let estimated = list.last().map(|e| e.estimated_seconds).unwrap_or(0.0);
        let runs = ran(list);
        tasks.push(TaskStats {
            task_id: task_id.to_string(),
            task_name: list.last().map(|e| e.task_name.clone()).unwrap_or_default(),
            executions: list.len(),
            succeeded,
            failed: failed.len(),
            skipped,
            success_rate: (runs > 0).then(|| succeeded as f64 / runs as f64),
            mean_seconds: mean,
            estimated_seconds: estimated,
        });
        if let Some(last) = failed.last() {
            failed_tasks.push(FailedTask {
                task_id: task_id.to_string(),
                failures: failed.len(),
                last_execution_id: last.id.clone(),
                last_failed_at: last.started_at,
                last_status: last.status.name().into(),
                last_summary: last.summary.clone(),
                last_rollback: last.rollback.as_ref().map(|r| r.status.clone()).unwrap_or_else(|| "none".into()),
            });
        }
        let slow = timed.iter().filter(|s| estimated > 0.0 && **s > SLOW_FACTOR * estimated).count();
        if slow > 0 {
            let mean = mean.unwrap_or(0.0);
            slow_tasks.push(SlowTask {
                task_id: task_id.to_string(),
                slow_executions: slow,
                timed_executions: timed.len(),
                estimated_seconds: estimated,
                mean_seconds: mean,
                max_seconds: timed.iter().cloned().fold(0.0, f64::max),
                mean_ratio: mean / estimated,
            });
        }
    }
    let unfinished: Vec<String> = executions
        .iter()
        .filter(|e| e.status == ExecutionStatus::Running)
        .map(|e| format!("{} ({}, started {})", e.id, e.task_id, e.started_at.format("%Y-%m-%d %H:%M:%S UTC")))
        .collect();

    let mut recommendations = Vec::new();
    if !failed_tasks.is_empty() {
        recommendations.push(format!(
            "Review the failed tasks: {}.",
            failed_tasks
                .iter()
                .map(|f| format!("{} ({} failure(s), last: {})", f.task_id, f.failures, f.last_summary))
                .collect::<Vec<_>>()
                .join("; ")
        ));
    }
    if !slow_tasks.is_empty() {
        recommendations.push(format!(
            "Optimise the slow tasks (or correct their estimates): {}.",
            slow_tasks
                .iter()
                .map(|s| format!(
                    "{} took {:.1}x its {} estimate on average, {} of {} run(s) over {SLOW_FACTOR}x",
                    s.task_id,
                    s.mean_ratio,
                    humantime::format_duration(std::time::Duration::from_secs(s.estimated_seconds.round() as u64)),
                    s.slow_executions,
                    s.timed_executions
                ))
                .collect::<Vec<_>>()
                .join("; ")
        ));
    }
    let below: Vec<String> = tasks
        .iter()
        .filter_map(|t| {
            t.success_rate
                .filter(|r| *r < SUCCESS_TARGET)
                .map(|r| format!("{} {:.0}% ({} of {})", t.task_id, r * 100.0, t.succeeded, t.succeeded + t.failed))
        })
        .collect();
    if !below.is_empty() {
        recommendations.push(format!(
            "Review the procedures of the tasks below {:.0}% success: {}.",
            SUCCESS_TARGET * 100.0,
            below.join(", ")
        ));
    }
    if !unfinished.is_empty() {
        recommendations.push(format!(
            "{} execution(s) have no result yet: still running, or their scheduler stopped mid-run; check them.",
            unfinished.len()
        ));
    }
    if recommendations.is_empty() && !executions.is_empty() {
        recommendations.push(format!(
            "No action needed: no failures, no run over {SLOW_FACTOR}x its estimate, every task at or above {:.0}% success.",
            SUCCESS_TARGET * 100.0
        ));
    }
    HistoryReport {
        from,
        to,
        days,
        history,
        executions: executions.len(),
        by_status,
        success_rate,
        tasks,
        failed_tasks,
        slow_tasks,
        unfinished,
        recommendations,
    }
}

/// The report as a person reads it.
pub fn render(r: &HistoryReport) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "history   {} .. {} UTC ({} days), {}",
        r.from.format("%Y-%m-%d %H:%M"),
        r.to.format("%Y-%m-%d %H:%M"),
        r.days,
        r.history
    );
    let statuses = r.by_status.iter().map(|(k, v)| format!("{v} {k}")).collect::<Vec<_>>().join(", ");
    let _ = writeln!(
        out,
        "executions {}{}; success rate {}",
        r.executions,
        if statuses.is_empty() { String::new() } else { format!(" ({statuses})") },
        r.success_rate.map(|s| format!("{:.1}%", s * 100.0)).unwrap_or_else(|| "n/a (nothing ran)".into())
    );
    if !r.tasks.is_empty() {
        let _ = writeln!(
            out,
            "{:<28} {:>5} {:>5} {:>5} {:>5} {:>8} {:>10} {:>10}",
            "task", "runs", "ok", "fail", "skip", "success", "mean", "estimate"
        );
        for t in &r.tasks {
            let _ = writeln!(
                out,
                "{:<28} {:>5} {:>5} {:>5} {:>5} {:>8} {:>10} {:>10}",
                t.task_id,
                t.executions,
                t.succeeded,
                t.failed,
                t.skipped,
                t.success_rate.map(|s| format!("{:.0}%", s * 100.0)).unwrap_or_else(|| "-".into()),
                t.mean_seconds.map(|s| format!("{s:.1}s")).unwrap_or_else(|| "-".into()),
                format!("{:.0}s", t.estimated_seconds)
            );
        }
    }
    if !r.failed_tasks.is_empty() {
        let _ = writeln!(out, "failed tasks");
        for f in &r.failed_tasks {
            let _ = writeln!(
                out,
                "  {:<26} {} failure(s); last {} at {} ({}), rollback {}: {}",
                f.task_id,
                f.failures,
                f.last_status,
                f.last_failed_at.format("%Y-%m-%d %H:%M UTC"),
                f.last_execution_id,
                f.last_rollback,
                f.last_summary
            );
        }
    }
    if !r.slow_tasks.is_empty() {
        let _ = writeln!(out, "slower than {SLOW_FACTOR}x their estimate");
        for s in &r.slow_tasks {
            let _ = writeln!(
                out,
                "  {:<26} {} of {} run(s); mean {:.1}s, max {:.1}s, estimate {:.0}s ({:.1}x)",
                s.task_id,
                s.slow_executions,
                s.timed_executions,
                s.mean_seconds,
                s.max_seconds,
                s.estimated_seconds,
                s.mean_ratio
            );
        }
    }
    for u in &r.unfinished {
        let _ = writeln!(out, "unfinished  {u}");
    }
    let _ = writeln!(out, "recommendations");
    if r.recommendations.is_empty() {
        let _ = writeln!(out, "  none: no executions in the window");
    }
    for rec in &r.recommendations {
        let _ = writeln!(out, "  - {rec}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{RollbackRecord, Trigger};
    use chrono::TimeZone;

    fn e(task: &str, status: ExecutionStatus, seconds: f64, estimate: f64) -> Execution {
        Execution {
            id: format!("{task}-{seconds}"),
            task_id: task.into(),
            task_name: task.into(),
            trigger: Trigger::Schedule,
            scheduled_for: None,
            started_at: Utc.with_ymd_and_hms(2026, 11, 27, 3, 0, 0).single().unwrap(),
            finished_at: None,
            status,
            summary: format!("{task} {}", status.name()),
            attempts: Vec::new(),
            metrics: BTreeMap::new(),
            criteria: Vec::new(),
            rollback: None,
            estimated_seconds: estimate,
            duration_seconds: Some(seconds),
            scheduler: "t".into(),
            notes: Vec::new(),
            details: serde_json::Value::Null,
        }
    }

    #[test]
    fn rates_failures_slow_tasks_and_the_three_recommendations() {
        use ExecutionStatus::*;
        let mut failed = e("backup", Failed, 10.0, 60.0);
        failed.rollback = Some(RollbackRecord {
            argv: vec!["restore".into()],
            status: "succeeded".into(),
            exit_code: Some(0),
            summary: "exited with code 0".into(),
            stdout: String::new(),
            stderr: String::new(),
            seconds: 1.0,
        });
        let list = vec![
            e("backup", Succeeded, 50.0, 60.0),
            failed,
            e("health", Succeeded, 100.0, 60.0),
            e("health", Succeeded, 30.0, 60.0),
            e("health", Skipped, 0.0, 60.0),
            e("vacuum", Succeeded, 10.0, 60.0),
        ];
        let t = Utc.with_ymd_and_hms(2026, 11, 28, 0, 0, 0).single().unwrap();
        let r = build(&list, t - chrono::Duration::days(7), t, 7, "SQLite x".into());
        assert_eq!(r.executions, 6);
        assert_eq!(r.success_rate, Some(4.0 / 5.0));
        assert_eq!(r.by_status["skipped"], 1);
        assert_eq!(r.failed_tasks.len(), 1);
        assert_eq!(r.failed_tasks[0].last_rollback, "succeeded");
        assert_eq!(r.slow_tasks.len(), 1);
        assert_eq!(r.slow_tasks[0].task_id, "health");
        assert_eq!(r.slow_tasks[0].slow_executions, 1);
        assert_eq!(r.recommendations.len(), 3, "{:?}", r.recommendations);
        assert!(r.recommendations[0].starts_with("Review the failed tasks: backup (1 failure(s)"));
        assert!(r.recommendations[1].starts_with("Optimise the slow tasks"));
        assert!(r.recommendations[2].contains("below 90% success: backup 50% (1 of 2)"), "{}", r.recommendations[2]);
        let text = render(&r);
        assert!(text.contains("success rate 80.0%"), "{text}");
    }

    #[test]
    fn a_clean_week_says_no_action_and_an_empty_one_says_nothing_ran() {
        let t = Utc.with_ymd_and_hms(2026, 11, 28, 0, 0, 0).single().unwrap();
        let r = build(&[e("a", ExecutionStatus::Succeeded, 1.0, 60.0)], t, t, 7, "x".into());
        assert_eq!(r.recommendations.len(), 1);
        assert!(r.recommendations[0].starts_with("No action needed"));
        let r = build(&[], t, t, 7, "x".into());
        assert_eq!(r.success_rate, None);
        assert!(render(&r).contains("n/a (nothing ran)"));
    }
}
