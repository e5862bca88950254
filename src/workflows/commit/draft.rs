//! The commit message drafter: the change (the index, or HEAD plus some working-tree paths)
//! is described by what it does to the rendered fleet. Both sides are written to temporary
//! directories, every leaf overlay whose inputs changed is built on each side with the one
//! engine (its cache makes the unchanged side cheap), objects are compared with the semantic
//! diff, and the affected overlays of the new side are validated. The result is a structured
//! summary and a deterministic Conventional Commits message.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use rayon::prelude::*;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::config::Severity;
use crate::error::{Error, Result};
use crate::git::{self, Checkout, FileChange, Snapshot};
use crate::k8s::diff::{self, Change, Op};
use crate::k8s::fields::PathElem;
use crate::k8s::redact::Redactor;
use crate::kustomize::Engine;
use crate::repo::{Leaf, Repo};
use crate::workflows::validate::{self, ValidationReport};

/// The longest subject line, type and scope included.
pub const MAX_SUBJECT: usize = 72;
/// Body lines are wrapped at this width.
const WRAP: usize = 72;

/// What the caller knows that the change does not say.
#[derive(Debug, Clone, Default)]
pub struct DraftOptions {
    /// Why: a paragraph of the body.
    pub reason: Option<String>,
    /// `Refs:` trailers.
    pub refs: Vec<String>,
    /// The Conventional Commits type, instead of the inferred one.
    pub type_: Option<String>,
    /// The scope, instead of the inferred one.
    pub scope: Option<String>,
    /// The subject (after `type(scope): `), instead of the drafted one.
    pub subject: Option<String>,
    /// Extra body lines, after the reason (e.g. what a workflow covered).
    pub extra: Vec<String>,
    /// A workflow's own account of its change (create, harmonize): these lines replace the
    /// bullets drafted from the rendered objects and the file lists.
    pub body: Option<Vec<String>>,
    /// When set, the change is HEAD plus the working-tree content of these root-relative
    /// paths, not the index.
    pub paths: Option<Vec<String>>,
}

/// The key of a workflow's record, the JSON file beside a document it writes
/// (`docs/migrations/<date>-<slug>.json`): the record says, among the rest, what the commit
/// of the document is, so that committing it later by hand reads as the workflow wrote it.
pub const RECORD_KEY: &str = "agentops_record";

/// A workflow's own commit message: type, scope, subject and body lines.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct WorkflowCommit {
    #[serde(rename = "type")]
    pub type_: String,
    #[serde(default)]
    pub scope: Option<String>,
    pub subject: String,
    #[serde(default)]
    pub body: Vec<String>,
}

/// A workflow's commit as a message (its body lines wrapped at 72 columns).
pub fn workflow_message(c: &WorkflowCommit) -> String {
    let mut m = header(&c.type_, c.scope.as_deref(), &c.subject);
    if !c.body.is_empty() {
        m.push_str("\n\n");
        let lines: Vec<String> = c.body.iter().map(|l| wrap_line(l)).collect();
        m.push_str(&lines.join("\n"));
    }
    m.push('\n');
    m
}

/// What a record says about itself (`{"agentops_record": {...}}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RecordHeader {
    /// The workflow that wrote it, e.g. `migrate`.
    pub workflow: String,
    /// The document it belongs to (repo-relative).
    pub document: String,
    pub commit: WorkflowCommit,
}

/// Files of the change by category.
#[derive(Debug, Clone, Default, PartialEq, Serialize, JsonSchema)]
pub struct Files {
    pub changes: Vec<FileChange>,
    /// `*.md` and anything under `docs/`.
    pub docs: Vec<String>,
    /// `.github/`, `.gitlab-ci.yml`, `.ci/`.
    pub ci: Vec<String>,
    /// YAML (and JSON) files.
    pub manifests: Vec<String>,
    pub other: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum FactKind {
    ObjectsAdded,
    /// What a new workload runs: its image, volumes and size (body only: the subject and
    /// the type come from the objects added).
    Detail,
    ObjectsRemoved,
    Image,
    Replicas,
    Resources,
    /// A ConfigMap value or a container env var.
    Config,
    Annotation,
    Label,
    SecretKeys,
    Other,
}

/// One thing the change does to the rendered objects of one overlay.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, JsonSchema)]
pub struct Fact {
    pub kind: FactKind,
    /// `Kind/name` of the object (empty for facts about several objects).
    pub object: String,
    /// In words, old value included.
    pub text: String,
    /// In words without the old value: identical changes across environments that started
    /// from different values read the same.
    #[serde(skip)]
    pub group: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Added,
    Removed,
    Changed,
}

/// One overlay of an app.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct EnvChange {
    /// None for leaves outside the apps/environments layout.
    pub env: Option<String>,
    pub overlay: String,
    pub status: Status,
    pub facts: Vec<Fact>,
    /// A build failure on either side: facts could not be computed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub build_error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct AppChange {
    /// The app (or the leaf directory outside the layout).
    pub name: String,
    pub status: Status,
    /// The one namespace its objects use, if they use one.
    pub namespace: Option<String>,
    /// The one `app.kubernetes.io/part-of` label its objects carry, if they carry one.
    pub part_of: Option<String>,
    pub envs: Vec<EnvChange>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, JsonSchema)]
pub struct ValidationSummary {
    pub overlays: usize,
    pub built: usize,
    pub failed: usize,
    pub errors: usize,
    pub warnings: usize,
    /// Checks with errors.
    pub failing_checks: Vec<String>,
    /// The first errors, `file:line check: message`.
    pub first_errors: Vec<String>,
}

impl ValidationSummary {
    pub fn passed(&self) -> bool {
        self.errors == 0 && self.failed == 0
    }

    fn of(report: &ValidationReport) -> ValidationSummary {
        let errors: Vec<&validate::Finding> =
            report.findings.iter().filter(|f| f.severity == Severity::Error).collect();
        let failing: BTreeSet<String> = errors.iter().map(|f| f.check.clone()).collect();
        let first_errors = errors
            .iter()
            .take(5)
            .map(|f| {
                let at = match (&f.file, f.line) {
                    (Some(file), Some(l)) => format!("{file}:{l} "),
                    (Some(file), None) => format!("{file} "),
                    _ => String::new(),
                };
                format!("{at}{}: {}", f.check, f.message)
            })
            .collect();
        ValidationSummary {
            overlays: report.summary.overlays,
            built: report.summary.overlays_built,
            failed: report.summary.overlays_failed,
            errors: report.summary.errors,
            warnings: report.summary.warnings,
            failing_checks: failing.into_iter().collect(),
            first_errors,
        }
    }

    /// `kustomize build 15/15 overlays, checks passed`
    pub fn line(&self) -> String {
        let built = format!("kustomize build {}/{} overlays", self.built, self.overlays);
        if self.passed() {
            match self.warnings {
                0 => format!("{built}, checks passed"),
                1 => format!("{built}, checks passed (1 warning)"),
                n => format!("{built}, checks passed ({n} warnings)"),
            }
        } else {
            let n = self.errors.max(self.failed);
            let s = if n == 1 { "" } else { "s" };
            format!("{built}, {n} error{s} ({})", self.failing_checks.join(", "))
        }
    }
}

/// Everything the message is drafted from. Secret values never appear in it.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct CommitSummary {
    #[serde(rename = "type")]
    pub type_: String,
    pub scope: Option<String>,
    pub subject: String,
    pub files: Files,
    pub apps: Vec<AppChange>,
    /// Leaf overlays whose inputs changed (either side).
    pub overlays: Vec<String>,
    /// Of the changed overlays of the new side; None when no overlay is affected.
    pub validation: Option<ValidationSummary>,
    /// Manifests changed, but no rendered object did.
    pub rendered_identical: bool,
    pub reason: Option<String>,
    pub refs: Vec<String>,
}

impl CommitSummary {
    /// Every app and environment the summary names (the polish check keeps them all).
    pub fn names(&self) -> (Vec<String>, Vec<String>) {
        let apps = self.apps.iter().map(|a| a.name.clone()).collect();
        let mut envs: Vec<String> =
            self.apps.iter().flat_map(|a| a.envs.iter().filter_map(|e| e.env.clone())).collect();
        envs.sort();
        envs.dedup();
        (apps, envs)
    }
}

/// A drafted message and what it was drafted from.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct Drafted {
    pub message: String,
    pub summary: CommitSummary,
}

impl Drafted {
    /// Validation failed on an affected overlay.
    pub fn invalid(&self) -> bool {
        self.summary.validation.as_ref().is_some_and(|v| !v.passed())
    }
}

fn category(path: &str) -> &'static str {
    let name = path.rsplit('/').next().unwrap_or(path);
    if path.starts_with(".github/") || path.starts_with(".ci/") || name == ".gitlab-ci.yml" {
        "ci"
    } else if path.starts_with("docs/") || name.ends_with(".md") {
        "docs"
    } else if name.ends_with(".yaml") || name.ends_with(".yml") || name.ends_with(".json") || name == "Kustomization" {
        "manifests"
    } else {
        "other"
    }
}

fn files_of(changes: Vec<FileChange>) -> Files {
    let mut f = Files::default();
    let mut all: BTreeSet<String> = BTreeSet::new();
    for c in &changes {
        all.insert(c.path.clone());
        all.extend(c.old_path.clone());
    }
    for p in all {
        match category(&p) {
            "ci" => f.ci.push(p),
            "docs" => f.docs.push(p),
            "manifests" => f.manifests.push(p),
            _ => f.other.push(p),
        }
    }
    f.changes = changes;
    f
}

/// One side of the change written out and scanned, its secrets taught to the redactor.
pub(crate) fn side(
    git: &git2::Repository,
    snap: &Snapshot,
    origin: Option<&str>,
    redactor: &Redactor,
) -> Result<Checkout> {
    let side = Checkout::of_snapshot(git, snap, origin)?;
    crate::workflows::context::learn_repo_secrets(&side.repo, redactor);
    Ok(side)
}

/// Identity of an object for matching the two sides: API group, kind, namespace, name.
type Key = (String, String, String, String);

fn key_of(obj: &Value) -> Key {
    let s = |p: &str| obj.pointer(p).and_then(Value::as_str).unwrap_or_default().to_string();
    let api = s("/apiVersion");
    let group = api.rsplit_once('/').map(|(g, _)| g.to_string()).unwrap_or_default();
    (group, s("/kind"), s("/metadata/namespace"), s("/metadata/name"))
}

