//! How each list (and the few atomic structs) of the Kubernetes API merges: by merge key, as a
//! set of scalars, or replaced whole. This is the one table behind strategic merge patch,
//! server-side apply, the `k:`/`v:` keys of managedFields and the drift diff, so all of them
//! agree on what "the same list item" means. It mirrors the `patchMergeKey` /
//! `x-kubernetes-list-map-keys` / `listType` markers of the built-in types.

use serde_json::Value;

/// How a list field merges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListKind {
    /// Items are maps identified by these key fields (sorted by name, as managedFields writes
    /// them), e.g. `["name"]` or `["containerPort", "protocol"]`.
    Map(&'static [&'static str]),
    /// A list of scalars merged as a set, e.g. `metadata.finalizers`.
    Set,
    /// Replaced whole on every write.
    Atomic,
}

const NAME: &[&str] = &["name"];
const CONTAINER_PORT: &[&str] = &["containerPort", "protocol"];
const SERVICE_PORT: &[&str] = &["port", "protocol"];
const TOPOLOGY_SPREAD: &[&str] = &["topologyKey", "whenUnsatisfiable"];

/// The key field the API server defaults, so an item that omits it still has a full key.
const DEFAULTED_KEY: (&str, &str) = ("protocol", "TCP");

fn is_container_list(field: Option<&&str>) -> bool {
    matches!(field, Some(&"containers" | &"initContainers" | &"ephemeralContainers"))
}

/// How the list at `path` merges. `path` is the field path from the object root with list
/// indices removed, e.g. `["spec","template","spec","containers"]`; `kind` is the object's kind.
/// Only the tail of the path is matched, so a pod spec under a Pod, a workload template or a
/// CronJob's job template all resolve the same way. Lists not in the table are atomic, as they
/// are for the API server.
pub fn list_kind(kind: &str, path: &[&str]) -> ListKind {
    let Some((last, parent)) = path.split_last() else {
        return ListKind::Atomic;
    };
    let parent_field = parent.last();
    match *last {
        "containers" | "initContainers" | "ephemeralContainers" => ListKind::Map(NAME),
        "env" if is_container_list(parent_field) => ListKind::Map(NAME),
        "volumeMounts" if is_container_list(parent_field) => ListKind::Map(&["mountPath"]),
        "volumeDevices" if is_container_list(parent_field) => ListKind::Map(&["devicePath"]),
        "ports" if is_container_list(parent_field) => ListKind::Map(CONTAINER_PORT),
        "ports" if kind == "Service" && path == ["spec", "ports"] => ListKind::Map(SERVICE_PORT),
        "volumes" | "resourceClaims" | "schedulingGates" => ListKind::Map(NAME),
        // A ServiceAccount's imagePullSecrets carry no merge key; only the pod spec's do.
        "imagePullSecrets" if kind != "ServiceAccount" => ListKind::Map(NAME),
        "secrets" if kind == "ServiceAccount" => ListKind::Map(NAME),
        "hostAliases" => ListKind::Map(&["ip"]),
        "topologySpreadConstraints" => ListKind::Map(TOPOLOGY_SPREAD),
        "ownerReferences" => ListKind::Map(&["uid"]),
        "podIPs" | "hostIPs" if parent_field == Some(&"status") => ListKind::Map(&["ip"]),
        "conditions" if path.contains(&"status") => ListKind::Map(&["type"]),
        // Namespace `spec.finalizers` has no merge strategy; only object metadata's is a set.
        "finalizers" if parent_field == Some(&"metadata") => ListKind::Set,
        _ => ListKind::Atomic,
    }
}

/// Whether the map at `path` is an atomic struct (`+structType=atomic`), replaced whole by
/// server-side apply and owned as one leaf in managedFields. These are the LabelSelector-typed
/// fields; strategic merge patch ignores this and merges them like any map.
pub fn map_is_atomic(kind: &str, path: &[&str]) -> bool {
    let Some(last) = path.last() else {
        return false;
    };
    match *last {
        "labelSelector" | "namespaceSelector" | "podSelector" => true,
        // Service and ReplicationController selectors are plain string maps, merged per key.
        "selector" => matches!(
            kind,
            "Deployment" | "ReplicaSet" | "StatefulSet" | "DaemonSet" | "Job" | "CronJob" | "PodDisruptionBudget"
        ),
        _ => false,
    }
}

/// The key fields and values identifying `item` in the Map list at `path`, in the order of
/// [`ListKind::Map`] (sorted by name). A missing `protocol` is defaulted to `"TCP"`, as the API
/// server does before comparing. `None` if the list is not a Map list or a required key is absent.
pub fn item_key(kind: &str, path: &[&str], item: &Value) -> Option<Vec<(String, Value)>> {
    let ListKind::Map(keys) = list_kind(kind, path) else {
        return None;
    };
    let obj = item.as_object()?;
    keys.iter()
        .map(|k| match obj.get(*k) {
            Some(v) if !v.is_null() => Some(((*k).to_string(), v.clone())),
            _ if *k == DEFAULTED_KEY.0 => {
                Some((DEFAULTED_KEY.0.to_string(), Value::String(DEFAULTED_KEY.1.to_string())))
            }
            _ => None,
        })
        .collect()
}

