//! Maintenance mode: a flag in the state directory that critical tasks raise while they work.
//!
//! While it is on, the nightly pipeline does not deploy (the gate's choice is reported, not
//! applied) and the scheduler holds back non-critical tasks. The flag is a file,
//! `<state>/maintenance.json`, replaced atomically, so every process sharing the state directory
//! sees the same mode and a crash leaves it as it was last set.
//!
//! A mode entered by a process for the length of its work (a reset, a critical task) records that
//! process as its [`Holder`]. When the holder is gone (killed, the machine restarted), the mode is
//! stale: [`current_live`], which the pipeline, the scheduler and the commands read it through,
//! leaves a stale mode and says whose it was, so that one killed process does not hold every
//! deploy back for good. A mode turned on by hand (`caretaker maintenance on`) has no holder and
//! stays on until turned off.
//!
//! On its own host a holder is known dead from `/proc` (its process is gone, or its id now names
//! another process, or the machine restarted). A process on another host sharing the state
//! directory cannot look there, so a holder also keeps a lease: while it works, a [`Hold`]
//! renews `renewed_at` every [`RENEW_EVERY`], and a holder whose lease ran out
//! ([`LEASE`] without renewal) is stale to every host.

use crate::fs::{FsError, write_atomic};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

pub const FILE: &str = "maintenance.json";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MaintenanceMode {
    pub since: DateTime<Utc>,
    pub reason: String,
    /// Who turned it on: a task id, or `manual`.
    pub by: String,
    /// The process that holds it while it works; none when it was turned on by hand.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub holder: Option<Holder>,
}

/// A process holding maintenance mode: enough to tell, on its host, whether it is still alive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    pub host: String,
    pub pid: u32,
    /// The process's start, in clock ticks after boot (`/proc/<pid>/stat`, field 22): a process
    /// that the kernel later gave the same id has another.
    pub start_ticks: Option<u64>,
    /// The boot it ran in (`/proc/sys/kernel/random/boot_id`): after a restart it is gone.
    pub boot_id: Option<String>,
    /// When the holder last said it is alive; with `lease_seconds`, what other hosts judge by.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub renewed_at: Option<DateTime<Utc>>,
    /// How long after `renewed_at` the holder counts as gone on another host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_seconds: Option<u64>,
}

/// How long a holder's lease lasts without renewal.
pub const LEASE: std::time::Duration = std::time::Duration::from_secs(60);
/// How often a [`Hold`] renews its lease: three renewals fit in one lease.
pub const RENEW_EVERY: std::time::Duration = std::time::Duration::from_secs(20);

impl Holder {
    /// This process.
    pub fn this_process() -> Holder {
        let pid = std::process::id();
        Holder {
            host: host_name(),
            pid,
            start_ticks: start_ticks(pid),
            boot_id: boot_id(),
            renewed_at: Some(Utc::now()),
            lease_seconds: Some(LEASE.as_secs()),
        }
    }

    /// Whether `other` names the same process (whatever the state of their leases).
    pub fn same_process(&self, other: &Holder) -> bool {
        (&self.host, self.pid, self.start_ticks, &self.boot_id)
            == (&other.host, other.pid, other.start_ticks, &other.boot_id)
    }

    /// Whether the holder is gone: `Some(true)` when this machine can tell it died (its boot
    /// ended, its process id is free or belongs to another process, or it is a zombie; on another
    /// host, its lease ran out), `Some(false)` when it is alive, `None` when it cannot tell
    /// (another host and no lease, or a system without `/proc`).
    pub fn gone(&self) -> Option<bool> {
        if self.host != host_name() {
            let (renewed, lease) = (self.renewed_at?, self.lease_seconds?);
            let lease = chrono::Duration::seconds(i64::try_from(lease).unwrap_or(i64::MAX / 1000));
            return Some(Utc::now() - renewed > lease);
        }
        let boot = boot_id()?;
        if self.boot_id.as_deref().is_some_and(|b| b != boot) {
            return Some(true);
        }
        let stat = match std::fs::read_to_string(format!("/proc/{}/stat", self.pid)) {
            Ok(stat) => stat,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Some(true),
            Err(_) => return None,
        };
        let (state, started) = stat_fields(&stat)?;
        if matches!(state, "Z" | "X") {
            return Some(true);
        }
        Some(matches!((self.start_ticks, started), (Some(a), Some(b)) if a != b))
    }

    pub fn describe(&self) -> String {
        format!("process {} on {}", self.pid, self.host)
    }
}

/// This machine's name (Linux); `localhost` where it cannot be read.
pub(crate) fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

pub(crate) fn boot_id() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok().map(|b| b.trim().to_string())
}

