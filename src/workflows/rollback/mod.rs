//! Rollback: from an error spike to a verified recovery and an incident report.
//!
//! 1. Evidence: the Argo CD Application's history and state, the git log of every path that
//!    renders into the app's overlay, and the app's error ratio while each deploy was live.
//! 2. Culprit and target: the deploy after which the error ratio rose, the commits between
//!    the target and the current revision that touch the app's paths, and the latest earlier
//!    deploy that was healthy (`to` overrides).
//! 3. Risks: what a revert does not undo (migrations, volumes, CRDs, removed keys, namespaces).
//! 4. Execute ([`apply`]): the revert as one new commit restricted to the app's paths, with the
//!    incident report; push when a remote is configured. The sync is the `argocd_sync` tool's.
//! 5. Verify ([`verify::verify`]) and record the results in the report (a follow-up commit).

pub(crate) mod report;
pub(crate) mod risks;
pub(crate) mod verify;

use std::collections::{BTreeMap, BTreeSet};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::cluster::argocd::Applications;
use crate::cluster::metrics::{self, Endpoint, Range};
use crate::error::Error;
use crate::git::{self, AppPaths, CommitInfo, LogQuery, Remote};
use crate::repo::Repo;
use crate::workflows::{Ctx, blocking};
use risks::Risk;

/// What to roll back, and how to judge health.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RollbackRequest {
    /// The app to roll back, e.g. `auth-service`.
    pub app: String,
    /// The environment, e.g. `prod-west`.
    pub env: String,
    /// Target revision (commit sha or prefix, tag, branch); default: the latest earlier
    /// deploy that was healthy.
    #[serde(default)]
    pub to: Option<String>,
    /// Only deploys and commits this recent count as evidence: `30m`, `6h`, `2d`, `1w`.
    #[serde(default)]
    pub since: Option<String>,
    /// Error ratio (0..1) at or above which a deploy counts as unhealthy (default: the
    /// config's `rollback.error_threshold`, 0.05).
    #[serde(default)]
    pub threshold: Option<f64>,
    /// Seconds verification waits for the sync, rollout, health and error ratio (default:
    /// the config's `rollback.verify_timeout_seconds`, 300).
    #[serde(default)]
    pub verify_timeout_seconds: Option<u64>,
    /// Reverting: the `fingerprint` of the rollback_plan output that was shown; when the
    /// culprit commits or the target now differ, nothing is written (a plan ignores it).
    #[serde(default)]
    pub expect: Option<String>,
}

/// Parses `90s`, `30m`, `6h`, `2d`, `1w` (and `1h30m`, or a bare number of minutes) into
/// seconds: `crate::time::parse_duration`, with rollback's message.
pub fn parse_duration(s: &str) -> Result<i64, String> {
    crate::time::parse_duration(s)
        .and_then(|secs| i64::try_from(secs).ok())
        .ok_or_else(|| format!("{s:?} is not a duration like 30m, 6h, 2d"))
}

/// One deploy of the Application's history, with the error ratio while it was live.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Deploy {
    pub id: i64,
    pub revision: String,
    pub short: String,
    pub deployed_at: String,
    pub deployed_unix: i64,
    /// Mean error ratio while live (None: unknown).
    pub error_rate: Option<f64>,
    /// Below the threshold while live (None: unknown).
    pub healthy: Option<bool>,
}

/// The Application as the cluster has it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AppState {
    pub application: String,
    pub namespace: String,
    /// Namespace the app runs in (the Application's destination).
    pub app_namespace: String,
    pub sync_status: String,
    pub revision: String,
    pub health: String,
    pub auto_sync: bool,
    pub target_revision: String,
}

/// Where the error ratio came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct MetricsInfo {
    pub query: String,
    pub endpoint: String,
    pub threshold: f64,
    /// Now (None: unknown).
    pub current: Option<f64>,
    /// Why the error ratio is unknown.
    pub error: Option<String>,
}

/// The revision to go back to, with its record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Target {
    pub revision: String,
    pub short: String,
    /// "deployed 2d ago, error rate 0.1% while live"
    pub record: String,
    pub deploy: Option<Deploy>,
}

/// One environment a revert changes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ScopeEnv {
    /// The environment (None for a leaf outside the apps/environments layout).
    pub env: Option<String>,
    pub overlay: String,
    /// Its Argo CD Application, when the repo has one.
    pub application: Option<String>,
    /// Argo CD syncs it on its own: it changes at the next sync.
    pub auto_sync: bool,
    /// The environment of the incident (synced and verified by the rollback).
    pub incident: bool,
}

/// The lines a culprit commit changed in one of the reverted files.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct FileDiff {
    pub commit: String,
    pub file: String,
    /// Unified diff with two lines of context (cut at 80 lines).
    pub diff: String,
}

/// The plan: evidence, culprit, target, risks, actions. `blocked` says why it cannot run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RollbackPlan {
    pub request: RollbackRequest,
    pub overlay: String,
    pub state: AppState,
    /// Deploys, oldest first.
    pub deploys: Vec<Deploy>,
    pub metrics: MetricsInfo,
    pub current: Option<Deploy>,
    pub target: Option<Target>,
    /// The deploys after which the error ratio rose (or, when unknown, every deploy after
    /// the target).
    pub culprit_deploys: Vec<Deploy>,
    /// The commits between the target and the current revision that touch the app's
    /// paths, newest first: what the revert undoes.
    pub culprit_commits: Vec<CommitInfo>,
    /// Recent commits touching the app's paths, newest first (evidence).
    pub recent_commits: Vec<CommitInfo>,
    pub risks: Vec<Risk>,
    /// Every environment the revert changes: the incident's first, then every other overlay
    /// that renders a reverted file.
    #[serde(default)]
    pub scope: Vec<ScopeEnv>,
    /// What the culprit commits changed in the reverted files.
    #[serde(default)]
    pub culprit_diffs: Vec<FileDiff>,
    pub actions: Vec<String>,
    pub downtime: String,
    pub remote: Option<Remote>,
    /// Web URL of the repo for commit links, when known.
    pub repo_url: Option<String>,
    pub notes: Vec<String>,
    /// What the operator should know now (this machine's git set-up): shown, never part of
    /// the incident report.
    #[serde(default)]
    pub console_notes: Vec<String>,
    pub blocked: Option<String>,
    /// A hash of the overlay, the deployed, current and target revisions and the culprit
    /// commits: git_revert given it as `expect` reverts only this plan.
    pub fingerprint: String,
}

