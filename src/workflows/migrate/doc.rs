//! The writer: `docs/migrations/<date>-<slug>.md`, a plan a team reads in a pull request,
//! through the handlebars template `tools/templates/migration.md.hbs`, and its record beside
//! it (`<date>-<slug>.json`: every reference per environment, every proposed edit, the
//! hand-offs, and the commit the workflow proposes for the two files).
//!
//! What repeats per environment is said once: a reference is one row per source line with
//! the environments listed, a proposed change one block per service with what differs per
//! environment, the phases one template with a table of per-environment differences.

use std::collections::{BTreeMap, BTreeSet};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::changes::{self, Check, EditOp, ProposedChange};
use super::feasibility::{Feasibility, Verdict};
use super::graph::{Graph, Running, Usage};
use super::plan::{MigrationPlan, PhaseKind};
use super::scan::Scan;
use crate::error::{Error, Result};
use crate::kustomize::Engine;
use crate::repo::Repo;

pub const TEMPLATE: &str = include_str!("../../../tools/templates/migration.md.hbs");

/// The writer's hand-off.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct Document {
    /// Repo-relative path the document is written to.
    pub path: String,
    /// Its record beside it (`.json`).
    pub record_path: String,
    pub summary: String,
    pub mermaid: String,
    pub changes: Vec<ProposedChange>,
    /// Every proposed change applied to a scratch copy and built (None: not checked).
    #[serde(default)]
    pub check: Option<Check>,
    pub markdown: String,
    /// The record: the full matrix and the workflow's commit.
    pub record: Value,
}

/// `docs/migrations/<date>-<slug>.md`
pub fn default_path(date: &str, slug: &str) -> String {
    format!("docs/migrations/{date}-{slug}.md")
}

/// The clients (observers apart), their waves, the time and the rollback, in a paragraph.
pub fn summary(graph: &Graph, plan: &MigrationPlan) -> String {
    let clients = graph.services.iter().filter(|s| s.keeps.usage != Usage::Observer).count();
    let waves: Vec<&str> = plan
        .phases
        .iter()
        .filter(|p| p.kind == PhaseKind::Environment)
        .max_by_key(|p| p.waves.len())
        .map(|p| p.waves.iter().map(|w| w.usage.label()).collect())
        .unwrap_or_default();
    let observers = if plan.observers.is_empty() {
        String::new()
    } else {
        format!(" ({} only observe{} it)", plan.observers.join(", "), if plan.observers.len() == 1 { "s" } else { "" })
    };
    format!(
        "{clients} services keep data in {}{observers}. They move environment by environment ({}) in {} waves, cheapest to lose first: {}. The plan has {} phases, about {} h ({} days); a rollback takes about {} min against a {} min target.",
        graph.dependency.name,
        super::plan::promotion_order(&graph.envs).join(", "),
        waves.len(),
        waves.join(", "),
        plan.phases.len(),
        plan.total_hours,
        plan.total_hours.div_ceil(24),
        plan.rollback.estimate_minutes,
        plan.rollback.target_minutes
    )
}

fn node_id(prefix: &str, name: &str) -> String {
    let s: String = name.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect();
    format!("{prefix}_{s}")
}

fn label(text: &str) -> String {
    text.chars().filter(|c| !matches!(c, '"' | '[' | ']' | '(' | ')' | '{' | '}' | '|' | '<' | '>')).collect()
}

/// The waves of the environment with the most, in order: (number, usage, services).
fn waves_of(plan: &MigrationPlan) -> Vec<(u32, Usage, Vec<String>)> {
    let mut by_usage: BTreeMap<Usage, BTreeSet<String>> = BTreeMap::new();
    for p in plan.phases.iter().filter(|p| p.kind == PhaseKind::Environment) {
        for w in &p.waves {
            by_usage.entry(w.usage).or_default().extend(w.services.iter().cloned());
        }
    }
    by_usage.into_iter().enumerate().map(|(i, (u, s))| (i as u32 + 1, u, s.into_iter().collect())).collect()
}

