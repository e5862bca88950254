//! The GitOps repo model: every YAML file (parsed with positions), every kustomization and
//! what it reaches, the leaves to build, apps with their base and overlays, and Argo CD
//! Applications. Discovered by convention; `.agentops.yaml` can change the layout.

pub(crate) mod argocd;
pub(crate) mod edit;
pub mod kustomization;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::Value;

use crate::config::yaml::{self, YamlDoc, YamlError};
use crate::config::{Config, GlobSet, PathPattern};
use crate::error::{Error, Result};
pub use argocd::{ArgoApp, ArgoSource};
pub use kustomization::{Kustomization, OfflineBlocker, RefKind};

/// A YAML file of the repo.
#[derive(Debug)]
pub struct SourceFile {
    pub path: String,
    pub docs: std::result::Result<Vec<YamlDoc>, YamlError>,
    /// blake3 of the bytes read (None when the file was not read: too large, unreadable).
    pub hash: Option<String>,
}

/// A kustomization directory that no other kustomization references: what gets built.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Leaf {
    pub dir: String,
    pub app: Option<String>,
    pub env: Option<String>,
}

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct App {
    pub name: String,
    pub base: Option<String>,
    /// env -> overlay directory
    pub overlays: BTreeMap<String, String>,
}

/// Everything a kustomization directory reaches, transitively.
#[derive(Debug, Clone, Default)]
pub struct Closure {
    /// Repo-relative files read by the build (kustomization files included). Missing files
    /// are listed too: creating one changes the build.
    pub files: BTreeSet<String>,
    /// Files reached as `resources` (object sources, as opposed to patches).
    pub resource_files: BTreeSet<String>,
    pub blockers: Vec<OfflineBlocker>,
    /// Kustomizations that reach themselves: kustomize cannot build them.
    pub cycles: Vec<Cycle>,
}

/// Kustomization directories that reference each other in a loop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cycle {
    /// The directories in reference order, the first repeated at the end.
    pub dirs: Vec<String>,
    /// The reference that closes the loop.
    pub file: String,
    pub line: u32,
}

impl Cycle {
    pub fn describe(&self) -> String {
        let n = self.dirs.len().saturating_sub(1);
        let who = if n == 1 {
            "a kustomization refers to itself".to_string()
        } else if n == 2 {
            "two kustomizations reference each other".to_string()
        } else {
            format!("{n} kustomizations reference each other in a loop")
        };
        format!(
            "{who} ({}); kustomize cannot build them. Remove one of the references",
            self.dirs.iter().map(|d| if d.is_empty() { "." } else { d.as_str() }).collect::<Vec<_>>().join(" -> ")
        )
    }
}

#[derive(Debug)]
pub struct Repo {
    pub root: PathBuf,
    pub config: Config,
    pub files: BTreeMap<String, SourceFile>,
    pub kustomizations: BTreeMap<String, Kustomization>,
    pub leaves: Vec<Leaf>,
    pub apps: BTreeMap<String, App>,
    pub environments: Vec<String>,
    pub argocd_apps: Vec<ArgoApp>,
    closures: HashMap<String, Arc<Closure>>,
}

const SKIP_DIRS: [&str; 5] = [".git", ".tools", "target", "node_modules", ".agentops"];

impl Repo {
    /// The app (and environment, for an overlay file) a repo file belongs to, by the layout:
    /// a file under an overlay is that overlay's app and environment; one beside the base
    /// (`apps/<app>/base/...`, `apps/<app>/components/...`) is the app's.
    pub fn owner_of(&self, path: &str) -> (Option<String>, Option<String>) {
        for (name, app) in &self.apps {
            for (env, dir) in &app.overlays {
                if path.starts_with(&format!("{dir}/")) {
                    return (Some(name.clone()), Some(env.clone()));
                }
            }
            if let Some(base) = &app.base
                && let Some(parent) = base.rsplit_once('/').map(|p| p.0)
                && path.starts_with(&format!("{parent}/"))
            {
                return (Some(name.clone()), None);
            }
        }
        (None, None)
    }

