//! Simulated Argo CD for mock clusters. With a GitOps repo (a git repository), an
//! Application whose `operation.sync` is written (the way `argocd --core` does) is synced
//! the way Argo CD's controller (gitops-engine) syncs it:
//! - its source path is rendered with kustomize at the requested revision (else
//!   `targetRevision`); namespaced objects without a namespace get the destination's, every
//!   object the tracking label `app.kubernetes.io/instance: <app>`;
//! - sync options come from the operation's `syncOptions` when it has them (they replace the
//!   Application's for that operation), else from `spec.syncPolicy.syncOptions`, and per object
//!   from the `argocd.argoproj.io/sync-options` annotation;
//! - each object is applied with kubectl's client-side apply (a three-way merge against the
//!   last-applied-configuration annotation, [`crate::k8s::apply`]) as `argocd-controller`, or
//!   with forced server-side apply (`ServerSideApply=true`), or replaced (`Replace=true`);
//! - live objects tracked for the Application that the render no longer has are pruned when
//!   `automated.prune` or the operation's `prune` is set, else reported as requiring pruning
//!   (and the Application is OutOfSync);
//! - tasks run by phase (PreSync, Sync, PostSync hooks, `argocd.argoproj.io/hook`), wave
//!   (`argocd.argoproj.io/sync-wave`), kind and name; a later step waits until the earlier
//!   one is healthy, a failed hook or resource fails the operation and starts the SyncFail hooks;
//! - health comes from live status ([`super::health`]) and keeps being refreshed after the
//!   operation until it settles, as the controller's refreshes do.
//!
//! Then `status.sync`, `status.health`, `status.resources`, `status.operationState` and
//! `status.history` are set and `operation` is cleared.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::health::{self, Health, Status};
use super::resources::Resource;
use super::store::{EventType, PatchType, Store, WriteOptions};
use crate::k8s::apply as csa;
use crate::kustomize::Kustomize;

/// Field manager of the simulated controller, as Argo CD's own (for client-side and
/// server-side apply alike).
pub const MANAGER: &str = "argocd-controller";
const APP_MANAGER: &str = "argocd-application-controller";
/// The label Argo CD's default (label) tracking puts on every object it deploys.
pub const TRACKING_LABEL: &str = "app.kubernetes.io/instance";
pub const SYNC_OPTIONS: &str = "argocd.argoproj.io/sync-options";
pub const HOOK: &str = "argocd.argoproj.io/hook";
pub const HOOK_DELETE_POLICY: &str = "argocd.argoproj.io/hook-delete-policy";
pub const SYNC_WAVE: &str = "argocd.argoproj.io/sync-wave";
/// How often a waiting sync looks at its resources again.
const POLL: Duration = Duration::from_millis(50);
/// How long health is refreshed after an operation before it counts as settled anyway.
const REFRESH_FOR: Duration = Duration::from_secs(600);

/// A cluster the simulated controller can deploy to.
#[derive(Clone)]
pub struct Target {
    pub name: String,
    pub url: String,
    pub store: Store,
}

/// Applications with an operation under way, by (cluster index, namespace, name).
type Running = Arc<Mutex<HashSet<(usize, String, String)>>>;

fn has_operation(app: &Value) -> bool {
    app.get("operation").is_some_and(|o| !o.is_null())
}

fn app_key(i: usize, app: &Value) -> (usize, String, String) {
    let s = |p: &str| app.pointer(p).and_then(Value::as_str).unwrap_or_default().to_string();
    (i, s("/metadata/namespace"), s("/metadata/name"))
}

/// Starts the controller: every cluster's Applications are watched, and each one whose
/// `operation` is set (now or later) is synced, each Application on its own task (one waiting
/// for health holds up no other). Runs until the runtime stops.
pub fn spawn(targets: Vec<Target>, renderer: Arc<Renderer>) -> Vec<tokio::task::JoinHandle<()>> {
    let targets = Arc::new(targets);
    let running = Running::default();
    (0..targets.len())
        .map(|i| {
            let targets = targets.clone();
            let renderer = renderer.clone();
            let running = running.clone();
            tokio::spawn(async move {
                let home = &targets[i];
                let mut rx = home.store.subscribe();
                for app in home.store.list("argoproj.io/v1alpha1", "Application", None) {
                    if has_operation(&app) {
                        start(&targets, i, &renderer, &running, app);
                    }
                }
                loop {
                    match rx.recv().await {
                        Ok(ev) => {
                            if ev.event != EventType::Deleted
                                && ev.is_of("argoproj.io", "Application")
                                && has_operation(&ev.object)
                            {
                                start(&targets, i, &renderer, &running, ev.object);
                            }
                        }
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                            for app in home.store.list("argoproj.io/v1alpha1", "Application", None) {
                                if has_operation(&app) {
                                    start(&targets, i, &renderer, &running, app);
                                }
                            }
                        }
                        Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
                    }
                }
            })
        })
        .collect()
}

/// Runs an Application's operation unless one runs already; after it, any operation written
/// meanwhile runs too.
fn start(targets: &Arc<Vec<Target>>, i: usize, renderer: &Arc<Renderer>, running: &Running, app: Value) {
    let key = app_key(i, &app);
    if !running.lock().map(|mut r| r.insert(key.clone())).unwrap_or(false) {
        return;
    }
    let (targets, renderer, running) = (targets.clone(), renderer.clone(), running.clone());
    tokio::spawn(async move {
        loop {
            // Act on the Application as it is now: an operation already carried out is not run twice.
            if let Some(app) = current(&targets[i].store, &app).filter(has_operation) {
                let refresh = sync(&targets, i, &renderer, &app).await;
                if let Ok(mut r) = running.lock() {
                    r.remove(&key);
                }
                let again = current(&targets[i].store, &app).filter(has_operation).is_some()
                    && running.lock().map(|mut r| r.insert(key.clone())).unwrap_or(false);
                if again {
                    continue;
                }
                if let Some(refresh) = refresh {
                    refresh.run(&running, &key).await;
                }
                return;
            }
            if let Ok(mut r) = running.lock() {
                r.remove(&key);
            }
            return;
        }
    });
}

/// The stored Application `app` names, as it is now.
fn current(store: &Store, app: &Value) -> Option<Value> {
    let name = app.pointer("/metadata/name").and_then(Value::as_str)?;
    let ns = app.pointer("/metadata/namespace").and_then(Value::as_str);
    store.get("argoproj.io/v1alpha1", "Application", ns, name)
}

