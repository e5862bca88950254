//! `agentops mcp`: serve the tool catalog to an MCP client over stdio. stdout is the
//! protocol: everything for people goes to stderr.

use std::process::ExitCode;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::mcp::McpServer;
use crate::tools::ToolRegistry;

use super::Global;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// List and run tools that write to the repo or the clusters too. Each call the MCP
    /// client's user confirms counts as the approval; every call is journaled.
    #[arg(long)]
    pub allow_writes: bool,
}

pub async fn run(global: &Global, args: Args) -> Result<ExitCode> {
    if !global.repo.is_dir() {
        return Err(Error::Usage(format!(
            "{}: not a directory; pass the GitOps repository with --repo DIR",
            global.repo.display()
        )));
    }
    let ctx = global.ctx();
    let server = McpServer::new(Arc::new(ToolRegistry::builtin()), ctx, args.allow_writes);
    eprintln!(
        "agentops mcp: serving {} tools ({}) for {} over stdio",
        server.tools().len(),
        if args.allow_writes { "writes allowed" } else { "read-only" },
        global.repo.display()
    );
    server.serve_stdio().await?;
    Ok(ExitCode::SUCCESS)
}