    /// Scans the repo at `root` with its `.agentops.yaml` (or defaults).
    pub fn load(root: &Path) -> Result<Repo> {
        let config = Config::load(root)?;
        Repo::load_with(root, config)
    }

    pub fn load_with(root: &Path, config: Config) -> Result<Repo> {
        let root = root.canonicalize().map_err(|e| Error::io(root, e))?;
        if !root.is_dir() {
            return Err(Error::Usage(format!("{} is not a directory", root.display())));
        }
        let ignore = GlobSet::new(&config.ignore)?;
        let mut files = BTreeMap::new();
        let max_bytes = config.limits.file_bytes;
        let mut walker = walkdir::WalkDir::new(&root).sort_by_file_name().into_iter();
        while let Some(entry) = walker.next() {
            let entry = match entry {
                Ok(e) => e,
                Err(e) => {
                    // an unreadable directory is a finding on it; the rest of the repo is read
                    let Some(path) = e.path().map(|p| rel_path(&root, p)) else { continue };
                    let message = format!("cannot read it: {}", std::io::Error::from(e));
                    let docs = Err(YamlError::new(yaml::YamlErrorKind::Unreadable, 1, 1, message));
                    files.insert(path.clone(), SourceFile { path, docs, hash: None });
                    continue;
                }
            };
            let rel = rel_path(&root, entry.path());
            if entry.file_type().is_dir() {
                let name = entry.file_name().to_string_lossy();
                if entry.depth() > 0 && (SKIP_DIRS.contains(&name.as_ref()) || ignore.matches(&rel)) {
                    walker.skip_current_dir();
                }
                continue;
            }
            let name = entry.file_name().to_string_lossy();
            let is_yaml = name.ends_with(".yaml") || name.ends_with(".yml") || name == "Kustomization";
            if !is_yaml || ignore.matches(&rel) || rel == crate::config::CONFIG_FILE {
                continue;
            }
            let (docs, hash) = yaml::read_file(entry.path(), max_bytes);
            files.insert(rel.clone(), SourceFile { path: rel, docs, hash });
        }

        let mut kustomizations = BTreeMap::new();
        for (path, file) in &files {
            let (dir, name) = split_dir(path);
            if !kustomization::FILE_NAMES.contains(&name) || kustomizations.contains_key(dir) {
                continue;
            }
            let is_dir = |p: &str| root.join(p).is_dir();
            let k = match &file.docs {
                Ok(docs) if !docs.is_empty() => Kustomization::from_doc(dir, path, &docs[0], &is_dir),
                _ => Kustomization::from_doc(dir, path, &YamlDoc::empty(), &is_dir),
            };
            kustomizations.insert(dir.to_string(), k);
        }

        let mut repo = Repo {
            root,
            config,
            files,
            kustomizations,
            leaves: Vec::new(),
            apps: BTreeMap::new(),
            environments: Vec::new(),
            argocd_apps: Vec::new(),
            closures: HashMap::new(),
        };
        repo.compute_closures();
        repo.discover_layout()?;
        repo.argocd_apps = argocd::discover(&repo)?;
        Ok(repo)
    }

    fn compute_closures(&mut self) {
        let dirs: Vec<String> = self.kustomizations.keys().cloned().collect();
        let mut memo: HashMap<String, Arc<Closure>> = HashMap::new();
        for d in dirs {
            let mut stack = Vec::new();
            closure_of(&self.kustomizations, &d, &mut memo, &mut stack);
        }
        self.closures = memo;
    }