/// Changes the stored Application with `f`, retrying when it changed meanwhile.
fn update_app(store: &Store, app: &Value, f: impl Fn(&mut Value)) {
    let Some(r) = store.resources().by_api_version_kind("argoproj.io/v1alpha1", "Application").cloned() else {
        return;
    };
    let name = app.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default();
    let ns = app.pointer("/metadata/namespace").and_then(Value::as_str);
    let w = WriteOptions { manager: APP_MANAGER.into(), ..WriteOptions::default() };
    for _ in 0..20 {
        let Some(mut now) = current(store, app) else { return };
        f(&mut now);
        match store.replace(&r, ns, name, now, &w) {
            Err(e) if e.code == 409 => continue,
            _ => return,
        }
    }
}

// ---- sync options --------------------------------------------------------------------------

/// The sync options of one operation: its own when it has them, else the Application's.
pub fn operation_options(app: &Value) -> Vec<String> {
    let list = |v: Option<&Value>| -> Option<Vec<String>> {
        v.and_then(Value::as_array).map(|a| a.iter().filter_map(Value::as_str).map(|s| s.trim().to_string()).collect())
    };
    list(app.pointer("/operation/sync/syncOptions"))
        .or_else(|| list(app.pointer("/spec/syncPolicy/syncOptions")))
        .unwrap_or_default()
}

/// The comma-separated `argocd.argoproj.io/sync-options` of an object.
fn annotation_options(obj: &Value) -> Vec<String> {
    annotation(obj, SYNC_OPTIONS)
        .map(|s| s.split(',').map(str::trim).filter(|x| !x.is_empty()).map(str::to_string).collect())
        .unwrap_or_default()
}

fn annotation<'a>(obj: &'a Value, key: &str) -> Option<&'a str> {
    obj.pointer("/metadata/annotations").and_then(|a| a.get(key)).and_then(Value::as_str)
}

/// How one object is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApplyMode {
    /// kubectl's client-side apply: a three-way patch against last-applied (the default).
    ClientSide,
    /// Server-side apply with conflicts forced (`ServerSideApply=true`).
    ServerSide,
    /// Create, or PUT the whole object (`Replace=true`).
    Replace,
}

/// The mode for one object: `Replace=true` wins over server-side apply; the object's
/// annotation can turn server-side apply on, or off (`ServerSideApply=false`).
pub fn mode_for(options: &[String], obj: &Value) -> ApplyMode {
    let own = annotation_options(obj);
    let has = |list: &[String], o: &str| list.iter().any(|x| x == o);
    if has(options, "Replace=true") || has(&own, "Replace=true") {
        ApplyMode::Replace
    } else if has(&own, "ServerSideApply=true")
        || (has(options, "ServerSideApply=true") && !has(&own, "ServerSideApply=false"))
    {
        ApplyMode::ServerSide
    } else {
        ApplyMode::ClientSide
    }
}

/// `deployment.apps/web`, `service/web`: how kubectl's printer names an object.
fn printed(r: &Resource, name: &str) -> String {
    let kind = r.kind.to_lowercase();
    if r.group.is_empty() { format!("{kind}/{name}") } else { format!("{kind}.{}/{name}", r.group) }
}

/// Writes one object the way `mode` says, as `manager`; the word kubectl prints for it
/// (`created`, `configured`, `unchanged`, `serverside-applied`, `replaced`).
pub fn apply_object(store: &Store, obj: &Value, mode: ApplyMode, manager: &str) -> Result<&'static str, String> {
    let s = |p: &str| obj.pointer(p).and_then(Value::as_str).unwrap_or_default();
    let (av, kind, name) = (s("/apiVersion"), s("/kind"), s("/metadata/name"));
    let r = store
        .resource(av, kind)
        .ok_or_else(|| format!("the server could not find the requested resource: no {av} {kind} in this cluster"))?;
    let ns = r.namespaced.then(|| match s("/metadata/namespace") {
        "" => "default".to_string(),
        ns => ns.to_string(),
    });
    let ns = ns.as_deref();
    let w = WriteOptions { manager: manager.into(), force: mode == ApplyMode::ServerSide, ..WriteOptions::default() };
    let live = store.get_object(&r, ns, name).ok();
    let err = |e: super::store::StoreError| e.message;
    match (mode, live) {
        (ApplyMode::ServerSide, _) => {
            store.patch(&r, ns, name, PatchType::Apply, obj, &w).map_err(err)?;
            Ok("serverside-applied")
        }
        (ApplyMode::ClientSide, None) => {
            store.create(&r, ns, csa::with_last_applied(obj), &w).map_err(err)?;
            Ok("created")
        }
        (ApplyMode::Replace, None) => {
            store.create(&r, ns, obj.clone(), &w).map_err(err)?;
            Ok("created")
        }
        (ApplyMode::Replace, Some(_)) => {
            let mut o = obj.clone();
            if let Some(m) = o.get_mut("metadata").and_then(Value::as_object_mut) {
                m.remove("resourceVersion");
            }
            store.replace(&r, ns, name, o, &w).map_err(err)?;
            Ok("replaced")
        }
        (ApplyMode::ClientSide, Some(live)) => {
            let original = csa::last_applied(&live);
            let modified = csa::with_last_applied(obj);
            let (patch, pt) = if r.custom {
                (csa::three_way_json_merge(original.as_ref(), &modified, &live), PatchType::Merge)
            } else {
                (csa::three_way_strategic(&r.kind, original.as_ref(), &modified, &live), PatchType::Strategic)
            };
            if patch.as_object().is_some_and(|m| m.is_empty()) {
                return Ok("unchanged");
            }
            store.patch(&r, ns, name, pt, &patch, &w).map_err(err)?;
            Ok("configured")
        }
    }
}

// ---- the tasks of a sync -------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Phase {
    PreSync,
    Sync,
    PostSync,
    SyncFail,
}

impl Phase {
    fn as_str(self) -> &'static str {
        match self {
            Phase::PreSync => "PreSync",
            Phase::Sync => "Sync",
            Phase::PostSync => "PostSync",
            Phase::SyncFail => "SyncFail",
        }
    }

    fn parse(s: &str) -> Option<Phase> {
        match s.trim() {
            "PreSync" => Some(Phase::PreSync),
            "Sync" => Some(Phase::Sync),
            "PostSync" => Some(Phase::PostSync),
            "SyncFail" => Some(Phase::SyncFail),
            _ => None,
        }
    }
}

