//! The LLM planner against a real model: llama.cpp's llama-server with SmolLM2-135M-Instruct,
//! both installed by scripts/setup-llm into .tools (scripts/test and .ci/run install them).
//! A recording proxy sits between agentops and the server, so every request body is seen.
//! It proves the plumbing, not the model's judgement (a 135M model chooses badly): a request
//! goes out within the budget, the answer comes back through async-openai, each call is
//! parsed or refused with a clear message, no write runs without approval, the planted
//! secret is never in a request, a model that rambles or loops is cut off by the limits, and
//! a request the model cannot hold is reported as such.
//!
//! Without the server the test says so and passes; with `AGENTOPS_REQUIRE_LLAMA=1` (set by
//! scripts/test) a missing server fails it.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use agentops::agents::Agents;
use agentops::exec::{Decision, Executor, Journal, Policy, ScriptedApprover};
use agentops::llm::settings::Constrained;
use agentops::llm::{ChatRequest, LlmClient, LlmError, LlmSettings, Message, OpenAiClient};
use agentops::planner::llm::{LlmRun, plan_and_run};
use agentops::tools::ToolRegistry;
use agentops::workflows::{Ctx, CtxOptions};
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::post;
use serde_json::Value;

use super::common::*;

const SECRET: &str = "planted-canary-5e0b7a13";

struct Llama {
    server: PathBuf,
    model: PathBuf,
    template: PathBuf,
}

impl Llama {
    /// The installed server, model and template (environment overrides first).
    fn find() -> Option<Llama> {
        let tools = Path::new(env!("CARGO_MANIFEST_DIR")).join(".tools");
        let pick = |env: &str, default: PathBuf| std::env::var_os(env).map(PathBuf::from).unwrap_or(default);
        let l = Llama {
            server: pick("AGENTOPS_LLAMA_SERVER", tools.join("bin/llama-server")),
            model: pick("AGENTOPS_LLAMA_MODEL", tools.join("models/SmolLM2-135M-Instruct.Q4_1.gguf")),
            template: pick("AGENTOPS_LLAMA_TEMPLATE", tools.join("llama/templates/chatml-tools.jinja")),
        };
        (l.server.exists() && l.model.exists() && l.template.exists()).then_some(l)
    }

