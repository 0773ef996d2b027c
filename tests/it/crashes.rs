//! Issue 27: `models reset`, `run` and a critical task killed with SIGKILL at random points, and
//! after each kill the same command run again with no manual step: it proceeds, maintenance mode
//! is off, no process the killed one started is left, the champion loads (blake3 checked), and
//! the ledger, the run history and the task history read.
//!
//! `CARETAKER_KILL_ITERATIONS` sets how many kills (default 51, a third each) and
//! `CARETAKER_KILL_SEED` where they land (default: from the clock; a failure prints the seed to
//! rerun it with).

use crate::context;
use caretaker_test_support::TestContext;
use serde_json::Value;
use std::process::Stdio;
use std::time::{Duration, Instant};

/// A small seeded generator (xorshift64*): the kill points, reproducible from the seed.
struct Points(u64);

impl Points {
    fn fraction(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[derive(Clone, Copy, Debug)]
enum Kind {
    Reset,
    Run,
    CriticalTask,
}

const TASK: &str = "upgrade";

fn args<'a>(kind: Kind, pipeline: &'a str, catalog: &'a str) -> Vec<&'a str> {
    match kind {
        Kind::Reset => vec!["models", "reset", pipeline, "--reason", "kill loop"],
        Kind::Run => vec!["run", pipeline],
        Kind::CriticalTask => vec!["task", "run", TASK, "--catalog", catalog],
    }
}

/// Processes that carry `mark` in their environment (what a killed command started inherits it).
fn marked(mark: &str) -> Vec<u32> {
    let needle = format!("KILL_LOOP_MARK={mark}");
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
        let zombie = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|s| s.rsplit_once(')').map(|(_, rest)| rest.trim_start().starts_with('Z')))
            .unwrap_or(true);
        let Ok(environ) = std::fs::read(format!("/proc/{pid}/environ")) else { continue };
        if !zombie && environ.split(|b| *b == 0).any(|v| v == needle.as_bytes()) {
            found.push(pid);
        }
    }
    found
}

/// Runs the command unkilled; returns how long it took. Exit 0 is what proceeding means for all
/// three (the reset deploys, the run deploys or keeps the champion, the task succeeds).
fn proceed(ctx: &TestContext, kind: Kind, pipeline: &str, catalog: &str, what: &str) -> Duration {
    let started = Instant::now();
    let out = ctx.caretaker(&args(kind, pipeline, catalog));
    assert_eq!(out.code, Some(0), "{what}: {kind:?} after the kill did not proceed:\n{}\n{}", out.stdout, out.stderr);
    started.elapsed()
}

/// Temporary files and directories anywhere under `dir` (a killed writer's, if any are left).
/// Those in directories other processes write too (`state/` and `state/children/`, `reports/` and
/// its run directories, the pattern store's) are swept by a run once a minute old: one may stay
/// while it was younger than that at the last run's start, `last_run` ago.
fn leftovers(dir: &std::path::Path, last_run: Duration, out: &mut Vec<String>) {
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let shared = ["state", "children", "reports", "patterns"].iter().any(|d| dir.ends_with(d))
            || dir.parent().is_some_and(|p| p.ends_with("reports"));
        let young = entry
            .metadata()
            .and_then(|m| m.modified())
            .is_ok_and(|t| t.elapsed().unwrap_or_default() < Duration::from_secs(60) + last_run);
        if shared && young && name.starts_with(".caretaker-tmp-") {
            continue;
        }
        if [".caretaker-tmp-", ".staging-", ".reset-", ".maintenance-stale-"].iter().any(|p| name.starts_with(p)) {
            out.push(entry.path().display().to_string());
        } else if entry.file_type().is_ok_and(|t| t.is_dir()) {
            leftovers(&entry.path(), last_run, out);
        }
    }
}

fn check_state(ctx: &TestContext, pipeline: &str, catalog: &str, mark: &str, last_run: Instant, what: &str) {
    let status = ctx.caretaker(&["maintenance", "status", "--state", "state", "--json"]);
    status.assert_code(0);
    let mode = status.json();
    assert_eq!(mode["on"], false, "{what}: nothing live holds maintenance mode now: {mode:#}");
    // What the killed process started is gone (its parent-death signal, or the next command's
    // sweep); give the kernel a moment to deliver the signals.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !marked(mark).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(marked(mark), Vec::<u32>::new(), "{what}: processes the killed command started are still running");
    let mut left = Vec::new();
    leftovers(ctx.path(), last_run.elapsed(), &mut left);
    assert_eq!(left, Vec::<String>::new(), "{what}: temporary files the next command did not sweep");
    let pointer = ctx.read_json("models/champion.json");
    let version = pointer["version"].as_str().unwrap_or_else(|| panic!("{what}: champion.json: {pointer}"));
    ctx.caretaker(&["models", "show", version, "--pipeline", pipeline]).assert_code(0);
    let ledger = ctx.caretaker(&["models", "ledger", "--pipeline", pipeline, "--json"]);
    ledger.assert_code(0);
    assert_eq!(ledger.json().as_array().unwrap().last().unwrap()["version"], version, "{what}");
    ctx.caretaker(&["runs", "list", "--pipeline", pipeline, "--json"]).assert_code(0);
    let history = ctx.caretaker(&["history", "--catalog", catalog, "--json", "--days", "3650"]);
    history.assert_code(0);
    let history = history.json();
    assert!(history["executions"].as_u64().unwrap() > 0, "{what}: {history:#}");
    assert_eq!(history["unfinished"], Value::Array(Vec::new()), "{what}: executions left running");
}

