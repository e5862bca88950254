//! Drift capture: keep what a cluster runs by writing the live change into the overlay as a
//! strategic-merge patch (a patch file plus its entry in the overlay's kustomization),
//! proving by a re-render that git now equals the cluster on those paths, and committing the
//! two files on a new branch. The captured overlay is validated before anything is
//! committed: errors the capture brings in refuse it, naming the captured file. All or
//! nothing: on any failure the files are restored.

use std::path::Path;

use serde::Serialize;
use serde_json::{Map, Value, json};

use super::drift::Drift;
use crate::error::{Error, Result};
use crate::k8s::diff::{self, Change};
use crate::k8s::fields::{PathElem, value_at};
use crate::kustomize::Engine;
use crate::repo::Repo;

#[derive(Debug, Clone, Serialize)]
pub struct Captured {
    pub overlay: String,
    pub files: Vec<String>,
    pub objects: Vec<String>,
    pub branch: Option<String>,
    pub commit: Option<String>,
    /// Whether HEAD now is the new branch (false with `stay`: the commit is only on the
    /// branch, and the working tree is as it was).
    pub switched: bool,
    /// Validation errors the captured patch brings into the overlay (only with `no_commit`:
    /// otherwise they refuse the capture), each pointing at the captured file.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub validation: Vec<crate::workflows::validate::Finding>,
}

/// How a capture ends.
#[derive(Debug, Clone, Copy, Default)]
pub struct CaptureOptions {
    /// Commit on a new branch (else leave the files written, uncommitted).
    pub commit: bool,
    /// Commit on the new branch without switching to it.
    pub stay: bool,
}

/// Sets `value` (None: remove) at `elems` in a strategic-merge patch, creating maps and
/// keyed list items on the way.
fn set(patch: &mut Value, elems: &[PathElem], value: Option<&Value>) -> Result<()> {
    let Some((last, parents)) = elems.split_last() else { return Ok(()) };
    let mut node = patch;
    for e in parents {
        node = match e {
            PathElem::Field(k) => {
                let m = node.as_object_mut().ok_or_else(|| Error::Internal("patch shape".into()))?;
                m.entry(k.clone()).or_insert_with(|| json!({}))
            }
            PathElem::Key(key) => item(node, key)?,
            _ => {
                return Err(Error::Usage(
                    "changes inside plain lists cannot be captured as a patch; edit the overlay by hand".into(),
                ));
            }
        };
    }
    match (last, value) {
        (PathElem::Field(k), v) => {
            let m = node.as_object_mut().ok_or_else(|| Error::Internal("patch shape".into()))?;
            m.insert(k.clone(), v.cloned().unwrap_or(Value::Null));
        }
        (PathElem::Key(key), Some(v)) => *item(node, key)? = v.clone(),
        (PathElem::Key(key), None) => {
            let it = item(node, key)?;
            if let Some(m) = it.as_object_mut() {
                m.insert("$patch".into(), json!("delete"));
            }
        }
        _ => {
            return Err(Error::Usage(
                "set-list changes cannot be captured as a patch; edit the overlay by hand".into(),
            ));
        }
    }
    Ok(())
}

/// The item of a keyed list in a patch (created with its key fields when new).
fn item<'a>(node: &'a mut Value, key: &[(String, Value)]) -> Result<&'a mut Value> {
    if node.as_object().is_some_and(Map::is_empty) {
        *node = json!([]);
    }
    let list = node.as_array_mut().ok_or_else(|| Error::Internal("patch shape".into()))?;
    let pos = list.iter().position(|i| key.iter().all(|(k, v)| i.get(k) == Some(v)));
    let pos = match pos {
        Some(p) => p,
        None => {
            list.push(Value::Object(key.iter().cloned().collect()));
            list.len() - 1
        }
    };
    Ok(&mut list[pos])
}

