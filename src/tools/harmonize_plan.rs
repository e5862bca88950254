//! `harmonize_plan`: the population of a harmonize request, the edits at the sources, the
//! diff and the coverage, proven in a scratch copy. Writes nothing.

use super::{Effect, Tool, ToolError};
use crate::workflows::harmonize::{self, HarmonizePlan, HarmonizeRequest};
use crate::workflows::{Ctx, blocking};

pub struct HarmonizePlanTool;

impl Tool for HarmonizePlanTool {
    type Args = HarmonizeRequest;
    type Output = HarmonizePlan;

    fn name(&self) -> &'static str {
        "harmonize_plan"
    }
    fn description(&self) -> &'static str {
        "Plan one annotation or label setting on every object of a kind (e.g. TLS 1.3 on every Ingress): renders every overlay, finds the objects, traces each value to the base, Component, patch or overlay file that sets it, and proves the edits by re-rendering in a scratch copy (coverage before/after, nothing else changed). Returns the edits and the diff; writes nothing."
    }
    fn effect(&self) -> Effect {
        Effect::ReadOnly
    }
    fn exit_code(&self, output: &HarmonizePlan) -> u8 {
        u8::from(!output.is_proven())
    }
    async fn call(&self, ctx: &Ctx, args: HarmonizeRequest) -> Result<HarmonizePlan, ToolError> {
        let ctx = ctx.clone();
        Ok(blocking(move || {
            let repo = ctx.load_repo()?;
            let engine = ctx.engine(&repo)?;
            harmonize::plan(&repo, &engine, &args, ctx.jobs())
        })
        .await?)
    }
}
