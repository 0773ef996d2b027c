//! Object storage: S3 and S3-compatible servers (MinIO, R2, s3s), through the `object_store`
//! crate polars reads clouds with.
//!
//! One place builds the client (options, then the standard AWS environment, then the profile
//! files) and words its errors for an operator (no such bucket, access denied, unreachable, timed
//! out), with every secret cut out. Datasets are read with it (`caretaker-data`); the registry,
//! the reports and the pattern archive keep their files in a [`Bucket`]: a blocking view of one
//! `s3://bucket/prefix`, with the conditional writes (`If-None-Match: *`, `If-Match: <ETag>`)
//! that let two machines share a champion pointer without a lock.
//!
//! ```no_run
//! let bucket = caretaker_objects::Bucket::open("s3://ml/models", &Default::default()).unwrap();
//! if let Some(pointer) = bucket.get("champion.json").unwrap() {
//!     // Written only if nobody replaced it since it was read.
//!     let won = bucket.put_if("champion.json", b"{}".to_vec(), Some(&pointer.e_tag)).unwrap();
//! }
//! ```

mod client;

pub use client::{client, describe, secrets};

use futures::TryStreamExt;
use object_store::aws::AmazonS3;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, UpdateVersion};
use std::collections::BTreeMap;
use std::path::Path;

/// What went wrong, naming the URL (never a secret).
#[derive(Debug, thiserror::Error)]
#[error("{url}: {reason}")]
pub struct Error {
    pub url: String,
    pub reason: String,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Whether `text` names an object store (`s3://`) rather than a local path.
pub fn is_url(text: &str) -> bool {
    text.starts_with("s3://")
}

/// The bucket and the key (without a leading or trailing `/`) of an `s3://bucket/key` URL.
pub fn split_url(url: &str) -> Result<(String, String)> {
    let invalid = |reason: &str| Error { url: url.to_string(), reason: reason.to_string() };
    let rest = url.strip_prefix("s3://").ok_or_else(|| invalid("not an s3:// URL"))?;
    let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        return Err(invalid("no bucket: s3://bucket/prefix/"));
    }
    Ok((bucket.to_string(), key.trim_matches('/').to_string()))
}

/// An object read whole, with the ETag a conditional write names.
#[derive(Debug, Clone)]
pub struct Object {
    pub bytes: Vec<u8>,
    pub e_tag: String,
}

/// An object as listed: its key below the bucket's prefix, its size.
#[derive(Debug, Clone, PartialEq)]
pub struct Listed {
    pub key: String,
    pub size: u64,
}

/// A blocking view of `s3://bucket/prefix`: every key is relative to the prefix.
pub struct Bucket {
    url: String,
    prefix: String,
    store: AmazonS3,
    runtime: tokio::runtime::Runtime,
    secrets: Vec<String>,
}

impl std::fmt::Debug for Bucket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bucket").field("url", &self.url).finish_non_exhaustive()
    }
}

