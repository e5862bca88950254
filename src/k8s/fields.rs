//! managedFields in the FieldsV1 format: which fields a write owns (`fields_of` for an apply or
//! create, `changed_fields` for an update or patch), recording that ownership in
//! `metadata.managedFields` the way the API server does, and answering who owns a field.
//!
//! A FieldsV1 tree is a set of owned paths: `f:<field>` steps into a map, `k:<key json>` into
//! a Map-list item, `v:<json>` names a Set-list value, `i:<n>` an item by index; a node is
//! owned itself when it is a leaf `{}` or carries `".": {}`. Internally trees are turned into
//! [`Node`]s so union and difference are plain set operations and output is always normalized.

use crate::k8s::merge_keys::{self, ListKind};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// One step of a path into an object, as managedFields names it.
#[derive(Debug, Clone, PartialEq)]
pub enum PathElem {
    /// A map field: `f:<name>`.
    Field(String),
    /// A Map-list item by its key fields: `k:{"name":"web"}`.
    Key(Vec<(String, Value)>),
    /// A Set-list item by value: `v:"example.com/x"`.
    Value(Value),
    /// A list item by position: `i:0`.
    Index(usize),
}

impl PathElem {
    /// The FieldsV1 key of this step. `k:` keys are compact JSON with fields sorted by name,
    /// byte for byte as the API server writes them, so they can be looked up directly.
    pub fn to_key(&self) -> String {
        match self {
            PathElem::Field(name) => format!("f:{name}"),
            PathElem::Key(fields) => {
                let mut sorted: Vec<&(String, Value)> = fields.iter().collect();
                sorted.sort_by(|a, b| a.0.cmp(&b.0));
                let obj: Map<String, Value> = sorted.into_iter().map(|(k, v)| (k.clone(), v.clone())).collect();
                format!("k:{}", Value::Object(obj))
            }
            PathElem::Value(v) => format!("v:{v}"),
            PathElem::Index(i) => format!("i:{i}"),
        }
    }
}

/// Metadata fields the API server sets and never attributes to a manager (its strip set).
const SERVER_METADATA: &[&str] = &[
    "name",
    "namespace",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "managedFields",
    "selfLink",
    "clusterName",
];

/// A set of owned paths, as a tree.
#[derive(Debug, Clone, Default, PartialEq)]
struct Node {
    owned: bool,
    children: BTreeMap<String, Node>,
}

impl Node {
    fn from_tree(tree: &Value) -> Node {
        let mut node = Node::default();
        if let Value::Object(map) = tree {
            for (k, v) in map.iter().filter(|(k, _)| k.as_str() != ".") {
                let mut child = Node::from_tree(v);
                let leaf = v.as_object().is_none_or(Map::is_empty);
                child.owned = leaf || v.get(".").is_some();
                node.children.insert(k.clone(), child);
            }
        }
        node.prune();
        node
    }

    fn to_tree(&self) -> Value {
        let mut out = Map::new();
        if self.owned && !self.children.is_empty() {
            out.insert(".".to_string(), Value::Object(Map::new()));
        }
        let mut keys: Vec<&String> = self.children.keys().collect();
        keys.sort_by_key(|k| sort_key(k));
        for k in keys {
            if let Some(child) = self.children.get(k) {
                out.insert(k.clone(), child.to_tree());
            }
        }
        Value::Object(out)
    }

    fn child(&mut self, key: String) -> &mut Node {
        self.children.entry(key).or_default()
    }

    fn is_empty(&self) -> bool {
        !self.owned && self.children.is_empty()
    }

    /// Drops branches that own nothing (left by empty lists or by subtraction).
    fn prune(&mut self) {
        self.children.retain(|_, c| {
            c.prune();
            !c.is_empty()
        });
    }

    fn union(&mut self, other: &Node) {
        self.owned |= other.owned;
        for (k, c) in &other.children {
            self.child(k.clone()).union(c);
        }
    }

