//! Simulated Argo CD for mock clusters. With a GitOps repo (a git repository), an
//! Application whose `operation.sync` is written (the way `argocd --core` does) is synced
//! like Argo CD's controller would: its source path is rendered with kustomize at the
//! requested revision (else `targetRevision`), the objects are applied to the destination
//! cluster, then `status.sync`, `status.health`, `status.operationState` and
//! `status.history` are set and `operation` is cleared.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

use super::store::{EventType, Store, WriteOptions};
use crate::kustomize::Kustomize;

/// Field manager of the simulated controller, as Argo CD's own.
pub const MANAGER: &str = "argocd-controller";
const APP_MANAGER: &str = "argocd-application-controller";

/// A cluster the simulated controller can deploy to.
#[derive(Clone)]
pub struct Target {
    pub name: String,
    pub url: String,
    pub store: Store,
}

/// Starts the controller: every cluster's Applications are watched, and each one whose
/// `operation` is set (now or later) is synced. Runs until the runtime stops.
pub fn spawn(targets: Vec<Target>, renderer: Arc<Renderer>) -> Vec<tokio::task::JoinHandle<()>> {
    let targets = Arc::new(targets);
    (0..targets.len())
        .map(|i| {
            let targets = targets.clone();
            let renderer = renderer.clone();
            tokio::spawn(async move {
                let home = &targets[i];
                let mut rx = home.store.subscribe();
                for app in home.store.list("argoproj.io/v1alpha1", "Application", None) {
                    if app.get("operation").is_some_and(|o| !o.is_null()) {
                        sync(&targets, i, &renderer, &app).await;
                    }
                }
                loop {
                    match rx.recv().await {
                        Ok(ev) => {
                            let wanted = ev.event != EventType::Deleted
                                && ev.is_of("argoproj.io", "Application")
                                && ev.object.get("operation").is_some_and(|o| !o.is_null());
                            // Events queue up while a sync runs: act on the Application as it
                            // is now, so an operation already carried out is not run twice.
                            let now = wanted.then(|| current(&home.store, &ev.object)).flatten();
                            if let Some(app) = now.filter(|a| a.get("operation").is_some_and(|o| !o.is_null())) {
                                sync(&targets, i, &renderer, &app).await;
                            }
                        }
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                        Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
                    }
                }
            })
        })
        .collect()
}

/// The stored Application `app` names, as it is now.
fn current(store: &Store, app: &Value) -> Option<Value> {
    let name = app.pointer("/metadata/name").and_then(Value::as_str)?;
    let ns = app.pointer("/metadata/namespace").and_then(Value::as_str);
    store.get("argoproj.io/v1alpha1", "Application", ns, name)
}

/// One sync of one Application of cluster `home`: render, apply, write status.
async fn sync(targets: &[Target], home: usize, renderer: &Arc<Renderer>, app: &Value) {
    let started = super::util::now_seconds();
    let home_t = &targets[home];
    let names: Vec<(String, String)> = targets.iter().map(|t| (t.name.clone(), t.url.clone())).collect();
    let src = source(app).cloned().unwrap_or(Value::Null);
    let revision = app
        .pointer("/operation/sync/revision")
        .and_then(Value::as_str)
        .or_else(|| src.get("targetRevision").and_then(Value::as_str))
        .unwrap_or_default()
        .to_string();
    let path = src.get("path").and_then(Value::as_str).unwrap_or_default().to_string();
    let dest = destination(app, &names, &home_t.name).and_then(|n| targets.iter().find(|t| t.name == n));
    let outcome = match dest {
        None => Err(format!(
            "destination {} matches no cluster (clusters: {})",
            app.pointer("/spec/destination").map(Value::to_string).unwrap_or_default(),
            names.iter().map(|n| n.0.as_str()).collect::<Vec<_>>().join(", ")
        )),
        Some(dest) => {
            let r = renderer.clone();
            let rendered = tokio::task::spawn_blocking(move || r.render(&revision, &path))
                .await
                .unwrap_or_else(|e| Err(e.to_string()));
            match rendered {
                Ok(result) => deploy(app, dest, &result.objects).map(|()| result),
                Err(e) => Err(e),
            }
        }
    };
    let finished = super::util::now_seconds();
    // Re-read: the Application may have changed while rendering.
    let name = app.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default();
    let ns = app.pointer("/metadata/namespace").and_then(Value::as_str);
    let now = current(&home_t.store, app).unwrap_or_else(|| app.clone());
    let updated = after_sync(&now, &outcome, &started, &finished);
    if let Some(r) = home_t.store.resources().by_api_version_kind("argoproj.io/v1alpha1", "Application").cloned() {
        let w = WriteOptions { manager: APP_MANAGER.into(), ..WriteOptions::default() };
        let _ = home_t.store.replace(&r, ns, name, updated, &w);
    }
}

