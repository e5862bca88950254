//! Harmonize on the example platform (every Ingress form: base, Component, strategic-merge
//! patch, JSON6902 replacing the whole map, inline patch, overlay-only Ingress, multi-document
//! file, an app that already has the value) with the real kustomize.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use agentops::kustomize::{Engine, Kustomize};
use agentops::repo::Repo;
use agentops::workflows::harmonize::apply::{self, Fault};
use agentops::workflows::harmonize::{self, HarmonizeRequest};
use serde_json::{Value, json};

use super::common::*;

const TLS: &str = "nginx.ingress.kubernetes.io/ssl-protocols";

/// Every file (outside .git and the journal's .agentops) with its bytes.
fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out: Vec<(PathBuf, Vec<u8>)> = walkdir::WalkDir::new(dir)
        .into_iter()
        .filter_entry(|e| e.file_name() != ".git" && e.file_name() != ".agentops")
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_file())
        .map(|e| (e.path().strip_prefix(dir).unwrap().to_path_buf(), std::fs::read(e.path()).unwrap()))
        .collect();
    out.sort();
    out
}

/// The repo is byte-identical, HEAD did not move and the index is as it was.
fn assert_untouched(dir: &Path, files: &[(PathBuf, Vec<u8>)], head: &str, status: &str) {
    let now = snapshot(dir);
    let changed: Vec<&PathBuf> = now
        .iter()
        .filter(|f| !files.contains(f))
        .chain(files.iter().filter(|f| !now.contains(f)))
        .map(|(p, _)| p)
        .collect();
    assert!(changed.is_empty(), "files changed: {changed:?}");
    assert_eq!(git(dir, &["rev-parse", "HEAD"]), head);
    assert_eq!(git(dir, &["status", "--porcelain"]), status);
}

fn tls_args<'a>(root: &'a str, cache: &'a str) -> Vec<&'a str> {
    vec![
        "--repo",
        root,
        "--cache-dir",
        cache,
        "harmonize",
        "--kind",
        "Ingress",
        "--set-annotation",
        "nginx.ingress.kubernetes.io/ssl-protocols=TLSv1.3",
        "--reason",
        "SEC-2025-01: TLS 1.3 only on every public endpoint",
    ]
}

fn tls_request() -> HarmonizeRequest {
    HarmonizeRequest {
        kind: "ingresses".into(),
        set_annotations: [(TLS.to_string(), "TLSv1.3".to_string())].into(),
        reason: "SEC-2025-01".into(),
        override_exceptions: vec!["all".into()],
        ..HarmonizeRequest::default()
    }
}

/// `agentops harmonize` with the TLS request on `dir`, plus `extra` flags.
fn run_tls(dir: &Path, cache: &str, extra: &[&str]) -> Run {
    let mut args = tls_args(dir.to_str().unwrap(), cache);
    args.extend(extra);
    agentops(&args)
}

/// An engine with its own build cache, so repeated plans of the same content are quick.
fn engine(cache: &Path) -> Engine {
    Engine::new(Kustomize::locate(None).unwrap(), Some(cache.to_path_buf()))
}

