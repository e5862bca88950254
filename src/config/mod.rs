//! `.agentops.yaml`: the optional repo-level configuration. Layout patterns, environments and
//! the clusters they map to, the repo's own URL, ignore globs, kustomize location and policies.
//! Every key is optional; unknown keys are an error naming the key.

pub(crate) mod limits;
pub mod yaml;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

use crate::error::Error;

pub const CONFIG_FILE: &str = ".agentops.yaml";

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The URL Argo CD uses for this repo; Applications with another repoURL are skipped.
    #[serde(default)]
    pub repo_url: Option<String>,
    /// Path to a kustomize (or kubectl) binary.
    #[serde(default)]
    pub kustomize: Option<PathBuf>,
    #[serde(default)]
    pub layout: Layout,
    /// Environments in promotion order (the order the file lists them), each mapped to its
    /// cluster.
    #[serde(default)]
    pub environments: IndexMap<String, Environment>,
    /// Globs of repo paths never built or checked (template folders and the like).
    #[serde(default)]
    pub ignore: Vec<String>,
    #[serde(default)]
    pub policies: Policies,
    /// Where each environment's Prometheus is reached when no URL is configured for it:
    /// through the cluster's API server service proxy to this service.
    #[serde(default)]
    pub prometheus: Prometheus,
    /// Drift check settings.
    #[serde(default)]
    pub drift: DriftConfig,
    /// The LLM planner's endpoint (any OpenAI-compatible server); flags and env win over it.
    #[serde(default)]
    pub llm: Option<LlmConfig>,
    /// Rollback settings: the error threshold and the verification time limit.
    #[serde(default)]
    pub rollback: RollbackConfig,
    /// Sizing tiers for `agentops create`: tier -> environment class -> size (merged over the
    /// built-in small/medium/large table).
    #[serde(default)]
    pub tiers: BTreeMap<String, BTreeMap<String, TierSize>>,
    /// The migration planner's time estimates.
    #[serde(default)]
    pub migrate: MigrateEstimates,
    /// Limits on untrusted input: file sizes, kustomize time and memory, response bodies.
    #[serde(default)]
    pub limits: crate::config::limits::Limits,
    /// `agentops watch`: which alert labels name the app, environment and namespace, where
    /// proposals are announced, and whether the watcher may roll back on its own.
    #[serde(default)]
    pub watch: WatchConfig,
}

/// `watch:` in `.agentops.yaml` (docs/watch.md). Every key is optional.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct WatchConfig {
    /// Alert labels that name the app, first present wins (default `app`,
    /// `app_kubernetes_io_name`).
    pub app_labels: Vec<String>,
    /// Alert labels that name the environment, or its cluster (an environment's name or its
    /// kube context), first present wins (default `env`, `cluster`).
    pub env_labels: Vec<String>,
    /// Alert labels that name the app's namespace (default `namespace`): checked against the
    /// Application's destination, and used to find the app when no app label is set.
    pub namespace_labels: Vec<String>,
    /// The environment variable holding an outgoing webhook URL (Slack-compatible JSON
    /// `{"text": ...}`) that hears about every proposal (default `AGENTOPS_WATCH_NOTIFY_URL`).
    pub notify_url_env: String,
    /// Largest alert payload accepted, in bytes (default 1 MiB).
    pub body_bytes: u64,
    /// Let the watcher roll back on its own in these environments, at most so often.
    pub auto_rollback: Option<AutoRollback>,
    /// Rules the watcher evaluates itself against each environment's Prometheus, for teams
    /// without Alertmanager: each series above the threshold is a firing alert.
    pub rules: Vec<WatchRule>,
    /// How often the rules are evaluated, in seconds (default 30).
    pub rule_interval_seconds: u64,
}

