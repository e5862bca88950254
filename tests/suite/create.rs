//! `agentops create` on git copies of the example platform, with the real kustomize and the
//! example's mock clusters (StorageClasses, CRDs, IngressClasses, namespaces).

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use agentops::mock::{MockFleet, MockOptions};
use serde_json::Value;

use super::common::*;

const ENVS: [&str; 5] = ["dev", "staging", "prod-west", "prod-east", "prod-central"];

/// The example's clusters, edited per environment first.
async fn fleet(edit: impl Fn(&str, &Path)) -> (MockFleet, tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let mut dirs = Vec::new();
    for env in ENVS {
        let d = tmp.path().join(env);
        copy_dir(&platform().join("clusters").join(env), &d);
        edit(env, &d);
        dirs.push((env.to_string(), d));
    }
    let fleet = MockFleet::start(&dirs, &MockOptions::default()).await.unwrap();
    let kc = tmp.path().join("kubeconfig");
    fleet.write_kubeconfig(&kc).unwrap();
    (fleet, tmp, kc)
}

async fn run(args: Vec<String>) -> Run {
    agentops_async(args, Vec::new()).await
}

fn create_args(repo: &Path, kc: &Path, extra: &[&str]) -> Vec<String> {
    let mut a: Vec<String> = [
        "--repo",
        repo.to_str().unwrap(),
        "--cache-dir",
        &cache_dir("create-cache"),
        "--kubeconfig",
        kc.to_str().unwrap(),
        "create",
        "--name",
        "prometheus",
        "--namespace",
        "monitoring",
        "--image",
        "quay.io/prometheus/prometheus:v2.53.0",
        "--port",
        "9090",
        "--tier",
        "medium",
        "--storage",
        "50Gi",
        "--with",
        "servicemonitor,networkpolicy,pdb",
        "--set-env",
        "dev:RETENTION=15d",
        "--set-env",
        "staging:RETENTION=15d",
        "--set-env",
        "prod:RETENTION=30d",
        "--reason",
        "Metrics for every cluster",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    a.extend(extra.iter().map(|s| s.to_string()));
    a
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn prometheus_in_five_clusters_is_planned_gated_written_and_committed() {
    let repo = platform_repo(|dir| std::fs::remove_dir_all(dir.join("clusters")).unwrap());
    let dir = repo.path();
    let (fleet, _tmp, kc) = fleet(|_, _| {}).await;
    let head = git(dir, &["rev-parse", "HEAD"]);

    // the plan: every gate passes, nothing is written
    let r = run(create_args(dir, &kc, &["--format", "json"])).await;
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    assert!(v["blocked"].as_array().unwrap().is_empty(), "{}", v["blocked"]);
    let gates: Vec<String> =
        v["gates"].as_array().unwrap().iter().map(|g| g["gate"].as_str().unwrap().into()).collect();
    assert_eq!(gates.iter().filter(|g| *g == "build").count(), 5, "{gates:?}");
    assert!(gates.contains(&"validate".to_string()), "{gates:?}");
    assert!(!dir.join("apps/prometheus").exists(), "nothing written without --yes");
    let sizes: Vec<(String, u64)> = v["envs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["env"].as_str().unwrap().to_string(), e["size"]["replicas"].as_u64().unwrap()))
        .collect();
    assert_eq!(sizes.iter().filter(|(e, _)| e.starts_with("prod")).map(|s| s.1).collect::<Vec<_>>(), [3, 3, 3]);
    assert_eq!(sizes.iter().find(|(e, _)| e == "dev").unwrap().1, 1);

    // as text: a file tree with sizes, not every file in full (unless --show-files)
    let files = v["files"].as_array().unwrap().len();
    let text = run(create_args(dir, &kc, &[])).await;
    assert_eq!(text.code, 0, "{}", text.stderr);
    assert!(text.stdout.contains(&format!("Files: {files} new, ")), "{}", text.stdout);
    assert!(text.stdout.contains("  apps/\n    prometheus/\n      base/\n"), "{}", text.stdout);
    assert!(!text.stdout.contains("+++ b/"), "{}", text.stdout);
    assert!(text.stdout.lines().count() < 80, "{} lines:\n{}", text.stdout.lines().count(), text.stdout);
    assert!(text.stderr.contains("--show-files prints them"), "{}", text.stderr);
    let full = run(create_args(dir, &kc, &["--show-files"])).await;
    assert_eq!(full.stdout.matches("+++ b/").count(), files, "{}", full.stdout);

    // only the reviewed files are written: a stale fingerprint writes nothing
    let reviewed = v["fingerprint"].as_str().unwrap().to_string();
    let stale = run(create_args(dir, &kc, &["--yes", "--expect", "0123456789abcdef"])).await;
    assert_eq!(stale.code, 1, "{}\n{}", stale.stdout, stale.stderr);
    assert!(stale.stderr.contains("the create plan changed since it was shown"), "{}", stale.stderr);
    assert!(!dir.join("apps/prometheus").exists() && !dir.join("argocd/dev/prometheus.yaml").exists());

    // written and committed
    let r = run(create_args(dir, &kc, &["--yes", "--expect", &reviewed, "--format", "json"])).await;
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    let sha = v["commit"].as_str().expect("a commit");
    assert_eq!(git(dir, &["rev-parse", "HEAD"]).trim(), sha);
    assert_ne!(git(dir, &["rev-parse", "HEAD"]), head);
    let committed = git(dir, &["show", "--name-only", "--format=", "HEAD"]);
    let mut files: Vec<&str> = v["files"].as_array().unwrap().iter().map(|f| f["path"].as_str().unwrap()).collect();
    files.sort();
    assert_eq!(committed.lines().collect::<Vec<_>>(), files);
    assert_eq!(git(dir, &["status", "--porcelain"]).lines().filter(|l| !l.contains(".agentops")).count(), 0);
    let message = git(dir, &["log", "-1", "--format=%B"]);
    assert!(message.starts_with("feat(prometheus): deploy prometheus to 5 environments"), "{message}");
    // the workflow's own account: image, sizes per environment, storage, the files by what
    // they are (not a partial file list)
    for fact in [
        "Image: quay.io/prometheus/prometheus:v2.53.0\nWorkload: StatefulSet in namespace monitoring\n",
        "Tier: medium (replicas, cpu and memory requests/limits)",
        "- prod-west, prod-east, prod-central:\n  3 replicas, cpu ",
        "Storage: 50Gi per replica, StorageClass:",
        "Files: 25: 6 in the base, 14 in 5 overlays, 5 Argo CD Applications",
        "Validated: kustomize build 5/5 overlays",
        "Metrics for every cluster",
    ] {
        assert!(message.contains(fact), "{fact}: {message}");
    }
    assert!(!message.contains("files:"), "no generic file list: {message}");
    // identical values across environments share a line: the body stays readable
    assert!(message.lines().all(|l| l.chars().count() <= 72), "{message}");

    // the repo's style: repo URL, project, destination and names learned from its Applications
    let app = std::fs::read_to_string(dir.join("argocd/prod-west/prometheus.yaml")).unwrap();
    for want in [
        "repoURL: https://github.com/acme/platform.git",
        "name: prometheus-prod-west",
        "path: apps/prometheus/overlays/prod-west",
        "server: https://prod-west.k8s.acme.internal",
        "namespace: monitoring",
    ] {
        assert!(app.contains(want), "{want}: {app}");
    }
    // current kustomize syntax only
    for f in files.iter().filter(|f| f.ends_with("kustomization.yaml")) {
        let text = std::fs::read_to_string(dir.join(f)).unwrap();
        for old in ["bases:", "commonLabels:", "patchesStrategicMerge:"] {
            assert!(!text.contains(old), "{f} uses {old}");
        }
    }
    let prod = std::fs::read_to_string(dir.join("apps/prometheus/overlays/prod-west/resources.yaml")).unwrap();
    insta::assert_snapshot!("create_prod_west_resources", prod);
    let base = std::fs::read_to_string(dir.join("apps/prometheus/base/kustomization.yaml")).unwrap();
    insta::assert_snapshot!("create_base_kustomization", base);

    // the new app validates with the rest of the repo
    let r = run(vec![
        "validate".into(),
        "--repo".into(),
        dir.to_str().unwrap().into(),
        "--cache-dir".into(),
        cache_dir("create-cache"),
        "--app".into(),
        "prometheus".into(),
    ])
    .await;
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    fleet.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn missing_cluster_prerequisites_block_with_what_and_where() {
    let repo = platform_repo(|dir| std::fs::remove_dir_all(dir.join("clusters")).unwrap());
    let dir = repo.path();
    let (fleet, _tmp, kc) = fleet(|env, d| {
        if env == "staging" {
            // no default StorageClass in staging
            let s = std::fs::read_to_string(d.join("storage.yaml")).unwrap().replace(
                "storageclass.kubernetes.io/is-default-class: \"true\"",
                "storageclass.kubernetes.io/is-default-class: \"false\"",
            );
            std::fs::write(d.join("storage.yaml"), s).unwrap();
        }
        if env == "prod-central" {
            // no Prometheus Operator
            let s = std::fs::read_to_string(d.join("crds.yaml")).unwrap();
            let keep: Vec<&str> =
                s.split("\n---\n").filter(|doc| !doc.contains("servicemonitors.monitoring.coreos.com")).collect();
            std::fs::write(d.join("crds.yaml"), keep.join("\n---\n")).unwrap();
        }
    })
    .await;
    let before = git(dir, &["status", "--porcelain"]);
    let r = run(create_args(dir, &kc, &["--yes"])).await;
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    let out = format!("{}{}", r.stdout, r.stderr);
    assert!(out.contains("no default StorageClass (storage classes: gp3) in cluster staging"), "{out}");
    assert!(out.contains("staging"), "{out}");
    assert!(out.contains("ServiceMonitor") && out.contains("prod-central"), "{out}");
    assert!(!dir.join("apps/prometheus").exists() && !dir.join("argocd/dev/prometheus.yaml").exists());
    assert_eq!(git(dir, &["status", "--porcelain"]).replace(".agentops/\n", ""), before.replace(".agentops/\n", ""));
    fleet.shutdown().await;
}

#[test]
fn bad_requests_are_refused_before_anything_renders() {
    let repo = platform_repo(|dir| std::fs::remove_dir_all(dir.join("clusters")).unwrap());
    let dir = repo.path();
    let base = |extra: &[&str]| {
        let mut a = vec!["--repo", dir.to_str().unwrap(), "--no-cache", "create"];
        a.extend(extra);
        agentops(&a)
    };
    let r = base(&["--name", "grafana", "--image", "grafana/grafana:11.0.0"]);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("already exists"), "{}", r.stderr);
    let r = base(&["--name", "Bad_Name", "--image", "x/y:1"]);
    assert!(r.stderr.contains("DNS label"), "{}", r.stderr);
    let r = base(&["--name", "svc", "--image", "x/y:latest"]);
    assert!(r.stderr.contains(":latest"), "{}", r.stderr);
    let r = base(&["--name", "svc", "--image", "x/y:1", "--env", "qa"]);
    assert!(r.stderr.contains("unknown environment \"qa\""), "{}", r.stderr);
    let r = base(&["--name", "svc", "--image", "x/y:1", "--storage", "lots"]);
    assert!(r.stderr.contains("not a quantity"), "{}", r.stderr);
    let r = base(&["--name", "svc", "--image", "x/y:1", "--expose", "ingress"]);
    assert!(r.stderr.contains("needs a host"), "{}", r.stderr);
    let r = base(&["--name", "svc", "--image", "x/y:1", "--tier", "huge"]);
    assert!(r.stderr.contains("tier \"huge\""), "{}", r.stderr);
    assert_eq!(git(dir, &["status", "--porcelain"]), "");
}

#[test]
fn a_repo_url_is_never_invented() {
    // no Applications and no repo_url in the config: a clear failure
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&platform().join("apps/grafana"), &dir.path().join("apps/grafana"));
    std::fs::write(dir.path().join(".agentops.yaml"), "environments:\n  dev: {}\n").unwrap();
    git_init(dir.path());
    let r = agentops(&[
        "--repo",
        dir.path().to_str().unwrap(),
        "--no-cache",
        "create",
        "--name",
        "svc",
        "--image",
        "x/y:1",
        "--env",
        "dev",
    ]);
    assert_ne!(r.code, 0);
    assert!(
        r.stderr.contains("repo_url") && r.stderr.contains("no Argo CD Application deploys to dev"),
        "{}",
        r.stderr
    );
    assert!(!dir.path().join("apps/svc").exists());
}

#[test]
fn templates_can_be_overridden_per_repo() {
    let repo = platform_repo(|dir| std::fs::remove_dir_all(dir.join("clusters")).unwrap());
    let dir = repo.path();
    let custom = dir.join(".agentops/templates/app");
    std::fs::create_dir_all(&custom).unwrap();
    std::fs::write(
        custom.join("service.yaml.hbs"),
        "# house style\napiVersion: v1\nkind: Service\nmetadata:\n  name: {{name}}\nspec:\n  selector:\n    app.kubernetes.io/name: {{name}}\n  ports:\n    - name: http\n      port: 80\n      targetPort: http\n",
    )
    .unwrap();
    let r = agentops(&[
        "--repo",
        dir.to_str().unwrap(),
        "--cache-dir",
        &cache_dir("create-cache"),
        "create",
        "--name",
        "svc",
        "--image",
        "x/y:1.2.3",
        "--env",
        "dev",
        "--format",
        "json",
    ]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    let service = v["files"].as_array().unwrap().iter().find(|f| f["path"] == "apps/svc/base/service.yaml").unwrap();
    assert!(service["content"].as_str().unwrap().starts_with("# house style"), "{service}");
}

#[test]
fn chat_asks_for_what_is_missing_then_creates_behind_approval() {
    let repo = platform_repo(|dir| std::fs::remove_dir_all(dir.join("clusters")).unwrap());
    let dir = repo.path();
    let input = [
        "/infrastructure-create",
        "billing",
        "",
        "dev staging",
        "ghcr.io/acme/billing:1.4.0",
        "8080",
        "5Gi",
        "medium",
        "",
        "pdb, servicemonitor",
        "/quit",
    ]
    .join("\n");
    let mut child = Command::new(env!("CARGO_BIN_EXE_agentops"))
        .args([
            "chat",
            "--repo",
            dir.to_str().unwrap(),
            "--cache-dir",
            &cache_dir("create-cache"),
            "--planner",
            "rules",
            "--yes",
        ])
        .env("NO_COLOR", "1")
        .env_remove("AGENTOPS_CACHE_DIR")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(format!("{input}\n").as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    for q in [
        "Application name?",
        "Namespace?",
        "Target environments?",
        "Container image",
        "Container port?",
        "Persistent storage?",
        "Size tier?",
        "Exposure?",
        "Extras?",
    ] {
        assert!(stdout.contains(q), "{q}: {stdout}");
    }
    assert!(stdout.contains("render_overlay") && stdout.contains("create_app"), "{stdout}");
    assert!(dir.join("apps/billing/overlays/staging/kustomization.yaml").exists(), "{stdout}");
    assert!(!dir.join("apps/billing/overlays/prod-west").exists(), "only the environments asked for");
    let workload = std::fs::read_to_string(dir.join("apps/billing/base/workload.yaml")).unwrap();
    assert!(workload.contains("kind: StatefulSet") && workload.contains("storage: 5Gi"), "{workload}");
    assert!(dir.join("apps/billing/base/servicemonitor.yaml").exists());
    let message = git(dir, &["log", "-1", "--format=%s"]);
    assert!(message.starts_with("feat(billing): deploy billing to dev and staging"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_missing_namespace_blocks_unless_the_application_creates_it() {
    let repo = platform_repo(|dir| std::fs::remove_dir_all(dir.join("clusters")).unwrap());
    let dir = repo.path();
    // this repo's dev Applications do not create namespaces
    for e in std::fs::read_dir(dir.join("argocd/dev")).unwrap() {
        let p = e.unwrap().path();
        let text = std::fs::read_to_string(&p).unwrap().replace("      - CreateNamespace=true\n", "");
        std::fs::write(&p, text).unwrap();
    }
    git(dir, &["commit", "-qam", "dev namespaces are made by the platform team"]);
    let (fleet, _tmp, kc) = fleet(|_, _| {}).await;
    let args = |ns: &str| {
        let mut a: Vec<String> =
            ["--repo", dir.to_str().unwrap(), "--cache-dir", &cache_dir("create-cache"), "--kubeconfig"]
                .iter()
                .map(|s| s.to_string())
                .collect();
        a.push(kc.to_str().unwrap().to_string());
        a.extend(
            ["create", "--name", "svc", "--image", "x/y:1.0.0", "--env", "dev", "--namespace", ns, "--format", "json"]
                .iter()
                .map(|s| s.to_string()),
        );
        a
    };
    let r = run(args("brand-new")).await;
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    let blocked = v["blocked"].to_string();
    assert!(
        blocked.contains("namespace brand-new does not exist") && blocked.contains("CreateNamespace=true"),
        "{blocked}"
    );
    // an existing namespace passes
    let r = run(args("monitoring")).await;
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    fleet.shutdown().await;
}