    fn discover_layout(&mut self) -> Result<()> {
        let layout = &self.config.layout;
        let base_patterns: Vec<PathPattern> = layout.base.iter().map(|p| PathPattern::new(p)).collect::<Result<_>>()?;
        let overlay_patterns: Vec<PathPattern> =
            layout.overlays.iter().map(|p| PathPattern::new(p)).collect::<Result<_>>()?;
        let mut referenced = BTreeSet::new();
        for k in self.kustomizations.values() {
            for r in &k.refs {
                if r.kind != RefKind::File && self.kustomizations.contains_key(&r.path) {
                    referenced.insert(r.path.clone());
                }
            }
        }
        let mut envs = BTreeSet::new();
        for (dir, k) in &self.kustomizations {
            let overlay = overlay_patterns.iter().find_map(|p| p.captures(dir));
            let base = base_patterns.iter().find_map(|p| p.captures(dir));
            if let Some((Some(app), Some(env))) = &overlay {
                let a = self.apps.entry(app.clone()).or_insert_with(|| App { name: app.clone(), ..App::default() });
                a.overlays.insert(env.clone(), dir.clone());
                envs.insert(env.clone());
            } else if let Some((Some(app), _)) = &base {
                let a = self.apps.entry(app.clone()).or_insert_with(|| App { name: app.clone(), ..App::default() });
                a.base.get_or_insert_with(|| dir.clone());
            }
            if k.is_component || referenced.contains(dir) {
                continue;
            }
            let (app, env) = match (overlay, base) {
                (Some((app, env)), _) => (app, env),
                (None, Some((app, _))) => (app, None),
                (None, None) => (None, None),
            };
            self.leaves.push(Leaf { dir: dir.clone(), app, env });
        }
        // Kustomizations no leaf reaches reference each other in a loop (every one of them is
        // referenced): each such group is built once, from its first directory, so the loop is
        // reported rather than the group silently skipped.
        let mut reached: BTreeSet<String> = BTreeSet::new();
        for l in &self.leaves {
            reached.insert(l.dir.clone());
            reached.extend(self.closure(&l.dir).files.iter().map(|f| split_dir(f).0.to_string()));
        }
        let mut orphans = Vec::new();
        for (dir, k) in &self.kustomizations {
            if k.is_component || reached.contains(dir) || !referenced.contains(dir) {
                continue;
            }
            let closure = self.closure(dir);
            if closure.cycles.is_empty() {
                continue;
            }
            reached.insert(dir.clone());
            reached.extend(closure.files.iter().map(|f| split_dir(f).0.to_string()));
            orphans.push(dir.clone());
        }
        for dir in orphans {
            let overlay = overlay_patterns.iter().find_map(|p| p.captures(&dir));
            let base = base_patterns.iter().find_map(|p| p.captures(&dir));
            let (app, env) = match (overlay, base) {
                (Some((app, env)), _) => (app, env),
                (None, Some((app, _))) => (app, None),
                (None, None) => (None, None),
            };
            self.leaves.push(Leaf { dir, app, env });
        }
        let configured: Vec<String> = self.config.environments.keys().cloned().collect();
        self.environments = if configured.is_empty() {
            let mut found: Vec<String> = envs.into_iter().collect();
            found.sort_by_key(|e| class_rank(class_from_name(e)));
            found
        } else {
            configured
        };
        Ok(())
    }

    /// The environment's class (dev, staging, prod, or what `.agentops.yaml` gives): its
    /// configured `class`, else guessed from its name.
    pub fn env_class(&self, env: &str) -> String {
        match self.config.environments.get(env).and_then(|e| e.class.clone()) {
            Some(c) => c,
            None => class_from_name(env).to_string(),
        }
    }

    /// What the kustomization at `dir` reaches.
    pub fn closure(&self, dir: &str) -> Arc<Closure> {
        self.closures.get(dir).cloned().unwrap_or_default()
    }

