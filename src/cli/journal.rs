//! `agentops journal`: what the executor ran in this repo, from `.agentops/journal.jsonl`.

use std::process::ExitCode;

use crate::error::{Error, Result};
use crate::exec::Journal;

use super::Global;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum JournalFormat {
    Text,
    /// A JSON array of entries, oldest first.
    Json,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Only the last N entries.
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    pub format: JournalFormat,
}

pub async fn run(global: &Global, args: Args) -> Result<ExitCode> {
    let root = global.repo.canonicalize().map_err(|e| Error::io(&global.repo, e))?;
    let journal = Journal::for_repo(&root);
    let mut entries = journal.read()?;
    if let Some(n) = args.limit {
        let skip = entries.len().saturating_sub(n);
        entries.drain(..skip);
    }
    match args.format {
        JournalFormat::Json => println!("{}", serde_json::to_string_pretty(&entries).unwrap_or_default()),
        JournalFormat::Text if entries.is_empty() => {
            println!("no journal entries in {}", journal.path().display())
        }
        JournalFormat::Text => {
            for e in &entries {
                println!(
                    "{}  {}  {} [{}] {}  {}  {} ms",
                    e.time,
                    e.plan_hash,
                    e.tool,
                    e.effect,
                    e.approval,
                    if e.ok { "ok" } else { "FAILED" },
                    e.duration_ms
                );
                println!("    request: {}", e.request);
                println!("    args:    {}", serde_json::to_string(&e.args).unwrap_or_default());
                if !e.result.is_empty() {
                    println!("    result:  {}", e.result);
                }
                if let Some(t) = e.tokens {
                    println!("    tokens:  {t}");
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
