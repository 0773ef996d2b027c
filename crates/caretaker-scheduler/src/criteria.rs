//! Success criteria: small checks over an execution's outcome, written in the catalog.
//!
//! The old runbook treated every criterion it did not understand as a pass. Here a criterion is
//! parsed when the catalog loads, against the metrics the task's kind declares
//! ([`caretaker_core::task::Task::metric_names`]); anything unknown is a config error. At run time
//! a metric the outcome does not report, or that is not a finite number, fails the criterion.
//!
//! The language, one comparison per criterion:
//!
//! ```text
//! criterion := subject op value
//! subject   := "status" | "duration_seconds" | METRIC   (a metric the kind declares)
//! op        := "==" | "!=" | "<" | "<=" | ">" | ">="
//! value     := number | "true" (1) | "false" (0)        (for status: "succeeded" | "failed")
//! ```
//!
//! For example `exit_code == 0`, `quality_score >= 0.9`, `deployed == true`,
//! `duration_seconds < 600`, `status == succeeded`.

use caretaker_core::task::{TaskOutcome, TaskStatus};
use serde::{Deserialize, Serialize};
use std::fmt;

/// A parsed criterion.
#[derive(Debug, Clone, PartialEq)]
pub struct Criterion {
    /// As written in the catalog.
    pub text: String,
    subject: Subject,
    op: Op,
    value: Value,
}

#[derive(Debug, Clone, PartialEq)]
enum Subject {
    Status,
    DurationSeconds,
    Metric(String),
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Value {
    Number(f64),
    Status(TaskStatus),
}

/// One criterion checked against one outcome.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CriterionResult {
    pub criterion: String,
    pub passed: bool,
    /// What was measured (the metric's value, the status), or why nothing was.
    pub measured: String,
}

impl Op {
    fn parse(text: &str) -> Option<Op> {
        Some(match text {
            "==" => Op::Eq,
            "!=" => Op::Ne,
            "<" => Op::Lt,
            "<=" => Op::Le,
            ">" => Op::Gt,
            ">=" => Op::Ge,
            _ => return None,
        })
    }

    fn holds(self, left: f64, right: f64) -> bool {
        match self {
            Op::Eq => left == right,
            Op::Ne => left != right,
            Op::Lt => left < right,
            Op::Le => left <= right,
            Op::Gt => left > right,
            Op::Ge => left >= right,
        }
    }
}

impl fmt::Display for Criterion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl Criterion {
    /// Parses `text`; `metrics` are the names the task's kind declares. The error is the reason.
    pub fn parse(text: &str, metrics: &[String]) -> Result<Criterion, String> {
        let text = text.trim();
        let op_start = text.find(['=', '!', '<', '>']).ok_or_else(|| {
            format!(
                "{text:?} is not a criterion: write `subject op value`, like `exit_code == 0` (op: == != < <= > >=)"
            )
        })?;
        let op_len = if text[op_start + 1..].starts_with('=') { 2 } else { 1 };
        let (subject, op, value) =
            (text[..op_start].trim(), &text[op_start..op_start + op_len], text[op_start + op_len..].trim());
        let op = Op::parse(op).ok_or_else(|| format!("{text:?}: {op:?} is not an operator (== != < <= > >=)"))?;
        if subject.is_empty() || value.is_empty() || value.contains(char::is_whitespace) {
            return Err(format!("{text:?} is not a criterion: write `subject op value`, like `exit_code == 0`"));
        }
        let (subject, value) = match subject {
            "status" => {
                if !matches!(op, Op::Eq | Op::Ne) {
                    return Err(format!("{text:?}: status can only be compared with == or !="));
                }
                let status = match value {
                    "succeeded" => TaskStatus::Succeeded,
                    "failed" => TaskStatus::Failed,
                    other => {
                        return Err(format!("{text:?}: {other:?} is not a status (succeeded, failed)"));
                    }
                };
                (Subject::Status, Value::Status(status))
            }
            name => {
                let subject = if name == "duration_seconds" {
                    Subject::DurationSeconds
                } else if metrics.iter().any(|m| m == name) {
                    Subject::Metric(name.to_string())
                } else {
                    let known = if metrics.is_empty() {
                        "this task's kind reports no metrics".to_string()
                    } else {
                        format!("this task's kind reports {}", metrics.join(", "))
                    };
                    return Err(format!(
                        "{text:?}: unknown metric {name:?}; {known} (besides status and duration_seconds)"
                    ));
                };
                let number = match value {
                    "true" => 1.0,
                    "false" => 0.0,
                    v => v
                        .parse::<f64>()
                        .ok()
                        .filter(|x| x.is_finite())
                        .ok_or_else(|| format!("{text:?}: {v:?} is not a number"))?,
                };
                (subject, Value::Number(number))
            }
        };
        Ok(Criterion { text: text.to_string(), subject, op, value })
    }

