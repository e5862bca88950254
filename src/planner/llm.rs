//! The LLM planner: a bounded tool-calling loop. The model sees the tools its agent allows
//! (compact JSON Schemas, see [`schema`]), a system prompt rendered from the agent's prompt
//! file with a summary of the repo that fits the prompt budget, and the request. Every call
//! it proposes is checked here before the executor sees it (JSON, known tool, allowed for
//! the agent, schema, paths inside the repo, not a repeat); failures go back to the model as
//! short tool results. Approved calls run through `Executor::run_step`, so approval,
//! read-only and dry-run modes and the journal apply. Everything sent to the model passes
//! through the tool context's redactor first. Each model turn is journaled with its tokens.
//!
//! `llm.constrained` picks how calls are constrained: plain tool calling (`off`), OpenAI
//! strict tool schemas (`strict_tools`), or a `json_schema` answer that is exactly one call
//! (for grammar-constrained local servers and models without native tool calling). The
//! checks behind it are the same in every mode. Routing (which agent runs) is in [`route`].

pub(crate) mod route;
pub(crate) mod schema;

use std::collections::HashSet;
use std::path::{Component, Path};
use std::time::Instant;

use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::agents::{Agent, Approval};
use crate::error::Error;
use crate::exec::{Decision, Executor, ModelTurn, StepResult};
use crate::exec::{Plan, Step};
use crate::k8s::redact::Redactor;
use crate::llm::settings::Constrained;
use crate::llm::{
    ChatRequest, LlmClient, LlmSettings, Message, ResponseSchema, ToolCall, ToolChoice, ToolSpec, Usage, budget,
};
use crate::tools::{Effect, ToolRegistry};
use crate::workflows::Ctx;

pub use route::{Routed, agent_for, route_with_model};
pub use schema::{JsonStep, Names, call_schema, compact_spec, from_model_args, strict_schema};

/// Longest tool result sent back to the model, in characters; longer ones are shortened.
pub const MAX_RESULT_CHARS: usize = 12_000;
/// Longest single string inside a shortened result.
const MAX_STRING_CHARS: usize = 600;
/// A repeated identical call is refused once; the next repeat stops the run.
const REPEATS_BEFORE_STOP: usize = 2;

/// What a run did.
#[derive(Debug, Clone, Serialize)]
pub struct LlmRun {
    /// The steps that passed the checks and went to the executor, in order.
    pub plan: Plan,
    /// One per plan step.
    pub results: Vec<StepResult>,
    /// The model's final answer (redacted), when it gave one.
    pub answer: Option<String>,
    /// Model requests made.
    pub turns: usize,
    pub usage: Usage,
    /// Why the run ended early (turn limit, repeated call, a failed model request, an answer
    /// cut at the output limit).
    pub stopped: Option<String>,
    /// One record per model turn (also journaled).
    pub turn_log: Vec<ModelTurn>,
    /// Calls refused by the checks (unreadable, unknown, not allowed, invalid arguments,
    /// paths outside the repo).
    pub invalid_calls: usize,
}

/// What every request of a run carries besides the conversation.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// The rendered, redacted system prompt.
    pub system: String,
    /// The agent's tools in compact form (what `json_schema` mode builds its call schema from).
    pub tools: Vec<ToolSpec>,
    /// The tools as sent (strict form in `strict_tools` mode; none in `json_schema` mode).
    pub wire_tools: Vec<ToolSpec>,
    /// `json_schema` mode: the environment and app names the call schema's arguments refer to.
    pub name_defs: Value,
    pub mode: Constrained,
    /// Estimated tokens of the system prompt and the catalog (tools, or the call schema).
    pub catalog_tokens: u64,
    /// Apps listed in the repo summary (all, or as many as fit the budget).
    pub listed_apps: usize,
    /// Even with no apps listed, the estimate is over `settings.prompt_budget`.
    pub over_budget: bool,
}

