//! The scanner: every reference to the dependency, per environment. Rendered output is
//! matched structurally (ConfigMap keys and values, Secret key names, container env and
//! envFrom, Services and Endpoints, NetworkPolicy rules, ServiceMonitors, PrometheusRules,
//! Grafana dashboards in ConfigMaps), each match traced back to the file and line that set
//! it; Helm values files and the dependency's own Argo CD Applications are read as sources.
//! Matching is by names, hosts, ports and labels: comments, READMEs and metadata labels of
//! other systems are never references. Secret values are never read.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use rayon::prelude::*;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::MigrateRequest;
use crate::error::{Error, Result};
use crate::kustomize::Engine;
use crate::repo::{Closure, Leaf, Repo};

/// How a finding references the dependency.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum FindingKind {
    /// A ConfigMap value naming the dependency's host (or a connection string to it).
    ConfigMapValue,
    /// A ConfigMap key about the dependency (`REDIS_DB`).
    ConfigMapKey,
    /// A Secret key about the dependency; the value is never read.
    SecretKey,
    /// A container env var (by name, value, or a key it reads).
    ContainerEnv,
    /// A container's envFrom of a ConfigMap or Secret that references the dependency.
    ContainerEnvFrom,
    /// A Service pointing at the dependency (ExternalName, or selector-less on its port).
    Service,
    /// Endpoints or an EndpointSlice on the dependency's port.
    Endpoints,
    /// A NetworkPolicy rule to the dependency's pods, or to a CIDR on its port.
    NetworkPolicy,
    /// A ServiceMonitor or PodMonitor selecting the dependency.
    ServiceMonitor,
    /// A PrometheusRule whose expression reads the dependency's metrics.
    PrometheusRule,
    /// A Grafana dashboard (JSON in a ConfigMap) whose queries read the dependency's metrics.
    GrafanaDashboard,
    /// A Helm values file setting the dependency's host, port or settings.
    HelmValues,
    /// An Argo CD Application that deploys the dependency itself.
    ArgocdApplication,
}

impl FindingKind {
    pub fn label(self) -> &'static str {
        match self {
            FindingKind::ConfigMapValue => "ConfigMap value",
            FindingKind::ConfigMapKey => "ConfigMap key",
            FindingKind::SecretKey => "Secret key",
            FindingKind::ContainerEnv => "container env",
            FindingKind::ContainerEnvFrom => "container envFrom",
            FindingKind::Service => "Service",
            FindingKind::Endpoints => "Endpoints",
            FindingKind::NetworkPolicy => "NetworkPolicy",
            FindingKind::ServiceMonitor => "ServiceMonitor",
            FindingKind::PrometheusRule => "PrometheusRule",
            FindingKind::GrafanaDashboard => "Grafana dashboard",
            FindingKind::HelmValues => "Helm values",
            FindingKind::ArgocdApplication => "Argo CD Application",
        }
    }

    /// Kinds that only observe the dependency (they read metrics, never data).
    pub fn observes(self) -> bool {
        matches!(self, FindingKind::ServiceMonitor | FindingKind::PrometheusRule | FindingKind::GrafanaDashboard)
    }
}

/// One reference to the dependency.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Finding {
    /// The app that holds the reference.
    pub app: String,
    pub env: String,
    pub kind: FindingKind,
    /// Repo-relative file that sets it, and its line (0 when unknown).
    pub file: String,
    pub line: u32,
    /// `Kind/name` of the rendered object (or of the file's subject).
    pub object: String,
    /// The key, env var, rule or field that references it.
    pub field: String,
    /// The value, when it is not secret.
    #[serde(default)]
    pub value: Option<String>,
    /// The container, for env and envFrom.
    #[serde(default)]
    pub container: Option<String>,
    /// The generator that makes the ConfigMap or Secret, when one does.
    #[serde(default)]
    pub generator: Option<String>,
}

/// What the dependency is, as matched.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Dependency {
    pub name: String,
    /// The repo's app that runs it, when there is one.
    #[serde(default)]
    pub app: Option<String>,
    pub namespaces: Vec<String>,
    /// Its Service names.
    pub services: Vec<String>,
    /// Fully qualified host names clients use.
    pub hosts: Vec<String>,
    pub ports: Vec<u16>,
    /// Its pods' labels that selectors use.
    pub labels: BTreeMap<String, String>,
}

/// What the analyst needs about a workload of an app that references the dependency.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Workload {
    pub app: String,
    pub env: String,
    pub kind: String,
    pub name: String,
    #[serde(default)]
    pub namespace: Option<String>,
    /// Replicas (an HPA's minReplicas when higher).
    pub replicas: u32,
    /// A PodDisruptionBudget covers the app in this environment.
    pub pdb: bool,
    #[serde(default)]
    pub priority_class: Option<String>,
    /// A `criticality`/`tier` label's value, when there is one.
    #[serde(default)]
    pub criticality_label: Option<String>,
}

/// A setting next to a service's references (a key of the ConfigMap it reads, an env var
/// of its container, a Helm values key), with the environments that have each value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Setting {
    pub key: String,
    /// None for a value that is secret (or too long to be a setting).
    #[serde(default)]
    pub value: Option<String>,
    pub envs: Vec<String>,
}

/// A comment line in a file that holds a service's references.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
pub struct Comment {
    pub file: String,
    pub line: u32,
    pub text: String,
}

/// What the repo says around a service's references: what the analyst reads to tell what
/// the service keeps in the dependency (a cache, sessions, a queue...).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ServiceContext {
    pub app: String,
    pub settings: Vec<Setting>,
    /// Arguments of the containers that reference the dependency.
    pub args: Vec<String>,
    /// Comments in the files that hold its references.
    pub comments: Vec<Comment>,
}

