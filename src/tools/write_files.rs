//! `write_files`: write files inside the repo. Refuses paths that leave it and, unless told,
//! files that exist. All or nothing.

use super::{Effect, Tool, ToolError};
use crate::workflows::Ctx;
use crate::workflows::files::{self, FilesRequest, WrittenFiles};

pub struct WriteFiles;

impl Tool for WriteFiles {
    type Args = FilesRequest;
    type Output = WrittenFiles;

    fn name(&self) -> &'static str {
        "write_files"
    }
    fn description(&self) -> &'static str {
        "Write files inside the repo (repo-relative paths; never outside it, never into .git). Existing files are refused unless overwrite is true. All or nothing: a failure removes or restores what was written. Writes the repo: needs approval."
    }
    fn effect(&self) -> Effect {
        Effect::WritesRepo
    }
    async fn call(&self, ctx: &Ctx, args: FilesRequest) -> Result<WrittenFiles, ToolError> {
        Ok(files::run(ctx, args).await?)
    }
}
