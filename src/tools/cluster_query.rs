//! `cluster_query`: get or list any kind in the clusters of some environments (by kind,
//! plural or short name), with a label selector. Secret values are always redacted.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Effect, Tool, ToolError};
use crate::cluster;
use crate::workflows::{Ctx, PerCluster};

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
    /// Keep `metadata.managedFields` (who set which field); left out by default, as kubectl
    /// does, since it is most of an object's size.
    #[serde(default)]
    pub show_managed_fields: bool,
}

#[derive(Debug, Serialize)]
pub struct Objects {
    pub objects: Vec<Value>,
}

#[derive(Debug, Serialize)]
pub struct Output {
    pub clusters: Vec<PerCluster<Objects>>,
}

impl Tool for ClusterQuery {
    type Args = Args;
    type Output = Output;

    fn name(&self) -> &'static str {
        "cluster_query"
    }
    fn description(&self) -> &'static str {
        "Get or list Kubernetes objects of any kind in the clusters of some environments (concurrently; one failing cluster is reported and does not hide the others). Secret values are redacted; managedFields only with show_managed_fields."
    }
    fn effect(&self) -> Effect {
        Effect::ReadOnly
    }
    async fn call(&self, ctx: &Ctx, args: Args) -> Result<Output, ToolError> {
        let a = &args;
        let clusters = ctx
            .across_clusters(&args.env, |client| async move {
                let (ar, caps) = cluster::resolve(&client, &a.kind, a.api_version.as_deref()).await?;
                let objects = cluster::query(
                    &client,
                    &ar,
                    &caps,
                    a.namespace.as_deref(),
                    a.name.as_deref(),
                    a.label_selector.as_deref(),
                )
                .await?;
                let objects = if a.show_managed_fields {
                    objects
                } else {
                    objects.into_iter().map(without_managed_fields).collect()
                };
                Ok(Objects { objects })
            })
            .await?;
        Ok(Output { clusters })
    }
}

fn without_managed_fields(mut o: Value) -> Value {
    if let Some(m) = o.get_mut("metadata").and_then(Value::as_object_mut) {
        m.remove("managedFields");
    }
    o
}