impl RollbackPlan {
    pub fn is_ready(&self) -> bool {
        self.blocked.is_none()
    }
}

fn now() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}

/// "45s", "12m", "3h", "2d" ago.
pub fn ago(unix: i64) -> String {
    let s = (now() as i64 - unix).max(0);
    match s {
        0..120 => format!("{s}s ago"),
        120..7200 => format!("{}m ago", s / 60),
        7200..172_800 => format!("{}h ago", s / 3600),
        _ => format!("{} days ago", s / 86_400),
    }
}

/// A ratio as a percentage: `87.0%`, `0.1%`.
pub fn pct(r: Option<f64>) -> String {
    match r {
        Some(v) => format!("{:.1}%", v * 100.0),
        None => "unknown".into(),
    }
}

fn short(sha: &str) -> String {
    sha.chars().take(7).collect()
}

/// The app's overlay directory and its Argo CD Application in the repo.
pub fn locate(repo: &Repo, app: &str, env: &str) -> Result<(String, crate::repo::argocd::ArgoApp), Error> {
    if !repo.environments.iter().any(|e| e == env) {
        return Err(Error::workflow(format!(
            "unknown environment {env:?}; environments: {}",
            repo.environments.join(", ")
        )));
    }
    let a = repo.apps.get(app).ok_or_else(|| {
        Error::workflow(format!(
            "unknown app {app:?}; apps: {}",
            repo.apps.keys().cloned().collect::<Vec<_>>().join(", ")
        ))
    })?;
    let overlay =
        a.overlays.get(env).cloned().ok_or_else(|| Error::workflow(format!("{app} has no overlay for {env}")))?;
    let argo = repo
        .argocd_apps
        .iter()
        .find(|x| x.sources.iter().any(|s| s.path.as_deref().map(|p| p.trim_matches('/')) == Some(overlay.as_str())))
        .cloned()
        .ok_or_else(|| Error::workflow(format!("no Argo CD Application in the repo deploys {overlay}")))?;
    Ok((overlay, argo))
}

/// The app's paths: every file that renders into its overlay.
pub fn app_paths(repo: &Repo, overlay: &str) -> AppPaths {
    AppPaths::new(repo.closure(overlay).files.iter().cloned())
}

/// A revert restricted to the app's files still changes every other overlay that renders
/// those files (a shared base or Component): the scope (the incident's overlay first, then
/// each other one, with its Argo CD Application and whether it syncs on its own), and one
/// risk naming the others.
fn revert_scope(repo: &Repo, overlay: &str, env: &str, commits: &[CommitInfo]) -> (Vec<ScopeEnv>, Option<Risk>) {
    let reverted: BTreeSet<&str> = commits.iter().flat_map(|c| c.files.iter().map(String::as_str)).collect();
    let app_of = |dir: &str| {
        repo.argocd_apps
            .iter()
            .find(|a| a.sources.iter().any(|s| s.path.as_deref().map(|p| p.trim_matches('/')) == Some(dir)))
    };
    let own = app_of(overlay);
    let mut scope = vec![ScopeEnv {
        env: Some(env.to_string()),
        overlay: overlay.to_string(),
        application: own.map(|a| a.name.clone()),
        auto_sync: own.is_some_and(|a| a.automated),
        incident: true,
    }];
    let mut others: Vec<String> = Vec::new();
    let mut files: BTreeSet<&str> = BTreeSet::new();
    let rank = |l: &&crate::repo::Leaf| l.env.as_ref().and_then(|e| repo.environments.iter().position(|x| x == e));
    let mut leaves: Vec<&crate::repo::Leaf> = repo.leaves.iter().filter(|l| l.dir != overlay).collect();
    leaves.sort_by_key(|l| (rank(l), l.dir.clone()));
    for l in leaves {
        let closure = repo.closure(&l.dir);
        let hit: Vec<&str> = closure.files.iter().filter_map(|f| reverted.get(f.as_str()).copied()).collect();
        if hit.is_empty() {
            continue;
        }
        files.extend(hit);
        let a = app_of(&l.dir);
        let auto = a.is_some_and(|a| a.automated);
        others.push(format!("{}{}", l.dir, if auto { " (auto-sync: it changes at the next sync)" } else { "" }));
        scope.push(ScopeEnv {
            env: l.env.clone(),
            overlay: l.dir.clone(),
            application: a.map(|a| a.name.clone()),
            auto_sync: auto,
            incident: false,
        });
    }
    if others.is_empty() {
        return (scope, None);
    }
    let risk = Risk {
        kind: "shared".into(),
        commit: commits.iter().map(|c| c.short.as_str()).collect::<Vec<_>>().join(" "),
        file: files.into_iter().collect::<Vec<_>>().join(", "),
        message: format!(
            "the reverted files also render into {} other overlay(s), which change too: {}. Check them, or revert with an overlay patch instead",
            others.len(),
            others.join(", ")
        ),
    };
    (scope, Some(risk))
}

