//! The in-memory object store of one mock cluster: objects by resource, namespace and name,
//! one global resourceVersion counter, and every write pipeline of the API server (create,
//! update, the four patch types, status and scale subresources, delete) with its metadata
//! bookkeeping: uid, creationTimestamp, generation, resourceVersion and managedFields. Every
//! committed change is kept in a bounded history and broadcast, which watches replay and follow.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::{Map, Value, json};
use tokio::sync::broadcast;

use super::admission;
use super::resources::{self, Resource, ResourceSet, split_api_version};
use super::selector::{FieldSelector, LabelSelector};
use super::util;
use crate::k8s::{fields, patch};

pub use super::status::StoreError;

/// Events kept for watches that resume from a resourceVersion.
const HISTORY: usize = 10_000;
const BROADCAST: usize = 8_192;

/// The kind of a committed change, as watch events name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Added,
    Modified,
    Deleted,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// One committed change: the object after it (before it, for a deletion, with the deletion's
/// resourceVersion).
#[derive(Debug, Clone)]
pub struct StoreEvent {
    pub event: EventType,
    pub object: Value,
    pub resource_version: u64,
}

impl StoreEvent {
    /// The watch-event JSON: `{"type": "ADDED", "object": {...}}`.
    pub fn to_json(&self) -> Value {
        json!({"type": self.event.as_str(), "object": self.object})
    }

    /// Whether the event's object is of this group and kind.
    pub fn is_of(&self, group: &str, kind: &str) -> bool {
        let av = self.object.get("apiVersion").and_then(Value::as_str).unwrap_or_default();
        split_api_version(av).0 == group && self.object.get("kind").and_then(Value::as_str) == Some(kind)
    }
}

/// How a patch body is to be read, from its Content-Type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchType {
    Json,
    Merge,
    Strategic,
    Apply,
}

impl PatchType {
    pub fn from_content_type(ct: &str) -> Option<PatchType> {
        let media = ct.split(';').next().unwrap_or_default().trim();
        match media {
            "application/json-patch+json" => Some(PatchType::Json),
            "application/merge-patch+json" => Some(PatchType::Merge),
            "application/strategic-merge-patch+json" => Some(PatchType::Strategic),
            "application/apply-patch+yaml" | "application/apply-patch+json" => Some(PatchType::Apply),
            _ => None,
        }
    }
}

/// Who writes and how.
#[derive(Debug, Clone, Default)]
pub struct WriteOptions {
    pub manager: String,
    pub dry_run: bool,
    /// `status` or `scale`, when the write goes to a subresource.
    pub subresource: Option<String>,
    /// Server-side apply: take fields other managers set to other values.
    pub force: bool,
}

/// Where a watch starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WatchFrom {
    /// ADDED events for what exists now, then changes.
    Initial,
    /// Changes after this resourceVersion.
    After(u64),
}

/// A watch ready to stream: the events to send first, then the live receiver.
pub struct WatchStart {
    pub backlog: Vec<StoreEvent>,
    pub receiver: broadcast::Receiver<StoreEvent>,
    /// The store's resourceVersion when the watch started.
    pub resource_version: u64,
    /// For a watch resuming from a resourceVersion: the objects that exist now.
    pub current: Vec<Value>,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Key {
    group: String,
    plural: String,
    namespace: String,
    name: String,
}

impl Key {
    fn new(r: &Resource, namespace: Option<&str>, name: &str) -> Key {
        Key {
            group: r.group.clone(),
            plural: r.plural.clone(),
            namespace: if r.namespaced { namespace.unwrap_or_default().to_string() } else { String::new() },
            name: name.to_string(),
        }
    }
}

struct State {
    rv: u64,
    objects: BTreeMap<Key, Value>,
    resources: ResourceSet,
    history: VecDeque<StoreEvent>,
    /// Every change after this resourceVersion is in `history`.
    history_floor: u64,
    mock_metrics: Vec<Value>,
    mock_behaviour: Vec<Value>,
}

struct Inner {
    state: Mutex<State>,
    events: broadcast::Sender<StoreEvent>,
}

/// The objects of one mock cluster. Cheap to clone; all clones share the same objects.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let st = self.lock();
        f.debug_struct("Store").field("objects", &st.objects.len()).field("resource_version", &st.rv).finish()
    }
}

impl Default for Store {
    fn default() -> Self {
        Store::new()
    }
}

fn s<'a>(v: &'a Value, ptr: &str) -> &'a str {
    v.pointer(ptr).and_then(Value::as_str).unwrap_or_default()
}

fn meta_mut(obj: &mut Value) -> &mut Map<String, Value> {
    if !obj.is_object() {
        *obj = json!({});
    }
    if !obj["metadata"].is_object() {
        obj["metadata"] = json!({});
    }
    match obj.get_mut("metadata") {
        Some(Value::Object(m)) => m,
        _ => unreachable!("metadata was just made an object"),
    }
}

/// The object without metadata and status: what a generation bump compares.
fn spec_part(obj: &Value) -> Value {
    let mut o = obj.clone();
    if let Value::Object(m) = &mut o {
        m.remove("metadata");
        m.remove("status");
        m.remove("apiVersion");
        m.remove("kind");
    }
    o
}

fn rv_of(obj: &Value) -> u64 {
    s(obj, "/metadata/resourceVersion").parse().unwrap_or(0)
}

/// A DNS-1123 subdomain (most object names) or label (namespaces, services).
fn name_problem(r: &Resource, name: &str) -> Option<String> {
    if r.group == "rbac.authorization.k8s.io" {
        return (name.contains('/') || name.contains('%') || name == "." || name == "..")
            .then(|| format!("Invalid value: {name:?}: may not contain '/' or '%'"));
    }
    let label = matches!(r.plural.as_str(), "namespaces" | "services");
    let ok_label = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if label {
        if !ok_label(name) {
            return Some(format!(
                "Invalid value: {name:?}: a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', \
                 and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is \
                 '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
            ));
        }
    } else if name.len() > 253 || !name.split('.').all(ok_label) {
        return Some(format!(
            "Invalid value: {name:?}: a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', \
             and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is \
             '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
        ));
    }
    None
}

/// The few semantic checks the mock makes, with the real server's messages.
fn validate(r: &Resource, obj: &Value) -> Result<(), StoreError> {
    let name = s(obj, "/metadata/name");
    let mut causes: Vec<(&str, &str, String)> = Vec::new();
    if let Some(p) = name_problem(r, name) {
        causes.push(("metadata.name", "FieldValueInvalid", p));
    }
    if r.group == "apps" && matches!(r.kind.as_str(), "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet") {
        match obj.pointer("/spec/selector") {
            None | Some(Value::Null) => causes.push(("spec.selector", "FieldValueRequired", "Required value".into())),
            Some(sel) => {
                let labels = obj
                    .pointer("/spec/template/metadata/labels")
                    .and_then(Value::as_object)
                    .cloned()
                    .unwrap_or_default();
                if !crate::k8s::selector_matches(sel, &labels) {
                    causes.push((
                        "spec.template.metadata.labels",
                        "FieldValueInvalid",
                        format!(
                            "Invalid value: {}: `selector` does not match template `labels`",
                            Value::Object(labels)
                        ),
                    ));
                }
            }
        }
    }
    if r.group == "apps"
        && r.kind == "Deployment"
        && s(obj, "/spec/strategy/type") == "Recreate"
        && obj.pointer("/spec/strategy/rollingUpdate").is_some_and(|v| !v.is_null())
    {
        causes.push((
            "spec.strategy.rollingUpdate",
            "FieldValueForbidden",
            "Forbidden: may not be specified when strategy `type` is 'Recreate'".into(),
        ));
    }
    if causes.is_empty() { Ok(()) } else { Err(StoreError::invalid(r, name, &causes)) }
}

/// Marks (`.`) every node of a removed-fields tree that the object no longer has at all
/// (`kept` is the new object's tree at the same place), so the map or list item itself
/// leaves its owners too, not only its fields.
fn mark_gone(removed: &mut Value, kept: Option<&Value>) {
    let Some(map) = removed.as_object_mut() else { return };
    for (k, child) in map.iter_mut() {
        if k == "." {
            continue;
        }
        let kept_child = kept.and_then(|t| t.get(k));
        if kept_child.is_none()
            && let Some(m) = child.as_object_mut()
        {
            m.insert(".".into(), json!({}));
        }
        mark_gone(child, kept_child);
    }
}

/// A FieldsV1 tree: `a ∩ b`.
fn intersect(a: &Value, b: &Value) -> Value {
    let mut only_a = a.clone();
    if fields::subtract_trees(&mut only_a, b) {
        return a.clone();
    }
    let mut out = a.clone();
    if fields::subtract_trees(&mut out, &only_a) {
        return json!({});
    }
    out
}

