//! `validate`: the whole validation of the repo (or of some apps/environments) as one tool.

use super::{Effect, Tool, ToolError};
use crate::workflows::validate::{self, ValidateRequest, ValidationReport};
use crate::workflows::{Ctx, blocking};

pub struct Validate;

impl Tool for Validate {
    type Args = ValidateRequest;
    type Output = ValidationReport;

    fn name(&self) -> &'static str {
        "validate"
    }
    fn description(&self) -> &'static str {
        "Validate the GitOps repo: every overlay builds with kustomize, rendered objects pass strict schemas and policies (labels, resource limits, image tags, NetworkPolicy coverage), Argo CD Application paths exist. Returns findings with file and line."
    }
    fn effect(&self) -> Effect {
        Effect::ReadOnly
    }
    fn exit_code(&self, output: &ValidationReport) -> u8 {
        u8::from(output.has_errors())
    }
    async fn call(&self, ctx: &Ctx, args: ValidateRequest) -> Result<ValidationReport, ToolError> {
        let ctx = ctx.clone();
        Ok(blocking(move || {
            let repo = ctx.load_repo()?;
            let engine = ctx.engine(&repo)?;
            validate::run(&repo, &engine, ctx.redactor(), &args, ctx.jobs(), &|_, _| {})
        })
        .await?)
    }
}
