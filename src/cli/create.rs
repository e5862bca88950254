//! `agentops create`: scaffold a new app across environments. Without `--yes` the files, the
//! sizing and the gates are printed and nothing is written; with `--yes` the `create_app` tool
//! runs through the executor (journal): gates, write, commit.

use std::process::ExitCode;

use crate::error::{Error, Result};
use crate::workflows::create::{self, CreatePlan, CreateRequest, Expose, Extra};

use super::Global;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// App name (a DNS label that is not an app yet).
    #[arg(long)]
    pub name: String,
    /// Namespace (default: the app name).
    #[arg(long)]
    pub namespace: Option<String>,
    /// Target environment (repeatable; default: every environment).
    #[arg(long = "env", value_name = "ENV")]
    pub env: Vec<String>,
    /// Container image with an explicit tag or digest.
    #[arg(long)]
    pub image: String,
    /// Container port (default 8080).
    #[arg(long)]
    pub port: Option<u16>,
    /// Sizing tier: small, medium, large, or one from .agentops.yaml `tiers`.
    #[arg(long, default_value = "small")]
    pub tier: String,
    /// Persistent volume size (makes a StatefulSet), e.g. 50Gi.
    #[arg(long, value_name = "SIZE")]
    pub storage: Option<String>,
    /// StorageClass for the volume (default: environments.<env>.storage_class, else the cluster default).
    #[arg(long, requires = "storage")]
    pub storage_class: Option<String>,
    #[arg(long, value_enum, default_value = "clusterip")]
    pub expose: Expose,
    /// Ingress host (with --expose ingress).
    #[arg(long)]
    pub host: Option<String>,
    /// Extras, comma-separated or repeated: servicemonitor, networkpolicy, hpa, pdb.
    #[arg(long, value_enum, value_delimiter = ',')]
    pub with: Vec<Extra>,
    /// A per-environment container setting ENV:KEY=VALUE (ENV may be a class: dev, staging, prod).
    #[arg(long = "set-env", value_name = "ENV:KEY=VALUE")]
    pub set_env: Vec<String>,
    /// Why: goes into the commit message.
    #[arg(long)]
    pub reason: Option<String>,
    /// Write and commit (without it: print the plan and the files only).
    #[arg(long)]
    pub yes: bool,
    /// Leave the new files uncommitted.
    #[arg(long)]
    pub no_commit: bool,
    /// With --yes: write only if the plan's fingerprint is still this one (the one a run
    /// without --yes printed), so what is written is what was reviewed.
    #[arg(long, value_name = "FINGERPRINT")]
    pub expect: Option<String>,
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,
    /// Also print every new file in full (text format).
    #[arg(long)]
    pub show_files: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Text,
    Json,
}

impl Args {
    fn request(&self) -> CreateRequest {
        CreateRequest {
            name: self.name.clone(),
            namespace: self.namespace.clone(),
            envs: self.env.clone(),
            image: self.image.clone(),
            port: self.port,
            tier: Some(self.tier.clone()),
            storage: self.storage.clone(),
            storage_class: self.storage_class.clone(),
            expose: Some(self.expose),
            host: self.host.clone(),
            with: self.with.clone(),
            set_env: self.set_env.clone(),
            reason: self.reason.clone(),
            no_commit: self.no_commit,
            expect: self.expect.clone(),
        }
    }
}

fn print(plan: &CreatePlan, format: Format, show_files: bool) {
    match format {
        Format::Text => print!("{}", crate::report::create::text(plan, show_files)),
        Format::Json => println!("{}", serde_json::to_string_pretty(plan).unwrap_or_default()),
    }
}

/// Exit 0 when every gate passed (and, with `--yes`, the app was written), 1 otherwise.
pub async fn run(global: &Global, args: Args) -> Result<ExitCode> {
    let req = args.request();
    let ctx = global.ctx();
    if !args.yes {
        let repo = ctx.load_repo()?;
        let engine = ctx.engine(&repo)?;
        let clusters = ctx.clusters().ok();
        let plan = create::plan(&repo, &engine, clusters.as_deref(), ctx.redactor(), &req, ctx.jobs()).await?;
        print(&plan, args.format, args.show_files);
        if plan.is_ok() && args.format == Format::Text {
            eprintln!(
                "Nothing was written. Run again with --yes to write and commit; add --expect {} to write only these files{}.",
                plan.fingerprint,
                if args.show_files { "" } else { " (--show-files prints them)" }
            );
        }
        return Ok(if plan.is_ok() { ExitCode::SUCCESS } else { ExitCode::from(1) });
    }
    let value = serde_json::to_value(&req).map_err(|e| Error::Internal(e.to_string()))?;
    let summary = format!("create {} and commit it", req.name);
    let r = super::session::run_one(&ctx, "create_app", value, summary, format!("create --name {}", req.name), true)
        .await?;
    match (&r.output, &r.error) {
        (Some(out), _) => {
            match serde_json::from_value::<CreatePlan>(out.clone()) {
                Ok(p) => print(&p, args.format, args.show_files),
                Err(_) => println!("{}", serde_json::to_string_pretty(out).unwrap_or_default()),
            }
            Ok(ExitCode::SUCCESS)
        }
        (None, Some(e)) => {
            eprintln!("create: {e}");
            Ok(ExitCode::from(1))
        }
        _ => Ok(ExitCode::from(1)),
    }
}
