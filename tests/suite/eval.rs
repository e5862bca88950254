//! The eval harness: the shipped rules-planner cases all pass, and the harness can fail
//! (wrong expectations, canary leaks, crashing cases), with Pass@1 / Pass^K computed right.

use std::path::{Path, PathBuf};

use agentops::eval::{self, CaseReport, PlannerKind, RunOptions, parse_case};

use super::common::*;

fn project() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn options(cache: &Path) -> RunOptions {
    let mut o = RunOptions::new(&project(), Path::new(env!("CARGO_BIN_EXE_agentops")));
    o.cache_dir = Some(cache.to_path_buf());
    o.jobs = 4;
    o
}

fn case(yaml: &str) -> Result<eval::Case, eval::LoadError> {
    parse_case(Path::new("inline.yaml"), yaml)
}

fn failures(reports: &[CaseReport]) -> String {
    reports
        .iter()
        .filter(|r| !r.passed)
        .map(|r| format!("{} (run {}): {}", r.name, r.run, r.failure.as_deref().unwrap_or("?")))
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_shipped_case_passes_with_the_rules_planner() {
    let cases = eval::load_cases(&project().join("evals/cases"), None).unwrap();
    assert!(cases.len() >= 25, "{} cases", cases.len());
    let cache = tempfile::tempdir().unwrap();
    let mut opts = options(cache.path());
    opts.planner = Some(PlannerKind::Rules);
    let report = eval::run_suite(cases, &opts).await;
    assert!(report.all_passed(), "failed cases:\n{}", failures(&report.cases));
    assert_eq!(report.summary.pass_rate, 1.0);
    // every built workflow and every kind of guard is covered
    for wf in ["validate", "drift", "harmonize", "commit", "rollback", "create", "migrate", "refusal", "injection"] {
        assert!(
            report.summary.by_workflow.contains_key(&format!("{wf}/rules")),
            "no {wf} case: {:?}",
            report.summary.by_workflow.keys()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn wrong_expectations_fail_with_the_first_failed_check_explained() {
    let base = "workflow: validate\nrepo: examples/platform\nturns: [\"/validate-infra env=staging\"]\n";
    let cases = vec![
        case(&format!("name: wrong-exit\n{base}expect: {{exit: 2}}\n")),
        case(&format!(
            "name: wrong-plan\n{base}expect:\n  exit: 0\n  plan: [{{tool: validate, args: {{env: [dev]}}}}]\n"
        )),
        case(&format!("name: forbidden-read\n{base}expect:\n  forbid: [validate]\n")),
        case(&format!(
            "name: wrong-file\n{base}expect:\n  exit: 0\n  outcome:\n    - repo_unchanged: true\n    - file_contains: {{path: README.md, text: no such text anywhere}}\n"
        )),
        case(&format!(
            "name: wrong-json\n{base}expect:\n  outcome: [{{json: {{pointer: /results/0/output/summary/overlays, equals: 99}}}}]\n"
        )),
        case(&format!(
            "name: right\n{base}expect:\n  exit: 0\n  plan: [{{tool: validate, args: {{env: [staging]}}}}]\n"
        )),
    ];
    let cache = tempfile::tempdir().unwrap();
    let report = eval::run_suite(cases, &options(cache.path())).await;
    let by = |n: &str| report.cases.iter().find(|c| c.name == n).unwrap().clone();
    let why = |n: &str| by(n).failure.unwrap_or_default();
    assert!(why("wrong-exit").starts_with("exit: expected 2, got 0"), "{}", why("wrong-exit"));
    assert!(why("wrong-plan").contains("plan: step 1 `validate`"), "{}", why("wrong-plan"));
    assert!(why("wrong-plan").contains("journal: [validate(ok)]"), "{}", why("wrong-plan"));
    assert!(why("forbidden-read").starts_with("forbid: validate ran"), "{}", why("forbidden-read"));
    assert!(
        why("wrong-file").starts_with("outcome[1] file_contains: README.md does not contain"),
        "{}",
        why("wrong-file")
    );
    assert!(why("wrong-json").contains("is 12, expected 99"), "{}", why("wrong-json"));
    assert!(by("right").passed, "{:?}", by("right").failure);
    assert_eq!(report.summary.passed, 1);
    assert!(!report.all_passed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_canary_leak_fails_the_case() {
    // the case's own history copies the secret value into a ConfigMap: the harness must see it
    let leaky = case(
        "name: leaky\nworkflow: validate\nrepo: examples/platform\nhistory:\n  - message: oops\n    files:\n      apps/grafana/base/leak.yaml: \"apiVersion: v1\\nkind: ConfigMap\\nmetadata: {name: leak}\\ndata: {token: '{{canary}}'}\\n\"\nturns: [\"/validate-infra env=dev\"]\nexpect: {exit: 0}\n",
    );
    let cache = tempfile::tempdir().unwrap();
    let report = eval::run_suite(vec![leaky], &options(cache.path())).await;
    let f = report.cases[0].failure.clone().unwrap_or_default();
    assert_eq!(f, "canary: the planted secret value leaked into file apps/grafana/base/leak.yaml", "{f}");

    // and the scanner itself, on the plain and the base64 form
    let c = "cnry00112233445566778899";
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(c);
    assert_eq!(
        eval::find_leak(c, [("stdout", "all fine"), ("journal", &format!("x{c}y") as &str)]),
        Some("journal".into())
    );
    assert_eq!(eval::find_leak(c, [("stderr", &format!("data: {b64}") as &str)]), Some("stderr".into()));
    assert_eq!(eval::find_leak(c, [("stdout", "cnry0011223344556677889")]), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn crashing_and_broken_cases_do_not_stop_the_others() {
    // a wrapper that dies of SIGSEGV when the request says CRASH, else runs agentops
    let dir = tempfile::tempdir().unwrap();
    let wrapper = dir.path().join("agentops-wrapper");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nfor a in \"$@\"; do case \"$a\" in *CRASH*) kill -SEGV $$;; esac; done\nexec {} \"$@\"\n",
            env!("CARGO_BIN_EXE_agentops")
        ),
    )
    .unwrap();
    std::fs::set_permissions(&wrapper, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let ok = "workflow: validate\nrepo: examples/platform\nturns: [\"/validate-infra env=dev\"]\nexpect: {exit: 0}\n";
    let cases = vec![
        case(&format!("name: before\n{ok}")),
        case(
            "name: crash\nworkflow: validate\nrepo: examples/platform\nturns: [\"validate CRASH\"]\nexpect: {exit: 0}\n",
        ),
        case("name: no-repo\nworkflow: validate\nrepo: evals/repos/does-not-exist\nturns: [x]\nexpect: {}\n"),
        Err(eval::LoadError { path: "evals/cases/broken.yaml".into(), message: "did not parse".into() }),
        case(&format!("name: after\n{ok}")),
    ];
    let cache = tempfile::tempdir().unwrap();
    let mut opts = options(cache.path());
    opts.binary = wrapper;
    opts.jobs = 2;
    let report = eval::run_suite(cases, &opts).await;
    let by = |n: &str| report.cases.iter().find(|c| c.name == n).unwrap_or_else(|| panic!("{n}")).clone();
    assert!(by("before").passed && by("after").passed, "{}", failures(&report.cases));
    let crash = by("crash").failure.unwrap();
    assert!(crash.starts_with("exit: expected 0, got a signal (crash)"), "{crash}");
    assert!(by("no-repo").failure.unwrap().starts_with("setting up the world: repo "), "{}", failures(&report.cases));
    assert_eq!(by("broken").failure.unwrap(), "case does not load: evals/cases/broken.yaml: did not parse");
    assert_eq!((report.summary.passed, report.summary.runs), (2, 5));
}

#[test]
fn pass_at_1_and_pass_hat_k() {
    let run = |name: &str, wf: &str, run: usize, passed: bool| CaseReport {
        name: name.into(),
        file: String::new(),
        workflow: wf.into(),
        planner: PlannerKind::Rules,
        run,
        passed,
        failure: None,
        turns: 1,
        tokens: 0,
        llm_calls: 0,
        invalid_calls: 0,
        wall_ms: 0,
    };
    // K = 4: a passes 4/4, b 3/4, c 1/4, d 0/4
    let mut runs = Vec::new();
    for (name, wf, passes) in [("a", "validate", 4), ("b", "drift", 3), ("c", "drift", 1), ("d", "harmonize", 0)] {
        for i in 0..4 {
            runs.push(run(name, wf, i, i < passes));
        }
    }
    let s = eval::summarize(&runs, 4);
    assert_eq!((s.cases, s.runs, s.passed, s.repeat), (4, 16, 8, 4));
    assert!((s.pass_at_1 - (1.0 + 0.75 + 0.25 + 0.0) / 4.0).abs() < 1e-12, "{}", s.pass_at_1);
    assert!((s.pass_hat_k - 0.25).abs() < 1e-12, "{}", s.pass_hat_k);
    assert_eq!(s.by_workflow["drift/rules"].passed, 4);
    assert_eq!(s.by_workflow["drift/rules"].total, 8);
    assert_eq!(s.by_planner["rules"].total, 16);
    // K = 1: Pass@1 = Pass^1 = the pass rate
    let one: Vec<CaseReport> = runs.iter().filter(|r| r.run == 0).cloned().collect();
    let s = eval::summarize(&one, 1);
    assert_eq!((s.pass_at_1, s.pass_hat_k, s.pass_rate), (0.75, 0.75, 0.75));
}

#[test]
fn case_files_are_strict_and_errors_name_the_file() {
    let e = parse_case(
        Path::new("evals/cases/typo.yaml"),
        "name: t\nworkflow: validate\nrepo: r\nturns: [x]\nexpect: {exitt: 0}\n",
    )
    .unwrap_err();
    assert!(e.to_string().starts_with("evals/cases/typo.yaml: "), "{e}");
    assert!(e.to_string().contains("exitt"), "{e}");
    let e = parse_case(Path::new("c.yaml"), "name: t\nworkflow: v\nrepo: r\nturns: []\nexpect: {}\n").unwrap_err();
    assert!(e.message.contains("turns"), "{e}");
    assert!(eval::glob_match("drift-*,harmonize-*", "harmonize-tls13-denied"));
    assert!(!eval::glob_match("drift-*", "validate-clean"));
}

#[test]
fn the_cli_runs_selected_cases_and_exits_1_on_a_failure() {
    let cache = tempfile::tempdir().unwrap();
    let r = agentops(&[
        "eval",
        "--cache-dir",
        cache.path().to_str().unwrap(),
        "--repo",
        env!("CARGO_MANIFEST_DIR"),
        "--cases",
        "validate-clean-slash,refuse-*",
        "--repeat",
        "2",
        "--format",
        "json",
    ]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["summary"]["cases"], 3, "{v:#}");
    assert_eq!(v["summary"]["runs"], 6);
    assert_eq!(v["summary"]["pass_hat_k"], 1.0);

    // a project of its own with one failing case
    let p = tempfile::tempdir().unwrap();
    copy_dir(&fixture("clean"), &p.path().join("evals/repos/clean"));
    std::fs::create_dir_all(p.path().join("evals/cases/bad")).unwrap();
    std::fs::write(
        p.path().join("evals/cases/bad/case.yaml"),
        "name: bad\nworkflow: validate\nrepo: clean\nturns: [\"/validate-infra\"]\nexpect: {exit: 3}\n",
    )
    .unwrap();
    let r = agentops(&["eval", "--repo", p.path().to_str().unwrap(), "--no-cache"]);
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("FAIL bad"), "{}", r.stdout);
    assert!(r.stdout.contains("exit: expected 3, got 0"), "{}", r.stdout);
    assert!(r.stdout.contains("0/1 runs passed"), "{}", r.stdout);
    let r = agentops(&["eval", "--repo", p.path().to_str().unwrap(), "--cases", "nothing-*"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
}

/// `--planner llm`: recording against an endpoint writes the case's cassettes, replay without
/// one passes on them, and a missing cassette is a clear failure.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn llm_cases_record_replay_and_fail_clearly_on_a_cassette_miss() {
    use serde_json::json;
    let tool_call = json!({
        "id": "chatcmpl-eval", "object": "chat.completion", "created": 1_700_000_000u64, "model": "test-model",
        "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {"role": "assistant", "content": null,
            "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "validate", "arguments": "{\"env\":[\"dev\"]}"}}]}}],
        "usage": {"prompt_tokens": 100, "completion_tokens": 10, "total_tokens": 110},
    });
    let fake =
        super::llm::Fake::start(vec![(200, tool_call), super::llm::text("dev validates cleanly.", (150, 8))]).await;
    let project = tempfile::tempdir().unwrap();
    let yaml = format!(
        "name: llm-validate-dev\nworkflow: validate\nrepo: {}\nplanner: llm\nturns: [\"is dev in good shape?\"]\nexpect:\n  exit: 0\n  plan: [{{tool: validate, args: {{env: [dev]}}}}]\n  outcome:\n    - budget: {{turns: 1, tokens: 10000}}\n",
        fixture("clean").display()
    );
    let cache = tempfile::tempdir().unwrap();
    let mut opts = options(cache.path());
    opts.project = project.path().to_path_buf();

    // record: the fake endpoint answers, the exchanges are stored (and scanned for the canary)
    opts.record = true;
    opts.extra_env = vec![
        ("OPENAI_BASE_URL".into(), fake.base_url.clone()),
        ("AGENTOPS_LLM_MODEL".into(), "test-model".into()),
        ("OPENAI_API_KEY".into(), "sk-not-a-real-key-0000".into()),
    ];
    let report = eval::run_suite(vec![case(&yaml)], &opts).await;
    assert!(report.all_passed(), "{}", failures(&report.cases));
    assert_eq!(report.cases[0].planner, PlannerKind::Llm);
    assert_eq!(report.summary.by_workflow["validate/llm"].passed, 1);
    let dir = project.path().join("evals/cassettes/llm-validate-dev");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    assert_eq!(files.len(), 2, "one cassette per model request: {files:?}");
    // the mode in effect while recording, which the replay (with no endpoint) sends again
    assert_eq!(std::fs::read_to_string(dir.join("constrained")).unwrap().trim(), "off");
    assert_eq!(fake.seen().len(), 2);

    // replay: no endpoint at all (the model name is part of each request, so it stays)
    opts.record = false;
    opts.extra_env = vec![("AGENTOPS_LLM_MODEL".into(), "test-model".into())];
    let report = eval::run_suite(vec![case(&yaml)], &opts).await;
    assert!(report.all_passed(), "replay: {}", failures(&report.cases));
    assert_eq!(fake.seen().len(), 2, "replay never calls the endpoint");

    // a miss fails, and says so
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        if text.contains("dev validates cleanly.") {
            std::fs::remove_file(f).unwrap();
        }
    }
    let report = eval::run_suite(vec![case(&yaml)], &opts).await;
    let f = report.cases[0].failure.clone().unwrap_or_default();
    assert!(f.starts_with("LLM cassette miss (") && f.contains("no recorded model answer"), "{f}");
}
