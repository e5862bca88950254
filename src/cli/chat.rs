//! `agentops chat`: a REPL over the planner and the executor. Slash commands and plain
//! words; missing slots are asked for one at a time; the plan is shown before it runs and
//! writes ask for approval (or `--yes`); results print as they come. On a terminal it uses
//! rustyline (line editing, history in `.agentops/history`); otherwise it reads lines from
//! stdin and echoes them, so scripted sessions read like transcripts.

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use rustyline::DefaultEditor;
use rustyline::error::ReadlineError;

use crate::error::Result;
use crate::exec::Executor;
use crate::k8s::redact::Redactor;
use crate::planner::rules::{
    FillError, Interpretation, Planned, Prompter, RulesPlanner, SlotFiller, capabilities, plan_request,
};

use super::Global;
use super::session::{self, PlannerArgs, PlannerChoice, PolicyArgs};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub policy: PolicyArgs,
    #[command(flatten)]
    pub planner: PlannerArgs,
}

const CHAT_HELP: &str = "Chat commands: /help (this list), /quit (leave), /proposals (what agentops watch proposed), /approve ID (run one, each write asked). While answering a question, `cancel` drops the request.\n";

/// Where lines come from: the line editor on a terminal, plain stdin otherwise. What is
/// echoed or told back goes through the redactor: an answer may hold a secret of the repo.
struct Input {
    source: Source,
    redactor: Arc<Redactor>,
}

enum Source {
    Editor {
        editor: Box<DefaultEditor>,
        history: Option<PathBuf>,
    },
    /// stdin, read a line at a time (never held locked: approvals read from it too).
    Plain,
}

impl Input {
    fn open(root: &std::path::Path, redactor: Arc<Redactor>) -> Input {
        if std::io::stdin().is_terminal()
            && let Ok(mut editor) = DefaultEditor::new()
        {
            let history = history_file(root);
            if let Some(h) = &history {
                let _ = editor.load_history(h);
            }
            return Input { source: Source::Editor { editor: Box::new(editor), history }, redactor };
        }
        Input { source: Source::Plain, redactor }
    }

    /// One line; None at the end of input.
    fn read(&mut self, prompt: &str, remember: bool) -> Option<String> {
        match &mut self.source {
            Source::Editor { editor, history } => loop {
                match editor.readline(prompt) {
                    Ok(line) => {
                        if remember && !line.trim().is_empty() {
                            let _ = editor.add_history_entry(line.as_str());
                            if let Some(h) = history {
                                let _ = editor.save_history(h);
                            }
                        }
                        return Some(line);
                    }
                    // Ctrl-C clears the line, as in a shell
                    Err(ReadlineError::Interrupted) => continue,
                    Err(_) => return None,
                }
            },
            Source::Plain => read_echoed(prompt, &self.redactor),
        }
    }
}

/// Prints `prompt`, reads one line of stdin and echoes it (redacted), so a scripted session
/// reads like a transcript. None at the end of input.
fn read_echoed(prompt: &str, redactor: &Redactor) -> Option<String> {
    let mut out = std::io::stdout();
    let _ = write!(out, "{prompt}");
    let _ = out.flush();
    let mut line = String::new();
    match std::io::stdin().lock().read_line(&mut line) {
        Ok(0) | Err(_) => {
            println!();
            None
        }
        Ok(_) => {
            let line = line.trim_end_matches(['\n', '\r']).to_string();
            println!("{}", redactor.scrub(&line));
            Some(line)
        }
    }
}

/// Approval in a chat whose input is not a terminal (a scripted or piped session): the
/// question is asked like the others and the next input line answers it; the end of the
/// input denies.
struct InputApprover {
    redactor: Arc<Redactor>,
}

impl crate::exec::Approver for InputApprover {
    fn approve(&self, step: &crate::exec::Step) -> bool {
        let prompt = format!("Approve {} [{:?}]: {}? [y/N] ", step.tool, step.effect, step.summary);
        let answer = read_echoed(&self.redactor.scrub(&prompt), &self.redactor);
        matches!(answer.as_deref().map(str::trim), Some("y" | "Y" | "yes" | "Yes"))
    }
}

impl Prompter for Input {
    fn ask(&mut self, question: &str) -> Option<String> {
        let _ = std::io::stdout().flush();
        self.read(&format!("{question} "), false)
    }
    fn tell(&mut self, message: &str) {
        println!("  {}", self.redactor.scrub(message));
    }
}

struct Session<'a> {
    planner: RulesPlanner,
    executor: Executor,
    args: &'a Args,
    color: bool,
}