/// The scanner's hand-off.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct Scan {
    pub dependency: Dependency,
    /// Environments scanned, in the repo's order.
    pub envs: Vec<String>,
    pub findings: Vec<Finding>,
    /// Workloads of the apps with findings.
    pub workloads: Vec<Workload>,
    /// Overlays that did not render (`dir: error`); their references are unknown.
    pub failed: Vec<String>,
    /// Per service, what the repo says around its references.
    #[serde(default)]
    pub context: Vec<ServiceContext>,
}

impl Scan {
    pub fn context_of(&self, app: &str) -> Option<&ServiceContext> {
        self.context.iter().find(|c| c.app == app)
    }
}

impl Scan {
    /// Apps that reference the dependency (the dependency's own app excluded).
    pub fn services(&self) -> BTreeSet<String> {
        self.findings.iter().filter(|f| Some(&f.app) != self.dependency.app.as_ref()).map(|f| f.app.clone()).collect()
    }
}

const WELL_KNOWN_PORTS: &[(&str, u16)] = &[
    ("redis", 6379),
    ("memcached", 11211),
    ("postgres", 5432),
    ("postgresql", 5432),
    ("mysql", 3306),
    ("mariadb", 3306),
    ("mongodb", 27017),
    ("mongo", 27017),
    ("rabbitmq", 5672),
    ("kafka", 9092),
    ("elasticsearch", 9200),
    ("nats", 4222),
];

const WORKLOAD_KINDS: &[&str] = &["Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob", "Pod"];

/// Runs the scanner over the requested environments.
pub fn scan(repo: &Repo, engine: &Engine, req: &MigrateRequest, jobs: usize) -> Result<Scan> {
    let envs = target_envs(repo, &req.envs)?;
    let dep_app = repo.apps.keys().find(|a| a.eq_ignore_ascii_case(&req.from)).cloned();
    let leaves: Vec<&Leaf> =
        repo.leaves.iter().filter(|l| l.app.is_some() && l.env.as_ref().is_some_and(|e| envs.contains(e))).collect();
    let rendered = render_all(repo, engine, &leaves, jobs)?;
    let mut failed = Vec::new();
    let mut objects: Vec<(&Leaf, Vec<Value>)> = Vec::new();
    for (leaf, out) in leaves.iter().zip(rendered) {
        match out {
            Ok(objs) => objects.push((leaf, objs)),
            Err(e) => failed.push(format!("{}: {}", leaf.dir, e.lines().next().unwrap_or_default())),
        }
    }
    let dependency = identify(&req.from, dep_app.as_deref(), &objects);
    let matcher = Matcher::new(&dependency);
    let mut locator = Locator::new(repo);
    let mut findings = Vec::new();
    let mut workloads = Vec::new();
    let mut settings: BTreeMap<String, Vec<(String, Option<String>, String)>> = BTreeMap::new();
    let mut args: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (leaf, objs) in &objects {
        let (Some(app), Some(env)) = (&leaf.app, &leaf.env) else { continue };
        if Some(app) == dep_app.as_ref() {
            continue;
        }
        workloads.extend(workload_facts(app, env, objs));
        let closure = repo.closure(&leaf.dir);
        let raw = matcher.objects(objs);
        if raw.is_empty() {
            continue;
        }
        // the settings next to the references: every key of a ConfigMap that holds one, every
        // env var and the args of a container that has one
        let cms: BTreeSet<&str> =
            raw.iter().filter(|r| r.obj_kind == "ConfigMap").map(|r| r.obj_name.as_str()).collect();
        let workloads: BTreeSet<&str> = raw
            .iter()
            .filter(|r| matches!(r.kind, FindingKind::ContainerEnv | FindingKind::ContainerEnvFrom))
            .map(|r| r.obj_name.as_str())
            .collect();
        let ctx = settings.entry(app.clone()).or_default();
        for o in objs.iter() {
            let name = name_of(o).unwrap_or_default();
            if kind_of(o) == "ConfigMap" && cms.contains(name) {
                for (k, v) in o.get("data").and_then(Value::as_object).into_iter().flatten() {
                    ctx.push((
                        k.clone(),
                        v.as_str().filter(|v| v.len() <= 200 && !v.contains('\n')).map(str::to_string),
                        env.clone(),
                    ));
                }
            }
            if WORKLOAD_KINDS.contains(&kind_of(o)) && workloads.contains(name) {
                for (_, c, _) in containers(o) {
                    for e in c.get("env").and_then(Value::as_array).into_iter().flatten() {
                        let k = e.get("name").and_then(Value::as_str).unwrap_or_default().to_string();
                        let v = e.get("value").and_then(Value::as_str).map(str::to_string);
                        ctx.push((k, v, env.clone()));
                    }
                    for field in ["command", "args"] {
                        for a in c.get(field).and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str)
                        {
                            args.entry(app.clone()).or_default().insert(a.to_string());
                        }
                    }
                }
            }
        }
        for r in raw {
            let (file, line, generator) = locator.locate(&closure, &leaf.dir, &r);
            findings.push(Finding {
                app: app.clone(),
                env: env.clone(),
                kind: r.kind,
                file,
                line,
                object: format!("{}/{}", r.obj_kind, r.obj_name),
                field: r.field,
                value: r.value,
                container: r.container,
                generator,
            });
        }
    }
    findings.extend(helm_values(repo, &matcher, &envs, dep_app.as_deref()));
    findings.extend(argocd_apps(repo, &dependency, &envs));
    let env_rank = |e: &str| envs.iter().position(|x| x == e).unwrap_or(usize::MAX);
    findings.sort_by(|a, b| {
        (&a.app, env_rank(&a.env), &a.file, a.line, a.kind, &a.field).cmp(&(
            &b.app,
            env_rank(&b.env),
            &b.file,
            b.line,
            b.kind,
            &b.field,
        ))
    });
    findings.dedup();
    let with_findings: BTreeSet<&String> = findings.iter().map(|f| &f.app).collect();
    workloads.retain(|w| with_findings.contains(&w.app));
    workloads.sort_by(|a, b| (&a.app, env_rank(&a.env), &a.name).cmp(&(&b.app, env_rank(&b.env), &b.name)));
    let context = contexts(repo, &findings, settings, args, dep_app.as_deref(), &envs);
    Ok(Scan { dependency, envs, findings, workloads, failed, context })
}

