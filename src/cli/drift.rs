//! `agentops drift`

use std::path::PathBuf;
use std::process::ExitCode;

use crate::error::Result;
use crate::workflows::drift::{self, DriftRequest};

use super::Global;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Only this environment (repeatable).
    #[arg(long = "env", value_name = "ENV")]
    pub env: Vec<String>,
    /// Only this app (repeatable).
    #[arg(long = "app", value_name = "APP")]
    pub app: Vec<String>,
    /// An audit log (JSON lines of audit.k8s.io/v1 Events) to name who made each change (repeatable).
    #[arg(long = "audit-log", value_name = "FILE")]
    pub audit_log: Vec<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Text,
    Json,
}

/// Exit 0 without unacknowledged drift, 1 with drift, 2 when a cluster could not be checked.
pub async fn run(global: &Global, args: Args) -> Result<ExitCode> {
    let ctx = global.ctx();
    let repo = ctx.repo().await.map_err(|e| crate::Error::Usage(e.public))?;
    let engine = ctx.engine(&repo)?;
    let clusters = ctx.clusters()?;
    let req = DriftRequest { env: args.env, app: args.app, audit_log: args.audit_log };
    let report = drift::run(&repo, &engine, &clusters, ctx.redactor(), &req).await?;
    match args.format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&report).unwrap_or_default()),
        Format::Text => print!("{}", crate::report::drift::text(&report)),
    }
    Ok(if report.summary.clusters_failed > 0 {
        ExitCode::from(2)
    } else if report.has_drift() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