/// The lines a commit changed in a file: a unified diff with two lines of context, cut at
/// 80 lines.
fn file_diff(old: Option<&str>, new: Option<&str>, file: &str) -> String {
    let (old, new) = (old.unwrap_or_default(), new.unwrap_or_default());
    let d = similar::TextDiff::from_lines(old, new);
    let text = d.unified_diff().context_radius(2).header(&format!("a/{file}"), &format!("b/{file}")).to_string();
    let lines: Vec<&str> = text.lines().collect();
    if lines.len() <= 80 {
        return text;
    }
    format!("{}\n... ({} more lines)\n", lines[..80].join("\n"), lines.len() - 80)
}

/// Reads the Application from the environment's cluster.
pub async fn read_application(client: &kube::Client, namespace: &str, name: &str) -> Result<Value, Error> {
    let apps = Applications::discover(client, namespace).await.map_err(|e| Error::workflow(e.to_string()))?;
    apps.get(name).await.map_err(|e| Error::workflow(e.to_string()))
}

fn state_of(app: &Value, name: &str, namespace: &str, dest_ns: &str) -> AppState {
    let s = |p: &str| app.pointer(p).and_then(Value::as_str).unwrap_or_default().to_string();
    let src = crate::repo::argocd::source(app).cloned().unwrap_or(Value::Null);
    AppState {
        application: name.to_string(),
        namespace: namespace.to_string(),
        app_namespace: app
            .pointer("/spec/destination/namespace")
            .and_then(Value::as_str)
            .unwrap_or(dest_ns)
            .to_string(),
        sync_status: s("/status/sync/status"),
        revision: s("/status/sync/revision"),
        health: s("/status/health/status"),
        auto_sync: app.pointer("/spec/syncPolicy/automated").is_some_and(|a| !a.is_null()),
        target_revision: src.get("targetRevision").and_then(Value::as_str).unwrap_or("HEAD").to_string(),
    }
}

fn deploys_of(app: &Value) -> Vec<Deploy> {
    let mut out: Vec<Deploy> = app
        .pointer("/status/history")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|h| {
            let revision = h.get("revision").and_then(Value::as_str)?.to_string();
            let deployed_at = h.get("deployedAt").and_then(Value::as_str).unwrap_or_default().to_string();
            Some(Deploy {
                id: h.get("id").and_then(Value::as_i64).unwrap_or(0),
                short: short(&revision),
                revision,
                deployed_unix: crate::time::parse_time(&deployed_at).unwrap_or(0),
                deployed_at,
                error_rate: None,
                healthy: None,
            })
        })
        .collect();
    out.sort_by_key(|d| (d.deployed_unix, d.id));
    out
}

/// The error ratio query for an app: the template with `{app}`, `{namespace}`, `{env}`.
pub fn error_query(template: &str, app: &str, namespace: &str, env: &str) -> String {
    template.replace("{app}", app).replace("{namespace}", namespace).replace("{env}", env)
}

