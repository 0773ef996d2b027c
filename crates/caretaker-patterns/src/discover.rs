//! Discovery in the nightly run: mine rules from the training window, upsert them into the store,
//! count every stored pattern's uses on the window's events, and measure the mined rules'
//! precision on the holdout.
//!
//! - A mined rule whose id (the hash of its conditions and label) is new is created with
//!   `created_at = last_seen_at = now`; one the store holds gets fresh support, confidence, lift
//!   and `last_seen_at`; one the archive holds is left there and counted (`patterns restore`
//!   brings it back), so that store and archive never hold a pattern twice.
//! - A use is an event the pattern's conditions match. Only events newer than the pattern's
//!   `last_used_at` (and not after now) are counted, so the overlapping windows of successive
//!   nights do not count an event twice; `last_used_at` becomes the newest matching event's time.
//!   Events that arrive late, older than a pattern's last use, are not counted.

use crate::archive::{self, Manifest};
use crate::matching::{EventMatcher, RowSet};
use crate::mining::{self, MinedRule};
use crate::pattern::{Pattern, frame, pattern_id};
use crate::recovery::{self, polars_error};
use crate::{Result, store};
use caretaker_core::config::PatternPolicy;
use caretaker_core::crash_point;
use caretaker_core::events::LabelledEvents;
use caretaker_core::report::PatternDiscoveryReport;
use chrono::{DateTime, Utc};
use polars::prelude::*;
use std::collections::{HashMap, HashSet};

/// Holdout matches of mined rules, and how many predicted the event's label.
pub fn holdout_precision(rules: &[MinedRule], holdout: &LabelledEvents) -> (u64, Option<f64>) {
    let mut matcher = EventMatcher::new(holdout);
    let positive = RowSet::from_fn(holdout.len(), |i| holdout.labels[i]);
    let negative = positive.not();
    let (mut matches, mut right) = (0u64, 0u64);
    for rule in rules {
        if let Ok(rows) = matcher.conditions(&rule.conditions) {
            matches += rows.count();
            right += rows.and_count(if rule.predicts { &positive } else { &negative });
        }
    }
    (matches, (matches > 0).then(|| right as f64 / matches as f64))
}

/// Events in time order, for counting uses after a watermark. Events after `now` are left out:
/// a wrong clock upstream must not push a pattern's `last_used_at` into the future.
struct Timeline<'a> {
    events: std::borrow::Cow<'a, LabelledEvents>,
}

