//! The append-only ledger: one JSON line per change of champion.

use crate::{Error, Result};
use caretaker_core::fs::FsError;
use caretaker_core::ids::ModelVersion;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::Path;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LedgerAction {
    Deploy,
    Rollback,
    Promote,
    /// A model retrained from scratch and deployed by `caretaker models reset`, not weighed
    /// against the champion it replaced.
    Reset,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LedgerEntry {
    pub at: DateTime<Utc>,
    pub action: LedgerAction,
    /// The champion after this entry.
    pub version: ModelVersion,
    /// The champion before it.
    pub previous: Option<ModelVersion>,
    pub reason: String,
    pub run_id: Option<String>,
}

/// Appends one line and syncs it (under the registry's lock). A torn last line (a crash or a full
/// disk mid-append) is tolerated on read, and cut off before the next append: appended to, it
/// would run into the new line and corrupt both.
pub(crate) fn append(path: &Path, entry: &LedgerEntry) -> Result<()> {
    let mut line = serde_json::to_vec(entry).expect("a ledger entry serialises");
    line.push(b'\n');
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .read(true)
        .append(true)
        .open(path)
        .map_err(|e| FsError::new("open", path, e))?;
    cut_torn_tail(&mut file, path)?;
    file.write_all(&line).map_err(|e| FsError::new("append to", path, e))?;
    file.sync_all().map_err(|e| FsError::new("sync", path, e))?;
    Ok(())
}

/// Cuts the file back to its last complete line, if its end is torn.
fn cut_torn_tail(file: &mut std::fs::File, path: &Path) -> Result<()> {
    use std::io::{Read, Seek, SeekFrom};
    let len = file.metadata().map_err(|e| FsError::new("read", path, e))?.len();
    if len == 0 {
        return Ok(());
    }
    let mut last = [0u8; 1];
    file.seek(SeekFrom::Start(len - 1))
        .and_then(|_| file.read_exact(&mut last))
        .map_err(|e| FsError::new("read", path, e))?;
    if last[0] == b'\n' {
        return Ok(());
    }
    let mut text = Vec::with_capacity(len as usize);
    file.seek(SeekFrom::Start(0))
        .and_then(|_| file.read_to_end(&mut text))
        .map_err(|e| FsError::new("read", path, e))?;
    let torn = text.len();
    let complete = complete_lines(text);
    if complete.len() > torn {
        // A whole entry that only lost its newline is kept: the newline is added instead.
        file.write_all(b"\n").map_err(|e| FsError::new("append to", path, e))?;
        return Ok(());
    }
    tracing::warn!(
        "{}: cut off a torn last line ({} bytes, left by a crash or a full disk mid-append) before appending",
        path.display(),
        torn - complete.len()
    );
    file.set_len(complete.len() as u64).map_err(|e| FsError::new("truncate", path, e))?;
    file.sync_all().map_err(|e| FsError::new("sync", path, e))?;
    Ok(())
}

/// The entries of a ledger's bytes (`None`: no ledger yet); `path` names it in errors.
pub(crate) fn parse(bytes: Option<&[u8]>, path: &Path) -> Result<Vec<LedgerEntry>> {
    // Read as bytes: a line torn inside a character is a torn line, not an unreadable ledger.
    let Some(bytes) = bytes else { return Ok(Vec::new()) };
    let text = String::from_utf8_lossy(bytes);
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let mut entries = Vec::with_capacity(lines.len());
    for (i, line) in lines.iter().enumerate() {
        match serde_json::from_str(line) {
            Ok(entry) => entries.push(entry),
            // The last line may be torn by a crash mid-append; anything earlier is corruption.
            Err(_) if i + 1 == lines.len() && !text.ends_with('\n') => {}
            Err(e) => {
                return Err(Error::Corrupt { path: path.to_path_buf(), reason: format!("line {}: {e}", i + 1) });
            }
        }
    }
    Ok(entries)
}

/// `text` ending on a complete line: a torn last line is cut off, a whole entry that only lost its
/// newline gets it back (what [`append`] does to a file, for a ledger rewritten whole).
pub(crate) fn complete_lines(mut text: Vec<u8>) -> Vec<u8> {
    if text.is_empty() || text.ends_with(b"\n") {
        return text;
    }
    let keep = text.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    if serde_json::from_slice::<LedgerEntry>(&text[keep..]).is_ok() {
        text.push(b'\n');
    } else {
        text.truncate(keep);
    }
    text
}
