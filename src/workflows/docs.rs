//! Writing one document inside the repo (`write_doc`): never outside it, never over an existing
//! file unless asked, optionally committing exactly that file. Either the text is given, or
//! `migration` asks for the migration plan document, rendered from the deterministic
//! hand-offs. Shared by the migration writer and the incident report.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::workflows::files::safe_path;
use crate::workflows::migrate::{self, MigrateRequest, RunOptions};
use crate::workflows::{Ctx, blocking};

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DocRequest {
    /// Repo-relative path of the document; for `migration`, defaults to
    /// `docs/migrations/<date>-<from>-to-<to>.md`.
    #[serde(default)]
    pub path: Option<String>,
    /// The document's text.
    #[serde(default)]
    pub content: Option<String>,
    /// Instead of `content`: render the migration plan document for this request.
    #[serde(default)]
    pub migration: Option<MigrateRequest>,
    /// With `content`: the workflow's record of the document, written beside it as
    /// `<path without .md>.json`.
    #[serde(default)]
    pub record: Option<serde_json::Value>,
    /// Replace the file when it exists.
    #[serde(default)]
    pub overwrite: bool,
    /// Commit exactly this file.
    #[serde(default)]
    pub commit: bool,
    /// The commit message (default: `docs: add <path>`).
    #[serde(default)]
    pub message: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WrittenDoc {
    pub path: String,
    pub bytes: usize,
    #[serde(default)]
    pub commit: Option<String>,
    /// For a migration document: its summary line.
    #[serde(default)]
    pub summary: Option<String>,
    /// For a workflow's document: its record, written beside it.
    #[serde(default)]
    pub record: Option<String>,
}

/// Writes the document (and its record), committing it when asked.
pub async fn run(ctx: &Ctx, args: DocRequest) -> Result<WrittenDoc, Error> {
    let mut record: Option<(String, serde_json::Value)> = None;
    let (path, content, summary) = match (&args.content, &args.migration) {
        (Some(c), None) => {
            let p = args.path.clone().ok_or_else(|| Error::workflow("path is required with content"))?;
            if let Some(r) = &args.record {
                let mut r = r.clone();
                ctx.redactor().redact_value(&mut r);
                record = Some((format!("{}.json", p.trim_end_matches(".md")), r));
            }
            (p, ctx.redactor().scrub(c), None)
        }
        (None, Some(req)) => {
            let opts = RunOptions { date: None, path: args.path.clone(), refiner: None };
            let m = migrate::run(ctx, req, opts).await?;
            record = Some((m.document.record_path.clone(), m.document.record.clone()));
            (m.document.path, m.document.markdown, Some(m.document.summary))
        }
        _ => return Err(Error::workflow("give exactly one of content and migration")),
    };
    let target = safe_path(ctx.repo_root(), &path)?;
    // a workflow's document comes with its record beside it
    let record = match record {
        Some((rel, value)) => {
            let text = serde_json::to_string_pretty(&value).map_err(|e| Error::workflow(e.to_string()))?;
            Some((safe_path(ctx.repo_root(), &rel)?, rel, format!("{text}\n"), value))
        }
        None => None,
    };
    let root = ctx.repo_root().to_path_buf();
    let (overwrite, commit, message) = (args.overwrite, args.commit, args.message.clone());
    blocking(move || {
        for (t, p) in std::iter::once((&target, &path)).chain(record.as_ref().map(|r| (&r.0, &r.1))) {
            if t.exists() && !overwrite {
                return Err(Error::workflow(format!("{p} exists; pass overwrite to replace it")));
            }
            if let Some(dir) = t.parent() {
                std::fs::create_dir_all(dir).map_err(|e| Error::workflow(format!("{p}: {e}")))?;
            }
        }
        std::fs::write(&target, &content).map_err(|e| Error::workflow(format!("{path}: {e}")))?;
        let mut paths = vec![path.clone()];
        if let Some((t, rel, text, _)) = &record {
            std::fs::write(t, text).map_err(|e| Error::workflow(format!("{rel}: {e}")))?;
            paths.push(rel.clone());
        }
        let commit = if commit {
            // the workflow's own commit, unless a message is given
            let own = record.as_ref().and_then(|r| {
                let c: crate::workflows::commit::draft::WorkflowCommit = serde_json::from_value(
                    r.3.pointer(&format!("/{}/commit", crate::workflows::commit::draft::RECORD_KEY))?.clone(),
                )
                .ok()?;
                Some(crate::workflows::commit::draft::workflow_message(&c))
            });
            let msg = message.or(own).unwrap_or_else(|| format!("docs: add {path}"));
            Some(crate::git::commit_paths(&root, &paths, &msg, None)?)
        } else {
            None
        };
        Ok(WrittenDoc { path, bytes: content.len(), commit, summary, record: record.map(|r| r.1) })
    })
    .await
}
