use crate::testing::{self, PipelineFixture, all_text, build, closed_port, silent_server};
use caretaker_core::task::TaskStatus;
use caretaker_test_support::run_report;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A small HTTP/1.1 server on the loopback: `/ok` answers 200 with a status body, `/broken` 500,
/// `/slow` 200 after 300 ms, anything else 404.
async fn http_server() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buf = [0u8; 1024];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                let text = String::from_utf8_lossy(&request);
                let path = text.split_whitespace().nth(1).unwrap_or("/").to_string();
                let (status, body) = match path.as_str() {
                    "/ok" => ("200 OK", "{\"status\": \"ok\", \"models\": 4}"),
                    "/broken" => ("500 Internal Server Error", "{\"status\": \"error\"}"),
                    "/slow" => {
                        tokio::time::sleep(Duration::from_millis(300)).await;
                        ("200 OK", "{\"status\": \"ok\"}")
                    }
                    _ => ("404 Not Found", "no such page"),
                };
                let response = format!(
                    "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = socket.write_all(response.as_bytes()).await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn http_health_grades_status_body_and_latency() {
    let addr = http_server().await;
    let dir = tempfile::tempdir().unwrap();

    let ok = build(
        "http_health",
        &format!("url = 'http://{addr}/ok'\nbody_contains = '\"status\": \"ok\"'\nmax_latency_ms = 5000"),
        dir.path(),
    );
    let outcome = testing::run(ok.as_ref(), dir.path()).await;
    assert_eq!(outcome.status, TaskStatus::Succeeded, "{}", outcome.summary);
    assert_eq!(outcome.metrics["health"], 2.0);
    assert_eq!(outcome.metrics["status"], 200.0);
    assert!(outcome.metrics["latency_ms"] > 0.0);

    let broken = build("http_health", &format!("url = 'http://{addr}/broken'"), dir.path());
    let outcome = testing::run(broken.as_ref(), dir.path()).await;
    assert_eq!(outcome.status, TaskStatus::Failed);
    assert!(outcome.summary.contains("answered 500, expected 200"), "{}", outcome.summary);

    let wrong_body = build("http_health", &format!("url = 'http://{addr}/ok'\nbody_contains = 'degraded'"), dir.path());
    let outcome = testing::run(wrong_body.as_ref(), dir.path()).await;
    assert_eq!(outcome.status, TaskStatus::Failed);
    assert!(outcome.summary.contains("does not contain \"degraded\""), "{}", outcome.summary);

    let expect_404 = build("http_health", &format!("url = 'http://{addr}/missing'\nexpect_status = 404"), dir.path());
    assert_eq!(testing::run(expect_404.as_ref(), dir.path()).await.status, TaskStatus::Succeeded);

    // Slower than its threshold: degraded, which is not a failure.
    let slow = build("http_health", &format!("url = 'http://{addr}/slow'\nmax_latency_ms = 50"), dir.path());
    let outcome = testing::run(slow.as_ref(), dir.path()).await;
    assert_eq!(outcome.status, TaskStatus::Succeeded);
    assert_eq!(outcome.metrics["health"], 1.0);
    assert!(outcome.summary.starts_with("degraded: latency"), "{}", outcome.summary);
}

#[tokio::test]
async fn http_health_fails_on_a_down_server_a_hang_and_a_tls_mismatch() {
    let dir = tempfile::tempdir().unwrap();
    let down = build("http_health", &format!("url = 'http://127.0.0.1:{}/health'", closed_port()), dir.path());
    let outcome = testing::run(down.as_ref(), dir.path()).await;
    assert_eq!(outcome.status, TaskStatus::Failed);
    assert!(outcome.summary.contains("failed"), "{}", outcome.summary);

    let (addr, _server) = silent_server().await;
    let hang = build("http_health", &format!("url = 'http://{addr}/health'\ntimeout_seconds = 0.5"), dir.path());
    let outcome = testing::run(hang.as_ref(), dir.path()).await;
    assert_eq!(outcome.status, TaskStatus::Failed);
    assert!(
        outcome.summary.contains("timed out") || outcome.summary.contains("no answer within"),
        "{}",
        outcome.summary
    );

    // HTTPS to a plain HTTP server: rustls refuses the handshake, the check says so.
    let plain = http_server().await;
    let tls = build("http_health", &format!("url = 'https://{plain}/ok'\ntimeout_seconds = 5"), dir.path());
    let outcome = testing::run(tls.as_ref(), dir.path()).await;
    assert_eq!(outcome.status, TaskStatus::Failed, "{}", outcome.summary);
}

