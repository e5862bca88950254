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
    ChatCompletionTool, ChatCompletionTools, CreateChatCompletionRequest, CreateChatCompletionResponse, FunctionCall,
    FunctionObject,
};

use super::settings::LlmSettings;
use super::{BoxFuture, ChatRequest, ChatResponse, LlmClient, LlmError, Message, ToolCall, Usage};

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
                crate::limits::bound_response(r, crate::limits::MODEL_RESPONSE_BYTES, "the model endpoint", MODEL_HINT)
            })
            .service(async_openai::middleware::ReqwestService::new(http.clone()));
        let client = Client::with_config(config).with_http_client(http).with_http_service(service);
        Ok(OpenAiClient { client, settings: settings.clone() })
    }

    pub fn settings(&self) -> &LlmSettings {
        &self.settings
    }

    async fn complete_with_retries(&self, request: ChatRequest) -> Result<ChatResponse, LlmError> {
        let wire = to_wire(&request);
        let mut attempt: u32 = 0;
        loop {
            let result = self.client.chat().create(wire.clone()).await;
            match result {
                Ok(resp) => return from_wire(resp, &self.settings.base_url),
                Err(e) => {
                    let e = map_error(e, &self.settings.base_url);
                    // 429, 5xx and connection failures were already retried by async-openai's
                    // transport (3 retries, exponential backoff, Retry-After honored); only
                    // timeouts are retried here, so attempts do not multiply.
                    let timeout = matches!(e, LlmError::Timeout(_));
                    if !timeout || attempt >= self.settings.retries {
                        return Err(if attempt > 0 { with_attempts(e, attempt + 1) } else { e });
                    }
                    let wait = self.settings.retry_backoff.saturating_mul(2u32.saturating_pow(attempt));
                    tokio::time::sleep(wait).await;
                    attempt += 1;
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
                    strict: None,
                },
            })
        })
        .collect();
    CreateChatCompletionRequest {
        model: r.model.clone(),
        messages,
        tools: if tools.is_empty() { None } else { Some(tools) },
        temperature: r.temperature,
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
    Ok(ChatResponse { message: Message::Assistant { content, tool_calls }, usage })
}

const MODEL_HINT: &str = "Check the endpoint (--llm-base-url) is a chat-completions server";

fn map_error(e: OpenAIError, base_url: &str) -> LlmError {
    match e {
        OpenAIError::Reqwest(e) => {
            if let Some(m) = crate::limits::body_limit_in(&e) {
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
