//! `rollback_verify`: after a rollback's sync, waits for the sync, the rollout, health and
//! the error rate to fall below the threshold, then records the results in the incident
//! report as a follow-up commit (so it writes the repo).

use super::{Effect, Tool, ToolError};
use crate::workflows::Ctx;
use crate::workflows::rollback::{self, VerifyOutcome, VerifyRequest};

pub struct RollbackVerify;

impl Tool for RollbackVerify {
    type Args = VerifyRequest;
    type Output = VerifyOutcome;

    fn name(&self) -> &'static str {
        "rollback_verify"
    }
    fn description(&self) -> &'static str {
        "Verify a rollback within a time limit: sync reached the revert commit, Deployments rolled out, Application Healthy, live equals the render, error rate below the threshold (unknown without Prometheus). Records results in the incident report (a follow-up commit; needs approval)."
    }
    fn effect(&self) -> Effect {
        Effect::WritesRepo
    }
    fn exit_code(&self, output: &VerifyOutcome) -> u8 {
        u8::from(output.verification.verdict != "recovered")
    }
    async fn call(&self, ctx: &Ctx, args: VerifyRequest) -> Result<VerifyOutcome, ToolError> {
        let progress = |c: &rollback::verify::Check| ctx.settled(&c.name, &rollback::report::check_line(c));
        let out = rollback::verify_and_record(ctx, &args, &progress).await;
        ctx.progress_done();
        Ok(out?)
    }
}
