//! Harmonize: one annotation or label setting on every object of a kind across every app and
//! overlay, edited where each value comes from and proven on the rendered output.
//!
//! 1. Every leaf in scope is rendered (the cached engine); the objects of the kind (and name
//!    glob) are the population. Overlays already broken refuse the run up front.
//! 2. Each object without the desired value is traced to its sources ([`trace`]): the resource
//!    document in a base, Component or overlay, and every patch that sets the key.
//! 3. The edits are comment-preserving splices ([`crate::repo::edit`]), deduplicated: one edit
//!    to a base covers every overlay that uses it.
//! 4. The proof: the edited files are written into a scratch copy of everything the affected
//!    overlays read, those overlays are re-rendered, and every object is compared with its
//!    rendering before: population objects may differ only by the setting, everything else
//!    must be unchanged, every overlay that built must build. Coverage must be 100%.
//! 5. [`apply`] writes the proven files (restoring every byte on any failure or interrupt),
//!    re-checks in place and commits exactly the edited files.

pub mod apply;
pub(crate) mod exceptions;
pub(crate) mod trace;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use rayon::prelude::*;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Error, Result};
use crate::k8s::ObjectRef;
use crate::kustomize::Engine;
use crate::repo::edit::{self, EditError};
use crate::repo::{Leaf, Repo};
pub use exceptions::{Evidence, Exception, Redundant};
pub use trace::{Action, Site, SourceKind, Touch};

/// What to harmonize: one kind (and optional name glob, apps, environments), one or more
/// annotation or label settings, and why.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HarmonizeRequest {
    /// Kind of the objects, e.g. Ingress ("ingresses" is understood too).
    pub kind: String,
    /// Object-name glob (`*`, `?`); every object of the kind when absent.
    #[serde(default)]
    pub name: Option<String>,
    /// Environments to cover (all when empty).
    #[serde(default)]
    pub env: Vec<String>,
    /// Apps to cover (all when empty).
    #[serde(default)]
    pub app: Vec<String>,
    /// Annotations to set: key -> value.
    #[serde(default)]
    pub set_annotations: BTreeMap<String, String>,
    /// Annotation keys to remove.
    #[serde(default)]
    pub remove_annotations: Vec<String>,
    /// Labels to set: key -> value.
    #[serde(default)]
    pub set_labels: BTreeMap<String, String>,
    /// Label keys to remove.
    #[serde(default)]
    pub remove_labels: Vec<String>,
    /// Why (goes into the commit message).
    pub reason: String,
    /// Values the repo documents as set on purpose (a comment next to them, a patch whose
    /// only job is to set them) that this request may overwrite: `all`, or each one's
    /// `file:line` (or file) as the plan lists it. Without it, applying stops at them.
    #[serde(default)]
    pub override_exceptions: Vec<String>,
    /// Remove the patch values that equal their base once the edits are in (and a patch
    /// file left with nothing to do), instead of setting them.
    #[serde(default)]
    pub remove_redundant: bool,
    /// Applying: leave the edits uncommitted (a plan ignores it).
    #[serde(default)]
    pub no_commit: bool,
    /// Applying: the `fingerprint` of the harmonize_plan output that was shown; when the plan
    /// now differs, nothing is written (a plan ignores it).
    #[serde(default)]
    pub expect: Option<String>,
}

/// Annotations or labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Field {
    Annotations,
    Labels,
}

impl Field {
    pub fn key(self) -> &'static str {
        match self {
            Field::Annotations => "annotations",
            Field::Labels => "labels",
        }
    }
    pub fn singular(self) -> &'static str {
        match self {
            Field::Annotations => "annotation",
            Field::Labels => "label",
        }
    }
}

/// One setting: a key set to a value, or removed (`value` null).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema)]
pub struct Setting {
    pub field: Field,
    pub key: String,
    pub value: Option<String>,
}

impl Setting {
    fn current<'a>(&self, obj: &'a Value) -> Option<&'a Value> {
        obj.pointer(&format!("/metadata/{}", self.field.key())).and_then(|m| m.get(&self.key))
    }

    /// Whether the object already renders with this setting.
    pub fn holds(&self, obj: &Value) -> bool {
        match (&self.value, self.current(obj)) {
            (Some(v), Some(Value::String(c))) => c == v,
            (Some(_), _) => false,
            (None, c) => c.is_none(),
        }
    }

    /// The object as it should render with this setting.
    pub fn apply(&self, obj: &mut Value) {
        let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) else { return };
        let field = self.field.key();
        match &self.value {
            Some(v) => {
                let map = meta.entry(field).or_insert_with(|| Value::Object(Default::default()));
                if !map.is_object() {
                    *map = Value::Object(Default::default());
                }
                if let Some(m) = map.as_object_mut() {
                    m.insert(self.key.clone(), Value::String(v.clone()));
                }
            }
            None => {
                if let Some(m) = meta.get_mut(field).and_then(Value::as_object_mut) {
                    m.shift_remove(&self.key);
                }
            }
        }
    }

    pub fn describe(&self) -> String {
        match &self.value {
            Some(v) => format!("set {} {}={v}", self.field.singular(), self.key),
            None => format!("remove {} {}", self.field.singular(), self.key),
        }
    }
}