    fn subtract(&mut self, other: &Node) {
        if other.owned {
            self.owned = false;
        }
        for (k, c) in &other.children {
            if let Some(mine) = self.children.get_mut(k) {
                mine.subtract(c);
                if mine.is_empty() {
                    self.children.remove(k);
                }
            }
        }
    }
}

/// The API server's order: `f:` before `k:` before `v:` before `i:` (numerically).
fn sort_key(key: &str) -> (u8, usize, &str) {
    let rank = match key.get(..2) {
        Some("f:") => 0,
        Some("k:") => 1,
        Some("v:") => 2,
        Some("i:") => 3,
        _ => 4,
    };
    let index = key.strip_prefix("i:").map_or(0, |n| n.parse().unwrap_or(usize::MAX));
    (rank, index, key)
}

fn str_path(path: &[String]) -> Vec<&str> {
    path.iter().map(String::as_str).collect()
}

/// The FieldsV1 key of a list item: `k:` in a Map list when the item has its keys, `v:` in a
/// Set, otherwise its index.
fn item_elem(kind: &str, path: &[String], list_kind: ListKind, item: &Value, i: usize) -> String {
    match list_kind {
        ListKind::Set => PathElem::Value(item.clone()).to_key(),
        _ => match merge_keys::item_key(kind, &str_path(path), item) {
            Some(key) => PathElem::Key(key).to_key(),
            None => PathElem::Index(i).to_key(),
        },
    }
}

/// Marks everything set in `value` as owned under `node`, as server-side apply's field set
/// does: scalars, empty maps, atomic lists and atomic structs are leaves; Map- and Set-list
/// items are owned themselves as well as through their fields.
fn own_all(kind: &str, path: &mut Vec<String>, value: &Value, node: &mut Node) {
    match value {
        Value::Object(map) if !map.is_empty() && !merge_keys::map_is_atomic(kind, &str_path(path)) => {
            for (k, v) in map {
                path.push(k.clone());
                own_all(kind, path, v, node.child(format!("f:{k}")));
                path.pop();
            }
        }
        Value::Array(items) => {
            let list_kind = merge_keys::list_kind(kind, &str_path(path));
            if list_kind == ListKind::Atomic {
                node.owned = true;
                return;
            }
            for (i, item) in items.iter().enumerate() {
                let child = node.child(item_elem(kind, path, list_kind, item, i));
                child.owned = true;
                if list_kind != ListKind::Set {
                    own_all(kind, path, item, child);
                }
            }
        }
        _ => node.owned = true,
    }
}

/// Takes away what the API server never attributes to a manager.
fn strip_server_fields(root: &mut Node, include_status: bool) {
    root.children.remove("f:apiVersion");
    root.children.remove("f:kind");
    if !include_status {
        root.children.remove("f:status");
    }
    if let Some(meta) = root.children.get_mut("f:metadata") {
        meta.owned = false;
        for field in SERVER_METADATA {
            meta.children.remove(&format!("f:{field}"));
        }
    }
    root.prune();
}

/// The FieldsV1 tree of every field set in `obj` (what an Apply or a Create owns). Skips the
/// metadata the server owns (name, namespace, uid, resourceVersion, generation,
/// creationTimestamp, managedFields, selfLink), apiVersion and kind, and `status` unless
/// `include_status`.
pub fn fields_of(kind: &str, obj: &Value, include_status: bool) -> Value {
    let mut root = Node::default();
    own_all(kind, &mut Vec::new(), obj, &mut root);
    root.owned = false;
    strip_server_fields(&mut root, include_status);
    root.to_tree()
}

/// Maps that the typed API server always serializes, even empty, so creating their contents
/// never makes a writer the owner of the map itself (no `.` for them in Update entries).
fn always_present(path: &[String]) -> bool {
    let p = str_path(path);
    matches!(
        p.as_slice(),
        ["spec" | "status" | "metadata"]
            | ["spec", "strategy" | "updateStrategy"]
            | [.., "template" | "jobTemplate"]
            | [.., "template" | "jobTemplate", "spec" | "metadata"]
            | [.., "containers" | "initContainers" | "ephemeralContainers"]
            | [.., "containers" | "initContainers", "resources"]
    )
}