/// `graph LR`: one subgraph per wave (and one for the observers), each service → the
/// dependency, the waves chained in order, the dependency → its replacement.
pub fn mermaid(graph: &Graph, plan: &MigrationPlan) -> String {
    let dep = node_id("dep", &graph.dependency.name);
    let new = node_id("new", &graph.to);
    let mut out = vec!["graph LR".to_string()];
    let waves = waves_of(plan);
    for (n, usage, services) in &waves {
        out.push(format!("  subgraph wave{n}[\"Wave {n}: {}\"]", label(usage.label())));
        for s in services {
            out.push(format!("    {}[\"{}\"]", node_id("svc", s), label(s)));
        }
        out.push("  end".into());
    }
    if !plan.observers.is_empty() {
        out.push("  subgraph observers[\"Observers: repointed, no wave\"]".into());
        for s in &plan.observers {
            out.push(format!("    {}[\"{}\"]", node_id("svc", s), label(s)));
        }
        out.push("  end".into());
    }
    out.push(format!("  {dep}[(\"{}\")]", label(&graph.dependency.name)));
    out.push(format!("  {new}[(\"{}\")]", label(&graph.to)));
    for w in waves.windows(2) {
        out.push(format!("  wave{} -->|then| wave{}", w[0].0, w[1].0));
    }
    for (n, usage, _) in &waves {
        out.push(format!("  wave{n} -->|{}| {dep}", label(usage.label())));
    }
    if !plan.observers.is_empty() {
        out.push(format!("  observers -.->|metrics| {dep}"));
    }
    out.push(format!("  {dep} -.->|replaced by| {new}"));
    out.join("\n")
}

/// `all 5` or the list.
fn envs_words(envs: &[String], all: usize) -> String {
    if envs.len() == all && all > 2 { format!("all {all}") } else { envs.join(", ") }
}