#[test]
fn the_plan_covers_every_form_shows_each_edit_once_and_writes_nothing() {
    let cache = cache_dir("harmonize-cache");
    let repo = platform_repo(|_| ());
    let root = repo.path().to_str().unwrap();
    let (files, head) = (snapshot(repo.path()), git(repo.path(), &["rev-parse", "HEAD"]));
    let r = agentops(&tls_args(root, &cache));
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("Nothing was written"), "{}", r.stderr);
    insta::assert_snapshot!("harmonize_tls_plan", r.stdout);
    assert_untouched(repo.path(), &files, &head, "");

    let mut args = tls_args(root, &cache);
    args.extend(["--format", "json"]);
    let r = agentops(&args);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["kind"], "Ingress");
    assert_eq!(v["matched"], 20);
    assert_eq!(v["covered_before"], 5, "grafana's five Ingresses already have TLSv1.3");
    assert_eq!(v["covered_after"], 20);
    assert_eq!(v["overlays_built"], v["overlays_rebuilt"]);
    assert_eq!(v["commit"], Value::Null);
    let mut sources: Vec<(&str, &str)> = v["edits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["file"].as_str().unwrap(), e["source"].as_str().unwrap()))
        .collect();
    sources.sort();
    assert_eq!(
        sources,
        [
            ("apps/api-gateway/base/ingress.yaml", "base"),
            ("apps/api-gateway/overlays/prod-east/ingress-annotations.yaml", "json6902"),
            ("apps/api-gateway/overlays/staging/ingress-ssl-protocols.yaml", "overlay-patch"),
            ("apps/search/overlays/staging/ingress.yaml", "overlay-resource"),
            ("apps/web-frontend/base/service-ingress.yaml", "base"),
            ("apps/web-frontend/overlays/prod-west/kustomization.yaml", "overlay-patch"),
            ("components/public-ingress/ingress.yaml", "component"),
        ]
    );
    // one base edit covers the five overlays of its app: no per-overlay patches
    let base =
        v["edits"].as_array().unwrap().iter().find(|e| e["file"] == "apps/api-gateway/base/ingress.yaml").unwrap();
    assert_eq!(base["overlays"].as_array().unwrap().len(), 5);
    assert_untouched(repo.path(), &files, &head, "");
}

#[test]
fn apply_commits_exactly_the_edited_files_keeps_everything_else_and_is_idempotent() {
    let cache = cache_dir("harmonize-cache");
    let repo = platform_repo(|_| ());
    let dir = repo.path();
    let root = dir.to_str().unwrap();
    // the user's own work in progress: one staged file, one unstaged edit
    std::fs::write(dir.join("README.md"), "# staged by the user\n").unwrap();
    git(dir, &["add", "README.md"]);
    let values = dir.join("apps/orders/base/deployment.yaml");
    let mut text = std::fs::read_to_string(&values).unwrap();
    text.push_str("# unstaged note\n");
    std::fs::write(&values, &text).unwrap();
    let multi_before = std::fs::read_to_string(dir.join("apps/web-frontend/base/service-ingress.yaml")).unwrap();

    let mut args = tls_args(root, &cache);
    args.extend(["--yes", "--override-exceptions", "all", "--format", "json"]);
    let r = agentops(&args);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!((v["matched"].as_u64(), v["covered_after"].as_u64()), (Some(20), Some(20)));
    let sha = v["commit"].as_str().expect("a commit");
    assert_eq!(git(dir, &["rev-parse", "HEAD"]).trim(), sha);

    // exactly the edited files, nothing of the user's
    let committed = git(dir, &["show", "--name-only", "--format=", "HEAD"]);
    let mut expected: Vec<&str> = v["files"].as_array().unwrap().iter().map(|f| f.as_str().unwrap()).collect();
    expected.sort();
    assert_eq!(committed.lines().collect::<Vec<_>>(), expected);
    assert_eq!(git(dir, &["diff", "--cached", "--name-only"]), "README.md\n");
    assert_eq!(git(dir, &["diff", "--name-only"]), "apps/orders/base/deployment.yaml\n");
    insta::assert_snapshot!("harmonize_tls_commit_message", git(dir, &["log", "-1", "--format=%B"]));

    // comments, quoting and the other document of the multi-document file are kept
    let east =
        std::fs::read_to_string(dir.join("apps/api-gateway/overlays/prod-east/ingress-annotations.yaml")).unwrap();
    assert!(east.contains("# Partner integrations still include TLSv1.2-only clients."), "{east}");
    assert!(east.contains("nginx.ingress.kubernetes.io/ssl-protocols: \"TLSv1.3\""), "{east}");
    let multi = std::fs::read_to_string(dir.join("apps/web-frontend/base/service-ingress.yaml")).unwrap();
    let service = |t: &str| t.split("\n---").next().unwrap().to_string();
    assert_eq!(service(&multi), service(&multi_before), "the Service document is byte-identical");
    assert_eq!(multi.lines().count(), multi_before.lines().count() + 1, "one line added");

    // the rendered fleet now has it everywhere: a second run finds nothing to do
    let mut args = tls_args(root, &cache);
    args.extend(["--format", "json"]);
    let r = agentops(&args);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!((v["covered_before"].as_u64(), v["edits"].as_array().unwrap().len()), (Some(20), 0));
}

