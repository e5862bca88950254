//! The rollback's words: the plan as the terminal shows it, and the incident report
//! (`docs/incidents/<date>-<app>.md`) rendered with the handlebars template
//! `tools/templates/incident.md.hbs` (a repo may override it in `.agentops/templates/`).

use std::fmt::Write as _;
use std::path::Path;

use serde_json::{Value, json};

use super::verify::{CheckStatus, Verification};
use super::{RollbackPlan, git, pct};

pub const TEMPLATE: &str = include_str!("../../../tools/templates/incident.md.hbs");
const OVERRIDE: &str = ".agentops/templates/incident.md.hbs";
const BEGIN: &str = "<!-- agentops:verification -->";
const END: &str = "<!-- /agentops:verification -->";

pub fn report_dir() -> &'static str {
    "docs/incidents/"
}

/// A free path `docs/incidents/<date>-<app>.md` (`-2`, `-3`, ... when taken).
pub fn report_path(root: &Path, app: &str, at: &str) -> String {
    let date = at.get(..10).unwrap_or(at);
    let mut n = 1;
    loop {
        let rel = if n == 1 {
            format!("{}{date}-{app}.md", report_dir())
        } else {
            format!("{}{date}-{app}-{n}.md", report_dir())
        };
        if !root.join(&rel).exists() {
            return rel;
        }
        n += 1;
    }
}

fn template(root: &Path) -> String {
    std::fs::read_to_string(root.join(OVERRIDE)).unwrap_or_else(|_| TEMPLATE.to_string())
}

fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

fn verification_data(v: Option<&Verification>) -> Value {
    let Some(v) = v else { return Value::Null };
    let headline = match v.verdict.as_str() {
        "recovered" => "Recovered: every check passed.".to_string(),
        "unknown" => "Rolled back, but recovery is UNKNOWN: the error rate could not be read.".to_string(),
        _ => "VERIFICATION FAILED: the app did not recover.".to_string(),
    };
    let checks: Vec<Value> = v
        .checks
        .iter()
        .map(|c| {
            let status = match c.status {
                CheckStatus::Passed => "passed",
                CheckStatus::Failed => "FAILED",
                CheckStatus::Unknown => "unknown",
            };
            json!({"name": c.name, "status": status, "detail": cell(&c.detail), "at": c.at})
        })
        .collect();
    json!({"verdict": v.verdict, "headline": headline, "checks": checks, "advice": v.advice})
}

fn link(plan: &RollbackPlan, sha: &str) -> Option<String> {
    plan.repo_url.as_deref().and_then(|u| git::commit_link(u, sha))
}

