//! Helpers: fixture repos and the example platform copied to temp dirs, the agentops binary,
//! git, kubectl against mock clusters, waiting for the simulated controllers.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use agentops::mock::{MockFleet, MockOptions};
use serde_json::{Value, json};

pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

/// The bundled example repo (examples/platform), with its cluster fixtures under clusters/.
pub fn platform() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/platform")
}

/// The example repo copied into a fresh temp dir, changed by `prepare`, then committed as the
/// initial commit of a new git repository.
pub fn platform_repo(prepare: impl FnOnce(&Path)) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&platform(), dir.path());
    prepare(dir.path());
    git_init(dir.path());
    dir
}

/// A kustomize cache of the suite's own (`--cache-dir`), shared by the tests of one area.
pub fn cache_dir(name: &str) -> String {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join(name).to_str().unwrap().to_string()
}

/// Replaces the first `from` in a file by `to`; the file must hold `from`.
pub fn edit(path: &Path, from: &str, to: &str) {
    let s = std::fs::read_to_string(path).unwrap();
    assert!(s.contains(from), "{} has no {from:?}", path.display());
    std::fs::write(path, s.replacen(from, to, 1)).unwrap();
}

/// Commits everything; the new HEAD.
pub fn commit_all(dir: &Path, msg: &str) -> String {
    git(dir, &["add", "-A"]);
    git(dir, &["commit", "-q", "-m", msg]);
    git(dir, &["rev-parse", "HEAD"]).trim().to_string()
}

/// Every file below `dir`, depth first.
pub fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() { out.extend(walk(&p)) } else { out.push(p) }
    }
    out
}

/// Polls `f` every 50 ms for up to 60 s (the simulated Argo CD renders with kustomize on the
/// suite's shared cores); panics naming `what` when it never holds.
pub async fn wait_for<F: Fn() -> bool>(what: &str, f: F) {
    for _ in 0..1200 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

/// The kubectl that scripts/setup-tools installs.
pub fn kubectl_bin() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(".tools/bin/kubectl")
}

/// Runs the real kubectl against mock clusters: `kubeconfig`, a fresh discovery cache in
/// `work`, no kuberc, extra environment `env`; killed after 120 s.
pub async fn kubectl(kubeconfig: &Path, work: &Path, args: &[&str], env: &[(&str, &std::ffi::OsStr)]) -> Run {
    let mut cmd = tokio::process::Command::new(kubectl_bin());
    cmd.args(args)
        .env("KUBECONFIG", kubeconfig)
        .env("KUBECACHEDIR", work.join("kube-cache"))
        .env_remove("KUBECTL_KUBERC")
        .kill_on_drop(true);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = tokio::time::timeout(Duration::from_secs(120), cmd.output()).await.expect("kubectl hung").unwrap();
    Run::from(out)
}

/// Copies a fixture repo into a fresh temp dir.
pub fn copy_fixture(name: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&fixture(name), dir.path());
    dir
}

pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), &target).unwrap();
        }
    }
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Runs the agentops binary.
pub fn agentops(args: &[&str]) -> Run {
    agentops_env(args, &[])
}

/// [`agentops_env`] off the async runtime, for tests that serve mock clusters meanwhile.
pub async fn agentops_async(args: Vec<String>, env: Vec<(String, String)>) -> Run {
    tokio::task::spawn_blocking(move || {
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        let e: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        agentops_env(&a, &e)
    })
    .await
    .unwrap()
}

/// Runs the agentops binary with these environment variables set.
pub fn agentops_env(args: &[&str], env: &[(&str, &str)]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_agentops"))
        .args(args)
        .env("NO_COLOR", "1")
        .env_remove("AGENTOPS_CACHE_DIR")
        // tests never talk to a real model, and never carry a real key
        .env_remove("OPENAI_API_KEY")
        .env_remove("OPENAI_BASE_URL")
        .env_remove("AGENTOPS_LLM_CASSETTES")
        // logs on stderr only when a test asks for them
        .env_remove("RUST_LOG")
        .envs(env.iter().copied())
        .output()
        .unwrap();
    Run::from(out)
}

