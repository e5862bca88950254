//! Where the model lives and how it is used: base URL, model, which environment variable
//! holds the key for that endpoint, turn bound, timeout and retries. Resolved from flags,
//! then the environment, then the `llm:` section of `.agentops.yaml`.
//!
//! The key rule: `OPENAI_API_KEY` goes only to the default OpenAI endpoint. Any other
//! endpoint gets a key only when the config names its variable (`llm.api_key_env`), so a key
//! meant for one endpoint is never sent to another.

use std::time::Duration;

use super::LlmError;
pub use crate::config::Constrained;
use crate::config::LlmConfig;
use crate::error::Error;

pub const DEFAULT_BASE_URL: &str = "https://api.openai.com/v1";
/// Used only with the default OpenAI endpoint; other endpoints need a model named.
pub const DEFAULT_OPENAI_MODEL: &str = "gpt-4o-mini";
pub const DEFAULT_MAX_TURNS: usize = 12;
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);
/// Most tokens the model may write per turn unless configured: a call or a short answer
/// needs far fewer; a model that rambles is cut here.
pub const DEFAULT_MAX_OUTPUT_TOKENS: u32 = 1024;
/// Tokens the system prompt and the tool catalog may take per turn unless configured.
pub const DEFAULT_PROMPT_BUDGET: u64 = 3000;
pub const CONSTRAINED_ENV: &str = "AGENTOPS_LLM_CONSTRAINED";
pub const BASE_URL_ENV: &str = "OPENAI_BASE_URL";
pub const MODEL_ENV: &str = "AGENTOPS_LLM_MODEL";
pub const OPENAI_KEY_ENV: &str = "OPENAI_API_KEY";

/// What the command line says (`--llm-base-url`, `--model`, ...). Every field is optional.
#[derive(Debug, Clone, Default)]
pub struct LlmFlags {
    pub base_url: Option<String>,
    pub model: Option<String>,
    pub max_turns: Option<usize>,
    pub timeout: Option<Duration>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct LlmSettings {
    /// Without a trailing `/`.
    pub base_url: String,
    pub model: String,
    /// The environment variable holding the key for this endpoint (from the config).
    pub api_key_env: Option<String>,
    pub max_turns: usize,
    /// Per request, retries not included.
    pub timeout: Duration,
    /// Extra attempts after a timeout. (429, 5xx and connection failures are retried by the
    /// transport: 3 times, with exponential backoff, honoring Retry-After.)
    pub retries: u32,
    /// Wait before the first timeout retry; doubles with each one.
    pub retry_backoff: Duration,
    pub temperature: Option<f32>,
    /// `llm.constrained` as configured (see [`LlmSettings::constrained_mode`]).
    pub constrained: Constrained,
    pub max_output_tokens: u32,
    pub prompt_budget: u64,
}

impl LlmSettings {
    /// Settings for an endpoint and model, with the defaults for everything else.
    pub fn new(base_url: &str, model: &str) -> LlmSettings {
        LlmSettings {
            base_url: normalize_base_url(base_url),
            model: model.to_string(),
            api_key_env: None,
            max_turns: DEFAULT_MAX_TURNS,
            timeout: DEFAULT_TIMEOUT,
            retries: 3,
            retry_backoff: Duration::from_millis(500),
            // The server's default: reasoning models reject any other temperature.
            temperature: None,
            constrained: Constrained::Auto,
            max_output_tokens: DEFAULT_MAX_OUTPUT_TOKENS,
            prompt_budget: DEFAULT_PROMPT_BUDGET,
        }
    }

    /// The mode in effect: `auto` is `strict_tools` on the OpenAI endpoint (which enforces
    /// strict schemas) and `off` elsewhere (servers differ in what they enforce; pick
    /// `json_schema` for llama.cpp, Ollama or vLLM with a small model).
    pub fn constrained_mode(&self) -> Constrained {
        match self.constrained {
            Constrained::Auto if self.is_default_openai() => Constrained::StrictTools,
            Constrained::Auto => Constrained::Off,
            other => other,
        }
    }

    /// Flags > environment > `.agentops.yaml`, reading the process environment.
    pub fn resolve(flags: &LlmFlags, config: Option<&LlmConfig>) -> Result<LlmSettings, Error> {
        LlmSettings::resolve_with(flags, config, &|k| std::env::var(k).ok())
    }

