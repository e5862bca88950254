//! Writing files inside the repo (`write_files`): paths that leave it are refused and, unless
//! told, files that exist. All or nothing.

use std::path::{Component, Path};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::workflows::Ctx;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FileArg {
    /// Repo-relative path.
    pub path: String,
    pub content: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FilesRequest {
    pub files: Vec<FileArg>,
    /// Replace files that exist.
    #[serde(default)]
    pub overwrite: bool,
}

#[derive(Debug, Serialize)]
pub struct WrittenFiles {
    pub files: Vec<String>,
}

/// A repo-relative path that stays inside the repo: no absolute paths, no `..`, nothing in
/// `.git`, and no symlinked directory on the way out of it.
pub fn safe_path(root: &Path, rel: &str) -> Result<std::path::PathBuf, Error> {
    let p = Path::new(rel);
    let escapes = rel.trim().is_empty()
        || p.is_absolute()
        || p.components().any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
        || p.components().find(|c| matches!(c, Component::Normal(_))).is_some_and(|c| c.as_os_str() == ".git");
    if escapes {
        return Err(Error::workflow(format!("{rel:?}: the path must be relative and stay inside the repository")));
    }
    let root = root.canonicalize().map_err(|e| Error::workflow(format!("the repository: {e}")))?;
    let target = root.join(p);
    // the deepest existing ancestor must resolve inside the repo (symlinks included)
    let mut probe = target.clone();
    while !probe.exists() {
        if !probe.pop() {
            break;
        }
    }
    let real = probe.canonicalize().map_err(|e| Error::workflow(format!("{rel}: {e}")))?;
    if !real.starts_with(&root) || (target.exists() && !target.canonicalize().is_ok_and(|t| t.starts_with(&root))) {
        return Err(Error::workflow(format!("{rel:?} resolves outside the repository")));
    }
    Ok(target)
}

/// Writes the files, all or nothing.
pub async fn run(ctx: &Ctx, args: FilesRequest) -> Result<WrittenFiles, Error> {
    let mut targets = Vec::new();
    for f in &args.files {
        let path = safe_path(ctx.repo_root(), &f.path)?;
        if !args.overwrite && path.exists() {
            return Err(Error::workflow(format!("{} exists; pass overwrite to replace it", f.path)));
        }
        targets.push(path);
    }
    let mut done: Vec<(std::path::PathBuf, Option<Vec<u8>>)> = Vec::new();
    for (f, path) in args.files.iter().zip(targets) {
        let before = std::fs::read(&path).ok();
        let r = path.parent().map_or(Ok(()), std::fs::create_dir_all).and_then(|_| std::fs::write(&path, &f.content));
        if let Err(e) = r {
            for (p, b) in done.iter().rev() {
                let _ = match b {
                    Some(b) => std::fs::write(p, b),
                    None => std::fs::remove_file(p),
                };
            }
            return Err(Error::workflow(format!("cannot write {}: {e}; nothing was changed", f.path)));
        }
        done.push((path, before));
    }
    Ok(WrittenFiles { files: args.files.iter().map(|f| f.path.clone()).collect() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_paths_inside_the_repo_are_written() {
        let root = tempfile::tempdir().unwrap();
        assert!(safe_path(root.path(), "apps/x/base/kustomization.yaml").is_ok());
        for bad in ["", "/etc/passwd", "../x", "apps/../../x", ".git/config", "./.git/hooks/pre-commit"] {
            assert!(safe_path(root.path(), bad).is_err(), "{bad}");
        }
    }
}
