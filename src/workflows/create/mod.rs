//! Create: scaffold a new app across environments in the repo's own style, validated before
//! anything is written.
//!
//! 1. The request is checked (name a free DNS label, image pinned, environments known, sizes
//!    that parse).
//! 2. What the repo already does is learned: the app folder layout, the environment label of
//!    overlays, the Ingress class and the annotations every Ingress carries, and for each
//!    environment the Argo CD Application style (repoURL, project, destination, sync policy,
//!    naming, folder). A repo URL is never invented.
//! 3. Files are rendered from handlebars templates (`tools/templates/app/`, overridable in the
//!    repo's `.agentops/templates/app/`): a base (Deployment or StatefulSet, Service,
//!    ServiceAccount, and as asked Ingress, ServiceMonitor, NetworkPolicy), one overlay per
//!    environment sized from the tier table (HPA, PDB as asked), one Application per environment.
//! 4. Gates, in a scratch copy of the repo: every new overlay builds and validates (schemas,
//!    policies, Argo CD paths), and each target cluster has the StorageClass, CRDs, IngressClass
//!    and namespace (or CreateNamespace) the app needs.
//! 5. Apply writes the files (refusing to overwrite) and commits them with a drafted message.

pub(crate) mod templates;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::cluster::ClusterSet;
use crate::config::Severity;
use crate::config::TierSize;
use crate::error::{Error, Result};
use crate::k8s::redact::Redactor;
use crate::kustomize::Engine;
use crate::repo::Repo;
use crate::workflows::validate::{self, ValidateRequest};

/// How the app is reached.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Expose {
    #[default]
    Clusterip,
    Loadbalancer,
    Ingress,
}

/// Optional objects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Extra {
    Servicemonitor,
    Networkpolicy,
    Hpa,
    Pdb,
}

/// A new app.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateRequest {
    /// App name: a DNS label that is not an app yet.
    pub name: String,
    /// Namespace (default: the app name).
    #[serde(default)]
    pub namespace: Option<String>,
    /// Target environments (all when empty).
    #[serde(default)]
    pub envs: Vec<String>,
    /// Container image with an explicit tag or digest (never `latest`).
    pub image: String,
    /// Container port (default 8080).
    #[serde(default)]
    pub port: Option<u16>,
    /// Sizing tier: small, medium, large, or one defined in `.agentops.yaml` (default small).
    #[serde(default)]
    pub tier: Option<String>,
    /// Persistent volume size (e.g. 50Gi): makes the workload a StatefulSet.
    #[serde(default)]
    pub storage: Option<String>,
    /// StorageClass for the volume (default: per environment from config, else the cluster default).
    #[serde(default)]
    pub storage_class: Option<String>,
    /// clusterip (default), loadbalancer or ingress.
    #[serde(default)]
    pub expose: Option<Expose>,
    /// Ingress host (needed with expose=ingress).
    #[serde(default)]
    pub host: Option<String>,
    /// Extras: servicemonitor, networkpolicy, hpa, pdb.
    #[serde(default)]
    pub with: Vec<Extra>,
    /// Per-environment container settings, `ENV:KEY=VALUE` (ENV may be a class: dev, staging, prod).
    #[serde(default)]
    pub set_env: Vec<String>,
    /// Why (goes into the commit message).
    #[serde(default)]
    pub reason: Option<String>,
    /// Applying: leave the files uncommitted.
    #[serde(default)]
    pub no_commit: bool,
    /// Applying: the `fingerprint` of the render_overlay output that was shown; when the
    /// files would now differ, nothing is written (render_overlay ignores it).
    #[serde(default)]
    pub expect: Option<String>,
}

/// A file the plan writes.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct NewFile {
    pub path: String,
    pub content: String,
}

/// One gate and its result.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct Gate {
    pub gate: String,
    pub env: Option<String>,
    pub ok: bool,
    pub message: String,
}

/// Per-environment sizing.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct EnvPlan {
    pub env: String,
    pub class: String,
    pub overlay: String,
    pub application: String,
    pub size: TierSize,
    pub storage_class: Option<String>,
    /// Rendered objects of the overlay (after the gates ran).
    pub objects: Vec<String>,
}

/// What create would write, and whether the gates passed.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct CreatePlan {
    pub name: String,
    pub namespace: String,
    pub image: String,
    pub tier: String,
    pub stateful: bool,
    /// The volume each replica claims (a StatefulSet), e.g. `50Gi`.
    #[serde(default)]
    pub storage: Option<String>,
    pub expose: Expose,
    pub with: Vec<Extra>,
    pub envs: Vec<EnvPlan>,
    pub files: Vec<NewFile>,
    pub gates: Vec<Gate>,
    /// Warnings from validation (not blocking).
    pub warnings: Vec<String>,
    /// What must be fixed first; empty when every gate passed.
    pub blocked: Vec<String>,
    pub commit: Option<String>,
    /// A hash of every file's path and content: create_app given it as `expect` writes only
    /// these files.
    pub fingerprint: String,
}

impl CreatePlan {
    pub fn is_ok(&self) -> bool {
        self.blocked.is_empty()
    }
}

