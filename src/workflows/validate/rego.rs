//! Teams' own policies in Rego, evaluated with regorus on every rendered object, the way
//! conftest runs them: rules named `deny`, `violation` or `warn` (or starting with `deny_`,
//! `violation_`, `warn_`) in any package, `input` = the object, and `data.agentops` = where
//! it comes from (app, env, overlay, file). Policies are parsed and prepared once; each
//! overlay evaluates on its own clone of the prepared engine.

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::Finding;
use crate::config::Severity;

/// The policies of one run.
pub struct RegoSet {
    /// The prepared engine holding every policy that parses; `None` when there is none.
    engine: Option<std::sync::Mutex<regorus::Engine>>,
    /// Packages (without `data.`) that hold policies, with the file that declares each.
    packages: Vec<(String, String)>,
    /// Policy files that could not be used: one `rego` error finding each.
    pub errors: Vec<Finding>,
    pub files: usize,
}

/// Where an object comes from, for `data.agentops`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Origin<'a> {
    pub app: Option<&'a str>,
    pub env: Option<&'a str>,
    pub overlay: &'a str,
    pub file: Option<&'a str>,
}

/// One result of a deny/violation/warn rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// `rego/<package>`
    pub check: String,
    pub severity: Severity,
    pub message: String,
}

fn rego_finding(file: String, line: Option<u32>, message: String) -> Finding {
    Finding {
        check: "rego".into(),
        severity: Severity::Error,
        file: Some(file),
        line,
        overlay: None,
        app: None,
        env: None,
        object: None,
        message,
        also: Vec::new(),
    }
}

/// File, line and message of a regorus error (`--> file:line:col ... error: message`).
fn parse_error(text: &str) -> (Option<String>, Option<u32>, String) {
    static AT: std::sync::LazyLock<Option<regex::Regex>> =
        std::sync::LazyLock::new(|| regex::Regex::new(r"--> (.+?):(\d+):(\d+)").ok());
    let located = AT.as_ref().and_then(|re| re.captures(text));
    let file = located.as_ref().and_then(|c| c.get(1)).map(|m| m.as_str().to_string());
    let line = located.as_ref().and_then(|c| c.get(2)).and_then(|m| m.as_str().parse().ok());
    let message = text
        .lines()
        .rev()
        .find_map(|l| l.trim().strip_prefix("error: "))
        .unwrap_or_else(|| text.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or(text))
        .to_string();
    (file, line, message)
}

/// Every `.rego` file under `path` (a file or a directory), sorted; conftest's unit tests
/// (`*_test.rego`) are not policies.
fn rego_files(path: &Path) -> Vec<PathBuf> {
    if path.is_file() {
        return vec![path.to_path_buf()];
    }
    let mut out: Vec<PathBuf> = walkdir::WalkDir::new(path)
        .sort_by_file_name()
        .into_iter()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_file())
        .map(|e| e.into_path())
        .filter(|p| p.extension().is_some_and(|x| x == "rego") && !p.to_string_lossy().ends_with("_test.rego"))
        .collect();
    out.sort();
    out
}

/// Adds one module, as Rego v1 (OPA 1.0 and current conftest) or, when that fails, as v0
/// (policies written for older conftest). The v1 error is the one reported.
fn add(engine: &mut regorus::Engine, name: &str, text: &str) -> Result<String, String> {
    engine.set_rego_v0(false);
    match engine.add_policy(name.to_string(), text.to_string()) {
        Ok(pkg) => Ok(pkg),
        Err(v1) => {
            engine.set_rego_v0(true);
            let r = engine.add_policy(name.to_string(), text.to_string()).map_err(|_| v1.to_string());
            engine.set_rego_v0(false);
            r
        }
    }
}

impl RegoSet {
    pub fn empty() -> RegoSet {
        RegoSet { engine: None, packages: Vec::new(), errors: Vec::new(), files: 0 }
    }