    /// As [`LlmSettings::resolve`], with the environment given as a lookup function.
    pub fn resolve_with(
        flags: &LlmFlags,
        config: Option<&LlmConfig>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<LlmSettings, Error> {
        let nonempty = |v: Option<String>| v.filter(|s| !s.trim().is_empty());
        let base_url = nonempty(flags.base_url.clone())
            .or_else(|| nonempty(env(BASE_URL_ENV)))
            .or_else(|| nonempty(config.and_then(|c| c.base_url.clone())))
            .unwrap_or_else(|| DEFAULT_BASE_URL.to_string());
        let base_url = normalize_base_url(&base_url);
        if !(base_url.starts_with("http://") || base_url.starts_with("https://")) {
            return Err(Error::Usage(format!(
                "LLM base URL {base_url:?} is not an http(s) URL; pass e.g. --llm-base-url http://localhost:11434/v1"
            )));
        }
        let model = nonempty(flags.model.clone())
            .or_else(|| nonempty(env(MODEL_ENV)))
            .or_else(|| nonempty(config.and_then(|c| c.model.clone())));
        let model = match model {
            Some(m) => m,
            None if base_url == DEFAULT_BASE_URL => DEFAULT_OPENAI_MODEL.to_string(),
            None => {
                return Err(Error::Usage(format!(
                    "no model named for the LLM endpoint {base_url}: pass --model, set {MODEL_ENV}, or set \
                     llm.model in .agentops.yaml"
                )));
            }
        };
        let max_turns = flags.max_turns.or(config.and_then(|c| c.max_turns)).unwrap_or(DEFAULT_MAX_TURNS);
        if max_turns == 0 {
            return Err(Error::Usage("llm max_turns must be at least 1".into()));
        }
        let mut s = LlmSettings::new(&base_url, &model);
        s.api_key_env = nonempty(config.and_then(|c| c.api_key_env.clone()));
        s.max_turns = max_turns;
        if let Some(t) = flags.timeout {
            s.timeout = t;
        }
        s.constrained = match nonempty(env(CONSTRAINED_ENV)) {
            Some(v) => parse_constrained(&v)?,
            None => config.and_then(|c| c.constrained).unwrap_or_default(),
        };
        if let Some(n) = config.and_then(|c| c.max_output_tokens) {
            if n == 0 {
                return Err(Error::Usage("llm max_output_tokens must be at least 1".into()));
            }
            s.max_output_tokens = n;
        }
        if let Some(n) = config.and_then(|c| c.prompt_budget) {
            s.prompt_budget = n;
        }
        Ok(s)
    }

    /// Whether an endpoint is configured at all (for `--planner auto`): a base URL or model
    /// from any source, or an OpenAI key in the environment.
    pub fn configured(flags: &LlmFlags, config: Option<&LlmConfig>, env: &dyn Fn(&str) -> Option<String>) -> bool {
        let set = |v: Option<String>| v.is_some_and(|s| !s.trim().is_empty());
        set(flags.base_url.clone())
            || set(flags.model.clone())
            || set(env(BASE_URL_ENV))
            || set(env(MODEL_ENV))
            || set(env(OPENAI_KEY_ENV))
            || config.is_some_and(|c| set(c.base_url.clone()) || set(c.model.clone()))
    }

    pub fn is_default_openai(&self) -> bool {
        self.base_url == DEFAULT_BASE_URL
    }

    /// The key to send to this endpoint: from `api_key_env` when the config names one, else
    /// `OPENAI_API_KEY` for the default OpenAI endpoint only, else none (empty).
    pub fn api_key(&self, env: &dyn Fn(&str) -> Option<String>) -> Result<String, LlmError> {
        if let Some(name) = &self.api_key_env {
            let key = env(name).filter(|k| !k.trim().is_empty()).ok_or_else(|| {
                LlmError::Config(format!(
                    "llm.api_key_env in .agentops.yaml names {name}, but {name} is not set in the environment"
                ))
            })?;
            if self.base_url.starts_with("http://") && !is_loopback(&self.base_url) {
                return Err(LlmError::Config(format!(
                    "refusing to send the API key from {name} over plain http to {}; use an https URL",
                    self.base_url
                )));
            }
            return Ok(key);
        }
        if self.is_default_openai() {
            return env(OPENAI_KEY_ENV).filter(|k| !k.trim().is_empty()).ok_or_else(|| {
                LlmError::Config(format!(
                    "{OPENAI_KEY_ENV} is not set; {DEFAULT_BASE_URL} needs it. For a local server pass \
                     --llm-base-url (or set {BASE_URL_ENV} or llm.base_url)"
                ))
            });
        }
        Ok(String::new())
    }
}

fn parse_constrained(v: &str) -> Result<Constrained, Error> {
    match v.trim().to_ascii_lowercase().replace('-', "_").as_str() {
        "auto" => Ok(Constrained::Auto),
        "off" => Ok(Constrained::Off),
        "json_schema" => Ok(Constrained::JsonSchema),
        "strict_tools" => Ok(Constrained::StrictTools),
        other => Err(Error::Usage(format!(
            "{CONSTRAINED_ENV}={other:?} is not a mode: use auto, off, json_schema or strict_tools"
        ))),
    }
}

/// Trims spaces and trailing `/` (async-openai appends `/chat/completions` as it is).
pub fn normalize_base_url(url: &str) -> String {
    url.trim().trim_end_matches('/').to_string()
}

/// The host of an http(s) URL.
fn host_of(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let authority = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if let Some(v6) = authority.strip_prefix('[') {
        return v6.split(']').next().unwrap_or_default();
    }
    authority.split(':').next().unwrap_or_default()
}

fn is_loopback(url: &str) -> bool {
    let host = host_of(url);
    host.eq_ignore_ascii_case("localhost") || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn env_of(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |k| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string())
    }