impl From<std::process::Output> for Run {
    fn from(out: std::process::Output) -> Run {
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "Test")
        .env("GIT_AUTHOR_EMAIL", "test@example.com")
        .env("GIT_COMMITTER_NAME", "Test")
        .env("GIT_COMMITTER_EMAIL", "test@example.com")
        .output()
        .unwrap();
    assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn git_init(dir: &Path) {
    git(dir, &["init", "-q", "-b", "main"]);
    git(dir, &["add", "-A"]);
    git(dir, &["commit", "-q", "-m", "initial"]);
}

// The rollback world (rollback.rs, watch.rs): prod-west with the simulated Argo CD and
// Prometheus, a good and a bad revision of auth-service deployed.

/// The Argo CD Application the rollback world deploys, and the file its culprit edits.
pub const APP: &str = "auth-service-prod-west";
pub const DEPLOYMENT: &str = "apps/auth-service/base/deployment.yaml";

/// How a world differs from the seed case.
#[derive(Default)]
pub struct Setup {
    /// The culprit also adds a PreSync migration Job.
    pub migration: bool,
    /// The culprit also drops a key from the base's configMapGenerator (only the rendered
    /// overlay shows a ConfigMap losing a key).
    pub drop_key: bool,
    pub auto_sync: bool,
    /// The error ratio stays high whatever is deployed, except at the good revision.
    pub stays_high: bool,
    pub prometheus_down: bool,
    /// The culprit also adds an env var OAUTH_PROVIDER to auth-service.
    pub oauth: bool,
    /// The culprit also breaks payments, deployed good then bad like auth-service.
    pub payments: bool,
}

pub struct World {
    pub repo: tempfile::TempDir,
    _clusters: tempfile::TempDir,
    pub fleet: MockFleet,
    pub kc: tempfile::NamedTempFile,
    pub good: String,
    pub bad: String,
}

impl World {
    /// The platform repo with a history: good (initial), an unrelated commit to grafana, the
    /// culprit touching auth-service; both deployed through the simulated Argo CD.
    pub async fn new(s: Setup) -> World {
        let repo = platform_repo(|dir| {
            if s.prometheus_down {
                edit(
                    &dir.join(".agentops.yaml"),
                    "prod-west: { context: prod-west }",
                    "prod-west: { context: prod-west, prometheus_url: \"http://127.0.0.1:9\" }",
                );
            }
        });
        let good = git(repo.path(), &["rev-parse", "HEAD"]).trim().to_string();
        edit(&repo.path().join("apps/grafana/base/deployment.yaml"), "replicas: 1", "replicas: 2");
        commit_all(repo.path(), "chore(grafana): two replicas");
        edit(&repo.path().join(DEPLOYMENT), "terminationGracePeriodSeconds: 30", "terminationGracePeriodSeconds: 5");
        if s.oauth {
            edit(
                &repo.path().join(DEPLOYMENT),
                "                  key: password\n          resources:\n            requests:\n              cpu: 100m",
                "                  key: password\n            - name: OAUTH_PROVIDER\n              value: https://login.acme.example\n          resources:\n            requests:\n              cpu: 100m",
            );
        }
        if s.migration {
            std::fs::write(
                repo.path().join("apps/auth-service/base/migrate-job.yaml"),
                "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: auth-migrate-v2\n  annotations:\n    argocd.argoproj.io/hook: PreSync\nspec:\n  template:\n    spec:\n      restartPolicy: Never\n      containers:\n        - name: migrate\n          image: ghcr.io/acme/auth-service:1.14.2\n          args: [\"migrate\", \"--to=v2\"]\n",
            )
            .unwrap();
            edit(
                &repo.path().join("apps/auth-service/base/kustomization.yaml"),
                "  - networkpolicy.yaml\n",
                "  - networkpolicy.yaml\n  - migrate-job.yaml\n",
            );
        }
        if s.drop_key {
            edit(
                &repo.path().join("apps/auth-service/base/kustomization.yaml"),
                "      - SESSION_TTL_SECONDS=3600\n",
                "",
            );
        }
        if s.payments {
            edit(
                &repo.path().join("apps/payments/base/deployment.yaml"),
                "terminationGracePeriodSeconds: 30",
                "terminationGracePeriodSeconds: 5",
            );
        }
        let bad = commit_all(repo.path(), "feat(auth): shorter shutdown for faster deploys");

        let clusters = tempfile::tempdir().unwrap();
        let dir = clusters.path().join("prod-west");
        copy_dir(&platform().join("clusters/prod-west"), &dir);
        let values = if s.stays_high {
            format!("      default: 0.87\n      {}: 0.001", &good[..7])
        } else {
            format!("      default: 0.001\n      {}: 0.87", &bad[..7])
        };
        edit(&dir.join("prometheus.yaml"), "      default: 0.001", &values);
        if s.payments {
            edit(
                &dir.join("prometheus.yaml"),
                "  labels: {app: payments, namespace: payments, env: prod-west}\n  value: 0.002",
                &format!(
                    "  labels: {{app: payments, namespace: payments, env: prod-west}}\n  by_revision:\n    application: payments-prod-west\n    values:\n      default: 0.002\n      {}: 0.87",
                    &bad[..7]
                ),
            );
        }
        let opts = MockOptions { argocd_repo: Some(repo.path().to_path_buf()), ..MockOptions::default() };
        let fleet = MockFleet::start(&[("prod-west".to_string(), dir)], &opts).await.unwrap();
        let kc = tempfile::NamedTempFile::new().unwrap();
        fleet.write_kubeconfig(kc.path()).unwrap();
        let w = World { repo, _clusters: clusters, fleet, kc, good, bad };

        // deploy good, then bad (a second apart: history times have second precision)
        let text = std::fs::read_to_string(w.repo.path().join("argocd/prod-west/auth-service.yaml")).unwrap();
        let mut app: Value = agentops::config::yaml::parse_values(&text).unwrap().remove(0);
        if s.auto_sync {
            app["spec"]["syncPolicy"]["automated"] = json!({"prune": true, "selfHeal": true});
        }
        app["operation"] = json!({"sync": {"revision": w.good}, "initiatedBy": {"username": "test"}});
        w.store().apply(&app, "argocd-cli").unwrap();
        w.wait_history(1).await;
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let patch = json!({"operation": {"sync": {"revision": w.bad}, "initiatedBy": {"username": "test"}}});
        w.store().merge_patch("argoproj.io/v1alpha1", "Application", Some("argocd"), APP, &patch, "argocd").unwrap();
        w.wait_history(2).await;
        if s.payments {
            let text = std::fs::read_to_string(w.repo.path().join("argocd/prod-west/payments.yaml")).unwrap();
            let mut app: Value = agentops::config::yaml::parse_values(&text).unwrap().remove(0);
            app["operation"] = json!({"sync": {"revision": w.good}, "initiatedBy": {"username": "test"}});
            w.store().apply(&app, "argocd-cli").unwrap();
            w.wait_app_history("payments-prod-west", 1).await;
            tokio::time::sleep(Duration::from_millis(1100)).await;
            let patch = json!({"operation": {"sync": {"revision": w.bad}, "initiatedBy": {"username": "test"}}});
            w.store()
                .merge_patch(
                    "argoproj.io/v1alpha1",
                    "Application",
                    Some("argocd"),
                    "payments-prod-west",
                    &patch,
                    "argocd",
                )
                .unwrap();
            w.wait_app_history("payments-prod-west", 2).await;
        }
        tokio::time::sleep(Duration::from_millis(1100)).await;
        w
    }