/// The strategic-merge patch that turns `desired` into `live` on the changed paths.
pub fn patch_for(desired: &Value, live: &Value, changes: &[Change]) -> Result<Value> {
    let s = |p: &str| desired.pointer(p).cloned().unwrap_or(Value::Null);
    let mut patch =
        json!({"apiVersion": s("/apiVersion"), "kind": s("/kind"), "metadata": {"name": s("/metadata/name")}});
    for c in changes {
        let v = if c.op == diff::Op::Remove {
            None
        } else {
            Some(
                value_at(live, &c.elems)
                    .ok_or_else(|| Error::Internal(format!("{} not in the live object", c.path)))?,
            )
        };
        set(&mut patch, &c.elems, v)?;
    }
    Ok(patch)
}

/// Adds `- path: FILE` at the end of the kustomization's `patches:` list (creating it).
pub fn add_patch_entry(text: &str, file: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let Some(start) = lines.iter().position(|l| l.starts_with("patches:")) else {
        let mut out = text.trim_end().to_string();
        out.push_str(&format!("\npatches:\n  - path: {file}\n"));
        return out;
    };
    if lines[start].trim_end() == "patches: []" {
        let mut out: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
        out[start] = format!("patches:\n  - path: {file}");
        return out.join("\n") + "\n";
    }
    let mut end = start;
    let mut indent = "  ".to_string();
    for (i, l) in lines.iter().enumerate().skip(start + 1) {
        let t = l.trim_start();
        let in_block = l.is_empty() || t.starts_with('#') || l.starts_with(' ') || l.starts_with("- ");
        if !in_block {
            break;
        }
        if t.starts_with("- ") && end == start {
            indent = l[..l.len() - t.len()].to_string();
        }
        if !l.trim().is_empty() && !t.starts_with('#') {
            end = i;
        }
    }
    let mut out: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
    out.insert(end + 1, format!("{indent}- path: {file}"));
    out.join("\n") + "\n"
}

