//! The writer: `docs/migrations/<date>-<slug>.md` from the hand-offs, through the handlebars
//! template `tools/templates/migration.md.hbs`: dependency table, Mermaid graph, phases with
//! checklists, rollback plan, risks, owners to fill in, and the overlay changes each
//! environment needs as proposed patches (never applied).

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::graph::{Graph, Running};
use super::plan::MigrationPlan;
use super::scan::{FindingKind, Scan};
use crate::error::{Error, Result};
use crate::repo::Repo;

pub const TEMPLATE: &str = include_str!("../../../tools/templates/migration.md.hbs");

/// One proposed change for an app in an environment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ProposedPatch {
    pub env: String,
    pub app: String,
    /// Where the change goes (a new patch file in the overlay, or the file to edit).
    pub file: String,
    /// What to do with it.
    pub note: String,
    /// YAML to add.
    pub content: String,
}

/// The writer's hand-off.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct Document {
    /// Repo-relative path the document is written to.
    pub path: String,
    pub summary: String,
    pub mermaid: String,
    pub patches: Vec<ProposedPatch>,
    pub markdown: String,
}

/// `docs/migrations/<date>-<slug>.md`
pub fn default_path(date: &str, slug: &str) -> String {
    format!("docs/migrations/{date}-{slug}.md")
}

/// The deterministic summary: services per environment, phases, time, rollback time.
pub fn summary(graph: &Graph, plan: &MigrationPlan) -> String {
    let per_env: Vec<String> = super::plan::promotion_order(&graph.envs)
        .iter()
        .map(|e| {
            let n = graph.services.iter().filter(|s| s.envs.iter().any(|u| &u.env == e)).count();
            format!("{e} {n}")
        })
        .collect();
    format!(
        "{} services depend on {} (per environment: {}). The plan has {} phases, about {} h ({} days); a rollback takes about {} min against a {} min target.",
        graph.services.len(),
        graph.dependency.name,
        per_env.join(", "),
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

/// `graph LR`: every service → the dependency (edge labelled with the access mode), and the
/// dependency → its replacement, dashed.
pub fn mermaid(graph: &Graph) -> String {
    let dep = node_id("dep", &graph.dependency.name);
    let new = node_id("new", &graph.to);
    let mut out = vec![
        "graph LR".to_string(),
        format!("  {dep}[(\"{}\")]", label(&graph.dependency.name)),
        format!("  {new}[(\"{}\")]", label(&graph.to)),
    ];
    for s in &graph.services {
        let id = node_id("svc", &s.app);
        out.push(format!("  {id}[\"{}: {}\"]", label(&s.app), s.criticality.label()));
        out.push(format!("  {id} -->|{}| {dep}", s.access.label()));
    }
    out.push(format!("  {dep} -.->|replaced by| {new}"));
    out.join("\n")
}

/// Replaces the dependency's host in a value with a placeholder for the new endpoint.
fn replace_host(graph: &Graph, value: &str, env: &str, field: &str) -> String {
    let hosty = ["host", "addr", "address", "endpoint", "server", "url", "uri", "externalname"]
        .iter()
        .any(|w| field.to_ascii_lowercase().contains(w));
    let placeholder = format!("{}-endpoint-{env}", graph.to);
    let mut out = String::new();
    let mut token = String::new();
    let flush = |token: &mut String, out: &mut String| {
        let labels: Vec<&str> = token.split('.').collect();
        let is_dep = graph.dependency.services.iter().any(|s| s.eq_ignore_ascii_case(labels[0]))
            && match labels.get(1) {
                None => hosty,
                Some(ns) => {
                    graph.dependency.namespaces.is_empty() || graph.dependency.namespaces.iter().any(|n| n == ns)
                }
            };
        if is_dep && !token.is_empty() {
            out.push_str(&placeholder);
        } else {
            out.push_str(token);
        }
        token.clear();
    };
    let mut chars = value.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
            token.push(c);
        } else {
            // keep a URL scheme (redis://) as it is
            if c == ':' && chars.peek() == Some(&'/') {
                out.push_str(&token);
                token.clear();
            } else {
                flush(&mut token, &mut out);
            }
            out.push(c);
        }
    }
    flush(&mut token, &mut out);
    out
}