/// gitops-engine's kind order inside one wave; other kinds (custom resources) come after.
const KIND_ORDER: &[&str] = &[
    "Namespace",
    "NetworkPolicy",
    "ResourceQuota",
    "LimitRange",
    "PodSecurityPolicy",
    "PodDisruptionBudget",
    "ServiceAccount",
    "Secret",
    "SecretList",
    "ConfigMap",
    "StorageClass",
    "PersistentVolume",
    "PersistentVolumeClaim",
    "CustomResourceDefinition",
    "ClusterRole",
    "ClusterRoleList",
    "ClusterRoleBinding",
    "ClusterRoleBindingList",
    "Role",
    "RoleList",
    "RoleBinding",
    "RoleBindingList",
    "Service",
    "DaemonSet",
    "Pod",
    "ReplicationController",
    "ReplicaSet",
    "Deployment",
    "HorizontalPodAutoscaler",
    "StatefulSet",
    "Job",
    "CronJob",
    "IngressClass",
    "Ingress",
    "APIService",
];

fn kind_rank(kind: &str) -> usize {
    KIND_ORDER.iter().position(|k| *k == kind).unwrap_or(KIND_ORDER.len())
}

fn wave_of(obj: &Value) -> i64 {
    annotation(obj, SYNC_WAVE).and_then(|w| w.trim().parse().ok()).unwrap_or(0)
}

/// How a task ends up in the operation's results.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TaskPhase {
    Pending,
    Running,
    Succeeded,
    Failed,
}

impl TaskPhase {
    fn as_str(self) -> &'static str {
        match self {
            TaskPhase::Pending => "",
            TaskPhase::Running => "Running",
            TaskPhase::Succeeded => "Succeeded",
            TaskPhase::Failed => "Failed",
        }
    }
}

#[derive(Debug, Clone)]
struct Task {
    obj: Value,
    r: Resource,
    phase: Phase,
    wave: i64,
    hook: bool,
    prune: bool,
    /// Synced, SyncFailed, Pruned or PruneSkipped, once run.
    status: &'static str,
    message: String,
    state: TaskPhase,
}

impl Task {
    fn name(&self) -> &str {
        self.obj.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default()
    }

    fn namespace(&self) -> Option<&str> {
        self.obj.pointer("/metadata/namespace").and_then(Value::as_str).filter(|_| self.r.namespaced)
    }

    /// `<group>/<kind>/<name>`, as the operation's waiting messages name it.
    fn id(&self) -> String {
        format!("{}/{}/{}", self.r.group, self.r.kind, self.name())
    }

    fn key(&self) -> (String, String, String, String) {
        (
            self.r.group.clone(),
            self.r.kind.clone(),
            self.namespace().unwrap_or_default().to_string(),
            self.name().to_string(),
        )
    }

    fn live(&self, store: &Store) -> Option<Value> {
        store.get_object(&self.r, self.namespace(), self.name()).ok()
    }

    fn result(&self) -> Value {
        let mut v = json!({
            "group": self.r.group, "version": self.r.version, "kind": self.r.kind,
            "namespace": self.namespace().unwrap_or_default(), "name": self.name(),
            "status": self.status, "message": self.message,
            "hookPhase": self.state.as_str(), "syncPhase": self.phase.as_str(),
        });
        if self.hook {
            v["hookType"] = json!(self.phase.as_str());
        }
        v
    }

    fn delete_policies(&self) -> Vec<String> {
        let p: Vec<String> = annotation(&self.obj, HOOK_DELETE_POLICY)
            .map(|s| s.split(',').map(str::trim).filter(|x| !x.is_empty()).map(str::to_string).collect())
            .unwrap_or_default();
        if p.is_empty() { vec!["BeforeHookCreation".into()] } else { p }
    }
}

/// What one sync works with.
struct Plan {
    tasks: Vec<Task>,
    /// The non-hook objects the render holds: what health and sync status are about.
    targets: Vec<(Resource, Value)>,
    errors: Vec<String>,
}

/// The target objects as Argo CD sends them: namespace filled in, tracking label set.
fn prepare(
    app_name: &str,
    dest_ns: Option<&str>,
    store: &Store,
    rendered: &[Value],
    revision: &str,
    started_unix: i64,
) -> Plan {
    let mut plan = Plan { tasks: Vec::new(), targets: Vec::new(), errors: Vec::new() };
    for obj in rendered {
        let mut obj = obj.clone();
        let s = |o: &Value, p: &str| o.pointer(p).and_then(Value::as_str).unwrap_or_default().to_string();
        let (av, kind) = (s(&obj, "/apiVersion"), s(&obj, "/kind"));
        let Some(r) = store.resource(&av, &kind) else {
            plan.errors.push(format!(
                "{kind}/{}: the server could not find the requested resource ({av} {kind})",
                s(&obj, "/metadata/name")
            ));
            continue;
        };
        if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
            if r.namespaced
                && meta.get("namespace").and_then(Value::as_str).is_none_or(str::is_empty)
                && let Some(ns) = dest_ns
            {
                meta.insert("namespace".into(), json!(ns));
            }
            if kind != "CustomResourceDefinition" {
                let labels = meta.entry("labels").or_insert_with(|| json!({}));
                if let Some(l) = labels.as_object_mut() {
                    l.insert(TRACKING_LABEL.into(), json!(app_name));
                }
            }
        }
        let hooks: Vec<String> = annotation(&obj, HOOK)
            .map(|h| h.split(',').map(|x| x.trim().to_string()).filter(|x| !x.is_empty()).collect())
            .unwrap_or_default();
        if hooks.iter().any(|h| h == "Skip") {
            continue;
        }
        let wave = wave_of(&obj);
        let phases: Vec<Phase> = hooks.iter().filter_map(|h| Phase::parse(h)).collect();
        if phases.is_empty() {
            plan.targets.push((r.clone(), obj.clone()));
            plan.tasks.push(Task {
                obj,
                r,
                phase: Phase::Sync,
                wave,
                hook: false,
                prune: false,
                status: "",
                message: String::new(),
                state: TaskPhase::Pending,
            });
            continue;
        }
        for phase in phases {
            let mut hook = obj.clone();
            if s(&hook, "/metadata/name").is_empty() {
                // kubectl apply refuses generateName: Argo CD names hooks itself
                let prefix = s(&hook, "/metadata/generateName");
                let name = format!("{prefix}{}-{}-{started_unix}", &revision[..revision.len().min(7)], phase.as_str())
                    .to_lowercase();
                if let Some(meta) = hook.get_mut("metadata").and_then(Value::as_object_mut) {
                    meta.remove("generateName");
                    meta.insert("name".into(), json!(name));
                }
            }
            plan.tasks.push(Task {
                obj: hook,
                r: r.clone(),
                phase,
                wave,
                hook: true,
                prune: false,
                status: "",
                message: String::new(),
                state: TaskPhase::Pending,
            });
        }
    }
    plan
}