/// Writes the patch for each drifted object of one Application into its overlay, proves it,
/// and commits on a new branch.
pub fn capture(
    repo: &Repo,
    engine: &Engine,
    lives: &[(Drift, Value, Value)],
    opts: CaptureOptions,
) -> Result<Captured> {
    let overlay =
        lives.first().map(|x| x.0.overlay.clone()).ok_or_else(|| Error::Usage("no drift to capture".into()))?;
    let kfile = repo
        .kustomizations
        .get(&overlay)
        .map(|k| k.file.clone())
        .ok_or_else(|| Error::Usage(format!("{overlay} has no kustomization")))?;
    let mut files: Vec<(String, String)> = Vec::new();
    let mut ktext = crate::config::limits::read_text(&repo.abs(&kfile), repo.config.limits.file_bytes)?;
    let mut objects = Vec::new();
    for (d, desired, live) in lives {
        if desired.get("kind").and_then(Value::as_str) == Some("Secret") {
            return Err(Error::Usage(format!(
                "{}: Secret values are never written by agentops; capture it with your secrets tooling",
                d.object
            )));
        }
        let changes: Vec<Change> =
            diff::diff(desired, live).into_iter().filter(|c| d.changes.iter().any(|x| x.path == c.path)).collect();
        let patch = patch_for(desired, live, &changes)?;
        let name = format!(
            "drift-{}-{}.yaml",
            desired.get("kind").and_then(Value::as_str).unwrap_or("object").to_lowercase(),
            desired.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("x")
        );
        let rel = format!("{overlay}/{name}");
        if repo.abs(&rel).exists() {
            return Err(Error::Usage(format!("{rel} exists already; merge the change into it by hand")));
        }
        let header = format!(
            "# Captured from the live cluster by agentops drift capture: {}\n",
            d.changes.iter().map(|c| c.summary.as_str()).collect::<Vec<_>>().join("; ")
        );
        let body = yaml_serde::to_string(&patch).map_err(|e| Error::Internal(e.to_string()))?;
        files.push((rel, format!("{header}{body}")));
        ktext = add_patch_entry(&ktext, &name);
        objects.push(d.object.clone());
    }
    // what validate says of the overlay before the capture: only what the capture adds counts
    let redactor = crate::k8s::redact::Redactor::new();
    let overlays: std::collections::BTreeSet<String> = std::iter::once(overlay.clone()).collect();
    let before = crate::workflows::validate::run_overlays(repo, engine, &redactor, &overlays, 1)?;
    // write, prove, or restore
    let original = crate::config::limits::read_text(&repo.abs(&kfile), repo.config.limits.file_bytes)?;
    let restore = |files: &[(String, String)]| {
        for (rel, _) in files {
            let _ = std::fs::remove_file(repo.abs(rel));
        }
        let _ = std::fs::write(repo.abs(&kfile), &original);
    };
    for (rel, text) in &files {
        if let Err(e) = std::fs::write(repo.abs(rel), text) {
            restore(&files);
            return Err(Error::io(&repo.abs(rel), e));
        }
    }
    if let Err(e) = std::fs::write(repo.abs(&kfile), &ktext) {
        restore(&files);
        return Err(Error::io(&repo.abs(&kfile), e));
    }
    let proof = (|| -> Result<Vec<crate::workflows::validate::Finding>> {
        let fresh = Repo::load_with(&repo.root, repo.config.clone())?;
        engine.invalidate();
        let built = engine.build(&fresh, &overlay);
        if let Some(e) = built.error {
            return Err(Error::Usage(format!("{overlay} no longer builds with the captured patch: {e}")));
        }
        let rendered = built.values().map_err(|e| Error::Internal(e.to_string()))?;
        for (d, desired, live) in lives {
            let r = crate::k8s::ObjectRef::of(desired);
            let now = rendered
                .iter()
                .find(|o| crate::k8s::ObjectRef::of(o).kind == r.kind && crate::k8s::ObjectRef::of(o).name == r.name)
                .ok_or_else(|| Error::Internal(format!("{} vanished", d.object)))?;
            let mut now = now.clone();
            if let (Some(ns), Some(m)) = (
                desired.pointer("/metadata/namespace").cloned(),
                now.get_mut("metadata").and_then(Value::as_object_mut),
            ) {
                m.entry("namespace").or_insert(ns);
            }
            let left: Vec<String> = diff::diff(&crate::k8s::compare::with_defaults(&now), live)
                .into_iter()
                .filter(|c| d.changes.iter().any(|x| x.path == c.path))
                .map(|c| c.summary)
                .collect();
            if !left.is_empty() {
                return Err(Error::Usage(format!("after the patch, {} still differs: {}", d.object, left.join("; "))));
            }
        }
        let after = crate::workflows::validate::run_overlays(&fresh, engine, &redactor, &overlays, 1)?;
        Ok(new_errors(&before.findings, after.findings, &files))
    })();
    let validation = match proof {
        Ok(v) => v,
        Err(e) => {
            restore(&files);
            return Err(e);
        }
    };
    let mut all: Vec<String> = files.iter().map(|f| f.0.clone()).collect();
    all.push(kfile.clone());
    let captured = Captured { overlay, files: all, objects, branch: None, commit: None, switched: false, validation };
    if !opts.commit {
        return Ok(captured);
    }
    if !captured.validation.is_empty() {
        restore(&files);
        let names: Vec<&str> = files.iter().map(|f| f.0.as_str()).collect();
        let problems: Vec<String> = captured
            .validation
            .iter()
            .map(|f| format!("{}: {} ({})", f.check, f.message, f.object.as_deref().unwrap_or("-")))
            .collect();
        return Err(Error::Usage(format!(
            "not captured: with the captured patch {}, validate fails: {}. Nothing was written; run it again with --no-commit to keep the patch uncommitted and fix it by hand",
            names.join(", "),
            problems.join("; ")
        )));
    }
    match commit_on_branch(&repo.root, &captured.files, &captured.objects, &captured.overlay, !opts.stay) {
        Ok((branch, sha)) => {
            if opts.stay {
                // the commit is on the branch only: the checkout stays as it was
                restore(&files);
            }
            Ok(Captured { branch: Some(branch), commit: Some(sha), switched: !opts.stay, ..captured })
        }
        Err(e) => {
            restore(&files);
            Err(e)
        }
    }
}

