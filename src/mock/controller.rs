//! The simulated controllers of a mock cluster, writing status through the status subresource
//! the way the real ones do, over time:
//! - a Deployment, StatefulSet or DaemonSet with a generation its status has not observed is
//!   first marked as rolling out (generation observed, new replicas short), then complete after
//!   the rollout delay (every replica updated, ready and available): what `kubectl rollout
//!   status` and Argo CD's health checks wait for. A Deployment whose pod template runs an image
//!   the fixture's MockBehaviour lists as unavailable never completes: its Progressing condition
//!   turns to `ProgressDeadlineExceeded` instead;
//! - a Job runs (active), then completes after the rollout delay, or fails (backoff limit
//!   reached) when MockBehaviour names it;
//! - a HorizontalPodAutoscaler reports it is able to scale, an Ingress and a Service of type
//!   LoadBalancer get an address, a PersistentVolumeClaim is bound.
//!
//! What exists when the cluster starts is brought up to date at once (fixtures hold settled
//! clusters); only later changes take the delay.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::store::{EventType, Store};
use super::util;

pub const MANAGER: &str = "kube-controller-manager";
const INGRESS_MANAGER: &str = "nginx-ingress-controller";
const LB_MANAGER: &str = "cloud-controller-manager";

/// Kinds with a rollout: (apiVersion, kind).
const WORKLOADS: &[&str] = &["Deployment", "StatefulSet", "DaemonSet"];
/// Every kind a simulated controller writes the status of.
const KINDS: &[(&str, &str)] = &[
    ("apps/v1", "Deployment"),
    ("apps/v1", "StatefulSet"),
    ("apps/v1", "DaemonSet"),
    ("batch/v1", "Job"),
    ("autoscaling/v2", "HorizontalPodAutoscaler"),
    ("networking.k8s.io/v1", "Ingress"),
    ("v1", "Service"),
    ("v1", "PersistentVolumeClaim"),
];

/// The rollout delay when no MockBehaviour sets one.
pub const DEFAULT_ROLLOUT_DELAY: Duration = Duration::from_millis(300);

/// What the simulated controllers do differently in one cluster, from the fixture's
/// `agentops.dev/v1alpha1 MockBehaviour` documents (never served as objects):
///
/// ```yaml
/// apiVersion: agentops.dev/v1alpha1
/// kind: MockBehaviour
/// metadata: {name: prod-west}
/// spec:
///   rolloutDelayMillis: 300          # how long a rollout or a Job takes (default 300)
///   unavailableImages:               # pods running these never become available
///     - ghcr.io/acme/auth-service:1.15.0
///     - ghcr.io/acme/broken:*        # a trailing * matches any rest
///   failingJobs: [auth-migrate-*]    # Jobs (by name) that fail: backoff limit reached
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Behaviour {
    pub rollout_delay: Duration,
    pub unavailable_images: Vec<String>,
    pub failing_jobs: Vec<String>,
}

impl Default for Behaviour {
    fn default() -> Self {
        Behaviour { rollout_delay: DEFAULT_ROLLOUT_DELAY, unavailable_images: Vec::new(), failing_jobs: Vec::new() }
    }
}

fn matches(pattern: &str, s: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => s.starts_with(prefix),
        None => pattern == s,
    }
}

impl Behaviour {
    /// The behaviour several documents describe together (lists add up, the last delay wins).
    pub fn from_documents(docs: &[Value]) -> Result<Behaviour, String> {
        let mut b = Behaviour::default();
        for d in docs {
            let name = d.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default();
            let spec = d.get("spec").and_then(Value::as_object).cloned().unwrap_or_default();
            for (k, v) in spec {
                let strings = |v: &Value| -> Result<Vec<String>, String> {
                    v.as_array()
                        .map(|a| a.iter().map(|x| x.as_str().map(str::to_string)).collect::<Option<Vec<_>>>())
                        .and_then(|x| x)
                        .ok_or_else(|| format!("MockBehaviour {name:?}: spec.{k} must be a list of strings"))
                };
                match k.as_str() {
                    "rolloutDelayMillis" => {
                        let ms = v.as_u64().ok_or_else(|| {
                            format!(
                                "MockBehaviour {name:?}: spec.rolloutDelayMillis must be a whole number of milliseconds"
                            )
                        })?;
                        b.rollout_delay = Duration::from_millis(ms);
                    }
                    "unavailableImages" => b.unavailable_images.extend(strings(&v)?),
                    "failingJobs" => b.failing_jobs.extend(strings(&v)?),
                    other => {
                        return Err(format!(
                            "MockBehaviour {name:?}: unknown field spec.{other} (known: rolloutDelayMillis, unavailableImages, failingJobs)"
                        ));
                    }
                }
            }
        }
        Ok(b)
    }

