//! Values that differ on purpose. Before harmonize overwrites a value it asks whether the repo
//! says why the value is what it is: a comment next to it, a comment heading its document or
//! its patch that names the setting, or a patch whose only job is to set it. Such a value is
//! an exception: the plan lists it with its own words, and writing needs it overridden
//! explicitly (`--override-exceptions`, or a yes for each), never by `--yes` alone.
//!
//! And the other way round: a patch that sets the same value its base now sets does nothing
//! any more; the plan offers it for removal.

use std::collections::HashMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::trace::{Action, Site, SourceKind, Touch, layers};
use super::{Field, Setting};
use crate::config::yaml::parse_documents;
use crate::repo::Repo;
use crate::repo::kustomization::join;

/// How the repo says a value is on purpose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Evidence {
    /// A comment on the value's line or right above it.
    Comment,
    /// A comment heading the value's document, or the patch entry that sets it, naming the
    /// setting or its value.
    HeaderComment,
    /// A patch whose only job is to set this value.
    DedicatedPatch,
}

/// A value the repo sets on purpose, which the request would overwrite.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Exception {
    /// `file:line`: what `--override-exceptions` names.
    pub id: String,
    pub file: String,
    pub line: u32,
    pub app: Option<String>,
    /// Environments (or overlays, outside the layout) whose objects carry the value.
    pub envs: Vec<String>,
    /// `annotation nginx.ingress.kubernetes.io/ssl-protocols`
    pub setting: String,
    /// The value there now.
    pub current: String,
    /// What the request sets (None: it removes the key).
    pub wanted: Option<String>,
    pub evidence: Evidence,
    /// Why, in the repo's own words (the comment), or what the patch does.
    pub why: String,
    /// The request overrides it (`--override-exceptions all` or its id).
    pub overridden: bool,
}

/// A patch value that equals its base once the edits are in: it does nothing any more.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Redundant {
    /// `file:line` of the value in the patch.
    pub id: String,
    pub file: String,
    pub line: u32,
    pub envs: Vec<String>,
    pub setting: String,
    /// The base file that sets the same value.
    pub equal_to: String,
    /// The request removes it (`--remove-redundant`).
    pub removed: bool,
}

/// Whether `ids` (from the request) override an exception: `all`/`*`, its `file:line`, or
/// its file.
pub fn overrides(ids: &[String], e: &Exception) -> bool {
    ids.iter().any(|i| {
        let i = i.trim();
        i == "all" || i == "*" || i == e.id || i == e.file
    })
}

/// Reads files once.
#[derive(Default)]
pub struct Texts {
    texts: HashMap<String, Option<String>>,
}

impl Texts {
    pub fn get(&mut self, repo: &Repo, file: &str) -> Option<&str> {
        self.texts
            .entry(file.to_string())
            .or_insert_with(|| crate::config::limits::read_text(&repo.abs(file), repo.config.limits.file_bytes).ok())
            .as_deref()
    }
}

/// The comment on a line (`key: v  # why`), outside quotes.
fn trailing_comment(line: &str) -> Option<String> {
    let (mut single, mut double) = (false, false);
    let bytes: Vec<char> = line.chars().collect();
    for (i, c) in bytes.iter().enumerate() {
        match c {
            '\'' if !double => single = !single,
            '"' if !single => double = !double,
            '#' if !single && !double && i > 0 && bytes[i - 1].is_whitespace() => {
                let text: String = bytes[i + 1..].iter().collect();
                let t = text.trim();
                return (!t.is_empty()).then(|| t.to_string());
            }
            _ => {}
        }
    }
    None
}

/// The comment lines right above line `line` (1-based), in order, without their `#`.
fn comment_above(text: &str, line: u32) -> Vec<String> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    let mut i = line as usize;
    while i >= 2 {
        let l = lines.get(i - 2).map(|l| l.trim()).unwrap_or_default();
        match l.strip_prefix('#') {
            Some(c) if !l.starts_with("#!") => out.push(c.trim().to_string()),
            _ => break,
        }
        i -= 1;
    }
    out.reverse();
    out
}

/// Words of a text, for "does this comment name the setting": letters, digits, `.`, `-`,
/// `_`, `/`, lowercased, trailing punctuation dropped.
fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || ".-_/".contains(c)))
        .map(|w| w.trim_matches(|c: char| ".-_/".contains(c)).to_ascii_lowercase())
        .filter(|w| !w.is_empty())
        .collect()
}

/// Whether a comment names the setting: its key (or the key's name without a prefix), or a
/// telling word of the old or the new value (`TLSv1.2`; not `true` or `1`).
fn names_setting(comment: &str, setting: &Setting, current: &str) -> bool {
    let w = words(comment);
    let key = setting.key.to_ascii_lowercase();
    let short = key.rsplit('/').next().unwrap_or(&key).to_string();
    if w.iter().any(|x| *x == key || *x == short) {
        return true;
    }
    let telling = |v: &str| -> Vec<String> {
        words(v)
            .into_iter()
            .filter(|t| {
                t.len() >= 4 && t.chars().any(|c| c.is_ascii_alphabetic()) && t.chars().any(|c| c.is_ascii_digit())
            })
            .collect()
    };
    let mut tokens = telling(current);
    tokens.extend(setting.value.as_deref().map(telling).unwrap_or_default());
    tokens.iter().any(|t| w.contains(t))
}

