use crate::testing::{self, build};
use caretaker_core::task::{TaskOutcome, TaskStatus};
use std::path::{Path, PathBuf};

fn fixture_db() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/osv")
}

const CARGO_LOCK: &str = r#"version = 4

[[package]]
name = "app"
version = "0.1.0"

[[package]]
name = "smallvec"
version = "1.6.0"
source = "registry+https://github.com/rust-lang/crates.io-index"

[[package]]
name = "time"
version = "0.2.22"
source = "registry+https://github.com/rust-lang/crates.io-index"

[[package]]
name = "serde"
version = "1.0.0"
source = "registry+https://github.com/rust-lang/crates.io-index"
"#;

const PACKAGE_LOCK: &str = r#"{"name": "ui", "lockfileVersion": 3, "packages": {
  "": {"name": "ui"},
  "node_modules/lodash": {"version": "4.17.20"},
  "node_modules/left-pad": {"version": "1.3.0"}}}"#;

/// A project with the three lockfiles, each pinning one vulnerable version or more.
fn project() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("Cargo.lock"), CARGO_LOCK).unwrap();
    std::fs::write(dir.path().join("requirements.txt"), "requests==2.19.1\nflask\n").unwrap();
    std::fs::write(dir.path().join("package-lock.json"), PACKAGE_LOCK).unwrap();
    dir
}

/// The fixture's records are from 2025-12 and 2026-01: the age check has a test of its own.
fn params(extra: &str) -> String {
    format!("advisories = '{}'\nexternal_tools = false\nmax_age_days = 0\n{extra}", fixture_db().display())
}

fn finding<'a>(outcome: &'a TaskOutcome, id: &str) -> &'a serde_json::Value {
    outcome.details["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["id"] == id)
        .unwrap_or_else(|| panic!("no finding {id} in {}", outcome.details["findings"]))
}

#[tokio::test]
async fn every_ecosystem_is_matched_with_severity_and_fix() {
    let dir = project();
    let outcome = testing::run(build("security_scan", &params(""), dir.path()).as_ref(), dir.path()).await;
    assert_eq!(
        outcome.status,
        TaskStatus::Failed,
        "critical and high findings fail the default fail_on: {}",
        outcome.summary
    );
    assert_eq!(outcome.metrics["findings"], 4.0, "{}", outcome.details["findings"]);
    assert_eq!(outcome.metrics["findings_critical"], 1.0);
    assert_eq!(outcome.metrics["findings_high"], 1.0);
    assert_eq!(outcome.metrics["findings_medium"], 1.0);
    assert_eq!(outcome.metrics["findings_unknown"], 1.0);
    assert_eq!(outcome.metrics["findings_new"], 4.0);
    assert_eq!(outcome.details["first_scan"], true);

    let smallvec = finding(&outcome, "CARETAKER-TEST-0001");
    assert_eq!(smallvec["package"], "smallvec");
    assert_eq!(smallvec["version"], "1.6.0");
    assert_eq!(smallvec["severity"], "critical");
    assert_eq!(smallvec["fixed_versions"], serde_json::json!(["0.6.14", "1.6.1"]));
    assert_eq!(smallvec["recommendation"], "cargo update -p smallvec@1.6.0 --precise 1.6.1");
    assert!(smallvec["lockfile"].as_str().unwrap().ends_with("Cargo.lock"));
    let requests = finding(&outcome, "CARETAKER-TEST-0002");
    assert_eq!(requests["severity"], "medium");
    assert_eq!(requests["recommendation"], "pin requests==2.20.0 in requirements.txt");
    assert_eq!(finding(&outcome, "CARETAKER-TEST-0003")["recommendation"], "npm install lodash@4.17.21");
    assert_eq!(finding(&outcome, "CARETAKER-TEST-0005")["severity"], "unknown");
    // The withdrawn advisory on left-pad is never reported; serde 1.0.0 has no advisory.
    assert!(!outcome.details["findings"].to_string().contains("left-pad"));
    // What could not be checked is listed, not passed over.
    let pypi = outcome.details["lockfiles"].as_array().unwrap().iter().find(|l| l["ecosystem"] == "PyPI").unwrap();
    assert_eq!(pypi["unchecked"], serde_json::json!(["flask (not pinned with ==)"]));
    assert!(
        outcome.summary.contains("at or above high: CARETAKER-TEST-0001 smallvec 1.6.0 (critical)"),
        "{}",
        outcome.summary
    );
    // Nothing in the project was changed.
    assert_eq!(std::fs::read_to_string(dir.path().join("Cargo.lock")).unwrap(), CARGO_LOCK);
}

