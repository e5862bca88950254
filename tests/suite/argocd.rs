//! The simulated Argo CD against what Argo CD does: client-side apply removes what git
//! removed (and server-side apply too), prune on and off, a PreSync migration Job before the
//! Deployment changes (and a failing one failing the sync), health over a rollout (Progressing,
//! then Healthy or Degraded), and the client-side apply differential test against the real
//! `kubectl apply`.

use std::path::Path;
use std::time::Duration;

use agentops::mock::argocd::{ApplyMode, apply_object};
use agentops::mock::{MockFleet, MockOptions, Store};
use serde_json::{Value, json};

use super::common::*;

const CRD: &str = "apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.com
spec:
  group: example.com
  names: {kind: Widget, listKind: WidgetList, plural: widgets, singular: widget}
  scope: Namespaced
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        x-kubernetes-preserve-unknown-fields: true
";

fn deployment(image: &str, env: &[(&str, &str)]) -> String {
    let env: String =
        env.iter().map(|(k, v)| format!("            - name: {k}\n              value: \"{v}\"\n")).collect();
    format!(
        "apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 2
  selector:
    matchLabels: {{app: web}}
  template:
    metadata:
      labels: {{app: web}}
    spec:
      containers:
        - name: web
          image: {image}
          env:
{env}"
    )
}

const MIGRATION: &str = "apiVersion: batch/v1
kind: Job
metadata:
  name: migrate
  annotations:
    argocd.argoproj.io/hook: PreSync
spec:
  backoffLimit: 1
  template:
    spec:
      restartPolicy: Never
      containers:
        - name: migrate
          image: example/web:2
";

/// A git repo with one app (`app/`), a mock cluster with the simulated Argo CD, and an
/// Application `web` deploying the app to namespace `demo`.
struct World {
    repo: tempfile::TempDir,
    _fixture: tempfile::TempDir,
    fleet: MockFleet,
    ops: std::sync::atomic::AtomicUsize,
}

