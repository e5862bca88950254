//! `agentops demo`: a week on the example platform, from one command, with no cluster and no
//! LLM. Each day's request goes through the rules planner and the executor exactly as `ask`
//! runs it (writes auto-approved, and said so), against mock clusters with the simulated
//! Argo CD and Prometheus; what the demo stages beforehand is printed as `Setup:`. Thursday
//! has no typed request: an alert reaches `agentops watch`, whose proposal is approved
//! through the same executor.
//!
//! Exit codes: 0 every day succeeded; 1 a day failed (the others still ran); 2 usage.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use crate::demo::{self, World};
use crate::error::{Error, Result};
use crate::exec::Step;
use crate::exec::{Policy, StepResult};
use crate::planner::rules::{Outcome, RulesPlanner};
use crate::tools::Effect;
use crate::workflows::{Ctx, CtxOptions};

use super::Global;
use super::session;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DemoFormat {
    Text,
}

#[derive(Debug, clap::Args)]
#[command(after_help = "Exit codes: 0 every day succeeded; 1 a day failed (the demo goes on with the next); 2 usage.")]
pub struct Args {
    /// Leave the mock clusters up afterwards and print a kubeconfig for kubectl and `agentops chat`; Ctrl-C stops them.
    #[arg(long)]
    pub keep_running: bool,
    /// Where the repo, kubeconfig and audit log go (an empty or new directory; default: a new temp dir).
    #[arg(long, value_name = "DIR")]
    pub workdir: Option<PathBuf>,
    /// The example repo (default: examples/platform here, above here, or above the executable).
    #[arg(long, value_name = "DIR")]
    pub example: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    pub format: DemoFormat,
}

/// One day: its title, what the demo stages, and the requests a person would type.
#[derive(Clone, Copy)]
enum Stage {
    Nothing,
    Sidecar,
    BadDeploy,
    MigrationDoc,
}

struct Day {
    name: &'static str,
    title: &'static str,
    stage: Stage,
    requests: &'static [&'static str],
    /// The second request, after this stage (Friday: the document staged for `/commit`).
    between: Stage,
    /// The day starts from an alert, not a typed request (Thursday): Alertmanager's webhook
    /// to `agentops watch`, a proposal, its approval; `requests` are not typed.
    from_alert: bool,
}

const WEEK: &[Day] = &[
    Day {
        name: "Monday",
        title: "a new app: Prometheus in 5 clusters",
        stage: Stage::Nothing,
        requests: &[
            "/infrastructure-create name=prometheus namespace=monitoring image=quay.io/prometheus/prometheus:v2.53.0 port=9090 storage=50Gi tier=medium with=servicemonitor,pdb",
        ],
        between: Stage::Nothing,
        from_alert: false,
    },
    Day {
        name: "Tuesday",
        title: "drift: Grafana in prod-west",
        stage: Stage::Sidecar,
        requests: &["check grafana in prod-west for drift"],
        between: Stage::Nothing,
        from_alert: false,
    },
    Day {
        name: "Wednesday",
        title: "TLS 1.3 on every Ingress",
        stage: Stage::Nothing,
        // SEC-2025-01 asks for TLS 1.3 on every Ingress: the exceptions the repo documents
        // are shown, and overridden because the request says so
        requests: &["enforce TLS 1.3 on all ingresses, overriding the documented exceptions, reason SEC-2025-01"],
        between: Stage::Nothing,
        from_alert: false,
    },
    Day {
        name: "Thursday",
        title: "incident: an alert, a rollback proposal, an approval (auth-service in prod-west)",
        stage: Stage::BadDeploy,
        requests: &[],
        between: Stage::Nothing,
        from_alert: true,
    },
    Day {
        name: "Friday",
        title: "plan the Redis to ElastiCache migration",
        stage: Stage::Nothing,
        requests: &[
            "/infrastructure-migrate from=redis to=elasticache",
            "/commit reason=\"plan the move from self-hosted Redis to ElastiCache\"",
        ],
        between: Stage::MigrationDoc,
        from_alert: false,
    },
];

