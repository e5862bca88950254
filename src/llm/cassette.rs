//! Cassettes: real model exchanges recorded once and replayed in tests and evals. A request
//! is keyed by a hash of its normalized JSON (object keys sorted; volatile fields such as
//! durations and cache counters dropped from tool results), one file per exchange:
//! `<dir>/<key>.json` holding `{key, request, response}`. Replay fails on a miss with a
//! message saying what to do. Recording happens only when `AGENTOPS_LLM_RECORD=1`, and what
//! is written is scrubbed (learned secret values, API-key-looking strings).
//! The format is described in `evals/cassettes/README.md`.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{BoxFuture, ChatRequest, ChatResponse, LlmClient, LlmError, Message};

/// Set to `1` to record (the real endpoint answers, and the exchange is saved).
pub const RECORD_ENV: &str = "AGENTOPS_LLM_RECORD";

/// Fields of tool results that change from run to run without changing the meaning.
pub const VOLATILE_KEYS: [&str; 7] =
    ["duration_ms", "elapsed_ms", "cache_hits", "kustomize_runs", "time", "timestamp", "generated_at"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CassetteMode {
    Replay,
    Record,
}

/// One recorded exchange, as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Cassette {
    pub key: String,
    pub request: ChatRequest,
    pub response: ChatResponse,
}

type Scrubber = Arc<dyn Fn(&str) -> String + Send + Sync>;

pub struct CassetteLlm {
    dir: PathBuf,
    mode: CassetteMode,
    inner: Option<Box<dyn LlmClient>>,
    scrub: Option<Scrubber>,
}

impl CassetteLlm {
    /// Answers only from recordings in `dir`.
    pub fn replay(dir: &Path) -> CassetteLlm {
        CassetteLlm { dir: dir.to_path_buf(), mode: CassetteMode::Replay, inner: None, scrub: None }
    }

    /// Asks `inner` and saves every exchange in `dir`.
    pub fn record(dir: &Path, inner: Box<dyn LlmClient>) -> CassetteLlm {
        CassetteLlm { dir: dir.to_path_buf(), mode: CassetteMode::Record, inner: Some(inner), scrub: None }
    }

    /// Records when `AGENTOPS_LLM_RECORD=1` (then `real` builds the client that answers),
    /// else replays.
    pub fn from_env(
        dir: &Path,
        real: impl FnOnce() -> Result<Box<dyn LlmClient>, LlmError>,
    ) -> Result<CassetteLlm, LlmError> {
        if recording_requested(&|k| std::env::var(k).ok()) {
            Ok(CassetteLlm::record(dir, real()?))
        } else {
            Ok(CassetteLlm::replay(dir))
        }
    }

    /// Text passes through `scrub` before it is written (e.g. the tool context's redactor).
    pub fn with_scrubber(mut self, scrub: impl Fn(&str) -> String + Send + Sync + 'static) -> CassetteLlm {
        self.scrub = Some(Arc::new(scrub));
        self
    }

    pub fn mode(&self) -> CassetteMode {
        self.mode
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The file a request is recorded in.
    pub fn path_for(&self, request: &ChatRequest) -> PathBuf {
        self.dir.join(format!("{}.json", key(request)))
    }

    async fn answer(&self, request: ChatRequest) -> Result<ChatResponse, LlmError> {
        let key = key(&request);
        let path = self.dir.join(format!("{key}.json"));
        match (self.mode, &self.inner) {
            (CassetteMode::Record, Some(inner)) => {
                let response = inner.complete(request.clone()).await?;
                let cassette = Cassette { key, request, response: response.clone() };
                self.write(&path, cassette)?;
                Ok(response)
            }
            _ => {
                let text = match std::fs::read_to_string(&path) {
                    Ok(t) => t,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                        return Err(LlmError::CassetteMiss(miss_message(&self.dir, &key, &request)));
                    }
                    Err(e) => return Err(LlmError::Fake(format!("{}: {e}", path.display()))),
                };
                let c: Cassette = serde_json::from_str(&text)
                    .map_err(|e| LlmError::Fake(format!("{}: not a cassette: {e}", path.display())))?;
                Ok(c.response)
            }
        }
    }

    fn write(&self, path: &Path, cassette: Cassette) -> Result<(), LlmError> {
        let mut v = serde_json::to_value(&cassette).map_err(|e| LlmError::Fake(e.to_string()))?;
        scrub_value(&mut v, &|s| {
            let s = scrub_key_like(s);
            match &self.scrub {
                Some(f) => f(&s),
                None => s,
            }
        });
        std::fs::create_dir_all(&self.dir).map_err(|e| LlmError::Fake(format!("{}: {e}", self.dir.display())))?;
        let text = serde_json::to_string_pretty(&v).map_err(|e| LlmError::Fake(e.to_string()))?;
        std::fs::write(path, format!("{text}\n")).map_err(|e| LlmError::Fake(format!("{}: {e}", path.display())))
    }
}

impl LlmClient for CassetteLlm {
    fn complete(&self, request: ChatRequest) -> BoxFuture<'_, Result<ChatResponse, LlmError>> {
        Box::pin(self.answer(request))
    }
}

pub fn recording_requested(env: &dyn Fn(&str) -> Option<String>) -> bool {
    env(RECORD_ENV).is_some_and(|v| v.trim() == "1")
}

