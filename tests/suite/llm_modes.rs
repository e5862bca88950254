//! The LLM planner's constrained modes, routing, per-turn records and server errors, against
//! the fake OpenAI-compatible server of `llm.rs` (async-openai's real request and response
//! code runs).

use std::path::Path;
use std::sync::Arc;

use agentops::agents::Agents;
use agentops::exec::{Executor, Journal, Policy, ScriptedApprover};
use agentops::llm::settings::Constrained;
use agentops::llm::{LlmSettings, OpenAiClient};
use agentops::planner::llm::plan_and_run;
use agentops::tools::ToolRegistry;
use agentops::workflows::{Ctx, CtxOptions};
use serde_json::{Value, json};

use super::common::*;
use super::llm::{Fake, ask_with_llm, text};

fn completion(message: Value, finish: &str, usage: (u64, u64)) -> (u16, Value) {
    (
        200,
        json!({
            "id": "chatcmpl-test", "object": "chat.completion", "created": 1_700_000_000u64, "model": "test-model",
            "choices": [{"index": 0, "message": message, "finish_reason": finish}],
            "usage": {"prompt_tokens": usage.0, "completion_tokens": usage.1, "total_tokens": usage.0 + usage.1},
        }),
    )
}

fn call(id: &str, name: &str, args: &str) -> (u16, Value) {
    completion(
        json!({"role": "assistant", "content": null,
               "tool_calls": [{"id": id, "type": "function", "function": {"name": name, "arguments": args}}]}),
        "tool_calls",
        (100, 10),
    )
}

fn content(text: &str, finish: &str) -> (u16, Value) {
    completion(json!({"role": "assistant", "content": text}), finish, (100, 10))
}

fn executor(repo: &Path, journal: &Path) -> Executor {
    Executor::new(
        Arc::new(ToolRegistry::builtin()),
        Ctx::new(repo, CtxOptions::default()),
        Policy::default(),
        Arc::new(ScriptedApprover::new(vec![])),
        Some(Journal::at(journal)),
    )
}

fn settings(fake: &Fake, mode: Constrained) -> LlmSettings {
    let mut s = fake.settings();
    s.constrained = mode;
    s.max_output_tokens = 300;
    s
}

fn last_message(body: &Value) -> Value {
    body["messages"].as_array().unwrap().last().unwrap().clone()
}