#[tokio::test]
async fn http_health_never_shows_the_password_of_its_url() {
    let dir = tempfile::tempdir().unwrap();
    let task =
        build("http_health", &format!("url = 'http://admin:hunter2-secret@127.0.0.1:{}/x'", closed_port()), dir.path());
    let outcome = testing::run(task.as_ref(), dir.path()).await;
    assert_eq!(outcome.status, TaskStatus::Failed);
    let text = all_text(&outcome);
    assert!(!text.contains("hunter2-secret"), "{text}");
    assert!(text.contains("admin:***@"), "{text}");
}

#[tokio::test]
async fn tcp_health_connects_or_fails() {
    let dir = tempfile::tempdir().unwrap();
    let addr = http_server().await;
    let up = build("tcp_health", &format!("address = '{addr}'"), dir.path());
    let outcome = testing::run(up.as_ref(), dir.path()).await;
    assert_eq!(outcome.status, TaskStatus::Succeeded, "{}", outcome.summary);
    assert!(outcome.metrics.contains_key("latency_ms"));
    let down = build("tcp_health", &format!("address = '127.0.0.1:{}'", closed_port()), dir.path());
    let outcome = testing::run(down.as_ref(), dir.path()).await;
    assert_eq!(outcome.status, TaskStatus::Failed);
    assert!(outcome.summary.contains("cannot connect to 127.0.0.1:"), "{}", outcome.summary);
}

#[tokio::test]
async fn postgres_health_selects_one_and_hides_the_password() {
    let Some(url) = caretaker_test_support::postgres_url() else { return };
    let dir = tempfile::tempdir().unwrap();
    let up = build("postgres_health", &format!("url = '{url}'"), dir.path());
    let outcome = testing::run(up.as_ref(), dir.path()).await;
    assert_eq!(outcome.status, TaskStatus::Succeeded, "{}", outcome.summary);
    assert!(outcome.metrics["query_ms"] >= 0.0);

    let missing_db = url.rsplit_once('/').map(|(base, _)| format!("{base}/caretaker_no_such_database")).unwrap();
    let outcome =
        testing::run(build("postgres_health", &format!("url = '{missing_db}'"), dir.path()).as_ref(), dir.path()).await;
    assert_eq!(outcome.status, TaskStatus::Failed);
    assert!(outcome.summary.contains("caretaker_no_such_database"), "{}", outcome.summary);

    let down = format!("postgres://caretaker:hunter2-secret@127.0.0.1:{}/postgres", closed_port());
    let outcome =
        testing::run(build("postgres_health", &format!("url = '{down}'"), dir.path()).as_ref(), dir.path()).await;
    assert_eq!(outcome.status, TaskStatus::Failed);
    assert!(outcome.summary.contains("cannot connect to postgres://caretaker:***@127.0.0.1"), "{}", outcome.summary);
    assert!(!all_text(&outcome).contains("hunter2-secret"));

    let (hang, _server) = silent_server().await;
    let hanging = format!("url = 'postgres://caretaker:hunter2-secret@{hang}/postgres'\ntimeout_seconds = 0.5");
    let outcome = testing::run(build("postgres_health", &hanging, dir.path()).as_ref(), dir.path()).await;
    assert_eq!(outcome.status, TaskStatus::Failed);
    assert!(outcome.summary.contains("no answer within"), "{}", outcome.summary);
    assert!(!all_text(&outcome).contains("hunter2-secret"));
}

