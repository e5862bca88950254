//! Drift benchmarks (`cargo bench --bench drift`): defaulting, normalize, semantic diff and
//! classification of 10,000 objects (target: at most 0.5 s), and a drift check of 5 mock clusters against 1 (target:
//! about the time of the slowest cluster, since clusters are queried concurrently).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::time::Instant;

use agentops::k8s::compare::{self, Witness};
use agentops::mock::{MockFleet, MockOptions};
use agentops::workflows::drift::{self, DriftRequest};
use agentops::workflows::{Ctx, CtxOptions};
use serde_json::{Value, json};

fn pair(i: usize) -> (Value, Value) {
    let desired = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": format!("app-{i}"), "namespace": "team", "labels": {"app.kubernetes.io/name": format!("app-{i}")}},
        "spec": {"replicas": 3, "selector": {"matchLabels": {"app": format!("app-{i}")}}, "template": {"metadata": {"labels": {"app": format!("app-{i}")}},
        "spec": {"containers": [{"name": "app", "image": format!("ghcr.io/acme/app-{i}:1.0.{i}"), "ports": [{"containerPort": 8080}],
            "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}], "resources": {"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "100m", "memory": "128Mi"}}}]}}}});
    // as the API server stores it: with its defaults
    let mut live = compare::with_defaults(&desired);
    live["metadata"]["uid"] = json!("0000");
    live["metadata"]["resourceVersion"] = json!("12345");
    live["metadata"]["managedFields"] =
        json!([{"manager": "argocd-controller", "operation": "Apply", "fieldsV1": {"f:spec": {}}}]);
    live["status"] = json!({"replicas": 3, "readyReplicas": 3});
    live["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"] = json!("IfNotPresent");
    live["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["cpu"] = json!("1000m");
    if i.is_multiple_of(10)
        && let Some(c) = live["spec"]["template"]["spec"]["containers"].as_array_mut()
    {
        c.push(json!({"name": "sidecar", "image": "proxy:1"}));
        if let Some(m) = live["metadata"]["managedFields"].as_array_mut() {
            m.push(json!({"manager": "kubectl-edit", "operation": "Update", "fieldsV1": {"f:spec": {"f:template": {"f:spec": {"f:containers": {"k:{\"name\":\"sidecar\"}": {".": {}, "f:image": {}, "f:name": {}}}}}}}}));
        }
    }
    (desired, live)
}

fn main() {
    let pairs: Vec<(Value, Value)> = (0..10_000).map(pair).collect();
    let t = Instant::now();
    let witness = Witness::with(&[], &[]);
    let drifted = pairs.iter().filter(|(d, l)| !compare::compare(d, l, &witness).changes.is_empty()).count();
    let secs = t.elapsed().as_secs_f64();
    println!(
        "defaults + normalize + diff of 10000 objects: {secs:.3} s ({drifted} drifted; target <= 0.5 s) {}",
        if secs <= 0.5 { "OK" } else { "OVER" }
    );

    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    runtime.block_on(async {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/platform");
        let envs = ["dev", "staging", "prod-west", "prod-east", "prod-central"];
        let dirs: Vec<(String, std::path::PathBuf)> = envs.iter().map(|e| (e.to_string(), root.join("clusters").join(e))).collect();
        // 5 ms per answer stands in for the network between agentops and real API servers
        let opts = MockOptions { latency: Some(std::time::Duration::from_millis(5)), ..MockOptions::default() };
        let fleet = MockFleet::start(&dirs, &opts).await.expect("mock clusters");
        let work = tempfile::tempdir().expect("tempdir");
        let kc = work.path().join("kubeconfig");
        fleet.write_kubeconfig(&kc).expect("kubeconfig");
        let ctx = Ctx::new(&root, CtxOptions { kubeconfig: Some(kc), cache_dir: Some(work.path().join("cache")), ..CtxOptions::default() });
        let repo = ctx.load_repo().expect("repo");
        let engine = ctx.engine(&repo).expect("kustomize");
        let clusters = ctx.clusters().expect("clusters");
        let time = |req: DriftRequest| {
            let (repo, engine, clusters, ctx) = (&repo, &engine, &clusters, &ctx);
            async move {
                let t = Instant::now();
                let r = drift::run(repo, engine, clusters, ctx.redactor(), &req).await.expect("drift");
                (t.elapsed().as_secs_f64(), r.summary.objects + r.drifts.len())
            }
        };
        // warm the build cache and the clients first
        let _ = time(DriftRequest::default()).await;
        let mut slowest: f64 = 0.0;
        for e in envs {
            let (s, _) = time(DriftRequest { env: vec![e.to_string()], ..DriftRequest::default() }).await;
            slowest = slowest.max(s);
            println!("drift, 1 cluster ({e}): {s:.3} s");
        }
        let (all, n) = time(DriftRequest::default()).await;
        println!(
            "drift, 5 clusters concurrently: {all:.3} s ({n} objects and findings); ratio to the slowest single cluster {:.2} (target about 1)",
            all / slowest
        );
        fleet.shutdown().await;
    });
}
