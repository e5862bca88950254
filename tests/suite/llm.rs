//! The LLM planner against a fake OpenAI-compatible server (axum on 127.0.0.1:0), so
//! async-openai's real request and response code runs: tool calling, argument checks, path
//! escapes, repetition, retries, the key rule, secrets, token usage and cassettes.

use std::collections::VecDeque;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use agentops::agents::{Agent, Agents};
use agentops::exec::{Decision, Executor, Journal, Policy, ScriptedApprover};
use agentops::llm::{CassetteLlm, LlmClient, LlmSettings, OpenAiClient, Usage};
use agentops::planner::llm::{LlmRun, plan_and_run};
use agentops::tools::{Effect, Tool, ToolError, ToolRegistry};
use agentops::workflows::{Ctx, CtxOptions};
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::post;
use serde_json::{Value, json};

use super::common::*;

const CANARY_KEY: &str = "sk-canary-0123456789abcdefghij";

/// What the fake server received.
#[derive(Clone, Debug)]
pub(crate) struct Seen {
    authorization: Option<String>,
    pub(crate) body: Value,
    pub(crate) raw: String,
}

#[derive(Default)]
struct FakeState {
    replies: Mutex<VecDeque<(u16, Value)>>,
    /// Answered when the queue is empty (an endlessly repeating model).
    forever: Mutex<Option<Value>>,
    /// Answers this late (a hanging server).
    delay: Mutex<Option<Duration>>,
    seen: Mutex<Vec<Seen>>,
}

pub(crate) struct Fake {
    pub(crate) base_url: String,
    state: Arc<FakeState>,
}

impl Fake {
    pub(crate) async fn start(replies: Vec<(u16, Value)>) -> Fake {
        let state = Arc::new(FakeState { replies: Mutex::new(replies.into()), ..Default::default() });
        let app = Router::new().route("/v1/chat/completions", post(answer)).with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        // a trailing slash, as people type it: the client must strip it
        Fake { base_url: format!("http://{addr}/v1/"), state }
    }

    fn forever(&self, reply: Value) {
        *self.state.forever.lock().unwrap() = Some(reply);
    }

    pub(crate) fn seen(&self) -> Vec<Seen> {
        self.state.seen.lock().unwrap().clone()
    }

    pub(crate) fn settings(&self) -> LlmSettings {
        let mut s = LlmSettings::new(&self.base_url, "test-model");
        s.retry_backoff = Duration::from_millis(5);
        s.timeout = Duration::from_secs(20);
        s
    }

    /// A client built as the CLI builds it, with OPENAI_API_KEY set to a canary.
    fn client(&self) -> OpenAiClient {
        self.client_with(&self.settings())
    }

    fn client_with(&self, settings: &LlmSettings) -> OpenAiClient {
        OpenAiClient::with_env(settings, &|k| (k == "OPENAI_API_KEY").then(|| CANARY_KEY.to_string())).unwrap()
    }
}

async fn answer(State(state): State<Arc<FakeState>>, headers: HeaderMap, raw: String) -> impl IntoResponse {
    let authorization = headers.get("authorization").and_then(|v| v.to_str().ok()).map(str::to_string);
    let body: Value = serde_json::from_str(&raw).unwrap_or(Value::Null);
    state.seen.lock().unwrap().push(Seen { authorization, body, raw });
    let delay = *state.delay.lock().unwrap();
    if let Some(d) = delay {
        tokio::time::sleep(d).await;
    }
    let next = state.replies.lock().unwrap().pop_front();
    let (status, reply) = match next {
        Some(r) => r,
        None => match state.forever.lock().unwrap().clone() {
            Some(r) => (200, r),
            None => (400, json!({"error": {"message": "the fake server has no scripted reply left", "type": "test"}})),
        },
    };
    let status = StatusCode::from_u16(status).unwrap();
    match reply {
        Value::String(text) => (status, text).into_response(),
        v => (status, axum::Json(v)).into_response(),
    }
}

fn completion(message: Value, finish: &str, usage: (u64, u64)) -> Value {
    json!({
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "created": 1_700_000_000u64,
        "model": "test-model",
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        "usage": {"prompt_tokens": usage.0, "completion_tokens": usage.1, "total_tokens": usage.0 + usage.1},
    })
}

/// A model turn calling tools: (id, name, arguments text).
fn calls(list: &[(&str, &str, &str)], usage: (u64, u64)) -> (u16, Value) {
    let tool_calls: Vec<Value> = list
        .iter()
        .map(|(id, name, args)| json!({"id": id, "type": "function", "function": {"name": name, "arguments": args}}))
        .collect();
    (200, completion(json!({"role": "assistant", "content": null, "tool_calls": tool_calls}), "tool_calls", usage))
}

