//! The MCP server: the tool catalog over the Model Context Protocol (stdio, newline-delimited
//! JSON-RPC), with the same argument schemas the planner and `tools list` use. It owns which
//! tools an MCP client sees and how its calls reach the executor; it never runs a tool itself.
//!
//! Two modes. By default the server is read-only: only `ReadOnly` tools are listed, and the
//! executor runs with `read_only`, so a call to any other tool is refused (and journaled as
//! refused). With `--allow-writes` every tool is listed and calls still go through the
//! executor, so the journal and the effect-based policy apply; a write step is approved by
//! [`ClientConfirmedApprover`], because an MCP client asks its user before each tool call and
//! that confirmation is the only approval channel this transport has.
//!
//! stdout carries the protocol, so nothing here may print to it: diagnostics go to stderr.

use std::borrow::Cow;
use std::sync::Arc;

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation, JsonObject, ListToolsResult,
    PaginatedRequestParams, ServerCapabilities, ServerConfig, Tool as McpTool, ToolAnnotations,
};
use rmcp::service::{QuitReason, RequestContext};
use rmcp::{ErrorData, RoleServer, ServerHandler, ServiceExt};
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncWrite};

use crate::error::Error;
use crate::exec::{Approver, Decision, Executor, Journal, Policy, StepResult};
use crate::exec::{Plan, Step};
use crate::tools::{Effect, ToolInfo, ToolRegistry};
use crate::workflows::Ctx;

/// What the server tells a client about itself in the `initialize` answer.
pub const INSTRUCTIONS: &str = "agentops works on a Kubernetes GitOps repository (Kustomize bases and overlays per \
environment, Argo CD Applications). Its tools scan the repo, render overlays with the real kustomize, validate \
rendered objects against strict schemas and policies (findings name file and line), and query the clusters, Argo CD \
and Prometheus of each environment. Arguments are checked against each tool's input schema; unknown fields are \
rejected. Secret values are redacted from every result. Unless the server was started with --allow-writes, only \
read-only tools are available.";

/// Approves every write step: in MCP the client asks its user to confirm each tool call
/// before sending it, so a call that arrives has been confirmed. Used only with
/// `--allow-writes`; without it the executor's read-only policy refuses writes before any
/// approver is asked.
pub struct ClientConfirmedApprover;

impl Approver for ClientConfirmedApprover {
    fn approve(&self, _step: &Step) -> bool {
        true
    }
}

/// An MCP server over one tool registry and one repo.
pub struct McpServer {
    executor: Executor,
    allow_writes: bool,
}

impl McpServer {
    /// A server whose calls are journaled to the repo's `.agentops/journal.jsonl`.
    pub fn new(registry: Arc<ToolRegistry>, ctx: Ctx, allow_writes: bool) -> McpServer {
        let journal = Journal::for_repo(ctx.repo_root());
        McpServer::with_journal(registry, ctx, allow_writes, Some(journal))
    }

    /// A server with an explicit journal (None: calls are not journaled).
    pub fn with_journal(
        registry: Arc<ToolRegistry>,
        ctx: Ctx,
        allow_writes: bool,
        journal: Option<Journal>,
    ) -> McpServer {
        let policy = Policy { yes: false, dry_run: false, read_only: !allow_writes };
        let executor = Executor::new(registry, ctx, policy, Arc::new(ClientConfirmedApprover), journal);
        McpServer { executor, allow_writes }
    }

    pub fn allow_writes(&self) -> bool {
        self.allow_writes
    }

    /// The catalog entries a client may see in this mode.
    fn visible(&self) -> Vec<ToolInfo> {
        self.executor
            .registry()
            .list()
            .into_iter()
            .filter(|t| self.allow_writes || t.effect == Effect::ReadOnly)
            .collect()
    }

    /// The `tools/list` answer: name, description, the registry's parameter schema as the
    /// input schema, and hints derived from the declared effect.
    pub fn tools(&self) -> Vec<McpTool> {
        self.visible().into_iter().map(to_mcp_tool).collect()
    }

