//! The semantic object diff every workflow reuses (drift, commit drafting, harmonize proof):
//! both sides are normalized (server-owned metadata and status are dropped; quantities compare
//! by value; empty maps and lists are absent; API defaults are the caller's business, see
//! [`super::compare`]), lists are compared by merge key, and each change is reported in words
//! (`+ container oauth2-proxy (image ...)`) with a path like
//! `spec.template.spec.containers[name=oauth2-proxy]`. Secret values are compared by hash and
//! never appear in a change.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::fields::{self, PathElem};
use super::merge_keys::{ListKind, item_key, list_kind};

/// metadata fields the server owns.
const SERVER_METADATA: [&str; 8] = [
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "selfLink",
    "managedFields",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
];

/// Annotations written by tools and controllers, never by the repo.
const TOOL_ANNOTATIONS: [&str; 4] = [
    "kubectl.kubernetes.io/last-applied-configuration",
    "deployment.kubernetes.io/revision",
    "argocd.argoproj.io/tracking-id",
    "kubectl.kubernetes.io/restartedAt",
];

/// Labels Argo CD adds to track what it deployed.
const TOOL_LABELS: [&str; 1] = ["app.kubernetes.io/instance"];

/// Maps whose keys are names chosen by the user, each entry a change of its own.
const ENTRY_MAPS: &[&str] = &[
    "labels",
    "annotations",
    "data",
    "stringData",
    "binaryData",
    "matchLabels",
    "selector",
    "nodeSelector",
    "limits",
    "requests",
    "capacity",
    "parameters",
];

/// The merge-key fields and values of a list item.
type ItemKey = Vec<(String, Value)>;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Op {
    Add,
    Remove,
    Change,
}

/// One semantic difference; `from` is the desired value, `to` the live one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Change {
    pub op: Op,
    pub path: String,
    pub from: Option<Value>,
    pub to: Option<Value>,
    pub summary: String,
    /// The path as managedFields addresses it, for attribution.
    #[serde(skip)]
    pub elems: Vec<PathElem>,
}

/// Who last wrote a field: the managedFields entry that owns it (or its nearest owned
/// ancestor). The time is the entry's, so the write happened at or before it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Owner {
    pub manager: String,
    pub operation: String,
    pub time: Option<String>,
    pub subresource: Option<String>,
}

/// The manager owning a change's path in the live object's managedFields.
pub fn owner_of(live: &Value, change: &Change) -> Option<Owner> {
    let managed = live.pointer("/metadata/managedFields").and_then(Value::as_array)?;
    let e = fields::owner(managed, &change.elems)?;
    let s = |k: &str| e.get(k).and_then(Value::as_str).map(str::to_string);
    Some(Owner {
        manager: s("manager").unwrap_or_default(),
        operation: s("operation").unwrap_or_default(),
        time: s("time"),
        subresource: s("subresource"),
    })
}

/// Normalizes one side for comparison: server metadata, status and tool annotations go;
/// empty maps and lists go, and so do a Secret's empty values (`""` in git reads back as null
/// from the API server).
pub fn normalize(obj: &Value) -> Value {
    // copies what is compared only: managedFields and status are often most of a live object
    let mut v = match obj {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(k, _)| k.as_str() != "status")
                .map(|(k, x)| {
                    let x = match (k.as_str(), x) {
                        ("metadata", Value::Object(meta)) => Value::Object(
                            meta.iter()
                                .filter(|(f, _)| !SERVER_METADATA.contains(&f.as_str()))
                                .map(|(f, y)| (f.clone(), y.clone()))
                                .collect(),
                        ),
                        _ => x.clone(),
                    };
                    (k.clone(), x)
                })
                .collect(),
        ),
        other => other.clone(),
    };
    normalize_in_place(&mut v);
    v
}

/// [`normalize`] on an object the caller owns.
fn normalize_in_place(v: &mut Value) {
    let secret = v.get("kind").and_then(Value::as_str) == Some("Secret");
    if let Some(m) = v.as_object_mut() {
        m.remove("status");
        if secret {
            for field in ["data", "stringData"] {
                if let Some(Value::Object(d)) = m.get_mut(field) {
                    d.retain(|_, x| x.as_str() != Some(""));
                }
            }
        }
        if let Some(Value::Object(meta)) = m.get_mut("metadata") {
            for f in SERVER_METADATA {
                meta.remove(f);
            }
            for (field, keys) in [("annotations", &TOOL_ANNOTATIONS[..]), ("labels", &TOOL_LABELS[..])] {
                if let Some(Value::Object(a)) = meta.get_mut(field) {
                    for k in keys {
                        a.remove(*k);
                    }
                }
            }
        }
    }
    prune_empty(v);
}