    /// Whether a workload's pod template runs an image that never becomes available.
    pub fn never_available(&self, obj: &Value) -> bool {
        let images = ["/spec/template/spec/containers", "/spec/template/spec/initContainers"]
            .iter()
            .filter_map(|p| obj.pointer(p).and_then(Value::as_array))
            .flatten()
            .filter_map(|c| c.get("image").and_then(Value::as_str));
        images.into_iter().any(|i| self.unavailable_images.iter().any(|p| matches(p, i)))
    }

    /// Whether a Job fails.
    pub fn job_fails(&self, name: &str) -> bool {
        self.failing_jobs.iter().any(|p| matches(p, name))
    }
}

fn behaviour(store: &Store) -> Behaviour {
    // checked when the fixture loaded; a test's documents that do not parse count as none
    Behaviour::from_documents(&store.mock_behaviour()).unwrap_or_default()
}

/// A short stable hash of a pod template, in the alphabet of pod-template-hash.
fn template_hash(obj: &Value) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let t = obj.pointer("/spec/template").cloned().unwrap_or(Value::Null);
    let h = blake3::hash(t.to_string().as_bytes());
    h.as_bytes().iter().take(10).map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char).collect()
}

fn condition(old: &Value, ty: &str, reason: &str, message: &str, now: &str) -> Value {
    condition_with(old, ty, "True", reason, message, now)
}

fn condition_with(old: &Value, ty: &str, status: &str, reason: &str, message: &str, now: &str) -> Value {
    let prev = old
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .and_then(|cs| cs.iter().find(|c| c.get("type").and_then(Value::as_str) == Some(ty)));
    let transition = prev
        .filter(|c| c.get("status").and_then(Value::as_str) == Some(status))
        .and_then(|c| c.get("lastTransitionTime").cloned())
        .unwrap_or_else(|| json!(now));
    json!({
        "type": ty,
        "status": status,
        "lastUpdateTime": now,
        "lastTransitionTime": transition,
        "reason": reason,
        "message": message,
    })
}

/// The status a finished rollout of `obj` has, or None when its status already says so.
pub fn desired_status(obj: &Value, nodes: usize) -> Option<Value> {
    let kind = obj.get("kind").and_then(Value::as_str)?;
    let name = obj.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default();
    let generation = obj.pointer("/metadata/generation").and_then(Value::as_i64).unwrap_or(1);
    let replicas = obj.pointer("/spec/replicas").and_then(Value::as_i64).unwrap_or(1);
    let old = obj.get("status").cloned().unwrap_or_else(|| json!({}));
    let num = |k: &str| old.get(k).and_then(Value::as_i64).unwrap_or(0);
    let observed = num("observedGeneration");
    let now = util::now_seconds();
    let positive = |mut status: Value, fields: &[&str], n: i64| {
        for f in fields {
            if n > 0 {
                status[*f] = json!(n);
            }
        }
        status
    };
    match kind {
        "Deployment" => {
            let done = observed == generation
                && num("replicas") == replicas
                && num("updatedReplicas") == replicas
                && num("readyReplicas") == replicas
                && num("availableReplicas") == replicas;
            if done {
                return None;
            }
            let rs = format!("{name}-{}", template_hash(obj));
            let status = positive(
                json!({"observedGeneration": generation}),
                &["replicas", "updatedReplicas", "readyReplicas", "availableReplicas"],
                replicas,
            );
            let mut status = status;
            status["conditions"] = json!([
                condition(obj, "Available", "MinimumReplicasAvailable", "Deployment has minimum availability.", &now),
                condition(
                    obj,
                    "Progressing",
                    "NewReplicaSetAvailable",
                    &format!("ReplicaSet \"{rs}\" has successfully progressed."),
                    &now
                ),
            ]);
            Some(status)
        }
        "StatefulSet" => {
            let rev = format!("{name}-{}", template_hash(obj));
            let done = observed == generation
                && num("replicas") == replicas
                && num("readyReplicas") == replicas
                && num("updatedReplicas") == replicas
                && old.get("updateRevision").and_then(Value::as_str) == Some(rev.as_str())
                && old.get("currentRevision").and_then(Value::as_str) == Some(rev.as_str());
            if done {
                return None;
            }
            let mut status = positive(
                json!({"observedGeneration": generation}),
                &["replicas", "readyReplicas", "currentReplicas", "updatedReplicas", "availableReplicas"],
                replicas,
            );
            if replicas == 0 {
                status["replicas"] = json!(0);
            }
            status["currentRevision"] = json!(rev);
            status["updateRevision"] = json!(rev);
            status["collisionCount"] = json!(0);
            Some(status)
        }
        "DaemonSet" => {
            let n = nodes.max(1) as i64;
            let done = observed == generation
                && num("desiredNumberScheduled") == n
                && num("updatedNumberScheduled") == n
                && num("numberAvailable") == n
                && num("numberReady") == n;
            if done {
                return None;
            }
            Some(json!({
                "currentNumberScheduled": n,
                "desiredNumberScheduled": n,
                "numberAvailable": n,
                "numberMisscheduled": 0,
                "numberReady": n,
                "observedGeneration": generation,
                "updatedNumberScheduled": n,
            }))
        }
        _ => None,
    }
}

