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
        // each check as it settles: for logs (stderr not a terminal) a line each; on a
        // terminal one transient line naming the check, cleared at the end, since the result
        // lists every check and a terminal shows stderr and stdout together
        let terminal = std::io::IsTerminal::is_terminal(&std::io::stderr());
        let bar = indicatif::ProgressBar::with_draw_target(None, indicatif::ProgressDrawTarget::stderr());
        if let Ok(style) = indicatif::ProgressStyle::with_template("{spinner} verifying: {msg}") {
            bar.set_style(style);
        }
        let progress = |c: &rollback::verify::Check| {
            if terminal {
                bar.set_message(format!("{} settled", c.name));
            } else {
                eprintln!("  {}", rollback::report::check_line(c));
            }
        };
        let out = rollback::verify_and_record(ctx, &args, &progress).await;
        bar.finish_and_clear();
        Ok(out?)
    }
}
