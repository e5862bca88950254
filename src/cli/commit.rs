//! `agentops commit`: drafts the message for the staged change from what it does to the
//! rendered fleet (optionally polished by a model, then checked), and commits exactly the
//! index after approval. `--print` only prints the message (the git hook uses it).
//!
//! Exit codes: 0 committed (or printed); 1 nothing staged, declined, or refused (validation
//! failed with --yes, or no terminal to ask on); 2 usage and other errors.

use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;

use crate::error::{Error, Result};
use crate::llm::settings::{LlmFlags, LlmSettings};
use crate::llm::{LlmClient, OpenAiClient};
use crate::workflows::commit::{self, DraftOptions, Drafted, Polished};

use super::Global;

#[derive(Debug, clap::Args)]
#[command(after_help = "Exit codes: 0 committed (or printed); 1 nothing staged, declined, or refused (validation \
failed with --yes and no --allow-invalid, or no terminal and no --yes); 2 usage and other errors.")]
pub struct Args {
    /// Why the change is made: a paragraph of the body.
    #[arg(long, value_name = "TEXT")]
    pub reason: Option<String>,
    /// A ticket or advisory id, as a `Refs:` trailer (repeatable).
    #[arg(long = "ref", value_name = "ID")]
    pub refs: Vec<String>,
    /// Conventional Commits type instead of the inferred one (feat, fix, docs, style, ci, chore, ...).
    #[arg(long = "type", value_name = "TYPE")]
    pub type_: Option<String>,
    /// Scope instead of the inferred one.
    #[arg(long, value_name = "SCOPE")]
    pub scope: Option<String>,
    /// Print the message to stdout and commit nothing.
    #[arg(long)]
    pub print: bool,
    /// Polish the wording with the configured model (the draft is kept if the answer fails
    /// the checks). On by default when .agentops.yaml has an `llm:` section.
    #[arg(long)]
    pub llm: bool,
    /// Never call a model, even when one is configured.
    #[arg(long, conflicts_with = "llm")]
    pub no_llm: bool,
    /// OpenAI-compatible endpoint for --llm.
    #[arg(long, value_name = "URL")]
    pub llm_base_url: Option<String>,
    /// Model for --llm.
    #[arg(long, value_name = "M")]
    pub model: Option<String>,
    /// Commit without asking.
    #[arg(long)]
    pub yes: bool,
    /// With --yes, commit even when validation of the affected overlays fails.
    #[arg(long)]
    pub allow_invalid: bool,
    /// Set by the prepare-commit-msg hook to git's message source; a non-empty source means
    /// the message is the user's (-m, -F, merge, squash, amend) and nothing is printed.
    #[arg(long, value_name = "SOURCE", hide = true)]
    pub hook_source: Option<String>,
}

pub async fn run(global: &Global, args: Args) -> Result<ExitCode> {
    let hook = args.hook_source.is_some();
    if args.hook_source.as_deref().is_some_and(|s| !s.is_empty()) {
        return Ok(ExitCode::SUCCESS);
    }
    match draft_and_commit(global, &args).await {
        // the hook never stands in the way of a commit: no draft, git's own template
        Err(e) if hook => {
            eprintln!("agentops: no drafted message: {e}");
            Ok(ExitCode::SUCCESS)
        }
        other => other,
    }
}

