//! `argocd_sync`: asks Argo CD to sync one Application (writes its `operation`), the way
//! `argocd app sync --core` does, and waits for the operation to finish.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Effect, Tool, ToolError};
use crate::cluster::argocd::Applications;
use crate::workflows::Ctx;

pub struct ArgocdSync;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Args {
    /// Environment whose cluster holds the Application.
    pub env: String,
    /// Application name, e.g. `grafana-prod-west`.
    pub name: String,
    /// Namespace of the Application (default `argocd`).
    #[serde(default)]
    pub namespace: Option<String>,
    /// Revision to sync to (default: the Application's targetRevision).
    #[serde(default)]
    pub revision: Option<String>,
    /// Seconds to wait for the sync to finish (default 120).
    #[serde(default)]
    pub wait_seconds: Option<u64>,
    /// Replace objects whole for this sync (Replace=true).
    #[serde(default)]
    pub replace: bool,
}

#[derive(Debug, Serialize)]
pub struct Output {
    pub env: String,
    pub name: String,
    pub operation_state: Value,
}

impl Tool for ArgocdSync {
    type Args = Args;
    type Output = Output;

    fn name(&self) -> &'static str {
        "argocd_sync"
    }
    fn description(&self) -> &'static str {
        "Ask Argo CD to sync an Application to git (optionally at a revision) and wait for the result. Writes to the cluster: needs approval."
    }
    fn effect(&self) -> Effect {
        Effect::WritesCluster
    }
    async fn call(&self, ctx: &Ctx, args: Args) -> Result<Output, ToolError> {
        let (_, client) = ctx.env_client(&args.env).await?;
        let ns = args.namespace.clone().unwrap_or_else(|| "argocd".into());
        let err = |e: crate::cluster::ClusterError| ToolError::new(e.to_string());
        let apps = Applications::discover(&client, &ns).await.map_err(err)?;
        apps.request_sync(&args.name, args.revision.as_deref(), args.replace).await.map_err(err)?;
        let wait = std::time::Duration::from_secs(args.wait_seconds.unwrap_or(120));
        let operation_state = apps.wait_for_sync(&args.name, wait).await.map_err(err)?;
        Ok(Output { env: args.env, name: args.name, operation_state })
    }
}