/// The value at a site now: the YAML node the edit would change.
pub fn value_at(repo: &Repo, site: &Site) -> Option<Value> {
    let doc = match &site.block {
        None => repo.docs(&site.file).iter().find(|d| d.index == site.doc)?.value.clone(),
        Some(block) => {
            let k = repo.docs(&site.file).first()?;
            let mut v = &k.value;
            for b in block {
                v = match v {
                    Value::Array(a) => a.get(b.parse::<usize>().ok()?)?,
                    other => other.get(b)?,
                };
            }
            let inner = v.as_str()?.to_string();
            parse_documents(&inner).ok()?.into_iter().find(|d| d.index == site.doc)?.value
        }
    };
    let mut v = &doc;
    for p in &site.path {
        v = match v {
            Value::Array(a) => a.get(p.parse::<usize>().ok()?)?,
            other => other.get(p)?,
        };
    }
    Some(v.clone())
}

/// The line in a kustomization that lists the patch holding `site`, and that file: the
/// `- patch:` entry of an inline patch, or the entry whose `path` is the patch file.
pub fn patch_entry(repo: &Repo, overlays: &[String], site: &Site) -> Option<(String, u32)> {
    if let Some(block) = &site.block {
        let k = repo.docs(&site.file).first()?;
        let entry: String = block.iter().take(2).map(|b| format!("/{b}")).collect();
        return Some((site.file.clone(), k.line_of(&entry)));
    }
    for overlay in overlays {
        for k in layers(repo, overlay) {
            let Some(doc) = repo.docs(&k.file).first() else { continue };
            for field in ["patches", "patchesJson6902", "patchesStrategicMerge"] {
                let Some(Value::Array(items)) = doc.value.get(field) else { continue };
                for (i, item) in items.iter().enumerate() {
                    let path = item.get("path").and_then(Value::as_str).or_else(|| item.as_str());
                    if path.is_some_and(|p| !p.contains('\n') && join(&k.dir, p.trim()) == site.file) {
                        return Some((k.file.clone(), doc.line_of(&format!("/{field}/{i}"))));
                    }
                }
            }
        }
    }
    None
}

/// Whether a patch document does nothing but set this setting: a strategic-merge patch with
/// only the object's identity besides, or a JSON6902 patch with this one operation.
fn dedicated(doc: &Value, setting: &Setting) -> bool {
    let field = setting.field.key();
    match doc {
        Value::Array(ops) => {
            let path = format!("/metadata/{field}/{}", setting.key.replace('~', "~0").replace('/', "~1"));
            ops.len() == 1 && ops[0].get("path").and_then(Value::as_str) == Some(path.as_str())
        }
        Value::Object(m) => {
            let identity = |k: &str| matches!(k, "apiVersion" | "kind");
            let Some(meta) = m.get("metadata").and_then(Value::as_object) else { return false };
            let only_meta = m.keys().all(|k| identity(k) || k == "metadata");
            let meta_ok = meta.iter().all(|(k, v)| match k.as_str() {
                "name" | "namespace" => true,
                f if f == field => v.as_object().is_some_and(|x| x.len() == 1 && x.contains_key(&setting.key)),
                _ => false,
            });
            only_meta && meta_ok && meta.contains_key(field)
        }
        _ => false,
    }
}

/// The document of a site (for a patch: the patch document).
fn doc_at(repo: &Repo, site: &Site) -> Option<(Value, u32)> {
    match &site.block {
        None => repo.docs(&site.file).iter().find(|d| d.index == site.doc).map(|d| (d.value.clone(), d.line)),
        Some(block) => {
            let k = repo.docs(&site.file).first()?;
            let mut v = &k.value;
            for b in block {
                v = match v {
                    Value::Array(a) => a.get(b.parse::<usize>().ok()?)?,
                    other => other.get(b)?,
                };
            }
            let d = parse_documents(v.as_str()?).ok()?.into_iter().find(|d| d.index == site.doc)?;
            Some((d.value, 0))
        }
    }
}

