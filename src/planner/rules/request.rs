//! Workflow requests and their slots: what each workflow needs, how a slot's raw text is
//! checked against the repo (environments and apps that exist, DNS labels, explicit image
//! tags), and the defaults that fill what may be left out.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::LazyLock;

use regex::Regex;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::repo::Repo;

/// What the planner knows about the repo: the names a request may refer to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RepoFacts {
    /// Environments in the repo's order.
    pub environments: Vec<String>,
    /// App names, sorted.
    pub apps: Vec<String>,
}

/// How a word names environments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnvMatch {
    One(String),
    /// A group word such as "prod" for prod-west, prod-east and prod-central.
    Several(Vec<String>),
    /// "all", "everywhere": every environment.
    All,
    NoMatch,
}

impl RepoFacts {
    pub fn new(environments: &[&str], apps: &[&str]) -> RepoFacts {
        RepoFacts {
            environments: environments.iter().map(|s| s.to_string()).collect(),
            apps: apps.iter().map(|s| s.to_string()).collect(),
        }
    }

    pub fn from_repo(repo: &Repo) -> RepoFacts {
        RepoFacts { environments: repo.environments.clone(), apps: repo.apps.keys().cloned().collect() }
    }

    pub fn is_app(&self, name: &str) -> bool {
        self.apps.iter().any(|a| a == name)
    }

    /// The environments a word names: the exact name, or a group prefix ("prod" for
    /// `prod-*`; "production" counts as "prod").
    pub fn match_env(&self, word: &str) -> EnvMatch {
        let w = word.trim().to_ascii_lowercase();
        if let Some(e) = self.environments.iter().find(|e| e.eq_ignore_ascii_case(&w)) {
            return EnvMatch::One(e.clone());
        }
        if matches!(w.as_str(), "all" | "*" | "everywhere" | "every") {
            return EnvMatch::All;
        }
        let stem = match w.as_str() {
            "production" | "prd" => "prod",
            "development" => "dev",
            "stage" | "stg" => "staging",
            other => other,
        };
        if let Some(e) = self.environments.iter().find(|e| e.as_str() == stem) {
            return EnvMatch::One(e.clone());
        }
        let group: Vec<String> = self
            .environments
            .iter()
            .filter(|e| e.len() > stem.len() + 1 && e.starts_with(stem) && e.as_bytes()[stem.len()] == b'-')
            .cloned()
            .collect();
        match group.len() {
            0 => EnvMatch::NoMatch,
            1 => EnvMatch::One(group[0].clone()),
            _ => EnvMatch::Several(group),
        }
    }
}

/// The workflows people can ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Workflow {
    Validate,
    Drift,
    Harmonize,
    Rollback,
    Create,
    Migrate,
    Commit,
}

/// What kind of value a slot takes; decides parsing, validation and the hint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlotKind {
    /// One environment of the repo.
    Env,
    /// Environments of the repo (group words expand; "all" means every one).
    EnvList,
    /// One existing app.
    App,
    /// Existing apps.
    AppList,
    /// The name of a new app: a DNS label that is not an app yet.
    NewApp,
    /// A DNS label (namespace).
    DnsLabel,
    /// A container image with an explicit tag or digest, not `latest`.
    Image,
    /// A TCP port.
    Port,
    /// A Kubernetes kind ("ingresses" → Ingress).
    Kind,
    /// `key=value` pairs (annotations, labels).
    KeyValues,
    /// Annotation or label keys.
    Keys,
    /// Free text (a reason).
    Text,
    /// A git revision.
    Revision,
    /// A name such as a dependency (redis, elasticache).
    Name,
    /// An object-name glob.
    Glob,
    /// Ticket references (SEC-2025-01).
    Refs,
    /// Documented exceptions a change may overwrite: `all`, or `FILE:LINE` each.
    Overrides,
    /// A size such as 10Gi, or "no" for none.
    Quantity,
    /// One of a fixed set of words.
    Choice(&'static [&'static str]),
    /// Any of a fixed set of words ("none" for none).
    Choices(&'static [&'static str]),
}

impl SlotKind {
    fn is_list(self) -> bool {
        matches!(
            self,
            SlotKind::EnvList
                | SlotKind::AppList
                | SlotKind::KeyValues
                | SlotKind::Keys
                | SlotKind::Refs
                | SlotKind::Overrides
                | SlotKind::Choices(_)
        )
    }

    /// How to write the value after `slot=` in a hint.
    fn placeholder(self) -> &'static str {
        match self {
            SlotKind::Env => "ENV",
            SlotKind::EnvList => "ENV[,ENV]",
            SlotKind::App | SlotKind::NewApp => "APP",
            SlotKind::AppList => "APP[,APP]",
            SlotKind::DnsLabel => "NAME",
            SlotKind::Image => "REPO:TAG",
            SlotKind::Port => "PORT",
            SlotKind::Kind => "KIND",
            SlotKind::KeyValues => "KEY=VALUE",
            SlotKind::Keys => "KEY",
            SlotKind::Text => "\"TEXT\"",
            SlotKind::Revision => "REV",
            SlotKind::Name => "NAME",
            SlotKind::Glob => "GLOB",
            SlotKind::Refs => "ID[,ID]",
            SlotKind::Overrides => "all|FILE:LINE",
            SlotKind::Quantity => "SIZE",
            SlotKind::Choice(_) => "WORD",
            SlotKind::Choices(_) => "WORD[,WORD]",
        }
    }
}