/// Records in `node` what `new` sets that `old` did not have, or had with another value.
fn own_changes(kind: &str, path: &mut Vec<String>, old: Option<&Value>, new: &Value, node: &mut Node) {
    if old == Some(new) {
        return;
    }
    match new {
        Value::Object(map) if !map.is_empty() && !merge_keys::map_is_atomic(kind, &str_path(path)) => {
            let old_map = old.and_then(Value::as_object);
            if old_map.is_none() && !path.is_empty() && !always_present(path) {
                node.owned = true;
            }
            for (k, v) in map {
                path.push(k.clone());
                let old_child = old_map.and_then(|m| m.get(k));
                own_changes(kind, path, old_child, v, node.child(format!("f:{k}")));
                path.pop();
            }
        }
        Value::Array(items) => {
            let list_kind = merge_keys::list_kind(kind, &str_path(path));
            if list_kind == ListKind::Atomic {
                node.owned = true;
                return;
            }
            let old_items = old.and_then(Value::as_array);
            if old_items.is_none() && !items.is_empty() && !always_present(path) {
                node.owned = true;
            }
            let old_items = old_items.map(Vec::as_slice).unwrap_or_default();
            let old_elems: Vec<String> =
                old_items.iter().enumerate().map(|(i, item)| item_elem(kind, path, list_kind, item, i)).collect();
            for (i, item) in items.iter().enumerate() {
                let elem = item_elem(kind, path, list_kind, item, i);
                let before = old_elems.iter().position(|e| *e == elem).map(|j| &old_items[j]);
                let child = node.child(elem);
                match before {
                    Some(old_item) if list_kind != ListKind::Set => {
                        own_changes(kind, path, Some(old_item), item, child);
                    }
                    Some(_) => {}
                    None => {
                        child.owned = true;
                        // Diffing against nothing (rather than `own_all`) also owns the maps and
                        // lists the new item brings, as the API server's Update entries do.
                        if list_kind != ListKind::Set {
                            own_changes(kind, path, None, item, child);
                        }
                    }
                }
            }
        }
        _ => node.owned = true,
    }
}

/// The FieldsV1 tree of the fields that differ between `old` and `new`: set, changed or added
/// in `new` (removed fields are owned by nobody). This is what an Update or Patch by a manager
/// takes ownership of. Server-owned metadata, apiVersion and kind are left out; status is kept,
/// since only a status write can change it.
pub fn changed_fields(kind: &str, old: &Value, new: &Value) -> Value {
    let mut root = Node::default();
    own_changes(kind, &mut Vec::new(), Some(old), new, &mut root);
    root.owned = false;
    strip_server_fields(&mut root, true);
    root.to_tree()
}

fn entry_str<'a>(entry: &'a Value, field: &str) -> &'a str {
    entry.get(field).and_then(Value::as_str).unwrap_or_default()
}

fn is_entry(entry: &Value, manager: &str, operation: &str, subresource: Option<&str>) -> bool {
    entry_str(entry, "manager") == manager
        && entry_str(entry, "operation") == operation
        && entry_str(entry, "subresource") == subresource.unwrap_or_default()
}