impl HarmonizeRequest {
    /// The settings, checked: at least one, keys and label values valid, no key both set and removed.
    pub fn settings(&self) -> Result<Vec<Setting>> {
        let mut out = Vec::new();
        for (field, set, remove) in [
            (Field::Annotations, &self.set_annotations, &self.remove_annotations),
            (Field::Labels, &self.set_labels, &self.remove_labels),
        ] {
            for (k, v) in set {
                out.push(Setting { field, key: k.clone(), value: Some(v.clone()) });
            }
            for k in remove {
                if set.contains_key(k) {
                    return Err(Error::Usage(format!("{} {k} is both set and removed", field.singular())));
                }
                out.push(Setting { field, key: k.clone(), value: None });
            }
        }
        if out.is_empty() {
            return Err(Error::Usage(
                "nothing to harmonize: give --set-annotation, --remove-annotation, --set-label or --remove-label"
                    .into(),
            ));
        }
        for s in &out {
            check_key(&s.key).map_err(|e| Error::Usage(format!("{} key {:?}: {e}", s.field.singular(), s.key)))?;
            if s.field == Field::Labels
                && let Some(v) = &s.value
            {
                check_label_value(v).map_err(|e| Error::Usage(format!("label {}={v:?}: {e}", s.key)))?;
            }
        }
        if self.reason.trim().is_empty() {
            return Err(Error::Usage("a reason is required (--reason): it goes into the commit message".into()));
        }
        Ok(out)
    }

    /// The kind as Kubernetes spells it.
    pub fn kind(&self) -> Result<String> {
        crate::k8s::kinds::normalize_kind(&self.kind)
            .ok_or_else(|| Error::Usage(format!("{:?} is not a Kubernetes kind (e.g. Ingress, Deployment)", self.kind)))
    }
}

/// A qualified name with an optional DNS-subdomain prefix, as Kubernetes checks keys.
fn check_key(key: &str) -> std::result::Result<(), String> {
    let (prefix, name) = match key.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    if let Some(p) = prefix {
        let ok = !p.is_empty()
            && p.len() <= 253
            && p.split('.').all(|l| {
                !l.is_empty()
                    && l.len() <= 63
                    && l.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                    && !l.starts_with('-')
                    && !l.ends_with('-')
            });
        if !ok {
            return Err(format!("prefix {p:?} is not a DNS subdomain"));
        }
    }
    let ok = !name.is_empty()
        && name.len() <= 63
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && name.as_bytes()[0].is_ascii_alphanumeric()
        && name.as_bytes()[name.len() - 1].is_ascii_alphanumeric();
    if ok { Ok(()) } else { Err(format!("name {name:?} must be 1-63 alphanumerics, '-', '_' or '.'")) }
}

fn check_label_value(v: &str) -> std::result::Result<(), String> {
    let ok = v.is_empty()
        || (v.len() <= 63
            && v.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
            && v.as_bytes()[0].is_ascii_alphanumeric()
            && v.as_bytes()[v.len() - 1].is_ascii_alphanumeric());
    if ok { Ok(()) } else { Err("a label value is at most 63 alphanumerics, '-', '_' or '.'".into()) }
}

/// The `--name` glob, in the dialect of `crate::config::glob`; `*` crosses `/` (names hold none).
fn glob(pattern: &str) -> Result<globset::GlobMatcher> {
    crate::config::glob(pattern, false).map_err(|e| Error::Usage(format!("--name {pattern:?}: {e}")))
}

/// One object of the population, in one overlay.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct Member {
    pub overlay: String,
    pub app: Option<String>,
    pub env: Option<String>,
    /// Kind/namespace/name as rendered.
    pub object: String,
    /// Whether it rendered with every setting before the run.
    pub covered_before: bool,
    /// Whether it renders with every setting once the edits are applied (proven).
    pub covered_after: bool,
}

/// One edit, listed once with everything it covers.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct Edit {
    pub file: String,
    pub line: u32,
    pub source: SourceKind,
    /// What the edit does, e.g. `set annotation k=v`.
    pub change: String,
    /// The app the file belongs to (None for shared files such as Components).
    pub app: Option<String>,
    /// Rendered objects it fixes: `Kind/namespace/name`.
    pub objects: Vec<String>,
    /// Overlays those objects render in.
    pub overlays: Vec<String>,
    /// Their environments, where the layout names them.
    pub envs: Vec<String>,
}

impl Edit {
    /// Environment names when every overlay has one, else the overlay directories.
    pub fn envs_or_overlays(&self) -> Vec<String> {
        if self.envs.len() == self.overlays.len() { self.envs.clone() } else { self.overlays.clone() }
    }
}

/// The plan, with its proof.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct HarmonizePlan {
    pub kind: String,
    /// The request's scope: environments, apps, name glob (empty: all).
    pub env: Vec<String>,
    pub app: Vec<String>,
    pub name: Option<String>,
    pub settings: Vec<Setting>,
    pub reason: String,
    /// Objects matched across all overlays in scope.
    pub matched: usize,
    pub covered_before: usize,
    /// Covered after the edits, proven by re-rendering.
    pub covered_after: usize,
    /// Overlays rendered to find the population.
    pub overlays: usize,
    /// Overlays whose build reads an edited file, re-rendered for the proof.
    pub overlays_rebuilt: usize,
    /// Of those, how many build.
    pub overlays_built: usize,
    pub population: Vec<Member>,
    pub edits: Vec<Edit>,
    /// Values set on purpose that the edits overwrite; each must be overridden to apply.
    #[serde(default)]
    pub exceptions: Vec<Exception>,
    /// Patch values equal to their base after the edits: offered for removal.
    #[serde(default)]
    pub redundant: Vec<Redundant>,
    /// Why the plan cannot reach 100% or broke something; empty when the plan is proven.
    pub blockers: Vec<String>,
    /// Unified diff of every edited file.
    pub diff: String,
    /// Files the plan edits.
    pub files: Vec<String>,
    /// The commit made by `apply`, if any.
    pub commit: Option<String>,
    /// A hash of every file's text before and after: harmonize_apply given it as `expect`
    /// writes only this plan.
    pub fingerprint: String,
    #[serde(skip)]
    #[schemars(skip)]
    pub(crate) texts: BTreeMap<String, (String, String)>,
    /// Files the plan creates (per-overlay patches).
    #[serde(skip)]
    #[schemars(skip)]
    pub(crate) created: BTreeSet<String>,
    /// Files the plan deletes (a redundant patch, with `remove_redundant`).
    #[serde(skip)]
    #[schemars(skip)]
    pub(crate) deleted: BTreeSet<String>,
    #[serde(skip)]
    #[schemars(skip)]
    pub(crate) rendered_after: HashMap<String, String>,
    #[serde(skip)]
    #[schemars(skip)]
    pub(crate) affected: Vec<String>,
}