/// Whether a slot must be given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    Required,
    Optional,
    /// Required unless one of these other slots is given (at least one change).
    UnlessAny(&'static [&'static str]),
}

/// What an omitted slot becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlotDefault {
    /// Absent: null, or an empty list/map.
    Nothing,
    /// An empty list that the tool reads as "all".
    AllImplicit,
    /// Every environment of the repo, listed.
    AllEnvs,
    Value(&'static str),
    /// The value of another slot (namespace defaults to the app name).
    SameAs(&'static str),
}

/// One piece of information a workflow needs.
#[derive(Debug, Clone, Copy)]
pub struct SlotSpec {
    pub name: &'static str,
    pub question: &'static str,
    pub kind: SlotKind,
    pub need: Need,
    pub default: SlotDefault,
    /// Asked in a conversation even when optional (the default is offered).
    pub ask: bool,
}

const fn slot(
    name: &'static str,
    question: &'static str,
    kind: SlotKind,
    need: Need,
    default: SlotDefault,
) -> SlotSpec {
    SlotSpec { name, question, kind, need, default, ask: false }
}

const fn asked(mut s: SlotSpec) -> SlotSpec {
    s.ask = true;
    s
}

use Need::{Optional, Required};
use SlotDefault::{AllEnvs, AllImplicit, Nothing, SameAs, Value as Dflt};
use SlotKind as K;

const ENV_FILTER: SlotSpec = slot("env", "Which environments?", K::EnvList, Optional, AllImplicit);
const APP_FILTER: SlotSpec = slot("app", "Which apps?", K::AppList, Optional, AllImplicit);

const VALIDATE_SLOTS: &[SlotSpec] = &[ENV_FILTER, APP_FILTER];
const DRIFT_SLOTS: &[SlotSpec] = &[ENV_FILTER, APP_FILTER];
const HARMONIZE_SLOTS: &[SlotSpec] = &[
    slot("kind", "Which kind of object? (e.g. Ingress, Deployment)", K::Kind, Required, Nothing),
    slot("name", "Only objects whose name matches this glob?", K::Glob, Optional, Nothing),
    ENV_FILTER,
    APP_FILTER,
    slot(
        "set_annotations",
        "Annotation to set (key=value)?",
        K::KeyValues,
        Need::UnlessAny(&["remove_annotations", "set_labels", "remove_labels"]),
        Nothing,
    ),
    slot("remove_annotations", "Annotation keys to remove?", K::Keys, Optional, Nothing),
    slot("set_labels", "Labels to set (key=value)?", K::KeyValues, Optional, Nothing),
    slot("remove_labels", "Label keys to remove?", K::Keys, Optional, Nothing),
    slot("reason", "Reason for the change (a ticket or a sentence)?", K::Text, Required, Nothing),
    slot(
        "override_exceptions",
        "Override which documented exceptions? (all, or FILE:LINE)",
        K::Overrides,
        Optional,
        Nothing,
    ),
];
const ROLLBACK_SLOTS: &[SlotSpec] = &[
    slot("app", "Application name?", K::App, Required, Nothing),
    slot("env", "Which environment?", K::Env, Required, Nothing),
    slot("to", "Revision to roll back to? (default: the last healthy one)", K::Revision, Optional, Nothing),
];
const CREATE_SLOTS: &[SlotSpec] = &[
    slot("name", "Application name?", K::NewApp, Required, Nothing),
    asked(slot("namespace", "Namespace?", K::DnsLabel, Optional, SameAs("name"))),
    asked(slot("envs", "Target environments?", K::EnvList, Optional, AllEnvs)),
    slot("image", "Container image (with an explicit tag, e.g. nginx:1.27)?", K::Image, Required, Nothing),
    asked(slot("port", "Container port?", K::Port, Optional, Dflt("8080"))),
    asked(slot("storage", "Persistent storage? (a size such as 10Gi, or no)", K::Quantity, Optional, Nothing)),
    asked(slot("tier", "Size tier? (small, medium, large)", K::Name, Optional, Dflt("small"))),
    asked(slot(
        "expose",
        "Exposure? (clusterip, loadbalancer, ingress)",
        K::Choice(EXPOSE),
        Optional,
        Dflt("clusterip"),
    )),
    slot("host", "Ingress host?", K::Name, Optional, Nothing),
    asked(slot(
        "with",
        "Extras? (servicemonitor, networkpolicy, hpa, pdb, or none)",
        K::Choices(EXTRAS),
        Optional,
        Nothing,
    )),
];
const EXPOSE: &[&str] = &["clusterip", "loadbalancer", "ingress"];
const EXTRAS: &[&str] = &["servicemonitor", "networkpolicy", "hpa", "pdb"];
const MIGRATE_SLOTS: &[SlotSpec] = &[
    slot("from", "Which dependency are you migrating away from? (e.g. redis)", K::Name, Required, Nothing),
    slot("to", "What replaces it? (e.g. elasticache)", K::Name, Required, Nothing),
    asked(slot("envs", "Which environments?", K::EnvList, Optional, AllEnvs)),
];
const COMMIT_SLOTS: &[SlotSpec] = &[
    slot("reason", "Why is this change made?", K::Text, Optional, Nothing),
    slot("refs", "Ticket references?", K::Refs, Optional, Nothing),
];

impl Workflow {
    pub const ALL: [Workflow; 7] = [
        Workflow::Create,
        Workflow::Validate,
        Workflow::Drift,
        Workflow::Harmonize,
        Workflow::Rollback,
        Workflow::Migrate,
        Workflow::Commit,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Workflow::Validate => "validate",
            Workflow::Drift => "drift",
            Workflow::Harmonize => "harmonize",
            Workflow::Rollback => "rollback",
            Workflow::Create => "create",
            Workflow::Migrate => "migrate",
            Workflow::Commit => "commit",
        }
    }

    /// The chat slash command.
    pub fn slash(self) -> &'static str {
        match self {
            Workflow::Validate => "/validate-infra",
            Workflow::Drift => "/infrastructure-drift",
            Workflow::Harmonize => "/infrastructure-harmonize",
            Workflow::Rollback => "/infrastructure-rollback",
            Workflow::Create => "/infrastructure-create",
            Workflow::Migrate => "/infrastructure-migrate",
            Workflow::Commit => "/commit",
        }
    }

    /// The command, or its aliases: `/validate`, `/drift`, ... and `/infrastructure-<name>`
    /// for every workflow (`/infrastructure-validate` too).
    pub fn from_slash(cmd: &str) -> Option<Workflow> {
        let c = cmd.trim().to_ascii_lowercase();
        let name = c.strip_prefix("/infrastructure-").or_else(|| c.strip_prefix('/'));
        Workflow::ALL.into_iter().find(|w| c == w.slash() || name == Some(w.name()))
    }

    pub fn description(self) -> &'static str {
        match self {
            Workflow::Validate => "build every overlay and check schemas, policies and Argo CD paths",
            Workflow::Drift => "compare what each cluster runs with what git renders",
            Workflow::Harmonize => "set or remove an annotation or label on every object of a kind",
            Workflow::Rollback => "roll an app back to its last healthy revision in one environment",
            Workflow::Create => "scaffold a new app across environments",
            Workflow::Migrate => "plan a migration from one dependency to another",
            Workflow::Commit => "draft a commit message from the staged change",
        }
    }

    /// An example request, for help texts.
    pub fn example(self) -> &'static str {
        match self {
            Workflow::Validate => "validate staging",
            Workflow::Drift => "check prod-west for drift",
            Workflow::Harmonize => "enforce TLS 1.3 on all ingresses, reason SEC-2025-01",
            Workflow::Rollback => "roll back auth-service in prod-west",
            Workflow::Create => "/infrastructure-create name=prometheus image=prom/prometheus:v2.53.0",
            Workflow::Migrate => "migrate from redis to elasticache",
            Workflow::Commit => "/commit reason=\"bump api\" refs=SEC-2025-01",
        }
    }

    pub fn slots(self) -> &'static [SlotSpec] {
        match self {
            Workflow::Validate => VALIDATE_SLOTS,
            Workflow::Drift => DRIFT_SLOTS,
            Workflow::Harmonize => HARMONIZE_SLOTS,
            Workflow::Rollback => ROLLBACK_SLOTS,
            Workflow::Create => CREATE_SLOTS,
            Workflow::Migrate => MIGRATE_SLOTS,
            Workflow::Commit => COMMIT_SLOTS,
        }
    }

    pub fn slot(self, name: &str) -> Option<&'static SlotSpec> {
        self.slots().iter().find(|s| s.name == name)
    }

    /// Slots that positional slash-command arguments fill, in order (after environment and
    /// app names have been recognized); the last may take the rest when it is a list.
    pub fn positional(self) -> &'static [&'static str] {
        match self {
            Workflow::Validate | Workflow::Drift => &[],
            Workflow::Harmonize => &["kind", "set_annotations"],
            Workflow::Rollback => &["to"],
            Workflow::Create => &["name", "image"],
            Workflow::Migrate => &["from", "to"],
            Workflow::Commit => &["refs"],
        }
    }

    /// The slot a `key=` in a slash command means: the slot name, or a common alias.
    pub fn slot_for_key(self, key: &str) -> Option<&'static str> {
        let k = key.trim().to_ascii_lowercase().replace('-', "_");
        if let Some(s) = self.slot(&k) {
            return Some(s.name);
        }
        let candidates: &[&str] = match k.as_str() {
            "env" | "envs" | "environment" | "environments" => &["env", "envs"],
            "app" | "apps" | "application" | "applications" => &["app", "name"],
            "annotation" | "set_annotation" | "annotations" => &["set_annotations"],
            "remove_annotation" => &["remove_annotations"],
            "label" | "set_label" | "labels" => &["set_labels"],
            "remove_label" => &["remove_labels"],
            "ref" | "ticket" | "tickets" => &["refs"],
            "ns" => &["namespace"],
            "revision" | "rev" | "target" => &["to"],
            "source" => &["from"],
            "message" | "why" => &["reason"],
            _ => &[],
        };
        candidates.iter().find_map(|c| self.slot(c).map(|s| s.name))
    }
}

