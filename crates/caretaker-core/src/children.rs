//! The process groups a runner started, recorded in `<state>/children/` while they run, so that
//! none outlives a runner that was killed.
//!
//! A task's command runs in a process group of its own. On Linux its first process gets the
//! parent-death signal, so it ends with its runner; what it started in turn (a shell's
//! background job, say) is found here by the next command that comes (the scheduler at start
//! and before each firing, `run`, `models reset`): [`sweep`] ends the group of every record
//! whose runner is gone, and removes the record.
//!
//! The record is written before the process starts ([`ChildGroup::about_to_start`], no group id
//! yet) and completed once it has ([`Tracked::started`]): a runner killed between the two leaves
//! a record without a group id, and the sweep then ends every process that carries the
//! execution's id in its environment (`CARETAKER_EXECUTION_ID`, set on every tracked process).

use crate::fs::{FsError, write_atomic};
use crate::maintenance::{Holder, boot_id, start_ticks};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

pub const DIR: &str = "children";

/// One running process group and who started it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChildGroup {
    /// The group's id: its first process's id; `None` in the record written before the process
    /// was started.
    #[serde(default)]
    pub pgid: Option<u32>,
    /// That first process's start (clock ticks after boot): a later process given the same id
    /// has another, and its group is not ours.
    pub start_ticks: Option<u64>,
    pub boot_id: Option<String>,
    /// The program the group runs, for the notes.
    pub program: String,
    pub task_id: String,
    pub execution_id: String,
    pub started_at: DateTime<Utc>,
    /// The process that started the group and waits for it.
    pub runner: Holder,
}

impl ChildGroup {
    /// The group this process is about to start for `execution_id`: recorded before the spawn, so
    /// that no moment exists in which the group runs unrecorded.
    pub fn about_to_start(program: &str, task_id: &str, execution_id: &str) -> ChildGroup {
        ChildGroup {
            pgid: None,
            start_ticks: None,
            boot_id: boot_id(),
            program: program.to_string(),
            task_id: task_id.to_string(),
            execution_id: execution_id.to_string(),
            started_at: Utc::now(),
            runner: Holder::this_process(),
        }
    }

    /// The group whose first process is `pid`, started by this process.
    pub fn started_here(pid: u32, program: &str, task_id: &str, execution_id: &str) -> ChildGroup {
        ChildGroup {
            pgid: Some(pid),
            start_ticks: start_ticks(pid),
            ..ChildGroup::about_to_start(program, task_id, execution_id)
        }
    }

    /// The environment entry every process of the execution carries (`KEY=value`).
    pub fn marker(&self) -> String {
        format!("{MARKER}={}", self.execution_id)
    }
}

/// The environment variable that names a tracked process's execution.
pub const MARKER: &str = "CARETAKER_EXECUTION_ID";

/// A recorded group: the record is removed when this is dropped (the group was reaped, or killed
/// by the runner itself).
#[derive(Debug)]
pub struct Tracked {
    path: PathBuf,
    group: ChildGroup,
}

