//! The built-in checks on one overlay's rendered objects that teams know from kube-linter and
//! Polaris: security contexts, host namespaces, probes, requests, Services, ServiceAccounts,
//! PodDisruptionBudgets, replicas and spreading, secrets in env values, RBAC, Ingress TLS,
//! and deprecated or removed API versions. Each finding is pinned where its field is set.

use serde_json::{Map, Value};

use super::LeafCtx;
use super::apis;
use super::catalog;
use crate::config::Severity;
use crate::k8s::{self, ObjectRef};

/// Capabilities the Pod Security Standards' restricted profile lets a container add.
const SAFE_CAPABILITIES: [&str; 1] = ["NET_BIND_SERVICE"];
/// Parts of an environment variable name that mark a secret.
const SECRET_WORDS: [&str; 9] =
    ["PASSWORD", "PASSWD", "TOKEN", "SECRET", "KEY", "APIKEY", "PRIVATEKEY", "CREDENTIAL", "CREDENTIALS"];
/// A last name part that says the value only points at a secret (`DB_PASSWORD_FILE`) or
/// describes it (`API_KEY_NAME`, `TOKEN_TTL`).
const NOT_SECRET_SUFFIXES: [&str; 22] = [
    "FILE",
    "PATH",
    "DIR",
    "NAME",
    "ID",
    "REF",
    "URL",
    "URI",
    "HOST",
    "PORT",
    "PREFIX",
    "HEADER",
    "TTL",
    "ENABLED",
    "MODE",
    "TYPE",
    "SIZE",
    "LENGTH",
    "TIMEOUT",
    "EXPIRY",
    "ALGORITHM",
    "ISSUER",
];

fn s<'a>(v: &'a Value, pointer: &str) -> Option<&'a str> {
    v.pointer(pointer).and_then(Value::as_str)
}

fn kind(obj: &Value) -> &str {
    obj.get("kind").and_then(Value::as_str).unwrap_or_default()
}

fn namespace(obj: &Value) -> Option<&str> {
    s(obj, "/metadata/namespace")
}

fn is_true(v: Option<&Value>) -> bool {
    v.and_then(Value::as_bool) == Some(true)
}

/// A workload with a pod template (not a bare Pod): what Services, PDBs and replicas concern.
struct Workload<'a> {
    obj: &'a Value,
    spec_ptr: &'static str,
    labels: Map<String, Value>,
    /// Declared replicas (None for DaemonSets, Jobs, CronJobs and Pods).
    replicas: Option<i64>,
    /// minReplicas of an HPA that scales it.
    hpa_min: Option<i64>,
}

impl Workload<'_> {
    fn name(&self) -> &str {
        s(self.obj, "/metadata/name").unwrap_or_default()
    }
    fn kind(&self) -> &str {
        kind(self.obj)
    }
    /// The replica count the workload runs at least.
    fn min_replicas(&self) -> Option<i64> {
        self.hpa_min.or(self.replicas)
    }
    fn containers(&self) -> Vec<&Value> {
        self.obj
            .pointer(&format!("{}/containers", self.spec_ptr))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .collect()
    }
}

