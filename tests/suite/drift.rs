//! `agentops drift` against mock clusters: the live side deployed by the simulated Argo CD,
//! then changed by hand with the real kubectl, so managedFields and the audit log are genuine.

use std::path::{Path, PathBuf};
use std::time::Duration;

use agentops::mock::{MockFleet, MockOptions};
use serde_json::{Value, json};

use super::common::*;

struct World {
    repo: tempfile::TempDir,
    work: tempfile::TempDir,
    fleet: MockFleet,
}

impl World {
    fn kubeconfig(&self) -> PathBuf {
        self.work.path().join("kubeconfig")
    }
    fn audit(&self) -> PathBuf {
        self.work.path().join("audit.jsonl")
    }

    async fn kubectl(&self, args: &[&str], editor: Option<&Path>) -> String {
        let env: Vec<(&str, &std::ffi::OsStr)> = editor.map(|e| ("KUBE_EDITOR", e.as_os_str())).into_iter().collect();
        let r = kubectl(&self.kubeconfig(), self.work.path(), args, &env).await;
        assert_eq!(r.code, 0, "kubectl {args:?}: {}", r.stderr);
        r.stdout
    }

    /// `agentops FLAGS drift --repo .. --kubeconfig .. --no-cache EXTRA` with `vars` set.
    async fn run_drift(&self, flags: &[&str], extra: &[&str], vars: &[(&str, &str)]) -> Run {
        let (repo, kc) = (self.repo.path().to_str().unwrap(), self.kubeconfig());
        let mut args: Vec<String> = flags.iter().map(|s| s.to_string()).collect();
        args.extend(["drift", "--repo", repo, "--kubeconfig", kc.to_str().unwrap(), "--no-cache"].map(String::from));
        args.extend(extra.iter().map(|s| s.to_string()));
        agentops_async(args, vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()).await
    }

    async fn drift(&self, extra: &[&str]) -> (i32, Value) {
        let mut args = vec!["--format", "json"];
        args.extend(extra);
        let r = self.run_drift(&[], &args, &[]).await;
        let v = serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("{e}: {}\n{}", r.stdout, r.stderr));
        (r.code, v)
    }
}

