//! The scheduler's own task kinds: `command` (an argv list) and `pipeline` (the nightly pipeline,
//! run as a child process of the caretaker binary). Other crates add kinds through
//! [`caretaker_core::task::TaskKinds`]; [`KindRegistry`] holds them all.

pub mod command;
pub mod pipeline;
pub mod process;

use caretaker_core::config::ConfigProblem;
use caretaker_core::task::{Task, TaskKinds};
use std::path::{Path, PathBuf};

/// The `command` and `pipeline` kinds.
pub struct BuiltinKinds {
    /// The caretaker binary the `pipeline` kind runs (normally `std::env::current_exe()`).
    pub caretaker_exe: PathBuf,
}

impl TaskKinds for BuiltinKinds {
    fn kinds(&self) -> Vec<&'static str> {
        vec![command::KIND, pipeline::KIND]
    }

    fn build(&self, kind: &str, params: &toml::Table, root: &Path) -> Result<Box<dyn Task>, ConfigProblem> {
        match kind {
            command::KIND => Ok(Box::new(command::CommandTask::from_params(params, root)?)),
            pipeline::KIND => Ok(Box::new(pipeline::PipelineTask::from_params(params, root, &self.caretaker_exe)?)),
            other => Err(ConfigProblem { key: String::new(), reason: format!("unknown kind {other:?}") }),
        }
    }
}

/// Every kind the scheduler can build, from every provider.
pub struct KindRegistry {
    providers: Vec<Box<dyn TaskKinds>>,
}

impl KindRegistry {
    pub fn new(providers: Vec<Box<dyn TaskKinds>>) -> KindRegistry {
        KindRegistry { providers }
    }

    /// Every kind name, sorted.
    pub fn names(&self) -> Vec<&'static str> {
        let mut names: Vec<_> = self.providers.iter().flat_map(|p| p.kinds()).collect();
        names.sort_unstable();
        names.dedup();
        names
    }

    /// Builds a task; `None` when no provider knows the kind.
    pub fn build(&self, kind: &str, params: &toml::Table, root: &Path) -> Option<Result<Box<dyn Task>, ConfigProblem>> {
        self.providers.iter().find(|p| p.kinds().contains(&kind)).map(|p| p.build(kind, params, root))
    }
}

/// A path from the catalog, relative to the catalog's root unless absolute.
pub(crate) fn resolve(root: &Path, path: &str) -> PathBuf {
    let p = Path::new(path);
    if p.is_absolute() { p.to_path_buf() } else { root.join(p) }
}
