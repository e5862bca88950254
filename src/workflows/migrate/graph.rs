//! The analyst: service → dependency edges from the scanner's findings, each with an access
//! mode (from config keys, env names and connection-string hints) and a criticality (from
//! replicas, PodDisruptionBudgets, priority classes and labels), and which services the
//! clusters actually run (unknown when a cluster cannot be reached).

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use std::collections::BTreeSet;

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

/// What a service keeps in the dependency, in the order a migration moves them: what is
/// cheapest to lose first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Usage {
    /// Reads only its metrics (dashboards, alerts, exporters): never a client or a canary.
    Observer,
    /// Reads data others write (a replica, a read-only connection).
    ReadOnly,
    /// A cache the service refills from its own source.
    Cache,
    /// Counters, rate limits, locks, reservations: short-lived data with a TTL.
    RateTtl,
    /// User sessions or tokens: losing them logs people out.
    Sessions,
    /// Work queues and idempotency keys: losing them loses jobs or repeats side effects.
    QueueIdempotency,
    /// Nothing in the repo says: treated with the most care.
    Unknown,
}

impl Usage {
    pub fn label(self) -> &'static str {
        match self {
            Usage::Observer => "observer",
            Usage::ReadOnly => "read-only",
            Usage::Cache => "cache",
            Usage::RateTtl => "rate/TTL data",
            Usage::Sessions => "sessions",
            Usage::QueueIdempotency => "queues/idempotency",
            Usage::Unknown => "unknown data",
        }
    }
}

/// What a service keeps in the dependency, and how the repo says so.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Keeps {
    pub usage: Usage,
    /// What the repo says, quoted with where: comments, settings and args that decided it.
    pub evidence: Vec<String>,
    /// Its TTL settings (`SESSION_TTL_SECONDS=3600`; per environment where they differ).
    pub ttls: Vec<String>,
    /// The logical databases it selects (`REDIS_DB=2`), per environment where they differ.
    pub databases: Vec<String>,
    /// A setting for TLS to the dependency (`rediss://`, `*_TLS`, `*_SSL`).
    pub tls: bool,
    /// A password, token or user for the dependency (names only).
    pub auth: bool,
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
    /// What it keeps in the dependency, read from the repo.
    pub keeps: Keeps,
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
        let keeps = keeps_of(scan, app, &kinds, access);
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
            keeps,
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

/// Words that say what a service keeps, from the riskiest: a service is as risky as the
/// riskiest thing it keeps.
const USAGE_WORDS: &[(Usage, &[&str])] = &[
    (
        Usage::QueueIdempotency,
        &["queue", "outbox", "idempot", "job", "jobs", "worker", "stream", "pops", "enqueue", "consumer", "broker"],
    ),
    (Usage::Sessions, &["session", "sessions", "token", "tokens", "login", "logged"]),
    (
        Usage::RateTtl,
        &[
            "rate",
            "ratelimit",
            "rate_limit",
            "throttle",
            "throttling",
            "reservation",
            "reservations",
            "counter",
            "counters",
            "lock",
            "locks",
            "quota",
        ],
    ),
    (Usage::Cache, &["cache", "cached", "caching", "read-through", "memo"]),
];

/// Lowercase words of a text (`RATE_LIMIT_BACKEND` -> rate, limit, backend, rate_limit).
fn usage_words(text: &str) -> Vec<String> {
    let lower = text.to_ascii_lowercase();
    let mut out: Vec<String> =
        lower.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-')).map(str::to_string).collect();
    out.extend(lower.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).map(str::to_string));
    out.retain(|w| !w.is_empty());
    out
}

fn usage_in(text: &str) -> Option<Usage> {
    let words = usage_words(text);
    USAGE_WORDS.iter().find_map(|(u, ws)| {
        ws.iter().any(|w| words.iter().any(|x| x == w || (w.len() > 5 && x.starts_with(w)))).then_some(*u)
    })
}

