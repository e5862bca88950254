//! `metrics_query`: a PromQL query against an environment's Prometheus, at its configured
//! URL or through the cluster's API server service proxy.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Effect, Tool, ToolError};
use crate::cluster::metrics::{self, QueryResult, Range};
use crate::workflows::{Ctx, target_envs};

pub struct MetricsQuery;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Args {
    /// Environment whose Prometheus to ask.
    pub env: String,
    /// PromQL expression, e.g. `http_error_ratio{app="auth-service"}`.
    pub query: String,
    /// Evaluation time (Unix seconds) for an instant query; default now.
    #[serde(default)]
    pub time: Option<f64>,
    /// A range query instead of an instant one.
    #[serde(default)]
    pub range: Option<Range>,
}

#[derive(Debug, Serialize)]
pub struct Output {
    pub env: String,
    pub endpoint: String,
    pub result: QueryResult,
}

impl Tool for MetricsQuery {
    type Args = Args;
    type Output = Output;

    fn name(&self) -> &'static str {
        "metrics_query"
    }
    fn description(&self) -> &'static str {
        "Run a PromQL instant or range query against an environment's Prometheus (configured URL, else the cluster's API server service proxy to monitoring/prometheus-operated:9090)."
    }
    fn effect(&self) -> Effect {
        Effect::ReadOnly
    }
    async fn call(&self, ctx: &Ctx, args: Args) -> Result<Output, ToolError> {
        let repo = ctx.repo().await?;
        let env = target_envs(&repo, std::slice::from_ref(&args.env))?.remove(0);
        let endpoint = ctx.prometheus(&repo, &env).await?;
        let result = metrics::query(&endpoint, &args.query, args.time, args.range)
            .await
            .map_err(|e| ToolError::new(e.to_string()))?;
        Ok(Output { env, endpoint: format!("{endpoint:?}"), result })
    }
}
