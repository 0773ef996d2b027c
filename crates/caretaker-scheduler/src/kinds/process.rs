//! Running a child process from an argv list: never through a shell, in its own process group,
//! with its output kept (the tail, up to a limit) and the whole group killed if the run is
//! abandoned (a timeout or a shutdown drops the future).
//!
//! If the runner itself dies (SIGKILL, the OOM killer), no drop runs. On Linux the child then
//! gets SIGKILL from the kernel (the parent-death signal); a task's group is also recorded in the
//! state directory ([`caretaker_core::children`]) from before it starts until it is reaped, so the
//! next command ends what the child started in turn.

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

/// How much of each stream is kept (the end of it, where the errors are).
pub const DEFAULT_OUTPUT_LIMIT: usize = 64 * 1024;

/// What a finished child did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProcessRun {
    pub argv: Vec<String>,
    /// The exit code; `None` when a signal ended the process.
    pub exit_code: Option<i32>,
    /// The signal that ended it, if one did.
    pub signal: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    /// Whether output beyond the limit was dropped (the start of it is dropped).
    pub truncated: bool,
    pub seconds: f64,
    /// Set when the process could not be started at all.
    pub spawn_error: Option<String>,
}

impl ProcessRun {
    pub fn succeeded(&self) -> bool {
        self.exit_code == Some(0)
    }

    /// "exited with code 3", "killed by signal 9", "could not start: ..."
    pub fn describe(&self) -> String {
        match (&self.spawn_error, self.exit_code, self.signal) {
            (Some(e), _, _) => {
                format!("could not start {:?}: {e}", self.argv.first().map(String::as_str).unwrap_or(""))
            }
            (None, Some(code), _) => format!("exited with code {code}"),
            (None, None, Some(sig)) => format!("killed by signal {sig}"),
            (None, None, None) => "ended without an exit code".into(),
        }
    }

    /// The last non-empty line of stderr (or stdout), for one-line summaries.
    pub fn last_line(&self) -> Option<&str> {
        [&self.stderr, &self.stdout].into_iter().find_map(|s| s.lines().rev().map(str::trim).find(|l| !l.is_empty()))
    }
}

/// Kills the child's whole process group when dropped before the child was reaped: a timed-out
/// task leaves no process behind.
struct GroupGuard {
    pgid: Option<Pid>,
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if let Some(pgid) = self.pgid.take() {
            let _ = killpg(pgid, Signal::SIGKILL);
        }
    }
}

/// What to run.
#[derive(Debug, Clone)]
pub struct ProcessSpec<'a> {
    pub argv: &'a [String],
    pub cwd: &'a Path,
    pub env: &'a BTreeMap<String, String>,
    /// Written to the child's stdin (then closed); no stdin at all when `None`.
    pub stdin: Option<Vec<u8>>,
    pub output_limit: usize,
    /// The task execution the process belongs to: its group is recorded in the task's state
    /// directory while it runs. `None` for notifications and the like.
    pub track: Option<&'a caretaker_core::task::TaskContext>,
}

/// Runs the process to completion. Dropping the future kills the process group.
pub async fn run(spec: ProcessSpec<'_>) -> ProcessRun {
    let started = Instant::now();
    let mut record = ProcessRun {
        argv: spec.argv.to_vec(),
        exit_code: None,
        signal: None,
        stdout: String::new(),
        stderr: String::new(),
        truncated: false,
        seconds: 0.0,
        spawn_error: None,
    };
    let Some((program, args)) = spec.argv.split_first() else {
        record.spawn_error = Some("the argv list is empty".into());
        return record;
    };
    let mut command = tokio::process::Command::new(program);
    command
        .args(args)
        .current_dir(spec.cwd)
        .envs(spec.env)
        .stdin(if spec.stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    end_with_this_process(&mut command);
    // Recorded before the spawn and completed after it, so that a runner killed at any moment
    // leaves a record the next command ends the group by. Declared before the guard: dropped
    // after it, so the record goes once the group is killed.
    if let Some(ctx) = spec.track {
        command.env(caretaker_core::children::MARKER, &ctx.execution_id);
    }
    let mut tracked = spec.track.and_then(|ctx| {
        let group = caretaker_core::children::ChildGroup::about_to_start(program, &ctx.task_id, &ctx.execution_id);
        caretaker_core::children::track(&ctx.state_dir, &group)
            .inspect_err(|e| tracing::warn!("{}: could not record its process group: {e}", ctx.task_id))
            .ok()
    });
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(e) => {
            record.spawn_error = Some(e.to_string());
            return record;
        }
    };
    if let (Some(tracked), Some(pid), Some(ctx)) = (tracked.as_mut(), child.id(), spec.track)
        && let Err(e) = tracked.started(pid)
    {
        tracing::warn!("{}: could not record its process group: {e}", ctx.task_id);
    }
    let mut guard = GroupGuard { pgid: child.id().map(|id| Pid::from_raw(id as i32)) };
    if let (Some(bytes), Some(mut stdin)) = (spec.stdin, child.stdin.take()) {
        // A child that does not read its stdin must not block us: write in the background.
        tokio::spawn(async move {
            let _ = stdin.write_all(&bytes).await;
        });
    }
    let stdout = child.stdout.take().expect("stdout is piped");
    let stderr = child.stderr.take().expect("stderr is piped");
    let (out, err, status) =
        tokio::join!(read_tail(stdout, spec.output_limit), read_tail(stderr, spec.output_limit), child.wait());
    // Reaped: the group is gone or belongs to grandchildren that outlived their parent on
    // purpose; either way not ours to kill any more.
    guard.pgid = None;
    record.stdout = String::from_utf8_lossy(&out.0).into_owned();
    record.stderr = String::from_utf8_lossy(&err.0).into_owned();
    record.truncated = out.1 || err.1;
    record.seconds = started.elapsed().as_secs_f64();
    match status {
        Ok(status) => {
            record.exit_code = status.code();
            record.signal = std::os::unix::process::ExitStatusExt::signal(&status);
        }
        Err(e) => record.spawn_error = Some(format!("waiting for it failed: {e}")),
    }
    record
}

