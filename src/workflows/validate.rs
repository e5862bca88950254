//! The validate workflow: every leaf builds, rendered objects pass strict schemas and the
//! policies, Argo CD Applications point at paths that exist. Bad input never stops the run:
//! each problem becomes a finding with file and line, and the rest is still checked.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicUsize, Ordering};

use rayon::prelude::*;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::cluster::prereq::{self, Need};
use crate::cluster::{ClusterError, ClusterSet};
use crate::config::Severity;
use crate::error::Result;
use crate::k8s::redact::Redactor;
use crate::k8s::schema::{SchemaOutcome, SchemaSet};
use crate::k8s::{self, ObjectRef};
use crate::kustomize::{Engine, classify};
use crate::repo::argocd::normalize_repo_url;
use crate::repo::{Closure, Leaf, Repo};

pub(crate) mod apis;
pub(crate) mod catalog;
mod checks;
pub(crate) mod rego;
pub(crate) mod suppress;

pub use catalog::CATALOG;
pub use suppress::Suppressed;

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ValidateRequest {
    /// Only overlays of these environments (all when empty).
    #[serde(default)]
    pub env: Vec<String>,
    /// Only overlays of these apps (all when empty).
    #[serde(default)]
    pub app: Vec<String>,
    /// Only overlays whose inputs changed since this git revision (and YAML files changed
    /// since then).
    #[serde(default)]
    pub changed_since: Option<String>,
    /// Also check each overlay's target cluster for what its objects need: StorageClasses,
    /// CRDs of custom kinds, IngressClasses (the cluster-prereq check).
    #[serde(default)]
    pub clusters: bool,
    /// Kubernetes version (`1.NN`) to check API versions against, for every environment
    /// (default: each environment's `kubernetes_version` in .agentops.yaml, else the newest
    /// agentops knows).
    #[serde(default)]
    pub kubernetes_version: Option<String>,
    /// Directories or files of Rego policies to evaluate instead of the configured ones
    /// (relative to the repo root).
    #[serde(default)]
    pub policy: Vec<String>,
}

/// Where an overlay needs something from its cluster.
#[derive(Debug, Clone)]
pub struct NeedSite {
    pub need: Need,
    pub env: String,
    pub finding: Finding,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Finding {
    pub check: String,
    pub severity: Severity,
    /// Repo-relative file at fault.
    pub file: Option<String>,
    pub line: Option<u32>,
    /// Repo-relative leaf directory whose build or output the finding concerns.
    pub overlay: Option<String>,
    pub app: Option<String>,
    pub env: Option<String>,
    /// Kind/namespace/name of the object concerned.
    pub object: Option<String>,
    pub message: String,
    /// The other overlays where the same source line gives the same finding (a base or a
    /// component shared by several environments): reported once, with every overlay listed.
    #[serde(default)]
    pub also: Vec<Occurrence>,
}

/// One more overlay a shared finding was found in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Occurrence {
    pub overlay: Option<String>,
    pub env: Option<String>,
    /// Kind/namespace/name of the object there (the namespace may differ by environment).
    pub object: Option<String>,
}

impl Finding {
    /// The environments of this finding: its own, then those of [`Finding::also`].
    pub fn envs(&self) -> Vec<&str> {
        let mut envs: Vec<&str> =
            self.env.iter().chain(self.also.iter().filter_map(|o| o.env.as_ref())).map(String::as_str).collect();
        envs.dedup();
        envs
    }
}

