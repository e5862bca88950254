//! The typed tool layer: every capability the planner, the executor, the CLI and evals use is
//! a `Tool` with typed, schema-described arguments and a declared effect. The registry erases
//! tools to JSON in / JSON out, validates every argument object against the tool's schema
//! before calling, and passes every output through the shared redactor.

pub mod argocd_app_status;
pub mod argocd_sync;
pub mod cluster_prereqs;
pub mod cluster_query;
pub mod commit;
pub mod create_app;
pub mod dependency_graph;
pub mod dependency_scan;
pub mod diff;
pub mod draft_commit_message;
pub mod drift_acknowledge;
pub mod drift_capture;
pub mod drift_report;
pub mod fingerprint;
pub mod git_log;
pub mod git_revert;
pub mod harmonize_apply;
pub mod harmonize_plan;
pub mod kustomize_build;
pub mod metrics_query;
pub mod render_overlay;
pub mod repo_scan;
pub mod rollback_plan;
pub mod rollback_verify;
pub mod validate;
pub mod write_doc;
pub mod write_files;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, OnceLock};

use schemars::JsonSchema;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::cluster::ClusterSet;
use crate::error::Error;
use crate::k8s::redact::Redactor;
use crate::kustomize::{Engine, Kustomize};
use crate::repo::Repo;

/// What running a tool may change. Approval decisions come from this, never from a model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, serde::Deserialize, JsonSchema)]
#[serde(rename_all = "PascalCase")]
pub enum Effect {
    ReadOnly,
    WritesRepo,
    WritesCluster,
}

/// An error from a tool. `public` may be shown to a model; `internal` only to the operator.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{public}")]
pub struct ToolError {
    pub public: String,
    pub internal: Option<String>,
}

impl ToolError {
    pub fn new(public: impl Into<String>) -> ToolError {
        ToolError { public: public.into(), internal: None }
    }
}

impl From<Error> for ToolError {
    fn from(e: Error) -> Self {
        ToolError::new(e.to_string())
    }
}

/// Everything a tool may use. Cheap to clone.
#[derive(Clone)]
pub struct ToolCtx {
    inner: Arc<CtxInner>,
}

struct CtxInner {
    repo_root: PathBuf,
    kustomize: Option<PathBuf>,
    cache_dir: Option<PathBuf>,
    jobs: usize,
    kubeconfig: Option<PathBuf>,
    redactor: Arc<Redactor>,
    engine: OnceLock<Result<Arc<Engine>, String>>,
    clusters: OnceLock<Result<Arc<ClusterSet>, String>>,
}

/// Options for a [`ToolCtx`].
#[derive(Debug, Clone, Default)]
pub struct CtxOptions {
    /// `--kustomize PATH`; falls back to the config's `kustomize` key, then the search order.
    pub kustomize: Option<PathBuf>,
    /// Build cache directory; None disables the cache.
    pub cache_dir: Option<PathBuf>,
    /// Parallel builds (0: the default).
    pub jobs: usize,
    /// `--kubeconfig`; else `$KUBECONFIG`, else `~/.kube/config`.
    pub kubeconfig: Option<PathBuf>,
}

impl ToolCtx {
    pub fn new(repo_root: &Path, opts: CtxOptions) -> ToolCtx {
        ToolCtx {
            inner: Arc::new(CtxInner {
                repo_root: repo_root.to_path_buf(),
                kustomize: opts.kustomize,
                cache_dir: opts.cache_dir,
                jobs: if opts.jobs == 0 { crate::kustomize::default_jobs() } else { opts.jobs },
                kubeconfig: opts.kubeconfig,
                redactor: Arc::new(Redactor::new()),
                engine: OnceLock::new(),
                clusters: OnceLock::new(),
            }),
        }
    }

    pub fn repo_root(&self) -> &Path {
        &self.inner.repo_root
    }

    pub fn jobs(&self) -> usize {
        self.inner.jobs
    }

    pub fn redactor(&self) -> &Redactor {
        &self.inner.redactor
    }

    /// The shared redactor, for holders that outlive a borrow of the context.
    pub fn redactor_arc(&self) -> Arc<Redactor> {
        self.inner.redactor.clone()
    }