/// The mean of every sample of every series (None when there is none).
fn mean(r: &metrics::QueryResult) -> Option<f64> {
    let v: Vec<f64> = r.series.iter().flat_map(|s| s.values.iter().map(|x| x.1)).filter(|x| x.is_finite()).collect();
    (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
}

/// The mean error ratio over a window (a range query of about 30 points).
pub async fn rate_over(endpoint: &Endpoint, query: &str, start: f64, end: f64) -> Result<Option<f64>, String> {
    let end = end.max(start);
    let step = ((end - start) / 30.0).max(1.0);
    let r = metrics::query(endpoint, query, None, Some(Range { start, end, step })).await.map_err(|e| e.to_string())?;
    Ok(mean(&r))
}

/// The error ratio now.
pub async fn rate_now(endpoint: &Endpoint, query: &str) -> Result<Option<f64>, String> {
    let r = metrics::query(endpoint, query, None, None).await.map_err(|e| e.to_string())?;
    Ok(mean(&r))
}

/// Everything up to the plan: evidence, culprit, target, risks, actions.
pub async fn plan(ctx: &Ctx, req: &RollbackRequest) -> Result<RollbackPlan, Error> {
    let repo = ctx.repo().await?;
    let (overlay, argo) = locate(&repo, &req.app, &req.env)?;
    let since = req.since.as_deref().map(parse_duration).transpose().map_err(Error::workflow)?;
    let threshold = req.threshold.unwrap_or(repo.config.rollback.error_threshold);
    let app_ns = argo.namespace.clone().unwrap_or_else(|| "argocd".into());
    let (_, client) = ctx.env_client(&req.env).await?;
    let live = read_application(&client, &app_ns, &argo.name).await?;
    let state = state_of(&live, &argo.name, &app_ns, argo.destination_namespace.as_deref().unwrap_or("default"));
    let mut deploys = deploys_of(&live);
    let cutoff = since.map(|s| now() as i64 - s);

    // error ratio while each deploy was live
    let query = error_query(&repo.config.prometheus.error_rate, &req.app, &state.app_namespace, &req.env);
    let mut metrics_info =
        MetricsInfo { query: query.clone(), endpoint: String::new(), threshold, current: None, error: None };
    match ctx.prometheus(&repo, &req.env).await {
        Err(e) => metrics_info.error = Some(e.to_string()),
        Ok(endpoint) => {
            metrics_info.endpoint = format!("{endpoint:?}");
            match rate_now(&endpoint, &query).await {
                Err(e) => metrics_info.error = Some(e),
                Ok(None) => metrics_info.error = Some(format!("no series matches {query}")),
                Ok(Some(v)) => {
                    metrics_info.current = Some(v);
                    let t_now = now();
                    for i in 0..deploys.len() {
                        let start = deploys[i].deployed_unix as f64;
                        let end = deploys.get(i + 1).map_or(t_now, |n| n.deployed_unix as f64 - 1.0);
                        match rate_over(&endpoint, &query, start, end).await {
                            Ok(r) => {
                                deploys[i].error_rate = r;
                                deploys[i].healthy = r.map(|v| v < threshold);
                            }
                            Err(e) => {
                                metrics_info.error = Some(e);
                                break;
                            }
                        }
                    }
                }
            }
        }
    }
    if metrics_info.error.is_some() {
        deploys.iter_mut().for_each(|d| {
            d.error_rate = None;
            d.healthy = None;
        });
    }

    let mut notes = Vec::new();
    let mut blocked = None;
    let current = deploys.last().cloned();
    if let Some(c) = &current
        && !state.revision.is_empty()
        && c.revision != state.revision
    {
        notes.push(format!(
            "the Application's sync revision {} is not the last deploy of its history {}",
            short(&state.revision),
            c.short
        ));
    }
    let current_rev = if state.revision.is_empty() {
        current.as_ref().map(|c| c.revision.clone())
    } else {
        Some(state.revision.clone())
    };
    let in_window = |d: &Deploy| cutoff.is_none_or(|c| d.deployed_unix >= c);

    // target and culprit deploys
    let mut target_deploy: Option<Deploy> = None;
    let mut target_rev: Option<String> = None;
    let earlier: Vec<&Deploy> = deploys
        .iter()
        .take(deploys.len().saturating_sub(1))
        .filter(|d| Some(&d.revision) != current_rev.as_ref() && in_window(d))
        .collect();
    if let Some(to) = &req.to {
        let root = repo.root.clone();
        let to = to.clone();
        match blocking(move || git::resolve(&root, &to)).await {
            Ok(sha) => {
                target_deploy = deploys.iter().rev().find(|d| d.revision == sha).cloned();
                target_rev = Some(sha);
            }
            Err(e) => blocked = Some(e.to_string()),
        }
    } else if current.is_none() {
        blocked = Some(format!("{} has no deploy history: nothing to roll back to; give --to", state.application));
    } else if metrics_info.error.is_none() && current.as_ref().and_then(|c| c.healthy) == Some(true) {
        blocked = Some(format!(
            "the current deploy {} looks healthy (error rate {} while live, threshold {}); give --to to roll back anyway",
            current.as_ref().map(|c| c.short.clone()).unwrap_or_default(),
            pct(current.as_ref().and_then(|c| c.error_rate)),
            pct(Some(threshold))
        ));
    } else {
        let pick = if metrics_info.error.is_none() {
            earlier.iter().rev().find(|d| d.healthy == Some(true))
        } else {
            notes.push("error rates are unknown: the target is the previous deploy".into());
            earlier.last()
        };
        match pick {
            Some(d) => {
                target_deploy = Some((*d).clone());
                target_rev = Some(d.revision.clone());
            }
            None => {
                blocked = Some(format!(
                    "no earlier deploy of {} {}was healthy; give --to",
                    state.application,
                    if since.is_some() { "in the --since window " } else { "" }
                ))
            }
        }
    }
    let culprit_deploys: Vec<Deploy> = match &target_deploy {
        Some(t) => {
            let after: Vec<Deploy> =
                deploys.iter().filter(|d| (d.deployed_unix, d.id) > (t.deployed_unix, t.id)).cloned().collect();
            let rose: Vec<Deploy> = after.iter().filter(|d| d.healthy == Some(false)).take(1).cloned().collect();
            if rose.is_empty() { after } else { rose }
        }
        None => current.iter().cloned().collect(),
    };
    let target = target_rev.as_ref().map(|rev| {
        let record = match &target_deploy {
            Some(d) => format!(
                "deployed {} ({}), error rate {} while live",
                ago(d.deployed_unix),
                d.deployed_at,
                pct(d.error_rate)
            ),
            None => "not in the Application's deploy history".to_string(),
        };
        Target { revision: rev.clone(), short: short(rev), record, deploy: target_deploy.clone() }
    });
    if let (Some(t), Some(c)) = (&target, &current_rev)
        && &t.revision == c
        && blocked.is_none()
    {
        blocked = Some(format!("{} is already at {}", state.application, t.short));
    }

    // git evidence: culprit commits, recent commits, risks
    let paths = app_paths(&repo, &overlay);
    let root = repo.root.clone();
    let (cur, tgt) = (current_rev.clone(), target_rev.clone());
    let since_unix = cutoff;
    type GitEvidence = (Vec<CommitInfo>, Vec<CommitInfo>, Vec<Risk>, Vec<FileDiff>, Option<Remote>, Option<String>);
    let (culprit_commits, recent_commits, risks, culprit_diffs, remote, git_problem): GitEvidence = blocking(move || {
        let recent = git::log(&root, &paths, &LogQuery { since: since_unix, limit: Some(20), ..LogQuery::default() })?;
        let remote = git::remote(&root)?;
        let (Some(cur), Some(tgt)) = (cur, tgt) else {
            return Ok((Vec::new(), recent, Vec::new(), Vec::new(), remote, None));
        };
        if git::resolve(&root, &cur).is_err() {
            let m = format!("the deployed revision {} is not in this repository; git fetch first", short(&cur));
            return Ok((Vec::new(), recent, Vec::new(), Vec::new(), remote, Some(m)));
        }
        let commits = git::log(
            &root,
            &paths,
            &LogQuery { from: Some(cur.clone()), exclude: Some(tgt.clone()), ..LogQuery::default() },
        )?;
        // commits that cancel out (a change and its own revert) leave nothing to revert
        if !commits.is_empty() && matches!(git::prepare_revert(&root, &cur, &tgt, &paths), Err(git::RevertError::Empty))
        {
            let m = format!(
                "the commits between {} and {} cancel out in the app's files (HEAD already matches {} there): a revert would change nothing",
                short(&tgt),
                short(&cur),
                short(&tgt)
            );
            return Ok((commits, recent, Vec::new(), Vec::new(), remote, Some(m)));
        }
        let mut risks = Vec::new();
        let mut diffs = Vec::new();
        for c in &commits {
            let parent = git::parent_of(&root, &c.sha)?;
            for f in &c.files {
                let old = match &parent {
                    Some(p) => git::file_at(&root, p, f)?,
                    None => None,
                };
                let new = git::file_at(&root, &c.sha, f)?;
                risks.extend(risks::scan_file(&c.short, f, old.as_deref(), new.as_deref()));
                diffs.push(FileDiff {
                    commit: c.short.clone(),
                    file: f.clone(),
                    diff: file_diff(
                        old.as_deref().map(String::from_utf8_lossy).as_deref(),
                        new.as_deref().map(String::from_utf8_lossy).as_deref(),
                        f,
                    ),
                });
            }
        }
        Ok((commits, recent, risks, diffs, remote, None))
    })
    .await?;
    if blocked.is_none() {
        if let Some(p) = git_problem {
            blocked = Some(p);
        } else if culprit_commits.is_empty() {
            blocked = Some(format!(
                "no commit between {} and {} touches the files of {overlay}: a revert would change nothing",
                target.as_ref().map(|t| t.short.clone()).unwrap_or_default(),
                current_rev.as_deref().map(short).unwrap_or_default()
            ));
        }
    }
    // what the changed files alone do not show: the overlay rendered at both revisions
    let mut risks = risks;
    let (scope, shared) = revert_scope(&repo, &overlay, &req.env, &culprit_commits);
    risks.extend(shared);
    if let (None, Some(t), Some(cur)) = (&blocked, &target, &current_rev) {
        let (root, dir, tgt, cur) = (repo.root.clone(), overlay.clone(), t.revision.clone(), cur.clone());
        let (engine, redactor) = (ctx.engine(&repo)?, ctx.redactor_arc());
        let rendered =
            blocking(move || Ok(risks::scan_rendered(&root, &dir, &tgt, &cur, &short(&cur), &engine, &redactor)))
                .await?;
        match rendered {
            Ok(found) => {
                for r in found {
                    if !risks.iter().any(|x| x.kind == r.kind && x.message == r.message) {
                        risks.push(r);
                    }
                }
            }
            Err(e) => notes.push(format!("the overlay was not compared rendered at both revisions: {e}")),
        }
    }
    let repo_url = remote
        .as_ref()
        .and_then(|r| git::commit_link(&r.url, "x").map(|_| r.url.clone()))
        .or_else(|| repo.config.repo_url.clone())
        .or_else(|| argo.sources.iter().find_map(|s| s.repo_url.clone()));

    let timeout = req.verify_timeout_seconds.unwrap_or(repo.config.rollback.verify_timeout_seconds);
    let mut actions = Vec::new();
    let mut console_notes = Vec::new();
    if let Some(t) = &target {
        let shas: Vec<&str> = culprit_commits.iter().map(|c| c.short.as_str()).collect();
        actions.push(format!(
            "git revert {} restricted to the files of {overlay}, as one new commit with the incident report {}",
            if shas.is_empty() { "(nothing)".to_string() } else { shas.join(" ") },
            report::report_dir()
        ));
        match &remote {
            Some(r) => actions.push(format!("push to {} ({})", r.name, r.branch)),
            None => console_notes.push(
                "no git remote is configured: the revert commit stays local, so Argo CD sees it only if it reads this repository"
                    .into(),
            ),
        }
        if state.auto_sync {
            actions.push(format!(
                "sync {}: auto-sync is on and would pick up the revert at its next poll; agentops requests the sync now (a git revert, not an Argo CD history rollback, which auto-sync refuses)",
                state.application
            ));
        } else {
            actions.push(format!(
                "sync {} to {} (operation.sync, as `argocd app sync --core` does)",
                state.application, state.target_revision
            ));
        }
        actions.push(format!(
            "verify within {timeout}s: sync finished, rollout complete, health Healthy, live equals the target render, error rate below {}{}",
            pct(Some(threshold)),
            if metrics_info.error.is_some() { " (unknown: Prometheus did not answer)" } else { "" }
        ));
        actions.push(format!(
            "record the verification in the incident report (follow-up commit); the target was {}",
            t.short
        ));
    }
    let downtime = "none expected: the sync is a rolling update; recovery usually takes as long as one rollout (about 1-2 minutes)".to_string();
    let fingerprint = crate::workflows::fingerprint::of(&(
        &overlay,
        &state.revision,
        current.as_ref().map(|d| &d.revision),
        target.as_ref().map(|t| &t.revision),
        culprit_commits.iter().map(|c| c.sha.as_str()).collect::<Vec<_>>(),
    ));

    Ok(RollbackPlan {
        request: req.clone(),
        overlay,
        state,
        deploys,
        metrics: metrics_info,
        current,
        target,
        culprit_deploys,
        culprit_commits,
        recent_commits,
        risks,
        scope,
        culprit_diffs,
        actions,
        downtime,
        remote,
        repo_url,
        notes,
        console_notes,
        blocked,
        fingerprint,
    })
}

/// What the revert step did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RevertOutcome {
    pub app: String,
    pub env: String,
    pub application: String,
    pub commit: String,
    pub short: String,
    pub reverted: Vec<String>,
    pub files: Vec<String>,
    pub report: String,
    /// `origin/main` when pushed.
    pub pushed: Option<String>,
    pub target: String,
    pub at: String,
}