/// A process's start in clock ticks after boot (`/proc/<pid>/stat`, field 22).
pub(crate) fn start_ticks(pid: u32) -> Option<u64> {
    stat_fields(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)?.1
}

/// A `/proc/<pid>/stat` line's state (field 3) and start in clock ticks (field 22). The fields
/// are counted after the command name's closing parenthesis: the name may hold spaces.
pub(crate) fn stat_fields(stat: &str) -> Option<(&str, Option<u64>)> {
    let mut fields = stat.rsplit_once(')')?.1.split_whitespace();
    let state = fields.next()?;
    Some((state, fields.nth(18).and_then(|f| f.parse().ok())))
}

impl MaintenanceMode {
    /// Whether its holder is known to be gone (never for a mode without holder).
    pub fn is_stale(&self) -> bool {
        self.holder.as_ref().and_then(Holder::gone) == Some(true)
    }

    /// Whether `holder`'s process holds it (whatever its lease says).
    pub fn is_held_by(&self, holder: &Holder) -> bool {
        self.holder.as_ref().is_some_and(|h| h.same_process(holder))
    }

    /// What the next command says of a stale mode it left.
    pub fn recovered_note(&self) -> String {
        let holder = self.holder.as_ref().map_or_else(|| "its holder".into(), Holder::describe);
        format!(
            "recovered stale maintenance mode: {holder} ({}: {}), on since {}, is gone; maintenance mode left",
            self.by,
            self.reason,
            self.since.format("%Y-%m-%d %H:%M:%S UTC")
        )
    }
}

