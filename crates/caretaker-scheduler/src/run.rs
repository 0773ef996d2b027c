//! Running one execution of a task: the one path shared by the daemon and `caretaker task run`.
//!
//! In order: claim the firing in the history (another scheduler may have it), take the task's
//! run lock (one run of a task at a time), wait while maintenance mode is on (non-critical tasks
//! only), run the prerequisites (a failed one makes this execution *skipped*, with the reason),
//! enter maintenance mode (critical tasks), run the attempts (each with the timeout, retries after
//! a backoff, success criteria checked on each outcome), run the rollback command after a final
//! failure, leave maintenance mode (also after a failure), notify, and record. Every path after
//! the claim ends in a recorded result; text from outside is redacted before it is recorded.

use crate::catalog::{Catalog, NotifyEvent, TaskSpec};
use crate::clock::SchedulerClock;
use crate::criteria::CriterionResult;
use crate::history::{self, Attempt, Execution, ExecutionStatus, HistoryStore, RollbackRecord, Trigger};
use crate::kinds::command::{context_env, expand};
use crate::kinds::process::{self, ProcessSpec};
use crate::notify::Notifier;
use crate::redact::Redactor;
use caretaker_core::ids::RunId;
use caretaker_core::maintenance::{self, MaintenanceMode};
use caretaker_core::task::{TaskContext, TaskOutcome, TaskStatus};
use chrono::{DateTime, Utc};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// The run lock critical tasks share (task ids cannot contain `~`).
const CRITICAL_TURN: &str = "~critical";

/// Where a scheduler is in its life: running, finishing what it started, or cancelling it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lifecycle {
    Running,
    /// Start nothing new; let running attempts finish. The reason (`SIGTERM`, ...).
    Draining(String),
    /// Stop running attempts now. The reason.
    Cancelling(String),
}

/// What to run.
#[derive(Debug, Clone)]
pub struct RunRequest {
    pub task_id: String,
    pub trigger: Trigger,
    /// The firing (daemon), `None` for on-demand runs.
    pub scheduled_for: Option<DateTime<Utc>>,
    pub dry_run: bool,
    /// How long a non-critical task waits for maintenance mode to end before it is skipped.
    pub maintenance_wait: Duration,
    /// Run as part of a critical task (a prerequisite of one): maintenance mode does not hold it.
    pub for_critical: bool,
}

/// What came of a request.
#[derive(Debug, Clone)]
pub enum RunResult {
    /// Another scheduler claimed this firing; it runs there.
    ClaimedElsewhere,
    Recorded(Box<Execution>),
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("no task {id:?} in {catalog}; tasks: {known}")]
    UnknownTask { id: String, catalog: String, known: String },
    #[error(transparent)]
    History(#[from] history::Error),
}

/// Runs executions. Shared (in an `Arc`) by the daemon's concurrent executions.
pub struct Runner {
    pub catalog: Arc<Catalog>,
    pub history: Arc<HistoryStore>,
    pub clock: SchedulerClock,
    pub notifier: Notifier,
    pub redactor: Redactor,
    /// `host pid N`, recorded with each execution.
    pub scheduler_id: String,
    lifecycle: watch::Receiver<Lifecycle>,
}

impl Runner {
    pub fn new(
        catalog: Arc<Catalog>,
        history: Arc<HistoryStore>,
        clock: SchedulerClock,
        redactor: Redactor,
        lifecycle: watch::Receiver<Lifecycle>,
    ) -> Runner {
        // The secrets in the tasks' own settings (a command's PGPASSWORD, say) are hidden too, in
        // everything recorded, logged and sent.
        let redactor = redactor.with_secrets(catalog.tasks.iter().flat_map(|t| t.task.secrets()));
        let notifier = Notifier::new(catalog.notifications.clone(), catalog.root.clone(), redactor.clone());
        let host =
            std::fs::read_to_string("/proc/sys/kernel/hostname").map(|h| h.trim().to_string()).unwrap_or_default();
        let scheduler_id = format!("{host} pid {}", std::process::id()).trim().to_string();
        Runner { catalog, history, clock, notifier, redactor, scheduler_id, lifecycle }
    }