/// Renders the system prompt and the catalog for `agent`, listing as many of the repo's
/// apps as fit `settings.prompt_budget` (those the request names first).
pub async fn prepare(
    executor: &Executor,
    agent: &Agent,
    request: &str,
    settings: &LlmSettings,
) -> Result<Prepared, Error> {
    let ctx = executor.ctx();
    let registry = executor.registry();
    // Loading the repo teaches the redactor its secret values before anything is sent.
    let repo = repo_context(ctx).await;
    let redactor = ctx.redactor();
    let mode = settings.constrained_mode();
    let json_mode = mode == Constrained::JsonSchema;
    let mut tools = tool_specs(registry, agent);
    let mut name_defs = json!({});
    if matches!(mode, Constrained::StrictTools | Constrained::JsonSchema) {
        // a constrained model can then name only real environments and apps
        let names = |k: &str| -> Vec<String> {
            match k {
                "apps" => repo.get("apps").and_then(Value::as_array).into_iter().flatten(),
                _ => repo.get("environments").and_then(Value::as_array).into_iter().flatten(),
            }
            .filter_map(|v| v.get("name").unwrap_or(v).as_str().map(str::to_string))
            .collect()
        };
        let (envs, apps) = (names("environments"), names("apps"));
        if mode == Constrained::JsonSchema {
            name_defs = schema::name_defs(&envs, &apps);
        }
        for t in &mut tools {
            match mode {
                // one schema holds every tool: the names are defined once
                Constrained::JsonSchema => schema::constrain_names(&mut t.parameters, &envs, &apps, Names::Shared),
                // one schema per tool: only the environments, which are few
                _ => schema::constrain_names(&mut t.parameters, &envs, &[], Names::Inline),
            }
        }
    }
    let wire_tools: Vec<ToolSpec> = match mode {
        Constrained::JsonSchema => Vec::new(),
        Constrained::StrictTools => {
            tools.iter().map(|t| ToolSpec { parameters: strict_schema(&t.parameters), ..t.clone() }).collect()
        }
        _ => tools.clone(),
    };
    let catalog = if json_mode {
        budget::estimate(&serde_json::to_string(&call_schema(&tools, true, &name_defs)).unwrap_or_default())
    } else {
        budget::estimate_tools(&wire_tools)
    };
    let max_turns = agent.max_turns.map_or(settings.max_turns, |m| m.min(settings.max_turns)).max(1);
    let policy = executor.policy().for_agent(agent);
    let listed: Vec<Value> = registry
        .list()
        .iter()
        .filter(|t| agent.allows(t.name))
        .map(|t| {
            // the functions carry their descriptions; json_schema mode sends none
            let description = if json_mode { schema::shorten(t.description, 100) } else { String::new() };
            json!({"name": t.name, "description": description, "effect": format!("{:?}", t.effect)})
        })
        .collect();
    let total_apps = repo.get("apps").and_then(Value::as_array).map_or(0, Vec::len);
    let mut caps: Vec<usize> =
        [total_apps, route::MAX_LISTED_APPS, 20, 10, 5, 0].into_iter().filter(|c| *c <= total_apps).collect();
    caps.dedup();
    let render = |cap: usize| -> Result<Prepared, Error> {
        let data = json!({
            "agent": {"name": agent.name, "description": agent.description},
            "repo": route::repo_summary(&repo, request, cap),
            "tools": listed,
            "shared_args": true,
            "json_protocol": json_mode,
            "policy": {"read_only": policy.read_only, "dry_run": policy.dry_run, "yes": policy.yes},
            "approval": agent.approval,
            "max_turns": max_turns,
        });
        let system = redactor.scrub(&agent.render_prompt(&data)?);
        let catalog_tokens = budget::estimate(&system) + catalog;
        Ok(Prepared {
            system,
            tools: tools.clone(),
            wire_tools: wire_tools.clone(),
            name_defs: name_defs.clone(),
            mode,
            catalog_tokens,
            listed_apps: cap,
            over_budget: catalog_tokens > settings.prompt_budget,
        })
    };
    for cap in caps {
        let p = render(cap)?;
        if !p.over_budget {
            return Ok(p);
        }
    }
    // not even without apps: the catalog alone is over the budget, so list apps as usual
    render(total_apps.min(route::MAX_LISTED_APPS))
}

/// Runs `request` with `agent` to completion. Errors only when nothing ran: the prompt does
/// not render, or the first model request fails. Later model failures end the run with
/// `stopped` set, keeping what was done.
pub async fn plan_and_run(
    llm: &dyn LlmClient,
    executor: &Executor,
    agent: &Agent,
    request: &str,
    settings: &LlmSettings,
) -> Result<LlmRun, Error> {
    plan_and_run_observed(llm, executor, agent, request, settings, &|_| {}).await
}

