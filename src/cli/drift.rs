//! `agentops drift`, `agentops drift acknowledge` and `agentops drift revert`

use std::path::PathBuf;
use std::process::ExitCode;

use serde_json::json;

use crate::error::{Error, Result};
use crate::workflows::drift::{self, DriftRequest};

use super::Global;

#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct Args {
    #[command(subcommand)]
    pub action: Option<Action>,
    #[command(flatten)]
    pub check: CheckArgs,
}

#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// Only this environment (repeatable).
    #[arg(long = "env", value_name = "ENV")]
    pub env: Vec<String>,
    /// Only this app (repeatable).
    #[arg(long = "app", value_name = "APP")]
    pub app: Vec<String>,
    /// An audit log (JSON lines of audit.k8s.io/v1 Events) to name who made each change (repeatable).
    #[arg(long = "audit-log", value_name = "FILE")]
    pub audit_log: Vec<PathBuf>,
    /// Also list every difference that is not drift (API defaults, server-allocated and
    /// controller-owned fields, HPA replicas, ignore rules) with its live value and cause.
    #[arg(long)]
    pub show_suppressed: bool,
    /// Also write Prometheus textfile metrics (drifted objects per env/app, last run) here.
    #[arg(long, value_name = "FILE")]
    pub metrics_file: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,
}

