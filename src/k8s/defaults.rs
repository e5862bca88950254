//! What the Kubernetes API server fills in when a field is absent, with its value: the
//! `SetDefaults_*` functions and `+default` markers of the built-in API groups, the few
//! defaults the registry strategies add, as data plus small functions where a default depends
//! on another field (imagePullPolicy on the image's tag, a Service port's targetPort on its
//! port, a NetworkPolicy's policyTypes on its egress rules, a rolling update only for the
//! RollingUpdate strategy). Facts from Kubernetes 1.30-1.35 (pkg/apis/*/v1/defaults.go and
//! the API types' markers); docs/drift.md lists them.
//!
//! [`apply`] defaults an object the way the API server does before it stores it: the mock API
//! server stores objects through it, and drift compares a rendered object with defaults
//! applied against what a cluster runs, so a field git leaves out counts when its live value
//! differs from the default (a Deployment switched to Recreate by hand) and not when it is the
//! default (`periodSeconds: 10`).
//!
//! [`server_set`] names what the API server, its allocators and admission plugins set to
//! values of their own choosing (a Service's clusterIP, a PVC's volumeName, the finalizers
//! core controllers add): such fields count only when git sets them.

use serde_json::{Map, Value, json};

use super::image;

/// The newest Kubernetes minor version the table knows (1.35): the defaults [`apply`] uses when
/// the cluster's version is not known.
pub const NEWEST_MINOR: u32 = 35;

/// Applies the API server's defaults of the newest version the table knows to `obj` in place.
pub fn apply(obj: &mut Value) {
    apply_for(obj, NEWEST_MINOR);
}

/// Applies the defaults of Kubernetes 1.`minor` to `obj` in place (a few defaults come with
/// feature gates that turned on in a given release). Idempotent; values already set are kept,
/// and kinds without defaults are left alone.
pub fn apply_for(obj: &mut Value, minor: u32) {
    let (group, version) = group_version(obj);
    let kind = obj.get("kind").and_then(Value::as_str).unwrap_or_default().to_string();
    let Some(root) = obj.as_object_mut() else { return };
    match (group.as_str(), kind.as_str()) {
        ("", "Pod") => {
            if let Some(spec) = child(root, "spec") {
                pod_spec(spec);
                bare_pod(spec);
            }
        }
        ("", "PodTemplate") => template(root, "template"),
        ("", "ReplicationController") => {
            let labels = template_labels(root);
            if let Some(labels) = labels {
                if let Some(meta) = ensure(root, "metadata") {
                    default_nonempty(meta, "labels", labels.clone());
                }
                if let Some(spec) = child(root, "spec") {
                    default_nonempty(spec, "selector", labels);
                }
            }
            if let Some(spec) = child(root, "spec") {
                default(spec, "replicas", json!(1));
                template(spec, "template");
            }
        }
        ("", "Service") => service(root),
        ("", "Endpoints") => {
            for subset in items(root, "subsets") {
                for port in items(subset, "ports") {
                    default(port, "protocol", json!("TCP"));
                }
            }
        }
        ("", "Secret") => secret(root),
        ("", "PersistentVolumeClaim") => {
            if let Some(spec) = child(root, "spec") {
                pvc_spec(spec);
            }
        }
        ("", "PersistentVolume") => {
            if let Some(spec) = child(root, "spec") {
                default(spec, "persistentVolumeReclaimPolicy", json!("Retain"));
                default(spec, "volumeMode", json!("Filesystem"));
            }
        }
        ("apps", "Deployment") => deployment(root),
        ("apps", "StatefulSet") => stateful_set(root, minor),
        ("apps", "DaemonSet") => daemon_set(root),
        ("apps", "ReplicaSet") => {
            if let Some(spec) = child(root, "spec") {
                default(spec, "replicas", json!(1));
                template(spec, "template");
            }
        }
        ("batch", "Job") => {
            // a Job without labels of its own takes its pods' labels
            let labels = template_labels(root);
            if let (Some(labels), Some(meta)) = (labels, ensure(root, "metadata")) {
                default_nonempty(meta, "labels", labels);
            }
            if let Some(spec) = child(root, "spec") {
                job_spec(spec);
            }
        }
        ("batch", "CronJob") => cron_job(root),
        ("autoscaling", "HorizontalPodAutoscaler") => hpa(root, &version),
        ("networking.k8s.io", "NetworkPolicy") => network_policy(root),
        ("discovery.k8s.io", "EndpointSlice") => {
            for port in items(root, "ports") {
                default(port, "protocol", json!("TCP"));
                default(port, "name", json!(""));
            }
        }
        ("rbac.authorization.k8s.io", "RoleBinding" | "ClusterRoleBinding") => {
            if let Some(role) = child(root, "roleRef") {
                default_nonempty(role, "apiGroup", json!("rbac.authorization.k8s.io"));
            }
            // a ServiceAccount's group is "", which reads back as absent
            for subject in items(root, "subjects") {
                if matches!(subject.get("kind").and_then(Value::as_str), Some("User" | "Group")) {
                    default_nonempty(subject, "apiGroup", json!("rbac.authorization.k8s.io"));
                }
            }
        }
        ("storage.k8s.io", "StorageClass") => {
            default(root, "reclaimPolicy", json!("Delete"));
            default(root, "volumeBindingMode", json!("Immediate"));
        }
        ("networking.k8s.io", "IngressClass") => {
            if let Some(params) = child(root, "spec").and_then(|s| child(s, "parameters")) {
                default(params, "scope", json!("Cluster"));
            }
        }
        ("storage.k8s.io", "CSIDriver") => {
            if let Some(spec) = child(root, "spec") {
                default(spec, "attachRequired", json!(true));
                default(spec, "podInfoOnMount", json!(false));
                default(spec, "storageCapacity", json!(false));
                default(spec, "requiresRepublish", json!(false));
                default(spec, "fsGroupPolicy", json!("ReadWriteOnceWithFSType"));
                default_nonempty(spec, "volumeLifecycleModes", json!(["Persistent"]));
            }
        }
        ("scheduling.k8s.io", "PriorityClass") => default(root, "preemptionPolicy", json!("PreemptLowerPriority")),
        ("apiextensions.k8s.io", "CustomResourceDefinition") => crd(root),
        ("admissionregistration.k8s.io", "MutatingWebhookConfiguration" | "ValidatingWebhookConfiguration") => {
            let mutating = kind.starts_with("Mutating");
            for hook in items(root, "webhooks") {
                webhook(hook, mutating);
            }
        }
        _ => {}
    }
}

/// The API group and version of an object's apiVersion (`apps/v1` → (`apps`, `v1`), `v1` →
/// (``, `v1`)).
fn group_version(obj: &Value) -> (String, String) {
    let av = obj.get("apiVersion").and_then(Value::as_str).unwrap_or_default();
    match av.split_once('/') {
        Some((g, v)) => (g.to_string(), v.to_string()),
        None => (String::new(), av.to_string()),
    }
}

/// Sets `key` to `value` when it is absent or null.
fn default(m: &mut Map<String, Value>, key: &str, value: Value) {
    match m.get(key) {
        Some(v) if !v.is_null() => {}
        _ => {
            m.insert(key.to_string(), value);
        }
    }
}

/// The labels of a workload's pod template, when it has some.
fn template_labels(root: &Map<String, Value>) -> Option<Value> {
    let labels = root.get("spec")?.get("template")?.get("metadata")?.get("labels")?;
    labels.as_object().is_some_and(|m| !m.is_empty()).then(|| labels.clone())
}

/// Sets `key` to `value` when it is absent, null, or an empty string, map or list.
fn default_nonempty(m: &mut Map<String, Value>, key: &str, value: Value) {
    let empty = match m.get(key) {
        None | Some(Value::Null) => true,
        Some(Value::String(s)) => s.is_empty(),
        Some(Value::Object(o)) => o.is_empty(),
        Some(Value::Array(a)) => a.is_empty(),
        Some(_) => false,
    };
    if empty {
        m.insert(key.to_string(), value);
    }
}