/// What a service keeps in the dependency, from what the repo says around its references:
/// comments, setting names and values, container args; an observer by the kinds of its
/// references; a read-only user by its access.
fn keeps_of(scan: &Scan, app: &str, kinds: &[FindingKind], access: Access) -> Keeps {
    let ctx = scan.context_of(app);
    let settings = ctx.map(|c| c.settings.as_slice()).unwrap_or_default();
    let dep = scan.dependency.name.to_ascii_lowercase();
    let per_env = |s: &super::scan::Setting| {
        let v = s.value.as_deref().unwrap_or("(secret)");
        if s.envs.len() == scan.envs.len() {
            format!("{}={v}", s.key)
        } else {
            format!("{}={v} ({})", s.key, s.envs.join(", "))
        }
    };
    let ttls: Vec<String> = settings
        .iter()
        .filter(|s| {
            let k = s.key.to_ascii_uppercase();
            k.contains("TTL") || k.ends_with("_EXPIRY") || k.ends_with("_EXPIRE_SECONDS")
        })
        .map(per_env)
        .collect();
    let databases: Vec<String> = settings
        .iter()
        .filter(|s| {
            let k = s.key.to_ascii_uppercase();
            (k.ends_with("_DB") || k.ends_with("_DATABASE") || k.ends_with(".DATABASE"))
                && k.contains(&dep.to_ascii_uppercase())
        })
        .map(per_env)
        .collect();
    let tls = settings.iter().any(|s| {
        let k = s.key.to_ascii_uppercase();
        (k.contains("TLS") || k.contains("SSL")) && k.contains(&dep.to_ascii_uppercase())
            || s.value.as_deref().is_some_and(|v| v.starts_with(&format!("{dep}s://")))
    });
    let auth = settings.iter().any(|s| {
        let k = s.key.to_ascii_uppercase();
        ["PASSWORD", "AUTH", "TOKEN", "USERNAME", "USER"].iter().any(|w| k.contains(w))
            && k.contains(&dep.to_ascii_uppercase())
    }) || scan.findings.iter().any(|f| {
        // a key of its own about the dependency: `SESSION_STORE_PASSWORD`, `redis.auth.token`
        let words: Vec<String> =
            f.field.split(|c: char| !c.is_ascii_alphanumeric()).map(|w| w.to_ascii_uppercase()).collect();
        f.app == app
            && (f.kind == FindingKind::SecretKey
                || (matches!(f.kind, FindingKind::ContainerEnv | FindingKind::ConfigMapKey | FindingKind::HelmValues)
                    && words.iter().any(|w| matches!(w.as_str(), "PASSWORD" | "AUTH" | "TOKEN"))))
    });
    if kinds.iter().all(|k| k.observes()) {
        let evidence = scan
            .findings
            .iter()
            .filter(|f| f.app == app)
            .map(|f| format!("{} {} ({}:{})", f.kind.label(), f.field, f.file, f.line))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        return Keeps { usage: Usage::Observer, evidence, ttls, databases, tls, auth };
    }
    if access == Access::ReadOnly {
        return Keeps {
            usage: Usage::ReadOnly,
            evidence: vec!["reads only (a read-only hint in its settings)".into()],
            ttls,
            databases,
            tls,
            auth,
        };
    }
    // every piece of text that may say it, with where it is
    let mut texts: Vec<(String, String)> = Vec::new();
    if let Some(c) = ctx {
        for cm in &c.comments {
            texts.push((cm.text.clone(), format!("{}:{}", cm.file, cm.line)));
        }
        for st in &c.settings {
            texts.push((st.key.clone(), format!("setting {}", per_env(st))));
            if let Some(v) = &st.value {
                texts.push((v.clone(), format!("setting {}", per_env(st))));
            }
        }
        for a in &c.args {
            texts.push((a.clone(), "container args".into()));
        }
    }
    let mut found: BTreeMap<Usage, Vec<String>> = BTreeMap::new();
    for (text, at) in &texts {
        if let Some(u) = usage_in(text) {
            let quoted = if at.starts_with("setting ") {
                at.trim_start_matches("setting ").to_string()
            } else {
                format!("\"{text}\" ({at})")
            };
            let e = found.entry(u).or_default();
            if !e.contains(&quoted) {
                e.push(quoted);
            }
        }
    }
    // the riskiest usage decides; its evidence first, then the rest
    let usage = found.keys().max().copied().unwrap_or(Usage::Unknown);
    let mut evidence: Vec<String> = found.get(&usage).cloned().unwrap_or_default();
    for (u, e) in found.iter().rev() {
        if *u != usage {
            evidence.extend(e.iter().cloned());
        }
    }
    evidence.truncate(4);
    Keeps { usage, evidence, ttls, databases, tls, auth }
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
pub async fn ask_clusters(ctx: &crate::workflows::Ctx, envs: &[String]) -> Vec<ClusterAnswer> {
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
        Err(e) => envs.iter().map(|env| (env.clone(), None, Some(e.to_string()))).collect(),
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
            context: vec![],
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
