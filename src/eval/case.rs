//! The case format (`evals/cases/*.yaml` or `evals/cases/<name>/case.yaml`) and its loader.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One eval case: a world (repo, history, clusters), the requests, what must happen.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Case {
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    /// The workflow the case exercises (for the summary): validate, drift, harmonize, ...
    pub workflow: String,
    /// A fixture under `evals/repos/`, or a directory relative to the project (`examples/platform`).
    pub repo: String,
    /// Commits made on top of the fixture's initial commit, oldest first.
    #[serde(default)]
    pub history: Vec<Commit>,
    /// A change written and `git add`ed after the history (waiting to be committed).
    #[serde(default)]
    pub staged: Option<Staged>,
    /// Mock clusters, started before the first turn.
    #[serde(default)]
    pub clusters: Option<Clusters>,
    /// `ask` (one `agentops ask` per turn) or `chat` (every turn a line on `agentops chat`'s stdin).
    #[serde(default)]
    pub mode: Mode,
    /// The requests, and in chat the scripted answers to the planner's questions.
    pub turns: Vec<String>,
    #[serde(default)]
    pub approve: Approve,
    /// The planner the case is written for (the command line can override it).
    #[serde(default)]
    pub planner: Option<PlannerKind>,
    pub expect: Expect,
    #[serde(skip)]
    pub path: PathBuf,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Commit {
    pub message: String,
    /// `Name <email>`
    #[serde(default)]
    pub author: Option<String>,
    /// Any date git accepts (`2025-01-15T09:00:00Z`).
    #[serde(default)]
    pub date: Option<String>,
    /// path -> whole new content
    #[serde(default)]
    pub files: BTreeMap<String, String>,
    /// Text replaced in existing files.
    #[serde(default)]
    pub replace: Vec<Replace>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Staged {
    #[serde(default)]
    pub files: BTreeMap<String, String>,
    #[serde(default)]
    pub replace: Vec<Replace>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Replace {
    pub path: String,
    pub from: String,
    pub to: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Clusters {
    /// Environment names (fixture `<repo>/clusters/<env>`), or `{env, fixture}`.
    pub envs: Vec<ClusterSpec>,
    /// Run the simulated Argo CD against the case's repo.
    #[serde(default)]
    pub argocd: bool,
    /// Apps whose Application (`argocd/<env>/<app>.yaml`) is synced in every env before the
    /// run; `*` for every Application of each env (the cluster as Argo CD leaves it).
    #[serde(default)]
    pub sync: Vec<String>,
    /// Changes made by hand before the run (as `kubectl edit` would).
    #[serde(default)]
    pub edits: Vec<ClusterEdit>,
    /// Envs whose kubeconfig entry points at a closed port.
    #[serde(default)]
    pub unreachable: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum ClusterSpec {
    Env(String),
    Fixture { env: String, fixture: String },
}

impl ClusterSpec {
    pub fn env(&self) -> &str {
        match self {
            ClusterSpec::Env(e) | ClusterSpec::Fixture { env: e, .. } => e,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterEdit {
    pub env: String,
    #[serde(default = "default_manager")]
    pub manager: String,
    #[serde(default)]
    pub api_version: Option<String>,
    pub kind: String,
    #[serde(default)]
    pub namespace: Option<String>,
    pub name: String,
    #[serde(default)]
    pub patch_type: PatchKind,
    pub patch: Value,
}

fn default_manager() -> String {
    "kubectl-edit".into()
}

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum PatchKind {
    #[default]
    Strategic,
    Merge,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    #[default]
    Ask,
    Chat,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Approve {
    Yes,
    /// Write steps are denied (no terminal to ask on, no `--yes`).
    #[default]
    No,
    DryRun,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum PlannerKind {
    #[default]
    Rules,
    Llm,
}

impl PlannerKind {
    pub fn as_str(self) -> &'static str {
        match self {
            PlannerKind::Rules => "rules",
            PlannerKind::Llm => "llm",
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    /// Exit code of the last turn (chat: of the session).
    #[serde(default)]
    pub exit: Option<i32>,
    /// Steps that must appear in the journal in this order (other steps may come between).
    #[serde(default)]
    pub plan: Vec<PlanStep>,
    /// Tools or effects (`WritesRepo`, `WritesCluster`) that must not run successfully.
    #[serde(default)]
    pub forbid: Vec<String>,
    /// The planner's question (stdout or stderr) must contain this.
    #[serde(default)]
    pub asks: Option<String>,
    #[serde(default)]
    pub outcome: Vec<Check>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanStep {
    pub tool: String,
    /// A subset of the step's arguments.
    #[serde(default)]
    pub args: Option<Value>,
}

/// A check on the world after the run.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Check {
    FileContains {
        path: String,
        text: String,
    },
    FileLacks {
        path: String,
        text: String,
    },
    FileUnchanged {
        path: String,
    },
    /// No file of the repo was added, changed or removed, and no commit was made.
    RepoUnchanged(bool),
    /// Every object of `kind` that `kustomize build` renders in the overlays matching
    /// `overlay` (a glob such as `apps/*/overlays/*`) has `pointer` equal to `equals`.
    Rendered {
        overlay: String,
        kind: String,
        pointer: String,
        equals: Value,
    },
    Git {
        #[serde(default)]
        new_commits: Option<usize>,
        /// A regex the newest commit's message must match.
        #[serde(default)]
        message_matches: Option<String>,
        /// Exactly these files changed between the start and HEAD.
        #[serde(default)]
        files: Option<Vec<String>>,
    },
    /// An object in a mock cluster's store.
    Cluster {
        env: String,
        #[serde(default)]
        api_version: Option<String>,
        kind: String,
        #[serde(default)]
        namespace: Option<String>,
        name: String,
        #[serde(default)]
        pointer: Option<String>,
        #[serde(default)]
        equals: Option<Value>,
        #[serde(default)]
        absent: bool,
    },
    /// No write request reached any mock cluster during the run (from the audit log).
    ClustersUnchanged(bool),
    /// On the JSON output of an `ask` turn (the last one unless `turn` is given, 0-based).
    Json {
        pointer: String,
        #[serde(default)]
        turn: Option<usize>,
        #[serde(default)]
        equals: Option<Value>,
        /// A string containing it, an array with an element matching it (subset), an object matching it.
        #[serde(default)]
        contains: Option<Value>,
        #[serde(default)]
        absent: bool,
    },
    StdoutContains(String),
    StderrContains(String),
    /// The journal (`.agentops/journal.jsonl`) contains this text.
    JournalContains(String),
    Budget {
        #[serde(default)]
        turns: Option<usize>,
        #[serde(default)]
        tokens: Option<u64>,
    },
}

/// A case file that could not be read, with the file named.
#[derive(Debug, Clone)]
pub struct LoadError {
    pub path: PathBuf,
    pub message: String,
}

impl std::fmt::Display for LoadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.message)
    }
}

/// Parses one case file.
pub fn parse_case(path: &Path, text: &str) -> Result<Case, LoadError> {
    let err = |message: String| LoadError { path: path.to_path_buf(), message };
    // checks are written `- file_contains: {...}`: enums as single-key maps, not YAML tags
    let mut case: Case =
        yaml_serde::with::singleton_map_recursive::deserialize(yaml_serde::Deserializer::from_str(text))
            .map_err(|e| err(e.to_string()))?;
    if case.turns.is_empty() {
        return Err(err("`turns` is empty: a case needs at least one request".into()));
    }
    if case.name.trim().is_empty() {
        return Err(err("`name` is empty".into()));
    }
    for c in &case.expect.outcome {
        if let Check::Git { message_matches: Some(re), .. } = c {
            regex::Regex::new(re).map_err(|e| err(format!("message_matches {re:?}: {e}")))?;
        }
    }
    case.path = path.to_path_buf();
    Ok(case)
}

/// Every case file under `dir` (`*.yaml`, `*.yml` and `<name>/case.yaml`), sorted by path,
/// keeping those whose name (or file stem) matches `glob`. Files that do not parse come back
/// as errors, so a broken case fails instead of vanishing.
pub fn load_cases(dir: &Path, glob: Option<&str>) -> Result<Vec<Result<Case, LoadError>>, LoadError> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| LoadError { path: dir.to_path_buf(), message: format!("cannot read the cases directory: {e}") })?;
    let mut files: Vec<(String, PathBuf)> = Vec::new();
    for e in entries.flatten() {
        let p = e.path();
        let stem = p.file_stem().and_then(|s| s.to_str()).unwrap_or_default().to_string();
        if p.is_dir() {
            let c = p.join("case.yaml");
            if c.is_file() {
                files.push((stem, c));
            }
        } else if matches!(p.extension().and_then(|s| s.to_str()), Some("yaml" | "yml")) {
            files.push((stem, p));
        }
    }
    files.sort_by(|a, b| a.1.cmp(&b.1));
    let mut out = Vec::new();
    for (stem, path) in files {
        let parsed = std::fs::read_to_string(&path)
            .map_err(|e| LoadError { path: path.clone(), message: e.to_string() })
            .and_then(|t| parse_case(&path, &t));
        let keep = match (&parsed, glob) {
            (_, None) => true,
            (Ok(c), Some(g)) => glob_match(g, &c.name) || glob_match(g, &stem),
            (Err(_), Some(g)) => glob_match(g, &stem),
        };
        if keep {
            out.push(parsed);
        }
    }
    Ok(out)
}

/// Whether `text` matches one of the comma-separated globs of `pattern` (the dialect of
/// `crate::config::glob`: `*` stops at `/`, `**` crosses it). A comma inside `{a,b}` belongs to
/// the alternatives; a pattern that is not a glob matches nothing.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let mut depth = 0usize;
    let mut parts = Vec::new();
    let mut start = 0;
    for (i, c) in pattern.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                parts.push(&pattern[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&pattern[start..]);
    parts
        .into_iter()
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .any(|p| crate::config::glob(p, true).is_ok_and(|g| g.is_match(text)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob_match("validate-*", "validate-clean"));
        assert!(!glob_match("validate-*", "drift-x"));
        assert!(glob_match("drift-*,validate-*", "drift-x"));
        assert!(glob_match("apps/*/overlays/*", "apps/a/overlays/dev"));
        assert!(!glob_match("apps/*", "apps/a/overlays/dev"));
        assert!(glob_match("apps/**", "apps/a/overlays/dev"));
        assert!(glob_match("a?c", "abc"));
        assert!(glob_match("{drift,validate}-*", "validate-x") && glob_match("x, {a,b}-*", "b-1"));
        assert!(!glob_match("{drift,validate}-*", "harmonize-x"));
        assert!(!glob_match("[", "["), "not a glob: no match");
    }

    #[test]
    fn unknown_fields_are_errors_naming_the_file() {
        let e = parse_case(
            Path::new("evals/cases/x.yaml"),
            "name: x\nworkflow: v\nrepo: r\nturns: [a]\nexpect: {}\nbogus: 1\n",
        )
        .unwrap_err();
        assert!(e.to_string().starts_with("evals/cases/x.yaml: "), "{e}");
        assert!(e.to_string().contains("bogus"), "{e}");
        let e = parse_case(
            Path::new("c.yaml"),
            "name: x\nworkflow: v\nrepo: r\nturns: [a]\nexpect: {outcome: [{file_contains: {path: a, txt: b}}]}\n",
        )
        .unwrap_err();
        assert!(e.to_string().contains("txt"), "{e}");
        let c = parse_case(
            Path::new("c.yaml"),
            "name: x\nworkflow: v\nrepo: r\nturns: [a]\nexpect:\n  outcome:\n    - repo_unchanged: true\n    - stderr_contains: hi\n",
        )
        .unwrap();
        assert_eq!(c.expect.outcome.len(), 2);
    }
}
