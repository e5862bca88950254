//! What a revert does not undo: the changes of the reverted commits that act outside git's
//! reach (migrations run by Jobs or hooks, volumes, CRDs, removed config keys, moved
//! namespaces). Found by comparing each changed file before and after each commit, and the
//! app's overlay rendered at the target and at the deployed revision.

use std::collections::BTreeSet;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A manual follow-up the plan lists.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
pub struct Risk {
    /// migration, volume, crd, removed-key or namespace
    pub kind: String,
    /// Short sha of the commit that made the change.
    pub commit: String,
    pub file: String,
    pub message: String,
}

fn objects(bytes: Option<&[u8]>) -> Vec<Value> {
    let Some(b) = bytes.filter(|b| b.len() as u64 <= crate::config::limits::DEFAULT_FILE_BYTES) else {
        return Vec::new();
    };
    crate::config::yaml::parse_values(&String::from_utf8_lossy(b)).unwrap_or_default()
}

fn s<'a>(v: &'a Value, ptr: &str) -> &'a str {
    v.pointer(ptr).and_then(Value::as_str).unwrap_or_default()
}

fn id(v: &Value) -> (String, String) {
    (s(v, "/kind").to_string(), s(v, "/metadata/name").to_string())
}

fn hook(v: &Value) -> Option<String> {
    let a = v.pointer("/metadata/annotations")?;
    ["argocd.argoproj.io/hook", "helm.sh/hook"].iter().find_map(|k| a.get(*k)?.as_str().map(|h| format!("{k}: {h}")))
}

fn keys(v: &Value) -> BTreeSet<String> {
    ["data", "stringData", "binaryData"]
        .iter()
        .filter_map(|f| v.get(*f).and_then(Value::as_object))
        .flat_map(|m| m.keys().cloned())
        .collect()
}

/// The risks of one commit's change to one file (`old`/`new`: the file's bytes before and
/// after; None when absent).
pub fn scan_file(commit: &str, file: &str, old: Option<&[u8]>, new: Option<&[u8]>) -> Vec<Risk> {
    let (before, after) = (objects(old), objects(new));
    let mut out = scan_objects(commit, file, &before, &after);
    // a kustomization's namespace: every object moves
    if file.ends_with("kustomization.yaml") || file.ends_with("kustomization.yml") {
        let ns = |l: &[Value]| l.first().map(|k| s(k, "/namespace").to_string()).unwrap_or_default();
        if ns(&before) != ns(&after) && !before.is_empty() {
            out.push(Risk {
                kind: "namespace".into(),
                commit: commit.into(),
                file: file.into(),
                message: format!(
                    "the kustomization's namespace changed from {:?} to {:?}: objects in the new namespace stay unless pruned",
                    ns(&before),
                    ns(&after)
                ),
            });
        }
    }
    out
}

/// The overlay rendered at the target and at the deployed revision, compared object by
/// object (generated ConfigMap and Secret names without their hash): finds what the changed
/// files alone do not show, such as a key dropped from a configMapGenerator, volumeClaimTemplates
/// changed by a patch, or a hook Job that comes from a Component. `label` names the commits.
pub fn scan_rendered(
    root: &std::path::Path,
    overlay: &str,
    target: &str,
    deployed: &str,
    label: &str,
    engine: &crate::kustomize::Engine,
    redactor: &crate::k8s::redact::Redactor,
) -> Result<Vec<Risk>, String> {
    let render_at = |rev: &str| -> Result<Vec<Value>, String> {
        let side = crate::git::checkout(root, rev).map_err(|e| e.to_string())?;
        crate::workflows::context::learn_repo_secrets(&side.repo, redactor);
        crate::workflows::commit::draft::render(&side.repo, engine, overlay)
            .map_err(|e| format!("{overlay} does not build at {}: {e}", &rev[..rev.len().min(7)]))
    };
    let (before, after) = (render_at(target)?, render_at(deployed)?);
    Ok(scan_objects(label, &format!("{overlay} (rendered)"), &before, &after))
}