#[tokio::test]
async fn strict_tools_send_strict_schemas_and_nulls_mean_not_given() {
    let fake = Fake::start(vec![
        call("c1", "validate", r#"{"env": null, "app": ["web"], "changed_since": null, "clusters": null}"#),
        text("web is valid.", (50, 5)),
    ])
    .await;
    let journal = tempfile::tempdir().unwrap();
    let exec = executor(&fixture("clean"), &journal.path().join("j.jsonl"));
    let settings = settings(&fake, Constrained::StrictTools);
    let client = OpenAiClient::with_key(&settings, "").unwrap();
    let agent = Agents::builtin(exec.registry()).unwrap().require("validator").unwrap().clone();
    let run = plan_and_run(&client, &exec, &agent, "validate web", &settings).await.unwrap();
    assert_eq!(run.plan.steps.len(), 1);
    assert_eq!(
        run.plan.steps[0].args,
        json!({"app": ["web"], "changed_since": null}),
        "nulls for non-null args dropped"
    );
    assert!(run.results[0].ok, "{:?}", run.results[0].error);
    let seen = fake.seen();
    let first = &seen[0].body;
    assert_eq!(first["tool_choice"], "required", "a routed agent acts first");
    assert_eq!(first["max_tokens"], 300);
    let tools = first["tools"].as_array().unwrap();
    assert_eq!(tools.len(), agent.tools.len(), "only the validator's tools");
    for t in tools {
        let f = &t["function"];
        assert_eq!(f["strict"], true, "{f}");
        let props = f["parameters"]["properties"].as_object().unwrap();
        assert_eq!(f["parameters"]["required"].as_array().unwrap().len(), props.len(), "{f}");
        assert_eq!(f["parameters"]["additionalProperties"], false);
        assert!(!seen[0].raw.contains("\"default\""));
    }
    assert!(seen[1].body.get("tool_choice").is_none(), "later turns may answer");
    assert_eq!(run.answer.as_deref(), Some("web is valid."));
}

#[tokio::test]
async fn json_schema_asks_for_exactly_one_call_then_an_answer() {
    let step = r#"{"step": {"tool": "validate", "arguments": {"env": ["dev"], "app": null, "changed_since": null, "clusters": null}}}"#;
    let fake = Fake::start(vec![
        content(r#"{"step": {"tool": "validate", "argu"#, "length"),
        content(step, "stop"),
        content(r#"{"step": {"tool": "kustomize_build", "arguments": {"overlay": "../../etc"}}}"#, "stop"),
        content(r#"{"step": {"answer": "dev is valid."}}"#, "stop"),
    ])
    .await;
    let journal = tempfile::tempdir().unwrap();
    let jpath = journal.path().join("j.jsonl");
    let exec = executor(&fixture("clean"), &jpath);
    let settings = settings(&fake, Constrained::JsonSchema);
    let client = OpenAiClient::with_key(&settings, "").unwrap();
    let agent = Agents::builtin(exec.registry()).unwrap().require("validator").unwrap().clone();
    let run = plan_and_run(&client, &exec, &agent, "validate dev", &settings).await.unwrap();
    assert_eq!(run.answer.as_deref(), Some("dev is valid."));
    assert_eq!(run.plan.steps.len(), 1);
    assert_eq!(run.plan.steps[0].args, json!({"env": ["dev"], "changed_since": null}));
    assert_eq!(run.invalid_calls, 2, "the cut answer and the path outside the repo");

    let seen = fake.seen();
    let first = &seen[0].body;
    assert!(first.get("tools").is_none(), "the catalog is the response schema");
    let format = &first["response_format"];
    assert_eq!(format["type"], "json_schema");
    assert_eq!(format["json_schema"]["strict"], true);
    let branches = format["json_schema"]["schema"]["properties"]["step"]["anyOf"].as_array().unwrap();
    assert_eq!(branches.len(), agent.tools.len(), "one branch per tool and no answer before acting");
    let names: Vec<&str> = branches.iter().filter_map(|b| b["properties"]["tool"]["enum"][0].as_str()).collect();
    assert!(names.contains(&"validate") && !names.contains(&"cluster_query"), "{names:?}");
    let later = &seen[1].body["response_format"]["json_schema"]["schema"]["properties"]["step"]["anyOf"];
    assert_eq!(later.as_array().unwrap().len(), agent.tools.len() + 1, "then an answer is allowed");
    let cut = last_message(&seen[1].body);
    assert_eq!(cut["role"], "user");
    assert!(cut["content"].as_str().unwrap().contains("cut at the output limit of 300 tokens"), "{cut}");
    let result = last_message(&seen[2].body);
    assert!(result["content"].as_str().unwrap().starts_with("Result of validate: {"), "{result}");
    let escape = last_message(&seen[3].body);
    assert!(escape["content"].as_str().unwrap().contains("outside the repository"), "{escape}");

    // one journal record per model turn, with its tokens and calls
    let turns = Journal::at(&jpath).turns().unwrap();
    assert_eq!(turns.len(), 4);
    let shape: Vec<(usize, usize, usize)> = turns.iter().map(|t| (t.turn, t.calls, t.invalid_calls)).collect();
    assert_eq!(shape, vec![(1, 1, 1), (2, 1, 0), (3, 1, 1), (4, 0, 0)]);
    assert_eq!(turns[0].finish_reason.as_deref(), Some("length"));
    assert!(turns.iter().all(|t| t.prompt_tokens == 100 && t.catalog_tokens > 500 && t.catalog_tokens <= 3000));
    assert_eq!(Journal::at(&jpath).read().unwrap().len(), 1, "the step journal holds the one step");
}

#[tokio::test]
async fn server_error_bodies_are_reported_as_they_are() {
    let overflow = json!({"error": {"code": 400, "type": "exceed_context_size_error", "n_prompt_tokens": 11545, "n_ctx": 8192,
        "message": "request (11545 tokens) exceeds the available context size (8192 tokens), try increasing it"}});
    let openai_overflow = json!({"error": {"type": "invalid_request_error", "code": "context_length_exceeded", "param": "messages",
        "message": "This model's maximum context length is 8192 tokens. However, your messages resulted in 11545 tokens. Please reduce the length of the messages."}});
    // vLLM before 0.9 answers at the top level, later versions under "error"
    let vllm_overflow = json!({"object": "error", "code": 400, "type": "BadRequestError", "param": null,
        "message": "This model's maximum context length is 4096 tokens. However, you requested 5000 tokens (4000 in the messages, 1000 in the completion). Please reduce the length of the messages or completion."});
    let int_code = json!({"error": {"code": 400, "type": "invalid_request_error", "message": "tools are not supported by this model"}});
    let string_only = json!({"error": "model 'nope' not found"});
    let grammar = json!({"error": {"code": 500, "type": "server_error", "message": "failed to parse grammar"}});
    let mut replies =
        vec![(400, overflow), (400, openai_overflow), (400, vllm_overflow), (400, int_code), (404, string_only)];
    replies.extend(std::iter::repeat_n((500, grammar), 4));
    let fake = Fake::start(replies).await;
    let journal = tempfile::tempdir().unwrap();
    let exec = executor(&fixture("clean"), &journal.path().join("j.jsonl"));
    let settings = settings(&fake, Constrained::Off);
    let client = OpenAiClient::with_key(&settings, "").unwrap();
    let agent = Agents::builtin(exec.registry()).unwrap().require("validator").unwrap().clone();
    let mut errors = Vec::new();
    for _ in 0..6 {
        errors.push(plan_and_run(&client, &exec, &agent, "validate", &settings).await.unwrap_err().to_string());
    }
    let e = &errors[0];
    assert!(e.contains("the request is 11545 tokens and the model holds 8192"), "{e}");
    assert!(e.contains("llama-server -c") && e.contains("prompt_budget"), "what to do: {e}");
    assert!(!e.contains("  "), "one line of text: {e}");
    assert!(!e.contains("could not be read"), "{e}");
    assert!(errors[1].contains("the request is 11545 tokens and the model holds 8192"), "{}", errors[1]);
    assert!(errors[2].contains("the request is 5000 tokens and the model holds 4096"), "{}", errors[2]);
    let e = &errors[3];
    assert!(e.contains("400") && e.contains("invalid_request_error: tools are not supported by this model"), "{e}");
    // Ollama's `{"error": "text"}` (its status is not in the body async-openai hands back)
    assert!(errors[4].contains("answered with an error: model 'nope' not found"), "{}", errors[4]);
    let e = &errors[5];
    assert!(
        e.contains("500") && e.contains("server_error: failed to parse grammar") && e.contains("after retries"),
        "{e}"
    );
}

/// `agentops ask --planner llm` routes before it plans: a request the rules recognize goes
/// straight to its workflow's agent; one they do not gets one routing turn whose only
/// choices are the workflow names. Each turn's tokens go to stderr and the journal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_are_routed_to_one_agents_tools() {
    let fake = Fake::start(vec![
        // "what is wrong with web in dev?": the rules do not know it; the router picks validate
        call("r1", "validate", "{}"),
        call("c1", "validate", r#"{"env": ["dev"], "app": ["web"]}"#),
        text("web in dev validates.", (150, 8)),
        // "validate prod": the rules route it, no routing turn
        call("c2", "validate", r#"{"env": ["prod"]}"#),
        text("prod validates.", (150, 8)),
        // the router finds no workflow
        call("r2", "none", "{}"),
    ])
    .await;
    let repo = copy_fixture("clean");
    let (root, url) = (repo.path().to_str().unwrap().to_string(), fake.base_url.clone());
    let ask = |request: &'static str| ask_with_llm(&[], request, &root, &url);
    let r = ask("what is wrong with web in dev?").await;
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["plan"][0]["args"], json!({"env": ["dev"], "app": ["web"]}));
    assert!(r.stderr.contains("llm: router turn 0: 100 prompt + 10 completion tokens"), "{}", r.stderr);
    assert!(r.stderr.contains("llm: validator turn 1") && r.stderr.contains("llm: validator turn 2"), "{}", r.stderr);
    let seen = fake.seen();
    let route: Vec<&str> =
        seen[0].body["tools"].as_array().unwrap().iter().filter_map(|t| t["function"]["name"].as_str()).collect();
    assert_eq!(route, ["create", "validate", "drift", "harmonize", "rollback", "migrate", "commit", "none"]);
    assert_eq!(seen[0].body["tool_choice"], "required");
    let tools_of = |i: usize| seen[i].body["tools"].as_array().unwrap().len();
    assert_eq!(tools_of(1), 4, "the validator's four tools, not the whole catalog");

    let r = ask("validate prod").await;
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(!r.stderr.contains("router"), "{}", r.stderr);
    assert_eq!(fake.seen().len(), 5);
    assert_eq!(fake.seen()[3].body["tools"].as_array().unwrap().len(), 4);

    let r = ask("what is wrong with web in dev?").await;
    assert_eq!(r.code, 2, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("could not tell which workflow") && r.stderr.contains("rollback"), "{}", r.stderr);

    let turns = Journal::for_repo(repo.path()).turns().unwrap();
    let agents: Vec<(&str, usize)> = turns.iter().map(|t| (t.agent.as_str(), t.turn)).collect();
    assert_eq!(
        agents,
        vec![("router", 0), ("validator", 1), ("validator", 2), ("validator", 1), ("validator", 2), ("router", 0)]
    );
}