#[test]
fn removing_an_annotation_edits_bases_json6902_maps_and_inline_patches_without_committing() {
    let cache = cache_dir("harmonize-cache");
    let repo = platform_repo(|_| ());
    let dir = repo.path();
    let head = git(dir, &["rev-parse", "HEAD"]);
    let r = agentops(&[
        "--repo",
        dir.to_str().unwrap(),
        "--cache-dir",
        &cache,
        "harmonize",
        "--kind",
        "Ingress",
        "--app",
        "api-gateway",
        "--app",
        "web-frontend",
        "--remove-annotation",
        "nginx.ingress.kubernetes.io/proxy-body-size",
        "--set-label",
        "acme.io/exposure=public",
        "--reason",
        "body size is set by the edge proxy now",
        "--yes",
        "--no-commit",
        "--format",
        "json",
    ]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["matched"], 10);
    assert_eq!(v["covered_after"], 10);
    assert_eq!(v["commit"], Value::Null);
    assert_eq!(git(dir, &["rev-parse", "HEAD"]), head, "--no-commit leaves HEAD");
    assert_eq!(git(dir, &["diff", "--cached", "--name-only"]), "", "and stages nothing");
    let east =
        std::fs::read_to_string(dir.join("apps/api-gateway/overlays/prod-east/ingress-annotations.yaml")).unwrap();
    assert!(!east.contains("proxy-body-size"), "{east}");
    assert!(east.contains("proxy-read-timeout: \"120\""), "{east}");
    let west = std::fs::read_to_string(dir.join("apps/web-frontend/overlays/prod-west/kustomization.yaml")).unwrap();
    assert!(!west.contains("proxy-body-size"), "{west}");
    assert!(west.contains("# prod-west is the first region to serve TLSv1.3"), "{west}");
    let changed = git(dir, &["diff", "--name-only"]);
    assert!(!changed.contains("components/") && !changed.contains("apps/search"), "out of scope: {changed}");
}

#[test]
fn every_failure_midway_leaves_the_repo_byte_identical() {
    let cache = cache_dir("harmonize-cache");
    let staging = HarmonizeRequest { env: vec!["staging".into()], ..tls_request() };
    let cases = [
        (tls_request(), Fault::WriteFails(1)),
        (tls_request(), Fault::WriteFails(4)),
        (tls_request(), Fault::BreakAfterWrite),
        (tls_request(), Fault::CommitFails),
        // the last write creates a new overlay patch: it is removed again
        (staging.clone(), Fault::WriteFails(6)),
        (staging, Fault::CommitFails),
    ];
    for (request, fault) in cases {
        let repo = platform_repo(|_| ());
        let dir = repo.path();
        std::fs::write(dir.join("README.md"), "# staged\n").unwrap();
        git(dir, &["add", "README.md"]);
        let (files, head, status) =
            (snapshot(dir), git(dir, &["rev-parse", "HEAD"]), git(dir, &["status", "--porcelain"]));
        let loaded = Repo::load(dir).unwrap();
        let engine = engine(Path::new(&cache));
        let mut plan = harmonize::plan(&loaded, &engine, &request, 2).unwrap();
        assert!(plan.is_proven(), "{:?}", plan.blockers);
        let err = apply::apply(&loaded, &engine, &mut plan, true, Some(fault)).unwrap_err().to_string();
        assert!(err.contains("every file was restored"), "{fault:?}: {err}");
        assert!(plan.commit.is_none());
        assert_untouched(dir, &files, &head, &status);
    }
}