/// As [`plan_and_run`], handing each model turn's record to `on_turn` as it ends.
pub async fn plan_and_run_observed(
    llm: &dyn LlmClient,
    executor: &Executor,
    agent: &Agent,
    request: &str,
    settings: &LlmSettings,
    on_turn: &(dyn Fn(&ModelTurn) + Send + Sync),
) -> Result<LlmRun, Error> {
    let ctx = executor.ctx();
    let registry = executor.registry();
    let prepared = prepare(executor, agent, request, settings).await?;
    let redactor = ctx.redactor();
    let mode = prepared.mode;
    let json_mode = mode == Constrained::JsonSchema;
    let max_turns = agent.max_turns.map_or(settings.max_turns, |m| m.min(settings.max_turns)).max(1);
    let request_text = redactor.scrub(request);
    let mut messages = vec![Message::system(prepared.system.clone()), Message::user(request_text.clone())];
    let mut run = LlmRun {
        plan: Plan::new(request_text.clone()),
        results: Vec::new(),
        answer: None,
        turns: 0,
        usage: Usage::default(),
        stopped: None,
        turn_log: Vec::new(),
        invalid_calls: 0,
    };
    let mut seen: HashSet<String> = HashSet::new();
    let mut repeats = 0usize;
    let cut_note = format!("the answer was cut at the output limit of {} tokens", settings.max_output_tokens);

    for turn in 1..=max_turns {
        let mut chat = ChatRequest {
            model: settings.model.clone(),
            messages: messages.clone(),
            tools: prepared.wire_tools.clone(),
            temperature: settings.temperature,
            // a routed agent acts before it answers
            tool_choice: (turn == 1 && mode == Constrained::StrictTools).then_some(ToolChoice::Required),
            strict_tools: mode == Constrained::StrictTools,
            response_schema: json_mode.then(|| ResponseSchema {
                name: "step".into(),
                schema: call_schema(&prepared.tools, turn > 1, &prepared.name_defs),
                strict: true,
            }),
            max_output_tokens: Some(settings.max_output_tokens),
        };
        chat.messages.iter_mut().for_each(|m| scrub_message(redactor, m));
        let started = Instant::now();
        let response = match llm.complete(chat).await {
            Ok(r) => r,
            Err(e) if run.plan.steps.is_empty() => return Err(e.into()),
            Err(e) => {
                tracing::info!(turn, error = %e, "model request failed; the run stops");
                run.stopped = Some(redactor.scrub(&format!("the model request failed: {e}")));
                break;
            }
        };
        run.turns += 1;
        run.usage += response.usage;
        let cut = response.was_cut();
        let mut record = ModelTurn {
            agent: agent.name.clone(),
            turn,
            prompt_tokens: response.usage.prompt_tokens,
            completion_tokens: response.usage.completion_tokens,
            catalog_tokens: prepared.catalog_tokens,
            calls: 0,
            invalid_calls: 0,
            finish_reason: response.finish_reason.clone(),
            duration_ms: started.elapsed().as_millis() as u64,
        };
        let (content, mut calls) = match response.message {
            Message::Assistant { content, tool_calls } => (content, tool_calls),
            other => (other.text().map(str::to_string), Vec::new()),
        };
        // json_schema mode: the answer's text is the step
        let mut answer = content.clone();
        let mut unreadable: Option<String> = None;
        if json_mode && calls.is_empty() {
            match content.as_deref().map(schema::parse_step) {
                Some(Ok(JsonStep::Call { tool, arguments })) => {
                    calls.push(ToolCall::new(format!("call_{turn}_0"), tool, arguments.to_string()));
                }
                Some(Ok(JsonStep::Answer(a))) => answer = Some(a),
                Some(Err(e)) => unreadable = Some(e),
                None => unreadable = Some("the answer was empty".into()),
            }
        }
        for (i, c) in calls.iter_mut().enumerate() {
            if c.id.trim().is_empty() {
                c.id = format!("call_{turn}_{i}");
            }
        }
        let mut assistant = if json_mode {
            Message::assistant(content.clone().unwrap_or_default())
        } else {
            Message::Assistant { content: content.clone(), tool_calls: calls.clone() }
        };
        scrub_message(redactor, &mut assistant);
        messages.push(assistant);
        let mut stop = false;
        let mut done = false;
        if let Some(why) = unreadable {
            record.calls = 1;
            record.invalid_calls = 1;
            tracing::info!(turn, reason = %redactor.scrub(&why), "model answer rejected: not one readable step");
            let why = if cut { format!("{cut_note}; call one tool, or answer in a sentence") } else { why };
            messages.push(Message::user(format!(
                "error: {why}. Answer with one JSON object: {{\"step\": {{\"tool\": NAME, \"arguments\": {{...}}}}}}{}",
                if turn > 1 { " or {\"step\": {\"answer\": TEXT}}" } else { "" }
            )));
        } else if calls.is_empty() {
            run.answer = answer.map(|c| redactor.scrub(&c));
            if cut {
                run.stopped = Some(format!("stopped: {cut_note}"));
            }
            done = true;
        } else {
            record.calls = calls.len();
            let mut tokens = Some(response.usage.total());
            for call in &calls {
                let reply = match check_call(registry, agent, ctx.repo_root(), call, mode) {
                    Err(msg) => {
                        record.invalid_calls += 1;
                        tracing::info!(turn, tool = %call.name, reason = %redactor.scrub(&msg), "model proposal rejected");
                        if cut { format!("error: {cut_note}: {msg}") } else { format!("error: {msg}") }
                    }
                    Ok(args) => {
                        let key = format!("{} {}", call.name, canonical(&args));
                        if stop {
                            "not run: the run was stopped".to_string()
                        } else if seen.contains(&key) {
                            repeats += 1;
                            tracing::info!(turn, tool = %call.name, repeats, "model repeated an identical call");
                            if repeats >= REPEATS_BEFORE_STOP {
                                stop = true;
                                run.stopped = Some(redactor.scrub(&format!(
                                    "stopped: the model repeated an identical call, {} {}",
                                    call.name,
                                    short(&canonical(&args), 200)
                                )));
                                "error: identical call repeated again; the run is stopped".to_string()
                            } else {
                                format!(
                                    "error: {} was already called with these arguments and nothing has changed since; \
                                     use that result, call something else, or answer",
                                    call.name
                                )
                            }
                        } else {
                            seen.insert(key);
                            let summary = short(&format!("{} {}", call.name, canonical(&args)), 160);
                            match Step::new(registry, &call.name, args, redactor.scrub(&summary)) {
                                Err(e) => format!("error: {}", e.public),
                                Ok(step) => {
                                    let outputs: Vec<Option<&Value>> =
                                        run.results.iter().map(|r| r.output.as_ref()).collect();
                                    let bound = super::rules::bind_to_shown(step, &run.plan.steps, &outputs);
                                    // bind_to_shown binds only values that are there
                                    let step = bound.resolve(&outputs).unwrap_or(bound);
                                    run.plan.steps.push(step.clone());
                                    let hash = run.plan.hash();
                                    let result =
                                        executor.run_step(&run.plan.request, &hash, &step, tokens.take()).await;
                                    // After a change, the same read may rightly be repeated.
                                    if result.ok && result.decision.runs() && result.effect != Effect::ReadOnly {
                                        seen.clear();
                                    }
                                    let text = result_text(&result, redactor);
                                    run.results.push(result);
                                    text
                                }
                            }
                        }
                    }
                };
                let reply = redactor.scrub(&reply);
                messages.push(if json_mode {
                    Message::user(format!("Result of {}: {reply}", call.name))
                } else {
                    Message::tool_result(call.id.clone(), reply)
                });
            }
        }
        run.invalid_calls += record.invalid_calls;
        tracing::info!(
            agent = %record.agent,
            turn,
            model = %settings.model,
            prompt_tokens = record.prompt_tokens,
            completion_tokens = record.completion_tokens,
            calls = record.calls,
            invalid_calls = record.invalid_calls,
            finish_reason = record.finish_reason.as_deref().map(tracing::field::display),
            duration_ms = record.duration_ms,
            "llm turn"
        );
        executor.record_turn(&run.plan.request, &record);
        on_turn(&record);
        run.turn_log.push(record);
        if stop || done {
            break;
        }
        if turn == max_turns {
            run.stopped = Some(format!("stopped: reached the limit of {max_turns} model turns without a final answer"));
        }
    }
    Ok(run)
}

