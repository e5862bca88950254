//! The analyst: service → dependency edges from the scanner's findings, each with an access
//! mode (from config keys, env names and connection-string hints) and a criticality (from
//! replicas, PodDisruptionBudgets, priority classes and labels), and which services the
//! clusters actually run (unknown when a cluster cannot be reached).

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::scan::{Dependency, FindingKind, Scan};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Access {
    ReadOnly,
    ReadWrite,
}

impl Access {
    pub fn label(self) -> &'static str {
        match self {
            Access::ReadOnly => "read-only",
            Access::ReadWrite => "read-write",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Criticality {
    Low,
    Medium,
    High,
    Critical,
}

impl Criticality {
    pub fn label(self) -> &'static str {
        match self {
            Criticality::Low => "low",
            Criticality::Medium => "medium",
            Criticality::High => "high",
            Criticality::Critical => "critical",
        }
    }
}

/// Whether a cluster runs the service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Running {
    /// Ready replicas in the cluster.
    Yes,
    /// Deployed with no ready replica, or not deployed.
    No,
    /// The cluster was not asked or could not answer.
    Unknown,
}

/// One environment of a service's use of the dependency.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct EnvUse {
    pub env: String,
    /// References in this environment.
    pub references: u32,
    /// Highest replica count of its workloads here.
    pub replicas: u32,
    pub running: Running,
}

/// A service that depends on the dependency: one edge of the graph.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ServiceNode {
    pub app: String,
    #[serde(default)]
    pub namespace: Option<String>,
    pub access: Access,
    /// Why that access mode.
    pub access_reason: String,
    pub criticality: Criticality,
    /// Why that criticality.
    pub criticality_reason: String,
    /// The kinds of references it has.
    pub kinds: Vec<FindingKind>,
    pub envs: Vec<EnvUse>,
    /// The analyst's note (wording from a model, when one was asked).
    #[serde(default)]
    pub note: Option<String>,
}

/// The analyst's hand-off.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct Graph {
    pub dependency: Dependency,
    /// What replaces it.
    pub to: String,
    pub envs: Vec<String>,
    pub services: Vec<ServiceNode>,
    /// The dependency's own Argo CD Applications (`file:line`), removed at cleanup.
    pub dependency_applications: Vec<String>,
    /// Whether the clusters were asked which services run.
    pub clusters_checked: bool,
    /// What the cluster check or the model review noticed.
    #[serde(default)]
    pub notes: Vec<String>,
}

impl Graph {
    pub fn service(&self, app: &str) -> Option<&ServiceNode> {
        self.services.iter().find(|s| s.app == app)
    }
}

const READ_ONLY_HINTS: &[&str] = &["readonly", "read_only", "read-only", "replica", "reader", "ro"];

/// Builds the graph from the scanner's hand-off (clusters not asked yet).
pub fn analyze(scan: &Scan, to: &str) -> Graph {
    let mut by_app: BTreeMap<&str, Vec<&super::scan::Finding>> = BTreeMap::new();
    for f in &scan.findings {
        if Some(&f.app) != scan.dependency.app.as_ref() {
            by_app.entry(f.app.as_str()).or_default().push(f);
        }
    }
    let mut services = Vec::new();
    for (app, fs) in by_app {
        let mut kinds: Vec<FindingKind> = fs.iter().map(|f| f.kind).collect();
        kinds.sort();
        kinds.dedup();
        let (access, access_reason) = access_of(&fs);
        let workloads: Vec<_> = scan.workloads.iter().filter(|w| w.app == app).collect();
        let (criticality, criticality_reason) = criticality_of(&workloads, &kinds);
        let envs = scan
            .envs
            .iter()
            .filter_map(|e| {
                let n = fs.iter().filter(|f| &f.env == e).count() as u32;
                (n > 0).then(|| EnvUse {
                    env: e.clone(),
                    references: n,
                    replicas: workloads.iter().filter(|w| &w.env == e).map(|w| w.replicas).max().unwrap_or(0),
                    running: Running::Unknown,
                })
            })
            .collect();
        services.push(ServiceNode {
            app: app.to_string(),
            namespace: workloads.iter().find_map(|w| w.namespace.clone()),
            access,
            access_reason,
            criticality,
            criticality_reason,
            kinds,
            envs,
            note: None,
        });
    }
    let dependency_applications = scan
        .findings
        .iter()
        .filter(|f| f.kind == FindingKind::ArgocdApplication)
        .map(|f| format!("{}:{}", f.file, f.line))
        .collect();
    Graph {
        dependency: scan.dependency.clone(),
        to: to.to_string(),
        envs: scan.envs.clone(),
        services,
        dependency_applications,
        clusters_checked: false,
        notes: Vec::new(),
    }
}

