//! `agentops rollback` end to end on a mock prod-west with the simulated Argo CD and
//! Prometheus: a good and a bad revision deployed through Argo CD, the error ratio following
//! the deployed revision, then plan, revert, sync, verify and the incident report.

use serde_json::{Value, json};

use super::common::*;

/// The seed's scenario: 87% errors after the culprit, 0.1% at the good revision. The plan
/// names both with evidence; with --yes the revert (restricted to auth-service) is committed
/// with the incident report, synced, verified, and the verification recorded.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn seed_case_end_to_end() {
    let w = World::new(Setup::default()).await;
    let before = w.head();

    let r = w.rollback(&[]).await;
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("Nothing was written"), "{}", r.stderr);
    assert_eq!(w.head(), before, "the plan writes nothing");
    assert!(r.stdout.contains(&format!("Target       {}", &w.good[..7])), "{}", r.stdout);
    assert!(r.stdout.contains("error rate 0.1% while live"), "{}", r.stdout);
    assert!(r.stdout.contains(&format!("the deploy of {} at", &w.bad[..7])), "{}", r.stdout);
    assert!(r.stdout.contains("error rate 87.0% while live"), "{}", r.stdout);
    assert!(!r.stdout.contains("grafana"), "the unrelated commit is not a culprit: {}", r.stdout);
    insta::assert_snapshot!("rollback_seed_plan", stable(&r.stdout, &w));

    let json = w.rollback(&["--format", "json"]).await;
    let v: Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(v["plan"]["culprit_commits"][0]["sha"], w.bad.as_str());
    assert_eq!(v["plan"]["culprit_commits"][0]["files"], json!([DEPLOYMENT]));
    assert_eq!(v["plan"]["target"]["revision"], w.good.as_str());
    // the reverted base also renders into the app's other overlays: said, with the auto-syncing ones
    let risks = v["plan"]["risks"].as_array().unwrap();
    assert_eq!(risks.len(), 1, "{risks:#?}");
    assert_eq!(risks[0]["kind"], "shared");
    let shared = risks[0]["message"].as_str().unwrap();
    assert!(
        shared.contains("4 other overlay(s)")
            && shared.contains("apps/auth-service/overlays/dev (auto-sync: it changes at the next sync)")
            && shared.contains("apps/auth-service/overlays/prod-east,"),
        "{shared}"
    );
    let fingerprint = v["plan"]["fingerprint"].as_str().unwrap().to_string();
    assert!(r.stderr.contains(&format!("add --expect {fingerprint} to revert only this plan")), "{}", r.stderr);

    // a plan other than the one reviewed is not carried out
    let stale = w.rollback(&["--yes", "--expect", "0123456789abcdef", "--verify-timeout", "5"]).await;
    assert_eq!(stale.code, 1, "{}\n{}", stale.stdout, stale.stderr);
    assert!(stale.stderr.contains("the rollback plan changed since it was shown"), "{}", stale.stderr);
    assert_eq!((w.head(), w.status()), (before.clone(), String::new()), "nothing written");
    assert!(w.app()["operation"].is_null(), "no sync was requested");
    std::fs::remove_file(w.repo.path().join(".agentops/journal.jsonl")).unwrap();

    let r = w.rollback(&["--yes", "--expect", &fingerprint, "--verify-timeout", "60"]).await;
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("Verification: recovered"), "{}", r.stdout);
    for c in ["sync", "rollout", "health", "live", "error-rate"] {
        assert!(r.stderr.contains(&format!("ok   {c}")), "each check reported as it happens: {}", r.stderr);
    }
    // the revert commit, then the verification follow-up
    let revert = git(w.repo.path(), &["rev-parse", "HEAD~1"]).trim().to_string();
    let log = git(w.repo.path(), &["log", "--format=%s", "-3"]);
    let subjects: Vec<&str> = log.lines().collect();
    assert_eq!(
        subjects[0],
        format!("docs(incidents): auth-service recovered in prod-west after the revert {}", &revert[..7])
    );
    // the true scope: the reverted file is the base, so every environment changes
    assert_eq!(subjects[1], format!("revert(auth-service): undo {} in all 5 environments", &w.bad[..7]));
    let message = git(w.repo.path(), &["log", "-1", "--format=%B", "HEAD~1"]);
    assert!(message.contains(&format!("\n\nThis reverts commit {}.\n", w.bad)), "git's own line: {message}");
    assert!(message.contains("- prod-west: synced now (the incident)\n- dev: at its next auto-sync\n"), "{message}");
    assert!(message.lines().all(|l| l.chars().count() <= 72), "{message}");
    let follow_up = git(w.repo.path(), &["log", "-1", "--format=%B", "HEAD"]);
    insta::assert_snapshot!("rollback_seed_commit_messages", stable(&format!("{message}-----\n{follow_up}"), &w));
    let files = git(w.repo.path(), &["show", "--name-only", "--format=", "HEAD~1"]);
    let reports = w.incident_reports();
    assert_eq!(reports.len(), 1);
    let report_rel = format!("docs/incidents/{}", reports[0].file_name().unwrap().to_str().unwrap());
    let record_rel = report_rel.replace(".md", ".json");
    assert_eq!(
        files.lines().collect::<Vec<_>>(),
        vec![DEPLOYMENT, record_rel.as_str(), report_rel.as_str()],
        "only the app's file, the report and its record"
    );
    // the app's file is as it was at the good revision; grafana keeps its later change
    let good_text = git(w.repo.path(), &["show", &format!("{}:{DEPLOYMENT}", w.good)]);
    assert_eq!(std::fs::read_to_string(w.repo.path().join(DEPLOYMENT)).unwrap(), good_text);
    assert!(
        std::fs::read_to_string(w.repo.path().join("apps/grafana/base/deployment.yaml"))
            .unwrap()
            .contains("replicas: 2")
    );
    assert_eq!(w.status(), "", "nothing left uncommitted");

    // Argo CD deployed the revert, and the error ratio follows
    let app = w.app();
    assert_eq!(app["status"]["sync"]["revision"], revert.as_str());
    assert_eq!(app["status"]["history"].as_array().unwrap().len(), 3);

    let report = std::fs::read_to_string(&reports[0]).unwrap();
    // the title and the summary say every environment the revert changes
    let today = &report_rel["docs/incidents/".len().."docs/incidents/".len() + 10];
    assert!(
        report.starts_with(&format!(
            "# Incident {today}: auth-service errors in prod-west after {}, reverted in all 5 environments\n",
            &w.bad[..7]
        )),
        "{report}"
    );
    for want in [
        "87.0%",
        "0.1% while live",
        "Recovered: every check passed.",
        &format!("https://github.com/acme/platform/commit/{}", w.bad),
        // the revert commit, linked by the follow-up
        &format!("- Revert: [{}](https://github.com/acme/platform/commit/{revert})", &revert[..7]),
        "feat(auth): shorter shutdown for faster deploys",
        // the culprit's lines
        "-      terminationGracePeriodSeconds: 30\n+      terminationGracePeriodSeconds: 5\n",
        "so the revert changes all 5 environments (prod-west, dev, staging, prod-east and prod-central), not only prod-west.",
        "- [ ] staging (`apps/auth-service/overlays/staging`, Argo CD auth-service-staging): auto-sync: it changes at the next sync",
        "- [ ] prod-east (`apps/auth-service/overlays/prod-east`, Argo CD auth-service-prod-east): manual sync",
        "- Time to recovery: ",
        ": the first bad deploy, error rate 87.0% while live |",
        "recovered: every check passed, error rate 0.1% (below 5.0%) |",
        "Error ratio of auth-service in prod-west (`http_error_ratio{app=\"auth-service\",namespace=\"auth\"}`), samples from Prometheus:",
        "| **87.0%** |",
        "- [x] **error-rate** passed: 0.1% (below 5.0%)",
        "## Root cause",
    ] {
        assert!(report.contains(want), "report lacks {want:?}:\n{report}");
    }
    // the samples run from before the bad deploy to the recovery
    let samples: Vec<&str> = report
        .split("## Impact")
        .nth(1)
        .unwrap()
        .lines()
        .filter(|l| l.starts_with("| 20") && l.ends_with("% |"))
        .collect();
    assert!(samples.len() >= 3, "{report}");
    assert!(samples[0].ends_with("| 0.1% |") && samples.last().unwrap().ends_with("| 0.1% |"), "{samples:?}");
    // a permanent document: no internal indices, no console notes, no repeated scope line
    for unwanted in ["Pending:", "history #", "git remote", "restricted to the files of", "**shared**"] {
        assert!(!report.contains(unwanted), "{unwanted:?} in the report:\n{report}");
    }
    assert!(!report.contains("example-not-a-secret"), "no secret in the report");
    insta::assert_snapshot!("rollback_seed_report", stable(&report, &w));

    // the journal has the three steps, approved by --yes
    let journal = std::fs::read_to_string(w.repo.path().join(".agentops/journal.jsonl")).unwrap();
    let tools: Vec<String> = journal
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap()["tool"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(tools, vec!["git_revert", "argocd_sync", "rollback_verify"]);
    let revert_args = &serde_json::from_str::<Value>(journal.lines().next().unwrap()).unwrap()["args"];
    assert_eq!(revert_args["expect"], fingerprint.as_str());

    // nothing left to roll back: the current deploy is healthy
    let again = w.rollback(&[]).await;
    assert_eq!(again.code, 1, "{}", again.stdout);
    assert!(again.stdout.contains("looks healthy"), "{}", again.stdout);
    assert!(!again.stdout.contains("Culprit"), "a healthy deploy is named no culprit: {}", again.stdout);
    // back to the good revision explicitly: the culprit and its revert cancel out
    let to_good = w.rollback(&["--to", &w.good[..7]]).await;
    assert_eq!(to_good.code, 1, "{}\n{}", to_good.stdout, to_good.stderr);
    assert!(to_good.stdout.contains("cancel out in the app's files"), "{}", to_good.stdout);
    w.fleet.shutdown().await;
}

