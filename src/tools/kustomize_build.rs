//! `kustomize_build`: one overlay rendered by the real kustomize, as objects, or a
//! classified error pinned to the file that caused it.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Effect, Tool, ToolError};
use crate::error::Error;
use crate::kustomize::{BuildError, classify};
use crate::workflows::{Ctx, blocking};

pub struct KustomizeBuild;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Args {
    /// Repo-relative directory of the kustomization to build, e.g. `apps/web/overlays/prod`.
    pub overlay: String,
}

#[derive(Debug, Serialize)]
pub struct Output {
    pub overlay: String,
    /// Rendered objects (Secret values redacted).
    pub objects: Vec<Value>,
    pub errors: Vec<BuildError>,
    pub cached: bool,
}

impl Tool for KustomizeBuild {
    type Args = Args;
    type Output = Output;

    fn name(&self) -> &'static str {
        "kustomize_build"
    }
    fn description(&self) -> &'static str {
        "Render one kustomization directory of the repo with the real kustomize. Returns the rendered objects, or the build error classified by its innermost cause with the file and line at fault."
    }
    fn effect(&self) -> Effect {
        Effect::ReadOnly
    }
    async fn call(&self, ctx: &Ctx, args: Args) -> Result<Output, ToolError> {
        let ctx = ctx.clone();
        Ok(blocking(move || {
            let repo = ctx.load_repo()?;
            let dir = crate::repo::kustomization::join("", &args.overlay);
            if dir.starts_with("..") {
                return Err(Error::workflow(format!("{} is outside the repo", args.overlay)));
            }
            if !repo.kustomizations.contains_key(&dir) {
                return Err(Error::workflow(format!(
                    "{dir} has no kustomization.yaml; kustomizations: {}",
                    repo.leaves.iter().take(20).map(|l| l.dir.as_str()).collect::<Vec<_>>().join(", ")
                )));
            }
            let closure = repo.closure(&dir);
            if !closure.blockers.is_empty() {
                let errors = closure
                    .blockers
                    .iter()
                    .map(|b| BuildError {
                        class: "offline",
                        message: b.what.clone(),
                        file: b.file.clone(),
                        line: Some(b.line),
                    })
                    .collect();
                return Ok(Output { overlay: dir, objects: Vec::new(), errors, cached: false });
            }
            let engine = ctx.engine(&repo)?;
            let out = engine.build(&repo, &dir);
            if let Some(err) = &out.error {
                return Ok(Output {
                    errors: vec![classify(err, &repo, &dir)],
                    overlay: dir,
                    objects: Vec::new(),
                    cached: false,
                });
            }
            let objects = crate::config::yaml::parse_values(&out.stdout)
                .map_err(|e| Error::workflow(format!("kustomize output does not parse: {e}")))?;
            objects.iter().for_each(|o| ctx.redactor().learn_object(o));
            Ok(Output { overlay: dir, objects, errors: Vec::new(), cached: out.cached })
        })
        .await?)
    }
}