/// Merges findings that only differ by overlay (and an object's namespace): one source line
/// shared by several overlays (a typo in a base) is one finding with the overlays listed,
/// not one per environment. Findings without a file and line stay as they are.
fn merge_shared(findings: Vec<Finding>) -> Vec<Finding> {
    let kind_name = |o: &str| {
        let kind = o.split('/').next().unwrap_or(o).to_string();
        (kind, o.rsplit('/').next().unwrap_or(o).to_string())
    };
    let mut out: Vec<Finding> = Vec::with_capacity(findings.len());
    let mut first = BTreeMap::new();
    for f in findings {
        if f.overlay.is_none() || f.file.is_none() || f.line.is_none() {
            out.push(f);
            continue;
        }
        let key = (
            f.check.clone(),
            f.severity,
            f.app.clone(),
            f.file.clone(),
            f.line,
            f.object.as_deref().map(kind_name),
            f.message.clone(),
        );
        match first.get(&key) {
            Some(&i) => {
                let kept: &mut Finding = &mut out[i];
                kept.also.push(Occurrence { overlay: f.overlay, env: f.env, object: f.object });
                kept.also.extend(f.also);
            }
            None => {
                first.insert(key, out.len());
                out.push(f);
            }
        }
    }
    out
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Summary {
    pub overlays: usize,
    pub overlays_built: usize,
    pub overlays_failed: usize,
    pub overlays_skipped: usize,
    pub objects: usize,
    pub files: usize,
    pub argocd_applications: usize,
    pub errors: usize,
    pub warnings: usize,
    pub kustomize_runs: usize,
    pub cache_hits: usize,
    /// Findings hidden by suppressions (listed with `--show-suppressed`).
    #[serde(default)]
    pub suppressed: usize,
    /// The environments whose clusters were checked for prerequisites (`clusters`), and
    /// those whose cluster could not be reached.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub clusters_checked: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub clusters_unreachable: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ValidationReport {
    pub findings: Vec<Finding>,
    pub summary: Summary,
    /// Findings a suppression hid, each with its reason.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub suppressed: Vec<Suppressed>,
}

impl ValidationReport {
    pub fn has_errors(&self) -> bool {
        self.findings.iter().any(|f| f.severity == Severity::Error)
    }

    /// Scrubs every learned secret value from the report's text.
    pub fn redact(&mut self, redactor: &Redactor) {
        for f in self.findings.iter_mut().chain(self.suppressed.iter_mut().map(|s| &mut s.finding)) {
            f.message = redactor.scrub(&f.message);
            if let Some(o) = &f.object {
                f.object = Some(redactor.scrub(o));
            }
        }
    }
}

/// Progress callback: (done, total) leaves.
pub type Progress<'a> = &'a (dyn Fn(usize, usize) + Sync);

/// Runs the validation. `jobs` bounds parallel builds.
pub fn run(
    repo: &Repo,
    engine: &Engine,
    redactor: &Redactor,
    req: &ValidateRequest,
    jobs: usize,
    progress: Progress,
) -> Result<ValidationReport> {
    run_collect(repo, engine, redactor, req, jobs, progress).map(|r| r.0)
}

/// The validation, plus what each overlay needs from its cluster (when `req.clusters`).
pub fn run_collect(
    repo: &Repo,
    engine: &Engine,
    redactor: &Redactor,
    req: &ValidateRequest,
    jobs: usize,
    progress: Progress,
) -> Result<(ValidationReport, Vec<NeedSite>)> {
    // a repo with nothing to build (a CI job pointed at the wrong directory) is not "OK"
    if repo.leaves.is_empty() && repo.argocd_apps.is_empty() {
        return Err(crate::error::Error::Usage(format!(
            "nothing to validate in {}: no kustomization.yaml and no Argo CD Application found (is --repo right?)",
            repo.root.display()
        )));
    }
    // an unknown name would silently validate nothing: say so, for people and models alike
    for e in &req.env {
        if !repo.environments.contains(e) {
            return Err(crate::error::Error::Usage(format!(
                "unknown environment {e:?}; environments: {}",
                repo.environments.join(", ")
            )));
        }
    }
    for a in &req.app {
        if !repo.apps.contains_key(a) {
            let names: Vec<&str> = repo.apps.keys().map(String::as_str).collect();
            return Err(crate::error::Error::Usage(format!("unknown app {a:?}; apps: {}", names.join(", "))));
        }
    }
    let changed = match &req.changed_since {
        Some(rev) => Some(repo.changed_since(rev)?),
        None => None,
    };
    let leaves: Vec<&Leaf> = repo
        .leaves
        .iter()
        .filter(|l| req.env.is_empty() || l.env.as_ref().is_some_and(|e| req.env.contains(e)))
        .filter(|l| req.app.is_empty() || l.app.as_ref().is_some_and(|a| req.app.contains(a)))
        .filter(|l| changed.as_ref().is_none_or(|c| repo.closure(&l.dir).files.iter().any(|f| c.contains(f))))
        .collect();
    let filtered = !req.env.is_empty() || !req.app.is_empty() || changed.is_some();
    run_leaves(repo, engine, redactor, req, &leaves, filtered, changed.as_ref(), jobs, progress)
}

/// Validates exactly the leaves at `overlays` (repo-relative directories; unknown ones are
/// ignored), e.g. the overlays a commit affects. Argo CD Applications of their apps are
/// checked too.
pub fn run_overlays(
    repo: &Repo,
    engine: &Engine,
    redactor: &Redactor,
    overlays: &BTreeSet<String>,
    jobs: usize,
) -> Result<ValidationReport> {
    let leaves: Vec<&Leaf> = repo.leaves.iter().filter(|l| overlays.contains(&l.dir)).collect();
    let mut app: Vec<String> = leaves.iter().filter_map(|l| l.app.clone()).collect();
    app.sort();
    app.dedup();
    let req = ValidateRequest { app, ..ValidateRequest::default() };
    run_leaves(repo, engine, redactor, &req, &leaves, true, None, jobs, &|_, _| {}).map(|r| r.0)
}

#[allow(clippy::too_many_arguments)]
fn run_leaves(
    repo: &Repo,
    engine: &Engine,
    redactor: &Redactor,
    req: &ValidateRequest,
    leaves: &[&Leaf],
    filtered: bool,
    changed: Option<&BTreeSet<String>>,
    jobs: usize,
    progress: Progress,
) -> Result<(ValidationReport, Vec<NeedSite>)> {
    let mut findings = Vec::new();
    // yaml-syntax: every YAML file, or with filters the files the selected leaves reach
    // (and, with --changed-since, the changed ones).
    let mut scope: BTreeSet<&str> = BTreeSet::new();
    if filtered {
        for l in leaves {
            let c = repo.closure(&l.dir);
            for f in &c.files {
                if let Some((k, _)) = repo.files.get_key_value(f.as_str()) {
                    scope.insert(k.as_str());
                }
            }
        }
        if let Some(c) = changed {
            scope.extend(repo.files.keys().map(String::as_str).filter(|f| c.contains(*f)));
        }
    } else {
        scope.extend(repo.files.keys().map(String::as_str));
    }
    for path in &scope {
        if let Some(Err(e)) = repo.files.get(*path).map(|f| &f.docs) {
            let (app, env) = repo.owner_of(path);
            findings.push(Finding {
                check: "yaml-syntax".into(),
                severity: Severity::Error,
                file: Some(path.to_string()),
                line: Some(e.line),
                overlay: None,
                app,
                env,
                object: None,
                message: e.describe(),
                also: Vec::new(),
            });
        }
    }

    let mut schemas = SchemaSet::builtin();
    for f in repo.files.values() {
        let Ok(docs) = &f.docs else { continue };
        for d in docs {
            if d.value.get("kind").and_then(Value::as_str) == Some("CustomResourceDefinition")
                && let Err(e) = schemas.add_crd(&d.value)
            {
                findings.push(Finding {
                    check: "schema".into(),
                    severity: Severity::Warning,
                    file: Some(f.path.clone()),
                    line: Some(d.line),
                    overlay: None,
                    app: None,
                    env: None,
                    object: Some(ObjectRef::of(&d.value).to_string()),
                    message: format!("CustomResourceDefinition not usable as a schema: {e}"),
                    also: Vec::new(),
                });
            }
        }
    }

    let setup = Setup::new(repo, req)?;
    findings.extend(setup.rego.errors.iter().cloned());
    findings.extend(setup.suppression_findings.iter().cloned());

    let done = AtomicUsize::new(0);
    let total = leaves.len();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(jobs.max(1))
        .build()
        .map_err(|e| crate::error::Error::Internal(e.to_string()))?;
    let per_leaf: Vec<LeafResult> = pool.install(|| {
        leaves
            .par_iter()
            .map(|leaf| {
                let r = check_leaf(repo, engine, redactor, &schemas, &setup, leaf, req.clusters);
                progress(done.fetch_add(1, Ordering::Relaxed) + 1, total);
                r
            })
            .collect()
    });
    let mut summary = Summary { overlays: total, files: scope.len(), ..Summary::default() };
    let mut needs = Vec::new();
    let mut suppressed = Vec::new();
    for r in per_leaf {
        needs.extend(r.needs);
        suppressed.extend(r.suppressed);
        match r.outcome {
            LeafOutcome::Built(n) => {
                summary.overlays_built += 1;
                summary.objects += n;
            }
            LeafOutcome::Failed => summary.overlays_failed += 1,
            LeafOutcome::Skipped => summary.overlays_skipped += 1,
        }
        findings.extend(r.findings);
    }

    let argo = check_argocd(repo, req, changed);
    summary.argocd_applications = argo.0;
    findings.extend(argo.1);

    let stats = engine.stats();
    summary.kustomize_runs = stats.builds;
    summary.cache_hits = stats.cache_hits;
    // suppressions of .agentops.yaml cover every finding but those about suppressions
    let (kept, hidden): (Vec<Finding>, Vec<Suppressed>) =
        findings.into_iter().fold((Vec::new(), Vec::new()), |mut acc, f| {
            match setup.rules.iter().find(|r| f.check != "suppression" && r.matches(&f)) {
                Some(rule) => acc.1.push(rule.suppress(f)),
                None => acc.0.push(f),
            }
            acc
        });
    suppressed.extend(hidden);
    let mut report = ValidationReport { findings: kept, summary, suppressed };
    report.finish(redactor);
    Ok((report, needs))
}

/// What every leaf's checks share: the Kubernetes version per environment, the Rego
/// policies, and the configured suppressions.
struct Setup {
    /// Kubernetes version for every environment (the request's), if given.
    version: Option<(u32, u32)>,
    versions: BTreeMap<String, (u32, u32)>,
    rego: rego::RegoSet,
    rules: Vec<suppress::Rule>,
    suppression_findings: Vec<Finding>,
}

impl Setup {
    fn new(repo: &Repo, req: &ValidateRequest) -> Result<Setup> {
        let config_text = std::fs::read_to_string(repo.root.join(crate::config::CONFIG_FILE)).ok();
        let config_error = |key: &str, message: String| {
            let line = config_text
                .as_deref()
                .and_then(|t| t.lines().position(|l| l.trim_start().starts_with(&format!("{key}:"))))
                .map(|i| i as u32 + 1);
            crate::error::Error::Config { file: crate::config::CONFIG_FILE.into(), line, message }
        };
        if let Some(key) = catalog::unknown_policy_keys(&repo.config.policies).first() {
            let ids: Vec<&str> = CATALOG.iter().filter(|c| c.defaults.is_some()).map(|c| c.id).collect();
            return Err(config_error(
                key,
                format!(
                    "policies: {key:?} is no check; the checks are required-labels, resource-limits, image-tag, network-policy, argocd-path, schema, {} (see docs/validate.md)",
                    ids.join(", ")
                ),
            ));
        }
        let version = match &req.kubernetes_version {
            Some(v) => Some(apis::parse_version(v).ok_or_else(|| {
                crate::error::Error::Usage(format!("--kubernetes-version {v:?} is not a version like 1.33"))
            })?),
            None => None,
        };
        let mut versions = BTreeMap::new();
        for (env, e) in &repo.config.environments {
            if let Some(v) = &e.kubernetes_version {
                let parsed = apis::parse_version(v).ok_or_else(|| {
                    config_error(
                        "kubernetes_version",
                        format!("environment {env}: kubernetes_version {v:?} is not a version like 1.33"),
                    )
                })?;
                versions.insert(env.clone(), parsed);
            }
        }
        let rego = if req.policy.is_empty() {
            let configured = &repo.config.policies.rego;
            let optional = configured == &vec!["policy".to_string()];
            let paths: Vec<(std::path::PathBuf, String)> =
                configured.iter().map(|p| (repo.abs(p), p.clone())).collect();
            rego::RegoSet::load(&paths, optional)
        } else {
            let paths: Vec<(std::path::PathBuf, String)> = req
                .policy
                .iter()
                .map(|p| {
                    let abs = repo.abs(p);
                    let shown = abs
                        .strip_prefix(&repo.root)
                        .map(|r| r.to_string_lossy().replace('\\', "/"))
                        .unwrap_or_else(|_| p.clone());
                    (abs, shown)
                })
                .collect();
            rego::RegoSet::load(&paths, false)
        };
        let today = crate::time::today();
        let (rules, suppression_findings) =
            suppress::rules(&repo.config.policies.suppressions, config_text.as_deref(), &today);
        Ok(Setup { version, versions, rego, rules, suppression_findings })
    }

    fn version_for(&self, env: Option<&str>) -> (u32, u32) {
        self.version.or_else(|| env.and_then(|e| self.versions.get(e).copied())).unwrap_or(apis::NEWEST)
    }
}

impl ValidationReport {
    /// Sorts and deduplicates findings, recounts them, and redacts.
    fn finish(&mut self, redactor: &Redactor) {
        self.findings.sort_by(|a, b| {
            (&a.app, &a.env, &a.overlay, &a.file, a.line, &a.check, &a.object, &a.message)
                .cmp(&(&b.app, &b.env, &b.overlay, &b.file, b.line, &b.check, &b.object, &b.message))
        });
        self.findings.dedup();
        self.findings = merge_shared(std::mem::take(&mut self.findings));
        self.suppressed.sort_by(|a, b| {
            let (a, b) = (&a.finding, &b.finding);
            (&a.app, &a.env, &a.overlay, &a.file, a.line, &a.check, &a.object, &a.message)
                .cmp(&(&b.app, &b.env, &b.overlay, &b.file, b.line, &b.check, &b.object, &b.message))
        });
        self.suppressed.dedup();
        self.summary.suppressed = self.suppressed.len();
        self.summary.errors = self.findings.iter().filter(|f| f.severity == Severity::Error).count();
        self.summary.warnings = self.findings.iter().filter(|f| f.severity == Severity::Warning).count();
        self.redact(redactor);
    }
}

/// cluster-prereq: checks every need against the cluster of its environment (each cluster
/// read once, all concurrently) and adds findings to the report. An unreachable cluster is
/// one error finding for its environment; the other clusters are still checked.
pub async fn check_clusters(
    repo: &Repo,
    clusters: &ClusterSet,
    needs: Vec<NeedSite>,
    report: &mut ValidationReport,
    redactor: &Redactor,
) {
    let mut contexts: Vec<String> = needs.iter().map(|n| repo.config.context_for(&n.env)).collect();
    contexts.sort();
    contexts.dedup();
    let facts = clusters.run_all(&contexts, |client| async move { prereq::facts(&client).await }).await;
    let facts: BTreeMap<String, std::result::Result<prereq::ClusterFacts, ClusterError>> = facts.into_iter().collect();
    let mut seen = BTreeSet::new();
    let mut down = BTreeSet::new();
    let mut checked: Vec<String> = needs.iter().map(|n| n.env.clone()).collect();
    checked.sort_by_key(|e| repo.environments.iter().position(|x| x == e));
    checked.dedup();
    report.summary.clusters_checked = checked;
    for site in needs {
        let context = repo.config.context_for(&site.env);
        match facts.get(&context) {
            Some(Ok(f)) => {
                if let Some(problem) = prereq::unmet(&site.need, f)
                    && seen.insert((site.finding.overlay.clone(), site.need.clone()))
                {
                    let mut finding = site.finding;
                    finding.message = format!("{problem} in cluster {context} (env {})", site.env);
                    report.findings.push(finding);
                }
            }
            Some(Err(e)) if down.insert(context.clone()) => {
                report.summary.clusters_unreachable.push(site.env.clone());
                report.findings.push(Finding {
                    check: "cluster-prereq".into(),
                    severity: Severity::Error,
                    file: None,
                    line: None,
                    overlay: None,
                    app: None,
                    env: Some(site.env.clone()),
                    object: None,
                    message: format!("cluster {context} (env {}) could not be checked: {e}", site.env),
                    also: Vec::new(),
                });
            }
            _ => {}
        }
    }
    report.finish(redactor);
}

enum LeafOutcome {
    Built(usize),
    Failed,
    Skipped,
}

struct LeafResult {
    outcome: LeafOutcome,
    findings: Vec<Finding>,
    needs: Vec<NeedSite>,
    suppressed: Vec<Suppressed>,
}

/// Context for findings about one leaf's rendered objects.
struct LeafCtx<'a> {
    repo: &'a Repo,
    leaf: &'a Leaf,
    closure: &'a Closure,
    out: Vec<Finding>,
}

