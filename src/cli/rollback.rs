//! `agentops rollback`: from an error spike to a verified recovery and an incident report.
//! Without `--yes` the plan (evidence, culprit, target, follow-ups, actions) is printed and
//! nothing is written; with `--yes` the executor runs `git_revert` (revert + report commit,
//! push), `argocd_sync` and `rollback_verify` (checks, results recorded in the report),
//! journaled, stopping at the first step that fails.

use std::process::ExitCode;

use serde_json::{Value, json};

use crate::error::{Error, Result};
use crate::exec::Executor;
use crate::exec::{Plan, Step};
use crate::tools::ToolRegistry;
use crate::workflows::rollback::{self, RevertOutcome, RollbackPlan, RollbackRequest, VerifyOutcome, report};

use super::Global;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The app to roll back.
    #[arg(long)]
    pub app: String,
    /// The environment.
    #[arg(long)]
    pub env: String,
    /// Target revision (default: the latest earlier deploy that was healthy).
    #[arg(long, value_name = "REV")]
    pub to: Option<String>,
    /// Only deploys and commits this recent count as evidence (30m, 6h, 2d, 1w).
    #[arg(long, value_name = "DURATION")]
    pub since: Option<String>,
    /// Error ratio (0..1) at or above which a deploy is unhealthy (default: config, 0.05).
    #[arg(long)]
    pub threshold: Option<f64>,
    /// Seconds verification waits (default: config, 300).
    #[arg(long, value_name = "SECONDS")]
    pub verify_timeout: Option<u64>,
    /// Revert, sync, verify and report (without it: print the plan only).
    #[arg(long)]
    pub yes: bool,
    /// With --yes: revert only if the plan's fingerprint is still this one (the one a run
    /// without --yes printed).
    #[arg(long, value_name = "FINGERPRINT")]
    pub expect: Option<String>,
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Text,
    Json,
}

impl Args {
    fn request(&self) -> RollbackRequest {
        RollbackRequest {
            app: self.app.clone(),
            env: self.env.clone(),
            to: self.to.clone(),
            since: self.since.clone(),
            threshold: self.threshold,
            verify_timeout_seconds: self.verify_timeout,
            expect: self.expect.clone(),
        }
    }
}

/// The executing steps of a ready plan.
pub fn steps(registry: &ToolRegistry, plan: &RollbackPlan) -> std::result::Result<Plan, crate::tools::ToolError> {
    let req = &plan.request;
    let mut p = Plan::new(format!("rollback --app {} --env {}", req.app, req.env));
    let target = plan.target.as_ref().map(|t| t.short.clone()).unwrap_or_default();
    let reverted: Vec<&str> = plan.culprit_commits.iter().map(|c| c.short.as_str()).collect();
    // The revert re-plans; it writes only if that plan is the one printed above.
    let mut revert = serde_json::to_value(req).unwrap_or(Value::Null);
    revert["expect"] = json!(req.expect.as_ref().unwrap_or(&plan.fingerprint));
    p.steps.push(Step::new(
        registry,
        "git_revert",
        revert,
        format!(
            "Revert {} in the files of {} (back to {target}) with the incident report",
            reverted.join(" "),
            plan.overlay
        ),
    )?);
    let wait = req.verify_timeout_seconds.unwrap_or(300);
    p.steps.push(Step::new(
        registry,
        "argocd_sync",
        json!({"env": req.env, "name": plan.state.application, "namespace": plan.state.namespace, "wait_seconds": wait}),
        format!("Sync {} in {}", plan.state.application, req.env),
    )?);
    let mut verify = json!({"app": req.app, "env": req.env});
    if let Some(t) = req.threshold {
        verify["threshold"] = json!(t);
    }
    if let Some(t) = req.verify_timeout_seconds {
        verify["verify_timeout_seconds"] = json!(t);
    }
    p.steps.push(Step::new(
        registry,
        "rollback_verify",
        verify,
        "Verify the recovery and record it in the incident report",
    )?);
    Ok(p)
}

/// What running a ready plan did.
#[derive(Debug, Default)]
pub struct Executed {
    pub revert: Option<RevertOutcome>,
    pub verified: Option<VerifyOutcome>,
    /// The first step that failed, was denied or refused: `tool: why`.
    pub failure: Option<String>,
    /// A write was denied or refused (not a failure of the tool).
    pub declined: bool,
}

impl Executed {
    /// A plan that could not be run at all (its steps could not be built).
    pub fn could_not_run(e: Error) -> Executed {
        Executed { failure: Some(e.to_string()), ..Executed::default() }
    }

