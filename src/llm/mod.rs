//! Talking to a language model, on our own types. `LlmClient` has one method, `complete`;
//! async-openai stays inside [`openai`]. Also here: the settings (flags > env >
//! `.agentops.yaml`), a scripted fake for tests, and cassettes that record real exchanges
//! (only when `AGENTOPS_LLM_RECORD=1`) and replay them keyed by a hash of the request.

pub mod budget;
pub(crate) mod cassette;
pub(crate) mod openai;
pub(crate) mod scripted;
pub mod settings;

use std::future::Future;
use std::pin::Pin;

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use cassette::{CassetteLlm, CassetteMode, RECORD_ENV};
pub use openai::OpenAiClient;
pub use scripted::ScriptedLlm;
pub use settings::{LlmFlags, LlmSettings};

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One tool call proposed by the model. `arguments` is the raw text the model produced: it
/// may not even be JSON, and is checked before anything runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolCall {
    pub id: String,
    pub name: String,
    pub arguments: String,
}

impl ToolCall {
    pub fn new(id: impl Into<String>, name: impl Into<String>, arguments: impl Into<String>) -> ToolCall {
        ToolCall { id: id.into(), name: name.into(), arguments: arguments.into() }
    }
}

/// A conversation message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "role", rename_all = "snake_case")]
pub enum Message {
    System {
        content: String,
    },
    User {
        content: String,
    },
    Assistant {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        content: Option<String>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        tool_calls: Vec<ToolCall>,
    },
    /// The result of one tool call, sent back to the model.
    Tool {
        tool_call_id: String,
        content: String,
    },
}

impl Message {
    pub fn system(content: impl Into<String>) -> Message {
        Message::System { content: content.into() }
    }
    pub fn user(content: impl Into<String>) -> Message {
        Message::User { content: content.into() }
    }
    pub fn assistant(content: impl Into<String>) -> Message {
        Message::Assistant { content: Some(content.into()), tool_calls: Vec::new() }
    }
    pub fn tool_calls(calls: Vec<ToolCall>) -> Message {
        Message::Assistant { content: None, tool_calls: calls }
    }
    pub fn tool_result(tool_call_id: impl Into<String>, content: impl Into<String>) -> Message {
        Message::Tool { tool_call_id: tool_call_id.into(), content: content.into() }
    }

    /// The text of the message, if it has any.
    pub fn text(&self) -> Option<&str> {
        match self {
            Message::System { content } | Message::User { content } | Message::Tool { content, .. } => Some(content),
            Message::Assistant { content, .. } => content.as_deref(),
        }
    }

    /// The tool calls of an assistant message (none for the other roles).
    pub fn calls(&self) -> &[ToolCall] {
        match self {
            Message::Assistant { tool_calls, .. } => tool_calls,
            _ => &[],
        }
    }
}

/// A function the model may call: name, description, JSON Schema of its arguments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolSpec {
    pub name: String,
    pub description: String,
    pub parameters: Value,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChatRequest {
    pub model: String,
    pub messages: Vec<Message>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<ToolSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f32>,
    /// Whether the model must call a tool (`required`) or may answer (`auto`, the default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<ToolChoice>,
    /// Send the tools as OpenAI strict function schemas (`strict: true`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub strict_tools: bool,
    /// Ask for a JSON answer of this schema (`response_format: json_schema`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_schema: Option<ResponseSchema>,
    /// Most tokens the model may write in this turn.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_output_tokens: Option<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ToolChoice {
    Auto,
    Required,
}

/// A named JSON Schema the answer must follow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResponseSchema {
    pub name: String,
    pub schema: Value,
    /// OpenAI strict mode (the schema is written for it).
    pub strict: bool,
}

/// Tokens spent, as the endpoint reports them (zero when it reports nothing).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
}

impl Usage {
    pub fn new(prompt_tokens: u64, completion_tokens: u64) -> Usage {
        Usage { prompt_tokens, completion_tokens }
    }

    pub fn total(&self) -> u64 {
        self.prompt_tokens + self.completion_tokens
    }
}

