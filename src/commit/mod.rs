//! Commits: what a change does to the rendered fleet, as a Conventional Commits message
//! (drafted deterministically, optionally polished by a model and checked), the git plumbing
//! to commit exactly the index or exactly some paths, and the `prepare-commit-msg` hook.

pub mod draft;
pub mod git;
pub mod hook;
pub mod polish;

pub use draft::{CommitSummary, DraftOptions, Drafted, draft};
pub use git::{
    FileChange, FileStatus, StagedChange, commit_index, commit_paths, commit_paths_to_branch, staged_change,
};
pub use polish::{Polished, polish};