    pub fn lifecycle(&self) -> Lifecycle {
        self.lifecycle.borrow().clone()
    }

    pub(crate) fn spec(&self, id: &str) -> Result<&TaskSpec, Error> {
        self.catalog.task(id).ok_or_else(|| Error::UnknownTask {
            id: id.to_string(),
            catalog: self.catalog.source.display().to_string(),
            known: self.catalog.tasks.iter().map(|t| t.id.as_str()).collect::<Vec<_>>().join(", "),
        })
    }

    /// A new execution record of `spec`, not yet claimed.
    pub fn new_execution(&self, spec: &TaskSpec, req: &RunRequest) -> Execution {
        let started_at = self.clock.now();
        Execution {
            id: format!("{}-{}", RunId::new(started_at), spec.id),
            task_id: spec.id.clone(),
            task_name: spec.name.clone(),
            trigger: req.trigger,
            scheduled_for: req.scheduled_for,
            started_at,
            finished_at: None,
            status: ExecutionStatus::Running,
            summary: String::new(),
            attempts: Vec::new(),
            metrics: Default::default(),
            criteria: Vec::new(),
            rollback: None,
            estimated_seconds: spec.estimated.as_secs_f64(),
            duration_seconds: None,
            scheduler: self.scheduler_id.clone(),
            notes: Vec::new(),
            details: serde_json::Value::Null,
        }
    }

    /// Records a firing that is not run at all (the previous run of the task is still going):
    /// claimed like any firing, so that only one scheduler records it.
    pub async fn record_skipped_firing(&self, req: &RunRequest, reason: String) -> Result<RunResult, Error> {
        let spec = self.spec(&req.task_id)?;
        let mut execution = self.new_execution(spec, req);
        execution.status = ExecutionStatus::Skipped;
        if !self.history.claim(&execution).await? {
            return Ok(RunResult::ClaimedElsewhere);
        }
        self.finish(&mut execution, ExecutionStatus::Skipped, reason).await?;
        Ok(RunResult::Recorded(Box::new(execution)))
    }