pub async fn run(global: &Global, args: Args) -> Result<ExitCode> {
    let ctx = global.ctx();
    let repo = session::load_repo(&ctx).await?;
    let approver: Arc<dyn crate::exec::Approver> = if std::io::stdin().is_terminal() {
        session::stdin_approver()
    } else {
        Arc::new(InputApprover { redactor: ctx.redactor_arc() })
    };
    let s = Session {
        planner: RulesPlanner::new(session::facts(&repo)),
        executor: session::executor(&ctx, &repo, args.policy.policy(), approver),
        args: &args,
        color: session::color(),
    };
    let facts = s.planner.facts();
    println!(
        "agentops chat in {} ({} environments, {} apps). /help lists what I can do, /quit leaves.",
        repo.root.display(),
        facts.environments.len(),
        facts.apps.len()
    );
    let mut input = Input::open(&repo.root, ctx.redactor_arc());
    // the exit code of the session: the highest of its requests (0 clean, 1 findings or
    // refused, 2 could not run), as `ask` gives for each
    let mut code = 0u8;
    while let Some(line) = input.read("agentops> ", true) {
        let line = line.trim();
        match line {
            "" => continue,
            "/quit" | "/exit" | "quit" | "exit" => break,
            "/help" | "help" => {
                print!("{}{CHAT_HELP}", capabilities(s.executor.registry()));
                continue;
            }
            "/proposals" => {
                match crate::workflows::watch::Store::for_repo(&repo.root).read() {
                    Ok(all) => print!(
                        "{}",
                        super::proposals::table(&all.proposals.iter().filter(|p| p.is_open()).collect::<Vec<_>>())
                    ),
                    Err(e) => println!("{e}"),
                }
                continue;
            }
            _ => {}
        }
        if let Some(id) = line.strip_prefix("/approve ").map(str::trim) {
            // the proposal's plan as shown, each write asked like any other in this chat
            // the exit code as `agentops approve` gives it: 1 when it did not roll back, 2 when
            // the proposal is not waiting for approval
            match super::proposals::approve_with(&s.executor, id, "approved in chat").await {
                Ok((_, done)) if done.succeeded() || s.executor.policy().dry_run => {}
                Ok(_) => code = code.max(1),
                Err(e) => {
                    println!("Not approved: {e}");
                    code = 2;
                }
            }
            let _ = std::io::stdout().flush();
            continue;
        }
        match s.handle(line, &mut input).await {
            Turn::Done(c) => code = code.max(c),
            Turn::EndOfInput => {
                let _ = std::io::stdout().flush();
                let shown = ctx.redactor().scrub(line);
                eprintln!("error: the input ended while a question about {shown:?} was open; that request was dropped");
                code = 2;
                break;
            }
        }
        let _ = std::io::stdout().flush();
    }
    Ok(ExitCode::from(code))
}

enum Turn {
    /// The request was handled; its exit code.
    Done(u8),
    /// The input ended while a question was open: the request was dropped.
    EndOfInput,
}

impl Session<'_> {
    async fn handle(&self, line: &str, input: &mut Input) -> Turn {
        let registry = self.executor.registry();
        let shown = self.executor.ctx().redactor().scrub(line);
        if let Some(reason) = self.planner.refusal(line) {
            println!("Refused: {reason}");
            return Turn::Done(1);
        }
        if self.args.planner.planner == PlannerChoice::Llm {
            return self.llm(&shown).await;
        }
        let mut draft = match self.planner.interpret(line) {
            Interpretation::Request(d) => d,
            Interpretation::Refused(reason) => {
                println!("Refused: {reason}");
                return Turn::Done(1);
            }
            Interpretation::Help => {
                print!("{}{CHAT_HELP}", capabilities(registry));
                return Turn::Done(0);
            }
            Interpretation::Unknown => {
                print!("{}", self.planner.unknown_message(line, registry));
                if self.args.planner.planner == PlannerChoice::Auto
                    && crate::planner::rules::unknown_slash(line).is_none()
                {
                    return self.llm(&shown).await;
                }
                return Turn::Done(1);
            }
        };
        let request = match SlotFiller::new(self.planner.facts()).fill(&mut draft, input) {
            Ok(r) => r,
            Err(FillError::EndOfInput) => return Turn::EndOfInput,
            // the person dropped it: nothing to report
            Err(FillError::Cancelled) => {
                println!("Not planned: cancelled.");
                return Turn::Done(0);
            }
            Err(e) => {
                println!("Not planned: {}.", self.executor.ctx().redactor().scrub(&e.to_string()));
                return Turn::Done(2);
            }
        };
        let plan = match plan_request(&request, registry, &shown) {
            Ok(Planned::Ready(plan)) => plan,
            Ok(Planned::NotAvailable { message, .. }) => {
                println!("Sorry: {}.", self.executor.ctx().redactor().scrub(&message));
                return Turn::Done(1);
            }
            Err(e) => {
                println!("Not planned: {}", e.public);
                return Turn::Done(2);
            }
        };
        print!("{}", session::render_plan(&plan));
        let color = self.color;
        let results = self
            .executor
            .run_each(&plan, |step, r| {
                print!("{}", session::render_result(step, r, color));
                let _ = std::io::stdout().flush();
            })
            .await;
        Turn::Done(crate::exec::exit_code(&results))
    }

    async fn llm(&self, request: &str) -> Turn {
        match session::plan_with_llm(request, &self.args.planner, &self.executor).await {
            Ok(run) => {
                for (step, r) in run.plan.steps.iter().zip(&run.results) {
                    print!("{}", session::render_result(step, r, self.color));
                }
                if let Some(a) = run.answer {
                    println!("{a}");
                }
                Turn::Done(crate::exec::exit_code(&run.results))
            }
            Err(e) => {
                println!("{e}");
                Turn::Done(2)
            }
        }
    }
}

/// `.agentops/history` in the repo (the directory is git-ignored, like the journal).
fn history_file(root: &std::path::Path) -> Option<PathBuf> {
    let dir = root.join(".agentops");
    std::fs::create_dir_all(&dir).ok()?;
    let ignore = dir.join(".gitignore");
    if !ignore.exists() {
        let _ = std::fs::write(&ignore, "*\n");
    }
    Some(dir.join("history"))
}