/// A rollout under way: the generation observed, one new replica up beside the old ones, none
/// of the new ones available yet.
fn rolling_status(obj: &Value) -> Option<Value> {
    let kind = obj.get("kind").and_then(Value::as_str)?;
    let name = obj.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default();
    let generation = obj.pointer("/metadata/generation").and_then(Value::as_i64).unwrap_or(1);
    let replicas = obj.pointer("/spec/replicas").and_then(Value::as_i64).unwrap_or(1);
    let old = obj.get("status").cloned().unwrap_or_else(|| json!({}));
    let num = |k: &str| old.get(k).and_then(Value::as_i64).unwrap_or(0);
    let now = util::now_seconds();
    match kind {
        "Deployment" => {
            let rs = format!("{name}-{}", template_hash(obj));
            let available = num("availableReplicas").min(replicas);
            let mut status = json!({"observedGeneration": generation});
            let set = |status: &mut Value, k: &str, n: i64| {
                if n > 0 {
                    status[k] = json!(n);
                }
            };
            set(&mut status, "replicas", available + replicas.min(1));
            set(&mut status, "updatedReplicas", replicas.min(1));
            set(&mut status, "readyReplicas", available);
            set(&mut status, "availableReplicas", available);
            if available < replicas {
                status["unavailableReplicas"] = json!(replicas - available);
            }
            let avail = if available >= replicas {
                condition(obj, "Available", "MinimumReplicasAvailable", "Deployment has minimum availability.", &now)
            } else {
                condition_with(
                    obj,
                    "Available",
                    "False",
                    "MinimumReplicasUnavailable",
                    "Deployment does not have minimum availability.",
                    &now,
                )
            };
            status["conditions"] = json!([
                avail,
                condition(
                    obj,
                    "Progressing",
                    "ReplicaSetUpdated",
                    &format!("ReplicaSet \"{rs}\" is progressing."),
                    &now
                ),
            ]);
            Some(status)
        }
        "StatefulSet" => {
            let mut status = json!({"observedGeneration": generation, "replicas": replicas, "updatedReplicas": 0,
                "readyReplicas": num("readyReplicas").min(replicas), "availableReplicas": num("availableReplicas").min(replicas)});
            status["currentRevision"] = old.get("currentRevision").cloned().unwrap_or_else(|| json!(""));
            status["updateRevision"] = json!(format!("{name}-{}", template_hash(obj)));
            status["collisionCount"] = json!(0);
            Some(status)
        }
        "DaemonSet" => {
            let mut status = old.clone();
            status["observedGeneration"] = json!(generation);
            status["updatedNumberScheduled"] = json!(0);
            Some(status)
        }
        _ => None,
    }
}

/// A Deployment whose new pods never become available, once its progress deadline passed.
fn deadline_exceeded(obj: &Value) -> Option<Value> {
    let name = obj.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default();
    let mut status = rolling_status(obj)?;
    let rs = format!("{name}-{}", template_hash(obj));
    let now = util::now_seconds();
    let conditions = status["conditions"].as_array().cloned().unwrap_or_default();
    let mut out: Vec<Value> = conditions.into_iter().filter(|c| c["type"] != "Progressing").collect();
    out.push(condition_with(
        obj,
        "Progressing",
        "False",
        "ProgressDeadlineExceeded",
        &format!("ReplicaSet \"{rs}\" has timed out progressing."),
        &now,
    ));
    status["conditions"] = json!(out);
    Some(status)
}

