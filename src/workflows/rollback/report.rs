//! The rollback's words: the plan as the terminal shows it, and the incident report
//! (`docs/incidents/<date>-<app>.md`) rendered with the handlebars template
//! `tools/templates/incident.md.hbs` (a repo may override it in `.agentops/templates/`).

use std::collections::BTreeSet;
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
    // a list of checks, one line each: a later check (or one another engineer adds) is one
    // more line
    let checks: Vec<Value> = v
        .checks
        .iter()
        .map(|c| {
            let (status, mark) = match c.status {
                CheckStatus::Passed => ("passed", "x"),
                CheckStatus::Failed => ("FAILED", " "),
                CheckStatus::Unknown => ("unknown", " "),
            };
            json!({"name": c.name, "status": status, "mark": mark, "detail": cell(&c.detail), "at": c.at})
        })
        .collect();
    json!({"verdict": v.verdict, "headline": headline, "checks": checks, "advice": v.advice})
}

fn link(plan: &RollbackPlan, sha: &str) -> Option<String> {
    plan.repo_url.as_deref().and_then(|u| git::commit_link(u, sha))
}

/// `a`, `a and b`, `a, b and c`
fn and_list(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

/// The template's data at the revert (the follow-up adds the recovery: [`followup`]).
pub fn data(plan: &RollbackPlan, at: &str, verification: Option<&Verification>) -> Value {
    let (app, env) = (&plan.request.app, &plan.request.env);
    let first_bad = plan.culprit_deploys.first();
    let target_short = plan.target.as_ref().map(|t| t.short.clone()).unwrap_or_default();
    let shas: Vec<String> = plan.culprit_commits.iter().map(|c| c.short.clone()).collect();
    // every environment the revert changes
    let scope_envs: Vec<String> =
        plan.scope.iter().map(|s| s.env.clone().unwrap_or_else(|| s.overlay.clone())).collect();
    let scope_words = match scope_envs.len() {
        0 | 1 => env.clone(),
        n if n == plan.scope.len() && n >= 3 => format!("all {n} environments"),
        _ => and_list(&scope_envs),
    };
    let scope: Vec<Value> = plan
        .scope
        .iter()
        .map(|s| {
            let when = if s.incident {
                "synced by this rollback and verified below".to_string()
            } else if s.auto_sync {
                "auto-sync: it changes at the next sync".to_string()
            } else {
                "manual sync: it changes at its next sync; check it then".to_string()
            };
            json!({
                "env": s.env.clone().unwrap_or_else(|| s.overlay.clone()),
                "overlay": s.overlay,
                "application": s.application,
                "incident": s.incident,
                "when": when,
            })
        })
        .collect();
    // the timeline: what happened, in order, in absolute times
    let mut timeline: Vec<(String, String)> = Vec::new();
    for c in &plan.culprit_commits {
        timeline.push((c.date.clone(), cell(&format!("{} \"{}\" committed by {}", c.short, c.subject, c.author))));
    }
    for d in &plan.deploys {
        let rate = if d.error_rate.is_some() {
            format!(", error rate {} while live", pct(d.error_rate))
        } else {
            String::new()
        };
        let what = if first_bad == Some(d) {
            format!("{} deployed to {env}: the first bad deploy{rate}", d.short)
        } else {
            format!("{} deployed to {env}{rate}", d.short)
        };
        timeline.push((d.deployed_at.clone(), what));
    }
    timeline.push((
        at.to_string(),
        format!("rollback started by agentops: {} reverted (the revert commit adds this report)", and_list(&shas)),
    ));
    timeline.push((at.to_string(), format!("sync of {} requested", plan.state.application)));
    timeline.sort_by(|a, b| a.0.cmp(&b.0));
    // a report is read later: absolute times, never "2d ago"
    let target = plan.target.as_ref().map(|t| {
        let record = match &t.deploy {
            Some(d) => format!("deployed {}, error rate {} while live", d.deployed_at, pct(d.error_rate)),
            None => t.record.clone(),
        };
        json!({"short": t.short, "record": record, "link": link(plan, &t.revision)})
    });
    let culprit = first_bad.map(|d| {
        json!({"short": d.short, "deployed_at": d.deployed_at, "deployed_unix": d.deployed_unix, "error_rate": pct(d.error_rate)})
    });
    let commits: Vec<Value> = plan
        .culprit_commits
        .iter()
        .map(|c| {
            let diffs: Vec<Value> = plan
                .culprit_diffs
                .iter()
                .filter(|d| d.commit == c.short)
                .map(|d| json!({"file": d.file, "diff": d.diff.trim_end()}))
                .collect();
            json!({"short": c.short, "subject": c.subject, "author": c.author, "date": c.date, "files": c.files,
                   "link": link(plan, &c.sha), "diffs": diffs})
        })
        .collect();
    // what the revert does not undo; what else it changes is the scope above
    let risks: Vec<&super::risks::Risk> = plan.risks.iter().filter(|r| r.kind != "shared").collect();
    let summary = {
        let mut s = match first_bad {
            Some(d) => format!(
                "After {} was deployed to {env} at {}, the error rate of {app} there was {} (unhealthy at {} or more).",
                d.short,
                d.deployed_at,
                pct(d.error_rate),
                pct(Some(plan.metrics.threshold))
            ),
            None => format!("{app} in {env} was unhealthy."),
        };
        s.push_str(&format!(" agentops reverted {} in the app's files, back to {target_short}.", and_list(&shas)));
        if plan.scope.len() > 1 {
            let files: BTreeSet<&str> =
                plan.culprit_commits.iter().flat_map(|c| c.files.iter().map(String::as_str)).collect();
            s.push_str(&format!(
                " The reverted {} {} shared, so the revert changes {scope_words} ({}), not only {env}.",
                if files.len() == 1 { "file" } else { "files" },
                if files.len() == 1 { "is" } else { "are" },
                and_list(&scope_envs)
            ));
        }
        s
    };
    json!({
        "app": app,
        "env": env,
        "date": at.get(..10).unwrap_or(at),
        "at": at,
        "application": plan.state.application,
        "overlay": plan.overlay,
        "query": plan.metrics.query,
        "threshold": pct(Some(plan.metrics.threshold)),
        "threshold_ratio": plan.metrics.threshold,
        "target": target,
        "culprit": culprit,
        "culprit_shas": and_list(&shas),
        "culprit_commits": commits,
        "scope": scope,
        "scope_words": scope_words,
        "summary": summary,
        "timeline": timeline.into_iter().map(|(at, event)| json!({"at": at, "event": event})).collect::<Vec<_>>(),
        "risks": risks,
        "notes": plan.notes,
        "revert": Value::Null,
        "recovery": Value::Null,
        "impact": Value::Null,
        "verification": verification_data(verification),
        "verification_only": false,
    })
}

/// What the follow-up knows once the rollback is verified.
pub struct Followup<'a> {
    pub verification: &'a Verification,
    /// The revert commit (full sha) and its web link, when the repo URL is known.
    pub revert: Option<(String, Option<String>)>,
    /// Error ratio samples from Prometheus: (unix time, ratio).
    pub samples: Vec<(f64, f64)>,
    /// Why there are no samples, when there are none.
    pub samples_error: Option<String>,
    /// A Prometheus graph of the same window, when the Prometheus base URL is known.
    pub graph_url: Option<String>,
}

