//! What the API server's registry and admission chain add to objects beyond defaulting, as a
//! real cluster does on create and keeps on update: a Service's cluster IP, IP families and
//! node ports; a PVC's default StorageClass and protection finalizer; a Namespace's name label
//! and finalizer; a Job's generated selector and labels. Values are allocated from this mock
//! cluster's own ranges (10.96.0.0/16, node ports 30000-32767).

use std::collections::BTreeSet;

use serde_json::{Map, Value, json};

/// What is taken already: cluster IPs and node ports of the cluster's Services, and the name
/// of its default StorageClass.
#[derive(Debug, Default)]
pub struct Taken {
    pub cluster_ips: BTreeSet<String>,
    pub node_ports: BTreeSet<u64>,
    pub default_storage_class: Option<String>,
}

impl Taken {
    /// Reads what the stored objects hold.
    pub fn of<'a>(objects: impl Iterator<Item = &'a Value>) -> Taken {
        let mut t = Taken::default();
        for o in objects {
            let kind = o.get("kind").and_then(Value::as_str).unwrap_or_default();
            let av = o.get("apiVersion").and_then(Value::as_str).unwrap_or_default();
            if kind == "Service" && av == "v1" {
                for ip in o.pointer("/spec/clusterIPs").and_then(Value::as_array).into_iter().flatten() {
                    if let Some(ip) = ip.as_str() {
                        t.cluster_ips.insert(ip.to_string());
                    }
                }
                for p in o.pointer("/spec/ports").and_then(Value::as_array).into_iter().flatten() {
                    if let Some(n) = p.get("nodePort").and_then(Value::as_u64) {
                        t.node_ports.insert(n);
                    }
                }
                if let Some(n) = o.pointer("/spec/healthCheckNodePort").and_then(Value::as_u64) {
                    t.node_ports.insert(n);
                }
            }
            if kind == "StorageClass"
                && o.pointer("/metadata/annotations/storageclass.kubernetes.io~1is-default-class")
                    .and_then(Value::as_str)
                    == Some("true")
            {
                t.default_storage_class = o.pointer("/metadata/name").and_then(Value::as_str).map(str::to_string);
            }
        }
        t
    }

    fn cluster_ip(&mut self) -> String {
        loop {
            let ip = format!("10.96.{}.{}", fastrand::u8(..), fastrand::u8(1..=254));
            if self.cluster_ips.insert(ip.clone()) {
                return ip;
            }
        }
    }

    fn node_port(&mut self) -> u64 {
        loop {
            let port = fastrand::u64(30000..32768);
            if self.node_ports.insert(port) {
                return port;
            }
        }
    }
}

/// Adds what the registry and admission add to `obj` (group `group`, kind `kind`) on create or,
/// with `old`, on update (where allocated values the new object omits are carried over).
pub fn admit(group: &str, kind: &str, obj: &mut Value, old: Option<&Value>, taken: &mut Taken) {
    let name = obj.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default().to_string();
    let uid = obj.pointer("/metadata/uid").and_then(Value::as_str).unwrap_or_default().to_string();
    let Some(root) = obj.as_object_mut() else { return };
    match (group, kind) {
        ("", "Service") => service(root, old, taken),
        ("", "PersistentVolumeClaim") => {
            let class_unset = root.get("spec").and_then(|s| s.get("storageClassName")).is_none_or(Value::is_null);
            let kept = old.and_then(|o| o.pointer("/spec/storageClassName")).cloned();
            if class_unset && let Some(spec) = map(root, "spec") {
                match (kept, &taken.default_storage_class) {
                    (Some(k), _) => {
                        spec.insert("storageClassName".into(), k);
                    }
                    (None, Some(d)) if old.is_none() => {
                        spec.insert("storageClassName".into(), json!(d));
                    }
                    _ => {}
                }
            }
            if let Some(v) = old.and_then(|o| o.pointer("/spec/volumeName")).cloned()
                && let Some(spec) = map(root, "spec")
            {
                spec.entry("volumeName").or_insert(v);
            }
            if old.is_none() {
                add_finalizer(root, "kubernetes.io/pvc-protection");
            }
        }
        ("", "Namespace") => {
            if let Some(labels) = map(root, "metadata").and_then(|m| map(m, "labels")) {
                labels.insert("kubernetes.io/metadata.name".into(), json!(name));
            }
            if let Some(spec) = map(root, "spec") {
                let finalizers = spec.entry("finalizers").or_insert_with(|| json!([]));
                if let Some(f) = finalizers.as_array_mut()
                    && !f.iter().any(|x| x == "kubernetes")
                {
                    f.push(json!("kubernetes"));
                }
            }
        }
        ("batch", "Job") => job(root, old, &name, &uid),
        _ => {}
    }
}