    /// Starts the server on a free port and waits until it is healthy.
    async fn start(&self) -> (tokio::process::Child, String) {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let log = std::fs::File::create(std::env::temp_dir().join(format!("agentops-llama-{port}.log"))).unwrap();
        let child = tokio::process::Command::new(&self.server)
            .arg("-m")
            .arg(&self.model)
            .arg("--chat-template-file")
            .arg(&self.template)
            // one thread: ggml's threads spin while they wait, and under a busy test run two of them
            // crawl (2 tokens/s against 20–35 with one, measured on 2 loaded cores)
            .args(["--jinja", "-c", "8192", "-np", "1", "-t", "1", "--host", "127.0.0.1", "--port"])
            .arg(port.to_string())
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let url = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        for _ in 0..600 {
            if let Ok(r) = http.get(format!("{url}/health")).send().await
                && r.status().is_success()
            {
                return (child, url);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        panic!("llama-server did not become healthy within 120 s (log in the temp dir)");
    }
}

/// What went through the proxy: each request body as sent, and the server's answer.
#[derive(Clone, Default)]
struct Recorded(Arc<Mutex<Vec<(String, u16, String)>>>);

#[derive(Clone)]
struct ProxyState {
    upstream: String,
    http: reqwest::Client,
    seen: Recorded,
}

async fn forward(State(s): State<ProxyState>, body: String) -> impl IntoResponse {
    let r = s
        .http
        .post(format!("{}/v1/chat/completions", s.upstream))
        .header("content-type", "application/json")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap_or_default();
    s.seen.0.lock().unwrap().push((body, status, text.clone()));
    (StatusCode::from_u16(status).unwrap(), [("content-type", "application/json")], text)
}

async fn proxy(upstream: &str) -> (String, Recorded) {
    let seen = Recorded::default();
    let state = ProxyState { upstream: upstream.to_string(), http: reqwest::Client::new(), seen: seen.clone() };
    let app = Router::new().route("/v1/chat/completions", post(forward)).with_state(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/v1"), seen)
}

impl Recorded {
    fn bodies(&self) -> Vec<Value> {
        self.0.lock().unwrap().iter().map(|(b, _, _)| serde_json::from_str(b).unwrap()).collect()
    }
    fn raw(&self) -> Vec<String> {
        self.0.lock().unwrap().iter().map(|(b, _, _)| b.clone()).collect()
    }
    /// What the model wrote in each answer (for the test's output).
    fn answers(&self) -> Vec<String> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .map(|(_, _, t)| {
                let v: Value = serde_json::from_str(t).unwrap_or(Value::Null);
                let m = &v["choices"][0]["message"];
                let text = m["content"].as_str().map(str::to_string).unwrap_or_else(|| m["tool_calls"].to_string());
                text.chars().take(400).collect()
            })
            .collect()
    }
    fn clear(&self) {
        self.0.lock().unwrap().clear();
    }
}

fn settings(base_url: &str, mode: Constrained, max_turns: usize, max_output_tokens: u32) -> LlmSettings {
    let mut s = LlmSettings::new(base_url, "smollm2-135m");
    s.constrained = mode;
    s.max_turns = max_turns;
    s.max_output_tokens = max_output_tokens;
    s.temperature = Some(0.0);
    // a loaded 2-core machine reads prompts slowly
    s.timeout = Duration::from_secs(900);
    s.retries = 0;
    s
}

fn executor(repo: &Path, answers: Vec<bool>) -> (Executor, Arc<ScriptedApprover>) {
    let approver = Arc::new(ScriptedApprover::new(answers));
    let exec = Executor::new(
        Arc::new(ToolRegistry::builtin()),
        Ctx::new(repo, CtxOptions::default()),
        Policy::default(),
        approver.clone(),
        Some(Journal::for_repo(repo)),
    );
    (exec, approver)
}

/// The messages that answered the model's previous turn: each must say what happened.
fn replies_after_last_assistant(body: &Value) -> Vec<String> {
    let msgs = body["messages"].as_array().unwrap();
    let last = msgs.iter().rposition(|m| m["role"] == "assistant").unwrap();
    msgs[last + 1..].iter().map(|m| m["content"].as_str().unwrap_or_default().to_string()).collect()
}

fn tree(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out: Vec<(PathBuf, Vec<u8>)> = walkdir::WalkDir::new(dir)
        .into_iter()
        .filter_entry(|e| e.file_name() != ".agentops" && e.file_name() != ".git")
        .flatten()
        .filter(|e| e.file_type().is_file())
        .map(|e| (e.path().strip_prefix(dir).unwrap().to_path_buf(), std::fs::read(e.path()).unwrap()))
        .collect();
    out.sort();
    out
}

fn report(name: &str, run: &LlmRun) {
    println!(
        "{name}: {} turns, steps {:?}, invalid calls {}, stopped {:?}, answer {:?}",
        run.turns,
        run.plan.steps.iter().map(|s| s.tool.as_str()).collect::<Vec<_>>(),
        run.invalid_calls,
        run.stopped,
        run.answer
    );
    for t in &run.turn_log {
        println!(
            "  turn {}: {} prompt + {} completion tokens (catalog ≈{}), {} calls, {} invalid, {:?}, {} ms",
            t.turn,
            t.prompt_tokens,
            t.completion_tokens,
            t.catalog_tokens,
            t.calls,
            t.invalid_calls,
            t.finish_reason,
            t.duration_ms
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_model_behind_the_planner() {
    let Some(llama) = Llama::find() else {
        let msg = "llama-server or the SmolLM2 model is not installed in .tools: run scripts/setup-llm";
        assert!(std::env::var("AGENTOPS_REQUIRE_LLAMA").is_err(), "AGENTOPS_REQUIRE_LLAMA is set, but {msg}");
        println!("SKIPPED a_real_model_behind_the_planner: {msg}");
        eprintln!("SKIPPED a_real_model_behind_the_planner: {msg}");
        return;
    };
    let (_server, upstream) = llama.start().await;
    let (base_url, seen) = proxy(&upstream).await;

    // 1. json_schema mode, the validator agent, a repo holding a planted secret that the
    //    request repeats
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
    let text = std::fs::read_to_string(&k).unwrap();
    std::fs::write(&k, text.replace("resources:\n", "resources:\n  - secret.yaml\n")).unwrap();
    let (exec, _) = executor(repo.path(), vec![]);
    let agents = Agents::builtin(exec.registry()).unwrap();
    let s = settings(&base_url, Constrained::JsonSchema, 3, 160);
    let client = OpenAiClient::with_key(&s, "").unwrap();
    let validator = agents.require("validator").unwrap();
    let request = format!("validate dev: the token {SECRET} does not work there");
    let run = plan_and_run(&client, &exec, validator, &request, &s).await.unwrap();
    report("json_schema validator", &run);
    println!("  answers: {:#?}", seen.answers());
    let bodies = seen.bodies();
    assert!(run.turns >= 1 && run.turns <= 3, "the turn limit holds: {}", run.turns);
    assert_eq!(bodies.len(), run.turns, "one request per turn");
    let first = &run.turn_log[0];
    assert!(first.catalog_tokens <= 3000, "budget (estimate): {}", first.catalog_tokens);
    assert!(
        first.prompt_tokens > 0 && first.prompt_tokens <= 3000,
        "budget (the server's count): {}",
        first.prompt_tokens
    );
    assert!(first.completion_tokens > 0 && first.finish_reason.is_some(), "the answer came back: {first:?}");
    assert_eq!(bodies[0]["response_format"]["type"], "json_schema");
    assert_eq!(bodies[0]["max_tokens"], 160);
    for (i, b) in bodies.iter().enumerate().skip(1) {
        for reply in replies_after_last_assistant(b) {
            assert!(
                reply.starts_with("Result of ") || (reply.starts_with("error: ") && reply.len() > 20),
                "turn {i}: every call is run or refused with a reason: {reply}"
            );
        }
    }
    let calls: usize = run.turn_log.iter().map(|t| t.calls).sum();
    assert!(run.plan.steps.len() + run.invalid_calls <= calls, "{calls} calls");
    assert_eq!(run.turn_log.len(), Journal::for_repo(repo.path()).turns().unwrap().len(), "every turn journaled");
    let b64 = {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(SECRET)
    };
    for raw in seen.raw() {
        assert!(!raw.contains(SECRET) && !raw.contains(&b64), "the secret reached the model: {raw}");
    }
    assert!(seen.raw()[0].contains("<redacted>"), "the request's copy of the secret was redacted");

    // 2. no write without approval: an agent whose only tool writes; every write is denied
    seen.clear();
    let repo = copy_fixture("clean");
    let before = tree(repo.path());
    let (exec, approver) = executor(repo.path(), vec![false; 4]);
    let writer = agents.require("migrate-writer").unwrap();
    let s = settings(&base_url, Constrained::JsonSchema, 2, 200);
    let run =
        plan_and_run(&client, &exec, writer, "Write the file docs/notes.md with the text hello.", &s).await.unwrap();
    report("json_schema migrate-writer (writes denied)", &run);
    assert_eq!(tree(repo.path()), before, "nothing was written");
    for r in &run.results {
        assert_eq!(r.decision, Decision::Denied, "a write ran without approval: {r:?}");
    }
    assert_eq!(approver.asked().len(), run.results.len(), "each proposed write was put to the person");
    let first = &seen.bodies()[0];
    let branches = first["response_format"]["json_schema"]["schema"]["properties"]["step"]["anyOf"].as_array().unwrap();
    assert_eq!(branches.len(), 1, "the first answer can only be a write_doc call");
    println!("  approvals asked: {}", approver.asked().len());

    // 3. a model that rambles is cut at the output limit, and the turns are bounded
    seen.clear();
    let (exec, _) = executor(copy_fixture("clean").path(), vec![]);
    let s = settings(&base_url, Constrained::JsonSchema, 2, 12);
    let run =
        plan_and_run(&client, &exec, validator, "validate every environment and explain at length", &s).await.unwrap();
    report("json_schema, 12 output tokens", &run);
    assert!(run.turns <= 2);
    assert!(run.turn_log.iter().all(|t| t.completion_tokens <= 12), "{:?}", run.turn_log);
    assert_eq!(run.turn_log[0].finish_reason.as_deref(), Some("length"), "cut at the limit");
    assert_eq!(run.turn_log[0].invalid_calls, 1, "a cut answer is an invalid call");
    if run.turns == 2 {
        let told = replies_after_last_assistant(&seen.bodies()[1]).join("\n");
        assert!(told.contains("cut at the output limit of 12 tokens"), "{told}");
    }

    // 4. plain tool calling (llama.cpp's tools template): the compact schemas are accepted
    //    and whatever the model does comes back as a call or an answer
    seen.clear();
    let (exec, _) = executor(copy_fixture("clean").path(), vec![]);
    let s = settings(&base_url, Constrained::Off, 1, 64);
    let run = plan_and_run(&client, &exec, validator, "validate dev", &s).await.unwrap();
    report("tools (off)", &run);
    let body = &seen.bodies()[0];
    assert_eq!(body["tools"].as_array().unwrap().len(), validator.tools.len());
    assert!(run.turn_log[0].prompt_tokens <= 3000, "{:?}", run.turn_log[0]);
    assert!(run.turns == 1 && (run.answer.is_some() || run.turn_log[0].calls > 0 || run.stopped.is_some()));

    // 5. a request the model cannot hold: the error says how big it was and what it holds
    let huge = ChatRequest {
        model: "smollm2-135m".into(),
        messages: vec![Message::user("validate the repo ".repeat(3000))],
        max_output_tokens: Some(8),
        ..Default::default()
    };
    let e = client.complete(huge).await.unwrap_err();
    assert!(matches!(e, LlmError::ContextOverflow(_)), "{e}");
    let e = e.to_string();
    assert!(e.contains("tokens and the model holds 8192") && e.contains("llama-server -c"), "{e}");
    println!("overflow: {e}");
}