/// Applies rendered objects as Argo CD would: the destination namespace for namespaced
/// objects without one, the tracking label, and the namespace itself with CreateNamespace.
fn deploy(app: &Value, dest: &Target, objects: &[Value]) -> Result<(), String> {
    let app_name = app.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default();
    let dest_ns = app.pointer("/spec/destination/namespace").and_then(Value::as_str);
    let create_ns = app
        .pointer("/spec/syncPolicy/syncOptions")
        .and_then(Value::as_array)
        .is_some_and(|o| o.iter().any(|x| x.as_str() == Some("CreateNamespace=true")));
    if let (true, Some(ns)) = (create_ns, dest_ns) {
        let obj = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}});
        if dest.store.get("v1", "Namespace", None, ns).is_none() {
            dest.store.apply(&obj, MANAGER).map_err(|e| format!("creating namespace {ns}: {}", e.message))?;
        }
    }
    let resources = dest.store.resources();
    let mut errors = Vec::new();
    for obj in objects {
        let mut obj = obj.clone();
        let av = obj.get("apiVersion").and_then(Value::as_str).unwrap_or_default().to_string();
        let kind = obj.get("kind").and_then(Value::as_str).unwrap_or_default().to_string();
        let namespaced = resources.by_api_version_kind(&av, &kind).map(|r| r.namespaced);
        if namespaced == Some(true)
            && obj.pointer("/metadata/namespace").is_none()
            && let (Some(ns), Some(meta)) = (dest_ns, obj.get_mut("metadata").and_then(Value::as_object_mut))
        {
            meta.insert("namespace".into(), Value::String(ns.into()));
        }
        if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
            let labels = meta.entry("labels").or_insert_with(|| json!({}));
            if let Some(l) = labels.as_object_mut() {
                l.insert("app.kubernetes.io/instance".into(), Value::String(app_name.into()));
            }
        }
        if let Err(e) = dest.store.apply(&obj, MANAGER) {
            let name = obj.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default();
            errors.push(format!("{kind}/{name}: {}", e.message));
        }
    }
    if errors.is_empty() { Ok(()) } else { Err(format!("one or more objects failed to apply: {}", errors.join("; "))) }
}

/// A sync's outcome before it is written to the Application.
#[derive(Debug, Clone)]
pub struct SyncResult {
    pub revision: String,
    pub objects: Vec<Value>,
}

/// Renders Application sources from a git repository at any revision. Exported trees are
/// kept per commit so repeated syncs of one revision render without copying again.
pub struct Renderer {
    repo: PathBuf,
    kustomize: Kustomize,
    trees: Mutex<HashMap<String, Arc<tempfile::TempDir>>>,
}

impl Renderer {
    pub fn new(repo: &Path, kustomize: Kustomize) -> Renderer {
        Renderer { repo: repo.to_path_buf(), kustomize, trees: Mutex::default() }
    }

    /// Resolves a revision as Argo CD would: a commit SHA (or prefix), a branch (local or
    /// `origin/`), a tag, or `HEAD` when empty.
    pub fn resolve(&self, revision: &str) -> Result<String, String> {
        let rev = if revision.is_empty() { "HEAD" } else { revision };
        crate::workflows::rollback::git::resolve(&self.repo, rev)
            .map_err(|_| format!("unable to resolve '{rev}' to a commit SHA"))
    }

    fn tree(&self, sha: &str) -> Result<Arc<tempfile::TempDir>, String> {
        if let Ok(t) = self.trees.lock()
            && let Some(dir) = t.get(sha)
        {
            return Ok(dir.clone());
        }
        let git = git2::Repository::open(&self.repo).map_err(|e| e.message().to_string())?;
        let oid = git2::Oid::from_str(sha).map_err(|e| e.message().to_string())?;
        let commit = git.find_commit(oid).map_err(|e| e.message().to_string())?;
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        crate::commit::git::Snapshot::of_commit(&commit, "")
            .and_then(|snap| snap.write_to(&git, dir.path()))
            .map_err(|e| e.to_string())?;
        let dir = Arc::new(dir);
        if let Ok(mut t) = self.trees.lock() {
            t.insert(sha.to_string(), dir.clone());
        }
        Ok(dir)
    }