static DNS_LABEL: std::sync::LazyLock<Option<regex::Regex>> =
    std::sync::LazyLock::new(|| regex::Regex::new(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$").ok());

fn is_dns_label(s: &str) -> bool {
    DNS_LABEL.as_ref().is_some_and(|re| re.is_match(s))
}

/// The built-in tier table: tier -> class -> size.
fn builtin_tier(tier: &str, class: &str) -> Option<TierSize> {
    let s = |replicas, cr: &str, cl: &str, mr: &str, ml: &str| TierSize {
        replicas,
        cpu_request: cr.into(),
        cpu_limit: cl.into(),
        memory_request: mr.into(),
        memory_limit: ml.into(),
    };
    Some(match (tier, class) {
        ("small", "dev") => s(1, "50m", "200m", "64Mi", "128Mi"),
        ("small", "staging") => s(1, "100m", "250m", "128Mi", "256Mi"),
        ("small", _) => s(2, "100m", "500m", "128Mi", "256Mi"),
        ("medium", "dev") => s(1, "100m", "500m", "256Mi", "512Mi"),
        ("medium", "staging") => s(2, "250m", "500m", "512Mi", "1Gi"),
        ("medium", _) => s(3, "500m", "1", "1Gi", "2Gi"),
        ("large", "dev") => s(1, "250m", "1", "512Mi", "1Gi"),
        ("large", "staging") => s(2, "500m", "2", "2Gi", "4Gi"),
        ("large", _) => s(3, "1", "4", "4Gi", "8Gi"),
        _ => return None,
    })
}

fn size_for(repo: &Repo, tier: &str, class: &str) -> Result<TierSize> {
    if let Some(s) = repo.config.tiers.get(tier).and_then(|t| t.get(class)) {
        return Ok(s.clone());
    }
    builtin_tier(tier, class).ok_or_else(|| {
        let mut known: BTreeSet<String> = ["small", "medium", "large"].iter().map(|s| s.to_string()).collect();
        known.extend(repo.config.tiers.keys().cloned());
        Error::Usage(format!(
            "tier {tier:?} has no size for environment class {class}: use one of {} or define tiers.{tier}.{class} in .agentops.yaml",
            known.into_iter().collect::<Vec<_>>().join(", ")
        ))
    })
}

/// What the repo already does, learned from its files.
#[derive(Debug, Default)]
struct Style {
    /// `apps/{app}/base` style patterns with `{app}` and `{env}`.
    base_dir: String,
    overlay_dir: String,
    /// The label key overlays set to their environment name, if they all do.
    env_label_key: Option<String>,
    ingress_class: Option<String>,
    /// Annotations every existing Ingress carries with the same value.
    ingress_annotations: Vec<(String, String)>,
}

fn learn_style(repo: &Repo) -> Style {
    let mut style = Style {
        base_dir: "apps/{app}/base".into(),
        overlay_dir: "apps/{app}/overlays/{env}".into(),
        ..Style::default()
    };
    if let Some(app) = repo.apps.values().find(|a| a.base.is_some() && !a.overlays.is_empty()) {
        let base = app.base.as_deref().unwrap_or_default();
        style.base_dir = base.replacen(&app.name, "{app}", 1);
        if let Some((env, dir)) = app.overlays.iter().next() {
            style.overlay_dir = dir.replacen(&app.name, "{app}", 1).replacen(env.as_str(), "{env}", 1);
        }
    }
    // the label overlays set to their environment
    let mut candidates: Option<BTreeSet<String>> = None;
    for l in repo.leaves.iter().filter(|l| l.env.is_some()) {
        let env = l.env.as_deref().unwrap_or_default();
        let Some(k) = repo.kustomizations.get(&l.dir) else { continue };
        let Some(doc) = repo.docs(&k.file).first() else { continue };
        let mut keys = BTreeSet::new();
        if let Some(Value::Array(items)) = doc.value.get("labels") {
            for item in items {
                if let Some(Value::Object(pairs)) = item.get("pairs") {
                    keys.extend(pairs.iter().filter(|(_, v)| v.as_str() == Some(env)).map(|(k, _)| k.clone()));
                }
            }
        }
        candidates = Some(match candidates {
            None => keys,
            Some(c) => c.intersection(&keys).cloned().collect(),
        });
    }
    style.env_label_key = candidates.and_then(|c| c.into_iter().next());
    // Ingress class and shared annotations
    let mut classes: BTreeMap<String, usize> = BTreeMap::new();
    let mut shared: Option<BTreeMap<String, String>> = None;
    let mut ingresses = 0;
    for f in repo.files.values() {
        let Ok(docs) = &f.docs else { continue };
        for d in docs.iter().filter(|d| d.value.get("kind").and_then(Value::as_str) == Some("Ingress")) {
            ingresses += 1;
            if let Some(c) = d.value.pointer("/spec/ingressClassName").and_then(Value::as_str) {
                *classes.entry(c.to_string()).or_default() += 1;
            }
            let ann: BTreeMap<String, String> = d
                .value
                .pointer("/metadata/annotations")
                .and_then(Value::as_object)
                .map(|m| m.iter().filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string()))).collect())
                .unwrap_or_default();
            shared = Some(match shared {
                None => ann,
                Some(s) => s.into_iter().filter(|(k, v)| ann.get(k) == Some(v)).collect(),
            });
        }
    }
    style.ingress_class = classes.into_iter().max_by_key(|(_, n)| *n).map(|(c, _)| c);
    if ingresses >= 2 {
        style.ingress_annotations = shared.unwrap_or_default().into_iter().collect();
    }
    style
}

