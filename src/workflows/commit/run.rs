//! Committing exactly the index, or exactly some paths, with a given or drafted message
//! (`commit`). Every workflow that commits goes through it. It refuses when validation of
//! the affected overlays fails, unless `allow_invalid`.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::workflows::commit::DraftOptions;
use crate::workflows::commit::draft::ValidationSummary;
use crate::workflows::{Ctx, blocking};

#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CommitRequest {
    /// The commit message; drafted from the change when absent.
    #[serde(default)]
    pub message: Option<String>,
    /// Commit exactly these repo-relative paths with their working-tree content (a missing
    /// file is a deletion) on top of HEAD; the index otherwise.
    #[serde(default)]
    pub paths: Option<Vec<String>>,
    /// Commit even when validation of the affected overlays fails.
    #[serde(default)]
    pub allow_invalid: bool,
    /// For a drafted message: why the change is made.
    #[serde(default)]
    pub reason: Option<String>,
    /// For a drafted message: ids for `Refs:` trailers.
    #[serde(default)]
    pub refs: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Committed {
    pub commit: String,
    pub message: String,
    /// The paths committed; None when the index was.
    pub paths: Option<Vec<String>>,
    /// The validation of the affected overlays, when it ran.
    pub validation: Option<ValidationSummary>,
}

/// Commits, after validating the affected overlays when the message is drafted or invalid
/// commits are not allowed.
pub async fn run(ctx: &Ctx, args: CommitRequest) -> Result<Committed, Error> {
    let validation = if args.message.is_some() && args.allow_invalid {
        None
    } else {
        let opts = DraftOptions {
            reason: args.reason.clone(),
            refs: args.refs.clone(),
            paths: args.paths.clone(),
            ..DraftOptions::default()
        };
        Some(crate::workflows::commit::draft_in(ctx, opts).await?)
    };
    if let Some(d) = &validation
        && d.invalid()
        && !args.allow_invalid
    {
        let v = d.summary.validation.as_ref().map(|v| v.line()).unwrap_or_default();
        return Err(Error::workflow(format!(
            "validation of the affected overlays failed ({v}); fix it, or commit with allow_invalid"
        )));
    }
    let message = match (&args.message, &validation) {
        (Some(m), _) => m.clone(),
        (None, Some(d)) => d.message.clone(),
        (None, None) => return Err(Error::workflow("no message")),
    };
    let ctx = ctx.clone();
    let paths = args.paths.clone();
    let msg = message.clone();
    let sha = blocking(move || {
        Ok(match &paths {
            Some(p) => crate::git::commit_paths(ctx.repo_root(), p, &msg, None)?,
            None => crate::git::commit_index(ctx.repo_root(), &msg)?,
        })
    })
    .await?;
    Ok(Committed { commit: sha, message, paths: args.paths, validation: validation.and_then(|d| d.summary.validation) })
}
