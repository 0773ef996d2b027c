//! Datasets in object storage: `dataset.path = "s3://bucket/prefix/"` (a prefix, one object, or a
//! glob over keys), on AWS S3 or an S3-compatible server.
//!
//! The objects are listed with the `object_store` crate (the one polars reads clouds with),
//! the date partitions older than the run reads are left out, and the rest are copied into a
//! local cache under the pipeline's state directory, which the quality stage then reads as it
//! reads a local dataset (the footer checks included). An object already in the cache with the
//! same size and ETag is not fetched again, so a nightly run fetches the new partitions only.
//! Nothing is ever written to the bucket.
//!
//! Credentials and region come from `dataset.storage_options`, else the standard AWS
//! environment (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, `AWS_REGION`,
//! `AWS_ENDPOINT_URL`, ...), else the profile (`AWS_PROFILE`, else `default`) of
//! `~/.aws/credentials` and `~/.aws/config`, else the instance's role (the client is built in
//! `caretaker-objects`, which the registry, reports and archive use too).

use crate::dataset::DatasetFiles;
use crate::{Error, Result};
use caretaker_core::config::DatasetSpec;
use chrono::NaiveDate;
use futures::{StreamExt, TryStreamExt};
use object_store::aws::AmazonS3;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectMeta, ObjectStore, ObjectStoreExt};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Objects fetched at once.
const PARALLEL_FETCHES: usize = 8;
/// The cache's record of what it holds: key -> (size, ETag).
const MANIFEST: &str = "manifest.json";

/// How often the manifest is rewritten while objects are fetched, at most.
const MANIFEST_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// Where an `s3://` URL points: the bucket, the key prefix to list, and the glob pattern the
/// keys must match (a glob URL), or the one key (a URL ending in `.parquet`).
#[derive(Debug, Clone, PartialEq)]
struct Location {
    bucket: String,
    prefix: String,
    pattern: Option<glob::Pattern>,
    /// The one key of a URL naming an object (listed through its parent folder).
    object: Option<String>,
}

fn location(url: &str) -> Result<Location> {
    let invalid = |reason: &str| Error::Remote { url: url.to_string(), reason: reason.to_string() };
    let (bucket, key) =
        caretaker_objects::split_url(url).map_err(|e| Error::Remote { url: e.url, reason: e.reason })?;
    let (bucket, key) = (bucket.as_str(), key.as_str());
    let glob_at = key.find(['*', '?', '[']);
    let (prefix, pattern) = match glob_at {
        Some(at) => {
            let dir = key[..at].rfind('/').map_or("", |slash| &key[..slash]);
            let pattern = glob::Pattern::new(key).map_err(|e| invalid(&format!("bad glob: {e}")))?;
            (dir.to_string(), Some(pattern))
        }
        None => (key.trim_end_matches('/').to_string(), None),
    };
    if pattern.is_none() && key.ends_with(".parquet") {
        let parent = key.rsplit_once('/').map_or("", |(dir, _)| dir).to_string();
        return Ok(Location {
            bucket: bucket.to_string(),
            prefix: parent,
            pattern: None,
            object: Some(key.to_string()),
        });
    }
    Ok(Location { bucket: bucket.to_string(), prefix, pattern, object: None })
}

/// Whether `key` (under `prefix`) is a Parquet file of the dataset: named `*.parquet`, no path
/// component after the prefix hidden (`.`, `_`: what crashed writers and Spark leave).
fn is_data(key: &str, location: &Location) -> bool {
    if let Some(object) = &location.object {
        return key == object;
    }
    let relative = key.strip_prefix(&location.prefix).unwrap_or(key).trim_start_matches('/');
    let visible = !relative.split('/').any(|c| c.starts_with('.') || c.starts_with('_'));
    // A glob matches one path component per `*`, as a local glob does.
    let options =
        glob::MatchOptions { require_literal_separator: true, require_literal_leading_dot: true, ..Default::default() };
    let matched = location.pattern.as_ref().is_none_or(|p| p.matches_with(key, options));
    key.ends_with(".parquet") && visible && matched
}

/// The date of a key's Hive partition (`date=2026-11-28/`, any key name, a date or a date-time
/// value), if it has one.
fn partition_date(key: &str) -> Option<NaiveDate> {
    let dirs = key.rsplit_once('/')?.0;
    dirs.rsplit('/').filter_map(|c| c.split_once('=')).find_map(|(_, value)| {
        let value = value.get(..10)?;
        NaiveDate::parse_from_str(value, "%Y-%m-%d").ok()
    })
}

