//! `agentops proposals` lists what `agentops watch` proposed; `agentops approve ID` runs a
//! proposal's rollback plan exactly as shown, through the executor and its approval gate
//! (`--yes`, or a yes on the terminal). The revert is bound to the plan's fingerprint: when
//! the repo or the cluster moved on since the proposal, nothing is written.

use std::process::ExitCode;

use serde_json::{Value, json};

use crate::error::{Error, Result};
use crate::workflows::rollback::report;
use crate::workflows::watch::{Proposal, ProposalState, Store};

use super::Global;
use super::rollback::Executed;
use crate::exec::Executor;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Text,
    Json,
}

#[derive(Debug, clap::Args)]
pub struct ListArgs {
    /// Also list closed proposals.
    #[arg(long)]
    pub all: bool,
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,
}

#[derive(Debug, clap::Args)]
pub struct ApproveArgs {
    /// The proposal's id (or an unambiguous start of it), as `agentops proposals` lists it.
    pub id: String,
    /// Approve the revert and the sync without asking.
    #[arg(long)]
    pub yes: bool,
}

/// One row of `proposals --format json`.
pub fn row(p: &Proposal) -> Value {
    json!({
        "id": p.id,
        "state": p.state.label(),
        "reason": p.reason,
        "alert": p.alert.name,
        "fingerprint": p.alert.fingerprint,
        "app": p.app,
        "env": p.env,
        "application": p.application,
        "culprit": p.culprit,
        "target": p.target,
        "notifications": p.notifications,
        "received_at": p.received_at,
        "alert_to_proposal_ms": p.alert_to_proposal_ms,
        "since_alert_start_ms": p.since_alert_start_ms,
        "auto": p.auto,
        "report": p.report,
        "file": Store::markdown_rel(&p.id),
    })
}

pub async fn list(global: &Global, args: ListArgs) -> Result<ExitCode> {
    let all = Store::for_repo(&global.repo).read()?;
    let shown: Vec<&Proposal> = all.proposals.iter().filter(|p| args.all || p.is_open()).collect();
    if args.format == Format::Json {
        let rows: Vec<Value> = shown.iter().map(|p| row(p)).collect();
        println!("{}", serde_json::to_string_pretty(&rows).unwrap_or_default());
        return Ok(ExitCode::SUCCESS);
    }
    if shown.is_empty() {
        println!("No {}proposals.", if args.all { "" } else { "open " });
        return Ok(ExitCode::SUCCESS);
    }
    print!("{}", table(&shown));
    Ok(ExitCode::SUCCESS)
}

/// The proposals as a table for people (a line with the reason under each that has one).
pub fn table(shown: &[&Proposal]) -> String {
    if shown.is_empty() {
        return "No open proposals.\n".into();
    }
    let mut s = format!(
        "{:<36}  {:<12}  {:<20}  {:<16}  {:<12}  {:<15}  TARGET\n",
        "ID", "STATE", "ALERT", "APP", "ENV", "CULPRIT"
    );
    for p in shown {
        s.push_str(&format!(
            "{:<36}  {:<12}  {:<20}  {:<16}  {:<12}  {:<15}  {}\n",
            p.id,
            p.state.label(),
            p.alert.name,
            p.app,
            p.env,
            if p.culprit.is_empty() { "-".to_string() } else { p.culprit.join(" ") },
            p.target.as_deref().unwrap_or("-")
        ));
        if let Some(r) = &p.reason {
            s.push_str(&format!("    {r}\n"));
        }
    }
    s
}