/// A later commit changed the same line: the revert conflicts, the file is named, and the repo
/// is exactly as it was.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_revert_conflict_stops_everything() {
    let w = World::new(Setup::default()).await;
    edit(&w.repo.path().join(DEPLOYMENT), "terminationGracePeriodSeconds: 5", "terminationGracePeriodSeconds: 10");
    let head = commit_all(w.repo.path(), "tune: grace period 10s");
    let r = w.rollback(&["--yes", "--verify-timeout", "5"]).await;
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("conflicts") && r.stderr.contains(DEPLOYMENT), "{}", r.stderr);
    assert!(r.stderr.contains("nothing was written"), "{}", r.stderr);
    assert_eq!(w.head(), head);
    assert_eq!(w.status(), "", "the repo is restored");
    assert!(w.incident_reports().is_empty());
    assert!(w.app()["operation"].is_null(), "no sync was requested");
    assert_eq!(w.app()["status"]["history"].as_array().unwrap().len(), 2);
    w.fleet.shutdown().await;
}

/// The culprit added a PreSync migration Job: the plan warns it is not undone. With auto-sync
/// on, the plan says so and still requests the sync; the rollback recovers.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_migration_is_a_manual_follow_up_and_auto_sync_is_handled() {
    let w = World::new(Setup { migration: true, auto_sync: true, drop_key: true, ..Setup::default() }).await;
    let r = w.rollback(&[]).await;
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains("Manual follow-ups (what a revert does not undo, and what else it changes):"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("[migration] Job auth-migrate-v2 (argocd.argoproj.io/hook: PreSync) added"),
        "{}",
        r.stdout
    );
    assert_eq!(r.stdout.matches("Job auth-migrate-v2").count(), 1, "found in the file and rendered: once {}", r.stdout);
    // only the rendered overlay shows the generated ConfigMap losing a key
    let json = w.rollback(&["--format", "json"]).await;
    let v: Value = serde_json::from_str(&json.stdout).unwrap();
    let removed: Vec<&Value> =
        v["plan"]["risks"].as_array().unwrap().iter().filter(|r| r["kind"] == "removed-key").collect();
    assert_eq!(removed.len(), 1, "{:#}", v["plan"]["risks"]);
    assert_eq!(removed[0]["file"], "apps/auth-service/overlays/prod-west (rendered)");
    assert_eq!(removed[0]["commit"], &w.bad[..7]);
    assert!(
        removed[0]["message"]
            .as_str()
            .unwrap()
            .starts_with("ConfigMap auth-service-config: key(s) SESSION_TTL_SECONDS removed"),
        "{}",
        removed[0]
    );
    assert!(r.stdout.contains("auto-sync on"), "{}", r.stdout);
    assert!(r.stdout.contains("auto-sync is on and would pick up the revert"), "{}", r.stdout);

    let r = w.rollback(&["--yes", "--verify-timeout", "60"]).await;
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(!w.repo.path().join("apps/auth-service/base/migrate-job.yaml").exists(), "the Job file is reverted");
    let report = std::fs::read_to_string(&w.incident_reports()[0]).unwrap();
    assert!(report.contains("- [ ] **migration**"), "{report}");
    w.fleet.shutdown().await;
}