/// A request for one workflow, with every slot filled and checked.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "workflow", rename_all = "snake_case", deny_unknown_fields)]
pub enum WorkflowRequest {
    /// Validate overlays (all when the lists are empty).
    Validate {
        #[serde(default)]
        env: Vec<String>,
        #[serde(default)]
        app: Vec<String>,
    },
    /// Compare live clusters with git (all when the lists are empty).
    Drift {
        #[serde(default)]
        env: Vec<String>,
        #[serde(default)]
        app: Vec<String>,
    },
    /// One annotation or label setting across every object of a kind.
    Harmonize {
        kind: String,
        /// Object-name glob; every object of the kind when absent.
        #[serde(default)]
        name: Option<String>,
        #[serde(default)]
        env: Vec<String>,
        #[serde(default)]
        app: Vec<String>,
        #[serde(default)]
        set_annotations: BTreeMap<String, String>,
        #[serde(default)]
        remove_annotations: Vec<String>,
        #[serde(default)]
        set_labels: BTreeMap<String, String>,
        #[serde(default)]
        remove_labels: Vec<String>,
        reason: String,
        /// Documented exceptions the change may overwrite: `all`, or `FILE:LINE` each.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        override_exceptions: Vec<String>,
    },
    /// Roll one app back in one environment.
    Rollback {
        app: String,
        env: String,
        /// Target revision; the last healthy one when absent.
        #[serde(default)]
        to: Option<String>,
    },
    /// Scaffold a new app.
    Create {
        name: String,
        namespace: String,
        envs: Vec<String>,
        image: String,
        port: u16,
        /// Persistent volume size; none when absent.
        #[serde(default)]
        storage: Option<String>,
        #[serde(default)]
        tier: Option<String>,
        #[serde(default)]
        expose: Option<String>,
        #[serde(default)]
        host: Option<String>,
        #[serde(default)]
        with: Vec<String>,
    },
    /// Plan a migration from one dependency to another.
    Migrate { from: String, to: String, envs: Vec<String> },
    /// Draft a commit message for the staged change.
    Commit {
        #[serde(default)]
        reason: Option<String>,
        #[serde(default)]
        refs: Vec<String>,
    },
}