/// Plans, then reverts the culprit commits restricted to the app's paths as one commit with
/// the incident report, and pushes when a remote is configured. A conflict (or anything else
/// that stops it) leaves the repo as it was.
pub async fn apply(ctx: &Ctx, req: &RollbackRequest) -> Result<(RollbackPlan, RevertOutcome), Error> {
    let plan = plan(ctx, req).await?;
    crate::workflows::fingerprint::check(req.expect.as_deref(), &plan.fingerprint, "rollback plan")?;
    if let Some(b) = &plan.blocked {
        return Err(Error::workflow(format!("rollback blocked: {b}")));
    }
    let repo = ctx.repo().await?;
    let paths = app_paths(&repo, &plan.overlay);
    let root = repo.root.clone();
    let (Some(target), Some(current)) = (plan.target.clone(), plan.current.clone()) else {
        return Err(Error::workflow("rollback blocked: no target"));
    };
    let bad = if plan.state.revision.is_empty() { current.revision.clone() } else { plan.state.revision.clone() };
    let redactor = ctx.redactor_arc();
    let p = plan.clone();
    let outcome = blocking(move || {
        let prepared = git::prepare_revert(&root, &bad, &target.revision, &paths)
            .map_err(|e| Error::workflow(format!("rollback stopped: {e}")))?;
        let at = crate::time::now_seconds();
        let report_rel = report::report_path(&root, &p.request.app, &at);
        let mut data = report::data(&p, &at, None);
        redactor.redact_value(&mut data);
        let text = redactor.scrub(&report::render_data(&root, &data).map_err(Error::workflow)?);
        // the record beside the report: the follow-up renders it again with the recovery
        let record_rel = report::record_path(&report_rel);
        let record = serde_json::to_string_pretty(&report::record(&report_rel, &data, &text))
            .map_err(|e| Error::workflow(e.to_string()))?;
        let mut files = prepared.changes.clone();
        files.insert(report_rel.clone(), Some(text.into_bytes()));
        files.insert(record_rel.clone(), Some(format!("{record}\n").into_bytes()));
        let mut before = prepared.before.clone();
        before.insert(report_rel.clone(), None);
        before.insert(record_rel, None);
        git::write_files(&root, &files)?;
        let reverted: Vec<String> = p.culprit_commits.iter().map(|c| c.short.clone()).collect();
        let message = commit_message(&p, &reverted, &report_rel);
        let paths: Vec<String> = files.keys().cloned().collect();
        let commit = match crate::git::commit_paths(&root, &paths, &message, None) {
            Ok(c) => c,
            Err(e) => {
                let _ = git::write_files(&root, &before);
                return Err(Error::workflow(format!(
                    "rollback stopped: the commit failed ({e}); the files were restored"
                )));
            }
        };
        let pushed = match &p.remote {
            Some(r) => {
                git::push(&root, r).map_err(|e| {
                    Error::workflow(format!(
                        "the revert is committed as {} but the push failed: {e}. Push it yourself, then sync {}",
                        short(&commit),
                        p.state.application
                    ))
                })?;
                Some(format!("{}/{}", r.name, r.branch))
            }
            None => None,
        };
        Ok(RevertOutcome {
            app: p.request.app.clone(),
            env: p.request.env.clone(),
            application: p.state.application.clone(),
            short: short(&commit),
            commit,
            reverted,
            files: prepared.changes.keys().cloned().collect(),
            report: report_rel,
            pushed,
            target: target.revision.clone(),
            at,
        })
    })
    .await?;
    Ok((plan, outcome))
}

