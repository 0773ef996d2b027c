//! The model registry: versioned model directories, an atomically replaced champion pointer, and
//! an append-only ledger of every deploy, rollback and promotion.
//!
//! ```text
//! models/
//!   champion.json        the pointer: which version serves, since when, why
//!   ledger.jsonl         one JSON line per deploy, rollback, promotion or reset, never rewritten
//!   versions/v0001/      model.msgpack + card.json (family, params, metrics, hashes, ...)
//!   .lock                held while the registry changes
//! ```
//!
//! The order of a deploy makes every crash safe: the version directory is written and synced
//! under a temporary name and renamed into place, then the pointer is replaced atomically, then
//! the ledger line is appended. A crash before the pointer swap leaves an unused version and the
//! old champion serving; a crash after it leaves the new champion serving and a ledger line
//! missing, which the next writer notices and appends ("recovered"). Models are opaque bytes
//! here: the registry does not know how to train or score, so it does not depend on the model
//! crates.
//!
//! ```no_run
//! let registry = caretaker_registry::Registry::open("models".as_ref()).unwrap();
//! if let Some(champion) = registry.champion().unwrap() {
//!     let (card, bytes) = registry.load(champion.version).unwrap(); // hashes checked
//!     println!("{} serves since {}", card.version, champion.since);
//! }
//! ```

mod card;
mod ledger;

pub use card::{ChampionPointer, ModelCard};
pub use ledger::{LedgerAction, LedgerEntry};

use caretaker_core::crash_point;
use caretaker_core::fs::{FsError, sync_dir, write_atomic};
use caretaker_core::ids::ModelVersion;
use caretaker_core::lock::ProcessLock;
use chrono::{DateTime, Utc};
use std::path::{Path, PathBuf};

const MODEL_FILE: &str = "model.msgpack";
const CARD_FILE: &str = "card.json";
/// blake3 of every other file of the version, checked on load.
const HASHES_FILE: &str = "blake3.json";

