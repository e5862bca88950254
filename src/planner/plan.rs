//! Plans and steps: an ordered list of tool calls, each with its arguments, the effect the
//! tool declares and a one-line summary for people. Serializable, so `--dry-run` prints it
//! and evals compare it.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::tools::{Effect, ToolError, ToolRegistry};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Step {
    pub tool: String,
    pub args: Value,
    /// The tool's declared effect (the executor looks it up again; a plan cannot lower it).
    pub effect: Effect,
    pub summary: String,
}

impl Step {
    /// A step whose effect comes from the registry. Unknown tools and arguments that fail
    /// the tool's schema are errors here, before anything runs.
    pub fn new(
        registry: &ToolRegistry,
        tool: &str,
        args: Value,
        summary: impl Into<String>,
    ) -> Result<Step, ToolError> {
        registry.validate_args(tool, &args)?;
        let effect = registry.get(tool).map(|t| t.effect).unwrap_or(Effect::WritesCluster);
        Ok(Step { tool: tool.into(), args, effect, summary: summary.into() })
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Plan {
    /// The request as the user gave it.
    pub request: String,
    pub steps: Vec<Step>,
}

impl Plan {
    pub fn new(request: impl Into<String>) -> Plan {
        Plan { request: request.into(), steps: Vec::new() }
    }

    /// A short stable hash of the plan, recorded with every journal line.
    pub fn hash(&self) -> String {
        let text = serde_json::to_string(self).unwrap_or_default();
        blake3::hash(text.as_bytes()).to_hex()[..12].to_string()
    }

    /// The most dangerous effect of any step.
    pub fn max_effect(&self) -> Effect {
        self.steps.iter().map(|s| s.effect).max().unwrap_or(Effect::ReadOnly)
    }
}