    /// Scans the repo as it is now, and teaches the redactor its secret values.
    pub fn load_repo(&self) -> Result<Repo, Error> {
        let repo = Repo::load(&self.inner.repo_root)?;
        learn_repo_secrets(&repo, self.redactor());
        Ok(repo)
    }

    /// The kustomize engine, located once per context.
    pub fn engine(&self, repo: &Repo) -> Result<Arc<Engine>, Error> {
        let r = self.inner.engine.get_or_init(|| {
            let explicit = self.inner.kustomize.clone().or_else(|| {
                repo.config.kustomize.as_ref().map(|p| if p.is_absolute() { p.clone() } else { repo.root.join(p) })
            });
            Kustomize::locate(explicit.as_deref())
                .map(|k| Arc::new(Engine::new(k, self.inner.cache_dir.clone())))
                .map_err(|e| e.to_string())
        });
        r.clone().map_err(|m| {
            if m == Error::KustomizeNotFound.to_string() { Error::KustomizeNotFound } else { Error::Usage(m) }
        })
    }
}

impl ToolCtx {
    /// The clusters of the kubeconfig, read once per context.
    pub fn clusters(&self) -> Result<Arc<ClusterSet>, Error> {
        self.inner
            .clusters
            .get_or_init(|| {
                let mut set = ClusterSet::load(self.inner.kubeconfig.as_deref()).map_err(|e| e.to_string())?;
                if let Ok(c) = crate::config::Config::load(&self.inner.repo_root) {
                    set.response_limit = c.limits.response_bytes;
                }
                Ok(Arc::new(set))
            })
            .clone()
            .map_err(Error::Usage)
    }
}

/// One environment's answer from a cluster tool; `answer` is flattened into it.
#[derive(Debug, Serialize)]
pub struct PerCluster<T> {
    pub env: String,
    pub context: String,
    #[serde(flatten)]
    pub answer: Option<T>,
    pub error: Option<String>,
}

impl ToolCtx {
    /// Scans the repo off the async runtime.
    pub async fn repo(&self) -> Result<Repo, ToolError> {
        let c = self.clone();
        blocking(move || Ok(c.load_repo()?)).await
    }

    /// Runs `f` against the cluster of each environment asked for (all when none),
    /// concurrently; a failing cluster is an `error` entry, never a failure of the whole.
    pub async fn across_clusters<T, F, Fut>(&self, asked: &[String], f: F) -> Result<Vec<PerCluster<T>>, ToolError>
    where
        F: Fn(kube::Client) -> Fut,
        Fut: Future<Output = Result<T, crate::cluster::ClusterError>>,
    {
        let repo = self.repo().await?;
        let envs = target_envs(&repo, asked)?;
        let contexts: Vec<String> = envs.iter().map(|e| repo.config.context_for(e)).collect();
        let results = self.clusters()?.run_all(&contexts, f).await;
        Ok(envs
            .into_iter()
            .zip(results)
            .map(|(env, (context, r))| match r {
                Ok(answer) => PerCluster { env, context, answer: Some(answer), error: None },
                Err(e) => PerCluster { env, context, answer: None, error: Some(e.to_string()) },
            })
            .collect())
    }

    /// The repo and the kube client of one environment's cluster.
    pub async fn env_client(&self, env: &str) -> Result<(Repo, kube::Client), ToolError> {
        let repo = self.repo().await?;
        target_envs(&repo, &[env.to_string()])?;
        let client =
            self.clusters()?.client(&repo.config.context_for(env)).await.map_err(|e| ToolError::new(e.to_string()))?;
        Ok((repo, client))
    }
}

/// The environments a cluster tool addresses: the ones asked for (each must exist), or all.
pub fn target_envs(repo: &Repo, asked: &[String]) -> Result<Vec<String>, ToolError> {
    if asked.is_empty() {
        return Ok(repo.environments.clone());
    }
    for e in asked {
        if !repo.environments.contains(e) {
            return Err(ToolError::new(format!(
                "unknown environment {e:?}; environments: {}",
                repo.environments.join(", ")
            )));
        }
    }
    Ok(asked.to_vec())
}

