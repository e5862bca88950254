//! `drift_capture`: keep an app's live drift in one environment by writing it into the
//! overlay as a patch, proven by a re-render, committed on a new branch.

use schemars::JsonSchema;
use serde::Deserialize;

use super::{Effect, Tool, ToolError};
use crate::workflows::Ctx;
use crate::workflows::capture::{self, Captured};
use crate::workflows::drift::{self, DriftRequest};

pub struct DriftCapture;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Args {
    pub app: String,
    pub env: String,
    /// Leave the files uncommitted instead of committing on a new branch.
    #[serde(default)]
    pub no_commit: bool,
    /// Commit on the new branch but stay on the current one (the working tree is left as it was).
    #[serde(default)]
    pub stay: bool,
}

impl Tool for DriftCapture {
    type Args = Args;
    type Output = Captured;

    fn name(&self) -> &'static str {
        "drift_capture"
    }
    fn description(&self) -> &'static str {
        "Keep the live drift of one app in one environment: write it into the app's overlay as a strategic-merge patch, prove by re-rendering that git now matches the cluster, validate the overlay (errors the patch brings in refuse the capture), and commit on a new branch (switching to it unless `stay`). Writes the repo: needs approval."
    }
    fn effect(&self) -> Effect {
        Effect::WritesRepo
    }
    fn exit_code(&self, output: &Captured) -> u8 {
        u8::from(!output.validation.is_empty())
    }
    async fn call(&self, ctx: &Ctx, args: Args) -> Result<Captured, ToolError> {
        let (repo, _) = ctx.env_client(&args.env).await?;
        let engine = ctx.engine(&repo)?;
        let clusters = ctx.clusters()?;
        let req = DriftRequest {
            env: vec![args.env.clone()],
            app: vec![args.app.clone()],
            audit_log: Vec::new(),
            show_suppressed: false,
        };
        let (_, drifted) = drift::run_with_objects(&repo, &engine, &clusters, ctx.redactor(), &req).await?;
        // acknowledged drift is kept as is; drifted and expired drift is captured
        let pairs: Vec<_> = drifted.into_iter().filter(|d| d.0.status != "acknowledged").collect();
        if pairs.is_empty() {
            return Err(ToolError::new(format!("{} has no drift in {} to capture", args.app, args.env)));
        }
        Ok(tokio::task::block_in_place(|| {
            capture::capture(
                &repo,
                &engine,
                &pairs,
                capture::CaptureOptions { commit: !args.no_commit, stay: args.stay },
            )
        })?)
    }
}
