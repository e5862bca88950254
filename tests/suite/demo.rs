//! `agentops demo`: the whole week on the example platform, through the planner and the
//! executor, against mock clusters; each day's key facts and the commits it made.

use std::path::Path;

use super::common::*;

#[test]
fn the_week_runs_end_to_end() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("demo");
    let cache = Path::new(env!("CARGO_TARGET_TMPDIR")).join("demo-cache");
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/platform");
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

    let thursday = day("Thursday");
    assert!(thursday.contains("error rate 87.0% while live"), "{thursday}");
    assert!(thursday.contains("Verification: recovered"), "{thursday}");
    assert!(thursday.contains("revert(auth-service): roll prod-west back to"), "{thursday}");
    assert!(
        !thursday.lines().any(|l| l.starts_with("Commit: ") && l.contains("feat(auth)")),
        "what the demo staged is not listed as the day's commit: {thursday}"
    );

    let friday = day("Friday");
    assert!(friday.contains("8 services depend on redis"), "{friday}");
    assert!(friday.contains("wrote docs/migrations/"), "{friday}");
    assert!(friday.contains("Commit: ") && friday.contains("docs/migrations/"), "{friday}");

    // the repo is left for people to look at: the week's commits and documents
    let repo = dir.join("repo");
    assert!(out.contains(&format!("Repo: {}", repo.display())), "{out}");
    let log = git(&repo, &["log", "--format=%an|%s"]);
    let subjects: Vec<&str> = log.lines().collect();
    assert_eq!(subjects.len(), 8, "{log}");
    assert!(subjects[0].starts_with("Demo Engineer|docs"), "{log}");
    assert!(subjects.iter().any(|s| s.starts_with("Sam Okafor|feat(auth)")), "{log}");
    assert!(subjects.last().unwrap().starts_with("Priya Raman|"), "{log}");
    assert_eq!(git(&repo, &["status", "--porcelain", "--untracked-files=no"]), "", "nothing left uncommitted");
    let incidents: Vec<_> = std::fs::read_dir(repo.join("docs/incidents")).unwrap().collect();
    assert_eq!(incidents.len(), 1);
    let journal = std::fs::read_to_string(repo.join(".agentops/journal.jsonl")).unwrap();
    for tool in ["create_app", "drift_report", "harmonize_apply", "git_revert", "argocd_sync", "write_doc", "commit"] {
        assert!(journal.contains(&format!("\"tool\":\"{tool}\"")), "journaled: {tool}");
    }
}