/// What went wrong with the registry; each variant names the version or file.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Fs(#[from] FsError),
    #[error("model version {version} is not in the registry {root}")]
    UnknownVersion { root: PathBuf, version: ModelVersion },
    #[error("{path}: {reason}")]
    Corrupt { path: PathBuf, reason: String },
    #[error(transparent)]
    Busy(#[from] caretaker_core::lock::LockError),
    #[error("{0}")]
    Refused(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Held while the registry changes.
#[derive(Debug)]
pub struct RegistryLock {
    root: PathBuf,
    _lock: ProcessLock,
}

impl RegistryLock {
    /// Refuses a lock taken on another registry.
    fn check(&self, root: &Path) -> Result<()> {
        if self.root == root {
            Ok(())
        } else {
            Err(Error::Refused(format!("the lock held is for {}, not {}", self.root.display(), root.display())))
        }
    }
}

/// A registry rooted at a directory.
#[derive(Debug, Clone)]
pub struct Registry {
    root: PathBuf,
}

/// A version as `models list` shows it.
#[derive(Debug, Clone)]
pub struct VersionSummary {
    pub card: ModelCard,
    pub is_champion: bool,
}

impl Registry {
    /// Opens (and creates, if needed) the registry at `root`.
    pub fn open(root: &Path) -> Result<Registry> {
        let versions = root.join("versions");
        std::fs::create_dir_all(&versions).map_err(|e| FsError::new("create directory", &versions, e))?;
        Ok(Registry { root: root.to_path_buf() })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn versions_dir(&self) -> PathBuf {
        self.root.join("versions")
    }

    fn version_dir(&self, version: ModelVersion) -> PathBuf {
        self.versions_dir().join(version.to_string())
    }

    fn pointer_path(&self) -> PathBuf {
        self.root.join("champion.json")
    }

    /// Takes the registry's lock, or says who holds it.
    pub fn lock(&self) -> Result<RegistryLock> {
        let what = format!("the model registry {}", self.root.display());
        Ok(RegistryLock { root: self.root.clone(), _lock: ProcessLock::acquire(&self.root.join(".lock"), &what)? })
    }

    /// The current champion, if any.
    pub fn champion(&self) -> Result<Option<ChampionPointer>> {
        let path = self.pointer_path();
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| Error::Corrupt { path, reason: format!("not a champion pointer: {e}") }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(FsError::new("read", path, e).into()),
        }
    }

    /// Every complete version, oldest first.
    pub fn versions(&self) -> Result<Vec<ModelVersion>> {
        let dir = self.versions_dir();
        let entries = std::fs::read_dir(&dir).map_err(|e| FsError::new("list", &dir, e))?;
        let mut versions: Vec<ModelVersion> =
            entries.flatten().filter_map(|e| e.file_name().to_str().and_then(|n| n.parse().ok())).collect();
        versions.sort();
        Ok(versions)
    }

    /// Reads a version's card.
    pub fn card(&self, version: ModelVersion) -> Result<ModelCard> {
        let path = self.version_dir(version).join(CARD_FILE);
        let bytes = std::fs::read(&path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                Error::UnknownVersion { root: self.root.clone(), version }
            } else {
                FsError::new("read", &path, e).into()
            }
        })?;
        serde_json::from_slice(&bytes).map_err(|e| Error::Corrupt { path, reason: format!("not a model card: {e}") })
    }

    /// Reads a version's card and model bytes, checking the blake3 of every file against the
    /// version's `blake3.json` (and the model's against its card).
    pub fn load(&self, version: ModelVersion) -> Result<(ModelCard, Vec<u8>)> {
        let dir = self.version_dir(version);
        let card = self.card(version)?;
        let hashes_path = dir.join(HASHES_FILE);
        let hashes: std::collections::BTreeMap<String, String> = std::fs::read(&hashes_path)
            .map_err(|e| Error::from(FsError::new("read", &hashes_path, e)))
            .and_then(|b| {
                serde_json::from_slice(&b)
                    .map_err(|e| Error::Corrupt { path: hashes_path.clone(), reason: e.to_string() })
            })?;
        let mut model = Vec::new();
        for name in [CARD_FILE, MODEL_FILE] {
            let path = dir.join(name);
            let bytes = std::fs::read(&path).map_err(|e| FsError::new("read", &path, e))?;
            let actual = blake3::hash(&bytes).to_hex().to_string();
            let expected = hashes.get(name).cloned().unwrap_or_default();
            if actual != expected {
                return Err(Error::Corrupt {
                    path,
                    reason: format!("blake3 {actual} does not match {HASHES_FILE}'s {expected}"),
                });
            }
            if name == MODEL_FILE {
                model = bytes;
            }
        }
        if blake3::hash(&model).to_hex().as_str() != card.model_blake3 {
            return Err(Error::Corrupt {
                path: dir.join(CARD_FILE),
                reason: format!("the card's model_blake3 {} does not match {MODEL_FILE}", card.model_blake3),
            });
        }
        Ok((card, model))
    }

    /// Every version with its card, newest first.
    pub fn list(&self) -> Result<Vec<VersionSummary>> {
        let champion = self.champion()?.map(|c| c.version);
        let mut out = Vec::new();
        for version in self.versions()?.into_iter().rev() {
            out.push(VersionSummary { card: self.card(version)?, is_champion: Some(version) == champion });
        }
        Ok(out)
    }

    pub fn ledger(&self) -> Result<Vec<LedgerEntry>> {
        ledger::read(&self.root)
    }

    /// Stores a new version without making it the champion (a challenger the gate kept out, which
    /// an operator may `promote`). `card` is completed with the version and the model's hash.
    pub fn store(
        &self,
        lock: &RegistryLock,
        model: &[u8],
        card: ModelCard,
        now: DateTime<Utc>,
    ) -> Result<ModelVersion> {
        lock.check(&self.root)?;
        self.recover(lock, now)?;
        self.write_version(model, card, None)
    }

    /// Stores a new version and makes it the champion. `card` is completed with the version, the
    /// model's hash and the champion it replaces.
    pub fn deploy(
        &self,
        lock: &RegistryLock,
        model: &[u8],
        card: ModelCard,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<ModelVersion> {
        self.deploy_as(LedgerAction::Deploy, lock, model, card, reason, now)
    }

    /// Deploys like [`Registry::deploy`], recorded in the ledger as a `reset`: a model retrained
    /// from scratch and deployed on an operator's word, without weighing it against the champion
    /// it replaces (`caretaker models reset`).
    pub fn reset(
        &self,
        lock: &RegistryLock,
        model: &[u8],
        card: ModelCard,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<ModelVersion> {
        self.deploy_as(LedgerAction::Reset, lock, model, card, reason, now)
    }

    fn deploy_as(
        &self,
        action: LedgerAction,
        lock: &RegistryLock,
        model: &[u8],
        card: ModelCard,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<ModelVersion> {
        lock.check(&self.root)?;
        self.recover(lock, now)?;
        let previous = self.champion()?.map(|c| c.version);
        let run_id = card.run_id.clone();
        let version = self.write_version(model, card, previous)?;
        // The pointer, atomically.
        self.write_pointer(version, reason, run_id.clone(), now)?;
        crash_point("deploy:pointer_swapped");
        // The ledger.
        ledger::append(
            &self.root,
            &LedgerEntry { at: now, action, version, previous, reason: reason.to_string(), run_id },
        )?;
        Ok(version)
    }

    /// Writes the next version directory: complete and synced under a staging name no reader
    /// lists, then renamed into place.
    fn write_version(&self, model: &[u8], mut card: ModelCard, replaced: Option<ModelVersion>) -> Result<ModelVersion> {
        let version = self.versions()?.last().copied().unwrap_or(ModelVersion(0)).next();
        card.version = version;
        card.model_blake3 = blake3::hash(model).to_hex().to_string();
        card.model_bytes = model.len() as u64;
        card.replaced = replaced;
        let staging = self.versions_dir().join(format!(".staging-{version}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&staging);
        std::fs::create_dir_all(&staging).map_err(|e| FsError::new("create directory", &staging, e))?;
        let card_json = serde_json::to_vec_pretty(&card).expect("a card serialises");
        write_atomic(&staging.join(MODEL_FILE), model)?;
        write_atomic(&staging.join(CARD_FILE), &card_json)?;
        let hashes: std::collections::BTreeMap<&str, String> = [
            (MODEL_FILE, blake3::hash(model).to_hex().to_string()),
            (CARD_FILE, blake3::hash(&card_json).to_hex().to_string()),
        ]
        .into_iter()
        .collect();
        write_atomic(&staging.join(HASHES_FILE), &serde_json::to_vec_pretty(&hashes).expect("hashes serialise"))?;
        crash_point("deploy:staged");
        caretaker_core::fs::rename_synced(&staging, &self.version_dir(version))?;
        crash_point("deploy:version_written");
        Ok(version)
    }

    /// Makes `version` the champion, whatever it is now, with a reason for the ledger.
    pub fn promote(
        &self,
        lock: &RegistryLock,
        version: ModelVersion,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<ModelVersion>> {
        lock.check(&self.root)?;
        self.recover(lock, now)?;
        let current = self.champion()?.map(|c| c.version);
        if current == Some(version) {
            return Err(Error::Refused(format!("{version} is already the champion")));
        }
        self.load(version)?; // never point at a version that cannot be loaded
        self.write_pointer(version, reason, None, now)?;
        crash_point("promote:pointer_swapped");
        ledger::append(
            &self.root,
            &LedgerEntry {
                at: now,
                action: LedgerAction::Promote,
                version,
                previous: current,
                reason: reason.to_string(),
                run_id: None,
            },
        )?;
        Ok(current)
    }

    /// Makes `to` the champion again (default: the version the current champion replaced).
    pub fn rollback(
        &self,
        lock: &RegistryLock,
        to: Option<ModelVersion>,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<(ModelVersion, ModelVersion)> {
        lock.check(&self.root)?;
        self.recover(lock, now)?;
        let current =
            self.champion()?.ok_or_else(|| Error::Refused("there is no champion to roll back".into()))?.version;
        let target = match to {
            Some(v) => v,
            None => self.card(current)?.replaced.ok_or_else(|| {
                Error::Refused(format!(
                    "champion {current} replaced no earlier version: there is nothing to roll back to"
                ))
            })?,
        };
        if target == current {
            return Err(Error::Refused(format!("{target} is already the champion")));
        }
        self.load(target)?; // never point at a version that cannot be loaded
        self.write_pointer(target, reason, None, now)?;
        ledger::append(
            &self.root,
            &LedgerEntry {
                at: now,
                action: LedgerAction::Rollback,
                version: target,
                previous: Some(current),
                reason: reason.to_string(),
                run_id: None,
            },
        )?;
        Ok((current, target))
    }

    /// Versions retention would remove: all but the newest `keep_last`, sparing every version that
    /// is or ever was champion (by the ledger) so a rollback target never disappears.
    pub fn prunable(&self, keep_last: usize) -> Result<Vec<ModelVersion>> {
        let mut protected: std::collections::BTreeSet<ModelVersion> =
            self.ledger()?.iter().flat_map(|e| std::iter::once(e.version).chain(e.previous)).collect();
        protected.extend(self.champion()?.map(|c| c.version));
        let versions = self.versions()?;
        let keep_from = versions.len().saturating_sub(keep_last);
        Ok(versions[..keep_from].iter().copied().filter(|v| !protected.contains(v)).collect())
    }

    /// Removes the versions [`Registry::prunable`] names; returns them with the bytes freed
    /// (measured on disk). Each version directory is renamed out of the listing first, then
    /// deleted, so a crash never leaves a half-deleted version that looks complete.
    pub fn prune(&self, lock: &RegistryLock, keep_last: usize) -> Result<Vec<(ModelVersion, u64)>> {
        lock.check(&self.root)?;
        let mut removed = Vec::new();
        for version in self.prunable(keep_last)? {
            let dir = self.version_dir(version);
            let bytes = caretaker_core::fs::disk_size(&dir);
            let doomed = self.versions_dir().join(format!(".staging-pruned-{version}"));
            caretaker_core::fs::rename_synced(&dir, &doomed)?;
            std::fs::remove_dir_all(&doomed).map_err(|e| FsError::new("remove", &doomed, e))?;
            removed.push((version, bytes));
        }
        Ok(removed)
    }

    fn write_pointer(
        &self,
        version: ModelVersion,
        reason: &str,
        run_id: Option<String>,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let pointer = ChampionPointer { version, since: now, reason: reason.to_string(), run_id };
        write_atomic(&self.pointer_path(), &serde_json::to_vec_pretty(&pointer).expect("a pointer serialises"))?;
        Ok(())
    }

    /// Finishes what a crashed writer left: removes staging directories and temporary files
    /// (every writer holds the lock we hold) and appends the ledger line of a pointer swap whose
    /// line is missing.
    fn recover(&self, _lock: &RegistryLock, now: DateTime<Utc>) -> Result<()> {
        caretaker_core::fs::sweep_temp_files(&self.root, std::time::Duration::ZERO);
        let dir = self.versions_dir();
        if let Ok(entries) = std::fs::read_dir(&dir) {
            for e in entries.flatten() {
                if e.file_name().to_string_lossy().starts_with(".staging-") {
                    let _ = std::fs::remove_dir_all(e.path());
                }
            }
            sync_dir(&dir)?;
        }
        let Some(pointer) = self.champion()? else { return Ok(()) };
        let last = self.ledger()?.last().map(|e| e.version);
        if last != Some(pointer.version) {
            ledger::append(
                &self.root,
                &LedgerEntry {
                    at: now,
                    action: LedgerAction::Deploy,
                    version: pointer.version,
                    previous: last,
                    reason: format!(
                        "recovered: the champion pointer names {} but the ledger's last line did not (an interrupted write); original reason: {}",
                        pointer.version, pointer.reason
                    ),
                    run_id: pointer.run_id.clone(),
                },
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
