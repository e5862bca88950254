//! Client-side apply, the way `kubectl apply` (and Argo CD's default sync, which runs kubectl's
//! apply code) computes its patch: a three-way merge between the last applied configuration
//! (the `kubectl.kubernetes.io/last-applied-configuration` annotation), the new configuration
//! and the live object. Built-in kinds get a strategic merge patch (merge keys, `$patch:
//! delete`, `$setElementOrder`, `$retainKeys`, `$deleteFromPrimitiveList`), custom resources a
//! JSON merge patch. What the patch does follows from the three documents:
//! - a field removed from the configuration that the last one had is deleted from live;
//! - a field live has that no configuration ever had (a hand-added sidecar, a default) stays;
//! - a field the configuration sets is reset to its value, whatever live holds.
//!
//! The patches are applied by the API server (here [`super::patch`]), which is where
//! `$retainKeys` clears a defaulted `rollingUpdate` when the strategy becomes `Recreate`.

use serde_json::{Map, Value, json};

use super::merge_keys::{self, ListKind};

/// The annotation holding the configuration of the last client-side apply.
pub const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// `config` as kubectl sends it: with the last-applied annotation holding `config` itself (in
/// compact JSON, without that annotation, followed by a newline).
pub fn with_last_applied(config: &Value) -> Value {
    let mut stored = config.clone();
    // kubectl writes the annotation into the object, then stores the object without it: an
    // object with no other annotation is stored with an empty map
    if let Some(meta) = stored.get_mut("metadata").and_then(Value::as_object_mut) {
        let ann = meta.entry("annotations").or_insert_with(|| json!({}));
        if let Some(a) = ann.as_object_mut() {
            a.remove(LAST_APPLIED);
        }
    }
    let text = format!("{}\n", sorted(&stored));
    let mut out = config.clone();
    if let Some(meta) = out.get_mut("metadata").and_then(Value::as_object_mut) {
        let ann = meta.entry("annotations").or_insert_with(|| json!({}));
        if let Some(a) = ann.as_object_mut() {
            a.insert(LAST_APPLIED.into(), Value::String(text));
        }
    }
    out
}

/// Compact JSON with map keys sorted, as Go's encoder writes a map.
fn sorted(v: &Value) -> Value {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            Value::Object(keys.into_iter().map(|k| (k.clone(), sorted(&m[k]))).collect())
        }
        Value::Array(a) => Value::Array(a.iter().map(sorted).collect()),
        other => other.clone(),
    }
}

/// The configuration a live object was last applied with, if it carries one.
pub fn last_applied(live: &Value) -> Option<Value> {
    let text = live.pointer("/metadata/annotations")?.get(LAST_APPLIED)?.as_str()?;
    serde_json::from_str(text).ok()
}

/// The patch kubectl's client-side apply sends for a built-in kind: a strategic merge patch
/// from the three documents (`original` is the last-applied configuration, None without one;
/// `modified` the new configuration with its annotation; `current` the live object). An empty
/// map means there is nothing to send.
pub fn three_way_strategic(kind: &str, original: Option<&Value>, modified: &Value, current: &Value) -> Value {
    let empty = Map::new();
    let obj = |v: Option<&Value>| v.and_then(Value::as_object).unwrap_or(&empty).clone();
    let (original, modified, current) = (obj(original), obj(Some(modified)), obj(Some(current)));
    let mut path = Vec::new();
    let delta = diff_maps(kind, &mut path, &current, &modified, Pass::Delta);
    let deletions = diff_maps(kind, &mut path, &original, &modified, Pass::Deletions);
    Value::Object(merge_patches(deletions, delta))
}

/// The patch kubectl sends for a custom resource (or any kind it has no schema for): a JSON
/// merge patch (RFC 7386, lists replaced whole) of what changed from live to the new
/// configuration, plus the deletions from the last-applied configuration.
pub fn three_way_json_merge(original: Option<&Value>, modified: &Value, current: &Value) -> Value {
    let mut add_and_change = merge_diff(current, modified);
    drop_nulls(&mut add_and_change);
    let mut deletions = original.map(|o| merge_diff(o, modified)).unwrap_or_else(|| json!({}));
    keep_nulls(&mut deletions);
    let (Value::Object(mut out), Value::Object(d)) = (add_and_change, deletions) else {
        return json!({});
    };
    deep_merge(&mut out, d);
    Value::Object(out)
}

/// Which half of the three-way patch is being computed.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Pass {
    /// From live to the new configuration, ignoring deletions: additions and changes.
    Delta,
    /// From the last configuration to the new one, keeping only deletions.
    Deletions,
}