/// How Applications of one environment look in this repo.
struct ArgoStyle {
    file: String,
    doc: Value,
}

fn argo_style(repo: &Repo, env: &str, name: &str, namespace: &str, overlay: &str) -> Result<ArgoStyle> {
    let leaf_env =
        |path: &str| repo.leaves.iter().find(|l| l.dir == path.trim_matches('/')).and_then(|l| l.env.clone());
    let mut exemplars: Vec<&crate::repo::argocd::ArgoApp> = repo
        .argocd_apps
        .iter()
        .filter(|a| a.sources.iter().any(|s| s.path.as_deref().and_then(leaf_env).as_deref() == Some(env)))
        .collect();
    exemplars.sort_by(|a, b| a.file.cmp(&b.file));
    let app_of = |a: &crate::repo::argocd::ArgoApp| {
        a.sources.iter().find_map(|s| {
            let p = s.path.as_deref()?.trim_matches('/');
            repo.leaves.iter().find(|l| l.dir == p).and_then(|l| l.app.clone())
        })
    };
    let Some(ex) = exemplars.iter().find(|a| repo.docs(&a.file).len() == 1).or(exemplars.first()) else {
        // no Application for this environment yet: config, or a clear failure
        let repo_url = repo.config.repo_url.clone().ok_or_else(|| {
            Error::Usage(format!(
                "no Argo CD Application deploys to {env} and .agentops.yaml has no repo_url: set repo_url (and environments.{env}.server) so the new Application points at the right repository"
            ))
        })?;
        let server = repo.config.environments.get(env).and_then(|e| e.server.clone()).ok_or_else(|| {
            Error::Usage(format!(
                "no Argo CD Application deploys to {env}: set environments.{env}.server in .agentops.yaml"
            ))
        })?;
        let doc = json!({
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "Application",
            "metadata": {"name": format!("{name}-{env}"), "namespace": "argocd"},
            "spec": {
                "project": "default",
                "source": {"repoURL": repo_url, "targetRevision": "HEAD", "path": overlay},
                "destination": {"server": server, "namespace": namespace},
                "syncPolicy": {"syncOptions": ["CreateNamespace=true"]},
            }
        });
        return Ok(ArgoStyle { file: format!("argocd/{env}/{name}.yaml"), doc });
    };
    let old_app = app_of(ex).unwrap_or_default();
    let Some(doc) = repo
        .docs(&ex.file)
        .iter()
        .find(|d| d.value.pointer("/metadata/name").and_then(Value::as_str) == Some(ex.name.as_str()))
    else {
        return Err(Error::Internal(format!("{}: the Application document went missing", ex.file)));
    };
    let mut v = doc.value.clone();
    let new_name = if !old_app.is_empty() && ex.name.contains(&old_app) {
        ex.name.replacen(&old_app, name, 1)
    } else {
        format!("{name}-{env}")
    };
    v["metadata"]["name"] = json!(new_name);
    if let Some(labels) = v.pointer_mut("/metadata/labels").and_then(Value::as_object_mut) {
        for val in labels.values_mut() {
            if !old_app.is_empty() && val.as_str() == Some(old_app.as_str()) {
                *val = json!(name);
            }
        }
    }
    if let Some(m) = v.pointer_mut("/metadata").and_then(Value::as_object_mut) {
        m.shift_remove("annotations");
    }
    let source = if v.pointer("/spec/source").is_some() { "/spec/source" } else { "/spec/sources/0" };
    if let Some(s) = v.pointer_mut(source).and_then(Value::as_object_mut) {
        s.insert("path".into(), json!(overlay));
        for k in ["kustomize", "helm", "directory", "plugin", "chart"] {
            s.shift_remove(k);
        }
    }
    if let Some(spec) = v.get_mut("spec").and_then(Value::as_object_mut) {
        spec.shift_remove("ignoreDifferences");
        spec.shift_remove("info");
        if let Some(d) = spec.get_mut("destination").and_then(Value::as_object_mut) {
            d.insert("namespace".into(), json!(namespace));
        }
    }
    if let Some(m) = v.as_object_mut() {
        m.shift_remove("status");
        m.shift_remove("operation");
    }
    let file = if repo.docs(&ex.file).len() == 1 && !old_app.is_empty() && ex.file.contains(&old_app) {
        let (dir, base) = crate::repo::split_dir(&ex.file);
        let base = base.replacen(&old_app, name, 1);
        if dir.is_empty() { base } else { format!("{dir}/{base}") }
    } else {
        format!("argocd/{env}/{name}.yaml")
    };
    Ok(ArgoStyle { file, doc: v })
}

