//! The model registry: versioned models, a champion pointer that changes only as its writer
//! read it, and an append-only ledger of every deploy, rollback and promotion.
//!
//! ```text
//! models/                (a directory, or s3://bucket/prefix in object storage)
//!   champion.json        the pointer: which version serves, since when, why
//!   ledger.jsonl         one JSON line per deploy, rollback, promotion or reset, never rewritten
//!   versions/v0001/      model.msgpack + card.json (family, params, metrics, hashes, ...)
//!   .lock                a directory's: held while the registry changes
//! ```
//!
//! The order of a deploy makes every crash safe: the version is written completely before it is
//! listed, then the pointer is replaced atomically, then the ledger line is appended. A crash
//! before the pointer swap leaves an unused version and the old champion serving; a crash after it
//! leaves the new champion serving and a ledger line missing, which the next writer notices and
//! appends ("recovered"). The pointer is replaced only if it is still what the deploy weighed its
//! candidate against ([`Registry::observe`]): a run whose champion changed meanwhile (another
//! machine deployed, an operator rolled back) stores its model and deploys nothing
//! ([`Error::ChampionChanged`]). In a directory the registry's lock makes that check safe; in
//! object storage the pointer is written conditionally (`store.rs` says how). Models are opaque
//! bytes here: the registry does not know how to train or score, so it does not depend on the
//! model crates.
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
mod store;

pub use card::{ChampionPointer, ModelCard};
pub use ledger::{LedgerAction, LedgerEntry};

use caretaker_core::crash_point;
use caretaker_core::fs::FsError;
use caretaker_core::ids::ModelVersion;
use caretaker_core::lock::ProcessLock;
use chrono::{DateTime, Utc};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use store::{CARD_FILE, HASHES_FILE, MODEL_FILE, POINTER_FILE, Seen, Store};

/// What went wrong with the registry; each variant names the version or file.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Fs(#[from] FsError),
    #[error(transparent)]
    Objects(#[from] caretaker_objects::Error),
    #[error("model version {version} is not in the registry {root}")]
    UnknownVersion { root: PathBuf, version: ModelVersion },
    #[error("{path}: {reason}")]
    Corrupt { path: PathBuf, reason: String },
    #[error(transparent)]
    Busy(#[from] caretaker_core::lock::LockError),
    #[error("{0}")]
    Refused(String),
    /// The pointer is no longer what the deploy weighed its candidate against: nothing deployed.
    #[error(
        "the champion changed while this candidate was weighed against {}: {} serves now; {stored} is stored, not deployed (`caretaker models promote {stored} --reason ...` deploys it)",
        was.map_or("no champion".to_string(), |v| v.to_string()),
        now.as_ref().map_or("no champion".to_string(), |p| match &p.run_id {
            Some(run) => format!("{} (run {run})", p.version),
            None => p.version.to_string(),
        })
    )]
    ChampionChanged { stored: ModelVersion, was: Option<ModelVersion>, now: Option<ChampionPointer> },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Held while the registry changes. In object storage there is no lock to hold: every change is
/// a conditional write.
#[derive(Debug)]
pub struct RegistryLock {
    root: PathBuf,
    _lock: Option<ProcessLock>,
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

/// The champion as it was read, which a deploy names to replace it only if it is still so.
#[derive(Debug, Clone)]
pub struct Observed {
    pub pointer: Option<ChampionPointer>,
    seen: Seen,
}

impl Observed {
    pub fn version(&self) -> Option<ModelVersion> {
        self.pointer.as_ref().map(|p| p.version)
    }
}

/// A registry in a directory or in object storage.
#[derive(Clone)]
pub struct Registry {
    /// The directory, or the `s3://` URL.
    root: PathBuf,
    store: Arc<Store>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry").field("root", &self.root).finish()
    }
}

/// A version as `models list` shows it.
#[derive(Debug, Clone)]
pub struct VersionSummary {
    pub card: ModelCard,
    pub is_champion: bool,
}

impl Registry {
    /// Opens (and creates, if needed) the registry in the directory `root`.
    pub fn open(root: &Path) -> Result<Registry> {
        let versions = root.join("versions");
        std::fs::create_dir_all(&versions).map_err(|e| FsError::new("create directory", &versions, e))?;
        Ok(Registry { root: root.to_path_buf(), store: Arc::new(Store::Dir(root.to_path_buf())) })
    }

