//! What the health tasks read of a pipeline: its config, its newest run reports (from the run
//! history) and its champion (from the registry, hash checked). Read only: a missing history or
//! registry is reported, never created.

use crate::error::{Error, Result};
use caretaker_core::config::PipelineConfig;
use caretaker_core::report::RunReport;
use caretaker_registry::{ModelCard, Registry};
use std::path::Path;

pub(crate) struct PipelineState {
    pub config: PipelineConfig,
    /// The newest runs first, at most the window asked for.
    pub runs: Vec<RunReport>,
    /// The champion's card if it loads (its model's hash matches), or why it does not; `None`
    /// when nothing was ever deployed.
    pub champion: Option<Result<ModelCard, String>>,
}

/// Reads the pipeline at `pipeline` and its newest `window` runs.
pub(crate) fn read(pipeline: &Path, window: usize) -> Result<PipelineState> {
    let config = PipelineConfig::load(pipeline).map_err(|e| Error::step("reading the pipeline", e))?;
    let history_of = || format!("reading the run history of {}", config.name);
    let runs = if let Some(history) =
        caretaker_history::History::existing(&config.output).map_err(|e| Error::step(history_of(), e))?
    {
        let mut runs = Vec::new();
        for row in history.runs(Some(&config.name), window).map_err(|e| Error::step(history_of(), e))? {
            match history.report(Some(&config.name), &row.run_id).map_err(|e| Error::step(history_of(), e))? {
                Some(report) => runs.push(report),
                None => {
                    return Err(Error::step(
                        history_of(),
                        format!(
                            "run {} vanished from {} while it was read",
                            row.run_id,
                            caretaker_history::History::describe(&config.output)
                        ),
                    ));
                }
            }
        }
        runs
    } else {
        Vec::new()
    };
    let champion = champion(&config.output);
    Ok(PipelineState { config, runs, champion })
}

fn champion(output: &caretaker_core::config::OutputDirs) -> Option<Result<ModelCard, String>> {
    let registry = match Registry::existing(output) {
        Ok(r) => r?,
        Err(e) => return Some(Err(e.to_string())),
    };
    match registry.champion() {
        Ok(None) => None,
        Ok(Some(pointer)) => Some(registry.load(pointer.version).map(|(card, _bytes)| card).map_err(|e| e.to_string())),
        Err(e) => Some(Err(e.to_string())),
    }
}

/// The mean of `values`, `None` when empty.
pub(crate) fn mean(values: &[f64]) -> Option<f64> {
    (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64)
}
