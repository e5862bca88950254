//! `write_files`: write files inside the repo. Refuses paths that leave it and, unless told,
//! files that exist. All or nothing.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::write_doc::safe_path;
use super::{Effect, Tool, ToolError};
use crate::workflows::Ctx;

pub struct WriteFiles;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FileArg {
    /// Repo-relative path.
    pub path: String,
    pub content: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Args {
    pub files: Vec<FileArg>,
    /// Replace files that exist.
    #[serde(default)]
    pub overwrite: bool,
}

#[derive(Debug, Serialize)]
pub struct Written {
    pub files: Vec<String>,
}

impl Tool for WriteFiles {
    type Args = Args;
    type Output = Written;

    fn name(&self) -> &'static str {
        "write_files"
    }
    fn description(&self) -> &'static str {
        "Write files inside the repo (repo-relative paths; never outside it, never into .git). Existing files are refused unless overwrite is true. All or nothing: a failure removes or restores what was written. Writes the repo: needs approval."
    }
    fn effect(&self) -> Effect {
        Effect::WritesRepo
    }
    async fn call(&self, ctx: &Ctx, args: Args) -> Result<Written, ToolError> {
        let mut targets = Vec::new();
        for f in &args.files {
            let path = safe_path(ctx.repo_root(), &f.path)?;
            if !args.overwrite && path.exists() {
                return Err(ToolError::new(format!("{} exists; pass overwrite to replace it", f.path)));
            }
            targets.push(path);
        }
        let mut done: Vec<(std::path::PathBuf, Option<Vec<u8>>)> = Vec::new();
        for (f, path) in args.files.iter().zip(targets) {
            let before = std::fs::read(&path).ok();
            let r =
                path.parent().map_or(Ok(()), std::fs::create_dir_all).and_then(|_| std::fs::write(&path, &f.content));
            if let Err(e) = r {
                for (p, b) in done.iter().rev() {
                    let _ = match b {
                        Some(b) => std::fs::write(p, b),
                        None => std::fs::remove_file(p),
                    };
                }
                return Err(ToolError::new(format!("cannot write {}: {e}; nothing was changed", f.path)));
            }
            done.push((path, before));
        }
        Ok(Written { files: args.files.iter().map(|f| f.path.clone()).collect() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_paths_inside_the_repo_are_written() {
        let root = tempfile::tempdir().unwrap();
        assert!(safe_path(root.path(), "apps/x/base/kustomization.yaml").is_ok());
        for bad in ["", "/etc/passwd", "../x", "apps/../../x", ".git/config", "./.git/hooks/pre-commit"] {
            assert!(safe_path(root.path(), bad).is_err(), "{bad}");
        }
    }
}