/// Whether the value an edit would change is an exception, and why.
pub fn exception(
    repo: &Repo,
    texts: &mut Texts,
    touch: &Touch,
    setting: &Setting,
    overlays: &[String],
) -> Option<(Evidence, String, String)> {
    let current = value_at(repo, &touch.site)?;
    let current = match &current {
        Value::String(s) => s.clone(),
        Value::Null => return None,
        other => other.to_string(),
    };
    if matches!(&touch.action, Action::Set(v) if *v == current) {
        return None;
    }
    let text = texts.get(repo, &touch.site.file)?.to_string();
    let line_text = text.lines().nth(touch.line.saturating_sub(1) as usize).unwrap_or_default();
    // 1. next to it
    let mut next: Vec<String> = comment_above(&text, touch.line);
    next.extend(trailing_comment(line_text));
    if !next.is_empty() {
        return Some((Evidence::Comment, next.join(" "), current));
    }
    let is_patch = matches!(touch.source, SourceKind::OverlayPatch | SourceKind::Json6902);
    let (doc, doc_line) = doc_at(repo, &touch.site)?;
    // what heads the document, and the entry that lists the patch
    let mut head: Vec<String> = Vec::new();
    if touch.site.block.is_none() && doc_line > 0 {
        head.extend(comment_above(&text, doc_line));
    }
    if is_patch && let Some((kfile, line)) = patch_entry(repo, overlays, &touch.site) {
        let ktext = texts.get(repo, &kfile).map(str::to_string).unwrap_or_default();
        head.extend(comment_above(&ktext, line));
    }
    // 2. a patch whose only job is to set it
    if is_patch && dedicated(&doc, setting) {
        let why = if head.is_empty() {
            format!("{} exists only to set {} {}", touch.site.file, setting.field.singular(), setting.key)
        } else {
            head.join(" ")
        };
        return Some((Evidence::DedicatedPatch, why, current));
    }
    // 3. a heading that names the setting or its value
    let heading = head.join(" ");
    if !heading.is_empty() && names_setting(&heading, setting, &current) {
        return Some((Evidence::HeaderComment, heading, current));
    }
    None
}

/// `annotation k`
pub fn setting_name(s: &Setting) -> String {
    let noun = match s.field {
        Field::Annotations => "annotation",
        Field::Labels => "label",
    };
    format!("{noun} {}", s.key)
}

/// Drops one `- path: FILE` entry (a single line) from a kustomization's text, with the
/// comment lines right above it. None when the entry is not a single line.
pub fn drop_path_entry(text: &str, file: &str) -> Option<String> {
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let target = |l: &str| {
        let t = l.trim();
        let v = t.strip_prefix("- path:").map(|v| v.trim().trim_matches(|c| c == '"' || c == '\''));
        v == Some(file)
    };
    let at = lines.iter().position(|l| target(l))?;
    let indent = lines[at].len() - lines[at].trim_start().len();
    // the next line must not continue this entry (`target:` under it)
    if let Some(next) = lines.get(at + 1) {
        let n_indent = next.len() - next.trim_start().len();
        if !next.trim().is_empty() && n_indent > indent && !next.trim_start().starts_with('#') {
            return None;
        }
    }
    let mut from = at;
    while from > 0 && lines[from - 1].trim_start().starts_with('#') {
        from -= 1;
    }
    let mut out = String::new();
    for (i, l) in lines.iter().enumerate() {
        if i < from || i > at {
            out.push_str(l);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comments_next_to_a_value_and_above_it() {
        let text = "a:\n  # one\n  # two\n  key: \"x\"  # three\n  other: 1\n";
        assert_eq!(comment_above(text, 4), ["one", "two"]);
        assert_eq!(trailing_comment("  key: \"x\"  # three"), Some("three".into()));
        assert_eq!(trailing_comment("  key: \"a # b\""), None);
        assert!(comment_above(text, 5).is_empty());
    }

    #[test]
    fn a_comment_names_a_setting_by_key_or_telling_value() {
        let s = Setting {
            field: Field::Annotations,
            key: "nginx.ingress.kubernetes.io/ssl-protocols".into(),
            value: Some("TLSv1.3".into()),
        };
        assert!(names_setting("prod-west is the first region to serve TLSv1.3 to browsers.", &s, "TLSv1.2 TLSv1.3"));
        assert!(names_setting("keep ssl-protocols as is", &s, "TLSv1.2"));
        assert!(!names_setting("TLS terminates at ingress-nginx", &s, "TLSv1.2"));
        let b = Setting { field: Field::Labels, key: "tier".into(), value: Some("true".into()) };
        assert!(!names_setting("this is true", &b, "1"), "plain words are not telling");
    }

    #[test]
    fn dedicated_patches_set_nothing_else() {
        let s = Setting { field: Field::Annotations, key: "a/b".into(), value: Some("1".into()) };
        let smp = serde_json::json!({"apiVersion": "v1", "kind": "X", "metadata": {"name": "x", "annotations": {"a/b": "2"}}});
        assert!(dedicated(&smp, &s));
        let more = serde_json::json!({"kind": "X", "metadata": {"name": "x", "annotations": {"a/b": "2", "c": "d"}}});
        assert!(!dedicated(&more, &s));
        let ops = serde_json::json!([{"op": "replace", "path": "/metadata/annotations/a~1b", "value": "2"}]);
        assert!(dedicated(&ops, &s));
    }

    #[test]
    fn a_single_line_path_entry_is_dropped_with_its_comment() {
        let k =
            "patches:\n  - path: a.yaml\n  # why b\n  - path: b.yaml\n  - path: c.yaml\n    target:\n      kind: X\n";
        assert_eq!(
            drop_path_entry(k, "b.yaml").unwrap(),
            "patches:\n  - path: a.yaml\n  - path: c.yaml\n    target:\n      kind: X\n"
        );
        assert!(drop_path_entry(k, "c.yaml").is_none(), "an entry with a target is not one line");
        assert!(drop_path_entry(k, "d.yaml").is_none());
    }
}
