//! The maintenance scheduler through the real binary: the catalog, `schedule preview`,
//! `task run`, maintenance mode, `history`, and the daemon (every-second cron, bounded by
//! `--for` or stopped with SIGTERM), on SQLite and, where a server answers, PostgreSQL.

use crate::context;
use caretaker_test_support::{Output, TestContext};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Writes `maintenance.toml` in the test directory (state in `state/`).
fn catalog(ctx: &TestContext, body: &str) -> PathBuf {
    let path = ctx.path().join("maintenance.toml");
    std::fs::write(&path, format!("{body}\n[scheduler]\nstate = \"state\"\n")).unwrap();
    path
}

fn command_task(id: &str, argv: &str, extra: &str, params: &str) -> String {
    let estimate = if extra.contains("estimated_duration") { "" } else { "estimated_duration = \"1m\"\n" };
    format!(
        "[[tasks]]\nid = \"{id}\"\nkind = \"command\"\n{estimate}{extra}\n[tasks.params]\nargv = {argv}\n{params}\n"
    )
}

fn run(ctx: &TestContext, catalog: &Path, args: &[&str]) -> Output {
    let mut all: Vec<&str> = args.to_vec();
    all.extend(["--catalog", catalog.to_str().unwrap()]);
    ctx.caretaker(&all)
}

