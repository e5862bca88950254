//! `agentops tools list|call|export`: the tool catalog, for people debugging and for evals.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;

use crate::error::{Error, Result};
use crate::tools::{Effect, ToolRegistry};

use super::Global;

#[derive(Debug, Subcommand)]
pub enum ToolsCommand {
    /// Print every tool: name, effect, description and argument schema.
    List {
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
            for t in registry.list() {
                println!(
                    "{} ({:?})\n  {}\n  parameters: {}\n",
                    t.name,
                    t.effect,
                    t.description,
                    serde_json::to_string(&t.parameters).unwrap_or_default()
                );
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
