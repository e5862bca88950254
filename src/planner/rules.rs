//! The rules planner: slash commands and common phrasings become typed workflow requests,
//! with slots filled from the text using the repo's real environment and app names. No
//! network. Refusals are checked before anything else; what it cannot map it says so and
//! lists what it can do. A complete request becomes a plan through one mapping table
//! ([`WORKFLOW_STEPS`]): a workflow whose tools are not registered yet answers that it is
//! not available.

pub(crate) mod phrases;
pub mod request;
pub(crate) mod slots;
pub(crate) mod wiring;

use std::fmt::Write as _;

use serde_json::Value;

use crate::exec::{Plan, Step};
use crate::tools::{ToolError, ToolRegistry};
pub use request::{
    Draft, EnvMatch, Issue, Need, RepoFacts, SlotDefault, SlotKind, SlotProblem, SlotSpec, Workflow, WorkflowRequest,
};
pub use slots::{FillError, Prompter, ScriptedPrompter, SlotFiller};

use phrases::{COMPILED, CUE_THRESHOLD, STOPWORDS};

/// What the rules make of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Interpretation {
    /// A workflow, with the slots the text gave (some may still be missing).
    Request(Draft),
    /// Never mapped to anything: the reason.
    Refused(String),
    /// Not something the rules recognize.
    Unknown,
    /// The user asked what the planner can do.
    Help,
}

/// One step of a workflow's plan: the tool, its arguments from the request, a summary.
pub struct WorkflowStep {
    pub workflow: Workflow,
    pub tool: &'static str,
    pub args: fn(&WorkflowRequest) -> Value,
    pub summary: fn(&WorkflowRequest) -> String,
}

/// Workflow → tool calls. A workflow with no row here (or whose tools are not registered)
/// answers "not available yet". When a workflow tool lands (drift_report, harmonize_plan,
/// ...), one line here wires it, e.g.
/// `WorkflowStep { workflow: Workflow::Drift, tool: "drift_report", args: WorkflowRequest::fields, summary }`.
pub const WORKFLOW_STEPS: &[WorkflowStep] = &[
    WorkflowStep { workflow: Workflow::Create, tool: "render_overlay", args: WorkflowRequest::fields, summary },
    WorkflowStep {
        workflow: Workflow::Create,
        tool: "create_app",
        args: WorkflowRequest::fields,
        summary: |r| format!("Write and commit: {}", summary(r)),
    },
    WorkflowStep { workflow: Workflow::Validate, tool: "validate", args: WorkflowRequest::fields, summary },
    WorkflowStep { workflow: Workflow::Drift, tool: "drift_report", args: WorkflowRequest::fields, summary },
    WorkflowStep { workflow: Workflow::Harmonize, tool: "harmonize_plan", args: WorkflowRequest::fields, summary },
    WorkflowStep {
        workflow: Workflow::Harmonize,
        tool: "harmonize_apply",
        args: WorkflowRequest::fields,
        summary: |r| format!("Write, verify and commit: {}", summary(r)),
    },
    WorkflowStep { workflow: Workflow::Rollback, tool: "rollback_plan", args: WorkflowRequest::fields, summary },
    WorkflowStep {
        workflow: Workflow::Rollback,
        tool: "git_revert",
        args: WorkflowRequest::fields,
        summary: wiring::rollback::revert_summary,
    },
    WorkflowStep {
        workflow: Workflow::Rollback,
        tool: "argocd_sync",
        args: wiring::rollback::sync_args,
        summary: wiring::rollback::sync_summary,
    },
    WorkflowStep {
        workflow: Workflow::Rollback,
        tool: "rollback_verify",
        args: wiring::rollback::verify_args,
        summary: wiring::rollback::verify_summary,
    },
    WorkflowStep { workflow: Workflow::Migrate, tool: "dependency_scan", args: WorkflowRequest::fields, summary },
    WorkflowStep {
        workflow: Workflow::Migrate,
        tool: "dependency_graph",
        args: WorkflowRequest::fields,
        summary: |r| format!("Dependency graph and phased plan: {}", summary(r)),
    },
    WorkflowStep {
        workflow: Workflow::Migrate,
        tool: "write_doc",
        args: |r| serde_json::json!({ "migration": r.fields() }),
        summary: |r| format!("Write the migration document: {}", summary(r)),
    },
    WorkflowStep { workflow: Workflow::Commit, tool: "draft_commit_message", args: WorkflowRequest::fields, summary },
    WorkflowStep {
        workflow: Workflow::Commit,
        tool: "commit",
        args: WorkflowRequest::fields,
        summary: wiring::commit::plan_summary,
    },
];