/// One rule of `watch.rules`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WatchRule {
    /// The alert's name (its `alertname` label).
    pub alert: String,
    /// A PromQL query; each series it returns is one candidate alert, labelled with the
    /// series' labels (and `env`, when the series has no environment label).
    pub expr: String,
    /// A series fires while its value is above this.
    pub above: f64,
    /// Environments whose Prometheus is asked (default: every environment).
    #[serde(default)]
    pub envs: Vec<String>,
}

impl Default for WatchConfig {
    fn default() -> Self {
        WatchConfig {
            app_labels: vec!["app".into(), "app_kubernetes_io_name".into()],
            env_labels: vec!["env".into(), "cluster".into()],
            namespace_labels: vec!["namespace".into()],
            notify_url_env: "AGENTOPS_WATCH_NOTIFY_URL".into(),
            body_bytes: 1 << 20,
            auto_rollback: None,
            rules: Vec::new(),
            rule_interval_seconds: 30,
        }
    }
}

/// `watch.auto_rollback`: the policy under which the watcher acts without a person.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AutoRollback {
    /// Environments where a proposal is carried out at once.
    pub envs: Vec<String>,
    /// Most automatic rollbacks in any hour, across restarts (default 1).
    #[serde(default = "default_max_per_hour")]
    pub max_per_hour: u32,
}

fn default_max_per_hour() -> u32 {
    1
}

/// `migrate:` in `.agentops.yaml`: how long the migration planner assumes each part takes.
/// Every key is optional; the defaults are the values shown in docs/configuration.md.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct MigrateEstimates {
    /// Provisioning, data warm-up and NetworkPolicy preparation (default 8).
    pub preparation_hours: u32,
    /// Removing the old dependency after the last environment (default 8).
    pub cleanup_hours: u32,
    /// One wave: merge, sync, watch (default 1).
    pub hours_per_wave: u32,
    /// Soak after an environment's last wave, by environment class.
    pub soak_hours: SoakHours,
    /// Merging a prepared revert (default 5).
    pub revert_minutes: u32,
    /// Argo CD syncing it (default 3); a wave's rollback adds a minute per replica to both.
    pub sync_minutes: u32,
}

impl Default for MigrateEstimates {
    fn default() -> Self {
        MigrateEstimates {
            preparation_hours: 8,
            cleanup_hours: 8,
            hours_per_wave: 1,
            soak_hours: SoakHours::default(),
            revert_minutes: 5,
            sync_minutes: 3,
        }
    }
}

/// Soak hours per environment class.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct SoakHours {
    pub dev: u32,
    pub staging: u32,
    pub prod: u32,
}

impl Default for SoakHours {
    fn default() -> Self {
        SoakHours { dev: 24, staging: 48, prod: 48 }
    }
}

impl SoakHours {
    /// By promotion rank (dev 0, staging 1, prod 2).
    pub fn by_rank(&self, rank: usize) -> u32 {
        match rank {
            0 => self.dev,
            1 => self.staging,
            _ => self.prod,
        }
    }
}

/// Replicas and container resources of one tier in one environment class.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TierSize {
    pub replicas: u32,
    pub cpu_request: String,
    pub cpu_limit: String,
    pub memory_request: String,
    pub memory_limit: String,
}

/// `llm:` in `.agentops.yaml`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LlmConfig {
    /// Base URL of an OpenAI-compatible API, e.g. `http://localhost:11434/v1` (no trailing `/`
    /// needed).
    #[serde(default)]
    pub base_url: Option<String>,
    #[serde(default)]
    pub model: Option<String>,
    /// Most model turns per request (default 12).
    #[serde(default)]
    pub max_turns: Option<usize>,
    /// Name of the environment variable that holds the API key for this endpoint. Without it
    /// a key (OPENAI_API_KEY) is sent only to the default OpenAI endpoint.
    #[serde(default)]
    pub api_key_env: Option<String>,
    /// How the model's calls are constrained (default auto): see [`Constrained`].
    #[serde(default)]
    pub constrained: Option<Constrained>,
    /// Most tokens the model may write per turn (default 1024).
    #[serde(default)]
    pub max_output_tokens: Option<u32>,
    /// Tokens the system prompt and tool catalog may take per turn (default 3000); the repo
    /// summary is shortened to fit.
    #[serde(default)]
    pub prompt_budget: Option<u64>,
}

