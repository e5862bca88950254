//! Reading a kustomization: which directories and files it reaches, and which of its
//! inputs cannot be built offline (remote bases, Helm charts).

use serde_json::Value;

use crate::config::yaml::YamlDoc;

pub const FILE_NAMES: [&str; 3] = ["kustomization.yaml", "kustomization.yml", "Kustomization"];

/// How a kustomization refers to a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefKind {
    /// `resources` (or the deprecated `bases`): a file of objects or a kustomization directory.
    Resource,
    /// `components`: a Component directory.
    Component,
    /// Patches, generator inputs, configurations, CRDs, replacements, plugin configs.
    File,
}

#[derive(Debug, Clone)]
pub struct Ref {
    pub kind: RefKind,
    /// The path as written.
    pub raw: String,
    /// Repo-relative normalized path (may start with `../` when it leaves the repo).
    pub path: String,
    pub line: u32,
}

/// Something in the kustomization that needs the network or plugins to build.
#[derive(Debug, Clone)]
pub struct OfflineBlocker {
    pub file: String,
    pub line: u32,
    pub what: String,
}

#[derive(Debug, Clone)]
pub struct Kustomization {
    /// Repo-relative directory ("" for the root).
    pub dir: String,
    /// Repo-relative path of the kustomization file.
    pub file: String,
    pub is_component: bool,
    pub refs: Vec<Ref>,
    pub blockers: Vec<OfflineBlocker>,
    /// Secret literals from secretGenerator, for the redactor.
    pub secret_literals: Vec<String>,
    /// secretGenerator input files, whose content is secret.
    pub secret_files: Vec<String>,
}

/// Joins a repo-relative directory and a relative path, resolving `.` and `..` lexically.
pub fn join(dir: &str, rel: &str) -> String {
    let mut parts: Vec<&str> = if dir.is_empty() { Vec::new() } else { dir.split('/').collect() };
    let mut ups = 0usize;
    for seg in rel.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                if parts.pop().is_none() {
                    ups += 1;
                }
            }
            s => parts.push(s),
        }
    }
    let mut out = "../".repeat(ups);
    out.push_str(&parts.join("/"));
    if out.ends_with('/') {
        out.pop();
    }
    out
}

/// Whether a resource entry names a remote location rather than a local path.
pub fn is_remote(entry: &str) -> bool {
    entry.contains("://")
        || entry.starts_with("git@")
        || entry.contains("?ref=")
        || entry.contains(".git//")
        || ["github.com/", "gitlab.com/", "bitbucket.org/"].iter().any(|h| entry.starts_with(h))
}