/// The map at `key`, if there is one.
fn child<'a>(m: &'a mut Map<String, Value>, key: &str) -> Option<&'a mut Map<String, Value>> {
    m.get_mut(key).and_then(Value::as_object_mut)
}

/// The map at `key`, created empty when absent or null (for structs the API server always
/// has, such as a workload's `strategy`). None only when `key` holds something else than a map.
fn ensure<'a>(m: &'a mut Map<String, Value>, key: &str) -> Option<&'a mut Map<String, Value>> {
    let slot = m.entry(key.to_string()).or_insert(Value::Null);
    if slot.is_null() {
        *slot = Value::Object(Map::new());
    }
    slot.as_object_mut()
}

/// The map items of the list at `key`.
fn items<'a>(m: &'a mut Map<String, Value>, key: &str) -> impl Iterator<Item = &'a mut Map<String, Value>> {
    m.get_mut(key).and_then(Value::as_array_mut).into_iter().flatten().filter_map(Value::as_object_mut)
}

// ---------------------------------------------------------------------------------------------
// Pods
// ---------------------------------------------------------------------------------------------

/// A pod template (`template.spec` under `key`).
fn template(m: &mut Map<String, Value>, key: &str) {
    if let Some(spec) = child(m, key).and_then(|t| child(t, "spec")) {
        pod_spec(spec);
    }
}

/// SetDefaults_PodSpec and what it reaches: containers, volumes. Applies to pod templates
/// as well as to Pods.
fn pod_spec(spec: &mut Map<String, Value>) {
    default(spec, "dnsPolicy", json!("ClusterFirst"));
    default(spec, "restartPolicy", json!("Always"));
    default(spec, "terminationGracePeriodSeconds", json!(30));
    default(spec, "schedulerName", json!("default-scheduler"));
    default(spec, "securityContext", json!({}));
    // The deprecated serviceAccount mirrors serviceAccountName (API version conversion).
    match (spec.get("serviceAccountName").cloned(), spec.get("serviceAccount").cloned()) {
        (Some(Value::String(n)), _) if !n.is_empty() => default(spec, "serviceAccount", json!(n)),
        (_, Some(Value::String(n))) if !n.is_empty() => default(spec, "serviceAccountName", json!(n)),
        _ => {}
    }
    for list in ["initContainers", "containers", "ephemeralContainers"] {
        for c in items(spec, list) {
            container(c);
        }
    }
    for v in items(spec, "volumes") {
        volume(v);
    }
}

/// What only a Pod gets, not a pod template: service links, requests from limits, host ports
/// on the host network.
fn bare_pod(spec: &mut Map<String, Value>) {
    default(spec, "enableServiceLinks", json!(true));
    let host_network = spec.get("hostNetwork").and_then(Value::as_bool) == Some(true);
    for list in ["initContainers", "containers"] {
        for c in items(spec, list) {
            if let Some(res) = child(c, "resources")
                && let Some(limits) = res.get("limits").and_then(Value::as_object).cloned()
                && let Some(requests) = ensure(res, "requests")
            {
                for (k, v) in limits {
                    default(requests, &k, v);
                }
            }
            if host_network {
                for p in items(c, "ports") {
                    if let Some(port) = p.get("containerPort").cloned() {
                        default(p, "hostPort", port);
                    }
                }
            }
        }
    }
}

/// SetDefaults_Container and the structs inside it: ports, probes, lifecycle handlers, env.
fn container(c: &mut Map<String, Value>) {
    default(c, "terminationMessagePath", json!("/dev/termination-log"));
    default(c, "terminationMessagePolicy", json!("File"));
    if let Some(img) = c.get("image").and_then(Value::as_str) {
        let policy = image::default_pull_policy(img);
        default(c, "imagePullPolicy", json!(policy));
    }
    for p in items(c, "ports") {
        default(p, "protocol", json!("TCP"));
    }
    for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
        if let Some(p) = child(c, probe) {
            default(p, "timeoutSeconds", json!(1));
            default(p, "periodSeconds", json!(10));
            default(p, "successThreshold", json!(1));
            default(p, "failureThreshold", json!(3));
            handler(p);
        }
    }
    if let Some(lc) = child(c, "lifecycle") {
        for hook in ["postStart", "preStop"] {
            if let Some(h) = child(lc, hook) {
                handler(h);
            }
        }
    }
    for e in items(c, "env") {
        if let Some(from) = child(e, "valueFrom") {
            field_ref(from);
        }
    }
}

/// The actions of a probe or lifecycle hook: an HTTP GET's path and scheme, a gRPC check's
/// service.
fn handler(h: &mut Map<String, Value>) {
    if let Some(get) = child(h, "httpGet") {
        default(get, "path", json!("/"));
        default(get, "scheme", json!("HTTP"));
    }
    if let Some(grpc) = child(h, "grpc") {
        default(grpc, "service", json!(""));
    }
}

/// An ObjectFieldSelector's apiVersion, where `m` may hold a `fieldRef`; a
/// ResourceFieldSelector's divisor, a quantity that reads back as `"0"` when unset.
fn field_ref(m: &mut Map<String, Value>) {
    if let Some(f) = child(m, "fieldRef") {
        default(f, "apiVersion", json!("v1"));
    }
    if let Some(r) = child(m, "resourceFieldRef") {
        default(r, "divisor", json!("0"));
    }
}

/// SetDefaults_Volume and the volume sources' own defaults.
fn volume(v: &mut Map<String, Value>) {
    const SOURCES: &[&str] = &[
        "hostPath",
        "emptyDir",
        "gcePersistentDisk",
        "awsElasticBlockStore",
        "gitRepo",
        "secret",
        "nfs",
        "iscsi",
        "glusterfs",
        "persistentVolumeClaim",
        "rbd",
        "flexVolume",
        "cinder",
        "cephfs",
        "flocker",
        "downwardAPI",
        "fc",
        "azureFile",
        "configMap",
        "vsphereVolume",
        "quobyte",
        "azureDisk",
        "photonPersistentDisk",
        "projected",
        "portworxVolume",
        "scaleIO",
        "storageos",
        "csi",
        "ephemeral",
        "image",
    ];
    if !SOURCES.iter().any(|s| v.get(*s).is_some_and(|x| !x.is_null())) {
        v.insert("emptyDir".into(), json!({}));
    }
    for source in ["configMap", "secret", "downwardAPI", "projected"] {
        if let Some(s) = child(v, source) {
            default(s, "defaultMode", json!(420));
        }
    }
    if let Some(s) = child(v, "hostPath") {
        default(s, "type", json!(""));
    }
    if let Some(d) = child(v, "downwardAPI") {
        for item in items(d, "items") {
            field_ref(item);
        }
    }
    if let Some(p) = child(v, "projected") {
        for source in items(p, "sources") {
            if let Some(t) = child(source, "serviceAccountToken") {
                default(t, "expirationSeconds", json!(3600));
            }
            if let Some(d) = child(source, "downwardAPI") {
                for item in items(d, "items") {
                    field_ref(item);
                }
            }
        }
    }
    if let Some(spec) =
        child(v, "ephemeral").and_then(|e| child(e, "volumeClaimTemplate")).and_then(|t| child(t, "spec"))
    {
        pvc_spec(spec);
    }
}

fn pvc_spec(spec: &mut Map<String, Value>) {
    default(spec, "volumeMode", json!("Filesystem"));
}

// ---------------------------------------------------------------------------------------------
// Workloads
// ---------------------------------------------------------------------------------------------

