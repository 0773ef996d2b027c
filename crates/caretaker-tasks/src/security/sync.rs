//! `advisories_sync` (and `caretaker advisories sync`): the offline advisory database the
//! security scan reads, fetched from OSV's public export.
//!
//! OSV publishes one zip of every advisory per ecosystem at `<base>/<ecosystem>/all.zip`
//! (`https://osv-vulnerabilities.storage.googleapis.com/crates.io/all.zip`). The sync fetches the
//! archive of each ecosystem the project's lockfiles use, from that base or from a mirror (any
//! URL laid out the same way) or a local directory (for a site without internet: copy the zips
//! in). Each archive is checked whole before anything changes: the download is as long as the
//! server said, every entry decompresses with its checksum right, and every entry is an OSV
//! record. The records are unpacked into a new directory beside the database, with a record of
//! the sync ([`SYNC_FILE`]: when, from where, each archive's size, blake3 and record count), and
//! the new directory is exchanged with the old one in one step (`renameat2(RENAME_EXCHANGE)` on
//! Linux). A failed, partial or interrupted sync leaves the previous database as it was; the
//! next sync removes what a killed one left beside it.

use super::lockfiles::Ecosystem;
use super::osv::OsvRecord;
use crate::error::{Error, Result};
use crate::params::{positive, problem, resolve};
use crate::{error_chain, redact};
use caretaker_core::config::ConfigProblem;
use caretaker_core::task::{BoxFuture, Task, TaskContext, TaskError, TaskOutcome, parse_params};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The largest advisory record the sync accepts (the largest in OSV's exports are a few hundred
/// KiB).
const MAX_RECORD_BYTES: u64 = 16 * 1024 * 1024;

/// OSV's public export.
pub const DEFAULT_SOURCE: &str = "https://osv-vulnerabilities.storage.googleapis.com";
/// The record of the last sync, inside the database directory (hidden: the scan reads every
/// other `*.json` there as an advisory).
pub const SYNC_FILE: &str = ".caretaker-sync.json";

/// Parameters of `advisories_sync`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdvisoriesSyncConfig {
    /// The database directory the security scan reads, relative to the catalog's root.
    pub advisories: PathBuf,
    /// Where the exports come from: a URL laid out as OSV's (`<source>/<ecosystem>/all.zip`), or
    /// a local directory laid out the same way. Default OSV's public export.
    #[serde(default = "default_source")]
    pub source: String,
    /// The ecosystems to fetch (`crates.io`, `PyPI`, `npm`). Default: those of the lockfiles in
    /// the root (`Cargo.lock`, `requirements.txt`, `package-lock.json`), all three when none is
    /// there.
    pub ecosystems: Option<Vec<String>>,
    /// Each download is given up after this many seconds. Default 300.
    #[serde(default = "default_timeout")]
    pub timeout_seconds: f64,
}

fn default_source() -> String {
    DEFAULT_SOURCE.into()
}
fn default_timeout() -> f64 {
    300.0
}

/// What the last sync fetched, kept in the database as [`SYNC_FILE`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SyncRecord {
    pub synced_at: DateTime<Utc>,
    pub source: String,
    pub ecosystems: Vec<EcosystemSync>,
}

impl SyncRecord {
    pub fn records(&self) -> usize {
        self.ecosystems.iter().map(|e| e.records).sum()
    }

