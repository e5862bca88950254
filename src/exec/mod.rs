//! The executor: the only code path that runs tools for a plan. Each step's effect comes
//! from the tool's own declaration in the registry (never from the plan, the model or any
//! text): read-only steps run; repo writes need approval (interactive, scripted, or
//! `--yes`); cluster writes need approval too. In read-only mode every write is refused; in
//! dry-run mode writes are skipped. Every executed or decided step is journaled.

pub(crate) mod journal;
pub(crate) mod plan;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tracing::Instrument;

use crate::agents::{Agent, Approval, Source};
use crate::tools::{Effect, ToolRegistry};
use crate::workflows::Ctx;
pub use journal::{Entry, Journal, ModelTurn};
pub use plan::{Bind, Plan, Step};

/// How writes are treated.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Policy {
    /// Approve every write without asking (`--yes`).
    pub yes: bool,
    /// Run only read-only steps; print what the others would do (`--dry-run`).
    pub dry_run: bool,
    /// Refuse every write (`--read-only`, MCP without `--allow-writes`).
    pub read_only: bool,
}

impl Policy {
    /// The policy for a step an agent proposes, starting from the session's. Only tightens,
    /// except that a built-in `yes` agent approves writes up front.
    pub fn for_agent(self, agent: &Agent) -> Policy {
        match agent.approval {
            Approval::ReadOnly => Policy { read_only: true, ..self },
            Approval::Yes if agent.source == Source::Builtin => Policy { yes: true, ..self },
            _ => self,
        }
    }
}

/// Asks a person (or a script standing in for one) whether a step may run.
pub trait Approver: Send + Sync {
    fn approve(&self, step: &Step) -> bool;
}

/// Answers from a queue (tests, evals, scripted chat); denies when the queue is empty.
#[derive(Default)]
pub struct ScriptedApprover {
    answers: Mutex<VecDeque<bool>>,
    asked: Mutex<Vec<String>>,
}

impl ScriptedApprover {
    pub fn new(answers: impl IntoIterator<Item = bool>) -> ScriptedApprover {
        ScriptedApprover { answers: Mutex::new(answers.into_iter().collect()), asked: Mutex::default() }
    }

    /// The tools it was asked about, in order.
    pub fn asked(&self) -> Vec<String> {
        self.asked.lock().map(|a| a.clone()).unwrap_or_default()
    }
}

impl Approver for ScriptedApprover {
    fn approve(&self, step: &Step) -> bool {
        if let Ok(mut a) = self.asked.lock() {
            a.push(step.tool.clone());
        }
        self.answers.lock().ok().and_then(|mut q| q.pop_front()).unwrap_or(false)
    }
}

/// What was decided for a step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    /// Read-only: runs without asking.
    Auto,
    /// Approved by a person (or a scripted answer).
    Approved,
    /// Approved up front with `--yes`.
    ApprovedByFlag,
    Denied,
    /// Not allowed in this mode (read-only).
    Refused,
    /// Dry run: not executed.
    Skipped,
    /// An earlier step failed or was denied.
    NotRun,
}

impl Decision {
    pub fn runs(&self) -> bool {
        matches!(self, Decision::Auto | Decision::Approved | Decision::ApprovedByFlag)
    }

    fn label(&self) -> &'static str {
        match self {
            Decision::Auto => "auto",
            Decision::Approved => "approved",
            Decision::ApprovedByFlag => "approved (--yes)",
            Decision::Denied => "denied",
            Decision::Refused => "refused",
            Decision::Skipped => "skipped (dry run)",
            Decision::NotRun => "not run",
        }
    }
}

/// The outcome of one step.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StepResult {
    pub tool: String,
    pub effect: Effect,
    pub decision: Decision,
    pub ok: bool,
    /// The tool's output (redacted), when it ran and succeeded.
    pub output: Option<Value>,
    /// What went wrong, as the model may see it.
    pub error: Option<String>,
    pub duration_ms: u64,
    /// The exit code the step's output calls for ([`crate::tools::Tool::exit_code`]: 1
    /// findings, 2 could not check); 0 when clean or not run.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub exit_code: u8,
}

fn is_zero(n: &u8) -> bool {
    *n == 0
}

/// The exit code of a request's results, by the rule every command follows: 2 when a step
/// could not check what it was asked (its output says so), 1 when a step failed, was denied
/// or refused, or reported findings, else 0.
pub fn exit_code(results: &[StepResult]) -> u8 {
    let worst = results.iter().map(|r| r.exit_code).max().unwrap_or(0);
    if worst >= 2 {
        2
    } else if worst == 1 || results.iter().any(|r| !r.ok) {
        1
    } else {
        0
    }
}

/// Runs plans and steps.
pub struct Executor {
    registry: Arc<ToolRegistry>,
    ctx: Ctx,
    policy: Policy,
    approver: Arc<dyn Approver>,
    journal: Option<Journal>,
}

impl Executor {
    pub fn new(
        registry: Arc<ToolRegistry>,
        ctx: Ctx,
        policy: Policy,
        approver: Arc<dyn Approver>,
        journal: Option<Journal>,
    ) -> Executor {
        Executor { registry, ctx, policy, approver, journal }
    }

    pub fn registry(&self) -> &ToolRegistry {
        &self.registry
    }

    pub fn ctx(&self) -> &Ctx {
        &self.ctx
    }

    pub fn policy(&self) -> Policy {
        self.policy
    }

    /// The effect of a tool as it declares it; unknown tools count as the most dangerous.
    pub fn effect_of(&self, tool: &str) -> Effect {
        self.registry.get(tool).map_or(Effect::WritesCluster, |t| t.effect)
    }