/// `llm.constrained`: how a model is kept to calls that parse and validate.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Constrained {
    /// `strict_tools` on the OpenAI endpoint, `off` elsewhere.
    #[default]
    Auto,
    /// Plain tool calling; every call is still checked before it runs.
    Off,
    /// Each answer is JSON of a schema describing exactly one tool call (or, after a tool
    /// result, a final answer): for servers that constrain output by grammar (llama.cpp,
    /// Ollama, vLLM) and models without native tool calling.
    JsonSchema,
    /// Tools sent as OpenAI strict function schemas (`strict: true`).
    StrictTools,
}

/// `drift:` in `.agentops.yaml`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DriftConfig {
    /// Differences never reported, like Argo CD's ignoreDifferences.
    #[serde(default)]
    pub ignore: Vec<DriftIgnore>,
    /// Field managers of controllers whose writes are not drift (added to the built-in list:
    /// kube-controller-manager, cert-manager-cainjector, clusterrole-aggregation-controller, ...).
    #[serde(default)]
    pub controllers: Vec<String>,
    /// Field managers that sync git to the clusters (added to argocd-controller): fields only
    /// they own, and git leaves out, are API defaults.
    #[serde(default)]
    pub sync_managers: Vec<String>,
}

/// Ignore rule: objects by group/kind (and optionally name, namespace), fields by JSON
/// pointer (`/spec/replicas`) or dotted path prefix (`spec.template.metadata.annotations`).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DriftIgnore {
    #[serde(default)]
    pub group: String,
    pub kind: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub namespace: Option<String>,
    #[serde(default)]
    pub json_pointers: Vec<String>,
    #[serde(default)]
    pub paths: Vec<String>,
}

impl DriftIgnore {
    /// Whether the rule covers a change at `path` (dotted, with `[key=value]` list items) of
    /// an object.
    pub fn covers(&self, api_version: &str, kind: &str, namespace: Option<&str>, name: &str, path: &str) -> bool {
        let group = api_version.rsplit_once('/').map_or("", |g| g.0);
        let object = self.group == group
            && self.kind == kind
            && self.name.as_deref().is_none_or(|n| n == name)
            && self.namespace.as_deref().is_none_or(|n| Some(n) == namespace);
        let under = |prefix: &str| {
            path == prefix || path.starts_with(&format!("{prefix}.")) || path.starts_with(&format!("{prefix}["))
        };
        let dotted = self.json_pointers.iter().map(|p| {
            p.trim_start_matches('/')
                .split('/')
                .map(|s| s.replace("~1", "/").replace("~0", "~"))
                .collect::<Vec<_>>()
                .join(".")
        });
        object && (self.paths.iter().any(|p| under(p)) || dotted.into_iter().any(|p| under(&p)))
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Prometheus {
    #[serde(default = "default_prom_ns")]
    pub namespace: String,
    #[serde(default = "default_prom_svc")]
    pub service: String,
    #[serde(default = "default_prom_port")]
    pub port: String,
    /// PromQL of an app's error ratio (0..1) for rollbacks; `{app}`, `{namespace}` and
    /// `{env}` are filled in.
    #[serde(default = "default_error_rate")]
    pub error_rate: String,
}

impl Default for Prometheus {
    fn default() -> Self {
        Prometheus {
            namespace: default_prom_ns(),
            service: default_prom_svc(),
            port: default_prom_port(),
            error_rate: default_error_rate(),
        }
    }
}

fn default_error_rate() -> String {
    "http_error_ratio{app=\"{app}\",namespace=\"{namespace}\"}".into()
}

/// `rollback:` in `.agentops.yaml`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RollbackConfig {
    /// An error ratio at or above this is unhealthy (default 0.05: 5%).
    #[serde(default = "default_error_threshold")]
    pub error_threshold: f64,
    /// How long verification waits for the sync, the rollout, health and the error rate
    /// (default 300 s).
    #[serde(default = "default_verify_timeout")]
    pub verify_timeout_seconds: u64,
}

impl Default for RollbackConfig {
    fn default() -> Self {
        RollbackConfig { error_threshold: default_error_threshold(), verify_timeout_seconds: default_verify_timeout() }
    }
}

fn default_error_threshold() -> f64 {
    0.05
}
fn default_verify_timeout() -> u64 {
    300
}

fn default_prom_ns() -> String {
    "monitoring".into()
}
fn default_prom_svc() -> String {
    "prometheus-operated".into()
}
fn default_prom_port() -> String {
    "9090".into()
}

/// Where apps, overlays and Argo CD Applications live. Patterns take `*`, `**` and the
/// placeholders `{app}` and `{env}`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Layout {
    #[serde(default = "default_base")]
    pub base: Vec<String>,
    #[serde(default = "default_overlays")]
    pub overlays: Vec<String>,
    #[serde(default = "default_argocd")]
    pub argocd: Vec<String>,
}