impl HarmonizePlan {
    /// Whether the plan is proven: full coverage, nothing else changed, every build kept.
    pub fn is_proven(&self) -> bool {
        self.blockers.is_empty() && self.covered_after == self.matched
    }

    /// Nothing to do: everything already carries the setting.
    pub fn is_noop(&self) -> bool {
        self.edits.is_empty() && self.covered_before == self.matched
    }

    /// The exceptions the request does not override: applying stops at them.
    pub fn pending_exceptions(&self) -> Vec<&Exception> {
        self.exceptions.iter().filter(|e| !e.overridden).collect()
    }
}

type Key = (String, String, Option<String>, String);

fn identity(o: &Value) -> Key {
    let r = ObjectRef::of(o);
    let group = r.api_version.split_once('/').map(|g| g.0.to_string()).unwrap_or_default();
    (group, r.kind, r.namespace, r.name)
}

/// Render many leaves in parallel.
fn render_all(repo: &Repo, engine: &Engine, dirs: &[String], jobs: usize) -> Result<Vec<(String, Result<String>)>> {
    let pool =
        rayon::ThreadPoolBuilder::new().num_threads(jobs.max(1)).build().map_err(|e| Error::Internal(e.to_string()))?;
    Ok(pool.install(|| {
        dirs.par_iter()
            .map(|d| {
                let out = engine.build(repo, d);
                let r = match out.error {
                    Some(e) => Err(Error::Internal(e)),
                    None => Ok(out.stdout),
                };
                (d.clone(), r)
            })
            .collect()
    }))
}

fn parse(dir: &str, text: &str) -> Result<Vec<Value>> {
    crate::config::yaml::parse_values(text).map_err(|e| Error::Internal(format!("{dir}: rendered output: {e}")))
}

/// Metadata maps that are empty say the same as absent ones.
fn normalized(o: &Value) -> Value {
    let mut v = crate::k8s::diff::normalize(o);
    if let Some(meta) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        for f in ["annotations", "labels"] {
            if meta.get(f).is_some_and(|m| m.is_null() || m.as_object().is_some_and(|m| m.is_empty())) {
                meta.shift_remove(f);
            }
        }
    }
    v
}