/// Manual sync: the plan says the sync is requested the `argocd --core` way.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_error_rate_staying_high_fails_verification_loudly() {
    let w = World::new(Setup { stays_high: true, ..Setup::default() }).await;
    let r = w.rollback(&[]).await;
    assert!(r.stdout.contains("manual sync"), "{}", r.stdout);
    assert!(r.stdout.contains("operation.sync, as `argocd app sync --core` does"), "{}", r.stdout);
    let r = w.rollback(&["--yes", "--verify-timeout", "4"]).await;
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("VERIFICATION FAILED"), "{}", r.stdout);
    assert!(r.stdout.contains("FAIL error-rate still 87.0%"), "{}", r.stdout);
    assert!(r.stderr.contains("did not recover"), "{}", r.stderr);
    let report = std::fs::read_to_string(&w.incident_reports()[0]).unwrap();
    assert!(report.contains("VERIFICATION FAILED") && report.contains("- [ ] **error-rate** FAILED:"), "{report}");
    assert!(report.contains("- Time to recovery: not recovered yet"), "{report}");
    let subject = git(w.repo.path(), &["log", "--format=%s", "-1"]);
    assert!(
        subject.starts_with("docs(incidents): auth-service in prod-west after the revert ")
            && subject.trim_end().ends_with(": verification failed"),
        "{subject}"
    );
    w.fleet.shutdown().await;
}

