//! `argocd_app_status`: an Argo CD Application's sync and health status, deploy history
//! and current operation, read from the cluster that runs Argo CD for an environment.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Effect, Tool, ToolError};
use crate::cluster::ClusterError;
use crate::cluster::argocd::Applications;
use crate::workflows::Ctx;

pub struct ArgocdAppStatus;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Args {
    /// Environment whose cluster holds the Application.
    pub env: String,
    /// Application name, e.g. `auth-service-prod-west`.
    pub name: String,
    /// Namespace of the Application (default `argocd`).
    #[serde(default)]
    pub namespace: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct Output {
    pub env: String,
    pub name: String,
    pub sync: Value,
    pub health: Value,
    /// Deploys, oldest first: id, revision, deployedAt, source.
    pub history: Value,
    pub operation_state: Value,
    /// A requested operation not yet picked up by the controller.
    pub operation: Value,
    pub auto_sync: bool,
}

impl Tool for ArgocdAppStatus {
    type Args = Args;
    type Output = Output;

    fn name(&self) -> &'static str {
        "argocd_app_status"
    }
    fn description(&self) -> &'static str {
        "Read an Argo CD Application: sync status and revision, health, deploy history, the last operation's state, and whether auto-sync is on."
    }
    fn effect(&self) -> Effect {
        Effect::ReadOnly
    }
    async fn call(&self, ctx: &Ctx, args: Args) -> Result<Output, ToolError> {
        let (_, client) = ctx.env_client(&args.env).await?;
        let env = args.env.clone();
        let ns = args.namespace.clone().unwrap_or_else(|| "argocd".into());
        let err = |e: ClusterError| ToolError::new(e.to_string());
        let app = Applications::discover(&client, &ns).await.map_err(err)?.get(&args.name).await.map_err(err)?;
        let p = |ptr: &str| app.pointer(ptr).cloned().unwrap_or(Value::Null);
        Ok(Output {
            env,
            name: args.name,
            sync: p("/status/sync"),
            health: p("/status/health"),
            history: p("/status/history"),
            operation_state: p("/status/operationState"),
            operation: p("/operation"),
            auto_sync: app.pointer("/spec/syncPolicy/automated").is_some_and(|a| !a.is_null()),
        })
    }
}
