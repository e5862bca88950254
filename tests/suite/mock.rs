//! The mock API server against the real clients: kubectl (the binary in .tools) and kube-rs,
//! over HTTP(S), with the resulting objects, managedFields and audit events checked.

use std::path::PathBuf;
use std::time::Duration;

use agentops::mock::{MockFleet, MockOptions, ServiceProxy};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

use super::common::*;

fn shop_prod() -> PathBuf {
    fixture("clusters/shop-prod")
}

/// A fleet of mock clusters with a kubeconfig, an audit log and a fresh kubectl cache.
struct Env {
    fleet: MockFleet,
    dir: tempfile::TempDir,
}

impl Env {
    async fn start(names: &[&str]) -> Env {
        let dir = tempfile::tempdir().unwrap();
        let clusters: Vec<(String, PathBuf)> = names.iter().map(|n| (n.to_string(), shop_prod())).collect();
        let opts = MockOptions { audit_log: Some(dir.path().join("audit.log")), ..Default::default() };
        let fleet = MockFleet::start(&clusters, &opts).await.unwrap();
        fleet.write_kubeconfig(&dir.path().join("kubeconfig")).unwrap();
        Env { fleet, dir }
    }

    fn kubeconfig(&self) -> PathBuf {
        self.dir.path().join("kubeconfig")
    }

    /// Runs kubectl; (exit code, stdout, stderr).
    async fn kubectl_env(&self, args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
        let mut env: Vec<(&str, &std::ffi::OsStr)> = env.iter().map(|(k, v)| (*k, std::ffi::OsStr::new(*v))).collect();
        env.insert(0, ("HOME", self.dir.path().as_os_str()));
        let r = kubectl(&self.kubeconfig(), self.dir.path(), args, &env).await;
        (r.code, r.stdout, r.stderr)
    }

    /// Runs kubectl and expects success; its stdout.
    async fn kubectl(&self, args: &[&str]) -> String {
        let (code, out, err) = self.kubectl_env(args, &[]).await;
        assert_eq!(code, 0, "kubectl {args:?} failed:\n{err}\n{out}");
        out
    }

    async fn get_json(&self, args: &[&str]) -> Value {
        let mut a = args.to_vec();
        a.extend(["-o", "json", "--show-managed-fields"]);
        serde_json::from_str(&self.kubectl(&a).await).unwrap()
    }