/// Computes the plan and proves it in a scratch copy; writes nothing to the repo.
pub fn plan(repo: &Repo, engine: &Engine, req: &HarmonizeRequest, jobs: usize) -> Result<HarmonizePlan> {
    let settings = req.settings()?;
    let kind = req.kind()?;
    for e in &req.env {
        if !repo.environments.contains(e) {
            return Err(Error::Usage(format!(
                "unknown environment {e:?}; environments: {}",
                repo.environments.join(", ")
            )));
        }
    }
    for a in &req.app {
        if !repo.apps.contains_key(a) {
            let names: Vec<&str> = repo.apps.keys().map(String::as_str).collect();
            return Err(Error::Usage(format!("unknown app {a:?}; apps: {}", names.join(", "))));
        }
    }
    let name_re = req.name.as_deref().map(glob).transpose()?;
    let in_scope = |l: &Leaf| {
        (req.env.is_empty() || l.env.as_ref().is_some_and(|e| req.env.contains(e)))
            && (req.app.is_empty() || l.app.as_ref().is_some_and(|a| req.app.contains(a)))
    };
    let leaves: Vec<&Leaf> = repo.leaves.iter().filter(|l| in_scope(l)).collect();
    let dirs: Vec<String> = leaves.iter().map(|l| l.dir.clone()).collect();

    // 1. render and refuse when something is already broken
    let mut before: HashMap<String, Vec<Value>> = HashMap::new();
    let mut broken = Vec::new();
    for (dir, r) in render_all(repo, engine, &dirs, jobs)? {
        match r.and_then(|t| parse(&dir, &t)) {
            Ok(objs) => {
                before.insert(dir, objs);
            }
            Err(e) => broken.push(format!("{dir}: {}", first_line(&e.to_string()))),
        }
    }
    if !broken.is_empty() {
        broken.sort();
        let n = broken.len();
        if n > 12 {
            broken.truncate(10);
            broken.push(format!("... and {} more", n - 10));
        }
        return Err(Error::Usage(format!(
            "{n} overlay(s) do not build before any edit; fix them first (nothing was changed):\n  {}",
            broken.join("\n  ")
        )));
    }

    // 2. population and traces
    let is_member = |o: &Value| {
        o.get("kind").and_then(Value::as_str) == Some(kind.as_str())
            && name_re
                .as_ref()
                .is_none_or(|re| re.is_match(o.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default()))
    };
    let mut population = Vec::new();
    let mut blockers = Vec::new();
    type Pairs = BTreeSet<(String, String)>;
    let mut touches: BTreeMap<(Site, Action), (Touch, Setting, Pairs)> = BTreeMap::new();
    let mut rendered: HashMap<(String, String), &Value> = HashMap::new();
    for l in &leaves {
        for o in before[&l.dir].iter().filter(|o| is_member(o)) {
            let object = ObjectRef::of(o).to_string();
            let covered = settings.iter().all(|s| s.holds(o));
            population.push(Member {
                overlay: l.dir.clone(),
                app: l.app.clone(),
                env: l.env.clone(),
                object: object.clone(),
                covered_before: covered,
                covered_after: covered,
            });
            rendered.insert((l.dir.clone(), object.clone()), o);
            for s in settings.iter().filter(|s| !s.holds(o)) {
                match trace::trace(repo, &l.dir, o, s) {
                    Ok(ts) => {
                        for t in ts {
                            let e = touches
                                .entry((t.site.clone(), t.action.clone()))
                                .or_insert_with(|| (t, s.clone(), BTreeSet::new()));
                            e.2.insert((l.dir.clone(), object.clone()));
                        }
                    }
                    Err(why) => blockers.push(format!("{object} in {}: {why}", l.dir)),
                }
            }
        }
    }

    // A source shared with overlays outside the scope (--env, --app) cannot be edited: the
    // overlays in scope get the setting from a patch of their own instead.
    let mut fallback: BTreeMap<(String, String), BTreeSet<Setting>> = BTreeMap::new();
    touches.retain(|(site, _), (t, s, pairs)| {
        let shared = matches!(t.source, SourceKind::Base | SourceKind::Component)
            && repo.leaves.iter().any(|l| !in_scope(l) && repo.closure(&l.dir).files.contains(&site.file));
        if shared {
            for p in pairs.iter() {
                fallback.entry(p.clone()).or_default().insert(s.clone());
            }
        }
        !shared
    });
    // an overlay patch of the member's own overlay that already sets the key is enough
    for ((_, action), (t, s, pairs)) in &touches {
        if matches!(t.source, SourceKind::OverlayPatch | SourceKind::Json6902) && matches!(action, Action::Set(_)) {
            for (overlay, object) in pairs {
                if t.site.file.starts_with(&format!("{overlay}/"))
                    && let Some(set) = fallback.get_mut(&(overlay.clone(), object.clone()))
                {
                    set.remove(s);
                }
            }
        }
    }
    fallback.retain(|_, set| !set.is_empty());
    let envs_of = |overlays: &BTreeSet<String>| -> Vec<String> {
        repo.environments
            .iter()
            .filter(|e| repo.leaves.iter().any(|l| l.env.as_ref() == Some(*e) && overlays.contains(&l.dir)))
            .cloned()
            .collect()
    };
    let envs_or = |overlays: &BTreeSet<String>| -> Vec<String> {
        let envs = envs_of(overlays);
        if envs.len() == overlays.len() { envs } else { overlays.iter().cloned().collect() }
    };

    // values set on purpose that the edits would overwrite, and patch values that equal
    // their base once the edits are in
    let mut cache = exceptions::Texts::default();
    let mut found: Vec<Exception> = Vec::new();
    let mut redundant: Vec<Redundant> = Vec::new();
    let mut to_remove: Vec<(Site, Action)> = Vec::new();
    for ((site, action), (t, setting, pairs)) in &touches {
        let overlays: BTreeSet<String> = pairs.iter().map(|p| p.0.clone()).collect();
        let list: Vec<String> = overlays.iter().cloned().collect();
        if let Some((evidence, why, current)) = exceptions::exception(repo, &mut cache, t, setting, &list) {
            let mut e = Exception {
                id: format!("{}:{}", site.file, t.line),
                file: site.file.clone(),
                line: t.line,
                app: app_of(repo, &site.file),
                envs: envs_or(&overlays),
                setting: exceptions::setting_name(setting),
                current,
                wanted: setting.value.clone(),
                evidence,
                why,
                overridden: false,
            };
            e.overridden = exceptions::overrides(&req.override_exceptions, &e);
            found.push(e);
        }
        let Action::Set(v) = action else { continue };
        if t.source != SourceKind::OverlayPatch {
            continue;
        }
        // the base each object comes from: set to the same value by an edit, or already
        let key_path = |s: &Site| s.path == ["metadata", setting.field.key(), setting.key.as_str()];
        let mut bases: BTreeSet<String> = BTreeSet::new();
        let equal = pairs.iter().all(|(overlay, object)| {
            let Some(obj) = rendered.get(&(overlay.clone(), object.clone())) else { return false };
            let kind_of = obj.get("kind").and_then(Value::as_str).unwrap_or_default();
            let name = obj.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default();
            let Some((file, doc)) = trace::source_doc(repo, overlay, kind_of, name) else { return false };
            let base_site = Site { file: file.to_string(), block: None, doc: doc.index, path: Vec::new() };
            let edited = touches.keys().any(|(s2, a2)| {
                s2.file == base_site.file && s2.block.is_none() && s2.doc == doc.index && key_path(s2) && a2 == action
            });
            let already = setting.current(&doc.value).and_then(Value::as_str) == Some(v.as_str());
            bases.insert(file.to_string());
            edited || already
        });
        if equal && !pairs.is_empty() {
            redundant.push(Redundant {
                id: format!("{}:{}", site.file, t.line),
                file: site.file.clone(),
                line: t.line,
                envs: envs_or(&overlays),
                setting: exceptions::setting_name(setting),
                equal_to: bases.into_iter().collect::<Vec<_>>().join(", "),
                removed: req.remove_redundant,
            });
            if req.remove_redundant {
                to_remove.push((site.clone(), action.clone()));
            }
        }
    }
    // with remove_redundant: such a value is removed instead of set (its map too when it
    // was the only key: `annotations:` left empty would read as null and drop them all)
    for (site, action) in to_remove {
        let Some((t, setting, pairs)) = touches.remove(&(site.clone(), action)) else { continue };
        let mut path = site.path.clone();
        let parent = Site { path: path[..path.len().saturating_sub(1)].to_vec(), ..site.clone() };
        if exceptions::value_at(repo, &parent).and_then(|m| m.as_object().map(|m| m.len())) == Some(1) {
            path.pop();
        }
        let site = Site { path, ..site };
        touches.insert((site.clone(), Action::Remove), (Touch { site, action: Action::Remove, ..t }, setting, pairs));
    }

    // 3. edits, applied in memory
    let mut texts: BTreeMap<String, (String, String)> = BTreeMap::new();
    let mut created: BTreeSet<String> = BTreeSet::new();
    let mut deleted: BTreeSet<String> = BTreeSet::new();
    let mut edits = Vec::new();
    let read = |file: &str| crate::config::limits::read_text(&repo.abs(file), repo.config.limits.file_bytes);
    for ((site, action), (t, setting, pairs)) in &touches {
        if !texts.contains_key(&site.file) {
            let original = read(&site.file)?;
            texts.insert(site.file.clone(), (original.clone(), original));
        }
        let Some(entry) = texts.get_mut(&site.file) else { continue };
        match apply_touch(&entry.1, site, action) {
            Ok(new) => entry.1 = new,
            Err(e) => {
                blockers.push(format!("{}:{}: cannot edit {}: {e}", site.file, t.line, site.path.join(".")));
                continue;
            }
        }
        let overlays: BTreeSet<String> = pairs.iter().map(|p| p.0.clone()).collect();
        let objects: BTreeSet<String> = pairs.iter().map(|p| p.1.clone()).collect();
        let id = format!("{}:{}", site.file, t.line);
        let change = match redundant.iter().find(|r| r.removed && r.id == id) {
            Some(r) => format!("remove {} (equal to {} after the edits)", r.setting, r.equal_to),
            None => setting.describe(),
        };
        // a patch file left with nothing to do goes, with its entry in the kustomization
        if let Some(r) = redundant.iter().find(|r| r.removed && r.id == id)
            && site.block.is_none()
            && let Some(entry) = texts.get(&site.file)
            && identity_only(&entry.1)
            && let Some((kfile, _)) = exceptions::patch_entry(repo, &overlays.iter().cloned().collect::<Vec<_>>(), site)
        {
            if !texts.contains_key(&kfile) {
                let original = read(&kfile)?;
                texts.insert(kfile.clone(), (original.clone(), original));
            }
            let rel = site.file.rsplit('/').next().unwrap_or(&site.file).to_string();
            let dropped = texts.get(&kfile).and_then(|k| exceptions::drop_path_entry(&k.1, &rel));
            if let (Some(new_k), Some(k)) = (dropped, texts.get_mut(&kfile)) {
                k.1 = new_k;
                if let Some(e) = texts.get_mut(&site.file) {
                    e.1 = String::new();
                }
                deleted.insert(site.file.clone());
                edits.push(Edit {
                    file: kfile.clone(),
                    line: 1,
                    source: SourceKind::OverlayPatch,
                    change: format!("drop the patch {rel}: it only set {}, now equal to {}", r.setting, r.equal_to),
                    app: app_of(repo, &kfile),
                    objects: objects.iter().cloned().collect(),
                    envs: envs_of(&overlays),
                    overlays: overlays.iter().cloned().collect(),
                });
            }
        }
        edits.push(Edit {
            file: site.file.clone(),
            line: t.line,
            source: t.source,
            change,
            app: app_of(repo, &site.file),
            objects: objects.into_iter().collect(),
            envs: envs_of(&overlays),
            overlays: overlays.into_iter().collect(),
        });
    }
    for ((overlay, object), set) in &fallback {
        let Some(obj) = rendered.get(&(overlay.clone(), object.clone())) else { continue };
        let kind_of = obj.get("kind").and_then(Value::as_str).unwrap_or_default();
        let rendered_name = obj.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default();
        let name = trace::source_doc(repo, overlay, kind_of, rendered_name)
            .and_then(|(_, d)| d.value.pointer("/metadata/name").and_then(Value::as_str))
            .unwrap_or(rendered_name);
        let Some(k) = repo.kustomizations.get(overlay) else { continue };
        let mut file = format!("{overlay}/harmonize-{}-{name}.yaml", kind_of.to_ascii_lowercase());
        let mut n = 2;
        while repo.abs(&file).exists() || texts.contains_key(&file) {
            file = format!("{overlay}/harmonize-{}-{name}-{n}.yaml", kind_of.to_ascii_lowercase());
            n += 1;
        }
        let settings_here: Vec<&Setting> = set.iter().collect();
        let api_version = obj.get("apiVersion").and_then(Value::as_str).unwrap_or("v1");
        texts.insert(
            file.clone(),
            (String::new(), overlay_patch(api_version, kind_of, name, &settings_here, &req.reason)),
        );
        created.insert(file.clone());
        if !texts.contains_key(&k.file) {
            let original = read(&k.file)?;
            texts.insert(k.file.clone(), (original.clone(), original));
        }
        let rel = file.rsplit('/').next().unwrap_or(&file).to_string();
        if let Some(entry) = texts.get_mut(&k.file) {
            entry.1 = crate::workflows::capture::add_patch_entry(&entry.1, &rel);
        }
        let overlays: BTreeSet<String> = [overlay.clone()].into();
        let change: Vec<String> = settings_here.iter().map(|s| s.describe()).collect();
        edits.push(Edit {
            file: file.clone(),
            line: 1,
            source: SourceKind::OverlayPatch,
            change: format!("new patch ({}; its source is shared with overlays outside the scope)", change.join(", ")),
            app: app_of(repo, &file),
            objects: vec![object.clone()],
            envs: envs_of(&overlays),
            overlays: overlays.into_iter().collect(),
        });
    }
    texts.retain(|f, (a, b)| a != b || created.contains(f) || deleted.contains(f));
    edits.sort_by(|a, b| (&a.app, &a.file, a.line).cmp(&(&b.app, &b.file, b.line)));
    if population.is_empty() {
        // a mistyped kind or name glob must not read as "proven, 0/0"
        let mut kinds: BTreeSet<&str> = BTreeSet::new();
        for l in &leaves {
            kinds.extend(before[&l.dir].iter().filter_map(|o| o.get("kind").and_then(Value::as_str)));
        }
        blockers.push(format!(
            "no {kind} object{} renders in the {} overlay(s) in scope; kinds that do: {}",
            req.name.as_deref().map(|g| format!(" named {g}")).unwrap_or_default(),
            leaves.len(),
            kinds.into_iter().collect::<Vec<_>>().join(", ")
        ));
    }

    let mut plan = HarmonizePlan {
        kind: kind.clone(),
        env: req.env.clone(),
        app: req.app.clone(),
        name: req.name.clone(),
        settings: settings.clone(),
        reason: req.reason.clone(),
        matched: population.len(),
        covered_before: population.iter().filter(|m| m.covered_before).count(),
        covered_after: 0,
        overlays: leaves.len(),
        overlays_rebuilt: 0,
        overlays_built: 0,
        population,
        edits,
        exceptions: found,
        redundant,
        blockers,
        diff: String::new(),
        files: texts.keys().cloned().collect(),
        commit: None,
        fingerprint: crate::workflows::fingerprint::of(&(&texts, &created, &deleted)),
        texts,
        created,
        deleted,
        rendered_after: HashMap::new(),
        affected: Vec::new(),
    };
    plan.diff = diff_text(&plan, &|f| app_of(repo, f));

    // 4. the proof, in a scratch copy
    prove(repo, engine, &mut plan, &before, &|l: &Leaf| in_scope(l), &is_member, jobs)?;
    Ok(plan)
}