pub(crate) fn text(answer: &str, usage: (u64, u64)) -> (u16, Value) {
    (200, completion(json!({"role": "assistant", "content": answer}), "stop", usage))
}

struct Setup {
    executor: Executor,
    journal: tempfile::TempDir,
    approver: Arc<ScriptedApprover>,
}

fn setup(repo: &Path, registry: ToolRegistry, policy: Policy, answers: Vec<bool>) -> Setup {
    let journal = tempfile::tempdir().unwrap();
    let ctx = Ctx::new(repo, CtxOptions::default()); // no build cache
    let approver = Arc::new(ScriptedApprover::new(answers));
    let executor = Executor::new(
        Arc::new(registry),
        ctx,
        policy,
        approver.clone(),
        Some(Journal::at(&journal.path().join("journal.jsonl"))),
    );
    Setup { executor, journal, approver }
}

impl Setup {
    fn journal(&self) -> Vec<agentops::exec::Entry> {
        Journal::at(&self.journal.path().join("journal.jsonl")).read().unwrap()
    }
}

fn agent(name: &str, registry: &ToolRegistry) -> Agent {
    Agents::builtin(registry).unwrap().require(name).unwrap().clone()
}

async fn run_with(llm: &dyn LlmClient, s: &Setup, agent_name: &str, request: &str, settings: &LlmSettings) -> LlmRun {
    let a = agent(agent_name, s.executor.registry());
    plan_and_run(llm, &s.executor, &a, request, settings).await.unwrap()
}

/// Messages of one request the server saw, by role.
fn messages(seen: &Seen, role: &str) -> Vec<Value> {
    seen.body["messages"].as_array().unwrap().iter().filter(|m| m["role"] == role).cloned().collect()
}

fn assert_no_canary_key(fake: &Fake) {
    for s in fake.seen() {
        let auth = s.authorization.clone().unwrap_or_default();
        assert!(!auth.contains(CANARY_KEY), "OPENAI_API_KEY was sent to a non-OpenAI endpoint: {auth}");
    }
}