fn has_deadline_exceeded(obj: &Value) -> bool {
    obj.pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|cs| cs.iter().any(|c| c["type"] == "Progressing" && c["reason"] == "ProgressDeadlineExceeded"))
}

fn job_finished(obj: &Value) -> bool {
    obj.pointer("/status/conditions").and_then(Value::as_array).is_some_and(|cs| {
        cs.iter().any(|c| (c["type"] == "Complete" || c["type"] == "Failed") && c["status"] == "True")
    })
}

fn job_running(obj: &Value) -> Value {
    let started = obj.pointer("/status/startTime").cloned().unwrap_or_else(|| json!(util::now_seconds()));
    json!({"active": 1, "ready": 0, "startTime": started, "terminating": 0, "uncountedTerminatedPods": {}})
}

fn job_done(obj: &Value, fails: bool) -> Value {
    let now = util::now_seconds();
    let started = obj.pointer("/status/startTime").cloned().unwrap_or_else(|| json!(now));
    let cond = |ty: &str, reason: &str, message: &str| {
        json!({"type": ty, "status": "True", "reason": reason, "message": message,
               "lastProbeTime": now, "lastTransitionTime": now})
    };
    if fails {
        let limit = obj.pointer("/spec/backoffLimit").and_then(Value::as_i64).unwrap_or(6);
        let msg = "Job has reached the specified backoff limit";
        json!({"conditions": [cond("FailureTarget", "BackoffLimitExceeded", msg), cond("Failed", "BackoffLimitExceeded", msg)],
               "failed": limit + 1, "ready": 0, "startTime": started, "terminating": 0, "uncountedTerminatedPods": {}})
    } else {
        json!({"conditions": [cond("SuccessCriteriaMet", "CompletionsReached", "Reached expected number of succeeded pods"),
                              cond("Complete", "CompletionsReached", "Reached expected number of succeeded pods")],
               "completionTime": now, "ready": 0, "startTime": started, "succeeded": 1, "terminating": 0,
               "uncountedTerminatedPods": {}})
    }
}

/// The status the other controllers write at once (HPA, ingress, load balancer, volume
/// binding), with the manager writing it; None when it is there already.
fn other_status(obj: &Value) -> Option<(Value, &'static str)> {
    let kind = obj.get("kind").and_then(Value::as_str)?;
    let lb_ingress =
        |o: &Value| o.pointer("/status/loadBalancer/ingress").and_then(Value::as_array).is_some_and(|a| !a.is_empty());
    let now = util::now_seconds();
    match kind {
        "HorizontalPodAutoscaler" => {
            if obj.pointer("/status/conditions").and_then(Value::as_array).is_some_and(|c| !c.is_empty()) {
                return None;
            }
            let n = obj.pointer("/spec/minReplicas").and_then(Value::as_i64).unwrap_or(1);
            let c = |ty: &str, status: &str, reason: &str, message: &str| json!({"type": ty, "status": status, "reason": reason, "message": message, "lastTransitionTime": now});
            Some((
                json!({"currentReplicas": n, "desiredReplicas": n, "conditions": [
                    c("AbleToScale", "True", "ReadyForNewScale", "recommended size matches current size"),
                    c("ScalingActive", "True", "ValidMetricFound", "the HPA was able to successfully calculate a replica count from cpu resource utilization (percentage of request)"),
                    c("ScalingLimited", "False", "DesiredWithinRange", "the desired count is within the acceptable range"),
                ]}),
                MANAGER,
            ))
        }
        "Ingress" if !lb_ingress(obj) => {
            Some((json!({"loadBalancer": {"ingress": [{"ip": "203.0.113.10"}]}}), INGRESS_MANAGER))
        }
        "Service" if obj.pointer("/spec/type").and_then(Value::as_str) == Some("LoadBalancer") && !lb_ingress(obj) => {
            Some((json!({"loadBalancer": {"ingress": [{"ip": "203.0.113.20"}]}}), LB_MANAGER))
        }
        "PersistentVolumeClaim" if obj.pointer("/status/phase").and_then(Value::as_str) != Some("Bound") => {
            let mut status = json!({"phase": "Bound"});
            if let Some(m) = obj.pointer("/spec/accessModes") {
                status["accessModes"] = m.clone();
            }
            if let Some(s) = obj.pointer("/spec/resources/requests/storage") {
                status["capacity"] = json!({"storage": s});
            }
            Some((status, MANAGER))
        }
        _ => None,
    }
}

