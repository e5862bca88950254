//! The runner: each case in its own world, the real `agentops` binary per turn, the checks,
//! the report.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::Value;
use tokio::io::AsyncWriteExt;

use super::case::{Approve, Case, LoadError, Mode, PlannerKind};
use super::check::{self, Turn};
use super::world::{self, World};

/// How a suite runs.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// The project (cases, repo fixtures and cassettes are found under it).
    pub project: PathBuf,
    /// The `agentops` binary run per turn.
    pub binary: PathBuf,
    /// Shared kustomize build cache (content-keyed, so safe to share); None: a temp dir per case.
    pub cache_dir: Option<PathBuf>,
    /// Overrides each case's planner.
    pub planner: Option<PlannerKind>,
    pub repeat: usize,
    pub record: bool,
    /// LLM planner: ask the configured endpoint directly, no cassettes (benchmarks).
    pub live: bool,
    /// Cases at once.
    pub jobs: usize,
    /// Per subprocess.
    pub timeout: Duration,
    /// Extra environment for the `agentops` processes (e.g. the LLM endpoint when recording).
    pub extra_env: Vec<(String, String)>,
}

impl RunOptions {
    pub fn new(project: &Path, binary: &Path) -> RunOptions {
        RunOptions {
            project: project.to_path_buf(),
            binary: binary.to_path_buf(),
            cache_dir: None,
            planner: None,
            repeat: 1,
            record: false,
            live: false,
            jobs: 4,
            timeout: Duration::from_secs(180),
            extra_env: Vec::new(),
        }
    }
}