/// Per app with findings: its settings (each value with its environments, secret-looking
/// keys without a value), container args, and the comment lines of the files that hold its
/// references.
fn contexts(
    repo: &Repo,
    findings: &[Finding],
    settings: BTreeMap<String, Vec<(String, Option<String>, String)>>,
    mut args: BTreeMap<String, BTreeSet<String>>,
    dep_app: Option<&str>,
    envs: &[String],
) -> Vec<ServiceContext> {
    let apps: BTreeSet<&str> = findings.iter().map(|f| f.app.as_str()).filter(|a| Some(*a) != dep_app).collect();
    let secretish = |k: &str| {
        let k = k.to_ascii_lowercase();
        ["password", "secret", "token", "key"].iter().any(|w| k.contains(w))
    };
    let mut out = Vec::new();
    for app in apps {
        let mut by: BTreeMap<(String, Option<String>), Vec<String>> = BTreeMap::new();
        for (k, v, env) in settings.get(app).into_iter().flatten() {
            let v = if secretish(k) { None } else { v.clone() };
            let e = by.entry((k.clone(), v)).or_default();
            if !e.contains(env) {
                e.push(env.clone());
            }
        }
        // Helm values and other findings name their keys too
        for f in findings.iter().filter(|f| f.app == app && f.kind == FindingKind::HelmValues) {
            let v = if secretish(&f.field) { None } else { f.value.clone() };
            let e = by.entry((f.field.clone(), v)).or_default();
            if !e.contains(&f.env) {
                e.push(f.env.clone());
            }
        }
        let settings: Vec<Setting> = by
            .into_iter()
            .map(|((key, value), mut es)| {
                es.sort_by_key(|e| envs.iter().position(|x| x == e));
                Setting { key, value, envs: es }
            })
            .collect();
        let files: BTreeSet<&str> = findings.iter().filter(|f| f.app == app).map(|f| f.file.as_str()).collect();
        let mut comments = Vec::new();
        for f in files {
            let Ok(text) = crate::config::limits::read_text(&repo.abs(f), repo.config.limits.file_bytes) else {
                continue;
            };
            for (i, l) in text.lines().enumerate() {
                let t = l.trim_start();
                if let Some(c) = t.strip_prefix('#').filter(|_| !t.starts_with("#!")) {
                    let c = c.trim();
                    if !c.is_empty() {
                        comments.push(Comment { file: f.to_string(), line: i as u32 + 1, text: c.to_string() });
                    }
                }
            }
        }
        out.push(ServiceContext {
            app: app.to_string(),
            settings,
            args: args.remove(app).map(|a| a.into_iter().collect()).unwrap_or_default(),
            comments,
        });
    }
    out
}

/// The environments asked for (each must exist), or all, in the repo's order.
pub fn target_envs(repo: &Repo, asked: &[String]) -> Result<Vec<String>> {
    for e in asked {
        if !repo.environments.contains(e) {
            return Err(Error::Usage(format!(
                "unknown environment {e:?}; environments: {}",
                repo.environments.join(", ")
            )));
        }
    }
    Ok(repo.environments.iter().filter(|e| asked.is_empty() || asked.contains(e)).cloned().collect())
}

fn render_all(
    repo: &Repo,
    engine: &Engine,
    leaves: &[&Leaf],
    jobs: usize,
) -> Result<Vec<std::result::Result<Vec<Value>, String>>> {
    let pool =
        rayon::ThreadPoolBuilder::new().num_threads(jobs.max(1)).build().map_err(|e| Error::Internal(e.to_string()))?;
    Ok(pool.install(|| {
        leaves
            .par_iter()
            .map(|l| {
                let out = engine.build(repo, &l.dir);
                match out.error {
                    Some(e) => Err(e),
                    None => out.values().map_err(|e| e.to_string()),
                }
            })
            .collect()
    }))
}

