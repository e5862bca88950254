//! Migration planning: the fixture repo references redis in every way the scanner knows,
//! plus decoys; the dependency set must come out exactly, the plan's ordering rules hold, the
//! document is snapshot-tested and its Mermaid graph parses, and the LLM path is re-checked.

use std::collections::BTreeSet;
use std::path::Path;

use agentops::llm::OpenAiClient;
use agentops::tools::{CtxOptions, ToolCtx, ToolRegistry};
use agentops::workflows::migrate::graph::{Access, Criticality};
use agentops::workflows::migrate::llm::Refiner;
use agentops::workflows::migrate::plan::PhaseKind;
use agentops::workflows::migrate::{self, MigrateRequest, Migration, RunOptions};
use serde_json::json;

use super::common::*;
use super::llm::{Fake, text};

fn cache_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("migrate-cache")
}

fn ctx(root: &Path) -> ToolCtx {
    ToolCtx::new(root, CtxOptions { cache_dir: Some(cache_dir()), ..CtxOptions::default() })
}

fn request() -> MigrateRequest {
    MigrateRequest { from: "redis".into(), to: "elasticache".into(), offline: true, ..MigrateRequest::default() }
}

async fn run(root: &Path, refiner: Option<Refiner<'_>>) -> Migration {
    let opts = RunOptions { date: Some("2025-01-01".into()), path: None, refiner };
    migrate::run(&ctx(root), &request(), opts).await.unwrap()
}

#[tokio::test]
async fn the_fixture_dependency_set_is_found_exactly() {
    let m = run(&fixture("migrate"), None).await;
    let found: BTreeSet<(String, String, String)> = m
        .scan
        .findings
        .iter()
        .map(|f| (f.app.clone(), f.env.clone(), serde_json::to_value(f.kind).unwrap().as_str().unwrap().to_string()))
        .collect();
    let mut want = BTreeSet::new();
    for env in ["dev", "staging", "prod"] {
        for (app, kind) in [
            ("cart", "config-map-value"),
            ("cart", "config-map-key"),
            ("cart", "container-env-from"),
            ("cart", "network-policy"),
            ("cart", "secret-key"),
            ("sessions", "container-env"),
            ("reader", "config-map-value"),
            ("reader", "config-map-key"),
            ("reader", "container-env-from"),
            ("proxy", "service"),
            ("monitoring", "grafana-dashboard"),
            ("monitoring", "service-monitor"),
            ("monitoring", "prometheus-rule"),
            ("worker", "helm-values"),
            ("redis", "argocd-application"),
        ] {
            want.insert((app.to_string(), env.to_string(), kind.to_string()));
        }
    }
    want.insert(("bridge".into(), "prod".into(), "endpoints".into()));
    want.insert(("bridge".into(), "prod".into(), "network-policy".into()));
    assert_eq!(found, want);
    // the exact fields: decoys (README, comments, labels, redislock, the web dashboard,
    // WebErrors, PAYMENT_TOKEN, LOG_LEVEL) are not references
    let fields: BTreeSet<(String, String)> =
        m.scan.findings.iter().filter(|f| f.env == "prod").map(|f| (f.app.clone(), f.field.clone())).collect();
    let want_fields: BTreeSet<(String, String)> = [
        ("bridge", "egress[0] to CIDR"),
        ("bridge", "port"),
        ("cart", "CART_STORE_URL"),
        ("cart", "REDIS_POOL_SIZE"),
        ("cart", "REDIS_PASSWORD"),
        ("cart", "configMapRef cart-config"),
        ("cart", "secretRef cart-secrets"),
        ("cart", "egress[0] to pods"),
        ("monitoring", "cache.json"),
        ("monitoring", "selector"),
        ("monitoring", "CacheDown"),
        ("proxy", "externalName"),
        ("reader", "REDIS_REPLICA_HOST"),
        ("reader", "REDIS_READ_ONLY"),
        ("reader", "configMapRef reader-config-k7d97dct74"),
        ("redis", "source.path"),
        ("sessions", "SESSION_STORE_HOST"),
        ("sessions", "REDIS_PORT"),
        ("sessions", "SESSION_STORE_PASSWORD"),
        ("worker", "queue.backend.host"),
        ("worker", "redis.database"),
    ]
    .iter()
    .map(|(a, f)| (a.to_string(), f.to_string()))
    .collect();
    assert_eq!(fields, want_fields);
    assert!(m.scan.findings.iter().all(|f| f.app != "search" && f.file != "README.md"));
    // file and line point at the setting, not at a comment
    let host = m.scan.findings.iter().find(|f| f.field == "SESSION_STORE_HOST").unwrap();
    assert_eq!((host.file.as_str(), host.line), ("apps/sessions/base/deployment.yaml", 20));
    let lit = m.scan.findings.iter().find(|f| f.field == "REDIS_REPLICA_HOST").unwrap();
    assert_eq!((lit.file.as_str(), lit.line), ("apps/reader/base/kustomization.yaml", 9));
    // secret values never appear, only key names
    let all = serde_json::to_string(&m).unwrap();
    assert!(!all.contains("example-not-a-secret"), "a secret value leaked");
    let services: Vec<&str> = m.graph.services.iter().map(|s| s.app.as_str()).collect();
    assert_eq!(services, ["bridge", "cart", "monitoring", "proxy", "reader", "sessions", "worker"]);
}