/// Generated ConfigMap/Secret names carry a content hash (`name-5h2k9g7b4m`): compare
/// them by the name without it, everywhere it is referenced, so a changed value reads as a
/// changed value and not as one object removed and another added.
fn strip_generated_names(objs: &mut [Value]) {
    let Some(re) = HASH_SUFFIX.as_ref() else { return };
    let mut names: BTreeMap<String, String> = BTreeMap::new();
    for o in objs.iter() {
        let kind = o.get("kind").and_then(Value::as_str).unwrap_or_default();
        if (kind == "ConfigMap" || kind == "Secret")
            && let Some(n) = o.pointer("/metadata/name").and_then(Value::as_str)
            && let Some(m) = re.captures(n)
        {
            names.insert(n.to_string(), m[1].to_string());
        }
    }
    if names.is_empty() {
        return;
    }
    fn walk(v: &mut Value, names: &BTreeMap<String, String>) {
        match v {
            Value::String(s) => {
                if let Some(n) = names.get(s.as_str()) {
                    *s = n.clone();
                }
            }
            Value::Array(a) => a.iter_mut().for_each(|x| walk(x, names)),
            Value::Object(m) => m.values_mut().for_each(|x| walk(x, names)),
            _ => {}
        }
    }
    objs.iter_mut().for_each(|o| walk(o, &names));
}

/// kustomize's hash alphabet: no vowels, no ambiguous characters.
static HASH_SUFFIX: std::sync::LazyLock<Option<regex::Regex>> =
    std::sync::LazyLock::new(|| regex::Regex::new(r"^(.+)-[bcdfghkmtz2-9]{10}$").ok());

/// A rendering of one leaf on one side: its objects, or kustomize's error.
type Rendered = std::result::Result<Vec<Value>, String>;

pub(crate) fn render(repo: &Repo, engine: &Engine, dir: &str) -> Rendered {
    let out = engine.build(repo, dir);
    if let Some(e) = out.error {
        return Err(e);
    }
    let objs = out.values().map_err(|e| e.to_string())?;
    let mut objs = validate::flatten_lists(objs);
    strip_generated_names(&mut objs);
    Ok(objs)
}

fn value_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn field(e: &PathElem) -> Option<&str> {
    match e {
        PathElem::Field(f) => Some(f),
        _ => None,
    }
}

/// The container a path is inside of, if any.
fn container_of(elems: &[PathElem]) -> Option<String> {
    elems.windows(2).find_map(|w| match (&w[0], &w[1]) {
        (PathElem::Field(f), PathElem::Key(k)) if f == "containers" || f == "initContainers" => {
            k.iter().find(|(n, _)| n == "name").map(|(_, v)| value_text(v))
        }
        _ => None,
    })
}

/// The env var a path is about (`...containers[name=c].env[name=V]...`), if any.
fn env_var(elems: &[PathElem]) -> Option<String> {
    elems.windows(2).find_map(|w| match (&w[0], &w[1]) {
        (PathElem::Field(f), PathElem::Key(k)) if f == "env" => {
            k.iter().find(|(n, _)| n == "name").map(|(_, v)| value_text(v))
        }
        _ => None,
    })
}

struct FactBuilder<'a> {
    app: &'a str,
    kind: &'a str,
    name: &'a str,
}

impl FactBuilder<'_> {
    fn object(&self) -> String {
        format!("{}/{}", self.kind, self.name)
    }

    /// The object in words: its kind, and its name unless it is the app's own name.
    fn who(&self) -> String {
        if self.name == self.app { self.kind.to_string() } else { format!("{} {}", self.kind, self.name) }
    }

    /// A fact `subject from -> to`, `subject{sep}to`, or `remove subject`, with `on` words.
    #[allow(clippy::too_many_arguments)]
    fn fact(
        &self,
        kind: FactKind,
        subject: &str,
        sep: &str,
        from: Option<String>,
        to: Option<String>,
        on: Option<String>,
    ) -> Fact {
        let (text, group) = match (&from, &to) {
            (Some(f), Some(t)) => {
                let on = on.as_ref().map(|o| format!(" on {o}")).unwrap_or_default();
                (format!("{subject} {f} -> {t}{on}"), format!("{subject}{sep}{t}{on}"))
            }
            (None, Some(t)) => {
                let on = on.as_ref().map(|o| format!(" on {o}")).unwrap_or_default();
                let s = format!("{subject}{sep}{t}{on}");
                (s.clone(), s)
            }
            _ => {
                let on = on.as_ref().map(|o| format!(" from {o}")).unwrap_or_default();
                let s = format!("remove {subject}{on}");
                (s.clone(), s)
            }
        };
        Fact { kind, object: self.object(), text, group, from, to }
    }

    /// A ConfigMap value or env var: `KEY old -> new in WHERE`, `KEY=new in WHERE`, or
    /// `remove KEY from WHERE`.
    fn config(&self, key: &str, from: Option<String>, to: Option<String>, on: String) -> Fact {
        let (text, group) = match (&from, &to) {
            (Some(f), Some(t)) => (format!("{key} {f} -> {t} in {on}"), format!("{key}={t} in {on}")),
            (None, Some(t)) => {
                let s = format!("{key}={t} in {on}");
                (s.clone(), s)
            }
            _ => {
                let s = format!("remove {key} from {on}");
                (s.clone(), s)
            }
        };
        Fact { kind: FactKind::Config, object: self.object(), text, group, from, to }
    }

    /// Facts of the changes of one object; Secret data only as key names.
    fn facts(&self, changes: &[Change]) -> Vec<Fact> {
        let mut out = Vec::new();
        let mut secret_keys: BTreeSet<String> = BTreeSet::new();
        let mut other: Vec<&Change> = Vec::new();
        for c in changes {
            let e = &c.elems;
            let f: Vec<&str> = e.iter().filter_map(field).collect();
            let from = c.from.as_ref().map(value_text);
            let to = c.to.as_ref().map(value_text);
            let last = f.last().copied().unwrap_or_default();
            let container = container_of(e);
            if self.kind == "Secret" && matches!(f.first(), Some(&"data") | Some(&"stringData")) {
                secret_keys.insert(f.get(1).copied().unwrap_or("?").to_string());
            } else if last == "image" && container.is_some() && matches!(e.last(), Some(PathElem::Field(_))) {
                let split = |i: &str| {
                    let r = crate::k8s::image::parse(i);
                    (r.name.to_string(), r.version())
                };
                let (fr, fv) = from.as_deref().map(split).unwrap_or_default();
                let (tr, tv) = to.as_deref().map(split).unwrap_or_default();
                if c.op == Op::Change && fr == tr {
                    out.push(self.fact(FactKind::Image, &format!("image {tr}"), " ", Some(fv), Some(tv), None));
                } else {
                    let subject = format!("image of container {}", container.unwrap_or_default());
                    out.push(self.fact(FactKind::Image, &subject, " ", from, to, None));
                }
            } else if self.kind == "ConfigMap" && f.len() == 2 && f[0] == "data" && e.len() == 2 {
                out.push(self.config(f[1], from, to, format!("ConfigMap {}", self.name)));
            } else if let (Some(c_name), Some(var)) = (&container, env_var(e)) {
                // a whole variable added or removed: its value
                let value = |v: Option<String>, raw: &Option<Value>| match raw {
                    Some(Value::Object(m)) => m.get("value").map(value_text),
                    _ => v,
                };
                let (from, to) = (value(from, &c.from), value(to, &c.to));
                let whole = matches!(e.last(), Some(PathElem::Key(_)));
                if whole || f.last() == Some(&"value") {
                    let on = if c_name == self.app { self.who() } else { format!("container {c_name}") };
                    out.push(self.config(&var, from, to, on));
                } else {
                    other.push(c);
                }
            } else if f == ["spec", "replicas"] {
                let subject =
                    if self.name == self.app { "replicas".to_string() } else { format!("{} replicas", self.name) };
                out.push(self.fact(FactKind::Replicas, &subject, " ", from, to, None));
            } else if let (Some(c_name), Some(i)) = (&container, f.iter().position(|x| *x == "resources")) {
                let what = f[i + 1..].join(".");
                let subject = if c_name == self.app { what } else { format!("{c_name} {what}") };
                out.push(self.fact(FactKind::Resources, &subject, " ", from, to, None));
            } else if f.len() == 3 && f[0] == "metadata" && (f[1] == "annotations" || f[1] == "labels") {
                let (kind, noun) = if f[1] == "annotations" {
                    (FactKind::Annotation, "annotation")
                } else {
                    (FactKind::Label, "label")
                };
                // by kind only: the same annotation on every Ingress reads as one change
                out.push(self.fact(kind, &format!("{noun} {}", f[2]), "=", from, to, Some(self.kind.to_string())));
            } else if f.len() >= 3
                && f[f.len() - 3..f.len() - 1] == ["metadata", "annotations"][..]
                && f.contains(&"template")
            {
                out.push(self.fact(
                    FactKind::Annotation,
                    &format!("pod annotation {last}"),
                    "=",
                    from,
                    to,
                    Some(self.kind.to_string()),
                ));
            } else {
                other.push(c);
            }
        }
        if !secret_keys.is_empty() {
            let keys = secret_keys.into_iter().collect::<Vec<_>>().join(", ");
            let s = format!("secret {} keys changed: {keys}", self.name);
            out.push(Fact {
                kind: FactKind::SecretKeys,
                object: self.object(),
                text: s.clone(),
                group: s,
                from: None,
                to: None,
            });
        }
        if other.len() > 3 {
            let s = format!("{}: {} fields changed", self.who(), other.len());
            out.push(Fact {
                kind: FactKind::Other,
                object: self.object(),
                text: s.clone(),
                group: s,
                from: None,
                to: None,
            });
        } else {
            for c in other {
                let words = c.summary.replace('→', "->");
                let words = match words.split_once(' ') {
                    Some(("+", rest)) => format!("add {rest}"),
                    Some(("-", rest)) => format!("remove {rest}"),
                    Some(("~", rest)) => format!("change {rest}"),
                    _ => words,
                };
                let s = format!("{}: {words}", self.who());
                out.push(Fact {
                    kind: FactKind::Other,
                    object: self.object(),
                    text: s.clone(),
                    group: s,
                    from: None,
                    to: None,
                });
            }
        }
        out
    }
}