impl Kustomization {
    /// Reads the references out of a parsed kustomization. `is_dir` tells whether a
    /// repo-relative path is an existing directory.
    pub fn from_doc(dir: &str, file: &str, doc: &YamlDoc, is_dir: &dyn Fn(&str) -> bool) -> Kustomization {
        let v = &doc.value;
        let mut k = Kustomization {
            dir: dir.to_string(),
            file: file.to_string(),
            is_component: v.get("kind").and_then(Value::as_str) == Some("Component"),
            refs: Vec::new(),
            blockers: Vec::new(),
            secret_literals: Vec::new(),
            secret_files: Vec::new(),
        };
        let line = |p: &str| doc.line_of(p);
        let push = |k: &mut Kustomization, kind: RefKind, raw: &str, ptr: String| {
            let raw = raw.trim();
            if raw.is_empty() || raw.contains('\n') {
                return;
            }
            if kind != RefKind::File && is_remote(raw) {
                k.blockers.push(OfflineBlocker {
                    file: file.to_string(),
                    line: line(&ptr),
                    what: format!("remote base {raw:?} cannot be built offline"),
                });
                return;
            }
            k.refs.push(Ref { kind, raw: raw.to_string(), path: join(dir, raw), line: line(&ptr) });
        };
        for (field, kind) in
            [("resources", RefKind::Resource), ("bases", RefKind::Resource), ("components", RefKind::Component)]
        {
            for (i, e) in strings(v.get(field)) {
                push(&mut k, kind, e, format!("/{field}/{i}"));
            }
        }
        for field in ["crds", "configurations", "patchesStrategicMerge", "generators", "transformers", "validators"] {
            for (i, e) in strings(v.get(field)) {
                let kind = if field != "patchesStrategicMerge" && is_dir(&join(dir, e)) {
                    RefKind::Resource
                } else {
                    RefKind::File
                };
                push(&mut k, kind, e, format!("/{field}/{i}"));
            }
        }
        for field in ["patches", "patchesJson6902", "replacements"] {
            if let Some(Value::Array(items)) = v.get(field) {
                for (i, item) in items.iter().enumerate() {
                    if let Some(p) = item.get("path").and_then(Value::as_str) {
                        push(&mut k, RefKind::File, p, format!("/{field}/{i}/path"));
                    }
                }
            }
        }
        if let Some(p) = v.pointer("/openapi/path").and_then(Value::as_str) {
            push(&mut k, RefKind::File, p, "/openapi/path".into());
        }
        for field in ["configMapGenerator", "secretGenerator"] {
            let Some(Value::Array(items)) = v.get(field) else {
                continue;
            };
            for (i, item) in items.iter().enumerate() {
                let secret = field == "secretGenerator";
                for (j, f) in strings(item.get("files")) {
                    let path = f.split_once('=').map_or(f, |(_, p)| p);
                    push(&mut k, RefKind::File, path, format!("/{field}/{i}/files/{j}"));
                    if secret {
                        k.secret_files.push(join(dir, path));
                    }
                }
                let mut envs: Vec<(String, &str)> =
                    strings(item.get("envs")).map(|(j, e)| (format!("/{field}/{i}/envs/{j}"), e)).collect();
                if let Some(e) = item.get("env").and_then(Value::as_str) {
                    envs.push((format!("/{field}/{i}/env"), e));
                }
                for (ptr, e) in envs {
                    push(&mut k, RefKind::File, e, ptr);
                    if secret {
                        k.secret_files.push(join(dir, e));
                    }
                }
                if secret {
                    for (_, lit) in strings(item.get("literals")) {
                        if let Some((_, value)) = lit.split_once('=') {
                            k.secret_literals.push(value.to_string());
                        }
                    }
                }
            }
        }
        if let Some(Value::Array(charts)) = v.get("helmCharts") {
            for (i, c) in charts.iter().enumerate() {
                let name = c.get("name").and_then(Value::as_str).unwrap_or("?");
                k.blockers.push(OfflineBlocker {
                    file: file.to_string(),
                    line: line(&format!("/helmCharts/{i}")),
                    what: format!(
                        "Helm chart {name:?} (helmCharts) needs --enable-helm and the network; it is not built offline"
                    ),
                });
            }
        }
        k
    }
}

fn strings(v: Option<&Value>) -> impl Iterator<Item = (usize, &str)> {
    v.and_then(Value::as_array).into_iter().flatten().enumerate().filter_map(|(i, e)| e.as_str().map(|s| (i, s)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::yaml::parse_documents;

    #[test]
    fn joins() {
        assert_eq!(join("apps/a/overlays/dev", "../../base"), "apps/a/base");
        assert_eq!(join("apps/a", "./x.yaml"), "apps/a/x.yaml");
        assert_eq!(join("", "../other"), "../other");
        assert_eq!(join("a", "../../b"), "../b");
    }

    #[test]
    fn reads_refs_and_blockers() {
        let text = "resources:\n- ../../base\n- ingress.yaml\n- https://github.com/x/y//z?ref=v1\ncomponents:\n- ../../../../components/tls\npatches:\n- path: patch.yaml\n- patch: |-\n    a: b\nconfigMapGenerator:\n- name: c\n  files:\n  - cfg=config.ini\nsecretGenerator:\n- name: s\n  literals:\n  - password=hunter22\n  envs:\n  - secret.env\nhelmCharts:\n- name: redis\n";
        let doc = &parse_documents(text).unwrap()[0];
        let k =
            Kustomization::from_doc("apps/a/overlays/dev", "apps/a/overlays/dev/kustomization.yaml", doc, &|_| false);
        let paths: Vec<_> = k.refs.iter().map(|r| (r.kind, r.path.as_str(), r.line)).collect();
        assert_eq!(
            paths,
            vec![
                (RefKind::Resource, "apps/a/base", 2),
                (RefKind::Resource, "apps/a/overlays/dev/ingress.yaml", 3),
                (RefKind::Component, "components/tls", 6),
                (RefKind::File, "apps/a/overlays/dev/patch.yaml", 8),
                (RefKind::File, "apps/a/overlays/dev/config.ini", 14),
                (RefKind::File, "apps/a/overlays/dev/secret.env", 20),
            ]
        );
        assert_eq!(k.blockers.len(), 2);
        assert_eq!(k.blockers[0].line, 4);
        assert_eq!(k.secret_literals, vec!["hunter22"]);
        assert_eq!(k.secret_files, vec!["apps/a/overlays/dev/secret.env"]);
    }
}
