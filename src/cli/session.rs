//! What `ask` and `chat` share: the planner flags, the single hook where the LLM planner
//! plugs in, the executor set-up, and how plans and step results are shown.

use std::io::IsTerminal;
use std::sync::Arc;

use super::terminal::StdinApprover;
use crate::error::{Error, Result};
use crate::exec::{Approver, Decision, Executor, Journal, Policy, StepResult};
use crate::exec::{Plan, Step};
use crate::planner::rules::RepoFacts;
use crate::repo::Repo;
use crate::report::{self, Format};
use crate::tools::{Effect, ToolRegistry};
use crate::workflows::Ctx;
use crate::workflows::validate::ValidationReport;

/// Which planner turns requests into plans.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PlannerChoice {
    /// Slash commands and common phrasings only; no network.
    Rules,
    /// Every request goes to the LLM planner.
    Llm,
    /// The rules first; the LLM planner for what they cannot map.
    Auto,
}

#[derive(Debug, Clone, clap::Args)]
pub struct PlannerArgs {
    /// Which planner to use.
    #[arg(long, value_enum, default_value = "auto")]
    pub planner: PlannerChoice,
    /// OpenAI-compatible endpoint for the LLM planner (OpenAI, Azure, vLLM, llama.cpp, Ollama).
    #[arg(long, value_name = "URL")]
    pub llm_base_url: Option<String>,
    /// Model name for the LLM planner.
    #[arg(long, value_name = "M")]
    pub model: Option<String>,
}

/// How writes are treated in this session.
#[derive(Debug, Clone, clap::Args)]
pub struct PolicyArgs {
    /// Print the plan and run only its read-only steps.
    #[arg(long)]
    pub dry_run: bool,
    /// Approve every write step without asking.
    #[arg(long)]
    pub yes: bool,
    /// Refuse every write step.
    #[arg(long)]
    pub read_only: bool,
}

impl PolicyArgs {
    pub fn policy(&self) -> Policy {
        Policy { yes: self.yes, dry_run: self.dry_run, read_only: self.read_only }
    }
}

/// What the LLM planner did: the calls it made (each already through the executor, so
/// approval, modes and the journal applied) and their results.
#[derive(Debug, Clone)]
pub struct LlmPlanned {
    pub plan: Plan,
    pub results: Vec<StepResult>,
    /// The model's closing answer, redacted.
    pub answer: Option<String>,
}