fn prune_empty(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.values_mut().for_each(prune_empty);
            m.retain(|_, x| !is_empty(x));
        }
        Value::Array(a) => a.iter_mut().for_each(prune_empty),
        _ => {}
    }
}

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Object(m) => m.is_empty(),
        Value::Array(a) => a.is_empty(),
        _ => false,
    }
}

/// The value of a Kubernetes quantity (`500m`, `1Gi`, `2`, `1e3`), if it is one.
pub fn quantity(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => {
            let s = s.trim();
            let split = s.find(|c: char| c.is_ascii_alphabetic() && c != 'e' && c != 'E').unwrap_or(s.len());
            let (num, suffix) = s.split_at(split);
            let n: f64 = num.parse().ok()?;
            let mult = match suffix {
                "" => 1.0,
                "n" => 1e-9,
                "u" => 1e-6,
                "m" => 1e-3,
                "k" => 1e3,
                "M" => 1e6,
                "G" => 1e9,
                "T" => 1e12,
                "P" => 1e15,
                "E" => 1e18,
                "Ki" => 1024.0,
                "Mi" => 1024.0 * 1024.0,
                "Gi" => 1024.0 * 1024.0 * 1024.0,
                "Ti" => 1024f64.powi(4),
                "Pi" => 1024f64.powi(5),
                "Ei" => 1024f64.powi(6),
                _ => return None,
            };
            Some(n * mult)
        }
        _ => None,
    }
}

/// Whether two values are equal, reading resource amounts as quantities.
fn same(path: &[&str], a: &Value, b: &Value) -> bool {
    if a == b {
        return true;
    }
    let in_resources = path.iter().any(|p| *p == "resources" || *p == "limits" || *p == "requests" || *p == "capacity");
    if in_resources && let (Some(x), Some(y)) = (quantity(a), quantity(b)) {
        return (x - y).abs() <= f64::EPSILON * x.abs().max(y.abs()).max(1.0);
    }
    // "8080" and 8080 are the same port or count
    matches!((a, b), (Value::String(s), Value::Number(n)) | (Value::Number(n), Value::String(s)) if s == &n.to_string())
}

fn short_hash(v: &Value) -> String {
    let text = match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    format!("sha256:{}", &blake3::hash(text.as_bytes()).to_hex()[..12])
}

/// The semantic difference from `desired` to `live` for one object.
pub fn diff(desired: &Value, live: &Value) -> Vec<Change> {
    diff_owned(normalize(desired), live)
}

/// [`diff`] of a desired object the caller hands over (normalized in place, not copied).
pub fn diff_owned(mut desired: Value, live: &Value) -> Vec<Change> {
    normalize_in_place(&mut desired);
    let d = desired;
    let kind = d.get("kind").or_else(|| live.get("kind")).and_then(Value::as_str).unwrap_or_default().to_string();
    let l = normalize(live);
    let mut out = Vec::new();
    let secret = kind == "Secret";
    let mut cx = Walk { kind: &kind, secret, elems: Vec::new(), out: &mut out };
    cx.walk(&mut Vec::new(), &mut String::new(), Some(&d), Some(&l));
    out
}

fn display_key(key: &[(String, Value)]) -> String {
    key.iter()
        .map(|(k, v)| format!("{k}={}", v.as_str().map_or_else(|| v.to_string(), str::to_string)))
        .collect::<Vec<_>>()
        .join(",")
}

/// State of one diff: the object's kind, whether it is a Secret, the managedFields path of
/// the node being compared, and the changes found so far.
struct Walk<'o> {
    kind: &'o str,
    secret: bool,
    elems: Vec<PathElem>,
    out: &'o mut Vec<Change>,
}