/// The dependency's services, hosts, ports and pod labels, from its app's rendered output;
/// from its name alone when the repo does not run it.
fn identify(name: &str, app: Option<&str>, objects: &[(&Leaf, Vec<Value>)]) -> Dependency {
    let mut dep = Dependency { name: name.to_ascii_lowercase(), app: app.map(str::to_string), ..Default::default() };
    let mut namespaces = BTreeSet::new();
    let mut services = BTreeSet::new();
    let mut ports = BTreeSet::new();
    if let Some(app) = app {
        for (leaf, objs) in objects.iter().filter(|(l, _)| l.app.as_deref() == Some(app)) {
            let _ = leaf;
            for o in objs {
                let ns = o.pointer("/metadata/namespace").and_then(Value::as_str);
                match kind_of(o) {
                    "Service" => {
                        if let Some(n) = name_of(o) {
                            services.insert(n.to_string());
                        }
                        if let Some(ns) = ns {
                            namespaces.insert(ns.to_string());
                        }
                        for p in arr(o, "/spec/ports") {
                            let is_metrics =
                                p.get("name").and_then(Value::as_str).is_some_and(|n| n.contains("metric"));
                            if let Some(n) = p.get("port").and_then(Value::as_u64).filter(|_| !is_metrics) {
                                ports.insert(n as u16);
                            }
                        }
                        if let Some(sel) = o.pointer("/spec/selector").and_then(Value::as_object)
                            && dep.labels.is_empty()
                        {
                            dep.labels =
                                sel.iter().filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string()))).collect();
                        }
                    }
                    k if WORKLOAD_KINDS.contains(&k) => {
                        if let Some(ns) = ns {
                            namespaces.insert(ns.to_string());
                        }
                    }
                    _ => {}
                }
            }
        }
    }
    if services.is_empty() {
        services.insert(dep.name.clone());
    }
    if ports.is_empty()
        && let Some((_, p)) = WELL_KNOWN_PORTS.iter().find(|(n, _)| *n == dep.name)
    {
        ports.insert(*p);
    }
    dep.hosts =
        services.iter().flat_map(|s| namespaces.iter().map(move |ns| format!("{s}.{ns}.svc.cluster.local"))).collect();
    dep.namespaces = namespaces.into_iter().collect();
    dep.services = services.into_iter().collect();
    dep.ports = ports.into_iter().collect();
    dep
}

/// A match inside one rendered object, before it is traced to a file.
#[derive(Debug, Clone)]
struct Raw {
    kind: FindingKind,
    obj_kind: String,
    obj_name: String,
    /// JSON pointer of the matched node in the object.
    pointer: String,
    field: String,
    value: Option<String>,
    container: Option<String>,
}

struct Matcher<'a> {
    dep: &'a Dependency,
    name_words: Vec<String>,
    metric: regex::Regex,
}

