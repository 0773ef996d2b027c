//! `caretaker scheduler start`: the loop that fires due tasks.
//!
//! At start, what killed runners left is settled ([`Runner::recover`]), then each task's firings missed since the last one any scheduler claimed are handled by
//! its `missed` policy (skip, run once, catch up at most N); a task never seen before has missed
//! nothing. Then the loop sleeps until the next firing of any enabled task and starts an
//! execution for it through [`Runner::execute`]. A firing that comes while the task's previous
//! execution is still running is recorded as skipped: never two runs of one task at once. A
//! non-critical task that meets maintenance mode waits for it to end, at most until its next
//! firing.
//!
//! SIGTERM or SIGINT (or the end of `--for`) stops the loop; then, with `shutdown = "finish"`,
//! running executions get `shutdown_grace` to finish before they are cancelled, and with
//! `"cancel"` they are cancelled at once. Either way each is recorded: finished (with a note that
//! it finished during shutdown) or cancelled (with the reason), and its rollback runs.

use crate::catalog::{MissedPolicy, ShutdownPolicy, TaskSpec};
use crate::history::{ExecutionStatus, Trigger};
use crate::run::{Lifecycle, RunRequest, RunResult, Runner};
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinHandle;

/// How long the daemon runs.
#[derive(Debug, Clone, Default)]
pub struct DaemonOptions {
    /// Stop after this long, as if a SIGTERM came (tests, one-shot runs).
    pub run_for: Option<Duration>,
}

/// What a daemon did, printed when it stops.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DaemonSummary {
    pub started_at: Option<DateTime<Utc>>,
    pub stopped_at: Option<DateTime<Utc>>,
    pub stop_reason: String,
    /// Executions recorded by this scheduler, by status.
    pub executions: BTreeMap<String, u64>,
    /// Firings another scheduler claimed first.
    pub claimed_elsewhere: u64,
    /// What the missed-firing policies did at start.
    pub missed: Vec<String>,
    /// What killed runners had left and the start settled (stale maintenance mode, process
    /// groups, executions left running).
    pub recovered: Vec<String>,
    /// Errors that stopped an execution from being recorded.
    pub errors: Vec<String>,
}

type Job = JoinHandle<Vec<Result<RunResult, crate::run::Error>>>;

/// Runs `req` in one of this scheduler's `scheduler.max_running` slots (at once without a limit).
/// A firing waits for a free slot before it is claimed, so that while this scheduler is busy
/// another one with a slot free claims it first: the work spreads over the schedulers. A firing
/// still waiting when the scheduler stops is neither claimed nor recorded here (`None`).
async fn in_a_slot(
    runner: &Runner,
    slots: Option<&Arc<Semaphore>>,
    req: RunRequest,
) -> Option<Result<RunResult, crate::run::Error>> {
    let _slot = match slots {
        Some(slots) => {
            let slot = slots.clone().acquire_owned().await.ok()?;
            if runner.lifecycle() != Lifecycle::Running {
                return None;
            }
            Some(slot)
        }
        None => None,
    };
    Some(runner.execute(req).await)
}