/// Checks the request against the repo.
fn check(repo: &Repo, req: &CreateRequest) -> Result<()> {
    if !is_dns_label(&req.name) {
        return Err(Error::Usage(format!(
            "app name {:?} is not a DNS label (lowercase letters, digits, '-')",
            req.name
        )));
    }
    if repo.apps.contains_key(&req.name) || repo.root.join("apps").join(&req.name).exists() {
        return Err(Error::Usage(format!("an app named {:?} already exists; pick another name", req.name)));
    }
    if let Some(ns) = &req.namespace
        && !is_dns_label(ns)
    {
        return Err(Error::Usage(format!("namespace {ns:?} is not a DNS label")));
    }
    crate::k8s::image::check_pinned(&req.image).map_err(Error::Usage)?;
    for e in &req.envs {
        if !repo.environments.contains(e) {
            return Err(Error::Usage(format!(
                "unknown environment {e:?}; environments: {}",
                repo.environments.join(", ")
            )));
        }
    }
    if req.port == Some(0) {
        return Err(Error::Usage("port must be 1-65535".into()));
    }
    if let Some(s) = &req.storage
        && crate::k8s::diff::quantity(&json!(s)).is_none_or(|q| q <= 0.0)
    {
        return Err(Error::Usage(format!("storage {s:?} is not a quantity (e.g. 10Gi)")));
    }
    if req.expose == Some(Expose::Ingress) && req.host.as_deref().is_none_or(str::is_empty) {
        return Err(Error::Usage("expose=ingress needs a host (--host app.example.com)".into()));
    }
    Ok(())
}

/// `ENV:KEY=VALUE` settings that apply to `env` (ENV may name the class).
fn env_vars(req: &CreateRequest, env: &str, class: &str) -> Result<Vec<(String, String)>> {
    let mut out: BTreeMap<String, String> = BTreeMap::new();
    for s in &req.set_env {
        let (e, kv) =
            s.split_once(':').ok_or_else(|| Error::Usage(format!("--set-env {s:?}: expected ENV:KEY=VALUE")))?;
        let (k, v) =
            kv.split_once('=').ok_or_else(|| Error::Usage(format!("--set-env {s:?}: expected ENV:KEY=VALUE")))?;
        let k = k.trim();
        if k.is_empty() || !k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.' || c == '-') {
            return Err(Error::Usage(format!("--set-env {s:?}: {k:?} is not an environment variable name")));
        }
        if e == env || e == class || e == "*" || e == "all" {
            out.insert(k.to_string(), v.to_string());
        }
    }
    Ok(out.into_iter().collect())
}