    /// Renders `path` of the repo at `revision` (blocking: runs kustomize).
    pub fn render(&self, revision: &str, path: &str) -> Result<SyncResult, String> {
        let sha = self.resolve(revision)?;
        let tree = self.tree(&sha)?;
        let dir = tree.path().join(path.trim_matches('/'));
        if !dir.is_dir() {
            return Err(format!("app path does not exist: {path} at revision {sha}"));
        }
        let out = self.kustomize.command(&dir).output().map_err(|e| format!("cannot run kustomize: {e}"))?;
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr).replace(&format!("{}/", tree.path().display()), "");
            return Err(format!("kustomize build {path} failed: {}", err.trim()));
        }
        let objects = crate::repo::yaml::parse_values(&String::from_utf8_lossy(&out.stdout))
            .map_err(|e| format!("rendered manifests do not parse: {e}"))?;
        Ok(SyncResult { revision: sha, objects })
    }
}

/// The cluster an Application deploys to, among the fleet's (name, url) pairs:
/// `destination.name`, else `destination.server` equal to a cluster's URL, else a server
/// whose host starts with `<cluster name>.` (`https://prod-west.k8s.acme.internal`), else
/// the in-cluster address `https://kubernetes.default.svc`, which is the Application's own
/// cluster (`home`).
pub fn destination<'a>(app: &Value, clusters: &'a [(String, String)], home: &'a str) -> Option<&'a str> {
    let name = app.pointer("/spec/destination/name").and_then(Value::as_str);
    let server = app.pointer("/spec/destination/server").and_then(Value::as_str).map(|s| s.trim_end_matches('/'));
    if let Some(n) = name {
        return clusters.iter().find(|(c, _)| c == n).map(|(c, _)| c.as_str());
    }
    let server = server?;
    if server == "https://kubernetes.default.svc" {
        return Some(home);
    }
    let authority = |u: &str| u.split("://").nth(1).unwrap_or(u).trim_end_matches('/').to_string();
    if let Some((c, _)) = clusters.iter().find(|(_, url)| authority(url) == authority(server)) {
        return Some(c);
    }
    let host = server.split("://").nth(1).unwrap_or(server).split(['/', ':']).next().unwrap_or_default();
    clusters.iter().find(|(c, _)| host.starts_with(&format!("{c}."))).map(|(c, _)| c.as_str())
}

/// The source to render: the Application's `spec.source`, or the first of `spec.sources`
/// with a path.
pub fn source(app: &Value) -> Option<&Value> {
    app.pointer("/spec/source").filter(|s| !s.is_null()).or_else(|| {
        app.pointer("/spec/sources").and_then(Value::as_array).and_then(|s| s.iter().find(|x| x.get("path").is_some()))
    })
}

/// The Application after a sync attempt: status written, operation cleared.
pub fn after_sync(app: &Value, outcome: &Result<SyncResult, String>, started: &str, finished: &str) -> Value {
    let mut app = app.clone();
    let operation = app.get("operation").cloned().unwrap_or(Value::Null);
    let src = source(&app).cloned().unwrap_or(Value::Null);
    let app_dest = app.pointer("/spec/destination").cloned().unwrap_or(Value::Null);
    if let Some(m) = app.as_object_mut() {
        m.remove("operation");
    }
    let status = app.as_object_mut().and_then(|m| {
        let s = m.entry("status").or_insert_with(|| json!({}));
        if !s.is_object() {
            *s = json!({});
        }
        s.as_object_mut()
    });
    let Some(status) = status else { return app };
    match outcome {
        Ok(r) => {
            let dest = app_dest.clone();
            status.insert(
                "sync".into(),
                json!({"status": "Synced", "revision": r.revision, "comparedTo": {"source": src, "destination": dest}}),
            );
            status.insert("health".into(), json!({"status": "Healthy"}));
            status.insert(
                "operationState".into(),
                json!({"phase": "Succeeded", "message": "successfully synced (all tasks run)", "operation": operation, "startedAt": started, "finishedAt": finished,
                       "syncResult": {"revision": r.revision, "source": src, "resources": r.objects.iter().map(resource_result).collect::<Vec<_>>()}}),
            );
            let history = status.entry("history").or_insert_with(|| json!([]));
            if !history.is_array() {
                *history = json!([]);
            }
            if let Some(h) = history.as_array_mut() {
                let id = h.iter().filter_map(|e| e.get("id").and_then(Value::as_i64)).max().unwrap_or(-1) + 1;
                h.push(json!({"id": id, "revision": r.revision, "deployStartedAt": started, "deployedAt": finished, "source": src}));
            }
            status.insert("reconciledAt".into(), Value::String(finished.into()));
        }
        Err(e) => {
            status.insert("operationState".into(), json!({"phase": "Error", "message": e, "operation": operation, "startedAt": started, "finishedAt": finished}));
            let sync = status.entry("sync").or_insert_with(|| json!({}));
            if let Some(s) = sync.as_object_mut() {
                s.insert("status".into(), Value::String("OutOfSync".into()));
            }
        }
    }
    app
}