/// Live objects tracked for the Application (the label, no owner, not a hook) that the render
/// no longer has.
fn prune_candidates(store: &Store, app_name: &str, plan: &Plan) -> Vec<Task> {
    let wanted: HashSet<(String, String, String, String)> =
        plan.tasks.iter().filter(|t| !t.hook).map(Task::key).collect();
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for r in store.resources().all() {
        if !seen.insert((r.group.clone(), r.kind.clone())) || r.kind == "Application" {
            continue;
        }
        for live in store.list(&r.api_version(), &r.kind, None) {
            let tracked = live.pointer("/metadata/labels").and_then(|l| l.get(TRACKING_LABEL)).and_then(Value::as_str)
                == Some(app_name);
            let owned =
                live.pointer("/metadata/ownerReferences").and_then(Value::as_array).is_some_and(|o| !o.is_empty());
            if !tracked || owned || annotation(&live, HOOK).is_some() {
                continue;
            }
            let task = Task {
                wave: wave_of(&live),
                obj: live,
                r: r.clone(),
                phase: Phase::Sync,
                hook: false,
                prune: true,
                status: "",
                message: String::new(),
                state: TaskPhase::Pending,
            };
            if !wanted.contains(&task.key()) {
                out.push(task);
            }
        }
    }
    // prune waves are mirrored: the highest wave is pruned first
    let mut waves: Vec<i64> = out.iter().map(|t| t.wave).collect();
    waves.sort_unstable();
    waves.dedup();
    let mirror: HashMap<i64, i64> = waves.iter().zip(waves.iter().rev()).map(|(a, b)| (*a, *b)).collect();
    for t in &mut out {
        t.wave = mirror.get(&t.wave).copied().unwrap_or(t.wave);
    }
    out
}

/// The order gitops-engine runs tasks in: phase, wave, prunes first, kind, name.
fn sort_tasks(tasks: &mut [Task]) {
    tasks.sort_by(|a, b| {
        (a.phase, a.wave, !a.prune, kind_rank(&a.r.kind), a.name()).cmp(&(
            b.phase,
            b.wave,
            !b.prune,
            kind_rank(&b.r.kind),
            b.name(),
        ))
    });
}

/// One task's progress after it ran: hooks by their health (no health check: done), other
/// resources by theirs (Progressing, Suspended and Missing keep it running).
fn assess(task: &Task, store: &Store) -> (TaskPhase, String) {
    let Some(live) = task.live(store) else {
        return (TaskPhase::Running, String::new());
    };
    match health::of(&live) {
        None if task.hook => (TaskPhase::Succeeded, format!("{} created", task.name())),
        None => (TaskPhase::Succeeded, String::new()),
        Some(Health { status: Status::Healthy, message }) => (TaskPhase::Succeeded, message),
        Some(Health { status: Status::Degraded, message }) => (TaskPhase::Failed, message),
        Some(Health { status: Status::Unknown, message }) if task.hook => (TaskPhase::Failed, message),
        Some(Health { message, .. }) => (TaskPhase::Running, message),
    }
}

/// How an operation ended, for the Application's status.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub revision: String,
    /// Succeeded, Failed or Error
    pub phase: String,
    pub message: String,
    /// `syncResult.resources`, in execution order.
    pub results: Vec<Value>,
    /// `status.resources`: the targets, then what requires pruning.
    pub resources: Vec<Value>,
    /// Some object still differs from git (requires pruning, failed to apply).
    pub out_of_sync: bool,
    pub health: Option<Value>,
}

/// The state of a sync's tasks, written to the Application while it runs.
struct Run<'a> {
    store: &'a Store,
    home: &'a Store,
    app: &'a Value,
    revision: &'a str,
    started: &'a str,
    targets: &'a [(Resource, Value)],
    last_message: String,
}

impl Run<'_> {
    fn running(&mut self, tasks: &[Task], message: String) {
        if message == self.last_message {
            return;
        }
        self.last_message = message.clone();
        let results: Vec<Value> =
            tasks.iter().filter(|t| !t.status.is_empty() || t.state != TaskPhase::Pending).map(Task::result).collect();
        let health = app_health(self.store, self.targets);
        let (revision, started) = (self.revision.to_string(), self.started.to_string());
        update_app(self.home, self.app, |a| {
            let op = a.get("operation").cloned().unwrap_or(Value::Null);
            a["status"]["operationState"] = json!({"phase": "Running", "message": message, "operation": op, "startedAt": started,
                "syncResult": {"revision": revision, "resources": results}});
            a["status"]["health"] = health.clone();
        });
    }
}

/// Waiting message: `waiting for healthy state of <g>/<k>/<n>[ and N more resources]`.
fn waiting(tasks: &[&Task]) -> String {
    let hooks = tasks.iter().any(|t| t.hook);
    let first = tasks.first().map(|t| t.id()).unwrap_or_default();
    let more = if tasks.len() > 1 {
        format!(" and {} more {}", tasks.len() - 1, if hooks { "hooks" } else { "resources" })
    } else {
        String::new()
    };
    if hooks {
        format!("waiting for completion of hook {first}{more}")
    } else {
        format!("waiting for healthy state of {first}{more}")
    }
}

/// Runs the tasks of one step (prunes, hooks, resources); the apply errors.
fn execute(store: &Store, tasks: &mut [Task], idx: &[usize], options: &[String], prune: bool) -> Vec<String> {
    let mut errors = Vec::new();
    for &i in idx {
        let t = &mut tasks[i];
        if t.prune {
            if !prune {
                (t.status, t.message, t.state) =
                    ("PruneSkipped", "ignored (requires pruning)".into(), TaskPhase::Succeeded);
                continue;
            }
            match store.delete(&t.r, t.namespace().map(str::to_string).as_deref(), t.name(), false, None) {
                Ok(_) => (t.status, t.message, t.state) = ("Pruned", "pruned".into(), TaskPhase::Succeeded),
                Err(e) => {
                    errors.push(e.message.clone());
                    (t.status, t.message, t.state) = ("SyncFailed", e.message, TaskPhase::Failed);
                }
            }
            continue;
        }
        if t.hook && t.delete_policies().iter().any(|p| p == "BeforeHookCreation") && t.live(store).is_some() {
            let (ns, name) = (t.namespace().map(str::to_string), t.name().to_string());
            let _ = store.delete(&t.r, ns.as_deref(), &name, false, None);
        }
        match apply_object(store, &t.obj, mode_for(options, &t.obj), MANAGER) {
            Ok(op) => {
                let msg = format!("{} {op}", printed(&t.r, t.name()));
                (t.status, t.message, t.state) = ("Synced", msg, TaskPhase::Running);
            }
            Err(e) => {
                errors.push(e.clone());
                (t.status, t.message, t.state) = ("SyncFailed", e, TaskPhase::Failed);
            }
        }
    }
    errors
}