/// Arguments a step takes from an earlier step of the same plan when it runs: (tool, its
/// argument, the earlier tool, JSON pointer into that tool's output). What a write does is
/// what the person was shown: each acting step gets the fingerprint of the plan shown and
/// writes nothing if the repo or the clusters moved on in between; a commit uses the message
/// shown.
pub const BINDINGS: &[(&str, &str, &str, &str)] = &[
    ("create_app", "expect", "render_overlay", "/fingerprint"),
    ("harmonize_apply", "expect", "harmonize_plan", "/fingerprint"),
    ("git_revert", "expect", "rollback_plan", "/fingerprint"),
    ("commit", "message", "draft_commit_message", "/message"),
];

/// For a step a model proposes one at a time: when it is the acting step of an earlier
/// planning step of the same run, with the same arguments (every argument both have), and
/// the model did not pass the bound argument itself, bind it to that step's output, so the
/// write acts only on what was shown. `outputs[i]` is step i's output when it succeeded.
pub fn bind_to_shown(mut step: Step, earlier: &[Step], outputs: &[Option<&Value>]) -> Step {
    let tool = step.tool.clone();
    for (_, arg, from, pointer) in BINDINGS.iter().filter(|b| b.0 == tool) {
        if step.args.get(*arg).is_some_and(|v| !v.is_null()) {
            continue;
        }
        let same_args = |a: &Value| {
            let (Some(a), Some(b)) = (a.as_object(), step.args.as_object()) else { return false };
            a.iter().filter(|(k, _)| k.as_str() != *arg).all(|(k, v)| b.get(k).is_none_or(|w| w == v))
        };
        let shown = (0..earlier.len()).rev().find(|&i| {
            earlier[i].tool == *from
                && same_args(&earlier[i].args)
                && outputs.get(i).copied().flatten().and_then(|o| o.pointer(pointer)).is_some()
        });
        if let Some(i) = shown {
            step = step.bind(arg, i, pointer);
        }
    }
    step
}

/// A one-line description of a request, for plan steps.
pub fn summary(req: &WorkflowRequest) -> String {
    fn scope(env: &[String], app: &[String]) -> String {
        let mut s = String::new();
        if !app.is_empty() {
            let _ = write!(s, " of {}", app.join(", "));
        }
        if env.is_empty() {
            s.push_str(" in every environment");
        } else {
            let _ = write!(s, " in {}", env.join(", "));
        }
        s
    }
    match req {
        WorkflowRequest::Validate { env, app } => format!("Validate the overlays{}", scope(env, app)),
        WorkflowRequest::Drift { env, app } => format!("Compare live clusters with git{}", scope(env, app)),
        WorkflowRequest::Harmonize {
            kind,
            set_annotations,
            remove_annotations,
            set_labels,
            remove_labels,
            reason,
            override_exceptions,
            ..
        } => {
            let mut changes: Vec<String> = set_annotations.iter().map(|(k, v)| format!("set {k}={v}")).collect();
            changes.extend(remove_annotations.iter().map(|k| format!("remove annotation {k}")));
            changes.extend(set_labels.iter().map(|(k, v)| format!("set label {k}={v}")));
            changes.extend(remove_labels.iter().map(|k| format!("remove label {k}")));
            let overriding = match override_exceptions.as_slice() {
                [] => String::new(),
                [one] if one == "all" => ", overriding every documented exception".to_string(),
                many => format!(", overriding the exceptions at {}", many.join(", ")),
            };
            format!("On every {kind}: {} (reason: {reason}){overriding}", changes.join(", "))
        }
        WorkflowRequest::Rollback { app, env, to } => match to {
            Some(t) => format!("Roll {app} back to {t} in {env}"),
            None => format!("Roll {app} back to its last healthy revision in {env}"),
        },
        WorkflowRequest::Create { name, envs, image, .. } => {
            format!("Create app {name} ({image}) in {}", envs.join(", "))
        }
        WorkflowRequest::Migrate { from, to, envs } => {
            format!("Plan the migration from {from} to {to} in {}", envs.join(", "))
        }
        WorkflowRequest::Commit { .. } => "Draft a commit message for the staged change".to_string(),
    }
}

