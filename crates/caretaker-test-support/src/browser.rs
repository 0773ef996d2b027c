//! A real browser for tests of `report.html`: headless Chromium, Debian's `chromium` package,
//! installed with `apt-get install -y chromium` when it is missing.
//!
//! [`chromium`] returns `None` (the test skips, saying so) when no browser can be had, unless
//! `CARETAKER_REQUIRE_SERVICES=1`, when that fails the test. Every load uses a fresh profile
//! directory and the flags that keep Chromium off the network; host resolution is mapped to
//! nothing, so a page that tried to fetch anything would log a console error.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// What a headless load of a page gave.
pub struct PageLoad {
    /// The DOM after load, serialised (`--dump-dom`).
    pub dom: String,
    /// Console messages and load errors Chromium logged.
    pub console: Vec<String>,
    /// Network requests the page made (from Chromium's net log; the browser's own calls home,
    /// which the flags and the host mapping block anyway, are left out).
    pub requests: Vec<String>,
    /// The screenshot, when one was asked for and written.
    pub screenshot: Option<PathBuf>,
    /// Chromium's stderr, for failure messages.
    pub stderr: String,
}

const CANDIDATES: [&str; 3] = ["chromium", "chromium-browser", "google-chrome"];

fn find() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).flat_map(|dir| CANDIDATES.iter().map(move |name| dir.join(name))).find(|p| p.is_file())
}

fn install() -> Result<(), String> {
    eprintln!("chromium is missing: installing Debian's chromium package (apt-get install -y chromium)");
    let run = |args: &[&str]| -> Result<(), String> {
        let out = Command::new("apt-get")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .output()
            .map_err(|e| format!("apt-get: {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!("apt-get {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim()))
        }
    };
    let args = ["install", "-y", "--no-install-recommends", "chromium"];
    run(&args).or_else(|_| run(&["update"]).and_then(|_| run(&args)))
}

/// The Chromium binary, installed when missing; `None` (with the reason on stderr) when it
/// cannot be had and `CARETAKER_REQUIRE_SERVICES` is not `1`.
pub fn chromium() -> Option<PathBuf> {
    static FOUND: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let found = FOUND.get_or_init(|| match find() {
        Some(p) => Ok(p),
        None => install().and_then(|_| find().ok_or_else(|| "chromium installed but not on PATH".to_string())),
    });
    match found {
        Ok(p) => Some(p.clone()),
        Err(reason) => {
            if std::env::var("CARETAKER_REQUIRE_SERVICES").is_ok_and(|v| v == "1") {
                panic!("no headless Chromium ({reason}), and CARETAKER_REQUIRE_SERVICES=1");
            }
            eprintln!(
                "skipping: no headless Chromium ({reason}); install Debian's chromium package, or set \
                 CARETAKER_REQUIRE_SERVICES=1 to fail instead"
            );
            None
        }
    }
}

fn base_command(chromium: &Path, profile: &Path) -> Command {
    let mut cmd = Command::new(chromium);
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--host-resolver-rules=MAP * ~NOTFOUND",
        "--enable-logging=stderr",
        "--v=0",
    ]);
    cmd.arg(format!("--user-data-dir={}", profile.display()));
    cmd
}

/// The console messages and load errors in Chromium's log.
fn console_lines(stderr: &str) -> Vec<String> {
    stderr
        .lines()
        .filter(|l| l.contains(":CONSOLE") || l.contains("Failed to load") || l.contains("net::ERR_"))
        .map(str::to_string)
        .collect()
}

/// Opens `page` from disk in headless Chromium: its DOM after load, the console messages, and,
/// when `screenshot` is given, a full-width screenshot `width` x `height` pixels there.
pub fn load(chromium: &Path, page: &Path, screenshot: Option<(&Path, u32, u32)>) -> PageLoad {
    let page = page.canonicalize().unwrap_or_else(|e| panic!("{}: {e}", page.display()));
    let url = format!("file://{}", page.display());

    let profile = tempfile::tempdir().expect("a profile dir");
    let net_log = profile.path().join("net-log.json");
    let out = base_command(chromium, profile.path())
        .arg(format!("--log-net-log={}", net_log.display()))
        .arg("--dump-dom")
        .arg(&url)
        .output()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", chromium.display()));
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "chromium --dump-dom {url} failed: {:?}\n{stderr}", out.status);
    let dom = String::from_utf8_lossy(&out.stdout).into_owned();
    let requests = page_requests(&std::fs::read_to_string(&net_log).unwrap_or_default());
    let mut console = console_lines(&stderr);
    let mut all_stderr = stderr;

    let mut shot = None;
    if let Some((path, width, height)) = screenshot {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).expect("the screenshot's directory");
        }
        let profile = tempfile::tempdir().expect("a profile dir");
        let out = base_command(chromium, profile.path())
            .arg("--hide-scrollbars")
            .arg(format!("--window-size={width},{height}"))
            .arg(format!("--screenshot={}", path.display()))
            .arg(&url)
            .output()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", chromium.display()));
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "chromium --screenshot {url} failed: {:?}\n{stderr}", out.status);
        console.extend(console_lines(&stderr));
        all_stderr.push_str(&stderr);
        shot = path.is_file().then(|| path.to_path_buf());
    }
    PageLoad { dom, console, requests, screenshot: shot, stderr: all_stderr }
}

/// The URLs in a net log other than `file:` ones and the browser's own background calls.
fn page_requests(net_log: &str) -> Vec<String> {
    const BROWSER_OWN: [&str; 5] = ["google.com", "googleapis.com", "gstatic.com", "gvt1.com", "googleusercontent.com"];
    let mut urls: Vec<String> = net_log
        .match_indices("\"url\":\"")
        .filter_map(|(i, m)| net_log[i + m.len()..].split('"').next())
        .filter(|u| !u.starts_with("file:") && !u.starts_with("data:"))
        .filter(|u| {
            let host = u.split("://").nth(1).unwrap_or(u).split(['/', ':', '?']).next().unwrap_or("");
            !BROWSER_OWN.iter().any(|own| host == *own || host.ends_with(&format!(".{own}")))
        })
        .map(str::to_string)
        .collect();
    urls.sort();
    urls.dedup();
    urls
}

/// A directory for test artifacts (screenshots) under the cargo target directory of the running
/// test binary: `<target>/test-artifacts/`.
pub fn artifacts_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    // <target>/<profile>/deps/<test binary>
    let target = exe.ancestors().nth(3).map(Path::to_path_buf).unwrap_or_else(std::env::temp_dir);
    let dir = target.join("test-artifacts");
    std::fs::create_dir_all(&dir).expect("the artifacts directory");
    dir
}