impl<'a> Matcher<'a> {
    fn new(dep: &'a Dependency) -> Matcher<'a> {
        let prefix = regex::escape(&dep.name.replace('-', "_"));
        let metric = regex::Regex::new(&format!(r"(?i)(?:^|[^A-Za-z0-9_]){prefix}_[A-Za-z0-9_]+"))
            .unwrap_or_else(|_| regex::Regex::new("$^").unwrap_or_else(|_| unreachable!()));
        Matcher { dep, name_words: words(&dep.name), metric }
    }

    /// A key (config key, env var, values key) about the dependency: its name as a word.
    fn key(&self, key: &str) -> bool {
        let w = words(key);
        !self.name_words.is_empty() && w.windows(self.name_words.len()).any(|win| win == self.name_words.as_slice())
    }

    /// A value naming the dependency's host: `svc`, `svc.ns`, `svc.ns.svc.cluster.local`,
    /// inside a URL or `host:port`, or a `<name>://` connection string.
    fn host(&self, value: &str) -> bool {
        let lower = value.to_ascii_lowercase();
        if lower.contains(&format!("{}://", self.dep.name)) || lower.contains(&format!("{}s://", self.dep.name)) {
            return true;
        }
        let trimmed = lower.trim();
        for token in lower.split(|c: char| !(c.is_ascii_alphanumeric() || c == '.' || c == '-')) {
            let token = token.trim_matches('.');
            if token.is_empty() {
                continue;
            }
            let labels: Vec<&str> = token.split('.').collect();
            if !self.dep.services.iter().any(|s| s == labels[0]) {
                continue;
            }
            if labels.len() == 1 {
                if trimmed == token {
                    return true;
                }
                continue;
            }
            if self.dep.namespaces.is_empty() || self.dep.namespaces.iter().any(|n| n == labels[1]) {
                return true;
            }
        }
        false
    }

    fn port(&self, p: &Value) -> bool {
        p.as_u64().is_some_and(|n| self.dep.ports.iter().any(|d| u64::from(*d) == n))
    }

    /// Selector labels that pick the dependency's pods.
    fn selects(&self, labels: Option<&Value>) -> bool {
        let Some(m) = labels.and_then(Value::as_object) else { return false };
        !self.dep.labels.is_empty()
            && !m.is_empty()
            && m.iter().all(|(k, v)| self.dep.labels.get(k).is_some_and(|d| Some(d.as_str()) == v.as_str()))
    }

    fn namespace_ok(&self, ns_selector: Option<&Value>) -> bool {
        let Some(sel) = ns_selector else { return true };
        match sel.pointer("/matchLabels/kubernetes.io~1metadata.name").and_then(Value::as_str) {
            Some(ns) => self.dep.namespaces.is_empty() || self.dep.namespaces.iter().any(|n| n == ns),
            None => true,
        }
    }

    fn objects(&self, objs: &[Value]) -> Vec<Raw> {
        let mut out = Vec::new();
        for o in objs {
            out.extend(self.object(o));
        }
        // envFrom of a ConfigMap or Secret that itself references the dependency
        let referenced: BTreeSet<(String, String)> = out
            .iter()
            .filter(|r| {
                matches!(r.kind, FindingKind::ConfigMapValue | FindingKind::ConfigMapKey | FindingKind::SecretKey)
            })
            .map(|r| (r.obj_kind.clone(), r.obj_name.clone()))
            .collect();
        for o in objs {
            for (ptr, c, _) in containers(o) {
                let cname = c.get("name").and_then(Value::as_str).unwrap_or_default().to_string();
                for (i, ef) in c.get("envFrom").and_then(Value::as_array).into_iter().flatten().enumerate() {
                    for (field, kind) in [("configMapRef", "ConfigMap"), ("secretRef", "Secret")] {
                        let Some(n) = ef.pointer(&format!("/{field}/name")).and_then(Value::as_str) else { continue };
                        if referenced.contains(&(kind.to_string(), n.to_string())) {
                            out.push(self.raw(
                                FindingKind::ContainerEnvFrom,
                                o,
                                format!("{ptr}/envFrom/{i}"),
                                format!("{field} {n}"),
                                None,
                                Some(cname.clone()),
                            ));
                        }
                    }
                }
            }
        }
        out
    }

    fn raw(
        &self,
        kind: FindingKind,
        o: &Value,
        pointer: String,
        field: String,
        value: Option<String>,
        container: Option<String>,
    ) -> Raw {
        Raw {
            kind,
            obj_kind: kind_of(o).to_string(),
            obj_name: name_of(o).unwrap_or_default().to_string(),
            pointer,
            field,
            value,
            container,
        }
    }

    fn object(&self, o: &Value) -> Vec<Raw> {
        let mut out = Vec::new();
        match kind_of(o) {
            "ConfigMap" => {
                for (k, v) in o.get("data").and_then(Value::as_object).into_iter().flatten() {
                    let Some(s) = v.as_str() else { continue };
                    let ptr = format!("/data/{}", escape(k));
                    if let Some(expr) = self.dashboard(s) {
                        out.push(self.raw(FindingKind::GrafanaDashboard, o, ptr, k.clone(), Some(expr), None));
                    } else if self.host(s) {
                        out.push(self.raw(FindingKind::ConfigMapValue, o, ptr, k.clone(), Some(s.to_string()), None));
                    } else if self.key(k) {
                        out.push(self.raw(FindingKind::ConfigMapKey, o, ptr, k.clone(), Some(s.to_string()), None));
                    }
                }
            }
            "Secret" => {
                for section in ["data", "stringData"] {
                    for k in o.get(section).and_then(Value::as_object).into_iter().flat_map(|m| m.keys()) {
                        if self.key(k) {
                            let ptr = format!("/{section}/{}", escape(k));
                            out.push(self.raw(FindingKind::SecretKey, o, ptr, k.clone(), None, None));
                        }
                    }
                }
            }
            "Service" => {
                if let Some(ext) = o.pointer("/spec/externalName").and_then(Value::as_str)
                    && self.host(ext)
                {
                    let v = Some(ext.to_string());
                    out.push(self.raw(
                        FindingKind::Service,
                        o,
                        "/spec/externalName".into(),
                        "externalName".into(),
                        v,
                        None,
                    ));
                } else if o.pointer("/spec/selector").is_none() {
                    for (i, p) in arr(o, "/spec/ports").iter().enumerate() {
                        let named = p.get("name").and_then(Value::as_str).is_some_and(|n| self.key(n));
                        if named || self.port(p.get("port").unwrap_or(&Value::Null)) {
                            let v = p.get("port").map(|v| v.to_string());
                            out.push(self.raw(
                                FindingKind::Service,
                                o,
                                format!("/spec/ports/{i}"),
                                "port".into(),
                                v,
                                None,
                            ));
                        }
                    }
                }
            }
            "Endpoints" => {
                for (i, s) in arr(o, "/subsets").iter().enumerate() {
                    for (j, p) in s.get("ports").and_then(Value::as_array).into_iter().flatten().enumerate() {
                        let named = p.get("name").and_then(Value::as_str).is_some_and(|n| self.key(n));
                        if named || self.port(p.get("port").unwrap_or(&Value::Null)) {
                            let v = p.get("port").map(|v| v.to_string());
                            let ptr = format!("/subsets/{i}/ports/{j}");
                            out.push(self.raw(FindingKind::Endpoints, o, ptr, "port".into(), v, None));
                        }
                    }
                }
            }
            "EndpointSlice" => {
                for (i, p) in arr(o, "/ports").iter().enumerate() {
                    let named = p.get("name").and_then(Value::as_str).is_some_and(|n| self.key(n));
                    if named || self.port(p.get("port").unwrap_or(&Value::Null)) {
                        let v = p.get("port").map(|v| v.to_string());
                        out.push(self.raw(FindingKind::Endpoints, o, format!("/ports/{i}"), "port".into(), v, None));
                    }
                }
            }
            "NetworkPolicy" => out.extend(self.network_policy(o)),
            "ServiceMonitor" | "PodMonitor" => {
                let ns_ok = match o.pointer("/spec/namespaceSelector/matchNames").and_then(Value::as_array) {
                    Some(names) => {
                        names.iter().any(|n| n.as_str().is_some_and(|n| self.dep.namespaces.iter().any(|d| d == n)))
                    }
                    None => true,
                };
                if ns_ok && self.selects(o.pointer("/spec/selector/matchLabels")) {
                    let v = Some(label_text(o.pointer("/spec/selector/matchLabels")));
                    out.push(self.raw(
                        FindingKind::ServiceMonitor,
                        o,
                        "/spec/selector".into(),
                        "selector".into(),
                        v,
                        None,
                    ));
                }
            }
            "PrometheusRule" => {
                for (i, g) in arr(o, "/spec/groups").iter().enumerate() {
                    for (j, r) in g.get("rules").and_then(Value::as_array).into_iter().flatten().enumerate() {
                        let expr = r.get("expr").map(|e| e.as_str().map_or_else(|| e.to_string(), str::to_string));
                        if let Some(expr) = expr.filter(|e| self.metric.is_match(e)) {
                            let name =
                                r.get("alert").or_else(|| r.get("record")).and_then(Value::as_str).unwrap_or("rule");
                            let ptr = format!("/spec/groups/{i}/rules/{j}/expr");
                            out.push(self.raw(FindingKind::PrometheusRule, o, ptr, name.to_string(), Some(expr), None));
                        }
                    }
                }
            }
            _ => {}
        }
        for (ptr, c, _) in containers(o) {
            let cname = c.get("name").and_then(Value::as_str).unwrap_or_default().to_string();
            for (i, e) in c.get("env").and_then(Value::as_array).into_iter().flatten().enumerate() {
                let name = e.get("name").and_then(Value::as_str).unwrap_or_default();
                let value = e.get("value").and_then(Value::as_str);
                let ref_key = e
                    .pointer("/valueFrom/configMapKeyRef/key")
                    .or_else(|| e.pointer("/valueFrom/secretKeyRef/key"))
                    .and_then(Value::as_str);
                let secret = e.pointer("/valueFrom/secretKeyRef").is_some();
                if value.is_some_and(|v| self.host(v)) || self.key(name) || ref_key.is_some_and(|k| self.key(k)) {
                    let v = if secret { None } else { value.map(str::to_string) };
                    out.push(self.raw(
                        FindingKind::ContainerEnv,
                        o,
                        format!("{ptr}/env/{i}"),
                        name.to_string(),
                        v,
                        Some(cname.clone()),
                    ));
                }
            }
            for field in ["args", "command"] {
                for (i, a) in c.get(field).and_then(Value::as_array).into_iter().flatten().enumerate() {
                    if let Some(a) = a.as_str().filter(|a| self.host(a)) {
                        out.push(self.raw(
                            FindingKind::ContainerEnv,
                            o,
                            format!("{ptr}/{field}/{i}"),
                            field.to_string(),
                            Some(a.to_string()),
                            Some(cname.clone()),
                        ));
                    }
                }
            }
        }
        out
    }

    /// A dashboard's first query that reads the dependency's metrics.
    fn dashboard(&self, text: &str) -> Option<String> {
        let t = text.trim_start();
        if !t.starts_with('{') {
            return None;
        }
        let v: Value = serde_json::from_str(t).ok()?;
        if v.get("panels").is_none() && v.pointer("/dashboard/panels").is_none() {
            return None;
        }
        let mut found = None;
        walk_strings(&v, &mut |k, s| {
            if found.is_none() && matches!(k, "expr" | "query" | "rawSql") && self.metric.is_match(s) {
                found = Some(s.to_string());
            }
        });
        found
    }

    fn network_policy(&self, o: &Value) -> Vec<Raw> {
        let mut out = Vec::new();
        for (i, rule) in arr(o, "/spec/egress").iter().enumerate() {
            let ports = rule.get("ports").and_then(Value::as_array);
            let on_port = ports.is_some_and(|ps| ps.iter().any(|p| self.port(p.get("port").unwrap_or(&Value::Null))));
            for (j, peer) in rule.get("to").and_then(Value::as_array).into_iter().flatten().enumerate() {
                let ptr = format!("/spec/egress/{i}/to/{j}");
                if self.selects(peer.pointer("/podSelector/matchLabels"))
                    && self.namespace_ok(peer.get("namespaceSelector"))
                {
                    let v = Some(label_text(peer.pointer("/podSelector/matchLabels")));
                    out.push(self.raw(FindingKind::NetworkPolicy, o, ptr, format!("egress[{i}] to pods"), v, None));
                } else if let Some(cidr) = peer.pointer("/ipBlock/cidr").and_then(Value::as_str)
                    && on_port
                {
                    let ports: Vec<String> =
                        ports.into_iter().flatten().filter_map(|p| p.get("port").map(|v| v.to_string())).collect();
                    let v = Some(format!("{cidr} port {}", ports.join(",")));
                    out.push(self.raw(FindingKind::NetworkPolicy, o, ptr, format!("egress[{i}] to CIDR"), v, None));
                }
            }
        }
        out
    }
}

/// Lowercase words of a key: split at non-alphanumerics and camelCase humps.
fn words(key: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut prev_lower = false;
    for c in key.chars() {
        if !c.is_ascii_alphanumeric() {
            if !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
            prev_lower = false;
            continue;
        }
        if c.is_ascii_uppercase() && prev_lower && !cur.is_empty() {
            out.push(std::mem::take(&mut cur));
        }
        prev_lower = c.is_ascii_lowercase() || c.is_ascii_digit();
        cur.push(c.to_ascii_lowercase());
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

fn walk_strings(v: &Value, f: &mut impl FnMut(&str, &str)) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                match v {
                    Value::String(s) => f(k, s),
                    other => walk_strings(other, f),
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|x| walk_strings(x, f)),
        _ => {}
    }
}

fn label_text(m: Option<&Value>) -> String {
    m.and_then(Value::as_object)
        .map(|m| m.iter().map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default())).collect::<Vec<_>>().join(","))
        .unwrap_or_default()
}

