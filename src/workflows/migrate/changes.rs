//! The overlay changes each environment needs, as edits a reviewer can paste and agentops
//! can apply: a patch file in the overlay (a container env var, a plain ConfigMap's value and
//! the pod-template annotation that restarts its readers, a Service's externalName), a
//! literal added to the overlay's existing `configMapGenerator` entry (never a second
//! `configMapGenerator:` block, whose duplicate key would drop the first), or a new merge
//! entry. [`check`] applies every edit to a scratch copy of the repo, builds each touched
//! overlay with the real kustomize and compares it with the build before: only the settings
//! meant to change may change.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::graph::Graph;
use super::scan::{Finding, FindingKind, Scan};
use crate::error::{Error, Result};
use crate::kustomize::Engine;
use crate::repo::Repo;

/// The pod-template annotation that makes a workload restart when a plain ConfigMap it reads
/// changes (a plain ConfigMap's change alone restarts nothing).
pub const RESTART_ANNOTATION: &str = "agentops.dev/migration";

/// One edit of one file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "op", rename_all = "kebab-case")]
pub enum EditOp {
    /// A new file.
    NewFile { content: String },
    /// Lines inserted after a line (1-based) of the file as it is.
    Insert { after_line: u32, text: String },
    /// Lines added at the end of the file.
    Append { text: String },
    /// `- path: FILE` added to the kustomization's `patches:` (created when missing).
    PatchEntry { path: String },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Edit {
    /// Repo-relative file.
    pub file: String,
    #[serde(flatten)]
    pub op: EditOp,
    /// What it does, in words.
    pub what: String,
}

/// The changes of one service in one environment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ProposedChange {
    pub env: String,
    pub app: String,
    pub overlay: String,
    pub edits: Vec<Edit>,
    /// The settings it changes: `ConfigMap orders-config REDIS_HOST`.
    pub settings: Vec<String>,
    /// How the pods pick the change up.
    pub restart: String,
    /// What it needs by hand.
    pub by_hand: Vec<String>,
}

/// What applying every proposed change to a scratch copy showed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Check {
    /// Overlays the changes touch.
    pub overlays: usize,
    /// Of those, how many build after the changes.
    pub built: usize,
    /// What went wrong: a build failing, something changing that should not.
    pub problems: Vec<String>,
    /// What changed in the rendered output, by kind of change (`ConfigMap data REDIS_HOST`).
    pub changed: Vec<String>,
}

impl Check {
    pub fn passed(&self) -> bool {
        self.problems.is_empty() && self.built == self.overlays
    }
}

/// Replaces the dependency's host in a value with a placeholder for the new endpoint.
pub fn replace_host(graph: &Graph, value: &str, env: &str, field: &str) -> String {
    let hosty = ["host", "addr", "address", "endpoint", "server", "url", "uri", "externalname"]
        .iter()
        .any(|w| field.to_ascii_lowercase().contains(w));
    let placeholder = endpoint(graph, env);
    let mut out = String::new();
    let mut token = String::new();
    let flush = |token: &mut String, out: &mut String| {
        let labels: Vec<&str> = token.split('.').collect();
        let is_dep = graph.dependency.services.iter().any(|s| s.eq_ignore_ascii_case(labels[0]))
            && match labels.get(1) {
                None => hosty,
                Some(ns) => {
                    graph.dependency.namespaces.is_empty() || graph.dependency.namespaces.iter().any(|n| n == ns)
                }
            };
        if is_dep && !token.is_empty() {
            out.push_str(&placeholder);
        } else {
            out.push_str(token);
        }
        token.clear();
    };
    let mut chars = value.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
            token.push(c);
        } else {
            // keep a URL scheme (redis://) as it is
            if c == ':' && chars.peek() == Some(&'/') {
                out.push_str(&token);
                token.clear();
            } else {
                flush(&mut token, &mut out);
            }
            out.push(c);
        }
    }
    flush(&mut token, &mut out);
    out
}

/// The placeholder for an environment's new endpoint.
pub fn endpoint(graph: &Graph, env: &str) -> String {
    format!("{}-endpoint-{env}", graph.to)
}

pub fn yaml_str(v: &str) -> String {
    if v.chars().all(|c| c.is_ascii_alphanumeric() || "-_./=".contains(c)) && !v.is_empty() {
        v.to_string()
    } else {
        format!("\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\""))
    }
}

fn api_version(kind: &str) -> &'static str {
    match kind {
        "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet" => "apps/v1",
        "CronJob" | "Job" => "batch/v1",
        _ => "v1",
    }
}