/// The template's data.
#[allow(clippy::too_many_arguments)]
fn data(
    scan: &Scan,
    graph: &Graph,
    plan: &MigrationPlan,
    feasibility: &Feasibility,
    changes: &[ProposedChange],
    check: Option<&Check>,
    date: &str,
    path: &str,
    record_path: &str,
    summary: &str,
) -> Value {
    let (from, to) = (&graph.dependency.name, &graph.to);
    let order = super::plan::promotion_order(&graph.envs);
    let all = order.len();
    let waves = waves_of(plan);
    let wave_of = |app: &str| waves.iter().find(|w| w.2.iter().any(|s| s == app)).map(|w| w.0);
    // what each service keeps
    let mut keeps: Vec<Value> = graph
        .services
        .iter()
        .map(|s| {
            let running: Vec<&str> =
                s.envs.iter().filter(|u| u.running == Running::Yes).map(|u| u.env.as_str()).collect();
            let envs: Vec<String> = s.envs.iter().map(|u| u.env.clone()).collect();
            json!({
                "wave": wave_of(&s.app).map_or("-".to_string(), |w| w.to_string()),
                "app": s.app,
                "usage": s.keeps.usage.label(),
                "says": if s.keeps.evidence.is_empty() {
                    "nothing in the repo says: ask the owner".to_string()
                } else {
                    s.keeps.evidence.join("; ").replace('|', "\\|")
                },
                "criticality": s.criticality.label(),
                "envs": envs_words(&envs, all),
                // "-" would say the same for a cluster that has none and one never asked
                "running": if !running.is_empty() {
                    running.join(", ")
                } else if s.envs.iter().all(|u| u.running == Running::Unknown) {
                    "unknown".to_string()
                } else {
                    "none".to_string()
                },
                "note": s.note,
            })
        })
        .collect();
    keeps.sort_by_key(|k| {
        (k["wave"] == "-", k["wave"].as_str().map(str::to_string), k["app"].as_str().map(str::to_string))
    });
    // the wave template: the environment with the most services
    let fullest = plan
        .phases
        .iter()
        .filter(|p| p.kind == PhaseKind::Environment)
        .max_by_key(|p| p.waves.iter().map(|w| w.services.len()).sum::<usize>());
    let slowest = |u: Usage| {
        plan.phases
            .iter()
            .flat_map(|p| p.waves.iter())
            .filter(|w| w.usage == u)
            .map(|w| w.rollback_minutes)
            .max()
            .unwrap_or(0)
    };
    let wave_rows: Vec<Value> = fullest
        .map(|p| {
            p.waves
                .iter()
                .map(|w| {
                    json!({"number": w.number, "usage": w.usage.label(), "services": w.services.join(", "),
                           "strategy": w.strategy, "loses": w.rollback_loses, "validation": w.validation,
                           "rollback": slowest(w.usage)})
                })
                .collect()
        })
        .unwrap_or_default();
    // the per-environment differences
    let env_rows: Vec<Value> = plan
        .phases
        .iter()
        .filter(|p| p.kind == PhaseKind::Environment)
        .map(|p| {
            let env = p.env.clone().unwrap_or_default();
            let missing: Vec<String> = fullest
                .map(|f| {
                    f.waves
                        .iter()
                        .flat_map(|w| w.services.iter())
                        .filter(|s| !p.waves.iter().any(|w| w.services.contains(s)))
                        .cloned()
                        .collect()
                })
                .unwrap_or_default();
            let slowest = p.waves.iter().map(|w| w.rollback_minutes).max().unwrap_or(0);
            let f = feasibility.of(&env);
            let cloud = f.and_then(|f| f.cloud.clone()).unwrap_or_else(|| "unknown".into());
            let verdict = match f.map(|f| f.verdict) {
                Some(Verdict::Blocked) => "**blocked**",
                Some(Verdict::Feasible) => "feasible",
                Some(Verdict::Check) => "check",
                _ => "unknown",
            };
            let mut notes = Vec::new();
            if !missing.is_empty() {
                notes.push(format!("no {}", missing.join(", ")));
            }
            json!({
                "env": env,
                "waves": p.waves.len(),
                "soak": p.soak_hours,
                "estimate": p.estimate_hours,
                "days": super::plan::days(p.start_hour, p.estimate_hours),
                "rollback": slowest,
                "cloud": cloud,
                "verdict": verdict,
                "notes": if notes.is_empty() { "-".to_string() } else { notes.join("; ") },
            })
        })
        .collect();
    let template_phase = plan.phases.iter().find(|p| p.kind == PhaseKind::Environment).map(|p| {
        let env = p.env.clone().unwrap_or_default();
        let generic = |t: &String| t.replace(&env, "<env>").replace(&format!("{} h", p.soak_hours), "<soak>");
        json!({
            "steps": p.steps.iter().map(generic).collect::<Vec<_>>(),
            "gate": p.gate.iter().map(generic).collect::<Vec<_>>(),
            "rollback_triggers": p.rollback_triggers,
        })
    });
    let n_env = plan.phases.iter().filter(|p| p.kind == PhaseKind::Environment).count();
    let phase = |k: PhaseKind| {
        plan.phases.iter().enumerate().find(|(_, p)| p.kind == k).map(|(i, p)| {
            json!({"n": i + 1, "name": p.name, "hours": p.estimate_hours, "steps": p.steps, "gate": p.gate,
                   "rollback_triggers": p.rollback_triggers,
                   "days": plan.calendar.iter().find(|c| c.phase == p.name).map(|c| c.days.clone())})
        })
    };
    // references: one row per source line, with its environments
    type RefKey = (String, String, u32, String, String, String);
    let mut refs: BTreeMap<RefKey, Vec<String>> = BTreeMap::new();
    for f in scan.findings.iter().filter(|f| Some(&f.app) != scan.dependency.app.as_ref()) {
        let object = match f.object.split_once('/') {
            Some((k, n)) if f.generator.is_some() => format!("{k}/{}", f.generator.as_deref().unwrap_or(n)),
            _ => f.object.clone(),
        };
        let field = if f.kind == super::scan::FindingKind::ContainerEnvFrom {
            f.field.split_once(' ').map_or(f.field.clone(), |(r, n)| format!("{r} {}", base_name(n)))
        } else {
            f.field.clone()
        };
        let e =
            refs.entry((f.app.clone(), f.file.clone(), f.line, f.kind.label().to_string(), object, field)).or_default();
        if !e.contains(&f.env) {
            e.push(f.env.clone());
        }
    }
    let references: Vec<Value> = refs
        .into_iter()
        .map(|((app, file, line, kind, object, field), mut envs)| {
            envs.sort_by_key(|e| order.iter().position(|x| x == e));
            json!({"app": app, "at": format!("{file}:{line}"), "kind": kind, "object": object, "field": field,
                   "envs": envs_words(&envs, all)})
        })
        .collect();
    // proposed changes: one block per service, what differs per environment said once
    let mut by_app: BTreeMap<String, Vec<&ProposedChange>> = BTreeMap::new();
    for c in changes {
        by_app.entry(c.app.clone()).or_default().push(c);
    }
    let mut blocks: Vec<(Option<u32>, Value)> = Vec::new();
    // a patch file the same as another service's but for the names is said once
    let mut shapes: BTreeMap<String, String> = BTreeMap::new();
    let mut order_apps: Vec<(Option<u32>, String)> = by_app.keys().map(|a| (wave_of(a), a.clone())).collect();
    order_apps.sort();
    let by_app: Vec<(String, Vec<&ProposedChange>)> =
        order_apps.into_iter().filter_map(|(_, a)| by_app.get(&a).map(|cs| (a, cs.clone()))).collect();
    for (app, cs) in by_app {
        let generic = |c: &ProposedChange, t: &str| {
            t.replace(&changes::endpoint(graph, &c.env), &changes::endpoint(graph, "<env>"))
                .replace(&c.overlay, &c.overlay.replace(&c.env, "<env>"))
        };
        // the patch file, the same in every environment but for the endpoint
        let mut files: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut generator: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut by_hand: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for c in &cs {
            for e in &c.edits {
                match &e.op {
                    EditOp::NewFile { content } => files.entry(generic(c, content)).or_default().push(c.env.clone()),
                    EditOp::Insert { after_line, .. } => generator
                        .entry(generic(c, &e.what).replace(&format!(" (after line {after_line})"), ""))
                        .or_default()
                        .push(format!("{} line {after_line}", c.env)),
                    EditOp::Append { .. } => generator.entry(generic(c, &e.what)).or_default().push(c.env.clone()),
                    EditOp::PatchEntry { .. } => {}
                }
            }
            for h in c.by_hand.iter().filter(|h| !h.contains("add an egress rule to")) {
                by_hand.entry(generic(c, h)).or_default().push(c.env.clone());
            }
        }
        let first = cs[0];
        let overlay = first.overlay.replace(&first.env, "<env>");
        let envs: Vec<String> = cs.iter().map(|c| c.env.clone()).collect();
        // each text with where it holds: every environment, or the list (with line numbers)
        let lists = |m: BTreeMap<String, Vec<String>>| -> Vec<Value> {
            m.into_iter()
                .map(|(text, es)| {
                    let plain = es.iter().all(|e| !e.contains(" line "));
                    let where_ = if plain && es.len() == all { "every environment".to_string() } else { es.join(", ") };
                    json!({"text": text, "where": where_})
                })
                .collect()
        };
        let literal = generator.keys().find_map(|w| w.split('`').nth(1).map(str::to_string));
        let gen_name = first
            .settings
            .iter()
            .find_map(|s| s.strip_prefix("ConfigMap ").and_then(|r| r.split(' ').next()).map(str::to_string));
        let svc = graph.service(&app);
        blocks.push((
            wave_of(&app),
            json!({
                "app": app,
                "wave": wave_of(&app),
                "usage": svc.map(|s| s.keeps.usage.label()),
                "settings": first.settings.join(", "),
                "overlay": overlay,
                "envs": envs_words(&envs, all),
                "where": if envs.len() == all && all > 1 { format!("all {all} environments") } else { envs.join(", ") },
                "file": format!("{overlay}/migrate-to-{to}.yaml"),
                "files": files
                    .into_iter()
                    .map(|(content, es)| {
                        let shape = content.replace(&app, "<service>");
                        let same_as = shapes.get(&shape).cloned();
                        shapes.entry(shape).or_insert_with(|| app.clone());
                        json!({"content": content.trim_end(), "envs": envs_words(&es, all), "same_as": same_as})
                    })
                    .collect::<Vec<_>>(),
                "generator": lists(generator),
                "generator_name": gen_name,
                "literal": literal,
                "restart": first.restart,
                "by_hand": lists(by_hand),
            }),
        ));
    }
    blocks.sort_by_key(|(w, v)| (w.unwrap_or(u32::MAX), v["app"].as_str().map(str::to_string)));
    let blocks: Vec<Value> = blocks.into_iter().map(|b| b.1).collect();
    let feas: Vec<Value> = feasibility
        .envs
        .iter()
        .map(|e| {
            json!({"env": e.env, "cloud": e.cloud.clone().unwrap_or_else(|| "unknown".into()), "evidence": e.evidence,
                   "verdict": match e.verdict { Verdict::Feasible => "feasible", Verdict::Blocked => "**blocked**", Verdict::Unknown => "unknown", Verdict::Check => "check" },
                   "note": e.note})
        })
        .collect();
    let blocked: Vec<String> = feasibility.blocked().iter().map(|e| e.env.clone()).collect();
    let check_line = check.map(|c| {
        if c.passed() {
            let keys: Vec<String> = c
                .changed
                .iter()
                .map(|x| x.rsplit(' ').next().unwrap_or(x).to_string())
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect();
            format!(
                "every proposed change below was applied to a scratch copy of the repo and built with kustomize: {}/{} overlays build, and only {} change in their output",
                c.built,
                c.overlays,
                and_list(&keys)
            )
        } else {
            format!(
                "applied to a scratch copy of the repo, the proposed changes FAIL: {}/{} overlays build; {}",
                c.built,
                c.overlays,
                c.problems.iter().take(5).cloned().collect::<Vec<_>>().join("; ")
            )
        }
    });
    let mut notes = graph.notes.clone();
    notes.extend(scan.failed.iter().map(|f| format!("did not render, references unknown: {f}")));
    let clients = graph.services.iter().filter(|s| s.keeps.usage != Usage::Observer).count();
    json!({
        "from": from,
        "to": to,
        "date": date,
        "path": path,
        "record_path": record_path,
        "envs": order.join(" → "),
        "clients": clients,
        "wave_count": waves.len(),
        "observers": plan.observers,
        "summary": summary,
        "keeps": keeps,
        "waves": wave_rows,
        "env_rows": env_rows,
        "n_env": n_env,
        "first_env_n": 2,
        "last_env_n": n_env + 1,
        "template_phase": template_phase,
        "preparation": phase(PhaseKind::Preparation),
        "cleanup": phase(PhaseKind::Cleanup),
        "calendar": plan.calendar,
        "references": references,
        "changes": blocks,
        "target": feasibility.target,
        "feasibility": feas,
        "client_changes": feasibility.client_changes,
        "blocked": blocked,
        "check": check_line,
        "plan": plan,
        "days": plan.total_hours.div_ceil(24),
        "notes": notes,
        "placeholder": changes::endpoint(graph, "<env>"),
        "egress": changes.iter().any(|c| c.by_hand.iter().any(|h| h.contains("add an egress rule to"))),
    })
}

