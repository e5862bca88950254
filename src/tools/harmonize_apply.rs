//! `harmonize_apply`: plan, prove, write and commit a harmonize request, all or nothing.

use super::{Effect, Tool, ToolError};
use crate::workflows::harmonize::apply::{self, Fault};
use crate::workflows::harmonize::{self, HarmonizePlan, HarmonizeRequest};
use crate::workflows::{Ctx, blocking};

pub struct HarmonizeApply;

impl Tool for HarmonizeApply {
    type Args = HarmonizeRequest;
    type Output = HarmonizePlan;

    fn name(&self) -> &'static str {
        "harmonize_apply"
    }
    fn description(&self) -> &'static str {
        "Apply a harmonize request: plan and prove it as harmonize_plan does, write the edited files (comments and formatting kept), re-check the renderings in place and commit exactly those files. Any failure restores every file. Writes the repo: needs approval."
    }
    fn effect(&self) -> Effect {
        Effect::WritesRepo
    }
    async fn call(&self, ctx: &Ctx, req: HarmonizeRequest) -> Result<HarmonizePlan, ToolError> {
        let ctx = ctx.clone();
        Ok(blocking(move || {
            let commit = !req.no_commit;
            let repo = ctx.load_repo()?;
            let engine = ctx.engine(&repo)?;
            let mut plan = harmonize::plan(&repo, &engine, &req, ctx.jobs())?;
            crate::workflows::fingerprint::check(req.expect.as_deref(), &plan.fingerprint, "harmonize plan")?;
            apply::apply(&repo, &engine, &mut plan, commit, Fault::from_env())?;
            Ok(plan)
        })
        .await?)
    }
}
