//! Where the registry's files live: a local directory, or a prefix of a bucket in object storage.
//!
//! Both keep the same files under the same names (`champion.json`, `ledger.jsonl`,
//! `versions/v0001/{model.msgpack,card.json,blake3.json}`), and both make the same promises in
//! their own way:
//!
//! - A version is complete before anyone lists it. A directory is written under a staging name
//!   and renamed into place; in a bucket, the version's number is claimed first (`claim.json`,
//!   written only if absent, so two machines never write the same version) and `blake3.json` is
//!   written last: a version is listed once its `blake3.json` exists.
//! - The pointer changes only if it is still what the writer read. In a directory the registry's
//!   lock makes that so (the pointer is compared under it); in a bucket the write is conditional
//!   (`If-None-Match: *` when there was no pointer, `If-Match: <ETag>` otherwise), so two machines
//!   that race cannot both deploy, and there is no lock to leave behind.
//! - The ledger is appended to: under the lock in a directory; in a bucket it is rewritten whole
//!   with `If-Match` on the copy read, read again and retried when someone else wrote first.

use crate::ledger::{self, LedgerEntry};
use crate::{Error, Result};
use caretaker_core::fs::FsError;
use caretaker_core::ids::ModelVersion;
use std::path::{Path, PathBuf};

pub(crate) const MODEL_FILE: &str = "model.msgpack";
pub(crate) const CARD_FILE: &str = "card.json";
/// blake3 of every other file of the version, checked on load; in a bucket, written last.
pub(crate) const HASHES_FILE: &str = "blake3.json";
/// In a bucket: the version's number, taken (written only if absent) before its files.
const CLAIM_FILE: &str = "claim.json";
pub(crate) const POINTER_FILE: &str = "champion.json";
const LEDGER_FILE: &str = "ledger.jsonl";
/// Times a bucket's ledger append reads again after losing a race, before giving up.
const LEDGER_ATTEMPTS: usize = 20;

/// What a read of a file saw; a conditional write names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Seen {
    Absent,
    /// A directory's file: the blake3 of its bytes (compared under the registry's lock).
    Content(String),
    /// A bucket's object: its ETag.
    ETag(String),
}

pub(crate) enum Store {
    Dir(PathBuf),
    Bucket(caretaker_objects::Bucket),
}

fn version_key(version: ModelVersion, name: &str) -> String {
    format!("versions/{version}/{name}")
}

impl Store {
    /// Where `name` is, as errors show it: a path, or an object's URL.
    pub(crate) fn locate(&self, name: &str) -> PathBuf {
        match self {
            Store::Dir(root) => root.join(name),
            Store::Bucket(bucket) => PathBuf::from(bucket.url_of(name)),
        }
    }

    pub(crate) fn read(&self, name: &str) -> Result<Option<(Vec<u8>, Seen)>> {
        match self {
            Store::Dir(root) => {
                let path = root.join(name);
                match std::fs::read(&path) {
                    Ok(bytes) => {
                        let seen = Seen::Content(blake3::hash(&bytes).to_hex().to_string());
                        Ok(Some((bytes, seen)))
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                    Err(e) => Err(FsError::new("read", path, e).into()),
                }
            }
            Store::Bucket(bucket) => Ok(bucket.get(name)?.map(|o| (o.bytes, Seen::ETag(o.e_tag)))),
        }
    }

    pub(crate) fn read_version(&self, version: ModelVersion, name: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.read(&version_key(version, name))?.map(|(bytes, _)| bytes))
    }