/// The value of one key field of an item, with the API server's default applied when
/// `with_default` holds. Strategic merge patches often name only the primary key (kubectl's
/// `$setElementOrder` lists do), so callers need the undefaulted view too.
pub fn key_field(item: &Value, field: &str, with_default: bool) -> Option<Value> {
    match item.get(field) {
        Some(v) if !v.is_null() => Some(v.clone()),
        _ if with_default && field == DEFAULTED_KEY.0 => Some(Value::String(DEFAULTED_KEY.1.to_string())),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const DEPLOY_CONTAINERS: &[&str] = &["spec", "template", "spec", "containers"];

    #[test]
    fn pod_spec_lists_resolve_under_every_workload() {
        let pod = ["spec", "containers"];
        let cron = ["spec", "jobTemplate", "spec", "template", "spec", "initContainers"];
        assert_eq!(list_kind("Pod", &pod), ListKind::Map(&["name"]));
        assert_eq!(list_kind("Deployment", DEPLOY_CONTAINERS), ListKind::Map(&["name"]));
        assert_eq!(list_kind("CronJob", &cron), ListKind::Map(&["name"]));
        let env = ["spec", "template", "spec", "containers", "env"];
        assert_eq!(list_kind("StatefulSet", &env), ListKind::Map(&["name"]));
        let mounts = ["spec", "containers", "volumeMounts"];
        assert_eq!(list_kind("Pod", &mounts), ListKind::Map(&["mountPath"]));
        let devices = ["spec", "containers", "volumeDevices"];
        assert_eq!(list_kind("Pod", &devices), ListKind::Map(&["devicePath"]));
        let volumes = ["spec", "template", "spec", "volumes"];
        assert_eq!(list_kind("DaemonSet", &volumes), ListKind::Map(&["name"]));
        let ips = ["spec", "template", "spec", "imagePullSecrets"];
        assert_eq!(list_kind("Job", &ips), ListKind::Map(&["name"]));
        let aliases = ["spec", "hostAliases"];
        assert_eq!(list_kind("Pod", &aliases), ListKind::Map(&["ip"]));
        let tsc = ["spec", "template", "spec", "topologySpreadConstraints"];
        assert_eq!(list_kind("Deployment", &tsc), ListKind::Map(&["topologyKey", "whenUnsatisfiable"]));
    }

    #[test]
    fn ports_depend_on_where_they_are() {
        let cports = ["spec", "template", "spec", "containers", "ports"];
        assert_eq!(list_kind("Deployment", &cports), ListKind::Map(&["containerPort", "protocol"]));
        assert_eq!(list_kind("Service", &["spec", "ports"]), ListKind::Map(&["port", "protocol"]));
        // NetworkPolicy ingress ports have no merge key.
        assert_eq!(list_kind("NetworkPolicy", &["spec", "ingress", "ports"]), ListKind::Atomic);
    }

    #[test]
    fn metadata_status_and_atomic_lists() {
        assert_eq!(list_kind("ConfigMap", &["metadata", "finalizers"]), ListKind::Set);
        assert_eq!(list_kind("Namespace", &["spec", "finalizers"]), ListKind::Atomic);
        assert_eq!(list_kind("Deployment", &["metadata", "ownerReferences"]), ListKind::Map(&["uid"]));
        assert_eq!(list_kind("Deployment", &["status", "conditions"]), ListKind::Map(&["type"]));
        assert_eq!(list_kind("Ingress", &["spec", "rules"]), ListKind::Atomic);
        assert_eq!(list_kind("Ingress", &["spec", "tls"]), ListKind::Atomic);
        let tol = ["spec", "template", "spec", "tolerations"];
        assert_eq!(list_kind("Deployment", &tol), ListKind::Atomic);
        let args = ["spec", "containers", "args"];
        assert_eq!(list_kind("Pod", &args), ListKind::Atomic);
        let cmd = ["spec", "containers", "command"];
        assert_eq!(list_kind("Pod", &cmd), ListKind::Atomic);
        assert_eq!(list_kind("Pod", &[]), ListKind::Atomic);
    }

    #[test]
    fn item_keys_default_protocol() {
        let cports = ["spec", "template", "spec", "containers", "ports"];
        assert_eq!(
            item_key("Deployment", &cports, &json!({"containerPort": 8080, "name": "http"})),
            Some(vec![("containerPort".to_string(), json!(8080)), ("protocol".to_string(), json!("TCP"))])
        );
        assert_eq!(
            item_key("Service", &["spec", "ports"], &json!({"port": 53, "protocol": "UDP"})),
            Some(vec![("port".to_string(), json!(53)), ("protocol".to_string(), json!("UDP"))])
        );
        assert_eq!(
            item_key("Deployment", DEPLOY_CONTAINERS, &json!({"name": "web", "image": "nginx"})),
            Some(vec![("name".to_string(), json!("web"))])
        );
        assert_eq!(item_key("Deployment", DEPLOY_CONTAINERS, &json!({"image": "x"})), None);
        assert_eq!(item_key("Deployment", &["spec", "template", "spec", "tolerations"], &json!({"key": "a"})), None);
    }

    #[test]
    fn label_selectors_are_atomic() {
        assert!(map_is_atomic("Deployment", &["spec", "selector"]));
        assert!(!map_is_atomic("Service", &["spec", "selector"]));
        assert!(map_is_atomic("NetworkPolicy", &["spec", "podSelector"]));
        assert!(!map_is_atomic("Deployment", &["spec", "template"]));
    }
}