impl LeafCtx<'_> {
    fn finding(
        &mut self,
        check: &str,
        severity: Severity,
        file: Option<String>,
        line: Option<u32>,
        object: Option<String>,
        message: String,
    ) {
        self.out.push(Finding {
            check: check.into(),
            severity,
            file,
            line,
            overlay: Some(self.leaf.dir.clone()),
            app: self.leaf.app.clone(),
            env: self.leaf.env.clone(),
            object,
            message,
            also: Vec::new(),
        });
    }

    /// A finding on a rendered object, pinned to its source document where it can be found.
    fn on_object(&mut self, check: &str, severity: Severity, obj: &Value, pointer: &str, message: String) {
        let r = ObjectRef::of(obj);
        if let Some((f, line)) = self.repo.locate_patch(self.closure, &self.leaf.dir, &r.kind, &r.name, pointer) {
            let file = Some(f.to_string());
            self.finding(check, severity, file, Some(line), Some(r.to_string()), message);
            return;
        }
        let (file, line) = match self.repo.locate_source(self.closure, &r.kind, &r.name) {
            Some((f, d)) => (Some(f.to_string()), Some(d.line_of(pointer))),
            None => match self.repo.locate_generator(self.closure, &r.kind, &r.name) {
                Some((f, line)) => (Some(f.to_string()), Some(line)),
                None => (self.repo.kustomizations.get(&self.leaf.dir).map(|k| k.file.clone()), None),
            },
        };
        self.finding(check, severity, file, line, Some(r.to_string()), message);
    }
}

