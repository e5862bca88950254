//! Commit drafting end to end on a git copy of examples/platform with the real kustomize:
//! staged changes of each kind (new app, image bump, annotation on every Ingress, resources
//! per tier, replicas, docs, CI, formatting, a Secret, mixed), committing, the tools and
//! `/commit`, the prepare-commit-msg hook with the real git, and LLM polish against the fake
//! OpenAI-compatible server.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};

use super::common::*;
use super::llm::{Fake, text};

/// A git repo holding a copy of examples/platform, and a build cache of its own.
struct Fixture {
    repo: tempfile::TempDir,
    cache: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Fixture {
        let repo = tempfile::tempdir().unwrap();
        copy_dir(&platform(), repo.path());
        let _ = std::fs::remove_dir_all(repo.path().join(".agentops"));
        git_init(repo.path());
        Fixture { repo, cache: tempfile::tempdir().unwrap() }
    }

    fn root(&self) -> &Path {
        self.repo.path()
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.root().join(rel)
    }

    fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.path(rel)).unwrap()
    }

    fn write(&self, rel: &str, text: &str) {
        let p = self.path(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    /// Replaces `from` (which must be there) with `to` in a file.
    fn edit(&self, rel: &str, from: &str, to: &str) {
        let t = self.read(rel);
        assert!(t.contains(from), "{rel} has no {from:?}");
        self.write(rel, &t.replacen(from, to, 1));
    }

    fn stage_all(&self) {
        git(self.root(), &["add", "-A"]);
    }

    /// `agentops commit ARGS` on this repo, with its own cache.
    fn commit(&self, args: &[&str]) -> Run {
        let mut all = vec!["commit", "--repo", self.root().to_str().unwrap()];
        all.extend(["--cache-dir", self.cache.path().to_str().unwrap()]);
        all.extend_from_slice(args);
        agentops(&all)
    }

    /// The drafted message (`--print`).
    fn draft(&self, args: &[&str]) -> String {
        let mut all = vec!["--print"];
        all.extend_from_slice(args);
        let r = self.commit(&all);
        assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
        r.stdout
    }

    fn log(&self, format: &str) -> String {
        git(self.root(), &["log", "-1", &format!("--format={format}")])
    }
}

const ENVS: [&str; 5] = ["dev", "staging", "prod-west", "prod-east", "prod-central"];

fn subject(msg: &str) -> &str {
    msg.lines().next().unwrap()
}

/// The checks every drafted message passes.
fn well_formed(msg: &str) {
    let s = subject(msg);
    assert!(s.chars().count() <= 72, "subject too long: {s}");
    assert!(!s.ends_with('.'), "{s}");
    assert!(msg.lines().nth(1).is_none_or(str::is_empty), "blank line after the subject:\n{msg}");
    assert!(msg.lines().all(|l| l.chars().count() <= 72), "body wrapped at 72:\n{msg}");
}

#[test]
fn a_new_app_across_five_environments_is_a_feat() {
    let f = Fixture::new();
    copy_dir(&f.path("apps/orders"), &f.path("apps/billing"));
    for e in walk(&f.path("apps/billing")) {
        let t = std::fs::read_to_string(&e).unwrap();
        std::fs::write(&e, t.replace("orders", "billing")).unwrap();
    }
    f.stage_all();
    let msg = f.draft(&["--reason", "Billing moves out of the orders service.", "--ref", "FIN-12"]);
    well_formed(&msg);
    assert_eq!(subject(&msg), "feat(billing): deploy billing to 5 environments");
    for e in ENVS {
        assert!(msg.contains(e), "{e} missing:\n{msg}");
    }
    assert!(msg.contains("Validated: kustomize build 5/5 overlays, checks passed"), "{msg}");
    assert!(msg.ends_with("\n\nRefs: FIN-12\n"), "{msg}");
    insta::assert_snapshot!("commit_new_app", msg);
}

#[test]
fn an_image_bump_in_one_environment_is_a_fix() {
    let f = Fixture::new();
    f.edit("apps/api-gateway/overlays/staging/kustomization.yaml", "newTag: 3.2.1", "newTag: 3.2.2");
    f.stage_all();
    let msg = f.draft(&["--reason", "Fixes the rate limiter leak under load.", "--ref", "SEC-2025-01"]);
    well_formed(&msg);
    insta::assert_snapshot!("commit_image_bump", msg);
    assert_eq!(subject(&msg), "fix(api-gateway): bump api-gateway to 3.2.2 in staging");
    assert!(msg.contains("- image ghcr.io/acme/api-gateway 3.2.1 -> 3.2.2 in staging\n"), "{msg}");
    assert!(msg.contains("Validated: kustomize build 1/1 overlays, checks passed"), "{msg}");
    // deterministic: the same change drafts the same message (now from the cache)
    assert_eq!(f.draft(&["--reason", "Fixes the rate limiter leak under load.", "--ref", "SEC-2025-01"]), msg);
    // type and scope as given
    let given = f.draft(&["--type", "chore", "--scope", "edge"]);
    assert_eq!(subject(&given), "chore(edge): bump api-gateway to 3.2.2 in staging");
}

#[test]
fn an_annotation_on_every_ingress_groups_apps_and_environments() {
    let f = Fixture::new();
    for file in [
        "apps/api-gateway/base/ingress.yaml",
        "apps/grafana/base/ingress.yaml",
        "components/public-ingress/ingress.yaml",
        "apps/web-frontend/base/service-ingress.yaml",
    ] {
        f.edit(file, "\n  annotations:\n", "\n  annotations:\n    acme.io/owner: platform-team\n");
    }
    f.stage_all();
    let msg = f.draft(&[]);
    well_formed(&msg);
    assert_eq!(subject(&msg), "fix: set acme.io/owner annotation on Ingresses");
    assert!(
        msg.contains(
            "- grafana, web-frontend: annotation acme.io/owner=platform-team on\n  Ingress in dev, staging, prod-west, prod-east, prod-central\n"
        ),
        "{msg}"
    );
    for app in ["api-gateway", "catalog", "user-profile"] {
        assert!(msg.contains(&format!("- {app}: annotation acme.io/owner=platform-team on")), "{app}:\n{msg}");
    }
    assert!(msg.contains("Validated: kustomize build 19/19 overlays, checks passed"), "{msg}");
}

#[test]
fn resource_changes_per_tier_and_replicas_across_prod() {
    let f = Fixture::new();
    f.edit("apps/orders/base/deployment.yaml", "memory: 384Mi", "memory: 512Mi");
    for e in ["prod-west", "prod-east", "prod-central"] {
        f.edit(&format!("apps/orders/overlays/{e}/resources.yaml"), "memory: 768Mi", "memory: 1Gi");
        f.edit(&format!("apps/orders/overlays/{e}/kustomization.yaml"), "count: 3", "count: 5");
    }
    f.stage_all();
    let msg = f.draft(&[]);
    well_formed(&msg);
    assert_eq!(subject(&msg), "chore(orders): raise memory limits and scale to 5 replicas in prod");
    assert!(msg.contains("- limits.memory 384Mi -> 512Mi in dev, staging\n"), "{msg}");
    assert!(msg.contains("- limits.memory 768Mi -> 1Gi in prod-west, prod-east, prod-central\n"), "{msg}");
    assert!(msg.contains("- replicas 3 -> 5 in prod-west, prod-east, prod-central\n"), "{msg}");
    // replicas alone, in two apps of one namespace: the namespace is the scope
    git(f.root(), &["reset", "-q", "--hard"]);
    for e in ["prod-west", "prod-east", "prod-central"] {
        f.edit(&format!("apps/orders/overlays/{e}/kustomization.yaml"), "count: 3", "count: 5");
    }
    f.edit("apps/catalog/overlays/prod-west/kustomization.yaml", "count: 3", "count: 5");
    f.stage_all();
    let msg = f.draft(&[]);
    assert_eq!(subject(&msg), "chore(shop): scale catalog and orders to 5 replicas in prod");
    assert!(msg.contains("- catalog: replicas 3 -> 5 in prod-west\n"), "{msg}");
    assert!(msg.contains("- orders: replicas 3 -> 5 in prod-west, prod-east, prod-central\n"), "{msg}");
}

/// A setting that points a service somewhere else says where, and a new value elsewhere
/// reads as that setting.
#[test]
fn a_host_setting_says_where_it_now_points() {
    let f = Fixture::new();
    f.edit(
        "apps/orders/base/configmap.yaml",
        "REDIS_HOST: redis.data.svc.cluster.local",
        "REDIS_HOST: orders.x1y2z3.cache.amazonaws.com",
    );
    f.stage_all();
    let msg = f.draft(&["--reason", "OPS-7: orders moves first"]);
    well_formed(&msg);
    assert_eq!(subject(&msg), "fix(orders): point REDIS_HOST at orders.x1y2z3.cache.amazonaws.com");
    assert!(
        msg.contains(
            "- REDIS_HOST redis.data.svc.cluster.local ->\n  orders.x1y2z3.cache.amazonaws.com in ConfigMap orders-config in dev,\n  staging, prod-west, prod-east, prod-central\n"
        ),
        "{msg}"
    );
    assert!(msg.contains("\n\norders moves first\n") && msg.ends_with("\n\nRefs: OPS-7\n"), "{msg}");
    // a generated ConfigMap's literal, in one overlay
    git(f.root(), &["reset", "-q", "--hard"]);
    f.edit("apps/catalog/overlays/dev/kustomization.yaml", "CACHE_TTL_SECONDS=30", "CACHE_TTL_SECONDS=5");
    f.stage_all();
    assert_eq!(subject(&f.draft(&[])), "fix(catalog): set CACHE_TTL_SECONDS to 5 in dev");
}

#[test]
fn docs_only_ci_only_and_mixed() {
    let f = Fixture::new();
    f.write("README.md", &format!("{}\nMore notes.\n", f.read("README.md")));
    f.stage_all();
    let msg = f.draft(&[]);
    assert_eq!(subject(&msg), "docs: update README.md");
    assert!(!msg.contains("Validated:"), "nothing rendered, nothing validated:\n{msg}");
    git(f.root(), &["commit", "-q", "-m", "docs"]);

    // a new document is added, not updated
    f.write("docs/runbooks/cache.md", "# Cache runbook\n");
    f.stage_all();
    assert_eq!(subject(&f.draft(&[])), "docs: add docs/runbooks/cache.md");
    git(f.root(), &["commit", "-q", "-m", "runbook"]);

    f.write(".github/workflows/validate.yml", "on: [push]\njobs: {}\n");
    f.stage_all();
    let msg = f.draft(&[]);
    assert_eq!(subject(&msg), "ci: add .github/workflows/validate.yml");
    git(f.root(), &["commit", "-q", "-m", "ci"]);

    // mixed: the manifests decide the type; docs and CI are listed
    f.write("docs/runbook.md", "# Runbook\n");
    f.write(".gitlab-ci.yml", "stages: [test]\n");
    f.edit("apps/redis/overlays/dev/kustomization.yaml", "newTag: 7.2.5", "newTag: 7.2.6");
    f.stage_all();
    let msg = f.draft(&[]);
    well_formed(&msg);
    assert_eq!(subject(&msg), "chore(redis): bump redis to 7.2.6 in dev");
    assert!(msg.contains("- image redis 7.2.5 -> 7.2.6 in dev\n"), "{msg}");
    assert!(msg.contains("- docs: docs/runbook.md\n") && msg.contains("- ci: .gitlab-ci.yml\n"), "{msg}");
    assert!(msg.contains("Validated: kustomize build 1/1 overlays, checks passed"), "{msg}");
    git(f.root(), &["commit", "-q", "-m", "mixed"]);

    // objects renamed (added and removed) are a chore; objects added alone a feat
    let kfile = "apps/redis/overlays/dev/kustomization.yaml";
    f.edit(kfile, "kind: Kustomization\n", "kind: Kustomization\nnamePrefix: x-\n");
    f.stage_all();
    let msg = f.draft(&[]);
    assert_eq!(subject(&msg), "chore(redis): update redis in dev", "{msg}");
    git(f.root(), &["reset", "-q", "--hard"]);
    f.write(
        "apps/redis/overlays/dev/pdb.yaml",
        "apiVersion: policy/v1\nkind: PodDisruptionBudget\nmetadata:\n  name: redis\nspec:\n  maxUnavailable: 1\n",
    );
    f.edit(kfile, "  - ../../base\n", "  - ../../base\n  - pdb.yaml\n");
    f.stage_all();
    let msg = f.draft(&[]);
    assert_eq!(subject(&msg), "feat(redis): add PodDisruptionBudget to redis in dev", "{msg}");
    assert!(msg.contains("- add PodDisruptionBudget in dev\n"), "{msg}");
}

#[test]
fn comments_and_whitespace_only_are_style() {
    let f = Fixture::new();
    let file = "apps/orders/base/deployment.yaml";
    f.write(file, &format!("# Reviewed for the 2026 audit.\n{}\n\n", f.read(file)));
    f.stage_all();
    let msg = f.draft(&[]);
    assert_eq!(subject(&msg), "style(orders): reformat orders manifests");
    assert!(msg.contains("- no rendered change in 5 overlays"), "{msg}");
}

#[test]
fn secret_values_never_appear() {
    let f = Fixture::new();
    f.edit(
        "apps/grafana/base/kustomization.yaml",
        "admin-password=example-not-a-secret",
        "admin-password=canary-7f3e9a1b",
    );
    f.stage_all();
    let r = f.commit(&["--print"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let msg = r.stdout;
    assert!(msg.contains("secret grafana-admin keys changed: admin-password in dev, staging"), "{msg}");
    for leaked in ["canary-7f3e9a1b", "example-not-a-secret", "Y2FuYXJ5"] {
        assert!(!msg.contains(leaked), "{leaked} leaked:\n{msg}");
    }
    // nor through the tool's structured summary
    let r = agentops(&["tools", "call", "draft_commit_message", "--repo", f.root().to_str().unwrap(), "--no-cache"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    for leaked in ["canary-7f3e9a1b", "example-not-a-secret", "Y2FuYXJ5"] {
        assert!(!r.stdout.contains(leaked), "{leaked} leaked:\n{}", r.stdout);
    }
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["summary"]["apps"][0]["name"], "grafana");
    assert_eq!(v["summary"]["apps"][0]["envs"][0]["facts"][0]["kind"], "secret_keys");
}

#[test]
fn committing_takes_exactly_the_index_and_refuses_without_approval() {
    let f = Fixture::new();
    let r = f.commit(&["--yes"]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("nothing is staged"), "{}", r.stderr);

    f.edit("apps/api-gateway/overlays/staging/kustomization.yaml", "newTag: 3.2.1", "newTag: 3.2.2");
    f.stage_all();
    // an unstaged edit stays out of the commit
    f.edit("apps/api-gateway/overlays/dev/kustomization.yaml", "newTag:", "newTag: 9.9.9 #");
    let r = f.commit(&[]);
    assert_eq!(r.code, 1, "stdin is no terminal and there is no --yes");
    assert!(r.stderr.contains("pass --yes"), "{}", r.stderr);
    let r = f.commit(&["--yes", "--ref", "OPS-1"]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("committed "), "{}", r.stdout);
    // an image bump is upkeep unless a reason says it fixes something
    assert_eq!(f.log("%s"), "chore(api-gateway): bump api-gateway to 3.2.2 in staging\n");
    assert!(f.log("%B").contains("Refs: OPS-1"));
    let status = git(f.root(), &["status", "--porcelain"]);
    assert_eq!(status.trim(), "M apps/api-gateway/overlays/dev/kustomization.yaml", "{status}");
    // the commit went through the executor like every write: it is in the journal
    let j = agentops(&["journal", "--repo", f.root().to_str().unwrap(), "--format", "json", "--limit", "1"]);
    let j: serde_json::Value = serde_json::from_str(&j.stdout).unwrap();
    assert_eq!((j[0]["tool"].as_str(), j[0]["ok"].as_bool()), (Some("commit"), Some(true)), "{j}");
    assert_eq!(j[0]["effect"], "WritesRepo", "{j}");
    let sha = f.log("%h");
    assert!(j[0].to_string().contains(sha.trim()), "{j}");

    // a change that breaks a build: stated in the message, refused with --yes
    git(f.root(), &["checkout", "-q", "--", "."]);
    f.edit("apps/payments/overlays/prod-east/kustomization.yaml", "resources:\n", "resources:\n  - missing.yaml\n");
    f.stage_all();
    let msg = f.draft(&[]);
    assert!(msg.contains("Validated: kustomize build 0/1 overlays, 1 error (kustomize-build)"), "{msg}");
    assert!(msg.contains("does not build"), "{msg}");
    let r = f.commit(&["--yes"]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("--allow-invalid"), "{}", r.stderr);
    let head = f.log("%H");
    let r = f.commit(&["--yes", "--allow-invalid"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_ne!(f.log("%H"), head);
}

#[test]
fn the_commit_tool_commits_exactly_the_given_paths() {
    let f = Fixture::new();
    // staged by the user, and not ours to commit
    f.edit(
        "apps/redis/overlays/dev/kustomization.yaml",
        "kind: Kustomization\n",
        "kind: Kustomization\nnamePrefix: x-\n",
    );
    f.stage_all();
    f.edit("apps/api-gateway/overlays/staging/kustomization.yaml", "newTag: 3.2.1", "newTag: 3.2.2");
    let root = f.root().to_str().unwrap();
    let args =
        json!({"paths": ["apps/api-gateway/overlays/staging/kustomization.yaml"], "reason": "Roll the fix out."});
    let r = agentops(&["tools", "call", "commit", "--repo", root, "--no-cache", "--yes", "--args", &args.to_string()]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["validation"]["errors"], 0);
    assert_eq!(f.log("%s"), "fix(api-gateway): bump api-gateway to 3.2.2 in staging\n");
    let files = git(f.root(), &["show", "--name-only", "--format=", "HEAD"]);
    assert_eq!(files.trim(), "apps/api-gateway/overlays/staging/kustomization.yaml");
    let status = git(f.root(), &["status", "--porcelain"]);
    assert_eq!(status.trim(), "M  apps/redis/overlays/dev/kustomization.yaml", "still staged, not committed");
    // unchanged paths: nothing to commit
    let args = json!({"paths": ["README.md"], "message": "docs: nothing", "allow_invalid": true});
    let r = agentops(&["tools", "call", "commit", "--repo", root, "--yes", "--args", &args.to_string()]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("nothing to commit"), "{}", r.stderr);
}

#[test]
fn slash_commit_drafts_then_commits_behind_approval() {
    let f = Fixture::new();
    f.edit("apps/api-gateway/overlays/staging/kustomization.yaml", "newTag: 3.2.1", "newTag: 3.2.2");
    f.stage_all();
    let root = f.root().to_str().unwrap();
    let request = r#"/commit reason="Fixes the leak." refs=SEC-2025-01"#;
    // no approval: the draft runs, the commit is denied
    let r = agentops(&["ask", request, "--repo", root, "--no-cache", "--format", "json"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    let tools: Vec<&str> = v["plan"].as_array().unwrap().iter().map(|s| s["tool"].as_str().unwrap()).collect();
    assert_eq!(tools, vec!["draft_commit_message", "commit"]);
    assert!(v["results"][0]["output"]["message"].as_str().unwrap().contains("Refs: SEC-2025-01"));
    assert_eq!(f.log("%s"), "initial\n");
    let r = agentops(&["ask", request, "--repo", root, "--no-cache", "--yes", "--format", "json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(f.log("%s"), "fix(api-gateway): bump api-gateway to 3.2.2 in staging\n");
    let body = f.log("%B");
    assert!(body.contains("Fixes the leak.") && body.contains("Refs: SEC-2025-01"), "{body}");
    // the commit carries exactly the message the draft step showed
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    let shown = v["results"][0]["output"]["message"].as_str().unwrap();
    assert_eq!(v["results"][1]["output"]["message"], shown);
    assert_eq!(body.trim_end(), shown.trim_end());
}

/// git with a fixed identity, the hook's environment (editor, cache) and no terminal.
fn git_env(dir: &Path, cache: &Path, args: &[&str]) -> std::process::Output {
    Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "Test")
        .env("GIT_AUTHOR_EMAIL", "test@example.com")
        .env("GIT_COMMITTER_NAME", "Test")
        .env("GIT_COMMITTER_EMAIL", "test@example.com")
        .env("GIT_EDITOR", "true")
        .env("AGENTOPS_CACHE_DIR", cache)
        .env_remove("OPENAI_API_KEY")
        .output()
        .unwrap()
}

fn git_ok(dir: &Path, cache: &Path, args: &[&str]) {
    let out = git_env(dir, cache, args);
    assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn the_hook_drafts_only_for_a_plain_git_commit() {
    let f = Fixture::new();
    let (root, cache) = (f.root(), f.cache.path());
    let r = agentops(&["hooks", "install", "--repo", root.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let hook = std::fs::read_to_string(root.join(".git/hooks/prepare-commit-msg")).unwrap();
    assert!(hook.contains(env!("CARGO_BIN_EXE_agentops")), "{hook}");

    // -m: the user's message is kept
    f.edit("apps/api-gateway/overlays/staging/kustomization.yaml", "newTag: 3.2.1", "newTag: 3.2.2");
    git_ok(root, cache, &["add", "-A"]);
    git_ok(root, cache, &["commit", "-q", "-m", "my own words"]);
    assert_eq!(f.log("%B").trim(), "my own words");

    // plain `git commit`: the draft fills the message
    f.edit("apps/api-gateway/overlays/staging/kustomization.yaml", "newTag: 3.2.2", "newTag: 3.2.3");
    git_ok(root, cache, &["add", "-A"]);
    git_ok(root, cache, &["commit", "-q"]);
    assert_eq!(f.log("%s"), "chore(api-gateway): bump api-gateway to 3.2.3 in staging\n");
    assert!(f.log("%B").contains("Validated: kustomize build 1/1 overlays, checks passed"));

    // --amend (with a staged change): the message being amended is kept
    f.edit("apps/api-gateway/overlays/staging/kustomization.yaml", "newTag: 3.2.3", "newTag: 3.2.4");
    git_ok(root, cache, &["add", "-A"]);
    git_ok(root, cache, &["commit", "-q", "--amend"]);
    assert_eq!(f.log("%s"), "chore(api-gateway): bump api-gateway to 3.2.3 in staging\n");

    // a merge: git's merge message is kept
    git_ok(root, cache, &["checkout", "-q", "-b", "side"]);
    f.edit(
        "apps/redis/overlays/dev/kustomization.yaml",
        "kind: Kustomization\n",
        "kind: Kustomization\nnamePrefix: x-\n",
    );
    git_ok(root, cache, &["commit", "-q", "-am", "side change"]);
    git_ok(root, cache, &["checkout", "-q", "main"]);
    f.write("docs/notes.md", "# Notes\n");
    git_ok(root, cache, &["add", "-A"]);
    git_ok(root, cache, &["commit", "-q", "-m", "notes"]);
    git_ok(root, cache, &["merge", "-q", "--no-ff", "side"]);
    assert_eq!(f.log("%s"), "Merge branch 'side'\n");

    // a foreign hook is not replaced without --force
    std::fs::write(root.join(".git/hooks/prepare-commit-msg"), "#!/bin/sh\nexit 0\n").unwrap();
    let r = agentops(&["hooks", "install", "--repo", root.to_str().unwrap()]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("--force"), "{}", r.stderr);
    let r = agentops(&["hooks", "install", "--repo", root.to_str().unwrap(), "--force"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
}

/// `agentops commit --print --llm` against the fake server, off the test's runtime.
async fn polished(f: &Fixture, fake: &Fake) -> Run {
    let (root, cache, url) =
        (f.root().to_str().unwrap().to_string(), f.cache.path().to_str().unwrap().to_string(), fake.base_url.clone());
    tokio::task::spawn_blocking(move || {
        agentops(&[
            "commit",
            "--repo",
            &root,
            "--cache-dir",
            &cache,
            "--print",
            "--llm",
            "--llm-base-url",
            &url,
            "--model",
            "test-model",
            "--ref",
            "SEC-2025-01",
        ])
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn llm_polish_is_checked_and_falls_back_to_the_draft() {
    let f = Fixture::new();
    f.edit("apps/api-gateway/overlays/staging/kustomization.yaml", "newTag: 3.2.1", "newTag: 3.2.2");
    f.stage_all();
    let draft = f.draft(&["--ref", "SEC-2025-01"]);
    let good = "fix(api-gateway): ship api-gateway 3.2.2 to staging\n\nStaging now runs ghcr.io/acme/api-gateway 3.2.2 (was 3.2.1).\n\nValidated: kustomize build 1/1 overlays, checks passed\n\nRefs: SEC-2025-01";
    let invented = good.replace("(was 3.2.1)", "(was 3.2.1, 40% faster)");
    let fake = Fake::start(vec![text(good, (10, 5)), text(&invented, (10, 5))]).await;

    let r = polished(&f, &fake).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.stdout, format!("{good}\n"));
    let seen = fake.seen();
    let system = seen[0].body["messages"][0]["content"].as_str().unwrap();
    assert!(system.contains("\"name\": \"api-gateway\"") && system.contains(draft.trim_end()), "{system}");

    let r = polished(&f, &fake).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.stdout, draft, "the deterministic draft is used");
    assert!(r.stderr.contains("the number 40 appears in neither the summary nor the draft"), "{}", r.stderr);
}