impl Bucket {
    /// The client for `url` (`s3://bucket/prefix`) with `options` (the `storage_options` keys).
    /// Nothing is sent until the first call.
    pub fn open(url: &str, options: &BTreeMap<String, String>) -> Result<Bucket> {
        let (bucket, prefix) = split_url(url)?;
        let secrets = secrets(options);
        let hide = |e: Error| Error { url: e.url, reason: caretaker_core::redact::redact_with(&e.reason, &secrets) };
        let store = client(url, &bucket, options).map_err(hide)?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Error { url: url.to_string(), reason: format!("cannot start the I/O runtime: {e}") })?;
        let url = match prefix.as_str() {
            "" => format!("s3://{bucket}"),
            p => format!("s3://{bucket}/{p}"),
        };
        Ok(Bucket { url, prefix, store, runtime, secrets })
    }

    /// `s3://bucket/prefix`, without a trailing `/`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The URL of `key`.
    pub fn url_of(&self, key: &str) -> String {
        format!("{}/{key}", self.url)
    }

    fn path(&self, key: &str) -> Result<ObjectPath> {
        let full = match (self.prefix.as_str(), key) {
            ("", key) => key.to_string(),
            (p, "") => p.to_string(),
            (p, key) => format!("{p}/{key}"),
        };
        ObjectPath::parse(&full).map_err(|e| Error { url: self.url_of(key), reason: e.to_string() })
    }

    fn failed(&self, key: &str, e: &object_store::Error) -> Error {
        Error { url: self.url_of(key), reason: caretaker_core::redact::redact_with(&describe(e), &self.secrets) }
    }

    /// The object at `key`, or `None` if there is none.
    pub fn get(&self, key: &str) -> Result<Option<Object>> {
        let path = self.path(key)?;
        self.runtime.block_on(async {
            let got = match self.store.get(&path).await {
                Ok(got) => got,
                // A missing bucket answers 404 too: a listing tells it from a missing key.
                Err(object_store::Error::NotFound { .. }) => {
                    let parent = path.parts().count().saturating_sub(1);
                    let above: ObjectPath = path.parts().take(parent).collect();
                    return match self.store.list_with_delimiter(Some(&above)).await {
                        Ok(_) => Ok(None),
                        Err(e) => Err(self.failed(key, &e)),
                    };
                }
                Err(e) => return Err(self.failed(key, &e)),
            };
            let e_tag = got.meta.e_tag.clone().unwrap_or_default();
            let bytes = got.bytes().await.map_err(|e| self.failed(key, &e))?;
            Ok(Some(Object { bytes: bytes.to_vec(), e_tag }))
        })
    }

    /// Writes `bytes` at `key`, replacing what is there.
    pub fn put(&self, key: &str, bytes: Vec<u8>) -> Result<()> {
        self.put_with(key, bytes, PutMode::Overwrite).map(|_| ())
    }

    /// Writes `bytes` at `key` only if the object there is still the one read with `e_tag`, or,
    /// with `None`, only if there is none. `false`: someone else wrote first; nothing written.
    /// (A write the client retried after its first attempt landed finds the condition failed by
    /// its own bytes: that is a success. Callers make their bytes unique to the writer.)
    pub fn put_if(&self, key: &str, bytes: Vec<u8>, e_tag: Option<&str>) -> Result<bool> {
        let mode = match e_tag {
            None => PutMode::Create,
            Some(tag) => PutMode::Update(UpdateVersion { e_tag: Some(tag.to_string()), version: None }),
        };
        if self.put_with(key, bytes.clone(), mode)? {
            return Ok(true);
        }
        Ok(self.get(key)?.is_some_and(|there| there.bytes == bytes))
    }

    fn put_with(&self, key: &str, bytes: Vec<u8>, mode: PutMode) -> Result<bool> {
        let path = self.path(key)?;
        let options = PutOptions { mode, ..PutOptions::default() };
        let put = self.runtime.block_on(self.store.put_opts(&path, PutPayload::from(bytes), options));
        match put {
            Ok(_) => Ok(true),
            Err(object_store::Error::AlreadyExists { .. } | object_store::Error::Precondition { .. }) => Ok(false),
            Err(e) => Err(self.failed(key, &e)),
        }
    }

    /// Every object below `prefix` (a key prefix ending in `/`, or `""` for the whole bucket
    /// prefix), keys relative to the bucket's prefix, in key order.
    pub fn list(&self, prefix: &str) -> Result<Vec<Listed>> {
        let below = self.path(prefix.trim_end_matches('/'))?;
        let listed: Vec<object_store::ObjectMeta> =
            self.runtime.block_on(self.store.list(Some(&below)).try_collect()).map_err(|e| self.failed(prefix, &e))?;
        let strip = match self.prefix.as_str() {
            "" => String::new(),
            p => format!("{p}/"),
        };
        let mut out: Vec<Listed> = listed
            .into_iter()
            .map(|o| Listed {
                key: o.location.as_ref().strip_prefix(strip.as_str()).unwrap_or(o.location.as_ref()).to_string(),
                size: o.size,
            })
            .collect();
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    /// Removes the object at `key` (none there is not an error).
    pub fn delete(&self, key: &str) -> Result<()> {
        let path = self.path(key)?;
        match self.runtime.block_on(self.store.delete(&path)) {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.failed(key, &e)),
        }
    }

    /// Copies every file below the local directory `dir` to the keys below `prefix` that do not
    /// hold it already (same size), the files named in `last` (a manifest, a report: what readers
    /// go by) after every other file, so that a reader never finds one before what it names; the
    /// files named in `always` are written whatever the bucket holds (a manifest rewritten in
    /// place may keep its size). Returns how many files were written.
    pub fn upload_dir(&self, dir: &Path, prefix: &str, last: &[&str], always: &[&str]) -> Result<usize> {
        let there: BTreeMap<String, u64> = self.list(prefix)?.into_iter().map(|l| (l.key, l.size)).collect();
        let mut files = Vec::new();
        walk(dir, &mut files).map_err(|e| Error { url: dir.display().to_string(), reason: e.to_string() })?;
        let named =
            |file: &Path, names: &[&str]| file.file_name().and_then(|n| n.to_str()).is_some_and(|n| names.contains(&n));
        files.sort_by_key(|f| (named(f, last), f.clone()));
        let mut written = 0;
        for file in files {
            if file.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with(caretaker_core::fs::TEMP_PREFIX))
            {
                continue; // a write in progress, or one a killed process left
            }
            let name = file.strip_prefix(dir).unwrap_or(&file).to_string_lossy().replace('\\', "/");
            let key = format!("{}{name}", with_slash(prefix));
            if !named(&file, always) && there.get(&key) == Some(&caretaker_core::fs::disk_size(&file)) {
                continue;
            }
            let bytes =
                std::fs::read(&file).map_err(|e| Error { url: file.display().to_string(), reason: e.to_string() })?;
            self.put(&key, bytes)?;
            written += 1;
        }
        Ok(written)
    }

    /// Copies every object below `prefix` into the local directory `dir` that it does not hold
    /// already (same size; the objects named `always` whatever their size); each lands whole (a
    /// temporary file renamed into place). Returns how many objects were copied.
    pub fn download_dir(&self, prefix: &str, dir: &Path, always: &[&str]) -> Result<usize> {
        let mut copied = 0;
        for listed in self.list(prefix)? {
            let name = listed.key.strip_prefix(with_slash(prefix).as_str()).unwrap_or(&listed.key).to_string();
            let path = dir.join(&name);
            let forced = path.file_name().and_then(|n| n.to_str()).is_some_and(|n| always.contains(&n));
            if !forced && path.is_file() && caretaker_core::fs::disk_size(&path) == listed.size {
                continue;
            }
            let Some(object) = self.get(&listed.key)? else { continue };
            caretaker_core::fs::write_atomic(&path, &object.bytes)
                .map_err(|e| Error { url: path.display().to_string(), reason: e.to_string() })?;
            copied += 1;
        }
        Ok(copied)
    }
}

fn with_slash(prefix: &str) -> String {
    match prefix.trim_end_matches('/') {
        "" => String::new(),
        p => format!("{p}/"),
    }
}

fn walk(dir: &Path, out: &mut Vec<std::path::PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            walk(&entry.path(), out)?;
        } else {
            out.push(entry.path());
        }
    }
    Ok(())
}
