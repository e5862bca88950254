//! `drift_acknowledge`: marks an app's current drift in one environment as temporary, with a
//! reason and an expiry date, by annotating the live objects. Reported as acknowledged until
//! it expires.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Effect, Tool, ToolError};
use crate::workflows::Ctx;
use crate::workflows::drift::{self, DriftRequest};

pub struct DriftAcknowledge;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Args {
    pub app: String,
    pub env: String,
    /// Why the drift is allowed for now.
    pub reason: String,
    /// Last day it is allowed (YYYY-MM-DD).
    pub expires: String,
}

#[derive(Debug, Serialize)]
pub struct Output {
    pub annotated: Vec<String>,
}

impl Tool for DriftAcknowledge {
    type Args = Args;
    type Output = Output;

    fn name(&self) -> &'static str {
        "drift_acknowledge"
    }
    fn description(&self) -> &'static str {
        "Mark the current drift of one app in one environment as temporary (reason, expiry date) by annotating the live objects. Writes to the cluster: needs approval."
    }
    fn effect(&self) -> Effect {
        Effect::WritesCluster
    }
    async fn call(&self, ctx: &Ctx, args: Args) -> Result<Output, ToolError> {
        let (repo, client) = ctx.env_client(&args.env).await?;
        let engine = ctx.engine(&repo)?;
        let req = DriftRequest {
            env: vec![args.env.clone()],
            app: vec![args.app.clone()],
            audit_log: Vec::new(),
            show_suppressed: false,
        };
        let (_, drifted) = drift::run_with_objects(&repo, &engine, &*ctx.clusters()?, ctx.redactor(), &req).await?;
        let annotated = drift::acknowledge(&client, &drifted, &args.reason, &args.expires)
            .await
            .map_err(|e| ToolError::new(e.to_string()))?;
        if annotated.is_empty() {
            return Err(ToolError::new(format!("{} has no drift in {} to acknowledge", args.app, args.env)));
        }
        Ok(Output { annotated })
    }
}
