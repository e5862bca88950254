//! Git, with git2, for every workflow: what is staged (index vs HEAD), trees at a revision
//! ([`Snapshot`], [`checkout`], [`render_at`]), commits of exactly the index or exactly some
//! paths, and history, reverts and remotes ([`history`]). Paths are relative to the repo
//! root agentops works on, which may be a subdirectory of the git work tree.

pub(crate) mod checkout;
pub(crate) mod history;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use git2::{FileMode, ObjectType, Oid, Repository};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
pub use checkout::{Checkout, Tree, checkout, render_at, tree_at};
pub use history::{
    AppPaths, CommitInfo, LogQuery, PreparedRevert, Remote, RevertError, commit_link, file_at, log, parent_of,
    prepare_revert, push, remote, resolve, write_files,
};

/// The fallback identity when git has none configured.
const FALLBACK_NAME: &str = "agentops";
const FALLBACK_EMAIL: &str = "agentops@localhost";

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum FileStatus {
    Added,
    Modified,
    Removed,
    Renamed,
}

/// One changed file, relative to the repo root.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
pub struct FileChange {
    pub path: String,
    pub status: FileStatus,
    /// The path before a rename.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub old_path: Option<String>,
}

/// What is staged: the index compared with HEAD.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct StagedChange {
    /// Sorted by path.
    pub files: Vec<FileChange>,
    /// The repository has no commit yet: this is the first one.
    pub initial: bool,
    /// Staged files outside the repo root (a subdirectory of the work tree): committed with
    /// the index, but not described.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub outside_root: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

impl StagedChange {
    pub fn is_empty(&self) -> bool {
        self.files.is_empty() && self.outside_root == 0
    }

    /// Every path touched, old names of renames included.
    pub fn paths(&self) -> Vec<String> {
        let mut out: Vec<String> =
            self.files.iter().flat_map(|f| std::iter::once(f.path.clone()).chain(f.old_path.clone())).collect();
        out.sort();
        out.dedup();
        out
    }
}

/// The git repository holding `repo_root`, and the root's path inside its work tree (""
/// when the root is the work tree).
pub(crate) fn open(repo_root: &Path) -> Result<(Repository, String)> {
    let git = Repository::discover(repo_root)
        .map_err(|e| Error::Git(format!("{} is not inside a git repository: {}", repo_root.display(), e.message())))?;
    let workdir = git
        .workdir()
        .ok_or_else(|| Error::Git("bare repository: there is no working tree to commit from".into()))?
        .canonicalize()
        .map_err(|e| Error::io(repo_root, e))?;
    let root = repo_root.canonicalize().map_err(|e| Error::io(repo_root, e))?;
    let prefix = crate::repo::rel_path(&workdir, &root);
    // git runs hooks with the index it commits from (`git commit -a` and `git commit PATH`
    // use a temporary one); libgit2 does not read the variable by itself
    if let Some(file) = std::env::var_os("GIT_INDEX_FILE") {
        let path = PathBuf::from(file);
        let path = if path.is_absolute() { path } else { workdir.join(path) };
        let mut index = git2::Index::open(&path)?;
        git.set_index(&mut index)?;
    }
    Ok((git, prefix))
}

/// `rel` (root-relative) as a work-tree path.
pub(crate) fn in_workdir(prefix: &str, rel: &str) -> String {
    if prefix.is_empty() { rel.to_string() } else { format!("{prefix}/{rel}") }
}

/// A work-tree path as a root-relative one, if it is under the root.
pub(crate) fn under_root(prefix: &str, path: &str) -> Option<String> {
    if prefix.is_empty() {
        return Some(path.to_string());
    }
    path.strip_prefix(prefix).and_then(|r| r.strip_prefix('/')).map(str::to_string)
}

fn signature(git: &Repository) -> Result<git2::Signature<'static>> {
    Ok(git.signature().or_else(|_| git2::Signature::now(FALLBACK_NAME, FALLBACK_EMAIL))?)
}

fn head_commit(git: &Repository) -> Option<git2::Commit<'_>> {
    git.head().ok().and_then(|h| h.peel_to_commit().ok())
}

/// Root-relative paths must stay inside the root.
fn check_rel(p: &str) -> Result<()> {
    let bad = p.is_empty()
        || p.starts_with('/')
        || Path::new(p).components().any(|c| !matches!(c, std::path::Component::Normal(_)));
    if bad {
        return Err(Error::Usage(format!("{p:?}: give paths relative to the repo root, without `..`")));
    }
    Ok(())
}