#[tokio::test]
async fn a_good_run_validates_and_answers() {
    let fake = Fake::start(vec![
        calls(&[("call_1", "validate", r#"{"env": ["dev"]}"#)], (120, 15)),
        text("dev is valid: 0 errors.", (200, 9)),
    ])
    .await;
    let s = setup(&fixture("clean"), ToolRegistry::builtin(), Policy::default(), vec![]);
    let run = run_with(&fake.client(), &s, "planner", "validate dev", &fake.settings()).await;

    assert_eq!(run.answer.as_deref(), Some("dev is valid: 0 errors."));
    assert_eq!(run.stopped, None);
    assert_eq!(run.turns, 2);
    assert_eq!(run.usage, Usage::new(320, 24), "usage is totalled over requests");
    assert_eq!(run.plan.steps.len(), 1);
    assert_eq!(run.plan.steps[0].tool, "validate");
    assert_eq!(run.plan.steps[0].args, json!({"env": ["dev"]}));
    assert_eq!(run.results[0].decision, Decision::Auto);
    assert!(run.results[0].ok, "{:?}", run.results[0].error);
    assert_eq!(run.results[0].output.as_ref().unwrap()["summary"]["errors"], 0);

    let seen = fake.seen();
    assert_eq!(seen.len(), 2);
    let first = &seen[0].body;
    assert_eq!(first["model"], "test-model");
    let system = messages(&seen[0], "system")[0]["content"].as_str().unwrap().to_string();
    assert!(
        system.contains("- web: dev, prod") && system.contains("Environments, in promotion order: dev, prod"),
        "{system}"
    );
    assert_eq!(messages(&seen[0], "user")[0]["content"], "validate dev");
    // the planner sees every tool, as strict function schemas
    let tools = first["tools"].as_array().unwrap();
    assert_eq!(tools.len(), ToolRegistry::builtin().list().len());
    let validate = tools.iter().find(|t| t["function"]["name"] == "validate").unwrap();
    assert_eq!(validate["type"], "function");
    let params = &validate["function"]["parameters"];
    assert_eq!(params["additionalProperties"], false);
    assert!(params.get("$schema").is_none() && params.get("title").is_none(), "{params}");
    assert!(!seen[0].raw.contains("\"$defs\""), "subschemas are inlined");
    // the second request carries the call and its result
    let assistant = &messages(&seen[1], "assistant")[0];
    assert_eq!(assistant["tool_calls"][0]["id"], "call_1");
    assert!(assistant.get("content").is_none_or(Value::is_null), "{assistant}");
    let tool = &messages(&seen[1], "tool")[0];
    assert_eq!(tool["tool_call_id"], "call_1");
    let result: Value = serde_json::from_str(tool["content"].as_str().unwrap()).unwrap();
    assert_eq!(result["summary"]["errors"], 0);
    assert_no_canary_key(&fake);

    // journaled through the executor, with the turn's tokens
    let journal = s.journal();
    assert_eq!(journal.len(), 1);
    assert_eq!(journal[0].tool, "validate");
    assert_eq!(journal[0].tokens, Some(135));
    assert_eq!(journal[0].request, "validate dev");
}

#[tokio::test]
async fn invalid_arguments_go_back_and_the_model_corrects_them() {
    let fake = Fake::start(vec![
        calls(&[("c1", "validate", r#"{"env": "dev", "colour": 1}"#)], (10, 5)),
        calls(&[("c2", "validate", r#"{"env": ["dev"]}"#)], (20, 5)),
        text("fixed", (30, 2)),
    ])
    .await;
    let s = setup(&fixture("clean"), ToolRegistry::builtin(), Policy::default(), vec![]);
    let run = run_with(&fake.client(), &s, "planner", "validate dev", &fake.settings()).await;
    assert_eq!(run.answer.as_deref(), Some("fixed"));
    assert_eq!(run.turns, 3);
    assert_eq!(run.plan.steps.len(), 1, "the invalid call never reached the executor");
    assert_eq!(run.plan.steps[0].args, json!({"env": ["dev"]}));
    assert_eq!(s.journal().len(), 1);
    let err = messages(&fake.seen()[1], "tool")[0]["content"].as_str().unwrap().to_string();
    assert!(err.starts_with("error: invalid arguments for validate"), "{err}");
    assert!(err.contains("/env") && err.contains("colour"), "{err}");
    assert!(err.len() < 600, "errors to the model are short: {err}");
}

#[tokio::test]
async fn unknown_tools_bad_json_and_tools_outside_the_agent_are_refused() {
    let fake = Fake::start(vec![
        calls(
            &[
                ("c1", "delete_cluster", "{}"),
                ("c2", "validate", r#"{"env": ["dev"]"#),
                ("c3", "cluster_query", r#"{"kind": "Pod"}"#),
                ("c4", "validate", "[1]"),
            ],
            (10, 5),
        ),
        text("I cannot do that.", (10, 2)),
    ])
    .await;
    let s = setup(&fixture("clean"), ToolRegistry::builtin(), Policy::default(), vec![]);
    let run = run_with(&fake.client(), &s, "validator", "delete the cluster", &fake.settings()).await;
    assert!(run.plan.steps.is_empty() && run.results.is_empty());
    assert!(s.journal().is_empty(), "nothing reached the executor");
    let seen = fake.seen();
    let tools: Vec<String> = seen[0].body["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["function"]["name"].as_str().unwrap().to_string())
        .collect();
    assert!(tools.contains(&"validate".to_string()) && !tools.contains(&"cluster_query".to_string()), "{tools:?}");
    let results: Vec<String> =
        messages(&seen[1], "tool").iter().map(|m| m["content"].as_str().unwrap().to_string()).collect();
    assert_eq!(results.len(), 4, "every call gets an answer");
    assert!(
        results[0].contains("unknown tool \"delete_cluster\"") && results[0].contains("validate"),
        "{}",
        results[0]
    );
    assert!(results[1].contains("not valid JSON"), "{}", results[1]);
    assert!(results[2].contains("not available to the validator agent"), "{}", results[2]);
    assert!(results[3].contains("JSON object"), "{}", results[3]);
}

#[tokio::test]
async fn paths_escaping_the_repo_never_run() {
    let fake = Fake::start(vec![
        calls(
            &[
                ("c1", "kustomize_build", r#"{"overlay": "../../etc/passwd"}"#),
                ("c2", "kustomize_build", r#"{"overlay": "/etc"}"#),
            ],
            (10, 5),
        ),
        text("ok", (10, 2)),
    ])
    .await;
    let s = setup(&fixture("clean"), ToolRegistry::builtin(), Policy::default(), vec![]);
    let run = run_with(&fake.client(), &s, "planner", "build /etc/passwd", &fake.settings()).await;
    assert!(run.plan.steps.is_empty(), "{:?}", run.plan);
    assert!(s.journal().is_empty());
    let results = messages(&fake.seen()[1], "tool");
    for r in &results {
        let t = r["content"].as_str().unwrap();
        assert!(t.starts_with("error: path") && t.contains("outside the repository"), "{t}");
    }
    assert!(results[0]["content"].as_str().unwrap().contains("../../etc/passwd"));
}

#[tokio::test]
async fn endless_repetition_is_stopped() {
    let fake = Fake::start(vec![]).await;
    fake.forever(calls(&[("c", "validate", r#"{"env": ["dev"]}"#)], (10, 1)).1);
    let s = setup(&fixture("clean"), ToolRegistry::builtin(), Policy::default(), vec![]);
    let run = run_with(&fake.client(), &s, "planner", "validate dev", &fake.settings()).await;
    assert_eq!(run.plan.steps.len(), 1, "the call ran once");
    assert_eq!(run.turns, 3, "refused once, stopped on the next repeat");
    let stopped = run.stopped.unwrap();
    assert!(stopped.contains("repeated an identical call") && stopped.contains("validate"), "{stopped}");
    assert!(run.answer.is_none());
    let warned = messages(&fake.seen()[2], "tool")[1]["content"].as_str().unwrap().to_string();
    assert!(warned.contains("already called"), "{warned}");
    assert_eq!(run.usage, Usage::new(30, 3));
}

#[tokio::test]
async fn the_turn_limit_holds() {
    let fake = Fake::start(vec![
        calls(&[("c1", "validate", r#"{"env": ["dev"]}"#)], (1, 1)),
        calls(&[("c2", "validate", r#"{"env": ["prod"]}"#)], (1, 1)),
        calls(&[("c3", "validate", r#"{"app": ["web"]}"#)], (1, 1)),
    ])
    .await;
    let mut settings = fake.settings();
    settings.max_turns = 2;
    let s = setup(&fixture("clean"), ToolRegistry::builtin(), Policy::default(), vec![]);
    let run = run_with(&fake.client_with(&settings), &s, "planner", "validate everything", &settings).await;
    assert_eq!((run.turns, fake.seen().len()), (2, 2));
    assert!(run.stopped.unwrap().contains("limit of 2 model turns"));
}

#[tokio::test]
async fn server_errors_are_retried_with_backoff() {
    let fake = Fake::start(vec![
        (500, Value::String("upstream exploded".into())),
        (503, json!({"error": {"message": "overloaded", "type": "server_error"}})),
        text("hello", (3, 1)),
    ])
    .await;
    let s = setup(&fixture("clean"), ToolRegistry::builtin(), Policy::default(), vec![]);
    let run = run_with(&fake.client(), &s, "planner", "say hello", &fake.settings()).await;
    assert_eq!(run.answer.as_deref(), Some("hello"));
    assert_eq!(fake.seen().len(), 3);
    assert_eq!(run.turns, 1, "retries are not turns");

    // when retries run out (3 after the first attempt), the error says what happened
    let fake = Fake::start(vec![(500, Value::String("down".into())); 5]).await;
    let a = agent("planner", s.executor.registry());
    let e = plan_and_run(&fake.client(), &s.executor, &a, "hi", &fake.settings()).await.unwrap_err().to_string();
    assert!(e.contains("500") && e.contains("down") && e.contains("after retries"), "{e}");
    assert_eq!(fake.seen().len(), 4, "retries do not multiply");
}

#[tokio::test]
async fn a_hanging_server_times_out_and_is_retried() {
    let fake = Fake::start(vec![text("late", (1, 1)), text("late", (1, 1))]).await;
    *fake.state.delay.lock().unwrap() = Some(Duration::from_secs(5));
    let mut settings = fake.settings();
    settings.timeout = Duration::from_millis(300);
    settings.retries = 1;
    let s = setup(&fixture("clean"), ToolRegistry::builtin(), Policy::default(), vec![]);
    let a = agent("planner", s.executor.registry());
    let e = plan_and_run(&fake.client_with(&settings), &s.executor, &a, "hi", &settings).await.unwrap_err().to_string();
    assert!(e.contains("did not answer in time") && e.contains("after 2 attempts"), "{e}");
    assert_eq!(fake.seen().len(), 2);
}

#[tokio::test]
async fn rate_limits_are_retried_and_client_errors_are_not() {
    let fake = Fake::start(vec![
        (429, json!({"error": {"message": "Rate limit reached", "type": "rate_limit_error", "code": "rate_limit_exceeded"}})),
        text("after the wait", (3, 1)),
    ])
    .await;
    let s = setup(&fixture("clean"), ToolRegistry::builtin(), Policy::default(), vec![]);
    let run = run_with(&fake.client(), &s, "planner", "hi", &fake.settings()).await;
    assert_eq!(run.answer.as_deref(), Some("after the wait"));
    assert_eq!(fake.seen().len(), 2);

    let fake =
        Fake::start(vec![(401, json!({"error": {"message": "Incorrect API key", "type": "invalid_request_error"}}))])
            .await;
    let a = agent("planner", s.executor.registry());
    let e = plan_and_run(&fake.client(), &s.executor, &a, "hi", &fake.settings()).await.unwrap_err().to_string();
    assert!(e.contains("401") && e.contains("api_key_env"), "{e}");
    assert_eq!(fake.seen().len(), 1, "a 401 is not retried");
}

#[tokio::test]
async fn a_server_that_omits_required_fields_gets_a_clear_error() {
    let mut reply = completion(json!({"role": "assistant", "content": "hi"}), "stop", (1, 1));
    reply.as_object_mut().unwrap().remove("created");
    let fake = Fake::start(vec![(200, reply)]).await;
    let s = setup(&fixture("clean"), ToolRegistry::builtin(), Policy::default(), vec![]);
    let a = agent("planner", s.executor.registry());
    let e = plan_and_run(&fake.client(), &s.executor, &a, "hi", &fake.settings()).await.unwrap_err().to_string();
    assert!(e.contains("created") && e.contains("OpenAI-compatible"), "{e}");
}

#[tokio::test]
async fn keys_go_only_where_they_belong() {
    let fake = Fake::start(vec![text("a", (1, 1)), text("b", (1, 1))]).await;
    let req = || agentops::llm::ChatRequest {
        model: "m".into(),
        messages: vec![agentops::llm::Message::user("hi")],
        tools: vec![],
        temperature: None,
        ..Default::default()
    };
    // OPENAI_API_KEY is set, but this is not the OpenAI endpoint: no key
    fake.client().complete(req()).await.unwrap();
    // the config names the variable holding this endpoint's key
    let mut settings = fake.settings();
    settings.api_key_env = Some("LOCAL_LLM_KEY".into());
    let env = |k: &str| match k {
        "OPENAI_API_KEY" => Some(CANARY_KEY.to_string()),
        "LOCAL_LLM_KEY" => Some("local-key-123".to_string()),
        _ => None,
    };
    OpenAiClient::with_env(&settings, &env).unwrap().complete(req()).await.unwrap();
    let seen = fake.seen();
    assert_no_canary_key(&fake);
    assert_eq!(seen[1].authorization.as_deref(), Some("Bearer local-key-123"));
}

/// The same rule with the real process environment: a child copy of this test binary runs
/// with OPENAI_API_KEY (and a wrong OPENAI_BASE_URL) set, so nothing here mutates our env.
#[test]
fn the_process_openai_key_is_not_sent_to_another_endpoint() {
    // /proc/self/exe still runs when a concurrent build has replaced the file on disk
    let proc_exe = Path::new("/proc/self/exe");
    let exe = if proc_exe.exists() { proc_exe.to_path_buf() } else { std::env::current_exe().unwrap() };
    let out = std::process::Command::new(exe)
        .args(["--exact", "suite::llm::child_process_env_key", "--nocapture", "--test-threads=1"])
        .env("AGENTOPS_LLM_TEST_CHILD", "1")
        .env("OPENAI_API_KEY", CANARY_KEY)
        .env("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
        .env("OPENAI_ORG_ID", "org-canary")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("1 passed"), "the child test ran: {stdout}");
}

/// The child half of the test above: does its work only when that test starts it (with the
/// environment it sets), so a normal run skips it.
#[tokio::test]
async fn child_process_env_key() {
    if std::env::var("AGENTOPS_LLM_TEST_CHILD").is_err() {
        return;
    }
    let fake = Fake::start(vec![text("a", (1, 1))]).await;
    let client = OpenAiClient::new(&fake.settings()).unwrap();
    let req = agentops::llm::ChatRequest {
        model: "m".into(),
        messages: vec![agentops::llm::Message::user("hi")],
        tools: vec![],
        temperature: None,
        ..Default::default()
    };
    client.complete(req).await.unwrap();
    let seen = fake.seen();
    assert_eq!(seen.len(), 1, "the settings' base URL wins over OPENAI_BASE_URL");
    assert_no_canary_key(&fake);
    assert!(seen[0].raw.len() > 10);
}

#[tokio::test]
async fn a_planted_secret_never_reaches_the_model() {
    const SECRET: &str = "planted-canary-7c1d9e4b";
    let repo = copy_fixture("clean");
    std::fs::write(
        repo.path().join("apps/web/base/secret.yaml"),
        format!(
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: web-token\n  labels:\n    app.kubernetes.io/name: web\n\
             stringData:\n  token: {SECRET}\n"
        ),
    )
    .unwrap();
    let k = repo.path().join("apps/web/base/kustomization.yaml");
    let text_k = std::fs::read_to_string(&k).unwrap();
    std::fs::write(&k, text_k.replace("resources:\n", "resources:\n  - secret.yaml\n")).unwrap();
    let fake = Fake::start(vec![
        calls(
            &[
                ("c1", "kustomize_build", r#"{"overlay": "apps/web/overlays/dev"}"#),
                ("c2", "repo_scan", r#"{"kind": "Secret"}"#),
            ],
            (10, 5),
        ),
        text("The web-token Secret has a token key.", (10, 5)),
    ])
    .await;
    let s = setup(repo.path(), ToolRegistry::builtin(), Policy::default(), vec![]);
    let request = format!("why does the token {SECRET} not work in dev?");
    let run = run_with(&fake.client(), &s, "planner", &request, &fake.settings()).await;
    assert_eq!(run.results.len(), 2);
    assert!(run.results.iter().all(|r| r.ok), "{:?}", run.results);
    let built = serde_json::to_string(&run.results[0].output).unwrap();
    assert!(built.contains("web-token"), "the Secret was rendered: {built}");
    let seen = fake.seen();
    assert_eq!(seen.len(), 2);
    for s in &seen {
        assert!(!s.raw.contains(SECRET), "a secret value was sent to the model: {}", s.raw);
        let b64 = base64_of(SECRET);
        assert!(!s.raw.contains(&b64), "an encoded secret value was sent to the model");
    }
    assert!(seen[1].raw.contains("web-token"), "the Secret's name is fine to send");
    assert!(messages(&seen[0], "user")[0]["content"].as_str().unwrap().contains("<redacted>"));
    assert!(!serde_json::to_string(&run).unwrap().contains(SECRET));
    for e in s.journal() {
        assert!(!serde_json::to_string(&e).unwrap().contains(SECRET));
    }
}

fn base64_of(s: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(s)
}

#[tokio::test]
async fn cassettes_record_then_replay_and_fail_on_a_miss() {
    let dir = tempfile::tempdir().unwrap();
    let fake = Fake::start(vec![
        calls(&[("call_1", "validate", r#"{"env": ["prod"]}"#)], (50, 5)),
        text("prod is valid.", (60, 4)),
    ])
    .await;
    let s = setup(&fixture("clean"), ToolRegistry::builtin(), Policy::default(), vec![]);
    let recorder = CassetteLlm::record(dir.path(), Box::new(fake.client()));
    let recorded = run_with(&recorder, &s, "planner", "validate prod", &fake.settings()).await;
    assert_eq!(recorded.answer.as_deref(), Some("prod is valid."));
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2, "one file per exchange");
    for f in std::fs::read_dir(dir.path()).unwrap() {
        let text = std::fs::read_to_string(f.unwrap().path()).unwrap();
        let v: Value = serde_json::from_str(&text).unwrap();
        assert!(v["key"].is_string() && v["request"]["messages"].is_array() && v["response"]["message"].is_object());
        assert!(!text.contains(CANARY_KEY));
    }

    // replay: same plan and answer, and the server is not asked again
    let s2 = setup(&fixture("clean"), ToolRegistry::builtin(), Policy::default(), vec![]);
    let replay = CassetteLlm::replay(dir.path());
    let replayed = run_with(&replay, &s2, "planner", "validate prod", &fake.settings()).await;
    assert_eq!(replayed.plan, recorded.plan);
    assert_eq!(replayed.answer, recorded.answer);
    assert_eq!(replayed.usage, Usage::new(110, 9));
    assert_eq!(fake.seen().len(), 2);

    // a request that was never recorded fails with what to do
    let a = agent("planner", s2.executor.registry());
    let e = plan_and_run(&replay, &s2.executor, &a, "validate dev", &fake.settings()).await.unwrap_err().to_string();
    assert!(e.contains("no recorded model answer") && e.contains("AGENTOPS_LLM_RECORD=1"), "{e}");
}

/// A tool that writes to the repo, to see approval decisions flow through the loop.
struct WriteNote;

#[derive(serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct WriteNoteArgs {
    /// Repo-relative file.
    path: String,
    text: String,
}

impl Tool for WriteNote {
    type Args = WriteNoteArgs;
    type Output = Value;
    fn name(&self) -> &'static str {
        "write_note"
    }
    fn description(&self) -> &'static str {
        "Write a note file in the repo."
    }
    fn effect(&self) -> Effect {
        Effect::WritesRepo
    }
    async fn call(&self, ctx: &Ctx, args: WriteNoteArgs) -> Result<Value, ToolError> {
        let p = ctx.repo_root().join(&args.path);
        std::fs::write(&p, &args.text).map_err(|e| ToolError::new(e.to_string()))?;
        Ok(json!({"written": args.path}))
    }
}

#[tokio::test]
async fn writes_wait_for_approval_and_read_only_agents_cannot_write() {
    let repo = copy_fixture("clean");
    let fake = Fake::start(vec![
        calls(&[("c1", "write_note", r#"{"path": "a.txt", "text": "one"}"#)], (1, 1)),
        calls(&[("c2", "write_note", r#"{"path": "a.txt", "text": "two"}"#)], (1, 1)),
        text("written", (1, 1)),
    ])
    .await;
    let mut registry = ToolRegistry::builtin();
    registry.register(WriteNote);
    let s = setup(repo.path(), registry, Policy::default(), vec![false, true]);
    let run = run_with(&fake.client(), &s, "planner", "write a note", &fake.settings()).await;
    assert_eq!(s.approver.asked(), vec!["write_note", "write_note"]);
    let decisions: Vec<Decision> = run.results.iter().map(|r| r.decision.clone()).collect();
    assert_eq!(decisions, vec![Decision::Denied, Decision::Approved]);
    assert_eq!(std::fs::read_to_string(repo.path().join("a.txt")).unwrap(), "two");
    let denied = messages(&fake.seen()[1], "tool")[0]["content"].as_str().unwrap().to_string();
    assert!(denied.starts_with("not run:") && denied.contains("not approved"), "{denied}");

    // a read-only agent (defined in the repo) may list a writing tool, but never runs it
    let agents_dir = repo.path().join(".agentops/agents");
    std::fs::create_dir_all(&agents_dir).unwrap();
    std::fs::write(
        agents_dir.join("noter.md"),
        "---\nname: noter\ndescription: notes\ntools: [write_note, validate]\nprompt: prompts/planner.md.hbs\n\
         approval: read-only\n---\nTakes notes.\n",
    )
    .unwrap();
    let fake = Fake::start(vec![
        calls(&[("c1", "write_note", r#"{"path": "b.txt", "text": "x"}"#)], (1, 1)),
        text("no", (1, 1)),
    ])
    .await;
    let mut registry = ToolRegistry::builtin();
    registry.register(WriteNote);
    let s = setup(repo.path(), registry, Policy { yes: true, ..Policy::default() }, vec![true]);
    let noter = Agents::load(Some(repo.path()), s.executor.registry()).unwrap().require("noter").unwrap().clone();
    let run = plan_and_run(&fake.client(), &s.executor, &noter, "write a note", &fake.settings()).await.unwrap();
    assert!(run.plan.steps.is_empty() && s.approver.asked().is_empty() && s.journal().is_empty());
    assert!(!repo.path().join("b.txt").exists());
    let refused = messages(&fake.seen()[1], "tool")[0]["content"].as_str().unwrap().to_string();
    assert!(refused.contains("noter agent is read-only"), "{refused}");
}

/// `agentops ask --planner llm` end to end: the binary talks to the fake server, the model's
/// validate call runs through the executor, and the answer comes back in the JSON.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ask_with_the_llm_planner_runs_the_models_calls() {
    let fake = Fake::start(vec![
        calls(&[("c1", "validate", r#"{"env": ["dev"]}"#)], (100, 10)),
        text("dev validates cleanly.", (150, 8)),
    ])
    .await;
    let repo = copy_fixture("clean");
    let (root, url) = (repo.path().to_str().unwrap().to_string(), fake.base_url.clone());
    let r = ask_with_llm(&[], "is dev in good shape?", &root, &url).await;
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["plan"][0]["tool"], "validate");
    assert_eq!(v["plan"][0]["args"], json!({"env": ["dev"]}));
    assert_eq!(v["results"][0]["ok"], true);
    assert_eq!(fake.seen().len(), 2);
    assert!(
        fake.seen()[0].authorization.as_deref().is_none_or(|a| !a.contains("sk-")),
        "no key is sent to a local endpoint"
    );
}

/// A model that plans with harmonize_plan and then applies with the same request, without
/// passing `expect`: the executor binds the fingerprint of the plan the model was shown, so
/// the write acts only on that plan (and the journal records it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_models_apply_is_bound_to_the_plan_it_was_shown() {
    let repo = copy_fixture("clean");
    git_init(repo.path());
    let request = r#"{"kind": "Ingress", "set_annotations": {"nginx.ingress.kubernetes.io/ssl-protocols": "TLSv1.3"}, "reason": "SEC-1"}"#;
    let apply = r#"{"kind": "Ingress", "set_annotations": {"nginx.ingress.kubernetes.io/ssl-protocols": "TLSv1.3"}, "reason": "SEC-1", "no_commit": true}"#;
    let fake = Fake::start(vec![
        calls(&[("c1", "harmonize_plan", request)], (10, 5)),
        calls(&[("c2", "harmonize_apply", apply)], (10, 5)),
        text("TLS 1.3 is set on every Ingress.", (10, 5)),
    ])
    .await;
    let s = setup(repo.path(), ToolRegistry::builtin(), Policy { yes: true, ..Policy::default() }, vec![]);
    let run = run_with(&fake.client(), &s, "harmonize", "TLS 1.3 on every ingress", &fake.settings()).await;
    assert_eq!(run.results.len(), 2, "{:?}", run.stopped);
    assert!(run.results[0].ok && run.results[1].ok, "{:?}", run.results[1].error);
    let shown = run.results[0].output.as_ref().unwrap()["fingerprint"].as_str().unwrap().to_string();
    assert_eq!(run.plan.steps[1].bind.len(), 1);
    assert_eq!(run.plan.steps[1].args["expect"], shown.as_str());
    let journal = s.journal();
    assert_eq!(journal[1].tool, "harmonize_apply");
    assert_eq!(journal[1].args["expect"], shown.as_str());
    assert!(run.results[1].output.as_ref().unwrap()["covered_after"].as_u64().unwrap() > 0);
}

/// `-v` logs each model request (model, tokens as reported, attempts), each turn (calls,
/// rejected proposals) and each executor step (tool, effect, decision, plan hash) on stderr;
/// stdout stays the JSON result.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verbose_logs_model_turns_rejections_and_steps() {
    let fake = Fake::start(vec![
        calls(&[("c1", "delete_cluster", "{}"), ("c2", "validate", r#"{"env": ["dev"]}"#)], (100, 10)),
        text("dev validates cleanly.", (150, 8)),
    ])
    .await;
    let repo = copy_fixture("clean");
    let (root, url) = (repo.path().to_str().unwrap().to_string(), fake.base_url.clone());
    let r = ask_with_llm(&["-v"], "is dev in good shape?", &root, &url).await;
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let v: Value = serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("{e}: {}", r.stdout));
    assert_eq!(v["plan"][0]["tool"], "validate");
    let line = |what: &str| -> String {
        r.stderr.lines().find(|l| l.contains(what)).unwrap_or_else(|| panic!("no {what:?} in {}", r.stderr)).to_string()
    };
    let request = line("model request");
    assert!(request.contains("model=test-model") && request.contains("attempts=1"), "{request}");
    assert!(request.contains("prompt_tokens=100") && request.contains("completion_tokens=10"), "{request}");
    let rejected = line("model proposal rejected");
    assert!(rejected.contains("tool=delete_cluster") && rejected.contains("turn=1"), "{rejected}");
    let turn = line("llm turn");
    assert!(turn.contains("turn=1") && turn.contains("calls=2") && turn.contains("invalid_calls=1"), "{turn}");
    let step = line("executor step");
    assert!(step.contains("tool=validate") && step.contains("effect=ReadOnly") && step.contains("decision=auto"));
    assert!(step.contains("plan_hash=") && step.contains("duration_ms="), "{step}");
}

/// `agentops [flags] ask REQUEST --planner llm` against the fake server at `url`, JSON out.
pub(super) async fn ask_with_llm(flags: &[&str], request: &str, root: &str, url: &str) -> Run {
    let mut args: Vec<String> = flags.iter().map(|f| f.to_string()).collect();
    for a in ["ask", request, "--repo", root, "--planner", "llm", "--llm-base-url", url, "--model", "test-model"] {
        args.push(a.to_string());
    }
    args.extend(["--format", "json", "--no-cache"].map(String::from));
    agentops_async(args, Vec::new()).await
}