/// The one place the LLM planner plugs in (`--planner llm`, and `auto` when the rules
/// cannot map a request): routed to the agent of the request's workflow (the rules
/// planner's intent detection, else one model turn that picks among the workflow names),
/// an OpenAI-compatible endpoint from the flags, the environment or `.agentops.yaml`
/// (`llm:`), every proposed call through `executor`. Each model turn's tokens go to stderr
/// and the journal. With `AGENTOPS_LLM_CASSETTES=DIR` the model is replayed from (or, with
/// `AGENTOPS_LLM_RECORD=1`, recorded to) cassettes.
pub async fn plan_with_llm(request: &str, args: &PlannerArgs, executor: &Executor) -> Result<LlmPlanned> {
    use crate::llm::settings::{LlmFlags, LlmSettings};
    use crate::llm::{CassetteLlm, LlmClient, OpenAiClient};
    let root = executor.ctx().repo_root().to_path_buf();
    let config = crate::config::Config::load(&root)?;
    let flags = LlmFlags { base_url: args.llm_base_url.clone(), model: args.model.clone(), ..LlmFlags::default() };
    if args.planner == PlannerChoice::Auto
        && !LlmSettings::configured(&flags, config.llm.as_ref(), &|k| std::env::var(k).ok())
    {
        return Err(Error::Usage(
            "no LLM planner configured (--llm-base-url/--model, OPENAI_BASE_URL, or llm: in .agentops.yaml); use a slash command or one of the phrasings above".into(),
        ));
    }
    let mut settings = LlmSettings::resolve(&flags, config.llm.as_ref())?;
    if let Some(dir) = std::env::var_os("AGENTOPS_LLM_CASSETTES") {
        // a replay sends what the recording sent: the constrained mode in effect then
        // (`auto` resolves by endpoint, and a replay has none)
        let file = std::path::Path::new(&dir).join("constrained");
        if crate::llm::cassette::recording_requested(&|k| std::env::var(k).ok()) {
            let mode = serde_json::to_value(settings.constrained_mode()).unwrap_or_default();
            if let Some(m) = mode.as_str() {
                let _ = std::fs::create_dir_all(&dir).and_then(|()| std::fs::write(&file, format!("{m}\n")));
            }
        } else if let Ok(text) = std::fs::read_to_string(&file)
            && let Ok(mode) = serde_json::from_value(serde_json::Value::String(text.trim().to_string()))
        {
            settings.constrained = mode;
        }
    }
    let agents = crate::agents::Agents::load(Some(&root), executor.registry())?;
    let client: Box<dyn LlmClient> = match std::env::var_os("AGENTOPS_LLM_CASSETTES") {
        Some(dir) => {
            let s = settings.clone();
            let redactor = executor.ctx().clone();
            Box::new(
                CassetteLlm::from_env(std::path::Path::new(&dir), move || {
                    Ok(Box::new(OpenAiClient::new(&s)?) as Box<dyn LlmClient>)
                })?
                .with_scrubber(move |t| redactor.redactor().scrub(t)),
            )
        }
        None => Box::new(OpenAiClient::new(&settings)?),
    };
    let print_turn = |t: &crate::exec::ModelTurn| eprintln!("{}", turn_line(t, settings.prompt_budget));
    let repo = load_repo(executor.ctx()).await?;
    let workflow = match crate::planner::rules::RulesPlanner::new(facts(&repo)).interpret(request) {
        crate::planner::rules::Interpretation::Request(draft) => Some(draft.workflow),
        _ => {
            let redactor = executor.ctx().redactor();
            let routed =
                crate::planner::llm::route_with_model(client.as_ref(), &agents, request, &settings, redactor).await?;
            executor.record_turn(&redactor.scrub(request), &routed.turn);
            print_turn(&routed.turn);
            routed.workflow
        }
    };
    let Some(workflow) = workflow else {
        return Err(Error::Usage(format!(
            "the model could not tell which workflow this request is for; say it with one of: {}",
            crate::planner::rules::Workflow::ALL.iter().map(|w| w.name()).collect::<Vec<_>>().join(", ")
        )));
    };
    let agent = agents.require(crate::planner::llm::agent_for(workflow))?;
    let run =
        crate::planner::llm::plan_and_run_observed(client.as_ref(), executor, agent, request, &settings, &print_turn)
            .await?;
    if let Some(why) = &run.stopped {
        eprintln!("LLM planner stopped: {why}");
    }
    Ok(LlmPlanned { plan: run.plan, results: run.results, answer: run.answer })
}

/// One model turn on one line (stderr): agent, tokens as the endpoint counted them, the
/// estimate of the system prompt and catalog against the budget, calls and invalid calls.
pub fn turn_line(t: &crate::exec::ModelTurn, budget: u64) -> String {
    format!(
        "llm: {} turn {}: {} prompt + {} completion tokens (system prompt and tools ≈{} of {} budgeted), {} call{}{}, {:.1}s{}",
        t.agent,
        t.turn,
        t.prompt_tokens,
        t.completion_tokens,
        t.catalog_tokens,
        budget,
        t.calls,
        if t.calls == 1 { "" } else { "s" },
        if t.invalid_calls > 0 { format!(" ({} invalid)", t.invalid_calls) } else { String::new() },
        t.duration_ms as f64 / 1000.0,
        if t.finish_reason.as_deref() == Some("length") { ", cut at the output limit" } else { "" },
    )
}

/// The repo, loaded off the async runtime (this also teaches the redactor its secrets).
pub async fn load_repo(ctx: &Ctx) -> Result<Repo> {
    let c = ctx.clone();
    tokio::task::spawn_blocking(move || c.load_repo()).await.map_err(|e| Error::Internal(e.to_string()))?
}

/// The executor for a session: the built-in tools, the repo's journal.
pub fn executor(ctx: &Ctx, repo: &Repo, policy: Policy, approver: Arc<dyn Approver>) -> Executor {
    Executor::new(Arc::new(ToolRegistry::builtin()), ctx.clone(), policy, approver, Some(Journal::for_repo(&repo.root)))
}

/// The executor a write subcommand uses: the built-in tools, the journal in the repo, and
/// `--yes` as the approval (without it, asked on a terminal).
pub fn write_executor(ctx: &Ctx, yes: bool) -> Executor {
    let journal = Some(Journal::for_repo(ctx.repo_root()));
    Executor::new(
        Arc::new(ToolRegistry::builtin()),
        ctx.clone(),
        Policy { yes, ..Policy::default() },
        stdin_approver(),
        journal,
    )
}