/// Records a write in `metadata.managedFields`: merges `fields` into the entry of
/// (`manager`, `operation`, `subresource`), creating it, and stamps its `time` and
/// `apiVersion`. Ownership moves to the writer, so the same fields leave every other entry,
/// and an entry left owning nothing is dropped. A write that owns nothing changes nothing (the
/// API server does not touch the timestamp then). Entries end up in the API server's order:
/// Apply before Update, then by time, manager and subresource.
pub fn record(
    managed: &mut Vec<Value>,
    manager: &str,
    operation: &str,
    api_version: &str,
    subresource: Option<&str>,
    time: &str,
    fields: &Value,
) {
    let taken = Node::from_tree(fields);
    if taken.is_empty() {
        return;
    }
    managed.retain_mut(|entry| {
        if is_entry(entry, manager, operation, subresource) {
            return true;
        }
        let Value::Object(obj) = entry else {
            return true;
        };
        let Some(tree) = obj.get("fieldsV1") else {
            return true;
        };
        let mut owned = Node::from_tree(tree);
        owned.subtract(&taken);
        if owned.is_empty() {
            return false;
        }
        obj.insert("fieldsV1".to_string(), owned.to_tree());
        true
    });

    let existing = managed.iter_mut().find(|e| is_entry(e, manager, operation, subresource));
    match existing.and_then(Value::as_object_mut) {
        Some(entry) => {
            let mut owned = entry.get("fieldsV1").map(Node::from_tree).unwrap_or_default();
            owned.union(&taken);
            entry.insert("apiVersion".to_string(), Value::from(api_version));
            entry.insert("time".to_string(), Value::from(time));
            entry.insert("fieldsType".to_string(), Value::from("FieldsV1"));
            entry.insert("fieldsV1".to_string(), owned.to_tree());
        }
        None => {
            // Field order of metav1.ManagedFieldsEntry, so serialized entries read as the API
            // server's do.
            let mut entry = Map::new();
            entry.insert("manager".to_string(), Value::from(manager));
            entry.insert("operation".to_string(), Value::from(operation));
            entry.insert("apiVersion".to_string(), Value::from(api_version));
            entry.insert("time".to_string(), Value::from(time));
            entry.insert("fieldsType".to_string(), Value::from("FieldsV1"));
            entry.insert("fieldsV1".to_string(), taken.to_tree());
            if let Some(sub) = subresource.filter(|s| !s.is_empty()) {
                entry.insert("subresource".to_string(), Value::from(sub));
            }
            managed.push(Value::Object(entry));
        }
    }
    managed.sort_by(|a, b| {
        let key = |e: &Value| {
            (
                entry_str(e, "operation").to_string(),
                entry_str(e, "time").to_string(),
                entry_str(e, "manager").to_string(),
                entry_str(e, "subresource").to_string(),
            )
        };
        key(a).cmp(&key(b))
    });
}

/// The entry that owns the field at `path`, or, when nobody owns that exact field, the entry
/// owning its nearest owned ancestor (a container item owned whole owns its unset fields too).
pub fn owner<'a>(managed: &'a [Value], path: &[PathElem]) -> Option<&'a Value> {
    let keys: Vec<String> = path.iter().map(PathElem::to_key).collect();
    (1..=keys.len()).rev().find_map(|len| {
        managed.iter().find(|entry| {
            let node = keys[..len].iter().fold(entry.get("fieldsV1"), |node, k| node.and_then(|n| n.get(k)));
            node.and_then(Value::as_object).is_some_and(|m| m.is_empty() || m.contains_key("."))
        })
    })
}

/// Whether a list item matches a `k:` key: every key field equal, a missing `protocol`
/// counting as TCP (the API server's default).
fn item_matches(item: &Value, key: &[(String, Value)]) -> bool {
    key.iter().all(|(k, kv)| item.get(k) == Some(kv) || (k == "protocol" && item.get(k).is_none() && kv == "TCP"))
}

/// The value at a managedFields-style path of an object.
pub fn value_at<'a>(obj: &'a Value, elems: &[PathElem]) -> Option<&'a Value> {
    let mut v = obj;
    for e in elems {
        v = match e {
            PathElem::Field(k) => v.get(k)?,
            PathElem::Key(key) => v.as_array()?.iter().find(|i| item_matches(i, key))?,
            PathElem::Value(x) => v.as_array()?.iter().find(|i| *i == x)?,
            PathElem::Index(n) => v.get(*n)?,
        };
    }
    Some(v)
}