/// Objects added or removed in one overlay, as one fact.
fn objects_fact(kind: FactKind, app: &str, objs: &[&Value]) -> Option<Fact> {
    if objs.is_empty() {
        return None;
    }
    let mut names: Vec<String> = objs
        .iter()
        .map(|o| {
            let k = o.get("kind").and_then(Value::as_str).unwrap_or("object");
            let n = o.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default();
            if n == app { k.to_string() } else { format!("{k} {n}") }
        })
        .collect();
    names.sort();
    let verb = if kind == FactKind::ObjectsAdded { "add" } else { "remove" };
    let s = format!("{verb} {}", names.join(", "));
    Some(Fact { kind, object: String::new(), text: s.clone(), group: s, from: None, to: None })
}

/// What a new workload runs: the image of each container, its size (replicas, requests
/// and limits of its main container) and the volumes each replica claims.
fn new_workload_details(app: &str, o: &Value) -> Vec<Fact> {
    let kind = o.get("kind").and_then(Value::as_str).unwrap_or_default();
    let name = o.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default();
    let spec = match kind {
        "Deployment" | "StatefulSet" | "DaemonSet" => "/spec/template/spec",
        "CronJob" => "/spec/jobTemplate/spec/template/spec",
        "PersistentVolumeClaim" => {
            let size = o.pointer("/spec/resources/requests/storage").map(value_text).unwrap_or_default();
            let class = o.pointer("/spec/storageClassName").and_then(Value::as_str);
            let text = format!("volume {name}: {size}, StorageClass {}", class.unwrap_or("the cluster's default"));
            return vec![detail(o, text)];
        }
        _ => return Vec::new(),
    };
    let who = if name == app { String::new() } else { format!("{name} ") };
    let mut out = Vec::new();
    let containers: &[Value] =
        o.pointer(&format!("{spec}/containers")).and_then(Value::as_array).map_or(&[], Vec::as_slice);
    for c in containers {
        if let Some(image) = c.get("image").and_then(Value::as_str) {
            out.push(detail(o, format!("{who}image {image}")));
        }
    }
    let main = containers.iter().find(|c| c.get("name").and_then(Value::as_str) == Some(name)).or(containers.first());
    let q = |c: &Value, p: &str| c.pointer(p).map(value_text).unwrap_or_else(|| "-".into());
    let mut size = Vec::new();
    if kind != "DaemonSet" && kind != "CronJob" {
        let n = o.pointer("/spec/replicas").and_then(Value::as_u64).unwrap_or(1);
        size.push(format!("{n} replica{}", if n == 1 { "" } else { "s" }));
    }
    if let Some(c) = main {
        for r in ["cpu", "memory"] {
            if c.pointer(&format!("/resources/requests/{r}")).is_some()
                || c.pointer(&format!("/resources/limits/{r}")).is_some()
            {
                size.push(format!(
                    "{r} {}/{}",
                    q(c, &format!("/resources/requests/{r}")),
                    q(c, &format!("/resources/limits/{r}"))
                ));
            }
        }
    }
    if !size.is_empty() {
        out.push(detail(o, format!("{who}size: {}", size.join(", "))));
    }
    for t in o.pointer("/spec/volumeClaimTemplates").and_then(Value::as_array).into_iter().flatten() {
        let vname = t.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("data");
        let size = t.pointer("/spec/resources/requests/storage").map(value_text).unwrap_or_default();
        let class = t.pointer("/spec/storageClassName").and_then(Value::as_str);
        out.push(detail(
            o,
            format!(
                "{who}volume {vname}: {size} per replica, StorageClass {}",
                class.unwrap_or("the cluster's default")
            ),
        ));
    }
    out
}

fn detail(o: &Value, text: String) -> Fact {
    let kind = o.get("kind").and_then(Value::as_str).unwrap_or_default();
    let name = o.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default();
    Fact { kind: FactKind::Detail, object: format!("{kind}/{name}"), group: text.clone(), text, from: None, to: None }
}

/// What changed between two renderings of one overlay.
fn overlay_facts(app: &str, before: &[Value], after: &[Value]) -> Vec<Fact> {
    let b: BTreeMap<Key, &Value> = before.iter().map(|o| (key_of(o), o)).collect();
    let a: BTreeMap<Key, &Value> = after.iter().map(|o| (key_of(o), o)).collect();
    let added: Vec<&Value> = a.iter().filter(|(k, _)| !b.contains_key(*k)).map(|x| *x.1).collect();
    let removed: Vec<&Value> = b.iter().filter(|(k, _)| !a.contains_key(*k)).map(|x| *x.1).collect();
    let mut facts: Vec<Fact> = Vec::new();
    facts.extend(objects_fact(FactKind::ObjectsAdded, app, &added));
    facts.extend(added.iter().flat_map(|o| new_workload_details(app, o)));
    facts.extend(objects_fact(FactKind::ObjectsRemoved, app, &removed));
    for (k, old) in &b {
        let Some(new) = a.get(k) else { continue };
        let changes = diff::diff(old, new);
        if changes.is_empty() {
            continue;
        }
        let fb = FactBuilder { app, kind: &k.1, name: &k.3 };
        facts.extend(fb.facts(&changes));
    }
    facts.sort();
    facts.dedup();
    facts
}

/// The one value all the objects share at `pointer`, if they share one.
fn shared<'a>(objs: impl Iterator<Item = &'a Value>, pointer: &str) -> Option<String> {
    let mut seen: BTreeSet<&str> = BTreeSet::new();
    for o in objs {
        seen.insert(o.pointer(pointer).and_then(Value::as_str)?);
    }
    (seen.len() == 1).then(|| seen.into_iter().next().unwrap_or_default().to_string())
}

/// Drafts the message for the change at `repo_root` (see [`DraftOptions::paths`]).
pub fn draft(
    repo_root: &Path,
    engine: &Engine,
    redactor: &Redactor,
    opts: &DraftOptions,
    jobs: usize,
) -> Result<Drafted> {
    let (git, prefix) = git::open(repo_root)?;
    let workdir = git.workdir().map(Path::to_path_buf).unwrap_or_default();
    let before = Snapshot::head(&git, &prefix)?;
    let (after, changes) = match &opts.paths {
        Some(paths) => {
            let after = before.with_disk_paths(&workdir, &prefix, paths)?;
            let changes = before.changes_to(&after);
            (after, changes)
        }
        None => (Snapshot::index(&git, &prefix)?, git::staged_change(repo_root)?.files),
    };
    if changes.is_empty() {
        return Err(Error::Usage(match &opts.paths {
            Some(_) => "the given paths do not change anything against HEAD".into(),
            None => "nothing is staged: `git add` the changes to describe and commit".into(),
        }));
    }
    let files = files_of(changes);
    // a workflow's document with its record: the workflow's own account
    if files.manifests.is_empty()
        && files.other.is_empty()
        && let Some(record) = record_of(&git, &after, &files)
    {
        let inferred = Inferred {
            type_: record.commit.type_.clone(),
            scope: record.commit.scope.clone(),
            subject: vec![record.commit.subject.clone()],
        };
        let opts = DraftOptions { body: opts.body.clone().or(Some(record.commit.body.clone())), ..opts.clone() };
        return Ok(finish(&opts, inferred, files, Effect::default(), redactor));
    }
    let effect = if files.manifests.is_empty() && files.other.is_empty() {
        // docs and CI only: nothing renders differently
        Effect::default()
    } else {
        let origin = if prefix.is_empty() {
            git.find_remote("origin").ok().and_then(|r| r.url().ok().map(str::to_string))
        } else {
            None
        };
        let old = side(&git, &before, origin.as_deref(), redactor)?;
        let new = side(&git, &after, origin.as_deref(), redactor)?;
        rendered_effect(&old.repo, &new.repo, &files, engine, redactor, jobs)?
    };
    let why = format!("{} {}", opts.reason.as_deref().unwrap_or_default(), opts.refs.join(" "));
    let inferred = infer(&effect, &files, &why);
    Ok(finish(opts, inferred, files, effect, redactor))
}

/// The record of a workflow document added or changed with it, when the change holds one.
fn record_of(git: &git2::Repository, after: &Snapshot, files: &Files) -> Option<RecordHeader> {
    let changed: BTreeSet<&str> = files.changes.iter().map(|c| c.path.as_str()).collect();
    files.docs.iter().filter(|p| p.ends_with(".json") && changed.contains(p.as_str())).find_map(|p| {
        let bytes = after.read(git, p)?;
        let v: Value = serde_json::from_slice(&bytes).ok()?;
        let header: RecordHeader = serde_json::from_value(v.get(RECORD_KEY)?.clone()).ok()?;
        changed.contains(header.document.as_str()).then_some(header)
    })
}

/// What the change does to the rendered objects, and the validation of the new side.
#[derive(Debug, Default)]
struct Effect {
    apps: Vec<AppChange>,
    overlays: Vec<String>,
    validation: Option<ValidationSummary>,
    /// Manifests changed, no rendered object did.
    rendered_identical: bool,
    /// Every changed manifest parses to the same values (whitespace, comments).
    same_values: bool,
    /// Changed manifests no affected overlay reaches (Argo CD Applications and the like),
    /// described by what they hold.
    loose: Vec<String>,
    env_order: Vec<String>,
}