/// The template's data.
pub fn data(plan: &RollbackPlan, at: &str, verification: Option<&Verification>) -> Value {
    let mut timeline: Vec<(String, String)> = Vec::new();
    for c in &plan.culprit_commits {
        timeline.push((c.date.clone(), cell(&format!("commit {} \"{}\" by {}", c.short, c.subject, c.author))));
    }
    for d in &plan.deploys {
        let rate = if d.error_rate.is_some() {
            format!(", error rate {} while live", pct(d.error_rate))
        } else {
            String::new()
        };
        timeline.push((d.deployed_at.clone(), format!("deployed {} (history #{}){rate}", d.short, d.id)));
    }
    timeline.push((
        at.to_string(),
        format!("rollback to {} started by agentops", plan.target.as_ref().map(|t| t.short.as_str()).unwrap_or("?")),
    ));
    timeline.sort();
    // a report is read later: absolute times, never "2d ago"
    let target = plan.target.as_ref().map(|t| {
        let record = match &t.deploy {
            Some(d) => format!("deployed {}, error rate {} while live", d.deployed_at, pct(d.error_rate)),
            None => t.record.clone(),
        };
        json!({"short": t.short, "record": record, "link": link(plan, &t.revision)})
    });
    let culprit = plan
        .culprit_deploys
        .first()
        .map(|d| json!({"short": d.short, "deployed_at": d.deployed_at, "error_rate": pct(d.error_rate)}));
    let commits: Vec<Value> = plan
        .culprit_commits
        .iter()
        .map(|c| {
            json!({"short": c.short, "subject": c.subject, "author": c.author, "date": c.date, "files": c.files, "link": link(plan, &c.sha)})
        })
        .collect();
    let shas: Vec<&str> = plan.culprit_commits.iter().map(|c| c.short.as_str()).collect();
    let mut taken = vec![
        json!({"at": at, "action": format!("reverted {} restricted to the files of `{}` (the commit that adds this report)", shas.join(" "), plan.overlay)}),
    ];
    if let Some(r) = &plan.remote {
        taken.push(json!({"at": at, "action": format!("pushed to {} ({})", r.name, r.branch)}));
    }
    taken.push(json!({"at": at, "action": format!("sync of {} requested next{} (its result is under Verification)", plan.state.application, if plan.state.auto_sync { ", auto-sync is on" } else { "" })}));
    json!({
        "app": plan.request.app,
        "env": plan.request.env,
        "date": at.get(..10).unwrap_or(at),
        "at": at,
        "application": plan.state.application,
        "overlay": plan.overlay,
        "query": plan.metrics.query,
        "threshold": pct(Some(plan.metrics.threshold)),
        "target": target,
        "culprit": culprit,
        "culprit_commits": commits,
        "timeline": timeline.into_iter().map(|(at, event)| json!({"at": at, "event": event})).collect::<Vec<_>>(),
        "actions_taken": taken,
        "risks": plan.risks,
        "notes": plan.notes,
        "verification": verification_data(verification),
        "verification_only": false,
    })
}

fn hb() -> handlebars::Handlebars<'static> {
    let mut hb = handlebars::Handlebars::new();
    hb.register_escape_fn(handlebars::no_escape);
    hb
}

/// The incident report.
pub fn render(
    root: &Path,
    plan: &RollbackPlan,
    _path: Option<&str>,
    at: &str,
    verification: Option<&Verification>,
) -> Result<String, String> {
    hb().render_template(&template(root), &data(plan, at, verification))
        .map_err(|e| format!("incident report template: {e}"))
}

/// The report with its verification section replaced by the results.
pub fn with_verification(root: &Path, report: &str, v: &Verification) -> Result<String, String> {
    let data = json!({"verification": verification_data(Some(v)), "verification_only": true});
    let section = hb().render_template(&template(root), &data).map_err(|e| format!("incident report template: {e}"))?;
    match (report.find(BEGIN), report.find(END)) {
        (Some(b), Some(e)) if b < e => Ok(format!("{}{BEGIN}\n{}\n{}", &report[..b], section.trim(), &report[e..])),
        _ => Ok(format!("{}\n## Verification\n\n{}\n", report.trim_end(), section.trim())),
    }
}

/// The newest report of an app still waiting for its verification.
pub fn pending_report(root: &Path, app: &str) -> Option<String> {
    let dir = root.join(report_dir());
    let mut found: Vec<String> = std::fs::read_dir(&dir)
        .ok()?
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str().map(str::to_string))
        .filter(|n| n.ends_with(".md") && (n.ends_with(&format!("-{app}.md")) || n.contains(&format!("-{app}-"))))
        .filter(|n| std::fs::read_to_string(dir.join(n)).is_ok_and(|t| t.contains("Pending: agentops checks")))
        .collect();
    found.sort_by_key(|n| (n.get(..10).map(str::to_string), n.len(), n.clone()));
    found.pop().map(|n| format!("{}{n}", report_dir()))
}

