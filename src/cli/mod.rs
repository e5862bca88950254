//! Command-line interface: one file per subcommand.

mod ask;
mod chat;
mod drift;
mod journal;
mod mcp;
mod mock_cluster;
mod session;
mod tools;
mod validate;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::error::Result;
use crate::tools::{CtxOptions, ToolCtx};

#[derive(Debug, Parser)]
#[command(name = "agentops", version, about = "Run your Kubernetes GitOps repo with an agent beside you")]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, clap::Args)]
pub struct Global {
    /// The GitOps repository.
    #[arg(long, global = true, default_value = ".")]
    pub repo: PathBuf,
    /// kustomize (or kubectl) binary to use.
    #[arg(long, global = true, value_name = "PATH")]
    pub kustomize: Option<PathBuf>,
    /// Build cache directory (default: $AGENTOPS_CACHE_DIR, else the user cache dir).
    #[arg(long, global = true, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Do not read or write the build cache.
    #[arg(long, global = true)]
    pub no_cache: bool,
    /// kubeconfig for cluster access (default: $KUBECONFIG, else ~/.kube/config).
    #[arg(long, global = true, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// Parallel kustomize builds (default: 2 per core).
    #[arg(long, global = true, default_value_t = 0, hide_default_value = true)]
    pub jobs: usize,
}

impl Global {
    pub fn ctx(&self) -> ToolCtx {
        let cache_dir =
            if self.no_cache { None } else { self.cache_dir.clone().or_else(crate::kustomize::default_cache_dir) };
        ToolCtx::new(
            &self.repo,
            CtxOptions {
                kustomize: self.kustomize.clone(),
                cache_dir,
                jobs: self.jobs,
                kubeconfig: self.kubeconfig.clone(),
            },
        )
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Validate every overlay, object and Argo CD Application of the repo.
    Validate(validate::Args),
    /// What each cluster runs versus what git renders: semantic changes, who, when, what to do.
    Drift(drift::Args),
    /// One request in plain words or as a slash command: plan, approve, run, report.
    Ask(ask::Args),
    /// Talk to the planner: slash commands and plain words, missing details asked for.
    Chat(chat::Args),
    /// Show what the executor ran in this repo (.agentops/journal.jsonl).
    Journal(journal::Args),
    /// List, call and export the typed tools.
    #[command(subcommand)]
    Tools(tools::ToolsCommand),
    /// Fake kube-apiservers loaded from YAML fixtures, which kubectl and kube-rs accept.
    #[command(subcommand)]
    MockCluster(mock_cluster::MockClusterCommand),
    /// Serve the tool catalog to an MCP client over stdio (read-only unless --allow-writes).
    Mcp(mcp::Args),
}

/// Parses the process arguments and runs the command.
pub fn run() -> Result<ExitCode> {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return Ok(ExitCode::from(if e.use_stderr() { 2 } else { 0 }));
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| crate::Error::Internal(format!("cannot start the async runtime: {e}")))?;
    runtime.block_on(async move {
        match cli.command {
            Command::Validate(args) => validate::run(&cli.global, args).await,
            Command::Drift(args) => drift::run(&cli.global, args).await,
            Command::Ask(args) => ask::run(&cli.global, args).await,
            Command::Chat(args) => chat::run(&cli.global, args).await,
            Command::Journal(args) => journal::run(&cli.global, args).await,
            Command::Tools(cmd) => tools::run(&cli.global, cmd).await,
            Command::MockCluster(cmd) => mock_cluster::run(&cli.global, cmd).await,
            Command::Mcp(args) => mcp::run(&cli.global, args).await,
        }
    })
}