/// The map at `key`, created when absent or null.
fn map<'a>(m: &'a mut Map<String, Value>, key: &str) -> Option<&'a mut Map<String, Value>> {
    let slot = m.entry(key.to_string()).or_insert(Value::Null);
    if slot.is_null() {
        *slot = Value::Object(Map::new());
    }
    slot.as_object_mut()
}

fn add_finalizer(root: &mut Map<String, Value>, finalizer: &str) {
    if let Some(meta) = map(root, "metadata") {
        let list = meta.entry("finalizers").or_insert_with(|| json!([]));
        if let Some(f) = list.as_array_mut()
            && !f.iter().any(|x| x == finalizer)
        {
            f.push(json!(finalizer));
        }
    }
}

fn service(root: &mut Map<String, Value>, old: Option<&Value>, taken: &mut Taken) {
    let Some(spec) = map(root, "spec") else { return };
    let kind = spec.get("type").and_then(Value::as_str).unwrap_or("ClusterIP").to_string();
    if kind == "ExternalName" {
        for f in ["clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy"] {
            spec.remove(f);
        }
        return;
    }
    let old_spec = old.and_then(|o| o.get("spec"));
    // an update that omits what was allocated keeps it (the registry's patchAllocatedValues)
    for f in ["clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy", "healthCheckNodePort"] {
        if spec.get(f).is_none_or(|v| v.is_null() || v.as_str() == Some(""))
            && let Some(v) = old_spec.and_then(|s| s.get(f)).filter(|v| !v.is_null())
        {
            spec.insert(f.into(), v.clone());
        }
    }
    let ip = match spec.get("clusterIP").and_then(Value::as_str).filter(|s| !s.is_empty()) {
        Some(ip) => ip.to_string(),
        None => {
            let ip = taken.cluster_ip();
            spec.insert("clusterIP".into(), json!(ip));
            ip
        }
    };
    if spec.get("clusterIPs").and_then(Value::as_array).is_none_or(Vec::is_empty) {
        spec.insert("clusterIPs".into(), json!([ip]));
    }
    let selector = spec.get("selector").and_then(Value::as_object).is_some_and(|s| !s.is_empty());
    if spec.get("ipFamilyPolicy").is_none_or(Value::is_null) {
        let (policy, families) = if ip == "None" && !selector {
            ("RequireDualStack", json!(["IPv4", "IPv6"]))
        } else {
            ("SingleStack", json!(["IPv4"]))
        };
        spec.insert("ipFamilyPolicy".into(), json!(policy));
        if spec.get("ipFamilies").and_then(Value::as_array).is_none_or(Vec::is_empty) {
            spec.insert("ipFamilies".into(), families);
        }
    }
    let node_ports = kind == "NodePort"
        || (kind == "LoadBalancer"
            && spec.get("allocateLoadBalancerNodePorts").and_then(Value::as_bool) != Some(false));
    let old_ports: Vec<Value> =
        old_spec.and_then(|s| s.get("ports")).and_then(Value::as_array).cloned().unwrap_or_default();
    if node_ports && let Some(ports) = spec.get_mut("ports").and_then(Value::as_array_mut) {
        for p in ports.iter_mut().filter_map(Value::as_object_mut) {
            if p.get("nodePort").is_some_and(|v| !v.is_null()) {
                continue;
            }
            let same = old_ports.iter().find(|o| o.get("name") == p.get("name") && o.get("port") == p.get("port"));
            let port =
                same.and_then(|o| o.get("nodePort")).and_then(Value::as_u64).unwrap_or_else(|| taken.node_port());
            p.insert("nodePort".into(), json!(port));
        }
    }
    if kind == "LoadBalancer"
        && spec.get("externalTrafficPolicy").and_then(Value::as_str) == Some("Local")
        && spec.get("healthCheckNodePort").is_none_or(Value::is_null)
    {
        let port = taken.node_port();
        spec.insert("healthCheckNodePort".into(), json!(port));
    }
}

/// The labels the Job registry gives a Job's pods.
const JOB_LABELS: [&str; 4] =
    ["batch.kubernetes.io/controller-uid", "batch.kubernetes.io/job-name", "controller-uid", "job-name"];

