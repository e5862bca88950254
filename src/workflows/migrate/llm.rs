//! `--llm`: the analyst and the writer may refine wording and judgement through their
//! prompts (`prompts/migrate-analyst.md.hbs`, `prompts/migrate-writer.md.hbs`). What the
//! model answers is checked against the hand-off's schema and re-checked against the
//! deterministic result: a reply that drops or invents a service, or changes a number, is
//! overruled and the deterministic hand-off stands. Everything sent is redacted first.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use super::graph::Graph;
use super::plan::MigrationPlan;
use crate::agents::Agent;
use crate::k8s::redact::Redactor;
use crate::llm::settings::LlmSettings;
use crate::llm::{ChatRequest, LlmClient, Message};

/// A model and the two agents that may use it.
pub struct Refiner<'a> {
    pub llm: &'a dyn LlmClient,
    pub settings: LlmSettings,
    pub analyst: Agent,
    pub writer: Agent,
    /// Repo context for the prompts.
    pub repo: Value,
}

/// Asks the model; its text answer, or why there is none.
async fn ask(r: &Refiner<'_>, agent: &Agent, redactor: &Redactor, user: String) -> Result<String, String> {
    let data = json!({
        "agent": {"name": agent.name, "description": agent.description},
        "repo": r.repo,
        "tools": [],
        "policy": {"read_only": true, "dry_run": false, "yes": false},
        "approval": agent.approval,
        "max_turns": 1,
    });
    let system = agent.render_prompt(&data).map_err(|e| e.to_string())?;
    let request = ChatRequest {
        model: r.settings.model.clone(),
        messages: vec![Message::system(redactor.scrub(&system)), Message::user(redactor.scrub(&user))],
        tools: vec![],
        temperature: r.settings.temperature,
        ..Default::default()
    };
    let resp = r.llm.complete(request).await.map_err(|e| e.to_string())?;
    resp.message.text().map(|t| redactor.scrub(t)).ok_or_else(|| "the model answered without text".to_string())
}

/// The JSON object in a reply (a fenced block or the outermost braces).
fn json_of(text: &str) -> Option<Value> {
    let start = text.find('{')?;
    let end = text.rfind('}')?;
    serde_json::from_str(text.get(start..=end)?).ok()
}

/// The analyst's review: the model may change access modes, criticality, their reasons and
/// notes. Returns the graph to use and what happened.
pub async fn refine_graph(r: &Refiner<'_>, redactor: &Redactor, graph: &Graph) -> (Graph, String) {
    let Ok(mut text) = serde_json::to_string_pretty(graph) else { return (graph.clone(), "not asked".into()) };
    text = format!(
        "Here is the dependency graph as JSON. Review each service's access mode (read-only or read-write) and criticality (low, medium, high, critical) and their reasons, and add a one-line note per service where useful. Answer with the whole graph as JSON, same schema, same services, same numbers.\n\n{text}"
    );
    let answer = match ask(r, &r.analyst, redactor, text).await {
        Ok(a) => a,
        Err(e) => return (graph.clone(), format!("analyst model not used: {e}")),
    };
    match recheck_graph(graph, json_of(&answer)) {
        Ok(g) => (g, "analyst review accepted".into()),
        Err(why) => (graph.clone(), format!("analyst review overruled: {why}")),
    }
}

/// Accepts a model's graph only where it may differ from the deterministic one.
pub fn recheck_graph(base: &Graph, proposed: Option<Value>) -> Result<Graph, String> {
    let v = proposed.ok_or("the reply holds no JSON object")?;
    super::check_handoff_value::<Graph>("analyst (model)", &v).map_err(|e| e.to_string())?;
    let p: Graph = serde_json::from_value(v).map_err(|e| e.to_string())?;
    let names = |g: &Graph| g.services.iter().map(|s| s.app.clone()).collect::<BTreeSet<_>>();
    let (want, got) = (names(base), names(&p));
    let dropped: Vec<&String> = want.difference(&got).collect();
    let invented: Vec<&String> = got.difference(&want).collect();
    if !dropped.is_empty() || !invented.is_empty() {
        return Err(format!(
            "the reply dropped {:?} and invented {:?}; the scanner's dependency set stands",
            dropped, invented
        ));
    }
    let mut out = base.clone();
    for s in &mut out.services {
        let Some(m) = p.service(&s.app) else { continue };
        if m.envs != s.envs {
            return Err(format!("the reply changed {}'s environments or numbers", s.app));
        }
        s.access = m.access;
        s.criticality = m.criticality;
        s.access_reason = m.access_reason.clone();
        s.criticality_reason = m.criticality_reason.clone();
        s.note = m.note.clone().filter(|n| !n.trim().is_empty());
    }
    Ok(out)
}

