//! `cluster_prereqs`: what each environment's cluster offers for workloads to land on:
//! StorageClasses, IngressClasses (with their defaults) and CRDs.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Effect, Tool, ToolError};
use crate::cluster::prereq::{self, ClusterFacts};
use crate::workflows::{Ctx, PerCluster};

pub struct ClusterPrereqs;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Args {
    /// Environments whose clusters to ask (all when empty).
    #[serde(default)]
    pub env: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct Facts {
    pub facts: ClusterFacts,
}

#[derive(Debug, Serialize)]
pub struct Output {
    pub clusters: Vec<PerCluster<Facts>>,
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
    async fn call(&self, ctx: &Ctx, args: Args) -> Result<Output, ToolError> {
        let clusters = ctx
            .across_clusters(&args.env, |client| async move { Ok(Facts { facts: prereq::facts(&client).await? }) })
            .await?;
        Ok(Output { clusters })
    }
}
