//! The tool catalog: schemas committed and fresh, the CLI over the registry.

use serde_json::Value;

use super::common::*;
use agentops::tools::ToolRegistry;

#[test]
fn committed_schemas_are_fresh() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/schemas");
    let files = ToolRegistry::builtin().schema_files();
    for (name, content) in &files {
        let committed = std::fs::read_to_string(dir.join(name)).unwrap_or_default();
        assert_eq!(&committed, content, "tools/schemas/{name} is stale: run `cargo run -- tools export`");
    }
    let on_disk = std::fs::read_dir(&dir).unwrap().count();
    assert_eq!(on_disk, files.len(), "tools/schemas holds files for tools that no longer exist");
}

#[test]
fn list_shows_every_tool_with_effect_and_schema() {
    let r = agentops(&["tools", "list", "--format", "json"]);
    assert_eq!(r.code, 0);
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    let names: Vec<&str> = v.as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        vec![
            "argocd_app_status",
            "argocd_sync",
            "cluster_prereqs",
            "cluster_query",
            "commit",
            "create_app",
            "dependency_graph",
            "dependency_scan",
            "diff",
            "draft_commit_message",
            "drift_acknowledge",
            "drift_capture",
            "drift_report",
            "git_log",
            "git_revert",
            "harmonize_apply",
            "harmonize_plan",
            "kustomize_build",
            "metrics_query",
            "render_overlay",
            "repo_scan",
            "rollback_plan",
            "rollback_verify",
            "validate",
            "write_doc",
            "write_files"
        ]
    );
    for t in v.as_array().unwrap() {
        let effect = match t["name"].as_str().unwrap() {
            "argocd_sync" | "drift_acknowledge" => "WritesCluster",
            "drift_capture" | "harmonize_apply" | "commit" | "create_app" | "write_files" | "git_revert"
            | "rollback_verify" | "write_doc" => "WritesRepo",
            _ => "ReadOnly",
        };
        assert_eq!(t["effect"], effect, "{t}");
        assert_eq!(t["parameters"]["type"], "object");
        assert_eq!(t["parameters"]["additionalProperties"], false, "{t}");
    }
    let scan = &v.as_array().unwrap().iter().find(|t| t["name"] == "repo_scan").unwrap()["parameters"]["properties"];
    assert!(scan["kind"]["description"].as_str().unwrap().contains("Object kind"), "doc comments become descriptions");
}