/// The revert commit's message: what it undoes and where (every environment the reverted
/// files render into), git's own `This reverts commit <sha>.` line for each culprit, the
/// evidence, and the incident report.
pub fn commit_message(plan: &RollbackPlan, reverted: &[String], report: &str) -> String {
    let target = plan.target.as_ref().map(|t| t.short.clone()).unwrap_or_default();
    let (app, env) = (&plan.request.app, &plan.request.env);
    let envs: Vec<String> = plan.scope.iter().map(|s| s.env.clone().unwrap_or_else(|| s.overlay.clone())).collect();
    let scope = match envs.len() {
        0 | 1 => env.clone(),
        n if n >= 3 => format!("all {n} environments"),
        _ => envs.join(" and "),
    };
    let undo = reverted.join(" ");
    let mut subject = format!("revert({app}): undo {undo} in {scope}");
    if subject.chars().count() > 72 {
        subject = format!("revert({app}): undo {} commits in {scope}", reverted.len());
    }
    let mut m = format!("{subject}\n\n");
    for c in &plan.culprit_commits {
        m.push_str(&format!("This reverts commit {}.\n", c.sha));
    }
    m.push('\n');
    for c in &plan.culprit_commits {
        m.push_str(&wrap_words(&format!("{} \"{}\" ({}), in {}.", c.short, c.subject, c.author, c.files.join(", "))));
    }
    if let Some(d) = plan.culprit_deploys.first() {
        m.push_str(&wrap_words(&format!(
            "Error rate {} in {env} after {} was deployed at {}; {} while {target} was live.",
            pct(d.error_rate),
            d.short,
            d.deployed_at,
            pct(plan.target.as_ref().and_then(|t| t.deploy.as_ref()).and_then(|d| d.error_rate))
        )));
    }
    if plan.scope.len() > 1 {
        m.push_str("\nEvery environment that renders the reverted files changes:\n");
        for s in &plan.scope {
            let name = s.env.clone().unwrap_or_else(|| s.overlay.clone());
            let when = if s.incident {
                "synced now (the incident)"
            } else if s.auto_sync {
                "at its next auto-sync"
            } else {
                "at its next manual sync"
            };
            m.push_str(&format!("- {name}: {when}\n"));
        }
    }
    m.push_str(&format!("\nIncident report: {report}\n"));
    m
}

