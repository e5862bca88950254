//! The MCP server: the real binary spoken to by hand over stdio (newline-delimited JSON-RPC),
//! and the library server with a write tool, directly and over an in-process pipe.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, channel};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};

use super::common::*;
use agentops::exec::Journal;
use agentops::mcp::McpServer;
use agentops::tools::{Effect, Tool, ToolError, ToolRegistry};
use agentops::workflows::{Ctx, CtxOptions};

const TIMEOUT: Duration = Duration::from_secs(60);

fn initialize(id: u64) -> Value {
    json!({
        "jsonrpc": "2.0",
        "id": id,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "agentops-test", "version": "0.0.1"}
        }
    })
}

fn initialized() -> Value {
    json!({"jsonrpc": "2.0", "method": "notifications/initialized"})
}

fn list_tools(id: u64) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/list"})
}

fn call_tool(id: u64, name: &str, arguments: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {"name": name, "arguments": arguments}})
}

/// The text of a tools/call result's single text content.
fn text_of(result: &Value) -> &str {
    assert_eq!(result["content"][0]["type"], "text", "{result}");
    result["content"][0]["text"].as_str().unwrap()
}

/// `agentops mcp` as a child process; every stdout line is collected by a thread.
struct McpProcess {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    /// Every line the server wrote to stdout, in order.
    seen: Vec<String>,
}

impl McpProcess {
    fn spawn(args: &[&str]) -> McpProcess {
        McpProcess::spawn_env(args, &[])
    }

