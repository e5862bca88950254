//! `rollback_plan`: the evidence, culprit, target, risks and actions of rolling an app back
//! in one environment. Reads only.

use super::{Effect, Tool, ToolError};
use crate::workflows::Ctx;
use crate::workflows::rollback::{self, RollbackPlan, RollbackRequest};

pub struct RollbackPlanTool;

impl Tool for RollbackPlanTool {
    type Args = RollbackRequest;
    type Output = RollbackPlan;

    fn name(&self) -> &'static str {
        "rollback_plan"
    }
    fn description(&self) -> &'static str {
        "Plan the rollback of an app in one environment: Argo CD deploy history with the error rate while each deploy was live, the culprit deploy and commits (restricted to the app's files), the last healthy target, what a revert does not undo (migrations, volumes, CRDs, removed keys, namespaces), the actions and the expected downtime. Writes nothing."
    }
    fn effect(&self) -> Effect {
        Effect::ReadOnly
    }
    fn exit_code(&self, output: &RollbackPlan) -> u8 {
        u8::from(!output.is_ready())
    }
    async fn call(&self, ctx: &Ctx, args: RollbackRequest) -> Result<RollbackPlan, ToolError> {
        Ok(rollback::plan(ctx, &args).await?)
    }
}