/// The generated name without kustomize's hash suffix.
fn base_name(rendered: &str) -> &str {
    match rendered.rsplit_once('-') {
        Some((b, h)) if h.len() == 10 && h.chars().all(|c| c.is_ascii_alphanumeric()) => b,
        _ => rendered,
    }
}

/// How to add a literal to generator `g` in an overlay's kustomization: after the last
/// literal of its existing entry, under the entry's name when it has no literals, as a new
/// merge entry in the existing `configMapGenerator:` list, or as a new list at the end.
fn generator_edit(repo: &Repo, overlay: &str, g: &str, literal: &str) -> Option<Edit> {
    let k = repo.kustomizations.get(overlay)?;
    let text = crate::config::limits::read_text(&repo.abs(&k.file), repo.config.limits.file_bytes).ok()?;
    let lines: Vec<&str> = text.lines().collect();
    let doc = repo.docs(&k.file).first()?;
    let indent_of = |line: u32| -> usize {
        lines.get(line.saturating_sub(1) as usize).map_or(0, |l| l.len() - l.trim_start().len())
    };
    let item = format!("- {}", yaml_str(literal));
    if let Some(Value::Array(entries)) = doc.value.get("configMapGenerator") {
        if let Some(i) = entries.iter().position(|e| e.get("name").and_then(Value::as_str) == Some(g)) {
            let lits = entries[i].get("literals").and_then(Value::as_array).map_or(0, Vec::len);
            if lits > 0 {
                let last = doc.line_of(&format!("/configMapGenerator/{i}/literals/{}", lits - 1));
                let pad = " ".repeat(indent_of(last));
                return Some(Edit {
                    file: k.file.clone(),
                    op: EditOp::Insert { after_line: last, text: format!("{pad}{item}\n") },
                    what: format!(
                        "add `{literal}` after the last literal of the existing configMapGenerator entry {g} (after line {last})"
                    ),
                });
            }
            let name_line = doc.line_of(&format!("/configMapGenerator/{i}/name"));
            let pad = " ".repeat(indent_of(name_line));
            return Some(Edit {
                file: k.file.clone(),
                op: EditOp::Insert { after_line: name_line, text: format!("{pad}literals:\n{pad}  {item}\n") },
                what: format!("add literals with `{literal}` to the existing configMapGenerator entry {g}"),
            });
        }
        let first = doc.line_of("/configMapGenerator/0");
        let pad = " ".repeat(indent_of(first));
        let start = doc.line_of("/configMapGenerator");
        return Some(Edit {
            file: k.file.clone(),
            op: EditOp::Insert {
                after_line: start,
                text: format!("{pad}- name: {g}\n{pad}  behavior: merge\n{pad}  literals:\n{pad}    {item}\n"),
            },
            what: format!("add a merge entry for {g} with `{literal}` to the existing configMapGenerator list"),
        });
    }
    Some(Edit {
        file: k.file.clone(),
        op: EditOp::Append {
            text: format!("configMapGenerator:\n  - name: {g}\n    behavior: merge\n    literals:\n      {item}\n"),
        },
        what: format!("add a configMapGenerator with a merge entry for {g}: `{literal}`"),
    })
}

