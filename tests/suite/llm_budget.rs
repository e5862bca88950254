//! The LLM planner's per-turn budget: the system prompt and tool catalog each routed agent
//! sends, on examples/platform and on a repo of 1,000 apps, in every constrained mode;
//! and routing (the request's workflow picks the agent, so only its tools are sent).

use std::path::Path;
use std::sync::Arc;

use agentops::agents::Agents;
use agentops::exec::{Executor, Journal, Policy, ScriptedApprover};
use agentops::llm::settings::Constrained;
use agentops::llm::{LlmSettings, budget};
use agentops::planner::llm::{agent_for, prepare};
use agentops::planner::rules::Workflow;
use agentops::tools::ToolRegistry;
use agentops::workflows::{Ctx, CtxOptions};

use super::common::platform;

fn executor(repo: &Path) -> Executor {
    Executor::new(
        Arc::new(ToolRegistry::builtin()),
        Ctx::new(repo, CtxOptions::default()),
        Policy::default(),
        Arc::new(ScriptedApprover::new(vec![])),
        None::<Journal>,
    )
}

fn settings(mode: Constrained) -> LlmSettings {
    let mut s = LlmSettings::new("http://127.0.0.1:9/v1", "m");
    s.constrained = mode;
    s
}

const MODES: [Constrained; 3] = [Constrained::Off, Constrained::StrictTools, Constrained::JsonSchema];

#[tokio::test]
async fn every_routed_agent_fits_the_budget_on_the_example_platform() {
    let exec = executor(&platform());
    let agents = Agents::builtin(exec.registry()).unwrap();
    let mut table = Vec::new();
    let mut prepared = Vec::new();
    for w in Workflow::ALL {
        let agent = agents.require(agent_for(w)).unwrap();
        for mode in MODES {
            let p = prepare(&exec, agent, "validate staging", &settings(mode)).await.unwrap();
            table.push(format!("{:<10} {:<12} {:>5}", agent.name, format!("{mode:?}"), p.catalog_tokens));
            prepared.push((agent.clone(), mode, p));
        }
    }
    println!(
        "system prompt + catalog, estimated tokens ({} chars/token):\n{}",
        budget::CHARS_PER_TOKEN,
        table.join("\n")
    );
    for (agent, mode, p) in prepared {
        {
            assert!(p.catalog_tokens <= 3000, "{} {mode:?}: {} tokens", agent.name, p.catalog_tokens);
            assert!(!p.over_budget);
            assert_eq!(p.listed_apps, 12, "{}: every app of the platform is listed", agent.name);
            assert!(p.system.contains("- payments: dev, staging, prod-west, prod-east, prod-central"), "{}", p.system);
            let names: Vec<&str> = p.tools.iter().map(|t| t.name.as_str()).collect();
            assert_eq!(names.len(), agent.tools.len(), "only the agent's tools: {names:?}");
            assert!(names.iter().all(|n| agent.allows(n)));
            let text = serde_json::to_string(&p.wire_tools).unwrap();
            assert!(!text.contains("\"default\"") && !text.contains("\"expect\""), "{text}");
        }
    }
    // the unrouted catalog, for comparison: every tool, as the planner agent sees it
    let planner = agents.require("planner").unwrap();
    let p = prepare(&exec, planner, "validate staging", &settings(Constrained::Off)).await.unwrap();
    println!("planner (every tool) {:>5}", p.catalog_tokens);
}

/// A repo of `n` apps, each with a base and dev and prod overlays.
fn repo_of(n: usize) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for i in 0..n {
        let app = dir.path().join(format!("apps/svc-{i:04}"));
        std::fs::create_dir_all(app.join("base")).unwrap();
        std::fs::write(app.join("base/kustomization.yaml"), "resources: []\n").unwrap();
        for env in ["dev", "prod"] {
            std::fs::create_dir_all(app.join("overlays").join(env)).unwrap();
            std::fs::write(app.join("overlays").join(env).join("kustomization.yaml"), "resources:\n  - ../../base\n")
                .unwrap();
        }
    }
    dir
}

#[tokio::test]
async fn the_budget_holds_as_the_repo_grows_to_a_thousand_apps() {
    let repo = repo_of(1000);
    let exec = executor(repo.path());
    let agents = Agents::builtin(exec.registry()).unwrap();
    for w in Workflow::ALL {
        let agent = agents.require(agent_for(w)).unwrap();
        for mode in MODES {
            let p = prepare(&exec, agent, "roll back svc-0977 in prod", &settings(mode)).await.unwrap();
            assert!(p.catalog_tokens <= 3000 && !p.over_budget, "{} {mode:?}: {}", agent.name, p.catalog_tokens);
            assert!(p.listed_apps < 1000 && p.listed_apps >= 5, "{}: {}", agent.name, p.listed_apps);
            assert!(p.system.contains("- svc-0977: dev, prod"), "the app the request names is listed first");
            assert!(p.system.contains("more: `repo_scan`"), "{}", p.system);
        }
    }
    // a smaller budget lists fewer apps; one too small for any says so
    let agent = agents.require("validator").unwrap();
    let roomy = prepare(&exec, agent, "validate", &settings(Constrained::Off)).await.unwrap();
    let mut tight = settings(Constrained::Off);
    tight.prompt_budget = roomy.catalog_tokens - 100;
    let p = prepare(&exec, agent, "validate", &tight).await.unwrap();
    assert!(p.listed_apps < roomy.listed_apps && !p.over_budget, "{} {}", p.listed_apps, roomy.listed_apps);
    tight.prompt_budget = 200;
    let p = prepare(&exec, agent, "validate", &tight).await.unwrap();
    assert!(p.over_budget && p.listed_apps == 40, "the apps are listed as usual: {}", p.listed_apps);
}