impl WorkflowRequest {
    pub fn workflow(&self) -> Workflow {
        match self {
            WorkflowRequest::Validate { .. } => Workflow::Validate,
            WorkflowRequest::Drift { .. } => Workflow::Drift,
            WorkflowRequest::Harmonize { .. } => Workflow::Harmonize,
            WorkflowRequest::Rollback { .. } => Workflow::Rollback,
            WorkflowRequest::Create { .. } => Workflow::Create,
            WorkflowRequest::Migrate { .. } => Workflow::Migrate,
            WorkflowRequest::Commit { .. } => Workflow::Commit,
        }
    }

    /// The request's fields as a JSON object, without the `workflow` tag: the arguments a
    /// workflow tool takes when its argument type mirrors the request.
    pub fn fields(&self) -> Value {
        let mut v = serde_json::to_value(self).unwrap_or(Value::Null);
        if let Some(m) = v.as_object_mut() {
            m.shift_remove("workflow");
        }
        v
    }

    /// Checks a typed request (from JSON or a model) against the repo, slot by slot.
    pub fn check(&self, facts: &RepoFacts) -> Result<(), Vec<SlotProblem>> {
        let draft = Draft::from_request(self);
        draft.resolve(facts).map(|_| ())
    }
}

/// What is wrong with a slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Issue {
    Missing,
    Invalid(String),
    /// The text named several candidates for a one-value slot.
    Ambiguous {
        given: String,
        choices: Vec<String>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotProblem {
    pub slot: &'static str,
    pub issue: Issue,
}

/// A request being put together: the workflow and the raw text of each slot given so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Draft {
    pub workflow: Workflow,
    /// Raw items per slot (several for lists).
    pub slots: BTreeMap<&'static str, Vec<String>>,
}

impl Draft {
    pub fn new(workflow: Workflow) -> Draft {
        Draft { workflow, slots: BTreeMap::new() }
    }

    pub fn is_set(&self, slot: &str) -> bool {
        self.slots.get(slot).is_some_and(|v| !v.is_empty())
    }

    /// Adds items to a slot (lists accumulate; a one-value slot keeps every item so that
    /// two candidates show up as ambiguous).
    pub fn add(&mut self, slot: &'static str, items: impl IntoIterator<Item = String>) {
        let entry = self.slots.entry(slot).or_default();
        for i in items {
            let i = i.trim().to_string();
            if !i.is_empty() && !entry.contains(&i) {
                entry.push(i);
            }
        }
    }

    /// Replaces a slot with an answer, split the way the slot's kind reads.
    pub fn set_answer(&mut self, slot: &'static str, answer: &str) {
        let kind = self.workflow.slot(slot).map_or(SlotKind::Text, |s| s.kind);
        self.slots.insert(slot, split_items(kind, answer));
    }

