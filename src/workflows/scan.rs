//! Finding objects in the repo by kind, name, label, app, environment or text, in the source
//! files and in the rendered output of the overlays, each with file and line (`repo_scan`).

use std::collections::BTreeSet;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::Error;
use crate::k8s::ObjectRef;
use crate::repo::{Leaf, Repo};
use crate::workflows::{Ctx, blocking};

#[derive(Debug, Clone, Copy, Default, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    Sources,
    Rendered,
    #[default]
    Both,
}

#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ScanRequest {
    /// Object kind, e.g. `Ingress` (case-insensitive).
    #[serde(default)]
    pub kind: Option<String>,
    /// Object name; `*` matches any run of characters.
    #[serde(default)]
    pub name: Option<String>,
    /// Label selector term: `key=value` or `key`.
    #[serde(default)]
    pub label: Option<String>,
    /// Only this app's files and overlays.
    #[serde(default)]
    pub app: Option<String>,
    /// Only this environment's overlays (and the files they reach).
    #[serde(default)]
    pub env: Option<String>,
    /// Text to find (case-insensitive) in source lines or rendered objects.
    #[serde(default)]
    pub text: Option<String>,
    /// Where to look: sources, rendered or both (default).
    #[serde(default)]
    pub scope: Scope,
    /// At most this many matches (default 200).
    #[serde(default)]
    pub limit: Option<usize>,
}