/// Teaches the redactor every secret value written in the repo: Secret objects and
/// secretGenerator literals and files.
pub fn learn_repo_secrets(repo: &Repo, redactor: &Redactor) {
    for f in repo.files.values() {
        if let Ok(docs) = &f.docs {
            docs.iter().for_each(|d| redactor.learn_object(&d.value));
        }
    }
    for k in repo.kustomizations.values() {
        k.secret_literals.iter().for_each(|l| redactor.learn(l));
        for f in &k.secret_files {
            if let Ok(text) = crate::limits::read_text(&repo.abs(f), repo.config.limits.file_bytes) {
                redactor.learn_text_lines(&text);
            }
        }
    }
}

/// A typed tool.
pub trait Tool: Send + Sync + 'static {
    /// Arguments; doc comments become the schema's descriptions. Use
    /// `#[serde(deny_unknown_fields)]` so unknown fields are rejected.
    type Args: DeserializeOwned + JsonSchema + Send;
    type Output: Serialize + Send;

    fn name(&self) -> &'static str;
    fn description(&self) -> &'static str;
    /// A tool that does not declare its effect is treated as the most dangerous kind.
    fn effect(&self) -> Effect {
        Effect::WritesCluster
    }
    fn call(&self, ctx: &ToolCtx, args: Self::Args) -> impl Future<Output = Result<Self::Output, ToolError>> + Send;
    /// The exit code the command running this tool's workflow gives for `output`, by the one
    /// rule of every command (docs/exit-codes.md): 0 clean, 1 findings or refused (drift,
    /// validation errors, a blocked plan, a failed verification), 2 could not run (a cluster
    /// that could not be checked). `ask` and `chat` exit with the highest code of their steps.
    fn exit_code(&self, _output: &Self::Output) -> u8 {
        0
    }
}

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

trait ErasedTool: Send + Sync {
    fn name(&self) -> &'static str;
    fn description(&self) -> &'static str;
    fn effect(&self) -> Effect;
    fn parameters(&self) -> Value;
    /// The output, and its exit code ([`Tool::exit_code`]).
    fn call_json<'a>(&'a self, ctx: &'a ToolCtx, args: Value) -> BoxFuture<'a, Result<(Value, u8), ToolError>>;
}

impl<T: Tool> ErasedTool for T {
    fn name(&self) -> &'static str {
        Tool::name(self)
    }
    fn description(&self) -> &'static str {
        Tool::description(self)
    }
    fn effect(&self) -> Effect {
        Tool::effect(self)
    }
    fn parameters(&self) -> Value {
        parameters_schema::<T::Args>()
    }
    fn call_json<'a>(&'a self, ctx: &'a ToolCtx, args: Value) -> BoxFuture<'a, Result<(Value, u8), ToolError>> {
        Box::pin(async move {
            let args: T::Args =
                serde_json::from_value(args).map_err(|e| ToolError::new(format!("invalid arguments: {e}")))?;
            let out = Tool::call(self, ctx, args).await?;
            let code = Tool::exit_code(self, &out);
            let value = serde_json::to_value(out).map_err(|e| ToolError {
                public: "the tool's output could not be encoded".into(),
                internal: Some(e.to_string()),
            })?;
            Ok((value, code))
        })
    }
}

/// The JSON Schema of a tool's arguments: subschemas inlined, no `$schema` or `title`, so
/// it can go to a model as function parameters as it is.
pub fn parameters_schema<A: JsonSchema>() -> Value {
    let settings = schemars::generate::SchemaSettings::draft2020_12().with(|s| s.inline_subschemas = true);
    let schema = settings.into_generator().into_root_schema_for::<A>();
    let mut v = schema.to_value();
    if let Some(m) = v.as_object_mut() {
        m.remove("$schema");
        m.remove("title");
    }
    v
}

/// What `tools list` prints for a tool; also the committed schema file.
#[derive(Debug, Clone, Serialize)]
pub struct ToolInfo {
    pub name: &'static str,
    pub description: &'static str,
    pub effect: Effect,
    pub parameters: Value,
}