/// A patch text whose documents hold only their object's identity (a no-op patch).
fn identity_only(text: &str) -> bool {
    let Ok(docs) = crate::config::yaml::parse_documents(text) else { return false };
    !docs.is_empty()
        && docs.iter().all(|d| match &d.value {
            Value::Object(m) => {
                m.keys().all(|k| matches!(k.as_str(), "apiVersion" | "kind" | "metadata"))
                    && m.get("metadata").and_then(Value::as_object).is_none_or(|meta| {
                        meta.iter().all(|(k, v)| matches!(k.as_str(), "name" | "namespace") || v.is_null())
                    })
            }
            _ => false,
        })
}

fn first_line(s: &str) -> &str {
    s.lines().find(|l| !l.trim().is_empty()).unwrap_or(s).trim()
}

/// The app a repo file belongs to.
pub fn app_of(repo: &Repo, file: &str) -> Option<String> {
    repo.owner_of(file).0
}

/// A strategic-merge patch carrying the settings for one object, for an overlay whose
/// sources are shared with overlays outside the scope.
fn overlay_patch(api_version: &str, kind: &str, name: &str, settings: &[&Setting], reason: &str) -> String {
    let q = crate::config::yaml::plain_or_quoted;
    let mut out = format!(
        "# Added by agentops harmonize: {}\napiVersion: {api_version}\nkind: {kind}\nmetadata:\n  name: {}\n",
        reason.lines().next().unwrap_or_default().trim(),
        q(name)
    );
    for field in [Field::Annotations, Field::Labels] {
        let here: Vec<&&Setting> = settings.iter().filter(|s| s.field == field).collect();
        if here.is_empty() {
            continue;
        }
        out.push_str(&format!("  {}:\n", field.key()));
        for s in here {
            let v = s.value.as_deref().map_or_else(|| "null".to_string(), q);
            out.push_str(&format!("    {}: {v}\n", q(&s.key)));
        }
    }
    out
}