#[tokio::test]
async fn access_criticality_and_the_plan_ordering_rules() {
    let m = run(&fixture("migrate"), None).await;
    let s = |a: &str| m.graph.service(a).unwrap().clone();
    assert_eq!(s("reader").access, Access::ReadOnly);
    assert_eq!(s("monitoring").access, Access::ReadOnly);
    assert_eq!(s("cart").access, Access::ReadWrite);
    assert_eq!(s("cart").criticality, Criticality::Critical);
    assert_eq!(s("sessions").criticality, Criticality::High);

    let p = &m.plan;
    let kinds: Vec<PhaseKind> = p.phases.iter().map(|ph| ph.kind).collect();
    assert_eq!(kinds.first(), Some(&PhaseKind::Preparation));
    assert_eq!(kinds.last(), Some(&PhaseKind::Cleanup));
    let envs: Vec<&str> = p.phases.iter().filter_map(|ph| ph.env.as_deref()).collect();
    assert_eq!(envs, ["dev", "staging", "prod"]);
    for ph in p.phases.iter().filter(|ph| ph.kind == PhaseKind::Environment) {
        let order: Vec<(bool, Access)> = ph
            .waves
            .iter()
            .flat_map(|w| w.services.iter())
            .map(|a| (s(a).criticality == Criticality::Critical, s(a).access))
            .collect();
        let mut sorted = order.clone();
        sorted.sort();
        assert_eq!(order, sorted, "{}: read-only first, critical last", ph.name);
        assert_eq!(ph.waves.last().unwrap().services, ["cart"], "{}", ph.name);
        assert!(ph.waves.iter().all(|w| !w.validation.is_empty()) && !ph.rollback_triggers.is_empty());
        assert!(ph.estimate_hours > 0);
    }
    let prod = p.phases.iter().find(|ph| ph.env.as_deref() == Some("prod")).unwrap();
    assert!(prod.waves.iter().any(|w| w.services.contains(&"bridge".to_string())), "bridge is prod-only");
    assert!(!p.phases[1].waves.iter().any(|w| w.services.contains(&"bridge".to_string())));
    // the old dependency is removed only at cleanup
    let cleanup = p.phases.last().unwrap();
    assert!(cleanup.steps.iter().any(|st| st.contains("argocd/prod/redis.yaml")), "{:?}", cleanup.steps);
    assert!(p.phases[..p.phases.len() - 1].iter().all(|ph| ph.steps.iter().all(|st| !st.contains("Remove redis"))));
    assert!(p.rollback.meets_target && p.rollback.estimate_minutes <= 30);
    assert_eq!(p.total_hours, p.phases.iter().map(|ph| ph.estimate_hours).sum::<u32>());

    // a tighter rollback target than the slowest wave is reported, not hidden
    let tight = MigrateRequest { rollback_within: Some("5m".into()), ..request() };
    let opts = RunOptions { date: Some("2025-01-01".into()), path: None, refiner: None };
    let t = migrate::run(&ctx(&fixture("migrate")), &tight, opts).await.unwrap();
    assert!(!t.plan.rollback.meets_target && t.plan.risks.iter().any(|r| r.contains("over the 5 min target")));
}