    fn spawn_env(args: &[&str], env: &[(&str, &str)]) -> McpProcess {
        let mut child = Command::new(env!("CARGO_BIN_EXE_agentops"))
            .arg("mcp")
            .args(args)
            .env("NO_COLOR", "1")
            .env_remove("AGENTOPS_CACHE_DIR")
            .env_remove("RUST_LOG")
            .envs(env.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stdin = child.stdin.take();
        McpProcess { child, stdin, lines: rx, seen: Vec::new() }
    }

    fn send(&mut self, msg: &Value) {
        let stdin = self.stdin.as_mut().unwrap();
        writeln!(stdin, "{msg}").unwrap();
        stdin.flush().unwrap();
    }

    /// Reads lines until the response to `id`; every line must be a JSON-RPC message.
    fn response(&mut self, id: u64) -> Value {
        loop {
            let line = self.lines.recv_timeout(TIMEOUT).expect("no answer from agentops mcp");
            self.seen.push(line.clone());
            let msg: Value =
                serde_json::from_str(&line).unwrap_or_else(|e| panic!("stdout line is not JSON ({e}): {line}"));
            assert_eq!(msg["jsonrpc"], "2.0", "{line}");
            if msg["id"] == json!(id) {
                return msg;
            }
        }
    }

    fn request(&mut self, msg: Value) -> Value {
        let id = msg["id"].as_u64().unwrap();
        self.send(&msg);
        self.response(id)
    }

    /// Closes stdin, waits for the exit; returns (exit code, every stdout line, stderr).
    fn finish(mut self) -> (i32, Vec<String>, String) {
        drop(self.stdin.take());
        while let Ok(line) = self.lines.recv_timeout(TIMEOUT) {
            self.seen.push(line);
        }
        let out = self.child.wait_with_output().unwrap();
        (out.status.code().unwrap_or(-1), self.seen, String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

#[test]
fn stdio_handshake_list_and_calls() {
    let repo = copy_fixture("clean");
    let mut s = McpProcess::spawn(&["--repo", repo.path().to_str().unwrap(), "--no-cache"]);

    let init = s.request(initialize(1));
    let result = &init["result"];
    assert_eq!(result["protocolVersion"], "2025-06-18", "{init}");
    assert!(result["capabilities"]["tools"].is_object(), "{init}");
    assert_eq!(result["serverInfo"]["name"], "agentops");
    assert_eq!(result["serverInfo"]["version"], env!("CARGO_PKG_VERSION"));
    assert!(result["instructions"].as_str().unwrap().contains("GitOps"), "{init}");
    s.send(&initialized());

    // only read-only tools (today: all of them), each with the registry's schema
    let list = s.request(list_tools(2));
    let tools = list["result"]["tools"].as_array().unwrap();
    let registry = ToolRegistry::builtin();
    let read_only: Vec<&str> =
        registry.list().iter().filter(|t| t.effect == Effect::ReadOnly).map(|t| t.name).collect();
    let names: Vec<&str> = tools.iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(names, read_only);
    let validate = tools.iter().find(|t| t["name"] == "validate").unwrap();
    assert_eq!(validate["inputSchema"], registry.get("validate").unwrap().parameters);
    assert_eq!(validate["inputSchema"]["additionalProperties"], false);
    assert_eq!(validate["annotations"]["readOnlyHint"], true);
    assert!(validate["description"].as_str().unwrap().starts_with("Validate the GitOps repo"));

    // a real call returns the report as pretty JSON text
    let r = s.request(call_tool(3, "validate", json!({"env": ["dev"]})));
    let result = &r["result"];
    assert_eq!(result["isError"], false, "{r}");
    let text = text_of(result);
    assert!(text.contains("\n  \"summary\""), "pretty JSON: {text}");
    let report: Value = serde_json::from_str(text).unwrap();
    assert_eq!(report["summary"]["errors"], 0, "{report}");
    assert!(report["summary"]["overlays_built"].as_u64().unwrap() >= 1, "{report}");

    // unknown fields and wrong types are rejected before anything runs, as error results
    let r = s.request(call_tool(4, "validate", json!({"env": ["dev"], "bogus": 1})));
    assert_eq!(r["result"]["isError"], true, "{r}");
    assert!(text_of(&r["result"]).contains("bogus"), "{r}");
    let r = s.request(call_tool(5, "validate", json!({"env": "dev"})));
    assert_eq!(r["result"]["isError"], true, "{r}");
    assert!(text_of(&r["result"]).contains("/env"), "{r}");

    // a tool that does not exist is a protocol error naming the tools there are
    let r = s.request(call_tool(6, "nope", json!({})));
    assert_eq!(r["error"]["code"], -32602, "{r}");
    assert!(r["error"]["message"].as_str().unwrap().contains("validate"), "{r}");

    let (code, stdout, stderr) = s.finish();
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("read-only"), "the banner goes to stderr: {stderr}");
    // nothing but JSON-RPC on stdout: one response per request, no stray lines
    assert_eq!(stdout.len(), 6, "{stdout:#?}");
    for line in &stdout {
        let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("stdout line is not JSON ({e}): {line}"));
        assert_eq!(v["jsonrpc"], "2.0", "{line}");
    }

    // every call went through the executor's journal, arguments included
    let journal = Journal::for_repo(repo.path()).read().unwrap();
    let calls: Vec<(&str, bool)> = journal.iter().map(|e| (e.tool.as_str(), e.ok)).collect();
    assert_eq!(calls.len(), 3, "{journal:?}");
    assert!(calls.iter().all(|(t, _)| *t == "validate"));
    assert_eq!(calls.iter().filter(|(_, ok)| *ok).count(), 1);
    assert!(journal.iter().all(|e| e.approval == "auto" && e.request.contains("mcp")), "{journal:?}");
    assert!(journal.iter().any(|e| e.args == json!({"env": ["dev"], "bogus": 1})));
}

/// With `-vv` and `RUST_LOG=debug` (every crate, rmcp and tokio included) the logs go to
/// stderr and stdout carries JSON-RPC messages only.
#[test]
fn stdio_stays_protocol_only_with_debug_logging() {
    let repo = copy_fixture("clean");
    let mut s = McpProcess::spawn_env(
        &["-vv", "--repo", repo.path().to_str().unwrap(), "--no-cache"],
        &[("RUST_LOG", "debug")],
    );
    let init = s.request(initialize(1));
    assert_eq!(init["result"]["serverInfo"]["name"], "agentops", "{init}");
    s.send(&initialized());
    let r = s.request(call_tool(2, "validate", json!({"env": ["dev"]})));
    assert_eq!(r["result"]["isError"], false, "{r}");
    let r = s.request(call_tool(3, "validate", json!({"env": "dev"})));
    assert_eq!(r["result"]["isError"], true, "{r}");

    let (code, stdout, stderr) = s.finish();
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(stdout.len(), 3, "one response per request, nothing else: {stdout:#?}");
    for line in &stdout {
        let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("stdout line is not JSON ({e}): {line}"));
        assert_eq!(v["jsonrpc"], "2.0", "{line}");
        assert!(v["id"].is_u64() && (v.get("result").is_some() || v.get("error").is_some()), "{line}");
    }
    // the logs are there, on stderr
    let step = stderr.lines().find(|l| l.contains("executor step") && l.contains("tool=validate"));
    let step = step.unwrap_or_else(|| panic!("no executor step logged: {stderr}"));
    assert!(step.contains("effect=ReadOnly") && step.contains("decision=auto"), "{step}");
    assert!(step.contains("duration_ms="), "{step}");
    assert!(stderr.contains("tool arguments rejected by the schema") && stderr.contains("/env"), "{stderr}");
    assert!(stderr.lines().any(|l| l.contains("DEBUG") && l.contains("kustomize build")), "{stderr}");
    assert!(stderr.lines().any(|l| l.contains("DEBUG") && l.contains("tool call") && l.contains("tool=validate")));
}

#[test]
fn stdio_without_a_repo_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope");
    let r = agentops(&["mcp", "--repo", missing.to_str().unwrap()]);
    assert_eq!(r.code, 2);
    assert!(r.stdout.is_empty(), "{}", r.stdout);
    assert!(r.stderr.contains("--repo"), "{}", r.stderr);
}