    /// The record of the database in `dir`, if it was synced (`None` for a directory filled by
    /// hand, or an unreadable record).
    pub fn read(dir: &Path) -> Option<SyncRecord> {
        serde_json::from_slice(&std::fs::read(dir.join(SYNC_FILE)).ok()?).ok()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EcosystemSync {
    pub ecosystem: String,
    pub url: String,
    pub archive_bytes: u64,
    pub archive_blake3: String,
    pub records: usize,
}

/// A validated sync: what to fetch from where into which directory.
#[derive(Debug, Clone)]
pub struct AdvisoriesSync {
    pub advisories: PathBuf,
    pub source: Source,
    pub ecosystems: Vec<Ecosystem>,
    pub timeout: Duration,
}

/// Where the exports come from.
#[derive(Debug, Clone, PartialEq)]
pub enum Source {
    Http(String),
    Directory(PathBuf),
}

impl Source {
    pub fn parse(text: &str, root: &Path) -> Result<Source, String> {
        let text = text.trim();
        if text.is_empty() {
            return Err("is empty".into());
        }
        if let Some(rest) = text.strip_prefix("file://") {
            return Ok(Source::Directory(PathBuf::from(rest)));
        }
        if text.starts_with("http://") || text.starts_with("https://") {
            return Ok(Source::Http(text.trim_end_matches('/').to_string()));
        }
        if text.contains("://") {
            return Err(format!("{text:?}: only http://, https:// and local directories are supported"));
        }
        Ok(Source::Directory(resolve(root, Path::new(text))))
    }

    fn archive(&self, ecosystem: Ecosystem) -> String {
        match self {
            Source::Http(base) => format!("{base}/{}/all.zip", ecosystem.osv_name()),
            Source::Directory(dir) => dir.join(ecosystem.osv_name()).join("all.zip").display().to_string(),
        }
    }

    fn describe(&self) -> String {
        match self {
            Source::Http(base) => redact::redact(base),
            Source::Directory(dir) => dir.display().to_string(),
        }
    }
}

/// The ecosystems of the lockfiles found in `root`; all three when there is none.
pub fn ecosystems_of(root: &Path) -> Vec<Ecosystem> {
    let found: Vec<Ecosystem> = super::DEFAULT_LOCKFILES
        .iter()
        .filter(|n| root.join(n).is_file())
        .filter_map(|n| Ecosystem::of_lockfile(Path::new(n)))
        .collect();
    if found.is_empty() { vec![Ecosystem::CratesIo, Ecosystem::PyPI, Ecosystem::Npm] } else { found }
}

impl AdvisoriesSync {
    pub fn build(params: &toml::Table, root: &Path) -> Result<AdvisoriesSync, ConfigProblem> {
        let config: AdvisoriesSyncConfig = parse_params(params)?;
        let source = Source::parse(&config.source, root).map_err(|e| problem("source", e))?;
        let ecosystems = match config.ecosystems {
            None => ecosystems_of(root),
            Some(names) if names.is_empty() => return Err(problem("ecosystems", "must name at least one ecosystem")),
            Some(names) => names
                .iter()
                .enumerate()
                .map(|(i, n)| {
                    Ecosystem::from_osv(n).ok_or_else(|| {
                        problem(&format!("ecosystems[{i}]"), format!("{n:?} is not one of crates.io, PyPI, npm"))
                    })
                })
                .collect::<Result<_, _>>()?,
        };
        Ok(AdvisoriesSync {
            advisories: resolve(root, &config.advisories),
            source,
            ecosystems,
            timeout: Duration::from_secs_f64(positive("timeout_seconds", config.timeout_seconds)?),
        })
    }

    /// Fetches, checks and swaps in the database; the previous one stays on any failure.
    pub async fn sync(&self, now: DateTime<Utc>) -> Result<SyncRecord> {
        let target = self.advisories.clone();
        let parent = caretaker_core::fs::parent_dir(&target).to_path_buf();
        let name = target.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "advisories".into());
        std::fs::create_dir_all(&parent).map_err(|e| Error::file("create", &parent, e))?;
        // Its error names the database and the process holding it.
        let _lock = caretaker_core::lock::ProcessLock::acquire(
            &parent.join(format!(".{name}.sync.lock")),
            &format!("the advisory database {}", target.display()),
        )
        .map_err(|e| Error::step("starting the sync", e))?;
        // What a killed sync left: nobody else syncs while we hold the lock.
        let leftover = format!(".{name}.sync-");
        if let Ok(entries) = std::fs::read_dir(&parent) {
            for entry in entries.flatten() {
                if entry.file_name().to_string_lossy().starts_with(&leftover) {
                    let _ = std::fs::remove_dir_all(entry.path());
                }
            }
        }
        let staging = tempfile::Builder::new()
            .prefix(&leftover)
            .tempdir_in(&parent)
            .map_err(|e| Error::file("create a directory beside", &target, e))?;
        let database = staging.path().join("database");
        std::fs::create_dir_all(&database).map_err(|e| Error::file("create", &database, e))?;
        let mut record = SyncRecord { synced_at: now, source: self.source.describe(), ecosystems: Vec::new() };
        for ecosystem in &self.ecosystems {
            let url = self.source.archive(*ecosystem);
            let archive = staging.path().join(format!("{}.zip", ecosystem.osv_name()));
            let bytes = self.fetch(&url, &archive).await?;
            let into = database.join(ecosystem.osv_name());
            let (archive_blake3, records) = {
                let (archive, into, url) = (archive.clone(), into.clone(), url.clone());
                crate::blocking("unpacking the advisories", move || unpack(&archive, &into, &url)).await??
            };
            record.ecosystems.push(EcosystemSync {
                ecosystem: ecosystem.osv_name().into(),
                url: redact::redact(&url),
                archive_bytes: bytes,
                archive_blake3,
                records,
            });
        }
        let bytes = serde_json::to_vec_pretty(&record).expect("a sync record serialises");
        // Both errors name the file or directories.
        caretaker_core::fs::write_atomic(&database.join(SYNC_FILE), &bytes)
            .map_err(|e| Error::step("recording the sync", e))?;
        caretaker_core::fs::exchange_dirs(&database, &target)
            .map_err(|e| Error::step("swapping the new database in", e))?;
        // `database` now holds the previous one (if any), removed with the staging directory.
        drop(staging);
        Ok(record)
    }

    /// Downloads (or copies) one archive; returns its size. A status other than 200, a body
    /// shorter than the server announced, a timeout or a missing file is an error naming the URL.
    async fn fetch(&self, url: &str, to: &Path) -> Result<u64> {
        match &self.source {
            Source::Directory(_) => std::fs::copy(url, to).map_err(|e| Error::file("read", Path::new(url), e)),
            Source::Http(_) => {
                let client = reqwest::Client::builder()
                    .connect_timeout(self.timeout.min(Duration::from_secs(30)))
                    .timeout(self.timeout)
                    .build()
                    .map_err(|e| Error::step("cannot make an HTTP client", error_chain(&e)))?;
                let fetching = || format!("fetching {}", redact::redact(url));
                let fetch = async {
                    let mut response = client.get(url).send().await.map_err(|e| describe(&e, url, self.timeout))?;
                    if response.status() != reqwest::StatusCode::OK {
                        return Err(Error::step(fetching(), format!("it answered {}", response.status())));
                    }
                    let announced = response.content_length();
                    let mut file = std::fs::File::create(to).map_err(|e| Error::file("write", to, e))?;
                    let mut got = 0u64;
                    while let Some(chunk) = response.chunk().await.map_err(|e| describe(&e, url, self.timeout))? {
                        file.write_all(&chunk).map_err(|e| Error::file("write", to, e))?;
                        got += chunk.len() as u64;
                    }
                    if let Some(n) = announced.filter(|n| *n != got) {
                        return Err(Error::step(fetching(), format!("the download is truncated ({got} of {n} bytes)")));
                    }
                    file.sync_all().map_err(|e| Error::file("write", to, e))?;
                    Ok(got)
                };
                match tokio::time::timeout(self.timeout, fetch).await {
                    Ok(result) => result,
                    Err(_) => Err(no_answer(url, self.timeout)),
                }
            }
        }
    }
}

/// A failed request or body: a server that answered but broke off is a truncated download; one
/// that never answered (refused, unresolved, too slow) is [`Error::Fetch`].
fn describe(e: &reqwest::Error, url: &str, timeout: Duration) -> Error {
    let chain = error_chain(e);
    if e.is_body() || chain.contains("before message length reached") {
        Error::step(
            format!("fetching {}", redact::redact(url)),
            format!("the download is truncated ({})", redact::redact(&chain)),
        )
    } else if e.is_timeout() {
        no_answer(url, timeout)
    } else {
        Error::fetch(url, chain)
    }
}

fn no_answer(url: &str, timeout: Duration) -> Error {
    Error::fetch(url, format!("no complete answer within {} s", timeout.as_secs_f64()))
}

/// Checks the archive whole and unpacks its records into `into`: every entry a plain
/// `<id>.json` name, decompressed with its checksum right, and an OSV record. Returns the
/// archive's blake3 and how many records it held.
fn unpack(archive: &Path, into: &Path, url: &str) -> Result<(String, usize)> {
    let unpacking = || format!("unpacking {}", redact::redact(url));
    let bytes = std::fs::read(archive).map_err(|e| Error::file("read", archive, e))?;
    let blake3 = blake3::hash(&bytes).to_hex().to_string();
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes))
        .map_err(|e| Error::step(unpacking(), format!("it is not a readable zip archive: {e}")))?;
    std::fs::create_dir_all(into).map_err(|e| Error::file("create", into, e))?;
    let mut records = 0usize;
    let mut contents = Vec::new();
    for i in 0..zip.len() {
        let mut entry =
            zip.by_index(i).map_err(|e| Error::step(unpacking(), format!("entry {i} cannot be read: {e}")))?;
        if entry.is_dir() {
            continue;
        }
        let name = entry
            .name()
            .map_err(|e| Error::step(unpacking(), format!("entry {i} has no readable name: {e}")))?
            .into_owned();
        let plain = !name.is_empty()
            && name.ends_with(".json")
            && !name.starts_with('.')
            && !name.contains(['/', '\\'])
            && !name.contains("..");
        if !plain {
            return Err(Error::step(
                unpacking(),
                format!("entry {name:?} is not an advisory file (<id>.json); nothing was changed"),
            ));
        }
        contents.clear();
        // Reading to the end checks the entry's CRC-32; no advisory is anywhere near the limit,
        // which keeps a decompression bomb from a mirror out of memory.
        (&mut entry)
            .take(MAX_RECORD_BYTES + 1)
            .read_to_end(&mut contents)
            .map_err(|e| Error::step(unpacking(), format!("entry {name} is damaged: {e}")))?;
        if contents.len() as u64 > MAX_RECORD_BYTES {
            return Err(Error::step(
                unpacking(),
                format!("entry {name} is larger than {MAX_RECORD_BYTES} bytes: not an advisory"),
            ));
        }
        serde_json::from_slice::<OsvRecord>(&contents)
            .map_err(|e| Error::step(unpacking(), format!("entry {name} is not an OSV record: {e}")))?;
        let file = into.join(&name);
        std::fs::write(&file, &contents).map_err(|e| Error::file("write", &file, e))?;
        records += 1;
    }
    if records == 0 {
        return Err(Error::step(unpacking(), "it holds no advisories"));
    }
    Ok((blake3, records))
}