/// The overlay changes each environment needs, one per (environment, app).
pub fn patches(repo: Option<&Repo>, scan: &Scan, graph: &Graph) -> Vec<ProposedPatch> {
    let mut grouped: BTreeMap<(usize, String, String), Vec<&super::scan::Finding>> = BTreeMap::new();
    let order = super::plan::promotion_order(&scan.envs);
    for f in &scan.findings {
        if Some(&f.app) == scan.dependency.app.as_ref() {
            continue;
        }
        let rank = order.iter().position(|e| e == &f.env).unwrap_or(usize::MAX);
        grouped.entry((rank, f.env.clone(), f.app.clone())).or_default().push(f);
    }
    let mut out = Vec::new();
    for ((_, env, app), fs) in grouped {
        let overlay = repo
            .and_then(|r| r.apps.get(&app))
            .and_then(|a| a.overlays.get(&env).cloned())
            .unwrap_or_else(|| format!("apps/{app}/overlays/{env}"));
        let mut docs: Vec<String> = Vec::new();
        let mut generator_literals: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut manual: Vec<String> = Vec::new();
        let mut env_vars: BTreeMap<(String, String, String), Vec<String>> = BTreeMap::new();
        let mut seen = std::collections::BTreeSet::new();
        for f in fs {
            if !seen.insert((f.kind, f.object.clone(), f.field.clone(), f.container.clone())) {
                continue;
            }
            let (kind, name) = f.object.split_once('/').unwrap_or(("", &f.object));
            let new = f.value.as_deref().map(|v| replace_host(graph, v, &env, &f.field));
            let changed = new.as_deref() != f.value.as_deref();
            match (f.kind, new) {
                (FindingKind::ConfigMapValue, Some(v)) if changed => match &f.generator {
                    Some(g) => generator_literals.entry(g.clone()).or_default().push(format!("{}={v}", f.field)),
                    None => docs.push(format!(
                        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\ndata:\n  {}: {}",
                        f.field,
                        yaml_str(&v)
                    )),
                },
                (FindingKind::ContainerEnv, Some(v)) if changed && !matches!(f.field.as_str(), "args" | "command") => {
                    let key = (kind.to_string(), name.to_string(), f.container.clone().unwrap_or_default());
                    env_vars.entry(key).or_default().push(format!(
                        "\n            - name: {}\n              value: {}",
                        f.field,
                        yaml_str(&v)
                    ));
                }
                (FindingKind::Service, Some(v)) if changed && f.field == "externalName" => docs.push(format!(
                    "apiVersion: v1\nkind: Service\nmetadata:\n  name: {name}\nspec:\n  externalName: {}",
                    yaml_str(&v)
                )),
                (FindingKind::HelmValues, Some(v)) if changed => {
                    manual.push(format!("in {} set {} to {v}", f.file, f.field));
                }
                (FindingKind::NetworkPolicy, _) => manual.push(format!(
                    "{}: add an egress rule to the {} endpoint (its CIDR and port); keep {} until cleanup",
                    f.object, graph.to, f.field
                )),
                (FindingKind::Endpoints, _) | (FindingKind::Service, _) => manual.push(format!(
                    "{}: point it at the {} endpoint, or remove it when clients use the new host directly",
                    f.object, graph.to
                )),
                (k, _) if k.observes() => {
                    manual.push(format!("{} ({}): repoint to {}'s metrics", f.object, k.label(), graph.to))
                }
                (FindingKind::SecretKey, _) => manual.push(format!(
                    "{}: key {} gets the {} credential from the secret store (values are not shown)",
                    f.object, f.field, graph.to
                )),
                _ => {}
            }
        }
        for ((kind, name, container), vars) in env_vars {
            docs.push(format!(
                "apiVersion: apps/v1\nkind: {kind}\nmetadata:\n  name: {name}\nspec:\n  template:\n    spec:\n      containers:\n        - name: {container}\n          env:{}",
                vars.concat()
            ));
        }
        for (g, lits) in generator_literals {
            let mut s = format!(
                "# add to {overlay}/kustomization.yaml\nconfigMapGenerator:\n  - name: {g}\n    behavior: merge\n    literals:"
            );
            for l in lits {
                s.push_str(&format!("\n      - {}", yaml_str(&l)));
            }
            docs.insert(0, s);
        }
        if docs.is_empty() && manual.is_empty() {
            continue;
        }
        let file = format!("{overlay}/migrate-to-{}.yaml", graph.to);
        let mut note = if docs.is_empty() {
            "no YAML patch; by hand:".to_string()
        } else {
            format!(
                "new patch file, listed under `patches:` in {overlay}/kustomization.yaml (generator changes go in the kustomization itself)"
            )
        };
        for m in &manual {
            note.push_str(&format!("; {m}"));
        }
        out.push(ProposedPatch {
            env: env.clone(),
            app: app.clone(),
            file,
            note,
            content: if docs.is_empty() { "# nothing to add".to_string() } else { docs.join("\n---\n") },
        });
    }
    out
}

