//! Notifications: maintenance mode entered or left, a task failed. Each goes to the catalog's
//! webhook (a JSON body, POST) and/or command (the same JSON on stdin, the event's name in
//! `CARETAKER_EVENT`). A notification that fails is logged and noted in the execution; it never
//! fails the task.

use crate::catalog::{Notifications, NotifyEvent};
use crate::kinds::process::{self, ProcessSpec};
use crate::redact::Redactor;
use std::collections::BTreeMap;
use std::path::PathBuf;

pub struct Notifier {
    config: Notifications,
    cwd: PathBuf,
    redactor: Redactor,
}

impl Notifier {
    pub fn new(config: Notifications, cwd: PathBuf, redactor: Redactor) -> Notifier {
        Notifier { config, cwd, redactor }
    }

    /// Sends `event` with `body` (the event's name is added as `event`); returns one note per
    /// channel, saying whether it went through.
    pub async fn send(&self, event: NotifyEvent, mut body: serde_json::Value) -> Vec<String> {
        if !self.config.events.contains(&event) {
            return Vec::new();
        }
        if let Some(map) = body.as_object_mut() {
            map.insert("event".into(), event.name().into());
        }
        self.redactor.redact_json(&mut body);
        let bytes = serde_json::to_vec(&body).expect("a JSON value serialises");
        let mut notes = Vec::new();
        if let Some(url) = &self.config.webhook {
            let shown = self.redactor.redact(url);
            let note = match self.post(url, bytes.clone()).await {
                Ok(status) if status.is_success() => {
                    format!("notified {} ({shown}): HTTP {}", event.name(), status.as_u16())
                }
                Ok(status) => format!("notification {} to {shown} failed: HTTP {}", event.name(), status.as_u16()),
                Err(e) => format!("notification {} to {shown} failed: {}", event.name(), self.redactor.redact(&e)),
            };
            notes.push(note);
        }
        if let Some(argv) = &self.config.command {
            let env = BTreeMap::from([("CARETAKER_EVENT".to_string(), event.name().to_string())]);
            let spec = ProcessSpec {
                argv,
                cwd: &self.cwd,
                env: &env,
                stdin: Some(bytes),
                output_limit: 16 * 1024,
                track: None,
            };
            let note = match process::run_with_timeout(spec, self.config.timeout).await {
                Some(run) if run.succeeded() => format!("notified {} (command {})", event.name(), argv[0]),
                Some(run) => format!("notification {} by command {} failed: {}", event.name(), argv[0], run.describe()),
                None => format!("notification {} by command {} timed out", event.name(), argv[0]),
            };
            notes.push(self.redactor.redact(&note));
        }
        for note in &notes {
            if note.contains("failed") || note.contains("timed out") {
                tracing::warn!("{note}");
            } else {
                tracing::info!("{note}");
            }
        }
        notes
    }

    async fn post(&self, url: &str, body: Vec<u8>) -> Result<reqwest::StatusCode, String> {
        let client = reqwest::Client::builder().timeout(self.config.timeout).build().map_err(|e| e.to_string())?;
        let response = client
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body)
            .send()
            .await
            .map_err(|e| {
                format!("{e}{}", std::error::Error::source(&e).map(|s| format!(": {s}")).unwrap_or_default())
            })?;
        Ok(response.status())
    }
}