/// The overlay changes, one per (environment, service), in promotion order.
pub fn proposed(repo: Option<&Repo>, scan: &Scan, graph: &Graph) -> Vec<ProposedChange> {
    let mut grouped: BTreeMap<(usize, String, String), Vec<&Finding>> = BTreeMap::new();
    let order = super::plan::promotion_order(&scan.envs);
    for f in &scan.findings {
        if Some(&f.app) == scan.dependency.app.as_ref() {
            continue;
        }
        let rank = order.iter().position(|e| e == &f.env).unwrap_or(usize::MAX);
        grouped.entry((rank, f.env.clone(), f.app.clone())).or_default().push(f);
    }
    let slug = format!("{}-to-{}", graph.dependency.name, graph.to);
    let mut out = Vec::new();
    for ((_, env, app), fs) in grouped {
        if fs.iter().all(|f| f.kind.observes()) {
            continue;
        }
        let overlay = repo
            .and_then(|r| r.apps.get(&app))
            .and_then(|a| a.overlays.get(&env).cloned())
            .unwrap_or_else(|| format!("apps/{app}/overlays/{env}"));
        let kfile = repo
            .and_then(|r| r.kustomizations.get(&overlay))
            .map(|k| k.file.clone())
            .unwrap_or_else(|| format!("{overlay}/kustomization.yaml"));
        let mut docs: Vec<String> = Vec::new();
        let mut edits: Vec<Edit> = Vec::new();
        let mut settings: Vec<String> = Vec::new();
        let mut by_hand: Vec<String> = Vec::new();
        let mut env_vars: BTreeMap<(String, String, String), Vec<String>> = BTreeMap::new();
        let mut plain_maps: BTreeSet<String> = BTreeSet::new();
        let mut generated = false;
        let mut seen = BTreeSet::new();
        for f in &fs {
            if !seen.insert((f.kind, f.object.clone(), f.field.clone(), f.container.clone())) {
                continue;
            }
            let (kind, name) = f.object.split_once('/').unwrap_or(("", &f.object));
            let new = f.value.as_deref().map(|v| replace_host(graph, v, &env, &f.field));
            let changed = new.as_deref() != f.value.as_deref();
            match (f.kind, new) {
                (FindingKind::ConfigMapValue, Some(v)) if changed => match &f.generator {
                    Some(g) => {
                        let lit = format!("{}={v}", f.field);
                        match repo.and_then(|r| generator_edit(r, &overlay, g, &lit)) {
                            Some(e) => edits.push(e),
                            None => by_hand.push(format!("set {lit} in the configMapGenerator {g} of {overlay}")),
                        }
                        settings.push(format!("ConfigMap {g} {}", f.field));
                        generated = true;
                    }
                    None => {
                        docs.push(format!(
                            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\ndata:\n  {}: {}\n",
                            f.field,
                            yaml_str(&v)
                        ));
                        settings.push(format!("ConfigMap {name} {}", f.field));
                        plain_maps.insert(name.to_string());
                    }
                },
                (FindingKind::ContainerEnv, Some(v)) if changed && !matches!(f.field.as_str(), "args" | "command") => {
                    let key = (kind.to_string(), name.to_string(), f.container.clone().unwrap_or_default());
                    env_vars.entry(key).or_default().push(format!(
                        "            - name: {}\n              value: {}\n",
                        f.field,
                        yaml_str(&v)
                    ));
                    settings.push(format!("{kind} {name} env {}", f.field));
                }
                (FindingKind::ContainerEnv, Some(_)) if changed => by_hand.push(format!(
                    "{}: the container {} of {} names {} in its {}",
                    f.file,
                    f.container.as_deref().unwrap_or("?"),
                    f.object,
                    graph.dependency.name,
                    f.field
                )),
                (FindingKind::Service, Some(v)) if changed && f.field == "externalName" => {
                    docs.push(format!(
                        "apiVersion: v1\nkind: Service\nmetadata:\n  name: {name}\nspec:\n  externalName: {}\n",
                        yaml_str(&v)
                    ));
                    settings.push(format!("Service {name} externalName"));
                }
                (FindingKind::HelmValues, Some(v)) if changed => {
                    by_hand.push(format!("in {} set {} to {v}", f.file, f.field))
                }
                (FindingKind::NetworkPolicy, _) => by_hand.push(format!(
                    "{}: add an egress rule to {}'s subnet on its port; keep {} until cleanup",
                    f.object, graph.to, f.field
                )),
                (FindingKind::Endpoints, _) | (FindingKind::Service, _) => by_hand.push(format!(
                    "{}: point it at the {} endpoint, or remove it when clients use the new host directly",
                    f.object, graph.to
                )),
                (FindingKind::SecretKey, _) => by_hand.push(format!(
                    "{}: key {} gets the {} credential from the secret store (values are not shown)",
                    f.object, f.field, graph.to
                )),
                _ => {}
            }
        }
        for ((kind, name, container), vars) in env_vars {
            docs.push(format!(
                "apiVersion: {}\nkind: {kind}\nmetadata:\n  name: {name}\nspec:\n  template:\n    spec:\n      containers:\n        - name: {container}\n          env:\n{}",
                api_version(&kind),
                vars.concat()
            ));
        }
        // a plain ConfigMap's change restarts nothing: its readers get a pod-template bump
        let mut readers: BTreeSet<(String, String)> = BTreeSet::new();
        for f in fs.iter().filter(|f| f.kind == FindingKind::ContainerEnvFrom) {
            let read = f.field.split_once(' ').map(|x| base_name(x.1)).unwrap_or_default();
            if plain_maps.contains(read)
                && let Some((kind, name)) = f.object.split_once('/')
            {
                readers.insert((kind.to_string(), name.to_string()));
            }
        }
        for (kind, name) in &readers {
            docs.push(format!(
                "apiVersion: {}\nkind: {kind}\nmetadata:\n  name: {name}\nspec:\n  template:\n    metadata:\n      annotations:\n        {RESTART_ANNOTATION}: {slug}\n",
                api_version(kind)
            ));
        }
        let restart = if !readers.is_empty() {
            let who: Vec<String> = readers.iter().map(|(k, n)| format!("{k} {n}")).collect();
            format!(
                "a plain ConfigMap changes, which restarts nothing by itself: the patch also sets the pod-template annotation {RESTART_ANNOTATION} on {}, so it rolls out",
                who.join(", ")
            )
        } else if generated {
            "the generated ConfigMap gets a new name hash, so its readers roll out".to_string()
        } else if settings.iter().any(|s| s.contains(" env ")) {
            "the pod template changes, so the workload rolls out".to_string()
        } else if settings.iter().any(|s| s.ends_with(" externalName")) {
            "none: clients resolve the Service's new name (mind their DNS caching)".to_string()
        } else {
            String::new()
        };
        let file = format!("{overlay}/migrate-to-{}.yaml", graph.to);
        if !docs.is_empty() {
            edits.push(Edit {
                file: file.clone(),
                op: EditOp::NewFile { content: docs.join("---\n") },
                what: "a new patch file in the overlay".into(),
            });
            let rel = file.rsplit('/').next().unwrap_or(&file).to_string();
            edits.push(Edit {
                file: kfile.clone(),
                op: EditOp::PatchEntry { path: rel.clone() },
                what: format!("list {rel} under patches:"),
            });
        }
        if edits.is_empty() && by_hand.is_empty() {
            continue;
        }
        out.push(ProposedChange { env, app, overlay, edits, settings, restart, by_hand });
    }
    out
}

