//! Token counts before a request is sent: an estimate from the text's length, calibrated
//! against a real tokenizer so that it errs high. Measured with SmolLM2's tokenizer
//! (llama-server's `/tokenize`, the model the test suite runs) on agentops's own system
//! prompts and compact tool schemas: 3.5–3.9 characters per token for JSON schemas and
//! English prose (every routed agent, every constrained mode, on examples/platform). Larger vocabularies (OpenAI's o200k, Llama 3's 128k) need fewer tokens
//! for the same text, so an estimate that holds for SmolLM2 holds for them too.

use super::{ChatRequest, ToolSpec};

/// Characters per token the estimate assumes (below every ratio measured, so it errs high).
pub const CHARS_PER_TOKEN: f64 = 3.4;

/// Estimated tokens of a text.
pub fn estimate(text: &str) -> u64 {
    (text.chars().count() as f64 / CHARS_PER_TOKEN).ceil() as u64
}

/// Estimated tokens of a tool catalog as it goes on the wire (`{"type": "function",
/// "function": {...}}` per tool).
pub fn estimate_tools(tools: &[ToolSpec]) -> u64 {
    tools
        .iter()
        .map(|t| {
            let wire = serde_json::json!({"type": "function", "function": {
                "name": t.name, "description": t.description, "parameters": t.parameters}});
            estimate(&serde_json::to_string(&wire).unwrap_or_default())
        })
        .sum()
}

/// Estimated tokens of what a request carries besides the conversation: the system
/// messages, the tools and the response schema.
pub fn estimate_catalog(request: &ChatRequest) -> u64 {
    let system: u64 = request
        .messages
        .iter()
        .filter(|m| matches!(m, super::Message::System { .. }))
        .filter_map(|m| m.text())
        .map(estimate)
        .sum();
    let schema = request
        .response_schema
        .as_ref()
        .map(|s| estimate(&serde_json::to_string(&s.schema).unwrap_or_default()))
        .unwrap_or(0);
    system + estimate_tools(&request.tools) + schema
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn estimates_err_high_and_scale_with_length() {
        assert_eq!(estimate(""), 0);
        assert_eq!(estimate("abc"), 1);
        assert_eq!(estimate(&"x".repeat(3400)), 1000);
        let tool =
            ToolSpec { name: "validate".into(), description: "Check.".into(), parameters: serde_json::json!({}) };
        assert!(estimate_tools(&[tool.clone(), tool]) > 2 * estimate("validate Check."));
    }
}