struct Entry {
    tool: Box<dyn ErasedTool>,
    parameters: Value,
    validator: Option<jsonschema::Validator>,
}

/// Every tool, by name.
pub struct ToolRegistry {
    entries: Vec<Entry>,
}

impl ToolRegistry {
    pub fn empty() -> ToolRegistry {
        ToolRegistry { entries: Vec::new() }
    }

    /// The built-in catalog.
    pub fn builtin() -> ToolRegistry {
        let mut r = ToolRegistry::empty();
        r.register(repo_scan::RepoScan);
        r.register(kustomize_build::KustomizeBuild);
        r.register(validate::Validate);
        r.register(cluster_query::ClusterQuery);
        r.register(cluster_prereqs::ClusterPrereqs);
        r.register(argocd_app_status::ArgocdAppStatus);
        r.register(metrics_query::MetricsQuery);
        r.register(drift_report::DriftReportTool);
        r.register(diff::Diff);
        r.register(drift_acknowledge::DriftAcknowledge);
        r.register(drift_capture::DriftCapture);
        r.register(argocd_sync::ArgocdSync);
        r.register(draft_commit_message::DraftCommitMessage);
        r.register(commit::Commit);
        r.register(harmonize_plan::HarmonizePlanTool);
        r.register(harmonize_apply::HarmonizeApply);
        r.register(dependency_scan::DependencyScan);
        r.register(dependency_graph::DependencyGraph);
        r.register(write_doc::WriteDoc);
        r.register(git_log::GitLog);
        r.register(rollback_plan::RollbackPlanTool);
        r.register(git_revert::GitRevert);
        r.register(rollback_verify::RollbackVerify);
        r.register(render_overlay::RenderOverlay);
        r.register(create_app::CreateApp);
        r.register(write_files::WriteFiles);
        r
    }

    pub fn register<T: Tool>(&mut self, tool: T) {
        let parameters = ErasedTool::parameters(&tool);
        let validator = jsonschema::validator_for(&parameters).ok();
        self.entries.retain(|e| e.tool.name() != Tool::name(&tool));
        self.entries.push(Entry { tool: Box::new(tool), parameters, validator });
        self.entries.sort_by_key(|e| e.tool.name());
    }

    pub fn list(&self) -> Vec<ToolInfo> {
        self.entries
            .iter()
            .map(|e| ToolInfo {
                name: e.tool.name(),
                description: e.tool.description(),
                effect: e.tool.effect(),
                parameters: e.parameters.clone(),
            })
            .collect()
    }

    pub fn get(&self, name: &str) -> Option<ToolInfo> {
        self.list().into_iter().find(|t| t.name == name)
    }