fn check_leaf(
    repo: &Repo,
    engine: &Engine,
    redactor: &Redactor,
    schemas: &SchemaSet,
    setup: &Setup,
    leaf: &Leaf,
    wants_clusters: bool,
) -> LeafResult {
    let closure = repo.closure(&leaf.dir);
    let mut cx = LeafCtx { repo, leaf, closure: &closure, out: Vec::new() };
    if !closure.blockers.is_empty() {
        for b in &closure.blockers {
            cx.finding(
                "kustomize-build",
                Severity::Warning,
                Some(b.file.clone()),
                Some(b.line),
                None,
                format!("not built: {}", b.what),
            );
        }
        return LeafResult {
            outcome: LeafOutcome::Skipped,
            findings: cx.out,
            needs: Vec::new(),
            suppressed: Vec::new(),
        };
    }
    let built = engine.build(repo, &leaf.dir);
    if let Some(err) = &built.error {
        let e = classify(err, repo, &leaf.dir);
        cx.finding(
            "kustomize-build",
            Severity::Error,
            Some(e.file),
            e.line,
            None,
            format!("build failed ({}): {}", e.class, e.message),
        );
        return LeafResult {
            outcome: LeafOutcome::Failed,
            findings: cx.out,
            needs: Vec::new(),
            suppressed: Vec::new(),
        };
    }
    let objects = match built.values() {
        Ok(v) => flatten_lists(v),
        Err(e) => {
            cx.finding(
                "kustomize-build",
                Severity::Error,
                repo.kustomizations.get(&leaf.dir).map(|k| k.file.clone()),
                None,
                None,
                format!("kustomize output does not parse: {e}"),
            );
            return LeafResult {
                outcome: LeafOutcome::Failed,
                findings: cx.out,
                needs: Vec::new(),
                suppressed: Vec::new(),
            };
        }
    };
    objects.iter().for_each(|o| redactor.learn_object(o));
    let p = &repo.config.policies;
    let mut missing_schema = BTreeSet::new();
    for obj in &objects {
        if p.schema.enabled {
            match schemas.validate(obj) {
                SchemaOutcome::Valid => {}
                SchemaOutcome::Invalid(violations) => {
                    for v in violations {
                        let at = if v.pointer.is_empty() { String::new() } else { format!(" at {}", v.pointer) };
                        cx.on_object("schema", p.schema.severity, obj, &v.pointer, format!("{}{at}", v.message));
                    }
                }
                SchemaOutcome::NoSchema => {
                    let r = ObjectRef::of(obj);
                    if missing_schema.insert((r.api_version.clone(), r.kind.clone())) {
                        cx.on_object(
                            "schema",
                            Severity::Warning,
                            obj,
                            "",
                            format!(
                                "no schema for {} {}: add its CustomResourceDefinition to the repo to check it",
                                r.api_version, r.kind
                            ),
                        );
                    }
                }
            }
        }
        if p.required_labels.enabled {
            let labels = obj.pointer("/metadata/labels").and_then(Value::as_object);
            for l in &p.required_labels.labels {
                if labels.is_none_or(|m| !m.contains_key(l)) {
                    cx.on_object(
                        "required-labels",
                        p.required_labels.severity,
                        obj,
                        "/metadata/labels",
                        format!("missing label {l}"),
                    );
                }
            }
        }
        for (ptr, c) in k8s::containers(obj) {
            let name = c.get("name").and_then(Value::as_str).unwrap_or("?");
            if p.resource_limits.enabled {
                for res in &p.resource_limits.resources {
                    if c.pointer(&format!("/resources/limits/{res}")).is_none() {
                        cx.on_object(
                            "resource-limits",
                            p.resource_limits.severity,
                            obj,
                            &format!("{ptr}/resources/limits"),
                            format!("container {name:?} has no {res} limit"),
                        );
                    }
                }
            }
            if p.image_tag.enabled {
                let image = c.get("image").and_then(Value::as_str).unwrap_or_default();
                if let Some(problem) = crate::k8s::image::pin_problem(image) {
                    let message = format!("container {name:?}: {problem}");
                    // an overlay's `images:` entry that set the tag is where to fix it
                    match repo.locate_image(&closure, &leaf.dir, image) {
                        Some((f, line)) => {
                            let object = Some(ObjectRef::of(obj).to_string());
                            cx.finding(
                                "image-tag",
                                p.image_tag.severity,
                                Some(f.to_string()),
                                Some(line),
                                object,
                                message,
                            )
                        }
                        None => cx.on_object("image-tag", p.image_tag.severity, obj, &format!("{ptr}/image"), message),
                    }
                }
            }
        }
    }
    if p.network_policy.enabled {
        let policies: Vec<(Option<&str>, &Value)> = objects
            .iter()
            .filter(|o| o.get("kind").and_then(Value::as_str) == Some("NetworkPolicy"))
            .map(|o| {
                (
                    o.pointer("/metadata/namespace").and_then(Value::as_str),
                    o.pointer("/spec/podSelector").unwrap_or(&Value::Null),
                )
            })
            .collect();
        for obj in &objects {
            if k8s::pod_spec_pointer(obj).is_none() || obj.get("kind").and_then(Value::as_str) == Some("Pod") {
                continue;
            }
            let empty = serde_json::Map::new();
            let labels = k8s::pod_labels(obj).unwrap_or(&empty);
            let ns = obj.pointer("/metadata/namespace").and_then(Value::as_str);
            let selected =
                policies.iter().any(|(pns, sel)| *pns == ns && (sel.is_null() || k8s::selector_matches(sel, labels)));
            if !selected {
                let ptr = k8s::pod_spec_pointer(obj)
                    .and_then(|s| s.strip_suffix("/spec"))
                    .map(|t| format!("{t}/metadata/labels"))
                    .unwrap_or_default();
                cx.on_object(
                    "network-policy",
                    p.network_policy.severity,
                    obj,
                    &ptr,
                    format!(
                        "no NetworkPolicy in this overlay selects its pods (namespace {})",
                        ns.unwrap_or("default")
                    ),
                );
            }
        }
    }
    // the built-in checks, by the environment's class (a leaf of no environment counts as prod)
    let class = leaf.env.as_deref().map_or_else(|| "prod".to_string(), |e| repo.env_class(e));
    checks::run(&mut cx, &objects, &class, setup.version_for(leaf.env.as_deref()));
    if let Some(mut rego_engine) = setup.rego.engine() {
        let mut errors = Vec::new();
        for obj in &objects {
            let r = ObjectRef::of(obj);
            let file = repo.locate_source(&closure, &r.kind, &r.name).map(|(f, _)| f);
            let origin = rego::Origin { app: leaf.app.as_deref(), env: leaf.env.as_deref(), overlay: &leaf.dir, file };
            let (outcomes, errs) = setup.rego.evaluate(&mut rego_engine, obj, &origin);
            for o in outcomes {
                cx.on_object(&o.check, o.severity, obj, "", o.message);
            }
            errors.extend(errs);
        }
        errors.dedup();
        cx.out.extend(errors);
    }
    let suppressed = annotation_suppressions(&mut cx, &objects);
    let needs = match (&leaf.env, wants_clusters) {
        (Some(env), true) => leaf_needs(&mut cx, env, &objects),
        _ => Vec::new(),
    };
    LeafResult { outcome: LeafOutcome::Built(objects.len()), findings: cx.out, needs, suppressed }
}

