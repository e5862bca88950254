//! Commits: what a change does to the rendered fleet, as a Conventional Commits message
//! (drafted deterministically, optionally polished by a model and checked), and the
//! `prepare-commit-msg` hook. The git plumbing that commits lives in [`crate::git`].

pub mod draft;
pub(crate) mod hook;
pub(crate) mod polish;
pub(crate) mod run;

pub use draft::{CommitSummary, DraftOptions, Drafted, draft};
pub use polish::{Polished, polish};

/// Drafts the message of the change `opts` describes, off the async runtime.
pub async fn draft_in(ctx: &crate::workflows::Ctx, opts: DraftOptions) -> crate::error::Result<Drafted> {
    let ctx = ctx.clone();
    crate::workflows::blocking(move || {
        let repo = ctx.load_repo()?;
        let engine = ctx.engine(&repo)?;
        draft(ctx.repo_root(), &engine, ctx.redactor(), &opts, ctx.jobs())
    })
    .await
}
