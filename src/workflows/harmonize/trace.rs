//! Where a rendered annotation or label comes from: the resource document that defines the
//! object (in a base, a Component or the overlay itself) and every patch of the build that
//! touches the key (strategic-merge, JSON6902, in files or inline in a kustomization).
//!
//! The trace is deliberately generous: a patch whose target may match is traced too. Nothing
//! here is trusted on its own; every edit is proven by re-rendering before it is written.

use std::collections::HashSet;

use serde::Serialize;
use serde_json::Value;

use super::Setting;
use crate::config::yaml::{YamlDoc, parse_documents};
use crate::repo::kustomization::{Kustomization, RefKind, join};
use crate::repo::{Repo, split_dir};

/// Where a value is set, as the JSON output names it.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, serde::Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum SourceKind {
    /// A resource file of a base.
    Base,
    /// A resource file of a Component.
    Component,
    /// A strategic-merge patch (file or inline).
    OverlayPatch,
    /// A JSON6902 patch (file or inline).
    Json6902,
    /// A resource defined only in the overlay.
    OverlayResource,
}

/// The place of one edit: a key path inside one YAML document.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Site {
    pub file: String,
    /// The literal block (an inline patch in a kustomization) holding the document, if any.
    pub block: Option<Vec<String>>,
    /// Document index in the file, or in the block.
    pub doc: usize,
    /// Key path in the document (list indices as strings).
    pub path: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Action {
    Set(String),
    Remove,
}

/// One edit the trace asks for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Touch {
    pub site: Site,
    pub action: Action,
    pub source: SourceKind,
    /// Line of the edited node (or its nearest parent) in the file.
    pub line: u32,
}

/// A patch of the build: its documents, where they live, and whom it targets.
struct Patch<'a> {
    file: String,
    block: Option<Vec<String>>,
    /// Line in `file` where the block's content starts (0 for a patch file).
    block_line: u32,
    docs: Vec<YamlDoc>,
    target: Option<&'a Value>,
}

/// Every kustomization a build of `dir` reads, bottom-up (resources before the layers that
/// include them).
pub fn layers<'a>(repo: &'a Repo, dir: &str) -> Vec<&'a Kustomization> {
    fn walk<'a>(repo: &'a Repo, dir: &str, out: &mut Vec<&'a Kustomization>, seen: &mut HashSet<String>) {
        let Some(k) = repo.kustomizations.get(dir) else { return };
        if !seen.insert(dir.to_string()) {
            return;
        }
        for r in &k.refs {
            if matches!(r.kind, RefKind::Resource | RefKind::Component) && repo.kustomizations.contains_key(&r.path) {
                walk(repo, &r.path, out, seen);
            }
        }
        out.push(k);
    }
    let mut out = Vec::new();
    walk(repo, dir, &mut out, &mut HashSet::new());
    out
}

fn patches<'a>(repo: &'a Repo, k: &'a Kustomization) -> Vec<Patch<'a>> {
    let mut out = Vec::new();
    let Some(doc) = repo.docs(&k.file).first() else { return out };
    let v = &doc.value;
    let push = |out: &mut Vec<Patch<'a>>, entry: Option<&'a Value>, block: Vec<String>, target: Option<&'a Value>| {
        let Some(Value::String(s)) = entry else { return };
        if s.contains('\n') {
            let pointer: String = block.iter().map(|b| format!("/{b}")).collect();
            if let Ok(docs) = parse_documents(s) {
                out.push(Patch {
                    file: k.file.clone(),
                    block: Some(block),
                    block_line: doc.line_of(&pointer),
                    docs,
                    target,
                });
            }
        } else {
            let file = join(&k.dir, s.trim());
            let docs = repo.docs(&file).to_vec();
            out.push(Patch { file, block: None, block_line: 0, docs, target });
        }
    };
    for field in ["patches", "patchesJson6902"] {
        if let Some(Value::Array(items)) = v.get(field) {
            for (i, item) in items.iter().enumerate() {
                let target = item.get("target");
                if item.get("path").is_some() {
                    push(&mut out, item.get("path"), Vec::new(), target);
                } else {
                    push(&mut out, item.get("patch"), vec![field.to_string(), i.to_string(), "patch".into()], target);
                }
            }
        }
    }
    if let Some(Value::Array(items)) = v.get("patchesStrategicMerge") {
        for (i, item) in items.iter().enumerate() {
            push(&mut out, Some(item), vec!["patchesStrategicMerge".into(), i.to_string()], None);
        }
    }
    out
}

