//! The process groups a runner started, recorded in `<state>/children/` while they run, so that
//! none outlives a runner that was killed.
//!
//! A task's command runs in a process group of its own. On Linux its first process gets the
//! parent-death signal, so it ends with its runner; what it started in turn (a shell's
//! background job, say) is found here by the next command that comes (the scheduler at start
//! and before each firing, `run`, `models reset`): [`sweep`] ends the group of every record
//! whose runner is gone, and removes the record.

use crate::fs::{FsError, write_atomic};
use crate::maintenance::{Holder, boot_id, start_ticks};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

pub const DIR: &str = "children";

/// One running process group and who started it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChildGroup {
    /// The group's id: its first process's id.
    pub pgid: u32,
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
    /// The group whose first process is `pid`, started by this process.
    pub fn started_here(pid: u32, program: &str, task_id: &str, execution_id: &str) -> ChildGroup {
        ChildGroup {
            pgid: pid,
            start_ticks: start_ticks(pid),
            boot_id: boot_id(),
            program: program.to_string(),
            task_id: task_id.to_string(),
            execution_id: execution_id.to_string(),
            started_at: Utc::now(),
            runner: Holder::this_process(),
        }
    }
}

/// A recorded group: the record is removed when this is dropped (the group was reaped, or killed
/// by the runner itself).
#[derive(Debug)]
pub struct Tracked {
    path: PathBuf,
}

impl Drop for Tracked {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Records `group` in `<state_dir>/children/`.
pub fn track(state_dir: &Path, group: &ChildGroup) -> Result<Tracked, FsError> {
    let path = state_dir.join(DIR).join(format!("{}.json", group.pgid));
    write_atomic(&path, &serde_json::to_vec_pretty(group).expect("a child group serialises"))?;
    Ok(Tracked { path })
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
        match end_group(&group) {
            Ended::Killed => {
                notes.push(format!("ended process group {} ({}) left by {whose}", group.pgid, group.program))
            }
            Ended::Gone => {}
            Ended::Failed(e) => {
                notes.push(format!(
                    "could not end process group {} ({}) left by {whose}: {e}",
                    group.pgid, group.program
                ));
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
/// that carry this execution's id in their environment (`CARETAKER_EXECUTION_ID`, which every
/// child of a task inherits) are killed, one by one.
fn end_group(group: &ChildGroup) -> Ended {
    if group.boot_id.is_none() || group.boot_id != boot_id() {
        return Ended::Gone;
    }
    let Ok(pgid) = i32::try_from(group.pgid) else { return Ended::Gone };
    let kill = |pid: i32, whole: bool| {
        let pid = nix::unistd::Pid::from_raw(pid);
        let signal = nix::sys::signal::Signal::SIGKILL;
        if whole { nix::sys::signal::killpg(pid, signal) } else { nix::sys::signal::kill(pid, signal) }
    };
    match start_ticks(group.pgid) {
        Some(now) if Some(now) == group.start_ticks => match kill(pgid, true) {
            Ok(()) => Ended::Killed,
            Err(nix::errno::Errno::ESRCH) => Ended::Gone,
            Err(e) => Ended::Failed(e.to_string()),
        },
        // The id names another process now: the group we recorded is gone.
        Some(_) => Ended::Gone,
        None => {
            let marker = format!("CARETAKER_EXECUTION_ID={}", group.execution_id);
            let members = members_of(group.pgid, &marker);
            let mut killed = false;
            for pid in members {
                match i32::try_from(pid).map(|p| kill(p, false)) {
                    Ok(Ok(())) => killed = true,
                    Ok(Err(nix::errno::Errno::ESRCH)) | Err(_) => {}
                    Ok(Err(e)) => return Ended::Failed(e.to_string()),
                }
            }
            if killed { Ended::Killed } else { Ended::Gone }
        }
    }
}

/// The live processes in process group `pgid` whose environment holds `marker` (`KEY=value`).
fn members_of(pgid: u32, marker: &str) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    let mut members = Vec::new();
    for entry in entries.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { continue };
        // After the command name: state, ppid, pgrp.
        let mut fields = stat.rsplit_once(')').map(|(_, rest)| rest.split_whitespace()).into_iter().flatten();
        let (state, group) = (fields.next(), fields.nth(1).and_then(|g| g.parse::<u32>().ok()));
        if group != Some(pgid) || matches!(state, Some("Z" | "X")) {
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
        std::mem::forget(tracked);

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
            pgid: leader,
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
}