/// Runs one tool as a one-step plan through [`write_executor`]: approval, journal, redaction.
pub async fn run_one(
    ctx: &Ctx,
    tool: &str,
    args: serde_json::Value,
    summary: String,
    request: String,
    yes: bool,
) -> Result<StepResult> {
    let exec = write_executor(ctx, yes);
    let step = crate::exec::Step::new(exec.registry(), tool, args, summary).map_err(|e| Error::Usage(e.public))?;
    let mut plan = Plan::new(request);
    plan.steps.push(step);
    exec.run(&plan).await.into_iter().next().ok_or_else(|| Error::Internal(format!("{tool} did not run")))
}

pub fn stdin_approver() -> Arc<dyn Approver> {
    Arc::new(StdinApprover)
}

pub fn facts(repo: &Repo) -> RepoFacts {
    RepoFacts::from_repo(repo)
}

pub fn color() -> bool {
    std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none()
}

/// The plan as people read it.
pub fn render_plan(plan: &Plan) -> String {
    let mut s =
        format!("Plan {} ({} step{}):\n", plan.hash(), plan.steps.len(), if plan.steps.len() == 1 { "" } else { "s" });
    for (i, step) in plan.steps.iter().enumerate() {
        s.push_str(&format!("  {}. {} [{:?}] {}", i + 1, step.tool, step.effect, step.summary));
        // e.g. "(expect: step 1's fingerprint)": the write acts only on what step 1 showed
        let from: Vec<String> = step
            .bind
            .iter()
            .map(|b| format!("{}: step {}'s {}", b.arg, b.step + 1, b.pointer.trim_start_matches('/')))
            .collect();
        if !from.is_empty() {
            s.push_str(&format!(" ({})", from.join(", ")));
        }
        s.push('\n');
    }
    s
}

/// One step's result: a status line, then the output (a validation report as text).
pub fn render_result(step: &Step, r: &StepResult, color: bool) -> String {
    let mark = match (&r.decision, r.ok) {
        (Decision::Skipped, _) => "-",
        (_, true) => "✓",
        (_, false) => "✗",
    };
    let approval = match r.decision {
        Decision::Auto => "read-only",
        Decision::Approved => "approved",
        Decision::ApprovedByFlag => "approved by --yes",
        Decision::Denied => "denied",
        Decision::Refused => "refused (read-only mode)",
        Decision::Skipped => "skipped (dry run)",
        Decision::NotRun => "not run",
    };
    let mut s = format!("{mark} {} ({approval})", step.tool);
    if let Some(e) = &r.error {
        s.push_str(&format!(": {e}"));
    }
    s.push('\n');
    if let Some(out) = &r.output {
        if step.tool == "validate"
            && let Ok(report) = serde_json::from_value::<ValidationReport>(out.clone())
        {
            s.push_str(&report::render(&report, Format::Text, color, false));
        } else if step.tool == "drift_report"
            && let Ok(d) = serde_json::from_value::<crate::workflows::drift::DriftReport>(out.clone())
        {
            s.push_str(&report::drift::text(&d));
        } else if matches!(step.tool.as_str(), "render_overlay" | "create_app")
            && let Ok(plan) = serde_json::from_value::<crate::workflows::create::CreatePlan>(out.clone())
        {
            s.push_str(&report::create::summary(&plan));
        } else if step.tool.starts_with("harmonize_")
            && let Ok(plan) = serde_json::from_value::<crate::workflows::harmonize::HarmonizePlan>(out.clone())
        {
            s.push_str(&report::harmonize::text(&plan));
        } else if step.tool == "dependency_scan"
            && let Ok(scan) = serde_json::from_value::<crate::workflows::migrate::Scan>(out.clone())
        {
            s.push_str(&report::migrate::scan_text(&scan));
        } else if step.tool == "dependency_graph"
            && let Ok(o) = serde_json::from_value::<crate::tools::dependency_graph::Output>(out.clone())
        {
            let text = report::migrate::text(&o.graph, &o.feasibility, &o.plan, o.check.as_ref(), None);
            s.push_str(&text.lines().map(|l| format!("  {l}\n")).collect::<String>());
        } else {
            s.push_str(&result_body(&step.tool, out));
        }
    }
    s
}