fn kind_of(o: &Value) -> &str {
    o.get("kind").and_then(Value::as_str).unwrap_or_default()
}

fn name_of(o: &Value) -> Option<&str> {
    o.pointer("/metadata/name").and_then(Value::as_str)
}

fn arr<'v>(o: &'v Value, ptr: &str) -> &'v [Value] {
    o.pointer(ptr).and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default()
}

fn escape(k: &str) -> String {
    k.replace('~', "~0").replace('/', "~1")
}

/// Containers and init containers of a workload: (pointer, container, is_init).
fn containers(o: &Value) -> Vec<(String, &Value, bool)> {
    let spec = match kind_of(o) {
        "Pod" => "/spec",
        "CronJob" => "/spec/jobTemplate/spec/template/spec",
        k if WORKLOAD_KINDS.contains(&k) => "/spec/template/spec",
        _ => return Vec::new(),
    };
    let mut out = Vec::new();
    for (field, init) in [("containers", false), ("initContainers", true)] {
        for (i, c) in arr(o, &format!("{spec}/{field}")).iter().enumerate() {
            out.push((format!("{spec}/{field}/{i}"), c, init));
        }
    }
    out
}

fn workload_facts(app: &str, env: &str, objs: &[Value]) -> Vec<Workload> {
    let pdb = objs.iter().any(|o| kind_of(o) == "PodDisruptionBudget");
    let hpa_min: HashMap<String, u32> = objs
        .iter()
        .filter(|o| kind_of(o) == "HorizontalPodAutoscaler")
        .filter_map(|o| {
            let target = o.pointer("/spec/scaleTargetRef/name")?.as_str()?.to_string();
            let min = o.pointer("/spec/minReplicas").and_then(Value::as_u64).unwrap_or(1) as u32;
            Some((target, min))
        })
        .collect();
    objs.iter()
        .filter(|o| matches!(kind_of(o), "Deployment" | "StatefulSet" | "DaemonSet"))
        .map(|o| {
            let name = name_of(o).unwrap_or_default().to_string();
            let replicas = o.pointer("/spec/replicas").and_then(Value::as_u64).unwrap_or(1) as u32;
            let replicas = replicas.max(hpa_min.get(&name).copied().unwrap_or(0));
            let labels = o.pointer("/metadata/labels").and_then(Value::as_object);
            let criticality_label = labels.and_then(|m| {
                m.iter().find_map(|(k, v)| {
                    let k = k.rsplit('/').next().unwrap_or(k);
                    matches!(k, "criticality" | "tier" | "priority").then(|| v.as_str().map(str::to_string)).flatten()
                })
            });
            Workload {
                app: app.to_string(),
                env: env.to_string(),
                kind: kind_of(o).to_string(),
                name,
                namespace: o.pointer("/metadata/namespace").and_then(Value::as_str).map(str::to_string),
                replicas,
                pdb,
                priority_class: o
                    .pointer("/spec/template/spec/priorityClassName")
                    .and_then(Value::as_str)
                    .map(str::to_string),
                criticality_label,
            }
        })
        .collect()
}