/// Runs the daemon until a signal or `options.run_for`. `lifecycle` is the sender whose receiver
/// the runner holds.
pub async fn run(runner: Arc<Runner>, lifecycle: watch::Sender<Lifecycle>, options: DaemonOptions) -> DaemonSummary {
    let started = runner.clock.now();
    let mut summary = DaemonSummary { started_at: Some(started), ..Default::default() };
    let tasks: Vec<&TaskSpec> = runner.catalog.tasks.iter().filter(|t| t.enabled && t.schedule.is_some()).collect();
    tracing::info!("scheduler started: {} scheduled tasks, history {}", tasks.len(), runner.history.describe());
    summary.recovered = runner.recover().await;

    let mut running: HashMap<String, Job> = HashMap::new();
    let slots = runner.catalog.max_running.map(|n| Arc::new(Semaphore::new(n)));
    // Missed firings, per task, by policy.
    for spec in &tasks {
        let schedule = spec.schedule.as_ref().expect("filtered on schedules");
        let last = match runner.history.latest_firing(&spec.id).await {
            Ok(Some(last)) => last,
            Ok(None) => continue,
            Err(e) => {
                summary.errors.push(e.to_string());
                continue;
            }
        };
        let keep = match spec.missed {
            MissedPolicy::Skip => 0,
            MissedPolicy::RunOnce => 1,
            MissedPolicy::CatchUp { max } => max as usize,
        };
        let (count, latest) = missed_firings(schedule, last, started, keep);
        if count == 0 {
            continue;
        }
        let note = match spec.missed {
            MissedPolicy::Skip => format!("{}: {count} firings missed since {last}; skipped (missed = skip)", spec.id),
            _ => format!(
                "{}: {count} firings missed since {last}; running {} of them ({})",
                spec.id,
                latest.len(),
                latest.iter().map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string()).collect::<Vec<_>>().join(", ")
            ),
        };
        tracing::info!("{note}");
        summary.missed.push(note);
        if !latest.is_empty() {
            let runner = runner.clone();
            let id = spec.id.clone();
            let maintenance_wait = wait_until_next(&runner, spec, started);
            let slots = slots.clone();
            running.insert(
                spec.id.clone(),
                tokio::spawn(async move {
                    // One after another: never two runs of one task at once.
                    let mut results = Vec::new();
                    for at in latest {
                        let req = request(&id, Trigger::CatchUp, at, maintenance_wait);
                        results.extend(in_a_slot(&runner, slots.as_ref(), req).await);
                    }
                    results
                }),
            );
        }
    }

    let mut next: BTreeMap<String, DateTime<Utc>> = tasks
        .iter()
        .filter_map(|t| t.schedule.as_ref().and_then(|s| s.next_after(started)).map(|at| (t.id.clone(), at)))
        .collect();
    let deadline = options.run_for.map(|d| tokio::time::Instant::now() + d);
    let mut signals = Signals::new();
    let stop_reason = loop {
        reap(&mut running, &mut summary, false).await;
        let due = next.iter().min_by_key(|(_, at)| **at).map(|(id, at)| (id.clone(), *at));
        let sleep = match &due {
            Some((_, at)) => (*at - runner.clock.now()).to_std().unwrap_or(Duration::ZERO),
            None => Duration::from_secs(3600),
        };
        // Wake at least once a minute to reap finished executions.
        let sleep = sleep.min(Duration::from_secs(60));
        tokio::select! {
            _ = tokio::time::sleep(sleep) => {}
            reason = signals.recv() => break reason,
            _ = until(deadline) => break "the --for limit".to_string(),
        }
        let Some((id, at)) = due else { continue };
        if runner.clock.now() < at {
            continue;
        }
        let spec = runner.catalog.task(&id).expect("scheduled tasks are in the catalog");
        let schedule = spec.schedule.as_ref().expect("scheduled");
        match schedule.next_after(at) {
            Some(following) => next.insert(id.clone(), following),
            None => next.remove(&id),
        };
        let req = request(&id, Trigger::Schedule, at, wait_until_next(&runner, spec, at));
        let busy = running.get(&id).is_some_and(|job| !job.is_finished());
        if busy {
            let reason = format!(
                "not run: the previous execution of {id} was still running at {}",
                at.format("%Y-%m-%d %H:%M:%S UTC")
            );
            let runner = runner.clone();
            let job = tokio::spawn(async move { vec![runner.record_skipped_firing(&req, reason).await] });
            // Keep the running job; this one only records.
            running.insert(format!("{id}#skipped@{at}"), job);
        } else {
            if let Some(old) = running.remove(&id) {
                // Finished after the last reap: count it before its slot is reused.
                count(old.await, &mut summary);
            }
            let runner = runner.clone();
            let slots = slots.clone();
            running.insert(
                id.clone(),
                tokio::spawn(async move { in_a_slot(&runner, slots.as_ref(), req).await.into_iter().collect() }),
            );
        }
    };

    tracing::info!("scheduler stopping ({stop_reason})");
    // Firings still waiting for a slot give up now, unclaimed, for another scheduler.
    if let Some(slots) = &slots {
        slots.close();
    }
    let active = running.values().filter(|j| !j.is_finished()).count();
    match runner.catalog.shutdown {
        ShutdownPolicy::Finish if active > 0 => {
            tracing::info!(
                "letting {active} running executions finish (at most {})",
                humantime::format_duration(runner.catalog.shutdown_grace)
            );
            let _ = lifecycle.send(Lifecycle::Draining(stop_reason.clone()));
            let grace = tokio::time::sleep(runner.catalog.shutdown_grace);
            tokio::pin!(grace);
            loop {
                if running.values().all(|j| j.is_finished()) {
                    break;
                }
                tokio::select! {
                    _ = &mut grace => {
                        tracing::warn!("shutdown grace over: cancelling what still runs");
                        let _ = lifecycle.send(Lifecycle::Cancelling(format!("{stop_reason} (after the shutdown grace)")));
                        break;
                    }
                    reason = signals.recv() => {
                        let _ = lifecycle.send(Lifecycle::Cancelling(format!("a second {reason}")));
                        break;
                    }
                    _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                }
            }
        }
        _ => {
            let _ = lifecycle.send(Lifecycle::Cancelling(stop_reason.clone()));
        }
    }
    reap(&mut running, &mut summary, true).await;
    summary.stop_reason = stop_reason;
    summary.stopped_at = Some(runner.clock.now());
    summary
}