fn deployment(root: &mut Map<String, Value>) {
    let Some(spec) = child(root, "spec") else { return };
    default(spec, "replicas", json!(1));
    if let Some(strategy) = ensure(spec, "strategy") {
        default(strategy, "type", json!("RollingUpdate"));
        if strategy.get("type").and_then(Value::as_str) == Some("RollingUpdate")
            && let Some(ru) = ensure(strategy, "rollingUpdate")
        {
            default(ru, "maxUnavailable", json!("25%"));
            default(ru, "maxSurge", json!("25%"));
        }
    }
    default(spec, "revisionHistoryLimit", json!(10));
    default(spec, "progressDeadlineSeconds", json!(600));
    template(spec, "template");
}

fn stateful_set(root: &mut Map<String, Value>, minor: u32) {
    let Some(spec) = child(root, "spec") else { return };
    default(spec, "replicas", json!(1));
    default(spec, "podManagementPolicy", json!("OrderedReady"));
    if let Some(strategy) = ensure(spec, "updateStrategy") {
        // an empty rolling update is created only with the defaulted type; one that exists
        // gets its partition (and, from 1.35, maxUnavailable: MaxUnavailableStatefulSet)
        if strategy.get("type").is_none_or(|t| t.is_null() || t.as_str() == Some("")) {
            strategy.insert("type".into(), json!("RollingUpdate"));
            ensure(strategy, "rollingUpdate");
        }
        if strategy.get("type").and_then(Value::as_str) == Some("RollingUpdate")
            && let Some(ru) = child(strategy, "rollingUpdate")
        {
            default(ru, "partition", json!(0));
            if minor >= 35 {
                default(ru, "maxUnavailable", json!(1));
            }
        }
    }
    default(spec, "revisionHistoryLimit", json!(10));
    if let Some(retention) = ensure(spec, "persistentVolumeClaimRetentionPolicy") {
        default(retention, "whenDeleted", json!("Retain"));
        default(retention, "whenScaled", json!("Retain"));
    }
    for claim in items(spec, "volumeClaimTemplates") {
        // Each claim template is stored as a whole PersistentVolumeClaim: with its type and an
        // initial status.
        default(claim, "apiVersion", json!("v1"));
        default(claim, "kind", json!("PersistentVolumeClaim"));
        if let Some(s) = child(claim, "spec") {
            pvc_spec(s);
        }
        if let Some(status) = ensure(claim, "status") {
            default(status, "phase", json!("Pending"));
        }
    }
    template(spec, "template");
}

fn daemon_set(root: &mut Map<String, Value>) {
    let Some(spec) = child(root, "spec") else { return };
    if let Some(strategy) = ensure(spec, "updateStrategy") {
        default(strategy, "type", json!("RollingUpdate"));
        if strategy.get("type").and_then(Value::as_str) == Some("RollingUpdate")
            && let Some(ru) = ensure(strategy, "rollingUpdate")
        {
            default(ru, "maxUnavailable", json!(1));
            default(ru, "maxSurge", json!(0));
        }
    }
    default(spec, "revisionHistoryLimit", json!(10));
    template(spec, "template");
}

/// SetDefaults_Job: one completion at a time unless told otherwise, six retries, pods
/// replaced once terminated (or failed, with a pod failure policy).
fn job_spec(spec: &mut Map<String, Value>) {
    let unset = |m: &Map<String, Value>, k: &str| m.get(k).is_none_or(Value::is_null);
    if unset(spec, "completions") && unset(spec, "parallelism") {
        spec.insert("completions".into(), json!(1));
    }
    default(spec, "parallelism", json!(1));
    if unset(spec, "backoffLimit") {
        let limit = if spec.get("backoffLimitPerIndex").is_some_and(|v| !v.is_null()) { i32::MAX as i64 } else { 6 };
        spec.insert("backoffLimit".into(), json!(limit));
    }
    default(spec, "completionMode", json!("NonIndexed"));
    default(spec, "suspend", json!(false));
    default(spec, "manualSelector", json!(false));
    if let Some(policy) = child(spec, "podFailurePolicy") {
        for rule in items(policy, "rules") {
            for condition in items(rule, "onPodConditions") {
                default_nonempty(condition, "status", json!("True"));
            }
        }
    }
    let replacement =
        if spec.get("podFailurePolicy").is_some_and(|v| !v.is_null()) { "Failed" } else { "TerminatingOrFailed" };
    default(spec, "podReplacementPolicy", json!(replacement));
    template(spec, "template");
}

fn cron_job(root: &mut Map<String, Value>) {
    let Some(spec) = child(root, "spec") else { return };
    default(spec, "concurrencyPolicy", json!("Allow"));
    default(spec, "suspend", json!(false));
    default(spec, "successfulJobsHistoryLimit", json!(3));
    default(spec, "failedJobsHistoryLimit", json!(1));
    // The job template gets the pod template's defaults only; SetDefaults_Job runs when the
    // CronJob controller creates a Job.
    if let Some(js) = child(spec, "jobTemplate").and_then(|t| child(t, "spec")) {
        template(js, "template");
    }
}

fn hpa(root: &mut Map<String, Value>, version: &str) {
    let Some(spec) = child(root, "spec") else { return };
    default(spec, "minReplicas", json!(1));
    if version == "v1" {
        return;
    }
    if spec.get("metrics").and_then(Value::as_array).is_none_or(Vec::is_empty) {
        spec.insert(
            "metrics".into(),
            json!([{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}}]),
        );
    }
    // The scaling rules are filled in only when a behavior is given.
    if let Some(behavior) = child(spec, "behavior") {
        if let Some(up) = child(behavior, "scaleUp") {
            default(up, "stabilizationWindowSeconds", json!(0));
            default(up, "selectPolicy", json!("Max"));
            default(
                up,
                "policies",
                json!([{"type": "Pods", "value": 4, "periodSeconds": 15}, {"type": "Percent", "value": 100, "periodSeconds": 15}]),
            );
        } else {
            behavior.insert(
                "scaleUp".into(),
                json!({"stabilizationWindowSeconds": 0, "selectPolicy": "Max", "policies": [{"type": "Pods", "value": 4, "periodSeconds": 15}, {"type": "Percent", "value": 100, "periodSeconds": 15}]}),
            );
        }
        if let Some(down) = ensure(behavior, "scaleDown") {
            default(down, "selectPolicy", json!("Max"));
            default(down, "policies", json!([{"type": "Percent", "value": 100, "periodSeconds": 15}]));
        }
    }
}

