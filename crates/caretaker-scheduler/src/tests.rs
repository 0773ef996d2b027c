//! The execution path and the daemon, end to end, with real `command` tasks, against both
//! history stores (PostgreSQL when a server answers).

use crate::catalog::Catalog;
use crate::clock::SchedulerClock;
use crate::daemon::{self, DaemonOptions};
use crate::history::tests::{Fresh, targets};
use crate::history::{ExecutionStatus, HistoryStore, Trigger};
use crate::kinds::{BuiltinKinds, KindRegistry};
use crate::redact::Redactor;
use crate::run::{Lifecycle, RunRequest, RunResult, Runner};
use caretaker_core::Clock;
use std::io::{BufRead, BufReader, Read, Write};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

struct Setup {
    runner: Arc<Runner>,
    lifecycle: watch::Sender<Lifecycle>,
    dir: std::path::PathBuf,
    what: String,
}

async fn setup(fresh: &Fresh, catalog: &str) -> Setup {
    setup_with(fresh, catalog, Vec::new()).await
}

async fn setup_with(fresh: &Fresh, catalog: &str, more: Vec<Box<dyn caretaker_core::task::TaskKinds>>) -> Setup {
    let dir = fresh.state.path().to_path_buf();
    let mut providers: Vec<Box<dyn caretaker_core::task::TaskKinds>> =
        vec![Box::new(BuiltinKinds { caretaker_exe: "caretaker".into() })];
    providers.extend(more);
    let kinds = KindRegistry::new(providers);
    let text = format!("[scheduler]\nstate = \"state\"\nshutdown_grace = \"20s\"\n{catalog}");
    let catalog = Catalog::from_toml_str(&text, &dir.join("maintenance.toml"), &kinds).unwrap();
    let history = HistoryStore::open(&fresh.target, &catalog.state_dir).await.unwrap();
    let what = history.describe();
    let (tx, rx) = watch::channel(Lifecycle::Running);
    let runner = Runner::new(
        Arc::new(catalog),
        Arc::new(history),
        SchedulerClock::new(Clock::System),
        Redactor::new(["postgres://app:Sup3rS3cret@db/x"]),
        rx,
    );
    Setup { runner: Arc::new(runner), lifecycle: tx, dir, what }
}

fn req(id: &str) -> RunRequest {
    RunRequest {
        task_id: id.into(),
        trigger: Trigger::Manual,
        scheduled_for: None,
        dry_run: false,
        maintenance_wait: Duration::ZERO,
        for_critical: false,
    }
}

async fn run(s: &Setup, id: &str) -> crate::history::Execution {
    match s.runner.execute(req(id)).await.unwrap() {
        RunResult::Recorded(e) => *e,
        RunResult::ClaimedElsewhere => panic!("a manual run was claimed elsewhere"),
    }
}

fn task(id: &str, argv: &str, extra: &str) -> String {
    task_with(id, argv, extra, "")
}