#[tokio::test]
async fn redis_health_pings_and_refuses_a_wrong_password() {
    let Some(url) = caretaker_test_support::redis_url() else { return };
    let dir = tempfile::tempdir().unwrap();
    let outcome = testing::run(build("redis_health", &format!("url = '{url}'"), dir.path()).as_ref(), dir.path()).await;
    assert_eq!(outcome.status, TaskStatus::Succeeded, "{}", outcome.summary);

    // A user of our own with a password, so a wrong one is really refused; removed at the end.
    let user = caretaker_test_support::unique_name("caretaker_health");
    let client = redis::Client::open(url.as_str()).unwrap();
    let mut admin = client.get_multiplexed_async_connection().await.unwrap();
    let _: () = redis::cmd("ACL")
        .arg(&["SETUSER", &user, "on", ">right-password", "~caretaker_health*", "+ping"])
        .query_async(&mut admin)
        .await
        .unwrap();
    let authority = url.trim_start_matches("redis://");
    let right = format!("url = 'redis://{user}:right-password@{authority}'");
    let wrong = format!("url = 'redis://{user}:hunter2-secret@{authority}'");
    let right_outcome = testing::run(build("redis_health", &right, dir.path()).as_ref(), dir.path()).await;
    let wrong_outcome = testing::run(build("redis_health", &wrong, dir.path()).as_ref(), dir.path()).await;
    let _: () = redis::cmd("ACL").arg(&["DELUSER", &user]).query_async(&mut admin).await.unwrap();

    assert_eq!(right_outcome.status, TaskStatus::Succeeded, "{}", right_outcome.summary);
    assert!(!all_text(&right_outcome).contains("right-password"));
    assert_eq!(wrong_outcome.status, TaskStatus::Failed);
    assert!(wrong_outcome.summary.contains("cannot connect to redis://"), "{}", wrong_outcome.summary);
    assert!(!all_text(&wrong_outcome).contains("hunter2-secret"), "{}", all_text(&wrong_outcome));

    let down = format!("url = 'redis://:hunter2-secret@127.0.0.1:{}'", closed_port());
    let outcome = testing::run(build("redis_health", &down, dir.path()).as_ref(), dir.path()).await;
    assert_eq!(outcome.status, TaskStatus::Failed);
    assert!(outcome.summary.contains("redis://:***@127.0.0.1"), "{}", outcome.summary);
    assert!(!all_text(&outcome).contains("hunter2-secret"));
}

#[tokio::test]
async fn pipeline_health_reads_the_last_run_the_champion_and_the_quality_trend() {
    let fixture = PipelineFixture::new();
    let params = "pipeline = 'pipelines/test.toml'";
    let task = build("pipeline_health", params, fixture.path());

    // No run yet: unhealthy, and the history file is not created by looking.
    let outcome = testing::run(task.as_ref(), fixture.path()).await;
    assert_eq!(outcome.status, TaskStatus::Failed);
    assert!(outcome.summary.contains("no run of bridge-failures is recorded"), "{}", outcome.summary);
    assert!(!fixture.path().join("state/history.sqlite").exists());
    assert!(!fixture.path().join("models").exists());

    // TEST_NOW is 2026-11-28T02:00Z: a run 24 h ago, one champion, a steady quality score.
    for (i, day) in [21, 22, 23, 24, 25, 26, 27].iter().enumerate() {
        fixture.record(&run_report(
            &format!("202611{day}T020000Z-000{i}"),
            &format!("2026-11-{day}T02:00:00Z"),
            0.98,
            0.7,
            20.0,
        ));
    }
    fixture.deploy("tree", "20261127T020000Z-0006", b"model bytes");
    let outcome = testing::run(task.as_ref(), fixture.path()).await;
    assert_eq!(outcome.status, TaskStatus::Succeeded, "{}", outcome.summary);
    assert_eq!(outcome.metrics["health"], 2.0, "{}", outcome.summary);
    assert_eq!(outcome.metrics["last_run_age_hours"], 24.0);
    assert_eq!(outcome.metrics["champion_loadable"], 1.0);

    // The quality score falls: degraded, with the numbers.
    fixture.record(&run_report("20261128T010000Z-0007", "2026-11-28T01:00:00Z", 0.85, 0.7, 20.0));
    let outcome = testing::run(task.as_ref(), fixture.path()).await;
    assert_eq!(outcome.status, TaskStatus::Succeeded);
    assert_eq!(outcome.metrics["health"], 1.0);
    assert!(outcome.summary.contains("quality score fell to 0.850 from a mean of 0.980"), "{}", outcome.summary);

    // The champion's file is damaged: unhealthy.
    std::fs::write(fixture.path().join("models/versions/v0001/model.msgpack"), b"tampered").unwrap();
    let outcome = testing::run(task.as_ref(), fixture.path()).await;
    assert_eq!(outcome.status, TaskStatus::Failed);
    assert!(outcome.summary.contains("the champion does not load"), "{}", outcome.summary);
    assert_eq!(outcome.metrics["champion_loadable"], 0.0);

    // Too old: a catalog that expects a run every 6 hours.
    let strict = build("pipeline_health", "pipeline = 'pipelines/test.toml'\nmax_age_hours = 0.5", fixture.path());
    let outcome = testing::run(strict.as_ref(), fixture.path()).await;
    assert!(outcome.summary.contains("the last run started 1.0 h ago, more than 0.5 h"), "{}", outcome.summary);
}

