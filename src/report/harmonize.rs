//! Harmonize plans as text: the population, each edit once with what it covers, the proof,
//! then the diff grouped by app.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use crate::workflows::harmonize::HarmonizePlan;

pub fn text(plan: &HarmonizePlan) -> String {
    let mut s = String::new();
    let settings: Vec<String> = plan.settings.iter().map(|x| x.describe()).collect();
    let _ = writeln!(s, "Harmonize {}: {}", plan.kind, settings.join(", "));
    let _ = writeln!(s, "Reason: {}", plan.reason.trim());
    let apps: BTreeSet<&str> = plan.population.iter().filter_map(|m| m.app.as_deref()).collect();
    let envs: BTreeSet<&str> = plan.population.iter().filter_map(|m| m.env.as_deref()).collect();
    let overlays: BTreeSet<&str> = plan.population.iter().map(|m| m.overlay.as_str()).collect();
    let _ = writeln!(
        s,
        "Population: {} {} objects in {} of {} overlays ({} app(s), {} environment(s)); {} already set",
        plan.matched,
        plan.kind,
        overlays.len(),
        plan.overlays,
        apps.len(),
        envs.len(),
        plan.covered_before
    );
    if plan.edits.is_empty() {
        let _ = writeln!(s, "Edits: none");
    } else {
        let _ = writeln!(s, "Edits ({} edit(s), {} file(s)):", plan.edits.len(), plan.files.len());
        let mut app: Option<Option<&str>> = None;
        for e in &plan.edits {
            if app != Some(e.app.as_deref()) {
                let _ = writeln!(s, "  {}", e.app.as_deref().unwrap_or("(shared)"));
                app = Some(e.app.as_deref());
            }
            let source = serde_json::to_value(e.source).ok().and_then(|v| v.as_str().map(str::to_string));
            let _ = writeln!(s, "    {}:{} [{}] {}", e.file, e.line, source.unwrap_or_default(), e.change);
            let _ = writeln!(s, "      covers {} in {}", e.objects.join(", "), e.envs_or_overlays().join(", "));
        }
    }
    if !plan.exceptions.is_empty() {
        let pending = plan.pending_exceptions().len();
        let _ = writeln!(
            s,
            "Exceptions ({}: values the repo sets on purpose, which these edits overwrite{}):",
            plan.exceptions.len(),
            match pending {
                0 => ", every one overridden by the request".to_string(),
                n if n == plan.exceptions.len() => ", none overridden yet".to_string(),
                n => format!(", {n} not overridden"),
            }
        );
        for e in &plan.exceptions {
            let wanted = e.wanted.as_deref().map_or_else(|| "(removed)".to_string(), str::to_string);
            let _ = writeln!(
                s,
                "  {} [{}] {} {:?} -> {wanted} in {}",
                e.id,
                if e.overridden { "overridden" } else { "NOT overridden" },
                e.setting,
                e.current,
                e.envs.join(", ")
            );
            let how = match e.evidence {
                crate::workflows::harmonize::Evidence::Comment => "the comment next to it",
                crate::workflows::harmonize::Evidence::HeaderComment => "the comment heading it",
                crate::workflows::harmonize::Evidence::DedicatedPatch => "a patch that only sets it",
            };
            let _ = writeln!(s, "      why ({how}): {}", e.why);
        }
        if pending > 0 {
            let _ = writeln!(
                s,
                "  -> writing stops at these: override them with --override-exceptions all (or FILE:LINE each), or leave those apps out"
            );
        }
    }
    if !plan.redundant.is_empty() {
        let removed = plan.redundant.iter().all(|r| r.removed);
        let _ = writeln!(
            s,
            "Redundant after the edits ({}: patch values equal to their base{}):",
            plan.redundant.len(),
            if removed { ", removed by the request" } else { "; --remove-redundant removes them" }
        );
        for r in &plan.redundant {
            let _ = writeln!(s, "  {} {} in {}: equal to {}", r.id, r.setting, r.envs.join(", "), r.equal_to);
        }
    }
    let _ = writeln!(
        s,
        "Proof: coverage {}/{} after the edits ({} before); {}/{} affected overlays build{}",
        plan.covered_after,
        plan.matched,
        plan.covered_before,
        plan.overlays_built,
        plan.overlays_rebuilt,
        if plan.blockers.is_empty() { "; every other rendered object unchanged" } else { "" }
    );
    if !plan.blockers.is_empty() {
        let _ = writeln!(s, "Blocked:");
        for b in &plan.blockers {
            let _ = writeln!(s, "  - {b}");
        }
    }
    if let Some(c) = &plan.commit {
        let _ = writeln!(s, "Committed: {c}");
    }
    if !plan.diff.is_empty() {
        let _ = writeln!(s, "\n{}", plan.diff.trim_end());
    }
    s
}