/// Runs the binary with extra environment (the fixture's runner sets only the clock).
fn caretaker_env(ctx: &TestContext, args: &[&str], env: &[(&str, &str)]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_caretaker"))
        .args(args)
        .current_dir(ctx.path())
        .env("CARETAKER_NOW", caretaker_test_support::TEST_NOW)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    Output {
        command: format!("caretaker {}", args.join(" ")),
        dir: ctx.path().to_path_buf(),
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[test]
fn the_shipped_catalog_loads_and_previews_the_runbook_schedules() {
    let ctx = context();
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../pipelines/maintenance.toml");
    let out = run(&ctx, &shipped, &["task", "list", "--json"]);
    out.assert_code(0);
    let ids: Vec<String> =
        out.json().as_array().unwrap().iter().map(|t| t["id"].as_str().unwrap().to_string()).collect();
    assert_eq!(
        ids,
        vec![
            "daily_health_check",
            "weekly_retraining",
            "backup",
            "advisories_sync",
            "monthly_security_update",
            "weekly_database_maintenance",
            "daily_data_quality",
            "weekly_performance_review",
            "daily_cache_cleanup",
            "weekly_retention"
        ]
    );
    // The week from Saturday 2026-11-28: 7 health and 7 quality checks, the Saturday database
    // maintenance, Sunday's performance review, Monday's retraining, and the security update on
    // 1 December.
    let out = run(&ctx, &shipped, &["schedule", "preview", "--from", "2026-11-28", "--days", "7", "--json"]);
    out.assert_code(0);
    let p = out.json();
    let by_task = &p["summary"]["by_task"];
    assert_eq!(
        [&by_task["daily_health_check"], &by_task["daily_data_quality"], &by_task["weekly_retraining"]],
        [7, 7, 1]
    );
    assert_eq!([&by_task["weekly_database_maintenance"], &by_task["monthly_security_update"]], [1, 1]);
    assert_eq!(by_task["weekly_performance_review"], 1);
    assert_eq!([&by_task["daily_cache_cleanup"], &by_task["weekly_retention"]], [7, 1]);
    assert!(by_task.get("backup").is_none(), "the backup runs on demand only");
    assert!(by_task.get("advisories_sync").is_none(), "the sync runs before the security update only");
    let at = |id: &str| p["events"].as_array().unwrap().iter().find(|e| e["task_id"] == id).unwrap()["utc"].clone();
    assert_eq!(at("weekly_retraining"), "2026-11-30T02:00:00Z");
    assert_eq!(at("weekly_performance_review"), "2026-11-29T03:00:00Z");
    assert_eq!(at("weekly_database_maintenance"), "2026-11-28T01:00:00Z");
    assert_eq!(at("monthly_security_update"), "2026-12-01T01:00:00Z");
    assert_eq!(at("daily_health_check"), "2026-11-28T06:00:00Z");
    assert_eq!(at("daily_data_quality"), "2026-11-28T04:00:00Z");
    assert_eq!(at("weekly_retention"), "2026-11-29T04:00:00Z");
    // On an install without Redis the cache cleanup is skipped, and says why (a copy of the
    // catalog, so that its state lands in this test's directory).
    std::fs::create_dir_all(ctx.path().join("pipelines")).unwrap();
    std::fs::copy(&shipped, ctx.path().join("pipelines/maintenance.toml")).unwrap();
    std::fs::write(ctx.path().join("pipelines/nightly.toml"), caretaker_test_support::example_pipeline(3_000)).unwrap();
    let out = caretaker_env(
        &ctx,
        &["task", "run", "daily_cache_cleanup", "--catalog", "pipelines/maintenance.toml", "--json"],
        &[("CARETAKER_REDIS_URL", "")],
    );
    let e = out.json();
    assert_eq!(e["status"], "skipped", "{e:#}");
    assert!(
        e["summary"].as_str().unwrap().contains("no Redis is configured: environment variable CARETAKER_REDIS_URL"),
        "{e:#}"
    );
}

#[test]
fn schedule_preview_shows_firings_summary_overlaps_and_daylight_saving() {
    let ctx = context();
    let cat = catalog(
        &ctx,
        &format!(
            "time_zone = \"Europe/Berlin\"\n{}{}{}",
            command_task(
                "backup",
                "[\"true\"]",
                "schedule = \"0 1 * * 6\"\nestimated_duration = \"45m\"\ncomponents = [\"db\"]\npriority = \"critical\"",
                ""
            ),
            command_task(
                "vacuum",
                "[\"true\"]",
                "schedule = \"30 1 * * 6\"\nestimated_duration = \"30m\"\ncomponents = [\"db\", \"disk\"]\ntype = \"corrective\"",
                ""
            ),
            command_task(
                "nightly",
                "[\"true\"]",
                "schedule = \"30 2 * * *\"\nestimated_duration = \"15m\"\ncomponents = [\"models\"]",
                ""
            ),
        ),
    );
    let out = run(&ctx, &cat, &["schedule", "preview", "--from", "2026-03-26", "--days", "7", "--json"]);
    out.assert_code(0);
    let p = out.json();
    assert_eq!(p["summary"]["events"], 9, "7 nightly + backup + vacuum");
    assert_eq!(p["summary"]["total_minutes"], 7.0 * 15.0 + 45.0 + 30.0);
    assert_eq!(p["summary"]["by_priority"]["critical"], 1);
    assert_eq!(p["summary"]["by_type"]["corrective"], 1);
    let warnings = p["warnings"].as_array().unwrap();
    let overlap: Vec<_> = warnings.iter().filter(|w| w["kind"] == "overlap").collect();
    assert_eq!(overlap.len(), 1, "{warnings:#?}");
    assert_eq!(overlap[0]["component"], "db");
    let dst: Vec<_> = warnings.iter().filter(|w| w["kind"] == "dst").collect();
    assert_eq!(dst.len(), 1, "{warnings:#?}");
    assert!(dst[0]["message"].as_str().unwrap().contains("02:30:00 does not exist on 2026-03-29 in Europe/Berlin"));
    // The moved firing, in local and UTC time.
    let moved = p["events"].as_array().unwrap().iter().find(|e| !e["dst"].is_null()).unwrap();
    assert_eq!(moved["utc"], "2026-03-29T01:00:00Z");
    assert_eq!(moved["local"], "2026-03-29T03:00:00+02:00");

    let out = run(&ctx, &cat, &["schedule", "preview", "--from", "2026-03-26", "--days", "7"]);
    out.assert_code(0)
        .assert_stdout_contains("2026-03-29 03:00 CEST")
        .assert_stdout_contains("summary   9 events, 180 min (3.0 h) in total, 20.0 min on average")
        .assert_stdout_contains("by priority: critical 1, medium 8")
        .assert_stdout_contains("backup and vacuum overlap on component \"db\"");
}

#[test]
fn a_malformed_catalog_is_rejected_naming_the_file_and_key() {
    let ctx = context();
    let cat = catalog(
        &ctx,
        &format!(
            "{}{}",
            command_task("backup", "[\"true\"]", "schedule = \"0 25 * * *\"", ""),
            command_task(
                "update",
                "[\"true\"]",
                "prerequisites = [\"bakup\"]\nsuccess_criteria = [\"looks_fine == 1\"]",
                ""
            ),
        ),
    );
    for args in
        [&["schedule", "preview"][..], &["task", "run", "backup"], &["scheduler", "start", "--for", "1"], &["history"]]
    {
        let out = run(&ctx, &cat, args);
        out.assert_code(2)
            .assert_stderr_contains("maintenance.toml")
            .assert_stderr_contains("tasks.backup.schedule: \"0 25 * * *\" is not a cron expression")
            .assert_stderr_contains("tasks.update.prerequisites: unknown prerequisite \"bakup\"")
            .assert_stderr_contains(
                "tasks.update.success_criteria[0]: \"looks_fine == 1\": unknown metric \"looks_fine\"",
            );
        assert!(out.stdout.is_empty(), "{}", out.stdout);
    }
    let unknown_key =
        catalog(&ctx, "[[tasks]]\nid = \"a\"\nkind = \"command\"\nestimated_duration = \"1m\"\ncron = \"* * * * *\"\n");
    run(&ctx, &unknown_key, &["task", "list"]).assert_code(2).assert_stderr_contains("unknown field `cron`");
    run(&ctx, Path::new("missing.toml"), &["task", "list"]).assert_code(2).assert_stderr_contains("missing.toml");
}

#[test]
fn task_run_records_metrics_then_a_failure_with_its_rollback_and_history_reports_both() {
    let ctx = context();
    let cat = catalog(
        &ctx,
        &format!(
            "{}{}{}",
            command_task(
                "measure",
                r#"["sh", "-c", "echo working; echo 'METRICS: {\"rows_fixed\": 12, \"healthy\": true}'"]"#,
                "success_criteria = [\"exit_code == 0\", \"rows_fixed >= 10\", \"healthy == true\"]",
                "metrics = [\"rows_fixed\", \"healthy\"]"
            ),
            // The URL and a token come through the environment (never a command line); the
            // command prints both, as a failing program might.
            command_task(
                "migrate",
                r#"["sh", "-c", "echo \"connecting to $DB_URL with $API_TOKEN\" >&2; exit 3"]"#,
                "rollback = [\"sh\", \"-c\", \"echo undone > rollback.txt\"]",
                "env = { DB_URL = \"postgres://app:Hunter2Secret@db/x\", API_TOKEN = \"tok-9f8e7d6c5b\" }"
            ),
            // 200 ms of sleep against a 10 ms estimate: slower than 1.5x whatever the machine.
            command_task("slow", r#"["sleep", "0.2"]"#, "estimated_duration = \"10ms\"", ""),
        ),
    );
    let out = run(&ctx, &cat, &["task", "run", "measure", "--json"]);
    out.assert_code(0);
    let e = out.json();
    assert_eq!(e["status"], "succeeded");
    assert_eq!(e["metrics"]["rows_fixed"], 12.0);
    assert_eq!(e["metrics"]["healthy"], 1.0);
    assert_eq!(e["criteria"].as_array().unwrap().len(), 3);
    assert_eq!(e["details"]["process"]["stdout"].as_str().unwrap().lines().next(), Some("working"));

    let out = run(&ctx, &cat, &["task", "run", "migrate"]);
    out.assert_code(1)
        .assert_stdout_contains("task      migrate  failed")
        .assert_stdout_contains("rollback  succeeded");
    assert_eq!(std::fs::read_to_string(ctx.path().join("rollback.txt")).unwrap(), "undone\n");
    for secret in ["Hunter2Secret", "tok-9f8e7d6c5b"] {
        assert!(!out.stdout.contains(secret) && !out.stderr.contains(secret), "{}{}", out.stdout, out.stderr);
    }
    let shown = run(&ctx, &cat, &["task", "run", "migrate", "--json"]);
    let stderr = shown.json()["details"]["process"]["stderr"].as_str().unwrap().to_string();
    assert_eq!(
        stderr.trim(),
        "connecting to postgres://app:***@db/x with ***",
        "the history keeps the output, redacted"
    );
    run(&ctx, &cat, &["task", "run", "slow"]).assert_code(0);
    run(&ctx, &cat, &["task", "run", "nope"])
        .assert_code(2)
        .assert_stderr_contains("no task \"nope\"; tasks: measure, migrate, slow");

    let out = run(&ctx, &cat, &["history", "--days", "7", "--json"]);
    out.assert_code(0);
    let h = out.json();
    assert_eq!(h["executions"], 4);
    assert!((h["success_rate"].as_f64().unwrap() - 2.0 / 4.0).abs() < 1e-9);
    assert_eq!(h["failed_tasks"][0]["task_id"], "migrate");
    assert_eq!(h["failed_tasks"][0]["last_rollback"], "succeeded");
    assert_eq!(h["slow_tasks"][0]["task_id"], "slow");
    let recs: Vec<&str> = h["recommendations"].as_array().unwrap().iter().map(|r| r.as_str().unwrap()).collect();
    assert_eq!(recs.len(), 3, "{recs:#?}");
    assert!(recs[0].starts_with("Review the failed tasks: migrate"));
    assert!(recs[1].starts_with("Optimise the slow tasks"));
    assert!(recs[2].contains("below 90% success: migrate 0% (0 of 2)"));
    assert!(!out.stdout.contains("Hunter2Secret"), "a password reached the history");
    let text = run(&ctx, &cat, &["history"]);
    text.assert_code(0).assert_stdout_contains("executions 4 (2 failed, 2 succeeded); success rate 50.0%");

    // A password on a command line (argv, rollback, notification command) is refused when the
    // catalog loads: every user of the machine can read it with ps.
    for (body, key) in [
        (command_task("leak", r#"["psql", "postgres://app:pw1234@db/x"]"#, "", ""), "tasks.leak.params.argv[1]"),
        (
            command_task("leak", r#"["true"]"#, "rollback = [\"psql\", \"password=pw1234\"]", ""),
            "tasks.leak.rollback[1]",
        ),
        (
            format!(
                "[notifications]\ncommand = [\"notify\", \"--token=pw1234\"]\n{}",
                command_task("ok", r#"["true"]"#, "", "")
            ),
            "notifications.command[1]",
        ),
    ] {
        let leaky = ctx.path().join("leaky.toml");
        std::fs::write(&leaky, format!("{body}\n[scheduler]\nstate = \"state\"\n")).unwrap();
        let out = run(&ctx, &leaky, &["task", "list"]);
        out.assert_code(2).assert_stderr_contains(key).assert_stderr_contains("can read on a command line");
        assert!(!out.stderr.contains("pw1234"), "{}", out.stderr);
    }
}

#[test]
fn maintenance_mode_on_off_status_holds_non_critical_tasks_and_notifies() {
    let ctx = context();
    let cat = catalog(
        &ctx,
        &format!(
            "[notifications]\ncommand = [\"sh\", \"-c\", \"cat >> notified.jsonl; echo >> notified.jsonl\"]\n{}{}",
            command_task("report", "[\"touch\", \"reported\"]", "priority = \"low\"", ""),
            command_task(
                "upgrade",
                "[\"sh\", \"-c\", \"test -f state/maintenance.json\"]",
                "priority = \"critical\"",
                ""
            ),
        ),
    );
    let out = run(&ctx, &cat, &["maintenance", "status", "--json"]);
    out.assert_code(0);
    assert_eq!(out.json()["on"], false);
    run(&ctx, &cat, &["maintenance", "on", "--reason", "database upgrade"])
        .assert_code(0)
        .assert_stdout_contains("maintenance mode is ON since 2026-11-28 02:00:00 UTC (by manual: database upgrade)");
    let out = run(&ctx, &cat, &["maintenance", "status", "--json"]);
    let status = out.json();
    assert_eq!((status["on"].as_bool(), status["by"].as_str()), (Some(true), Some("manual")));

    let out = run(&ctx, &cat, &["task", "run", "report"]);
    out.assert_code(1).assert_stdout_contains("skipped").assert_stdout_contains("maintenance mode is on");
    assert!(!ctx.path().join("reported").exists());

    run(&ctx, &cat, &["maintenance", "off"])
        .assert_code(0)
        .assert_stdout_contains("maintenance mode is off (it was on since");
    run(&ctx, &cat, &["maintenance", "status"]).assert_code(0).assert_stdout_contains("maintenance mode is off");
    run(&ctx, &cat, &["task", "run", "report"]).assert_code(0);
    assert!(ctx.path().join("reported").exists());

    // A critical task turns it on for its run (its command checks) and off after.
    run(&ctx, &cat, &["task", "run", "upgrade"])
        .assert_code(0)
        .assert_stdout_contains("note      entered maintenance mode");
    assert!(!ctx.path().join("state/maintenance.json").exists());
    let events: Vec<String> = std::fs::read_to_string(ctx.path().join("notified.jsonl"))
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["event"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(events, vec!["maintenance_entered", "maintenance_left", "maintenance_entered", "maintenance_left"]);
}

#[test]
fn a_data_quality_task_runs_the_pipeline_and_reports_its_score() {
    let ctx = context();
    ctx.pipeline("");
    // `quality` reads the data; the example data is written by `demo` (as `run` would on first use).
    ctx.caretaker(&["demo", "--out", "data", "--rows", "3000"]).assert_code(0);
    let cat = catalog(
        &ctx,
        "[[tasks]]\nid = \"quality\"\nkind = \"pipeline\"\nestimated_duration = \"5m\"\nsuccess_criteria = [\"quality_score >= 0.9\", \"rows >= 1000\"]\n[tasks.params]\npipeline = \"pipelines/test.toml\"\nmode = \"quality\"\n",
    );
    let out = run(&ctx, &cat, &["task", "run", "quality", "--json"]);
    out.assert_code(0);
    let e = out.json();
    assert_eq!(e["status"], "succeeded", "{e:#}");
    assert!(e["metrics"]["quality_score"].as_f64().unwrap() >= 0.9);
    assert_eq!(e["metrics"]["exit_code"], 0.0);
    assert!(e["summary"].as_str().unwrap().starts_with("quality score"), "{}", e["summary"]);
    // A broken pipeline file is a catalog error, before anything runs.
    std::fs::write(ctx.path().join("pipelines/test.toml"), "name = 1").unwrap();
    run(&ctx, &cat, &["task", "run", "quality"]).assert_code(2).assert_stderr_contains("tasks.quality.params.pipeline");
}

/// Starts the daemon in the background.
fn spawn_daemon(ctx: &TestContext, cat: &Path, now: &str, extra: &[&str], env: &[(&str, &str)]) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_caretaker"))
        .args(["scheduler", "start", "--catalog", cat.to_str().unwrap(), "--json"])
        .args(extra)
        .current_dir(ctx.path())
        .env("CARETAKER_NOW", now)
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn finish(child: std::process::Child) -> (Option<i32>, serde_json::Value, String) {
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let json = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}\n{stderr}"));
    (out.status.code(), json, stderr)
}

fn history(ctx: &TestContext, cat: &Path, env: &[(&str, &str)]) -> serde_json::Value {
    let out = caretaker_env(ctx, &["history", "--catalog", cat.to_str().unwrap(), "--json", "--days", "365"], env);
    out.assert_code(0);
    out.json()
}

#[test]
fn the_daemon_fires_a_0230_task_once_across_the_berlin_transitions() {
    let ctx = context();
    let cat = catalog(
        &ctx,
        &command_task("nightly", "[\"true\"]", "schedule = \"30 2 * * *\"\ntime_zone = \"Europe/Berlin\"", ""),
    );
    // Spring forward: 02:30 does not exist on 2026-03-29; the task fires at 03:00 CEST = 01:00 UTC,
    // two seconds after this start.
    let (code, summary, stderr) = finish(spawn_daemon(&ctx, &cat, "2026-03-29T00:59:58Z", &["--for", "4"], &[]));
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(summary["executions"]["succeeded"], 1, "{summary:#}\n{stderr}");
    let h = history(&ctx, &cat, &[]);
    assert_eq!(h["executions"], 1);
    // Fall back: starting during the second 02:30 (CET) of 2026-10-25, after the first one
    // (CEST) has fired, nothing fires again.
    let (code, summary, stderr) = finish(spawn_daemon(&ctx, &cat, "2026-10-25T00:29:58Z", &["--for", "4"], &[]));
    assert_eq!((code, &summary["executions"]["succeeded"]), (Some(0), &serde_json::json!(1)), "{summary:#}\n{stderr}");
    let (code, summary, stderr) = finish(spawn_daemon(&ctx, &cat, "2026-10-25T01:29:58Z", &["--for", "4"], &[]));
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(summary["executions"], serde_json::json!({}), "the repeated 02:30 fired again: {summary:#}");
}

#[test]
fn the_daemon_stops_on_sigterm_and_records_the_task_it_finished() {
    let ctx = context();
    let cat = catalog(
        &ctx,
        &command_task(
            "tick",
            r#"["sh", "-c", "echo {execution_id} >> ticks; sleep 1"]"#,
            "schedule = \"* * * * * *\"",
            "",
        ),
    );
    let child = spawn_daemon(&ctx, &cat, caretaker_test_support::TEST_NOW, &[], &[]);
    // Wait (bounded) until a tick has started, then ask the daemon to stop.
    let ticks = ctx.path().join("ticks");
    for _ in 0..300 {
        if std::fs::read_to_string(&ticks).is_ok_and(|t| t.lines().count() >= 2) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let pid = child.id().to_string();
    Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    let (code, summary, stderr) = finish(child);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(summary["stop_reason"], "SIGTERM");
    let h = history(&ctx, &cat, &[]);
    // Every tick that started was recorded, none left running, and each was one firing.
    let started = std::fs::read_to_string(&ticks).unwrap().lines().count();
    assert!(started >= 2);
    assert_eq!(h["by_status"]["succeeded"].as_u64().unwrap() as usize, started, "{h:#}");
    assert!(h["unfinished"].as_array().unwrap().is_empty(), "{h:#}");
}

#[test]
fn two_schedulers_on_one_postgres_database_run_each_firing_once() {
    // Dropped when the test ends, whether it passes or fails.
    let Some(database) = caretaker_test_support::postgres::TestDatabase::create("two_schedulers") else { return };
    let url = database.url().to_string();
    let ctx = context();
    let cat = catalog(
        &ctx,
        &command_task("tick", r#"["sh", "-c", "echo {execution_id} >> ticks"]"#, "schedule = \"* * * * * *\"", ""),
    );
    let env = [("CARETAKER_DATABASE_URL", url.as_str())];
    let a = spawn_daemon(&ctx, &cat, caretaker_test_support::TEST_NOW, &["--for", "5"], &env);
    let b = spawn_daemon(&ctx, &cat, caretaker_test_support::TEST_NOW, &["--for", "5"], &env);
    let (code_a, sa, err_a) = finish(a);
    let (code_b, sb, err_b) = finish(b);
    assert_eq!((code_a, code_b), (Some(0), Some(0)), "{err_a}\n{err_b}");
    let ran = |s: &serde_json::Value| s["executions"]["succeeded"].as_u64().unwrap_or(0);
    let elsewhere = |s: &serde_json::Value| s["claimed_elsewhere"].as_u64().unwrap_or(0);
    // Both competed for the same firings...
    assert!(elsewhere(&sa) + elsewhere(&sb) >= 1, "the schedulers never met: {sa:#}\n{sb:#}");
    // ...and every firing ran exactly once: one line per execution, one execution per firing.
    let lines = std::fs::read_to_string(ctx.path().join("ticks")).unwrap().lines().count() as u64;
    assert_eq!(lines, ran(&sa) + ran(&sb), "{sa:#}\n{sb:#}");
    let h = history(&ctx, &cat, &env);
    assert_eq!(h["executions"].as_u64().unwrap(), lines, "{h:#}");
    assert!(h["history"].as_str().unwrap().starts_with("PostgreSQL postgres://"));
}

#[test]
fn two_schedulers_spread_four_pipelines_over_their_slots_and_run_each_once() {
    // Dropped when the test ends, whether it passes or fails.
    let Some(database) = caretaker_test_support::postgres::TestDatabase::create("spread") else { return };
    let url = database.url().to_string();
    let ctx = context();
    // Four pipelines, each with its own data, models and state, their run history in the same
    // database; four tasks due at the same second; two schedulers of one slot each.
    let mut tasks = String::new();
    for p in ["p1", "p2", "p3", "p4"] {
        let pipeline = caretaker_test_support::example_pipeline(3_000)
            .replace("name = \"bridge-failures\"", &format!("name = \"{p}\""))
            .replace("path = \"data/events\"", &format!("path = \"{p}/events\""))
            .replace("store = \"data/patterns/store.parquet\"", &format!("store = \"{p}/patterns/store.parquet\""))
            .replace("archive = \"data/patterns/archive\"", &format!("archive = \"{p}/patterns/archive\""))
            .replace("models = \"models\"", &format!("models = \"{p}/models\""))
            .replace("reports = \"reports\"", &format!("reports = \"{p}/reports\""))
            .replace("state = \"state\"", &format!("state = \"{p}/state\"\nhistory = \"{url}\""));
        assert!(pipeline.contains(&format!("{p}/state")) && pipeline.contains(&format!("{p}/events")));
        std::fs::create_dir_all(ctx.path().join("pipelines")).unwrap();
        std::fs::write(ctx.path().join(format!("pipelines/{p}.toml")), pipeline).unwrap();
        tasks.push_str(&format!(
            "[[tasks]]\nid = \"{p}\"\nkind = \"pipeline\"\nestimated_duration = \"1m\"\nschedule = \"2 0 2 * * *\"\n\
             [tasks.params]\npipeline = \"pipelines/{p}.toml\"\nmode = \"run\"\n"
        ));
    }
    let cat = ctx.path().join("maintenance.toml");
    std::fs::write(&cat, format!("{tasks}\n[scheduler]\nstate = \"state\"\nmax_running = 1\n")).unwrap();
    let env = [("CARETAKER_DATABASE_URL", url.as_str())];
    // Both start two seconds before 02:00:02, when the four are due.
    let a = spawn_daemon(&ctx, &cat, "2026-11-28T02:00:00Z", &["--for", "25"], &env);
    let b = spawn_daemon(&ctx, &cat, "2026-11-28T02:00:00Z", &["--for", "25"], &env);
    let (code_a, sa, err_a) = finish(a);
    let (code_b, sb, err_b) = finish(b);
    assert_eq!((code_a, code_b), (Some(0), Some(0)), "{err_a}\n{err_b}");
    let ran = |s: &serde_json::Value| s["executions"]["succeeded"].as_u64().unwrap_or(0);
    // The work spread: a scheduler busy with one pipeline left the next to the other.
    assert!(ran(&sa) >= 1 && ran(&sb) >= 1, "one scheduler ran everything: {sa:#}\n{sb:#}");
    assert_eq!(ran(&sa) + ran(&sb), 4, "{sa:#}\n{sb:#}\n{err_a}\n{err_b}");
    // Each firing ran once, and each pipeline's one run is in the shared run history.
    let h = history(&ctx, &cat, &env);
    assert_eq!(h["executions"], 4, "{h:#}");
    for p in ["p1", "p2", "p3", "p4"] {
        let pipeline = format!("pipelines/{p}.toml");
        let runs = ctx.caretaker(&["runs", "list", "--pipeline", &pipeline, "--json"]);
        runs.assert_code(0);
        let runs = runs.json();
        assert_eq!(runs.as_array().unwrap().len(), 1, "{p}: {runs:#}");
        assert_eq!(runs[0]["pipeline"], p);
    }
    assert!(!ctx.path().join("p1/state/history.sqlite").exists());
}

/// A directory laid out as OSV's export (`crates.io/all.zip`), holding the security_scan
/// fixture's crates.io records.
fn osv_mirror(dir: &Path) {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("../caretaker-tasks/tests/fixtures/osv/crates");
    std::fs::create_dir_all(dir.join("crates.io")).unwrap();
    let file = std::fs::File::create(dir.join("crates.io/all.zip")).unwrap();
    let mut zip = zip::ZipWriter::new(file);
    for entry in std::fs::read_dir(&fixture).unwrap().flatten() {
        zip.start_file(entry.file_name().to_string_lossy(), zip::write::SimpleFileOptions::default()).unwrap();
        std::io::Write::write_all(&mut zip, &std::fs::read(entry.path()).unwrap()).unwrap();
    }
    zip.finish().unwrap();
}

#[test]
fn the_security_update_works_on_a_fresh_install_and_says_what_to_do_offline() {
    let ctx = context();
    // The shipped catalog and nightly pipeline, as a fresh clone has them; a project whose
    // Cargo.lock pins a vulnerable smallvec; OSV's export on a mirror directory.
    let shipped =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../pipelines/maintenance.toml"))
            .unwrap();
    std::fs::create_dir_all(ctx.path().join("pipelines")).unwrap();
    std::fs::write(ctx.path().join("pipelines/nightly.toml"), caretaker_test_support::example_pipeline(3_000)).unwrap();
    let with_source = |source: &str| {
        let text =
            shipped.replacen("# source = \"https://osv-vulnerabilities", &format!("source = \"{source}\"\n# \""), 1);
        assert_ne!(text, shipped, "the shipped catalog names the source of advisories_sync");
        std::fs::write(ctx.path().join("pipelines/maintenance.toml"), text).unwrap();
        ctx.path().join("pipelines/maintenance.toml")
    };
    std::fs::write(
        ctx.path().join("Cargo.lock"),
        "version = 4\n\n[[package]]\nname = \"smallvec\"\nversion = \"1.6.0\"\nsource = \"registry+https://github.com/rust-lang/crates.io-index\"\n",
    )
    .unwrap();
    osv_mirror(&ctx.path().join("mirror"));
    // README command 1 has run: the run history the backup copies exists.
    ctx.caretaker(&["run", "pipelines/nightly.toml"]).assert_code(0);
    let cat = with_source("mirror");
    let out = run(&ctx, &cat, &["task", "run", "monthly_security_update", "--json"]);
    let e = out.json();
    let notes = e["notes"].to_string();
    assert!(
        notes.contains("prerequisite backup: succeeded") && notes.contains("prerequisite advisories_sync: succeeded"),
        "{e:#}"
    );
    let summary = e["summary"].as_str().unwrap();
    assert!(summary.contains("advisories (synced 2026-11-28)"), "the scan ran on the synced database: {summary}");
    let ids: Vec<&str> =
        e["details"]["findings"].as_array().unwrap().iter().map(|f| f["id"].as_str().unwrap()).collect();
    assert!(ids.contains(&"CARETAKER-TEST-0001"), "{ids:?}");
    assert!(ctx.path().join("advisories/crates.io/CARETAKER-TEST-0001.json").is_file());
    let status = ctx.caretaker(&["advisories", "status"]);
    status.assert_code(0).assert_stdout_contains("advisories synced 2026-11-28");

    // Without the network (nothing answers): the prerequisite fails, the scan does not run on a
    // database it cannot trust, and the reason says what to do; the synced database is kept.
    let cat = with_source("http://127.0.0.1:9");
    let out = run(&ctx, &cat, &["task", "run", "monthly_security_update", "--json"]);
    let e = out.json();
    assert_eq!(e["status"], "skipped", "{e:#}");
    let summary = e["summary"].as_str().unwrap();
    assert!(summary.contains("prerequisite advisories_sync failed"), "{summary}");
    assert!(summary.contains("cannot fetch http://127.0.0.1:9/crates.io/all.zip"), "{summary}");
    assert!(summary.contains("without internet"), "{summary}");
    assert!(ctx.path().join("advisories/crates.io/CARETAKER-TEST-0001.json").is_file());

    // The command does the same by hand.
    let out = ctx.caretaker(&["advisories", "sync", "--source", "mirror", "--ecosystem", "crates.io"]);
    out.assert_code(0).assert_stdout_contains("synced 3 advisories (crates.io 3) from");
    let out = ctx.caretaker(&["advisories", "sync", "--source", "http://127.0.0.1:9", "--ecosystem", "crates.io"]);
    out.assert_code(1).assert_stderr_contains("is as it was");
}