/// A paragraph wrapped at 72 columns.
fn wrap_words(text: &str) -> String {
    let mut out = String::new();
    let mut line = String::new();
    for w in text.split_whitespace() {
        if !line.is_empty() && line.chars().count() + 1 + w.chars().count() > 72 {
            out.push_str(&line);
            out.push('\n');
            line.clear();
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(w);
    }
    if !line.is_empty() {
        out.push_str(&line);
        out.push('\n');
    }
    out
}

/// What to verify after the sync.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifyRequest {
    /// The app rolled back.
    pub app: String,
    /// The environment.
    pub env: String,
    /// The revision the sync must reach (default: the repo's HEAD, the revert commit).
    #[serde(default)]
    pub revision: Option<String>,
    /// The incident report to record the results in (default: the app's newest report
    /// still pending verification).
    #[serde(default)]
    pub report: Option<String>,
    /// Error ratio (0..1) below which the app counts as recovered (default: the config's
    /// `rollback.error_threshold`, 0.05).
    #[serde(default)]
    pub threshold: Option<f64>,
    /// Seconds to wait for every check together (default: the config's
    /// `rollback.verify_timeout_seconds`, 300).
    #[serde(default)]
    pub verify_timeout_seconds: Option<u64>,
}

/// The verification and where it was recorded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct VerifyOutcome {
    pub app: String,
    pub env: String,
    pub application: String,
    pub verification: verify::Verification,
    pub report: Option<String>,
    /// The follow-up commit that records the results in the report.
    pub commit: Option<String>,
    pub pushed: Option<String>,
}

