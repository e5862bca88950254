//! Text rendering of a drift report: one block per drifted object, in a few lines, and
//! one per Application for objects a cluster does not run.

use std::fmt::Write as _;

use crate::workflows::drift::{Drift, DriftReport};

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
    // objects git renders that a cluster does not run: one block per Application (an app
    // never synced there misses all of them), so the changed objects stay readable
    let mut missing: Vec<(&Drift, Vec<&str>)> = Vec::new();
    for d in report.drifts.iter().filter(|d| d.status == "missing") {
        match missing.iter_mut().find(|(m, _)| m.env == d.env && m.application == d.application) {
            Some((_, objects)) => objects.push(&d.object),
            None => missing.push((d, vec![&d.object])),
        }
    }
    for (d, objects) in &missing {
        let (env, application, overlay, recommendations) = (&d.env, &d.application, &d.overlay, &d.recommendations);
        let shown: Vec<&str> = objects.iter().take(4).copied().collect();
        let more = objects.len().saturating_sub(shown.len());
        let _ = writeln!(
            out,
            "{env} {application} [missing]: {} object{} from {overlay} not in the cluster: {}{}",
            objects.len(),
            if objects.len() == 1 { "" } else { "s" },
            shown.join(", "),
            if more > 0 { format!(" and {more} more") } else { String::new() }
        );
        if let Some(r) = recommendations.first() {
            let _ = writeln!(out, "  -> {r}");
        }
        out.push('\n');
    }
    for d in report.drifts.iter().filter(|d| d.status != "missing") {
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
    if !report.suppressed.is_empty() {
        let _ = writeln!(out, "not drift ({} differences):", report.suppressed.len());
        for s in &report.suppressed {
            let value = match &s.value {
                Some(serde_json::Value::String(v)) => v.clone(),
                Some(v) => v.to_string(),
                None => "(none)".into(),
            };
            let by = s.manager.as_deref().map(|m| format!(", owned by {m}")).unwrap_or_default();
            let _ = writeln!(out, "  {} {} {} = {value} ({}{by})", s.env, s.object, s.path, s.cause);
        }
        out.push('\n');
    }
    let s = &report.summary;
    if !s.suppressed.is_empty() {
        let counts: Vec<String> = s.suppressed.iter().map(|(cause, n)| format!("{n} {cause}")).collect();
        let total: usize = s.suppressed.values().sum();
        let hint = if report.suppressed.is_empty() { " (--show-suppressed lists them)" } else { "" };
        let _ = writeln!(out, "Not drift: {total} differences ({}){hint}.", counts.join(", "));
    }
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

    #[test]
    fn missing_objects_are_one_block_per_application() {
        let drift = |object: &str, status: &str, application: &str| Drift {
            env: "dev".into(),
            app: "grafana".into(),
            application: application.into(),
            overlay: "apps/grafana/overlays/dev".into(),
            object: object.into(),
            status: status.into(),
            recommendations: vec![format!("sync {application}")],
            ..Drift::default()
        };
        let mut r = report(1, 0);
        for i in 0..6 {
            r.drifts.push(drift(&format!("ConfigMap/monitoring/c{i}"), "missing", "grafana-dev"));
        }
        r.drifts.push(drift("Service/web/web", "missing", "web-dev"));
        r.drifts.push(drift("Deployment/monitoring/grafana", "drifted", "grafana-dev"));
        let t = text(&r);
        let grafana = "dev grafana-dev [missing]: 6 objects from apps/grafana/overlays/dev not in the cluster: \
                       ConfigMap/monitoring/c0, ConfigMap/monitoring/c1, ConfigMap/monitoring/c2, ConfigMap/monitoring/c3 and 2 more";
        assert!(t.contains(grafana), "{t}");
        assert!(t.contains(
            "dev web-dev [missing]: 1 object from apps/grafana/overlays/dev not in the cluster: Service/web/web"
        ));
        assert_eq!(t.matches("[missing]").count(), 2, "{t}");
        assert_eq!(t.matches("  -> sync grafana-dev").count(), 2, "the missing block and the drifted object: {t}");
        assert!(t.contains("dev Deployment/monitoring/grafana [drifted]"), "{t}");
    }
}
