//! `agentops demo`: the whole week on the example platform, through the planner and the
//! executor, against mock clusters; each day's key facts and the commits it made.

use std::path::Path;

use super::common::*;

#[test]
fn the_week_runs_end_to_end() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("demo");
    let cache = Path::new(env!("CARGO_TARGET_TMPDIR")).join("demo-cache");
    let example = platform();
    let r = agentops(&[
        "demo",
        "--workdir",
        dir.to_str().unwrap(),
        "--example",
        example.to_str().unwrap(),
        "--cache-dir",
        cache.to_str().unwrap(),
    ]);
    let out = &r.stdout;
    assert_eq!(r.code, 0, "{out}\n{}", r.stderr);
    let day = |name: &str| -> &str {
        let start = out.find(&format!("━━━ {name}:")).unwrap_or_else(|| panic!("no {name}: {out}"));
        let rest = &out[start..];
        let end = rest[3..].find("━━━ ").map_or(rest.len(), |i| i + 3);
        &rest[..end]
    };
    for name in ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday"] {
        let d = day(name);
        assert!(d.contains(&format!("✓ {name} in ")), "{d}");
        assert!(!d.contains("✗"), "{d}");
        assert!(d.contains("Request: ") && d.contains("Plan "), "requests and plans are shown: {d}");
    }

    let monday = day("Monday");
    assert!(monday.contains("render_overlay [ReadOnly]") && monday.contains("create_app [WritesRepo]"), "{monday}");
    assert!(monday.contains("Approval: auto-approved (demo): create_app"), "{monday}");
    assert!(monday.contains("cluster prerequisites met"), "{monday}");
    assert!(monday.contains("feat(prometheus): deploy prometheus to 5 environments"), "{monday}");

    let tuesday = day("Tuesday");
    // the hand edit is the real kubectl (the suite always has one) against the mock API server
    assert!(
        tuesday.contains("Setup: someone ran `kubectl --context prod-west -n monitoring edit deployment/grafana`")
            && tuesday.contains("(here: the real kubectl, its editor a script)"),
        "{tuesday}"
    );
    let audit = std::fs::read_to_string(dir.join("audit.jsonl")).unwrap();
    assert!(
        audit.lines().any(|l| l.contains("deployments/grafana?fieldManager=kubectl-edit") && l.contains("kubectl/")),
        "the edit reached the API server from kubectl"
    );
    assert!(tuesday.contains("+ container oauth2-proxy (image quay.io/oauth2-proxy/oauth2-proxy:v7.4.0)"), "{tuesday}");
    assert!(tuesday.contains("modified: kubectl-edit"), "attributed: {tuesday}");
    assert!(tuesday.contains(", by admin from 127.0.0.1"), "the user, from the audit log: {tuesday}");
    assert!(tuesday.contains("Commit: none"), "{tuesday}");

    let wednesday = day("Wednesday");
    assert!(wednesday.contains("Proof: coverage 20/20 after the edits"), "{wednesday}");
    assert!(wednesday.contains("feat(security): enforce TLS 1.3 on all ingresses"), "{wednesday}");
    // the security requirement overrides the documented exceptions, and says so
    assert!(
        wednesday.contains("Exceptions (4: values the repo sets on purpose, which these edits overwrite, every one overridden by the request)"),
        "{wednesday}"
    );
    assert!(
        wednesday.contains("why (the comment next to it): Partner integrations still include TLSv1.2-only clients.")
    );

    let thursday = day("Thursday");
    // Thursday starts from the alert: Alertmanager's webhook to the watcher, a proposal, an approval
    assert!(thursday.contains("Nobody typed a request: Thursday starts from the alert."), "{thursday}");
    assert!(thursday.contains("Alert: POST /alerts answered 200: \"proposal\""), "{thursday}");
    assert!(thursday.contains(": HighErrorRatio fired: roll back auth-service in prod-west from "), "{thursday}");
    assert!(thursday.contains("Request: approve proposal "), "{thursday}");
    assert!(thursday.contains(": rolled-back\n"), "{thursday}");
    assert!(thursday.contains("closed, recovered after the rollback"), "{thursday}");
    assert!(thursday.contains("error rate 87.0% while live"), "{thursday}");
    assert!(thursday.contains("Verification: recovered"), "{thursday}");
    assert!(thursday.contains("  ok   error-rate "), "{thursday}");
    assert!(
        thursday.contains("revert(auth-service): undo ") && thursday.contains(" in all 5 environments"),
        "{thursday}"
    );
    assert!(
        !thursday.lines().any(|l| l.starts_with("Commit: ") && l.contains("feat(auth)")),
        "what the demo staged is not listed as the day's commit: {thursday}"
    );

    let friday = day("Friday");
    assert!(friday.contains("  8 services reference redis (redis.data.svc.cluster.local)"), "{friday}");
    assert!(friday.contains("4. queues/idempotency  notifications, orders"), "{friday}");
    assert!(friday.contains("prod-central   gcp      blocked"), "{friday}");
    assert!(
        friday.contains("wrote docs/migrations/") && friday.contains("and its record docs/migrations/"),
        "{friday}"
    );
    assert!(
        friday.contains("Commit: ")
            && friday.contains("docs(migrations): plan the redis to elasticache migration in 4 waves")
    );
    // one text rendering: no JSON shapes, the summary once
    for shape in ["dependency: {", "findings: ", "graph: {", "plan: {"] {
        assert!(!friday.contains(shape), "{shape:?} in {friday}");
    }
    assert_eq!(friday.matches("services keep data in redis").count(), 1, "{friday}");

    // the repo is left for people to look at: the week's commits and documents
    let repo = dir.join("repo");
    assert!(out.contains(&format!("Repo: {}", repo.display())), "{out}");
    let log = git(&repo, &["log", "--format=%an|%s"]);
    let subjects: Vec<&str> = log.lines().collect();
    assert_eq!(subjects.len(), 8, "{log}");
    assert!(
        subjects[0].starts_with("Demo Engineer|docs(migrations): plan the redis to elasticache migration"),
        "{log}"
    );
    // Friday's commit is the workflow's summary with the reason, drafted from the record
    let friday_msg = git(&repo, &["log", "-1", "--format=%B"]);
    assert!(friday_msg.contains("1. cache: catalog, user-profile (warm or start cold)"), "{friday_msg}");
    assert!(friday_msg.contains("\n\nplan the move from self-hosted Redis to ElastiCache\n"), "{friday_msg}");
    // Wednesday's names the exceptions it overrode; the ticket is a trailer
    let wed = git(&repo, &["log", "-1", "--format=%B", "--grep=enforce TLS 1.3"]);
    assert!(wed.contains("Exceptions overridden (4: values the repo set on purpose):"), "{wed}");
    assert!(wed.trim_end().ends_with("Refs: SEC-2025-01"), "{wed}");
    // the revert carries git's own line
    let revert = git(&repo, &["log", "-1", "--format=%B", "--grep=^revert("]);
    assert!(revert.contains("This reverts commit "), "{revert}");
    assert!(subjects.iter().any(|s| s.starts_with("Sam Okafor|feat(auth)")), "{log}");
    assert!(subjects.last().unwrap().starts_with("Priya Raman|"), "{log}");
    assert_eq!(git(&repo, &["status", "--porcelain", "--untracked-files=no"]), "", "nothing left uncommitted");
    let mut incidents: Vec<String> = std::fs::read_dir(repo.join("docs/incidents"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    incidents.sort();
    assert_eq!(incidents.len(), 2, "the report and its record: {incidents:?}");
    assert!(incidents[0].ends_with(".json") && incidents[1].ends_with(".md"), "{incidents:?}");
    let report = std::fs::read_to_string(repo.join("docs/incidents").join(&incidents[1])).unwrap();
    assert!(
        report.contains(", reverted in all 5 environments\n") && report.contains("- Time to recovery: "),
        "{report}"
    );
    assert!(report.contains("| **87.0%** |"), "samples from Prometheus: {report}");
    let journal = std::fs::read_to_string(repo.join(".agentops/journal.jsonl")).unwrap();
    for tool in ["create_app", "drift_report", "harmonize_apply", "git_revert", "argocd_sync", "write_doc", "commit"] {
        assert!(journal.contains(&format!("\"tool\":\"{tool}\"")), "journaled: {tool}");
    }
}

/// The demo's clusters start as Argo CD leaves them: every Application synced, so drift on
/// the whole demo world finds nothing before the week, and exactly the hand edit after
/// Tuesday's setup.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_demo_clusters_start_as_argo_cd_leaves_them() {
    let example = platform();
    let work = tempfile::tempdir().unwrap();
    let mut world = agentops::demo::World::build(&example, Some(&work.path().join("w"))).await.unwrap();
    assert_eq!(world.synced, 60, "12 apps in 5 environments");
    let (repo, kc) = (world.repo.clone(), world.kubeconfig());
    let drift = move || {
        let (repo, kc) = (repo.clone(), kc.clone());
        tokio::task::spawn_blocking(move || {
            agentops(&["drift", "--repo", repo.to_str().unwrap(), "--kubeconfig", kc.to_str().unwrap()])
        })
    };
    let before = drift().await.unwrap();
    assert_eq!(before.code, 0, "no drift before the week: {}\n{}", before.stdout, before.stderr);
    assert!(!before.stdout.contains("[missing]"), "{}", before.stdout);
    world.stage_sidecar().await.unwrap();
    let after = drift().await.unwrap();
    assert_eq!(after.code, 1, "{}\n{}", after.stdout, after.stderr);
    let findings: Vec<&str> = after.stdout.lines().filter(|l| l.contains(" [")).collect();
    assert_eq!(findings, ["prod-west Deployment/monitoring/grafana [drifted]"], "{}", after.stdout);
    world.shutdown().await;
}
