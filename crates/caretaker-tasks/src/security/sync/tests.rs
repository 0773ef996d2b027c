//! The sync against a server on 127.0.0.1 that serves good exports, a corrupt zip, a truncated
//! download, a 404 and a server that never answers; and from a local directory.

use super::*;
use crate::testing::{self, build};
use caretaker_core::task::TaskStatus;
use std::io::{BufRead, BufReader};
use std::net::TcpListener;

fn record(id: &str, ecosystem: &str, package: &str, fixed: &str) -> String {
    serde_json::json!({
        "id": id, "modified": "2026-11-20T00:00:00Z", "summary": format!("{package} is bad"),
        "affected": [{"package": {"ecosystem": ecosystem, "name": package},
                      "ranges": [{"type": "SEMVER", "events": [{"introduced": "0"}, {"fixed": fixed}]}]}]
    })
    .to_string()
}

/// An export archive holding `records` as `<id>.json`.
fn export(records: &[(&str, String)]) -> Vec<u8> {
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    for (name, body) in records {
        zip.start_file(*name, options).unwrap();
        zip.write_all(body.as_bytes()).unwrap();
    }
    zip.finish().unwrap().into_inner()
}

fn good_crates() -> Vec<u8> {
    export(&[
        ("RUSTSEC-2026-0001.json", record("RUSTSEC-2026-0001", "crates.io", "smallvec", "1.6.1")),
        ("RUSTSEC-2026-0002.json", record("RUSTSEC-2026-0002", "crates.io", "time", "0.2.23")),
    ])
}

#[derive(Clone)]
enum Answer {
    Body(Vec<u8>),
    /// Announces the whole length, sends half, closes.
    Truncated(Vec<u8>),
    NotFound,
    /// Reads the request and says nothing.
    Hang,
}

/// Serves `routes` (path, answer) on 127.0.0.1; returns the base URL.
fn serve(routes: Vec<(&'static str, Answer)>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let routes = routes.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream);
                let mut request = String::new();
                let _ = reader.read_line(&mut request);
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                }
                let path = request.split_whitespace().nth(1).unwrap_or("").to_string();
                let answer =
                    routes.iter().find(|(p, _)| *p == path).map(|(_, a)| a.clone()).unwrap_or(Answer::NotFound);
                let mut stream = reader.into_inner();
                match answer {
                    Answer::Body(body) => {
                        let _ = write!(
                            stream,
                            "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                            body.len()
                        );
                        let _ = stream.write_all(&body);
                    }
                    Answer::Truncated(body) => {
                        let _ = write!(
                            stream,
                            "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                            body.len()
                        );
                        let _ = stream.write_all(&body[..body.len() / 2]);
                    }
                    Answer::NotFound => {
                        let _ = stream
                            .write_all(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
                    }
                    Answer::Hang => std::thread::sleep(Duration::from_secs(30)),
                }
            });
        }
    });
    base
}

fn params(source: &str, extra: &str) -> String {
    format!("advisories = 'advisories'\nsource = '{source}'\necosystems = ['crates.io']\n{extra}")
}

#[tokio::test]
async fn a_good_export_is_unpacked_and_swapped_in_and_every_bad_one_leaves_it_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let base = serve(vec![
        ("/good/crates.io/all.zip", Answer::Body(good_crates())),
        ("/corrupt/crates.io/all.zip", Answer::Body(b"PK\x03\x04 this is not a zip archive at all".to_vec())),
        ("/truncated/crates.io/all.zip", Answer::Truncated(good_crates())),
        ("/hang/crates.io/all.zip", Answer::Hang),
        (
            "/strange/crates.io/all.zip",
            Answer::Body(export(&[("../escape.json", record("X-1", "crates.io", "a", "1.0.0"))])),
        ),
        ("/notosv/crates.io/all.zip", Answer::Body(export(&[("X-2.json", "{\"not\": \"a record\"}".into())]))),
    ]);
    let task = build("advisories_sync", &params(&format!("{base}/good"), ""), dir.path());
    let outcome = testing::run(task.as_ref(), dir.path()).await;
    assert_eq!(outcome.status, TaskStatus::Succeeded, "{}", outcome.summary);
    assert!(
        outcome.summary.starts_with("synced 2 advisories (crates.io 2) from http://127.0.0.1:"),
        "{}",
        outcome.summary
    );
    assert_eq!(outcome.metrics["records"], 2.0);
    let db = dir.path().join("advisories");
    assert!(db.join("crates.io/RUSTSEC-2026-0001.json").is_file());
    let synced = SyncRecord::read(&db).unwrap();
    assert_eq!(synced.records(), 2);
    assert_eq!(synced.ecosystems[0].archive_blake3, blake3::hash(&good_crates()).to_hex().to_string());
    // The scan reads what the sync wrote (and not the sync's own record as an advisory).
    let loaded = crate::security::osv::AdvisoryDb::load(&db).unwrap();
    assert_eq!(loaded.records, 2);
    let before = std::fs::read(db.join(SYNC_FILE)).unwrap();

    for (source, says, extra) in [
        ("corrupt", "is not a readable zip archive", ""),
        ("truncated", "the download is truncated", ""),
        ("missing", "answered 404 Not Found", ""),
        ("hang", "within 1 s", "timeout_seconds = 1"),
        ("strange", "is not an advisory file", ""),
        ("notosv", "is not an OSV record", ""),
    ] {
        let task = build("advisories_sync", &params(&format!("{base}/{source}"), extra), dir.path());
        let outcome = testing::run(task.as_ref(), dir.path()).await;
        assert_eq!(outcome.status, TaskStatus::Failed, "{source}: {}", outcome.summary);
        assert!(outcome.summary.contains(says), "{source}: {}", outcome.summary);
        assert!(outcome.summary.contains(&format!("{base}/{source}/crates.io/all.zip")), "{}", outcome.summary);
        assert!(outcome.summary.contains("is as it was"), "{}", outcome.summary);
        // How to sync offline is said when the server gave no answer, not when it gave a wrong one.
        assert_eq!(outcome.summary.contains("without internet"), source == "hang", "{source}: {}", outcome.summary);
        assert_eq!(std::fs::read(db.join(SYNC_FILE)).unwrap(), before, "{source}: the previous database stays");
        assert!(db.join("crates.io/RUSTSEC-2026-0002.json").is_file());
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains(".sync-"))
            .collect();
        assert_eq!(leftovers, Vec::<String>::new(), "{source}: nothing is left beside it");
        assert!(!dir.path().join("escape.json").exists());
    }
}

