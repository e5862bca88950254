//! Command-line interface: one file per subcommand.

mod ask;
mod chat;
mod commit;
mod create;
mod demo;
mod drift;
mod eval;
mod harmonize;
mod hooks;
mod journal;
mod logging;
mod mcp;
mod migrate;
mod mock_cluster;
mod proposals;
mod rollback;
mod session;
mod terminal;
mod tools;
mod validate;
mod watch;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::error::Result;
use crate::workflows::{Ctx, CtxOptions};

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
    /// Log to stderr: -v cluster calls, steps and model turns; -vv debug detail (builds,
    /// tool calls); -vvv everything. RUST_LOG (e.g. agentops=debug,kube=debug) adds to it.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

impl Global {
    pub fn ctx(&self) -> Ctx {
        let cache_dir =
            if self.no_cache { None } else { self.cache_dir.clone().or_else(crate::kustomize::default_cache_dir) };
        Ctx::new(
            &self.repo,
            CtxOptions {
                kustomize: self.kustomize.clone(),
                cache_dir,
                jobs: self.jobs,
                kubeconfig: self.kubeconfig.clone(),
                progress: Some(terminal::progress()),
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
    /// One annotation or label setting on every object of a kind, edited at its sources, proven on the rendered output.
    Harmonize(harmonize::Args),
    /// Scaffold a new app across environments in the repo's style, gated by builds, validation and cluster checks.
    Create(create::Args),
    /// Roll an app back in one environment: culprit and target from evidence, revert, sync, verify, incident report.
    Rollback(rollback::Args),
    /// Receive Alertmanager webhooks: each alert on a recent deploy becomes a rollback proposal.
    Watch(watch::Args),
    /// List what `agentops watch` proposed (id, alert, app, env, culprit, target, state).
    Proposals(proposals::ListArgs),
    /// Run a proposal's rollback plan exactly as shown (refused if the repo or cluster moved on).
    Approve(proposals::ApproveArgs),
    /// Plan a migration from one dependency to another: every reference, the graph, phases, rollback, a document.
    Migrate(migrate::Args),
    /// One request in plain words or as a slash command: plan, approve, run, report.
    Ask(ask::Args),
    /// Draft the commit message from what the staged change does to the rendered fleet, and commit.
    Commit(commit::Args),
    /// Git hooks: `hooks install` fills a plain `git commit` with the drafted message.
    #[command(subcommand)]
    Hooks(hooks::HooksCommand),
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
    /// A week on the example platform from one command: create, drift, harmonize, rollback, migrate, through the planner, on mock clusters.
    Demo(demo::Args),
    /// Run the eval cases (evals/cases/): requests checked against expected plans and outcomes.
    Eval(eval::Args),
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
    logging::init(cli.global.verbose, std::env::var("RUST_LOG").ok().as_deref());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| crate::Error::Internal(format!("cannot start the async runtime: {e}")))?;
    runtime.block_on(async move {
        match cli.command {
            Command::Validate(args) => validate::run(&cli.global, args).await,
            Command::Drift(args) => drift::run(&cli.global, args).await,
            Command::Harmonize(args) => harmonize::run(&cli.global, args).await,
            Command::Create(args) => create::run(&cli.global, args).await,
            Command::Rollback(args) => rollback::run(&cli.global, args).await,
            Command::Migrate(args) => migrate::run(&cli.global, args).await,
            Command::Watch(args) => watch::run(&cli.global, args).await,
            Command::Proposals(args) => proposals::list(&cli.global, args).await,
            Command::Approve(args) => proposals::approve(&cli.global, args).await,
            Command::Ask(args) => ask::run(&cli.global, args).await,
            Command::Commit(args) => commit::run(&cli.global, args).await,
            Command::Hooks(cmd) => hooks::run(&cli.global, cmd).await,
            Command::Chat(args) => chat::run(&cli.global, args).await,
            Command::Journal(args) => journal::run(&cli.global, args).await,
            Command::Tools(cmd) => tools::run(&cli.global, cmd).await,
            Command::MockCluster(cmd) => mock_cluster::run(&cli.global, cmd).await,
            Command::Mcp(args) => mcp::run(&cli.global, args).await,
            Command::Eval(args) => eval::run(&cli.global, args).await,
            Command::Demo(args) => demo::run(&cli.global, args).await,
        }
    })
}