impl World {
    async fn new(files: &[(&str, &str)], sync_options: &[&str], behaviour: Option<&str>) -> World {
        let repo = tempfile::tempdir().unwrap();
        for (f, text) in files {
            write(repo.path(), f, text);
        }
        git_init(repo.path());
        let fixture = tempfile::tempdir().unwrap();
        std::fs::write(fixture.path().join("crd.yaml"), CRD).unwrap();
        // Argo CD's own CRDs, as the example clusters hold them
        let argo = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/platform/clusters/prod-west/crds.yaml");
        std::fs::copy(argo, fixture.path().join("argocd-crds.yaml")).unwrap();
        std::fs::write(fixture.path().join("ns.yaml"), "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: argocd\n")
            .unwrap();
        if let Some(b) = behaviour {
            std::fs::write(fixture.path().join("behaviour.yaml"), b).unwrap();
        }
        let opts = MockOptions { argocd_repo: Some(repo.path().to_path_buf()), ..MockOptions::default() };
        let fleet = MockFleet::start(&[("c".to_string(), fixture.path().to_path_buf())], &opts).await.unwrap();
        let mut options = vec![json!("CreateNamespace=true")];
        options.extend(sync_options.iter().map(|o| json!(o)));
        let app = json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
            "metadata": {"name": "web", "namespace": "argocd"},
            "spec": {"project": "default", "source": {"repoURL": "https://example.com/repo.git", "path": "app", "targetRevision": "main"},
                     "destination": {"server": "https://kubernetes.default.svc", "namespace": "demo"},
                     "syncPolicy": {"syncOptions": options}}});
        fleet.get("c").unwrap().store().apply(&app, "argocd-cli").unwrap();
        World { repo, _fixture: fixture, fleet, ops: Default::default() }
    }

    fn store(&self) -> &Store {
        self.fleet.get("c").unwrap().store()
    }

    fn app(&self) -> Value {
        self.store().get("argoproj.io/v1alpha1", "Application", Some("argocd"), "web").unwrap()
    }

    fn commit(&self, files: &[(&str, Option<&str>)], msg: &str) -> String {
        for (f, text) in files {
            match text {
                Some(t) => write(self.repo.path(), f, t),
                None => std::fs::remove_file(self.repo.path().join(f)).unwrap(),
            }
        }
        git(self.repo.path(), &["add", "-A"]);
        git(self.repo.path(), &["commit", "-q", "-m", msg]);
        git(self.repo.path(), &["rev-parse", "HEAD"]).trim().to_string()
    }

    /// Requests a sync (`extra` merged into `operation.sync`) and waits for its end; the
    /// operation state.
    async fn sync(&self, extra: Value) -> Value {
        let n = self.ops.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let who = format!("test-{n}");
        let mut sync = json!({"revision": "HEAD"});
        if let (Some(s), Some(e)) = (sync.as_object_mut(), extra.as_object()) {
            s.extend(e.clone());
        }
        let patch = json!({"operation": {"sync": sync, "initiatedBy": {"username": who}}});
        self.store()
            .merge_patch("argoproj.io/v1alpha1", "Application", Some("argocd"), "web", &patch, "argocd")
            .unwrap();
        for _ in 0..1200 {
            let app = self.app();
            let state = &app["status"]["operationState"];
            if app["operation"].is_null()
                && state["operation"]["initiatedBy"]["username"] == who.as_str()
                && state["phase"] != "Running"
            {
                return state.clone();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("sync {who} did not finish: {:#}", self.app()["status"]);
    }

    fn get(&self, api_version: &str, kind: &str, name: &str) -> Option<Value> {
        self.store().get(api_version, kind, Some("demo"), name)
    }

    fn env_names(&self) -> Vec<String> {
        let d = self.get("apps/v1", "Deployment", "web").unwrap();
        d["spec"]["template"]["spec"]["containers"][0]["env"]
            .as_array()
            .map(|e| e.iter().map(|x| x["name"].as_str().unwrap().to_string()).collect())
            .unwrap_or_default()
    }

    /// Waits until the Application's health is `want`; every health it showed on the way.
    async fn health_until(&self, want: &str, seen: &mut Vec<String>) {
        for _ in 0..600 {
            let h = self.app()["status"]["health"]["status"].as_str().unwrap_or_default().to_string();
            if seen.last() != Some(&h) {
                seen.push(h.clone());
            }
            if h == want {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("health never {want}: {seen:?}");
    }
}

fn write(root: &Path, rel: &str, text: &str) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

const KUSTOMIZATION: &str = "resources:\n  - deployment.yaml\n";

/// A field git removed disappears from live with the default client-side apply (the
/// three-way merge deletes what last-applied had), and with server-side apply (the applier's
/// own fields no longer applied are removed).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_field_git_removed_disappears_with_client_side_and_server_side_apply() {
    for options in [&[][..], &["ServerSideApply=true"][..]] {
        let dep = deployment("example/web:1", &[("A", "1"), ("OAUTH_PROVIDER", "google"), ("B", "2")]);
        let w = World::new(&[("app/kustomization.yaml", KUSTOMIZATION), ("app/deployment.yaml", &dep)], options, None)
            .await;
        let state = w.sync(json!({})).await;
        assert_eq!(state["phase"], "Succeeded", "{state:#}");
        let created = &state["syncResult"]["resources"][0];
        assert_eq!(created["status"], "Synced");
        let want =
            if options.is_empty() { "deployment.apps/web created" } else { "deployment.apps/web serverside-applied" };
        assert_eq!(created["message"], want, "{state:#}");
        assert_eq!(w.env_names(), ["A", "OAUTH_PROVIDER", "B"]);
        let live = w.get("apps/v1", "Deployment", "web").unwrap();
        let managers: Vec<(String, String)> = live["metadata"]["managedFields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| (e["manager"].as_str().unwrap().into(), e["operation"].as_str().unwrap().into()))
            .collect();
        let op = if options.is_empty() { "Update" } else { "Apply" };
        assert!(managers.contains(&("argocd-controller".into(), op.into())), "{managers:?}");
        assert_eq!(
            live["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"].is_string(),
            options.is_empty(),
            "client-side apply keeps last-applied, server-side apply does not write it"
        );
        assert_eq!(live["metadata"]["labels"]["app.kubernetes.io/instance"], "web", "the tracking label");

        w.commit(&[("app/deployment.yaml", Some(&deployment("example/web:1", &[("A", "1"), ("B", "2")])))], "drop it");
        let state = w.sync(json!({})).await;
        assert_eq!(state["phase"], "Succeeded", "{state:#}");
        let want = if options.is_empty() {
            "deployment.apps/web configured"
        } else {
            "deployment.apps/web serverside-applied"
        };
        assert_eq!(state["syncResult"]["resources"][0]["message"], want);
        assert_eq!(w.env_names(), ["A", "B"], "{options:?}: the env var git removed is gone");
        // nothing changed in git: client-side apply sends no patch
        if options.is_empty() {
            let state = w.sync(json!({})).await;
            assert_eq!(state["syncResult"]["resources"][0]["message"], "deployment.apps/web unchanged");
        }
        w.fleet.shutdown().await;
    }
}

/// An object git no longer has is pruned only when the operation (or automated.prune) says
/// so; otherwise it requires pruning and the Application is OutOfSync.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn prune_on_and_off() {
    let dep = deployment("example/web:1", &[("A", "1")]);
    let cm = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: extra\ndata:\n  k: v\n";
    let w = World::new(
        &[
            ("app/kustomization.yaml", "resources:\n  - deployment.yaml\n  - extra.yaml\n"),
            ("app/deployment.yaml", &dep),
            ("app/extra.yaml", cm),
        ],
        &[],
        None,
    )
    .await;
    assert_eq!(w.sync(json!({})).await["phase"], "Succeeded");
    assert!(w.get("v1", "ConfigMap", "extra").is_some());
    w.commit(&[("app/extra.yaml", None), ("app/kustomization.yaml", Some(KUSTOMIZATION))], "no extra");

    let state = w.sync(json!({})).await;
    assert_eq!(state["phase"], "Succeeded", "a prune left out does not fail the sync: {state:#}");
    assert!(w.get("v1", "ConfigMap", "extra").is_some(), "not pruned without prune");
    let skipped = state["syncResult"]["resources"].as_array().unwrap().iter().find(|r| r["name"] == "extra").unwrap();
    assert_eq!(
        (&skipped["status"], &skipped["message"]),
        (&json!("PruneSkipped"), &json!("ignored (requires pruning)"))
    );
    let app = w.app();
    assert_eq!(app["status"]["sync"]["status"], "OutOfSync");
    let res = app["status"]["resources"].as_array().unwrap().iter().find(|r| r["name"] == "extra").unwrap().clone();
    assert_eq!((&res["requiresPruning"], &res["status"]), (&json!(true), &json!("OutOfSync")), "{res:#}");

    let state = w.sync(json!({"prune": true})).await;
    assert_eq!(state["phase"], "Succeeded", "{state:#}");
    assert!(w.get("v1", "ConfigMap", "extra").is_none(), "pruned");
    let pruned = state["syncResult"]["resources"].as_array().unwrap().iter().find(|r| r["name"] == "extra").unwrap();
    assert_eq!((&pruned["status"], &pruned["message"]), (&json!("Pruned"), &json!("pruned")));
    assert_eq!(w.app()["status"]["sync"]["status"], "Synced");
    w.fleet.shutdown().await;
}

/// A PreSync migration Job runs (and completes) before the Deployment changes; a failing one
/// fails the operation with Argo CD's message, the Deployment is never changed, and the
/// SyncFail hook runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_presync_migration_runs_first_and_a_failing_one_fails_the_sync() {
    let behaviour = "apiVersion: agentops.dev/v1alpha1\nkind: MockBehaviour\nmetadata:\n  name: c\nspec:\n  rolloutDelayMillis: 200\n  failingJobs: [migrate-bad]\n";
    let w = World::new(
        &[("app/kustomization.yaml", KUSTOMIZATION), ("app/deployment.yaml", &deployment("example/web:1", &[]))],
        &[],
        Some(behaviour),
    )
    .await;
    assert_eq!(w.sync(json!({})).await["phase"], "Succeeded");
    w.commit(
        &[
            ("app/kustomization.yaml", Some("resources:\n  - deployment.yaml\n  - migrate.yaml\n")),
            ("app/migrate.yaml", Some(MIGRATION)),
            ("app/deployment.yaml", Some(&deployment("example/web:2", &[]))),
        ],
        "v2 with a migration",
    );
    let mut events = w.store().subscribe();
    let state = w.sync(json!({})).await;
    assert_eq!(state["phase"], "Succeeded", "{state:#}");
    // the order of what happened: the Job created, completed, then the Deployment changed
    let mut order = Vec::new();
    while let Ok(ev) = events.try_recv() {
        let kind = ev.object["kind"].as_str().unwrap_or_default().to_string();
        let complete =
            ev.object["status"]["conditions"].as_array().is_some_and(|c| c.iter().any(|c| c["type"] == "Complete"));
        match (kind.as_str(), ev.event.as_str()) {
            ("Job", "ADDED") => order.push("job created"),
            ("Job", _) if complete && !order.contains(&"job complete") => order.push("job complete"),
            ("Deployment", "MODIFIED")
                if ev.object["spec"]["template"]["spec"]["containers"][0]["image"] == "example/web:2"
                    && !order.contains(&"deployment changed") =>
            {
                order.push("deployment changed")
            }
            _ => {}
        }
    }
    assert_eq!(order, ["job created", "job complete", "deployment changed"]);
    let results = state["syncResult"]["resources"].as_array().unwrap();
    assert_eq!(results[0]["hookType"], "PreSync");
    assert_eq!(results[0]["syncPhase"], "PreSync");
    assert_eq!(results[0]["hookPhase"], "Succeeded");
    assert_eq!(results[1]["kind"], "Deployment");

    // a failing migration: the sync fails and v3 is never applied
    let failing = MIGRATION.replace("name: migrate", "name: migrate-bad");
    let on_fail = "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: notify-failure\n  annotations:\n    argocd.argoproj.io/hook: SyncFail\nspec:\n  template:\n    spec:\n      restartPolicy: Never\n      containers:\n        - name: n\n          image: example/notify:1\n";
    w.commit(
        &[
            ("app/kustomization.yaml", Some("resources:\n  - deployment.yaml\n  - migrate.yaml\n  - notify.yaml\n")),
            ("app/migrate.yaml", Some(&failing)),
            ("app/notify.yaml", Some(on_fail)),
            ("app/deployment.yaml", Some(&deployment("example/web:3", &[]))),
        ],
        "v3 with a failing migration",
    );
    let state = w.sync(json!({})).await;
    assert_eq!(state["phase"], "Failed", "{state:#}");
    assert_eq!(
        state["message"],
        "one or more synchronization tasks completed unsuccessfully, reason: Job has reached the specified backoff limit"
    );
    let d = w.get("apps/v1", "Deployment", "web").unwrap();
    assert_eq!(d["spec"]["template"]["spec"]["containers"][0]["image"], "example/web:2", "never applied");
    assert!(w.get("batch/v1", "Job", "notify-failure").is_some(), "the SyncFail hook ran");
    assert_eq!(w.app()["status"]["history"].as_array().unwrap().len(), 2, "a failed sync is no deploy");
    w.fleet.shutdown().await;
}

/// The Application's health follows the rollout: Progressing while the new replicas come up,
/// then Healthy; Degraded when the new image never becomes available (progress deadline).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn health_goes_progressing_then_healthy_or_degraded() {
    let behaviour = "apiVersion: agentops.dev/v1alpha1\nkind: MockBehaviour\nmetadata:\n  name: c\nspec:\n  rolloutDelayMillis: 400\n  unavailableImages: [example/web:broken]\n";
    let w = World::new(
        &[("app/kustomization.yaml", KUSTOMIZATION), ("app/deployment.yaml", &deployment("example/web:1", &[]))],
        &[],
        Some(behaviour),
    )
    .await;
    let state = w.sync(json!({})).await;
    assert_eq!(state["phase"], "Succeeded");
    let mut seen = Vec::new();
    w.health_until("Healthy", &mut seen).await;
    assert!(seen.contains(&"Progressing".to_string()), "{seen:?}");
    assert_eq!(seen.last().unwrap(), "Healthy");

    w.commit(&[("app/deployment.yaml", Some(&deployment("example/web:broken", &[])))], "broken image");
    let state = w.sync(json!({})).await;
    assert_eq!(state["phase"], "Succeeded", "one wave, no hooks: the sync does not wait for health");
    let mut seen = Vec::new();
    w.health_until("Degraded", &mut seen).await;
    assert_eq!(seen.first().unwrap(), "Progressing", "{seen:?}");
    let d = w.get("apps/v1", "Deployment", "web").unwrap();
    let progressing =
        d["status"]["conditions"].as_array().unwrap().iter().find(|c| c["type"] == "Progressing").unwrap().clone();
    assert_eq!(progressing["reason"], "ProgressDeadlineExceeded");

    // with a later wave the sync waits for the Deployment's health, and fails on Degraded
    let cm = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: after\n  annotations:\n    argocd.argoproj.io/sync-wave: \"1\"\n";
    w.commit(
        &[
            ("app/kustomization.yaml", Some("resources:\n  - deployment.yaml\n  - after.yaml\n")),
            ("app/after.yaml", Some(cm)),
            ("app/deployment.yaml", Some(&deployment("example/web:broken", &[("X", "1")]))),
        ],
        "a later wave",
    );
    let state = w.sync(json!({})).await;
    assert_eq!(state["phase"], "Failed", "{state:#}");
    assert_eq!(
        state["message"],
        "one or more synchronization tasks completed unsuccessfully, reason: Deployment \"web\" exceeded its progress deadline"
    );
    assert!(w.get("v1", "ConfigMap", "after").is_none(), "the later wave never ran");
    w.fleet.shutdown().await;
}

