//! `render_overlay`: the files a new app would get (base, overlays, Argo CD Applications),
//! rendered from the templates in memory, with the gates run on a scratch copy. Writes nothing.

use super::{Effect, Tool, ToolError};
use crate::workflows::Ctx;
use crate::workflows::create::{self, CreatePlan, CreateRequest};

pub struct RenderOverlay;

impl Tool for RenderOverlay {
    type Args = CreateRequest;
    type Output = CreatePlan;

    fn name(&self) -> &'static str {
        "render_overlay"
    }
    fn description(&self) -> &'static str {
        "Render a new app from the templates in the repo's style (base, one overlay per environment sized by tier, Argo CD Applications) and run the gates on a scratch copy: overlays build, schemas and policies pass, Argo CD paths exist, and each target cluster has the StorageClass, CRDs, IngressClass and namespace. Returns the files and the gates; writes nothing."
    }
    fn effect(&self) -> Effect {
        Effect::ReadOnly
    }
    fn exit_code(&self, output: &CreatePlan) -> u8 {
        u8::from(!output.is_ok())
    }
    async fn call(&self, ctx: &Ctx, args: CreateRequest) -> Result<CreatePlan, ToolError> {
        let repo = ctx.repo().await?;
        let engine = ctx.engine(&repo)?;
        let clusters = ctx.clusters().ok();
        Ok(create::plan(&repo, &engine, clusters.as_deref(), ctx.redactor(), &args, ctx.jobs()).await?)
    }
}
