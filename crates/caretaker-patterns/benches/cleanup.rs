//! Cleanup of a large pattern store beside a bare polars filter-and-write of the same store, in
//! the same run.
//!
//! ```text
//! cargo bench -p caretaker-patterns --bench cleanup -- --patterns 10000000 --repeats 3
//! ```
//!
//! The store (`--patterns`, default 10M, cached under `--dir`, default the system temp dir) is
//! made from example patterns with unique ids and spread ages, usages and confidences. Each
//! repeat copies it fresh and runs, each in its own child process so that peak memory (VmHWM) is
//! its own, alternately:
//!
//! - `bare`: read the store, filter with the same policy, write the archive rows to one file and
//!   the kept rows to a temporary file renamed over the store (zstd, as the Python peer does);
//! - `cleanup`: `caretaker_patterns::cleanup::run`, with its lock, recovery check, blake3,
//!   manifest and fsyncs.
//!
//! It prints each run and the median ratio cleanup / bare. Not a test: nothing is asserted.

use caretaker_core::config::{DiscoverySpec, PatternPolicy};
use caretaker_patterns::{example, store};
use chrono::{DateTime, Duration, Utc};
use polars::prelude::*;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

fn now() -> DateTime<Utc> {
    "2026-11-28T02:00:00Z".parse().expect("a time")
}

fn policy(dir: &Path) -> PatternPolicy {
    PatternPolicy {
        store: dir.join("store.parquet"),
        archive: dir.join("archive"),
        archive_remote: None,
        retention_days: 90,
        delete_below_usage: 5,
        delete_below_confidence: 0.5,
        archive_above_confidence: 0.8,
        discovery: DiscoverySpec {
            enabled: true,
            min_support: 0.005,
            min_confidence: 0.6,
            min_lift: 1.5,
            max_conditions: 3,
            max_bins: 8,
        },
    }
}

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned()
}

/// Peak resident memory of this process, in MiB (Linux VmHWM).
fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// A store of `n` patterns: conditions drawn from 4,096 example patterns, unique ids, ages over
/// 240 days, a third rarely used, confidences between 0.2 and 0.99.
fn make_store(path: &Path, n: usize) -> PolarsResult<()> {
    let seeds = example::patterns(4096, 7, now());
    let base = example::frame(&seeds)?;
    let pick = IdxCa::from_vec("pick".into(), (0..n).map(|i| (i % base.height()) as IdxSize).collect());
    let mut df = base.select(["conditions", "predicts"])?.take(&pick)?;
    // A cheap deterministic generator (splitmix64): the bench needs spread, not quality.
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    };
    let end = now().timestamp_micros();
    let span = Duration::days(240).num_microseconds().expect("fits");
    let mut created = Vec::with_capacity(n);
    let mut confidence = Vec::with_capacity(n);
    let mut usage = Vec::with_capacity(n);
    let mut support = Vec::with_capacity(n);
    for _ in 0..n {
        created.push(end - (next() * span as f64) as i64);
        confidence.push(0.2 + 0.79 * next());
        usage.push(if next() < 0.35 { (next() * 5.0) as u64 } else { 5 + (next() * 495.0) as u64 });
        support.push(0.001 + 0.05 * next());
    }
    let time = |name: &str, v: Vec<i64>| -> PolarsResult<Column> {
        Ok(Series::new(name.into(), v).cast(&DataType::Datetime(TimeUnit::Microseconds, None))?.into_column())
    };
    let lift: Vec<f64> = confidence.iter().map(|c| c / 0.15).collect();
    df.insert_column(
        0,
        Column::new(
            "pattern_id".into(),
            (0..n).map(|i| format!("{:016x}", (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15))).collect::<Vec<_>>(),
        ),
    )?;
    df.with_column(Column::new("support".into(), support))?;
    df.with_column(Column::new("confidence".into(), confidence))?;
    df.with_column(Column::new("lift".into(), lift))?;
    df.with_column(time("created_at", created.clone())?)?;
    df.with_column(time("last_seen_at", created.clone())?)?;
    df.with_column(time("last_used_at", created)?)?;
    df.with_column(Column::new("usage_count".into(), usage))?;
    df.with_column(Column::new("status".into(), vec!["active"; n]))?;
    let mut df = df.select(store::schema().iter_names().cloned())?;
    store::write(&mut df, path).map_err(|e| polars_err!(ComputeError: "{e}"))?;
    Ok(())
}

