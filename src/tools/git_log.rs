//! `git_log`: the commits that touch every file rendering into an app's overlay (base,
//! overlay, components), with authors, dates and the files touched.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Effect, Tool, ToolError};
use crate::error::Error;
use crate::git;
use crate::workflows::rollback;
use crate::workflows::{Ctx, blocking};

pub struct GitLog;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Args {
    /// App whose files to follow, e.g. `auth-service`.
    pub app: String,
    /// Environment whose overlay decides the files.
    pub env: String,
    /// Only commits this recent: `30m`, `6h`, `2d`, `1w`.
    #[serde(default)]
    pub since: Option<String>,
    /// Start from this revision (default HEAD).
    #[serde(default)]
    pub from: Option<String>,
    /// Leave out this revision and its ancestors (e.g. the last good deploy).
    #[serde(default)]
    pub exclude: Option<String>,
    /// Most commits to return (default 50).
    #[serde(default)]
    pub limit: Option<usize>,
}

#[derive(Debug, Serialize)]
pub struct Output {
    pub overlay: String,
    /// How many files render into the overlay.
    pub files: usize,
    /// Newest first.
    pub commits: Vec<git::CommitInfo>,
}

impl Tool for GitLog {
    type Args = Args;
    type Output = Output;

    fn name(&self) -> &'static str {
        "git_log"
    }
    fn description(&self) -> &'static str {
        "The git log of every file that renders into an app's overlay in one environment (base, overlay, components): commits newest first, with author, date, subject and the app's files each touched."
    }
    fn effect(&self) -> Effect {
        Effect::ReadOnly
    }
    async fn call(&self, ctx: &Ctx, args: Args) -> Result<Output, ToolError> {
        let c = ctx.clone();
        Ok(blocking(move || {
            let repo = c.load_repo()?;
            let (overlay, _) = rollback::locate(&repo, &args.app, &args.env)?;
            let paths = rollback::app_paths(&repo, &overlay);
            let since = args.since.as_deref().map(rollback::parse_duration).transpose().map_err(Error::workflow)?;
            let now =
                std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
            let q = git::LogQuery {
                from: args.from,
                exclude: args.exclude,
                since: since.map(|s| now - s),
                limit: Some(args.limit.unwrap_or(50)),
            };
            let commits = git::log(&repo.root, &paths, &q)?;
            Ok(Output { overlay, files: paths.files.len(), commits })
        })
        .await?)
    }
}