#[test]
fn a_scoped_run_patches_only_its_overlays_when_a_base_is_shared() {
    let cache = cache_dir("harmonize-cache");
    let repo = platform_repo(|_| ());
    let dir = repo.path();
    let mut args = tls_args(dir.to_str().unwrap(), &cache);
    args.extend(["--env", "staging", "--yes", "--override-exceptions", "all", "--format", "json"]);
    let r = agentops(&args);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!((v["matched"].as_u64(), v["covered_after"].as_u64()), (Some(5), Some(5)));
    let committed = git(dir, &["show", "--name-only", "--format=", "HEAD"]);
    assert!(committed.lines().all(|f| f.contains("/overlays/staging/")), "only staging overlays: {committed}");
    assert!(
        committed.contains("apps/web-frontend/overlays/staging/harmonize-ingress-web-frontend.yaml"),
        "{committed}"
    );
    let patch =
        std::fs::read_to_string(dir.join("apps/web-frontend/overlays/staging/harmonize-ingress-web-frontend.yaml"))
            .unwrap();
    assert_eq!(
        patch,
        "# Added by agentops harmonize: SEC-2025-01: TLS 1.3 only on every public endpoint\napiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: web-frontend\n  annotations:\n    nginx.ingress.kubernetes.io/ssl-protocols: TLSv1.3\n"
    );
    // the existing staging patch of api-gateway was edited instead of adding another
    assert!(!dir.join("apps/api-gateway/overlays/staging/harmonize-ingress-api-gateway.yaml").exists());
    // prod still renders what it did (the proof checked every overlay that reads an edited file)
    let r = agentops(&[
        "--repo",
        dir.to_str().unwrap(),
        "--cache-dir",
        &cache,
        "harmonize",
        "--kind",
        "Ingress",
        "--env",
        "prod-west",
        "--set-annotation",
        "nginx.ingress.kubernetes.io/ssl-protocols=TLSv1.3",
        "--reason",
        "x",
        "--format",
        "json",
    ]);
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["covered_before"], 1, "only grafana in prod-west has it: {}", r.stdout);
}

#[test]
fn an_interrupted_apply_restores_every_file() {
    let cache = cache_dir("harmonize-cache");
    let repo = platform_repo(|_| ());
    let dir = repo.path();
    let (files, head) = (snapshot(dir), git(dir, &["rev-parse", "HEAD"]));
    let mut args = tls_args(dir.to_str().unwrap(), &cache);
    args.extend(["--yes", "--override-exceptions", "all"]);
    let child = Command::new(env!("CARGO_BIN_EXE_agentops"))
        .args(&args)
        .env("AGENTOPS_FAILPOINT", "harmonize-pause-after-write:60")
        .env_remove("AGENTOPS_CACHE_DIR")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // wait until the files are written
    let component = dir.join("components/public-ingress/ingress.yaml");
    let start = Instant::now();
    while !std::fs::read_to_string(&component).unwrap().contains("TLSv1.3") {
        assert!(start.elapsed() < Duration::from_secs(120), "the apply never wrote");
        std::thread::sleep(Duration::from_millis(50));
    }
    let kill = Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    assert!(kill.success());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("7 file(s) restored"), "{stderr}");
    assert_untouched(dir, &files, &head, "");
}

#[test]
fn broken_overlays_and_untraceable_values_refuse_before_any_write() {
    let cache = cache_dir("harmonize-cache");
    // a mistyped kind is not "proven, 0/0": it says which kinds render, and exits 1
    let repo = platform_repo(|_| ());
    let root = repo.path().to_str().unwrap();
    let r = agentops(&[
        "--repo",
        root,
        "--cache-dir",
        &cache,
        "harmonize",
        "--kind",
        "Ingres",
        "--set-label",
        "a=b",
        "--reason",
        "x",
    ]);
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    let all = format!("{}{}", r.stdout, r.stderr);
    assert!(all.contains("no Ingres object renders in the 60 overlay(s) in scope; kinds that do:"), "{all}");
    assert!(all.contains("Ingress") && !all.contains("Run again with --yes"), "{all}");

    // an overlay that does not build: refused up front, listed
    let repo = platform_repo(|_| ());
    let dir = repo.path();
    let k = dir.join("apps/orders/overlays/staging/kustomization.yaml");
    let text = std::fs::read_to_string(&k).unwrap().replace("resources:\n", "resources:\n  - missing.yaml\n");
    std::fs::write(&k, text).unwrap();
    let (files, head) = (snapshot(dir), git(dir, &["rev-parse", "HEAD"]));
    let r = run_tls(dir, &cache, &["--yes"]);
    assert_ne!(r.code, 0);
    assert!(
        r.stderr.contains("1 overlay(s) do not build") && r.stderr.contains("apps/orders/overlays/staging"),
        "{}",
        r.stderr
    );
    let status = git(dir, &["status", "--porcelain"]);
    assert_untouched(dir, &files, &head, &status);

    // a transformer setting the key for every object of an overlay cannot be edited for
    // Ingresses alone: blocked with its file and line, nothing written
    let repo = platform_repo(|_| ());
    let dir = repo.path();
    let k = dir.join("apps/search/overlays/staging/kustomization.yaml");
    let text = std::fs::read_to_string(&k).unwrap();
    std::fs::write(&k, format!("{text}commonAnnotations:\n  {TLS}: TLSv1.2\n")).unwrap();
    git(dir, &["commit", "-qam", "common annotations"]);
    let (files, head) = (snapshot(dir), git(dir, &["rev-parse", "HEAD"]));
    let r = run_tls(dir, &cache, &["--yes"]);
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains("apps/search/overlays/staging/kustomization.yaml:")
            && r.stderr.contains("(commonAnnotations)")
            && r.stderr.contains("nothing was changed"),
        "{}",
        r.stderr
    );
    assert_untouched(dir, &files, &head, "");
}