/// Runs every built-in check on the leaf's objects, with severities for environment class
/// `class`, against Kubernetes `version`.
pub(super) fn run(cx: &mut LeafCtx, objects: &[Value], class: &str, version: (u32, u32)) {
    let repo = cx.repo;
    let policies = &repo.config.policies;
    let sev = |id: &str| catalog::severity(policies, id, class);
    let allow = |id: &str| policies.checks.get(id).map(|p| p.allow.clone()).unwrap_or_default();

    // HPAs: which workload each scales, and from how many replicas
    let hpa_min = |w: &Value| -> Option<i64> {
        objects
            .iter()
            .filter(|o| kind(o) == "HorizontalPodAutoscaler" && same_namespace(namespace(o), namespace(w)))
            .filter(|o| s(o, "/spec/scaleTargetRef/kind") == Some(kind(w)))
            .filter(|o| s(o, "/spec/scaleTargetRef/name") == s(w, "/metadata/name"))
            .map(|o| o.pointer("/spec/minReplicas").and_then(Value::as_i64).unwrap_or(1))
            .next()
    };
    let workloads: Vec<Workload> = objects
        .iter()
        .filter(|o| kind(o) != "Pod")
        .filter_map(|o| {
            let spec_ptr = k8s::pod_spec_pointer(o)?;
            let replicas = match kind(o) {
                "Deployment" | "StatefulSet" | "ReplicaSet" | "ReplicationController" => {
                    Some(o.pointer("/spec/replicas").and_then(Value::as_i64).unwrap_or(1))
                }
                _ => None,
            };
            Some(Workload {
                obj: o,
                spec_ptr,
                labels: k8s::pod_labels(o).cloned().unwrap_or_default(),
                replicas,
                hpa_min: hpa_min(o),
            })
        })
        .collect();

    for obj in objects {
        // deprecated and removed API versions
        let r = ObjectRef::of(obj);
        if let Some((removed, message)) = apis::problem(&r.api_version, &r.kind, version) {
            let (id, severity) =
                if removed { ("removed-api", Severity::Error) } else { ("deprecated-api", Severity::Warning) };
            if policies.checks.get(id).and_then(|p| p.enabled) != Some(false) {
                cx.on_object(id, severity, obj, "/apiVersion", message);
            }
        }
        if let Some(spec_ptr) = k8s::pod_spec_pointer(obj) {
            pod_checks(cx, obj, spec_ptr, &sev, &allow);
        }
        match kind(obj) {
            "Role" | "ClusterRole" => {
                if let Some(severity) = sev("wildcard-in-rules") {
                    let rules = obj.get("rules").and_then(Value::as_array).into_iter().flatten();
                    for (i, rule) in rules.enumerate() {
                        for field in ["apiGroups", "resources", "verbs"] {
                            let items = rule.get(field).and_then(Value::as_array).into_iter().flatten();
                            if let Some(j) = items.into_iter().position(|v| v.as_str() == Some("*")) {
                                cx.on_object(
                                    "wildcard-in-rules",
                                    severity,
                                    obj,
                                    &format!("/rules/{i}/{field}/{j}"),
                                    format!("rule {} grants `*` {field}", i + 1),
                                );
                            }
                        }
                    }
                }
            }
            "RoleBinding" | "ClusterRoleBinding" => {
                if let Some(severity) = sev("cluster-admin-role-binding")
                    && s(obj, "/roleRef/kind") == Some("ClusterRole")
                    && s(obj, "/roleRef/name") == Some("cluster-admin")
                {
                    let subjects: Vec<String> = obj
                        .get("subjects")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                        .map(|x| format!("{} {}", s(x, "/kind").unwrap_or("?"), s(x, "/name").unwrap_or("?")))
                        .collect();
                    cx.on_object(
                        "cluster-admin-role-binding",
                        severity,
                        obj,
                        "/roleRef/name",
                        format!(
                            "binds cluster-admin to {}",
                            if subjects.is_empty() { "nobody".into() } else { subjects.join(", ") }
                        ),
                    );
                }
            }
            "Ingress" => {
                let tls = obj.pointer("/spec/tls").and_then(Value::as_array).is_some_and(|t| !t.is_empty());
                if let Some(severity) = sev("ingress-tls")
                    && !tls
                {
                    let hosts: Vec<&str> = obj
                        .pointer("/spec/rules")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                        .filter_map(|r| s(r, "/host"))
                        .collect();
                    let what = if hosts.is_empty() { String::new() } else { format!(" for {}", hosts.join(", ")) };
                    cx.on_object(
                        "ingress-tls",
                        severity,
                        obj,
                        "/spec",
                        format!("serves plain HTTP{what}: no spec.tls"),
                    );
                }
            }
            "Service" => service_checks(cx, obj, &sev, &workloads),
            "PodDisruptionBudget" => pdb_checks(cx, obj, &sev, &workloads),
            _ => {}
        }
    }

    // ServiceAccounts: those the overlay creates, `default`, and the allowed ones
    if let Some(severity) = sev("non-existent-service-account") {
        let own: Vec<(Option<&str>, &str)> = objects
            .iter()
            .filter(|o| kind(o) == "ServiceAccount")
            .filter_map(|o| Some((namespace(o), s(o, "/metadata/name")?)))
            .collect();
        let allowed = allow("non-existent-service-account");
        for w in workloads.iter() {
            let field = ["serviceAccountName", "serviceAccount"]
                .into_iter()
                .find(|f| w.obj.pointer(&format!("{}/{f}", w.spec_ptr)).is_some());
            let Some(field) = field else { continue };
            let ptr = format!("{}/{field}", w.spec_ptr);
            let Some(sa) = s(w.obj, &ptr) else { continue };
            let created = own.iter().any(|(ns, name)| *name == sa && same_namespace(*ns, namespace(w.obj)));
            if sa.is_empty() || sa == "default" || created || allowed.iter().any(|a| a == sa) {
                continue;
            }
            cx.on_object(
                "non-existent-service-account",
                severity,
                w.obj,
                &ptr,
                format!(
                    "ServiceAccount {sa:?} is not in this overlay (namespace {})",
                    namespace(w.obj).unwrap_or("default")
                ),
            );
        }
    }

    // replicas and spreading
    let min = policies.checks.get("minimum-replicas").and_then(|p| p.min).map_or(2, i64::from);
    for w in workloads.iter().filter(|w| matches!(w.kind(), "Deployment" | "StatefulSet")) {
        let Some(replicas) = w.min_replicas() else { continue };
        if let Some(severity) = sev("minimum-replicas")
            && replicas < min
        {
            let (file, line) = replicas_site(cx, w);
            let what = if w.hpa_min.is_some() { "its HorizontalPodAutoscaler's minReplicas is" } else { "runs" };
            let message = format!(
                "{what} {replicas} replica{}; at least {min} keep it up through a node loss or a rollout",
                if replicas == 1 { "" } else { "s" }
            );
            match (file, line) {
                (Some(f), Some(l)) if w.hpa_min.is_none() => {
                    let object = Some(ObjectRef::of(w.obj).to_string());
                    cx.finding("minimum-replicas", severity, Some(f), Some(l), object, message)
                }
                _ => cx.on_object("minimum-replicas", severity, w.obj, "/spec/replicas", message),
            }
        }
        let max = w.obj.pointer("/spec/replicas").and_then(Value::as_i64).unwrap_or(1).max(replicas);
        let spec = w.obj.pointer(w.spec_ptr).unwrap_or(&Value::Null);
        let spread = spec.pointer("/affinity/podAntiAffinity").is_some()
            || spec.get("topologySpreadConstraints").and_then(Value::as_array).is_some_and(|t| !t.is_empty());
        if let Some(severity) = sev("no-anti-affinity")
            && max >= 2
            && !spread
        {
            cx.on_object(
                "no-anti-affinity",
                severity,
                w.obj,
                &format!("{}/affinity", w.spec_ptr),
                format!("{max} replicas with neither podAntiAffinity nor topologySpreadConstraints: they may all land on one node"),
            );
        }
    }
}

