//! History: the log of the paths that render into an app's overlay, and
//! the revert of everything those paths changed between two revisions, computed in memory
//! (a three-way merge: base = the bad revision, ours = HEAD, theirs = the target), so a
//! conflict leaves the working tree untouched.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use git2::{Oid, Repository};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{in_workdir, under_root};
use crate::error::{Error, Result};

/// The files that render into an app's overlay: the overlay's closure, plus any file in a
/// directory of the closure (a file the culprit deleted is no longer in the closure).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct AppPaths {
    pub files: BTreeSet<String>,
    pub dirs: BTreeSet<String>,
}

impl AppPaths {
    pub fn new(files: impl IntoIterator<Item = String>) -> AppPaths {
        let files: BTreeSet<String> = files.into_iter().collect();
        let dirs = files.iter().map(|f| crate::repo::split_dir(f).0.to_string()).collect();
        AppPaths { files, dirs }
    }

    /// Whether a root-relative path renders into the app.
    pub fn covers(&self, path: &str) -> bool {
        self.files.contains(path) || self.dirs.contains(crate::repo::split_dir(path).0)
    }
}

/// One commit of the log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CommitInfo {
    pub sha: String,
    pub short: String,
    pub author: String,
    /// RFC 3339, UTC.
    pub date: String,
    pub unix: i64,
    pub subject: String,
    /// Root-relative files of the app the commit touched.
    pub files: Vec<String>,
}

fn short(sha: &str) -> String {
    sha.chars().take(7).collect()
}

fn info(c: &git2::Commit<'_>, files: Vec<String>) -> CommitInfo {
    let sha = c.id().to_string();
    let t = c.author().when().seconds();
    let when = std::time::UNIX_EPOCH + std::time::Duration::from_secs(t.max(0) as u64);
    CommitInfo {
        short: short(&sha),
        sha,
        author: c.author().name().unwrap_or("?").to_string(),
        date: crate::time::format_time(when, false),
        unix: t,
        subject: c.summary().ok().flatten().unwrap_or_default().to_string(),
        files,
    }
}

/// Resolves a revision (sha, prefix, branch, tag, `HEAD`) to a full commit sha.
pub fn resolve(repo_root: &Path, rev: &str) -> Result<String> {
    let (git, _) = super::open(repo_root)?;
    resolve_in(&git, rev)
}

pub(crate) fn resolve_in(git: &Repository, rev: &str) -> Result<String> {
    for c in [rev.to_string(), format!("origin/{rev}"), format!("refs/tags/{rev}")] {
        if let Ok(obj) = git.revparse_single(&c)
            && let Ok(commit) = obj.peel_to_commit()
        {
            return Ok(commit.id().to_string());
        }
    }
    Err(Error::Usage(format!("revision {rev:?} is not a commit of this repository")))
}

/// Root-relative paths a commit changed against its first parent (all, for a root commit).
fn changed(git: &Repository, prefix: &str, c: &git2::Commit<'_>) -> Result<Vec<String>> {
    let tree = c.tree()?;
    let parent = c.parents().next().map(|p| p.tree()).transpose()?;
    diff_paths(git, prefix, parent.as_ref(), Some(&tree))
}

fn diff_paths(
    git: &Repository,
    prefix: &str,
    old: Option<&git2::Tree<'_>>,
    new: Option<&git2::Tree<'_>>,
) -> Result<Vec<String>> {
    let diff = git.diff_tree_to_tree(old, new, None)?;
    let mut out = BTreeSet::new();
    for d in diff.deltas() {
        for f in [d.old_file(), d.new_file()] {
            if let Some(p) = f.path().and_then(|p| p.to_str())
                && let Some(rel) = under_root(prefix, p)
            {
                out.insert(rel);
            }
        }
    }
    Ok(out.into_iter().collect())
}

/// What to log.
#[derive(Debug, Clone, Default)]
pub struct LogQuery {
    /// Start here (default HEAD).
    pub from: Option<String>,
    /// Stop before this revision and its ancestors.
    pub exclude: Option<String>,
    /// Only commits at or after this Unix time.
    pub since: Option<i64>,
    pub limit: Option<usize>,
}

