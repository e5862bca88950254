//! Create plans as text: sizing per environment, the files, the gates, then the files' text.

use std::fmt::Write as _;

use crate::workflows::create::CreatePlan;

/// The summary and every file's text (what `agentops create` prints).
pub fn text(plan: &CreatePlan) -> String {
    let mut s = summary(plan);
    for f in &plan.files {
        let _ = writeln!(s, "\n--- /dev/null\n+++ b/{}", f.path);
        for l in f.content.lines() {
            let _ = writeln!(s, "+{l}");
        }
    }
    s
}

/// Sizing, the file list and the gates (what a chat shows).
pub fn summary(plan: &CreatePlan) -> String {
    let mut s = String::new();
    let kind = if plan.stateful { "StatefulSet" } else { "Deployment" };
    let _ = writeln!(
        s,
        "Create {} in namespace {} ({kind}, image {}, {} tier)",
        plan.name, plan.namespace, plan.image, plan.tier
    );
    let _ = writeln!(s, "Environments:");
    for e in &plan.envs {
        let storage = match (&plan.stateful, &e.storage_class) {
            (true, Some(c)) => format!(", storage class {c}"),
            (true, None) => ", storage class: cluster default".into(),
            _ => String::new(),
        };
        let _ = writeln!(
            s,
            "  {:<14} {:<8} replicas {}, cpu {}/{}, memory {}/{}{storage}  -> {} (Argo CD {})",
            e.env,
            e.class,
            e.size.replicas,
            e.size.cpu_request,
            e.size.cpu_limit,
            e.size.memory_request,
            e.size.memory_limit,
            e.overlay,
            e.application
        );
    }
    let _ = writeln!(s, "Files ({}):", plan.files.len());
    for f in &plan.files {
        let _ = writeln!(s, "  + {} ({} lines)", f.path, f.content.lines().count());
    }
    let _ = writeln!(s, "Gates:");
    for g in &plan.gates {
        let env = g.env.as_deref().map(|e| format!(" [{e}]")).unwrap_or_default();
        let _ = writeln!(s, "  {} {}{env}: {}", if g.ok { "ok  " } else { "FAIL" }, g.gate, g.message);
    }
    for w in &plan.warnings {
        let _ = writeln!(s, "  note: {w}");
    }
    if !plan.blocked.is_empty() {
        let _ = writeln!(s, "Blocked: {} gate(s) failed; nothing is written until they pass.", plan.blocked.len());
    }
    if let Some(c) = &plan.commit {
        let _ = writeln!(s, "Committed: {c}");
    }
    s
}