/// Waits until the tasks `idx` (hooks only, with `hooks_only`) are no longer running; the
/// failures' messages.
async fn wait_for(run: &mut Run<'_>, tasks: &mut [Task], idx: &[usize], hooks_only: bool) -> Result<(), Vec<String>> {
    loop {
        let mut still = Vec::new();
        let mut failed = Vec::new();
        for &i in idx {
            if tasks[i].prune || tasks[i].state != TaskPhase::Running || (hooks_only && !tasks[i].hook) {
                continue;
            }
            let (state, message) = assess(&tasks[i], run.store);
            let t = &mut tasks[i];
            t.state = state;
            if !message.is_empty() {
                t.message = message.clone();
            }
            match state {
                TaskPhase::Running => still.push(i),
                TaskPhase::Failed => {
                    failed.push(if message.is_empty() { format!("{} is {}", t.id(), "Degraded") } else { message })
                }
                _ => {}
            }
        }
        if !failed.is_empty() {
            failed.dedup();
            return Err(failed);
        }
        if still.is_empty() {
            return Ok(());
        }
        let waiting_on: Vec<&Task> = still.iter().map(|&i| &tasks[i]).collect();
        let message = waiting(&waiting_on);
        run.running(tasks, message);
        if current(run.home, run.app).is_none() {
            return Err(vec!["the Application was deleted".into()]);
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Runs a planned sync to its end.
async fn run_tasks(run: &mut Run<'_>, tasks: &mut [Task], options: &[String], prune: bool) -> (String, String) {
    sort_tasks(tasks);
    let main: Vec<usize> = (0..tasks.len()).filter(|&i| tasks[i].phase != Phase::SyncFail).collect();
    let mut steps: Vec<Vec<usize>> = Vec::new();
    for i in main {
        match steps.last_mut() {
            Some(step) if tasks[step[0]].phase == tasks[i].phase && tasks[step[0]].wave == tasks[i].wave => {
                step.push(i)
            }
            _ => steps.push(vec![i]),
        }
    }
    let multi_step = steps.len() > 1;
    let mut failure: Option<String> = None;
    for (n, step) in steps.iter().enumerate() {
        let errors = execute(run.store, tasks, step, options, prune);
        if !errors.is_empty() {
            failure = Some(format!("one or more objects failed to apply, reason: {}", errors.join(",")));
            break;
        }
        let has_hooks = step.iter().any(|&i| tasks[i].hook);
        if n + 1 == steps.len() && !has_hooks {
            break; // the last step finishes at once, even if its objects degrade later
        }
        if let Err(reasons) = wait_for(run, tasks, step, !multi_step).await {
            failure = Some(format!(
                "one or more synchronization tasks completed unsuccessfully, reason: {}",
                reasons.join(",")
            ));
            break;
        }
    }
    let ok = failure.is_none();
    let mut message = failure.unwrap_or_else(|| "successfully synced (all tasks run)".to_string());
    if !ok {
        let fail_hooks: Vec<usize> = (0..tasks.len()).filter(|&i| tasks[i].phase == Phase::SyncFail).collect();
        if !fail_hooks.is_empty() {
            let errors = execute(run.store, tasks, &fail_hooks, options, prune);
            let waited = if errors.is_empty() { wait_for(run, tasks, &fail_hooks, true).await } else { Err(errors) };
            if let Err(reasons) = waited {
                message.push_str(&format!("\none or more SyncFail hooks failed, reason: {}", reasons.join(",")));
            }
        }
    }
    // hooks whose delete policy says so go once the operation is over
    for t in tasks.iter().filter(|t| t.hook && t.state != TaskPhase::Pending) {
        let policies = t.delete_policies();
        let delete = (ok && policies.iter().any(|p| p == "HookSucceeded"))
            || (t.state == TaskPhase::Failed && policies.iter().any(|p| p == "HookFailed"));
        if delete {
            let (ns, name) = (t.namespace().map(str::to_string), t.name().to_string());
            let _ = run.store.delete(&t.r, ns.as_deref(), &name, false, None);
        }
    }
    (if ok { "Succeeded" } else { "Failed" }.to_string(), message)
}

/// The Application's health from its targets' live objects: the worst of those with a health
/// check; Missing when none of them is live.
fn app_health(store: &Store, targets: &[(Resource, Value)]) -> Value {
    let mut healths = Vec::new();
    let mut any_live = false;
    for (r, obj) in targets {
        let s = |p: &str| obj.pointer(p).and_then(Value::as_str).unwrap_or_default();
        let ns = r.namespaced.then(|| s("/metadata/namespace"));
        if let Ok(live) = store.get_object(r, ns, s("/metadata/name")) {
            any_live = true;
            healths.extend(health::of(&live));
        }
    }
    if !targets.is_empty() && !any_live {
        return json!({"status": health::Status::Missing.as_str()});
    }
    json!({"status": health::aggregate(&healths).as_str()})
}

/// Keeps an Application's health current after its operation, until it settles.
struct Refresh {
    store: Store,
    home: Store,
    app: Value,
    targets: Vec<(Resource, Value)>,
}

impl Refresh {
    async fn run(self, running: &Running, key: &(usize, String, String)) {
        let started = Instant::now();
        let mut last = Value::Null;
        while started.elapsed() < REFRESH_FOR {
            // a new operation takes over the refreshing
            if running.lock().map(|r| r.contains(key)).unwrap_or(false) {
                return;
            }
            let h = app_health(&self.store, &self.targets);
            if h != last {
                let hh = h.clone();
                update_app(&self.home, &self.app, |a| a["status"]["health"] = hh.clone());
                last = h;
            }
            if last["status"] != "Progressing" {
                return;
            }
            tokio::time::sleep(POLL).await;
        }
    }
}

/// One sync of one Application of cluster `home`: render, run the tasks, write status; then
/// what keeps its health current.
async fn sync(targets: &[Target], home: usize, renderer: &Arc<Renderer>, app: &Value) -> Option<Refresh> {
    let started = super::util::now_seconds();
    let started_unix =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
    let home_t = &targets[home];
    let names: Vec<(String, String)> = targets.iter().map(|t| (t.name.clone(), t.url.clone())).collect();
    let src = source(app).cloned().unwrap_or(Value::Null);
    let revision = app
        .pointer("/operation/sync/revision")
        .and_then(Value::as_str)
        .or_else(|| src.get("targetRevision").and_then(Value::as_str))
        .unwrap_or_default()
        .to_string();
    let path = src.get("path").and_then(Value::as_str).unwrap_or_default().to_string();
    let operation = app.get("operation").cloned().unwrap_or(Value::Null);
    let dest = destination(app, &names, &home_t.name).and_then(|n| targets.iter().find(|t| t.name == n));
    let rendered = match dest {
        None => Err(format!(
            "destination {} matches no cluster (clusters: {})",
            app.pointer("/spec/destination").map(Value::to_string).unwrap_or_default(),
            names.iter().map(|n| n.0.as_str()).collect::<Vec<_>>().join(", ")
        )),
        Some(_) => {
            let r = renderer.clone();
            tokio::task::spawn_blocking(move || r.render(&revision, &path)).await.unwrap_or_else(|e| Err(e.to_string()))
        }
    };
    let (dest, rendered) = match (dest, rendered) {
        (Some(d), Ok(r)) => (d, r),
        (_, Err(e)) => {
            finish(&home_t.store, app, &operation, Err(e), &started);
            return None;
        }
        (None, Ok(_)) => unreachable!("a render happens only with a destination"),
    };
    let app_name = app.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default();
    let dest_ns = app.pointer("/spec/destination/namespace").and_then(Value::as_str);
    let options = operation_options(app);
    let prune = app.pointer("/operation/sync/prune").and_then(Value::as_bool) == Some(true)
        || app.pointer("/spec/syncPolicy/automated/prune").and_then(Value::as_bool) == Some(true);
    if let (true, Some(ns)) = (options.iter().any(|o| o == "CreateNamespace=true"), dest_ns)
        && dest.store.get("v1", "Namespace", None, ns).is_none()
    {
        let obj = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}});
        if let Err(e) = dest.store.apply(&obj, MANAGER) {
            let e = format!("the namespace failed to apply: {}", e.message);
            finish(&home_t.store, app, &operation, Err(e), &started);
            return None;
        }
    }
    let mut plan = prepare(app_name, dest_ns, &dest.store, &rendered.objects, &rendered.revision, started_unix);
    if !plan.errors.is_empty() {
        let e = format!("one or more synchronization tasks are not valid: {}", plan.errors.join("; "));
        finish(&home_t.store, app, &operation, Err(e), &started);
        return None;
    }
    let pruned = prune_candidates(&dest.store, app_name, &plan);
    plan.tasks.extend(pruned);
    let targets_of = plan.targets.clone();
    let mut tasks = std::mem::take(&mut plan.tasks);
    let mut run = Run {
        store: &dest.store,
        home: &home_t.store,
        app,
        revision: &rendered.revision,
        started: &started,
        targets: &targets_of,
        last_message: String::new(),
    };
    let (phase, message) = run_tasks(&mut run, &mut tasks, &options, prune).await;
    let requires_pruning: Vec<&Task> = tasks.iter().filter(|t| t.status == "PruneSkipped").collect();
    let failed = tasks.iter().any(|t| t.status == "SyncFailed");
    let mut resources: Vec<Value> = targets_of
        .iter()
        .map(|(r, o)| {
            let s = |p: &str| o.pointer(p).and_then(Value::as_str).unwrap_or_default();
            let synced = tasks.iter().any(|t| !t.hook && !t.prune && t.r.kind == r.kind && t.name() == s("/metadata/name") && t.status == "Synced");
            json!({"group": r.group, "version": r.version, "kind": r.kind, "namespace": if r.namespaced { s("/metadata/namespace") } else { "" },
                   "name": s("/metadata/name"), "status": if synced { "Synced" } else { "OutOfSync" }, "syncWave": wave_of(o)})
        })
        .collect();
    resources.extend(requires_pruning.iter().map(|t| {
        json!({"group": t.r.group, "version": t.r.version, "kind": t.r.kind, "namespace": t.namespace().unwrap_or_default(),
               "name": t.name(), "status": "OutOfSync", "requiresPruning": true})
    }));
    let outcome = Outcome {
        revision: rendered.revision.clone(),
        out_of_sync: !requires_pruning.is_empty() || failed || phase != "Succeeded",
        phase,
        message,
        results: tasks.iter().filter(|t| !t.status.is_empty()).map(Task::result).collect(),
        resources,
        health: Some(app_health(&dest.store, &targets_of)),
    };
    finish(&home_t.store, app, &operation, Ok(outcome), &started);
    Some(Refresh { store: dest.store.clone(), home: home_t.store.clone(), app: app.clone(), targets: targets_of })
}