fn write_status(store: &Store, obj: &Value, status: Value, manager: &str) {
    let s = |p: &str| obj.pointer(p).and_then(Value::as_str).unwrap_or_default();
    let ns = obj.pointer("/metadata/namespace").and_then(Value::as_str);
    if let Err(e) = store.update_status(s("/apiVersion"), s("/kind"), ns, s("/metadata/name"), status, manager) {
        // Deleted meanwhile, most likely; the next event brings it back if not.
        if e.code != 404 {
            tracing::warn!(kind = %s("/kind"), name = %s("/metadata/name"), error = %e, "mock cluster controller cannot update status");
        }
    }
}

/// Rollouts and Jobs waiting for their delay, by (kind, namespace, name, uid, generation).
type Pending = Arc<Mutex<HashSet<(String, String, String, String, i64)>>>;

fn key_of(obj: &Value) -> (String, String, String, String, i64) {
    let s = |p: &str| obj.pointer(p).and_then(Value::as_str).unwrap_or_default().to_string();
    let generation = obj.pointer("/metadata/generation").and_then(Value::as_i64).unwrap_or(0);
    (s("/kind"), s("/metadata/namespace"), s("/metadata/name"), s("/metadata/uid"), generation)
}

/// The stored object `obj` names, as it is now.
fn current(store: &Store, obj: &Value) -> Option<Value> {
    let s = |p: &str| obj.pointer(p).and_then(Value::as_str).unwrap_or_default();
    let ns = obj.pointer("/metadata/namespace").and_then(Value::as_str);
    store.get(s("/apiVersion"), s("/kind"), ns, s("/metadata/name"))
}

/// Where the rollout of a workload (or a Job's run) ends.
fn finished_status(obj: &Value, b: &Behaviour, nodes: usize) -> Option<Value> {
    match obj.get("kind").and_then(Value::as_str) {
        Some("Job") => (!job_finished(obj)).then(|| {
            let name = obj.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default();
            job_done(obj, b.job_fails(name))
        }),
        Some("Deployment") if b.never_available(obj) => (!has_deadline_exceeded(obj)
            || obj.pointer("/status/observedGeneration") != obj.pointer("/metadata/generation"))
        .then(|| deadline_exceeded(obj))
        .flatten(),
        _ => desired_status(obj, nodes),
    }
}

/// One object's controller: at once (`immediate`, or no delay), or in two steps over the
/// rollout delay.
fn reconcile(store: &Store, obj: &Value, pending: &Pending, immediate: bool) {
    if let Some((status, manager)) = other_status(obj) {
        write_status(store, obj, status, manager);
        return;
    }
    let kind = obj.get("kind").and_then(Value::as_str).unwrap_or_default();
    if !WORKLOADS.contains(&kind) && kind != "Job" {
        return;
    }
    let b = behaviour(store);
    let nodes = store.list("v1", "Node", None).len();
    let Some(finished) = finished_status(obj, &b, nodes) else {
        return;
    };
    if immediate || b.rollout_delay.is_zero() {
        write_status(store, obj, finished, MANAGER);
        return;
    }
    let key = key_of(obj);
    if let Ok(mut p) = pending.lock()
        && !p.insert(key.clone())
    {
        return; // its delay is already running
    }
    let started = if kind == "Job" {
        obj.pointer("/status/startTime").is_some()
    } else {
        obj.pointer("/status/observedGeneration").and_then(Value::as_i64) == Some(key.4)
    };
    if !started {
        let status = if kind == "Job" { Some(job_running(obj)) } else { rolling_status(obj) };
        if let Some(status) = status {
            write_status(store, obj, status, MANAGER);
        }
    }
    let (store, obj, pending) = (store.clone(), obj.clone(), pending.clone());
    tokio::spawn(async move {
        tokio::time::sleep(b.rollout_delay).await;
        if let Ok(mut p) = pending.lock() {
            p.remove(&key);
        }
        let Some(now) = current(&store, &obj) else { return };
        if key_of(&now) != key {
            return; // changed meanwhile: its own event started a new delay
        }
        let nodes = store.list("v1", "Node", None).len();
        if let Some(status) = finished_status(&now, &behaviour(&store), nodes) {
            write_status(&store, &now, status, MANAGER);
        }
    });
}