/// A file's text with its edits applied: inserts from the bottom up (their lines are those
/// of the file as it is), then patch entries and appends.
pub fn apply_to_text(text: &str, edits: &[&Edit]) -> String {
    let mut lines: Vec<String> = text.split_inclusive('\n').map(str::to_string).collect();
    if let Some(l) = lines.last_mut()
        && !l.ends_with('\n')
    {
        l.push('\n');
    }
    let mut inserts: Vec<(u32, &str)> = edits
        .iter()
        .filter_map(|e| match &e.op {
            EditOp::Insert { after_line, text } => Some((*after_line, text.as_str())),
            _ => None,
        })
        .collect();
    inserts.sort_by_key(|e| std::cmp::Reverse(e.0));
    for (after, t) in inserts {
        let at = (after as usize).min(lines.len());
        lines.insert(at, t.to_string());
    }
    let mut out: String = lines.concat();
    for e in edits {
        match &e.op {
            EditOp::PatchEntry { path } => out = crate::workflows::capture::add_patch_entry(&out, path),
            EditOp::Append { text } => {
                if !out.ends_with('\n') && !out.is_empty() {
                    out.push('\n');
                }
                out.push_str(text);
            }
            _ => {}
        }
    }
    out
}

/// Copies the repo's files (not `.git` or `.agentops`) into `to`.
fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    for entry in walkdir::WalkDir::new(from)
        .into_iter()
        .filter_entry(|e| e.file_name() != ".git" && e.file_name() != ".agentops")
    {
        let entry = entry.map_err(|e| Error::Internal(e.to_string()))?;
        let rel = entry.path().strip_prefix(from).map_err(|e| Error::Internal(e.to_string()))?;
        let dst = to.join(rel);
        if entry.file_type().is_dir() {
            std::fs::create_dir_all(&dst).map_err(|e| Error::io(&dst, e))?;
        } else if entry.file_type().is_file() {
            std::fs::copy(entry.path(), &dst).map_err(|e| Error::io(entry.path(), e))?;
        }
    }
    Ok(())
}