/// Renews the lease of the mode `holder` holds, every [`RENEW_EVERY`], until stopped (or
/// dropped). Stop it before leaving the mode, so that no renewal in flight writes the mode back.
pub struct Hold {
    stop: Option<std::sync::mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Hold {
    /// Starts renewing `holder`'s lease on the mode in `state_dir` (only while the mode there is
    /// still held by `holder`'s process).
    pub fn renewing(state_dir: &Path, holder: &Holder) -> Hold {
        Hold::renewing_every(state_dir, holder, RENEW_EVERY)
    }

    fn renewing_every(state_dir: &Path, holder: &Holder, every: std::time::Duration) -> Hold {
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let (state_dir, holder) = (state_dir.to_path_buf(), holder.clone());
        let thread = std::thread::Builder::new().name("maintenance-lease".into()).spawn(move || {
            while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(every) {
                if let Err(e) = renew(&state_dir, &holder) {
                    eprintln!("warning: could not renew the maintenance lease: {e}");
                }
            }
        });
        match thread {
            Ok(thread) => Hold { stop: Some(stop), thread: Some(thread) },
            Err(e) => {
                // The holder is still known dead on its own host; only other hosts lose the lease.
                eprintln!("warning: could not start renewing the maintenance lease: {e}");
                Hold { stop: None, thread: None }
            }
        }
    }

    /// Stops renewing, after any renewal in flight has finished.
    pub fn stop(mut self) {
        self.halt();
    }

    fn halt(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Hold {
    fn drop(&mut self) {
        self.halt();
    }
}

/// Renews `holder`'s lease if the mode in `state_dir` is still held by its process; returns
/// whether it was.
pub fn renew(state_dir: &Path, holder: &Holder) -> Result<bool, MaintenanceError> {
    match current(state_dir)? {
        Some(mut mode) if mode.is_held_by(holder) => {
            if let Some(h) = mode.holder.as_mut() {
                h.renewed_at = Some(Utc::now());
            }
            enter(state_dir, &mode)?;
            Ok(true)
        }
        _ => Ok(false),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MaintenanceError {
    #[error(transparent)]
    Fs(#[from] FsError),
    #[error("{path}: not a maintenance-mode file: {reason}")]
    Corrupt { path: PathBuf, reason: String },
}

/// The current mode: `Some` while maintenance mode is on.
pub fn current(state_dir: &Path) -> Result<Option<MaintenanceMode>, MaintenanceError> {
    let path = state_dir.join(FILE);
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| MaintenanceError::Corrupt { path, reason: e.to_string() }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(FsError::new("read", path, e).into()),
    }
}

/// The current mode, after leaving it if its holder is gone: `(mode, recovered)`, where
/// `recovered` is the stale mode that was left (its [`MaintenanceMode::recovered_note`] is what to
/// record). A mode someone else replaced meanwhile is not touched.
pub fn current_live(state_dir: &Path) -> Result<(Option<MaintenanceMode>, Option<MaintenanceMode>), MaintenanceError> {
    let Some(mode) = current(state_dir)? else { return Ok((None, None)) };
    if !mode.is_stale() {
        return Ok((Some(mode), None));
    }
    // Moved aside first, so that a mode another process entered after our read is put back, not
    // removed.
    let path = state_dir.join(FILE);
    let aside = state_dir.join(format!(".maintenance-stale-{}", std::process::id()));
    match std::fs::rename(&path, &aside) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((None, None)),
        Err(e) => return Err(FsError::new("move aside", path, e).into()),
    }
    let moved: Option<MaintenanceMode> =
        std::fs::read(&aside).ok().and_then(|bytes| serde_json::from_slice(&bytes).ok());
    if moved.as_ref() == Some(&mode) {
        std::fs::remove_file(&aside).map_err(|e| FsError::new("remove", &aside, e))?;
        crate::fs::sync_dir(state_dir)?;
        return Ok((None, Some(mode)));
    }
    // Not the stale mode any more: put it back, unless yet another was entered meanwhile.
    match std::fs::hard_link(&aside, &path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(FsError::new("restore", path, e).into()),
    }
    std::fs::remove_file(&aside).map_err(|e| FsError::new("remove", &aside, e))?;
    current_live(state_dir)
}

/// Turns maintenance mode on (replacing who and why if it was already on).
pub fn enter(state_dir: &Path, mode: &MaintenanceMode) -> Result<(), MaintenanceError> {
    let bytes = serde_json::to_vec_pretty(mode).expect("the mode serialises");
    Ok(write_atomic(&state_dir.join(FILE), &bytes)?)
}

/// Turns maintenance mode on only if it is off, in one step no other process can interleave with
/// (the file is linked into place only if none exists). `Ok(Err(mode))` names the mode that was
/// already on, which is left as it is.
pub fn enter_if_off(state_dir: &Path, mode: &MaintenanceMode) -> Result<Result<(), MaintenanceMode>, MaintenanceError> {
    let path = state_dir.join(FILE);
    std::fs::create_dir_all(state_dir).map_err(|e| FsError::new("create directory", state_dir, e))?;
    let mut temp = tempfile::Builder::new()
        .prefix(".caretaker-tmp-")
        .tempfile_in(state_dir)
        .map_err(|e| FsError::new("create a temporary file in", state_dir, e))?;
    let bytes = serde_json::to_vec_pretty(mode).expect("the mode serialises");
    std::io::Write::write_all(temp.as_file_mut(), &bytes).map_err(|e| FsError::new("write", &path, e))?;
    temp.as_file().sync_all().map_err(|e| FsError::new("sync", &path, e))?;
    match temp.persist_noclobber(&path) {
        Ok(_) => {
            crate::fs::sync_dir(state_dir)?;
            Ok(Ok(()))
        }
        Err(e) if e.error.kind() == std::io::ErrorKind::AlreadyExists => match current(state_dir)? {
            Some(holder) => Ok(Err(holder)),
            // Turned off between our attempt and the read: try once more.
            None => enter_if_off(state_dir, mode),
        },
        Err(e) => Err(FsError::new("create", path, e.error).into()),
    }
}

/// Turns maintenance mode off; returns the mode that was on, if any.
pub fn leave(state_dir: &Path) -> Result<Option<MaintenanceMode>, MaintenanceError> {
    let was = current(state_dir)?;
    let path = state_dir.join(FILE);
    match std::fs::remove_file(&path) {
        Ok(()) => crate::fs::sync_dir(state_dir)?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(FsError::new("remove", path, e).into()),
    }
    Ok(was)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn on_and_off() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(current(dir.path()).unwrap(), None);
        let mode =
            MaintenanceMode { since: Utc::now(), reason: "db upgrade".into(), by: "manual".into(), holder: None };
        enter(dir.path(), &mode).unwrap();
        assert_eq!(current(dir.path()).unwrap(), Some(mode.clone()));
        assert_eq!(leave(dir.path()).unwrap(), Some(mode));
        assert_eq!(current(dir.path()).unwrap(), None);
        assert_eq!(leave(dir.path()).unwrap(), None);
    }

    #[test]
    fn entering_if_off_leaves_someone_elses_mode_alone() {
        let dir = tempfile::tempdir().unwrap();
        let theirs = MaintenanceMode { since: Utc::now(), reason: "db upgrade".into(), by: "ops".into(), holder: None };
        let ours = MaintenanceMode {
            since: Utc::now(),
            reason: "model reset".into(),
            by: "models reset".into(),
            holder: Some(Holder::this_process()),
        };
        assert_eq!(enter_if_off(dir.path(), &theirs).unwrap(), Ok(()));
        assert_eq!(enter_if_off(dir.path(), &ours).unwrap(), Err(theirs.clone()));
        assert_eq!(current(dir.path()).unwrap(), Some(theirs));
        leave(dir.path()).unwrap();
        assert_eq!(enter_if_off(dir.path(), &ours).unwrap(), Ok(()));
        assert_eq!(current(dir.path()).unwrap(), Some(ours));
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().flatten().map(|e| e.file_name()).collect();
        assert_eq!(names, vec![std::ffi::OsString::from(FILE)], "no temporary file is left");
    }

    #[test]
    #[cfg(target_os = "linux")]
    fn a_mode_whose_holder_died_is_left_by_the_next_reader_and_a_live_or_manual_one_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let mode = |holder: Option<Holder>| MaintenanceMode {
            since: Utc::now(),
            reason: "models reset: bad model".into(),
            by: "models reset".into(),
            holder,
        };
        // A live holder (this process) and a mode turned on by hand stay.
        let alive = mode(Some(Holder::this_process()));
        assert_eq!(alive.holder.as_ref().unwrap().gone(), Some(false));
        enter(dir.path(), &alive).unwrap();
        assert_eq!(current_live(dir.path()).unwrap(), (Some(alive.clone()), None));
        let manual = mode(None);
        enter(dir.path(), &manual).unwrap();
        assert_eq!(current_live(dir.path()).unwrap(), (Some(manual), None));

        // A holder that exited.
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        let started = start_ticks(pid);
        child.wait().unwrap();
        let dead = mode(Some(Holder { pid, start_ticks: started, ..Holder::this_process() }));
        assert!(dead.is_stale());
        enter(dir.path(), &dead).unwrap();
        let (now, recovered) = current_live(dir.path()).unwrap();
        assert_eq!((now, recovered.as_ref()), (None, Some(&dead)));
        assert!(dead.recovered_note().contains(&format!("process {pid} on")), "{}", dead.recovered_note());
        assert_eq!(current(dir.path()).unwrap(), None);

        // This process's id, but a process that started at another time (the id was reused).
        let reused = mode(Some(Holder {
            start_ticks: start_ticks(std::process::id()).map(|t| t + 1),
            ..Holder::this_process()
        }));
        assert!(reused.is_stale());
        // A holder from an earlier boot.
        let rebooted = mode(Some(Holder { boot_id: Some("an earlier boot".into()), ..Holder::this_process() }));
        assert!(rebooted.is_stale());
        // On another host, this machine cannot see the process: the lease tells. Renewed within
        // the lease, it is alive; not renewed for longer, it is gone; without a lease (a holder
        // written by an earlier release), never stale.
        let elsewhere = |renewed: Option<chrono::Duration>| {
            mode(Some(Holder {
                host: "another-host".into(),
                pid,
                renewed_at: renewed.map(|ago| Utc::now() - ago),
                ..Holder::this_process()
            }))
        };
        assert!(!elsewhere(Some(chrono::Duration::seconds(30))).is_stale());
        assert!(elsewhere(Some(chrono::Duration::seconds(LEASE.as_secs() as i64 + 5))).is_stale());
        assert!(!elsewhere(None).is_stale());
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().flatten().map(|e| e.file_name()).collect();
        assert!(names.is_empty(), "nothing left aside: {names:?}");
    }

    #[test]
    fn a_hold_renews_its_own_lease_only_and_stops_before_the_mode_is_left() {
        let dir = tempfile::tempdir().unwrap();
        let mut ours = Holder::this_process();
        ours.renewed_at = Some(Utc::now() - chrono::Duration::hours(1));
        let mode = MaintenanceMode {
            since: Utc::now(),
            reason: "models reset: bad model".into(),
            by: "models reset".into(),
            holder: Some(ours.clone()),
        };
        enter(dir.path(), &mode).unwrap();
        let hold = Hold::renewing_every(dir.path(), &ours, std::time::Duration::from_millis(20));
        let renewed = || current(dir.path()).unwrap().and_then(|m| m.holder).and_then(|h| h.renewed_at);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while renewed() == ours.renewed_at && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let at = renewed().unwrap();
        assert!(Utc::now() - at < chrono::Duration::seconds(5), "renewed: {at}");
        assert!(current(dir.path()).unwrap().unwrap().is_held_by(&ours));
        hold.stop();
        leave(dir.path()).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(60));
        assert_eq!(current(dir.path()).unwrap(), None, "a stopped hold writes nothing back");

        // Someone else's mode is never renewed (nor replaced).
        let theirs = MaintenanceMode { holder: None, by: "ops".into(), ..mode };
        enter(dir.path(), &theirs).unwrap();
        assert!(!renew(dir.path(), &ours).unwrap());
        assert_eq!(current(dir.path()).unwrap(), Some(theirs));
    }
}
