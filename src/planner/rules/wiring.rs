//! Planner wiring for `WORKFLOW_STEPS`: arguments and summaries of the steps that need more
//! than the request's fields.

/// The rollback's steps from a typed request. The Application is named `<app>-<env>`, the
/// convention of Argo CD app-of-apps repos; the CLI (`agentops rollback`) takes the name from
/// the repo instead.
pub mod rollback {
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

/// The commit's step.
pub mod commit {
    use crate::planner::rules::WorkflowRequest;

    /// The plan step's summary for `/commit`.
    pub fn plan_summary(req: &WorkflowRequest) -> String {
        match req {
            WorkflowRequest::Commit { reason: Some(r), .. } => format!("Commit the staged change ({r})"),
            _ => "Commit the staged change with the drafted message".to_string(),
        }
    }
}
