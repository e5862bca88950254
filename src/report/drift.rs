//! Text rendering of a drift report: one block per drifted object, in a few lines.

use std::fmt::Write as _;

use crate::workflows::drift::DriftReport;

pub fn text(report: &DriftReport) -> String {
    let mut out = String::new();
    for c in report.clusters.iter().filter(|c| c.status != "ok") {
        let _ = writeln!(
            out,
            "cluster {} (context {}) could not be checked: {}\n",
            c.env,
            c.context,
            c.error.as_deref().unwrap_or("unknown error")
        );
    }
    for w in &report.warnings {
        let _ = writeln!(out, "warning: {w}\n");
    }
    for d in &report.drifts {
        let _ = writeln!(out, "{} {} [{}]", d.env, d.object, d.status);
        let _ = writeln!(out, "  app {} (Argo CD {}), overlay {}", d.app, d.application, d.overlay);
        for c in &d.changes {
            let _ = writeln!(out, "  {}", c.summary);
        }
        if let Some(n) = &d.note {
            let _ = writeln!(out, "  note: {n}");
        }
        if let Some(s) = &d.last_sync {
            let _ = writeln!(
                out,
                "  last git sync: {} at {}",
                s.revision.as_deref().unwrap_or("?"),
                s.time.as_deref().unwrap_or("?")
            );
        }
        for a in &d.attribution {
            let who = match (&a.user, &a.source_ip) {
                (Some(u), Some(ip)) => format!(", by {u} from {ip}"),
                (Some(u), None) => format!(", by {u}"),
                _ => String::new(),
            };
            let _ = writeln!(
                out,
                "  modified: {} ({}) at or before {}{who}",
                a.manager,
                a.operation,
                a.time.as_deref().unwrap_or("an unknown time")
            );
        }
        for r in &d.recommendations {
            let _ = writeln!(out, "  -> {r}");
        }
        out.push('\n');
    }
    let s = &report.summary;
    let verdict = if report.has_drift() { "DRIFT" } else { "NO DRIFT" };
    let _ = writeln!(
        out,
        "{verdict}: {} drifted, {} acknowledged, {} missing, {} untracked across {} applications and {} objects; {} of {} clusters could not be checked.",
        s.drifted,
        s.acknowledged,
        s.missing,
        s.untracked,
        s.applications,
        s.objects,
        s.clusters_failed,
        report.clusters.len()
    );
    out
}