/// Whether two objects can live in the same namespace: an object without one lands in the
/// namespace it is applied to (the Argo CD Application's destination), so it may.
fn same_namespace(a: Option<&str>, b: Option<&str>) -> bool {
    a.is_none() || b.is_none() || a == b
}

/// The workloads in namespace `ns` whose pods `selector` selects.
fn selects<'w, 'a>(workloads: &'w [Workload<'a>], ns: Option<&str>, selector: &Value) -> Vec<&'w Workload<'a>> {
    workloads
        .iter()
        .filter(|w| {
            same_namespace(namespace(w.obj), ns) && !w.labels.is_empty() && k8s::selector_matches(selector, &w.labels)
        })
        .collect()
}

/// Where the replica count of a workload is set: an overlay's `replicas:` entry naming it (the
/// leaf's own first), else the object's source.
fn replicas_site(cx: &LeafCtx, w: &Workload) -> (Option<String>, Option<u32>) {
    let mut best: Option<(String, u32, bool)> = None;
    for f in &cx.closure.files {
        let dir = crate::repo::split_dir(f).0;
        let Some(k) = cx.repo.kustomizations.get(dir).filter(|k| &k.file == f) else { continue };
        let Some(doc) = cx.repo.docs(&k.file).first() else { continue };
        let items = doc.value.get("replicas").and_then(Value::as_array).into_iter().flatten();
        for (i, item) in items.enumerate() {
            let n = s(item, "/name").unwrap_or_default();
            if !n.is_empty() && w.name().contains(n) {
                let own = dir == cx.leaf.dir;
                if best.as_ref().is_none_or(|b| own && !b.2) {
                    best = Some((k.file.clone(), doc.line_of(&format!("/replicas/{i}/count")), own));
                }
            }
        }
    }
    match best {
        Some((f, l, _)) => (Some(f), Some(l)),
        None => (None, None),
    }
}