// ---- the differential test ----------------------------------------------------------------

/// The object without what differs between any two API servers or clients: identity,
/// timestamps, managedFields, generation, status; last-applied parsed.
fn comparable(mut o: Value) -> Value {
    let meta = o["metadata"].as_object_mut().unwrap();
    for k in ["uid", "resourceVersion", "creationTimestamp", "managedFields", "generation"] {
        meta.remove(k);
    }
    if let Some(a) = meta.get_mut("annotations").and_then(Value::as_object_mut)
        && let Some(Value::String(t)) = a.get("kubectl.kubernetes.io/last-applied-configuration").cloned()
    {
        a.insert("kubectl.kubernetes.io/last-applied-configuration".into(), serde_json::from_str(&t).unwrap());
    }
    o.as_object_mut().unwrap().remove("status");
    // allocated by each API server on its own
    if let Some(spec) = o.get_mut("spec").and_then(Value::as_object_mut) {
        spec.remove("clusterIP");
        spec.remove("clusterIPs");
    }
    o
}

/// The same configurations, in order, through the real `kubectl apply` (client-side) and
/// through the simulated sync's apply: the live objects must be the same after every step,
/// hand edits between the steps included.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn client_side_apply_matches_kubectl_apply() {
    let fixture = tempfile::tempdir().unwrap();
    std::fs::write(fixture.path().join("crd.yaml"), CRD).unwrap();
    std::fs::write(fixture.path().join("ns.yaml"), "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: demo\n")
        .unwrap();
    let clusters =
        [("kubectl".to_string(), fixture.path().to_path_buf()), ("sim".to_string(), fixture.path().to_path_buf())];
    let fleet = MockFleet::start(&clusters, &MockOptions::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    fleet.write_kubeconfig(&dir.path().join("kubeconfig")).unwrap();
    let sim = fleet.get("sim").unwrap().store().clone();
    let real = fleet.get("kubectl").unwrap().store().clone();

    let dep = |spec: &str, labels: &str| {
        format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  namespace: demo\n  labels:\n{labels}\nspec:\n{spec}"
        )
    };
    let template = |containers: &str, extra: &str| {
        format!(
            "  replicas: 2\n  selector:\n    matchLabels: {{app: web}}\n{extra}  template:\n    metadata:\n      labels: {{app: web}}\n    spec:\n      containers:\n{containers}"
        )
    };
    let web = |env: &str, ports: &str| {
        format!("        - name: web\n          image: example/web:1\n          env:\n{env}          ports:\n{ports}")
    };
    let env = |names: &[&str]| -> String {
        names.iter().map(|n| format!("            - name: {n}\n              value: \"v-{n}\"\n")).collect()
    };
    let ports = |ps: &[u16]| -> String { ps.iter().map(|p| format!("            - containerPort: {p}\n")).collect() };
    let sidecar = "        - name: proxy\n          image: example/proxy:1\n          args: [\"--port=4180\"]\n";
    let svc = |ps: &[u16]| {
        let ports: String = ps.iter().map(|p| format!("    - name: p{p}\n      port: {p}\n")).collect();
        format!(
            "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\n  namespace: demo\nspec:\n  selector: {{app: web}}\n  ports:\n{ports}"
        )
    };
    let widget = |spec: &str| {
        format!("apiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: w\n  namespace: demo\nspec:\n{spec}")
    };
    let steps: Vec<Vec<String>> = vec![
        vec![
            dep(&template(&web(&env(&["A", "B"]), &ports(&[8080])), ""), "    a: \"1\""),
            svc(&[80]),
            widget("  size: 1\n  tags: [blue, green]\n  nested: {a: 1, b: 2}\n"),
        ],
        vec![
            dep(
                &template(&(web(&env(&["B", "C"]), &ports(&[8080, 9090])) + sidecar), ""),
                "    a: \"1\"\n    b: \"2\"",
            ),
            svc(&[80, 443]),
            widget("  size: 2\n  tags: [blue]\n  nested: {a: 1}\n"),
        ],
        vec![
            dep(
                &template(&web(&env(&["C", "B"]), &ports(&[8080])), "  strategy:\n    type: Recreate\n"),
                "    b: \"2\"",
            ),
            svc(&[443]),
            widget("  size: 2\n  tags: [red]\n"),
        ],
        vec![
            dep(
                &template(
                    &web(&env(&["C"]), &ports(&[8080])),
                    "  strategy:\n    type: RollingUpdate\n    rollingUpdate:\n      maxSurge: 1\n",
                ),
                "    b: \"3\"",
            ),
            svc(&[443, 8443]),
            widget("  size: 3\n"),
        ],
    ];
    // hand edits after some steps, made the same way on both clusters
    let hand_edit = |step: usize, store: &Store| match step {
        0 => {
            let annotate = json!({"metadata": {"annotations": {"team": "web"}}});
            store.merge_patch("apps/v1", "Deployment", Some("demo"), "web", &annotate, "kubectl-edit").unwrap();
            let r = store.resource("apps/v1", "Deployment").unwrap();
            let w = agentops::mock::store::WriteOptions { manager: "kubectl-edit".into(), ..Default::default() };
            let smp =
                json!({"spec": {"template": {"spec": {"containers": [{"name": "debug", "image": "busybox:1"}]}}}});
            store.patch(&r, Some("demo"), "web", agentops::mock::store::PatchType::Strategic, &smp, &w).unwrap();
            store
                .merge_patch(
                    "example.com/v1",
                    "Widget",
                    Some("demo"),
                    "w",
                    &json!({"spec": {"owner": "ops"}}),
                    "kubectl-edit",
                )
                .unwrap();
        }
        1 => {
            store
                .merge_patch(
                    "apps/v1",
                    "Deployment",
                    Some("demo"),
                    "web",
                    &json!({"spec": {"replicas": 5}}),
                    "kubectl-edit",
                )
                .unwrap();
        }
        _ => {}
    };
    for (i, objects) in steps.iter().enumerate() {
        let file = dir.path().join(format!("step{i}.yaml"));
        std::fs::write(&file, objects.join("---\n")).unwrap();
        let out = tokio::process::Command::new(kubectl_bin())
            .args(["--context", "kubectl", "apply", "-f", file.to_str().unwrap()])
            .env("KUBECONFIG", dir.path().join("kubeconfig"))
            .env("KUBECACHEDIR", dir.path().join("kube-cache"))
            .env("HOME", dir.path())
            .env_remove("KUBECTL_KUBERC")
            .output()
            .await
            .unwrap();
        assert!(out.status.success(), "step {i}: kubectl apply: {}", String::from_utf8_lossy(&out.stderr));
        let printed = String::from_utf8_lossy(&out.stdout).to_string();
        let mut words = Vec::new();
        for text in objects {
            let obj = agentops::config::yaml::parse_values(text).unwrap().remove(0);
            words.push(apply_object(&sim, &obj, ApplyMode::ClientSide, "kubectl-client-side-apply").unwrap());
        }
        // kubectl prints the same verdict per object
        let verdicts: Vec<&str> = printed.lines().map(|l| l.rsplit(' ').next().unwrap()).collect();
        assert_eq!(verdicts, words, "step {i}: {printed}");
        for (av, kind, name) in
            [("apps/v1", "Deployment", "web"), ("v1", "Service", "web"), ("example.com/v1", "Widget", "w")]
        {
            let a = comparable(real.get(av, kind, Some("demo"), name).unwrap());
            let b = comparable(sim.get(av, kind, Some("demo"), name).unwrap());
            assert_eq!(b, a, "step {i}: {kind}/{name}: the simulated apply (left) differs from kubectl apply (right)");
        }
        hand_edit(i, &real);
        hand_edit(i, &sim);
    }
    fleet.shutdown().await;
}