fn miss_message(dir: &Path, key: &str, request: &ChatRequest) -> String {
    let last_user = request
        .messages
        .iter()
        .rev()
        .find_map(|m| match m {
            Message::User { content } => Some(content.chars().take(120).collect::<String>()),
            _ => None,
        })
        .unwrap_or_default();
    format!(
        "no recorded model answer for this request (cassette {key}.json in {}); request {} of the conversation, \
         user request {last_user:?}. The prompt, the tool catalog or an earlier answer changed since the cassettes \
         were recorded: re-record with {RECORD_ENV}=1 and a configured endpoint, and review the new files",
        dir.display(),
        request.messages.len(),
    )
}

/// The cassette key of a request: blake3 of its normalized JSON, 32 hex characters.
pub fn key(request: &ChatRequest) -> String {
    let v = normalize(request);
    let text = serde_json::to_string(&v).unwrap_or_default();
    blake3::hash(text.as_bytes()).to_hex()[..32].to_string()
}

/// The request as JSON with sorted keys, and volatile fields dropped from tool results.
pub fn normalize(request: &ChatRequest) -> Value {
    let mut r = request.clone();
    for m in &mut r.messages {
        if let Message::Tool { content, .. } = m
            && let Ok(mut v) = serde_json::from_str::<Value>(content)
        {
            drop_volatile(&mut v);
            *content = serde_json::to_string(&sorted(&v)).unwrap_or_default();
        }
    }
    sorted(&serde_json::to_value(&r).unwrap_or_default())
}

fn drop_volatile(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.retain(|k, _| !VOLATILE_KEYS.contains(&k.as_str()));
            m.values_mut().for_each(drop_volatile);
        }
        Value::Array(a) => a.iter_mut().for_each(drop_volatile),
        _ => {}
    }
}

fn sorted(v: &Value) -> Value {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            let mut out = Map::new();
            for k in keys {
                out.insert(k.clone(), sorted(&m[k]));
            }
            Value::Object(out)
        }
        Value::Array(a) => Value::Array(a.iter().map(sorted).collect()),
        other => other.clone(),
    }
}

fn scrub_value(v: &mut Value, f: &dyn Fn(&str) -> String) {
    match v {
        Value::String(s) => *s = f(s),
        Value::Array(a) => a.iter_mut().for_each(|x| scrub_value(x, f)),
        Value::Object(m) => m.values_mut().for_each(|x| scrub_value(x, f)),
        _ => {}
    }
}

/// Replaces strings that look like API keys or bearer tokens.
pub fn scrub_key_like(s: &str) -> String {
    static RE: OnceLock<Option<regex::Regex>> = OnceLock::new();
    let re = RE.get_or_init(|| {
        regex::Regex::new(r"(sk-[A-Za-z0-9_\-]{16,}|(?i:bearer)\s+[A-Za-z0-9._~+/\-]{16,}=*|ghp_[A-Za-z0-9]{20,})").ok()
    });
    match re {
        Some(re) => re.replace_all(s, crate::k8s::redact::REDACTED).into_owned(),
        None => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::{ScriptedLlm, ToolCall, Usage};

    fn request(tool_result: &str) -> ChatRequest {
        ChatRequest {
            model: "m".into(),
            messages: vec![
                Message::user("validate dev"),
                Message::tool_calls(vec![ToolCall::new("c1", "validate", "{}")]),
                Message::tool_result("c1", tool_result),
            ],
            tools: vec![],
            temperature: None,
            ..Default::default()
        }
    }

    #[test]
    fn keys_ignore_key_order_and_volatile_fields() {
        let a = request(r#"{"summary":{"errors":0,"cache_hits":3},"duration_ms":12}"#);
        let b = request(r#"{"duration_ms":99,"summary":{"cache_hits":0,"errors":0}}"#);
        let c = request(r#"{"summary":{"errors":1}}"#);
        assert_eq!(key(&a), key(&b));
        assert_ne!(key(&a), key(&c));
        assert_eq!(key(&a).len(), 32);
    }

    #[tokio::test]
    async fn record_then_replay_and_miss() {
        let dir = tempfile::tempdir().unwrap();
        let real = ScriptedLlm::new([ChatResponse::text(
            "token sk-abcdefghijklmnopqrstuv and s3cr3t-value",
            Usage::new(5, 2),
        )]);
        let rec =
            CassetteLlm::record(dir.path(), Box::new(real)).with_scrubber(|s| s.replace("s3cr3t-value", "<redacted>"));
        let req = request("{}");
        let answer = rec.complete(req.clone()).await.unwrap();
        assert!(answer.message.text().unwrap().contains("s3cr3t-value"), "the caller gets the real answer");
        let stored = std::fs::read_to_string(rec.path_for(&req)).unwrap();
        assert!(!stored.contains("s3cr3t-value") && !stored.contains("sk-abcdefghijklmnop"), "{stored}");
        let replay = CassetteLlm::replay(dir.path());
        assert_eq!(replay.mode(), CassetteMode::Replay);
        let again = replay.complete(req.clone()).await.unwrap();
        assert_eq!(again.usage, Usage::new(5, 2));
        let miss = replay.complete(request(r#"{"other":1}"#)).await.unwrap_err().to_string();
        assert!(miss.contains(RECORD_ENV) && miss.contains("validate dev"), "{miss}");
        assert!(!recording_requested(&|_| None));
        assert!(recording_requested(&|k| (k == RECORD_ENV).then(|| "1".to_string())));
    }
}