/// Applies one edit to a file's text.
fn apply_touch(text: &str, site: &Site, action: &Action) -> std::result::Result<String, EditError> {
    let path: Vec<&str> = site.path.iter().map(String::as_str).collect();
    let one = |t: &str| match action {
        Action::Set(v) => edit::set_string(t, site.doc, &path, v),
        Action::Remove => match edit::remove(t, site.doc, &path) {
            // already gone (an earlier edit removed the parent map)
            Err(EditError::NotFound(_)) => Ok(t.to_string()),
            r => r,
        },
    };
    match &site.block {
        None => one(text),
        Some(block) => {
            let block: Vec<&str> = block.iter().map(String::as_str).collect();
            edit::edit_block(text, &block, |inner| one(inner))
        }
    }
}

/// The unified diff of every edited file, grouped by app.
pub fn diff_text(plan: &HarmonizePlan, app_of: &dyn Fn(&str) -> Option<String>) -> String {
    let mut by_app: BTreeMap<String, Vec<&String>> = BTreeMap::new();
    for f in plan.texts.keys() {
        let app = app_of(f);
        by_app.entry(app.unwrap_or_else(|| "(shared)".into())).or_default().push(f);
    }
    let mut out = String::new();
    for (_, files) in by_app {
        for f in files {
            let (old, new) = &plan.texts[f];
            let d = similar::TextDiff::from_lines(old.as_str(), new.as_str());
            let to = if plan.deleted.contains(f) { "/dev/null".to_string() } else { format!("b/{f}") };
            out.push_str(&d.unified_diff().context_radius(2).header(&format!("a/{f}"), &to).to_string());
        }
    }
    out
}