fn all_objects(store: &Store) -> Vec<Value> {
    KINDS.iter().flat_map(|(av, kind)| store.list(av, kind, None)).collect()
}

/// Brings every object's status up to date at once (when the cluster starts).
pub fn reconcile_all(store: &Store) {
    let pending = Pending::default();
    for obj in all_objects(store) {
        reconcile(store, &obj, &pending, true);
    }
}

/// Runs the controllers until `shutdown` turns true.
pub fn spawn(store: Store, mut shutdown: watch::Receiver<bool>) -> JoinHandle<()> {
    let mut events = store.subscribe();
    let pending = Pending::default();
    tokio::spawn(async move {
        reconcile_all(&store);
        loop {
            tokio::select! {
                ev = events.recv() => match ev {
                    Ok(ev) => {
                        if ev.event != EventType::Deleted
                            && KINDS.iter().any(|(av, k)| ev.is_of(super::resources::split_api_version(av).0, k))
                        {
                            // The event's object may be stale by now: act on the stored one.
                            if let Some(now) = current(&store, &ev.object) {
                                reconcile(&store, &now, &pending, false);
                            }
                        }
                    }
                    Err(RecvError::Lagged(_)) => {
                        for obj in all_objects(&store) {
                            reconcile(&store, &obj, &pending, false);
                        }
                    }
                    Err(RecvError::Closed) => break,
                },
                _ = shutdown.changed() => break,
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn behaviour_documents() {
        let doc = json!({"apiVersion": "agentops.dev/v1alpha1", "kind": "MockBehaviour", "metadata": {"name": "x"},
            "spec": {"rolloutDelayMillis": 50, "unavailableImages": ["ghcr.io/acme/a:2.0", "ghcr.io/acme/b:*"], "failingJobs": ["migrate-*"]}});
        let b = Behaviour::from_documents(&[doc]).unwrap();
        assert_eq!(b.rollout_delay, Duration::from_millis(50));
        let d = |image: &str| json!({"spec": {"template": {"spec": {"containers": [{"name": "a", "image": image}]}}}});
        assert!(b.never_available(&d("ghcr.io/acme/a:2.0")));
        assert!(b.never_available(&d("ghcr.io/acme/b:anything")));
        assert!(!b.never_available(&d("ghcr.io/acme/a:1.0")));
        assert!(b.job_fails("migrate-v2") && !b.job_fails("seed"));
        let bad = json!({"metadata": {"name": "x"}, "spec": {"rolloutDelay": 5}});
        assert!(Behaviour::from_documents(&[bad]).unwrap_err().contains("unknown field spec.rolloutDelay"));
        assert_eq!(Behaviour::from_documents(&[]).unwrap().rollout_delay, DEFAULT_ROLLOUT_DELAY);
    }

    #[test]
    fn a_rollout_is_first_short_then_complete_or_past_its_deadline() {
        let d = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "generation": 2},
            "spec": {"replicas": 2, "template": {"spec": {"containers": [{"name": "a", "image": "x:2"}]}}},
            "status": {"observedGeneration": 1, "replicas": 2, "updatedReplicas": 2, "availableReplicas": 2}});
        let mut rolling = d.clone();
        rolling["status"] = rolling_status(&d).unwrap();
        let h = super::super::health::of(&rolling).unwrap();
        assert_eq!(h.status, super::super::health::Status::Progressing, "{h:?}");
        let mut done = rolling.clone();
        done["status"] = finished_status(&rolling, &Behaviour::default(), 1).unwrap();
        assert_eq!(super::super::health::of(&done).unwrap().status, super::super::health::Status::Healthy);
        let b = Behaviour { unavailable_images: vec!["x:2".into()], ..Behaviour::default() };
        let mut stuck = rolling.clone();
        stuck["status"] = finished_status(&rolling, &b, 1).unwrap();
        assert_eq!(super::super::health::of(&stuck).unwrap().status, super::super::health::Status::Degraded);
        assert!(finished_status(&stuck, &b, 1).is_none(), "a deadline exceeded is where it stays");
    }
}