/// The team's own estimates from `.agentops.yaml` drive the phases and the rollback time.
#[tokio::test]
async fn estimates_come_from_the_config() {
    let default = run(&fixture("migrate"), None).await;
    let repo = copy_fixture("migrate");
    let config = repo.path().join(".agentops.yaml");
    let text = std::fs::read_to_string(&config).unwrap()
        + "migrate:\n  preparation_hours: 16\n  soak_hours: {prod: 72}\n  revert_minutes: 10\n";
    std::fs::write(&config, text).unwrap();
    let tuned = run(repo.path(), None).await;
    let phase = |m: &Migration, name: &str| m.plan.phases.iter().find(|p| p.name == name).unwrap().estimate_hours;
    assert_eq!(phase(&default, "Preparation"), 8);
    assert_eq!(phase(&tuned, "Preparation"), 16);
    assert_eq!(phase(&tuned, "Migrate prod"), phase(&default, "Migrate prod") + 24);
    assert_eq!(phase(&tuned, "Migrate staging"), phase(&default, "Migrate staging"), "staging keeps its default");
    assert_eq!(tuned.plan.total_hours, default.plan.total_hours + 8 + 24);
    assert_eq!(tuned.plan.rollback.estimate_minutes, default.plan.rollback.estimate_minutes + 5);

    std::fs::write(&config, "migrate:\n  soak_days: 3\n").unwrap();
    let opts = RunOptions { date: Some("2025-01-01".into()), path: None, refiner: None };
    let err = migrate::run(&ctx(repo.path()), &request(), opts).await.unwrap_err().to_string();
    assert!(err.contains(".agentops.yaml") && err.contains("soak_days"), "{err}");
}