/// Renders every file of the new app. Writes nothing.
pub fn render(repo: &Repo, req: &CreateRequest) -> Result<CreatePlan> {
    check(repo, req)?;
    let name = req.name.clone();
    let namespace = req.namespace.clone().unwrap_or_else(|| name.clone());
    let envs: Vec<String> = if req.envs.is_empty() { repo.environments.clone() } else { req.envs.clone() };
    if envs.is_empty() {
        return Err(Error::Usage("the repo has no environments; pass --env or configure environments".into()));
    }
    // a setting for an environment (or class) that is not a target would be dropped silently
    let classes: BTreeSet<String> = envs.iter().map(|e| repo.env_class(e)).collect();
    for s in &req.set_env {
        let Some((e, _)) = s.split_once(':') else { continue };
        if !(envs.iter().any(|x| x == e) || classes.contains(e) || e == "*" || e == "all") {
            return Err(Error::Usage(format!(
                "--set-env {s:?}: {e:?} is neither a target environment ({}) nor the class of one ({})",
                envs.join(", "),
                classes.iter().cloned().collect::<Vec<_>>().join(", ")
            )));
        }
    }
    let tier = req.tier.clone().unwrap_or_else(|| "small".into());
    let expose = req.expose.unwrap_or_default();
    let stateful = req.storage.is_some();
    let port = req.port.unwrap_or(8080);
    let mut with: Vec<Extra> = req.with.clone();
    let mut notes = Vec::new();
    let np = &repo.config.policies.network_policy;
    if np.enabled && np.severity == crate::config::Severity::Error && !with.contains(&Extra::Networkpolicy) {
        with.push(Extra::Networkpolicy);
        notes.push(
            "a NetworkPolicy was added: the repo's network-policy check requires one for every workload".to_string(),
        );
    }
    with.sort();
    with.dedup();
    let style = learn_style(repo);
    let tpl = templates::Templates::load(&repo.root)?;
    let image = crate::k8s::image::parse(&req.image);
    // kustomize writes the digest alone when its `images:` entry has one.
    let (image_name, image_tag, image_digest) = match image.digest {
        Some(d) => (image.name, None, Some(d)),
        None => (image.name, image.tag, None),
    };

    let base_dir = style.base_dir.replace("{app}", &name);
    let mut base_resources =
        vec!["serviceaccount.yaml".to_string(), "workload.yaml".to_string(), "service.yaml".into()];
    if expose == Expose::Ingress {
        base_resources.push("ingress.yaml".into());
    }
    if with.contains(&Extra::Networkpolicy) {
        base_resources.push("networkpolicy.yaml".into());
    }
    if with.contains(&Extra::Servicemonitor) {
        base_resources.push("servicemonitor.yaml".into());
    }
    let annotations: Vec<Value> = style
        .ingress_annotations
        .iter()
        .map(|(k, v)| json!({"key": k, "value": crate::config::yaml::plain_or_quoted(v)}))
        .collect();
    let ctx = json!({
        "name": name,
        "namespace": namespace,
        "part_of": namespace,
        "tier": tier,
        "image_name": image_name,
        "image_tag": image_tag,
        "image_digest": image_digest,
        "port": port,
        "stateful": stateful,
        "storage": req.storage,
        "service_type": if expose == Expose::Loadbalancer { "LoadBalancer" } else { "ClusterIP" },
        "host": req.host,
        "ingress_class": style.ingress_class.clone().unwrap_or_else(|| "nginx".into()),
        "ingress_annotations": annotations,
        "resources": base_resources,
    });
    let mut files = Vec::new();
    files.push(NewFile {
        path: format!("{base_dir}/kustomization.yaml"),
        content: tpl.render("base-kustomization", &ctx)?,
    });
    for r in &base_resources {
        let t = r.trim_end_matches(".yaml");
        files.push(NewFile { path: format!("{base_dir}/{r}"), content: tpl.render(t, &ctx)? });
    }

    let mut env_plans = Vec::new();
    for env in &envs {
        let class = repo.env_class(env);
        let size = size_for(repo, &tier, &class)?;
        let overlay = style.overlay_dir.replace("{app}", &name).replace("{env}", env);
        let storage_class = if stateful {
            req.storage_class
                .clone()
                .or_else(|| repo.config.environments.get(env).and_then(|e| e.storage_class.clone()))
        } else {
            None
        };
        let hpa = with.contains(&Extra::Hpa);
        let pdb = with.contains(&Extra::Pdb) && size.replicas >= 2;
        let mut resources = Vec::new();
        if hpa {
            resources.push("hpa.yaml".to_string());
        }
        if pdb {
            resources.push("pdb.yaml".to_string());
        }
        let vars: Vec<Value> = env_vars(req, env, &class)?
            .into_iter()
            .map(|(k, v)| json!({"key": k, "value": crate::config::yaml::plain_or_quoted(&v)}))
            .collect();
        let mut octx = ctx.clone();
        if let Some(o) = octx.as_object_mut() {
            o.insert("env".into(), json!(env));
            o.insert("class".into(), json!(class));
            o.insert("replicas".into(), json!(size.replicas));
            o.insert("max_replicas".into(), json!(size.replicas.max(1) * 3));
            o.insert("cpu_request".into(), json!(size.cpu_request));
            o.insert("cpu_limit".into(), json!(size.cpu_limit));
            o.insert("memory_request".into(), json!(size.memory_request));
            o.insert("memory_limit".into(), json!(size.memory_limit));
            o.insert("env_vars".into(), json!(vars));
            o.insert("storage_class".into(), json!(storage_class));
            o.insert("hpa".into(), json!(hpa));
            o.insert("env_label_key".into(), json!(style.env_label_key));
            o.insert("resources".into(), json!(resources));
        }
        files.push(NewFile {
            path: format!("{overlay}/kustomization.yaml"),
            content: tpl.render("overlay-kustomization", &octx)?,
        });
        files.push(NewFile {
            path: format!("{overlay}/resources.yaml"),
            content: tpl.render("overlay-resources", &octx)?,
        });
        for r in &resources {
            files.push(NewFile {
                path: format!("{overlay}/{r}"),
                content: tpl.render(r.trim_end_matches(".yaml"), &octx)?,
            });
        }
        let argo = argo_style(repo, env, &name, &namespace, &overlay)?;
        let mut doc = argo.doc;
        if hpa {
            let kind = if stateful { "StatefulSet" } else { "Deployment" };
            doc["spec"]["ignoreDifferences"] =
                json!([{"group": "apps", "kind": kind, "name": name, "jsonPointers": ["/spec/replicas"]}]);
        }
        let yaml = yaml_serde::to_string(&doc).map_err(|e| Error::Internal(e.to_string()))?;
        files.push(NewFile {
            path: argo.file.clone(),
            content: format!("# {name} in {env}: created by agentops create ({tier} tier).\n{yaml}"),
        });
        env_plans.push(EnvPlan {
            env: env.clone(),
            class,
            overlay,
            application: doc.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default().to_string(),
            size,
            storage_class,
            objects: Vec::new(),
        });
    }
    // never overwrite
    for f in &files {
        if repo.abs(&f.path).exists() {
            return Err(Error::Usage(format!("{} already exists; create never overwrites a file", f.path)));
        }
    }
    let mut seen = BTreeSet::new();
    for f in &files {
        if !seen.insert(f.path.clone()) {
            return Err(Error::Internal(format!("two rendered files share the path {}", f.path)));
        }
    }
    Ok(CreatePlan {
        name,
        namespace,
        image: req.image.clone(),
        tier,
        stateful,
        storage: req.storage.clone(),
        expose,
        with,
        envs: env_plans,
        fingerprint: crate::workflows::fingerprint::of(&files),
        files,
        gates: Vec::new(),
        warnings: notes,
        blocked: Vec::new(),
        commit: None,
    })
}

/// Copies the repo (without .git and .agentops) into `to`, then writes the plan's files.
fn scratch_copy(repo: &Repo, plan: &CreatePlan, to: &Path) -> Result<()> {
    for entry in walkdir::WalkDir::new(&repo.root)
        .into_iter()
        .filter_entry(|e| !matches!(e.file_name().to_str(), Some(".git" | ".agentops" | "target" | ".tools")))
        .filter_map(|e| e.ok())
    {
        let rel = entry.path().strip_prefix(&repo.root).unwrap_or(entry.path());
        let dst = to.join(rel);
        if entry.file_type().is_dir() {
            std::fs::create_dir_all(&dst).map_err(|e| Error::io(&dst, e))?;
        } else if entry.file_type().is_file() {
            std::fs::copy(entry.path(), &dst).map_err(|e| Error::io(entry.path(), e))?;
        }
    }
    for f in &plan.files {
        let dst = to.join(&f.path);
        if let Some(p) = dst.parent() {
            std::fs::create_dir_all(p).map_err(|e| Error::io(p, e))?;
        }
        std::fs::write(&dst, &f.content).map_err(|e| Error::io(&dst, e))?;
    }
    Ok(())
}