    /// Loads the policies under `paths`, each shown as its `display` name (repo-relative when
    /// inside the repo). A path that does not exist is an error finding unless `optional`.
    pub fn load(paths: &[(PathBuf, String)], optional: bool) -> RegoSet {
        let mut set = RegoSet::empty();
        let mut sources: Vec<(String, String)> = Vec::new();
        for (path, display) in paths {
            if !path.exists() {
                if !optional {
                    set.errors.push(rego_finding(
                        display.clone(),
                        None,
                        format!("policy path {display} does not exist"),
                    ));
                }
                continue;
            }
            for f in rego_files(path) {
                let name = match f.strip_prefix(path) {
                    Ok(rel) if !rel.as_os_str().is_empty() => {
                        format!("{}/{}", display.trim_end_matches('/'), rel.to_string_lossy().replace('\\', "/"))
                    }
                    _ => display.clone(),
                };
                match crate::config::limits::read_text(&f, crate::config::limits::DEFAULT_FILE_BYTES) {
                    Ok(text) => sources.push((name, text)),
                    Err(e) => set.errors.push(rego_finding(name, None, format!("policy file cannot be read: {e}"))),
                }
            }
        }
        set.files = sources.len();
        // Parse each file on its own first, so a broken one is reported and left out.
        let mut good: Vec<(String, String, String)> = Vec::new();
        for (name, text) in sources {
            let mut probe = regorus::Engine::new();
            match add(&mut probe, &name, &text) {
                Ok(pkg) => good.push((name, text, pkg)),
                Err(e) => {
                    let (_, line, message) = parse_error(&e);
                    set.errors.push(rego_finding(name, line, format!("policy does not parse: {message}")));
                }
            }
        }
        // Then prepare them together; a file that fails analysis (an unknown function, a
        // recursive rule) is reported and the rest prepared again without it.
        while !good.is_empty() {
            let mut engine = regorus::Engine::new();
            let mut packages = Vec::new();
            for (name, text, _) in &good {
                if let Ok(pkg) = add(&mut engine, name, text) {
                    packages.push((pkg.trim_start_matches("data.").to_string(), name.clone()));
                }
            }
            // evaluating each package once on an empty object prepares the engine and finds
            // what only shows when a rule runs (an unknown function)
            engine.set_input(regorus::Value::new_object());
            let mut trial = Ok(());
            for (pkg, _) in &packages {
                if let Err(e) = engine.eval_query(format!("data.{pkg} with data.agentops as {{}}"), false) {
                    trial = Err(e);
                    break;
                }
            }
            match trial {
                Ok(()) => {
                    packages.sort();
                    packages.dedup_by(|a, b| a.0 == b.0);
                    set.packages = packages;
                    set.engine = Some(std::sync::Mutex::new(engine));
                    break;
                }
                Err(e) => {
                    let text = e.to_string();
                    let (file, line, message) = parse_error(&text);
                    let culprit = file.and_then(|f| good.iter().position(|g| g.0 == f)).unwrap_or(0);
                    let (name, _, _) = good.remove(culprit);
                    set.errors.push(rego_finding(name, line, format!("policy cannot be prepared: {message}")));
                }
            }
        }
        set
    }

    /// A copy of the prepared engine for one thread of work.
    pub fn engine(&self) -> Option<regorus::Engine> {
        self.engine.as_ref().and_then(|e| e.lock().ok()).map(|e| e.clone())
    }

    /// Evaluates every package on one object. Errors come back as `rego` findings naming the
    /// policy file and line.
    pub fn evaluate(&self, engine: &mut regorus::Engine, obj: &Value, origin: &Origin) -> (Vec<Outcome>, Vec<Finding>) {
        let mut out = Vec::new();
        let mut errors = Vec::new();
        engine.set_input(regorus::Value::from(obj.clone()));
        let agentops = serde_json::to_string(origin).unwrap_or_else(|_| "{}".into());
        for (pkg, file) in &self.packages {
            let query = format!("data.{pkg} with data.agentops as {agentops}");
            let results = match engine.eval_query(query, false) {
                Ok(r) => r,
                Err(e) => {
                    let (f, line, message) = parse_error(&e.to_string());
                    errors.push(rego_finding(
                        f.unwrap_or_else(|| file.clone()),
                        line,
                        format!("policy failed: {message}"),
                    ));
                    continue;
                }
            };
            let Some(value) = results.result.first().and_then(|r| r.expressions.first()).map(|e| &e.value) else {
                continue;
            };
            let Ok(Value::Object(rules)) = serde_json::to_value(value) else { continue };
            for (rule, v) in rules {
                let severity = if rule == "warn" || rule.starts_with("warn_") {
                    Severity::Warning
                } else if ["deny", "violation"].contains(&rule.as_str())
                    || rule.starts_with("deny_")
                    || rule.starts_with("violation_")
                {
                    Severity::Error
                } else {
                    continue;
                };
                for message in messages(&rule, &v) {
                    out.push(Outcome { check: format!("rego/{pkg}"), severity, message });
                }
            }
        }
        (out, errors)
    }
}