    /// Replaces `name` with `bytes` if it is still what `seen` saw; `false` if it is not (nothing
    /// written). A directory's caller holds the registry's lock.
    pub(crate) fn replace_if(&self, name: &str, bytes: &[u8], seen: &Seen) -> Result<bool> {
        match self {
            Store::Dir(root) => {
                let now = self.read(name)?.map_or(Seen::Absent, |(_, s)| s);
                if &now != seen {
                    return Ok(false);
                }
                caretaker_core::fs::write_atomic(&root.join(name), bytes)?;
                Ok(true)
            }
            Store::Bucket(bucket) => {
                let e_tag = match seen {
                    Seen::Absent => None,
                    Seen::ETag(tag) => Some(tag.as_str()),
                    Seen::Content(_) => return Err(Error::Refused("a directory's read names a bucket's write".into())),
                };
                Ok(bucket.put_if(name, bytes.to_vec(), e_tag)?)
            }
        }
    }

    /// The versions whose every file is in place (`complete`), or every number taken, complete or
    /// not (what the next version's number must be above); oldest first.
    pub(crate) fn versions(&self, complete: bool) -> Result<Vec<ModelVersion>> {
        let mut versions: Vec<ModelVersion> = match self {
            Store::Dir(root) => {
                let dir = root.join("versions");
                let entries = std::fs::read_dir(&dir).map_err(|e| FsError::new("list", &dir, e))?;
                // Staging directories start with a dot and parse as no version.
                entries.flatten().filter_map(|e| e.file_name().to_str().and_then(|n| n.parse().ok())).collect()
            }
            Store::Bucket(bucket) => {
                let mut found = std::collections::BTreeSet::new();
                for listed in bucket.list("versions/")? {
                    let mut parts = listed.key.split('/').skip(1);
                    let (Some(name), Some(file)) = (parts.next(), parts.next()) else { continue };
                    if let Ok(version) = name.parse::<ModelVersion>()
                        && (!complete || file == HASHES_FILE)
                    {
                        found.insert(version);
                    }
                }
                found.into_iter().collect()
            }
        };
        versions.sort();
        Ok(versions)
    }

    /// Writes version `version` with `files` (the hashes file last). `false`: the number is taken
    /// already (in a bucket, by another machine), nothing written.
    pub(crate) fn write_version(&self, version: ModelVersion, files: &[(&str, Vec<u8>)], claim: &[u8]) -> Result<bool> {
        match self {
            Store::Dir(root) => {
                let versions = root.join("versions");
                let staging = versions.join(format!(".staging-{version}-{}", std::process::id()));
                let _ = std::fs::remove_dir_all(&staging);
                std::fs::create_dir_all(&staging).map_err(|e| FsError::new("create directory", &staging, e))?;
                for (name, bytes) in files {
                    caretaker_core::fs::write_atomic(&staging.join(name), bytes)?;
                }
                caretaker_core::crash_point("deploy:staged");
                let target = versions.join(version.to_string());
                if target.exists() {
                    let _ = std::fs::remove_dir_all(&staging);
                    return Ok(false);
                }
                caretaker_core::fs::rename_synced(&staging, &target)?;
                Ok(true)
            }
            Store::Bucket(bucket) => {
                if !bucket.put_if(&version_key(version, CLAIM_FILE), claim.to_vec(), None)? {
                    return Ok(false);
                }
                for (name, bytes) in files {
                    if *name == HASHES_FILE {
                        caretaker_core::crash_point("deploy:staged");
                    }
                    bucket.put(&version_key(version, name), bytes.clone())?;
                }
                Ok(true)
            }
        }
    }

    /// Takes a version out of the listing (in a bucket its `blake3.json` goes; a directory, under
    /// the lock, keeps it until [`Store::remove_version`]), returning what
    /// [`Store::relist_version`] needs to put it back.
    pub(crate) fn unlist_version(&self, version: ModelVersion) -> Result<Option<Vec<u8>>> {
        match self {
            Store::Dir(_) => Ok(None),
            Store::Bucket(bucket) => {
                let hashes = self.read_version(version, HASHES_FILE)?;
                bucket.delete(&version_key(version, HASHES_FILE))?;
                Ok(hashes)
            }
        }
    }

