//! The repo as it was at a revision: its files under the repo root written to a temporary
//! directory and scanned, and one overlay of it rendered with the kustomize engine. Commit
//! drafting (both sides of a change), rollback (the target's objects, the risks of a revert)
//! and the simulated Argo CD (a sync at a revision) read old revisions through here.

use std::path::Path;

use serde_json::Value;

use super::{Snapshot, open};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::kustomize::Engine;
use crate::repo::Repo;

/// The files of one state of the repo written to a temporary directory, which goes away
/// with it.
pub struct Tree {
    dir: tempfile::TempDir,
}

impl Tree {
    /// Where the files are.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub(crate) fn of_snapshot(git: &git2::Repository, snap: &Snapshot) -> Result<Tree> {
        let dir = tempfile::Builder::new()
            .prefix("agentops-tree-")
            .tempdir()
            .map_err(|e| Error::io(&std::env::temp_dir(), e))?;
        snap.write_to(git, dir.path())?;
        Ok(Tree { dir })
    }
}

/// The files under the repo root at `rev` (a sha, prefix, branch, tag or `HEAD`).
pub fn tree_at(repo_root: &Path, rev: &str) -> Result<Tree> {
    let (git, prefix) = open(repo_root)?;
    let sha = super::history::resolve_in(&git, rev)?;
    let commit = git.find_commit(git2::Oid::from_str(&sha)?)?;
    Tree::of_snapshot(&git, &Snapshot::of_commit(&commit, &prefix)?)
}

/// A tree scanned as a repo.
pub struct Checkout {
    pub tree: Tree,
    pub repo: Repo,
}

impl Checkout {
    /// The files of `snap` written out and scanned as a repo, with the `.agentops.yaml` they
    /// carry; `origin` stands in for `repo_url` when that config does not name one.
    pub(crate) fn of_snapshot(git: &git2::Repository, snap: &Snapshot, origin: Option<&str>) -> Result<Checkout> {
        Checkout::of_tree(Tree::of_snapshot(git, snap)?, origin)
    }

    fn of_tree(tree: Tree, origin: Option<&str>) -> Result<Checkout> {
        let mut config = Config::load(tree.path())?;
        if config.repo_url.is_none() {
            config.repo_url = origin.map(str::to_string);
        }
        let repo = Repo::load_with(tree.path(), config)?;
        Ok(Checkout { tree, repo })
    }

    /// The objects `overlay` (root-relative) renders to, built by `engine` (its cache keys on
    /// content, so a state already rendered costs nothing).
    pub fn render(&self, overlay: &str, engine: &Engine) -> std::result::Result<Vec<Value>, String> {
        let out = engine.build(&self.repo, overlay);
        if let Some(e) = out.error {
            return Err(e);
        }
        out.values().map_err(|e| format!("kustomize output does not parse: {e}"))
    }
}

/// The repo at `rev`, as a scanned checkout.
pub fn checkout(repo_root: &Path, rev: &str) -> Result<Checkout> {
    Checkout::of_tree(tree_at(repo_root, rev)?, None)
}

/// The objects `overlay` renders to at `rev`; a build that fails says so with the revision.
pub fn render_at(repo_root: &Path, rev: &str, overlay: &str, engine: &Engine) -> Result<Vec<Value>> {
    let short: String = rev.chars().take(7).collect();
    checkout(repo_root, rev)?
        .render(overlay, engine)
        .map_err(|e| Error::workflow(format!("{overlay} does not build at {short}: {e}")))
}
