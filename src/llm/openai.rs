//! The real client: any OpenAI-compatible chat-completions endpoint through async-openai.
//! This is the only file that knows async-openai's types. Retries: async-openai's transport
//! retries 429 (not `insufficient_quota`), 5xx and connection failures 3 times with
//! exponential backoff from 100 ms, honoring Retry-After; this client adds retries of
//! timed-out requests (`LlmSettings::retries`, backoff `retry_backoff`). The key is always set explicitly
//! (async-openai would otherwise read OPENAI_API_KEY and send it to whatever base URL is
//! configured); the organization and project headers are cleared for the same reason.

use std::time::Duration;

use async_openai::Client;
use async_openai::config::OpenAIConfig;
use async_openai::error::OpenAIError;
use async_openai::types::chat::{
    ChatCompletionMessageToolCall, ChatCompletionMessageToolCalls, ChatCompletionRequestAssistantMessage,
    ChatCompletionRequestAssistantMessageContent, ChatCompletionRequestMessage, ChatCompletionRequestSystemMessage,
    ChatCompletionRequestSystemMessageContent, ChatCompletionRequestToolMessage,
    ChatCompletionRequestToolMessageContent, ChatCompletionRequestUserMessage, ChatCompletionRequestUserMessageContent,
    ChatCompletionTool, ChatCompletionToolChoiceOption, ChatCompletionTools, CreateChatCompletionRequest,
    CreateChatCompletionResponse, FinishReason, FunctionCall, FunctionObject, ResponseFormat, ResponseFormatJsonSchema,
    ToolChoiceOptions,
};

use super::settings::LlmSettings;
use super::{BoxFuture, ChatRequest, ChatResponse, LlmClient, LlmError, Message, ToolCall, ToolChoice, Usage};

pub struct OpenAiClient {
    client: Client<OpenAIConfig>,
    settings: LlmSettings,
}

impl OpenAiClient {
    /// A client for the settings' endpoint, with the key the settings allow for it, read from
    /// the process environment.
    pub fn new(settings: &LlmSettings) -> Result<OpenAiClient, LlmError> {
        OpenAiClient::with_env(settings, &|k| std::env::var(k).ok())
    }

    /// As [`OpenAiClient::new`], with the environment given as a lookup function.
    pub fn with_env(settings: &LlmSettings, env: &dyn Fn(&str) -> Option<String>) -> Result<OpenAiClient, LlmError> {
        let key = settings.api_key(env)?;
        OpenAiClient::with_key(settings, &key)
    }

    /// A client that sends exactly this key (empty: none).
    pub fn with_key(settings: &LlmSettings, key: &str) -> Result<OpenAiClient, LlmError> {
        let config = OpenAIConfig::new()
            .with_api_base(settings.base_url.clone())
            .with_api_key(key)
            .with_org_id("")
            .with_project_id("");
        let connect = settings.timeout.min(Duration::from_secs(10));
        let http = reqwest::Client::builder()
            .timeout(settings.timeout)
            .connect_timeout(connect)
            .build()
            .map_err(|e| LlmError::Config(format!("could not set up the HTTP client: {e}")))?;
        // async-openai's own transport (its retry layer over reqwest), with the answer's body
        // bounded: a model answer past the limit is refused, not read into memory
        let service = tower::ServiceBuilder::new()
            .layer(async_openai::middleware::retry::OpenAIRetryLayer::default())
            .map_response(|r| {
                crate::config::limits::bound_response(
                    r,
                    crate::config::limits::MODEL_RESPONSE_BYTES,
                    "the model endpoint",
                    MODEL_HINT,
                )
            })
            .service(async_openai::middleware::ReqwestService::new(http.clone()));
        let client = Client::with_config(config).with_http_client(http).with_http_service(service);
        Ok(OpenAiClient { client, settings: settings.clone() })
    }

    pub fn settings(&self) -> &LlmSettings {
        &self.settings
    }