    #[test]
    fn flags_beat_env_beat_config() {
        let config = Config::parse(
            "llm:\n  base_url: http://cfg:8000/v1/\n  model: cfg-model\n  max_turns: 5\n  api_key_env: CFG_KEY\n",
        )
        .unwrap();
        let cfg = config.llm.as_ref();
        let env = env_of(&[("OPENAI_BASE_URL", "http://env:1/v1"), ("AGENTOPS_LLM_MODEL", "env-model")]);
        let s = LlmSettings::resolve_with(&LlmFlags::default(), cfg, &env).unwrap();
        assert_eq!((s.base_url.as_str(), s.model.as_str(), s.max_turns), ("http://env:1/v1", "env-model", 5));
        assert_eq!(s.api_key_env.as_deref(), Some("CFG_KEY"));
        let flags =
            LlmFlags { base_url: Some("http://flag:2/v1//".into()), model: Some("m".into()), ..Default::default() };
        let s = LlmSettings::resolve_with(&flags, cfg, &env).unwrap();
        assert_eq!((s.base_url.as_str(), s.model.as_str()), ("http://flag:2/v1", "m"));
        let s = LlmSettings::resolve_with(&LlmFlags::default(), cfg, &env_of(&[])).unwrap();
        assert_eq!((s.base_url.as_str(), s.model.as_str()), ("http://cfg:8000/v1", "cfg-model"));
        // defaults
        let s = LlmSettings::resolve_with(&LlmFlags::default(), None, &env_of(&[])).unwrap();
        assert_eq!((s.base_url.as_str(), s.model.as_str(), s.max_turns), (DEFAULT_BASE_URL, DEFAULT_OPENAI_MODEL, 12));
        // another endpoint needs a model
        let flags = LlmFlags { base_url: Some("http://localhost:11434/v1".into()), ..Default::default() };
        let e = LlmSettings::resolve_with(&flags, None, &env_of(&[])).unwrap_err().to_string();
        assert!(e.contains("--model"), "{e}");
        let e = Config::parse("llm:\n  modle: x\n").unwrap_err().to_string();
        assert!(e.contains("modle"), "{e}");
    }

    #[test]
    fn the_openai_key_goes_only_to_openai() {
        let env = env_of(&[("OPENAI_API_KEY", "sk-canary"), ("LOCAL_KEY", "local-secret")]);
        let openai = LlmSettings::new("https://api.openai.com/v1/", "m");
        assert_eq!(openai.api_key(&env).unwrap(), "sk-canary");
        let local = LlmSettings::new("http://127.0.0.1:8080/v1", "m");
        assert_eq!(local.api_key(&env).unwrap(), "");
        let other = LlmSettings::new("https://llm.example.com/v1", "m");
        assert_eq!(other.api_key(&env).unwrap(), "");
        let mut named = other.clone();
        named.api_key_env = Some("LOCAL_KEY".into());
        assert_eq!(named.api_key(&env).unwrap(), "local-secret");
        let mut missing = other.clone();
        missing.api_key_env = Some("NOPE".into());
        assert!(missing.api_key(&env).unwrap_err().to_string().contains("NOPE"));
        let mut cleartext = LlmSettings::new("http://llm.example.com/v1", "m");
        cleartext.api_key_env = Some("LOCAL_KEY".into());
        assert!(cleartext.api_key(&env).unwrap_err().to_string().contains("plain http"));
        let mut loopback = LlmSettings::new("http://[::1]:9000/v1", "m");
        loopback.api_key_env = Some("LOCAL_KEY".into());
        assert_eq!(loopback.api_key(&env).unwrap(), "local-secret");
        assert!(LlmSettings::new(DEFAULT_BASE_URL, "m").api_key(&env_of(&[])).is_err());
    }

    #[test]
    fn configured_when_anything_names_an_endpoint() {
        let none = env_of(&[]);
        assert!(!LlmSettings::configured(&LlmFlags::default(), None, &none));
        assert!(LlmSettings::configured(&LlmFlags::default(), None, &env_of(&[("OPENAI_API_KEY", "k")])));
        let cfg = LlmConfig { model: Some("x".into()), ..Default::default() };
        assert!(LlmSettings::configured(&LlmFlags::default(), Some(&cfg), &none));
        assert!(!LlmSettings::configured(&LlmFlags::default(), Some(&LlmConfig::default()), &none));
    }
}
