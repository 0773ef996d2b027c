//! The example events: the bridge's service interactions over 60 days.
//!
//! Deterministic for a seed and an end instant. The label `failed` follows planted rules (a
//! `tool_proxy` call with a payload over 1 MB usually fails, so do calls after three retries, slow
//! `code_exec` calls, deep queues, hot error rates) plus 1% label noise, for about 15% positives. A sprinkle
//! of realistic defects (missing latencies, a negative latency, a replayed event id) gives the
//! quality stage something to find without failing the run. `client_version` drifts towards the
//! newer releases over the window, as it would in production.

use crate::Result;
use chrono::{DateTime, Duration, Timelike, Utc};
use polars::prelude::*;
use rand::rngs::Xoshiro256PlusPlus;
use rand::{RngExt, SeedableRng};
use rand_distr::{Beta, Distribution, LogNormal, Normal, Poisson};
use std::path::{Path, PathBuf};

pub const SERVICES: [&str; 6] = ["auth_gateway", "tool_proxy", "search_index", "model_router", "billing", "notifier"];
const SERVICE_WEIGHTS: [f64; 6] = [0.20, 0.25, 0.15, 0.20, 0.08, 0.12];
pub const TOOLS: [&str; 8] =
    ["http_fetch", "sql_query", "file_read", "code_exec", "vector_search", "email_send", "calendar", "shell"];
const TOOL_WEIGHTS: [f64; 8] = [0.22, 0.15, 0.14, 0.12, 0.15, 0.08, 0.06, 0.08];
pub const REGIONS: [&str; 4] = ["eu-west", "us-east", "us-west", "ap-south"];
const REGION_WEIGHTS: [f64; 4] = [0.3, 0.35, 0.2, 0.15];
pub const CLIENT_VERSIONS: [&str; 4] = ["1.8", "1.9", "2.0", "2.1"];

/// Days of events, ending at the end instant.
pub const DAYS: i64 = 60;

/// The numeric and categorical columns of the example, as a pipeline config lists them.
pub const NUMERIC: [&str; 8] =
    ["hour", "latency_ms", "payload_bytes", "retries", "queue_depth", "error_rate_1h", "cpu_load", "mem_used_mb"];
pub const CATEGORICAL: [&str; 4] = ["service", "tool", "region", "client_version"];