/// Removes the value at a managedFields-style path; false when there is none.
pub fn remove_at(obj: &mut Value, elems: &[PathElem]) -> bool {
    let Some((last, parents)) = elems.split_last() else { return false };
    let mut v = obj;
    for e in parents {
        let next = match e {
            PathElem::Field(k) => v.get_mut(k),
            PathElem::Key(key) => v.as_array_mut().and_then(|a| a.iter_mut().find(|i| item_matches(i, key))),
            PathElem::Value(x) => v.as_array_mut().and_then(|a| a.iter_mut().find(|i| *i == x)),
            PathElem::Index(n) => v.get_mut(*n),
        };
        let Some(next) = next else { return false };
        v = next;
    }
    match (last, v) {
        (PathElem::Field(k), Value::Object(m)) => m.remove(k).is_some(),
        (PathElem::Key(key), Value::Array(a)) => {
            let before = a.len();
            a.retain(|i| !item_matches(i, key));
            a.len() != before
        }
        (PathElem::Value(x), Value::Array(a)) => {
            let before = a.len();
            a.retain(|i| i != x);
            a.len() != before
        }
        (PathElem::Index(n), Value::Array(a)) if *n < a.len() => {
            a.remove(*n);
            true
        }
        _ => false,
    }
}

/// Adds every path owned in `b` to `a`.
pub fn merge_trees(a: &mut Value, b: &Value) {
    let mut union = Node::from_tree(a);
    union.union(&Node::from_tree(b));
    *a = union.to_tree();
}