/// Starts the example's five clusters with the simulated Argo CD, and syncs grafana in
/// prod-west and prod-east.
async fn world() -> World {
    let repo = platform_repo(|_| ());
    let work = tempfile::tempdir().unwrap();
    let dirs: Vec<(String, PathBuf)> = ["dev", "staging", "prod-west", "prod-east", "prod-central"]
        .iter()
        .map(|e| (e.to_string(), platform().join("clusters").join(e)))
        .collect();
    let opts = MockOptions {
        argocd_repo: Some(repo.path().to_path_buf()),
        audit_log: Some(work.path().join("audit.jsonl")),
        ..MockOptions::default()
    };
    let fleet = MockFleet::start(&dirs, &opts).await.unwrap();
    fleet.write_kubeconfig(&work.path().join("kubeconfig")).unwrap();
    for env in ["prod-west", "prod-east"] {
        let text = std::fs::read_to_string(repo.path().join(format!("argocd/{env}/grafana.yaml"))).unwrap();
        let mut app: Value = agentops::config::yaml::parse_values(&text).unwrap().remove(0);
        app["operation"] = json!({"sync": {"revision": "HEAD"}});
        let store = fleet.get(env).unwrap().store().clone();
        store.apply(&app, "argocd-cli").unwrap();
        // up to 60 s: the simulated Argo CD renders with kustomize on the suite's shared cores
        for _ in 0..1200 {
            let done = store
                .get("argoproj.io/v1alpha1", "Application", Some("argocd"), &format!("grafana-{env}"))
                .is_some_and(|a| a.pointer("/status/operationState/phase") == Some(&json!("Succeeded")));
            if done {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    World { repo, work, fleet }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hand_added_sidecar_is_reported_attributed_and_explained() {
    let w = world().await;
    let (code, v) = w.drift(&["--env", "prod-west", "--app", "grafana"]).await;
    assert_eq!(code, 0, "freshly synced: no drift: {v:#}");
    assert_eq!(v["summary"]["objects"], 9);

    // someone adds an oauth2-proxy sidecar with `kubectl edit`
    let editor = w.work.path().join("editor.py");
    std::fs::write(
        &editor,
        "#!/usr/bin/env python3\nimport json, sys\np = sys.argv[-1]\nd = json.load(open(p))\nspec = d['spec']['template']['spec']\nspec['containers'].append({'name': 'oauth2-proxy', 'image': 'quay.io/oauth2-proxy/oauth2-proxy:v7.4.0'})\nspec.setdefault('volumes', []).append({'name': 'oauth2-proxy-config', 'configMap': {'name': 'oauth2-proxy'}})\njson.dump(d, open(p, 'w'))\n",
    )
    .unwrap();
    std::fs::set_permissions(&editor, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    w.kubectl(
        &["--context", "prod-west", "-n", "monitoring", "edit", "deployment/grafana", "-o", "json"],
        Some(&editor),
    )
    .await;
    // and someone scales it by hand in prod-east
    w.kubectl(&["--context", "prod-east", "-n", "monitoring", "scale", "deployment/grafana", "--replicas=5"], None)
        .await;

    let audit = w.audit();
    let (code, v) = w.drift(&["--app", "grafana", "--audit-log", audit.to_str().unwrap()]).await;
    assert_eq!(code, 1, "{v:#}");
    let drifts = v["drifts"].as_array().unwrap();
    let west = drifts.iter().find(|d| d["env"] == "prod-west").expect("prod-west drift");
    assert_eq!(west["object"], "Deployment/monitoring/grafana");
    assert_eq!(west["status"], "drifted");
    let summaries: Vec<&str> =
        west["changes"].as_array().unwrap().iter().map(|c| c["summary"].as_str().unwrap()).collect();
    assert_eq!(
        summaries,
        vec![
            "+ container oauth2-proxy (image quay.io/oauth2-proxy/oauth2-proxy:v7.4.0)",
            "+ volume oauth2-proxy-config"
        ]
    );
    assert_eq!(west["changes"][0]["path"], "spec.template.spec.containers[name=oauth2-proxy]");
    let who = &west["attribution"][0];
    assert_eq!(who["manager"], "kubectl-edit");
    assert_eq!(who["user"], "admin");
    assert_eq!(who["source_ip"], "127.0.0.1");
    assert!(v.get("warnings").is_none(), "{v:#}");

    // the same from each environment's configured audit log; a missing one is a warning
    let config = w.repo.path().join(".agentops.yaml");
    let original = std::fs::read_to_string(&config).unwrap();
    let tuned = original
        .replace(
            "prod-west: { context: prod-west }",
            &format!("prod-west: {{ context: prod-west, audit_log: {} }}", audit.display()),
        )
        .replace(
            "prod-east: { context: prod-east }",
            "prod-east: { context: prod-east, audit_log: no-such-audit.jsonl }",
        );
    std::fs::write(&config, tuned).unwrap();
    let (code, v) = w.drift(&["--app", "grafana"]).await;
    std::fs::write(&config, original).unwrap();
    assert_eq!(code, 1, "{v:#}");
    let west = v["drifts"].as_array().unwrap().iter().find(|d| d["env"] == "prod-west").unwrap().clone();
    assert_eq!(west["attribution"][0]["user"], "admin", "{west:#}");
    let warnings = v["warnings"].as_array().unwrap();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    let warning = warnings[0].as_str().unwrap();
    assert!(
        warning.starts_with("prod-east: the audit log was not read") && warning.contains("no-such-audit.jsonl"),
        "{warning}"
    );
    let east = v["drifts"].as_array().unwrap().iter().find(|d| d["env"] == "prod-east").unwrap().clone();
    assert_eq!(east["attribution"][0]["manager"], "kubectl", "still attributed by field manager");
    assert!(west["last_sync"]["revision"].as_str().unwrap().len() == 40);
    assert!(west["recommendations"][1].as_str().unwrap().contains("drift capture --app grafana --env prod-west"));

    let east = drifts.iter().find(|d| d["env"] == "prod-east").expect("prod-east drift");
    assert_eq!(east["changes"][0]["summary"], "~ replicas 1 → 5", "{east:#}");
    assert_eq!(east["attribution"][0]["manager"], "kubectl");
    // only those two objects drifted; clusters without a synced grafana report it missing
    assert_eq!(drifts.iter().filter(|d| d["status"] == "drifted").count(), 2, "{drifts:#?}");
    assert!(drifts.iter().any(|d| d["env"] == "dev" && d["status"] == "missing"));

    // an acknowledged drift is reported as such, and expires; without approval nothing is written
    let cli = |args: Vec<String>| {
        tokio::task::spawn_blocking(move || {
            let a: Vec<&str> = args.iter().map(String::as_str).collect();
            agentops(&a)
        })
    };
    let base: Vec<String> =
        ["--repo", w.repo.path().to_str().unwrap(), "--kubeconfig", w.kubeconfig().to_str().unwrap(), "--no-cache"]
            .iter()
            .map(|s| s.to_string())
            .collect();
    let ack = |yes: bool| {
        let mut a: Vec<String> = [
            "drift",
            "acknowledge",
            "--app",
            "grafana",
            "--env",
            "prod-east",
            "--reason",
            "load test",
            "--expires",
            "2999-01-01",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        if yes {
            a.push("--yes".into());
        }
        a.extend(base.clone());
        a
    };
    let denied = cli(ack(false)).await.unwrap();
    assert_eq!(denied.code, 1, "no terminal, no --yes: denied\n{}", denied.stderr);
    let (_, v) = w.drift(&["--app", "grafana", "--env", "prod-east"]).await;
    assert_eq!(v["drifts"][0]["status"], "drifted", "a denied write changed nothing");
    // an impossible or past date, or a blank reason, is refused before anything is written
    for (flag, bad, says, form) in [
        ("--expires", "2026-13-45", "month 13 is not 1-12", "expected YYYY-MM-DD"),
        ("--expires", "2020-01-01", "is not in the future", "expected YYYY-MM-DD"),
        ("--reason", " ", "the reason is blank", "e.g."),
    ] {
        let mut a = ack(true);
        let i = a.iter().position(|x| x == flag).unwrap();
        a[i + 1] = bad.into();
        let r = cli(a).await.unwrap();
        assert_ne!(r.code, 0, "{flag} {bad:?}: {}", r.stdout);
        assert!(r.stderr.contains(says) && r.stderr.contains(form), "{flag} {bad:?}: {}", r.stderr);
    }
    let live = w
        .kubectl(&["--context", "prod-east", "-n", "monitoring", "get", "deployment/grafana", "-o", "json"], None)
        .await;
    assert!(!live.contains("drift.agentops.dev"), "nothing was written: {live}");
    let ok = cli(ack(true)).await.unwrap();
    assert_eq!(ok.code, 0, "{}\n{}", ok.stdout, ok.stderr);
    let journal = std::fs::read_to_string(w.repo.path().join(".agentops/journal.jsonl")).unwrap();
    assert!(
        journal.contains("\"tool\":\"drift_acknowledge\"")
            && journal.contains("approved (--yes)")
            && journal.contains("denied"),
        "{journal}"
    );
    let (_, v) = w.drift(&["--app", "grafana", "--env", "prod-east"]).await;
    assert_eq!(v["drifts"][0]["status"], "acknowledged", "{v:#}");
    assert!(v["drifts"][0]["note"].as_str().unwrap().contains("load test"));
    let live = w
        .kubectl(&["--context", "prod-east", "-n", "monitoring", "get", "deployment/grafana", "-o", "json"], None)
        .await;
    let live: Value = serde_json::from_str(&live).unwrap();
    let hash = live["metadata"]["annotations"]["drift.agentops.dev/changes-hash"].as_str().unwrap_or_default();
    assert_eq!(hash.len(), 16, "the acknowledged changes are recorded: {:#}", live["metadata"]["annotations"]);
    // the acknowledgement covers those changes only: a further change to the object is drift again
    w.kubectl(&["--context", "prod-east", "-n", "monitoring", "scale", "deployment/grafana", "--replicas=7"], None)
        .await;
    let (code, v) = w.drift(&["--app", "grafana", "--env", "prod-east"]).await;
    assert_eq!(code, 1, "{v:#}");
    assert_eq!(v["drifts"][0]["status"], "drifted", "{v:#}");
    assert_eq!(v["drifts"][0]["changes"][0]["summary"], "~ replicas 1 → 7", "{v:#}");
    assert_eq!(v["summary"]["drifted"], 1, "{v:#}");
    assert_eq!(v["summary"]["acknowledged"], 0, "{v:#}");
    let note = v["drifts"][0]["note"].as_str().unwrap();
    assert!(
        note.starts_with("acknowledged on ") && note.contains("for other changes") && note.contains("these differ"),
        "{note}"
    );
    // and back to what was acknowledged: covered again
    w.kubectl(&["--context", "prod-east", "-n", "monitoring", "scale", "deployment/grafana", "--replicas=5"], None)
        .await;
    let (code, v) = w.drift(&["--app", "grafana", "--env", "prod-east"]).await;
    assert_eq!((code, &v["drifts"][0]["status"]), (0, &json!("acknowledged")), "{v:#}");
    w.kubectl(
        &[
            "--context",
            "prod-east",
            "-n",
            "monitoring",
            "annotate",
            "--overwrite",
            "deployment/grafana",
            "drift.agentops.dev/expires=2020-01-01",
        ],
        None,
    )
    .await;
    let (code, v) = w.drift(&["--app", "grafana", "--env", "prod-east"]).await;
    assert_eq!(v["drifts"][0]["status"], "expired");
    assert_eq!(code, 1);

    // revert: Argo CD syncs the Application back to git, and the replicas drift is gone
    let mut revert: Vec<String> =
        ["drift", "revert", "--app", "grafana", "--env", "prod-east", "--yes"].iter().map(|s| s.to_string()).collect();
    revert.extend(base.clone());
    let r = cli(revert).await.unwrap();
    assert!(r.stdout.contains("grafana-prod-east in prod-east: Succeeded: "), "{}\n{}", r.stdout, r.stderr);
    assert!(r.stdout.lines().count() <= 4, "a line, not the whole operation state: {}", r.stdout);
    assert!(r.stdout.contains("Verification: live equals the target render"), "{}", r.stdout);
    let (code, v) = w
        .drift(&[
            "--app",
            "grafana",
            "--env",
            "prod-east",
            "--metrics-file",
            w.work.path().join("drift.prom").to_str().unwrap(),
        ])
        .await;
    assert_eq!(code, 0, "{v:#}");
    let prom = std::fs::read_to_string(w.work.path().join("drift.prom")).unwrap();
    assert!(
        prom.contains("agentops_drift_cluster_up{env=\"prod-east\"} 1")
            && prom.contains("agentops_drift_last_run_timestamp_seconds"),
        "{prom}"
    );

    // text output: a few lines per object
    let r = tokio::task::spawn_blocking({
        let (repo, kc) = (w.repo.path().to_path_buf(), w.kubeconfig());
        move || {
            agentops(&[
                "drift",
                "--repo",
                repo.to_str().unwrap(),
                "--kubeconfig",
                kc.to_str().unwrap(),
                "--env",
                "prod-west",
                "--app",
                "grafana",
                "--no-cache",
            ])
        }
    })
    .await
    .unwrap();
    assert!(r.stdout.contains("prod-west Deployment/monitoring/grafana [drifted]"), "{}", r.stdout);
    assert!(r.stdout.contains("modified: kubectl-edit (Update) at or before"), "{}", r.stdout);
    // the same through the `diff` tool of the catalog
    let mut a: Vec<String> = ["tools", "call", "diff", "--args", r#"{"app": "grafana", "env": "prod-west"}"#]
        .iter()
        .map(|s| s.to_string())
        .collect();
    a.extend(base.clone());
    let r = cli(a).await.unwrap();
    let v: Value = serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("{e}: {} {}", r.stdout, r.stderr));
    assert_eq!(
        v["drifts"][0]["changes"][0]["summary"],
        "+ container oauth2-proxy (image quay.io/oauth2-proxy/oauth2-proxy:v7.4.0)"
    );

    // capture: the sidecar has no limits, so the captured overlay fails validate: refused,
    // the captured file named, nothing written, the checkout where it was
    let before = git(w.repo.path(), &["rev-parse", "HEAD"]);
    let captured = "apps/grafana/overlays/prod-west/drift-deployment-grafana.yaml";
    let capture = |extra: &[&str]| {
        let mut a: Vec<String> = ["drift", "capture", "--app", "grafana", "--env", "prod-west", "--yes"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        a.extend(extra.iter().map(|s| s.to_string()));
        a.extend(base.clone());
        cli(a)
    };
    let r = capture(&[]).await.unwrap();
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains(&format!("not captured: with the captured patch {captured}, validate fails: "))
            && r.stderr.contains("resource-limits: container \"oauth2-proxy\" has no cpu limit"),
        "{}",
        r.stderr
    );
    assert_eq!(git(w.repo.path(), &["rev-parse", "HEAD"]), before);
    assert_eq!(git(w.repo.path(), &["status", "--porcelain"]), "", "nothing written");
    // --no-commit keeps the patch to fix by hand and lists the errors at the captured file
    let r = capture(&["--no-commit"]).await.unwrap();
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("not committed (--no-commit)"), "{}", r.stdout);
    assert!(r.stdout.contains(&format!("error: {captured}: resource-limits: ")), "{}", r.stdout);
    git(w.repo.path(), &["checkout", "--", "."]);
    git(w.repo.path(), &["clean", "-fdq"]);

    // with limits on the sidecar it validates; --stay commits on the new branch only
    let limits = w.work.path().join("limits.py");
    std::fs::write(
        &limits,
        "#!/usr/bin/env python3\nimport json, sys\np = sys.argv[-1]\nd = json.load(open(p))\nfor c in d['spec']['template']['spec']['containers']:\n    if c['name'] == 'oauth2-proxy':\n        c['resources'] = {'requests': {'cpu': '10m', 'memory': '32Mi'}, 'limits': {'cpu': '100m', 'memory': '64Mi'}}\n        c['securityContext'] = {'allowPrivilegeEscalation': False, 'readOnlyRootFilesystem': True}\n        c['readinessProbe'] = {'httpGet': {'path': '/ping', 'port': 4180}}\n        c['ports'] = [{'containerPort': 4180, 'protocol': 'TCP'}]\njson.dump(d, open(p, 'w'))\n",
    )
    .unwrap();
    std::fs::set_permissions(&limits, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    w.kubectl(
        &["--context", "prod-west", "-n", "monitoring", "edit", "deployment/grafana", "-o", "json"],
        Some(&limits),
    )
    .await;
    let current = git(w.repo.path(), &["rev-parse", "--abbrev-ref", "HEAD"]);
    let r = capture(&["--stay"]).await.unwrap();
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert_eq!(git(w.repo.path(), &["rev-parse", "HEAD"]), before, "stayed");
    assert_eq!(git(w.repo.path(), &["rev-parse", "--abbrev-ref", "HEAD"]), current);
    assert_eq!(git(w.repo.path(), &["status", "--porcelain"]), "", "the working tree as it was");
    let branches =
        git(w.repo.path(), &["branch", "--list", "drift/capture-grafana-prod-west-*", "--format=%(refname:short)"]);
    let branch = branches.trim().to_string();
    assert!(branch.starts_with("drift/capture-grafana-prod-west-"), "{branches}");
    assert!(
        r.stdout.contains(&format!(
            "on the new branch {branch}; stayed on the current branch (git switch {branch} to see it)"
        )),
        "{}",
        r.stdout
    );
    let files = git(w.repo.path(), &["diff", "--name-only", before.trim(), &branch]);
    assert_eq!(files.lines().collect::<Vec<_>>(), vec![captured, "apps/grafana/overlays/prod-west/kustomization.yaml"]);
    git(w.repo.path(), &["switch", "-q", &branch]);
    let patch = std::fs::read_to_string(w.repo.path().join(captured)).unwrap();
    assert!(patch.contains("oauth2-proxy") && patch.starts_with("# Captured from the live cluster"), "{patch}");
    let (_, v) = w.drift(&["--app", "grafana", "--env", "prod-west"]).await;
    assert_eq!(v["summary"]["drifted"], 0, "git now matches the cluster: {v:#}");
    w.fleet.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_unreachable_cluster_is_reported_and_the_others_still_checked() {
    let w = world().await;
    let kc = std::fs::read_to_string(w.kubeconfig())
        .unwrap()
        .replace(&w.fleet.get("prod-east").unwrap().https_url(), "https://127.0.0.1:9");
    std::fs::write(w.kubeconfig(), kc).unwrap();
    let (code, v) = w.drift(&["--app", "grafana"]).await;
    assert_eq!(code, 2, "{v:#}");
    let east = v["clusters"].as_array().unwrap().iter().find(|c| c["env"] == "prod-east").unwrap();
    assert_eq!(east["status"], "error");
    let west = v["clusters"].as_array().unwrap().iter().find(|c| c["env"] == "prod-west").unwrap();
    assert_eq!(west["status"], "ok");

    // an overlay that does not build leaves out its Application only; the rest are checked
    let k = w.repo.path().join("apps/grafana/overlays/dev/kustomization.yaml");
    let text = std::fs::read_to_string(&k).unwrap().replace("resources:\n", "resources:\n  - missing.yaml\n");
    std::fs::write(&k, text).unwrap();
    let (code, v) = w.drift(&["--env", "dev"]).await;
    assert_eq!(code, 2, "not every Application could be checked: {v:#}");
    assert_eq!(v["summary"]["applications_unchecked"], 1, "{v:#}");
    assert!(v["summary"]["applications"].as_u64().unwrap() >= 10, "the other apps of dev are checked: {v:#}");
    let warning = v["warnings"][0].as_str().unwrap();
    assert!(
        warning.starts_with("dev: apps/grafana/overlays/dev does not build (missing-file at ")
            && warning.contains("Application grafana-dev was not checked"),
        "{warning}"
    );
    w.fleet.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn without_any_checked_cluster_the_verdict_is_unknown_not_no_drift() {
    let w = world().await;
    let both = ["--app", "grafana", "--env", "prod-west", "--env", "prod-east"];
    let unreachable = |w: &World, env: &str| {
        let kc = std::fs::read_to_string(w.kubeconfig())
            .unwrap()
            .replace(&w.fleet.get(env).unwrap().https_url(), "https://127.0.0.1:9");
        std::fs::write(w.kubeconfig(), kc).unwrap();
    };
    let r = w.run_drift(&[], &both, &[]).await;
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("NO DRIFT: 0 drifted") && r.stdout.contains("0 of 2 clusters"), "{}", r.stdout);

    // one cluster down, nothing drifted in the other: no drift claimed for the checked one only
    unreachable(&w, "prod-east");
    let r = w.run_drift(&[], &both, &[]).await;
    assert_eq!(r.code, 2, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("cluster prod-east (context prod-east) could not be checked"), "{}", r.stdout);
    let verdict = r.stdout.lines().last().unwrap();
    assert!(verdict.starts_with("NO DRIFT in the 1 checked cluster: 0 drifted"), "{verdict}");
    assert!(verdict.ends_with("1 of 2 clusters could not be checked."), "{verdict}");

    // both down: nothing is known
    unreachable(&w, "prod-west");
    let r = w.run_drift(&[], &both, &[]).await;
    assert_eq!(r.code, 2, "{}\n{}", r.stdout, r.stderr);
    let verdict = r.stdout.lines().last().unwrap();
    assert!(verdict.starts_with("UNKNOWN (no cluster could be checked): "), "{verdict}");
    assert!(verdict.ends_with("2 of 2 clusters could not be checked."), "{verdict}");
    assert!(!r.stdout.contains("NO DRIFT"), "{}", r.stdout);
    let (code, v) = w.drift(&["--app", "grafana", "--env", "prod-west", "--env", "prod-east"]).await;
    assert_eq!(code, 2, "{v:#}");
    assert_eq!(v["summary"]["clusters_failed"], 2, "{v:#}");
    w.fleet.shutdown().await;
}

/// The scheduled in-cluster drift check passes agentops' own validation, and its role can
/// only read (and not Secrets).
#[test]
fn deploy_manifests_validate_and_only_read() {
    let deploy = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy");
    let r = agentops(&["validate", "--repo", deploy.to_str().unwrap(), "--no-cache", "--format", "json"]);
    assert_eq!(r.code, 0, "{}", r.stdout);
    let r = agentops(&[
        "tools",
        "call",
        "kustomize_build",
        "--args",
        r#"{"overlay": "overlays/example"}"#,
        "--repo",
        deploy.to_str().unwrap(),
        "--no-cache",
    ]);
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    let role = v["objects"].as_array().unwrap().iter().find(|o| o["kind"] == "ClusterRole").unwrap();
    for rule in role["rules"].as_array().unwrap() {
        let verbs: Vec<&str> = rule["verbs"].as_array().unwrap().iter().map(|x| x.as_str().unwrap()).collect();
        assert!(verbs.iter().all(|v| ["get", "list", "watch"].contains(v)), "{rule}");
        assert!(!rule["resources"].as_array().unwrap().iter().any(|x| x == "secrets"), "{rule}");
    }
    let job = v["objects"].as_array().unwrap().iter().find(|o| o["kind"] == "CronJob").unwrap();
    assert_eq!(job["spec"]["schedule"], "30 7 * * 1-5");
}

/// Syncs every Application of one environment with the simulated Argo CD and waits for each.
async fn sync_all(w: &World, env: &str) {
    let store = w.fleet.get(env).unwrap().store().clone();
    let dir = w.repo.path().join("argocd").join(env);
    let mut names = Vec::new();
    for e in std::fs::read_dir(&dir).unwrap() {
        let text = std::fs::read_to_string(e.unwrap().path()).unwrap();
        for mut app in agentops::config::yaml::parse_values(&text).unwrap() {
            app["operation"] = json!({"sync": {"revision": "HEAD"}});
            names.push(app["metadata"]["name"].as_str().unwrap().to_string());
            store.apply(&app, "argocd-cli").unwrap();
        }
    }
    // up to 180 s: twelve renders with kustomize on the suite's shared cores
    for _ in 0..3600 {
        let done = names.iter().all(|n| {
            store
                .get("argoproj.io/v1alpha1", "Application", Some("argocd"), n)
                .is_some_and(|a| a.pointer("/status/operationState/phase") == Some(&json!("Succeeded")))
        });
        if done {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{env}: not every Application synced");
}

/// The objects of one drift report by object, with their change summaries and managers.
fn drifted(v: &Value) -> Vec<(String, Vec<String>, Vec<String>)> {
    let mut out: Vec<(String, Vec<String>, Vec<String>)> = v["drifts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["status"] == "drifted")
        .map(|d| {
            let s = |list: &str, field: &str| -> Vec<String> {
                let mut v: Vec<String> = d[list]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|c| c[field].as_str().unwrap_or_default().to_string())
                    .collect();
                v.sort();
                v
            };
            (d["object"].as_str().unwrap().to_string(), s("changes", "summary"), s("attribution", "manager"))
        })
        .collect();
    out.sort();
    out
}

/// The example fleet as a cluster holds it after Argo CD synced it (every default filled in by
/// the API server) is not drift; then each kind of hand edit, made with the real kubectl, is
/// reported once, attributed to its writer, and the HPA controller's scaling is not.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_kind_of_hand_edit_on_a_synced_fleet_is_reported_once() {
    let w = world().await;
    sync_all(&w, "prod-west").await;
    let (code, v) = w.drift(&["--env", "prod-west", "--show-suppressed"]).await;
    assert_eq!(code, 0, "freshly synced fleet: no drift\n{v:#}");
    assert_eq!(v["summary"]["drifted"], 0, "{v:#}");
    assert_eq!(v["summary"]["missing"], 0, "{v:#}");
    assert_eq!(v["summary"]["applications"], 12);
    // what was not drift is counted and listed: the Services' allocated IPs at least
    let suppressed = v["suppressed"].as_array().unwrap();
    assert!(
        suppressed.iter().any(|s| s["cause"] == "server-allocated" && s["path"] == "spec.clusterIP"),
        "{suppressed:#?}"
    );
    assert_eq!(
        v["summary"]["suppressed"].as_object().unwrap().values().map(|n| n.as_u64().unwrap()).sum::<u64>(),
        suppressed.len() as u64
    );

    let k = |args: &[&str]| -> Vec<String> {
        ["--context", "prod-west"].iter().chain(args).map(|s| s.to_string()).collect()
    };
    let w = &w;
    let kubectl = |args: Vec<String>| async move {
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        w.kubectl(&a, None).await
    };
    kubectl(k(&["-n", "shop", "set", "image", "deployment/inventory", "inventory=ghcr.io/acme/inventory:9.9.9"])).await;
    kubectl(k(&[
        "-n",
        "shop",
        "patch",
        "deployment/orders",
        "--type",
        "merge",
        "-p",
        r#"{"spec":{"strategy":{"type":"Recreate","rollingUpdate":null}}}"#,
    ]))
    .await;
    kubectl(k(&["-n", "payments", "scale", "deployment/payments", "--replicas=5"])).await;
    // the HPA controller scales catalog through the scale subresource as kube-controller-manager
    kubectl(k(&[
        "-n",
        "shop",
        "patch",
        "deployment/catalog",
        "--subresource=scale",
        "--type",
        "merge",
        "-p",
        r#"{"spec":{"replicas":7}}"#,
        "--field-manager=kube-controller-manager",
    ]))
    .await;
    kubectl(k(&["-n", "edge", "patch", "service/api-gateway", "-p", r#"{"spec":{"type":"NodePort"}}"#])).await;
    kubectl(k(&["-n", "notifications", "set", "env", "deployment/notifications", "FEATURE_X=on"])).await;
    let secret = kubectl(k(&["-n", "payments", "get", "secret", "-o", "name"])).await;
    let secret = secret.lines().find(|l| l.contains("payments")).expect("the payments Secret").to_string();
    kubectl(k(&["-n", "payments", "patch", &secret, "-p", r#"{"data":{"api-key":"aGFuZC1lZGl0ZWQ="}}"#])).await;

    let audit = w.audit();
    let (code, v) = w.drift(&["--env", "prod-west", "--audit-log", audit.to_str().unwrap()]).await;
    assert_eq!(code, 1, "{v:#}");
    let found = drifted(&v);
    let text = format!("{found:#?}");
    let secret_object = format!("Secret/payments/{}", secret.trim_start_matches("secret/"));
    let want: Vec<(String, Vec<String>, Vec<String>)> = vec![
        ("Deployment/notifications/notifications".into(), vec!["+ env FEATURE_X".into()], vec!["kubectl-set".into()]),
        ("Deployment/payments/payments".into(), vec!["~ replicas 3 → 5".into()], vec!["kubectl".into()]),
        (
            "Deployment/shop/inventory".into(),
            vec!["~ image of container inventory: ghcr.io/acme/inventory:0.19.3 → ghcr.io/acme/inventory:9.9.9".into()],
            vec!["kubectl-set".into()],
        ),
        (
            "Deployment/shop/orders".into(),
            vec!["- spec.strategy.rollingUpdate".into(), "~ spec.strategy.type: RollingUpdate → Recreate".into()],
            vec!["kubectl-patch".into()],
        ),
        (secret_object, vec!["~ secret key api-key changed".into()], vec!["kubectl-patch".into()]),
        (
            "Service/edge/api-gateway".into(),
            vec!["~ spec.type: ClusterIP → NodePort".into()],
            vec!["kubectl-patch".into()],
        ),
    ];
    assert_eq!(found, want, "{text}");
    assert!(!v.to_string().contains("aGFuZC1lZGl0ZWQ="), "a Secret value never reaches the report");
    // every attribution found its audit event
    for d in v["drifts"].as_array().unwrap().iter().filter(|d| d["status"] == "drifted") {
        assert_eq!(d["attribution"][0]["user"], "admin", "{d:#}");
    }
    // the HPA's scaling and the NodePort's allocations are counted, not reported
    let causes = v["summary"]["suppressed"].as_object().unwrap();
    assert!(causes["hpa"].as_u64().unwrap() >= 1, "{causes:?}");
}

/// `drift revert` after a hand-added sidecar: the merge sync keeps it (it was never in
/// last-applied), the check after the sync says so and fails, and offers `--replace`, which
/// (with a warning) removes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn revert_says_a_merge_sync_keeps_hand_additions_and_replace_removes_them() {
    let w = world().await;
    let editor = w.work.path().join("editor.py");
    std::fs::write(
        &editor,
        "#!/usr/bin/env python3\nimport json, sys\np = sys.argv[-1]\nd = json.load(open(p))\nspec = d['spec']['template']['spec']\nspec['containers'].append({'name': 'oauth2-proxy', 'image': 'quay.io/oauth2-proxy/oauth2-proxy:v7.4.0'})\njson.dump(d, open(p, 'w'))\n",
    )
    .unwrap();
    std::fs::set_permissions(&editor, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    w.kubectl(
        &["--context", "prod-west", "-n", "monitoring", "edit", "deployment/grafana", "-o", "json"],
        Some(&editor),
    )
    .await;
    let containers = |w: &World| -> Vec<String> {
        let d = w
            .fleet
            .get("prod-west")
            .unwrap()
            .store()
            .get("apps/v1", "Deployment", Some("monitoring"), "grafana")
            .unwrap();
        d["spec"]["template"]["spec"]["containers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap().to_string())
            .collect()
    };
    assert!(containers(&w).contains(&"oauth2-proxy".to_string()));
    let revert = |extra: &[&str]| {
        let mut a: Vec<String> = ["drift", "revert", "--app", "grafana", "--env", "prod-west", "--yes", "--no-cache"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        a.extend(extra.iter().map(|s| s.to_string()));
        a.extend(["--repo".into(), w.repo.path().to_str().unwrap().into()]);
        a.extend(["--kubeconfig".into(), w.kubeconfig().to_str().unwrap().into()]);
        tokio::task::spawn_blocking(move || {
            let a: Vec<&str> = a.iter().map(String::as_str).collect();
            agentops(&a)
        })
    };
    let r = revert(&[]).await.unwrap();
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains(
            "Verification FAILED: live differs from the target render in 1 object(s): Deployment/monitoring/grafana"
        ),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("keeps fields that were never in the object's last-applied configuration"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("agentops drift revert --app grafana --env prod-west --replace"), "{}", r.stdout);
    assert!(containers(&w).contains(&"oauth2-proxy".to_string()), "a merge sync keeps it, as Argo CD's does");

    let r = revert(&["--replace"]).await.unwrap();
    assert!(
        r.stderr.contains("warning: --replace makes Argo CD replace every object of grafana-prod-west whole"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("fields other controllers own"), "{}", r.stderr);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("Verification: live equals the target render"), "{}", r.stdout);
    assert_eq!(containers(&w), ["grafana"], "replaced whole: the hand-added sidecar is gone");
    let journal = std::fs::read_to_string(w.repo.path().join(".agentops/journal.jsonl")).unwrap();
    assert!(journal.contains("\"replace\":true"), "{journal}");
    w.fleet.shutdown().await;
}

/// `-v` logs each cluster call (context, method, path, status, latency) on stderr,
/// `RUST_LOG=agentops=debug` adds debug events (kustomize builds, tool calls),
/// `RUST_LOG=kube=debug` lets kube-rs' own spans through; stdout, the report, is the same
/// in every case, and without either nothing is logged.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn verbose_logs_cluster_calls_with_latency_on_stderr_only() {
    let w = world().await;
    let run = |flags: &'static [&'static str], env: &'static [(&'static str, &'static str)]| {
        w.run_drift(flags, &["--app", "grafana", "--env", "prod-west"], env)
    };
    let quiet = run(&[], &[]).await;
    assert_eq!(quiet.code, 0, "{}\n{}", quiet.stdout, quiet.stderr);
    assert_eq!(quiet.stderr, "", "nothing logged by default");
    let verdict = quiet.stdout.lines().last().unwrap().to_string();

    let verbose = run(&["-v"], &[]).await;
    assert_eq!(verbose.code, 0, "{}\n{}", verbose.stdout, verbose.stderr);
    assert_eq!(verbose.stdout.lines().last(), Some(verdict.as_str()), "stdout is the report, as without -v");
    let calls: Vec<&str> = verbose.stderr.lines().filter(|l| l.contains("cluster call")).collect();
    assert!(calls.len() >= 2, "discovery and the reads of the objects: {}", verbose.stderr);
    for line in &calls {
        assert!(line.contains(" INFO "), "{line}");
        assert!(line.contains("context=prod-west"), "{line}");
        assert!(line.contains("method=GET") && line.contains("path=/"), "{line}");
        assert!(line.contains("status=200") || line.contains("status=404"), "{line}");
        let ms = line.split("latency_ms=").nth(1).and_then(|r| r.split_whitespace().next());
        assert!(ms.is_some_and(|m| m.parse::<u64>().is_ok()), "latency in ms: {line}");
    }
    assert!(calls.iter().any(|l| l.contains("path=/apis/argoproj.io/")), "the Application is read: {}", verbose.stderr);
    assert!(!calls.iter().any(|l| l.contains("context=prod-east")), "only the cluster asked for: {}", verbose.stderr);
    assert!(!verbose.stderr.contains("DEBUG"), "-v is info: {}", verbose.stderr);

    let debug = run(&[], &[("RUST_LOG", "agentops=debug")]).await;
    assert_eq!(debug.code, 0, "{}\n{}", debug.stdout, debug.stderr);
    assert_eq!(debug.stdout.lines().last(), Some(verdict.as_str()));
    let builds: Vec<&str> = debug.stderr.lines().filter(|l| l.contains("kustomize build")).collect();
    assert!(!builds.is_empty(), "{}", debug.stderr);
    assert!(
        builds.iter().all(|l| l.contains("DEBUG") && l.contains("cache=miss") && l.contains("seconds=")),
        "--no-cache builds every overlay: {builds:#?}"
    );
    assert!(debug.stderr.contains("cluster call"), "debug includes info: {}", debug.stderr);

    let kube = run(&[], &[("RUST_LOG", "kube=debug")]).await;
    assert_eq!(kube.code, 0, "{}\n{}", kube.stdout, kube.stderr);
    assert!(kube.stderr.lines().any(|l| l.contains("kube_client") && l.contains("HTTP")), "{}", kube.stderr);
    assert!(!kube.stderr.contains("cluster call"), "agentops stays at warn: {}", kube.stderr);

    // an unreachable cluster: each retry names the cluster, the attempt, the error, the backoff
    let kc_text = std::fs::read_to_string(w.kubeconfig())
        .unwrap()
        .replace(&w.fleet.get("prod-west").unwrap().https_url(), "https://127.0.0.1:9");
    std::fs::write(w.kubeconfig(), kc_text).unwrap();
    let down = run(&["-v"], &[]).await;
    assert_eq!(down.code, 2, "{}\n{}", down.stdout, down.stderr);
    let retries: Vec<&str> = down.stderr.lines().filter(|l| l.contains("retrying cluster request")).collect();
    assert_eq!(retries.len(), 3, "one policy: three retries, not retries of retries: {}", down.stderr);
    for (line, (attempt, backoff)) in retries.iter().zip([(1, 200), (2, 400), (3, 800)]) {
        assert!(line.contains("context=prod-west") && line.contains(&format!("attempt={attempt}")), "{line}");
        assert!(line.contains(&format!("backoff_ms={backoff}")) && line.contains("error="), "{line}");
    }
    assert_eq!(down.stderr.matches("cluster call failed").count(), 4, "{}", down.stderr);
    w.fleet.shutdown().await;
}