#[derive(Debug, Serialize, PartialEq, Eq, PartialOrd, Ord)]
pub struct Match {
    /// `source` or `rendered`.
    pub r#where: &'static str,
    pub file: Option<String>,
    pub line: Option<u32>,
    pub overlay: Option<String>,
    pub app: Option<String>,
    pub env: Option<String>,
    pub object: Option<String>,
    /// The matching line, for text searches in sources.
    pub snippet: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct ScanResult {
    pub matches: Vec<Match>,
    pub truncated: bool,
    pub errors: Vec<String>,
}

struct Filter {
    kind: Option<String>,
    name: Option<regex::Regex>,
    label: Option<(String, Option<String>)>,
    text: Option<String>,
}

impl Filter {
    fn object(&self, obj: &Value) -> bool {
        let r = ObjectRef::of(obj);
        if self.kind.as_ref().is_some_and(|k| !r.kind.eq_ignore_ascii_case(k)) {
            return false;
        }
        if self.name.as_ref().is_some_and(|n| !n.is_match(&r.name)) {
            return false;
        }
        if let Some((k, v)) = &self.label {
            let got = obj.pointer("/metadata/labels").and_then(|l| l.get(k)).and_then(Value::as_str);
            if got.is_none() || v.as_ref().is_some_and(|v| got != Some(v.as_str())) {
                return false;
            }
        }
        true
    }
}

fn scan(ctx: &Ctx, repo: &Repo, args: &ScanRequest) -> Result<ScanResult, Error> {
    let name = match &args.name {
        Some(n) => Some(
            regex::Regex::new(&format!("^{}$", regex::escape(n).replace(r"\*", ".*")))
                .map_err(|e| Error::workflow(format!("bad name pattern: {e}")))?,
        ),
        None => None,
    };
    let label = args.label.as_ref().map(|l| match l.split_once('=') {
        Some((k, v)) => (k.trim().to_string(), Some(v.trim_start_matches('=').trim().to_string())),
        None => (l.trim().to_string(), None),
    });
    let filter = Filter { kind: args.kind.clone(), name, label, text: args.text.as_ref().map(|t| t.to_lowercase()) };
    let leaves: Vec<&Leaf> = repo
        .leaves
        .iter()
        .filter(|l| args.app.as_ref().is_none_or(|a| l.app.as_ref() == Some(a)))
        .filter(|l| args.env.as_ref().is_none_or(|e| l.env.as_ref() == Some(e)))
        .collect();
    let limit = args.limit.unwrap_or(200);
    let mut matches = Vec::new();
    let mut errors = Vec::new();

    if args.scope != Scope::Rendered {
        let files: BTreeSet<&str> = if args.app.is_some() || args.env.is_some() {
            leaves
                .iter()
                .flat_map(|l| repo.closure(&l.dir).files.iter().cloned().collect::<Vec<_>>())
                .filter_map(|f| repo.files.get_key_value(&f).map(|(k, _)| k.as_str()))
                .collect()
        } else {
            repo.files.keys().map(String::as_str).collect()
        };
        for f in files {
            let docs = repo.docs(f);
            let owner = repo.owner_of(f);
            if let Some(text) = &filter.text {
                let Ok(content) = crate::config::limits::read_text(&repo.abs(f), repo.config.limits.file_bytes) else {
                    continue;
                };
                for (i, line) in content.lines().enumerate() {
                    if !line.to_lowercase().contains(text.as_str()) {
                        continue;
                    }
                    let line_no = i as u32 + 1;
                    let doc = docs.iter().rev().find(|d| d.line <= line_no);
                    if let Some(d) = doc {
                        if !filter.object(&d.value) {
                            continue;
                        }
                    } else if filter.kind.is_some() || filter.name.is_some() || filter.label.is_some() {
                        continue;
                    }
                    matches.push(Match {
                        r#where: "source",
                        file: Some(f.to_string()),
                        line: Some(line_no),
                        overlay: None,
                        app: owner.0.clone(),
                        env: owner.1.clone(),
                        object: doc.map(|d| ObjectRef::of(&d.value).to_string()),
                        snippet: Some(line.trim().to_string()),
                    });
                }
            } else {
                for d in docs.iter().filter(|d| d.value.get("kind").is_some() && filter.object(&d.value)) {
                    matches.push(Match {
                        r#where: "source",
                        file: Some(f.to_string()),
                        line: Some(d.line),
                        overlay: None,
                        app: owner.0.clone(),
                        env: owner.1.clone(),
                        object: Some(ObjectRef::of(&d.value).to_string()),
                        snippet: None,
                    });
                }
            }
        }
    }

    if args.scope != Scope::Sources {
        let engine = ctx.engine(repo)?;
        for leaf in &leaves {
            let closure = repo.closure(&leaf.dir);
            if !closure.blockers.is_empty() {
                continue;
            }
            let out = engine.build(repo, &leaf.dir);
            if let Some(e) = out.error {
                let e = crate::kustomize::classify(&e, repo, &leaf.dir);
                errors.push(format!("{}: build failed ({}): {}", leaf.dir, e.class, e.message));
                continue;
            }
            let objects = crate::config::yaml::parse_values(&out.stdout).unwrap_or_default();
            for obj in objects {
                ctx.redactor().learn_object(&obj);
                if !filter.object(&obj) {
                    continue;
                }
                if let Some(t) = &filter.text {
                    let mut shown = obj.clone();
                    crate::k8s::redact::redact_objects(&mut shown);
                    if !shown.to_string().to_lowercase().contains(t.as_str()) {
                        continue;
                    }
                }
                let r = ObjectRef::of(&obj);
                let (file, line) = repo
                    .locate_source(&closure, &r.kind, &r.name)
                    .map_or((None, None), |(f, d)| (Some(f.to_string()), Some(d.line)));
                matches.push(Match {
                    r#where: "rendered",
                    file,
                    line,
                    overlay: Some(leaf.dir.clone()),
                    app: leaf.app.clone(),
                    env: leaf.env.clone(),
                    object: Some(r.to_string()),
                    snippet: None,
                });
            }
        }
    }
    let truncated = matches.len() > limit;
    matches.truncate(limit);
    Ok(ScanResult { matches, truncated, errors })
}

/// Scans the repo as it is now.
pub async fn run(ctx: &Ctx, args: ScanRequest) -> Result<ScanResult, Error> {
    let ctx = ctx.clone();
    blocking(move || {
        let repo = ctx.load_repo()?;
        scan(&ctx, &repo, &args)
    })
    .await
}