/// Applies the objects' `agentops.dev/ignore` annotations to the leaf's findings: matching
/// findings move out (returned, with their reasons); entries without a reason or naming no
/// check become findings of their own.
fn annotation_suppressions(cx: &mut LeafCtx, objects: &[Value]) -> Vec<Suppressed> {
    let mut entries: BTreeMap<String, Vec<suppress::AnnotationEntry>> = BTreeMap::new();
    let pointer = format!("/metadata/annotations/{}", suppress::ANNOTATION.replace('/', "~1"));
    for obj in objects {
        let Some(value) = obj.pointer(&pointer).and_then(Value::as_str) else { continue };
        let mut usable = Vec::new();
        for e in suppress::parse_annotation(value) {
            match suppress::annotation_problem(&e) {
                Some((severity, message)) => cx.on_object("suppression", severity, obj, &pointer, message),
                None => usable.push(e),
            }
        }
        entries.insert(ObjectRef::of(obj).to_string(), usable);
    }
    if entries.is_empty() {
        return Vec::new();
    }
    let mut suppressed = Vec::new();
    let findings = std::mem::take(&mut cx.out);
    for f in findings {
        let hit = f
            .object
            .as_ref()
            .and_then(|o| entries.get(o))
            .and_then(|es| es.iter().find(|e| e.check == f.check && f.check != "suppression"));
        match hit {
            Some(e) => suppressed.push(Suppressed {
                reason: e.reason.clone().unwrap_or_default(),
                suppressed_by: suppress::ANNOTATION.to_string(),
                finding: f,
            }),
            None => cx.out.push(f),
        }
    }
    suppressed
}