#[test]
fn the_planner_maps_the_request_to_plan_then_apply_behind_approval() {
    let cache = cache_dir("harmonize-cache");
    let repo = platform_repo(|_| ());
    let dir = repo.path();
    let root = dir.to_str().unwrap();
    let (files, head) = (snapshot(dir), git(dir, &["rev-parse", "HEAD"]));
    let request = "/infrastructure-harmonize kind=Ingress set_annotations=nginx.ingress.kubernetes.io/ssl-protocols=TLSv1.3 reason=SEC-2025-01 override_exceptions=all";
    // not a terminal and no --yes: the write is not approved
    let r = agentops(&["ask", request, "--repo", root, "--cache-dir", &cache, "--format", "json"]);
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    let steps: Vec<(&str, &str)> = v["plan"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["tool"].as_str().unwrap(), s["effect"].as_str().unwrap()))
        .collect();
    assert_eq!(steps, [("harmonize_plan", "ReadOnly"), ("harmonize_apply", "WritesRepo")]);
    assert_eq!(v["results"][0]["output"]["covered_after"], 20);
    assert_eq!(v["results"][1]["ok"], false);
    let status = git(dir, &["status", "--porcelain"]);
    assert!(status.lines().all(|l| l.contains(".agentops/")), "only the journal: {status}");
    let files: Vec<_> = files.into_iter().filter(|(p, _)| !p.starts_with(".agentops")).collect();
    let now: Vec<_> = snapshot(dir).into_iter().filter(|(p, _)| !p.starts_with(".agentops")).collect();
    assert_eq!(now.len(), files.len());
    assert!(now == files, "nothing written without approval");

    // approved: written, proven and committed
    let r = agentops(&["ask", request, "--repo", root, "--cache-dir", &cache, "--format", "json", "--yes"]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    let sha = v["results"][1]["output"]["commit"].as_str().unwrap();
    assert_ne!(sha, head.trim());
    assert!(git(dir, &["log", "-1", "--format=%s"]).starts_with("feat(security): enforce TLS 1.3 on all ingresses"));
    // the apply step was bound to the plan that was shown: the journal holds its fingerprint
    assert_eq!(v["plan"][1]["bind"], json!([{"arg": "expect", "step": 0, "pointer": "/fingerprint"}]));
    let shown = v["results"][0]["output"]["fingerprint"].as_str().unwrap();
    assert_eq!(shown.len(), 16);
    let journal = std::fs::read_to_string(dir.join(".agentops/journal.jsonl")).unwrap();
    let applied: Vec<Value> = journal
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|e| e["tool"] == "harmonize_apply" && e["ok"] == true)
        .collect();
    assert_eq!(applied.len(), 1, "{journal}");
    assert_eq!(applied[0]["args"]["expect"], shown);
}

