//! Migration plans as text: the waves by what each service keeps (with what the repo says),
//! the observers, each environment's feasibility, the phases with their days, the time, the
//! rollback, and the check of the proposed changes. `agentops migrate`, ask, chat and the demo
//! print this one rendering.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use crate::workflows::migrate::changes::Check;
use crate::workflows::migrate::feasibility::Feasibility;
use crate::workflows::migrate::graph::{Graph, Usage};
use crate::workflows::migrate::plan::{self, MigrationPlan};
use crate::workflows::migrate::scan::Scan;

pub fn text(
    g: &Graph,
    feasibility: &Feasibility,
    plan: &MigrationPlan,
    check: Option<&Check>,
    document: Option<&str>,
) -> String {
    let mut s = String::new();
    let clients = g.services.iter().filter(|x| x.keeps.usage != Usage::Observer).count();
    let _ = writeln!(
        s,
        "migrate {} -> {}: {clients} services keep data in {}{}",
        g.dependency.name,
        g.to,
        g.dependency.name,
        if plan.observers.is_empty() { String::new() } else { format!("; observers: {}", plan.observers.join(", ")) }
    );
    let mut waves: BTreeMap<Usage, BTreeSet<&str>> = Default::default();
    for p in &plan.phases {
        for w in &p.waves {
            waves.entry(w.usage).or_default().extend(w.services.iter().map(String::as_str));
        }
    }
    let _ = writeln!(s, "waves (in each environment: {}):", plan::promotion_order(&g.envs).join(", "));
    for (i, (usage, services)) in waves.iter().enumerate() {
        let _ = writeln!(
            s,
            "  {}. {:<19} {}",
            i + 1,
            usage.label(),
            services.iter().copied().collect::<Vec<_>>().join(", ")
        );
        for app in services {
            if let Some(x) = g.service(app)
                && let Some(e) = x.keeps.evidence.first()
            {
                let _ = writeln!(s, "       {app}: {e}");
            }
        }
    }
    let _ = writeln!(s, "feasibility ({}):", feasibility.target.product);
    for e in &feasibility.envs {
        let verdict =
            serde_json::to_value(e.verdict).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default();
        let _ =
            writeln!(s, "  {:<14} {:<8} {:<9} {}", e.env, e.cloud.as_deref().unwrap_or("unknown"), verdict, e.evidence);
    }
    for c in &feasibility.client_changes {
        let _ = writeln!(s, "  ! {c}");
    }
    let _ = writeln!(s, "phases:");
    for (i, p) in plan.phases.iter().enumerate() {
        let waves = if p.waves.is_empty() { String::new() } else { format!(", {} waves", p.waves.len()) };
        let blocked = if p.blocked.is_some() { ", BLOCKED until decided" } else { "" };
        let _ = writeln!(
            s,
            "  {}. {} ({} h{waves}, day {}){blocked}",
            i + 1,
            p.name,
            p.estimate_hours,
            plan::days(p.start_hour, p.estimate_hours)
        );
    }
    let _ = writeln!(
        s,
        "estimate: {} h ({} days) in a {}-day window{}",
        plan.total_hours,
        plan.total_hours.div_ceil(24),
        plan.window_days,
        if plan.fits_window { "" } else { ": does NOT fit" }
    );
    let _ = writeln!(
        s,
        "rollback: {} min (target {} min){}",
        plan.rollback.estimate_minutes,
        plan.rollback.target_minutes,
        if plan.rollback.meets_target { "" } else { ": over the target" }
    );
    if let Some(c) = check {
        if c.passed() {
            let _ =
                writeln!(s, "proposed changes: checked on a scratch copy, {}/{} overlays build", c.built, c.overlays);
        } else {
            let _ = writeln!(
                s,
                "proposed changes: FAIL on a scratch copy ({}/{} build): {}",
                c.built,
                c.overlays,
                c.problems.join("; ")
            );
        }
    }
    for n in &g.notes {
        let _ = writeln!(s, "note: {n}");
    }
    if let Some(d) = document {
        let _ = writeln!(s, "document: {d} (its record beside it: {}.json)", d.trim_end_matches(".md"));
    }
    s
}

/// A scan as text: how many services reference the dependency, in how many source lines and
/// environments, and what did not render.
pub fn scan_text(scan: &Scan) -> String {
    let mut s = String::new();
    let dep = &scan.dependency;
    let own = scan.dependency.app.as_ref();
    let refs: Vec<_> = scan.findings.iter().filter(|f| Some(&f.app) != own).collect();
    let lines: BTreeSet<(&str, u32)> = refs.iter().map(|f| (f.file.as_str(), f.line)).collect();
    let services = scan.services();
    let _ = writeln!(
        s,
        "  {} services reference {} ({}): {} references from {} source lines in {} environments",
        services.len(),
        dep.name,
        dep.hosts.first().map(String::as_str).unwrap_or(dep.name.as_str()),
        refs.len(),
        lines.len(),
        scan.envs.len()
    );
    let _ = writeln!(s, "  services: {}", services.into_iter().collect::<Vec<_>>().join(", "));
    let apps = scan.findings.iter().filter(|f| Some(&f.app) == own).count();
    if apps > 0 {
        let _ = writeln!(s, "  {} itself: {apps} Argo CD Applications", dep.name);
    }
    for f in &scan.failed {
        let _ = writeln!(s, "  did not render (its references are unknown): {f}");
    }
    s
}