fn is_empty_tree(t: &Value) -> bool {
    t.as_object().is_none_or(Map::is_empty)
}

/// The paths a FieldsV1 tree owns, as structured-merge-diff prints them:
/// `.spec.replicas`, `.spec.template.spec.containers[name="api"].image`.
fn owned_paths(tree: &Value, prefix: &str, out: &mut Vec<String>) {
    let Some(map) = tree.as_object() else {
        return;
    };
    if (map.is_empty() || map.contains_key(".")) && !prefix.is_empty() {
        out.push(prefix.to_string());
    }
    for (k, child) in map {
        let step = if let Some(f) = k.strip_prefix("f:") {
            format!(".{f}")
        } else if let Some(key) = k.strip_prefix("k:") {
            match serde_json::from_str::<Value>(key) {
                Ok(Value::Object(m)) => {
                    let parts: Vec<String> = m.iter().map(|(k, v)| format!("{k}={v}")).collect();
                    format!("[{}]", parts.join(","))
                }
                _ => format!("[{key}]"),
            }
        } else if let Some(v) = k.strip_prefix("v:") {
            format!("[={v}]")
        } else if let Some(i) = k.strip_prefix("i:") {
            format!("[{i}]")
        } else {
            continue;
        };
        owned_paths(child, &format!("{prefix}{step}"), out);
    }
}

/// How the API server names a manager in a conflict: `"kubectl" with subresource "scale"
/// using apps/v1 at 2025-03-11T08:45:37Z` (version and time for Update entries only).
fn print_manager(e: &Value) -> String {
    let mut out = format!("{:?}", s(e, "/manager"));
    if !s(e, "/subresource").is_empty() {
        out.push_str(&format!(" with subresource {:?}", s(e, "/subresource")));
    }
    if s(e, "/operation") == "Update" {
        out.push_str(&format!(" using {}", s(e, "/apiVersion")));
        if !s(e, "/time").is_empty() {
            out.push_str(&format!(" at {}", s(e, "/time")));
        }
    }
    out
}

/// A non-forced apply that changes fields other managers own fails with 409, naming them.
fn apply_conflicts(managed: &[Value], manager: &str, sub: Option<&str>, taken: &Value) -> Result<(), StoreError> {
    let mut conflicts: Vec<(String, String)> = Vec::new();
    for e in managed {
        let own = s(e, "/manager") == manager
            && s(e, "/operation") == "Apply"
            && s(e, "/subresource") == sub.unwrap_or_default();
        if own {
            continue;
        }
        let Some(tree) = e.get("fieldsV1") else { continue };
        let overlap = intersect(tree, taken);
        let mut paths = Vec::new();
        owned_paths(&overlap, "", &mut paths);
        for p in paths {
            conflicts.push((print_manager(e), p));
        }
    }
    if conflicts.is_empty() {
        return Ok(());
    }
    let message = if conflicts.len() == 1 {
        format!("Apply failed with 1 conflict: conflict with {}: {}", conflicts[0].0, conflicts[0].1)
    } else {
        let mut by_manager: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for (m, p) in &conflicts {
            by_manager.entry(m).or_default().push(p);
        }
        let mut lines = Vec::new();
        for (m, paths) in by_manager {
            lines.push(format!("conflicts with {m}:"));
            lines.extend(paths.iter().map(|p| format!("- {p}")));
        }
        format!("Apply failed with {} conflicts: {}", conflicts.len(), lines.join("\n"))
    };
    let causes: Vec<Value> = conflicts
        .iter()
        .map(|(m, p)| json!({"reason": "FieldManagerConflict", "message": format!("conflict with {m}"), "field": p}))
        .collect();
    Err(StoreError { details: Some(Box::new(json!({"causes": causes}))), ..StoreError::new(409, "Conflict", message) })
}

/// Server-side apply removes what a manager applied before and no longer applies, unless
/// another manager owns it too.
fn remove_unapplied(obj: &mut Value, applied: &Value, manager: &str, sub: Option<&str>) {
    let managed = obj.pointer("/metadata/managedFields").and_then(Value::as_array).cloned().unwrap_or_default();
    let is_own = |e: &Value| {
        s(e, "/manager") == manager && s(e, "/operation") == "Apply" && s(e, "/subresource") == sub.unwrap_or_default()
    };
    let Some(mut removed) = managed.iter().find(|e| is_own(e)).and_then(|e| e.get("fieldsV1")).cloned() else {
        return;
    };
    if fields::subtract_trees(&mut removed, applied) {
        return;
    }
    let mut others = json!({});
    for e in managed.iter().filter(|e| !is_own(e)) {
        if let Some(t) = e.get("fieldsV1") {
            fields::merge_trees(&mut others, t);
        }
    }
    if fields::subtract_trees(&mut removed, &others) {
        return;
    }
    remove_paths(obj, &removed, Some(&others));
}

/// The position of the list item a FieldsV1 key (`k:{...}`, `v:...`, `i:N`) names.
fn find_item(items: &[Value], key: &str) -> Option<usize> {
    if let Some(k) = key.strip_prefix("k:") {
        let Ok(Value::Object(want)) = serde_json::from_str::<Value>(k) else {
            return None;
        };
        return items.iter().position(|item| {
            want.iter().all(|(f, v)| item.get(f) == Some(v) || (f == "protocol" && v == "TCP" && item.get(f).is_none()))
        });
    }
    if let Some(v) = key.strip_prefix("v:") {
        let want: Value = serde_json::from_str(v).ok()?;
        return items.iter().position(|item| *item == want);
    }
    key.strip_prefix("i:")?.parse().ok().filter(|i| *i < items.len())
}

/// Deletes from `obj` every path `removed` owns; a map or list item marked owned (`.`) goes
/// only when no other manager owns anything inside it.
fn remove_paths(obj: &mut Value, removed: &Value, others: Option<&Value>) {
    let Some(tree) = removed.as_object() else { return };
    for (k, child) in tree {
        if k == "." {
            continue;
        }
        let child_others = others.and_then(|o| o.get(k));
        let whole = child.as_object().is_some_and(|m| m.is_empty() || m.contains_key("."));
        let drop_whole = whole && child_others.is_none();
        match obj {
            Value::Object(map) => {
                let Some(field) = k.strip_prefix("f:") else { continue };
                if drop_whole {
                    map.remove(field);
                } else if let Some(target) = map.get_mut(field) {
                    remove_paths(target, child, child_others);
                }
            }
            Value::Array(items) => {
                let Some(i) = find_item(items, k) else { continue };
                if drop_whole {
                    items.remove(i);
                } else {
                    remove_paths(&mut items[i], child, child_others);
                }
            }
            _ => {}
        }
    }
}

/// `.spec.replicas` -> `/spec/replicas`.
fn json_path_pointer(path: &str) -> String {
    path.trim_start_matches('.').split('.').map(|p| format!("/{p}")).collect()
}

/// A metav1.LabelSelector as the selector string a Scale reports.
fn selector_string(sel: &Value) -> String {
    if let Some(s) = sel.as_str() {
        return s.to_string();
    }
    let mut parts = Vec::new();
    if let Some(ml) = sel.get("matchLabels").and_then(Value::as_object) {
        for (k, v) in ml {
            parts.push(format!("{k}={}", v.as_str().unwrap_or_default()));
        }
    }
    for e in sel.get("matchExpressions").and_then(Value::as_array).into_iter().flatten() {
        let key = s(e, "/key");
        let values: Vec<&str> =
            e.get("values").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str).collect();
        match s(e, "/operator") {
            "In" => parts.push(format!("{key} in ({})", values.join(","))),
            "NotIn" => parts.push(format!("{key} notin ({})", values.join(","))),
            "Exists" => parts.push(key.to_string()),
            "DoesNotExist" => parts.push(format!("!{key}")),
            _ => {}
        }
    }
    parts.join(",")
}

fn apply_patch(kind: &str, custom: bool, target: &Value, pt: PatchType, body: &Value) -> Result<Value, StoreError> {
    let map_err = |e: patch::PatchError| {
        let code = e.status_code();
        if code == 400 {
            StoreError::bad_request(e.to_string())
        } else {
            StoreError::new(code, "Invalid", e.to_string())
        }
    };
    match pt {
        PatchType::Merge => {
            if !body.is_object() {
                return Err(StoreError::bad_request("invalid JSON document: a merge patch must be a JSON object"));
            }
            let mut out = target.clone();
            patch::merge_patch(&mut out, body);
            Ok(out)
        }
        PatchType::Json => {
            let mut out = target.clone();
            patch::json_patch(&mut out, body).map_err(map_err)?;
            Ok(out)
        }
        PatchType::Strategic => {
            if custom {
                return Err(StoreError::unsupported_media_type("application/strategic-merge-patch+json"));
            }
            patch::strategic_merge(kind, target, body).map_err(map_err)
        }
        PatchType::Apply => patch::apply_merge(kind, target, body).map_err(map_err),
    }
}