    async fn complete_with_retries(&self, request: ChatRequest) -> Result<ChatResponse, LlmError> {
        let mut wire = to_wire(&request);
        // OpenAI's reasoning models refuse `max_tokens`; llama.cpp, Ollama and older servers
        // know only `max_tokens`.
        if self.settings.is_default_openai() {
            #[allow(deprecated)]
            let limit = wire.max_tokens.take();
            wire.max_completion_tokens = limit;
        }
        let mut attempt: u32 = 0;
        let model = wire.model.clone();
        loop {
            let started = std::time::Instant::now();
            let result = self.client.chat().create(wire.clone()).await;
            let latency_ms = started.elapsed().as_millis() as u64;
            match result {
                Ok(resp) => {
                    // tokens as the server reported them (absent when it did not)
                    let usage = resp.usage.as_ref();
                    tracing::info!(
                        model = %model,
                        prompt_tokens = usage.map(|u| u.prompt_tokens),
                        completion_tokens = usage.map(|u| u.completion_tokens),
                        attempts = attempt + 1,
                        latency_ms,
                        "model request"
                    );
                    return from_wire(resp, &self.settings.base_url);
                }
                Err(e) => {
                    let e = map_error(e, &self.settings.base_url);
                    // 429, 5xx and connection failures were already retried by async-openai's
                    // transport (3 retries, exponential backoff, Retry-After honored); only
                    // timeouts are retried here, so attempts do not multiply.
                    let timeout = matches!(e, LlmError::Timeout(_));
                    if !timeout || attempt >= self.settings.retries {
                        tracing::info!(model = %model, attempts = attempt + 1, latency_ms, error = %e, "model request failed");
                        return Err(if attempt > 0 { with_attempts(e, attempt + 1) } else { e });
                    }
                    let wait = self.settings.retry_backoff.saturating_mul(2u32.saturating_pow(attempt));
                    attempt += 1;
                    tracing::info!(
                        model = %model,
                        attempt,
                        error = %e,
                        backoff_ms = wait.as_millis() as u64,
                        "retrying model request"
                    );
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }
}

impl LlmClient for OpenAiClient {
    fn complete(&self, request: ChatRequest) -> BoxFuture<'_, Result<ChatResponse, LlmError>> {
        Box::pin(self.complete_with_retries(request))
    }
}

fn with_attempts(e: LlmError, attempts: u32) -> LlmError {
    match e {
        LlmError::Status { status, message } => {
            LlmError::Status { status, message: format!("{message} (gave up after {attempts} attempts)") }
        }
        LlmError::Timeout(m) => LlmError::Timeout(format!("{m} (gave up after {attempts} attempts)")),
        LlmError::Network(m) => LlmError::Network(format!("{m} (gave up after {attempts} attempts)")),
        other => other,
    }
}

// `max_tokens` is deprecated by OpenAI but the only limit llama.cpp and Ollama read
#[allow(deprecated)]
fn to_wire(r: &ChatRequest) -> CreateChatCompletionRequest {
    let messages = r.messages.iter().map(message_to_wire).collect();
    let tools: Vec<ChatCompletionTools> = r
        .tools
        .iter()
        .map(|t| {
            ChatCompletionTools::Function(ChatCompletionTool {
                function: FunctionObject {
                    name: t.name.clone(),
                    description: Some(t.description.clone()),
                    parameters: Some(t.parameters.clone()),
                    strict: r.strict_tools.then_some(true),
                },
            })
        })
        .collect();
    let tool_choice = match (r.tool_choice, tools.is_empty()) {
        (Some(ToolChoice::Required), false) => Some(ChatCompletionToolChoiceOption::Mode(ToolChoiceOptions::Required)),
        (Some(ToolChoice::Auto), false) => Some(ChatCompletionToolChoiceOption::Mode(ToolChoiceOptions::Auto)),
        _ => None,
    };
    let response_format = r.response_schema.as_ref().map(|s| ResponseFormat::JsonSchema {
        json_schema: ResponseFormatJsonSchema {
            description: None,
            name: s.name.clone(),
            schema: s.schema.clone(),
            strict: s.strict.then_some(true),
        },
    });
    CreateChatCompletionRequest {
        model: r.model.clone(),
        messages,
        tools: if tools.is_empty() { None } else { Some(tools) },
        tool_choice,
        response_format,
        temperature: r.temperature,
        max_tokens: r.max_output_tokens,
        ..Default::default()
    }
}

fn message_to_wire(m: &Message) -> ChatCompletionRequestMessage {
    match m {
        Message::System { content } => ChatCompletionRequestMessage::System(ChatCompletionRequestSystemMessage {
            content: ChatCompletionRequestSystemMessageContent::Text(content.clone()),
            name: None,
        }),
        Message::User { content } => ChatCompletionRequestMessage::User(ChatCompletionRequestUserMessage {
            content: ChatCompletionRequestUserMessageContent::Text(content.clone()),
            name: None,
        }),
        Message::Assistant { content, tool_calls } => {
            let calls: Vec<ChatCompletionMessageToolCalls> = tool_calls
                .iter()
                .map(|c| {
                    ChatCompletionMessageToolCalls::Function(ChatCompletionMessageToolCall {
                        id: c.id.clone(),
                        function: FunctionCall { name: c.name.clone(), arguments: c.arguments.clone() },
                    })
                })
                .collect();
            ChatCompletionRequestMessage::Assistant(ChatCompletionRequestAssistantMessage {
                content: content.clone().map(ChatCompletionRequestAssistantMessageContent::Text),
                tool_calls: if calls.is_empty() { None } else { Some(calls) },
                ..Default::default()
            })
        }
        Message::Tool { tool_call_id, content } => {
            ChatCompletionRequestMessage::Tool(ChatCompletionRequestToolMessage {
                content: ChatCompletionRequestToolMessageContent::Text(content.clone()),
                tool_call_id: tool_call_id.clone(),
            })
        }
    }
}

fn from_wire(resp: CreateChatCompletionResponse, base_url: &str) -> Result<ChatResponse, LlmError> {
    let usage = resp
        .usage
        .as_ref()
        .map(|u| Usage::new(u64::from(u.prompt_tokens), u64::from(u.completion_tokens)))
        .unwrap_or_default();
    let Some(choice) = resp.choices.into_iter().next() else {
        return Err(LlmError::Response(format!("the model endpoint {base_url} answered with no choices")));
    };
    let finish_reason = choice.finish_reason.map(|f| {
        match f {
            FinishReason::Stop => "stop",
            FinishReason::Length => "length",
            FinishReason::ToolCalls => "tool_calls",
            FinishReason::ContentFilter => "content_filter",
            FinishReason::FunctionCall => "function_call",
        }
        .to_string()
    });
    let m = choice.message;
    let tool_calls: Vec<ToolCall> = m
        .tool_calls
        .unwrap_or_default()
        .into_iter()
        .map(|c| match c {
            ChatCompletionMessageToolCalls::Function(f) => ToolCall::new(f.id, f.function.name, f.function.arguments),
            // We offer no custom tools; the loop answers this as an unknown tool.
            ChatCompletionMessageToolCalls::Custom(c) => ToolCall::new(c.id, c.custom_tool.name, c.custom_tool.input),
        })
        .collect();
    let content = m.content.filter(|c| !c.is_empty() || tool_calls.is_empty());
    Ok(ChatResponse { message: Message::Assistant { content, tool_calls }, usage, finish_reason })
}

const MODEL_HINT: &str = "Check the endpoint (--llm-base-url) is a chat-completions server";

fn map_error(e: OpenAIError, base_url: &str) -> LlmError {
    match e {
        OpenAIError::Reqwest(e) => {
            if let Some(m) = crate::config::limits::body_limit_in(&e) {
                LlmError::Response(format!("{base_url}: {m}"))
            } else if e.is_timeout() {
                LlmError::Timeout(format!("{base_url}: {e}"))
            } else if let Some(status) = e.status() {
                LlmError::Status { status: status.as_u16(), message: e.to_string() }
            } else {
                LlmError::Network(format!("{base_url}: {e}"))
            }
        }
        OpenAIError::ApiError(r) => {
            let status = r.status_code.as_u16();
            // 5xx bodies come unparsed: an `{"error": ...}` body is read here
            if r.api_error.r#type.is_none()
                && let Some(e) = ServerError::parse(&r.api_error.message)
            {
                return e.into_error(Some(status), base_url);
            }
            if let Some(e) = ServerError::from_parts(
                &r.api_error.message,
                r.api_error.r#type.as_deref(),
                r.api_error.code.as_deref(),
            ) {
                return e.into_error(Some(status), base_url);
            }
            let hint = match status {
                401 | 403 => {
                    " — check the API key: OPENAI_API_KEY is sent only to the default OpenAI endpoint; for another \
                     endpoint name its variable in llm.api_key_env of .agentops.yaml"
                }
                404 => " — check the base URL (usually ending in /v1) and the model name",
                _ => "",
            };
            let mut message: String = r.api_error.to_string().chars().take(500).collect();
            if status == 429 || (500..600).contains(&status) {
                message.push_str(" (after retries with backoff)");
            }
            LlmError::Status { status, message: format!("{message}{hint}") }
        }
        // an error body async-openai could not read (an integer `code`, extra fields)
        OpenAIError::JSONDeserialize(_, body) if ServerError::parse(&body).is_some() => {
            ServerError::parse(&body).map_or_else(|| LlmError::Response(body.clone()), |e| e.into_error(None, base_url))
        }
        OpenAIError::JSONDeserialize(err, body) => {
            let start: String = body.chars().take(300).collect();
            LlmError::Response(format!(
                "the model endpoint {base_url} answered with a chat completion that could not be read ({err}). \
                 OpenAI-compatible servers must send `id`, `object`, `created`, `model` and `choices`, each \
                 message a `role`, and each tool call `\"type\": \"function\"`; some servers omit these. Upgrade \
                 the server or put a compatible proxy in front of it. The answer began: {start}"
            ))
        }
        OpenAIError::InvalidArgument(m) => LlmError::Config(format!("invalid model request: {m}")),
        other => LlmError::Response(other.to_string()),
    }
}

/// An error a server sent as `{"error": {...}}`, whatever the shape of its fields.
#[derive(Debug, Clone, PartialEq)]
struct ServerError {
    message: String,
    kind: Option<String>,
    /// `code`, as a number (HTTP status) or a string (`context_length_exceeded`).
    code: Option<String>,
    /// llama.cpp's context overflow: the tokens sent and the context size.
    sent: Option<u64>,
    holds: Option<u64>,
}

impl ServerError {
    /// The error of a body `{"error": {"message": ..}}`, `{"error": "text"}`, or (vLLM
    /// before 0.9) `{"object": "error", "message": .., "type": .., "code": 400}`.
    fn parse(body: &str) -> Option<ServerError> {
        let v: serde_json::Value = serde_json::from_str(body.trim()).ok()?;
        let e = match v.get("error") {
            Some(e) => e,
            None if v.get("object").and_then(serde_json::Value::as_str) == Some("error")
                && v["message"].is_string() =>
            {
                &v
            }
            None => return None,
        };
        if let Some(text) = e.as_str() {
            return Some(ServerError { message: text.to_string(), kind: None, code: None, sent: None, holds: None });
        }
        let text = |k: &str| {
            e.get(k).and_then(|x| match x {
                serde_json::Value::String(s) => Some(s.clone()),
                serde_json::Value::Number(n) => Some(n.to_string()),
                _ => None,
            })
        };
        let number = |k: &str| e.get(k).and_then(serde_json::Value::as_u64);
        Some(ServerError {
            message: text("message").unwrap_or_else(|| e.to_string()),
            kind: text("type"),
            code: text("code"),
            sent: number("n_prompt_tokens"),
            holds: number("n_ctx"),
        })
    }

    /// A context overflow recognised from its message or type alone (OpenAI, vLLM).
    fn from_parts(message: &str, kind: Option<&str>, code: Option<&str>) -> Option<ServerError> {
        let e = ServerError {
            message: message.to_string(),
            kind: kind.map(str::to_string),
            code: code.map(str::to_string),
            sent: None,
            holds: None,
        };
        e.overflow().is_some().then_some(e)
    }

    /// (tokens sent, tokens the model holds) when this is a context overflow.
    fn overflow(&self) -> Option<(Option<u64>, Option<u64>)> {
        let lower = self.message.to_ascii_lowercase();
        let is_overflow = self.kind.as_deref() == Some("exceed_context_size_error")
            || self.code.as_deref() == Some("context_length_exceeded")
            || lower.contains("context size")
            || lower.contains("context length")
            || lower.contains("context window");
        if !is_overflow {
            return None;
        }
        // llama.cpp: "request (11545 tokens) exceeds the available context size (8192 tokens)";
        // OpenAI and vLLM: "maximum context length is 8192 tokens. However, your messages
        // resulted in 11545 tokens" / "you requested 11545 tokens"
        let grab = |pattern: &str| {
            regex::Regex::new(pattern)
                .ok()
                .and_then(|re| re.captures(&lower))
                .and_then(|c| c.get(1))
                .and_then(|m| m.as_str().replace(',', "").parse::<u64>().ok())
        };
        let sent = self.sent.or_else(|| {
            grab(r"request \(([\d,]+) tokens\)")
                .or_else(|| grab(r"(?:resulted in|requested|request has|contains)\s+([\d,]+)\s+tokens"))
        });
        let holds = self.holds.or_else(|| {
            grab(r"context size \(([\d,]+) tokens\)")
                .or_else(|| grab(r"context (?:length|window) (?:is|of)\s+([\d,]+)"))
        });
        Some((sent, holds))
    }

    fn into_error(self, status: Option<u16>, base_url: &str) -> LlmError {
        let status = status.or_else(|| self.code.as_deref().and_then(|c| c.parse().ok()));
        if let Some((sent, holds)) = self.overflow() {
            let said = match (sent, holds) {
                (Some(s), Some(h)) => format!("the request is {s} tokens and the model holds {h}"),
                (Some(s), None) => format!("the request is {s} tokens, more than the model holds"),
                (None, Some(h)) => format!("the request is more than the {h} tokens the model holds"),
                (None, None) => "the request is more than the model's context holds".to_string(),
            };
            return LlmError::ContextOverflow(format!(
                "{said} ({base_url} said: {}). Give the model a larger context (llama-server -c, Ollama num_ctx, \
                 vLLM --max-model-len) or a model that holds more, lower llm.prompt_budget in .agentops.yaml so \
                 less repo context is sent, or narrow the request to one app or environment",
                short_text(&self.message, 300)
            ));
        }
        let mut message = short_text(&self.message, 500);
        if let Some(k) = &self.kind {
            message = format!("{k}: {message}");
        }
        if let Some(c) = self.code.as_deref().filter(|c| Some(*c) != status.map(|s| s.to_string()).as_deref()) {
            message.push_str(&format!(" (code: {c})"));
        }
        match status {
            Some(status) => {
                if status == 429 || (500..600).contains(&status) {
                    message.push_str(" (after retries with backoff)");
                }
                LlmError::Status { status, message }
            }
            None => LlmError::Response(format!("the model endpoint {base_url} answered with an error: {message}")),
        }
    }
}

fn short_text(s: &str, max: usize) -> String {
    if s.chars().count() <= max { s.to_string() } else { format!("{}…", s.chars().take(max).collect::<String>()) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::ToolSpec;

    #[test]
    fn the_wire_format_is_what_openai_expects() {
        let req = ChatRequest {
            model: "m".into(),
            messages: vec![
                Message::system("sys"),
                Message::user("hi"),
                Message::tool_calls(vec![ToolCall::new("c1", "validate", "{\"env\":[\"dev\"]}")]),
                Message::tool_result("c1", "{\"ok\":true}"),
            ],
            tools: vec![ToolSpec {
                name: "validate".into(),
                description: "d".into(),
                parameters: serde_json::json!({"type": "object"}),
            }],
            temperature: Some(0.0),
            ..Default::default()
        };
        let v = serde_json::to_value(to_wire(&req)).unwrap();
        assert_eq!(v["messages"][0], serde_json::json!({"role": "system", "content": "sys"}));
        let a = &v["messages"][2];
        assert!(a.get("content").is_none(), "{a}");
        assert_eq!(a["tool_calls"][0]["type"], "function");
        assert_eq!(a["tool_calls"][0]["function"]["name"], "validate");
        assert_eq!(
            v["messages"][3],
            serde_json::json!({"role": "tool", "content": "{\"ok\":true}", "tool_call_id": "c1"})
        );
        assert_eq!(v["tools"][0]["type"], "function");
        assert_eq!(v["tools"][0]["function"]["parameters"]["type"], "object");
    }
}