// ---- the library server with a write tool ----

/// Writes `note.txt` in the repo.
struct WriteNote;

#[derive(serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct NoteArgs {
    /// What to write.
    text: String,
}

impl Tool for WriteNote {
    type Args = NoteArgs;
    type Output = Value;
    fn name(&self) -> &'static str {
        "write_note"
    }
    fn description(&self) -> &'static str {
        "Write note.txt in the repo."
    }
    fn effect(&self) -> Effect {
        Effect::WritesRepo
    }
    async fn call(&self, ctx: &Ctx, args: NoteArgs) -> Result<Value, ToolError> {
        std::fs::write(ctx.repo_root().join("note.txt"), &args.text).map_err(|e| ToolError::new(e.to_string()))?;
        Ok(json!({"written": "note.txt"}))
    }
}

/// Reads nothing, answers its argument.
struct Echo;

#[derive(serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct EchoArgs {
    /// What to answer.
    say: String,
}

impl Tool for Echo {
    type Args = EchoArgs;
    type Output = Value;
    fn name(&self) -> &'static str {
        "echo"
    }
    fn description(&self) -> &'static str {
        "Answer the argument."
    }
    fn effect(&self) -> Effect {
        Effect::ReadOnly
    }
    async fn call(&self, _ctx: &Ctx, args: EchoArgs) -> Result<Value, ToolError> {
        if args.say == "fail" {
            return Err(ToolError { public: "echo failed".into(), internal: Some("operator-only detail".into()) });
        }
        Ok(json!({"said": args.say}))
    }
}

fn server(repo: &Path, allow_writes: bool) -> McpServer {
    let mut r = ToolRegistry::empty();
    r.register(WriteNote);
    r.register(Echo);
    McpServer::new(Arc::new(r), Ctx::new(repo, CtxOptions::default()), allow_writes)
}

fn args(v: Value) -> Option<serde_json::Map<String, Value>> {
    v.as_object().cloned()
}

#[tokio::test]
async fn read_only_mode_hides_and_refuses_writes() {
    let repo = tempfile::tempdir().unwrap();
    let s = server(repo.path(), false);
    assert!(!s.allow_writes());
    let names: Vec<String> = s.tools().iter().map(|t| t.name.to_string()).collect();
    assert_eq!(names, vec!["echo"]);

    let r = s.call("write_note", args(json!({"text": "hi"}))).await.unwrap();
    assert_eq!(r.is_error, Some(true));
    let text = serde_json::to_value(&r).unwrap()["content"][0]["text"].as_str().unwrap().to_string();
    assert!(text.contains("read-only") && text.contains("--allow-writes") && text.contains("WritesRepo"), "{text}");
    assert!(!repo.path().join("note.txt").exists(), "a refused write must not run");

    let r = s.call("echo", args(json!({"say": "hello"}))).await.unwrap();
    assert_eq!(r.is_error, Some(false));

    let journal = Journal::for_repo(repo.path()).read().unwrap();
    let decided: Vec<(&str, &str, bool)> =
        journal.iter().map(|e| (e.tool.as_str(), e.approval.as_str(), e.ok)).collect();
    assert_eq!(decided, vec![("write_note", "refused", false), ("echo", "auto", true)]);
    assert_eq!(journal[0].effect, "WritesRepo");
}

