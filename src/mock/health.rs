//! Health of live objects the way Argo CD's built-in checks read it (gitops-engine
//! `pkg/health`): Deployment, StatefulSet, DaemonSet, ReplicaSet, Job, Pod, PVC, Service of type
//! LoadBalancer, Ingress, HorizontalPodAutoscaler; every other kind has no health. The
//! Application's health is the worst of its resources'.

use serde_json::Value;

/// Argo CD's health statuses, best to worst (`health.IsWorse`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Status {
    Healthy,
    Suspended,
    Progressing,
    Missing,
    Degraded,
    Unknown,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Healthy => "Healthy",
            Status::Suspended => "Suspended",
            Status::Progressing => "Progressing",
            Status::Missing => "Missing",
            Status::Degraded => "Degraded",
            Status::Unknown => "Unknown",
        }
    }
}

/// A health status and its message (empty when the check gives none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Health {
    pub status: Status,
    pub message: String,
}

impl Health {
    fn new(status: Status, message: impl Into<String>) -> Option<Health> {
        Some(Health { status, message: message.into() })
    }
}

fn int(o: &Value, p: &str) -> i64 {
    o.pointer(p).and_then(Value::as_i64).unwrap_or(0)
}

fn text<'a>(o: &'a Value, p: &str) -> &'a str {
    o.pointer(p).and_then(Value::as_str).unwrap_or_default()
}

fn conditions(o: &Value) -> &[Value] {
    o.pointer("/status/conditions").and_then(Value::as_array).map_or(&[], Vec::as_slice)
}

fn condition<'a>(o: &'a Value, ty: &str) -> Option<&'a Value> {
    conditions(o).iter().find(|c| c.get("type").and_then(Value::as_str) == Some(ty))
}

/// The health of one live object; None for a kind without a health check.
pub fn of(obj: &Value) -> Option<Health> {
    let kind = text(obj, "/kind");
    let group = text(obj, "/apiVersion").rsplit_once('/').map_or("", |(g, _)| g);
    let hook_finalizer = obj
        .pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .is_some_and(|f| f.iter().any(|x| x.as_str() == Some("argocd.argoproj.io/hook-finalizer")));
    if obj.pointer("/metadata/deletionTimestamp").is_some_and(|t| !t.is_null()) && !hook_finalizer {
        return Health::new(Status::Progressing, "Pending deletion");
    }
    match (group, kind) {
        ("apps" | "extensions", "Deployment") => deployment(obj),
        ("apps", "StatefulSet") => statefulset(obj),
        ("apps" | "extensions", "DaemonSet") => daemonset(obj),
        ("apps" | "extensions", "ReplicaSet") => replicaset(obj),
        ("batch", "Job") => job(obj),
        ("", "Pod") => pod(obj),
        ("", "PersistentVolumeClaim") => match text(obj, "/status/phase") {
            "Bound" => Health::new(Status::Healthy, ""),
            "Lost" => Health::new(Status::Degraded, ""),
            "Pending" => Health::new(Status::Progressing, ""),
            _ => Health::new(Status::Unknown, ""),
        },
        ("", "Service") => {
            let lb = text(obj, "/spec/type") == "LoadBalancer";
            if lb && load_balancer_pending(obj) {
                Health::new(Status::Progressing, "")
            } else {
                Health::new(Status::Healthy, "")
            }
        }
        ("networking.k8s.io" | "extensions", "Ingress") => {
            if load_balancer_pending(obj) {
                Health::new(Status::Progressing, "")
            } else {
                Health::new(Status::Healthy, "")
            }
        }
        ("autoscaling", "HorizontalPodAutoscaler") => hpa(obj),
        _ => None,
    }
}

fn load_balancer_pending(obj: &Value) -> bool {
    obj.pointer("/status/loadBalancer/ingress").and_then(Value::as_array).is_none_or(Vec::is_empty)
}