fn pod_checks(
    cx: &mut LeafCtx,
    obj: &Value,
    spec_ptr: &str,
    sev: &dyn Fn(&str) -> Option<Severity>,
    allow: &dyn Fn(&str) -> Vec<String>,
) {
    let spec = obj.pointer(spec_ptr).unwrap_or(&Value::Null);
    for (field, id, what) in
        [("hostNetwork", "host-network", "network"), ("hostPID", "host-pid", "process"), ("hostIPC", "host-ipc", "IPC")]
    {
        if let Some(severity) = sev(id)
            && is_true(spec.get(field))
        {
            cx.on_object(
                id,
                severity,
                obj,
                &format!("{spec_ptr}/{field}"),
                format!("pods share the host's {what} namespace ({field}: true)"),
            );
        }
    }
    if let Some(severity) = sev("host-path") {
        let allowed = allow("host-path");
        let volumes = spec.get("volumes").and_then(Value::as_array).into_iter().flatten();
        for (i, v) in volumes.enumerate() {
            let Some(path) = s(v, "/hostPath/path") else { continue };
            if allowed.iter().any(|a| a == path) {
                continue;
            }
            cx.on_object(
                "host-path",
                severity,
                obj,
                &format!("{spec_ptr}/volumes/{i}/hostPath"),
                format!("volume {:?} mounts the host's {path}", s(v, "/name").unwrap_or("?")),
            );
        }
    }
    let pod_sc = spec.get("securityContext").unwrap_or(&Value::Null);
    let long_running = !matches!(kind(obj), "Job" | "CronJob");
    for (ptr, c) in k8s::containers(obj) {
        let name = s(c, "/name").unwrap_or("?");
        let init = ptr.contains("/initContainers/");
        let sc = c.get("securityContext").unwrap_or(&Value::Null);
        let sc_ptr = format!("{ptr}/securityContext");
        if let Some(severity) = sev("privileged-container")
            && is_true(sc.get("privileged"))
        {
            cx.on_object(
                "privileged-container",
                severity,
                obj,
                &format!("{sc_ptr}/privileged"),
                format!("container {name:?} runs privileged"),
            );
        }
        if let Some(severity) = sev("privilege-escalation-container")
            && sc.get("allowPrivilegeEscalation").and_then(Value::as_bool) != Some(false)
        {
            let message = if is_true(sc.get("allowPrivilegeEscalation")) {
                format!("container {name:?} sets allowPrivilegeEscalation: true")
            } else {
                format!("container {name:?} does not set allowPrivilegeEscalation: false (it is allowed by default)")
            };
            cx.on_object(
                "privilege-escalation-container",
                severity,
                obj,
                &format!("{sc_ptr}/allowPrivilegeEscalation"),
                message,
            );
        }
        if let Some(severity) = sev("run-as-non-root") {
            let non_root = sc.get("runAsNonRoot").or(pod_sc.get("runAsNonRoot")).and_then(Value::as_bool);
            let user = sc.get("runAsUser").or(pod_sc.get("runAsUser")).and_then(Value::as_i64);
            let problem = match (non_root, user) {
                (_, Some(0)) => Some("runs as root (runAsUser: 0)"),
                (Some(true), _) | (_, Some(_)) => None,
                (Some(false), None) => Some("sets runAsNonRoot: false"),
                (None, None) => Some("may run as root: neither runAsNonRoot: true nor a runAsUser"),
            };
            if let Some(p) = problem {
                // the field that decides it, else where it belongs
                let pod_ptr = format!("{spec_ptr}/securityContext");
                let at = if sc.get("runAsUser").and_then(Value::as_i64) == Some(0) {
                    format!("{sc_ptr}/runAsUser")
                } else if sc.get("runAsUser").is_none() && pod_sc.get("runAsUser").and_then(Value::as_i64) == Some(0) {
                    format!("{pod_ptr}/runAsUser")
                } else if sc.get("runAsNonRoot").is_some() || (!sc.is_null() && pod_sc.get("runAsNonRoot").is_none()) {
                    format!("{sc_ptr}/runAsNonRoot")
                } else {
                    format!("{pod_ptr}/runAsNonRoot")
                };
                cx.on_object("run-as-non-root", severity, obj, &at, format!("container {name:?} {p}"));
            }
        }
        if let Some(severity) = sev("no-read-only-root-fs")
            && !is_true(sc.get("readOnlyRootFilesystem"))
        {
            cx.on_object(
                "no-read-only-root-fs",
                severity,
                obj,
                &format!("{sc_ptr}/readOnlyRootFilesystem"),
                format!("container {name:?} has a writable root filesystem (readOnlyRootFilesystem is not true)"),
            );
        }
        if let Some(severity) = sev("added-capabilities") {
            let allowed = allow("added-capabilities");
            let added = sc.pointer("/capabilities/add").and_then(Value::as_array).into_iter().flatten();
            for (i, cap) in added.enumerate() {
                let cap = cap.as_str().unwrap_or_default();
                let bare = cap.trim_start_matches("CAP_");
                if SAFE_CAPABILITIES.contains(&bare) || allowed.iter().any(|a| a.trim_start_matches("CAP_") == bare) {
                    continue;
                }
                cx.on_object(
                    "added-capabilities",
                    severity,
                    obj,
                    &format!("{sc_ptr}/capabilities/add/{i}"),
                    format!("container {name:?} adds capability {cap}"),
                );
            }
        }
        let ports = c.get("ports").and_then(Value::as_array).cloned().unwrap_or_default();
        if let Some(severity) = sev("host-port") {
            for (j, p) in ports.iter().enumerate() {
                if let Some(hp) = p.get("hostPort").and_then(Value::as_i64).filter(|h| *h != 0) {
                    cx.on_object(
                        "host-port",
                        severity,
                        obj,
                        &format!("{ptr}/ports/{j}/hostPort"),
                        format!("container {name:?} binds host port {hp}"),
                    );
                }
            }
        }
        if let Some(severity) = sev("resource-requests") {
            for res in ["cpu", "memory"] {
                let request = c.pointer(&format!("/resources/requests/{res}")).is_some();
                let limit = c.pointer(&format!("/resources/limits/{res}")).is_some();
                if !request && !limit {
                    cx.on_object(
                        "resource-requests",
                        severity,
                        obj,
                        &format!("{ptr}/resources/requests"),
                        format!("container {name:?} has no {res} request"),
                    );
                }
            }
        }
        if !init && long_running {
            for (probe, id) in [("livenessProbe", "no-liveness-probe"), ("readinessProbe", "no-readiness-probe")] {
                if let Some(severity) = sev(id)
                    && c.get(probe).is_none()
                {
                    cx.on_object(id, severity, obj, &ptr, format!("container {name:?} has no {probe}"));
                }
            }
        }
        if let Some(severity) = sev("probe-port") {
            for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
                for handler in ["httpGet", "tcpSocket", "grpc"] {
                    let at = format!("/{probe}/{handler}/port");
                    let Some(port) = c.pointer(&at) else { continue };
                    if let Some(problem) = port_problem(port, &ports) {
                        cx.on_object(
                            "probe-port",
                            severity,
                            obj,
                            &format!("{ptr}{at}"),
                            format!("container {name:?}: {probe} {problem}"),
                        );
                    }
                }
            }
        }
        if let Some(severity) = sev("env-var-secret") {
            let allowed = allow("env-var-secret");
            let env = c.get("env").and_then(Value::as_array).into_iter().flatten();
            for (k, e) in env.enumerate() {
                let var = s(e, "/name").unwrap_or_default();
                let literal = s(e, "/value").is_some_and(|v| !v.trim().is_empty());
                if literal && secret_like(var) && !allowed.iter().any(|a| a == var) {
                    cx.on_object(
                        "env-var-secret",
                        severity,
                        obj,
                        &format!("{ptr}/env/{k}/value"),
                        format!("container {name:?}: {var} holds a literal value; take it from a Secret (valueFrom.secretKeyRef)"),
                    );
                }
            }
        }
    }
}