/// The text of a tool's output that has no report of its own: a line or two for the
/// workflow steps people approve, else one line per field.
pub fn result_body(tool: &str, out: &serde_json::Value) -> String {
    use crate::workflows::rollback;
    let first = |v: &serde_json::Value| v.as_str().unwrap_or("").lines().next().unwrap_or("").to_string();
    let body = match tool {
        "rollback_plan" => {
            serde_json::from_value::<rollback::RollbackPlan>(out.clone()).ok().map(|p| rollback::report::text(&p))
        }
        "rollback_verify" => serde_json::from_value::<rollback::VerifyOutcome>(out.clone()).ok().map(|v| {
            let mut s = rollback::report::verification_text(&v.verification);
            if let Some(p) = &v.report {
                s.push_str(&format!("  incident report: {p}\n"));
            }
            s
        }),
        // the summary was the plan step's to show; here what was written
        "write_doc" => Some(format!(
            "  wrote {} ({} bytes){}{}\n",
            out["path"].as_str().unwrap_or("?"),
            out["bytes"],
            out["record"].as_str().map(|r| format!(" and its record {r}")).unwrap_or_default(),
            out["commit"].as_str().map(|c| format!(", committed {}", &c[..c.len().min(7)])).unwrap_or_default()
        )),
        "git_revert" => Some(format!(
            "  reverted {} as {} ({}); incident report {}\n",
            list(&out["reverted"]),
            out["short"].as_str().unwrap_or("?"),
            list(&out["files"]),
            out["report"].as_str().unwrap_or("none")
        )),
        "argocd_sync" => Some(format!(
            "  {} in {}: {}: {}\n",
            out["name"].as_str().unwrap_or("?"),
            out["env"].as_str().unwrap_or("?"),
            out.pointer("/operation_state/phase").and_then(|v| v.as_str()).unwrap_or("?"),
            out.pointer("/operation_state/message").and_then(|v| v.as_str()).unwrap_or("")
        )),
        "drift_capture" => Some(capture_text(out)),
        // the whole message: it is what the commit step will use
        "draft_commit_message" => {
            Some(out["message"].as_str().unwrap_or("").lines().map(|l| format!("  | {l}\n")).collect::<String>())
        }
        "commit" => Some(format!(
            "  committed {}: {}\n",
            out["commit"].as_str().map_or("?", |c| &c[..c.len().min(7)]),
            first(&out["message"])
        )),
        _ => None,
    };
    body.unwrap_or_else(|| outline(out))
}

/// What a capture wrote, where it committed, whether the checkout moved, and (uncommitted)
/// what validate says of the captured patch.
fn capture_text(out: &serde_json::Value) -> String {
    let mut s = format!("  wrote {}\n", list(&out["files"]));
    match (out["branch"].as_str(), out["commit"].as_str()) {
        (Some(b), Some(c)) if out["switched"] == serde_json::json!(true) => s.push_str(&format!(
            "  committed {} on the new branch {b}; switched to it (back: git switch -)\n",
            &c[..c.len().min(7)]
        )),
        (Some(b), Some(c)) => s.push_str(&format!(
            "  committed {} on the new branch {b}; stayed on the current branch (git switch {b} to see it)\n",
            &c[..c.len().min(7)]
        )),
        _ => s.push_str("  not committed (--no-commit): the files are in the working tree\n"),
    }
    for f in out["validation"].as_array().into_iter().flatten() {
        s.push_str(&format!(
            "  error: {}: {}: {} ({})\n",
            f["file"].as_str().unwrap_or("?"),
            f["check"].as_str().unwrap_or("?"),
            f["message"].as_str().unwrap_or(""),
            f["object"].as_str().unwrap_or("-")
        ));
    }
    s
}

/// A JSON array of strings as `a, b`.
fn list(v: &serde_json::Value) -> String {
    v.as_array().map(|a| a.iter().filter_map(|x| x.as_str()).collect::<Vec<_>>().join(", ")).unwrap_or_default()
}

/// One line per top-level field: scalars as they are, arrays and objects by their size
/// (`--format json` has the whole output).
fn outline(v: &serde_json::Value) -> String {
    use serde_json::Value;
    let Some(map) = v.as_object() else { return format!("  {v}\n") };
    let mut s = String::new();
    for (k, x) in map {
        let shown = match x {
            Value::Array(a) if a.is_empty() => "none".to_string(),
            Value::Array(a) if a.iter().all(Value::is_string) && a.len() <= 8 => list(x),
            Value::Array(a) => format!("{} item{}", a.len(), if a.len() == 1 { "" } else { "s" }),
            Value::Object(o) => {
                let keys: Vec<&str> = o.keys().map(String::as_str).take(6).collect();
                format!("{{{}{}}}", keys.join(", "), if o.len() > 6 { ", …" } else { "" })
            }
            Value::String(t) => t.lines().next().unwrap_or("").to_string(),
            other => other.to_string(),
        };
        s.push_str(&format!("  {k}: {shown}\n"));
    }
    s
}

/// True when no write step was denied or refused (and something ran).
pub fn approved(results: &[StepResult]) -> bool {
    !results.iter().any(|r| r.effect != Effect::ReadOnly && matches!(r.decision, Decision::Denied | Decision::Refused))
}
