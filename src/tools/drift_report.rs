//! `drift_report`: what each cluster runs against what git renders, for every Argo CD
//! Application (or some apps/environments), attributed and with recommendations.

use super::{Effect, Tool, ToolError};
use crate::workflows::Ctx;
use crate::workflows::drift::{self, DriftReport, DriftRequest};

pub struct DriftReportTool;

impl Tool for DriftReportTool {
    type Args = DriftRequest;
    type Output = DriftReport;

    fn name(&self) -> &'static str {
        "drift_report"
    }
    fn description(&self) -> &'static str {
        "Compare what each environment's cluster runs with what the repo renders for every Argo CD Application: semantic changes (added containers, volumes, env vars, labels; changed images, replicas), who made them and when (managedFields, audit logs), and recommendations (revert, capture, acknowledge)."
    }
    fn effect(&self) -> Effect {
        Effect::ReadOnly
    }
    fn exit_code(&self, output: &DriftReport) -> u8 {
        if output.summary.clusters_failed > 0 || output.summary.applications_unchecked > 0 {
            2
        } else {
            u8::from(output.has_drift())
        }
    }
    async fn call(&self, ctx: &Ctx, args: DriftRequest) -> Result<DriftReport, ToolError> {
        let repo = ctx.repo().await?;
        let engine = ctx.engine(&repo)?;
        let clusters = ctx.clusters()?;
        Ok(drift::run(&repo, &engine, &clusters, ctx.redactor(), &args).await?)
    }
}