/// The messages a rule's value carries: strings, `{"msg": ...}` objects (conftest's
/// structured results), or `true` for a boolean rule.
fn messages(rule: &str, v: &Value) -> Vec<String> {
    match v {
        Value::String(s) => vec![s.clone()],
        Value::Bool(true) => vec![format!("{rule} is true")],
        Value::Array(items) => items.iter().flat_map(|i| messages(rule, i)).collect(),
        Value::Object(m) => match m.get("msg") {
            Some(Value::String(s)) => vec![s.clone()],
            _ => vec![Value::Object(m.clone()).to_string()],
        },
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn set_of(files: &[(&str, &str)]) -> (tempfile::TempDir, RegoSet) {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in files {
            std::fs::write(dir.path().join(name), text).unwrap();
        }
        let set = RegoSet::load(&[(dir.path().to_path_buf(), "policy".into())], false);
        (dir, set)
    }

    const ORIGIN: Origin = Origin {
        app: Some("web"),
        env: Some("prod"),
        overlay: "apps/web/overlays/prod",
        file: Some("apps/web/base/d.yaml"),
    };

    #[test]
    fn deny_and_warn_in_v1_and_v0_syntax() {
        let (_d, set) = set_of(&[
            (
                "v1.rego",
                "package main\n\ndeny contains msg if {\n  input.kind == \"Deployment\"\n  not input.metadata.labels.team\n  msg := sprintf(\"%s has no team label\", [input.metadata.name])\n}\n\nwarn contains msg if {\n  data.agentops.env == \"prod\"\n  msg := sprintf(\"prod object from %s\", [data.agentops.file])\n}\n",
            ),
            (
                "old.rego",
                "package legacy\n\nviolation[{\"msg\": msg}] {\n  input.spec.replicas < 2\n  msg := \"too few replicas\"\n}\n",
            ),
            ("old_test.rego", "this is not parsed at all"),
        ]);
        assert!(set.errors.is_empty(), "{:?}", set.errors);
        assert_eq!(set.files, 2);
        let mut engine = set.engine().unwrap();
        let obj = json!({"kind": "Deployment", "metadata": {"name": "web"}, "spec": {"replicas": 1}});
        let (out, errors) = set.evaluate(&mut engine, &obj, &ORIGIN);
        assert!(errors.is_empty(), "{errors:?}");
        let got: Vec<(&str, Severity, &str)> =
            out.iter().map(|o| (o.check.as_str(), o.severity, o.message.as_str())).collect();
        assert!(got.contains(&("rego/main", Severity::Error, "web has no team label")), "{got:?}");
        assert!(got.contains(&("rego/main", Severity::Warning, "prod object from apps/web/base/d.yaml")), "{got:?}");
        assert!(got.contains(&("rego/legacy", Severity::Error, "too few replicas")), "{got:?}");
        // a passing object
        let ok = json!({"kind": "Deployment", "metadata": {"name": "web", "labels": {"team": "a"}}, "spec": {"replicas": 3}});
        let (out, _) = set.evaluate(&mut engine, &ok, &Origin { env: Some("dev"), ..ORIGIN });
        assert!(out.is_empty(), "{out:?}");
    }

    #[test]
    fn a_broken_policy_is_a_finding_with_its_line_and_the_others_still_run() {
        let (_d, set) = set_of(&[
            ("broken.rego", "package broken\n\ndeny contains msg if {\n  input.kind ==\n}\n"),
            ("good.rego", "package good\n\ndeny contains \"always\" if { true }\n"),
        ]);
        assert_eq!(set.errors.len(), 1, "{:?}", set.errors);
        let e = &set.errors[0];
        assert_eq!(e.check, "rego");
        assert_eq!(e.file.as_deref(), Some("policy/broken.rego"));
        assert!(e.line.is_some_and(|l| (3..=5).contains(&l)), "{e:?}");
        let mut engine = set.engine().unwrap();
        let (out, _) = set.evaluate(&mut engine, &json!({}), &ORIGIN);
        assert_eq!(out.len(), 1);
    }

    #[test]
    fn an_unknown_function_is_reported_when_prepared() {
        let (_d, set) = set_of(&[
            ("a.rego", "package a\n\ndeny contains msg if {\n  msg := no_such_function(input)\n}\n"),
            ("b.rego", "package b\n\nwarn contains \"b\" if { true }\n"),
        ]);
        assert_eq!(set.errors.len(), 1, "{:?}", set.errors);
        assert_eq!(set.errors[0].file.as_deref(), Some("policy/a.rego"));
        assert!(set.engine.is_some(), "the good policy is still loaded");
    }

    #[test]
    fn a_missing_path_is_an_error_unless_optional() {
        let missing = [(PathBuf::from("/nonexistent/policy"), "policy".to_string())];
        assert!(RegoSet::load(&missing, true).errors.is_empty());
        assert_eq!(RegoSet::load(&missing, false).errors.len(), 1);
    }
}