/// Applies every proposed change to a scratch copy of the repo, builds each touched overlay
/// with the real kustomize and compares it with its build before: a build must not fail,
/// and only the settings the changes name (and the restart annotation) may change.
pub fn check(repo: &Repo, engine: &Engine, changes: &[ProposedChange]) -> Result<Check> {
    let scratch = tempfile::Builder::new()
        .prefix("agentops-migrate-")
        .tempdir()
        .map_err(|e| Error::io(&std::env::temp_dir(), e))?;
    copy_tree(&repo.root, scratch.path())?;
    let mut by_file: BTreeMap<&str, Vec<&Edit>> = BTreeMap::new();
    for e in changes.iter().flat_map(|c| c.edits.iter()) {
        by_file.entry(e.file.as_str()).or_default().push(e);
    }
    for (file, edits) in &by_file {
        let path = scratch.path().join(file);
        let text = match edits.iter().find_map(|e| match &e.op {
            EditOp::NewFile { content } => Some(content.clone()),
            _ => None,
        }) {
            Some(new) => new,
            None => apply_to_text(&crate::config::limits::read_text(&path, repo.config.limits.file_bytes)?, edits),
        };
        if let Some(p) = path.parent() {
            std::fs::create_dir_all(p).map_err(|e| Error::io(p, e))?;
        }
        std::fs::write(&path, text).map_err(|e| Error::io(&path, e))?;
    }
    let after = Repo::load_with(scratch.path(), repo.config.clone())?;
    let overlays: BTreeSet<&str> = changes.iter().filter(|c| !c.edits.is_empty()).map(|c| c.overlay.as_str()).collect();
    // what may change: the keys the changes name, and the restart annotation
    let keys: BTreeSet<String> = changes
        .iter()
        .flat_map(|c| c.settings.iter().filter_map(|s| s.rsplit(' ').next().map(str::to_string)))
        .chain([RESTART_ANNOTATION.to_string(), "externalName".to_string()])
        .collect();
    let mut result = Check { overlays: overlays.len(), ..Check::default() };
    let mut changed: BTreeSet<String> = BTreeSet::new();
    for dir in overlays {
        let before = crate::workflows::commit::draft::render(repo, engine, dir);
        let now = crate::workflows::commit::draft::render(&after, engine, dir);
        let (before, now) = match (before, now) {
            (Ok(b), Ok(n)) => (b, n),
            (_, Err(e)) => {
                result.problems.push(format!("{dir} does not build: {}", e.lines().next().unwrap_or_default()));
                continue;
            }
            (Err(_), Ok(_)) => continue,
        };
        result.built += 1;
        let id = |o: &Value| {
            let s = |p: &str| o.pointer(p).and_then(Value::as_str).unwrap_or_default().to_string();
            (s("/kind"), s("/metadata/namespace"), s("/metadata/name"))
        };
        let b: BTreeMap<_, &Value> = before.iter().map(|o| (id(o), o)).collect();
        let n: BTreeMap<_, &Value> = now.iter().map(|o| (id(o), o)).collect();
        for (k, old) in &b {
            let Some(new) = n.get(k) else {
                result.problems.push(format!("{dir}: {}/{} is no longer rendered", k.0, k.2));
                continue;
            };
            for c in crate::k8s::diff::diff(old, new) {
                let env_name = c.to.as_ref().and_then(|v| v.get("name")).and_then(Value::as_str);
                let named = keys
                    .iter()
                    .find(|key| {
                        c.path.ends_with(&format!(".{key}"))
                            || c.path.contains(&format!("[{key}]"))
                            || c.path.contains(&format!("={key}]"))
                    })
                    .map(String::as_str)
                    .or(env_name.filter(|n| keys.contains(*n)));
                match named {
                    Some(key) => {
                        changed.insert(format!("{} {key}", k.0));
                    }
                    None => result.problems.push(format!("{dir}: {}/{} {} changed too", k.0, k.2, c.path)),
                }
            }
        }
        for k in n.keys().filter(|k| !b.contains_key(*k)) {
            result.problems.push(format!("{dir}: {}/{} appears", k.0, k.2));
        }
    }
    result.changed = changed.into_iter().collect();
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edits_apply_from_the_bottom_up_then_entries() {
        let text = "a: 1\nconfigMapGenerator:\n  - name: x\n    literals:\n      - A=1\n";
        let lit = Edit {
            file: "k".into(),
            op: EditOp::Insert { after_line: 5, text: "      - B=2\n".into() },
            what: String::new(),
        };
        let entry = Edit { file: "k".into(), op: EditOp::PatchEntry { path: "p.yaml".into() }, what: String::new() };
        assert_eq!(
            apply_to_text(text, &[&entry, &lit]),
            "a: 1\nconfigMapGenerator:\n  - name: x\n    literals:\n      - A=1\n      - B=2\npatches:\n  - path: p.yaml\n"
        );
    }

    #[test]
    fn quoting_only_where_yaml_needs_it() {
        assert_eq!(yaml_str("REDIS_HOST=elasticache-endpoint-dev"), "REDIS_HOST=elasticache-endpoint-dev");
        assert_eq!(yaml_str("elasticache-endpoint-dev"), "elasticache-endpoint-dev");
        assert_eq!(yaml_str("a b"), "\"a b\"");
    }
}