#[tokio::test]
async fn allow_writes_lists_and_runs_writes_as_client_approved() {
    let repo = tempfile::tempdir().unwrap();
    let s = server(repo.path(), true);
    let tools = s.tools();
    let names: Vec<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
    assert_eq!(names, vec!["echo", "write_note"]);
    let write = serde_json::to_value(&tools[1]).unwrap();
    assert_eq!(write["annotations"]["readOnlyHint"], false);
    assert_eq!(write["annotations"]["destructiveHint"], false);
    assert_eq!(write["inputSchema"]["additionalProperties"], false);
    assert_eq!(write["inputSchema"]["properties"]["text"]["description"], "What to write.");

    let r = s.call("write_note", args(json!({"text": "hi"}))).await.unwrap();
    assert_eq!(r.is_error, Some(false), "{r:?}");
    assert_eq!(std::fs::read_to_string(repo.path().join("note.txt")).unwrap(), "hi");

    // arguments are still checked, and only the public part of an error goes out
    let r = s.call("write_note", args(json!({"text": "x", "path": "/etc/passwd"}))).await.unwrap();
    assert_eq!(r.is_error, Some(true));
    assert_eq!(std::fs::read_to_string(repo.path().join("note.txt")).unwrap(), "hi");
    let r = s.call("echo", args(json!({"say": "fail"}))).await.unwrap();
    let v = serde_json::to_value(&r).unwrap();
    assert_eq!(v["content"][0]["text"], "echo failed");
    assert!(!v.to_string().contains("operator-only"), "{v}");
    // missing arguments are an empty object, which the schema then rejects
    let r = s.call("echo", None).await.unwrap();
    assert_eq!(r.is_error, Some(true));
    assert!(s.call("nope", None).await.is_err());

    let journal = Journal::for_repo(repo.path()).read().unwrap();
    let decided: Vec<(&str, &str, bool)> =
        journal.iter().map(|e| (e.tool.as_str(), e.approval.as_str(), e.ok)).collect();
    assert_eq!(
        decided,
        vec![
            ("write_note", "approved", true),
            ("write_note", "approved", false),
            ("echo", "auto", false),
            ("echo", "auto", false)
        ]
    );
}

/// The server over an in-process pipe, spoken to with the same newline-delimited JSON.
struct Pipe {
    write: tokio::io::WriteHalf<tokio::io::DuplexStream>,
    lines: tokio::io::Lines<tokio::io::BufReader<tokio::io::ReadHalf<tokio::io::DuplexStream>>>,
}

impl Pipe {
    fn start(server: McpServer) -> (Pipe, tokio::task::JoinHandle<Result<(), agentops::Error>>) {
        let (client, served) = tokio::io::duplex(64 * 1024);
        let (sr, sw) = tokio::io::split(served);
        let handle = tokio::spawn(server.serve(sr, sw));
        let (cr, cw) = tokio::io::split(client);
        (Pipe { write: cw, lines: tokio::io::BufReader::new(cr).lines() }, handle)
    }

    async fn send(&mut self, msg: &Value) {
        self.write.write_all(format!("{msg}\n").as_bytes()).await.unwrap();
        self.write.flush().await.unwrap();
    }

    async fn request(&mut self, msg: Value) -> Value {
        let id = msg["id"].clone();
        self.send(&msg).await;
        loop {
            let line = tokio::time::timeout(TIMEOUT, self.lines.next_line()).await.unwrap().unwrap().unwrap();
            let v: Value = serde_json::from_str(&line).unwrap();
            if v["id"] == id {
                return v;
            }
        }
    }
}

#[tokio::test]
async fn the_protocol_carries_writes_only_when_allowed() {
    for allow_writes in [false, true] {
        let repo = tempfile::tempdir().unwrap();
        let (mut p, handle) = Pipe::start(server(repo.path(), allow_writes));
        let init = p.request(initialize(1)).await;
        assert_eq!(init["result"]["serverInfo"]["name"], "agentops", "{init}");
        p.send(&initialized()).await;

        let list = p.request(list_tools(2)).await;
        let names: Vec<&str> =
            list["result"]["tools"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
        let expected = if allow_writes { vec!["echo", "write_note"] } else { vec!["echo"] };
        assert_eq!(names, expected);

        let r = p.request(call_tool(3, "write_note", json!({"text": "hi"}))).await;
        assert_eq!(r["result"]["isError"], !allow_writes, "{r}");
        assert_eq!(repo.path().join("note.txt").exists(), allow_writes);
        if !allow_writes {
            assert!(text_of(&r["result"]).contains("read-only"), "{r}");
        }

        let r = p.request(call_tool(4, "echo", json!({"say": "hello"}))).await;
        assert_eq!(serde_json::from_str::<Value>(text_of(&r["result"])).unwrap(), json!({"said": "hello"}));

        drop(p);
        tokio::time::timeout(TIMEOUT, handle).await.unwrap().unwrap().unwrap();
    }
}