    pub fn abs(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    /// Every parsed document of a file (empty when the file is unknown or does not parse).
    pub fn docs(&self, file: &str) -> &[YamlDoc] {
        match self.files.get(file).map(|f| &f.docs) {
            Some(Ok(d)) => d,
            _ => &[],
        }
    }

    /// Finds the source document a rendered object most likely came from, among the
    /// resource files a leaf reaches: exact kind and name first, then a name that the
    /// rendered one contains (namePrefix/nameSuffix), then patches naming it.
    pub fn locate_source<'a>(&'a self, closure: &'a Closure, kind: &str, name: &str) -> Option<(&'a str, &'a YamlDoc)> {
        let candidates = |files: &'a BTreeSet<String>, exact: bool| {
            files.iter().find_map(move |f| {
                self.docs(f).iter().find_map(|d| {
                    let k = d.value.get("kind").and_then(Value::as_str)?;
                    let n = d.value.pointer("/metadata/name").and_then(Value::as_str)?;
                    let hit = k == kind && if exact { n == name } else { !n.is_empty() && name.contains(n) };
                    hit.then_some((f.as_str(), d))
                })
            })
        };
        candidates(&closure.resource_files, true)
            .or_else(|| candidates(&closure.resource_files, false))
            .or_else(|| candidates(&closure.files, true))
            .or_else(|| candidates(&closure.files, false))
    }

    /// The patch file that sets the field at `pointer` of a rendered object, if one does:
    /// a strategic-merge patch of the same kind and name holding that field, or a JSON6902
    /// patch with an operation on that path. Patches in the leaf's own directory win.
    pub fn locate_patch<'a>(
        &'a self,
        closure: &'a Closure,
        leaf_dir: &str,
        kind: &str,
        name: &str,
        pointer: &str,
    ) -> Option<(&'a str, u32)> {
        if pointer.is_empty() {
            return None;
        }
        let prefix = format!("{leaf_dir}/");
        let is_kustomization = |f: &str| self.kustomizations.get(split_dir(f).0).is_some_and(|k| k.file == f);
        let mut patches: Vec<&String> =
            closure.files.iter().filter(|f| !closure.resource_files.contains(*f) && !is_kustomization(f)).collect();
        patches.sort_by_key(|f| !f.starts_with(&prefix));
        for f in patches {
            for d in self.docs(f) {
                let v = &d.value;
                let smp = v.get("kind").and_then(Value::as_str) == Some(kind)
                    && v.pointer("/metadata/name").and_then(Value::as_str) == Some(name);
                if smp && d.has_pointer(pointer) {
                    return Some((f.as_str(), d.line_of(pointer)));
                }
                if let Some(ops) = v.as_array() {
                    for (i, op) in ops.iter().enumerate() {
                        if op.get("path").and_then(Value::as_str) == Some(pointer) {
                            return Some((f.as_str(), d.line_of(&format!("/{i}/path"))));
                        }
                    }
                }
            }
        }
        None
    }

    /// For an object made by a configMapGenerator or secretGenerator: the kustomization
    /// file and line of the generator entry (rendered names carry a hash suffix).
    /// The `images:` entry that set a rendered image's tag or digest (`repo[:tag]`), if a
    /// kustomization in the closure did: the leaf's own first, then the nearest other.
    pub fn locate_image<'a>(&'a self, closure: &'a Closure, leaf_dir: &str, image: &str) -> Option<(&'a str, u32)> {
        let name = crate::k8s::image::parse(image).name;
        let mut best: Option<(&str, u32, bool)> = None;
        for f in &closure.files {
            let Some(k) = self.kustomizations.get(split_dir(f).0).filter(|k| &k.file == f) else { continue };
            let Some(doc) = self.docs(&k.file).first() else { continue };
            let Some(items) = doc.value.get("images").and_then(Value::as_array) else { continue };
            for (i, item) in items.iter().enumerate() {
                let s = |key: &str| item.get(key).and_then(Value::as_str);
                let renders_as = s("newName").or(s("name"));
                let sets = if s("digest").is_some() { "digest" } else { "newTag" };
                if renders_as != Some(name) || item.get(sets).is_none() {
                    continue;
                }
                let own = split_dir(f).0 == leaf_dir;
                if best.is_none_or(|b| own && !b.2) {
                    best = Some((k.file.as_str(), doc.line_of(&format!("/images/{i}/{sets}")), own));
                }
            }
        }
        best.map(|(f, l, _)| (f, l))
    }

    pub fn locate_generator<'a>(&'a self, closure: &'a Closure, kind: &str, name: &str) -> Option<(&'a str, u32)> {
        let field = match kind {
            "ConfigMap" => "configMapGenerator",
            "Secret" => "secretGenerator",
            _ => return None,
        };
        let mut best: Option<(&str, u32, usize)> = None;
        for f in &closure.files {
            let Some(k) = self.kustomizations.get(split_dir(f).0).filter(|k| &k.file == f) else {
                continue;
            };
            let Some(doc) = self.docs(&k.file).first() else {
                continue;
            };
            let Some(items) = doc.value.get(field).and_then(Value::as_array) else {
                continue;
            };
            for (i, item) in items.iter().enumerate() {
                let Some(g) = item.get("name").and_then(Value::as_str) else {
                    continue;
                };
                if name == g || name.starts_with(&format!("{g}-")) || name.contains(g) {
                    // the longest generator name that fits is the one that made it
                    if best.is_none_or(|b| g.len() > b.2) {
                        best = Some((k.file.as_str(), doc.line_of(&format!("/{field}/{i}")), g.len()));
                    }
                }
            }
        }
        best.map(|(f, l, _)| (f, l))
    }

    /// Repo-relative paths changed between `rev` and the working tree (index and untracked
    /// files included).
    pub fn changed_since(&self, rev: &str) -> Result<BTreeSet<String>> {
        let git = git2::Repository::discover(&self.root)?;
        let workdir = git.workdir().ok_or_else(|| Error::Git("bare repository has no working tree".into()))?;
        let workdir = workdir.canonicalize().map_err(|e| Error::io(workdir, e))?;
        let prefix = rel_path(&workdir, &self.root);
        let obj =
            git.revparse_single(rev).map_err(|e| Error::Usage(format!("--changed-since {rev}: {}", e.message())))?;
        let tree = obj.peel_to_tree()?;
        let mut opts = git2::DiffOptions::new();
        opts.include_untracked(true).recurse_untracked_dirs(true);
        let diff = git.diff_tree_to_workdir_with_index(Some(&tree), Some(&mut opts))?;
        let mut out = BTreeSet::new();
        for delta in diff.deltas() {
            for f in [delta.old_file().path(), delta.new_file().path()].into_iter().flatten() {
                let p = f.to_string_lossy().replace('\\', "/");
                let rel = if prefix.is_empty() {
                    Some(p.as_str())
                } else {
                    p.strip_prefix(&prefix).and_then(|r| r.strip_prefix('/'))
                };
                if let Some(r) = rel {
                    out.insert(r.to_string());
                }
            }
        }
        Ok(out)
    }
}