/// Whether an environment variable name looks like it holds a secret: a part (split at `_`,
/// `-`, `.`) is a secret word, and the last part is not one that only refers to a secret.
pub fn secret_like(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    let parts: Vec<&str> = upper.split(['_', '-', '.']).filter(|p| !p.is_empty()).collect();
    let Some(last) = parts.last() else { return false };
    parts.iter().any(|p| SECRET_WORDS.contains(p)) && !NOT_SECRET_SUFFIXES.contains(last)
}

/// Why a probe or target port (name or number) matches none of a container's ports.
fn port_problem(port: &Value, ports: &[Value]) -> Option<String> {
    match port {
        Value::String(name) => match name.parse::<i64>() {
            Ok(n) => port_problem(&Value::from(n), ports),
            Err(_) => (!ports.iter().any(|p| s(p, "/name") == Some(name)))
                .then(|| format!("uses port {name:?}, which the container does not declare")),
        },
        Value::Number(n) => {
            let n = n.as_i64()?;
            (!ports.iter().any(|p| p.get("containerPort").and_then(Value::as_i64) == Some(n)))
                .then(|| format!("uses port {n}, which is not a containerPort of the container"))
        }
        _ => None,
    }
}

fn service_checks(cx: &mut LeafCtx, svc: &Value, sev: &dyn Fn(&str) -> Option<Severity>, workloads: &[Workload]) {
    let selector = match svc.pointer("/spec/selector").and_then(Value::as_object) {
        Some(m) if !m.is_empty() && s(svc, "/spec/type") != Some("ExternalName") => m,
        // no selector: endpoints are managed by hand or by another controller
        _ => return,
    };
    let as_label_selector = serde_json::json!({ "matchLabels": selector });
    let selected = selects(workloads, namespace(svc), &as_label_selector);
    if selected.is_empty() {
        if let Some(severity) = sev("dangling-service") {
            let wanted: Vec<String> =
                selector.iter().map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("?"))).collect();
            cx.on_object(
                "dangling-service",
                severity,
                svc,
                "/spec/selector",
                format!(
                    "selector {} matches no workload's pods in this overlay (namespace {})",
                    wanted.join(","),
                    namespace(svc).unwrap_or("default")
                ),
            );
        }
        return;
    }
    let Some(severity) = sev("service-target-port") else { return };
    let ports = svc.pointer("/spec/ports").and_then(Value::as_array).into_iter().flatten();
    for (i, p) in ports.enumerate() {
        let target = p.get("targetPort").or(p.get("port")).unwrap_or(&Value::Null);
        // every selected workload must serve it (a rollout of one without it breaks traffic)
        for w in &selected {
            let declared: Vec<Value> = w
                .containers()
                .iter()
                .flat_map(|c| c.get("ports").and_then(Value::as_array).cloned().unwrap_or_default())
                .collect();
            // a number on pods that declare no ports at all cannot be checked
            if declared.is_empty() && target.is_number() {
                continue;
            }
            if port_problem(target, &declared).is_some() {
                let at = if p.get("targetPort").is_some() {
                    format!("/spec/ports/{i}/targetPort")
                } else {
                    format!("/spec/ports/{i}/port")
                };
                let t = match target {
                    Value::String(x) => format!("{x:?}"),
                    other => other.to_string(),
                };
                cx.on_object(
                    "service-target-port",
                    severity,
                    svc,
                    &at,
                    format!("targetPort {t} is not a port of {} {}'s containers", w.kind(), w.name()),
                );
            }
        }
    }
}

