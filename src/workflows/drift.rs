//! The drift workflow: for every Argo CD Application of the repo, what its destination
//! cluster runs against what its overlay renders, as semantic changes (an added sidecar, not
//! 200 lines of timestamps), attributed to who made them (managedFields, audit log) and when,
//! with what to do about them. Clusters are queried concurrently; one failing cluster is
//! reported and the others still are.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;

use futures::StreamExt;
use kube::Client;
use kube::api::ListParams;
use kube::discovery::{ApiCapabilities, ApiResource, Discovery, Scope};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::cluster::argocd::{self, Applications, MANAGER};
use crate::cluster::{ClusterError, ClusterSet, dynamic_api, object_json, with_retry};
use crate::error::{Error, Result};
use crate::k8s::ObjectRef;
use crate::k8s::compare::{self, Cause, Comparison, Witness};
use crate::k8s::defaults;
use crate::k8s::diff::{self, Change, Op};
use crate::k8s::redact::Redactor;
use crate::kustomize::Engine;
use crate::repo::{ArgoApp, Repo};

/// Annotations agentops itself writes to mark drift as temporary.
pub const ACK_PREFIX: &str = "drift.agentops.dev/";
/// The annotation (after [`ACK_PREFIX`]) recording which changes were acknowledged, as
/// [`changes_hash`]: an acknowledgement covers those changes only.
pub const ACK_CHANGES: &str = "changes-hash";

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DriftRequest {
    /// Only these environments (all when empty).
    #[serde(default)]
    pub env: Vec<String>,
    /// Only these apps (all when empty).
    #[serde(default)]
    pub app: Vec<String>,
    /// Audit logs (JSON lines of audit.k8s.io/v1 Events) to find who made each change.
    #[serde(default)]
    pub audit_log: Vec<PathBuf>,
    /// Also list every difference that is not drift (API defaults, server-allocated and
    /// controller-owned fields, HPA replicas, ignore rules) with its live value and cause.
    #[serde(default)]
    pub show_suppressed: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct ClusterState {
    pub env: String,
    pub context: String,
    /// ok or error
    pub status: String,
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct ChangeOut {
    pub op: String,
    pub path: String,
    pub from: Option<Value>,
    pub to: Option<Value>,
    pub summary: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct Attribution {
    pub manager: String,
    pub operation: String,
    /// The managedFields entry's time: the change happened at or before it.
    pub time: Option<String>,
    pub user: Option<String>,
    pub source_ip: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct LastSync {
    pub revision: Option<String>,
    pub time: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct Drift {
    pub env: String,
    pub app: String,
    /// The Argo CD Application.
    pub application: String,
    pub overlay: String,
    pub object: String,
    /// drifted, acknowledged, expired, missing or untracked
    pub status: String,
    pub changes: Vec<ChangeOut>,
    pub attribution: Vec<Attribution>,
    pub last_sync: Option<LastSync>,
    pub note: Option<String>,
    pub recommendations: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct DriftSummary {
    pub applications: usize,
    pub objects: usize,
    pub drifted: usize,
    pub acknowledged: usize,
    pub missing: usize,
    pub untracked: usize,
    pub clusters_failed: usize,
    /// Applications whose overlay does not build: not checked (the warnings say why).
    #[serde(default)]
    pub applications_unchecked: usize,
    /// Differences that are not drift, counted by cause (default, server-allocated,
    /// controller-owned, hpa, ignore-rule).
    #[serde(default)]
    pub suppressed: BTreeMap<String, usize>,
}

/// A difference between git and a cluster that is not drift, and why.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct SuppressedChange {
    pub env: String,
    pub object: String,
    pub path: String,
    /// The live value (Secret values as a short hash).
    pub value: Option<Value>,
    /// default, server-allocated, controller-owned, hpa or ignore-rule
    pub cause: String,
    /// The field manager owning the live value, when ownership decided.
    pub manager: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct DriftReport {
    pub clusters: Vec<ClusterState>,
    pub drifts: Vec<Drift>,
    pub summary: DriftSummary,
    /// What was not read, such as a configured audit log that is missing; the check went on.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// Every suppressed difference, when asked for (`show_suppressed`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub suppressed: Vec<SuppressedChange>,
}

impl DriftReport {
    /// Drift that nobody acknowledged.
    pub fn has_drift(&self) -> bool {
        self.drifts.iter().any(|d| d.status != "acknowledged")
    }
}

/// One Application to check: where its desired state comes from and where it runs.
#[derive(Debug, Clone)]
struct Target {
    app: String,
    env: String,
    argo: ArgoApp,
    overlay: String,
    desired: Vec<Value>,
}

/// Renders every Application of the repo that points at a path of this repo (blocking:
/// runs kustomize through the cached engine): the targets, and for each overlay that does
/// not build, why its Application was not checked (file and line when kustomize names them).
fn targets(repo: &Repo, engine: &Engine, req: &DriftRequest) -> Result<(Vec<Target>, Vec<String>)> {
    use rayon::prelude::*;
    let leaves: HashMap<&str, &crate::repo::Leaf> = repo.leaves.iter().map(|l| (l.dir.as_str(), l)).collect();
    let mut wanted = Vec::new();
    for argo in &repo.argocd_apps {
        let Some(path) = argo.sources.iter().find_map(|s| s.path.clone().filter(|_| s.chart.is_none())) else {
            continue;
        };
        let dir = crate::repo::kustomization::join("", &path);
        let Some(leaf) = leaves.get(dir.as_str()) else { continue };
        let (Some(app), Some(env)) = (leaf.app.clone(), leaf.env.clone()) else { continue };
        if (!req.env.is_empty() && !req.env.contains(&env)) || (!req.app.is_empty() && !req.app.contains(&app)) {
            continue;
        }
        wanted.push((app, env, argo, dir));
    }
    // renders in parallel (cached builds are a read and a parse each); an overlay that does
    // not build is reported and its Application left out, the others are still checked
    let built: Vec<std::result::Result<Target, String>> = wanted
        .into_par_iter()
        .map(|(app, env, argo, dir)| {
            let built = engine.build(repo, &dir);
            if let Some(e) = built.error {
                let e = crate::kustomize::classify(&e, repo, &dir);
                let line = e.line.map(|l| format!(":{l}")).unwrap_or_default();
                return Err(format!(
                    "{env}: {dir} does not build ({} at {}{line}): {}; Application {} was not checked (run agentops validate)",
                    e.class, e.file, e.message, argo.name
                ));
            }
            let desired = built.values()
                .map_err(|e| format!("{env}: {dir}: rendered output: {e}; Application {} was not checked", argo.name))?;
            Ok(Target { app, env, argo: argo.clone(), overlay: dir, desired })
        })
        .collect();
    let (mut targets, mut unchecked) = (Vec::new(), Vec::new());
    for b in built {
        match b {
            Ok(t) => targets.push(t),
            Err(e) => unchecked.push(e),
        }
    }
    Ok((targets, unchecked))
}

/// Runs the drift check.
pub async fn run(
    repo: &Repo,
    engine: &Engine,
    clusters: &ClusterSet,
    redactor: &Redactor,
    req: &DriftRequest,
) -> Result<DriftReport> {
    run_with_progress(repo, engine, clusters, redactor, req, &|_| {}).await
}

/// Progress of a drift check, for a progress bar.
#[derive(Debug, Clone, Copy)]
pub enum DriftProgress {
    /// Applications rendered; clusters to check.
    Rendered { applications: usize, clusters: usize },
    /// One more cluster checked.
    ClusterDone,
}

/// [`run`], reporting progress.
pub async fn run_with_progress(
    repo: &Repo,
    engine: &Engine,
    clusters: &ClusterSet,
    redactor: &Redactor,
    req: &DriftRequest,
    progress: &(dyn Fn(DriftProgress) + Sync),
) -> Result<DriftReport> {
    Ok(check_all(repo, engine, clusters, redactor, req, progress).await?.0)
}

/// A drifted object with what git renders for it (namespace filled in) and what the
/// cluster runs, as the check read them. For `capture`.
pub type DriftedObject = (Drift, Value, Value);

/// [`run`], also returning the desired and live objects of everything drifted, so acting on
/// the drift needs no second render or cluster round trip.
pub async fn run_with_objects(
    repo: &Repo,
    engine: &Engine,
    clusters: &ClusterSet,
    redactor: &Redactor,
    req: &DriftRequest,
) -> Result<(DriftReport, Vec<DriftedObject>)> {
    check_all(repo, engine, clusters, redactor, req, &|_| {}).await
}

/// One finding of a cluster check; drifted objects carry (desired with the cluster's
/// defaults, live).
type Found = (Drift, Option<(Value, Value)>);

/// What one cluster check found: drift, and the differences that are not.
#[derive(Default)]
struct ClusterFindings {
    found: Vec<Found>,
    suppressed: Vec<SuppressedChange>,
}

async fn check_all(
    repo: &Repo,
    engine: &Engine,
    clusters: &ClusterSet,
    redactor: &Redactor,
    req: &DriftRequest,
    progress: &(dyn Fn(DriftProgress) + Sync),
) -> Result<(DriftReport, Vec<DriftedObject>)> {
    let (targets, unchecked) = tokio::task::block_in_place(|| targets(repo, engine, req))?;
    for t in &targets {
        t.desired.iter().for_each(|o| redactor.learn_object(o));
    }
    let audit = read_audit(&req.audit_log)?;
    let mut by_env: BTreeMap<String, Vec<&Target>> = BTreeMap::new();
    for t in &targets {
        by_env.entry(t.env.clone()).or_default().push(t);
    }
    // each environment's own audit log (`environments.<env>.audit_log`), after the given ones
    let mut warnings = Vec::new();
    let mut audit_of: BTreeMap<&str, Vec<Value>> = BTreeMap::new();
    for env in by_env.keys() {
        let mut events = audit.clone();
        if let Some(p) = repo.config.environments.get(env).and_then(|e| e.audit_log.as_ref()) {
            let path = if p.is_absolute() { p.clone() } else { repo.root.join(p) };
            match read_audit(std::slice::from_ref(&path)) {
                Ok(mut own) => events.append(&mut own),
                Err(e) => warnings.push(format!(
                    "{env}: the audit log was not read, so changes are attributed by field manager only: {e}"
                )),
            }
        }
        audit_of.insert(env.as_str(), events);
    }
    let audit_of = &audit_of;
    progress(DriftProgress::Rendered { applications: targets.len(), clusters: by_env.len() });
    let checks: Vec<_> = by_env
        .iter()
        .map(|(env, ts)| async move {
            let audit = audit_of.get(env.as_str()).map_or(&[][..], Vec::as_slice);
            let r = check_env(repo, clusters, env, ts, audit).await;
            progress(DriftProgress::ClusterDone);
            r
        })
        .collect();
    let results = futures::stream::iter(checks).buffered(clusters.concurrency.max(1)).collect::<Vec<_>>().await;
    let mut report = DriftReport { warnings, ..DriftReport::default() };
    report.summary.applications = targets.len();
    report.summary.applications_unchecked = unchecked.len();
    report.warnings.extend(unchecked);
    let mut objects_of = Vec::new();
    for (env, context, objects, result) in results {
        match result {
            Ok(findings) => {
                report.clusters.push(ClusterState { env, context, status: "ok".into(), error: None });
                report.summary.objects += objects;
                for (d, pair) in findings.found {
                    report.drifts.push(d);
                    objects_of.push(pair);
                }
                for s in findings.suppressed {
                    *report.summary.suppressed.entry(s.cause.clone()).or_default() += 1;
                    if req.show_suppressed {
                        report.suppressed.push(s);
                    }
                }
            }
            Err(e) => {
                report.clusters.push(ClusterState { env, context, status: "error".into(), error: Some(e.to_string()) });
                report.summary.clusters_failed += 1;
            }
        }
    }
    for d in &report.drifts {
        match d.status.as_str() {
            "acknowledged" => report.summary.acknowledged += 1,
            "missing" => report.summary.missing += 1,
            "untracked" => report.summary.untracked += 1,
            _ => report.summary.drifted += 1,
        }
    }
    let mut v = serde_json::to_value(&report).map_err(|e| Error::Internal(e.to_string()))?;
    redactor.redact_value(&mut v);
    let report: DriftReport = serde_json::from_value(v).map_err(|e| Error::Internal(e.to_string()))?;
    // the redacted drift, with its objects (the order of both lists is the same)
    let drifted = report
        .drifts
        .iter()
        .zip(objects_of)
        .filter_map(|(d, pair)| pair.map(|(desired, live)| (d.clone(), desired, live)))
        .collect();
    Ok((report, drifted))
}

/// Checks one environment's cluster: (env, context, objects compared, drifts or the error).
async fn check_env(
    repo: &Repo,
    clusters: &ClusterSet,
    env: &str,
    targets: &[&Target],
    audit: &[Value],
) -> (String, String, usize, std::result::Result<ClusterFindings, ClusterError>) {
    let context = repo.config.context_for(env);
    let limit = clusters.timeout * 3;
    let result = match clusters.client(&context).await {
        Ok(client) => tokio::time::timeout(limit, check_cluster(&client, env, targets, audit, &repo.config.drift))
            .await
            .unwrap_or_else(|_| {
                tracing::info!(%env, context = %context, timeout_ms = limit.as_millis() as u64, "cluster check timed out");
                Err(ClusterError::Timeout(limit))
            }),
        Err(e) => Err(e),
    };
    (env.to_string(), context, targets.iter().map(|t| t.desired.len()).sum(), result)
}

/// Resolves API resources by apiVersion and kind, from one discovery per cluster.
struct Resources {
    by_gvk: HashMap<(String, String), (ApiResource, ApiCapabilities)>,
}

impl Resources {
    async fn discover(client: &Client) -> std::result::Result<Resources, ClusterError> {
        let discovery = with_retry(|| Discovery::new(client.clone()).run()).await?;
        let mut by_gvk = HashMap::new();
        for group in discovery.groups() {
            for version in group.versions() {
                for (ar, caps) in group.versioned_resources(version) {
                    by_gvk.insert((ar.api_version.clone(), ar.kind.clone()), (ar, caps));
                }
            }
        }
        Ok(Resources { by_gvk })
    }

    fn get(&self, api_version: &str, kind: &str) -> Option<&(ApiResource, ApiCapabilities)> {
        self.by_gvk.get(&(api_version.to_string(), kind.to_string()))
    }
}

/// The live counterpart of a desired object (None when the cluster serves no such kind).
async fn fetch_live(
    client: &Client,
    res: &Resources,
    desired: &Value,
    dest_ns: Option<String>,
) -> Option<std::result::Result<Option<Value>, kube::Error>> {
    let r = ObjectRef::of(desired);
    let (ar, caps) = res.get(&r.api_version, &r.kind)?;
    let ns = if caps.scope == Scope::Namespaced { r.namespace.clone().or(dest_ns) } else { None };
    let objects = dynamic_api(client, ar, caps, ns.as_deref());
    Some(with_retry(|| objects.get_opt(&r.name)).await.map(|o| o.map(|o| object_json(&o, ar))))
}

/// The Kubernetes minor version a cluster serves (for the defaults of that release); the
/// newest the defaults table knows when the server does not say.
async fn cluster_minor(client: &Client) -> u32 {
    match with_retry(|| client.apiserver_version()).await {
        Ok(info) => info.minor.trim_end_matches('+').parse().unwrap_or(defaults::NEWEST_MINOR),
        Err(_) => defaults::NEWEST_MINOR,
    }
}

/// The comparison of one object as the check makes it: defaults, ownership and HPA
/// ([`compare::compare`]), then the repo's ignore rules; agentops' own acknowledgement
/// annotations are never a difference.
pub fn compare_object(
    desired: &Value,
    live: &Value,
    witness: &Witness,
    ignore: &[crate::config::DriftIgnore],
) -> Comparison {
    let mut c = compare::compare(desired, live, witness);
    c.changes.retain(|c| !c.path.starts_with(&format!("metadata.annotations.{ACK_PREFIX}")));
    let r = ObjectRef::of(desired);
    c.suppress(Cause::IgnoreRule, |ch| {
        ignore.iter().any(|i| i.covers(&r.api_version, &r.kind, r.namespace.as_deref(), &r.name, &ch.path))
    });
    c
}

async fn check_cluster(
    client: &Client,
    env: &str,
    targets: &[&Target],
    audit: &[Value],
    config: &crate::config::DriftConfig,
) -> std::result::Result<ClusterFindings, ClusterError> {
    let res = Resources::discover(client).await?;
    let mut witness = Witness::with(&config.controllers, &config.sync_managers);
    witness.minor = cluster_minor(client).await;
    let mut out = Vec::new();
    let mut suppressed = Vec::new();
    for t in targets {
        let dest_ns = t.argo.destination_namespace.clone();
        let last_sync = last_sync(client, &res, &t.argo).await;
        let hpa_targets: BTreeSet<(String, String)> = t
            .desired
            .iter()
            .filter(|o| o.get("kind").and_then(Value::as_str) == Some("HorizontalPodAutoscaler"))
            .filter_map(|o| {
                Some((
                    o.pointer("/spec/scaleTargetRef/kind")?.as_str()?.to_string(),
                    o.pointer("/spec/scaleTargetRef/name")?.as_str()?.to_string(),
                ))
            })
            .collect();
        // every live object of the Application, fetched 8 at a time
        let fetches: Vec<_> = t.desired.iter().map(|d| fetch_live(client, &res, d, dest_ns.clone())).collect();
        let mut fetched: Vec<Option<std::result::Result<Option<Value>, kube::Error>>> =
            futures::stream::iter(fetches).buffered(8).collect().await;
        let mut seen: BTreeSet<(String, String, Option<String>, String)> = BTreeSet::new();
        let mut kinds: BTreeSet<(String, String)> = BTreeSet::new();
        for (i, desired) in t.desired.iter().enumerate() {
            let r = ObjectRef::of(desired);
            let Some((ar, caps)) = res.get(&r.api_version, &r.kind) else { continue };
            kinds.insert((r.api_version.clone(), r.kind.clone()));
            let ns =
                if caps.scope == Scope::Namespaced { r.namespace.clone().or_else(|| dest_ns.clone()) } else { None };
            seen.insert((r.api_version.clone(), r.kind.clone(), ns.clone(), r.name.clone()));
            let mut desired = desired.clone();
            if let (Some(ns), Some(meta)) = (&ns, desired.get_mut("metadata").and_then(Value::as_object_mut)) {
                meta.entry("namespace").or_insert_with(|| Value::String(ns.clone()));
            }
            let object = ObjectRef::of(&desired).to_string();
            let live = match fetched[i].take() {
                Some(r) => r?,
                None => continue,
            };
            let live = match live {
                Some(o) => o,
                None => {
                    out.push(no_objects(drift(
                        t,
                        object,
                        "missing",
                        Vec::new(),
                        Vec::new(),
                        last_sync.clone(),
                        Some("in git but not in the cluster".into()),
                    )));
                    continue;
                }
            };
            witness.hpa_target = hpa_targets.contains(&(r.kind.clone(), r.name.clone()));
            let comparison = compare_object(&desired, &live, &witness, &config.ignore);
            suppressed.extend(comparison.suppressed.into_iter().map(|s| SuppressedChange {
                env: env.to_string(),
                object: object.clone(),
                path: s.change.path,
                value: s.change.to,
                cause: s.cause.as_str().to_string(),
                manager: s.manager,
            }));
            let changes = comparison.changes;
            if changes.is_empty() {
                continue;
            }
            let desired = compare::with_defaults_for(&desired, witness.minor);
            let attribution = attribute(&live, &changes, audit, ar);
            let hash = changes_hash(changes.iter().map(|c| (c.path.as_str(), c.summary.as_str())));
            let (status, note) = acknowledgement(&live, &hash);
            let changes = changes
                .into_iter()
                .map(|c| ChangeOut {
                    op: op_str(c.op).into(),
                    path: c.path,
                    from: c.from,
                    to: c.to,
                    summary: c.summary,
                })
                .collect();
            out.push((drift(t, object, status, changes, attribution, last_sync.clone(), note), Some((desired, live))));
        }
        // live objects Argo CD tracks for this Application that git no longer has
        for (av, kind) in &kinds {
            let Some((ar, caps)) = res.get(av, kind) else { continue };
            let lp = ListParams::default().labels(&format!("app.kubernetes.io/instance={}", t.argo.name));
            let all = dynamic_api(client, ar, caps, None);
            let listed = with_retry(|| all.list(&lp)).await?;
            for o in listed.items {
                let live = object_json(&o, ar);
                let r = ObjectRef::of(&live);
                let ns = if caps.scope == Scope::Namespaced { r.namespace.clone() } else { None };
                if !seen.contains(&(av.clone(), kind.clone(), ns, r.name.clone())) {
                    out.push(no_objects(drift(
                        t,
                        r.to_string(),
                        "untracked",
                        Vec::new(),
                        Vec::new(),
                        last_sync.clone(),
                        Some("in the cluster, tracked for this Application, but not in git".into()),
                    )));
                }
            }
        }
    }
    Ok(ClusterFindings { found: out, suppressed })
}

/// One object whose live state is not what git renders: its name and the differing paths
/// (each with its summary), or why it could not be compared.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Mismatch {
    /// `Deployment/auth/auth-service`
    pub object: String,
    /// `spec.template.spec.containers[name=app].env[name=OAUTH_PROVIDER]: - env OAUTH_PROVIDER`;
    /// empty when the object is missing.
    pub paths: Vec<String>,
    /// missing, differs or unreadable
    pub status: String,
}

/// Compares every object git renders (`desired`) with what the cluster runs, with the drift
/// check's rules (API defaults, server-allocated and controller-owned fields, HPA replicas,
/// the repo's ignore rules): the objects that differ. Hooks (which Argo CD does not keep in
/// sync) are left out.
pub async fn live_mismatches(
    client: &Client,
    desired: &[Value],
    dest_ns: Option<String>,
    config: &crate::config::DriftConfig,
) -> std::result::Result<Vec<Mismatch>, ClusterError> {
    let res = Resources::discover(client).await?;
    let mut witness = Witness::with(&config.controllers, &config.sync_managers);
    witness.minor = cluster_minor(client).await;
    let hpa_targets: BTreeSet<(String, String)> = desired
        .iter()
        .filter(|o| o.get("kind").and_then(Value::as_str) == Some("HorizontalPodAutoscaler"))
        .filter_map(|o| {
            Some((
                o.pointer("/spec/scaleTargetRef/kind")?.as_str()?.to_string(),
                o.pointer("/spec/scaleTargetRef/name")?.as_str()?.to_string(),
            ))
        })
        .collect();
    let mut out = Vec::new();
    for d in desired {
        if d.pointer("/metadata/annotations/argocd.argoproj.io~1hook").is_some() {
            continue;
        }
        let r = ObjectRef::of(d);
        let Some((_, caps)) = res.get(&r.api_version, &r.kind) else {
            out.push(Mismatch { object: r.to_string(), paths: Vec::new(), status: "unreadable".into() });
            continue;
        };
        let mut desired = d.clone();
        if caps.scope == Scope::Namespaced
            && let (Some(ns), Some(meta)) = (&dest_ns, desired.get_mut("metadata").and_then(Value::as_object_mut))
        {
            meta.entry("namespace").or_insert_with(|| Value::String(ns.clone()));
        }
        let object = ObjectRef::of(&desired).to_string();
        let live = match fetch_live(client, &res, &desired, dest_ns.clone()).await {
            Some(Ok(Some(live))) => live,
            Some(Ok(None)) => {
                out.push(Mismatch { object, paths: Vec::new(), status: "missing".into() });
                continue;
            }
            Some(Err(e)) => return Err(e.into()),
            None => continue,
        };
        witness.hpa_target = hpa_targets.contains(&(r.kind.clone(), r.name.clone()));
        let mut c = compare_object(&desired, &live, &witness, &config.ignore);
        // A whole list item (an env var, a container) that only the syncing manager owns is
        // not a default the server added: an earlier sync wrote it and this one left it.
        let (kept, suppressed): (Vec<_>, Vec<_>) = std::mem::take(&mut c.suppressed).into_iter().partition(|s| {
            s.cause == Cause::Default
                && s.change.op == Op::Add
                && s.manager.as_ref().is_some_and(|m| witness.sync_managers.contains(m))
                && matches!(
                    s.change.elems.last(),
                    Some(crate::k8s::fields::PathElem::Key(_) | crate::k8s::fields::PathElem::Value(_))
                )
        });
        c.suppressed = suppressed;
        c.changes.extend(kept.into_iter().map(|s| s.change));
        if !c.changes.is_empty() {
            let paths = c.changes.iter().map(|ch| format!("{}: {}", ch.path, ch.summary)).collect();
            out.push(Mismatch { object, paths, status: "differs".into() });
        }
    }
    Ok(out)
}

fn op_str(op: Op) -> &'static str {
    match op {
        Op::Add => "add",
        Op::Remove => "remove",
        Op::Change => "change",
    }
}

fn drift(
    t: &Target,
    object: String,
    status: &str,
    changes: Vec<ChangeOut>,
    attribution: Vec<Attribution>,
    last_sync: Option<LastSync>,
    note: Option<String>,
) -> Drift {
    let (a, e) = (&t.app, &t.env);
    let recommendations = match status {
        "missing" => vec![format!("revert: agentops drift revert --app {a} --env {e} (Argo CD sync recreates it)")],
        "untracked" => vec![format!(
            "revert: agentops drift revert --app {a} --env {e} with prune, or delete it if nobody needs it"
        )],
        "acknowledged" => vec![format!("when the reason is gone: agentops drift revert --app {a} --env {e}")],
        _ => vec![
            format!("revert to git: agentops drift revert --app {a} --env {e} (Argo CD sync)"),
            format!(
                "keep it: agentops drift capture --app {a} --env {e} (writes it into overlay {} as a patch, on a new branch)",
                t.overlay
            ),
            format!(
                "mark as temporary: agentops drift acknowledge --app {a} --env {e} --reason TEXT --expires YYYY-MM-DD"
            ),
        ],
    };
    Drift {
        env: e.clone(),
        app: a.clone(),
        application: t.argo.name.clone(),
        overlay: t.overlay.clone(),
        object,
        status: status.into(),
        changes,
        attribution,
        last_sync,
        note,
        recommendations,
    }
}

/// A short stable hash of an object's drift: its changes' paths and summaries, in sorted
/// order, so the same changes hash the same whatever order the diff listed them in.
pub fn changes_hash<'a>(changes: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let mut lines: Vec<String> = changes.into_iter().map(|(path, summary)| format!("{path}\t{summary}")).collect();
    lines.sort();
    blake3::hash(lines.join("\n").as_bytes()).to_hex()[..16].to_string()
}

/// Whether the live object carries an acknowledgement that covers its current changes
/// (`hash`, as [`changes_hash`]), and whether it expired. An acknowledgement recorded for
/// other changes does not apply; one without the hash (older agentops) covers any change.
fn acknowledgement(live: &Value, hash: &str) -> (&'static str, Option<String>) {
    let ann = |k: &str| {
        live.pointer(&format!("/metadata/annotations/{}", format!("{ACK_PREFIX}{k}").replace('/', "~1")))
            .and_then(Value::as_str)
    };
    if ann("temporary") != Some("true") {
        return ("drifted", None);
    }
    let reason = ann("reason").unwrap_or("no reason given");
    if let Some(acknowledged) = ann(ACK_CHANGES)
        && acknowledged != hash
    {
        let date = ann("date").map_or("an unknown date", |d| d.get(..10).unwrap_or(d));
        return (
            "drifted",
            Some(format!("acknowledged on {date} for other changes ({reason}); these differ, so it does not apply")),
        );
    }
    let expires = ann("expires");
    let now = crate::time::now_seconds();
    let expired = expires.is_some_and(|x| {
        let x = if x.len() == 10 { format!("{x}T23:59:59Z") } else { x.to_string() };
        crate::time::parse_time(&x).zip(crate::time::parse_time(&now)).is_some_and(|(e, n)| e < n)
    });
    if expired {
        ("expired", Some(format!("acknowledgement expired on {}: {reason}", expires.unwrap_or_default())))
    } else {
        ("acknowledged", Some(format!("temporary until {}: {reason}", expires.unwrap_or("(no date)"))))
    }
}

/// The Application's last sync, read from the cluster it lives in.
async fn last_sync(client: &Client, res: &Resources, argo: &ArgoApp) -> Option<LastSync> {
    let (ar, caps) = res.get(argocd::API_VERSION, "Application")?;
    let ns = argo.namespace.clone().unwrap_or_else(|| "argocd".into());
    let v = Applications::with(client, ar, caps, &ns).get_opt(&argo.name).await.ok().flatten()?;
    let s = |p: &str| v.pointer(p).and_then(Value::as_str).map(str::to_string);
    Some(LastSync {
        revision: s("/status/sync/revision"),
        time: s("/status/operationState/finishedAt").or_else(|| s("/status/reconciledAt")),
    })
}

/// Who owns each changed path, with the user and source IP of the matching audit event.
fn attribute(live: &Value, changes: &[Change], audit: &[Value], ar: &ApiResource) -> Vec<Attribution> {
    let mut out: Vec<Attribution> = Vec::new();
    for c in changes {
        let Some(o) = diff::owner_of(live, c) else { continue };
        if out.iter().any(|a| a.manager == o.manager && a.operation == o.operation && a.time == o.time) {
            continue;
        }
        let (user, source_ip) = audit_match(live, ar, audit, &o.manager, o.time.as_deref());
        out.push(Attribution { manager: o.manager, operation: o.operation, time: o.time, user, source_ip });
    }
    out
}

/// The successful write to this object nearest the managedFields time; the manager named
/// in the request URI or user agent breaks ties.
fn audit_match(
    live: &Value,
    ar: &ApiResource,
    audit: &[Value],
    manager: &str,
    time: Option<&str>,
) -> (Option<String>, Option<String>) {
    let r = ObjectRef::of(live);
    let target = time.and_then(crate::time::parse_time);
    let mut best: Option<(i64, bool, &Value)> = None;
    for ev in audit {
        let s = |p: &str| ev.pointer(p).and_then(Value::as_str).unwrap_or_default();
        let verb_ok = matches!(s("/verb"), "update" | "patch" | "create");
        let code_ok = ev.pointer("/responseStatus/code").and_then(Value::as_u64).is_some_and(|c| c < 300);
        let same = s("/objectRef/resource") == ar.plural
            && s("/objectRef/name") == r.name
            && s("/objectRef/namespace") == r.namespace.as_deref().unwrap_or_default();
        if !(verb_ok && code_ok && same) {
            continue;
        }
        let t = crate::time::parse_time(s("/stageTimestamp"))
            .or_else(|| crate::time::parse_time(s("/requestReceivedTimestamp")))
            .unwrap_or(0);
        let distance = target.map_or(0, |x| (x - t).abs());
        let named = s("/requestURI").contains(&format!("fieldManager={manager}"))
            || s("/userAgent").split('/').next() == Some(manager);
        let better = match &best {
            None => true,
            Some((d, n, _)) => (distance, !named) < (*d, !*n),
        };
        if better {
            best = Some((distance, named, ev));
        }
    }
    best.map_or((None, None), |(_, _, ev)| {
        let user = ev.pointer("/user/username").and_then(Value::as_str).map(str::to_string);
        let ip = ev.pointer("/sourceIPs/0").and_then(Value::as_str).map(str::to_string);
        (user, ip)
    })
}

fn read_audit(paths: &[PathBuf]) -> Result<Vec<Value>> {
    let mut out = Vec::new();
    for p in paths {
        let text = std::fs::read_to_string(p).map_err(|e| Error::io(p, e))?;
        for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
            let v: Value = serde_json::from_str(line).map_err(|e| Error::Config {
                file: p.display().to_string(),
                line: Some(i as u32 + 1),
                message: format!("not an audit event: {e}"),
            })?;
            out.push(v);
        }
    }
    Ok(out)
}

/// Checks what an acknowledgement would record: a non-blank reason, and an expiry date that
/// is a real calendar date (YYYY-MM-DD) strictly after `today` (YYYY-MM-DD, UTC). The error
/// says what is wrong and the expected form.
pub fn validate_acknowledgement(reason: &str, expires: &str, today: &str) -> std::result::Result<(), String> {
    if reason.trim().is_empty() {
        return Err("the reason is blank: say why the drift is allowed for now, e.g. \"load test until Friday\"".into());
    }
    let expected = format!("expected YYYY-MM-DD, a calendar date after today ({today}, UTC)");
    let b = expires.as_bytes();
    let shaped = b.len() == 10
        && b.iter().enumerate().all(|(i, c)| if i == 4 || i == 7 { *c == b'-' } else { c.is_ascii_digit() });
    if !shaped {
        return Err(format!("expires {expires:?} is not a date: {expected}"));
    }
    let num = |r: std::ops::Range<usize>| expires[r].parse::<u32>().unwrap_or_default();
    let (year, month, day) = (num(0..4), num(5..7), num(8..10));
    if !(1..=12).contains(&month) {
        return Err(format!("expires {expires:?} is not a calendar date: month {month} is not 1-12; {expected}"));
    }
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let last = match month {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    };
    if !(1..=last).contains(&day) {
        return Err(format!(
            "expires {expires:?} is not a calendar date: month {month:02} of {year} has days 1-{last}, not {day}; {expected}"
        ));
    }
    // both are zero-padded YYYY-MM-DD, so their text order is their date order
    if expires <= today {
        return Err(format!(
            "expires {expires:?} is not in the future: it is the last day the drift is allowed, so it must be after today ({today}, UTC); {expected}"
        ));
    }
    Ok(())
}

/// Marks the drifted live objects of one Application as temporary: the acknowledgement
/// annotations, written with a merge patch, including the hash of each object's changes
/// (so a later, different change is drift again). Returns the objects annotated. An invalid
/// reason or expiry date is an error before anything is written.
pub async fn acknowledge(
    client: &Client,
    drifted: &[DriftedObject],
    reason: &str,
    expires: &str,
) -> std::result::Result<Vec<String>, ClusterError> {
    validate_acknowledgement(reason, expires, &crate::time::today()).map_err(ClusterError::Api)?;
    let res = Resources::discover(client).await?;
    let now = crate::time::now_seconds();
    let pp = kube::api::PatchParams { field_manager: Some(MANAGER.into()), ..Default::default() };
    let mut done = Vec::new();
    for (d, desired, live) in drifted {
        // the live object's own apiVersion and kind: no guessing the group from the name
        let r = ObjectRef::of(live);
        let Some((ar, caps)) = res.get(&r.api_version, &r.kind) else { continue };
        let patch = serde_json::json!({"metadata": {"annotations": {
            format!("{ACK_PREFIX}temporary"): "true",
            format!("{ACK_PREFIX}reason"): reason,
            format!("{ACK_PREFIX}date"): now,
            format!("{ACK_PREFIX}expires"): expires,
            format!("{ACK_PREFIX}{ACK_CHANGES}"): acknowledged_hash(d, desired, live),
        }}});
        let body = kube::api::Patch::Merge(&patch);
        let objects = dynamic_api(client, ar, caps, r.namespace.as_deref());
        with_retry(|| objects.patch(&r.name, &pp, &body)).await?;
        done.push(d.object.clone());
    }
    Ok(done)
}

/// The hash of the changes a drift reports, from the objects as read (the report's own
/// summaries may be redacted; the check hashes them before redaction): the diff of the
/// two, kept to the paths the drift lists, which is what the check's filters kept.
fn acknowledged_hash(d: &Drift, desired: &Value, live: &Value) -> String {
    let paths: BTreeSet<&str> = d.changes.iter().map(|c| c.path.as_str()).collect();
    let changes = diff::diff(desired, live);
    changes_hash(
        changes.iter().filter(|c| paths.contains(c.path.as_str())).map(|c| (c.path.as_str(), c.summary.as_str())),
    )
}

/// The Prometheus textfile for `--metrics-file`: drifted objects per env, app and status,
/// and the time of this run.
pub fn metrics_text(report: &DriftReport) -> String {
    let mut counts: BTreeMap<(String, String, String), usize> = BTreeMap::new();
    for d in &report.drifts {
        *counts.entry((d.env.clone(), d.app.clone(), d.status.clone())).or_default() += 1;
    }
    let mut out = String::from(
        "# HELP agentops_drift_objects Objects whose live state differs from git, by status.\n# TYPE agentops_drift_objects gauge\n",
    );
    for ((env, app, status), n) in counts {
        out.push_str(&format!("agentops_drift_objects{{env=\"{env}\",app=\"{app}\",status=\"{status}\"}} {n}\n"));
    }
    out.push_str("# HELP agentops_drift_cluster_up Whether the cluster could be checked.\n# TYPE agentops_drift_cluster_up gauge\n");
    for c in &report.clusters {
        out.push_str(&format!("agentops_drift_cluster_up{{env=\"{}\"}} {}\n", c.env, u8::from(c.status == "ok")));
    }
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    out.push_str(&format!("# HELP agentops_drift_last_run_timestamp_seconds When the check ran.\n# TYPE agentops_drift_last_run_timestamp_seconds gauge\nagentops_drift_last_run_timestamp_seconds {now}\n"));
    out
}

fn no_objects(d: Drift) -> Found {
    (d, None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn acknowledgements_expire() {
        let ack = |expires: &str| json!({"metadata": {"annotations": {"drift.agentops.dev/temporary": "true", "drift.agentops.dev/reason": "r", "drift.agentops.dev/expires": expires}}});
        assert_eq!(acknowledgement(&ack("2999-01-01"), "h").0, "acknowledged");
        assert_eq!(acknowledgement(&ack("2020-01-01"), "h").0, "expired");
        assert_eq!(acknowledgement(&json!({"metadata": {}}), "h").0, "drifted");
    }

    /// A Deployment with a hand-added sidecar, and what git renders for it.
    fn sidecar(image: &str) -> (Value, Value) {
        let desired = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "grafana", "namespace": "monitoring"},
            "spec": {"template": {"spec": {"containers": [{"name": "grafana", "image": "grafana/grafana:10.4.0"}]}}}});
        let mut live = desired.clone();
        live["spec"]["template"]["spec"]["containers"]
            .as_array_mut()
            .unwrap()
            .push(json!({"name": "oauth2-proxy", "image": image}));
        (desired, live)
    }

    /// The hash the check computes for the live object's changes.
    fn check_hash(desired: &Value, live: &Value) -> String {
        let changes: Vec<Change> = diff::diff(desired, live)
            .into_iter()
            .filter(|c| !c.path.starts_with(&format!("metadata.annotations.{ACK_PREFIX}")))
            .collect();
        changes_hash(changes.iter().map(|c| (c.path.as_str(), c.summary.as_str())))
    }

    fn annotate(live: &mut Value, hash: Option<&str>) {
        let mut ann = json!({"drift.agentops.dev/temporary": "true", "drift.agentops.dev/reason": "sso trial",
            "drift.agentops.dev/date": "2025-03-04T10:00:00Z", "drift.agentops.dev/expires": "2999-01-01"});
        if let Some(h) = hash {
            ann["drift.agentops.dev/changes-hash"] = json!(h);
        }
        live["metadata"]["annotations"] = ann;
    }

    #[test]
    fn changes_hash_is_stable_short_and_order_free() {
        let a = changes_hash([("spec.a", "+ a"), ("spec.b", "~ b 1 → 2")]);
        assert_eq!(a, changes_hash([("spec.b", "~ b 1 → 2"), ("spec.a", "+ a")]));
        assert_eq!(a.len(), 16);
        assert_ne!(a, changes_hash([("spec.a", "+ a"), ("spec.b", "~ b 1 → 3")]));
        assert_ne!(a, changes_hash([("spec.a", "+ a")]));
    }

    #[test]
    fn an_acknowledgement_covers_the_changes_it_was_made_for_only() {
        let (desired, mut live) = sidecar("quay.io/oauth2-proxy/oauth2-proxy:v7.4.0");
        // what `acknowledge` records, from the drift as reported
        let drift_of = |live: &Value| Drift {
            env: "prod-west".into(),
            app: "grafana".into(),
            application: "grafana-prod-west".into(),
            overlay: "apps/grafana/overlays/prod-west".into(),
            object: "Deployment/monitoring/grafana".into(),
            status: "drifted".into(),
            changes: diff::diff(&desired, live)
                .into_iter()
                .filter(|c| !c.path.starts_with(&format!("metadata.annotations.{ACK_PREFIX}")))
                .map(|c| ChangeOut {
                    op: op_str(c.op).into(),
                    path: c.path,
                    from: c.from,
                    to: c.to,
                    summary: c.summary,
                })
                .collect(),
            attribution: Vec::new(),
            last_sync: None,
            note: None,
            recommendations: Vec::new(),
        };
        let recorded = acknowledged_hash(&drift_of(&live), &desired, &live);
        annotate(&mut live, Some(&recorded));
        assert_eq!(recorded, check_hash(&desired, &live), "the annotations themselves are not part of the changes");

        // the same changes: acknowledged
        let (status, note) = acknowledgement(&live, &check_hash(&desired, &live));
        assert_eq!(status, "acknowledged");
        assert!(note.unwrap().contains("sso trial"));

        // a further change (the sidecar's image): drifted, saying why the acknowledgement does not apply
        live["spec"]["template"]["spec"]["containers"][1]["image"] = json!("quay.io/oauth2-proxy/oauth2-proxy:v7.6.0");
        let (status, note) = acknowledgement(&live, &check_hash(&desired, &live));
        assert_eq!(status, "drifted");
        let note = note.unwrap();
        assert!(
            note.starts_with("acknowledged on 2025-03-04 for other changes") && note.contains("these differ"),
            "{note}"
        );

        // git changes the image of the main container: other changes again
        let (mut desired2, _) = sidecar("quay.io/oauth2-proxy/oauth2-proxy:v7.4.0");
        desired2["spec"]["template"]["spec"]["containers"][0]["image"] = json!("grafana/grafana:11.0.0");
        let (_, mut live2) = sidecar("quay.io/oauth2-proxy/oauth2-proxy:v7.4.0");
        annotate(&mut live2, Some(&recorded));
        assert_eq!(acknowledgement(&live2, &check_hash(&desired2, &live2)).0, "drifted");

        // an expired acknowledgement of other changes is drift, not expired
        live["metadata"]["annotations"]["drift.agentops.dev/expires"] = json!("2020-01-01");
        assert_eq!(acknowledgement(&live, &check_hash(&desired, &live)).0, "drifted");
    }

    #[test]
    fn an_acknowledgement_without_the_hash_covers_any_change_as_before() {
        let (desired, mut live) = sidecar("quay.io/oauth2-proxy/oauth2-proxy:v7.6.0");
        annotate(&mut live, None);
        let (status, note) = acknowledgement(&live, &check_hash(&desired, &live));
        assert_eq!(status, "acknowledged");
        assert_eq!(note.as_deref(), Some("temporary until 2999-01-01: sso trial"));
        live["metadata"]["annotations"]["drift.agentops.dev/expires"] = json!("2020-01-01");
        assert_eq!(acknowledgement(&live, &check_hash(&desired, &live)).0, "expired");
    }

    #[test]
    fn the_expiry_date_must_be_a_calendar_date_after_today() {
        let today = "2024-06-15";
        let check = |expires: &str| validate_acknowledgement("load test", expires, today);
        assert_eq!(check("2024-06-16"), Ok(()));
        assert_eq!(check("2999-01-01"), Ok(()));
        // not a date at all
        for bad in ["tomorrow", "2024-6-16", "2024/06/16", "2024-06-16T00:00:00Z", "", "+024-06-16"] {
            let e = check(bad).unwrap_err();
            assert!(e.contains("is not a date") && e.contains("expected YYYY-MM-DD"), "{bad}: {e}");
        }
        // impossible months and days
        let e = check("2026-13-45").unwrap_err();
        assert!(e.contains("month 13 is not 1-12") && e.contains("expected YYYY-MM-DD"), "{e}");
        assert!(check("2026-00-10").unwrap_err().contains("month 0 is not 1-12"));
        let e = check("2026-04-31").unwrap_err();
        assert!(e.contains("has days 1-30, not 31"), "{e}");
        assert!(check("2026-01-32").unwrap_err().contains("has days 1-31, not 32"));
        assert!(check("2026-01-00").unwrap_err().contains("not 0"));
        // February 29th: leap years only (every 4th, not every 100th, but every 400th)
        assert_eq!(check("2028-02-29"), Ok(()));
        assert_eq!(check("2400-02-29"), Ok(()));
        let e = check("2027-02-29").unwrap_err();
        assert!(e.contains("month 02 of 2027 has days 1-28, not 29"), "{e}");
        assert!(check("2100-02-29").unwrap_err().contains("has days 1-28"));
        assert!(check("2028-02-30").unwrap_err().contains("has days 1-29"));
        // today and the past
        for past in ["2024-06-15", "2024-06-14", "2020-01-01", "2024-02-29"] {
            let e = check(past).unwrap_err();
            assert!(e.contains("is not in the future") && e.contains("today (2024-06-15, UTC)"), "{past}: {e}");
        }
    }

    #[test]
    fn the_reason_must_not_be_blank() {
        for blank in ["", " ", "\t\n"] {
            let e = validate_acknowledgement(blank, "2999-01-01", "2024-06-15").unwrap_err();
            assert!(e.contains("reason is blank"), "{e}");
        }
        assert_eq!(validate_acknowledgement("x", "2999-01-01", "2024-06-15"), Ok(()));
    }

    #[test]
    fn today_is_a_utc_date() {
        let t = crate::time::today();
        assert_eq!(validate_acknowledgement("r", &t, "0000-01-01"), Ok(()), "{t}");
    }

    #[tokio::test]
    async fn invalid_acknowledgements_write_nothing() {
        // a client for a server that does not exist: any request would fail with a connection error
        let config = kube::Config::new("http://127.0.0.1:9".parse().unwrap());
        let client = Client::try_from(config).unwrap();
        let (desired, live) = sidecar("x");
        let d = Drift {
            env: "e".into(),
            app: "a".into(),
            application: "a-e".into(),
            overlay: "o".into(),
            object: "Deployment/monitoring/grafana".into(),
            status: "drifted".into(),
            changes: Vec::new(),
            attribution: Vec::new(),
            last_sync: None,
            note: None,
            recommendations: Vec::new(),
        };
        let drifted = vec![(d, desired, live)];
        for (reason, expires, says) in
            [("r", "2026-13-45", "month 13"), ("r", "2020-01-01", "not in the future"), ("  ", "2999-01-01", "blank")]
        {
            let e = acknowledge(&client, &drifted, reason, expires).await.unwrap_err().to_string();
            assert!(e.contains(says), "{expires}: {e}");
        }
    }
}