#[derive(Debug, clap::Subcommand)]
pub enum Action {
    /// Mark an app's drift in one environment as temporary (annotates the live objects).
    Acknowledge {
        #[arg(long)]
        app: String,
        #[arg(long)]
        env: String,
        #[arg(long)]
        reason: String,
        /// Last day the drift is allowed (YYYY-MM-DD).
        #[arg(long)]
        expires: String,
        /// Approve the cluster write without asking.
        #[arg(long)]
        yes: bool,
    },
    /// Keep the drift: write it into the overlay as a patch, prove it, commit on a new branch.
    Capture {
        #[arg(long)]
        app: String,
        #[arg(long)]
        env: String,
        /// Leave the files uncommitted.
        #[arg(long)]
        no_commit: bool,
        /// Commit on the new branch but stay on the current one.
        #[arg(long, conflicts_with = "no_commit")]
        stay: bool,
        /// Approve the repo write without asking.
        #[arg(long)]
        yes: bool,
    },
    /// Put the cluster back to git: ask Argo CD to sync the app's Application, then check that
    /// live equals what git renders.
    Revert {
        #[arg(long)]
        app: String,
        #[arg(long)]
        env: String,
        /// Replace the objects whole for this one sync (Argo CD's Replace=true) instead of
        /// merging: also removes fields git never set (a hand-added sidecar), and those other
        /// controllers own.
        #[arg(long)]
        replace: bool,
        /// Approve the cluster write without asking.
        #[arg(long)]
        yes: bool,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Text,
    Json,
}

/// Exit 0 without unacknowledged drift, 1 with drift, 2 when a cluster could not be checked.
pub async fn run(global: &Global, args: Args) -> Result<ExitCode> {
    match args.action {
        None => check(global, args.check).await,
        Some(Action::Acknowledge { app, env, reason, expires, yes }) => {
            // the tool checks the same; checked here too so a bad date asks for no approval
            drift::validate_acknowledgement(&reason, &expires, &crate::time::today())
                .map_err(|e| Error::Usage(format!("drift acknowledge: {e}")))?;
            let step = json!({"app": app, "env": env, "reason": reason, "expires": expires});
            write(
                global,
                "drift_acknowledge",
                step,
                format!("mark the drift of {app} in {env} as temporary until {expires}"),
                yes,
                &format!("drift acknowledge {app} {env}"),
            )
            .await
        }
        Some(Action::Capture { app, env, no_commit, stay, yes }) => {
            let step = json!({"app": app, "env": env, "no_commit": no_commit, "stay": stay});
            write(
                global,
                "drift_capture",
                step,
                format!("write the live drift of {app} in {env} into its overlay"),
                yes,
                &format!("drift capture {app} {env}"),
            )
            .await
        }
        Some(Action::Revert { app, env, replace, yes }) => {
            let ctx = global.ctx();
            let repo = ctx.repo().await?;
            let argo = repo
                .argocd_apps
                .iter()
                .find(|a| {
                    a.sources.iter().any(|s| {
                        s.path.as_deref().is_some_and(|p| {
                            repo.leaves.iter().any(|l| {
                                l.dir == p.trim_matches('/')
                                    && l.app.as_deref() == Some(&app)
                                    && l.env.as_deref() == Some(&env)
                            })
                        })
                    })
                })
                .ok_or_else(|| Error::Usage(format!("no Argo CD Application in the repo deploys {app} to {env}")))?;
            let mut step = json!({"env": env, "name": argo.name, "namespace": argo.namespace.clone().unwrap_or_else(|| "argocd".into())});
            let summary = if replace {
                step["replace"] = json!(true);
                eprintln!("{}", replace_warning(&argo.name));
                format!("sync Argo CD Application {} to git, replacing its objects whole (Replace=true)", argo.name)
            } else {
                format!("sync Argo CD Application {} to git", argo.name)
            };
            let code = write(global, "argocd_sync", step, summary, yes, &format!("drift revert {app} {env}")).await?;
            if code != ExitCode::SUCCESS {
                return Ok(code);
            }
            let args = CheckArgs {
                env: vec![env.clone()],
                app: vec![app.clone()],
                audit_log: Vec::new(),
                show_suppressed: false,
                metrics_file: None,
                format: Format::Text,
            };
            let (code, report) = check_report(global, args).await?;
            let differs: Vec<&drift::Drift> = report
                .as_ref()
                .map(|r| r.drifts.iter().filter(|d| d.status != "acknowledged").collect())
                .unwrap_or_default();
            if report.is_some() && differs.is_empty() {
                println!(
                    "Verification: live equals the target render (every object of {app} in {env} is what git renders)."
                );
            } else if !differs.is_empty() {
                println!(
                    "Verification FAILED: live differs from the target render in {} object(s): {}.",
                    differs.len(),
                    differs.iter().map(|d| d.object.as_str()).collect::<Vec<_>>().join(", ")
                );
                if !replace {
                    println!("{}", merge_keeps_note(&app, &env));
                }
            }
            Ok(code)
        }
    }
}

/// Why a merge sync leaves fields behind, and what removes them.
fn merge_keeps_note(app: &str, env: &str) -> String {
    format!(
        "A merge sync (Argo CD's default client-side apply) keeps fields that were never in the object's \
         last-applied configuration, such as a sidecar or volume added by hand: it removes only what git \
         once set and no longer does. To remove them too: agentops drift revert --app {app} --env {env} --replace \
         (Argo CD's Replace=true for this one sync), or delete them by hand."
    )
}

/// What `--replace` does beside removing hand additions.
fn replace_warning(application: &str) -> String {
    format!(
        "warning: --replace makes Argo CD replace every object of {application} whole (PUT) for this sync: \
         every field git does not set is dropped, including fields other controllers own (sidecars an \
         admission webhook injected, replicas an HPA manages, annotations other tools wrote) until they \
         write them again, and the last-applied-configuration annotation is removed."
    )
}

async fn check(global: &Global, args: CheckArgs) -> Result<ExitCode> {
    Ok(check_report(global, args).await?.0)
}

/// The drift check, printed; its exit code and report.
async fn check_report(global: &Global, args: CheckArgs) -> Result<(ExitCode, Option<drift::DriftReport>)> {
    let ctx = global.ctx();
    let repo = ctx.repo().await?;
    let engine = ctx.engine(&repo)?;
    let clusters = ctx.clusters()?;
    let req =
        DriftRequest { env: args.env, app: args.app, audit_log: args.audit_log, show_suppressed: args.show_suppressed };
    let bar = indicatif::ProgressBar::with_draw_target(None, indicatif::ProgressDrawTarget::stderr());
    let progress = |p: drift::DriftProgress| match p {
        drift::DriftProgress::Rendered { applications, clusters } => {
            if let Ok(style) = indicatif::ProgressStyle::with_template(&format!(
                "{{spinner}} drift: {applications} applications, clusters {{pos}}/{{len}} {{wide_bar}}"
            )) {
                bar.set_style(style);
            }
            bar.set_length(clusters as u64);
        }
        drift::DriftProgress::ClusterDone => bar.inc(1),
    };
    let report = drift::run_with_progress(&repo, &engine, &clusters, ctx.redactor(), &req, &progress).await;
    bar.finish_and_clear();
    let report = report?;
    match args.format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&report).unwrap_or_default()),
        Format::Text => print!("{}", crate::report::drift::text(&report)),
    }
    if let Some(p) = &args.metrics_file {
        std::fs::write(p, drift::metrics_text(&report)).map_err(|e| Error::io(p, e))?;
    }
    let code = if report.summary.clusters_failed > 0 || report.summary.applications_unchecked > 0 {
        ExitCode::from(2)
    } else if report.has_drift() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    };
    Ok((code, Some(report)))
}

/// Runs one cluster-writing tool through the executor: approval (or --yes), journal.
async fn write(
    global: &Global,
    tool: &str,
    args: serde_json::Value,
    summary: String,
    yes: bool,
    request: &str,
) -> Result<ExitCode> {
    let r = super::session::run_one(&global.ctx(), tool, args, summary, request.to_string(), yes).await?;
    let results = [r];
    for r in &results {
        match (&r.output, &r.error) {
            (Some(out), _) => print!("{}", super::session::result_body(tool, out)),
            (None, Some(e)) => eprintln!("{}: {e}", r.tool),
            _ => {}
        }
    }
    Ok(ExitCode::from(crate::exec::exit_code(&results)))
}
