//! `agentops ask "REQUEST"`: one request, planned (rules, or the LLM planner), run behind
//! the approval gates, and reported.
//!
//! Exit codes: 0 every step ran and succeeded (or the request was `help`); 1 a step failed,
//! was denied or refused, or the request was refused, not recognized by `--planner rules`, or
//! names a workflow not available yet; 2 usage: missing, invalid or ambiguous slots (listed in
//! one message), no LLM planner configured for a request the rules cannot map, a repo that
//! does not load.

use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;

use serde_json::json;

use crate::error::{Error, Result};
use crate::exec::Plan;
use crate::exec::StepResult;
use crate::planner::rules::{self, Interpretation, Outcome, Prompter, RulesPlanner, SlotFiller};

use super::Global;
use super::session::{self, PlannerArgs, PlannerChoice, PolicyArgs};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AskFormat {
    Text,
    /// `{"plan": [steps], "results": [step results], "approved": bool}`
    Json,
}

#[derive(Debug, clap::Args)]
#[command(after_help = "Exit codes: 0 every step ran and succeeded; 1 a step failed, was denied or refused, or the \
request was refused, not recognized (--planner rules) or names a workflow not available yet; 2 missing, invalid or \
ambiguous details (all listed in one message), no LLM planner configured, or a usage error.")]
pub struct Args {
    /// The request: a slash command (`/validate-infra env=staging`) or plain words
    /// ("validate staging"). Quote it; several words are joined.
    #[arg(required = true, value_name = "REQUEST")]
    pub request: Vec<String>,
    #[command(flatten)]
    pub policy: PolicyArgs,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    pub format: AskFormat,
    #[command(flatten)]
    pub planner: PlannerArgs,
}

/// Asks on the terminal (only when stdin is one and the output is text).
struct TerminalPrompter;

impl Prompter for TerminalPrompter {
    fn ask(&mut self, question: &str) -> Option<String> {
        let mut err = std::io::stderr();
        let _ = write!(err, "{question} ");
        let _ = err.flush();
        let mut line = String::new();
        match std::io::stdin().lock().read_line(&mut line) {
            Ok(0) | Err(_) => None,
            Ok(_) => Some(line.trim_end_matches(['\n', '\r']).to_string()),
        }
    }
    fn tell(&mut self, message: &str) {
        eprintln!("  {message}");
    }
}

pub async fn run(global: &Global, args: Args) -> Result<ExitCode> {
    let text = args.request.join(" ");
    let json = args.format == AskFormat::Json;
    let not_planned = |message: &str, code: u8| -> ExitCode {
        if json {
            println!("{}", json!({"plan": [], "results": [], "approved": false}));
        }
        eprintln!("{message}");
        ExitCode::from(code)
    };
    // refused before anything else happens, whichever planner is asked for
    if let Some(reason) = rules::refusal(&text) {
        return Ok(not_planned(&format!("refused: {reason}"), 1));
    }

    let ctx = global.ctx();
    let repo = session::load_repo(&ctx).await?;
    let planner = RulesPlanner::new(session::facts(&repo));
    let executor = session::executor(&ctx, &repo, args.policy.policy(), session::stdin_approver());
    // what is planned, printed and journaled never carries a secret the repo holds
    let shown = ctx.redactor().scrub(&text);
    if args.planner.planner == PlannerChoice::Llm {
        let run = session::plan_with_llm(&shown, &args.planner, &executor).await?;
        return Ok(finish(&run.plan, &run.results, json));
    }
    let registry = executor.registry();
    let interactive = !json && std::io::stdin().is_terminal();
    let outcome = match planner.interpret(&text) {
        Interpretation::Request(mut draft) if interactive && !draft.problems(planner.facts()).is_empty() => {
            match SlotFiller::new(planner.facts()).fill(&mut draft, &mut TerminalPrompter) {
                Ok(_) => planner.plan_draft(&draft, &shown, registry),
                Err(e) => return Ok(not_planned(&format!("not planned: {e}"), 2)),
            }
        }
        Interpretation::Request(draft) => planner.plan_draft(&draft, &shown, registry),
        _ => planner.plan_text(&text, registry),
    }
    .map_err(|e| Error::Usage(e.public))?;

    match outcome {
        Outcome::Plan { plan, .. } => {
            if !json {
                print!("{}", session::render_plan(&plan));
            }
            let color = session::color();
            let results = executor
                .run_each(&plan, |step, r| {
                    if !json {
                        print!("{}", session::render_result(step, r, color));
                    }
                })
                .await;
            Ok(finish(&plan, &results, json))
        }
        Outcome::Help { message } => {
            if json {
                println!("{}", json!({"plan": [], "results": [], "approved": true}));
            } else {
                print!("{message}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Outcome::NeedsInput { message, .. } => {
            // the message quotes what the request said: never a secret the repo holds
            eprintln!("error: {}", ctx.redactor().scrub(&message));
            Ok(ExitCode::from(2))
        }
        Outcome::NotAvailable { message, .. } => Ok(not_planned(&ctx.redactor().scrub(&message), 1)),
        Outcome::Refused { reason } => Ok(not_planned(&format!("refused: {reason}"), 1)),
        Outcome::Unknown { message } => {
            let message = ctx.redactor().scrub(&message);
            if crate::planner::rules::unknown_slash(&shown).is_some() {
                return Ok(not_planned(&message, 2));
            }
            if args.planner.planner == PlannerChoice::Rules {
                return Ok(not_planned(&message, 1));
            }
            match session::plan_with_llm(&shown, &args.planner, &executor).await {
                Ok(run) => Ok(finish(&run.plan, &run.results, json)),
                Err(e) => {
                    eprint!("{message}");
                    Err(e)
                }
            }
        }
    }
}

/// Prints the JSON form (text was printed as it came) and picks the exit code.
fn finish(plan: &Plan, results: &[StepResult], json: bool) -> ExitCode {
    if json {
        let v = json!({"plan": plan.steps, "results": results, "approved": session::approved(results)});
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
    }
    ExitCode::from(crate::exec::exit_code(results))
}