/// Commits exactly `paths` (relative to `repo_root`, which may be a subdirectory of the git
/// work tree) with their current working-tree content (a path missing on disk = deletion),
/// on top of HEAD: the new tree is HEAD's tree plus these paths only (other staged or
/// unstaged changes of the user are NOT included), and the index entries of these paths are
/// updated to match. `branch`: None = advance the current branch; Some(name) = create the
/// branch from HEAD, commit there and switch HEAD to it. Returns the new commit sha.
pub fn commit_paths(repo_root: &Path, paths: &[String], message: &str, branch: Option<&str>) -> Result<String> {
    commit_paths_switching(repo_root, paths, message, branch, true)
}

/// [`commit_paths`] on a new branch `branch`; with `switch` false, HEAD and the index stay
/// where they are (the commit is only on the new branch) and the caller restores the
/// working tree.
pub fn commit_paths_to_branch(
    repo_root: &Path,
    paths: &[String],
    message: &str,
    branch: &str,
    switch: bool,
) -> Result<String> {
    commit_paths_switching(repo_root, paths, message, Some(branch), switch)
}

fn commit_paths_switching(
    repo_root: &Path,
    paths: &[String],
    message: &str,
    branch: Option<&str>,
    switch: bool,
) -> Result<String> {
    if paths.is_empty() {
        return Err(Error::Usage("no paths to commit".into()));
    }
    let (git, prefix) = open(repo_root)?;
    let workdir = git.workdir().map(Path::to_path_buf).unwrap_or_default();
    let head = head_commit(&git);
    let base = match &head {
        Some(c) => c.tree()?,
        None => git.find_tree(git.treebuilder(None)?.write()?)?,
    };
    let mut update = git2::build::TreeUpdateBuilder::new();
    let mut index = git.index()?;
    for p in paths {
        check_rel(p)?;
        let rel = in_workdir(&prefix, p);
        let abs = workdir.join(&rel);
        match std::fs::symlink_metadata(&abs) {
            Ok(meta) if meta.is_dir() => {
                return Err(Error::Usage(format!("{p} is a directory; name the files to commit")));
            }
            Ok(meta) => {
                let (oid, mode) = if meta.file_type().is_symlink() {
                    let target = std::fs::read_link(&abs).map_err(|e| Error::io(&abs, e))?;
                    (git.blob(target.to_string_lossy().as_bytes())?, FileMode::Link)
                } else {
                    (git.blob_path(&abs)?, if is_executable(&meta) { FileMode::BlobExecutable } else { FileMode::Blob })
                };
                update.upsert(rel.as_str(), oid, mode);
                index.add_path(Path::new(&rel))?;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                update.remove(rel.as_str());
                // not in the index is fine: it is deleted either way
                let _ = index.remove_path(Path::new(&rel));
            }
            Err(e) => return Err(Error::io(&abs, e)),
        }
    }
    let tree = git.find_tree(update.create_updated(&git, &base)?)?;
    if head.is_some() && tree.id() == base.id() {
        return Err(Error::Usage(format!(
            "{} do not change anything against HEAD; nothing to commit",
            paths.join(", ")
        )));
    }
    let sig = signature(&git)?;
    let parents: Vec<&git2::Commit> = head.iter().collect();
    let oid = match branch {
        None => git.commit(Some("HEAD"), &sig, &sig, message, &tree, &parents)?,
        Some(name) => {
            let refname = format!("refs/heads/{name}");
            if git.find_reference(&refname).is_ok() {
                return Err(Error::Usage(format!("branch {name} exists already")));
            }
            let oid = git.commit(Some(&refname), &sig, &sig, message, &tree, &parents)?;
            if !switch {
                return Ok(oid.to_string());
            }
            git.set_head(&refname)?;
            oid
        }
    };
    index.write()?;
    Ok(oid.to_string())
}

#[cfg(unix)]
fn is_executable(meta: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::PermissionsExt;
    meta.permissions().mode() & 0o111 != 0
}

#[cfg(not(unix))]
fn is_executable(_meta: &std::fs::Metadata) -> bool {
    false
}

