//! Agents: who the model is for a request, which tools it may call, its system prompt and its
//! approval policy. Each is `agents/<name>.md` (YAML front matter + a body for people) with a
//! handlebars prompt in `prompts/<name>.md.hbs`. The built-in ones are compiled in; a repo's
//! `.agentops/agents/*.md` and `.agentops/prompts/*.md.hbs` add to or replace them, so people
//! change agents without recompiling. Every prompt file is also a partial (`{{> _context}}`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::Error;

/// The tools a build has, by name: what an agent's `tools:` list is checked against. The tool
/// registry is one; agents need only the names.
pub trait ToolCatalog {
    fn tool_names(&self) -> Vec<&str>;
}

pub const AGENTS_DIR: &str = ".agentops/agents";
pub const PROMPTS_DIR: &str = ".agentops/prompts";
const PROMPT_SUFFIX: &str = ".md.hbs";

const BUILTIN_AGENTS: &[(&str, &str)] = &[
    ("commit.md", include_str!("../agents/commit.md")),
    ("create.md", include_str!("../agents/create.md")),
    ("drift.md", include_str!("../agents/drift.md")),
    ("harmonize.md", include_str!("../agents/harmonize.md")),
    ("migrate.md", include_str!("../agents/migrate.md")),
    ("migrate-analyst.md", include_str!("../agents/migrate-analyst.md")),
    ("migrate-planner.md", include_str!("../agents/migrate-planner.md")),
    ("migrate-scanner.md", include_str!("../agents/migrate-scanner.md")),
    ("migrate-writer.md", include_str!("../agents/migrate-writer.md")),
    ("planner.md", include_str!("../agents/planner.md")),
    ("rollback.md", include_str!("../agents/rollback.md")),
    ("router.md", include_str!("../agents/router.md")),
    ("validator.md", include_str!("../agents/validator.md")),
];

const BUILTIN_PROMPTS: &[(&str, &str)] = &[
    ("_context.md.hbs", include_str!("../prompts/_context.md.hbs")),
    ("commit.md.hbs", include_str!("../prompts/commit.md.hbs")),
    ("create.md.hbs", include_str!("../prompts/create.md.hbs")),
    ("drift.md.hbs", include_str!("../prompts/drift.md.hbs")),
    ("harmonize.md.hbs", include_str!("../prompts/harmonize.md.hbs")),
    ("migrate.md.hbs", include_str!("../prompts/migrate.md.hbs")),
    ("migrate-analyst.md.hbs", include_str!("../prompts/migrate-analyst.md.hbs")),
    ("migrate-planner.md.hbs", include_str!("../prompts/migrate-planner.md.hbs")),
    ("migrate-scanner.md.hbs", include_str!("../prompts/migrate-scanner.md.hbs")),
    ("migrate-writer.md.hbs", include_str!("../prompts/migrate-writer.md.hbs")),
    ("planner.md.hbs", include_str!("../prompts/planner.md.hbs")),
    ("rollback.md.hbs", include_str!("../prompts/rollback.md.hbs")),
    ("router.md.hbs", include_str!("../prompts/router.md.hbs")),
    ("validator.md.hbs", include_str!("../prompts/validator.md.hbs")),
];

/// How an agent's writes are approved. `read-only` refuses every write; `yes` approves
/// writes up front, but only for built-in agents (a repo cannot grant itself `--yes`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Approval {
    #[default]
    Ask,
    Yes,
    ReadOnly,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FrontMatter {
    name: String,
    description: String,
    #[serde(default)]
    tools: Vec<String>,
    prompt: String,
    #[serde(default)]
    approval: Approval,
    #[serde(default)]
    max_turns: Option<usize>,
}

/// Where an agent definition came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    Builtin,
    Repo(PathBuf),
}