    /// Decides whether a step may run. Only the tool's declared effect and the policy
    /// count.
    pub fn decide(&self, step: &Step) -> Decision {
        match self.effect_of(&step.tool) {
            Effect::ReadOnly => Decision::Auto,
            _ if self.policy.read_only => Decision::Refused,
            _ if self.policy.dry_run => Decision::Skipped,
            _ if self.policy.yes => Decision::ApprovedByFlag,
            _ if self.approver.approve(step) => Decision::Approved,
            _ => Decision::Denied,
        }
    }

    /// Decides and (if allowed) runs one step, and journals it. `tokens` is what the model
    /// spent proposing it, when a model did.
    pub async fn run_step(&self, request: &str, plan_hash: &str, step: &Step, tokens: Option<u64>) -> StepResult {
        let effect = self.effect_of(&step.tool);
        let decision = self.decide(step);
        let started = Instant::now();
        let (ok, output, error, exit_code) = if decision.runs() {
            // the tool's own events (cluster calls, builds) nest under its step
            let span = tracing::info_span!("step", tool = %step.tool);
            match self.registry.call_coded(&self.ctx, &step.tool, step.args.clone()).instrument(span).await {
                Ok((v, code)) => (true, Some(v), None, code),
                Err(e) => (false, None, Some(e.public), 0),
            }
        } else {
            let why = match decision {
                Decision::Denied => "the step was not approved",
                Decision::Refused => "writes are refused in read-only mode",
                Decision::Skipped => "dry run: not executed",
                _ => "not run",
            };
            (decision == Decision::Skipped, None, Some(why.to_string()), 0)
        };
        let result = StepResult {
            tool: step.tool.clone(),
            effect,
            decision,
            ok,
            output,
            error,
            duration_ms: started.elapsed().as_millis() as u64,
            exit_code,
        };
        tracing::info!(
            tool = %step.tool,
            effect = ?effect,
            decision = %result.decision.label(),
            plan_hash = (!plan_hash.is_empty()).then(|| tracing::field::display(plan_hash)),
            ok,
            exit_code,
            duration_ms = result.duration_ms,
            "executor step"
        );
        self.journal(request, plan_hash, step, &result, tokens);
        result
    }

    /// Runs a plan in order. After a step fails or is denied or refused, the rest are not
    /// run (they may depend on it); in a dry run, skipped writes do not stop the plan.
    pub async fn run(&self, plan: &Plan) -> Vec<StepResult> {
        self.run_each(plan, |_, _| {}).await
    }

    /// Runs a plan like [`Executor::run`], handing each result to `each` as soon as it is
    /// known (chat prints results as they come).
    pub async fn run_each(&self, plan: &Plan, mut each: impl FnMut(&Step, &StepResult) + Send) -> Vec<StepResult> {
        let hash = plan.hash();
        let mut out: Vec<StepResult> = Vec::new();
        let mut stopped = false;
        for planned in &plan.steps {
            let not_run = |why: String| StepResult {
                tool: planned.tool.clone(),
                effect: self.effect_of(&planned.tool),
                decision: Decision::NotRun,
                ok: false,
                output: None,
                error: Some(why),
                duration_ms: 0,
                exit_code: 0,
            };
            let outputs: Vec<Option<&Value>> = out.iter().map(|r| r.output.as_ref()).collect();
            let (step, r) = if stopped {
                (planned.clone(), not_run("an earlier step did not succeed".into()))
            } else {
                match planned.resolve(&outputs) {
                    // A dry run skips writes, so a write's output is never there to bind.
                    Err(_) if self.policy.dry_run && self.decide(planned) == Decision::Skipped => {
                        (planned.clone(), self.run_step(&plan.request, &hash, planned, None).await)
                    }
                    Err(why) => (planned.clone(), not_run(why)),
                    Ok(step) => {
                        let r = self.run_step(&plan.request, &hash, &step, None).await;
                        (step, r)
                    }
                }
            };
            stopped = stopped || !r.ok;
            each(&step, &r);
            out.push(r);
        }
        out
    }

    /// Journals one model turn of the LLM planner (nothing without a journal).
    pub fn record_turn(&self, request: &str, turn: &ModelTurn) {
        if let Some(j) = &self.journal
            && let Err(e) = j.append_turn(&crate::time::now_seconds(), &self.ctx.redactor().scrub(request), turn)
        {
            tracing::warn!(error = %e, "journal not written");
        }
    }

    fn journal(&self, request: &str, plan_hash: &str, step: &Step, r: &StepResult, tokens: Option<u64>) {
        let Some(j) = &self.journal else { return };
        let mut args = step.args.clone();
        self.ctx.redactor().redact_value(&mut args);
        let result = match (&r.output, &r.error) {
            (Some(v), _) => journal::summarize(v),
            (None, Some(e)) => e.clone(),
            (None, None) => String::new(),
        };
        let entry = Entry {
            time: crate::time::now_seconds(),
            request: self.ctx.redactor().scrub(request),
            plan_hash: plan_hash.into(),
            tool: step.tool.clone(),
            args,
            effect: format!("{:?}", r.effect),
            approval: r.decision.label().into(),
            ok: r.ok,
            result: self.ctx.redactor().scrub(&result),
            duration_ms: r.duration_ms,
            tokens,
        };
        if let Err(e) = j.append(&entry) {
            tracing::warn!(error = %e, tool = %entry.tool, "journal not written");
        }
    }
}