/// Renders the plan and runs every gate; writes nothing to the repo.
pub async fn plan(
    repo: &Repo,
    engine: &Engine,
    clusters: Option<&ClusterSet>,
    redactor: &Redactor,
    req: &CreateRequest,
    jobs: usize,
) -> Result<CreatePlan> {
    let mut plan = render(repo, req)?;
    let scratch = tempfile::Builder::new()
        .prefix("agentops-create-")
        .tempdir()
        .map_err(|e| Error::io(&std::env::temp_dir(), e))?;
    scratch_copy(repo, &plan, scratch.path())?;
    let copy = Repo::load_with(scratch.path(), repo.config.clone())?;
    let vreq =
        ValidateRequest { app: vec![plan.name.clone()], clusters: clusters.is_some(), ..ValidateRequest::default() };
    let (mut report, needs) =
        tokio::task::block_in_place(|| validate::run_collect(&copy, engine, redactor, &vreq, jobs, &|_, _| {}))?;

    // overlays build
    for e in &mut plan.envs {
        let out = tokio::task::block_in_place(|| engine.build(&copy, &e.overlay));
        match (&out.error, out.values()) {
            (None, Ok(objs)) => {
                e.objects = objs.iter().map(|o| crate::k8s::ObjectRef::of(o).to_string()).collect();
                plan.gates.push(Gate {
                    gate: "build".into(),
                    env: Some(e.env.clone()),
                    ok: true,
                    message: format!("{} builds: {} objects", e.overlay, objs.len()),
                });
            }
            (Some(err), _) => plan.gates.push(Gate {
                gate: "build".into(),
                env: Some(e.env.clone()),
                ok: false,
                message: format!("{} does not build: {}", e.overlay, err.lines().next().unwrap_or_default()),
            }),
            (None, Err(err)) => plan.gates.push(Gate {
                gate: "build".into(),
                env: Some(e.env.clone()),
                ok: false,
                message: format!("{}: {err}", e.overlay),
            }),
        }
    }

    // cluster prerequisites, and the namespace
    let mut cluster_notes = Vec::new();
    if let Some(clusters) = clusters {
        let known: BTreeSet<String> = clusters.contexts().into_iter().collect();
        let (reach, skip): (Vec<_>, Vec<_>) =
            needs.into_iter().partition(|n| known.contains(&repo.config.context_for(&n.env)));
        let skipped: BTreeSet<String> = skip.into_iter().map(|n| n.env).collect();
        for env in skipped {
            cluster_notes.push(format!(
                "{env}: no kube context {} in the kubeconfig; its cluster was not checked",
                repo.config.context_for(&env)
            ));
        }
        validate::check_clusters(&copy, clusters, reach, &mut report, redactor).await;
        for e in &plan.envs {
            let context = repo.config.context_for(&e.env);
            if !known.contains(&context) {
                continue;
            }
            let creates = plan.files.iter().any(|f| {
                f.path.contains("argocd")
                    && f.content.contains(&format!("{}\n", e.application))
                    && f.content.contains("CreateNamespace=true")
            });
            if creates {
                continue;
            }
            let ns = plan.namespace.clone();
            let found = match clusters.client(&context).await {
                Ok(client) => {
                    let api: kube::Api<k8s_openapi::api::core::v1::Namespace> = kube::Api::all(client);
                    crate::cluster::with_retry(|| api.get_opt(&ns))
                        .await
                        .map(|o| o.is_some())
                        .map_err(|e| e.to_string())
                }
                Err(e) => Err(e.to_string()),
            };
            match found {
                Ok(true) => plan.gates.push(Gate { gate: "namespace".into(), env: Some(e.env.clone()), ok: true, message: format!("namespace {ns} exists") }),
                Ok(false) => plan.gates.push(Gate {
                    gate: "namespace".into(),
                    env: Some(e.env.clone()),
                    ok: false,
                    message: format!("namespace {ns} does not exist in cluster {context} and the Application does not set CreateNamespace=true: create it, or add CreateNamespace=true to the Application's syncOptions"),
                }),
                Err(err) => plan.gates.push(Gate { gate: "namespace".into(), env: Some(e.env.clone()), ok: false, message: format!("cluster {context} could not be checked: {err}") }),
            }
        }
    } else {
        cluster_notes.push(
            "no kubeconfig: cluster prerequisites (StorageClass, CRDs, IngressClass, namespace) were not checked"
                .into(),
        );
    }
    for f in &report.findings {
        let where_ = match (&f.file, f.line) {
            (Some(file), Some(line)) => format!("{file}:{line}: "),
            (Some(file), None) => format!("{file}: "),
            _ => String::new(),
        };
        let text = format!("{}{} [{}]", where_, f.message, f.check);
        match f.severity {
            Severity::Error => plan.gates.push(Gate {
                gate: f.check.clone(),
                env: Some(f.envs().join(", ")).filter(|e| !e.is_empty()),
                ok: false,
                message: text,
            }),
            _ => plan.warnings.push(text),
        }
    }
    if !report.findings.iter().any(|f| f.severity == Severity::Error) {
        plan.gates.push(Gate {
            gate: "validate".into(),
            env: None,
            ok: true,
            message: format!(
                "schemas, policies and Argo CD paths: {} overlays, {} objects, no errors{}",
                report.summary.overlays_built,
                report.summary.objects,
                if clusters.is_some() { "; cluster prerequisites met" } else { "" }
            ),
        });
    }
    plan.warnings.extend(cluster_notes);
    plan.blocked = plan.gates.iter().filter(|g| !g.ok).map(|g| g.message.clone()).collect();
    Ok(plan)
}