impl State {
    fn next_rv(&mut self, dry_run: bool) -> u64 {
        if dry_run {
            self.rv
        } else {
            self.rv += 1;
            self.rv
        }
    }

    fn record_event(&mut self, tx: &broadcast::Sender<StoreEvent>, event: EventType, object: &Value, rv: u64) {
        let ev = StoreEvent { event, object: object.clone(), resource_version: rv };
        self.history.push_back(ev.clone());
        while self.history.len() > HISTORY {
            if let Some(old) = self.history.pop_front() {
                self.history_floor = old.resource_version;
            }
        }
        // No receiver is fine: nobody watches.
        let _ = tx.send(ev);
    }

    fn refresh_resources(&mut self) {
        let crds: Vec<Value> = self
            .objects
            .iter()
            .filter(|(k, _)| k.group == "apiextensions.k8s.io" && k.plural == "customresourcedefinitions")
            .map(|(_, v)| v.clone())
            .collect();
        self.resources = ResourceSet::with_crds(crds.iter());
    }

    /// The registry's and admission's additions ([`admission::admit`]), for the kinds that
    /// have them.
    fn admit(&self, r: &Resource, obj: &mut Value, old: Option<&Value>) {
        let admitted = matches!(
            (r.group.as_str(), r.kind.as_str()),
            ("", "Service" | "PersistentVolumeClaim" | "Namespace") | ("batch", "Job")
        );
        if admitted {
            let mut taken = admission::Taken::of(self.objects.values());
            admission::admit(&r.group, &r.kind, obj, old, &mut taken);
        }
    }

    fn namespace_exists(&self, ns: &str) -> bool {
        self.objects.contains_key(&Key {
            group: String::new(),
            plural: "namespaces".into(),
            namespace: String::new(),
            name: ns.into(),
        })
    }

    /// Stores `obj` under a new resourceVersion (unless dry-run) and records the event.
    fn commit(
        &mut self,
        tx: &broadcast::Sender<StoreEvent>,
        r: &Resource,
        key: Key,
        mut obj: Value,
        event: EventType,
        dry_run: bool,
    ) -> Value {
        if dry_run {
            return obj;
        }
        let rv = self.next_rv(false);
        meta_mut(&mut obj).insert("resourceVersion".into(), json!(rv.to_string()));
        self.objects.insert(key, obj.clone());
        self.record_event(tx, event, &obj, rv);
        if r.group == "apiextensions.k8s.io" && r.kind == "CustomResourceDefinition" {
            self.refresh_resources();
        }
        obj
    }

    fn create(
        &mut self,
        tx: &broadcast::Sender<StoreEvent>,
        r: &Resource,
        namespace: Option<&str>,
        mut obj: Value,
        w: &WriteOptions,
        apply_fields: Option<Value>,
    ) -> Result<Value, StoreError> {
        if !obj.is_object() {
            return Err(StoreError::bad_request("the body of the request must be a JSON object"));
        }
        check_type(r, &obj)?;
        obj["apiVersion"] = json!(r.api_version());
        obj["kind"] = json!(r.kind);
        let body_ns = s(&obj, "/metadata/namespace").to_string();
        let ns = if r.namespaced {
            let ns = match namespace {
                Some(ns) => {
                    if !body_ns.is_empty() && body_ns != ns {
                        return Err(StoreError::bad_request(
                            "the namespace of the provided object does not match the namespace sent on the request",
                        ));
                    }
                    ns.to_string()
                }
                None if !body_ns.is_empty() => body_ns,
                None => "default".to_string(),
            };
            if !self.namespace_exists(&ns) {
                return Err(StoreError::namespace_not_found(&ns));
            }
            Some(ns)
        } else {
            None
        };
        let meta = meta_mut(&mut obj);
        if meta.get("resourceVersion").and_then(Value::as_str).is_some_and(|v| !v.is_empty()) {
            return Err(StoreError::bad_request("resourceVersion should not be set on objects to be created"));
        }
        let mut name = meta.get("name").and_then(Value::as_str).unwrap_or_default().to_string();
        if name.is_empty() {
            match meta.get("generateName").and_then(Value::as_str) {
                Some(prefix) if !prefix.is_empty() => {
                    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
                    let suffix: String =
                        (0..5).map(|_| char::from(ALPHABET[fastrand::usize(..ALPHABET.len())])).collect();
                    name = format!("{prefix}{suffix}");
                }
                _ => {
                    return Err(StoreError::invalid(
                        r,
                        "",
                        &[(
                            "metadata.name",
                            "FieldValueRequired",
                            "Required value: name or generateName is required".into(),
                        )],
                    ));
                }
            }
        }
        meta.insert("name".into(), json!(name));
        match &ns {
            Some(ns) => {
                meta.insert("namespace".into(), json!(ns));
            }
            None => {
                meta.remove("namespace");
            }
        }
        let now = util::now_seconds();
        meta.insert("uid".into(), json!(util::new_uid()));
        meta.insert("creationTimestamp".into(), json!(now));
        meta.remove("resourceVersion");
        meta.remove("managedFields");
        meta.remove("deletionTimestamp");
        if r.generation {
            meta.insert("generation".into(), json!(1));
        } else {
            meta.remove("generation");
        }
        // the API server defaults what it decodes, before validation and managedFields: an
        // Update-style create owns the defaults too, an Apply only what it applied
        crate::k8s::defaults::apply(&mut obj);
        self.admit(r, &mut obj, None);
        validate(r, &obj)?;
        let key = Key::new(r, ns.as_deref(), &name);
        if self.objects.contains_key(&key) {
            return Err(StoreError::already_exists(r, &name));
        }
        if r.status
            && w.subresource.is_none()
            && let Value::Object(m) = &mut obj
        {
            m.remove("status");
        }
        initial_status(r, &mut obj);
        let managed_source = obj.clone();
        let (operation, tree) = match apply_fields {
            Some(t) => ("Apply", t),
            None => ("Update", fields::changed_fields(&r.kind, &json!({}), &managed_source)),
        };
        let mut managed = Vec::new();
        fields::record(&mut managed, &w.manager, operation, &r.api_version(), w.subresource.as_deref(), &now, &tree);
        if !managed.is_empty() {
            meta_mut(&mut obj).insert("managedFields".into(), Value::Array(managed));
        }
        order_metadata(&mut obj);
        Ok(self.commit(tx, r, key, obj, EventType::Added, w.dry_run))
    }

    /// The common tail of every update: preconditions, what a subresource may change,
    /// generation, managedFields, no-op detection, commit.
    fn update(
        &mut self,
        tx: &broadcast::Sender<StoreEvent>,
        r: &Resource,
        old: &Value,
        mut new: Value,
        w: &WriteOptions,
        apply_fields: Option<Value>,
    ) -> Result<Value, StoreError> {
        if !new.is_object() {
            return Err(StoreError::bad_request("the body of the request must be a JSON object"));
        }
        check_type(r, &new)?;
        let name = s(old, "/metadata/name").to_string();
        let ns = old.pointer("/metadata/namespace").and_then(Value::as_str).map(str::to_string);
        let new_name = s(&new, "/metadata/name");
        if !new_name.is_empty() && new_name != name {
            return Err(StoreError::bad_request(format!(
                "the name of the object ({new_name}) does not match the name on the URL ({name})"
            )));
        }
        if let Some(ns) = &ns {
            let body_ns = s(&new, "/metadata/namespace");
            if !body_ns.is_empty() && body_ns != ns {
                return Err(StoreError::bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request",
                ));
            }
        }
        let want_rv = s(&new, "/metadata/resourceVersion");
        if !want_rv.is_empty() && want_rv != s(old, "/metadata/resourceVersion") {
            return Err(StoreError::conflict(r, &name));
        }
        new["apiVersion"] = json!(r.api_version());
        new["kind"] = json!(r.kind);

