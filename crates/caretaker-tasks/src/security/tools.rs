//! The external scanners, run when installed: `cargo audit`, `pip-audit`, `trivy`. What they say
//! is recorded as they say it (exit code, their count of findings when their JSON reads, the
//! tail of their error output otherwise); they never decide the scan's outcome.

use crate::redact;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

#[derive(Debug, Serialize)]
pub struct ToolRun {
    pub tool: &'static str,
    pub installed: bool,
    pub command: Option<String>,
    pub exit_code: Option<i32>,
    pub seconds: Option<f64>,
    /// Their count of vulnerabilities, when their JSON output reads.
    pub vulnerabilities: Option<u64>,
    /// A line on what happened: their error, a timeout, or "not installed".
    pub note: String,
}

/// A program on the PATH.
fn find(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|dir| dir.join(program)).find(|p| p.is_file())
}

pub async fn run_all(root: &Path, lockfiles: &[PathBuf], timeout: Duration) -> Vec<ToolRun> {
    let mut runs = Vec::new();
    let named = |name: &str| lockfiles.iter().find(|p| p.file_name().is_some_and(|n| n == name)).cloned();
    let requirements = lockfiles.iter().find(|p| p.to_string_lossy().ends_with(".txt")).cloned();

    runs.push(match named("Cargo.lock") {
        Some(lock) => {
            run(
                "cargo audit",
                "cargo-audit",
                &["audit".into(), "--json".into(), "--no-fetch".into(), "--file".into(), lock.display().to_string()],
                root,
                timeout,
                |json| json.pointer("/vulnerabilities/count").and_then(|c| c.as_u64()),
            )
            .await
        }
        None => skipped("cargo audit", "cargo-audit", "no Cargo.lock scanned"),
    });
    runs.push(match requirements {
        Some(req) => {
            run(
                "pip-audit",
                "pip-audit",
                &[
                    "-r".into(),
                    req.display().to_string(),
                    "-f".into(),
                    "json".into(),
                    "--progress-spinner".into(),
                    "off".into(),
                ],
                root,
                timeout,
                |json| {
                    let deps = json.get("dependencies").or(Some(json))?.as_array()?;
                    Some(
                        deps.iter()
                            .map(|d| d.get("vulns").and_then(|v| v.as_array()).map_or(0, |v| v.len() as u64))
                            .sum(),
                    )
                },
            )
            .await
        }
        None => skipped("pip-audit", "pip-audit", "no requirements file scanned"),
    });
    runs.push(
        run(
            "trivy",
            "trivy",
            &[
                "fs".into(),
                "--offline-scan".into(),
                "--skip-db-update".into(),
                "--scanners".into(),
                "vuln".into(),
                "--format".into(),
                "json".into(),
                root.display().to_string(),
            ],
            root,
            timeout,
            |json| {
                let results = json.get("Results")?.as_array()?;
                Some(
                    results
                        .iter()
                        .map(|r| r.get("Vulnerabilities").and_then(|v| v.as_array()).map_or(0, |v| v.len() as u64))
                        .sum(),
                )
            },
        )
        .await,
    );
    runs
}

fn skipped(tool: &'static str, program: &str, why: &str) -> ToolRun {
    ToolRun {
        tool,
        installed: find(program).is_some(),
        command: None,
        exit_code: None,
        seconds: None,
        vulnerabilities: None,
        note: format!("not run: {why}"),
    }
}

async fn run(
    tool: &'static str,
    program: &str,
    args: &[String],
    dir: &Path,
    timeout: Duration,
    count: impl Fn(&serde_json::Value) -> Option<u64>,
) -> ToolRun {
    let Some(path) = find(program) else {
        return ToolRun {
            tool,
            installed: false,
            command: None,
            exit_code: None,
            seconds: None,
            vulnerabilities: None,
            note: "not installed".into(),
        };
    };
    let command = format!("{} {}", path.display(), args.join(" "));
    let started = Instant::now();
    let child = tokio::process::Command::new(&path)
        .args(args)
        .current_dir(dir)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output();
    let output = match tokio::time::timeout(timeout, child).await {
        Ok(Ok(o)) => o,
        Ok(Err(e)) => {
            return ToolRun {
                tool,
                installed: true,
                command: Some(command),
                exit_code: None,
                seconds: None,
                vulnerabilities: None,
                note: format!("cannot run: {e}"),
            };
        }
        Err(_) => {
            return ToolRun {
                tool,
                installed: true,
                command: Some(command),
                exit_code: None,
                seconds: Some(started.elapsed().as_secs_f64()),
                vulnerabilities: None,
                note: format!("stopped after {} s", timeout.as_secs_f64()),
            };
        }
    };
    let vulnerabilities = serde_json::from_slice::<serde_json::Value>(&output.stdout).ok().as_ref().and_then(&count);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let tail: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).rev().take(3).collect();
    let note = match vulnerabilities {
        Some(n) => format!("reported {n} vulnerabilities"),
        None if tail.is_empty() => "its output did not read as JSON".into(),
        None => redact::redact(&tail.into_iter().rev().collect::<Vec<_>>().join(" / ")),
    };
    ToolRun {
        tool,
        installed: true,
        command: Some(command),
        exit_code: output.status.code(),
        seconds: Some(started.elapsed().as_secs_f64()),
        vulnerabilities,
        note,
    }
}