/// The staged change: the index compared with HEAD (with renames), root-relative.
pub fn staged_change(repo_root: &Path) -> Result<StagedChange> {
    let (git, prefix) = open(repo_root)?;
    let head = head_commit(&git);
    let tree = head.as_ref().map(|c| c.tree()).transpose()?;
    let index = git.index()?;
    let mut diff = git.diff_tree_to_index(tree.as_ref(), Some(&index), None)?;
    let mut find = git2::DiffFindOptions::new();
    find.renames(true);
    diff.find_similar(Some(&mut find))?;
    let mut out = StagedChange { initial: head.is_none(), ..StagedChange::default() };
    let path_of = |f: git2::DiffFile| f.path().map(|p| p.to_string_lossy().replace('\\', "/"));
    for d in diff.deltas() {
        let new = path_of(d.new_file());
        let old = path_of(d.old_file());
        let (path, status, old_path) = match d.status() {
            git2::Delta::Added | git2::Delta::Copied => (new, FileStatus::Added, None),
            git2::Delta::Deleted => (old, FileStatus::Removed, None),
            git2::Delta::Renamed => (new, FileStatus::Renamed, old),
            git2::Delta::Unmodified => continue,
            _ => (new, FileStatus::Modified, None),
        };
        let Some(path) = path else { continue };
        match under_root(&prefix, &path) {
            Some(p) => {
                let old_path = old_path.and_then(|o| under_root(&prefix, &o));
                // a rename from outside the root is an addition here
                let status =
                    if status == FileStatus::Renamed && old_path.is_none() { FileStatus::Added } else { status };
                out.files.push(FileChange { path: p, status, old_path });
            }
            None => out.outside_root += 1,
        }
    }
    out.files.sort();
    Ok(out)
}

/// Commits exactly the index on top of HEAD (on the current branch). Refuses when nothing
/// is staged.
pub fn commit_index(repo_root: &Path, message: &str) -> Result<String> {
    let (git, _) = open(repo_root)?;
    let mut index = git.index()?;
    if index.has_conflicts() {
        return Err(Error::Usage("the index has unresolved conflicts; resolve them and stage the result".into()));
    }
    let tree_id = index.write_tree()?;
    let head = head_commit(&git);
    if head.as_ref().is_some_and(|h| h.tree_id() == tree_id) {
        return Err(Error::Usage("nothing is staged: `git add` the changes to commit".into()));
    }
    let tree = git.find_tree(tree_id)?;
    let sig = signature(&git)?;
    let parents: Vec<&git2::Commit> = head.iter().collect();
    Ok(git.commit(Some("HEAD"), &sig, &sig, message, &tree, &parents)?.to_string())
}

/// Where a snapshot file's content comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Content {
    /// A blob of the object database, with its file mode.
    Blob(Oid, i32),
    /// A working-tree file (its blob id, computed without writing it).
    Disk(Oid, PathBuf),
}

impl Content {
    fn oid(&self) -> Oid {
        match self {
            Content::Blob(o, _) | Content::Disk(o, _) => *o,
        }
    }
}

/// The files under the repo root at one state (HEAD, the index, HEAD plus some working-tree
/// paths), keyed by root-relative path.
#[derive(Debug, Clone, Default)]
pub(crate) struct Snapshot {
    files: BTreeMap<String, Content>,
}

impl Snapshot {
    /// HEAD's tree (empty before the first commit).
    pub(crate) fn head(git: &Repository, prefix: &str) -> Result<Snapshot> {
        match head_commit(git) {
            Some(commit) => Snapshot::of_commit(&commit, prefix),
            None => Ok(Snapshot::default()),
        }
    }

    /// A commit's tree.
    pub(crate) fn of_commit(commit: &git2::Commit<'_>, prefix: &str) -> Result<Snapshot> {
        let mut s = Snapshot::default();
        let tree = commit.tree()?;
        tree.walk(git2::TreeWalkMode::PreOrder, |dir, entry| {
            if entry.kind() == Some(ObjectType::Blob)
                && let Ok(name) = entry.name()
                && let Some(rel) = under_root(prefix, &format!("{dir}{name}"))
            {
                s.files.insert(rel, Content::Blob(entry.id(), entry.filemode()));
            }
            git2::TreeWalkResult::Ok
        })?;
        Ok(s)
    }

    /// The index as it is staged.
    pub(crate) fn index(git: &Repository, prefix: &str) -> Result<Snapshot> {
        let index = git.index()?;
        let mut s = Snapshot::default();
        for e in index.iter() {
            // skip conflict stages and gitlinks (submodules)
            let stage = (e.flags >> 12) & 0x3;
            if stage != 0 || e.mode == 0o160000 {
                continue;
            }
            let path = String::from_utf8_lossy(&e.path).into_owned();
            if let Some(rel) = under_root(prefix, &path) {
                s.files.insert(rel, Content::Blob(e.id, e.mode as i32));
            }
        }
        Ok(s)
    }

    /// This snapshot with `paths` taken from the working tree (missing on disk: removed).
    pub(crate) fn with_disk_paths(&self, workdir: &Path, prefix: &str, paths: &[String]) -> Result<Snapshot> {
        let mut s = self.clone();
        for p in paths {
            check_rel(p)?;
            let abs = workdir.join(in_workdir(prefix, p));
            if abs.is_file() {
                let oid = Oid::hash_file(ObjectType::Blob, &abs)?;
                s.files.insert(p.clone(), Content::Disk(oid, abs));
            } else {
                s.files.remove(p);
            }
        }
        Ok(s)
    }

