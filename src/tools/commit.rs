//! `commit`: commits exactly the index, or exactly some paths, with a given or drafted
//! message. Every workflow that commits goes through it. It refuses when validation of the
//! affected overlays fails, unless `allow_invalid`.

use super::{Effect, Tool, ToolError};
use crate::workflows::Ctx;
use crate::workflows::commit::run::{self, CommitRequest, Committed};

pub struct Commit;

impl Tool for Commit {
    type Args = CommitRequest;
    type Output = Committed;

    fn name(&self) -> &'static str {
        "commit"
    }
    fn description(&self) -> &'static str {
        "Commit exactly the staged change (or exactly the given paths, on top of HEAD) with the given message, or with a message drafted from the change. Refuses when validation of the affected overlays fails unless allow_invalid. Writes the repo: needs approval."
    }
    fn effect(&self) -> Effect {
        Effect::WritesRepo
    }
    async fn call(&self, ctx: &Ctx, args: CommitRequest) -> Result<Committed, ToolError> {
        Ok(run::run(ctx, args).await?)
    }
}