#[derive(Debug, Clone)]
pub struct Agent {
    pub name: String,
    pub description: String,
    /// Tools it may call, all known to the registry.
    pub tools: Vec<String>,
    /// The prompt file as the front matter names it.
    pub prompt_file: String,
    pub approval: Approval,
    pub max_turns: Option<usize>,
    /// The markdown body, for people.
    pub body: String,
    pub source: Source,
    /// Every prompt file's text by template name (file name without `.md.hbs`).
    prompts: Arc<BTreeMap<String, String>>,
    template: String,
}

impl Agent {
    pub fn allows(&self, tool: &str) -> bool {
        self.tools.iter().any(|t| t == tool)
    }

    /// The file the definition came from, for messages.
    pub fn file(&self) -> String {
        match &self.source {
            Source::Builtin => format!("agents/{}.md (built in)", self.name),
            Source::Repo(p) => p.display().to_string(),
        }
    }

    /// Renders the system prompt with `data` (repo context, tools, policy).
    pub fn render_prompt(&self, data: &Value) -> Result<String, Error> {
        let mut hb = handlebars::Handlebars::new();
        hb.register_escape_fn(handlebars::no_escape);
        for (name, text) in self.prompts.iter() {
            hb.register_partial(name, text.as_str()).map_err(|e| prompt_error(name, &e.to_string()))?;
        }
        let text = self.prompts.get(&self.template).ok_or_else(|| prompt_error(&self.template, "not found"))?;
        hb.render_template(text, data).map_err(|e| prompt_error(&self.template, &e.to_string()))
    }
}

fn prompt_error(template: &str, message: &str) -> Error {
    Error::Config { file: format!("prompts/{template}{PROMPT_SUFFIX}"), line: None, message: message.to_string() }
}

/// Every agent, by name, and what was noticed while loading them.
#[derive(Debug, Clone, Default)]
pub struct Agents {
    agents: BTreeMap<String, Agent>,
    warnings: Vec<String>,
}

impl Agents {
    /// The built-in agents only.
    pub fn builtin(registry: &dyn ToolCatalog) -> Result<Agents, Error> {
        Agents::load(None, registry)
    }

    /// The built-in agents, with the repo's `.agentops/agents` and `.agentops/prompts` over them.
    pub fn load(repo_root: Option<&Path>, registry: &dyn ToolCatalog) -> Result<Agents, Error> {
        let mut prompts: BTreeMap<String, String> = BTreeMap::new();
        for (file, text) in BUILTIN_PROMPTS {
            prompts.insert(template_name(file).to_string(), (*text).to_string());
        }
        let mut defs: Vec<(String, String, Source)> = BUILTIN_AGENTS
            .iter()
            .map(|(file, text)| (format!("agents/{file}"), (*text).to_string(), Source::Builtin))
            .collect();
        if let Some(root) = repo_root {
            for path in files_with_suffix(&root.join(PROMPTS_DIR), PROMPT_SUFFIX)? {
                let text = crate::config::limits::read_text(&path, crate::config::limits::DEFAULT_FILE_BYTES)?;
                let file = path.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default();
                prompts.insert(template_name(&file).to_string(), text);
            }
            for path in files_with_suffix(&root.join(AGENTS_DIR), ".md")? {
                if path.file_name().is_some_and(|f| f.eq_ignore_ascii_case("README.md")) {
                    continue;
                }
                let text = crate::config::limits::read_text(&path, crate::config::limits::DEFAULT_FILE_BYTES)?;
                let shown = path.strip_prefix(root).unwrap_or(&path).display().to_string();
                defs.push((shown, text, Source::Repo(path)));
            }
        }
        let prompts = Arc::new(prompts);
        let mut out = Agents::default();
        for (file, text, source) in defs {
            let agent = parse_agent(&file, &text, source, registry, &prompts, &mut out.warnings)?;
            out.agents.insert(agent.name.clone(), agent);
        }
        Ok(out)
    }

    pub fn get(&self, name: &str) -> Option<&Agent> {
        self.agents.get(name)
    }

