//! `caretaker schedule preview`: every firing of the next N days, with a summary and warnings
//! (tasks overlapping on a component, firings moved or doubled by daylight saving).

use crate::catalog::{Catalog, TaskSpec};
use crate::schedule::DstNote;
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// At most this many firings of one task are listed (an every-second task would list 86400 a day).
pub const MAX_FIRINGS_PER_TASK: usize = 10_000;

#[derive(Debug, Clone, Serialize)]
pub struct Preview {
    pub catalog: String,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub days: u32,
    pub events: Vec<PreviewEvent>,
    pub summary: PreviewSummary,
    pub warnings: Vec<Warning>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PreviewEvent {
    pub task_id: String,
    pub task_name: String,
    pub utc: DateTime<Utc>,
    /// Local time with its offset (RFC 3339).
    pub local: String,
    pub time_zone: String,
    pub estimated_minutes: f64,
    pub priority: String,
    #[serde(rename = "type")]
    pub maintenance_type: String,
    pub components: Vec<String>,
    pub dst: Option<DstNote>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct PreviewSummary {
    pub events: usize,
    pub total_minutes: f64,
    pub total_hours: f64,
    pub average_minutes: f64,
    pub by_priority: BTreeMap<String, usize>,
    pub by_type: BTreeMap<String, usize>,
    pub by_task: BTreeMap<String, usize>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Warning {
    /// `overlap`, `self_overlap`, `dst` or `truncated`.
    pub kind: String,
    pub tasks: Vec<String>,
    pub component: Option<String>,
    /// The first moment it concerns.
    pub at: DateTime<Utc>,
    pub count: usize,
    pub message: String,
}

/// Builds the preview of `[from, from + days)`. Disabled and unscheduled tasks are left out.
pub fn preview(catalog: &Catalog, from: DateTime<Utc>, days: u32) -> Preview {
    let to = from + chrono::Duration::days(i64::from(days));
    let mut events = Vec::new();
    let mut warnings = Vec::new();
    for spec in catalog.tasks.iter().filter(|t| t.enabled) {
        let Some(schedule) = &spec.schedule else { continue };
        let firings = schedule.firings(from, to, MAX_FIRINGS_PER_TASK + 1);
        if firings.len() > MAX_FIRINGS_PER_TASK {
            warnings.push(Warning {
                kind: "truncated".into(),
                tasks: vec![spec.id.clone()],
                component: None,
                at: firings[MAX_FIRINGS_PER_TASK].at,
                count: MAX_FIRINGS_PER_TASK,
                message: format!(
                    "{} fires more than {MAX_FIRINGS_PER_TASK} times in the window; only the first {MAX_FIRINGS_PER_TASK} are listed",
                    spec.id
                ),
            });
        }
        for f in firings.into_iter().take(MAX_FIRINGS_PER_TASK) {
            if let Some(note) = &f.dst {
                dst_warning(spec, &f, note, &mut warnings);
            }
            events.push(PreviewEvent {
                task_id: spec.id.clone(),
                task_name: spec.name.clone(),
                utc: f.at,
                local: f.local.to_rfc3339(),
                time_zone: schedule.time_zone.name().to_string(),
                estimated_minutes: spec.estimated.as_secs_f64() / 60.0,
                priority: spec.priority.name().into(),
                maintenance_type: spec.maintenance_type.name().into(),
                components: spec.components.clone(),
                dst: f.dst.clone(),
            });
        }
        for (at, lost) in schedule.lost_in_gaps(from, to) {
            warnings.push(Warning {
                kind: "dst".into(),
                tasks: vec![spec.id.clone()],
                component: None,
                at: at.with_timezone(&Utc),
                count: lost,
                message: format!(
                    "{}: {lost} firing(s) fall in the hour skipped on {} in {} (clocks jump forward at {}); they do not run",
                    spec.id,
                    at.format("%Y-%m-%d"),
                    schedule.time_zone.name(),
                    at.format("%H:%M %Z")
                ),
            });
        }
    }
    events.sort_by(|a, b| a.utc.cmp(&b.utc).then_with(|| a.task_id.cmp(&b.task_id)));
    warnings.extend(overlaps(catalog, &events));
    warnings.sort_by(|a, b| a.at.cmp(&b.at).then_with(|| a.kind.cmp(&b.kind)));

    let mut summary = PreviewSummary { events: events.len(), ..Default::default() };
    for e in &events {
        summary.total_minutes += e.estimated_minutes;
        *summary.by_priority.entry(e.priority.clone()).or_default() += 1;
        *summary.by_type.entry(e.maintenance_type.clone()).or_default() += 1;
        *summary.by_task.entry(e.task_id.clone()).or_default() += 1;
    }
    summary.total_hours = summary.total_minutes / 60.0;
    summary.average_minutes = if events.is_empty() { 0.0 } else { summary.total_minutes / events.len() as f64 };
    Preview { catalog: catalog.source.display().to_string(), from, to, days, events, summary, warnings }
}

fn dst_warning(spec: &TaskSpec, f: &crate::schedule::Firing, note: &DstNote, warnings: &mut Vec<Warning>) {
    let tz = f.local.timezone().name();
    let day = f.local.format("%Y-%m-%d");
    let message = match note {
        DstNote::MovedOutOfGap { scheduled } => format!(
            "{}: {scheduled} does not exist on {day} in {tz} (the clocks jump forward); it runs once, at {} ({} UTC)",
            spec.id,
            f.local.format("%H:%M:%S %Z"),
            f.at.format("%H:%M")
        ),
        DstNote::OnceInRepeatedHour => format!(
            "{}: {} happens twice on {day} in {tz} (the clocks go back); it runs once, at the first ({} UTC)",
            spec.id,
            f.local.format("%H:%M:%S"),
            f.at.format("%H:%M")
        ),
        DstNote::RepeatedHour { second: false } => return,
        DstNote::RepeatedHour { second: true } => format!(
            "{}: fires twice at {} on {day} in {tz}: the hour repeats when the clocks go back (an interval schedule follows the clock)",
            spec.id,
            f.local.format("%H:%M:%S")
        ),
    };
    warnings.push(Warning {
        kind: "dst".into(),
        tasks: vec![spec.id.clone()],
        component: None,
        at: f.at,
        count: 1,
        message,
    });
}

/// Pairs of firings whose estimated runs overlap on a shared component, grouped by component and
/// pair of tasks (with how often and when first); and a task whose runs would overlap itself.
fn overlaps(catalog: &Catalog, events: &[PreviewEvent]) -> Vec<Warning> {
    type Key = (String, String, String);
    let mut found: BTreeMap<Key, (usize, DateTime<Utc>, String)> = BTreeMap::new();
    let mut selfish: BTreeMap<String, (usize, DateTime<Utc>)> = BTreeMap::new();
    let end = |e: &PreviewEvent| e.utc + chrono::Duration::milliseconds((e.estimated_minutes * 60_000.0) as i64);
    // Events are sorted by start; a sweep keeps those still running.
    let mut active: Vec<&PreviewEvent> = Vec::new();
    for e in events {
        active.retain(|a| end(a) > e.utc);
        for a in &active {
            if a.task_id == e.task_id {
                let entry = selfish.entry(e.task_id.clone()).or_insert((0, e.utc));
                entry.0 += 1;
                continue;
            }
            for c in e.components.iter().filter(|c| a.components.contains(c)) {
                let key = (c.clone(), a.task_id.clone(), e.task_id.clone());
                let detail = format!(
                    "{} {}-{} and {} {}-{} UTC",
                    a.task_id,
                    a.utc.format("%Y-%m-%d %H:%M"),
                    end(a).format("%H:%M"),
                    e.task_id,
                    e.utc.format("%H:%M"),
                    end(e).format("%H:%M")
                );
                let entry = found.entry(key).or_insert((0, a.utc, detail));
                entry.0 += 1;
            }
        }
        active.push(e);
    }
    let mut out: Vec<Warning> = found
        .into_iter()
        .map(|((component, a, b), (count, at, detail))| Warning {
            kind: "overlap".into(),
            message: format!(
                "{a} and {b} overlap on component {component:?} {count} time(s) in the window, first: {detail}"
            ),
            tasks: vec![a, b],
            component: Some(component),
            at,
            count,
        })
        .collect();
    for (task, (count, at)) in selfish {
        let estimate =
            catalog.task(&task).map(|t| humantime::format_duration(t.estimated).to_string()).unwrap_or_default();
        out.push(Warning {
            kind: "self_overlap".into(),
            tasks: vec![task.clone()],
            component: None,
            at,
            count,
            message: format!(
                "{task} fires again before its estimated {estimate} run ends ({count} time(s)); the later firing is skipped while the earlier runs"
            ),
        });
    }
    out
}

/// A preview's start: a date (midnight in `tz`) or an RFC 3339 instant. The error is the reason.
pub fn parse_from(text: &str, tz: chrono_tz::Tz) -> Result<DateTime<Utc>, String> {
    use chrono::TimeZone;
    if let Ok(t) = DateTime::parse_from_rfc3339(text.trim()) {
        return Ok(t.with_timezone(&Utc));
    }
    let date = chrono::NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d")
        .map_err(|_| format!("{text:?}: not a date (2026-03-28) or an RFC 3339 instant (2026-03-28T00:00:00Z)"))?;
    let midnight = date.and_hms_opt(0, 0, 0).expect("midnight exists as a naive time");
    // Midnight falls in a daylight-saving gap in a few zones: then the first hour after it.
    tz.from_local_datetime(&midnight)
        .earliest()
        .or_else(|| tz.from_local_datetime(&(midnight + chrono::Duration::hours(1))).earliest())
        .map(|t| t.with_timezone(&Utc))
        .ok_or_else(|| format!("{text:?}: midnight does not exist in {}", tz.name()))
}

/// The preview as a person reads it.
pub fn render(p: &Preview) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "schedule preview  {} .. {} UTC ({} days), catalog {}",
        p.from.format("%Y-%m-%d %H:%M"),
        p.to.format("%Y-%m-%d %H:%M"),
        p.days,
        p.catalog
    );
    let _ = writeln!(
        out,
        "{:<26} {:<17} {:<28} {:>7}  {:<9} {:<11} components",
        "when (local)", "when (UTC)", "task", "est.", "priority", "type"
    );
    for e in &p.events {
        let local = DateTime::parse_from_rfc3339(&e.local).ok();
        let tz: Option<chrono_tz::Tz> = e.time_zone.parse().ok();
        let local_text = match (local, tz) {
            (Some(l), Some(tz)) => l.with_timezone(&tz).format("%Y-%m-%d %H:%M %Z").to_string(),
            _ => e.local.clone(),
        };
        let _ = writeln!(
            out,
            "{:<26} {:<17} {:<28} {:>6}m  {:<9} {:<11} {}{}",
            local_text,
            e.utc.format("%Y-%m-%d %H:%M"),
            e.task_id,
            format_minutes(e.estimated_minutes),
            e.priority,
            e.maintenance_type,
            e.components.join(", "),
            if e.dst.is_some() { "  (DST, see warnings)" } else { "" }
        );
    }
    let s = &p.summary;
    let _ = writeln!(
        out,
        "summary   {} events, {} min ({:.1} h) in total, {:.1} min on average",
        s.events,
        format_minutes(s.total_minutes),
        s.total_hours,
        s.average_minutes
    );
    let breakdown =
        |m: &BTreeMap<String, usize>| m.iter().map(|(k, v)| format!("{k} {v}")).collect::<Vec<_>>().join(", ");
    let _ = writeln!(out, "          by priority: {}", breakdown(&s.by_priority));
    let _ = writeln!(out, "          by type: {}", breakdown(&s.by_type));
    if p.warnings.is_empty() {
        let _ = writeln!(out, "warnings  none");
    } else {
        let _ = writeln!(out, "warnings  {}", p.warnings.len());
        for w in &p.warnings {
            let _ = writeln!(out, "  {:<12} {}", w.kind, w.message);
        }
    }
    out
}

fn format_minutes(m: f64) -> String {
    if m.fract() == 0.0 { format!("{m:.0}") } else { format!("{m:.1}") }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kinds::{BuiltinKinds, KindRegistry};

    fn catalog(tasks: &str) -> Catalog {
        let kinds = KindRegistry::new(vec![Box::new(BuiltinKinds { caretaker_exe: "caretaker".into() })]);
        Catalog::from_toml_str(tasks, std::path::Path::new("/srv/m.toml"), &kinds).unwrap()
    }

    fn task(id: &str, schedule: &str, estimate: &str, components: &str, extra: &str) -> String {
        format!(
            "[[tasks]]\nid = \"{id}\"\nkind = \"command\"\nschedule = \"{schedule}\"\nestimated_duration = \"{estimate}\"\ncomponents = {components}\n{extra}\n[tasks.params]\nargv = [\"true\"]\n"
        )
    }

    fn utc(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn a_week_is_listed_sorted_with_its_summary() {
        let c = catalog(&format!(
            "{}{}",
            task("health", "0 6 * * *", "10m", "[\"api\"]", "priority = \"high\""),
            task("retrain", "0 2 * * 1", "1h", "[\"models\"]", "priority = \"critical\"\ntype = \"perfective\"")
        ));
        let p = preview(&c, utc("2026-11-28T00:00:00Z"), 7);
        assert_eq!(p.summary.events, 8);
        assert_eq!(p.summary.by_task["health"], 7);
        assert_eq!(p.summary.by_task["retrain"], 1);
        assert_eq!(p.summary.total_minutes, 130.0);
        assert_eq!(p.summary.by_priority["critical"], 1);
        assert_eq!(p.summary.by_type["perfective"], 1);
        assert_eq!(p.summary.by_type["preventive"], 7);
        assert!(p.events.windows(2).all(|w| w[0].utc <= w[1].utc));
        // Monday 2026-11-30 02:00 UTC.
        let r = p.events.iter().find(|e| e.task_id == "retrain").unwrap();
        assert_eq!(r.utc, utc("2026-11-30T02:00:00Z"));
        assert!(p.warnings.is_empty(), "{:?}", p.warnings);
        let text = render(&p);
        assert!(text.contains("summary   8 events, 130 min (2.2 h) in total, 16.2 min on average"), "{text}");
    }

    #[test]
    fn overlaps_on_a_component_and_dst_changes_are_warned() {
        let c = catalog(&format!(
            "time_zone = \"Europe/Berlin\"\n{}{}{}",
            task("backup", "0 1 * * 6", "45m", "[\"db\"]", ""),
            task("vacuum", "30 1 * * 6", "30m", "[\"db\", \"disk\"]", ""),
            task("nightly", "30 2 * * *", "20m", "[\"models\"]", "")
        ));
        let p = preview(&c, utc("2026-03-26T00:00:00Z"), 7);
        let overlap: Vec<_> = p.warnings.iter().filter(|w| w.kind == "overlap").collect();
        assert_eq!(overlap.len(), 1, "{:?}", p.warnings);
        assert_eq!(overlap[0].component.as_deref(), Some("db"));
        assert_eq!(overlap[0].tasks, vec!["backup", "vacuum"]);
        let dst: Vec<_> = p.warnings.iter().filter(|w| w.kind == "dst").collect();
        assert_eq!(dst.len(), 1, "{:?}", p.warnings);
        assert!(
            dst[0].message.contains("02:30:00 does not exist on 2026-03-29 in Europe/Berlin"),
            "{}",
            dst[0].message
        );
        assert!(dst[0].message.contains("at 03:00:00 CEST (01:00 UTC)"), "{}", dst[0].message);
        assert_eq!(p.summary.by_task["nightly"], 7, "once a day, the DST day included");
    }
}
