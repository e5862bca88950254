//! The `prepare-commit-msg` git hook: a plain `git commit` opens the editor with the drafted
//! message. Git passes the message source as `$2`; the hook drafts only when it is empty, so
//! a message given with `-m`/`-F`, a merge, a squash or an amend (`commit`) is never touched.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Marks a hook file as ours: one without it is someone else's and is not overwritten
/// unless forced.
pub const MARKER: &str = "# agentops prepare-commit-msg hook";
pub const HOOK_NAME: &str = "prepare-commit-msg";

/// Single-quotes a string for sh.
fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The hook script: the agentops executable by absolute path (falling back to `agentops` on
/// PATH), the repo root, and the draft written above git's own comment lines.
pub fn script(exe: &Path, repo_root: &Path) -> String {
    format!(
        r#"#!/bin/sh
{MARKER}: installed by `agentops hooks install`.
# Git passes the message file ($1) and its source ($2). Only a plain `git commit` (no source)
# gets a drafted message; -m/-F (message), templates, merges, squashes and amends keep theirs.
[ -n "$2" ] && exit 0
agentops={exe}
[ -x "$agentops" ] || agentops=agentops
command -v "$agentops" >/dev/null 2>&1 || exit 0
draft=$("$agentops" commit --repo {root} --print --hook-source "$2") || exit 0
[ -n "$draft" ] || exit 0
{{ printf '%s\n' "$draft"; cat "$1"; }} > "$1.agentops" && mv "$1.agentops" "$1"
exit 0
"#,
        exe = sh_quote(&exe.display().to_string()),
        root = sh_quote(&repo_root.display().to_string()),
    )
}

/// Where git looks for hooks: `core.hooksPath` when set, else `.git/hooks`.
fn hooks_dir(git: &git2::Repository) -> PathBuf {
    let configured = git.config().ok().and_then(|c| c.get_path("core.hooksPath").ok());
    match configured {
        Some(p) if p.is_absolute() => p,
        Some(p) => git.workdir().unwrap_or_else(|| git.path()).join(p),
        None => git.path().join("hooks"),
    }
}

/// Installs the hook for the git repository holding `repo_root`; returns its path. An
/// existing hook that is not ours is kept unless `force`.
pub fn install(repo_root: &Path, exe: &Path, force: bool) -> Result<PathBuf> {
    let (git, _) = crate::git::open(repo_root)?;
    let root = repo_root.canonicalize().map_err(|e| Error::io(repo_root, e))?;
    let dir = hooks_dir(&git);
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    let path = dir.join(HOOK_NAME);
    if let Ok(existing) = std::fs::read_to_string(&path)
        && !existing.contains(MARKER)
        && !force
    {
        return Err(Error::Usage(format!(
            "{} exists and is not agentops' hook; keep it, or pass --force to replace it",
            path.display()
        )));
    }
    std::fs::write(&path, script(exe, &root)).map_err(|e| Error::io(&path, e))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).map_err(|e| Error::io(&path, e))?;
    }
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_survives_quotes_and_spaces() {
        assert_eq!(sh_quote("/a b/it's"), r"'/a b/it'\''s'");
        let s = script(Path::new("/opt/agent ops/agentops"), Path::new("/r"));
        assert!(s.starts_with("#!/bin/sh\n") && s.contains(MARKER));
        assert!(s.contains("agentops='/opt/agent ops/agentops'") && s.contains("--repo '/r'"), "{s}");
        assert!(s.contains(r#"[ -n "$2" ] && exit 0"#));
    }

    #[test]
    fn a_foreign_hook_is_kept_unless_forced() {
        let dir = tempfile::tempdir().unwrap();
        git2::Repository::init(dir.path()).unwrap();
        let hook = dir.path().join(".git/hooks").join(HOOK_NAME);
        std::fs::create_dir_all(hook.parent().unwrap()).unwrap();
        std::fs::write(&hook, "#!/bin/sh\necho mine\n").unwrap();
        let e = install(dir.path(), Path::new("/bin/agentops"), false).unwrap_err().to_string();
        assert!(e.contains("--force"), "{e}");
        assert_eq!(std::fs::read_to_string(&hook).unwrap(), "#!/bin/sh\necho mine\n");
        install(dir.path(), Path::new("/bin/agentops"), true).unwrap();
        // ours is replaced freely
        let p = install(dir.path(), Path::new("/bin/agentops"), false).unwrap();
        assert!(std::fs::read_to_string(p).unwrap().contains(MARKER));
    }
}