    pub(crate) fn relist_version(&self, version: ModelVersion, unlisted: Option<Vec<u8>>) -> Result<()> {
        match (self, unlisted) {
            (Store::Bucket(bucket), Some(hashes)) => Ok(bucket.put(&version_key(version, HASHES_FILE), hashes)?),
            _ => Ok(()),
        }
    }

    /// Removes a version so that no reader ever finds it half gone: a directory is renamed out of
    /// the listing first; in a bucket its `blake3.json` goes first. Returns the bytes freed.
    pub(crate) fn remove_version(&self, version: ModelVersion) -> Result<u64> {
        match self {
            Store::Dir(root) => {
                let dir = root.join("versions").join(version.to_string());
                let bytes = caretaker_core::fs::disk_size(&dir);
                let doomed = root.join("versions").join(format!(".staging-pruned-{version}"));
                caretaker_core::fs::rename_synced(&dir, &doomed)?;
                std::fs::remove_dir_all(&doomed).map_err(|e| FsError::new("remove", &doomed, e))?;
                Ok(bytes)
            }
            Store::Bucket(bucket) => {
                let mut files = bucket.list(&format!("versions/{version}/"))?;
                let bytes = files.iter().map(|f| f.size).sum();
                files.sort_by_key(|f| !f.key.ends_with(HASHES_FILE));
                for file in files {
                    bucket.delete(&file.key)?;
                }
                Ok(bytes)
            }
        }
    }

    pub(crate) fn ledger(&self) -> Result<Vec<LedgerEntry>> {
        let bytes = self.read(LEDGER_FILE)?.map(|(b, _)| b);
        ledger::parse(bytes.as_deref(), &self.locate(LEDGER_FILE))
    }

    /// Appends the entry `next` makes of the ledger as it stands (`None`: nothing to append).
    /// A directory's caller holds the registry's lock.
    pub(crate) fn append_ledger(&self, next: impl Fn(&[LedgerEntry]) -> Option<LedgerEntry>) -> Result<()> {
        match self {
            Store::Dir(root) => match next(&self.ledger()?) {
                Some(entry) => ledger::append(&root.join(LEDGER_FILE), &entry),
                None => Ok(()),
            },
            Store::Bucket(_) => {
                for _ in 0..LEDGER_ATTEMPTS {
                    let (text, seen) = self.read(LEDGER_FILE)?.map_or((Vec::new(), Seen::Absent), |(b, s)| (b, s));
                    let entries = ledger::parse(Some(&text), &self.locate(LEDGER_FILE))?;
                    let Some(entry) = next(&entries) else { return Ok(()) };
                    let mut text = ledger::complete_lines(text);
                    text.extend(serde_json::to_vec(&entry).expect("a ledger entry serialises"));
                    text.push(b'\n');
                    if self.replace_if(LEDGER_FILE, &text, &seen)? {
                        return Ok(());
                    }
                }
                Err(Error::Refused(format!(
                    "{}: other writers kept changing the ledger; {LEDGER_ATTEMPTS} attempts to append failed",
                    self.locate(LEDGER_FILE).display()
                )))
            }
        }
    }

    /// A directory: removes what crashed writers left (staging directories, temporary files).
    pub(crate) fn sweep(&self) -> Result<()> {
        let Store::Dir(root) = self else { return Ok(()) };
        caretaker_core::fs::sweep_temp_files(root, std::time::Duration::ZERO);
        let dir = root.join("versions");
        if let Ok(entries) = std::fs::read_dir(&dir) {
            for e in entries.flatten() {
                if e.file_name().to_string_lossy().starts_with(".staging-") {
                    let _ = std::fs::remove_dir_all(e.path());
                }
            }
            caretaker_core::fs::sync_dir(&dir)?;
        }
        Ok(())
    }

    pub(crate) fn dir(&self) -> Option<&Path> {
        match self {
            Store::Dir(root) => Some(root),
            Store::Bucket(_) => None,
        }
    }
}