/// A generated name without kustomize's hash suffix (`catalog-config-5f7b8c9d2k` → `catalog-config`).
fn generator_name(rendered: &str) -> String {
    match rendered.rsplit_once('-') {
        Some((base, hash)) if hash.len() == 10 && hash.chars().all(|c| c.is_ascii_alphanumeric()) => base.to_string(),
        _ => rendered.to_string(),
    }
}

/// Traces a rendered match to the file and line that set it.
struct Locator<'r> {
    repo: &'r Repo,
    texts: HashMap<String, Option<String>>,
}

impl<'r> Locator<'r> {
    fn new(repo: &'r Repo) -> Locator<'r> {
        Locator { repo, texts: HashMap::new() }
    }

    /// (file, line, generator name when a generator makes the object).
    fn locate(&mut self, closure: &Closure, leaf_dir: &str, r: &Raw) -> (String, u32, Option<String>) {
        let repo = self.repo;
        if matches!(r.obj_kind.as_str(), "ConfigMap" | "Secret")
            && let Some((file, line)) = repo.locate_generator(closure, &r.obj_kind, &r.obj_name)
        {
            let generator = Some(generator_name(&r.obj_name));
            if let Some((f, l)) = self.search(closure, leaf_dir, &r.field, r.value.as_deref()) {
                return (f, l, generator);
            }
            return (file.to_string(), line, generator);
        }
        if let Some((file, line)) = repo.locate_patch(closure, leaf_dir, &r.obj_kind, &r.obj_name, &r.pointer) {
            return (file.to_string(), line, None);
        }
        if let Some((file, doc)) = repo.locate_source(closure, &r.obj_kind, &r.obj_name) {
            return (file.to_string(), doc.line_of(&r.pointer), None);
        }
        let (f, l) = self.search(closure, leaf_dir, &r.field, r.value.as_deref()).unwrap_or_default();
        (f, l, None)
    }

    /// The first non-comment line holding the key (and the value, when one is given) among
    /// the files a leaf reads, its own directory first.
    fn search(&mut self, closure: &Closure, leaf_dir: &str, key: &str, value: Option<&str>) -> Option<(String, u32)> {
        let prefix = format!("{leaf_dir}/");
        let mut files: Vec<&String> = closure.files.iter().collect();
        files.sort_by_key(|f| !f.starts_with(&prefix));
        let first_line = value.and_then(|v| v.lines().next()).map(str::trim).filter(|v| !v.is_empty() && v.len() < 200);
        for pass in [true, false] {
            for f in &files {
                let text = self
                    .texts
                    .entry((*f).clone())
                    .or_insert_with(|| {
                        crate::config::limits::read_text(&self.repo.abs(f), self.repo.config.limits.file_bytes).ok()
                    })
                    .as_deref();
                let Some(text) = text else { continue };
                for (i, line) in text.lines().enumerate() {
                    let t = line.trim_start();
                    if t.starts_with('#') || t.starts_with("//") || !line.contains(key) {
                        continue;
                    }
                    if pass && first_line.is_some_and(|v| !line.contains(v)) {
                        continue;
                    }
                    return Some(((*f).clone(), i as u32 + 1));
                }
            }
        }
        None
    }
}

/// Helm values files (`values*.yaml`) under an app's directory: keys about the dependency
/// with scalar values, and values naming its host.
fn helm_values(repo: &Repo, m: &Matcher, envs: &[String], dep_app: Option<&str>) -> Vec<Finding> {
    let mut out = Vec::new();
    for (path, file) in &repo.files {
        let base = path.rsplit('/').next().unwrap_or(path);
        if !(base.starts_with("values") && (base.ends_with(".yaml") || base.ends_with(".yml"))) {
            continue;
        }
        let Some(app) = repo.apps.values().find(|a| {
            let dirs = a.base.iter().chain(a.overlays.values());
            dirs.filter_map(|d| d.rsplit_once('/').map(|(p, _)| p)).any(|root| {
                let root = root.trim_end_matches("/overlays");
                path.starts_with(&format!("{root}/"))
            })
        }) else {
            continue;
        };
        if Some(app.name.as_str()) == dep_app {
            continue;
        }
        let stem = base.trim_end_matches(".yaml").trim_end_matches(".yml");
        let env_of_file = envs
            .iter()
            .find(|e| stem == format!("values-{e}") || path.split('/').any(|seg| seg == e.as_str()))
            .cloned();
        let file_envs: Vec<String> = match &env_of_file {
            Some(e) => vec![e.clone()],
            None if repo.environments.iter().any(|e| stem == format!("values-{e}")) => continue,
            None => envs.iter().filter(|e| app.overlays.contains_key(*e)).cloned().collect(),
        };
        let Ok(docs) = &file.docs else { continue };
        for doc in docs {
            let mut hits = Vec::new();
            values_walk(&doc.value, "", &mut Vec::new(), &mut |ptr, keys, v| {
                let key_hit = keys.iter().any(|k| m.key(k));
                let s = match v {
                    Value::String(s) => s.clone(),
                    Value::Number(n) => n.to_string(),
                    Value::Bool(b) => b.to_string(),
                    _ => return,
                };
                let secretish = keys.last().is_some_and(|k| {
                    let k = k.to_ascii_lowercase();
                    k.contains("password") || k.contains("secret") || k.contains("token")
                });
                if m.host(&s) || (key_hit && !s.is_empty()) {
                    hits.push((ptr.to_string(), keys.join("."), if secretish { None } else { Some(s) }));
                }
            });
            for (ptr, field, value) in hits {
                for env in &file_envs {
                    out.push(Finding {
                        app: app.name.clone(),
                        env: env.clone(),
                        kind: FindingKind::HelmValues,
                        file: path.clone(),
                        line: doc.line_of(&ptr),
                        object: format!("values/{base}"),
                        field: field.clone(),
                        value: value.clone(),
                        container: None,
                        generator: None,
                    });
                }
            }
        }
    }
    out
}

fn values_walk(v: &Value, ptr: &str, keys: &mut Vec<String>, f: &mut impl FnMut(&str, &[String], &Value)) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                keys.push(k.clone());
                values_walk(v, &format!("{ptr}/{}", escape(k)), keys, f);
                keys.pop();
            }
        }
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                values_walk(x, &format!("{ptr}/{i}"), keys, f);
            }
        }
        other => f(ptr, keys, other),
    }
}

