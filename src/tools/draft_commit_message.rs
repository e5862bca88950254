//! `draft_commit_message`: the commit message for the staged change (or for HEAD plus some
//! working-tree paths), drafted from what it does to the rendered fleet, with the structured
//! summary it was drafted from and the validation of the affected overlays.

use schemars::JsonSchema;
use serde::Deserialize;

use super::{Effect, Tool, ToolError};
use crate::workflows::Ctx;
use crate::workflows::commit::{self, DraftOptions, Drafted};

pub struct DraftCommitMessage;

#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Args {
    /// Why the change is made: a paragraph of the body.
    #[serde(default)]
    pub reason: Option<String>,
    /// Ticket or advisory ids, each a `Refs:` trailer.
    #[serde(default)]
    pub refs: Vec<String>,
    /// Conventional Commits type (feat, fix, docs, style, ci, chore, ...); inferred when absent.
    #[serde(default, rename = "type")]
    pub type_: Option<String>,
    /// Scope; inferred from the apps when absent.
    #[serde(default)]
    pub scope: Option<String>,
    /// Describe HEAD plus the working-tree content of exactly these repo-relative paths
    /// instead of the staged change.
    #[serde(default)]
    pub paths: Option<Vec<String>>,
}

impl Args {
    pub fn options(&self) -> DraftOptions {
        DraftOptions {
            reason: self.reason.clone(),
            refs: self.refs.clone(),
            type_: self.type_.clone(),
            scope: self.scope.clone(),
            paths: self.paths.clone(),
            ..DraftOptions::default()
        }
    }
}

impl Tool for DraftCommitMessage {
    type Args = Args;
    type Output = Drafted;

    fn name(&self) -> &'static str {
        "draft_commit_message"
    }
    fn description(&self) -> &'static str {
        "Draft a Conventional Commits message for the staged change from what it does to the rendered fleet: every affected overlay rendered before and after, objects compared (added/removed by kind, image, replicas, resources, annotations, labels), the affected overlays validated. Returns the message and the structured summary. Reads only."
    }
    fn effect(&self) -> Effect {
        Effect::ReadOnly
    }
    async fn call(&self, ctx: &Ctx, args: Args) -> Result<Drafted, ToolError> {
        Ok(commit::draft_in(ctx, args.options()).await?)
    }
}