        // What each endpoint may change.
        match w.subresource.as_deref() {
            Some("status") => {
                let status = new.get("status").cloned();
                new = old.clone();
                match status {
                    Some(st) => new["status"] = st,
                    None => {
                        if let Value::Object(m) = &mut new {
                            m.remove("status");
                        }
                    }
                }
            }
            _ if r.status => match old.get("status") {
                Some(st) => new["status"] = st.clone(),
                None => {
                    if let Value::Object(m) = &mut new {
                        m.remove("status");
                    }
                }
            },
            _ => {}
        }
        // managedFields a write sends replace the live ones (kubectl's client-side to
        // server-side apply migration relies on it); an empty list means "unchanged", and a
        // list of one empty entry strips them, as with the API server.
        let incoming = new.pointer("/metadata/managedFields").and_then(Value::as_array).cloned();
        let reset = incoming.as_ref().is_some_and(|a| a.len() == 1 && a[0] == json!({}));
        let replace_with = incoming.filter(|a| {
            !reset
                && !a.is_empty()
                && a.iter().all(|e| {
                    e.get("manager").is_some_and(Value::is_string) && e.get("operation").is_some_and(Value::is_string)
                })
        });
        {
            let old_meta = old.get("metadata").cloned().unwrap_or_else(|| json!({}));
            let meta = meta_mut(&mut new);
            meta.insert("name".into(), json!(name));
            for f in ["uid", "creationTimestamp", "resourceVersion", "generation", "managedFields", "namespace"] {
                match old_meta.get(f) {
                    Some(v) => meta.insert(f.into(), v.clone()),
                    None => meta.remove(f),
                };
            }
            if reset {
                meta.remove("managedFields");
            } else if let Some(m) = replace_with {
                meta.insert("managedFields".into(), Value::Array(m));
            }
        }
        if let Some(applied) = &apply_fields
            && !reset
        {
            remove_unapplied(&mut new, applied, &w.manager, w.subresource.as_deref());
        }
        crate::k8s::defaults::apply(&mut new);
        if w.subresource.is_none() {
            self.admit(r, &mut new, Some(old));
        }
        validate(r, &new)?;
        if r.generation && spec_part(&new) != spec_part(old) {
            let g = old.pointer("/metadata/generation").and_then(Value::as_i64).unwrap_or(0);
            meta_mut(&mut new).insert("generation".into(), json!(g + 1));
        }
        if r.kind == "CustomResourceDefinition" && r.group == "apiextensions.k8s.io" {
            initial_status(r, &mut new);
        }

        // managedFields.
        let now = util::now_seconds();
        let mut managed: Vec<Value> =
            new.pointer("/metadata/managedFields").and_then(Value::as_array).cloned().unwrap_or_default();
        let sub = w.subresource.as_deref();
        // Fields the write removed leave every entry (structured-merge-diff subtracts the
        // comparison's Removed set from all managers), whoever wrote them.
        if !reset {
            let with_status = sub == Some("status");
            let mut removed = fields::fields_of(&r.kind, old, with_status);
            let kept = fields::fields_of(&r.kind, &new, with_status);
            if !fields::subtract_trees(&mut removed, &kept) {
                mark_gone(&mut removed, Some(&kept));
                managed.retain_mut(|e| match e.get_mut("fieldsV1") {
                    Some(tree) => !fields::subtract_trees(tree, &removed),
                    None => true,
                });
            }
        }
        match apply_fields {
            _ if reset => managed.clear(),
            Some(applied) => {
                let changed = fields::changed_fields(&r.kind, old, &new);
                // Fields applied with the value they already had stay shared with their owners;
                // fields whose value changes move to the applier.
                let taken = intersect(&applied, &changed);
                if !w.force && !is_empty_tree(&taken) {
                    apply_conflicts(&managed, &w.manager, sub, &taken)?;
                }
                managed.retain(|e| {
                    !(e.get("manager").and_then(Value::as_str) == Some(w.manager.as_str())
                        && e.get("operation").and_then(Value::as_str) == Some("Apply")
                        && e.get("subresource").and_then(Value::as_str).unwrap_or_default() == sub.unwrap_or_default())
                });
                if !is_empty_tree(&taken) {
                    managed.retain_mut(|e| {
                        let Some(tree) = e.get_mut("fieldsV1") else {
                            return true;
                        };
                        !fields::subtract_trees(tree, &taken)
                    });
                }
                if !is_empty_tree(&applied) {
                    let mut entry = Vec::new();
                    fields::record(&mut entry, &w.manager, "Apply", &r.api_version(), sub, &now, &applied);
                    managed.extend(entry);
                }
                sort_managed(&mut managed);
            }
            None => {
                let changed = fields::changed_fields(&r.kind, old, &new);
                fields::record(&mut managed, &w.manager, "Update", &r.api_version(), sub, &now, &changed);
            }
        }
        let meta = meta_mut(&mut new);
        if managed.is_empty() {
            meta.remove("managedFields");
        } else {
            meta.insert("managedFields".into(), Value::Array(managed));
        }
        order_metadata(&mut new);
        if new == *old {
            return Ok(new);
        }
        let key = Key::new(r, ns.as_deref(), &name);
        Ok(self.commit(tx, r, key, new, EventType::Modified, w.dry_run))
    }

    fn get(&self, r: &Resource, namespace: Option<&str>, name: &str) -> Result<Value, StoreError> {
        self.objects
            .get(&Key::new(r, namespace, name))
            .map(|o| served_as(r, o))
            .ok_or_else(|| StoreError::not_found(r, name))
    }

    fn delete(
        &mut self,
        tx: &broadcast::Sender<StoreEvent>,
        r: &Resource,
        namespace: Option<&str>,
        name: &str,
        dry_run: bool,
        preconditions: Option<&Value>,
    ) -> Result<Value, StoreError> {
        let key = Key::new(r, namespace, name);
        let Some(old) = self.objects.get(&key).cloned() else {
            return Err(StoreError::not_found(r, name));
        };
        if let Some(p) = preconditions {
            let want_rv = s(p, "/resourceVersion");
            let have_rv = s(&old, "/metadata/resourceVersion");
            if !want_rv.is_empty() && want_rv != have_rv {
                let mut e = StoreError::conflict(r, name);
                e.message = format!(
                    "Operation cannot be fulfilled on {} \"{name}\": the ResourceVersion in the precondition ({want_rv}) does not match the ResourceVersion in record ({have_rv}). The object might have been modified",
                    r.qualified()
                );
                return Err(e);
            }
            let want_uid = s(p, "/uid");
            let have_uid = s(&old, "/metadata/uid");
            if !want_uid.is_empty() && want_uid != have_uid {
                let mut e = StoreError::conflict(r, name);
                e.message = format!(
                    "Operation cannot be fulfilled on {} \"{name}\": Precondition failed: UID in precondition: {want_uid}, UID in object meta: {have_uid}",
                    r.qualified()
                );
                return Err(e);
            }
        }
        if dry_run {
            return Ok(old);
        }
        self.objects.remove(&key);
        let rv = self.next_rv(false);
        let mut gone = old.clone();
        meta_mut(&mut gone).insert("resourceVersion".into(), json!(rv.to_string()));
        self.record_event(tx, EventType::Deleted, &gone, rv);
        // What lives inside goes with it: a namespace's objects, a CRD's custom resources.
        if r.group.is_empty() && r.plural == "namespaces" {
            let inside: Vec<Key> = self.objects.keys().filter(|k| k.namespace == name).cloned().collect();
            self.remove_all(tx, inside);
        }
        if r.group == "apiextensions.k8s.io" && r.kind == "CustomResourceDefinition" {
            let group = s(&old, "/spec/group").to_string();
            let plural = s(&old, "/spec/names/plural").to_string();
            let inside: Vec<Key> =
                self.objects.keys().filter(|k| k.group == group && k.plural == plural).cloned().collect();
            self.remove_all(tx, inside);
            self.refresh_resources();
        }
        Ok(gone)
    }

    fn remove_all(&mut self, tx: &broadcast::Sender<StoreEvent>, keys: Vec<Key>) {
        for k in keys {
            if let Some(mut obj) = self.objects.remove(&k) {
                let rv = self.next_rv(false);
                meta_mut(&mut obj).insert("resourceVersion".into(), json!(rv.to_string()));
                self.record_event(tx, EventType::Deleted, &obj, rv);
            }
        }
    }
}

/// Status the API server (or its controllers, instantly) gives a new object.
fn initial_status(r: &Resource, obj: &mut Value) {
    if r.group.is_empty() && r.kind == "Namespace" && obj.pointer("/status/phase").is_none() {
        obj["status"] = json!({"phase": "Active"});
    }
    if r.group == "apiextensions.k8s.io" && r.kind == "CustomResourceDefinition" {
        let names = obj.pointer("/spec/names").cloned().unwrap_or_else(|| json!({}));
        let stored: Vec<Value> = obj
            .pointer("/spec/versions")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter(|v| v.get("storage").and_then(Value::as_bool) == Some(true))
            .filter_map(|v| v.get("name").cloned())
            .collect();
        if obj.pointer("/status/conditions").is_none() {
            let now = util::now_seconds();
            obj["status"] = json!({
                "acceptedNames": names,
                "conditions": [
                    {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts",
                     "message": "no conflicts found", "lastTransitionTime": now},
                    {"type": "Established", "status": "True", "reason": "InitialNamesAccepted",
                     "message": "the initial names have been accepted", "lastTransitionTime": now},
                ],
                "storedVersions": stored,
            });
        }
    }
}