/// Records what running a proposal did: rolled back (with the incident report) or failed.
pub fn record_outcome(store: &Store, id: &str, done: &Executed) -> Result<Proposal> {
    let p = store.update(|all| {
        let p = all.get_mut(id)?;
        p.report = done.revert.as_ref().map(|r| r.report.clone()).or(p.report.take());
        let verdict = done.verified.as_ref().map(|v| v.verification.verdict.clone());
        if done.succeeded() {
            p.state = ProposalState::RolledBack;
            p.reason = None;
            p.event(format!("rolled back; verification: {}", verdict.unwrap_or_default()));
        } else if done.declined && done.revert.is_none() {
            // denied or refused before anything was written: still a proposal
            p.state = ProposalState::Proposed;
            p.event(format!(
                "not carried out, nothing was written: {}",
                done.failure.as_deref().unwrap_or("not approved")
            ));
        } else {
            p.state = ProposalState::Failed;
            let why = done
                .failure
                .clone()
                .unwrap_or_else(|| format!("verification: {}", verdict.unwrap_or_else(|| "none".into())));
            p.event(format!("the rollback did not succeed: {why}"));
            p.reason = Some(why);
        }
        p.run_ended();
        Some(p.clone())
    })?;
    let p = p.ok_or_else(|| Error::Usage(format!("proposal {id} is gone from the store")))?;
    let _ = store.refresh_markdown(&p.id);
    Ok(p)
}

/// Exit 0 when rolled back and verified (or recovery unknown), 1 otherwise; 2 when the
/// proposal is not waiting for approval.
pub async fn approve(global: &Global, args: ApproveArgs) -> Result<ExitCode> {
    let ctx = global.ctx();
    let exec = super::session::write_executor(&ctx, args.yes);
    let how = if args.yes { "approved (--yes)" } else { "approval asked on the terminal" };
    let (p, done) = approve_with(&exec, &args.id, how).await?;
    match (&done.failure, done.succeeded()) {
        (_, true) => Ok(ExitCode::SUCCESS),
        (Some(f), _) => {
            eprintln!("approve: {f}");
            if done.revert.is_some() {
                eprintln!(
                    "The revert is committed; finish by syncing {} and checking it (agentops tools call argocd_sync ...).",
                    p.application
                );
            }
            Ok(ExitCode::from(1))
        }
        _ => {
            eprintln!("approve: VERIFICATION FAILED: {} in {} did not recover.", p.app, p.env);
            Ok(ExitCode::from(1))
        }
    }
}

/// Runs a proposal (by id or an unambiguous start of it) through `exec`, whose policy and
/// approver decide each write (`approve`'s `--yes` or terminal, chat's questions); prints the
/// plan and each result, records the outcome. A proposal not waiting for approval is a usage
/// error; a dry run only shows the plan.
pub async fn approve_with(exec: &Executor, id: &str, how: &str) -> Result<(Proposal, Executed)> {
    let store = Store::for_repo(exec.ctx().repo_root());
    let dry_run = exec.policy().dry_run;
    let claimed = store.update(|all| {
        let id = all.find(id)?.id.clone();
        let p = all.get_mut(&id).ok_or_else(|| format!("no proposal {id:?}"))?;
        match p.state {
            ProposalState::Proposed => {}
            ProposalState::NotProposed => {
                return Err(format!(
                    "proposal {id} has no rollback to approve: {}",
                    p.reason.as_deref().unwrap_or("no plan")
                ));
            }
            s => return Err(format!("proposal {id} is {}, not waiting for approval", s.label())),
        }
        let Some(plan) = p.plan.clone() else { return Err(format!("proposal {id} has no plan")) };
        if !dry_run {
            p.state = ProposalState::Running;
            p.event(format!("{how}: rolling back"));
        }
        Ok((p.clone(), plan))
    })?;
    let (p, plan) = claimed.map_err(Error::Usage)?;
    println!("Proposal {}: {} fired for {} in {}", p.id, p.alert.name, p.app, p.env);
    print!("{}", report::text(&plan));
    println!();
    let done = super::rollback::execute(exec, &plan, Some(format!("approve proposal {}", p.id)), true).await;
    let done = done.unwrap_or_else(Executed::could_not_run);
    if dry_run {
        println!("Proposal {}: still proposed (dry run: nothing written)", p.id);
        return Ok((p, done));
    }
    let q = record_outcome(&store, &p.id, &done)?;
    println!(
        "Proposal {}: {}{}",
        q.id,
        q.state.label(),
        q.reason.as_deref().map(|r| format!(" ({r})")).unwrap_or_default()
    );
    Ok((q, done))
}