fn rendered_effect(
    old: &Repo,
    new: &Repo,
    files: &Files,
    engine: &Engine,
    redactor: &Redactor,
    jobs: usize,
) -> Result<Effect> {
    let changed: BTreeSet<String> =
        files.changes.iter().flat_map(|c| std::iter::once(c.path.clone()).chain(c.old_path.clone())).collect();
    let mut env_order = new.environments.clone();
    for e in &old.environments {
        if !env_order.contains(e) {
            env_order.push(e.clone());
        }
    }
    let touched = |r: &Repo, l: &Leaf| r.closure(&l.dir).files.iter().any(|f| changed.contains(f));
    let mut leaves: BTreeMap<String, (Option<&Leaf>, Option<&Leaf>)> = BTreeMap::new();
    for l in old.leaves.iter().filter(|l| touched(old, l)) {
        leaves.entry(l.dir.clone()).or_default().0 = Some(l);
    }
    for l in new.leaves.iter().filter(|l| touched(new, l)) {
        leaves.entry(l.dir.clone()).or_default().1 = Some(l);
    }
    // a touched leaf is compared with the other side's build even where that side does
    // not count it as touched (a file it no longer reaches)
    for (dir, pair) in leaves.iter_mut() {
        if pair.0.is_none() {
            pair.0 = old.leaves.iter().find(|l| &l.dir == dir);
        }
        if pair.1.is_none() {
            pair.1 = new.leaves.iter().find(|l| &l.dir == dir);
        }
    }
    let overlays: Vec<String> = leaves.keys().cloned().collect();
    let mut loose: Vec<String> = Vec::new();
    for m in &files.manifests {
        let reached = |r: &Repo| leaves.keys().any(|d| r.closure(d).files.contains(m));
        if !reached(old) && !reached(new) {
            loose.push(m.clone());
        }
    }
    let pool =
        rayon::ThreadPoolBuilder::new().num_threads(jobs.max(1)).build().map_err(|e| Error::Internal(e.to_string()))?;
    let jobs_list: Vec<(&String, bool)> = leaves
        .iter()
        .flat_map(|(d, (b, a))| [b.map(|_| (d, false)), a.map(|_| (d, true))].into_iter().flatten())
        .collect();
    let rendered: BTreeMap<(String, bool), Rendered> = pool.install(|| {
        jobs_list
            .par_iter()
            .map(|(d, is_new)| {
                let repo = if *is_new { new } else { old };
                (((*d).clone(), *is_new), render(repo, engine, d))
            })
            .collect()
    });
    for r in rendered.values().flatten() {
        r.iter().for_each(|o| redactor.learn_object(o));
    }
    let mut validation = None;
    let new_dirs: BTreeSet<String> = leaves.iter().filter(|(_, p)| p.1.is_some()).map(|(d, _)| d.clone()).collect();
    if !new_dirs.is_empty() {
        let report = validate::run_overlays(new, engine, redactor, &new_dirs, jobs)?;
        validation = Some(ValidationSummary::of(&report));
    }
    // per app
    let mut apps: Vec<AppChange> = Vec::new();
    let mut by_app: BTreeMap<String, Vec<EnvChange>> = BTreeMap::new();
    let mut app_objects: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for (dir, (b, a)) in &leaves {
        let leaf = a.or(*b).ok_or_else(|| Error::Internal(format!("{dir}: no side")))?;
        let app = leaf.app.clone().unwrap_or_else(|| dir.clone());
        let empty: Rendered = Ok(Vec::new());
        let rb = if b.is_some() { rendered.get(&(dir.clone(), false)).unwrap_or(&empty) } else { &empty };
        let ra = if a.is_some() { rendered.get(&(dir.clone(), true)).unwrap_or(&empty) } else { &empty };
        let status = match (b, a) {
            (None, Some(_)) => Status::Added,
            (Some(_), None) => Status::Removed,
            _ => Status::Changed,
        };
        let (facts, build_error) = match (rb, ra) {
            (Ok(x), Ok(y)) => (overlay_facts(&app, x, y), None),
            (Err(e), _) => (Vec::new(), Some(format!("before: {}", first_line(e)))),
            (_, Err(e)) => (Vec::new(), Some(format!("after: {}", first_line(e)))),
        };
        let objs = app_objects.entry(app.clone()).or_default();
        objs.extend(ra.iter().flatten().cloned());
        if a.is_none() {
            objs.extend(rb.iter().flatten().cloned());
        }
        by_app.entry(app).or_default().push(EnvChange {
            env: leaf.env.clone(),
            overlay: dir.clone(),
            status,
            facts,
            build_error,
        });
    }
    let pos = |e: &Option<String>| e.as_ref().and_then(|e| env_order.iter().position(|x| x == e));
    for (name, mut envs) in by_app {
        envs.sort_by(|x, y| {
            (pos(&x.env).unwrap_or(usize::MAX), &x.env).cmp(&(pos(&y.env).unwrap_or(usize::MAX), &y.env))
        });
        let status = if envs.iter().all(|e| e.status == Status::Added) {
            // an app is new when it had no overlay before at all
            if old.apps.get(&name).is_some_and(|a| !a.overlays.is_empty()) { Status::Changed } else { Status::Added }
        } else if envs.iter().all(|e| e.status == Status::Removed) && !new.apps.contains_key(&name) {
            Status::Removed
        } else {
            Status::Changed
        };
        let objs = app_objects.get(&name).map(Vec::as_slice).unwrap_or_default();
        let namespace =
            shared(objs.iter().filter(|o| o.pointer("/metadata/namespace").is_some()), "/metadata/namespace");
        let part_of = shared(objs.iter(), "/metadata/labels/app.kubernetes.io~1part-of");
        apps.push(AppChange { name, status, namespace, part_of, envs });
    }
    let no_facts = apps.iter().all(|a| a.envs.iter().all(|e| e.facts.is_empty() && e.build_error.is_none()));
    let rendered_identical = !files.manifests.is_empty() && no_facts;
    // whitespace or comments only: every changed manifest parses to the same values
    let same_values = files.manifests.iter().all(|m| {
        let docs = |r: &Repo| {
            r.files
                .get(m)
                .and_then(|f| f.docs.as_ref().ok())
                .map(|d| d.iter().map(|x| x.value.clone()).collect::<Vec<_>>())
        };
        matches!((docs(old), docs(new)), (Some(x), Some(y)) if x == y)
    });
    let loose = describe_loose(old, new, files, &loose, &env_order);
    Ok(Effect { apps, overlays, validation, rendered_identical, same_values, loose, env_order })
}

/// Manifests no affected overlay renders (Argo CD Applications and the like), by what they
/// hold rather than as a file list: `add Argo CD Application prometheus-{env} in dev, staging`.
fn describe_loose(old: &Repo, new: &Repo, files: &Files, loose: &[String], envs: &[String]) -> Vec<String> {
    type Group = Vec<(Option<String>, String)>;
    let mut groups: BTreeMap<(String, String), Group> = BTreeMap::new();
    for path in loose {
        let status = files.changes.iter().find(|c| &c.path == path).map(|c| c.status);
        let removed = status == Some(crate::git::FileStatus::Removed);
        let verb = match status {
            Some(crate::git::FileStatus::Added) => "add",
            Some(crate::git::FileStatus::Removed) => "remove",
            _ => "update",
        };
        let side = if removed { old } else { new };
        let env = path.split('/').find(|seg| envs.iter().any(|e| e == seg)).map(str::to_string);
        let docs: Vec<(String, String)> = side
            .files
            .get(path)
            .and_then(|f| f.docs.as_ref().ok())
            .into_iter()
            .flatten()
            .filter_map(|d| {
                let kind = d.value.get("kind").and_then(Value::as_str)?;
                let name = d.value.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default();
                let argo =
                    d.value.get("apiVersion").and_then(Value::as_str).is_some_and(|a| a.starts_with("argoproj.io/"));
                let label = if argo { format!("Argo CD {kind}") } else { kind.to_string() };
                let name = match &env {
                    Some(e) => name.replace(e.as_str(), "{env}"),
                    None => name.to_string(),
                };
                Some((label, name))
            })
            .collect();
        if docs.is_empty() {
            groups.entry((verb.to_string(), path.clone())).or_default().push((None, path.clone()));
        }
        for (label, name) in docs {
            groups.entry((verb.to_string(), format!("{label} {name}"))).or_default().push((env.clone(), path.clone()));
        }
    }
    let mut out = Vec::new();
    for ((verb, what), members) in groups {
        if members.iter().all(|(e, _)| e.is_some()) && what.contains("{env}") {
            let mut es: Vec<String> = members.iter().filter_map(|(e, _)| e.clone()).collect();
            es.sort_by_key(|e| envs.iter().position(|x| x == e));
            es.dedup();
            out.push(format!("{verb} {what} in {}", es.join(", ")));
        } else {
            let paths: Vec<&str> = members.iter().map(|(_, p)| p.as_str()).collect();
            if what == paths.join(", ") {
                out.push(format!("{verb} {what}"));
            } else {
                out.push(format!("{verb} {what} ({})", paths.join(", ")));
            }
        }
    }
    out
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or_default()
}

/// Type, scope and subject as inferred.
struct Inferred {
    type_: String,
    scope: Option<String>,
    subject: Vec<String>,
}

