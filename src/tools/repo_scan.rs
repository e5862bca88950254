//! `repo_scan`: find objects by kind, name, label, app, environment or text, in the source
//! files and in the rendered output of the overlays, each with file and line.

use super::{Effect, Tool, ToolError};
use crate::workflows::Ctx;
use crate::workflows::scan::{self, ScanRequest, ScanResult};

pub struct RepoScan;

impl Tool for RepoScan {
    type Args = ScanRequest;
    type Output = ScanResult;

    fn name(&self) -> &'static str {
        "repo_scan"
    }
    fn description(&self) -> &'static str {
        "Find Kubernetes objects in the repo by kind, name, label, app, environment or text, in source files and/or rendered overlay output. Each match has file and line."
    }
    fn effect(&self) -> Effect {
        Effect::ReadOnly
    }
    async fn call(&self, ctx: &Ctx, args: ScanRequest) -> Result<ScanResult, ToolError> {
        Ok(scan::run(ctx, args).await?)
    }
}