/// A structural check of the Mermaid flowchart we emit: a header, node definitions and
/// edges with labels between defined nodes.
fn check_mermaid(text: &str) -> Result<(usize, usize), String> {
    let mut lines = text.lines();
    if lines.next().map(str::trim) != Some("graph LR") {
        return Err("no `graph LR` header".into());
    }
    let id = regex::Regex::new(r"^[A-Za-z_][A-Za-z0-9_]*$").unwrap();
    let node = regex::Regex::new(r#"^([A-Za-z_][A-Za-z0-9_]*)(\["[^"\[\]()]*"\]|\[\("[^"\[\]()]*"\)\])$"#).unwrap();
    let edge = regex::Regex::new(r"^(\S+) (-->|-\.->)\|([^|]+)\| (\S+)$").unwrap();
    let mut nodes = BTreeSet::new();
    let mut edges = 0;
    for l in lines {
        let l = l.trim();
        if let Some(c) = node.captures(l) {
            nodes.insert(c[1].to_string());
        } else if let Some(c) = edge.captures(l) {
            for n in [&c[1], &c[4]] {
                if !id.is_match(n) || !nodes.contains(n) {
                    return Err(format!("edge to an undefined node {n:?}: {l}"));
                }
            }
            edges += 1;
        } else {
            return Err(format!("not a node or an edge: {l:?}"));
        }
    }
    Ok((nodes.len(), edges))
}

#[test]
fn the_mermaid_checker_can_fail() {
    assert!(check_mermaid("graph LR\n  a[\"x\"]\n  a -->|y| b").is_err());
    assert!(check_mermaid("graph LR\n  a[\"x (y)\"]").is_err());
    assert!(check_mermaid("flowchart\n  a[\"x\"]").is_err());
    assert_eq!(check_mermaid("graph LR\n  a[\"x\"]\n  b[(\"y\")]\n  a -->|z| b"), Ok((2, 1)));
}

#[tokio::test]
async fn the_document_is_snapshot_and_its_graph_parses() {
    let m = run(&fixture("migrate"), None).await;
    assert_eq!(m.document.path, "docs/migrations/2025-01-01-redis-to-elasticache.md");
    // 7 services + redis + elasticache; one edge per service + the replacement
    assert_eq!(check_mermaid(&m.document.mermaid), Ok((9, 8)));
    assert!(m.document.markdown.contains(&format!("```mermaid\n{}\n```", m.document.mermaid)));
    assert!(!m.document.markdown.contains("example-not-a-secret"));
    insta::assert_snapshot!("migrate_fixture_document", m.document.markdown);
}

#[tokio::test]
async fn the_example_platform_demo() {
    let m = run(&Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/platform"), None).await;
    let services: Vec<&str> = m.graph.services.iter().map(|s| s.app.as_str()).collect();
    assert_eq!(
        services,
        ["api-gateway", "auth-service", "catalog", "grafana", "inventory", "notifications", "orders", "user-profile"]
    );
    assert!(m.graph.services.iter().all(|s| s.envs.len() == 5));
    assert_eq!(m.graph.dependency_applications.len(), 5);
    assert_eq!(m.graph.dependency.hosts, ["redis.data.svc.cluster.local", "redis-headless.data.svc.cluster.local"]);
    assert!(m.scan.failed.is_empty(), "{:?}", m.scan.failed);
    let envs: Vec<&str> = m.plan.phases.iter().filter_map(|p| p.env.as_deref()).collect();
    assert_eq!(&envs[..2], ["dev", "staging"]);
    assert_eq!(check_mermaid(&m.document.mermaid).map(|(n, _)| n), Ok(10));
}

#[test]
fn the_cli_prints_the_summary_and_writes_only_with_yes() {
    let dir = copy_fixture("migrate");
    git_init(dir.path());
    let root = dir.path().to_str().unwrap();
    let cache = cache_dir();
    let base =
        ["--repo", root, "--cache-dir", cache.to_str().unwrap(), "migrate", "--from", "redis", "--to", "elasticache"];
    let mut args: Vec<&str> = base.to_vec();
    args.extend(["--offline", "--date", "2025-01-01"]);
    let r = agentops(&args);
    assert_eq!(r.code, 0, "{}", r.stderr);
    insta::assert_snapshot!("migrate_fixture_text", r.stdout);
    assert!(r.stderr.contains("Nothing was written"));
    assert!(!dir.path().join("docs").exists());

    // unreachable clusters are "unknown", not a failure
    let mut online: Vec<&str> = base.to_vec();
    online.extend(["--kubeconfig", "/nonexistent/kubeconfig", "--date", "2025-01-01", "--format", "json"]);
    let r = agentops(&online);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["graph"]["clusters_checked"], true);
    assert!(v["graph"]["services"].as_array().unwrap().iter().all(|s| s["envs"][0]["running"] == "unknown"));

    args.extend(["--yes", "--commit"]);
    let r = agentops(&args);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let doc = dir.path().join("docs/migrations/2025-01-01-redis-to-elasticache.md");
    assert!(std::fs::read_to_string(&doc).unwrap().starts_with("# Migration: redis → elasticache"));
    assert_eq!(git(dir.path(), &["status", "--porcelain"]), "");
    assert!(git(dir.path(), &["log", "-1", "--format=%s"]).contains("plan the migration from redis to elasticache"));
    // a second run does not overwrite it
    let r = agentops(&args);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("exists"), "{}", r.stderr);
}

#[tokio::test]
async fn write_doc_stays_inside_the_repo_and_refuses_to_overwrite() {
    let dir = tempfile::tempdir().unwrap();
    git_init_empty(dir.path());
    let registry = ToolRegistry::builtin();
    let c = ToolCtx::new(dir.path(), CtxOptions::default());
    for bad in ["../x.md", "/etc/x.md", "docs/../../x.md", ""] {
        let e = registry.call(&c, "write_doc", json!({"path": bad, "content": "x"})).await.unwrap_err();
        assert!(e.public.contains("inside the repository"), "{bad}: {}", e.public);
    }
    let outside = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(outside.path(), dir.path().join("link")).unwrap();
    let e = registry.call(&c, "write_doc", json!({"path": "link/x.md", "content": "x"})).await.unwrap_err();
    assert!(e.public.contains("outside the repository"), "{}", e.public);
    let out =
        registry.call(&c, "write_doc", json!({"path": "docs/a.md", "content": "one", "commit": true})).await.unwrap();
    assert!(out["commit"].as_str().is_some_and(|c| c.len() == 40), "{out}");
    let e = registry.call(&c, "write_doc", json!({"path": "docs/a.md", "content": "two"})).await.unwrap_err();
    assert!(e.public.contains("exists"), "{}", e.public);
    registry.call(&c, "write_doc", json!({"path": "docs/a.md", "content": "two", "overwrite": true})).await.unwrap();
    assert_eq!(std::fs::read_to_string(dir.path().join("docs/a.md")).unwrap(), "two");
    let e = registry.call(&c, "write_doc", json!({"path": "docs/b.md"})).await.unwrap_err();
    assert!(e.public.contains("exactly one"), "{}", e.public);
}