#[tokio::test]
async fn a_source_that_refuses_the_connection_says_how_to_sync_without_internet() {
    let dir = tempfile::tempdir().unwrap();
    let base = format!("http://127.0.0.1:{}", testing::closed_port());
    let task = build("advisories_sync", &params(&base, ""), dir.path());
    let outcome = testing::run(task.as_ref(), dir.path()).await;
    assert_eq!(outcome.status, TaskStatus::Failed, "{}", outcome.summary);
    assert!(outcome.summary.starts_with(&format!("cannot fetch {base}/crates.io/all.zip: ")), "{}", outcome.summary);
    assert!(outcome.summary.contains("is as it was (a machine without internet: fetch "), "{}", outcome.summary);
}

#[tokio::test]
async fn a_local_mirror_serves_a_site_without_internet_and_replaces_the_old_database() {
    let dir = tempfile::tempdir().unwrap();
    let mirror = dir.path().join("mirror");
    std::fs::create_dir_all(mirror.join("crates.io")).unwrap();
    std::fs::create_dir_all(mirror.join("PyPI")).unwrap();
    std::fs::write(mirror.join("crates.io/all.zip"), good_crates()).unwrap();
    std::fs::write(
        mirror.join("PyPI/all.zip"),
        export(&[("PYSEC-2026-1.json", record("PYSEC-2026-1", "PyPI", "requests", "2.32.0"))]),
    )
    .unwrap();
    // A database from before, which the sync replaces whole.
    std::fs::create_dir_all(dir.path().join("advisories/old")).unwrap();
    std::fs::write(dir.path().join("advisories/old/GHSA-old.json"), record("GHSA-old", "npm", "x", "1.0.0")).unwrap();
    // The lockfiles say which ecosystems: Cargo.lock and requirements.txt, no npm.
    std::fs::write(dir.path().join("Cargo.lock"), "version = 3\n").unwrap();
    std::fs::write(dir.path().join("requirements.txt"), "requests==2.31.0\n").unwrap();
    let task = build("advisories_sync", "advisories = 'advisories'\nsource = 'mirror'", dir.path());
    let outcome = testing::run(task.as_ref(), dir.path()).await;
    assert_eq!(outcome.status, TaskStatus::Succeeded, "{}", outcome.summary);
    assert!(outcome.summary.starts_with("synced 3 advisories (crates.io 2, PyPI 1) from "), "{}", outcome.summary);
    let db = dir.path().join("advisories");
    assert!(db.join("PyPI/PYSEC-2026-1.json").is_file());
    assert!(!db.join("old").exists(), "the old database is gone, not merged");
    // npm's export was never asked for: no lockfile uses it.
    assert_eq!(SyncRecord::read(&db).unwrap().ecosystems.len(), 2);
}

#[test]
fn bad_parameters_name_the_key() {
    use caretaker_core::task::TaskKinds;
    let problem = |p: &str| crate::Kinds.build("advisories_sync", &testing::table(p), Path::new(".")).err().unwrap();
    assert_eq!(problem("advisories = 'a'\necosystems = ['Maven']").key, "ecosystems[0]");
    assert_eq!(problem("advisories = 'a'\necosystems = []").key, "ecosystems");
    assert_eq!(problem("advisories = 'a'\nsource = 's3://bucket/osv'").key, "source");
    assert_eq!(problem("source = 'x'").key, "advisories");
}