/// Prometheus does not answer: the target is the previous deploy, the rollback still runs,
/// and the error-rate check is marked unknown.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn prometheus_unreachable_still_rolls_back_with_verification_unknown() {
    let w = World::new(Setup { prometheus_down: true, ..Setup::default() }).await;
    let r = w.rollback(&[]).await;
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("Error rate   unknown:"), "{}", r.stdout);
    assert!(r.stdout.contains("error rates are unknown: the target is the previous deploy"), "{}", r.stdout);
    assert!(r.stdout.contains(&format!("Target       {}", &w.good[..7])), "{}", r.stdout);
    let r = w.rollback(&["--yes", "--verify-timeout", "30"]).await;
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("Verification: UNKNOWN"), "{}", r.stdout);
    assert!(r.stderr.contains("recovery is UNKNOWN"), "{}", r.stderr);
    let report = std::fs::read_to_string(&w.incident_reports()[0]).unwrap();
    assert!(report.contains("- [ ] **error-rate** unknown:"), "{report}");
    assert!(report.contains("No samples: "), "no samples without Prometheus: {report}");
    // the base URL is configured: the graph of the same window is linked even so
    assert!(report.contains("Graph: [http_error_ratio"), "{report}");
    assert!(report.contains("](http://127.0.0.1:9/graph?g0.expr=http_error_ratio%7B"), "{report}");
    assert_eq!(w.app()["status"]["history"].as_array().unwrap().len(), 3, "deployed anyway");
    w.fleet.shutdown().await;
}