    /// Files that differ between `self` (before) and `after`, as additions, modifications and
    /// removals (no rename detection).
    pub(crate) fn changes_to(&self, after: &Snapshot) -> Vec<FileChange> {
        let mut out = Vec::new();
        for (p, c) in &after.files {
            match self.files.get(p) {
                None => out.push(FileChange { path: p.clone(), status: FileStatus::Added, old_path: None }),
                Some(b) if b.oid() != c.oid() => {
                    out.push(FileChange { path: p.clone(), status: FileStatus::Modified, old_path: None })
                }
                _ => {}
            }
        }
        for p in self.files.keys().filter(|p| !after.files.contains_key(*p)) {
            out.push(FileChange { path: p.clone(), status: FileStatus::Removed, old_path: None });
        }
        out.sort();
        out
    }

    /// One file's bytes, if the snapshot has it.
    pub(crate) fn read(&self, git: &Repository, rel: &str) -> Option<Vec<u8>> {
        match self.files.get(rel)? {
            Content::Disk(_, abs) => std::fs::read(abs).ok(),
            Content::Blob(oid, _) => git.find_blob(*oid).ok().map(|b| b.content().to_vec()),
        }
    }

    /// Writes every file into `dest` (an empty directory).
    pub(crate) fn write_to(&self, git: &Repository, dest: &Path) -> Result<()> {
        for (rel, content) in &self.files {
            let target = dest.join(rel);
            if let Some(parent) = target.parent() {
                std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
            }
            match content {
                Content::Disk(_, abs) => {
                    std::fs::copy(abs, &target).map_err(|e| Error::io(abs, e))?;
                }
                Content::Blob(oid, mode) => {
                    let blob = git.find_blob(*oid)?;
                    if *mode == i32::from(FileMode::Link) {
                        write_link(blob.content(), &target)?;
                    } else {
                        std::fs::write(&target, blob.content()).map_err(|e| Error::io(&target, e))?;
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(unix)]
fn write_link(target_text: &[u8], at: &Path) -> Result<()> {
    let target = String::from_utf8_lossy(target_text).into_owned();
    std::os::unix::fs::symlink(&target, at).map_err(|e| Error::io(at, e))
}

#[cfg(not(unix))]
fn write_link(target_text: &[u8], at: &Path) -> Result<()> {
    std::fs::write(at, target_text).map_err(|e| Error::io(at, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo() -> (tempfile::TempDir, Repository) {
        let dir = tempfile::tempdir().unwrap();
        let git = Repository::init(dir.path()).unwrap();
        (dir, git)
    }

    fn write(dir: &Path, rel: &str, text: &str) {
        let p = dir.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    fn stage(git: &Repository, rels: &[&str]) {
        let mut index = git.index().unwrap();
        for r in rels {
            index.add_path(Path::new(r)).unwrap();
        }
        index.write().unwrap();
    }

    fn tree_files(git: &Repository, sha: &str) -> BTreeMap<String, String> {
        let tree = git.find_commit(Oid::from_str(sha).unwrap()).unwrap().tree().unwrap();
        let mut out = BTreeMap::new();
        tree.walk(git2::TreeWalkMode::PreOrder, |dir, e| {
            if e.kind() == Some(ObjectType::Blob) {
                let blob = git.find_blob(e.id()).unwrap();
                out.insert(format!("{dir}{}", e.name().unwrap()), String::from_utf8_lossy(blob.content()).into_owned());
            }
            git2::TreeWalkResult::Ok
        })
        .unwrap();
        out
    }

    #[test]
    fn staged_change_on_an_initial_commit_and_after() {
        let (dir, git) = repo();
        write(dir.path(), "a.yaml", "a: 1\n");
        write(dir.path(), "docs/x.md", "# x\n");
        stage(&git, &["a.yaml", "docs/x.md"]);
        let s = staged_change(dir.path()).unwrap();
        assert!(s.initial);
        assert_eq!(s.paths(), vec!["a.yaml", "docs/x.md"]);
        assert!(s.files.iter().all(|f| f.status == FileStatus::Added));
        let sha = commit_index(dir.path(), "chore: initial").unwrap();
        assert_eq!(tree_files(&git, &sha).len(), 2);
        assert!(staged_change(dir.path()).unwrap().is_empty());
        assert!(commit_index(dir.path(), "again").unwrap_err().to_string().contains("nothing is staged"));
        write(dir.path(), "a.yaml", "a: 2\n");
        std::fs::remove_file(dir.path().join("docs/x.md")).unwrap();
        let mut index = git.index().unwrap();
        index.add_path(Path::new("a.yaml")).unwrap();
        index.remove_path(Path::new("docs/x.md")).unwrap();
        index.write().unwrap();
        let s = staged_change(dir.path()).unwrap();
        assert!(!s.initial);
        let st: Vec<(String, FileStatus)> = s.files.iter().map(|f| (f.path.clone(), f.status)).collect();
        assert_eq!(st, vec![("a.yaml".into(), FileStatus::Modified), ("docs/x.md".into(), FileStatus::Removed)]);
    }

    #[test]
    fn commit_paths_takes_exactly_the_paths_and_keeps_the_rest_staged() {
        let (dir, git) = repo();
        write(dir.path(), "sub/a.yaml", "a: 1\n");
        write(dir.path(), "sub/b.yaml", "b: 1\n");
        write(dir.path(), "sub/gone.yaml", "g: 1\n");
        stage(&git, &["sub/a.yaml", "sub/b.yaml", "sub/gone.yaml"]);
        commit_index(dir.path(), "initial").unwrap();
        // the user staged b, and has an unstaged edit of a; we commit only new.yaml and gone.yaml
        write(dir.path(), "sub/b.yaml", "b: staged\n");
        stage(&git, &["sub/b.yaml"]);
        write(dir.path(), "sub/a.yaml", "a: unstaged\n");
        write(dir.path(), "sub/new.yaml", "n: 1\n");
        std::fs::remove_file(dir.path().join("sub/gone.yaml")).unwrap();
        let root = dir.path().join("sub");
        let sha = commit_paths(&root, &["new.yaml".into(), "gone.yaml".into()], "feat: new\n", Some("work/x")).unwrap();
        let files = tree_files(&git, &sha);
        assert_eq!(files.get("sub/a.yaml").map(String::as_str), Some("a: 1\n"));
        assert_eq!(files.get("sub/b.yaml").map(String::as_str), Some("b: 1\n"), "staged change not included");
        assert_eq!(files.get("sub/new.yaml").map(String::as_str), Some("n: 1\n"));
        assert!(!files.contains_key("sub/gone.yaml"));
        assert_eq!(git.head().unwrap().shorthand().ok(), Some("work/x"));
        // b is still staged against the new HEAD; the committed paths are not
        let s = staged_change(&root).unwrap();
        assert_eq!(s.paths(), vec!["b.yaml"]);
        // on the current branch
        write(dir.path(), "sub/new.yaml", "n: 2\n");
        let sha2 = commit_paths(&root, &["new.yaml".into()], "fix: n\n", None).unwrap();
        assert_eq!(git.head().unwrap().shorthand().ok(), Some("work/x"));
        assert_eq!(git.head().unwrap().target().unwrap().to_string(), sha2);
        assert!(commit_paths(&root, &["../x".into()], "m", None).is_err());
        assert!(commit_paths(&root, &["new.yaml".into()], "m", Some("work/x")).is_err(), "existing branch");
    }

    #[test]
    fn snapshots_of_head_index_and_disk_paths() {
        let (dir, git) = repo();
        write(dir.path(), "r/a.yaml", "a: 1\n");
        write(dir.path(), "other.txt", "o\n");
        stage(&git, &["r/a.yaml", "other.txt"]);
        commit_index(dir.path(), "initial").unwrap();
        write(dir.path(), "r/a.yaml", "a: 2\n");
        write(dir.path(), "r/b.yaml", "b: 1\n");
        stage(&git, &["r/b.yaml"]);
        let (git2, prefix) = open(&dir.path().join("r")).unwrap();
        assert_eq!(prefix, "r");
        let head = Snapshot::head(&git2, &prefix).unwrap();
        let index = Snapshot::index(&git2, &prefix).unwrap();
        let ch: Vec<String> = head.changes_to(&index).into_iter().map(|c| c.path).collect();
        assert_eq!(ch, vec!["b.yaml"]);
        let disk = head.with_disk_paths(dir.path(), &prefix, &["a.yaml".into()]).unwrap();
        let ch = head.changes_to(&disk);
        assert_eq!(ch.len(), 1);
        assert_eq!(ch[0].status, FileStatus::Modified);
        let out = tempfile::tempdir().unwrap();
        disk.write_to(&git2, out.path()).unwrap();
        assert_eq!(std::fs::read_to_string(out.path().join("a.yaml")).unwrap(), "a: 2\n");
        assert!(!out.path().join("other.txt").exists(), "outside the root");
    }
}