/// The writer's summary paragraph, when the model's rewording keeps to the facts.
pub async fn refine_summary(
    r: &Refiner<'_>,
    redactor: &Redactor,
    base: &str,
    graph: &Graph,
    plan: &MigrationPlan,
    repo_apps: &[String],
) -> (Option<String>, String) {
    let user = format!(
        "Rewrite this summary of a migration plan for the team that reviews it, in at most four sentences. Keep every service count, hour, day and minute exactly; do not name services that are not in the plan. Answer with JSON: {{\"summary\": \"...\"}}.\n\nSummary: {base}\n\nServices: {}",
        graph.services.iter().map(|s| s.app.as_str()).collect::<Vec<_>>().join(", ")
    );
    let answer = match ask(r, &r.writer, redactor, user).await {
        Ok(a) => a,
        Err(e) => return (None, format!("writer model not used: {e}")),
    };
    let text = json_of(&answer).and_then(|v| v.get("summary").and_then(Value::as_str).map(str::to_string));
    match recheck_summary(text, base, graph, plan, repo_apps) {
        Ok(s) => (Some(s), "writer summary accepted".into()),
        Err(why) => (None, format!("writer summary overruled: {why}")),
    }
}

/// Numbers in the summary must be the plan's; services named must be the graph's.
pub fn recheck_summary(
    text: Option<String>,
    base: &str,
    graph: &Graph,
    plan: &MigrationPlan,
    repo_apps: &[String],
) -> Result<String, String> {
    let text = text.filter(|t| !t.trim().is_empty()).ok_or("the reply holds no summary")?;
    let numbers = |t: &str| -> BTreeSet<String> {
        t.split(|c: char| !c.is_ascii_digit()).filter(|s| !s.is_empty()).map(str::to_string).collect()
    };
    let mut allowed = numbers(base);
    let mut facts: Vec<u32> = vec![
        plan.total_hours,
        plan.total_hours.div_ceil(24),
        plan.window_days,
        plan.rollback.estimate_minutes,
        plan.rollback.target_minutes,
        plan.phases.len() as u32,
        graph.services.len() as u32,
        graph.envs.len() as u32,
    ];
    for p in &plan.phases {
        facts.push(p.estimate_hours);
        facts.push(p.waves.len() as u32);
        facts.extend(p.waves.iter().map(|w| w.rollback_minutes));
    }
    allowed.extend(facts.iter().map(u32::to_string));
    allowed.extend(graph.envs.iter().flat_map(|e| numbers(e)));
    let unknown: Vec<String> = numbers(&text).difference(&allowed).cloned().collect();
    if !unknown.is_empty() {
        return Err(format!("numbers not in the plan: {}", unknown.join(", ")));
    }
    let words: BTreeSet<String> = text
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
        .map(|w| w.trim_matches('-').to_ascii_lowercase())
        .collect();
    let in_graph: BTreeSet<&str> =
        graph.services.iter().map(|s| s.app.as_str()).chain([graph.dependency.name.as_str()]).collect();
    let invented: Vec<&String> =
        repo_apps.iter().filter(|a| words.contains(a.as_str()) && !in_graph.contains(a.as_str())).collect();
    if !invented.is_empty() {
        return Err(format!("names services that do not depend on it: {invented:?}"));
    }
    Ok(text.trim().to_string())
}