/// Puts metadata fields in the order the API server serializes them.
fn order_metadata(obj: &mut Value) {
    const ORDER: &[&str] = &[
        "name",
        "generateName",
        "namespace",
        "selfLink",
        "uid",
        "resourceVersion",
        "generation",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "labels",
        "annotations",
        "ownerReferences",
        "finalizers",
        "managedFields",
    ];
    let Some(Value::Object(meta)) = obj.get_mut("metadata") else {
        return;
    };
    let mut old = std::mem::take(meta);
    for k in ORDER {
        if let Some(v) = old.remove(*k) {
            meta.insert((*k).to_string(), v);
        }
    }
    meta.extend(old);
    // apiVersion, kind, metadata first, like the server's output.
    if let Value::Object(m) = obj {
        let mut rest = std::mem::take(m);
        for k in ["apiVersion", "kind", "metadata"] {
            if let Some(v) = rest.remove(k) {
                m.insert(k.into(), v);
            }
        }
        m.extend(rest);
    }
}

fn sort_managed(managed: &mut [Value]) {
    let key = |e: &Value| {
        (
            s(e, "/operation").to_string(),
            s(e, "/time").to_string(),
            s(e, "/manager").to_string(),
            s(e, "/subresource").to_string(),
        )
    };
    managed.sort_by_key(key);
}

/// Rejects a body of another kind than the URL's resource.
fn check_type(r: &Resource, obj: &Value) -> Result<(), StoreError> {
    let kind = s(obj, "/kind");
    if !kind.is_empty() && kind != r.kind {
        return Err(StoreError::bad_request(format!(
            "the kind in the data ({kind}) does not match the expected kind ({})",
            r.kind
        )));
    }
    let av = s(obj, "/apiVersion");
    if !av.is_empty() && split_api_version(av).0 != r.group {
        return Err(StoreError::bad_request(format!(
            "the API version in the data ({av}) does not match the expected API version ({})",
            r.api_version()
        )));
    }
    Ok(())
}

/// The stored object as `r`'s version serves it.
fn served_as(r: &Resource, obj: &Value) -> Value {
    let mut o = obj.clone();
    o["apiVersion"] = json!(r.api_version());
    order_metadata(&mut o);
    o
}

