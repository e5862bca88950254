//! `create_app`: render a new app, pass every gate, write its files and commit them.

use super::{Effect, Tool, ToolError};
use crate::workflows::Ctx;
use crate::workflows::create::{self, CreatePlan, CreateRequest};

pub struct CreateApp;

impl Tool for CreateApp {
    type Args = CreateRequest;
    type Output = CreatePlan;

    fn name(&self) -> &'static str {
        "create_app"
    }
    fn description(&self) -> &'static str {
        "Create a new app as render_overlay plans it, only when every gate passes: write the files (never overwriting) and commit them with a drafted message. Writes the repo: needs approval."
    }
    fn effect(&self) -> Effect {
        Effect::WritesRepo
    }
    fn exit_code(&self, output: &CreatePlan) -> u8 {
        u8::from(!output.is_ok())
    }
    async fn call(&self, ctx: &Ctx, args: CreateRequest) -> Result<CreatePlan, ToolError> {
        let repo = ctx.repo().await?;
        let engine = ctx.engine(&repo)?;
        let clusters = ctx.clusters().ok();
        let mut plan = create::plan(&repo, &engine, clusters.as_deref(), ctx.redactor(), &args, ctx.jobs()).await?;
        crate::workflows::fingerprint::check(args.expect.as_deref(), &plan.fingerprint, "create plan")?;
        tokio::task::block_in_place(|| {
            create::apply(&repo, &engine, ctx.redactor(), &mut plan, !args.no_commit, args.reason.as_deref())
        })?;
        Ok(plan)
    }
}