fn job(root: &mut Map<String, Value>, old: Option<&Value>, name: &str, uid: &str) {
    let manual = root.get("spec").and_then(|s| s.get("manualSelector")).and_then(Value::as_bool) == Some(true);
    if manual {
        return;
    }
    // selector and template are immutable: an update keeps the generated ones
    let uid = old.and_then(|o| o.pointer("/metadata/uid")).and_then(Value::as_str).unwrap_or(uid).to_string();
    let Some(spec) = map(root, "spec") else { return };
    if spec.get("selector").is_none_or(Value::is_null) {
        spec.insert("selector".into(), json!({"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}));
    }
    let labels = map(spec, "template").and_then(|t| map(t, "metadata")).and_then(|m| map(m, "labels"));
    if let Some(labels) = labels {
        for (k, v) in JOB_LABELS.iter().zip([uid.as_str(), name, uid.as_str(), name]) {
            labels.entry(k.to_string()).or_insert_with(|| json!(v));
        }
    }
    // a Job without labels takes its pods' (defaulting, when the stored object is read back)
    let template_labels = root
        .get("spec")
        .and_then(|s| s.get("template"))
        .and_then(|t| t.get("metadata"))
        .and_then(|m| m.get("labels"))
        .cloned();
    if let (Some(labels), Some(meta)) = (template_labels, map(root, "metadata")) {
        let empty = meta.get("labels").and_then(Value::as_object).is_none_or(Map::is_empty);
        if empty {
            meta.insert("labels".into(), labels);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_service_gets_an_ip_families_and_node_ports_kept_on_update() {
        let mut taken = Taken::default();
        let mut svc = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"},
            "spec": {"type": "NodePort", "selector": {"a": "b"}, "ports": [{"name": "http", "port": 80}]}});
        admit("", "Service", &mut svc, None, &mut taken);
        let ip = svc["spec"]["clusterIP"].as_str().unwrap().to_string();
        assert!(ip.starts_with("10.96."), "{ip}");
        assert_eq!(svc["spec"]["clusterIPs"], json!([ip]));
        assert_eq!(svc["spec"]["ipFamilies"], json!(["IPv4"]));
        assert_eq!(svc["spec"]["ipFamilyPolicy"], "SingleStack");
        let port = svc["spec"]["ports"][0]["nodePort"].as_u64().unwrap();
        assert!((30000..32768).contains(&port));
        // an apply that omits them keeps them
        let mut again = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"},
            "spec": {"type": "NodePort", "selector": {"a": "b"}, "ports": [{"name": "http", "port": 80}]}});
        admit("", "Service", &mut again, Some(&svc), &mut taken);
        assert_eq!(again["spec"]["clusterIP"], json!(ip));
        assert_eq!(again["spec"]["ports"][0]["nodePort"], json!(port));
        // headless without selector asks for both families
        let mut headless =
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "h"}, "spec": {"clusterIP": "None"}});
        admit("", "Service", &mut headless, None, &mut taken);
        assert_eq!(headless["spec"]["ipFamilyPolicy"], "RequireDualStack");
        assert_eq!(headless["spec"]["clusterIPs"], json!(["None"]));
    }

    #[test]
    fn pvcs_namespaces_and_jobs() {
        let mut taken = Taken { default_storage_class: Some("gp3".into()), ..Taken::default() };
        let mut pvc =
            json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "c"}, "spec": {}});
        admit("", "PersistentVolumeClaim", &mut pvc, None, &mut taken);
        assert_eq!(pvc["spec"]["storageClassName"], "gp3");
        assert_eq!(pvc["metadata"]["finalizers"], json!(["kubernetes.io/pvc-protection"]));
        let mut explicit =
            json!({"kind": "PersistentVolumeClaim", "metadata": {"name": "c"}, "spec": {"storageClassName": ""}});
        admit("", "PersistentVolumeClaim", &mut explicit, None, &mut taken);
        assert_eq!(explicit["spec"]["storageClassName"], "");

        let mut ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}});
        admit("", "Namespace", &mut ns, None, &mut taken);
        assert_eq!(ns["metadata"]["labels"]["kubernetes.io/metadata.name"], "shop");
        assert_eq!(ns["spec"]["finalizers"], json!(["kubernetes"]));

        let mut job = json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "m", "uid": "u-1"},
            "spec": {"template": {"spec": {"containers": []}}}});
        admit("batch", "Job", &mut job, None, &mut taken);
        assert_eq!(job["spec"]["selector"], json!({"matchLabels": {"batch.kubernetes.io/controller-uid": "u-1"}}));
        assert_eq!(job["spec"]["template"]["metadata"]["labels"]["job-name"], "m");
        assert_eq!(job["metadata"]["labels"]["batch.kubernetes.io/job-name"], "m");
    }
}