fn task_with(id: &str, argv: &str, extra: &str, params: &str) -> String {
    format!(
        "[[tasks]]\nid = \"{id}\"\nkind = \"command\"\nestimated_duration = \"1m\"\n{extra}\n[tasks.params]\nargv = {argv}\n{params}\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_criteria_failure_rollback_and_retries_are_recorded() {
    for fresh in targets().await {
        let s = setup(
            &fresh,
            &format!(
                "{}{}{}",
                task_with(
                    "measure",
                    r#"["sh", "-c", "echo 'METRICS: {\"rows_fixed\": 12, \"lag_s\": 0.25}'"]"#,
                    "success_criteria = [\"exit_code == 0\", \"rows_fixed >= 10\"]",
                    "metrics = [\"rows_fixed\", \"lag_s\"]"
                ),
                task_with(
                    "strict",
                    r#"["sh", "-c", "echo 'METRICS: {\"rows_fixed\": 3}'"]"#,
                    "success_criteria = [\"rows_fixed >= 10\"]\nrollback = [\"sh\", \"-c\", \"echo restored {task_id} > rolled-back.txt; echo password=$(echo aHVudGVyMnNlY3JldA== | base64 -d)\"]",
                    "metrics = [\"rows_fixed\"]"
                ),
                task(
                    "flaky",
                    r#"["sh", "-c", "n=$(cat tries 2>/dev/null || echo 0); echo $((n+1)) > tries; test $n -ge 2"]"#,
                    "retries = 2\nretry_backoff = \"10ms\""
                ),
            ),
        )
        .await;
        let what = &s.what;

        let e = run(&s, "measure").await;
        assert_eq!(e.status, ExecutionStatus::Succeeded, "{what}: {e:?}");
        assert_eq!(e.metrics["rows_fixed"], 12.0);
        assert_eq!(e.metrics["lag_s"], 0.25);
        assert!(e.criteria.iter().all(|c| c.passed), "{:?}", e.criteria);

        let e = run(&s, "strict").await;
        assert_eq!(e.status, ExecutionStatus::Failed, "{what}");
        assert!(e.summary.starts_with("success criteria not met: `rows_fixed >= 10` (measured 3)"), "{}", e.summary);
        let rollback = e.rollback.as_ref().expect("the rollback ran");
        assert_eq!(rollback.status, "succeeded");
        assert_eq!(std::fs::read_to_string(s.dir.join("rolled-back.txt")).unwrap(), "restored strict\n");
        assert_eq!(rollback.stdout, "password=***\n", "the rollback's output is redacted");

        let e = run(&s, "flaky").await;
        assert_eq!(e.status, ExecutionStatus::Succeeded, "{what}: {e:?}");
        assert_eq!(e.attempts.len(), 3);
        assert_eq!(e.attempts[0].status, ExecutionStatus::Failed);
        assert!(e.summary.ends_with("(after 3 attempts)"), "{}", e.summary);

        // What the history holds is what was returned.
        let all = s.runner.history.since(chrono::Utc::now() - chrono::Duration::hours(1)).await.unwrap();
        assert_eq!(
            all.iter().map(|e| e.task_id.as_str()).collect::<Vec<_>>(),
            vec!["measure", "strict", "flaky"],
            "{what}"
        );
        assert_eq!(all[1].rollback.as_ref().map(|r| r.status.as_str()), Some("succeeded"));
        assert!(all.iter().all(|e| e.finished_at.is_some() && e.status != ExecutionStatus::Running));
        assert!(!serde_json::to_string(&all).unwrap().contains("hunter2secret"), "{what}: a password was recorded");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_prerequisite_skips_the_task_with_the_reason() {
    for fresh in targets().await {
        let s = setup(
            &fresh,
            &format!(
                "{}{}{}{}",
                task("backup", r#"["sh", "-c", "echo disk full >&2; exit 4"]"#, ""),
                task("update", r#"["touch", "updated"]"#, "prerequisites = [\"backup\"]"),
                task("prep", r#"["sh", "-c", "echo x >> prepared"]"#, ""),
                task("use", r#"["true"]"#, "prerequisites = [\"prep\"]\nprerequisites_fresh_for = \"1h\""),
            ),
        )
        .await;
        let e = run(&s, "update").await;
        assert_eq!(e.status, ExecutionStatus::Skipped, "{}", s.what);
        assert!(e.summary.starts_with("not run: prerequisite backup failed"), "{}", e.summary);
        assert!(e.summary.contains("disk full"), "{}", e.summary);
        assert!(!s.dir.join("updated").exists(), "the task ran although its prerequisite failed");
        // The prerequisite's own execution is recorded too.
        let all = s.runner.history.since(chrono::Utc::now() - chrono::Duration::hours(1)).await.unwrap();
        let backup = all.iter().find(|e| e.task_id == "backup").unwrap();
        assert_eq!((backup.trigger, backup.status), (Trigger::Prerequisite, ExecutionStatus::Failed));

        // A prerequisite that succeeded recently enough is not run again.
        assert_eq!(run(&s, "use").await.status, ExecutionStatus::Succeeded);
        let second = run(&s, "use").await;
        assert_eq!(second.status, ExecutionStatus::Succeeded);
        assert_eq!(std::fs::read_to_string(s.dir.join("prepared")).unwrap().lines().count(), 1, "prep ran twice");
        assert!(
            second.notes.iter().any(|n| n.starts_with("prerequisite prep: satisfied by execution")),
            "{:?}",
            second.notes
        );
    }
}

/// An execution of `id` claimed as running by a runner that was then killed (SIGKILL, the OOM
/// killer): nothing more happened to it.
async fn claimed_by_a_dead_runner(s: &Setup, id: &str) -> crate::history::Execution {
    let spec = s.runner.spec(id).unwrap();
    let mut killed = s.runner.new_execution(spec, &req(id));
    killed.scheduler = "host-a pid 4711".into();
    assert!(s.runner.history.claim(&killed).await.unwrap());
    killed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runner_that_died_mid_run_leaves_no_running_execution_and_no_maintenance_behind() {
    for fresh in targets().await {
        let s = setup(&fresh, &task("upgrade", r#"["true"]"#, "priority = \"critical\"")).await;
        // A runner killed mid-run (SIGKILL, the OOM killer): its execution was claimed as
        // running, its maintenance mode names it, and then nothing more happened.
        let killed = claimed_by_a_dead_runner(&s, "upgrade").await;
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        let dead = caretaker_core::maintenance::MaintenanceMode {
            since: chrono::Utc::now(),
            reason: format!("upgrade (execution {})", killed.id),
            by: "upgrade".into(),
            holder: Some(caretaker_core::maintenance::Holder {
                pid,
                ..caretaker_core::maintenance::Holder::this_process()
            }),
        };
        caretaker_core::maintenance::enter(&s.runner.catalog.state_dir, &dead).unwrap();

        // The next firing runs (the stale mode does not hold it back), enters and leaves
        // maintenance itself, and records the killed execution as failed.
        let next = run(&s, "upgrade").await;
        assert_eq!(next.status, ExecutionStatus::Succeeded, "{}: {:?}", s.what, next.notes);
        let notes = next.notes.join("\n");
        assert!(notes.contains(&format!("recovered stale maintenance mode: process {pid} on")), "{}: {notes}", s.what);
        assert!(notes.contains(&format!("recorded execution {} ", killed.id)), "{}: {notes}", s.what);
        assert!(notes.contains("entered maintenance mode") && notes.contains("left maintenance mode"), "{notes}");
        assert_eq!(caretaker_core::maintenance::current(&s.runner.catalog.state_dir).unwrap(), None);
        let all = s.runner.history.since(chrono::Utc::now() - chrono::Duration::hours(1)).await.unwrap();
        let was = all.iter().find(|e| e.id == killed.id).unwrap();
        assert_eq!(was.status, ExecutionStatus::Failed, "{}", s.what);
        assert!(was.summary.starts_with("the runner died mid-run: host-a pid 4711"), "{}", was.summary);
        assert!(was.finished_at.is_some());
        assert!(all.iter().all(|e| e.status != ExecutionStatus::Running), "{}: {all:?}", s.what);
    }
}

/// A task kind with a bug: it panics (as `percent_decode` once did on a password like `%aé`).
struct Buggy;

impl caretaker_core::task::Task for Buggy {
    fn kind(&self) -> &'static str {
        "buggy"
    }

    fn run<'a>(
        &'a self,
        _ctx: &'a caretaker_core::task::TaskContext,
    ) -> caretaker_core::task::BoxFuture<'a, Result<caretaker_core::task::TaskOutcome, caretaker_core::task::TaskError>>
    {
        Box::pin(async move {
            tokio::task::yield_now().await;
            let password = "%aé";
            panic!("byte index 3 is not a char boundary; it is inside 'é' of `{password}`")
        })
    }
}

struct BuggyKinds;

impl caretaker_core::task::TaskKinds for BuggyKinds {
    fn kinds(&self) -> Vec<&'static str> {
        vec!["buggy"]
    }

    fn build(
        &self,
        _kind: &str,
        _params: &toml::Table,
        _root: &std::path::Path,
    ) -> Result<Box<dyn caretaker_core::task::Task>, caretaker_core::config::ConfigProblem> {
        Ok(Box::new(Buggy))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_that_panics_is_recorded_as_failed_and_leaves_maintenance_mode() {
    for fresh in targets().await {
        let s = setup_with(
            &fresh,
            &format!(
                "[[tasks]]\nid = \"upgrade\"\nkind = \"buggy\"\npriority = \"critical\"\nestimated_duration = \"1m\"\nretries = 1\nretry_backoff = \"1s\"\n{}",
                task("report", r#"["true"]"#, "priority = \"low\"")
            ),
            vec![Box::new(BuggyKinds)],
        )
        .await;
        let failed = run(&s, "upgrade").await;
        assert_eq!(failed.status, ExecutionStatus::Failed, "{}", s.what);
        assert!(
            failed.summary.starts_with("the task panicked: byte index 3 is not a char boundary"),
            "{}",
            failed.summary
        );
        assert_eq!(failed.attempts.len(), 2, "a panic is a failed attempt, retried like one");
        let notes = failed.notes.join("\n");
        assert!(
            notes.contains("entered maintenance mode") && notes.contains("left maintenance mode (failed)"),
            "{notes}"
        );
        assert_eq!(caretaker_core::maintenance::current(&s.runner.catalog.state_dir).unwrap(), None);
        // The scheduler goes on: the next task runs, not held by a maintenance mode left on.
        assert_eq!(run(&s, "report").await.status, ExecutionStatus::Succeeded, "{}", s.what);
        let all = s.runner.history.since(chrono::Utc::now() - chrono::Duration::hours(1)).await.unwrap();
        assert!(all.iter().all(|e| e.status != ExecutionStatus::Running), "{}: {all:?}", s.what);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scheduler_starting_settles_what_a_killed_runner_left() {
    for fresh in targets().await {
        let s = setup(&fresh, &task("upgrade", r#"["true"]"#, "priority = \"critical\"")).await;
        let killed = claimed_by_a_dead_runner(&s, "upgrade").await;
        // The dead runner: a process that has exited.
        let mut gone = std::process::Command::new("true").spawn().unwrap();
        let dead = caretaker_core::maintenance::Holder {
            pid: gone.id(),
            ..caretaker_core::maintenance::Holder::this_process()
        };
        gone.wait().unwrap();
        let state = s.runner.catalog.state_dir.clone();
        let mode = caretaker_core::maintenance::MaintenanceMode {
            since: chrono::Utc::now(),
            reason: format!("upgrade (execution {})", killed.id),
            by: "upgrade".into(),
            holder: Some(dead.clone()),
        };
        caretaker_core::maintenance::enter(&state, &mode).unwrap();
        // And the child it had started, still running in its own group.
        let mut child = std::process::Command::new("sleep");
        child.arg("60");
        std::os::unix::process::CommandExt::process_group(&mut child, 0);
        let mut child = child.spawn().unwrap();
        let group = caretaker_core::children::ChildGroup {
            runner: dead,
            ..caretaker_core::children::ChildGroup::started_here(child.id(), "sleep", "upgrade", &killed.id)
        };
        std::mem::forget(caretaker_core::children::track(&state, &group).unwrap());

        let notes = s.runner.recover().await.join("\n");
        assert!(notes.contains("recovered stale maintenance mode"), "{}: {notes}", s.what);
        assert!(notes.contains(&format!("ended process group {} (sleep)", child.id())), "{notes}");
        assert!(notes.contains(&format!("upgrade: recorded execution {} ", killed.id)), "{notes}");
        assert!(std::os::unix::process::ExitStatusExt::signal(&child.wait().unwrap()) == Some(9));
        assert_eq!(caretaker_core::maintenance::current(&state).unwrap(), None);
        let all = s.runner.history.since(chrono::Utc::now() - chrono::Duration::hours(1)).await.unwrap();
        let was = all.iter().find(|e| e.id == killed.id).unwrap();
        assert_eq!(was.status, ExecutionStatus::Failed);
        assert!(
            was.notes.iter().any(|n| n.starts_with("found running without its runner by the scheduler starting")),
            "{:?}",
            was.notes
        );
        assert!(was.notes.iter().any(|n| n.starts_with("recovered stale maintenance mode")), "{:?}", was.notes);
        // Nothing left to settle the second time.
        assert_eq!(s.runner.recover().await, Vec::<String>::new());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn critical_tasks_hold_maintenance_mode_and_leave_it_after_a_failure() {
    // A webhook receiver on this machine: answers 200 and keeps the bodies.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let bodies = Arc::new(std::sync::Mutex::new(Vec::<serde_json::Value>::new()));
    let kept = bodies.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(stream);
            let mut length = 0usize;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0u8; length];
            let _ = reader.read_exact(&mut body);
            if let Ok(v) = serde_json::from_slice(&body) {
                kept.lock().unwrap().push(v);
            }
            let _ = reader.get_mut().write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
        }
    });
    for fresh in targets().await {
        bodies.lock().unwrap().clear();
        let s = setup(
            &fresh,
            &format!(
                "[notifications]\nwebhook = \"http://127.0.0.1:{port}/hook\"\ncommand = [\"sh\", \"-c\", \"cat >> notified.jsonl; echo >> notified.jsonl\"]\n{}{}",
                // The critical task sees maintenance mode on while it runs, then fails.
                // Its error names a token from its environment: the notifications must not.
                task_with(
                    "upgrade",
                    r#"["sh", "-c", "test -f state/maintenance.json && touch saw-maintenance; echo \"rejected $API_TOKEN\" >&2; exit 1"]"#,
                    "priority = \"critical\"",
                    "env = { API_TOKEN = \"tok-notify-7c6b5a\" }",
                ),
                task("report", r#"["true"]"#, "priority = \"low\""),
            ),
        )
        .await;
        let e = run(&s, "upgrade").await;
        assert_eq!(e.status, ExecutionStatus::Failed, "{}", s.what);
        assert!(s.dir.join("saw-maintenance").exists(), "maintenance mode was not on during the critical task");
        assert_eq!(
            caretaker_core::maintenance::current(&s.runner.catalog.state_dir).unwrap(),
            None,
            "left on after a failure"
        );
        assert!(e.notes.iter().any(|n| n.starts_with("entered maintenance mode")), "{:?}", e.notes);
        assert!(e.notes.iter().any(|n| n.starts_with("left maintenance mode (failed)")), "{:?}", e.notes);
        let events: Vec<String> =
            bodies.lock().unwrap().iter().map(|b| b["event"].as_str().unwrap_or("").to_string()).collect();
        assert_eq!(events, vec!["maintenance_entered", "maintenance_left", "task_failed"], "{}", s.what);
        let by_command = std::fs::read_to_string(s.dir.join("notified.jsonl")).unwrap();
        assert_eq!(by_command.lines().count(), 3, "{by_command}");
        assert!(by_command.contains("\"task_id\":\"upgrade\""));
        let sent = serde_json::to_string(&*bodies.lock().unwrap()).unwrap() + &by_command;
        assert!(sent.contains("rejected ***"), "the failure reaches the notifications: {sent}");
        assert!(!sent.contains("tok-notify-7c6b5a"), "{}: a secret reached a notification", s.what);

        // While someone else holds maintenance mode, a non-critical task does not run.
        let mode = caretaker_core::maintenance::MaintenanceMode {
            since: chrono::Utc::now(),
            reason: "db upgrade".into(),
            by: "manual".into(),
            holder: None,
        };
        caretaker_core::maintenance::enter(&s.runner.catalog.state_dir, &mode).unwrap();
        let e = run(&s, "report").await;
        assert_eq!(e.status, ExecutionStatus::Skipped);
        assert!(
            e.summary.contains("maintenance mode is on") && e.summary.contains("by manual: db upgrade"),
            "{}",
            e.summary
        );
        // A critical task runs, and leaves the mode to its owner.
        let e = run(&s, "upgrade").await;
        assert_eq!(e.status, ExecutionStatus::Failed);
        assert!(caretaker_core::maintenance::current(&s.runner.catalog.state_dir).unwrap().is_some());
        caretaker_core::maintenance::leave(&s.runner.catalog.state_dir).unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeouts_kill_the_task_and_run_the_rollback() {
    for fresh in targets().await {
        let s = setup(
            &fresh,
            &task("slow", r#"["sleep", "30"]"#, "timeout = \"1s\"\nrollback = [\"touch\", \"rolled-back\"]"),
        )
        .await;
        let e = run(&s, "slow").await;
        assert_eq!(e.status, ExecutionStatus::TimedOut, "{}", s.what);
        assert_eq!(e.summary, "timed out after 1s (attempt 1)");
        assert!(s.dir.join("rolled-back").exists());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_fires_every_second_and_never_runs_a_task_twice_at_once() {
    for fresh in targets().await {
        let s = setup(
            &fresh,
            &format!(
                "{}{}",
                task("tick", r#"["sh", "-c", "echo {execution_id} >> ticks"]"#, "schedule = \"* * * * * *\""),
                // Runs 2.5 s but fires every second: the firings in between are skipped.
                task("long", r#"["sh", "-c", "echo start >> long; sleep 2.5"]"#, "schedule = \"* * * * * *\""),
            ),
        )
        .await;
        let summary =
            daemon::run(s.runner.clone(), s.lifecycle.clone(), DaemonOptions { run_for: Some(Duration::from_secs(4)) })
                .await;
        assert!(summary.errors.is_empty(), "{:?}", summary.errors);
        let all = s.runner.history.since(chrono::Utc::now() - chrono::Duration::hours(1)).await.unwrap();
        let ticks: Vec<_> = all.iter().filter(|e| e.task_id == "tick").collect();
        let ticked = std::fs::read_to_string(s.dir.join("ticks")).unwrap();
        assert!(ticks.len() >= 2, "{}: {} ticks", s.what, ticks.len());
        assert_eq!(ticked.lines().count(), ticks.iter().filter(|e| e.status == ExecutionStatus::Succeeded).count());
        let long: Vec<_> = all.iter().filter(|e| e.task_id == "long").collect();
        let started = std::fs::read_to_string(s.dir.join("long")).unwrap().lines().count();
        let ran = long.iter().filter(|e| e.status != ExecutionStatus::Skipped).count();
        assert_eq!(started, ran, "{}", s.what);
        assert!(
            long.iter().any(|e| e.status == ExecutionStatus::Skipped
                && e.summary.starts_with("not run: the previous execution of long was still running")),
            "{long:#?}"
        );
        // Never two at once: the runs of `long` do not overlap in time.
        let mut spans: Vec<_> = long
            .iter()
            .filter(|e| e.status != ExecutionStatus::Skipped)
            .map(|e| (e.started_at, e.finished_at.unwrap()))
            .collect();
        spans.sort();
        assert!(spans.windows(2).all(|w| w[0].1 <= w[1].0), "{spans:?}");
        // Each firing once.
        let mut firings: Vec<_> = all.iter().filter_map(|e| e.scheduled_for.map(|t| (e.task_id.clone(), t))).collect();
        let n = firings.len();
        firings.sort();
        firings.dedup();
        assert_eq!(firings.len(), n);
        // The stop let the running execution finish, and said so.
        assert_eq!(summary.stop_reason, "the --for limit");
        assert!(all.iter().all(|e| e.status != ExecutionStatus::Running), "{all:#?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shutdown_with_cancel_stops_the_running_task_and_records_it() {
    for fresh in targets().await {
        let s = setup(
            &fresh,
            &task(
                "long",
                r#"["sleep", "30"]"#,
                "schedule = \"* * * * * *\"\ntimeout = \"1m\"\nrollback = [\"touch\", \"rolled-back\"]",
            ),
        )
        .await;
        let mut catalog = (*s.runner.catalog).clone();
        catalog.shutdown = crate::catalog::ShutdownPolicy::Cancel;
        let (tx, rx) = watch::channel(Lifecycle::Running);
        let runner = Arc::new(Runner::new(
            Arc::new(catalog),
            s.runner.history.clone(),
            SchedulerClock::new(Clock::System),
            Redactor::default(),
            rx,
        ));
        let summary =
            daemon::run(runner.clone(), tx, DaemonOptions { run_for: Some(Duration::from_millis(2500)) }).await;
        assert_eq!(summary.executions.get("cancelled"), Some(&1), "{}: {summary:?}", s.what);
        let all = runner.history.since(chrono::Utc::now() - chrono::Duration::hours(1)).await.unwrap();
        let cancelled = all.iter().find(|e| e.status == ExecutionStatus::Cancelled).unwrap();
        assert!(cancelled.summary.starts_with("cancelled by the --for limit after"), "{}", cancelled.summary);
        assert_eq!(cancelled.rollback.as_ref().map(|r| r.status.as_str()), Some("succeeded"));
        assert!(s.dir.join("rolled-back").exists());
    }
}
