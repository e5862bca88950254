//! Argo CD Applications found in the repo (any file under the layout's `argocd` globs),
//! single- or multi-source, with the line of each source for findings.

use serde::Serialize;
use serde_json::Value;

use super::Repo;
use crate::config::GlobSet;
use crate::error::Result;

#[derive(Debug, Clone, Serialize)]
pub struct ArgoSource {
    pub repo_url: Option<String>,
    pub path: Option<String>,
    pub chart: Option<String>,
    pub target_revision: Option<String>,
    /// Line of the source's `path` (or of the source itself).
    pub line: u32,
}

#[derive(Debug, Clone, Serialize)]
pub struct ArgoApp {
    pub name: String,
    pub namespace: Option<String>,
    pub project: Option<String>,
    pub file: String,
    pub line: u32,
    pub sources: Vec<ArgoSource>,
    pub destination_server: Option<String>,
    pub destination_name: Option<String>,
    pub destination_namespace: Option<String>,
    pub automated: bool,
}

pub(super) fn discover(repo: &Repo) -> Result<Vec<ArgoApp>> {
    let globs = GlobSet::new(&repo.config.layout.argocd)?;
    let mut out = Vec::new();
    for (path, file) in &repo.files {
        if !globs.matches(path) {
            continue;
        }
        let Ok(docs) = &file.docs else { continue };
        for doc in docs {
            let v = &doc.value;
            let is_app = v.get("kind").and_then(Value::as_str) == Some("Application")
                && v.get("apiVersion").and_then(Value::as_str).is_some_and(|a| a.starts_with("argoproj.io/"));
            if !is_app {
                continue;
            }
            let s = |p: &str| v.pointer(p).and_then(Value::as_str).map(str::to_string);
            let mut sources = Vec::new();
            let mut one = |ptr: &str| {
                if let Some(src) = v.pointer(ptr) {
                    let g = |k: &str| src.get(k).and_then(Value::as_str).map(str::to_string);
                    let line = if doc.has_pointer(&format!("{ptr}/path")) {
                        doc.line_of(&format!("{ptr}/path"))
                    } else {
                        doc.line_of(ptr)
                    };
                    sources.push(ArgoSource {
                        repo_url: g("repoURL"),
                        path: g("path"),
                        chart: g("chart"),
                        target_revision: g("targetRevision"),
                        line,
                    });
                }
            };
            one("/spec/source");
            let n = v.pointer("/spec/sources").and_then(Value::as_array).map_or(0, Vec::len);
            for i in 0..n {
                one(&format!("/spec/sources/{i}"));
            }
            out.push(ArgoApp {
                name: s("/metadata/name").unwrap_or_default(),
                namespace: s("/metadata/namespace"),
                project: s("/spec/project"),
                file: path.clone(),
                line: doc.line,
                sources,
                destination_server: s("/spec/destination/server"),
                destination_name: s("/spec/destination/name"),
                destination_namespace: s("/spec/destination/namespace"),
                automated: v.pointer("/spec/syncPolicy/automated").is_some_and(|a| !a.is_null()),
            });
        }
    }
    Ok(out)
}

/// Normalizes a git URL so that `https://github.com/acme/platform.git`,
/// `git@github.com:acme/platform` and `ssh://git@github.com/acme/platform/` compare equal.
pub fn normalize_repo_url(url: &str) -> String {
    let mut u = url.trim().to_string();
    if let Some(i) = u.find("://") {
        u = u[i + 3..].to_string();
    } else if let Some(rest) = u.strip_prefix("git@") {
        u = rest.replacen(':', "/", 1);
    }
    if let Some(i) = u.find('@')
        && u[..i].find('/').is_none()
    {
        u = u[i + 1..].to_string();
    }
    let u = u.trim_end_matches('/');
    let u = u.strip_suffix(".git").unwrap_or(u);
    u.to_lowercase()
}

/// The source to render: the Application's `spec.source`, or the first of `spec.sources`
/// with a path.
pub fn source(app: &Value) -> Option<&Value> {
    app.pointer("/spec/source").filter(|s| !s.is_null()).or_else(|| {
        app.pointer("/spec/sources").and_then(Value::as_array).and_then(|s| s.iter().find(|x| x.get("path").is_some()))
    })
}

/// The Applications of one environment in the layout `argocd/<env>/<app>.yaml`: the app
/// names, sorted (none when the directory is missing).
pub fn app_files(root: &std::path::Path, env: &str) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(root.join("argocd").join(env)) else { return Vec::new() };
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.strip_suffix(".yaml")).map(str::to_string))
        .collect();
    names.sort();
    names
}

#[cfg(test)]
mod tests {
    use super::normalize_repo_url as n;

    #[test]
    fn urls_compare() {
        let a = n("https://github.com/acme/platform.git");
        assert_eq!(a, "github.com/acme/platform");
        assert_eq!(n("git@github.com:acme/platform"), a);
        assert_eq!(n("ssh://git@github.com/acme/platform/"), a);
        assert_eq!(n("https://user@GitHub.com/acme/platform"), a);
        assert_ne!(n("https://github.com/acme/other"), a);
    }
}
