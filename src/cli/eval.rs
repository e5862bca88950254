//! `agentops eval`: run the eval cases (`evals/cases/`) and report pass rates.
//!
//! Exit codes: 0 every case passed; 1 a case failed (or did not load); 2 usage (no cases
//! directory, no case matched).

use std::process::ExitCode;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::eval::{self, PlannerKind, RunOptions};

use super::Global;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum EvalFormat {
    Text,
    /// `{"cases": [per run], "summary": {...}}`
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum EvalPlanner {
    Rules,
    Llm,
}

#[derive(Debug, clap::Args)]
#[command(after_help = "The project directory is --repo (default: the current directory); cases are read from \
evals/cases/ under it. --jobs sets how many cases run at once (default 4). Exit codes: 0 every case passed; 1 a case \
failed or did not load; 2 no case matched, or a usage error.")]
pub struct Args {
    /// Only cases whose name (or file name) matches: `*` and `?` wildcards, comma-separated patterns.
    #[arg(long, value_name = "GLOB")]
    pub cases: Option<String>,
    /// The planner every case uses (default: each case's own, else rules).
    #[arg(long, value_enum)]
    pub planner: Option<EvalPlanner>,
    /// Run each case K times: Pass@1 and Pass^K in the summary.
    #[arg(long, value_name = "K", default_value_t = 1)]
    pub repeat: usize,
    /// LLM planner: record cassettes (evals/cassettes/<case>/) from the configured endpoint.
    #[arg(long)]
    pub record: bool,
    /// LLM planner: ask the configured endpoint (OPENAI_BASE_URL, AGENTOPS_LLM_MODEL,
    /// AGENTOPS_LLM_CONSTRAINED) directly, without cassettes: a benchmark of that model.
    #[arg(long, conflicts_with = "record")]
    pub live: bool,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    pub format: EvalFormat,
    /// Seconds each agentops process of a case may take.
    #[arg(long, value_name = "S", default_value_t = 180)]
    pub timeout: u64,
}

pub async fn run(global: &Global, args: Args) -> Result<ExitCode> {
    let project = std::path::absolute(&global.repo).unwrap_or_else(|_| global.repo.clone());
    let dir = project.join("evals/cases");
    let cases = eval::load_cases(&dir, args.cases.as_deref()).map_err(|e| Error::Usage(e.to_string()))?;
    if cases.is_empty() {
        return Err(Error::Usage(format!(
            "no case in {} matches {}",
            dir.display(),
            args.cases.as_deref().unwrap_or("*")
        )));
    }
    if args.repeat == 0 {
        return Err(Error::Usage("--repeat must be at least 1".into()));
    }
    let binary =
        std::env::current_exe().map_err(|e| Error::Internal(format!("cannot find the agentops binary: {e}")))?;
    let mut opts = RunOptions::new(&project, &binary);
    opts.cache_dir =
        if global.no_cache { None } else { global.cache_dir.clone().or_else(crate::kustomize::default_cache_dir) };
    opts.planner = args.planner.map(|p| match p {
        EvalPlanner::Rules => PlannerKind::Rules,
        EvalPlanner::Llm => PlannerKind::Llm,
    });
    opts.repeat = args.repeat;
    opts.record = args.record;
    opts.live = args.live;
    opts.jobs = if global.jobs == 0 { 4 } else { global.jobs };
    opts.timeout = Duration::from_secs(args.timeout.max(1));
    let report = eval::run_suite(cases, &opts).await;
    match args.format {
        EvalFormat::Json => {
            println!("{}", serde_json::to_string_pretty(&report).map_err(|e| Error::Internal(e.to_string()))?)
        }
        EvalFormat::Text => print!("{}", eval::render_text(&report)),
    }
    Ok(if report.all_passed() { ExitCode::SUCCESS } else { ExitCode::from(1) })
}
