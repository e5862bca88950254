//! `agentops validate` end to end with the real kustomize on fixture repos.

use serde_json::Value;

use super::common::*;

fn validate_json(repo: &std::path::Path, extra: &[&str]) -> (i32, Value) {
    let mut args = vec!["validate", "--repo", repo.to_str().unwrap(), "--format", "json"];
    args.extend_from_slice(extra);
    let r = agentops(&args);
    let v: Value = serde_json::from_str(&r.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}\nstderr: {}", r.stdout, r.stderr));
    (r.code, v)
}

fn has(findings: &Value, check: &str, file: &str, line: Option<u64>) -> bool {
    findings
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f["check"] == check && f["file"] == file && line.is_none_or(|l| f["line"] == l))
}

#[test]
fn clean_repo_passes() {
    let r = agentops(&["validate", "--repo", fixture("clean").to_str().unwrap(), "--no-cache"]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    insta::assert_snapshot!("clean_text", r.stdout);
    let (code, v) = validate_json(&fixture("clean"), &["--no-cache"]);
    assert_eq!(code, 0);
    assert_eq!(v["summary"]["errors"], 0);
    // 4 conventional overlays and platform/namespaces; not the Component, not templates/
    assert_eq!(v["summary"]["overlays_built"], 5);
    assert_eq!(v["summary"]["argocd_applications"], 4, "the other repo's Application is skipped");
}

#[test]
fn every_defect_is_found_with_file_and_line() {
    let (code, v) = validate_json(&fixture("defects"), &["--no-cache"]);
    assert_eq!(code, 1);
    let f = &v["findings"];
    assert!(has(f, "yaml-syntax", "apps/broken/base/configmap.yaml", Some(7)), "{f:#}");
    assert!(has(f, "kustomize-build", "apps/broken/base/configmap.yaml", Some(7)));
    assert!(
        has(f, "kustomize-build", "apps/shop/overlays/prod/kustomization.yaml", Some(5)),
        "missing resource pinned to its reference"
    );
    assert!(
        has(f, "kustomize-build", "apps/remote/overlays/dev/kustomization.yaml", Some(4)),
        "remote base is its own finding"
    );
    assert!(has(f, "schema", "apps/shop/base/deployment.yaml", Some(21)), "imagePullPolcy typo");
    assert!(has(f, "schema", "apps/shop/base/deployment.yaml", Some(9)), "replicas as a string");
    assert!(has(f, "schema", "apps/metrics/base/monitors.yaml", Some(13)), "typo under a CRD schema");
    assert!(has(f, "required-labels", "apps/shop/base/worker.yaml", Some(3)));
    assert!(has(f, "resource-limits", "apps/shop/base/deployment.yaml", Some(23)));
    assert!(has(f, "image-tag", "apps/shop/base/deployment.yaml", Some(20)));
    assert!(has(f, "image-tag", "apps/shop/base/worker.yaml", Some(17)));
    assert!(has(f, "network-policy", "apps/shop/base/worker.yaml", Some(11)));
    assert!(has(f, "argocd-path", "argocd/apps.yaml", Some(22)));
    assert!(!has(f, "argocd-path", "argocd/apps.yaml", Some(34)), "templated paths are skipped");
    let no_schema = f
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["message"].as_str().unwrap().contains("PodMonitor"))
        .expect("PodMonitor without CRD");
    assert_eq!(no_schema["severity"], "warning");
    // every finding names its overlay or file, and severities are known
    for x in f.as_array().unwrap() {
        assert!(x["file"].is_string(), "{x}");
        assert!(["error", "warning", "info"].contains(&x["severity"].as_str().unwrap()));
        for key in ["check", "severity", "file", "line", "overlay", "app", "env", "object", "message", "also"] {
            assert!(x.get(key).is_some(), "{key} missing in {x}");
        }
    }
    // one source line that gives the same finding in several overlays is one finding with
    // every overlay listed; the same line with a severity that differs by environment is not
    let at = |check: &str, line: u64| -> Vec<&Value> {
        f.as_array()
            .unwrap()
            .iter()
            .filter(|x| x["check"] == check && x["file"] == "apps/risky/base/agent.yaml" && x["line"] == line)
            .collect()
    };
    let host_network = at("host-network", 17);
    assert_eq!(host_network.len(), 1, "{host_network:?}");
    assert_eq!(host_network[0]["env"], "dev");
    assert_eq!(
        host_network[0]["also"],
        serde_json::json!([{"overlay": "apps/risky/overlays/prod", "env": "prod", "object": "Deployment/risky/agent"}])
    );
    let host_port = at("host-port", 26);
    assert_eq!(host_port.iter().map(|x| x["severity"].as_str().unwrap()).collect::<Vec<_>>(), ["warning", "error"]);
    assert!(host_port.iter().all(|x| x["also"] == serde_json::json!([])));
    // the broken app does not stop the others (shop dev, metrics dev, risky dev and prod)
    assert_eq!(v["summary"]["overlays_built"], 4);
    insta::assert_json_snapshot!("defects_json", v);
}