/// The listed objects a run reads: those in date partitions within `days` of the newest
/// partition (every object when `days` is `None` or no key has a date partition). Objects outside
/// date partitions are always read.
fn prune(objects: Vec<ObjectMeta>, days: Option<u32>, today: NaiveDate) -> (Vec<ObjectMeta>, usize) {
    let Some(days) = days else { return (objects, 0) };
    // A partition dated after tomorrow (a typo, a test) does not move the window.
    let latest = today.succ_opt().unwrap_or(today);
    let newest = objects.iter().filter_map(|o| partition_date(o.location.as_ref())).filter(|d| *d <= latest).max();
    let Some(oldest) = newest.and_then(|n| n.checked_sub_days(chrono::Days::new(days.into()))) else {
        return (objects, 0);
    };
    let before = objects.len();
    let kept: Vec<ObjectMeta> =
        objects.into_iter().filter(|o| partition_date(o.location.as_ref()).is_none_or(|date| date >= oldest)).collect();
    let pruned = before - kept.len();
    (kept, pruned)
}

/// One cached object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Cached {
    size: u64,
    e_tag: Option<String>,
    #[serde(default)]
    last_modified: Option<chrono::DateTime<chrono::Utc>>,
}

/// Lists the dataset at `spec.path` (an `s3://` URL), copies what the run reads into `cache`
/// and returns the local copies. `days`: read only the date partitions within that many days of
/// the newest one.
pub fn stage(spec: &DatasetSpec, cache: &Path, days: Option<u32>, today: NaiveDate) -> Result<DatasetFiles> {
    let url = spec.remote().expect("an s3:// dataset");
    let location = location(url)?;
    let secrets = caretaker_objects::secrets(&spec.storage_options);
    let hide = |e: Error| match e {
        Error::Remote { url, reason } => {
            Error::Remote { url, reason: caretaker_core::redact::redact_with(&reason, &secrets) }
        }
        other => other,
    };
    let store = caretaker_objects::client(url, &location.bucket, &spec.storage_options)
        .map_err(|e| Error::Remote { url: e.url, reason: e.reason })
        .map_err(hide)?;
    // One process at a time fills and prunes the cache (a run and `caretaker quality`, say): the
    // second waits, then finds the objects cached.
    std::fs::create_dir_all(cache).map_err(|e| Error::Write { path: cache.to_path_buf(), reason: e.to_string() })?;
    let lock_path = cache.join("lock");
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| Error::Write { path: lock_path.clone(), reason: e.to_string() })?;
    lock.lock().map_err(|e| Error::Write { path: lock_path.clone(), reason: e.to_string() })?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Remote { url: url.to_string(), reason: format!("cannot start the I/O runtime: {e}") })?;
    let staged = runtime.block_on(fetch(url, &store, &location, cache, days, today));
    drop(lock);
    staged.map_err(hide)
}

enum Copy {
    Fetch(object_store::Error),
    Write(caretaker_core::fs::FsError),
}

/// Streams the object `o` into `path` (a temporary file beside it, synced, then renamed into
/// place): an object is never held in memory whole, whatever its size.
async fn copy_to(store: &AmazonS3, o: &ObjectMeta, path: &Path) -> std::result::Result<(), Copy> {
    use std::io::Write;
    let fs_error = |what: &'static str, at: &Path| {
        let at = at.to_path_buf();
        move |e: std::io::Error| Copy::Write(caretaker_core::fs::FsError::new(what, at.clone(), e))
    };
    let dir = caretaker_core::fs::parent_dir(path);
    std::fs::create_dir_all(dir).map_err(fs_error("create directory", dir))?;
    let mut temp = tempfile::Builder::new()
        .prefix(caretaker_core::fs::TEMP_PREFIX)
        .tempfile_in(dir)
        .map_err(fs_error("create a temporary file in", dir))?;
    let mut chunks = store.get(&o.location).await.map_err(Copy::Fetch)?.into_stream();
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk.map_err(Copy::Fetch)?;
        temp.as_file_mut().write_all(&chunk).map_err(fs_error("write", path))?;
    }
    temp.as_file().sync_all().map_err(fs_error("sync", path))?;
    temp.persist(path).map_err(|e| fs_error("replace", path)(e.error))?;
    caretaker_core::fs::sync_dir(dir).map_err(Copy::Write)
}

/// Removes the temporary files of copies a killed fetch left, in `dir` and every folder below.
fn sweep_temp_files(dir: &Path) {
    caretaker_core::fs::sweep_temp_files(dir, std::time::Duration::ZERO);
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            sweep_temp_files(&entry.path());
        }
    }
}