fn yaml_str(v: &str) -> String {
    if v.chars().all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c)) && !v.is_empty() {
        v.to_string()
    } else {
        format!("\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\""))
    }
}

/// Renders the document.
pub fn write(
    repo: Option<&Repo>,
    scan: &Scan,
    graph: &Graph,
    plan: &MigrationPlan,
    date: &str,
    path: Option<&str>,
    summary_text: Option<&str>,
) -> Result<Document> {
    let slug = format!("{}-to-{}", graph.dependency.name, graph.to);
    let path = path.map(str::to_string).unwrap_or_else(|| default_path(date, &slug));
    let summary = summary_text.map(str::to_string).unwrap_or_else(|| summary(graph, plan));
    let mermaid = mermaid(graph);
    let patches = patches(repo, scan, graph);
    let services: Vec<Value> = graph
        .services
        .iter()
        .map(|s| {
            let running: Vec<String> = s
                .envs
                .iter()
                .map(|u| {
                    let r = match u.running {
                        Running::Yes => "yes",
                        Running::No => "no",
                        Running::Unknown => "unknown",
                    };
                    format!("{} {r}", u.env)
                })
                .collect();
            json!({
                "app": s.app,
                "namespace": s.namespace.clone().unwrap_or_default(),
                "access": s.access.label(),
                "criticality": format!("{} ({})", s.criticality.label(), s.criticality_reason),
                "envs": s.envs.iter().map(|u| u.env.clone()).collect::<Vec<_>>(),
                "references": s.envs.iter().map(|u| u.references).sum::<u32>(),
                "running": running.join(", "),
                "note": s.note,
            })
        })
        .collect();
    let findings: Vec<Value> = scan
        .findings
        .iter()
        .filter(|f| Some(&f.app) != scan.dependency.app.as_ref())
        .map(|f| {
            json!({"app": f.app, "env": f.env, "kind": f.kind.label(), "object": f.object,
                   "field": f.field, "file": f.file, "line": f.line})
        })
        .collect();
    let mut plan_value = serde_json::to_value(plan).map_err(|e| Error::Internal(e.to_string()))?;
    if let Some(phases) = plan_value.get_mut("phases").and_then(Value::as_array_mut) {
        for (i, p) in phases.iter_mut().enumerate() {
            if let Some(m) = p.as_object_mut() {
                m.insert("n".into(), json!(i + 1));
            }
        }
    }
    let mut notes = graph.notes.clone();
    notes.extend(scan.failed.iter().map(|f| format!("did not render, references unknown: {f}")));
    let data = json!({
        "from": graph.dependency.name,
        "to": graph.to,
        "date": date,
        "envs": super::plan::promotion_order(&graph.envs),
        "service_count": services.len(),
        "services": services,
        "findings": findings,
        "dependency_applications": graph.dependency_applications,
        "mermaid": mermaid,
        "plan": plan_value,
        "days": plan.total_hours.div_ceil(24),
        "summary": summary,
        "patches": patches,
        "notes": notes,
    });
    let mut hb = handlebars::Handlebars::new();
    hb.register_escape_fn(handlebars::no_escape);
    hb.register_helper("join", Box::new(join_helper));
    let markdown = hb.render_template(TEMPLATE, &data).map_err(|e| Error::Config {
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
    Ok(Document { path, summary, mermaid, patches, markdown: tidy })
}

fn join_helper(
    h: &handlebars::Helper,
    _: &handlebars::Handlebars,
    _: &handlebars::Context,
    _: &mut handlebars::RenderContext,
    out: &mut dyn handlebars::Output,
) -> handlebars::HelperResult {
    let text = match h.param(0).map(|p| p.value()) {
        Some(Value::Array(a)) => {
            a.iter().map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string)).collect::<Vec<_>>().join(", ")
        }
        Some(Value::String(s)) => s.clone(),
        _ => String::new(),
    };
    out.write(&text)?;
    Ok(())
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
        assert_eq!(
            replace_host(&g, "redis://redis.data.svc.cluster.local:6379/0", "dev", "REDIS_URL"),
            "redis://elasticache-endpoint-dev:6379/0"
        );
        assert_eq!(replace_host(&g, "redis.data:6379", "prod", "X"), "elasticache-endpoint-prod:6379");
        assert_eq!(replace_host(&g, "redis", "prod", "RATE_LIMIT_BACKEND"), "redis");
        assert_eq!(replace_host(&g, "redis", "prod", "REDIS_HOST"), "elasticache-endpoint-prod");
        assert_eq!(replace_host(&g, "redis.other:6379", "prod", "REDIS_HOST"), "redis.other:6379");
    }
}