impl Tracked {
    /// Completes the record once the group's first process is `pid`.
    pub fn started(&mut self, pid: u32) -> Result<(), FsError> {
        self.group.pgid = Some(pid);
        self.group.start_ticks = start_ticks(pid);
        write_record(&self.path, &self.group)
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Records `group` in `<state_dir>/children/`, under a name of its own (this process, the time,
/// a counter: a runner may start several groups, and a dead runner's id may be given again).
pub fn track(state_dir: &Path, group: &ChildGroup) -> Result<Tracked, FsError> {
    static COUNT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or_default();
    let count = COUNT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let path = state_dir.join(DIR).join(format!("{}-{nanos}-{count}.json", std::process::id()));
    write_record(&path, group)?;
    Ok(Tracked { path, group: group.clone() })
}

fn write_record(path: &Path, group: &ChildGroup) -> Result<(), FsError> {
    write_atomic(path, &serde_json::to_vec_pretty(group).expect("a child group serialises"))
}

/// Ends the process groups whose runner (on this host) is gone and removes their records; returns
/// what it did, a line each. Groups of live runners, and of runners on other hosts, are left
/// alone.
pub fn sweep(state_dir: &Path) -> Vec<String> {
    let dir = state_dir.join(DIR);
    // A record a runner was killed while writing (live runners write here too: a minute old).
    crate::fs::sweep_temp_files(&dir, std::time::Duration::from_secs(60));
    let Ok(entries) = std::fs::read_dir(&dir) else { return Vec::new() };
    let mut notes = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().is_none_or(|e| e != "json") {
            continue;
        }
        let Some(group) = std::fs::read(&path).ok().and_then(|b| serde_json::from_slice::<ChildGroup>(&b).ok()) else {
            continue;
        };
        // Another host's processes are not ours to see or signal, whatever its lease says.
        if group.runner.host != crate::maintenance::host_name() || group.runner.gone() != Some(true) {
            continue;
        }
        let whose = format!(
            "execution {} of task {}, whose runner ({}) died",
            group.execution_id,
            group.task_id,
            group.runner.describe()
        );
        let what = match group.pgid {
            Some(pgid) => format!("process group {pgid} ({})", group.program),
            None => format!("the processes of {} (started as its runner died)", group.program),
        };
        match end_group(&group) {
            Ended::Killed => notes.push(format!("ended {what} left by {whose}")),
            Ended::Gone => {}
            Ended::Failed(e) => {
                notes.push(format!("could not end {what} left by {whose}: {e}"));
                continue;
            }
        }
        let _ = std::fs::remove_file(&path);
    }
    notes
}

enum Ended {
    Killed,
    /// Nothing of the group is left (or what has its id now is another group).
    Gone,
    Failed(String),
}

/// Kills what is left of the group. While its first process is the recorded one (same boot, same
/// start), the whole group is ours: `killpg`. Once that process is gone, the group's id is free
/// for the kernel to give to a new process that starts a group of its own, so only the members
/// that carry this execution's id in their environment ([`MARKER`], which every child of a task
/// inherits) are killed, one by one; so are all processes that carry it when the runner died
/// before it could record the group's id.
fn end_group(group: &ChildGroup) -> Ended {
    if group.boot_id.is_none() || group.boot_id != boot_id() {
        return Ended::Gone;
    }
    let kill = |pid: u32, whole: bool| {
        let Ok(pid) = i32::try_from(pid) else { return Err(nix::errno::Errno::ESRCH) };
        let pid = nix::unistd::Pid::from_raw(pid);
        let signal = nix::sys::signal::Signal::SIGKILL;
        if whole { nix::sys::signal::killpg(pid, signal) } else { nix::sys::signal::kill(pid, signal) }
    };
    let leader = group.pgid.map(|pgid| (pgid, start_ticks(pgid)));
    match leader {
        Some((pgid, Some(now))) if Some(now) == group.start_ticks => match kill(pgid, true) {
            Ok(()) => Ended::Killed,
            Err(nix::errno::Errno::ESRCH) => Ended::Gone,
            Err(e) => Ended::Failed(e.to_string()),
        },
        // The id names another process now: the group we recorded is gone.
        Some((_, Some(_))) => Ended::Gone,
        Some((_, None)) | None => {
            let mut killed = false;
            for pid in members_of(group.pgid, &group.marker()) {
                match kill(pid, false) {
                    Ok(()) => killed = true,
                    Err(nix::errno::Errno::ESRCH) => {}
                    Err(e) => return Ended::Failed(e.to_string()),
                }
            }
            if killed { Ended::Killed } else { Ended::Gone }
        }
    }
}

/// The live processes (in process group `pgid`, when given) whose environment holds `marker`
/// (`KEY=value`).
fn members_of(pgid: Option<u32>, marker: &str) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    let mut members = Vec::new();
    for entry in entries.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { continue };
        // After the command name: state, ppid, pgrp.
        let mut fields = stat.rsplit_once(')').map(|(_, rest)| rest.split_whitespace()).into_iter().flatten();
        let (state, group) = (fields.next(), fields.nth(1).and_then(|g| g.parse::<u32>().ok()));
        let foreign = pgid.is_some_and(|pgid| group != Some(pgid)) || pid == std::process::id();
        if foreign || matches!(state, Some("Z" | "X")) {
            continue;
        }
        let carries = std::fs::read(format!("/proc/{pid}/environ"))
            .is_ok_and(|env| env.split(|b| *b == 0).any(|v| v == marker.as_bytes()));
        if carries {
            members.push(pid);
        }
    }
    members
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use std::os::unix::process::CommandExt;

