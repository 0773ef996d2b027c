//! docs/configuration.md cannot drift from the code: every key it documents is a key the pipeline
//! file accepts, and every key the configuration structs accept is documented. The structs'
//! keys are read from the parser itself (an unknown key's error lists every key the table
//! accepts), so a new field without a line in the document fails here.

use caretaker_core::config::PipelineConfig;
use std::collections::BTreeSet;
use std::path::Path;

const MINIMAL: &str = r#"
name = "doc"
[dataset]
path = "events.parquet"
id = "event_id"
timestamp = "ts"
label = "failed"
numeric = ["latency_ms"]
[dataset.example]
rows = 10
seed = 1
[quality.drift]
[gate.bootstrap]
[patterns]
store = "patterns.parquet"
[[candidates]]
name = "tree"
family = "decision_tree"
"#;

/// The tables of a pipeline file whose keys are fixed (maps such as `quality.ranges` and the
/// candidates, whose keys depend on the family, are not).
const TABLES: [&str; 12] = [
    "",
    "dataset",
    "dataset.example",
    "quality",
    "quality.drift",
    "training",
    "gate",
    "gate.bootstrap",
    "gate.slices",
    "registry",
    "patterns",
    "output",
];

/// The keys the parser accepts in `table`, from the error an unknown key gets there.
fn accepted(table: &str) -> BTreeSet<String> {
    let text = if table.is_empty() {
        format!("zz_not_a_key = 1\n{MINIMAL}")
    } else if MINIMAL.contains(&format!("[{table}]\n")) {
        MINIMAL.replacen(&format!("[{table}]\n"), &format!("[{table}]\nzz_not_a_key = 1\n"), 1)
    } else {
        format!("{MINIMAL}\n[{table}]\nzz_not_a_key = 1\n")
    };
    let Err(err) = PipelineConfig::from_toml_str(&text, Path::new("doc.toml")) else {
        panic!("{table}: an unknown key was accepted")
    };
    let err = err.to_string();
    let list = err
        .split("expected one of ")
        .nth(1)
        .or_else(|| err.split("expected ").nth(1))
        .unwrap_or_else(|| panic!("{table}: {err}"));
    let list = list.lines().next().unwrap_or("");
    list.split('`')
        .skip(1)
        .step_by(2)
        .map(|k| if table.is_empty() { k.to_string() } else { format!("{table}.{k}") })
        .collect()
}

/// The keys in the first column of the document's table (`dataset.id`, `.timestamp` expanded).
fn documented() -> BTreeSet<String> {
    let doc =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/configuration.md")).unwrap();
    let mut keys = BTreeSet::new();
    for line in doc.lines().filter(|l| l.starts_with("| `")) {
        let cell = line.split('|').nth(1).unwrap_or("");
        let names: Vec<&str> = cell.split('`').skip(1).step_by(2).collect();
        let Some(first) = names.first() else { continue };
        if first.starts_with("[[") || first.starts_with("family") || first.starts_with("candidates[]") {
            continue;
        }
        let prefix = first.rsplit_once('.').map(|(p, _)| p).unwrap_or("");
        for name in names {
            let key = match name.strip_prefix('.') {
                Some(rest) => format!("{prefix}.{rest}"),
                None => name.to_string(),
            };
            keys.insert(key.split(".<").next().unwrap_or(&key).to_string());
        }
    }
    keys
}

#[test]
fn every_documented_key_exists_and_every_key_is_documented() {
    let documented = documented();
    let mut accepted_keys = BTreeSet::new();
    for table in TABLES {
        accepted_keys.extend(accepted(table));
    }
    // `dataset.storage_options` is a map whose keys the validation checks against one list.
    accepted_keys.remove("dataset.storage_options");
    accepted_keys.extend(
        caretaker_core::config::STORAGE_OPTIONS.iter().map(|(key, _)| format!("dataset.storage_options.{key}")),
    );
    // A table is documented through its keys (`gate.bootstrap` also as a whole).
    let tables: BTreeSet<String> = TABLES.iter().map(|t| t.to_string()).collect();
    let undocumented: Vec<&String> = accepted_keys
        .iter()
        .filter(|k| !documented.contains(*k) && !tables.contains(*k) && *k != "candidates")
        .collect();
    let unknown: Vec<&String> = documented.iter().filter(|k| !accepted_keys.contains(*k)).collect();
    assert!(
        undocumented.is_empty() && unknown.is_empty(),
        "docs/configuration.md is out of date.\nkeys the pipeline file accepts but the document does not list: {undocumented:?}\n\
         keys the document lists but the pipeline file refuses: {unknown:?}"
    );
    assert!(documented.len() > 50, "the table was read: {documented:?}");
}
