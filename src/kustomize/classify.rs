//! kustomize wraps nested failures ("accumulating resources: accumulation err='...': ...").
//! This finds the innermost cause, names its class, and pins it to the repo file (and line)
//! that caused it where possible.

use std::sync::OnceLock;

use regex::Regex;
use serde_json::Value;

use crate::repo::Repo;

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct BuildError {
    /// missing-file, yaml, patch-target, invalid-kustomization, duplicate-id, helm, plugin,
    /// load-restrictor, other; and agentops's own: input-limit, cycle, changed, time-limit,
    /// memory-limit, output-limit
    pub class: &'static str,
    pub message: String,
    pub file: String,
    pub line: Option<u32>,
}

/// A lazily compiled constant pattern (None only if the pattern were invalid, which the
/// tests rule out).
fn re(cell: &'static OnceLock<Option<Regex>>, pattern: &str) -> Option<&'static Regex> {
    cell.get_or_init(|| Regex::new(pattern).ok()).as_ref()
}

/// `kubectl kustomize` may log its error klog-style (`E1127 ... "command failed"
/// err="..."`); this returns the error text itself, unquoted.
fn unwrap_klog(stderr: &str) -> String {
    let Some(start) = stderr.find(" err=\"") else {
        return stderr.to_string();
    };
    let mut out = String::new();
    let mut chars = stderr[start + 6..].chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => break,
            '\\' => match chars.next() {
                Some('n') => out.push('\n'),
                Some('t') => out.push('\t'),
                Some(other) => out.push(other),
                None => break,
            },
            c => out.push(c),
        }
    }
    out
}