/// Fields whose patch strategy is `retainKeys` (the map may hold only one of its union
/// members): a Deployment's `strategy`, each of a pod's `volumes`.
fn retains_keys(kind: &str, path: &[String]) -> bool {
    let p: Vec<&str> = path.iter().map(String::as_str).collect();
    matches!(p.as_slice(), ["spec", "strategy"] if kind == "Deployment") || p.last() == Some(&"volumes")
}

fn diff_maps(
    kind: &str,
    path: &mut Vec<String>,
    orig: &Map<String, Value>,
    modified: &Map<String, Value>,
    pass: Pass,
) -> Map<String, Value> {
    let mut patch = Map::new();
    for (k, m) in modified {
        match orig.get(k) {
            None => {
                if pass == Pass::Delta && !m.is_null() {
                    patch.insert(k.clone(), m.clone());
                }
            }
            Some(o) => {
                path.push(k.clone());
                let sub = diff_values(kind, path, o, m, pass);
                path.pop();
                match sub {
                    Some(Diffed::Value(v)) => {
                        patch.insert(k.clone(), v);
                    }
                    Some(Diffed::List(items, directives)) => {
                        if !items.is_empty() {
                            patch.insert(k.clone(), Value::Array(items));
                        }
                        for (dk, dv) in directives {
                            patch.insert(format!("{dk}/{k}"), dv);
                        }
                    }
                    None => {}
                }
            }
        }
    }
    if pass == Pass::Deletions {
        for (k, o) in orig {
            if !modified.contains_key(k) && !o.is_null() {
                patch.insert(k.clone(), Value::Null);
            }
        }
    }
    if retains_keys(kind, path) {
        let dropped_from_orig = orig.iter().any(|(k, v)| !v.is_null() && !modified.contains_key(k));
        if !patch.is_empty() || dropped_from_orig {
            let mut keys: Vec<&String> = modified.iter().filter(|(_, v)| !v.is_null()).map(|(k, _)| k).collect();
            keys.sort();
            patch.insert("$retainKeys".into(), json!(keys));
        }
    }
    patch
}

