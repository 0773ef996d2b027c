//! Test data shared by the crate's unit tests.

use caretaker_core::config::{DiscoverySpec, PatternPolicy};
use caretaker_core::events::{CategoricalColumn, LabelledEvents, NumericColumn};

/// `svc = b AND x > 50` fails 90% of the time, everything else 5%; event `i` happens at
/// `timestamp(i)` (microseconds).
pub(crate) fn planted_events(n: usize, timestamp: impl Fn(usize) -> i64) -> LabelledEvents {
    let svc: Vec<u32> = (0..n).map(|i| (i % 4 == 0) as u32).collect();
    let x: Vec<f64> = (0..n).map(|i| ((i * 37) % 100) as f64).collect();
    let labels = (0..n)
        .map(|i| {
            let r = (i * 7919) % 100;
            if svc[i] == 1 && x[i] > 50.0 { r < 90 } else { r < 5 }
        })
        .collect();
    LabelledEvents {
        timestamps: (0..n).map(timestamp).collect(),
        labels,
        numeric: vec![NumericColumn { name: "x".into(), values: x }],
        categorical: vec![CategoricalColumn { name: "svc".into(), levels: vec!["a".into(), "b".into()], codes: svc }],
    }
}

/// The runbook's policy (90 days; usage < 5 and confidence < 0.5 deleted; confidence > 0.8
/// archived) on a store in `dir`, discovery on with `min_support`.
pub(crate) fn policy(dir: &std::path::Path, min_support: f64) -> PatternPolicy {
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
            min_support,
            min_confidence: 0.6,
            min_lift: 1.5,
            max_conditions: 3,
            max_bins: 8,
        },
    }
}