/// Classifies kustomize's error text for a build of `dir`.
pub fn classify(stderr: &str, repo: &Repo, dir: &str) -> BuildError {
    // agentops's own refusals (limits, cycles) already say where and why
    if let Some(r) = super::Refusal::parse(stderr.trim()) {
        return BuildError { class: r.class, message: r.message, file: r.file, line: r.line };
    }
    static YAML: OnceLock<Option<Regex>> = OnceLock::new();
    static MISSING: OnceLock<Option<Regex>> = OnceLock::new();
    static PATCH: OnceLock<Option<Regex>> = OnceLock::new();
    static UNKNOWN_FIELD: OnceLock<Option<Regex>> = OnceLock::new();
    static DUP: OnceLock<Option<Regex>> = OnceLock::new();
    static RESTRICT: OnceLock<Option<Regex>> = OnceLock::new();
    static FROM: OnceLock<Option<Regex>> = OnceLock::new();
    static PLUGIN: OnceLock<Option<Regex>> = OnceLock::new();
    let root = format!("{}/", repo.root.display());
    let text = unwrap_klog(stderr);
    let text = text.trim().trim_start_matches("error: ").trim_start_matches("Error: ").replace(&root, "");
    let leaf_file =
        repo.kustomizations.get(dir).map_or_else(|| format!("{dir}/kustomization.yaml"), |k| k.file.clone());
    let closure = repo.closure(dir);
    let in_closure = |suffix: &str| -> Option<String> {
        closure.files.iter().find(|f| f.as_str() == suffix || f.ends_with(&format!("/{suffix}"))).cloned()
    };
    // The kustomization (in this build) that refers to `path`, and the line of the reference.
    let referrer = |path: &str| -> Option<(String, u32)> {
        closure
            .files
            .iter()
            .filter_map(|f| repo.kustomizations.get(crate::repo::split_dir(f).0).filter(|k| &k.file == f))
            .find_map(|k| k.refs.iter().find(|r| r.path == path).map(|r| (k.file.clone(), r.line)))
    };

    // The reference named in the innermost "accumulating/merging resources from 'X'".
    let from_ref = || -> (String, Option<u32>) {
        let raw = re(&FROM, r"(?:accumulating|merging) resources from '([^']+)'")
            .and_then(|r| r.captures_iter(&text).last())
            .map(|c| c[1].to_string());
        // The same raw path may appear in several kustomizations: the leaf's own first.
        let found = raw.and_then(|raw| {
            let others = closure
                .files
                .iter()
                .filter_map(|f| repo.kustomizations.get(crate::repo::split_dir(f).0).filter(|k| &k.file == f));
            repo.kustomizations
                .get(dir)
                .into_iter()
                .chain(others)
                .find_map(|k| k.refs.iter().find(|r| r.raw == raw).map(|r| (k.file.clone(), r.line)))
        });
        found.map_or((leaf_file.clone(), None), |(f, l)| (f, Some(l)))
    };

    if let Some(c) =
        re(&YAML, r"yaml: line (\d+): ([^\n]*?) in File: (\S+)").and_then(|r| r.captures_iter(&text).last())
    {
        let file = in_closure(&c[3]).unwrap_or_else(|| leaf_file.clone());
        // Our own parser's line is exact; kustomize's is not always.
        let line = match repo.files.get(&file).map(|f| &f.docs) {
            Some(Err(e)) => Some(e.line),
            _ => c[1].parse().ok().filter(|l| *l > 0),
        };
        return BuildError { class: "yaml", message: format!("malformed YAML: {}", &c[2]), file, line };
    }
    if let Some(c) =
        re(&MISSING, r"lstat ([^:']+): no such file or directory").and_then(|r| r.captures_iter(&text).last())
    {
        let path = c[1].trim().trim_start_matches('/').to_string();
        let (file, line) = referrer(&path).map_or((leaf_file.clone(), None), |(f, l)| (f, Some(l)));
        return BuildError {
            class: "missing-file",
            message: format!("{path} does not exist (referenced from {file})"),
            file,
            line,
        };
    }
    let patch = r#"no matches for Id ([^;\s]+)|failed to find unique target for patch ([^\s:]+)|no resource matches strategic merge patch "([^"]+)""#;
    if let Some(c) = re(&PATCH, patch).and_then(|r| r.captures(&text)) {
        let id = c.get(1).or(c.get(2)).or(c.get(3)).map_or("", |m| m.as_str()).to_string();
        // Id looks like Deployment.v1.apps/other.[noNs] or Deployment.v1.apps/other.ns
        let (kind, name) = id
            .split_once('/')
            .map_or(("", ""), |(k, n)| (k.split('.').next().unwrap_or(""), n.rsplit_once('.').map_or(n, |x| x.0)));
        let found = closure.files.iter().find_map(|f| {
            repo.docs(f)
                .iter()
                .find(|d| {
                    d.value.get("kind").and_then(Value::as_str) == Some(kind)
                        && d.value.pointer("/metadata/name").and_then(Value::as_str) == Some(name)
                        && !closure.resource_files.contains(f)
                })
                .map(|d| (f.clone(), d.line))
        });
        let (file, line) = found.map_or((leaf_file.clone(), None), |(f, l)| (f, Some(l)));
        return BuildError {
            class: "patch-target",
            message: format!("patch target {kind} {name:?} is not among the resources of this build"),
            file,
            line,
        };
    }
    if let Some(c) =
        re(&UNKNOWN_FIELD, r#"invalid Kustomization: json: unknown field "([^"]+)""#).and_then(|r| r.captures(&text))
    {
        let field = c[1].to_string();
        let found = closure.files.iter().find_map(|f| {
            let k = repo.kustomizations.get(crate::repo::split_dir(f).0).filter(|k| &k.file == f)?;
            let d = repo.docs(&k.file).first()?;
            d.value.get(&field).map(|_| (k.file.clone(), d.line_of(&format!("/{field}"))))
        });
        let (file, line) = found.map_or((leaf_file.clone(), None), |(f, l)| (f, Some(l)));
        return BuildError {
            class: "invalid-kustomization",
            message: format!("unknown kustomization field {field:?}"),
            file,
            line,
        };
    }
    if let Some(c) =
        re(&DUP, r"may not add resource with an already registered id: ([^\s']+)").and_then(|r| r.captures(&text))
    {
        let (file, line) = from_ref();
        return BuildError {
            class: "duplicate-id",
            message: format!("the same object is included twice: {}", &c[1]),
            file,
            line,
        };
    }
    if text.contains("--enable-helm") {
        return BuildError {
            class: "helm",
            message: "Helm charts need --enable-helm and the network; not built offline".into(),
            file: leaf_file,
            line: None,
        };
    }
    if text.contains("enable-alpha-plugins")
        || text.contains("external plugins disabled")
        || text.contains("unable to load external plugin")
    {
        let kind = re(&PLUGIN, r"external plugin '([^']+)'").and_then(|r| r.captures(&text)).map(|c| c[1].to_string());
        let found = kind.as_deref().and_then(|kind| {
            closure.files.iter().find_map(|f| {
                repo.docs(f)
                    .iter()
                    .find(|d| d.value.get("kind").and_then(Value::as_str) == Some(kind))
                    .map(|d| (f.clone(), d.line))
            })
        });
        let (file, line) = found.map_or((leaf_file, None), |(f, l)| (f, Some(l)));
        return BuildError {
            class: "plugin",
            message: format!(
                "exec/container plugin {} (a KRM function) is not run: agentops builds without --enable-alpha-plugins",
                kind.as_deref().unwrap_or("?")
            ),
            file,
            line,
        };
    }
    if let Some(c) =
        re(&RESTRICT, r"security; file '([^']+)' is not in or below '([^']+)'").and_then(|r| r.captures(&text))
    {
        let (file, line) = from_ref();
        return BuildError {
            class: "load-restrictor",
            message: format!(
                "{} is outside the kustomization root {} (kustomize's load restrictor); reference its directory instead",
                &c[1], &c[2]
            ),
            file,
            line,
        };
    }
    // Innermost cause: the text after the last "': " nesting boundary, without the wrapping.
    let inner = text.rsplit("': ").next().unwrap_or(&text).trim_end_matches('\'').trim();
    BuildError { class: "other", message: inner.to_string(), file: leaf_file, line: None }
}