/// Whether a kustomize patch target selects an object of `kind` with one of `names`
/// (`name` is a regular expression in kustomize). Selectors on labels and annotations
/// are not evaluated: the trace over-approximates and the proof decides.
fn target_matches(target: &Value, kind: &str, names: &[&str]) -> bool {
    if let Some(k) = target.get("kind").and_then(Value::as_str)
        && k != kind
    {
        return false;
    }
    match target.get("name").and_then(Value::as_str) {
        None => true,
        Some(pattern) => match regex::Regex::new(&format!("^(?:{pattern})$")) {
            Ok(re) => names.iter().any(|n| re.is_match(n)),
            Err(_) => names.contains(&pattern),
        },
    }
}

/// RFC 6901 escaping of one pointer segment.
fn escape(seg: &str) -> String {
    seg.replace('~', "~0").replace('/', "~1")
}

/// The resource document an object of a leaf comes from: exact kind and name first, else the
/// longest source name the rendered name contains (namePrefix, nameSuffix).
pub fn source_doc<'a>(repo: &'a Repo, dir: &str, kind: &str, name: &str) -> Option<(&'a str, &'a YamlDoc)> {
    let closure = repo.closure(dir);
    let mut best: Option<(&'a str, &'a YamlDoc, bool, usize)> = None;
    for f in &closure.resource_files {
        let Some((file, _)) = repo.files.get_key_value(f.as_str()) else { continue };
        for d in repo.docs(file) {
            if d.value.get("kind").and_then(Value::as_str) != Some(kind) {
                continue;
            }
            let Some(n) = d.value.pointer("/metadata/name").and_then(Value::as_str) else { continue };
            let exact = n == name;
            if !exact && (n.is_empty() || !name.contains(n)) {
                continue;
            }
            let better = match best {
                None => true,
                Some((_, _, e, len)) => (exact && !e) || (exact == e && n.len() > len),
            };
            if better {
                best = Some((file.as_str(), d, exact, n.len()));
            }
        }
    }
    best.map(|(f, d, _, _)| (f, d))
}

/// How a source file relates to the leaf being traced.
fn source_kind(repo: &Repo, leaf_dir: &str, file: &str) -> SourceKind {
    let mut dir = split_dir(file).0;
    loop {
        if let Some(k) = repo.kustomizations.get(dir) {
            if k.is_component {
                return SourceKind::Component;
            }
            break;
        }
        match dir.rfind('/') {
            Some(i) => dir = &dir[..i],
            None => break,
        }
    }
    if file.starts_with(&format!("{leaf_dir}/")) { SourceKind::OverlayResource } else { SourceKind::Base }
}