async fn fetch(
    url: &str,
    store: &AmazonS3,
    location: &Location,
    cache: &Path,
    days: Option<u32>,
    today: NaiveDate,
) -> Result<DatasetFiles> {
    let failed =
        |e: object_store::Error| Error::Remote { url: url.to_string(), reason: caretaker_objects::describe(&e) };
    let prefix = match location.prefix.as_str() {
        "" => None,
        p => Some(ObjectPath::parse(p).map_err(|e| Error::Remote { url: url.to_string(), reason: e.to_string() })?),
    };
    let listed: Vec<ObjectMeta> = store.list(prefix.as_ref()).try_collect().await.map_err(failed)?;
    let listed: Vec<ObjectMeta> = listed.into_iter().filter(|o| is_data(o.location.as_ref(), location)).collect();
    if listed.is_empty() {
        return Err(Error::NoFiles { path: PathBuf::from(url) });
    }
    let (mut objects, pruned) = prune(listed, days, today);
    if pruned > 0 {
        tracing::info!(dataset = url, pruned, "left out the date partitions older than the run reads");
    }
    objects.sort_by(|a, b| a.location.cmp(&b.location));

    let files_dir = cache.join("files");
    // What a fetch killed mid-write left (the caller holds the cache's lock).
    sweep_temp_files(&files_dir);
    let manifest_path = cache.join(MANIFEST);
    let manifest: BTreeMap<String, Cached> =
        std::fs::read(&manifest_path).ok().and_then(|bytes| serde_json::from_slice(&bytes).ok()).unwrap_or_default();
    let local_of = |key: &str| files_dir.join(key);
    let wanted: BTreeMap<String, Cached> = objects
        .iter()
        .map(|o| {
            let cached = Cached { size: o.size, e_tag: o.e_tag.clone(), last_modified: Some(o.last_modified) };
            (o.location.to_string(), cached)
        })
        .collect();
    // Fetch what the cache does not hold as listed, PARALLEL_FETCHES at a time.
    let stale: Vec<&ObjectMeta> = objects
        .iter()
        .filter(|o| {
            let key = o.location.to_string();
            manifest.get(&key) != wanted.get(&key) || caretaker_core::fs::disk_size(&local_of(&key)) != o.size
        })
        .collect();
    let fetched = stale.len();
    // Forget what the dataset no longer holds (or the run no longer reads) before anything is
    // fetched: a manifest written below never loses a key whose file is still there.
    for key in manifest.keys().filter(|k| !wanted.contains_key(*k)) {
        let _ = std::fs::remove_file(local_of(key));
    }
    // The manifest names what the cache holds as listed: the fresh entries, then each object as
    // its copy lands, so that a fetch that fails part way keeps what it fetched for the next run.
    let mut held: BTreeMap<String, Cached> =
        manifest.iter().filter(|(k, c)| wanted.get(*k) == Some(*c)).map(|(k, c)| (k.clone(), c.clone())).collect();
    for o in &stale {
        held.remove(o.location.as_ref());
    }
    let mut copies = futures::stream::iter(stale)
        .map(|o| async {
            let key = o.location.to_string();
            copy_to(store, o, &local_of(&key)).await.map_err(|e| match e {
                Copy::Fetch(e) => failed(e),
                Copy::Write(e) => Error::Fs(e),
            })?;
            Ok::<String, Error>(key)
        })
        .buffer_unordered(PARALLEL_FETCHES);
    // (Rewritten at most every few seconds: a first fetch of many objects does not rewrite it
    // once per object.)
    let write_held = |held: &BTreeMap<String, Cached>| {
        let bytes = serde_json::to_vec_pretty(held).expect("a manifest serialises");
        caretaker_core::fs::write_atomic(&manifest_path, &bytes).map_err(Error::Fs)
    };
    let mut written = std::time::Instant::now();
    while let Some(copied) = copies.next().await {
        let key = match copied {
            Ok(key) => key,
            Err(e) => {
                // What landed before the failure stays recorded for the next run.
                drop(copies);
                write_held(&held)?;
                return Err(e);
            }
        };
        let cached = wanted[&key].clone();
        held.insert(key, cached);
        if written.elapsed() >= MANIFEST_EVERY {
            write_held(&held)?;
            written = std::time::Instant::now();
        }
    }
    drop(copies);
    // Every object fetched: the cache holds what was listed.
    let bytes = serde_json::to_vec_pretty(&wanted).expect("a manifest serialises");
    caretaker_core::fs::write_atomic(&manifest_path, &bytes).map_err(Error::Fs)?;
    tracing::info!(dataset = url, "{} objects in the local cache, {fetched} fetched now", objects.len());

    let hive = objects.iter().any(|o| {
        let key = o.location.as_ref();
        let relative = key.strip_prefix(location.prefix.as_str()).unwrap_or(key);
        relative.rsplit_once('/').is_some_and(|(dirs, _)| dirs.contains('='))
    });
    Ok(DatasetFiles {
        path: PathBuf::from(url),
        files: objects.iter().map(|o| local_of(o.location.as_ref())).collect(),
        bytes: objects.iter().map(|o| o.size).sum(),
        hive,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_killed_fetch_leaves_no_temporary_file_in_any_folder_of_the_cache() {
        let dir = tempfile::tempdir().unwrap();
        let nested = dir.path().join("files/events/date=2026-11-27");
        std::fs::create_dir_all(&nested).unwrap();
        for d in [dir.path().join("files"), nested.clone()] {
            std::fs::write(d.join(format!("{}abc", caretaker_core::fs::TEMP_PREFIX)), b"half").unwrap();
        }
        std::fs::write(nested.join("part-0.parquet"), b"kept").unwrap();
        sweep_temp_files(&dir.path().join("files"));
        let mut left = Vec::new();
        for entry in walkdir(&dir.path().join("files")) {
            left.push(entry.strip_prefix(dir.path()).unwrap().display().to_string());
        }
        assert_eq!(left, ["files/events/date=2026-11-27/part-0.parquet"]);
    }

    fn walkdir(dir: &Path) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            if entry.file_type().unwrap().is_dir() {
                out.extend(walkdir(&entry.path()));
            } else {
                out.push(entry.path());
            }
        }
        out
    }

    #[test]
    fn a_url_is_a_bucket_a_prefix_an_object_or_a_glob() {
        let l = location("s3://data/events/").unwrap();
        assert_eq!((l.bucket.as_str(), l.prefix.as_str(), l.object.as_deref()), ("data", "events", None));
        let l = location("s3://data").unwrap();
        assert_eq!((l.bucket.as_str(), l.prefix.as_str()), ("data", ""));
        let l = location("s3://data/events/all.parquet").unwrap();
        assert_eq!((l.prefix.as_str(), l.object.as_deref()), ("events", Some("events/all.parquet")));
        assert!(is_data("events/all.parquet", &l) && !is_data("events/all.parquet.bak/x.parquet", &l));
        let l = location("s3://data/events/date=2026-11-*/*.parquet").unwrap();
        assert_eq!(l.prefix, "events");
        assert!(is_data("events/date=2026-11-02/part-0.parquet", &l));
        assert!(!is_data("events/date=2026-10-31/part-0.parquet", &l));
        // One component per `*`, hidden names left out, as a local glob.
        let l = location("s3://data/events/*.parquet").unwrap();
        assert!(is_data("events/all.parquet", &l));
        assert!(!is_data("events/date=2026-11-02/part-0.parquet", &l));
        assert!(!is_data("events/.part-0.parquet", &l));
        assert!(location("s3:///events").is_err());
    }

    #[test]
    fn hidden_and_foreign_keys_are_not_data() {
        let l = location("s3://b/events/").unwrap();
        assert!(is_data("events/date=2026-11-02/part-0.parquet", &l));
        assert!(!is_data("events/date=2026-11-02/.part-0.parquet.tmp", &l));
        assert!(!is_data("events/_temporary/part-0.parquet", &l));
        assert!(!is_data("events/date=2026-11-02/_SUCCESS", &l));
        assert!(!is_data("events/README.md", &l));
    }

    fn meta(key: &str) -> ObjectMeta {
        ObjectMeta {
            location: ObjectPath::from(key),
            last_modified: chrono::Utc::now(),
            size: 1,
            e_tag: None,
            version: None,
        }
    }

    #[test]
    fn only_the_date_partitions_within_the_days_of_the_newest_are_read() {
        let objects: Vec<ObjectMeta> = [
            "e/date=2026-10-01/a.parquet",
            "e/date=2026-11-27/a.parquet",
            "e/date=2026-11-28/a.parquet",
            "e/other/b.parquet",
        ]
        .into_iter()
        .map(meta)
        .collect();
        let today = NaiveDate::from_ymd_opt(2026, 11, 28).unwrap();
        let (kept, pruned) = prune(objects.clone(), Some(30), today);
        let keys: Vec<&str> = kept.iter().map(|o| o.location.as_ref()).collect();
        assert_eq!(keys, ["e/date=2026-11-27/a.parquet", "e/date=2026-11-28/a.parquet", "e/other/b.parquet"]);
        assert_eq!(pruned, 1);
        assert_eq!(prune(objects.clone(), None, today).0.len(), 4);
        // A stray partition in the future does not move the window.
        let mut stray = objects;
        stray.push(meta("e/date=2099-01-01/a.parquet"));
        assert_eq!(prune(stray, Some(30), today).1, 1);
        // The innermost date folder dates a key.
        assert_eq!(
            partition_date("e/cohort=2015-01-01/date=2026-11-28/a.parquet"),
            NaiveDate::from_ymd_opt(2026, 11, 28)
        );
        assert_eq!(partition_date("e/ts=2026-11-28T00:00:00/a.parquet"), NaiveDate::from_ymd_opt(2026, 11, 28));
        assert_eq!(partition_date("e/region=eu/a.parquet"), None);
    }
}