#[tokio::test]
async fn the_allowlist_suppresses_until_it_expires_and_says_so() {
    let dir = project();
    // TEST_NOW is 2026-11-28: the first entry is live, the second expired.
    let allow = r#"
[[allow]]
id = "CVE-0000-0001"
package = "smallvec"
reason = "insert_many is never called"
expires = 2026-12-31

[[allow]]
id = "CARETAKER-TEST-0003"
reason = "waiting for the UI rewrite"
expires = "2026-01-31"
"#;
    let outcome = testing::run(build("security_scan", &params(allow), dir.path()).as_ref(), dir.path()).await;
    assert_eq!(outcome.metrics["findings"], 3.0);
    assert_eq!(outcome.metrics["findings_allowlisted"], 1.0);
    assert_eq!(outcome.metrics["allowlist_expired"], 1.0);
    assert_eq!(finding(&outcome, "CARETAKER-TEST-0001")["allowed"], "insert_many is never called");
    assert_eq!(finding(&outcome, "CARETAKER-TEST-0003")["allow_expired"], "2026-01-31");
    assert!(
        outcome.summary.contains(
            "the allowlist entry for CARETAKER-TEST-0003 lodash expired on 2026-01-31 and no longer suppresses it"
        ),
        "{}",
        outcome.summary
    );
    // The lodash finding (high) still fails the scan; with fail_on = critical it would not.
    assert_eq!(outcome.status, TaskStatus::Failed);
    let lenient = testing::run(
        build("security_scan", &params(&format!("fail_on = 'critical'\n{allow}")), dir.path()).as_ref(),
        dir.path(),
    )
    .await;
    assert_eq!(lenient.status, TaskStatus::Succeeded, "{}", lenient.summary);
}

#[tokio::test]
async fn new_and_resolved_findings_against_the_previous_scan() {
    let dir = project();
    let task = build("security_scan", &params("fail_on = 'never'"), dir.path());
    let state = dir.path().join("state");
    let ctx = testing::context(&state);
    let first = task.run(&ctx).await.unwrap();
    assert_eq!(first.status, TaskStatus::Succeeded, "fail_on = never: {}", first.summary);
    assert!(first.summary.contains("4 new, 0 resolved (first scan); against 5 advisories"), "{}", first.summary);
    assert!(state.join("test-task.security_scan.json").is_file());

    // smallvec is updated, lodash stays, a new vulnerable crate appears.
    let lock = CARGO_LOCK
        .replace("version = \"1.6.0\"", "version = \"1.6.1\"")
        .replace("name = \"serde\"\nversion = \"1.0.0\"", "name = \"bincode\"\nversion = \"2.0.1\"");
    std::fs::write(dir.path().join("Cargo.lock"), lock).unwrap();
    let second = task.run(&ctx).await.unwrap();
    assert_eq!(second.metrics["findings_new"], 1.0, "{}", second.summary);
    assert_eq!(second.metrics["findings_resolved"], 1.0);
    assert_eq!(second.details["resolved"][0]["package"], "smallvec");
    assert_eq!(finding(&second, "RUSTSEC-2025-0141")["new"], true);
    assert_eq!(finding(&second, "CARETAKER-TEST-0003")["new"], false);

    // A dry run reports against the previous scan but does not replace it.
    let mut dry = ctx.clone();
    dry.dry_run = true;
    let before = std::fs::read(state.join("test-task.security_scan.json")).unwrap();
    task.run(&dry).await.unwrap();
    assert_eq!(std::fs::read(state.join("test-task.security_scan.json")).unwrap(), before);
}