    /// The agent, or an error listing the ones there are.
    pub fn require(&self, name: &str) -> Result<&Agent, Error> {
        self.get(name).ok_or_else(|| {
            let names: Vec<&str> = self.agents.keys().map(String::as_str).collect();
            Error::Usage(format!("no agent named {name:?}; agents: {}", names.join(", ")))
        })
    }

    pub fn list(&self) -> impl Iterator<Item = &Agent> {
        self.agents.values()
    }

    /// Notes for the operator: unknown tools dropped, ignored settings.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }
}

fn template_name(file: &str) -> &str {
    file.strip_suffix(PROMPT_SUFFIX).unwrap_or(file)
}

fn files_with_suffix(dir: &Path, suffix: &str) -> Result<Vec<PathBuf>, Error> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io(dir, e)),
    };
    let mut out = Vec::new();
    for e in entries {
        let e = e.map_err(|err| Error::io(dir, err))?;
        let p = e.path();
        if p.is_file() && p.file_name().is_some_and(|f| f.to_string_lossy().ends_with(suffix)) {
            out.push(p);
        }
    }
    out.sort();
    Ok(out)
}

fn config_error(file: &str, line: Option<u32>, message: impl Into<String>) -> Error {
    Error::Config { file: file.to_string(), line, message: message.into() }
}

/// Splits `---\n<yaml>\n---\n<body>`; returns the YAML, the line it starts on, and the body.
fn split_front_matter<'a>(file: &str, text: &'a str) -> Result<(&'a str, &'a str), Error> {
    let t = text.strip_prefix('\u{feff}').unwrap_or(text);
    let rest = t
        .strip_prefix("---\n")
        .or_else(|| t.strip_prefix("---\r\n"))
        .ok_or_else(|| config_error(file, Some(1), "an agent file starts with `---` and YAML front matter"))?;
    let mut offset = 0;
    for line in rest.split_inclusive('\n') {
        if line.trim_end() == "---" {
            return Ok((&rest[..offset], &rest[offset + line.len()..]));
        }
        offset += line.len();
    }
    Err(config_error(file, None, "the front matter is not closed by a `---` line"))
}

