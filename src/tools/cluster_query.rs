//! `cluster_query`: get or list any kind in the clusters of some environments (by kind,
//! plural or short name), with a label selector. Secret values are always redacted.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Effect, Tool, ToolCtx, ToolError, blocking, target_envs};
use crate::cluster;

pub struct ClusterQuery;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Args {
    /// Environments whose clusters to ask (all when empty).
    #[serde(default)]
    pub env: Vec<String>,
    /// Kind, plural or short name: `Deployment`, `deployments`, `deploy`.
    pub kind: String,
    /// Pin the apiVersion or group, e.g. `apps/v1` or `monitoring.coreos.com`.
    #[serde(default)]
    pub api_version: Option<String>,
    /// Namespace (all namespaces when absent).
    #[serde(default)]
    pub namespace: Option<String>,
    /// One object by name.
    #[serde(default)]
    pub name: Option<String>,
    /// Label selector, e.g. `app.kubernetes.io/name=grafana`.
    #[serde(default)]
    pub label_selector: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct ClusterObjects {
    pub env: String,
    pub context: String,
    pub objects: Vec<Value>,
    pub error: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct Output {
    pub clusters: Vec<ClusterObjects>,
}

impl Tool for ClusterQuery {
    type Args = Args;
    type Output = Output;

    fn name(&self) -> &'static str {
        "cluster_query"
    }
    fn description(&self) -> &'static str {
        "Get or list Kubernetes objects of any kind in the clusters of some environments (concurrently; one failing cluster is reported and does not hide the others). Secret values are redacted."
    }
    fn effect(&self) -> Effect {
        Effect::ReadOnly
    }
    async fn call(&self, ctx: &ToolCtx, args: Args) -> Result<Output, ToolError> {
        let c = ctx.clone();
        let repo = blocking(move || Ok(c.load_repo()?)).await?;
        let envs = target_envs(&repo, &args.env)?;
        let contexts: Vec<String> = envs.iter().map(|e| repo.config.context_for(e)).collect();
        let clusters = ctx.clusters()?;
        let a = &args;
        let results = clusters
            .run_all(&contexts, |client| async move {
                let (ar, caps) = cluster::resolve(&client, &a.kind, a.api_version.as_deref()).await?;
                cluster::query(
                    &client,
                    &ar,
                    &caps,
                    a.namespace.as_deref(),
                    a.name.as_deref(),
                    a.label_selector.as_deref(),
                )
                .await
            })
            .await;
        let clusters = envs
            .into_iter()
            .zip(results)
            .map(|(env, (context, r))| match r {
                Ok(objects) => ClusterObjects { env, context, objects, error: None },
                Err(e) => ClusterObjects { env, context, objects: Vec::new(), error: Some(e.to_string()) },
            })
            .collect();
        Ok(Output { clusters })
    }
}