/// The repo as the prompt describes it: environments, apps with their overlays, Argo CD
/// Applications. No absolute paths (they would differ between machines and runs).
async fn repo_context(ctx: &Ctx) -> Value {
    let ctx2 = ctx.clone();
    let loaded = tokio::task::spawn_blocking(move || {
        ctx2.load_repo().map(|repo| {
            json!({
                "environments": repo.environments,
                "apps": repo.apps.values().map(|a| json!({
                    "name": a.name,
                    "environments": a.overlays.keys().collect::<Vec<_>>(),
                })).collect::<Vec<_>>(),
                "argocd_applications": repo.argocd_apps.len(),
            })
        })
    })
    .await;
    match loaded {
        Ok(Ok(v)) => v,
        Ok(Err(e)) => json!({"error": ctx.redactor().scrub(&e.to_string()), "environments": [], "apps": []}),
        Err(e) => json!({"error": e.to_string(), "environments": [], "apps": []}),
    }
}

/// The function specs the model sees: the agent's tools, compact (see [`schema`]) and
/// strict (`additionalProperties: false` on every object with properties), without
/// non-standard `format`s.
pub fn tool_specs(registry: &ToolRegistry, agent: &Agent) -> Vec<ToolSpec> {
    let mut specs: Vec<ToolSpec> = registry
        .list()
        .into_iter()
        .filter(|t| agent.allows(t.name))
        .map(|t| compact_spec(t.name, t.description, &t.parameters))
        .collect();
    schema::dedupe_descriptions(&mut specs);
    specs
}