    /// The `initialize` answer's server part.
    pub fn info(&self) -> ServerConfig {
        let title = if self.allow_writes { "agentops (writes allowed)" } else { "agentops (read-only)" };
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("agentops", env!("CARGO_PKG_VERSION")).with_title(title))
            .with_instructions(INSTRUCTIONS)
    }

    /// Runs one `tools/call` through the executor (journaled). Tool failures, invalid
    /// arguments and refusals are error results carrying only the public message; a tool
    /// this registry does not have is `Err` (a protocol error, as MCP specifies).
    pub async fn call(&self, name: &str, arguments: Option<JsonObject>) -> Result<CallToolResult, ErrorData> {
        let Some(info) = self.executor.registry().get(name) else {
            let names: Vec<&str> = self.visible().iter().map(|t| t.name).collect();
            return Err(ErrorData::invalid_params(format!("unknown tool {name:?}; tools: {}", names.join(", ")), None));
        };
        let args = Value::Object(arguments.unwrap_or_default());
        let step = Step {
            tool: info.name.to_string(),
            args,
            effect: info.effect,
            summary: format!("MCP call {name}"),
            bind: Vec::new(),
        };
        // a one-step plan, so the journal line carries a plan hash like every other entry
        let plan = Plan { request: format!("mcp tools/call {name}"), steps: vec![step.clone()] };
        let result = self.executor.run_step(&plan.request, &plan.hash(), &step, None).await;
        Ok(to_call_result(&result))
    }

    /// Serves one client over a reader and a writer until the client closes the connection.
    pub async fn serve<R, W>(self, read: R, write: W) -> Result<(), Error>
    where
        R: AsyncRead + Send + Unpin + 'static,
        W: AsyncWrite + Send + Unpin + 'static,
    {
        let running = ServiceExt::serve(self, (read, write))
            .await
            .map_err(|e| Error::Usage(format!("MCP handshake failed: {e}")))?;
        match running.waiting().await {
            Ok(QuitReason::JoinError(e)) | Err(e) => Err(Error::Internal(format!("the MCP server stopped: {e}"))),
            Ok(_) => Ok(()),
        }
    }

    /// Serves one client over this process's stdin and stdout.
    pub async fn serve_stdio(self) -> Result<(), Error> {
        let (read, write) = rmcp::transport::io::stdio_pipes();
        self.serve(read, write).await
    }
}

fn to_mcp_tool(t: ToolInfo) -> McpTool {
    let schema = match t.parameters {
        Value::Object(m) => m,
        // every registry schema is an object; anything else would be a registry bug, and an
        // empty object schema at least keeps the catalog usable
        _ => JsonObject::from_iter([("type".to_string(), Value::String("object".into()))]),
    };
    let annotations =
        ToolAnnotations::new().read_only(t.effect == Effect::ReadOnly).destructive(t.effect == Effect::WritesCluster);
    McpTool::new(Cow::Borrowed(t.name), Cow::Borrowed(t.description), Arc::new(schema)).with_annotations(annotations)
}

fn to_call_result(r: &StepResult) -> CallToolResult {
    match (&r.output, r.ok) {
        (Some(v), true) => {
            let text = serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string());
            CallToolResult::success(vec![ContentBlock::text(text)])
        }
        _ => {
            let message = match r.decision {
                Decision::Refused => format!(
                    "{} is refused: this MCP server is read-only and the tool's effect is {:?}. \
                     Restart it with `agentops mcp --allow-writes` to allow writes.",
                    r.tool, r.effect
                ),
                _ => r.error.clone().unwrap_or_else(|| format!("{} failed", r.tool)),
            };
            CallToolResult::error(vec![ContentBlock::text(message)])
        }
    }
}

impl ServerHandler for McpServer {
    fn get_info(&self) -> ServerConfig {
        self.info()
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        Ok(ListToolsResult::with_all_items(self.tools()))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        self.call(&request.name, request.arguments).await.map(CallToolResponse::from)
    }
}