#[tokio::test]
async fn a_health_group_grades_the_whole_and_names_each_check() {
    let addr = http_server().await;
    let fixture = PipelineFixture::new();
    let params = format!(
        r#"
[[checks]]
name = "api"
kind = "http_health"
url = "http://{addr}/ok"

[[checks]]
name = "metrics-endpoint"
kind = "http_health"
critical = false
url = "http://{addr}/broken"

[[checks]]
name = "cache"
kind = "tcp_health"
address = "{addr}"
"#
    );
    let group = build("health", &params, fixture.path());
    let outcome = testing::run(group.as_ref(), fixture.path()).await;
    // A non-critical check failing only degrades the whole.
    assert_eq!(outcome.status, TaskStatus::Succeeded, "{}", outcome.summary);
    assert_eq!(outcome.metrics["health"], 1.0);
    assert_eq!(outcome.metrics["checks_unhealthy"], 1.0);
    assert_eq!(outcome.metrics["api.status"], 200.0);
    assert!(outcome.summary.starts_with("degraded: metrics-endpoint unhealthy: GET"), "{}", outcome.summary);

    let critical = params.replace("critical = false\n", "");
    let outcome = testing::run(build("health", &critical, fixture.path()).as_ref(), fixture.path()).await;
    assert_eq!(outcome.status, TaskStatus::Failed);
    assert_eq!(outcome.metrics["health"], 0.0);
}

#[test]
fn bad_check_configs_name_the_key() {
    use caretaker_core::task::TaskKinds;
    let root = std::path::Path::new(".");
    let problem = |kind: &str, params: &str| match crate::Kinds.build(kind, &testing::table(params), root) {
        Ok(_) => panic!("{kind} accepted {params}"),
        Err(p) => p,
    };
    assert_eq!(problem("http_health", "url = 'ftp://x/'").key, "url");
    assert_eq!(problem("http_health", "url = 'http://x/'\nexpect_status = 999").key, "expect_status");
    assert_eq!(problem("http_health", "url = 'http://x/'\nexpected_status = 200").key, "expected_status");
    assert_eq!(problem("http_health", "url = 'http://x/'\ntimeout_seconds = 0").key, "timeout_seconds");
    assert_eq!(problem("tcp_health", "address = 'localhost'").key, "address");
    assert_eq!(problem("pipeline_health", "pipeline = 'p.toml'\nwindow = 1").key, "window");
    assert_eq!(problem("health", "checks = []").key, "checks");
    let p = problem(
        "health",
        "[[checks]]\nname = 'a'\nkind = 'http_health'\nurl = 'http://x'\n[[checks]]\nname = 'a'\nkind = 'tcp_health'\naddress = 'h:1'",
    );
    assert_eq!(p.key, "checks[1].name");
    let p = problem("health", "[[checks]]\nname = 'a'\nkind = 'smtp_health'");
    assert_eq!(p.key, "checks[0].kind");
    let p = problem("health", "[[checks]]\nname = 'a'\nkind = 'tcp_health'\naddress = 'h:1'\ncolour = 'red'");
    assert_eq!(p.key, "checks[0].colour");
    let p = problem("nonsense", "");
    assert!(p.reason.contains("unknown task kind"), "{p}");
}
