//! Writing a proven plan, all or nothing: the files are checked to be what the plan was made
//! from, written (each through a temporary file and a rename), re-rendered in place and
//! compared with the proof, then committed. Any failure, and an interrupt (see
//! [`interrupt`]), puts every byte of every file back.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::{HarmonizePlan, first_line};
use crate::error::{Error, Result};
use crate::kustomize::Engine;
use crate::repo::Repo;

/// Test hooks: make a step fail on purpose (the CLI reads `AGENTOPS_FAILPOINT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The n-th file write (from 1) fails.
    WriteFails(usize),
    /// After writing, the first edited file is damaged so the in-place build fails.
    BreakAfterWrite,
    /// After writing, wait this many seconds (to be interrupted).
    PauseAfterWrite(u64),
    /// The commit fails.
    CommitFails,
}

impl Fault {
    /// `harmonize-write-fails:N`, `harmonize-break-after-write`, `harmonize-pause-after-write:SECS`,
    /// `harmonize-commit-fails`.
    pub fn parse(s: &str) -> Option<Fault> {
        let (name, arg) = s.split_once(':').map_or((s, None), |(n, a)| (n, a.parse::<u64>().ok()));
        match name {
            "harmonize-write-fails" => Some(Fault::WriteFails(arg.unwrap_or(1) as usize)),
            "harmonize-break-after-write" => Some(Fault::BreakAfterWrite),
            "harmonize-pause-after-write" => Some(Fault::PauseAfterWrite(arg.unwrap_or(30))),
            "harmonize-commit-fails" => Some(Fault::CommitFails),
            _ => None,
        }
    }

    pub fn from_env() -> Option<Fault> {
        std::env::var("AGENTOPS_FAILPOINT").ok().and_then(|s| Fault::parse(&s))
    }
}

/// Files written so far with their original bytes, and whether an interrupt came.
struct InFlight {
    /// Original bytes; None for a file the apply created.
    files: Vec<(PathBuf, Option<Vec<u8>>)>,
    aborted: bool,
}

static IN_FLIGHT: Mutex<InFlight> = Mutex::new(InFlight { files: Vec::new(), aborted: false });

fn lock() -> std::sync::MutexGuard<'static, InFlight> {
    IN_FLIGHT.lock().unwrap_or_else(|p| p.into_inner())
}

/// Restores every file an apply in progress has written and makes it stop; returns how many
/// files were restored. Called from a Ctrl-C handler; a finished (committed) apply is left alone.
pub fn interrupt() -> usize {
    let mut g = lock();
    g.aborted = true;
    let files = std::mem::take(&mut g.files);
    restore(&files);
    files.len()
}

fn restore(files: &[(PathBuf, Option<Vec<u8>>)]) {
    for (path, bytes) in files.iter().rev() {
        match bytes {
            None => {
                let _ = std::fs::remove_file(path);
            }
            Some(bytes) => {
                if write_file(path, bytes).is_err() {
                    // last resort: a plain write keeps the content even if the rename is refused
                    let _ = std::fs::write(path, bytes);
                }
            }
        }
    }
}