/// One run of one case.
#[derive(Debug, Clone, Serialize)]
pub struct CaseReport {
    pub name: String,
    pub file: String,
    pub workflow: String,
    pub planner: PlannerKind,
    /// 0-based, with `--repeat`.
    pub run: usize,
    pub passed: bool,
    /// The first failed check, explained.
    pub failure: Option<String>,
    pub turns: usize,
    pub tokens: u64,
    /// LLM planner: tool calls the model proposed, and those the checks refused.
    #[serde(default)]
    pub llm_calls: usize,
    #[serde(default)]
    pub invalid_calls: usize,
    pub wall_ms: u64,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Rate {
    pub passed: usize,
    pub total: usize,
    pub rate: f64,
}

impl Rate {
    fn add(&mut self, ok: bool) {
        self.total += 1;
        if ok {
            self.passed += 1;
        }
        self.rate = self.passed as f64 / self.total as f64;
    }
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Summary {
    pub cases: usize,
    pub runs: usize,
    pub passed: usize,
    pub pass_rate: f64,
    /// `workflow/planner` -> runs passed
    pub by_workflow: BTreeMap<String, Rate>,
    pub by_planner: BTreeMap<String, Rate>,
    pub repeat: usize,
    /// Mean over cases of the fraction of its runs that passed.
    pub pass_at_1: f64,
    /// Fraction of cases whose every run passed.
    pub pass_hat_k: f64,
    /// LLM planner: calls proposed over every run, and the fraction the checks refused.
    pub llm_calls: usize,
    pub invalid_calls: usize,
    pub invalid_call_rate: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct SuiteReport {
    pub cases: Vec<CaseReport>,
    pub summary: Summary,
}

impl SuiteReport {
    pub fn all_passed(&self) -> bool {
        self.cases.iter().all(|c| c.passed)
    }
}

/// Pass rates from the runs (grouped by case name).
pub fn summarize(reports: &[CaseReport], repeat: usize) -> Summary {
    let mut by_workflow: BTreeMap<String, Rate> = BTreeMap::new();
    let mut by_planner: BTreeMap<String, Rate> = BTreeMap::new();
    let mut per_case: BTreeMap<(&str, &str), (usize, usize)> = BTreeMap::new();
    for r in reports {
        by_workflow.entry(format!("{}/{}", r.workflow, r.planner.as_str())).or_default().add(r.passed);
        by_planner.entry(r.planner.as_str().to_string()).or_default().add(r.passed);
        let e = per_case.entry((&r.name, r.planner.as_str())).or_default();
        e.1 += 1;
        if r.passed {
            e.0 += 1;
        }
    }
    let passed = reports.iter().filter(|r| r.passed).count();
    let n = per_case.len().max(1) as f64;
    let pass_at_1 = per_case.values().map(|(p, t)| *p as f64 / (*t).max(1) as f64).sum::<f64>() / n;
    let pass_hat_k = per_case.values().filter(|(p, t)| p == t).count() as f64 / n;
    let llm_calls: usize = reports.iter().map(|r| r.llm_calls).sum();
    let invalid_calls: usize = reports.iter().map(|r| r.invalid_calls).sum();
    Summary {
        cases: per_case.len(),
        runs: reports.len(),
        passed,
        pass_rate: if reports.is_empty() { 0.0 } else { passed as f64 / reports.len() as f64 },
        by_workflow,
        by_planner,
        repeat: repeat.max(1),
        pass_at_1: if per_case.is_empty() { 0.0 } else { pass_at_1 },
        pass_hat_k: if per_case.is_empty() { 0.0 } else { pass_hat_k },
        llm_calls,
        invalid_calls,
        invalid_call_rate: if llm_calls == 0 { 0.0 } else { invalid_calls as f64 / llm_calls as f64 },
    }
}

/// Runs the cases (each `repeat` times), `jobs` at once; a case that fails to load, errors,
/// panics or crashes is a failed case and the others go on.
pub async fn run_suite(cases: Vec<Result<Case, LoadError>>, opts: &RunOptions) -> SuiteReport {
    let opts = Arc::new(opts.clone());
    let sem = Arc::new(tokio::sync::Semaphore::new(opts.jobs.max(1)));
    let mut handles = Vec::new();
    let mut reports = Vec::new();
    for case in cases {
        let case = match case {
            Ok(c) => Arc::new(c),
            Err(e) => {
                let name = e.path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
                for run in 0..opts.repeat.max(1) {
                    reports.push(CaseReport {
                        name: name.clone(),
                        file: e.path.display().to_string(),
                        workflow: "?".into(),
                        planner: opts.planner.unwrap_or_default(),
                        run,
                        passed: false,
                        failure: Some(format!("case does not load: {e}")),
                        turns: 0,
                        tokens: 0,
                        llm_calls: 0,
                        invalid_calls: 0,
                        wall_ms: 0,
                    });
                }
                continue;
            }
        };
        for run in 0..opts.repeat.max(1) {
            let (case, opts, sem) = (case.clone(), opts.clone(), sem.clone());
            let planner = opts.planner.or(case.planner).unwrap_or_default();
            let skeleton = CaseReport {
                name: case.name.clone(),
                file: case.path.display().to_string(),
                workflow: case.workflow.clone(),
                planner,
                run,
                passed: false,
                failure: None,
                turns: 0,
                tokens: 0,
                llm_calls: 0,
                invalid_calls: 0,
                wall_ms: 0,
            };
            let inner = {
                let skeleton = skeleton.clone();
                tokio::spawn(async move {
                    let _permit = sem.acquire_owned().await;
                    run_case(&case, planner, &opts, skeleton).await
                })
            };
            handles.push((skeleton, inner));
        }
    }
    for (skeleton, h) in handles {
        reports.push(match h.await {
            Ok(r) => r,
            Err(e) => CaseReport { failure: Some(format!("the case crashed: {}", panic_message(e))), ..skeleton },
        });
    }
    let summary = summarize(&reports, opts.repeat);
    SuiteReport { cases: reports, summary }
}

fn panic_message(e: tokio::task::JoinError) -> String {
    if e.is_panic() {
        let p = e.into_panic();
        if let Some(s) = p.downcast_ref::<&str>() {
            return format!("panicked: {s}");
        }
        if let Some(s) = p.downcast_ref::<String>() {
            return format!("panicked: {s}");
        }
        "panicked".into()
    } else {
        e.to_string()
    }
}

async fn run_case(case: &Case, planner: PlannerKind, opts: &RunOptions, mut report: CaseReport) -> CaseReport {
    let start = Instant::now();
    let mut world = match world::build(case, &opts.project).await {
        Ok(w) => w,
        Err(e) => {
            report.failure = Some(format!("setting up the world: {e}"));
            report.wall_ms = start.elapsed().as_millis() as u64;
            return report;
        }
    };
    let turns = run_turns(case, planner, opts, &world).await;
    let result = match turns {
        Ok(turns) => {
            report.turns = match case.mode {
                Mode::Ask => turns.len(),
                Mode::Chat => case.turns.len(),
            };
            let w = &world;
            check::evaluate(case, w, &turns, opts, planner).await
        }
        Err(e) => Err(e),
    };
    report.tokens = check::tokens(&world.repo);
    (report.llm_calls, report.invalid_calls) = check::calls(&world.repo);
    world.shutdown().await;
    match result {
        Ok(()) => report.passed = true,
        Err(e) => report.failure = Some(e),
    }
    report.wall_ms = start.elapsed().as_millis() as u64;
    report
}

/// Where a case's cassettes live: `evals/cassettes/<name>/`.
pub fn cassette_dir(project: &Path, case: &Case) -> PathBuf {
    project.join("evals/cassettes").join(&case.name)
}

fn command(case: &Case, planner: PlannerKind, opts: &RunOptions, world: &World) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(&opts.binary);
    cmd.current_dir(&world.repo)
        .env("HOME", world.work.join("home"))
        .env("KUBECACHEDIR", world.work.join("kube-cache"))
        .env("NO_COLOR", "1")
        .env_remove("KUBECONFIG")
        .env_remove("AGENTOPS_LLM_CASSETTES")
        .env_remove("AGENTOPS_LLM_RECORD")
        .kill_on_drop(true)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    for (k, v) in world::git_env() {
        cmd.env(k, v);
    }
    match &opts.cache_dir {
        Some(d) => cmd.env("AGENTOPS_CACHE_DIR", d),
        None => cmd.env("AGENTOPS_CACHE_DIR", world.work.join("cache")),
    };
    if planner == PlannerKind::Llm && !opts.live {
        cmd.env("AGENTOPS_LLM_CASSETTES", cassette_dir(&opts.project, case));
        if opts.record {
            cmd.env("AGENTOPS_LLM_RECORD", "1");
        }
    }
    if planner == PlannerKind::Rules || !(opts.record || opts.live) {
        // replay never needs a key, and the rules planner never talks to a model
        cmd.env_remove("OPENAI_API_KEY").env_remove("OPENAI_BASE_URL");
    }
    if world.fleet.is_some() {
        cmd.env("KUBECONFIG", world.kubeconfig());
    }
    for (k, v) in &opts.extra_env {
        cmd.env(k, v);
    }
    cmd
}

fn common_args(case: &Case, planner: PlannerKind, world: &World) -> Vec<String> {
    let mut a =
        vec!["--repo".to_string(), world.repo.display().to_string(), "--planner".into(), planner.as_str().into()];
    if world.fleet.is_some() {
        a.push("--kubeconfig".into());
        a.push(world.kubeconfig().display().to_string());
    }
    match case.approve {
        Approve::Yes => a.push("--yes".into()),
        Approve::DryRun => a.push("--dry-run".into()),
        Approve::No => {}
    }
    a
}

async fn run_turns(case: &Case, planner: PlannerKind, opts: &RunOptions, world: &World) -> Result<Vec<Turn>, String> {
    let mut out = Vec::new();
    match case.mode {
        Mode::Ask => {
            for text in &case.turns {
                let mut cmd = command(case, planner, opts, world);
                cmd.arg("ask")
                    .arg(world::with_canary(text, &world.canary))
                    .args(["--format", "json"])
                    .args(common_args(case, planner, world));
                out.push(run_one(cmd, "", opts.timeout).await?);
            }
        }
        Mode::Chat => {
            let mut cmd = command(case, planner, opts, world);
            cmd.arg("chat").args(common_args(case, planner, world));
            let mut input = world::with_canary(&case.turns.join("\n"), &world.canary);
            input.push('\n');
            out.push(run_one(cmd, &input, opts.timeout).await?);
        }
    }
    Ok(out)
}

async fn run_one(mut cmd: tokio::process::Command, stdin: &str, timeout: Duration) -> Result<Turn, String> {
    let mut child = cmd.spawn().map_err(|e| format!("cannot run agentops: {e}"))?;
    if let Some(mut s) = child.stdin.take() {
        let _ = s.write_all(stdin.as_bytes()).await;
        drop(s);
    }
    let out = match tokio::time::timeout(timeout, child.wait_with_output()).await {
        Ok(r) => r.map_err(|e| format!("agentops: {e}"))?,
        Err(_) => return Err(format!("agentops did not finish within {}s", timeout.as_secs())),
    };
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let json = serde_json::from_str::<Value>(stdout.trim()).ok();
    Ok(Turn { code: out.status.code(), stdout, stderr: String::from_utf8_lossy(&out.stderr).into_owned(), json })
}

/// The report as people read it.
pub fn render_text(r: &SuiteReport) -> String {
    let mut s = String::new();
    let width = r.cases.iter().map(|c| c.name.len()).max().unwrap_or(4);
    for c in &r.cases {
        let run = if r.summary.repeat > 1 { format!(" #{}", c.run + 1) } else { String::new() };
        s.push_str(&format!(
            "{} {:width$}{run}  {:<10} {:<5} {} turn{} {:>6} tok {:>6.1}s\n",
            if c.passed { "PASS" } else { "FAIL" },
            c.name,
            c.workflow,
            c.planner.as_str(),
            c.turns,
            if c.turns == 1 { " " } else { "s" },
            c.tokens,
            c.wall_ms as f64 / 1000.0,
        ));
        if let Some(f) = &c.failure {
            for line in f.lines() {
                s.push_str(&format!("     {line}\n"));
            }
        }
    }
    let m = &r.summary;
    s.push_str(&format!(
        "\n{}/{} runs passed ({:.1}%), {} case{}\n",
        m.passed,
        m.runs,
        m.pass_rate * 100.0,
        m.cases,
        if m.cases == 1 { "" } else { "s" }
    ));
    for (k, v) in &m.by_workflow {
        s.push_str(&format!("  {k:<22} {}/{} ({:.0}%)\n", v.passed, v.total, v.rate * 100.0));
    }
    if m.repeat > 1 {
        s.push_str(&format!("Pass@1 {:.3}  Pass^{} {:.3}\n", m.pass_at_1, m.repeat, m.pass_hat_k));
    }
    if m.llm_calls > 0 {
        s.push_str(&format!(
            "model calls {}, invalid {} ({:.1}%)\n",
            m.llm_calls,
            m.invalid_calls,
            m.invalid_call_rate * 100.0
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(name: &str, wf: &str, passed: bool) -> CaseReport {
        CaseReport {
            name: name.into(),
            file: String::new(),
            workflow: wf.into(),
            planner: PlannerKind::Rules,
            run: 0,
            passed,
            failure: None,
            turns: 1,
            tokens: 0,
            llm_calls: 0,
            invalid_calls: 0,
            wall_ms: 0,
        }
    }

    #[test]
    fn pass_at_1_and_pass_hat_k() {
        // a: 3/3, b: 2/3, c: 0/3
        let mut runs = Vec::new();
        for ok in [true, true, true] {
            runs.push(r("a", "validate", ok));
        }
        for ok in [true, false, true] {
            runs.push(r("b", "drift", ok));
        }
        for _ in 0..3 {
            runs.push(r("c", "drift", false));
        }
        let s = summarize(&runs, 3);
        assert_eq!(s.cases, 3);
        assert_eq!(s.runs, 9);
        assert_eq!(s.passed, 5);
        assert!((s.pass_at_1 - (1.0 + 2.0 / 3.0 + 0.0) / 3.0).abs() < 1e-9);
        assert!((s.pass_hat_k - 1.0 / 3.0).abs() < 1e-9);
        assert_eq!(s.by_workflow["drift/rules"], Rate { passed: 2, total: 6, rate: 2.0 / 6.0 });
        assert_eq!(s.by_workflow["validate/rules"].passed, 3);
    }
}