/// Writes an operation's end to the Application: status, history, and `operation` cleared
/// (unless a new one was written meanwhile).
fn finish(home: &Store, app: &Value, operation: &Value, outcome: Result<Outcome, String>, started: &str) {
    let finished = super::util::now_seconds();
    update_app(home, app, |now| {
        let mut updated = write_outcome(now, &outcome, started, &finished);
        if now.get("operation").is_some_and(|o| o != operation && !o.is_null()) {
            updated["operation"] = now["operation"].clone();
        }
        *now = updated;
    });
}

/// A sync's outcome before it is written to the Application.
#[derive(Debug, Clone)]
pub struct SyncResult {
    pub revision: String,
    pub objects: Vec<Value>,
}

/// Renders Application sources from a git repository at any revision. Exported trees are
/// kept per commit so repeated syncs of one revision render without copying again.
pub struct Renderer {
    repo: PathBuf,
    kustomize: Kustomize,
    trees: Mutex<HashMap<String, Arc<crate::git::Tree>>>,
}

impl Renderer {
    pub fn new(repo: &Path, kustomize: Kustomize) -> Renderer {
        Renderer { repo: repo.to_path_buf(), kustomize, trees: Mutex::default() }
    }

    /// Resolves a revision as Argo CD would: a commit SHA (or prefix), a branch (local or
    /// `origin/`), a tag, or `HEAD` when empty.
    pub fn resolve(&self, revision: &str) -> Result<String, String> {
        let rev = if revision.is_empty() { "HEAD" } else { revision };
        crate::git::resolve(&self.repo, rev).map_err(|_| format!("unable to resolve '{rev}' to a commit SHA"))
    }

    fn tree(&self, sha: &str) -> Result<Arc<crate::git::Tree>, String> {
        if let Ok(t) = self.trees.lock()
            && let Some(dir) = t.get(sha)
        {
            return Ok(dir.clone());
        }
        let dir = Arc::new(crate::git::tree_at(&self.repo, sha).map_err(|e| e.to_string())?);
        if let Ok(mut t) = self.trees.lock() {
            t.insert(sha.to_string(), dir.clone());
        }
        Ok(dir)
    }

