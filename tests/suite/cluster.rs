//! agentops against mock clusters over HTTP: the cluster tools, `validate --clusters`, the
//! simulated Argo CD and Prometheus.

use std::path::{Path, PathBuf};
use std::time::Duration;

use agentops::mock::{MockFleet, MockOptions};
use serde_json::{Value, json};

use super::common::*;

const ENVS: [&str; 5] = ["dev", "staging", "prod-west", "prod-east", "prod-central"];

/// The example's cluster fixtures, optionally edited per environment first.
fn fleet_dirs(edit: impl Fn(&str, &Path)) -> (tempfile::TempDir, Vec<(String, PathBuf)>) {
    let tmp = tempfile::tempdir().unwrap();
    let mut dirs = Vec::new();
    for env in ENVS {
        let d = tmp.path().join(env);
        copy_dir(&platform().join("clusters").join(env), &d);
        edit(env, &d);
        dirs.push((env.to_string(), d));
    }
    (tmp, dirs)
}

async fn start(dirs: &[(String, PathBuf)], opts: MockOptions) -> (MockFleet, tempfile::NamedTempFile) {
    let fleet = MockFleet::start(dirs, &opts).await.unwrap();
    let kc = tempfile::NamedTempFile::new().unwrap();
    fleet.write_kubeconfig(kc.path()).unwrap();
    (fleet, kc)
}

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn prerequisites_are_checked_in_each_target_cluster() {
    let (_tmp, dirs) = fleet_dirs(|env, d| {
        if env == "prod-east" {
            // the encrypted class the redis overlay names is missing here
            let s = std::fs::read_to_string(d.join("storage.yaml"))
                .unwrap()
                .replace("name: gp3-encrypted", "name: gp3-plain");
            std::fs::write(d.join("storage.yaml"), s).unwrap();
        }
        if env == "prod-central" {
            // no Prometheus Operator: only the Application CRD
            let s = std::fs::read_to_string(d.join("crds.yaml")).unwrap();
            let keep: Vec<&str> =
                s.split("\n---\n").filter(|doc| !doc.contains("servicemonitors.monitoring.coreos.com")).collect();
            std::fs::write(d.join("crds.yaml"), keep.join("\n---\n")).unwrap();
        }
    });
    let (fleet, kc) = start(&dirs, MockOptions::default()).await;
    let repo = platform();
    let base = |extra: &[&str]| {
        let mut a = args(&[
            "validate",
            "--repo",
            repo.to_str().unwrap(),
            "--no-cache",
            "--clusters",
            "--kubeconfig",
            kc.path().to_str().unwrap(),
            "--format",
            "json",
        ]);
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    };
    let r = agentops_async(base(&[]), Vec::new()).await;
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    let prereq: Vec<&Value> =
        v["findings"].as_array().unwrap().iter().filter(|f| f["check"] == "cluster-prereq").collect();
    let summary: Vec<(String, String, String)> = prereq
        .iter()
        .map(|f| {
            (
                f["env"].as_str().unwrap().to_string(),
                f["app"].as_str().unwrap_or("").to_string(),
                f["file"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            ("prod-central".into(), "grafana".into(), "apps/grafana/base/servicemonitor.yaml".into()),
            ("prod-central".into(), "redis".into(), "apps/redis/base/servicemonitor.yaml".into()),
            // the class is set by the overlay's JSON6902 patch: the finding points there
            ("prod-east".into(), "redis".into(), "apps/redis/overlays/prod-east/storage.yaml".into()),
        ]
    );
    assert!(prereq.iter().all(|f| f["env"] == "prod-east" || f["env"] == "prod-central"), "{prereq:#?}");
    let sc = prereq.iter().find(|f| f["env"] == "prod-east").unwrap();
    assert!(sc["message"].as_str().unwrap().contains("StorageClass \"gp3-encrypted\" does not exist"), "{sc}");
    assert!(sc["line"].is_u64());
    assert_eq!(v["summary"]["clusters_checked"], json!(["dev", "staging", "prod-west", "prod-east", "prod-central"]));
    assert!(v["summary"].get("clusters_unreachable").is_none(), "{}", v["summary"]);

    // one cluster down: reported as such, the others still checked
    let mut broken = std::fs::read_to_string(kc.path()).unwrap();
    let dev_url = fleet.get("dev").unwrap().https_url();
    assert!(broken.contains(&dev_url));
    broken = broken.replace(&dev_url, "https://127.0.0.1:9");
    let kc2 = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(kc2.path(), broken).unwrap();
    let mut a = base(&[]);
    let i = a.iter().position(|x| x == kc.path().to_str().unwrap()).unwrap();
    a[i] = kc2.path().to_str().unwrap().to_string();
    let r = agentops_async(a.clone(), Vec::new()).await;
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    let f = v["findings"].as_array().unwrap();
    assert!(
        f.iter().any(|x| x["check"] == "cluster-prereq"
            && x["env"] == "dev"
            && x["message"].as_str().unwrap().contains("could not be checked")),
        "{f:#?}"
    );
    assert!(f.iter().any(|x| x["check"] == "cluster-prereq" && x["env"] == "prod-east"));
    assert_eq!(v["summary"]["clusters_unreachable"], json!(["dev"]));
    // as text: which clusters were checked, and which not reached
    let text: Vec<String> = a.iter().filter(|x| *x != "--format" && *x != "json").cloned().collect();
    let r = agentops_async(text, Vec::new()).await;
    assert!(
        r.stdout.contains("Clusters: 4 of 5 checked for the StorageClasses, CRDs and IngressClasses the overlays need (dev, staging, prod-west, prod-east, prod-central); not reached: dev."),
        "{}",
        r.stdout
    );
    assert!(!r.stdout.contains("skipped (offline)"), "{}", r.stdout);
    // no kubeconfig at all: one usage-style error, lower case like every other
    let r = agentops_async(
        args(&["validate", "--repo", repo.to_str().unwrap(), "--clusters", "--kubeconfig", "/nonexistent/kubeconfig"]),
        Vec::new(),
    )
    .await;
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.starts_with("error: ") && !r.stderr.contains("Error:"), "{}", r.stderr);
    fleet.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cluster_tools_query_every_environment() {
    let (_tmp, dirs) = fleet_dirs(|env, d| {
        if env == "dev" {
            std::fs::write(
                d.join("secret.yaml"),
                "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\n  namespace: auth\n  labels: {app: auth}\ntype: Opaque\ndata:\n  password: Y2x1c3Rlci1jYW5hcnktOTk4MQ==\n",
            )
            .unwrap();
        }
    });
    let (fleet, kc) = start(&dirs, MockOptions::default()).await;
    let repo = platform();
    let call = |tool: &str, a: &str| {
        args(&[
            "tools",
            "call",
            tool,
            "--args",
            a,
            "--repo",
            repo.to_str().unwrap(),
            "--kubeconfig",
            kc.path().to_str().unwrap(),
        ])
    };

    let r = agentops_async(call("cluster_prereqs", "{}"), Vec::new()).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    let envs: Vec<&str> = v["clusters"].as_array().unwrap().iter().map(|c| c["env"].as_str().unwrap()).collect();
    assert_eq!(envs, vec!["dev", "staging", "prod-west", "prod-east", "prod-central"]);
    let dev = &v["clusters"][0]["facts"];
    assert_eq!(dev["storage_classes"], json!([{"name": "standard", "default": true}]));
    assert!(dev["crds"].as_array().unwrap().iter().any(|c| c["kind"] == "ServiceMonitor"));

    let r = agentops_async(call("cluster_query", r#"{"env": ["dev", "staging"], "kind": "sc"}"#), Vec::new()).await;
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["clusters"][1]["objects"][0]["metadata"]["name"], "gp3");
    // managedFields (most of an object's size) are left out unless asked for
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings", "namespace": "default"}, "data": {"a": "1"}});
    fleet.get("staging").unwrap().store().apply(&cm, "kubectl-client-side-apply").unwrap();
    let query = r#"{"env": ["staging"], "kind": "cm", "namespace": "default", "name": "settings"}"#;
    let r = agentops_async(call("cluster_query", query), Vec::new()).await;
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["clusters"][0]["objects"][0]["data"]["a"], "1", "{}", r.stdout);
    assert!(v["clusters"][0]["objects"][0]["metadata"].get("managedFields").is_none(), "{}", r.stdout);
    let query = r#"{"env": ["staging"], "kind": "cm", "namespace": "default", "name": "settings", "show_managed_fields": true}"#;
    let r = agentops_async(call("cluster_query", query), Vec::new()).await;
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(
        v["clusters"][0]["objects"][0]["metadata"]["managedFields"][0]["manager"], "kubectl-client-side-apply",
        "{}",
        r.stdout
    );

    let r = agentops_async(
        call(
            "cluster_query",
            r#"{"env": ["dev"], "kind": "secrets", "namespace": "auth", "label_selector": "app=auth"}"#,
        ),
        Vec::new(),
    )
    .await;
    assert!(
        !r.stdout.contains("Y2x1c3Rlci1jYW5hcnktOTk4MQ==") && !r.stdout.contains("cluster-canary-9981"),
        "{}",
        r.stdout
    );
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["clusters"][0]["objects"][0]["data"]["password"], "<redacted>");

    let r = agentops_async(call("cluster_query", r#"{"env": ["dev"], "kind": "Frobnicator"}"#), Vec::new()).await;
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    assert!(v["clusters"][0]["error"].as_str().unwrap().contains("Frobnicator"));
    fleet.shutdown().await;
}

/// A git repo made from the example platform, for the simulated Argo CD.
fn platform_git() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&platform(), dir.path());
    git_init(dir.path());
    dir
}

/// Requests a sync the way `argocd app sync --core` does: a merge patch of `operation`.
fn request_sync(store: &agentops::mock::Store, revision: &str) {
    let patch = json!({"operation": {"sync": {"revision": revision}, "initiatedBy": {"username": "test"}}});
    store
        .merge_patch("argoproj.io/v1alpha1", "Application", Some("argocd"), "auth-service-prod-west", &patch, "argocd")
        .unwrap();
}

fn error_ratio(kc: &Path, repo: &Path) -> f64 {
    let r = agentops(&[
        "tools",
        "call",
        "metrics_query",
        "--args",
        r#"{"env": "prod-west", "query": "http_error_ratio{app=\"auth-service\"}"}"#,
        "--repo",
        repo.to_str().unwrap(),
        "--kubeconfig",
        kc.to_str().unwrap(),
    ]);
    let v: Value = serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("{e}: {} {}", r.stdout, r.stderr));
    assert_eq!(v["result"]["series"][0]["metric"]["app"], "auth-service", "{v}");
    v["result"]["series"][0]["values"][0][1].as_f64().unwrap()
}