impl Default for Layout {
    fn default() -> Self {
        Layout { base: default_base(), overlays: default_overlays(), argocd: default_argocd() }
    }
}

fn default_base() -> Vec<String> {
    vec!["apps/{app}/base".into(), "**/{app}/base".into()]
}
fn default_overlays() -> Vec<String> {
    vec!["apps/{app}/overlays/{env}".into(), "**/{app}/overlays/{env}".into()]
}
fn default_argocd() -> Vec<String> {
    vec!["argocd/**".into()]
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Environment {
    /// kube context of the environment's cluster (default: the environment's name).
    #[serde(default)]
    pub context: Option<String>,
    /// API server URL of the cluster, as Argo CD Applications name it in destination.server.
    #[serde(default)]
    pub server: Option<String>,
    /// Environment class (dev, staging, prod) for sizing.
    #[serde(default)]
    pub class: Option<String>,
    /// Prometheus base URL for this environment (else the service proxy).
    #[serde(default)]
    pub prometheus_url: Option<String>,
    /// StorageClass for volumes created in this environment (else the cluster's default).
    #[serde(default)]
    pub storage_class: Option<String>,
    /// The cloud the cluster runs in (`aws`, `gcp`, `azure`, `local`, ...): what a migration
    /// to a managed service checks (else read from the cluster's nodes and StorageClasses).
    #[serde(default)]
    pub provider: Option<String>,
    /// The cluster's Kubernetes audit log, exported as JSON lines (relative to the repo root
    /// or absolute): drift reads it to say who made each change.
    #[serde(default)]
    pub audit_log: Option<PathBuf>,
    /// Kubernetes version (`1.33`) of the cluster, for validate's deprecated and removed API
    /// checks (default: the newest agentops knows).
    #[serde(default)]
    pub kubernetes_version: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default, schemars::JsonSchema, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    #[default]
    Error,
    Warning,
    Info,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Info => "info",
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Policies {
    #[serde(default, rename = "required-labels")]
    pub required_labels: LabelsPolicy,
    #[serde(default, rename = "resource-limits")]
    pub resource_limits: LimitsPolicy,
    #[serde(default, rename = "image-tag")]
    pub image_tag: Toggle,
    #[serde(default, rename = "network-policy")]
    pub network_policy: Toggle,
    #[serde(default, rename = "argocd-path")]
    pub argocd_path: Toggle,
    #[serde(default)]
    pub schema: Toggle,
    /// Directories (or files) of Rego policies, relative to the repo root (default `policy`).
    #[serde(default = "default_rego_paths")]
    pub rego: Vec<String>,
    /// Findings not reported, each with the reason why.
    #[serde(default)]
    pub suppressions: Vec<Suppression>,
    /// The other built-in checks of `agentops validate`, by id (docs/validate.md lists them):
    /// on or off, and their severity, for every environment class or per class. Unknown ids
    /// are refused by validate, naming the key.
    #[serde(flatten)]
    pub checks: BTreeMap<String, CheckPolicy>,
}

impl Default for Policies {
    fn default() -> Self {
        Policies {
            required_labels: LabelsPolicy::default(),
            resource_limits: LimitsPolicy::default(),
            image_tag: Toggle::default(),
            network_policy: Toggle::default(),
            argocd_path: Toggle::default(),
            schema: Toggle::default(),
            rego: default_rego_paths(),
            suppressions: Vec::new(),
            checks: BTreeMap::new(),
        }
    }
}

fn default_rego_paths() -> Vec<String> {
    vec!["policy".into()]
}

/// One built-in check's settings under `policies:`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CheckPolicy {
    #[serde(default)]
    pub enabled: Option<bool>,
    /// `error`, `warning`, `info` or `off` for every environment class, or a map from class
    /// (`dev`, `staging`, `prod`) to one of them; classes left out keep their default.
    #[serde(default)]
    pub severity: Option<ClassSeverity>,
    /// Exceptions the check accepts (capabilities, ServiceAccount names, host paths,
    /// environment variable names: see the check).
    #[serde(default)]
    pub allow: Vec<String>,
    /// The least number a check asks for (minimum-replicas).
    #[serde(default)]
    pub min: Option<u32>,
}

/// A severity, or none (`off`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Error,
    Warning,
    Info,
    Off,
}