    /// Checks an argument object against the tool's schema; every violation, with its path.
    pub fn validate_args(&self, name: &str, args: &Value) -> Result<(), ToolError> {
        let e = self.entry(name)?;
        let Some(v) = &e.validator else {
            return Err(ToolError { public: format!("tool {name} has no usable schema"), internal: None });
        };
        let errors: Vec<String> = v
            .iter_errors(args)
            .map(|err| {
                let at = err.instance_path().to_string();
                format!("{}: {}", if at.is_empty() { "(arguments)".to_string() } else { at }, err)
            })
            .collect();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(ToolError::new(format!("invalid arguments for {name}: {}", errors.join("; "))))
        }
    }

    fn entry(&self, name: &str) -> Result<&Entry, ToolError> {
        self.entries.iter().find(|e| e.tool.name() == name).ok_or_else(|| {
            let names: Vec<&str> = self.entries.iter().map(|e| e.tool.name()).collect();
            ToolError::new(format!("unknown tool {name:?}; tools: {}", names.join(", ")))
        })
    }

    /// Validates and runs one tool, JSON in and JSON out. The output is redacted. Approval
    /// is the caller's business (the executor); this only runs.
    pub async fn call(&self, ctx: &ToolCtx, name: &str, args: Value) -> Result<Value, ToolError> {
        self.call_coded(ctx, name, args).await.map(|(v, _)| v)
    }

    /// [`ToolRegistry::call`], with the exit code of the output ([`Tool::exit_code`]).
    pub async fn call_coded(&self, ctx: &ToolCtx, name: &str, args: Value) -> Result<(Value, u8), ToolError> {
        if let Err(err) = self.validate_args(name, &args) {
            let why = ctx.redactor().scrub(&err.public);
            tracing::info!(tool = %name, error = %why, "tool arguments rejected by the schema");
            return Err(err);
        }
        let e = self.entry(name)?;
        let started = std::time::Instant::now();
        let result = e.tool.call_json(ctx, args).await;
        let duration_ms = started.elapsed().as_millis() as u64;
        let (mut out, code) = result.map_err(|mut err| {
            err.public = ctx.redactor().scrub(&err.public);
            tracing::debug!(tool = %name, duration_ms, error = %err.public, "tool call failed");
            err
        })?;
        tracing::debug!(tool = %name, duration_ms, exit_code = code, "tool call");
        ctx.redactor().redact_value(&mut out);
        Ok((out, code))
    }

    /// The schema files as committed under `tools/schemas/`: (file name, content).
    pub fn schema_files(&self) -> Vec<(String, String)> {
        self.list()
            .into_iter()
            .map(|t| {
                let text = serde_json::to_string_pretty(&t).unwrap_or_default();
                (format!("{}.json", t.name), format!("{text}\n"))
            })
            .collect()
    }
}

/// Runs blocking work (file reads, kustomize processes) off the async runtime.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ToolError> + Send + 'static,
) -> Result<T, ToolError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ToolError { public: "the tool stopped unexpectedly".into(), internal: Some(e.to_string()) })?
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tool that forgets to declare its effect.
    struct Careless;

    #[derive(serde::Deserialize, JsonSchema)]
    #[serde(deny_unknown_fields)]
    struct CarelessArgs {
        /// How many.
        count: u32,
    }

    impl Tool for Careless {
        type Args = CarelessArgs;
        type Output = u32;
        fn name(&self) -> &'static str {
            "careless"
        }
        fn description(&self) -> &'static str {
            "test tool"
        }
        async fn call(&self, _ctx: &ToolCtx, args: CarelessArgs) -> Result<u32, ToolError> {
            Ok(args.count * 2)
        }
    }

    #[test]
    fn undeclared_effect_is_the_most_dangerous() {
        let mut r = ToolRegistry::empty();
        r.register(Careless);
        assert_eq!(r.get("careless").map(|t| t.effect), Some(Effect::WritesCluster));
        assert!(Effect::WritesCluster > Effect::WritesRepo && Effect::WritesRepo > Effect::ReadOnly);
    }

    #[tokio::test]
    async fn arguments_are_checked_against_the_schema_before_the_call() {
        let mut r = ToolRegistry::empty();
        r.register(Careless);
        let ctx = ToolCtx::new(Path::new("."), CtxOptions::default());
        assert_eq!(r.call(&ctx, "careless", serde_json::json!({"count": 4})).await.ok(), Some(serde_json::json!(8)));
        let e = r.call(&ctx, "careless", serde_json::json!({"count": 4, "extra": 1})).await.unwrap_err();
        assert!(e.public.contains("extra"), "{}", e.public);
        let e = r.call(&ctx, "careless", serde_json::json!({"count": "four"})).await.unwrap_err();
        assert!(e.public.contains("/count"), "{}", e.public);
        let e = r.call(&ctx, "careless", serde_json::json!({})).await.unwrap_err();
        assert!(e.public.contains("count"), "{}", e.public);
        let e = r.call(&ctx, "nope", serde_json::json!({})).await.unwrap_err();
        assert!(e.public.contains("unknown tool") && e.public.contains("careless"), "{}", e.public);
    }

    #[test]
    fn parameters_carry_doc_comments_and_no_schema_header() {
        let p = parameters_schema::<CarelessArgs>();
        assert_eq!(p["properties"]["count"]["description"], "How many.");
        assert_eq!(p["additionalProperties"], false);
        assert!(p.get("$schema").is_none() && p.get("title").is_none());
    }
}