/// The risks of a change from the objects `before` to the objects `after`.
fn scan_objects(commit: &str, file: &str, before: &[Value], after: &[Value]) -> Vec<Risk> {
    let mut out = Vec::new();
    let mut add = |kind: &str, message: String| {
        out.push(Risk { kind: kind.into(), commit: commit.into(), file: file.into(), message })
    };
    let find = |list: &[Value], v: &Value| list.iter().find(|o| id(o) == id(v)).cloned();
    for v in after {
        let (kind, name) = id(v);
        let prev = find(before, v);
        if prev.as_ref() == Some(v) {
            continue;
        }
        let verb = if prev.is_some() { "changed" } else { "added" };
        if let Some(h) = hook(v) {
            add(
                "migration",
                format!(
                    "{kind} {name} ({h}) {verb}: it ran during the deploy (likely a migration); a revert does not undo what it did"
                ),
            );
        } else if kind == "Job" || kind == "CronJob" {
            add(
                "migration",
                format!(
                    "{kind} {name} {verb}: it may have run (likely a migration); a revert does not undo what it did"
                ),
            );
        }
        match kind.as_str() {
            "PersistentVolumeClaim" => add(
                "volume",
                format!("PersistentVolumeClaim {name} {verb}: volumes are not shrunk, moved or deleted by a revert"),
            ),
            "StatefulSet" => {
                let t = |o: &Value| o.pointer("/spec/volumeClaimTemplates").cloned();
                if prev.as_ref().map(t) != Some(t(v)) && (prev.is_some() || t(v).is_some()) {
                    add(
                        "volume",
                        format!(
                            "StatefulSet {name}: volumeClaimTemplates {verb}; they are immutable, and existing claims stay as they are"
                        ),
                    );
                }
            }
            "CustomResourceDefinition" => add(
                "crd",
                format!(
                    "CustomResourceDefinition {name} {verb}: stored objects keep the new schema version; check conversions before reverting"
                ),
            ),
            "Namespace" if prev.is_none() => {
                add("namespace", format!("Namespace {name} added: a revert does not delete it or what runs in it"))
            }
            _ => {}
        }
        if let Some(p) = &prev {
            if (kind == "Secret" || kind == "ConfigMap") && !keys(p).is_subset(&keys(v)) {
                let gone: Vec<String> = keys(p).difference(&keys(v)).cloned().collect();
                add(
                    "removed-key",
                    format!(
                        "{kind} {name}: key(s) {} removed; anything that wrote or read them since may need fixing",
                        gone.join(", ")
                    ),
                );
            }
            let ns = |o: &Value| s(o, "/metadata/namespace").to_string();
            if ns(p) != ns(v) {
                add(
                    "namespace",
                    format!(
                        "{kind} {name} moved from namespace {:?} to {:?}: the copy in the new namespace is not pruned by a revert unless Argo CD prunes",
                        ns(p),
                        ns(v)
                    ),
                );
            }
        }
    }
    for p in before {
        if find(after, p).is_none() && id(p).0 == "CustomResourceDefinition" {
            add(
                "crd",
                format!("CustomResourceDefinition {} removed: its objects may have been deleted with it", id(p).1),
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_volumes_crds_keys_and_namespaces_are_found() {
        let job = b"apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: migrate-db\n  annotations:\n    argocd.argoproj.io/hook: PreSync\nspec: {}\n";
        let r = scan_file("a3f8d2c", "apps/a/base/migrate.yaml", None, Some(job));
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].kind, "migration");
        assert!(r[0].message.contains("migrate-db") && r[0].message.contains("PreSync"), "{}", r[0].message);

        let cm0 = b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\ndata:\n  a: '1'\n  b: '2'\n";
        let cm1 = b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n  namespace: other\ndata:\n  a: '1'\n";
        let r = scan_file("x", "f.yaml", Some(cm0), Some(cm1));
        let kinds: Vec<&str> = r.iter().map(|r| r.kind.as_str()).collect();
        assert_eq!(kinds, vec!["removed-key", "namespace"]);
        assert!(r[0].message.contains("key(s) b removed"));

        let pvc = b"apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata:\n  name: data\nspec: {resources: {requests: {storage: 20Gi}}}\n";
        assert_eq!(scan_file("x", "f.yaml", None, Some(pvc))[0].kind, "volume");
        let crd = b"apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n  name: x.y\n";
        assert_eq!(scan_file("x", "f.yaml", Some(crd), None)[0].kind, "crd");
        let k0 = b"namespace: auth\nresources: [a.yaml]\n";
        let k1 = b"namespace: auth2\nresources: [a.yaml]\n";
        assert_eq!(scan_file("x", "apps/a/kustomization.yaml", Some(k0), Some(k1))[0].kind, "namespace");

        let dep = b"apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: d\nspec: {replicas: 2}\n";
        let dep2 = b"apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: d\nspec: {replicas: 3}\n";
        assert!(scan_file("x", "f.yaml", Some(dep), Some(dep2)).is_empty(), "a plain change is no risk");
    }
}
