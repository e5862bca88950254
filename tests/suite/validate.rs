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
        assert!(["error", "warning"].contains(&x["severity"].as_str().unwrap()));
        for key in ["check", "severity", "file", "line", "overlay", "app", "env", "object", "message"] {
            assert!(x.get(key).is_some(), "{key} missing in {x}");
        }
    }
    // the broken app does not stop the others
    assert_eq!(v["summary"]["overlays_built"], 2);
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

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() { out.extend(walk(&p)) } else { out.push(p) }
    }
    out
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
    copy_dir(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/platform"), repo.path());
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