/// Writes the plan's files (never overwriting) and commits them with a drafted message.
pub fn apply(
    repo: &Repo,
    engine: &Engine,
    redactor: &Redactor,
    plan: &mut CreatePlan,
    commit: bool,
    reason: Option<&str>,
) -> Result<()> {
    if !plan.is_ok() {
        return Err(Error::Usage(format!("create is blocked (nothing was written):\n  {}", plan.blocked.join("\n  "))));
    }
    for f in &plan.files {
        if repo.abs(&f.path).exists() {
            return Err(Error::Usage(format!("{} appeared since the plan was made; nothing was written", f.path)));
        }
    }
    let mut written: Vec<std::path::PathBuf> = Vec::new();
    let mut dirs: Vec<std::path::PathBuf> = Vec::new();
    let undo = |written: &[std::path::PathBuf], dirs: &[std::path::PathBuf]| {
        for p in written {
            let _ = std::fs::remove_file(p);
        }
        for d in dirs.iter().rev() {
            let _ = std::fs::remove_dir(d);
        }
    };
    for f in &plan.files {
        let path = repo.abs(&f.path);
        if let Some(parent) = path.parent() {
            let mut missing = Vec::new();
            let mut p = parent.to_path_buf();
            while !p.exists() {
                missing.push(p.clone());
                if !p.pop() {
                    break;
                }
            }
            if let Err(e) = std::fs::create_dir_all(parent) {
                undo(&written, &dirs);
                return Err(Error::io(parent, e));
            }
            dirs.extend(missing.into_iter().rev());
        }
        if let Err(e) = std::fs::write(&path, &f.content) {
            undo(&written, &dirs);
            return Err(Error::Usage(format!("cannot write {}: {e}; nothing was left behind", f.path)));
        }
        written.push(path);
    }
    if commit {
        let paths: Vec<String> = plan.files.iter().map(|f| f.path.clone()).collect();
        // environments with the same value on one line, as the drafted body does
        fn grouped(items: impl Iterator<Item = (String, String)>) -> Vec<String> {
            let mut groups: Vec<(String, Vec<String>)> = Vec::new();
            for (env, value) in items {
                match groups.iter_mut().find(|(v, _)| *v == value) {
                    Some((_, envs)) => envs.push(env),
                    None => groups.push((value, vec![env])),
                }
            }
            // a line that would pass 72 characters continues on the next one
            groups
                .into_iter()
                .map(|(v, envs)| {
                    let one = format!("- {}: {v}", envs.join(", "));
                    if one.chars().count() <= 72 { one } else { format!("- {}:\n  {v}", envs.join(", ")) }
                })
                .collect()
        }
        let sizes = grouped(plan.envs.iter().map(|e| {
            let s = &e.size;
            let size = format!(
                "{} replica{}, cpu {}/{}, memory {}/{}",
                s.replicas,
                if s.replicas == 1 { "" } else { "s" },
                s.cpu_request,
                s.cpu_limit,
                s.memory_request,
                s.memory_limit
            );
            (e.env.clone(), size)
        }));
        // the workflow's own account: what runs, how big, where, and what it is made of
        let workload = if plan.stateful { "StatefulSet" } else { "Deployment" };
        let mut body =
            vec![format!("Image: {}", plan.image), format!("Workload: {workload} in namespace {}", plan.namespace)];
        body.push(format!("Tier: {} (replicas, cpu and memory requests/limits)", plan.tier));
        body.extend(sizes);
        if plan.stateful {
            let size = plan.storage.as_deref().unwrap_or("a volume");
            body.push(format!("Storage: {size} per replica, StorageClass:"));
            body.extend(grouped(
                plan.envs.iter().map(|e| {
                    (e.env.clone(), e.storage_class.clone().unwrap_or_else(|| "the cluster's default".into()))
                }),
            ));
        }
        let mut exposure =
            serde_json::to_value(plan.expose).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default();
        if !plan.with.is_empty() {
            let w: Vec<String> =
                plan.with.iter().filter_map(|x| serde_json::to_value(x).ok()?.as_str().map(str::to_string)).collect();
            exposure.push_str(&format!("; with {}", w.join(", ")));
        }
        body.push(format!("Exposure: {exposure}"));
        let argo = plan.files.iter().filter(|f| f.content.contains("\nkind: Application\n")).count();
        let base = plan.files.iter().filter(|f| f.path.contains("/base/")).count();
        body.push(format!(
            "Files: {}: {base} in the base, {} in {} overlays, {argo} Argo CD Applications",
            plan.files.len(),
            plan.files.len().saturating_sub(base + argo),
            plan.envs.len()
        ));
        let gates = plan.gates.iter().filter(|g| g.ok).count();
        body.push(format!("Gates: {gates}/{} passed", plan.gates.len()));
        let opts = crate::workflows::commit::draft::DraftOptions {
            reason: reason.map(str::to_string),
            body: Some(body),
            paths: Some(paths.clone()),
            ..Default::default()
        };
        let message = match crate::workflows::commit::draft::draft(
            &repo.root,
            engine,
            redactor,
            &opts,
            crate::kustomize::default_jobs(),
        ) {
            Ok(d) => d.message,
            Err(_) => format!("feat({n}): deploy {n} to {} environments\n", plan.envs.len(), n = plan.name),
        };
        match crate::git::commit_paths(&repo.root, &paths, &message, None) {
            Ok(sha) => plan.commit = Some(sha),
            Err(e) => {
                undo(&written, &dirs);
                return Err(Error::Usage(format!("commit failed: {e}; the files were removed again")));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn platform() -> Repo {
        Repo::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/platform")).unwrap()
    }

    fn req() -> CreateRequest {
        CreateRequest { name: "billing".into(), image: "ghcr.io/acme/billing:1.0.0".into(), ..CreateRequest::default() }
    }

    #[test]
    fn classes_and_tiers_size_each_environment() {
        let repo = platform();
        assert_eq!(repo.env_class("prod-west"), "prod");
        assert_eq!(repo.env_class("staging"), "staging");
        assert_eq!(repo.env_class("dev"), "dev");
        assert_eq!(size_for(&repo, "medium", "prod").unwrap().replicas, 3);
        assert_eq!(size_for(&repo, "small", "dev").unwrap().cpu_request, "50m");
        assert!(size_for(&repo, "huge", "prod").unwrap_err().to_string().contains("tiers.huge.prod"));
    }

    #[test]
    fn settings_apply_by_environment_or_class() {
        let r = CreateRequest {
            set_env: vec!["prod:RETENTION=30d".into(), "dev:RETENTION=15d".into(), "prod-west:REGION=us-west-2".into()],
            ..req()
        };
        assert_eq!(
            env_vars(&r, "prod-west", "prod").unwrap(),
            [("REGION".to_string(), "us-west-2".to_string()), ("RETENTION".into(), "30d".into())]
        );
        assert_eq!(env_vars(&r, "dev", "dev").unwrap(), [("RETENTION".to_string(), "15d".to_string())]);
        let bad = CreateRequest { set_env: vec!["RETENTION=30d".into()], ..req() };
        assert!(env_vars(&bad, "dev", "dev").is_err());
    }

    #[test]
    fn the_repos_style_is_learned_from_its_files() {
        let repo = platform();
        let style = learn_style(&repo);
        assert_eq!(style.base_dir, "apps/{app}/base");
        assert_eq!(style.overlay_dir, "apps/{app}/overlays/{env}");
        assert_eq!(style.env_label_key.as_deref(), Some("acme.io/environment"));
        assert_eq!(style.ingress_class.as_deref(), Some("nginx"));
        let argo = argo_style(&repo, "prod-west", "billing", "billing", "apps/billing/overlays/prod-west").unwrap();
        assert_eq!(argo.file, "argocd/prod-west/billing.yaml");
        assert_eq!(argo.doc["metadata"]["name"], "billing-prod-west");
        assert_eq!(argo.doc["spec"]["source"]["repoURL"], "https://github.com/acme/platform.git");
        assert_eq!(argo.doc["spec"]["destination"]["namespace"], "billing");
        assert!(argo.doc["spec"].get("ignoreDifferences").is_none(), "another app's ignores are not copied");
    }

    #[test]
    fn requests_are_checked_against_the_repo() {
        let repo = platform();
        let err = |r: CreateRequest| check(&repo, &r).unwrap_err().to_string();
        assert!(err(CreateRequest { name: "grafana".into(), ..req() }).contains("already exists"));
        assert!(err(CreateRequest { image: "x:latest".into(), ..req() }).contains(":latest"));
        assert!(err(CreateRequest { storage: Some("0".into()), ..req() }).contains("not a quantity"));
        assert!(err(CreateRequest { port: Some(0), ..req() }).contains("port"));
        // a setting no target environment takes is refused, not dropped
        let render_err = |r: CreateRequest| render(&repo, &r).unwrap_err().to_string();
        let typo = CreateRequest { set_env: vec!["prodd:FEATURE_X=1".into()], ..req() };
        assert!(render_err(typo).contains("\"prodd\" is neither a target environment"));
        let not_a_target =
            CreateRequest { envs: vec!["dev".into()], set_env: vec!["prod:FEATURE_X=1".into()], ..req() };
        assert!(render_err(not_a_target).contains("(dev) nor the class of one (dev)"));
        let fine =
            CreateRequest { set_env: vec!["prod:X=1".into(), "prod-west:Y=2".into(), "all:Z=3".into()], ..req() };
        assert!(render(&repo, &fine).is_ok());
        assert!(check(&repo, &req()).is_ok());
    }
}