fn at_unix(t: i64) -> String {
    crate::time::format_time(std::time::UNIX_EPOCH + std::time::Duration::from_secs(t.max(0) as u64), false)
}

/// The report's data with the recovery: the revert commit linked, recovered-at and the time
/// to recovery on the timeline, the error ratio over the incident, and the verification.
pub fn followup(data: &mut Value, f: &Followup<'_>) {
    let v = f.verification;
    let threshold = data["threshold_ratio"].as_f64().unwrap_or(0.05);
    if let Some((sha, link)) = &f.revert {
        let short: String = sha.chars().take(7).collect();
        data["revert"] = json!({"short": short, "sha": sha, "link": link});
        if let Some(rows) = data["timeline"].as_array_mut() {
            for r in rows.iter_mut() {
                if let Some(e) = r["event"].as_str().filter(|e| e.contains("(the revert commit adds this report)")) {
                    r["event"] = json!(e.replace("(the revert commit adds this report)", &format!("as {short}")));
                }
                if let Some(e) = r["event"].as_str().filter(|e| e.starts_with("sync of ") && e.ends_with(" requested"))
                {
                    r["event"] = json!(format!("{e} (to {short})"));
                }
            }
        }
    }
    let last = v.checks.iter().filter_map(|c| crate::time::parse_time(&c.at)).max();
    if v.recovered()
        && let Some(t) = last
    {
        let from = data.pointer("/culprit/deployed_unix").and_then(Value::as_i64);
        let ttr = from.map(|b| crate::time::duration_words(t - b));
        let started = data["at"].as_str().and_then(crate::time::parse_time);
        data["recovery"] = json!({
            "at": at_unix(t),
            "ttr": ttr,
            "since_rollback": started.map(|s| crate::time::duration_words(t - s)),
        });
        if let Some(rows) = data["timeline"].as_array_mut() {
            let detail = v.checks.iter().find(|c| c.name == "error-rate").map(|c| c.detail.clone()).unwrap_or_default();
            rows.push(json!({"at": at_unix(t), "event": cell(&format!("recovered: every check passed, error rate {detail}"))}));
        }
    } else if let Some(t) = last
        && let Some(rows) = data["timeline"].as_array_mut()
    {
        rows.push(json!({"at": at_unix(t), "event": format!("verification ended: {}", v.verdict)}));
    }
    // the error ratio over the incident
    if !f.samples.is_empty() || f.samples_error.is_some() || f.graph_url.is_some() {
        let samples: Vec<Value> = f
            .samples
            .iter()
            .map(|(t, r)| json!({"at": at_unix(*t as i64), "ratio": pct(Some(*r)), "bad": *r >= threshold}))
            .collect();
        let peak = f.samples.iter().cloned().fold(None::<(f64, f64)>, |m, s| match m {
            Some(p) if p.1 >= s.1 => Some(p),
            _ => Some(s),
        });
        let above: Vec<f64> = f.samples.iter().filter(|s| s.1 >= threshold).map(|s| s.0).collect();
        let above = match (above.first(), above.last()) {
            (Some(a), Some(b)) => Some(json!({"from": at_unix(*a as i64), "to": at_unix(*b as i64)})),
            _ => None,
        };
        data["impact"] = json!({
            "samples": samples,
            "peak": peak.map(|p| json!({"at": at_unix(p.0 as i64), "ratio": pct(Some(p.1))})),
            "above": above,
            "error": f.samples_error,
            "graph_url": f.graph_url,
        });
    }
    data["verification"] = verification_data(Some(v));
}

