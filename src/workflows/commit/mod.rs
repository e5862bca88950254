//! Commits: what a change does to the rendered fleet, as a Conventional Commits message
//! (drafted deterministically, optionally polished by a model and checked), and the
//! `prepare-commit-msg` hook. The git plumbing that commits lives in [`crate::git`].

pub mod draft;
pub(crate) mod hook;
pub(crate) mod polish;

pub use draft::{CommitSummary, DraftOptions, Drafted, draft};
pub use polish::{Polished, polish};