/// The edits that make `obj` (rendered in the leaf at `dir`) carry `setting`, or why none can.
pub fn trace(repo: &Repo, dir: &str, obj: &Value, setting: &Setting) -> Result<Vec<Touch>, String> {
    let kind = obj.get("kind").and_then(Value::as_str).unwrap_or_default();
    let rendered_name = obj.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default();
    let field = setting.field.key();
    let key = setting.key.as_str();
    let mut touches = Vec::new();

    let source = source_doc(repo, dir, kind, rendered_name);
    let mut names = vec![rendered_name];
    if let Some((file, doc)) = source {
        let n = doc.value.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default();
        names.push(n);
        let current = doc.value.pointer(&format!("/metadata/{field}")).and_then(|m| m.get(key));
        let action = match (&setting.value, current) {
            (Some(v), Some(Value::String(c))) if c == v => None,
            (Some(v), _) => Some(Action::Set(v.clone())),
            (None, Some(_)) => Some(Action::Remove),
            (None, None) => None,
        };
        if let Some(action) = action {
            touches.push(Touch {
                site: Site {
                    file: file.to_string(),
                    block: None,
                    doc: doc.index,
                    path: vec!["metadata".into(), field.into(), key.into()],
                },
                action,
                source: source_kind(repo, dir, file),
                line: doc.line_of(&format!("/metadata/{field}/{}", escape(key))),
            });
        }
    }

    let where_ = |p: &Patch, d: &YamlDoc, pointer: &str| format!("{}:{}", p.file, p.block_line + d.line_of(pointer));
    for k in layers(repo, dir) {
        // transformers that set the key on every object of a layer cannot be edited for one kind
        for (f, holds) in [("commonAnnotations", field == "annotations"), ("commonLabels", field == "labels")] {
            let doc = repo.docs(&k.file).first();
            if holds
                && let Some(d) = doc
                && let Some(v) = d.value.get(f).and_then(|m| m.get(key))
                && setting.value.as_deref() != v.as_str()
            {
                return Err(format!(
                    "{}:{} sets {field} {key} on every object of {} ({f}); change it there by hand",
                    k.file,
                    d.line_of(&format!("/{f}/{}", escape(key))),
                    k.dir
                ));
            }
        }
        if field == "labels"
            && let Some(d) = repo.docs(&k.file).first()
            && let Some(Value::Array(items)) = d.value.get("labels")
        {
            for (i, item) in items.iter().enumerate() {
                if let Some(v) = item.pointer("/pairs").and_then(|p| p.get(key))
                    && setting.value.as_deref() != v.as_str()
                {
                    return Err(format!(
                        "{}:{} sets label {key} on every object of {} (labels); change it there by hand",
                        k.file,
                        d.line_of(&format!("/labels/{i}/pairs/{}", escape(key))),
                        k.dir
                    ));
                }
            }
        }

        for p in patches(repo, k) {
            for d in &p.docs {
                let touch = |path: Vec<String>, action: Action, source: SourceKind, pointer: &str| Touch {
                    site: Site { file: p.file.clone(), block: p.block.clone(), doc: d.index, path },
                    action,
                    source,
                    line: p.block_line + d.line_of(pointer),
                };
                if let Value::Array(ops) = &d.value {
                    if !p.target.is_some_and(|t| target_matches(t, kind, &names)) {
                        continue;
                    }
                    let map_path = format!("/metadata/{field}");
                    let key_path = format!("{map_path}/{}", escape(key));
                    for (i, op) in ops.iter().enumerate() {
                        let verb = op.get("op").and_then(Value::as_str).unwrap_or_default();
                        let path = op.get("path").and_then(Value::as_str).unwrap_or_default();
                        let at = |s: &str| vec![i.to_string(), "value".to_string(), s.to_string()];
                        if path == map_path && matches!(verb, "add" | "replace") {
                            let current = op.get("value").and_then(|m| m.get(key));
                            match (&setting.value, current) {
                                (Some(v), Some(Value::String(c))) if c == v => {}
                                (Some(v), _) => touches.push(touch(
                                    at(key),
                                    Action::Set(v.clone()),
                                    SourceKind::Json6902,
                                    // the key's own line (the map's when it is not there yet)
                                    &format!("/{i}/value/{}", escape(key)),
                                )),
                                (None, Some(_)) => {
                                    if op.get("value").and_then(Value::as_object).is_some_and(|m| m.len() == 1) {
                                        return Err(format!(
                                            "{}: the JSON6902 operation replaces {field} with only {key}; removing it would leave an empty map, edit it by hand",
                                            where_(&p, d, &format!("/{i}"))
                                        ));
                                    }
                                    touches.push(touch(
                                        at(key),
                                        Action::Remove,
                                        SourceKind::Json6902,
                                        &format!("/{i}/value/{}", escape(key)),
                                    ))
                                }
                                (None, None) => {}
                            }
                        } else if path == key_path && matches!(verb, "add" | "replace") {
                            match &setting.value {
                                Some(v) if op.get("value").and_then(Value::as_str) == Some(v) => {}
                                Some(v) => touches.push(touch(
                                    vec![i.to_string(), "value".into()],
                                    Action::Set(v.clone()),
                                    SourceKind::Json6902,
                                    &format!("/{i}/value"),
                                )),
                                None => {
                                    return Err(format!(
                                        "{}: a JSON6902 `{verb}` operation sets {key}; delete that operation by hand",
                                        where_(&p, d, &format!("/{i}"))
                                    ));
                                }
                            }
                        } else if setting.value.is_some() && verb == "remove" && (path == key_path || path == map_path)
                        {
                            return Err(format!(
                                "{}: a JSON6902 `remove` operation deletes {}; it cannot carry the value, edit it by hand",
                                where_(&p, d, &format!("/{i}")),
                                if path == key_path { key } else { field }
                            ));
                        }
                    }
                    continue;
                }
                // strategic-merge patch
                let dk = d.value.get("kind").and_then(Value::as_str).unwrap_or_default();
                let dn = d.value.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default();
                let applies = match p.target {
                    Some(t) => target_matches(t, kind, &names),
                    None => dk == kind && names.contains(&dn),
                };
                if !applies {
                    continue;
                }
                let map = d.value.pointer(&format!("/metadata/{field}"));
                let current = map.and_then(|m| m.get(key));
                let pointer = format!("/metadata/{field}/{}", escape(key));
                match (&setting.value, current) {
                    (Some(v), Some(Value::String(c))) if c == v => {}
                    (Some(v), Some(_)) => touches.push(touch(
                        vec!["metadata".into(), field.into(), key.into()],
                        Action::Set(v.clone()),
                        SourceKind::OverlayPatch,
                        &pointer,
                    )),
                    (None, Some(_)) => {
                        // `annotations: null` in a patch would delete the whole map: drop the
                        // map key itself when this was its only entry
                        let path = if map.and_then(Value::as_object).is_some_and(|m| m.len() == 1) {
                            vec!["metadata".into(), field.into()]
                        } else {
                            vec!["metadata".into(), field.into(), key.into()]
                        };
                        touches.push(touch(path, Action::Remove, SourceKind::OverlayPatch, &pointer))
                    }
                    _ => {}
                }
            }
        }
    }
    if touches.is_empty() {
        return Err(match source {
            None => format!(
                "no resource file in the build of {dir} defines {kind} {rendered_name} (a generator, a remote base or a Helm chart?); it cannot be edited at its source"
            ),
            Some((file, _)) => format!(
                "{kind} {rendered_name} in {dir} comes from {file}, but no source or patch explains its {field} {key}; a transformer or plugin may set it"
            ),
        });
    }
    Ok(touches)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_are_regular_expressions_over_the_kind_and_name() {
        let t = serde_json::json!({"kind": "Ingress", "name": "api-.*"});
        assert!(target_matches(&t, "Ingress", &["api-gateway"]));
        assert!(!target_matches(&t, "Service", &["api-gateway"]));
        assert!(!target_matches(&t, "Ingress", &["web-api-gateway"]));
        assert!(target_matches(&serde_json::json!({"kind": "Ingress"}), "Ingress", &["x"]));
        assert!(target_matches(&serde_json::json!({"name": "(["}), "Ingress", &["(["]));
    }

    #[test]
    fn pointer_segments_escape_slashes_and_tildes() {
        assert_eq!(escape("nginx.ingress.kubernetes.io/ssl-protocols"), "nginx.ingress.kubernetes.io~1ssl-protocols");
        assert_eq!(escape("a~b"), "a~0b");
    }
}