/// What a complete request becomes.
#[derive(Debug, Clone, PartialEq)]
pub enum Planned {
    Ready(Plan),
    NotAvailable { workflow: Workflow, message: String },
}

/// Whether every tool of a workflow is registered.
pub fn is_available(workflow: Workflow, registry: &ToolRegistry) -> bool {
    let mut steps = WORKFLOW_STEPS.iter().filter(|s| s.workflow == workflow).peekable();
    steps.peek().is_some() && steps.all(|s| registry.get(s.tool).is_some())
}

/// The plan for a complete request. Arguments are checked against each tool's schema here.
pub fn plan_request(req: &WorkflowRequest, registry: &ToolRegistry, request: &str) -> Result<Planned, ToolError> {
    let workflow = req.workflow();
    if !is_available(workflow, registry) {
        return Ok(Planned::NotAvailable {
            workflow,
            message: format!(
                "the {} workflow is not available yet (recognized: {}); nothing was planned",
                workflow.name(),
                serde_json::to_string(req).unwrap_or_default()
            ),
        });
    }
    let mut plan = Plan::new(request);
    for s in WORKFLOW_STEPS.iter().filter(|s| s.workflow == workflow) {
        let mut step = Step::new(registry, s.tool, (s.args)(req), (s.summary)(req))?;
        for (_, arg, from, pointer) in BINDINGS.iter().filter(|b| b.0 == s.tool) {
            if let Some(i) = plan.steps.iter().position(|p| p.tool == *from) {
                step = step.bind(arg, i, pointer);
            }
        }
        plan.steps.push(step);
    }
    Ok(Planned::Ready(plan))
}

/// What the planner can do: every workflow, its slash command, an example, and whether it
/// is available yet.
pub fn capabilities(registry: &ToolRegistry) -> String {
    let mut s = String::from("I can run these workflows (slash command, or say it in your own words):\n");
    for w in Workflow::ALL {
        let status = if is_available(w, registry) { "" } else { " (not available yet)" };
        let _ = writeln!(s, "  {:<27} {}{status}", w.slash(), w.description());
        let _ = writeln!(s, "  {:<27}   e.g. \"{}\"", "", w.example());
    }
    s.push_str("Slash commands take key=value or positional arguments; missing ones are asked for.\n");
    s
}

/// The refusal reason, when the text asks for something never mapped to a workflow
/// (checked before any planner, rules or LLM, sees the request; needs no repo).
pub fn refusal(text: &str) -> Option<String> {
    let slash = text.trim_start().starts_with('/');
    COMPILED
        .refusals
        .iter()
        .find(|(re, r)| (!slash || r.in_slash) && re.is_match(text))
        .map(|(_, r)| r.reason.to_string())
}

/// The rules planner for one repo.
#[derive(Debug, Clone)]
pub struct RulesPlanner {
    facts: RepoFacts,
}

/// The outcome of a one-shot request (no conversation).
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Plan {
        request: Box<WorkflowRequest>,
        plan: Plan,
    },
    /// Slots are missing, invalid or ambiguous: one message listing every one.
    NeedsInput {
        workflow: Workflow,
        message: String,
    },
    NotAvailable {
        workflow: Workflow,
        message: String,
    },
    Refused {
        reason: String,
    },
    Unknown {
        message: String,
    },
    Help {
        message: String,
    },
}

impl RulesPlanner {
    pub fn new(facts: RepoFacts) -> RulesPlanner {
        RulesPlanner { facts }
    }

    pub fn facts(&self) -> &RepoFacts {
        &self.facts
    }