fn parse_agent(
    file: &str,
    text: &str,
    source: Source,
    registry: &dyn ToolCatalog,
    prompts: &Arc<BTreeMap<String, String>>,
    warnings: &mut Vec<String>,
) -> Result<Agent, Error> {
    let (yaml, body) = split_front_matter(file, text)?;
    // the repo's YAML reader first: aliases bounded before serde sees them
    if let Err(e) = crate::config::yaml::parse_values(yaml)
        && e.is_refusal()
    {
        return Err(config_error(file, Some(e.line + 1), e.describe()));
    }
    let fm: FrontMatter = yaml_serde::from_str(yaml).map_err(|e| {
        // +1: the opening `---` line
        let line = e.location().map(|l| l.line() as u32 + 1);
        config_error(
            file,
            line,
            format!("{e}. Keys: name, description, tools, prompt, approval (ask|yes|read-only), max_turns"),
        )
    })?;
    let stem = Path::new(file).file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    if fm.name != stem {
        return Err(config_error(file, Some(2), format!("name {:?} must match the file name ({stem}.md)", fm.name)));
    }
    if fm.name.is_empty() || !fm.name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-') {
        return Err(config_error(file, Some(2), format!("name {:?}: use lowercase letters, digits and -", fm.name)));
    }
    if fm.description.trim().is_empty() {
        return Err(config_error(file, None, "description is empty; say in one line what the agent does"));
    }
    if fm.max_turns == Some(0) {
        return Err(config_error(file, None, "max_turns must be at least 1"));
    }
    let prompt_path = fm.prompt.trim().trim_start_matches("./");
    let prompt_file = prompt_path.strip_prefix("prompts/").unwrap_or(prompt_path);
    if prompt_file.contains('/') || prompt_file.contains('\\') || !prompt_file.ends_with(PROMPT_SUFFIX) {
        return Err(config_error(
            file,
            None,
            format!(
                "prompt {:?}: name a file prompts/<name>.md.hbs (built in, or in the repo's {PROMPTS_DIR}/)",
                fm.prompt
            ),
        ));
    }
    let template = template_name(prompt_file).to_string();
    if !prompts.contains_key(&template) {
        return Err(config_error(
            file,
            None,
            format!("prompt {:?} not found: add {PROMPTS_DIR}/{prompt_file} to the repo", fm.prompt),
        ));
    }
    // The template must compile, so a typo shows up when agents load, not mid-request.
    let mut hb = handlebars::Handlebars::new();
    if let Some(t) = prompts.get(&template) {
        hb.register_template_string(&template, t)
            .map_err(|e| config_error(&format!("prompts/{prompt_file}"), None, e.to_string()))?;
    }
    let known: Vec<String> = registry.tool_names().into_iter().map(str::to_string).collect();
    let mut tools = Vec::new();
    for t in &fm.tools {
        if t == "*" {
            tools.extend(known.iter().cloned());
        } else if known.contains(t) {
            tools.push(t.clone());
        } else {
            warnings.push(format!("{file}: tool {t:?} is not in this build's catalog; the agent runs without it"));
        }
    }
    tools.sort();
    tools.dedup();
    if fm.approval == Approval::Yes && source != Source::Builtin {
        warnings.push(format!(
            "{file}: approval: yes is ignored for agents defined in the repo; writes are asked for (or pass --yes)"
        ));
    }
    Ok(Agent {
        name: fm.name,
        description: fm.description.trim().to_string(),
        tools,
        prompt_file: fm.prompt,
        approval: fm.approval,
        max_turns: fm.max_turns,
        body: body.trim().to_string(),
        source,
        prompts: Arc::clone(prompts),
        template,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exec::Policy;
    use crate::tools::ToolRegistry;
    use serde_json::json;

    fn context() -> Value {
        json!({
            "repo": {"environments": ["dev", "prod"], "apps": [{"name": "web", "environments": ["dev", "prod"]}], "argocd_applications": 2},
            "tools": [{"name": "validate", "effect": "ReadOnly", "description": "Validate."}],
            "policy": {"read_only": false, "dry_run": false, "yes": false},
            "max_turns": 12,
        })
    }

    #[test]
    fn builtin_agents_load_and_render() {
        let registry = ToolRegistry::builtin();
        let agents = Agents::builtin(&registry).unwrap();
        for name in [
            "planner",
            "validator",
            "drift",
            "harmonize",
            "rollback",
            "create",
            "migrate-scanner",
            "migrate-analyst",
            "migrate-planner",
            "migrate-writer",
            "commit",
        ] {
            let a = agents.require(name).unwrap();
            assert_eq!(a.source, Source::Builtin);
            let text = a.render_prompt(&context()).unwrap();
            assert!(text.contains("- web: dev, prod") && text.contains("`validate` (ReadOnly)"), "{name}: {text}");
            assert!(!a.body.is_empty() && !a.description.is_empty());
        }
        let planner = agents.get("planner").unwrap();
        assert_eq!(planner.tools.len(), registry.list().len(), "planner sees every tool");
        assert_eq!(agents.get("validator").unwrap().approval, Approval::ReadOnly);
        assert!(Policy::default().for_agent(agents.get("validator").unwrap()).read_only);
        // the rollback agent gets its workflow's tools now that they exist
        assert!(agents.get("rollback").unwrap().allows("rollback_plan"));
        assert!(agents.get("rollback").unwrap().allows("git_revert"));
        assert!(agents.get("rollback").unwrap().allows("metrics_query"));
        assert!(!agents.warnings().iter().any(|w| w.contains("agents/rollback.md") && w.contains("\"rollback_plan\"")));
        assert!(agents.require("nope").unwrap_err().to_string().contains("planner"));
    }

    #[test]
    fn the_repo_overrides_agents_and_prompts() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join(AGENTS_DIR);
        let p = dir.path().join(PROMPTS_DIR);
        std::fs::create_dir_all(&a).unwrap();
        std::fs::create_dir_all(&p).unwrap();
        std::fs::write(
            a.join("planner.md"),
            "---\nname: planner\ndescription: ours\ntools: [validate, frobnicate]\nprompt: prompts/ours.md.hbs\napproval: yes\n---\nOur planner.\n",
        )
        .unwrap();
        std::fs::write(p.join("ours.md.hbs"), "Team prompt for {{repo.environments.[0]}}.\n{{> _context}}").unwrap();
        std::fs::write(p.join("validator.md.hbs"), "Overridden validator prompt.").unwrap();
        std::fs::write(a.join("README.md"), "not an agent").unwrap();
        let agents = Agents::load(Some(dir.path()), &ToolRegistry::builtin()).unwrap();
        let planner = agents.get("planner").unwrap();
        assert_eq!(planner.description, "ours");
        assert_eq!(planner.tools, vec!["validate"]);
        assert!(matches!(planner.source, Source::Repo(_)));
        let text = planner.render_prompt(&context()).unwrap();
        assert!(text.starts_with("Team prompt for dev.") && text.contains("## Your tools"), "{text}");
        assert!(!Policy::default().for_agent(planner).yes, "a repo agent cannot approve its own writes");
        assert!(agents.warnings().iter().any(|w| w.contains("frobnicate")));
        assert!(agents.warnings().iter().any(|w| w.contains("approval: yes")));
        let v = agents.get("validator").unwrap();
        assert_eq!(v.render_prompt(&context()).unwrap(), "Overridden validator prompt.");
    }

    #[test]
    fn bad_front_matter_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join(AGENTS_DIR);
        std::fs::create_dir_all(&a).unwrap();
        let registry = ToolRegistry::builtin();
        let write = |text: &str| std::fs::write(a.join("mine.md"), text).unwrap();
        write("---\nname: mine\ndescription: d\nprompt: prompts/planner.md.hbs\ntoolz: [validate]\n---\n");
        let e = Agents::load(Some(dir.path()), &registry).unwrap_err().to_string();
        assert!(e.contains(".agentops/agents/mine.md:5") && e.contains("toolz"), "{e}");
        write("---\nname: mine\ndescription: d\nprompt: prompts/planner.md.hbs\napproval: maybe\n---\n");
        let e = Agents::load(Some(dir.path()), &registry).unwrap_err().to_string();
        assert!(e.contains("mine.md") && e.contains("maybe"), "{e}");
        write("---\nname: other\ndescription: d\nprompt: prompts/planner.md.hbs\n---\n");
        let e = Agents::load(Some(dir.path()), &registry).unwrap_err().to_string();
        assert!(e.contains("must match the file name"), "{e}");
        write("---\nname: mine\ndescription: d\nprompt: prompts/missing.md.hbs\n---\n");
        let e = Agents::load(Some(dir.path()), &registry).unwrap_err().to_string();
        assert!(e.contains("missing.md.hbs") && e.contains(PROMPTS_DIR), "{e}");
        write("---\nname: mine\ndescription: d\nprompt: ../../etc/passwd\n---\n");
        assert!(Agents::load(Some(dir.path()), &registry).is_err());
        write("name: mine\n");
        let e = Agents::load(Some(dir.path()), &registry).unwrap_err().to_string();
        assert!(e.contains("front matter"), "{e}");
        std::fs::write(a.join("mine.md"), "---\nname: mine\ndescription: d\nprompt: prompts/bad.md.hbs\n---\n")
            .unwrap();
        std::fs::create_dir_all(dir.path().join(PROMPTS_DIR)).unwrap();
        std::fs::write(dir.path().join(PROMPTS_DIR).join("bad.md.hbs"), "{{#if x}}unclosed").unwrap();
        let e = Agents::load(Some(dir.path()), &registry).unwrap_err().to_string();
        assert!(e.contains("bad.md.hbs"), "{e}");
    }
}