fn env_names(w: &World) -> Vec<String> {
    let d = w.store().get("apps/v1", "Deployment", Some("auth"), "auth-service").unwrap();
    let c = d["spec"]["template"]["spec"]["containers"].as_array().unwrap();
    let app = c.iter().find(|c| c["name"] == "auth-service").unwrap();
    app["env"].as_array().unwrap().iter().map(|e| e["name"].as_str().unwrap().to_string()).collect()
}

/// The case: the culprit adds OAUTH_PROVIDER; the rollback's sync (Argo CD's default
/// client-side apply) removes it, and verification proves live equals the good render.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rollback_removes_the_env_var_the_culprit_added() {
    let w = World::new(Setup { oauth: true, ..Setup::default() }).await;
    assert!(env_names(&w).contains(&"OAUTH_PROVIDER".to_string()), "the culprit is live");
    // on a terminal, as a person runs it: each check is shown once (progress is one
    // transient line; the result lists the checks)
    let r = w.rollback_in_terminal(&["--yes", "--verify-timeout", "60"]).await;
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("Verification: recovered"), "{}", r.stdout);
    assert_eq!(r.stdout.matches("ok   live       equals the target render").count(), 1, "{}", r.stdout);
    assert_eq!(r.stdout.matches("ok   rollout").count(), 1, "{}", r.stdout);
    assert_eq!(env_names(&w), ["DB_PASSWORD"], "the rollback removed OAUTH_PROVIDER from the live Deployment");
    w.fleet.shutdown().await;
}

/// A sync that leaves live different from the target fails verification loudly, whatever
/// the error rate says: with ServerSideApply=true after client-side syncs, Argo CD's apply
/// does not remove OAUTH_PROVIDER (the earlier Update owns it), and the check names it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_sync_that_keeps_the_field_fails_verification_naming_it() {
    let w = World::new(Setup { oauth: true, ..Setup::default() }).await;
    let patch = json!({"spec": {"syncPolicy": {"syncOptions": ["CreateNamespace=true", "ServerSideApply=true"]}}});
    w.store().merge_patch("argoproj.io/v1alpha1", "Application", Some("argocd"), APP, &patch, "kubectl-edit").unwrap();
    let r = w.rollback(&["--yes", "--verify-timeout", "30"]).await;
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    assert!(env_names(&w).contains(&"OAUTH_PROVIDER".to_string()), "server-side apply kept it");
    assert!(r.stdout.contains("VERIFICATION FAILED"), "{}", r.stdout);
    let line = r.stderr.lines().find(|l| l.contains("FAIL live")).unwrap_or_else(|| panic!("{}", r.stderr));
    assert!(
        line.contains("Deployment/auth/auth-service differs at") && line.contains("env[name=OAUTH_PROVIDER]"),
        "{line}"
    );
    assert!(!r.stderr.contains("error-rate"), "verification stops at the first failure: {}", r.stderr);
    let report = std::fs::read_to_string(&w.incident_reports()[0]).unwrap();
    assert!(report.contains("- [ ] **live** FAILED") && report.contains("OAUTH_PROVIDER"), "{report}");
    w.fleet.shutdown().await;
}