fn request(id: &str, trigger: Trigger, at: DateTime<Utc>, maintenance_wait: Duration) -> RunRequest {
    RunRequest {
        task_id: id.to_string(),
        trigger,
        scheduled_for: Some(at),
        dry_run: false,
        maintenance_wait,
        for_critical: false,
    }
}

/// A non-critical task held by maintenance mode waits at most until its next firing.
fn wait_until_next(runner: &Runner, spec: &TaskSpec, at: DateTime<Utc>) -> Duration {
    let next = spec.schedule.as_ref().and_then(|s| s.next_after(at));
    next.and_then(|n| (n - runner.clock.now()).to_std().ok()).unwrap_or(Duration::ZERO)
}

/// How many firings fell in `(last, now)`, and the latest `keep` of them, oldest first.
fn missed_firings(
    schedule: &crate::schedule::Schedule,
    last: DateTime<Utc>,
    now: DateTime<Utc>,
    keep: usize,
) -> (u64, Vec<DateTime<Utc>>) {
    let mut count = 0u64;
    let mut latest = std::collections::VecDeque::new();
    let mut cursor = last;
    // Bounded: a scheduler down for a year with an every-second task need not count them all.
    while count < 10_000_000 {
        let Some(at) = schedule.next_after(cursor) else { break };
        if at >= now {
            break;
        }
        count += 1;
        if keep > 0 {
            if latest.len() == keep {
                latest.pop_front();
            }
            latest.push_back(at);
        }
        cursor = at;
    }
    (count, latest.into())
}

async fn reap(running: &mut HashMap<String, Job>, summary: &mut DaemonSummary, wait: bool) {
    let done: Vec<String> = running.iter().filter(|(_, j)| wait || j.is_finished()).map(|(k, _)| k.clone()).collect();
    for key in done {
        let job = running.remove(&key).expect("listed");
        count(job.await, summary);
    }
}

fn count(
    joined: Result<Vec<Result<RunResult, crate::run::Error>>, tokio::task::JoinError>,
    summary: &mut DaemonSummary,
) {
    {
        match joined {
            Ok(results) => {
                for r in results {
                    match r {
                        Ok(RunResult::Recorded(e)) => {
                            *summary.executions.entry(e.status.name().to_string()).or_default() += 1;
                            if e.status == ExecutionStatus::Running {
                                summary.errors.push(format!("{} was left running", e.id));
                            }
                        }
                        Ok(RunResult::ClaimedElsewhere) => summary.claimed_elsewhere += 1,
                        Err(e) => {
                            tracing::error!("{e}");
                            summary.errors.push(e.to_string());
                        }
                    }
                }
            }
            Err(e) => summary.errors.push(format!("an execution panicked: {e}")),
        }
    }
}

async fn until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// SIGTERM and SIGINT.
struct Signals {
    term: Option<tokio::signal::unix::Signal>,
    int: Option<tokio::signal::unix::Signal>,
}

impl Signals {
    fn new() -> Signals {
        use tokio::signal::unix::{SignalKind, signal};
        Signals { term: signal(SignalKind::terminate()).ok(), int: signal(SignalKind::interrupt()).ok() }
    }

    async fn recv(&mut self) -> String {
        async fn on(s: &mut Option<tokio::signal::unix::Signal>) {
            match s {
                Some(s) => {
                    s.recv().await;
                }
                None => std::future::pending().await,
            }
        }
        tokio::select! {
            _ = on(&mut self.term) => "SIGTERM".to_string(),
            _ = on(&mut self.int) => "SIGINT".to_string(),
        }
    }
}