    /// Like `get_json`, once the simulated controller has finished the rollout of the latest
    /// generation (it observes it first, with the new replicas short, then completes it).
    async fn get_settled(&self, args: &[&str]) -> Value {
        let mut d = self.get_json(args).await;
        for _ in 0..50 {
            if d["status"]["observedGeneration"] == d["metadata"]["generation"]
                && d["status"]["availableReplicas"] == d["spec"]["replicas"]
                && d["status"]["updatedReplicas"] == d["spec"]["replicas"]
            {
                // settled: nothing writes it for longer than a rollout step (300 ms)
                tokio::time::sleep(Duration::from_millis(500)).await;
                let again = self.get_json(args).await;
                if again["metadata"]["resourceVersion"] == d["metadata"]["resourceVersion"] {
                    break;
                }
                d = again;
                continue;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            d = self.get_json(args).await;
        }
        d
    }

    fn audit(&self) -> Vec<Value> {
        std::fs::read_to_string(self.dir.path().join("audit.log"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    async fn client(&self, context: &str) -> kube::Client {
        let kc = kube::config::Kubeconfig::read_from(self.kubeconfig()).unwrap();
        let opts = kube::config::KubeConfigOptions { context: Some(context.into()), ..Default::default() };
        let config = kube::Config::from_custom_kubeconfig(kc, &opts).await.unwrap();
        kube::Client::try_from(config).unwrap()
    }

    async fn stop(self) {
        self.fleet.shutdown().await;
    }
}

/// (manager, operation, subresource) of every managedFields entry.
fn managers(obj: &Value) -> Vec<(String, String, String)> {
    let mut v: Vec<_> = obj["metadata"]["managedFields"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|e| {
                    (
                        e["manager"].as_str().unwrap_or_default().to_string(),
                        e["operation"].as_str().unwrap_or_default().to_string(),
                        e["subresource"].as_str().unwrap_or_default().to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

fn entry<'a>(obj: &'a Value, manager: &str) -> &'a Value {
    obj["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["manager"] == manager)
        .unwrap_or_else(|| panic!("no managedFields entry of {manager}: {:#}", obj["metadata"]["managedFields"]))
}

fn last_audit(env: &Env) -> Value {
    env.audit().pop().expect("no audit event")
}

fn check_audit(ev: &Value, verb: &str, resource: &str, name: &str, code: u64) {
    assert_eq!(ev["kind"], "Event");
    assert_eq!(ev["apiVersion"], "audit.k8s.io/v1");
    assert_eq!(ev["level"], "Metadata");
    assert_eq!(ev["stage"], "ResponseComplete");
    assert_eq!(ev["verb"], verb, "{ev:#}");
    assert_eq!(ev["objectRef"]["resource"], resource, "{ev:#}");
    assert_eq!(ev["objectRef"]["name"], name, "{ev:#}");
    assert_eq!(ev["responseStatus"]["code"], code, "{ev:#}");
    assert_eq!(ev["sourceIPs"], json!(["127.0.0.1"]));
    assert!(ev["userAgent"].as_str().unwrap().starts_with("kubectl/"), "{ev:#}");
    assert!(ev["auditID"].as_str().unwrap().len() == 36);
    assert!(ev["requestReceivedTimestamp"].as_str().unwrap() <= ev["stageTimestamp"].as_str().unwrap());
}

const API_DEPLOYMENT: &str = "apiVersion: apps/v1
kind: Deployment
metadata:
  name: api
  namespace: shop
  labels:
    app: api
spec:
  replicas: 1
  selector:
    matchLabels:
      app: api
  template:
    metadata:
      labels:
        app: api
    spec:
      containers:
      - name: api
        image: example/api:1.0
        env:
        - name: MODE
          value: blue
";

#[tokio::test(flavor = "multi_thread")]
async fn kubectl_reads_fixture_objects_as_they_were_dumped() {
    let env = Env::start(&["prod"]).await;
    let web = env.get_json(&["get", "deploy", "web", "-n", "shop"]).await;
    assert_eq!(web["metadata"]["uid"], "9c5e2d34-1a7b-4c8e-b2f6-3d4e5f6a7b80");
    assert_eq!(web["metadata"]["resourceVersion"], "48211");
    assert_eq!(web["spec"]["strategy"]["rollingUpdate"]["maxSurge"], "25%");
    assert_eq!(web["status"]["readyReplicas"], 2);
    assert_eq!(
        managers(&web),
        vec![
            ("kube-controller-manager".into(), "Update".into(), "status".into()),
            ("kubectl-client-side-apply".into(), "Update".into(), String::new()),
        ]
    );

    // Human output: the server-side Table, namespaces across the cluster.
    let out = env.kubectl(&["get", "deploy", "-A"]).await;
    assert!(out.contains("NAMESPACE") && out.contains("shop") && out.contains("2/2"), "{out}");
    let ns = env.kubectl(&["get", "ns", "-o", "name"]).await;
    for n in ["namespace/default", "namespace/kube-system", "namespace/monitoring", "namespace/shop"] {
        assert!(ns.contains(n), "{ns}");
    }
    let all = env.kubectl(&["get", "svc", "-A", "-o", "name"]).await;
    assert_eq!(all.lines().collect::<Vec<_>>(), vec!["service/prometheus", "service/web"]);

    // Label selectors: =, ==, !=, in, notin, exists, not exists.
    let names = |args: Vec<&'static str>| {
        let env = &env;
        async move {
            let mut a = vec!["get", "deploy,sts,svc,cm", "-n", "shop", "-o", "name"];
            a.extend(args);
            env.kubectl(&a).await.lines().map(str::to_string).collect::<Vec<_>>()
        }
    };
    assert_eq!(names(vec!["-l", "app.kubernetes.io/name=web"]).await.len(), 3);
    assert_eq!(names(vec!["-l", "app.kubernetes.io/name==redis"]).await, vec!["statefulset.apps/redis"]);
    assert_eq!(names(vec!["-l", "app.kubernetes.io/name!=web"]).await, vec!["statefulset.apps/redis"]);
    assert_eq!(names(vec!["-l", "app.kubernetes.io/name in (redis,db)"]).await, vec!["statefulset.apps/redis"]);
    assert_eq!(names(vec!["-l", "app.kubernetes.io/name notin (web)"]).await, vec!["statefulset.apps/redis"]);
    assert_eq!(names(vec!["-l", "app.kubernetes.io/part-of"]).await, vec!["deployment.apps/web"]);
    assert_eq!(names(vec!["-l", "!app.kubernetes.io/part-of"]).await.len(), 3);
    assert_eq!(
        env.kubectl(&["get", "svc", "-A", "--field-selector", "metadata.namespace=monitoring", "-o", "name"]).await,
        "service/prometheus\n"
    );

    // Custom resources by short name, CRDs, cluster-scoped kinds.
    assert_eq!(
        env.kubectl(&["get", "smon", "-n", "shop", "-o", "name"]).await,
        "servicemonitor.monitoring.coreos.com/web\n"
    );
    let sc = env.kubectl(&["get", "storageclass"]).await;
    assert!(sc.contains("standard (default)") && sc.contains("WaitForFirstConsumer"), "{sc}");
    assert!(env.kubectl(&["get", "ingressclass", "-o", "name"]).await.contains("ingressclass.networking.k8s.io/nginx"));
    assert!(env.kubectl(&["get", "crd", "-o", "name"]).await.contains("servicemonitors.monitoring.coreos.com"));
    let secret = env.get_json(&["get", "secret", "web-db", "-n", "shop"]).await;
    assert_eq!(secret["data"]["DATABASE_USER"], "c2hvcA==");

    // A missing object: the API server's NotFound message.
    let (code, _, err) = env.kubectl_env(&["get", "deploy", "nope", "-n", "shop"], &[]).await;
    assert_eq!(code, 1);
    assert!(err.contains("deployments.apps \"nope\" not found"), "{err}");
    // MockMetrics are not served as objects.
    assert_eq!(env.fleet.clusters()[0].store().mock_metrics().len(), 1);
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn kubectl_writes_record_field_managers_and_audit_events() {
    let env = Env::start(&["prod"]).await;
    let file = env.dir.path().join("api.yaml");
    let get = || env.get_json(&["get", "deploy", "api", "-n", "shop"]);

    // Client-side apply: create, then a change sent as a strategic merge patch.
    std::fs::write(&file, API_DEPLOYMENT).unwrap();
    let out = env.kubectl(&["apply", "-f", file.to_str().unwrap()]).await;
    assert_eq!(out.trim(), "deployment.apps/api created");
    check_audit(&last_audit(&env), "create", "deployments", "api", 201);
    let d = get().await;
    assert_eq!(d["metadata"]["generation"], 1);
    assert!(d["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"].is_string());
    let csa = entry(&d, "kubectl-client-side-apply");
    assert_eq!(csa["operation"], "Update");
    assert!(
        csa["fieldsV1"]["f:spec"]["f:template"]["f:spec"]["f:containers"]["k:{\"name\":\"api\"}"]["f:image"]
            .is_object()
    );
    let ev = last_audit(&env);
    assert_eq!(ev["user"]["username"], "admin");
    assert_eq!(ev["user"]["groups"], json!(["system:masters", "system:authenticated"]));
    assert_eq!(ev["objectRef"]["namespace"], "shop");
    assert_eq!(ev["objectRef"]["apiGroup"], "apps");
    assert_eq!(ev["objectRef"]["apiVersion"], "v1");

    std::fs::write(&file, API_DEPLOYMENT.replace("api:1.0", "api:1.1").replace("replicas: 1", "replicas: 2")).unwrap();
    assert_eq!(env.kubectl(&["apply", "-f", file.to_str().unwrap()]).await.trim(), "deployment.apps/api configured");
    let ev = last_audit(&env);
    check_audit(&ev, "patch", "deployments", "api", 200);
    assert!(ev["requestURI"].as_str().unwrap().contains("fieldManager=kubectl-client-side-apply"));
    // The simulated controller finishes the rollout asynchronously, as the real one does.
    let d = env.get_settled(&["get", "deploy", "api", "-n", "shop"]).await;
    assert_eq!(d["spec"]["template"]["spec"]["containers"][0]["image"], "example/api:1.1");
    assert_eq!(d["spec"]["template"]["spec"]["containers"][0]["env"][0]["value"], "blue");
    assert_eq!(d["metadata"]["generation"], 2);
    // The controller finished the rollout through the status subresource.
    assert_eq!(d["status"]["observedGeneration"], 2);
    assert_eq!(d["status"]["availableReplicas"], 2);
    assert_eq!(entry(&d, "kube-controller-manager")["subresource"], "status");

    // annotate, label: their own managers.
    env.kubectl(&["annotate", "deploy", "api", "-n", "shop", "example.com/owner=payments"]).await;
    check_audit(&last_audit(&env), "patch", "deployments", "api", 200);
    env.kubectl(&["label", "deploy", "api", "-n", "shop", "tier=backend"]).await;
    let d = get().await;
    assert_eq!(d["metadata"]["annotations"]["example.com/owner"], "payments");
    assert_eq!(d["metadata"]["labels"]["tier"], "backend");
    assert_eq!(d["metadata"]["generation"], 2, "metadata changes do not bump the generation");
    assert_eq!(
        entry(&d, "kubectl-annotate")["fieldsV1"],
        json!({"f:metadata": {"f:annotations": {"f:example.com/owner": {}}}})
    );
    assert_eq!(entry(&d, "kubectl-label")["fieldsV1"], json!({"f:metadata": {"f:labels": {"f:tier": {}}}}));

    // patch: merge, JSON and strategic.
    env.kubectl(&[
        "patch",
        "deploy",
        "api",
        "-n",
        "shop",
        "--type",
        "merge",
        "-p",
        r#"{"spec":{"minReadySeconds":5}}"#,
    ])
    .await;
    env.kubectl(&[
        "patch",
        "deploy",
        "api",
        "-n",
        "shop",
        "--type",
        "json",
        "-p",
        r#"[{"op":"add","path":"/spec/template/spec/containers/0/env/-","value":{"name":"COLOR","value":"green"}}]"#,
    ])
    .await;
    env.kubectl(&[
        "patch",
        "deploy",
        "api",
        "-n",
        "shop",
        "--type",
        "strategic",
        "-p",
        r#"{"spec":{"template":{"spec":{"containers":[{"name":"api","image":"example/api:1.2"}]}}}}"#,
    ])
    .await;
    let d = get().await;
    assert_eq!(d["spec"]["minReadySeconds"], 5);
    let c = &d["spec"]["template"]["spec"]["containers"];
    assert_eq!(c.as_array().unwrap().len(), 1, "strategic merge keeps the list merged by name");
    assert_eq!(c[0]["image"], "example/api:1.2");
    assert_eq!(c[0]["env"], json!([{"name": "MODE", "value": "blue"}, {"name": "COLOR", "value": "green"}]));
    let patch_fields = &entry(&d, "kubectl-patch")["fieldsV1"];
    assert!(patch_fields["f:spec"]["f:minReadySeconds"].is_object(), "{patch_fields:#}");
    // The image moved from the client-side-apply owner to kubectl-patch.
    let csa = &entry(&d, "kubectl-client-side-apply")["fieldsV1"];
    assert!(
        csa["f:spec"]["f:template"]["f:spec"]["f:containers"]["k:{\"name\":\"api\"}"]["f:image"].is_null(),
        "{csa:#}"
    );
    assert_eq!(d["metadata"]["generation"], 5);

    // edit: the editor adds a sidecar container.
    let editor = env.dir.path().join("editor.sh");
    std::fs::write(
        &editor,
        "#!/bin/sh\nsed -i 's/^      containers:$/      containers:\\n      - name: sidecar\\n        image: busybox:1.36/' \"$1\"\n",
    )
    .unwrap();
    std::fs::set_permissions(&editor, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let (code, out, err) =
        env.kubectl_env(&["edit", "deploy/api", "-n", "shop"], &[("KUBE_EDITOR", editor.to_str().unwrap())]).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("deployment.apps/api edited"), "{out}{err}");
    let d = get().await;
    let names: Vec<&str> = d["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["sidecar", "api"]);
    let edit = &entry(&d, "kubectl-edit")["fieldsV1"];
    assert!(
        edit["f:spec"]["f:template"]["f:spec"]["f:containers"]["k:{\"name\":\"sidecar\"}"]["f:image"].is_object(),
        "{edit:#}"
    );
    check_audit(&last_audit(&env), "patch", "deployments", "api", 200);

    // scale: the scale subresource, manager from the User-Agent.
    assert_eq!(
        env.kubectl(&["scale", "deploy", "api", "-n", "shop", "--replicas=3"]).await.trim(),
        "deployment.apps/api scaled"
    );
    let ev = last_audit(&env);
    check_audit(&ev, "patch", "deployments", "api", 200);
    assert_eq!(ev["objectRef"]["subresource"], "scale");
    let d = get().await;
    assert_eq!(d["spec"]["replicas"], 3);
    let scale = entry(&d, "kubectl");
    assert_eq!((scale["operation"].as_str(), scale["subresource"].as_str()), (Some("Update"), Some("scale")));
    assert_eq!(scale["fieldsV1"], json!({"f:spec": {"f:replicas": {}}}));

    // rollout status returns once the simulated controller has caught up.
    let out = env.kubectl(&["rollout", "status", "deploy/api", "-n", "shop", "--timeout=20s"]).await;
    assert!(out.contains("successfully rolled out"), "{out}");
    let d = get().await;
    assert_eq!(d["status"]["updatedReplicas"], 3);
    assert_eq!(d["status"]["observedGeneration"], d["metadata"]["generation"]);

    let expected: Vec<(String, String, String)> = [
        ("kube-controller-manager", "Update", "status"),
        ("kubectl", "Update", "scale"),
        ("kubectl-annotate", "Update", ""),
        ("kubectl-client-side-apply", "Update", ""),
        ("kubectl-edit", "Update", ""),
        ("kubectl-label", "Update", ""),
        ("kubectl-patch", "Update", ""),
    ]
    .iter()
    .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
    .collect();
    assert_eq!(managers(&d), expected);

    // delete: a success Status for Deployments; the audit event; gone afterwards.
    assert!(env.kubectl(&["delete", "deploy", "api", "-n", "shop"]).await.contains("deleted"));
    check_audit(&last_audit(&env), "delete", "deployments", "api", 200);
    let (code, _, err) = env.kubectl_env(&["get", "deploy", "api", "-n", "shop"], &[]).await;
    assert_eq!(code, 1, "{err}");
    // Every mutating request was audited, reads were not.
    let verbs: Vec<String> = env.audit().iter().map(|e| e["verb"].as_str().unwrap().to_string()).collect();
    assert!(verbs.iter().all(|v| ["create", "patch", "update", "delete"].contains(&v.as_str())), "{verbs:?}");
    assert_eq!(verbs.first().map(String::as_str), Some("create"));
    assert_eq!(verbs.last().map(String::as_str), Some("delete"));
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn kubectl_server_side_apply_and_users() {
    let env = Env::start(&["prod", "dev"]).await;
    let file = env.dir.path().join("api.yaml");
    std::fs::write(&file, API_DEPLOYMENT).unwrap();
    let out = env.kubectl(&["apply", "--server-side", "-f", file.to_str().unwrap()]).await;
    assert_eq!(out.trim(), "deployment.apps/api serverside-applied");
    let ev = last_audit(&env);
    check_audit(&ev, "patch", "deployments", "api", 201);
    let d = env.get_settled(&["get", "deploy", "api", "-n", "shop"]).await;
    let apply = entry(&d, "kubectl");
    assert_eq!(apply["operation"], "Apply");
    assert_eq!(
        apply["fieldsV1"]["f:spec"]["f:template"]["f:spec"]["f:containers"]["k:{\"name\":\"api\"}"]["f:env"]["k:{\"name\":\"MODE\"}"],
        json!({".": {}, "f:name": {}, "f:value": {}})
    );
    // Applying again with a change merges into the live object.
    std::fs::write(&file, API_DEPLOYMENT.replace("api:1.0", "api:2.0")).unwrap();
    env.kubectl(&["apply", "--server-side", "-f", file.to_str().unwrap()]).await;
    let d = env.get_settled(&["get", "deploy", "api", "-n", "shop"]).await;
    assert_eq!(d["spec"]["template"]["spec"]["containers"][0]["image"], "example/api:2.0");
    assert_eq!(d["metadata"]["generation"], 2);
    assert_eq!(
        managers(&d),
        vec![
            ("kube-controller-manager".into(), "Update".into(), "status".into()),
            ("kubectl".into(), "Apply".into(), String::new())
        ]
    );

    // The dev context reaches the other cluster, which never saw the apply.
    let (code, _, err) = env.kubectl_env(&["--context", "dev", "get", "deploy", "api", "-n", "shop"], &[]).await;
    assert_eq!(code, 1, "{err}");

    // A second user: the token names who the audit log shows.
    let kc = std::fs::read_to_string(env.kubeconfig()).unwrap();
    let kc = kc + "- name: alice\n  user:\n    token: mock:alice@example.com\n";
    std::fs::write(env.kubeconfig(), kc).unwrap();
    env.kubectl(&["--user", "alice", "annotate", "deploy", "api", "-n", "shop", "reviewed-by=alice"]).await;
    let ev = last_audit(&env);
    assert_eq!(ev["user"]["username"], "alice@example.com");
    assert_eq!(ev["user"]["groups"], json!(["system:authenticated"]));
    assert_eq!(ev["annotations"]["agentops.dev/cluster"], "prod");
    env.kubectl(&["--context", "dev", "annotate", "ns", "shop", "touched=yes"]).await;
    let ev = last_audit(&env);
    assert_eq!(ev["annotations"]["agentops.dev/cluster"], "dev");
    assert_eq!(ev["objectRef"]["resource"], "namespaces");
    assert!(ev["objectRef"].get("apiGroup").is_none(), "the core group has no apiGroup: {ev:#}");

    // dry-run=server persists nothing.
    let rv = env.get_settled(&["get", "deploy", "api", "-n", "shop"]).await["metadata"]["resourceVersion"].clone();
    env.kubectl(&["scale", "deploy", "api", "-n", "shop", "--replicas=7", "--dry-run=server"]).await;
    env.kubectl(&["delete", "deploy", "api", "-n", "shop", "--dry-run=server"]).await;
    let d = env.get_json(&["get", "deploy", "api", "-n", "shop"]).await;
    assert_eq!(d["metadata"]["resourceVersion"], rv);
    assert_eq!(d["spec"]["replicas"], 1);

    // Server-side apply conflicts with the owner of a field it would change, unless forced.
    env.kubectl(&["scale", "deploy", "api", "-n", "shop", "--replicas=3"]).await;
    let (code, out, err) = env.kubectl_env(&["apply", "--server-side", "-f", file.to_str().unwrap()], &[]).await;
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        err.contains(
            "Apply failed with 1 conflict: conflict with \"kubectl\" with subresource \"scale\" using apps/v1"
        ),
        "{err}"
    );
    assert!(err.contains(".spec.replicas"), "{err}");
    check_audit(&last_audit(&env), "patch", "deployments", "api", 409);
    assert_eq!(last_audit(&env)["responseStatus"]["reason"], "Conflict");
    env.kubectl(&["apply", "--server-side", "--force-conflicts", "-f", file.to_str().unwrap()]).await;
    let d = env.get_json(&["get", "deploy", "api", "-n", "shop"]).await;
    assert_eq!(d["spec"]["replicas"], 1);
    assert!(managers(&d).iter().all(|(_, _, sub)| sub != "scale"), "{:?}", managers(&d));

    // A CRD created through the API is served right away.
    let crd = env.dir.path().join("crd.yaml");
    std::fs::write(
        &crd,
        "apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.com
spec:
  group: example.com
  names: {kind: Widget, plural: widgets, singular: widget, shortNames: [wdg]}
  scope: Namespaced
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}
---
apiVersion: example.com/v1
kind: Widget
metadata: {name: w1, namespace: shop}
spec: {size: 3}
",
    )
    .unwrap();
    let (code, out, err) = env.kubectl_env(&["apply", "-f", crd.to_str().unwrap()], &[]).await;
    if code != 0 {
        // kubectl may not know the new kind in the same run: its discovery was cached first.
        assert!(err.contains("ensure CRDs are installed first"), "{out}{err}");
        env.kubectl(&["apply", "-f", crd.to_str().unwrap()]).await;
    }
    assert_eq!(env.kubectl(&["get", "wdg", "-n", "shop", "-o", "name"]).await, "widget.example.com/w1\n");
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn kube_rs_client_works_against_the_mock() {
    let env = Env::start(&["prod"]).await;
    let client = env.client("prod").await;

    let discovery = kube::discovery::Discovery::new(client.clone()).run().await.unwrap();
    let groups: Vec<String> = discovery.groups().map(|g| g.name().to_string()).collect();
    for g in [
        "",
        "apps",
        "batch",
        "networking.k8s.io",
        "storage.k8s.io",
        "autoscaling",
        "policy",
        "rbac.authorization.k8s.io",
        "apiextensions.k8s.io",
        "monitoring.coreos.com",
    ] {
        assert!(groups.iter().any(|x| x == g), "group {g:?} missing from {groups:?}");
    }
    let (ar, caps) = discovery
        .groups()
        .find(|g| g.name() == "monitoring.coreos.com")
        .unwrap()
        .recommended_kind("ServiceMonitor")
        .unwrap();
    assert_eq!(ar.plural, "servicemonitors");
    assert_eq!(caps.scope, kube::discovery::Scope::Namespaced);

    let deploys: Api<Deployment> = Api::namespaced(client.clone(), "shop");
    let web = deploys.get("web").await.unwrap();
    assert_eq!(web.spec.as_ref().unwrap().replicas, Some(2));
    let all: Api<Deployment> = Api::all(client.clone());
    assert_eq!(all.list(&ListParams::default()).await.unwrap().items.len(), 1);
    let listed = deploys.list(&ListParams::default().labels("app.kubernetes.io/part-of=shop")).await.unwrap();
    assert_eq!(listed.items.len(), 1);
    assert!(listed.metadata.resource_version.is_some());

    // Merge, strategic and apply patches.
    let pp = PatchParams::default();
    let p = deploys.patch("web", &pp, &Patch::Merge(json!({"metadata": {"annotations": {"a": "1"}}}))).await.unwrap();
    assert_eq!(p.metadata.annotations.unwrap()["a"], "1");
    let p = deploys
        .patch(
            "web",
            &pp,
            &Patch::Strategic(json!({"spec": {"template": {"spec": {"containers": [{"name": "web", "image": "ghcr.io/example/web:1.5.0"}]}}}})),
        )
        .await
        .unwrap();
    let c = &p.spec.as_ref().unwrap().template.spec.as_ref().unwrap().containers;
    assert_eq!(c.len(), 1);
    assert_eq!(c[0].image.as_deref(), Some("ghcr.io/example/web:1.5.0"));
    assert_eq!(c[0].env.as_ref().unwrap()[0].name, "LOG_LEVEL", "strategic merge kept the env");
    let applied = deploys
        .patch(
            "web",
            &PatchParams::apply("agentops").force(),
            &Patch::Apply(json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "labels": {"owner": "agentops"}}})),
        )
        .await
        .unwrap();
    assert_eq!(applied.metadata.labels.as_ref().unwrap()["owner"], "agentops");
    let mf = applied.metadata.managed_fields.unwrap();
    assert!(mf.iter().any(|e| e.manager.as_deref() == Some("agentops") && e.operation.as_deref() == Some("Apply")));

    // replace with a stale resourceVersion: 409 with the API server's message.
    let mut stale = web.clone();
    stale.metadata.labels.get_or_insert_default().insert("x".into(), "y".into());
    let err = deploys.replace("web", &PostParams::default(), &stale).await.unwrap_err();
    match err {
        kube::Error::Api(s) => {
            assert_eq!(s.code, 409);
            assert_eq!(s.reason, "Conflict");
            assert!(
                s.message.starts_with(
                    "Operation cannot be fulfilled on deployments.apps \"web\": the object has been modified"
                ),
                "{}",
                s.message
            );
        }
        other => panic!("expected a 409, got {other:?}"),
    }
    // The simulated controller may write status meanwhile: retry on conflict, as clients do.
    let mut replaced = None;
    for _ in 0..5 {
        let mut fresh = deploys.get("web").await.unwrap();
        fresh.metadata.labels.get_or_insert_default().insert("x".into(), "y".into());
        match deploys.replace("web", &PostParams::default(), &fresh).await {
            Ok(d) => {
                replaced = Some(d);
                break;
            }
            Err(kube::Error::Api(s)) if s.code == 409 => continue,
            Err(e) => panic!("{e}"),
        }
    }
    let replaced = replaced.expect("replace kept conflicting");
    assert_eq!(replaced.metadata.labels.unwrap()["x"], "y");

    // dryRun=All persists nothing.
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "shop");
    let cm: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "dry"}, "data": {"k": "v"}})).unwrap();
    let created = cms.create(&PostParams { dry_run: true, ..Default::default() }, &cm).await.unwrap();
    assert_eq!(created.metadata.name.as_deref(), Some("dry"));
    assert!(cms.get_opt("dry").await.unwrap().is_none());
    let pp_dry = PatchParams { dry_run: true, ..Default::default() };
    deploys.patch("web", &pp_dry, &Patch::Merge(json!({"spec": {"replicas": 9}}))).await.unwrap();
    assert_eq!(deploys.get("web").await.unwrap().spec.unwrap().replicas, Some(2));
    deploys.delete("web", &DeleteParams { dry_run: true, ..Default::default() }).await.unwrap();
    assert!(deploys.get_opt("web").await.unwrap().is_some());