    /// The refusal reason, when the text asks for something never mapped to a workflow.
    pub fn refusal(&self, text: &str) -> Option<String> {
        refusal(text)
    }

    /// Maps a request to a workflow with the slots the text gives.
    pub fn interpret(&self, text: &str) -> Interpretation {
        let text = text.trim();
        if let Some(reason) = self.refusal(text) {
            return Interpretation::Refused(reason);
        }
        if text.starts_with('/') {
            return self.interpret_slash(text);
        }
        if COMPILED.help.as_ref().is_some_and(|h| h.is_match(text)) {
            return Interpretation::Help;
        }
        let Some(workflow) = intent(text) else {
            return Interpretation::Unknown;
        };
        let mut draft = Draft::new(workflow);
        // words inside captured values (an annotation value, a reason) are not mentions
        let mut masked = text.to_string();
        // every row of the workflow that matches fills the slots still empty, the first
        // matching row first
        for (caps, row) in COMPILED
            .phrases
            .iter()
            .filter(|(_, row)| row.workflow == workflow)
            .filter_map(|(re, row)| re.captures(text).map(|c| (c, row)))
        {
            for (slot, value) in row.fixed {
                if let Some(spec) = row.workflow.slot(slot)
                    && !draft.is_set(spec.name)
                {
                    draft.add(spec.name, request::split_items(spec.kind, value));
                }
            }
            for spec in row.workflow.slots() {
                if let Some(m) = caps.name(spec.name)
                    && !draft.is_set(spec.name)
                {
                    let v = clean_capture(m.as_str(), spec.kind);
                    if !v.is_empty() && !STOPWORDS.contains(&v.to_ascii_lowercase().as_str()) {
                        draft.add(spec.name, request::split_items(spec.kind, &v));
                        blank(&mut masked, m.range());
                    }
                }
            }
        }
        self.extract(text, &mut masked, &mut draft);
        self.mentions(&masked, &mut draft);
        Interpretation::Request(draft)
    }

    /// Slot values found by the extractor table, for slots still empty.
    fn extract(&self, text: &str, masked: &mut String, draft: &mut Draft) {
        for (re, ex) in &COMPILED.extractors {
            let Some(spec) = draft.workflow.slot(ex.slot) else { continue };
            if draft.is_set(spec.name) {
                continue;
            }
            let found: Vec<regex::Match> = if ex.all {
                re.captures_iter(text).filter_map(|c| c.name("v")).collect()
            } else {
                re.captures(text).and_then(|c| c.name("v")).into_iter().collect()
            };
            for m in found {
                let v = clean_capture(m.as_str(), spec.kind);
                if !v.is_empty() && !STOPWORDS.contains(&v.to_ascii_lowercase().as_str()) {
                    draft.add(spec.name, request::split_items(spec.kind, &v));
                    blank(masked, m.range());
                }
            }
        }
    }

    /// Environment and app names (and, for harmonize, kind words) mentioned anywhere in the
    /// text fill the workflow's environment, app and kind slots that are still empty.
    fn mentions(&self, text: &str, draft: &mut Draft) {
        let env_slot = ["env", "envs"].into_iter().find_map(|s| draft.workflow.slot(s)).map(|s| s.name);
        let app_slot = draft.workflow.slot("app").map(|s| s.name);
        let kind_slot = draft.workflow.slot("kind").map(|s| s.name);
        let (env_given, app_given, kind_given) = (
            env_slot.is_some_and(|s| draft.is_set(s)),
            app_slot.is_some_and(|s| draft.is_set(s)),
            kind_slot.is_some_and(|s| draft.is_set(s)),
        );
        for word in words(text) {
            let lower = word.to_ascii_lowercase();
            if let (Some(slot), false) = (env_slot, env_given)
                && matches!(self.facts.match_env(&lower), EnvMatch::One(_) | EnvMatch::Several(_))
            {
                draft.add(slot, [lower]);
                continue;
            }
            if let (Some(slot), false) = (app_slot, app_given)
                && self.facts.is_app(&lower)
            {
                draft.add(slot, [lower]);
                continue;
            }
            if let (Some(slot), false) = (kind_slot, kind_given)
                && !draft.is_set(slot)
                && word.chars().all(|c| c.is_ascii_alphabetic())
                && word.len() > 3
                && let Some(kind) = crate::k8s::kinds::normalize_kind(&lower)
            {
                draft.add(slot, [kind]);
            }
        }
    }