impl Walk<'_> {
    fn walk<'a>(&mut self, path: &mut Vec<&'a str>, shown: &mut String, d: Option<&'a Value>, l: Option<&'a Value>) {
        // A map or list present on one side only is compared against an empty one, so its
        // entries are reported one by one; a whole list item stays one change.
        static EMPTY_MAP: std::sync::LazyLock<Value> =
            std::sync::LazyLock::new(|| Value::Object(serde_json::Map::new()));
        static EMPTY_LIST: Value = Value::Array(Vec::new());
        // Maps of named entries (labels, data, limits) and the object's sections are
        // compared entry by entry; a struct present on one side only (a probe, an affinity)
        // is one change, not one per field.
        let entries = path.len() < 2 || path.last().is_some_and(|f| ENTRY_MAPS.contains(f));
        let empty_like = |v: &Value| -> Option<&'static Value> {
            match v {
                Value::Object(_) if entries => Some(&*EMPTY_MAP),
                Value::Array(_) => Some(&EMPTY_LIST),
                _ => None,
            }
        };
        let at_item = shown.ends_with(']');
        let (d, l) = match (d, l) {
            (None, Some(x)) if !at_item && empty_like(x).is_some() => (empty_like(x), l),
            (Some(x), None) if !at_item && empty_like(x).is_some() => (d, empty_like(x)),
            other => other,
        };
        let kind = self.kind;
        match (d, l) {
            (Some(Value::Object(dm)), Some(Value::Object(lm))) => {
                let keys: Vec<&String> = dm.keys().chain(lm.keys().filter(|k| !dm.contains_key(*k))).collect();
                for k in keys {
                    let (dv, lv) = (dm.get(k), lm.get(k));
                    let len = shown.len();
                    if !shown.is_empty() {
                        shown.push('.');
                    }
                    shown.push_str(k);
                    path.push(k);
                    self.elems.push(PathElem::Field(k.clone()));
                    self.walk(path, shown, dv, lv);
                    self.elems.pop();
                    path.pop();
                    shown.truncate(len);
                }
            }
            (Some(Value::Array(da)), Some(Value::Array(la))) => match list_kind(kind, path) {
                ListKind::Map(_) => {
                    let keyed = |items: &'a [Value]| -> Vec<(Option<ItemKey>, &'a Value)> {
                        items.iter().map(|i| (item_key(kind, path, i), i)).collect()
                    };
                    let (dk, lk) = (keyed(da), keyed(la));
                    if dk.iter().chain(lk.iter()).any(|(k, _)| k.is_none()) {
                        return self.whole(path, shown, d, l);
                    }
                    let mut items: Vec<(ItemKey, Option<&'a Value>, Option<&'a Value>)> = Vec::new();
                    for (key, item) in &dk {
                        let key = key.clone().unwrap_or_default();
                        let other = lk.iter().find(|(k, _)| k.as_ref() == Some(&key)).map(|x| x.1);
                        items.push((key, Some(*item), other));
                    }
                    for (key, item) in &lk {
                        let key = key.clone().unwrap_or_default();
                        if !dk.iter().any(|(k, _)| k.as_ref() == Some(&key)) {
                            items.push((key, None, Some(*item)));
                        }
                    }
                    for (key, a, b) in items {
                        let len = shown.len();
                        shown.push_str(&format!("[{}]", display_key(&key)));
                        self.elems.push(PathElem::Key(key));
                        self.walk(path, shown, a, b);
                        self.elems.pop();
                        shown.truncate(len);
                    }
                }
                ListKind::Set => {
                    for x in la.iter().filter(|x| !da.contains(x)) {
                        self.push(Op::Add, shown, None, Some(x), path, Some(x));
                    }
                    for x in da.iter().filter(|x| !la.contains(x)) {
                        self.push(Op::Remove, shown, Some(x), None, path, Some(x));
                    }
                }
                ListKind::Atomic => self.whole(path, shown, d, l),
            },
            (Some(a), Some(b)) => {
                if !same(path, a, b) {
                    self.push(Op::Change, shown, Some(a), Some(b), path, None);
                }
            }
            (None, Some(b)) => self.push(Op::Add, shown, None, Some(b), path, None),
            (Some(a), None) => self.push(Op::Remove, shown, Some(a), None, path, None),
            (None, None) => {}
        }
    }

    fn whole(&mut self, path: &[&str], shown: &str, d: Option<&Value>, l: Option<&Value>) {
        if d != l {
            self.push(Op::Change, shown, d, l, path, None);
        }
    }

    /// Records a change with its words; Secret values become short hashes.
    fn push(
        &mut self,
        op: Op,
        shown: &str,
        from: Option<&Value>,
        to: Option<&Value>,
        path: &[&str],
        set_item: Option<&Value>,
    ) {
        let hide = self.secret && matches!(path.first(), Some(&"data") | Some(&"stringData"));
        let show = |v: Option<&Value>| v.map(|x| if hide { Value::String(short_hash(x)) } else { x.clone() });
        let (from, to) = (show(from), show(to));
        let mut elems = self.elems.clone();
        if let Some(x) = set_item {
            elems.push(PathElem::Value(x.clone()));
        }
        let summary = words(op, shown, from.as_ref(), to.as_ref(), path, hide);
        self.out.push(Change { op, path: shown.to_string(), summary, from, to, elems });
    }
}