/// An int-or-percent value against a replica count: the number of pods it means.
fn scaled(v: &Value, replicas: i64) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64(),
        Value::String(t) => match t.strip_suffix('%') {
            Some(p) => p.trim().parse::<i64>().ok().map(|p| (p * replicas + 99) / 100),
            None => t.parse().ok(),
        },
        _ => None,
    }
}

fn pdb_checks(cx: &mut LeafCtx, pdb: &Value, sev: &dyn Fn(&str) -> Option<Severity>, workloads: &[Workload]) {
    let Some(selector) = pdb.pointer("/spec/selector") else { return };
    let selected = selects(workloads, namespace(pdb), selector);
    if selected.is_empty() {
        if let Some(severity) = sev("dangling-pdb") {
            cx.on_object(
                "dangling-pdb",
                severity,
                pdb,
                "/spec/selector",
                format!(
                    "selector matches no workload's pods in this overlay (namespace {})",
                    namespace(pdb).unwrap_or("default")
                ),
            );
        }
        return;
    }
    if let Some(v) = pdb.pointer("/spec/maxUnavailable")
        && let Some(severity) = sev("pdb-max-unavailable")
        && scaled(v, 100) == Some(0)
    {
        cx.on_object(
            "pdb-max-unavailable",
            severity,
            pdb,
            "/spec/maxUnavailable",
            "maxUnavailable is 0: no pod can ever be evicted, so node drains hang".into(),
        );
    }
    if let Some(v) = pdb.pointer("/spec/minAvailable")
        && let Some(severity) = sev("pdb-min-available")
    {
        for w in &selected {
            let Some(replicas) = w.min_replicas() else { continue };
            if scaled(v, replicas).is_some_and(|m| m >= replicas) {
                cx.on_object(
                    "pdb-min-available",
                    severity,
                    pdb,
                    "/spec/minAvailable",
                    format!(
                        "minAvailable {} is not below the {replicas} replica{} of {} {}: no pod can ever be evicted",
                        match v {
                            Value::String(t) => t.clone(),
                            o => o.to_string(),
                        },
                        if replicas == 1 { "" } else { "s" },
                        w.kind(),
                        w.name()
                    ),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_names() {
        for yes in ["DB_PASSWORD", "api-key", "JWT_SECRET", "GITHUB_TOKEN", "AWS_SECRET_ACCESS_KEY", "redis.password"] {
            assert!(secret_like(yes), "{yes}");
        }
        for no in [
            "DB_PASSWORD_FILE",
            "SECRET_NAME",
            "REDIS_KEY_PREFIX",
            "LOG_LEVEL",
            "TOKEN_URL",
            "MONKEY",
            "AWS_ACCESS_KEY_ID",
        ] {
            assert!(!secret_like(no), "{no}");
        }
    }

    #[test]
    fn ports_by_name_and_number() {
        let ports = vec![serde_json::json!({"name": "http", "containerPort": 8080})];
        assert!(port_problem(&Value::from("http"), &ports).is_none());
        assert!(port_problem(&Value::from(8080), &ports).is_none());
        assert!(port_problem(&Value::from("8080"), &ports).is_none());
        assert!(port_problem(&Value::from("metrics"), &ports).is_some());
        assert!(port_problem(&Value::from(9090), &ports).is_some());
    }

    #[test]
    fn percentages() {
        assert_eq!(scaled(&Value::from("100%"), 3), Some(3));
        assert_eq!(scaled(&Value::from("50%"), 3), Some(2));
        assert_eq!(scaled(&Value::from(2), 3), Some(2));
        assert_eq!(scaled(&Value::from("0%"), 100), Some(0));
    }
}
