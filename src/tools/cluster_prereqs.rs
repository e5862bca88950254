//! `cluster_prereqs`: what each environment's cluster offers for workloads to land on:
//! StorageClasses, IngressClasses (with their defaults) and CRDs.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Effect, Tool, ToolCtx, ToolError, blocking, target_envs};
use crate::cluster::prereq::{self, ClusterFacts};

pub struct ClusterPrereqs;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Args {
    /// Environments whose clusters to ask (all when empty).
    #[serde(default)]
    pub env: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct ClusterPrereqsOf {
    pub env: String,
    pub context: String,
    pub facts: Option<ClusterFacts>,
    pub error: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct Output {
    pub clusters: Vec<ClusterPrereqsOf>,
}

impl Tool for ClusterPrereqs {
    type Args = Args;
    type Output = Output;

    fn name(&self) -> &'static str {
        "cluster_prereqs"
    }
    fn description(&self) -> &'static str {
        "List the StorageClasses, IngressClasses (with defaults) and CustomResourceDefinitions present in each environment's cluster."
    }
    fn effect(&self) -> Effect {
        Effect::ReadOnly
    }
    async fn call(&self, ctx: &ToolCtx, args: Args) -> Result<Output, ToolError> {
        let c = ctx.clone();
        let repo = blocking(move || Ok(c.load_repo()?)).await?;
        let envs = target_envs(&repo, &args.env)?;
        let contexts: Vec<String> = envs.iter().map(|e| repo.config.context_for(e)).collect();
        let results = ctx.clusters()?.run_all(&contexts, |client| async move { prereq::facts(&client).await }).await;
        let clusters = envs
            .into_iter()
            .zip(results)
            .map(|(env, (context, r))| match r {
                Ok(f) => ClusterPrereqsOf { env, context, facts: Some(f), error: None },
                Err(e) => ClusterPrereqsOf { env, context, facts: None, error: Some(e.to_string()) },
            })
            .collect();
        Ok(Output { clusters })
    }
}