/// Commits touching the app's paths, newest first (first-parent diffs).
pub fn log(repo_root: &Path, paths: &AppPaths, q: &LogQuery) -> Result<Vec<CommitInfo>> {
    let (git, prefix) = super::open(repo_root)?;
    let mut walk = git.revwalk()?;
    walk.set_sorting(git2::Sort::TOPOLOGICAL | git2::Sort::TIME)?;
    match &q.from {
        Some(r) => walk.push(Oid::from_str(&resolve_in(&git, r)?)?)?,
        None => walk.push_head()?,
    }
    if let Some(x) = &q.exclude {
        walk.hide(Oid::from_str(&resolve_in(&git, x)?)?)?;
    }
    let mut out = Vec::new();
    for oid in walk {
        let c = git.find_commit(oid?)?;
        if q.since.is_some_and(|s| c.author().when().seconds() < s) {
            continue;
        }
        let files: Vec<String> = changed(&git, &prefix, &c)?.into_iter().filter(|p| paths.covers(p)).collect();
        if files.is_empty() {
            continue;
        }
        out.push(info(&c, files));
        if q.limit.is_some_and(|l| out.len() >= l) {
            break;
        }
    }
    Ok(out)
}

/// The content of a root-relative file at a revision (None when absent).
pub fn file_at(repo_root: &Path, rev: &str, path: &str) -> Result<Option<Vec<u8>>> {
    let (git, prefix) = super::open(repo_root)?;
    let c = git.find_commit(Oid::from_str(&resolve_in(&git, rev)?)?)?;
    let tree = c.tree()?;
    match tree.get_path(Path::new(&in_workdir(&prefix, path))) {
        Ok(e) => Ok(Some(e.to_object(&git)?.peel_to_blob()?.content().to_vec())),
        Err(_) => Ok(None),
    }
}

/// The parent of a commit (None for a root commit).
pub fn parent_of(repo_root: &Path, rev: &str) -> Result<Option<String>> {
    let (git, _) = super::open(repo_root)?;
    let c = git.find_commit(Oid::from_str(&resolve_in(&git, rev)?)?)?;
    Ok(c.parents().next().map(|p| p.id().to_string()))
}

/// Why a revert could not be prepared.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RevertError {
    #[error("the revert conflicts with later changes in {}; nothing was written", .0.join(", "))]
    Conflict(Vec<String>),
    #[error("uncommitted changes in {}; commit or stash them first; nothing was written", .0.join(", "))]
    Dirty(Vec<String>),
    #[error("reverting changes nothing in the app's files: HEAD already matches the target there")]
    Empty,
    #[error("{0}")]
    Git(String),
}

impl From<Error> for RevertError {
    fn from(e: Error) -> Self {
        RevertError::Git(e.to_string())
    }
}

impl From<git2::Error> for RevertError {
    fn from(e: git2::Error) -> Self {
        RevertError::Git(e.message().to_string())
    }
}

/// A prepared revert: root-relative path -> new content (None = delete), and the content each
/// path has now, to restore on failure.
#[derive(Debug, Clone, Default)]
pub struct PreparedRevert {
    pub changes: BTreeMap<String, Option<Vec<u8>>>,
    pub before: BTreeMap<String, Option<Vec<u8>>>,
}

/// Computes, in memory, HEAD with every change the app's paths got between `target` and
/// `bad` undone. Refuses on conflicts (named) and on uncommitted changes in those paths.
pub fn prepare_revert(
    repo_root: &Path,
    bad: &str,
    target: &str,
    paths: &AppPaths,
) -> std::result::Result<PreparedRevert, RevertError> {
    let (git, prefix) = super::open(repo_root)?;
    let workdir = git.workdir().map(Path::to_path_buf).ok_or_else(|| RevertError::Git("bare repository".into()))?;
    let tree_of = |rev: &str| -> std::result::Result<git2::Tree<'_>, RevertError> {
        Ok(git.find_commit(Oid::from_str(&resolve_in(&git, rev)?)?)?.tree()?)
    };
    let (bad_t, target_t) = (tree_of(bad)?, tree_of(target)?);
    let head_t = git.head()?.peel_to_commit()?.tree()?;
    let touched: Vec<String> =
        diff_paths(&git, &prefix, Some(&target_t), Some(&bad_t))?.into_iter().filter(|p| paths.covers(p)).collect();
    let merged = git.merge_trees(&bad_t, &head_t, &target_t, None)?;
    let mut conflicts = BTreeSet::new();
    for c in merged.conflicts()? {
        let c = c?;
        for e in [&c.ancestor, &c.our, &c.their].into_iter().flatten() {
            if let Some(rel) = std::str::from_utf8(&e.path).ok().and_then(|p| under_root(&prefix, p))
                && paths.covers(&rel)
            {
                conflicts.insert(rel);
            }
        }
    }
    if !conflicts.is_empty() {
        return Err(RevertError::Conflict(conflicts.into_iter().collect()));
    }
    let blob = |oid: Oid| -> std::result::Result<Vec<u8>, RevertError> { Ok(git.find_blob(oid)?.content().to_vec()) };
    let mut out = PreparedRevert::default();
    let mut dirty = Vec::new();
    for rel in touched {
        let wd = in_workdir(&prefix, &rel);
        let new = merged.get_path(Path::new(&wd), 0).map(|e| blob(e.id)).transpose()?;
        let head = head_t.get_path(Path::new(&wd)).ok().map(|e| blob(e.id())).transpose()?;
        if new == head {
            continue;
        }
        let on_disk = match std::fs::read(workdir.join(&wd)) {
            Ok(b) => Some(b),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(RevertError::Git(format!("{rel}: {e}"))),
        };
        if on_disk != head {
            dirty.push(rel.clone());
        }
        out.before.insert(rel.clone(), on_disk);
        out.changes.insert(rel, new);
    }
    if !dirty.is_empty() {
        return Err(RevertError::Dirty(dirty));
    }
    if out.changes.is_empty() {
        return Err(RevertError::Empty);
    }
    Ok(out)
}

