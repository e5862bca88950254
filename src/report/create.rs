//! Create plans as text: sizing per environment, the files, the gates, then the files' text.

use std::fmt::Write as _;

use crate::workflows::create::CreatePlan;

/// The summary, then every file's text when `show_files` (what `agentops create` prints).
pub fn text(plan: &CreatePlan, show_files: bool) -> String {
    let mut s = summary(plan);
    if !show_files {
        return s;
    }
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
    let lines: usize = plan.files.iter().map(|f| f.content.lines().count()).sum();
    let bytes: usize = plan.files.iter().map(|f| f.content.len()).sum();
    let _ = writeln!(s, "Files: {} new, {lines} lines, {}:", plan.files.len(), size(bytes));
    s.push_str(&tree(plan));
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

/// The new files as a tree, each with its lines and size.
fn tree(plan: &CreatePlan) -> String {
    let mut s = String::new();
    let mut open: Vec<&str> = Vec::new();
    let mut files: Vec<_> = plan.files.iter().collect();
    files.sort_unstable_by(|a, b| a.path.cmp(&b.path));
    let width = files
        .iter()
        .map(|f| f.path.rsplit('/').next().unwrap_or(&f.path).len() + 2 * f.path.matches('/').count())
        .max()
        .unwrap_or(0);
    for f in files {
        let parts: Vec<&str> = f.path.split('/').collect();
        let (dirs, name) = parts.split_at(parts.len() - 1);
        let common = open.iter().zip(dirs).take_while(|(a, b)| a == b).count();
        open.truncate(common);
        for d in &dirs[common..] {
            let _ = writeln!(s, "  {}{d}/", "  ".repeat(open.len()));
            open.push(d);
        }
        let indent = "  ".repeat(open.len());
        let pad = width.saturating_sub(indent.len() + name[0].len());
        let _ = writeln!(
            s,
            "  {indent}{}{}  {:>4} lines  {:>8}",
            name[0],
            " ".repeat(pad),
            f.content.lines().count(),
            size(f.content.len())
        );
    }
    s
}

fn size(bytes: usize) -> String {
    if bytes < 1024 { format!("{bytes} B") } else { format!("{:.1} KiB", bytes as f64 / 1024.0) }
}