    /// Renders `path` of the repo at `revision` (blocking: runs kustomize).
    pub fn render(&self, revision: &str, path: &str) -> Result<SyncResult, String> {
        let sha = self.resolve(revision)?;
        let tree = self.tree(&sha)?;
        let dir = tree.path().join(path.trim_matches('/'));
        if !dir.is_dir() {
            return Err(format!("app path does not exist: {path} at revision {sha}"));
        }
        let out = self.kustomize.command(&dir).output().map_err(|e| format!("cannot run kustomize: {e}"))?;
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr).replace(&format!("{}/", tree.path().display()), "");
            return Err(format!("kustomize build {path} failed: {}", err.trim()));
        }
        let objects = crate::config::yaml::parse_values(&String::from_utf8_lossy(&out.stdout))
            .map_err(|e| format!("rendered manifests do not parse: {e}"))?;
        Ok(SyncResult { revision: sha, objects })
    }
}

/// The cluster an Application deploys to, among the fleet's (name, url) pairs:
/// `destination.name`, else `destination.server` equal to a cluster's URL, else a server
/// whose host starts with `<cluster name>.` (`https://prod-west.k8s.acme.internal`), else
/// the in-cluster address `https://kubernetes.default.svc`, which is the Application's own
/// cluster (`home`).
pub fn destination<'a>(app: &Value, clusters: &'a [(String, String)], home: &'a str) -> Option<&'a str> {
    let name = app.pointer("/spec/destination/name").and_then(Value::as_str);
    let server = app.pointer("/spec/destination/server").and_then(Value::as_str).map(|s| s.trim_end_matches('/'));
    if let Some(n) = name {
        return clusters.iter().find(|(c, _)| c == n).map(|(c, _)| c.as_str());
    }
    let server = server?;
    if server == "https://kubernetes.default.svc" {
        return Some(home);
    }
    let authority = |u: &str| u.split("://").nth(1).unwrap_or(u).trim_end_matches('/').to_string();
    if let Some((c, _)) = clusters.iter().find(|(_, url)| authority(url) == authority(server)) {
        return Some(c);
    }
    let host = server.split("://").nth(1).unwrap_or(server).split(['/', ':']).next().unwrap_or_default();
    clusters.iter().find(|(c, _)| host.starts_with(&format!("{c}."))).map(|(c, _)| c.as_str())
}

pub use crate::repo::argocd::source;

/// The Application after a sync attempt whose objects were all applied at once (no waves,
/// no hooks, no pruning): status written, operation cleared.
pub fn after_sync(app: &Value, outcome: &Result<SyncResult, String>, started: &str, finished: &str) -> Value {
    let outcome = match outcome {
        Ok(r) => Ok(Outcome {
            revision: r.revision.clone(),
            phase: "Succeeded".into(),
            message: "successfully synced (all tasks run)".into(),
            results: r.objects.iter().map(resource_result).collect(),
            resources: Vec::new(),
            out_of_sync: false,
            health: Some(json!({"status": "Healthy"})),
        }),
        Err(e) => Err(e.clone()),
    };
    write_outcome(app, &outcome, started, finished)
}

/// The Application with an operation's outcome written (an Err is an operation that could not
/// start: phase Error) and its `operation` removed.
fn write_outcome(app: &Value, outcome: &Result<Outcome, String>, started: &str, finished: &str) -> Value {
    let mut app = app.clone();
    let operation = app.get("operation").cloned().unwrap_or(Value::Null);
    let src = source(&app).cloned().unwrap_or(Value::Null);
    let app_dest = app.pointer("/spec/destination").cloned().unwrap_or(Value::Null);
    if let Some(m) = app.as_object_mut() {
        m.remove("operation");
    }
    let status = app.as_object_mut().and_then(|m| {
        let s = m.entry("status").or_insert_with(|| json!({}));
        if !s.is_object() {
            *s = json!({});
        }
        s.as_object_mut()
    });
    let Some(status) = status else { return app };
    match outcome {
        Ok(r) => {
            let dest = app_dest.clone();
            let sync_status = if r.out_of_sync { "OutOfSync" } else { "Synced" };
            status.insert(
                "sync".into(),
                json!({"status": sync_status, "revision": r.revision, "comparedTo": {"source": src, "destination": dest}}),
            );
            if let Some(h) = &r.health {
                status.insert("health".into(), h.clone());
            }
            if !r.resources.is_empty() {
                status.insert("resources".into(), Value::Array(r.resources.clone()));
            }
            status.insert(
                "operationState".into(),
                json!({"phase": r.phase, "message": r.message, "operation": operation, "startedAt": started, "finishedAt": finished,
                       "syncResult": {"revision": r.revision, "source": src, "resources": r.results}}),
            );
            if r.phase == "Succeeded" {
                let history = status.entry("history").or_insert_with(|| json!([]));
                if !history.is_array() {
                    *history = json!([]);
                }
                if let Some(h) = history.as_array_mut() {
                    let id = h.iter().filter_map(|e| e.get("id").and_then(Value::as_i64)).max().unwrap_or(-1) + 1;
                    h.push(json!({"id": id, "revision": r.revision, "deployStartedAt": started, "deployedAt": finished, "source": src}));
                }
            }
            status.insert("reconciledAt".into(), Value::String(finished.into()));
        }
        Err(e) => {
            status.insert("operationState".into(), json!({"phase": "Error", "message": e, "operation": operation, "startedAt": started, "finishedAt": finished}));
            let sync = status.entry("sync").or_insert_with(|| json!({}));
            if let Some(s) = sync.as_object_mut() {
                s.insert("status".into(), Value::String("OutOfSync".into()));
            }
        }
    }
    app
}