#[test]
fn commands_killed_at_random_points_leave_nothing_the_next_one_trips_over() {
    let iterations: usize = std::env::var("CARETAKER_KILL_ITERATIONS").ok().and_then(|v| v.parse().ok()).unwrap_or(51);
    let seed: u64 = std::env::var("CARETAKER_KILL_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64
    });
    let mut points = Points(seed | 1);
    let ctx = context();
    let pipeline = ctx.pipeline("");
    let pipeline = pipeline.to_str().unwrap();
    // A critical task whose shell starts a background job, the kind of child that outlives a
    // killed runner unless something ends it. It sleeps long when it is to be killed.
    let catalog = ctx.path().join("maintenance.toml");
    std::fs::write(
        &catalog,
        format!(
            "[[tasks]]\nid = \"{TASK}\"\nkind = \"command\"\npriority = \"critical\"\nestimated_duration = \"1m\"\n\
             [tasks.params]\nargv = [\"sh\", \"-c\", \"sleep ${{KILL_LOOP_SLEEP:-0.2}} & wait\"]\n\
             [scheduler]\nstate = \"state\"\n"
        ),
    )
    .unwrap();
    let catalog = catalog.to_str().unwrap();

    // How long each takes unkilled: the kill points fall anywhere in that span.
    let kinds = [Kind::Reset, Kind::Run, Kind::CriticalTask];
    let mut span = [Duration::ZERO; 3];
    // When the last unkilled run started: it swept the temporary files a minute old.
    let mut last_run = Instant::now();
    ctx.caretaker(&["run", pipeline]).assert_code(0);
    for (i, kind) in kinds.iter().enumerate() {
        span[i] = proceed(&ctx, *kind, pipeline, catalog, "unkilled");
    }
    // The task's own command sleeps 0.2 s unkilled and a minute when killed: give its runner
    // time to start the child and leave it sleeping.
    span[2] += Duration::from_millis(300);

    // What the kills hit: killed mid-work (not finished first), and left maintenance mode or a
    // process behind for the next command to deal with.
    let mut killed = [0usize; 3];
    let mut left_maintenance = [0usize; 3];
    let mut left_processes = 0usize;
    for iteration in 0..iterations {
        let k = iteration % kinds.len();
        let kind = kinds[k];
        let mark = format!("{seed}-{iteration}");
        let after = span[k].mul_f64(points.fraction());
        let what = format!(
            "kill {iteration} ({kind:?} after {} ms; rerun with CARETAKER_KILL_SEED={seed})",
            after.as_millis()
        );
        let mut child = ctx
            .command(&args(kind, pipeline, catalog))
            .env("KILL_LOOP_MARK", &mark)
            .env("KILL_LOOP_SLEEP", "60")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(after);
        let _ = child.kill(); // SIGKILL; it may have finished already
        let status = child.wait().unwrap();
        if std::os::unix::process::ExitStatusExt::signal(&status) == Some(9) {
            killed[k] += 1;
        }
        if ctx.path().join("state/maintenance.json").exists() {
            left_maintenance[k] += 1;
        }
        if !marked(&mark).is_empty() {
            left_processes += 1;
        }
        if matches!(kind, Kind::Run) {
            last_run = Instant::now();
        }
        proceed(&ctx, kind, pipeline, catalog, &what);
        check_state(&ctx, pipeline, catalog, &mark, last_run, &what);
    }
    eprintln!(
        "{iterations} kills (seed {seed}): killed mid-work {killed:?}, left maintenance mode on {left_maintenance:?} \
         (reset, run, critical task), left a process running {left_processes}; spans {span:?}"
    );
    if iterations >= 30 {
        // Each kind was killed mid-work, and the kills left the states this test is about.
        assert!(killed.iter().all(|n| *n > 0), "kills that landed mid-work: {killed:?}");
        assert!(
            left_maintenance[0] + left_maintenance[2] > 0,
            "no kill left maintenance mode on: {left_maintenance:?}"
        );
        assert!(left_processes > 0, "no kill left the task's child running for the next command to end");
    }
}