/// Re-renders every overlay that reads an edited file, in a scratch copy, and checks the result.
#[allow(clippy::too_many_arguments)]
fn prove(
    repo: &Repo,
    engine: &Engine,
    plan: &mut HarmonizePlan,
    before: &HashMap<String, Vec<Value>>,
    in_scope: &dyn Fn(&Leaf) -> bool,
    is_member: &dyn Fn(&Value) -> bool,
    jobs: usize,
) -> Result<()> {
    let edited: BTreeSet<&String> = plan.texts.keys().collect();
    let affected: Vec<&Leaf> =
        repo.leaves.iter().filter(|l| repo.closure(&l.dir).files.iter().any(|f| edited.contains(f))).collect();
    plan.affected = affected.iter().map(|l| l.dir.clone()).collect();
    plan.overlays_rebuilt = affected.len();
    if affected.is_empty() {
        plan.covered_after = plan.covered_before;
        if plan.covered_after < plan.matched && plan.blockers.is_empty() {
            plan.blockers.push("no edit was found for the objects that lack the setting".into());
        }
        return Ok(());
    }
    // before-renderings of affected overlays outside the scope
    let missing: Vec<String> = plan.affected.iter().filter(|d| !before.contains_key(*d)).cloned().collect();
    let mut outside: HashMap<String, Option<Vec<Value>>> = HashMap::new();
    for (dir, r) in render_all(repo, engine, &missing, jobs)? {
        outside.insert(dir.clone(), r.ok().and_then(|t| parse(&dir, &t).ok()));
    }

    // the scratch copy: everything the affected overlays read, with the edited files new
    let scratch = tempfile::Builder::new()
        .prefix("agentops-harmonize-")
        .tempdir()
        .map_err(|e| Error::io(&std::env::temp_dir(), e))?;
    let mut files: BTreeSet<String> = BTreeSet::new();
    for l in &affected {
        files.extend(repo.closure(&l.dir).files.iter().cloned());
    }
    for f in files.iter().chain(std::iter::once(&crate::config::CONFIG_FILE.to_string())) {
        if f.starts_with("../") || plan.texts.contains_key(f) {
            continue;
        }
        let src = repo.abs(f);
        let dst = scratch.path().join(f);
        if let Some(p) = dst.parent() {
            std::fs::create_dir_all(p).map_err(|e| Error::io(p, e))?;
        }
        if src.is_file() {
            std::fs::copy(&src, &dst).map_err(|e| Error::io(&src, e))?;
        } else if src.is_dir() {
            std::fs::create_dir_all(&dst).map_err(|e| Error::io(&dst, e))?;
        }
    }
    for (f, (_, new)) in plan.texts.iter().filter(|(f, _)| !plan.deleted.contains(*f)) {
        let dst = scratch.path().join(f);
        if let Some(p) = dst.parent() {
            std::fs::create_dir_all(p).map_err(|e| Error::io(p, e))?;
        }
        std::fs::write(&dst, new).map_err(|e| Error::io(&dst, e))?;
    }
    let scratch_repo = Repo::load_with(scratch.path(), repo.config.clone())?;
    let after = render_all(&scratch_repo, engine, &plan.affected, jobs)?;

    let mut covered_after: BTreeMap<(String, String), bool> = BTreeMap::new();
    let mut problems = Vec::new();
    let mut built = 0;
    for (dir, r) in after {
        let leaf = affected.iter().find(|l| l.dir == dir).copied();
        let old: Option<&Vec<Value>> = before.get(&dir).or_else(|| outside.get(&dir).and_then(Option::as_ref));
        let text = match r {
            Ok(t) => t,
            Err(e) => {
                if old.is_some() {
                    problems.push(format!("{dir} no longer builds: {}", first_line(&e.to_string())));
                }
                continue;
            }
        };
        built += 1;
        let new_objs = parse(&dir, &text)?;
        plan.rendered_after.insert(dir.clone(), text);
        let Some(old) = old else { continue };
        let scoped = leaf.is_some_and(in_scope);
        let mut new_by_id: HashMap<Key, &Value> = new_objs.iter().map(|o| (identity(o), o)).collect();
        for o in old {
            let id = identity(o);
            let Some(n) = new_by_id.remove(&id) else {
                problems.push(format!("{dir}: {} is no longer rendered", ObjectRef::of(o)));
                continue;
            };
            let member = scoped && is_member(o);
            let mut expected = o.clone();
            if member {
                for s in &plan.settings {
                    s.apply(&mut expected);
                }
                covered_after
                    .insert((dir.clone(), ObjectRef::of(o).to_string()), plan.settings.iter().all(|s| s.holds(n)));
            }
            if normalized(&expected) != normalized(n) {
                let what = if member { "changes beyond the setting" } else { "changes but is not in the population" };
                let changes = crate::k8s::diff::diff(&normalized(&expected), &normalized(n));
                let detail: Vec<String> = changes.iter().take(3).map(|c| c.summary.clone()).collect();
                problems.push(format!("{dir}: {} {what} ({})", ObjectRef::of(o), detail.join("; ")));
            }
        }
        for (_, n) in new_by_id {
            problems.push(format!("{dir}: {} appears after the edits", ObjectRef::of(n)));
        }
    }
    plan.overlays_built = built;
    for m in &mut plan.population {
        if let Some(c) = covered_after.get(&(m.overlay.clone(), m.object.clone())) {
            m.covered_after = *c;
        }
    }
    plan.covered_after = plan.population.iter().filter(|m| m.covered_after).count();
    plan.blockers.extend(problems);
    if plan.covered_after < plan.matched {
        let missing: Vec<String> = plan
            .population
            .iter()
            .filter(|m| !m.covered_after)
            .take(10)
            .map(|m| format!("{} in {}", m.object, m.overlay))
            .collect();
        plan.blockers.push(format!(
            "coverage {}/{}; still without the setting: {}",
            plan.covered_after,
            plan.matched,
            missing.join(", ")
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn req() -> HarmonizeRequest {
        HarmonizeRequest {
            kind: "ingresses".into(),
            set_annotations: [("nginx.ingress.kubernetes.io/ssl-protocols".into(), "TLSv1.3".into())].into(),
            reason: "SEC-1".into(),
            ..HarmonizeRequest::default()
        }
    }

    #[test]
    fn requests_are_checked_before_anything_renders() {
        assert_eq!(req().kind().unwrap(), "Ingress");
        assert_eq!(req().settings().unwrap().len(), 1);
        let bad = |r: HarmonizeRequest| r.settings().unwrap_err().to_string();
        assert!(bad(HarmonizeRequest { reason: " ".into(), ..req() }).contains("reason is required"));
        assert!(
            bad(HarmonizeRequest { set_annotations: Default::default(), ..req() }).contains("nothing to harmonize")
        );
        let both =
            HarmonizeRequest { remove_annotations: vec!["nginx.ingress.kubernetes.io/ssl-protocols".into()], ..req() };
        assert!(bad(both).contains("both set and removed"));
        let key = HarmonizeRequest { set_annotations: [("Bad_Prefix/x".into(), "v".into())].into(), ..req() };
        assert!(bad(key).contains("not a DNS subdomain"));
        let label = HarmonizeRequest { set_labels: [("tier".into(), "not valid!".into())].into(), ..req() };
        assert!(bad(label).contains("at most 63"));
        assert!(HarmonizeRequest { kind: "no such".into(), ..req() }.kind().is_err());
    }

    #[test]
    fn settings_hold_and_apply_on_rendered_objects() {
        let set = Setting { field: Field::Annotations, key: "a/b".into(), value: Some("1".into()) };
        let remove = Setting { field: Field::Labels, key: "tier".into(), value: None };
        let mut o = json!({"kind": "Ingress", "metadata": {"name": "x", "labels": {"tier": "web"}}});
        assert!(!set.holds(&o) && !remove.holds(&o));
        set.apply(&mut o);
        remove.apply(&mut o);
        assert!(set.holds(&o) && remove.holds(&o));
        assert_eq!(o["metadata"]["annotations"], json!({"a/b": "1"}));
        // a number is not the string the setting asks for
        let n = json!({"metadata": {"annotations": {"a/b": 1}}});
        assert!(!set.holds(&n));
        // empty maps and absent ones compare equal
        assert_eq!(normalized(&json!({"metadata": {"labels": {}}})), normalized(&json!({"metadata": {}})));
    }

    #[test]
    fn globs_match_whole_names() {
        let g = glob("api-*").unwrap();
        assert!(g.is_match("api-gateway") && !g.is_match("web-api-gateway"));
        assert!(glob("a?c").unwrap().is_match("abc"));
        assert!(glob("a.c").unwrap().is_match("a.c") && !glob("a.c").unwrap().is_match("abc"));
        assert!(glob("web-[ab]").unwrap().is_match("web-b") && !glob("web-[ab]").unwrap().is_match("web-c"));
        assert!(glob("web-[").unwrap_err().to_string().contains("--name \"web-[\""));
    }

    #[test]
    fn new_overlay_patches_quote_only_what_needs_it() {
        use crate::config::yaml::plain_or_quoted as scalar;
        assert_eq!(scalar("TLSv1.3"), "TLSv1.3");
        assert_eq!(scalar("true"), "\"true\"");
        assert_eq!(scalar("8080"), "\"8080\"");
        assert_eq!(scalar("TLSv1.2 TLSv1.3"), "\"TLSv1.2 TLSv1.3\"");
        let set = Setting { field: Field::Annotations, key: "a.io/b".into(), value: Some("on".into()) };
        let rm = Setting { field: Field::Labels, key: "tier".into(), value: None };
        assert_eq!(
            overlay_patch("networking.k8s.io/v1", "Ingress", "web", &[&set, &rm], "why\nmore"),
            "# Added by agentops harmonize: why\napiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: web\n  annotations:\n    a.io/b: \"on\"\n  labels:\n    tier: null\n"
        );
    }

    #[test]
    fn edits_inside_inline_patches_keep_the_block() {
        let text = "patches:\n  # why\n  - patch: |-\n      kind: Ingress\n      metadata:\n        name: w\n        annotations:\n          a: \"1\"\n          b: x\n";
        let site = Site {
            file: "k.yaml".into(),
            block: Some(vec!["patches".into(), "0".into(), "patch".into()]),
            doc: 0,
            path: vec!["metadata".into(), "annotations".into(), "a".into()],
        };
        let out = apply_touch(text, &site, &Action::Set("2".into())).unwrap();
        assert_eq!(out, text.replace("a: \"1\"", "a: \"2\""));
        let out = apply_touch(text, &site, &Action::Remove).unwrap();
        assert_eq!(out, text.replace("          a: \"1\"\n", ""));
    }
}