/// Checks a proposed call; the error text goes back to the model.
fn check_call(
    registry: &ToolRegistry,
    agent: &Agent,
    root: &Path,
    call: &ToolCall,
    mode: Constrained,
) -> Result<Value, String> {
    let Some(info) = registry.get(&call.name) else {
        return Err(format!("unknown tool {:?}; you can call: {}", call.name, agent.tools.join(", ")));
    };
    if !agent.allows(&call.name) {
        return Err(format!(
            "tool {} is not available to the {} agent; you can call: {}",
            call.name,
            agent.name,
            agent.tools.join(", ")
        ));
    }
    let raw = call.arguments.trim();
    let args: Value = if raw.is_empty() {
        Value::Object(Map::new())
    } else {
        serde_json::from_str(raw).map_err(|e| format!("arguments are not valid JSON ({e}); send one JSON object"))?
    };
    if !args.is_object() {
        return Err("arguments must be a JSON object".into());
    }
    let mut args = args;
    // strict schemas told the model to send null for "not given" and maps as pairs
    if matches!(mode, Constrained::StrictTools | Constrained::JsonSchema) {
        from_model_args(&mut args, &info.parameters);
    }
    registry.validate_args(&call.name, &args).map_err(|e| e.public)?;
    if let Some(bad) = find_path_escape(&args, root) {
        return Err(format!(
            "path {:?} is outside the repository; use paths relative to the repository root, without `..`",
            short(&bad, 200)
        ));
    }
    if agent.approval == Approval::ReadOnly && info.effect != Effect::ReadOnly {
        return Err(format!("the {} agent is read-only; {} ({:?}) is not allowed", agent.name, call.name, info.effect));
    }
    Ok(args)
}

/// The first string argument that names a path outside the repo: a `..` component, a home
/// directory, or an absolute path not under the root.
pub fn find_path_escape(v: &Value, root: &Path) -> Option<String> {
    match v {
        Value::String(s) => escapes_repo(s, root).then(|| s.clone()),
        Value::Array(a) => a.iter().find_map(|x| find_path_escape(x, root)),
        Value::Object(m) => {
            m.iter().find_map(|(k, x)| if escapes_repo(k, root) { Some(k.clone()) } else { find_path_escape(x, root) })
        }
        _ => None,
    }
}

fn escapes_repo(s: &str, root: &Path) -> bool {
    let t = s.trim();
    if t.is_empty() || t.contains("://") {
        return false;
    }
    if t.split(['/', '\\']).any(|c| c == "..") {
        return true;
    }
    if t.starts_with('~') {
        return true;
    }
    let bytes = t.as_bytes();
    let windows_abs =
        bytes.len() >= 3 && bytes[0].is_ascii_alphabetic() && bytes[1] == b':' && matches!(bytes[2], b'/' | b'\\');
    if t.starts_with('/') || t.starts_with('\\') || windows_abs {
        let p = Path::new(t);
        let under = |r: &Path| p.starts_with(r) && !p.components().any(|c| c == Component::ParentDir);
        let canonical = root.canonicalize().ok();
        return !(under(root) || canonical.as_deref().is_some_and(under));
    }
    false
}