fn access_of(fs: &[&super::scan::Finding]) -> (Access, String) {
    if fs.iter().all(|f| f.kind.observes()) {
        return (Access::ReadOnly, "only monitoring reads it (metrics, dashboards, alerts)".into());
    }
    let hint = fs.iter().find_map(|f| {
        let mut texts = vec![f.field.to_ascii_lowercase()];
        if let Some(v) = &f.value {
            texts.push(v.to_ascii_lowercase());
        }
        texts.iter().find_map(|t| {
            let words: Vec<&str> = t.split(|c: char| !c.is_ascii_alphanumeric()).collect();
            let word_hit = READ_ONLY_HINTS.iter().any(|h| words.contains(h));
            let text_hit = t.contains("readonly=true") || t.contains("read_only") || t.contains("read-only");
            (word_hit || text_hit).then(|| format!("{} {}", f.kind.label(), f.field))
        })
    });
    match hint {
        Some(h) => (Access::ReadOnly, format!("read-only hint in {h}")),
        None => (Access::ReadWrite, "connection settings without a read-only hint".into()),
    }
}

fn criticality_of(workloads: &[&super::scan::Workload], kinds: &[FindingKind]) -> (Criticality, String) {
    if workloads.is_empty() {
        let why = if kinds.iter().all(|k| k.observes()) { "monitoring only" } else { "no workload found" };
        return (Criticality::Low, why.into());
    }
    let label = workloads.iter().find_map(|w| w.criticality_label.clone());
    let priority = workloads.iter().find_map(|w| w.priority_class.clone());
    let max_replicas = workloads.iter().map(|w| w.replicas).max().unwrap_or(0);
    let pdb = workloads.iter().any(|w| w.pdb);
    let is = |v: &Option<String>, words: &[&str]| {
        v.as_ref().is_some_and(|s| words.iter().any(|w| s.to_ascii_lowercase().contains(w)))
    };
    if is(&label, &["critical"]) || is(&priority, &["critical"]) {
        let why = match (&label, &priority) {
            (Some(l), _) if l.to_ascii_lowercase().contains("critical") => format!("label {l}"),
            (_, Some(p)) => format!("priority class {p}"),
            _ => "critical".into(),
        };
        return (Criticality::Critical, why);
    }
    let mut reasons = Vec::new();
    if pdb {
        reasons.push("PodDisruptionBudget".to_string());
    }
    if max_replicas >= 3 {
        reasons.push(format!("{max_replicas} replicas"));
    }
    if is(&label, &["high", "tier-1", "tier1"]) || is(&priority, &["high"]) {
        reasons.push(label.or(priority).unwrap_or_default());
    }
    if !reasons.is_empty() {
        return (Criticality::High, reasons.join(", "));
    }
    if max_replicas >= 2 {
        return (Criticality::Medium, format!("{max_replicas} replicas"));
    }
    (Criticality::Low, format!("{max_replicas} replica(s), no PodDisruptionBudget"))
}

/// Which workloads each environment's cluster runs: (env, Some(names of workloads with
/// ready replicas, names of all)) or None when the cluster could not answer.
pub type ClusterAnswer = (String, Option<(Vec<String>, Vec<String>)>, Option<String>);

/// Marks each service's environments running or not from the clusters' answers.
pub fn apply_cluster_answers(graph: &mut Graph, scan: &Scan, answers: &[ClusterAnswer]) {
    graph.clusters_checked = true;
    for (env, answer, error) in answers {
        if let Some(e) = error {
            graph.notes.push(format!("{env}: cluster not reachable ({e}); running is unknown"));
        }
        for s in &mut graph.services {
            let names: Vec<&str> =
                scan.workloads.iter().filter(|w| w.app == s.app && &w.env == env).map(|w| w.name.as_str()).collect();
            let Some(u) = s.envs.iter_mut().find(|u| &u.env == env) else { continue };
            u.running = match answer {
                None => Running::Unknown,
                Some(_) if names.is_empty() => Running::Unknown,
                Some((ready, _)) if names.iter().any(|n| ready.iter().any(|r| r == n)) => Running::Yes,
                Some(_) => Running::No,
            };
        }
    }
}