    fn alive(pid: u32) -> bool {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|s| crate::maintenance::stat_fields(&s).map(|(state, _)| !matches!(state, "Z" | "X")))
            .unwrap_or(false)
    }

    #[test]
    fn the_group_of_a_dead_runner_is_ended_and_a_live_runners_is_not() {
        let dir = tempfile::tempdir().unwrap();
        // A group whose shell started a background job: the job is what outlives a runner.
        let mut group_leader = std::process::Command::new("sh")
            .args(["-c", "sleep 60 & echo $!; wait"])
            .stdout(std::process::Stdio::piped())
            .process_group(0)
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufRead::read_line(&mut std::io::BufReader::new(group_leader.stdout.as_mut().unwrap()), &mut line)
            .unwrap();
        let job: u32 = line.trim().parse().unwrap();
        let mut record = ChildGroup::started_here(group_leader.id(), "sh", "upgrade", "exec-1");
        let tracked = track(dir.path(), &record).unwrap();
        // Its runner (this process) is alive: left alone.
        assert_eq!(sweep(dir.path()), Vec::<String>::new());
        assert!(alive(job));
        drop(tracked);

        // Its runner died: the whole group is ended, the record removed.
        let mut dead = std::process::Command::new("true").spawn().unwrap();
        let dead_pid = dead.id();
        let dead_ticks = start_ticks(dead_pid);
        dead.wait().unwrap();
        record.runner = Holder { pid: dead_pid, start_ticks: dead_ticks, ..Holder::this_process() };
        track(dir.path(), &record).map(std::mem::forget).unwrap();
        let notes = sweep(dir.path());
        assert_eq!(notes.len(), 1, "{notes:?}");
        assert!(notes[0].contains(&format!("ended process group {} (sh)", group_leader.id())), "{notes:?}");
        assert!(notes[0].contains("execution exec-1 of task upgrade"), "{notes:?}");
        group_leader.wait().unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while alive(job) && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert!(!alive(job), "the background job of the group is ended too");
        assert!(std::fs::read_dir(dir.path().join(DIR)).unwrap().next().is_none(), "the record is removed");

        // A record whose group id now names another process: that process is not touched.
        let mut other = std::process::Command::new("sleep").arg("60").process_group(0).spawn().unwrap();
        let reused = ChildGroup {
            start_ticks: start_ticks(other.id()).map(|t| t + 1),
            ..ChildGroup::started_here(other.id(), "sleep", "upgrade", "exec-2")
        };
        let reused = ChildGroup { runner: record.runner.clone(), ..reused };
        track(dir.path(), &reused).map(std::mem::forget).unwrap();
        assert_eq!(sweep(dir.path()), Vec::<String>::new());
        assert!(alive(other.id()));
        other.kill().unwrap();
        other.wait().unwrap();
    }

    #[test]
    fn once_the_first_process_is_gone_only_the_executions_own_processes_are_ended() {
        let dir = tempfile::tempdir().unwrap();
        // The first process exits, leaving two members: one started by the task (it carries the
        // execution's id) and one that does not (as a process that later took the free group id
        // would not).
        let out = std::process::Command::new("sh")
            .args(["-c", "sleep 60 >/dev/null & echo $!; env -u CARETAKER_EXECUTION_ID sleep 61 >/dev/null & echo $!"])
            .env("CARETAKER_EXECUTION_ID", "exec-3")
            .stdout(std::process::Stdio::piped())
            .process_group(0)
            .spawn()
            .unwrap();
        let leader = out.id();
        let ticks = start_ticks(leader);
        let output = out.wait_with_output().unwrap();
        let pids: Vec<u32> =
            String::from_utf8_lossy(&output.stdout).lines().map(|l| l.trim().parse().unwrap()).collect();
        let (ours, other) = (pids[0], pids[1]);
        // Until `env` has replaced itself with `sleep`, the other process still carries the id
        // (a loaded machine can take a while): the sweep must read the environment `sleep` has.
        let comm = |pid: u32| std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while comm(other).trim() != "sleep" && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let mut dead = std::process::Command::new("true").spawn().unwrap();
        let runner = Holder { pid: dead.id(), start_ticks: start_ticks(dead.id()), ..Holder::this_process() };
        dead.wait().unwrap();
        let record = ChildGroup {
            pgid: Some(leader),
            start_ticks: ticks,
            runner,
            ..ChildGroup::started_here(leader, "sh", "upgrade", "exec-3")
        };
        track(dir.path(), &record).map(std::mem::forget).unwrap();
        let notes = sweep(dir.path());
        assert_eq!(notes.len(), 1, "{notes:?}");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while alive(ours) && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert!(!alive(ours), "the task's own process is ended");
        assert!(alive(other), "a process without the execution's id is not");
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(other as i32), nix::sys::signal::Signal::SIGKILL);
    }

    #[test]
    fn a_runner_killed_before_it_recorded_the_group_id_leaves_nothing_of_the_execution() {
        let dir = tempfile::tempdir().unwrap();
        let mut dead = std::process::Command::new("true").spawn().unwrap();
        let runner = Holder { pid: dead.id(), start_ticks: start_ticks(dead.id()), ..Holder::this_process() };
        dead.wait().unwrap();
        // The record the runner wrote before its spawn, and what the spawn started: a shell whose
        // background job outlives it, in a group of its own, and a process of another execution.
        let record = ChildGroup { runner, ..ChildGroup::about_to_start("sh", "upgrade", "exec-4") };
        track(dir.path(), &record).map(std::mem::forget).unwrap();
        let out = std::process::Command::new("sh")
            .args(["-c", "sleep 60 >/dev/null 2>&1 & echo $!"])
            .env(MARKER, "exec-4")
            .stdout(std::process::Stdio::piped())
            .process_group(0)
            .output()
            .unwrap();
        let job: u32 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
        let mut other = std::process::Command::new("sleep").arg("61").env(MARKER, "exec-5").spawn().unwrap();

        let notes = sweep(dir.path());
        assert_eq!(notes.len(), 1, "{notes:?}");
        assert!(notes[0].starts_with("ended the processes of sh (started as its runner died)"), "{notes:?}");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while alive(job) && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert!(!alive(job), "the execution's background job is ended");
        assert!(alive(other.id()), "another execution's process is not");
        assert!(std::fs::read_dir(dir.path().join(DIR)).unwrap().next().is_none(), "the record is removed");
        other.kill().unwrap();
        other.wait().unwrap();

        // A record whose runner died before it started anything: removed, nothing said.
        let mut dead = std::process::Command::new("true").spawn().unwrap();
        let runner = Holder { pid: dead.id(), start_ticks: start_ticks(dead.id()), ..Holder::this_process() };
        dead.wait().unwrap();
        let record = ChildGroup { runner, ..ChildGroup::about_to_start("sh", "upgrade", "exec-6") };
        track(dir.path(), &record).map(std::mem::forget).unwrap();
        assert_eq!(sweep(dir.path()), Vec::<String>::new());
        assert!(std::fs::read_dir(dir.path().join(DIR)).unwrap().next().is_none(), "the record is removed");
    }
}