/// Has the kernel kill the child when this process dies (Linux). The signal comes when the
/// thread that spawned the child ends: children are spawned from the runtime's threads, which
/// live as long as the process.
#[cfg(target_os = "linux")]
fn end_with_this_process(command: &mut tokio::process::Command) {
    let parent = nix::unistd::getpid();
    #[allow(unsafe_code)]
    // SAFETY: the closure runs in the forked child before exec, where only async-signal-safe
    // calls are allowed: prctl(PR_SET_PDEATHSIG) and getppid are single system calls that
    // allocate nothing and take no lock.
    unsafe {
        command.pre_exec(move || {
            nix::sys::prctl::set_pdeathsig(Signal::SIGKILL)?;
            // The runner died before the signal was set: it would never come.
            if nix::unistd::getppid() != parent {
                return Err(std::io::Error::other("the runner ended before the command started"));
            }
            Ok(())
        });
    }
}

#[cfg(not(target_os = "linux"))]
fn end_with_this_process(_command: &mut tokio::process::Command) {}

/// Reads a stream to its end, keeping the last `limit` bytes; says whether it dropped any.
async fn read_tail(mut stream: impl AsyncRead + Unpin, limit: usize) -> (Vec<u8>, bool) {
    let mut kept = Vec::new();
    let mut dropped = false;
    let mut buf = [0u8; 8192];
    loop {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                kept.extend_from_slice(&buf[..n]);
                if kept.len() > limit {
                    let excess = kept.len() - limit;
                    kept.drain(..excess);
                    dropped = true;
                }
            }
        }
    }
    (kept, dropped)
}

/// Runs with a time limit; `None` when the limit was reached (the process group is killed).
pub async fn run_with_timeout(spec: ProcessSpec<'_>, timeout: Duration) -> Option<ProcessRun> {
    tokio::time::timeout(timeout, run(spec)).await.ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    async fn go(items: &[&str]) -> ProcessRun {
        let argv = argv(items);
        let env = BTreeMap::new();
        run(ProcessSpec { argv: &argv, cwd: Path::new("."), env: &env, stdin: None, output_limit: 16, track: None })
            .await
    }

    #[tokio::test]
    async fn exit_codes_output_and_no_shell() {
        let r = go(&["sh", "-c", "echo out; echo err >&2; exit 3"]).await;
        assert_eq!(r.exit_code, Some(3));
        assert_eq!(r.stdout, "out\n");
        assert_eq!(r.stderr, "err\n");
        assert_eq!(r.describe(), "exited with code 3");
        // Arguments are passed as they are: no shell expands them.
        let r = go(&["echo", "$HOME", "*"]).await;
        assert_eq!(r.stdout, "$HOME *\n");
        let r = go(&["/nonexistent/tool"]).await;
        assert!(r.describe().starts_with("could not start \"/nonexistent/tool\""), "{}", r.describe());
    }

    #[tokio::test]
    async fn only_the_tail_of_long_output_is_kept() {
        let r = go(&["sh", "-c", "seq 1 100"]).await;
        assert!(r.truncated);
        assert_eq!(r.stdout.len(), 16);
        assert!(r.stdout.ends_with("99\n100\n"), "{}", r.stdout);
    }

    #[tokio::test]
    async fn a_timeout_kills_the_whole_process_group() {
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("grandchild.pid");
        // A grandchild in the background, as a wrapper script's pg_dump would be.
        let script = format!("sleep 60 & echo $! > {}; wait", pid_file.display());
        let argv = argv(&["sh", "-c", &script]);
        let env = BTreeMap::new();
        let spec =
            ProcessSpec { argv: &argv, cwd: dir.path(), env: &env, stdin: None, output_limit: 1024, track: None };
        let run = run_with_timeout(spec, Duration::from_secs(2));
        assert!(run.await.is_none(), "sleep 60 finished within the timeout");
        let pid: u32 = std::fs::read_to_string(&pid_file).unwrap().trim().parse().unwrap();
        // SIGKILL is immediate, but the kernel may take a moment to tear the process down.
        let alive = |pid: u32| {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .is_ok_and(|stat| stat.rsplit(')').next().is_some_and(|rest| !rest.trim_start().starts_with('Z')))
        };
        for _ in 0..100 {
            if !alive(pid) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the grandchild {pid} of the timed-out command is still running");
    }
}