/// Canonical JSON text (sorted keys), for repeat detection.
fn canonical(v: &Value) -> String {
    fn sorted(v: &Value) -> Value {
        match v {
            Value::Object(m) => {
                let mut keys: Vec<&String> = m.keys().collect();
                keys.sort();
                Value::Object(keys.into_iter().map(|k| (k.clone(), sorted(&m[k]))).collect())
            }
            Value::Array(a) => Value::Array(a.iter().map(sorted).collect()),
            other => other.clone(),
        }
    }
    serde_json::to_string(&sorted(v)).unwrap_or_default()
}

fn short(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max).collect();
    out.push('…');
    out
}

/// What the model is told about an executed (or not executed) step.
fn result_text(r: &StepResult, redactor: &Redactor) -> String {
    if r.ok
        && let Some(out) = &r.output
    {
        let mut out = out.clone();
        redactor.redact_value(&mut out);
        return summarize_for_model(&out, MAX_RESULT_CHARS);
    }
    let why = r.error.clone().unwrap_or_default();
    let text = match r.decision {
        Decision::Denied | Decision::Refused | Decision::Skipped | Decision::NotRun => format!("not run: {why}"),
        _ => format!("error: {why}"),
    };
    short(&redactor.scrub(&text), 2_000)
}

/// JSON text of `v` no longer than `limit` characters: long arrays keep their first items
/// with a note of how many were left out, long strings are cut; as a last resort the text
/// is cut.
pub fn summarize_for_model(v: &Value, limit: usize) -> String {
    let full = serde_json::to_string(v).unwrap_or_default();
    if full.chars().count() <= limit {
        return full;
    }
    for keep in [50usize, 20, 10, 5, 2, 1, 0] {
        let text = serde_json::to_string(&shrink(v, keep)).unwrap_or_default();
        if text.chars().count() <= limit {
            return text;
        }
    }
    let mut text = short(&serde_json::to_string(&shrink(v, 0)).unwrap_or_default(), limit.saturating_sub(60));
    text.push_str(" [output cut: too long to show]");
    text
}

fn shrink(v: &Value, keep: usize) -> Value {
    match v {
        Value::String(s) if s.chars().count() > MAX_STRING_CHARS => Value::String(short(s, MAX_STRING_CHARS)),
        Value::Array(a) if a.len() > keep => {
            let mut out: Vec<Value> = a.iter().take(keep).map(|x| shrink(x, keep)).collect();
            out.push(Value::String(format!("… {} more of {} not shown", a.len() - keep, a.len())));
            Value::Array(out)
        }
        Value::Array(a) => Value::Array(a.iter().map(|x| shrink(x, keep)).collect()),
        Value::Object(m) => Value::Object(m.iter().map(|(k, x)| (k.clone(), shrink(x, keep))).collect()),
        other => other.clone(),
    }
}

fn scrub_message(redactor: &Redactor, m: &mut Message) {
    match m {
        Message::System { content } | Message::User { content } | Message::Tool { content, .. } => {
            *content = redactor.scrub(content);
        }
        Message::Assistant { content, tool_calls } => {
            if let Some(c) = content {
                *c = redactor.scrub(c);
            }
            for call in tool_calls {
                call.arguments = redactor.scrub(&call.arguments);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_outside_the_repo_are_caught() {
        let root = Path::new("/work/repo");
        for bad in ["../../etc/passwd", "apps/../../x", "/etc/passwd", "~/.ssh/id_rsa", "..", "a\\..\\b", "C:\\x"] {
            assert!(escapes_repo(bad, root), "{bad}");
        }
        for ok in
            ["apps/web/overlays/dev", "/work/repo/apps/web", "HEAD~1..HEAD", "https://x/../y", "dev", "rate(x[5m]) / 2"]
        {
            assert!(!escapes_repo(ok, root), "{ok}");
        }
        let args = json!({"env": ["dev"], "paths": ["ok", "../secret"]});
        assert_eq!(find_path_escape(&args, root).as_deref(), Some("../secret"));
    }

    #[test]
    fn long_outputs_are_shortened_with_a_note() {
        let items: Vec<Value> = (0..5000).map(|i| json!({"n": i, "text": "x".repeat(40)})).collect();
        let v = json!({"summary": {"errors": 3}, "findings": items});
        let text = summarize_for_model(&v, 4000);
        assert!(text.chars().count() <= 4000, "{}", text.len());
        let back: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(back["summary"]["errors"], 3);
        assert!(back["findings"].as_array().unwrap().last().unwrap().as_str().unwrap().contains("more of 5000"));
        let small = json!({"a": 1});
        assert_eq!(summarize_for_model(&small, 100), "{\"a\":1}");
    }
}
