use super::*;
use crate::testing::{self, all_text, build, closed_port};
use caretaker_core::task::TaskStatus;

/// Writes `n` keys `{prefix}:{group}:{i}` with a 1 KiB value each.
async fn fill(conn: &mut redis::aio::MultiplexedConnection, prefix: &str, group: &str, n: usize) {
    let value = "x".repeat(1024);
    for chunk in (0..n).collect::<Vec<_>>().chunks(500) {
        let mut pipe = redis::pipe();
        for i in chunk {
            pipe.cmd("SET").arg(format!("{prefix}:{group}:{i}")).arg(&value).ignore();
        }
        let _: () = pipe.query_async(conn).await.unwrap();
    }
}

async fn count(conn: &mut redis::aio::MultiplexedConnection, pattern: &str) -> usize {
    let mut cursor = 0u64;
    let mut n = 0;
    loop {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(pattern)
            .arg("COUNT")
            .arg(1000)
            .query_async(conn)
            .await
            .unwrap();
        n += keys.len();
        cursor = next;
        if cursor == 0 {
            return n;
        }
    }
}

#[tokio::test]
async fn deletes_only_the_matching_keys_in_batches_and_measures_memory() {
    let Some(url) = caretaker_test_support::redis_url() else { return };
    let prefix = caretaker_test_support::unique_name("caretaker_cleanup");
    let mut conn = connect::redis(&url, Duration::from_secs(10)).await.unwrap();
    fill(&mut conn, &prefix, "cache", 3_000).await;
    fill(&mut conn, &prefix, "keep", 200).await;
    let dir = tempfile::tempdir().unwrap();
    let params = format!("url = '{url}'\npatterns = ['{prefix}:cache:*']\nbatch_size = 250");

    // Dry run first: counted, nothing deleted.
    let mut ctx = testing::context(dir.path());
    ctx.dry_run = true;
    let dry = build("redis_cleanup", &params, dir.path()).run(&ctx).await.unwrap();
    let after_dry = count(&mut conn, &format!("{prefix}:cache:*")).await;

    let outcome = testing::run(build("redis_cleanup", &params, dir.path()).as_ref(), dir.path()).await;
    let cache_left = count(&mut conn, &format!("{prefix}:cache:*")).await;
    let kept = count(&mut conn, &format!("{prefix}:keep:*")).await;
    // Clean up our own prefix whatever happened above.
    let leftover = build("redis_cleanup", &format!("url = '{url}'\npatterns = ['{prefix}:*']"), dir.path());
    testing::run(leftover.as_ref(), dir.path()).await;

    assert_eq!(dry.status, TaskStatus::Succeeded, "{}", dry.summary);
    assert_eq!(dry.metrics["keys_matched"], 3_000.0);
    assert_eq!(dry.metrics["keys_deleted"], 0.0);
    assert_eq!(after_dry, 3_000, "a dry run deletes nothing");

    assert_eq!(outcome.status, TaskStatus::Succeeded, "{}", outcome.summary);
    assert_eq!(outcome.metrics["keys_deleted"], 3_000.0);
    assert_eq!(cache_left, 0);
    assert_eq!(kept, 200, "keys outside the pattern stay");
    // 3 000 values of 1 KiB went: the server reports at least 1.5 MB less (other tests write meanwhile).
    assert!(outcome.metrics["memory_freed_bytes"] > 1_500_000.0, "{:?}", outcome.metrics);
    assert!(outcome.summary.starts_with("deleted 3000 keys matching"), "{}", outcome.summary);
}

