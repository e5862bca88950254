//! The world of `agentops demo`: the example platform copied to a work directory with a git
//! history (authors and dates), mock clusters for every environment with the simulated Argo CD
//! and Prometheus, and what each day stages before its request (a hand-added sidecar, a bad
//! deploy). The days themselves run through the planner and executor (`cli::demo`).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use crate::error::{Error, Result};
use crate::mock::store::{PatchType, WriteOptions};
use crate::mock::{MockFleet, MockOptions, Store};

/// The environments of the example platform, each with a mock cluster.
pub const ENVS: [&str; 5] = ["dev", "staging", "prod-west", "prod-east", "prod-central"];

/// Who commits what the executor writes in the demo repo.
pub const ENGINEER: (&str, &str) = ("Demo Engineer", "demo@acme.example");

/// The history the demo repo starts with: (author, email, date, message, (file, from, to)).
type SeedCommit =
    (&'static str, &'static str, &'static str, &'static str, Option<(&'static str, &'static str, &'static str)>);
const HISTORY: &[SeedCommit] = &[
    ("Priya Raman", "priya@acme.example", "2025-01-06T09:12:00Z", "chore: import the platform repo", None),
    (
        "Marco Rossi",
        "marco@acme.example",
        "2025-01-08T14:40:00Z",
        "chore(grafana): two replicas",
        Some(("apps/grafana/base/deployment.yaml", "replicas: 1", "replicas: 2")),
    ),
];

/// The demo's repo, work directory and clusters.
pub struct World {
    /// The work directory: `repo/`, `kubeconfig`, `audit.jsonl`.
    pub root: PathBuf,
    pub repo: PathBuf,
    pub fleet: Option<MockFleet>,
    /// How many Applications the simulated Argo CD synced at the start.
    pub synced: usize,
}

impl World {
    pub fn kubeconfig(&self) -> PathBuf {
        self.root.join("kubeconfig")
    }

    pub fn audit_log(&self) -> PathBuf {
        self.root.join("audit.jsonl")
    }

    fn store(&self, env: &str) -> Result<&Store> {
        self.fleet
            .as_ref()
            .and_then(|f| f.get(env))
            .map(|c| c.store())
            .ok_or_else(|| Error::Internal(format!("no mock cluster for {env}")))
    }

    /// Copies `example` to `<workdir or a new temp dir>/repo`, makes its history, and starts
    /// a mock cluster per environment (fixtures from `example/clusters/<env>`).
    pub async fn build(example: &Path, workdir: Option<&Path>) -> Result<World> {
        let root = match workdir {
            Some(d) => {
                if d.exists() && std::fs::read_dir(d).map_err(|e| Error::io(d, e))?.next().is_some() {
                    return Err(Error::Usage(format!("--workdir {} is not empty", d.display())));
                }
                std::fs::create_dir_all(d).map_err(|e| Error::io(d, e))?;
                std::path::absolute(d).unwrap_or_else(|_| d.to_path_buf())
            }
            None => tempfile::Builder::new()
                .prefix("agentops-demo-")
                .tempdir()
                .map_err(|e| Error::Internal(format!("cannot make a temp dir: {e}")))?
                .keep(),
        };
        let repo = root.join("repo");
        crate::eval::world::copy_dir(example, &repo).map_err(|e| Error::io(example, e))?;
        point_at_audit_log(&repo)?;
        {
            let repo = repo.clone();
            tokio::task::spawn_blocking(move || seed_history(&repo))
                .await
                .map_err(|e| Error::Internal(e.to_string()))??;
        }
        let mut world = World { root, repo, fleet: None, synced: 0 };
        let dirs: Vec<(String, PathBuf)> =
            ENVS.iter().map(|e| (e.to_string(), example.join("clusters").join(e))).collect();
        let opts = MockOptions {
            argocd_repo: Some(world.repo.clone()),
            audit_log: Some(world.audit_log()),
            ..MockOptions::default()
        };
        let fleet = MockFleet::start(&dirs, &opts).await?;
        fleet.write_kubeconfig(&world.kubeconfig())?;
        world.fleet = Some(fleet);
        world.synced = world.sync_all().await?;
        Ok(world)
    }

    /// Every Application of every environment synced at HEAD by the simulated Argo CD, so
    /// the clusters hold what Argo CD would have deployed and drift reports only what the
    /// week does to them.
    async fn sync_all(&self) -> Result<usize> {
        let mut apps = Vec::new();
        for env in ENVS {
            apps.extend(crate::repo::argocd::app_files(&self.repo, env).into_iter().map(|n| (env, n)));
        }
        let results = futures::future::join_all(apps.iter().map(|(env, app)| self.sync(env, app, "HEAD"))).await;
        results.into_iter().collect::<Result<Vec<()>>>().map(|v| v.len())
    }

    /// Deploys `app` in `env` at `revision` through the simulated Argo CD and waits for it.
    pub async fn sync(&self, env: &str, app: &str, revision: &str) -> Result<()> {
        let store = self.store(env)?;
        let file = self.repo.join(format!("argocd/{env}/{app}.yaml"));
        let text = std::fs::read_to_string(&file).map_err(|e| Error::io(&file, e))?;
        let mut doc: Value = crate::config::yaml::parse_values(&text)
            .map_err(|e| Error::Internal(format!("{}: {e}", file.display())))?
            .into_iter()
            .next()
            .ok_or_else(|| Error::Internal(format!("{}: empty", file.display())))?;
        let name = doc.pointer("/metadata/name").and_then(Value::as_str).unwrap_or(app).to_string();
        let ns = doc.pointer("/metadata/namespace").and_then(Value::as_str).unwrap_or("argocd").to_string();
        let get = || store.get("argoproj.io/v1alpha1", "Application", Some(&ns), &name);
        let deploys = |a: &Value| a.pointer("/status/history").and_then(Value::as_array).map_or(0, Vec::len);
        let before = get().map_or(0, |a| deploys(&a));
        let operation = json!({"sync": {"revision": revision}, "initiatedBy": {"username": "demo"}});
        let fail = |e: crate::mock::StoreError| Error::Internal(format!("sync {name} in {env}: {e}"));
        if get().is_some() {
            store
                .merge_patch(
                    "argoproj.io/v1alpha1",
                    "Application",
                    Some(&ns),
                    &name,
                    &json!({"operation": operation}),
                    "argocd",
                )
                .map_err(fail)?;
        } else {
            doc["operation"] = operation;
            store.apply(&doc, "argocd-cli").map_err(fail)?;
        }
        for _ in 0..1200 {
            if let Some(a) = get() {
                let phase = a.pointer("/status/operationState/phase").and_then(Value::as_str).unwrap_or_default();
                if matches!(phase, "Failed" | "Error") {
                    let msg = a.pointer("/status/operationState/message").and_then(Value::as_str).unwrap_or_default();
                    return Err(Error::Internal(format!("sync {name} in {env} failed: {msg}")));
                }
                if deploys(&a) > before && phase == "Succeeded" {
                    return Ok(());
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err(Error::Internal(format!("sync {name} in {env} did not finish in 60s")))
    }

    /// Tuesday: grafana deployed in prod-west, then an oauth2-proxy sidecar added by hand
    /// with the real `kubectl edit` (its editor a script that adds the sidecar and its
    /// volume); without kubectl, the same change is written as `kubectl edit` would
    /// (field manager `kubectl-edit`), and the setup says so.
    pub async fn stage_sidecar(&self) -> Result<Vec<String>> {
        self.sync("prod-west", "grafana", "HEAD").await?;
        let synced = "Argo CD synced grafana-prod-west at HEAD".to_string();
        let why = match crate::kustomize::find_program("kubectl") {
            None => "kubectl was not found".to_string(),
            Some(kubectl) => {
                let (root, kc) = (self.root.clone(), self.kubeconfig());
                match tokio::task::spawn_blocking(move || kubectl_edit_sidecar(&kubectl, &root, &kc)).await {
                    Ok(Ok(())) => {
                        return Ok(vec![
                            synced,
                            "someone ran `kubectl --context prod-west -n monitoring edit deployment/grafana` and added an oauth2-proxy sidecar (quay.io/oauth2-proxy/oauth2-proxy:v7.4.0) with its volume (here: the real kubectl, its editor a script)".into(),
                        ]);
                    }
                    Ok(Err(e)) => e.to_string(),
                    Err(e) => e.to_string(),
                }
            }
        };
        let store = self.store("prod-west")?;
        let r = store
            .resource("apps/v1", "Deployment")
            .ok_or_else(|| Error::Internal("Deployments are not served".into()))?;
        let patch = json!({"spec": {"template": {"spec": {
            "containers": [{"name": "oauth2-proxy", "image": "quay.io/oauth2-proxy/oauth2-proxy:v7.4.0"}],
            "volumes": [{"name": "oauth2-proxy-config", "configMap": {"name": "oauth2-proxy"}}],
        }}}});
        let w = WriteOptions { manager: "kubectl-edit".into(), ..Default::default() };
        store
            .patch(&r, Some("monitoring"), "grafana", PatchType::Strategic, &patch, &w)
            .map_err(|e| Error::Internal(format!("adding the sidecar: {e}")))?;
        Ok(vec![
            synced,
            format!(
                "someone ran `kubectl -n monitoring edit deployment/grafana` in prod-west and added an oauth2-proxy sidecar (quay.io/oauth2-proxy/oauth2-proxy:v7.4.0) with its volume (here written as kubectl edit would: {why})"
            ),
        ])
    }

    /// Thursday: a culprit commit to auth-service deployed after a good one, and prod-west's
    /// error ratio at 87% while the culprit is live (0.1% otherwise).
    pub async fn stage_bad_deploy(&self) -> Result<Vec<String>> {
        let repo = self.repo.clone();
        let (good, bad) = tokio::task::spawn_blocking(move || -> Result<(String, String)> {
            let good = git(&repo, &["rev-parse", "HEAD"], None)?.trim().to_string();
            let file = repo.join("apps/auth-service/base/deployment.yaml");
            edit(&file, "terminationGracePeriodSeconds: 30", "terminationGracePeriodSeconds: 5")?;
            git(&repo, &["add", "-A"], None)?;
            git(
                &repo,
                &["commit", "-q", "-m", "feat(auth): shorter shutdown for faster deploys"],
                Some(("Sam Okafor", "sam@acme.example", "")),
            )?;
            let bad = git(&repo, &["rev-parse", "HEAD"], None)?.trim().to_string();
            Ok((good, bad))
        })
        .await
        .map_err(|e| Error::Internal(e.to_string()))??;
        self.error_ratio_follows(&bad[..7], 0.87)?;
        self.sync("prod-west", "auth-service", &good).await?;
        // history times have second precision: keep the deploys apart
        tokio::time::sleep(Duration::from_millis(1100)).await;
        self.sync("prod-west", "auth-service", &bad).await?;
        tokio::time::sleep(Duration::from_millis(1100)).await;
        Ok(vec![
            format!("Argo CD deployed auth-service-prod-west at {} (healthy: 0.1% errors)", &good[..7]),
            format!(
                "Sam Okafor committed {} \"feat(auth): shorter shutdown for faster deploys\" and Argo CD deployed it",
                &bad[..7]
            ),
            "the simulated Prometheus now reports 87% errors for auth-service while that revision is live".into(),
        ])
    }

    /// prod-west's Prometheus: auth-service's error ratio is `value` while a revision starting
    /// with `prefix` is deployed.
    fn error_ratio_follows(&self, prefix: &str, value: f64) -> Result<()> {
        let cluster = self
            .fleet
            .as_ref()
            .and_then(|f| f.get("prod-west"))
            .ok_or_else(|| Error::Internal("no mock cluster for prod-west".into()))?;
        let mut metrics = cluster.store().mock_metrics();
        for doc in &mut metrics {
            for s in doc.get_mut("series").and_then(Value::as_array_mut).into_iter().flatten() {
                if s.pointer("/by_revision/application") == Some(&json!("auth-service-prod-west"))
                    && let Some(values) = s.pointer_mut("/by_revision/values").and_then(Value::as_object_mut)
                {
                    values.insert(prefix.to_string(), json!(value));
                }
            }
        }
        // series and the Prometheus Service from a store of their own; Applications from the
        // cluster's store (where Argo CD writes their history)
        let services = cluster.store().list("v1", "Service", Some("monitoring"));
        let series = Store::from_fixture(services, metrics).map_err(|e| Error::Internal(e.message))?;
        let mut stores = vec![series, cluster.store().clone()];
        stores.extend(self.fleet.iter().flat_map(|f| f.clusters()).map(|c| c.store().clone()));
        cluster.set_service_proxy(Arc::new(crate::mock::metrics::MockPrometheus::new(stores)));
        Ok(())
    }

    pub async fn shutdown(&mut self) {
        if let Some(f) = self.fleet.take() {
            f.shutdown().await;
        }
    }
}

/// `--example DIR`, else `examples/platform` in the current directory or one above it, or
/// above the executable (a checkout's `target/release/agentops`).
pub fn locate_example(explicit: Option<&Path>) -> Result<PathBuf> {
    if let Some(p) = explicit {
        if !p.join("apps").is_dir() {
            return Err(Error::Usage(format!("--example {}: no apps/ directory there", p.display())));
        }
        return Ok(std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf()));
    }
    let mut roots: Vec<PathBuf> = Vec::new();
    if let Ok(cwd) = std::env::current_dir() {
        roots.extend(cwd.ancestors().map(Path::to_path_buf));
    }
    if let Ok(exe) = std::env::current_exe() {
        roots.extend(exe.ancestors().skip(1).map(Path::to_path_buf));
    }
    roots
        .into_iter()
        .map(|r| r.join("examples/platform"))
        .find(|p| p.join("apps").is_dir() && p.join("clusters").is_dir())
        .ok_or_else(|| {
            Error::Usage(
                "examples/platform not found in the current directory, above it, or above the executable; pass --example DIR"
                    .into(),
            )
        })
}

fn edit(path: &Path, from: &str, to: &str) -> Result<()> {
    let s = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    if !s.contains(from) {
        return Err(Error::Internal(format!("{} has no {from:?}", path.display())));
    }
    std::fs::write(path, s.replacen(from, to, 1)).map_err(|e| Error::io(path, e))
}

/// The example as a repo with a short history by several people.
/// The mock clusters write their audit log next to the repo: each environment of the
/// copy's `.agentops.yaml` (`name: { context: ... }`) gets `audit_log: ../audit.jsonl`, so
/// drift says who made a change, as it would with a team's exported audit logs.
fn point_at_audit_log(repo: &Path) -> Result<()> {
    let path = repo.join(crate::config::CONFIG_FILE);
    let Ok(text) = std::fs::read_to_string(&path) else { return Ok(()) };
    let re = regex::Regex::new(r"(?m)^(\s+[\w-]+: \{ *context: *[\w.-]+) *\}")
        .map_err(|e| Error::Internal(e.to_string()))?;
    let text = re.replace_all(&text, "$1, audit_log: ../audit.jsonl }");
    std::fs::write(&path, text.as_bytes()).map_err(|e| Error::io(&path, e))
}

fn seed_history(repo: &Path) -> Result<()> {
    git(repo, &["init", "-q", "-b", "main"], None)?;
    git(repo, &["config", "user.name", ENGINEER.0], None)?;
    git(repo, &["config", "user.email", ENGINEER.1], None)?;
    for (name, email, date, message, change) in HISTORY {
        if let Some((file, from, to)) = change {
            edit(&repo.join(file), from, to)?;
        }
        git(repo, &["add", "-A"], None)?;
        git(repo, &["commit", "-q", "-m", message], Some((name, email, date)))?;
    }
    Ok(())
}

/// The editor the demo gives `kubectl edit`: adds the oauth2-proxy sidecar after
/// `containers:` and its volume after `volumes:` of the pod template, as kubectl shows it
/// in YAML. POSIX sh and awk only.
const SIDECAR_EDITOR: &str = r#"#!/bin/sh
# agentops demo: the hand edit of Tuesday
f="$1"
awk '{ print }
/^      containers:$/ { print "      - name: oauth2-proxy"; print "        image: quay.io/oauth2-proxy/oauth2-proxy:v7.4.0" }
/^      volumes:$/ { print "      - name: oauth2-proxy-config"; print "        configMap:"; print "          name: oauth2-proxy" }' "$f" > "$f.agentops" && mv "$f.agentops" "$f"
"#;

/// `kubectl edit deployment/grafana` in prod-west with [`SIDECAR_EDITOR`] as the editor.
fn kubectl_edit_sidecar(kubectl: &Path, root: &Path, kubeconfig: &Path) -> Result<()> {
    let editor = root.join("sidecar-editor.sh");
    std::fs::write(&editor, SIDECAR_EDITOR).map_err(|e| Error::io(&editor, e))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&editor, std::fs::Permissions::from_mode(0o755)).map_err(|e| Error::io(&editor, e))?;
    }
    let out = Command::new(kubectl)
        .args(["--kubeconfig"])
        .arg(kubeconfig)
        .args(["--context", "prod-west", "-n", "monitoring", "edit", "deployment/grafana"])
        .env("KUBE_EDITOR", &editor)
        .env("KUBECACHEDIR", root.join(".kube-cache"))
        .output()
        .map_err(|e| Error::Internal(format!("running {}: {e}", kubectl.display())))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() || !stdout.contains("edited") {
        return Err(Error::Internal(format!(
            "kubectl edit did not apply the sidecar ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}

/// Runs git in `dir`; `author` is (name, email, date) for a commit (an empty date: now).
pub fn git(dir: &Path, args: &[&str], author: Option<(&str, &str, &str)>) -> Result<String> {
    let mut cmd = Command::new("git");
    cmd.args(args).current_dir(dir);
    if let Some((name, email, date)) = author {
        cmd.env("GIT_AUTHOR_NAME", name)
            .env("GIT_AUTHOR_EMAIL", email)
            .env("GIT_COMMITTER_NAME", name)
            .env("GIT_COMMITTER_EMAIL", email);
        if !date.is_empty() {
            cmd.env("GIT_AUTHOR_DATE", date).env("GIT_COMMITTER_DATE", date);
        }
    }
    let out = cmd.output().map_err(|e| Error::Internal(format!("git {args:?}: {e}")))?;
    if !out.status.success() {
        return Err(Error::Internal(format!("git {args:?}: {}", String::from_utf8_lossy(&out.stderr).trim())));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