/// What the leaf's objects need from its cluster, each with a finding pinned to its cause,
/// to report if the cluster lacks it. CRDs the overlay renders itself count as present.
fn leaf_needs(cx: &mut LeafCtx, env: &str, objects: &[Value]) -> Vec<NeedSite> {
    let own_crds: BTreeSet<(String, String)> = objects
        .iter()
        .filter(|o| o.get("kind").and_then(Value::as_str) == Some("CustomResourceDefinition"))
        .filter_map(|o| {
            Some((
                o.pointer("/spec/group")?.as_str()?.to_string(),
                o.pointer("/spec/names/kind")?.as_str()?.to_string(),
            ))
        })
        .collect();
    let mut out = Vec::new();
    for obj in objects {
        for (need, ptr) in prereq::needs_of(obj) {
            if let Need::Crd { group, kind, .. } = &need
                && own_crds.contains(&(group.clone(), kind.clone()))
            {
                continue;
            }
            cx.on_object("cluster-prereq", Severity::Error, obj, &ptr, String::new());
            if let Some(finding) = cx.out.pop() {
                out.push(NeedSite { need, env: env.to_string(), finding });
            }
        }
    }
    out
}

pub(crate) fn flatten_lists(objs: Vec<Value>) -> Vec<Value> {
    let mut out = Vec::with_capacity(objs.len());
    for o in objs {
        let is_list = o.get("kind").and_then(Value::as_str).is_some_and(|k| k == "List" || k.ends_with("List"))
            && o.get("items").is_some_and(Value::is_array);
        if is_list {
            if let Some(Value::Array(items)) = o.get("items") {
                out.extend(flatten_lists(items.clone()));
            }
        } else {
            out.push(o);
        }
    }
    out
}