impl Task for AdvisoriesSync {
    fn kind(&self) -> &'static str {
        "advisories_sync"
    }

    fn metric_names(&self) -> Vec<String> {
        ["records", "archive_bytes"].map(String::from).to_vec()
    }

    fn run<'a>(&'a self, ctx: &'a TaskContext) -> BoxFuture<'a, Result<TaskOutcome, TaskError>> {
        Box::pin(async move {
            let ecosystems: Vec<&str> = self.ecosystems.iter().map(|e| e.osv_name()).collect();
            if ctx.dry_run {
                return Ok(TaskOutcome {
                    status: caretaker_core::task::TaskStatus::Skipped,
                    ..TaskOutcome::succeeded(format!(
                        "dry run: would fetch {} from {} into {}",
                        ecosystems.join(", "),
                        self.source.describe(),
                        self.advisories.display()
                    ))
                });
            }
            Ok(match self.sync(ctx.started_at).await {
                Ok(record) => outcome_of(&record, &self.advisories),
                Err(e) => TaskOutcome::failed(format!(
                    "{e}; the advisory database {} is as it was{}",
                    self.advisories.display(),
                    match (&self.source, &e) {
                        (Source::Http(_), Error::Fetch { .. }) => format!(
                            " (a machine without internet: fetch {} elsewhere, put it in a directory as {}/all.zip, and set source to that directory)",
                            self.source.archive(self.ecosystems[0]),
                            self.ecosystems[0].osv_name()
                        ),
                        _ => String::new(),
                    }
                )),
            })
        })
    }
}

/// A sync as a task outcome (and the command's output).
pub fn outcome_of(record: &SyncRecord, dir: &Path) -> TaskOutcome {
    let parts: Vec<String> = record.ecosystems.iter().map(|e| format!("{} {}", e.ecosystem, e.records)).collect();
    let bytes: u64 = record.ecosystems.iter().map(|e| e.archive_bytes).sum();
    TaskOutcome {
        details: serde_json::to_value(record).expect("a sync record serialises"),
        ..TaskOutcome::succeeded(format!(
            "synced {} advisories ({}) from {} into {}",
            record.records(),
            parts.join(", "),
            record.source,
            dir.display()
        ))
        .with_metric("records", record.records() as f64)
        .with_metric("archive_bytes", bytes as f64)
    }
}

#[cfg(test)]
mod tests;