#[tokio::test]
async fn our_own_cargo_lock_names_bincode_2_pulled_by_polars() {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let lock = std::fs::read_to_string(workspace.join("Cargo.lock")).unwrap();
    let bincode_version = lock
        .split("[[package]]")
        .find(|p| p.contains("name = \"bincode\""))
        .and_then(|p| p.lines().find_map(|l| l.strip_prefix("version = \"")))
        .map(|v| v.trim_end_matches('"').to_string())
        .expect("polars pulls bincode into our lockfile");
    let dir = tempfile::tempdir().unwrap();
    let params = format!(
        "advisories = '{}'\nlockfiles = ['Cargo.lock']\nexternal_tools = false\nmax_age_days = 0",
        fixture_db().display()
    );
    let outcome = testing::run(build("security_scan", &params, &workspace).as_ref(), dir.path()).await;
    let bincode = finding(&outcome, "RUSTSEC-2025-0141");
    assert_eq!(bincode["version"], bincode_version.as_str());
    assert_eq!(bincode["severity"], "informational");
    assert_eq!(bincode["informational"], "unmaintained");
    assert!(bincode["recommendation"].as_str().unwrap().starts_with("no fixed version is known"));
    assert!(outcome.metrics["packages_checked"] > 300.0, "{:?}", outcome.metrics);
}

#[tokio::test]
async fn the_external_scanners_are_recorded_whether_installed_or_not() {
    let dir = project();
    let params = format!("advisories = '{}'\ntool_timeout_seconds = 60\nmax_age_days = 0", fixture_db().display());
    let outcome = testing::run(build("security_scan", &params, dir.path()).as_ref(), dir.path()).await;
    let tools = outcome.details["external_tools"].as_array().unwrap();
    let names: Vec<&str> = tools.iter().map(|t| t["tool"].as_str().unwrap()).collect();
    assert_eq!(names, vec!["cargo audit", "pip-audit", "trivy"]);
    for tool in tools {
        if tool["installed"] == false {
            assert_eq!(tool["note"], "not installed", "{tool}");
        } else {
            assert!(tool["command"].is_string(), "{tool}");
        }
    }
}

#[tokio::test]
async fn a_bad_database_or_no_lockfile_fails_with_the_reason() {
    let dir = project();
    let bad_db = dir.path().join("db");
    std::fs::create_dir_all(bad_db.join("sub")).unwrap();
    std::fs::write(bad_db.join("sub/broken.json"), "{\"summary\": \"no id\"}").unwrap();
    let params = |db: &Path| format!("advisories = '{}'\nexternal_tools = false\nmax_age_days = 0", db.display());
    let outcome = testing::run(build("security_scan", &params(&bad_db), dir.path()).as_ref(), dir.path()).await;
    assert_eq!(outcome.status, TaskStatus::Failed);
    assert!(outcome.summary.contains("broken.json: not an OSV record"), "{}", outcome.summary);

    std::fs::remove_file(bad_db.join("sub/broken.json")).unwrap();
    let outcome = testing::run(build("security_scan", &params(&bad_db), dir.path()).as_ref(), dir.path()).await;
    assert!(outcome.summary.contains("holds no advisory"), "{}", outcome.summary);

    let outcome =
        testing::run(build("security_scan", &params(&dir.path().join("none")), dir.path()).as_ref(), dir.path()).await;
    assert!(
        outcome.summary.contains("does not exist: download it with `caretaker advisories sync --advisories"),
        "{}",
        outcome.summary
    );

    let empty = tempfile::tempdir().unwrap();
    let outcome =
        testing::run(build("security_scan", &params(&fixture_db()), empty.path()).as_ref(), empty.path()).await;
    assert_eq!(outcome.status, TaskStatus::Failed);
    assert!(
        outcome.summary.contains("no lockfile (Cargo.lock, requirements.txt, package-lock.json)"),
        "{}",
        outcome.summary
    );

    std::fs::write(dir.path().join("Cargo.lock"), "[[package]]\nname = 1").unwrap();
    let outcome = testing::run(build("security_scan", &params(&fixture_db()), dir.path()).as_ref(), dir.path()).await;
    assert!(outcome.summary.contains("Cargo.lock: not a Cargo.lock"), "{}", outcome.summary);
}

