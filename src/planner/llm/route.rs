//! Route first: the request's workflow picks the agent, so a model turn carries only that
//! agent's tools. The rules planner's intent detection decides when it can; otherwise one
//! cheap model turn whose only choices are the workflow names (the `router` agent).

use std::time::Instant;

use serde_json::{Value, json};

use crate::agents::Agents;
use crate::error::Error;
use crate::exec::ModelTurn;
use crate::k8s::redact::Redactor;
use crate::llm::settings::Constrained;
use crate::llm::{ChatRequest, LlmClient, LlmSettings, Message, ResponseSchema, ToolChoice, ToolSpec, budget};
use crate::planner::rules::Workflow;

/// The agent the LLM planner runs for a workflow.
pub fn agent_for(workflow: Workflow) -> &'static str {
    match workflow {
        Workflow::Validate => "validator",
        Workflow::Drift => "drift",
        Workflow::Harmonize => "harmonize",
        Workflow::Rollback => "rollback",
        Workflow::Create => "create",
        Workflow::Migrate => "migrate",
        Workflow::Commit => "commit",
    }
}

/// Tokens the routing answer may take: a function name or `{"workflow": NAME}`.
const ROUTE_OUTPUT_TOKENS: u32 = 40;

/// What the routing turn decided.
#[derive(Debug, Clone)]
pub struct Routed {
    /// None: the model said no workflow fits (or named none it could be read as).
    pub workflow: Option<Workflow>,
    pub turn: ModelTurn,
}

/// One model turn that picks the workflow of `request` (already redacted by the caller).
pub async fn route_with_model(
    llm: &dyn LlmClient,
    agents: &Agents,
    request: &str,
    settings: &LlmSettings,
    redactor: &Redactor,
) -> Result<Routed, Error> {
    let router = agents.require("router")?;
    let json_mode = settings.constrained_mode() == Constrained::JsonSchema;
    let workflows: Vec<Value> =
        Workflow::ALL.iter().map(|w| json!({"name": w.name(), "description": w.description()})).collect();
    let system = redactor.scrub(&router.render_prompt(&json!({"workflows": workflows, "json_protocol": json_mode}))?);
    let mut names: Vec<&str> = Workflow::ALL.iter().map(|w| w.name()).collect();
    names.push("none");
    let tools: Vec<ToolSpec> = if json_mode {
        Vec::new()
    } else {
        names
            .iter()
            .map(|n| ToolSpec {
                name: n.to_string(),
                description: Workflow::ALL
                    .iter()
                    .find(|w| w.name() == *n)
                    .map_or("none of the workflows fits", |w| w.description())
                    .to_string(),
                parameters: json!({"type": "object", "properties": {}, "additionalProperties": false}),
            })
            .collect()
    };
    let chat = ChatRequest {
        model: settings.model.clone(),
        messages: vec![Message::system(system), Message::user(redactor.scrub(request))],
        tool_choice: (!json_mode).then_some(ToolChoice::Required),
        strict_tools: settings.constrained_mode() == Constrained::StrictTools,
        response_schema: json_mode.then(|| ResponseSchema {
            name: "workflow".into(),
            schema: json!({"type": "object", "properties": {"workflow": {"type": "string", "enum": names}},
                           "required": ["workflow"], "additionalProperties": false}),
            strict: true,
        }),
        tools,
        temperature: settings.temperature,
        max_output_tokens: Some(ROUTE_OUTPUT_TOKENS),
    };
    let catalog_tokens = budget::estimate_catalog(&chat);
    let started = Instant::now();
    let response = llm.complete(chat).await?;
    let calls = response.message.calls();
    let picked = match calls.first() {
        Some(c) => Some(c.name.clone()),
        None => response.message.text().and_then(|t| {
            let t = t.trim();
            serde_json::from_str::<Value>(t)
                .ok()
                .and_then(|v| v.get("workflow").and_then(Value::as_str).map(str::to_string))
                .or_else(|| first_name_in(t, &names))
        }),
    };
    let workflow = picked.as_deref().and_then(|p| Workflow::ALL.into_iter().find(|w| w.name() == p));
    let turn = ModelTurn {
        agent: router.name.clone(),
        turn: 0,
        prompt_tokens: response.usage.prompt_tokens,
        completion_tokens: response.usage.completion_tokens,
        catalog_tokens,
        calls: calls.len(),
        invalid_calls: usize::from(picked.as_deref().is_some_and(|p| !names.contains(&p))),
        finish_reason: response.finish_reason.clone(),
        duration_ms: started.elapsed().as_millis() as u64,
    };
    Ok(Routed { workflow, turn })
}

/// The first of `names` said as a word in a text answer.
fn first_name_in(text: &str, names: &[&str]) -> Option<String> {
    let lower = text.to_ascii_lowercase();
    lower.split(|c: char| !c.is_ascii_alphabetic()).find(|w| names.contains(w)).map(str::to_string)
}

/// Most apps the repo summary lists before it says how many more there are.
pub const MAX_LISTED_APPS: usize = 40;

/// The repo as the prompt describes it: environments, apps (those the request names first,
/// then the others, at most `cap`), Argo CD Applications. No absolute paths.
pub fn repo_summary(repo: &Value, request: &str, cap: usize) -> Value {
    let Some(apps) = repo.get("apps").and_then(Value::as_array) else { return repo.clone() };
    let words: Vec<String> = request
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_'))
        .map(str::to_ascii_lowercase)
        .collect();
    let named = |a: &Value| a["name"].as_str().is_some_and(|n| words.iter().any(|w| w == n));
    let mut ordered: Vec<&Value> = apps.iter().filter(|a| named(a)).collect();
    ordered.extend(apps.iter().filter(|a| !named(a)));
    // each app's environments in promotion order
    let order: Vec<&str> =
        repo.get("environments").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str).collect();
    let rank = |e: &Value| e.as_str().and_then(|e| order.iter().position(|o| *o == e)).unwrap_or(usize::MAX);
    let shown: Vec<Value> = ordered
        .into_iter()
        .take(cap)
        .map(|a| {
            let mut a = a.clone();
            if let Some(envs) = a.get_mut("environments").and_then(Value::as_array_mut) {
                envs.sort_by_key(|e| rank(e));
            }
            a
        })
        .collect();
    let more = apps.len() - shown.len();
    let mut out = repo.clone();
    out["apps"] = Value::Array(shown.clone());
    if more > 0 {
        out["more_apps"] = json!(more);
        out["app_count"] = json!(apps.len());
        out["shown_apps"] = json!(shown.len());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_is_capped_and_keeps_the_apps_asked_about() {
        let apps: Vec<Value> =
            (0..1000).map(|i| json!({"name": format!("app-{i}"), "environments": ["dev"]})).collect();
        let repo = json!({"environments": ["dev"], "apps": apps, "argocd_applications": 1000});
        let s = repo_summary(&repo, "validate app-977 please", 10);
        assert_eq!(s["apps"].as_array().unwrap().len(), 10);
        assert_eq!(s["apps"][0]["name"], "app-977");
        assert_eq!((s["more_apps"].as_u64(), s["app_count"].as_u64()), (Some(990), Some(1000)));
        let small = json!({"environments": ["dev"], "apps": [{"name": "web", "environments": ["dev"]}]});
        assert!(repo_summary(&small, "x", 10).get("more_apps").is_none());
        assert_eq!(first_name_in("I would say: Drift.", &["drift", "none"]).as_deref(), Some("drift"));
        for w in Workflow::ALL {
            assert!(!agent_for(w).is_empty());
        }
    }
}
