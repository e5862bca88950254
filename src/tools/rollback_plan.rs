//! `rollback_plan`: the evidence, culprit, target, risks and actions of rolling an app back
//! in one environment. Reads only.

use super::{Effect, Tool, ToolCtx, ToolError};
use crate::workflows::rollback::{self, RollbackPlan, RollbackRequest};

pub struct RollbackPlanTool;

impl Tool for RollbackPlanTool {
    type Args = RollbackRequest;
    type Output = RollbackPlan;

    fn name(&self) -> &'static str {
        "rollback_plan"
    }
    fn description(&self) -> &'static str {
        "Plan the rollback of an app in one environment: Argo CD deploy history with the error rate while each deploy was live, the culprit deploy and commits (restricted to the app's files), the last healthy target, what a revert does not undo (migrations, volumes, CRDs, removed keys, namespaces), the actions and the expected downtime. Writes nothing."
    }
    fn effect(&self) -> Effect {
        Effect::ReadOnly
    }
    fn exit_code(&self, output: &RollbackPlan) -> u8 {
        u8::from(!output.is_ready())
    }
    async fn call(&self, ctx: &ToolCtx, args: RollbackRequest) -> Result<RollbackPlan, ToolError> {
        rollback::plan(ctx, &args).await
    }
}

/// Planner wiring (`WORKFLOW_STEPS`): the rollback's steps from a typed request. The
/// Application is named `<app>-<env>`, the convention of Argo CD app-of-apps repos; the CLI
/// (`agentops rollback`) takes the name from the repo instead.
pub mod steps {
    use serde_json::{Value, json};

    use crate::planner::rules::WorkflowRequest;

    fn app_env(r: &WorkflowRequest) -> (String, String) {
        match r {
            WorkflowRequest::Rollback { app, env, .. } => (app.clone(), env.clone()),
            _ => (String::new(), String::new()),
        }
    }

    pub fn sync_args(r: &WorkflowRequest) -> Value {
        let (app, env) = app_env(r);
        json!({"env": env, "name": format!("{app}-{env}")})
    }

    pub fn verify_args(r: &WorkflowRequest) -> Value {
        let (app, env) = app_env(r);
        json!({"app": app, "env": env})
    }

    pub fn revert_summary(r: &WorkflowRequest) -> String {
        format!("Revert the culprit commits in git with an incident report: {}", crate::planner::rules::summary(r))
    }

    pub fn sync_summary(r: &WorkflowRequest) -> String {
        let (app, env) = app_env(r);
        format!("Sync {app}-{env} in {env} (Argo CD operation.sync)")
    }

    pub fn verify_summary(r: &WorkflowRequest) -> String {
        let (app, env) = app_env(r);
        format!("Verify the recovery of {app} in {env} and record it in the incident report")
    }
}