    pub async fn wait_app_history(&self, name: &str, n: usize) {
        wait_for(&format!("deploy #{n} of {name}"), || {
            let a = self.store().get("argoproj.io/v1alpha1", "Application", Some("argocd"), name);
            a.and_then(|a| a.pointer("/status/history").and_then(Value::as_array).map(Vec::len)) == Some(n)
        })
        .await;
    }

    pub fn store(&self) -> &agentops::mock::Store {
        self.fleet.get("prod-west").unwrap().store()
    }

    pub fn app(&self) -> Value {
        self.store().get("argoproj.io/v1alpha1", "Application", Some("argocd"), APP).unwrap()
    }

    pub async fn wait_history(&self, n: usize) {
        wait_for(&format!("deploy #{n}"), || {
            let a = self.store().get("argoproj.io/v1alpha1", "Application", Some("argocd"), APP);
            a.and_then(|a| a.pointer("/status/history").and_then(Value::as_array).map(Vec::len)) == Some(n)
        })
        .await;
    }

    /// `agentops rollback` for auth-service in prod-west against this world, then `extra`.
    pub fn rollback_args(&self, extra: &[&str]) -> Vec<String> {
        let world = [
            "rollback",
            "--repo",
            self.repo.path().to_str().unwrap(),
            "--kubeconfig",
            self.kc.path().to_str().unwrap(),
            "--cache-dir",
            &cache_dir("rollback-cache"),
            "--app",
            "auth-service",
            "--env",
            "prod-west",
        ];
        world.iter().chain(extra).map(|s| s.to_string()).collect()
    }