impl<'a> Timeline<'a> {
    /// The events up to `now`, in time order: the events themselves when they already are (data
    /// stored in time order), else a sorted copy.
    fn new(events: &'a LabelledEvents, now: DateTime<Utc>) -> Timeline<'a> {
        let now = now.timestamp_micros();
        let ts = &events.timestamps;
        if ts.windows(2).all(|w| w[0] <= w[1]) && ts.last().is_none_or(|&t| t <= now) {
            return Timeline { events: std::borrow::Cow::Borrowed(events) };
        }
        let mut order: Vec<usize> = (0..events.len()).collect();
        order.sort_by_key(|&i| ts[i]);
        order.retain(|&i| ts[i] <= now);
        Timeline { events: std::borrow::Cow::Owned(events.take(&order)) }
    }

    /// First row newer than `micros`.
    fn after(&self, micros: Option<i64>) -> usize {
        micros.map_or(0, |m| self.events.timestamps.partition_point(|t| *t <= m))
    }
}

/// Runs discovery for the window `train` + `holdout` and writes the store once.
pub fn run(
    policy: &PatternPolicy,
    train: &LabelledEvents,
    holdout: &LabelledEvents,
    now: DateTime<Utc>,
) -> Result<PatternDiscoveryReport> {
    let spec = &policy.discovery;
    let mined = mining::mine(train, spec);
    let (holdout_matches, holdout_precision) = holdout_precision(&mined.rules, holdout);
    let mut report = PatternDiscoveryReport {
        train_rows: train.len() as u64,
        mined: mined.rules.len() as u64,
        holdout_matches,
        holdout_precision,
        cut_points: mined.cut_points.clone(),
        ..PatternDiscoveryReport::default()
    };

    let lock = recovery::lock(policy)?;
    recovery::reconcile(policy, &lock)?;
    let mut df = store::read_canonical(&policy.store)?;
    let err = polars_error(&policy.store);
    let mut archived: HashSet<String> = HashSet::new();
    for e in &Manifest::load(&policy.archive)?.files {
        archived.extend(archive::file_ids(&archive::absolute(&policy.archive, &e.path))?);
    }

    // Upsert. The store's row of each mined rule: one pass over the store's ids, keeping only those
    // the rules name (a store can hold a million patterns, a night mines a few thousand rules).
    let mined_ids: HashSet<String> = mined.rules.iter().map(|r| pattern_id(&r.conditions, r.predicts)).collect();
    let row_of: HashMap<String, usize> = df
        .column("pattern_id")
        .and_then(|c| c.str().cloned())
        .map_err(&err)?
        .iter()
        .enumerate()
        .filter_map(|(row, id)| id.filter(|id| mined_ids.contains(*id)).map(|id| (id.to_string(), row)))
        .collect();
    let floats =
        |df: &DataFrame, name: &str| -> PolarsResult<Vec<Option<f64>>> { Ok(df.column(name)?.f64()?.iter().collect()) };
    let times = |df: &DataFrame, name: &str| -> PolarsResult<Vec<Option<i64>>> {
        Ok(df.column(name)?.cast(&DataType::Int64)?.i64()?.iter().collect())
    };
    let mut support = floats(&df, "support").map_err(&err)?;
    let mut confidence = floats(&df, "confidence").map_err(&err)?;
    let mut lift = floats(&df, "lift").map_err(&err)?;
    let mut last_seen = times(&df, "last_seen_at").map_err(&err)?;
    let mut new_patterns = Vec::new();
    let mut seen_now = HashSet::new();
    for rule in &mined.rules {
        let id = pattern_id(&rule.conditions, rule.predicts);
        if !seen_now.insert(id.clone()) {
            continue;
        }
        if let Some(&row) = row_of.get(id.as_str()) {
            support[row] = Some(rule.support);
            confidence[row] = Some(rule.confidence);
            lift[row] = Some(rule.lift);
            last_seen[row] = Some(now.timestamp_micros());
            report.updated += 1;
        } else if archived.contains(&id) {
            report.already_archived += 1;
        } else {
            new_patterns.push(Pattern {
                conditions: rule.conditions.clone(),
                predicts: rule.predicts,
                support: rule.support,
                confidence: rule.confidence,
                lift: rule.lift,
                created_at: now,
                last_seen_at: now,
                last_used_at: None,
                usage_count: 0,
            });
            report.discovered += 1;
        }
    }
    let set = |df: &mut DataFrame, column: Column| df.with_column(column).map(|_| ());
    let datetime = |name: &str, v: Vec<Option<i64>>| {
        Series::new(name.into(), v).cast(&DataType::Datetime(TimeUnit::Microseconds, None)).map(|s| s.into_column())
    };
    set(&mut df, Column::new("support".into(), support)).map_err(&err)?;
    set(&mut df, Column::new("confidence".into(), confidence)).map_err(&err)?;
    set(&mut df, Column::new("lift".into(), lift)).map_err(&err)?;
    set(&mut df, datetime("last_seen_at", last_seen).map_err(&err)?).map_err(&err)?;
    if !new_patterns.is_empty() {
        let new_rows = frame(&new_patterns).map_err(&err)?;
        df.vstack_mut(&new_rows).map_err(&err)?;
    }

    // Count uses on the window's events, newer than each pattern's last use and not after now.
    let conditions = store::ConditionColumns::new(&df).map_err(&err)?;
    let mut usage: Vec<u64> = df
        .column("usage_count")
        .and_then(|c| c.u64().map(|c| c.iter().map(|v| v.unwrap_or(0)).collect()))
        .map_err(&err)?;
    let mut last_used = times(&df, "last_used_at").map_err(&err)?;
    let timelines = [Timeline::new(train, now), Timeline::new(holdout, now)];
    let mut matchers: Vec<EventMatcher> = timelines.iter().map(|t| EventMatcher::new(&t.events)).collect();
    for row in 0..conditions.len() {
        let conds = &conditions.row(row);
        let mut uses = 0;
        let mut newest = last_used[row];
        let mut unmatchable = false;
        for (timeline, matcher) in timelines.iter().zip(matchers.iter_mut()) {
            match matcher.conditions(conds) {
                Ok(rows) => {
                    let count = rows.count_from(timeline.after(last_used[row]));
                    if count > 0 {
                        uses += count;
                        let t = timeline.events.timestamps[rows.last().expect("a match")];
                        newest = Some(newest.map_or(t, |n| n.max(t)));
                    }
                }
                Err(_) => unmatchable = true,
            }
        }
        if unmatchable {
            report.unmatchable += 1;
            continue;
        }
        if uses > 0 {
            usage[row] += uses;
            last_used[row] = newest;
            report.matched += 1;
            report.uses_counted += uses;
        }
    }
    set(&mut df, Column::new("usage_count".into(), usage)).map_err(&err)?;
    set(&mut df, datetime("last_used_at", last_used).map_err(&err)?).map_err(&err)?;
    store::write(&mut df, &policy.store)?;
    crash_point("patterns:discovery_store_written");
    drop(lock);
    tracing::info!(
        mined = report.mined,
        discovered = report.discovered,
        updated = report.updated,
        matched = report.matched,
        "pattern discovery"
    );
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    /// The planted rule, one event an hour starting at `start`.
    fn events(n: usize, start: DateTime<Utc>) -> LabelledEvents {
        crate::fixtures::planted_events(n, |i| (start + Duration::hours(i as i64)).timestamp_micros())
    }

    fn policy(dir: &std::path::Path) -> PatternPolicy {
        crate::fixtures::policy(dir, 0.01)
    }

    fn planted_rule_row(p: &PatternPolicy) -> (String, u64, Option<i64>) {
        let df = store::read(&p.store).unwrap();
        let ids = store::ids(&df).unwrap();
        let conditions = store::conditions(&df).unwrap();
        let row = conditions
            .iter()
            .position(|c| {
                let mut t: Vec<String> = c.iter().map(|c| format!("{} {} {}", c.feature, c.op, c.value)).collect();
                t.sort();
                t == ["svc = b", "x > 50"]
            })
            .expect("the planted rule is in the store");
        let usage = df.column("usage_count").unwrap().u64().unwrap().get(row).unwrap();
        let last = df.column("last_used_at").unwrap().cast(&DataType::Int64).unwrap().i64().unwrap().get(row);
        (ids[row].clone(), usage, last)
    }

    #[test]
    fn discovery_creates_then_updates_and_counts_each_event_once() {
        let dir = tempfile::tempdir().unwrap();
        let p = policy(dir.path());
        let start: DateTime<Utc> = "2026-09-01T00:00:00Z".parse().unwrap();
        let now = start + Duration::hours(5000);
        let train = events(4000, start).take(&(0..3000).collect::<Vec<_>>());
        let holdout = events(4000, start).take(&(3000..4000).collect::<Vec<_>>());
        let first = run(&p, &train, &holdout, now).unwrap();
        assert!(first.mined > 0 && first.discovered == first.mined && first.updated == 0, "{first:?}");
        let (id, usage, last) = planted_rule_row(&p);
        // Every event of the window that matches, counted once.
        let all = events(4000, start);
        let matching: Vec<usize> =
            (0..4000).filter(|&i| all.categorical[0].codes[i] == 1 && all.numeric[0].values[i] > 50.0).collect();
        assert_eq!(usage, matching.len() as u64);
        assert_eq!(last, Some(all.timestamps[*matching.last().unwrap()]));
        assert!(first.holdout_precision.unwrap() > 0.5, "{first:?}");

        // The same window again: same ids, nothing created, nothing counted twice.
        let again = run(&p, &train, &holdout, now + Duration::days(1)).unwrap();
        assert_eq!((again.discovered, again.updated, again.uses_counted), (0, first.mined, 0), "{again:?}");
        assert_eq!(planted_rule_row(&p), (id.clone(), usage, last));
        assert_eq!(store::read(&p.store).unwrap().height() as u64, first.mined);

        // A window that moved on by 500 events: only the new ones count; events after now do not.
        let moved = events(4500, start);
        let later_now = start + Duration::hours(4400) - Duration::minutes(30);
        let train = moved.take(&(500..3500).collect::<Vec<_>>());
        let holdout = moved.take(&(3500..4500).collect::<Vec<_>>());
        run(&p, &train, &holdout, later_now).unwrap();
        let new_matches =
            (4000..4400).filter(|&i| moved.categorical[0].codes[i] == 1 && moved.numeric[0].values[i] > 50.0).count();
        let (_, usage2, last2) = planted_rule_row(&p);
        assert_eq!(usage2, usage + new_matches as u64);
        assert!(last2.unwrap() <= later_now.timestamp_micros());
    }

    #[test]
    fn a_rediscovered_pattern_that_is_archived_stays_in_the_archive_only() {
        let dir = tempfile::tempdir().unwrap();
        let p = policy(dir.path());
        let start: DateTime<Utc> = "2026-01-01T00:00:00Z".parse().unwrap();
        let all = events(4000, start);
        let (train, holdout) = (all.take(&(0..3000).collect::<Vec<_>>()), all.take(&(3000..4000).collect::<Vec<_>>()));
        let now = start + Duration::hours(4000);
        run(&p, &train, &holdout, now).unwrap();
        let (id, _, _) = planted_rule_row(&p);
        // 100 days on, the confident rule is old: cleanup archives it.
        let later = now + Duration::days(100);
        let cleaned = crate::cleanup::run(&p, later, "r1").unwrap();
        assert!(cleaned.archived > 0, "{cleaned:?}");
        assert!(!store::ids(&store::read(&p.store).unwrap()).unwrap().contains(&id));
        let again = run(&p, &train, &holdout, later).unwrap();
        assert!(again.already_archived > 0 && again.discovered == 0, "{again:?}");
        assert!(!store::ids(&store::read(&p.store).unwrap()).unwrap().contains(&id));
        assert!(crate::verify::verify(&p, later).unwrap().is_clean());
    }
}