    /// Checks this criterion against an outcome that took `duration_seconds`.
    pub fn check(&self, outcome: &TaskOutcome, duration_seconds: f64) -> CriterionResult {
        let result =
            |passed: bool, measured: String| CriterionResult { criterion: self.text.clone(), passed, measured };
        match (&self.subject, self.value) {
            (Subject::Status, Value::Status(want)) => {
                let measured = serde_json::to_value(outcome.status)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default();
                let equal = outcome.status == want;
                result(if self.op == Op::Eq { equal } else { !equal }, measured)
            }
            (Subject::DurationSeconds, Value::Number(want)) => {
                result(self.op.holds(duration_seconds, want), format!("{duration_seconds:.3}"))
            }
            (Subject::Metric(name), Value::Number(want)) => match outcome.metrics.get(name) {
                Some(v) if v.is_finite() => result(self.op.holds(*v, want), format_number(*v)),
                Some(v) => result(false, format!("{v} (not a finite number)")),
                None => result(false, "not reported".into()),
            },
            _ => unreachable!("parse pairs subjects with their value types"),
        }
    }
}

fn format_number(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 { format!("{}", v as i64) } else { format!("{v}") }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metrics() -> Vec<String> {
        vec!["exit_code".into(), "quality_score".into(), "deployed".into()]
    }

    fn outcome() -> TaskOutcome {
        TaskOutcome::succeeded("ok").with_metric("exit_code", 0.0).with_metric("quality_score", 0.93)
    }

    fn check(text: &str) -> CriterionResult {
        Criterion::parse(text, &metrics()).unwrap().check(&outcome(), 12.5)
    }

    #[test]
    fn comparisons_are_real_checks() {
        assert!(check("exit_code == 0").passed);
        assert!(check("exit_code==0").passed);
        assert!(!check("exit_code != 0").passed);
        assert!(check("quality_score >= 0.9").passed);
        assert!(!check("quality_score > 0.95").passed);
        assert_eq!(check("quality_score > 0.95").measured, "0.93");
        assert!(check("status == succeeded").passed);
        assert!(!check("status == failed").passed);
        assert!(check("status != failed").passed);
        assert!(check("duration_seconds < 60").passed);
        assert!(!check("duration_seconds <= 12").passed);
    }

    #[test]
    fn a_declared_metric_the_outcome_lacks_fails() {
        let r = check("deployed == true");
        assert!(!r.passed);
        assert_eq!(r.measured, "not reported");
        let nan = TaskOutcome::succeeded("ok").with_metric("quality_score", f64::NAN);
        assert!(!Criterion::parse("quality_score != 1", &metrics()).unwrap().check(&nan, 0.0).passed);
    }

    #[test]
    fn unknown_names_and_malformed_text_are_errors_never_passes() {
        let err = Criterion::parse("qualty_score >= 0.9", &metrics()).unwrap_err();
        assert!(err.contains("unknown metric \"qualty_score\""), "{err}");
        assert!(err.contains("exit_code, quality_score, deployed"), "{err}");
        let err = Criterion::parse("latency_ms < 5", &[]).unwrap_err();
        assert!(err.contains("reports no metrics"), "{err}");
        for bad in [
            "looks good",
            "exit_code =< 0",
            "exit_code == zero",
            "status >= succeeded",
            "status == done",
            "== 0",
            "exit_code == 0 1",
        ] {
            assert!(Criterion::parse(bad, &metrics()).is_err(), "{bad} was accepted");
        }
    }
}