    /// A draft holding a typed request's values (to check requests built elsewhere).
    pub fn from_request(req: &WorkflowRequest) -> Draft {
        let mut d = Draft::new(req.workflow());
        let Value::Object(fields) = req.fields() else { return d };
        for spec in req.workflow().slots() {
            let items: Vec<String> = match fields.get(spec.name) {
                Some(Value::String(s)) => vec![s.clone()],
                Some(Value::Number(n)) => vec![n.to_string()],
                Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).map(str::to_string).collect(),
                Some(Value::Object(m)) => {
                    m.iter().map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default())).collect()
                }
                _ => Vec::new(),
            };
            if !items.is_empty() {
                d.slots.insert(spec.name, items);
            }
        }
        d
    }

    /// Checks one given slot (None when it is not given).
    pub fn check_slot(&self, slot: &str, facts: &RepoFacts) -> Option<Result<Value, Issue>> {
        let spec = self.workflow.slot(slot)?;
        let items = self.slots.get(slot).filter(|v| !v.is_empty())?;
        Some(parse_slot(spec.kind, items, facts))
    }

    /// Every problem, in slot order; empty when the draft resolves.
    pub fn problems(&self, facts: &RepoFacts) -> Vec<SlotProblem> {
        self.resolve(facts).err().unwrap_or_default()
    }

    /// The typed request, or every slot that is missing, invalid or ambiguous.
    pub fn resolve(&self, facts: &RepoFacts) -> Result<WorkflowRequest, Vec<SlotProblem>> {
        let mut obj = Map::new();
        obj.insert("workflow".into(), json!(self.workflow.name()));
        let mut problems = Vec::new();
        let mut pending_same_as = Vec::new();
        for spec in self.workflow.slots() {
            match self.check_slot(spec.name, facts) {
                Some(Ok(v)) => {
                    obj.insert(spec.name.into(), v);
                }
                Some(Err(issue)) => problems.push(SlotProblem { slot: spec.name, issue }),
                None => {
                    let missing = match spec.need {
                        Need::Required => true,
                        Need::Optional => false,
                        Need::UnlessAny(others) => !others.iter().any(|o| self.is_set(o)),
                    };
                    if missing {
                        problems.push(SlotProblem { slot: spec.name, issue: Issue::Missing });
                        continue;
                    }
                    match spec.default {
                        SlotDefault::Nothing | SlotDefault::AllImplicit => {
                            let empty = match spec.kind {
                                K::KeyValues => json!({}),
                                k if k.is_list() => json!([]),
                                _ => Value::Null,
                            };
                            obj.insert(spec.name.into(), empty);
                        }
                        SlotDefault::AllEnvs => {
                            obj.insert(spec.name.into(), json!(facts.environments));
                        }
                        SlotDefault::Value(v) => match parse_slot(spec.kind, &[v.to_string()], facts) {
                            Ok(v) => {
                                obj.insert(spec.name.into(), v);
                            }
                            Err(issue) => problems.push(SlotProblem { slot: spec.name, issue }),
                        },
                        SlotDefault::SameAs(other) => pending_same_as.push((spec.name, other)),
                    }
                }
            }
        }
        for (slot, items) in &self.slots {
            if self.workflow.slot(slot).is_none() && !items.is_empty() {
                let what = if *slot == "arguments" { "unexpected arguments" } else { "unexpected slot" };
                problems.push(SlotProblem {
                    slot,
                    issue: Issue::Invalid(format!(
                        "{what}: {} (this workflow takes: {})",
                        items.join(" "),
                        self.workflow.slots().iter().map(|s| s.name).collect::<Vec<_>>().join(", ")
                    )),
                });
            }
        }
        for (slot, other) in pending_same_as {
            if let Some(v) = obj.get(other).cloned() {
                obj.insert(slot.into(), v);
            }
        }
        if let (Some(Value::String(a)), Some(Value::String(b))) = (obj.get("from"), obj.get("to"))
            && self.workflow == Workflow::Migrate
            && a.eq_ignore_ascii_case(b)
        {
            problems
                .push(SlotProblem { slot: "to", issue: Issue::Invalid(format!("\"{b}\" is what you migrate from")) });
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        serde_json::from_value(Value::Object(obj))
            .map_err(|e| vec![SlotProblem { slot: "request", issue: Issue::Invalid(e.to_string()) }])
    }

    /// The question for a slot, with the choices and the default that apply.
    pub fn question(&self, slot: &str, facts: &RepoFacts, issue: Option<&Issue>) -> String {
        let Some(spec) = self.workflow.slot(slot) else { return format!("{slot}?") };
        let choices: Vec<String> = match issue {
            Some(Issue::Ambiguous { choices, .. }) => choices.clone(),
            _ => match spec.kind {
                K::Env | K::EnvList => facts.environments.clone(),
                K::App | K::AppList => facts.apps.clone(),
                _ => Vec::new(),
            },
        };
        let mut q = spec.question.to_string();
        if !choices.is_empty() {
            q.push_str(&format!(" ({})", shorten(&choices)));
        }
        if let Some(d) = self.default_text(spec, facts) {
            q.push_str(&format!(" [{d}]"));
        }
        q
    }

    /// The default offered for an optional slot, as text.
    pub fn default_text(&self, spec: &SlotSpec, facts: &RepoFacts) -> Option<String> {
        if spec.need != Need::Optional {
            return None;
        }
        match spec.default {
            SlotDefault::Nothing => None,
            SlotDefault::AllImplicit => Some("all".into()),
            SlotDefault::AllEnvs => Some("all".into()),
            SlotDefault::Value(v) => Some(v.into()),
            SlotDefault::SameAs(other) => {
                self.check_slot(other, facts).and_then(|r| r.ok()).and_then(|v| v.as_str().map(str::to_string))
            }
        }
    }

    /// How to pass a slot in a one-shot request, e.g. `env=ENV (one of: dev, staging)`.
    pub fn hint(&self, slot: &str, facts: &RepoFacts, issue: &Issue) -> String {
        let Some(spec) = self.workflow.slot(slot) else { return String::new() };
        let choices: Vec<String> = match (issue, spec.kind) {
            (Issue::Ambiguous { choices, .. }, _) => choices.clone(),
            (_, K::Env | K::EnvList) => facts.environments.clone(),
            (_, K::App | K::AppList) => facts.apps.clone(),
            _ => Vec::new(),
        };
        let mut h = format!("Pass {}={}", spec.name, spec.kind.placeholder());
        if !choices.is_empty() {
            h.push_str(&format!(" (one of: {})", shorten(&choices)));
        }
        h
    }

    /// One line per problem: what is wrong, the question, and how to pass the slot.
    pub fn describe_problems(&self, problems: &[SlotProblem], facts: &RepoFacts) -> String {
        problems
            .iter()
            .map(|p| {
                let what = match &p.issue {
                    Issue::Missing => "missing".to_string(),
                    Issue::Invalid(m) => m.clone(),
                    Issue::Ambiguous { given, choices } => {
                        format!("\"{given}\" could be any of {}", choices.join(", "))
                    }
                };
                let question = self.workflow.slot(p.slot).map(|s| s.question).unwrap_or_default();
                format!("  {}: {what}. {question} {}", p.slot, self.hint(p.slot, facts, &p.issue))
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

fn shorten(items: &[String]) -> String {
    const MAX: usize = 15;
    if items.len() <= MAX {
        items.join(", ")
    } else {
        format!("{}, … {} more", items[..MAX].join(", "), items.len() - MAX)
    }
}

/// Splits an answer into items the way a slot kind reads it: lists of names on commas,
/// spaces and "and"; `key=value` lists on commas only (values may hold spaces).
pub fn split_items(kind: SlotKind, text: &str) -> Vec<String> {
    let text = text.trim();
    match kind {
        K::EnvList | K::AppList | K::Keys | K::Refs | K::Overrides => text
            .split(|c: char| c == ',' || c.is_whitespace())
            .map(|s| s.trim_matches(|c: char| c == '"' || c == '\''))
            .filter(|s| !s.is_empty() && !s.eq_ignore_ascii_case("and"))
            .map(str::to_string)
            .collect(),
        K::KeyValues => text.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect(),
        _ if text.is_empty() => Vec::new(),
        _ => vec![text.trim_matches(|c: char| c == '"' || c == '\'').to_string()],
    }
}

static DNS_LABEL: LazyLock<Option<Regex>> = LazyLock::new(|| Regex::new(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$").ok());
static QUALIFIED_KEY: LazyLock<Option<Regex>> = LazyLock::new(|| {
    Regex::new(r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")
        .ok()
});
static REVISION: LazyLock<Option<Regex>> = LazyLock::new(|| Regex::new(r"^[A-Za-z0-9][A-Za-z0-9._/~^-]*$").ok());
static NAME: LazyLock<Option<Regex>> = LazyLock::new(|| Regex::new(r"^[A-Za-z0-9][A-Za-z0-9._-]*$").ok());
static GLOB: LazyLock<Option<Regex>> = LazyLock::new(|| Regex::new(r"^[A-Za-z0-9*?.\[\]_-]+$").ok());
static REF: LazyLock<Option<Regex>> = LazyLock::new(|| Regex::new(r"^[A-Za-z0-9][A-Za-z0-9._#/-]*$").ok());

fn is_match(re: &LazyLock<Option<Regex>>, s: &str) -> bool {
    re.as_ref().is_some_and(|r| r.is_match(s))
}

fn check_env(item: &str, facts: &RepoFacts) -> Result<String, Issue> {
    match facts.match_env(item) {
        EnvMatch::One(e) => Ok(e),
        EnvMatch::Several(choices) => Err(Issue::Ambiguous { given: item.to_string(), choices }),
        EnvMatch::All => Err(Issue::Invalid("name one environment, not all".into())),
        EnvMatch::NoMatch => Err(Issue::Invalid(format!(
            "unknown environment \"{item}\" (environments: {})",
            facts.environments.join(", ")
        ))),
    }
}

fn check_app(item: &str, facts: &RepoFacts) -> Result<String, Issue> {
    if facts.is_app(item) {
        Ok(item.to_string())
    } else {
        Err(Issue::Invalid(format!("unknown app \"{item}\" (apps: {})", shorten(&facts.apps))))
    }
}

fn one(items: &[String]) -> Result<&str, Issue> {
    match items {
        [one] => Ok(one.as_str()),
        [] => Err(Issue::Missing),
        many => Err(Issue::Ambiguous { given: many.join(", "), choices: many.to_vec() }),
    }
}

/// Parses and checks a slot's items into the JSON value of the request field.
pub fn parse_slot(kind: SlotKind, items: &[String], facts: &RepoFacts) -> Result<Value, Issue> {
    let invalid = |m: String| Err(Issue::Invalid(m));
    match kind {
        K::Env => {
            if let [only] = items {
                return check_env(only, facts).map(Value::String);
            }
            let envs: BTreeSet<String> = items.iter().filter_map(|i| check_env(i, facts).ok()).collect();
            if envs.len() == 1 {
                return Ok(json!(envs.into_iter().next()));
            }
            Err(Issue::Ambiguous { given: items.join(", "), choices: envs.into_iter().collect() })
        }
        K::EnvList => {
            let mut picked = BTreeSet::new();
            for i in items {
                match facts.match_env(i) {
                    EnvMatch::One(e) => {
                        picked.insert(e);
                    }
                    EnvMatch::Several(g) => picked.extend(g),
                    EnvMatch::All => picked.extend(facts.environments.iter().cloned()),
                    EnvMatch::NoMatch => {
                        return invalid(format!(
                            "unknown environment \"{i}\" (environments: {})",
                            facts.environments.join(", ")
                        ));
                    }
                }
            }
            // the repo's order, not the order given
            Ok(json!(facts.environments.iter().filter(|e| picked.contains(*e)).collect::<Vec<_>>()))
        }
        K::App => check_app(one(items)?, facts).map(Value::String),
        K::AppList => {
            if items.iter().any(|i| i.eq_ignore_ascii_case("all")) {
                return Ok(json!([]));
            }
            let apps = items.iter().map(|i| check_app(i, facts)).collect::<Result<Vec<_>, _>>()?;
            Ok(json!(apps))
        }
        K::NewApp => {
            let n = one(items)?;
            if !is_match(&DNS_LABEL, n) {
                return invalid(format!(
                    "\"{n}\" is not a DNS label (lowercase letters, digits and '-', at most 63, starting and ending with a letter or digit)"
                ));
            }
            if facts.is_app(n) {
                return invalid(format!("an app named \"{n}\" already exists"));
            }
            Ok(json!(n))
        }
        K::DnsLabel => {
            let n = one(items)?;
            if is_match(&DNS_LABEL, n) { Ok(json!(n)) } else { invalid(format!("\"{n}\" is not a DNS label")) }
        }
        K::Image => {
            let i = one(items)?;
            crate::k8s::image::check_pinned(i).map(|()| json!(i)).map_err(Issue::Invalid)
        }
        K::Port => {
            let p = one(items)?;
            match p.parse::<u16>() {
                Ok(n) if n > 0 => Ok(json!(n)),
                _ => invalid(format!("\"{p}\" is not a port (1-65535)")),
            }
        }
        K::Kind => {
            let k = one(items)?;
            crate::k8s::kinds::normalize_kind(k)
                .map(Value::String)
                .ok_or_else(|| Issue::Invalid(format!("\"{k}\" is not a Kubernetes kind (e.g. Ingress, Deployment)")))
        }
        K::KeyValues => {
            let mut m = Map::new();
            for i in items {
                let Some((k, v)) = i.split_once('=') else {
                    return invalid(format!("\"{i}\" is not key=value"));
                };
                let (k, v) = (k.trim(), v.trim().trim_matches(|c: char| c == '"' || c == '\''));
                if !is_match(&QUALIFIED_KEY, k) {
                    return invalid(format!("\"{k}\" is not a valid annotation or label key"));
                }
                m.insert(k.to_string(), json!(v));
            }
            Ok(Value::Object(m))
        }
        K::Keys => {
            for k in items {
                if !is_match(&QUALIFIED_KEY, k) {
                    return invalid(format!("\"{k}\" is not a valid annotation or label key"));
                }
            }
            Ok(json!(items))
        }
        K::Text => {
            let t = items.join(" ");
            let t = t.trim();
            if t.is_empty() { Err(Issue::Missing) } else { Ok(json!(t)) }
        }
        K::Revision => {
            let r = one(items)?;
            if is_match(&REVISION, r) { Ok(json!(r)) } else { invalid(format!("\"{r}\" is not a git revision")) }
        }
        K::Name => {
            let n = one(items)?;
            if is_match(&NAME, n) { Ok(json!(n)) } else { invalid(format!("\"{n}\" is not a name")) }
        }
        K::Glob => {
            let g = one(items)?;
            if is_match(&GLOB, g) { Ok(json!(g)) } else { invalid(format!("\"{g}\" is not a name glob")) }
        }
        K::Refs => {
            for r in items {
                if !is_match(&REF, r) {
                    return invalid(format!("\"{r}\" is not a reference"));
                }
            }
            Ok(json!(items))
        }
        K::Overrides => {
            // "every", "documented" (exceptions) mean all of them
            let mut out: Vec<String> = Vec::new();
            for i in items {
                let v = match i.to_ascii_lowercase().as_str() {
                    "all" | "every" | "each" | "documented" | "*" => "all".to_string(),
                    _ if !i.contains(char::is_whitespace) && i.contains('/') => i.clone(),
                    _ => return invalid(format!("\"{i}\" is neither all nor a FILE:LINE the plan lists")),
                };
                if !out.contains(&v) {
                    out.push(v);
                }
            }
            Ok(json!(out))
        }
        K::Quantity => {
            let q = one(items)?;
            if matches!(q.to_ascii_lowercase().as_str(), "no" | "none" | "n" | "-") {
                return Ok(Value::Null);
            }
            match crate::k8s::diff::quantity(&json!(q)) {
                Some(n) if n > 0.0 => Ok(json!(q)),
                _ => invalid(format!("\"{q}\" is not a size (e.g. 10Gi), or say no")),
            }
        }
        K::Choice(words) => {
            let w = one(items)?.to_ascii_lowercase();
            if words.contains(&w.as_str()) {
                Ok(json!(w))
            } else {
                invalid(format!("\"{w}\" is not one of {}", words.join(", ")))
            }
        }
        K::Choices(words) => {
            let mut out = Vec::new();
            for i in items.iter().flat_map(|i| i.split([',', ' '])).map(str::trim).filter(|i| !i.is_empty()) {
                let w = i.to_ascii_lowercase();
                if matches!(w.as_str(), "none" | "no" | "-") {
                    continue;
                }
                if !words.contains(&w.as_str()) {
                    return invalid(format!("\"{w}\" is not one of {}", words.join(", ")));
                }
                if !out.contains(&w) {
                    out.push(w);
                }
            }
            Ok(json!(out))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts() -> RepoFacts {
        RepoFacts::new(
            &["dev", "prod-central", "prod-east", "prod-west", "staging"],
            &["auth-service", "grafana", "redis"],
        )
    }

    #[test]
    fn env_words_match_exactly_or_as_a_group() {
        let f = facts();
        assert_eq!(f.match_env("staging"), EnvMatch::One("staging".into()));
        assert_eq!(f.match_env("Prod-West"), EnvMatch::One("prod-west".into()));
        assert_eq!(f.match_env("stg"), EnvMatch::One("staging".into()));
        assert!(matches!(f.match_env("production"), EnvMatch::Several(g) if g.len() == 3));
        assert_eq!(f.match_env("qa"), EnvMatch::NoMatch);
        assert_eq!(f.match_env("pro"), EnvMatch::NoMatch, "only whole words before '-' form groups");
    }

    #[test]
    fn create_defaults_and_checks() {
        let f = facts();
        let mut d = Draft::new(Workflow::Create);
        d.add("name", ["prometheus".to_string()]);
        d.add("image", ["prom/prometheus:v2.53.0".to_string()]);
        let r = d.resolve(&f).unwrap();
        assert_eq!(
            r,
            WorkflowRequest::Create {
                name: "prometheus".into(),
                namespace: "prometheus".into(),
                envs: f.environments.clone(),
                image: "prom/prometheus:v2.53.0".into(),
                port: 8080,
                storage: None,
                tier: Some("small".into()),
                expose: Some("clusterip".into()),
                host: None,
                with: Vec::new(),
            }
        );
        d.set_answer("name", "grafana");
        let p = d.problems(&f);
        assert!(matches!(&p[0].issue, Issue::Invalid(m) if m.contains("already exists")), "{p:?}");
        d.set_answer("name", "Bad_Name");
        assert!(matches!(&d.problems(&f)[0].issue, Issue::Invalid(m) if m.contains("DNS label")));
    }

    #[test]
    fn requests_round_trip_and_check() {
        let f = facts();
        let r = WorkflowRequest::Rollback { app: "auth-service".into(), env: "prod-west".into(), to: None };
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["workflow"], "rollback");
        assert_eq!(serde_json::from_value::<WorkflowRequest>(v).unwrap(), r);
        assert!(r.check(&f).is_ok());
        let bad = WorkflowRequest::Rollback { app: "nope".into(), env: "prod".into(), to: None };
        let p = bad.check(&f).unwrap_err();
        assert_eq!(p.len(), 2);
        assert!(matches!(&p[1].issue, Issue::Ambiguous { choices, .. } if choices.len() == 3));
        let unknown: Result<WorkflowRequest, _> =
            serde_json::from_value(json!({"workflow": "validate", "env": [], "bogus": 1}));
        assert!(unknown.is_err(), "unknown fields are rejected");
    }

    #[test]
    fn the_request_schema_has_one_branch_per_workflow() {
        let schema = crate::tools::parameters_schema::<WorkflowRequest>();
        let branches = schema["oneOf"].as_array().unwrap();
        assert_eq!(branches.len(), Workflow::ALL.len());
        for b in branches {
            let tag = &b["properties"]["workflow"];
            let name = tag["const"].as_str().or_else(|| tag["enum"][0].as_str()).unwrap();
            assert!(Workflow::ALL.iter().any(|w| w.name() == name), "{name}");
            assert_eq!(b["additionalProperties"], false, "{b}");
        }
    }

    #[test]
    fn harmonize_needs_at_least_one_change() {
        let f = facts();
        let mut d = Draft::new(Workflow::Harmonize);
        d.add("kind", ["ingresses".to_string()]);
        d.add("reason", ["SEC-1".to_string()]);
        let p = d.problems(&f);
        assert_eq!(p, vec![SlotProblem { slot: "set_annotations", issue: Issue::Missing }]);
        d.add("remove_labels", ["legacy".to_string()]);
        let r = d.resolve(&f).unwrap();
        assert!(matches!(r, WorkflowRequest::Harmonize { ref kind, .. } if kind == "Ingress"));
    }

    #[test]
    fn questions_show_choices_and_defaults() {
        let f = facts();
        let mut d = Draft::new(Workflow::Create);
        d.add("name", ["prometheus".to_string()]);
        assert_eq!(d.question("namespace", &f, None), "Namespace? [prometheus]");
        assert_eq!(d.question("port", &f, None), "Container port? [8080]");
        let r = Draft::new(Workflow::Rollback);
        let amb = Issue::Ambiguous {
            given: "prod".into(),
            choices: vec!["prod-central".into(), "prod-east".into(), "prod-west".into()],
        };
        assert_eq!(r.question("env", &f, Some(&amb)), "Which environment? (prod-central, prod-east, prod-west)");
    }
}