impl std::ops::AddAssign for Usage {
    fn add_assign(&mut self, rhs: Usage) {
        self.prompt_tokens += rhs.prompt_tokens;
        self.completion_tokens += rhs.completion_tokens;
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatResponse {
    /// The model's turn: an [`Message::Assistant`].
    pub message: Message,
    #[serde(default)]
    pub usage: Usage,
    /// Why the model stopped writing (`stop`, `tool_calls`, `length` when it hit the output
    /// limit), as the endpoint says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finish_reason: Option<String>,
}

impl ChatResponse {
    /// A final text answer.
    pub fn text(content: impl Into<String>, usage: Usage) -> ChatResponse {
        ChatResponse { message: Message::assistant(content), usage, finish_reason: None }
    }

    /// A turn that calls tools.
    pub fn calls(calls: Vec<ToolCall>, usage: Usage) -> ChatResponse {
        ChatResponse { message: Message::tool_calls(calls), usage, finish_reason: None }
    }

    /// The model stopped because it reached the output limit.
    pub fn was_cut(&self) -> bool {
        self.finish_reason.as_deref() == Some("length")
    }
}

/// Why a model request failed. Retryable errors (rate limits, server errors, timeouts,
/// dropped connections) are retried with backoff by the client; the others are reported.
#[derive(Debug, Clone, thiserror::Error)]
pub enum LlmError {
    /// The endpoint answered with an HTTP error status.
    #[error("the model endpoint answered {status}: {message}")]
    Status { status: u16, message: String },
    /// The request does not fit the model's context window.
    #[error("{0}")]
    ContextOverflow(String),
    #[error("the model endpoint did not answer in time: {0}")]
    Timeout(String),
    #[error("could not reach the model endpoint: {0}")]
    Network(String),
    /// The endpoint answered, but not with something we can read.
    #[error("{0}")]
    Response(String),
    /// Settings: missing model, missing key, bad URL.
    #[error("{0}")]
    Config(String),
    /// Cassette replay found no recording for a request.
    #[error("{0}")]
    CassetteMiss(String),
    /// A scripted fake ran out of answers, or a cassette could not be read or written.
    #[error("{0}")]
    Fake(String),
}

impl LlmError {
    /// Worth trying again: 429, 5xx, timeouts and connection failures.
    pub fn is_retryable(&self) -> bool {
        match self {
            LlmError::Status { status, .. } => *status == 429 || (500..600).contains(status),
            LlmError::Timeout(_) | LlmError::Network(_) => true,
            _ => false,
        }
    }
}

impl From<LlmError> for crate::error::Error {
    fn from(e: LlmError) -> Self {
        crate::error::Error::Usage(e.to_string())
    }
}

/// A language model that answers a conversation, possibly with tool calls.
pub trait LlmClient: Send + Sync {
    fn complete(&self, request: ChatRequest) -> BoxFuture<'_, Result<ChatResponse, LlmError>>;
}

impl<T: LlmClient + ?Sized> LlmClient for std::sync::Arc<T> {
    fn complete(&self, request: ChatRequest) -> BoxFuture<'_, Result<ChatResponse, LlmError>> {
        (**self).complete(request)
    }
}

impl<T: LlmClient + ?Sized> LlmClient for Box<T> {
    fn complete(&self, request: ChatRequest) -> BoxFuture<'_, Result<ChatResponse, LlmError>> {
        (**self).complete(request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_serialize_with_roles() {
        let m = Message::tool_calls(vec![ToolCall::new("c1", "validate", "{}")]);
        let v = serde_json::to_value(&m).unwrap();
        assert_eq!(v["role"], "assistant");
        assert!(v.get("content").is_none());
        assert_eq!(v["tool_calls"][0]["name"], "validate");
        let back: Message = serde_json::from_value(v).unwrap();
        assert_eq!(back, m);
    }

    #[test]
    fn retryable_errors() {
        assert!(LlmError::Status { status: 429, message: String::new() }.is_retryable());
        assert!(LlmError::Status { status: 503, message: String::new() }.is_retryable());
        assert!(!LlmError::Status { status: 401, message: String::new() }.is_retryable());
        assert!(LlmError::Timeout(String::new()).is_retryable());
        assert!(!LlmError::Response(String::new()).is_retryable());
        let mut u = Usage::new(3, 4);
        u += Usage::new(10, 1);
        assert_eq!((u.prompt_tokens, u.completion_tokens, u.total()), (13, 5, 18));
    }
}