#[test]
fn bad_parameters_name_the_key() {
    use caretaker_core::task::TaskKinds;
    let problem = |p: &str| crate::Kinds.build("security_scan", &testing::table(p), Path::new(".")).err().unwrap();
    assert_eq!(problem("advisories = 'db'\nfail_on = 'severe'").key, "fail_on");
    assert_eq!(
        problem("advisories = 'db'\n[[allow]]\nid = 'X'\nreason = ''\nexpires = 2027-01-01").key,
        "allow[0].reason"
    );
    assert_eq!(problem("advisories = 'db'\n[[allow]]\nid = 'X'\nreason = 'r'").key, "allow[0].expires");
    assert_eq!(
        problem("advisories = 'db'\n[[allow]]\nid = 'X'\nreason = 'r'\nexpires = 'soon'").key,
        "allow[0].expires"
    );
    assert_eq!(problem("advisories = 'db'\nlockfiles = ['pom.xml']").key, "lockfiles[0]");
    assert_eq!(problem("advisories = 'db'\napply = true").key, "apply");
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap().flatten() {
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &to.join(entry.file_name()));
        } else {
            std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
        }
    }
}

#[tokio::test]
async fn a_database_older_than_a_week_is_refused_with_how_to_sync_it() {
    let dir = project();
    let scan = |extra: &str| {
        let params = format!("advisories = 'db'\nexternal_tools = false\n{extra}");
        build("security_scan", &params, dir.path())
    };
    // Filled by hand, never synced: its newest record (2026-01-01) dates it.
    copy_dir(&fixture_db(), &dir.path().join("db"));
    let stale = testing::run(scan("").as_ref(), dir.path()).await;
    assert_eq!(stale.status, TaskStatus::Failed);
    assert!(
        stale.summary.contains("is from 2026-01-01 (331 days old, its newest record; it was never synced)"),
        "{}",
        stale.summary
    );
    assert!(
        stale.summary.contains("older than max_age_days = 7: run `caretaker advisories sync --advisories"),
        "{}",
        stale.summary
    );
    assert!(stale.details.is_null() || stale.details["findings"].is_null(), "nothing was scanned");

    // Synced two days ago: scanned, and the summary names the database's date and size.
    let synced = |days: i64| crate::security::sync::SyncRecord {
        synced_at: "2026-11-28T02:00:00Z".parse::<chrono::DateTime<chrono::Utc>>().unwrap()
            - chrono::Duration::days(days),
        source: "https://osv.example".into(),
        ecosystems: Vec::new(),
    };
    let sync_file = dir.path().join("db").join(crate::security::sync::SYNC_FILE);
    std::fs::write(&sync_file, serde_json::to_vec(&synced(2)).unwrap()).unwrap();
    let fresh = testing::run(scan("").as_ref(), dir.path()).await;
    assert!(fresh.summary.contains("advisories (synced 2026-11-26)"), "{}", fresh.summary);
    assert_eq!(fresh.details["advisories"]["source"], "https://osv.example");
    assert!(fresh.details["advisories"]["records"].as_u64().unwrap() > 0);

    // Its last sync ten days ago: refused again; max_age_days = 30 or 0 lets it through.
    std::fs::write(&sync_file, serde_json::to_vec(&synced(10)).unwrap()).unwrap();
    let old = testing::run(scan("").as_ref(), dir.path()).await;
    assert!(old.summary.contains("(10 days old, its last sync)"), "{}", old.summary);
    let allowed = testing::run(scan("max_age_days = 30").as_ref(), dir.path()).await;
    assert!(allowed.summary.contains("findings"), "{}", allowed.summary);
    assert_eq!(problem_of("advisories = 'db'\nmax_age_days = -1"), "max_age_days");
}

fn problem_of(params: &str) -> String {
    use caretaker_core::task::TaskKinds;
    crate::Kinds.build("security_scan", &testing::table(params), Path::new(".")).err().unwrap().key
}