#[test]
fn a_plan_that_changed_after_review_is_not_written() {
    let cache = cache_dir("harmonize-cache");
    let repo = platform_repo(|_| ());
    let dir = repo.path();
    let r = run_tls(dir, &cache, &["--format", "json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let reviewed: Value = serde_json::from_str(&r.stdout).unwrap();
    let fingerprint = reviewed["fingerprint"].as_str().unwrap().to_string();
    let again = run_tls(dir, &cache, &[]);
    assert!(again.stderr.contains(&format!("add --expect {fingerprint} to write only this plan")), "{}", again.stderr);

    // someone changes an Ingress between the review and the write
    let patch = dir.join("apps/api-gateway/overlays/staging/ingress-ssl-protocols.yaml");
    let text = std::fs::read_to_string(&patch).unwrap().replace("\"TLSv1.2 TLSv1.3\"", "\"TLSv1.2\"");
    std::fs::write(&patch, text).unwrap();
    git(dir, &["commit", "-qam", "staging api-gateway: TLS 1.2 only"]);
    let (files, head, status) = (snapshot(dir), git(dir, &["rev-parse", "HEAD"]), git(dir, &["status", "--porcelain"]));
    let r = run_tls(dir, &cache, &["--yes", "--override-exceptions", "all", "--expect", &fingerprint]);
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("the harmonize plan changed since it was shown"), "{}", r.stderr);
    assert!(r.stderr.contains(&format!("fingerprint {fingerprint}, now ")), "{}", r.stderr);
    assert_untouched(dir, &files, &head, &status);

    // the new plan, reviewed, is written
    let r = run_tls(dir, &cache, &["--format", "json"]);
    let fresh: Value = serde_json::from_str(&r.stdout).unwrap();
    let new = fresh["fingerprint"].as_str().unwrap();
    assert_ne!(new, fingerprint);
    let r = run_tls(dir, &cache, &["--yes", "--override-exceptions", "all", "--expect", new]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert_ne!(git(dir, &["rev-parse", "HEAD"]), head);
}

/// A value the repo documents as set on purpose is an exception: listed with the repo's own
/// words, never overwritten by --yes alone; overridden one by one on a terminal or all with
/// --override-exceptions, and then named in the commit.
#[test]
fn a_commented_exception_stops_the_write_until_it_is_overridden() {
    let cache = cache_dir("harmonize-cache");
    let repo = platform_repo(|_| ());
    let dir = repo.path();
    let (files, head) = (snapshot(dir), git(dir, &["rev-parse", "HEAD"]));
    // the plan lists each exception with its evidence
    let r = run_tls(dir, &cache, &["--format", "json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    let found: Vec<(&str, &str, bool)> = v["exceptions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["id"].as_str().unwrap(), e["evidence"].as_str().unwrap(), e["overridden"].as_bool().unwrap()))
        .collect();
    assert_eq!(
        found,
        [
            ("apps/api-gateway/base/ingress.yaml:13", "header-comment", false),
            ("apps/api-gateway/overlays/prod-east/ingress-annotations.yaml:10", "comment", false),
            ("apps/api-gateway/overlays/staging/ingress-ssl-protocols.yaml:8", "dedicated-patch", false),
            ("apps/web-frontend/overlays/prod-west/kustomization.yaml:34", "header-comment", false),
        ]
    );
    let east = &v["exceptions"][1];
    assert_eq!(east["why"], "Partner integrations still include TLSv1.2-only clients.");
    assert_eq!((east["current"].as_str(), east["envs"][0].as_str()), (Some("TLSv1.2"), Some("prod-east")));
    // an override left equal to the base is offered for removal
    let redundant: Vec<&str> = v["redundant"].as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert_eq!(
        redundant,
        [
            "apps/api-gateway/overlays/staging/ingress-ssl-protocols.yaml:8",
            "apps/web-frontend/overlays/prod-west/kustomization.yaml:34"
        ]
    );
    let text = run_tls(dir, &cache, &[]);
    assert!(text.stdout.contains("Exceptions (4: values the repo sets on purpose"), "{}", text.stdout);
    assert!(
        text.stdout
            .contains("      why (the comment next to it): Partner integrations still include TLSv1.2-only clients.\n"),
        "{}",
        text.stdout
    );
    assert!(text.stderr.contains("--override-exceptions all"), "{}", text.stderr);

    // --yes alone stops at them, writes nothing and says how to go on
    let r = run_tls(dir, &cache, &["--yes"]);
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains("4 value(s) are set on purpose and would be overwritten; nothing was changed"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("ingress-annotations.yaml:10 (TLSv1.2): Partner integrations"), "{}", r.stderr);
    assert_untouched(dir, &files, &head, "");
    // naming one is not naming all
    let r = run_tls(
        dir,
        &cache,
        &["--yes", "--override-exceptions", "apps/api-gateway/overlays/prod-east/ingress-annotations.yaml:10"],
    );
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("3 value(s) are set on purpose"), "{}", r.stderr);
    assert_untouched(dir, &files, &head, "");

    // on a terminal each one is asked: a "no" keeps the repo as it is
    let pty = |answers: &str| {
        let mut cmd: Vec<String> = vec![env!("CARGO_BIN_EXE_agentops").to_string()];
        cmd.extend(tls_args(dir.to_str().unwrap(), &cache).iter().map(|a| format!("'{a}'")));
        cmd.push("--yes".into());
        let mut child = Command::new("script")
            .args(["-qec", &cmd.join(" "), "/dev/null"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write as _;
        child.stdin.take().unwrap().write_all(answers.as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        (out.status.code(), String::from_utf8_lossy(&out.stdout).into_owned())
    };
    let (code, out) = pty("y\nn\ny\ny\n");
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("Override it (set TLSv1.3)? [y/N]") && out.contains("1 value(s) are set on purpose"), "{out}");
    assert_untouched(dir, &files, &head, "");
    // a yes for each: written, and the commit names every exception it overrode
    let (code, out) = pty("y\ny\ny\ny\n");
    assert_eq!(code, Some(0), "{out}");
    let message = git(dir, &["log", "-1", "--format=%B"]);
    assert!(message.contains("Exceptions overridden (4: values the repo set on purpose):"), "{message}");
    let flat = message.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        flat.contains("- apps/api-gateway/overlays/prod-east/ingress-annotations.yaml:10 (prod-east): \"TLSv1.2\" -> TLSv1.3; it said: \"Partner integrations still include TLSv1.2-only clients.\""),
        "{message}"
    );
    assert!(message.lines().all(|l| l.chars().count() <= 72), "{message}");
    assert!(message.trim_end().ends_with("\n\nRefs: SEC-2025-01"), "{message}");
}

/// With --remove-redundant, a patch whose value equals its base after the change goes: the
/// key from an inline patch, and a patch file that set nothing else, with its entry.
#[test]
fn redundant_overrides_are_removed_when_asked() {
    let cache = cache_dir("harmonize-cache");
    let repo = platform_repo(|_| ());
    let dir = repo.path();
    let r = run_tls(dir, &cache, &["--yes", "--override-exceptions", "all", "--remove-redundant", "--format", "json"]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!((v["covered_after"].as_u64(), v["blockers"].as_array().map(Vec::len)), (Some(20), Some(0)));
    assert!(!dir.join("apps/api-gateway/overlays/staging/ingress-ssl-protocols.yaml").exists());
    let k = std::fs::read_to_string(dir.join("apps/api-gateway/overlays/staging/kustomization.yaml")).unwrap();
    assert!(!k.contains("ingress-ssl-protocols.yaml"), "{k}");
    let west = std::fs::read_to_string(dir.join("apps/web-frontend/overlays/prod-west/kustomization.yaml")).unwrap();
    assert!(!west.contains("ssl-protocols") && west.contains("proxy-body-size: 8m"), "{west}");
    let committed = git(dir, &["show", "--name-status", "--format=", "HEAD"]);
    assert!(committed.contains("D\tapps/api-gateway/overlays/staging/ingress-ssl-protocols.yaml"), "{committed}");
    assert_eq!(git(dir, &["status", "--porcelain"]), "");
    let message = git(dir, &["log", "-1", "--format=%B"]);
    assert!(message.contains("Removed, equal to their base after the change:"), "{message}");
}