impl Store {
    pub fn new() -> Store {
        let (tx, _) = broadcast::channel(BROADCAST);
        Store {
            inner: Arc::new(Inner {
                state: Mutex::new(State {
                    rv: 1,
                    objects: BTreeMap::new(),
                    resources: ResourceSet::default(),
                    history: VecDeque::new(),
                    history_floor: 1,
                    mock_metrics: Vec::new(),
                    mock_behaviour: Vec::new(),
                }),
                events: tx,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.inner.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A store holding fixture objects as they are (status, managedFields and annotations
    /// kept); missing uid, resourceVersion and creationTimestamp are filled in, as are the
    /// namespaces every cluster has and any namespace an object lives in.
    pub fn from_fixture(objects: Vec<Value>, mock_metrics: Vec<Value>) -> Result<Store, StoreError> {
        let store = Store::new();
        {
            let mut st = store.lock();
            st.mock_metrics = mock_metrics;
            let max_rv = objects.iter().map(rv_of).max().unwrap_or(0);
            st.rv = st.rv.max(max_rv);
            let crds: Vec<&Value> = objects.iter().filter(|o| s(o, "/kind") == "CustomResourceDefinition").collect();
            st.resources = ResourceSet::with_crds(crds);
            let mut namespaces: Vec<String> =
                ["default", "kube-node-lease", "kube-public", "kube-system"].iter().map(|s| s.to_string()).collect();
            for o in &objects {
                let ns = s(o, "/metadata/namespace");
                if !ns.is_empty() && !namespaces.iter().any(|n| n == ns) {
                    namespaces.push(ns.to_string());
                }
            }
            let mut all: Vec<Value> = objects;
            for ns in namespaces {
                if !all.iter().any(|o| s(o, "/kind") == "Namespace" && s(o, "/metadata/name") == ns) {
                    all.push(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns,
                        "labels": {"kubernetes.io/metadata.name": ns}}, "spec": {"finalizers": ["kubernetes"]}}));
                }
            }
            for mut obj in all {
                let (av, kind) = (s(&obj, "/apiVersion").to_string(), s(&obj, "/kind").to_string());
                let Some(r) = st.resources.by_api_version_kind(&av, &kind).cloned() else {
                    return Err(StoreError::bad_request(format!("no resource serves {av} {kind}")));
                };
                let mut name = s(&obj, "/metadata/name").to_string();
                let now = util::now_seconds();
                let rv = if rv_of(&obj) == 0 { st.next_rv(false) } else { rv_of(&obj) };
                let meta = meta_mut(&mut obj);
                if name.is_empty() {
                    let prefix = meta.get("generateName").and_then(Value::as_str).unwrap_or_default();
                    name = format!("{prefix}{:05x}", fastrand::u32(..0x10_0000));
                    meta.insert("name".into(), json!(name));
                }
                if r.namespaced {
                    if meta.get("namespace").and_then(Value::as_str).is_none_or(str::is_empty) {
                        meta.insert("namespace".into(), json!("default"));
                    }
                } else {
                    meta.remove("namespace");
                }
                if meta.get("uid").and_then(Value::as_str).is_none_or(str::is_empty) {
                    meta.insert("uid".into(), json!(util::new_uid()));
                }
                if meta.get("creationTimestamp").and_then(Value::as_str).is_none_or(str::is_empty) {
                    meta.insert("creationTimestamp".into(), json!(now));
                }
                if r.generation && meta.get("generation").is_none() {
                    meta.insert("generation".into(), json!(1));
                }
                meta.insert("resourceVersion".into(), json!(rv.to_string()));
                // read back from storage, an object carries the defaults of the serving version
                crate::k8s::defaults::apply(&mut obj);
                initial_status(&r, &mut obj);
                order_metadata(&mut obj);
                let ns = s(&obj, "/metadata/namespace").to_string();
                let key = Key::new(&r, Some(&ns), &name);
                st.objects.insert(key, obj);
            }
            st.history_floor = st.rv;
        }
        Ok(store)
    }

    /// The resource table, custom resources of the stored CRDs included.
    pub fn resources(&self) -> ResourceSet {
        self.lock().resources.clone()
    }

    /// The current resourceVersion of the store.
    pub fn resource_version(&self) -> u64 {
        self.lock().rv
    }

    /// The fixture's `agentops.dev/v1alpha1 MockMetrics` documents.
    pub fn mock_metrics(&self) -> Vec<Value> {
        self.lock().mock_metrics.clone()
    }

    /// The fixture's `agentops.dev/v1alpha1 MockBehaviour` documents (what the simulated
    /// controllers do differently: images that never become available, Jobs that fail).
    pub fn mock_behaviour(&self) -> Vec<Value> {
        self.lock().mock_behaviour.clone()
    }

    /// Replaces the MockBehaviour documents (a fixture's, or a test's).
    pub fn set_mock_behaviour(&self, docs: Vec<Value>) {
        self.lock().mock_behaviour = docs;
    }

    fn resolve(st: &State, api_version: &str, kind: &str) -> Option<Resource> {
        st.resources
            .by_api_version_kind(api_version, kind)
            .or_else(|| st.resources.by_group_kind(split_api_version(api_version).0, kind))
            .cloned()
    }

    pub fn get(&self, api_version: &str, kind: &str, namespace: Option<&str>, name: &str) -> Option<Value> {
        let st = self.lock();
        let r = Store::resolve(&st, api_version, kind)?;
        let mut o = st.get(&r, namespace, name).ok()?;
        o["apiVersion"] = json!(api_version);
        Some(o)
    }

    /// Objects of a kind, in one namespace or (None) all of them.
    pub fn list(&self, api_version: &str, kind: &str, namespace: Option<&str>) -> Vec<Value> {
        let st = self.lock();
        let Some(r) = Store::resolve(&st, api_version, kind) else {
            return Vec::new();
        };
        Store::list_locked(&st, &r, namespace, &LabelSelector::default(), &FieldSelector::default())
            .into_iter()
            .map(|mut o| {
                o["apiVersion"] = json!(api_version);
                o
            })
            .collect()
    }

    fn list_locked(
        st: &State,
        r: &Resource,
        namespace: Option<&str>,
        labels: &LabelSelector,
        fields: &FieldSelector,
    ) -> Vec<Value> {
        st.objects
            .iter()
            .filter(|(k, _)| k.group == r.group && k.plural == r.plural)
            .filter(|(k, _)| namespace.is_none_or(|ns| !r.namespaced || k.namespace == ns))
            .filter(|(_, o)| labels.matches(o) && fields.matches(o))
            .map(|(_, o)| served_as(r, o))
            .collect()
    }

    /// Create-or-merge by server-side apply semantics as `manager`, forcing conflicts (what a
    /// controller such as Argo CD does when it syncs).
    pub fn apply(&self, obj: &Value, manager: &str) -> Result<Value, StoreError> {
        let av = s(obj, "/apiVersion");
        let kind = s(obj, "/kind");
        let r = {
            let st = self.lock();
            Store::resolve(&st, av, kind)
                .ok_or_else(|| StoreError::bad_request(format!("no resource serves {av} {kind} in this cluster")))?
        };
        let name = s(obj, "/metadata/name").to_string();
        let ns = if r.namespaced {
            Some(match s(obj, "/metadata/namespace") {
                "" => "default".to_string(),
                ns => ns.to_string(),
            })
        } else {
            None
        };
        let w = WriteOptions { manager: manager.into(), force: true, ..Default::default() };
        self.patch(&r, ns.as_deref(), &name, PatchType::Apply, obj, &w)
    }

    /// Replaces the status of an object as `manager`, through the status subresource.
    pub fn update_status(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
        status: Value,
        manager: &str,
    ) -> Result<Value, StoreError> {
        let tx = self.inner.events.clone();
        let mut st = self.lock();
        let r = Store::resolve(&st, api_version, kind).ok_or_else(|| {
            StoreError::bad_request(format!("no resource serves {api_version} {kind} in this cluster"))
        })?;
        let old =
            st.objects.get(&Key::new(&r, namespace, name)).cloned().ok_or_else(|| StoreError::not_found(&r, name))?;
        let mut new = old.clone();
        new["status"] = status;
        let w = WriteOptions { manager: manager.into(), subresource: Some("status".into()), ..Default::default() };
        // A resource without a status subresource takes status through the main endpoint.
        let w = if r.status { w } else { WriteOptions { subresource: None, ..w } };
        st.update(&tx, &r, &old, new, &w, None).map(|o| served_as(&r, &o))
    }

    /// The resource serving `apiVersion` + `kind` (its preferred version when that version is
    /// not served).
    pub fn resource(&self, api_version: &str, kind: &str) -> Option<Resource> {
        Store::resolve(&self.lock(), api_version, kind)
    }

    /// A JSON merge patch as `manager` (an Update in managedFields), e.g. a controller clearing
    /// a field.
    pub fn merge_patch(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
        patch: &Value,
        manager: &str,
    ) -> Result<Value, StoreError> {
        let r = self.resource(api_version, kind).ok_or_else(|| {
            StoreError::bad_request(format!("no resource serves {api_version} {kind} in this cluster"))
        })?;
        let w = WriteOptions { manager: manager.into(), ..Default::default() };
        self.patch(&r, namespace, name, PatchType::Merge, patch, &w)
    }

    /// Deletes one object (what a prune does); answers the deleted object.
    pub fn delete_object(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Value, StoreError> {
        let r = self.resource(api_version, kind).ok_or_else(|| {
            StoreError::bad_request(format!("no resource serves {api_version} {kind} in this cluster"))
        })?;
        self.delete(&r, namespace, name, false, None)
    }

    /// Every committed change from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<StoreEvent> {
        self.inner.events.subscribe()
    }

    // ---- the API server's verbs ------------------------------------------------------------

    pub fn get_object(&self, r: &Resource, namespace: Option<&str>, name: &str) -> Result<Value, StoreError> {
        self.lock().get(r, namespace, name)
    }

    /// A list document (`DeploymentList`) with the store's resourceVersion.
    pub fn list_objects(
        &self,
        r: &Resource,
        namespace: Option<&str>,
        labels: &LabelSelector,
        fields: &FieldSelector,
    ) -> Value {
        let st = self.lock();
        let items = Store::list_locked(&st, r, namespace, labels, fields);
        json!({
            "kind": format!("{}List", r.kind),
            "apiVersion": r.api_version(),
            "metadata": {"resourceVersion": st.rv.to_string()},
            "items": items,
        })
    }

    pub fn create(
        &self,
        r: &Resource,
        namespace: Option<&str>,
        obj: Value,
        w: &WriteOptions,
    ) -> Result<Value, StoreError> {
        let tx = self.inner.events.clone();
        let mut st = self.lock();
        st.create(&tx, r, namespace, obj, w, None).map(|o| served_as(r, &o))
    }

    /// PUT: the whole object (or its status, with `w.subresource`).
    pub fn replace(
        &self,
        r: &Resource,
        namespace: Option<&str>,
        name: &str,
        obj: Value,
        w: &WriteOptions,
    ) -> Result<Value, StoreError> {
        let tx = self.inner.events.clone();
        let mut st = self.lock();
        let old =
            st.objects.get(&Key::new(r, namespace, name)).cloned().ok_or_else(|| StoreError::not_found(r, name))?;
        let mut obj = obj;
        if obj.is_object() && w.subresource.as_deref() != Some("status") {
            // A PUT without status keeps it (only the status subresource writes it).
            if r.status
                && obj.get("status").is_none()
                && let Some(st) = old.get("status")
            {
                obj["status"] = st.clone();
            }
        }
        st.update(&tx, r, &old, obj, w, None).map(|o| served_as(r, &o))
    }

    /// PATCH with any of the four patch types; an apply patch creates what does not exist.
    pub fn patch(
        &self,
        r: &Resource,
        namespace: Option<&str>,
        name: &str,
        pt: PatchType,
        body: &Value,
        w: &WriteOptions,
    ) -> Result<Value, StoreError> {
        let tx = self.inner.events.clone();
        let mut st = self.lock();
        let key = Key::new(r, namespace, name);
        let include_status = w.subresource.as_deref() == Some("status");
        match st.objects.get(&key).cloned() {
            None if pt == PatchType::Apply => {
                let obj = apply_body(r, name, namespace, body)?;
                let applied = fields::fields_of(&r.kind, &obj, include_status);
                let mut created = patch::apply_merge(&r.kind, &json!({}), &obj)
                    .map_err(|e| StoreError::bad_request(e.to_string()))?;
                if let Value::Object(m) = &mut created
                    && let Some(Value::Object(meta)) = m.get_mut("metadata")
                {
                    meta.remove("resourceVersion");
                }
                st.create(&tx, r, namespace, created, w, Some(applied)).map(|o| served_as(r, &o))
            }
            None => Err(StoreError::not_found(r, name)),
            Some(old) => {
                let (new, applied) = if pt == PatchType::Apply {
                    let obj = apply_body(r, name, namespace, body)?;
                    let applied = fields::fields_of(&r.kind, &obj, include_status);
                    (apply_patch(&r.kind, r.custom, &old, pt, &obj)?, Some(applied))
                } else {
                    (apply_patch(&r.kind, r.custom, &old, pt, body)?, None)
                };
                st.update(&tx, r, &old, new, w, applied).map(|o| served_as(r, &o))
            }
        }
    }

    pub fn delete(
        &self,
        r: &Resource,
        namespace: Option<&str>,
        name: &str,
        dry_run: bool,
        preconditions: Option<&Value>,
    ) -> Result<Value, StoreError> {
        let tx = self.inner.events.clone();
        let mut st = self.lock();
        st.delete(&tx, r, namespace, name, dry_run, preconditions).map(|o| served_as(r, &o))
    }

    /// Deletes every object a collection DELETE selects; answers the list of them.
    pub fn delete_collection(
        &self,
        r: &Resource,
        namespace: Option<&str>,
        labels: &LabelSelector,
        fields: &FieldSelector,
        dry_run: bool,
    ) -> Result<Value, StoreError> {
        let tx = self.inner.events.clone();
        let mut st = self.lock();
        let victims = Store::list_locked(&st, r, namespace, labels, fields);
        let mut items = Vec::new();
        for v in victims {
            let ns = v.pointer("/metadata/namespace").and_then(Value::as_str).map(str::to_string);
            items.push(st.delete(&tx, r, ns.as_deref(), s(&v, "/metadata/name"), dry_run, None)?);
        }
        Ok(json!({
            "kind": format!("{}List", r.kind),
            "apiVersion": r.api_version(),
            "metadata": {"resourceVersion": st.rv.to_string()},
            "items": items,
        }))
    }

    /// The `autoscaling/v1` Scale of an object.
    pub fn get_scale(&self, r: &Resource, namespace: Option<&str>, name: &str) -> Result<Value, StoreError> {
        let obj = self.get_object(r, namespace, name)?;
        scale_of(r, &obj)
    }

    /// Writes a Scale (PUT body, or a patch of the current Scale) into the object's replicas.
    pub fn write_scale(
        &self,
        r: &Resource,
        namespace: Option<&str>,
        name: &str,
        pt: Option<PatchType>,
        body: &Value,
        w: &WriteOptions,
    ) -> Result<Value, StoreError> {
        let Some(paths) = r.scale.clone() else {
            return Err(StoreError::no_route());
        };
        let tx = self.inner.events.clone();
        let mut st = self.lock();
        let old =
            st.objects.get(&Key::new(r, namespace, name)).cloned().ok_or_else(|| StoreError::not_found(r, name))?;
        let scale = scale_of(r, &old)?;
        let new_scale = match pt {
            None => body.clone(),
            Some(PatchType::Apply) => {
                patch::apply_merge("Scale", &scale, body).map_err(|e| StoreError::bad_request(e.to_string()))?
            }
            Some(pt) => apply_patch("Scale", false, &scale, pt, body)?,
        };
        let want_rv = s(&new_scale, "/metadata/resourceVersion");
        if !want_rv.is_empty() && want_rv != s(&old, "/metadata/resourceVersion") {
            return Err(StoreError::conflict(r, name));
        }
        let replicas = match new_scale.pointer("/spec/replicas") {
            None | Some(Value::Null) => 0,
            Some(v) => v.as_i64().ok_or_else(|| {
                StoreError::invalid(
                    r,
                    name,
                    &[("spec.replicas", "FieldValueInvalid", format!("Invalid value: {v}: must be an integer"))],
                )
            })?,
        };
        if replicas < 0 {
            return Err(StoreError::invalid(
                &Resource { kind: "Scale".into(), group: "autoscaling".into(), ..r.clone() },
                name,
                &[(
                    "spec.replicas",
                    "FieldValueInvalid",
                    format!("Invalid value: {replicas}: must be greater than or equal to 0"),
                )],
            ));
        }
        let mut new = old.clone();
        let ptr = json_path_pointer(&paths.spec_replicas);
        set_pointer(&mut new, &ptr, json!(replicas));
        let w = WriteOptions { subresource: Some("scale".into()), ..w.clone() };
        let written = st.update(&tx, r, &old, new, &w, None)?;
        scale_of(r, &written)
    }

    /// A watch of one resource: the backlog to send first, then the live events.
    pub fn watch(&self, r: &Resource, namespace: Option<&str>, from: WatchFrom) -> Result<WatchStart, StoreError> {
        let st = self.lock();
        // Subscribing under the lock: no event falls between the backlog and the receiver.
        let receiver = self.inner.events.subscribe();
        let mut backlog = Vec::new();
        let mut current = Vec::new();
        match from {
            WatchFrom::Initial => {
                for o in Store::list_locked(&st, r, namespace, &LabelSelector::default(), &FieldSelector::default()) {
                    let rv = rv_of(&o);
                    backlog.push(StoreEvent { event: EventType::Added, object: o, resource_version: rv });
                }
            }
            WatchFrom::After(rv) => {
                current = Store::list_locked(&st, r, namespace, &LabelSelector::default(), &FieldSelector::default());
                if rv < st.history_floor {
                    return Err(StoreError::expired(format!(
                        "too old resource version: {rv} ({})",
                        st.history_floor + 1
                    )));
                }
                for ev in st.history.iter().filter(|e| e.resource_version > rv) {
                    if ev.is_of(&r.group, &r.kind) && in_namespace(r, &ev.object, namespace) {
                        let mut ev = ev.clone();
                        ev.object = served_as(r, &ev.object);
                        backlog.push(ev);
                    }
                }
            }
        }
        Ok(WatchStart { backlog, receiver, resource_version: st.rv, current })
    }
}

pub fn in_namespace(r: &Resource, obj: &Value, namespace: Option<&str>) -> bool {
    match namespace {
        Some(ns) if r.namespaced => s(obj, "/metadata/namespace") == ns,
        _ => true,
    }
}

/// The object an apply patch body describes, checked against the URL.
fn apply_body(r: &Resource, name: &str, namespace: Option<&str>, body: &Value) -> Result<Value, StoreError> {
    if !body.is_object() {
        return Err(StoreError::bad_request("the body of an apply patch must be an object"));
    }
    if s(body, "/apiVersion").is_empty() || s(body, "/kind").is_empty() {
        return Err(StoreError::bad_request(
            "error decoding YAML: Object 'Kind' is missing in the applied configuration (apiVersion and kind are required)",
        ));
    }
    check_type(r, body)?;
    let body_name = s(body, "/metadata/name");
    if body_name.is_empty() {
        return Err(StoreError::bad_request("metadata.name is required in an apply patch"));
    }
    if body_name != name {
        return Err(StoreError::bad_request(format!(
            "the name of the object ({body_name}) does not match the name on the URL ({name})"
        )));
    }
    let mut obj = body.clone();
    if let (true, Some(ns)) = (r.namespaced, namespace) {
        let body_ns = s(body, "/metadata/namespace");
        if !body_ns.is_empty() && body_ns != ns {
            return Err(StoreError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
        meta_mut(&mut obj).insert("namespace".into(), json!(ns));
    }
    Ok(obj)
}

fn set_pointer(obj: &mut Value, ptr: &str, value: Value) {
    let mut cur = obj;
    let parts: Vec<&str> = ptr.trim_start_matches('/').split('/').collect();
    for (i, p) in parts.iter().enumerate() {
        if !cur.is_object() {
            *cur = json!({});
        }
        let Value::Object(m) = cur else { return };
        if i + 1 == parts.len() {
            m.insert((*p).to_string(), value);
            return;
        }
        cur = m.entry((*p).to_string()).or_insert_with(|| json!({}));
    }
}

fn scale_of(r: &Resource, obj: &Value) -> Result<Value, StoreError> {
    let Some(paths) = &r.scale else {
        return Err(StoreError::no_route());
    };
    let spec = obj.pointer(&json_path_pointer(&paths.spec_replicas)).and_then(Value::as_i64).unwrap_or(if r.custom {
        0
    } else {
        1
    });
    let status = obj.pointer(&json_path_pointer(&paths.status_replicas)).and_then(Value::as_i64).unwrap_or(0);
    let selector = paths
        .label_selector
        .as_deref()
        .and_then(|p| obj.pointer(&json_path_pointer(p)))
        .map(selector_string)
        .unwrap_or_default();
    let m = obj.get("metadata").cloned().unwrap_or_else(|| json!({}));
    let mut meta = Map::new();
    for f in ["name", "namespace", "uid", "resourceVersion", "creationTimestamp"] {
        if let Some(v) = m.get(f) {
            meta.insert(f.into(), v.clone());
        }
    }
    let mut st = json!({"replicas": status});
    if !selector.is_empty() {
        st["selector"] = json!(selector);
    }
    Ok(json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": meta,
        "spec": {"replicas": spec},
        "status": st,
    }))
}

/// Checks a CRD document the way the fixture loader and the API do.
pub fn crd_problem(crd: &Value) -> Option<String> {
    resources::from_crd(crd).err()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deployment(name: &str) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": "default"},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}},
                "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [{"name": "app", "image": "nginx:1"}]}}}})
    }

    fn w(manager: &str) -> WriteOptions {
        WriteOptions { manager: manager.into(), ..Default::default() }
    }

    #[test]
    fn create_update_bumps_generation_and_resource_version() {
        let store = Store::from_fixture(Vec::new(), Vec::new()).unwrap();
        let r = store.resources().by_api_version_kind("apps/v1", "Deployment").unwrap().clone();
        let created = store.create(&r, Some("default"), deployment("web"), &w("test")).unwrap();
        assert_eq!(created["metadata"]["generation"], 1);
        let rv1 = rv_of(&created);
        let patched = store
            .patch(
                &r,
                Some("default"),
                "web",
                PatchType::Merge,
                &json!({"metadata": {"annotations": {"a": "b"}}}),
                &w("m"),
            )
            .unwrap();
        assert_eq!(patched["metadata"]["generation"], 1);
        assert!(rv_of(&patched) > rv1);
        let patched = store
            .patch(&r, Some("default"), "web", PatchType::Merge, &json!({"spec": {"replicas": 3}}), &w("m"))
            .unwrap();
        assert_eq!(patched["metadata"]["generation"], 2);
        let mut managers: Vec<&str> = patched["metadata"]["managedFields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["manager"].as_str().unwrap())
            .collect();
        managers.sort();
        assert_eq!(managers, vec!["m", "test"]);
        // A no-op patch changes nothing.
        let again = store
            .patch(&r, Some("default"), "web", PatchType::Merge, &json!({"spec": {"replicas": 3}}), &w("m"))
            .unwrap();
        assert_eq!(again["metadata"]["resourceVersion"], patched["metadata"]["resourceVersion"]);
    }

    #[test]
    fn errors_have_the_api_server_shape() {
        let store = Store::from_fixture(Vec::new(), Vec::new()).unwrap();
        let r = store.resources().by_api_version_kind("apps/v1", "Deployment").unwrap().clone();
        let e = store.get_object(&r, Some("default"), "nope").unwrap_err();
        assert_eq!(e.message, "deployments.apps \"nope\" not found");
        assert_eq!(e.to_status()["details"], json!({"name": "nope", "group": "apps", "kind": "deployments"}));
        store.create(&r, Some("default"), deployment("web"), &w("t")).unwrap();
        assert_eq!(store.create(&r, Some("default"), deployment("web"), &w("t")).unwrap_err().reason, "AlreadyExists");
        let mut x = deployment("x");
        x["metadata"]["namespace"] = json!("nowhere");
        let e = store.create(&r, Some("nowhere"), x, &w("t")).unwrap_err();
        assert_eq!(e.message, "namespaces \"nowhere\" not found");
        let mut stale = deployment("web");
        stale["metadata"]["resourceVersion"] = json!("1");
        let e = store.replace(&r, Some("default"), "web", stale, &w("t")).unwrap_err();
        assert_eq!(e.code, 409);
        assert!(e.message.starts_with("Operation cannot be fulfilled on deployments.apps \"web\""));
        let mut bad = deployment("Bad_Name");
        bad["metadata"]["name"] = json!("Bad_Name");
        assert_eq!(store.create(&r, Some("default"), bad, &w("t")).unwrap_err().code, 422);
    }

    #[test]
    fn apply_creates_then_merges() {
        let store = Store::from_fixture(Vec::new(), Vec::new()).unwrap();
        let created = store.apply(&deployment("web"), "argocd-controller").unwrap();
        assert_eq!(created["metadata"]["managedFields"][0]["operation"], "Apply");
        let mut change = deployment("web");
        change["spec"]["replicas"] = json!(4);
        let merged = store.apply(&change, "argocd-controller").unwrap();
        assert_eq!(merged["spec"]["replicas"], 4);
        assert_eq!(merged["metadata"]["managedFields"].as_array().unwrap().len(), 1);
        let st = store
            .update_status(
                "apps/v1",
                "Deployment",
                Some("default"),
                "web",
                json!({"replicas": 4}),
                "kube-controller-manager",
            )
            .unwrap();
        assert_eq!(st["status"]["replicas"], 4);
        let mf = st["metadata"]["managedFields"].as_array().unwrap();
        assert_eq!(mf.len(), 2);
        assert_eq!(mf[1]["subresource"], "status");
    }

    #[test]
    fn scale_writes_replicas() {
        let store = Store::from_fixture(vec![deployment("web")], Vec::new()).unwrap();
        let r = store.resources().by_api_version_kind("apps/v1", "Deployment").unwrap().clone();
        let sc = store.get_scale(&r, Some("default"), "web").unwrap();
        assert_eq!(sc["spec"]["replicas"], 1);
        assert_eq!(sc["status"]["selector"], "app=web");
        let sc = store
            .write_scale(
                &r,
                Some("default"),
                "web",
                Some(PatchType::Merge),
                &json!({"spec": {"replicas": 5}}),
                &w("kubectl"),
            )
            .unwrap();
        assert_eq!(sc["spec"]["replicas"], 5);
        let d = store.get_object(&r, Some("default"), "web").unwrap();
        assert_eq!(d["spec"]["replicas"], 5);
        assert_eq!(d["metadata"]["generation"], 2);
        let e = &d["metadata"]["managedFields"][0];
        assert_eq!(e["subresource"], "scale");
        assert_eq!(e["fieldsV1"], json!({"f:spec": {"f:replicas": {}}}));
    }

    #[test]
    fn apply_conflicts_unless_forced() {
        let store = Store::from_fixture(vec![deployment("web")], Vec::new()).unwrap();
        let r = store.resources().by_api_version_kind("apps/v1", "Deployment").unwrap().clone();
        store
            .write_scale(
                &r,
                Some("default"),
                "web",
                Some(PatchType::Merge),
                &json!({"spec": {"replicas": 5}}),
                &w("kubectl"),
            )
            .unwrap();
        let mut applied = deployment("web");
        applied["spec"]["replicas"] = json!(2);
        let e = store.patch(&r, Some("default"), "web", PatchType::Apply, &applied, &w("kubectl")).unwrap_err();
        assert_eq!(e.code, 409);
        assert!(
            e.message.starts_with(
                "Apply failed with 1 conflict: conflict with \"kubectl\" with subresource \"scale\" using apps/v1 at "
            ),
            "{}",
            e.message
        );
        assert!(e.message.ends_with(": .spec.replicas"), "{}", e.message);
        assert_eq!(e.to_status()["details"]["causes"][0]["field"], ".spec.replicas");
        // The same value applied is shared, not a conflict; force takes the field.
        applied["spec"]["replicas"] = json!(5);
        store.patch(&r, Some("default"), "web", PatchType::Apply, &applied, &w("kubectl")).unwrap();
        applied["spec"]["replicas"] = json!(2);
        let forced = WriteOptions { force: true, ..w("kubectl") };
        let d = store.patch(&r, Some("default"), "web", PatchType::Apply, &applied, &forced).unwrap();
        assert_eq!(d["spec"]["replicas"], 2);
        assert!(!d["metadata"]["managedFields"].to_string().contains("\"scale\""), "{d:#}");
    }

    #[test]
    fn paths_print_like_structured_merge_diff() {
        let tree = json!({"f:spec": {"f:replicas": {}, "f:template": {"f:spec": {"f:containers": {
            "k:{\"name\":\"api\"}": {".": {}, "f:image": {}}}}}, "f:ports": {"k:{\"port\":80,\"protocol\":\"TCP\"}": {}}},
            "f:metadata": {"f:finalizers": {"v:\"a\"": {}}}});
        let mut out = Vec::new();
        owned_paths(&tree, "", &mut out);
        out.sort();
        assert_eq!(
            out,
            vec![
                ".metadata.finalizers[=\"a\"]",
                ".spec.ports[port=80,protocol=\"TCP\"]",
                ".spec.replicas",
                ".spec.template.spec.containers[name=\"api\"]",
                ".spec.template.spec.containers[name=\"api\"].image",
            ]
        );
    }

    #[test]
    fn apply_removes_what_is_no_longer_applied() {
        let store = Store::from_fixture(Vec::new(), Vec::new()).unwrap();
        let r = store.resources().by_api_version_kind("apps/v1", "Deployment").unwrap().clone();
        let mut first = deployment("web");
        first["metadata"]["labels"] = json!({"a": "1", "b": "2"});
        first["spec"]["template"]["spec"]["containers"] =
            json!([{"name": "app", "image": "nginx:1"}, {"name": "side", "image": "busybox"}]);
        store.patch(&r, Some("default"), "web", PatchType::Apply, &first, &w("gitops")).unwrap();
        // Another manager's label stays; the applier's dropped label and container go.
        store
            .patch(
                &r,
                Some("default"),
                "web",
                PatchType::Merge,
                &json!({"metadata": {"labels": {"c": "3"}}}),
                &w("other"),
            )
            .unwrap();
        let second = deployment("web");
        let d = store.patch(&r, Some("default"), "web", PatchType::Apply, &second, &w("gitops")).unwrap();
        assert_eq!(d["metadata"]["labels"], json!({"c": "3"}));
        let names: Vec<&str> = d["spec"]["template"]["spec"]["containers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, vec!["app"]);
        assert_eq!(d["metadata"]["generation"], 2);
    }

    #[test]
    fn intersect_trees() {
        let a = json!({"f:spec": {"f:replicas": {}, "f:paused": {}}});
        let b = json!({"f:spec": {"f:replicas": {}}, "f:metadata": {"f:labels": {}}});
        assert_eq!(intersect(&a, &b), json!({"f:spec": {"f:replicas": {}}}));
        assert_eq!(intersect(&a, &json!({})), json!({}));
    }
}