    /// `/command key=value positional ...`
    fn interpret_slash(&self, text: &str) -> Interpretation {
        let tokens = tokenize(text);
        let Some((cmd, args)) = tokens.split_first() else { return Interpretation::Unknown };
        if matches!(cmd.as_str(), "/help" | "/?") {
            return Interpretation::Help;
        }
        let Some(workflow) = Workflow::from_slash(cmd) else { return Interpretation::Unknown };
        let mut draft = Draft::new(workflow);
        let mut positional = Vec::new();
        for a in args {
            match a.split_once('=') {
                Some((k, v)) if workflow.slot_for_key(k).is_some() => {
                    if let Some(spec) = workflow.slot_for_key(k).and_then(|s| workflow.slot(s)) {
                        draft.add(spec.name, request::split_items(spec.kind, v));
                    }
                }
                _ => positional.push(a.clone()),
            }
        }
        let env_slot = ["env", "envs"].into_iter().find_map(|s| workflow.slot(s));
        let app_slot = workflow.slot("app");
        let mut free = workflow.positional().iter().filter_map(|s| workflow.slot(s)).peekable();
        for p in positional {
            let lower = p.to_ascii_lowercase();
            if let Some(spec) = env_slot
                && !matches!(self.facts.match_env(&lower), EnvMatch::NoMatch)
            {
                draft.add(spec.name, [lower]);
                continue;
            }
            if let Some(spec) = app_slot
                && self.facts.is_app(&lower)
            {
                draft.add(spec.name, [lower]);
                continue;
            }
            // fill positional slots in order; a list slot takes every remaining argument
            while let Some(spec) = free.peek() {
                if draft.is_set(spec.name) && !is_list(spec.kind) {
                    free.next();
                    continue;
                }
                break;
            }
            match free.peek() {
                Some(spec) => {
                    draft.add(spec.name, [p.clone()]);
                    if !is_list(spec.kind) {
                        free.next();
                    }
                }
                None => draft.add("arguments", [p.clone()]),
            }
        }
        Interpretation::Request(draft)
    }

    /// Interprets and, when every slot is there, plans. For one-shot use (`agentops ask`).
    pub fn plan_text(&self, text: &str, registry: &ToolRegistry) -> Result<Outcome, ToolError> {
        match self.interpret(text) {
            Interpretation::Refused(reason) => Ok(Outcome::Refused { reason }),
            Interpretation::Help => Ok(Outcome::Help { message: capabilities(registry) }),
            Interpretation::Unknown => Ok(Outcome::Unknown { message: self.unknown_message(text, registry) }),
            Interpretation::Request(draft) => self.plan_draft(&draft, text, registry),
        }
    }

    /// Plans a draft whose slots are all there; otherwise the one message naming every
    /// missing, invalid or ambiguous slot.
    pub fn plan_draft(&self, draft: &Draft, text: &str, registry: &ToolRegistry) -> Result<Outcome, ToolError> {
        let request = match draft.resolve(&self.facts) {
            Ok(r) => r,
            Err(problems) => {
                let w = draft.workflow;
                let message = format!(
                    "the {} workflow needs more information:\n{}\nfor example: agentops ask \"{} {}\"",
                    w.name(),
                    draft.describe_problems(&problems, &self.facts),
                    w.slash(),
                    problems
                        .iter()
                        .filter_map(|p| w.slot(p.slot))
                        .map(|s| format!("{}=…", s.name))
                        .collect::<Vec<_>>()
                        .join(" ")
                );
                return Ok(Outcome::NeedsInput { workflow: w, message });
            }
        };
        Ok(match plan_request(&request, registry, text)? {
            Planned::Ready(plan) => Outcome::Plan { request: Box::new(request), plan },
            Planned::NotAvailable { workflow, message } => Outcome::NotAvailable { workflow, message },
        })
    }