/// `a`, `a and b`, `a, b and c`
fn and_list(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

fn envs_words(envs: &[String]) -> String {
    match envs.len() {
        0 => String::new(),
        1 | 2 => and_list(envs),
        n => format!("{n} environments"),
    }
}

fn file_name(p: &str) -> String {
    p.rsplit('/').next().unwrap_or(p).to_string()
}

/// Candidate subjects, best first; the first that fits the line is used.
fn infer(effect: &Effect, files: &Files, reason: &str) -> Inferred {
    let (apps, rendered_identical, same_values) = (&effect.apps[..], effect.rendered_identical, effect.same_values);
    let only = |cat: &[String]| !cat.is_empty() && cat.len() == files_count(files);
    let files_subject = |noun: &str, list: &[String]| -> Vec<String> {
        // the verb says what happened to the files: all new, all gone, or changed
        let status = |p: &String| files.changes.iter().find(|c| &c.path == p).map(|c| c.status);
        let verb = if list.iter().all(|p| status(p) == Some(crate::git::FileStatus::Added)) {
            "add"
        } else if list.iter().all(|p| status(p) == Some(crate::git::FileStatus::Removed)) {
            "remove"
        } else {
            "update"
        };
        match list {
            [one] => vec![format!("{verb} {}", one), format!("{verb} {}", file_name(one))],
            l => vec![format!("{verb} {} {noun}", l.len())],
        }
    };
    if only(&files.docs) {
        return Inferred { type_: "docs".into(), scope: None, subject: files_subject("documents", &files.docs) };
    }
    if only(&files.ci) {
        return Inferred { type_: "ci".into(), scope: None, subject: files_subject("CI files", &files.ci) };
    }
    let names: Vec<String> = apps.iter().map(|a| a.name.clone()).collect();
    let scope = match apps {
        [] => None,
        [one] => Some(one.name.clone()),
        many => {
            let ns: Vec<&Option<String>> =
                many.iter().map(|a| &a.namespace).collect::<BTreeSet<_>>().into_iter().collect();
            let part: Vec<&Option<String>> =
                many.iter().map(|a| &a.part_of).collect::<BTreeSet<_>>().into_iter().collect();
            match (&ns[..], &part[..]) {
                ([Some(n)], _) => Some(n.clone()),
                (_, [Some(p)]) => Some(p.clone()),
                _ => None,
            }
        }
    };
    let facts: Vec<(&AppChange, &EnvChange, &Fact)> =
        apps.iter().flat_map(|a| a.envs.iter().flat_map(move |e| e.facts.iter().map(move |f| (a, e, f)))).collect();
    let mut fact_envs: Vec<String> = Vec::new();
    for (_, e, _) in &facts {
        if let Some(env) = &e.env
            && !fact_envs.contains(env)
        {
            fact_envs.push(env.clone());
        }
    }
    let apps_words = |list: &[String]| if list.len() <= 2 { and_list(list) } else { format!("{} apps", list.len()) };

    // new apps, new overlays
    let new_apps: Vec<&AppChange> = apps.iter().filter(|a| a.status == Status::Added).collect();
    if !new_apps.is_empty() {
        let list: Vec<String> = new_apps.iter().map(|a| a.name.clone()).collect();
        let mut envs: Vec<String> = Vec::new();
        for a in &new_apps {
            for e in a.envs.iter().filter_map(|e| e.env.clone()) {
                if !envs.contains(&e) {
                    envs.push(e);
                }
            }
        }
        let to = if envs.is_empty() { String::new() } else { format!(" to {}", envs_words(&envs)) };
        let subject = vec![
            format!("deploy {}{to}", and_list(&list)),
            format!("deploy {}{to}", apps_words(&list)),
            format!("add {}", apps_words(&list)),
        ];
        return Inferred { type_: "feat".into(), scope, subject };
    }
    let new_overlays: Vec<(&AppChange, &EnvChange)> =
        apps.iter().flat_map(|a| a.envs.iter().filter(|e| e.status == Status::Added).map(move |e| (a, e))).collect();
    if !new_overlays.is_empty() {
        let list: Vec<String> =
            new_overlays.iter().map(|x| x.0.name.clone()).collect::<BTreeSet<_>>().into_iter().collect();
        let envs: Vec<String> = new_overlays.iter().filter_map(|x| x.1.env.clone()).fold(Vec::new(), |mut v, e| {
            if !v.contains(&e) {
                v.push(e);
            }
            v
        });
        let subject = vec![
            format!("deploy {} to {}", and_list(&list), envs_words(&envs)),
            format!("deploy {} to {}", apps_words(&list), envs_words(&envs)),
        ];
        return Inferred { type_: "feat".into(), scope, subject };
    }
    let removed_apps: Vec<String> =
        apps.iter().filter(|a| a.status == Status::Removed).map(|a| a.name.clone()).collect();
    if !removed_apps.is_empty() {
        return Inferred {
            type_: "chore".into(),
            scope,
            subject: vec![
                format!("remove {}", and_list(&removed_apps)),
                format!("remove {}", apps_words(&removed_apps)),
            ],
        };
    }
    if facts.is_empty() {
        if rendered_identical && same_values && files.other.is_empty() {
            let what = if names.is_empty() {
                format!("{} manifests", files.manifests.len())
            } else {
                format!("{} manifests", apps_words(&names))
            };
            return Inferred {
                type_: "style".into(),
                scope,
                subject: vec![format!("reformat {what}"), "reformat manifests".into()],
            };
        }
        if rendered_identical && !names.is_empty() {
            return Inferred {
                type_: "chore".into(),
                scope,
                subject: vec![
                    format!("restructure {} manifests without rendered change", apps_words(&names)),
                    format!("restructure {} manifests", apps_words(&names)),
                ],
            };
        }
        let all: Vec<String> = files.changes.iter().map(|c| c.path.clone()).collect();
        return Inferred { type_: "chore".into(), scope, subject: files_subject("files", &all) };
    }
    // what new workloads run is for the body; the objects added lead the subject
    let facts: Vec<(&AppChange, &EnvChange, &Fact)> =
        facts.into_iter().filter(|x| x.2.kind != FactKind::Detail).collect();
    let kinds: BTreeSet<FactKind> = facts.iter().map(|x| x.2.kind).collect();
    let target = apps_words(&names);
    // the repo's environments, to say when a phrase holds for only some
    let all_envs: &[String] = &effect.env_order;
    let of_kind = |k: FactKind| -> Vec<&Fact> { facts.iter().filter(|x| x.2.kind == k).map(|x| x.2).collect() };
    let envs_of_kind = |k: FactKind| -> Vec<String> {
        let mut v: Vec<String> = Vec::new();
        for e in facts.iter().filter(|x| x.2.kind == k).filter_map(|x| x.1.env.clone()) {
            if !v.contains(&e) {
                v.push(e);
            }
        }
        v
    };
    let mut subject = Vec::new();
    if kinds.len() == 1
        && let Some(&k) = kinds.iter().next()
    {
        let w = where_words(&envs_of_kind(k), all_envs);
        subject.extend(phrases(k, &of_kind(k), &target, true).into_iter().map(|p| format!("{p}{w}")));
    } else {
        // several kinds of change: the most telling first, each with where it holds
        const ORDER: [FactKind; 9] = [
            FactKind::Image,
            FactKind::Config,
            FactKind::Resources,
            FactKind::Replicas,
            FactKind::ObjectsAdded,
            FactKind::ObjectsRemoved,
            FactKind::Annotation,
            FactKind::Label,
            FactKind::SecretKeys,
        ];
        let parts: Vec<String> = ORDER
            .iter()
            .filter(|k| kinds.contains(k))
            .filter_map(|&k| {
                let p = phrases(k, &of_kind(k), &target, false).into_iter().next()?;
                Some(format!("{p}{}", where_words(&envs_of_kind(k), all_envs)))
            })
            .collect();
        if (2..=3).contains(&parts.len()) {
            subject.push(and_list(&parts));
        }
        if parts.len() > 2 {
            subject.push(and_list(&parts[..2]));
        }
    }
    let suffix = where_words(&fact_envs, all_envs);
    subject.push(format!("update {target}{suffix}"));
    subject.push(format!("update {target}"));
    Inferred { type_: type_by_effect(&kinds, reason).into(), scope, subject }
}

/// The Conventional Commits type of what the change does: new objects are a feature;
/// removed (or renamed) ones upkeep; a new image, replicas or resources are upkeep too
/// unless the reason says they fix something; changed settings a fix.
fn type_by_effect(kinds: &BTreeSet<FactKind>, reason: &str) -> &'static str {
    if kinds.contains(&FactKind::ObjectsRemoved) {
        return "chore";
    }
    if kinds.contains(&FactKind::ObjectsAdded) {
        return "feat";
    }
    let upkeep = [FactKind::Image, FactKind::Replicas, FactKind::Resources];
    if !kinds.is_empty() && kinds.iter().all(|k| upkeep.contains(k)) {
        return if says_fix(reason) { "fix" } else { "chore" };
    }
    "fix"
}

/// Whether a reason speaks of fixing something (a bug, a leak, a CVE, an outage).
fn says_fix(reason: &str) -> bool {
    const WORDS: &[&str] = &[
        "fix",
        "bug",
        "leak",
        "crash",
        "broken",
        "regression",
        "outage",
        "incident",
        "cve-",
        "vulnerab",
        "hotfix",
        "oom",
        "security",
    ];
    let r = reason.to_ascii_lowercase();
    WORDS.iter().any(|w| r.contains(w))
}

/// ` in prod-west`, ` in prod` (every environment of a class, when the repo has others),
/// ` in dev and staging`, or nothing when a phrase holds in every environment (`all`).
fn where_words(envs: &[String], all: &[String]) -> String {
    if let [one] = envs {
        return format!(" in {one}");
    }
    if envs.is_empty() || envs.len() >= all.len() {
        return String::new();
    }
    let class = crate::repo::class_from_name(&envs[0]);
    let same_class = envs.iter().all(|e| crate::repo::class_from_name(e) == class);
    let whole_class = all.iter().filter(|e| crate::repo::class_from_name(e) == class).count() == envs.len();
    if same_class && whole_class {
        return format!(" in {class}");
    }
    if envs.len() == 2 { format!(" in {}", and_list(envs)) } else { String::new() }
}

/// A config key's name from its fact (`KEY=v in ...`, `KEY a -> b in ...`, `remove KEY from ...`).
fn config_key(f: &Fact) -> String {
    match f.text.strip_prefix("remove ") {
        Some(rest) => rest.split(' ').next().unwrap_or_default().to_string(),
        None => f.text.split([' ', '=']).next().unwrap_or_default().to_string(),
    }
}

/// A key that names where something lives: its new value is an address.
fn addressy(key: &str) -> bool {
    let k = key.to_ascii_uppercase();
    ["HOST", "ADDR", "URL", "URI", "ENDPOINT", "SERVER", "DSN", "BROKER"].iter().any(|w| k.contains(w))
}