    // Create and delete, with the real error shapes.
    cms.create(&PostParams::default(), &cm).await.unwrap();
    match cms.create(&PostParams::default(), &cm).await.unwrap_err() {
        kube::Error::Api(s) => {
            assert_eq!((s.code, s.reason.as_str()), (409, "AlreadyExists"));
            assert_eq!(s.message, "configmaps \"dry\" already exists");
        }
        other => panic!("{other:?}"),
    }
    cms.delete("dry", &DeleteParams::default()).await.unwrap();
    match cms.get("dry").await.unwrap_err() {
        kube::Error::Api(s) => assert_eq!((s.code, s.message.as_str()), (404, "configmaps \"dry\" not found")),
        other => panic!("{other:?}"),
    }
    deploys.delete("web", &DeleteParams::default()).await.unwrap();
    assert!(deploys.get_opt("web").await.unwrap().is_none());
    let other_ns: Api<ConfigMap> = Api::namespaced(client.clone(), "nowhere");
    match other_ns.create(&PostParams::default(), &cm).await.unwrap_err() {
        kube::Error::Api(s) => assert_eq!((s.code, s.message.as_str()), (404, "namespaces \"nowhere\" not found")),
        other => panic!("{other:?}"),
    }
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_patches_all_land_in_order() {
    let env = Env::start(&["prod"]).await;
    let client = env.client("prod").await;
    let deploys: Api<Deployment> = Api::namespaced(client, "shop");
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let api = deploys.clone();
            tokio::spawn(async move {
                let p =
                    Patch::Merge(json!({"metadata": {"annotations": {format!("example.com/n{i}"): i.to_string()}}}));
                let d = api.patch("web", &PatchParams::default(), &p).await.unwrap();
                d.metadata.resource_version.unwrap().parse::<u64>().unwrap()
            })
        })
        .collect();
    let mut rvs = Vec::new();
    for t in tasks {
        rvs.push(t.await.unwrap());
    }
    rvs.sort();
    rvs.dedup();
    assert_eq!(rvs.len(), 20, "every patch got its own resourceVersion: {rvs:?}");
    let d = deploys.get("web").await.unwrap();
    let ann = d.metadata.annotations.unwrap();
    for i in 0..20 {
        assert_eq!(ann[&format!("example.com/n{i}")], i.to_string());
    }
    assert!(d.metadata.resource_version.unwrap().parse::<u64>().unwrap() >= *rvs.last().unwrap());
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn watches_stream_changes() {
    use futures::{StreamExt, TryStreamExt};
    let env = Env::start(&["prod"]).await;
    let client = env.client("prod").await;
    let cms: Api<ConfigMap> = Api::namespaced(client, "shop");
    let rv = cms.list(&ListParams::default()).await.unwrap().metadata.resource_version.unwrap();
    let mut stream = cms.watch(&kube::api::WatchParams::default().timeout(10), &rv).await.unwrap().boxed();
    let cm: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "w"}, "data": {"k": "v"}})).unwrap();
    cms.create(&PostParams::default(), &cm).await.unwrap();
    cms.patch("w", &PatchParams::default(), &Patch::Merge(json!({"data": {"k": "v2"}}))).await.unwrap();
    cms.delete("w", &DeleteParams::default()).await.unwrap();
    let mut seen = Vec::new();
    while seen.len() < 3 {
        let ev = tokio::time::timeout(Duration::from_secs(10), stream.try_next()).await.unwrap().unwrap().unwrap();
        match ev {
            kube::api::WatchEvent::Added(o) => seen.push(("ADDED", o.data.unwrap()["k"].clone())),
            kube::api::WatchEvent::Modified(o) => seen.push(("MODIFIED", o.data.unwrap()["k"].clone())),
            kube::api::WatchEvent::Deleted(o) => seen.push(("DELETED", o.data.unwrap()["k"].clone())),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(seen, vec![("ADDED", "v".to_string()), ("MODIFIED", "v2".to_string()), ("DELETED", "v2".to_string())]);

    // The streaming list that `kubectl rollout status` uses: existing objects, then a bookmark.
    let http = reqwest::Client::new();
    let url = format!(
        "{}/api/v1/namespaces/shop/configmaps?watch=1&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true&timeoutSeconds=1",
        env.fleet.clusters()[0].url()
    );
    let body = http.get(url).send().await.unwrap().text().await.unwrap();
    let events: Vec<Value> = body.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(events.len(), 2, "{body}");
    assert_eq!(events[0]["type"], "ADDED");
    assert_eq!(events[0]["object"]["metadata"]["name"], "web-config");
    assert_eq!(events[1]["type"], "BOOKMARK");
    assert_eq!(events[1]["object"]["metadata"]["annotations"]["k8s.io/initial-events-end"], "true");
    env.stop().await;
}

struct FakePrometheus;

impl ServiceProxy for FakePrometheus {
    fn handle(
        &self,
        namespace: &str,
        service: &str,
        port: &str,
        path_and_query: &str,
    ) -> Option<(u16, String, Vec<u8>)> {
        let body = json!({"namespace": namespace, "service": service, "port": port, "path": path_and_query});
        Some((200, "application/json".into(), body.to_string().into_bytes()))
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn raw_http_discovery_openapi_errors_and_proxy() {
    let env = Env::start(&["prod"]).await;
    let base = env.fleet.clusters()[0].url().to_string();
    let http = reqwest::Client::new();
    let get = |path: &str, accept: &str| {
        let req = http.get(format!("{base}{path}")).header("accept", accept);
        async move {
            let resp = req.send().await.unwrap();
            let status = resp.status().as_u16();
            let ct = resp.headers().get("content-type").map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
            (status, ct, resp.text().await.unwrap())
        }
    };
    let (status, ct, body) =
        get("/apis", "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json").await;
    assert_eq!(status, 200);
    assert_eq!(ct, "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList");
    let doc: Value = serde_json::from_str(&body).unwrap();
    let apps = doc["items"].as_array().unwrap().iter().find(|g| g["metadata"]["name"] == "apps").unwrap();
    let dep =
        apps["versions"][0]["resources"].as_array().unwrap().iter().find(|r| r["resource"] == "deployments").unwrap();
    assert_eq!(
        dep["subresources"][0]["responseKind"],
        json!({"group": "autoscaling", "version": "v1", "kind": "Scale"})
    );
    assert!(doc["items"].as_array().unwrap().iter().all(|g| g["metadata"]["name"] != "argoproj.io"));
    let (_, ct, body) = get("/apis", "application/json").await;
    assert_eq!(ct, "application/json");
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["kind"], "APIGroupList");
    let (_, _, body) = get("/api/v1", "application/json").await;
    assert!(!body.contains("\"deployments\"") && body.contains("\"pods/status\""));

    let (status, _, body) = get("/openapi/v3", "application/json").await;
    assert_eq!(status, 200);
    let index: Value = serde_json::from_str(&body).unwrap();
    let url = index["paths"]["apis/apps/v1"]["serverRelativeURL"].as_str().unwrap().to_string();
    let (status, _, body) = get(&url, "application/json").await;
    assert_eq!(status, 200);
    assert!(body.contains("fieldValidation"));
    let (status, ct, body) = get("/openapi/v2", "application/com.github.proto-openapi.spec.v2@v1.0+protobuf").await;
    assert_eq!(
        (status, ct.as_str(), body.as_str()),
        (200, "application/com.github.proto-openapi.spec.v2.v1.0+protobuf", "")
    );
    let (status, _, body) = get("/version", "application/json").await;
    assert_eq!(status, 200);
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["major"], "1");
    assert_eq!(get("/healthz", "*/*").await.0, 200);

    let (status, _, body) = get("/apis/apps/v1/namespaces/shop/deployments/nope", "application/json").await;
    assert_eq!(status, 404);
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap(),
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
               "message": "deployments.apps \"nope\" not found", "reason": "NotFound",
               "details": {"name": "nope", "group": "apps", "kind": "deployments"}, "code": 404})
    );
    let resp = http
        .put(format!("{base}/apis/apps/v1/namespaces/shop/deployments"))
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 405);
    assert_eq!(resp.json::<Value>().await.unwrap()["reason"], "MethodNotAllowed");

    // The service proxy reaches whatever the cluster plugs in.
    // Built in: the simulated Prometheus answers for Prometheus services from MockMetrics,
    // and nothing answers for other services.
    let (status, _, body) = get(
        "/api/v1/namespaces/monitoring/services/prometheus:9090/proxy/api/v1/query?query=http_requests_total",
        "*/*",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["data"]["result"][0]["value"][1], "1200");
    assert_eq!(get("/api/v1/namespaces/shop/services/web:80/proxy/", "*/*").await.0, 503);
    let proxy_path = "/api/v1/namespaces/monitoring/services/prometheus:9090/proxy/api/v1/query?query=up";
    env.fleet.clusters()[0].set_service_proxy(std::sync::Arc::new(FakePrometheus));
    let (status, _, body) = get(proxy_path, "*/*").await;
    assert_eq!(status, 200);
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap(),
        json!({"namespace": "monitoring", "service": "prometheus", "port": "9090", "path": "/api/v1/query?query=up"})
    );
    assert_eq!(get("/api/v1/namespaces/monitoring/services/nope:9090/proxy/x", "*/*").await.0, 404);
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn fixture_errors_name_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ok.yaml"), "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n").unwrap();
    std::fs::write(dir.path().join("broken.yaml"), "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: [unclosed\n")
        .unwrap();
    let err = MockFleet::start(&[("x".into(), dir.path().to_path_buf())], &MockOptions::default()).await.unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("broken.yaml:"), "{msg}");
    assert!(matches!(err, agentops::Error::Config { line: Some(l), .. } if (4..=5).contains(&l)), "{msg}");

    std::fs::remove_file(dir.path().join("broken.yaml")).unwrap();
    std::fs::write(
        dir.path().join("unknown.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: b\n---\napiVersion: example.com/v1\nkind: Gadget\nmetadata:\n  name: g\n",
    )
    .unwrap();
    let err = MockFleet::start(&[("x".into(), dir.path().to_path_buf())], &MockOptions::default()).await.unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("unknown.yaml:6") && msg.contains("Gadget") && msg.contains("CustomResourceDefinition"),
        "{msg}"
    );

    let err = MockFleet::start(&[("x".into(), dir.path().join("missing"))], &MockOptions::default()).await.unwrap_err();
    assert!(err.to_string().contains("missing"), "{err}");
}

#[test]
fn cli_serves_until_terminated() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_agentops"))
        .args(["mock-cluster", "serve", "--cluster"])
        .arg(format!("prod={}", shop_prod().display()))
        .arg("--cluster")
        .arg(format!("dev={}", shop_prod().display()))
        .arg("--kubeconfig-out")
        .arg(&kubeconfig)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    let second = lines.next().unwrap().unwrap();
    assert!(first.starts_with("prod http://127.0.0.1:"), "{first}");
    assert!(second.starts_with("dev http://127.0.0.1:"), "{second}");
    let out = std::process::Command::new(kubectl_bin())
        .args(["--context", "dev", "get", "ns", "shop", "-o", "name"])
        .env("KUBECONFIG", &kubeconfig)
        .env("KUBECACHEDIR", dir.path().join("cache"))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "namespace/shop\n", "{}", String::from_utf8_lossy(&out.stderr));
    let killed = std::process::Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(killed.success());
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0));

    let r = agentops(&["mock-cluster", "serve", "--cluster", "nodir"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("NAME=DIR"), "{}", r.stderr);
}
