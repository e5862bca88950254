//! `diff`: the semantic difference between what one app renders for one environment and
//! what that environment's cluster runs, with attribution. The drift check, narrowed.

use schemars::JsonSchema;
use serde::Deserialize;

use super::{Effect, Tool, ToolError};
use crate::workflows::Ctx;
use crate::workflows::drift::{self, DriftReport, DriftRequest};

pub struct Diff;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Args {
    pub app: String,
    pub env: String,
}

impl Tool for Diff {
    type Args = Args;
    type Output = DriftReport;

    fn name(&self) -> &'static str {
        "diff"
    }
    fn description(&self) -> &'static str {
        "Semantic diff of one app in one environment: desired (rendered from git) against live (its cluster), each change in words with who made it."
    }
    fn effect(&self) -> Effect {
        Effect::ReadOnly
    }
    async fn call(&self, ctx: &Ctx, args: Args) -> Result<DriftReport, ToolError> {
        let (repo, _) = ctx.env_client(&args.env).await?;
        if !repo.apps.contains_key(&args.app) {
            return Err(ToolError::new(format!("unknown app {:?}", args.app)));
        }
        let engine = ctx.engine(&repo)?;
        let req =
            DriftRequest { env: vec![args.env], app: vec![args.app], audit_log: Vec::new(), show_suppressed: false };
        Ok(drift::run(&repo, &engine, &*ctx.clusters()?, ctx.redactor(), &req).await?)
    }
}