/// The error findings of `after` that `before` did not have, pointed at the captured file
/// of their object (the patch brought them in, whichever file the check names).
fn new_errors(
    before: &[crate::workflows::validate::Finding],
    after: Vec<crate::workflows::validate::Finding>,
    files: &[(String, String)],
) -> Vec<crate::workflows::validate::Finding> {
    let key = |f: &crate::workflows::validate::Finding| (f.check.clone(), f.object.clone(), f.message.clone());
    let old: std::collections::HashSet<_> = before.iter().map(key).collect();
    after
        .into_iter()
        .filter(|f| f.severity == crate::config::Severity::Error && !old.contains(&key(f)))
        .map(|mut f| {
            let name = f.object.as_deref().and_then(|o| o.rsplit('/').next()).unwrap_or_default();
            let kind = f.object.as_deref().and_then(|o| o.split('/').next()).unwrap_or_default().to_lowercase();
            if let Some((file, _)) = files.iter().find(|(p, _)| p.ends_with(&format!("/drift-{kind}-{name}.yaml"))) {
                f.file = Some(file.clone());
                f.line = None;
            }
            f
        })
        .collect()
}

/// Commits exactly `files` (repo-relative) on a new branch from HEAD and switches to it;
/// the working tree already holds the content.
fn commit_on_branch(
    root: &Path,
    files: &[String],
    objects: &[String],
    overlay: &str,
    switch: bool,
) -> Result<(String, String)> {
    let stamp = crate::time::now_seconds().replace([':', '-'], "").replace('T', "-").trim_end_matches('Z').to_string();
    let env_app = overlay.rsplit('/').take(3).collect::<Vec<_>>();
    let branch = format!(
        "drift/capture-{}-{}-{stamp}",
        env_app.get(2).copied().unwrap_or("app"),
        env_app.first().copied().unwrap_or("env")
    );
    let message = format!(
        "fix({}): capture live drift into {overlay}\n\nThe cluster ran changes git did not have; this patch makes git match it.\nObjects: {}\n",
        env_app.get(2).copied().unwrap_or("drift"),
        objects.join(", ")
    );
    let sha = crate::git::commit_paths_to_branch(root, files, &message, &branch, switch)?;
    Ok((branch, sha))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patch_entries_land_at_the_end_of_the_list() {
        assert_eq!(
            add_patch_entry("resources:\n  - ../../base\n", "p.yaml"),
            "resources:\n  - ../../base\npatches:\n  - path: p.yaml\n"
        );
        let t = "resources:\n  - ../../base\npatches:\n  # sizes\n  - path: a.yaml\n  - target:\n      kind: Ingress\n    patch: |-\n      - op: add\nimages:\n  - name: x\n";
        assert_eq!(
            add_patch_entry(t, "p.yaml"),
            "resources:\n  - ../../base\npatches:\n  # sizes\n  - path: a.yaml\n  - target:\n      kind: Ingress\n    patch: |-\n      - op: add\n  - path: p.yaml\nimages:\n  - name: x\n"
        );
        assert_eq!(add_patch_entry("patches: []\n", "p.yaml"), "patches:\n  - path: p.yaml\n");
        assert_eq!(
            add_patch_entry("patches:\n- path: a.yaml\n", "p.yaml"),
            "patches:\n- path: a.yaml\n- path: p.yaml\n"
        );
    }

    #[test]
    fn a_patch_for_an_added_sidecar_and_a_changed_field() {
        let desired = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "g", "namespace": "m"},
            "spec": {"replicas": 1, "template": {"spec": {"containers": [{"name": "g", "image": "g:1"}]}}}});
        let mut live = desired.clone();
        live["spec"]["replicas"] = json!(3);
        live["spec"]["template"]["spec"]["containers"]
            .as_array_mut()
            .unwrap()
            .push(json!({"name": "proxy", "image": "p:1"}));
        let changes = diff::diff(&desired, &live);
        let p = patch_for(&desired, &live, &changes).unwrap();
        assert_eq!(
            p,
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "g"},
                   "spec": {"replicas": 3, "template": {"spec": {"containers": [{"name": "proxy", "image": "p:1"}]}}}})
        );
        // and the patch, applied as kustomize would, reproduces the live state
        let merged = crate::k8s::patch::strategic_merge("Deployment", &desired, &p).unwrap();
        assert!(diff::diff(&merged, &live).is_empty());
    }
}
