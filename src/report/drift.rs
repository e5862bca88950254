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
    let _ = writeln!(
        out,
        "{}: {} drifted, {} acknowledged, {} missing, {} untracked across {} applications and {} objects; {} of {} clusters could not be checked.",
        verdict(report),
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

/// The headline: DRIFT when any checked cluster has unacknowledged drift; otherwise NO DRIFT
/// only when every cluster was checked, NO DRIFT in the checked ones when some failed, and
/// UNKNOWN when none could be checked.
fn verdict(report: &DriftReport) -> String {
    let failed = report.summary.clusters_failed;
    let checked = report.clusters.len().saturating_sub(failed);
    if report.has_drift() {
        "DRIFT".into()
    } else if failed == 0 && report.summary.applications_unchecked > 0 {
        format!(
            "NO DRIFT in the checked applications ({} not checked: their overlays do not build)",
            report.summary.applications_unchecked
        )
    } else if failed == 0 {
        "NO DRIFT".into()
    } else if checked == 0 {
        "UNKNOWN (no cluster could be checked)".into()
    } else {
        format!("NO DRIFT in the {checked} checked cluster{}", if checked == 1 { "" } else { "s" })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workflows::drift::{ClusterState, DriftSummary};

    fn report(ok: usize, failed: usize) -> DriftReport {
        let cluster = |i: usize, status: &str| ClusterState {
            env: format!("env{i}"),
            context: format!("env{i}"),
            status: status.into(),
            error: (status == "error").then(|| "connection refused".into()),
        };
        DriftReport {
            clusters: (0..ok).map(|i| cluster(i, "ok")).chain((ok..ok + failed).map(|i| cluster(i, "error"))).collect(),
            summary: DriftSummary { clusters_failed: failed, ..DriftSummary::default() },
            ..DriftReport::default()
        }
    }

    fn headline(r: &DriftReport) -> String {
        text(r).lines().last().unwrap_or_default().to_string()
    }

    #[test]
    fn no_drift_is_claimed_only_for_clusters_that_were_checked() {
        let all = headline(&report(2, 0));
        assert!(all.starts_with("NO DRIFT: 0 drifted"), "{all}");
        let none = headline(&report(0, 2));
        assert!(none.starts_with("UNKNOWN (no cluster could be checked): "), "{none}");
        assert!(none.ends_with("2 of 2 clusters could not be checked."), "{none}");
        assert!(!none.contains("NO DRIFT"), "{none}");
        let some = headline(&report(1, 2));
        assert!(some.starts_with("NO DRIFT in the 1 checked cluster: "), "{some}");
        assert!(some.ends_with("2 of 3 clusters could not be checked."), "{some}");
        assert!(headline(&report(2, 1)).starts_with("NO DRIFT in the 2 checked clusters: "));
    }
}