impl Level {
    pub fn severity(self) -> Option<Severity> {
        match self {
            Level::Error => Some(Severity::Error),
            Level::Warning => Some(Severity::Warning),
            Level::Info => Some(Severity::Info),
            Level::Off => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(untagged)]
pub enum ClassSeverity {
    All(Level),
    ByClass(BTreeMap<String, Level>),
}

/// A finding not to report: which check, where (globs, all optional), why, and until when.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Suppression {
    /// A check id (`run-as-non-root`, `rego/acme.images`) or a glob of ids.
    pub check: String,
    #[serde(default)]
    pub app: Option<String>,
    #[serde(default)]
    pub env: Option<String>,
    #[serde(default)]
    pub kind: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    /// Why the finding is acceptable; required.
    #[serde(default)]
    pub reason: Option<String>,
    /// Last day (YYYY-MM-DD) the suppression holds; after it the findings come back.
    #[serde(default)]
    pub expires: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Toggle {
    #[serde(default = "yes")]
    pub enabled: bool,
    #[serde(default)]
    pub severity: Severity,
}

impl Default for Toggle {
    fn default() -> Self {
        Toggle { enabled: true, severity: Severity::Error }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LabelsPolicy {
    #[serde(default = "yes")]
    pub enabled: bool,
    #[serde(default)]
    pub severity: Severity,
    #[serde(default = "default_labels")]
    pub labels: Vec<String>,
}

impl Default for LabelsPolicy {
    fn default() -> Self {
        LabelsPolicy { enabled: true, severity: Severity::Error, labels: default_labels() }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsPolicy {
    #[serde(default = "yes")]
    pub enabled: bool,
    #[serde(default)]
    pub severity: Severity,
    #[serde(default = "default_limits")]
    pub resources: Vec<String>,
}

impl Default for LimitsPolicy {
    fn default() -> Self {
        LimitsPolicy { enabled: true, severity: Severity::Error, resources: default_limits() }
    }
}

fn yes() -> bool {
    true
}
fn default_labels() -> Vec<String> {
    vec!["app.kubernetes.io/name".into()]
}
fn default_limits() -> Vec<String> {
    vec!["cpu".into(), "memory".into()]
}

impl Config {
    /// Loads `<root>/.agentops.yaml`, or the defaults when there is none.
    pub fn load(root: &Path) -> Result<Config, Error> {
        let path = root.join(CONFIG_FILE);
        // the file that sets the limits is read within the default ones
        let text = match crate::config::limits::read_file(&path, crate::config::limits::DEFAULT_FILE_BYTES) {
            Ok(bytes) => bytes,
            Err(crate::config::limits::ReadError::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Config::default());
            }
            Err(crate::config::limits::ReadError::Io(e)) => return Err(Error::io(&path, e)),
            Err(e) => return Err(Error::Config { file: CONFIG_FILE.into(), line: None, message: e.to_string() }),
        };
        match std::str::from_utf8(&text) {
            Ok(t) => Config::parse(t),
            Err(_) => {
                let (line, message) =
                    match crate::config::yaml::parse_bytes(&text, crate::config::limits::DEFAULT_FILE_BYTES) {
                        Err(e) => (Some(e.line), e.describe()),
                        Ok(_) => (None, "not UTF-8 text".to_string()),
                    };
                Err(Error::Config { file: CONFIG_FILE.into(), line, message })
            }
        }
    }

    pub fn parse(text: &str) -> Result<Config, Error> {
        if text.trim().is_empty() {
            return Ok(Config::default());
        }
        // the same reader as every repo file first: aliases bounded before serde sees them
        if let Err(e) = crate::config::yaml::parse_values(text)
            && e.is_refusal()
        {
            return Err(Error::Config { file: CONFIG_FILE.into(), line: Some(e.line), message: e.describe() });
        }
        yaml_serde::from_str(text).map_err(|e| {
            let line = e.location().map(|l| l.line() as u32);
            Error::Config {
                file: CONFIG_FILE.into(),
                line,
                message: format!("{e}. Fix or remove it; see docs/configuration.md for the keys."),
            }
        })
    }

    /// The kube context of an environment (default: the environment's own name).
    pub fn context_for(&self, env: &str) -> String {
        self.environments.get(env).and_then(|e| e.context.clone()).unwrap_or_else(|| env.to_string())
    }
}

/// Compiles a glob in the one dialect agentops reads (globset's, as ripgrep reads it): `?` one
/// character, `*` any run of characters, `**` as a whole path component any number of
/// components (`**/x`, `a/**`, `a/**/b`), `[abc]`/`[!a-z]` classes, `{a,b}` alternatives, `\`
/// escapes the next character. With `literal_separator`, `*`, `?` and classes never match a
/// `/` (paths, check names); without, they do (object names, which hold no `/`).
pub fn glob(pattern: &str, literal_separator: bool) -> Result<globset::GlobMatcher, globset::Error> {
    Ok(glob_of(pattern, literal_separator)?.compile_matcher())
}

fn glob_of(pattern: &str, literal_separator: bool) -> Result<globset::Glob, globset::Error> {
    globset::GlobBuilder::new(pattern).literal_separator(literal_separator).build()
}

/// Stand-ins for `{app}` and `{env}` while globset translates a path pattern: plain letters,
/// which it copies into the regex unescaped.
const APP_SLOT: &str = "AgentopsAppSlotQ7";
const ENV_SLOT: &str = "AgentopsEnvSlotQ7";

/// A compiled path pattern: a glob (see `glob`; `*` stays inside one path segment) in which
/// `{app}` and `{env}` each capture one segment.
#[derive(Debug, Clone)]
pub struct PathPattern {
    re: regex::bytes::Regex,
}

impl PathPattern {
    pub fn new(pattern: &str) -> Result<PathPattern, Error> {
        let bad = |e: &dyn std::fmt::Display| Error::Config {
            file: CONFIG_FILE.into(),
            line: None,
            message: format!("bad pattern {pattern:?}: {e}"),
        };
        let p = pattern.trim_matches('/').replace("{app}", APP_SLOT).replace("{env}", ENV_SLOT);
        let glob = glob_of(&p, true).map_err(|e| bad(&e))?;
        // globset matches whole paths with this regex; the captures are ours.
        let re = glob.regex().replacen(APP_SLOT, "(?P<app>[^/]+)", 1).replacen(ENV_SLOT, "(?P<env>[^/]+)", 1);
        regex::bytes::Regex::new(&re).map(|re| PathPattern { re }).map_err(|e| bad(&e))
    }

    /// Matches a repo-relative path; returns the captured app and env when it matches.
    pub fn captures(&self, path: &str) -> Option<(Option<String>, Option<String>)> {
        let c = self.re.captures(path.as_bytes())?;
        let text = |name: &str| c.name(name).map(|m| String::from_utf8_lossy(m.as_bytes()).into_owned());
        Some((text("app"), text("env")))
    }

    pub fn matches(&self, path: &str) -> bool {
        self.re.is_match(path.as_bytes())
    }
}

/// A set of globs; a path matches when it or any of its ancestors does.
#[derive(Debug, Clone, Default)]
pub struct GlobSet {
    set: globset::GlobSet,
}

impl GlobSet {
    pub fn new(globs: &[String]) -> Result<GlobSet, Error> {
        let mut set = globset::GlobSetBuilder::new();
        for g in globs {
            set.add(glob_of(g.trim_matches('/'), true).map_err(|e| Error::Config {
                file: CONFIG_FILE.into(),
                line: None,
                message: format!("bad pattern {g:?}: {e}"),
            })?);
        }
        let set = set.build().map_err(|e| Error::Config {
            file: CONFIG_FILE.into(),
            line: None,
            message: format!("bad patterns {globs:?}: {e}"),
        })?;
        Ok(GlobSet { set })
    }

    pub fn matches(&self, path: &str) -> bool {
        if self.set.is_empty() {
            return false;
        }
        let mut p = path;
        loop {
            if self.set.is_match(p) {
                return true;
            }
            match p.rfind('/') {
                Some(i) => p = &p[..i],
                None => return false,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example in docs/configuration.md is a valid configuration with what it shows.
    #[test]
    fn the_documented_example_parses() {
        let doc = include_str!("../../docs/configuration.md");
        let start = doc.find("```yaml\n").expect("a yaml block") + "```yaml\n".len();
        let end = start + doc[start..].find("```").expect("its end");
        let c = Config::parse(&doc[start..end]).unwrap_or_else(|e| panic!("{e}"));
        let prod = &c.environments["prod-west"];
        assert_eq!(prod.class.as_deref(), Some("prod"));
        assert!(prod.audit_log.is_some());
        assert_eq!(c.environments.keys().next().map(String::as_str), Some("dev"), "file order");
        assert_eq!(c.migrate, MigrateEstimates::default(), "the documented values are the defaults");
    }

    #[test]
    fn unknown_key_is_named() {
        let err = Config::parse("repo_url: x\nenvironmentz: {}\n").unwrap_err().to_string();
        assert!(err.contains("environmentz"), "{err}");
        assert!(err.contains(".agentops.yaml"), "{err}");
        let err = Config::parse("policies:\n  image-tag:\n    enabeld: false\n").unwrap_err().to_string();
        assert!(err.contains("enabeld") && err.contains("line 3"), "{err}");
    }

    #[test]
    fn defaults_and_values() {
        let c = Config::parse(
            "environments:\n  prod-west: {context: gke-west}\npolicies:\n  network-policy: {enabled: false}\n",
        )
        .unwrap();
        assert_eq!(c.context_for("prod-west"), "gke-west");
        assert_eq!(c.context_for("dev"), "dev");
        assert!(!c.policies.network_policy.enabled);
        assert!(c.policies.image_tag.enabled);
        assert_eq!(c.policies.required_labels.labels, vec!["app.kubernetes.io/name"]);
    }

    #[test]
    fn drift_ignore_rules() {
        let c = Config::parse("drift:\n  ignore:\n  - {group: apps, kind: Deployment, json_pointers: [/spec/replicas]}\n  - {kind: ConfigMap, name: x, paths: [data]}\n").unwrap();
        let (dep, cm) = (&c.drift.ignore[0], &c.drift.ignore[1]);
        assert!(dep.covers("apps/v1", "Deployment", Some("a"), "web", "spec.replicas"));
        assert!(!dep.covers("apps/v1", "Deployment", Some("a"), "web", "spec.replicasX"));
        assert!(!dep.covers("apps/v1", "StatefulSet", Some("a"), "web", "spec.replicas"));
        assert!(cm.covers("v1", "ConfigMap", None, "x", "data.key"));
        assert!(!cm.covers("v1", "ConfigMap", None, "y", "data.key"));
        assert!(
            Config::parse("drift:\n  ignore:\n  - {kind: X, jsonPointers: [/a]}\n").is_err(),
            "unknown keys are errors"
        );
    }

    #[test]
    fn patterns() {
        let p = PathPattern::new("apps/{app}/overlays/{env}").unwrap();
        assert_eq!(p.captures("apps/web/overlays/prod"), Some((Some("web".into()), Some("prod".into()))));
        assert_eq!(p.captures("apps/web/overlays/prod/x"), None);
        let p = PathPattern::new("**/{app}/overlays/{env}").unwrap();
        assert_eq!(p.captures("teams/a/web/overlays/dev"), Some((Some("web".into()), Some("dev".into()))));
        assert_eq!(p.captures("web/overlays/dev"), Some((Some("web".into()), Some("dev".into()))));
        let g = GlobSet::new(&["templates/**".into(), "*.tmpl".into()]).unwrap();
        assert!(g.matches("templates/x/kustomization.yaml"));
        assert!(g.matches("a.tmpl"));
        assert!(!g.matches("apps/templates"));
        let g = GlobSet::new(&["**/skeleton".into()]).unwrap();
        assert!(g.matches("apps/skeleton/base"));
        assert!(g.matches("skeleton"));
        assert!(!GlobSet::default().matches("x"));
        let g = GlobSet::new(&["apps/*/overlays/?ev".into(), "/{tmp,scratch}/".into()]).unwrap();
        assert!(g.matches("apps/web/overlays/dev/kustomization.yaml"));
        assert!(!g.matches("apps/web/x/overlays/dev"), "* stays in one segment");
        assert!(g.matches("scratch/a") && g.matches("tmp") && !g.matches("temp"));
        assert!(GlobSet::new(&["apps/[".into()]).unwrap_err().to_string().contains("apps/["));
        let p = PathPattern::new("clusters/*-{env}/apps/{app}").unwrap();
        assert_eq!(p.captures("clusters/eu-prod/apps/web"), Some((Some("web".into()), Some("prod".into()))));
        assert_eq!(p.captures("clusters/eu/x-prod/apps/web"), None);
        let p = PathPattern::new("apps/{app}/overlays/[!_]*").unwrap();
        assert!(p.matches("apps/web/overlays/dev") && !p.matches("apps/web/overlays/_tmp"));
        assert_eq!(p.captures("apps/wéb/overlays/dev"), Some((Some("wéb".into()), None)));
    }

    #[test]
    fn globs_are_one_dialect() {
        let names = glob("api-*", false).unwrap();
        assert!(names.is_match("api-gateway") && !names.is_match("web-api-gateway"));
        assert!(glob("*", false).unwrap().is_match("a/b"), "without literal_separator * crosses /");
        assert!(!glob("*", true).unwrap().is_match("a/b"));
        assert!(glob("a/**/b", true).unwrap().is_match("a/x/y/b") && glob("a/**/b", true).unwrap().is_match("a/b"));
        assert!(glob("web-[0-9]", false).unwrap().is_match("web-3"));
        assert!(glob("{api,web}-*", false).unwrap().is_match("web-x"));
        assert!(glob("a.c", false).unwrap().is_match("a.c") && !glob("a.c", false).unwrap().is_match("abc"));
        assert!(glob("a[", false).is_err());
    }
}