/// Secret: type Opaque; `stringData` is written into `data` (base64) on the way in and never
/// stored, so the live object holds `data` only.
fn secret(root: &mut Map<String, Value>) {
    default_nonempty(root, "type", json!("Opaque"));
    let Some(Value::Object(plain)) = root.remove("stringData") else { return };
    if let Some(data) = ensure(root, "data") {
        use base64::Engine as _;
        for (k, v) in plain {
            let text = match v {
                Value::String(s) => s,
                Value::Null => String::new(),
                other => other.to_string(),
            };
            data.insert(k, json!(base64::engine::general_purpose::STANDARD.encode(text)));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Services and networking
// ---------------------------------------------------------------------------------------------

fn service(root: &mut Map<String, Value>) {
    let Some(spec) = child(root, "spec") else { return };
    default(spec, "type", json!("ClusterIP"));
    let kind = spec.get("type").and_then(Value::as_str).unwrap_or("ClusterIP").to_string();
    default_nonempty(spec, "sessionAffinity", json!("None"));
    if spec.get("sessionAffinity").and_then(Value::as_str) == Some("None") {
        spec.remove("sessionAffinityConfig");
    }
    if spec.get("sessionAffinity").and_then(Value::as_str) == Some("ClientIP")
        && let Some(client) = ensure(spec, "sessionAffinityConfig").and_then(|c| ensure(c, "clientIP"))
    {
        default(client, "timeoutSeconds", json!(10800));
    }
    for p in items(spec, "ports") {
        default(p, "protocol", json!("TCP"));
        let target_unset = match p.get("targetPort") {
            None | Some(Value::Null) => true,
            Some(Value::Number(n)) => n.as_i64() == Some(0),
            Some(Value::String(s)) => s.is_empty(),
            _ => false,
        };
        if target_unset && let Some(port) = p.get("port").cloned() {
            p.insert("targetPort".into(), port);
        }
    }
    let external_ips = spec.get("externalIPs").and_then(Value::as_array).is_some_and(|a| !a.is_empty());
    if kind == "NodePort" || kind == "LoadBalancer" || (kind == "ClusterIP" && external_ips) {
        default_nonempty(spec, "externalTrafficPolicy", json!("Cluster"));
    }
    if kind != "ExternalName" {
        default(spec, "internalTrafficPolicy", json!("Cluster"));
    }
    if kind == "LoadBalancer" {
        default(spec, "allocateLoadBalancerNodePorts", json!(true));
    }
}

fn network_policy(root: &mut Map<String, Value>) {
    let Some(spec) = child(root, "spec") else { return };
    for rules in ["ingress", "egress"] {
        for rule in items(spec, rules) {
            for p in items(rule, "ports") {
                default(p, "protocol", json!("TCP"));
            }
        }
    }
    if spec.get("policyTypes").and_then(Value::as_array).is_none_or(Vec::is_empty) {
        let mut types = vec![json!("Ingress")];
        if spec.get("egress").and_then(Value::as_array).is_some_and(|e| !e.is_empty()) {
            types.push(json!("Egress"));
        }
        spec.insert("policyTypes".into(), Value::Array(types));
    }
}

// ---------------------------------------------------------------------------------------------
// API extensions
// ---------------------------------------------------------------------------------------------

fn crd(root: &mut Map<String, Value>) {
    let Some(spec) = child(root, "spec") else { return };
    if let Some(names) = child(spec, "names")
        && let Some(kind) = names.get("kind").and_then(Value::as_str).map(str::to_string)
    {
        default(names, "singular", json!(kind.to_lowercase()));
        default(names, "listKind", json!(format!("{kind}List")));
    }
    let Some(conversion) = ensure(spec, "conversion") else { return };
    default(conversion, "strategy", json!("None"));
    if let Some(svc) =
        child(conversion, "webhook").and_then(|w| child(w, "clientConfig")).and_then(|c| child(c, "service"))
    {
        default(svc, "port", json!(443));
    }
}

fn webhook(hook: &mut Map<String, Value>, mutating: bool) {
    default(hook, "failurePolicy", json!("Fail"));
    default(hook, "matchPolicy", json!("Equivalent"));
    default(hook, "namespaceSelector", json!({}));
    default(hook, "objectSelector", json!({}));
    default(hook, "timeoutSeconds", json!(10));
    if mutating {
        default(hook, "reinvocationPolicy", json!("Never"));
    }
    for rule in items(hook, "rules") {
        default(rule, "scope", json!("*"));
    }
    if let Some(svc) = child(hook, "clientConfig").and_then(|c| child(c, "service")) {
        default(svc, "port", json!(443));
    }
}

// ---------------------------------------------------------------------------------------------
// Fields the server sets to values of its own choosing
// ---------------------------------------------------------------------------------------------

/// Finalizers the API server and core controllers add to objects on their own.
const SERVER_FINALIZERS: &[&str] = &[
    "kubernetes.io/pvc-protection",
    "kubernetes.io/pv-protection",
    "service.kubernetes.io/load-balancer-cleanup",
    "foregroundDeletion",
    "orphan",
    "external-provisioner.volume.kubernetes.io/finalizer",
];

/// Annotations and labels controllers and admission write on objects of a GitOps repo.
const SERVER_ANNOTATIONS: &[&str] = &[
    "pv.kubernetes.io/bind-completed",
    "pv.kubernetes.io/bound-by-controller",
    "pv.kubernetes.io/provisioned-by",
    "volume.beta.kubernetes.io/storage-provisioner",
    "volume.kubernetes.io/storage-provisioner",
    "volume.kubernetes.io/selected-node",
    "endpoints.kubernetes.io/last-change-trigger-time",
    "control-plane.alpha.kubernetes.io/leader",
    "deprecated.daemonset.template.generation",
];

/// Whether the field at `path` (field names from the object root, list items left out) with
/// the live value `value` is one the server sets itself: it counts only when git sets it.
/// `desired` is the object as git renders it, for fields that are the server's only under a
/// condition (a ClusterRole's rules when it aggregates, a Job's selector unless manual).
pub fn server_set(desired: &Value, path: &[&str], value: Option<&Value>) -> bool {
    let kind = desired.get("kind").and_then(Value::as_str).unwrap_or_default();
    match path {
        ["metadata", "finalizers"] => value.and_then(Value::as_str).is_some_and(|f| SERVER_FINALIZERS.contains(&f)),
        ["metadata", "annotations", key] => SERVER_ANNOTATIONS.contains(key),
        ["metadata", "labels", "kubernetes.io/metadata.name"] => kind == "Namespace",
        ["spec", "finalizers"] => kind == "Namespace",
        ["spec", "clusterIP" | "clusterIPs" | "ipFamilies" | "ipFamilyPolicy" | "healthCheckNodePort"] => {
            kind == "Service"
        }
        ["spec", "ports", "nodePort"] => kind == "Service",
        ["spec", "volumeName" | "storageClassName"] => kind == "PersistentVolumeClaim",
        ["spec", "claimRef"] => kind == "PersistentVolume",
        ["spec", "selector", ..] | ["spec", "template", "metadata", "labels", ..] | ["metadata", "labels", ..]
            if kind == "Job" =>
        {
            let manual = desired.pointer("/spec/manualSelector").and_then(Value::as_bool) == Some(true);
            let generated = match path {
                ["spec", "selector", ..] => true,
                [.., label] => JOB_LABELS.contains(label),
                _ => false,
            };
            !manual && generated
        }
        ["rules"] => kind == "ClusterRole" && desired.get("aggregationRule").is_some_and(|a| !a.is_null()),
        ["secrets"] => {
            // the token controller's `<name>-token-xxxxx` Secret (clusters before 1.24)
            let name = desired.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default();
            kind == "ServiceAccount"
                && value
                    .and_then(|v| v.get("name"))
                    .and_then(Value::as_str)
                    .is_some_and(|n| n.starts_with(&format!("{name}-token-")))
        }
        ["spec", "ingressClassName"] => {
            // the DefaultIngressClass admission plugin names the default class when git names none
            let legacy = desired.pointer("/metadata/annotations/kubernetes.io~1ingress.class").is_some();
            kind == "Ingress" && !legacy
        }
        [.., "clientConfig", "caBundle"] => {
            // injected by cert-manager's CA injector when the object asks for it
            let ann = desired.pointer("/metadata/annotations").and_then(Value::as_object);
            ann.is_some_and(|a| a.keys().any(|k| k.starts_with("cert-manager.io/inject-ca-from")))
        }
        _ => false,
    }
}

/// The labels the Job controller's registry strategy puts on a Job's pods and selector.
const JOB_LABELS: &[&str] =
    &["controller-uid", "batch.kubernetes.io/controller-uid", "job-name", "batch.kubernetes.io/job-name"];

#[cfg(test)]
mod tests {
    use super::*;

    fn defaulted(obj: Value) -> Value {
        let mut o = obj;
        apply(&mut o);
        // idempotent
        let mut again = o.clone();
        apply(&mut again);
        assert_eq!(again, o, "defaulting twice changes nothing");
        o
    }

    fn deployment(pod: Value) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
               "spec": {"selector": {"matchLabels": {"app": "web"}},
                        "template": {"metadata": {"labels": {"app": "web"}}, "spec": pod}}})
    }

    fn pod_of(d: &Value) -> &Value {
        &d["spec"]["template"]["spec"]
    }

    fn web() -> Value {
        deployment(json!({"containers": [{"name": "web", "image": "nginx:1.27"}]}))
    }

    // --- PodSpec ---

    #[test]
    fn pod_spec_dns_policy() {
        assert_eq!(pod_of(&defaulted(web()))["dnsPolicy"], "ClusterFirst");
    }

    #[test]
    fn pod_spec_restart_policy() {
        assert_eq!(pod_of(&defaulted(web()))["restartPolicy"], "Always");
    }

    #[test]
    fn pod_spec_termination_grace_period() {
        assert_eq!(pod_of(&defaulted(web()))["terminationGracePeriodSeconds"], 30);
    }

    #[test]
    fn pod_spec_scheduler_name() {
        assert_eq!(pod_of(&defaulted(web()))["schedulerName"], "default-scheduler");
    }

    #[test]
    fn pod_spec_security_context() {
        assert_eq!(pod_of(&defaulted(web()))["securityContext"], json!({}));
        let mut d = web();
        d["spec"]["template"]["spec"]["securityContext"] = json!({"runAsNonRoot": true});
        assert_eq!(pod_of(&defaulted(d))["securityContext"], json!({"runAsNonRoot": true}));
    }

    #[test]
    fn pod_spec_service_account_mirrors_service_account_name() {
        let mut d = web();
        d["spec"]["template"]["spec"]["serviceAccountName"] = json!("grafana");
        assert_eq!(pod_of(&defaulted(d))["serviceAccount"], "grafana");
        let mut d = web();
        d["spec"]["template"]["spec"]["serviceAccount"] = json!("old");
        assert_eq!(pod_of(&defaulted(d))["serviceAccountName"], "old");
        assert!(pod_of(&defaulted(web())).get("serviceAccount").is_none());
    }

    #[test]
    fn templates_get_no_service_links_and_no_requests_from_limits() {
        let mut d = web();
        d["spec"]["template"]["spec"]["containers"][0]["resources"] = json!({"limits": {"cpu": "1"}});
        let d = defaulted(d);
        assert!(pod_of(&d).get("enableServiceLinks").is_none());
        assert!(pod_of(&d)["containers"][0]["resources"].get("requests").is_none());
    }

    #[test]
    fn bare_pods_get_service_links_requests_from_limits_and_host_ports() {
        let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {"hostNetwork": true,
            "containers": [{"name": "c", "image": "x:1", "resources": {"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "500m"}},
                            "ports": [{"containerPort": 8080}]}]}});
        let p = defaulted(pod);
        assert_eq!(p["spec"]["enableServiceLinks"], true);
        assert_eq!(p["spec"]["containers"][0]["resources"]["requests"], json!({"cpu": "500m", "memory": "1Gi"}));
        assert_eq!(p["spec"]["containers"][0]["ports"][0]["hostPort"], 8080);
    }

    // --- containers ---

    fn container_of(d: &Value) -> &Value {
        &pod_of(d)["containers"][0]
    }

    #[test]
    fn container_termination_message() {
        let d = defaulted(web());
        assert_eq!(container_of(&d)["terminationMessagePath"], "/dev/termination-log");
        assert_eq!(container_of(&d)["terminationMessagePolicy"], "File");
    }

    #[test]
    fn container_image_pull_policy_depends_on_the_tag() {
        let with = |image: &str| {
            let d = defaulted(deployment(json!({"containers": [{"name": "c", "image": image}]})));
            container_of(&d)["imagePullPolicy"].clone()
        };
        assert_eq!(with("nginx:1.27"), "IfNotPresent");
        assert_eq!(with("nginx:latest"), "Always");
        assert_eq!(with("nginx"), "Always");
        assert_eq!(with("nginx@sha256:0123"), "IfNotPresent");
        let mut d = web();
        d["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"] = json!("Never");
        assert_eq!(container_of(&defaulted(d))["imagePullPolicy"], "Never");
    }

    #[test]
    fn init_and_ephemeral_containers_too() {
        let d = defaulted(deployment(json!({"initContainers": [{"name": "i", "image": "busybox"}],
            "containers": [{"name": "c", "image": "x:1"}]})));
        assert_eq!(pod_of(&d)["initContainers"][0]["imagePullPolicy"], "Always");
        assert_eq!(pod_of(&d)["initContainers"][0]["terminationMessagePolicy"], "File");
    }

    #[test]
    fn container_port_protocol() {
        let d = defaulted(deployment(
            json!({"containers": [{"name": "c", "image": "x:1", "ports": [{"containerPort": 80}, {"containerPort": 53, "protocol": "UDP"}]}]}),
        ));
        assert_eq!(
            container_of(&d)["ports"],
            json!([{"containerPort": 80, "protocol": "TCP"}, {"containerPort": 53, "protocol": "UDP"}])
        );
    }

    #[test]
    fn probe_timings_and_http_get() {
        let d = defaulted(deployment(json!({"containers": [{"name": "c", "image": "x:1",
            "readinessProbe": {"httpGet": {"port": 8080}},
            "livenessProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 20},
            "startupProbe": {"grpc": {"port": 9090}}}]})));
        let c = container_of(&d);
        assert_eq!(
            c["readinessProbe"],
            json!({"httpGet": {"port": 8080, "path": "/", "scheme": "HTTP"}, "timeoutSeconds": 1, "periodSeconds": 10, "successThreshold": 1, "failureThreshold": 3})
        );
        assert_eq!(c["livenessProbe"]["periodSeconds"], 20);
        assert_eq!(c["livenessProbe"]["failureThreshold"], 3);
        assert_eq!(c["startupProbe"]["grpc"], json!({"port": 9090, "service": ""}));
    }

    #[test]
    fn lifecycle_http_get() {
        let d = defaulted(deployment(json!({"containers": [{"name": "c", "image": "x:1",
            "lifecycle": {"preStop": {"httpGet": {"port": 80, "path": "/drain"}}, "postStart": {"exec": {"command": ["true"]}}}}]})));
        assert_eq!(
            container_of(&d)["lifecycle"]["preStop"]["httpGet"],
            json!({"port": 80, "path": "/drain", "scheme": "HTTP"})
        );
        assert_eq!(container_of(&d)["lifecycle"]["postStart"], json!({"exec": {"command": ["true"]}}));
    }

    #[test]
    fn env_field_ref_api_version() {
        let d = defaulted(deployment(json!({"containers": [{"name": "c", "image": "x:1", "env": [
            {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "A", "value": "1"}]}]})));
        assert_eq!(container_of(&d)["env"][0]["valueFrom"]["fieldRef"]["apiVersion"], "v1");
        assert_eq!(container_of(&d)["env"][1], json!({"name": "A", "value": "1"}));
    }

    // --- volumes ---

    fn volumes(vs: Value) -> Value {
        let d = defaulted(deployment(json!({"containers": [{"name": "c", "image": "x:1"}], "volumes": vs})));
        pod_of(&d)["volumes"].clone()
    }

    #[test]
    fn volume_default_modes() {
        let v = volumes(json!([
            {"name": "a", "configMap": {"name": "a"}},
            {"name": "b", "secret": {"secretName": "b", "defaultMode": 256}},
            {"name": "c", "downwardAPI": {"items": [{"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}}]}},
            {"name": "d", "projected": {"sources": [{"serviceAccountToken": {"path": "token"}}]}}
        ]));
        assert_eq!(v[0]["configMap"]["defaultMode"], 420);
        assert_eq!(v[1]["secret"]["defaultMode"], 256);
        assert_eq!(v[2]["downwardAPI"]["defaultMode"], 420);
        assert_eq!(v[2]["downwardAPI"]["items"][0]["fieldRef"]["apiVersion"], "v1");
        assert_eq!(v[3]["projected"]["defaultMode"], 420);
        assert_eq!(v[3]["projected"]["sources"][0]["serviceAccountToken"]["expirationSeconds"], 3600);
    }

    #[test]
    fn volume_without_a_source_is_an_empty_dir() {
        let v = volumes(json!([{"name": "scratch"}, {"name": "pvc", "persistentVolumeClaim": {"claimName": "data"}}]));
        assert_eq!(v[0], json!({"name": "scratch", "emptyDir": {}}));
        assert_eq!(v[1], json!({"name": "pvc", "persistentVolumeClaim": {"claimName": "data"}}));
    }

    #[test]
    fn volume_host_path_type() {
        let v = volumes(json!([{"name": "h", "hostPath": {"path": "/var/log"}}]));
        assert_eq!(v[0]["hostPath"]["type"], "");
    }

    #[test]
    fn volume_ephemeral_claim_mode() {
        let v = volumes(
            json!([{"name": "e", "ephemeral": {"volumeClaimTemplate": {"spec": {"accessModes": ["ReadWriteOnce"]}}}}]),
        );
        assert_eq!(v[0]["ephemeral"]["volumeClaimTemplate"]["spec"]["volumeMode"], "Filesystem");
    }

    // --- workloads ---

    #[test]
    fn deployment_defaults() {
        let d = defaulted(web());
        assert_eq!(d["spec"]["replicas"], 1);
        assert_eq!(d["spec"]["revisionHistoryLimit"], 10);
        assert_eq!(d["spec"]["progressDeadlineSeconds"], 600);
        assert_eq!(
            d["spec"]["strategy"],
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}})
        );
    }

    #[test]
    fn deployment_rolling_update_only_for_that_strategy() {
        let mut d = web();
        d["spec"]["strategy"] = json!({"type": "Recreate"});
        assert_eq!(defaulted(d)["spec"]["strategy"], json!({"type": "Recreate"}));
        let mut d = web();
        d["spec"]["strategy"] = json!({"rollingUpdate": {"maxSurge": 1}});
        assert_eq!(
            defaulted(d)["spec"]["strategy"],
            json!({"rollingUpdate": {"maxSurge": 1, "maxUnavailable": "25%"}, "type": "RollingUpdate"})
        );
    }

    fn sts(spec: Value) -> Value {
        let mut s = json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "db"}, "spec": spec});
        s["spec"]["template"] = json!({"spec": {"containers": [{"name": "db", "image": "postgres:16"}]}});
        s
    }

    #[test]
    fn stateful_set_defaults() {
        let s = defaulted(sts(json!({"serviceName": "db"})));
        assert_eq!(s["spec"]["replicas"], 1);
        assert_eq!(s["spec"]["podManagementPolicy"], "OrderedReady");
        assert_eq!(
            s["spec"]["updateStrategy"],
            json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 0, "maxUnavailable": 1}})
        );
        assert_eq!(s["spec"]["revisionHistoryLimit"], 10);
        assert_eq!(
            s["spec"]["persistentVolumeClaimRetentionPolicy"],
            json!({"whenDeleted": "Retain", "whenScaled": "Retain"})
        );
        let s = defaulted(sts(json!({"updateStrategy": {"type": "OnDelete"}})));
        assert_eq!(s["spec"]["updateStrategy"], json!({"type": "OnDelete"}));
    }

    #[test]
    fn stateful_set_rolling_update_only_when_the_type_was_defaulted_or_the_block_given() {
        // an explicit type without a block keeps no block
        let s = defaulted(sts(json!({"updateStrategy": {"type": "RollingUpdate"}})));
        assert_eq!(s["spec"]["updateStrategy"], json!({"type": "RollingUpdate"}));
        let s = defaulted(sts(json!({"updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 2}}})));
        assert_eq!(s["spec"]["updateStrategy"]["rollingUpdate"], json!({"partition": 2, "maxUnavailable": 1}));
        // maxUnavailable from 1.35 on (MaxUnavailableStatefulSet beta)
        let mut s = sts(json!({}));
        apply_for(&mut s, 34);
        assert_eq!(s["spec"]["updateStrategy"], json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 0}}));
    }

    #[test]
    fn stateful_set_claim_templates() {
        let s = defaulted(sts(json!({"volumeClaimTemplates": [{"metadata": {"name": "data"},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}]})));
        let claim = &s["spec"]["volumeClaimTemplates"][0];
        assert_eq!(claim["apiVersion"], "v1");
        assert_eq!(claim["kind"], "PersistentVolumeClaim");
        assert_eq!(claim["spec"]["volumeMode"], "Filesystem");
        assert_eq!(claim["status"], json!({"phase": "Pending"}));
    }

    #[test]
    fn daemon_set_defaults() {
        let d = json!({"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "agent"},
            "spec": {"template": {"spec": {"containers": [{"name": "a", "image": "a:1"}]}}}});
        let d = defaulted(d);
        assert_eq!(
            d["spec"]["updateStrategy"],
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}})
        );
        assert_eq!(d["spec"]["revisionHistoryLimit"], 10);
        assert_eq!(d["spec"]["template"]["spec"]["dnsPolicy"], "ClusterFirst");
    }

    #[test]
    fn replica_set_and_replication_controller_replicas() {
        for (av, kind) in [("apps/v1", "ReplicaSet"), ("v1", "ReplicationController")] {
            let r = defaulted(json!({"apiVersion": av, "kind": kind, "metadata": {"name": "r"}, "spec": {}}));
            assert_eq!(r["spec"]["replicas"], 1, "{kind}");
        }
    }

    fn job(spec: Value) -> Value {
        let mut j = json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "migrate"}, "spec": spec});
        j["spec"]["template"] =
            json!({"spec": {"restartPolicy": "Never", "containers": [{"name": "m", "image": "m:1"}]}});
        defaulted(j)
    }

    #[test]
    fn job_defaults() {
        let j = job(json!({}));
        assert_eq!(j["spec"]["completions"], 1);
        assert_eq!(j["spec"]["parallelism"], 1);
        assert_eq!(j["spec"]["backoffLimit"], 6);
        assert_eq!(j["spec"]["completionMode"], "NonIndexed");
        assert_eq!(j["spec"]["suspend"], false);
        assert_eq!(j["spec"]["manualSelector"], false);
        assert_eq!(j["spec"]["podReplacementPolicy"], "TerminatingOrFailed");
        assert_eq!(j["spec"]["template"]["spec"]["restartPolicy"], "Never");
    }

    #[test]
    fn job_completions_depend_on_parallelism_and_replacement_on_failure_policy() {
        let j = job(json!({"parallelism": 3}));
        assert!(j["spec"].get("completions").is_none());
        assert_eq!(j["spec"]["parallelism"], 3);
        let j = job(json!({"completions": 5}));
        assert_eq!(j["spec"]["parallelism"], 1);
        let j = job(json!({"podFailurePolicy": {"rules": []}}));
        assert_eq!(j["spec"]["podReplacementPolicy"], "Failed");
        let j = job(json!({"backoffLimitPerIndex": 1, "completionMode": "Indexed", "completions": 3}));
        assert_eq!(j["spec"]["backoffLimit"], i32::MAX);
        let j = job(
            json!({"podFailurePolicy": {"rules": [{"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]}]}}),
        );
        assert_eq!(j["spec"]["podFailurePolicy"]["rules"][0]["onPodConditions"][0]["status"], "True");
    }

    #[test]
    fn job_labels_come_from_the_template_when_it_has_none() {
        let mut j = json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "m"},
            "spec": {"template": {"metadata": {"labels": {"app": "m"}}, "spec": {"restartPolicy": "Never", "containers": []}}}});
        apply(&mut j);
        assert_eq!(j["metadata"]["labels"], json!({"app": "m"}));
        let mut j = json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "m", "labels": {"team": "x"}},
            "spec": {"template": {"metadata": {"labels": {"app": "m"}}, "spec": {"restartPolicy": "Never", "containers": []}}}});
        apply(&mut j);
        assert_eq!(j["metadata"]["labels"], json!({"team": "x"}));
    }

    #[test]
    fn replication_controller_selector_and_labels_from_the_template() {
        let r = defaulted(json!({"apiVersion": "v1", "kind": "ReplicationController", "metadata": {"name": "r"},
            "spec": {"template": {"metadata": {"labels": {"app": "r"}}, "spec": {"containers": []}}}}));
        assert_eq!(r["spec"]["selector"], json!({"app": "r"}));
        assert_eq!(r["metadata"]["labels"], json!({"app": "r"}));
    }

    #[test]
    fn cron_job_defaults_leave_the_job_template_to_the_controller() {
        let c = defaulted(json!({"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "c"},
            "spec": {"schedule": "0 * * * *", "jobTemplate": {"spec": {"template": {"spec": {"restartPolicy": "OnFailure",
            "containers": [{"name": "c", "image": "c:1"}]}}}}}}));
        assert_eq!(c["spec"]["concurrencyPolicy"], "Allow");
        assert_eq!(c["spec"]["suspend"], false);
        assert_eq!(c["spec"]["successfulJobsHistoryLimit"], 3);
        assert_eq!(c["spec"]["failedJobsHistoryLimit"], 1);
        let js = &c["spec"]["jobTemplate"]["spec"];
        assert!(js.get("backoffLimit").is_none());
        assert_eq!(js["template"]["spec"]["containers"][0]["imagePullPolicy"], "IfNotPresent");
    }

    // --- services ---

    fn svc(spec: Value) -> Value {
        defaulted(json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"}, "spec": spec}))
    }

    #[test]
    fn service_type_and_session_affinity() {
        let s = svc(json!({"ports": [{"port": 80}]}));
        assert_eq!(s["spec"]["type"], "ClusterIP");
        assert_eq!(s["spec"]["sessionAffinity"], "None");
        assert!(s["spec"].get("sessionAffinityConfig").is_none());
        let s = svc(json!({"sessionAffinity": "ClientIP"}));
        assert_eq!(s["spec"]["sessionAffinityConfig"], json!({"clientIP": {"timeoutSeconds": 10800}}));
        let s = svc(json!({"sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 60}}}));
        assert!(s["spec"].get("sessionAffinityConfig").is_none(), "dropped without ClientIP affinity");
    }

    #[test]
    fn service_ports_protocol_and_target_port() {
        let s = svc(
            json!({"ports": [{"port": 80}, {"port": 443, "targetPort": "https"}, {"port": 53, "protocol": "UDP", "targetPort": 5353}]}),
        );
        assert_eq!(
            s["spec"]["ports"],
            json!([{"port": 80, "protocol": "TCP", "targetPort": 80}, {"port": 443, "targetPort": "https", "protocol": "TCP"},
                   {"port": 53, "protocol": "UDP", "targetPort": 5353}])
        );
    }

    #[test]
    fn service_traffic_policies_by_type() {
        let c = svc(json!({}));
        assert_eq!(c["spec"]["internalTrafficPolicy"], "Cluster");
        assert!(c["spec"].get("externalTrafficPolicy").is_none());
        assert!(c["spec"].get("allocateLoadBalancerNodePorts").is_none());
        let n = svc(json!({"type": "NodePort"}));
        assert_eq!(n["spec"]["externalTrafficPolicy"], "Cluster");
        assert!(n["spec"].get("allocateLoadBalancerNodePorts").is_none());
        let lb = svc(json!({"type": "LoadBalancer", "externalTrafficPolicy": "Local"}));
        assert_eq!(lb["spec"]["externalTrafficPolicy"], "Local");
        assert_eq!(lb["spec"]["allocateLoadBalancerNodePorts"], true);
        let x = svc(json!({"externalIPs": ["192.0.2.10"]}));
        assert_eq!(x["spec"]["externalTrafficPolicy"], "Cluster");
        let e = svc(json!({"type": "ExternalName", "externalName": "db.example.com"}));
        assert!(e["spec"].get("internalTrafficPolicy").is_none());
    }

    #[test]
    fn endpoints_and_endpoint_slice_ports() {
        let e = defaulted(json!({"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": "e"},
            "subsets": [{"addresses": [{"ip": "10.0.0.1"}], "ports": [{"port": 80}]}]}));
        assert_eq!(e["subsets"][0]["ports"][0]["protocol"], "TCP");
        let s =
            defaulted(json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "metadata": {"name": "e"},
            "addressType": "IPv4", "ports": [{"port": 80}]}));
        assert_eq!(s["ports"][0], json!({"port": 80, "protocol": "TCP", "name": ""}));
    }

    #[test]
    fn network_policy_ports_and_policy_types() {
        let np = |spec: Value| {
            defaulted(
                json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": "n"}, "spec": spec}),
            )
        };
        let a = np(json!({"podSelector": {}, "ingress": [{"ports": [{"port": 80}]}]}));
        assert_eq!(a["spec"]["policyTypes"], json!(["Ingress"]));
        assert_eq!(a["spec"]["ingress"][0]["ports"][0]["protocol"], "TCP");
        let b = np(json!({"podSelector": {}, "egress": [{"ports": [{"port": 53, "protocol": "UDP"}]}]}));
        assert_eq!(b["spec"]["policyTypes"], json!(["Ingress", "Egress"]));
        let c = np(json!({"podSelector": {}, "policyTypes": ["Egress"]}));
        assert_eq!(c["spec"]["policyTypes"], json!(["Egress"]));
    }

    // --- the rest ---

    #[test]
    fn hpa_min_replicas_and_metrics() {
        let h = defaulted(
            json!({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "h"},
            "spec": {"maxReplicas": 5, "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}}}),
        );
        assert_eq!(h["spec"]["minReplicas"], 1);
        assert_eq!(h["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"], 80);
        assert!(h["spec"].get("behavior").is_none(), "behavior is filled in only when given");
    }

    #[test]
    fn hpa_behavior_when_given() {
        let h = defaulted(
            json!({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "h"},
            "spec": {"maxReplicas": 5, "behavior": {"scaleDown": {"stabilizationWindowSeconds": 60}}}}),
        );
        let b = &h["spec"]["behavior"];
        assert_eq!(b["scaleDown"]["stabilizationWindowSeconds"], 60);
        let h2 = defaulted(
            json!({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "h"},
            "spec": {"maxReplicas": 5, "behavior": {"scaleUp": {"selectPolicy": "Min"}}}}),
        );
        assert!(
            h2["spec"]["behavior"]["scaleDown"].get("stabilizationWindowSeconds").is_none(),
            "the controller's flag, not the object"
        );
        assert_eq!(b["scaleDown"]["selectPolicy"], "Max");
        assert_eq!(b["scaleDown"]["policies"], json!([{"type": "Percent", "value": 100, "periodSeconds": 15}]));
        assert_eq!(b["scaleUp"]["stabilizationWindowSeconds"], 0);
        assert_eq!(b["scaleUp"]["policies"][0], json!({"type": "Pods", "value": 4, "periodSeconds": 15}));
    }

    #[test]
    fn pvc_and_pv_modes() {
        let c = defaulted(
            json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "c"}, "spec": {"accessModes": ["ReadWriteOnce"]}}),
        );
        assert_eq!(c["spec"]["volumeMode"], "Filesystem");
        let v = defaulted(
            json!({"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": "v"}, "spec": {"capacity": {"storage": "1Gi"}}}),
        );
        assert_eq!(v["spec"]["persistentVolumeReclaimPolicy"], "Retain");
        assert_eq!(v["spec"]["volumeMode"], "Filesystem");
    }

    #[test]
    fn secret_string_data_is_stored_as_data() {
        let s = defaulted(json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"},
            "data": {"a": "YQ=="}, "stringData": {"b": "secret", "a": "override"}}));
        assert!(s.get("stringData").is_none());
        assert_eq!(s["data"], json!({"a": "b3ZlcnJpZGU=", "b": "c2VjcmV0"}));
    }

    #[test]
    fn env_resource_field_ref_divisor() {
        let d = defaulted(deployment(json!({"containers": [{"name": "c", "image": "x:1", "env": [
            {"name": "CPU", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu"}}}]}]})));
        assert_eq!(container_of(&d)["env"][0]["valueFrom"]["resourceFieldRef"]["divisor"], "0");
    }

    #[test]
    fn role_ref_group_ingress_class_scope_and_csi_driver() {
        let b = defaulted(
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": {"name": "b"},
            "roleRef": {"kind": "ClusterRole", "name": "view"}, "subjects": []}),
        );
        assert_eq!(b["roleRef"]["apiGroup"], "rbac.authorization.k8s.io");
        let c = defaulted(
            json!({"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass", "metadata": {"name": "nginx"},
            "spec": {"controller": "k8s.io/ingress-nginx", "parameters": {"kind": "P", "name": "p"}}}),
        );
        assert_eq!(c["spec"]["parameters"]["scope"], "Cluster");
        let d = defaulted(
            json!({"apiVersion": "storage.k8s.io/v1", "kind": "CSIDriver", "metadata": {"name": "ebs.csi.aws.com"}, "spec": {}}),
        );
        assert_eq!(d["spec"]["attachRequired"], true);
        assert_eq!(d["spec"]["fsGroupPolicy"], "ReadWriteOnceWithFSType");
        assert_eq!(d["spec"]["volumeLifecycleModes"], json!(["Persistent"]));
    }

    #[test]
    fn secret_type() {
        let s = defaulted(json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "data": {}}));
        assert_eq!(s["type"], "Opaque");
        let s = defaulted(
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "type": "kubernetes.io/tls"}),
        );
        assert_eq!(s["type"], "kubernetes.io/tls");
    }

    #[test]
    fn rbac_subject_api_group_depends_on_kind() {
        let b = defaulted(
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": "b"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "r"},
            "subjects": [{"kind": "ServiceAccount", "name": "sa"}, {"kind": "User", "name": "alice"}, {"kind": "Group", "name": "devs"}]}),
        );
        assert!(b["subjects"][0].get("apiGroup").is_none());
        assert_eq!(b["subjects"][1]["apiGroup"], "rbac.authorization.k8s.io");
        assert_eq!(b["subjects"][2]["apiGroup"], "rbac.authorization.k8s.io");
    }

    #[test]
    fn storage_class_policies() {
        let s = defaulted(
            json!({"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": {"name": "s"}, "provisioner": "p"}),
        );
        assert_eq!(s["reclaimPolicy"], "Delete");
        assert_eq!(s["volumeBindingMode"], "Immediate");
    }

    #[test]
    fn priority_class_preemption() {
        let p = defaulted(
            json!({"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass", "metadata": {"name": "p"}, "value": 10}),
        );
        assert_eq!(p["preemptionPolicy"], "PreemptLowerPriority");
    }

    #[test]
    fn crd_names_and_conversion() {
        let c = defaulted(
            json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition", "metadata": {"name": "widgets.example.com"},
            "spec": {"group": "example.com", "names": {"kind": "Widget", "plural": "widgets"}, "scope": "Namespaced", "versions": []}}),
        );
        assert_eq!(c["spec"]["names"]["singular"], "widget");
        assert_eq!(c["spec"]["names"]["listKind"], "WidgetList");
        assert_eq!(c["spec"]["conversion"], json!({"strategy": "None"}));
    }

    #[test]
    fn webhook_configuration_defaults() {
        let w = defaulted(
            json!({"apiVersion": "admissionregistration.k8s.io/v1", "kind": "MutatingWebhookConfiguration", "metadata": {"name": "w"},
            "webhooks": [{"name": "w.example.com", "sideEffects": "None", "admissionReviewVersions": ["v1"],
                          "clientConfig": {"service": {"name": "s", "namespace": "n"}}, "rules": [{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods"]}]}]}),
        );
        let h = &w["webhooks"][0];
        assert_eq!(h["failurePolicy"], "Fail");
        assert_eq!(h["matchPolicy"], "Equivalent");
        assert_eq!(h["namespaceSelector"], json!({}));
        assert_eq!(h["objectSelector"], json!({}));
        assert_eq!(h["timeoutSeconds"], 10);
        assert_eq!(h["reinvocationPolicy"], "Never");
        assert_eq!(h["rules"][0]["scope"], "*");
        assert_eq!(h["clientConfig"]["service"]["port"], 443);
    }

    #[test]
    fn kinds_without_defaults_are_left_alone() {
        for obj in [
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "b"}}),
            json!({"apiVersion": "monitoring.coreos.com/v1", "kind": "ServiceMonitor", "metadata": {"name": "m"}, "spec": {}}),
            json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "i"}, "spec": {"rules": []}}),
        ] {
            assert_eq!(defaulted(obj.clone()), obj);
        }
    }

    // --- server-set fields ---

    #[test]
    fn server_set_fields() {
        let svc = json!({"kind": "Service"});
        assert!(server_set(&svc, &["spec", "clusterIP"], Some(&json!("10.0.0.1"))));
        assert!(server_set(&svc, &["spec", "ports", "nodePort"], Some(&json!(30080))));
        assert!(!server_set(&svc, &["spec", "type"], Some(&json!("NodePort"))));
        let pvc = json!({"kind": "PersistentVolumeClaim"});
        assert!(server_set(&pvc, &["spec", "volumeName"], Some(&json!("pvc-1"))));
        assert!(server_set(&pvc, &["metadata", "finalizers"], Some(&json!("kubernetes.io/pvc-protection"))));
        assert!(!server_set(&pvc, &["metadata", "finalizers"], Some(&json!("example.com/keep"))));
        assert!(server_set(&pvc, &["metadata", "annotations", "pv.kubernetes.io/bind-completed"], None));
        let ns = json!({"kind": "Namespace"});
        assert!(server_set(&ns, &["metadata", "labels", "kubernetes.io/metadata.name"], None));
        assert!(server_set(&ns, &["spec", "finalizers"], None));
        let sa = json!({"kind": "ServiceAccount", "metadata": {"name": "grafana"}});
        assert!(server_set(&sa, &["secrets"], Some(&json!({"name": "grafana-token-7m6xs"}))));
        assert!(!server_set(&sa, &["secrets"], Some(&json!({"name": "registry-creds"}))));
        let ing = json!({"kind": "Ingress"});
        assert!(server_set(&ing, &["spec", "ingressClassName"], Some(&json!("nginx"))));
        let legacy = json!({"kind": "Ingress", "metadata": {"annotations": {"kubernetes.io/ingress.class": "nginx"}}});
        assert!(!server_set(&legacy, &["spec", "ingressClassName"], Some(&json!("nginx"))));
    }

    #[test]
    fn server_set_depends_on_the_desired_object() {
        let job = json!({"kind": "Job", "spec": {}});
        assert!(server_set(&job, &["spec", "selector"], None));
        assert!(server_set(&job, &["spec", "template", "metadata", "labels", "batch.kubernetes.io/job-name"], None));
        assert!(!server_set(&job, &["spec", "template", "metadata", "labels", "team"], None));
        let manual = json!({"kind": "Job", "spec": {"manualSelector": true}});
        assert!(!server_set(&manual, &["spec", "selector"], None));
        let aggregated = json!({"kind": "ClusterRole", "aggregationRule": {"clusterRoleSelectors": []}});
        assert!(server_set(&aggregated, &["rules"], None));
        assert!(!server_set(&json!({"kind": "ClusterRole"}), &["rules"], None));
        let injected = json!({"kind": "ValidatingWebhookConfiguration", "metadata": {"annotations": {"cert-manager.io/inject-ca-from": "ns/cert"}}});
        assert!(server_set(&injected, &["webhooks", "clientConfig", "caBundle"], None));
        assert!(!server_set(
            &json!({"kind": "ValidatingWebhookConfiguration"}),
            &["webhooks", "clientConfig", "caBundle"],
            None
        ));
    }
}