/// Candidate phrases for the facts of one kind, best first; `with_target` names the apps
/// where the phrase would not otherwise say whose objects changed.
fn phrases(kind: FactKind, facts: &[&Fact], target: &str, with_target: bool) -> Vec<String> {
    let tos: BTreeSet<String> = facts.iter().filter_map(|f| f.to.clone()).collect();
    let tos: Vec<&String> = tos.iter().collect();
    let groups: BTreeSet<&str> = facts.iter().map(|f| f.group.as_str()).collect();
    let groups: Vec<&str> = groups.into_iter().collect();
    let mut out = Vec::new();
    match kind {
        FactKind::Image => {
            let images: BTreeSet<String> =
                facts.iter().map(|f| f.text.split(' ').nth(1).map(file_name).unwrap_or_default()).collect();
            if let ([img], [to]) = (&images.iter().collect::<Vec<_>>()[..], &tos[..]) {
                out.push(format!("bump {img} to {to}"));
            }
            out.push(if with_target { format!("bump {target} images") } else { "bump images".into() });
        }
        FactKind::Replicas => {
            let who = if with_target { format!("{target} ") } else { String::new() };
            if let [to] = &tos[..] {
                out.push(format!("scale {who}to {to} replicas"));
            }
            out.push(format!("scale {}", if with_target { target } else { "replicas" }));
        }
        FactKind::Resources => {
            // `limits.memory`, `c requests.cpu`: which buckets, which resources, which way
            let mut buckets: BTreeSet<&str> = BTreeSet::new();
            let mut resources: BTreeSet<&str> = BTreeSet::new();
            let (mut up, mut down) = (0, 0);
            for f in facts {
                if let Some(w) = f.text.split(' ').find(|w| w.starts_with("requests.") || w.starts_with("limits.")) {
                    let (b, r) = w.split_once('.').unwrap_or((w, ""));
                    buckets.insert(b);
                    resources.insert(r);
                }
                let q = |v: &Option<String>| v.as_ref().and_then(|x| diff::quantity(&Value::String(x.clone())));
                match (q(&f.from), q(&f.to)) {
                    (Some(a), Some(b)) if b > a => up += 1,
                    (Some(a), Some(b)) if b < a => down += 1,
                    _ => {}
                }
            }
            let verb = match (up, down) {
                (u, 0) if u > 0 => "raise",
                (0, d) if d > 0 => "lower",
                _ => "resize",
            };
            let res: Vec<String> = resources.iter().map(|r| r.to_string()).collect();
            let bucket = match (buckets.contains("requests"), buckets.contains("limits")) {
                (true, true) => "requests and limits",
                (true, false) => "requests",
                _ => "limits",
            };
            if !res.is_empty() {
                let of = if with_target { format!(" of {target}") } else { String::new() };
                out.push(format!("{verb} {} {bucket}{of}", and_list(&res)));
            }
            out.push(if with_target { format!("adjust {target} resources") } else { "adjust resources".into() });
        }
        FactKind::Config => {
            let keys: BTreeSet<String> = facts.iter().map(|f| config_key(f)).collect();
            let keys: Vec<String> = keys.into_iter().collect();
            let removing = facts.iter().all(|f| f.to.is_none());
            match (&keys[..], &tos[..]) {
                ([k], _) if removing => out.push(format!("remove {k}")),
                ([k], [to]) if addressy(k) => out.push(format!("point {k} at {to}")),
                ([k], [to]) => out.push(format!("set {k} to {to}")),
                ([k], _) => out.push(format!("change {k}")),
                (ks, _) if ks.len() <= 3 => {
                    out.push(format!("{} {}", if removing { "remove" } else { "change" }, and_list(ks)))
                }
                _ => {}
            }
            if let [k] = &keys[..] {
                out.push(format!("change {k}"));
            }
            out.push(if with_target { format!("update the settings of {target}") } else { "update settings".into() });
        }
        FactKind::Annotation | FactKind::Label => {
            let noun = if kind == FactKind::Annotation { "annotation" } else { "label" };
            // `annotation k=v on Kind`, `remove annotation k from Kind`
            let keys: BTreeSet<String> = facts
                .iter()
                .filter_map(|f| {
                    let at = if f.group.starts_with("remove ") { 2 } else { 1 };
                    f.group.split([' ', '=']).nth(at).map(str::to_string)
                })
                .collect();
            let kinds_on: BTreeSet<String> =
                facts.iter().filter_map(|f| f.object.split('/').next().map(str::to_string)).collect();
            let removing = facts.iter().all(|f| f.to.is_none());
            if let ([key], [on]) = (&keys.iter().collect::<Vec<_>>()[..], &kinds_on.iter().collect::<Vec<_>>()[..]) {
                let on = plural(on);
                if removing {
                    out.push(format!("remove {key} {noun} from {on}"));
                } else if groups.len() == 1 {
                    out.push(format!("set {key} {noun} on {on}"));
                } else {
                    out.push(format!("update {key} {noun} on {on}"));
                }
                out.push(format!("{} {key} {noun}", if removing { "remove" } else { "set" }));
            }
            out.push(if with_target { format!("update {noun}s of {target}") } else { format!("update {noun}s") });
        }
        FactKind::SecretKeys => {
            out.push(if with_target { format!("update secret keys of {target}") } else { "update secret keys".into() })
        }
        FactKind::ObjectsAdded => {
            if let [g] = &groups[..] {
                out.push(if with_target { format!("{g} to {target}") } else { g.to_string() });
            }
            if !with_target {
                out.push("add objects".into());
            }
        }
        FactKind::ObjectsRemoved => {
            if let [g] = &groups[..] {
                out.push(if with_target { format!("{g} from {target}") } else { g.to_string() });
            }
            if !with_target {
                out.push("remove objects".into());
            }
        }
        FactKind::Detail | FactKind::Other => {}
    }
    out
}

/// `Ingress` -> `Ingresses`, `Deployment` -> `Deployments`, `NetworkPolicy` -> `NetworkPolicies`
fn plural(kind: &str) -> String {
    if kind.ends_with('s') || kind.ends_with('x') {
        format!("{kind}es")
    } else if let Some(stem) = kind.strip_suffix('y').filter(|s| !s.ends_with(['a', 'e', 'o', 'u'])) {
        format!("{stem}ies")
    } else {
        format!("{kind}s")
    }
}

fn files_count(f: &Files) -> usize {
    f.docs.len() + f.ci.len() + f.manifests.len() + f.other.len()
}

fn header(type_: &str, scope: Option<&str>, subject: &str) -> String {
    match scope {
        Some(s) if !s.is_empty() => format!("{type_}({s}): {subject}"),
        _ => format!("{type_}: {subject}"),
    }
}

/// Cuts a subject to fit the line at a word boundary; no trailing period.
fn fit(prefix_len: usize, subject: &str) -> String {
    let s = subject.trim().trim_end_matches('.').to_string();
    if prefix_len + s.chars().count() <= MAX_SUBJECT {
        return s;
    }
    let room = MAX_SUBJECT.saturating_sub(prefix_len);
    let mut out = String::new();
    for w in s.split_whitespace() {
        if out.chars().count() + 1 + w.chars().count() > room {
            break;
        }
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(w);
    }
    if out.is_empty() { s.chars().take(room).collect() } else { out }
}

/// Wraps one bullet (or paragraph) at [`WRAP`] columns, continuation lines indented.
fn wrap(text: &str, first: &str, rest: &str) -> String {
    let mut lines: Vec<String> = Vec::new();
    let mut line = first.to_string();
    let mut empty = true;
    for w in text.split_whitespace() {
        if !empty && line.chars().count() + 1 + w.chars().count() > WRAP {
            lines.push(line);
            line = format!("{rest}{w}");
        } else {
            if !empty {
                line.push(' ');
            }
            line.push_str(w);
        }
        empty = false;
    }
    lines.push(line);
    lines.join("\n")
}

/// A workflow's body line wrapped at [`WRAP`]: bullets continue indented under their text,
/// other lines as they are (tables and lists a workflow aligned itself are short enough).
fn wrap_line(line: &str) -> String {
    if line.chars().count() <= WRAP {
        return line.to_string();
    }
    let indent: String = line.chars().take_while(|c| *c == ' ').collect();
    let rest = &line[indent.len()..];
    for marker in ["- ", "* "] {
        if let Some(text) = rest.strip_prefix(marker) {
            return wrap(text, &format!("{indent}{marker}"), &format!("{indent}  "));
        }
    }
    if let Some((n, text)) = rest.split_once(". ")
        && !n.is_empty()
        && n.chars().all(|c| c.is_ascii_digit())
    {
        let pad = " ".repeat(n.len() + 2);
        return wrap(text, &format!("{indent}{n}. "), &format!("{indent}{pad}"));
    }
    wrap(rest, &indent, &indent)
}

/// Ticket ids in a reason (`SEC-2025-01`, `OPS-12`): a reason that is only ids is no
/// paragraph; a leading `SEC-2025-01: ` is dropped from the paragraph. The ids, in order.
pub fn split_reason(reason: &str) -> (Option<String>, Vec<String>) {
    static ID: std::sync::LazyLock<Option<regex::Regex>> =
        std::sync::LazyLock::new(|| regex::Regex::new(r"\b[A-Z][A-Z0-9]+-[0-9]+(?:-[0-9]+)*\b").ok());
    let reason = reason.trim();
    let Some(re) = ID.as_ref() else { return ((!reason.is_empty()).then(|| reason.to_string()), Vec::new()) };
    let mut ids: Vec<String> = Vec::new();
    for m in re.find_iter(reason) {
        if !ids.iter().any(|i| i == m.as_str()) {
            ids.push(m.as_str().to_string());
        }
    }
    // a leading run of ids and separators is a label, not words
    let mut rest = reason;
    loop {
        let t = rest.trim_start_matches(|c: char| c.is_whitespace() || ",;:/-(".contains(c));
        match re.find(t) {
            Some(m) if m.start() == 0 => rest = t[m.end()..].trim_start_matches(')'),
            _ => {
                rest = t;
                break;
            }
        }
    }
    let text = rest.trim();
    let words = text.chars().any(|c| c.is_alphanumeric());
    (words.then(|| text.to_string()), ids)
}

/// Apps sharing a bullet, and the fact texts they had.
type AppsTexts = (Vec<String>, BTreeSet<String>);

/// Body bullets: identical facts grouped across environments and apps.
fn bullets(apps: &[AppChange], env_order: &[String]) -> Vec<String> {
    // group text -> app -> (envs, texts)
    type Cells = BTreeMap<String, (Vec<Option<String>>, BTreeSet<String>)>;
    let mut groups: BTreeMap<(FactKind, String), Cells> = BTreeMap::new();
    for a in apps {
        for e in &a.envs {
            for f in &e.facts {
                let cell = groups.entry((f.kind, f.group.clone())).or_default().entry(a.name.clone()).or_default();
                if !cell.0.contains(&e.env) {
                    cell.0.push(e.env.clone());
                }
                cell.1.insert(f.text.clone());
            }
            if let Some(err) = &e.build_error {
                let cell = groups
                    .entry((FactKind::Other, format!("does not build ({err})")))
                    .or_default()
                    .entry(a.name.clone())
                    .or_default();
                cell.0.push(e.env.clone());
            }
        }
    }
    let several = apps.len() > 1;
    let pos = |e: &Option<String>| e.as_ref().and_then(|e| env_order.iter().position(|x| x == e)).unwrap_or(usize::MAX);
    let mut out: Vec<(String, FactKind, String)> = Vec::new();
    for ((kind, group), cells) in groups {
        // apps with the same environments share a bullet
        let mut by_envs: BTreeMap<Vec<Option<String>>, AppsTexts> = BTreeMap::new();
        for (app, (mut envs, texts)) in cells {
            envs.sort_by_key(|e| (pos(e), e.clone()));
            let slot = by_envs.entry(envs).or_default();
            slot.0.push(app);
            slot.1.extend(texts);
        }
        for (envs, (apps_here, texts)) in by_envs {
            let text = if texts.len() == 1 { texts.into_iter().next().unwrap_or_default() } else { group.clone() };
            let env_names: Vec<String> = envs.into_iter().flatten().collect();
            let where_ = if env_names.is_empty() { String::new() } else { format!(" in {}", env_names.join(", ")) };
            let who = if several { format!("{}: ", apps_here.join(", ")) } else { String::new() };
            out.push((apps_here.first().cloned().unwrap_or_default(), kind, format!("{who}{text}{where_}")));
        }
    }
    out.sort();
    out.into_iter().map(|x| x.2).collect()
}