/// The plan as the terminal shows it.
pub fn text(plan: &RollbackPlan) -> String {
    let mut s = String::new();
    let st = &plan.state;
    let _ = writeln!(s, "Rollback plan: {} in {}", plan.request.app, plan.request.env);
    let _ = writeln!(
        s,
        "  Application  {} ({}) · {} · {}, {}",
        st.application,
        st.namespace,
        if st.auto_sync { "auto-sync on" } else { "manual sync" },
        if st.sync_status.is_empty() { "Unknown" } else { &st.sync_status },
        if st.health.is_empty() { "Unknown" } else { &st.health }
    );
    match &plan.current {
        Some(c) => {
            let _ = writeln!(
                s,
                "  Current      {}  deployed {} ({}), error rate {} now",
                c.short,
                super::ago(c.deployed_unix),
                c.deployed_at,
                pct(plan.metrics.current)
            );
        }
        None => {
            let _ = writeln!(s, "  Current      (no deploy history)");
        }
    }
    if let Some(t) = &plan.target {
        let _ = writeln!(s, "  Target       {}  {}", t.short, t.record);
    }
    // a deploy measured below the threshold is no culprit, whatever else the plan says
    let healthy = |d: &&super::Deploy| d.error_rate.is_some_and(|r| r < plan.metrics.threshold);
    for d in plan.culprit_deploys.iter().filter(|d| !healthy(d)) {
        let _ = writeln!(
            s,
            "  Culprit      the deploy of {} at {}: error rate {} while live",
            d.short,
            d.deployed_at,
            pct(d.error_rate)
        );
    }
    match &plan.metrics.error {
        Some(e) => {
            let _ = writeln!(s, "  Error rate   unknown: {e}");
        }
        None => {
            let _ = writeln!(
                s,
                "  Error rate   {} (unhealthy at {} or more)",
                plan.metrics.query,
                pct(Some(plan.metrics.threshold))
            );
        }
    }
    if !plan.deploys.is_empty() {
        let _ = writeln!(s, "\nDeploy history (oldest first):");
        for d in &plan.deploys {
            let mark = match (&plan.current, &plan.target) {
                (Some(c), _) if c == d => "  <- current",
                (_, Some(t)) if t.deploy.as_ref() == Some(d) => "  <- target",
                _ => "",
            };
            let _ =
                writeln!(s, "  #{:<3} {}  {}  error rate {}{mark}", d.id, d.short, d.deployed_at, pct(d.error_rate));
        }
    }
    if !plan.culprit_commits.is_empty() {
        let _ = writeln!(s, "\nCommits to revert (restricted to the files of {}):", plan.overlay);
        for c in &plan.culprit_commits {
            let _ = writeln!(s, "  {}  {}  {}  {}", c.short, c.date, c.author, c.subject);
            for f in &c.files {
                let _ = writeln!(s, "           {f}");
            }
        }
    }
    if !plan.risks.is_empty() {
        let _ = writeln!(s, "\nManual follow-ups (what a revert does not undo, and what else it changes):");
        for r in &plan.risks {
            let _ = writeln!(s, "  ! [{}] {} ({}, {})", r.kind, r.message, r.commit, r.file);
        }
    }
    if !plan.actions.is_empty() {
        let _ = writeln!(s, "\nActions:");
        for (i, a) in plan.actions.iter().enumerate() {
            let _ = writeln!(s, "  {}. {a}", i + 1);
        }
        let _ = writeln!(s, "\nEstimated downtime: {}", plan.downtime);
    }
    for n in &plan.notes {
        let _ = writeln!(s, "Note: {n}");
    }
    if let Some(b) = &plan.blocked {
        let _ = writeln!(s, "\nBLOCKED: {b}");
    }
    s
}

/// A verification as the terminal shows it.
pub fn verification_text(v: &Verification) -> String {
    let mut s = String::new();
    let head = match v.verdict.as_str() {
        "recovered" => "Verification: recovered".to_string(),
        "unknown" => "Verification: UNKNOWN (rolled back; the error rate could not be read)".to_string(),
        _ => "VERIFICATION FAILED: the app did not recover".to_string(),
    };
    let _ = writeln!(s, "{head}");
    for c in &v.checks {
        let _ = writeln!(s, "  {}", check_line(c));
    }
    for a in &v.advice {
        let _ = writeln!(s, "  -> {a}");
    }
    s
}

/// One check, as a line.
pub fn check_line(c: &super::verify::Check) -> String {
    let mark = match c.status {
        CheckStatus::Passed => "ok  ",
        CheckStatus::Failed => "FAIL",
        CheckStatus::Unknown => "??  ",
    };
    format!("{mark} {:<10} {}", c.name, c.detail)
}