    /// The registry at `location`: an `s3://bucket/prefix` URL (reached with `options`, the
    /// `storage_options` keys), else a directory.
    pub fn at(location: &Path, options: &std::collections::BTreeMap<String, String>) -> Result<Registry> {
        match location.to_str().filter(|l| caretaker_objects::is_url(l)) {
            Some(url) => {
                let bucket = caretaker_objects::Bucket::open(url, options)?;
                Ok(Registry { root: PathBuf::from(bucket.url()), store: Arc::new(Store::Bucket(bucket)) })
            }
            None => Registry::open(location),
        }
    }

    /// The pipeline's registry (`output.models`, with `output.storage_options`).
    pub fn of(output: &caretaker_core::config::OutputDirs) -> Result<Registry> {
        Registry::at(&output.models, &output.storage_options)
    }

    /// The pipeline's registry if it has one: a directory that exists (left uncreated if not),
    /// or one in object storage.
    pub fn existing(output: &caretaker_core::config::OutputDirs) -> Result<Option<Registry>> {
        let remote = output.models.to_str().is_some_and(caretaker_objects::is_url);
        match remote || output.models.join("versions").is_dir() {
            true => Registry::of(output).map(Some),
            false => Ok(None),
        }
    }

    /// The directory, or the `s3://` URL.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Takes the registry's lock, or says who holds it (in object storage: nothing to take).
    pub fn lock(&self) -> Result<RegistryLock> {
        let what = format!("the model registry {}", self.root.display());
        let lock = match self.store.dir() {
            Some(dir) => Some(ProcessLock::acquire(&dir.join(".lock"), &what)?),
            None => None,
        };
        Ok(RegistryLock { root: self.root.clone(), _lock: lock })
    }

    /// The current champion, if any.
    pub fn champion(&self) -> Result<Option<ChampionPointer>> {
        Ok(self.observe()?.pointer)
    }

    /// The current champion as a deploy names it ([`Registry::deploy_over`]).
    pub fn observe(&self) -> Result<Observed> {
        let Some((bytes, seen)) = self.store.read(POINTER_FILE)? else {
            return Ok(Observed { pointer: None, seen: Seen::Absent });
        };
        let pointer = serde_json::from_slice(&bytes).map_err(|e| Error::Corrupt {
            path: self.store.locate(POINTER_FILE),
            reason: format!("not a champion pointer: {e}"),
        })?;
        Ok(Observed { pointer: Some(pointer), seen })
    }

    /// Every complete version, oldest first.
    pub fn versions(&self) -> Result<Vec<ModelVersion>> {
        self.store.versions(true)
    }

    /// Reads a version's card.
    pub fn card(&self, version: ModelVersion) -> Result<ModelCard> {
        let bytes = self
            .store
            .read_version(version, CARD_FILE)?
            .ok_or_else(|| Error::UnknownVersion { root: self.root.clone(), version })?;
        serde_json::from_slice(&bytes).map_err(|e| Error::Corrupt {
            path: self.file_of(version, CARD_FILE),
            reason: format!("not a model card: {e}"),
        })
    }

    fn file_of(&self, version: ModelVersion, name: &str) -> PathBuf {
        self.store.locate(&format!("versions/{version}/{name}"))
    }