/// Removes every path owned in `b` from `a`; true if `a` now owns nothing.
pub fn subtract_trees(a: &mut Value, b: &Value) -> bool {
    let mut rest = Node::from_tree(a);
    rest.subtract(&Node::from_tree(b));
    rest.prune();
    *a = rest.to_tree();
    rest.is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deployment() -> Value {
        json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {
                "name": "web",
                "namespace": "shop",
                "uid": "0b6c4c1e-1111-2222-3333-444455556666",
                "resourceVersion": "4711",
                "generation": 3,
                "creationTimestamp": "2024-05-01T10:00:00Z",
                "labels": {"app": "web"},
                "finalizers": ["x"],
                "managedFields": [{"manager": "old"}]
            },
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {
                        "containers": [{
                            "name": "web",
                            "image": "nginx:1.25",
                            "args": ["--port", "8080"],
                            "ports": [{"containerPort": 8080}],
                            "resources": {}
                        }]
                    }
                }
            },
            "status": {"replicas": 2}
        })
    }

    const WEB: &str = r#"k:{"name":"web"}"#;
    const PORT: &str = r#"k:{"containerPort":8080,"protocol":"TCP"}"#;

    fn container_path(name: &str) -> Vec<PathElem> {
        vec![
            PathElem::Field("spec".into()),
            PathElem::Field("template".into()),
            PathElem::Field("spec".into()),
            PathElem::Field("containers".into()),
            PathElem::Key(vec![("name".into(), json!(name))]),
        ]
    }

    #[test]
    fn fields_of_a_deployment() {
        let f = fields_of("Deployment", &deployment(), false);
        let want = json!({
            "f:metadata": {
                "f:finalizers": {"v:\"x\"": {}},
                "f:labels": {"f:app": {}}
            },
            "f:spec": {
                "f:replicas": {},
                "f:selector": {},
                "f:template": {
                    "f:metadata": {"f:labels": {"f:app": {}}},
                    "f:spec": {"f:containers": {WEB: {
                        ".": {},
                        "f:args": {},
                        "f:image": {},
                        "f:name": {},
                        "f:ports": {PORT: {".": {}, "f:containerPort": {}}},
                        "f:resources": {}
                    }}}
                }
            }
        });
        assert_eq!(f, want);
        // Serialized byte for byte as the API server writes keys.
        let text = serde_json::to_string(&f).unwrap();
        assert!(
            text.contains(r#""k:{\"containerPort\":8080,\"protocol\":\"TCP\"}":{".":{},"f:containerPort":{}}"#),
            "{text}"
        );
        assert!(text.starts_with(r#"{"f:metadata":{"f:finalizers""#), "{text}");

        let with_status = fields_of("Deployment", &deployment(), true);
        assert_eq!(with_status["f:status"], json!({"f:replicas": {}}));
    }

    #[test]
    fn changed_fields_image_change_owns_only_the_image() {
        let old = deployment();
        let mut new = old.clone();
        new["spec"]["template"]["spec"]["containers"][0]["image"] = json!("nginx:1.27");
        new["metadata"]["resourceVersion"] = json!("4712");
        let f = changed_fields("Deployment", &old, &new);
        assert_eq!(f, json!({"f:spec": {"f:template": {"f:spec": {"f:containers": {WEB: {"f:image": {}}}}}}}));
    }

    #[test]
    fn changed_fields_added_sidecar_owns_the_whole_item() {
        let old = deployment();
        let mut new = old.clone();
        new["spec"]["template"]["spec"]["containers"]
            .as_array_mut()
            .unwrap()
            .push(json!({"name": "envoy", "image": "envoy:1.30", "ports": [{"containerPort": 9901}]}));
        let f = changed_fields("Deployment", &old, &new);
        assert_eq!(
            f,
            json!({"f:spec": {"f:template": {"f:spec": {"f:containers": {r#"k:{"name":"envoy"}"#: {
                ".": {},
                "f:image": {},
                "f:name": {},
                "f:ports": {".": {}, r#"k:{"containerPort":9901,"protocol":"TCP"}"#: {".": {}, "f:containerPort": {}}}
            }}}}}})
        );
    }

    #[test]
    fn changed_fields_annotations() {
        let old = deployment();
        let mut new = old.clone();
        new["metadata"]["annotations"] = json!({"team": "storefront"});
        assert_eq!(
            changed_fields("Deployment", &old, &new),
            json!({"f:metadata": {"f:annotations": {".": {}, "f:team": {}}}})
        );
        let old = new.clone();
        new["metadata"]["annotations"]["owner"] = json!("ops");
        assert_eq!(changed_fields("Deployment", &old, &new), json!({"f:metadata": {"f:annotations": {"f:owner": {}}}}));
        // Removing a field owns nothing; an atomic list change owns the list.
        let mut newer = new.clone();
        newer["metadata"]["annotations"] = json!({"team": "storefront"});
        assert_eq!(changed_fields("Deployment", &new, &newer), json!({}));
        newer["spec"]["template"]["spec"]["containers"][0]["args"] = json!(["--port", "9090"]);
        assert_eq!(
            changed_fields("Deployment", &new, &newer),
            json!({"f:spec": {"f:template": {"f:spec": {"f:containers": {WEB: {"f:args": {}}}}}}})
        );
        assert_eq!(changed_fields("Deployment", &new, &new), json!({}));
    }

    #[test]
    fn changed_fields_of_a_create_match_update_entries() {
        // A create by an Update manager (kubectl create, client-side apply) owns the maps it
        // brought with `.`, but not the structs the API server always has (spec, template).
        let f = changed_fields("Deployment", &json!({}), &deployment());
        assert_eq!(f["f:metadata"]["f:labels"], json!({".": {}, "f:app": {}}));
        assert!(f["f:spec"].get(".").is_none());
        assert!(f["f:spec"]["f:template"].get(".").is_none());
        assert!(f["f:spec"]["f:template"]["f:spec"]["f:containers"].get(".").is_none());
        assert_eq!(f["f:spec"]["f:selector"], json!({}));
        assert!(f["f:metadata"].get("f:name").is_none() && f.get("f:apiVersion").is_none());
        assert_eq!(f["f:status"], json!({"f:replicas": {}}));
        let web = &f["f:spec"]["f:template"]["f:spec"]["f:containers"][WEB];
        assert_eq!(web["f:ports"][PORT], json!({".": {}, "f:containerPort": {}}));
        assert_eq!(web["f:args"], json!({}));
    }

    fn entry<'a>(managed: &'a [Value], manager: &str) -> Option<&'a Value> {
        managed.iter().find(|e| e["manager"] == json!(manager))
    }

    #[test]
    fn record_moves_ownership_to_the_writer() {
        let live = deployment();
        let mut managed = Vec::new();
        let t0 = "2024-05-01T10:00:00Z";
        record(
            &mut managed,
            "kubectl-client-side-apply",
            "Update",
            "apps/v1",
            None,
            t0,
            &fields_of("Deployment", &live, false),
        );
        assert_eq!(managed.len(), 1);
        let csa = entry(&managed, "kubectl-client-side-apply").unwrap();
        assert_eq!(csa["operation"], json!("Update"));
        assert_eq!(csa["fieldsType"], json!("FieldsV1"));
        assert_eq!(csa["time"], json!(t0));
        assert!(csa.get("subresource").is_none());
        let keys: Vec<&String> = csa.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["manager", "operation", "apiVersion", "time", "fieldsType", "fieldsV1"]);

        // kubectl edit changes the image.
        let mut edited = live.clone();
        edited["spec"]["template"]["spec"]["containers"][0]["image"] = json!("nginx:1.27");
        let t1 = "2024-05-02T09:30:00Z";
        record(
            &mut managed,
            "kubectl-edit",
            "Update",
            "apps/v1",
            None,
            t1,
            &changed_fields("Deployment", &live, &edited),
        );
        assert_eq!(managed.len(), 2);
        let edit = entry(&managed, "kubectl-edit").unwrap();
        assert_eq!(edit["time"], json!(t1));
        assert_eq!(
            edit["fieldsV1"],
            json!({"f:spec": {"f:template": {"f:spec": {"f:containers": {WEB: {"f:image": {}}}}}}})
        );
        let csa = entry(&managed, "kubectl-client-side-apply").unwrap();
        let web = &csa["fieldsV1"]["f:spec"]["f:template"]["f:spec"]["f:containers"][WEB];
        assert!(web.get("f:image").is_none(), "image left the old owner");
        assert!(web.get("f:name").is_some() && web.get(".").is_some());
        assert_eq!(csa["time"], json!(t0), "the old owner's time is untouched");

        // The image path is owned by kubectl-edit; an unset field of the container falls back to
        // the manager that owns the container item.
        let mut image = container_path("web");
        image.push(PathElem::Field("image".into()));
        assert_eq!(owner(&managed, &image).unwrap()["manager"], json!("kubectl-edit"));
        let mut probe = container_path("web");
        probe.push(PathElem::Field("livenessProbe".into()));
        probe.push(PathElem::Field("httpGet".into()));
        assert_eq!(owner(&managed, &probe).unwrap()["manager"], json!("kubectl-client-side-apply"));
        let port = {
            let mut p = container_path("web");
            p.push(PathElem::Field("ports".into()));
            p.push(PathElem::Key(vec![("protocol".into(), json!("TCP")), ("containerPort".into(), json!(8080))]));
            p.push(PathElem::Field("containerPort".into()));
            p
        };
        assert_eq!(owner(&managed, &port).unwrap()["manager"], json!("kubectl-client-side-apply"));
        assert!(owner(&managed, &[PathElem::Field("spec".into()), PathElem::Field("paused".into())]).is_none());
        assert!(owner(&managed, &container_path("other")).is_none());

        // The same manager writing again merges into its entry and refreshes its time.
        let mut edited2 = edited.clone();
        edited2["spec"]["replicas"] = json!(4);
        let t2 = "2024-05-03T08:00:00Z";
        record(
            &mut managed,
            "kubectl-edit",
            "Update",
            "apps/v1",
            None,
            t2,
            &changed_fields("Deployment", &edited, &edited2),
        );
        let edit = entry(&managed, "kubectl-edit").unwrap();
        assert_eq!(edit["time"], json!(t2));
        assert!(edit["fieldsV1"]["f:spec"].get("f:replicas").is_some());
        assert!(edit["fieldsV1"]["f:spec"]["f:template"].is_object());

        // A writer taking everything the other owns empties and drops its entry.
        let everything = fields_of("Deployment", &live, false);
        record(&mut managed, "argocd-controller", "Apply", "apps/v1", None, t2, &everything);
        assert!(entry(&managed, "kubectl-client-side-apply").is_none());
        assert_eq!(managed[0]["manager"], json!("argocd-controller"), "Apply entries sort first");
        let before = managed.clone();
        record(&mut managed, "noop", "Update", "apps/v1", None, t2, &json!({}));
        assert_eq!(managed, before);
    }

    #[test]
    fn record_status_subresource_is_its_own_entry() {
        let mut managed = Vec::new();
        let f = json!({"f:status": {"f:replicas": {}}});
        record(
            &mut managed,
            "kube-controller-manager",
            "Update",
            "apps/v1",
            Some("status"),
            "2024-05-01T10:00:00Z",
            &f,
        );
        record(
            &mut managed,
            "kube-controller-manager",
            "Update",
            "apps/v1",
            None,
            "2024-05-01T10:00:01Z",
            &json!({"f:spec": {"f:replicas": {}}}),
        );
        assert_eq!(managed.len(), 2);
        assert_eq!(managed[0]["subresource"], json!("status"));
        assert!(managed[1].get("subresource").is_none());
    }

    #[test]
    fn tree_set_operations() {
        let mut a = json!({"f:spec": {"f:replicas": {}, "f:template": {"f:spec": {"f:containers": {WEB: {".": {}, "f:image": {}, "f:name": {}}}}}}});
        let b = json!({"f:spec": {"f:template": {"f:spec": {"f:containers": {WEB: {".": {}, "f:image": {}}}}}}});
        assert!(!subtract_trees(&mut a, &b));
        assert_eq!(
            a,
            json!({"f:spec": {"f:replicas": {}, "f:template": {"f:spec": {"f:containers": {WEB: {"f:name": {}}}}}}})
        );
        merge_trees(&mut a, &b);
        assert_eq!(
            a["f:spec"]["f:template"]["f:spec"]["f:containers"][WEB],
            json!({".": {}, "f:image": {}, "f:name": {}})
        );
        // `.` comes first and list keys after fields, as the API server serializes.
        let order: Vec<&String> =
            a["f:spec"]["f:template"]["f:spec"]["f:containers"][WEB].as_object().unwrap().keys().collect();
        assert_eq!(order, [".", "f:image", "f:name"]);
        let mut c = json!({"f:spec": {"f:replicas": {}}});
        assert!(subtract_trees(&mut c, &json!({"f:spec": {"f:replicas": {}}})));
        assert_eq!(c, json!({}));
        // A leaf owned whole is not released by taking one of its would-be children.
        let mut d = json!({"f:spec": {"f:selector": {}}});
        assert!(!subtract_trees(&mut d, &json!({"f:spec": {"f:selector": {"f:matchLabels": {}}}})));
        assert_eq!(d, json!({"f:spec": {"f:selector": {}}}));
    }

    #[test]
    fn path_elem_keys() {
        assert_eq!(PathElem::Field("spec".into()).to_key(), "f:spec");
        assert_eq!(
            PathElem::Key(vec![("protocol".into(), json!("UDP")), ("port".into(), json!(53))]).to_key(),
            r#"k:{"port":53,"protocol":"UDP"}"#
        );
        assert_eq!(PathElem::Value(json!("example.com/x")).to_key(), r#"v:"example.com/x""#);
        assert_eq!(PathElem::Index(2).to_key(), "i:2");
    }
}