/// Writes through a temporary sibling and a rename, keeping the file's permissions.
fn write_file(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.agentops-{}", std::process::id()));
    std::fs::write(&tmp, bytes)?;
    if let Ok(m) = std::fs::metadata(path) {
        let _ = std::fs::set_permissions(&tmp, m.permissions());
    }
    std::fs::rename(&tmp, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

fn undo_and(files: Vec<(PathBuf, Option<Vec<u8>>)>, err: Error) -> Error {
    let mut g = lock();
    restore(&files);
    g.files.clear();
    err
}

/// Writes, checks and (with `commit`) commits a proven plan. On any failure every edited file
/// is restored byte for byte and the error says what blocked it.
pub fn apply(repo: &Repo, engine: &Engine, plan: &mut HarmonizePlan, commit: bool, fault: Option<Fault>) -> Result<()> {
    if !plan.is_proven() {
        return Err(Error::Usage(format!(
            "harmonize is blocked (nothing was changed):\n  {}",
            plan.blockers.iter().map(|b| first_line(b)).collect::<Vec<_>>().join("\n  ")
        )));
    }
    let pending = plan.pending_exceptions();
    if !pending.is_empty() {
        let list: Vec<String> = pending.iter().map(|e| format!("{} ({}): {}", e.id, e.current, e.why)).collect();
        return Err(Error::Usage(format!(
            "{} value(s) are set on purpose and would be overwritten; nothing was changed:\n  {}\noverride them explicitly: --override-exceptions all, or name each (--override-exceptions FILE:LINE)",
            pending.len(),
            list.join("\n  ")
        )));
    }
    if plan.texts.is_empty() {
        return Ok(());
    }
    for (f, (old, _)) in &plan.texts {
        if plan.created.contains(f) {
            if repo.abs(f).exists() {
                return Err(Error::Usage(format!("{f} appeared since the plan was made; run harmonize again")));
            }
            continue;
        }
        let now = crate::config::limits::read_text(&repo.abs(f), repo.config.limits.file_bytes)?;
        if &now != old {
            return Err(Error::Usage(format!("{f} changed since the plan was made; run harmonize again")));
        }
        let meta = std::fs::metadata(repo.abs(f)).map_err(|e| Error::io(&repo.abs(f), e))?;
        if meta.permissions().readonly() {
            return Err(Error::Usage(format!("{f} is read-only; nothing was changed")));
        }
    }

    // write, remembering originals where an interrupt can find them
    {
        let mut g = lock();
        g.files.clear();
        g.aborted = false;
    }
    for (n, (f, (old, new))) in plan.texts.iter().enumerate() {
        let path = repo.abs(f);
        let mut g = lock();
        if g.aborted {
            return Err(Error::Usage("interrupted; every file was restored".into()));
        }
        let original = (!plan.created.contains(f)).then(|| old.clone().into_bytes());
        g.files.push((path.clone(), original));
        let r = if fault == Some(Fault::WriteFails(n + 1)) {
            Err(std::io::Error::new(std::io::ErrorKind::PermissionDenied, "injected write failure"))
        } else if plan.deleted.contains(f) {
            std::fs::remove_file(&path)
        } else {
            write_file(&path, new.as_bytes())
        };
        if let Err(e) = r {
            let files = std::mem::take(&mut g.files);
            drop(g);
            return Err(undo_and(files, Error::Usage(format!("cannot write {f}: {e}; every file was restored"))));
        }
    }
    match fault {
        Some(Fault::BreakAfterWrite) => {
            if let Some(f) = plan.texts.keys().next() {
                let _ = std::fs::write(repo.abs(f), "kind: [broken\n");
            }
        }
        Some(Fault::PauseAfterWrite(secs)) => std::thread::sleep(std::time::Duration::from_secs(secs)),
        _ => {}
    }

    // the same renderings in place
    let check = (|| -> Result<()> {
        engine.invalidate();
        let fresh = Repo::load_with(&repo.root, repo.config.clone())?;
        for dir in &plan.affected {
            let out = engine.build(&fresh, dir);
            match (&out.error, plan.rendered_after.get(dir)) {
                (Some(e), Some(_)) => {
                    return Err(Error::Usage(format!("{dir} does not build after writing: {}", first_line(e))));
                }
                (None, Some(expected)) if &out.stdout != expected => {
                    return Err(Error::Usage(format!("{dir} renders differently in place than in the proof")));
                }
                _ => {}
            }
        }
        Ok(())
    })();

    let mut g = lock();
    if g.aborted {
        return Err(Error::Usage("interrupted; every file was restored".into()));
    }
    let files = std::mem::take(&mut g.files);
    if let Err(e) = check {
        drop(g);
        return Err(undo_and(files, Error::Usage(format!("{e}; every file was restored"))));
    }
    if commit {
        let message = drafted_message(repo, engine, plan);
        let r = if fault == Some(Fault::CommitFails) {
            Err(Error::Git("injected commit failure".into()))
        } else {
            crate::git::commit_paths(&repo.root, &plan.files, &message, None)
        };
        match r {
            Ok(sha) => plan.commit = Some(sha),
            Err(e) => {
                drop(g);
                return Err(undo_and(files, Error::Usage(format!("commit failed: {e}; every file was restored"))));
            }
        }
    }
    Ok(())
}

/// The commit message: the harmonize summary (change, scope, coverage, the exceptions it
/// overrode, the edits at the source) as the body, with the commit drafter's validation of
/// the affected overlays and the reason as the drafter writes it (ticket ids as `Refs:`).
/// Falls back to [`commit_message`] if drafting fails.
fn drafted_message(repo: &Repo, engine: &Engine, plan: &HarmonizePlan) -> String {
    let parts = commit_parts(plan);
    let opts = crate::workflows::commit::draft::DraftOptions {
        reason: Some(plan.reason.clone()),
        type_: Some(parts.type_.clone()),
        scope: parts.scope.clone(),
        subject: Some(parts.subject.clone()),
        body: Some(parts.body.clone()),
        paths: Some(plan.files.clone()),
        ..Default::default()
    };
    let redactor = crate::k8s::redact::Redactor::new();
    match crate::workflows::commit::draft::draft(&repo.root, engine, &redactor, &opts, crate::kustomize::default_jobs())
    {
        Ok(d) => d.message,
        Err(_) => commit_message(plan),
    }
}

/// The message without the drafter: the same subject and body, the reason, the build line.
pub fn commit_message(plan: &HarmonizePlan) -> String {
    let p = commit_parts(plan);
    let head = match &p.scope {
        Some(s) => format!("{}({s}): {}", p.type_, p.subject),
        None => format!("{}: {}", p.type_, p.subject),
    };
    format!(
        "{head}\n\n{}\n\n{}\n\nValidated: kustomize build {}/{} affected overlays; every other\nrendered object unchanged\n",
        p.body.join("\n"),
        plan.reason.trim(),
        plan.overlays_built,
        plan.overlays_rebuilt
    )
}

/// `fix`-free wording: enforcing a setting is a feature of the fleet; removing one is upkeep.
pub fn commit_parts(plan: &HarmonizePlan) -> crate::workflows::commit::draft::WorkflowCommit {
    let kinds = plural(&plan.kind.to_ascii_lowercase());
    let security = plan.settings.iter().any(|s| {
        let k = s.key.to_ascii_lowercase();
        ["ssl", "tls", "auth", "cors", "waf", "security", "hsts", "cert"].iter().any(|w| k.contains(w))
    });
    let scope = if security { "security".to_string() } else { plan.kind.to_ascii_lowercase() };
    let all_set = plan.settings.iter().all(|s| s.value.is_some());
    let ty = if all_set { "feat" } else { "chore" };
    let scoped: BTreeSet<&str> = plan.population.iter().filter_map(|m| m.app.as_deref()).collect();
    let envs: BTreeSet<&str> = plan.population.iter().filter_map(|m| m.env.as_deref()).collect();
    let everywhere = plan.env.is_empty() && plan.app.is_empty() && plan.name.is_none();
    let target = if everywhere { format!("all {kinds}") } else { kinds.clone() };
    let what = match plan.settings.as_slice() {
        [s] if s.key.ends_with("ssl-protocols") && s.value.as_deref() == Some("TLSv1.3") => "enforce TLS 1.3".into(),
        [s] => match &s.value {
            Some(v) => format!("set {}={v}", short_key(&s.key)),
            None => format!("remove {}", short_key(&s.key)),
        },
        many => format!("harmonize {} settings", many.len()),
    };
    let prep = if all_set { "on" } else { "from" };
    let mut subject = format!("{what} {prep} {target}");
    if format!("{ty}({scope}): {subject}").chars().count() > 72 {
        subject = format!("harmonize {} {}", plan.settings.len(), kinds);
    }
    let overlays: BTreeSet<&str> = plan.population.iter().map(|m| m.overlay.as_str()).collect();
    let n = |count: usize, one: &str| format!("{count} {}", if count == 1 { one.to_string() } else { plural(one) });
    let mut body = Vec::new();
    for s in &plan.settings {
        body.push(format!("Change: {}", s.describe()));
    }
    let apps: Vec<&str> = scoped.iter().copied().collect();
    body.push(format!("Scope: {} ({}), {}", n(scoped.len(), "app"), apps.join(", "), n(envs.len(), "environment")));
    body.push(format!(
        "Coverage: {}/{} {} objects across {} ({} already set)",
        plan.covered_after,
        plan.matched,
        plan.kind,
        n(overlays.len(), "overlay"),
        plan.covered_before
    ));
    if !plan.exceptions.is_empty() {
        body.push(String::new());
        body.push(format!(
            "Exceptions overridden ({}: values the repo set on purpose):",
            plan.exceptions.iter().filter(|e| e.overridden).count()
        ));
        for e in plan.exceptions.iter().filter(|e| e.overridden) {
            body.push(format!(
                "- {} ({}): {:?} -> {}; it said: \"{}\"",
                e.id,
                e.envs.join(", "),
                e.current,
                e.wanted.as_deref().unwrap_or("(removed)"),
                e.why
            ));
        }
    }
    if !plan.redundant.is_empty() {
        body.push(String::new());
        let removed = plan.redundant.iter().all(|r| r.removed);
        body.push(if removed {
            "Removed, equal to their base after the change:".to_string()
        } else {
            "Equal to their base after the change (can be removed):".to_string()
        });
        for r in &plan.redundant {
            body.push(format!("- {} ({}), as {}", r.id, r.envs.join(", "), r.equal_to));
        }
    }
    body.push(String::new());
    body.push(format!("Edited at the source ({}):", n(plan.files.len(), "file")));
    for e in &plan.edits {
        let source = serde_json::to_value(e.source).ok().and_then(|v| v.as_str().map(str::to_string));
        let change = if plan.settings.len() > 1 { format!(", {}", e.change) } else { String::new() };
        body.push(format!(
            "- {} ({}): {}, {}{change}",
            e.file,
            source.unwrap_or_default(),
            n(e.objects.len(), "object"),
            n(e.overlays.len(), "overlay")
        ));
    }
    crate::workflows::commit::draft::WorkflowCommit { type_: ty.to_string(), scope: Some(scope), subject, body }
}

fn short_key(key: &str) -> &str {
    key.rsplit_once('/').map_or(key, |(_, k)| k)
}

fn plural(kind: &str) -> String {
    if kind.ends_with("ss") || kind.ends_with('x') || kind.ends_with("ch") {
        format!("{kind}es")
    } else if let Some(stem) = kind.strip_suffix('y')
        && !stem.ends_with(['a', 'e', 'i', 'o', 'u'])
    {
        format!("{stem}ies")
    } else if kind.ends_with('s') {
        kind.to_string()
    } else {
        format!("{kind}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failpoints_parse() {
        assert_eq!(Fault::parse("harmonize-write-fails:2"), Some(Fault::WriteFails(2)));
        assert_eq!(Fault::parse("harmonize-pause-after-write:5"), Some(Fault::PauseAfterWrite(5)));
        assert_eq!(Fault::parse("harmonize-break-after-write"), Some(Fault::BreakAfterWrite));
        assert_eq!(Fault::parse("other"), None);
    }

    #[test]
    fn kinds_are_pluralized_as_people_write_them() {
        assert_eq!(plural("ingress"), "ingresses");
        assert_eq!(plural("networkpolicy"), "networkpolicies");
        assert_eq!(plural("deployment"), "deployments");
        assert_eq!(plural("overlay"), "overlays");
    }
}
