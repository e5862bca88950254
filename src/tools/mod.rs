//! The typed tool layer: every capability the planner, the executor, the CLI and evals use is
//! a `Tool` with typed, schema-described arguments and a declared effect. The registry erases
//! tools to JSON in / JSON out, validates every argument object against the tool's schema
//! before calling, and passes every output through the shared redactor.

pub(crate) mod argocd_app_status;
pub(crate) mod argocd_sync;
pub(crate) mod cluster_prereqs;
pub(crate) mod cluster_query;
pub(crate) mod commit;
pub(crate) mod create_app;
pub(crate) mod dependency_graph;
pub(crate) mod dependency_scan;
pub(crate) mod diff;
pub(crate) mod draft_commit_message;
pub(crate) mod drift_acknowledge;
pub(crate) mod drift_capture;
pub(crate) mod drift_report;
pub(crate) mod git_log;
pub(crate) mod git_revert;
pub(crate) mod harmonize_apply;
pub(crate) mod harmonize_plan;
pub(crate) mod kustomize_build;
pub(crate) mod metrics_query;
pub(crate) mod render_overlay;
pub(crate) mod repo_scan;
pub(crate) mod rollback_plan;
pub(crate) mod rollback_verify;
pub(crate) mod validate;
pub(crate) mod write_doc;
pub(crate) mod write_files;

use std::future::Future;
use std::pin::Pin;

use schemars::JsonSchema;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::Error;
use crate::workflows::Ctx;

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
    fn call(&self, ctx: &Ctx, args: Self::Args) -> impl Future<Output = Result<Self::Output, ToolError>> + Send;
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
    fn call_json<'a>(&'a self, ctx: &'a Ctx, args: Value) -> BoxFuture<'a, Result<(Value, u8), ToolError>>;
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
    fn call_json<'a>(&'a self, ctx: &'a Ctx, args: Value) -> BoxFuture<'a, Result<(Value, u8), ToolError>> {
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

    pub fn names(&self) -> Vec<&'static str> {
        self.entries.iter().map(|e| e.tool.name()).collect()
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
    pub async fn call(&self, ctx: &Ctx, name: &str, args: Value) -> Result<Value, ToolError> {
        self.call_coded(ctx, name, args).await.map(|(v, _)| v)
    }

    /// [`ToolRegistry::call`], with the exit code of the output ([`Tool::exit_code`]).
    pub async fn call_coded(&self, ctx: &Ctx, name: &str, args: Value) -> Result<(Value, u8), ToolError> {
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

impl crate::agents::ToolCatalog for ToolRegistry {
    fn tool_names(&self) -> Vec<&str> {
        self.names()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workflows::CtxOptions;
    use std::path::Path;

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
        async fn call(&self, _ctx: &Ctx, args: CarelessArgs) -> Result<u32, ToolError> {
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
        let ctx = Ctx::new(Path::new("."), CtxOptions::default());
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