fn closure_of(
    ks: &BTreeMap<String, Kustomization>,
    dir: &str,
    memo: &mut HashMap<String, Arc<Closure>>,
    stack: &mut Vec<String>,
) -> Arc<Closure> {
    if let Some(c) = memo.get(dir) {
        return c.clone();
    }
    let mut c = Closure::default();
    let Some(k) = ks.get(dir) else {
        // A referenced directory without a kustomization: its appearance matters.
        for name in kustomization::FILE_NAMES {
            c.files.insert(kustomization::join(dir, name));
        }
        return Arc::new(c);
    };
    stack.push(dir.to_string());
    c.files.insert(k.file.clone());
    c.blockers.extend(k.blockers.iter().cloned());
    for r in &k.refs {
        let is_kustomization_dir =
            r.kind != RefKind::File && (ks.contains_key(&r.path) || r.kind == RefKind::Component);
        if is_kustomization_dir
            || (r.kind == RefKind::Resource
                && !r.path.ends_with(".yaml")
                && !r.path.ends_with(".yml")
                && !r.path.ends_with(".json"))
        {
            if let Some(at) = stack.iter().position(|s| *s == r.path) {
                let mut dirs: Vec<String> = stack.get(at..).unwrap_or_default().to_vec();
                dirs.push(r.path.clone());
                c.cycles.push(Cycle { dirs, file: k.file.clone(), line: r.line });
                continue;
            }
            let sub = closure_of(ks, &r.path, memo, stack);
            c.cycles.extend(sub.cycles.iter().cloned());
            c.files.extend(sub.files.iter().cloned());
            c.resource_files.extend(sub.resource_files.iter().cloned());
            c.blockers.extend(sub.blockers.iter().cloned());
        } else {
            c.files.insert(r.path.clone());
            if r.kind == RefKind::Resource {
                c.resource_files.insert(r.path.clone());
            }
        }
    }
    stack.pop();
    let c = Arc::new(c);
    memo.insert(dir.to_string(), c.clone());
    c
}

