//! `agentops harmonize`: one annotation or label setting on every object of a kind.
//! Without `--yes` the plan, its proof and the diff are printed and nothing is written; with
//! `--yes` the `harmonize_apply` tool runs through the executor (journal), all or nothing.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::process::ExitCode;

use crate::error::{Error, Result};
use crate::workflows::blocking;
use crate::workflows::harmonize::{self, HarmonizePlan, HarmonizeRequest};

use super::Global;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Kind of the objects (Ingress, Service, Deployment, ...).
    #[arg(long)]
    pub kind: String,
    /// Only objects whose name matches this glob.
    #[arg(long, value_name = "GLOB")]
    pub name: Option<String>,
    /// Only this app (repeatable).
    #[arg(long = "app", value_name = "APP")]
    pub app: Vec<String>,
    /// Only this environment (repeatable).
    #[arg(long = "env", value_name = "ENV")]
    pub env: Vec<String>,
    /// Set an annotation (repeatable).
    #[arg(long = "set-annotation", value_name = "KEY=VALUE", value_parser = key_value)]
    pub set_annotation: Vec<(String, String)>,
    /// Remove an annotation (repeatable).
    #[arg(long = "remove-annotation", value_name = "KEY")]
    pub remove_annotation: Vec<String>,
    /// Set a label (repeatable).
    #[arg(long = "set-label", value_name = "KEY=VALUE", value_parser = key_value)]
    pub set_label: Vec<(String, String)>,
    /// Remove a label (repeatable).
    #[arg(long = "remove-label", value_name = "KEY")]
    pub remove_label: Vec<String>,
    /// Why: goes into the commit message.
    #[arg(long)]
    pub reason: String,
    /// Overwrite a value the repo documents as set on purpose (a comment next to it, a patch
    /// whose only job is to set it): `all`, or the FILE:LINE the plan lists (repeatable).
    /// Without it, --yes stops at them (on a terminal, each is asked).
    #[arg(long = "override-exceptions", value_name = "FILE:LINE|all")]
    pub override_exceptions: Vec<String>,
    /// Remove patch values that equal their base after the edits (and a patch file left
    /// with nothing to do) instead of setting them.
    #[arg(long)]
    pub remove_redundant: bool,
    /// Write, verify and commit (without it: print the plan and the diff only).
    #[arg(long)]
    pub yes: bool,
    /// Leave the edits unstaged instead of committing.
    #[arg(long)]
    pub no_commit: bool,
    /// With --yes: write only if the plan's fingerprint is still this one (the one a run
    /// without --yes printed), so what is written is what was reviewed.
    #[arg(long, value_name = "FINGERPRINT")]
    pub expect: Option<String>,
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Text,
    Json,
}

fn key_value(s: &str) -> std::result::Result<(String, String), String> {
    let (k, v) = s.split_once('=').ok_or_else(|| format!("{s:?} is not KEY=VALUE"))?;
    Ok((k.trim().to_string(), v.to_string()))
}

impl Args {
    fn request(&self) -> HarmonizeRequest {
        HarmonizeRequest {
            kind: self.kind.clone(),
            name: self.name.clone(),
            env: self.env.clone(),
            app: self.app.clone(),
            set_annotations: self.set_annotation.iter().cloned().collect::<BTreeMap<_, _>>(),
            remove_annotations: self.remove_annotation.clone(),
            set_labels: self.set_label.iter().cloned().collect::<BTreeMap<_, _>>(),
            remove_labels: self.remove_label.clone(),
            reason: self.reason.clone(),
            override_exceptions: self.override_exceptions.clone(),
            remove_redundant: self.remove_redundant,
            no_commit: self.no_commit,
            expect: self.expect.clone(),
        }
    }
}

fn print(plan: &HarmonizePlan, format: Format) {
    match format {
        Format::Text => print!("{}", crate::report::harmonize::text(plan)),
        Format::Json => println!("{}", serde_json::to_string_pretty(plan).unwrap_or_default()),
    }
}

/// Exit 0 when proven (and applied with `--yes`), 1 when blocked or the apply failed.
pub async fn run(global: &Global, args: Args) -> Result<ExitCode> {
    let req = args.request();
    req.settings()?;
    let ctx = global.ctx();
    if !args.yes {
        let c = ctx.clone();
        let r = req.clone();
        let plan = blocking(move || {
            let repo = c.load_repo()?;
            let engine = c.engine(&repo)?;
            harmonize::plan(&repo, &engine, &r, c.jobs())
        })
        .await?;
        print(&plan, args.format);
        if plan.is_proven() && !plan.is_noop() && args.format == Format::Text {
            let pending = plan.pending_exceptions().len();
            let overrides = if pending > 0 {
                format!(" and --override-exceptions all (or FILE:LINE each: {pending} value(s) are set on purpose)")
            } else {
                String::new()
            };
            eprintln!(
                "Nothing was written. Run again with --yes{overrides} to write, verify and commit; add --expect {} to write only this plan.",
                plan.fingerprint
            );
        }
        return Ok(if plan.is_proven() { ExitCode::SUCCESS } else { ExitCode::from(1) });
    }

    // on a terminal, each exception the flags do not override is asked about: a yes for each
    let mut req = req;
    if std::io::stdin().is_terminal() && args.format == Format::Text {
        let (c, r) = (ctx.clone(), req.clone());
        let plan = blocking(move || {
            let repo = c.load_repo()?;
            let engine = c.engine(&repo)?;
            harmonize::plan(&repo, &engine, &r, c.jobs())
        })
        .await?;
        for e in plan.pending_exceptions() {
            eprintln!("{} sets {} to {:?} on purpose: {}", e.id, e.setting, e.current, e.why);
            eprint!("Override it (set {})? [y/N] ", e.wanted.as_deref().unwrap_or("(removed)"));
            let mut answer = String::new();
            let _ = std::io::stdin().read_line(&mut answer);
            if matches!(answer.trim(), "y" | "Y" | "yes") {
                req.override_exceptions.push(e.id.clone());
            }
        }
    }
    let value = serde_json::to_value(&req).map_err(|e| Error::Internal(e.to_string()))?;
    let summary = format!("harmonize {}: write, verify and commit", req.kind);
    let request = format!("harmonize --kind {}", req.kind);
    let r = tokio::select! {
        r = super::session::run_one(&ctx, "harmonize_apply", value, summary, request, true) => r?,
        _ = tokio::signal::ctrl_c() => {
            let n = harmonize::apply::interrupt();
            eprintln!("interrupted: {n} file(s) restored; the repo is as it was");
            std::process::exit(130);
        }
    };
    match (&r.output, &r.error) {
        (Some(out), _) => {
            let plan: HarmonizePlan = match serde_json::from_value(out.clone()) {
                Ok(p) => p,
                Err(_) => {
                    println!("{}", serde_json::to_string_pretty(out).unwrap_or_default());
                    return Ok(ExitCode::SUCCESS);
                }
            };
            print(&plan, args.format);
            Ok(ExitCode::SUCCESS)
        }
        (None, Some(e)) => {
            eprintln!("harmonize: {e}");
            Ok(ExitCode::from(1))
        }
        _ => Ok(ExitCode::from(1)),
    }
}