/// A field's patch: a value (a replacement or a nested map patch), or a merged list's items
/// with its directives (`$setElementOrder`, `$deleteFromPrimitiveList`).
enum Diffed {
    Value(Value),
    List(Vec<Value>, Vec<(&'static str, Value)>),
}

fn diff_values(kind: &str, path: &mut Vec<String>, o: &Value, m: &Value, pass: Pass) -> Option<Diffed> {
    match (o, m) {
        (Value::Object(om), Value::Object(mm)) => {
            let sub = diff_maps(kind, path, om, mm, pass);
            (!sub.is_empty()).then_some(Diffed::Value(Value::Object(sub)))
        }
        (Value::Array(oa), Value::Array(ma)) => {
            let p: Vec<&str> = path.iter().map(String::as_str).collect();
            match merge_keys::list_kind(kind, &p) {
                ListKind::Map(keys) => diff_keyed_list(kind, path, keys[0], oa, ma, pass),
                ListKind::Set => diff_set(oa, ma, pass),
                ListKind::Atomic => (pass == Pass::Delta && oa != ma).then(|| Diffed::Value(m.clone())),
            }
        }
        _ if o == m => None,
        _ => (pass == Pass::Delta).then(|| Diffed::Value(m.clone())),
    }
}

/// A merge list of maps, by its (primary) merge key.
fn diff_keyed_list(
    kind: &str,
    path: &mut Vec<String>,
    key: &str,
    orig: &[Value],
    modified: &[Value],
    pass: Pass,
) -> Option<Diffed> {
    let key_of = |item: &Value| item.get(key).cloned();
    let find = |list: &[Value], k: &Value| list.iter().find(|i| key_of(i).as_ref() == Some(k)).cloned();
    if orig.is_empty() {
        // nothing to merge with: the whole list, without an order directive
        return (pass == Pass::Delta && !modified.is_empty()).then(|| Diffed::List(modified.to_vec(), Vec::new()));
    }
    let mut items = Vec::new();
    let mut changed = false;
    for m in modified {
        let Some(k) = key_of(m) else { continue };
        match find(orig, &k) {
            Some(o) => {
                let (Some(om), Some(mm)) = (o.as_object(), m.as_object()) else { continue };
                let sub = diff_maps(kind, path, om, mm, pass);
                if !sub.is_empty() {
                    let mut item = Map::new();
                    item.insert(key.to_string(), k);
                    item.extend(sub);
                    items.push(Value::Object(item));
                    changed = true;
                }
            }
            None if pass == Pass::Delta => {
                items.push(m.clone());
                changed = true;
            }
            None => {}
        }
    }
    if pass == Pass::Deletions {
        for o in orig {
            let Some(k) = key_of(o) else { continue };
            if find(modified, &k).is_none() {
                items.push(json!({key: k, "$patch": "delete"}));
                changed = true;
            }
        }
    }
    let orig_order: Vec<Value> = orig.iter().filter_map(key_of).filter(|k| find(modified, k).is_some()).collect();
    let mod_order: Vec<Value> = modified.iter().filter_map(key_of).filter(|k| find(orig, k).is_some()).collect();
    let reordered = pass == Pass::Delta && orig_order != mod_order;
    if !changed && !reordered {
        return None;
    }
    let order: Vec<Value> = modified.iter().filter_map(|m| key_of(m).map(|k| json!({key: k}))).collect();
    Some(Diffed::List(items, vec![("$setElementOrder", Value::Array(order))]))
}

/// A merge list of scalars (`metadata.finalizers`).
fn diff_set(orig: &[Value], modified: &[Value], pass: Pass) -> Option<Diffed> {
    let added: Vec<Value> = modified.iter().filter(|m| !orig.contains(m)).cloned().collect();
    let removed: Vec<Value> = orig.iter().filter(|o| !modified.contains(o)).cloned().collect();
    let mut directives = Vec::new();
    let items = match pass {
        Pass::Delta if !added.is_empty() => added,
        Pass::Deletions if !removed.is_empty() => {
            directives.push(("$deleteFromPrimitiveList", Value::Array(removed)));
            Vec::new()
        }
        _ => return None,
    };
    directives.push(("$setElementOrder", Value::Array(modified.to_vec())));
    Some(Diffed::List(items, directives))
}

/// Joins the deletions and the delta into one patch: maps merge, lists of patch items are
/// concatenated (an item named in both merges), directives of the delta win.
fn merge_patches(mut deletions: Map<String, Value>, delta: Map<String, Value>) -> Map<String, Value> {
    for (k, v) in delta {
        match (deletions.get_mut(&k), v) {
            (Some(Value::Object(d)), Value::Object(v)) => {
                let merged = merge_patches(std::mem::take(d), v);
                *d = merged;
            }
            (Some(Value::Array(d)), Value::Array(v)) if !k.starts_with('$') => {
                for item in v {
                    let same = d.iter_mut().find(|x| same_patch_item(x, &item));
                    match (same, item) {
                        (Some(Value::Object(x)), Value::Object(item)) => {
                            let merged = merge_patches(std::mem::take(x), item);
                            *x = merged;
                        }
                        (_, item) => d.push(item),
                    }
                }
            }
            (_, v) => {
                deletions.insert(k, v);
            }
        }
    }
    deletions
}

/// Whether two items of a patch list name the same list item (their first field, the merge
/// key, is equal); directive items never merge.
fn same_patch_item(a: &Value, b: &Value) -> bool {
    let (Some(a), Some(b)) = (a.as_object(), b.as_object()) else { return false };
    if a.contains_key("$patch") || b.contains_key("$patch") {
        return false;
    }
    matches!((a.iter().next(), b.iter().next()), (Some((ka, va)), Some((kb, vb))) if ka == kb && va == vb)
}

/// RFC 7386's patch from `a` to `b`.
fn merge_diff(a: &Value, b: &Value) -> Value {
    match (a, b) {
        (Value::Object(am), Value::Object(bm)) => {
            let mut out = Map::new();
            for (k, bv) in bm {
                match am.get(k) {
                    Some(av) if av == bv => {}
                    Some(av @ Value::Object(_)) if bv.is_object() => {
                        let sub = merge_diff(av, bv);
                        if sub.as_object().is_some_and(|m| !m.is_empty()) {
                            out.insert(k.clone(), sub);
                        }
                    }
                    _ => {
                        out.insert(k.clone(), bv.clone());
                    }
                }
            }
            for k in am.keys() {
                if !bm.contains_key(k) {
                    out.insert(k.clone(), Value::Null);
                }
            }
            Value::Object(out)
        }
        _ => b.clone(),
    }
}

fn drop_nulls(v: &mut Value) {
    if let Value::Object(m) = v {
        m.retain(|_, x| !x.is_null());
        m.values_mut().for_each(drop_nulls);
        m.retain(|_, x| !x.as_object().is_some_and(Map::is_empty));
    }
}

fn keep_nulls(v: &mut Value) {
    if let Value::Object(m) = v {
        m.values_mut().for_each(keep_nulls);
        m.retain(|_, x| x.is_null() || x.as_object().is_some_and(|o| !o.is_empty()));
    }
}

fn deep_merge(into: &mut Map<String, Value>, from: Map<String, Value>) {
    for (k, v) in from {
        match (into.get_mut(&k), v) {
            (Some(Value::Object(a)), Value::Object(b)) => deep_merge(a, b),
            (_, v) => {
                into.insert(k, v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::k8s::patch::strategic_merge;

    fn deployment(env: Value) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "shop"},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}}, "template": {"metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "web", "image": "nginx:1.27", "env": env}]}}}})
    }

    /// Applies `config` over `live` the way kubectl apply does, returning the new live object.
    fn apply(live: &Value, config: &Value) -> Value {
        let modified = with_last_applied(config);
        let original = last_applied(live);
        let patch = three_way_strategic("Deployment", original.as_ref(), &modified, live);
        strategic_merge("Deployment", live, &patch).unwrap()
    }

    #[test]
    fn a_field_removed_from_the_config_is_removed_from_live() {
        let first = deployment(json!([{"name": "A", "value": "1"}, {"name": "OAUTH_PROVIDER", "value": "x"}]));
        let live = apply(&json!({}), &first);
        assert_eq!(live["spec"]["template"]["spec"]["containers"][0]["env"].as_array().unwrap().len(), 2);
        let second = deployment(json!([{"name": "A", "value": "1"}]));
        let live = apply(&live, &second);
        assert_eq!(live["spec"]["template"]["spec"]["containers"][0]["env"], json!([{"name": "A", "value": "1"}]));
        assert_eq!(last_applied(&live).unwrap()["spec"], second["spec"]);
    }

    #[test]
    fn what_no_config_ever_had_stays() {
        let config = deployment(json!([{"name": "A", "value": "1"}]));
        let mut live = apply(&json!({}), &config);
        // a sidecar added by hand, and a default the API server filled in
        live["spec"]["template"]["spec"]["containers"]
            .as_array_mut()
            .unwrap()
            .push(json!({"name": "proxy", "image": "proxy:1"}));
        live["spec"]["revisionHistoryLimit"] = json!(10);
        let after = apply(&live, &config);
        assert_eq!(after["spec"]["template"]["spec"]["containers"].as_array().unwrap().len(), 2);
        assert_eq!(after["spec"]["revisionHistoryLimit"], 10);
        // a changed field the config sets is reset
        let mut edited = after.clone();
        edited["spec"]["replicas"] = json!(7);
        assert_eq!(apply(&edited, &config)["spec"]["replicas"], 2);
    }

    #[test]
    fn an_unchanged_apply_sends_nothing() {
        let config = deployment(json!([{"name": "A", "value": "1"}]));
        let live = apply(&json!({}), &config);
        let modified = with_last_applied(&config);
        assert_eq!(three_way_strategic("Deployment", last_applied(&live).as_ref(), &modified, &live), json!({}));
    }

    #[test]
    fn a_strategy_switched_to_recreate_clears_the_defaulted_rolling_update() {
        let mut config = deployment(json!([]));
        let mut live = apply(&json!({}), &config);
        live["spec"]["strategy"] =
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}});
        config["spec"]["strategy"] = json!({"type": "Recreate"});
        let after = apply(&live, &config);
        assert_eq!(after["spec"]["strategy"], json!({"type": "Recreate"}));
    }