fn brief(v: Option<&Value>) -> String {
    match v {
        Some(Value::String(s)) => s.clone(),
        Some(other) => {
            let s = other.to_string();
            if s.len() > 80 { format!("{}…", &s[..s.char_indices().nth(77).map_or(s.len(), |c| c.0)]) } else { s }
        }
        None => "(none)".into(),
    }
}

fn words(op: Op, shown: &str, from: Option<&Value>, to: Option<&Value>, path: &[&str], hidden: bool) -> String {
    let sign = match op {
        Op::Add => "+",
        Op::Remove => "-",
        Op::Change => "~",
    };
    let item = shown
        .rsplit_once('[')
        .map(|(_, k)| k.trim_end_matches(']').split_once('=').map_or(k, |x| x.1).trim_end_matches(']'));
    let present = if op == Op::Remove { from } else { to };
    let last = path.last().copied().unwrap_or_default();
    let at_item = shown.ends_with(']');
    match (last, at_item, op) {
        ("containers" | "initContainers" | "ephemeralContainers", true, Op::Add | Op::Remove) => {
            let noun = if last == "containers" { "container" } else { "init container" };
            let image = present
                .and_then(|v| v.get("image"))
                .and_then(Value::as_str)
                .map(|i| format!(" (image {i})"))
                .unwrap_or_default();
            format!("{sign} {noun} {}{image}", item.unwrap_or_default())
        }
        ("volumes", true, _) => format!("{sign} volume {}", item.unwrap_or_default()),
        ("env", true, Op::Add | Op::Remove) => format!("{sign} env {}", item.unwrap_or_default()),
        ("volumeMounts", true, _) => format!("{sign} volume mount {}", item.unwrap_or_default()),
        _ if path.len() >= 2 && path[path.len() - 2] == "labels" && path[0] == "metadata" => match op {
            Op::Change => format!("~ label {last}: {} → {}", brief(from), brief(to)),
            _ => format!("{sign} label {last}={}", brief(present)),
        },
        _ if path.len() >= 2 && path[path.len() - 2] == "annotations" && path[0] == "metadata" => match op {
            Op::Change => format!("~ annotation {last}: {} → {}", brief(from), brief(to)),
            _ => format!("{sign} annotation {last}"),
        },
        _ if hidden => {
            format!("{sign} secret key {last} {}", if op == Op::Change { "changed" } else { "" }).trim_end().to_string()
        }
        ("replicas", _, Op::Change) => format!("~ replicas {} → {}", brief(from), brief(to)),
        ("image", _, Op::Change) => {
            let c = shown
                .rsplit_once('[')
                .map(|(_, k)| k.split(']').next().unwrap_or(k).split_once('=').map_or(k, |x| x.1))
                .unwrap_or("");
            format!("~ image of container {c}: {} → {}", brief(from), brief(to))
        }
        (_, _, Op::Change) => format!("~ {shown}: {} → {}", brief(from), brief(to)),
        (_, _, Op::Add) => format!("+ {shown}: {}", brief(to)),
        (_, _, Op::Remove) => format!("- {shown}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// What git renders, as the API server would store it.
    fn defaulted(d: &Value) -> Value {
        crate::k8s::compare::with_defaults(d)
    }

    fn deployment() -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "grafana", "namespace": "monitoring", "labels": {"app": "grafana"}},
               "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "grafana"}}, "template": {"metadata": {"labels": {"app": "grafana"}},
               "spec": {"containers": [{"name": "grafana", "image": "grafana/grafana:10.4.2", "ports": [{"containerPort": 3000}],
                        "resources": {"limits": {"cpu": "1", "memory": "1Gi"}}, "env": [{"name": "A", "value": "1"}]}]}}}})
    }

    /// What the API server makes of it: defaults, metadata, status, tracking.
    fn live_of(d: &Value) -> Value {
        let mut l = d.clone();
        l["metadata"]["uid"] = json!("u");
        l["metadata"]["resourceVersion"] = json!("42");
        l["metadata"]["generation"] = json!(2);
        l["metadata"]["managedFields"] = json!([{"manager": "argocd-controller"}]);
        l["metadata"]["annotations"] = json!({"deployment.kubernetes.io/revision": "2"});
        l["metadata"]["labels"]["app.kubernetes.io/instance"] = json!("grafana-prod-west");
        l["status"] = json!({"replicas": 3});
        l["spec"]["revisionHistoryLimit"] = json!(10);
        l["spec"]["progressDeadlineSeconds"] = json!(600);
        l["spec"]["strategy"] =
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}});
        let pod = &mut l["spec"]["template"]["spec"];
        pod["dnsPolicy"] = json!("ClusterFirst");
        pod["restartPolicy"] = json!("Always");
        pod["schedulerName"] = json!("default-scheduler");
        pod["securityContext"] = json!({});
        pod["terminationGracePeriodSeconds"] = json!(30);
        let c = &mut pod["containers"][0];
        c["imagePullPolicy"] = json!("IfNotPresent");
        c["terminationMessagePath"] = json!("/dev/termination-log");
        c["terminationMessagePolicy"] = json!("File");
        c["ports"][0]["protocol"] = json!("TCP");
        c["resources"]["limits"] = json!({"cpu": "1000m", "memory": "1024Mi"});
        l
    }

    #[test]
    fn defaults_and_server_fields_are_not_drift() {
        let d = deployment();
        assert_eq!(diff(&defaulted(&d), &live_of(&d)), vec![]);
    }

    #[test]
    fn an_added_sidecar_is_a_few_lines() {
        let d = deployment();
        let mut l = live_of(&d);
        l["spec"]["template"]["spec"]["containers"].as_array_mut().unwrap().push(json!({"name": "oauth2-proxy", "image": "quay.io/oauth2-proxy/oauth2-proxy:v7.4.0", "imagePullPolicy": "IfNotPresent"}));
        l["spec"]["template"]["spec"]["volumes"] =
            json!([{"name": "oauth2-proxy-config", "configMap": {"name": "oauth2-proxy"}}]);
        l["spec"]["replicas"] = json!(5);
        l["metadata"]["annotations"]["team"] = json!("x");
        l["spec"]["template"]["spec"]["containers"][0]["env"]
            .as_array_mut()
            .unwrap()
            .push(json!({"name": "B", "value": "2"}));
        let summaries: Vec<String> = diff(&defaulted(&d), &l).into_iter().map(|c| c.summary).collect();
        assert_eq!(
            summaries,
            vec![
                "+ annotation team",
                "~ replicas 3 → 5",
                "+ env B",
                "+ container oauth2-proxy (image quay.io/oauth2-proxy/oauth2-proxy:v7.4.0)",
                "+ volume oauth2-proxy-config",
            ]
        );
        let c = diff(&defaulted(&d), &l);
        assert_eq!(c[3].path, "spec.template.spec.containers[name=oauth2-proxy]");
        assert_eq!(c[3].op, Op::Add);
    }

    #[test]
    fn changed_image_and_removed_label() {
        let d = deployment();
        let mut l = live_of(&d);
        l["spec"]["template"]["spec"]["containers"][0]["image"] = json!("grafana/grafana:11.0.0");
        l["metadata"]["labels"].as_object_mut().unwrap().remove("app");
        l["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["memory"] = json!("2Gi");
        let s: Vec<String> = diff(&defaulted(&d), &l).into_iter().map(|c| c.summary).collect();
        assert_eq!(
            s,
            vec![
                "- label app=grafana",
                "~ image of container grafana: grafana/grafana:10.4.2 → grafana/grafana:11.0.0",
                "~ spec.template.spec.containers[name=grafana].resources.limits.memory: 1Gi → 2Gi",
            ]
        );
    }

    #[test]
    fn a_set_default_still_counts_when_desired_sets_it() {
        let mut d = deployment();
        d["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"] = json!("Always");
        let l = live_of(&deployment());
        let c = diff(&defaulted(&d), &l);
        assert_eq!(c.len(), 1, "{c:?}");
        assert_eq!(c[0].path, "spec.template.spec.containers[name=grafana].imagePullPolicy");
    }

    #[test]
    fn empty_secret_values_equal_null() {
        let d = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "type": "Opaque", "data": {"smtp-password": "", "user": "YQ=="}});
        let mut l = d.clone();
        l["data"]["smtp-password"] = Value::Null;
        assert_eq!(diff(&d, &l), vec![]);
        l["data"]["smtp-password"] = json!("eA==");
        assert_eq!(diff(&d, &l).len(), 1);
    }

    #[test]
    fn secrets_compare_by_hash() {
        let d = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "data": {"password": "c2VjcmV0LW9uZQ==", "user": "YQ=="}});
        let mut l = d.clone();
        l["data"]["password"] = json!("c2VjcmV0LXR3bw==");
        let c = diff(&d, &l);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].summary, "~ secret key password changed");
        let text = serde_json::to_string(&c).unwrap();
        assert!(!text.contains("c2VjcmV0") && text.contains("sha256:"), "{text}");
    }

    #[test]
    fn changes_are_attributed_to_their_manager() {
        let d = deployment();
        let mut l = live_of(&d);
        l["spec"]["template"]["spec"]["containers"]
            .as_array_mut()
            .unwrap()
            .push(json!({"name": "oauth2-proxy", "image": "proxy:1"}));
        l["spec"]["replicas"] = json!(5);
        l["metadata"]["managedFields"] = json!([
            {"manager": "argocd-controller", "operation": "Apply", "time": "2026-11-27T08:00:00Z", "fieldsV1": {"f:spec": {"f:replicas": {}, "f:template": {"f:spec": {"f:containers": {"k:{\"name\":\"grafana\"}": {".": {}, "f:image": {}}}}}}}},
            {"manager": "kubectl-edit", "operation": "Update", "time": "2026-11-27T09:00:00Z", "fieldsV1": {"f:spec": {"f:template": {"f:spec": {"f:containers": {"k:{\"name\":\"oauth2-proxy\"}": {".": {}, "f:image": {}, "f:name": {}}}}}}}},
            {"manager": "kubectl", "operation": "Update", "subresource": "scale", "time": "2026-11-27T09:30:00Z", "fieldsV1": {"f:spec": {"f:replicas": {}}}}
        ]);
        let c = diff(&defaulted(&d), &l);
        let owners: Vec<(String, String)> =
            c.iter().map(|x| (x.summary.clone(), owner_of(&l, x).map(|o| o.manager).unwrap_or_default())).collect();
        assert!(
            owners.contains(&("+ container oauth2-proxy (image proxy:1)".into(), "kubectl-edit".into())),
            "{owners:?}"
        );
        // both entries name spec.replicas; the first listed wins, as for the apiserver
        assert!(owners.iter().any(|(s, m)| s == "~ replicas 3 → 5" && !m.is_empty()), "{owners:?}");
    }

    #[test]
    fn quantities() {
        assert_eq!(quantity(&json!("1000m")), quantity(&json!("1")));
        assert_eq!(quantity(&json!("1Gi")), quantity(&json!("1024Mi")));
        assert_eq!(quantity(&json!("1e3")), Some(1000.0));
        assert_eq!(quantity(&json!("abc")), None);
    }

    #[test]
    fn service_ports_by_port_and_protocol() {
        let d = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"}, "spec": {"selector": {"a": "b"}, "ports": [{"port": 80, "targetPort": 8080}]}});
        let mut l = defaulted(&d);
        l["spec"]["ports"] = json!([{"port": 80, "targetPort": 8080, "protocol": "TCP"}, {"port": 9090, "targetPort": 9090, "protocol": "TCP"}]);
        let c = diff(&defaulted(&d), &l);
        assert_eq!(c.len(), 1, "{c:?}");
        assert_eq!(c[0].path, "spec.ports[port=9090,protocol=TCP]");
    }
}
