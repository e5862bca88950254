//! `git_revert`: reverts the rollback plan's culprit commits, restricted to the app's files,
//! as one new commit that also adds the incident report; pushes when a remote is configured.
//! A conflict stops it with the files named and nothing written.

use serde::Serialize;

use super::{Effect, Tool, ToolError};
use crate::workflows::Ctx;
use crate::workflows::rollback::{self, RevertOutcome, RollbackRequest};

pub struct GitRevert;

#[derive(Debug, Serialize)]
pub struct Output {
    #[serde(flatten)]
    pub outcome: RevertOutcome,
}

impl Tool for GitRevert {
    type Args = RollbackRequest;
    type Output = Output;

    fn name(&self) -> &'static str {
        "git_revert"
    }
    fn description(&self) -> &'static str {
        "Roll an app back in git: plans as rollback_plan does, then reverts the culprit commits restricted to the app's files as one new commit with the incident report (docs/incidents/), and pushes when a remote is configured. A conflict stops everything with the files named; the repo stays as it was. Writes the repo: needs approval."
    }
    fn effect(&self) -> Effect {
        Effect::WritesRepo
    }
    async fn call(&self, ctx: &Ctx, args: RollbackRequest) -> Result<Output, ToolError> {
        let (_, outcome) = rollback::apply(ctx, &args).await?;
        Ok(Output { outcome })
    }
}