/// Repo-relative path with `/` separators.
pub fn rel_path(root: &Path, path: &Path) -> String {
    path.strip_prefix(root).unwrap_or(path).to_string_lossy().replace('\\', "/")
}

/// Splits a repo-relative path into directory and file name.
pub fn split_dir(path: &str) -> (&str, &str) {
    match path.rfind('/') {
        Some(i) => (&path[..i], &path[i + 1..]),
        None => ("", path),
    }
}

/// An environment's class guessed from its name: `prod` (prod-*, prd*, *production*, *-prod,
/// live), `dev` (dev*, test*, sandbox*, local*, ci*), otherwise `staging` (staging, qa, uat,
/// preprod and anything in between).
pub fn class_from_name(env: &str) -> &'static str {
    let e = env.to_ascii_lowercase();
    if e.starts_with("prod") || e.starts_with("prd") || e.contains("production") || e.ends_with("-prod") || e == "live"
    {
        "prod"
    } else if ["dev", "test", "sandbox", "local", "ci"].iter().any(|p| e.starts_with(p)) {
        "dev"
    } else {
        "staging"
    }
}

/// Promotion rank of a class: dev 0, staging (and classes agentops does not know) 1, prod 2.
pub fn class_rank(class: &str) -> usize {
    match class {
        "dev" => 0,
        "prod" => 2,
        _ => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_from_names() {
        for (env, class) in [
            ("prod-west", "prod"),
            ("production", "prod"),
            ("eu-prod", "prod"),
            ("prd1", "prod"),
            ("live", "prod"),
            ("dev", "dev"),
            ("development", "dev"),
            ("test", "dev"),
            ("sandbox", "dev"),
            ("staging", "staging"),
            ("qa", "staging"),
            ("uat", "staging"),
            ("preprod", "staging"),
        ] {
            assert_eq!(class_from_name(env), class, "{env}");
        }
    }

    fn repo_with(config: &str, envs: &[&str]) -> (tempfile::TempDir, Repo) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(crate::config::CONFIG_FILE), config).unwrap();
        for e in envs {
            let o = dir.path().join(format!("apps/web/overlays/{e}"));
            std::fs::create_dir_all(&o).unwrap();
            std::fs::write(o.join("kustomization.yaml"), "resources: []\n").unwrap();
        }
        let repo = Repo::load(dir.path()).unwrap();
        (dir, repo)
    }

    #[test]
    fn environments_are_in_promotion_order() {
        let found = ["prod-west", "staging", "dev", "prod-east", "qa"];
        // Discovered: by class, then by name.
        let (_d, r) = repo_with("", &found);
        assert_eq!(r.environments, ["dev", "qa", "staging", "prod-east", "prod-west"]);
        // Configured: the file's order, whatever it is, and a configured class wins.
        let (_d, r) = repo_with("environments:\n  prod-west: {}\n  dev: {}\n  perf: {class: prod}\n", &found);
        assert_eq!(r.environments, ["prod-west", "dev", "perf"]);
        assert_eq!(r.env_class("perf"), "prod");
        assert_eq!(r.env_class("dev"), "dev");
    }
}