/// `a`, `a and b`, `a, b and c`
fn and_list(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

fn base_name(rendered: &str) -> &str {
    match rendered.rsplit_once('-') {
        Some((b, h)) if h.len() == 10 && h.chars().all(|c| c.is_ascii_alphanumeric()) => b,
        _ => rendered,
    }
}

/// The commit the workflow proposes for its document and record.
pub fn commit(
    graph: &Graph,
    plan: &MigrationPlan,
    feasibility: &Feasibility,
    path: &str,
    record_path: &str,
    check: Option<&Check>,
) -> crate::workflows::commit::draft::WorkflowCommit {
    let (from, to) = (&graph.dependency.name, &graph.to);
    let waves = waves_of(plan);
    let order = super::plan::promotion_order(&graph.envs);
    let mut body = vec![format!("Waves, in each environment in turn ({}):", order.join(", "))];
    for (n, usage, services) in &waves {
        body.push(format!("{n}. {}: {} ({})", usage.label(), services.join(", "), super::plan::short_strategy(*usage)));
    }
    if !plan.observers.is_empty() {
        body.push(format!("Observers, repointed and never a wave: {}", plan.observers.join(", ")));
    }
    body.push(format!(
        "Estimate: {} h, {} days of the {}-day window; rollback about {} min per wave (target {} min)",
        plan.total_hours,
        plan.total_hours.div_ceil(24),
        plan.window_days,
        plan.rollback.estimate_minutes,
        plan.rollback.target_minutes
    ));
    let blocked = feasibility.blocked();
    if !blocked.is_empty() {
        // bullets, so a long reason wraps under its own environment
        body.push("Blocked until decided:".to_string());
        for b in blocked {
            body.push(format!("- {} ({}): {}", b.env, b.cloud.as_deref().unwrap_or("unknown"), b.note));
        }
    }
    if let Some(c) = check {
        body.push(format!(
            "Proposed changes: checked on a scratch copy, {}/{} overlays build{}",
            c.built,
            c.overlays,
            if c.passed() { "" } else { " (with problems: see the document)" }
        ));
    }
    body.push(format!("Document: {path}"));
    body.push(format!("Every reference per environment: {record_path}"));
    let subject = format!("plan the {from} to {to} migration in {} waves", waves.len());
    crate::workflows::commit::draft::WorkflowCommit {
        type_: "docs".into(),
        scope: Some("migrations".into()),
        subject,
        body,
    }
}

/// Renders the document and its record; with an engine, every proposed change is applied to
/// a scratch copy and built first.
#[allow(clippy::too_many_arguments)]
pub fn write(
    repo: Option<&Repo>,
    engine: Option<&Engine>,
    scan: &Scan,
    graph: &Graph,
    plan: &MigrationPlan,
    feasibility: &Feasibility,
    date: &str,
    path: Option<&str>,
    summary_text: Option<&str>,
) -> Result<Document> {
    let slug = format!("{}-to-{}", graph.dependency.name, graph.to);
    let path = path.map(str::to_string).unwrap_or_else(|| default_path(date, &slug));
    let record_path = format!("{}.json", path.trim_end_matches(".md"));
    let summary = summary_text.map(str::to_string).unwrap_or_else(|| summary(graph, plan));
    let mermaid = mermaid(graph, plan);
    let changes = changes::proposed(repo, scan, graph);
    let check = match (repo, engine) {
        (Some(r), Some(e)) => Some(changes::check(r, e, &changes)?),
        _ => None,
    };
    let mut value = data(scan, graph, plan, feasibility, &changes, check.as_ref(), date, &path, &record_path, &summary);
    value["mermaid"] = json!(mermaid);
    let mut hb = handlebars::Handlebars::new();
    hb.register_escape_fn(handlebars::no_escape);
    let markdown = hb.render_template(TEMPLATE, &value).map_err(|e| Error::Config {
        file: "tools/templates/migration.md.hbs".into(),
        line: None,
        message: e.to_string(),
    })?;
    // collapse the blank lines the template's block helpers leave
    let mut tidy = String::new();
    let mut blank = 0;
    for line in markdown.lines() {
        if line.trim().is_empty() {
            blank += 1;
            if blank > 1 {
                continue;
            }
        } else {
            blank = 0;
        }
        tidy.push_str(line.trim_end());
        tidy.push('\n');
    }
    let commit = commit(graph, plan, feasibility, &path, &record_path, check.as_ref());
    let record = json!({
        crate::workflows::commit::draft::RECORD_KEY: {"workflow": "migrate", "document": path, "commit": commit},
        "summary": summary,
        "services": graph.services,
        "plan": plan,
        "feasibility": feasibility,
        "references": scan.findings.iter().filter(|f| Some(&f.app) != scan.dependency.app.as_ref()).collect::<Vec<_>>(),
        "changes": changes,
        "check": check,
    });
    Ok(Document { path, record_path, summary, mermaid, changes, check, markdown: tidy, record })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workflows::migrate::scan::Dependency;

    #[test]
    fn hosts_are_replaced_and_schemes_kept() {
        let g = Graph {
            dependency: Dependency {
                name: "redis".into(),
                services: vec!["redis".into()],
                namespaces: vec!["data".into()],
                ..Default::default()
            },
            to: "elasticache".into(),
            envs: vec![],
            services: vec![],
            dependency_applications: vec![],
            clusters_checked: false,
            notes: vec![],
        };
        let r = changes::replace_host;
        assert_eq!(
            r(&g, "redis://redis.data.svc.cluster.local:6379/0", "dev", "REDIS_URL"),
            "redis://elasticache-endpoint-dev:6379/0"
        );
        assert_eq!(r(&g, "redis.data:6379", "prod", "X"), "elasticache-endpoint-prod:6379");
        assert_eq!(r(&g, "redis", "prod", "RATE_LIMIT_BACKEND"), "redis");
        assert_eq!(r(&g, "redis", "prod", "REDIS_HOST"), "elasticache-endpoint-prod");
        assert_eq!(r(&g, "redis.other:6379", "prod", "REDIS_HOST"), "redis.other:6379");
    }
}