fn git_init_empty(dir: &Path) {
    std::fs::write(dir.join("README.md"), "x\n").unwrap();
    git_init(dir);
}

fn refiner<'a>(client: &'a OpenAiClient, fake: &Fake) -> Refiner<'a> {
    let registry = ToolRegistry::builtin();
    let agents = agentops::agents::Agents::builtin(&registry).unwrap();
    Refiner {
        llm: client,
        settings: fake.settings(),
        analyst: agents.require("migrate-analyst").unwrap().clone(),
        writer: agents.require("migrate-writer").unwrap().clone(),
        repo: json!({"environments": ["dev", "staging", "prod"], "apps": [], "argocd_applications": 6}),
    }
}

#[tokio::test]
async fn llm_refinement_is_rechecked_and_a_dropped_service_is_overruled() {
    let root = fixture("migrate");
    let base = run(&root, None).await;

    // 1. the analyst drops "worker"; the writer invents a number: both overruled
    let mut dropped = serde_json::to_value(&base.graph).unwrap();
    dropped["services"].as_array_mut().unwrap().retain(|s| s["app"] != "worker");
    let fake = Fake::start(vec![
        text(&format!("Here you go:\n```json\n{dropped}\n```"), (10, 10)),
        text(r#"{"summary": "Nine services depend on redis; 99 hours."}"#, (5, 5)),
    ])
    .await;
    let client = OpenAiClient::with_key(&fake.settings(), "").unwrap();
    let m = run(&root, Some(refiner(&client, &fake))).await;
    assert_eq!(m.graph.services.len(), 7);
    assert!(m.graph.service("worker").is_some());
    assert!(m.graph.notes.iter().any(|n| n.contains("overruled") && n.contains("worker")), "{:?}", m.graph.notes);
    assert!(
        m.graph.notes.iter().any(|n| n.contains("writer summary overruled") && n.contains("99")),
        "{:?}",
        m.graph.notes
    );
    assert_eq!(m.document.summary, base.document.summary);
    assert_eq!(m.plan, base.plan);
    let seen = fake.seen();
    assert_eq!(seen.len(), 2);
    let system = seen[0].body["messages"][0]["content"].as_str().unwrap();
    assert!(system.contains("analyst of the agentops migration team"), "{system}");
    assert!(!seen.iter().any(|s| s.body.to_string().contains("example-not-a-secret")));

    // 2. a review that keeps every service and number: its judgement and wording are taken
    let mut good = serde_json::to_value(&base.graph).unwrap();
    for s in good["services"].as_array_mut().unwrap() {
        if s["app"] == "proxy" {
            s["access"] = json!("read-only");
            s["access_reason"] = json!("ExternalName alias used by read paths only");
            s["note"] = json!("Legacy alias; remove once clients use the new host.");
        }
    }
    let summary = base.document.summary.replace("services depend on", "services currently depend on");
    let fake =
        Fake::start(vec![text(&good.to_string(), (10, 10)), text(&json!({ "summary": summary }).to_string(), (5, 5))])
            .await;
    let client = OpenAiClient::with_key(&fake.settings(), "").unwrap();
    let m = run(&root, Some(refiner(&client, &fake))).await;
    assert_eq!(m.graph.service("proxy").unwrap().access, Access::ReadOnly);
    assert!(m.document.markdown.contains("Legacy alias; remove once clients use the new host."));
    assert_eq!(m.document.summary, summary);
    assert_eq!(m.graph.services.len(), 7);
}