/// A Prometheus expression browser link (`/graph`) for `query` over `[start, end]`.
pub fn graph_url(base: &str, query: &str, start: i64, end: i64) -> String {
    let enc = |s: &str| -> String {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
                _ => format!("%{b:02X}"),
            })
            .collect()
    };
    let end_text = at_unix(end).replace('T', " ").trim_end_matches('Z').to_string();
    format!(
        "{}/graph?g0.expr={}&g0.tab=0&g0.range_input={}s&g0.end_input={}",
        base.trim_end_matches('/'),
        enc(query),
        (end - start).max(1),
        enc(&end_text)
    )
}

fn hb() -> handlebars::Handlebars<'static> {
    let mut hb = handlebars::Handlebars::new();
    hb.register_escape_fn(handlebars::no_escape);
    hb
}

/// Renders the report from its data.
pub fn render_data(root: &Path, data: &Value) -> Result<String, String> {
    let text = hb().render_template(&template(root), data).map_err(|e| format!("incident report template: {e}"))?;
    // the blank lines the template's blocks leave
    let mut out = String::new();
    let mut blank = 0;
    for line in text.lines() {
        if line.trim().is_empty() {
            blank += 1;
            if blank > 1 {
                continue;
            }
        } else {
            blank = 0;
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    Ok(out)
}

/// The record beside a report (`<report>.json`): the data it was rendered from, so the
/// follow-up renders it again with the recovery, and a hash of the text as written, so a
/// report edited by hand is not rendered over.
pub fn record_path(report: &str) -> String {
    format!("{}.json", report.trim_end_matches(".md"))
}

pub fn record(report_rel: &str, data: &Value, markdown: &str) -> Value {
    json!({
        crate::workflows::commit::draft::RECORD_KEY: {"workflow": "rollback", "document": report_rel},
        "data": data,
        "markdown": crate::workflows::fingerprint::of(&markdown),
    })
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
    for n in plan.notes.iter().chain(&plan.console_notes) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn graph_links_open_the_expression_browser_on_the_incident() {
        let u =
            graph_url("https://prometheus.acme.example/", "http_error_ratio{app=\"a\"}", 1_700_000_000, 1_700_000_600);
        assert_eq!(
            u,
            "https://prometheus.acme.example/graph?g0.expr=http_error_ratio%7Bapp%3D%22a%22%7D&g0.tab=0&g0.range_input=600s&g0.end_input=2023-11-14%2022%3A23%3A20"
        );
    }

    #[test]
    fn the_followup_links_the_revert_and_adds_recovery_and_impact() {
        let mut data = json!({
            "at": "2026-01-01T10:00:10Z",
            "threshold_ratio": 0.05,
            "culprit": {"deployed_unix": 1_767_261_600},
            "timeline": [
                {"at": "2026-01-01T10:00:10Z", "event": "rollback started by agentops: abc1234 reverted (the revert commit adds this report)"},
                {"at": "2026-01-01T10:00:10Z", "event": "sync of x-prod requested"}
            ],
        });
        let v = Verification {
            verdict: "recovered".into(),
            checks: vec![super::super::verify::Check {
                name: "error-rate".into(),
                status: CheckStatus::Passed,
                detail: "0.1% (below 5.0%)".into(),
                at: "2026-01-01T10:01:12Z".into(),
            }],
            advice: vec![],
        };
        let f = Followup {
            verification: &v,
            revert: Some(("f1cf9c9aaaa".into(), Some("https://git.example/commit/f1cf9c9aaaa".into()))),
            samples: vec![(1_767_261_590.0, 0.001), (1_767_261_620.0, 0.87), (1_767_261_680.0, 0.001)],
            samples_error: None,
            graph_url: Some("https://p/graph".into()),
        };
        followup(&mut data, &f);
        assert_eq!(data["revert"]["short"], "f1cf9c9");
        assert_eq!(data["timeline"][0]["event"], "rollback started by agentops: abc1234 reverted as f1cf9c9");
        assert_eq!(data["timeline"][1]["event"], "sync of x-prod requested (to f1cf9c9)");
        assert_eq!(data["timeline"][2]["event"], "recovered: every check passed, error rate 0.1% (below 5.0%)");
        assert_eq!(data["recovery"]["ttr"], "1 min 12 s", "from the first bad deploy");
        assert_eq!(data["recovery"]["since_rollback"], "1 min 2 s");
        assert_eq!(data["impact"]["peak"]["ratio"], "87.0%");
        assert_eq!(data["impact"]["above"]["from"], "2026-01-01T10:00:20Z");
        assert_eq!(data["impact"]["samples"][1]["bad"], true);
        assert_eq!(data["verification"]["checks"][0]["mark"], "x");
    }
}
