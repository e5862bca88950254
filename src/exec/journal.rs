//! The journal: one JSON line per executed step, appended to `.agentops/journal.jsonl` in
//! the repo (git-ignored). Arguments and results pass through the redactor first. The LLM
//! planner also writes one line per model turn (`{"time", "request", "model_turn": {...}}`:
//! tokens, calls, invalid calls); [`Journal::read`] returns the steps, [`Journal::turns`]
//! the model turns.

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

/// One model turn of the LLM planner, as journaled.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ModelTurn {
    /// The agent that asked (`router` for the routing turn).
    pub agent: String,
    /// 1-based within the agent's run (0: the routing turn).
    pub turn: usize,
    /// As the endpoint counted them (0 when it reports nothing).
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    /// agentops's estimate of the system prompt and tool catalog alone (see `llm::budget`).
    pub catalog_tokens: u64,
    /// Tool calls the model proposed, and how many of them were refused as invalid
    /// (unreadable, unknown tool, not the agent's, arguments the schema refuses, paths
    /// outside the repo).
    pub calls: usize,
    pub invalid_calls: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finish_reason: Option<String>,
    pub duration_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct TurnLine {
    time: String,
    request: String,
    model_turn: ModelTurn,
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
        self.append_line(&serde_json::to_value(entry).map_err(|e| Error::Internal(e.to_string()))?)
    }

    fn append_line(&self, value: &Value) -> Result<(), Error> {
        let _guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
            // keep the journal out of git without touching the repo's own .gitignore
            let ignore = dir.join(".gitignore");
            if dir.file_name().is_some_and(|n| n == ".agentops") && !ignore.exists() {
                let _ = std::fs::write(&ignore, "*\n");
            }
        }
        let mut line = serde_json::to_string(value).map_err(|e| Error::Internal(e.to_string()))?;
        line.push('\n');
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .map_err(|e| Error::io(&self.path, e))?;
        f.write_all(line.as_bytes()).map_err(|e| Error::io(&self.path, e))
    }

    /// Appends one model turn.
    pub fn append_turn(&self, time: &str, request: &str, turn: &ModelTurn) -> Result<(), Error> {
        let line = TurnLine { time: time.to_string(), request: request.to_string(), model_turn: turn.clone() };
        self.append_line(&serde_json::to_value(&line).map_err(|e| Error::Internal(e.to_string()))?)
    }

    /// Every model turn, oldest first.
    pub fn turns(&self) -> Result<Vec<ModelTurn>, Error> {
        match std::fs::read_to_string(&self.path) {
            Ok(text) => Ok(text
                .lines()
                .filter_map(|l| serde_json::from_str::<TurnLine>(l).ok())
                .map(|t| t.model_turn)
                .collect()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(Error::io(&self.path, e)),
        }
    }

    /// Every step entry, oldest first; model turns and lines that do not parse are skipped.
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