    pub async fn rollback(&self, extra: &[&str]) -> Run {
        agentops_async(self.rollback_args(extra), Vec::new()).await
    }

    /// [`World::rollback`] on a terminal (a pseudo-terminal from `script`): what a person
    /// sees, stdout and stderr together.
    pub async fn rollback_in_terminal(&self, extra: &[&str]) -> Run {
        let mut words: Vec<String> = vec![env!("CARGO_BIN_EXE_agentops").into()];
        words.extend(self.rollback_args(extra));
        let line = words.iter().map(|w| format!("'{w}'")).collect::<Vec<_>>().join(" ");
        tokio::task::spawn_blocking(move || {
            let out = std::process::Command::new("script")
                .args(["-qec", &line, "/dev/null"])
                .env("NO_COLOR", "1")
                .stdin(std::process::Stdio::null())
                .output()
                .unwrap();
            Run::from(out)
        })
        .await
        .unwrap()
    }

    pub fn head(&self) -> String {
        git(self.repo.path(), &["rev-parse", "HEAD"]).trim().to_string()
    }

    pub fn status(&self) -> String {
        git(self.repo.path(), &["status", "--porcelain"])
    }

    /// The incident reports (each has its record, `<report>.json`, beside it).
    pub fn incident_reports(&self) -> Vec<PathBuf> {
        let dir = self.repo.path().join("docs/incidents");
        let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
            .map(|d| d.map(|e| e.unwrap().path()).filter(|p| p.extension().is_some_and(|x| x == "md")).collect())
            .unwrap_or_default();
        v.sort();
        v
    }
}

/// Filters for the plan's moving parts: shas, times, ages.
pub fn stable(text: &str, w: &World) -> String {
    text.replace(&w.good, "<good-sha>")
        .replace(&w.bad, "<bad-sha>")
        .replace(&w.good[..7], "<good>")
        .replace(&w.bad[..7], "<bad>")
        .split('\n')
        .map(|l| {
            let re = regex::Regex::new(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ").unwrap();
            let l = re.replace_all(l, "<time>").to_string();
            let date = regex::Regex::new(r"\d{4}-\d\d-\d\d").unwrap();
            let l = date.replace_all(&l, "<date>").to_string();
            let ago = regex::Regex::new(r"\d+(s|m|h| days) ago").unwrap();
            let l = ago.replace_all(&l, "<ago>").to_string();
            let full = regex::Regex::new(r"\b[0-9a-f]{40}\b").unwrap();
            let l = full.replace_all(&l, "<sha-full>").to_string();
            let sha = regex::Regex::new(r"\b[0-9a-f]{7}\b").unwrap();
            let l = sha.replace_all(&l, "<sha>").to_string();
            let took = regex::Regex::new(r"\b\d+ (s|min|h)( \d+ (s|min))?\b").unwrap();
            took.replace_all(&l, "<duration>").to_string()
        })
        // the samples over the incident depend on the test's timing: one row stands for them
        .fold(Vec::<String>::new(), |mut out, l| {
            let sample = regex::Regex::new(r"^\| <time> \| \**[0-9.]+%\** \|$").unwrap();
            if sample.is_match(&l) {
                if out.last().is_none_or(|p| p != "| <time> | <ratio> |") {
                    out.push("| <time> | <ratio> |".into());
                }
            } else {
                out.push(l);
            }
            out
        })
        .join("\n")
}