fn deployment(d: &Value) -> Option<Health> {
    if d.pointer("/spec/paused").and_then(Value::as_bool) == Some(true) {
        return Health::new(Status::Suspended, "Deployment is paused");
    }
    if int(d, "/metadata/generation") > int(d, "/status/observedGeneration") {
        return Health::new(
            Status::Progressing,
            "Waiting for rollout to finish: observed deployment generation less than desired generation",
        );
    }
    let name = text(d, "/metadata/name");
    if condition(d, "Progressing")
        .is_some_and(|c| c.get("reason").and_then(Value::as_str) == Some("ProgressDeadlineExceeded"))
    {
        return Health::new(Status::Degraded, format!("Deployment {name:?} exceeded its progress deadline"));
    }
    let replicas = d.pointer("/spec/replicas").and_then(Value::as_i64).unwrap_or(1);
    let (updated, total, available) =
        (int(d, "/status/updatedReplicas"), int(d, "/status/replicas"), int(d, "/status/availableReplicas"));
    if updated < replicas {
        return Health::new(
            Status::Progressing,
            format!("Waiting for rollout to finish: {updated} out of {replicas} new replicas have been updated..."),
        );
    }
    if total > updated {
        return Health::new(
            Status::Progressing,
            format!("Waiting for rollout to finish: {} old replicas are pending termination...", total - updated),
        );
    }
    if available < updated {
        return Health::new(
            Status::Progressing,
            format!("Waiting for rollout to finish: {available} of {updated} updated replicas are available..."),
        );
    }
    Health::new(Status::Healthy, "")
}

fn statefulset(s: &Value) -> Option<Health> {
    let observed = int(s, "/status/observedGeneration");
    if observed == 0 || int(s, "/metadata/generation") > observed {
        return Health::new(Status::Progressing, "Waiting for statefulset spec update to be observed...");
    }
    let replicas = s.pointer("/spec/replicas").and_then(Value::as_i64).unwrap_or(1);
    let ready = int(s, "/status/readyReplicas");
    if ready < replicas {
        return Health::new(Status::Progressing, format!("Waiting for {} pods to be ready...", replicas - ready));
    }
    let strategy = text(s, "/spec/updateStrategy/type");
    if strategy == "OnDelete" {
        return Health::new(Status::Healthy, format!("statefulset has {ready} ready pods"));
    }
    if (strategy == "RollingUpdate" || strategy.is_empty()) && s.pointer("/spec/updateStrategy/rollingUpdate").is_some()
    {
        let partition = int(s, "/spec/updateStrategy/rollingUpdate/partition");
        let updated = int(s, "/status/updatedReplicas");
        if updated < replicas - partition {
            return Health::new(
                Status::Progressing,
                format!(
                    "Waiting for partitioned roll out to finish: {updated} out of {} new pods have been updated...",
                    replicas - partition
                ),
            );
        }
        return Health::new(
            Status::Healthy,
            format!("partitioned roll out complete: {updated} new pods have been updated..."),
        );
    }
    let (update, current) = (text(s, "/status/updateRevision"), text(s, "/status/currentRevision"));
    if update != current {
        return Health::new(
            Status::Progressing,
            format!(
                "waiting for statefulset rolling update to complete {} pods at revision {update}...",
                int(s, "/status/updatedReplicas")
            ),
        );
    }
    Health::new(
        Status::Healthy,
        format!(
            "statefulset rolling update complete {} pods at revision {current}...",
            int(s, "/status/currentReplicas")
        ),
    )
}

fn daemonset(d: &Value) -> Option<Health> {
    if int(d, "/metadata/generation") > int(d, "/status/observedGeneration") {
        return Health::new(
            Status::Progressing,
            "Waiting for rollout to finish: observed daemon set generation less than desired generation",
        );
    }
    let (desired, updated, available) = (
        int(d, "/status/desiredNumberScheduled"),
        int(d, "/status/updatedNumberScheduled"),
        int(d, "/status/numberAvailable"),
    );
    if text(d, "/spec/updateStrategy/type") == "OnDelete" {
        return Health::new(
            Status::Healthy,
            format!("daemon set {updated} out of {desired} new pods have been updated"),
        );
    }
    let name = text(d, "/metadata/name");
    if updated < desired {
        return Health::new(
            Status::Progressing,
            format!(
                "Waiting for daemon set {name:?} rollout to finish: {updated} out of {desired} new pods have been updated..."
            ),
        );
    }
    if available < desired {
        return Health::new(
            Status::Progressing,
            format!(
                "Waiting for daemon set {name:?} rollout to finish: {available} of {desired} updated pods are available..."
            ),
        );
    }
    Health::new(Status::Healthy, "")
}