    /// "I cannot map this", and what it can do.
    pub fn unknown_message(&self, text: &str, registry: &ToolRegistry) -> String {
        let shown: String = text.chars().take(80).collect();
        if let Some(cmd) = unknown_slash(text) {
            return format!("unknown command {cmd}.\n{}", capabilities(registry));
        }
        format!("I cannot map \"{shown}\" to a workflow.\n{}", capabilities(registry))
    }
}

/// The workflow a plain-language request is about: the first phrase row that matches, else
/// the workflow whose cues weigh most (at least [`CUE_THRESHOLD`], and no tie).
pub fn intent(text: &str) -> Option<Workflow> {
    if let Some((_, row)) = COMPILED.phrases.iter().find(|(re, _)| re.is_match(text)) {
        return Some(row.workflow);
    }
    let mut scores: Vec<(Workflow, u32)> = Workflow::ALL.iter().map(|w| (*w, 0)).collect();
    for (re, cue) in &COMPILED.cues {
        if re.is_match(text)
            && let Some(s) = scores.iter_mut().find(|(w, _)| *w == cue.workflow)
        {
            s.1 += cue.weight;
        }
    }
    scores.sort_by_key(|s| std::cmp::Reverse(s.1));
    match scores.as_slice() {
        [(w, best), rest @ ..] if *best >= CUE_THRESHOLD && rest.first().is_none_or(|(_, s)| s < best) => Some(*w),
        _ => None,
    }
}

/// The command word of a slash command no workflow has (`/nonsense`): it is a typo, never
/// something for the LLM planner to guess at.
pub fn unknown_slash(text: &str) -> Option<&str> {
    let cmd = text.split_whitespace().next()?;
    (cmd.starts_with('/') && cmd.len() > 1 && Workflow::from_slash(cmd).is_none()).then_some(cmd)
}

/// Replaces a byte range (on char boundaries, as regex matches are) with spaces.
fn blank(text: &mut String, range: std::ops::Range<usize>) {
    if text.is_char_boundary(range.start) && text.is_char_boundary(range.end) && range.end <= text.len() {
        let spaces = " ".repeat(range.len());
        text.replace_range(range, &spaces);
    }
}

fn is_list(kind: SlotKind) -> bool {
    matches!(
        kind,
        SlotKind::EnvList
            | SlotKind::AppList
            | SlotKind::KeyValues
            | SlotKind::Keys
            | SlotKind::Refs
            | SlotKind::Overrides
    )
}

/// A captured value without trailing punctuation or quotes; names lowercased.
fn clean_capture(v: &str, kind: SlotKind) -> String {
    let v = v
        .trim()
        .trim_start_matches(['(', '['])
        .trim_end_matches(['.', ',', ';', ':', '!', '?', ')', ']'])
        .trim_matches(|c: char| c == '"' || c == '\'');
    match kind {
        SlotKind::NewApp
        | SlotKind::DnsLabel
        | SlotKind::Env
        | SlotKind::EnvList
        | SlotKind::App
        | SlotKind::AppList => v.to_ascii_lowercase(),
        _ => v.to_string(),
    }
}

/// Words of a sentence: letters, digits, '-', '_' and '.' inside a word.
fn words(text: &str) -> impl Iterator<Item = &str> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.'))
        .map(|w| w.trim_matches(['.', '-', '_']))
        .filter(|w| !w.is_empty())
}

