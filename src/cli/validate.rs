//! `agentops validate`

use std::io::IsTerminal;
use std::process::ExitCode;

use crate::error::{Error, Result};
use crate::report::{self, Format};
use crate::workflows::validate::{self as wf, ValidateRequest};

use super::Global;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Only overlays of this environment (repeatable).
    #[arg(long = "env", value_name = "ENV")]
    pub env: Vec<String>,
    /// Only overlays of this app (repeatable).
    #[arg(long = "app", value_name = "APP")]
    pub app: Vec<String>,
    /// Only overlays whose inputs changed since this git revision.
    #[arg(long, value_name = "REV")]
    pub changed_since: Option<String>,
    /// Also check each overlay's target cluster (the kube context of its environment) for
    /// the StorageClasses, CRDs and IngressClasses its objects need.
    #[arg(long)]
    pub clusters: bool,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,
    /// Kubernetes version (1.NN) to check apiVersions against, for every environment
    /// (default: each environment's kubernetes_version in .agentops.yaml, else the newest
    /// agentops knows).
    #[arg(long, value_name = "1.NN")]
    pub kubernetes_version: Option<String>,
    /// Evaluate the Rego policies in this directory (or file) instead of the configured ones
    /// (repeatable; default: policies: rego: in .agentops.yaml, else policy/).
    #[arg(long = "policy", value_name = "DIR")]
    pub policy: Vec<std::path::PathBuf>,
    /// Also list the findings suppressions hid, with their reasons.
    #[arg(long)]
    pub show_suppressed: bool,
}

pub async fn run(global: &Global, args: Args) -> Result<ExitCode> {
    let ctx = global.ctx();
    // policy paths on the command line are relative to where the command runs
    let cwd = std::env::current_dir().map_err(|e| Error::io(std::path::Path::new("."), e))?;
    let policy = args.policy.iter().map(|p| cwd.join(p).to_string_lossy().into_owned()).collect();
    let req = ValidateRequest {
        env: args.env,
        app: args.app,
        changed_since: args.changed_since,
        clusters: args.clusters,
        kubernetes_version: args.kubernetes_version,
        policy,
    };
    let c = ctx.clone();
    let (repo, mut report, needs) = tokio::task::spawn_blocking(move || -> Result<_> {
        let repo = c.load_repo()?;
        let engine = c.engine(&repo)?;
        let bar = indicatif::ProgressBar::with_draw_target(None, indicatif::ProgressDrawTarget::stderr());
        if let Ok(style) =
            indicatif::ProgressStyle::with_template("{spinner} validating overlays {pos}/{len} {wide_bar}")
        {
            bar.set_style(style);
        }
        let progress = |done: usize, total: usize| {
            bar.set_length(total as u64);
            bar.set_position(done as u64);
        };
        let run = wf::run_collect(&repo, &engine, c.redactor(), &req, c.jobs(), &progress);
        bar.finish_and_clear();
        let (report, needs) = run?;
        Ok((repo, report, needs))
    })
    .await
    .map_err(|e| Error::Internal(e.to_string()))??;
    if args.clusters {
        let clusters = ctx.clusters()?;
        wf::check_clusters(&repo, &clusters, needs, &mut report, ctx.redactor()).await;
    }
    let color =
        args.format == Format::Text && std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    print!("{}", report::render(&report, args.format, color, args.show_suppressed));
    Ok(if report.has_errors() { ExitCode::from(1) } else { ExitCode::SUCCESS })
}