async fn draft_and_commit(global: &Global, args: &Args) -> Result<ExitCode> {
    let ctx = global.ctx();
    let opts = DraftOptions {
        reason: args.reason.clone(),
        refs: args.refs.clone(),
        type_: args.type_.clone(),
        scope: args.scope.clone(),
        ..DraftOptions::default()
    };
    let c = ctx.clone();
    let drafted = tokio::task::spawn_blocking(move || -> Result<Drafted> {
        let repo = c.load_repo()?;
        let engine = c.engine(&repo)?;
        commit::draft(c.repo_root(), &engine, c.redactor(), &opts, c.jobs())
    })
    .await
    .map_err(|e| Error::Internal(e.to_string()))?;
    let drafted = match drafted {
        Ok(d) => d,
        Err(Error::Usage(m)) if m.starts_with("nothing is staged") => {
            eprintln!("{m}");
            return Ok(ExitCode::from(1));
        }
        Err(e) => return Err(e),
    };
    let polished = maybe_polish(global, args, &drafted).await?;
    if let Some(why) = &polished.polish_rejected {
        eprintln!("LLM polish not used ({why}); the deterministic draft is kept");
    }
    let message = polished.message;
    if args.print {
        print!("{message}");
        return Ok(ExitCode::SUCCESS);
    }
    println!("{message}");
    let invalid = drafted.invalid();
    if invalid {
        eprintln!("Validation of the affected overlays failed (see the message above).");
    }
    if args.yes {
        if invalid && !args.allow_invalid {
            eprintln!("refusing to commit with --yes: validation failed; fix it, or pass --allow-invalid");
            return Ok(ExitCode::from(1));
        }
    } else if !std::io::stdin().is_terminal() {
        eprintln!("not a terminal: pass --yes to commit with this message, or --print to only print it");
        return Ok(ExitCode::from(1));
    } else if !confirm("Commit the staged change with this message? [y/N] ") {
        eprintln!("not committed");
        return Ok(ExitCode::from(1));
    }
    // approved (--yes or the answer above): the commit tool runs through the executor like
    // every other write, so it is journaled; validation already ran for the draft
    let summary = message.lines().next().unwrap_or_default().to_string();
    let args = serde_json::json!({"message": message, "allow_invalid": true});
    let r = super::session::run_one(
        &ctx,
        "commit",
        args,
        format!("Commit the staged change: {summary}"),
        "commit".into(),
        true,
    )
    .await?;
    match (r.output.as_ref().and_then(|o| o["commit"].as_str()), &r.error) {
        (Some(sha), _) => {
            println!("committed {sha}");
            Ok(ExitCode::SUCCESS)
        }
        (None, e) => {
            eprintln!("error: not committed: {}", e.as_deref().unwrap_or("the commit tool gave no commit"));
            Ok(ExitCode::from(1))
        }
    }
}

fn confirm(question: &str) -> bool {
    let mut err = std::io::stderr();
    let _ = write!(err, "{question}");
    let _ = err.flush();
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line).is_ok() && matches!(line.trim(), "y" | "Y" | "yes" | "Yes")
}

/// Polishes with the model when asked (`--llm`) or configured (`llm:` in .agentops.yaml).
async fn maybe_polish(global: &Global, args: &Args, drafted: &Drafted) -> Result<Polished> {
    let unpolished = Polished { message: drafted.message.clone(), polished: false, polish_rejected: None };
    if args.no_llm {
        return Ok(unpolished);
    }
    let config = crate::config::Config::load(&global.repo)?;
    if !args.llm && config.llm.is_none() {
        return Ok(unpolished);
    }
    let flags = LlmFlags { base_url: args.llm_base_url.clone(), model: args.model.clone(), ..LlmFlags::default() };
    let client = LlmSettings::resolve(&flags, config.llm.as_ref()).and_then(|mut s| {
        // a polish is optional: do not keep a commit (or the git hook) waiting on retries
        s.retries = s.retries.min(1);
        OpenAiClient::new(&s).map(|c| (s, c)).map_err(Error::from)
    });
    let (settings, client) = match client {
        Ok(x) => x,
        Err(e) => return Ok(Polished::rejected(drafted, format!("no model to ask: {e}"))),
    };
    let prompt = commit::polish::render_prompt(Some(&global.repo), &crate::tools::ToolRegistry::builtin(), drafted)?;
    let client: &dyn LlmClient = &client;
    Ok(commit::polish(client, &settings.model, prompt, drafted).await)
}
