//! The journal: one JSON line per executed step, appended to `.agentops/journal.jsonl` in
//! the repo (git-ignored). Arguments and results pass through the redactor first.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::Error;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    pub time: String,
    pub request: String,
    pub plan_hash: String,
    pub tool: String,
    pub args: Value,
    pub effect: String,
    /// auto (read-only), approved, approved (--yes), denied, refused, skipped (dry run)
    pub approval: String,
    pub ok: bool,
    pub result: String,
    pub duration_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens: Option<u64>,
}

#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    lock: Mutex<()>,
}

impl Journal {
    /// The journal of a repo: `<repo>/.agentops/journal.jsonl`.
    pub fn for_repo(root: &Path) -> Journal {
        Journal::at(&root.join(".agentops/journal.jsonl"))
    }

    pub fn at(path: &Path) -> Journal {
        Journal { path: path.to_path_buf(), lock: Mutex::new(()) }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn append(&self, entry: &Entry) -> Result<(), Error> {
        let _guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
            // keep the journal out of git without touching the repo's own .gitignore
            let ignore = dir.join(".gitignore");
            if dir.file_name().is_some_and(|n| n == ".agentops") && !ignore.exists() {
                let _ = std::fs::write(&ignore, "*\n");
            }
        }
        let mut line = serde_json::to_string(entry).map_err(|e| Error::Internal(e.to_string()))?;
        line.push('\n');
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .map_err(|e| Error::io(&self.path, e))?;
        f.write_all(line.as_bytes()).map_err(|e| Error::io(&self.path, e))
    }

    /// Every entry, oldest first; lines that do not parse are skipped.
    pub fn read(&self) -> Result<Vec<Entry>, Error> {
        match std::fs::read_to_string(&self.path) {
            Ok(text) => Ok(text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(Error::io(&self.path, e)),
        }
    }
}

/// A one-line summary of a tool result for the journal: top-level keys with array lengths.
pub fn summarize(v: &Value) -> String {
    let s = match v {
        Value::Object(m) => m
            .iter()
            .map(|(k, x)| match x {
                Value::Array(a) => format!("{k}: {} items", a.len()),
                Value::Object(o) if k == "summary" => format!("{k}: {}", Value::Object(o.clone())),
                Value::Object(o) => format!("{k}: {{{} keys}}", o.len()),
                other => format!("{k}: {other}"),
            })
            .collect::<Vec<_>>()
            .join(", "),
        other => other.to_string(),
    };
    if s.chars().count() > 400 { format!("{}…", s.chars().take(400).collect::<String>()) } else { s }
}