    #[test]
    fn custom_resources_merge_as_json() {
        let config = json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": {"size": 3, "tags": ["a", "b"], "extra": true}});
        let mut live = config.clone();
        live["spec"]["defaulted"] = json!("server");
        let next = json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": {"size": 4, "tags": ["a"]}});
        let patch = three_way_json_merge(Some(&config), &next, &live);
        assert_eq!(patch, json!({"spec": {"size": 4, "tags": ["a"], "extra": null}}));
        let mut after = live.clone();
        crate::k8s::patch::merge_patch(&mut after, &patch);
        assert_eq!(after["spec"], json!({"size": 4, "tags": ["a"], "defaulted": "server"}));
    }

    #[test]
    fn last_applied_is_the_config_in_sorted_compact_json() {
        let config = json!({"kind": "ConfigMap", "apiVersion": "v1", "metadata": {"name": "c", "annotations": {"b": "1"}}, "data": {"z": "1", "a": "2"}});
        let out = with_last_applied(&config);
        let text = out["metadata"]["annotations"][LAST_APPLIED].as_str().unwrap();
        assert_eq!(
            text,
            "{\"apiVersion\":\"v1\",\"data\":{\"a\":\"2\",\"z\":\"1\"},\"kind\":\"ConfigMap\",\"metadata\":{\"annotations\":{\"b\":\"1\"},\"name\":\"c\"}}\n"
        );
        assert_eq!(last_applied(&out).unwrap(), config);
    }
}