/// The bare version: what a data scientist would write with polars, and what the peer does.
fn bare(policy: &PatternPolicy) -> PolarsResult<(u64, u64)> {
    let df = ParquetReader::new(std::fs::File::open(&policy.store)?).finish()?;
    let cutoff = (now() - Duration::days(policy.retention_days as i64)).timestamp_micros();
    let old = col("created_at").cast(DataType::Int64).lt(lit(cutoff));
    let delete = old
        .clone()
        .and(col("usage_count").cast(DataType::Int64).lt(lit(policy.delete_below_usage as i64)))
        .and(col("confidence").lt(lit(policy.delete_below_confidence)));
    let archive = old.and(col("confidence").gt(lit(policy.archive_above_confidence))).and(delete.clone().not());
    let mut archived = df.clone().lazy().filter(archive.clone()).collect()?;
    let mut kept = df.lazy().filter(delete.or(archive).not()).collect()?;
    std::fs::create_dir_all(&policy.archive)?;
    let write = |df: &mut DataFrame, path: &Path| -> PolarsResult<()> {
        ParquetWriter::new(std::fs::File::create(path)?).with_compression(ParquetCompression::Zstd(None)).finish(df)?;
        Ok(())
    };
    write(&mut archived, &policy.archive.join("part-0.parquet"))?;
    let tmp = policy.store.with_extension("parquet.tmp");
    write(&mut kept, &tmp)?;
    std::fs::rename(&tmp, &policy.store)?;
    Ok((archived.height() as u64, kept.height() as u64))
}

fn child(args: &[String]) {
    let which = arg(args, "--child").expect("--child");
    let dir = PathBuf::from(arg(args, "--work").expect("--work"));
    let policy = policy(&dir);
    let started = Instant::now();
    let (archived, kept) = match which.as_str() {
        "bare" => bare(&policy).expect("bare filter-and-write"),
        _ => {
            let r = caretaker_patterns::cleanup::run(&policy, now(), "bench").expect("cleanup");
            (r.archived, r.kept)
        }
    };
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "{}",
        serde_json::json!({"seconds": seconds, "peak_rss_mib": peak_rss_mib(), "archived": archived, "kept": kept})
    );
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--child") {
        return child(&args);
    }
    let n: usize = arg(&args, "--patterns").map_or(10_000_000, |s| s.parse().expect("--patterns N"));
    let repeats: usize = arg(&args, "--repeats").map_or(3, |s| s.parse().expect("--repeats N"));
    let dir = arg(&args, "--dir").map_or_else(|| std::env::temp_dir().join("caretaker-patterns-bench"), PathBuf::from);
    std::fs::create_dir_all(&dir).expect("bench dir");
    let source = dir.join(format!("store-{n}.parquet"));
    if !source.exists() {
        let started = Instant::now();
        make_store(&source, n).expect("make the store");
        eprintln!("made {} ({n} patterns) in {:.1} s", source.display(), started.elapsed().as_secs_f64());
    }
    let store_bytes = std::fs::metadata(&source).expect("store").len();
    println!("store: {n} patterns, {store_bytes} bytes ({})", source.display());
    let exe = std::env::current_exe().expect("own path");
    let mut times: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
    let mut peaks: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
    for r in 0..repeats {
        for (k, which) in ["bare", "cleanup"].iter().enumerate() {
            let work = dir.join("work");
            let _ = std::fs::remove_dir_all(&work);
            std::fs::create_dir_all(&work).expect("work dir");
            std::fs::copy(&source, work.join("store.parquet")).expect("copy the store");
            let out = Command::new(&exe)
                .args(["--child", which, "--work", work.to_str().expect("utf-8 path")])
                .output()
                .expect("run the child");
            assert!(out.status.success(), "{which} failed: {}", String::from_utf8_lossy(&out.stderr));
            let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("child JSON");
            let seconds = v["seconds"].as_f64().expect("seconds");
            let peak = v["peak_rss_mib"].as_f64().unwrap_or(f64::NAN);
            println!(
                "repeat {r} {which:<8} {seconds:>8.2} s  peak {peak:>8.0} MiB  archived {} kept {}",
                v["archived"], v["kept"]
            );
            times[k].push(seconds);
            peaks[k].push(peak);
        }
    }
    let _ = std::fs::remove_dir_all(dir.join("work"));
    let (bare_s, cleanup_s) = (median(times[0].clone()), median(times[1].clone()));
    println!(
        "median: bare {bare_s:.2} s, cleanup {cleanup_s:.2} s, ratio cleanup/bare {:.2} (goal <= 2); peak memory bare {:.0} MiB, cleanup {:.0} MiB",
        cleanup_s / bare_s,
        median(peaks[0].clone()),
        median(peaks[1].clone())
    );
}