fn finish(opts: &DraftOptions, inferred: Inferred, files: Files, effect: Effect, redactor: &Redactor) -> Drafted {
    let Effect { apps, overlays, validation, rendered_identical, env_order, loose, .. } = effect;
    let type_ = opts.type_.clone().unwrap_or(inferred.type_);
    let scope = opts.scope.clone().or(inferred.scope).filter(|s| !s.is_empty());
    let prefix_len = header(&type_, scope.as_deref(), "").chars().count();
    let subject = match &opts.subject {
        Some(s) => fit(prefix_len, s),
        None => {
            let fitting = inferred.subject.iter().find(|s| prefix_len + s.chars().count() <= MAX_SUBJECT);
            fit(prefix_len, fitting.or(inferred.subject.last()).map(String::as_str).unwrap_or("update"))
        }
    };
    let mut body: Vec<String> = Vec::new();
    let mut points: Vec<String> = if opts.body.is_some() { Vec::new() } else { bullets(&apps, &env_order) };
    let list = |label: &str, l: &[String]| -> Option<String> {
        match l.len() {
            0 => None,
            1..=4 => Some(format!("{label}: {}", l.join(", "))),
            n => Some(format!("{label}: {n} files ({}, ...)", l[..3].join(", "))),
        }
    };
    match &opts.body {
        Some(lines) => {
            if !lines.is_empty() {
                // a workflow's blank lines part its paragraphs
                let lines: Vec<String> = lines
                    .iter()
                    .flat_map(|l| if l.is_empty() { vec![""] } else { l.lines().collect() })
                    .map(wrap_line)
                    .collect();
                body.push(lines.join("\n"));
            }
        }
        None => {
            if rendered_identical && points.is_empty() && !overlays.is_empty() {
                points.push(format!("no rendered change in {} overlays", overlays.len()));
            }
            points.extend(list("docs", &files.docs));
            points.extend(list("ci", &files.ci));
            points.extend(loose);
            points.extend(list("other files", &files.other));
            if !points.is_empty() {
                body.push(points.iter().map(|p| wrap(p, "- ", "  ")).collect::<Vec<_>>().join("\n"));
            }
        }
    }
    // ticket ids go to `Refs:` trailers; the words around them stay the reason
    let (reason_text, mut refs) = split_reason(opts.reason.as_deref().unwrap_or_default());
    for r in &opts.refs {
        if !refs.contains(r) {
            refs.push(r.clone());
        }
    }
    if let Some(r) = &reason_text {
        body.push(r.lines().map(|l| wrap(l, "", "")).collect::<Vec<_>>().join("\n"));
    }
    if !opts.extra.is_empty() {
        body.push(opts.extra.join("\n"));
    }
    if let Some(v) = &validation {
        let mut s = format!("Validated: {}", v.line());
        for e in &v.first_errors {
            s.push('\n');
            s.push_str(&wrap(e, "- ", "  "));
        }
        body.push(s);
    }
    if !refs.is_empty() {
        body.push(refs.iter().map(|r| format!("Refs: {r}")).collect::<Vec<_>>().join("\n"));
    }
    let mut message = header(&type_, scope.as_deref(), &subject);
    for b in &body {
        message.push_str("\n\n");
        message.push_str(b);
    }
    message.push('\n');
    let mut summary = CommitSummary {
        type_,
        scope,
        subject,
        files,
        apps,
        overlays,
        validation,
        rendered_identical,
        reason: opts.reason.clone(),
        refs,
    };
    // secret values learned from both sides never leave
    let message = redactor.scrub(&message);
    summary.reason = summary.reason.map(|r| redactor.scrub(&r));
    for f in summary.apps.iter_mut().flat_map(|a| a.envs.iter_mut()).flat_map(|e| e.facts.iter_mut()) {
        f.text = redactor.scrub(&f.text);
        f.from = f.from.as_deref().map(|x| redactor.scrub(x));
        f.to = f.to.as_deref().map(|x| redactor.scrub(x));
    }
    Drafted { message, summary }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deploy(name: &str, image: &str, replicas: u32) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": "shop"},
               "spec": {"replicas": replicas, "template": {"spec": {"containers": [{"name": name, "image": image,
               "resources": {"limits": {"cpu": "1", "memory": "1Gi"}}}]}}}})
    }

    #[test]
    fn facts_of_an_image_bump_replicas_and_resources() {
        let b = vec![deploy("api", "ghcr.io/x/api:1.2.3", 2)];
        let mut a = vec![deploy("api", "ghcr.io/x/api:1.2.4", 3)];
        a[0]["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["memory"] = json!("2Gi");
        let texts: Vec<String> = overlay_facts("api", &b, &a).into_iter().map(|f| f.text).collect();
        assert_eq!(texts, vec!["image ghcr.io/x/api 1.2.3 -> 1.2.4", "replicas 2 -> 3", "limits.memory 1Gi -> 2Gi"]);
    }

    #[test]
    fn objects_added_and_removed_and_secret_keys_only() {
        let secret = |v: &str| json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db"}, "data": {"password": v}});
        let b = vec![deploy("api", "x:1", 1), secret("c2VjcmV0LW9uZQ==")];
        let a = vec![
            deploy("api", "x:1", 1),
            secret("c2VjcmV0LXR3bw=="),
            json!({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": "api"}}),
        ];
        let facts = overlay_facts("api", &b, &a);
        let texts: Vec<&str> = facts.iter().map(|f| f.text.as_str()).collect();
        assert_eq!(texts, vec!["add PodDisruptionBudget", "secret db keys changed: password"]);
        assert!(!serde_json::to_string(&facts).unwrap().contains("c2Vj"));
    }

    #[test]
    fn generated_names_compare_without_their_hash() {
        let cm = |n: &str, v: &str| json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": n}, "data": {"LEVEL": v}});
        let mut b = vec![cm("cfg-7h9k8m2c4t", "info")];
        let mut a = vec![cm("cfg-b9f2d8g6hk", "debug")];
        strip_generated_names(&mut b);
        strip_generated_names(&mut a);
        let texts: Vec<String> = overlay_facts("api", &b, &a).into_iter().map(|f| f.text).collect();
        assert_eq!(texts, vec!["LEVEL info -> debug in ConfigMap cfg"]);
    }

    #[test]
    fn identical_changes_group_across_environments() {
        let fb = FactBuilder { app: "api", kind: "Deployment", name: "api" };
        let env = |e: &str, from: &str| EnvChange {
            env: Some(e.into()),
            overlay: format!("apps/api/overlays/{e}"),
            status: Status::Changed,
            facts: vec![fb.fact(FactKind::Replicas, "replicas", " ", Some(from.into()), Some("3".into()), None)],
            build_error: None,
        };
        let apps = vec![AppChange {
            name: "api".into(),
            status: Status::Changed,
            namespace: None,
            part_of: None,
            envs: vec![env("prod-west", "2"), env("prod-east", "4"), env("prod-central", "2")],
        }];
        let order: Vec<String> = ["prod-west", "prod-east", "prod-central"].iter().map(|s| s.to_string()).collect();
        assert_eq!(bullets(&apps, &order), vec!["replicas 3 in prod-west, prod-east, prod-central"]);
        let same = vec![AppChange { envs: vec![env("prod-west", "2"), env("prod-central", "2")], ..apps[0].clone() }];
        assert_eq!(bullets(&same, &order), vec!["replicas 2 -> 3 in prod-west, prod-central"]);
    }

    /// One app's overlays: (env, objects before, objects after).
    type Sides = Vec<(&'static str, Vec<Value>, Vec<Value>)>;

    fn app(name: &str, ns: &str, sides: Sides) -> AppChange {
        let added = sides.iter().all(|(_, b, _)| b.is_empty());
        let envs = sides
            .into_iter()
            .map(|(env, b, a)| EnvChange {
                env: Some(env.to_string()),
                overlay: format!("apps/{name}/overlays/{env}"),
                status: if b.is_empty() { Status::Added } else { Status::Changed },
                facts: overlay_facts(name, &b, &a),
                build_error: None,
            })
            .collect();
        AppChange {
            name: name.into(),
            status: if added { Status::Added } else { Status::Changed },
            namespace: Some(ns.into()),
            part_of: None,
            envs,
        }
    }

    const ORDER: [&str; 5] = ["dev", "staging", "prod-west", "prod-east", "prod-central"];

    /// The message drafted for changes of these apps (manifests changed, rendered objects
    /// compared) with this reason.
    fn drafted(apps: Vec<AppChange>, reason: Option<&str>) -> String {
        let effect = Effect {
            overlays: apps.iter().flat_map(|a| a.envs.iter().map(|e| e.overlay.clone())).collect(),
            apps,
            env_order: ORDER.iter().map(|s| s.to_string()).collect(),
            ..Effect::default()
        };
        let files = Files { manifests: vec!["apps/x/base/deployment.yaml".into()], ..Files::default() };
        let opts = DraftOptions { reason: reason.map(str::to_string), ..DraftOptions::default() };
        let why = reason.unwrap_or_default();
        let inferred = infer(&effect, &files, why);
        finish(&opts, inferred, files, effect, &Redactor::new()).message
    }

    fn with(mut o: Value, pointer: &str, v: Value) -> Value {
        *o.pointer_mut(pointer).unwrap() = v;
        o
    }

    fn cm(name: &str, data: Value) -> Value {
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": "shop"}, "data": data})
    }

    fn ingress(name: &str, ns: &str, ann: Value) -> Value {
        json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
               "metadata": {"name": name, "namespace": ns, "annotations": ann}})
    }

    /// The drafter's subjects on the kinds of change a platform repo sees: each says what
    /// changed in the fleet, with the type by its effect.
    #[test]
    fn subjects_say_what_changed_in_the_fleet() {
        let d = deploy("api", "ghcr.io/x/api:1.2.3", 3);
        let env_var = |name: &str, value: &str| {
            let mut o = deploy("api", "ghcr.io/x/api:1.2.3", 3);
            o["spec"]["template"]["spec"]["containers"][0]["env"] = json!([{"name": name, "value": value}]);
            o
        };
        let bumped = with(d.clone(), "/spec/template/spec/containers/0/image", json!("ghcr.io/x/api:1.2.4"));
        let scaled = with(d.clone(), "/spec/replicas", json!(5));
        let bigger = with(d.clone(), "/spec/template/spec/containers/0/resources/limits/memory", json!("2Gi"));
        let bigger_scaled = with(bigger.clone(), "/spec/replicas", json!(5));
        let redis = |h: &str| cm("orders-config", json!({"REDIS_HOST": h, "REDIS_PORT": "6379"}));
        let prod = |b: &Value, a: &Value| -> Sides {
            ["prod-west", "prod-east", "prod-central"].iter().map(|e| (*e, vec![b.clone()], vec![a.clone()])).collect()
        };
        let every =
            |b: &Value, a: &Value| -> Sides { ORDER.iter().map(|e| (*e, vec![b.clone()], vec![a.clone()])).collect() };
        let pdb = json!({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": "api"}});
        let hpa =
            json!({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "api"}});
        let secret = |v: &str| json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "api-db"}, "data": {"password": v}});
        let labelled = |l: Value| {
            let mut o = d.clone();
            o["metadata"]["labels"] = l;
            o
        };
        let sts = json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "billing", "namespace": "billing"},
            "spec": {"replicas": 2, "template": {"spec": {"containers": [{"name": "billing", "image": "ghcr.io/x/billing:1.0.0",
            "resources": {"requests": {"cpu": "250m", "memory": "512Mi"}, "limits": {"cpu": "500m", "memory": "1Gi"}}}]}},
            "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {"resources": {"requests": {"storage": "50Gi"}}}}]}});

        let cases: Vec<(&str, Vec<AppChange>, Option<&str>, &str)> = vec![
            (
                "image bump",
                vec![app("api", "edge", vec![("staging", vec![d.clone()], vec![bumped.clone()])])],
                None,
                "chore(api): bump api to 1.2.4 in staging",
            ),
            (
                "image bump that fixes",
                vec![app("api", "edge", vec![("staging", vec![d.clone()], vec![bumped.clone()])])],
                Some("Fixes the rate limiter leak."),
                "fix(api): bump api to 1.2.4 in staging",
            ),
            (
                "replicas",
                vec![app("api", "edge", prod(&d, &scaled))],
                None,
                "chore(api): scale api to 5 replicas in prod",
            ),
            ("resources", vec![app("api", "edge", every(&d, &bigger))], None, "chore(api): raise memory limits of api"),
            (
                "resources and replicas in prod",
                vec![app("api", "edge", [every(&d, &bigger)[..2].to_vec(), prod(&d, &bigger_scaled)].concat())],
                None,
                "chore(api): raise memory limits and scale to 5 replicas in prod",
            ),
            (
                "a host in a ConfigMap",
                vec![app(
                    "orders",
                    "shop",
                    every(&redis("redis.data.svc.cluster.local"), &redis("orders.abc123.cache.amazonaws.com")),
                )],
                None,
                "fix(orders): point REDIS_HOST at orders.abc123.cache.amazonaws.com",
            ),
            (
                "a setting in one environment",
                vec![app(
                    "api",
                    "edge",
                    vec![(
                        "dev",
                        vec![cm("api-config", json!({"LOG_LEVEL": "info"}))],
                        vec![cm("api-config", json!({"LOG_LEVEL": "debug"}))],
                    )],
                )],
                None,
                "fix(api): set LOG_LEVEL to debug in dev",
            ),
            (
                "an env var's value",
                vec![app(
                    "api",
                    "edge",
                    every(&env_var("REDIS_HOST", "redis.data"), &env_var("REDIS_HOST", "cache.internal")),
                )],
                None,
                "fix(api): point REDIS_HOST at cache.internal",
            ),
            (
                "an env var added",
                vec![app("api", "edge", every(&d, &env_var("FEATURE_X", "on")))],
                None,
                "fix(api): set FEATURE_X to on",
            ),
            (
                "a setting removed",
                vec![app(
                    "api",
                    "edge",
                    every(&cm("api-config", json!({"OLD_FLAG": "1", "A": "b"})), &cm("api-config", json!({"A": "b"}))),
                )],
                None,
                "fix(api): remove OLD_FLAG",
            ),
            (
                "an annotation on every Ingress",
                vec![
                    app(
                        "api",
                        "edge",
                        every(
                            &ingress("api", "edge", json!({})),
                            &ingress("api", "edge", json!({"acme.io/owner": "platform"})),
                        ),
                    ),
                    app(
                        "web",
                        "web",
                        every(
                            &ingress("web", "web", json!({})),
                            &ingress("web", "web", json!({"acme.io/owner": "platform"})),
                        ),
                    ),
                ],
                None,
                "fix: set acme.io/owner annotation on Ingresses",
            ),
            (
                "a label removed",
                vec![app(
                    "api",
                    "edge",
                    every(&labelled(json!({"tier": "web", "a": "b"})), &labelled(json!({"a": "b"}))),
                )],
                None,
                "fix(api): remove tier label from Deployments",
            ),
            (
                "a secret rotated",
                vec![app("api", "edge", every(&secret("b25l"), &secret("dHdv")))],
                None,
                "fix(api): update secret keys of api",
            ),
            (
                "an object added",
                vec![app("api", "edge", vec![("prod-west", vec![d.clone()], vec![d.clone(), pdb.clone()])])],
                None,
                "feat(api): add PodDisruptionBudget to api in prod-west",
            ),
            (
                "an object removed",
                vec![app(
                    "api",
                    "edge",
                    prod(&hpa, &json!(null))
                        .into_iter()
                        .map(|(e, b, _)| (e, vec![d.clone(), b[0].clone()], vec![d.clone()]))
                        .collect(),
                )],
                None,
                "chore(api): remove HorizontalPodAutoscaler from api in prod",
            ),
            (
                "a new app",
                vec![app(
                    "billing",
                    "billing",
                    vec![("dev", vec![], vec![sts.clone()]), ("prod-west", vec![], vec![sts.clone()])],
                )],
                None,
                "feat(billing): deploy billing to dev and prod-west",
            ),
            (
                "an image and a host together",
                vec![app(
                    "api",
                    "edge",
                    every(
                        &env_var("REDIS_HOST", "redis.data"),
                        &with(
                            env_var("REDIS_HOST", "cache.internal"),
                            "/spec/template/spec/containers/0/image",
                            json!("ghcr.io/x/api:1.2.4"),
                        ),
                    ),
                )],
                None,
                "fix(api): bump api to 1.2.4 and point REDIS_HOST at cache.internal",
            ),
        ];
        assert!(cases.len() >= 15);
        for (what, apps, reason, want) in cases {
            let msg = drafted(apps, reason);
            assert_eq!(msg.lines().next().unwrap(), want, "{what}:\n{msg}");
            assert!(msg.lines().all(|l| l.chars().count() <= WRAP), "{what}: wrapped at 72:\n{msg}");
        }
    }

    #[test]
    fn bodies_list_images_volumes_sizes_and_refs() {
        let sts = json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "billing", "namespace": "billing"},
            "spec": {"replicas": 2, "template": {"spec": {"containers": [{"name": "billing", "image": "ghcr.io/x/billing:1.0.0",
            "resources": {"requests": {"cpu": "250m", "memory": "512Mi"}, "limits": {"cpu": "500m", "memory": "1Gi"}}}]}},
            "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {"storageClassName": "gp3", "resources": {"requests": {"storage": "50Gi"}}}}]}});
        let big = with(sts.clone(), "/spec/replicas", json!(3));
        let apps =
            vec![app("billing", "billing", vec![("dev", vec![], vec![sts.clone()]), ("prod-west", vec![], vec![big])])];
        let msg = drafted(apps, Some("SEC-2025-01: billing moves out of orders"));
        assert!(msg.contains("- image ghcr.io/x/billing:1.0.0 in dev, prod-west\n"), "{msg}");
        assert!(msg.contains("- volume data: 50Gi per replica, StorageClass gp3 in dev, prod-west\n"), "{msg}");
        assert!(msg.contains("- size: 2 replicas, cpu 250m/500m, memory 512Mi/1Gi in dev\n"), "{msg}");
        assert!(msg.contains("- size: 3 replicas, cpu 250m/500m, memory 512Mi/1Gi in prod-west\n"), "{msg}");
        assert!(msg.contains("\n\nbilling moves out of orders\n"), "the reason without its id:\n{msg}");
        assert!(msg.ends_with("\n\nRefs: SEC-2025-01\n"), "{msg}");
    }

    #[test]
    fn reasons_give_their_ids_to_refs() {
        assert_eq!(split_reason("SEC-2025-01"), (None, vec!["SEC-2025-01".to_string()]));
        assert_eq!(split_reason("SEC-2025-01, OPS-2"), (None, vec!["SEC-2025-01".to_string(), "OPS-2".into()]));
        assert_eq!(
            split_reason("SEC-2025-01: TLS 1.3 only"),
            (Some("TLS 1.3 only".to_string()), vec!["SEC-2025-01".to_string()])
        );
        assert_eq!(
            split_reason("Roll out the fix for OPS-12 today."),
            (Some("Roll out the fix for OPS-12 today.".to_string()), vec!["OPS-12".to_string()])
        );
        assert_eq!(split_reason("plan the move"), (Some("plan the move".to_string()), vec![]));
        assert_eq!(split_reason("  "), (None, vec![]));
    }

    #[test]
    fn subjects_fit_and_wrap() {
        assert_eq!(fit(10, "update things."), "update things");
        let long = "word ".repeat(30);
        let s = fit(15, &long);
        assert!(s.chars().count() + 15 <= MAX_SUBJECT && !s.ends_with(' '));
        let w = wrap(&"abcdefghij ".repeat(12), "- ", "  ");
        assert!(w.lines().all(|l| l.chars().count() <= WRAP), "{w}");
        assert!(w.lines().skip(1).all(|l| l.starts_with("  ")));
    }
}