/// Splits a slash command like a shell would: whitespace separates, quotes group (and are
/// removed), `key="a b"` keeps its key.
pub fn tokenize(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quote: Option<char> = None;
    let mut in_token = false;
    for c in text.chars() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => cur.push(c),
            None if c == '"' || c == '\'' => {
                quote = Some(c);
                in_token = true;
            }
            None if c.is_whitespace() => {
                if in_token {
                    out.push(std::mem::take(&mut cur));
                    in_token = false;
                }
            }
            None => {
                cur.push(c);
                in_token = true;
            }
        }
    }
    if in_token {
        out.push(cur);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every tool the planner's tables name is registered, with the arguments the bindings
    /// fill, and every shipped agent names only registered tools: a typo would turn a workflow
    /// into "not available yet" (or an agent into one without its tool) without a word.
    #[test]
    fn every_tool_the_tables_name_is_registered() {
        let registry = ToolRegistry::builtin();
        let mut with_steps = Vec::new();
        for s in WORKFLOW_STEPS {
            assert!(registry.get(s.tool).is_some(), "{:?} names {}, which is not registered", s.workflow, s.tool);
            with_steps.push(s.workflow);
        }
        for w in Workflow::ALL {
            assert_eq!(is_available(w, &registry), with_steps.contains(&w), "{w:?}");
        }
        for (tool, arg, from, _) in BINDINGS {
            let info = registry.get(tool).unwrap_or_else(|| panic!("binding of {tool}: not registered"));
            assert!(registry.get(from).is_some(), "binding of {tool}: {from} is not registered");
            assert!(info.parameters["properties"].get(*arg).is_some(), "{tool} has no argument {arg}");
        }
        let agents = crate::agents::Agents::builtin(&registry).unwrap();
        assert_eq!(agents.warnings(), &[] as &[String]);
    }

    fn planner() -> RulesPlanner {
        RulesPlanner::new(RepoFacts::new(
            &["dev", "prod-central", "prod-east", "prod-west", "staging"],
            &["api-gateway", "auth-service", "grafana", "redis", "search"],
        ))
    }

    fn resolved(text: &str) -> WorkflowRequest {
        let p = planner();
        match p.interpret(text) {
            Interpretation::Request(d) => d.resolve(p.facts()).unwrap_or_else(|e| panic!("{text}: {e:?}")),
            other => panic!("{text}: {other:?}"),
        }
    }

    #[test]
    fn tokenize_keeps_quoted_values() {
        assert_eq!(
            tokenize(r#"/commit reason="fix the thing" SEC-1"#),
            vec!["/commit", "reason=fix the thing", "SEC-1"]
        );
        assert_eq!(tokenize("  a   'b c' "), vec!["a", "b c"]);
        assert_eq!(tokenize(r#"x="""#), vec!["x="]);
    }

    #[test]
    fn documented_exceptions_are_overridden_only_when_the_request_says_so() {
        let over = |text: &str| match resolved(text) {
            WorkflowRequest::Harmonize { override_exceptions, reason, .. } => (override_exceptions, reason),
            other => panic!("{other:?}"),
        };
        assert_eq!(
            over("enforce TLS 1.3 on all ingresses, overriding the documented exceptions, reason SEC-2025-01"),
            (vec!["all".to_string()], "SEC-2025-01".to_string())
        );
        assert_eq!(over("enforce TLS 1.3 on all ingresses, reason SEC-2025-01").0, Vec::<String>::new());
        let slash = over(
            "/infrastructure-harmonize kind=Ingress set_annotations=a.io/b=c reason=r override_exceptions=apps/x/base/i.yaml:13",
        );
        assert_eq!(slash.0, vec!["apps/x/base/i.yaml:13".to_string()]);
    }

    #[test]
    fn the_examples_of_the_issue() {
        assert_eq!(
            resolved("enforce TLS 1.3 on all ingresses, reason SEC-2025-01"),
            WorkflowRequest::Harmonize {
                kind: "Ingress".into(),
                name: None,
                env: vec![],
                app: vec![],
                set_annotations: [("nginx.ingress.kubernetes.io/ssl-protocols".to_string(), "TLSv1.3".to_string())]
                    .into(),
                remove_annotations: vec![],
                set_labels: Default::default(),
                remove_labels: vec![],
                reason: "SEC-2025-01".into(),
                override_exceptions: vec![],
            }
        );
        assert_eq!(
            resolved("check prod-west for drift"),
            WorkflowRequest::Drift { env: vec!["prod-west".into()], app: vec![] }
        );
        assert_eq!(
            resolved("validate staging"),
            WorkflowRequest::Validate { env: vec!["staging".into()], app: vec![] }
        );
        let p = planner();
        let Interpretation::Request(d) = p.interpret("roll back auth-service in prod") else { panic!() };
        let problems = d.problems(p.facts());
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].slot, "env");
        assert!(matches!(&problems[0].issue, Issue::Ambiguous { choices, .. } if choices.len() == 3));
    }

    #[test]
    fn built_workflows_have_plans_and_the_others_say_not_yet() {
        let registry = ToolRegistry::builtin();
        for w in [
            Workflow::Validate,
            Workflow::Drift,
            Workflow::Harmonize,
            Workflow::Commit,
            Workflow::Create,
            Workflow::Migrate,
            Workflow::Rollback,
        ] {
            assert!(is_available(w, &registry), "{w:?}");
        }
        assert!(!is_available(Workflow::Rollback, &ToolRegistry::empty()), "no tools, not available");
        let p = planner();
        let Outcome::Plan { plan, .. } = p.plan_text("roll back auth-service in prod-west", &registry).unwrap() else {
            panic!()
        };
        let tools: Vec<&str> = plan.steps.iter().map(|s| s.tool.as_str()).collect();
        assert_eq!(tools, vec!["rollback_plan", "git_revert", "argocd_sync", "rollback_verify"]);
        let shown = crate::exec::plan::Bind { arg: "expect".into(), step: 0, pointer: "/fingerprint".into() };
        assert_eq!(plan.steps[1].bind, vec![shown], "the revert acts only on the plan that was shown");
        assert!(plan.steps[2].bind.is_empty() && plan.steps[0].bind.is_empty());
        assert_eq!(plan.steps[2].args, serde_json::json!({"env": "prod-west", "name": "auth-service-prod-west"}));
        assert_eq!(plan.steps[3].args, serde_json::json!({"app": "auth-service", "env": "prod-west"}));
        let Outcome::Plan { plan, .. } = p.plan_text("validate staging", &registry).unwrap() else { panic!() };
        assert_eq!(plan.steps.len(), 1);
        assert_eq!(plan.steps[0].tool, "validate");
        assert_eq!(plan.steps[0].args, serde_json::json!({"env": ["staging"], "app": []}));
    }

    #[test]
    fn a_models_acting_step_binds_to_the_plan_it_showed() {
        use crate::exec::plan::Bind;
        use crate::tools::Effect;
        use serde_json::json;
        let step = |tool: &str, args: Value| Step {
            tool: tool.into(),
            args,
            effect: Effect::ReadOnly,
            summary: String::new(),
            bind: Vec::new(),
        };
        let plan = step("harmonize_plan", json!({"kind": "Ingress", "reason": "r"}));
        let other = step("harmonize_plan", json!({"kind": "Service", "reason": "r"}));
        let out = json!({"fingerprint": "f1"});
        let shown = vec![Bind { arg: "expect".into(), step: 1, pointer: "/fingerprint".into() }];
        let apply = |args: Value| step("harmonize_apply", args);
        let earlier = [other.clone(), plan.clone(), other];
        let outputs = [Some(&out), Some(&out), Some(&out)];
        // same request (an apply-only flag aside): bound to the matching plan, not the latest
        let b = bind_to_shown(apply(json!({"kind": "Ingress", "reason": "r", "no_commit": true})), &earlier, &outputs);
        assert_eq!(b.bind, shown);
        assert_eq!(b.resolve(&outputs).unwrap().args["expect"], "f1");
        // another request, an expect of the model's own, or a plan that failed: not bound
        assert!(bind_to_shown(apply(json!({"kind": "Ingress", "reason": "s"})), &earlier, &outputs).bind.is_empty());
        let own = apply(json!({"kind": "Ingress", "reason": "r", "expect": "x"}));
        assert!(bind_to_shown(own, &earlier, &outputs).bind.is_empty());
        let failed = [Some(&out), None, Some(&out)];
        assert!(bind_to_shown(apply(json!({"kind": "Ingress", "reason": "r"})), &earlier, &failed).bind.is_empty());
    }

    #[test]
    fn missing_slots_are_listed_together() {
        let registry = ToolRegistry::builtin();
        let out = planner().plan_text("/infrastructure-rollback", &registry).unwrap();
        let Outcome::NeedsInput { message, .. } = out else { panic!("{out:?}") };
        assert!(message.contains("app: missing") && message.contains("env: missing"), "{message}");
        assert!(message.contains("Pass app=APP") && message.contains("Pass env=ENV"), "{message}");
    }
}