fn app_status(kc: &Path, repo: &Path) -> Value {
    let r = agentops(&[
        "tools",
        "call",
        "argocd_app_status",
        "--args",
        r#"{"env": "prod-west", "name": "auth-service-prod-west"}"#,
        "--repo",
        repo.to_str().unwrap(),
        "--kubeconfig",
        kc.to_str().unwrap(),
    ]);
    serde_json::from_str::<Value>(&r.stdout).unwrap_or_else(|e| panic!("{e}: {} {}", r.stdout, r.stderr))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn argo_sync_deploys_and_metrics_follow_the_revision() {
    let repo = platform_git();
    let good = git(repo.path(), &["rev-parse", "HEAD"]).trim().to_string();
    std::fs::write(repo.path().join("apps/auth-service/base/NOTES.md"), "a change\n").unwrap();
    git(repo.path(), &["add", "-A"]);
    git(repo.path(), &["commit", "-q", "-m", "bad change"]);
    let bad = git(repo.path(), &["rev-parse", "HEAD"]).trim().to_string();
    // the simulated series: 87% errors while the bad revision is deployed
    let (_tmp, dirs) = fleet_dirs(|env, d| {
        if env == "prod-west" {
            let p = d.join("prometheus.yaml");
            let s = std::fs::read_to_string(&p)
                .unwrap()
                .replace("      default: 0.001", &format!("      default: 0.001\n      {}: 0.87", &bad[..7]));
            std::fs::write(p, s).unwrap();
        }
    });
    let opts = MockOptions { argocd_repo: Some(repo.path().to_path_buf()), ..MockOptions::default() };
    let (fleet, kc) = start(&dirs, opts).await;
    let west = fleet.get("prod-west").unwrap();
    let get_app = || west.store().get("argoproj.io/v1alpha1", "Application", Some("argocd"), "auth-service-prod-west");

    // the Application as the repo has it, with a sync requested the way `argocd --core` does
    let app_text = std::fs::read_to_string(repo.path().join("argocd/prod-west/auth-service.yaml")).unwrap();
    let mut app: Value = agentops::config::yaml::parse_values(&app_text).unwrap().remove(0);
    app["operation"] = json!({"sync": {"revision": good}, "initiatedBy": {"username": "test"}});
    west.store().apply(&app, "argocd-cli").unwrap();
    wait_for("the first sync", || {
        get_app().is_some_and(|a| a.pointer("/status/operationState/phase") == Some(&json!("Succeeded")))
    })
    .await;
    // as in Argo CD, a one-step sync succeeds once applied; health follows the rollout
    wait_for("the rollout", || {
        get_app().is_some_and(|a| a.pointer("/status/health/status") == Some(&json!("Healthy")))
    })
    .await;
    let dep = west.store().get("apps/v1", "Deployment", Some("auth"), "auth-service").expect("deployed to prod-west");
    assert_eq!(dep["metadata"]["labels"]["app.kubernetes.io/instance"], "auth-service-prod-west");
    assert!(dep["metadata"]["managedFields"].as_array().unwrap().iter().any(|m| m["manager"] == "argocd-controller"));
    assert!(
        fleet.get("dev").unwrap().store().get("apps/v1", "Deployment", Some("auth"), "auth-service").is_none(),
        "only the destination cluster"
    );

    let (k, r) = (kc.path().to_path_buf(), repo.path().to_path_buf());
    let s = tokio::task::spawn_blocking(move || app_status(&k, &r)).await.unwrap();
    assert_eq!(s["sync"]["status"], "Synced");
    assert_eq!(s["sync"]["revision"], good.as_str());
    assert_eq!(s["health"]["status"], "Healthy");
    assert_eq!(s["history"][0]["revision"], good.as_str());
    assert!(s["operation"].is_null(), "operation cleared");
    assert_eq!(s["auto_sync"], false);
    let (k, r) = (kc.path().to_path_buf(), repo.path().to_path_buf());
    assert_eq!(tokio::task::spawn_blocking(move || error_ratio(&k, &r)).await.unwrap(), 0.001);

    // deploy the bad revision: the error ratio follows it
    request_sync(west.store(), &bad);
    wait_for("the second sync", || {
        get_app().is_some_and(|a| a.pointer("/status/history/1/revision") == Some(&json!(bad)))
    })
    .await;
    let (k, r) = (kc.path().to_path_buf(), repo.path().to_path_buf());
    assert_eq!(tokio::task::spawn_blocking(move || error_ratio(&k, &r)).await.unwrap(), 0.87);

    // a sync of a path that does not exist fails loudly and keeps the app's history
    request_sync(west.store(), "no-such-branch");
    wait_for("the failed sync", || {
        get_app().is_some_and(|a| a.pointer("/status/operationState/phase") == Some(&json!("Error")))
    })
    .await;
    let a = get_app().unwrap();
    assert!(a.pointer("/status/operationState/message").unwrap().as_str().unwrap().contains("no-such-branch"));
    assert_eq!(a.pointer("/status/history").unwrap().as_array().unwrap().len(), 2);
    fleet.shutdown().await;
}

/// A real Prometheus (Debian package, installed by scripts/setup-tools) scrapes the series a
/// mock cluster exposes on /metrics, and agentops' metrics client queries it over HTTP.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_real_prometheus_scrapes_the_mock() {
    use agentops::cluster::metrics::{Endpoint, query};
    let (_tmp, dirs) = fleet_dirs(|_, _| {});
    let (fleet, _kc) = start(&dirs[..1], MockOptions::default()).await;
    let target = fleet.get("dev").unwrap().url().trim_start_matches("http://").to_string();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let work = tempfile::tempdir().unwrap();
    let config = work.path().join("prometheus.yml");
    std::fs::write(&config, format!("global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: mock\n    metrics_path: /metrics\n    static_configs:\n      - targets: ['{target}']\n")).unwrap();
    let mut prom = tokio::process::Command::new("prometheus")
        .arg(format!("--config.file={}", config.display()))
        .arg(format!("--storage.tsdb.path={}", work.path().join("data").display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("prometheus is installed by scripts/setup-tools (Debian package prometheus)");
    let ep = Endpoint::Url(format!("http://127.0.0.1:{port}"));
    let mut got = None;
    for _ in 0..150 {
        if let Ok(r) = query(&ep, "http_error_ratio{app=\"payments\"}", None, None).await
            && let Some(v) = r.first_value()
        {
            got = Some((v, r.series[0].metric.clone()));
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = prom.kill().await;
    let (v, metric) = got.expect("Prometheus scraped the mock within 15 s");
    assert_eq!(v, 0.002);
    assert_eq!(metric["job"], "mock");
    assert_eq!(metric["env"], "dev");
    fleet.shutdown().await;
}
