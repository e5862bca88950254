//! `write_doc`: writes one document inside the repo (never outside it, never over an existing
//! file unless asked) and optionally commits exactly that file. Either the text is given, or
//! `migration` asks for the migration plan document, rendered from the deterministic
//! hand-offs. Shared by the migration writer and the incident report.

use super::{Effect, Tool, ToolError};
use crate::workflows::Ctx;
use crate::workflows::docs::{self, DocRequest, WrittenDoc};

pub struct WriteDoc;

impl Tool for WriteDoc {
    type Args = DocRequest;
    type Output = WrittenDoc;

    fn name(&self) -> &'static str {
        "write_doc"
    }
    fn description(&self) -> &'static str {
        "Write a document (markdown) inside the repository: the given text, or with `migration` the migration plan document rendered from the scanner, analyst and planner hand-offs. Refuses paths outside the repo and existing files unless overwrite; commits exactly that file when commit. Writes the repo: needs approval."
    }
    fn effect(&self) -> Effect {
        Effect::WritesRepo
    }
    async fn call(&self, ctx: &Ctx, args: DocRequest) -> Result<WrittenDoc, ToolError> {
        Ok(docs::run(ctx, args).await?)
    }
}
