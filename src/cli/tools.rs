//! `agentops tools list|call|export`: the tool catalog, for people debugging and for evals.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;

use crate::error::{Error, Result};
use crate::tools::{Effect, ToolRegistry};

use super::Global;

#[derive(Debug, Subcommand)]
pub enum ToolsCommand {
    /// Print every tool, one line each: name, effect, what it does (`--format json` adds the
    /// argument schemas; `tools show NAME` prints one tool in full).
    List {
        #[arg(long, value_enum, default_value = "text")]
        format: ListFormat,
    },
    /// Print one tool: effect, description and its arguments.
    Show {
        name: String,
        #[arg(long, value_enum, default_value = "text")]
        format: ListFormat,
    },
    /// Run one tool through the registry (arguments are validated against its schema).
    Call {
        name: String,
        /// Arguments as a JSON object.
        #[arg(long, default_value = "{}")]
        args: String,
        /// Approve a tool that is not read-only.
        #[arg(long)]
        yes: bool,
    },
    /// Write the argument schemas to a directory (default tools/schemas), or check them.
    Export {
        #[arg(long, default_value = "tools/schemas")]
        dir: PathBuf,
        /// Exit 1 if the files differ instead of writing them.
        #[arg(long)]
        check: bool,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ListFormat {
    Text,
    Json,
}

pub async fn run(global: &Global, cmd: ToolsCommand) -> Result<ExitCode> {
    let registry = ToolRegistry::builtin();
    match cmd {
        ToolsCommand::List { format: ListFormat::Json } => {
            println!("{}", serde_json::to_string_pretty(&registry.list()).unwrap_or_default());
        }
        ToolsCommand::List { format: ListFormat::Text } => {
            let tools = registry.list();
            let width = tools.iter().map(|t| t.name.len()).max().unwrap_or(0);
            for t in &tools {
                println!("{:width$}  {:13}  {}", t.name, format!("{:?}", t.effect), first_sentence(t.description));
            }
            println!("\n{} tools; `agentops tools show NAME` prints one with its arguments.", tools.len());
        }
        ToolsCommand::Show { name, format } => {
            let t = registry
                .get(&name)
                .ok_or_else(|| Error::Usage(format!("unknown tool {name:?}; run `agentops tools list`")))?;
            match format {
                ListFormat::Json => println!("{}", serde_json::to_string_pretty(&t).unwrap_or_default()),
                ListFormat::Text => print!("{}", show_text(&t)),
            }
        }
        ToolsCommand::Call { name, args, yes } => {
            let info = registry
                .get(&name)
                .ok_or_else(|| Error::Usage(format!("unknown tool {name:?}; run `agentops tools list`")))?;
            if info.effect != Effect::ReadOnly && !yes {
                return Err(Error::Usage(format!("{name} is {:?}: pass --yes to approve it", info.effect)));
            }
            let args: serde_json::Value =
                serde_json::from_str(&args).map_err(|e| Error::Usage(format!("--args is not JSON: {e}")))?;
            // arguments that fail the schema are a usage error, like bad JSON (exit 2)
            registry.validate_args(&name, &args).map_err(|e| Error::Usage(e.public))?;
            let ctx = global.ctx();
            match registry.call(&ctx, &name, args).await {
                Ok(out) => println!("{}", serde_json::to_string_pretty(&out).unwrap_or_default()),
                Err(e) => {
                    eprintln!("error: {}", e.public);
                    if let Some(i) = &e.internal {
                        eprintln!("  detail: {i}");
                    }
                    return Ok(ExitCode::from(1));
                }
            }
        }
        ToolsCommand::Export { dir, check } => {
            let mut stale = Vec::new();
            for (file, content) in registry.schema_files() {
                let path = dir.join(&file);
                if std::fs::read_to_string(&path).ok().as_deref() == Some(content.as_str()) {
                    continue;
                }
                if check {
                    stale.push(path.display().to_string());
                } else {
                    std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
                    std::fs::write(&path, content).map_err(|e| Error::io(&path, e))?;
                    println!("wrote {}", path.display());
                }
            }
            if !stale.is_empty() {
                eprintln!("stale tool schemas (run `agentops tools export`): {}", stale.join(", "));
                return Ok(ExitCode::from(1));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The first sentence of a description (to the first ". " that does not end an
/// abbreviation), cut at a word to about 100 characters.
fn first_sentence(s: &str) -> String {
    let mut end = s.len();
    let mut from = 0;
    while let Some(i) = s[from..].find(". ") {
        let at = from + i;
        if !(s[..at].ends_with("e.g") || s[..at].ends_with("i.e")) {
            end = at + 1;
            break;
        }
        from = at + 2;
    }
    let sentence = &s[..end];
    if sentence.chars().count() <= 100 {
        return sentence.to_string();
    }
    let cut: String = sentence.chars().take(100).collect();
    let cut = cut.rsplit_once(' ').map_or(cut.as_str(), |(head, _)| head);
    format!("{}…", cut.trim_end_matches([',', ';', ':']))
}

/// One tool for people: name, effect, description, then each argument with its type,
/// whether it is required, and its description.
fn show_text(t: &crate::tools::ToolInfo) -> String {
    use std::fmt::Write;
    let mut out = format!("{} ({:?})\n{}\n", t.name, t.effect, t.description);
    let required: Vec<&str> =
        t.parameters["required"].as_array().map(|a| a.iter().filter_map(|v| v.as_str()).collect()).unwrap_or_default();
    let props = t.parameters["properties"].as_object();
    match props {
        Some(props) if !props.is_empty() => {
            out.push_str("\narguments:\n");
            let width = props.keys().map(String::len).max().unwrap_or(0);
            for (name, p) in props {
                let ty = type_of(p, &t.parameters);
                let req = if required.contains(&name.as_str()) { "required" } else { "optional" };
                let desc = p["description"].as_str().unwrap_or("").replace('\n', " ");
                let _ = writeln!(out, "  {name:width$}  {ty} ({req})  {desc}");
            }
        }
        _ => out.push_str("\narguments: none\n"),
    }
    out.push_str("\n(`--format json` prints the JSON schema.)\n");
    out
}

/// A property's type in a few characters: `string`, `[string]`, `string|null`, an enum's
/// values, or a referenced definition's name.
fn type_of(p: &serde_json::Value, root: &serde_json::Value) -> String {
    if let Some(values) = p["enum"].as_array() {
        return values
            .iter()
            .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string))
            .collect::<Vec<_>>()
            .join("|");
    }
    if let Some(r) = p["$ref"].as_str() {
        let name = r.rsplit('/').next().unwrap_or(r);
        let def = &root["$defs"][name];
        if def.is_object() && (def["enum"].is_array() || def["type"].is_string()) {
            return type_of(def, root);
        }
        return name.to_string();
    }
    if let Some(any) = p["anyOf"].as_array().or_else(|| p["oneOf"].as_array()) {
        return any.iter().map(|x| type_of(x, root)).collect::<Vec<_>>().join("|");
    }
    match &p["type"] {
        serde_json::Value::String(t) if t == "array" => format!("[{}]", type_of(&p["items"], root)),
        serde_json::Value::String(t) => t.clone(),
        serde_json::Value::Array(ts) => ts.iter().filter_map(|t| t.as_str()).collect::<Vec<_>>().join("|"),
        _ => "any".into(),
    }
}
