//! The simulated workload controllers of a mock cluster: whenever a Deployment, StatefulSet or
//! DaemonSet has a generation its status has not observed, the rollout is marked complete at
//! once (every replica updated, ready and available), written through the status subresource as
//! `kube-controller-manager`. That is what `kubectl rollout status` waits for.

use serde_json::{Value, json};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::store::{EventType, Store};
use super::util;

pub const MANAGER: &str = "kube-controller-manager";

const KINDS: &[&str] = &["Deployment", "StatefulSet", "DaemonSet"];

/// A short stable hash of a pod template, in the alphabet of pod-template-hash.
fn template_hash(obj: &Value) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let t = obj.pointer("/spec/template").cloned().unwrap_or(Value::Null);
    let h = blake3::hash(t.to_string().as_bytes());
    h.as_bytes().iter().take(10).map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char).collect()
}

fn condition(old: &Value, ty: &str, reason: &str, message: &str, now: &str) -> Value {
    let prev = old
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .and_then(|cs| cs.iter().find(|c| c.get("type").and_then(Value::as_str) == Some(ty)));
    let transition = prev
        .filter(|c| c.get("status").and_then(Value::as_str) == Some("True"))
        .and_then(|c| c.get("lastTransitionTime").cloned())
        .unwrap_or_else(|| json!(now));
    json!({
        "type": ty,
        "status": "True",
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

fn reconcile(store: &Store, obj: &Value) {
    let nodes = store.list("v1", "Node", None).len();
    let Some(status) = desired_status(obj, nodes) else {
        return;
    };
    let s = |p: &str| obj.pointer(p).and_then(Value::as_str).unwrap_or_default();
    let ns = obj.pointer("/metadata/namespace").and_then(Value::as_str);
    if let Err(e) = store.update_status(s("/apiVersion"), s("/kind"), ns, s("/metadata/name"), status, MANAGER) {
        // Deleted meanwhile, most likely; the next event brings it back if not.
        if e.code != 404 {
            eprintln!("agentops mock-cluster: controller cannot update {}/{}: {e}", s("/kind"), s("/metadata/name"));
        }
    }
}

/// Brings every workload's status up to date (at start, and after missed events).
pub fn reconcile_all(store: &Store) {
    for kind in KINDS {
        for obj in store.list("apps/v1", kind, None) {
            reconcile(store, &obj);
        }
    }
}

/// Runs the controllers until `shutdown` turns true.
pub fn spawn(store: Store, mut shutdown: watch::Receiver<bool>) -> JoinHandle<()> {
    let mut events = store.subscribe();
    tokio::spawn(async move {
        reconcile_all(&store);
        loop {
            tokio::select! {
                ev = events.recv() => match ev {
                    Ok(ev) => {
                        if ev.event != EventType::Deleted && KINDS.iter().any(|k| ev.is_of("apps", k)) {
                            // The event's object may be stale by now: act on the stored one.
                            let s = |p: &str| ev.object.pointer(p).and_then(Value::as_str).unwrap_or_default().to_string();
                            let ns = ev.object.pointer("/metadata/namespace").and_then(Value::as_str);
                            if let Some(current) = store.get("apps/v1", &s("/kind"), ns, &s("/metadata/name")) {
                                reconcile(&store, &current);
                            }
                        }
                    }
                    Err(RecvError::Lagged(_)) => reconcile_all(&store),
                    Err(RecvError::Closed) => break,
                },
                _ = shutdown.changed() => break,
            }
        }
    })
}