/// The Argo CD Applications that deploy the dependency itself.
fn argocd_apps(repo: &Repo, dep: &Dependency, envs: &[String]) -> Vec<Finding> {
    let Some(app) = dep.app.as_ref().and_then(|a| repo.apps.get(a)) else { return Vec::new() };
    let mut out = Vec::new();
    for a in &repo.argocd_apps {
        for s in &a.sources {
            let Some(path) = s.path.as_deref().map(|p| p.trim_end_matches('/')) else { continue };
            let Some(env) = app.overlays.iter().find(|(_, dir)| dir.as_str() == path).map(|(e, _)| e) else {
                continue;
            };
            if !envs.contains(env) {
                continue;
            }
            out.push(Finding {
                app: app.name.clone(),
                env: env.clone(),
                kind: FindingKind::ArgocdApplication,
                file: a.file.clone(),
                line: s.line,
                object: format!("Application/{}", a.name),
                field: "source.path".into(),
                value: Some(path.to_string()),
                container: None,
                generator: None,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dep() -> Dependency {
        Dependency {
            name: "redis".into(),
            app: Some("redis".into()),
            namespaces: vec!["data".into()],
            services: vec!["redis".into(), "redis-headless".into()],
            hosts: vec![],
            ports: vec![6379],
            labels: [("app.kubernetes.io/name".to_string(), "redis".to_string())].into(),
        }
    }

    #[test]
    fn hosts_keys_and_metrics() {
        let d = dep();
        let m = Matcher::new(&d);
        for yes in [
            "redis.data.svc.cluster.local",
            "redis://redis.data:6379/0",
            "rediss://managed.example.com:6380",
            "redis-headless.data.svc",
            "redis",
        ] {
            assert!(m.host(yes), "{yes}");
        }
        for no in ["redislock.tools.svc.cluster.local", "redis.other.svc.cluster.local", "use redis here", "cache"] {
            assert!(!m.host(no), "{no}");
        }
        assert!(m.key("REDIS_DB") && m.key("redisHost") && m.key("cache.redis.port"));
        assert!(!m.key("REDISLOCK_URL") && !m.key("predis"));
        assert!(m.metric.is_match("sum(redis_connected_clients)") && !m.metric.is_match("myredis_x"));
        assert_eq!(words("redisHostName"), ["redis", "host", "name"]);
    }
}