#[test]
fn defects_text_and_sarif() {
    let r = agentops(&["validate", "--repo", fixture("defects").to_str().unwrap(), "--no-cache"]);
    assert_eq!(r.code, 1);
    insta::assert_snapshot!("defects_text", r.stdout);
    let r = agentops(&["validate", "--repo", fixture("defects").to_str().unwrap(), "--no-cache", "--format", "sarif"]);
    assert_eq!(r.code, 1);
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["version"], "2.1.0");
    let results = v["runs"][0]["results"].as_array().unwrap();
    let (_, j) = validate_json(&fixture("defects"), &["--no-cache"]);
    assert_eq!(results.len(), j["findings"].as_array().unwrap().len());
    let rules: Vec<&str> =
        v["runs"][0]["tool"]["driver"]["rules"].as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap()).collect();
    for r in results {
        assert!(rules.contains(&r["ruleId"].as_str().unwrap()));
        assert!(r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"].is_string());
    }
}

#[test]
fn secret_values_never_reach_output() {
    let canaries = ["defects-canary-42f1c0", "defects-literal-9b8e77", "clean-canary-7d3f9a"];
    for repo in ["defects", "clean"] {
        for format in ["text", "json", "sarif"] {
            let r =
                agentops(&["validate", "--repo", fixture(repo).to_str().unwrap(), "--no-cache", "--format", format]);
            for c in canaries {
                assert!(!r.stdout.contains(c) && !r.stderr.contains(c), "{c} leaked in {repo} {format}");
            }
        }
        for (tool, args) in [
            ("repo_scan", r#"{"text":"canary"}"#),
            ("repo_scan", r#"{"kind":"Secret"}"#),
            ("kustomize_build", r#"{"overlay":"apps/shop/overlays/dev"}"#),
            ("kustomize_build", r#"{"overlay":"apps/api/overlays/dev"}"#),
        ] {
            let r = agentops(&[
                "tools",
                "call",
                tool,
                "--args",
                args,
                "--repo",
                fixture(repo).to_str().unwrap(),
                "--no-cache",
            ]);
            for c in canaries {
                assert!(
                    !r.stdout.contains(c) && !r.stderr.contains(c),
                    "{c} leaked by {tool} {args} on {repo}: {}",
                    r.stdout
                );
            }
        }
    }
    // and the scan still finds the Secret, with its keys
    let r = agentops(&[
        "tools",
        "call",
        "kustomize_build",
        "--args",
        r#"{"overlay":"apps/shop/overlays/dev"}"#,
        "--repo",
        fixture("defects").to_str().unwrap(),
        "--no-cache",
    ]);
    assert!(r.stdout.contains("\"password\": \"<redacted>\""), "{}", r.stdout);
}

#[test]
fn cache_makes_warm_runs_free_and_rebuilds_only_dependents() {
    let repo = copy_fixture("clean");
    let cache = tempfile::tempdir().unwrap();
    let args = ["--cache-dir", cache.path().to_str().unwrap()];
    let (_, cold) = validate_json(repo.path(), &args);
    assert_eq!(cold["summary"]["kustomize_runs"], 5);
    assert_eq!(cold["summary"]["cache_hits"], 0);
    let (_, warm) = validate_json(repo.path(), &args);
    assert_eq!(warm["summary"]["kustomize_runs"], 0);
    assert_eq!(warm["summary"]["cache_hits"], 5);
    assert_eq!(warm["findings"], cold["findings"]);

    // an edited base rebuilds exactly the overlays that use it
    let dep = repo.path().join("apps/web/base/deployment.yaml");
    let text = std::fs::read_to_string(&dep).unwrap().replace("nginx:1.27.0", "nginx:latest");
    std::fs::write(&dep, text).unwrap();
    let (_, edited) = validate_json(repo.path(), &args);
    assert_eq!(edited["summary"]["kustomize_runs"], 2);
    assert_eq!(edited["summary"]["cache_hits"], 3);
    assert!(
        has(&edited["findings"], "image-tag", "apps/web/base/deployment.yaml", Some(17)),
        "dev still uses the edited image"
    );

    // a corrupt cache entry is ignored and replaced, never trusted
    let mut corrupted = 0;
    for e in walk(cache.path()) {
        std::fs::write(
            &e,
            b"{\"format\":\"agentops-kustomize-cache-v1\",\"key\":\"x\",\"stdout\":\"kind: Evil\",\"check\":\"0\"}",
        )
        .unwrap();
        corrupted += 1;
    }
    assert!(corrupted >= 5);
    let (_, again) = validate_json(repo.path(), &args);
    assert_eq!(again["summary"]["kustomize_runs"], 5);
    assert_eq!(again["findings"], edited["findings"]);
    // --no-cache neither reads nor writes
    let (_, nocache) = validate_json(repo.path(), &["--no-cache"]);
    assert_eq!(nocache["summary"]["kustomize_runs"], 5);
}

#[test]
fn changed_since_validates_only_affected_overlays() {
    let repo = copy_fixture("clean");
    git_init(repo.path());
    let (_, none) = validate_json(repo.path(), &["--no-cache", "--changed-since", "HEAD"]);
    assert_eq!(none["summary"]["overlays"], 0);
    let api = repo.path().join("apps/api/base/api.yaml");
    let text = std::fs::read_to_string(&api).unwrap().replace("cpu: 250m, ", "");
    std::fs::write(&api, text).unwrap();
    let (code, v) = validate_json(repo.path(), &["--no-cache", "--changed-since", "HEAD"]);
    assert_eq!(code, 1);
    assert_eq!(v["summary"]["overlays"], 2);
    let overlays: std::collections::BTreeSet<&str> =
        v["findings"].as_array().unwrap().iter().filter_map(|f| f["overlay"].as_str()).collect();
    assert_eq!(overlays.into_iter().collect::<Vec<_>>(), vec!["apps/api/overlays/dev", "apps/api/overlays/prod"]);
    // a new, untracked overlay file counts as a change of that overlay only
    std::fs::write(repo.path().join("apps/web/overlays/dev/notes.yaml"), "a: [\n").unwrap();
    let (_, v) = validate_json(repo.path(), &["--no-cache", "--changed-since", "HEAD"]);
    assert!(has(&v["findings"], "yaml-syntax", "apps/web/overlays/dev/notes.yaml", None));
    let r = agentops(&["validate", "--repo", repo.path().to_str().unwrap(), "--changed-since", "no-such-rev"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
}

#[test]
fn filters_by_env_and_app() {
    let (_, v) = validate_json(&fixture("clean"), &["--no-cache", "--env", "prod", "--app", "web"]);
    assert_eq!(v["summary"]["overlays"], 1);
    assert_eq!(v["summary"]["argocd_applications"], 1);
    let (_, v) = validate_json(&fixture("clean"), &["--no-cache", "--env", "dev"]);
    assert_eq!(v["summary"]["overlays"], 2);
    let r = agentops(&["validate", "--repo", fixture("clean").to_str().unwrap(), "--env", "qa"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("unknown environment \"qa\"") && r.stderr.contains("dev, prod"), "{}", r.stderr);
}

#[test]
fn bad_config_and_missing_kustomize_are_usage_errors() {
    let repo = copy_fixture("clean");
    std::fs::write(repo.path().join(".agentops.yaml"), "repo_url: x\npolicies:\n  image-tags: {enabled: false}\n")
        .unwrap();
    let r = agentops(&["validate", "--repo", repo.path().to_str().unwrap()]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains(".agentops.yaml") && r.stderr.contains("image-tags"), "{}", r.stderr);
    let r =
        agentops(&["validate", "--repo", fixture("clean").to_str().unwrap(), "--kustomize", "/nonexistent/kustomize"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("/nonexistent/kustomize"), "{}", r.stderr);
}

#[test]
fn policies_can_be_switched_off_and_tuned() {
    let repo = copy_fixture("defects");
    std::fs::write(
        repo.path().join(".agentops.yaml"),
        "policies:\n  image-tag: {enabled: false}\n  network-policy: {severity: warning}\n  required-labels: {labels: [team]}\n",
    )
    .unwrap();
    let (_, v) = validate_json(repo.path(), &["--no-cache"]);
    let f = v["findings"].as_array().unwrap();
    assert!(!f.iter().any(|x| x["check"] == "image-tag"));
    assert!(f.iter().filter(|x| x["check"] == "network-policy").all(|x| x["severity"] == "warning"));
    assert!(f.iter().any(|x| x["check"] == "required-labels" && x["message"] == "missing label team"));
}

#[test]
fn argocd_paths_follow_the_repos_own_origin() {
    let repo = copy_fixture("defects");
    git_init(repo.path());
    // another repo's URL: its Applications are not ours to check
    git(repo.path(), &["remote", "add", "origin", "https://git.example.com/team/elsewhere.git"]);
    let (_, v) = validate_json(repo.path(), &["--no-cache"]);
    assert_eq!(v["summary"]["argocd_applications"], 0, "{v:#}");
    // this repo's URL in another spelling: checked
    git(repo.path(), &["remote", "set-url", "origin", "git@git.example.com:team/defects"]);
    let (_, v) = validate_json(repo.path(), &["--no-cache"]);
    assert_eq!(v["summary"]["argocd_applications"], 2);
    assert!(has(&v["findings"], "argocd-path", "argocd/apps.yaml", Some(22)));
}

/// A CI job pointed at the wrong directory must not go green.
#[test]
fn a_directory_with_nothing_to_validate_is_an_error() {
    let empty = tempfile::tempdir().unwrap();
    std::fs::write(empty.path().join("README.md"), "# not a GitOps repo\n").unwrap();
    let r = agentops(&["validate", "--repo", empty.path().to_str().unwrap()]);
    assert_eq!(r.code, 2, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("nothing to validate in ") && r.stderr.contains("is --repo right?"), "{}", r.stderr);
}

/// A `:latest` set by an overlay's `images:` entry is reported there, not at the base's
/// image line (which still names a pinned version).
#[test]
fn an_image_tag_set_by_an_overlay_is_reported_where_it_is_set() {
    let repo = tempfile::tempdir().unwrap();
    copy_dir(&platform(), repo.path());
    let k = repo.path().join("apps/grafana/overlays/prod-west/kustomization.yaml");
    let text = std::fs::read_to_string(&k).unwrap().replace("newTag: 10.4.2", "newTag: latest");
    std::fs::write(&k, text).unwrap();
    let r = agentops(&[
        "validate",
        "--repo",
        repo.path().to_str().unwrap(),
        "--no-cache",
        "--app",
        "grafana",
        "--format",
        "json",
    ]);
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let found: Vec<&serde_json::Value> =
        v["findings"].as_array().unwrap().iter().filter(|f| f["check"] == "image-tag").collect();
    assert_eq!(found.len(), 1, "{found:#?}");
    assert_eq!(found[0]["file"], "apps/grafana/overlays/prod-west/kustomization.yaml", "{:#}", found[0]);
    assert_eq!(found[0]["line"], 21, "the newTag line");
}

fn find<'a>(findings: &'a Value, check: &str, file: &str, line: Option<u64>) -> Vec<&'a Value> {
    findings
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["check"] == check && f["file"] == file && line.is_none_or(|l| f["line"] == l))
        .collect()
}

fn example_copy() -> tempfile::TempDir {
    let repo = tempfile::tempdir().unwrap();
    copy_dir(&platform(), repo.path());
    repo
}

/// Every built-in check finds the defect planted for it in the risky app, at the line that
/// sets (or should set) the field, with the prod severity.
#[test]
fn each_builtin_check_finds_its_planted_defect() {
    let (code, v) = validate_json(&fixture("defects"), &["--no-cache", "--app", "risky", "--env", "prod"]);
    assert_eq!(code, 1);
    let f = &v["findings"];
    let agent = "apps/risky/base/agent.yaml";
    for (check, file, line, severity) in [
        ("host-network", agent, 17, "error"),
        ("host-pid", agent, 18, "error"),
        ("host-ipc", agent, 19, "error"),
        ("host-port", agent, 26, "error"),
        ("env-var-secret", agent, 29, "error"),
        ("probe-port", agent, 35, "error"),
        ("privileged-container", agent, 37, "error"),
        ("privilege-escalation-container", agent, 38, "error"),
        ("run-as-non-root", agent, 39, "error"),
        ("no-read-only-root-fs", agent, 36, "error"),
        ("added-capabilities", agent, 41, "error"),
        ("no-liveness-probe", agent, 21, "warning"),
        ("non-existent-service-account", agent, 16, "error"),
        ("host-path", agent, 49, "error"),
        ("dangling-service", "apps/risky/base/services.yaml", 8, "error"),
        ("service-target-port", "apps/risky/base/services.yaml", 26, "error"),
        ("dangling-pdb", "apps/risky/base/pdbs.yaml", 7, "error"),
        ("pdb-min-available", "apps/risky/base/pdbs.yaml", 16, "error"),
        ("pdb-max-unavailable", "apps/risky/base/pdbs.yaml", 26, "error"),
        ("wildcard-in-rules", "apps/risky/base/rbac.yaml", 8, "error"),
        ("cluster-admin-role-binding", "apps/risky/base/rbac.yaml", 17, "error"),
        ("ingress-tls", "apps/risky/base/ingress.yaml", 23, "error"),
        ("removed-api", "apps/risky/base/legacy.yaml", 1, "error"),
        ("minimum-replicas", "apps/risky/overlays/prod/kustomization.yaml", 7, "error"),
        ("no-anti-affinity", "apps/risky/base/collector.yaml", 14, "warning"),
        ("suppression", "apps/risky/base/services.yaml", 6, "error"),
    ] {
        let hits = find(f, check, file, Some(line));
        assert_eq!(hits.len(), 1, "{check} at {file}:{line}: {hits:#?}\nall: {f:#}");
        assert_eq!(hits[0]["severity"], severity, "{check}: {:#}", hits[0]);
        assert_eq!(hits[0]["env"], "prod");
    }
    // what must not be reported
    assert!(find(f, "env-var-secret", agent, Some(31)).is_empty(), "DB_PASSWORD_FILE points at a secret");
    assert!(
        f.as_array().unwrap().iter().all(|x| !x["message"].as_str().unwrap().contains("NET_BIND_SERVICE")),
        "NET_BIND_SERVICE may be added"
    );
    assert!(find(f, "probe-port", "apps/risky/base/collector.yaml", None).is_empty(), "numeric and named ports match");
    let removed = &find(f, "removed-api", "apps/risky/base/legacy.yaml", None)[0];
    assert!(removed["message"].as_str().unwrap().contains("batch/v1"), "{removed:#}");
    // the suppressed Ingress is counted, not reported
    assert!(find(f, "ingress-tls", "apps/risky/base/ingress.yaml", Some(8)).is_empty());
    assert_eq!(v["summary"]["suppressed"], 1, "{:#}", v["summary"]);
    // the literal secret never reaches the output
    let r = agentops(&["validate", "--repo", fixture("defects").to_str().unwrap(), "--no-cache", "--app", "risky"]);
    assert!(!r.stdout.contains("hunter2-defects") && !r.stderr.contains("hunter2-defects"));
}

/// dev is laxer than prod: hardening checks are warnings there and prod-only checks are off.
#[test]
fn severities_follow_the_environment_class() {
    let (_, v) = validate_json(&fixture("defects"), &["--no-cache", "--app", "risky", "--env", "dev"]);
    let f = &v["findings"];
    let agent = "apps/risky/base/agent.yaml";
    assert_eq!(find(f, "privilege-escalation-container", agent, Some(38))[0]["severity"], "warning");
    assert_eq!(find(f, "privileged-container", agent, Some(37))[0]["severity"], "error");
    assert!(find(f, "no-liveness-probe", agent, None).is_empty(), "off in dev");
    assert!(f.as_array().unwrap().iter().all(|x| x["check"] != "minimum-replicas" && x["check"] != "no-anti-affinity"));
    assert_eq!(find(f, "ingress-tls", "apps/risky/base/ingress.yaml", Some(23))[0]["severity"], "info");
}

/// The example platform is clean under every check and its own Rego policies.
#[test]
fn the_example_is_clean_under_every_check() {
    let example = platform();
    let (code, v) = validate_json(&example, &["--no-cache"]);
    assert_eq!(code, 0, "{:#}", v["findings"]);
    assert_eq!(v["findings"], serde_json::json!([]), "{:#}", v["findings"]);
    assert_eq!(v["summary"]["overlays_built"], 60);
}

#[test]
fn deprecated_and_removed_apis_follow_the_kubernetes_version() {
    let legacy = "apps/risky/base/legacy.yaml";
    let (_, v) = validate_json(&fixture("defects"), &["--no-cache", "--app", "risky", "--kubernetes-version", "1.24"]);
    let hits = find(&v["findings"], "deprecated-api", legacy, Some(1));
    // one finding for the base's line, both overlays named
    assert_eq!(hits.len(), 1, "{hits:#?}");
    assert_eq!((&hits[0]["env"], &hits[0]["also"][0]["env"]), (&"dev".into(), &"prod".into()), "{hits:#?}");
    assert_eq!(hits[0]["severity"], "warning");
    assert!(hits[0]["message"].as_str().unwrap().contains("removed in 1.25: use batch/v1"), "{:#}", hits[0]);
    assert!(find(&v["findings"], "removed-api", legacy, None).is_empty());
    let (_, v) = validate_json(&fixture("defects"), &["--no-cache", "--app", "risky", "--kubernetes-version", "1.20"]);
    assert!(find(&v["findings"], "deprecated-api", legacy, None).is_empty());
    // per environment from .agentops.yaml
    let repo = copy_fixture("defects");
    std::fs::write(
        repo.path().join(".agentops.yaml"),
        "environments:\n  dev: {kubernetes_version: \"1.24\"}\n  prod: {}\n",
    )
    .unwrap();
    let (_, v) = validate_json(repo.path(), &["--no-cache", "--app", "risky"]);
    let dep = find(&v["findings"], "deprecated-api", legacy, None);
    let rem = find(&v["findings"], "removed-api", legacy, None);
    assert_eq!((dep.len(), rem.len()), (1, 1));
    assert_eq!((dep[0]["env"].as_str(), rem[0]["env"].as_str()), (Some("dev"), Some("prod")));
    let r = agentops(&["validate", "--repo", fixture("defects").to_str().unwrap(), "--kubernetes-version", "latest"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("--kubernetes-version"), "{}", r.stderr);
}

#[test]
fn configured_suppressions_need_reasons_and_expire() {
    let repo = copy_fixture("defects");
    std::fs::write(
        repo.path().join(".agentops.yaml"),
        "policies:\n  suppressions:\n    - check: host-*\n      app: risky\n      env: prod\n      reason: the agent reads node state by design\n    - check: privileged-container\n      app: risky\n    - check: wildcard-in-rules\n      kind: ClusterRole\n      reason: legacy role\n      expires: 2020-01-31\n",
    )
    .unwrap();
    let (_, v) = validate_json(repo.path(), &["--no-cache", "--app", "risky", "--env", "prod"]);
    let f = &v["findings"];
    let agent = "apps/risky/base/agent.yaml";
    for c in ["host-network", "host-pid", "host-ipc", "host-path", "host-port"] {
        assert!(find(f, c, agent, None).is_empty(), "{c} suppressed");
    }
    // no reason: a finding, and nothing suppressed by it
    let no_reason = find(f, "suppression", ".agentops.yaml", Some(7));
    assert_eq!(no_reason.len(), 1, "{f:#}");
    assert_eq!(no_reason[0]["severity"], "error");
    assert_eq!(find(f, "privileged-container", agent, Some(37)).len(), 1);
    // expired: reported again, and the suppression says so
    assert_eq!(find(f, "wildcard-in-rules", "apps/risky/base/rbac.yaml", Some(8)).len(), 1);
    let expired = find(f, "suppression", ".agentops.yaml", Some(9));
    assert!(expired[0]["message"].as_str().unwrap().contains("expired on 2020-01-31"), "{expired:#?}");
    assert_eq!(v["summary"]["suppressed"], 6, "5 by config, 1 by annotation");
    // --show-suppressed lists them with reasons, in text and JSON
    let r = agentops(&[
        "validate",
        "--repo",
        repo.path().to_str().unwrap(),
        "--no-cache",
        "--app",
        "risky",
        "--env",
        "prod",
        "--show-suppressed",
    ]);
    assert!(r.stdout.contains("the agent reads node state by design"), "{}", r.stdout);
    assert!(r.stdout.contains("TLS terminates at the cloud load balancer"), "{}", r.stdout);
    let (_, v) = validate_json(repo.path(), &["--no-cache", "--app", "risky", "--env", "prod", "--show-suppressed"]);
    let listed = v["suppressed"].as_array().unwrap();
    assert_eq!(listed.len(), 6);
    let by_config = listed.iter().find(|s| s["check"] == "host-network").unwrap();
    assert_eq!(by_config["suppressed_by"], ".agentops.yaml:3");
    assert_eq!(by_config["file"], agent, "the finding keeps its place");
    let r = agentops(&["validate", "--repo", repo.path().to_str().unwrap(), "--no-cache", "--app", "risky"]);
    assert!(r.stdout.contains("suppressed (--show-suppressed lists them"), "{}", r.stdout);
}

#[test]
fn unknown_check_ids_in_policies_are_config_errors() {
    let repo = copy_fixture("defects");
    std::fs::write(repo.path().join(".agentops.yaml"), "policies:\n  run-as-root: {severity: warning}\n").unwrap();
    let r = agentops(&["validate", "--repo", repo.path().to_str().unwrap(), "--no-cache"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("run-as-root") && r.stderr.contains(".agentops.yaml:2"), "{}", r.stderr);
}

#[test]
fn the_example_rego_policies_pass_fail_and_survive_a_broken_file() {
    let repo = example_copy();
    // a release candidate promoted to prod-west: the example's releases policy denies it there
    let k = repo.path().join("apps/catalog/overlays/prod-west/kustomization.yaml");
    let text = std::fs::read_to_string(&k).unwrap();
    assert!(text.contains("newTag: 1.22.3"), "{text}");
    std::fs::write(&k, text.replace("newTag: 1.22.3", "newTag: 1.23.0-rc.1")).unwrap();
    let (code, v) = validate_json(repo.path(), &["--no-cache", "--app", "catalog"]);
    assert_eq!(code, 1);
    let denied = find(&v["findings"], "rego/acme.releases", "apps/catalog/base/deployment.yaml", None);
    assert_eq!(denied.len(), 1, "only prod-west: {:#}", v["findings"]);
    assert_eq!(denied[0]["env"], "prod-west", "data.agentops.env reaches the policy");
    assert_eq!(denied[0]["severity"], "error");
    assert!(
        denied[0]["message"]
            .as_str()
            .unwrap()
            .contains("runs the pre-release ghcr.io/acme/catalog:1.23.0-rc.1 in prod-west")
    );
    // another policy of the example: every workload says what it is part of
    let kb = repo.path().join("apps/catalog/base/kustomization.yaml");
    let text = std::fs::read_to_string(&kb).unwrap();
    assert!(text.contains("app.kubernetes.io/part-of: acme-platform"), "{text}");
    std::fs::write(&kb, text.replace("app.kubernetes.io/part-of: acme-platform", "acme.io/team: catalog")).unwrap();
    let (_, v) = validate_json(repo.path(), &["--no-cache", "--app", "catalog", "--env", "dev"]);
    assert_eq!(
        find(&v["findings"], "rego/acme.ownership", "apps/catalog/base/deployment.yaml", None).len(),
        1,
        "{:#}",
        v["findings"]
    );
    // a broken policy is a finding naming its file and line; the others still run
    std::fs::write(
        repo.path().join("policy/broken.rego"),
        "package acme.broken\n\ndeny contains msg if {\n  msg := \n}\n",
    )
    .unwrap();
    let (code, v) = validate_json(repo.path(), &["--no-cache", "--app", "catalog"]);
    assert_eq!(code, 1);
    let broken = find(&v["findings"], "rego", "policy/broken.rego", None);
    assert_eq!(broken.len(), 1, "{:#}", v["findings"]);
    assert!(broken[0]["line"].as_u64().is_some_and(|l| (3..=5).contains(&l)), "{:#}", broken[0]);
    assert_eq!(find(&v["findings"], "rego/acme.releases", "apps/catalog/base/deployment.yaml", None).len(), 1);
    // SARIF names the policy's rule
    let r = agentops(&[
        "validate",
        "--repo",
        repo.path().to_str().unwrap(),
        "--no-cache",
        "--app",
        "catalog",
        "--format",
        "sarif",
    ]);
    let s: Value = serde_json::from_str(&r.stdout).unwrap();
    let rules = s["runs"][0]["tool"]["driver"]["rules"].as_array().unwrap();
    assert!(rules.iter().any(|r| r["id"] == "rego/acme.releases"));
    assert!(rules.iter().all(|r| r["help"]["text"].as_str().is_some_and(|t| !t.is_empty())), "every rule has help");
}

#[test]
fn policy_flag_takes_a_directory_of_conftest_policies() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("shop.rego"),
        "package main\n\ndeny[msg] {\n  input.kind == \"Deployment\"\n  data.agentops.app == \"shop\"\n  msg := sprintf(\"%s in %s from %s\", [input.metadata.name, data.agentops.env, data.agentops.file])\n}\n",
    )
    .unwrap();
    let policy = dir.path().to_str().unwrap();
    let (_, v) =
        validate_json(&fixture("defects"), &["--no-cache", "--app", "shop", "--env", "dev", "--policy", policy]);
    let hits: Vec<&Value> = v["findings"].as_array().unwrap().iter().filter(|f| f["check"] == "rego/main").collect();
    assert!(
        hits.iter().any(|h| h["message"] == "shop in dev from apps/shop/base/deployment.yaml"
            && h["file"] == "apps/shop/base/deployment.yaml"),
        "{hits:#?}"
    );
    let r =
        agentops(&["validate", "--repo", fixture("defects").to_str().unwrap(), "--policy", "/nonexistent/policies"]);
    let v: Value = serde_json::from_str(
        &agentops(&[
            "validate",
            "--repo",
            fixture("defects").to_str().unwrap(),
            "--no-cache",
            "--policy",
            "/nonexistent/policies",
            "--format",
            "json",
        ])
        .stdout,
    )
    .unwrap();
    assert_eq!(r.code, 1);
    assert!(
        v["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["check"] == "rego" && f["message"].as_str().unwrap().contains("does not exist"))
    );
}

#[test]
fn junit_output_for_ci() {
    let r = agentops(&["validate", "--repo", fixture("defects").to_str().unwrap(), "--no-cache", "--format", "junit"]);
    assert_eq!(r.code, 1);
    let (_, j) = validate_json(&fixture("defects"), &["--no-cache"]);
    let findings = j["findings"].as_array().unwrap();
    let errors = findings.iter().filter(|f| f["severity"] == "error").count();
    assert!(r.stdout.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites "), "{}", r.stdout);
    assert_eq!(r.stdout.matches("<testcase ").count(), findings.len());
    assert_eq!(r.stdout.matches("<failure ").count(), errors);
    assert!(r.stdout.contains(&format!("failures=\"{errors}\"")));
    assert!(r.stdout.trim_end().ends_with("</testsuites>"));
    assert_eq!(r.stdout.matches("<testsuite ").count(), r.stdout.matches("</testsuite>").count());
    let example = platform();
    let r = agentops(&[
        "validate",
        "--repo",
        example.to_str().unwrap(),
        "--no-cache",
        "--app",
        "redis",
        "--format",
        "junit",
    ]);
    assert_eq!(r.code, 0);
    assert_eq!(r.stdout.matches("<testcase ").count(), 1, "{}", r.stdout);
    assert!(!r.stdout.contains("<failure"));
}