/// Asks each environment's cluster which Deployments, StatefulSets and DaemonSets have
/// ready replicas. A cluster that cannot be reached is "unknown", never a failure.
pub async fn ask_clusters(ctx: &crate::tools::ToolCtx, envs: &[String]) -> Vec<ClusterAnswer> {
    use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
    use kube::Api;
    use kube::api::ListParams;

    async fn ready(client: kube::Client) -> Result<(Vec<String>, Vec<String>), crate::cluster::ClusterError> {
        let lp = ListParams::default();
        let mut ready = Vec::new();
        let mut all = Vec::new();
        let api_deps: Api<Deployment> = Api::all(client.clone());
        let deps = crate::cluster::with_retry(|| api_deps.list(&lp)).await?;
        for d in deps.items {
            let n = d.metadata.name.clone().unwrap_or_default();
            if d.status.and_then(|s| s.ready_replicas).unwrap_or(0) > 0 {
                ready.push(n.clone());
            }
            all.push(n);
        }
        let api_sts: Api<StatefulSet> = Api::all(client.clone());
        let sts = crate::cluster::with_retry(|| api_sts.list(&lp)).await?;
        for d in sts.items {
            let n = d.metadata.name.clone().unwrap_or_default();
            if d.status.and_then(|s| s.ready_replicas).unwrap_or(0) > 0 {
                ready.push(n.clone());
            }
            all.push(n);
        }
        let api_dss: Api<DaemonSet> = Api::all(client.clone());
        let dss = crate::cluster::with_retry(|| api_dss.list(&lp)).await?;
        for d in dss.items {
            let n = d.metadata.name.clone().unwrap_or_default();
            if d.status.map(|s| s.number_ready).unwrap_or(0) > 0 {
                ready.push(n.clone());
            }
            all.push(n);
        }
        Ok((ready, all))
    }

    match ctx.across_clusters(envs, ready).await {
        Ok(per) => per.into_iter().map(|p| (p.env, p.answer, p.error)).collect(),
        Err(e) => envs.iter().map(|env| (env.clone(), None, Some(e.public.clone()))).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workflows::migrate::scan::{Finding, Workload};

    fn finding(app: &str, kind: FindingKind, field: &str, value: Option<&str>) -> Finding {
        Finding {
            app: app.into(),
            env: "dev".into(),
            kind,
            file: format!("apps/{app}/base/x.yaml"),
            line: 1,
            object: "X/x".into(),
            field: field.into(),
            value: value.map(str::to_string),
            container: None,
            generator: None,
        }
    }

    fn workload(app: &str, replicas: u32, pdb: bool, prio: Option<&str>) -> Workload {
        Workload {
            app: app.into(),
            env: "dev".into(),
            kind: "Deployment".into(),
            name: app.into(),
            namespace: Some("ns".into()),
            replicas,
            pdb,
            priority_class: prio.map(str::to_string),
            criticality_label: None,
        }
    }

    #[test]
    fn access_and_criticality() {
        let scan = Scan {
            dependency: Dependency { name: "redis".into(), ..Default::default() },
            envs: vec!["dev".into()],
            findings: vec![
                finding("a", FindingKind::ConfigMapValue, "REDIS_REPLICA_HOST", Some("redis")),
                finding("b", FindingKind::ContainerEnv, "REDIS_HOST", Some("redis")),
                finding("c", FindingKind::GrafanaDashboard, "d.json", Some("redis_up")),
                finding("d", FindingKind::ContainerEnv, "REDIS_URL", Some("redis://redis:6379?readonly=true")),
            ],
            workloads: vec![
                workload("a", 1, false, None),
                workload("b", 4, true, Some("business-critical")),
                workload("d", 2, false, None),
            ],
            failed: vec![],
        };
        let g = analyze(&scan, "elasticache");
        let s = |n: &str| g.service(n).unwrap().clone();
        assert_eq!((s("a").access, s("a").criticality), (Access::ReadOnly, Criticality::Low));
        assert_eq!((s("b").access, s("b").criticality), (Access::ReadWrite, Criticality::Critical));
        assert_eq!((s("c").access, s("c").criticality), (Access::ReadOnly, Criticality::Low));
        assert_eq!((s("d").access, s("d").criticality), (Access::ReadOnly, Criticality::Medium));
        assert!(g.services.iter().all(|s| s.envs[0].running == Running::Unknown));
    }
}