/// Writes root-relative contents (None = delete) into the working tree.
pub fn write_files(repo_root: &Path, files: &BTreeMap<String, Option<Vec<u8>>>) -> Result<()> {
    for (rel, content) in files {
        let abs = repo_root.join(rel);
        match content {
            Some(b) => {
                if let Some(d) = abs.parent() {
                    std::fs::create_dir_all(d).map_err(|e| Error::io(d, e))?;
                }
                std::fs::write(&abs, b).map_err(|e| Error::io(&abs, e))?;
            }
            None => match std::fs::remove_file(&abs) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io(&abs, e)),
            },
        }
    }
    Ok(())
}

/// The remote to push to and its web URL (for links), when one is configured.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Remote {
    pub name: String,
    pub url: String,
    pub branch: String,
}

/// The current branch's upstream remote, else `origin`, when configured.
pub fn remote(repo_root: &Path) -> Result<Option<Remote>> {
    let (git, _) = super::open(repo_root)?;
    let head = git.head()?;
    let branch = head.shorthand().unwrap_or("HEAD").to_string();
    let upstream = git
        .branch_upstream_remote(head.name().unwrap_or_default())
        .ok()
        .and_then(|b| b.as_str().ok().map(str::to_string));
    let name = match upstream {
        Some(n) => n,
        None if git.find_remote("origin").is_ok() => "origin".to_string(),
        None => return Ok(None),
    };
    let url = git.find_remote(&name)?.url().unwrap_or_default().to_string();
    Ok(Some(Remote { name, url, branch }))
}

/// `git push <remote> HEAD:<branch>` (the git CLI, so the user's credential helpers apply).
pub fn push(repo_root: &Path, r: &Remote) -> Result<()> {
    let out = std::process::Command::new("git")
        .args(["push", "--quiet", &r.name, &format!("HEAD:refs/heads/{}", r.branch)])
        .current_dir(repo_root)
        .output()
        .map_err(|e| Error::Git(format!("cannot run git push: {e}")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(Error::Git(format!(
            "git push {} {} failed: {}",
            r.name,
            r.branch,
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

/// A web link to a commit, for GitHub/GitLab-style remotes (`https://host/org/repo` or
/// `git@host:org/repo.git`).
pub fn commit_link(remote_url: &str, sha: &str) -> Option<String> {
    let u = remote_url.trim().trim_end_matches('/').trim_end_matches(".git");
    let base = if let Some(rest) = u.strip_prefix("git@") {
        let (host, path) = rest.split_once(':')?;
        format!("https://{host}/{path}")
    } else if u.starts_with("https://") || u.starts_with("http://") {
        u.to_string()
    } else {
        return None;
    };
    Some(format!("{base}/commit/{sha}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn app_paths_cover_closure_files_and_their_directories() {
        let p =
            AppPaths::new(["apps/a/base/deployment.yaml".to_string(), "apps/a/overlays/dev/kustomization.yaml".into()]);
        assert!(p.covers("apps/a/base/deployment.yaml"));
        assert!(p.covers("apps/a/base/job.yaml"), "a file deleted from the base dir");
        assert!(!p.covers("apps/b/base/deployment.yaml"));
        assert!(!p.covers("apps/a/overlays/prod/kustomization.yaml"));
    }

    #[test]
    fn links_for_common_remotes() {
        assert_eq!(
            commit_link("https://github.com/acme/platform.git", "abc").as_deref(),
            Some("https://github.com/acme/platform/commit/abc")
        );
        assert_eq!(
            commit_link("git@gitlab.com:acme/platform.git", "abc").as_deref(),
            Some("https://gitlab.com/acme/platform/commit/abc")
        );
        assert_eq!(commit_link("/tmp/remote.git", "abc"), None);
    }
}
