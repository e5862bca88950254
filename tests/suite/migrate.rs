//! Migration planning: the fixture repo references redis in every way the scanner knows,
//! plus decoys; the dependency set must come out exactly, the plan's ordering rules hold, the
//! document is snapshot-tested and its Mermaid graph parses, and the LLM path is re-checked.

use std::collections::BTreeSet;
use std::path::Path;

use agentops::llm::OpenAiClient;
use agentops::tools::ToolRegistry;
use agentops::workflows::migrate::changes::{self, Edit, EditOp, ProposedChange, apply_to_text};
use agentops::workflows::migrate::feasibility::Verdict;
use agentops::workflows::migrate::graph::{Access, Criticality, Usage};
use agentops::workflows::migrate::llm::Refiner;
use agentops::workflows::migrate::plan::PhaseKind;
use agentops::workflows::migrate::{self, MigrateRequest, Migration, RunOptions};
use agentops::workflows::{Ctx, CtxOptions};
use serde_json::json;

use super::common::*;
use super::llm::{Fake, text};

fn ctx(root: &Path) -> Ctx {
    Ctx::new(
        root,
        CtxOptions { cache_dir: Some(std::path::PathBuf::from(cache_dir("migrate-cache"))), ..CtxOptions::default() },
    )
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
async fn waves_go_by_what_each_service_keeps_and_observers_are_no_wave() {
    let m = run(&fixture("migrate"), None).await;
    let s = |a: &str| m.graph.service(a).unwrap().clone();
    assert_eq!(s("reader").access, Access::ReadOnly);
    assert_eq!(s("monitoring").access, Access::ReadOnly);
    assert_eq!(s("cart").access, Access::ReadWrite);
    assert_eq!(s("cart").criticality, Criticality::Critical);
    assert_eq!(s("sessions").criticality, Criticality::High);
    // what each keeps, read from the repo
    let usage = |a: &str| s(a).keeps.usage;
    assert_eq!(usage("monitoring"), Usage::Observer);
    assert_eq!(usage("reader"), Usage::ReadOnly);
    assert_eq!(usage("sessions"), Usage::Sessions);
    assert_eq!(usage("worker"), Usage::QueueIdempotency);
    assert_eq!((usage("cart"), usage("bridge"), usage("proxy")), (Usage::Unknown, Usage::Unknown, Usage::Unknown));
    assert!(s("sessions").keeps.auth, "SESSION_STORE_PASSWORD is a password for it");
    assert_eq!(m.plan.observers, ["monitoring"]);

    let p = &m.plan;
    let kinds: Vec<PhaseKind> = p.phases.iter().map(|ph| ph.kind).collect();
    assert_eq!(kinds.first(), Some(&PhaseKind::Preparation));
    assert_eq!(kinds.last(), Some(&PhaseKind::Cleanup));
    let envs: Vec<&str> = p.phases.iter().filter_map(|ph| ph.env.as_deref()).collect();
    assert_eq!(envs, ["dev", "staging", "prod"]);
    for ph in p.phases.iter().filter(|ph| ph.kind == PhaseKind::Environment) {
        let order: Vec<Usage> = ph.waves.iter().map(|w| w.usage).collect();
        let mut sorted = order.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(order, sorted, "{}: one wave per usage, cheapest to lose first", ph.name);
        assert!(ph.waves.iter().all(|w| !w.services.contains(&"monitoring".to_string())), "an observer is no wave");
        // unknown data last, its critical service last in it
        let last = ph.waves.last().unwrap();
        assert_eq!(last.usage, Usage::Unknown);
        assert_eq!(last.services.last().map(String::as_str), Some("cart"), "{}", ph.name);
        for w in &ph.waves {
            assert!(!w.validation.is_empty() && !w.strategy.is_empty() && !w.rollback_loses.is_empty());
        }
        assert!(!ph.rollback_triggers.is_empty() && ph.estimate_hours > 0);
    }
    let wave = |env: &str, u: Usage| {
        p.phases.iter().find(|ph| ph.env.as_deref() == Some(env)).unwrap().waves.iter().find(|w| w.usage == u).cloned()
    };
    assert!(wave("prod", Usage::Unknown).unwrap().services.contains(&"bridge".to_string()), "bridge is prod-only");
    assert!(!wave("dev", Usage::Unknown).unwrap().services.contains(&"bridge".to_string()));
    assert!(wave("dev", Usage::Sessions).unwrap().strategy.starts_with("dual-write"));
    assert!(wave("dev", Usage::QueueIdempotency).unwrap().strategy.starts_with("drain"));
    // the old dependency is removed only at cleanup
    let cleanup = p.phases.last().unwrap();
    assert!(cleanup.steps.iter().any(|st| st.contains("argocd/prod/redis.yaml")), "{:?}", cleanup.steps);
    assert!(p.phases[..p.phases.len() - 1].iter().all(|ph| ph.steps.iter().all(|st| !st.contains("Remove redis"))));
    assert!(p.rollback.meets_target && p.rollback.estimate_minutes <= 30);
    assert_eq!(p.total_hours, p.phases.iter().map(|ph| ph.estimate_hours).sum::<u32>());
    // a calendar of days within the window
    assert_eq!(p.calendar.last().unwrap().what, "done on day 7 of the 14-day window (7 days to spare)");

    // a tighter rollback target than the slowest wave is reported, not hidden
    let tight = MigrateRequest { rollback_within: Some("5m".into()), ..request() };
    let opts = RunOptions { date: Some("2025-01-01".into()), path: None, refiner: None };
    let t = migrate::run(&ctx(&fixture("migrate")), &tight, opts).await.unwrap();
    assert!(!t.plan.rollback.meets_target && t.plan.risks.iter().any(|r| r.contains("over the 5 min target")));

    // a plan longer than the window says so in the calendar and the risks
    let short = MigrateRequest { window_days: Some(3), ..request() };
    let opts = RunOptions { date: Some("2025-01-01".into()), path: None, refiner: None };
    let s = migrate::run(&ctx(&fixture("migrate")), &short, opts).await.unwrap();
    assert!(!s.plan.fits_window);
    assert_eq!(s.plan.calendar.last().unwrap().what, "day 7: past the 3-day window");
    assert!(s.plan.risks.iter().any(|r| r.contains("does not fit the 3-day window")), "{:?}", s.plan.risks);
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

/// A structural check of the Mermaid flowchart we emit: a header, subgraphs (each closed)
/// holding node definitions, and labelled edges between defined nodes or subgraphs.
fn check_mermaid(text: &str) -> Result<(usize, usize, usize), String> {
    let mut lines = text.lines();
    if lines.next().map(str::trim) != Some("graph LR") {
        return Err("no `graph LR` header".into());
    }
    let id = regex::Regex::new(r"^[A-Za-z_][A-Za-z0-9_]*$").unwrap();
    let node = regex::Regex::new(r#"^([A-Za-z_][A-Za-z0-9_]*)(\["[^"\[\]()]*"\]|\[\("[^"\[\]()]*"\)\])$"#).unwrap();
    let sub = regex::Regex::new(r#"^subgraph ([A-Za-z_][A-Za-z0-9_]*)\["[^"\[\]()]*"\]$"#).unwrap();
    let edge = regex::Regex::new(r"^(\S+) (-->|-\.->)\|([^|]+)\| (\S+)$").unwrap();
    let mut nodes = BTreeSet::new();
    let mut subgraphs = BTreeSet::new();
    let mut open = 0;
    let mut edges = 0;
    for l in lines {
        let l = l.trim();
        if let Some(c) = sub.captures(l) {
            if open > 0 {
                return Err(format!("nested subgraph: {l}"));
            }
            subgraphs.insert(c[1].to_string());
            open += 1;
        } else if l == "end" {
            if open == 0 {
                return Err("`end` without a subgraph".into());
            }
            open -= 1;
        } else if let Some(c) = node.captures(l) {
            nodes.insert(c[1].to_string());
        } else if let Some(c) = edge.captures(l) {
            for n in [&c[1], &c[4]] {
                if !id.is_match(n) || !(nodes.contains(n) || subgraphs.contains(n)) {
                    return Err(format!("edge to an undefined node {n:?}: {l}"));
                }
            }
            edges += 1;
        } else {
            return Err(format!("not a node, subgraph or edge: {l:?}"));
        }
    }
    if open != 0 {
        return Err("a subgraph is not closed".into());
    }
    Ok((nodes.len(), subgraphs.len(), edges))
}

#[test]
fn the_mermaid_checker_can_fail() {
    assert!(check_mermaid("graph LR\n  a[\"x\"]\n  a -->|y| b").is_err());
    assert!(check_mermaid("graph LR\n  a[\"x (y)\"]").is_err());
    assert!(check_mermaid("flowchart\n  a[\"x\"]").is_err());
    assert!(check_mermaid("graph LR\n  subgraph w[\"x\"]\n  a[\"x\"]").is_err(), "not closed");
    assert_eq!(check_mermaid("graph LR\n  a[\"x\"]\n  b[(\"y\")]\n  a -->|z| b"), Ok((2, 0, 1)));
    assert_eq!(
        check_mermaid("graph LR\n  subgraph w1[\"W\"]\n    a[\"x\"]\n  end\n  b[(\"y\")]\n  w1 -->|z| b"),
        Ok((2, 1, 1))
    );
}

#[tokio::test]
async fn the_document_is_snapshot_and_its_graph_parses() {
    let m = run(&fixture("migrate"), None).await;
    assert_eq!(m.document.path, "docs/migrations/2025-01-01-redis-to-elasticache.md");
    assert_eq!(m.document.record_path, "docs/migrations/2025-01-01-redis-to-elasticache.json");
    // 7 services + redis + elasticache; 4 waves + the observers; the waves chained (3), each
    // wave and the observers to redis (5), redis to elasticache
    assert_eq!(check_mermaid(&m.document.mermaid), Ok((9, 5, 9)));
    assert!(m.document.markdown.contains(&format!("```mermaid\n{}\n```", m.document.mermaid)));
    assert!(!m.document.markdown.contains("example-not-a-secret"));
    insta::assert_snapshot!("migrate_fixture_document", m.document.markdown);
}

#[tokio::test]
async fn the_example_platform_demo() {
    let m = run(&platform(), None).await;
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
    assert_eq!(check_mermaid(&m.document.mermaid).map(|(n, w, _)| (n, w)), Ok((10, 5)));
    // waves by what each service keeps, as the repo says: cache -> rate/TTL data ->
    // sessions -> queues/idempotency; grafana only observes
    let waves: Vec<(Usage, Vec<String>)> =
        m.plan.phases[1].waves.iter().map(|w| (w.usage, w.services.clone())).collect();
    let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert_eq!(
        waves,
        [
            (Usage::Cache, names(&["catalog", "user-profile"])),
            (Usage::RateTtl, names(&["api-gateway", "inventory"])),
            (Usage::Sessions, names(&["auth-service"])),
            (Usage::QueueIdempotency, names(&["notifications", "orders"])),
        ]
    );
    assert_eq!(m.plan.observers, ["grafana"]);
    let keeps = &m.graph.service("auth-service").unwrap().keeps;
    assert_eq!(keeps.ttls, ["SESSION_TTL_SECONDS=3600"]);
    assert_eq!(keeps.databases, ["REDIS_DB=0"]);
    assert!(keeps.evidence[0].contains("Issues and validates session tokens"), "{:?}", keeps.evidence);
    // a plan a team reads in a pull request
    let lines = m.document.markdown.lines().count();
    assert!(lines <= 310, "{lines} lines");
    assert!(m.document.markdown.contains("| 2. rate/TTL data | api-gateway, inventory |"), "{}", m.document.markdown);
    assert!(m.document.markdown.contains(
        "TLS: api-gateway, auth-service, catalog, inventory, notifications, orders, user-profile have no TLS setting"
    ));
    assert!(m.document.markdown.contains(
        "Databases: auth-service 0, catalog 3, notifications 4, orders 2, user-profile 1 select logical databases"
    ));
    // the full matrix beside it: every reference per environment
    let refs = m.document.record["references"].as_array().unwrap();
    assert_eq!(refs.len(), m.scan.findings.iter().filter(|f| f.app != "redis").count());
    assert_eq!(m.document.record["agentops_record"]["commit"]["scope"], "migrations");
}

/// Every proposed change, applied to a scratch copy of the example platform and built with
/// the real kustomize: each touched overlay builds, only the settings meant to change do, a
/// generated ConfigMap keeps the overlay's own literals (dev's LOG_LEVEL=debug and its short
/// cache TTL), and a plain ConfigMap's readers get the restart annotation.
#[tokio::test]
async fn every_proposed_change_applies_to_a_scratch_copy_and_builds() {
    let example = platform();
    let m = run(&example, None).await;
    let check = m.document.check.clone().expect("checked");
    assert!(check.passed(), "{:?}", check.problems);
    assert_eq!((check.overlays, check.built), (35, 35));
    assert_eq!(
        check.changed,
        ["ConfigMap REDIS_HOST", "Deployment REDIS_HOST", "Deployment agentops.dev/migration"],
        "nothing else renders differently"
    );

    // the same edits, applied here to a copy, as a reviewer pasting them would
    let copy = tempfile::tempdir().unwrap();
    copy_dir(&example, copy.path());
    let mut by_file: std::collections::BTreeMap<String, Vec<&Edit>> = Default::default();
    for e in m.document.changes.iter().flat_map(|c| c.edits.iter()) {
        by_file.entry(e.file.clone()).or_default().push(e);
    }
    for (file, edits) in &by_file {
        let path = copy.path().join(file);
        let text = match edits.iter().find_map(|e| match &e.op {
            EditOp::NewFile { content } => Some(content.clone()),
            _ => None,
        }) {
            Some(t) => t,
            None => apply_to_text(&std::fs::read_to_string(&path).unwrap(), edits),
        };
        std::fs::write(&path, text).unwrap();
    }
    let k = std::fs::read_to_string(copy.path().join("apps/catalog/overlays/dev/kustomization.yaml")).unwrap();
    assert_eq!(k.matches("configMapGenerator:").count(), 1, "merged into the existing block:\n{k}");
    let build = |dir: &str| {
        let out =
            std::process::Command::new("kubectl").args(["kustomize", dir]).current_dir(copy.path()).output().unwrap();
        assert!(out.status.success(), "{dir}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    let dev = build("apps/catalog/overlays/dev");
    for want in ["REDIS_HOST: elasticache-endpoint-dev", "LOG_LEVEL: debug", "CACHE_TTL_SECONDS: \"30\""] {
        assert!(dev.contains(want), "{want}:\n{dev}");
    }
    let orders = build("apps/orders/overlays/prod-west");
    assert!(orders.contains("REDIS_HOST: elasticache-endpoint-prod-west"), "{orders}");
    assert!(orders.contains("agentops.dev/migration: redis-to-elasticache"), "the readers restart:\n{orders}");
    let gateway = build("apps/api-gateway/overlays/staging");
    assert!(gateway.contains("value: elasticache-endpoint-staging"), "{gateway}");
}

/// The check can fail: a second `configMapGenerator:` block (what a naive paste adds) drops
/// the overlay's own literals, and the check says which setting changed that should not.
#[tokio::test]
async fn the_scratch_check_catches_a_second_generator_block() {
    let example = platform();
    let m = run(&example, None).await;
    let mut naive: Vec<ProposedChange> =
        m.document.changes.iter().filter(|c| c.app == "auth-service" && c.env == "dev").cloned().collect();
    naive[0].edits = vec![Edit {
        file: "apps/auth-service/overlays/dev/kustomization.yaml".into(),
        op: EditOp::Append {
            text: "configMapGenerator:\n  - name: auth-service-config\n    behavior: merge\n    literals:\n      - REDIS_HOST=elasticache-endpoint-dev\n".into(),
        },
        what: "a second block".into(),
    }];
    let repo = agentops::repo::Repo::load(&example).unwrap();
    let engine = agentops::kustomize::Engine::new(
        agentops::kustomize::Kustomize::locate(None).unwrap(),
        Some(std::path::PathBuf::from(cache_dir("migrate-cache"))),
    );
    let check = changes::check(&repo, &engine, &naive).unwrap();
    assert!(!check.passed());
    assert!(check.problems.iter().any(|p| p.contains("LOG_LEVEL")), "{:?}", check.problems);
}

/// The example fleet with its mock clusters, as the demo plans it: the clouds come from the
/// clusters (dev is local, prod-central is GKE: ElastiCache is AWS-only there).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_example_fleet_document_with_its_clusters() {
    let example = platform();
    let dirs: Vec<(String, std::path::PathBuf)> = ["dev", "staging", "prod-west", "prod-east", "prod-central"]
        .iter()
        .map(|e| (e.to_string(), example.join("clusters").join(e)))
        .collect();
    let fleet = agentops::mock::MockFleet::start(&dirs, &agentops::mock::MockOptions::default()).await.unwrap();
    let kc = tempfile::NamedTempFile::new().unwrap();
    fleet.write_kubeconfig(kc.path()).unwrap();
    let ctx = Ctx::new(
        &example,
        CtxOptions {
            cache_dir: Some(std::path::PathBuf::from(cache_dir("migrate-cache"))),
            kubeconfig: Some(kc.path().to_path_buf()),
            ..CtxOptions::default()
        },
    );
    let req = MigrateRequest { offline: false, ..request() };
    let opts = RunOptions { date: Some("2025-01-01".into()), path: None, refiner: None };
    let m = migrate::run(&ctx, &req, opts).await.unwrap();
    let verdicts: Vec<(&str, Option<&str>, Verdict)> =
        m.feasibility.envs.iter().map(|e| (e.env.as_str(), e.cloud.as_deref(), e.verdict)).collect();
    assert_eq!(
        verdicts,
        [
            ("dev", Some("local"), Verdict::Blocked),
            ("staging", Some("aws"), Verdict::Feasible),
            ("prod-west", Some("aws"), Verdict::Feasible),
            ("prod-east", Some("aws"), Verdict::Feasible),
            ("prod-central", Some("gcp"), Verdict::Blocked),
        ]
    );
    let central = m.plan.phases.iter().find(|p| p.env.as_deref() == Some("prod-central")).unwrap();
    assert!(central.blocked.as_deref().is_some_and(|b| b.contains("AWS-only")), "{:?}", central.blocked);
    insta::assert_snapshot!("migrate_example_document", m.document.markdown);
    // the workflow's own commit of the document, from its record
    let commit: agentops::workflows::commit::draft::WorkflowCommit =
        serde_json::from_value(m.document.record["agentops_record"]["commit"].clone()).unwrap();
    insta::assert_snapshot!("migrate_example_commit", agentops::workflows::commit::draft::workflow_message(&commit));
    fleet.shutdown().await;
}

#[test]
fn the_cli_prints_the_summary_and_writes_only_with_yes() {
    let dir = copy_fixture("migrate");
    git_init(dir.path());
    let root = dir.path().to_str().unwrap();
    let cache = std::path::PathBuf::from(cache_dir("migrate-cache"));
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
    assert!(std::fs::read_to_string(&doc).unwrap().starts_with("# Migration plan: redis → elasticache\n"));
    assert!(dir.path().join("docs/migrations/2025-01-01-redis-to-elasticache.json").exists(), "the record beside it");
    assert_eq!(git(dir.path(), &["status", "--porcelain"]), "");
    // the workflow's own commit: what the plan is, not a file list
    let message = git(dir.path(), &["log", "-1", "--format=%B"]);
    assert!(
        message.starts_with("docs(migrations): plan the redis to elasticache migration in 4 waves\n\n"),
        "{message}"
    );
    assert!(message.contains("2. sessions: sessions (dual-write for one session TTL)"), "{message}");
    let files = git(dir.path(), &["show", "--name-only", "--format=", "HEAD"]);
    assert_eq!(
        files.lines().collect::<Vec<_>>(),
        ["docs/migrations/2025-01-01-redis-to-elasticache.json", "docs/migrations/2025-01-01-redis-to-elasticache.md"]
    );
    // a second run does not overwrite it
    let r = agentops(&args);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("exists"), "{}", r.stderr);
}

/// One text rendering: `agentops ask "/infrastructure-migrate ..."` (and so chat and the demo,
/// which print steps the same way) shows the migration exactly as `agentops migrate` does,
/// never a JSON outline of the tool's output.
#[test]
fn ask_shows_the_migration_as_the_cli_does() {
    let dir = copy_fixture("migrate");
    git_init(dir.path());
    let root = dir.path().to_str().unwrap();
    let cache = std::path::PathBuf::from(cache_dir("migrate-cache"));
    let common = ["--repo", root, "--cache-dir", cache.to_str().unwrap(), "--kubeconfig", "/nonexistent/kubeconfig"];
    let cli = agentops(&[&common[..], &["migrate", "--from", "redis", "--to", "elasticache"]].concat());
    assert_eq!(cli.code, 0, "{}", cli.stderr);
    let cli_text: Vec<&str> = cli.stdout.lines().take_while(|l| !l.starts_with("document: ")).collect();
    let ask = agentops(&[&common[..], &["ask", "/infrastructure-migrate redis elasticache"]].concat());
    let ask_text: Vec<&str> = ask
        .stdout
        .lines()
        .skip_while(|l| !l.starts_with("✓ dependency_graph"))
        .skip(1)
        .take_while(|l| !l.contains(" write_doc "))
        .map(|l| l.strip_prefix("  ").unwrap_or(l))
        .collect();
    assert!(cli_text.len() > 10 && cli_text[0].starts_with("migrate redis -> elasticache: "), "{}", cli.stdout);
    assert_eq!(ask_text, cli_text, "ask:\n{}\ncli:\n{}", ask.stdout, cli.stdout);
    for shape in ["{", "items", "dependency:"] {
        assert!(!ask.stdout.contains(shape), "{shape:?} in {}", ask.stdout);
    }
}

#[tokio::test]
async fn write_doc_stays_inside_the_repo_and_refuses_to_overwrite() {
    let dir = tempfile::tempdir().unwrap();
    git_init_empty(dir.path());
    let registry = ToolRegistry::builtin();
    let c = Ctx::new(dir.path(), CtxOptions::default());
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
    let summary = base.document.summary.replace("services keep data in", "services currently keep data in");
    assert_ne!(summary, base.document.summary);
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