#[tokio::test]
async fn max_keys_leaves_the_rest_for_the_next_run() {
    let Some(url) = caretaker_test_support::redis_url() else { return };
    let prefix = caretaker_test_support::unique_name("caretaker_cleanup");
    let mut conn = connect::redis(&url, Duration::from_secs(10)).await.unwrap();
    fill(&mut conn, &prefix, "cache", 1_000).await;
    let dir = tempfile::tempdir().unwrap();
    let limited = format!("url = '{url}'\npatterns = ['{prefix}:*']\nbatch_size = 100\nmax_keys = 300");
    let outcome = testing::run(build("redis_cleanup", &limited, dir.path()).as_ref(), dir.path()).await;
    let left = count(&mut conn, &format!("{prefix}:*")).await;
    testing::run(
        build("redis_cleanup", &format!("url = '{url}'\npatterns = ['{prefix}:*']"), dir.path()).as_ref(),
        dir.path(),
    )
    .await;
    assert_eq!(outcome.metrics["keys_deleted"], 300.0, "{}", outcome.summary);
    assert_eq!(left, 700);
}

#[tokio::test]
async fn a_down_server_fails_without_showing_the_password() {
    let dir = tempfile::tempdir().unwrap();
    let params = format!("url = 'redis://:hunter2-secret@127.0.0.1:{}/0'\npatterns = ['cache:*']", closed_port());
    let outcome = testing::run(build("redis_cleanup", &params, dir.path()).as_ref(), dir.path()).await;
    assert_eq!(outcome.status, TaskStatus::Failed);
    assert!(outcome.summary.contains("cannot connect to redis://:***@127.0.0.1"), "{}", outcome.summary);
    assert!(outcome.summary.ends_with("nothing was deleted"), "{}", outcome.summary);
    assert!(!all_text(&outcome).contains("hunter2-secret"));

    let (hang, _server) = testing::silent_server().await;
    let params = format!("url = 'redis://:hunter2-secret@{hang}/0'\npatterns = ['cache:*']\ntimeout_seconds = 0.5");
    let outcome = testing::run(build("redis_cleanup", &params, dir.path()).as_ref(), dir.path()).await;
    assert_eq!(outcome.status, TaskStatus::Failed, "{}", outcome.summary);
    assert!(!all_text(&outcome).contains("hunter2-secret"));
}

#[test]
fn a_pattern_matching_everything_is_refused() {
    use caretaker_core::task::TaskKinds;
    let root = Path::new(".");
    let problem = |p: &str| crate::Kinds.build("redis_cleanup", &testing::table(p), root).err().unwrap();
    assert_eq!(problem("url = 'redis://h'\npatterns = ['cache:*', '*']").key, "patterns[1]");
    for every in ["?*", "**", "*?", "[a-z]*", "[^a]?*", " * ", ""] {
        let p = problem(&format!("url = 'redis://h'\npatterns = ['cache:*', '{every}']"));
        assert_eq!(p.key, "patterns[1]", "{every}");
        assert!(p.reason.contains("would match every key"), "{every}: {}", p.reason);
    }
    // A literal character anywhere narrows the match: accepted.
    for narrow in ["cache:*", "*:sessions", "?x*", "[ab]c*", "\\**"] {
        assert!(
            crate::Kinds
                .build("redis_cleanup", &testing::table(&format!("url = 'redis://h'\npatterns = ['{narrow}']")), root)
                .is_ok(),
            "{narrow}"
        );
    }
    assert_eq!(problem("url = 'redis://h'\npatterns = []").key, "patterns");
    assert_eq!(problem("url = 'redis://h'\npatterns = ['a*']\nbatch_size = 0").key, "batch_size");
    assert_eq!(problem("url = 'redis://h'\npattern = 'a*'").key, "pattern");
}

#[tokio::test]
async fn without_a_configured_url_the_cleanup_is_skipped_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let params = "url = 'env:CARETAKER_TEST_UNSET_REDIS_URL'\npatterns = ['cache:*']";
    let outcome = testing::run(build("redis_cleanup", params, dir.path()).as_ref(), dir.path()).await;
    assert_eq!(outcome.status, caretaker_core::task::TaskStatus::Skipped, "{}", outcome.summary);
    assert!(
        outcome.summary.starts_with("no Redis is configured: environment variable CARETAKER_TEST_UNSET_REDIS_URL"),
        "{}",
        outcome.summary
    );
}