    /// Runs one execution; see the module docs for the steps.
    pub fn execute<'a>(
        &'a self,
        req: RunRequest,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<RunResult, Error>> + Send + 'a>> {
        // Boxed: prerequisites run through this same function.
        Box::pin(async move {
            let spec = self.spec(&req.task_id)?;
            let mut execution = self.new_execution(spec, &req);
            if !self.history.claim(&execution).await? {
                tracing::debug!("{} at {:?}: claimed by another scheduler", spec.id, req.scheduled_for);
                return Ok(RunResult::ClaimedElsewhere);
            }
            let clock_start = Instant::now();
            let Some(_lock) = self.history.lock_task(&spec.id).await? else {
                let reason = format!("not run: another execution of {} is running", spec.id);
                self.finish(&mut execution, ExecutionStatus::Skipped, reason).await?;
                return Ok(RunResult::Recorded(Box::new(execution)));
            };
            tracing::info!("{}: starting ({:?}, execution {})", spec.id, req.trigger, execution.id);
            self.settle_orphans(spec, &mut execution).await?;
            execution.notes.extend(caretaker_core::children::sweep(&self.catalog.state_dir));

            if let Some(reason) = self.wait_for_maintenance(spec, &req, &mut execution).await {
                self.finish(&mut execution, ExecutionStatus::Skipped, reason).await?;
                return Ok(RunResult::Recorded(Box::new(execution)));
            }
            if let Some(reason) = self.prerequisites(spec, &req, &mut execution).await? {
                self.finish(&mut execution, ExecutionStatus::Skipped, reason).await?;
                return Ok(RunResult::Recorded(Box::new(execution)));
            }

            // Critical tasks take turns: maintenance mode has one holder, who ends it.
            let _critical_turn = if spec.is_critical() && !req.dry_run {
                match self.critical_turn(spec, &mut execution).await? {
                    Ok(lock) => Some(lock),
                    Err(reason) => {
                        self.finish(&mut execution, ExecutionStatus::Skipped, reason).await?;
                        return Ok(RunResult::Recorded(Box::new(execution)));
                    }
                }
            } else {
                None
            };

            // From here on nothing returns early: maintenance mode entered is always left.
            let (hold, notes) = self.enter_maintenance(spec, &req, &execution).await;
            execution.notes.extend(notes);
            let (status, summary) = self.attempts(spec, &req, &mut execution).await;
            if status.is_failure() && !req.dry_run {
                execution.rollback = self.rollback(spec, &execution).await;
                if let Some(r) = &execution.rollback {
                    execution.notes.push(format!("rollback {}: {}", r.status, r.summary));
                }
            }
            if let Some(hold) = hold {
                hold.stop();
                execution.notes.extend(self.leave_maintenance(spec, &execution, status).await);
            }
            if status.is_failure() {
                let body = self.event_body(spec, &execution, status, &summary);
                execution.notes.extend(self.notifier.send(NotifyEvent::TaskFailed, body).await);
            }
            execution.duration_seconds = Some(clock_start.elapsed().as_secs_f64());
            self.finish(&mut execution, status, summary).await?;
            Ok(RunResult::Recorded(Box::new(execution)))
        })
    }

    /// Records as failed the executions of `spec` that are still `running` in the history although
    /// this execution holds the task's lock: their runner died mid-run (killed, the machine
    /// restarted), since a live runner holds the lock until it records its result, and the lock
    /// (a file lock, or a PostgreSQL session lock) ends with its process.
    async fn settle_orphans(&self, spec: &TaskSpec, execution: &mut Execution) -> Result<(), Error> {
        let found_by = format!("execution {}", execution.id);
        let notes = self.settle_orphans_of(spec, Some(&execution.id), &found_by, None).await?;
        execution.notes.extend(notes);
        Ok(())
    }

    /// Settles the orphans of `spec` (the caller holds the task's lock); `stale` is a maintenance
    /// mode just recovered, whose note goes to the execution that held it.
    async fn settle_orphans_of(
        &self,
        spec: &TaskSpec,
        except: Option<&str>,
        found_by: &str,
        stale: Option<&MaintenanceMode>,
    ) -> Result<Vec<String>, Error> {
        let orphans: Vec<Execution> =
            self.history.running(&spec.id).await?.into_iter().filter(|e| Some(e.id.as_str()) != except).collect();
        let mut notes = Vec::new();
        for mut orphan in orphans {
            let summary = format!(
                "the runner died mid-run: {} no longer holds the task's lock; recorded as failed by {}",
                if orphan.scheduler.is_empty() { "its scheduler" } else { orphan.scheduler.as_str() },
                self.scheduler_id
            );
            orphan.notes.push(format!("found running without its runner by {found_by}"));
            if let Some(mode) = stale.filter(|m| m.by == spec.id && m.reason.contains(&orphan.id)) {
                orphan.notes.push(mode.recovered_note());
            }
            self.finish(&mut orphan, ExecutionStatus::Failed, summary).await?;
            notes.push(format!(
                "recorded execution {} (started {}) as failed: its runner died mid-run",
                orphan.id,
                orphan.started_at.format("%Y-%m-%d %H:%M:%S UTC")
            ));
        }
        Ok(notes)
    }

    /// What a scheduler settles at start that killed runners left behind: a maintenance mode
    /// whose holder is gone, the process groups of dead runners, and executions still recorded
    /// as running whose runner is gone (each task whose lock is free). Returns a line for each.
    pub async fn recover(&self) -> Vec<String> {
        let mut notes = Vec::new();
        let stale = match maintenance::current_live(&self.catalog.state_dir) {
            Ok((_, stale)) => stale,
            Err(e) => {
                notes.push(format!("cannot read maintenance mode: {e}"));
                None
            }
        };
        notes.extend(stale.as_ref().map(MaintenanceMode::recovered_note));
        notes.extend(caretaker_core::children::sweep(&self.catalog.state_dir));
        let found_by = format!("the scheduler starting ({})", self.scheduler_id);
        for spec in &self.catalog.tasks {
            let settled = match self.history.lock_task(&spec.id).await {
                Ok(Some(_lock)) => self.settle_orphans_of(spec, None, &found_by, stale.as_ref()).await,
                // A live runner has it: its executions are its own.
                Ok(None) => continue,
                Err(e) => Err(e.into()),
            };
            match settled {
                Ok(settled) => notes.extend(settled.into_iter().map(|n| format!("{}: {n}", spec.id))),
                Err(e) => notes.push(format!("{}: could not settle executions left running: {e}", spec.id)),
            }
        }
        for note in &notes {
            tracing::warn!("{note}");
        }
        notes
    }

    /// Records the result (redacted) and logs it.
    async fn finish(&self, execution: &mut Execution, status: ExecutionStatus, summary: String) -> Result<(), Error> {
        execution.status = status;
        execution.finished_at = Some(self.clock.now());
        execution.summary = self.redactor.redact(&summary);
        for note in &mut execution.notes {
            *note = self.redactor.redact(note);
        }
        for attempt in &mut execution.attempts {
            attempt.summary = self.redactor.redact(&attempt.summary);
        }
        if let Some(r) = &mut execution.rollback {
            r.argv = r.argv.iter().map(|a| self.redactor.redact(a)).collect();
            r.summary = self.redactor.redact(&r.summary);
            r.stdout = self.redactor.redact(&r.stdout);
            r.stderr = self.redactor.redact(&r.stderr);
        }
        self.redactor.redact_json(&mut execution.details);
        self.history.update(execution).await?;
        let line = format!("{}: {} — {}", execution.task_id, status.name(), execution.summary);
        if status.is_failure() {
            tracing::warn!("{line}")
        } else {
            tracing::info!("{line}")
        }
        Ok(())
    }

    /// Waits while maintenance mode is on (non-critical tasks); `Some(reason)` to skip.
    async fn wait_for_maintenance(
        &self,
        spec: &TaskSpec,
        req: &RunRequest,
        execution: &mut Execution,
    ) -> Option<String> {
        if spec.is_critical() || req.for_critical {
            return None;
        }
        let started = Instant::now();
        loop {
            let mode = match maintenance::current_live(&self.catalog.state_dir) {
                Ok((None, stale)) => {
                    execution.notes.extend(stale.map(|m| m.recovered_note()));
                    break;
                }
                Ok((Some(mode), _)) => mode,
                Err(e) => return Some(format!("not run: cannot read maintenance mode: {e}")),
            };
            let waited = started.elapsed();
            if waited >= req.maintenance_wait || self.lifecycle() != Lifecycle::Running {
                return Some(format!(
                    "not run: maintenance mode is on (since {}, by {}: {}){}",
                    mode.since.format("%Y-%m-%d %H:%M:%S UTC"),
                    mode.by,
                    mode.reason,
                    if waited.as_secs() > 0 { format!("; waited {}s", waited.as_secs()) } else { String::new() }
                ));
            }
            let step = (req.maintenance_wait - waited).min(Duration::from_secs(1));
            let mut lifecycle = self.lifecycle.clone();
            tokio::select! {
                _ = tokio::time::sleep(step) => {}
                _ = async { if lifecycle.changed().await.is_err() { std::future::pending::<()>().await } } => {}
            }
        }
        let waited = started.elapsed();
        if waited.as_secs() > 0 {
            execution.notes.push(format!("waited {}s for maintenance mode to end", waited.as_secs()));
        }
        None
    }

    /// Runs the prerequisites; `Some(reason)` when one did not succeed.
    async fn prerequisites(
        &self,
        spec: &TaskSpec,
        req: &RunRequest,
        execution: &mut Execution,
    ) -> Result<Option<String>, Error> {
        for id in &spec.prerequisites {
            if self.lifecycle() != Lifecycle::Running {
                return Ok(Some(format!("not run: shutting down before prerequisite {id} ran")));
            }
            if let Some(fresh_for) = spec.prerequisites_fresh_for
                && let Some(last) = self.history.last_success(id).await?
                && let Some(finished) = last.finished_at
                && self.clock.now() - finished <= chrono::Duration::from_std(fresh_for).unwrap_or(chrono::Duration::MAX)
            {
                execution.notes.push(format!(
                    "prerequisite {id}: satisfied by execution {} ({} ago)",
                    last.id,
                    humantime::format_duration(Duration::from_secs(
                        (self.clock.now() - finished).num_seconds().max(0) as u64
                    ))
                ));
                continue;
            }
            let sub = RunRequest {
                task_id: id.clone(),
                trigger: Trigger::Prerequisite,
                scheduled_for: None,
                dry_run: req.dry_run,
                maintenance_wait: req.maintenance_wait,
                for_critical: req.for_critical || spec.is_critical(),
            };
            match self.execute(sub).await? {
                RunResult::Recorded(e) if e.status == ExecutionStatus::Succeeded => {
                    execution.notes.push(format!("prerequisite {id}: succeeded (execution {})", e.id));
                }
                RunResult::Recorded(e) if req.dry_run && e.status == ExecutionStatus::Skipped => {
                    execution.notes.push(format!("prerequisite {id}: {} (dry run)", e.summary));
                }
                RunResult::Recorded(e) => {
                    return Ok(Some(format!(
                        "not run: prerequisite {id} {} (execution {}): {}",
                        e.status.name(),
                        e.id,
                        e.summary
                    )));
                }
                RunResult::ClaimedElsewhere => unreachable!("prerequisite runs claim no firing"),
            }
        }
        Ok(None)
    }

    /// Waits (at most the task's timeout) until no other critical task runs; `Err(reason)` to skip.
    async fn critical_turn(
        &self,
        spec: &TaskSpec,
        execution: &mut Execution,
    ) -> Result<Result<history::TaskLock, String>, Error> {
        let started = Instant::now();
        loop {
            if let Some(lock) = self.history.lock_task(CRITICAL_TURN).await? {
                if started.elapsed().as_secs() > 0 {
                    execution
                        .notes
                        .push(format!("waited {}s for another critical task to finish", started.elapsed().as_secs()));
                }
                return Ok(Ok(lock));
            }
            if started.elapsed() >= spec.timeout || self.lifecycle() != Lifecycle::Running {
                return Ok(Err(format!(
                    "not run: another critical task held maintenance mode for {}s",
                    started.elapsed().as_secs()
                )));
            }
            let mut lifecycle = self.lifecycle.clone();
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                Ok(_) = lifecycle.wait_for(|l| *l != Lifecycle::Running) => {}
            }
        }
    }

    /// Enters maintenance mode for a critical task, unless it is already on. Returns the hold
    /// that renews its lease when this execution entered it (and so must leave it), and notes.
    async fn enter_maintenance(
        &self,
        spec: &TaskSpec,
        req: &RunRequest,
        execution: &Execution,
    ) -> (Option<maintenance::Hold>, Vec<String>) {
        if !spec.is_critical() || req.dry_run {
            return (None, Vec::new());
        }
        let mut notes = Vec::new();
        match maintenance::current_live(&self.catalog.state_dir) {
            Ok((Some(mode), _)) => {
                return (
                    None,
                    vec![format!("maintenance mode was already on (by {}: {}); left as it is", mode.by, mode.reason)],
                );
            }
            Ok((None, stale)) => notes.extend(stale.map(|m| m.recovered_note())),
            Err(e) => return (None, vec![format!("cannot read maintenance mode: {e}")]),
        }
        let mode = MaintenanceMode {
            since: self.clock.now(),
            reason: format!("{} (execution {})", spec.name, execution.id),
            by: spec.id.clone(),
            holder: Some(maintenance::Holder::this_process()),
        };
        if let Err(e) = maintenance::enter(&self.catalog.state_dir, &mode) {
            notes.push(format!("could not enter maintenance mode: {e}"));
            return (None, notes);
        }
        let hold = mode.holder.as_ref().map(|h| maintenance::Hold::renewing(&self.catalog.state_dir, h));
        notes.push(format!("entered maintenance mode at {}", mode.since.format("%H:%M:%S UTC")));
        let body = serde_json::json!({
            "task_id": spec.id, "task_name": spec.name, "execution_id": execution.id,
            "maintenance": mode, "at": mode.since,
        });
        notes.extend(self.notifier.send(NotifyEvent::MaintenanceEntered, body).await);
        (hold, notes)
    }

    async fn leave_maintenance(&self, spec: &TaskSpec, execution: &Execution, status: ExecutionStatus) -> Vec<String> {
        let mut notes = Vec::new();
        match maintenance::current(&self.catalog.state_dir) {
            // Someone else took it over (a manual `maintenance on`): theirs to end.
            Ok(Some(mode)) if mode.by != spec.id => {
                notes.push(format!("maintenance mode now belongs to {}; left on", mode.by));
                return notes;
            }
            _ => {}
        }
        match maintenance::leave(&self.catalog.state_dir) {
            Ok(was) => {
                notes.push(format!("left maintenance mode ({})", status.name()));
                let body = serde_json::json!({
                    "task_id": spec.id, "task_name": spec.name, "execution_id": execution.id,
                    "status": status.name(), "maintenance": was, "at": self.clock.now(),
                });
                notes.extend(self.notifier.send(NotifyEvent::MaintenanceLeft, body).await);
            }
            Err(e) => notes.push(format!("could not leave maintenance mode: {e}")),
        }
        notes
    }

    fn event_body(&self, spec: &TaskSpec, e: &Execution, status: ExecutionStatus, summary: &str) -> serde_json::Value {
        serde_json::json!({
            "task_id": spec.id, "task_name": spec.name, "priority": spec.priority, "execution_id": e.id,
            "status": status.name(), "summary": summary, "scheduled_for": e.scheduled_for, "started_at": e.started_at,
            "rollback": e.rollback.as_ref().map(|r| serde_json::json!({"status": r.status, "summary": r.summary})),
        })
    }

    /// Runs the attempts; returns the final status and summary.
    async fn attempts(
        &self,
        spec: &TaskSpec,
        req: &RunRequest,
        execution: &mut Execution,
    ) -> (ExecutionStatus, String) {
        let max = spec.retries + 1;
        let mut last = (ExecutionStatus::Failed, String::from("no attempt ran"));
        for number in 1..=max {
            let ctx = TaskContext {
                task_id: spec.id.clone(),
                execution_id: execution.id.clone(),
                started_at: self.clock.now(),
                dry_run: req.dry_run,
                state_dir: self.catalog.state_dir.clone(),
            };
            let started = Instant::now();
            let mut lifecycle = self.lifecycle.clone();
            let result = tokio::select! {
                r = tokio::time::timeout(spec.timeout, CatchPanic(spec.task.run(&ctx))) => Some(r),
                _ = cancelled(&mut lifecycle) => None,
            };
            let seconds = started.elapsed().as_secs_f64();
            let (status, summary) = match result {
                None => {
                    let why = match self.lifecycle() {
                        Lifecycle::Cancelling(why) => why,
                        _ => "shutdown".into(),
                    };
                    (ExecutionStatus::Cancelled, format!("cancelled by {why} after {seconds:.1}s (attempt {number})"))
                }
                Some(Err(_)) => (
                    ExecutionStatus::TimedOut,
                    format!("timed out after {} (attempt {number})", humantime::format_duration(spec.timeout)),
                ),
                Some(Ok(Err(panic))) => (ExecutionStatus::Failed, format!("the task panicked: {panic}")),
                Some(Ok(Ok(Err(e)))) => (ExecutionStatus::Failed, format!("could not run: {}", e.reason)),
                Some(Ok(Ok(Ok(outcome)))) => self.judge(spec, outcome, seconds, execution),
            };
            execution.attempts.push(Attempt { number, status, summary: summary.clone(), seconds });
            last = (status, summary);
            if !matches!(status, ExecutionStatus::Failed | ExecutionStatus::TimedOut) || number == max {
                break;
            }
            if self.lifecycle() != Lifecycle::Running {
                execution.notes.push("no retry: the scheduler is shutting down".into());
                break;
            }
            let backoff = spec.backoff_before(number);
            execution.notes.push(format!(
                "attempt {number} {}; retrying in {}",
                status.name(),
                humantime::format_duration(backoff)
            ));
            let mut lifecycle = self.lifecycle.clone();
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                Ok(_) = lifecycle.wait_for(|l| *l != Lifecycle::Running) => {
                    execution.notes.push("no retry: the scheduler is shutting down".into());
                    break;
                }
            }
        }
        if execution.attempts.len() > 1 {
            last.1 = format!("{} (after {} attempts)", last.1, execution.attempts.len());
        }
        if let Lifecycle::Draining(why) = self.lifecycle()
            && last.0 != ExecutionStatus::Cancelled
        {
            execution.notes.push(format!("finished after {why} asked the scheduler to stop"));
        }
        last
    }

    /// Applies the success criteria to an outcome.
    fn judge(
        &self,
        spec: &TaskSpec,
        outcome: TaskOutcome,
        seconds: f64,
        execution: &mut Execution,
    ) -> (ExecutionStatus, String) {
        let results: Vec<CriterionResult> = spec.criteria.iter().map(|c| c.check(&outcome, seconds)).collect();
        let failed: Vec<String> = results
            .iter()
            .filter(|r| !r.passed)
            .map(|r| format!("`{}` (measured {})", r.criterion, r.measured))
            .collect();
        let status = match outcome.status {
            TaskStatus::Skipped => ExecutionStatus::Skipped,
            TaskStatus::Failed => ExecutionStatus::Failed,
            TaskStatus::Succeeded if failed.is_empty() => ExecutionStatus::Succeeded,
            TaskStatus::Succeeded => ExecutionStatus::Failed,
        };
        let summary = if outcome.status == TaskStatus::Succeeded && !failed.is_empty() {
            format!("success criteria not met: {}; {}", failed.join(", "), outcome.summary)
        } else {
            outcome.summary.clone()
        };
        execution.metrics = outcome.metrics;
        execution.details = outcome.details;
        execution.criteria = results;
        (status, summary)
    }

    async fn rollback(&self, spec: &TaskSpec, execution: &Execution) -> Option<RollbackRecord> {
        let argv = spec.rollback.as_ref()?;
        let ctx = TaskContext {
            task_id: spec.id.clone(),
            execution_id: execution.id.clone(),
            started_at: execution.started_at,
            dry_run: false,
            state_dir: self.catalog.state_dir.clone(),
        };
        let argv: Vec<String> = argv.iter().map(|a| expand(a, &ctx)).collect();
        let env = context_env(&ctx);
        tracing::warn!(
            "{}: running the rollback {:?}",
            spec.id,
            argv.iter().map(|a| self.redactor.redact(a)).collect::<Vec<_>>()
        );
        let spec_p = ProcessSpec {
            argv: &argv,
            cwd: &self.catalog.root,
            env: &env,
            stdin: None,
            output_limit: process::DEFAULT_OUTPUT_LIMIT,
            track: Some(&ctx),
        };
        let started = Instant::now();
        Some(match process::run_with_timeout(spec_p, spec.rollback_timeout).await {
            Some(run) => RollbackRecord {
                status: if run.succeeded() { "succeeded" } else { "failed" }.into(),
                exit_code: run.exit_code,
                summary: run.describe(),
                stdout: run.stdout,
                stderr: run.stderr,
                seconds: run.seconds,
                argv,
            },
            None => RollbackRecord {
                status: "timed_out".into(),
                exit_code: None,
                summary: format!("timed out after {}", humantime::format_duration(spec.rollback_timeout)),
                stdout: String::new(),
                stderr: String::new(),
                seconds: started.elapsed().as_secs_f64(),
                argv,
            },
        })
    }
}

/// A task's future with its panics caught: a bug in one task kind fails that execution (with the
/// panic's message), leaves maintenance mode and is recorded, and the scheduler goes on.
struct CatchPanic<F>(F);

impl<F: std::future::Future + Unpin> std::future::Future for CatchPanic<F> {
    type Output = Result<F::Output, String>;

    fn poll(mut self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<Self::Output> {
        let inner = &mut self.0;
        // Unwind safety: after a panic the future is never polled again (it is dropped with this
        // execution), so no state it left half-changed is seen.
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| std::pin::Pin::new(inner).poll(cx))) {
            Ok(poll) => poll.map(Ok),
            Err(payload) => std::task::Poll::Ready(Err(payload
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "(no message)".into()))),
        }
    }
}

/// Resolves when the scheduler starts cancelling.
async fn cancelled(lifecycle: &mut watch::Receiver<Lifecycle>) {
    if lifecycle.wait_for(|l| matches!(l, Lifecycle::Cancelling(_))).await.is_err() {
        // The sender is gone: nobody can cancel any more.
        std::future::pending::<()>().await;
    }
}