#[test]
fn call_validates_arguments_before_running() {
    let repo = fixture("clean");
    // arguments the schema refuses are a usage error (2), as bad JSON is
    let r = agentops(&["tools", "call", "validate", "--args", r#"{"bogus": 1}"#, "--repo", repo.to_str().unwrap()]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("bogus"), "{}", r.stderr);
    let r = agentops(&["tools", "call", "validate", "--args", r#"{"env": "dev"}"#, "--repo", repo.to_str().unwrap()]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("/env"), "{}", r.stderr);
    let r = agentops(&["tools", "call", "validate", "--args", "{env", "--repo", repo.to_str().unwrap()]);
    assert_eq!(r.code, 2);
    // a tool that runs and fails is 1
    let r =
        agentops(&["tools", "call", "validate", "--args", r#"{"env": ["nope"]}"#, "--repo", repo.to_str().unwrap()]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("unknown environment \"nope\""), "{}", r.stderr);
    let r = agentops(&["tools", "call", "nope", "--repo", repo.to_str().unwrap()]);
    assert_eq!(r.code, 2);
    let r = agentops(&[
        "tools",
        "call",
        "validate",
        "--args",
        r#"{"env": ["prod"]}"#,
        "--repo",
        repo.to_str().unwrap(),
        "--no-cache",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["summary"]["overlays"], 2);
}

#[test]
fn repo_scan_finds_objects_in_sources_and_rendered_output() {
    let repo = fixture("clean");
    let r = agentops(&[
        "tools",
        "call",
        "repo_scan",
        "--args",
        r#"{"kind": "ingress"}"#,
        "--repo",
        repo.to_str().unwrap(),
        "--no-cache",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    let m = v["matches"].as_array().unwrap();
    let sources: Vec<_> = m.iter().filter(|x| x["where"] == "source").collect();
    assert_eq!(sources.len(), 1);
    assert_eq!(sources[0]["file"], "apps/web/base/service.yaml");
    assert_eq!(sources[0]["line"], 13);
    // a base file belongs to its app (no environment)
    assert_eq!((&sources[0]["app"], &sources[0]["env"]), (&Value::from("web"), &Value::Null));
    let rendered: Vec<_> = m.iter().filter(|x| x["where"] == "rendered").collect();
    assert_eq!(rendered.len(), 2);
    assert!(rendered.iter().all(|x| x["file"] == "apps/web/base/service.yaml" && x["object"] == "Ingress/web/web"));

    let r = agentops(&[
        "tools",
        "call",
        "repo_scan",
        "--args",
        r#"{"label": "app.kubernetes.io/name=api", "env": "prod", "scope": "rendered"}"#,
        "--repo",
        repo.to_str().unwrap(),
        "--no-cache",
    ]);
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    let objects: Vec<&str> = v["matches"].as_array().unwrap().iter().map(|x| x["object"].as_str().unwrap()).collect();
    assert_eq!(objects, vec!["Secret/api/api-db", "Deployment/api/api", "NetworkPolicy/api/default-deny"]);

    let r = agentops(&[
        "tools",
        "call",
        "repo_scan",
        "--args",
        r#"{"text": "ssl-redirect", "scope": "sources"}"#,
        "--repo",
        repo.to_str().unwrap(),
    ]);
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["matches"][0]["line"], 18);
    assert_eq!(v["matches"][0]["snippet"], "nginx.ingress.kubernetes.io/ssl-redirect: \"true\"");
    assert_eq!(v["matches"][0]["app"], "web");
}

#[test]
fn kustomize_build_returns_objects_or_a_pinned_error() {
    let r = agentops(&[
        "tools",
        "call",
        "kustomize_build",
        "--args",
        r#"{"overlay": "apps/web/overlays/prod"}"#,
        "--repo",
        fixture("clean").to_str().unwrap(),
        "--no-cache",
    ]);
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    let kinds: Vec<&str> = v["objects"].as_array().unwrap().iter().map(|o| o["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, vec!["ConfigMap", "Service", "Deployment", "Ingress", "NetworkPolicy"]);
    let dep = v["objects"].as_array().unwrap().iter().find(|o| o["kind"] == "Deployment").unwrap();
    assert_eq!(dep["spec"]["replicas"], 3);
    assert_eq!(
        dep["spec"]["template"]["spec"]["volumes"][0]["configMap"]["defaultMode"], 420,
        "0644 is octal, as kubectl reads it"
    );
    let r = agentops(&[
        "tools",
        "call",
        "kustomize_build",
        "--args",
        r#"{"overlay": "apps/shop/overlays/prod"}"#,
        "--repo",
        fixture("defects").to_str().unwrap(),
        "--no-cache",
    ]);
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["errors"][0]["class"], "missing-file");
    assert_eq!(v["errors"][0]["file"], "apps/shop/overlays/prod/kustomization.yaml");
    assert_eq!(v["errors"][0]["line"], 5);
    let r = agentops(&[
        "tools",
        "call",
        "kustomize_build",
        "--args",
        r#"{"overlay": "../../etc"}"#,
        "--repo",
        fixture("clean").to_str().unwrap(),
    ]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("outside the repo"), "{}", r.stderr);
}

#[test]
fn the_validate_tool_rejects_unknown_environments() {
    let r = agentops(&[
        "tools",
        "call",
        "validate",
        "--args",
        r#"{"env": ["qa"]}"#,
        "--repo",
        fixture("clean").to_str().unwrap(),
    ]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("unknown environment \"qa\"") && r.stderr.contains("dev, prod"), "{}", r.stderr);
}

/// `agentops tools list | head -1`: the reader closes the pipe; agentops ends quietly with
/// 141 (as a process ended by SIGPIPE) instead of a panic and a backtrace.
#[test]
fn a_closed_output_pipe_ends_quietly() {
    for args in [&["tools", "list"][..], &["tools", "list", "--format", "json"][..]] {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_agentops"))
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take()); // the reader is gone before anything is written
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("panicked") && !stderr.contains("Broken pipe"), "{args:?}: {stderr}");
        assert_eq!(out.status.code(), Some(141), "{args:?}: {stderr}");
    }
}

/// A password inside a connection string in a ConfigMap never reaches output: not in a
/// rendered object, not in the migration scan (which still sees the host and port).
#[test]
fn passwords_in_connection_strings_are_redacted_everywhere() {
    let repo = tempfile::tempdir().unwrap();
    copy_dir(&platform(), repo.path());
    let k = repo.path().join("apps/auth-service/base/kustomization.yaml");
    let text = std::fs::read_to_string(&k).unwrap().replace(
        "      - LOG_LEVEL=info\n",
        "      - LOG_LEVEL=info\n      - REDIS_URL=redis://:CANARY3pw@redis.data.svc.cluster.local:6379/0\n",
    );
    std::fs::write(&k, text).unwrap();
    let root = repo.path().to_str().unwrap();
    let build = agentops(&[
        "--repo",
        root,
        "--no-cache",
        "tools",
        "call",
        "kustomize_build",
        "--args",
        r#"{"overlay": "apps/auth-service/overlays/dev"}"#,
    ]);
    let scan = agentops(&[
        "--repo",
        root,
        "--no-cache",
        "migrate",
        "--from",
        "redis",
        "--to",
        "elasticache",
        "--offline",
        "--format",
        "json",
    ]);
    for (what, r) in [("kustomize_build", &build), ("migrate", &scan)] {
        assert_eq!(r.code, 0, "{what}: {}\n{}", r.stdout, r.stderr);
        assert!(!r.stdout.contains("CANARY3pw") && !r.stderr.contains("CANARY3pw"), "{what} leaked: {}", r.stdout);
        assert!(r.stdout.contains("redis://:<redacted>@redis.data.svc.cluster.local:6379/0"), "{what}: {}", r.stdout);
    }
}

/// `tools list` is one line per tool; `tools show NAME` prints one with its arguments.
#[test]
fn tools_list_is_compact_and_show_prints_one() {
    let r = agentops(&["tools", "list"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let n = ToolRegistry::builtin().list().len();
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(lines.len(), n + 2, "{}", r.stdout);
    assert!(lines.iter().all(|l| l.chars().count() <= 140), "{}", r.stdout);
    let validate = lines.iter().find(|l| l.starts_with("validate ")).expect("a validate line");
    assert!(validate.contains("ReadOnly"), "{validate}");
    assert!(!r.stdout.contains("\"properties\""), "no schemas in the text list: {}", r.stdout);

    let r = agentops(&["tools", "show", "cluster_query"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.starts_with("cluster_query (ReadOnly)\n"), "{}", r.stdout);
    let kind = r.stdout.lines().find(|l| l.trim_start().starts_with("kind ")).expect("the kind argument");
    assert!(kind.contains("string (required)"), "{kind}");
    let env = r.stdout.lines().find(|l| l.trim_start().starts_with("env ")).expect("the env argument");
    assert!(env.contains("[string] (optional)"), "{env}");
    assert!(r.stdout.contains("show_managed_fields"), "{}", r.stdout);

    let r = agentops(&["tools", "show", "cluster_query", "--format", "json"]);
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["parameters"]["required"], serde_json::json!(["kind"]));

    let r = agentops(&["tools", "show", "nope"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("unknown tool \"nope\""), "{}", r.stderr);
}