fn replicaset(r: &Value) -> Option<Health> {
    if int(r, "/metadata/generation") > int(r, "/status/observedGeneration") {
        return Health::new(
            Status::Progressing,
            "Waiting for rollout to finish: observed replica set generation less than desired generation",
        );
    }
    if let Some(c) = condition(r, "ReplicaFailure").filter(|c| c.get("status").and_then(Value::as_str) == Some("True"))
    {
        return Health::new(Status::Degraded, c.get("message").and_then(Value::as_str).unwrap_or_default());
    }
    let replicas = r.pointer("/spec/replicas").and_then(Value::as_i64).unwrap_or(1);
    let available = int(r, "/status/availableReplicas");
    if available < replicas {
        return Health::new(
            Status::Progressing,
            format!("Waiting for rollout to finish: {available} out of {replicas} new replicas are available..."),
        );
    }
    Health::new(Status::Healthy, "")
}

fn job(j: &Value) -> Option<Health> {
    let message = |c: &Value| c.get("message").and_then(Value::as_str).unwrap_or_default().to_string();
    if let Some(c) = condition(j, "Failed") {
        return Health::new(Status::Degraded, message(c));
    }
    if let Some(c) = condition(j, "Complete") {
        return Health::new(Status::Healthy, message(c));
    }
    if condition(j, "Suspended").is_some_and(|c| c.get("status").and_then(Value::as_str) == Some("True")) {
        return Health::new(Status::Suspended, condition(j, "Suspended").map(message).unwrap_or_default());
    }
    Health::new(Status::Progressing, "")
}

fn pod(p: &Value) -> Option<Health> {
    let message = text(p, "/status/message").to_string();
    let always = matches!(text(p, "/spec/restartPolicy"), "Always" | "");
    let statuses = p.pointer("/status/containerStatuses").and_then(Value::as_array).map_or(&[][..], Vec::as_slice);
    if always {
        let waiting: Vec<&str> = statuses
            .iter()
            .filter(|c| {
                let reason = text(c, "/state/waiting/reason");
                reason.starts_with("Err") || reason.ends_with("Error") || reason.ends_with("BackOff")
            })
            .map(|c| text(c, "/state/waiting/message"))
            .collect();
        if !waiting.is_empty() {
            return Health::new(Status::Degraded, waiting.join(", "));
        }
    }
    match text(p, "/status/phase") {
        "Pending" => Health::new(Status::Progressing, message),
        "Succeeded" => Health::new(Status::Healthy, message),
        "Failed" => Health::new(Status::Degraded, message),
        "Running" if always => {
            let ready = condition(p, "Ready").is_some_and(|c| c.get("status").and_then(Value::as_str) == Some("True"));
            if ready {
                Health::new(Status::Healthy, message)
            } else if statuses.iter().any(|c| c.pointer("/lastState/terminated").is_some()) {
                Health::new(Status::Degraded, message)
            } else {
                Health::new(Status::Progressing, message)
            }
        }
        "Running" => Health::new(Status::Progressing, message),
        _ => Health::new(Status::Unknown, message),
    }
}

fn hpa(h: &Value) -> Option<Health> {
    const DEGRADED: &[(&str, &str)] = &[
        ("AbleToScale", "FailedGetScale"),
        ("AbleToScale", "FailedUpdateScale"),
        ("ScalingActive", "FailedGetResourceMetric"),
        ("ScalingActive", "InvalidSelector"),
    ];
    let parsed: Vec<Value>;
    let conds: &[Value] = if text(h, "/apiVersion") == "autoscaling/v1" && conditions(h).is_empty() {
        parsed = h
            .pointer("/metadata/annotations/autoscaling.alpha.kubernetes.io~1conditions")
            .and_then(Value::as_str)
            .and_then(|s| serde_json::from_str(s).ok())
            .unwrap_or_default();
        &parsed
    } else {
        conditions(h)
    };
    for c in conds {
        let (ty, reason, status) = (text(c, "/type"), text(c, "/reason"), text(c, "/status"));
        let message = text(c, "/message");
        if DEGRADED.contains(&(ty, reason)) {
            return Health::new(Status::Degraded, message);
        }
        if (ty == "AbleToScale" || ty == "ScalingLimited") && status == "True" {
            return Health::new(Status::Healthy, message);
        }
    }
    Health::new(Status::Progressing, "Waiting to Autoscale")
}

