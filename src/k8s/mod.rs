//! Kubernetes object helpers shared by every workflow: identity, pod templates, label
//! selectors, secret redaction and strict schemas.

pub(crate) mod apply;
pub mod compare;
pub mod defaults;
pub mod diff;
pub mod fields;
pub(crate) mod image;
pub mod kinds;
pub(crate) mod merge_keys;
pub mod patch;
pub(crate) mod redact;
pub(crate) mod schema;

use serde_json::Value;

/// apiVersion, kind, namespace and name of an object.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub struct ObjectRef {
    pub api_version: String,
    pub kind: String,
    pub namespace: Option<String>,
    pub name: String,
}

impl ObjectRef {
    pub fn of(obj: &Value) -> ObjectRef {
        let s = |p: &str| obj.pointer(p).and_then(Value::as_str).map(str::to_string);
        ObjectRef {
            api_version: s("/apiVersion").unwrap_or_default(),
            kind: s("/kind").unwrap_or_default(),
            namespace: s("/metadata/namespace"),
            name: s("/metadata/name").unwrap_or_default(),
        }
    }
}

impl std::fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{}/{}/{}", self.kind, ns, self.name),
            None => write!(f, "{}/{}", self.kind, self.name),
        }
    }
}

/// JSON pointer of the pod template spec of a workload, if the object has one.
pub fn pod_spec_pointer(obj: &Value) -> Option<&'static str> {
    match obj.get("kind").and_then(Value::as_str)? {
        "Pod" => Some("/spec"),
        "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet" | "Job" | "ReplicationController" => {
            Some("/spec/template/spec")
        }
        "CronJob" => Some("/spec/jobTemplate/spec/template/spec"),
        _ => None,
    }
}

/// Labels of the pods a workload creates.
pub fn pod_labels(obj: &Value) -> Option<&serde_json::Map<String, Value>> {
    let spec = pod_spec_pointer(obj)?;
    // "/spec/template/spec" -> "/spec/template/metadata"; a Pod's "/spec" -> "/metadata"
    let meta = format!("{}/metadata", spec.strip_suffix("/spec").unwrap_or_default());
    obj.pointer(&format!("{meta}/labels")).and_then(Value::as_object)
}

/// Every container of a workload (init containers included) with its JSON pointer.
pub fn containers(obj: &Value) -> Vec<(String, &Value)> {
    let Some(spec) = pod_spec_pointer(obj) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for list in ["initContainers", "containers"] {
        if let Some(items) = obj.pointer(&format!("{spec}/{list}")).and_then(Value::as_array) {
            for (i, c) in items.iter().enumerate() {
                out.push((format!("{spec}/{list}/{i}"), c));
            }
        }
    }
    out
}

/// Whether a metav1.LabelSelector (matchLabels and matchExpressions) selects `labels`.
/// An empty selector selects everything.
pub fn selector_matches(selector: &Value, labels: &serde_json::Map<String, Value>) -> bool {
    if let Some(ml) = selector.get("matchLabels").and_then(Value::as_object)
        && !ml.iter().all(|(k, v)| labels.get(k) == Some(v))
    {
        return false;
    }
    if let Some(exprs) = selector.get("matchExpressions").and_then(Value::as_array) {
        for e in exprs {
            let key = e.get("key").and_then(Value::as_str).unwrap_or_default();
            let values: Vec<&str> =
                e.get("values").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str).collect();
            let actual = labels.get(key).and_then(Value::as_str);
            let ok = match e.get("operator").and_then(Value::as_str).unwrap_or_default() {
                "In" => actual.is_some_and(|a| values.contains(&a)),
                "NotIn" => actual.is_none_or(|a| !values.contains(&a)),
                "Exists" => actual.is_some(),
                "DoesNotExist" => actual.is_none(),
                _ => false,
            };
            if !ok {
                return false;
            }
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn selectors() {
        let labels = json!({"app": "web", "tier": "front"});
        let labels = labels.as_object().unwrap();
        assert!(selector_matches(&json!({}), labels));
        assert!(selector_matches(&json!({"matchLabels": {"app": "web"}}), labels));
        assert!(!selector_matches(&json!({"matchLabels": {"app": "api"}}), labels));
        assert!(selector_matches(
            &json!({"matchExpressions": [{"key": "tier", "operator": "In", "values": ["front", "x"]}]}),
            labels
        ));
        assert!(!selector_matches(&json!({"matchExpressions": [{"key": "tier", "operator": "DoesNotExist"}]}), labels));
        assert!(selector_matches(
            &json!({"matchExpressions": [{"key": "zone", "operator": "NotIn", "values": ["a"]}]}),
            labels
        ));
    }

    #[test]
    fn workloads() {
        let cj = json!({"kind": "CronJob", "spec": {"jobTemplate": {"spec": {"template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c"}], "initContainers": [{"name": "i"}]}}}}}});
        assert_eq!(pod_labels(&cj).unwrap().get("a"), Some(&json!("b")));
        let cs: Vec<_> = containers(&cj).into_iter().map(|(p, _)| p).collect();
        assert_eq!(
            cs,
            vec![
                "/spec/jobTemplate/spec/template/spec/initContainers/0",
                "/spec/jobTemplate/spec/template/spec/containers/0"
            ]
        );
        let pod = json!({"kind": "Pod", "metadata": {"labels": {"x": "y"}}, "spec": {}});
        assert_eq!(pod_labels(&pod).unwrap().get("x"), Some(&json!("y")));
        assert_eq!(
            ObjectRef::of(&json!({"kind": "Service", "metadata": {"name": "s", "namespace": "n"}})).to_string(),
            "Service/n/s"
        );
    }
}