fn resource_result(obj: &Value) -> Value {
    let g = |p: &str| obj.pointer(p).cloned().unwrap_or(Value::Null);
    let api_version = obj.get("apiVersion").and_then(Value::as_str).unwrap_or_default();
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    json!({"group": group, "version": version, "kind": g("/kind"), "namespace": g("/metadata/namespace"), "name": g("/metadata/name"), "status": "Synced", "message": "configured", "syncPhase": "Sync"})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destinations() {
        let clusters = vec![
            ("dev".to_string(), "http://127.0.0.1:1000".to_string()),
            ("prod-west".to_string(), "http://127.0.0.1:2000".to_string()),
        ];
        let app = |dest: Value| json!({"spec": {"destination": dest}});
        assert_eq!(destination(&app(json!({"name": "prod-west"})), &clusters, "dev"), Some("prod-west"));
        assert_eq!(destination(&app(json!({"server": "http://127.0.0.1:2000/"})), &clusters, "dev"), Some("prod-west"));
        assert_eq!(
            destination(&app(json!({"server": "https://prod-west.k8s.acme.internal"})), &clusters, "dev"),
            Some("prod-west")
        );
        assert_eq!(
            destination(&app(json!({"server": "https://kubernetes.default.svc"})), &clusters, "prod-west"),
            Some("prod-west")
        );
        assert_eq!(destination(&app(json!({"server": "https://elsewhere.example.com"})), &clusters, "dev"), None);
    }

    #[test]
    fn status_after_a_sync() {
        let app = json!({"spec": {"source": {"path": "apps/a/overlays/dev", "targetRevision": "main"}}, "operation": {"sync": {"revision": "abc"}},
                         "status": {"history": [{"id": 0, "revision": "old"}]}});
        let ok = Ok(SyncResult {
            revision: "abc123".into(),
            objects: vec![json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "a"}})],
        });
        let after = after_sync(&app, &ok, "2026-11-27T10:00:00Z", "2026-11-27T10:00:02Z");
        assert!(after.get("operation").is_none());
        assert_eq!(after["status"]["sync"]["status"], "Synced");
        assert_eq!(after["status"]["operationState"]["phase"], "Succeeded");
        assert_eq!(after["status"]["operationState"]["syncResult"]["revision"], "abc123");
        assert_eq!(after["status"]["history"][1]["id"], 1);
        assert_eq!(after["status"]["history"][1]["revision"], "abc123");
        let failed = after_sync(&app, &Err("boom".into()), "t0", "t1");
        assert_eq!(failed["status"]["operationState"]["phase"], "Error");
        assert_eq!(failed["status"]["sync"]["status"], "OutOfSync");
        assert_eq!(failed["status"]["history"].as_array().unwrap().len(), 1);
    }

    #[test]
    fn renders_a_path_at_a_revision() {
        let Ok(k) = Kustomize::locate(None) else { panic!("kustomize is needed: run scripts/setup-tools") };
        let dir = tempfile::tempdir().unwrap();
        let git = git2::Repository::init(dir.path()).unwrap();
        let write = |rel: &str, text: &str| {
            let p = dir.path().join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        };
        let commit = |msg: &str| -> String {
            let mut idx = git.index().unwrap();
            idx.add_all(["*"], git2::IndexAddOption::DEFAULT, None).unwrap();
            idx.write().unwrap();
            let tree = git.find_tree(idx.write_tree().unwrap()).unwrap();
            let sig = git2::Signature::now("t", "t@example.com").unwrap();
            let parents: Vec<git2::Commit> =
                git.head().ok().and_then(|h| h.peel_to_commit().ok()).into_iter().collect();
            let refs: Vec<&git2::Commit> = parents.iter().collect();
            git.commit(Some("HEAD"), &sig, &sig, msg, &tree, &refs).unwrap().to_string()
        };
        write("app/kustomization.yaml", "resources:\n  - cm.yaml\n");
        write("app/cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\ndata:\n  v: one\n");
        let first = commit("one");
        write("app/cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\ndata:\n  v: two\n");
        let second = commit("two");
        let r = Renderer::new(dir.path(), k);
        assert_eq!(r.resolve("").unwrap(), second);
        assert_eq!(r.render(&first[..7], "app").unwrap().objects[0]["data"]["v"], "one");
        let head = r.render("HEAD", "app").unwrap();
        assert_eq!(head.revision, second);
        assert_eq!(head.objects[0]["data"]["v"], "two");
        assert!(r.render("HEAD", "nope").unwrap_err().contains("does not exist"));
        assert!(r.resolve("no-such-branch").is_err());
    }
}

#[cfg(test)]
mod apply_tests {
    use super::*;

    fn dep(env: &[&str]) -> Value {
        let env: Vec<Value> = env.iter().map(|n| json!({"name": n, "value": "v"})).collect();
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "default"},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "web", "image": "x:1", "env": env}]}}}})
    }

    fn env_of(store: &Store) -> Vec<String> {
        let d = store.get("apps/v1", "Deployment", Some("default"), "web").unwrap();
        d["spec"]["template"]["spec"]["containers"][0]["env"]
            .as_array()
            .map(|e| e.iter().map(|x| x["name"].as_str().unwrap().to_string()).collect())
            .unwrap_or_default()
    }

    #[test]
    fn server_side_apply_after_client_side_apply_keeps_what_the_update_owns() {
        let store = Store::from_fixture(Vec::new(), Vec::new()).unwrap();
        assert_eq!(apply_object(&store, &dep(&["A", "X"]), ApplyMode::ClientSide, MANAGER).unwrap(), "created");
        assert_eq!(apply_object(&store, &dep(&["A"]), ApplyMode::ServerSide, MANAGER).unwrap(), "serverside-applied");
        assert_eq!(env_of(&store), ["A", "X"], "the Update entry owns X: server-side apply leaves it");
        assert_eq!(apply_object(&store, &dep(&["A"]), ApplyMode::ClientSide, MANAGER).unwrap(), "configured");
        assert_eq!(env_of(&store), ["A"], "client-side apply deletes what last-applied had");
    }

    #[test]
    fn modes_from_options_and_annotations() {
        let plain = json!({"metadata": {}});
        let opts = |o: &[&str]| o.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(mode_for(&[], &plain), ApplyMode::ClientSide);
        assert_eq!(mode_for(&opts(&["ServerSideApply=true"]), &plain), ApplyMode::ServerSide);
        assert_eq!(mode_for(&opts(&["ServerSideApply=true", "Replace=true"]), &plain), ApplyMode::Replace);
        let off = json!({"metadata": {"annotations": {SYNC_OPTIONS: "Validate=false, ServerSideApply=false"}}});
        assert_eq!(mode_for(&opts(&["ServerSideApply=true"]), &off), ApplyMode::ClientSide);
        let on = json!({"metadata": {"annotations": {SYNC_OPTIONS: "ServerSideApply=true"}}});
        assert_eq!(mode_for(&[], &on), ApplyMode::ServerSide);
        let app = json!({"spec": {"syncPolicy": {"syncOptions": ["ServerSideApply=true"]}}, "operation": {"sync": {"syncOptions": ["Replace=true"]}}});
        assert_eq!(operation_options(&app), ["Replace=true"], "the operation's options replace the Application's");
        let app = json!({"spec": {"syncPolicy": {"syncOptions": ["ServerSideApply=true"]}}, "operation": {"sync": {}}});
        assert_eq!(operation_options(&app), ["ServerSideApply=true"]);
    }
}