pub async fn run(global: &Global, args: Args) -> Result<ExitCode> {
    let DemoFormat::Text = args.format;
    let example = demo::locate_example(args.example.as_deref())?;
    let started = Instant::now();
    println!("agentops demo: a week on {} with mock clusters and no LLM", example.display());
    println!("Every request below goes through the rules planner and the executor, as `agentops ask` runs it;");
    println!("write steps are auto-approved in the demo (a person would be asked, or pass --yes).\n");
    let mut world = World::build(&example, args.workdir.as_deref()).await?;
    println!("Repo:       {}", world.repo.display());
    println!("Kubeconfig: {}", world.kubeconfig().display());
    if let Some(fleet) = &world.fleet {
        for c in fleet.clusters() {
            println!("  mock cluster {:<13} {} (Argo CD and Prometheus simulated)", c.name(), c.https_url());
        }
    }
    println!("  Argo CD synced all {} Applications at HEAD: the clusters hold what git renders", world.synced);
    println!("Set up in {:.1}s\n", started.elapsed().as_secs_f64());

    let ctx = Ctx::new(
        &world.repo,
        CtxOptions {
            kustomize: global.kustomize.clone(),
            cache_dir: if global.no_cache {
                None
            } else {
                global.cache_dir.clone().or_else(crate::kustomize::default_cache_dir)
            },
            jobs: global.jobs,
            kubeconfig: Some(world.kubeconfig()),
            progress: Some(super::terminal::progress()),
        },
    );
    let mut failed: Vec<&str> = Vec::new();
    for day in WEEK {
        let t = Instant::now();
        println!("━━━ {}: {} ━━━", day.name, day.title);
        let ok = match run_day(&world, &ctx, day).await {
            Ok(ok) => ok,
            Err(e) => {
                println!("✗ {} failed: {e}", day.name);
                false
            }
        };
        if !ok {
            failed.push(day.name);
        }
        println!("{} {} in {:.1}s\n", if ok { "✓" } else { "✗" }, day.name, t.elapsed().as_secs_f64());
    }

    println!("━━━ The week ━━━");
    println!("Repo: {}", world.repo.display());
    let log = demo::git(&world.repo, &["log", "--oneline", "--format=%h %<(14,trunc)%an %s"], None)?;
    for l in log.lines() {
        println!("  {l}");
    }
    println!("Journal: {}", world.repo.join(".agentops/journal.jsonl").display());
    println!("Total: {:.1}s", started.elapsed().as_secs_f64());
    if failed.is_empty() {
        println!("Every day succeeded.");
    } else {
        println!("Failed: {}", failed.join(", "));
    }

    if args.keep_running {
        let kc = world.kubeconfig();
        println!("\nThe mock clusters keep running (Ctrl-C stops them). Try:");
        println!("  kubectl --kubeconfig {} --context prod-west get deployments -A", kc.display());
        println!("  agentops chat --repo {} --kubeconfig {}", world.repo.display(), kc.display());
        println!("  agentops drift --repo {} --kubeconfig {} --env prod-west", world.repo.display(), kc.display());
        tokio::signal::ctrl_c().await.map_err(|e| Error::Internal(format!("waiting for Ctrl-C: {e}")))?;
        println!("stopping the mock clusters");
    }
    world.shutdown().await;
    Ok(if failed.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

/// Stages the day, runs its requests in order (stopping at the first that fails), prints the
/// commit it made. True when every step of every request succeeded.
async fn run_day(world: &World, ctx: &Ctx, day: &Day) -> Result<bool> {
    print_setup(&stage(world, day.stage).await?);
    // what the day's requests committed (not what the demo staged)
    let head_before = demo::git(&world.repo, &["rev-parse", "HEAD"], None)?;
    if day.from_alert && !run_alert(ctx).await? {
        return Ok(false);
    }
    for (i, request) in day.requests.iter().enumerate() {
        if i > 0 {
            print_setup(&stage(world, day.between).await?);
        }
        if !run_request(ctx, request).await? {
            return Ok(false);
        }
    }
    let head_after = demo::git(&world.repo, &["rev-parse", "HEAD"], None)?;
    if head_after == head_before {
        println!("Commit: none (this day only reads)");
    } else {
        let log = demo::git(&world.repo, &["log", "--format=%h %s", &format!("{}..HEAD", head_before.trim())], None)?;
        for l in log.lines().rev() {
            println!("Commit: {l}");
        }
    }
    Ok(true)
}

fn print_setup(lines: &[String]) {
    for l in lines {
        println!("Setup: {l}");
    }
}

async fn stage(world: &World, s: Stage) -> Result<Vec<String>> {
    match s {
        Stage::Nothing => Ok(Vec::new()),
        Stage::Sidecar => world.stage_sidecar().await,
        Stage::BadDeploy => world.stage_bad_deploy().await,
        Stage::MigrationDoc => {
            let status =
                demo::git(&world.repo, &["status", "--porcelain", "--untracked-files=all", "--", "docs"], None)?;
            let docs: Vec<String> = status.lines().filter_map(|l| l.get(3..)).map(str::to_string).collect();
            if docs.is_empty() {
                return Err(Error::Internal("no migration document was written".into()));
            }
            let mut a = vec!["add", "--"];
            a.extend(docs.iter().map(String::as_str));
            demo::git(&world.repo, &a, None)?;
            Ok(vec![format!("git add {}", docs.join(" "))])
        }
    }
}

/// Thursday from the alert: `agentops watch` (in process, on a free port) receives
/// Alertmanager's webhook, proposes the rollback, the proposal is approved (auto-approved in
/// the demo, as `agentops approve ID --yes` would run it), and the resolved alert closes it.
async fn run_alert(ctx: &Ctx) -> Result<bool> {
    use crate::workflows::watch::{ProposalState, Store};
    let t = Instant::now();
    let watcher = super::watch::Local::start(ctx.clone()).await?;
    println!("Nobody typed a request: Thursday starts from the alert.");
    println!("Watcher: agentops watch on {}/alerts (Alertmanager's webhook receiver, bearer token)", watcher.url);
    println!(
        "Setup: Alertmanager posts HighErrorRatio{{app=\"auth-service\", env=\"prod-west\"}} (here: the demo sends the webhook payload, version 4, that a rule `http_error_ratio > 0.05` firing makes Alertmanager send)"
    );
    let fingerprint = "demo-auth-service-errors";
    let alert = |status: &str| {
        serde_json::json!({
            "receiver": "agentops", "status": status, "version": "4", "groupKey": "{}:{alertname=\"HighErrorRatio\"}",
            "truncatedAlerts": 0, "externalURL": "http://alertmanager.monitoring:9093",
            "groupLabels": {"alertname": "HighErrorRatio"}, "commonLabels": {}, "commonAnnotations": {},
            "alerts": [{
                "status": status,
                "labels": {"alertname": "HighErrorRatio", "app": "auth-service", "namespace": "auth", "env": "prod-west", "severity": "page"},
                "annotations": {"summary": "auth-service: error ratio above 5%"},
                "startsAt": crate::time::now_seconds(), "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "", "fingerprint": fingerprint,
            }],
        })
    };
    let (code, answer) = watcher.post(&alert("firing")).await?;
    println!("Alert: POST /alerts answered {code}: {}", answer.pointer("/alerts/0/outcome").unwrap_or(&answer));
    let store = Store::for_repo(ctx.repo_root());
    let deadline = Instant::now() + std::time::Duration::from_secs(120);
    let proposal = loop {
        let all = store.read()?;
        if let Some(p) = all.proposals.iter().find(|p| p.alert.fingerprint == fingerprint)
            && p.state != ProposalState::Planning
        {
            break p.clone();
        }
        if Instant::now() > deadline {
            let _ = watcher.stop().await;
            println!("✗ no proposal within 120 s");
            return Ok(false);
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    let Some(plan) = proposal.plan.clone().filter(|_| proposal.state == ProposalState::Proposed) else {
        let _ = watcher.stop().await;
        println!("✗ no rollback proposed: {}", proposal.reason.as_deref().unwrap_or("?"));
        return Ok(false);
    };
    let text = crate::workflows::rollback::report::text(&plan);
    print!("{}", text.lines().map(|l| if l.is_empty() { "\n".into() } else { format!("  {l}\n") }).collect::<String>());
    println!("Proposal: {} (.agentops/proposals/{}.md)", proposal.id, proposal.id);

    println!("Request: approve proposal {} (a person runs `agentops approve {}`)", proposal.id, proposal.id);
    let repo = session::load_repo(ctx).await?;
    let policy = Policy { yes: true, ..Policy::default() };
    let executor = session::executor(ctx, &repo, policy, session::stdin_approver());
    let mut exec_plan = super::rollback::steps(executor.registry(), &plan).map_err(|e| Error::Usage(e.public))?;
    exec_plan.request = format!("approve proposal {}", proposal.id);
    print!("{}", session::render_plan(&exec_plan));
    let writes: Vec<&str> =
        exec_plan.steps.iter().filter(|s| s.effect != Effect::ReadOnly).map(|s| s.tool.as_str()).collect();
    println!("Approval: auto-approved (demo): {} (a person would be asked, or pass --yes)", writes.join(", "));
    let results = executor.run_each(&exec_plan, |step, r| print!("{}", show(step, r))).await;
    let output = |tool: &str| results.iter().find(|r| r.tool == tool).and_then(|r| r.output.clone());
    let done = super::rollback::Executed {
        revert: output("git_revert").and_then(|o| serde_json::from_value(o).ok()),
        verified: output("rollback_verify").and_then(|o| serde_json::from_value(o).ok()),
        failure: results.iter().find(|r| !r.ok).map(|r| format!("{}: {}", r.tool, r.error.clone().unwrap_or_default())),
        declined: false,
    };
    let recorded = super::proposals::record_outcome(&store, &proposal.id, &done)?;
    println!("Proposal {}: {}", recorded.id, recorded.state.label());
    let (code, answer) = watcher.post(&alert("resolved")).await?;
    let reason = answer.pointer("/alerts/0/reason").and_then(|v| v.as_str()).unwrap_or("?");
    println!("Alert resolved: POST /alerts answered {code}: proposal {} closed, {reason}", recorded.id);
    watcher.stop().await?;
    println!("({} steps in {:.1}s from the alert)", results.len(), t.elapsed().as_secs_f64());
    Ok(!results.is_empty() && results.iter().all(|r| r.ok) && recorded.state == ProposalState::RolledBack)
}

/// Plans `text` with the rules planner and runs the plan through the executor with every
/// write approved; prints the request, plan, approvals and results.
async fn run_request(ctx: &Ctx, text: &str) -> Result<bool> {
    let t = Instant::now();
    println!("Request: {text}");
    let repo = session::load_repo(ctx).await?;
    let planner = RulesPlanner::new(session::facts(&repo));
    let policy = Policy { yes: true, ..Policy::default() };
    let executor = session::executor(ctx, &repo, policy, session::stdin_approver());
    let outcome = planner.plan_text(text, executor.registry()).map_err(|e| Error::Usage(e.public))?;
    let plan = match outcome {
        Outcome::Plan { plan, .. } => plan,
        Outcome::NeedsInput { message, .. } | Outcome::NotAvailable { message, .. } => {
            println!("✗ not planned: {message}");
            return Ok(false);
        }
        Outcome::Refused { reason } => {
            println!("✗ refused: {reason}");
            return Ok(false);
        }
        Outcome::Unknown { message } | Outcome::Help { message } => {
            println!("✗ not planned: {message}");
            return Ok(false);
        }
    };
    print!("{}", session::render_plan(&plan));
    let writes: Vec<&str> =
        plan.steps.iter().filter(|s| s.effect != Effect::ReadOnly).map(|s| s.tool.as_str()).collect();
    if writes.is_empty() {
        println!("Approval: none needed (every step only reads)");
    } else {
        println!("Approval: auto-approved (demo): {} (a person would be asked, or pass --yes)", writes.join(", "));
    }
    let results = executor.run_each(&plan, |step, r| print!("{}", show(step, r))).await;
    let ms: u64 = results.iter().map(|r| r.duration_ms).sum();
    println!(
        "({} step{} in {:.1}s, tools {:.1}s)",
        results.len(),
        if results.len() == 1 { "" } else { "s" },
        t.elapsed().as_secs_f64(),
        ms as f64 / 1000.0
    );
    Ok(!results.is_empty() && results.iter().all(|r| r.ok))
}

/// A step's result as the session renders it (the approval said as the demo gives it, with
/// the step's time); for the steps after a plan, only what the plan did not show already.
fn show(step: &Step, r: &StepResult) -> String {
    let full = session::render_result(step, r, false)
        .replace("(approved by --yes)", "(auto-approved in the demo)")
        .replacen('\n', &format!(" {}ms\n", r.duration_ms), 1);
    let mut lines = full.lines();
    let status = format!("{}\n", lines.next().unwrap_or_default());
    match step.tool.as_str() {
        // what the plan step already showed in full: only the proof and the commit
        "create_app" | "harmonize_apply" => {
            let keep = ["Proof:", "Committed:", "Blocked", "  FAIL", "  fail"];
            status
                + &lines
                    .filter(|l| keep.iter().any(|p| l.starts_with(p)))
                    .map(|l| format!("  {l}\n"))
                    .collect::<String>()
        }
        // the subject is enough here: the day ends with the commit
        "draft_commit_message" => {
            let subject = lines.next().and_then(|l| l.strip_prefix("  | ")).unwrap_or_default();
            format!("{status}  drafted: {subject}\n")
        }
        _ => full,
    }
}