    /// Reads a version's card and model bytes, checking the blake3 of every file against the
    /// version's `blake3.json` (and the model's against its card).
    pub fn load(&self, version: ModelVersion) -> Result<(ModelCard, Vec<u8>)> {
        let card = self.card(version)?;
        let read = |name: &str| {
            self.store.read_version(version, name)?.ok_or_else(|| Error::Corrupt {
                path: self.file_of(version, name),
                reason: "missing: the version is incomplete".into(),
            })
        };
        let hashes_path = self.file_of(version, HASHES_FILE);
        let hashes: std::collections::BTreeMap<String, String> = serde_json::from_slice(&read(HASHES_FILE)?)
            .map_err(|e| Error::Corrupt { path: hashes_path, reason: e.to_string() })?;
        let mut model = Vec::new();
        for name in [CARD_FILE, MODEL_FILE] {
            let bytes = read(name)?;
            let actual = blake3::hash(&bytes).to_hex().to_string();
            let expected = hashes.get(name).cloned().unwrap_or_default();
            if actual != expected {
                return Err(Error::Corrupt {
                    path: self.file_of(version, name),
                    reason: format!("blake3 {actual} does not match {HASHES_FILE}'s {expected}"),
                });
            }
            if name == MODEL_FILE {
                model = bytes;
            }
        }
        if blake3::hash(&model).to_hex().as_str() != card.model_blake3 {
            return Err(Error::Corrupt {
                path: self.file_of(version, CARD_FILE),
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
        self.store.ledger()
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

    /// Stores a new version and makes it the champion, whatever the champion is now. `card` is
    /// completed with the version, the model's hash and the champion it replaces.
    pub fn deploy(
        &self,
        lock: &RegistryLock,
        model: &[u8],
        card: ModelCard,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<ModelVersion> {
        let over = self.observe()?;
        self.deploy_as(LedgerAction::Deploy, lock, &over, model, card, reason, now)
    }

    /// Stores a new version and makes it the champion if the champion is still the one `over`
    /// saw (the one the candidate was weighed against); if not, the version stays stored and
    /// [`Error::ChampionChanged`] says what serves instead.
    pub fn deploy_over(
        &self,
        lock: &RegistryLock,
        over: &Observed,
        model: &[u8],
        card: ModelCard,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<ModelVersion> {
        self.deploy_as(LedgerAction::Deploy, lock, over, model, card, reason, now)
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
        let over = self.observe()?;
        self.deploy_as(LedgerAction::Reset, lock, &over, model, card, reason, now)
    }

    #[allow(clippy::too_many_arguments)]
    fn deploy_as(
        &self,
        action: LedgerAction,
        lock: &RegistryLock,
        over: &Observed,
        model: &[u8],
        card: ModelCard,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<ModelVersion> {
        lock.check(&self.root)?;
        self.recover(lock, now)?;
        let previous = over.version();
        let run_id = card.run_id.clone();
        let version = self.write_version(model, card, previous)?;
        // The pointer, atomically, if it is still what the candidate was weighed against.
        crash_point("deploy:before_pointer");
        caretaker_core::pause_point("deploy:before_pointer");
        if !self.write_pointer(&over.seen, version, reason, run_id.clone(), now)? {
            return Err(Error::ChampionChanged { stored: version, was: previous, now: self.champion()? });
        }
        crash_point("deploy:pointer_swapped");
        // The ledger.
        let entry = LedgerEntry { at: now, action, version, previous, reason: reason.to_string(), run_id };
        self.record(entry)?;
        Ok(version)
    }

    /// Writes the next version: complete before any reader lists it. In object storage another
    /// machine may take a number first: the next one is tried.
    fn write_version(&self, model: &[u8], mut card: ModelCard, replaced: Option<ModelVersion>) -> Result<ModelVersion> {
        card.model_blake3 = blake3::hash(model).to_hex().to_string();
        card.model_bytes = model.len() as u64;
        card.replaced = replaced;
        let mut version = self.store.versions(false)?.last().copied().unwrap_or(ModelVersion(0)).next();
        for _ in 0..100 {
            card.version = version;
            let card_json = serde_json::to_vec_pretty(&card).expect("a card serialises");
            let hashes: std::collections::BTreeMap<&str, String> =
                [(MODEL_FILE, card.model_blake3.clone()), (CARD_FILE, blake3::hash(&card_json).to_hex().to_string())]
                    .into_iter()
                    .collect();
            let files = [
                (MODEL_FILE, model.to_vec()),
                (CARD_FILE, card_json),
                (HASHES_FILE, serde_json::to_vec_pretty(&hashes).expect("hashes serialise")),
            ];
            // Unique to this writer: a retried claim that landed the first time is told from
            // another writer's.
            let nonce = Utc::now().timestamp_nanos_opt().unwrap_or_default();
            let claim = serde_json::to_vec(
                &serde_json::json!({ "run_id": card.run_id, "pid": std::process::id(), "nonce": nonce }),
            )
            .expect("a claim serialises");
            if self.store.write_version(version, &files, &claim)? {
                crash_point("deploy:version_written");
                return Ok(version);
            }
            version = version.next();
        }
        Err(Error::Refused(format!("{}: no free version number after {version}", self.root.display())))
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
        let observed = self.observe()?;
        let current = observed.version();
        if current == Some(version) {
            return Err(Error::Refused(format!("{version} is already the champion")));
        }
        self.load(version)?; // never point at a version that cannot be loaded
        self.swap_or_refuse(&observed, version, reason, now)?;
        crash_point("promote:pointer_swapped");
        let entry = LedgerEntry {
            at: now,
            action: LedgerAction::Promote,
            version,
            previous: current,
            reason: reason.to_string(),
            run_id: None,
        };
        self.record(entry)?;
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
        let observed = self.observe()?;
        let current = observed.version().ok_or_else(|| Error::Refused("there is no champion to roll back".into()))?;
        // By default, what the current champion replaced when it was deployed or promoted (not
        // when a rollback returned to it: rolling back twice goes two versions back): the ledger's
        // line for that swap (a promoted challenger's card names no replacement, a stored loser's
        // card one that never happened), else its card.
        let made_champion = |e: &&LedgerEntry| e.version == current && e.action != LedgerAction::Rollback;
        let replaced = match self.ledger()?.iter().rev().find(made_champion) {
            Some(line) => line.previous,
            None => self.card(current)?.replaced,
        };
        let target = match to {
            Some(v) => v,
            None => replaced.ok_or_else(|| {
                Error::Refused(format!(
                    "champion {current} replaced no earlier version: there is nothing to roll back to"
                ))
            })?,
        };
        if target == current {
            return Err(Error::Refused(format!("{target} is already the champion")));
        }
        self.load(target)?; // never point at a version that cannot be loaded
        self.swap_or_refuse(&observed, target, reason, now)?;
        let entry = LedgerEntry {
            at: now,
            action: LedgerAction::Rollback,
            version: target,
            previous: Some(current),
            reason: reason.to_string(),
            run_id: None,
        };
        self.record(entry)?;
        Ok((current, target))
    }

    /// An operator's change of champion: refused, with nothing changed, if someone else changed it
    /// between the read and the write (run the command again).
    fn swap_or_refuse(&self, observed: &Observed, to: ModelVersion, reason: &str, now: DateTime<Utc>) -> Result<()> {
        if self.write_pointer(&observed.seen, to, reason, None, now)? {
            return Ok(());
        }
        let now_serving = self.champion()?.map_or("no champion".to_string(), |p| p.version.to_string());
        Err(Error::Refused(format!(
            "the champion changed while this command ran ({now_serving} serves now): nothing changed; run it again"
        )))
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

    /// Removes the versions [`Registry::prunable`] names; returns them with the bytes freed. A
    /// version is taken out of the listing first, then deleted, so a crash never leaves a
    /// half-deleted version that looks complete.
    pub fn prune(&self, lock: &RegistryLock, keep_last: usize) -> Result<Vec<(ModelVersion, u64)>> {
        lock.check(&self.root)?;
        let mut removed = Vec::new();
        for version in self.prunable(keep_last)? {
            // Taken out of the listing, then checked: in object storage an operator may have
            // promoted it meanwhile (no lock keeps them out); it is put back then.
            let unlisted = self.store.unlist_version(version)?;
            if self.champion()?.is_some_and(|c| c.version == version) {
                self.store.relist_version(version, unlisted)?;
                continue;
            }
            removed.push((version, self.store.remove_version(version)?));
        }
        Ok(removed)
    }

    /// Replaces the pointer if it is still what `seen` saw; `false` if not.
    fn write_pointer(
        &self,
        seen: &Seen,
        version: ModelVersion,
        reason: &str,
        run_id: Option<String>,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let pointer = ChampionPointer { version, since: now, reason: reason.to_string(), run_id };
        let bytes = serde_json::to_vec_pretty(&pointer).expect("a pointer serialises");
        self.store.replace_if(POINTER_FILE, &bytes, seen)
    }

    /// Appends the ledger line of a pointer swap just made.
    fn record(&self, entry: LedgerEntry) -> Result<()> {
        self.store.append_ledger(|_| Some(entry.clone()))
    }

    /// Finishes what a crashed writer left: removes staging directories and temporary files
    /// (every writer to a directory holds the lock we hold) and appends the ledger line of a
    /// pointer swap whose line is missing. In object storage no lock keeps a live writer out, so
    /// a swap is taken for interrupted only once it is [`RECOVER_AFTER`] old: a writer appends its
    /// line right after its swap.
    fn recover(&self, _lock: &RegistryLock, now: DateTime<Utc>) -> Result<()> {
        self.store.sweep()?;
        let Some(pointer) = self.champion()? else { return Ok(()) };
        if self.store.dir().is_none() && now.signed_duration_since(pointer.since) < RECOVER_AFTER {
            return Ok(());
        }
        self.store.append_ledger(|ledger| {
            let last = ledger.last().map(|e| e.version);
            (last != Some(pointer.version)).then(|| LedgerEntry {
                at: now,
                action: LedgerAction::Deploy,
                version: pointer.version,
                previous: last,
                reason: format!(
                    "recovered: the champion pointer names {} but the ledger's last line did not (an interrupted write); original reason: {}",
                    pointer.version, pointer.reason
                ),
                run_id: pointer.run_id.clone(),
            })
        })
    }
}

/// In object storage: how old a pointer swap without its ledger line must be before another
/// writer takes it for interrupted and records it.
const RECOVER_AFTER: chrono::TimeDelta = chrono::TimeDelta::minutes(10);

#[cfg(test)]
mod tests;