/// Verifies the recovery (sync, rollout, health, error rate), reporting each check as it
/// finishes, then records the results in the incident report as a follow-up commit.
pub async fn verify_and_record(
    ctx: &Ctx,
    req: &VerifyRequest,
    on_check: &(dyn Fn(&verify::Check) + Send + Sync),
) -> Result<VerifyOutcome, Error> {
    let repo = ctx.repo().await?;
    let (overlay, argo) = locate(&repo, &req.app, &req.env)?;
    let threshold = req.threshold.unwrap_or(repo.config.rollback.error_threshold);
    let timeout =
        verify::timeout_of(req.verify_timeout_seconds.unwrap_or(repo.config.rollback.verify_timeout_seconds))?;
    let ns = argo.namespace.clone().unwrap_or_else(|| "argocd".into());
    let (_, client) = ctx.env_client(&req.env).await?;
    let live = read_application(&client, &ns, &argo.name).await?;
    let dest_ns = live
        .pointer("/spec/destination/namespace")
        .and_then(Value::as_str)
        .or(argo.destination_namespace.as_deref())
        .unwrap_or("default")
        .to_string();
    let root = repo.root.clone();
    let rev = req.revision.clone().unwrap_or_else(|| "HEAD".into());
    let expected = blocking(move || git::resolve(&root, &rev)).await?;
    let query = error_query(&repo.config.prometheus.error_rate, &req.app, &dest_ns, &req.env);
    let metrics = ctx.prometheus(&repo, &req.env).await.map_err(|e| e.to_string());
    let (root, sha, dir) = (repo.root.clone(), expected.clone(), overlay.clone());
    let engine = ctx.engine(&repo)?;
    let target = blocking(move || Ok(git::render_at(&root, &sha, &dir, &engine).map_err(|e| e.to_string()))).await?;
    let input = verify::VerifyInput {
        client: &client,
        app: &req.app,
        env: &req.env,
        target,
        dest_ns: Some(dest_ns.clone()),
        drift: &repo.config.drift,
        namespace: &ns,
        application: &argo.name,
        expected: Some(&expected),
        metrics: metrics.clone(),
        query: &query,
        threshold,
        timeout,
        interval: std::time::Duration::from_millis(500),
    };
    let verification = verify::verify(input, on_check).await;

    let root = repo.root.clone();
    let report = req.report.clone().or_else(|| report::pending_report(&root, &req.app));
    // the error ratio over the incident, from a little before the first bad deploy to now
    let record_rel = report.as_deref().map(report::record_path);
    let record: Option<Value> = record_rel
        .as_ref()
        .and_then(|r| std::fs::read_to_string(root.join(r)).ok())
        .and_then(|t| serde_json::from_str(&t).ok());
    let mut impact: (Vec<(f64, f64)>, Option<String>, Option<String>) = (Vec::new(), None, None);
    if let Some(first_bad) =
        record.as_ref().and_then(|r| r.pointer("/data/culprit/deployed_unix")).and_then(Value::as_i64)
    {
        let end = now();
        let span = (end - first_bad as f64).max(1.0);
        let lead = (span / 4.0).clamp(30.0, 1800.0);
        let step = ((end - (first_bad as f64 - lead)) / 12.0).ceil().max(1.0);
        // the grid ends at `end` itself, so the last sample is the recovered state
        let start = end - 12.0 * step;
        match &metrics {
            Ok(endpoint) => {
                match crate::cluster::metrics::query(endpoint, &query, None, Some(Range { start, end, step })).await {
                    Ok(r) => impact.0 = mean_per_time(&r),
                    Err(e) => impact.1 = Some(e.to_string()),
                }
                if let crate::cluster::metrics::Endpoint::Url(base) = endpoint {
                    impact.2 = Some(report::graph_url(base, &query, start as i64, end as i64));
                }
            }
            Err(e) => impact.1 = Some(e.clone()),
        }
    }
    let revert_sha = expected.clone();
    let revert_link = repo.config.repo_url.as_deref().and_then(|u| git::commit_link(u, &revert_sha));
    let (app, env, v) = (req.app.clone(), req.env.clone(), verification.clone());
    let redactor = ctx.redactor_arc();
    let (commit, pushed) = match report.clone() {
        None => (None, None),
        Some(rel) => {
            blocking(move || {
                let abs = root.join(&rel);
                let old = std::fs::read_to_string(&abs)
                    .map_err(|e| Error::workflow(format!("incident report {rel}: {e}")))?;
                // rendered again from its record with the recovery; a report edited by hand
                // (or without a record) gets only its verification section replaced
                let mut paths = vec![rel.clone()];
                let mut old_record = None;
                let fresh = record.as_ref().filter(|r| {
                    r.get("markdown").and_then(Value::as_str) == Some(&crate::workflows::fingerprint::of(&old))
                });
                let new = match (fresh, &record_rel) {
                    (Some(r), Some(rrel)) => {
                        let mut data = r.get("data").cloned().unwrap_or(Value::Null);
                        report::followup(
                            &mut data,
                            &report::Followup {
                                verification: &v,
                                revert: Some((revert_sha.clone(), revert_link.clone())),
                                samples: impact.0.clone(),
                                samples_error: impact.1.clone(),
                                graph_url: impact.2.clone(),
                            },
                        );
                        redactor.redact_value(&mut data);
                        let text = redactor.scrub(&report::render_data(&root, &data).map_err(Error::workflow)?);
                        let rec = serde_json::to_string_pretty(&report::record(&rel, &data, &text))
                            .map_err(|e| Error::workflow(e.to_string()))?;
                        old_record = std::fs::read_to_string(root.join(rrel)).ok();
                        std::fs::write(root.join(rrel), format!("{rec}\n"))
                            .map_err(|e| Error::workflow(format!("incident record {rrel}: {e}")))?;
                        paths.push(rrel.clone());
                        text
                    }
                    _ => redactor.scrub(&report::with_verification(&root, &old, &v).map_err(Error::workflow)?),
                };
                std::fs::write(&abs, &new).map_err(|e| Error::workflow(format!("incident report {rel}: {e}")))?;
                let short: String = revert_sha.chars().take(7).collect();
                let msg = match v.verdict.as_str() {
                    "recovered" => format!("docs(incidents): {app} recovered in {env} after the revert {short}\n"),
                    other => {
                        format!("docs(incidents): {app} in {env} after the revert {short}: verification {other}\n")
                    }
                };
                let commit = match crate::git::commit_paths(&root, &paths, &msg, None) {
                    Ok(c) => c,
                    Err(e) => {
                        let _ = std::fs::write(&abs, &old);
                        if let (Some(o), Some(rrel)) = (&old_record, &record_rel) {
                            let _ = std::fs::write(root.join(rrel), o);
                        }
                        return Err(Error::workflow(format!("recording the verification in {rel} failed: {e}")));
                    }
                };
                let pushed = match git::remote(&root)? {
                    Some(r) => {
                        git::push(&root, &r)?;
                        Some(format!("{}/{}", r.name, r.branch))
                    }
                    None => None,
                };
                Ok((Some(commit), pushed))
            })
            .await?
        }
    };
    Ok(VerifyOutcome {
        app: req.app.clone(),
        env: req.env.clone(),
        application: argo.name.clone(),
        verification,
        report,
        commit,
        pushed,
    })
}

/// The mean of every series at each time, in time order.
fn mean_per_time(r: &metrics::QueryResult) -> Vec<(f64, f64)> {
    let mut by: BTreeMap<i64, (f64, usize)> = BTreeMap::new();
    for s in &r.series {
        for (t, v) in &s.values {
            if v.is_finite() {
                let e = by.entry(*t as i64).or_insert((0.0, 0));
                e.0 += v;
                e.1 += 1;
            }
        }
    }
    by.into_iter().map(|(t, (sum, n))| (t as f64, sum / n as f64)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_queries() {
        assert_eq!(parse_duration("90s"), Ok(90));
        assert_eq!(parse_duration("30m"), Ok(1800));
        assert_eq!(parse_duration("2d"), Ok(172_800));
        assert!(parse_duration("soon").is_err());
        assert_eq!(
            error_query("http_error_ratio{app=\"{app}\",namespace=\"{namespace}\",env=\"{env}\"}", "a", "n", "e"),
            "http_error_ratio{app=\"a\",namespace=\"n\",env=\"e\"}"
        );
        assert_eq!(pct(Some(0.87)), "87.0%");
        assert_eq!(pct(Some(0.001)), "0.1%");
        assert_eq!(pct(None), "unknown");
    }

    #[test]
    fn history_is_sorted_by_deploy_time() {
        let app = serde_json::json!({"status": {"history": [
            {"id": 1, "revision": "bbbbbbbbb", "deployedAt": "2025-01-02T00:00:00Z"},
            {"id": 0, "revision": "aaaaaaaaa", "deployedAt": "2025-01-01T00:00:00Z"}]}});
        let d = deploys_of(&app);
        assert_eq!(d.iter().map(|d| d.short.as_str()).collect::<Vec<_>>(), vec!["aaaaaaa", "bbbbbbb"]);
    }
}
