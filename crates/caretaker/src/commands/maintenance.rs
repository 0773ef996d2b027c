//! `caretaker maintenance on|off|status`: the flag critical tasks raise, by hand. While it is on
//! the nightly pipeline deploys nothing and the scheduler holds non-critical tasks back.

use super::print_json;
use super::scheduler::load_catalog;
use anyhow::Result;
use caretaker_core::Clock;
use caretaker_core::maintenance::{self, MaintenanceMode};
use caretaker_scheduler::catalog::{Notifications, NotifyEvent};
use caretaker_scheduler::notify::Notifier;
use caretaker_scheduler::redact::Redactor;
use clap::{Args, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Subcommand)]
pub enum MaintenanceCommand {
    /// Turn maintenance mode on (notifies the catalog's webhook/command).
    On {
        /// Why, for whoever looks at `maintenance status`.
        #[arg(long, default_value = "manual maintenance")]
        reason: String,
        /// Who turns it on.
        #[arg(long, default_value = "manual")]
        by: String,
        #[command(flatten)]
        select: StateSelect,
    },
    /// Turn maintenance mode off (notifies).
    Off {
        #[command(flatten)]
        select: StateSelect,
    },
    /// Whether maintenance mode is on, since when, by whom and why.
    Status {
        #[command(flatten)]
        select: StateSelect,
    },
}

/// The state directory: the catalog's, or one named directly (no catalog needed, no notifications).
#[derive(Debug, Args)]
pub struct StateSelect {
    /// The maintenance catalog whose state directory to use.
    #[arg(short, long, env = "CARETAKER_CATALOG", default_value = "pipelines/maintenance.toml")]
    pub catalog: PathBuf,
    /// Use this state directory instead of the catalog's (when the catalog itself is broken).
    #[arg(long, value_name = "DIR")]
    pub state: Option<PathBuf>,
    /// Print JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

fn resolve(select: &StateSelect) -> Result<(PathBuf, Option<Notifier>)> {
    if let Some(state) = &select.state {
        return Ok((state.clone(), None));
    }
    let catalog = load_catalog(&select.catalog)?;
    let notifications: Notifications = catalog.notifications.clone();
    let redactor = Redactor::new(notifications.webhook.iter().map(String::as_str));
    Ok((catalog.state_dir.clone(), Some(Notifier::new(notifications, catalog.root.clone(), redactor))))
}

fn notify(notifier: Option<Notifier>, event: NotifyEvent, body: serde_json::Value) -> Result<Vec<String>> {
    let Some(notifier) = notifier else { return Ok(Vec::new()) };
    let rt = caretaker_scheduler::runtime()?;
    Ok(rt.block_on(notifier.send(event, body)))
}

fn status_json(mode: &Option<MaintenanceMode>) -> serde_json::Value {
    match mode {
        Some(m) => serde_json::json!({
            "on": true, "since": m.since, "by": m.by, "reason": m.reason,
            "holder": m.holder, "stale": m.is_stale(),
        }),
        None => serde_json::json!({ "on": false }),
    }
}

fn describe(mode: &Option<MaintenanceMode>) -> String {
    match mode {
        Some(m) if m.is_stale() => format!(
            "maintenance mode is STALE: on since {} (by {}: {}), but its holder, {}, is gone; the next run, reset or task leaves it",
            m.since.format("%Y-%m-%d %H:%M:%S UTC"),
            m.by,
            m.reason,
            m.holder.as_ref().map_or_else(String::new, |h| h.describe())
        ),
        Some(m) => format!(
            "maintenance mode is ON since {} (by {}: {}{})",
            m.since.format("%Y-%m-%d %H:%M:%S UTC"),
            m.by,
            m.reason,
            m.holder.as_ref().map_or_else(String::new, |h| format!("; held by {}", h.describe()))
        ),
        None => "maintenance mode is off".to_string(),
    }
}

pub fn maintenance(cmd: MaintenanceCommand, clock: Clock) -> Result<ExitCode> {
    match cmd {
        MaintenanceCommand::On { reason, by, select } => {
            let (state, notifier) = resolve(&select)?;
            // A mode whose holder died is left first, and said so; a live one is taken over (its
            // holder then leaves it on when it finishes: it is no longer its own).
            let (_, stale) = maintenance::current_live(&state)?;
            if let Some(stale) = stale {
                eprintln!("{}", stale.recovered_note());
            }
            // Turned on by hand: no holder, on until turned off.
            let mode = MaintenanceMode { since: clock.now(), reason, by, holder: None };
            maintenance::enter(&state, &mode)?;
            let notes = notify(
                notifier,
                NotifyEvent::MaintenanceEntered,
                serde_json::json!({ "maintenance": mode, "at": mode.since }),
            )?;
            output(&select, &Some(mode), &notes);
        }
        MaintenanceCommand::Off { select } => {
            let (state, notifier) = resolve(&select)?;
            let was = maintenance::leave(&state)?;
            let notes = match &was {
                Some(m) => notify(
                    notifier,
                    NotifyEvent::MaintenanceLeft,
                    serde_json::json!({ "maintenance": m, "at": clock.now() }),
                )?,
                None => Vec::new(),
            };
            if select.json {
                print_json(&serde_json::json!({ "on": false, "was": status_json(&was), "notifications": notes }));
            } else {
                match &was {
                    Some(m) => println!(
                        "maintenance mode is off (it was on since {}, by {}: {})",
                        m.since.format("%Y-%m-%d %H:%M:%S UTC"),
                        m.by,
                        m.reason
                    ),
                    None => println!("maintenance mode is off (it was not on)"),
                }
                for n in notes {
                    println!("  {n}");
                }
            }
        }
        MaintenanceCommand::Status { select } => {
            let (state, _) = if select.state.is_some() {
                resolve(&select)?
            } else {
                (load_catalog(&select.catalog)?.state_dir, None)
            };
            output(&select, &maintenance::current(&state)?, &[]);
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn output(select: &StateSelect, mode: &Option<MaintenanceMode>, notes: &[String]) {
    if select.json {
        let mut v = status_json(mode);
        v["notifications"] = serde_json::json!(notes);
        print_json(&v);
    } else {
        println!("{}", describe(mode));
        for n in notes {
            println!("  {n}");
        }
    }
}