/// argocd-path: Applications of this repo point at paths that exist. Returns the number of
/// Applications considered and the findings.
fn check_argocd(repo: &Repo, req: &ValidateRequest, changed: Option<&BTreeSet<String>>) -> (usize, Vec<Finding>) {
    let policy = &repo.config.policies.argocd_path;
    let mut out = Vec::new();
    if !policy.enabled {
        return (0, out);
    }
    let own = repo.config.repo_url.clone().or_else(|| origin_url(repo)).map(|u| normalize_repo_url(&u));
    let overlay_owner: BTreeMap<&str, &Leaf> = repo.leaves.iter().map(|l| (l.dir.as_str(), l)).collect();
    let mut count = 0;
    for app in &repo.argocd_apps {
        if changed.is_some_and(|c| !c.contains(&app.file)) {
            continue;
        }
        for src in &app.sources {
            let Some(path) = &src.path else { continue };
            if src.chart.is_some() || path.contains("{{") {
                continue;
            }
            let ours = match (&own, &src.repo_url) {
                (Some(own), Some(url)) => &normalize_repo_url(url) == own,
                _ => true,
            };
            if !ours {
                continue;
            }
            let norm = crate::repo::kustomization::join("", path);
            let (a, e) = match overlay_owner.get(norm.as_str()) {
                Some(l) => (l.app.clone(), l.env.clone()),
                // A path that does not exist may still name an app and environment.
                None => layout_owner(repo, &norm),
            };
            if (!req.app.is_empty() && a.as_ref().is_none_or(|x| !req.app.contains(x)))
                || (!req.env.is_empty() && e.as_ref().is_none_or(|x| !req.env.contains(x)))
            {
                continue;
            }
            count += 1;
            let exists = !norm.starts_with("..") && repo.abs(&norm).is_dir();
            if !exists {
                out.push(Finding {
                    check: "argocd-path".into(),
                    severity: policy.severity,
                    file: Some(app.file.clone()),
                    line: Some(src.line),
                    overlay: None,
                    app: a,
                    env: e,
                    object: Some(format!(
                        "Application/{}{}",
                        app.namespace.as_ref().map(|n| format!("{n}/")).unwrap_or_default(),
                        app.name
                    )),
                    message: format!("path {path:?} does not exist in this repo"),
                    also: Vec::new(),
                });
            }
        }
    }
    (count, out)
}

fn layout_owner(repo: &Repo, dir: &str) -> (Option<String>, Option<String>) {
    repo.config
        .layout
        .overlays
        .iter()
        .filter_map(|p| crate::config::PathPattern::new(p).ok())
        .find_map(|p| p.captures(dir))
        .unwrap_or_default()
}

/// The `origin` remote of the repo, when the repo is the root of its git repository (Argo
/// CD paths are relative to that root; a folder inside another project has no URL of its
/// own, so every Application's path is checked).
fn origin_url(repo: &Repo) -> Option<String> {
    let git = git2::Repository::discover(&repo.root).ok()?;
    let workdir = git.workdir()?.canonicalize().ok()?;
    if workdir != repo.root {
        return None;
    }
    let remote = git.find_remote("origin").ok()?;
    remote.url().ok().map(str::to_string)
}