fn pick<const N: usize>(rng: &mut Xoshiro256PlusPlus, items: [&'static str; N], weights: [f64; N]) -> &'static str {
    let total: f64 = weights.iter().sum();
    let mut u = rng.random::<f64>() * total;
    for (item, w) in items.iter().zip(weights) {
        if u < w {
            return item;
        }
        u -= w;
    }
    items[N - 1]
}

/// The example events, sorted by time: `rows` rows ending at `end`.
pub fn events(rows: usize, seed: u64, end: DateTime<Utc>) -> DataFrame {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let start = end - Duration::days(DAYS);
    let span_micros = (end - start).num_microseconds().expect("60 days fit in i64 micros");

    // Times first, sorted, so ids increase with time as they do in a real log.
    let mut times: Vec<i64> = (0..rows)
        .map(|_| {
            // Busier in working hours: redraw night-time draws half of the time.
            loop {
                let t = start.timestamp_micros() + (rng.random::<f64>() * span_micros as f64) as i64;
                let hour = DateTime::from_timestamp_micros(t).map(|d| d.hour()).unwrap_or(12);
                if (7..20).contains(&hour) || rng.random::<f64>() < 0.5 {
                    break t;
                }
            }
        })
        .collect();
    times.sort_unstable();

    let latency = LogNormal::new(120f64.ln(), 0.9).expect("valid");
    let payload = LogNormal::new(20_000f64.ln(), 1.6).expect("valid");
    let error_rate = Beta::new(1.2, 18.0).expect("valid");
    let cpu = Beta::new(2.0, 3.0).expect("valid");
    let mem = Normal::new(2048.0, 400.0).expect("valid");
    let queue = Poisson::new(12.0).expect("valid");

    let mut c = Columns::with_capacity(rows);
    for (i, &t) in times.iter().enumerate() {
        let when = DateTime::from_timestamp_micros(t).expect("in range");
        let progress = i as f64 / rows.max(1) as f64; // 0 at the start of the window, 1 at the end
        let service = pick(&mut rng, SERVICES, SERVICE_WEIGHTS);
        let tool = pick(&mut rng, TOOLS, TOOL_WEIGHTS);
        let region = pick(&mut rng, REGIONS, REGION_WEIGHTS);
        // Old clients fade out, new ones take over across the window.
        let version = pick(
            &mut rng,
            CLIENT_VERSIONS,
            [0.25 * (1.0 - progress) + 0.02, 0.30 * (1.0 - progress) + 0.05, 0.30, 0.15 + 0.45 * progress],
        );
        let hour = when.hour() as i64;
        let mut latency_ms = latency.sample(&mut rng);
        if tool == "code_exec" {
            latency_ms *= 6.0;
        }
        if service == "search_index" {
            latency_ms *= 1.5;
        }
        let latency_ms = latency_ms.min(120_000.0);
        let mut payload_bytes = payload.sample(&mut rng);
        if service == "tool_proxy" {
            payload_bytes *= 8.0;
        }
        let payload_bytes = payload_bytes.min(5e8) as i64;
        let error_rate_1h: f64 = error_rate.sample(&mut rng);
        let retry_rate = 0.3 + if error_rate_1h > 0.15 { 2.0 } else { 0.0 };
        let retries = (Poisson::new(retry_rate).expect("valid").sample(&mut rng) as i64).min(8);
        let mut queue_depth = queue.sample(&mut rng) as i64;
        if rng.random::<f64>() < 0.05 {
            queue_depth += rng.random_range(60..150);
        }
        let cpu_load: f64 = cpu.sample(&mut rng);
        let mem_used_mb: f64 = mem.sample(&mut rng);
        let mem_used_mb = mem_used_mb.clamp(256.0, 8192.0).round();

        // The planted rules.
        let mut p: f64 = 0.01;
        if service == "tool_proxy" && payload_bytes > 1_000_000 {
            p = p.max(0.83);
        }
        if retries >= 3 {
            p += 0.6;
        }
        if tool == "code_exec" && latency_ms > 3_000.0 {
            p += 0.7;
        }
        if queue_depth > 80 {
            p += 0.45;
        }
        if error_rate_1h > 0.2 {
            p += 0.35;
        }
        if version == "1.8" {
            p += 0.05;
        }
        if region == "ap-south" && hour < 6 {
            p += 0.2;
        }
        let mut failed = rng.random::<f64>() < p.min(0.97);
        if rng.random::<f64>() < 0.01 {
            failed = !failed; // label noise: the rules never explain everything
        }

        c.event_id.push(format!("evt-{:08}", i + 1));
        c.ts.push(t);
        c.service.push(service);
        c.tool.push(tool);
        c.region.push(region);
        c.client_version.push(version);
        c.hour.push(hour);
        c.latency_ms.push(Some(latency_ms));
        c.payload_bytes.push(payload_bytes);
        c.retries.push(retries);
        c.queue_depth.push(queue_depth);
        c.error_rate_1h.push(error_rate_1h);
        c.cpu_load.push(cpu_load);
        c.mem_used_mb.push(mem_used_mb);
        c.failed.push(failed);
    }

    // A few realistic defects, far below the default thresholds: missing latencies (0.2%), an
    // impossible negative latency now and then (0.05%), replayed event ids (0.05%).
    for i in 0..rows {
        let u = rng.random::<f64>();
        if u < 0.002 {
            c.latency_ms[i] = None;
        } else if u < 0.0025 {
            c.latency_ms[i] = Some(-1.0);
        } else if u < 0.003 && i > 0 {
            c.event_id[i] = c.event_id[i - 1].clone();
        }
    }
    c.into_frame()
}

/// Takes the label (`failed`) off the events later than `after`: their labels have not arrived.
pub fn withhold_labels(df: &mut DataFrame, after: DateTime<Utc>) -> PolarsResult<()> {
    let after = after.timestamp_micros();
    let ts = df.column("ts")?.cast(&DataType::Int64)?;
    let failed = df.column("failed")?.bool()?.clone();
    let withheld: BooleanChunked = ts
        .i64()?
        .iter()
        .zip(failed.iter())
        .map(|(t, label)| if t.is_some_and(|t| t > after) { None } else { label })
        .collect();
    df.with_column(withheld.with_name("failed".into()).into_column())?;
    Ok(())
}

#[derive(Default)]
struct Columns {
    event_id: Vec<String>,
    ts: Vec<i64>,
    service: Vec<&'static str>,
    tool: Vec<&'static str>,
    region: Vec<&'static str>,
    client_version: Vec<&'static str>,
    hour: Vec<i64>,
    latency_ms: Vec<Option<f64>>,
    payload_bytes: Vec<i64>,
    retries: Vec<i64>,
    queue_depth: Vec<i64>,
    error_rate_1h: Vec<f64>,
    cpu_load: Vec<f64>,
    mem_used_mb: Vec<f64>,
    failed: Vec<bool>,
}

impl Columns {
    fn with_capacity(_rows: usize) -> Columns {
        Columns::default()
    }

    fn into_frame(self) -> DataFrame {
        let height = self.ts.len();
        let ts = Series::new("ts".into(), self.ts)
            .cast(&DataType::Datetime(TimeUnit::Microseconds, None))
            .expect("i64 casts to datetime");
        DataFrame::new(
            height,
            vec![
                Column::new("event_id".into(), self.event_id),
                ts.into_column(),
                Column::new("service".into(), self.service),
                Column::new("tool".into(), self.tool),
                Column::new("region".into(), self.region),
                Column::new("client_version".into(), self.client_version),
                Column::new("hour".into(), self.hour),
                Column::new("latency_ms".into(), self.latency_ms),
                Column::new("payload_bytes".into(), self.payload_bytes),
                Column::new("retries".into(), self.retries),
                Column::new("queue_depth".into(), self.queue_depth),
                Column::new("error_rate_1h".into(), self.error_rate_1h),
                Column::new("cpu_load".into(), self.cpu_load),
                Column::new("mem_used_mb".into(), self.mem_used_mb),
                Column::new("failed".into(), self.failed),
            ],
        )
        .expect("columns of one height")
    }
}

/// Writes the events as daily Hive partitions, `dir/date=YYYY-MM-DD/part-N.parquet`, the way an
/// ingestion job lands them: `files_per_day` files a day (an hourly ingest leaves up to 24).
/// Returns the files written.
pub fn write_events(df: &DataFrame, dir: &Path, files_per_day: usize) -> Result<Vec<PathBuf>> {
    let ts = df.column("ts").map_err(|e| crate::parquet_io::write_error(dir, e))?;
    let micros = crate::dataset::timestamp_micros(ts).map_err(|e| crate::parquet_io::write_error(dir, e))?;
    let days: Vec<String> = micros
        .no_null_iter()
        .map(|t| DateTime::from_timestamp_micros(t).expect("in range").format("%Y-%m-%d").to_string())
        .collect();
    let mut written = Vec::new();
    let mut start = 0;
    while start < days.len() {
        let day = &days[start];
        let end = start + days[start..].iter().take_while(|d| *d == day).count();
        // Each day in `files_per_day` consecutive slices, as an hourly ingest lands them.
        let parts = files_per_day.clamp(1, end - start);
        for i in 0..parts {
            let (from, to) = (start + (end - start) * i / parts, start + (end - start) * (i + 1) / parts);
            let mut part = df.slice(from as i64, to - from);
            let path = dir.join(format!("date={day}")).join(format!("part-{i}.parquet"));
            crate::parquet_io::write_parquet_atomic(&mut part, &path)?;
            written.push(path);
        }
        start = end;
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn end() -> DateTime<Utc> {
        "2026-11-28T00:00:00Z".parse().unwrap()
    }

    #[test]
    fn same_seed_same_events_and_a_realistic_positive_rate() {
        let a = events(5_000, 7, end());
        let b = events(5_000, 7, end());
        assert!(a.equals_missing(&b));
        let c = events(5_000, 8, end());
        assert!(!a.equals_missing(&c));
        let failed = a.column("failed").unwrap().as_materialized_series().bool().unwrap().sum().unwrap() as f64;
        let rate = failed / 5_000.0;
        assert!((0.10..=0.20).contains(&rate), "positive rate {rate}");
    }

    #[test]
    fn events_span_sixty_days_before_the_end() {
        let df = events(2_000, 1, end());
        let ts = crate::dataset::timestamp_micros(df.column("ts").unwrap()).unwrap();
        let (min, max) = (ts.min().unwrap(), ts.max().unwrap());
        assert!(max < end().timestamp_micros());
        assert!(min >= (end() - Duration::days(60)).timestamp_micros());
        assert!(max - min > Duration::days(59).num_microseconds().unwrap());
    }
}