    /// Recovered, or done with recovery unknown (the error rate could not be read).
    pub fn succeeded(&self) -> bool {
        self.failure.is_none()
            && matches!(self.verified.as_ref().map(|v| v.verification.verdict.as_str()), Some("recovered" | "unknown"))
    }
}

/// Runs a ready plan exactly as shown (revert bound to its fingerprint, sync, verify) through
/// `exec`, whose policy and approver decide each write; with `text`, each result is printed
/// as it comes. `request` names who asked in the journal (default: the rollback command).
pub async fn execute(exec: &Executor, plan: &RollbackPlan, request: Option<String>, text: bool) -> Result<Executed> {
    let mut exec_plan = steps(exec.registry(), plan).map_err(|e| Error::Usage(e.public))?;
    if let Some(r) = request {
        exec_plan.request = r;
    }
    let mut revert: Option<RevertOutcome> = None;
    let mut verified: Option<VerifyOutcome> = None;
    let mut failure: Option<String> = None;
    let mut declined = false;
    exec.run_each(&exec_plan, |step, r| {
        declined |= matches!(r.decision, crate::exec::Decision::Denied | crate::exec::Decision::Refused);
        match (&r.output, &r.error) {
            (Some(out), _) if step.tool == "git_revert" => {
                if let Ok(o) = serde_json::from_value::<RevertOutcome>(out.clone()) {
                    if text {
                        println!("Reverted {} as {} (report {})", o.reverted.join(" "), o.short, o.report);
                        if let Some(p) = &o.pushed {
                            println!("Pushed to {p}");
                        }
                    }
                    revert = Some(o);
                }
            }
            (Some(out), _) if step.tool == "argocd_sync" && text => {
                let phase = out.pointer("/operation_state/phase").and_then(Value::as_str).unwrap_or("?");
                println!("Synced {}: {phase}", plan.state.application);
            }
            (Some(out), _) if step.tool == "rollback_verify" => {
                if let Ok(o) = serde_json::from_value::<VerifyOutcome>(out.clone()) {
                    if text {
                        print!("{}", report::verification_text(&o.verification));
                        if let (Some(rep), Some(c)) = (&o.report, &o.commit) {
                            println!("Incident report: {rep} (verification recorded in {})", &c[..c.len().min(7)]);
                        }
                    }
                    verified = Some(o);
                }
            }
            (_, Some(e)) if failure.is_none() => failure = Some(format!("{}: {e}", step.tool)),
            _ => {}
        }
    })
    .await;
    Ok(Executed { revert, verified, failure, declined })
}

/// Exit 0 when planned (and, with `--yes`, recovered or recovery unknown), 1 when blocked,
/// stopped or not recovered.
pub async fn run(global: &Global, args: Args) -> Result<ExitCode> {
    let req = args.request();
    if let Some(s) = &req.since {
        rollback::parse_duration(s).map_err(Error::Usage)?;
    }
    let ctx = global.ctx();
    let plan = rollback::plan(&ctx, &req).await?;
    let text = args.format == Format::Text;
    if text {
        print!("{}", report::text(&plan));
    }
    if !args.yes || !plan.is_ready() {
        if !text {
            println!("{}", serde_json::to_string_pretty(&json!({"plan": plan})).unwrap_or_default());
        } else if plan.is_ready() {
            eprintln!(
                "Nothing was written. Run again with --yes to revert, sync, verify and write the incident report; add --expect {} to revert only this plan.",
                plan.fingerprint
            );
        }
        return Ok(if plan.is_ready() { ExitCode::SUCCESS } else { ExitCode::from(1) });
    }

    let exec = super::session::write_executor(&ctx, true);
    if text {
        println!();
    }
    let Executed { revert, verified, failure, .. } = execute(&exec, &plan, None, text).await?;
    if !text {
        let v = json!({"plan": plan, "revert": revert, "verification": verified, "error": failure});
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
    }
    if let Some(f) = &failure {
        eprintln!("rollback: {f}");
        if revert.is_some() {
            eprintln!(
                "The revert is committed; finish by syncing {} and checking it (agentops tools call argocd_sync ...).",
                plan.state.application
            );
        }
        return Ok(ExitCode::from(1));
    }
    match verified.as_ref().map(|v| v.verification.verdict.as_str()) {
        Some("recovered") => Ok(ExitCode::SUCCESS),
        Some("unknown") => {
            eprintln!("rollback: done, but recovery is UNKNOWN: the error rate could not be read. Check it yourself.");
            Ok(ExitCode::SUCCESS)
        }
        _ => {
            eprintln!(
                "rollback: VERIFICATION FAILED: {} in {} did not recover. See the advice above.",
                req.app, req.env
            );
            Ok(ExitCode::from(1))
        }
    }
}