/// The Application's health: the worst of its resources' (those with a health check),
/// Healthy when none has one.
pub fn aggregate<'a>(healths: impl IntoIterator<Item = &'a Health>) -> Status {
    healths.into_iter().map(|h| h.status).fold(Status::Healthy, Status::max)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deploy(status: Value) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "generation": 2},
               "spec": {"replicas": 2}, "status": status})
    }

    #[test]
    fn deployments_progress_then_turn_healthy_or_degraded() {
        let h = of(&deploy(json!({"observedGeneration": 1}))).unwrap();
        assert_eq!(h.status, Status::Progressing);
        assert!(h.message.contains("observed deployment generation less than desired"), "{}", h.message);
        let h =
            of(&deploy(json!({"observedGeneration": 2, "replicas": 2, "updatedReplicas": 2, "availableReplicas": 1})))
                .unwrap();
        assert_eq!(
            (h.status, h.message.as_str()),
            (Status::Progressing, "Waiting for rollout to finish: 1 of 2 updated replicas are available...")
        );
        let h =
            of(&deploy(json!({"observedGeneration": 2, "replicas": 3, "updatedReplicas": 2, "availableReplicas": 2})))
                .unwrap();
        assert!(h.message.contains("1 old replicas are pending termination"), "{}", h.message);
        let done =
            deploy(json!({"observedGeneration": 2, "replicas": 2, "updatedReplicas": 2, "availableReplicas": 2}));
        assert_eq!(of(&done).unwrap().status, Status::Healthy);
        let stuck =
            deploy(json!({"observedGeneration": 2, "replicas": 2, "updatedReplicas": 1, "availableReplicas": 1,
            "conditions": [{"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}]}));
        let h = of(&stuck).unwrap();
        assert_eq!(
            (h.status, h.message.as_str()),
            (Status::Degraded, "Deployment \"web\" exceeded its progress deadline")
        );
        let mut paused = done.clone();
        paused["spec"]["paused"] = json!(true);
        assert_eq!(of(&paused).unwrap().status, Status::Suspended);
    }

    #[test]
    fn jobs_services_ingresses_hpas_and_kinds_without_a_check() {
        let job = |c: Value| json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "m"}, "status": {"conditions": c}});
        assert_eq!(of(&job(json!([]))).unwrap().status, Status::Progressing);
        assert_eq!(of(&job(json!([{"type": "Complete", "status": "True"}]))).unwrap().status, Status::Healthy);
        let failed = of(&job(
            json!([{"type": "Failed", "status": "True", "message": "Job has reached the specified backoff limit"}]),
        ))
        .unwrap();
        assert_eq!(
            (failed.status, failed.message.as_str()),
            (Status::Degraded, "Job has reached the specified backoff limit")
        );
        let svc =
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"}, "spec": {"type": "LoadBalancer"}});
        assert_eq!(of(&svc).unwrap().status, Status::Progressing);
        let mut lb = svc.clone();
        lb["status"] = json!({"loadBalancer": {"ingress": [{"ip": "10.0.0.1"}]}});
        assert_eq!(of(&lb).unwrap().status, Status::Healthy);
        let ing = json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "i"}});
        assert_eq!(of(&ing).unwrap().status, Status::Progressing);
        let hpa = json!({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "h"},
            "status": {"conditions": [{"type": "AbleToScale", "status": "True", "reason": "ReadyForNewScale", "message": "ok"}]}});
        assert_eq!(of(&hpa).unwrap().status, Status::Healthy);
        let pvc = json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "p"}, "status": {"phase": "Pending"}});
        assert_eq!(of(&pvc).unwrap().status, Status::Progressing);
        assert!(of(&json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}})).is_none());
        let all = [
            Health { status: Status::Healthy, message: String::new() },
            Health { status: Status::Degraded, message: String::new() },
            Health { status: Status::Progressing, message: String::new() },
        ];
        assert_eq!(aggregate(&all), Status::Degraded);
        assert_eq!(aggregate(&[]), Status::Healthy);
    }
}
