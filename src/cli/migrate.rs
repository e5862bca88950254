//! `agentops migrate`: plan a migration from one dependency to another. Prints the summary
//! (services per environment, phases, rollback time), the hand-offs (`--format json`) or
//! the document (`--format markdown`). With `--yes` the document is written (and with
//! `--commit` committed) through the executor's `write_doc` step; without it nothing is
//! written.

use std::process::ExitCode;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::llm::LlmClient;
use crate::tools::ToolRegistry;
use crate::workflows::migrate::{self, MigrateRequest, Migration, RunOptions};

use super::Global;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The dependency to migrate away from (app, Service or host name).
    #[arg(long)]
    pub from: String,
    /// What replaces it.
    #[arg(long)]
    pub to: String,
    /// Only this environment (repeatable; all by default).
    #[arg(long = "env", value_name = "ENV")]
    pub env: Vec<String>,
    /// Days the whole migration may take.
    #[arg(long, value_name = "DAYS")]
    pub window: Option<u32>,
    /// Time a rollback must complete in (e.g. 30m, 1h).
    #[arg(long, value_name = "DURATION")]
    pub rollback_within: Option<String>,
    /// Where to write the document (default docs/migrations/<date>-<from>-to-<to>.md).
    #[arg(long, value_name = "FILE")]
    pub out: Option<String>,
    /// Let the analyst and writer agents refine wording through the configured model.
    #[arg(long)]
    pub llm: bool,
    /// OpenAI-compatible endpoint for --llm.
    #[arg(long, value_name = "URL")]
    pub llm_base_url: Option<String>,
    /// Model for --llm.
    #[arg(long, value_name = "M")]
    pub model: Option<String>,
    /// Do not ask the clusters which services run.
    #[arg(long)]
    pub offline: bool,
    /// Write the document (without it, nothing is written).
    #[arg(long)]
    pub yes: bool,
    /// Commit the written document.
    #[arg(long)]
    pub commit: bool,
    /// Overwrite an existing document.
    #[arg(long)]
    pub overwrite: bool,
    /// The document's date, YYYY-MM-DD (default today).
    #[arg(long, hide = true)]
    pub date: Option<String>,
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Text,
    Json,
    Markdown,
}

/// The text summary (one rendering, shared with ask, chat and the demo).
pub fn text(m: &Migration) -> String {
    crate::report::migrate::text(&m.graph, &m.feasibility, &m.plan, m.document.check.as_ref(), Some(&m.document.path))
}

async fn refiner_client(
    global: &Global,
    args: &Args,
) -> Result<(Box<dyn LlmClient>, crate::llm::settings::LlmSettings)> {
    use crate::llm::OpenAiClient;
    use crate::llm::settings::{LlmFlags, LlmSettings};
    let config = crate::config::Config::load(&global.repo)?;
    let flags = LlmFlags { base_url: args.llm_base_url.clone(), model: args.model.clone(), ..LlmFlags::default() };
    let settings = LlmSettings::resolve(&flags, config.llm.as_ref())?;
    Ok((Box::new(OpenAiClient::new(&settings)?), settings))
}

pub async fn run(global: &Global, args: Args) -> Result<ExitCode> {
    let req = MigrateRequest {
        from: args.from.clone(),
        to: args.to.clone(),
        envs: args.env.clone(),
        window_days: args.window,
        rollback_within: args.rollback_within.clone(),
        offline: args.offline,
    };
    req.check()?;
    let ctx = global.ctx();
    let client = if args.llm { Some(refiner_client(global, &args).await?) } else { None };
    let registry = Arc::new(ToolRegistry::builtin());
    let refiner = match &client {
        Some((llm, settings)) => {
            let agents = crate::agents::Agents::load(Some(&global.repo), registry.as_ref())?;
            let repo = ctx.load_repo()?;
            Some(migrate::llm::Refiner {
                llm: llm.as_ref(),
                settings: settings.clone(),
                analyst: agents.require("migrate-analyst")?.clone(),
                writer: agents.require("migrate-writer")?.clone(),
                repo: serde_json::json!({
                    "environments": repo.environments,
                    "apps": repo.apps.values().map(|a| serde_json::json!({"name": a.name, "environments": a.overlays.keys().collect::<Vec<_>>()})).collect::<Vec<_>>(),
                    "argocd_applications": repo.argocd_apps.len(),
                }),
            })
        }
        None => None,
    };
    let opts = RunOptions { date: args.date.clone(), path: args.out.clone(), refiner };
    let m = migrate::run(&ctx, &req, opts).await?;
    match args.format {
        Format::Text => print!("{}", ctx.redactor().scrub(&text(&m))),
        Format::Json => {
            let mut v = serde_json::to_value(&m).map_err(|e| Error::Internal(e.to_string()))?;
            ctx.redactor().redact_value(&mut v);
            println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
        }
        Format::Markdown => print!("{}", m.document.markdown),
    }
    if !args.yes {
        if args.format == Format::Text {
            eprintln!("Nothing was written. Run again with --yes to write {}.", m.document.path);
        }
        return Ok(ExitCode::SUCCESS);
    }
    // The document goes through the executor (approval, journal) as the write_doc step.
    let value = serde_json::json!({
        "path": m.document.path,
        "content": m.document.markdown,
        "record": m.document.record,
        "overwrite": args.overwrite,
        "commit": args.commit,
    });
    let request = format!("migrate --from {} --to {}", req.from, req.to);
    let r =
        super::session::run_one(&ctx, "write_doc", value, format!("Write {}", m.document.path), request, true).await?;
    let results = [r];
    match results.first().map(|r| (&r.output, &r.error)) {
        Some((Some(out), _)) => {
            let commit =
                out.get("commit").and_then(|c| c.as_str()).map(|c| format!(", committed {c}")).unwrap_or_default();
            eprintln!("wrote {}{commit}", m.document.path);
            Ok(ExitCode::SUCCESS)
        }
        Some((None, Some(e))) => {
            eprintln!("migrate: {e}");
            Ok(ExitCode::from(1))
        }
        _ => Ok(ExitCode::from(1)),
    }
}