fn resource_result(obj: &Value) -> Value {
    let g = |p: &str| obj.pointer(p).cloned().unwrap_or(Value::Null);
    let api_version = obj.get("apiVersion").and_then(Value::as_str).unwrap_or_default();
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    json!({"group": group, "version": version, "kind": g("/kind"), "namespace": g("/metadata/namespace"), "name": g("/metadata/name"), "status": "Synced", "message": "configured", "syncPhase": "Sync"})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destinations() {
        let clusters = vec![
            ("dev".to_string(), "http://127.0.0.1:1000".to_string()),
            ("prod-west".to_string(), "http://127.0.0.1:2000".to_string()),
        ];
        let app = |dest: Value| json!({"spec": {"destination": dest}});
        assert_eq!(destination(&app(json!({"name": "prod-west"})), &clusters, "dev"), Some("prod-west"));
        assert_eq!(destination(&app(json!({"server": "http://127.0.0.1:2000/"})), &clusters, "dev"), Some("prod-west"));
        assert_eq!(
            destination(&app(json!({"server": "https://prod-west.k8s.acme.internal"})), &clusters, "dev"),
            Some("prod-west")
        );
        assert_eq!(
            destination(&app(json!({"server": "https://kubernetes.default.svc"})), &clusters, "prod-west"),
            Some("prod-west")
        );
        assert_eq!(destination(&app(json!({"server": "https://elsewhere.example.com"})), &clusters, "dev"), None);
    }

    #[test]
    fn status_after_a_sync() {
        let app = json!({"spec": {"source": {"path": "apps/a/overlays/dev", "targetRevision": "main"}}, "operation": {"sync": {"revision": "abc"}},
                         "status": {"history": [{"id": 0, "revision": "old"}]}});
        let ok = Ok(SyncResult {
            revision: "abc123".into(),
            objects: vec![json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "a"}})],
        });
        let after = after_sync(&app, &ok, "2026-11-27T10:00:00Z", "2026-11-27T10:00:02Z");
        assert!(after.get("operation").is_none());
        assert_eq!(after["status"]["sync"]["status"], "Synced");
        assert_eq!(after["status"]["operationState"]["phase"], "Succeeded");
        assert_eq!(after["status"]["operationState"]["syncResult"]["revision"], "abc123");
        assert_eq!(after["status"]["history"][1]["id"], 1);
        assert_eq!(after["status"]["history"][1]["revision"], "abc123");
        let failed = after_sync(&app, &Err("boom".into()), "t0", "t1");
        assert_eq!(failed["status"]["operationState"]["phase"], "Error");
        assert_eq!(failed["status"]["sync"]["status"], "OutOfSync");
        assert_eq!(failed["status"]["history"].as_array().unwrap().len(), 1);
    }

    #[test]
    fn renders_a_path_at_a_revision() {
        let Ok(k) = Kustomize::locate(None) else { panic!("kustomize is needed: run scripts/setup-tools") };
        let dir = tempfile::tempdir().unwrap();
        let git = git2::Repository::init(dir.path()).unwrap();
        let write = |rel: &str, text: &str| {
            let p = dir.path().join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        };
        let commit = |msg: &str| -> String {
            let mut idx = git.index().unwrap();
            idx.add_all(["*"], git2::IndexAddOption::DEFAULT, None).unwrap();
            idx.write().unwrap();
            let tree = git.find_tree(idx.write_tree().unwrap()).unwrap();
            let sig = git2::Signature::now("t", "t@example.com").unwrap();
            let parents: Vec<git2::Commit> =
                git.head().ok().and_then(|h| h.peel_to_commit().ok()).into_iter().collect();
            let refs: Vec<&git2::Commit> = parents.iter().collect();
            git.commit(Some("HEAD"), &sig, &sig, msg, &tree, &refs).unwrap().to_string()
        };
        write("app/kustomization.yaml", "resources:\n  - cm.yaml\n");
        write("app/cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\ndata:\n  v: one\n");
        let first = commit("one");
        write("app/cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\ndata:\n  v: two\n");
        let second = commit("two");
        let r = Renderer::new(dir.path(), k);
        assert_eq!(r.resolve("").unwrap(), second);
        assert_eq!(r.render(&first[..7], "app").unwrap().objects[0]["data"]["v"], "one");
        let head = r.render("HEAD", "app").unwrap();
        assert_eq!(head.revision, second);
        assert_eq!(head.objects[0]["data"]["v"], "two");
        assert!(r.render("HEAD", "nope").unwrap_err().contains("does not exist"));
        assert!(r.resolve("no-such-branch").is_err());
    }
}
